//! Configuration documents: parse JSON, publish, re-parse, compare.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dar_core::fuzzing::fuzz_configuration(data));
