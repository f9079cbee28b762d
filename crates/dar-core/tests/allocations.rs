//! Issue 7: "nothing on the hot path allocates more than the output it returns". Each protocol
//! operation, counted with a global counting allocator on this thread (deterministic: a count,
//! not a time), makes at most the allocations that hold what it returns.
//!
//! The counter sees Rust's heap only; aws-lc's own C allocations inside a verification are not
//! counted (see docs/performance.md). Signing here is the default backend's (RustCrypto, RFC
//! 6979), which allocates nothing; the aws-lc randomized signer returns each signature in a
//! heap buffer of its own, one more allocation per signature.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dar_core::{
    Countersign, CountersignedToken, Freshness, Issue, Layout, MAX_TOKEN_LEN, Options, Origin,
    Payload, Purpose, RecoveryToken, ReturnCheck, SaveCheck, SavedCheck, Sealer, SealingKey,
    SigningKey, TokenId, VerifyingKeys, countersign, issue,
};
use time::macros::datetime;

struct Fixture {
    ap: Origin,
    rp: Origin,
    ap_key: SigningKey,
    rp_key: SigningKey,
    ap_keys: VerifyingKeys,
    rp_keys: VerifyingKeys,
    sealer: Sealer,
    payload: Payload,
}

/// A counter-based generator: drawing an IV allocates nothing and is repeatable.
struct Counter(u8);

impl rand_core::TryRng for Counter {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        self.0 = self.0.wrapping_add(1);
        Ok(u32::from(self.0))
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        self.0 = self.0.wrapping_add(1);
        Ok(u64::from(self.0))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        self.0 = self.0.wrapping_add(1);
        dst.fill(self.0);
        Ok(())
    }
}

impl rand_core::TryCryptoRng for Counter {}

fn fixture() -> Fixture {
    let ap_key = SigningKey::from_scalar_bytes(&[0x1a; 32]).unwrap();
    let rp_key = SigningKey::from_scalar_bytes(&[0xc8; 32]).unwrap();
    Fixture {
        ap: Origin::parse("https://ap.example.com").unwrap(),
        rp: Origin::parse("https://rp.example.net").unwrap(),
        ap_keys: VerifyingKeys::from(ap_key.verifying_key()),
        rp_keys: VerifyingKeys::from(rp_key.verifying_key()),
        ap_key,
        rp_key,
        sealer: Sealer::new(vec![SealingKey::new(1, [0x42; 32])], 1, Layout::DarV1).unwrap(),
        payload: Payload {
            account_id: "user-4711".into(),
            created_at: 1_795_000_000,
            secret: [7; 32],
            purpose: Purpose::AccountRecovery,
        },
    }
}

fn issued(f: &Fixture) -> Vec<u8> {
    let params = Issue {
        key: &f.ap_key,
        token_id: TokenId::new([0x11; 16]),
        options: Options::STATUS_REQUESTED,
        issuer: &f.ap,
        audience: &f.rp,
        issued: datetime!(2026-11-22 15:31:18 UTC),
        max_size: MAX_TOKEN_LEN,
    };
    issue(params, &f.payload, &f.sealer, &mut Counter(0))
        .unwrap()
        .into_bytes()
}

fn countersigned(f: &Fixture, token: &[u8]) -> Vec<u8> {
    let check = SavedCheck {
        issuer: &f.ap,
        issuer_keys: &f.ap_keys,
        authoritative: std::slice::from_ref(&f.rp),
    };
    let signer = f.ap_key.verifying_key().key_id();
    let verified = RecoveryToken::decode(token)
        .unwrap()
        .verify_saved_signed_by(&check, &signer)
        .unwrap();
    let params = Countersign {
        key: &f.rp_key,
        token_id: TokenId::new([0x22; 16]),
        issued: datetime!(2026-11-22 15:31:30 UTC),
        binding: Vec::new(),
        low_friction: false,
        max_size: MAX_TOKEN_LEN,
    };
    countersign(&verified, params).unwrap().into_bytes()
}

/// Runs `op` once to warm up (lazy statics, a verifying key's parsed form), then counts one run.
fn count<T>(mut op: impl FnMut() -> T) -> (u64, T) {
    drop(op());
    let mut out = None;
    let info = allocation_counter::measure(|| out = Some(op()));
    (info.count_total, out.unwrap())
}

#[test]
fn issue_allocates_only_the_token() {
    let f = fixture();
    let (allocations, token) = count(|| issued(&f));
    assert_eq!(allocations, 1, "issue: {allocations} allocations");
    assert!(!token.is_empty());
}

#[test]
fn countersign_allocates_only_the_countersigned_token() {
    let f = fixture();
    let token = issued(&f);
    let (allocations, outer) = count(|| countersigned(&f, &token));
    assert_eq!(allocations, 1, "countersign: {allocations} allocations");
    assert!(outer.len() > token.len());
}

#[test]
fn rp_validate_allocates_nothing() {
    let f = fixture();
    let token = issued(&f);
    let check = SaveCheck {
        issuer: &f.ap,
        issuer_keys: &f.ap_keys,
        authoritative: std::slice::from_ref(&f.rp),
        freshness: Freshness::DEFAULT,
        binding: None,
    };
    let now = datetime!(2026-11-22 15:31:20 UTC);
    let (allocations, id) = count(|| {
        *RecoveryToken::decode(&token)
            .unwrap()
            .verify_for_save(&check, now)
            .unwrap()
            .view()
            .token_id()
            .as_bytes()
    });
    assert_eq!(allocations, 0, "rp_validate: {allocations} allocations");
    assert_eq!(id, [0x11; 16]);
}

#[test]
fn ap_validate_allocates_only_the_payloads_account_id() {
    let f = fixture();
    let outer = countersigned(&f, &issued(&f));
    let check = ReturnCheck {
        account_provider: &f.ap,
        own_keys: &f.ap_keys,
        recovery_provider: &f.rp,
        countersign_keys: &f.rp_keys,
        freshness: Freshness::DEFAULT,
        binding: None,
    };
    let now = datetime!(2026-11-22 15:31:35 UTC);
    let (allocations, payload) = count(|| {
        CountersignedToken::decode(&outer)
            .unwrap()
            .verify_return(&check, now)
            .unwrap()
            .open_payload(&f.sealer)
            .unwrap()
    });
    assert_eq!(allocations, 1, "ap_validate: {allocations} allocations");
    assert_eq!(payload, f.payload);
}
