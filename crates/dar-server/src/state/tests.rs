use std::path::PathBuf;

use dar_core::Configuration;

use super::*;
use crate::testutil::{config, temp_dir};

/// Writes the key files the test configuration names into a fresh directory and returns the
/// configuration rooted there.
fn deployment(name: &str, extra: &str) -> (PathBuf, Config) {
    let dir = temp_dir(name);
    let ap = SigningKey::from_scalar_bytes(&[7; 32]).unwrap();
    let rp = SigningKey::from_scalar_bytes(&[8; 32]).unwrap();
    std::fs::write(dir.join("ap.pem"), ap.to_pkcs8_pem().unwrap().as_bytes()).unwrap();
    std::fs::write(dir.join("rp.pem"), rp.to_pkcs8_pem().unwrap().as_bytes()).unwrap();
    std::fs::write(dir.join("seal.hex"), format!("{}\n", "ab".repeat(32))).unwrap();
    let text = format!(
        r#"listen = "127.0.0.1:0"
public_origin = "https://dar.test"
database = "sqlite::memory:"
privacy_policy = "/privacy"
icon_152px = "/icon.png"
[tls]
local_ca_dir = "tls"
[account_provider]
signing_keys = ["ap.pem"]
sealing_keys = [{{ id = 1, file = "seal.hex" }}]
allowed_recovery_providers = ["https://rp.example.net"]
[recovery_provider]
countersign_keys = ["rp.pem"]
{extra}
"#
    );
    let file = dir.join("dar.toml");
    std::fs::write(&file, text).unwrap();
    let config = Config::load(&file).unwrap();
    (dir, config)
}

fn key_file_error(result: Result<AppState, ConfigError>) -> (String, PathBuf, String) {
    match result {
        Err(ConfigError::KeyFile {
            key, path, reason, ..
        }) => (key, path, reason),
        other => panic!("expected KeyFile, got {other:?}"),
    }
}

#[test]
fn loads_key_files_and_publishes_both_roles() {
    let (_dir, config) = deployment("load", "");
    let state = AppState::load(&config).unwrap();
    let doc = Configuration::from_json(&state.document_json(), false).unwrap();
    assert_eq!(doc.issuer().as_str(), "https://dar.test");
    let ap = doc.account_provider().unwrap();
    let expected = SigningKey::from_scalar_bytes(&[7; 32])
        .unwrap()
        .verifying_key();
    assert!(ap.tokensign_keys.contains(&expected));
    assert_eq!(
        ap.save_token_return.as_string(),
        "https://dar.test/dar/save-token-return"
    );
    let rp = doc.recovery_provider().unwrap();
    assert_eq!(rp.save_token.as_string(), "https://dar.test/dar/save-token");
    assert_eq!(rp.token_max_size, 8192);
    assert_eq!(
        doc.privacy_policy().unwrap().as_string(),
        "https://dar.test/privacy"
    );
    assert_eq!(
        state
            .roles()
            .account_provider
            .as_ref()
            .unwrap()
            .sealer
            .current_key_id(),
        1
    );
}

#[test]
fn a_key_file_that_does_not_parse_is_named_but_not_printed() {
    let (dir, config) = deployment("garbage", "");
    std::fs::write(dir.join("ap.pem"), "TOPSECRETKEYMATERIAL").unwrap();
    let result = AppState::load(&config);
    let message = result.as_ref().unwrap_err().to_string();
    assert!(!message.contains("TOPSECRET"), "{message}");
    assert!(message.contains("ap.pem"), "{message}");
    assert!(message.contains("dar.toml"), "{message}");
    let (key, path, _) = key_file_error(result);
    assert_eq!(key, "account_provider.signing_keys");
    assert_eq!(path, dir.join("ap.pem"));
}

#[test]
fn a_missing_key_file_is_reported_with_its_key() {
    let (dir, config) = deployment("missing", "");
    std::fs::remove_file(dir.join("rp.pem")).unwrap();
    let (key, path, reason) = key_file_error(AppState::load(&config));
    assert_eq!(key, "recovery_provider.countersign_keys");
    assert_eq!(path, dir.join("rp.pem"));
    assert!(reason.contains("cannot read"), "{reason}");
}

#[test]
fn a_bad_sealing_key_is_reported_without_its_digits() {
    let (dir, config) = deployment("seal", "");
    std::fs::write(dir.join("seal.hex"), "abcdef0123-not-hex").unwrap();
    let result = AppState::load(&config);
    assert!(
        !result
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("abcdef0123")
    );
    let (key, _, _) = key_file_error(result);
    assert_eq!(key, "account_provider.sealing_keys");
}

#[test]
fn reads_the_session_key_file() {
    let (dir, config) = deployment("session", "[session]\nkey_file = \"session.hex\"\n");
    std::fs::write(dir.join("session.hex"), "0f".repeat(64)).unwrap();
    assert!(AppState::load(&config).is_ok());
    std::fs::write(dir.join("session.hex"), "0f".repeat(63)).unwrap();
    let (key, _, _) = key_file_error(AppState::load(&config));
    assert_eq!(key, "session.key_file");
}

#[test]
fn cookie_key_from_hex_needs_128_hex_digits() {
    assert!(cookie_key_from_hex(&"0f".repeat(64)).is_some());
    assert!(cookie_key_from_hex(&"0F".repeat(64)).is_some());
    assert!(cookie_key_from_hex(&"0f".repeat(63)).is_none());
    assert!(cookie_key_from_hex(&"zz".repeat(64)).is_none());
    assert!(cookie_key_from_hex(&"é".repeat(64)).is_none());
}

#[test]
fn generated_cookie_keys_differ() {
    let a = generate_cookie_key().unwrap();
    let b = generate_cookie_key().unwrap();
    assert_ne!(a.master(), b.master());
}

#[test]
fn exempt_paths_are_the_protocol_paths_and_token_status() {
    let state = crate::testutil::state(&config());
    let mut expected = config().protocol_paths();
    expected.push(TOKEN_STATUS_PATH.to_owned());
    assert_eq!(state.csrf_exempt_paths(), expected.as_slice());
    assert!(!format!("{state:?}").contains("cookie_key"));
}
