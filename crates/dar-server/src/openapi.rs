//! The OpenAPI description of every HTTP endpoint, generated from the handlers' annotations
//! (`#[utoipa::path]` beside each handler), for `dar openapi` and `docs/openapi.json`.
//!
//! [`openapi`] describes a deployment playing both roles at the default endpoint paths, with
//! the optional §3.3 iframe API at [`DOCUMENTED_IFRAME_PATH`]; [`openapi_for`] adapts it to one
//! configuration (its paths, its roles). It is not served over HTTP: peers need only the
//! configuration document (§2).
//!
//! What every operation may also answer, whatever its handler does, is added here once rather
//! than repeated on each handler, because the layers in [`crate::app_with`] produce it:
//!
//! - 429 from the per-client rate limit (with `Retry-After`), 503 from the request timeout or
//!   an unavailable database;
//! - on operations with a body: 400 (malformed), 413 (over the route's body limit), 415 (not
//!   `application/x-www-form-urlencoded`);
//! - on POSTs outside the protocol endpoints: 403 from the cross-site guard or the CSRF
//!   check, and the `csrf_token` field in the body: every such POST takes a
//!   [`CsrfForm`](crate::security::CsrfForm), so the handlers' annotations name only the
//!   form's own fields.
//!
//! Every error answers [`ErrorBody`] as JSON, or the same facts as an HTML page when the
//! request prefers HTML (see [`crate::error`]); some page handlers answer their own page with
//! an error status, so both media types are listed on every error response.

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder, Type};
use utoipa::openapi::{Content, OpenApi as Document, Ref, RefOr, Response};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

use crate::config::Config;
use crate::error::ErrorBody;
use crate::security::CSRF_FIELD;
use crate::{account_security, ap, auth, lockout, rp, wellknown};

/// The path at which [`openapi`] documents the optional §3.3 iframe page
/// (`recovery_provider.save_token_async_api_iframe_path`, which has no default).
pub const DOCUMENTED_IFRAME_PATH: &str = "/dar/save-token-iframe";

/// The media type of every request body.
pub(crate) const FORM: &str = "application/x-www-form-urlencoded";
/// The media type of the pages.
pub(crate) const HTML: &str = "text/html; charset=utf-8";

/// Tags grouping the operations by role; [`openapi_for`] drops a role's operations by them.
pub(crate) const TAG_WELL_KNOWN: &str = "well-known";
pub(crate) const TAG_ACCOUNTS: &str = "accounts";
pub(crate) const TAG_AP: &str = "account provider";
pub(crate) const TAG_LOCKOUT: &str = "lockout recovery";
pub(crate) const TAG_RP: &str = "recovery provider";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "dar",
        description = "Delegated Account Recovery (draft-hill-delegated-recovery): both roles' \
            protocol endpoints and user pages. Generated from the code; `dar openapi` prints it.",
        license(name = "Apache-2.0 OR MIT", identifier = "Apache-2.0 OR MIT"),
    ),
    paths(
        wellknown::configuration,
        wellknown::token_status_get,
        wellknown::token_status_post,
        auth::home,
        auth::sign_up_page,
        auth::sign_up,
        auth::sign_in_page,
        auth::sign_in,
        auth::totp_page,
        auth::totp_submit,
        auth::account_page,
        auth::enrol_page,
        auth::enrol_submit,
        auth::sign_out,
        auth::sign_out_everywhere,
        account_security::security_page,
        account_security::add_email,
        account_security::resend_verification,
        account_security::verify_page,
        account_security::verify,
        account_security::generate_codes,
        account_security::add_contact,
        account_security::remove_contact,
        account_security::approvals_page,
        account_security::approve,
        account_security::cancel_page,
        account_security::cancel_factor,
        ap::setup_page,
        ap::setup,
        ap::parked_save_return,
        ap::lost_page,
        ap::lost,
        ap::save_return_get,
        ap::save_return_post,
        ap::recover_return,
        ap::recover_return_get,
        lockout::recovery_page,
        lockout::continue_delegated,
        lockout::start,
        lockout::add_password,
        lockout::add_recovery_code,
        lockout::send_email_code,
        lockout::check_email_code,
        lockout::finish,
        lockout::cancel_page,
        lockout::cancel,
        rp::confirm_page,
        rp::confirm,
        rp::tokens_page,
        rp::delete_token,
        rp::rename_token,
        rp::recover,
        rp::save_token,
        rp::save_token_get,
        rp::recover_page,
        rp::recover_post,
        rp::iframe::api_page,
        rp::iframe::script,
        rp::iframe::api_save,
    ),
    tags(
        (name = TAG_WELL_KNOWN, description = "Server-to-server resources (§2, §3.6)."),
        (name = TAG_ACCOUNTS, description = "Web accounts: sign-up, sign-in, security pages."),
        (name = TAG_AP, description = "The account provider's pages and protocol endpoints."),
        (name = TAG_LOCKOUT, description = "The account provider's lockout recovery pages."),
        (name = TAG_RP, description = "The recovery provider's pages and protocol endpoints."),
    ),
    modifiers(&LayerResponses),
)]
struct ApiDoc;

