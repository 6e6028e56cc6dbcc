#![no_main]
//! See `warrant::fuzzing::bundle`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| warrant::fuzzing::bundle(data));
