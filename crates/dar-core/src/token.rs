//! Recovery tokens (§4.1) and countersigned recovery tokens (§4.2).
//!
//! Three kinds of value, so that an unchecked token cannot reach code that needs a checked one:
//!
//! - [`TokenView`], [`RecoveryToken`] and [`CountersignedToken`]: borrowed, zero-copy views of
//!   decoded bytes. Decoding checks structure only (version, type, options, lengths, canonical
//!   origins, issued_time, strict DER signature); nothing about them is trusted yet.
//! - [`VerifiedRecoveryToken`](crate::VerifiedRecoveryToken) and
//!   [`VerifiedCountersignedToken`](crate::VerifiedCountersignedToken): built only by the
//!   verification pipelines in [`crate::verify`].
//! - [`Token`]: an owned token for building and signing, and [`EncodedToken`], its signed bytes.

mod codec;

use core::fmt;

use base64::Engine as _;
use time::OffsetDateTime;

use crate::error::{DecodeError, Error, Misuse, Rejected};
use crate::issued_time;
use crate::keys::SigningKey;
use crate::origin::Origin;
use crate::sealing::SealContext;
use crate::signature::Signature;

pub(crate) use codec::{Internals, encode_internals_with};
pub use codec::{MAX_TOKEN_LEN, decode_base64};

/// The only protocol version (§4.1.1 version).
pub const VERSION: u8 = 0;

/// A 16-byte token identifier (§4.1.1 token_id), shown as lower-case hex.
///
/// ```
/// use dar_core::TokenId;
/// let id: TokenId = "000102030405060708090a0b0c0d0e0f".parse()?;
/// assert_eq!(id.to_string(), "000102030405060708090a0b0c0d0e0f");
/// # Ok::<(), dar_core::DecodeError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenId([u8; 16]);

impl TokenId {
    /// Wraps 16 bytes.
    pub const fn new(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// A fresh identifier with 128 bits from `rng` (§4.1.1 asks for at least 96).
    ///
    /// # Errors
    ///
    /// [`Misuse::Rng`] if the randomness source fails.
    pub fn generate<R: rand_core::TryCryptoRng + ?Sized>(rng: &mut R) -> Result<Self, Misuse> {
        let mut bytes = [0u8; 16];
        rng.try_fill_bytes(&mut bytes).map_err(|_| Misuse::Rng)?;
        Ok(Self(bytes))
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Parses 32 hex digits (either case).
    ///
    /// # Errors
    ///
    /// [`DecodeError::Truncated`] with field `token_id` when the text is not 32 hex digits.
    pub fn from_hex(text: &str) -> Result<Self, DecodeError> {
        let mut out = [0u8; 16];
        hex::decode_to_slice(text, &mut out)
            .map_err(|_| DecodeError::Truncated { field: "token_id" })?;
        Ok(Self(out))
    }
}

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

/// Writes up to 32 bytes as lower-case hex in one write: the stores bind ids as text on every
/// recovery, where a formatted write per byte showed in the server's profile (docs/load.md).
pub(crate) fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    let mut buffer = [0u8; 64];
    let text = buffer.get_mut(..bytes.len() * 2).ok_or(fmt::Error)?;
    hex::encode_to_slice(bytes, text).map_err(|_| fmt::Error)?;
    f.write_str(core::str::from_utf8(text).map_err(|_| fmt::Error)?)
}

impl fmt::Debug for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenId({self})")
    }
}

impl core::str::FromStr for TokenId {
    type Err = DecodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_hex(s)
    }
}

/// The options byte (§4.1.1 options).
///
/// ```
/// use dar_core::Options;
/// let o = Options::STATUS_REQUESTED | Options::LOW_FRICTION;
/// assert_eq!(o.bits(), 0x03);
/// assert!(Options::from_bits(0x04).is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Options(u8);

impl Options {
    /// No option set.
    pub const NONE: Self = Self(0);
    /// 0x01: the account provider asks for status callbacks (§3.6.1). Never on a countersigned
    /// token.
    pub const STATUS_REQUESTED: Self = Self(0x01);
    /// 0x02: low friction requested (§6.4).
    pub const LOW_FRICTION: Self = Self(0x02);
    const KNOWN: u8 = 0x03;