/// The description of a deployment playing both roles at the default paths (see the module
/// docs).
pub fn openapi() -> Document {
    ApiDoc::openapi()
}

/// [`openapi`] adapted to `config`: the endpoint paths it names, only the roles it plays, and
/// the iframe API only when it offers one.
pub fn openapi_for(config: &Config) -> Document {
    let mut doc = openapi();
    let mut renames: Vec<(&str, Option<&str>)> = Vec::new();
    let mut dropped_tags: Vec<&str> = Vec::new();
    match &config.account_provider {
        Some(ap) => {
            renames.push((
                crate::config::DEFAULT_SAVE_TOKEN_RETURN,
                Some(&ap.save_token_return_path),
            ));
            renames.push((
                crate::config::DEFAULT_RECOVER_ACCOUNT_RETURN,
                Some(&ap.recover_account_return_path),
            ));
        }
        None => dropped_tags.extend([TAG_AP, TAG_LOCKOUT]),
    }
    match &config.recovery_provider {
        Some(rp) => {
            renames.push((crate::config::DEFAULT_SAVE_TOKEN, Some(&rp.save_token_path)));
            renames.push((
                crate::config::DEFAULT_RECOVER_ACCOUNT,
                Some(&rp.recover_account_path),
            ));
            let iframe = rp.save_token_async_api_iframe_path.as_deref();
            renames.push((DOCUMENTED_IFRAME_PATH, iframe));
            if iframe.is_none() {
                renames.push((rp::iframe::API_SCRIPT_PATH, None));
                renames.push((rp::iframe::API_SAVE_PATH, None));
            }
        }
        None => dropped_tags.push(TAG_RP),
    }
    // Take every renamed item out first: a configured path may be another one's default.
    let moved: Vec<_> = renames
        .iter()
        .map(|(from, to)| (doc.paths.paths.remove(*from), *to))
        .collect();
    for (item, to) in moved {
        if let (Some(item), Some(to)) = (item, to) {
            doc.paths.paths.insert(to.to_owned(), item);
        }
    }
    doc.paths.paths.retain(|_, item| {
        let tags = [&item.get, &item.post]
            .into_iter()
            .flatten()
            .flat_map(|op| op.tags.iter().flatten());
        !tags.into_iter().any(|t| dropped_tags.contains(&t.as_str()))
    });
    doc
}

/// The document as pretty-printed JSON with a final newline, as `docs/openapi.json` holds it.
///
/// # Errors
///
/// The serializer's error (not expected: the document is plain data).
pub fn to_json(doc: &Document) -> Result<String, serde_json::Error> {
    let mut text = serde_json::to_string_pretty(doc)?;
    text.push('\n');
    Ok(text)
}

