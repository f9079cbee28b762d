//! The account's security pages: notification addresses, recovery codes, trusted contacts,
//! approvals of other accounts' recoveries, the security history, and the pause before a new
//! second factor takes effect on an old account (issue 6, spec/lockout-policy.md).
//!
//! - `GET /account/security` (signed in): the addresses (add one, resend a verification),
//!   how many unused recovery codes remain (generate a new set, which revokes the old one),
//!   the trusted contacts (add by username, remove; each shows when it becomes usable), and
//!   the last 50 audit events of the account, newest first.
//! - `GET|POST /account/email/verify?id=...`: the link mailed to a new address. The GET
//!   (signed in as the address's owner) shows a button; only the POST marks the address
//!   verified, so a mail scanner that follows links verifies nothing. The link is a parked
//!   request ([`crate::auth::park`]): random, stored hashed, 24 hours, single use.
//! - `POST /account/recovery-codes`: a new set of codes, shown once on a `no-store` page;
//!   the store keeps only their argon2id hashes (computed on a blocking thread).
//! - `GET /account/approvals`, `POST /account/approvals/approve`: a signed-in user sees the
//!   open recoveries of the accounts that named them as a trusted contact and approves one,
//!   once their cooldown since being named has passed.
//! - `GET|POST /account/factor/cancel?c=...`: the link mailed when a new second factor is held
//!   ([`hold_new_factor`]). No sign-in: the link is the credential. The GET only shows a
//!   button; the POST cancels the held factor, once.
//!
//! # What the pages reveal
//!
//! Adding a trusted contact says whether a username exists. Sign-up already says so (a taken
//! username is refused), so a signed-in user learns nothing new; no page says anything about
//! another account beyond that, and the approvals page lists only accounts that named the
//! viewer.
//!
//! # Notices
//!
//! Every change is announced to all verified addresses of the account it concerns
//! ([`crate::notify`]), and audited, in the same transaction as the change where the store
//! offers it. A trusted contact's approval is the exception: the store records the evidence
//! and its audit row together, and the notice to the owner is queued right after.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

use askama::Template;
use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::cookie::SignedCookieJar;
use dar_account_provider::LockoutPolicy;
use dar_account_provider::lockout::codes::{RecoveryCodes, generate_recovery_codes};
use dar_store::{Account, AccountId, EvidenceKind, NewEvidence, RecoveryId, RecoveryState, Store};
use serde::Deserialize;
use time::{Duration, OffsetDateTime};
use utoipa::ToSchema;

use crate::auth::{
    SignedInUser, hash_hex, normalize_username, now, park, parked_id, peek_parked, render, store,
    take_parked,
};
use crate::error::{AppError, AppQuery};
use crate::notify::{audit, to_all, verified_addresses};
use crate::openapi::{FORM, HTML, TAG_ACCOUNTS};
use crate::security::{ClientIpKey, CsrfForm, NoFields, ensure_session};
use crate::state::AppState;

/// How long a verification link works (seconds): a day, so that a user who reads mail once a
/// day still can.
pub(crate) const VERIFY_EMAIL_SECS: i64 = 24 * 60 * 60;
/// The parked-request kind of a verification link.
const PARK_VERIFY_EMAIL: &str = "verify-email";
/// Notification addresses per account: at least two (NIST), few enough that an account cannot
/// be used to send mail to many strangers.
pub(crate) const MAX_EMAILS: usize = 5;
/// Trusted contacts per account: k of n needs a few; more only widens the social attack.
pub(crate) const MAX_CONTACTS: usize = 10;
/// The longest address accepted (RFC 5321's path limit).
const MAX_EMAIL_LEN: usize = 254;
/// Re-enrolling within this time after a recovery unlocked the account is expected (the user
/// must set up a new factor) and was already notified: no pause.
const RECENT_UNLOCK_SECS: i64 = 7 * 24 * 60 * 60;
/// Audit events shown on the security page.
const HISTORY_LEN: u32 = 50;
/// Recoveries per trusting account shown on the approvals page.
const RECOVERIES_PER_OWNER: u32 = 5;

/// The security routes (see the module docs).
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/account/security", get(security_page))
        .route("/account/email/add", post(add_email))
        .route("/account/email/resend", post(resend_verification))
        .route("/account/email/verify", get(verify_page).post(verify))
        .route("/account/recovery-codes", post(generate_codes))
        .route("/account/contacts/add", post(add_contact))
        .route("/account/contacts/remove", post(remove_contact))
        .route("/account/approvals", get(approvals_page))
        .route("/account/approvals/approve", post(approve))
        .route(
            "/account/factor/cancel",
            get(cancel_page).post(cancel_factor),
        )
        .layer(DefaultBodyLimit::max(crate::auth::ACCOUNT_FORM_BODY_LIMIT))
}

// ---- Helpers -------------------------------------------------------------------------------

/// The client address of a request, for audit rows: the TCP peer, or behind a trusted proxy
/// the address it saw (as the rate limiter keys it); `None` without a peer address.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientAddress(pub(crate) Option<IpAddr>);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        let key = ClientIpKey::new(&state.limits().trusted_proxies);
        Ok(Self(peer.map(|p| key.client_ip(p, &parts.headers))))
    }
}

/// The deployment's lockout policy (the defaults when it does not play the account provider).
fn policy(state: &AppState) -> LockoutPolicy {
    state
        .roles()
        .account_provider
        .as_ref()
        .map_or_else(LockoutPolicy::default, |ap| ap.settings.lockout.clone())
}

