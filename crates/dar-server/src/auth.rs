//! Web accounts: sign-up with TOTP enrolment, sign-in (password, then TOTP code), sign-out,
//! and the [`SignedInUser`] extractor the roles' pages use.
//!
//! # Sessions
//!
//! The signed session cookie ([`Session`]) carries a random id; the database keeps a row keyed
//! by the SHA-256 of that id (`dar_store::Store::create_session`), so a session can be revoked
//! on every instance ([`dar_store::Store::revoke_all_sessions`], "Sign out everywhere"). A new
//! session (new id, new CSRF token) starts at each sign-in and sign-up (session fixation,
//! §6.3.1.1). A session ends after [`SESSION_IDLE_SECS`] without use or [`SESSION_MAX_SECS`]
//! after it started. A session is *signed in* only once the second factor was verified in it.
//!
//! # Sign-in
//!
//! Password first (argon2id, verified on a blocking thread), then the TOTP code (RFC 6238,
//! SHA-1, 6 digits, 30 s, one step of skew; each time step is accepted once). Every failure
//! of the password step answers the same message, whether the username exists or not, and an
//! unknown username costs the same argon2 verification as a known one. Each factor has a
//! counter of consecutive failures in the database (NIST SP 800-63B §5.2.2): after
//! [`MAX_FAILURES`] the method stops (the password step then always fails with the generic
//! message; the code step says so, since the user has already proved the password). The
//! account itself is never locked: account recovery remains.
//!
//! Sign-up necessarily tells whether a username is taken; the sign-in page never does.
//!
//! # Account security
//!
//! Sign-up asks for a notification address, stored unverified, with a verification mail
//! (module `account_security`). An enrolled authenticator comes with a new set of recovery
//! codes, shown once on the page that confirms it (the old set is revoked). On an old account,
//! a newly enrolled authenticator is held for the policy's pause instead of activated, with a
//! cancel link to every verified address.
//! A sign-in with the existing second factor cancels the account's open recoveries.
//!
//! Every form carries the session's CSRF token ([`CsrfForm`]); every page is plain HTML with a
//! label on each input and no JavaScript.

use askama::Template;
use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::cookie::{Key, SignedCookieJar};
use dar_store::{Account, AccountId, Factor, SessionRecord, Store};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use utoipa::ToSchema;
use zeroize::Zeroizing;

use crate::account_security::{self, ClientAddress};
use crate::error::{AppError, AppQuery};
use crate::openapi::{FORM, HTML, TAG_ACCOUNTS};
use crate::security::{CsrfForm, NoFields, Session, end_session, ensure_session};
use crate::state::AppState;

/// The shortest password accepted at sign-up (characters).
pub const MIN_PASSWORD_LEN: usize = 12;
/// The longest password accepted (bytes): argon2 hashes anything, but the body stays small.
pub const MAX_PASSWORD_LEN: usize = 1024;
/// Consecutive failures of one sign-in method after which that method stops (NIST: ≤ 100).
pub const MAX_FAILURES: i64 = 100;
/// A session unused for this long (seconds) is over.
pub const SESSION_IDLE_SECS: i64 = 2 * 60 * 60;
/// A session this old (seconds) is over, used or not.
pub const SESSION_MAX_SECS: i64 = 12 * 60 * 60;
/// The body limit of the account forms: a password of [`MAX_PASSWORD_LEN`] bytes,
/// percent-encoded, plus the other fields.
pub const ACCOUNT_FORM_BODY_LIMIT: usize = 4 * MAX_PASSWORD_LEN;
/// Where a signed-in user lands when no page asked for the sign-in.
pub const DEFAULT_NEXT: &str = "/account";

/// The message of every failed password step (never says whether the username exists).
pub(crate) const SIGN_IN_FAILED: &str = "Incorrect username or password.";
const CODE_FAILED: &str = "That code is not correct. Check the time on your device and try again.";
const CODE_STOPPED: &str = "Too many incorrect codes: sign-in with this authenticator is stopped. \
     Use account recovery to regain access.";
