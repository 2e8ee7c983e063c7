//! The fuzz targets' corpora and regressions (`fuzz/`) as ordinary tests:
//! each input through the same check the fuzz target makes.

#[test]
fn grammars_inputs() {
    for (name, data) in cais_testkit::fuzz_inputs("grammars") {
        eprintln!("{name}");
        cais_client::opts::fuzz_grammars(&data);
    }
}