    /// Parses an options byte, refusing reserved bits (0x04..0x80).
    ///
    /// # Errors
    ///
    /// [`DecodeError::ReservedOptions`] with the offending bits.
    pub const fn from_bits(bits: u8) -> Result<Self, DecodeError> {
        if bits & !Self::KNOWN != 0 {
            return Err(DecodeError::ReservedOptions(bits & !Self::KNOWN));
        }
        Ok(Self(bits))
    }

    /// The byte.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Whether status callbacks are requested (0x01).
    pub const fn status_requested(self) -> bool {
        self.0 & Self::STATUS_REQUESTED.0 != 0
    }

    /// Whether low friction is requested or reported (0x02).
    pub const fn low_friction(self) -> bool {
        self.0 & Self::LOW_FRICTION.0 != 0
    }
}

impl core::ops::BitOr for Options {
    type Output = Self;

    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Options({:#04x})", self.0)
    }
}

/// The type byte (§4.1.1, §4.2.1 type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenType {
    /// 0: a recovery token, issued and signed by an account provider.
    Recovery,
    /// 1: a countersigned recovery token, issued and signed by a recovery provider.
    Countersigned,
}

impl TokenType {
    /// The wire value.
    pub const fn as_u8(self) -> u8 {
        match self {
            Self::Recovery => 0,
            Self::Countersigned => 1,
        }
    }

    /// The type for a wire value.
    ///
    /// # Errors
    ///
    /// [`DecodeError::UnknownType`].
    pub const fn from_u8(v: u8) -> Result<Self, DecodeError> {
        match v {
            0 => Ok(Self::Recovery),
            1 => Ok(Self::Countersigned),
            other => Err(DecodeError::UnknownType(other)),
        }
    }
}

/// A structurally valid token of either type, borrowing the bytes it was decoded from.
///
/// Nothing about it is trusted: its signature has not been checked.
#[derive(Clone)]
pub struct TokenView<'a> {
    signed: &'a [u8],
    token_type: TokenType,
    token_id: TokenId,
    options: Options,
    issuer: &'a str,
    audience: &'a str,
    issued_time_raw: &'a str,
    issued_at: OffsetDateTime,
    data: &'a [u8],
    binding: &'a [u8],
    signature: Signature,
    signature_bytes: &'a [u8],
}

impl<'a> TokenView<'a> {
    /// Decodes token bytes (after base64) of either type.
    ///
    /// # Errors
    ///
    /// A [`DecodeError`] naming the first field that does not parse.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        codec::decode(bytes)
    }

    /// The bytes the signature covers (`token_internals`, §4.1.3).
    pub fn signed_bytes(&self) -> &'a [u8] {
        self.signed
    }

    /// The type.
    pub fn token_type(&self) -> TokenType {
        self.token_type
    }

    /// The token id.
    pub fn token_id(&self) -> TokenId {
        self.token_id
    }

    /// The options.
    pub fn options(&self) -> Options {
        self.options
    }

    /// The issuer, a canonical origin.
    pub fn issuer(&self) -> &'a str {
        self.issuer
    }

    /// The audience, a canonical origin.
    pub fn audience(&self) -> &'a str {
        self.audience
    }

    /// issued_time exactly as it is on the wire.
    pub fn issued_time_raw(&self) -> &'a str {
        self.issued_time_raw
    }

    /// issued_time as a UTC instant.
    pub fn issued_at(&self) -> OffsetDateTime {
        self.issued_at
    }

    /// The opaque data (sealed by the account provider; for a countersigned token, the inner
    /// recovery token's bytes).
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// The token binding (empty when none).
    pub fn binding(&self) -> &'a [u8] {
        self.binding
    }

    /// What sealed data in this token is bound to (§4.1.2; see [`crate::Sealer`]): its id,
    /// issuer and audience.
    pub fn seal_context(&self) -> SealContext<'_> {
        SealContext {
            token_id: self.token_id.as_bytes(),
            issuer: self.issuer,
            audience: self.audience,
        }
    }

    /// The parsed signature.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The signature bytes as on the wire (strict DER).
    pub fn signature_bytes(&self) -> &'a [u8] {
        self.signature_bytes
    }

    /// All bytes of the token: internals followed by the signature.
    pub fn len(&self) -> usize {
        self.signed.len() + self.signature_bytes.len()
    }

    /// Never true: a decoded token has at least its fixed header.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// An owned copy of the fields, for re-encoding or storage.
    ///
    /// # Errors
    ///
    /// None in practice: the origins were checked while decoding. The `Result` keeps the
    /// re-parse honest rather than unwrapping it.
    pub fn to_token(&self) -> Result<Token, DecodeError> {
        Ok(Token {
            token_type: self.token_type,
            token_id: self.token_id,
            options: self.options,
            issuer: Origin::from_wire("issuer", self.issuer.as_bytes())?,
            audience: Origin::from_wire("audience", self.audience.as_bytes())?,
            issued_time: IssuedTime {
                raw: self.issued_time_raw.to_owned(),
                at: self.issued_at,
            },
            data: self.data.to_vec(),
            binding: self.binding.to_vec(),
        })
    }
}

