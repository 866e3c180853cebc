#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| trailwarden::fuzz::templates(data));
