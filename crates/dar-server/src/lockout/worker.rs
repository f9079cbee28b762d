//! The account provider's lockout worker: completes timed unlocks when their waiting period is
//! over, sends their reminders and final notices, activates second factors held by the
//! enable pause, and delivers the mail outbox.
//!
//! All state is in the database, so a restart loses nothing: each pass asks the store what is
//! due at `now` and changes it with compare-and-set updates, so two workers (or a worker and a
//! staff decision) never both act on one row. Mail is delivered at least once: a row is leased
//! while it is being sent, marked delivered after, and retried with the outbox's
//! [`RetryPolicy`] backoff when sending fails.
//!
//! ```no_run
//! # async fn run(state: dar_server::AppState, mailer: dar_server::mail::Mailer) -> Result<(), Box<dyn std::error::Error>> {
//! use dar_server::lockout::worker::LockoutWorker;
//!
//! let worker = LockoutWorker::new(&state, mailer)?;
//! let report = worker.run_once(state.now()).await?;
//! println!("{report:?}");
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::time::Duration;

use dar_account_provider::LockoutPolicy;
use dar_account_provider::lockout::{Due, NoticesSent, Schedule};
use dar_core::Origin;
use dar_store::{LockoutRecovery, MailRecord, Store, StoreError};
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use zeroize::Zeroizing;

use super::{cancel_link, link_key};
use crate::clock::Clock;
use crate::error::AppError;
use crate::mail::{MailError, Mailer, OutgoingMail};
use crate::notify::{audit, to_all, verified_addresses};
use crate::outbox::RetryPolicy;
use crate::server::ServerError;
use crate::state::AppState;

/// Rows taken per kind of work in one pass.
const BATCH: u32 = 32;
/// How long a mail row is leased to this worker while it is being sent (seconds), unless
/// [`LockoutWorker::with_mail_lease`] says otherwise.
const MAIL_LEASE_SECS: i64 = 120;

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LockoutReport {
    /// Timed unlocks completed (second factor reset, sessions revoked).
    pub unlocked: u32,
    /// Reminders and final notices queued.
    pub notices: u32,
    /// Held second factors that became active.
    pub factors_activated: u32,
    /// Mails delivered.
    pub mail_delivered: u32,
    /// Mails that failed and will be retried (or were parked after too many failures).
    pub mail_failed: u32,
}

/// Runs the lockout work of one account provider deployment.
#[derive(Clone)]
pub struct LockoutWorker {
    store: Store,
    policy: LockoutPolicy,
    mailer: Mailer,
    retry: RetryPolicy,
    site: String,
    origin: Origin,
    /// Signs the cancel links: a secret, wiped on drop and never printed.
    link_key: Zeroizing<[u8; 32]>,
    /// Seconds a mail row is reserved while it is sent.
    mail_lease: i64,
}

impl std::fmt::Debug for LockoutWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockoutWorker")
            .field("store", &self.store)
            .field("policy", &self.policy)
            .field("mailer", &self.mailer)
            .field("retry", &self.retry)
            .field("site", &self.site)
            .field("origin", &self.origin)
            .field("link_key", &"[redacted]")
            .field("mail_lease", &self.mail_lease)
            .finish()
    }
}

impl LockoutWorker {
    /// A worker for `state`'s account provider, sending through `mailer`.
    ///
    /// # Errors
    ///
    /// [`AppError::NotConfigured`] when the deployment has no account provider or no store.
    pub fn new(state: &AppState, mailer: Mailer) -> Result<Self, AppError> {
        let ap = state
            .roles()
            .account_provider
            .as_ref()
            .ok_or(AppError::NotConfigured {
                what: "the account provider",
            })?;
        let store = state.store().cloned().ok_or(AppError::NotConfigured {
            what: "account storage",
        })?;
        Ok(Self {
            store,
            policy: ap.settings.lockout.clone(),
            mailer,
            retry: RetryPolicy::default(),
            site: state.site_name(),
            origin: state.public_origin().clone(),
            link_key: Zeroizing::new(link_key(state)?),
            mail_lease: MAIL_LEASE_SECS,
        })
    }

