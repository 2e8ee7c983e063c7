//! The fuzz targets' corpora and regressions (`fuzz/`) as ordinary tests:
//! each input through the same check the fuzz target makes.

#[test]
fn reference_inputs() {
    for (name, data) in cais_testkit::fuzz_inputs("reference") {
        eprintln!("{name}");
        cais_oci::reference::fuzz_reference(&data);
    }
}

#[test]
fn manifest_inputs() {
    for (name, data) in cais_testkit::fuzz_inputs("manifest") {
        eprintln!("{name}");
        cais_oci::image::fuzz_manifest(&data);
    }
}
