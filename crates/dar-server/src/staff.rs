//! Staff review of lockout recoveries, for `dar recoveries list|show|approve|deny`
//! (spec/lockout-policy.md, "Staff review"), and of the delegated recoveries one recovery
//! provider countersigned in a time window, for `dar recoveries through` ([`through`], §6.8):
//! plain async functions over a [`Store`], usable without a running server.
//!
//! A recovery that a `review` rule handed to staff waits in state `review` until a staff member
//! approves it (the second factor is reset and every session revoked, exactly as a
//! self-service unlock does) or denies it. Each decision records who made it (`decided_by`
//! and the audit row's actor, both `staff:<name>`) and notifies every verified address of the
//! account, in the same transaction as the state change.
//!
//! # What staff may decide
//!
//! | From | approve | deny |
//! | --- | --- | --- |
//! | `review` | yes | yes |
//! | `pending` (timed unlock) | no | yes |
//! | `collecting` | no | yes |
//! | `refused`, `cancelled`, `unlocked`, `denied` | no | no |
//!
//! Approval is only for recoveries the policy sent to staff. A pending timed unlock is not
//! shortened: its waiting period is the owner's chance to object, and the policy chose it
//! because the evidence alone was not enough for an immediate unlock (the store refuses
//! to unlock a pending recovery before its `completes_at`, too). A refused recovery is not
//! approved either: the evidence matched no rule, and letting staff override the policy would
//! make a persuasive phone call the weakest recovery method; a deployment that wants staff
//! to weigh such cases writes a `review` rule. Denying is allowed while the recovery can
//! still unlock (`collecting`, `pending`, `review`): stopping a recovery is always safe.
//!
//! ```no_run
//! # async fn run() -> Result<(), dar_server::staff::StaffError> {
//! use dar_server::staff;
//! let store = dar_store::Store::connect("sqlite://dar.db").await?;
//! for r in staff::list(&store, Some(dar_store::RecoveryState::Review), 50).await? {
//!     println!("{} {} {}", r.id, r.username, r.evidence_count);
//! }
//! staff::approve(&store, "Example", dar_store::RecoveryId(12), "alice", 1_764_547_200).await?;
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;

use dar_account_provider::RecoveryRecord;
use dar_core::Origin;
use dar_store::{
    AccountId, AuditRecord, EvidenceRecord, LockoutRecovery, RecoveryId, RecoveryState,
    StateChange, Store, StoreError,
};
use time::OffsetDateTime;

use crate::notify;

/// The longest staff name accepted, in characters: it is recorded in every decision.
pub const MAX_STAFF_NAME_CHARS: usize = 64;

/// The longest denial reason kept, in characters; longer reasons are cut (it goes into the
/// audit log and the owner's mail).
pub const MAX_REASON_CHARS: usize = 500;

/// How many of the account's most recent audit events [`show`] returns.
pub const SHOW_AUDIT_EVENTS: u32 = 100;

/// The states staff may approve from (see the module documentation).
pub const APPROVABLE: &[RecoveryState] = &[RecoveryState::Review];

/// The states staff may deny from: every state in which a recovery can still unlock.
pub const DENIABLE: &[RecoveryState] = &[
    RecoveryState::Review,
    RecoveryState::Pending,
    RecoveryState::Collecting,
];

/// Why a staff operation did not happen. Nothing was written in any case.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StaffError {
    /// No recovery has this id.
    #[error("recovery {0} not found")]
    UnknownRecovery(RecoveryId),
    /// The recovery is not in a state this decision may be taken from ([`APPROVABLE`],
    /// [`DENIABLE`]); also when another decision or the worker changed it first.
    #[error("recovery {id} is {current}: only a recovery in {allowed} can be {action}")]
    WrongState {
        /// The recovery.
        id: RecoveryId,
        /// Its state now.
        current: RecoveryState,
        /// The decision refused (`approved` or `denied`).
        action: &'static str,
        /// The states the decision may be taken from, as text.
        allowed: String,
    },
    /// The staff name is empty, longer than [`MAX_STAFF_NAME_CHARS`] or holds a control
    /// character: every decision must name who made it, legibly (audit).
    #[error("the staff name {0}")]
    InvalidStaffName(&'static str),
    /// The denial reason is blank: the owner is told why their recovery was denied.
    #[error("the reason must not be empty")]
    EmptyReason,
    /// The recovery's account no longer exists (the database was changed by something else).
    #[error("the account of recovery {0} does not exist")]
    MissingAccount(RecoveryId),
    /// A time window that holds no instant: its start is not before its end.
    #[error("the window is empty: its start must be before its end")]
    EmptyWindow,
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A delegated recovery this account provider accepted (its permanent record, §3.5 step 16),
/// with the account's username.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DelegatedRecovery {
    /// The record: countersigned and recovery token ids, account, recovery provider, time,
    /// low friction, repudiation.
    pub record: RecoveryRecord,
    /// The account's username here (empty if the record names no account of this site).
    pub username: String,
}

