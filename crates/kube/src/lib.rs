//! A Kubernetes API client for cais' controllers, scheduler and node agent,
//! over the types of `k8s-openapi`.
//!
//! Module map:
//! - `config`: kubeconfig files (current context, CA, client certificate
//!   or token, inline or as files);
//! - `client`: TLS, a pool of HTTP/1.1 connections, requests and streams;
//! - `api`: `Api<K>`, the typed verbs (get, list, create, replace, patch,
//!   delete, the status subresource, `pods/binding`, watch);
//! - `watch`: watch streams, line by line, bookmarks and 410 Gone;
//! - `informer`: list + watch into a cache, relisting on 410, with
//!   change handlers; `queue`: the work queue of keys controllers drain;
//! - `error`: errors, a refused request carrying the server's Status.

pub mod api;
pub mod client;
pub mod config;
pub mod error;
pub mod informer;
pub mod queue;
pub mod watch;

pub use api::{Api, DeleteParams, ListParams, ObjectList, Patch};
pub use client::Client;
pub use config::Config;
pub use error::{Error, Result, Status};
pub use informer::{key, split_key, Informer, Store};
pub use k8s_openapi;
pub use queue::WorkQueue;
pub use watch::{WatchEvent, WatchStream};
