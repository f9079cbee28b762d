//! The account provider's lockout recovery: the pages where a locked-out user gathers evidence,
//! the policy's decision, and the timed unlock (spec/lockout-policy.md, draft §3.5 step 15,
//! §6.3.2).
//!
//! A recovery is a row in the store ([`dar_store::LockoutRecovery`]) that collects evidence
//! until the user asks for the decision:
//!
//! - `recover-account-return` (in [`crate::ap`]) accepts a countersigned token, then parks the
//!   evidence (a random id, ten minutes, taken once) and sends the browser (303) to
//!   `/recovery/continue`: a same-origin page that carries the `SameSite=Lax` cookies, so a
//!   second token (from a second recovery provider) joins the recovery already under way.
//! - `/recovery/start` starts one with the username and password (the password is a factor
//!   the user still holds; the answer is the sign-in page's, so it reveals no more).
//! - `/recovery` shows the evidence, the policy's current decision and what would improve it;
//!   forms add a password, a recovery code or an email code (sent to a verified address).
//!   Trusted contacts approve from their own sessions (`/account/approvals`).
//! - `/recovery/finish` applies the decision: *unlock now* resets the second factor and ends
//!   every session in one transaction (the user signs in with the password and enrols a new
//!   factor: never an automatic sign-in), *timed unlock* starts the waiting period, *review*
//!   queues it for staff (`dar recoveries`), *refused* changes nothing and names next steps.
//! - `/recovery/cancel?c=...` cancels an open recovery; the link is in every notice. A GET
//!   only shows a button (mail scanners follow links); the POST cancels, once.
//!
//! The browser holds its recovery by a random 128-bit handle in a signed, HttpOnly cookie
//! scoped to `/recovery`; the store keeps only its SHA-256. Cancel links are
//! `HMAC-SHA256(link key, recovery id)`: every notice of a recovery repeats the same link
//! without the plaintext ever being stored (the store keeps its SHA-256), and the link key
//! derives from the session key, so configure `session.key_file` for links that survive a
//! restart.
//!
//! Every state change writes its notices (to every verified address) and its audit row in the
//! same transaction (the `notify` module); [`worker::LockoutWorker`] sends them and completes
//! timed unlocks.

use std::net::IpAddr;

use askama::Template;
use axum::Router;
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum_extra::extract::SignedCookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use dar_account_provider::lockout::codes;
use dar_account_provider::{
    Decision, Evidence, EvidenceHandoff, EvidenceSet, LockoutPolicy, RecoveryEvidence,
};
use dar_store::{
    AccountId, EvidenceKind, LockoutRecovery, NewEvidence, RecoveryState, StateChange, Store,
};
use hmac::{KeyInit as _, Mac as _};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use utoipa::ToSchema;
use zeroize::Zeroizing;

use crate::account_security::ClientAddress;
use crate::auth::{now, parked_id, render, store, take_parked};
use crate::error::AppError;
use crate::notify::{audit, to_all, verified_addresses};
use crate::openapi::{FORM, HTML, TAG_LOCKOUT};
use crate::security::{CsrfForm, NoFields};
use crate::state::AppState;

pub mod worker;

/// The cookie holding the browser's recovery handle.
const RECOVERY_COOKIE: &str = "dar_recovery";
/// How long the browser keeps its handle (seconds): a day to gather evidence.
const HANDLE_COOKIE_SECS: i64 = 24 * 60 * 60;
const PARK_DELEGATED: &str = "lockout-delegated";
const PARK_SECS: i64 = 10 * 60;
/// Email codes one account may be sent per hour, and one address (NIST: throttle; OWASP:
/// rate limit per account and per address).
const EMAIL_CODES_PER_ACCOUNT_PER_HOUR: i64 = 5;
const EMAIL_CODES_PER_ADDRESS_PER_HOUR: i64 = 3;

/// The lockout-recovery routes; empty when the deployment is not an account provider.
pub(crate) fn routes(state: &AppState) -> Router<AppState> {
    if state.roles().account_provider.is_none() {
        return Router::new();
    }
    Router::new()
        .route("/recovery", get(recovery_page))
        .route("/recovery/continue", get(continue_delegated))
        .route("/recovery/start", post(start))
        .route("/recovery/password", post(add_password))
        .route("/recovery/code", post(add_recovery_code))
        .route("/recovery/email/send", post(send_email_code))
        .route("/recovery/email/check", post(check_email_code))
        .route("/recovery/finish", post(finish))
        .route("/recovery/cancel", get(cancel_page).post(cancel))
        .layer(DefaultBodyLimit::max(crate::auth::ACCOUNT_FORM_BODY_LIMIT))
}

fn policy(state: &AppState) -> Result<&LockoutPolicy, AppError> {
    state
        .roles()
        .account_provider
        .as_ref()
        .map(|ap| &ap.settings.lockout)
        .ok_or(AppError::NotConfigured {
            what: "the account provider",
        })
}

fn sha256_hex(text: &str) -> String {
    crate::auth::hash_hex(text.as_bytes())
}

/// The key of the links in notices, derived from the session key (domain-separated, so the
/// two uses never share a MAC).
pub(crate) fn link_key(state: &AppState) -> Result<[u8; 32], AppError> {
    let key: axum_extra::extract::cookie::Key = axum::extract::FromRef::from_ref(state);
    let mut mac = <hmac::Hmac<Sha256>>::new_from_slice(key.signing())
        .map_err(|e| AppError::internal("link key", e.to_string()))?;
    mac.update(b"dar lockout link key v1");
    Ok(mac.finalize().into_bytes().into())
}

