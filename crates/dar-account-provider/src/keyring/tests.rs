//! Key rotation and the published configuration.

use dar_core::{EndpointUrl, Misuse, Origin};

use super::*;

fn key(n: u8) -> SigningKey {
    SigningKey::from_scalar_bytes(&[n; 32]).unwrap()
}

#[test]
fn rotated_signing_keys_stay_published_until_retired() {
    let mut ring = KeyRing::new(key(1), SealingKey::new(1, [1; 32])).unwrap();
    ring.rotate_signing(key(2)).unwrap();
    ring.rotate_signing(key(3)).unwrap();
    let published = ring.published_keys();
    assert_eq!(published.as_slice().len(), 3);
    assert_eq!(published.as_slice()[0], key(3).verifying_key());
    assert!(ring.retire_signing(&key(1).verifying_key()).unwrap());
    assert!(!ring.retire_signing(&key(1).verifying_key()).unwrap());
    assert_eq!(ring.published_keys().as_slice().len(), 2);
    assert_eq!(ring.published_keys().as_slice()[0], key(3).verifying_key());
    assert_eq!(ring.published_keys().as_slice()[1], key(2).verifying_key());
}

#[test]
fn refuses_to_retire_the_current_signing_key() {
    let mut ring = KeyRing::new(key(1), SealingKey::new(1, [1; 32])).unwrap();
    assert_eq!(
        ring.retire_signing(&key(1).verifying_key()),
        Err(AccountProviderError::RetiringCurrentKey)
    );
}

#[test]
fn refuses_to_publish_more_than_max_keys() {
    let mut ring = KeyRing::new(key(1), SealingKey::new(1, [1; 32])).unwrap();
    for n in 2..=8 {
        ring.rotate_signing(key(n)).unwrap();
    }
    assert_eq!(
        ring.rotate_signing(key(9)),
        Err(AccountProviderError::TooManyPublishedKeys)
    );
    assert_eq!(ring.signing_key(), &key(8));
}

#[test]
fn rotated_sealing_keys_still_open_and_duplicates_are_refused() {
    let mut ring = KeyRing::new(key(1), SealingKey::new(1, [1; 32])).unwrap();
    let ctx = dar_core::SealContext {
        token_id: &[5; 16],
        issuer: "https://ap.example",
        audience: "https://rp.example",
    };
    let mut rng = getrandom::SysRng;
    let sealed = ring.sealer().seal(b"x", &ctx, &mut rng).unwrap();
    ring.rotate_sealing(SealingKey::new(2, [2; 32])).unwrap();
    assert_eq!(ring.sealer().current_key_id(), 2);
    assert_eq!(ring.sealer().open(&sealed, &ctx).unwrap().as_slice(), b"x");
    assert_eq!(
        ring.rotate_sealing(SealingKey::new(2, [3; 32])),
        Err(AccountProviderError::Protocol(
            Misuse::DuplicateSealingKey { id: 2 }.into()
        ))
    );
    assert_eq!(
        ring.remove_sealing(2),
        Err(AccountProviderError::RetiringCurrentKey)
    );
    assert!(ring.remove_sealing(1).unwrap());
    assert!(ring.sealer().open(&sealed, &ctx).is_err());
}

#[test]
fn configuration_lists_every_published_key() {
    let mut ring = KeyRing::new(key(1), SealingKey::new(1, [1; 32])).unwrap();
    ring.rotate_signing(key(2)).unwrap();
    let settings = Settings::new(
        Origin::parse("https://ap.example.com").unwrap(),
        EndpointUrl::parse("https://ap.example.com/dar/save-return", false).unwrap(),
        EndpointUrl::parse("https://ap.example.com/dar/recover-return", false).unwrap(),
    );
    let doc = ring.configuration(&settings);
    let json = serde_json_roundtrip(&doc);
    let ap = json.account_provider().unwrap();
    assert_eq!(ap.tokensign_keys, *ring.published_keys());
    assert_eq!(json.issuer().as_str(), "https://ap.example.com");
}

fn serde_json_roundtrip(doc: &Configuration) -> Configuration {
    let text = doc.to_json().to_string();
    Configuration::from_json(text.as_bytes(), false).unwrap()
}
