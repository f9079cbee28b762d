//! Messages this provider owes to others, written in the same transaction as the change they
//! report and delivered later by another process (the server): status callbacks to account
//! providers (§3.6) and notifications to users (§3.4 step 6, §6.2).
//!
//! This module is sans-IO: it says what to send and where; the HTTP client, the mail system and
//! the retry schedule belong to the deliverer. Delivery is at least once: a deliverer that
//! crashes between sending and [`RecoveryProviderStore::mark_outbox_delivered`] sends again.
//!
//! [`RecoveryProviderStore::mark_outbox_delivered`]: crate::RecoveryProviderStore::mark_outbox_delivered

use dar_core::{Origin, TOKEN_STATUS_PATH, TokenId};
use time::OffsetDateTime;

use crate::model::UserId;

/// The token lifecycle events of §3.6.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenStatus {
    /// `save-success`.
    SaveSuccess,
    /// `save-failure`.
    SaveFailure,
    /// `deleted`.
    Deleted,
    /// `token-repudiated`.
    TokenRepudiated,
    /// `recovery-repudiated` (with `countersigned_id`).
    RecoveryRepudiated,
}

impl TokenStatus {
    /// The literal the draft defines.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SaveSuccess => "save-success",
            Self::SaveFailure => "save-failure",
            Self::Deleted => "deleted",
            Self::TokenRepudiated => "token-repudiated",
            Self::RecoveryRepudiated => "recovery-repudiated",
        }
    }

    /// The status for a literal.
    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::SaveSuccess,
            Self::SaveFailure,
            Self::Deleted,
            Self::TokenRepudiated,
            Self::RecoveryRepudiated,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// A token status callback (§3.6.1): a form POST to the issuer's well-known token-status URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCallback {
    /// The account provider (the recovery token's issuer).
    pub issuer: Origin,
    /// The recovery token's id.
    pub token_id: TokenId,
    /// The event.
    pub status: TokenStatus,
    /// For `recovery-repudiated`: the countersigned token's id.
    pub countersigned_id: Option<TokenId>,
}

impl StatusCallback {
    /// `https://<issuer>/.well-known/delegated-account-recovery/token-status` (§3.6: only this
    /// well-known location, which limits server-side request forgery).
    pub fn url(&self) -> String {
        format!("{}{}", self.issuer, TOKEN_STATUS_PATH)
    }

    /// The form fields: `id` (hex token id), `status`, and `countersigned_id` when present.
    pub fn form_fields(&self) -> Vec<(&'static str, String)> {
        let mut fields = vec![
            ("id", self.token_id.to_string()),
            ("status", self.status.as_str().to_owned()),
        ];
        if let Some(id) = self.countersigned_id {
            fields.push(("countersigned_id", id.to_string()));
        }
        fields
    }

    /// The `application/x-www-form-urlencoded` body. Every value is hex or a status literal,
    /// so nothing needs escaping.
    pub fn form_body(&self) -> String {
        self.form_fields()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// An out-of-band notice to the user that one of their tokens was exercised (§3.4 step 6, §6.2):
/// for which domain, and the nickname when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserNotification {
    /// Whom to notify.
    pub user: UserId,
    /// The account provider the token is for.
    pub issuer: Origin,
    /// The recovery token's id.
    pub token_id: TokenId,
    /// The countersigned token's id (what the user quotes to repudiate it).
    pub countersigned_id: TokenId,
    /// The token's nickname.
    pub nickname: Option<String>,
    /// When the token was exercised.
    pub at: OffsetDateTime,
}

/// One message for the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboxMessage {
    /// A status callback to an account provider.
    TokenStatus(StatusCallback),
    /// A notification to a user.
    UserNotification(UserNotification),
}

impl OutboxMessage {
    /// The stored kind: `token_status` or `user_notification`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::TokenStatus(_) => "token_status",
            Self::UserNotification(_) => "user_notification",
        }
    }
}

/// The store's identifier of an outbox row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OutboxId(pub i64);

/// An outbox row waiting for delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// Its id, for [`mark_outbox_delivered`](crate::RecoveryProviderStore::mark_outbox_delivered)
    /// and [`mark_outbox_failed`](crate::RecoveryProviderStore::mark_outbox_failed).
    pub id: OutboxId,
    /// What to send.
    pub message: OutboxMessage,
    /// When it was queued.
    pub created_at: OffsetDateTime,
    /// Failed delivery attempts so far.
    pub attempts: u32,
}
