//! Sealing the account provider's opaque data (§4.1.2) with AES-256-GCM.
//!
//! The draft leaves the algorithm and key management of the `data` field to the account
//! provider, but requires it to be encrypted (§4.1.2) with an AEAD mode so that whoever holds
//! only the token signing key cannot forge it (§6.8). [`Sealer`] implements two layouts, both
//! AES-256-GCM with a random 96-bit IV and a 128-bit tag; `spec/sealing.md` gives the exact
//! bytes:
//!
//! - [`Layout::DarV1`], this project's default: `0x01 | key_id u32 BE | IV [12] | ciphertext |
//!   tag [16]`. The key id lets sealing keys rotate; the associated data binds the ciphertext
//!   to the token it sits in (token_id, issuer, audience), so a sealed blob cannot be moved into
//!   another token.
//! - [`Layout::DarrrrV0`], the layout of the Ruby peer (github/darrrr): `0x00 | tag [16] |
//!   IV [12] | ciphertext`, with empty associated data and no key id.
//!
//! Opening detects the layout from the first byte. Every authentication failure is the same
//! opaque [`Rejected::SealOpenFailed`]: it never says which key was tried or why it failed.

use core::fmt;
use core::str::FromStr;

use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes256Gcm, Key, KeyInit, Nonce, Tag};
use rand_core::TryCryptoRng;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::error::{DecodeError, Error, Misuse, Rejected};

/// Length of an AES-256 key in bytes.
pub const KEY_LEN: usize = 32;
/// Length of the GCM IV (nonce) both layouts use: 96 bits, the size NIST SP 800-38D recommends.
pub const IV_LEN: usize = 12;
/// Length of the GCM authentication tag both layouts use: 128 bits.
pub const TAG_LEN: usize = 16;
/// The largest sealed blob [`Sealer::seal`] produces: the token's `data` field has a u16
/// length (§4.1.1), so anything longer could not be carried by a token.
pub const MAX_SEALED_LEN: usize = 65_535;

/// First byte of a darrrr-v0 blob.
const V0_VERSION: u8 = 0x00;
/// First byte of a dar-v1 blob.
const V1_VERSION: u8 = 0x01;
/// Domain-separation label at the start of the dar-v1 associated data, so that no other use
/// of the same key (a future layout, another protocol) can produce the same associated data.
const V1_AAD_LABEL: &[u8; 18] = b"dar/sealed-data/v1";
/// `0x00 | tag | IV`.
const V0_OVERHEAD: usize = 1 + TAG_LEN + IV_LEN;
/// `0x01 | key_id | IV | tag`.
const V1_OVERHEAD: usize = 1 + 4 + IV_LEN + TAG_LEN;

/// An AES-256 key that seals opaque data, with the id that dar-v1 blobs carry.
///
/// The key bytes are zeroized on drop, never printed by `Debug`, compared in constant time,
/// and readable only through [`SealingKey::secret_bytes`].
///
/// ```
/// use dar_core::SealingKey;
/// let key = SealingKey::new(7, [0x11; 32]);
/// assert_eq!(format!("{key:?}"), "SealingKey { id: 7, key: [redacted] }");
/// ```
#[derive(Clone)]
pub struct SealingKey {
    id: u32,
    key: [u8; KEY_LEN],
}

impl SealingKey {
    /// A key with the given id and bytes.
    pub fn new(id: u32, key: [u8; KEY_LEN]) -> Self {
        Self { id, key }
    }

    /// A fresh random key from `rng`.
    ///
    /// # Errors
    ///
    /// [`Misuse::Rng`] if the randomness source fails.
    pub fn generate<R: TryCryptoRng + ?Sized>(id: u32, rng: &mut R) -> Result<Self, Error> {
        let mut key = Self::new(id, [0; KEY_LEN]);
        rng.try_fill_bytes(&mut key.key).map_err(|_| Misuse::Rng)?;
        Ok(key)
    }

