//! The defences every route gets, and the session and CSRF primitives browser routes use.
//!
//! # Response headers ([`security_headers`])
//!
//! Every HTTPS response carries:
//!
//! - `Content-Security-Policy: default-src 'self'; base-uri 'none'; object-src 'none';
//!   frame-ancestors 'none'; form-action 'self' https:`. `form-action` cannot be `'self'`
//!   alone: the protocol's forms POST across origins by design (§6.5). The account provider's
//!   page submits the token to the recovery provider's `save-token` (§3.1), and the recovery
//!   provider's page submits the countersigned token to the account provider's
//!   `recover-account-return` (§3.4 step 5); those targets come from peers' configuration
//!   documents at run time, and browsers also apply `form-action` to the redirects that follow
//!   a submission. They are always https (§2), so `https:` is the narrowest static policy. In
//!   development `http://localhost:*` and `http://127.0.0.1:*` are added for loopback peers.
//! - `X-Frame-Options: DENY` and `frame-ancestors 'none'` (clickjacking, §6.5), except on a
//!   route that opts in with [`allow_framing`]: only the recovery provider's
//!   `save-token-async-api-iframe` (§3.3), which account providers' pages embed, so there it
//!   is `frame-ancestors` with the origins of `recovery_provider.allowed_account_providers`
//!   (`https:` when that list is absent) and no `X-Frame-Options`.
//! - `Strict-Transport-Security: max-age=31536000` (not in development: it would pin
//!   `localhost` to https in the developer's browser).
//! - `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`.
//! - `Cache-Control: no-store`, unless the handler set its own (only the configuration
//!   document does: `public, max-age=300`, §2).
//!
//! # Limits
//!
//! A body limit on every request (`tower-http` `RequestBodyLimitLayer`, which refuses a
//! declared `Content-Length` before reading) plus axum's `DefaultBodyLimit` at the same size,
//! which routes lower for themselves (the token-status route accepts 1 KiB); a request timeout
//! (`tower-http` `TimeoutLayer`); and a per-client rate limit (`tower_governor`, keyed by
//! [`ClientIpKey`]).
//!
//! ## How the rate limit is keyed
//!
//! By the TCP peer address. `X-Forwarded-For` is ignored unless the peer is listed in
//! `limits.trusted_proxies`; then the key is the right-most address in `X-Forwarded-For` that is
//! not itself a trusted proxy (the address the outermost trusted proxy saw). Anything a client
//! writes to the left of that is never believed. Behind a proxy that is not listed, every
//! client shares the proxy's quota: list the proxy. IPv6 clients are limited by /64 prefix
//! (one host usually holds a whole /64), IPv4 clients by address.
//!
//! # CSRF (§6.5)
//!
//! Two independent checks guard state-changing browser requests:
//!
//! 1. [`same_origin_guard`], on every POST, PUT, PATCH and DELETE: refuses a request whose
//!    `Sec-Fetch-Site` is `cross-site` or `same-site`, or whose `Origin` is present and is not
//!    the public origin (`null` passes only with `Sec-Fetch-Site: same-origin`: see
//!    [`check_same_origin`]).
//! 2. [`CsrfForm`], the extractor every state-changing form handler uses: the form's
//!    `csrf_token` field must equal the session's token (compared in constant time). The token
//!    lives in the signed, HttpOnly, Secure, `SameSite=Lax` session cookie ([`Session`]).
//!
//! **Exempt by design**: the protocol endpoints (§3) receive deliberate cross-origin POSTs from
//! the peer's pages, which cannot carry this deployment's CSRF token: `save-token` at the
//! recovery provider (§3.1), `save-token-return` and `recover-account-return` at the account
//! provider (§3.2, §3.5), `recover-account` at the recovery provider (§3.4), and the
//! server-to-server `token-status` (§3.6), which uses no cookies at all. The origin guard skips
//! exactly those paths ([`crate::AppState::csrf_exempt_paths`]), and their handlers do not use
//! [`CsrfForm`]. The draft's answer for them is explicit user confirmation on a page that
//! cannot be framed: the confirmation form is an ordinary same-origin form, and *it* uses
//! [`CsrfForm`].
//!
//! Note for those handlers: with `SameSite=Lax` the session cookie is not sent on the
//! cross-site POST itself. The handler parks the request server-side and answers `303 See
//! Other` to a same-origin confirmation page, whose GET does carry the cookie.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::{Cookie, Key, SameSite, SignedCookieJar};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dar_core::Origin;
use governor::middleware::NoOpMiddleware;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq as _;
use tower_governor::GovernorError;
use tower_governor::GovernorLayer;
use tower_governor::governor::{GovernorConfig, GovernorConfigBuilder};
use tower_governor::key_extractor::KeyExtractor;

