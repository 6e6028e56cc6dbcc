#![no_main]
//! See `warrant::fuzzing::jwt_svid`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| warrant::fuzzing::jwt_svid(data));