    /// A key from 64 hexadecimal digits (either case), as the CLI's `--aes-key HEX` takes it.
    ///
    /// # Errors
    ///
    /// [`DecodeError::Key`] if `hex` is not exactly 64 hexadecimal digits. The error never
    /// repeats the input, which may be a mistyped key.
    pub fn from_hex(id: u32, hex: &str) -> Result<Self, Error> {
        const BAD: DecodeError = DecodeError::Key {
            format: "AES-256 key of 64 hex digits",
        };
        let digits = hex.as_bytes();
        if digits.len() != 2 * KEY_LEN {
            return Err(BAD.into());
        }
        let mut key = Self::new(id, [0; KEY_LEN]);
        for (out, pair) in key.key.iter_mut().zip(digits.chunks_exact(2)) {
            let (Some(hi), Some(lo)) = (
                pair.first().copied().and_then(hex_value),
                pair.get(1).copied().and_then(hex_value),
            ) else {
                return Err(BAD.into());
            };
            *out = (hi << 4) | lo;
        }
        Ok(key)
    }

    /// The key id that dar-v1 blobs sealed under this key carry.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The raw key bytes.
    ///
    /// # Security
    ///
    /// Whoever reads these can open every token sealed under this key. Don't log or persist
    /// them outside the key store.
    pub fn secret_bytes(&self) -> &[u8; KEY_LEN] {
        &self.key
    }
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

impl Drop for SealingKey {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealingKey")
            .field("id", &self.id)
            .field("key", &Redacted)
            .finish()
    }
}

struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl PartialEq for SealingKey {
    fn eq(&self, other: &Self) -> bool {
        (self.id == other.id) & bool::from(self.key.ct_eq(&other.key))
    }
}

impl Eq for SealingKey {}

/// The byte layout [`Sealer::seal`] produces. [`Sealer::open`] reads the layout from the
/// blob's first byte.
///
/// ```
/// use dar_core::Layout;
/// let layout: Layout = "darrrr-v0".parse()?;
/// assert_eq!(layout, Layout::DarrrrV0);
/// assert_eq!(Layout::default().to_string(), "dar-v1");
/// # Ok::<(), dar_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Layout {
    /// The Ruby peer's layout (`darrrr-v0`): `0x00 | tag [16] | IV [12] | ciphertext`, empty
    /// associated data, no key id. Use it only to make tokens that the Ruby peer must open.
    DarrrrV0,
    /// This project's layout (`dar-v1`): `0x01 | key_id u32 BE | IV [12] | ciphertext |
    /// tag [16]`, with associated data binding the blob to its token.
    #[default]
    DarV1,
}

impl Layout {
    /// The layout a sealed blob claims by its first byte (0x00 darrrr-v0, 0x01 dar-v1), without
    /// checking anything else.
    ///
    /// ```
    /// use dar_core::Layout;
    /// assert_eq!(Layout::of_sealed(&[1, 0, 0]), Some(Layout::DarV1));
    /// assert_eq!(Layout::of_sealed(&[]), None);
    /// ```
    pub fn of_sealed(sealed: &[u8]) -> Option<Self> {
        match sealed.first() {
            Some(0x00) => Some(Self::DarrrrV0),
            Some(0x01) => Some(Self::DarV1),
            _ => None,
        }
    }

    /// The bytes a sealed blob adds to the plaintext: 29 for darrrr-v0, 33 for dar-v1.
    pub fn overhead(self) -> usize {
        match self {
            Self::DarrrrV0 => V0_OVERHEAD,
            Self::DarV1 => V1_OVERHEAD,
        }
    }

    /// The longest plaintext whose sealed blob still fits a token's `data` field
    /// ([`MAX_SEALED_LEN`]).
    pub fn max_plaintext_len(self) -> usize {
        MAX_SEALED_LEN.saturating_sub(self.overhead())
    }

    fn name(self) -> &'static str {
        match self {
            Self::DarrrrV0 => "darrrr-v0",
            Self::DarV1 => "dar-v1",
        }
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Layout {
    type Err = Error;

    /// Parses `darrrr-v0` or `dar-v1` (exactly, lower case).
    ///
    /// # Errors
    ///
    /// [`DecodeError::Config`] with field `layout` for any other string.
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "darrrr-v0" => Ok(Self::DarrrrV0),
            "dar-v1" => Ok(Self::DarV1),
            _ => Err(DecodeError::Config {
                field: "layout",
                reason: "expected darrrr-v0 or dar-v1",
            }
            .into()),
        }
    }
}

