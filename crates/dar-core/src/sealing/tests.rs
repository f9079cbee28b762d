#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use aes_gcm::aead::Aead;
use aes_gcm::aead::Payload as AeadPayload;
use proptest::prelude::*;

use super::*;

/// The operating system's generator; getrandom's own `SysRng` sits behind a feature the
/// workspace does not enable.
struct OsRng;

impl rand_core::TryRng for OsRng {
    type Error = getrandom::Error;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        getrandom::u32()
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        getrandom::u64()
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        getrandom::fill(dst)
    }
}

impl TryCryptoRng for OsRng {}

/// A generator that always fails.
struct BrokenRng;

#[derive(Debug)]
struct Broken;

impl fmt::Display for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("broken")
    }
}

impl core::error::Error for Broken {}

impl rand_core::TryRng for BrokenRng {
    type Error = Broken;
    fn try_next_u32(&mut self) -> Result<u32, Broken> {
        Err(Broken)
    }
    fn try_next_u64(&mut self) -> Result<u64, Broken> {
        Err(Broken)
    }
    fn try_fill_bytes(&mut self, _: &mut [u8]) -> Result<(), Broken> {
        Err(Broken)
    }
}

impl TryCryptoRng for BrokenRng {}

const AP: &str = "https://ap.example";
const RP: &str = "https://rp.example";
const TOKEN_ID: [u8; 16] = [0xa5; 16];

fn ctx() -> SealContext<'static> {
    SealContext {
        token_id: &TOKEN_ID,
        issuer: AP,
        audience: RP,
    }
}

fn key(id: u32) -> SealingKey {
    let mut bytes = [0; KEY_LEN];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::try_from(i).unwrap() ^ u8::try_from(id & 0xff).unwrap();
    }
    SealingKey::new(id, bytes)
}

fn sealer(layout: Layout) -> Sealer {
    Sealer::new(vec![key(1)], 1, layout).unwrap()
}

fn v0_sealer_of(keys: Vec<SealingKey>, current: u32) -> Sealer {
    Sealer::new(keys, current, Layout::DarrrrV0).unwrap()
}

fn err(e: impl Into<Error>) -> Error {
    e.into()
}

fn sizes(layout: Layout) -> [usize; 4] {
    [0, 1, 4096, layout.max_plaintext_len()]
}

fn plaintext(len: usize) -> Vec<u8> {
    (0..len).map(|i| u8::try_from(i % 251).unwrap()).collect()
}

// --- round trips ---

#[test]
fn round_trips_dar_v1_empty_one_byte_and_largest() {
    let s = sealer(Layout::DarV1);
    for len in sizes(Layout::DarV1) {
        let pt = plaintext(len);
        let sealed = s.seal(&pt, &ctx(), &mut OsRng).unwrap();
        assert_eq!(sealed.len(), len + 33, "len {len}");
        assert_eq!(sealed.first(), Some(&0x01));
        assert_eq!(sealed.get(1..5), Some(&1u32.to_be_bytes()[..]));
        assert_eq!(s.open(&sealed, &ctx()).unwrap().as_slice(), pt, "len {len}");
    }
}

#[test]
fn round_trips_darrrr_v0_empty_one_byte_and_largest() {
    let s = sealer(Layout::DarrrrV0);
    for len in sizes(Layout::DarrrrV0) {
        let pt = plaintext(len);
        let sealed = s.seal(&pt, &ctx(), &mut OsRng).unwrap();
        assert_eq!(sealed.len(), len + 29, "len {len}");
        assert_eq!(sealed.first(), Some(&0x00));
        assert_eq!(s.open(&sealed, &ctx()).unwrap().as_slice(), pt, "len {len}");
    }
}

#[test]
fn largest_sealed_blob_fills_the_token_data_field_exactly() {
    for layout in [Layout::DarV1, Layout::DarrrrV0] {
        let pt = plaintext(layout.max_plaintext_len());
        let sealed = sealer(layout).seal(&pt, &ctx(), &mut OsRng).unwrap();
        assert_eq!(sealed.len(), MAX_SEALED_LEN, "{layout}");
    }
}

