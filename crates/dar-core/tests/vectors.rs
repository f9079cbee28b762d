//! Runs every file of `test-vectors/` through the library (not the CLI): positive cases must be
//! accepted with the recorded fields and opened plaintext, negative cases refused with exactly
//! the recorded `code` and `step`, and the public SDKs' interop vectors decided as their
//! `dar_expected` says (the `decide` cases as interop/decisions.json records).
//!
//! The runner is `crates/dar-cli/src/vectors/run.rs`, shared with `dar vectors check`; it
//! calls only dar-core.

// Test code may unwrap and panic: a panic is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(missing_docs)]

#[allow(dead_code, unreachable_pub)]
#[path = "../../dar-cli/src/vectors/run.rs"]
mod run;

use std::path::PathBuf;

#[test]
fn test_vectors_behave_as_recorded() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../test-vectors");
    let summary =
        run::run_dir(&dir, &mut |case| println!("{case}")).unwrap_or_else(|e| panic!("{e}"));
    for line in &summary.decided {
        println!("decide {line}");
    }
    println!(
        "{} positive, {} negative, {} interop cases passed",
        summary.positive, summary.negative, summary.interop
    );
    assert!(
        summary.failures.is_empty(),
        "failing vectors:\n{}",
        summary.failures.join("\n")
    );
    assert!(
        summary.positive >= 20,
        "only {} positive cases",
        summary.positive
    );
    assert!(
        summary.negative >= 120,
        "only {} negative cases",
        summary.negative
    );
    assert!(
        summary.interop >= 130,
        "only {} interop cases judged",
        summary.interop
    );
    assert!(!summary.decided.is_empty(), "no `decide` case reported");
}
