//! P-256 keys: the account provider's token-signing key and the recovery provider's
//! countersigning key (§2 `tokensign-pubkeys-secp256r1`, `countersign-pubkeys-secp256r1`;
//! Appendix A algorithm 0, ECDSA-SHA256 on secp256r1).
//!
//! Private keys are read in the forms operators and the public SDKs use: PKCS#8 (DER or PEM), SEC1
//! `EC PRIVATE KEY` (DER or PEM) and bare base64 of SEC1 DER. Public keys are read as
//! SubjectPublicKeyInfo (SPKI), the form configuration documents carry, and parsed once: a
//! [`VerifyingKey`] holds the decoded curve point, so verifying never re-parses.
//!
//! Parsing is strict where the peers were lenient: an SPKI must name id-ecPublicKey on
//! prime256v1, hold an uncompressed point on the curve, and end where its DER ends.
//!
//! Signing and verifying live in the `signature` module.

use core::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use p256::NistP256;
use p256::elliptic_curve::{ALGORITHM_OID, Generate as _};
use p256::pkcs8::der::Decode as _;
use p256::pkcs8::{
    AssociatedOid as _, DecodePrivateKey as _, EncodePrivateKey as _, LineEnding,
    SubjectPublicKeyInfoRef,
};
use rand_core::TryCryptoRng;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use zeroize::{Zeroize as _, ZeroizeOnDrop, Zeroizing};

use crate::signature::{Signature, SignatureBackend, default_backend};
use crate::{DecodeError, Error, Misuse};

/// Length of an uncompressed SEC1 P-256 point: `0x04 || X || Y`.
const UNCOMPRESSED_POINT_LEN: usize = 65;

/// DER of an SPKI up to its point: `SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 },
/// BIT STRING (66 bytes, 0 unused bits) }`. Every P-256 SPKI we emit starts with these bytes.
const SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

const PEM_PKCS8: &str = "PRIVATE KEY";
const PEM_SEC1: &str = "EC PRIVATE KEY";
const PEM_SPKI: &str = "PUBLIC KEY";

/// A P-256 private key, used to sign tokens (§4.1.3) or countersign them (§4.2.2).
///
/// It prints as `SigningKey([redacted])`, zeroizes its scalar on drop, compares in constant time
/// and is deliberately not `Clone`: share it behind an `Arc` rather than copying the secret. The
/// scalar is reachable only through [`SigningKey::secret_bytes`].
///
/// It signs with [`default_backend`] (RFC 6979) unless given another with
/// [`SigningKey::with_backend`]. With the `aws-lc` feature the key is also parsed into aws-lc
/// once, when it is built, so that [`crate::AwsLcRandomized`] never parses it per signature;
/// aws-lc wipes its copy of the scalar when it frees it.
///
/// ```
/// use dar_core::SigningKey;
///
/// let key = SigningKey::from_sdk_base64(
///     "MHcCAQEEIBrlBxPk8Flc7NdnchyighkCJBppRH2UD81pv9TXN98zoAoGCCqGSM49AwEHoUQDQgAEQighOGO1uX+Y\
///      koU6pHod26ET9jJO4hL/WUPaPu5Ar4Pzto9Imf+pz6MuQSJM6YeJJiNijA69oiDeV08LELaeQQ==",
/// )?;
/// assert_eq!(format!("{key:?}"), "SigningKey([redacted])");
/// let signature = key.sign(b"token internals")?;
/// assert!(key.verifying_key().verify(b"token internals", &signature));
/// # Ok::<(), dar_core::Error>(())
/// ```
pub struct SigningKey {
    inner: p256::ecdsa::SigningKey,
    /// The same key parsed once by aws-lc-rs, for [`crate::AwsLcRandomized`].
    #[cfg(feature = "aws-lc")]
    fast: aws_lc_rs::signature::EcdsaKeyPair,
    /// The public half, parsed (for every backend) once, when the key was built: verifying
    /// against it, as an account provider does on every recovery, re-parses nothing.
    public: VerifyingKey,
    backend: &'static dyn SignatureBackend,
}

