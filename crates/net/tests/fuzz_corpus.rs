//! The fuzz targets' corpora and regressions (`fuzz/`) as ordinary tests:
//! each input through the same check the fuzz target makes.

#[test]
fn dns_inputs() {
    for (name, data) in cais_testkit::fuzz_inputs("dns") {
        eprintln!("{name}");
        cais_net::dns::fuzz_query(&data);
    }
}
