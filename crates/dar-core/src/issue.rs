//! The account provider's issuing step (§3.1 AP steps 5–6): a payload sealed for the token,
//! and the recovery token signed over it, built in one buffer.

use rand_core::TryCryptoRng;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::error::Error;
use crate::issued_time::Emitted;
use crate::keys::SigningKey;
use crate::origin::Origin;
use crate::payload::Payload;
use crate::sealing::{SealContext, Sealer};
use crate::token::{
    EncodedToken, Internals, Options, TokenId, TokenType, encode_internals_with, sign_internals,
};

/// What [`issue`] needs besides the payload: who issues, to whom, when, with which key.
#[derive(Debug, Clone, Copy)]
pub struct Issue<'a> {
    /// The account provider's signing key.
    pub key: &'a SigningKey,
    /// A fresh random id ([`TokenId::generate`]).
    pub token_id: TokenId,
    /// Status requested, low friction.
    pub options: Options,
    /// The account provider (the token's issuer).
    pub issuer: &'a Origin,
    /// The recovery provider, as its configuration names itself (§3.1 AP step 5).
    pub audience: &'a Origin,
    /// When; emitted in whole seconds, UTC.
    pub issued: OffsetDateTime,
    /// The largest token the recovery provider takes (its `token-max-size`, at most
    /// [`crate::MAX_TOKEN_LEN`]).
    pub max_size: usize,
}

/// Seals `payload` for the token (§4.1.2, bound to its id, issuer and audience) with a fresh IV
/// from `rng` and signs the recovery token that carries it.
///
/// The payload is encoded on the stack and sealed in place inside the token's own buffer, so
/// the returned token is the one allocation (with the default signature backend; aws-lc-rs
/// returns each signature in a heap buffer of its own).
///
/// ```
/// use dar_core::*;
/// use time::macros::datetime;
/// let key = SigningKey::from_scalar_bytes(&[7u8; 32])?;
/// let sealer = Sealer::new(vec![SealingKey::new(1, [0x42; 32])], 1, Layout::DarV1)?;
/// let (ap, rp) = (Origin::parse("https://ap.example.com")?, Origin::parse("https://rp.example.net")?);
/// let payload = Payload {
///     account_id: "user-4711".into(),
///     created_at: 1_795_000_000,
///     secret: [7; 32],
///     purpose: Purpose::AccountRecovery,
/// };
/// let params = Issue {
///     key: &key,
///     token_id: TokenId::new([1; 16]),
///     options: Options::STATUS_REQUESTED,
///     issuer: &ap,
///     audience: &rp,
///     issued: datetime!(2026-11-22 15:31:18 UTC),
///     max_size: MAX_TOKEN_LEN,
/// };
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
/// let token = issue(params, &payload, &sealer, &mut OsRng)?;
/// let view = TokenView::decode(token.as_bytes())?;
/// assert_eq!(view.audience(), "https://rp.example.net");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// - [`crate::Misuse::PayloadTooLarge`] if the payload does not fit.
/// - [`crate::Misuse::Rng`] if `rng` fails.
/// - [`crate::Misuse::FieldTooLong`] and [`crate::Misuse::TokenTooLarge`] as
///   [`crate::Token::sign`].
pub fn issue<R: TryCryptoRng + ?Sized>(
    params: Issue<'_>,
    payload: &Payload,
    sealer: &Sealer,
    rng: &mut R,
) -> Result<EncodedToken, Error> {
    let mut buf = Zeroizing::new([0u8; Payload::MAX_ENCODED_LEN]);
    let len = payload.encode_into(&mut buf[..])?;
    let plaintext = buf.get(..len).unwrap_or_default();
    let ctx = SealContext {
        token_id: params.token_id.as_bytes(),
        issuer: params.issuer.as_str(),
        audience: params.audience.as_str(),
    };
    let issued = Emitted::new(params.issued);
    let fields = Internals {
        token_type: TokenType::Recovery,
        token_id: &params.token_id,
        options: params.options,
        issuer: params.issuer.as_str(),
        audience: params.audience.as_str(),
        issued_time: issued.as_str(),
        binding: &[],
    };
    let bytes = encode_internals_with(&fields, sealer.sealed_len(plaintext.len())?, |out| {
        sealer.seal_into(out, plaintext, &ctx, rng)
    })?;
    sign_internals(bytes, params.key, params.max_size)
}

#[cfg(test)]
mod tests;
