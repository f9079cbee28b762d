#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;

use super::*;

fn sample() -> Payload {
    Payload {
        account_id: "user-42".to_owned(),
        created_at: 1_795_000_000,
        secret: [0x5e; 32],
        purpose: Purpose::AccountRecovery,
    }
}

/// `sample()` changed by `edit`: struct update syntax cannot move out of a type with `Drop`.
fn sample_with(edit: impl FnOnce(&mut Payload)) -> Payload {
    let mut p = sample();
    edit(&mut p);
    p
}

fn malformed() -> Result<Payload, Error> {
    Err(DecodeError::Payload.into())
}

/// The bytes spec/sealing.md describes, written out by hand.
fn by_hand(purpose: u8, created_at: i64, secret: [u8; 32], account_id: &[u8]) -> Vec<u8> {
    let mut out = vec![0x01, purpose];
    out.extend_from_slice(&created_at.to_be_bytes());
    out.extend_from_slice(&secret);
    out.extend_from_slice(&u64::try_from(account_id.len()).unwrap().to_be_bytes());
    out.extend_from_slice(account_id);
    out
}

#[test]
fn encodes_exactly_the_documented_bytes() {
    let p = sample();
    assert_eq!(
        p.to_bytes().unwrap().as_slice(),
        by_hand(0, 1_795_000_000, [0x5e; 32], b"user-42")
    );
    let k = sample_with(|p| {
        p.purpose = Purpose::KeyRecovery;
        p.created_at = -2;
    });
    assert_eq!(
        k.to_bytes().unwrap().as_slice(),
        by_hand(1, -2, [0x5e; 32], b"user-42")
    );
}

#[test]
fn known_answer_is_stable() {
    let p = Payload {
        account_id: "a".to_owned(),
        created_at: 0x0102_0304_0506_0708,
        secret: [0xab; 32],
        purpose: Purpose::KeyRecovery,
    };
    assert_eq!(
        hex::encode(p.to_bytes().unwrap().as_slice()),
        "0101\
         0102030405060708\
         abababababababababababababababababababababababababababababababab\
         0000000000000001\
         61"
    );
}

#[test]
fn round_trips_both_purposes_and_an_empty_account_id() {
    for p in [
        sample(),
        sample_with(|p| p.purpose = Purpose::KeyRecovery),
        sample_with(|p| {
            p.account_id = String::new();
            p.created_at = i64::MIN;
        }),
        sample_with(|p| {
            p.account_id = "ü-ñ-😀".to_owned();
            p.created_at = i64::MAX;
        }),
    ] {
        let bytes = p.to_bytes().unwrap();
        assert_eq!(Payload::from_bytes(&bytes).unwrap(), p);
    }
}

#[test]
fn round_trips_the_longest_account_id() {
    let p = sample_with(|p| p.account_id = "x".repeat(4046));
    let bytes = p.to_bytes().unwrap();
    assert_eq!(bytes.len(), Payload::MAX_ENCODED_LEN);
    assert_eq!(Payload::from_bytes(&bytes).unwrap(), p);
}

#[test]
fn refuses_to_encode_an_account_id_over_the_limit() {
    let p = sample_with(|p| p.account_id = "x".repeat(4047));
    assert_eq!(
        p.to_bytes().map(|_| ()),
        Err(Error::from(Misuse::PayloadTooLarge))
    );
}

#[test]
fn rejects_trailing_bytes() {
    let mut bytes = sample().to_bytes().unwrap().to_vec();
    bytes.push(0);
    assert_eq!(Payload::from_bytes(&bytes), malformed());
}

#[test]
fn rejects_input_over_the_size_limit() {
    let mut bytes = by_hand(0, 0, [0; 32], &vec![b'x'; 4047]);
    assert_eq!(bytes.len(), 4097);
    assert_eq!(Payload::from_bytes(&bytes), malformed());
    bytes.truncate(4096);
    // Same prefix, now one byte short of its declared length.
    assert_eq!(Payload::from_bytes(&bytes), malformed());
}

#[test]
fn rejects_a_length_prefix_beyond_the_input_without_allocating_it() {
    for claimed in [6u64, 4096, 1 << 32, u64::MAX] {
        let mut bytes = by_hand(0, 0, [0; 32], b"short");
        let at = 1 + 1 + 8 + 32;
        bytes[at..at + 8].copy_from_slice(&claimed.to_be_bytes());
        assert_eq!(
            Payload::from_bytes(&bytes),
            malformed(),
            "claimed {claimed}"
        );
    }
}

