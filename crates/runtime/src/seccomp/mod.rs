//! Placeholder until the seccomp compiler lands.
use nix::errno::Errno;
use oci_spec::runtime::LinuxSeccomp;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("seccomp is not built yet")]
    Unsupported,
}

pub struct Filter;

pub fn compile(_profile: &LinuxSeccomp) -> Result<Filter, Error> {
    Err(Error::Unsupported)
}

impl Filter {
    pub fn install(&self) -> Result<(), Errno> {
        Err(Errno::ENOSYS)
    }
}
