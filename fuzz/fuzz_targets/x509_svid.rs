#![no_main]
//! See `warrant::fuzzing::x509_svid`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| warrant::fuzzing::x509_svid(data));
