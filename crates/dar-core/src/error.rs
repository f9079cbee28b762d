//! The one error type of `dar-core`.
//!
//! Errors are grouped by cause, as rustls groups its own: [`DecodeError`] (the bytes or text do
//! not parse), [`Rejected`] (well-formed, but a protocol rule refuses it) and [`Misuse`] (the
//! caller asked for something the protocol cannot express). Every variant names the draft
//! section and processing step it enforces, and [`Error::code`] / [`Error::step`] give the
//! stable strings the CLI and the HTTP edge print.
//!
//! No message carries a token, a key or a plaintext: crypto failures are opaque on purpose.

/// Everything that can go wrong in `dar-core`.
///
/// ```
/// use dar_core::{Error, Rejected};
/// let e = Error::from(Rejected::IssuedInFuture);
/// assert_eq!(e.code(), "issued_in_future");
/// assert_eq!(e.step(), "§3.1 step 9, §3.5 step 7");
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The input does not parse.
    #[error("malformed input: {0}")]
    Decode(#[from] DecodeError),
    /// The input parses but a protocol rule refuses it.
    #[error("rejected: {0}")]
    Rejected(#[from] Rejected),
    /// The caller asked for something the protocol cannot express.
    #[error("invalid use: {0}")]
    Misuse(#[from] Misuse),
}

/// The bytes or text do not parse.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The token text is not standard base64 (§4.1 `token = base64(...)`): another alphabet,
    /// whitespace, incomplete padding or non-zero trailing bits.
    #[error("token is not standard base64")]
    Base64,
    /// The input is longer than the caller's maximum (§2 `token-max-size`, §4.1.2).
    #[error("input of {size} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// Size of the input in bytes.
        size: usize,
        /// The maximum the caller allows.
        max: usize,
    },
    /// The input ends before the named field is complete (§4.1.1, §4.2.1).
    #[error("input ends inside the {field} field")]
    Truncated {
        /// The field being read.
        field: &'static str,
    },
    /// The version byte is not 0 (§4.1.1 version; §3.1 step 3, §3.5 step 2).
    #[error("unsupported version {0}")]
    UnsupportedVersion(u8),
    /// The type byte is neither 0 nor 1 (§4.1.1, §4.2.1 type).
    #[error("unknown token type {0}")]
    UnknownType(u8),
    /// A reserved option bit (0x04..0x80) is set (§4.1.1 options).
    #[error("reserved option bits set: {0:#04x}")]
    ReservedOptions(u8),
    /// A countersigned token sets status-requested (0x01), which only a recovery token may carry
    /// (§4.2.1 options).
    #[error("status requested is set on a countersigned token")]
    StatusRequestedOnCountersigned,
    /// An origin does not parse (§4.1.1 issuer/audience, RFC 6454).
    #[error("{field} is not a valid origin: {reason}")]
    Origin {
        /// Which field or input held the origin.
        field: &'static str,
        /// What is wrong with it.
        reason: OriginError,
    },
    /// An origin on the wire is valid but not in canonical serialized form (RFC 6454 §6.2),
    /// so the same origin would have two encodings (§4.1.1 issuer/audience).
    #[error("{field} is not in canonical serialized form")]
    NonCanonicalOrigin {
        /// Which field held the origin.
        field: &'static str,
    },
    /// issued_time is not an RFC 3339 date-time (§4.1.1 issued_time).
    #[error("issued_time is not an RFC 3339 date-time")]
    IssuedTime,
    /// The signature is not a strict DER `SEQUENCE { INTEGER r, INTEGER s }` with r and s in
    /// range (§4.1.3, §4.2.2).
    #[error("signature is not strict DER")]
    SignatureEncoding,
    /// Bytes follow the DER signature (§4.1: the token ends with the signature).
    #[error("trailing bytes after the signature")]
    TrailingData,
    /// The data of a countersigned token is not a well-formed recovery token (§3.5 step 4).
    #[error("the countersigned token's data is not a recovery token: {0}")]
    InnerToken(Box<DecodeError>),
    /// A key does not parse in the named format, or is not a P-256 key.
    #[error("key is not a valid {format}")]
    Key {
        /// The expected format (`PKCS#8`, `SEC1`, `SPKI`, ...).
        format: &'static str,
    },
    /// An SPKI names an algorithm other than id-ecPublicKey on prime256v1 (§2: keys on the
    /// secp256r1 curve).
    #[error("key algorithm is not ECDSA P-256")]
    KeyAlgorithm,
    /// The public point is not on the P-256 curve or not uncompressed (§2, X9.62).
    #[error("public key point is not a valid uncompressed P-256 point")]
    KeyPoint,
    /// Sealed data does not have the structure of a known layout (§4.1.2).
    #[error("sealed data is malformed")]
    SealedData,
    /// The opened payload does not decode (§3.5 step 13).
    #[error("opaque payload does not decode")]
    Payload,
    /// A configuration document does not parse or a field is invalid (§2).
    #[error("configuration document: {field}: {reason}")]
    Config {
        /// The document key at fault (`issuer`, `save-token`, ...), or `document`.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
}

/// Why an origin does not parse (RFC 6454, §4.1.1 issuer/audience).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OriginError {
    /// Empty input.
    #[error("empty")]
    Empty,
    /// No `scheme://` prefix, or a scheme other than https/http.
    #[error("scheme must be https")]
    Scheme,
    /// Plain http for a host that is not loopback, or without the development option.
    #[error("http is allowed only for loopback hosts in development")]
    InsecureScheme,
    /// User information (`user@`) is present.
    #[error("userinfo is not allowed")]
    Userinfo,
    /// A path, query or fragment is present.
    #[error("path, query and fragment are not allowed")]
    PathQueryFragment,
    /// The host is empty or not a valid domain name or IP literal.
    #[error("invalid host")]
    Host,
    /// The port is empty, not decimal, zero or above 65535.
    #[error("invalid port")]
    Port,
    /// The input holds characters an origin cannot (controls, spaces, non-ASCII on the wire).
    #[error("invalid character")]
    Character,
    /// The input is longer than any origin needs to be.
    #[error("too long")]
    TooLong,
}