/// Adds the responses the layers give every operation (see the module docs).
struct LayerResponses;

/// The POSTs that take cross-site requests by design (§6.5), at the documented paths: the
/// cross-site guard lets them through.
const PROTOCOL_POSTS: [&str; 5] = [
    crate::config::DEFAULT_SAVE_TOKEN,
    crate::config::DEFAULT_RECOVER_ACCOUNT,
    crate::config::DEFAULT_SAVE_TOKEN_RETURN,
    crate::config::DEFAULT_RECOVER_ACCOUNT_RETURN,
    dar_core::TOKEN_STATUS_PATH,
];

impl Modify for LayerResponses {
    fn modify(&self, doc: &mut Document) {
        doc.components
            .get_or_insert_with(Default::default)
            .schemas
            .insert(ErrorBody::name().into_owned(), ErrorBody::schema());
        for (path, item) in &mut doc.paths.paths {
            let protocol_post = PROTOCOL_POSTS.contains(&path.as_str());
            if let Some(op) = &mut item.get {
                add_layer_responses(op, false);
            }
            if let Some(op) = &mut item.post {
                add_layer_responses(op, !protocol_post);
            }
        }
    }
}

fn add_layer_responses(op: &mut Operation, guarded: bool) {
    let mut added = vec![
        (
            "429",
            "Too many requests from this client address (per-client rate limit); \
             `Retry-After` says when to try again.",
        ),
        (
            "503",
            "The request took longer than the request timeout, or the database is unavailable.",
        ),
    ];
    if op.request_body.is_some() {
        added.extend([
            ("400", "The body is malformed or lacks a required field."),
            ("413", "The body is over this endpoint's limit."),
            (
                "415",
                "The body is not `application/x-www-form-urlencoded`.",
            ),
        ]);
    }
    if guarded {
        add_csrf_field(op);
        added.push((
            "403",
            "A cross-site request (`Sec-Fetch-Site` or `Origin` names another site), or the \
             form's CSRF token does not match the session.",
        ));
    }
    for (status, description) in added {
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| Response::new(description).into());
    }
    if let Some(RefOr::T(response)) = op.responses.responses.get_mut("429") {
        response
            .headers
            .entry("Retry-After".to_owned())
            .or_insert_with(|| {
                HeaderBuilder::new()
                    .schema(Some(u64::schema()))
                    .description(Some("seconds"))
                    .build()
                    .into()
            });
    }
    for (status, response) in &mut op.responses.responses {
        let RefOr::T(response) = response else {
            continue;
        };
        if status.starts_with('4') || status.starts_with('5') {
            error_content(response);
        }
    }
}

/// Every POST outside the protocol endpoints takes a [`CsrfForm`](crate::security::CsrfForm):
/// its body schema gets the `csrf_token` field beside the form's own.
fn add_csrf_field(op: &mut Operation) {
    let Some(RefOr::T(body)) = &mut op.request_body else {
        return;
    };
    for content in body.content.values_mut() {
        let RefOr::T(content) = content else {
            continue;
        };
        let token = ObjectBuilder::new()
            .schema_type(Type::Object)
            .property(
                CSRF_FIELD,
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some("The session's CSRF token, from the page's form.")),
            )
            .required(CSRF_FIELD);
        let mut all = AllOfBuilder::new();
        if let Some(form) = content.schema.take() {
            all = all.item(form);
        }
        content.schema = Some(all.item(token).into());
    }
}

/// Every error: [`ErrorBody`] as JSON, or a page (see the module docs).
fn error_content(response: &mut Response) {
    response
        .content
        .entry("application/json".to_owned())
        .or_insert_with(|| RefOr::T(Content::new(Some(Ref::from_schema_name(ErrorBody::name())))));
    response
        .content
        .entry(HTML.to_owned())
        .or_insert_with(|| RefOr::T(Content::new(Some(String::schema()))));
}

#[cfg(test)]
mod tests;
