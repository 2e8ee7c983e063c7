//! Foreground terminals: when `run` or `exec` keeps a terminal process in
//! the foreground without a console socket, the runtime itself relays
//! between its own stdin/stdout and the container's pty master.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};

use crate::error::Result;

/// Puts the host terminal in raw mode for the lifetime of the guard.
struct RawMode {
    saved: Option<nix::sys::termios::Termios>,
}

impl RawMode {
    fn enter() -> RawMode {
        use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin).ok();
        if let Some(t) = &saved {
            let mut raw = t.clone();
            cfmakeraw(&mut raw);
            let _ = tcsetattr(&stdin, SetArg::TCSANOW, &raw);
        }
        RawMode { saved }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.saved {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin(),
                nix::sys::termios::SetArg::TCSANOW,
                t,
            );
        }
    }
}

/// Relays stdio to `master` until `pid` exits; returns its exit code.
pub fn proxy_and_wait(master: OwnedFd, pid: i32) -> Result<i32> {
    copy_window_size(master.as_raw_fd());
    let _raw = RawMode::enter();
    let mut to_master =
        std::fs::File::from(master.try_clone().map_err(|e| crate::error::Error::Io {
            context: "duplicating the pty master".into(),
            source: e,
        })?);
    let mut from_master = std::fs::File::from(master);
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        let mut stdin = std::io::stdin();
        while let Ok(n) = stdin.read(&mut buf) {
            if n == 0 || to_master.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    let output = std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        let mut stdout = std::io::stdout();
        // EIO once the last slave holder exits.
        while let Ok(n) = from_master.read(&mut buf) {
            if n == 0 || stdout.write_all(&buf[..n]).is_err() {
                break;
            }
            let _ = stdout.flush();
        }
    });
    let code = crate::container::wait_forwarding(pid)?;
    let _ = output.join();
    Ok(code)
}

fn copy_window_size(master: i32) {
    // SAFETY: winsize is four integers; all zeroes is a valid value.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes one winsize into `ws` and TIOCSWINSZ reads it back;
    // `ws` lives across both calls, and a bad descriptor is only an error return.
    unsafe {
        if libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(master, libc::TIOCSWINSZ, &ws);
        }
    }
}
