//! The `dar` command line as scripts see it: exit statuses, JSON shapes, messages.

// Test helpers outside #[test] functions may panic: a panic is a test failure.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const AP: &str = "https://ap.example.com";
const RP: &str = "https://rp.example.net";
const NOW: &str = "2026-11-22T15:31:18Z";
const LATER: &str = "2026-11-22T15:31:30Z";
const AES: &str = "4242424242424242424242424242424242424242424242424242424242424242";
/// The account provider key of the public SDK interop vectors, as the SDKs take it.
const AP_SDK_KEY: &str = "MHcCAQEEIBrlBxPk8Flc7NdnchyighkCJBppRH2UD81pv9TXN98zoAoGCCqGSM49AwEHoUQDQgAEQighOGO1uX+YkoU6pHod26ET9jJO4hL/WUPaPu5Ar4Pzto9Imf+pz6MuQSJM6YeJJiNijA69oiDeV08LELaeQQ==";
const AP_SPKI: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEQighOGO1uX+YkoU6pHod26ET9jJO4hL/WUPaPu5Ar4Pzto9Imf+pz6MuQSJM6YeJJiNijA69oiDeV08LELaeQQ==";
const RP_SDK_KEY: &str = "MHcCAQEEIMhccSjI04r7QlhXVZRSJLqwaKm2jnmPJVo9IbQTIEvYoAoGCCqGSM49AwEHoUQDQgAEPYdrUPLiT97WIRM4FSfkpomhhb7V9YD8yfaRscBbnRDikMSb0fwy0MAnHcIsXsBMrX/qWzBc7260zA10jEznoA==";
const RP_SPKI: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEPYdrUPLiT97WIRM4FSfkpomhhb7V9YD8yfaRscBbnRDikMSb0fwy0MAnHcIsXsBMrX/qWzBc7260zA10jEznoA==";

fn dar(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dar"))
        .args(args)
        .output()
        .unwrap()
}

