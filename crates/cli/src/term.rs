//! The local terminal for `run -t`, `attach` and `exec -t`: raw mode,
//! window size and resize notices, and the copy loops of a hijacked stream.

use std::io::{IsTerminal, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cais_client::http::{read_frame, Hijacked};
use nix::sys::termios::{self, SetArg, Termios};

/// Puts stdin's terminal in raw mode until dropped.
pub struct RawMode {
    saved: Option<Termios>,
}

impl RawMode {
    pub fn enter() -> RawMode {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return RawMode { saved: None };
        }
        let Ok(saved) = termios::tcgetattr(&stdin) else {
            return RawMode { saved: None };
        };
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        let _ = termios::tcsetattr(&stdin, SetArg::TCSANOW, &raw);
        RawMode { saved: Some(saved) }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            let _ = termios::tcsetattr(std::io::stdin(), SetArg::TCSANOW, saved);
        }
    }
}

/// Stdout's terminal size as (rows, columns), when it is a terminal.
pub fn size() -> Option<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    for fd in [libc::STDOUT_FILENO, libc::STDIN_FILENO] {
        // SAFETY: TIOCGWINSZ fills the winsize we pass.
        let r = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) };
        if r == 0 && ws.ws_row > 0 {
            return Some((ws.ws_row, ws.ws_col));
        }
    }
    None
}

static RESIZED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_winch(_: libc::c_int) {
    RESIZED.store(true, Ordering::Relaxed);
}

/// Calls `resize(rows, cols)` now and on every SIGWINCH, from a thread.
pub fn watch_resize(resize: impl Fn(u16, u16) + Send + 'static) {
    let Some((h, w)) = size() else { return };
    resize(h, w);
    let action = nix::sys::signal::SigAction::new(
        nix::sys::signal::SigHandler::Handler(on_winch),
        nix::sys::signal::SaFlags::SA_RESTART,
        nix::sys::signal::SigSet::empty(),
    );
    // SAFETY: the handler only stores to an atomic.
    let _ = unsafe { nix::sys::signal::sigaction(nix::sys::signal::SIGWINCH, &action) };
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(100));
        if RESIZED.swap(false, Ordering::Relaxed) {
            if let Some((h, w)) = size() {
                resize(h, w);
            }
        }
    });
}

/// Copies stdin to the stream from a thread; at EOF, half-closes it.
pub fn forward_stdin(h: &Hijacked) {
    let Ok(mut w) = h.writer.try_clone() else {
        return;
    };
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = [0u8; 4096];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if w.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            }
        }
        let _ = w.shutdown(std::net::Shutdown::Write);
    });
}

/// Copies the stream's output to stdout and stderr until it ends.
pub fn copy_output(h: &mut Hijacked) -> std::io::Result<()> {
    if h.multiplexed() {
        while let Some((stream, data)) = read_frame(&mut h.reader)? {
            if stream == 2 {
                let mut e = std::io::stderr().lock();
                e.write_all(&data)?;
                e.flush()?;
            } else {
                let mut o = std::io::stdout().lock();
                o.write_all(&data)?;
                o.flush()?;
            }
        }
        Ok(())
    } else {
        let mut buf = [0u8; 8192];
        loop {
            let n = match h.reader.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let mut o = std::io::stdout().lock();
            o.write_all(&buf[..n])?;
            o.flush()?;
        }
    }
}

/// The last signal caught for forwarding (0 for none).
static CAUGHT: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    CAUGHT.store(sig, Ordering::Relaxed);
}

/// docker's `--sig-proxy`: signals sent to the client (Ctrl-C, `kill`) are
/// passed to the container through `forward(name)` instead of ending the
/// client. Not with a terminal, where Ctrl-C is a byte for the container.
pub fn proxy_signals(forward: impl Fn(&str) + Send + 'static) {
    use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
    ] {
        // SAFETY: the handler only stores to an atomic.
        let _ = unsafe { signal::sigaction(sig, &action) };
    }
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(20));
        let sig = CAUGHT.swap(0, Ordering::Relaxed);
        if sig != 0 {
            if let Ok(s) = Signal::try_from(sig) {
                forward(s.as_str());
            }
        }
    });
}