/// Well-formed input that a protocol rule refuses.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// The token has the other type than the step expects (§3.1 step 4: type 0; §3.5 step 3:
    /// type 1).
    #[error("token type {found} where type {expected} is required")]
    WrongType {
        /// The type the step requires.
        expected: u8,
        /// The type the token has.
        found: u8,
    },
    /// The recovery token's issuer is not the expected account provider (§3.1 step 6).
    #[error("issuer is not the expected account provider")]
    IssuerMismatch,
    /// The recovery token's signature does not verify with any of the issuer's keys (§3.1
    /// step 7).
    #[error("signature does not verify")]
    SignatureInvalid,
    /// The key a saved recovery token's signature verified with when it was saved is no longer
    /// one of the issuer's published keys: the issuer retired it (§3.4 step 4, §6.8).
    #[error("the key the saved token was verified with is no longer published by its issuer")]
    SignerNotPublished,
    /// The audience is not an origin this recovery provider is authoritative for (§3.1 step 8).
    #[error("audience is not an origin this provider is authoritative for")]
    AudienceNotAuthoritative,
    /// issued_time is further in the future than the allowed skew (§3.1 step 9, §3.5 step 7).
    #[error("token is issued in the future")]
    IssuedInFuture,
    /// issued_time is older than the allowed age (§3.1 step 9, §3.5 step 7).
    #[error("token is stale")]
    Stale,
    /// The token binding differs from the expected one (§3.1 step 10, §3.5 step 8).
    #[error("token binding does not match")]
    BindingMismatch,
    /// The token carries a binding but the caller has none to check it against (§3.1 step 10,
    /// §3.5 step 8).
    #[error("token carries a binding but none is expected")]
    BindingUnexpected,
    /// The inner recovery token's signature does not verify with this account provider's keys
    /// (§3.5 step 5).
    #[error("inner token signature does not verify")]
    InnerSignatureInvalid,
    /// The inner recovery token was issued by another account provider (§3.5 step 5: the
    /// signature is checked against this provider's own keys, so the token must be its own).
    #[error("inner token was not issued by this account provider")]
    InnerIssuerNotThisProvider,
    /// The countersigned token is addressed to another account provider (§4.2.1 audience).
    #[error("countersigned token is addressed to another account provider")]
    AudienceNotThisProvider,
    /// The countersigner is not the recovery provider the inner token was addressed to (§3.5
    /// step 6).
    #[error("countersigner is not the inner token's audience")]
    CountersignerNotInnerAudience,
    /// The countersigner is not the recovery provider whose configuration was fetched (§3.5
    /// step 11).
    #[error("countersigner is not the expected recovery provider")]
    CountersignerMismatch,
    /// The countersignature does not verify with any current key of the recovery provider
    /// (§3.5 step 12).
    #[error("countersignature does not verify")]
    CountersignatureInvalid,
    /// No sealing key with the sealed data's key id is configured (§3.5 step 13).
    #[error("no sealing key with this id")]
    UnknownSealingKey,
    /// The sealed data does not open: wrong key, tampered, or bound to another token (§3.5
    /// step 13). Opaque on purpose.
    #[error("sealed data does not open")]
    SealOpenFailed,
    /// The sealed data is in the darrrr-v0 layout, which this account provider does not open:
    /// that layout binds no token, so a provider that seals in dar-v1 opens it only while
    /// migrating (§4.1.2, §6.8).
    #[error("sealed data layout is not accepted")]
    SealLayoutNotAccepted,
}