#[test]
fn refuses_plaintext_one_byte_over_the_token_data_field() {
    for layout in [Layout::DarV1, Layout::DarrrrV0] {
        let pt = plaintext(layout.max_plaintext_len() + 1);
        assert_eq!(
            sealer(layout).seal(&pt, &ctx(), &mut OsRng),
            Err(err(Misuse::PayloadTooLarge)),
            "{layout}"
        );
        assert_eq!(
            danger::seal_with_fixed_iv(&sealer(layout), &pt, &ctx(), [0; IV_LEN]),
            Err(err(Misuse::PayloadTooLarge)),
            "{layout}"
        );
    }
}

#[test]
fn seals_with_a_fresh_iv_each_time() {
    for layout in [Layout::DarV1, Layout::DarrrrV0] {
        let s = sealer(layout);
        let a = s.seal(b"same", &ctx(), &mut OsRng).unwrap();
        let b = s.seal(b"same", &ctx(), &mut OsRng).unwrap();
        assert_ne!(a, b, "{layout}");
    }
}

#[test]
fn reports_a_failing_rng_without_sealing() {
    for layout in [Layout::DarV1, Layout::DarrrrV0] {
        assert_eq!(
            sealer(layout).seal(b"x", &ctx(), &mut BrokenRng),
            Err(err(Misuse::Rng)),
            "{layout}"
        );
    }
    assert_eq!(
        SealingKey::generate(1, &mut BrokenRng),
        Err(err(Misuse::Rng))
    );
}

#[test]
fn generates_distinct_keys() {
    let a = SealingKey::generate(1, &mut OsRng).unwrap();
    let b = SealingKey::generate(1, &mut OsRng).unwrap();
    assert_ne!(a, b);
    assert_eq!(a.id(), 1);
}

// --- exact bytes ---

/// dar-v1 rebuilt from spec/sealing.md with aes-gcm directly, not through the sealer.
#[test]
fn dar_v1_bytes_match_the_spec() {
    let iv = [0x0c; IV_LEN];
    let pt = b"opaque";
    let sealed = danger::seal_with_fixed_iv(&sealer(Layout::DarV1), pt, &ctx(), iv).unwrap();

    let mut aad = b"dar/sealed-data/v1".to_vec();
    aad.push(0x01);
    aad.extend_from_slice(&[0, 0, 0, 1]);
    aad.extend_from_slice(&TOKEN_ID);
    aad.extend_from_slice(&[0, 18]);
    aad.extend_from_slice(AP.as_bytes());
    aad.extend_from_slice(&[0, 18]);
    aad.extend_from_slice(RP.as_bytes());
    let cipher = Aes256Gcm::new(<&Key<Aes256Gcm>>::from(key(1).secret_bytes()));
    let ct_and_tag = cipher
        .encrypt(&Nonce::from(iv), AeadPayload { msg: pt, aad: &aad })
        .unwrap();

    let mut expected = vec![0x01, 0, 0, 0, 1];
    expected.extend_from_slice(&iv);
    expected.extend_from_slice(&ct_and_tag);
    assert_eq!(sealed, expected);
}

/// Pinned so any change to the layout, the AAD or the key schedule shows up here; the same
/// vector is in spec/sealing.md and was checked with Python's `cryptography` AESGCM.
#[test]
fn dar_v1_known_answer_is_stable() {
    let s = Sealer::new(vec![SealingKey::new(7, [0x11; 32])], 7, Layout::DarV1).unwrap();
    let ctx = SealContext {
        token_id: &[0x22; 16],
        issuer: AP,
        audience: RP,
    };
    let sealed = danger::seal_with_fixed_iv(&s, b"hello", &ctx, [0x33; IV_LEN]).unwrap();
    assert_eq!(
        hex::encode(&sealed),
        "01\
         00000007\
         333333333333333333333333\
         ece63e2aa5\
         ec5f7ea271699e971a033844f2400b46"
    );
}