/// Seconds between two updates of a session's last use.
const TOUCH_INTERVAL_SECS: i64 = 60;
/// A valid argon2id hash of a random password: verified against when the username is
/// unknown, so that an unknown username costs the same time as a wrong password.
/// Its parameters are [`dar_account_provider::lockout::argon2id`]'s, so it costs what a real
/// password's check costs.
const DUMMY_HASH: &str = "$argon2id$v=19$m=47104,t=1,p=1$wQQ9by2s+GR0mJH4iMLDTg$\
     XAdoIboK+X0s3EPDWGdroORgLAkli2lPfCNMT7OqWlU";

/// The account routes: `/`, `/signup`, `/signin`, `/signin/totp`, `/account`,
/// `/account/totp`, `/signout`, `/signout/everywhere`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/signup", get(sign_up_page).post(sign_up))
        .route("/signin", get(sign_in_page).post(sign_in))
        .route("/signin/totp", get(totp_page).post(totp_submit))
        .route("/account", get(account_page))
        .route("/account/totp", get(enrol_page).post(enrol_submit))
        .route("/signout", post(sign_out))
        .route("/signout/everywhere", post(sign_out_everywhere))
        .layer(DefaultBodyLimit::max(ACCOUNT_FORM_BODY_LIMIT))
}

// ---- Extractors ----------------------------------------------------------------------------

/// A user signed in with both factors in a live session. Pages that need one take this
/// extractor; without it the browser is sent to the sign-in page, which comes back here.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SignedInUser {
    /// The account.
    pub account: AccountId,
    /// The username.
    pub username: String,
    /// The session (its CSRF token goes into the page's forms).
    pub session: Session,
    /// When this session signed in (its password step, which the second factor follows),
    /// Unix seconds: pages for high-risk actions ask for a recent one.
    pub signed_in_at: i64,
}

impl FromRequestParts<AppState> for SignedInUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match current(parts, state).await {
            Ok(Some(c)) if c.record.second_factor_ok => Ok(Self {
                account: c.account.id,
                username: c.account.username,
                session: c.session,
                signed_in_at: c.record.created_at,
            }),
            Ok(_) => Err(redirect_to_sign_in(parts).into_response()),
            Err(e) => Err(e.into_response()),
        }
    }
}

/// A session whose password step succeeded; the second factor may still be pending. Only the
/// TOTP pages use it.
type PendingUser = Current;

impl FromRequestParts<AppState> for Current {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match current(parts, state).await {
            Ok(Some(c)) => Ok(c),
            Ok(None) => Err(redirect_to_sign_in(parts).into_response()),
            Err(e) => Err(e.into_response()),
        }
    }
}

/// The signed-in session of a request and its account.
struct Current {
    account: Account,
    record: SessionRecord,
    session: Session,
}

/// The live session of the request's cookie, with its account; `None` when there is no
/// cookie, no such session, or it expired (then it is revoked).
async fn current(parts: &mut Parts, state: &AppState) -> Result<Option<Current>, AppError> {
    let jar = match SignedCookieJar::<Key>::from_request_parts(parts, state).await {
        Ok(jar) => jar,
        Err(never) => match never {},
    };
    let Some(session) = Session::from_jar(&jar) else {
        return Ok(None);
    };
    let store = store(state)?;
    let hash = session_hash(&session);
    let Some(record) = store.session(&hash).await? else {
        return Ok(None);
    };
    let now = now(state);
    if now - record.last_seen > SESSION_IDLE_SECS || now - record.created_at > SESSION_MAX_SECS {
        store.revoke_session(&hash).await?;
        return Ok(None);
    }
    let Some(account) = store.account(record.account).await? else {
        return Ok(None);
    };
    if now - record.last_seen > TOUCH_INTERVAL_SECS {
        store.touch_session(&hash, now).await?;
    }
    Ok(Some(Current {
        account,
        record,
        session,
    }))
}

/// To the sign-in page, coming back to this page after (GET only: a form cannot be replayed).
fn redirect_to_sign_in(parts: &Parts) -> Redirect {
    let next = if parts.method == axum::http::Method::GET {
        parts
            .uri
            .path_and_query()
            .map_or(DEFAULT_NEXT, |p| p.as_str())
    } else {
        DEFAULT_NEXT
    };
    Redirect::to(&with_next("/signin", next))
}

// ---- Helpers (no HTTP) -----------------------------------------------------------------------

/// The database, or 503 when the deployment runs without one.
pub(crate) fn store(state: &AppState) -> Result<&Store, AppError> {
    state.store().ok_or(AppError::NotConfigured {
        what: "account storage",
    })
}

