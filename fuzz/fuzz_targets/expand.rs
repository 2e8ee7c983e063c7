//! Variable expansion of words, heredoc bodies and word lists.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| cais_build::dockerfile::fuzz_expand(data));
