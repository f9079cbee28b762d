//! `dar load` end to end, small: both servers as child processes on SQLite, a few operations of
//! each request scenario and a few held connections, every one expected to succeed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Command;

/// The summary row of `scenario`: ok and failed counts.
fn row(stdout: &str, scenario: &str) -> (u64, u64) {
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.split_whitespace().next() == Some(scenario))
        .unwrap_or_else(|| panic!("no summary row for {scenario}:\n{stdout}"));
    let cells: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(cells[1], "sqlite", "{line}");
    (cells[2].parse().unwrap(), cells[3].parse().unwrap())
}

#[test]
fn a_small_run_succeeds_in_every_request_and_connection_scenario() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dar-cli-load");
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new(env!("CARGO_BIN_EXE_dar"))
        .args([
            "load",
            "--scenario",
            "configuration",
            "--scenario",
            "recover-account-return",
            "--scenario",
            "save-token",
            "--scenario",
            "connections",
            "--requests",
            "12",
            "--concurrency",
            "3",
            "--connections",
            "20",
            "--dir",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("minted 24 tokens"), "{stdout}");
    // Configuration GETs run for a set time, not a set count.
    let (ok, failed) = row(&stdout, "configuration");
    assert_eq!(failed, 0, "{stdout}");
    assert!(ok >= 12, "{stdout}");
    assert_eq!(row(&stdout, "recover-account-return"), (12, 0));
    // The configuration GETs give the floor under recover-account-return.
    assert!(
        stdout.contains("floor: a configuration GET cost the server")
            && stdout.contains("recover-account-return cost"),
        "{stdout}"
    );
    assert_eq!(row(&stdout, "save-token"), (12, 0));
    // One request on connecting, then one every 2 s while the 20 are held 6 s.
    let (ok, failed) = row(&stdout, "connections");
    assert_eq!(failed, 0, "{stdout}");
    assert!(ok >= 20, "{stdout}");
    assert!(
        stdout.contains("20 of 20 connections open at once"),
        "{stdout}"
    );
}
