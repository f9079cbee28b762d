//! Delivering the recovery provider's outbox: token status callbacks to account providers
//! (§3.6) and notices to users that a recovery token was exercised (§3.4 step 6, §6.2).
//!
//! The role crate writes each [`OutboxMessage`] in the same transaction as the change it
//! reports; this module reads the due ones ([`RecoveryProviderStore::pending_outbox`]) and sends
//! them:
//!
//! - [`OutboxMessage::TokenStatus`]: an HTTPS `POST` of the `application/x-www-form-urlencoded`
//!   body to the account provider's well-known token-status URL, through a
//!   [`StatusCallbackClient`] that never follows redirects, times out (3 s to connect, 5 s in
//!   all), refuses hosts that are or resolve to non-public addresses, and speaks only https.
//!   Any 2xx answer is delivery; anything else is a failure.
//! - [`OutboxMessage::UserNotification`]: handed to a [`Notifier`]. [`EmlFileNotifier`] writes an
//!   RFC 5322 message (`outbox-<id>.eml`) into a directory, for the demo and for a mail system
//!   that picks files up; [`MailerNotifier`] sends the same message over SMTP (lettre, through
//!   [`crate::mail::Mailer`], as the account provider's mail).
//!
//! A success marks the row delivered ([`RecoveryProviderStore::mark_outbox_delivered`]); a
//! failure records the attempt and the next one, after an exponential [`RetryPolicy::backoff`]
//! (30 s, 60 s, 120 s, ... capped at 6 h). After [`RetryPolicy::max_attempts`] failed attempts,
//! or at once when a message can never be sent as it stands (an http issuer without the
//! development option, a user with no mail address), the row is *parked*: left undelivered, with
//! its failed attempts counted, and its next attempt [`PARKED_FOR`] away, so staff find it
//! (`delivered_at is null` and `attempts >= max_attempts`) and can re-queue it by setting
//! `next_attempt_at` (and `attempts`) back. Parked rows are never marked delivered: the table
//! does not claim a callback arrived that did not.
//!
//! # Delivery is at least once
//!
//! The state lives in the database, so the worker survives restarts, but a worker that stops
//! between sending and marking sends again, and so does a second worker reading the same table
//! (run one per deployment). That is safe: an account provider's token-status handling is
//! idempotent (a status applies to a token's record, and applying it twice leaves the same
//! record; `dar-account-provider` does so), and [`EmlFileNotifier`] names each file after the
//! outbox id, so a repeat overwrites the same file with the same message.
//!
//! # Logging
//!
//! One line per outcome, with the outbox id, the message kind and a failure code. Token ids,
//! form bodies, user ids, addresses and response bodies are never logged (the URL, which holds
//! only the issuer, appears at debug level).
//!
//! # Example
//!
//! ```no_run
//! # async fn run(store: dar_store::Store) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use dar_server::outbox::{
//!     CallbackSettings, EmlFileNotifier, MailSettings, OutboxWorker, RetryPolicy, spawn,
//! };
//!
//! let callbacks = dar_server::outbox::StatusCallbackClient::new(CallbackSettings::default())?;
//! let mail = MailSettings::new(
//!     "dar@rp.example.net",
//!     "Example RP",
//!     "https://rp.example.net/dar/recoveries",
//! )?;
//! let notifier = EmlFileNotifier::new("/var/spool/dar/mail", mail);
//! let worker = OutboxWorker::new(store, callbacks, Arc::new(notifier), RetryPolicy::default());
//! let (stop, shutdown) = tokio::sync::watch::channel(false);
//! let clock = Arc::new(dar_server::clock::SystemClock);
//! let task = spawn(worker, clock, Duration::from_secs(10), shutdown);
//! // ... serve ...
//! stop.send(true)?;
//! task.await?;
//! # Ok(())
//! # }
//! ```

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use dar_discovery::address::is_public;
use dar_discovery::{PublicResolver, ResolveFailure};
use dar_recovery_provider::{
    OutboxEntry, OutboxId, OutboxMessage, RecoveryProviderStore, StatusCallback, StoreFault,
    UserNotification,
};
use futures_util::StreamExt as _;
use reqwest::header::CONTENT_TYPE;
use reqwest::{Client, Url, redirect};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::clock::Clock;
use crate::mail::{MailError, Mailer, OutgoingMail};

/// How far away a parked row's next attempt is set: far enough that `pending_outbox` never
/// returns it again by itself (about 100 years).
pub const PARKED_FOR: time::Duration = time::Duration::days(36_525);

/// The form body's media type (§3.6.1).
pub const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

/// Longest nickname, in characters, quoted in a notification; longer ones are cut with `…`.
pub const MAX_NICKNAME_CHARS: usize = 100;

// ---------------------------------------------------------------------------------------------
// Retry schedule (pure)

