//! The token byte format (§4.1.1, §4.2.1) and its base64 text form (§4.1).
//!
//! ```text
//! version u8 | type u8 | token_id [16] | options u8 |
//! issuer_len u16 | issuer | audience_len u16 | audience | issued_time_len u16 | issued_time |
//! data_len u16 | data | binding_len u16 | binding | DER ECDSA signature (to the end)
//! ```
//!
//! Lengths are big-endian. Every length is checked against what remains before it is used, so
//! hostile input never causes an allocation or an out-of-bounds read.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use super::{Options, Token, TokenId, TokenType, TokenView, VERSION};
use crate::error::{DecodeError, Misuse};
use crate::issued_time;
use crate::origin;
use crate::signature::Signature;

/// The largest token the format can express: the fixed header, five full u16 fields and the
/// longest DER P-256 signature (72 bytes).
pub const MAX_TOKEN_LEN: usize = 1 + 1 + 16 + 1 + 5 * (2 + u16::MAX as usize) + 72;

/// Standard alphabet; padding optional but, when present, complete; non-zero trailing bits
/// refused so that one byte string has one accepted text. No whitespace, no URL-safe alphabet.
const TOKEN_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(false),
);

/// Decodes a token's text form: standard base64 (RFC 4648 §4), padded or not.
///
/// The URL-safe alphabet, whitespace, and non-canonical trailing bits are refused. Output is
/// refused before decoding when the text could hold more than `max_len` bytes.
///
/// ```
/// use dar_core::decode_base64;
/// assert_eq!(decode_base64("AAE=", 16)?, vec![0, 1]);
/// assert_eq!(decode_base64("AAE", 16)?, vec![0, 1]);
/// assert!(decode_base64("AA E=", 16).is_err());
/// # Ok::<(), dar_core::DecodeError>(())
/// ```
///
/// # Errors
///
/// [`DecodeError::TooLarge`] or [`DecodeError::Base64`].
pub fn decode_base64(text: &str, max_len: usize) -> Result<Vec<u8>, DecodeError> {
    let max_text = max_len.div_ceil(3).saturating_mul(4);
    if text.len() > max_text {
        return Err(DecodeError::TooLarge {
            size: text.len() / 4 * 3,
            max: max_len,
        });
    }
    // Padding is optional, but when present it must be complete: `XY=` for `XY==` is refused.
    if text.contains('=') && !text.len().is_multiple_of(4) {
        return Err(DecodeError::Base64);
    }
    let bytes = TOKEN_BASE64.decode(text).map_err(|_| DecodeError::Base64)?;
    if bytes.len() > max_len {
        return Err(DecodeError::TooLarge {
            size: bytes.len(),
            max: max_len,
        });
    }
    Ok(bytes)
}

pub(super) fn decode(bytes: &[u8]) -> Result<TokenView<'_>, DecodeError> {
    let mut r = Reader { rest: bytes };
    let version = r.u8("version")?;
    if version != VERSION {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    let token_type = TokenType::from_u8(r.u8("type")?)?;
    let token_id = TokenId::new(r.array("token_id")?);
    let options = Options::from_bits(r.u8("options")?)?;
    // §4.2.1: status callbacks are requested by the account provider, never by a countersigner.
    if token_type == TokenType::Countersigned && options.status_requested() {
        return Err(DecodeError::StatusRequestedOnCountersigned);
    }
    let issuer = r.field("issuer")?;
    origin::check_wire("issuer", issuer)?;
    let audience = r.field("audience")?;
    origin::check_wire("audience", audience)?;
    let issued_raw = r.field("issued_time")?;
    let issued_at = issued_time::parse(issued_raw)?;
    let data = r.field("data")?;
    let binding = r.field("binding")?;
    let signed_len = bytes.len() - r.rest.len();
    let (signed, signature_bytes) = bytes
        .split_at_checked(signed_len)
        .ok_or(DecodeError::Truncated { field: "signature" })?;
    if signature_bytes.is_empty() {
        return Err(DecodeError::Truncated { field: "signature" });
    }
    let signature = Signature::from_der(signature_bytes).map_err(|e| match e {
        crate::Error::Decode(d) => d,
        _ => DecodeError::SignatureEncoding,
    })?;
    Ok(TokenView {
        signed,
        token_type,
        token_id,
        options,
        // check_wire proved these are ASCII.
        issuer: core::str::from_utf8(issuer)
            .map_err(|_| DecodeError::Truncated { field: "issuer" })?,
        audience: core::str::from_utf8(audience)
            .map_err(|_| DecodeError::Truncated { field: "audience" })?,
        issued_time_raw: core::str::from_utf8(issued_raw).map_err(|_| DecodeError::IssuedTime)?,
        issued_at,
        data,
        binding,
        signature,
        signature_bytes,
    })
}