impl SigningKey {
    /// Generates a new random key.
    ///
    /// # Errors
    /// [`Misuse::Rng`] if the random number generator fails; [`Misuse::Signing`] if aws-lc
    /// refuses the key, which it never does with a valid one.
    pub fn generate<R>(rng: &mut R) -> Result<Self, Error>
    where
        R: TryCryptoRng + ?Sized,
    {
        let inner = p256::ecdsa::SigningKey::try_generate_from_rng(rng).map_err(|_| Misuse::Rng)?;
        Self::from_p256(inner)
    }

    /// Builds a key from its big-endian scalar. Meant for test vectors; real keys come from
    /// [`SigningKey::generate`] or a key file.
    ///
    /// # Errors
    /// [`DecodeError::Key`] (`scalar`) if the scalar is zero or not below the group order.
    pub fn from_scalar_bytes(scalar: &[u8; 32]) -> Result<Self, Error> {
        let inner = p256::ecdsa::SigningKey::from_slice(scalar).map_err(|_| key_err("scalar"))?;
        Self::from_p256(inner)
    }

    /// Reads a PKCS#8 `PrivateKeyInfo` in DER.
    ///
    /// # Errors
    /// [`DecodeError::Key`] (`PKCS#8`) if the input is not a DER PKCS#8 P-256 private key, has
    /// bytes after it, or embeds a public key that does not match the scalar.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, Error> {
        let secret = p256::SecretKey::from_pkcs8_der(der).map_err(|_| key_err("PKCS#8"))?;
        Self::from_secret(&secret)
    }

    /// Reads a PEM `PRIVATE KEY` (PKCS#8).
    ///
    /// # Errors
    /// [`DecodeError::Key`] (`PKCS#8 PEM`) if the text is not a single `PRIVATE KEY` PEM block,
    /// or (`PKCS#8`) if its content is not a P-256 private key.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, Error> {
        let der = pem_body(pem, PEM_PKCS8).ok_or_else(|| key_err("PKCS#8 PEM"))?;
        Self::from_pkcs8_der(&der)
    }

    /// Reads a SEC1 `ECPrivateKey` in DER.
    ///
    /// # Errors
    /// [`DecodeError::Key`] (`SEC1`) if the input is not a DER SEC1 P-256 private key, has bytes
    /// after it, names another curve, or embeds a public key that does not match the scalar.
    pub fn from_sec1_der(der: &[u8]) -> Result<Self, Error> {
        let secret = p256::SecretKey::from_sec1_der(der).map_err(|_| key_err("SEC1"))?;
        Self::from_secret(&secret)
    }

    /// Reads a PEM `EC PRIVATE KEY` (SEC1).
    ///
    /// # Errors
    /// [`DecodeError::Key`] (`SEC1 PEM`) if the text is not a single `EC PRIVATE KEY` PEM block,
    /// or (`SEC1`) if its content is not a P-256 private key.
    pub fn from_sec1_pem(pem: &str) -> Result<Self, Error> {
        let der = pem_body(pem, PEM_SEC1).ok_or_else(|| key_err("SEC1 PEM"))?;
        Self::from_sec1_der(&der)
    }

    /// Reads bare standard base64 of SEC1 DER: the private key form both public SDKs take (the
    /// body of an `EC PRIVATE KEY` PEM without its header lines). Surrounding whitespace is
    /// ignored.
    ///
    /// # Errors
    /// [`DecodeError::Key`] (`base64`) if the text is not standard padded base64, or (`SEC1`) if
    /// the bytes are not a SEC1 P-256 private key.
    pub fn from_sdk_base64(text: &str) -> Result<Self, Error> {
        let der = decode_base64(text).ok_or_else(|| key_err("base64"))?;
        Self::from_sec1_der(&der)
    }

    /// Reads a private key in any form this module knows: PKCS#8 PEM, SEC1 PEM, or bare base64
    /// of SEC1 DER or of PKCS#8 DER.
    ///
    /// # Errors
    /// [`DecodeError::Key`]: `PEM` for a PEM block with another label, `SEC1 or PKCS#8` for
    /// base64 whose bytes are neither, and otherwise as the format-specific reader.
    pub fn from_pem_or_base64(text: &str) -> Result<Self, Error> {
        let text = text.trim();
        if text.starts_with(&pem_begin(PEM_PKCS8)) {
            Self::from_pkcs8_pem(text)
        } else if text.starts_with(&pem_begin(PEM_SEC1)) {
            Self::from_sec1_pem(text)
        } else if text.starts_with("-----BEGIN") {
            Err(key_err("PEM"))
        } else {
            let der = decode_base64(text).ok_or_else(|| key_err("base64"))?;
            Self::from_sec1_der(&der)
                .or_else(|_| Self::from_pkcs8_der(&der))
                .map_err(|_| key_err("SEC1 or PKCS#8"))
        }
    }

    /// Writes the key as a PKCS#8 `PRIVATE KEY` PEM with `\n` line endings.
    ///
    /// # Errors
    /// [`Misuse::Signing`] if encoding fails, which a valid key never does.
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, Error> {
        self.inner
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|_| Misuse::Signing.into())
    }

    /// Writes the key as PKCS#8 DER.
    ///
    /// # Errors
    /// [`Misuse::Signing`] if encoding fails, which a valid key never does.
    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, Error> {
        let doc = self.inner.to_pkcs8_der().map_err(|_| Misuse::Signing)?;
        Ok(doc.to_bytes())
    }

    /// Writes the key as bare standard base64 of SEC1 DER (with the curve and public key), the
    /// form the public SDKs read.
    ///
    /// # Errors
    /// [`Misuse::Signing`] if encoding fails, which a valid key never does.
    pub fn to_sdk_base64(&self) -> Result<Zeroizing<String>, Error> {
        let secret = p256::SecretKey::from(&self.inner);
        let der = secret.to_sec1_der().map_err(|_| Misuse::Signing)?;
        Ok(Zeroizing::new(STANDARD.encode(der.as_slice())))
    }

    /// The private scalar, big-endian. The only way to the key's secret bytes.
    ///
    /// # Security
    /// The caller holds the secret: keep it in the returned [`Zeroizing`] and do not copy it out.
    pub fn secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        let mut field_bytes = self.inner.to_bytes();
        let out = Zeroizing::new(field_bytes.into());
        field_bytes.zeroize();
        out
    }

    /// The matching public key, verifying with this key's backend. It shares the parse made
    /// when this key was built, so taking it costs a reference count, not a point validation.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.public.clone().with_backend(self.backend)
    }

    /// The same key, signing with `backend` from now on (and so do the verifying keys taken from
    /// it with [`SigningKey::verifying_key`]). The key was parsed for every backend when it was
    /// built, so switching costs nothing and no signature re-parses it.
    ///
    /// ```
    /// use dar_core::{RustCrypto, SigningKey};
    ///
    /// let key = SigningKey::from_scalar_bytes(&[0x1a; 32])?.with_backend(&RustCrypto);
    /// assert_eq!(key.backend().name(), "rustcrypto");
    /// assert_eq!(key.verifying_key().backend().name(), "rustcrypto");
    /// # Ok::<(), dar_core::Error>(())
    /// ```
    #[must_use]
    pub fn with_backend(mut self, backend: &'static dyn SignatureBackend) -> Self {
        self.backend = backend;
        self
    }

    /// The backend [`SigningKey::sign`] uses.
    pub fn backend(&self) -> &'static dyn SignatureBackend {
        self.backend
    }

    pub(crate) fn as_p256(&self) -> &p256::ecdsa::SigningKey {
        &self.inner
    }

    #[cfg(feature = "aws-lc")]
    pub(crate) fn as_aws_lc(&self) -> &aws_lc_rs::signature::EcdsaKeyPair {
        &self.fast
    }

    fn from_secret(secret: &p256::SecretKey) -> Result<Self, Error> {
        Self::from_p256(p256::ecdsa::SigningKey::from(secret))
    }

    /// Wraps a p256 key and, with the `aws-lc` feature, parses it into aws-lc once (through a
    /// PKCS#8 document that is wiped on drop).
    fn from_p256(inner: p256::ecdsa::SigningKey) -> Result<Self, Error> {
        #[cfg(feature = "aws-lc")]
        let fast = {
            let pkcs8 = inner.to_pkcs8_der().map_err(|_| Misuse::Signing)?;
            aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
                &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
                pkcs8.as_bytes(),
            )
            .map_err(|_| Misuse::Signing)?
        };
        let public = VerifyingKey::from_p256(*inner.verifying_key());
        Ok(Self {
            inner,
            #[cfg(feature = "aws-lc")]
            fast,
            public,
            backend: default_backend(),
        })
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey([redacted])")
    }
}

