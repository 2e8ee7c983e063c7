//! Receiving a directory from a client's session (FileSync `DiffCopy`,
//! fsutil's protocol) into a fresh directory of the daemon's.
//!
//! The client walks its directory and sends one STAT packet per entry
//! (parents before children, ids counted from 0 over every entry), then an
//! empty STAT. For each regular file the receiver sends REQ with the
//! entry's id; the client answers DATA packets and an empty DATA at the
//! file's end. When every file asked for has arrived the receiver sends
//! FIN and the client answers FIN.
//!
//! What arrives is the client's to choose, so every path is checked: no
//! absolute paths, no `..`, no entry twice, and every parent must be a
//! directory this transfer created (never a symlink), so nothing is written
//! outside `dest`. Hard links must name an earlier regular file. Devices,
//! pipes and sockets are skipped, as docker's context upload does; xattrs
//! are not kept. At most [`IN_FLIGHT`] files are open at once.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;

use crate::proto::{Packet, PacketType, Stat};
use crate::session::{Session, DIFF_COPY};
use crate::Error;

/// Files asked for and not yet complete, at most.
const IN_FLIGHT: usize = 32;

/// Which directory of the client's, filtered how (fsutil's filter: the
/// client applies the patterns before sending).
#[derive(Debug, Clone, Default)]
pub(crate) struct Request {
    /// The local directory's name in the client's solve (`context`,
    /// `dockerfile`).
    pub dir_name: String,
    pub include_patterns: Vec<String>,
    pub exclude_patterns: Vec<String>,
    /// Only these paths (and their parents), when not empty.
    pub follow_paths: Vec<String>,
}

// Go's os.FileMode type bits (fsutil sends FileMode, not st_mode).
const MODE_DIR: u32 = 1 << 31;
const MODE_SYMLINK: u32 = 1 << 27;
const MODE_DEVICE: u32 = 1 << 26;
const MODE_NAMED_PIPE: u32 = 1 << 25;
const MODE_SOCKET: u32 = 1 << 24;
const MODE_SETUID: u32 = 1 << 23;
const MODE_SETGID: u32 = 1 << 22;
const MODE_CHAR_DEVICE: u32 = 1 << 21;
const MODE_STICKY: u32 = 1 << 20;
const MODE_IRREGULAR: u32 = 1 << 19;
const MODE_TYPE: u32 = MODE_DIR
    | MODE_SYMLINK
    | MODE_NAMED_PIPE
    | MODE_SOCKET
    | MODE_DEVICE
    | MODE_CHAR_DEVICE
    | MODE_IRREGULAR;

/// The permission bits of a Go FileMode as a unix mode.
fn unix_mode(go: u32) -> u32 {
    let mut m = go & 0o777;
    if go & MODE_SETUID != 0 {
        m |= 0o4000;
    }
    if go & MODE_SETGID != 0 {
        m |= 0o2000;
    }
    if go & MODE_STICKY != 0 {
        m |= 0o1000;
    }
    m
}

/// Header values must be visible ASCII; otherwise every value of the key
/// is percent-encoded and `<key>-encoded: 1` says so (the client decodes
/// with Go's `url.QueryUnescape`).
fn encode_values(values: &[String]) -> (Vec<String>, bool) {
    let plain = values
        .iter()
        .all(|v| v.bytes().all(|b| (0x20..0x7f).contains(&b)));
    if plain {
        return (values.to_vec(), false);
    }
    let encoded = values
        .iter()
        .map(|v| {
            v.bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect()
        })
        .collect();
    (encoded, true)
}

fn metadata(req: &Request) -> Result<tonic::metadata::MetadataMap, Error> {
    let mut md = tonic::metadata::MetadataMap::new();
    let mut put = |key: &'static str, values: &[String]| -> Result<(), Error> {
        let (values, encoded) = encode_values(values);
        for v in values {
            let v = v
                .parse()
                .map_err(|_| Error::invalid(format!("a {key} value cannot be sent: {v:?}")))?;
            md.append(key, v);
        }
        if encoded {
            let key = match key {
                "include-patterns" => "include-patterns-encoded",
                "exclude-patterns" => "exclude-patterns-encoded",
                "followpaths" => "followpaths-encoded",
                _ => "dir-name-encoded",
            };
            md.insert(key, tonic::metadata::MetadataValue::from_static("1"));
        }
        Ok(())
    };
    put("dir-name", std::slice::from_ref(&req.dir_name))?;
    if !req.include_patterns.is_empty() {
        put("include-patterns", &req.include_patterns)?;
    }
    if !req.exclude_patterns.is_empty() {
        put("exclude-patterns", &req.exclude_patterns)?;
    }
    if !req.follow_paths.is_empty() {
        put("followpaths", &req.follow_paths)?;
    }
    Ok(md)
}

