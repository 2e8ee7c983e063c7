//! Layer extraction (plain, gzip, zstd): never a panic, never a write outside.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| cais_image::unpack::fuzz_layer(data));
