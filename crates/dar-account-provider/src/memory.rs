//! An in-memory [`AccountProviderStore`], for tests, examples and single-process experiments.
//! Nothing survives the process; use `dar-store` for anything real.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use dar_core::{Origin, TokenId};
use time::OffsetDateTime;

use crate::error::{AccountProviderError, StoreFailure};
use crate::store::{
    AccountProviderStore, AuditEntry, AuditEvent, EvidenceHandoff, PendingSave, Purged,
    RecoveryCommit, RecoveryRecord, RevocationReason, TokenRecord, TokenState, Transition,
};

/// An [`AccountProviderStore`] in memory. Each method holds one lock for its whole work, which
/// gives it the atomicity a database transaction gives `dar-store`.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    tokens: BTreeMap<TokenId, TokenRecord>,
    /// Insertion order of tokens, for "oldest first".
    order: Vec<TokenId>,
    pending: HashMap<[u8; 32], PendingSave>,
    replay_guard: HashMap<TokenId, OffsetDateTime>,
    recoveries: Vec<RecoveryRecord>,
    recovered_tokens: HashSet<TokenId>,
    audit: Vec<AuditEntry>,
    rate: HashMap<(String, i64), u64>,
    handoffs: Vec<EvidenceHandoff>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<MutexGuard<'_, Inner>, AccountProviderError> {
        self.inner
            .lock()
            .map_err(|_| StoreFailure::Backend("memory store lock poisoned".into()).into())
    }

    /// How many replay guard entries are held (for tests of purging).
    ///
    /// # Errors
    ///
    /// [`AccountProviderError::Store`] if the lock is poisoned.
    pub fn replay_guard_len(&self) -> Result<usize, AccountProviderError> {
        Ok(self.lock()?.replay_guard.len())
    }

    /// How many save states are pending (for tests).
    ///
    /// # Errors
    ///
    /// [`AccountProviderError::Store`] if the lock is poisoned.
    pub fn pending_saves_len(&self) -> Result<usize, AccountProviderError> {
        Ok(self.lock()?.pending.len())
    }

    /// The evidence handoffs committed with recoveries, oldest first (for tests).
    ///
    /// # Errors
    ///
    /// [`AccountProviderError::Store`] if the lock is poisoned.
    pub fn handoffs(&self) -> Result<Vec<EvidenceHandoff>, AccountProviderError> {
        Ok(self.lock()?.handoffs.clone())
    }
}

impl Inner {
    fn revoke_replaced(&mut self, old: TokenId, account: &str, at: OffsetDateTime) {
        let Some(record) = self.tokens.get_mut(&old) else {
            return;
        };
        if record.account_id != account
            || matches!(record.state, TokenState::Used | TokenState::Revoked)
        {
            return;
        }
        record.state = TokenState::Revoked;
        record.revoked_reason = Some(RevocationReason::Replaced);
        record.updated_at = at;
        let entry = AuditEntry {
            at,
            event: AuditEvent::Revoked,
            token_id: old,
            account_id: record.account_id.clone(),
            recovery_provider: record.audience.clone(),
            detail: Some(RevocationReason::Replaced.as_str().to_owned()),
        };
        self.audit.push(entry);
    }
}

impl AccountProviderStore for MemoryStore {
    async fn insert_token(
        &self,
        record: &TokenRecord,
        pending: &PendingSave,
        audit: &AuditEntry,
    ) -> Result<(), AccountProviderError> {
        let mut inner = self.lock()?;
        if inner.tokens.contains_key(&record.token_id) {
            return Err(StoreFailure::Backend("duplicate token id".into()).into());
        }
        inner.tokens.insert(record.token_id, record.clone());
        inner.order.push(record.token_id);
        inner.pending.insert(pending.state_hash, pending.clone());
        inner.audit.push(audit.clone());
        Ok(())
    }

    async fn token(&self, token_id: TokenId) -> Result<Option<TokenRecord>, AccountProviderError> {
        Ok(self.lock()?.tokens.get(&token_id).cloned())
    }

    async fn tokens_for_account(
        &self,
        account_id: &str,
    ) -> Result<Vec<TokenRecord>, AccountProviderError> {
        let inner = self.lock()?;
        Ok(inner
            .order
            .iter()
            .filter_map(|id| inner.tokens.get(id))
            .filter(|r| r.account_id == account_id)
            .cloned()
            .collect())
    }

    async fn take_pending_save(
        &self,
        state_hash: &[u8; 32],
        session_hash: &[u8; 32],
        now: OffsetDateTime,
    ) -> Result<Option<TokenId>, AccountProviderError> {
        let mut inner = self.lock()?;
        let matches = inner
            .pending
            .get(state_hash)
            .is_some_and(|p| p.session_hash == *session_hash && p.expires_at > now);
        if !matches {
            return Ok(None);
        }
        Ok(inner.pending.remove(state_hash).map(|p| p.token_id))
    }

