//! Manifest validation: the registry server's and the image store's.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| cais_image::oci::fuzz_manifest(data));