/// The state's clock in Unix seconds, the unit of the account tables.
pub(crate) fn now(state: &AppState) -> i64 {
    state.now().unix_timestamp()
}

/// The key of a session's row: hex SHA-256 of its id, so the table holds no usable ids.
pub(crate) fn session_hash(session: &Session) -> String {
    hash_hex(session.id_hex().as_bytes())
}

/// `next` if it is a path on this origin, else [`DEFAULT_NEXT`] (no open redirect).
pub(crate) fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && n.len() <= 512
                && !n.contains('\\')
                && !n.chars().any(char::is_control) =>
        {
            n.to_owned()
        }
        _ => DEFAULT_NEXT.to_owned(),
    }
}

/// `path?next=...`, encoded.
pub(crate) fn with_next(path: &str, next: &str) -> String {
    match serde_urlencoded::to_string([("next", next)]) {
        Ok(query) => format!("{path}?{query}"),
        Err(_) => path.to_owned(),
    }
}

/// A username as stored: trimmed and lower-cased; `None` unless 3 to 64 characters of
/// `a-z 0-9 . _ -` (also keeps `:` out of the TOTP URI).
pub(crate) fn normalize_username(raw: &str) -> Option<String> {
    let name = raw.trim().to_ascii_lowercase();
    let ok = (3..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    ok.then_some(name)
}

async fn hash_password(password: Zeroizing<String>) -> Result<String, AppError> {
    use argon2::password_hash::PasswordHasher as _;
    crate::hashing::run("password hashing task", move || {
        dar_account_provider::lockout::argon2id()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| AppError::internal("password hashing", e.to_string()))
    })
    .await?
}

/// Whether `password` matches `hash`; with no hash, verifies against [`DUMMY_HASH`] and
/// answers `false`, taking the same time.
async fn verify_password(
    password: Zeroizing<String>,
    hash: Option<String>,
) -> Result<bool, AppError> {
    use argon2::password_hash::PasswordVerifier as _;
    use argon2::password_hash::phc::PasswordHash;
    crate::hashing::run("password verification task", move || {
        let real = hash.is_some();
        let text = hash.unwrap_or_else(|| DUMMY_HASH.to_owned());
        let parsed = PasswordHash::new(&text)
            .map_err(|e| AppError::internal("stored password hash", e.to_string()))?;
        let matches = dar_account_provider::lockout::argon2id()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        Ok(real && matches)
    })
    .await?
}

/// The account whose username and password these are, counting a wrong password against the
/// method's failure limit like the sign-in page (same time and answer for an unknown name).
///
/// # Errors
///
/// [`AppError`] when the database or the hashing task fails.
pub(crate) async fn check_password(
    state: &AppState,
    username: &str,
    password: Zeroizing<String>,
) -> Result<Option<AccountId>, AppError> {
    let store = store(state)?;
    let account = match normalize_username(username) {
        Some(name) => store.account_by_username(&name).await?,
        None => None,
    };
    password_matches(store, account, password).await
}

/// Whether `password` is `account`'s, counted like [`check_password`].
///
/// # Errors
///
/// [`AppError`] when the database or the hashing task fails.
pub(crate) async fn check_account_password(
    state: &AppState,
    account: AccountId,
    password: Zeroizing<String>,
) -> Result<bool, AppError> {
    let store = store(state)?;
    let account = store.account(account).await?;
    Ok(password_matches(store, account, password).await?.is_some())
}

async fn password_matches(
    store: &Store,
    account: Option<Account>,
    password: Zeroizing<String>,
) -> Result<Option<AccountId>, AppError> {
    // A stopped method, or a password longer than any that can be set, is verified against
    // the dummy hash: same time, same answer, and argon2 never hashes more than
    // MAX_PASSWORD_LEN bytes.
    let too_long = password.len() > MAX_PASSWORD_LEN;
    let password = if too_long {
        Zeroizing::new(String::new())
    } else {
        password
    };
    let usable = account
        .as_ref()
        .filter(|a| a.password_failures < MAX_FAILURES && !too_long);
    let matches = verify_password(password, usable.map(|a| a.password_hash.clone())).await?;
    match (account, matches) {
        (Some(account), true) => {
            store.reset_failures(account.id, Factor::Password).await?;
            Ok(Some(account.id))
        }
        (account, _) => {
            if let Some(a) = account.filter(|a| a.password_failures < MAX_FAILURES) {
                let failures = store.record_failure(a.id, Factor::Password).await?;
                if failures >= MAX_FAILURES {
                    tracing::warn!(account = %a.id, "password stopped after too many failures");
                }
            }
            Ok(None)
        }
    }
}