/// The cancel link's secret for a recovery: HMAC-SHA256 of its id.
pub(crate) fn cancel_secret(link_key: &[u8; 32], recovery: dar_store::RecoveryId) -> String {
    let Ok(mut mac) = <hmac::Hmac<Sha256>>::new_from_slice(link_key) else {
        return String::new();
    };
    mac.update(format!("cancel recovery {}", recovery.0).as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The full cancel link for a recovery.
pub(crate) fn cancel_link(
    origin: &dar_core::Origin,
    link_key: &[u8; 32],
    recovery: dar_store::RecoveryId,
) -> String {
    format!(
        "{}/recovery/cancel?c={}",
        origin.as_str().trim_end_matches('/'),
        cancel_secret(link_key, recovery)
    )
}

// ---- Evidence as stored ------------------------------------------------------------------

/// What the store keeps of a delegated token (the `detail` column): no secret, only what the
/// policy weighs.
#[derive(Debug, Serialize, Deserialize)]
struct DelegatedDetail {
    recovery_provider: String,
    low_friction: bool,
    token_age_secs: i64,
}

/// The evidence rows of a recovery as the policy's vocabulary. A delegated token's age is its
/// age at acceptance plus the time since.
fn evidence_set(rows: &[dar_store::EvidenceRecord], now: i64) -> EvidenceSet {
    rows.iter()
        .filter_map(|row| match row.kind {
            EvidenceKind::Delegated => {
                let detail: DelegatedDetail = serde_json::from_str(&row.detail).ok()?;
                let recovery_provider = dar_core::Origin::parse(&detail.recovery_provider)
                    .or_else(|_| dar_core::Origin::parse_development(&detail.recovery_provider))
                    .ok()?;
                let age = detail
                    .token_age_secs
                    .saturating_add(now.saturating_sub(row.added_at));
                Some(Evidence::Delegated {
                    recovery_provider,
                    low_friction: detail.low_friction,
                    token_age: time::Duration::seconds(age),
                })
            }
            EvidenceKind::RecoveryCode => Some(Evidence::RecoveryCode),
            EvidenceKind::EmailCode => Some(Evidence::EmailCode),
            EvidenceKind::TrustedContact => Some(Evidence::TrustedContact {
                contact: row.reference.clone(),
            }),
            EvidenceKind::Password => Some(Evidence::Password),
        })
        .collect()
}

fn describe(row: &dar_store::EvidenceRecord) -> String {
    match row.kind {
        EvidenceKind::Delegated => match serde_json::from_str::<DelegatedDetail>(&row.detail) {
            Ok(d) => format!(
                "A recovery token countersigned by {}{}",
                d.recovery_provider,
                if d.low_friction {
                    " (low friction)"
                } else {
                    ""
                }
            ),
            Err(_) => "A recovery token".to_owned(),
        },
        EvidenceKind::RecoveryCode => "A recovery code".to_owned(),
        EvidenceKind::EmailCode => "A code sent by email".to_owned(),
        EvidenceKind::TrustedContact => format!("Approval by trusted contact {}", row.detail),
        EvidenceKind::Password => "Your password".to_owned(),
    }
}

fn describe_missing(missing: &dar_account_provider::lockout::Missing) -> String {
    use dar_account_provider::lockout::Missing as M;
    match missing {
        M::DelegatedTokens { more, .. } if *more == 1 => {
            "a recovery token from a recovery provider".to_owned()
        }
        M::DelegatedTokens { more, .. } => {
            format!("recovery tokens from {more} more recovery providers")
        }
        M::RecoveryCode => "a recovery code".to_owned(),
        M::EmailCode => "a code sent to your email address".to_owned(),
        M::TrustedContacts { more } => format!("approval by {more} more trusted contacts"),
        M::Password => "your password".to_owned(),
    }
}

// ---- The browser's handle ----------------------------------------------------------------

fn handle_cookie(handle: String) -> Cookie<'static> {
    let mut cookie = Cookie::new(RECOVERY_COOKIE, handle);
    cookie.set_http_only(true);
    cookie.set_secure(true);
    cookie.set_same_site(SameSite::Lax);
    cookie.set_path("/recovery");
    cookie.set_max_age(time::Duration::seconds(HANDLE_COOKIE_SECS));
    cookie
}

/// The browser's recovery, if its cookie names one.
async fn current(
    store: &Store,
    jar: &SignedCookieJar,
) -> Result<Option<LockoutRecovery>, AppError> {
    let Some(cookie) = jar.get(RECOVERY_COOKIE) else {
        return Ok(None);
    };
    let handle = cookie.value();
    if handle.len() != 32 {
        return Ok(None);
    }
    Ok(store.recovery_by_handle(&sha256_hex(handle)).await?)
}

/// The browser's collecting recovery for `account`, or a new one (with a notice to every
/// verified address that a recovery started).
async fn open_for(
    state: &AppState,
    jar: SignedCookieJar,
    account: AccountId,
    source: Option<IpAddr>,
) -> Result<(SignedCookieJar, LockoutRecovery), AppError> {
    let store = store(state)?;
    if let Some(r) = current(store, &jar).await?
        && r.account == account
        && r.state == RecoveryState::Collecting
    {
        return Ok((jar, r));
    }
    let handle = crate::account_security::random_token()?;
    let addresses = verified_addresses(store, account).await?;
    let mails = to_all(
        &state.site_name(),
        &addresses,
        "A recovery of your account started",
        "Someone started to recover your account because its second factor was lost.\r\n\
         If it was you, there is nothing to do. If it was not you, sign in with your \
         password and second factor: that ends the recovery at once.",
    );
    let recovery = store
        .start_recovery(
            account,
            &sha256_hex(&handle),
            now(state),
            source.map(|ip| ip.to_string()).as_deref(),
            &mails,
            &[audit(account, "user", "recovery.started", "", source)],
        )
        .await?;
    Ok((jar.add(handle_cookie(handle)), recovery))
}

async fn add(
    state: &AppState,
    recovery: &LockoutRecovery,
    kind: EvidenceKind,
    reference: String,
    detail: String,
    source: Option<IpAddr>,
) -> Result<bool, AppError> {
    let event = format!("evidence.{}", kind.as_str());
    let note = format!("recovery {} {reference}", recovery.id.0);
    Ok(store(state)?
        .add_evidence(
            recovery.id,
            &NewEvidence {
                kind,
                reference,
                detail,
            },
            now(state),
            &[audit(recovery.account, "user", &event, note, source)],
        )
        .await?)
}

// ---- Delegated tokens ----------------------------------------------------------------------

#[derive(Serialize, Deserialize)]
struct ParkedDelegated {
    account: i64,
    token_id: String,
    detail: DelegatedDetail,
}

/// The parked evidence of a countersigned token `recover-account-return` is accepting, for
/// [`AccountProvider::accept_countersigned_with`](dar_account_provider::AccountProvider::accept_countersigned_with)
/// to commit with it; `key_hash` is the hash of the id the browser is sent on with
/// ([`continue_redirect`]). Called once every check passed and before anything is written.
///
/// # Errors
///
/// [`AppError::BadRequest`] when the token recovers no web account of this deployment (then
/// nothing is written: the token stays usable).
pub(crate) fn delegated_handoff(
    evidence: &RecoveryEvidence,
    key_hash: String,
    now: time::OffsetDateTime,
) -> Result<EvidenceHandoff, AppError> {
    let account: i64 = evidence
        .account_id()
        .parse()
        .map_err(|_| AppError::BadRequest {
            message: "the recovery token is for an account this site does not have",
        })?;
    let parked = ParkedDelegated {
        account,
        token_id: evidence.token_id().to_string(),
        detail: DelegatedDetail {
            recovery_provider: evidence.recovery_provider().to_string(),
            low_friction: evidence.low_friction(),
            token_age_secs: evidence.token_age().whole_seconds(),
        },
    };
    let payload = serde_json::to_string(&parked)
        .map_err(|e| AppError::internal("parked evidence", e.to_string()))?;
    Ok(EvidenceHandoff {
        key_hash,
        kind: PARK_DELEGATED.to_owned(),
        payload,
        expires_at: now + time::Duration::seconds(PARK_SECS),
    })
}

/// Sends the browser to the same-origin page (which carries its cookies) that attaches the
/// parked evidence `id` to its recovery.
pub(crate) fn continue_redirect(id: &str) -> Response {
    Redirect::to(&format!("/recovery/continue?id={id}")).into_response()
}

#[utoipa::path(
    get, path = "/recovery/continue", tag = TAG_LOCKOUT,
    summary = "Add a countersigned token to the recovery",
    params(
        (
            "id" = String,
            Query,
            description = "The parked evidence's id, from `recover-account-return`.",
        ),
    ),
    responses(
        (
            status = 303,
            description = "The evidence joined this browser's recovery: to `/recovery`.",
            headers(("Location" = String)),
        ),
        (status = 400, description = "The token is for an account this site does not have."),
        (status = 404, description = "No `id`, or unknown, expired or used."),
        (status = 409, description = "This browser's recovery no longer takes evidence."),
    ),
)]
async fn continue_delegated(
    State(state): State<AppState>,
    ClientAddress(source): ClientAddress,
    jar: SignedCookieJar,
    RawQuery(query): RawQuery,
) -> Result<Response, AppError> {
    let id = parked_id(query.as_deref())?;
    let payload = take_parked(&state, PARK_DELEGATED, &id)
        .await?
        .ok_or(AppError::NotFound)?;
    let parked: ParkedDelegated =
        serde_json::from_str(&payload).map_err(|_| AppError::BadRequest {
            message: "the parked evidence is malformed",
        })?;
    let account = AccountId(parked.account);
    let store = store(&state)?;
    if store.account(account).await?.is_none() {
        return Err(AppError::BadRequest {
            message: "the recovery token is for an account this site does not have",
        });
    }
    let (jar, recovery) = open_for(&state, jar, account, source).await?;
    let detail = serde_json::to_string(&parked.detail)
        .map_err(|e| AppError::internal("evidence detail", e.to_string()))?;
    add(
        &state,
        &recovery,
        EvidenceKind::Delegated,
        parked.token_id,
        detail,
        source,
    )
    .await?;
    Ok((jar, Redirect::to("/recovery")).into_response())
}