fn datetime(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// 128 random bits from the OS, as hex: a cancel link's token.
pub(crate) fn random_token() -> Result<String, AppError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| AppError::internal("random number generator", e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// An address as stored (trimmed, domain lower-cased), or `None` when it does not look like
/// one: one `@` with text on both sides, a dot in the domain, at most 254 bytes, and no
/// spaces, control characters or characters that would break a mail header.
pub(crate) fn normalize_email(raw: &str) -> Option<String> {
    let address = raw.trim();
    let (local, domain) = address.split_once('@')?;
    let ok = address.len() <= MAX_EMAIL_LEN
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !address
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>()[],;:\"\\".contains(c));
    ok.then(|| format!("{local}@{}", domain.to_ascii_lowercase()))
}

/// Adds an unverified address to `account` and queues the verification mail to it (with a
/// parked, single-use link), plus a notice to the already verified addresses; `None` when the
/// account already has the address.
pub(crate) async fn add_address(
    state: &AppState,
    account: &Account,
    address: &str,
    source: Option<IpAddr>,
) -> Result<Option<dar_store::EmailId>, AppError> {
    let store = store(state)?;
    let site = state.site_name();
    let mut mails = to_all(
        &site,
        &verified_addresses(store, account.id).await?,
        "A notification address was added",
        &format!(
            "The address {address} was added to your account \"{}\". Security notices \
             will go there too once it is confirmed.\r\n\r\nIf this was not you, sign in, \
             generate new recovery codes and review your trusted contacts at {}/account/security.",
            account.username,
            state.public_origin()
        ),
    );
    mails.extend(verification_mail(state, account, address).await?);
    let entry = audit(account.id, "user", "email.added", address, source);
    Ok(store
        .add_email(account.id, address, now(state), &mails, &[entry])
        .await?)
}

/// The verification mail to `address`, with a fresh link.
async fn verification_mail(
    state: &AppState,
    account: &Account,
    address: &str,
) -> Result<Vec<dar_store::NewMail>, AppError> {
    let payload = format!("{}\n{address}", account.id.0);
    let id = park(state, PARK_VERIFY_EMAIL, &payload, VERIFY_EMAIL_SECS).await?;
    let query = serde_urlencoded::to_string([("id", id.as_str())])
        .map_err(|e| AppError::internal("verification link", e.to_string()))?;
    Ok(to_all(
        &state.site_name(),
        &[address.to_owned()],
        "Confirm your notification address",
        &format!(
            "This address was given for security notices of the account \"{}\". To confirm \
             that you read mail here, sign in and open this link (it works once, for 24 \
             hours):\r\n\r\n{}/account/email/verify?{query}\r\n\r\nIf this was not you, \
             ignore this message: an unconfirmed address receives no security notices.",
            account.username,
            state.public_origin()
        ),
    ))
}

/// The account of a signed-in user.
async fn account_of(store: &Store, user: &SignedInUser) -> Result<Account, AppError> {
    store.account(user.account).await?.ok_or(AppError::NotFound)
}

// ---- The security page ---------------------------------------------------------------------

struct AddressRow {
    id: i64,
    address: String,
    verified: Option<String>,
}

struct ContactRow {
    id: i64,
    username: String,
    added: String,
    usable_from: String,
    usable: bool,
}

struct EventRow {
    at: String,
    actor: String,
    event: String,
    detail: String,
    source: String,
}

#[derive(Template)]
#[template(path = "account_security.html")]
struct SecurityPage<'a> {
    error: Option<&'a str>,
    notice: Option<&'a str>,
    csrf_token: String,
    addresses: Vec<AddressRow>,
    can_add_address: bool,
    unused_codes: usize,
    contacts: Vec<ContactRow>,
    contacts_required: u32,
    cooldown_days: u64,
    events: Vec<EventRow>,
}

#[derive(Deserialize)]
struct NoticeQuery {
    m: Option<String>,
}

/// The notice a redirect after a successful change asks for (a fixed set: nothing from the
/// query reaches the page).
fn notice(key: Option<&str>) -> Option<&'static str> {
    Some(match key? {
        "email-added" => "Address added. We sent it a link to confirm it.",
        "email-sent" => "We sent a new confirmation link.",
        "email-verified" => "Address confirmed: it will receive security notices.",
        "contact-added" => "Trusted contact added.",
        "contact-removed" => "Trusted contact removed.",
        "approved" => "Approval recorded. The account's owner was told.",
        _ => return None,
    })
}

#[utoipa::path(
    get,
    path = "/account/security",
    tag = TAG_ACCOUNTS,
    params(
        (
            "m" = Option<String>,
            Query,
            description = "Which notice to show after a change (a fixed set; anything else shows \
                none).",
        ),
    ),
    summary = "Security page",
    responses(
        (
            status = 200,
            description = "The security page: addresses, recovery codes, trusted contacts, \
                history.",
            content_type = HTML,
            body = String,
        ),
        (
            status = 303,
            description = "Not signed in with both factors: to `/signin`.",
            headers(("Location" = String)),
        ),
        (status = 400, description = "The query is malformed."),
    ),
)]
async fn security_page(
    State(state): State<AppState>,
    user: SignedInUser,
    AppQuery(query): AppQuery<NoticeQuery>,
) -> Result<Response, AppError> {
    let message = notice(query.m.as_deref());
    show_security(&state, &user, None, message, StatusCode::OK).await
}

