//! The user's saved tokens and recoveries: listing, renaming, deleting, repudiating (§3.6).

use dar_core::{Origin, TokenId};
use time::OffsetDateTime;

use crate::error::RecoveryProviderError;
use crate::model::{RecoveryRecord, RemovalReason, SavedTokenSummary, UserId};
use crate::outbox::{OutboxMessage, StatusCallback, TokenStatus};
use crate::save::check_nickname;
use crate::store::RecoveryProviderStore;
use crate::{ConfigSource, RecoveryProvider};

impl<S: RecoveryProviderStore, C: ConfigSource> RecoveryProvider<S, C> {
    /// The user's saved tokens, oldest first: issuer, id, nickname, options, saved_at; never
    /// the token bytes.
    ///
    /// # Errors
    ///
    /// [`RecoveryProviderError::Store`].
    pub async fn list(
        &self,
        user: &UserId,
    ) -> Result<Vec<SavedTokenSummary>, RecoveryProviderError> {
        Ok(self.store.list_tokens(user).await?)
    }

    /// Deletes one of the user's saved tokens, queueing `deleted` (§3.6 case 2) when the token
    /// asked for status callbacks.
    ///
    /// # Errors
    ///
    /// [`RecoveryProviderError::UnknownToken`] when the user holds no such token (another
    /// user's token gets the same answer), [`RecoveryProviderError::Store`].
    pub async fn delete(
        &self,
        user: &UserId,
        issuer: &Origin,
        token_id: TokenId,
        now: OffsetDateTime,
    ) -> Result<(), RecoveryProviderError> {
        self.remove(user, issuer, token_id, RemovalReason::Deleted, now)
            .await
    }

    /// Names one of the user's saved tokens anew (§3.1.1 step 12 lets the user name a token
    /// when saving it; the name is theirs to change). The text is checked as at the save
    /// ([`check_nickname`]): trimmed, at most [`MAX_NICKNAME_LEN`](crate::MAX_NICKNAME_LEN)
    /// bytes, no control characters; an empty one clears the name. Nothing is reported to the
    /// account provider: a nickname is the recovery provider's own.
    ///
    /// # Errors
    ///
    /// [`RecoveryProviderError::InvalidFormField`] (`nickname`) for a text the save would
    /// refuse, [`RecoveryProviderError::UnknownToken`] when the user holds no such token
    /// (another user's token gets the same answer), [`RecoveryProviderError::Store`]. Nothing
    /// is changed then.
    pub async fn rename(
        &self,
        user: &UserId,
        issuer: &Origin,
        token_id: TokenId,
        nickname: &str,
    ) -> Result<(), RecoveryProviderError> {
        let nickname = check_nickname(nickname)?;
        if self
            .store
            .rename_token(user, issuer, token_id, nickname.as_deref())
            .await?
        {
            Ok(())
        } else {
            Err(RecoveryProviderError::UnknownToken)
        }
    }

    /// The user says this token was saved to their account without their consent (§3.6 case
    /// 3): it is removed, and `token-repudiated` queued when the token asked for status.
    ///
    /// # Errors
    ///
    /// As [`RecoveryProvider::delete`].
    pub async fn repudiate_save(
        &self,
        user: &UserId,
        issuer: &Origin,
        token_id: TokenId,
        now: OffsetDateTime,
    ) -> Result<(), RecoveryProviderError> {
        self.remove(user, issuer, token_id, RemovalReason::Repudiated, now)
            .await
    }

    /// The user's recoveries (exercises of their tokens), newest first.
    ///
    /// # Errors
    ///
    /// [`RecoveryProviderError::Store`].
    pub async fn recoveries(
        &self,
        user: &UserId,
    ) -> Result<Vec<RecoveryRecord>, RecoveryProviderError> {
        Ok(self.store.list_recoveries(user).await?)
    }

    /// The user says a recovery was made without their consent (§3.6 case 3): it is marked
    /// repudiated and `recovery-repudiated` (with `countersigned_id`) queued when the token
    /// asked for status. Repudiating again changes nothing and succeeds.
    ///
    /// # Errors
    ///
    /// [`RecoveryProviderError::UnknownRecovery`] when the user has no such recovery,
    /// [`RecoveryProviderError::Store`].
    pub async fn repudiate_recovery(
        &self,
        user: &UserId,
        countersigned_id: TokenId,
        now: OffsetDateTime,
    ) -> Result<(), RecoveryProviderError> {
        let record = self
            .store
            .find_recovery(user, countersigned_id)
            .await?
            .ok_or(RecoveryProviderError::UnknownRecovery)?;
        if record.repudiated_at.is_some() {
            return Ok(());
        }
        // §3.6.1: recovery-repudiated carries the countersigned token's id too.
        let message = record.status_requested.then(|| {
            OutboxMessage::TokenStatus(StatusCallback {
                issuer: record.issuer.clone(),
                token_id: record.token_id,
                status: TokenStatus::RecoveryRepudiated,
                countersigned_id: Some(countersigned_id),
            })
        });
        self.store
            .repudiate_recovery(user, countersigned_id, now, message.as_ref())
            .await?;
        Ok(())
    }

    async fn remove(
        &self,
        user: &UserId,
        issuer: &Origin,
        token_id: TokenId,
        reason: RemovalReason,
        now: OffsetDateTime,
    ) -> Result<(), RecoveryProviderError> {
        let token = self
            .store
            .list_tokens(user)
            .await?
            .into_iter()
            .find(|t| t.issuer == *issuer && t.token_id == token_id)
            .ok_or(RecoveryProviderError::UnknownToken)?;
        let status = match reason {
            RemovalReason::Repudiated => TokenStatus::TokenRepudiated,
            RemovalReason::Deleted | RemovalReason::Obsoleted => TokenStatus::Deleted,
        };
        // §3.6.1: only when the account provider asked for callbacks.
        let message = token.options.status_requested().then(|| {
            OutboxMessage::TokenStatus(StatusCallback {
                issuer: token.issuer.clone(),
                token_id,
                status,
                countersigned_id: None,
            })
        });
        let removed = self
            .store
            .remove_token(user, issuer, token_id, reason, now, message.as_ref())
            .await?;
        if removed {
            Ok(())
        } else {
            Err(RecoveryProviderError::UnknownToken)
        }
    }
}