// ---- Starting with the password --------------------------------------------------------------

#[derive(Deserialize, ToSchema)]
struct StartForm {
    username: String,
    password: String,
}

#[utoipa::path(
    post, path = "/recovery/start", tag = TAG_LOCKOUT,
    summary = "Start a recovery with the password",
    request_body(content = StartForm, content_type = FORM),
    responses(
        (
            status = 303,
            description = "A recovery started with the password as evidence: to `/recovery`.",
            headers(("Location" = String)),
        ),
        (status = 401, description = "Incorrect username or password (never says which)."),
        (status = 409, description = "This browser's recovery no longer takes evidence."),
    ),
)]
async fn start(
    State(state): State<AppState>,
    ClientAddress(source): ClientAddress,
    jar: SignedCookieJar,
    CsrfForm { form, .. }: CsrfForm<StartForm>,
) -> Result<Response, AppError> {
    let password = Zeroizing::new(form.password);
    let Some(account) = crate::auth::check_password(&state, &form.username, password).await? else {
        return Err(AppError::Unauthorized {
            message: crate::auth::SIGN_IN_FAILED,
        });
    };
    let (jar, recovery) = open_for(&state, jar, account, source).await?;
    add(
        &state,
        &recovery,
        EvidenceKind::Password,
        String::new(),
        String::new(),
        source,
    )
    .await?;
    Ok((jar, Redirect::to("/recovery")).into_response())
}

