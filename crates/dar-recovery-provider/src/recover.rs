//! The recover-account endpoint (§3.4): select a saved token, re-check it, countersign it,
//! record the exercise and queue the user's notification.

use core::fmt;

use dar_core::{
    Countersign, EndpointUrl, MAX_TOKEN_LEN, Origin, RecoveryToken, SavedCheck, TokenId,
    countersign,
};
use time::OffsetDateTime;

use crate::error::RecoveryProviderError;
use crate::model::{RecoveryRecord, SavedTokenSummary, UserId};
use crate::outbox::{OutboxMessage, UserNotification};
use crate::store::RecoveryProviderStore;
use crate::{ConfigSource, RecoveryProvider, ap_part};

/// The form field that carries the countersigned token to `recover-account-return` (§3.4
/// step 5).
pub const COUNTERSIGNED_TOKEN_FIELD: &str = "countersigned-token";

/// A recovery request from the authenticated user (§3.4).
#[derive(Debug, Clone, Copy, Default)]
pub struct RecoverRequest<'a> {
    /// The `issuer` parameter: the account provider to recover (normalized by the caller).
    pub issuer_hint: Option<&'a Origin>,
    /// The `id` parameter: a token id.
    pub id_hint: Option<TokenId>,
    /// The token binding for the account provider's session, if one was obtained (§4.2.1).
    pub binding: Option<&'a [u8]>,
    /// The user could be re-authenticated only weakly (no stronger than a password) because
    /// their account here has no stronger factor (§6.4): the countersigned token then reports
    /// low friction. When a stronger challenge exists but failed, do not call `recover` at all.
    pub low_friction_auth: bool,
}

/// A countersigned token and where to send it (§3.4 steps 4–5).
#[derive(Clone, PartialEq, Eq)]
pub struct Recovery {
    /// The countersigned token, standard base64. A credential: never log it.
    pub countersigned_token: String,
    /// Its fresh id (what the user quotes to repudiate the recovery, §3.6).
    pub countersigned_id: TokenId,
    /// The account provider.
    pub issuer: Origin,
    /// The exercised recovery token's id.
    pub token_id: TokenId,
    /// Whether the countersigned token reports low friction (§6.4).
    pub low_friction: bool,
    /// The account provider's `recover-account-return`: POST
    /// [`COUNTERSIGNED_TOKEN_FIELD`]`=`[`Recovery::countersigned_token`] there.
    pub post_to: EndpointUrl,
}

impl Recovery {
    /// The form fields to POST to [`Recovery::post_to`].
    pub fn form_fields(&self) -> [(&'static str, &str); 1] {
        [(COUNTERSIGNED_TOKEN_FIELD, self.countersigned_token.as_str())]
    }
}

impl fmt::Debug for Recovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recovery")
            .field("countersigned_token_len", &self.countersigned_token.len())
            .field("countersigned_id", &self.countersigned_id)
            .field("issuer", &self.issuer)
            .field("token_id", &self.token_id)
            .field("low_friction", &self.low_friction)
            .field("post_to", &self.post_to)
            .finish()
    }
}

/// The result of a recovery request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecoverOutcome {
    /// One token matched and is countersigned.
    Countersigned(Recovery),
    /// Several tokens match the hints: let the user choose, then call again with both hints
    /// set to the chosen token (§3.4 step 2). Nothing was recorded.
    Choose(Vec<SavedTokenSummary>),
}