impl fmt::Debug for TokenView<'_> {
    // Data and binding are opaque and may be sensitive: show their lengths only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenView")
            .field("type", &self.token_type)
            .field("token_id", &self.token_id)
            .field("options", &self.options)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("issued_time", &self.issued_time_raw)
            .field("data_len", &self.data.len())
            .field("binding_len", &self.binding.len())
            .finish_non_exhaustive()
    }
}

/// A structurally valid, unverified recovery token (type 0).
#[derive(Debug, Clone)]
pub struct RecoveryToken<'a>(TokenView<'a>);

impl<'a> RecoveryToken<'a> {
    /// Decodes a recovery token (§3.1 steps 2–4).
    ///
    /// ```
    /// use dar_core::{RecoveryToken, decode_base64, MAX_TOKEN_LEN};
    /// let bytes = decode_base64("AAAAAQIDBAUGBwgJCgsMDQ4PAAAWaHR0cHM6Ly9hcC5leGFtcGxlLmNvbQAWaHR0cHM6Ly9ycC5leGFtcGxlLm5ldAAYMjAyNi0xMS0yMlQxNTozMToxOC44OTdaAAAAADBFAiEAg5E4N96zm8UkCXA3771hB8t2BWs+48LmuyQHdw8VVbgCIGfeHfIGAby/Wu2l3Gy0LYmzY3pBXe0jyOlwYq2zmeZ8", MAX_TOKEN_LEN)?;
    /// let token = RecoveryToken::decode(&bytes)?;
    /// assert_eq!(token.view().issuer(), "https://ap.example.com");
    /// # Ok::<(), dar_core::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// A [`DecodeError`], or [`Rejected::WrongType`] for a countersigned token.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, Error> {
        let view = TokenView::decode(bytes)?;
        Self::from_view(view)
    }

    /// Narrows a view to a recovery token.
    ///
    /// # Errors
    ///
    /// [`Rejected::WrongType`] for a countersigned token (§3.1 step 4).
    pub fn from_view(view: TokenView<'a>) -> Result<Self, Error> {
        match view.token_type {
            TokenType::Recovery => Ok(Self(view)),
            TokenType::Countersigned => Err(Rejected::WrongType {
                expected: 0,
                found: 1,
            }
            .into()),
        }
    }

    /// The decoded fields.
    pub fn view(&self) -> &TokenView<'a> {
        &self.0
    }
}

/// A structurally valid, unverified countersigned token (type 1) and the recovery token inside
/// it.
#[derive(Debug, Clone)]
pub struct CountersignedToken<'a> {
    outer: TokenView<'a>,
    inner: RecoveryToken<'a>,
}