// ---- The recovery page -----------------------------------------------------------------------

/// A verified address as the page shows it: enough to recognise, not to harvest.
fn masked(address: &str) -> String {
    match address.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}…@{domain}")
        }
        None => "…".to_owned(),
    }
}

struct AddressChoice {
    id: i64,
    label: String,
}

#[derive(Template)]
#[template(path = "recovery.html")]
struct RecoveryPage<'a> {
    error: Option<&'a str>,
    notice: Option<&'a str>,
    csrf_token: String,
    username: String,
    state: &'static str,
    evidence: Vec<String>,
    decision: String,
    finish_label: Option<&'static str>,
    next_steps: Vec<String>,
    addresses: Vec<AddressChoice>,
    completes_at: Option<String>,
}

#[derive(Template)]
#[template(path = "recovery_message.html")]
struct MessagePage<'a> {
    error: Option<&'a str>,
    heading: &'a str,
    message: &'a str,
    link: Option<(&'a str, &'a str)>,
}

/// A duration as a person says it: "72 hours", "3 days", "8 seconds".
fn span(d: time::Duration) -> String {
    let secs = d.whole_seconds();
    match secs {
        ..=119 => format!("{secs} seconds"),
        120..=7199 => format!("{} minutes", secs / 60),
        7200..=259_200 => format!("{} hours", secs / 3600),
        _ => format!("{} days", secs / 86_400),
    }
}

fn decision_text(decision: &Decision) -> (String, Option<&'static str>) {
    match decision {
        Decision::UnlockNow { rule } => (
            format!("Enough evidence to unlock your account now (rule “{rule}”)."),
            Some("Unlock my account"),
        ),
        Decision::TimedUnlock {
            rule,
            waiting_period,
        } => (
            format!(
                "Enough evidence for a timed unlock (rule “{rule}”): your account unlocks {} \
                 after you start the waiting period, unless it is cancelled. More evidence may \
                 unlock it at once.",
                span(*waiting_period)
            ),
            Some("Start the waiting period"),
        ),
        Decision::Review { rule } => (
            format!("This evidence goes to our staff for review (rule “{rule}”)."),
            Some("Ask for a review"),
        ),
        Decision::Refused { .. } => (
            "Not enough evidence yet to recover this account.".to_owned(),
            None,
        ),
    }
}

async fn show(
    state: &AppState,
    jar: SignedCookieJar,
    recovery: &LockoutRecovery,
    status: StatusCode,
    error: Option<&str>,
    notice: Option<&str>,
) -> Result<Response, AppError> {
    let store = store(state)?;
    let (jar, session) = crate::security::ensure_session(jar)?;
    let rows = store.evidence(recovery.id).await?;
    let decision = dar_account_provider::decide(policy(state)?, &evidence_set(&rows, now(state)));
    let (mut decision_line, mut finish_label) = decision_text(&decision);
    let next_steps = match &decision {
        Decision::Refused { next_steps } => next_steps
            .iter()
            .take(3)
            .map(|step| {
                let missing: Vec<String> = step.missing.iter().map(describe_missing).collect();
                format!("add {}", missing.join(" and "))
            })
            .collect(),
        _ => Vec::new(),
    };
    if recovery.state != RecoveryState::Collecting {
        finish_label = None;
        decision_line = match recovery.state {
            RecoveryState::Pending => "The waiting period is running.".to_owned(),
            RecoveryState::Unlocked => {
                "Your account is unlocked: sign in with your password and set up a new second \
                 factor."
                    .to_owned()
            }
            RecoveryState::Review => "Our staff are reviewing this recovery.".to_owned(),
            RecoveryState::Cancelled => "This recovery was cancelled.".to_owned(),
            RecoveryState::Denied => "Our staff declined this recovery.".to_owned(),
            _ => "This recovery is closed.".to_owned(),
        };
    }
    let addresses = store
        .emails(recovery.account)
        .await?
        .into_iter()
        .filter(|e| e.verified_at.is_some())
        .map(|e| AddressChoice {
            id: e.id.0,
            label: masked(&e.address),
        })
        .collect();
    let username = store
        .account(recovery.account)
        .await?
        .map(|a| a.username)
        .unwrap_or_default();
    let page = RecoveryPage {
        error,
        notice,
        csrf_token: session.csrf_token(),
        username,
        state: recovery.state.as_str(),
        evidence: rows.iter().map(describe).collect(),
        decision: decision_line,
        finish_label,
        next_steps,
        addresses,
        completes_at: recovery.completes_at.map(crate::notify::format_time),
    };
    Ok((jar, render(status, &page)?).into_response())
}