impl PartialEq for SigningKey {
    fn eq(&self, other: &Self) -> bool {
        self.secret_bytes().ct_eq(&*other.secret_bytes()).into()
    }
}

impl Eq for SigningKey {}

// The inner ecdsa key zeroizes its scalar on drop; aws-lc's copy (with the `aws-lc` feature) is
// wiped by aws-lc, whose allocator cleanses every block it frees.
impl ZeroizeOnDrop for SigningKey {}

/// A P-256 public key, as published in a configuration document (§2
/// `tokensign-pubkeys-secp256r1`, `countersign-pubkeys-secp256r1`).
///
/// Parsed once (the point is decoded and checked to lie on the curve) and cheap to clone.
/// Public keys are not secret, so equality is ordinary.
///
/// ```
/// use dar_core::VerifyingKey;
///
/// let key = VerifyingKey::parse(
///     "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEQighOGO1uX+YkoU6pHod26ET9jJO4hL/WUPaPu5Ar4Pzto9Imf+p\
///      z6MuQSJM6YeJJiNijA69oiDeV08LELaeQQ==",
/// )?;
/// assert_eq!(key.fingerprint(), "3bacd59e05e19055");
/// assert_eq!(VerifyingKey::from_spki_der(&key.to_spki_der())?, key);
/// # Ok::<(), dar_core::Error>(())
/// ```
#[derive(Clone)]
pub struct VerifyingKey {
    inner: p256::ecdsa::VerifyingKey,
    /// The same key parsed once for the aws-lc-rs backend; `None` only if aws-lc-rs refused a
    /// point p256 accepted, in which case verification falls back to RustCrypto.
    #[cfg(feature = "aws-lc")]
    fast: Option<std::sync::Arc<aws_lc_rs::signature::ParsedPublicKey>>,
    backend: &'static dyn SignatureBackend,
}

