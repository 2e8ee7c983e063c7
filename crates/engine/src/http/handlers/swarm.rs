//! The swarm endpoints (`/swarm`, `/nodes`, `/services`, `/tasks`,
//! `/secrets`, `/configs`) of a node that is not in a swarm: dockerd's
//! `503` and words, which clients read to tell "no swarm" from a failure
//! (SDKs' clean-up leaves a swarm with `force` and expects them). cais
//! never joins or starts one: `init` and `join` are refused as not
//! implemented.

use hyper::{Method, Response};

use crate::error::{Error, Result, NOT_A_SWARM_MANAGER as NOT_A_MANAGER};
use crate::http::plumbing::Body;

/// dockerd's answer to `POST /swarm/leave` on a node outside a swarm.
pub(crate) const NOT_IN_A_SWARM: &str = "This node is not part of a swarm";

/// `/swarm/...` (`segs` after `swarm`).
pub(crate) fn swarm(method: &Method, segs: &[&str]) -> Result<Response<Body>> {
    match (method, segs) {
        (&Method::POST, ["leave"]) => Err(Error::Unavailable(NOT_IN_A_SWARM.into())),
        (&Method::POST, ["init" | "join"]) => Err(Error::NotImplemented(
            "swarm mode is not implemented by this daemon (cais): it cannot start or join a swarm"
                .into(),
        )),
        _ => Err(Error::Unavailable(NOT_A_MANAGER.into())),
    }
}

/// `/nodes`, `/services`, `/tasks`, `/secrets`, `/configs` and everything
/// under them: only a manager answers those.
pub(crate) fn manager_only() -> Result<Response<Body>> {
    Err(Error::Unavailable(NOT_A_MANAGER.into()))
}