#[utoipa::path(
    get, path = "/recovery", tag = TAG_LOCKOUT,
    summary = "This browser's lockout recovery",
    responses(
        (
            status = 200,
            description = "This browser's recovery (evidence, the policy's decision, forms), or \
                that there is none.",
            content_type = HTML,
            body = String,
        ),
    ),
)]
async fn recovery_page(
    State(state): State<AppState>,
    jar: SignedCookieJar,
) -> Result<Response, AppError> {
    let store = store(&state)?;
    match current(store, &jar).await? {
        Some(recovery) => show(&state, jar, &recovery, StatusCode::OK, None, None).await,
        None => render(
            StatusCode::OK,
            &MessagePage {
                error: None,
                heading: "No recovery in progress",
                message: "This browser has no account recovery under way.",
                link: Some(("/ap/recovery/lost", "Recover your account")),
            },
        ),
    }
}

/// The browser's collecting recovery, or the reason it cannot take evidence.
async fn collecting(state: &AppState, jar: &SignedCookieJar) -> Result<LockoutRecovery, AppError> {
    match current(store(state)?, jar).await? {
        Some(r) if r.state == RecoveryState::Collecting => Ok(r),
        Some(_) => Err(AppError::Conflict {
            message: "this recovery no longer takes evidence",
        }),
        None => Err(AppError::NotFound),
    }
}

// ---- Adding evidence -------------------------------------------------------------------------

#[derive(Deserialize, ToSchema)]
struct SecretForm {
    value: String,
}

#[utoipa::path(
    post, path = "/recovery/password", tag = TAG_LOCKOUT,
    summary = "Add the password",
    request_body(content = SecretForm, content_type = FORM),
    responses(
        (
            status = 200,
            description = "Accepted (the recovery page again).",
            content_type = HTML,
            body = String,
        ),
        (status = 401, description = "Incorrect password (the recovery page again)."),
        (status = 404, description = "This browser has no recovery."),
        (status = 409, description = "This recovery no longer takes evidence."),
    ),
)]
async fn add_password(
    State(state): State<AppState>,
    ClientAddress(source): ClientAddress,
    jar: SignedCookieJar,
    CsrfForm { form, .. }: CsrfForm<SecretForm>,
) -> Result<Response, AppError> {
    let recovery = collecting(&state, &jar).await?;
    let password = Zeroizing::new(form.value);
    let ok = crate::auth::check_account_password(&state, recovery.account, password).await?;
    if !ok {
        return show(
            &state,
            jar,
            &recovery,
            StatusCode::UNAUTHORIZED,
            Some("That password is not right."),
            None,
        )
        .await;
    }
    add(
        &state,
        &recovery,
        EvidenceKind::Password,
        String::new(),
        String::new(),
        source,
    )
    .await?;
    show(
        &state,
        jar,
        &recovery,
        StatusCode::OK,
        None,
        Some("Password accepted."),
    )
    .await
}

#[utoipa::path(
    post, path = "/recovery/code", tag = TAG_LOCKOUT,
    summary = "Add a recovery code",
    request_body(content = SecretForm, content_type = FORM),
    responses(
        (
            status = 200,
            description = "Accepted (the recovery page again).",
            content_type = HTML,
            body = String,
        ),
        (
            status = 401,
            description = "Not a recovery code of the account, or used (the recovery page again).",
        ),
        (status = 404, description = "This browser has no recovery."),
        (status = 409, description = "This recovery no longer takes evidence."),
    ),
)]
async fn add_recovery_code(
    State(state): State<AppState>,
    ClientAddress(source): ClientAddress,
    jar: SignedCookieJar,
    CsrfForm { form, .. }: CsrfForm<SecretForm>,
) -> Result<Response, AppError> {
    let recovery = collecting(&state, &jar).await?;
    let store = store(&state)?;
    let input = Zeroizing::new(form.value);
    let stored: Vec<(i64, String)> = store
        .unused_recovery_codes(recovery.account)
        .await?
        .into_iter()
        .map(|r| (r.id.0, r.code_hash))
        .collect();
    // argon2 for each unused code: on the hashing pool, off the async threads.
    let matched = crate::hashing::run("recovery code task", move || {
        codes::match_recovery_code(&input, &stored)
    })
    .await?;
    let wrong = || {
        show(
            &state,
            jar.clone(),
            &recovery,
            StatusCode::UNAUTHORIZED,
            Some("That recovery code is not valid (each code works once)."),
            None,
        )
    };
    let id = match matched {
        Ok(Some(id)) => dar_store::RecoveryCodeId(id),
        Ok(None) | Err(dar_account_provider::AccountProviderError::MalformedCode) => {
            return wrong().await;
        }
        Err(e) => return Err(e.into()),
    };
    let used = store
        .use_recovery_code(
            recovery.account,
            id,
            now(&state),
            &[],
            &[audit(
                recovery.account,
                "user",
                "recovery_code.used",
                format!("recovery {} code {}", recovery.id.0, id.0),
                source,
            )],
        )
        .await?;
    if !used {
        return wrong().await;
    }
    add(
        &state,
        &recovery,
        EvidenceKind::RecoveryCode,
        id.0.to_string(),
        String::new(),
        source,
    )
    .await?;
    show(
        &state,
        jar,
        &recovery,
        StatusCode::OK,
        None,
        Some("Recovery code accepted."),
    )
    .await
}

