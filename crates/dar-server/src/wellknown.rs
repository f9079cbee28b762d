//! The well-known resources: the configuration document (§2) and the token status endpoint
//! (§3.6).
//!
//! Over plain http both answer 401 with an empty body and never redirect: that is the http
//! listener's job ([`crate::http_app`]); these handlers only ever run over HTTPS.

use std::convert::Infallible;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use dar_core::{CONFIGURATION_PATH, TOKEN_STATUS_PATH};
use tower_http::limit::RequestBodyLimitLayer;

use crate::error::AppError;
use crate::state::AppState;

/// How long peers may cache the configuration document. §2: cacheable, but short enough that
/// a key compromise is answered in time.
pub const CONFIGURATION_CACHE_CONTROL: &str = "public, max-age=300";

/// The largest token-status body (§3.6): `id`, `status` and `countersigned_id`, well under
/// 200 bytes.
pub const TOKEN_STATUS_BODY_LIMIT: usize = 1024;

/// The well-known routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(CONFIGURATION_PATH, get(configuration))
        .route(
            TOKEN_STATUS_PATH,
            // §3.6: the endpoint must support both GET and POST.
            get(token_status)
                .post(token_status)
                .layer::<_, Infallible>(DefaultBodyLimit::max(TOKEN_STATUS_BODY_LIMIT))
                .layer::<_, Infallible>(RequestBodyLimitLayer::new(TOKEN_STATUS_BODY_LIMIT)),
        )
}

/// `GET /.well-known/delegated-account-recovery/configuration`: the deployment's document,
/// one JSON object even when it plays both roles (§2).
async fn configuration(State(state): State<AppState>) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static(CONFIGURATION_CACHE_CONTROL),
            ),
        ],
        state.document_json(),
    )
        .into_response()
}

/// `GET|POST /.well-known/delegated-account-recovery/token-status` (§3.6).
///
/// PLACEHOLDER until the account provider role is wired: it answers 503 `not_configured`
/// on a deployment that plays the account provider, and 404 on one that does not (no such
/// endpoint exists there). The account provider crate's handler replaces this function; the
/// route, its methods and its body limit stay.
async fn token_status(State(state): State<AppState>) -> AppError {
    if state.roles().account_provider.is_none() {
        return AppError::NotFound;
    }
    AppError::NotConfigured {
        what: "the token status endpoint",
    }
}

#[cfg(test)]
mod tests;
