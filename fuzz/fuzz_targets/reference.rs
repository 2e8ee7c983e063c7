//! Image references: parsed or refused; what parses prints back to itself.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| cais_oci::reference::fuzz_reference(data));
