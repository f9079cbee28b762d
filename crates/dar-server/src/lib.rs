//! The dar HTTPS server: the axum application that publishes a deployment's Delegated Account
//! Recovery configuration (draft-hill-delegated-recovery §2) and hosts both roles' protocol
//! endpoints and user pages.
//!
//! - [`config`]: reads and checks the deployment's TOML file (unknown keys refused, every
//!   error names the key and the file, no secret ever printed).
//! - [`tls`]: rustls (TLS 1.2 and 1.3, aws-lc-rs) from PEM files, or a local CA generated once
//!   for development and tests.
//! - [`app`]: the HTTPS application. The configuration document at
//!   `/.well-known/delegated-account-recovery/configuration` (one document for both roles);
//!   the token-status endpoint (§3.6); errors as JSON for programs and as HTML pages for
//!   browsers ([`error::AppError`], [`error::negotiate_errors`]); security headers,
//!   body limits, a request timeout, per-client rate limits, and the CSRF defences
//!   ([`security`]).
//! - [`auth`]: web accounts on the database (`database`): sign-up with TOTP enrolment,
//!   sign-in with password then TOTP code, revocable sessions, and the
//!   [`auth::SignedInUser`] extractor the role pages use.
//! - `account_security`: the account's security pages (notification addresses, recovery
//!   codes, trusted contacts and their approvals, the security history) and the pause before
//!   a new second factor takes effect on an old account.
//! - [`ap`] and [`rp`]: the account provider's and the recovery provider's pages and
//!   protocol endpoints, calling the role crates' services ([`AppState::account_provider`],
//!   [`AppState::recovery_provider`]), which run on the same database and discover peers
//!   over HTTPS ([`discovery_settings`]). [`pages`] gathers every such route.
//! - [`http_app`]: the plain-http listener, which answers every request with 401 and an empty
//!   body and never redirects (§2, §3).
//! - [`serve`]: opens the database, builds the state and [`pages`], binds both listeners,
//!   logs one line per request (method, path without query, status, latency), and shuts down
//!   gracefully on SIGINT or SIGTERM.
//!
//! - [`outbox`]: the recovery provider's outbox worker (status callbacks, user notifications),
//!   which [`serve`] runs next to the listeners.
//! - [`staff`]: staff review of lockout recoveries (list, show, approve, deny) on the
//!   database, for `dar recoveries`; every decision notified and audited with who made it.
//! - [`mod@openapi`]: the OpenAPI description of every endpoint, generated from the handlers'
//!   annotations ([`openapi()`], [`openapi_for`]; `dar openapi`, `docs/openapi.json`).
//! - [`demo`]: both roles side by side on loopback and a scripted browser, for `dar demo` and
//!   the end-to-end tests.
//!
//! - [`clock`]: the wall clock every handler and worker reads through
//!   [`AppState::now`], injectable for tests ([`AppState::with_clock`]).
//! - [`lockout`]: the account provider's lockout recovery: the evidence a locked-out user
//!   gathers, the policy's decision, timed unlocks and their worker.
//!
//! Not here: token binding (§3.5 step 8 is always unbound), and re-authentication at the
//! recovery provider before a countersignature beyond the signed-in session's two factors.
//!
//! ```no_run
//! # async fn run() -> Result<(), dar_server::ServerError> {
//! let config = dar_server::config::Config::load("dar.toml".as_ref())?;
//! dar_server::init_tracing(&config.log)?;
//! dar_server::serve(config).await
//! # }
//! ```
//!
//! Tests drive the application without sockets:
//!
//! ```no_run
//! # async fn run(
//! #     state: dar_server::AppState,
//! # ) -> Result<(), Box<dyn std::error::Error>> {
//! use axum::body::Body;
//! use axum::extract::ConnectInfo;
//! use axum::http::Request;
//! use tower::ServiceExt as _;
//!
//! let mut request = Request::get("/.well-known/delegated-account-recovery/configuration")
//!     .body(Body::empty())?;
//! // The rate limiter keys by peer address: give the request one.
//! let peer: std::net::SocketAddr = "192.0.2.1:50000".parse()?;
//! request.extensions_mut().insert(ConnectInfo(peer));
//! let response = dar_server::app(state).oneshot(request).await?;
//! assert_eq!(response.status(), 200);
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
// Unit tests may unwrap and panic: a panic is a test failure.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod account_security;
pub mod ap;
pub mod auth;
pub mod clock;
pub mod config;
pub mod demo;
pub mod error;
mod hashing;
pub mod lockout;
pub mod mail;
mod notify;
pub mod openapi;
pub mod outbox;
pub mod rp;
pub mod security;
mod server;
pub mod staff;
mod state;
pub mod tls;
mod wellknown;

