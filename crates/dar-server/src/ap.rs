//! The account provider's pages and protocol endpoints (draft §3.1, §3.2, §3.5, §3.6).
//!
//! Handlers extract, call [`dar_account_provider::AccountProvider`], and map its errors
//! ([`AppError::AccountProvider`]); no SQL or cryptography here.
//!
//! - `GET|POST /ap/recovery/setup` (signed in): choose a recovery provider from the allow-list,
//!   then [`issue`](dar_account_provider::AccountProvider::issue) a token bound to the
//!   session, and show a form (a visible button, no JavaScript) that POSTs `token` and `state`
//!   to the recovery provider's `save-token` (§3.1 step 8).
//! - `save-token-return` (§3.2), GET and POST. A GET is a top-level navigation, so the
//!   `SameSite=Lax` session cookie comes with it and it is handled at once. A cross-site POST
//!   carries no cookie: its body is parked server-side (a random id, ten minutes, taken once)
//!   and the browser is sent (303) to `/ap/save-return?id=...`, a same-origin page that does.
//!   The state is single-use and bound to the session that issued the token.
//! - `recover-account-return` (§3.5), POST only (a GET answers 405 with a message):
//!   [`accept_countersigned`](dar_account_provider::AccountProvider::accept_countersigned),
//!   then the evidence joins the browser's lockout recovery ([`crate::lockout`]), whose policy
//!   decides what it unlocks (§3.5 step 15, §6.3.2).
//! - `GET|POST /ap/recovery/lost` ("I lost my second factor", no sign-in): choose a recovery
//!   provider from the allow-list; its configuration is fetched and the browser sent (303) to
//!   its `recover-account` with this provider's origin as the `issuer` hint (§3.4 step 1).
//! - `token-status` (§3.6) lives in the well-known routes and calls
//!   [`token_status`](dar_account_provider::AccountProvider::token_status) with the TCP peer
//!   address.

use askama::Template;
use axum::Router;
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::cookie::SignedCookieJar;
use dar_account_provider::IssueOptions;
use dar_discovery::ConfigSource as _;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth::{SignedInUser, park, parked_id, render, take_parked};
use crate::error::{AppError, AppForm};
use crate::openapi::{FORM, HTML, TAG_AP};
use crate::security::{CsrfForm, ensure_session};
use crate::state::{AccountProviderService, AppState};

/// The body limit of `save-token-return`: `state` (a few dozen characters) and `status`.
pub const SAVE_TOKEN_RETURN_BODY_LIMIT: usize = 4 * 1024;
/// The body limit of `recover-account-return`: one countersigned token of a token this
/// provider issued (well under 2 KiB), base64 and then percent-encoded, with room to spare.
pub const RECOVER_ACCOUNT_RETURN_BODY_LIMIT: usize = 16 * 1024;
/// How long a parked save-token-return waits for its page (seconds).
const PARK_SECS: i64 = 10 * 60;
const PARK_SAVE_RETURN: &str = "ap-save-token-return";

/// The account provider's routes, at the paths `state`'s configuration names; empty when
/// the deployment does not play the role.
pub fn routes(state: &AppState) -> Router<AppState> {
    let Some(slot) = &state.roles().account_provider else {
        return Router::new();
    };
    let settings = &slot.settings;
    Router::new()
        .route("/ap/recovery/setup", get(setup_page).post(setup))
        .route("/ap/save-return", get(parked_save_return))
        .route("/ap/recovery/lost", get(lost_page).post(lost))
        .layer(DefaultBodyLimit::max(crate::auth::ACCOUNT_FORM_BODY_LIMIT))
        .route(
            &settings.save_token_return_path,
            get(save_return_get)
                .post(save_return_post)
                .layer(DefaultBodyLimit::max(SAVE_TOKEN_RETURN_BODY_LIMIT)),
        )
        .route(
            &settings.recover_account_return_path,
            post(recover_return)
                .get(recover_return_get)
                .layer(DefaultBodyLimit::max(RECOVER_ACCOUNT_RETURN_BODY_LIMIT)),
        )
}

fn service(state: &AppState) -> Result<&AccountProviderService, AppError> {
    state.account_provider().ok_or(AppError::NotConfigured {
        what: "the account provider",
    })
}

#[derive(Template)]
#[template(path = "ap_setup.html")]
struct SetupPage<'a> {
    error: Option<&'a str>,
    csrf_token: String,
    providers: Vec<String>,
}

