//! Manifest validation (`cais_oci`): the registry's and the image store's.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| cais_oci::image::fuzz_manifest(data));