/// A checked relative path: normal components only.
fn relative(p: &str) -> Option<PathBuf> {
    let path = Path::new(p);
    if p.is_empty() || path.is_absolute() {
        return None;
    }
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

/// A file being received.
struct Open {
    file: File,
    path: PathBuf,
    stat: Stat,
}

/// What one transfer wrote.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Received {
    pub entries: u64,
    pub bytes: u64,
}

struct Receiver<'a> {
    dest: &'a Path,
    dir_name: String,
    /// Entry id → (path, stat) of regular files not yet asked for.
    waiting: VecDeque<(u32, PathBuf, Stat)>,
    open: HashMap<u32, Open>,
    /// Directories and their mtimes, set last (writing children changes them).
    dir_times: Vec<(PathBuf, i64)>,
    received: Received,
}

impl Receiver<'_> {
    fn bad(&self, what: impl std::fmt::Display) -> Error {
        Error::Transfer {
            dir: self.dir_name.clone(),
            reason: what.to_string(),
        }
    }

    fn io(&self, action: &str, path: &Path, e: std::io::Error) -> Error {
        self.bad(format!("{action} {}: {e}", path.display()))
    }

    /// The destination of `rel`, whose parent must be a real directory.
    fn target(&self, rel: &Path) -> Result<PathBuf, Error> {
        let path = self.dest.join(rel);
        let parent = path.parent().unwrap_or(self.dest);
        match std::fs::symlink_metadata(parent) {
            Ok(m) if m.is_dir() => Ok(path),
            _ => Err(self.bad(format!(
                "{} is not inside a directory sent before it",
                rel.display()
            ))),
        }
    }

    /// Creates what a STAT describes; regular files are queued for REQ.
    fn entry(&mut self, id: u32, stat: Stat) -> Result<(), Error> {
        let rel = relative(&stat.path)
            .ok_or_else(|| self.bad(format!("refused path {:?}", stat.path)))?;
        let path = self.target(&rel)?;
        self.received.entries += 1;
        let kind = stat.mode & MODE_TYPE;
        if kind == MODE_DIR {
            std::fs::create_dir(&path).map_err(|e| self.io("creating", &path, e))?;
            self.finish_meta(&path, &stat, false)?;
            self.dir_times.push((path, stat.mod_time));
        } else if kind == MODE_SYMLINK {
            std::os::unix::fs::symlink(&stat.linkname, &path)
                .map_err(|e| self.io("creating", &path, e))?;
            std::os::unix::fs::lchown(&path, Some(stat.uid), Some(stat.gid))
                .map_err(|e| self.io("changing the owner of", &path, e))?;
        } else if kind == 0 && !stat.linkname.is_empty() {
            let source = relative(&stat.linkname)
                .map(|r| self.dest.join(r))
                .filter(|s| std::fs::symlink_metadata(s).is_ok_and(|m| m.is_file()))
                .ok_or_else(|| {
                    self.bad(format!(
                        "{} is a hard link to {:?}, which is not a file sent before it",
                        stat.path, stat.linkname
                    ))
                })?;
            std::fs::hard_link(&source, &path).map_err(|e| self.io("linking", &path, e))?;
        } else if kind == 0 {
            if std::fs::symlink_metadata(&path).is_ok() {
                return Err(self.bad(format!("{} was sent twice", stat.path)));
            }
            self.waiting.push_back((id, path, stat));
        } else {
            tracing::debug!(path = %stat.path, mode = stat.mode, "skipping a special file of the context");
        }
        Ok(())
    }

    /// Owner, permissions and (for files) mtime.
    fn finish_meta(&self, path: &Path, stat: &Stat, times: bool) -> Result<(), Error> {
        std::os::unix::fs::lchown(path, Some(stat.uid), Some(stat.gid))
            .map_err(|e| self.io("changing the owner of", path, e))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(unix_mode(stat.mode)))
            .map_err(|e| self.io("changing the mode of", path, e))?;
        if times {
            set_mtime(path, stat.mod_time).map_err(|e| self.io("setting the time of", path, e))?;
        }
        Ok(())
    }

    /// Opens queued files and asks for them, up to [`IN_FLIGHT`].
    async fn request_more(&mut self, tx: &mpsc::Sender<Packet>) -> Result<(), Error> {
        while self.open.len() < IN_FLIGHT {
            let Some((id, path, stat)) = self.waiting.pop_front() else {
                break;
            };
            let file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)
                .map_err(|e| self.io("creating", &path, e))?;
            self.open.insert(id, Open { file, path, stat });
            tx.send(Packet {
                r#type: PacketType::PacketReq as i32,
                id,
                ..Default::default()
            })
            .await
            .map_err(|_| self.bad("the request stream closed"))?;
        }
        Ok(())
    }

    fn data(&mut self, id: u32, data: &[u8]) -> Result<bool, Error> {
        let Some(open) = self.open.get_mut(&id) else {
            return Err(self.bad(format!("data for file id {id}, which was not asked for")));
        };
        if !data.is_empty() {
            open.file.write_all(data).map_err(|e| Error::Transfer {
                dir: self.dir_name.clone(),
                reason: format!("writing {}: {e}", open.path.display()),
            })?;
            self.received.bytes += data.len() as u64;
            return Ok(false);
        }
        let open = self
            .open
            .remove(&id)
            .ok_or_else(|| self.bad("a file ended twice"))?;
        drop(open.file);
        self.finish_meta(&open.path, &open.stat, true)?;
        Ok(true)
    }
}

