//! `dar openapi`: the OpenAPI description the code generates.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn dar(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dar"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn prints_the_committed_description() {
    let out = dar(&["openapi"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let committed =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json"))
            .unwrap();
    assert!(
        out.stdout == committed,
        "docs/openapi.json is stale: regenerate it with \
         `cargo run -q -p dar-cli -- openapi > docs/openapi.json`"
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/dar/save-token"]["post"].is_object());
}

#[test]
fn follows_a_configuration() {
    let dir = std::env::temp_dir().join("dar-cli-tests-openapi");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("dar.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:0\"\npublic_origin = \"https://rp.test\"\n\
         database = \"sqlite::memory:\"\nprivacy_policy = \"/privacy\"\n\
         icon_152px = \"/icon.png\"\n[tls]\nlocal_ca_dir = \"tls\"\n\
         [recovery_provider]\ncountersign_keys = [\"rp.pem\"]\nsave_token_path = \"/x/save\"\n",
    )
    .unwrap();
    let out = dar(&["openapi", "--config", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(doc["paths"]["/x/save"]["post"].is_object());
    assert!(doc["paths"]["/dar/save-token"].is_null());
    assert!(doc["paths"]["/dar/save-token-return"].is_null());
}

#[test]
fn refuses_an_invalid_configuration() {
    let out = dar(&["openapi", "--config", "/nonexistent/dar.toml"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("dar: invalid configuration: "),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}
