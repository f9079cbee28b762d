//! Sans-IO core of Delegated Account Recovery (draft-hill-delegated-recovery).
//!
//! `dar-core` parses, builds, signs, verifies and seals recovery tokens. It does no I/O: no
//! sockets, files, SQL, clock or global random number generator. Callers pass the bytes, the
//! time (`now`), the keys and a randomness source, and get values or bytes back. The account
//! provider and recovery provider roles, discovery, storage and HTTP live in other crates.

mod error;
#[cfg(test)]
mod testutil;

pub use error::{DecodeError, Error, Misuse, OriginError, Rejected};
mod freshness;
pub mod issued_time;
mod keys;
mod origin;
mod signature;
mod token;

pub use freshness::Freshness;
pub use keys::{SigningKey, VerifyingKey, VerifyingKeys};
pub use origin::Origin;
pub use signature::Signature;
pub use token::{
    CountersignedToken, EncodedToken, IssuedTime, MAX_TOKEN_LEN, Options, RecoveryToken, Token,
    TokenId, TokenType, TokenView, VERSION, decode_base64,
};
pub mod verify;

pub use verify::{
    Countersign, ReturnCheck, SaveCheck, SavedCheck, VerifiedCountersignedToken,
    VerifiedRecoveryToken, countersign,
};
