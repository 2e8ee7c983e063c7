//! The fuzz targets' corpora and regressions (`fuzz/`) as ordinary tests:
//! each input through the same check the fuzz target makes. (The reference
//! and manifest targets exercise the shared model: `crates/oci/tests`.)

#[test]
fn layer_tar_inputs() {
    for (name, data) in cais_testkit::fuzz_inputs("layer_tar") {
        eprintln!("{name}");
        cais_image::unpack::fuzz_layer(&data);
    }
}
