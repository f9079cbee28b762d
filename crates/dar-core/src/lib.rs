//! Sans-IO core of Delegated Account Recovery (draft-hill-delegated-recovery).
//!
//! `dar-core` parses, builds, signs, verifies and seals recovery tokens. It does no I/O: no
//! sockets, files, SQL, clock or global random number generator. Callers pass the bytes, the
//! time (`now`), the keys and a randomness source, and get values or bytes back. The account
//! provider and recovery provider roles, discovery, storage and HTTP live in other crates.
//!
//! The pieces, in the order a token meets them:
//!
//! - [`decode_base64`], [`TokenView`], [`RecoveryToken`], [`CountersignedToken`]: strict
//!   decoding (§4.1, §4.2) into borrowed, unverified views.
//! - [`Origin`], [`issued_time`], [`Freshness`]: the field rules.
//! - [`SigningKey`], [`VerifyingKey`], [`VerifyingKeys`], [`Signature`]: ECDSA P-256 with
//!   SHA-256 and RFC 6979, behind the [`SignatureBackend`] seam.
//! - [`verify`]: the recovery provider's save checks (§3.1), the account provider's return
//!   checks (§3.5) and [`countersign`], each consuming the unverified token and returning a
//!   verified type nothing else builds.
//! - [`Sealer`], [`Payload`]: the account provider's sealed opaque data (§4.1.2).
//! - [`Configuration`]: the documents of §2.
//!
//! ```
//! use dar_core::*;
//! use time::{Duration, macros::datetime};
//!
//! // The account provider issues a token for the recovery provider...
//! let ap_key = SigningKey::from_scalar_bytes(&[7u8; 32])?;
//! let (ap, rp) = (Origin::parse("https://ap.example.com")?, Origin::parse("https://rp.example.net")?);
//! let now = datetime!(2026-11-22 15:31:18 UTC);
//! let token = Token::recovery(TokenId::new([1; 16]), Options::NONE, ap.clone(), rp.clone(), now, vec![])
//!     .sign(&ap_key, MAX_TOKEN_LEN)?;
//!
//! // ...which checks it before saving it (§3.1).
//! let ap_keys = VerifyingKeys::from(ap_key.verifying_key());
//! let check = SaveCheck { issuer: &ap, issuer_keys: &ap_keys, authoritative: &[rp],
//!     freshness: Freshness::DEFAULT, binding: None };
//! let saved = RecoveryToken::decode(token.as_bytes())?.verify_for_save(&check, now)?;
//! assert_eq!(saved.view().issuer(), "https://ap.example.com");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
// Unit tests may unwrap and panic: a panic is a test failure.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod config;
mod error;
mod freshness;
mod issue;
pub mod issued_time;
mod keys;
mod origin;
mod payload;
mod sealing;
mod signature;
mod token;
pub mod verify;

#[cfg(test)]
mod testutil;

pub use config::{
    AccountProviderConfig, CONFIGURATION_PATH, Configuration, EndpointUrl, MAX_DOCUMENT_LEN,
    MAX_KEYS, RecoveryProviderConfig, TOKEN_STATUS_PATH,
};
pub use error::{DecodeError, Error, Misuse, OriginError, Rejected};
pub use freshness::Freshness;
pub use issue::{Issue, issue};
pub use keys::{KeyId, SigningKey, VerifyingKey, VerifyingKeys};
pub use origin::Origin;
pub use payload::{Payload, Purpose};
pub use sealing::{
    IV_LEN, KEY_LEN, Layout, MAX_SEALED_LEN, SealContext, Sealer, SealingKey, TAG_LEN,
};
#[cfg(feature = "aws-lc")]
pub use signature::{AwsLc, AwsLcRandomized};
pub use signature::{RustCrypto, Signature, SignatureBackend, default_backend};
pub use token::{
    CountersignedToken, EncodedToken, IssuedTime, MAX_TOKEN_LEN, Options, RecoveryToken, Token,
    TokenId, TokenType, TokenView, VERSION, decode_base64,
};
pub use verify::{
    Countersign, ReturnCheck, SaveCheck, SavedCheck, VerifiedCountersignedToken,
    VerifiedRecoveryToken, countersign,
};

/// Operations that give up a guarantee the normal API keeps; for test vectors and conformance
/// tests only. Each item says which guarantee under `# Security`.
pub mod danger {
    pub use crate::sealing::danger::{
        aes256gcm_open_detached, aes256gcm_seal_detached, seal_with_fixed_iv,
    };
}

/// Entry points for the cargo-fuzz targets in `fuzz/`: each parses hostile bytes and asserts the
/// invariants that must hold for whatever it accepts. Not part of the API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::config::fuzz_configuration;
    pub use crate::sealing::fuzz_open;
    pub use crate::signature::fuzz_signature_from_der;
    pub use crate::token::{fuzz_countersigned, fuzz_origin, fuzz_token_decode};
}
