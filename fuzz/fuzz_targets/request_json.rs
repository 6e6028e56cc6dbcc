#![no_main]
//! See `warrant::fuzzing::request_json`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| warrant::fuzzing::request_json(data));