/// The token a sealed blob belongs to: what the dar-v1 associated data binds.
///
/// `issuer` and `audience` are the token's origins in canonical serialized form, exactly as
/// they appear on the wire (§4.1.1). darrrr-v0 ignores the context: it binds nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealContext<'a> {
    /// The token's `token_id` (§4.1.1).
    pub token_id: &'a [u8; 16],
    /// The token's `issuer`: the account provider's origin.
    pub issuer: &'a str,
    /// The token's `audience`: the recovery provider's origin.
    pub audience: &'a str,
}

/// Seals and opens opaque token data under a set of AES-256 keys, one of them current.
///
/// Sealing uses the current key and the configured [`Layout`]. Opening reads the layout from
/// the first byte: a dar-v1 blob names its key by id, so a sealer keeps retired keys to open
/// old tokens while sealing new ones under the current key. A darrrr-v0 blob names no key: the
/// sealer tries the current key, then the others in the order given to [`Sealer::new`].
///
/// ```
/// use dar_core::{Layout, SealContext, Sealer, SealingKey};
/// # struct OsRng;
/// # impl rand_core::TryRng for OsRng {
/// #     type Error = getrandom::Error;
/// #     fn try_next_u32(&mut self) -> Result<u32, Self::Error> { getrandom::u32() }
/// #     fn try_next_u64(&mut self) -> Result<u64, Self::Error> { getrandom::u64() }
/// #     fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
/// #         getrandom::fill(dst)
/// #     }
/// # }
/// # impl rand_core::TryCryptoRng for OsRng {}
/// let mut rng = OsRng; // any `rand_core::TryCryptoRng`
///
/// let old = SealingKey::generate(1, &mut rng)?;
/// let new = SealingKey::generate(2, &mut rng)?;
/// let before = Sealer::new(vec![old.clone()], 1, Layout::DarV1)?;
/// let after = Sealer::new(vec![old, new], 2, Layout::DarV1)?;
///
/// let ctx = SealContext {
///     token_id: &[7; 16],
///     issuer: "https://ap.example",
///     audience: "https://rp.example",
/// };
/// let sealed = before.seal(b"account 42", &ctx, &mut rng)?;
/// // Rotated: key 2 seals, key 1 still opens the tokens sealed before.
/// assert_eq!(after.open(&sealed, &ctx)?.as_slice(), b"account 42");
///
/// // The blob is bound to its token: in another token it does not open.
/// let elsewhere = SealContext { token_id: &[8; 16], ..ctx };
/// assert!(after.open(&sealed, &elsewhere).is_err());
/// # Ok::<(), dar_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Sealer {
    current: SealingKey,
    /// The other keys, in the order given to [`Sealer::new`]; they only open.
    others: Vec<SealingKey>,
    layout: Layout,
    open_darrrr_v0: bool,
}

impl Sealer {
    /// A sealer that seals with the key whose id is `current_id`, in `layout`, and opens with
    /// any of `keys`.
    ///
    /// It opens dar-v1 blobs, and darrrr-v0 blobs only if `layout` is [`Layout::DarrrrV0`]
    /// (see [`Sealer::also_open_darrrr_v0`]).
    ///
    /// # Errors
    ///
    /// - [`Misuse::NoSealingKey`] if `keys` holds no key with id `current_id` (or is empty).
    /// - [`Misuse::DuplicateSealingKey`] if two keys share an id: a dar-v1 blob could not say
    ///   which one sealed it.
    pub fn new(mut keys: Vec<SealingKey>, current_id: u32, layout: Layout) -> Result<Self, Error> {
        for (i, key) in keys.iter().enumerate() {
            if keys.iter().skip(i + 1).any(|other| other.id == key.id) {
                return Err(Misuse::DuplicateSealingKey { id: key.id }.into());
            }
        }
        let index = keys
            .iter()
            .position(|k| k.id == current_id)
            .ok_or(Misuse::NoSealingKey)?;
        // `index` came from `position` over this very vector, so `remove` cannot panic.
        let current = keys.remove(index);
        Ok(Self {
            current,
            others: keys,
            layout,
            open_darrrr_v0: layout == Layout::DarrrrV0,
        })
    }