/// A fresh 160-bit TOTP secret (RFC 4226 §4), base32.
fn new_totp_secret() -> Result<Zeroizing<String>, AppError> {
    let mut bytes = Zeroizing::new([0u8; 20]);
    getrandom::fill(&mut bytes[..])
        .map_err(|e| AppError::internal("random number generator", e.to_string()))?;
    Ok(Zeroizing::new(
        totp_rs::Secret::new_stack(*bytes).to_base32(),
    ))
}

fn totp(secret_base32: &str, username: &str, issuer: &str) -> Result<totp_rs::Totp, AppError> {
    let secret = totp_rs::Secret::try_from_base32(secret_base32)
        .map_err(|_| AppError::internal("stored TOTP secret", "not base32"))?;
    totp_rs::Builder::new()
        .with_secret(secret)
        .with_account_name(username)
        .with_issuer(Some(issuer))
        .build()
        .map_err(|e| AppError::internal("TOTP parameters", e.to_string()))
}

/// The issuer shown in authenticator apps: the public origin's host (no port: `:` is not
/// allowed there).
fn totp_issuer(state: &AppState) -> String {
    let origin = state.public_origin().as_str();
    let host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    host.split(':').next().unwrap_or(host).to_owned()
}

/// The time step a submitted code matches now, if any.
fn check_code(totp: &totp_rs::Totp, code: &str, now: i64) -> Option<i64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = u64::try_from(now).ok()?;
    totp.check(&code, now)
        .and_then(|step| i64::try_from(step).ok())
}

/// Starts a new session for `account` (new id and CSRF token) and records it.
async fn start_session(
    store: &Store,
    jar: SignedCookieJar,
    account: AccountId,
    now: i64,
) -> Result<SignedCookieJar, AppError> {
    if let Some(old) = Session::from_jar(&jar) {
        store.revoke_session(&session_hash(&old)).await?;
    }
    let session = Session::generate()?;
    store
        .create_session(&session_hash(&session), account, false, now)
        .await?;
    Ok(jar.add(session.cookie()))
}

/// Parks a cross-site request's body (see `dar_store::Store::park_request`) for `secs`;
/// returns the random id for the same-origin page's URL (only its hash is stored).
pub(crate) async fn park(
    state: &AppState,
    kind: &str,
    payload: &str,
    secs: i64,
) -> Result<String, AppError> {
    let (id, key_hash) = new_parked_id()?;
    let now = now(state);
    store(state)?
        .park_request(&key_hash, kind, payload, now, now + secs)
        .await?;
    Ok(id)
}

/// A fresh id for a parked request (random, from the OS) and the hash it is stored under.
pub(crate) fn new_parked_id() -> Result<(String, String), AppError> {
    let id = Session::generate()?.csrf_token();
    let key_hash = hash_hex(id.as_bytes());
    Ok((id, key_hash))
}

/// Takes a parked request by the id in the page's URL, once.
pub(crate) async fn take_parked(
    state: &AppState,
    kind: &str,
    id: &str,
) -> Result<Option<String>, AppError> {
    if id.len() > 64 {
        return Ok(None);
    }
    Ok(store(state)?
        .take_parked_request(&hash_hex(id.as_bytes()), kind, now(state))
        .await?)
}

/// The parked request id from a page's query (`?id=`): in the query, not the path, so that it
/// never reaches the request log (which logs paths only).
///
/// # Errors
///
/// [`AppError::NotFound`] without one.
pub(crate) fn parked_id(query: Option<&str>) -> Result<String, AppError> {
    #[derive(Deserialize)]
    struct IdQuery {
        id: String,
    }
    serde_urlencoded::from_str::<IdQuery>(query.unwrap_or(""))
        .map(|q| q.id)
        .map_err(|_| AppError::NotFound)
}

/// Reads a parked request by the id in the page's URL, leaving it parked.
pub(crate) async fn peek_parked(
    state: &AppState,
    kind: &str,
    id: &str,
) -> Result<Option<String>, AppError> {
    if id.len() > 64 {
        return Ok(None);
    }
    Ok(store(state)?
        .peek_parked_request(&hash_hex(id.as_bytes()), kind, now(state))
        .await?)
}