#[test]
fn darrrr_v0_known_answer_is_stable() {
    let s = v0_sealer_of(vec![SealingKey::new(7, [0x11; 32])], 7);
    let sealed = danger::seal_with_fixed_iv(&s, b"hello", &ctx(), [0x33; IV_LEN]).unwrap();
    assert_eq!(
        hex::encode(&sealed),
        "00\
         5129ae9d119ba8b5220f939bc5ba8a6f\
         333333333333333333333333\
         ece63e2aa5"
    );
}

/// The Ruby peer's layout, assembled from its description: `0x00 | tag | IV | ciphertext`,
/// empty AAD.
#[test]
fn opens_darrrr_v0_made_by_hand() {
    let iv = [0x44; IV_LEN];
    let pt = b"{\"user\":1234}";
    let cipher = Aes256Gcm::new(<&Key<Aes256Gcm>>::from(key(1).secret_bytes()));
    let ct_and_tag = cipher.encrypt(&Nonce::from(iv), &pt[..]).unwrap();
    let (ct, tag) = ct_and_tag.split_at(pt.len());

    let mut blob = vec![0x00];
    blob.extend_from_slice(tag);
    blob.extend_from_slice(&iv);
    blob.extend_from_slice(ct);

    let opened = sealer(Layout::DarrrrV0).open(&blob, &ctx()).unwrap();
    assert_eq!(opened.as_slice(), pt);
    // Sealing the same plaintext with the same IV gives the same bytes.
    let ours = danger::seal_with_fixed_iv(&sealer(Layout::DarrrrV0), pt, &ctx(), iv).unwrap();
    assert_eq!(ours, blob);
}

#[test]
fn opens_empty_darrrr_v0_made_by_hand() {
    let iv = [0x45; IV_LEN];
    let cipher = Aes256Gcm::new(<&Key<Aes256Gcm>>::from(key(1).secret_bytes()));
    let tag = cipher.encrypt(&Nonce::from(iv), &b""[..]).unwrap();
    let mut blob = vec![0x00];
    blob.extend_from_slice(&tag);
    blob.extend_from_slice(&iv);
    assert_eq!(blob.len(), 29);
    assert!(
        sealer(Layout::DarrrrV0)
            .open(&blob, &ctx())
            .unwrap()
            .is_empty()
    );
}

// --- tampering ---

fn flips(byte: u8) -> [u8; 3] {
    [byte ^ 0x01, byte ^ 0x80, byte ^ 0xff]
}

#[test]
fn rejects_every_tampered_iv_ciphertext_and_tag_byte_dar_v1() {
    let s = sealer(Layout::DarV1);
    let sealed = s.seal(b"tamper me, 19 bytes", &ctx(), &mut OsRng).unwrap();
    for i in 5..sealed.len() {
        for flipped in flips(sealed[i]) {
            let mut bad = sealed.clone();
            bad[i] = flipped;
            assert_eq!(
                s.open(&bad, &ctx()),
                Err(err(Rejected::SealOpenFailed)),
                "byte {i}"
            );
        }
    }
}

#[test]
fn rejects_every_tampered_tag_iv_and_ciphertext_byte_darrrr_v0() {
    let s = sealer(Layout::DarrrrV0);
    let sealed = s.seal(b"tamper me, 19 bytes", &ctx(), &mut OsRng).unwrap();
    for i in 1..sealed.len() {
        for flipped in flips(sealed[i]) {
            let mut bad = sealed.clone();
            bad[i] = flipped;
            assert_eq!(
                s.open(&bad, &ctx()),
                Err(err(Rejected::SealOpenFailed)),
                "byte {i}"
            );
        }
    }
}

#[test]
fn rejects_tampered_tag() {
    for layout in [Layout::DarV1, Layout::DarrrrV0] {
        let s = sealer(layout);
        let mut sealed = s.seal(b"abc", &ctx(), &mut OsRng).unwrap();
        let tag_at = if layout == Layout::DarV1 {
            sealed.len() - 1
        } else {
            1
        };
        sealed[tag_at] ^= 0x10;
        assert_eq!(
            s.open(&sealed, &ctx()),
            Err(err(Rejected::SealOpenFailed)),
            "{layout}"
        );
    }
}

