//! Compiles the protocol subset in `proto/` (see its README) with the
//! `protoc` shipped by the `protoc-bin-vendored` crate, so a build needs
//! no protoc on the host.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    let protos: Vec<PathBuf> = ["control", "gateway", "filesync"]
        .iter()
        .map(|p| PathBuf::from(format!("proto/{p}.proto")))
        .collect();
    println!("cargo:rerun-if-changed=proto");
    tonic_prost_build::configure()
        .build_transport(false)
        .emit_rerun_if_changed(false)
        .compile_with_config(
            config,
            &protos,
            &[PathBuf::from("proto"), protoc_bin_vendored::include_path()?],
        )?;
    Ok(())
}
