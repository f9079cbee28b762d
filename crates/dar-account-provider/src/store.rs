//! What the account provider role needs from storage: the [`AccountProviderStore`] trait and
//! the records it reads and writes.
//!
//! The role crate decides; the store persists. Every method that changes state does all of
//! its changes in one transaction, and the ones that depend on an earlier read take the state
//! they expect (compare-and-set), so two instances sharing a database never both act on the
//! same single-use state. `dar-store` implements the trait for SQLite and PostgreSQL;
//! [`crate::MemoryStore`] implements it in memory for tests and examples.
//!
//! Nothing stored lets anyone recover an account: records hold token ids, the account, the
//! recovery provider, times and states, and SHA-256 hashes of the payload secret, the
//! save-token state and the session id, never a token, a key or a plaintext.

use core::fmt;
use core::future::Future;
use core::str::FromStr;

use dar_core::{Origin, TokenId};
use time::OffsetDateTime;

use crate::error::{AccountProviderError, StoreFailure};

/// Where a recovery token is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenState {
    /// Issued; the recovery provider has not reported back yet.
    Issued,
    /// The recovery provider reported it saved (§3.2, §3.6.1 `save-success`).
    Saved,
    /// The recovery provider reported it did not save it (§3.2, §3.6.1 `save-failure`).
    SaveFailed,
    /// The recovery provider reported it deleted it (§3.6.1 `deleted`).
    Deleted,
    /// It was used for a recovery (§3.5): a token recovers once.
    Used,
    /// Revoked; see [`RevocationReason`].
    Revoked,
}

impl TokenState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Issued => "issued",
            Self::Saved => "saved",
            Self::SaveFailed => "save_failed",
            Self::Deleted => "deleted",
            Self::Used => "used",
            Self::Revoked => "revoked",
        }
    }
}

impl FromStr for TokenState {
    type Err = StoreFailure;

    fn from_str(s: &str) -> Result<Self, StoreFailure> {
        Ok(match s {
            "issued" => Self::Issued,
            "saved" => Self::Saved,
            "save_failed" => Self::SaveFailed,
            "deleted" => Self::Deleted,
            "used" => Self::Used,
            "revoked" => Self::Revoked,
            _ => return Err(StoreFailure::Corrupt("token state")),
        })
    }
}

impl fmt::Display for TokenState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a token was revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RevocationReason {
    /// The user (or an administrator acting for them) revoked it.
    User,
    /// A newer token that `obsoletes` it was saved (§3.1 `obsoletes`).
    Replaced,
    /// The recovery provider reported `token-repudiated` (§3.6.1).
    TokenRepudiated,
    /// The recovery provider reported `recovery-repudiated` (§3.6.1).
    RecoveryRepudiated,
    /// Issued during a period of compromise of the account (§6.3.2).
    Compromise,
}

impl RevocationReason {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Replaced => "replaced",
            Self::TokenRepudiated => "token_repudiated",
            Self::RecoveryRepudiated => "recovery_repudiated",
            Self::Compromise => "compromise",
        }
    }
}

impl FromStr for RevocationReason {
    type Err = StoreFailure;

    fn from_str(s: &str) -> Result<Self, StoreFailure> {
        Ok(match s {
            "user" => Self::User,
            "replaced" => Self::Replaced,
            "token_repudiated" => Self::TokenRepudiated,
            "recovery_repudiated" => Self::RecoveryRepudiated,
            "compromise" => Self::Compromise,
            _ => return Err(StoreFailure::Corrupt("revocation reason")),
        })
    }
}

/// What the account provider keeps about a token it issued (§3.1 AP steps 6–7). No secret:
/// only a hash of the payload's secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// The token id.
    pub token_id: TokenId,
    /// The account it recovers.
    pub account_id: String,
    /// The recovery provider it was issued for (the token's audience).
    pub audience: Origin,
    /// Where it is in its life.
    pub state: TokenState,
    /// Why it was revoked, when [`TokenState::Revoked`].
    pub revoked_reason: Option<RevocationReason>,
    /// When it was issued.
    pub created_at: OffsetDateTime,
    /// When its state last changed.
    pub updated_at: OffsetDateTime,
    /// The token it replaces, if any (§3.1 `obsoletes`).
    pub obsoletes: Option<TokenId>,
    /// SHA-256 of the sealed payload's secret (§3.5 step 14 matches it).
    pub secret_hash: [u8; 32],
    /// Fingerprint of the signing key that signed it (§3.1 AP step 7).
    pub signing_key: String,
    /// Id of the sealing key that sealed it (§3.1 AP step 7).
    pub sealing_key_id: u32,
}