fn set_mtime(path: &Path, nanos: i64) -> std::io::Result<()> {
    let t = if nanos >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos as u64)
    } else {
        SystemTime::UNIX_EPOCH
    };
    File::open(path)?.set_times(std::fs::FileTimes::new().set_modified(t).set_accessed(t))
}

/// Receives `req`'s directory from `session` into `dest` (an empty
/// directory). `progress` is told the bytes received so far.
pub(crate) async fn receive(
    session: &Session,
    req: &Request,
    dest: &Path,
    mut progress: impl FnMut(Received),
) -> Result<Received, Error> {
    if !session.supports(DIFF_COPY) {
        return Err(Error::Transfer {
            dir: req.dir_name.clone(),
            reason: "the client's session offers no files (no FileSync/DiffCopy)".into(),
        });
    }
    let (tx, rx) = mpsc::channel::<Packet>(IN_FLIGHT + 8);
    let mut call = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    *call.metadata_mut() = metadata(req)?;
    let ended = |e: String| Error::SessionEnded {
        id: session.id.clone(),
        reason: format!("while sending {}: {e}", req.dir_name),
    };
    let mut client = session.file_sync();
    let response = tokio::select! {
        r = client.diff_copy(call) => r.map_err(|s| ended(s.message().to_string()))?,
        _ = session.closed() => return Err(ended("the connection closed".into())),
    };
    let mut inbound = response.into_inner();
    let mut r = Receiver {
        dest,
        dir_name: req.dir_name.clone(),
        waiting: VecDeque::new(),
        open: HashMap::new(),
        dir_times: Vec::new(),
        received: Received::default(),
    };
    let mut next_id: u32 = 0;
    let mut stats_done = false;
    let mut fin_sent = false;
    loop {
        let packet = tokio::select! {
            p = inbound.message() => p.map_err(|s| ended(s.message().to_string()))?,
            _ = session.closed() => return Err(ended("the connection closed".into())),
        };
        let Some(p) = packet else {
            if fin_sent {
                break;
            }
            return Err(ended("the stream ended before the transfer did".into()));
        };
        match PacketType::try_from(p.r#type) {
            Ok(PacketType::PacketStat) => {
                if stats_done {
                    return Err(r.bad("an entry after the end of the listing"));
                }
                match p.stat {
                    None => stats_done = true,
                    Some(stat) => {
                        r.entry(next_id, stat)?;
                        next_id = next_id
                            .checked_add(1)
                            .ok_or_else(|| r.bad("too many entries"))?;
                    }
                }
            }
            Ok(PacketType::PacketData) => {
                if r.data(p.id, &p.data)? {
                    progress(r.received);
                }
            }
            Ok(PacketType::PacketFin) => {
                if !fin_sent {
                    return Err(r.bad("the client ended the transfer early"));
                }
                break;
            }
            Ok(PacketType::PacketErr) => {
                return Err(r.bad(format!(
                    "the client failed: {}",
                    String::from_utf8_lossy(&p.data)
                )))
            }
            Ok(PacketType::PacketReq) | Err(_) => {
                return Err(r.bad(format!("unexpected packet type {}", p.r#type)))
            }
        }
        r.request_more(&tx).await?;
        if stats_done && r.waiting.is_empty() && r.open.is_empty() && !fin_sent {
            tx.send(Packet {
                r#type: PacketType::PacketFin as i32,
                ..Default::default()
            })
            .await
            .map_err(|_| r.bad("the request stream closed"))?;
            fin_sent = true;
        }
    }
    drop(tx);
    // Deepest first, so setting a child's time does not move its parent's.
    for (dir, t) in r.dir_times.iter().rev() {
        set_mtime(dir, *t).map_err(|e| r.io("setting the time of", dir, e))?;
    }
    progress(r.received);
    Ok(r.received)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_relative_and_plain() {
        assert_eq!(relative("a/b"), Some(PathBuf::from("a/b")));
        for bad in ["", "./a", "/etc/passwd", "../x", "a/../../x", ".", "a/.."] {
            assert_eq!(relative(bad), None, "{bad}");
        }
    }

    #[test]
    fn go_file_modes_become_unix_modes() {
        assert_eq!(unix_mode(0o644), 0o644);
        assert_eq!(unix_mode(MODE_DIR | 0o755), 0o755);
        assert_eq!(unix_mode(MODE_SETUID | MODE_STICKY | 0o700), 0o5700);
        assert_eq!(unix_mode(MODE_SETGID | 0o750), 0o2750);
    }

    #[test]
    fn header_values_are_encoded_only_when_needed() {
        let (v, enc) = encode_values(&["*.log".into(), "!keep me".into()]);
        assert!(!enc);
        assert_eq!(v, ["*.log", "!keep me"]);
        let (v, enc) = encode_values(&["café".into(), "a+b".into()]);
        assert!(enc);
        assert_eq!(v, ["caf%C3%A9", "a%2Bb"]);
    }

    #[test]
    fn entries_outside_or_under_a_symlink_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut r = Receiver {
            dest: dir.path(),
            dir_name: "context".into(),
            waiting: VecDeque::new(),
            open: HashMap::new(),
            dir_times: Vec::new(),
            received: Received::default(),
        };
        let stat = |path: &str, mode: u32, link: &str| Stat {
            path: path.into(),
            mode,
            linkname: link.into(),
            ..Default::default()
        };
        r.entry(0, stat("d", MODE_DIR | 0o755, "")).expect("dir");
        r.entry(1, stat("link", MODE_SYMLINK | 0o777, "/etc"))
            .expect("a symlink is data");
        let e = r
            .entry(2, stat("link/passwd", 0o644, ""))
            .expect_err("under a symlink");
        assert!(e.to_string().contains("not inside a directory"), "{e}");
        assert!(r.entry(3, stat("../x", 0o644, "")).is_err());
        assert!(
            r.entry(4, stat("d", MODE_DIR | 0o755, "")).is_err(),
            "twice"
        );
        let e = r
            .entry(5, stat("h", 0o644, "link"))
            .expect_err("hard link to a symlink");
        assert!(e.to_string().contains("hard link"), "{e}");
        r.entry(6, stat("d/f", 0o644, ""))
            .expect("a file is queued");
        assert_eq!(r.waiting.len(), 1);
        r.entry(7, stat("fifo", MODE_NAMED_PIPE | 0o644, ""))
            .expect("skipped");
        assert!(!dir.path().join("fifo").exists());
        assert!(std::fs::symlink_metadata("/etc/passwd").is_ok());
    }
}
