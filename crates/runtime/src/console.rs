//! Terminals. With `process.terminal`, the container's init opens a new pty
//! inside the container's devpts, makes the slave its controlling terminal
//! and stdio, and sends the master over `--console-socket` with SCM_RIGHTS
//! (the protocol runc callers implement).

use std::io::IoSlice;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

/// Opens a pty in the current mount namespace's /dev/ptmx; returns (master, slave).
pub fn open_pty() -> Result<(OwnedFd, OwnedFd), Errno> {
    // SAFETY: the path is a static NUL-terminated string open(2) only reads; the
    // result is checked before it is owned.
    let master = unsafe {
        libc::open(
            c"/dev/ptmx".as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    let master = Errno::result(master)?;
    // SAFETY: master is a fresh fd we own.
    let master = unsafe { OwnedFd::from_raw_fd(master) };
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int through the pointer, and `unlock` lives across
    // the call; `master` keeps the descriptor open.
    Errno::result(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) })?;
    // TIOCGPTPEER opens the slave through the master, immune to /dev/pts tricks.
    // SAFETY: TIOCGPTPEER takes integer open flags, no pointer; it returns a new
    // descriptor or -1, checked below.
    let slave = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    let slave = Errno::result(slave)?;
    // SAFETY: slave is a fresh fd we own.
    Ok((master, unsafe { OwnedFd::from_raw_fd(slave) }))
}

/// Makes `slave` the controlling terminal and fds 0, 1 and 2.
pub fn attach_stdio(slave: RawFd, rows: u16, cols: u16) -> Result<(), Errno> {
    if rows > 0 || cols > 0 {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads one winsize through the pointer, and `ws` lives
        // across the call; a bad `slave` is only an error return.
        unsafe { libc::ioctl(slave, libc::TIOCSWINSZ, &ws) };
    }
    for fd in 0..3 {
        // SAFETY: dup2 takes integers; the caller keeps `slave` open, and descriptors
        // 0-2 are not owned by any Rust object in this process, so replacing them
        // invalidates nothing.
        Errno::result(unsafe { libc::dup2(slave, fd) })?;
    }
    // SAFETY: TIOCSCTTY takes an integer (0: never steal a terminal another session
    // holds), no pointer; this process leads its own new session.
    Errno::result(unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) })?;
    Ok(())
}

/// Sends `fd` over a connected unix socket, named like runc names it.
pub fn send_fd(socket: RawFd, fd: RawFd) -> Result<(), Errno> {
    send_fd_with(socket, fd, b"/dev/ptmx")
}

/// Sends `fd` with `payload` as the message bytes.
pub fn send_fd_with(socket: RawFd, fd: RawFd, payload: &[u8]) -> Result<(), Errno> {
    let iov = [IoSlice::new(payload)];
    let fds = [fd];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    sendmsg::<()>(socket, &iov, &cmsg, MsgFlags::empty(), None).map(drop)
}

/// Receives one fd sent by `send_fd`.
pub fn recv_fd(socket: RawFd) -> Result<OwnedFd, Errno> {
    let mut buf = [0u8; 4096];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        socket,
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(fd) = fds.first() {
                // SAFETY: the kernel just installed this fd for us.
                return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
            }
        }
    }
    Err(Errno::EPROTO)
}