#[derive(Template)]
#[template(path = "ap_send_token.html")]
struct SendTokenPage<'a> {
    error: Option<&'a str>,
    recovery_provider: &'a str,
    action: &'a str,
    token: &'a str,
    state: &'a str,
}

#[derive(Template)]
#[template(path = "ap_save_result.html")]
struct SaveResultPage<'a> {
    error: Option<&'a str>,
    message: &'a str,
    token_id: String,
}

#[utoipa::path(
    get, path = "/ap/recovery/setup", tag = TAG_AP,
    summary = "Choose a recovery provider",
    responses(
        (
            status = 200,
            description = "The choice of recovery provider.",
            content_type = HTML,
            body = String,
        ),
        (
            status = 303,
            description = "Not signed in with both factors: to `/signin`.",
            headers(("Location" = String)),
        ),
    ),
)]
async fn setup_page(
    State(state): State<AppState>,
    user: SignedInUser,
) -> Result<Response, AppError> {
    let ap = service(&state)?;
    let page = SetupPage {
        error: None,
        csrf_token: user.session.csrf_token(),
        providers: ap
            .settings()
            .recovery_providers
            .iter()
            .map(|rp| rp.origin.to_string())
            .collect(),
    };
    render(StatusCode::OK, &page)
}

#[derive(Deserialize, ToSchema)]
struct SetupForm {
    recovery_provider: String,
}

#[utoipa::path(
    post, path = "/ap/recovery/setup", tag = TAG_AP,
    summary = "Issue a recovery token (§3.1)",
    request_body(content = SetupForm, content_type = FORM),
    responses(
        (
            status = 200,
            description = "A token was issued: a page whose form POSTs it to the recovery \
                provider's `save-token` (§3.1 step 8).",
            content_type = HTML,
            body = String,
        ),
        (
            status = 303,
            description = "Not signed in with both factors: to `/signin`.",
            headers(("Location" = String)),
        ),
        (status = 403, description = "Not a recovery provider this account provider allows."),
        (
            status = 502,
            description = "The recovery provider's configuration could not be fetched or is not a \
                recovery provider's.",
        ),
    ),
)]
async fn setup(
    State(state): State<AppState>,
    user: SignedInUser,
    CsrfForm { form, .. }: CsrfForm<SetupForm>,
) -> Result<Response, AppError> {
    let ap = service(&state)?;
    let origin = ap
        .settings()
        .recovery_provider(&form.recovery_provider)
        .map(|rp| rp.origin.clone())
        .ok_or(AppError::AccountProvider(
            dar_account_provider::AccountProviderError::UnknownRecoveryProvider,
        ))?;
    let status_requested = state
        .roles()
        .account_provider
        .as_ref()
        .is_none_or(|slot| slot.settings.status_requested);
    let options = IssueOptions {
        status_requested,
        ..IssueOptions::default()
    };
    let request = ap
        .issue(
            &user.account.to_string(),
            &origin,
            options,
            &user.session.id_hex(),
            state.now(),
            &mut getrandom::SysRng,
        )
        .await?;
    let action = request.save_token_url().as_string();
    let page = SendTokenPage {
        error: None,
        recovery_provider: origin.as_str(),
        action: &action,
        token: request.token(),
        state: request.state(),
    };
    render(StatusCode::OK, &page)
}

#[derive(Template)]
#[template(path = "ap_lost.html")]
struct LostPage<'a> {
    error: Option<&'a str>,
    csrf_token: String,
    providers: Vec<String>,
}

#[utoipa::path(
    get, path = "/ap/recovery/lost", tag = TAG_AP,
    summary = "Lost second factor: choose a recovery provider",
    responses(
        (
            status = 200,
            description = "\"I lost my second factor\": the choice of recovery provider.",
            content_type = HTML,
            body = String,
        ),
    ),
)]
async fn lost_page(
    State(state): State<AppState>,
    jar: SignedCookieJar,
) -> Result<Response, AppError> {
    let ap = service(&state)?;
    let (jar, session) = ensure_session(jar)?;
    let page = LostPage {
        error: None,
        csrf_token: session.csrf_token(),
        providers: ap
            .settings()
            .recovery_providers
            .iter()
            .map(|rp| rp.origin.to_string())
            .collect(),
    };
    Ok((jar, render(StatusCode::OK, &page)?).into_response())
}

