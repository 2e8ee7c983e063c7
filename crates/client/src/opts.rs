//! Docker's command-line grammars, each a pure parser from the text a user
//! typed to what the API takes. Every refusal is an [`Error`] whose message
//! says what was wrong with which input, worded as the docker CLI words it
//! where it has wording.

mod bytes;
mod duration;
mod env_file;
mod filters;
mod mounts;
mod ports;

pub use bytes::bytes;
pub use duration::duration;
pub use env_file::env_file;
pub use filters::filters_json;
pub use mounts::{mount, tmpfs, volume};
pub use ports::{expose, port_key, publish};

/// A value the grammar refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Error(pub String);

pub type Result<T> = std::result::Result<T, Error>;

macro_rules! refuse {
    ($($arg:tt)*) => {
        return Err($crate::opts::Error(format!($($arg)*)))
    };
}
pub(crate) use refuse;
