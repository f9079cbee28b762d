//! The one error type of the HTTP edge, and the extractors that produce it.
//!
//! Every handler returns `Result<_, AppError>`. [`AppError::status`] is the one place where a
//! fault becomes a status code. Client faults are not logged as errors (a hostile client must
//! not be able to fill the error log); internal faults answer a generic body and are logged
//! here, once. No message ever holds a token, key, code or secret: messages are fixed strings
//! or come from dar-core, whose messages name fields, never their contents.
//!
//! # Two renderings: JSON for programs, a page for people
//!
//! An [`AppError`] answers JSON `{"code", "step", "message"}` and carries the same facts on the
//! response as an [`ErrorReport`] extension. The [`negotiate_errors`] middleware, which
//! [`app_with`](crate::app_with) runs around every route and every defence layer, re-renders
//! that report as an HTML page (`templates/error.html`: the status as the heading, the message,
//! the code and the spec step, a link home) with the same status and headers (`Allow`,
//! `Retry-After`, cookies) when the request asked for HTML:
//!
//! - the path is not under `/.well-known/`: the configuration document and token-status
//!   (§2, §3.6) are server-to-server, so they always answer JSON whatever `Accept` says;
//! - and its `Accept` header rates `text/html` (or `application/xhtml+xml`) above zero and at
//!   least as high as `application/json`.
//!
//! Why negotiate on `Accept` rather than mark the HTML routes with a per-router layer: many
//! errors are produced before any route is chosen (the rate limiter, the body limit, the
//! timeout, the cross-site guard, the 404 fallback), where a route's marker cannot be seen, yet
//! a person who hits them in a browser should get a page too. And the one signal every browser
//! sends on every navigation and form submission (the pages, `save-token`,
//! `save-token-return`, `recover-account`, `recover-account-return`) is `Accept: text/html`,
//! while scripts (`fetch`), the iframe API's callers and other servers send `*/*` or
//! `application/json` and so keep JSON. The status `match` stays in one place either way.

use std::fmt;

use askama::Template;
use axum::body::Body;
use axum::extract::rejection::{BytesRejection, FormRejection, JsonRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

/// Why a state-changing browser request was refused before reaching its handler (§6.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CsrfError {
    /// No session cookie (or one whose signature does not verify): there is no CSRF token to
    /// compare with. Pages that render a form start a session first.
    SessionMissing,
    /// The form has no `csrf_token` field.
    TokenMissing,
    /// The form's `csrf_token` is not the session's.
    TokenMismatch,
    /// `Origin` or `Sec-Fetch-Site` says the request came from another site.
    CrossSite,
}

/// Every way a request can fail, as the HTTP edge reports it.
#[derive(Debug)]
#[non_exhaustive]
pub enum AppError {
    /// The request broke a protocol rule; dar-core's error names the code and the spec step.
    Protocol(dar_core::Error),
    /// The body is not what the route reads (a missing or malformed field, bad JSON).
    BadRequest {
        /// A fixed description; never the offending input.
        message: &'static str,
    },
    /// The body has another media type than the route reads.
    UnsupportedMediaType,
    /// The body is larger than the route allows.
    PayloadTooLarge,
    /// No route has this path.
    NotFound,
    /// The route exists but not for this method.
    MethodNotAllowed,
    /// The route exists but refuses this method, for the reason given (405).
    WrongMethod {
        /// A fixed explanation.
        message: &'static str,
    },
    /// The CSRF defences refused the request (403).
    Csrf(CsrfError),
    /// The client sent too many requests; retry after this many seconds.
    RateLimited {
        /// Seconds until the client's quota allows another request.
        retry_after_secs: u64,
    },
    /// The request took longer than the configured timeout.
    Timeout,
    /// The credentials given are wrong (401); the message is fixed and the same whichever part
    /// was wrong, so it reveals no account.
    Unauthorized {
        /// A fixed description.
        message: &'static str,
    },
    /// The resource is no longer in a state that allows the request (409): a recovery that no
    /// longer takes evidence, a change that lost a race.
    Conflict {
        /// A fixed description.
        message: &'static str,
    },
    /// The route belongs to a role this deployment does not run (yet).
    NotConfigured {
        /// What is missing, e.g. `"the token status endpoint"`.
        what: &'static str,
    },
    /// The account provider role refused the request (its error names the code and step).
    AccountProvider(dar_account_provider::AccountProviderError),
    /// The recovery provider role refused the request (its error names the code and step).
    RecoveryProvider(dar_recovery_provider::RecoveryProviderError),
    /// The database cannot be reached; the request may be retried later (503).
    StorageUnavailable,
    /// Too many password or recovery-code checks are already waiting for the hashing threads;
    /// the request may be retried later (503).
    Overloaded,
    /// A fault of the server, not of the request. Logged; the client sees a generic body.
    Internal(Internal),
}