impl<'a> CountersignedToken<'a> {
    /// Decodes a countersigned token and the recovery token in its data (§3.5 steps 1–4).
    ///
    /// # Errors
    ///
    /// A [`DecodeError`] for the outer token, [`Rejected::WrongType`] for a recovery token, and
    /// [`DecodeError::InnerToken`] when the data is not a well-formed recovery token.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, Error> {
        let outer = TokenView::decode(bytes)?;
        if outer.token_type != TokenType::Countersigned {
            return Err(Rejected::WrongType {
                expected: 1,
                found: 0,
            }
            .into());
        }
        // §3.5 step 4: the data must itself be a complete, well-formed type-0 token.
        let inner =
            TokenView::decode(outer.data).map_err(|e| DecodeError::InnerToken(Box::new(e)))?;
        if inner.token_type != TokenType::Recovery {
            return Err(DecodeError::InnerToken(Box::new(DecodeError::UnknownType(1))).into());
        }
        Ok(Self {
            outer,
            inner: RecoveryToken(inner),
        })
    }

    /// The countersigned token's own fields.
    pub fn outer(&self) -> &TokenView<'a> {
        &self.outer
    }

    /// The recovery token inside.
    pub fn inner(&self) -> &RecoveryToken<'a> {
        &self.inner
    }
}

/// issued_time of an owned token: the text as on the wire and the instant it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedTime {
    raw: String,
    at: OffsetDateTime,
}

impl IssuedTime {
    /// The issued_time dar emits for `t`: UTC, whole seconds.
    pub fn from_instant(t: OffsetDateTime) -> Self {
        let raw = issued_time::format(t);
        let at = issued_time::parse(raw.as_bytes()).unwrap_or(t);
        Self { raw, at }
    }

    /// Parses RFC 3339 text, keeping it as written.
    ///
    /// # Errors
    ///
    /// [`DecodeError::IssuedTime`].
    pub fn parse(raw: &str) -> Result<Self, DecodeError> {
        let at = issued_time::parse(raw.as_bytes())?;
        Ok(Self {
            raw: raw.to_owned(),
            at,
        })
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The instant.
    pub fn instant(&self) -> OffsetDateTime {
        self.at
    }
}

/// An owned token, for building and signing.
///
/// ```
/// use dar_core::{Options, Origin, SigningKey, Token, TokenId, MAX_TOKEN_LEN};
/// use time::macros::datetime;
/// let key = SigningKey::from_scalar_bytes(&[7u8; 32])?;
/// let token = Token::recovery(
///     TokenId::new([1; 16]),
///     Options::STATUS_REQUESTED,
///     Origin::parse("https://ap.example.com")?,
///     Origin::parse("https://rp.example.net")?,
///     datetime!(2026-11-22 15:31:18 UTC),
///     b"sealed payload".to_vec(),
/// );
/// let encoded = token.sign(&key, MAX_TOKEN_LEN)?;
/// assert!(encoded.to_base64().starts_with("AAAB"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// The type.
    pub token_type: TokenType,
    /// The token id.
    pub token_id: TokenId,
    /// The options.
    pub options: Options,
    /// The issuer.
    pub issuer: Origin,
    /// The audience.
    pub audience: Origin,
    /// issued_time.
    pub issued_time: IssuedTime,
    /// The opaque data.
    pub data: Vec<u8>,
    /// The token binding (empty when none).
    pub binding: Vec<u8>,
}

impl Token {
    /// A recovery token (type 0) with no binding, issued at `issued` (emitted in whole seconds).
    pub fn recovery(
        token_id: TokenId,
        options: Options,
        issuer: Origin,
        audience: Origin,
        issued: OffsetDateTime,
        data: Vec<u8>,
    ) -> Self {
        Self {
            token_type: TokenType::Recovery,
            token_id,
            options,
            issuer,
            audience,
            issued_time: IssuedTime::from_instant(issued),
            data,
            binding: Vec::new(),
        }
    }

    /// The signed part, `token_internals` (§4.1.1, §4.2.1).
    ///
    /// # Errors
    ///
    /// [`Misuse::FieldTooLong`] for a field of 65,536 bytes or more, and
    /// [`Misuse::InvalidOptions`] for status-requested on a countersigned token.
    pub fn encode_internals(&self) -> Result<Vec<u8>, Misuse> {
        codec::encode_internals(self)
    }

