#![no_main]
//! See `warrant::fuzzing::cel_specs`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| warrant::fuzzing::cel_specs(data));