/// Renders the security page with an optional error or notice.
async fn show_security(
    state: &AppState,
    user: &SignedInUser,
    error: Option<&str>,
    notice: Option<&str>,
    status: StatusCode,
) -> Result<Response, AppError> {
    let store = store(state)?;
    let policy = policy(state);
    let now = now(state);
    let addresses: Vec<AddressRow> = store
        .emails(user.account)
        .await?
        .into_iter()
        .map(|e| AddressRow {
            id: e.id.0,
            address: e.address,
            verified: e.verified_at.map(crate::notify::format_time),
        })
        .collect();
    let mut contacts = Vec::new();
    for c in store.contacts_of(user.account).await? {
        let Some(account) = store.account(c.contact).await? else {
            continue;
        };
        let from = c.added_at.saturating_add(
            i64::try_from(policy.trusted_contact_cooldown_secs).unwrap_or(i64::MAX),
        );
        contacts.push(ContactRow {
            id: c.contact.0,
            username: account.username,
            added: crate::notify::format_time(c.added_at),
            usable_from: crate::notify::format_time(from),
            usable: policy.trusted_contact_usable(datetime(c.added_at), datetime(now)),
        });
    }
    let events = store
        .audit_events(Some(user.account), HISTORY_LEN)
        .await?
        .into_iter()
        .map(|e| EventRow {
            at: crate::notify::format_time(e.at),
            actor: e.actor,
            event: e.event,
            detail: e.detail,
            source: e.source_address.unwrap_or_default(),
        })
        .collect();
    let page = SecurityPage {
        error,
        notice,
        csrf_token: user.session.csrf_token(),
        can_add_address: addresses.len() < MAX_EMAILS,
        addresses,
        unused_codes: store.unused_recovery_codes(user.account).await?.len(),
        contacts,
        contacts_required: policy.trusted_contacts_required,
        cooldown_days: policy.trusted_contact_cooldown_secs / 86_400,
        events,
    };
    render(status, &page)
}

// ---- Addresses -----------------------------------------------------------------------------

#[derive(Deserialize, ToSchema)]
struct AddressForm {
    email: String,
}

#[utoipa::path(
    post, path = "/account/email/add", tag = TAG_ACCOUNTS,
    summary = "Add a notification address",
    request_body(content = AddressForm, content_type = FORM),
    responses(
        (
            status = 303,
            description = "Added (a confirmation link was mailed): to the security page; or not \
                signed in: to `/signin`.",
            headers(("Location" = String)),
        ),
        (
            status = 400,
            description = "Not an address, or the account has the most addresses it may (the page \
                again).",
        ),
        (status = 409, description = "The address is already on the account (the page again)."),
    ),
)]
async fn add_email(
    State(state): State<AppState>,
    user: SignedInUser,
    ClientAddress(source): ClientAddress,
    CsrfForm { form, .. }: CsrfForm<AddressForm>,
) -> Result<Response, AppError> {
    let store = store(&state)?;
    let refuse = |status, message| show_security(&state, &user, Some(message), None, status);
    let Some(address) = normalize_email(&form.email) else {
        return refuse(StatusCode::BAD_REQUEST, ADDRESS_INVALID).await;
    };
    if store.emails(user.account).await?.len() >= MAX_EMAILS {
        return refuse(
            StatusCode::BAD_REQUEST,
            "You already have 5 addresses, the most an account can have.",
        )
        .await;
    }
    let account = account_of(store, &user).await?;
    if add_address(&state, &account, &address, source)
        .await?
        .is_none()
    {
        return refuse(
            StatusCode::CONFLICT,
            "This address is already on your account.",
        )
        .await;
    }
    Ok(Redirect::to("/account/security?m=email-added").into_response())
}

/// The message for an address that does not look like one (sign-up uses it too).
pub(crate) const ADDRESS_INVALID: &str =
    "Enter an email address for security notices, like name@example.com.";

#[derive(Deserialize, ToSchema)]
struct ResendForm {
    email: i64,
}

#[utoipa::path(
    post, path = "/account/email/resend", tag = TAG_ACCOUNTS,
    summary = "Send a new confirmation link",
    request_body(content = ResendForm, content_type = FORM),
    responses(
        (
            status = 303,
            description = "A new link was mailed: to the security page; or not signed in: to \
                `/signin`.",
            headers(("Location" = String)),
        ),
        (status = 404, description = "Not an unconfirmed address of the account (the page again)."),
    ),
)]
async fn resend_verification(
    State(state): State<AppState>,
    user: SignedInUser,
    ClientAddress(source): ClientAddress,
    CsrfForm { form, .. }: CsrfForm<ResendForm>,
) -> Result<Response, AppError> {
    let store = store(&state)?;
    let target = store
        .emails(user.account)
        .await?
        .into_iter()
        .find(|e| e.id.0 == form.email && e.verified_at.is_none());
    let Some(target) = target else {
        return show_security(
            &state,
            &user,
            Some("That address is not an unconfirmed address of your account."),
            None,
            StatusCode::NOT_FOUND,
        )
        .await;
    };
    let account = account_of(store, &user).await?;
    let mails = verification_mail(&state, &account, &target.address).await?;
    let entry = audit(
        user.account,
        "user",
        "email.verification_sent",
        &target.address,
        source,
    );
    store.record_event(now(&state), &mails, &[entry]).await?;
    Ok(Redirect::to("/account/security?m=email-sent").into_response())
}

#[derive(Template)]
#[template(path = "email_verify.html")]
struct VerifyPage<'a> {
    error: Option<&'a str>,
    csrf_token: String,
    id: String,
    address: String,
}

#[derive(Template)]
#[template(path = "security_message.html")]
struct MessagePage<'a> {
    error: Option<&'a str>,
    title: &'a str,
    message: &'a str,
}

