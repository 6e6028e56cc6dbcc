#![no_main]
//! See `warrant::fuzzing::spiffe_id`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| warrant::fuzzing::spiffe_id(data));