impl PartialEq for VerifyingKey {
    fn eq(&self, other: &Self) -> bool {
        self.inner == other.inner
    }
}

impl Eq for VerifyingKey {}

impl VerifyingKey {
    fn from_p256(inner: p256::ecdsa::VerifyingKey) -> Self {
        #[cfg(feature = "aws-lc")]
        let fast = {
            let point = inner.to_sec1_point(false);
            aws_lc_rs::signature::ParsedPublicKey::new(
                &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
                point.as_bytes(),
            )
            .ok()
            .map(std::sync::Arc::new)
        };
        Self {
            inner,
            #[cfg(feature = "aws-lc")]
            fast,
            backend: default_backend(),
        }
    }

    /// The same key, verifying with `backend` from now on instead of [`default_backend`].
    /// Every backend decides every signature the same way; this only changes how fast.
    ///
    /// ```
    /// use dar_core::{RustCrypto, SigningKey};
    ///
    /// let key = SigningKey::from_scalar_bytes(&[0x1a; 32])?;
    /// let signature = key.sign(b"token internals")?;
    /// let verifying = key.verifying_key().with_backend(&RustCrypto);
    /// assert!(verifying.verify(b"token internals", &signature));
    /// # Ok::<(), dar_core::Error>(())
    /// ```
    #[must_use]
    pub fn with_backend(mut self, backend: &'static dyn SignatureBackend) -> Self {
        self.backend = backend;
        self
    }