#[derive(Deserialize, ToSchema)]
struct SendForm {
    email: i64,
}

#[utoipa::path(
    post, path = "/recovery/email/send", tag = TAG_LOCKOUT,
    summary = "Mail a code to a verified address",
    request_body(content = SendForm, content_type = FORM),
    responses(
        (
            status = 200,
            description = "A code was mailed (the recovery page again).",
            content_type = HTML,
            body = String,
        ),
        (status = 400, description = "Not a verified address of the account."),
        (status = 404, description = "This browser has no recovery."),
        (
            status = 409,
            description = "This recovery no longer takes evidence, or a code is already out.",
        ),
        (status = 429, description = "Too many codes for this account or address this hour."),
    ),
)]
async fn send_email_code(
    State(state): State<AppState>,
    ClientAddress(source): ClientAddress,
    jar: SignedCookieJar,
    CsrfForm { form, .. }: CsrfForm<SendForm>,
) -> Result<Response, AppError> {
    let recovery = collecting(&state, &jar).await?;
    let store = store(&state)?;
    let now = now(&state);
    let Some(address) = store
        .emails(recovery.account)
        .await?
        .into_iter()
        .find(|e| e.id.0 == form.email && e.verified_at.is_some())
    else {
        return Err(AppError::BadRequest {
            message: "choose one of the account's verified addresses",
        });
    };
    let hour_ago = now - 3600;
    if store
        .email_codes_sent_since(recovery.account, hour_ago)
        .await?
        >= EMAIL_CODES_PER_ACCOUNT_PER_HOUR
        || store
            .email_codes_sent_to_since(&address.address, hour_ago)
            .await?
            >= EMAIL_CODES_PER_ADDRESS_PER_HOUR
    {
        return Err(AppError::RateLimited {
            retry_after_secs: 3600,
        });
    }
    let code = codes::generate_email_code(&mut getrandom::SysRng)?;
    let hash = codes::email_code_hash(&recovery.id.0.to_string(), code.as_str());
    let minutes = codes::EMAIL_CODE_LIFETIME.whole_minutes();
    let mail = to_all(
        &state.site_name(),
        std::slice::from_ref(&address.address),
        "Your account recovery code",
        &format!(
            "Your code to recover your account is: {}\r\n\r\nIt works once, for {minutes} \
             minutes. If you did not ask for it, someone is trying to recover your account: \
             sign in with your second factor to end that recovery.",
            code.as_str()
        ),
    );
    let issued = store
        .issue_email_code(
            recovery.id,
            address.id,
            &hash,
            now,
            now + codes::EMAIL_CODE_LIFETIME.whole_seconds(),
            &mail,
            &[audit(
                recovery.account,
                "user",
                "email_code.sent",
                format!("recovery {} address {}", recovery.id.0, address.id.0),
                source,
            )],
        )
        .await?;
    if issued.is_none() {
        return Err(AppError::Conflict {
            message: "this recovery no longer takes evidence",
        });
    }
    let notice = format!("A code is on its way to {}.", masked(&address.address));
    show(&state, jar, &recovery, StatusCode::OK, None, Some(&notice)).await
}

#[utoipa::path(
    post, path = "/recovery/email/check", tag = TAG_LOCKOUT,
    summary = "Add a mailed code",
    request_body(content = SecretForm, content_type = FORM),
    responses(
        (
            status = 200,
            description = "Accepted (the recovery page again).",
            content_type = HTML,
            body = String,
        ),
        (
            status = 401,
            description = "Not the code, expired, or out of attempts (the recovery page again).",
        ),
        (status = 404, description = "This browser has no recovery."),
        (status = 409, description = "This recovery no longer takes evidence."),
    ),
)]
async fn check_email_code(
    State(state): State<AppState>,
    ClientAddress(source): ClientAddress,
    jar: SignedCookieJar,
    CsrfForm { form, .. }: CsrfForm<SecretForm>,
) -> Result<Response, AppError> {
    use dar_store::EmailCodeCheck as C;
    let recovery = collecting(&state, &jar).await?;
    let store = store(&state)?;
    let input = Zeroizing::new(form.value);
    // A malformed entry counts as a wrong guess: hash something that matches no code.
    let normalized = codes::normalize_email_code(&input)
        .map(|c| c.to_string())
        .unwrap_or_else(|_| "-".to_owned());
    let hash = codes::email_code_hash(&recovery.id.0.to_string(), &normalized);
    let check = store
        .check_email_code(
            recovery.id,
            &hash,
            now(&state),
            codes::EMAIL_CODE_MAX_ATTEMPTS,
        )
        .await?;
    let refusal = match check {
        C::Accepted { code, .. } => {
            add(
                &state,
                &recovery,
                EvidenceKind::EmailCode,
                code.0.to_string(),
                String::new(),
                source,
            )
            .await?;
            return show(
                &state,
                jar,
                &recovery,
                StatusCode::OK,
                None,
                Some("Email code accepted."),
            )
            .await;
        }
        C::Wrong { .. } => "That code is not right.",
        C::NoCode => "Ask for a code first.",
        C::Used => "That code was already used.",
        C::TooManyAttempts => "Too many wrong codes: ask for a new one.",
        C::Expired => "That code has expired: ask for a new one.",
    };
    show(
        &state,
        jar,
        &recovery,
        StatusCode::UNAUTHORIZED,
        Some(refusal),
        None,
    )
    .await
}

