//! Lockout recovery (migrations `04xx`): the tables the account provider needs to decide and
//! carry out the recovery of an account whose second factor is lost, as plain methods on
//! [`Store`]. The decisions themselves (which evidence suffices, when a notice is due) are the
//! caller's; this module only stores, and makes each change atomic.
//!
//! - `web_email`: notification addresses, several per account ([`Store::add_email`]).
//! - `recovery_code`: single-use codes, stored as argon2id PHC strings
//!   ([`Store::replace_recovery_codes`], [`Store::use_recovery_code`]).
//! - `lockout_recovery` and `lockout_evidence`: one row per recovery attempt and the evidence
//!   gathered for it ([`Store::start_recovery`], [`Store::add_evidence`],
//!   [`Store::set_recovery_state`]).
//! - `email_code`: one-time codes sent to a verified address, bound to one recovery
//!   ([`Store::issue_email_code`], [`Store::check_email_code`]).
//! - `trusted_contact`: accounts an owner named in advance ([`Store::add_trusted_contact`]).
//! - `pending_factor`: a second factor enabled on an old account, held for a pause
//!   ([`Store::hold_factor`]).
//! - `audit_event`: the append-only security history ([`Store::audit_events`]); triggers on
//!   both backends refuse every update and delete.
//! - `mail_outbox`: notifications, delivered by a worker ([`Store::due_mail`]).
//!
//! # One transaction per change, mails and audit included
//!
//! Every method that changes state takes the mails (`&[NewMail]`) and audit rows
//! (`&[NewAudit]`) that report it and writes them in the same transaction, so a notice is
//! queued if and only if its event happened, and nothing is lost when the process stops in
//! between. The single-use state a change depends on is changed first and conditionally
//! (compare-and-set): of several concurrent callers, on any number of instances, exactly one
//! wins (the method returns `true` or `Some`); the others get `false` or `None` and write
//! nothing, mails and audit rows included. On SQLite these transactions start with
//! `begin immediate`, so they queue for the one writer instead of failing to upgrade a read.
//!
//! # Handles and hashes
//!
//! A recovery has two names. Staff type the integer [`RecoveryId`] (`dar recoveries show 12`).
//! The browser that started it holds a random handle (at least 128 bits from the OS RNG); the
//! store only sees its hex SHA-256 (`handle_hash`), like session ids, so a copy of the table
//! cannot resume anyone's recovery. Cancel links work the same way (`cancel_hash`). The caller
//! hashes email codes too (e.g. hex SHA-256 of the recovery id and the code: the attempt
//! limit makes a fast hash acceptable); the store compares them in constant time.
//!
//! # What stays readable
//!
//! The pending TOTP secret is stored as given, like `web_user.totp_secret` (see
//! [`crate::Account`]). A queued mail's body may hold an email code or a cancel link until it
//! is delivered; delivery erases it. `Debug` of every row type here redacts hashes, secrets and mail bodies.

use subtle::ConstantTimeEq as _;

use crate::{AccountId, Pool, Store, StoreError};

/// Runs `$body` with `$pool` bound to the store's pool.
macro_rules! with_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.pool {
            Pool::Sqlite($pool) => $body,
            Pool::Postgres($pool) => $body,
        }
    };
}

/// Runs `$body` with `$tx` bound to a transaction and commits it when `$body` completes; an
/// early return (`?` or `return`) rolls it back. SQLite takes the write lock at `begin`.
macro_rules! with_tx {
    ($store:expr, $tx:ident => $body:expr) => {
        match &$store.pool {
            Pool::Sqlite(pool) => {
                let mut $tx = pool.begin_with("begin immediate").await?;
                let out = $body;
                $tx.commit().await?;
                out
            }
            Pool::Postgres(pool) => {
                let mut $tx = pool.begin().await?;
                let out = $body;
                $tx.commit().await?;
                out
            }
        }
    };
}

const INSERT_MAIL: &str = "insert into mail_outbox (to_address, subject, body, created_at, \
     next_attempt_at) values ($1, $2, $3, $4, $4)";

const INSERT_AUDIT: &str = "insert into audit_event (web_user_id, at, actor, event, detail, \
     source_address) values ($1, $2, $3, $4, $5, $6)";

/// Writes `$mails` and `$audit` at `$now` through the transaction `$tx`.
macro_rules! insert_reports {
    ($tx:ident, $now:expr, $mails:expr, $audit:expr) => {{
        for m in $mails {
            sqlx::query(INSERT_MAIL)
                .bind(&m.to)
                .bind(&m.subject)
                .bind(&m.body)
                .bind($now)
                .execute(&mut *$tx)
                .await?;
        }
        for a in $audit {
            sqlx::query(INSERT_AUDIT)
                .bind(a.account.map(|id| id.0))
                .bind($now)
                .bind(&a.actor)
                .bind(&a.event)
                .bind(&a.detail)
                .bind(a.source_address.as_deref())
                .execute(&mut *$tx)
                .await?;
        }
    }};
}

/// Defines an id newtype over a table's integer key.
macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub i64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

id_type!(
    /// A recovery's id (the `lockout_recovery` key): short, for staff to type. Never a
    /// credential: the browser's handle is the random one.
    RecoveryId
);
id_type!(
    /// A notification address's id (the `web_email` key).
    EmailId
);
id_type!(
    /// A recovery code's id (the `recovery_code` key), the evidence reference of its use.
    RecoveryCodeId
);
id_type!(
    /// An email code's id (the `email_code` key), the evidence reference of its use.
    EmailCodeId
);
id_type!(
    /// A held second factor's id (the `pending_factor` key).
    PendingFactorId
);
id_type!(
    /// A queued mail's id (the `mail_outbox` key).
    MailId
);