    /// Also open darrrr-v0 blobs, while sealing in dar-v1: for an account provider that
    /// moves from the Ruby peer's layout to dar-v1 and still has tokens sealed in the old one.
    ///
    /// # Security
    ///
    /// A darrrr-v0 blob is not bound to its token. Whoever holds the account provider's token
    /// signing key (but not the sealing key) could copy such a blob out of a leaked token into
    /// a fresh token of their own (§6.8). Turn this on only while old tokens remain.
    #[must_use]
    pub fn also_open_darrrr_v0(mut self) -> Self {
        self.open_darrrr_v0 = true;
        self
    }

    /// The layout [`Sealer::seal`] produces.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The id of the key [`Sealer::seal`] uses.
    pub fn current_key_id(&self) -> u32 {
        self.current.id
    }

    /// Seals `plaintext` for the token described by `ctx`, with a fresh random IV from `rng`.
    ///
    /// An empty plaintext is allowed (the Ruby peer refuses one; nothing in §4.1.2 does).
    ///
    /// # Errors
    ///
    /// - [`Misuse::PayloadTooLarge`] if the sealed blob would not fit a token's `data` field
    ///   ([`Layout::max_plaintext_len`]).
    /// - [`Misuse::FieldTooLong`] if `ctx.issuer` or `ctx.audience` is 65,536 bytes or more
    ///   (dar-v1 only; no token could carry it).
    /// - [`Misuse::Rng`] if the randomness source fails.
    pub fn seal<R: TryCryptoRng + ?Sized>(
        &self,
        plaintext: &[u8],
        ctx: &SealContext<'_>,
        rng: &mut R,
    ) -> Result<Vec<u8>, Error> {
        let mut out = Vec::with_capacity(self.sealed_len(plaintext.len())?);
        self.seal_into(&mut out, plaintext, ctx, rng)?;
        Ok(out)
    }

    /// The length of the blob [`Sealer::seal`] makes of a plaintext of `plaintext_len` bytes.
    ///
    /// # Errors
    ///
    /// [`Misuse::PayloadTooLarge`] if it would not fit a token's `data` field.
    pub fn sealed_len(&self, plaintext_len: usize) -> Result<usize, Error> {
        if plaintext_len > self.layout.max_plaintext_len() {
            return Err(Misuse::PayloadTooLarge.into());
        }
        Ok(plaintext_len + self.layout.overhead())
    }

    /// [`Sealer::seal`], appending the blob to `out` ([`Sealer::sealed_len`] bytes) instead of
    /// allocating one: issuing writes it straight into the token being built. The plaintext is
    /// encrypted where it lands in `out`; on an error `out` is truncated back, its tail zeroed.
    ///
    /// # Errors
    ///
    /// As [`Sealer::seal`]; `out` is then as it was.
    pub fn seal_into<R: TryCryptoRng + ?Sized>(
        &self,
        out: &mut Vec<u8>,
        plaintext: &[u8],
        ctx: &SealContext<'_>,
        rng: &mut R,
    ) -> Result<(), Error> {
        // Checked before drawing randomness so a caller bug never consumes it.
        self.sealed_len(plaintext.len())?;
        let mut iv = [0; IV_LEN];
        rng.try_fill_bytes(&mut iv).map_err(|_| Misuse::Rng)?;
        self.seal_with_iv_into(out, plaintext, ctx, &iv)
    }

    /// Opens a dar payload sealed for the token described by `ctx` and reads it
    /// ([`Payload::from_bytes`](crate::Payload::from_bytes)). A blob that can hold a payload is
    /// opened in a buffer on the stack, so the payload's account id is the only allocation.
    ///
    /// # Errors
    ///
    /// As [`Sealer::open`], then [`DecodeError::Payload`].
    pub fn open_payload(
        &self,
        sealed: &[u8],
        ctx: &SealContext<'_>,
    ) -> Result<crate::Payload, Error> {
        const CAP: usize = crate::Payload::MAX_ENCODED_LEN;
        let fits = match sealed.first() {
            Some(&V0_VERSION) => sealed.len() <= CAP + V0_OVERHEAD,
            Some(&V1_VERSION) => sealed.len() <= CAP + V1_OVERHEAD,
            _ => false,
        };
        if !fits {
            // Whatever this is, it is refused exactly as `open` refuses it.
            return crate::Payload::from_bytes(&self.open(sealed, ctx)?);
        }
        let mut buf = Zeroizing::new([0u8; CAP]);
        let len = self.open_into(sealed, ctx, &mut buf[..])?;
        crate::Payload::from_bytes(buf.get(..len).ok_or(DecodeError::SealedData)?)
    }