const LINK_UNUSABLE: &str = "This confirmation link is unknown, has expired or was already used. \
     You can send a new one from your account's security page.";

fn message(status: StatusCode, title: &str, text: &str) -> Result<Response, AppError> {
    render(
        status,
        &MessagePage {
            error: None,
            title,
            message: text,
        },
    )
}

/// The address a parked verification link names, if it is `account`'s.
fn verification_target(payload: &str, account: AccountId) -> Option<String> {
    let (owner, address) = payload.split_once('\n')?;
    (owner.parse::<i64>().ok()? == account.0).then(|| address.to_owned())
}

#[utoipa::path(
    get, path = "/account/email/verify", tag = TAG_ACCOUNTS,
    summary = "Confirm an address: the button",
    params(("id" = String, Query, description = "The confirmation link's id.")),
    responses(
        (
            status = 200,
            description = "The confirmation button.",
            content_type = HTML,
            body = String,
        ),
        (
            status = 303,
            description = "Not signed in with both factors: to `/signin` (which comes back).",
            headers(("Location" = String)),
        ),
        (
            status = 404,
            description = "No `id`, or the link is unknown, expired, used or another account's.",
        ),
    ),
)]
async fn verify_page(
    State(state): State<AppState>,
    user: SignedInUser,
    RawQuery(query): RawQuery,
) -> Result<Response, AppError> {
    let id = parked_id(query.as_deref())?;
    let target = peek_parked(&state, PARK_VERIFY_EMAIL, &id)
        .await?
        .and_then(|p| verification_target(&p, user.account));
    let Some(address) = target else {
        return message(StatusCode::NOT_FOUND, "Confirm an address", LINK_UNUSABLE);
    };
    let page = VerifyPage {
        error: None,
        csrf_token: user.session.csrf_token(),
        id,
        address,
    };
    render(StatusCode::OK, &page)
}

#[derive(Deserialize, ToSchema)]
struct VerifyForm {
    id: String,
}

#[utoipa::path(
    post, path = "/account/email/verify", tag = TAG_ACCOUNTS,
    summary = "Confirm an address",
    request_body(content = VerifyForm, content_type = FORM),
    responses(
        (
            status = 303,
            description = "Confirmed: to the security page; or not signed in: to `/signin`.",
            headers(("Location" = String)),
        ),
        (status = 404, description = "The link is unknown, expired, used or another account's."),
        (status = 409, description = "The address is already confirmed."),
    ),
)]
async fn verify(
    State(state): State<AppState>,
    user: SignedInUser,
    ClientAddress(source): ClientAddress,
    CsrfForm { form, .. }: CsrfForm<VerifyForm>,
) -> Result<Response, AppError> {
    let store = store(&state)?;
    // Peek first: a link of another account is refused without using it up.
    let owned = peek_parked(&state, PARK_VERIFY_EMAIL, &form.id)
        .await?
        .and_then(|p| verification_target(&p, user.account))
        .is_some();
    let target = if owned {
        take_parked(&state, PARK_VERIFY_EMAIL, &form.id)
            .await?
            .and_then(|p| verification_target(&p, user.account))
    } else {
        None
    };
    let Some(address) = target else {
        return message(StatusCode::NOT_FOUND, "Confirm an address", LINK_UNUSABLE);
    };
    let email = store
        .emails(user.account)
        .await?
        .into_iter()
        .find(|e| e.address == address);
    let entry = audit(user.account, "user", "email.verified", &address, source);
    let verified = match email {
        Some(e) => {
            store
                .mark_email_verified(e.id, now(&state), &[entry])
                .await?
        }
        None => false,
    };
    if !verified {
        return message(
            StatusCode::CONFLICT,
            "Confirm an address",
            "This address is already confirmed.",
        );
    }
    Ok(Redirect::to("/account/security?m=email-verified").into_response())
}

// ---- Recovery codes ------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "recovery_codes.html")]
struct CodesPage<'a> {
    error: Option<&'a str>,
    codes: &'a RecoveryCodes,
    /// The link on from the page, and its text.
    next: &'a str,
    next_label: &'a str,
}