    /// The same worker reserving a message it sends for `lease` (`[account_provider.mail]
    /// lease_secs`): after a crash mid-send, the message is sent again once the lease ends.
    #[must_use]
    pub fn with_mail_lease(self, lease: Duration) -> Self {
        Self {
            mail_lease: i64::try_from(lease.as_secs()).unwrap_or(MAIL_LEASE_SECS),
            ..self
        }
    }

    /// One pass over everything due at `now`.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails (the pass stops; the next one resumes).
    pub async fn run_once(&self, now: OffsetDateTime) -> Result<LockoutReport, StoreError> {
        let mut report = LockoutReport::default();
        let unix = now.unix_timestamp();
        let due = self
            .store
            .due_recoveries(
                unix,
                self.policy.notice_interval().whole_seconds(),
                self.policy.final_notice_before().whole_seconds(),
                BATCH,
            )
            .await?;
        for recovery in due {
            self.advance(&recovery, now, &mut report).await?;
        }
        for factor in self.store.due_pending_factors(unix, BATCH).await? {
            let addresses = self.addresses(factor.account).await?;
            let mails = to_all(
                &self.site,
                &addresses,
                "Your new second factor is active",
                &format!(
                    "The second factor added to your account is now active. Sign in and \
                     generate recovery codes for it at {}/account/security.\r\n\r\nIf you \
                     did not add it, recover your account and contact us.",
                    self.origin.as_str().trim_end_matches('/')
                ),
            );
            let detail = format!("pending factor {}", factor.id.0);
            let audit = [audit(
                factor.account,
                "system",
                "factor.activated",
                detail,
                None,
            )];
            if self
                .store
                .activate_pending_factor(factor.id, unix, &mails, &audit)
                .await?
            {
                report.factors_activated += 1;
            }
        }
        let mails = self
            .store
            .due_mail(unix, unix + self.mail_lease, BATCH)
            .await?;
        for mail in mails {
            match self.send(&mail).await {
                Ok(()) => {
                    self.store.mark_mail_delivered(mail.id, unix).await?;
                    report.mail_delivered += 1;
                }
                Err(e) => {
                    let attempts = u32::try_from(mail.attempts).unwrap_or(u32::MAX);
                    let next = self.retry.next_attempt_at(attempts, e.is_permanent(), now);
                    tracing::warn!(mail = mail.id.0, error = e.code(), "mail not delivered");
                    self.store
                        .mark_mail_failed(mail.id, next.unix_timestamp(), e.code())
                        .await?;
                    report.mail_failed += 1;
                }
            }
        }
        Ok(report)
    }

    async fn send(&self, mail: &MailRecord) -> Result<(), MailError> {
        self.mailer
            .send(&OutgoingMail {
                id: mail.id.0,
                to: mail.to.clone(),
                subject: mail.subject.clone(),
                body: mail.body.clone(),
            })
            .await
    }

    async fn addresses(&self, account: dar_store::AccountId) -> Result<Vec<String>, StoreError> {
        verified_addresses(&self.store, account).await
    }