/// Hex SHA-256: how session ids, parked ids and link tokens are stored.
pub(crate) fn hash_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Renders a page.
pub(crate) fn render<T: Template>(status: StatusCode, page: &T) -> Result<Response, AppError> {
    let html = page
        .render()
        .map_err(|e| AppError::internal("template", e.to_string()))?;
    Ok((status, Html(html)).into_response())
}

// ---- Pages -------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage<'a> {
    error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "signup.html")]
struct SignUpPage<'a> {
    error: Option<&'a str>,
    csrf_token: String,
}

#[derive(Template)]
#[template(path = "signin.html")]
struct SignInPage<'a> {
    error: Option<&'a str>,
    csrf_token: String,
    next: String,
}

#[derive(Template)]
#[template(path = "totp.html")]
struct TotpPage<'a> {
    error: Option<&'a str>,
    csrf_token: String,
    next: String,
}

#[derive(Template)]
#[template(path = "totp_enrol.html")]
struct EnrolPage<'a> {
    error: Option<&'a str>,
    csrf_token: String,
    next: String,
    otpauth_uri: Zeroizing<String>,
    secret: &'a str,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage<'a> {
    error: Option<&'a str>,
    csrf_token: String,
    username: &'a str,
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

#[derive(Deserialize, ToSchema)]
struct SignUpForm {
    username: String,
    password: String,
    email: String,
}

#[derive(Deserialize, ToSchema)]
struct SignInForm {
    username: String,
    password: String,
    next: Option<String>,
}

#[derive(Deserialize, ToSchema)]
struct CodeForm {
    code: String,
    next: Option<String>,
}

#[utoipa::path(
    get, path = "/", tag = TAG_ACCOUNTS,
    summary = "Home page",
    responses((status = 200, description = "The home page.", content_type = HTML, body = String)),
)]
async fn home() -> Result<Response, AppError> {
    render(StatusCode::OK, &HomePage { error: None })
}

#[utoipa::path(
    get, path = "/signup", tag = TAG_ACCOUNTS,
    summary = "Sign-up form",
    responses(
        (
            status = 200,
            description = "The sign-up form (starts a session cookie for its CSRF token).",
            content_type = HTML,
            body = String,
        ),
    ),
)]
async fn sign_up_page(jar: SignedCookieJar) -> Result<Response, AppError> {
    let (jar, session) = ensure_session(jar)?;
    let page = SignUpPage {
        error: None,
        csrf_token: session.csrf_token(),
    };
    Ok((jar, render(StatusCode::OK, &page)?).into_response())
}

#[utoipa::path(
    post, path = "/signup", tag = TAG_ACCOUNTS,
    summary = "Sign up",
    request_body(content = SignUpForm, content_type = FORM),
    responses(
        (
            status = 303,
            description = "Account created and signed in with the password: to `/account/totp`.",
            headers(("Location" = String)),
        ),
        (
            status = 400,
            description = "The username, password or address is not acceptable (the form again).",
        ),
        (status = 409, description = "The username cannot be used (the form again)."),
    ),
)]
async fn sign_up(
    State(state): State<AppState>,
    jar: SignedCookieJar,
    ClientAddress(source): ClientAddress,
    CsrfForm { session, form }: CsrfForm<SignUpForm>,
) -> Result<Response, AppError> {
    let store = store(&state)?;
    let password = Zeroizing::new(form.password);
    let refuse = |status, message| {
        render(
            status,
            &SignUpPage {
                error: Some(message),
                csrf_token: session.csrf_token(),
            },
        )
    };
    let Some(username) = normalize_username(&form.username) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "Choose a username of 3 to 64 characters: lower-case letters, digits, '.', '_' or '-'.",
        );
    };
    if password.chars().count() < MIN_PASSWORD_LEN || password.len() > MAX_PASSWORD_LEN {
        return refuse(
            StatusCode::BAD_REQUEST,
            "Choose a password of at least 12 characters (and at most 1024 bytes).",
        );
    }
    let Some(email) = account_security::normalize_email(&form.email) else {
        return refuse(StatusCode::BAD_REQUEST, account_security::ADDRESS_INVALID);
    };
    let hash = hash_password(password).await?;
    let Some(account) = store.create_account(&username, &hash, now(&state)).await? else {
        return refuse(
            StatusCode::CONFLICT,
            "This username cannot be used. Choose another.",
        );
    };
    let secret = new_totp_secret()?;
    store.set_totp_secret(account, &secret).await?;
    if let Some(created) = store.account(account).await? {
        account_security::add_address(&state, &created, &email, source).await?;
    }
    let jar = start_session(store, jar, account, now(&state)).await?;
    Ok((jar, Redirect::to("/account/totp")).into_response())
}