/// The delegated recoveries `recovery_provider` countersigned at or after `from` and before
/// `until`, oldest first, at most `limit`: told that a recovery provider's countersigning key
/// was compromised in a window, an account provider reviews the accounts recovered through it
/// then (§6.8).
///
/// # Errors
///
/// [`StaffError::EmptyWindow`] when `from` is not before `until`; [`StaffError::Store`].
pub async fn through(
    store: &Store,
    recovery_provider: &Origin,
    from: OffsetDateTime,
    until: OffsetDateTime,
    limit: u32,
) -> Result<Vec<DelegatedRecovery>, StaffError> {
    if from >= until {
        return Err(StaffError::EmptyWindow);
    }
    let records = store
        .recoveries_through(recovery_provider, from, until, limit)
        .await?;
    let mut usernames = Usernames::new(store);
    let mut out = Vec::with_capacity(records.len());
    for record in records {
        // The role's account ids are this site's account numbers in text.
        let username = match record.account_id.parse::<i64>() {
            Ok(id) => usernames.of(AccountId(id)).await?,
            Err(_) => String::new(),
        };
        out.push(DelegatedRecovery { record, username });
    }
    Ok(out)
}

/// Usernames by account, each read once per listing; empty for an account that is gone.
struct Usernames<'a> {
    store: &'a Store,
    known: HashMap<AccountId, String>,
}

impl<'a> Usernames<'a> {
    fn new(store: &'a Store) -> Self {
        Self {
            store,
            known: HashMap::new(),
        }
    }

    async fn of(&mut self, account: AccountId) -> Result<String, StoreError> {
        if let Some(name) = self.known.get(&account) {
            return Ok(name.clone());
        }
        let name = username(self.store, account).await?.unwrap_or_default();
        self.known.insert(account, name.clone());
        Ok(name)
    }
}

/// One line of the staff list.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoverySummary {
    /// The id staff type.
    pub id: RecoveryId,
    /// The account being recovered.
    pub account: AccountId,
    /// Its username (empty if the account is gone).
    pub username: String,
    /// Where the recovery stands.
    pub state: RecoveryState,
    /// The policy rule that decided it, once decided.
    pub outcome_rule: Option<String>,
    /// When it started (unix seconds).
    pub created_at: i64,
    /// When it last changed (unix seconds).
    pub updated_at: i64,
    /// When a timed unlock completes (unix seconds).
    pub completes_at: Option<i64>,
    /// How many pieces of evidence it holds.
    pub evidence_count: usize,
}

/// Everything staff see about one recovery. Holds no secret: evidence is named by reference
/// (token id, code id, contact id) with its non-secret detail.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryDetail {
    /// The recovery as stored.
    pub recovery: LockoutRecovery,
    /// The account's username (empty if the account is gone).
    pub username: String,
    /// Its evidence, in the order it was added.
    pub evidence: Vec<EvidenceRecord>,
    /// The account's most recent audit events (at most [`SHOW_AUDIT_EVENTS`]), newest first:
    /// not only this recovery's, because what happened to the account just before (a new
    /// second factor, a changed address, an earlier recovery) is what staff must weigh.
    pub audit: Vec<AuditRecord>,
}

/// What a decision did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Decision {
    /// The recovery.
    pub id: RecoveryId,
    /// Its account's username.
    pub username: String,
    /// The state it was in.
    pub from: RecoveryState,
    /// The state it is in now.
    pub to: RecoveryState,
    /// How many notices were queued (one per verified address).
    pub notices: usize,
}