#[test]
fn rejects_appended_or_removed_ciphertext_bytes() {
    for layout in [Layout::DarV1, Layout::DarrrrV0] {
        let s = sealer(layout);
        let sealed = s.seal(b"abc", &ctx(), &mut OsRng).unwrap();
        let mut longer = sealed.clone();
        longer.push(0);
        assert_eq!(
            s.open(&longer, &ctx()),
            Err(err(Rejected::SealOpenFailed)),
            "{layout}"
        );
        let shorter = &sealed[..sealed.len() - 1];
        assert_eq!(
            s.open(shorter, &ctx()),
            Err(err(Rejected::SealOpenFailed)),
            "{layout}"
        );
    }
}

#[test]
fn rejects_key_id_changed_to_another_known_key() {
    let s = Sealer::new(vec![key(1), key(3)], 1, Layout::DarV1).unwrap();
    let mut sealed = s.seal(b"abc", &ctx(), &mut OsRng).unwrap();
    sealed[4] = 3;
    assert_eq!(s.open(&sealed, &ctx()), Err(err(Rejected::SealOpenFailed)));
}

#[test]
fn rejects_dar_v1_relabelled_as_darrrr_v0() {
    let s = sealer(Layout::DarV1).also_open_darrrr_v0();
    let mut sealed = s
        .seal(b"a plaintext of some length", &ctx(), &mut OsRng)
        .unwrap();
    sealed[0] = 0x00;
    assert_eq!(s.open(&sealed, &ctx()), Err(err(Rejected::SealOpenFailed)));
}

// --- binding to the token (dar-v1) ---

#[test]
fn rejects_dar_v1_in_a_token_with_another_token_id() {
    let s = sealer(Layout::DarV1);
    let sealed = s.seal(b"bound", &ctx(), &mut OsRng).unwrap();
    let mut other = TOKEN_ID;
    other[15] ^= 1;
    let moved = SealContext {
        token_id: &other,
        ..ctx()
    };
    assert_eq!(s.open(&sealed, &moved), Err(err(Rejected::SealOpenFailed)));
}

#[test]
fn rejects_dar_v1_in_a_token_with_another_issuer() {
    let s = sealer(Layout::DarV1);
    let sealed = s.seal(b"bound", &ctx(), &mut OsRng).unwrap();
    let moved = SealContext {
        issuer: "https://evil.example",
        ..ctx()
    };
    assert_eq!(s.open(&sealed, &moved), Err(err(Rejected::SealOpenFailed)));
}

#[test]
fn rejects_dar_v1_in_a_token_with_another_audience() {
    let s = sealer(Layout::DarV1);
    let sealed = s.seal(b"bound", &ctx(), &mut OsRng).unwrap();
    let moved = SealContext {
        audience: "https://rp2.example",
        ..ctx()
    };
    assert_eq!(s.open(&sealed, &moved), Err(err(Rejected::SealOpenFailed)));
}

#[test]
fn rejects_dar_v1_with_issuer_and_audience_boundary_shifted() {
    // Without length prefixes these two contexts would give the same AAD bytes.
    let s = sealer(Layout::DarV1);
    let a = SealContext {
        token_id: &TOKEN_ID,
        issuer: "https://a.example",
        audience: "bc",
    };
    let b = SealContext {
        token_id: &TOKEN_ID,
        issuer: "https://a.exampleb",
        audience: "c",
    };
    let sealed = s.seal(b"bound", &a, &mut OsRng).unwrap();
    assert_eq!(s.open(&sealed, &b), Err(err(Rejected::SealOpenFailed)));
}

#[test]
fn darrrr_v0_opens_in_any_token_because_it_binds_nothing() {
    let s = sealer(Layout::DarrrrV0);
    let sealed = s.seal(b"unbound", &ctx(), &mut OsRng).unwrap();
    let moved = SealContext {
        token_id: &[0; 16],
        issuer: "https://x.example",
        audience: "y",
    };
    assert_eq!(s.open(&sealed, &moved).unwrap().as_slice(), b"unbound");
}