// ---- The decision ------------------------------------------------------------------------

#[utoipa::path(
    post, path = "/recovery/finish", tag = TAG_LOCKOUT,
    summary = "Ask for the policy's decision",
    request_body(content = NoFields, content_type = FORM),
    responses(
        (
            status = 200,
            description = "The policy's decision was applied (unlock, timed unlock, review or \
                refusal).",
            content_type = HTML,
            body = String,
        ),
        (status = 404, description = "This browser has no recovery."),
        (
            status = 409,
            description = "This recovery no longer takes evidence, or changed meanwhile.",
        ),
        (status = 422, description = "Not enough evidence yet (the recovery page again)."),
    ),
)]
async fn finish(
    State(state): State<AppState>,
    ClientAddress(source): ClientAddress,
    jar: SignedCookieJar,
    CsrfForm { .. }: CsrfForm<NoFields>,
) -> Result<Response, AppError> {
    let recovery = collecting(&state, &jar).await?;
    let store = store(&state)?;
    let now = now(&state);
    let rows = store.evidence(recovery.id).await?;
    let decision = dar_account_provider::decide(policy(&state)?, &evidence_set(&rows, now));
    let outcome = apply(&state, &recovery, &decision, now, source).await?;
    let Some(changed) = outcome else {
        return show(
            &state,
            jar,
            &recovery,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("Not enough evidence yet: add more below."),
            None,
        )
        .await;
    };
    if !changed {
        return Err(AppError::Conflict {
            message: "this recovery changed meanwhile: reload the page",
        });
    }
    let recovery = store
        .recovery(recovery.id)
        .await?
        .ok_or(AppError::NotFound)?;
    show(&state, jar, &recovery, StatusCode::OK, None, None).await
}

/// Carries out `decision` for a collecting recovery: `None` when it is a refusal, else whether
/// this caller's change won.
///
/// # Errors
///
/// [`AppError`] when the database fails.
pub(crate) async fn apply(
    state: &AppState,
    recovery: &LockoutRecovery,
    decision: &Decision,
    now: i64,
    source: Option<IpAddr>,
) -> Result<Option<bool>, AppError> {
    let store = store(state)?;
    let addresses = verified_addresses(store, recovery.account).await?;
    let site = state.site_name();
    let origin = state
        .public_origin()
        .as_str()
        .trim_end_matches('/')
        .to_owned();
    let from = [RecoveryState::Collecting];
    let a = recovery.account;
    let changed = match decision {
        Decision::UnlockNow { rule } => {
            let mails = to_all(
                &site,
                &addresses,
                "Your account was recovered",
                &format!(
                    "Your account was unlocked through account recovery: its second factor was \
                     removed and every session was signed out.\r\nSign in with your password \
                     and set up a new second factor (it comes with new recovery codes), then \
                     save a new recovery token: \
                     {origin}/ap/recovery/setup\r\n\r\nIf this was not you, contact us at \
                     once: someone who knows your password holds your account."
                ),
            );
            let change = StateChange::new(&from, RecoveryState::Unlocked, now).outcome_rule(rule);
            store
                .set_recovery_state(
                    recovery.id,
                    &change,
                    &mails,
                    &[audit(
                        a,
                        "user",
                        "recovery.unlocked",
                        unlocked_detail(recovery, rule),
                        source,
                    )],
                )
                .await?
        }
        Decision::TimedUnlock {
            rule,
            waiting_period,
        } => {
            let completes_at = now.saturating_add(waiting_period.whole_seconds());
            let key = link_key(state)?;
            let cancel_hash = sha256_hex(&cancel_secret(&key, recovery.id));
            let link = cancel_link(state.public_origin(), &key, recovery.id);
            let mails = to_all(
                &site,
                &addresses,
                "Your account will be unlocked unless you cancel",
                &format!(
                    "Someone proved enough to recover your account, which unlocks at {} \
                     (its second factor is then removed and every session signed out).\r\n\r\n\
                     If this is not you, cancel now:\r\n{link}\r\n\r\nSigning in with your \
                     second factor cancels it too.",
                    crate::notify::format_time(completes_at)
                ),
            );
            let change = StateChange::new(&from, RecoveryState::Pending, now)
                .outcome_rule(rule)
                .completes_at(completes_at)
                .cancel_hash(&cancel_hash);
            store
                .set_recovery_state(
                    recovery.id,
                    &change,
                    &mails,
                    &[audit(
                        a,
                        "user",
                        "recovery.pending",
                        format!(
                            "recovery {} rule {rule} completes {completes_at}",
                            recovery.id.0
                        ),
                        source,
                    )],
                )
                .await?
        }
        Decision::Review { rule } => {
            let key = link_key(state)?;
            let cancel_hash = sha256_hex(&cancel_secret(&key, recovery.id));
            let link = cancel_link(state.public_origin(), &key, recovery.id);
            let mails = to_all(
                &site,
                &addresses,
                "A recovery of your account awaits review",
                &format!(
                    "Someone asked to recover your account; our staff will review it.\r\n\r\n\
                     If this is not you, cancel it:\r\n{link}"
                ),
            );
            let change = StateChange::new(&from, RecoveryState::Review, now)
                .outcome_rule(rule)
                .cancel_hash(&cancel_hash);
            store
                .set_recovery_state(
                    recovery.id,
                    &change,
                    &mails,
                    &[audit(
                        a,
                        "user",
                        "recovery.review",
                        format!("recovery {} rule {rule}", recovery.id.0),
                        source,
                    )],
                )
                .await?
        }
        _ => {
            store
                .record_event(
                    now,
                    &[],
                    &[audit(
                        a,
                        "user",
                        "recovery.refused",
                        format!("recovery {}", recovery.id.0),
                        source,
                    )],
                )
                .await?;
            return Ok(None);
        }
    };
    Ok(Some(changed))
}

