//! The agent's errors.

/// What went wrong, with what the agent was doing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}")]
    Engine {
        what: String,
        source: cais_client::Error,
    },
    #[error("{what}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{what}")]
    Kube {
        what: String,
        /// Boxed: the client's error carries the server's whole Status.
        source: Box<cais_kube::Error>,
    },
    #[error("image {image}: {message}")]
    Image { image: String, message: String },
    #[error("pod {pod}: {message}")]
    InvalidPod { pod: String, message: String },
}

pub type Result<T> = std::result::Result<T, Error>;
