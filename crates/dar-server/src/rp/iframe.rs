//! The recovery provider's `save-token-async-api-iframe` (draft §3.3): a page an account
//! provider's page loads in an `<iframe>`, and the script and JSON endpoint behind it.
//!
//! # Routes
//!
//! - `GET <save_token_async_api_iframe_path>`: the page ([`API_SCRIPT_PATH`] is its only
//!   script; no inline script, so the ordinary `default-src 'self'` policy holds). It is the one
//!   route that may be framed ([`allow_framing`]), and only by the listed account providers
//!   (`frame-ancestors`, see [`crate::security`]). It embeds, as `data-` attributes, the
//!   account providers the API serves, whether the user is signed in with both factors, and
//!   the session's CSRF token when so.
//! - `GET /rp/iframe.js`: the script (below).
//! - `POST /rp/iframe/save`: the script's same-origin form POST (CSRF token and origin
//!   checked, [`CsrfForm`]), answered with JSON ([`ApiAnswer`]). It runs the same
//!   [`RecoveryProvider::save`](dar_recovery_provider::RecoveryProvider::save) as the
//!   interactive `save-token` flow, so every §3.1 check is the role's.
//!
//! # The script (§3.3.1)
//!
//! On load it posts `ready` to its parent, once per listed account provider origin as the
//! `targetOrigin` (the browser delivers it only to the one that is the parent; never `"*"`).
//! It then takes a `message` only when all hold: it comes from `window.parent`; its `origin`
//! is exactly a listed account provider; its data is a JSON object (or a string holding one)
//! whose `delegated-account-recovery-api-message` names a request type; an `id`, when present,
//! is a string or a number. Anything else is ignored without a reply. Every reply goes to the
//! request's exact origin and carries its `id` as `in-reply-to`.
//!
//! - `get-binding` → `binding` with `""` (this provider asks for no token binding; §3.3.1.6
//!   allows the empty string).
//! - `save-token-no-navigation` → `save-token-result` with `save-token-success` only when the
//!   endpoint saved the token (or had it saved already), else `save-token-failure`; without a
//!   signed-in session the endpoint is not called and the answer is `save-token-failure`
//!   (§3.3.1.2: the account provider continues interactively, e.g. with a popup).
//! - `save-token-async-only` → `save-token-result` with `done` as soon as the request is
//!   dispatched (`keepalive`, so the iframe may go away), whatever happens (§3.3.1.3).
//! - `save-token` → on success the parent is navigated to the account provider's
//!   `save-token-return` with `save-success` and the message's `state` (§3.3.1.1); otherwise
//!   (not signed in, refused, not this provider's to save silently) the parent is navigated,
//!   by a form POST with `target="_parent"`, to this provider's `save-token`, the interactive
//!   flow with sign-in and the confirmation page, which returns to `save-token-return`.
//!
//! # When a token is saved without the user's click
//!
//! The confirmation page (see [`super`]) exists because the draft wants explicit consent on a
//! page that cannot be framed (§6.5). The async API saves silently only when the draft's
//! §3.3.1.7 lets a provider choose to, and this one chooses narrowly; all of:
//!
//! 1. the operator listed the account provider in `recovery_provider.allowed_account_providers`
//!    (with no list the API serves nobody: no `ready` is sent, every message is ignored, and
//!    the endpoint answers `origin-not-allowed`);
//! 2. the message came from that origin, and it is the token's issuer as the role verified it
//!    (a page cannot save another site's token);
//! 3. the user is signed in here with both factors, and the request is same-origin with the
//!    session's CSRF token (only this page's script can make it);
//! 4. every §3.1 check of the role passes.
//!
//! The framable page has nothing to click, so framing it cannot trick the user into anything.
//!
//! # Limitation
//!
//! - The session cookie is `SameSite=Lax`: browsers send it on this page's requests only when
//!   the embedding page is same-site with this provider. Embedded by another site, the page
//!   sees no session, and saves take the interactive path.
//! - Browsers let a cross-origin frame navigate its parent (the `save-token` message) only
//!   after a click inside the frame, or when the account provider's `<iframe>` has
//!   `sandbox="allow-scripts allow-same-origin allow-forms allow-top-navigation"`.
//!   `save-token-no-navigation` needs neither.

use askama::Template;
use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::middleware::map_response;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use dar_core::Origin;
use dar_recovery_provider::{SaveForm, SaveOptions, SaveOutcome};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{parse_origin, preview, save_token_body_limit, service, user_id};
use crate::auth::{SignedInUser, render};
use crate::error::{AppError, ErrorBody};
use crate::openapi::{FORM, HTML, TAG_RP};
use crate::security::{CsrfForm, allow_framing};
use crate::state::AppState;

