//! The engine's error type. Its variants are the semantic classes the API
//! maps to HTTP status codes in one place (`server::status_of`).

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 404
    #[error("{0}")]
    NotFound(String),
    /// 409
    #[error("{0}")]
    Conflict(String),
    /// 400
    #[error("{0}")]
    InvalidArgument(String),
    /// 403: refused by policy (removing a predefined network, or one
    /// that still has containers).
    #[error("{0}")]
    Forbidden(String),
    /// 304: the operation had nothing to do (start a running container...).
    #[error("{0}")]
    NotModified(String),
    /// 500
    #[error("{0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn internal(context: &str, e: impl std::fmt::Display) -> Error {
        Error::Internal(format!("{context}: {e}"))
    }
}

impl From<cais_image::Error> for Error {
    fn from(e: cais_image::Error) -> Error {
        let text = chain(&e);
        match e {
            cais_image::Error::NotFound { .. } => Error::NotFound(text),
            cais_image::Error::AlreadyExists { .. } => Error::Conflict(text),
            _ => Error::Internal(text),
        }
    }
}

impl From<cais_net::Error> for Error {
    fn from(e: cais_net::Error) -> Error {
        let text = chain(&e);
        match e {
            cais_net::Error::InvalidArgument(m) => Error::InvalidArgument(m),
            cais_net::Error::Conflict(m) => Error::Conflict(m),
            // Docker's wording (a 500), which the docker CLI prints as is.
            cais_net::Error::PortInUse { addr } => {
                Error::Internal(format!("Bind for {addr} failed: port is already allocated"))
            }
            _ => Error::Internal(text),
        }
    }
}

pub use cais_runtime::error::chain;