    async fn apply_transition(&self, t: &Transition) -> Result<bool, AccountProviderError> {
        let mut inner = self.lock()?;
        let Some(record) = inner.tokens.get_mut(&t.token_id) else {
            return Ok(false);
        };
        if record.state != t.from {
            return Ok(false);
        }
        record.state = t.to;
        record.revoked_reason = t.revoked_reason;
        record.updated_at = t.at;
        let account = record.account_id.clone();
        inner.audit.push(t.audit.clone());
        if let Some(old) = t.revoke_replaced {
            inner.revoke_replaced(old, &account, t.at);
        }
        if let Some(cs) = t.repudiate_recovery {
            let mut marked = None;
            for r in &mut inner.recoveries {
                if r.countersigned_id == cs && r.token_id == t.token_id && r.repudiated_at.is_none()
                {
                    r.repudiated_at = Some(t.at);
                    marked = Some(r.clone());
                }
            }
            if let Some(r) = marked {
                inner.audit.push(AuditEntry {
                    at: t.at,
                    event: AuditEvent::RecoveryRepudiated,
                    token_id: r.token_id,
                    account_id: r.account_id,
                    recovery_provider: r.recovery_provider,
                    detail: Some(cs.to_string()),
                });
            }
        }
        Ok(true)
    }

    async fn is_replayed(&self, countersigned_id: TokenId) -> Result<bool, AccountProviderError> {
        Ok(self.lock()?.replay_guard.contains_key(&countersigned_id))
    }

    async fn commit_recovery(&self, c: &RecoveryCommit) -> Result<(), AccountProviderError> {
        let mut inner = self.lock()?;
        if inner.replay_guard.contains_key(&c.countersigned_id) {
            return Err(AccountProviderError::Replayed);
        }
        if inner.recovered_tokens.contains(&c.token_id) {
            return Err(AccountProviderError::TokenAlreadyUsed);
        }
        let Some(record) = inner.tokens.get_mut(&c.token_id) else {
            return Err(AccountProviderError::TokenAlreadyUsed);
        };
        if record.state != c.from {
            return Err(AccountProviderError::TokenAlreadyUsed);
        }
        record.state = TokenState::Used;
        record.updated_at = c.at;
        inner
            .replay_guard
            .insert(c.countersigned_id, c.guard_expires_at);
        inner.recovered_tokens.insert(c.token_id);
        inner.recoveries.push(RecoveryRecord {
            countersigned_id: c.countersigned_id,
            token_id: c.token_id,
            account_id: c.account_id.clone(),
            recovery_provider: c.recovery_provider.clone(),
            recovered_at: c.at,
            low_friction: c.low_friction,
            repudiated_at: None,
        });
        inner.audit.push(AuditEntry {
            at: c.at,
            event: AuditEvent::Recovered,
            token_id: c.token_id,
            account_id: c.account_id.clone(),
            recovery_provider: c.recovery_provider.clone(),
            detail: Some(c.countersigned_id.to_string()),
        });
        inner.handoffs.extend(c.handoff.clone());
        Ok(())
    }

    async fn recoveries_for_account(
        &self,
        account_id: &str,
    ) -> Result<Vec<RecoveryRecord>, AccountProviderError> {
        Ok(self
            .lock()?
            .recoveries
            .iter()
            .filter(|r| r.account_id == account_id)
            .cloned()
            .collect())
    }

    async fn audit_for_account(
        &self,
        account_id: &str,
    ) -> Result<Vec<AuditEntry>, AccountProviderError> {
        Ok(self
            .lock()?
            .audit
            .iter()
            .filter(|a| a.account_id == account_id)
            .cloned()
            .collect())
    }

    async fn count_status_event(
        &self,
        recovery_provider: &Origin,
        window_start: i64,
    ) -> Result<u64, AccountProviderError> {
        let mut inner = self.lock()?;
        let count = inner
            .rate
            .entry((recovery_provider.as_str().to_owned(), window_start))
            .or_insert(0);
        *count = count.saturating_add(1);
        Ok(*count)
    }

    async fn purge(
        &self,
        now: OffsetDateTime,
        windows_before: i64,
    ) -> Result<Purged, AccountProviderError> {
        let mut inner = self.lock()?;
        let (p, g, w) = (
            inner.pending.len(),
            inner.replay_guard.len(),
            inner.rate.len(),
        );
        inner.pending.retain(|_, s| s.expires_at > now);
        inner.replay_guard.retain(|_, exp| *exp > now);
        inner.rate.retain(|(_, start), _| *start >= windows_before);
        let count = |before: usize, after: usize| {
            u64::try_from(before.saturating_sub(after)).unwrap_or(u64::MAX)
        };
        Ok(Purged {
            save_states: count(p, inner.pending.len()),
            replay_guard: count(g, inner.replay_guard.len()),
            rate_windows: count(w, inner.rate.len()),
        })
    }
}
