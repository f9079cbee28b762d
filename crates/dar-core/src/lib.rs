//! Sans-IO core of Delegated Account Recovery (draft-hill-delegated-recovery).
//!
//! `dar-core` parses, builds, signs, verifies and seals recovery tokens. It does no I/O: no
//! sockets, files, SQL, clock or global random number generator. Callers pass the bytes, the
//! time (`now`), the keys and a randomness source, and get values or bytes back. The account
//! provider and recovery provider roles, discovery, storage and HTTP live in other crates.

mod error;

pub use error::{DecodeError, Error, Misuse, OriginError, Rejected};
