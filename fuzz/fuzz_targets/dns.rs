//! The embedded DNS server's codec: queries in, responses that parse back.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| cais_net::dns::fuzz_query(data));