#[utoipa::path(
    post, path = "/account/recovery-codes", tag = TAG_ACCOUNTS,
    summary = "Generate recovery codes",
    request_body(content = NoFields, content_type = FORM),
    responses(
        (
            status = 200,
            description = "The new recovery codes, shown once (`Cache-Control: no-store`).",
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
async fn generate_codes(
    State(state): State<AppState>,
    user: SignedInUser,
    ClientAddress(source): ClientAddress,
    CsrfForm { .. }: CsrfForm<NoFields>,
) -> Result<Response, AppError> {
    issue_recovery_codes(
        &state,
        user.account,
        &user.username,
        source,
        CodesNext::Security,
    )
    .await
}

/// Where the recovery-codes page leads on.
pub(crate) enum CodesNext<'a> {
    /// Back to the account security page (the user asked for new codes there).
    Security,
    /// On to a path of this site (after setting up a second factor: where the user was going).
    Continue(&'a str),
}

/// Makes a new set of recovery codes for `account` (argon2id on the hashing pool), replaces the
/// old set in one transaction with a notice to every verified address and an audit row, and
/// renders the page that shows the codes once (`Cache-Control: no-store`).
///
/// Called when the user asks for new codes, and when a second factor is set up (NIST SP
/// 800-63B: saved recovery codes are issued with the authenticator; after a lockout recovery,
/// the new factor comes with a fresh set, the old one revoked).
///
/// # Errors
///
/// [`AppError`] when hashing or the store fails; nothing is replaced then.
pub(crate) async fn issue_recovery_codes(
    state: &AppState,
    account: AccountId,
    username: &str,
    source: Option<IpAddr>,
    next: CodesNext<'_>,
) -> Result<Response, AppError> {
    let store = store(state)?;
    let codes = generate_recovery_codes(&mut getrandom::SysRng)?;
    let (codes, hashes) = crate::hashing::run("recovery code hashing task", move || {
        let hashes = codes.hashes(&mut getrandom::SysRng);
        (codes, hashes)
    })
    .await?;
    let hashes = hashes?;
    let mails = to_all(
        &state.site_name(),
        &verified_addresses(store, account).await?,
        "New recovery codes",
        &format!(
            "New recovery codes were generated for your account \"{username}\". The previous \
             codes no longer work.\r\n\r\nIf this was not you, someone is signed in to your \
             account: sign in, choose \"Sign out everywhere\", change your password and \
             generate new codes at {}/account/security.",
            state.public_origin()
        ),
    );
    let entry = audit(
        account,
        "user",
        "recovery_codes.generated",
        format!("{} codes; the previous set revoked", hashes.len()),
        source,
    );
    store
        .replace_recovery_codes(account, &hashes, now(state), &mails, &[entry])
        .await?;
    let (next, next_label) = match next {
        CodesNext::Security => ("/account/security", "Back to account security"),
        CodesNext::Continue(path) => (path, "Continue"),
    };
    let mut response = render(
        StatusCode::OK,
        &CodesPage {
            error: None,
            codes: &codes,
            next,
            next_label,
        },
    )?;
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

// ---- Trusted contacts ----------------------------------------------------------------------

#[derive(Deserialize, ToSchema)]
struct ContactForm {
    username: String,
}

#[utoipa::path(
    post, path = "/account/contacts/add", tag = TAG_ACCOUNTS,
    summary = "Add a trusted contact",
    request_body(content = ContactForm, content_type = FORM),
    responses(
        (
            status = 303,
            description = "Added: to the security page; or not signed in: to `/signin`.",
            headers(("Location" = String)),
        ),
        (
            status = 400,
            description = "Oneself, or the account has the most contacts it may (the page again).",
        ),
        (status = 404, description = "No account has that username (the page again)."),
        (status = 409, description = "Already a trusted contact (the page again)."),
    ),
)]
async fn add_contact(
    State(state): State<AppState>,
    user: SignedInUser,
    ClientAddress(source): ClientAddress,
    CsrfForm { form, .. }: CsrfForm<ContactForm>,
) -> Result<Response, AppError> {
    let store = store(&state)?;
    let refuse = |status, message| show_security(&state, &user, Some(message), None, status);
    let contact = match normalize_username(&form.username) {
        Some(name) => store.account_by_username(&name).await?,
        None => None,
    };
    let Some(contact) = contact else {
        return refuse(
            StatusCode::NOT_FOUND,
            "There is no account with that username.",
        )
        .await;
    };
    if contact.id == user.account {
        return refuse(
            StatusCode::BAD_REQUEST,
            "You cannot name yourself as a trusted contact: name someone else who has an \
             account here.",
        )
        .await;
    }
    if store.contacts_of(user.account).await?.len() >= MAX_CONTACTS {
        return refuse(
            StatusCode::BAD_REQUEST,
            "You already have 10 trusted contacts, the most an account can have.",
        )
        .await;
    }
    let policy = policy(&state);
    let now = now(&state);
    let usable_from = crate::notify::format_time(
        now.saturating_add(i64::try_from(policy.trusted_contact_cooldown_secs).unwrap_or(i64::MAX)),
    );
    let mails = to_all(
        &state.site_name(),
        &verified_addresses(store, user.account).await?,
        "A trusted contact was added",
        &format!(
            "\"{}\" was added as a trusted contact of your account \"{}\". From {usable_from} \
             they can approve a recovery of your account (never alone: a recovery also needs \
             a code mailed to you, and waits before it completes).\r\n\r\nNever add someone \
             because a message asked you to. If this was not you, remove them at \
             {}/account/security, choose \"Sign out everywhere\" and change your password.",
            contact.username,
            user.username,
            state.public_origin()
        ),
    );
    let entry = audit(
        user.account,
        "user",
        "contact.added",
        format!("{} (account {})", contact.username, contact.id),
        source,
    );
    if !store
        .add_trusted_contact(user.account, contact.id, now, &mails, &[entry])
        .await?
    {
        return refuse(
            StatusCode::CONFLICT,
            "That account is already one of your trusted contacts.",
        )
        .await;
    }
    Ok(Redirect::to("/account/security?m=contact-added").into_response())
}

#[derive(Deserialize, ToSchema)]
struct RemoveContactForm {
    contact: i64,
}

#[utoipa::path(
    post, path = "/account/contacts/remove", tag = TAG_ACCOUNTS,
    summary = "Remove a trusted contact",
    request_body(content = RemoveContactForm, content_type = FORM),
    responses(
        (
            status = 303,
            description = "Removed: to the security page; or not signed in: to `/signin`.",
            headers(("Location" = String)),
        ),
        (status = 404, description = "Not a trusted contact of the account (the page again)."),
    ),
)]
async fn remove_contact(
    State(state): State<AppState>,
    user: SignedInUser,
    ClientAddress(source): ClientAddress,
    CsrfForm { form, .. }: CsrfForm<RemoveContactForm>,
) -> Result<Response, AppError> {
    let store = store(&state)?;
    let contact = AccountId(form.contact);
    let name = match store.account(contact).await? {
        Some(a) => a.username,
        None => contact.to_string(),
    };
    let mails = to_all(
        &state.site_name(),
        &verified_addresses(store, user.account).await?,
        "A trusted contact was removed",
        &format!(
            "\"{name}\" is no longer a trusted contact of your account \"{}\".\r\n\r\nIf this \
             was not you, sign in at {}/account/security, choose \"Sign out everywhere\" and \
             change your password.",
            user.username,
            state.public_origin()
        ),
    );
    let entry = audit(
        user.account,
        "user",
        "contact.removed",
        format!("{name} (account {contact})"),
        source,
    );
    if !store
        .remove_trusted_contact(user.account, contact, now(&state), &mails, &[entry])
        .await?
    {
        return show_security(
            &state,
            &user,
            Some("That account is not one of your trusted contacts."),
            None,
            StatusCode::NOT_FOUND,
        )
        .await;
    }
    Ok(Redirect::to("/account/security?m=contact-removed").into_response())
}