/// To the chosen recovery provider's `recover-account`, with this provider as the `issuer`.
#[utoipa::path(
    post, path = "/ap/recovery/lost", tag = TAG_AP,
    summary = "Lost second factor: go to the recovery provider (§3.4)",
    request_body(content = SetupForm, content_type = FORM),
    responses(
        (
            status = 303,
            description = "To the recovery provider's `recover-account` with this provider as the \
                `issuer` hint (§3.4 step 1).",
            headers(("Location" = String)),
        ),
        (status = 403, description = "Not a recovery provider this account provider allows."),
        (
            status = 502,
            description = "The recovery provider's configuration could not be fetched or is not a \
                recovery provider's.",
        ),
    ),
)]
async fn lost(
    State(state): State<AppState>,
    CsrfForm { form, .. }: CsrfForm<SetupForm>,
) -> Result<Response, AppError> {
    use dar_account_provider::AccountProviderError as E;
    let ap = service(&state)?;
    let origin = ap
        .settings()
        .recovery_provider(&form.recovery_provider)
        .map(|rp| rp.origin.clone())
        .ok_or(AppError::AccountProvider(E::UnknownRecoveryProvider))?;
    let discovery = state
        .discovery()
        .ok_or(AppError::NotConfigured { what: "discovery" })?;
    let config = discovery
        .configuration(&origin)
        .await
        .map_err(|e| AppError::AccountProvider(E::Discovery(e)))?;
    let rp = config
        .recovery_provider()
        .ok_or(AppError::AccountProvider(E::NotARecoveryProvider))?;
    let query = serde_urlencoded::to_string([("issuer", state.public_origin().as_str())]).map_err(
        |_| AppError::BadRequest {
            message: "cannot encode the issuer hint",
        },
    )?;
    let to = format!("{}?{query}", rp.recover_account.as_string());
    Ok(Redirect::to(&to).into_response())
}

#[derive(Deserialize, ToSchema)]
struct SaveReturnForm {
    // Optional here so that its absence gets the endpoint's own 400; required on the wire.
    #[schema(value_type = String, required = true)]
    state: Option<String>,
    #[schema(value_type = String, required = true)]
    status: Option<String>,
}

/// §3.2 by GET: the session cookie is there; handle it now.
#[utoipa::path(
    get, path = crate::config::DEFAULT_SAVE_TOKEN_RETURN, tag = TAG_AP,
    summary = "save-token-return by GET (§3.2)",
    params(
        (
            "state" = String,
            Query,
            description = "The `state` the account provider issued with the token.",
        ),
        ("status" = String, Query, description = "`save-success` or `save-failure`."),
    ),
    responses(
        (status = 200, description = "The save's result.", content_type = HTML, body = String),
        (
            status = 303,
            description = "Not signed in with both factors: to `/signin` (which comes back).",
            headers(("Location" = String)),
        ),
        (
            status = 400,
            description = "`state` or `status` is missing, malformed, unknown, used, or another \
                session's (§3.2).",
        ),
    ),
)]
async fn save_return_get(
    State(state): State<AppState>,
    user: SignedInUser,
    RawQuery(query): RawQuery,
) -> Result<Response, AppError> {
    let form: SaveReturnForm =
        serde_urlencoded::from_str(query.as_deref().unwrap_or("")).map_err(|_| {
            AppError::BadRequest {
                message: "the query is malformed",
            }
        })?;
    finish_save_return(&state, &user, form).await
}

/// §3.2 by cross-site POST: no cookie; park the fields and continue on a same-origin page.
#[utoipa::path(
    post, path = crate::config::DEFAULT_SAVE_TOKEN_RETURN, tag = TAG_AP,
    summary = "save-token-return by cross-site POST (§3.2)",
    request_body(content = SaveReturnForm, content_type = FORM),
    responses(
        (
            status = 303,
            description = "Parked (no cookie comes with a cross-site POST): to \
                `/ap/save-return?id=...`.",
            headers(("Location" = String)),
        ),
        (status = 400, description = "`state` or `status` is missing."),
    ),
)]
async fn save_return_post(
    State(state): State<AppState>,
    AppForm(form): AppForm<SaveReturnForm>,
) -> Result<Response, AppError> {
    let (Some(st), Some(status)) = (&form.state, &form.status) else {
        return Err(AppError::BadRequest {
            message: "the form lacks `state` or `status`",
        });
    };
    let payload =
        serde_urlencoded::to_string([("state", st), ("status", status)]).map_err(|_| {
            AppError::BadRequest {
                message: "the form is malformed",
            }
        })?;
    let id = park(&state, PARK_SAVE_RETURN, &payload, PARK_SECS).await?;
    Ok(Redirect::to(&format!("/ap/save-return?id={id}")).into_response())
}

