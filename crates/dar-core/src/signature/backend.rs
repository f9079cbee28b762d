//! The seam between callers and the ECDSA arithmetic.
//!
//! Callers sign with [`SigningKey::sign`] and verify with [`VerifyingKey::verify`], which go
//! through the backend the key carries: [`default_backend`] unless the key was given another
//! with [`SigningKey::with_backend`] or [`VerifyingKey::with_backend`] (a verifying key taken
//! from a signing key inherits its backend). Three backends:
//!
//! - [`RustCrypto`]: pure Rust (`p256`, `ecdsa`) for both operations, for targets without a C
//!   toolchain (`--no-default-features`); signing is RFC 6979.
//! - [`AwsLc`] (cargo feature `aws-lc`, on by default, and the default backend then): verifies
//!   with aws-lc-rs, about five times faster, and signs with RustCrypto's RFC 6979, so
//!   signatures stay deterministic and byte-identical to the test vectors.
//! - [`AwsLcRandomized`] (cargo feature `aws-lc`, opt-in): verifies with aws-lc-rs and also
//!   signs with it, about five times faster than RFC 6979 in RustCrypto, with a random nonce
//!   from aws-lc's own generator. For issuers that need more signatures per second than the
//!   deterministic signer gives; its signatures differ on every call, so it cannot reproduce the
//!   vectors.
//!
//! All decide every signature the same way: the strict DER parse, r and s in range and high-S
//! acceptance happen in [`Signature::from_der`] before any backend sees a signature, and a test
//! runs every vector through each. Per-key state (aws-lc-rs's parsed public key and key pair)
//! is built once, when the key is, and cached inside [`VerifyingKey`] and [`SigningKey`].

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

    /// Signs SHA-256(`msg`): with an RFC 6979 deterministic nonce (§6.1) in [`RustCrypto`] and
    /// [`AwsLc`], with a random one in [`AwsLcRandomized`].
    ///
    /// # Errors
    /// [`Misuse::Signing`] if the implementation fails; never expected with a valid key.
    fn sign(&self, key: &SigningKey, msg: &[u8]) -> Result<Signature, Error>;

    /// True if `signature` is valid for SHA-256(`msg`) under `key`. High-S signatures are
    /// valid. Opaque on purpose: no reason is given for a failure.
    fn verify(&self, key: &VerifyingKey, msg: &[u8], signature: &Signature) -> bool;
}

/// The RustCrypto `p256` and `ecdsa` crates (pure Rust) for both operations; the default
/// backend without the `aws-lc` feature.
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

/// Both operations in aws-lc-rs: verification as in [`AwsLc`], and signing with a random nonce
/// (opt-in, see the module documentation).
///
/// The nonce comes from aws-lc's own generator (seeded from the operating system), with a
/// SHA-512 of the private key and the digest mixed in as additional input, so a weak generator
/// alone does not expose the key; aws-lc-rs ignores any generator passed to it. The key pair is the one parsed once when the
/// [`SigningKey`] was built, never re-parsed per signature. Signatures verify under every
/// backend.
///
/// ```
/// use dar_core::{AwsLcRandomized, RustCrypto, SignatureBackend as _, SigningKey};
///
/// let key = SigningKey::from_scalar_bytes(&[0x1a; 32])?.with_backend(&AwsLcRandomized);
/// let signature = key.sign(b"token internals")?;
/// assert!(RustCrypto.verify(&key.verifying_key(), b"token internals", &signature));
/// assert_ne!(key.sign(b"token internals")?, signature);
/// # Ok::<(), dar_core::Error>(())
/// ```
#[cfg(feature = "aws-lc")]
#[derive(Debug, Clone, Copy, Default)]
pub struct AwsLcRandomized;

#[cfg(feature = "aws-lc")]
impl SignatureBackend for AwsLcRandomized {
    fn name(&self) -> &'static str {
        "aws-lc-rs (randomized signing)"
    }

    fn sign(&self, key: &SigningKey, msg: &[u8]) -> Result<Signature, Error> {
        // aws-lc-rs takes a generator for ring compatibility and ignores it: the nonce is drawn
        // inside aws-lc. The DER it returns is re-read strictly, so a signature from here is
        // the same value type, with the same canonical encoding, as one from RustCrypto.
        let der = key
            .as_aws_lc()
            .sign(&aws_lc_rs::rand::SystemRandom::new(), msg)
            .map_err(|_| Misuse::Signing)?;
        Signature::from_der(der.as_ref()).map_err(|_| Misuse::Signing.into())
    }

    fn verify(&self, key: &VerifyingKey, msg: &[u8], signature: &Signature) -> bool {
        AwsLc.verify(key, msg, signature)
    }
}

/// The backend every key starts with, which [`SigningKey::sign`] and [`VerifyingKey::verify`]
/// use unless the key was given another: [`AwsLc`] with the `aws-lc` feature (the default),
/// [`RustCrypto`] without it. Both sign deterministically (RFC 6979).
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