/// Recoveries, newest first, in `filter` (every state when `None`), at most `limit`.
///
/// # Errors
///
/// [`StaffError::Store`] when the database fails.
pub async fn list(
    store: &Store,
    filter: Option<RecoveryState>,
    limit: u32,
) -> Result<Vec<RecoverySummary>, StaffError> {
    let recoveries = store.recoveries(filter, limit).await?;
    let mut usernames = Usernames::new(store);
    let mut out = Vec::with_capacity(recoveries.len());
    for r in recoveries {
        let username = usernames.of(r.account).await?;
        let evidence_count = store.evidence(r.id).await?.len();
        out.push(RecoverySummary {
            id: r.id,
            account: r.account,
            username,
            state: r.state,
            outcome_rule: r.outcome_rule,
            created_at: r.created_at,
            updated_at: r.updated_at,
            completes_at: r.completes_at,
            evidence_count,
        });
    }
    Ok(out)
}

/// One recovery with its evidence and its account's recent audit events.
///
/// # Errors
///
/// [`StaffError::UnknownRecovery`] when no recovery has this id, [`StaffError::Store`] when
/// the database fails.
pub async fn show(store: &Store, id: RecoveryId) -> Result<RecoveryDetail, StaffError> {
    let recovery = store
        .recovery(id)
        .await?
        .ok_or(StaffError::UnknownRecovery(id))?;
    let username = username(store, recovery.account).await?.unwrap_or_default();
    let evidence = store.evidence(id).await?;
    let audit = store
        .audit_events(Some(recovery.account), SHOW_AUDIT_EVENTS)
        .await?;
    Ok(RecoveryDetail {
        recovery,
        username,
        evidence,
        audit,
    })
}

/// Approves a recovery in `review` at `now`: it becomes `unlocked`, and in the same
/// transaction the store resets the account's second factor, revokes every session, queues a
/// notice to every verified address and appends an audit row with actor `staff:<staff>`.
/// `site` signs the notices ([`crate::config::AccountMailSettings::site_name`]).
///
/// # Errors
///
/// [`StaffError::InvalidStaffName`], [`StaffError::UnknownRecovery`],
/// [`StaffError::WrongState`] (not in [`APPROVABLE`], including when it changed meanwhile),
/// [`StaffError::MissingAccount`], [`StaffError::Store`]. Nothing is written then.
pub async fn approve(
    store: &Store,
    site: &str,
    id: RecoveryId,
    staff: &str,
    now: i64,
) -> Result<Decision, StaffError> {
    let actor = actor(staff)?;
    let (recovery, username) = decidable(store, id, APPROVABLE, "approved").await?;
    let when = notify::format_time(now);
    let body = format!(
        "A member of {site}'s staff approved the recovery of your account \"{username}\" \
         (recovery {id}) on {when}.\r\n\r\n\
         Your second factor was removed and every session of the account was signed out. \
         Sign in with your password, then set up a new second factor (you will get new \
         recovery codes), and save a new recovery token with a recovery provider.\r\n\r\n\
         If you did not ask to recover your account, someone else may now be able to sign in \
         with your password: contact {site}'s support at once, quoting recovery {id}."
    );
    let plan = Plan {
        to: RecoveryState::Unlocked,
        allowed: APPROVABLE,
        action: "approved",
        subject: "Your account recovery was approved",
        body,
        event: "recovery.approved",
        detail: format!("recovery {id} approved from {}", recovery.state),
    };
    decide(store, site, &recovery, username, &actor, now, plan).await
}

/// Denies a recovery that can still unlock ([`DENIABLE`]) at `now`: it becomes `denied`, a
/// notice with `reason` goes to every verified address and an audit row with actor
/// `staff:<staff>` records the reason. The reason is staff text: control characters become
/// spaces and it is cut to [`MAX_REASON_CHARS`].
///
/// # Errors
///
/// [`StaffError::InvalidStaffName`], [`StaffError::EmptyReason`],
/// [`StaffError::UnknownRecovery`], [`StaffError::WrongState`],
/// [`StaffError::MissingAccount`], [`StaffError::Store`]. Nothing is written then.
pub async fn deny(
    store: &Store,
    site: &str,
    id: RecoveryId,
    staff: &str,
    reason: &str,
    now: i64,
) -> Result<Decision, StaffError> {
    let actor = actor(staff)?;
    let reason = clean_reason(reason)?;
    let (recovery, username) = decidable(store, id, DENIABLE, "denied").await?;
    let when = notify::format_time(now);
    let body = format!(
        "A member of {site}'s staff denied the recovery of your account \"{username}\" \
         (recovery {id}) on {when}.\r\n\r\n\
         The reason given: {reason}\r\n\r\n\
         Nothing about the account changed: your password and second factor work as before. \
         If you asked for this recovery and still cannot sign in, contact {site}'s support, \
         quoting recovery {id}. If you did not ask for it, someone may know your password: \
         change it when you next sign in."
    );
    let plan = Plan {
        to: RecoveryState::Denied,
        allowed: DENIABLE,
        action: "denied",
        subject: "Your account recovery was denied",
        body,
        event: "recovery.denied",
        detail: format!(
            "recovery {id} denied from {}; reason: {reason}",
            recovery.state
        ),
    };
    decide(store, site, &recovery, username, &actor, now, plan).await
}

