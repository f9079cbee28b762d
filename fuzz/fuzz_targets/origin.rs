//! Origins: development parser and wire parser, canonical round trip.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dar_core::fuzzing::fuzz_origin(data));
