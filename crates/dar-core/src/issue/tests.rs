#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use time::macros::datetime;

use super::*;
use crate::testutil::{ISSUED, ap, ap_key, rp};
use crate::{Layout, MAX_TOKEN_LEN, Misuse, Purpose, SealingKey, Token, TokenView, VerifyingKeys};

/// A generator that repeats one byte: two runs draw the same IV.
struct Repeat(u8);

impl rand_core::TryRng for Repeat {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(u32::from_be_bytes([self.0; 4]))
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(u64::from_be_bytes([self.0; 8]))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        dst.fill(self.0);
        Ok(())
    }
}

impl TryCryptoRng for Repeat {}

fn payload(account_id: &str) -> Payload {
    Payload {
        account_id: account_id.to_owned(),
        created_at: ISSUED.unix_timestamp(),
        secret: [0x5e; 32],
        purpose: Purpose::AccountRecovery,
    }
}

fn sealer(layout: Layout) -> Sealer {
    Sealer::new(vec![SealingKey::new(3, [0x42; 32])], 3, layout).unwrap()
}

fn params<'a>(key: &'a SigningKey, issuer: &'a Origin, audience: &'a Origin) -> Issue<'a> {
    Issue {
        key,
        token_id: TokenId::new([0x11; 16]),
        options: Options::STATUS_REQUESTED | Options::LOW_FRICTION,
        issuer,
        audience,
        issued: ISSUED,
        max_size: MAX_TOKEN_LEN,
    }
}

#[test]
fn is_byte_for_byte_the_token_built_field_by_field() {
    let (key, ap, rp) = (ap_key(), ap(), rp());
    for layout in [Layout::DarV1, Layout::DarrrrV0] {
        let sealer = sealer(layout);
        let payload = payload("user-4711");
        let issued = issue(params(&key, &ap, &rp), &payload, &sealer, &mut Repeat(9)).unwrap();

        let token_id = TokenId::new([0x11; 16]);
        let ctx = SealContext {
            token_id: token_id.as_bytes(),
            issuer: ap.as_str(),
            audience: rp.as_str(),
        };
        let sealed = sealer
            .seal(&payload.to_bytes().unwrap(), &ctx, &mut Repeat(9))
            .unwrap();
        let by_fields = Token::recovery(
            token_id,
            Options::STATUS_REQUESTED | Options::LOW_FRICTION,
            ap.clone(),
            rp.clone(),
            ISSUED,
            sealed,
        )
        .sign(&key, MAX_TOKEN_LEN)
        .unwrap();
        assert_eq!(issued, by_fields, "{layout}");
    }
}

#[test]
fn the_payload_opens_for_the_token_it_was_issued_in() {
    let (key, ap, rp) = (ap_key(), ap(), rp());
    let sealer = sealer(Layout::DarV1);
    let payload = payload("user-4711");
    let token = issue(params(&key, &ap, &rp), &payload, &sealer, &mut Repeat(1)).unwrap();
    let view = TokenView::decode(token.as_bytes()).unwrap();
    assert!(VerifyingKeys::from(key.verifying_key()).verify(view.signed_bytes(), view.signature()));
    assert_eq!(view.issued_time_raw(), "2026-11-22T15:31:18Z");
    assert_eq!(
        sealer
            .open_payload(view.data(), &view.seal_context())
            .unwrap(),
        payload
    );
}

#[test]
fn issued_time_is_whole_seconds_in_utc() {
    let (key, ap, rp) = (ap_key(), ap(), rp());
    let mut p = params(&key, &ap, &rp);
    p.issued = datetime!(2026-11-22 16:31:18.897 +01:00);
    let token = issue(p, &payload("a"), &sealer(Layout::DarV1), &mut Repeat(1)).unwrap();
    let view = TokenView::decode(token.as_bytes()).unwrap();
    assert_eq!(view.issued_time_raw(), "2026-11-22T15:31:18Z");
}

#[test]
fn refuses_a_payload_that_cannot_be_sealed() {
    let (key, ap, rp) = (ap_key(), ap(), rp());
    let too_long = "x".repeat(Payload::MAX_ENCODED_LEN);
    let error = issue(
        params(&key, &ap, &rp),
        &payload(&too_long),
        &sealer(Layout::DarV1),
        &mut Repeat(1),
    )
    .unwrap_err();
    assert_eq!(error, Error::Misuse(Misuse::PayloadTooLarge));
}

#[test]
fn refuses_a_token_over_the_recovery_providers_size() {
    let (key, ap, rp) = (ap_key(), ap(), rp());
    let mut p = params(&key, &ap, &rp);
    p.max_size = 100;
    let error = issue(p, &payload("a"), &sealer(Layout::DarV1), &mut Repeat(1)).unwrap_err();
    assert!(
        matches!(error, Error::Misuse(Misuse::TokenTooLarge { max: 100, .. })),
        "{error:?}"
    );
}