/// When to try a failed message again, and when to stop.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The wait after the first failure; each further failure doubles it (default 30 s).
    pub base_delay: Duration,
    /// The longest wait between attempts (default 6 h).
    pub max_delay: Duration,
    /// Failed attempts after which a message is parked for staff (default 12: about 20 hours
    /// of trying with the default delays). Zero behaves as one.
    pub max_attempts: u32,
    /// Most messages taken per [`OutboxWorker::run_once`] (default 32).
    pub batch_size: u32,
    /// Most messages in flight at once within a batch (default 4; zero behaves as one).
    pub concurrency: usize,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base_delay: Duration::from_secs(30),
            max_delay: Duration::from_secs(6 * 60 * 60),
            max_attempts: 12,
            batch_size: 32,
            concurrency: 4,
        }
    }
}

/// What to do with a message whose delivery just failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Try again after this long.
    RetryAfter(Duration),
    /// Stop trying: park the row for staff.
    GiveUp,
}

impl RetryPolicy {
    /// The wait after a failure when `attempts` attempts had failed before it:
    /// `base_delay × 2^attempts`, at most `max_delay` (saturating, never overflowing).
    pub fn backoff(&self, attempts: u32) -> Duration {
        let factor = 1u32.checked_shl(attempts).unwrap_or(u32::MAX);
        self.base_delay
            .checked_mul(factor)
            .unwrap_or(Duration::MAX)
            .min(self.max_delay)
    }

    /// The decision after a failure when `attempts` attempts had failed before it: give up once
    /// this failure makes `max_attempts`, or at once when the failure is `permanent`.
    pub fn after_failure(&self, attempts: u32, permanent: bool) -> AfterFailure {
        let failed = attempts.saturating_add(1);
        if permanent || failed >= self.max_attempts.max(1) {
            AfterFailure::GiveUp
        } else {
            AfterFailure::RetryAfter(self.backoff(attempts))
        }
    }

    /// The `next_attempt_at` to record for a failure at `now`.
    pub fn next_attempt_at(
        &self,
        attempts: u32,
        permanent: bool,
        now: OffsetDateTime,
    ) -> OffsetDateTime {
        match self.after_failure(attempts, permanent) {
            AfterFailure::RetryAfter(delay) => {
                let delay = time::Duration::try_from(delay).unwrap_or(PARKED_FOR);
                now.saturating_add(delay)
            }
            AfterFailure::GiveUp => now.saturating_add(PARKED_FOR),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Failures

/// Why one message was not delivered. No variant carries any part of a message, a response or a
/// token id.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// The issuer is plain http and the development option is off, or http for a host that is
    /// not loopback (§3.6: the well-known location of the https origin). Permanent.
    #[error("status callbacks are only sent over https")]
    InsecureScheme,
    /// The callback URL cannot be built from the issuer. Permanent.
    #[error("the issuer does not make a token-status URL")]
    UnsupportedUrl,
    /// The host is, or resolves only to, non-public addresses (§1.8): refused before
    /// connecting.
    #[error("the issuer resolves to no public address")]
    NonPublicAddress,
    /// The host name does not resolve.
    #[error("the issuer's host name does not resolve")]
    Resolve,
    /// No connection could be made.
    #[error("could not connect to the issuer")]
    Connect,
    /// The TLS handshake failed.
    #[error("TLS handshake with the issuer failed")]
    Tls,
    /// The connect timeout or the total timeout passed.
    #[error("the issuer took too long to answer")]
    Timeout,
    /// The connection broke or the answer is not well-formed HTTP.
    #[error("the HTTP exchange with the issuer failed")]
    Transport,
    /// The issuer answered with a redirect, which is never followed (§3.6.2: only the
    /// well-known location is called).
    #[error("the issuer answered with a redirect ({status}), which is never followed")]
    Redirected {
        /// The 3xx status code.
        status: u16,
    },
    /// The issuer answered a status that is neither 2xx nor 3xx.
    #[error("the issuer answered HTTP status {0}")]
    Status(u16),
    /// No mail address is known for the user. Permanent.
    #[error("no mail address is known for the user")]
    NoRecipient,
    /// The notification would put a line break or non-ASCII text into a header. Permanent.
    #[error("the notification cannot be rendered safely")]
    Render,
    /// The notification could not be written.
    #[error("the notification could not be written")]
    Io,
    /// The SMTP server refused the notification or its recipient (a 5xx reply). Permanent.
    #[error("the mail server refused the notification")]
    MailRejected,
    /// The SMTP server could not be reached, timed out or answered 4xx.
    #[error("the mail server is unavailable")]
    MailUnavailable,
}

impl DeliveryError {
    /// A stable, machine-readable code for logs.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InsecureScheme => "callback_insecure_scheme",
            Self::UnsupportedUrl => "callback_unsupported_url",
            Self::NonPublicAddress => "callback_non_public_address",
            Self::Resolve => "callback_resolve_failed",
            Self::Connect => "callback_connect_failed",
            Self::Tls => "callback_tls_failed",
            Self::Timeout => "callback_timeout",
            Self::Transport => "callback_transport_failed",
            Self::Redirected { .. } => "callback_redirected",
            Self::Status(_) => "callback_bad_status",
            Self::NoRecipient => "notify_no_recipient",
            Self::Render => "notify_render_refused",
            Self::Io => "notify_io_failed",
            Self::MailRejected => "notify_mail_rejected",
            Self::MailUnavailable => "notify_mail_unavailable",
        }
    }

