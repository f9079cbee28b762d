//! Strict DER ECDSA signatures: accept only canonical encodings that round-trip.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dar_core::fuzzing::fuzz_signature_from_der(data));
