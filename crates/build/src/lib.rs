//! Dockerfile builds: a pure parser (`dockerfile`, `dockerignore`) and, on
//! top of the image store and the runtime, an executor with a layer cache.

pub mod dockerfile;
pub mod dockerignore;
