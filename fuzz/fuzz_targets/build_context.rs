//! `POST /build` context bodies, unpacked as the daemon does.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| cais_engine::fuzzing::build_context(data));
