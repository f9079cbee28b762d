//! The recovery provider role of Delegated Account Recovery (draft-hill-delegated-recovery).
//!
//! A recovery provider holds recovery tokens for its signed-in users and, when a user has lost
//! access to an account provider, countersigns the right token so the account provider can let
//! them back in. This crate decides; it does no I/O of its own:
//!
//! - [`RecoveryProvider::save`]: the save-token endpoint (§3.1, recovery provider steps 2–15):
//!   size limit, decoding, the issuer's configuration (through a [`ConfigSource`]), the
//!   signature, audience, freshness and binding checks, storing the token idempotently, the
//!   `save-token-return` redirect and the `save-success`/`save-failure` status callback.
//! - [`RecoveryProvider::list`], [`RecoveryProvider::delete`]: the user's saved tokens.
//! - [`RecoveryProvider::recover`]: the recover-account endpoint (§3.4): selecting a token,
//!   re-checking it, countersigning it (§4.2, §6.4), recording the exercise and queueing the
//!   user's notification (§6.2).
//! - [`RecoveryProvider::repudiate_save`], [`RecoveryProvider::repudiate_recovery`]: §3.6.
//!
//! What it does not do: authenticate users (the caller passes a [`UserId`]), HTTP (the caller
//! turns a [`SaveRedirect`] or [`Recovery`] into a response), SQL (the caller passes a
//! [`RecoveryProviderStore`], e.g. `dar_store::Store`), fetching configurations (the caller
//! passes a [`ConfigSource`]), or delivering the outbox (a server process reads
//! [`RecoveryProviderStore::pending_outbox`] and sends each [`OutboxMessage`]). The time and the
//! randomness source are parameters, so every rule can be tested with fixed values.
//!
//! ```
//! use std::sync::Arc;
//! use dar_core::*;
//! use dar_discovery::StaticConfigSource;
//! use dar_recovery_provider::*;
//! use time::macros::datetime;
//!
//! # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
//! let now = datetime!(2026-11-22 15:31:18 UTC);
//! let (ap, rp) = (Origin::parse("https://ap.example.com")?, Origin::parse("https://rp.example.net")?);
//!
//! // The account provider's published configuration, and a token it issued for this provider.
//! let ap_key = SigningKey::from_scalar_bytes(&[7u8; 32])?;
//! let mut configs = StaticConfigSource::new();
//! configs.insert(Configuration::new(ap.clone(), None, None, Some(AccountProviderConfig {
//!     tokensign_keys: VerifyingKeys::from(ap_key.verifying_key()),
//!     save_token_return: EndpointUrl::parse("https://ap.example.com/dar/saved", false)?,
//!     recover_account_return: EndpointUrl::parse("https://ap.example.com/dar/recovered", false)?,
//! }), None));
//! let token = Token::recovery(TokenId::new([1; 16]), Options::NONE, ap.clone(), rp.clone(), now, vec![])
//!     .sign(&ap_key, MAX_TOKEN_LEN)?;
//!
//! // This recovery provider: its origin, countersigning key, store and configuration source.
//! let settings = RecoveryProviderSettings::new(vec![rp], Arc::new(SigningKey::from_scalar_bytes(&[9u8; 32])?));
//! let provider = RecoveryProvider::new(settings, MemoryStore::new(), configs);
//! let alice = UserId::new("alice");
//!
//! let saved = provider.save(&alice, &SaveForm::with_token(token.to_base64()), SaveOptions::default(), now).await?;
//! let SaveOutcome::Saved { redirect, .. } = saved else { panic!("not saved") };
//! assert_eq!(redirect.location(), "https://ap.example.com/dar/saved?status=save-success");
//!
//! let outcome = provider.recover(&alice, &RecoverRequest::default(), now, &mut getrandom::SysRng).await?;
//! let RecoverOutcome::Countersigned(recovery) = outcome else { panic!("several tokens") };
//! assert_eq!(recovery.post_to.as_string(), "https://ap.example.com/dar/recovered");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
// Unit tests may unwrap and panic: a panic is a test failure.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod error;
mod login_hint;
mod manage;
mod memory;
mod model;
mod outbox;
mod recover;
mod save;
mod store;

use std::sync::Arc;

