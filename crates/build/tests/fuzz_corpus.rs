//! The fuzz targets' corpora and regressions (`fuzz/`) as ordinary tests:
//! each input through the same check the fuzz target makes.

#[test]
fn dockerfile_inputs() {
    for (name, data) in cais_testkit::fuzz_inputs("dockerfile") {
        eprintln!("{name}");
        cais_build::dockerfile::fuzz_parse(&data);
    }
}

#[test]
fn expand_inputs() {
    for (name, data) in cais_testkit::fuzz_inputs("expand") {
        eprintln!("{name}");
        cais_build::dockerfile::fuzz_expand(&data);
    }
}
