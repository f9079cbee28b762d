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
use time::OffsetDateTime;
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
    ap.token_status(&form, peer.ip(), OffsetDateTime::now_utc())
        .await?;
    Ok(StatusCode::OK)
}

#[derive(Deserialize)]
struct StatusFields {
    id: Option<String>,
    status: Option<String>,
    countersigned_id: Option<String>,
}

#[cfg(test)]
mod tests;