/// Where the page loads its script from.
pub const API_SCRIPT_PATH: &str = "/rp/iframe.js";
/// Where the script posts a token to save.
pub const API_SAVE_PATH: &str = "/rp/iframe/save";

/// The script, served as a file so that no inline script is ever needed.
const SCRIPT: &str = include_str!("../../assets/rp_iframe.js");

/// The async API's routes, when the configuration offers it (`iframe_path`).
pub(super) fn routes(iframe_path: &str, token_max_size: usize) -> Router<AppState> {
    Router::new()
        .route(
            iframe_path,
            get(api_page).layer(map_response(allow_framing)),
        )
        .route(API_SCRIPT_PATH, get(script))
        .route(
            API_SAVE_PATH,
            post(api_save).layer(DefaultBodyLimit::max(save_token_body_limit(token_max_size))),
        )
}

#[derive(Template)]
#[template(path = "rp_iframe.html")]
struct ApiPage<'a> {
    origin: &'a str,
    script: &'static str,
    allowed_origins: String,
    signed_in: bool,
    csrf_token: String,
    save_endpoint: &'static str,
    save_token_url: &'a str,
}

/// The account providers the API serves: `allowed_account_providers`, or none.
fn listed(state: &AppState) -> &[Origin] {
    state
        .roles()
        .recovery_provider
        .as_ref()
        .and_then(|slot| slot.settings.allowed_account_providers.as_deref())
        .unwrap_or(&[])
}

/// Who is asking, from the [`SignedInUser`] extractor's result.
enum Visitor {
    /// Signed in with both factors.
    SignedIn(SignedInUser),
    /// No session, or one that has not passed both factors (the extractor answered with a
    /// redirect to sign-in).
    Anonymous,
    /// The extractor's error (the session store failed): answered as is.
    Failed(Response),
}

impl Visitor {
    fn from(user: Result<SignedInUser, Response>) -> Self {
        match user {
            Ok(user) => Self::SignedIn(user),
            Err(response) if response.status().is_redirection() => Self::Anonymous,
            Err(response) => Self::Failed(response),
        }
    }
}

#[utoipa::path(
    get, path = crate::openapi::DOCUMENTED_IFRAME_PATH, tag = TAG_RP,
    summary = "The async API page (§3.3)",
    responses(
        (
            status = 200,
            description = "The framable async API page (§3.3), for the allowed account providers \
                only (`frame-ancestors`).",
            content_type = HTML,
            body = String,
        ),
    ),
)]
async fn api_page(
    State(state): State<AppState>,
    user: Result<SignedInUser, Response>,
) -> Result<Response, AppError> {
    let user = match Visitor::from(user) {
        Visitor::SignedIn(user) => Some(user),
        Visitor::Anonymous => None,
        Visitor::Failed(response) => return Ok(response),
    };
    let slot = state
        .roles()
        .recovery_provider
        .as_ref()
        .ok_or(AppError::NotConfigured {
            what: "the recovery provider",
        })?;
    let origins: Vec<&str> = listed(&state).iter().map(Origin::as_str).collect();
    let allowed_origins = serde_json::to_string(&origins)
        .map_err(|e| AppError::internal("allowed origins", e.to_string()))?;
    let page = ApiPage {
        origin: state.public_origin().as_str(),
        script: API_SCRIPT_PATH,
        allowed_origins,
        signed_in: user.is_some(),
        csrf_token: user.map(|u| u.session.csrf_token()).unwrap_or_default(),
        save_endpoint: API_SAVE_PATH,
        save_token_url: &slot.settings.save_token_path,
    };
    render(StatusCode::OK, &page)
}

#[utoipa::path(
    get, path = API_SCRIPT_PATH, tag = TAG_RP,
    summary = "The async API page's script",
    responses(
        (
            status = 200,
            description = "The page's script.",
            content_type = "text/javascript; charset=utf-8",
            body = String,
        ),
    ),
)]
async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
        .into_response()
}

/// What the script posts: the §3.3.1.1 message properties and the message's origin.
#[derive(Deserialize, ToSchema)]
struct ApiSaveFields {
    origin: String,
    token: String,
    login_hint: Option<String>,
    nickname_hint: Option<String>,
    obsoletes: Option<String>,
    state: Option<String>,
}