use crate::config::Limits;
use crate::error::{AppError, CsrfError, bytes_rejection};
use crate::state::AppState;

// ---- Response headers --------------------------------------------------------------------

/// A response extension: the route may be framed (see [`allow_framing`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Framing {
    /// The account providers' pages may frame this response (`frame-ancestors` with the
    /// origins of `recovery_provider.allowed_account_providers`, or `https:` without a list).
    AllowAncestors,
}

/// Marks a response as framable by account providers' pages. Use it only on the recovery provider's
/// `save-token-async-api-iframe` route (§3.3), as a per-route layer:
///
/// ```
/// use axum::Router;
/// use axum::middleware::map_response;
/// use axum::routing::get;
/// use dar_server::security::allow_framing;
///
/// async fn iframe() -> &'static str {
///     "<!doctype html><title>save</title>"
/// }
///
/// let routes: Router = Router::new().route(
///     "/dar/save-token-async-api-iframe",
///     get(iframe).layer(map_response(allow_framing)),
/// );
/// # drop(routes);
/// ```
///
/// # Security
///
/// A framable page can be clickjacked (§6.5): it must not offer any action a click could
/// trigger without the user's informed consent.
pub async fn allow_framing(mut response: Response) -> Response {
    response.extensions_mut().insert(Framing::AllowAncestors);
    response
}

/// The `Content-Security-Policy` value (see the module docs for why each directive). A
/// framable response may be framed by `ancestors`, or by any https page when the list is empty.
pub(crate) fn content_security_policy(
    framable: bool,
    ancestors: &[Origin],
    development: bool,
) -> HeaderValue {
    let dev = if development {
        " http://localhost:* http://127.0.0.1:*"
    } else {
        ""
    };
    let ancestors = if !framable {
        "'none'".to_owned()
    } else if ancestors.is_empty() {
        format!("https:{dev}")
    } else {
        // Canonical origins are ASCII without spaces or `;`: each is one source expression.
        let listed: Vec<&str> = ancestors.iter().map(Origin::as_str).collect();
        listed.join(" ")
    };
    let policy = format!(
        "default-src 'self'; base-uri 'none'; object-src 'none'; \
         frame-ancestors {ancestors}; form-action 'self' https:{dev}"
    );
    // The policy is built from ASCII literals only, so it is always a valid header value.
    HeaderValue::from_str(&policy).unwrap_or(HeaderValue::from_static("default-src 'none'"))
}