    /// Opens a blob that [`Sealer::seal`] (or the Ruby peer, for darrrr-v0) produced for the
    /// token described by `ctx`.
    ///
    /// # Errors
    ///
    /// - [`DecodeError::SealedData`] if the first byte names no known layout or the blob is
    ///   too short for its layout.
    /// - [`Rejected::SealLayoutNotAccepted`] for a darrrr-v0 blob when this sealer does not
    ///   open that layout.
    /// - [`Rejected::UnknownSealingKey`] if no key has the dar-v1 blob's key id.
    /// - [`Rejected::SealOpenFailed`] if authentication fails: tampered bytes, a wrong key, or
    ///   a blob bound to another token. Opaque on purpose.
    /// - [`Misuse::FieldTooLong`] if `ctx.issuer` or `ctx.audience` is 65,536 bytes or more.
    pub fn open(&self, sealed: &[u8], ctx: &SealContext<'_>) -> Result<Zeroizing<Vec<u8>>, Error> {
        let mut buf = Zeroizing::new(vec![0; sealed.len()]);
        let len = self.open_into(sealed, ctx, &mut buf)?;
        buf.truncate(len);
        Ok(buf)
    }

    /// Opens `sealed` into the front of `buf` and returns the plaintext's length. `buf` must
    /// hold the ciphertext (a caller's bug otherwise, reported as [`DecodeError::SealedData`]).
    fn open_into(
        &self,
        sealed: &[u8],
        ctx: &SealContext<'_>,
        buf: &mut [u8],
    ) -> Result<usize, Error> {
        // §4.1.2: the layout is the account provider's choice; ours start with a version byte.
        match sealed.split_first() {
            Some((&V0_VERSION, rest)) => self.open_v0(rest, buf),
            Some((&V1_VERSION, rest)) => self.open_v1(rest, ctx, buf),
            _ => Err(DecodeError::SealedData.into()),
        }
    }

    /// The current key first, then the others.
    fn keys(&self) -> impl Iterator<Item = &SealingKey> {
        core::iter::once(&self.current).chain(&self.others)
    }

    fn seal_with_iv_into(
        &self,
        out: &mut Vec<u8>,
        plaintext: &[u8],
        ctx: &SealContext<'_>,
        iv: &[u8; IV_LEN],
    ) -> Result<(), Error> {
        self.sealed_len(plaintext.len())?;
        let key = &self.current;
        let start = out.len();
        let sealed = match self.layout {
            Layout::DarrrrV0 => {
                out.push(V0_VERSION);
                let tag_at = out.len();
                out.extend_from_slice(&[0; TAG_LEN]);
                out.extend_from_slice(iv);
                let body = out.len();
                out.extend_from_slice(plaintext);
                seal_detached(key, iv, &[], &mut out[body..]).map(|tag| {
                    out[tag_at..tag_at + TAG_LEN].copy_from_slice(&tag);
                })
            }
            Layout::DarV1 => V1Aad::new(key.id, ctx).and_then(|aad| {
                out.push(V1_VERSION);
                out.extend_from_slice(&key.id.to_be_bytes());
                out.extend_from_slice(iv);
                let body = out.len();
                out.extend_from_slice(plaintext);
                let tag = seal_detached(key, iv, aad.as_bytes(), &mut out[body..])?;
                out.extend_from_slice(&tag);
                Ok(())
            }),
        };
        if sealed.is_err() {
            // The plaintext may be in `out` unencrypted: wipe it before giving `out` back.
            out[start..].zeroize();
            out.truncate(start);
        }
        sealed
    }

    fn open_v0(&self, rest: &[u8], buf: &mut [u8]) -> Result<usize, Error> {
        let (tag, rest) = rest
            .split_first_chunk::<TAG_LEN>()
            .ok_or(DecodeError::SealedData)?;
        let (iv, ciphertext) = rest
            .split_first_chunk::<IV_LEN>()
            .ok_or(DecodeError::SealedData)?;
        if !self.open_darrrr_v0 {
            return Err(Rejected::SealLayoutNotAccepted.into());
        }
        let buf = buf
            .get_mut(..ciphertext.len())
            .ok_or(DecodeError::SealedData)?;
        // darrrr-v0 names no key: try the current key first (the common case), then the rest.
        for key in self.keys() {
            // A failed attempt may have touched the buffer; each key starts from the ciphertext.
            buf.copy_from_slice(ciphertext);
            if open_detached(key, iv, &[], buf, tag).is_ok() {
                return Ok(ciphertext.len());
            }
        }
        Err(Rejected::SealOpenFailed.into())
    }