/// Defines a string-backed enum with `as_str`, `parse` and `Display`.
macro_rules! str_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant,)+];

            /// The stored (and command-line) spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }

            /// The value spelled `s` (as [`Self::as_str`] spells it); `None` for anything else.
            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($text => Some(Self::$variant),)+
                    _ => None,
                }
            }

            fn from_db(s: &str) -> Result<Self, StoreError> {
                Self::parse(s).ok_or(StoreError::Corrupt(stringify!($name)))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

str_enum!(
    /// Where a recovery stands. `Collecting` gathers evidence; the caller's policy then moves
    /// it to `Unlocked` (at once), `Pending` (timed unlock), `Review` (staff decide) or
    /// `Refused`. A pending recovery ends `Unlocked` after its waiting period, or `Cancelled`;
    /// staff turn a review into `Unlocked` or `Denied`.
    RecoveryState {
        /// Gathering evidence; the only state that accepts evidence and email codes.
        Collecting = "collecting",
        /// Timed unlock: waits until `completes_at`, sending notices with a cancel link.
        Pending = "pending",
        /// Done: the second factor was reset and every session revoked.
        Unlocked = "unlocked",
        /// The evidence matched no rule.
        Refused = "refused",
        /// Ended by a cancel link or a sign-in with the existing second factor.
        Cancelled = "cancelled",
        /// Waiting for staff (`dar recoveries approve|deny`).
        Review = "review",
        /// Staff denied it.
        Denied = "denied",
    }
);

impl RecoveryState {
    /// Whether the recovery can still end in an unlock (and so can be cancelled).
    pub fn is_open(self) -> bool {
        matches!(self, Self::Collecting | Self::Pending | Self::Review)
    }
}

str_enum!(
    /// What a piece of evidence is; its reference names which one.
    EvidenceKind {
        /// A countersigned delegated recovery token; reference: the token id (hex).
        Delegated = "delegated",
        /// A recovery code; reference: its [`RecoveryCodeId`].
        RecoveryCode = "recovery_code",
        /// An email code; reference: its [`EmailCodeId`].
        EmailCode = "email_code",
        /// A trusted contact's approval; reference: the contact's [`AccountId`].
        TrustedContact = "trusted_contact",
        /// The password, proved in this recovery; reference: empty.
        Password = "password",
    }
);

str_enum!(
    /// Where a held second factor stands.
    PendingFactorState {
        /// Held until `effective_at`; the owner may cancel it.
        Pending = "pending",
        /// Became the account's second factor.
        Active = "active",
        /// Cancelled by the owner, replaced by a newer one, or dropped by an unlock.
        Cancelled = "cancelled",
    }
);

/// A mail to queue in the outbox with the change it reports. `Debug` redacts the body (it may
/// hold a code or a cancel link).
#[derive(Clone, PartialEq, Eq)]
pub struct NewMail {
    /// The recipient address.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub body: String,
}

impl std::fmt::Debug for NewMail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewMail")
            .field("to", &self.to)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// An audit row to append with the change it reports; its time is the change's `now`.
/// Never put a secret in it: name evidence by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAudit {
    /// The account concerned, if any.
    pub account: Option<AccountId>,
    /// Who acted: `user`, `system`, `staff:<name>`, a contact's username... (the caller's
    /// vocabulary).
    pub actor: String,
    /// What happened, a stable short name (`recovery.started`, `mail.queued`...).
    pub event: String,
    /// Details: ids, rule names, never a secret.
    pub detail: String,
    /// The client address the request came from, if any.
    pub source_address: Option<String>,
}

/// A recovery as stored (hashes of its handle and cancel link are not read back).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LockoutRecovery {
    /// The id staff type.
    pub id: RecoveryId,
    /// The account being recovered.
    pub account: AccountId,
    /// Where it stands.
    pub state: RecoveryState,
    /// The policy rule that decided it, once decided.
    pub outcome_rule: Option<String>,
    /// When it started (unix seconds).
    pub created_at: i64,
    /// When it last changed (unix seconds).
    pub updated_at: i64,
    /// When a timed unlock completes (unix seconds); set when it becomes pending.
    pub completes_at: Option<i64>,
    /// When the last notice was queued (unix seconds); the start notices count.
    pub last_notice_at: Option<i64>,
    /// Whether the "completes soon" notice was queued.
    pub final_notice_sent: bool,
    /// The staff member who approved or denied it.
    pub decided_by: Option<String>,
    /// The client address that started it.
    pub source_address: Option<String>,
}

/// A piece of evidence to add to a recovery. Never a secret: name it by reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvidence {
    /// What it is.
    pub kind: EvidenceKind,
    /// Which one (see [`EvidenceKind`]); together with the kind, unique per recovery.
    pub reference: String,
    /// Short facts the policy weighs: recovery provider origin, low friction, token age.
    pub detail: String,
}

/// A piece of evidence as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EvidenceRecord {
    /// The recovery it belongs to.
    pub recovery: RecoveryId,
    /// What it is.
    pub kind: EvidenceKind,
    /// Which one.
    pub reference: String,
    /// Short facts (see [`NewEvidence::detail`]).
    pub detail: String,
    /// When it was added (unix seconds).
    pub added_at: i64,
}

/// A notification address as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EmailRecord {
    /// The id.
    pub id: EmailId,
    /// The owner.
    pub account: AccountId,
    /// The address, as given.
    pub address: String,
    /// When the owner proved they receive mail there (unix seconds); unverified addresses get
    /// no codes.
    pub verified_at: Option<i64>,
    /// When it was added (unix seconds).
    pub created_at: i64,
}

/// An unused recovery code. `Debug` redacts the hash.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryCodeRecord {
    /// The id (the evidence reference once used).
    pub id: RecoveryCodeId,
    /// The argon2id PHC hash to verify a typed code against.
    pub code_hash: String,
}

impl std::fmt::Debug for RecoveryCodeRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecoveryCodeRecord")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// What [`Store::check_email_code`] found. Every variant but `Accepted` means the code does
/// not count; each says why, for the page and the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailCodeCheck {
    /// The code matched; it is now used.
    Accepted {
        /// The code (the evidence reference).
        code: EmailCodeId,
        /// The address it was sent to.
        email: EmailId,
    },
    /// The code did not match; the attempt was counted.
    Wrong {
        /// Wrong guesses left before the code dies.
        attempts_left: i64,
    },
    /// No code was issued for this recovery.
    NoCode,
    /// The current code was already used.
    Used,
    /// The current code died after too many wrong guesses.
    TooManyAttempts,
    /// The current code expired.
    Expired,
}

/// A trusted-contact relation as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TrustedContact {
    /// Who trusts.
    pub owner: AccountId,
    /// Who is trusted.
    pub contact: AccountId,
    /// When the owner added them (unix seconds); the cooldown counts from here.
    pub added_at: i64,
}

/// A held second factor as stored. `Debug` redacts the TOTP secret.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PendingFactor {
    /// The id.
    pub id: PendingFactorId,
    /// The account.
    pub account: AccountId,
    /// The TOTP secret (base32) that becomes the account's when activated.
    pub totp_secret: String,
    /// When it was enabled (unix seconds).
    pub created_at: i64,
    /// When it may become active (unix seconds).
    pub effective_at: i64,
    /// Where it stands.
    pub state: PendingFactorState,
}

impl std::fmt::Debug for PendingFactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingFactor")
            .field("id", &self.id)
            .field("account", &self.account)
            .field("created_at", &self.created_at)
            .field("effective_at", &self.effective_at)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// An audit row as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuditRecord {
    /// The id, increasing with time.
    pub id: i64,
    /// The account concerned, if any.
    pub account: Option<AccountId>,
    /// When (unix seconds).
    pub at: i64,
    /// Who acted.
    pub actor: String,
    /// What happened.
    pub event: String,
    /// Details.
    pub detail: String,
    /// The client address, if any.
    pub source_address: Option<String>,
}

