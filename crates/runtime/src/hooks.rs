//! Lifecycle hooks (runtime-spec config.md#posix-platform-hooks): each hook
//! gets the container state as JSON on stdin; a timeout kills it.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::Hook;

use crate::error::{Error, Result};
use crate::state::State;

/// Runs hooks in order; the first failure stops the list.
pub fn run_all(hooks: &[Hook], state: &State) -> Result<()> {
    let json = serde_json::to_vec(state).expect("state always serializes");
    for hook in hooks {
        run(hook, &json)?;
    }
    Ok(())
}

/// Runs every hook, logging failures instead of stopping (poststart, poststop).
pub fn run_all_warn(hooks: &[Hook], state: &State) {
    let json = serde_json::to_vec(state).expect("state always serializes");
    for hook in hooks {
        if let Err(e) = run(hook, &json) {
            crate::log::warn(&format!("{e}"));
        }
    }
}

fn run(hook: &Hook, state: &[u8]) -> Result<()> {
    let fail = |message: String| Error::Hook {
        path: hook.path().clone(),
        message,
    };
    let mut cmd = Command::new(hook.path());
    if let Some(args) = hook.args() {
        if let Some((arg0, rest)) = args.split_first() {
            cmd.arg0(arg0).args(rest);
        }
    }
    cmd.env_clear();
    for kv in hook.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| fail(format!("cannot start: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine: ignore EPIPE.
        let _ = stdin.write_all(state);
    }
    let deadline = hook
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(fail(format!("exited with {status}"))),
            Ok(None) => {}
            Err(e) => return Err(fail(format!("wait: {e}"))),
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(fail(format!(
                "timed out after {} s",
                hook.timeout().unwrap_or_default()
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
