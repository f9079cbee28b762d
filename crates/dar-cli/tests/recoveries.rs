//! `dar recoveries`: staff review from the command line, on a SQLite database seeded through
//! dar-store, as an operator runs it next to a deployment.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use dar_store::{
    AccountId, EvidenceKind, NewEvidence, RecoveryId, RecoveryState, StateChange, Store,
};
use serde_json::Value;

const T0: i64 = 1_764_547_200;

fn dar(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dar"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", stdout(out)))
}

/// A fresh directory for one test.
fn temp_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("dar-cli-recoveries-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes a configuration with the roles given (TOML tables) and a SQLite database in `dir`;
/// returns the configuration's path and the database URL. The key files it names are not
/// read by `dar recoveries`.
fn write_config(dir: &Path, roles: &str) -> (String, String) {
    let database = format!("sqlite://{}", dir.join("dar.db").display());
    let text = format!(
        r#"listen = "127.0.0.1:0"
public_origin = "https://ap.test"
database = "{database}"
privacy_policy = "/privacy"
icon_152px = "/icon.png"

[tls]
local_ca_dir = "tls"

{roles}
"#
    );
    let path = dir.join("dar.toml");
    std::fs::write(&path, text).unwrap();
    (path.to_str().unwrap().to_owned(), database)
}

const ACCOUNT_PROVIDER: &str = r#"[account_provider]
signing_keys = ["ap.pem"]
sealing_keys = [{ id = 1, file = "seal.hex" }]
allowed_recovery_providers = ["https://rp.example.net"]

[account_provider.mail]
site_name = "Example AP"
"#;

/// `alice` (TOTP enrolled, two verified addresses, a live session) with two recoveries in
/// review and one refused; returns the account and the recoveries.
async fn seed(database: &str) -> (AccountId, [RecoveryId; 3]) {
    let store = Store::connect(database).await.unwrap();
    let alice = store
        .create_account("alice", "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA", T0)
        .await
        .unwrap()
        .unwrap();
    assert!(
        store
            .set_totp_secret(alice, "JBSWY3DPEHPK3PXP")
            .await
            .unwrap()
    );
    assert!(store.accept_totp_step(alice, 1).await.unwrap());
    for address in ["alice@example.com", "alice@example.org"] {
        let email = store
            .add_email(alice, address, T0, &[], &[])
            .await
            .unwrap()
            .unwrap();
        assert!(store.mark_email_verified(email, T0, &[]).await.unwrap());
    }
    store
        .create_session("session-hash", alice, true, T0)
        .await
        .unwrap();
    let mut ids = Vec::new();
    for (handle, to) in [
        ("h1", RecoveryState::Review),
        ("h2", RecoveryState::Review),
        ("h3", RecoveryState::Refused),
    ] {
        let r = store
            .start_recovery(alice, handle, T0 + 10, Some("192.0.2.7"), &[], &[])
            .await
            .unwrap();
        let evidence = NewEvidence {
            kind: EvidenceKind::Delegated,
            reference: "00112233445566778899aabbccddeeff".into(),
            detail: "https://rp.example.net, low friction: no\x1b[31m".into(),
        };
        assert!(
            store
                .add_evidence(r.id, &evidence, T0 + 20, &[])
                .await
                .unwrap()
        );
        let change =
            StateChange::new(&[RecoveryState::Collecting], to, T0 + 30).outcome_rule("staff check");
        assert!(
            store
                .set_recovery_state(r.id, &change, &[], &[])
                .await
                .unwrap()
        );
        ids.push(r.id);
    }
    store.close().await;
    (alice, [ids[0], ids[1], ids[2]])
}

#[tokio::test]
async fn staff_list_show_approve_and_deny() {
    let dir = temp_dir("flow");
    let (config, database) = write_config(&dir, ACCOUNT_PROVIDER);
    let (alice, [first, second, refused]) = seed(&database).await;
    let id = |r: RecoveryId| r.0.to_string();

    // list: an aligned table, newest first; the filter; JSON.
    let out = dar(&["recoveries", "--config", &config, "list"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[0].starts_with("ID  STATE    ACCOUNT  RULE         EVIDENCE  STARTED"));
    assert!(lines[1].starts_with(&format!(
        "{}   refused  alice    staff check  1",
        id(refused)
    )));
    assert!(lines[3].contains("2025-12-01T00:00:10Z"), "{text}");
    let state_col = lines[0].find("STATE").unwrap();
    assert!(
        lines
            .iter()
            .skip(1)
            .all(|l| l[state_col..].starts_with("re"))
    );

    let out = dar(&[
        "recoveries",
        "list",
        "--state",
        "review",
        "--json",
        "--config",
        &config,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let listed = json(&out);
    let items = listed["recoveries"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["id"], second.0);
    assert_eq!(items[1]["id"], first.0);
    assert_eq!(items[0]["username"], "alice");
    assert_eq!(items[0]["state"], "review");
    assert_eq!(items[0]["evidence"], 1);
    assert_eq!(items[0]["created_at"], T0 + 10);
    assert_eq!(
        dar(&[
            "recoveries",
            "--config",
            &config,
            "list",
            "--limit",
            "1",
            "--json"
        ])
        .stdout
        .iter()
        .filter(|b| **b == b'{')
        .count(),
        2,
        "one object holding one recovery"
    );

    // show: a readable block; stored text cannot drive the terminal.
    let out = dar(&["recoveries", "--config", &config, "show", &id(first)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!(
            "recovery {}\n  account      alice (id {alice})\n  state        review\n",
            id(first)
        )),
        "{text}"
    );
    assert!(
        text.contains("  started      2025-12-01T00:00:10Z from 192.0.2.7\n"),
        "{text}"
    );
    assert!(text.contains("evidence (1)\n"), "{text}");
    assert!(text.contains("delegated  00112233445566778899aabbccddeeff  https://rp.example.net, low friction: no\\u{1b}[31m"), "{text}");
    assert!(!text.contains('\x1b'));
    let out = dar(&[
        "recoveries",
        "--config",
        &config,
        "show",
        &id(first),
        "--json",
    ]);
    let shown = json(&out);
    assert_eq!(shown["state"], "review");
    assert_eq!(shown["source_address"], "192.0.2.7");
    assert_eq!(shown["evidence"][0]["kind"], "delegated");
    assert_eq!(
        shown["evidence"][0]["reference"],
        "00112233445566778899aabbccddeeff"
    );

    // approve: unlocked, factor reset, sessions revoked, two notices, audited with the name.
    let out = dar(&[
        "recoveries",
        "--config",
        &config,
        "approve",
        &id(first),
        "--staff",
        "ann",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!(
            "recovery {} (alice) approved by staff:ann: review -> unlocked; second factor reset, every session revoked; 2 notice(s) queued\n",
            id(first)
        )
    );
    let store = Store::connect(&database).await.unwrap();
    let r = store.recovery(first).await.unwrap().unwrap();
    assert_eq!(r.state, RecoveryState::Unlocked);
    assert_eq!(r.decided_by.as_deref(), Some("staff:ann"));
    let account = store.account(alice).await.unwrap().unwrap();
    assert!(account.totp_secret.is_none() && !account.totp_confirmed);
    assert!(store.session("session-hash").await.unwrap().is_none());
    let mails = store.due_mail(1 << 40, 1 << 41, 10).await.unwrap();
    assert_eq!(mails.len(), 2);
    assert!(
        mails
            .iter()
            .all(|m| m.subject == "[Example AP] Your account recovery was approved")
    );
    store.close().await;

    // approving again: refused with the current state, exit 1.
    let out = dar(&[
        "recoveries",
        "--config",
        &config,
        "approve",
        &id(first),
        "--staff",
        "bob",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "dar: recovery {} is unlocked: only a recovery in review can be approved\n",
            id(first)
        )
    );
    // a refused recovery cannot be approved either.
    let out = dar(&[
        "recoveries",
        "--config",
        &config,
        "approve",
        &id(refused),
        "--staff",
        "ann",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is refused"), "{}", stderr(&out));

    // deny, with JSON output; the history shows both decisions and who made them.
    let out = dar(&[
        "recoveries",
        "--config",
        &config,
        "deny",
        &id(second),
        "--staff",
        "bob",
        "--reason",
        "caller failed the callback check",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let denied = json(&out);
    assert_eq!(denied["from"], "review");
    assert_eq!(denied["to"], "denied");
    assert_eq!(denied["notices"], 2);
    assert_eq!(denied["username"], "alice");
    let out = dar(&[
        "recoveries",
        "--config",
        &config,
        "show",
        &id(second),
        "--json",
    ]);
    let shown = json(&out);
    assert_eq!(shown["state"], "denied");
    assert_eq!(shown["decided_by"], "staff:bob");
    let audit = shown["audit"].as_array().unwrap();
    assert_eq!(audit[0]["actor"], "staff:bob");
    assert_eq!(audit[0]["event"], "recovery.denied");
    assert!(
        audit[0]["detail"]
            .as_str()
            .unwrap()
            .contains("reason: caller failed the callback check")
    );
    assert_eq!(audit[1]["actor"], "staff:ann");
    assert_eq!(audit[1]["event"], "recovery.approved");

    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn refusals_and_usage_errors() {
    let dir = temp_dir("errors");
    let (config, database) = write_config(&dir, ACCOUNT_PROVIDER);
    seed(&database).await;

    // An unknown recovery: one line, exit 1.
    for args in [
        vec!["show", "9999"],
        vec!["approve", "9999", "--staff", "ann"],
        vec!["deny", "9999", "--staff", "ann", "--reason", "no"],
    ] {
        let mut full = vec!["recoveries", "--config", &config];
        full.extend(&args);
        let out = dar(&full);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(stderr(&out), "dar: recovery 9999 not found\n");
        assert!(out.stdout.is_empty());
    }

    // clap: deny without --reason, a bad state, a missing id: exit 2.
    let out = dar(&[
        "recoveries",
        "--config",
        &config,
        "deny",
        "1",
        "--staff",
        "ann",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--reason <TEXT>"), "{}", stderr(&out));
    let out = dar(&["recoveries", "--config", &config, "list", "--state", "open"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(
            "expected one of collecting, pending, unlocked, refused, cancelled, review, denied"
        ),
        "{}",
        stderr(&out)
    );
    let out = dar(&[
        "recoveries",
        "--config",
        &config,
        "approve",
        "0",
        "--staff",
        "ann",
    ]);
    assert_eq!(out.status.code(), Some(2));

    // Our own usage errors: no --config, a blank staff name or reason; nothing written.
    let out = dar(&["recoveries", "list"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "dar: recoveries: --config FILE is required (the deployment's configuration)\n"
    );
    let out = dar(&[
        "recoveries",
        "--config",
        &config,
        "approve",
        "1",
        "--staff",
        " ",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr(&out), "dar: the staff name must not be empty\n");
    let out = dar(&[
        "recoveries",
        "--config",
        &config,
        "deny",
        "1",
        "--staff",
        "ann",
        "--reason",
        "\n",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr(&out), "dar: the reason must not be empty\n");
    let store = Store::connect(&database).await.unwrap();
    assert_eq!(
        store.recovery(RecoveryId(1)).await.unwrap().unwrap().state,
        RecoveryState::Review
    );
    store.close().await;

    // A deployment that is not an account provider, and an unreadable configuration.
    let other = dir.join("rp");
    std::fs::create_dir_all(&other).unwrap();
    let (rp_config, _) = write_config(
        &other,
        "[recovery_provider]\ncountersign_keys = [\"rp.pem\"]\n",
    );
    let out = dar(&["recoveries", "--config", &rp_config, "list"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!("dar: {rp_config}: this deployment is not an account provider\n")
    );
    // An account provider whose database file is not there (a wrong path): refused, and no
    // empty database is left behind.
    let elsewhere = dir.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let (no_db_config, _) = write_config(&elsewhere, ACCOUNT_PROVIDER);
    let out = dar(&["recoveries", "--config", &no_db_config, "list"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!("dar: cannot open the database of {no_db_config}: no database file at this path\n")
    );
    assert!(!elsewhere.join("dar.db").exists());

    let missing = dir.join("missing.toml");
    let out = dar(&["recoveries", "--config", missing.to_str().unwrap(), "list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("dar: invalid configuration: "),
        "{}",
        stderr(&out)
    );

    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn delegated_recoveries_through_one_recovery_provider_in_a_window() {
    let dir = temp_dir("through");
    let (config, database) = write_config(&dir, ACCOUNT_PROVIDER);
    let (alice, _) = seed(&database).await;
    assert_eq!(alice, AccountId(1), "the rows below name alice by id");
    // Three accepted recoveries of alice (the role writes these; here they are written as
    // rows): two through rp.example.net, at T0 + 100 and T0 + 5000 (repudiated later), one
    // through another recovery provider at T0 + 200.
    let store = Store::connect(&database).await.unwrap();
    dar_store::testing::execute(
        &store,
        "insert into ap_token (ap_token_id, account_id, audience, state, created_at, \
         updated_at, secret_hash, signing_key, sealing_key_id) values \
         ('00000000000000000000000000000001', '1', 'https://rp.example.net', 'used', \
          1764547200, 1764547200, zeroblob(32), 'k', 1), \
         ('00000000000000000000000000000002', '1', 'https://other.example', 'used', \
          1764547200, 1764547200, zeroblob(32), 'k', 1), \
         ('00000000000000000000000000000003', '1', 'https://rp.example.net', 'used', \
          1764547200, 1764547200, zeroblob(32), 'k', 1); \
         insert into ap_recovery (ap_recovery_id, ap_token_id, account_id, recovery_provider, \
         recovered_at, low_friction, repudiated_at) values \
         ('aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', '00000000000000000000000000000001', '1', \
          'https://rp.example.net', 1764547300, 0, null), \
         ('bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb', '00000000000000000000000000000002', '1', \
          'https://other.example', 1764547400, 0, null), \
         ('cccccccccccccccccccccccccccccccc', '00000000000000000000000000000003', '1', \
          'https://rp.example.net', 1764552200, 1, 1764553200)",
    )
    .await
    .unwrap();
    store.close().await;
    let through = |extra: &[&str]| {
        let mut args = vec![
            "recoveries",
            "--config",
            &config,
            "through",
            "https://rp.example.net",
        ];
        args.extend(extra);
        dar(&args)
    };

    // The first hour after T0: one recovery.
    let out = through(&[
        "--since",
        "2025-12-01T00:00:00Z",
        "--until",
        "2025-12-01T01:00:00Z",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["recovery_provider"], "https://rp.example.net");
    let items = v["recoveries"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["countersigned_id"], "a".repeat(32));
    assert_eq!(items[0]["token_id"], "00000000000000000000000000000001");
    assert_eq!(items[0]["username"], "alice");
    assert_eq!(items[0]["account"], "1");
    assert_eq!(items[0]["recovered_at"], T0 + 100);
    assert_eq!(items[0]["repudiated_at"], Value::Null);

    // Until now: both, oldest first, as a table; the other provider's never.
    let out = through(&["--since", "2025-12-01T00:00:00Z"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("RECOVERED"), "{text}");
    assert!(lines[1].starts_with("2025-12-01T00:01:40Z"), "{text}");
    assert!(lines[2].starts_with("2025-12-01T01:23:20Z"), "{text}");
    assert!(
        lines[2].contains("yes           2025-12-01T01:40:00Z"),
        "{text}"
    );
    assert!(!text.contains(&"b".repeat(32)), "{text}");
    let out = through(&["--since", "2025-12-01T00:00:00Z", "--limit", "1", "--json"]);
    assert_eq!(json(&out)["recoveries"].as_array().unwrap().len(), 1);

    // Nothing in the window; an empty window; a bad origin or time: usage errors, exit 2.
    let out = through(&["--since", "2025-12-02T00:00:00Z"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        stdout(&out),
        "no recoveries through https://rp.example.net in the window\n"
    );
    let out = through(&[
        "--since",
        "2025-12-01T01:00:00Z",
        "--until",
        "2025-12-01T00:00:00Z",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "dar: the window is empty: its start must be before its end\n"
    );
    let out = dar(&[
        "recoveries",
        "--config",
        &config,
        "through",
        "ftp://rp.example.net",
        "--since",
        "2025-12-01T00:00:00Z",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with("dar: recoveries through: "),
        "{}",
        stderr(&out)
    );
    let out = through(&["--since", "yesterday"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("expected an RFC 3339 time"),
        "{}",
        stderr(&out)
    );
}