// ---- Approvals -----------------------------------------------------------------------------

struct RecoveryRow {
    id: i64,
    owner: String,
    started: String,
    state: &'static str,
    approved: bool,
    usable_from: Option<String>,
}

#[derive(Template)]
#[template(path = "approvals.html")]
struct ApprovalsPage<'a> {
    error: Option<&'a str>,
    notice: Option<&'a str>,
    csrf_token: String,
    recoveries: Vec<RecoveryRow>,
}

#[utoipa::path(
    get,
    path = "/account/approvals",
    tag = TAG_ACCOUNTS,
    params(
        (
            "m" = Option<String>,
            Query,
            description = "Which notice to show after a change (a fixed set; anything else shows \
                none).",
        ),
    ),
    summary = "Recoveries to approve",
    responses(
        (
            status = 200,
            description = "The recoveries of accounts that named the user a trusted contact.",
            content_type = HTML,
            body = String,
        ),
        (
            status = 303,
            description = "Not signed in with both factors: to `/signin`.",
            headers(("Location" = String)),
        ),
        (status = 400, description = "The query is malformed."),
    ),
)]
async fn approvals_page(
    State(state): State<AppState>,
    user: SignedInUser,
    AppQuery(query): AppQuery<NoticeQuery>,
) -> Result<Response, AppError> {
    let message = notice(query.m.as_deref());
    show_approvals(&state, &user, None, message, StatusCode::OK).await
}

fn state_text(state: RecoveryState) -> &'static str {
    match state {
        RecoveryState::Collecting => "gathering evidence",
        RecoveryState::Pending => "waiting period running",
        RecoveryState::Review => "with staff for review",
        RecoveryState::Unlocked => "unlocked",
        RecoveryState::Refused => "refused",
        RecoveryState::Cancelled => "cancelled",
        RecoveryState::Denied => "denied",
    }
}

async fn show_approvals(
    state: &AppState,
    user: &SignedInUser,
    error: Option<&str>,
    notice: Option<&str>,
    status: StatusCode,
) -> Result<Response, AppError> {
    let store = store(state)?;
    let policy = policy(state);
    let now = now(state);
    let mut recoveries = Vec::new();
    for trust in store.owners_trusting(user.account).await? {
        let Some(owner) = store.account(trust.owner).await? else {
            continue;
        };
        let usable = policy.trusted_contact_usable(datetime(trust.added_at), datetime(now));
        let usable_from = (!usable).then(|| {
            crate::notify::format_time(trust.added_at.saturating_add(
                i64::try_from(policy.trusted_contact_cooldown_secs).unwrap_or(i64::MAX),
            ))
        });
        for r in store
            .account_recoveries(owner.id, RECOVERIES_PER_OWNER)
            .await?
        {
            if !r.state.is_open() {
                continue;
            }
            let approved = approved_by(store, r.id, user.account).await?;
            recoveries.push(RecoveryRow {
                id: r.id.0,
                owner: owner.username.clone(),
                started: crate::notify::format_time(r.created_at),
                state: state_text(r.state),
                approved,
                usable_from: usable_from.clone(),
            });
        }
    }
    let page = ApprovalsPage {
        error,
        notice,
        csrf_token: user.session.csrf_token(),
        recoveries,
    };
    render(status, &page)
}

/// Whether `contact` already approved `recovery`.
async fn approved_by(
    store: &Store,
    recovery: RecoveryId,
    contact: AccountId,
) -> Result<bool, AppError> {
    let reference = contact.0.to_string();
    Ok(store
        .evidence(recovery)
        .await?
        .iter()
        .any(|e| e.kind == EvidenceKind::TrustedContact && e.reference == reference))
}

#[derive(Deserialize, ToSchema)]
struct ApproveForm {
    recovery: i64,
}

