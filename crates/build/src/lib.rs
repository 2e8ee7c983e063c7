//! Dockerfile builds: a pure parser (`dockerfile`) and, on top of the image
//! store and the runtime, an executor with a layer cache.

pub mod dockerfile;
