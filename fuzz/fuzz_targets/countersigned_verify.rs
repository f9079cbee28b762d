//! Countersigned token: decode, then the account provider's return checks with fixed keys.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dar_core::fuzzing::fuzz_countersigned(data));