/// The caller asked for something the protocol cannot express. Never caused by a peer's input.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Misuse {
    /// A variable field would be 65,536 bytes or more, which its u16 length cannot encode
    /// (§4.1.1).
    #[error("{field} is {len} bytes; a field holds at most 65535")]
    FieldTooLong {
        /// The field.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// The encoded token would exceed the caller's maximum size (§2 `token-max-size`).
    #[error("token of {size} bytes exceeds the maximum of {max}")]
    TokenTooLarge {
        /// The encoded size.
        size: usize,
        /// The caller's maximum.
        max: usize,
    },
    /// Options that a token of this type may not carry (reserved bits, or status requested on a
    /// countersigned token) (§4.1.1, §4.2.1 options).
    #[error("options {0:#04x} are not valid for this token type")]
    InvalidOptions(u8),
    /// The randomness source failed.
    #[error("the random number generator failed")]
    Rng,
    /// Signing failed (never expected with a valid key).
    #[error("signing failed")]
    Signing,
    /// The payload to seal is larger than the sealing layout allows.
    #[error("payload too large to seal")]
    PayloadTooLarge,
    /// A freshness policy with a negative window.
    #[error("freshness windows must not be negative")]
    NegativeWindow,
    /// A sealer with no key, or whose current key id is not among its keys.
    #[error("no current sealing key")]
    NoSealingKey,
    /// Two sealing keys share an id, so a sealed blob's key id would not name one key
    /// (§4.1.2: key management is the account provider's).
    #[error("two sealing keys have the id {id}")]
    DuplicateSealingKey {
        /// The shared key id (an id, not key material).
        id: u32,
    },
}