#[utoipa::path(
    post, path = "/account/approvals/approve", tag = TAG_ACCOUNTS,
    summary = "Approve a recovery as a trusted contact",
    request_body(content = ApproveForm, content_type = FORM),
    responses(
        (
            status = 200,
            description = "Approved already (the page again, with a notice).",
            content_type = HTML,
            body = String,
        ),
        (
            status = 303,
            description = "Approval recorded: to the approvals page; or not signed in: to \
                `/signin`.",
            headers(("Location" = String)),
        ),
        (
            status = 403,
            description = "The trusted contact is still in its cooldown (the page again).",
        ),
        (
            status = 404,
            description = "No recovery of an account that named the user has that number.",
        ),
        (status = 409, description = "The recovery has ended."),
    ),
)]
async fn approve(
    State(state): State<AppState>,
    user: SignedInUser,
    ClientAddress(source): ClientAddress,
    CsrfForm { form, .. }: CsrfForm<ApproveForm>,
) -> Result<Response, AppError> {
    let store = store(&state)?;
    let refuse = |status, message| show_approvals(&state, &user, Some(message), None, status);
    let recovery = store.recovery(RecoveryId(form.recovery)).await?;
    let trust = match &recovery {
        Some(r) => store
            .owners_trusting(user.account)
            .await?
            .into_iter()
            .find(|t| t.owner == r.account),
        None => None,
    };
    let (Some(recovery), Some(trust)) = (recovery, trust) else {
        return refuse(
            StatusCode::NOT_FOUND,
            "No recovery of an account that named you has that number.",
        )
        .await;
    };
    if !recovery.state.is_open() {
        return refuse(StatusCode::CONFLICT, "This recovery has ended.").await;
    }
    if approved_by(store, recovery.id, user.account).await? {
        return show_approvals(
            &state,
            &user,
            None,
            Some("You already approved this recovery; nothing changed."),
            StatusCode::OK,
        )
        .await;
    }
    let policy = policy(&state);
    let now = now(&state);
    if !policy.trusted_contact_usable(datetime(trust.added_at), datetime(now)) {
        let days = policy.trusted_contact_cooldown_secs / 86_400;
        let message = format!(
            "You cannot approve yet: a trusted contact can approve only {days} days after \
             being named, to protect against someone who took over the account naming \
             helpers of their own."
        );
        return show_approvals(&state, &user, Some(&message), None, StatusCode::FORBIDDEN).await;
    }
    let evidence = NewEvidence {
        kind: EvidenceKind::TrustedContact,
        reference: user.account.0.to_string(),
        detail: user.username.clone(),
    };
    let actor = format!("contact:{}", user.username);
    let entry = audit(
        recovery.account,
        &actor,
        "recovery.contact_approved",
        format!("recovery {}", recovery.id),
        source,
    );
    if !store
        .add_evidence(recovery.id, &evidence, now, &[entry])
        .await?
    {
        return refuse(
            StatusCode::CONFLICT,
            "This recovery no longer takes approvals.",
        )
        .await;
    }
    let owner = store
        .account(recovery.account)
        .await?
        .map_or_else(String::new, |a| a.username);
    let mails = to_all(
        &state.site_name(),
        &verified_addresses(store, recovery.account).await?,
        "A trusted contact approved a recovery of your account",
        &format!(
            "Your trusted contact \"{}\" approved the recovery of your account \"{owner}\" \
             started on {}.\r\n\r\nIf you did not start a recovery, someone is trying to take \
             over your account: sign in with your authenticator at {} (this cancels the \
             recovery), and tell \"{}\" that they were misled.",
            user.username,
            crate::notify::format_time(recovery.created_at),
            state.public_origin(),
            user.username
        ),
    );
    store.record_event(now, &mails, &[]).await?;
    Ok(Redirect::to("/account/approvals?m=approved").into_response())
}

// ---- The pause before a new second factor --------------------------------------------------

#[derive(Template)]
#[template(path = "factor_held.html")]
struct HeldPage<'a> {
    error: Option<&'a str>,
    effective: String,
}

/// The page of an account whose new second factor is held until `effective_at`.
pub(crate) fn held_page(effective_at: i64) -> Result<Response, AppError> {
    render(
        StatusCode::ACCEPTED,
        &HeldPage {
            error: None,
            effective: crate::notify::format_time(effective_at),
        },
    )
}

/// Holds the TOTP secret `account` just confirmed instead of activating it, when the policy
/// asks for a pause: the account is old enough, had no confirmed second factor, and was not
/// unlocked by a recovery in the last 7 days (a re-enrolment then is expected and was
/// notified). Every verified address gets a notice with a single-use cancel link (only its
/// SHA-256 is stored). Returns the page to show when held, `None` when the factor may be
/// activated now.
pub(crate) async fn hold_new_factor(
    state: &AppState,
    account: &Account,
    secret: &str,
    source: Option<IpAddr>,
) -> Result<Option<Response>, AppError> {
    let store = store(state)?;
    let now = now(state);
    let age = Duration::seconds(now.saturating_sub(account.created_at));
    let pause = policy(state).factor_enable_pause(age);
    if pause.is_zero() || account.totp_confirmed {
        return Ok(None);
    }
    let recently_unlocked = store
        .account_recoveries(account.id, 1)
        .await?
        .first()
        .is_some_and(|r| {
            r.state == RecoveryState::Unlocked && r.updated_at >= now - RECENT_UNLOCK_SECS
        });
    if recently_unlocked {
        return Ok(None);
    }
    let effective_at = now.saturating_add(pause.whole_seconds());
    let token = random_token()?;
    let query = serde_urlencoded::to_string([("c", token.as_str())])
        .map_err(|e| AppError::internal("cancel link", e.to_string()))?;
    let mails = to_all(
        &state.site_name(),
        &verified_addresses(store, account.id).await?,
        "A new authenticator was set up",
        &format!(
            "A new authenticator app was set up as the second factor of your account \"{}\". \
             It becomes active at {}.\r\n\r\nIf this was not you, cancel it before then with \
             this link (it works once):\r\n\r\n{}/account/factor/cancel?{query}\r\n\r\nthen \
             change your password.",
            account.username,
            crate::notify::format_time(effective_at),
            state.public_origin()
        ),
    );
    let entry = audit(
        account.id,
        "user",
        "factor.held",
        format!(
            "TOTP active from {}",
            crate::notify::format_time(effective_at)
        ),
        source,
    );
    store
        .hold_factor(
            account.id,
            secret,
            now,
            effective_at,
            &hash_hex(token.as_bytes()),
            &mails,
            &[entry],
        )
        .await?;
    Ok(Some(held_page(effective_at)?))
}