/// The cause of an [`AppError::Internal`]: kept for the log, never sent to the client.
pub struct Internal {
    context: &'static str,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Internal {
    /// An internal fault with a fixed description and, optionally, its cause. The cause must
    /// not carry secrets in its `Display` (it is logged).
    pub fn new(
        context: &'static str,
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self { context, source }
    }
}

impl fmt::Debug for Internal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Internal")
            .field("context", &self.context)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for Internal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(source) => write!(f, "{}: {source}", self.context),
            None => f.write_str(self.context),
        }
    }
}

impl AppError {
    /// An internal fault with a fixed description and its cause (logged, never sent).
    pub fn internal(
        context: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::Internal(Internal::new(context, Some(source.into())))
    }

    /// The status code: the one `match` of the HTTP edge.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Protocol(_) | Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::AccountProvider(e) => account_provider_status(e),
            Self::RecoveryProvider(e) => recovery_provider_status(e),
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed | Self::WrongMethod { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::Csrf(_) => StatusCode::FORBIDDEN,
            Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Timeout
            | Self::NotConfigured { .. }
            | Self::StorageUnavailable
            | Self::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable code sent as `code`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Protocol(e) => e.code(),
            Self::AccountProvider(e) => e.code(),
            Self::RecoveryProvider(e) => e.code(),
            Self::BadRequest { .. } => "bad_request",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::PayloadTooLarge => "payload_too_large",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed | Self::WrongMethod { .. } => "method_not_allowed",
            Self::Csrf(CsrfError::SessionMissing) => "csrf_session_missing",
            Self::Csrf(CsrfError::TokenMissing) => "csrf_token_missing",
            Self::Csrf(CsrfError::TokenMismatch) => "csrf_token_mismatch",
            Self::Csrf(CsrfError::CrossSite) => "cross_site_request",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unauthorized { .. } => "unauthorized",
            Self::Conflict { .. } => "conflict",
            Self::Timeout => "timeout",
            Self::NotConfigured { .. } => "not_configured",
            Self::StorageUnavailable => "storage_unavailable",
            Self::Overloaded => "overloaded",
            Self::Internal(_) => "internal",
        }
    }

    /// The step that failed, sent as `step`: a draft section for protocol and CSRF faults,
    /// `request` for faults of the HTTP request itself.
    pub fn step(&self) -> &'static str {
        match self {
            Self::Protocol(e) => e.step(),
            Self::AccountProvider(e) => e.step(),
            Self::RecoveryProvider(e) => e.step(),
            Self::Csrf(_) => "§6.5",
            Self::NotConfigured { .. } => "configuration",
            Self::StorageUnavailable | Self::Overloaded => "server",
            Self::Internal(_) => "server",
            _ => "request",
        }
    }

    /// The human-readable message sent as `message`.
    pub fn message(&self) -> String {
        match self {
            Self::Protocol(e) => e.to_string(),
            // Storage details are for the log only.
            Self::AccountProvider(dar_account_provider::AccountProviderError::Store(_)) => {
                "the account provider's storage failed; try again later".into()
            }
            Self::AccountProvider(e) => e.to_string(),
            Self::RecoveryProvider(e) if !e.is_client_fault() => {
                "the recovery provider's storage failed; try again later".into()
            }
            Self::RecoveryProvider(e) => e.to_string(),
            Self::BadRequest { message }
            | Self::WrongMethod { message }
            | Self::Unauthorized { message }
            | Self::Conflict { message } => (*message).to_owned(),
            Self::UnsupportedMediaType => "the request body has an unsupported media type".into(),
            Self::PayloadTooLarge => "the request body is too large for this endpoint".into(),
            Self::NotFound => "no such resource".into(),
            Self::MethodNotAllowed => "this resource does not support the method".into(),
            Self::Csrf(CsrfError::SessionMissing) => {
                "no session: reload the page and submit the form again".into()
            }
            Self::Csrf(CsrfError::TokenMissing) => "the form has no CSRF token".into(),
            Self::Csrf(CsrfError::TokenMismatch) => {
                "the form's CSRF token does not match the session".into()
            }
            Self::Csrf(CsrfError::CrossSite) => {
                "cross-site requests may not change state here".into()
            }
            Self::RateLimited { retry_after_secs } => {
                format!("too many requests; retry after {retry_after_secs} s")
            }
            Self::Timeout => "the request took too long".into(),
            Self::NotConfigured { what } => format!("{what} is not available on this deployment"),
            Self::StorageUnavailable => "the database is unavailable; try again later".into(),
            Self::Overloaded => "the server is busy; try again in a moment".into(),
            Self::Internal(_) => "internal server error".into(),
        }
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.code(), self.step(), self.message())
    }
}