    /// The backend [`VerifyingKey::verify`] uses.
    pub fn backend(&self) -> &'static dyn SignatureBackend {
        self.backend
    }

    #[cfg(feature = "aws-lc")]
    pub(crate) fn as_aws_lc(&self) -> Option<&aws_lc_rs::signature::ParsedPublicKey> {
        self.fast.as_deref()
    }

    /// Reads a DER SubjectPublicKeyInfo.
    ///
    /// # Errors
    /// - [`DecodeError::Key`] (`SPKI`) if the input is not DER SPKI or has bytes after it;
    /// - [`DecodeError::KeyAlgorithm`] if the algorithm is not id-ecPublicKey with the named
    ///   curve prime256v1 (§2: keys on secp256r1);
    /// - [`DecodeError::KeyPoint`] if the point is compressed, the identity, or not on the curve.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, Error> {
        // `from_der` refuses BER and bytes after the SEQUENCE.
        let spki = SubjectPublicKeyInfoRef::from_der(der).map_err(|_| key_err("SPKI"))?;
        // §2: "ECDSA public keys on the secp256r1 curve"; X9.62 names it prime256v1.
        if spki.algorithm.oid != ALGORITHM_OID
            || spki.algorithm.parameters_oid().ok() != Some(NistP256::OID)
        {
            return Err(DecodeError::KeyAlgorithm.into());
        }
        let point = spki
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| key_err("SPKI"))?;
        // Uncompressed only: a compressed point is a second encoding of the same key, which the
        // peers' SPKIs never use.
        if point.len() != UNCOMPRESSED_POINT_LEN || point.first() != Some(&0x04) {
            return Err(DecodeError::KeyPoint.into());
        }
        let inner =
            p256::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(|_| DecodeError::KeyPoint)?;
        Ok(Self::from_p256(inner))
    }

    /// Reads a PEM `PUBLIC KEY` (SPKI).
    ///
    /// # Errors
    /// [`DecodeError::Key`] (`SPKI PEM`) if the text is not a single `PUBLIC KEY` PEM block, and
    /// otherwise as [`VerifyingKey::from_spki_der`].
    pub fn from_spki_pem(pem: &str) -> Result<Self, Error> {
        let der = pem_body(pem, PEM_SPKI).ok_or_else(|| key_err("SPKI PEM"))?;
        Self::from_spki_der(&der)
    }

    /// Reads standard padded base64 of SPKI DER, the form configuration documents carry (§2).
    /// Surrounding whitespace is ignored.
    ///
    /// # Errors
    /// [`DecodeError::Key`] (`base64`) if the text is not standard padded base64, and otherwise
    /// as [`VerifyingKey::from_spki_der`].
    pub fn from_spki_base64(text: &str) -> Result<Self, Error> {
        let der = decode_base64(text).ok_or_else(|| key_err("base64"))?;
        Self::from_spki_der(&der)
    }

    /// Reads either base64 SPKI DER or an SPKI PEM block.
    ///
    /// # Errors
    /// As [`VerifyingKey::from_spki_pem`] or [`VerifyingKey::from_spki_base64`].
    pub fn parse(text: &str) -> Result<Self, Error> {
        let text = text.trim();
        if text.starts_with("-----BEGIN") {
            Self::from_spki_pem(text)
        } else {
            Self::from_spki_base64(text)
        }
    }

    /// The SPKI DER of this key (uncompressed point, named curve): the canonical encoding, so
    /// parsing it gives back an equal key.
    pub fn to_spki_der(&self) -> Vec<u8> {
        let mut der = Vec::with_capacity(SPKI_PREFIX.len() + UNCOMPRESSED_POINT_LEN);
        der.extend_from_slice(&SPKI_PREFIX);
        der.extend_from_slice(&self.to_uncompressed_point());
        der
    }

    /// Standard padded base64 of [`VerifyingKey::to_spki_der`], as configuration documents carry
    /// it (§2).
    pub fn to_spki_base64(&self) -> String {
        STANDARD.encode(self.to_spki_der())
    }

    /// A PEM `PUBLIC KEY` block with `\n` line endings and 64-column lines.
    pub fn to_spki_pem(&self) -> String {
        let body = self.to_spki_base64();
        let mut pem = pem_begin(PEM_SPKI);
        pem.push('\n');
        for line in body.as_bytes().chunks(64) {
            pem.extend(line.iter().map(|&b| char::from(b)));
            pem.push('\n');
        }
        pem.push_str(&pem_end(PEM_SPKI));
        pem.push('\n');
        pem
    }

    /// The uncompressed SEC1 point `0x04 || X || Y`.
    pub fn to_uncompressed_point(&self) -> [u8; UNCOMPRESSED_POINT_LEN] {
        let point = self.inner.to_sec1_point(false);
        // A valid key is never the identity, so its uncompressed encoding is exactly 65 bytes
        // and the zip copies all of it.
        let mut out = [0u8; UNCOMPRESSED_POINT_LEN];
        for (dst, src) in out.iter_mut().zip(point.as_bytes()) {
            *dst = *src;
        }
        out
    }

    /// A short identifier for logs and CLI output: hex of the first 8 bytes of SHA-256 of the
    /// SPKI DER. Not a security boundary; compare keys with `==`.
    pub fn fingerprint(&self) -> String {
        hex::encode(&self.key_id().as_bytes()[..8])
    }

    /// This key's [`KeyId`]: SHA-256 of its SPKI DER, hashed from the stack.
    ///
    /// ```
    /// use dar_core::SigningKey;
    ///
    /// let a = SigningKey::from_scalar_bytes(&[1; 32])?.verifying_key();
    /// let b = SigningKey::from_scalar_bytes(&[2; 32])?.verifying_key();
    /// assert_eq!(a.key_id(), a.clone().key_id());
    /// assert_ne!(a.key_id(), b.key_id());
    /// # Ok::<(), dar_core::Error>(())
    /// ```
    pub fn key_id(&self) -> KeyId {
        let digest = Sha256::new()
            .chain_update(SPKI_PREFIX)
            .chain_update(self.to_uncompressed_point())
            .finalize();
        KeyId(digest.into())
    }

    pub(crate) fn as_p256(&self) -> &p256::ecdsa::VerifyingKey {
        &self.inner
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifyingKey({})", self.fingerprint())
    }
}

