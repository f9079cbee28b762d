//! Lockout recovery: what a user who lost their second factor must show before the account
//! provider restores access, and what happens while it waits.
//!
//! A countersigned token ([`crate::RecoveryEvidence`]) is evidence, not a key (§3.5 step 15,
//! §6.3.2). This module weighs it together with the account provider's own evidence (recovery
//! codes, email codes, trusted contacts, the password) and decides one of: unlock now, unlock
//! after a waiting period the owner can cancel, staff review, or refused. It is sans-IO like
//! the rest of the crate: no storage, no HTTP, no clock, no global randomness.
//!
//! - [`policy`]: the evidence vocabulary, the declarative [`LockoutPolicy`] and
//!   [`decide`].
//! - [`schedule`]: what a timed unlock owes the owner at a given moment (notices, completion).
//! - [`codes`]: recovery codes (generation, input normalisation, argon2id hashes) and email
//!   codes (generation, hash, constant-time check).
//!
//! The reasoning behind every default is in `spec/lockout-policy.md`.
//!
//! ```
//! use dar_account_provider::lockout::{Decision, Evidence, EvidenceSet, LockoutPolicy, decide};
//! use dar_core::Origin;
//! use time::Duration;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let policy = LockoutPolicy::default();
//! let mut evidence = EvidenceSet::new();
//! evidence.push(Evidence::Delegated {
//!     recovery_provider: Origin::parse("https://rp.example.net")?,
//!     low_friction: false,
//!     token_age: Duration::days(30),
//! });
//! // One recovery provider alone unlocks only after the waiting period...
//! assert!(matches!(decide(&policy, &evidence), Decision::TimedUnlock { .. }));
//! // ...and with an email code sent to a verified address, at once.
//! evidence.push(Evidence::EmailCode);
//! assert!(matches!(decide(&policy, &evidence), Decision::UnlockNow { .. }));
//! # Ok(()) }
//! ```

pub mod codes;
pub mod policy;
pub mod schedule;

pub use codes::{
    EMAIL_CODE_LIFETIME, EMAIL_CODE_MAX_ATTEMPTS, EmailCode, RECOVERY_CODE_COUNT, RecoveryCode,
    RecoveryCodes, argon2id, email_code_hash, email_code_matches, generate_email_code,
    generate_recovery_codes, hash_recovery_code, match_recovery_code, normalize_email_code,
    normalize_recovery_code, verify_recovery_code,
};
pub use policy::{
    Decision, Evidence, EvidenceKind, EvidenceSet, LockoutPolicy, Missing, NextStep, Outcome,
    PolicyViolation, Rule, decide,
};
pub use schedule::{Due, NoticesSent, Schedule};