    /// Whether retrying cannot help while the message and the settings stay as they are; such a
    /// message is parked at once.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Self::InsecureScheme
                | Self::UnsupportedUrl
                | Self::NoRecipient
                | Self::Render
                | Self::MailRejected
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Status callbacks (§3.6)

/// What the deployment allows beyond the draft's defaults when calling back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallbackPolicy {
    /// Send to `http://` issuers whose host is loopback (local development only).
    pub danger_allow_http_loopback: bool,
    /// Send to hosts that are, or resolve to, non-public addresses.
    pub danger_allow_non_public_addresses: bool,
}

/// A status callback ready to send: where, and the form body. Debug never shows the body.
#[derive(Clone, PartialEq, Eq)]
pub struct StatusRequest {
    /// `https://<issuer>/.well-known/delegated-account-recovery/token-status`.
    pub url: Url,
    /// The `application/x-www-form-urlencoded` body (`id`, `status`, maybe `countersigned_id`).
    pub body: String,
}

impl fmt::Debug for StatusRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatusRequest")
            .field("url", &self.url.as_str())
            .field("body", &"[redacted]")
            .finish()
    }
}

/// Builds the request for `callback` and decides whether it may be sent at all.
///
/// # Errors
///
/// - [`DeliveryError::InsecureScheme`]: the issuer is http and the policy does not allow it, or
///   it is http and not loopback;
/// - [`DeliveryError::NonPublicAddress`]: the host is an address literal that is not public and
///   the policy does not allow it (names are checked when they resolve);
/// - [`DeliveryError::UnsupportedUrl`]: the issuer does not make the well-known URL.
pub fn status_request(
    callback: &StatusCallback,
    policy: CallbackPolicy,
) -> Result<StatusRequest, DeliveryError> {
    let issuer = &callback.issuer;
    // §3.6: the well-known location of the "https" origin; http only for loopback development.
    let http_allowed = policy.danger_allow_http_loopback && issuer.is_loopback();
    if !(issuer.is_https() || http_allowed) {
        return Err(DeliveryError::InsecureScheme);
    }
    let url = Url::parse(&callback.url()).map_err(|_| DeliveryError::UnsupportedUrl)?;
    let scheme_ok = match url.scheme() {
        "https" => true,
        "http" => http_allowed,
        _ => false,
    };
    // §3.6.2: only the well-known location, nothing a caller could steer elsewhere.
    let path_ok = url.path() == dar_core::TOKEN_STATUS_PATH && url.query().is_none();
    if !scheme_ok || !path_ok || url.username() != "" || url.password().is_some() {
        return Err(DeliveryError::UnsupportedUrl);
    }
    let host = url.host_str().ok_or(DeliveryError::UnsupportedUrl)?;
    let unbracketed = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    // §1.8 (SSRF): an address literal never reaches the resolver, so it is checked here.
    if let Ok(ip) = unbracketed.parse::<IpAddr>()
        && !policy.danger_allow_non_public_addresses
        && !is_public(ip)
    {
        return Err(DeliveryError::NonPublicAddress);
    }
    Ok(StatusRequest {
        url,
        body: callback.form_body(),
    })
}

/// The delivery verdict for an HTTP status: 2xx is delivered.
///
/// # Errors
///
/// [`DeliveryError::Redirected`] for 3xx (never followed), [`DeliveryError::Status`] otherwise.
pub fn check_callback_status(status: u16) -> Result<(), DeliveryError> {
    match status {
        200..=299 => Ok(()),
        300..=399 => Err(DeliveryError::Redirected { status }),
        _ => Err(DeliveryError::Status(status)),
    }
}

/// Settings of a [`StatusCallbackClient`]. Start from [`CallbackSettings::default`].
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct CallbackSettings {
    /// Longest wait for a TCP connection (default 3 s).
    pub connect_timeout: Duration,
    /// Longest wait for the whole exchange (default 5 s).
    pub total_timeout: Duration,
    /// Connect to loopback, private, link-local and other non-public addresses (default false).
    ///
    /// # Security
    ///
    /// A token's issuer names the host called back, so turning this on lets whoever issues a
    /// token make this server post into its own network (§1.8). Development, demo and tests
    /// only.
    pub danger_allow_non_public_addresses: bool,
    /// Call `http://` issuers whose host is loopback (default false).
    ///
    /// # Security
    ///
    /// Development only; never admits http for a host that is not loopback, and loopback is
    /// still refused unless `danger_allow_non_public_addresses` is on too.
    pub danger_allow_http_loopback: bool,
    /// Extra trusted root certificates, each a PEM text of one or more certificates, added to
    /// the platform's roots.
    pub extra_root_certificates: Vec<Vec<u8>>,
}

impl Default for CallbackSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(3),
            total_timeout: Duration::from_secs(5),
            danger_allow_non_public_addresses: false,
            danger_allow_http_loopback: false,
            extra_root_certificates: Vec::new(),
        }
    }
}

/// Why a [`StatusCallbackClient`] could not be built.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientBuildError {
    /// An entry of `extra_root_certificates` is not PEM or holds no usable certificate.
    #[error("an extra root certificate could not be used")]
    RootCertificate,
    /// The HTTP client could not be built.
    #[error("the HTTP client could not be built")]
    Client,
}

