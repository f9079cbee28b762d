//! The storage the recovery provider role needs, as a trait so the role never sees SQL.
//!
//! `dar-store` implements it on SQLite and PostgreSQL; [`crate::MemoryStore`] implements it in
//! memory for tests and examples. Every method that changes state and takes an
//! [`OutboxMessage`] writes the message in the same transaction as the change, and only when
//! the change happens.

use std::future::Future;

use dar_core::{Origin, TokenId};
use time::OffsetDateTime;

use crate::error::StoreFault;
use crate::model::{
    NewSavedToken, RecoveryRecord, RemovalReason, SaveTokenResult, SavedTokenBytes,
    SavedTokenSummary, UserId,
};
use crate::outbox::{OutboxEntry, OutboxId, OutboxMessage};

/// Persistence for the recovery provider role.
///
/// Uniqueness of a saved token is per (issuer, token id) across all users, and survives the
/// token's removal: a token once saved for one user is never saved for another (§6.8).
pub trait RecoveryProviderStore: Send + Sync {
    /// Stores `token` for its user (§3.1 step 11) unless that (issuer, token id) is already
    /// stored; when it is stored, also marks the same user's token of the same issuer named by
    /// `token.obsoletes` as obsoleted and writes `on_saved`, all in one transaction.
    ///
    /// # Errors
    ///
    /// [`StoreFault`] when the store fails; nothing is changed then.
    fn save_token(
        &self,
        token: &NewSavedToken,
        on_saved: Option<&OutboxMessage>,
    ) -> impl Future<Output = Result<SaveTokenResult, StoreFault>> + Send;

    /// The user's tokens that are not removed, oldest first.
    ///
    /// # Errors
    ///
    /// [`StoreFault`].
    fn list_tokens(
        &self,
        user: &UserId,
    ) -> impl Future<Output = Result<Vec<SavedTokenSummary>, StoreFault>> + Send;

    /// The bytes of the user's token with this issuer and id, and the id of the key it was
    /// verified with when saved, if it is theirs and not removed.
    ///
    /// # Errors
    ///
    /// [`StoreFault`].
    fn token_bytes(
        &self,
        user: &UserId,
        issuer: &Origin,
        token_id: TokenId,
    ) -> impl Future<Output = Result<Option<SavedTokenBytes>, StoreFault>> + Send;

    /// Sets the nickname of the user's token (`None` clears it). `false` when the user holds
    /// no such token that is not removed.
    ///
    /// # Errors
    ///
    /// [`StoreFault`].
    fn rename_token(
        &self,
        user: &UserId,
        issuer: &Origin,
        token_id: TokenId,
        nickname: Option<&str>,
    ) -> impl Future<Output = Result<bool, StoreFault>> + Send;

    /// Marks the user's token removed (its bytes are erased) and writes `on_removed`, in one
    /// transaction. `false` when the user holds no such token that is not removed already.
    ///
    /// # Errors
    ///
    /// [`StoreFault`].
    fn remove_token(
        &self,
        user: &UserId,
        issuer: &Origin,
        token_id: TokenId,
        reason: RemovalReason,
        at: OffsetDateTime,
        on_removed: Option<&OutboxMessage>,
    ) -> impl Future<Output = Result<bool, StoreFault>> + Send;

    /// Records an exercise of a token (§3.4) and writes `notification`, in one transaction.
    ///
    /// # Errors
    ///
    /// [`StoreFault`]; nothing is written then.
    fn record_recovery(
        &self,
        record: &RecoveryRecord,
        notification: &OutboxMessage,
    ) -> impl Future<Output = Result<(), StoreFault>> + Send;

    /// The user's recovery with this countersigned token id.
    ///
    /// # Errors
    ///
    /// [`StoreFault`].
    fn find_recovery(
        &self,
        user: &UserId,
        countersigned_id: TokenId,
    ) -> impl Future<Output = Result<Option<RecoveryRecord>, StoreFault>> + Send;

    /// The user's recoveries, newest first.
    ///
    /// # Errors
    ///
    /// [`StoreFault`].
    fn list_recoveries(
        &self,
        user: &UserId,
    ) -> impl Future<Output = Result<Vec<RecoveryRecord>, StoreFault>> + Send;

    /// Marks the user's recovery repudiated and writes `on_repudiated`, in one transaction.
    /// `false` when there is no such recovery or it is repudiated already (nothing written).
    ///
    /// # Errors
    ///
    /// [`StoreFault`].
    fn repudiate_recovery(
        &self,
        user: &UserId,
        countersigned_id: TokenId,
        at: OffsetDateTime,
        on_repudiated: Option<&OutboxMessage>,
    ) -> impl Future<Output = Result<bool, StoreFault>> + Send;

    /// Queues a message on its own (a `save-failure` callback, where nothing else is written).
    ///
    /// # Errors
    ///
    /// [`StoreFault`].
    fn queue(
        &self,
        message: &OutboxMessage,
        at: OffsetDateTime,
    ) -> impl Future<Output = Result<OutboxId, StoreFault>> + Send;

    /// Up to `limit` undelivered messages whose next attempt is due at `now`, oldest first.
    ///
    /// # Errors
    ///
    /// [`StoreFault`].
    fn pending_outbox(
        &self,
        limit: u32,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Vec<OutboxEntry>, StoreFault>> + Send;

    /// Marks a message delivered; it is never returned again.
    ///
    /// # Errors
    ///
    /// [`StoreFault`].
    fn mark_outbox_delivered(
        &self,
        id: OutboxId,
        at: OffsetDateTime,
    ) -> impl Future<Output = Result<(), StoreFault>> + Send;

    /// Records a failed attempt and when to try again.
    ///
    /// # Errors
    ///
    /// [`StoreFault`].
    fn mark_outbox_failed(
        &self,
        id: OutboxId,
        next_attempt_at: OffsetDateTime,
    ) -> impl Future<Output = Result<(), StoreFault>> + Send;
}
