#![no_main]
//! See `warrant::fuzzing::policy`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| warrant::fuzzing::policy(data));