/// Sends token status callbacks (§3.6.1). Clones share the connection pool.
#[derive(Clone)]
pub struct StatusCallbackClient {
    client: Client,
    policy: CallbackPolicy,
    total_timeout: Duration,
}

impl fmt::Debug for StatusCallbackClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatusCallbackClient")
            .field("policy", &self.policy)
            .field("total_timeout", &self.total_timeout)
            .finish_non_exhaustive()
    }
}

impl StatusCallbackClient {
    /// A client with these settings: rustls, no redirects, no proxies, no cookies, no referer,
    /// the timeouts, and a resolver that refuses non-public addresses.
    ///
    /// # Errors
    ///
    /// [`ClientBuildError::RootCertificate`] for an unusable extra root,
    /// [`ClientBuildError::Client`] when the TLS client cannot be set up.
    pub fn new(settings: CallbackSettings) -> Result<Self, ClientBuildError> {
        let mut roots = Vec::new();
        for pem in &settings.extra_root_certificates {
            let bundle = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|_| ClientBuildError::RootCertificate)?;
            if bundle.is_empty() {
                return Err(ClientBuildError::RootCertificate);
            }
            roots.extend(bundle);
        }
        let client = Client::builder()
            // §3.6.2: only the well-known location; a redirect is a failure, never followed.
            .redirect(redirect::Policy::none())
            // A proxy would connect on our behalf, past the address check.
            .no_proxy()
            .https_only(!settings.danger_allow_http_loopback)
            // §1.8: every resolved address is checked before connecting.
            .dns_resolver(PublicResolver::new(
                settings.danger_allow_non_public_addresses,
            ))
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.total_timeout)
            .tls_certs_merge(roots)
            .referer(false)
            .user_agent(concat!("dar-server/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|_| ClientBuildError::Client)?;
        Ok(Self {
            client,
            policy: CallbackPolicy {
                danger_allow_http_loopback: settings.danger_allow_http_loopback,
                danger_allow_non_public_addresses: settings.danger_allow_non_public_addresses,
            },
            total_timeout: settings.total_timeout,
        })
    }

    /// POSTs the callback's form body to the issuer's token-status URL (§3.6.1). The response
    /// body is never read.
    ///
    /// # Errors
    ///
    /// The [`DeliveryError`] of the first check or step that fails; a 2xx answer is `Ok`.
    pub async fn send(&self, callback: &StatusCallback) -> Result<(), DeliveryError> {
        let request = status_request(callback, self.policy)?;
        debug!(url = request.url.as_str(), "sending status callback");
        let exchange = self
            .client
            .post(request.url)
            .header(CONTENT_TYPE, FORM_CONTENT_TYPE)
            .body(request.body)
            .send();
        let response = tokio::time::timeout(self.total_timeout, exchange)
            .await
            .map_err(|_| DeliveryError::Timeout)?
            .map_err(|e| map_error(&e))?;
        check_callback_status(response.status().as_u16())
    }
}

/// Names what went wrong in a reqwest error without keeping it (it may quote the server).
fn map_error(error: &reqwest::Error) -> DeliveryError {
    if let Some(failure) = find_in_chain::<ResolveFailure>(error) {
        return match failure {
            ResolveFailure::NonPublic => DeliveryError::NonPublicAddress,
            _ => DeliveryError::Resolve,
        };
    }
    if error.is_timeout() {
        DeliveryError::Timeout
    } else if find_in_chain::<rustls::Error>(error).is_some() {
        DeliveryError::Tls
    } else if error.is_connect() {
        DeliveryError::Connect
    } else {
        DeliveryError::Transport
    }
}

/// The first `T` in `error`'s source chain, stepping into the error an `io::Error` wraps (its
/// `source` skips it).
fn find_in_chain<'a, T: StdError + 'static>(error: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut next = Some(error);
    while let Some(current) = next {
        if let Some(found) = current.downcast_ref::<T>() {
            return Some(found);
        }
        next = match current.downcast_ref::<io::Error>() {
            Some(io_error) => io_error
                .get_ref()
                .map(|inner| inner as &(dyn StdError + 'static)),
            None => current.source(),
        };
    }
    None
}

// ---------------------------------------------------------------------------------------------
// User notifications (§3.4 step 6, §6.2)

/// A boxed future, so [`Notifier`] can be a trait object.
pub type NotifyFuture<'a> = Pin<Box<dyn Future<Output = Result<(), DeliveryError>> + Send + 'a>>;

/// Tells a user, out of band, that one of their recovery tokens was exercised (§6.2).
///
/// Implementations must be idempotent per outbox id: delivery is at least once.
pub trait Notifier: Send + Sync {
    /// Delivers `notification`, queued as outbox row `id`, at `now`.
    ///
    /// # Errors
    ///
    /// A [`DeliveryError`]; [`DeliveryError::is_permanent`] ones park the row.
    fn notify<'a>(
        &'a self,
        id: OutboxId,
        notification: &'a UserNotification,
        now: OffsetDateTime,
    ) -> NotifyFuture<'a>;
}

/// Why [`MailSettings`] were refused.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailSettingsError {
    /// The sender is not a plain ASCII `local@domain` address.
    #[error("the sender address is not a plain local@domain address")]
    From,
    /// The site name is empty, too long, or holds control characters.
    #[error("the site name is empty, too long, or holds control characters")]
    SiteName,
    /// The repudiation base URL does not parse, is not https (http only for loopback hosts), or
    /// carries credentials or a fragment.
    #[error("the repudiation base URL must be an https URL without credentials or fragment")]
    RepudiateUrl,
    /// The recipient domain is not a plain ASCII domain.
    #[error("the recipient domain is not a plain domain")]
    RecipientDomain,
}

