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
        (5, "loses her second factor"),
        (6, "recovers through the recovery provider"),
        (7, "checks the countersigned token and shows the evidence"),
        (8, "a replay of the same countersigned token is refused"),
    ] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("[{n}/8]")))
            .unwrap_or_else(|| panic!("no step {n} in:\n{stdout}"));
        assert!(line.contains(words), "step {n}: {line}");
        assert!(line.contains("… ok ("), "step {n}: {line}");
    }
    assert!(stdout.contains("lockout-recovery POLICY"), "{stdout}");
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