    fn open_v1(&self, rest: &[u8], ctx: &SealContext<'_>, buf: &mut [u8]) -> Result<usize, Error> {
        let (key_id, rest) = rest
            .split_first_chunk::<4>()
            .ok_or(DecodeError::SealedData)?;
        let (iv, rest) = rest
            .split_first_chunk::<IV_LEN>()
            .ok_or(DecodeError::SealedData)?;
        let (ciphertext, tag) = rest
            .split_last_chunk::<TAG_LEN>()
            .ok_or(DecodeError::SealedData)?;
        let key_id = u32::from_be_bytes(*key_id);
        let key = self
            .keys()
            .find(|k| k.id == key_id)
            .ok_or(Rejected::UnknownSealingKey)?;
        let aad = V1Aad::new(key_id, ctx)?;
        let buf = buf
            .get_mut(..ciphertext.len())
            .ok_or(DecodeError::SealedData)?;
        buf.copy_from_slice(ciphertext);
        open_detached(key, iv, aad.as_bytes(), buf, tag)?;
        Ok(ciphertext.len())
    }
}

/// The dar-v1 associated data: label, layout version, key id, token_id, then issuer and
/// audience each with a u16 big-endian length (the same length encoding the token uses), so
/// no two contexts share an encoding. Built on the stack when the origins are of a usual
/// length, on the heap otherwise.
#[allow(
    clippy::large_enum_variant,
    reason = "lives on the stack for one sealing call: the inline room is the point"
)]
enum V1Aad {
    Inline {
        bytes: [u8; V1_AAD_INLINE],
        len: usize,
    },
    Heap(Vec<u8>),
}

/// Room for two origins of about 230 bytes each, far more than real ones.
const V1_AAD_INLINE: usize = 512;

impl V1Aad {
    fn new(key_id: u32, ctx: &SealContext<'_>) -> Result<Self, Error> {
        let issuer_len = u16::try_from(ctx.issuer.len()).map_err(|_| Misuse::FieldTooLong {
            field: "issuer",
            len: ctx.issuer.len(),
        })?;
        let audience_len = u16::try_from(ctx.audience.len()).map_err(|_| Misuse::FieldTooLong {
            field: "audience",
            len: ctx.audience.len(),
        })?;
        let parts: [&[u8]; 8] = [
            V1_AAD_LABEL,
            &[V1_VERSION],
            &key_id.to_be_bytes(),
            ctx.token_id,
            &issuer_len.to_be_bytes(),
            ctx.issuer.as_bytes(),
            &audience_len.to_be_bytes(),
            ctx.audience.as_bytes(),
        ];
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len > V1_AAD_INLINE {
            return Ok(Self::Heap(parts.concat()));
        }
        let mut bytes = [0; V1_AAD_INLINE];
        let mut at = 0;
        for part in parts {
            bytes[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        Ok(Self::Inline { bytes, len })
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Inline { bytes, len } => &bytes[..*len],
            Self::Heap(bytes) => bytes,
        }
    }
}

fn seal_detached(
    key: &SealingKey,
    iv: &[u8; IV_LEN],
    aad: &[u8],
    buf: &mut [u8],
) -> Result<[u8; TAG_LEN], Error> {
    danger::aes256gcm_seal_detached(&key.key, iv, aad, buf)
}

fn open_detached(
    key: &SealingKey,
    iv: &[u8; IV_LEN],
    aad: &[u8],
    buf: &mut [u8],
    tag: &[u8; TAG_LEN],
) -> Result<(), Error> {
    danger::aes256gcm_open_detached(&key.key, iv, aad, buf, tag)
}

/// Sealing operations that give up a guarantee of [`Sealer::seal`]; for reproducible test
/// vectors and primitive conformance tests (Wycheproof) only.
pub(crate) mod danger {
    use super::{
        AeadInOut, Aes256Gcm, Error, IV_LEN, KEY_LEN, Key, KeyInit, Misuse, Nonce, Rejected,
        SealContext, Sealer, TAG_LEN, Tag,
    };