#[test]
fn rejects_truncated_input_at_every_length() {
    let bytes = sample().to_bytes().unwrap();
    for len in 0..bytes.len() {
        assert_eq!(
            Payload::from_bytes(&bytes[..len]),
            malformed(),
            "length {len}"
        );
    }
}

#[test]
fn rejects_unknown_versions() {
    let mut bytes = sample().to_bytes().unwrap().to_vec();
    for version in [0x00, 0x02, 0xff] {
        bytes[0] = version;
        assert_eq!(
            Payload::from_bytes(&bytes),
            malformed(),
            "version {version}"
        );
    }
}

#[test]
fn rejects_unknown_purposes() {
    for purpose in [2u8, 0x80, 0xff] {
        let bytes = by_hand(purpose, 0, [0; 32], b"a");
        assert_eq!(
            Payload::from_bytes(&bytes),
            malformed(),
            "purpose {purpose}"
        );
    }
}

#[test]
fn rejects_an_account_id_that_is_not_utf8() {
    let bytes = by_hand(0, 0, [0; 32], &[0x61, 0xff, 0x62]);
    assert_eq!(Payload::from_bytes(&bytes), malformed());
}

#[test]
fn debug_redacts_the_secret_and_the_account() {
    let shown = format!("{:?}", sample());
    assert!(!shown.contains("user-42"), "{shown}");
    assert!(!shown.contains("94"), "{shown}"); // 0x5e
    assert!(shown.contains("created_at: 1795000000"), "{shown}");
    assert!(shown.contains("AccountRecovery"), "{shown}");
}

#[test]
fn compares_every_field() {
    assert_eq!(sample(), sample());
    assert_ne!(sample(), sample_with(|p| p.secret = [0; 32]));
    assert_ne!(
        sample(),
        sample_with(|p| p.account_id = "user-43".to_owned())
    );
    assert_ne!(sample(), sample_with(|p| p.created_at = 0));
    assert_ne!(sample(), sample_with(|p| p.purpose = Purpose::KeyRecovery));
}

#[test]
fn seals_and_opens_a_payload_end_to_end() {
    use crate::{Layout, SealContext, Sealer, SealingKey};
    let sealer = Sealer::new(vec![SealingKey::new(1, [7; 32])], 1, Layout::DarV1).unwrap();
    let ctx = SealContext {
        token_id: &[1; 16],
        issuer: "https://ap.example",
        audience: "https://rp.example",
    };
    let bytes = sample().to_bytes().unwrap();
    let sealed =
        crate::danger::seal_with_fixed_iv(&sealer, &bytes, &ctx, [9; crate::IV_LEN]).unwrap();
    let opened = sealer.open(&sealed, &ctx).unwrap();
    assert_eq!(Payload::from_bytes(&opened).unwrap(), sample());
}

proptest! {
    #[test]
    fn round_trips_any_payload(
        account_id in ".{0,64}",
        created_at in any::<i64>(),
        secret in any::<[u8; 32]>(),
        key in any::<bool>(),
    ) {
        let purpose = if key { Purpose::KeyRecovery } else { Purpose::AccountRecovery };
        let p = Payload { account_id, created_at, secret, purpose };
        let bytes = p.to_bytes().unwrap();
        prop_assert_eq!(Payload::from_bytes(&bytes).unwrap(), p);
    }

    #[test]
    fn accepted_bytes_re_encode_identically(
        purpose in 0u8..3,
        created_at in any::<i64>(),
        secret in any::<[u8; 32]>(),
        account_id in proptest::collection::vec(any::<u8>(), 0..16),
    ) {
        let bytes = by_hand(purpose, created_at, secret, &account_id);
        let valid = purpose < 2 && core::str::from_utf8(&account_id).is_ok();
        match Payload::from_bytes(&bytes) {
            Ok(p) => {
                prop_assert!(valid);
                let again = p.to_bytes().unwrap();
                prop_assert_eq!(again.as_slice(), &bytes[..]);
            }
            Err(e) => {
                prop_assert!(!valid);
                prop_assert_eq!(e, Error::from(DecodeError::Payload));
            }
        }
    }
}
