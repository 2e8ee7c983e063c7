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
mod resources;

pub use bytes::bytes;
pub use duration::duration;
pub use env_file::env_file;
pub use filters::filters_json;
pub use mounts::{mount, tmpfs, volume};
pub use ports::{expose, port_key, publish};
pub use resources::{
    device, device_cgroup_rule, gpus, key_values, label_file, throttle_device, ulimit,
    weight_device, Device,
};

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

/// Fuzz entry point (`fuzz/` and the corpus tests): the text through every
/// grammar; each accepts or refuses it, never a panic.
#[doc(hidden)]
pub fn fuzz_grammars(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = publish(&text);
    let _ = expose(&text);
    let _ = port_key(&text);
    let _ = mount(&text);
    let _ = volume(&text);
    let _ = tmpfs(&text);
    let _ = ulimit(&text);
    let _ = device(&text);
    let _ = device_cgroup_rule(&text);
    let _ = weight_device(&text);
    let _ = throttle_device(&text, false);
    let _ = gpus(&text);
    let _ = bytes(&text);
    let _ = duration(&text);
    let _ = env_file(&text, |_| Some("x".into()));
    let _ = filters_json(&text.lines().map(str::to_string).collect::<Vec<_>>());
}