#[test]
fn refuses_a_context_no_token_could_carry() {
    let long = "h".repeat(65_536);
    let s = sealer(Layout::DarV1);
    let bad_issuer = SealContext {
        issuer: &long,
        ..ctx()
    };
    let bad_audience = SealContext {
        audience: &long,
        ..ctx()
    };
    let too_long = |field| err(Misuse::FieldTooLong { field, len: 65_536 });
    assert_eq!(
        s.seal(b"x", &bad_issuer, &mut OsRng),
        Err(too_long("issuer"))
    );
    assert_eq!(
        s.seal(b"x", &bad_audience, &mut OsRng),
        Err(too_long("audience"))
    );
    let sealed = s.seal(b"x", &ctx(), &mut OsRng).unwrap();
    assert_eq!(s.open(&sealed, &bad_issuer), Err(too_long("issuer")));
}

// --- keys and rotation ---

#[test]
fn rejects_unknown_key_id() {
    let sealed = sealer(Layout::DarV1)
        .seal(b"abc", &ctx(), &mut OsRng)
        .unwrap();
    let other = Sealer::new(vec![key(2)], 2, Layout::DarV1).unwrap();
    assert_eq!(
        other.open(&sealed, &ctx()),
        Err(err(Rejected::UnknownSealingKey))
    );
}

#[test]
fn opens_after_key_rotation_with_the_retired_key_kept() {
    let before = sealer(Layout::DarV1);
    let sealed = before
        .seal(b"made under key 1", &ctx(), &mut OsRng)
        .unwrap();
    let after = Sealer::new(vec![key(1), key(2)], 2, Layout::DarV1).unwrap();
    assert_eq!(after.current_key_id(), 2);
    assert_eq!(
        after.open(&sealed, &ctx()).unwrap().as_slice(),
        b"made under key 1"
    );
    let fresh = after.seal(b"made under key 2", &ctx(), &mut OsRng).unwrap();
    assert_eq!(fresh.get(1..5), Some(&2u32.to_be_bytes()[..]));
    assert_eq!(
        before.open(&fresh, &ctx()),
        Err(err(Rejected::UnknownSealingKey))
    );
}

#[test]
fn rejects_after_the_retired_key_is_dropped() {
    let sealed = sealer(Layout::DarV1)
        .seal(b"abc", &ctx(), &mut OsRng)
        .unwrap();
    let later = Sealer::new(vec![key(2), key(3)], 3, Layout::DarV1).unwrap();
    assert_eq!(
        later.open(&sealed, &ctx()),
        Err(err(Rejected::UnknownSealingKey))
    );
}

#[test]
fn rejects_dar_v1_under_a_key_with_the_right_id_but_other_bytes() {
    let sealed = sealer(Layout::DarV1)
        .seal(b"abc", &ctx(), &mut OsRng)
        .unwrap();
    let impostor = Sealer::new(vec![SealingKey::new(1, [0xee; 32])], 1, Layout::DarV1).unwrap();
    assert_eq!(
        impostor.open(&sealed, &ctx()),
        Err(err(Rejected::SealOpenFailed))
    );
}

#[test]
fn opens_darrrr_v0_under_a_non_current_key() {
    let sealed = v0_sealer_of(vec![key(5)], 5)
        .seal(b"old", &ctx(), &mut OsRng)
        .unwrap();
    let rotated = v0_sealer_of(vec![key(4), key(5), key(6)], 6);
    assert_eq!(rotated.open(&sealed, &ctx()).unwrap().as_slice(), b"old");
    let without = v0_sealer_of(vec![key(4), key(6)], 6);
    assert_eq!(
        without.open(&sealed, &ctx()),
        Err(err(Rejected::SealOpenFailed))
    );
}

#[test]
fn new_refuses_a_current_id_with_no_key() {
    assert_eq!(
        Sealer::new(vec![key(1)], 2, Layout::DarV1).map(|_| ()),
        Err(err(Misuse::NoSealingKey))
    );
    assert_eq!(
        Sealer::new(Vec::new(), 1, Layout::DarV1).map(|_| ()),
        Err(err(Misuse::NoSealingKey))
    );
}

