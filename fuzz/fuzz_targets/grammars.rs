//! Docker's command-line grammars (-p, --mount, -v, --tmpfs, sizes, ...).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| cais_client::opts::fuzz_grammars(data));