/// A queued mail as stored. `Debug` redacts the body.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MailRecord {
    /// The id.
    pub id: MailId,
    /// The recipient address.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub body: String,
    /// When it was queued (unix seconds).
    pub created_at: i64,
    /// Failed delivery attempts so far.
    pub attempts: i64,
    /// The error code of the last failed attempt.
    pub last_error: Option<String>,
}

impl std::fmt::Debug for MailRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailRecord")
            .field("id", &self.id)
            .field("to", &self.to)
            .field("subject", &self.subject)
            .field("attempts", &self.attempts)
            .field("last_error", &self.last_error)
            .finish_non_exhaustive()
    }
}

/// A compare-and-set on a recovery's state for [`Store::set_recovery_state`]: from one of
/// `from` to `to` at `at`, setting the optional fields given (the others keep their value).
///
/// ```
/// use dar_store::{RecoveryState, StateChange};
/// let change = StateChange::new(&[RecoveryState::Collecting], RecoveryState::Pending, 1_000)
///     .outcome_rule("recovery provider")
///     .completes_at(1_000 + 259_200)
///     .cancel_hash("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
/// assert_eq!(change.to, RecoveryState::Pending);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct StateChange<'a> {
    /// The states the recovery must be in for the change to happen.
    pub from: &'a [RecoveryState],
    /// The new state.
    pub to: RecoveryState,
    /// When (unix seconds).
    pub at: i64,
    /// The policy rule that decided.
    pub outcome_rule: Option<&'a str>,
    /// When a timed unlock completes; required to enter `Pending`.
    pub completes_at: Option<i64>,
    /// The hex SHA-256 of the cancel link's token.
    pub cancel_hash: Option<&'a str>,
    /// The staff member who decided.
    pub decided_by: Option<&'a str>,
}

impl<'a> StateChange<'a> {
    /// A change from one of `from` to `to` at `at`, setting nothing else.
    pub fn new(from: &'a [RecoveryState], to: RecoveryState, at: i64) -> Self {
        Self {
            from,
            to,
            at,
            outcome_rule: None,
            completes_at: None,
            cancel_hash: None,
            decided_by: None,
        }
    }

    /// Records the rule that decided.
    #[must_use]
    pub fn outcome_rule(mut self, rule: &'a str) -> Self {
        self.outcome_rule = Some(rule);
        self
    }

    /// Sets when a timed unlock completes.
    #[must_use]
    pub fn completes_at(mut self, at: i64) -> Self {
        self.completes_at = Some(at);
        self
    }

    /// Sets the hash of the cancel link's token.
    #[must_use]
    pub fn cancel_hash(mut self, hash: &'a str) -> Self {
        self.cancel_hash = Some(hash);
        self
    }

    /// Records the staff member who decided.
    #[must_use]
    pub fn decided_by(mut self, who: &'a str) -> Self {
        self.decided_by = Some(who);
        self
    }
}

const RECOVERY_COLUMNS: &str = "recovery_id, web_user_id, state, outcome_rule, created_at, \
     updated_at, completes_at, last_notice_at, final_notice_sent, decided_by, source_address";

type RecoveryRow = (
    i64,
    i64,
    String,
    Option<String>,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
    bool,
    Option<String>,
    Option<String>,
);

fn recovery_from(row: RecoveryRow) -> Result<LockoutRecovery, StoreError> {
    let (id, account, state, rule, created, updated, completes, notice, fin, by, source) = row;
    Ok(LockoutRecovery {
        id: RecoveryId(id),
        account: AccountId(account),
        state: RecoveryState::from_db(&state)?,
        outcome_rule: rule,
        created_at: created,
        updated_at: updated,
        completes_at: completes,
        last_notice_at: notice,
        final_notice_sent: fin,
        decided_by: by,
        source_address: source,
    })
}

fn recoveries_from(rows: Vec<RecoveryRow>) -> Result<Vec<LockoutRecovery>, StoreError> {
    rows.into_iter().map(recovery_from).collect()
}

const PENDING_FACTOR_COLUMNS: &str =
    "pending_factor_id, web_user_id, totp_secret, created_at, effective_at, state";

type PendingFactorRow = (i64, i64, String, i64, i64, String);

fn pending_factor_from(row: PendingFactorRow) -> Result<PendingFactor, StoreError> {
    let (id, account, totp_secret, created_at, effective_at, state) = row;
    Ok(PendingFactor {
        id: PendingFactorId(id),
        account: AccountId(account),
        totp_secret,
        created_at,
        effective_at,
        state: PendingFactorState::from_db(&state)?,
    })
}

type MailRow = (i64, String, String, String, i64, i64, Option<String>);

type AuditRow = (
    i64,
    Option<i64>,
    i64,
    String,
    String,
    String,
    Option<String>,
);

/// `$first, $first+1, ...`: placeholders for a list of `n` values.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Open states: a recovery in one of them can still unlock, so it can be cancelled.
const OPEN_STATES: &str = "('collecting', 'pending', 'review')";

/// A no-op update that takes the account row's lock on PostgreSQL, so changes that replace a
/// set of rows (delete then insert) serialize per account (SQLite's `begin immediate` already
/// serializes every writer).
const LOCK_ACCOUNT: &str =
    "update web_user set totp_failures = totp_failures where web_user_id = $1";

impl Store {
    // ---- Notification addresses -------------------------------------------------------

    /// Adds a notification address to an account, unverified; `None` when the account already
    /// has it.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails (including an unknown account).
    pub async fn add_email(
        &self,
        account: AccountId,
        address: &str,
        now: i64,
        mails: &[NewMail],
        audit: &[NewAudit],
    ) -> Result<Option<EmailId>, StoreError> {
        let id = with_tx!(self, tx => {
            let id: Option<i64> = sqlx::query_scalar(
                "insert into web_email (web_user_id, address, created_at) values ($1, $2, $3) \
                 on conflict (web_user_id, address) do nothing returning web_email_id",
            )
            .bind(account.0)
            .bind(address)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(id) = id else { return Ok(None) };
            insert_reports!(tx, now, mails, audit);
            id
        });
        Ok(Some(EmailId(id)))
    }

