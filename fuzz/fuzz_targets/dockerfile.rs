//! The Dockerfile parser: any text is parsed or refused with a line, never a panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| cais_build::dockerfile::fuzz_parse(data));
