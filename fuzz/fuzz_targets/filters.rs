//! The `filters` query parameter of every list, prune and events endpoint.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| cais_engine::fuzzing::filters(data));
