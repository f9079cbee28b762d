//! The committed vectors are exactly what the generator makes.

use std::path::PathBuf;

use super::{FB_SDK, files, first_difference};

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../test-vectors")
}

#[test]
fn committed_vectors_are_reproducible() {
    let dir = vectors_dir();
    let fb = std::fs::read_to_string(dir.join(FB_SDK))
        .expect("test-vectors/interop/fb-sdk-vectors.json");
    let generated = files(&fb).expect("generation succeeds");
    for (name, want) in &generated {
        let got = std::fs::read_to_string(dir.join(name))
            .unwrap_or_else(|e| panic!("test-vectors/{name}: {e}; run `cargo run -p dar-cli -- vectors generate test-vectors`"));
        assert!(
            got == *want,
            "test-vectors/{name} differs from what the generator makes{}; run `cargo run -p dar-cli -- vectors generate test-vectors` and review the diff",
            first_difference(&got, want)
        );
    }
}

#[test]
fn generating_twice_gives_the_same_bytes() {
    let fb = std::fs::read_to_string(vectors_dir().join(FB_SDK)).expect("fb-sdk-vectors.json");
    assert_eq!(files(&fb).expect("first"), files(&fb).expect("second"));
}

#[test]
fn every_committed_case_behaves_as_recorded() {
    let summary = super::run::run_dir(&vectors_dir(), &mut |_| {}).expect("vectors load");
    assert!(summary.failures.is_empty(), "{:#?}", summary.failures);
}