#[test]
fn new_refuses_duplicate_key_ids() {
    let twin = SealingKey::new(1, [0x77; 32]);
    assert_eq!(
        Sealer::new(vec![key(1), key(2), twin], 2, Layout::DarV1).map(|_| ()),
        Err(err(Misuse::DuplicateSealingKey { id: 1 }))
    );
}

// --- layout acceptance ---

#[test]
fn rejects_darrrr_v0_when_sealing_dar_v1() {
    let v0 = sealer(Layout::DarrrrV0)
        .seal(b"legacy", &ctx(), &mut OsRng)
        .unwrap();
    let v1 = sealer(Layout::DarV1);
    assert_eq!(
        v1.open(&v0, &ctx()),
        Err(err(Rejected::SealLayoutNotAccepted))
    );
    let migrating = v1.also_open_darrrr_v0();
    assert_eq!(migrating.open(&v0, &ctx()).unwrap().as_slice(), b"legacy");
    assert_eq!(migrating.layout(), Layout::DarV1);
}

#[test]
fn darrrr_v0_sealer_opens_dar_v1() {
    let v1 = sealer(Layout::DarV1)
        .seal(b"new", &ctx(), &mut OsRng)
        .unwrap();
    assert_eq!(
        sealer(Layout::DarrrrV0)
            .open(&v1, &ctx())
            .unwrap()
            .as_slice(),
        b"new"
    );
}

#[test]
fn rejects_unknown_layout_bytes_and_empty_input() {
    let s = sealer(Layout::DarV1);
    assert_eq!(s.open(&[], &ctx()), Err(err(DecodeError::SealedData)));
    let mut blob = s.seal(b"abc", &ctx(), &mut OsRng).unwrap();
    for first in 2..=255u8 {
        blob[0] = first;
        assert_eq!(
            s.open(&blob, &ctx()),
            Err(err(DecodeError::SealedData)),
            "{first}"
        );
    }
}

#[test]
fn rejects_truncated_dar_v1_at_every_length() {
    let s = sealer(Layout::DarV1);
    let sealed = s.seal(b"0123456789", &ctx(), &mut OsRng).unwrap();
    for len in 0..sealed.len() {
        let want = if len < 33 {
            err(DecodeError::SealedData)
        } else {
            err(Rejected::SealOpenFailed)
        };
        assert_eq!(s.open(&sealed[..len], &ctx()), Err(want), "length {len}");
    }
}

#[test]
fn rejects_truncated_darrrr_v0_at_every_length() {
    let s = sealer(Layout::DarrrrV0);
    let sealed = s.seal(b"0123456789", &ctx(), &mut OsRng).unwrap();
    for len in 0..sealed.len() {
        let want = if len < 29 {
            err(DecodeError::SealedData)
        } else {
            err(Rejected::SealOpenFailed)
        };
        assert_eq!(s.open(&sealed[..len], &ctx()), Err(want), "length {len}");
    }
}

#[test]
fn rejects_truncated_darrrr_v0_as_malformed_even_when_not_accepted() {
    // Structure is checked first, so a short blob reads as malformed whatever the policy.
    let s = sealer(Layout::DarV1);
    assert_eq!(
        s.open(&[0x00; 28], &ctx()),
        Err(err(DecodeError::SealedData))
    );
    assert_eq!(
        s.open(&[0x00; 29], &ctx()),
        Err(err(Rejected::SealLayoutNotAccepted))
    );
}

// --- keys and layouts as text ---

#[test]
fn parses_hex_keys_in_either_case() {
    let lower = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    let a = SealingKey::from_hex(3, lower).unwrap();
    let b = SealingKey::from_hex(3, &lower.to_uppercase()).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.secret_bytes()[..4], [0x00, 0x11, 0x22, 0x33]);
    assert_eq!(a.secret_bytes()[31], 0xff);
    assert_eq!(a.id(), 3);
}

