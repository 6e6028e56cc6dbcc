#![no_main]
//! See `warrant::fuzzing::trace_context`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| warrant::fuzzing::trace_context(data));