use dar_core::{AccountProviderConfig, Configuration, Freshness, Origin, SigningKey};
pub use dar_discovery::{ConfigSource, DiscoveryError};

pub use error::{RecoveryProviderError, StoreFault};
pub use login_hint::{LoginHintMatch, match_login_hint};
pub use memory::{MemorySnapshot, MemoryStore, StoredOutbox, StoredToken};
pub use model::{
    NewSavedToken, RecoveryRecord, RemovalReason, SaveForm, SaveTokenResult, SavedTokenBytes,
    SavedTokenSummary, UserId,
};
pub use outbox::{
    OutboxEntry, OutboxId, OutboxMessage, StatusCallback, TokenStatus, UserNotification,
};
pub use recover::{COUNTERSIGNED_TOKEN_FIELD, RecoverOutcome, RecoverRequest, Recovery};
pub use save::{
    MAX_NICKNAME_LEN, SaveOptions, SaveOutcome, SavePreview, SaveRedirect, check_nickname,
};
pub use store::RecoveryProviderStore;

/// The `token-max-size` a recovery provider publishes by default (§2): far above real tokens
/// (a few hundred bytes), far below the format's limit.
pub const DEFAULT_TOKEN_MAX_SIZE: usize = 8 * 1024;

/// What a recovery provider is: the origins it answers for, its countersigning key and its
/// limits.
#[derive(Debug, Clone)]
pub struct RecoveryProviderSettings {
    /// The origins this provider considers itself authoritative for (§3.1 step 8). A saved
    /// token's audience is one of them, and becomes its countersigned token's issuer.
    pub authoritative: Vec<Origin>,
    /// The current countersigning key, whose public half is in this provider's
    /// `countersign-pubkeys-secp256r1` (§4.2.2).
    pub countersign_key: Arc<SigningKey>,
    /// This provider's `token-max-size` (§2): the largest token it accepts, in bytes.
    pub token_max_size: usize,
    /// Bounds on a saved token's issued_time (§3.1 step 9, §6.7).
    pub freshness: Freshness,
}

impl RecoveryProviderSettings {
    /// Settings with [`DEFAULT_TOKEN_MAX_SIZE`] and [`Freshness::DEFAULT`].
    pub fn new(authoritative: Vec<Origin>, countersign_key: Arc<SigningKey>) -> Self {
        Self {
            authoritative,
            countersign_key,
            token_max_size: DEFAULT_TOKEN_MAX_SIZE,
            freshness: Freshness::DEFAULT,
        }
    }
}

/// The recovery provider role: settings, a store and a source of peers' configurations.
///
/// See the [crate documentation](crate) for an example.
#[derive(Debug)]
pub struct RecoveryProvider<S, C> {
    settings: RecoveryProviderSettings,
    store: S,
    configs: C,
}

impl<S: RecoveryProviderStore, C: ConfigSource> RecoveryProvider<S, C> {
    /// A recovery provider over `store`, fetching account providers' configurations from
    /// `configs`.
    pub fn new(settings: RecoveryProviderSettings, store: S, configs: C) -> Self {
        Self {
            settings,
            store,
            configs,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &RecoveryProviderSettings {
        &self.settings
    }

    /// The store (for the outbox deliverer, which uses it directly).
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The configuration of the account provider `issuer` (§3.1 steps 5–6, §3.4 step 3).
    async fn account_provider(
        &self,
        issuer: &Origin,
    ) -> Result<Arc<Configuration>, RecoveryProviderError> {
        let config = self.configs.configuration(issuer).await?;
        // §3.1 step 6: the document names the issuer it was fetched for.
        if config.issuer() != issuer {
            return Err(DiscoveryError::IssuerMismatch.into());
        }
        if config.account_provider().is_none() {
            return Err(RecoveryProviderError::NotAnAccountProvider);
        }
        Ok(config)
    }
}

/// The account provider part of a configuration [`RecoveryProvider::account_provider`]
/// returned.
fn ap_part(config: &Configuration) -> Result<&AccountProviderConfig, RecoveryProviderError> {
    config
        .account_provider()
        .ok_or(RecoveryProviderError::NotAnAccountProvider)
}

#[cfg(test)]
mod tests;