impl Error {
    /// The stable, machine-readable code of this error (`signature_invalid`, ...).
    ///
    /// These strings are part of the CLI and HTTP contracts: they never change meaning.
    pub fn code(&self) -> &'static str {
        self.describe().0
    }

    /// The draft section and processing step this error enforces (`§3.5 step 6`).
    pub fn step(&self) -> &'static str {
        self.describe().1
    }

    fn describe(&self) -> (&'static str, &'static str) {
        match self {
            Self::Decode(e) => match e {
                DecodeError::Base64 => ("base64_invalid", "§4.1 token encoding"),
                DecodeError::TooLarge { .. } => ("token_too_large", "§2 token-max-size"),
                DecodeError::Truncated { .. } => ("truncated", "§4.1.1 token structure"),
                DecodeError::UnsupportedVersion(_) => {
                    ("unsupported_version", "§3.1 step 3, §3.5 step 2")
                }
                DecodeError::UnknownType(_) => ("unknown_type", "§4.1.1 type"),
                DecodeError::ReservedOptions(_) => ("reserved_options", "§4.1.1 options"),
                DecodeError::StatusRequestedOnCountersigned => {
                    ("status_requested_on_countersigned", "§4.2.1 options")
                }
                DecodeError::Origin { .. } => ("origin_invalid", "§4.1.1 issuer/audience"),
                DecodeError::NonCanonicalOrigin { .. } => {
                    ("origin_not_canonical", "§4.1.1 issuer/audience")
                }
                DecodeError::IssuedTime => ("issued_time_invalid", "§4.1.1 issued_time"),
                DecodeError::SignatureEncoding => ("signature_malformed", "§4.1.3 signature"),
                DecodeError::TrailingData => ("trailing_data", "§4.1.3 signature"),
                DecodeError::InnerToken(_) => ("inner_token_malformed", "§3.5 step 4"),
                DecodeError::Key { .. } => ("key_malformed", "§2 public keys"),
                DecodeError::KeyAlgorithm => ("key_algorithm_unsupported", "§2 public keys"),
                DecodeError::KeyPoint => ("key_point_invalid", "§2 public keys"),
                DecodeError::SealedData => ("sealed_data_malformed", "§4.1.2 opaque data"),
                DecodeError::Payload => ("payload_malformed", "§3.5 step 13"),
                DecodeError::Config { .. } => ("config_invalid", "§2 configuration"),
            },
            Self::Rejected(e) => match e {
                Rejected::WrongType { expected: 0, .. } => ("wrong_type", "§3.1 step 4"),
                Rejected::WrongType { .. } => ("wrong_type", "§3.5 step 3"),
                Rejected::IssuerMismatch => ("issuer_mismatch", "§3.1 step 6"),
                Rejected::SignatureInvalid => ("signature_invalid", "§3.1 step 7"),
                Rejected::SignerNotPublished => ("signer_not_published", "§3.4 step 4"),
                Rejected::AudienceNotAuthoritative => ("audience_not_authoritative", "§3.1 step 8"),
                Rejected::IssuedInFuture => ("issued_in_future", "§3.1 step 9, §3.5 step 7"),
                Rejected::Stale => ("stale", "§3.1 step 9, §3.5 step 7"),
                Rejected::BindingMismatch => ("binding_mismatch", "§3.1 step 10, §3.5 step 8"),
                Rejected::BindingUnexpected => ("binding_unexpected", "§3.1 step 10, §3.5 step 8"),
                Rejected::InnerSignatureInvalid => ("inner_signature_invalid", "§3.5 step 5"),
                Rejected::InnerIssuerNotThisProvider => {
                    ("inner_issuer_not_this_provider", "§3.5 step 5")
                }
                Rejected::AudienceNotThisProvider => {
                    ("audience_not_this_provider", "§4.2.1 audience")
                }
                Rejected::CountersignerNotInnerAudience => {
                    ("countersigner_not_inner_audience", "§3.5 step 6")
                }
                Rejected::CountersignerMismatch => ("countersigner_mismatch", "§3.5 step 11"),
                Rejected::CountersignatureInvalid => ("countersignature_invalid", "§3.5 step 12"),
                Rejected::UnknownSealingKey => ("unknown_sealing_key", "§3.5 step 13"),
                Rejected::SealOpenFailed => ("seal_open_failed", "§3.5 step 13"),
                Rejected::SealLayoutNotAccepted => {
                    ("seal_layout_not_accepted", "§4.1.2 opaque data")
                }
            },
            Self::Misuse(e) => match e {
                Misuse::FieldTooLong { .. } => ("field_too_long", "§4.1.1 field lengths"),
                Misuse::TokenTooLarge { .. } => ("token_too_large", "§2 token-max-size"),
                Misuse::InvalidOptions(_) => ("invalid_options", "§4.1.1 options"),
                Misuse::Rng => ("rng_failed", "§4.1.1 token_id"),
                Misuse::Signing => ("signing_failed", "§4.1.3 signature"),
                Misuse::PayloadTooLarge => ("payload_too_large", "§4.1.2 opaque data"),
                Misuse::NegativeWindow => ("freshness_window_negative", "§6.7 clock skew"),
                Misuse::NoSealingKey => ("no_sealing_key", "§4.1.2 opaque data"),
                Misuse::DuplicateSealingKey { .. } => {
                    ("duplicate_sealing_key", "§4.1.2 opaque data")
                }
            },
        }
    }
}

impl From<OriginError> for DecodeError {
    fn from(reason: OriginError) -> Self {
        Self::Origin {
            field: "origin",
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_snake_case_and_steps_cite_the_draft() {
        let samples: Vec<Error> = vec![
            DecodeError::Base64.into(),
            DecodeError::InnerToken(Box::new(DecodeError::TrailingData)).into(),
            Rejected::WrongType {
                expected: 1,
                found: 0,
            }
            .into(),
            Rejected::SealOpenFailed.into(),
            Misuse::FieldTooLong {
                field: "data",
                len: 65_536,
            }
            .into(),
        ];
        for e in samples {
            let snake = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_';
            assert!(e.code().chars().all(snake), "{e:?}");
            assert!(e.step().starts_with('§'), "{e:?}");
        }
    }

    #[test]
    fn wrong_type_names_the_step_of_its_pipeline() {
        let save = Error::from(Rejected::WrongType {
            expected: 0,
            found: 1,
        });
        let ret = Error::from(Rejected::WrongType {
            expected: 1,
            found: 0,
        });
        assert_eq!(save.step(), "§3.1 step 4");
        assert_eq!(ret.step(), "§3.5 step 3");
    }
}
