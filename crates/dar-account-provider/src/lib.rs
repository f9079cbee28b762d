//! The account provider role of Delegated Account Recovery (draft-hill-delegated-recovery).
//!
//! An account provider issues recovery tokens for its users' accounts to recovery providers
//! the user chooses (§3.1), follows what those providers report about the tokens (§3.2, §3.6),
//! and accepts a countersigned token back as evidence for a lockout recovery (§3.5).
//!
//! - [`KeyRing`]: the signing keys (one current, older ones still published) and sealing keys
//!   (one current, older ones still opening); rotation never invalidates a saved token.
//! - [`AccountProvider`], with [`issue`](AccountProvider::issue),
//!   [`save_token_return`](AccountProvider::save_token_return),
//!   [`token_status`](AccountProvider::token_status),
//!   [`accept_countersigned`](AccountProvider::accept_countersigned) (→ [`RecoveryEvidence`]),
//!   [`revoke`](AccountProvider::revoke), [`list_tokens`](AccountProvider::list_tokens).
//! - [`lockout`]: the lockout-recovery policy ([`LockoutPolicy`], [`decide`] →
//!   [`Decision`]), the timed-unlock schedule, recovery codes and email codes.
//! - [`AccountProviderStore`]: what it needs from storage; `dar-store` implements it on SQLite
//!   and PostgreSQL, [`MemoryStore`] in memory.
//!
//! What it does not do: HTTP (that is `dar-server`'s), fetching configuration (it takes any
//! [`dar_discovery::ConfigSource`]), authenticating users, sending notifications (§3.5 step
//! 17, §6.2: the caller sends them from the evidence and the audit log), and storing a
//! lockout recovery's progress ([`lockout`] decides; `dar-store` keeps the state). It has no
//! clock and no global randomness: `now` and an RNG are parameters.
//!
//! ```
//! use dar_account_provider::*;
//! use dar_core::{EndpointUrl, Origin, SealingKey, SigningKey};
//! use dar_discovery::StaticConfigSource;
//! use time::macros::datetime;
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let settings = Settings::new(
//!     Origin::parse("https://ap.example.com")?,
//!     EndpointUrl::parse("https://ap.example.com/dar/save-return", false)?,
//!     EndpointUrl::parse("https://ap.example.com/dar/recover-return", false)?,
//! );
//! let keys = KeyRing::new(SigningKey::from_scalar_bytes(&[7; 32])?, SealingKey::new(1, [9; 32]))?;
//! let ap = AccountProvider::new(settings, keys, MemoryStore::new(), StaticConfigSource::new());
//! // A recovery provider that is not on the allow-list gets no token (§6.5).
//! let rp = Origin::parse("https://rp.example.net")?;
//! let now = datetime!(2026-11-22 15:31:18 UTC);
//! let mut rng = getrandom::SysRng;
//! let refused = ap.issue("user-42", &rp, IssueOptions::default(), "session", now, &mut rng).await;
//! assert_eq!(refused.unwrap_err(), AccountProviderError::UnknownRecoveryProvider);
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
// Unit tests may unwrap and panic: a panic is a test failure.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod error;
mod keyring;
pub mod lockout;
mod memory;
mod provider;
mod settings;
mod store;

pub use error::{AccountProviderError, PolicyViolation, StoreFailure};
pub use keyring::KeyRing;
pub use lockout::{Decision, Evidence, EvidenceSet, LockoutPolicy, Outcome, Rule, decide};
pub use memory::MemoryStore;
pub use provider::{
    AccountProvider, IssueOptions, RecoveryEvidence, SaveReturn, SaveTokenRequest, StatusEvent,
    TokenStatusForm,
};
pub use settings::{IpRange, KnownRecoveryProvider, RateLimit, Settings};
pub use store::{
    AccountProviderStore, AuditEntry, AuditEvent, EvidenceHandoff, PendingSave, Purged,
    RecoveryCommit, RecoveryRecord, RevocationReason, TokenRecord, TokenState, Transition,
};
