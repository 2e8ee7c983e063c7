//! The build driver (in progress).

use crate::{Built, Environment, Error, Options, Progress, Result};

pub(crate) fn build(_env: &Environment, _opts: &Options, _p: &mut dyn Progress) -> Result<Built> {
    Err(Error::invalid("the build executor is not finished yet"))
}
