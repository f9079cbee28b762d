//! ECDSA P-256 signatures over SHA-256 of the token internals (§4.1.3, §4.2.2).
//!
//! [`Signature::from_der`] is a strict DER reader: the draft says the signature is "DER-encoded
//! ASN.1 structure (a SEQUENCE of two INTEGERs, for r and s, in that order)", and a token ends
//! with it, so only one byte string may encode a given signature. That keeps tokens
//! non-malleable in their encoding and lets a parsed token re-encode to its original bytes.
//! High-S signatures are accepted: the draft does not forbid them and about half of the public
//! SDKs' tokens carry one.
//!
//! Signing is deterministic by default (RFC 6979, §6.1), byte-identical to the Java SDK's
//! signer. The arithmetic sits behind [`SignatureBackend`]; a key carries the backend it uses,
//! so a faster one ([`AwsLcRandomized`], randomized signing) is chosen per key without touching
//! callers.

mod backend;

use core::fmt;

#[cfg(feature = "aws-lc")]
pub use backend::{AwsLc, AwsLcRandomized};
pub use backend::{RustCrypto, SignatureBackend, default_backend};

use crate::keys::{SigningKey, VerifyingKey};
use crate::{DecodeError, Error};

const TAG_SEQUENCE: u8 = 0x30;
const TAG_INTEGER: u8 = 0x02;

/// Length of a P-256 scalar in bytes.
const SCALAR_LEN: usize = 32;

/// A parsed ECDSA P-256 signature: `r` and `s`, both in `[1, n-1]`.
///
/// Build one with [`Signature::from_der`] or [`SigningKey::sign`]; [`Signature::to_der`] gives
/// back the canonical DER, which is the input itself for any signature `from_der` accepted.
///
/// ```
/// use dar_core::{DecodeError, Error, Signature};
///
/// let der = [
///     0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x02, // SEQUENCE { INTEGER 1, INTEGER 2 }
/// ];
/// let signature = Signature::from_der(&der)?;
/// assert_eq!(signature.to_der(), der);
///
/// let mut trailing = der.to_vec();
/// trailing.push(0x00);
/// assert_eq!(Signature::from_der(&trailing), Err(Error::Decode(DecodeError::TrailingData)));
/// # Ok::<(), dar_core::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature {
    inner: p256::ecdsa::Signature,
}

impl Signature {
    /// Parses a strict DER `SEQUENCE { INTEGER r, INTEGER s }` (§4.1.3).
    ///
    /// Strict means: short-form definite lengths (a P-256 signature never needs the long form),
    /// minimal non-negative integers (a leading 0x00 only where the next byte has its top bit
    /// set), nothing else inside the SEQUENCE, `r` and `s` in `[1, n-1]`, and nothing after it.
    /// `s` above `n/2` is accepted.
    ///
    /// # Errors
    /// - [`DecodeError::TrailingData`] if bytes follow an otherwise valid signature;
    /// - [`DecodeError::SignatureEncoding`] for anything else that is not such a signature.
    pub fn from_der(der: &[u8]) -> Result<Self, Error> {
        let (r, s, after) = split_strict_der(der)?;
        let inner = p256::ecdsa::Signature::from_scalars(r, s)
            .map_err(|_| DecodeError::SignatureEncoding)?;
        // §4.1: the signature is the last thing in a token. Checked last, so that TrailingData
        // means "a valid signature followed by bytes".
        if !after.is_empty() {
            return Err(DecodeError::TrailingData.into());
        }
        Ok(Self { inner })
    }

    /// The canonical DER encoding (8 to 72 bytes).
    pub fn to_der(&self) -> Vec<u8> {
        self.inner.to_der().as_bytes().to_vec()
    }

    pub(crate) fn from_p256(inner: p256::ecdsa::Signature) -> Self {
        Self { inner }
    }