impl std::error::Error for AppError {}

impl From<dar_core::Error> for AppError {
    fn from(e: dar_core::Error) -> Self {
        Self::Protocol(e)
    }
}

/// The status of an account provider refusal: storage faults are the server's, discovery
/// faults the peer's (502), the rest the request's.
fn account_provider_status(e: &dar_account_provider::AccountProviderError) -> StatusCode {
    use dar_account_provider::{AccountProviderError as E, StoreFailure};
    match e {
        E::Store(StoreFailure::Unavailable) => StatusCode::SERVICE_UNAVAILABLE,
        E::Store(_) | E::TooManyPublishedKeys | E::RetiringCurrentKey | E::InvalidAddressRange => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
        E::Discovery(_) | E::NotARecoveryProvider => StatusCode::BAD_GATEWAY,
        E::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        E::ForbiddenAddress | E::UnknownRecoveryProvider => StatusCode::FORBIDDEN,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// The status of a recovery provider refusal: storage faults are the server's, discovery
/// faults the peer's (502), missing tokens 404, the rest the request's.
fn recovery_provider_status(e: &dar_recovery_provider::RecoveryProviderError) -> StatusCode {
    use dar_recovery_provider::{RecoveryProviderError as E, StoreFault};
    match e {
        E::Store(StoreFault::Unavailable) => StatusCode::SERVICE_UNAVAILABLE,
        _ if !e.is_client_fault() => StatusCode::INTERNAL_SERVER_ERROR,
        E::Discovery(_) | E::NotAnAccountProvider => StatusCode::BAD_GATEWAY,
        E::UnknownToken | E::NoMatchingToken | E::UnknownRecovery => StatusCode::NOT_FOUND,
        E::TokenTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::BAD_REQUEST,
    }
}

impl From<dar_recovery_provider::RecoveryProviderError> for AppError {
    fn from(e: dar_recovery_provider::RecoveryProviderError) -> Self {
        Self::RecoveryProvider(e)
    }
}

impl From<dar_account_provider::AccountProviderError> for AppError {
    fn from(e: dar_account_provider::AccountProviderError) -> Self {
        Self::AccountProvider(e)
    }
}

impl From<dar_store::StoreError> for AppError {
    fn from(e: dar_store::StoreError) -> Self {
        match e {
            dar_store::StoreError::Unavailable => Self::StorageUnavailable,
            other => Self::internal("database", other),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if let Self::Internal(internal) = &self {
            // The one place internal faults are logged; client faults are not errors.
            tracing::error!(error = %internal, "internal error");
        }
        if self.status().is_server_error() {
            // Role errors never hold tokens, keys or codes (their messages name fields).
            match &self {
                Self::AccountProvider(e) => tracing::error!(error = %e, "account provider error"),
                Self::RecoveryProvider(e) => {
                    tracing::error!(error = %e, "recovery provider error");
                }
                _ => {}
            }
        }
        let report = ErrorReport {
            status: self.status(),
            code: self.code(),
            step: self.step(),
            message: self.message(),
        };
        let body = ErrorBody {
            code: report.code,
            step: report.step,
            message: report.message.clone(),
        };
        let mut response = (report.status, axum::Json(body)).into_response();
        if let Self::RateLimited { retry_after_secs } = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        response.extensions_mut().insert(report);
        response
    }
}

/// The JSON body of every error response.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[non_exhaustive]
pub struct ErrorBody {
    /// The stable machine-readable code ([`AppError::code`]), e.g. `bad_request`.
    pub code: &'static str,
    /// The failed step: a draft section, or `request`, `server`, `configuration`
    /// ([`AppError::step`]).
    pub step: &'static str,
    /// The human-readable message ([`AppError::message`]); never holds input or secrets.
    pub message: String,
}

/// What an error response says, attached to it as a response extension so that
/// [`negotiate_errors`] can render it again as a page without re-parsing the JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ErrorReport {
    /// The status ([`AppError::status`]).
    pub status: StatusCode,
    /// The machine-readable code ([`AppError::code`]).
    pub code: &'static str,
    /// The spec step or `request` ([`AppError::step`]).
    pub step: &'static str,
    /// The fixed, human-readable message ([`AppError::message`]); never holds input.
    pub message: String,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    error: Option<&'a str>,
    status: u16,
    reason: &'a str,
    code: &'a str,
    step: &'a str,
}

impl ErrorReport {
    /// The report as an accessible HTML page (askama escapes every value).
    ///
    /// # Errors
    ///
    /// The template's error when rendering fails (the caller then keeps the JSON body).
    pub fn html(&self) -> Result<String, askama::Error> {
        ErrorPage {
            error: Some(&self.message),
            status: self.status.as_u16(),
            reason: self.status.canonical_reason().unwrap_or("Error"),
            code: self.code,
            step: self.step,
        }
        .render()
    }
}

/// The well-known paths (§2, §3.6) are for other servers: their errors are always JSON.
fn server_to_server(path: &str) -> bool {
    path.starts_with("/.well-known/")
}

/// The media types a browser names when it asks for a page.
const HTML_TYPES: [&str; 2] = ["text/html", "application/xhtml+xml"];

/// Whether a request to `path` with these headers should get errors as a page: not a
/// well-known (server-to-server) path, and an `Accept` that rates HTML above zero and no lower
/// than JSON (see the module docs).
pub fn wants_html(path: &str, headers: &HeaderMap) -> bool {
    if server_to_server(path) {
        return false;
    }
    let mut html = 0.0_f32;
    let mut json = 0.0_f32;
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else { continue };
        for range in value.split(',') {
            let mut params = range.split(';');
            let media = params.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = params
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            if HTML_TYPES.contains(&media.as_str()) {
                html = html.max(q);
            } else if media == "application/json" {
                json = json.max(q);
            }
        }
    }
    html > 0.0 && html >= json
}

/// Middleware: turns an [`AppError`] response into an HTML page, same status and headers,
/// when the request asked for HTML ([`wants_html`]); anything else passes unchanged. It adds
/// `Vary: Accept` to the error responses it could have rendered either way.
pub async fn negotiate_errors(req: Request, next: Next) -> Response {
    let negotiable = !server_to_server(req.uri().path());
    let html = wants_html(req.uri().path(), req.headers());
    let mut response = next.run(req).await;
    let Some(report) = response.extensions().get::<ErrorReport>().cloned() else {
        return response;
    };
    if negotiable {
        response
            .headers_mut()
            .append(header::VARY, HeaderValue::from_static("accept"));
    }
    if !html {
        return response;
    }
    let page = match report.html() {
        Ok(page) => page,
        Err(e) => {
            tracing::error!(error = %e, "cannot render the error page");
            return response;
        }
    };
    let (mut parts, _json) = response.into_parts();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(page))
}