#[utoipa::path(
    get,
    path = "/signin",
    tag = TAG_ACCOUNTS,
    params(
        (
            "next" = Option<String>,
            Query,
            description = "Where to go after signing in (a path on this site).",
        ),
    ),
    summary = "Sign-in form",
    responses(
        (status = 200, description = "The sign-in form.", content_type = HTML, body = String),
        (status = 400, description = "The query is malformed."),
    ),
)]
async fn sign_in_page(
    jar: SignedCookieJar,
    AppQuery(query): AppQuery<NextQuery>,
) -> Result<Response, AppError> {
    let (jar, session) = ensure_session(jar)?;
    let page = SignInPage {
        error: None,
        csrf_token: session.csrf_token(),
        next: safe_next(query.next.as_deref()),
    };
    Ok((jar, render(StatusCode::OK, &page)?).into_response())
}

#[utoipa::path(
    post, path = "/signin", tag = TAG_ACCOUNTS,
    summary = "Sign in: the password step",
    request_body(content = SignInForm, content_type = FORM),
    responses(
        (
            status = 303,
            description = "Password accepted: to the code step (or to enrolment).",
            headers(("Location" = String)),
        ),
        (
            status = 401,
            description = "Incorrect username or password (the form again; never says which).",
        ),
    ),
)]
async fn sign_in(
    State(state): State<AppState>,
    jar: SignedCookieJar,
    CsrfForm { session, form }: CsrfForm<SignInForm>,
) -> Result<Response, AppError> {
    let store = store(&state)?;
    let next = safe_next(form.next.as_deref());
    let password = Zeroizing::new(form.password);
    let Some(account) = check_password(&state, &form.username, password).await? else {
        let page = SignInPage {
            error: Some(SIGN_IN_FAILED),
            csrf_token: session.csrf_token(),
            next,
        };
        return render(StatusCode::UNAUTHORIZED, &page);
    };
    let account = store.account(account).await?.ok_or(AppError::NotFound)?;
    let jar = start_session(store, jar, account.id, now(&state)).await?;
    let to = if account.totp_confirmed {
        with_next("/signin/totp", &next)
    } else {
        with_next("/account/totp", &next)
    };
    Ok((jar, Redirect::to(&to)).into_response())
}

#[utoipa::path(
    get,
    path = "/signin/totp",
    tag = TAG_ACCOUNTS,
    params(
        (
            "next" = Option<String>,
            Query,
            description = "Where to go after signing in (a path on this site).",
        ),
    ),
    summary = "Sign-in: the code form",
    responses(
        (status = 200, description = "The code form.", content_type = HTML, body = String),
        (
            status = 303,
            description = "No password step in this session: to `/signin`; no authenticator yet: \
                to enrolment; already signed in: to `next`.",
            headers(("Location" = String)),
        ),
        (status = 400, description = "The query is malformed."),
    ),
)]
async fn totp_page(
    user: PendingUser,
    AppQuery(query): AppQuery<NextQuery>,
) -> Result<Response, AppError> {
    let next = safe_next(query.next.as_deref());
    if !user.account.totp_confirmed {
        return Ok(Redirect::to(&with_next("/account/totp", &next)).into_response());
    }
    if user.record.second_factor_ok {
        return Ok(Redirect::to(&next).into_response());
    }
    let page = TotpPage {
        error: None,
        csrf_token: user.session.csrf_token(),
        next,
    };
    render(StatusCode::OK, &page)
}

