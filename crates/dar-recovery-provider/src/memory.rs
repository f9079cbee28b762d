//! An in-memory [`RecoveryProviderStore`], for tests, examples and trying the role out. One
//! process only, and everything is lost when it is dropped: deployments use `dar_store::Store`.

use std::sync::{Mutex, MutexGuard};

use dar_core::{Origin, TokenId};
use time::OffsetDateTime;

use crate::error::StoreFault;
use crate::model::{
    NewSavedToken, RecoveryRecord, RemovalReason, SaveTokenResult, SavedTokenBytes,
    SavedTokenSummary, UserId,
};
use crate::outbox::{OutboxEntry, OutboxId, OutboxMessage};
use crate::store::RecoveryProviderStore;

/// An in-memory [`RecoveryProviderStore`], for tests, examples and trying the role out. One
/// process only, and everything is lost when it is dropped: deployments use `dar_store::Store`.
///
/// ```
/// use dar_recovery_provider::{MemoryStore, RecoveryProviderStore, UserId};
/// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
/// let store = MemoryStore::new();
/// assert!(store.list_tokens(&UserId::new("alice")).await?.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<MemorySnapshot>,
}

/// Everything a [`MemoryStore`] holds, comparable, so a test can assert that a refused request
/// changed nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemorySnapshot {
    /// Saved tokens, removed ones included, in insertion order.
    pub tokens: Vec<StoredToken>,
    /// Recoveries, in insertion order.
    pub recoveries: Vec<RecoveryRecord>,
    /// Outbox rows, delivered ones included, in insertion order.
    pub outbox: Vec<StoredOutbox>,
}

/// A saved token row of a [`MemorySnapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredToken {
    /// The stored token (bytes erased once removed).
    pub token: NewSavedToken,
    /// When and why it was removed.
    pub removed: Option<(OffsetDateTime, RemovalReason)>,
}

/// An outbox row of a [`MemorySnapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOutbox {
    /// The entry.
    pub entry: OutboxEntry,
    /// Not before this time.
    pub next_attempt_at: OffsetDateTime,
    /// When it was delivered.
    pub delivered_at: Option<OffsetDateTime>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of everything stored.
    ///
    /// # Errors
    ///
    /// [`StoreFault::Failed`] if a thread panicked while holding the lock.
    pub fn snapshot(&self) -> Result<MemorySnapshot, StoreFault> {
        Ok(self.lock()?.clone())
    }

    fn lock(&self) -> Result<MutexGuard<'_, MemorySnapshot>, StoreFault> {
        self.state.lock().map_err(|_| StoreFault::Failed)
    }
}

/// Times are kept in whole seconds, as the SQL stores keep them.
fn seconds(t: OffsetDateTime) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(t.unix_timestamp()).unwrap_or(t)
}

impl MemorySnapshot {
    fn push_outbox(&mut self, message: &OutboxMessage, at: OffsetDateTime) -> OutboxId {
        let id = OutboxId(i64::try_from(self.outbox.len()).unwrap_or(i64::MAX - 1) + 1);
        self.outbox.push(StoredOutbox {
            entry: OutboxEntry {
                id,
                message: message.clone(),
                created_at: seconds(at),
                attempts: 0,
            },
            next_attempt_at: seconds(at),
            delivered_at: None,
        });
        id
    }

    fn active(&mut self, user: &UserId, issuer: &Origin, id: TokenId) -> Option<&mut StoredToken> {
        self.tokens.iter_mut().find(|t| {
            t.removed.is_none()
                && t.token.user == *user
                && t.token.issuer == *issuer
                && t.token.token_id == id
        })
    }
}

fn remove(token: &mut StoredToken, at: OffsetDateTime, reason: RemovalReason) {
    token.removed = Some((seconds(at), reason));
    token.token.token = Vec::new();
}

impl RecoveryProviderStore for MemoryStore {
    async fn save_token(
        &self,
        token: &NewSavedToken,
        on_saved: Option<&OutboxMessage>,
    ) -> Result<SaveTokenResult, StoreFault> {
        let mut s = self.lock()?;
        if let Some(existing) = s
            .tokens
            .iter()
            .find(|t| t.token.issuer == token.issuer && t.token.token_id == token.token_id)
        {
            return Ok(if existing.token.user != token.user {
                SaveTokenResult::OwnedByAnotherUser
            } else if existing.removed.is_some() {
                SaveTokenResult::Removed
            } else {
                SaveTokenResult::AlreadySaved
            });
        }
        if let Some(old) = token.obsoletes.filter(|o| *o != token.token_id)
            && let Some(t) = s.active(&token.user, &token.issuer, old)
        {
            remove(t, token.saved_at, RemovalReason::Obsoleted);
        }
        let mut stored = token.clone();
        stored.saved_at = seconds(stored.saved_at);
        s.tokens.push(StoredToken {
            token: stored,
            removed: None,
        });
        if let Some(m) = on_saved {
            s.push_outbox(m, token.saved_at);
        }
        Ok(SaveTokenResult::Saved)
    }