/// The JSON answer of `POST /rp/iframe/save`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ApiAnswer {
    /// `save-token-success` or `save-token-failure` (§3.3.1.4).
    pub result: &'static str,
    /// Why: `saved`, `already-saved`, `refused`, `sign-in-required`, `origin-not-allowed`,
    /// `issuer-mismatch`, `interaction-required`.
    pub reason: &'static str,
    /// After a save: the account provider's `save-token-return` URL with `save-success` and
    /// the `state` (for the `save-token` message, which navigates the parent there).
    pub redirect: Option<String>,
}

impl ApiAnswer {
    fn failure(status: StatusCode, reason: &'static str) -> Response {
        let answer = Self {
            result: "save-token-failure",
            reason,
            redirect: None,
        };
        (status, Json(answer)).into_response()
    }
}

/// Saves a token posted by the page's script, if the conditions in the module docs hold.
#[utoipa::path(
    post, path = API_SAVE_PATH, tag = TAG_RP,
    summary = "Save a token from the async API (§3.3)",
    request_body(content = ApiSaveFields, content_type = FORM),
    responses(
        (
            status = 200,
            description = "Saved, already saved, refused or interaction required.",
            body = ApiAnswer,
        ),
        (status = 401, description = "Not signed in (`sign-in-required`).", body = ApiAnswer),
        (
            status = 403,
            description = "`origin-not-allowed`, `issuer-mismatch`, or a CSRF or cross-site \
                refusal.",
            content((ApiAnswer = "application/json"), (ErrorBody = "application/json")),
        ),
        (status = 400, description = "`origin` is not an origin, or the token is refused."),
        (status = 502, description = "The account provider's configuration could not be fetched."),
    ),
)]
async fn api_save(
    State(state): State<AppState>,
    user: Result<SignedInUser, Response>,
    form: Result<CsrfForm<ApiSaveFields>, AppError>,
) -> Result<Response, AppError> {
    let user = match Visitor::from(user) {
        Visitor::SignedIn(user) => user,
        Visitor::Anonymous => {
            return Ok(ApiAnswer::failure(
                StatusCode::UNAUTHORIZED,
                "sign-in-required",
            ));
        }
        Visitor::Failed(response) => return Ok(response),
    };
    let CsrfForm { form, .. } = form?;
    let rp = service(&state)?;
    let origin = parse_origin(&state, &form.origin)?;
    // Condition 1: a listed account provider (checked before any configuration is fetched).
    if !listed(&state).contains(&origin) {
        return Ok(ApiAnswer::failure(
            StatusCode::FORBIDDEN,
            "origin-not-allowed",
        ));
    }
    let mut save_form = SaveForm::with_token(form.token);
    save_form.login_hint = form.login_hint;
    save_form.nickname_hint = form.nickname_hint;
    save_form.obsoletes = form.obsoletes;
    save_form.state = form.state;
    let (user_id, now) = (user_id(&user), state.now());
    // Condition 2 needs the issuer the role verified: run its checks without storing first.
    let outcome = match preview(rp, &user_id, &save_form, now).await? {
        SaveOutcome::ConfirmationRequired(preview) if preview.issuer != origin => {
            return Ok(ApiAnswer::failure(StatusCode::FORBIDDEN, "issuer-mismatch"));
        }
        SaveOutcome::ConfirmationRequired(_) => {
            rp.save(&user_id, &save_form, SaveOptions::default(), now)
                .await?
        }
        // Refused, or saved already (then the issuer is checked below).
        outcome => outcome,
    };
    let answer = match outcome {
        SaveOutcome::Saved { issuer, .. } if issuer != origin => {
            return Ok(ApiAnswer::failure(StatusCode::FORBIDDEN, "issuer-mismatch"));
        }
        SaveOutcome::Saved {
            newly_saved,
            redirect,
            ..
        } => ApiAnswer {
            result: "save-token-success",
            reason: if newly_saved {
                "saved"
            } else {
                "already-saved"
            },
            redirect: Some(redirect.location()),
        },
        // The script continues with the interactive flow, which shows the refusal and sends
        // the user back with `save-failure`.
        SaveOutcome::Refused { .. } => ApiAnswer {
            result: "save-token-failure",
            reason: "refused",
            redirect: None,
        },
        SaveOutcome::ConfirmationRequired(_) => ApiAnswer {
            result: "save-token-failure",
            reason: "interaction-required",
            redirect: None,
        },
    };
    Ok(Json(answer).into_response())
}

#[cfg(test)]
mod tests;