#[utoipa::path(
    post, path = "/signin/totp", tag = TAG_ACCOUNTS,
    summary = "Sign in: the code step",
    request_body(content = CodeForm, content_type = FORM),
    responses(
        (
            status = 303,
            description = "Code accepted: to `next`; or no password step: to `/signin`.",
            headers(("Location" = String)),
        ),
        (status = 401, description = "The code is not correct (the form again)."),
        (status = 429, description = "Too many incorrect codes: this authenticator is stopped."),
    ),
)]
async fn totp_submit(
    State(state): State<AppState>,
    user: PendingUser,
    ClientAddress(source): ClientAddress,
    CsrfForm { form, .. }: CsrfForm<CodeForm>,
) -> Result<Response, AppError> {
    let store = store(&state)?;
    let next = safe_next(form.next.as_deref());
    let account = &user.account;
    let (Some(secret), true) = (&account.totp_secret, account.totp_confirmed) else {
        return Ok(Redirect::to(&with_next("/account/totp", &next)).into_response());
    };
    let refuse = |status, message| {
        render(
            status,
            &TotpPage {
                error: Some(message),
                csrf_token: user.session.csrf_token(),
                next: next.clone(),
            },
        )
    };
    if account.totp_failures >= MAX_FAILURES {
        return refuse(StatusCode::TOO_MANY_REQUESTS, CODE_STOPPED);
    }
    let totp = totp(secret, &account.username, &totp_issuer(&state))?;
    let accepted = match check_code(&totp, &form.code, now(&state)) {
        Some(step) => store.accept_totp_step(account.id, step).await?,
        None => false,
    };
    if !accepted {
        let failures = store.record_failure(account.id, Factor::Totp).await?;
        if failures >= MAX_FAILURES {
            tracing::warn!(account = %account.id, "TOTP sign-in stopped after too many failures");
            return refuse(StatusCode::TOO_MANY_REQUESTS, CODE_STOPPED);
        }
        return refuse(StatusCode::UNAUTHORIZED, CODE_FAILED);
    }
    store
        .set_second_factor_ok(&session_hash(&user.session), now(&state))
        .await?;
    account_security::end_recoveries_on_sign_in(&state, account, source).await?;
    Ok(Redirect::to(&next).into_response())
}

#[utoipa::path(
    get,
    path = "/account/totp",
    tag = TAG_ACCOUNTS,
    params(
        (
            "next" = Option<String>,
            Query,
            description = "Where to go after signing in (a path on this site).",
        ),
    ),
    summary = "Authenticator enrolment page",
    responses(
        (
            status = 200,
            description = "The enrolment page, or the notice that a new authenticator is held.",
            content_type = HTML,
            body = String,
        ),
        (
            status = 303,
            description = "No password step: to `/signin`; enrolled already: to the code step.",
            headers(("Location" = String)),
        ),
        (status = 400, description = "The query is malformed."),
    ),
)]
async fn enrol_page(
    State(state): State<AppState>,
    user: PendingUser,
    AppQuery(query): AppQuery<NextQuery>,
) -> Result<Response, AppError> {
    let next = safe_next(query.next.as_deref());
    let account = &user.account;
    if account.totp_confirmed {
        return Ok(Redirect::to(&with_next("/signin/totp", &next)).into_response());
    }
    if let Some(held) = store(&state)?.pending_factor(account.id).await? {
        return account_security::held_page(held.effective_at);
    }
    let secret = match &account.totp_secret {
        Some(secret) => Zeroizing::new(secret.clone()),
        None => {
            let secret = new_totp_secret()?;
            store(&state)?.set_totp_secret(account.id, &secret).await?;
            secret
        }
    };
    let totp = totp(&secret, &account.username, &totp_issuer(&state))?;
    let uri = totp
        .to_url()
        .map_err(|e| AppError::internal("TOTP URI", e.to_string()))?;
    let page = EnrolPage {
        error: None,
        csrf_token: user.session.csrf_token(),
        next,
        otpauth_uri: Zeroizing::new(uri),
        secret: &secret,
    };
    render(StatusCode::OK, &page)
}

