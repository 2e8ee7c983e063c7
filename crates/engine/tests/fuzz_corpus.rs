//! The fuzz targets' corpora and regressions (`fuzz/`) as ordinary tests:
//! each input through the same check the fuzz target makes.

#[test]
fn build_context_inputs() {
    for (name, data) in cais_testkit::fuzz_inputs("build_context") {
        eprintln!("{name}");
        cais_engine::fuzzing::build_context(&data);
    }
}

#[test]
fn filters_inputs() {
    for (name, data) in cais_testkit::fuzz_inputs("filters") {
        eprintln!("{name}");
        cais_engine::fuzzing::filters(&data);
    }
}