/// The fields of `token_internals`, borrowed. `data` is not among them: the caller writes it
/// into the token's buffer (a copy, the inner token, or sealed in place).
pub(crate) struct Internals<'a> {
    pub(crate) token_type: TokenType,
    pub(crate) token_id: &'a TokenId,
    pub(crate) options: Options,
    pub(crate) issuer: &'a str,
    pub(crate) audience: &'a str,
    pub(crate) issued_time: &'a str,
    pub(crate) binding: &'a [u8],
}

pub(super) fn encode_internals(token: &Token) -> Result<Vec<u8>, Misuse> {
    let issued_time = token.issued_time.as_str();
    let fields = Internals {
        token_type: token.token_type,
        token_id: &token.token_id,
        options: token.options,
        issuer: token.issuer.as_str(),
        audience: token.audience.as_str(),
        issued_time,
        binding: &token.binding,
    };
    encode_internals_with(&fields, token.data.len(), |out| {
        out.extend_from_slice(&token.data);
        Ok(())
    })
}

/// Encodes `token_internals` into one buffer sized for the whole signed token (the longest DER
/// signature included), so signing appends without reallocating. `write_data` must append
/// exactly `data_len` bytes.
pub(crate) fn encode_internals_with<E: From<Misuse>>(
    fields: &Internals<'_>,
    data_len: usize,
    write_data: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
) -> Result<Vec<u8>, E> {
    let bits = fields.options.bits();
    if fields.token_type == TokenType::Countersigned && fields.options.status_requested() {
        return Err(Misuse::InvalidOptions(bits).into());
    }
    let lengths: [(&'static str, usize); 5] = [
        ("issuer", fields.issuer.len()),
        ("audience", fields.audience.len()),
        ("issued_time", fields.issued_time.len()),
        ("data", data_len),
        ("binding", fields.binding.len()),
    ];
    let mut len = 1 + 1 + 16 + 1;
    let mut prefixes = [[0u8; 2]; 5];
    for ((field, value_len), prefix) in lengths.into_iter().zip(&mut prefixes) {
        let n = u16::try_from(value_len).map_err(|_| Misuse::FieldTooLong {
            field,
            len: value_len,
        })?;
        *prefix = n.to_be_bytes();
        len += 2 + value_len;
    }
    let [
        issuer_len,
        audience_len,
        issued_len,
        data_prefix,
        binding_len,
    ] = prefixes;
    let mut out = Vec::with_capacity(len + 72);
    out.push(VERSION);
    out.push(fields.token_type.as_u8());
    out.extend_from_slice(fields.token_id.as_bytes());
    out.push(bits);
    for (prefix, value) in [
        (issuer_len, fields.issuer.as_bytes()),
        (audience_len, fields.audience.as_bytes()),
        (issued_len, fields.issued_time.as_bytes()),
    ] {
        out.extend_from_slice(&prefix);
        out.extend_from_slice(value);
    }
    out.extend_from_slice(&data_prefix);
    let data_start = out.len();
    write_data(&mut out)?;
    let written = out.len() - data_start;
    if written != data_len {
        return Err(Misuse::FieldTooLong {
            field: "data",
            len: written,
        }
        .into());
    }
    out.extend_from_slice(&binding_len);
    out.extend_from_slice(fields.binding);
    Ok(out)
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let (head, tail) = self
            .rest
            .split_at_checked(n)
            .ok_or(DecodeError::Truncated { field })?;
        self.rest = tail;
        Ok(head)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        let (&b, tail) = self
            .rest
            .split_first()
            .ok_or(DecodeError::Truncated { field })?;
        self.rest = tail;
        Ok(b)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N, field)?;
        bytes
            .try_into()
            .map_err(|_| DecodeError::Truncated { field })
    }

    fn field(&mut self, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let len = u16::from_be_bytes(self.array(field)?);
        self.take(usize::from(len), field)
    }
}
