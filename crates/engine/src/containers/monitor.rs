//! Monitors: one thread per running container, blocked on its shim until
//! the container exits, that hands the exit to whoever watches; and the
//! restart policies' decisions about what follows an exit.

use std::path::PathBuf;
use std::time::Duration;

use crate::containers::state::Container;
use crate::ids::now;
use crate::shim;

/// Waits on the shim in `dir` in a thread of its own, then calls
/// `on_exit` with the exit (255 when the shim could not say).
pub(crate) fn watch(dir: PathBuf, on_exit: impl FnOnce(shim::Exit) + Send + 'static) {
    std::thread::spawn(move || on_exit(shim::wait(&dir).unwrap_or_else(|_| unknown_exit())));
}

/// What an exit nobody saw is taken to be.
pub(crate) fn unknown_exit() -> shim::Exit {
    shim::Exit {
        exit_code: 255,
        oom_killed: false,
        finished_at: now(),
    }
}

/// Whether the restart policy restarts a container that just exited.
pub(crate) fn should_restart(c: &Container) -> bool {
    let policy = &c.host_config.restart_policy;
    match policy.name.as_str() {
        "always" | "unless-stopped" => !c.manually_stopped,
        "on-failure" => {
            c.state.exit_code() != 0
                && !c.manually_stopped
                && (policy.maximum_retry_count == 0 || c.restart_count < policy.maximum_retry_count)
        }
        _ => false,
    }
}

/// Whether a container found dead after the daemon was down (the host
/// restarted) comes back: "always" even if its exit was not a failure,
/// "unless-stopped" unless it was stopped.
pub(crate) fn restarts_after_host_restart(c: &Container) -> bool {
    match c.host_config.restart_policy.name.as_str() {
        "always" => true,
        "unless-stopped" => !c.manually_stopped,
        _ => false,
    }
}

/// The back-off before the next restart: 100 ms, doubling with each
/// restart, at most 51.2 s.
pub(crate) fn restart_delay(restart_count: i64) -> Duration {
    Duration::from_millis(100u64 << restart_count.clamp(0, 9))
}
