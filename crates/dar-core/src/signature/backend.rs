//! The seam between callers and the ECDSA arithmetic.
//!
//! Callers sign with [`SigningKey::sign`] and verify with [`VerifyingKey::verify`], which go
//! through [`default_backend`]. A faster backend (aws-lc-rs, behind a cargo feature) would be a
//! second implementation of [`SignatureBackend`]; the feature would change what
//! `default_backend` returns only if the two are proven to give identical bytes (RFC 6979 makes
//! signing deterministic), so no caller changes and no behaviour changes. Any per-key state such
//! a backend needs would be cached inside the key types, which stay parsed once.

use p256::ecdsa::signature::{Signer as _, Verifier as _};

use super::Signature;
use crate::keys::{SigningKey, VerifyingKey};
use crate::{Error, Misuse};

/// An implementation of ECDSA P-256 with SHA-256 (§4.1.3, Appendix A algorithm 0).
///
/// Both operations take the message (the token internals) and hash it themselves.
pub trait SignatureBackend: Send + Sync {
    /// A short name for diagnostics and benchmarks (`rustcrypto`).
    fn name(&self) -> &'static str;

    /// Signs SHA-256(`msg`) with an RFC 6979 deterministic nonce (§6.1).
    ///
    /// # Errors
    /// [`Misuse::Signing`] if the implementation fails; never expected with a valid key.
    fn sign(&self, key: &SigningKey, msg: &[u8]) -> Result<Signature, Error>;

    /// True if `signature` is valid for SHA-256(`msg`) under `key`. High-S signatures are
    /// valid. Opaque on purpose: no reason is given for a failure.
    fn verify(&self, key: &VerifyingKey, msg: &[u8], signature: &Signature) -> bool;
}

/// The default backend: the RustCrypto `p256` and `ecdsa` crates (pure Rust).
#[derive(Debug, Clone, Copy, Default)]
pub struct RustCrypto;

impl SignatureBackend for RustCrypto {
    fn name(&self) -> &'static str {
        "rustcrypto"
    }

    fn sign(&self, key: &SigningKey, msg: &[u8]) -> Result<Signature, Error> {
        // The `Signer` impl is RFC 6979 over SHA-256, the curve's default digest.
        let inner: p256::ecdsa::Signature =
            key.as_p256().try_sign(msg).map_err(|_| Misuse::Signing)?;
        Ok(Signature::from_p256(inner))
    }

    fn verify(&self, key: &VerifyingKey, msg: &[u8], signature: &Signature) -> bool {
        key.as_p256().verify(msg, signature.as_p256()).is_ok()
    }
}

/// The backend [`SigningKey::sign`] and [`VerifyingKey::verify`] use.
pub fn default_backend() -> &'static dyn SignatureBackend {
    &RustCrypto
}