/// A decision: the state it leads to, the states it may be taken from, and its notice to the
/// owner and audit row.
struct Plan {
    to: RecoveryState,
    allowed: &'static [RecoveryState],
    action: &'static str,
    subject: &'static str,
    body: String,
    event: &'static str,
    detail: String,
}

/// Applies `plan` with its notices (to every verified address) and audit row, as a
/// compare-and-set from the state `recovery` was read in (so the audit row's "from" is true);
/// a lost compare-and-set reports the state that won.
async fn decide(
    store: &Store,
    site: &str,
    recovery: &LockoutRecovery,
    username: String,
    actor: &str,
    now: i64,
    plan: Plan,
) -> Result<Decision, StaffError> {
    let addresses = notify::verified_addresses(store, recovery.account).await?;
    let mails = notify::to_all(site, &addresses, plan.subject, &plan.body);
    let detail = format!("{}; {} notices queued", plan.detail, mails.len());
    let audit = [notify::audit(
        recovery.account,
        actor,
        plan.event,
        detail,
        None,
    )];
    let change =
        StateChange::new(std::slice::from_ref(&recovery.state), plan.to, now).decided_by(actor);
    if !store
        .set_recovery_state(recovery.id, &change, &mails, &audit)
        .await?
    {
        let current = store
            .recovery(recovery.id)
            .await?
            .ok_or(StaffError::UnknownRecovery(recovery.id))?;
        return Err(wrong_state(
            recovery.id,
            current.state,
            plan.allowed,
            plan.action,
        ));
    }
    Ok(Decision {
        id: recovery.id,
        username,
        from: recovery.state,
        to: plan.to,
        notices: mails.len(),
    })
}

/// The recovery and its account's username, when it is in one of `allowed`.
async fn decidable(
    store: &Store,
    id: RecoveryId,
    allowed: &[RecoveryState],
    action: &'static str,
) -> Result<(LockoutRecovery, String), StaffError> {
    let recovery = store
        .recovery(id)
        .await?
        .ok_or(StaffError::UnknownRecovery(id))?;
    if !allowed.contains(&recovery.state) {
        return Err(wrong_state(id, recovery.state, allowed, action));
    }
    let username = username(store, recovery.account)
        .await?
        .ok_or(StaffError::MissingAccount(id))?;
    Ok((recovery, username))
}

fn wrong_state(
    id: RecoveryId,
    current: RecoveryState,
    allowed: &[RecoveryState],
    action: &'static str,
) -> StaffError {
    StaffError::WrongState {
        id,
        current,
        action,
        allowed: allowed
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(" or "),
    }
}

async fn username(store: &Store, account: AccountId) -> Result<Option<String>, StoreError> {
    Ok(store.account(account).await?.map(|a| a.username))
}

/// `staff:<name>` after checking the name (see [`StaffError::InvalidStaffName`]).
fn actor(staff: &str) -> Result<String, StaffError> {
    let name = staff.trim();
    if name.is_empty() {
        return Err(StaffError::InvalidStaffName("must not be empty"));
    }
    if name.chars().count() > MAX_STAFF_NAME_CHARS {
        return Err(StaffError::InvalidStaffName(
            "must be at most 64 characters",
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(StaffError::InvalidStaffName(
            "must not hold control characters",
        ));
    }
    Ok(format!("staff:{name}"))
}

/// The reason with control characters replaced by spaces (a line break in it could forge a
/// line of the mail or of the audit output), trimmed and cut to [`MAX_REASON_CHARS`].
fn clean_reason(reason: &str) -> Result<String, StaffError> {
    let cleaned: String = reason
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let cut: String = cleaned.trim().chars().take(MAX_REASON_CHARS).collect();
    let cut = cut.trim_end().to_owned();
    if cut.is_empty() {
        return Err(StaffError::EmptyReason);
    }
    Ok(cut)
}

#[cfg(test)]
mod tests;