#[cfg(test)]
mod testutil;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware::{from_fn, from_fn_with_state};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

pub use crate::openapi::{openapi, openapi_for};
pub use crate::server::{
    MAX_OPEN_FILES, Running, SHUTDOWN_GRACE, ServerError, http_app, init_tracing,
    raise_open_files_limit, serve, start,
};
pub use crate::state::{
    AccountProviderService, AccountProviderSlot, AppState, COOKIE_KEY_LEN, RecoveryProviderService,
    RecoveryProviderSlot, Roles, discovery_settings, generate_cookie_key,
};
pub use crate::wellknown::{CONFIGURATION_CACHE_CONTROL, TOKEN_STATUS_BODY_LIMIT};

use crate::error::AppError;

/// The HTTPS application: the well-known routes and every defence layer.
///
/// The rate limiter keys clients by `ConnectInfo<SocketAddr>`: serve it with
/// `into_make_service_with_connect_info::<SocketAddr>()` (as [`start`] does), or in tests insert
/// an `axum::extract::ConnectInfo<SocketAddr>` into the request's extensions.
pub fn app(state: AppState) -> Router {
    app_with(state, Router::new())
}

/// The HTTPS application with extra routes: the seam where the role crates' routers plug in
/// (and where tests add probe routes). The extra routes get every layer [`app`] has; a route
/// that needs a larger body than `limits.body_limit_bytes` cannot have one (the outer limit
/// holds), a smaller one is set with a per-route `DefaultBodyLimit`.
pub fn app_with(state: AppState, routes: Router<AppState>) -> Router {
    let limits = state.limits().clone();
    // Layers run outermost last-added first: log, headers, error page negotiation, error
    // shape, rate limit, timeout, body limit, cross-site guard, then the route.
    Router::new()
        .merge(wellknown::routes())
        .merge(routes)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limits.body_limit_bytes))
        .layer(from_fn_with_state(
            state.clone(),
            security::same_origin_guard,
        ))
        .layer(RequestBodyLimitLayer::new(limits.body_limit_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            limits.request_timeout,
        ))
        .layer(security::rate_limit_layer(state.rate_limit()))
        .layer(from_fn(security::shape_errors))
        .layer(from_fn(error::negotiate_errors))
        .layer(from_fn_with_state(
            state.clone(),
            security::security_headers,
        ))
        .layer(from_fn(server::log_request))
        .with_state(state)
}

/// The user pages and the role routes [`serve`] mounts with [`app_with`]: the account pages
/// ([`auth::routes`], the account security pages) and both roles' pages and protocol endpoints ([`ap::routes`],
/// [`rp::routes`]), at the paths
/// `state`'s configuration names. They need a state with a database
/// ([`AppState::with_store`]).
pub fn pages(state: &AppState) -> Router<AppState> {
    auth::routes()
        .merge(account_security::routes())
        .merge(ap::routes(state))
        .merge(lockout::routes(state))
        .merge(rp::routes(state))
}

async fn not_found() -> AppError {
    AppError::NotFound
}