/// A pending save-token round trip (§3.2): not `Serialize`, never given to a client. Only the
/// hashes of the state value and of the session id are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingSave {
    /// SHA-256 of the `state` value sent to the recovery provider.
    pub state_hash: [u8; 32],
    /// SHA-256 of the user's session id.
    pub session_hash: [u8; 32],
    /// The token being saved.
    pub token_id: TokenId,
    /// After this instant the state is refused.
    pub expires_at: OffsetDateTime,
}

/// An entry of the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// When.
    pub at: OffsetDateTime,
    /// What happened.
    pub event: AuditEvent,
    /// The token concerned.
    pub token_id: TokenId,
    /// Its account.
    pub account_id: String,
    /// Its recovery provider.
    pub recovery_provider: Origin,
    /// Extra detail: a revocation reason, a countersigned id. Never a secret.
    pub detail: Option<String>,
}

/// The kinds of audited events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditEvent {
    /// A token was issued (§3.1).
    Issued,
    /// A token's state changed on a save-token-return or a status event (§3.2, §3.6).
    StateChanged,
    /// A token was revoked.
    Revoked,
    /// A countersigned token was accepted (§3.5 step 16).
    Recovered,
    /// The recovery provider repudiated a recovery (§3.6.1 `recovery-repudiated`).
    RecoveryRepudiated,
}

impl AuditEvent {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Issued => "issued",
            Self::StateChanged => "state_changed",
            Self::Revoked => "revoked",
            Self::Recovered => "recovered",
            Self::RecoveryRepudiated => "recovery_repudiated",
        }
    }
}

impl FromStr for AuditEvent {
    type Err = StoreFailure;

    fn from_str(s: &str) -> Result<Self, StoreFailure> {
        Ok(match s {
            "issued" => Self::Issued,
            "state_changed" => Self::StateChanged,
            "revoked" => Self::Revoked,
            "recovered" => Self::Recovered,
            "recovery_repudiated" => Self::RecoveryRepudiated,
            _ => return Err(StoreFailure::Corrupt("audit event")),
        })
    }
}

/// A state change of one token, applied only if the token is still in `from`
/// (compare-and-set), together with its audit entry, in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The token.
    pub token_id: TokenId,
    /// The state the decision was made on.
    pub from: TokenState,
    /// The new state.
    pub to: TokenState,
    /// Set with [`TokenState::Revoked`].
    pub revoked_reason: Option<RevocationReason>,
    /// When.
    pub at: OffsetDateTime,
    /// Also revoke this token (reason [`RevocationReason::Replaced`]) if it belongs to the same
    /// account and is neither used nor revoked: the token the new one `obsoletes`, once the new
    /// one is saved (§3.1). Audited too.
    pub revoke_replaced: Option<TokenId>,
    /// Mark the recovery made with this countersigned id as repudiated (§3.6.1
    /// `recovery-repudiated`); only a recovery of this token is marked. Audited too.
    pub repudiate_recovery: Option<TokenId>,
    /// The audit entry for the change.
    pub audit: AuditEntry,
}

/// All the state changes of one accepted countersigned token (§3.5 steps 9 and 16), applied
/// together in one transaction or not at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryCommit {
    /// The countersigned token's id: inserted into the replay guard; a duplicate fails with
    /// [`AccountProviderError::Replayed`].
    pub countersigned_id: TokenId,
    /// Keep the replay guard entry until then (the countersigned token's issued_time plus the
    /// freshness window), after which [`AccountProviderStore::purge`] may drop it.
    pub guard_expires_at: OffsetDateTime,
    /// The recovery token: moved from `from` to [`TokenState::Used`]; if it is no longer in
    /// `from`, or a recovery of it is already recorded, the commit fails with
    /// [`AccountProviderError::TokenAlreadyUsed`].
    pub token_id: TokenId,
    /// The state the decision was made on.
    pub from: TokenState,
    /// The account recovered.
    pub account_id: String,
    /// The recovery provider that countersigned.
    pub recovery_provider: Origin,
    /// Whether it reported low friction (§6.4).
    pub low_friction: bool,
    /// When.
    pub at: OffsetDateTime,
    /// Where the evidence is parked for the user's next request, written in the same
    /// transaction; `None` when the caller keeps it itself.
    pub handoff: Option<EvidenceHandoff>,
}