fn unlocked_detail(recovery: &LockoutRecovery, rule: &str) -> String {
    format!("recovery {} rule {rule}", recovery.id.0)
}

// ---- Cancel links --------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "recovery_cancel.html")]
struct CancelPage<'a> {
    error: Option<&'a str>,
    csrf_token: String,
    secret: &'a str,
}

#[derive(Deserialize)]
struct CancelQuery {
    c: String,
}

fn cancel_secret_from(text: &str) -> Option<&str> {
    (text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())).then_some(text)
}

#[utoipa::path(
    get,
    path = "/recovery/cancel",
    tag = TAG_LOCKOUT,
    params(("c" = String, Query, description = "The cancel link's secret (64 hex digits).")),
    summary = "Cancel a recovery: the button",
    responses(
        (
            status = 200,
            description = "The cancel button (mail scanners follow links: a GET changes nothing).",
            content_type = HTML,
            body = String,
        ),
        (status = 404, description = "No `c`, or not a cancel link (64 hex digits)."),
    ),
)]
async fn cancel_page(
    jar: SignedCookieJar,
    RawQuery(query): RawQuery,
) -> Result<Response, AppError> {
    let q: CancelQuery = serde_urlencoded::from_str(query.as_deref().unwrap_or(""))
        .map_err(|_| AppError::NotFound)?;
    let secret = cancel_secret_from(&q.c).ok_or(AppError::NotFound)?;
    let (jar, session) = crate::security::ensure_session(jar)?;
    let page = CancelPage {
        error: None,
        csrf_token: session.csrf_token(),
        secret,
    };
    Ok((jar, render(StatusCode::OK, &page)?).into_response())
}

#[derive(Deserialize, ToSchema)]
struct CancelForm {
    c: String,
}

#[utoipa::path(
    post, path = "/recovery/cancel", tag = TAG_LOCKOUT,
    summary = "Cancel a recovery",
    request_body(content = CancelForm, content_type = FORM),
    responses(
        (
            status = 200,
            description = "The recovery was cancelled.",
            content_type = HTML,
            body = String,
        ),
        (status = 404, description = "Not a cancel link (64 hex digits)."),
        (
            status = 410,
            description = "Nothing to cancel: unknown, used, or the recovery has ended.",
        ),
    ),
)]
async fn cancel(
    State(state): State<AppState>,
    ClientAddress(source): ClientAddress,
    CsrfForm { form, .. }: CsrfForm<CancelForm>,
) -> Result<Response, AppError> {
    let store = store(&state)?;
    let secret = cancel_secret_from(&form.c).ok_or(AppError::NotFound)?;
    let hash = sha256_hex(secret);
    let cancelled = match store.recovery_by_cancel_hash(&hash).await? {
        Some(recovery) if recovery.state.is_open() => {
            let addresses = verified_addresses(store, recovery.account).await?;
            let mails = to_all(
                &state.site_name(),
                &addresses,
                "The recovery of your account was cancelled",
                "A recovery of your account was cancelled through the link we sent. Nothing \
                 about your account changed.",
            );
            let detail = format!("recovery {}", recovery.id.0);
            store
                .cancel_recovery_by_hash(
                    &hash,
                    now(&state),
                    &mails,
                    &[audit(
                        recovery.account,
                        "link",
                        "recovery.cancelled",
                        detail,
                        source,
                    )],
                )
                .await?
        }
        _ => false,
    };
    let (heading, message) = if cancelled {
        (
            "Recovery cancelled",
            "The recovery was cancelled; your account is as it was. If you did not start it, \
             change your password.",
        )
    } else {
        (
            "Nothing to cancel",
            "This link is unknown, already used, or its recovery has ended.",
        )
    };
    render(
        if cancelled {
            StatusCode::OK
        } else {
            StatusCode::GONE
        },
        &MessagePage {
            error: None,
            heading,
            message,
            link: None,
        },
    )
}

#[cfg(test)]
mod tests;