/// What every notification mail is built from; all of it comes from the deployment's
/// configuration, never from a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailSettings {
    from: String,
    site_name: String,
    repudiate_url: Url,
    recipient_domain: Option<String>,
}

impl MailSettings {
    /// Checked settings: the `From` address, the recovery provider's name as users know it, and
    /// the page where a signed-in user repudiates a recovery (the link adds
    /// `countersigned_id=<hex>` to its query).
    ///
    /// # Errors
    ///
    /// A [`MailSettingsError`] naming the refused value.
    pub fn new(
        from: &str,
        site_name: &str,
        repudiate_url: &str,
    ) -> Result<Self, MailSettingsError> {
        if !is_addr_spec(from) {
            return Err(MailSettingsError::From);
        }
        let name_ok = !site_name.trim().is_empty()
            && site_name.chars().count() <= 100
            && !site_name.chars().any(is_unsafe_char);
        if !name_ok {
            return Err(MailSettingsError::SiteName);
        }
        let url = Url::parse(repudiate_url).map_err(|_| MailSettingsError::RepudiateUrl)?;
        let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
        let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && loopback);
        if !scheme_ok
            || url.username() != ""
            || url.password().is_some()
            || url.fragment().is_some()
            || url.host_str().is_none()
        {
            return Err(MailSettingsError::RepudiateUrl);
        }
        Ok(Self {
            from: from.to_owned(),
            site_name: site_name.to_owned(),
            repudiate_url: url,
            recipient_domain: None,
        })
    }

    /// Also mail users whose id is not an address at `<user id>@<domain>` (when the user id is a
    /// valid local part). Until accounts carry a mail address, this is how the demo's users
    /// (`alice`) get mail.
    ///
    /// # Errors
    ///
    /// [`MailSettingsError::RecipientDomain`] when `domain` is not a plain ASCII domain.
    pub fn with_recipient_domain(mut self, domain: &str) -> Result<Self, MailSettingsError> {
        if !is_domain(domain) {
            return Err(MailSettingsError::RecipientDomain);
        }
        self.recipient_domain = Some(domain.to_owned());
        Ok(self)
    }

    /// The address to notify `user` at: the user id when it is an address, else
    /// `<user id>@<recipient domain>` when one is configured and the id is a valid local part.
    pub fn recipient(&self, user: &dar_recovery_provider::UserId) -> Option<String> {
        let id = user.as_str();
        if is_addr_spec(id) {
            return Some(id.to_owned());
        }
        let domain = self.recipient_domain.as_deref()?;
        let address = format!("{id}@{domain}");
        is_addr_spec(&address).then_some(address)
    }

    /// The repudiation link for a recovery: the configured URL with
    /// `countersigned_id=<hex>` appended to its query.
    pub fn repudiation_link(&self, notification: &UserNotification) -> Url {
        let mut url = self.repudiate_url.clone();
        url.query_pairs_mut().append_pair(
            "countersigned_id",
            &notification.countersigned_id.to_string(),
        );
        url
    }
}

/// Renders the RFC 5322 message (CRLF line ends, UTF-8 8bit text body) telling the user at `to`
/// that a recovery token was exercised: which account provider, which nickname, when, and the
/// link to repudiate the recovery. The `Message-ID` derives from the outbox id, so a repeat
/// delivery is recognisably the same message.
///
/// Header values never hold a line break or non-ASCII text: the nickname appears only in the
/// body, with control and line-separator characters replaced and its length capped.
///
/// # Errors
///
/// [`DeliveryError::Render`] when a header value would hold CR, LF or non-ASCII text (refused,
/// not encoded), or a date cannot be formatted.
pub fn render_eml(
    id: OutboxId,
    notification: &UserNotification,
    mail: &MailSettings,
    to: &str,
    now: OffsetDateTime,
) -> Result<String, DeliveryError> {
    let domain = mail
        .from
        .rsplit_once('@')
        .map_or("localhost", |(_, domain)| domain);
    let date = now.format(&Rfc2822).map_err(|_| DeliveryError::Render)?;
    let headers = [
        ("From", mail.from.clone()),
        ("To", to.to_owned()),
        ("Subject", subject(notification)),
        ("Date", date),
        ("Message-ID", format!("<dar-outbox-{}@{domain}>", id.0)),
        ("MIME-Version", "1.0".to_owned()),
        ("Content-Type", "text/plain; charset=utf-8".to_owned()),
        ("Content-Transfer-Encoding", "8bit".to_owned()),
        ("Auto-Submitted", "auto-generated".to_owned()),
    ];
    let mut out = String::new();
    for (name, value) in &headers {
        // RFC 5322 §2.2: a header field is one line of printable ASCII; a CR or LF here would
        // start a header or the body of an attacker's choosing.
        if !value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err(DeliveryError::Render);
        }
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    for line in body_lines(notification, mail)? {
        out.push_str(&line);
        out.push_str("\r\n");
    }
    Ok(out)
}