/// The evidence of an accepted recovery, parked for the browser's next request to collect.
///
/// The countersigned token arrives in a cross-site POST (§3.5), which carries no session
/// cookie, so the evidence waits server-side under a random id the browser is sent on with.
/// Writing it in the commit that uses the token means a token is never marked used with its
/// evidence lost (a crash between two writes), and costs no second transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceHandoff {
    /// The key it is collected by: a hash of the id the browser carries, never the id.
    pub key_hash: String,
    /// What kind of parked request it is; the collector names the kind it expects.
    pub kind: String,
    /// The evidence, in the collector's format.
    pub payload: String,
    /// Until when it can be collected.
    pub expires_at: OffsetDateTime,
}

/// The permanent record of a recovery (§3.5 step 16): which recovery provider, when, which
/// token. Never the token itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryRecord {
    /// The countersigned token's id.
    pub countersigned_id: TokenId,
    /// The recovery token's id.
    pub token_id: TokenId,
    /// The account recovered.
    pub account_id: String,
    /// The recovery provider that countersigned.
    pub recovery_provider: Origin,
    /// When the recovery was accepted.
    pub recovered_at: OffsetDateTime,
    /// Whether the recovery provider reported low friction (§6.4).
    pub low_friction: bool,
    /// When the recovery provider repudiated it (§3.6.1), if it did.
    pub repudiated_at: Option<OffsetDateTime>,
}

/// How many expired rows [`AccountProviderStore::purge`] removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Purged {
    /// Save-token states past their expiry.
    pub save_states: u64,
    /// Replay guard entries past the freshness window.
    pub replay_guard: u64,
    /// Rate-limit windows that have ended.
    pub rate_windows: u64,
}

