//! The seam between callers and the ECDSA arithmetic.
//!
//! Callers sign with [`SigningKey::sign`] and verify with [`VerifyingKey::verify`], which go
//! through [`default_backend`]. Two backends:
//!
//! - [`RustCrypto`]: pure Rust (`p256`, `ecdsa`), for targets without a C toolchain
//!   (`--no-default-features`).
//! - [`AwsLc`] (cargo feature `aws-lc`, on by default): verifies with aws-lc-rs, about five
//!   times faster, and signs with RustCrypto's RFC 6979, so signatures stay deterministic and
//!   byte-identical to the test vectors.
//!
//! Both decide every signature the same way: the strict DER parse, r and s in range and high-S
//! acceptance happen in [`Signature::from_der`] before any backend sees a signature, and a test
//! runs every vector through both. Per-key state (aws-lc-rs's parsed key) is cached inside
//! [`VerifyingKey`], which is parsed once.

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

/// The aws-lc-rs backend: verification in aws-lc-rs on the key parsed once, signing with
/// RustCrypto's deterministic RFC 6979 (aws-lc-rs signs only with random nonces).
#[cfg(feature = "aws-lc")]
#[derive(Debug, Clone, Copy, Default)]
pub struct AwsLc;

#[cfg(feature = "aws-lc")]
impl SignatureBackend for AwsLc {
    fn name(&self) -> &'static str {
        "aws-lc-rs verify, rustcrypto rfc6979 sign"
    }

    fn sign(&self, key: &SigningKey, msg: &[u8]) -> Result<Signature, Error> {
        RustCrypto.sign(key, msg)
    }

    fn verify(&self, key: &VerifyingKey, msg: &[u8], signature: &Signature) -> bool {
        match key.as_aws_lc() {
            // The fixed r||s form: the DER was already parsed strictly, so nothing about its
            // encoding is left for aws-lc-rs to judge.
            Some(parsed) => parsed
                .verify_sig(msg, &signature.as_p256().to_bytes())
                .is_ok(),
            None => RustCrypto.verify(key, msg, signature),
        }
    }
}

/// The backend [`SigningKey::sign`] and [`VerifyingKey::verify`] use: [`AwsLc`] with the
/// `aws-lc` feature (the default), [`RustCrypto`] without it.
pub fn default_backend() -> &'static dyn SignatureBackend {
    #[cfg(feature = "aws-lc")]
    {
        &AwsLc
    }
    #[cfg(not(feature = "aws-lc"))]
    {
        &RustCrypto
    }
}