    async fn list_tokens(&self, user: &UserId) -> Result<Vec<SavedTokenSummary>, StoreFault> {
        let s = self.lock()?;
        Ok(s.tokens
            .iter()
            .filter(|t| t.removed.is_none() && t.token.user == *user)
            .map(|t| SavedTokenSummary {
                issuer: t.token.issuer.clone(),
                token_id: t.token.token_id,
                nickname: t.token.nickname.clone(),
                options: t.token.options,
                saved_at: t.token.saved_at,
            })
            .collect())
    }

    async fn token_bytes(
        &self,
        user: &UserId,
        issuer: &Origin,
        token_id: TokenId,
    ) -> Result<Option<SavedTokenBytes>, StoreFault> {
        let mut s = self.lock()?;
        Ok(s.active(user, issuer, token_id).map(|t| SavedTokenBytes {
            token: t.token.token.clone(),
            signer: t.token.signer,
        }))
    }

    async fn rename_token(
        &self,
        user: &UserId,
        issuer: &Origin,
        token_id: TokenId,
        nickname: Option<&str>,
    ) -> Result<bool, StoreFault> {
        let mut s = self.lock()?;
        let Some(t) = s.active(user, issuer, token_id) else {
            return Ok(false);
        };
        t.token.nickname = nickname.map(str::to_owned);
        Ok(true)
    }

    async fn remove_token(
        &self,
        user: &UserId,
        issuer: &Origin,
        token_id: TokenId,
        reason: RemovalReason,
        at: OffsetDateTime,
        on_removed: Option<&OutboxMessage>,
    ) -> Result<bool, StoreFault> {
        let mut s = self.lock()?;
        let Some(t) = s.active(user, issuer, token_id) else {
            return Ok(false);
        };
        remove(t, at, reason);
        if let Some(m) = on_removed {
            s.push_outbox(m, at);
        }
        Ok(true)
    }

    async fn record_recovery(
        &self,
        record: &RecoveryRecord,
        notification: &OutboxMessage,
    ) -> Result<(), StoreFault> {
        let mut s = self.lock()?;
        if s.recoveries
            .iter()
            .any(|r| r.countersigned_id == record.countersigned_id)
        {
            return Err(StoreFault::Failed);
        }
        let mut stored = record.clone();
        stored.recovered_at = seconds(stored.recovered_at);
        s.recoveries.push(stored);
        s.push_outbox(notification, record.recovered_at);
        Ok(())
    }

    async fn find_recovery(
        &self,
        user: &UserId,
        countersigned_id: TokenId,
    ) -> Result<Option<RecoveryRecord>, StoreFault> {
        let s = self.lock()?;
        Ok(s.recoveries
            .iter()
            .find(|r| r.user == *user && r.countersigned_id == countersigned_id)
            .cloned())
    }

    async fn list_recoveries(&self, user: &UserId) -> Result<Vec<RecoveryRecord>, StoreFault> {
        let s = self.lock()?;
        Ok(s.recoveries
            .iter()
            .rev()
            .filter(|r| r.user == *user)
            .cloned()
            .collect())
    }

    async fn repudiate_recovery(
        &self,
        user: &UserId,
        countersigned_id: TokenId,
        at: OffsetDateTime,
        on_repudiated: Option<&OutboxMessage>,
    ) -> Result<bool, StoreFault> {
        let mut s = self.lock()?;
        let Some(r) = s.recoveries.iter_mut().find(|r| {
            r.user == *user && r.countersigned_id == countersigned_id && r.repudiated_at.is_none()
        }) else {
            return Ok(false);
        };
        r.repudiated_at = Some(seconds(at));
        if let Some(m) = on_repudiated {
            s.push_outbox(m, at);
        }
        Ok(true)
    }

    async fn queue(
        &self,
        message: &OutboxMessage,
        at: OffsetDateTime,
    ) -> Result<OutboxId, StoreFault> {
        Ok(self.lock()?.push_outbox(message, at))
    }

    async fn pending_outbox(
        &self,
        limit: u32,
        now: OffsetDateTime,
    ) -> Result<Vec<OutboxEntry>, StoreFault> {
        let s = self.lock()?;
        Ok(s.outbox
            .iter()
            .filter(|o| o.delivered_at.is_none() && o.next_attempt_at <= now)
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .map(|o| o.entry.clone())
            .collect())
    }

    async fn mark_outbox_delivered(
        &self,
        id: OutboxId,
        at: OffsetDateTime,
    ) -> Result<(), StoreFault> {
        let mut s = self.lock()?;
        if let Some(o) = s.outbox.iter_mut().find(|o| o.entry.id == id) {
            o.delivered_at = Some(seconds(at));
        }
        Ok(())
    }

    async fn mark_outbox_failed(
        &self,
        id: OutboxId,
        next_attempt_at: OffsetDateTime,
    ) -> Result<(), StoreFault> {
        let mut s = self.lock()?;
        if let Some(o) = s.outbox.iter_mut().find(|o| o.entry.id == id) {
            o.entry.attempts = o.entry.attempts.saturating_add(1);
            o.next_attempt_at = seconds(next_attempt_at);
        }
        Ok(())
    }
}
