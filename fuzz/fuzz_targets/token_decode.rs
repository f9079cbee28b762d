//! Token wire format: decode, re-encode the internals, compare bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dar_core::fuzzing::fuzz_token_decode(data));
