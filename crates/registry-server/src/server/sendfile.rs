//! `sendfile(2)` for blob bodies on plain TCP connections.
//!
//! hyper writes response bodies through the connection's I/O object and
//! has no file-to-socket path of its own. Blob bodies are slices of a memory
//! map of the blob file (see `blobs::file_body`); every map a connection is
//! serving is listed in that connection's `Maps`. When hyper hands
//! `SendfileStream` a buffer that lies inside a listed map, the stream asks
//! the kernel to send the same range straight from the file instead of
//! copying it from the mapping: on loopback and on NICs with scatter-gather
//! the page cache pages go to the socket without any copy. Blobs are
//! immutable, so both paths send identical bytes; any buffer not in a map
//! (headers, manifests, JSON) takes the ordinary write path.

use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// The blob maps a connection is currently sending.
#[derive(Debug, Default)]
pub struct Maps {
    entries: Mutex<Vec<Entry>>,
}

#[derive(Debug)]
struct Entry {
    id: u64,
    base: usize,
    len: usize,
    file: Arc<std::fs::File>,
}

impl Maps {
    fn find(&self, ptr: usize, len: usize) -> Option<(Arc<std::fs::File>, u64)> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .iter()
            .find(|e| ptr >= e.base && ptr + len <= e.base + e.len)
            .map(|e| (e.file.clone(), (ptr - e.base) as u64))
    }
}

/// A mapped blob: the owner behind a body's `Bytes`. Listed in its
/// connection's `Maps` while alive; unlisted before the mapping goes away.
pub struct MappedBlob {
    map: memmap2::Mmap,
    id: u64,
    maps: Option<Weak<Maps>>,
}

impl MappedBlob {
    /// Maps `file` and, when `maps` is given, lists the mapping there.
    pub fn new(file: std::fs::File, maps: Option<&Arc<Maps>>) -> io::Result<MappedBlob> {
        // SAFETY: blobs are immutable once visible (they appear by rename and
        // leave by unlink, never truncated or rewritten), so the mapping
        // never changes under the slices handed out.
        let map = unsafe { memmap2::Mmap::map(&file)? };
        let _ = map.advise(memmap2::Advice::Sequential);
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(maps) = maps {
            let mut entries = maps.entries.lock().unwrap_or_else(|p| p.into_inner());
            entries.push(Entry {
                id,
                base: map.as_ptr() as usize,
                len: map.len(),
                file: Arc::new(file),
            });
        }
        Ok(MappedBlob {
            map,
            id,
            maps: maps.map(Arc::downgrade),
        })
    }
}

impl AsRef<[u8]> for MappedBlob {
    fn as_ref(&self) -> &[u8] {
        &self.map
    }
}

impl Drop for MappedBlob {
    fn drop(&mut self) {
        // Runs before `map` is unmapped, so no address of a dead mapping
        // stays listed.
        if let Some(maps) = self.maps.as_ref().and_then(Weak::upgrade) {
            let mut entries = maps.entries.lock().unwrap_or_else(|p| p.into_inner());
            entries.retain(|e| e.id != self.id);
        }
    }
}

/// A TCP stream that sends mapped blob ranges with `sendfile(2)`.
pub struct SendfileStream {
    inner: TcpStream,
    maps: Arc<Maps>,
}

impl SendfileStream {
    pub fn new(inner: TcpStream, maps: Arc<Maps>) -> SendfileStream {
        SendfileStream { inner, maps }
    }

    fn poll_sendfile(
        &self,
        cx: &mut Context<'_>,
        file: &std::fs::File,
        offset: u64,
        len: usize,
    ) -> Poll<io::Result<usize>> {
        let sock: RawFd = self.inner.as_raw_fd();
        loop {
            ready!(self.inner.poll_write_ready(cx))?;
            let sent = self.inner.try_io(Interest::WRITABLE, || {
                let mut off = libc::off_t::try_from(offset).map_err(io::Error::other)?;
                // SAFETY: both descriptors are open for the duration of the
                // call (we hold the stream and an Arc of the file); `off` is
                // a valid pointer to a local.
                let n = unsafe { libc::sendfile(sock, file.as_raw_fd(), &mut off, len) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match sent {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncRead for SendfileStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for SendfileStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some((file, offset)) = this.maps.find(buf.as_ptr() as usize, buf.len()) {
            return this.poll_sendfile(cx, &file, offset, buf.len());
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let Some(first) = bufs.iter().position(|b| !b.is_empty()) else {
            return Poll::Ready(Ok(0));
        };
        let bufs = &bufs[first..];
        if let Some((file, offset)) = this.maps.find(bufs[0].as_ptr() as usize, bufs[0].len()) {
            return this.poll_sendfile(cx, &file, offset, bufs[0].len());
        }
        // Ordinary buffers up to the first mapped one go out with writev;
        // the mapped one starts the next call.
        let plain = bufs
            .iter()
            .take_while(|b| this.maps.find(b.as_ptr() as usize, b.len()).is_none())
            .count();
        Pin::new(&mut this.inner).poll_write_vectored(cx, &bufs[..plain])
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
