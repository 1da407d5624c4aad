#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| oauth2_core::harness::forwarded(data));