impl<S: RecoveryProviderStore, C: ConfigSource> RecoveryProvider<S, C> {
    /// Exercises one of `user`'s saved tokens (§3.4 steps 2–6). Call it only after the
    /// re-authentication the provider requires for a recovery (§6.3.1).
    ///
    /// The countersigned token gets a fresh id from `rng` and issued_time `now`, carries
    /// `request.binding`, and reports low friction when the recovery token asked for it or
    /// `request.low_friction_auth` is set (§6.4). The exercise is recorded and the user's
    /// notification (§3.4 step 6, §6.2) queued in one transaction before the token is
    /// returned.
    ///
    /// # Errors
    ///
    /// [`RecoveryProviderError::NoMatchingToken`] (step 2), [`RecoveryProviderError::Discovery`]
    /// or [`RecoveryProviderError::NotAnAccountProvider`] (step 3),
    /// [`RecoveryProviderError::Protocol`] when the issuer no longer publishes the key the
    /// saved token was verified with when saved (`SignerNotPublished`; for a token saved
    /// without that key's id, when it no longer verifies with the issuer's current keys) or
    /// countersigning fails (step 4), and
    /// [`RecoveryProviderError::Store`]. Nothing is recorded then (step 7).
    pub async fn recover<R>(
        &self,
        user: &UserId,
        request: &RecoverRequest<'_>,
        now: OffsetDateTime,
        rng: &mut R,
    ) -> Result<RecoverOutcome, RecoveryProviderError>
    where
        R: rand_core::TryCryptoRng + ?Sized,
    {
        // §3.4 step 2: select by the hints.
        let mut matches: Vec<SavedTokenSummary> = self
            .store
            .list_tokens(user)
            .await?
            .into_iter()
            .filter(|t| request.issuer_hint.is_none_or(|i| *i == t.issuer))
            .filter(|t| request.id_hint.is_none_or(|id| id == t.token_id))
            .collect();
        let chosen = match matches.len() {
            0 => return Err(RecoveryProviderError::NoMatchingToken),
            1 => matches.remove(0),
            _ => return Ok(RecoverOutcome::Choose(matches)),
        };
        let saved = self
            .store
            .token_bytes(user, &chosen.issuer, chosen.token_id)
            .await?
            .ok_or(RecoveryProviderError::NoMatchingToken)?;

        // §3.4 step 3: the issuer's current configuration.
        let config = self.account_provider(&chosen.issuer).await?;
        let ap = ap_part(&config)?;
        // §3.4 step 4: re-check the saved token (issuer, audience, and that the key it was
        // verified with when saved is still published; a token saved without that key's id is
        // verified again)...
        let check = SavedCheck {
            issuer: &chosen.issuer,
            issuer_keys: &ap.tokensign_keys,
            authoritative: &self.settings.authoritative,
        };
        let token = RecoveryToken::decode(&saved.token)?;
        let verified = match &saved.signer {
            Some(signer) => token.verify_saved_signed_by(&check, signer)?,
            None => token.verify_saved(&check)?,
        };
        // ...and countersign it (§4.2), low friction as §6.4 says.
        let low_friction = verified.view().options().low_friction() || request.low_friction_auth;
        let countersigned_id = TokenId::generate(rng).map_err(dar_core::Error::from)?;
        let countersigned = countersign(
            &verified,
            Countersign {
                key: &self.settings.countersign_key,
                token_id: countersigned_id,
                issued: now,
                binding: request.binding.map(<[u8]>::to_vec).unwrap_or_default(),
                low_friction,
                max_size: MAX_TOKEN_LEN,
            },
        )?;

        // The permanent record and §3.4 step 6 / §6.2 notification, in one transaction, before
        // the token leaves.
        let record = RecoveryRecord {
            user: user.clone(),
            issuer: chosen.issuer.clone(),
            token_id: chosen.token_id,
            countersigned_id,
            low_friction,
            status_requested: verified.view().options().status_requested(),
            recovered_at: now,
            repudiated_at: None,
        };
        let notification = OutboxMessage::UserNotification(UserNotification {
            user: user.clone(),
            issuer: chosen.issuer.clone(),
            token_id: chosen.token_id,
            countersigned_id,
            nickname: chosen.nickname.clone(),
            at: now,
        });
        self.store.record_recovery(&record, &notification).await?;

        // §3.4 step 5: POST it to recover-account-return.
        Ok(RecoverOutcome::Countersigned(Recovery {
            countersigned_token: countersigned.to_base64(),
            countersigned_id,
            issuer: chosen.issuer,
            token_id: chosen.token_id,
            low_friction,
            post_to: ap.recover_account_return.clone(),
        }))
    }
}