/// Middleware: adds the security headers to every response of the HTTPS application.
pub async fn security_headers(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let framable = response.extensions().get::<Framing>() == Some(&Framing::AllowAncestors);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, state.csp(framable));
    if framable {
        headers.remove(header::X_FRAME_OPTIONS);
    } else {
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    if !state.development() {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Middleware: gives the bare error responses of layers and of axum's router (body limit,
/// timeout, unsupported method) the same JSON shape as [`AppError`].
pub async fn shape_errors(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.starts_with("application/json") || content_type.starts_with("text/html") {
        return response;
    }
    let error = match status {
        StatusCode::PAYLOAD_TOO_LARGE => AppError::PayloadTooLarge,
        StatusCode::METHOD_NOT_ALLOWED => AppError::MethodNotAllowed,
        StatusCode::NOT_FOUND => AppError::NotFound,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => AppError::UnsupportedMediaType,
        // Only the timeout layer answers a bare 503.
        StatusCode::SERVICE_UNAVAILABLE => AppError::Timeout,
        _ => return response,
    };
    let allow = response.headers().get(header::ALLOW).cloned();
    let mut shaped = error.into_response();
    if let Some(allow) = allow {
        shaped.headers_mut().insert(header::ALLOW, allow);
    }
    shaped
}

// ---- Cross-site requests -----------------------------------------------------------------

/// Checks that a request comes from the deployment's own pages: `Sec-Fetch-Site` (when sent)
/// is `same-origin` or `none`, and `Origin` (when sent) is the public origin.
///
/// One exception: `Origin: null` with `Sec-Fetch-Site: same-origin`. Under this application's
/// `Referrer-Policy: no-referrer`, browsers send `Origin: null` on every POST, their own
/// pages' forms included (Fetch, "serializing a request origin"); `Sec-Fetch-Site` is set by
/// the browser alone (pages cannot write it) and says the page was this origin's. Without
/// `Sec-Fetch-Site`, `null` is refused.
///
/// # Errors
///
/// [`CsrfError::CrossSite`] otherwise.
pub fn check_same_origin(headers: &HeaderMap, public_origin: &Origin) -> Result<(), CsrfError> {
    let site = headers.get("sec-fetch-site").map(HeaderValue::as_bytes);
    // A subdomain (`same-site`) is another origin too.
    if site.is_some_and(|site| !matches!(site, b"same-origin" | b"none")) {
        return Err(CsrfError::CrossSite);
    }
    let vouched = site == Some(b"same-origin".as_slice());
    for origin in headers.get_all(header::ORIGIN) {
        // Browsers serialize origins canonically, as `Origin` does.
        let same = origin.as_bytes() == public_origin.as_str().as_bytes();
        let vouched_null = vouched && origin.as_bytes() == b"null";
        if !(same || vouched_null) {
            return Err(CsrfError::CrossSite);
        }
    }
    Ok(())
}

/// Middleware: refuses cross-site state-changing requests, except on the protocol paths that
/// receive them by design (see the module docs).
pub async fn same_origin_guard(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let safe = matches!(
        *req.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    );
    // §6.5: the protocol endpoints take deliberate cross-origin POSTs; they are exempt.
    let exempt = state
        .csrf_exempt_paths()
        .iter()
        .any(|p| p == req.uri().path());
    if !safe
        && !exempt
        && let Err(e) = check_same_origin(req.headers(), state.public_origin())
    {
        return AppError::Csrf(e).into_response();
    }
    next.run(req).await
}

// ---- Sessions and CSRF tokens ------------------------------------------------------------

/// The session cookie's name. `__Host-` makes browsers refuse it unless it is Secure, has
/// `Path=/` and no `Domain`, so a sibling subdomain cannot plant one.
pub const SESSION_COOKIE: &str = "__Host-dar-session";
/// The form field that carries the CSRF token.
pub const CSRF_FIELD: &str = "csrf_token";
const RANDOM_LEN: usize = 32;
const COOKIE_VERSION: &str = "v1";

/// A browser session: a random id (what the session table will be keyed by, once storage is
/// wired) and the session's CSRF token, both carried in the signed session cookie.
///
/// Start a new session ([`Session::generate`]) whenever the user's privilege changes (sign-in,
/// recovery): never keep a session id chosen before (session fixation, §6.3.1.1).
#[derive(Clone, PartialEq, Eq)]
pub struct Session {
    id: [u8; RANDOM_LEN],
    csrf: [u8; RANDOM_LEN],
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Session([redacted])")
    }
}

impl Session {
    /// A new session with fresh random values from the operating system.
    ///
    /// # Errors
    ///
    /// [`AppError::Internal`] when the random number generator fails.
    pub fn generate() -> Result<Self, AppError> {
        let mut id = [0u8; RANDOM_LEN];
        let mut csrf = [0u8; RANDOM_LEN];
        getrandom::fill(&mut id)
            .and_then(|()| getrandom::fill(&mut csrf))
            .map_err(|e| AppError::internal("random number generator", e.to_string()))?;
        Ok(Self { id, csrf })
    }

    /// The session in a (signature-checked) cookie jar, if there is one.
    pub fn from_jar(jar: &SignedCookieJar) -> Option<Self> {
        let cookie = jar.get(SESSION_COOKIE)?;
        let mut parts = cookie.value().split('.');
        if parts.next()? != COOKIE_VERSION {
            return None;
        }
        let id = decode_random(parts.next()?)?;
        let csrf = decode_random(parts.next()?)?;
        if parts.next().is_some() {
            return None;
        }
        Some(Self { id, csrf })
    }

    /// The cookie that carries this session: HttpOnly, Secure, `SameSite=Lax`, `Path=/`, no
    /// `Domain`, no expiry (it ends with the browser session).
    pub fn cookie(&self) -> Cookie<'static> {
        let value = format!(
            "{COOKIE_VERSION}.{}.{}",
            URL_SAFE_NO_PAD.encode(self.id),
            URL_SAFE_NO_PAD.encode(self.csrf)
        );
        let mut cookie = Cookie::new(SESSION_COOKIE, value);
        cookie.set_http_only(true);
        cookie.set_secure(true);
        cookie.set_same_site(SameSite::Lax);
        cookie.set_path("/");
        cookie
    }

    /// The session id as hex: the key of its server-side record.
    pub fn id_hex(&self) -> String {
        self.id.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The CSRF token to embed in forms as the hidden field [`CSRF_FIELD`].
    pub fn csrf_token(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.csrf)
    }

    /// Whether a submitted token is this session's, in constant time.
    pub fn csrf_matches(&self, submitted: &str) -> bool {
        match decode_random(submitted) {
            Some(bytes) => bool::from(bytes.ct_eq(&self.csrf)),
            None => false,
        }
    }
}

