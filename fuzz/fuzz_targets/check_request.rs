#![no_main]
//! See `warrant::fuzzing::check_request`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| warrant::fuzzing::check_request(data));
