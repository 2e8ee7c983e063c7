//! The generated protocol types, services and clients (`build.rs` from
//! `proto/`), nested by protobuf package so their cross references resolve,
//! with short names for what the rest of the crate uses.

#![allow(clippy::all, missing_docs, reason = "generated code")]

pub mod pb {
    tonic::include_proto!("pb");
}

pub mod google {
    pub mod rpc {
        tonic::include_proto!("google.rpc");
    }
}

pub mod fsutil {
    pub mod types {
        tonic::include_proto!("fsutil.types");
    }
}

pub mod moby {
    pub mod filesync {
        pub mod v1 {
            tonic::include_proto!("moby.filesync.v1");
        }
    }
    pub mod buildkit {
        pub mod v1 {
            tonic::include_proto!("moby.buildkit.v1");
            pub mod types {
                tonic::include_proto!("moby.buildkit.v1.types");
            }
            pub mod apicaps {
                tonic::include_proto!("moby.buildkit.v1.apicaps");
            }
            pub mod frontend {
                tonic::include_proto!("moby.buildkit.v1.frontend");
            }
        }
    }
}

pub use fsutil::types::{packet::PacketType, Packet, Stat};
/// `moby.buildkit.v1`: the Control service.
pub use moby::buildkit::v1 as control;
/// `moby.buildkit.v1.frontend`: the LLBBridge gateway.
pub use moby::buildkit::v1::frontend as gateway;
/// `moby.filesync.v1`: the session's FileSync and Auth.
pub use moby::filesync::v1 as filesync;