fn decode_random(text: &str) -> Option<[u8; RANDOM_LEN]> {
    // 32 bytes are 43 base64 characters; refuse anything longer before decoding.
    if text.len() > 44 {
        return None;
    }
    URL_SAFE_NO_PAD.decode(text).ok()?.try_into().ok()
}

/// The session in the jar, or a new one added to the jar. Pages that render a form call this,
/// so that the form's CSRF token has a session to match.
///
/// # Errors
///
/// [`AppError::Internal`] when a new session is needed and randomness fails.
pub fn ensure_session(jar: SignedCookieJar) -> Result<(SignedCookieJar, Session), AppError> {
    if let Some(session) = Session::from_jar(&jar) {
        return Ok((jar, session));
    }
    let session = Session::generate()?;
    Ok((jar.add(session.cookie()), session))
}

/// Removes the session cookie (sign-out).
pub fn end_session(jar: SignedCookieJar) -> SignedCookieJar {
    jar.remove(Cookie::build(SESSION_COOKIE).path("/"))
}

/// A form with no fields besides `csrf_token` (sign-out, finishing a recovery): any other
/// field is ignored.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NoFields {}

#[derive(Deserialize)]
struct CsrfField {
    csrf_token: Option<String>,
}

/// Extractor for a state-changing form: an `application/x-www-form-urlencoded` body whose
/// `csrf_token` field matches the session's token (constant-time), parsed into `T`.
///
/// `T` sees every field including `csrf_token`, so it must not use
/// `#[serde(deny_unknown_fields)]`. Never use this on the protocol endpoints (see the module
/// docs): their cross-site POSTs cannot carry the token.
#[derive(Debug)]
pub struct CsrfForm<T> {
    /// The session the token matched.
    pub session: Session,
    /// The parsed form.
    pub form: T,
}