    /// [`Sealer::seal`] with a caller-chosen IV instead of a random one, so a test vector can
    /// be reproduced byte for byte.
    ///
    /// # Security
    ///
    /// Sealing two plaintexts under one key with the same IV reveals their XOR and lets anyone
    /// forge tags under that key (NIST SP 800-38D §8). Never use this outside test vectors.
    ///
    /// # Errors
    ///
    /// As [`Sealer::seal`], except that no randomness is drawn.
    pub fn seal_with_fixed_iv(
        sealer: &Sealer,
        plaintext: &[u8],
        ctx: &SealContext<'_>,
        iv: [u8; IV_LEN],
    ) -> Result<Vec<u8>, Error> {
        let mut out = Vec::with_capacity(sealer.sealed_len(plaintext.len())?);
        sealer.seal_with_iv_into(&mut out, plaintext, ctx, &iv)?;
        Ok(out)
    }

    /// AES-256-GCM encryption in place with a 96-bit IV, returning the 128-bit tag: the exact
    /// primitive both layouts use, exposed so conformance vectors can exercise it.
    ///
    /// # Security
    ///
    /// The caller chooses the IV; reusing one under the same key breaks GCM.
    ///
    /// # Errors
    ///
    /// [`Misuse::PayloadTooLarge`] if `buf` or `aad` exceeds GCM's limits (NIST SP 800-38D
    /// §5.2.1.1).
    pub fn aes256gcm_seal_detached(
        key: &[u8; KEY_LEN],
        iv: &[u8; IV_LEN],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LEN], Error> {
        let cipher = Aes256Gcm::new(<&Key<Aes256Gcm>>::from(key));
        let tag = cipher
            .encrypt_inout_detached(&Nonce::from(*iv), aad, buf.into())
            .map_err(|_| Misuse::PayloadTooLarge)?;
        Ok(tag.into())
    }

    /// AES-256-GCM decryption in place with a 96-bit IV and a 128-bit tag, the inverse of
    /// [`aes256gcm_seal_detached`]. `buf` holds the plaintext only if this returns `Ok`.
    ///
    /// # Errors
    ///
    /// [`Rejected::SealOpenFailed`] if the tag does not authenticate `buf` and `aad` under
    /// `key` and `iv`.
    pub fn aes256gcm_open_detached(
        key: &[u8; KEY_LEN],
        iv: &[u8; IV_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), Error> {
        let cipher = Aes256Gcm::new(<&Key<Aes256Gcm>>::from(key));
        cipher
            .decrypt_inout_detached(&Nonce::from(*iv), aad, buf.into(), &Tag::from(*tag))
            .map_err(|_| Rejected::SealOpenFailed.into())
    }
}

/// Fuzz entry point: opens arbitrary bytes with a fixed test key (never panics, never opens a
/// blob it did not make), seals the same bytes in both layouts and checks they open to
/// themselves, and checks that any bytes [`crate::Payload::from_bytes`] accepts re-encode to
/// the same bytes.
#[doc(hidden)]
pub fn fuzz_open(data: &[u8]) {
    let key = || SealingKey::new(1, [0x42; KEY_LEN]);
    let ctx = SealContext {
        token_id: &[0x5a; 16],
        issuer: "https://ap.example",
        audience: "https://rp.example",
    };
    for layout in [Layout::DarV1, Layout::DarrrrV0] {
        let Ok(sealer) = Sealer::new(vec![key()], 1, layout) else {
            return;
        };
        // Random bytes authenticate with probability 2^-128: an Ok here is a bug.
        assert!(
            sealer.open(data, &ctx).is_err(),
            "opened bytes nobody sealed"
        );
        if let Ok(sealed) = danger::seal_with_fixed_iv(&sealer, data, &ctx, [0x24; IV_LEN]) {
            let opened = sealer.open(&sealed, &ctx);
            assert!(
                matches!(opened, Ok(ref p) if p.as_slice() == data),
                "round trip failed"
            );
        }
    }
    if let Ok(payload) = crate::Payload::from_bytes(data) {
        let again = payload.to_bytes();
        assert!(
            matches!(again, Ok(ref b) if b.as_slice() == data),
            "payload not canonical"
        );
    }
}

#[cfg(test)]
mod tests;