#[utoipa::path(
    get, path = "/ap/save-return", tag = TAG_AP,
    summary = "Finish a parked save-token-return (§3.2)",
    params(("id" = String, Query, description = "The parked `save-token-return`'s id.")),
    responses(
        (status = 200, description = "The save's result.", content_type = HTML, body = String),
        (
            status = 303,
            description = "Not signed in with both factors: to `/signin` (which comes back).",
            headers(("Location" = String)),
        ),
        (status = 400, description = "The parked `state` or `status` is refused (§3.2)."),
        (status = 404, description = "No `id`, or unknown, expired or used."),
    ),
)]
async fn parked_save_return(
    State(state): State<AppState>,
    user: SignedInUser,
    RawQuery(query): RawQuery,
) -> Result<Response, AppError> {
    let id = parked_id(query.as_deref())?;
    let payload = take_parked(&state, PARK_SAVE_RETURN, &id)
        .await?
        .ok_or(AppError::NotFound)?;
    let form: SaveReturnForm =
        serde_urlencoded::from_str(&payload).map_err(|_| AppError::BadRequest {
            message: "the parked form is malformed",
        })?;
    finish_save_return(&state, &user, form).await
}

async fn finish_save_return(
    state: &AppState,
    user: &SignedInUser,
    form: SaveReturnForm,
) -> Result<Response, AppError> {
    let ap = service(state)?;
    let (Some(st), Some(status)) = (form.state, form.status) else {
        return Err(AppError::BadRequest {
            message: "the request lacks `state` or `status`",
        });
    };
    let result = ap
        .save_token_return(&st, &status, &user.session.id_hex(), state.now())
        .await?;
    let message = if status == "save-success" {
        "Your recovery provider saved your recovery token."
    } else {
        "Your recovery provider did not save the recovery token."
    };
    let page = SaveResultPage {
        error: None,
        message,
        token_id: result.token_id.to_string(),
    };
    render(StatusCode::OK, &page)
}

#[derive(Deserialize, ToSchema)]
struct RecoverReturnForm {
    #[serde(rename = "countersigned-token")]
    // Optional here so that its absence gets the endpoint's own 400; required on the wire.
    #[schema(value_type = String, required = true)]
    countersigned_token: Option<String>,
}

/// §3.5 refuses GET: the countersigned token must not travel in a URL.
#[utoipa::path(
    get, path = crate::config::DEFAULT_RECOVER_ACCOUNT_RETURN, tag = TAG_AP,
    summary = "recover-account-return refuses GET (§3.5)",
    responses(
        (
            status = 405,
            description = "POST only: the countersigned token must not travel in a URL (§3.5).",
            headers(("Allow" = String, description = "`POST`")),
        ),
    ),
)]
async fn recover_return_get() -> Response {
    let error = AppError::WrongMethod {
        message: "recover-account-return accepts POST only: the countersigned token must not \
                  travel in a URL (§3.5)",
    };
    ([(axum::http::header::ALLOW, "POST")], error).into_response()
}

#[utoipa::path(
    post, path = crate::config::DEFAULT_RECOVER_ACCOUNT_RETURN, tag = TAG_AP,
    summary = "recover-account-return (§3.5)",
    request_body(content = RecoverReturnForm, content_type = FORM),
    responses(
        (
            status = 303,
            description = "Accepted: the evidence is parked and the browser sent to \
                `/recovery/continue?id=...`.",
            headers(("Location" = String)),
        ),
        (status = 400, description = "No `countersigned-token`, or it does not verify (§3.5)."),
        (
            status = 403,
            description = "The recovery provider is not one this account provider allows.",
        ),
        (status = 429, description = "Too many recoveries (the role's own limit)."),
        (status = 502, description = "The recovery provider's configuration could not be fetched."),
    ),
)]
async fn recover_return(
    State(state): State<AppState>,
    AppForm(form): AppForm<RecoverReturnForm>,
) -> Result<Response, AppError> {
    let ap = service(&state)?;
    let token = form.countersigned_token.ok_or(AppError::BadRequest {
        message: "the form lacks `countersigned-token`",
    })?;
    // The evidence is parked in the transaction that uses the token (§3.5 step 16), under a
    // random id the browser is sent on with.
    let (id, key_hash) = crate::auth::new_parked_id()?;
    let now = state.now();
    ap.accept_countersigned_with(&token, None, now, |evidence| {
        crate::lockout::delegated_handoff(evidence, key_hash, now).map(Some)
    })
    .await?;
    Ok(crate::lockout::continue_redirect(&id))
}

#[cfg(test)]
mod tests;