    pub(crate) fn as_p256(&self) -> &p256::ecdsa::Signature {
        &self.inner
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Signature(")?;
        for byte in self.to_der() {
            write!(f, "{byte:02x}")?;
        }
        f.write_str(")")
    }
}

impl SigningKey {
    /// Signs `msg` (the token internals): ECDSA P-256 over SHA-256(`msg`) (§4.1.3, §4.2.2)
    /// with the key's backend ([`SigningKey::with_backend`]; [`default_backend`] unless
    /// changed), so with an RFC 6979 deterministic nonce (§6.1) unless the key was given
    /// [`AwsLcRandomized`].
    ///
    /// # Errors
    /// [`crate::Misuse::Signing`] if the backend fails, which it never does with a valid key.
    pub fn sign(&self, msg: &[u8]) -> Result<Signature, Error> {
        self.backend().sign(self, msg)
    }
}

impl VerifyingKey {
    /// True if `signature` is a valid signature of SHA-256(`msg`) under this key (§3.1 step 7,
    /// §3.5 steps 5 and 12), using the key's backend ([`VerifyingKey::with_backend`];
    /// [`default_backend`] unless changed). High-S signatures verify.
    ///
    /// Opaque: a `false` says nothing about why.
    pub fn verify(&self, msg: &[u8], signature: &Signature) -> bool {
        self.backend().verify(self, msg, signature)
    }
}

/// A strictly encoded signature's `r` and `s` (big-endian, left-padded) and the bytes after it.
type Split<'a> = ([u8; SCALAR_LEN], [u8; SCALAR_LEN], &'a [u8]);

/// Reads a strict DER `SEQUENCE { INTEGER r, INTEGER s }` from the start of `der`. Range checks
/// against the group order and the check for trailing bytes are left to the caller.
fn split_strict_der(der: &[u8]) -> Result<Split<'_>, DecodeError> {
    let (body, after) = read_tlv(der, TAG_SEQUENCE)?;
    let (r, body) = read_tlv(body, TAG_INTEGER)?;
    let (s, body) = read_tlv(body, TAG_INTEGER)?;
    if !body.is_empty() {
        return Err(DecodeError::SignatureEncoding);
    }
    Ok((unsigned_integer(r)?, unsigned_integer(s)?, after))
}

/// Reads one tag-length-value, returning the value and what follows it.
fn read_tlv(input: &[u8], tag: u8) -> Result<(&[u8], &[u8]), DecodeError> {
    let (&found, rest) = input.split_first().ok_or(DecodeError::SignatureEncoding)?;
    if found != tag {
        return Err(DecodeError::SignatureEncoding);
    }
    let (&len, rest) = rest.split_first().ok_or(DecodeError::SignatureEncoding)?;
    // DER uses the short form for lengths below 128, and a P-256 signature is at most 72 bytes,
    // so a long-form (or indefinite, 0x80) length is never DER here.
    if len >= 0x80 {
        return Err(DecodeError::SignatureEncoding);
    }
    rest.split_at_checked(usize::from(len))
        .ok_or(DecodeError::SignatureEncoding)
}

/// Checks that an INTEGER's content is minimal and non-negative, and left-pads it to 32 bytes.
fn unsigned_integer(content: &[u8]) -> Result<[u8; SCALAR_LEN], DecodeError> {
    let (&first, tail) = content
        .split_first()
        .ok_or(DecodeError::SignatureEncoding)?;
    if first & 0x80 != 0 {
        // Negative.
        return Err(DecodeError::SignatureEncoding);
    }
    let magnitude = if first == 0 {
        // A leading zero is allowed only to keep the next byte's top bit from reading as a sign;
        // this also refuses the integer 0, which is out of range anyway.
        match tail.first() {
            Some(next) if next & 0x80 != 0 => tail,
            _ => return Err(DecodeError::SignatureEncoding),
        }
    } else {
        content
    };
    let pad = SCALAR_LEN
        .checked_sub(magnitude.len())
        .ok_or(DecodeError::SignatureEncoding)?;
    let mut out = [0u8; SCALAR_LEN];
    let dst = out.get_mut(pad..).ok_or(DecodeError::SignatureEncoding)?;
    dst.copy_from_slice(magnitude);
    Ok(out)
}

/// Fuzz entry point: parses `data` and, if it is accepted, checks that it re-encodes to exactly
/// `data` and parses back to the same signature (strict DER has one encoding per value).
///
/// # Panics
/// If an accepted signature does not round-trip: that is the bug the fuzzer looks for.
#[doc(hidden)]
pub fn fuzz_signature_from_der(data: &[u8]) {
    if let Ok(signature) = Signature::from_der(data) {
        let der = signature.to_der();
        assert_eq!(der, data, "accepted DER is not canonical");
        assert_eq!(
            Signature::from_der(&der),
            Ok(signature),
            "re-encoding changed the value"
        );
    }
}

#[cfg(test)]
mod tests;