fn dar_stdin(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dar"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .trim_end()
        .to_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

fn issue(extra: &[&str]) -> String {
    let mut args = vec![
        "token",
        "issue",
        "--key",
        AP_SDK_KEY,
        "--issuer",
        AP,
        "--audience",
        RP,
        "--now",
        NOW,
        "--token-id",
        "000102030405060708090a0b0c0d0e0f",
    ];
    args.extend_from_slice(extra);
    let out = dar(&args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    stdout(&out)
}

fn verify(token: &str, extra: &[&str]) -> Output {
    let mut args = vec!["token", "verify", token, "--key", AP_SPKI, "--issuer", AP];
    args.extend(["--audience", RP, "--json"]);
    with_default_now(&mut args, extra);
    dar(&args)
}

/// Appends `extra`, and `--now LATER` unless `extra` sets the clock itself.
fn with_default_now<'a>(args: &mut Vec<&'a str>, extra: &[&'a str]) {
    if !extra.contains(&"--now") {
        args.extend(["--now", LATER]);
    }
    args.extend_from_slice(extra);
}

fn countersign(token: &str) -> String {
    let out = dar(&[
        "countersign",
        token,
        "--key",
        RP_SDK_KEY,
        "--ap-key",
        AP_SPKI,
        "--now",
        LATER,
        "--token-id",
        "fffefdfcfbfaf9f8f7f6f5f4f3f2f1f0",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    stdout(&out)
}

fn verify_countersigned(token: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "countersigned",
        "verify",
        token,
        "--rp-key",
        RP_SPKI,
        "--json",
    ];
    args.extend(["--ap-key", AP_SPKI]);
    for (flag, default) in [("--ap", AP), ("--rp", RP)] {
        if !extra.contains(&flag) {
            args.extend([flag, default]);
        }
    }
    with_default_now(&mut args, extra);
    dar(&args)
}

#[test]
fn issue_is_reproducible_with_fixed_inputs() {
    let a = issue(&["--data-hex", "c0ffee"]);
    let b = issue(&["--data-hex", "c0ffee"]);
    assert_eq!(
        a, b,
        "RFC 6979 and fixed id, time and data give the same token"
    );
}

#[test]
fn verify_accepts_and_prints_the_contract_json() {
    let token = issue(&["--status-requested", "--data-hex", "c0ffee"]);
    let out = verify(&token, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["valid"], true);
    assert_eq!(v["error"], Value::Null);
    assert_eq!(v["token_id"], "000102030405060708090a0b0c0d0e0f");
    assert_eq!(v["options"], 1);
    assert_eq!(v["issuer"], AP);
    assert_eq!(v["issued_time"], NOW);
    assert_eq!(v["data"], "c0ffee");
    assert_eq!(v["binding"], "");
    assert!(v["signature"].as_str().unwrap().starts_with("30"));
}

#[test]
fn verify_refuses_with_code_and_step_and_exit_1() {
    let token = issue(&[]);
    let out = verify(&token, &["--now", "2026-11-22T18:00:00Z"]);
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(v["valid"], false);
    assert_eq!(v["error"]["code"], "stale");
    assert_eq!(v["error"]["step"], "§3.1 step 9, §3.5 step 7");
    assert!(stderr(&out).contains("stale"));
}

#[test]
fn verify_refuses_a_binding_it_cannot_check() {
    let token = issue(&["--binding", "aabb"]);
    assert_eq!(
        json(&verify(&token, &[]))["error"]["code"],
        "binding_unexpected"
    );
    assert_eq!(
        json(&verify(&token, &["--binding", "aacc"]))["error"]["code"],
        "binding_mismatch"
    );
    assert_eq!(
        verify(&token, &["--binding", "aabb"]).status.code(),
        Some(0)
    );
}

#[test]
fn verify_honours_skew_in_both_directions() {
    let token = issue(&[]);
    let future = verify(&token, &["--now", "2026-11-22T15:30:00Z", "--skew", "60"]);
    assert_eq!(json(&future)["error"]["code"], "issued_in_future");
    let ok = verify(&token, &["--now", "2026-11-22T15:30:00Z", "--skew", "100"]);
    assert_eq!(ok.status.code(), Some(0));
}

#[test]
fn verify_reads_the_token_from_stdin() {
    let token = issue(&[]);
    let args = [
        "token",
        "verify",
        "-",
        "--key",
        AP_SPKI,
        "--issuer",
        AP,
        "--audience",
        RP,
        "--now",
        LATER,
    ];
    let out = dar_stdin(&args, &format!("{token}\n"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("valid"));
}

#[test]
fn malformed_token_is_invalid_not_a_usage_error() {
    let out = verify("AAAA", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out)["error"]["code"], "truncated");
    let out = verify("not base64!", &[]);
    assert_eq!(json(&out)["error"]["code"], "base64_invalid");
}

#[test]
fn usage_errors_exit_2() {
    let token = issue(&[]);
    for args in [
        vec!["token", "verify", &token, "--key", AP_SPKI, "--issuer", AP],
        vec![
            "token",
            "verify",
            &token,
            "--key",
            "nonsense",
            "--issuer",
            AP,
            "--audience",
            RP,
        ],
        vec![
            "token",
            "verify",
            &token,
            "--key",
            AP_SPKI,
            "--issuer",
            "ftp://x",
            "--audience",
            RP,
        ],
        vec![
            "token",
            "verify",
            &token,
            "--key",
            AP_SPKI,
            "--issuer",
            AP,
            "--audience",
            RP,
            "--now",
            "soon",
        ],
        vec!["token", "frobnicate"],
    ] {
        let out = dar(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn countersigned_round_trip_and_replay_of_a_foreign_rp() {
    let token = issue(&["--low-friction"]);
    let cs = countersign(&token);
    let out = verify_countersigned(&cs, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["valid"], true);
    assert_eq!(v["issuer"], RP);
    assert_eq!(v["audience"], AP);
    assert_eq!(v["options"], 2, "low friction is carried over (§6.4)");
    assert_eq!(v["inner"]["token_id"], "000102030405060708090a0b0c0d0e0f");

    let other_rp = verify_countersigned(&cs, &["--rp", "https://other.example.net"]);
    assert_eq!(json(&other_rp)["error"]["code"], "countersigner_mismatch");
}

#[test]
fn countersigned_verify_refuses_a_recovery_token() {
    let token = issue(&[]);
    let out = verify_countersigned(&token, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out)["error"]["code"], "wrong_type");
    assert_eq!(json(&out)["error"]["step"], "§3.5 step 3");
}

#[test]
fn inspect_prints_every_field() {
    let token = issue(&["--data-hex", "01", "--binding", "02"]);
    let out = dar(&["token", "inspect", &token, "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let v = json(&out);
    for key in [
        "version",
        "type",
        "token_id",
        "options",
        "issuer",
        "audience",
        "issued_time",
        "data",
        "binding",
        "signature",
    ] {
        assert!(v.get(key).is_some(), "{key}");
    }
    assert_eq!(
        (v["version"].clone(), v["type"].clone()),
        (0.into(), 0.into())
    );
    assert_eq!(
        (v["data"].clone(), v["binding"].clone()),
        ("01".into(), "02".into())
    );
}

#[test]
fn issue_seals_and_decrypt_opens_both_layouts() {
    for layout in ["dar-v1", "darrrr-v0"] {
        let token = issue(&["--account", "alice", "--aes-key", AES, "--layout", layout]);
        let out = dar(&["token", "decrypt", &token, "--aes-key", AES, "--json"]);
        assert_eq!(out.status.code(), Some(0), "{layout}: {}", stderr(&out));
        let hex = json(&out)["plaintext_hex"].as_str().unwrap().to_owned();
        assert!(hex.ends_with(&hex::encode("alice")), "{layout}: {hex}");
        let pinned = dar(&[
            "token",
            "decrypt",
            &token,
            "--aes-key",
            AES,
            "--layout",
            layout,
        ]);
        assert_eq!(pinned.status.code(), Some(0), "{layout}");
        // The countersigned token carries the same sealed data inside.
        let cs = countersign(&token);
        let out = dar(&["token", "decrypt", &cs, "--aes-key", AES, "--json"]);
        assert_eq!(json(&out)["plaintext_hex"].as_str().unwrap(), hex);
    }
}

#[test]
fn decrypt_with_the_wrong_key_is_opaque() {
    let token = issue(&["--account", "alice", "--aes-key", AES]);
    let wrong = "00".repeat(32);
    let out = dar(&["token", "decrypt", &token, "--aes-key", &wrong, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out)["error"]["code"], "seal_open_failed");
    assert!(!stderr(&out).contains(&wrong));
}

#[test]
fn keygen_writes_a_private_key_and_prints_the_public_one() {
    let dir = std::env::temp_dir().join(format!("dar-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path: PathBuf = dir.join("key.pem");
    let _ = std::fs::remove_file(&path);
    let out = dar(&["keygen", "--out", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let spki = stdout(&out);
    assert!(
        spki.starts_with("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE"),
        "{spki}"
    );
    let pem = std::fs::read_to_string(&path).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    // Refuses to overwrite without --force.
    assert_eq!(
        dar(&["keygen", "--out", path.to_str().unwrap()])
            .status
            .code(),
        Some(2)
    );
    // The key file and the printed public key work together; the key path is accepted as PUB.
    let pub_path = dir.join("key.pub");
    std::fs::write(&pub_path, &spki).unwrap();
    let token_out = dar(&[
        "token",
        "issue",
        "--key",
        path.to_str().unwrap(),
        "--issuer",
        AP,
        "--audience",
        RP,
        "--now",
        NOW,
    ]);
    let token = stdout(&token_out);
    let out = dar(&[
        "token",
        "verify",
        &token,
        "--key",
        pub_path.to_str().unwrap(),
        "--issuer",
        AP,
        "--audience",
        RP,
        "--now",
        LATER,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn errors_never_echo_private_keys() {
    let out = dar(&[
        "token",
        "issue",
        "--key",
        "MHcCAQEEIBrlBxPk8Flc7Ndnchyig",
        "--issuer",
        AP,
        "--audience",
        RP,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!stderr(&out).contains("MHcCAQEEIBrlBxPk8Flc7Ndnchyig"));
}

#[test]
fn bench_prints_ops_and_allocations_for_every_backend() {
    let out = dar(&["bench", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json(&out);
    let backends = v["backends"].as_array().unwrap();
    let labels: Vec<&str> = backends
        .iter()
        .map(|b| b["backend"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["rust-crypto", "default", "aws-lc"]);
    for backend in backends {
        for op in ["issue", "rp_validate", "countersign", "ap_validate"] {
            assert!(backend["ops"][op].as_f64().unwrap() > 0.0, "{op}");
            // The recovery provider's save checks read the borrowed token and allocate
            // nothing; the others build an output or open the payload, with a handful of
            // buffers at most.
            let allocs = backend["allocs_per_op"][op].as_f64().unwrap();
            let bytes = backend["alloc_bytes_per_op"][op].as_f64().unwrap();
            if op == "rp_validate" {
                assert_eq!((allocs, bytes), (0.0, 0.0), "{op}");
            } else {
                assert!((1.0..100.0).contains(&allocs), "{op}: {allocs}");
                assert!(bytes > 0.0, "{op}");
            }
        }
        assert!(backend.get("all_cores").is_none());
    }
    assert_eq!(backends[2]["name"], "aws-lc-rs (randomized signing)");
}

#[test]
fn bench_measures_one_backend_in_a_table() {
    let out = dar(&["bench", "--backend", "rust-crypto"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("backend rust-crypto (rustcrypto)"),
        "{text}"
    );
    assert!(text.contains("allocs/op"), "{text}");
    for op in ["issue", "rp_validate", "countersign", "ap_validate"] {
        assert!(text.contains(op), "{op}");
    }
    assert!(!text.contains("aws-lc"), "{text}");

    let out = dar(&["bench", "--backend", "openssl"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn load_refuses_non_loopback_targets_and_bad_options_before_starting_anything() {
    for (args, message) in [
        (
            &[
                "load",
                "--database",
                "postgres://postgres@db.example.com:5432/test",
            ][..],
            "dar: refusing non-loopback target `db.example.com`: dar load only connects to \
             localhost and loopback addresses\n",
        ),
        (
            &[
                "load",
                "--database",
                "postgres://127.0.0.1/test?hostaddr=192.0.2.7",
            ][..],
            "dar: refusing non-loopback target `192.0.2.7`: dar load only connects to \
             localhost and loopback addresses\n",
        ),
        (
            &["load", "--database", "mysql://127.0.0.1/test"][..],
            "dar: --database must be `sqlite` or a postgres:// URL\n",
        ),
        (
            &["load", "--concurrency", "0"][..],
            "dar: --concurrency must be between 1 and 1024\n",
        ),
        (
            &["load", "--connections", "10001"][..],
            "dar: --connections must be between 1 and 10000\n",
        ),
    ] {
        let out = dar(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(stderr(&out), message, "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}
