//! The well-known resources: the configuration document (§2) and the token status endpoint
//! (§3.6).
//!
//! Over plain http both answer 401 with an empty body and never redirect: that is the http
//! listener's job ([`crate::http_app`]); these handlers only ever run over HTTPS.

use std::convert::Infallible;

use axum::Router;
use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, RawQuery, State};
use axum::http::StatusCode;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use dar_account_provider::TokenStatusForm;
use dar_core::{CONFIGURATION_PATH, TOKEN_STATUS_PATH};
use serde::Deserialize;
use tower_http::limit::RequestBodyLimitLayer;
use utoipa::ToSchema;

use crate::error::AppError;
use crate::openapi::{FORM, TAG_WELL_KNOWN};
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
            get(token_status_get)
                .post(token_status_post)
                .layer::<_, Infallible>(DefaultBodyLimit::max(TOKEN_STATUS_BODY_LIMIT))
                .layer::<_, Infallible>(RequestBodyLimitLayer::new(TOKEN_STATUS_BODY_LIMIT)),
        )
}

/// The configuration document (§2).
///
/// The deployment's document, one JSON object even when it plays both roles.
#[utoipa::path(
    get,
    summary = "The configuration document (§2)",
    path = CONFIGURATION_PATH,
    tag = TAG_WELL_KNOWN,
    responses(
        (status = 200, description = "The configuration document.",
            content_type = "application/json", body = Object,
            headers(("Cache-Control" = String, description = "`public, max-age=300`"))),
    ),
)]
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

/// The token status endpoint by GET (§3.6), fields in the query.
#[utoipa::path(
    get,
    summary = "Report a token event, by GET (§3.6)",
    path = TOKEN_STATUS_PATH,
    tag = TAG_WELL_KNOWN,
    params(
        ("id" = String, Query, description = "The recovery token's id (32 hex digits)."),
        ("status" = String, Query, description = "The lifecycle event, e.g. `save-success`."),
        ("countersigned_id" = Option<String>, Query,
            description = "The countersigned token's id, for a recovery."),
    ),
    responses(
        (status = 200, description = "Recorded, or an id this provider never issued (§3.6.1)."),
        (status = 400, description = "`id` or `status` is missing or malformed."),
        (
            status = 403,
            description = "The caller's address is not one the recovery provider may call from \
                (§3.6.2).",
        ),
        (status = 404, description = "This deployment is not an account provider."),
        (status = 413, description = "The body is over 1 KiB."),
    ),
)]
async fn token_status_get(
    state: State<AppState>,
    peer: ConnectInfo<SocketAddr>,
    query: RawQuery,
    body: Bytes,
) -> Result<StatusCode, AppError> {
    token_status(state, peer, query, body).await
}

/// The token status endpoint by POST (§3.6), fields in the form body.
#[utoipa::path(
    post,
    summary = "Report a token event, by POST (§3.6)",
    path = TOKEN_STATUS_PATH,
    tag = TAG_WELL_KNOWN,
    request_body(content = StatusFields, content_type = FORM),
    responses(
        (status = 200, description = "Recorded, or an id this provider never issued (§3.6.1)."),
        (status = 400, description = "`id` or `status` is missing or malformed."),
        (
            status = 403,
            description = "The caller's address is not one the recovery provider may call from \
                (§3.6.2).",
        ),
        (status = 404, description = "This deployment is not an account provider."),
        (status = 413, description = "The body is over 1 KiB."),
    ),
)]
async fn token_status_post(
    state: State<AppState>,
    peer: ConnectInfo<SocketAddr>,
    query: RawQuery,
    body: Bytes,
) -> Result<StatusCode, AppError> {
    token_status(state, peer, query, body).await
}

/// `GET|POST /.well-known/delegated-account-recovery/token-status` (§3.6): the recovery
/// provider reports a token's lifecycle event. 404 on a deployment that does not play the
/// account provider, 503 when it has no database. The fields come from the query (GET) or
/// the form body (POST); the caller is the TCP peer (`ConnectInfo`), which the role checks
/// against the recovery providers' allowed addresses (§3.6.2). Success is `200` with an
/// empty body, also for an id this provider never issued (§3.6.1: the caller learns nothing).
async fn token_status(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Result<StatusCode, AppError> {
    if state.roles().account_provider.is_none() {
        return Err(AppError::NotFound);
    }
    let ap = state.account_provider().ok_or(AppError::NotConfigured {
        what: "the token status endpoint",
    })?;
    let fields: StatusFields = if body.is_empty() {
        serde_urlencoded::from_str(query.as_deref().unwrap_or(""))
    } else {
        serde_urlencoded::from_bytes(&body)
    }
    .map_err(|_| AppError::BadRequest {
        message: "the token status request is malformed",
    })?;
    let (Some(id), Some(status)) = (fields.id.as_deref(), fields.status.as_deref()) else {
        return Err(AppError::BadRequest {
            message: "the token status request lacks `id` or `status`",
        });
    };
    let form = TokenStatusForm {
        id,
        status,
        countersigned_id: fields.countersigned_id.as_deref(),
    };
    ap.token_status(&form, peer.ip(), state.now()).await?;
    Ok(StatusCode::OK)
}

/// The §3.6 fields.
#[derive(Deserialize, ToSchema)]
pub(crate) struct StatusFields {
    // Optional here so that its absence gets the endpoint's own 400; required on the wire.
    #[schema(value_type = String, required = true)]
    id: Option<String>,
    #[schema(value_type = String, required = true)]
    status: Option<String>,
    countersigned_id: Option<String>,
}

#[cfg(test)]
mod tests;
