//! Fixed keys, origins and times shared by the unit tests.

use time::OffsetDateTime;
use time::macros::datetime;

use crate::{MAX_TOKEN_LEN, Options, Origin, SigningKey, Token, TokenId, TokenType, VerifyingKeys};

pub(crate) const NOW: OffsetDateTime = datetime!(2026-11-22 15:31:35 UTC);
pub(crate) const ISSUED: OffsetDateTime = datetime!(2026-11-22 15:31:18 UTC);

pub(crate) fn ap() -> Origin {
    Origin::parse("https://ap.example.com").unwrap()
}

pub(crate) fn rp() -> Origin {
    Origin::parse("https://rp.example.net").unwrap()
}

pub(crate) fn ap_key() -> SigningKey {
    SigningKey::from_scalar_bytes(&[0x1a; 32]).unwrap()
}

pub(crate) fn rp_key() -> SigningKey {
    SigningKey::from_scalar_bytes(&[0xc8; 32]).unwrap()
}

pub(crate) fn other_key() -> SigningKey {
    SigningKey::from_scalar_bytes(&[0x7a; 32]).unwrap()
}

pub(crate) fn keys(k: &SigningKey) -> VerifyingKeys {
    VerifyingKeys::from(k.verifying_key())
}

pub(crate) fn recovery_token() -> Token {
    Token::recovery(
        TokenId::new([0x11; 16]),
        Options::STATUS_REQUESTED,
        ap(),
        rp(),
        ISSUED,
        b"sealed".to_vec(),
    )
}

pub(crate) fn signed(token: &Token, key: &SigningKey) -> Vec<u8> {
    token.sign(key, MAX_TOKEN_LEN).unwrap().into_bytes()
}

/// A countersigned token wrapping `inner` bytes, with the usual origins, issued at ISSUED.
pub(crate) fn countersigned_over(inner: Vec<u8>) -> Token {
    Token {
        token_type: TokenType::Countersigned,
        token_id: TokenId::new([0x22; 16]),
        options: Options::NONE,
        issuer: rp(),
        audience: ap(),
        issued_time: crate::IssuedTime::from_instant(ISSUED),
        data: inner,
        binding: Vec::new(),
    }
}