#[test]
fn rejects_malformed_hex_keys_without_echoing_them() {
    let good = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    let bad = [
        "",
        &good[..62],
        &good[..63],
        &format!("{good}00"),
        &format!("{}g", &good[..63]),
        &format!(" {}", &good[..63]),
        &format!("{}\u{e9}", &good[..62]),
        "zz112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
    ];
    for input in bad {
        let e = SealingKey::from_hex(1, input).unwrap_err();
        assert_eq!(
            e,
            err(DecodeError::Key {
                format: "AES-256 key of 64 hex digits"
            })
        );
        let shown = format!("{e} {e:?}");
        assert!(input.len() < 8 || !shown.contains(&input[..8]), "{shown}");
    }
}

#[test]
fn debug_never_prints_key_bytes() {
    let k = SealingKey::new(7, [0xab; 32]);
    assert_eq!(format!("{k:?}"), "SealingKey { id: 7, key: [redacted] }");
    let s = Sealer::new(vec![k], 7, Layout::DarV1).unwrap();
    let shown = format!("{s:?}");
    assert!(
        !shown.contains("171") && !shown.to_lowercase().contains("ab, "),
        "{shown}"
    );
    assert!(shown.contains("[redacted]"), "{shown}");
}

#[test]
fn compares_keys_by_id_and_bytes() {
    assert_eq!(key(1), key(1));
    assert_ne!(key(1), SealingKey::new(1, [0; 32]));
    assert_ne!(SealingKey::new(1, [0; 32]), SealingKey::new(2, [0; 32]));
}

#[test]
fn parses_and_prints_layout_names() {
    for layout in [Layout::DarrrrV0, Layout::DarV1] {
        assert_eq!(layout.to_string().parse::<Layout>(), Ok(layout));
    }
    assert_eq!(Layout::default(), Layout::DarV1);
    for bad in ["", "dar-v0", "DAR-V1", "darrrr", "dar-v1 "] {
        assert_eq!(
            bad.parse::<Layout>(),
            Err(err(DecodeError::Config {
                field: "layout",
                reason: "expected darrrr-v0 or dar-v1",
            })),
            "{bad:?}"
        );
    }
}

// --- the primitive ---

#[test]
fn primitive_round_trips_and_refuses_a_wrong_tag() {
    let k = [0x01; 32];
    let iv = [0x02; IV_LEN];
    let mut buf = *b"primitive";
    let tag = danger::aes256gcm_seal_detached(&k, &iv, b"aad", &mut buf).unwrap();
    assert_ne!(&buf, b"primitive");
    let mut wrong = tag;
    wrong[0] ^= 1;
    let mut copy = buf;
    assert_eq!(
        danger::aes256gcm_open_detached(&k, &iv, b"aad", &mut copy, &wrong),
        Err(err(Rejected::SealOpenFailed))
    );
    danger::aes256gcm_open_detached(&k, &iv, b"aad", &mut buf, &tag).unwrap();
    assert_eq!(&buf, b"primitive");
}

// --- fuzz entry and properties ---

#[test]
fn fuzz_open_survives_edge_inputs() {
    let payload = crate::Payload {
        account_id: "a".to_owned(),
        created_at: -1,
        secret: [3; 32],
        purpose: crate::Purpose::KeyRecovery,
    };
    let inputs: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x00],
        vec![0x01],
        vec![0x00; 29],
        vec![0x01; 33],
        vec![0xff; 100],
        payload.to_bytes().unwrap().to_vec(),
        plaintext(MAX_SEALED_LEN),
    ];
    for input in inputs {
        fuzz_open(&input);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn round_trips_any_plaintext_and_context(
        pt in proptest::collection::vec(any::<u8>(), 0..512),
        token_id in any::<[u8; 16]>(),
        issuer in "[a-z:/.]{0,40}",
        audience in "[a-z:/.]{0,40}",
        v1 in any::<bool>(),
    ) {
        let layout = if v1 { Layout::DarV1 } else { Layout::DarrrrV0 };
        let ctx = SealContext { token_id: &token_id, issuer: &issuer, audience: &audience };
        let s = sealer(layout);
        let sealed = s.seal(&pt, &ctx, &mut OsRng).unwrap();
        let opened = s.open(&sealed, &ctx).unwrap();
        prop_assert_eq!(opened.as_slice(), &pt[..]);
    }

    #[test]
    fn never_panics_on_arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        fuzz_open(&data);
    }
}