/// Maps a body-buffering failure: too large, or the connection failed mid-body.
pub(crate) fn bytes_rejection(rejection: &BytesRejection) -> AppError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        AppError::PayloadTooLarge
    } else {
        AppError::BadRequest {
            message: "the request body could not be read",
        }
    }
}

/// `axum::Json`, but a body that does not parse becomes an [`AppError`].
#[derive(Debug, Clone, Copy, Default)]
pub struct AppJson<T>(pub T);

impl<S, T> FromRequest<S> for AppJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(AppError::UnsupportedMediaType),
            Err(JsonRejection::BytesRejection(r)) => Err(bytes_rejection(&r)),
            // The serde message can quote the input: send a fixed message instead.
            Err(_) => Err(AppError::BadRequest {
                message: "the JSON body is malformed or lacks a required field",
            }),
        }
    }
}

impl<T: serde::Serialize> IntoResponse for AppJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `axum::Form`, but a body that does not parse becomes an [`AppError`].
///
/// Forms that change state on behalf of a signed-in user use
/// [`CsrfForm`](crate::security::CsrfForm) instead, which also checks the CSRF token.
#[derive(Debug, Clone, Copy, Default)]
pub struct AppForm<T>(pub T);

impl<S, T> FromRequest<S> for AppForm<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Form::<T>::from_request(req, state).await {
            Ok(axum::Form(value)) => Ok(Self(value)),
            Err(rejection) => Err(form_rejection(&rejection)),
        }
    }
}

/// `axum::extract::Query`, but a query that does not parse (a required field missing, a
/// field repeated) becomes an [`AppError`] (400, JSON or a page) instead of axum's plain-text
/// rejection, which quotes the input.
#[derive(Debug, Clone, Copy, Default)]
pub struct AppQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for AppQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        serde_urlencoded::from_str(parts.uri.query().unwrap_or(""))
            .map(Self)
            .map_err(|_| AppError::BadRequest {
                message: "the query is malformed or lacks a required field",
            })
    }
}

pub(crate) fn form_rejection(rejection: &FormRejection) -> AppError {
    match rejection {
        FormRejection::InvalidFormContentType(_) => AppError::UnsupportedMediaType,
        FormRejection::BytesRejection(r) => bytes_rejection(r),
        // The serde message can quote the input: send a fixed message instead.
        _ => AppError::BadRequest {
            message: "the form body is malformed or lacks a required field",
        },
    }
}

#[cfg(test)]
mod tests;