#[derive(Deserialize, ToSchema)]
struct CancelQuery {
    /// The cancel link's token (32 hex digits).
    c: String,
}

#[derive(Template)]
#[template(path = "factor_cancel.html")]
struct CancelPage<'a> {
    error: Option<&'a str>,
    csrf_token: String,
    c: &'a str,
    effective: String,
}

const CANCEL_UNUSABLE: &str = "This cancel link is unknown or was already used: there is no \
     held authenticator to cancel.";

/// The held factor a cancel token names, while it is still pending.
async fn held_factor(
    store: &Store,
    token: &str,
) -> Result<Option<dar_store::PendingFactor>, AppError> {
    if token.len() != 32 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    Ok(store
        .pending_factor_by_cancel_hash(&hash_hex(token.as_bytes()))
        .await?
        .filter(|f| f.state == dar_store::PendingFactorState::Pending))
}

#[utoipa::path(
    get,
    path = "/account/factor/cancel",
    tag = TAG_ACCOUNTS,
    params(("c" = String, Query, description = "The cancel link's token (32 hex digits).")),
    summary = "Cancel a held authenticator: the button",
    responses(
        (
            status = 200,
            description = "The cancel button (mail scanners follow links: a GET changes nothing).",
            content_type = HTML,
            body = String,
        ),
        (status = 400, description = "The query lacks `c` or is malformed."),
        (status = 404, description = "No held authenticator has that cancel link."),
    ),
)]
async fn cancel_page(
    State(state): State<AppState>,
    jar: SignedCookieJar,
    AppQuery(query): AppQuery<CancelQuery>,
) -> Result<Response, AppError> {
    let Some(factor) = held_factor(store(&state)?, &query.c).await? else {
        return message(
            StatusCode::NOT_FOUND,
            "Cancel a new authenticator",
            CANCEL_UNUSABLE,
        );
    };
    let (jar, session) = ensure_session(jar)?;
    let page = CancelPage {
        error: None,
        csrf_token: session.csrf_token(),
        c: &query.c,
        effective: crate::notify::format_time(factor.effective_at),
    };
    Ok((jar, render(StatusCode::OK, &page)?).into_response())
}

#[utoipa::path(
    post, path = "/account/factor/cancel", tag = TAG_ACCOUNTS,
    summary = "Cancel a held authenticator",
    request_body(content = CancelQuery, content_type = FORM),
    responses(
        (
            status = 200,
            description = "The held authenticator was cancelled and every session of the account \
                ended.",
            content_type = HTML,
            body = String,
        ),
        (status = 404, description = "No held authenticator has that cancel link."),
    ),
)]
async fn cancel_factor(
    State(state): State<AppState>,
    ClientAddress(source): ClientAddress,
    CsrfForm { form, .. }: CsrfForm<CancelQuery>,
) -> Result<Response, AppError> {
    let store = store(&state)?;
    let Some(factor) = held_factor(store, &form.c).await? else {
        return message(
            StatusCode::NOT_FOUND,
            "Cancel a new authenticator",
            CANCEL_UNUSABLE,
        );
    };
    let mails = to_all(
        &state.site_name(),
        &verified_addresses(store, factor.account).await?,
        "The new authenticator was cancelled",
        &format!(
            "The authenticator set up on {} was cancelled with the link we sent; it will \
             not become active. Every session of your account was signed out.\r\n\r\nIf \
             someone else set it up, they know your password: change it.",
            crate::notify::format_time(factor.created_at)
        ),
    );
    let entry = audit(
        factor.account,
        "user",
        "factor.cancelled",
        "by the link mailed to a verified address; every session revoked",
        source,
    );
    if !store
        .cancel_pending_factor_by_hash(&hash_hex(form.c.as_bytes()), now(&state), &mails, &[entry])
        .await?
    {
        return message(
            StatusCode::NOT_FOUND,
            "Cancel a new authenticator",
            CANCEL_UNUSABLE,
        );
    }
    store.revoke_all_sessions(factor.account).await?;
    message(
        StatusCode::OK,
        "Authenticator cancelled",
        "The new authenticator was cancelled and every session of the account signed out. \
         If you did not set it up, change your password.",
    )
}

// ---- Sign-in with the existing second factor -------------------------------------------

/// Ends every open recovery of `account`: its owner just signed in with the existing second
/// factor, so it is not lost. Every verified address is told when one was cancelled.
pub(crate) async fn end_recoveries_on_sign_in(
    state: &AppState,
    account: &Account,
    source: Option<IpAddr>,
) -> Result<u64, AppError> {
    let store = store(state)?;
    let mails = to_all(
        &state.site_name(),
        &verified_addresses(store, account.id).await?,
        "Account recovery cancelled",
        &format!(
            "Someone signed in to your account \"{}\" with its authenticator, so the account \
             recovery in progress was cancelled: the second factor is not lost.\r\n\r\nIf you \
             did not start a recovery, someone tried to take over your account; your \
             authenticator stopped them. Consider changing your password at {}.",
            account.username,
            state.public_origin()
        ),
    );
    let entry = audit(
        account.id,
        "user",
        "recovery.cancelled",
        "signed in with the existing second factor",
        source,
    );
    Ok(store
        .cancel_pending_recoveries(account.id, now(state), &mails, &[entry])
        .await?)
}

#[cfg(test)]
pub(crate) mod tests;