    /// Encodes and signs with `key` (ECDSA P-256, SHA-256, RFC 6979), refusing a result larger
    /// than `max_size` bytes.
    ///
    /// # Errors
    ///
    /// As [`Token::encode_internals`], and [`Misuse::TokenTooLarge`].
    pub fn sign(&self, key: &SigningKey, max_size: usize) -> Result<EncodedToken, Error> {
        sign_internals(self.encode_internals()?, key, max_size)
    }
}

/// Signs `token_internals` and appends the signature, refusing a token larger than
/// `max_size`.
pub(crate) fn sign_internals(
    mut bytes: Vec<u8>,
    key: &SigningKey,
    max_size: usize,
) -> Result<EncodedToken, Error> {
    let signature = key.sign(&bytes)?;
    // The DER is built on the stack, into the room the encoder reserved for it: the token is
    // the only allocation here.
    bytes.extend_from_slice(signature.as_p256().to_der().as_bytes());
    if bytes.len() > max_size {
        return Err(Misuse::TokenTooLarge {
            size: bytes.len(),
            max: max_size,
        }
        .into());
    }
    Ok(EncodedToken(bytes))
}

/// The bytes of a signed token (`token_internals || token_signature`).
#[derive(Clone, PartialEq, Eq)]
pub struct EncodedToken(Vec<u8>);

impl EncodedToken {
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The bytes, owned.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// Standard base64 with padding, as tokens travel (§4.1).
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.0)
    }
}

impl fmt::Debug for EncodedToken {
    // A token is a credential: never print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EncodedToken({} bytes)", self.0.len())
    }
}

#[cfg(test)]
mod tests;

/// Fuzzing entry point: decodes arbitrary bytes as a token; whatever is accepted must re-encode
/// to exactly the same internals.
#[doc(hidden)]
pub fn fuzz_token_decode(data: &[u8]) {
    if let Ok(view) = TokenView::decode(data) {
        let token = view.to_token();
        assert!(token.is_ok());
        if let Ok(token) = token {
            assert_eq!(
                token.encode_internals().ok().as_deref(),
                Some(view.signed_bytes())
            );
        }
    }
}

/// Fuzzing entry point: decodes arbitrary bytes as a countersigned token and runs the account
/// provider's checks with fixed keys; nothing random can pass them.
#[doc(hidden)]
pub fn fuzz_countersigned(data: &[u8]) {
    use crate::{Freshness, ReturnCheck, VerifyingKeys};
    let Ok(token) = CountersignedToken::decode(data) else {
        return;
    };
    let (Ok(ap_key), Ok(rp_key)) = (
        SigningKey::from_scalar_bytes(&[0x1a; 32]),
        SigningKey::from_scalar_bytes(&[0xc8; 32]),
    ) else {
        return;
    };
    let (Ok(ap), Ok(rp)) = (
        Origin::parse("https://ap.example.com"),
        Origin::parse("https://rp.example.net"),
    ) else {
        return;
    };
    let own = VerifyingKeys::from(ap_key.verifying_key());
    let cs = VerifyingKeys::from(rp_key.verifying_key());
    let check = ReturnCheck {
        account_provider: &ap,
        own_keys: &own,
        recovery_provider: &rp,
        countersign_keys: &cs,
        freshness: Freshness::DEFAULT,
        binding: None,
    };
    let now = token.outer().issued_at();
    let _ = token.verify_return(&check, now);
}

/// Fuzzing entry point: parses arbitrary text as an origin, both ways; a normalized origin must
/// be canonical on the wire and parse to itself.
#[doc(hidden)]
pub fn fuzz_origin(data: &[u8]) {
    if let Ok(text) = core::str::from_utf8(data)
        && let Ok(origin) = Origin::parse_development(text)
    {
        let again = Origin::from_wire("origin", origin.as_str().as_bytes());
        assert_eq!(again.as_ref().ok(), Some(&origin));
    }
    if let Ok(origin) = Origin::from_wire("origin", data) {
        assert_eq!(origin.as_str().as_bytes(), data);
    }
}