/// The notice's subject line.
fn subject(notification: &UserNotification) -> String {
    format!(
        "A recovery token for {} was used",
        notification.issuer.authority()
    )
}

/// The notice's text, one entry per line.
fn body_lines(
    notification: &UserNotification,
    mail: &MailSettings,
) -> Result<Vec<String>, DeliveryError> {
    let issuer = notification.issuer.as_str();
    let used_at = notification
        .at
        .format(&Rfc2822)
        .map_err(|_| DeliveryError::Render)?;
    let nickname = notification
        .nickname
        .as_deref()
        .map(safe_nickname)
        .filter(|n| !n.is_empty());
    let link = mail.repudiation_link(notification);
    let mut body = vec![
        "Hello,".to_owned(),
        String::new(),
        format!(
            "A recovery token you saved with {} was just used to recover your account",
            mail.site_name
        ),
        format!("at {issuer}."),
        String::new(),
        format!("Account provider: {issuer}"),
    ];
    if let Some(nickname) = &nickname {
        body.push(format!("Token nickname:   \"{nickname}\""));
    }
    body.extend([
        format!("Used at:          {used_at}"),
        String::new(),
        "If this was you, there is nothing more to do.".to_owned(),
        String::new(),
        "If it was not you, repudiate this recovery now: sign in and confirm at the link"
            .to_owned(),
        format!("below. {issuer} will be told, so it can undo the recovery."),
        String::new(),
        link.to_string(),
        String::new(),
        format!("-- {}", mail.site_name),
    ]);
    Ok(body)
}

/// The nickname as it may appear in a message body: control characters, line and paragraph
/// separators and bidirectional overrides become U+FFFD, and it is cut at
/// [`MAX_NICKNAME_CHARS`].
pub fn safe_nickname(nickname: &str) -> String {
    let mut out: String = nickname
        .chars()
        .take(MAX_NICKNAME_CHARS)
        .map(|c| if is_unsafe_char(c) { '\u{FFFD}' } else { c })
        .collect();
    if nickname.chars().nth(MAX_NICKNAME_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// Characters that could break a line or reorder displayed text.
fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// A plain ASCII `local@domain` address: dot-atom local part (RFC 5322 §3.4.1) and a domain of
/// letters, digits, hyphens and dots; at most 254 bytes.
fn is_addr_spec(text: &str) -> bool {
    let Some((local, domain)) = text.split_once('@') else {
        return false;
    };
    let atext = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b);
    text.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && local
            .split('.')
            .all(|atom| !atom.is_empty() && atom.bytes().all(atext))
        && is_domain(domain)
}

/// Letters, digits and hyphens in non-empty labels of at most 63 bytes, joined by dots.
fn is_domain(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 253
        && text.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Writes each notification as `outbox-<id>.eml` into a directory (created when missing),
/// atomically (a temporary file renamed into place), so a pick-up process never sees half a
/// message and a repeat delivery replaces the file with the same message.
#[derive(Debug, Clone)]
pub struct EmlFileNotifier {
    dir: PathBuf,
    mail: MailSettings,
}

impl EmlFileNotifier {
    /// Writes into `dir`, building messages from `mail`.
    pub fn new(dir: impl Into<PathBuf>, mail: MailSettings) -> Self {
        Self {
            dir: dir.into(),
            mail,
        }
    }

    /// The file a notification queued as `id` is written to.
    pub fn path_for(&self, id: OutboxId) -> PathBuf {
        self.dir.join(format!("outbox-{}.eml", id.0))
    }

    async fn write(
        &self,
        id: OutboxId,
        notification: &UserNotification,
        now: OffsetDateTime,
    ) -> Result<(), DeliveryError> {
        let to = self
            .mail
            .recipient(&notification.user)
            .ok_or(DeliveryError::NoRecipient)?;
        let message = render_eml(id, notification, &self.mail, &to, now)?;
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(|_| DeliveryError::Io)?;
        let temporary = self.dir.join(format!(".outbox-{}.eml.tmp", id.0));
        tokio::fs::write(&temporary, message.as_bytes())
            .await
            .map_err(|_| DeliveryError::Io)?;
        tokio::fs::rename(&temporary, self.path_for(id))
            .await
            .map_err(|_| DeliveryError::Io)
    }
}

impl Notifier for EmlFileNotifier {
    fn notify<'a>(
        &'a self,
        id: OutboxId,
        notification: &'a UserNotification,
        now: OffsetDateTime,
    ) -> NotifyFuture<'a> {
        Box::pin(self.write(id, notification, now))
    }
}

