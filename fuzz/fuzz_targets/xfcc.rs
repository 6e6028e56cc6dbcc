#![no_main]
//! See `warrant::fuzzing::xfcc`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| warrant::fuzzing::xfcc(data));