    /// Marks an address verified (the owner entered the code mailed there); `false` when it
    /// is unknown or already verified.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn mark_email_verified(
        &self,
        email: EmailId,
        now: i64,
        audit: &[NewAudit],
    ) -> Result<bool, StoreError> {
        with_tx!(self, tx => {
            let n = sqlx::query(
                "update web_email set verified_at = $2 \
                 where web_email_id = $1 and verified_at is null",
            )
            .bind(email.0)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n != 1 {
                return Ok(false);
            }
            insert_reports!(tx, now, &[] as &[NewMail], audit);
        });
        Ok(true)
    }

    /// An account's addresses, oldest first.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn emails(&self, account: AccountId) -> Result<Vec<EmailRecord>, StoreError> {
        let rows: Vec<(i64, String, Option<i64>, i64)> = with_pool!(self, pool => {
            sqlx::query_as(
                "select web_email_id, address, verified_at, created_at from web_email \
                 where web_user_id = $1 order by web_email_id",
            )
            .bind(account.0)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(id, address, verified_at, created_at)| EmailRecord {
                id: EmailId(id),
                account,
                address,
                verified_at,
                created_at,
            })
            .collect())
    }

    // ---- Recovery codes ---------------------------------------------------------------

    /// Replaces an account's recovery codes with `hashes` (argon2id PHC strings), atomically:
    /// the old set, used or not, stops working in the same transaction.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn replace_recovery_codes(
        &self,
        account: AccountId,
        hashes: &[String],
        now: i64,
        mails: &[NewMail],
        audit: &[NewAudit],
    ) -> Result<(), StoreError> {
        with_tx!(self, tx => {
            sqlx::query(LOCK_ACCOUNT).bind(account.0).execute(&mut *tx).await?;
            sqlx::query("delete from recovery_code where web_user_id = $1")
                .bind(account.0)
                .execute(&mut *tx)
                .await?;
            for hash in hashes {
                sqlx::query(
                    "insert into recovery_code (web_user_id, code_hash, created_at) \
                     values ($1, $2, $3)",
                )
                .bind(account.0)
                .bind(hash)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            insert_reports!(tx, now, mails, audit);
        });
        Ok(())
    }

    /// An account's unused recovery codes, to verify a typed code against (then
    /// [`Store::use_recovery_code`]).
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn unused_recovery_codes(
        &self,
        account: AccountId,
    ) -> Result<Vec<RecoveryCodeRecord>, StoreError> {
        let rows: Vec<(i64, String)> = with_pool!(self, pool => {
            sqlx::query_as(
                "select recovery_code_id, code_hash from recovery_code \
                 where web_user_id = $1 and used_at is null order by recovery_code_id",
            )
            .bind(account.0)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(id, code_hash)| RecoveryCodeRecord {
                id: RecoveryCodeId(id),
                code_hash,
            })
            .collect())
    }

    /// Uses one of the account's recovery codes: `true` for exactly one caller, `false` when
    /// it is unknown, another account's, replaced or already used.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn use_recovery_code(
        &self,
        account: AccountId,
        code: RecoveryCodeId,
        now: i64,
        mails: &[NewMail],
        audit: &[NewAudit],
    ) -> Result<bool, StoreError> {
        with_tx!(self, tx => {
            let n = sqlx::query(
                "update recovery_code set used_at = $3 \
                 where recovery_code_id = $2 and web_user_id = $1 and used_at is null",
            )
            .bind(account.0)
            .bind(code.0)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n != 1 {
                return Ok(false);
            }
            insert_reports!(tx, now, mails, audit);
        });
        Ok(true)
    }

    // ---- Recoveries -------------------------------------------------------------------

    /// Starts a recovery of `account` in state `collecting`. `handle_hash` is the hex SHA-256
    /// of the random handle the browser keeps.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails (including an unknown account or a duplicate
    /// handle).
    pub async fn start_recovery(
        &self,
        account: AccountId,
        handle_hash: &str,
        now: i64,
        source_address: Option<&str>,
        mails: &[NewMail],
        audit: &[NewAudit],
    ) -> Result<LockoutRecovery, StoreError> {
        let sql = format!(
            "insert into lockout_recovery (web_user_id, handle_hash, state, created_at, \
             updated_at, source_address) values ($1, $2, 'collecting', $3, $3, $4) \
             returning {RECOVERY_COLUMNS}"
        );
        let row: RecoveryRow = with_tx!(self, tx => {
            let row = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(account.0)
                .bind(handle_hash)
                .bind(now)
                .bind(source_address)
                .fetch_one(&mut *tx)
                .await?;
            insert_reports!(tx, now, mails, audit);
            row
        });
        recovery_from(row)
    }

    /// The recovery with this id (staff).
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails or holds a state this version does not know.
    pub async fn recovery(&self, id: RecoveryId) -> Result<Option<LockoutRecovery>, StoreError> {
        self.recovery_where("recovery_id = $1", id.0).await
    }

    /// The recovery whose browser handle hashes to `handle_hash`.
    ///
    /// # Errors
    ///
    /// As [`Store::recovery`].
    pub async fn recovery_by_handle(
        &self,
        handle_hash: &str,
    ) -> Result<Option<LockoutRecovery>, StoreError> {
        self.recovery_where("handle_hash = $1", handle_hash).await
    }

    /// The recovery whose cancel link's token hashes to `cancel_hash` (to word the cancel
    /// page and its notices before [`Store::cancel_recovery_by_hash`]).
    ///
    /// # Errors
    ///
    /// As [`Store::recovery`].
    pub async fn recovery_by_cancel_hash(
        &self,
        cancel_hash: &str,
    ) -> Result<Option<LockoutRecovery>, StoreError> {
        self.recovery_where("cancel_hash = $1", cancel_hash).await
    }

    async fn recovery_where<'v, T>(
        &self,
        condition: &str,
        value: T,
    ) -> Result<Option<LockoutRecovery>, StoreError>
    where
        T: sqlx::Encode<'v, sqlx::Sqlite>
            + sqlx::Type<sqlx::Sqlite>
            + sqlx::Encode<'v, sqlx::Postgres>
            + sqlx::Type<sqlx::Postgres>
            + Send
            + 'v,
    {
        let sql = format!("select {RECOVERY_COLUMNS} from lockout_recovery where {condition}");
        let row: Option<RecoveryRow> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(value)
                .fetch_optional(pool)
                .await?
        });
        row.map(recovery_from).transpose()
    }

    /// Recoveries, newest first, in `state` (any state when `None`): the staff list.
    ///
    /// # Errors
    ///
    /// As [`Store::recovery`].
    pub async fn recoveries(
        &self,
        state: Option<RecoveryState>,
        limit: u32,
    ) -> Result<Vec<LockoutRecovery>, StoreError> {
        let sql = format!(
            "select {RECOVERY_COLUMNS} from lockout_recovery \
             where ($1 is null or state = $1) order by recovery_id desc limit $2"
        );
        let rows: Vec<RecoveryRow> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(state.map(RecoveryState::as_str))
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        });
        recoveries_from(rows)
    }

    /// An account's recoveries, newest first: its security page, and what its trusted
    /// contacts may approve.
    ///
    /// # Errors
    ///
    /// As [`Store::recovery`].
    pub async fn account_recoveries(
        &self,
        account: AccountId,
        limit: u32,
    ) -> Result<Vec<LockoutRecovery>, StoreError> {
        let sql = format!(
            "select {RECOVERY_COLUMNS} from lockout_recovery \
             where web_user_id = $1 order by recovery_id desc limit $2"
        );
        let rows: Vec<RecoveryRow> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(account.0)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        });
        recoveries_from(rows)
    }

    /// Adds evidence to a recovery that is still collecting; `false` when the recovery is not
    /// collecting or already has this piece (each counts once).
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn add_evidence(
        &self,
        recovery: RecoveryId,
        evidence: &NewEvidence,
        now: i64,
        audit: &[NewAudit],
    ) -> Result<bool, StoreError> {
        with_tx!(self, tx => {
            let open = sqlx::query(
                "update lockout_recovery set updated_at = $2 \
                 where recovery_id = $1 and state = 'collecting'",
            )
            .bind(recovery.0)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if open != 1 {
                return Ok(false);
            }
            let added = sqlx::query(
                "insert into lockout_evidence (recovery_id, kind, reference, detail, added_at) \
                 values ($1, $2, $3, $4, $5) \
                 on conflict (recovery_id, kind, reference) do nothing",
            )
            .bind(recovery.0)
            .bind(evidence.kind.as_str())
            .bind(&evidence.reference)
            .bind(&evidence.detail)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if added != 1 {
                return Ok(false);
            }
            insert_reports!(tx, now, &[] as &[NewMail], audit);
        });
        Ok(true)
    }

    /// A recovery's evidence, in the order it was added.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails or holds a kind this version does not know.
    pub async fn evidence(&self, recovery: RecoveryId) -> Result<Vec<EvidenceRecord>, StoreError> {
        let rows: Vec<(String, String, String, i64)> = with_pool!(self, pool => {
            sqlx::query_as(
                "select kind, reference, detail, added_at from lockout_evidence \
                 where recovery_id = $1 order by added_at, kind, reference",
            )
            .bind(recovery.0)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|(kind, reference, detail, added_at)| {
                Ok(EvidenceRecord {
                    recovery,
                    kind: EvidenceKind::from_db(&kind)?,
                    reference,
                    detail,
                    added_at,
                })
            })
            .collect()
    }

    /// Moves a recovery from one of `change.from` to `change.to` (compare-and-set); `false`
    /// when it is in none of them, and then nothing is written.
    ///
    /// Entering `Pending` needs `completes_at` and records `change.at` as the last notice: the
    /// mails given are the start notices. Entering `Unlocked` from `Pending` happens only once
    /// `completes_at` has passed; entering `Unlocked` from any state resets the account's
    /// second factor in the same transaction: the TOTP secret is removed (the user enrols
    /// again at the next sign-in), every session of the account is revoked, and any held
    /// second factor is cancelled.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails, including entering `Pending` without
    /// `completes_at`.
    pub async fn set_recovery_state(
        &self,
        recovery: RecoveryId,
        change: &StateChange<'_>,
        mails: &[NewMail],
        audit: &[NewAudit],
    ) -> Result<bool, StoreError> {
        if change.from.is_empty() {
            return Ok(false);
        }
        let mut sql = format!(
            "update lockout_recovery set state = $2, updated_at = $3, \
             outcome_rule = coalesce($4, outcome_rule), \
             completes_at = coalesce($5, completes_at), \
             cancel_hash = coalesce($6, cancel_hash), \
             decided_by = coalesce($7, decided_by), \
             last_notice_at = case when $2 = 'pending' then $3 else last_notice_at end \
             where recovery_id = $1 and state in ({})",
            placeholders(8, change.from.len())
        );
        if change.to == RecoveryState::Unlocked {
            sql.push_str(" and (state <> 'pending' or completes_at <= $3)");
        }
        sql.push_str(" returning web_user_id");
        with_tx!(self, tx => {
            let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(recovery.0)
                .bind(change.to.as_str())
                .bind(change.at)
                .bind(change.outcome_rule)
                .bind(change.completes_at)
                .bind(change.cancel_hash)
                .bind(change.decided_by);
            for state in change.from {
                query = query.bind(state.as_str());
            }
            let account: Option<i64> = query.fetch_optional(&mut *tx).await?;
            let Some(account) = account else { return Ok(false) };
            if change.to == RecoveryState::Unlocked {
                sqlx::query(
                    "update web_user set totp_secret = null, totp_confirmed = false, \
                     totp_last_step = null, totp_failures = 0 where web_user_id = $1",
                )
                .bind(account)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "update web_session set revoked = true \
                     where web_user_id = $1 and revoked = false",
                )
                .bind(account)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "update pending_factor set state = 'cancelled' \
                     where web_user_id = $1 and state = 'pending'",
                )
                .bind(account)
                .execute(&mut *tx)
                .await?;
            }
            insert_reports!(tx, change.at, mails, audit);
        });
        Ok(true)
    }

    /// Completes a timed unlock whose waiting period is over: [`Store::set_recovery_state`]
    /// from `Pending` to `Unlocked` at `now` (resetting the second factor and revoking every
    /// session, with the mails and audit rows, in one transaction). `false` when the recovery
    /// is not pending, not yet due, or another worker completed it.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn complete_unlock(
        &self,
        recovery: RecoveryId,
        now: i64,
        mails: &[NewMail],
        audit: &[NewAudit],
    ) -> Result<bool, StoreError> {
        let change = StateChange::new(&[RecoveryState::Pending], RecoveryState::Unlocked, now);
        self.set_recovery_state(recovery, &change, mails, audit)
            .await
    }

    /// Cancels the open recovery whose cancel link's token hashes to `cancel_hash`; `false`
    /// when there is none (unknown, or already ended: each link works once).
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn cancel_recovery_by_hash(
        &self,
        cancel_hash: &str,
        now: i64,
        mails: &[NewMail],
        audit: &[NewAudit],
    ) -> Result<bool, StoreError> {
        let sql = format!(
            "update lockout_recovery set state = 'cancelled', updated_at = $2 \
             where cancel_hash = $1 and state in {OPEN_STATES}"
        );
        with_tx!(self, tx => {
            let n = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(cancel_hash)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 0 {
                return Ok(false);
            }
            insert_reports!(tx, now, mails, audit);
        });
        Ok(true)
    }

    /// Cancels every open recovery of an account (its owner signed in with the existing
    /// second factor, so it is not locked out); returns how many. The mails and audit rows
    /// are written only when at least one was cancelled.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn cancel_pending_recoveries(
        &self,
        account: AccountId,
        now: i64,
        mails: &[NewMail],
        audit: &[NewAudit],
    ) -> Result<u64, StoreError> {
        let sql = format!(
            "update lockout_recovery set state = 'cancelled', updated_at = $2 \
             where web_user_id = $1 and state in {OPEN_STATES}"
        );
        let n = with_tx!(self, tx => {
            let n = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(account.0)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 0 {
                return Ok(0);
            }
            insert_reports!(tx, now, mails, audit);
            n
        });
        Ok(n)
    }

    /// Pending recoveries with something due at `now`, soonest completion first: those whose
    /// waiting period is over, those in the final window (`final_notice_before_secs` before
    /// completion) without their final notice, and those whose last notice is
    /// `notice_interval_secs` old before the final window. This filter follows the timed
    /// unlock schedule (reminders outside the final window, one final notice, completion), so
    /// a returned row has work; the caller still runs its schedule on each row to decide
    /// which, then calls [`Store::record_notice`] or [`Store::complete_unlock`]. Both are
    /// compare-and-set, so several workers may poll at once.
    ///
    /// # Errors
    ///
    /// As [`Store::recovery`].
    pub async fn due_recoveries(
        &self,
        now: i64,
        notice_interval_secs: i64,
        final_notice_before_secs: i64,
        limit: u32,
    ) -> Result<Vec<LockoutRecovery>, StoreError> {
        let sql = format!(
            "select {RECOVERY_COLUMNS} from lockout_recovery where state = 'pending' and ( \
             completes_at <= $1 \
             or (final_notice_sent = false and completes_at - $3 <= $1) \
             or (coalesce(last_notice_at, created_at) + $2 <= $1 and $1 < completes_at - $3)) \
             order by completes_at, recovery_id limit $4"
        );
        let rows: Vec<RecoveryRow> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(now)
                .bind(notice_interval_secs)
                .bind(final_notice_before_secs)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        });
        recoveries_from(rows)
    }

    /// Records that a notice of a pending recovery is queued (`final_notice`: the "completes
    /// soon" one), with its mails and audit rows. `seen_last_notice_at` is the
    /// `last_notice_at` the caller's schedule looked at: the compare-and-set on it means one
    /// notice per due time however many workers saw it (`false` for the others, and when the
    /// recovery is no longer pending or its final notice was sent).
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn record_notice(
        &self,
        recovery: RecoveryId,
        seen_last_notice_at: Option<i64>,
        final_notice: bool,
        now: i64,
        mails: &[NewMail],
        audit: &[NewAudit],
    ) -> Result<bool, StoreError> {
        with_tx!(self, tx => {
            let n = sqlx::query(
                "update lockout_recovery set last_notice_at = $3, updated_at = $3, \
                 final_notice_sent = (final_notice_sent or $4) \
                 where recovery_id = $1 and state = 'pending' and final_notice_sent = false \
                 and coalesce(last_notice_at, -1) = coalesce($2, -1)",
            )
            .bind(recovery.0)
            .bind(seen_last_notice_at)
            .bind(now)
            .bind(final_notice)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n != 1 {
                return Ok(false);
            }
            insert_reports!(tx, now, mails, audit);
        });
        Ok(true)
    }

    // ---- Email codes ------------------------------------------------------------------

    /// Issues an email code for a collecting recovery, sent to `email` (a verified address
    /// of the recovery's account), valid until `expires_at`. Any earlier code of the recovery
    /// stops working in the same transaction. `code_hash` is the caller's hash of the code
    /// (see the module docs); the mail carrying the code is among `mails`. `None` when the
    /// recovery is not collecting or the address is not a verified one of its account.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    #[allow(clippy::too_many_arguments)]
    pub async fn issue_email_code(
        &self,
        recovery: RecoveryId,
        email: EmailId,
        code_hash: &str,
        now: i64,
        expires_at: i64,
        mails: &[NewMail],
        audit: &[NewAudit],
    ) -> Result<Option<EmailCodeId>, StoreError> {
        let id = with_tx!(self, tx => {
            // Locks the recovery row first, so concurrent issuers of one recovery serialize
            // and the later one supersedes the earlier one's code.
            let open = sqlx::query(
                "update lockout_recovery set updated_at = $2 \
                 where recovery_id = $1 and state = 'collecting'",
            )
            .bind(recovery.0)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if open != 1 {
                return Ok(None);
            }
            sqlx::query(
                "update email_code set superseded = true \
                 where recovery_id = $1 and superseded = false",
            )
            .bind(recovery.0)
            .execute(&mut *tx)
            .await?;
            let id: Option<i64> = sqlx::query_scalar(
                "insert into email_code (recovery_id, web_email_id, code_hash, created_at, \
                 expires_at) select $1, $2, $3, $4, $5 where exists (select 1 from web_email e \
                 join lockout_recovery r on r.web_user_id = e.web_user_id \
                 where r.recovery_id = $1 and e.web_email_id = $2 \
                 and e.verified_at is not null) returning email_code_id",
            )
            .bind(recovery.0)
            .bind(email.0)
            .bind(code_hash)
            .bind(now)
            .bind(expires_at)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(id) = id else { return Ok(None) };
            insert_reports!(tx, now, mails, audit);
            id
        });
        Ok(Some(EmailCodeId(id)))
    }

    /// Checks a guess against the recovery's current email code: the code is claimed and its
    /// attempt counted in one statement, so concurrent guesses never exceed `max_attempts`
    /// wrong ones; the hashes are compared in constant time; a match marks the code used (and
    /// is not counted as a wrong attempt). After `max_attempts` wrong guesses the code is
    /// dead, whatever is typed next.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn check_email_code(
        &self,
        recovery: RecoveryId,
        code_hash: &str,
        now: i64,
        max_attempts: u32,
    ) -> Result<EmailCodeCheck, StoreError> {
        let max = i64::from(max_attempts);
        let check = with_tx!(self, tx => {
            let claimed: Option<(i64, i64, String, i64)> = sqlx::query_as(
                "update email_code set attempts = attempts + 1 \
                 where recovery_id = $1 and superseded = false and used_at is null \
                 and expires_at > $2 and attempts < $3 \
                 returning email_code_id, web_email_id, code_hash, attempts",
            )
            .bind(recovery.0)
            .bind(now)
            .bind(max)
            .fetch_optional(&mut *tx)
            .await?;
            match claimed {
                Some((id, email, stored, attempts)) => {
                    if bool::from(stored.as_bytes().ct_eq(code_hash.as_bytes())) {
                        sqlx::query(
                            "update email_code set used_at = $2, attempts = attempts - 1 \
                             where email_code_id = $1",
                        )
                        .bind(id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                        EmailCodeCheck::Accepted {
                            code: EmailCodeId(id),
                            email: EmailId(email),
                        }
                    } else {
                        EmailCodeCheck::Wrong {
                            attempts_left: max.saturating_sub(attempts),
                        }
                    }
                }
                None => {
                    let current: Option<(Option<i64>, i64, i64)> = sqlx::query_as(
                        "select used_at, expires_at, attempts from email_code \
                         where recovery_id = $1 and superseded = false",
                    )
                    .bind(recovery.0)
                    .fetch_optional(&mut *tx)
                    .await?;
                    match current {
                        None => EmailCodeCheck::NoCode,
                        Some((Some(_), _, _)) => EmailCodeCheck::Used,
                        Some((None, _, attempts)) if attempts >= max => {
                            EmailCodeCheck::TooManyAttempts
                        }
                        Some(_) => EmailCodeCheck::Expired,
                    }
                }
            }
        });
        Ok(check)
    }

    /// How many email codes were issued for recoveries of `account` since `since` (the
    /// per-account rate limit).
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn email_codes_sent_since(
        &self,
        account: AccountId,
        since: i64,
    ) -> Result<i64, StoreError> {
        let n: i64 = with_pool!(self, pool => {
            sqlx::query_scalar(
                "select count(*) from email_code c \
                 join lockout_recovery r on r.recovery_id = c.recovery_id \
                 where r.web_user_id = $1 and c.created_at >= $2",
            )
            .bind(account.0)
            .bind(since)
            .fetch_one(pool)
            .await?
        });
        Ok(n)
    }

    /// How many email codes were sent to `address`, for any account, since `since` (the
    /// per-address rate limit).
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn email_codes_sent_to_since(
        &self,
        address: &str,
        since: i64,
    ) -> Result<i64, StoreError> {
        let n: i64 = with_pool!(self, pool => {
            sqlx::query_scalar(
                "select count(*) from email_code c \
                 join web_email e on e.web_email_id = c.web_email_id \
                 where e.address = $1 and c.created_at >= $2",
            )
            .bind(address)
            .bind(since)
            .fetch_one(pool)
            .await?
        });
        Ok(n)
    }

    // ---- Trusted contacts -------------------------------------------------------------

    /// `owner` names `contact` as a trusted contact; `false` when already named.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails (including an unknown account, or an owner
    /// naming themselves).
    pub async fn add_trusted_contact(
        &self,
        owner: AccountId,
        contact: AccountId,
        now: i64,
        mails: &[NewMail],
        audit: &[NewAudit],
    ) -> Result<bool, StoreError> {
        with_tx!(self, tx => {
            let n = sqlx::query(
                "insert into trusted_contact (owner_id, contact_id, added_at) \
                 values ($1, $2, $3) on conflict (owner_id, contact_id) do nothing",
            )
            .bind(owner.0)
            .bind(contact.0)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n != 1 {
                return Ok(false);
            }
            insert_reports!(tx, now, mails, audit);
        });
        Ok(true)
    }

    /// `owner` removes `contact`; `false` when not named.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn remove_trusted_contact(
        &self,
        owner: AccountId,
        contact: AccountId,
        now: i64,
        mails: &[NewMail],
        audit: &[NewAudit],
    ) -> Result<bool, StoreError> {
        with_tx!(self, tx => {
            let n = sqlx::query(
                "delete from trusted_contact where owner_id = $1 and contact_id = $2",
            )
            .bind(owner.0)
            .bind(contact.0)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n != 1 {
                return Ok(false);
            }
            insert_reports!(tx, now, mails, audit);
        });
        Ok(true)
    }

    /// The contacts `owner` named, oldest first.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn contacts_of(&self, owner: AccountId) -> Result<Vec<TrustedContact>, StoreError> {
        self.trusted_where("owner_id = $1 order by added_at, contact_id", owner)
            .await
    }

    /// The owners who named `contact`, oldest first: whose recoveries `contact` may approve.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn owners_trusting(
        &self,
        contact: AccountId,
    ) -> Result<Vec<TrustedContact>, StoreError> {
        self.trusted_where("contact_id = $1 order by added_at, owner_id", contact)
            .await
    }

    async fn trusted_where(
        &self,
        condition: &str,
        account: AccountId,
    ) -> Result<Vec<TrustedContact>, StoreError> {
        let sql =
            format!("select owner_id, contact_id, added_at from trusted_contact where {condition}");
        let rows: Vec<(i64, i64, i64)> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(account.0)
                .fetch_all(pool)
                .await?
        });
        Ok(rows
            .into_iter()
            .map(|(owner, contact, added_at)| TrustedContact {
                owner: AccountId(owner),
                contact: AccountId(contact),
                added_at,
            })
            .collect())
    }

    // ---- Held second factors ----------------------------------------------------------

    /// Holds a new TOTP secret for `account` until `effective_at` (the pause for enabling a
    /// second factor on an old account); an earlier held factor of the account is cancelled
    /// in the same transaction. `cancel_hash` is the hex SHA-256 of the cancel link's token.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails (including an unknown account).
    #[allow(clippy::too_many_arguments)]
    pub async fn hold_factor(
        &self,
        account: AccountId,
        totp_secret: &str,
        now: i64,
        effective_at: i64,
        cancel_hash: &str,
        mails: &[NewMail],
        audit: &[NewAudit],
    ) -> Result<PendingFactorId, StoreError> {
        let id: i64 = with_tx!(self, tx => {
            sqlx::query(LOCK_ACCOUNT).bind(account.0).execute(&mut *tx).await?;
            sqlx::query(
                "update pending_factor set state = 'cancelled' \
                 where web_user_id = $1 and state = 'pending'",
            )
            .bind(account.0)
            .execute(&mut *tx)
            .await?;
            let id = sqlx::query_scalar(
                "insert into pending_factor (web_user_id, totp_secret, created_at, \
                 effective_at, cancel_hash, state) values ($1, $2, $3, $4, $5, 'pending') \
                 returning pending_factor_id",
            )
            .bind(account.0)
            .bind(totp_secret)
            .bind(now)
            .bind(effective_at)
            .bind(cancel_hash)
            .fetch_one(&mut *tx)
            .await?;
            insert_reports!(tx, now, mails, audit);
            id
        });
        Ok(PendingFactorId(id))
    }

    /// The account's held (still pending) second factor, if any.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn pending_factor(
        &self,
        account: AccountId,
    ) -> Result<Option<PendingFactor>, StoreError> {
        let sql = format!(
            "select {PENDING_FACTOR_COLUMNS} from pending_factor \
             where web_user_id = $1 and state = 'pending'"
        );
        let row: Option<PendingFactorRow> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(account.0)
                .fetch_optional(pool)
                .await?
        });
        row.map(pending_factor_from).transpose()
    }

    /// The held factor whose cancel link's token hashes to `cancel_hash`, in any state.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn pending_factor_by_cancel_hash(
        &self,
        cancel_hash: &str,
    ) -> Result<Option<PendingFactor>, StoreError> {
        let sql =
            format!("select {PENDING_FACTOR_COLUMNS} from pending_factor where cancel_hash = $1");
        let row: Option<PendingFactorRow> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(cancel_hash)
                .fetch_optional(pool)
                .await?
        });
        row.map(pending_factor_from).transpose()
    }

    /// Cancels the held factor whose cancel link's token hashes to `cancel_hash`; `false`
    /// when unknown or no longer pending (each link works once).
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn cancel_pending_factor_by_hash(
        &self,
        cancel_hash: &str,
        now: i64,
        mails: &[NewMail],
        audit: &[NewAudit],
    ) -> Result<bool, StoreError> {
        with_tx!(self, tx => {
            let n = sqlx::query(
                "update pending_factor set state = 'cancelled' \
                 where cancel_hash = $1 and state = 'pending'",
            )
            .bind(cancel_hash)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n != 1 {
                return Ok(false);
            }
            insert_reports!(tx, now, mails, audit);
        });
        Ok(true)
    }

    /// Held factors whose pause is over at `now`, oldest first, for the worker to activate.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn due_pending_factors(
        &self,
        now: i64,
        limit: u32,
    ) -> Result<Vec<PendingFactor>, StoreError> {
        let sql = format!(
            "select {PENDING_FACTOR_COLUMNS} from pending_factor \
             where state = 'pending' and effective_at <= $1 \
             order by effective_at, pending_factor_id limit $2"
        );
        let rows: Vec<PendingFactorRow> = with_pool!(self, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(now)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(pending_factor_from).collect()
    }

    /// Makes a held factor whose pause is over the account's confirmed second factor
    /// (compare-and-set pending to active); `false` when not pending, not yet due, or
    /// activated by another worker.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn activate_pending_factor(
        &self,
        id: PendingFactorId,
        now: i64,
        mails: &[NewMail],
        audit: &[NewAudit],
    ) -> Result<bool, StoreError> {
        with_tx!(self, tx => {
            let row: Option<(i64, String)> = sqlx::query_as(
                "update pending_factor set state = 'active' \
                 where pending_factor_id = $1 and state = 'pending' and effective_at <= $2 \
                 returning web_user_id, totp_secret",
            )
            .bind(id.0)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((account, secret)) = row else { return Ok(false) };
            sqlx::query(
                "update web_user set totp_secret = $2, totp_confirmed = true, \
                 totp_failures = 0 where web_user_id = $1",
            )
            .bind(account)
            .bind(secret)
            .execute(&mut *tx)
            .await?;
            insert_reports!(tx, now, mails, audit);
        });
        Ok(true)
    }

    // ---- Audit and mail ---------------------------------------------------------------

    /// Writes mails and audit rows that report no other change (a failed attempt, a
    /// refused request), in one transaction.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn record_event(
        &self,
        now: i64,
        mails: &[NewMail],
        audit: &[NewAudit],
    ) -> Result<(), StoreError> {
        with_tx!(self, tx => {
            insert_reports!(tx, now, mails, audit);
        });
        Ok(())
    }

    /// Audit rows, newest first: of `account`, or of every account when `None` (staff).
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn audit_events(
        &self,
        account: Option<AccountId>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let rows: Vec<AuditRow> = with_pool!(self, pool => {
            sqlx::query_as(
                "select audit_event_id, web_user_id, at, actor, event, detail, source_address \
                 from audit_event where ($1 is null or web_user_id = $1) \
                 order by audit_event_id desc limit $2",
            )
            .bind(account.map(|a| a.0))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(
                |(id, account, at, actor, event, detail, source_address)| AuditRecord {
                    id,
                    account: account.map(AccountId),
                    at,
                    actor,
                    event,
                    detail,
                    source_address,
                },
            )
            .collect())
    }

    /// Claims up to `limit` undelivered mails due at `now`, oldest due first, by moving their
    /// next attempt to `lease_until`: another instance polling meanwhile skips them, and a
    /// worker that stops before reporting leaves them due again when the lease ends. Report
    /// each with [`Store::mark_mail_delivered`] or [`Store::mark_mail_failed`].
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn due_mail(
        &self,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> Result<Vec<MailRecord>, StoreError> {
        let rows: Vec<MailRow> = with_tx!(self, tx => {
            sqlx::query_as(
                "update mail_outbox set next_attempt_at = $2 \
                 where delivered_at is null and next_attempt_at <= $1 and mail_id in \
                 (select mail_id from mail_outbox where delivered_at is null \
                 and next_attempt_at <= $1 order by next_attempt_at, mail_id limit $3) \
                 returning mail_id, to_address, subject, body, created_at, attempts, last_error",
            )
            .bind(now)
            .bind(lease_until)
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await?
        });
        let mut mails: Vec<MailRecord> = rows
            .into_iter()
            .map(
                |(id, to, subject, body, created_at, attempts, last_error)| MailRecord {
                    id: MailId(id),
                    to,
                    subject,
                    body,
                    created_at,
                    attempts,
                    last_error,
                },
            )
            .collect();
        mails.sort_by_key(|m| m.id);
        Ok(mails)
    }

    /// Records a delivery and erases the body (it may hold a code or a cancel link); `false`
    /// when unknown or already delivered.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn mark_mail_delivered(&self, id: MailId, now: i64) -> Result<bool, StoreError> {
        let n = with_pool!(self, pool => {
            sqlx::query(
                "update mail_outbox set delivered_at = $2, body = '' \
                 where mail_id = $1 and delivered_at is null",
            )
            .bind(id.0)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// Records a failed attempt: counts it, keeps `error_code` (a short code such as an SMTP
    /// status, never a message with personal data) and retries at `next_attempt_at`; `false`
    /// when unknown or already delivered.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn mark_mail_failed(
        &self,
        id: MailId,
        next_attempt_at: i64,
        error_code: &str,
    ) -> Result<bool, StoreError> {
        let n = with_pool!(self, pool => {
            sqlx::query(
                "update mail_outbox set attempts = attempts + 1, next_attempt_at = $2, \
                 last_error = $3 where mail_id = $1 and delivered_at is null",
            )
            .bind(id.0)
            .bind(next_attempt_at)
            .bind(error_code)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }
}

#[cfg(test)]
mod tests;
