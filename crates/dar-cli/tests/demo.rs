//! `dar demo` end to end: the built binary sets up both roles on loopback, runs the story,
//! and leaves the recovery provider's notification as an `.eml` file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Command;

fn temp_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("dar-cli-demo")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn demo_runs_every_step_and_writes_the_notification() {
    let dir = temp_dir("story");
    let output = Command::new(env!("CARGO_BIN_EXE_dar"))
        .args(["demo", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status.code()
    );
    for (n, words) in [
        (1, "signs up at the account provider"),
        (2, "signs up at the recovery provider"),
        (3, "sets up account recovery"),
        (4, "calls the account provider back (token-status)"),
        (5, "recovers through the recovery provider"),
        (6, "lockout-recovery policy decides"),
        (7, "a replay of the same countersigned token is refused"),
        (8, "the policy unlocks at once"),
        (9, "must set up a new second factor"),
        (10, "a timed unlock starts and completes"),
    ] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("[{n}/10]")))
            .unwrap_or_else(|| panic!("no step {n} in:\n{stdout}"));
        assert!(line.contains(words), "step {n}: {line}");
    }
    assert_eq!(
        stdout.matches("… ok (").count() + stdout.matches("\nok (").count(),
        10,
        "{stdout}"
    );
    assert!(
        stdout.contains("the policy: Enough evidence for a timed unlock"),
        "{stdout}"
    );
    assert!(
        stdout.contains("the policy: Enough evidence to unlock your account now"),
        "{stdout}"
    );
    assert!(
        stdout.contains("the worker completed the unlock"),
        "{stdout}"
    );
    assert!(stdout.contains("replayed"), "{stdout}");
    let mails: Vec<_> = std::fs::read_dir(dir.join("mail"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
        .collect();
    assert!(
        !mails.is_empty(),
        "no .eml in {}",
        dir.join("mail").display()
    );
    // Nothing secret on the terminal.
    assert!(!stdout.contains("correct horse"), "{stdout}");
    assert!(!stdout.contains("PRIVATE KEY"), "{stdout}");
}

#[test]
fn demo_refuses_a_directory_that_is_not_empty() {
    let dir = temp_dir("not_empty");
    std::fs::write(dir.join("something"), "x").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_dar"))
        .args(["demo", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not empty"));
}

#[test]
fn demo_with_cancel_cancels_the_timed_unlock_through_the_mailed_link() {
    let dir = temp_dir("cancel");
    let output = Command::new(env!("CARGO_BIN_EXE_dar"))
        .args(["demo", "--cancel", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("[10/10]"))
        .unwrap_or_else(|| panic!("no step 10 in:\n{stdout}"));
    assert!(line.contains("the link in its notice cancels it"), "{line}");
    assert!(
        stdout.contains("cancelled; nothing about the account changed"),
        "{stdout}"
    );
    assert!(
        stdout.contains("the same link again: 410 (single use)"),
        "{stdout}"
    );
    // The account provider's notices, each with the cancel link, are in the mail directory.
    let notices = std::fs::read_dir(dir.join("mail"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("mail-"))
        .filter(|e| {
            std::fs::read_to_string(e.path())
                .unwrap()
                .contains("/recovery/cancel?c=")
        })
        .count();
    assert!(notices >= 1, "no notice with a cancel link");
}