/// Storage for the account provider role.
///
/// Errors are domain errors: a store maps its constraint violations to
/// [`AccountProviderError::Replayed`] or [`AccountProviderError::TokenAlreadyUsed`] itself, and
/// anything else to [`AccountProviderError::Store`].
pub trait AccountProviderStore: Send + Sync {
    /// Records a new token and its pending save state, in one transaction.
    ///
    /// # Errors
    ///
    /// [`AccountProviderError::Store`].
    fn insert_token(
        &self,
        record: &TokenRecord,
        pending: &PendingSave,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<(), AccountProviderError>> + Send;

    /// The record of `token_id`, if any.
    ///
    /// # Errors
    ///
    /// [`AccountProviderError::Store`].
    fn token(
        &self,
        token_id: TokenId,
    ) -> impl Future<Output = Result<Option<TokenRecord>, AccountProviderError>> + Send;

    /// Every token record of `account_id`, oldest first (tokens of the same second in any
    /// order).
    ///
    /// # Errors
    ///
    /// [`AccountProviderError::Store`].
    fn tokens_for_account(
        &self,
        account_id: &str,
    ) -> impl Future<Output = Result<Vec<TokenRecord>, AccountProviderError>> + Send;

    /// Atomically removes and returns the token id of the pending save whose state hash is
    /// `state_hash`, if its session hash is `session_hash` and it expires after `now`.
    /// Otherwise changes nothing and returns `None`.
    ///
    /// # Errors
    ///
    /// [`AccountProviderError::Store`].
    fn take_pending_save(
        &self,
        state_hash: &[u8; 32],
        session_hash: &[u8; 32],
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Option<TokenId>, AccountProviderError>> + Send;

    /// Applies `transition` if the token is still in `transition.from`. Returns whether it
    /// was applied; if not, nothing changed.
    ///
    /// # Errors
    ///
    /// [`AccountProviderError::Store`].
    fn apply_transition(
        &self,
        transition: &Transition,
    ) -> impl Future<Output = Result<bool, AccountProviderError>> + Send;

    /// Whether the replay guard holds `countersigned_id`.
    ///
    /// # Errors
    ///
    /// [`AccountProviderError::Store`].
    fn is_replayed(
        &self,
        countersigned_id: TokenId,
    ) -> impl Future<Output = Result<bool, AccountProviderError>> + Send;

    /// [`is_replayed`](Self::is_replayed) for `countersigned_id` and the
    /// [`token`](Self::token) record of `token_id`, the two reads of §3.5 steps 9 and 14. A
    /// store that can answer both in one round trip overrides this.
    ///
    /// # Errors
    ///
    /// [`AccountProviderError::Store`].
    fn replayed_and_token(
        &self,
        countersigned_id: TokenId,
        token_id: TokenId,
    ) -> impl Future<Output = Result<(bool, Option<TokenRecord>), AccountProviderError>> + Send
    {
        async move {
            let replayed = self.is_replayed(countersigned_id).await?;
            Ok((replayed, self.token(token_id).await?))
        }
    }

    /// §3.5 steps 9, 14 and 16 on one hold of the database: reads what
    /// [`replayed_and_token`](Self::replayed_and_token) reads, hands it to `decide`, and
    /// commits the [`RecoveryCommit`] `decide` returns as
    /// [`commit_recovery`](Self::commit_recovery) does, answering the value that came with it.
    /// When `decide` fails or declines (`Ok(Err(declined))`), nothing is written. A store whose
    /// connections cost a round trip to take and to give back overrides this to take one for
    /// both; `decide` should be quick, as it runs while the store is held.
    ///
    /// # Errors
    ///
    /// As `replayed_and_token` and `commit_recovery`, and `decide`'s.
    fn recover<A, D, F>(
        &self,
        countersigned_id: TokenId,
        token_id: TokenId,
        decide: F,
    ) -> impl Future<Output = Result<Result<A, D>, AccountProviderError>> + Send
    where
        A: Send,
        D: Send,
        F: FnOnce(
                bool,
                Option<TokenRecord>,
            ) -> Result<Result<(RecoveryCommit, A), D>, AccountProviderError>
            + Send,
    {
        async move {
            let (replayed, record) = self.replayed_and_token(countersigned_id, token_id).await?;
            Ok(match decide(replayed, record)? {
                Ok((commit, accepted)) => {
                    self.commit_recovery(&commit).await?;
                    Ok(accepted)
                }
                Err(declined) => Err(declined),
            })
        }
    }

    /// Commits an accepted recovery in one transaction: replay guard entry, token marked
    /// used, permanent recovery record, audit entry, and the [`EvidenceHandoff`] when there is
    /// one. On any error nothing changed.
    ///
    /// # Errors
    ///
    /// [`AccountProviderError::Replayed`] if the countersigned id is in the replay guard,
    /// [`AccountProviderError::TokenAlreadyUsed`] if the token left `commit.from` or already
    /// has a recovery, [`AccountProviderError::Store`] otherwise.
    fn commit_recovery(
        &self,
        commit: &RecoveryCommit,
    ) -> impl Future<Output = Result<(), AccountProviderError>> + Send;

    /// The recoveries of `account_id`, oldest first.
    ///
    /// # Errors
    ///
    /// [`AccountProviderError::Store`].
    fn recoveries_for_account(
        &self,
        account_id: &str,
    ) -> impl Future<Output = Result<Vec<RecoveryRecord>, AccountProviderError>> + Send;

    /// The audit entries of `account_id`, oldest first.
    ///
    /// # Errors
    ///
    /// [`AccountProviderError::Store`].
    fn audit_for_account(
        &self,
        account_id: &str,
    ) -> impl Future<Output = Result<Vec<AuditEntry>, AccountProviderError>> + Send;

    /// Counts one status event of `recovery_provider` in the window starting at
    /// `window_start` (unix seconds), atomically across instances, and returns the count
    /// including this one.
    ///
    /// # Errors
    ///
    /// [`AccountProviderError::Store`].
    fn count_status_event(
        &self,
        recovery_provider: &Origin,
        window_start: i64,
    ) -> impl Future<Output = Result<u64, AccountProviderError>> + Send;

    /// Drops save states and replay guard entries that expired before `now`, and rate-limit
    /// windows that started before `windows_before` (unix seconds).
    ///
    /// # Errors
    ///
    /// [`AccountProviderError::Store`].
    fn purge(
        &self,
        now: OffsetDateTime,
        windows_before: i64,
    ) -> impl Future<Output = Result<Purged, AccountProviderError>> + Send;
}

macro_rules! delegate_store {
    ($($ty:ty),*) => {$(
        impl<T: AccountProviderStore + ?Sized> AccountProviderStore for $ty {
            fn insert_token(
                &self,
                record: &TokenRecord,
                pending: &PendingSave,
                audit: &AuditEntry,
            ) -> impl Future<Output = Result<(), AccountProviderError>> + Send {
                (**self).insert_token(record, pending, audit)
            }

            fn token(
                &self,
                token_id: TokenId,
            ) -> impl Future<Output = Result<Option<TokenRecord>, AccountProviderError>> + Send {
                (**self).token(token_id)
            }

            fn tokens_for_account(
                &self,
                account_id: &str,
            ) -> impl Future<Output = Result<Vec<TokenRecord>, AccountProviderError>> + Send {
                (**self).tokens_for_account(account_id)
            }

            fn take_pending_save(
                &self,
                state_hash: &[u8; 32],
                session_hash: &[u8; 32],
                now: OffsetDateTime,
            ) -> impl Future<Output = Result<Option<TokenId>, AccountProviderError>> + Send {
                (**self).take_pending_save(state_hash, session_hash, now)
            }

            fn apply_transition(
                &self,
                transition: &Transition,
            ) -> impl Future<Output = Result<bool, AccountProviderError>> + Send {
                (**self).apply_transition(transition)
            }

            fn is_replayed(
                &self,
                countersigned_id: TokenId,
            ) -> impl Future<Output = Result<bool, AccountProviderError>> + Send {
                (**self).is_replayed(countersigned_id)
            }

            fn replayed_and_token(
                &self,
                countersigned_id: TokenId,
                token_id: TokenId,
            ) -> impl Future<Output = Result<(bool, Option<TokenRecord>), AccountProviderError>>
            + Send {
                (**self).replayed_and_token(countersigned_id, token_id)
            }

            fn recover<A, D, F>(
                &self,
                countersigned_id: TokenId,
                token_id: TokenId,
                decide: F,
            ) -> impl Future<Output = Result<Result<A, D>, AccountProviderError>> + Send
            where
                A: Send,
                D: Send,
                F: FnOnce(
                        bool,
                        Option<TokenRecord>,
                    ) -> Result<Result<(RecoveryCommit, A), D>, AccountProviderError>
                    + Send,
            {
                (**self).recover(countersigned_id, token_id, decide)
            }

            fn commit_recovery(
                &self,
                commit: &RecoveryCommit,
            ) -> impl Future<Output = Result<(), AccountProviderError>> + Send {
                (**self).commit_recovery(commit)
            }

            fn recoveries_for_account(
                &self,
                account_id: &str,
            ) -> impl Future<Output = Result<Vec<RecoveryRecord>, AccountProviderError>> + Send {
                (**self).recoveries_for_account(account_id)
            }

            fn audit_for_account(
                &self,
                account_id: &str,
            ) -> impl Future<Output = Result<Vec<AuditEntry>, AccountProviderError>> + Send {
                (**self).audit_for_account(account_id)
            }

            fn count_status_event(
                &self,
                recovery_provider: &Origin,
                window_start: i64,
            ) -> impl Future<Output = Result<u64, AccountProviderError>> + Send {
                (**self).count_status_event(recovery_provider, window_start)
            }

            fn purge(
                &self,
                now: OffsetDateTime,
                windows_before: i64,
            ) -> impl Future<Output = Result<Purged, AccountProviderError>> + Send {
                (**self).purge(now, windows_before)
            }
        }
    )*};
}

// A shared store (`Arc<Store>`, `&Store`) is a store: several providers, or a provider and an
// administration task, can use one database handle.
delegate_store!(&T, std::sync::Arc<T>);