/// Names one public key: SHA-256 of its SubjectPublicKeyInfo DER (the uncompressed point on
/// the named curve, [`VerifyingKey::to_spki_der`]).
///
/// A recovery provider records the id of the key that verified a token when it saves it, so
/// that before countersigning it can tell whether the issuer still publishes that key without
/// verifying the signature again ([`crate::RecoveryToken::verify_saved_signed_by`]). An id is
/// public: it is compared with `==`.
///
/// ```
/// use dar_core::{KeyId, SigningKey};
///
/// let key = SigningKey::from_scalar_bytes(&[3; 32])?.verifying_key();
/// let id = key.key_id();
/// assert_eq!(KeyId::from_bytes(*id.as_bytes()), id);
/// assert_eq!(id.to_string().len(), 64);
/// # Ok::<(), dar_core::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId([u8; 32]);

impl KeyId {
    /// The id with these digest bytes (as stored).
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The digest bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for KeyId {
    /// 64 lower-case hex digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::token::write_hex(f, &self.0)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl core::str::FromStr for KeyId {
    type Err = Error;

    /// Reads 64 hex digits (either case), as [`KeyId`]'s `Display` writes them.
    ///
    /// # Errors
    ///
    /// [`DecodeError::Key`] (`key id`) for anything else.
    fn from_str(text: &str) -> Result<Self, Error> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).map_err(|_| key_err("key id"))?;
        Ok(Self(bytes))
    }
}

