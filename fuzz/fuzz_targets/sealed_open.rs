//! Sealing: open hostile blobs (must fail), seal/open round trip in both layouts, payload canonicality.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dar_core::fuzzing::fuzz_open(data));