impl<T: DeserializeOwned> FromRequest<AppState> for CsrfForm<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let is_form = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if !is_form {
            return Err(AppError::UnsupportedMediaType);
        }
        let jar = match SignedCookieJar::<Key>::from_request_parts(&mut parts, state).await {
            Ok(jar) => jar,
            Err(never) => match never {},
        };
        let req = Request::from_parts(parts, body);
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|r| bytes_rejection(&r))?;
        let field: CsrfField =
            serde_urlencoded::from_bytes(&bytes).map_err(|_| AppError::BadRequest {
                message: "the form body is malformed",
            })?;
        let submitted = field
            .csrf_token
            .ok_or(AppError::Csrf(CsrfError::TokenMissing))?;
        let session = Session::from_jar(&jar).ok_or(AppError::Csrf(CsrfError::SessionMissing))?;
        if !session.csrf_matches(&submitted) {
            return Err(AppError::Csrf(CsrfError::TokenMismatch));
        }
        let form = serde_urlencoded::from_bytes(&bytes).map_err(|_| AppError::BadRequest {
            message: "the form body is malformed or lacks a required field",
        })?;
        Ok(Self { session, form })
    }
}

// ---- Rate limiting -----------------------------------------------------------------------

/// The rate limiter's configuration (and its shared state).
pub type RateLimitConfig = GovernorConfig<ClientIpKey, NoOpMiddleware>;

/// Keys the rate limit by client address (see the module docs on proxies).
#[derive(Debug, Clone)]
pub struct ClientIpKey {
    trusted_proxies: Arc<[IpAddr]>,
}

impl ClientIpKey {
    /// A key extractor believing `X-Forwarded-For` only from these peers.
    pub fn new(trusted_proxies: &[IpAddr]) -> Self {
        Self {
            trusted_proxies: trusted_proxies.into(),
        }
    }

    /// The client address: the peer, or behind trusted proxies the right-most forwarded
    /// address that is not a trusted proxy.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusted_proxies.contains(&peer) {
            return peer;
        }
        let forwarded: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map_while(|s| s.trim().parse::<IpAddr>().ok())
            .collect();
        forwarded
            .iter()
            .rev()
            .find(|ip| !self.trusted_proxies.contains(ip))
            .copied()
            .unwrap_or(peer)
    }
}

impl KeyExtractor for ClientIpKey {
    type Key = IpAddr;

    fn extract<T>(&self, req: &axum::http::Request<T>) -> Result<Self::Key, GovernorError> {
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip())
            .ok_or(GovernorError::UnableToExtractKey)?;
        Ok(client_key(self.client_ip(peer, req.headers())))
    }
}

/// The key a client is limited under (requests per second, open connections): an IPv4
/// address as it is, an IPv6 address by its /64 prefix, since one host usually holds a whole
/// /64 and could otherwise take a fresh address for every request. IPv4-mapped IPv6
/// addresses count as their IPv4 address.
pub(crate) fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(
                u128::from(v6) & !u128::from(u64::MAX),
            )),
        },
    }
}

/// The rate limiter for these limits; `None` if they are out of range (the configuration
/// checker prevents that).
pub(crate) fn rate_limit_config(limits: &Limits) -> Option<RateLimitConfig> {
    let per_second = u64::from(limits.requests_per_second.max(1));
    let period = Duration::from_nanos(1_000_000_000 / per_second);
    GovernorConfigBuilder::default()
        .period(period)
        .burst_size(limits.burst)
        .key_extractor(ClientIpKey::new(&limits.trusted_proxies))
        .finish()
}

/// The rate-limiting layer: refusals are [`AppError::RateLimited`]. It needs the peer
/// address (`ConnectInfo<SocketAddr>`); without it every request fails with 500, loudly.
pub(crate) fn rate_limit_layer(
    config: Arc<RateLimitConfig>,
) -> GovernorLayer<ClientIpKey, NoOpMiddleware, Body> {
    GovernorLayer::new(config).error_handler(|error| match error {
        GovernorError::TooManyRequests { wait_time, .. } => AppError::RateLimited {
            retry_after_secs: wait_time.max(1),
        }
        .into_response(),
        GovernorError::UnableToExtractKey | GovernorError::Other { .. } => {
            AppError::internal("rate limiter", "no peer address on the request").into_response()
        }
    })
}

#[cfg(test)]
mod tests;