#[utoipa::path(
    post, path = "/account/totp", tag = TAG_ACCOUNTS,
    summary = "Enrol an authenticator",
    request_body(content = CodeForm, content_type = FORM),
    responses(
        (
            status = 200,
            description = "Enrolled: the account's new recovery codes, shown once \
                           (`Cache-Control: no-store`), with a link on to `next`.",
            content_type = HTML,
            body = String,
        ),
        (
            status = 202,
            description = "The new authenticator is held for the policy's pause.",
            content_type = HTML,
            body = String,
        ),
        (
            status = 303,
            description = "Already enrolled: to the code step; no secret yet: to the \
                           enrolment page; no password step: to `/signin`.",
            headers(("Location" = String)),
        ),
        (status = 401, description = "The code is not correct (the enrolment page again)."),
    ),
)]
async fn enrol_submit(
    State(state): State<AppState>,
    user: PendingUser,
    ClientAddress(source): ClientAddress,
    CsrfForm { form, .. }: CsrfForm<CodeForm>,
) -> Result<Response, AppError> {
    let store = store(&state)?;
    let next = safe_next(form.next.as_deref());
    let account = &user.account;
    if account.totp_confirmed {
        return Ok(Redirect::to(&with_next("/signin/totp", &next)).into_response());
    }
    let Some(secret) = &account.totp_secret else {
        return Ok(Redirect::to(&with_next("/account/totp", &next)).into_response());
    };
    let totp = totp(secret, &account.username, &totp_issuer(&state))?;
    let accepted = match check_code(&totp, &form.code, now(&state)) {
        Some(step) => {
            // An old account's new factor waits, so a stolen password cannot lock the owner
            // out: held, it is not confirmed here.
            if let Some(held) =
                account_security::hold_new_factor(&state, account, secret, source).await?
            {
                return Ok(held);
            }
            store.accept_totp_step(account.id, step).await?
        }
        None => false,
    };
    if !accepted {
        store.record_failure(account.id, Factor::Totp).await?;
        let uri = totp
            .to_url()
            .map_err(|e| AppError::internal("TOTP URI", e.to_string()))?;
        let page = EnrolPage {
            error: Some(CODE_FAILED),
            csrf_token: user.session.csrf_token(),
            next,
            otpauth_uri: Zeroizing::new(uri),
            secret,
        };
        return render(StatusCode::UNAUTHORIZED, &page);
    }
    store
        .set_second_factor_ok(&session_hash(&user.session), now(&state))
        .await?;
    // A new second factor comes with a new set of recovery codes (the old set, if any, is
    // revoked): shown once, then on to where the user was going.
    account_security::issue_recovery_codes(
        &state,
        account.id,
        &account.username,
        source,
        account_security::CodesNext::Continue(&next),
    )
    .await
}

#[utoipa::path(
    get, path = "/account", tag = TAG_ACCOUNTS,
    summary = "Account page",
    responses(
        (status = 200, description = "The account page.", content_type = HTML, body = String),
        (
            status = 303,
            description = "Not signed in with both factors: to `/signin`.",
            headers(("Location" = String)),
        ),
    ),
)]
async fn account_page(user: SignedInUser) -> Result<Response, AppError> {
    let page = AccountPage {
        error: None,
        csrf_token: user.session.csrf_token(),
        username: &user.username,
    };
    render(StatusCode::OK, &page)
}

#[utoipa::path(
    post, path = "/signout", tag = TAG_ACCOUNTS,
    summary = "Sign out",
    request_body(content = NoFields, content_type = FORM),
    responses((status = 303, description = "Signed out: to `/`.", headers(("Location" = String)))),
)]
async fn sign_out(
    State(state): State<AppState>,
    jar: SignedCookieJar,
    CsrfForm { session, .. }: CsrfForm<NoFields>,
) -> Result<Response, AppError> {
    store(&state)?
        .revoke_session(&session_hash(&session))
        .await?;
    Ok((end_session(jar), Redirect::to("/")).into_response())
}

#[utoipa::path(
    post, path = "/signout/everywhere", tag = TAG_ACCOUNTS,
    summary = "Sign out every session",
    request_body(content = NoFields, content_type = FORM),
    responses(
        (
            status = 303,
            description = "Every session of the account ended: to `/signin`; not signed in: to \
                `/signin` too.",
            headers(("Location" = String)),
        ),
    ),
)]
async fn sign_out_everywhere(
    State(state): State<AppState>,
    jar: SignedCookieJar,
    user: SignedInUser,
    CsrfForm { .. }: CsrfForm<NoFields>,
) -> Result<Response, AppError> {
    store(&state)?.revoke_all_sessions(user.account).await?;
    Ok((end_session(jar), Redirect::to("/signin")).into_response())
}

#[cfg(test)]
pub(crate) mod tests;