/// Sends each notification through a [`Mailer`] (SMTP, `[recovery_provider.outbox]`'s
/// `smtp_url`), with the subject and text [`EmlFileNotifier`] writes and the same
/// `Message-ID` (`<dar-outbox-<id>@<sender's domain>>`), so that a repeat delivery can be
/// recognised by the receiving side.
#[derive(Debug, Clone)]
pub struct MailerNotifier {
    mailer: Mailer,
    mail: MailSettings,
}

impl MailerNotifier {
    /// Sends through `mailer`, building messages from `mail`.
    pub fn new(mailer: Mailer, mail: MailSettings) -> Self {
        Self {
            mailer: mailer.with_message_id_prefix("dar-outbox"),
            mail,
        }
    }

    async fn send(
        &self,
        id: OutboxId,
        notification: &UserNotification,
    ) -> Result<(), DeliveryError> {
        let to = self
            .mail
            .recipient(&notification.user)
            .ok_or(DeliveryError::NoRecipient)?;
        let mail = OutgoingMail {
            id: id.0,
            to,
            subject: subject(notification),
            body: body_lines(notification, &self.mail)?.join("\n"),
        };
        self.mailer.send(&mail).await.map_err(|e| match e {
            MailError::Unavailable => DeliveryError::MailUnavailable,
            MailError::File => DeliveryError::Io,
            MailError::Build => DeliveryError::Render,
            MailError::BadRecipient | MailError::Rejected => DeliveryError::MailRejected,
        })
    }
}

impl Notifier for MailerNotifier {
    fn notify<'a>(
        &'a self,
        id: OutboxId,
        notification: &'a UserNotification,
        _now: OffsetDateTime,
    ) -> NotifyFuture<'a> {
        Box::pin(self.send(id, notification))
    }
}

// ---------------------------------------------------------------------------------------------
// The worker

/// What one [`OutboxWorker::run_once`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Messages delivered and marked so.
    pub delivered: u32,
    /// Messages that failed and will be tried again.
    pub retrying: u32,
    /// Messages that failed and were parked for staff.
    pub given_up: u32,
}

impl DeliveryReport {
    /// Whether nothing was due.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// One message's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Delivered,
    Retrying,
    GivenUp,
}

/// Delivers the outbox of a [`RecoveryProviderStore`].
pub struct OutboxWorker<S: RecoveryProviderStore> {
    store: S,
    callbacks: StatusCallbackClient,
    notifier: Arc<dyn Notifier>,
    policy: RetryPolicy,
}