/// The keys one party currently publishes, in the order of its configuration document (§2: the
/// `*-pubkeys-secp256r1` entries are arrays so that keys can rotate; §6.8).
///
/// Never empty. A signature is accepted if any key verifies it.
///
/// ```
/// use dar_core::{SigningKey, VerifyingKeys};
///
/// let old = SigningKey::from_scalar_bytes(&[1; 32])?;
/// let new = SigningKey::from_scalar_bytes(&[2; 32])?;
/// let keys = VerifyingKeys::new(vec![new.verifying_key(), old.verifying_key()])
///     .ok_or("no keys")?;
/// let signature = old.sign(b"token internals")?;
/// assert!(keys.verify(b"token internals", &signature));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyingKeys {
    keys: Vec<VerifyingKey>,
}

impl VerifyingKeys {
    /// Collects keys in order, dropping repeats. `None` if there are none.
    pub fn new(keys: impl IntoIterator<Item = VerifyingKey>) -> Option<Self> {
        let mut unique: Vec<VerifyingKey> = Vec::new();
        for key in keys {
            if !unique.contains(&key) {
                unique.push(key);
            }
        }
        if unique.is_empty() {
            None
        } else {
            Some(Self { keys: unique })
        }
    }

    /// True if any of the keys verifies `signature` over `msg` (§3.1 step 7, §3.5 steps 5 and
    /// 12). Opaque: says nothing about why it failed.
    pub fn verify(&self, msg: &[u8], signature: &Signature) -> bool {
        self.verifier_of(msg, signature).is_some()
    }

    /// The first key, in order, that verifies `signature` over `msg`, if any.
    pub fn verifier_of(&self, msg: &[u8], signature: &Signature) -> Option<&VerifyingKey> {
        self.keys.iter().find(|key| key.verify(msg, signature))
    }

    /// The key whose [`VerifyingKey::key_id`] is `id`, if it is one of these.
    pub fn find(&self, id: &KeyId) -> Option<&VerifyingKey> {
        self.keys.iter().find(|key| key.key_id() == *id)
    }

    /// True if `key` is one of the keys.
    pub fn contains(&self, key: &VerifyingKey) -> bool {
        self.keys.contains(key)
    }

    /// The keys, in order; never empty.
    pub fn as_slice(&self) -> &[VerifyingKey] {
        &self.keys
    }

    /// Iterates over the keys in order.
    pub fn iter(&self) -> core::slice::Iter<'_, VerifyingKey> {
        self.keys.iter()
    }
}

impl From<VerifyingKey> for VerifyingKeys {
    fn from(key: VerifyingKey) -> Self {
        Self { keys: vec![key] }
    }
}

impl<'a> IntoIterator for &'a VerifyingKeys {
    type Item = &'a VerifyingKey;
    type IntoIter = core::slice::Iter<'a, VerifyingKey>;

    fn into_iter(self) -> Self::IntoIter {
        self.keys.iter()
    }
}

fn key_err(format: &'static str) -> Error {
    DecodeError::Key { format }.into()
}

/// Decodes standard padded base64 into a buffer that is wiped on drop, since it may hold a
/// private key.
fn decode_base64(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    STANDARD.decode(text.trim()).ok().map(Zeroizing::new)
}

fn pem_begin(label: &str) -> String {
    format!("-----BEGIN {label}-----")
}

fn pem_end(label: &str) -> String {
    format!("-----END {label}-----")
}

/// Reads the body of a single PEM block with the given label (RFC 7468, no headers).
///
/// Written here rather than borrowed from `pem-rfc7468` so that every intermediate copy of a
/// private key (the base64 text without line breaks and the decoded DER) is wiped on drop.
fn pem_body(text: &str, label: &str) -> Option<Zeroizing<Vec<u8>>> {
    let body = text
        .trim()
        .strip_prefix(&pem_begin(label))?
        .strip_suffix(&pem_end(label))?;
    // Sized up front so the buffer never reallocates and leaves a copy behind.
    let mut joined = Zeroizing::new(String::with_capacity(body.len()));
    joined.extend(body.chars().filter(|c| !c.is_ascii_whitespace()));
    STANDARD.decode(joined.as_bytes()).ok().map(Zeroizing::new)
}

#[cfg(test)]
mod tests;
