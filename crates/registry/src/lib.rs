//! The OCI distribution client: `client` is a blocking client (ureq +
//! rustls) that learns the auth scheme from the first 401
//! (`client::auth`: Basic, bearer tokens cached per scope), checks the
//! manifests it fetches with the shared model (`cais-oci`), streams blobs
//! through a size-and-digest-checking reader and pushes (HEAD,
//! cross-repository mount, PUT or PATCH chunks). `client::tls` trusts the
//! system roots, `--ca-cert` and `certs.d`; `client::credentials` reads
//! docker's `config.json`. The client knows nothing of the image store.
//!
//! The registry server (`cais registry serve`) is `cais-registry-server`:
//! the image store, builds and the engine use this crate and compile no
//! server.
pub mod client;