impl<S: RecoveryProviderStore> fmt::Debug for OutboxWorker<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboxWorker")
            .field("callbacks", &self.callbacks)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl<S: RecoveryProviderStore> OutboxWorker<S> {
    /// A worker reading `store`, calling back through `callbacks`, notifying through
    /// `notifier`, retrying by `policy`.
    pub fn new(
        store: S,
        callbacks: StatusCallbackClient,
        notifier: Arc<dyn Notifier>,
        policy: RetryPolicy,
    ) -> Self {
        Self {
            store,
            callbacks,
            notifier,
            policy,
        }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Takes up to [`RetryPolicy::batch_size`] messages due at `now` and delivers each, marking
    /// it delivered, failed until a later attempt, or parked.
    ///
    /// # Errors
    ///
    /// A [`StoreFault`] when the outbox cannot be read, or when an outcome could not be
    /// recorded (the other messages of the batch are still processed; an unrecorded success
    /// is sent again later).
    pub async fn run_once(&self, now: OffsetDateTime) -> Result<DeliveryReport, StoreFault> {
        let entries = self
            .store
            .pending_outbox(self.policy.batch_size, now)
            .await?;
        let outcomes: Vec<Result<Outcome, StoreFault>> = futures_util::stream::iter(entries)
            .map(|entry| self.deliver(entry, now))
            .buffer_unordered(self.policy.concurrency.max(1))
            .collect()
            .await;
        let mut report = DeliveryReport::default();
        let mut fault = None;
        for outcome in outcomes {
            match outcome {
                Ok(Outcome::Delivered) => report.delivered = report.delivered.saturating_add(1),
                Ok(Outcome::Retrying) => report.retrying = report.retrying.saturating_add(1),
                Ok(Outcome::GivenUp) => report.given_up = report.given_up.saturating_add(1),
                Err(e) => fault = Some(e),
            }
        }
        match fault {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    async fn deliver(
        &self,
        entry: OutboxEntry,
        now: OffsetDateTime,
    ) -> Result<Outcome, StoreFault> {
        let kind = entry.message.kind();
        let result = match &entry.message {
            OutboxMessage::TokenStatus(callback) => self.callbacks.send(callback).await,
            OutboxMessage::UserNotification(notification) => {
                self.notifier.notify(entry.id, notification, now).await
            }
        };
        let failure = match result {
            Ok(()) => {
                self.store.mark_outbox_delivered(entry.id, now).await?;
                info!(outbox_id = entry.id.0, kind, "outbox message delivered");
                return Ok(Outcome::Delivered);
            }
            Err(failure) => failure,
        };
        let permanent = failure.is_permanent();
        let next = self.policy.next_attempt_at(entry.attempts, permanent, now);
        self.store.mark_outbox_failed(entry.id, next).await?;
        let attempts = entry.attempts.saturating_add(1);
        match self.policy.after_failure(entry.attempts, permanent) {
            AfterFailure::RetryAfter(delay) => {
                warn!(
                    outbox_id = entry.id.0,
                    kind,
                    code = failure.code(),
                    attempts,
                    retry_in_seconds = delay.as_secs(),
                    "outbox delivery failed; will retry"
                );
                Ok(Outcome::Retrying)
            }
            AfterFailure::GiveUp => {
                warn!(
                    outbox_id = entry.id.0,
                    kind,
                    code = failure.code(),
                    attempts,
                    "outbox delivery failed; parked for staff"
                );
                Ok(Outcome::GivenUp)
            }
        }
    }
}

/// The outbox worker `dar serve` runs for `config`'s recovery provider role, and how often it
/// runs (`[recovery_provider.outbox]`); `None` when the role is not configured.
///
/// Status callbacks use the discovery client's policy: in `development`, non-public addresses
/// and the local CA (`tls.local_ca_dir`) are allowed, as they are for discovery; otherwise
/// only public https hosts. Notifications are sent over SMTP when `smtp_url` is set (the
/// password read from `smtp_password_file`), else written as `.eml` files into `mail_dir`.
///
/// # Errors
///
/// [`ConfigError::Invalid`](crate::config::ConfigError::Invalid) naming the `recovery_provider.outbox` key whose value is refused,
/// or when the callback client cannot be built.
pub fn worker_from_config(
    config: &crate::config::Config,
    store: dar_store::Store,
) -> Result<Option<(OutboxWorker<dar_store::Store>, Duration)>, crate::config::ConfigError> {
    let Some(rp) = &config.recovery_provider else {
        return Ok(None);
    };
    let settings = &rp.outbox;
    let invalid = |key: &str, reason: String| crate::config::ConfigError::Invalid {
        file: config.file.clone(),
        key: format!("recovery_provider.outbox.{key}"),
        reason,
    };
    let discovery = crate::state::discovery_settings(config)?;
    let callback = CallbackSettings {
        danger_allow_non_public_addresses: discovery.danger_allow_non_public_addresses,
        danger_allow_http_loopback: discovery.danger_allow_http_loopback,
        extra_root_certificates: discovery.extra_root_certificates,
        ..CallbackSettings::default()
    };
    let callbacks = StatusCallbackClient::new(callback)
        .map_err(|e| invalid("callbacks", format!("cannot build the client: {e}")))?;
    let key_of = |e: &MailSettingsError| match e {
        MailSettingsError::From => "mail_from",
        MailSettingsError::SiteName => "site_name",
        MailSettingsError::RepudiateUrl => "repudiate_url",
        MailSettingsError::RecipientDomain => "recipient_domain",
    };
    let mut mail = MailSettings::new(
        &settings.mail_from,
        &settings.site_name,
        &settings.repudiate_url,
    )
    .map_err(|e| invalid(key_of(&e), e.to_string()))?;
    if let Some(domain) = &settings.recipient_domain {
        mail = mail
            .with_recipient_domain(domain)
            .map_err(|e| invalid(key_of(&e), e.to_string()))?;
    }
    let notifier: Arc<dyn Notifier> = match &settings.smtp {
        Some(smtp) => {
            let mailer = crate::mail::mailer_for(
                Some(smtp),
                &settings.mail_dir,
                &settings.mail_from,
                config.development,
            )
            .map_err(|reason| invalid("smtp_url", reason))?;
            Arc::new(MailerNotifier::new(mailer, mail))
        }
        None => Arc::new(EmlFileNotifier::new(settings.mail_dir.clone(), mail)),
    };
    let worker = OutboxWorker::new(store, callbacks, notifier, RetryPolicy::default());
    Ok(Some((worker, settings.interval)))
}

/// Runs `worker` every `interval` (the first run at once, each at `clock`'s time) until `shutdown` holds `true` or its
/// sender is dropped, for `dar serve`. A store fault is logged and the loop goes on; a run
/// still in progress at shutdown is abandoned, which at-least-once delivery tolerates.
pub fn spawn<S>(
    worker: OutboxWorker<S>,
    clock: Arc<dyn Clock>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()>
where
    S: RecoveryProviderStore + 'static,
{
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if *shutdown.borrow_and_update() {
                break;
            }
            tokio::select! {
                biased;
                changed = shutdown.changed() => {
                    if changed.is_err() { break; }
                    continue;
                }
                _ = ticker.tick() => {}
            }
            tokio::select! {
                biased;
                changed = shutdown.changed() => {
                    if changed.is_err() { break; }
                    continue;
                }
                result = worker.run_once(clock.now()) => match result {
                    Ok(report) if !report.is_empty() => debug!(
                        delivered = report.delivered,
                        retrying = report.retrying,
                        given_up = report.given_up,
                        "outbox run"
                    ),
                    Ok(_) => {}
                    Err(fault) => warn!(error = %fault, "outbox run failed"),
                },
            }
        }
        debug!("outbox worker stopped");
    })
}

#[cfg(test)]
mod tests;