    async fn advance(
        &self,
        recovery: &LockoutRecovery,
        now: OffsetDateTime,
        report: &mut LockoutReport,
    ) -> Result<(), StoreError> {
        let Some(completes_at) = recovery
            .completes_at
            .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
        else {
            return Ok(());
        };
        let schedule = Schedule {
            started_at: completes_at - self.policy.waiting_period(),
            completes_at,
            notice_interval: self.policy.notice_interval(),
            final_notice_before: self.policy.final_notice_before(),
        };
        let sent = NoticesSent {
            last_notice_at: recovery
                .last_notice_at
                .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok()),
            final_notice_sent: recovery.final_notice_sent,
        };
        let unix = now.unix_timestamp();
        let addresses = self.addresses(recovery.account).await?;
        let link = cancel_link(&self.origin, &self.link_key, recovery.id);
        let id = recovery.id.0;
        match schedule.due(&sent, now) {
            Due::Complete => {
                let origin = self.origin.as_str().trim_end_matches('/');
                let mails = to_all(
                    &self.site,
                    &addresses,
                    "Your account was recovered",
                    &format!(
                        "The waiting period of the recovery of your account is over: its \
                         second factor was removed and every session was signed out.\r\nSign \
                         in with your password, set up a new second factor (it comes with new \
                         recovery codes), then save a new recovery token: \
                         {origin}/ap/recovery/setup\r\n\r\nIf this was not you, \
                         contact us at once."
                    ),
                );
                let audit = [audit(
                    recovery.account,
                    "system",
                    "recovery.unlocked",
                    format!("recovery {id} waiting period over"),
                    None,
                )];
                if self
                    .store
                    .complete_unlock(recovery.id, unix, &mails, &audit)
                    .await?
                {
                    report.unlocked += 1;
                }
            }
            due @ (Due::FinalNotice | Due::Reminder) => {
                let final_notice = due == Due::FinalNotice;
                let when = crate::notify::format_time(completes_at.unix_timestamp());
                let mails = to_all(
                    &self.site,
                    &addresses,
                    if final_notice {
                        "Your account unlocks soon unless you cancel"
                    } else {
                        "Reminder: a recovery of your account is under way"
                    },
                    &format!(
                        "A recovery of your account unlocks it at {when}: its second factor \
                         is then removed and every session signed out.\r\n\r\nIf this is not \
                         you, cancel now:\r\n{link}\r\n\r\nSigning in with your second factor \
                         cancels it too."
                    ),
                );
                let event = if final_notice {
                    "recovery.final_notice"
                } else {
                    "recovery.reminder"
                };
                let audit = [audit(
                    recovery.account,
                    "system",
                    event,
                    format!("recovery {id}"),
                    None,
                )];
                if self
                    .store
                    .record_notice(
                        recovery.id,
                        recovery.last_notice_at,
                        final_notice,
                        unix,
                        &mails,
                        &audit,
                    )
                    .await?
                {
                    report.notices += 1;
                }
            }
            Due::Nothing { .. } => {}
        }
        Ok(())
    }
}

/// The mailer `[account_provider.mail]` describes: SMTP when `smtp_url` is set (the password
/// read from `smtp_password_file`), else `.eml` files in `dir`.
///
/// # Errors
///
/// [`ServerError::Mail`] naming what is wrong (never the password).
pub fn mailer_from_config(
    mail: &crate::config::AccountMailSettings,
    development: bool,
) -> Result<Mailer, ServerError> {
    crate::mail::mailer_for(mail.smtp.as_ref(), &mail.dir, &mail.from, development)
        .map_err(ServerError::Mail)
}

/// The lockout worker `dar serve` runs for an account provider, and how often; `None` without
/// that role.
///
/// # Errors
///
/// [`ServerError::Mail`] when the mail settings are unusable.
pub fn from_config(
    config: &crate::config::Config,
    state: &AppState,
) -> Result<Option<(LockoutWorker, Duration)>, ServerError> {
    let Some(ap) = &config.account_provider else {
        return Ok(None);
    };
    let mailer = mailer_from_config(&ap.mail, config.development)?;
    let worker = LockoutWorker::new(state, mailer)
        .map_err(|e| ServerError::Mail(e.to_string()))?
        .with_mail_lease(ap.mail.lease);
    Ok(Some((worker, ap.mail.interval)))
}

/// Runs `worker` every `interval`, at `clock`'s time, until `shutdown` turns true; a failed pass is logged and the
/// next one tries again.
pub fn spawn(
    worker: LockoutWorker,
    clock: Arc<dyn Clock>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match worker.run_once(clock.now()).await {
                Ok(report) if report != LockoutReport::default() => {
                    tracing::info!(?report, "lockout worker pass");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "lockout worker pass failed"),
            }
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
        }
    })
}
