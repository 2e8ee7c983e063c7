//! COPY and ADD sources: resolving them in the build context (or in another
//! stage's root for `--from`), hashing what they would copy (the cache key
//! part, without mtimes, as docker), and writing them into a mounted root.
//!
//! Containment: a source is cleaned lexically first (a `..` that climbs
//! above the context is refused), then resolved with the runtime's
//! `secure_join`, so a symlink in the context can never lead out of it.
//! Files `.dockerignore` excludes are invisible: a source naming one is
//! "not found", and directory walks skip them.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use cais_image::oci::Compression;
use cais_image::{unpack, Digest};
use cais_runtime::rootfs::secure_join;
use sha2::{Digest as _, Sha256};

use crate::dockerignore::Ignore;
use crate::pattern;
use crate::{io_err, Error, Result};

/// Where sources are looked up.
pub(crate) struct Root<'a> {
    pub(crate) dir: &'a Path,
    /// `.dockerignore` of the context; `None` for another stage's root.
    pub(crate) ignore: Option<&'a Ignore>,
    /// File digests already computed, by path: the context does not change
    /// during a build, so each file is read and hashed once per build, not
    /// once per COPY that names it. `None`: hash every time.
    pub(crate) hashes: Option<&'a RefCell<HashMap<PathBuf, String>>>,
}

/// One thing to write, at `name` under the copy's destination.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    /// Relative path under the destination (`""`: the destination itself).
    pub(crate) name: String,
    pub(crate) kind: Kind,
    pub(crate) mode: u32,
    pub(crate) mtime: i64,
}

#[derive(Debug, Clone)]
pub(crate) enum Kind {
    File(PathBuf),
    Data(Vec<u8>),
    Dir,
    Symlink(PathBuf),
    /// A local archive ADD unpacks into the destination.
    Archive(PathBuf),
}

/// What one COPY/ADD writes.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub(crate) items: Vec<Item>,
    /// Whether the destination is a directory regardless of what exists
    /// (trailing `/`, several sources, a directory source).
    pub(crate) dest_is_dir: bool,
    /// A single file source: its name, for "into an existing directory".
    pub(crate) single_file: Option<String>,
    /// `file:<hash>`, `dir:<hash>` or `multi:<hash>`, docker's history form.
    pub(crate) summary: String,
}

/// Cleans a source path lexically; refuses one that leaves the root.
pub(crate) fn clean(src: &str) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in Path::new(src).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir if !out.pop() => {
                return Err(Error::invalid(format!(
                    "forbidden path outside the build context: {src}"
                )));
            }
            _ => {}
        }
    }
    Ok(out)
}

fn rel_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

impl Root<'_> {
    fn excluded(&self, rel: &Path) -> bool {
        self.ignore
            .is_some_and(|i| !rel.as_os_str().is_empty() && i.excluded(&rel_str(rel)))
    }

    /// Paths (relative to the root, cleaned) that `src` names: itself, or
    /// the matches of its wildcards, sorted. Missing → empty.
    fn expand(&self, src: &str) -> Result<Vec<PathBuf>> {
        let clean = clean(src)?;
        if !pattern::has_wildcards(src) {
            let path = secure_join(self.dir, &clean).map_err(io_err("resolve", &clean))?;
            if fs::symlink_metadata(&path).is_err() || self.excluded(&clean) {
                return Ok(Vec::new());
            }
            return Ok(vec![clean]);
        }
        let mut found = vec![PathBuf::new()];
        for comp in clean.components() {
            let comp = comp.as_os_str().to_string_lossy().into_owned();
            let mut next = Vec::new();
            for base in &found {
                if !pattern::has_wildcards(&comp) {
                    next.push(base.join(&comp));
                    continue;
                }
                let dir = secure_join(self.dir, base).map_err(io_err("resolve", base))?;
                let Ok(entries) = fs::read_dir(&dir) else {
                    continue;
                };
                let mut names: Vec<String> = entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| pattern::matches(&comp, n))
                    .collect();
                names.sort();
                next.extend(names.into_iter().map(|n| base.join(n)));
            }
            found = next;
        }
        let mut out = Vec::new();
        for rel in found {
            let path = secure_join(self.dir, &rel).map_err(io_err("resolve", &rel))?;
            if fs::symlink_metadata(&path).is_ok() && !self.excluded(&rel) {
                out.push(rel);
            }
        }
        Ok(out)
    }

    /// Items for a directory's contents, recursively, sorted by name.
    fn walk(&self, dir: &Path, rel: &Path, prefix: &str, out: &mut Vec<Item>) -> Result<()> {
        let mut names: Vec<_> = fs::read_dir(dir)
            .map_err(io_err("read directory", dir))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<std::io::Result<_>>()
            .map_err(io_err("read directory", dir))?;
        names.sort();
        for n in names {
            let path = dir.join(&n);
            let r = rel.join(&n);
            let name = if prefix.is_empty() {
                n.to_string_lossy().into_owned()
            } else {
                format!("{prefix}/{}", n.to_string_lossy())
            };
            let meta = fs::symlink_metadata(&path).map_err(io_err("stat", &path))?;
            let excluded = self.excluded(&r);
            if meta.is_dir() {
                if excluded
                    && !self
                        .ignore
                        .is_some_and(|i| i.may_include_under(&rel_str(&r)))
                {
                    continue;
                }
                if !excluded {
                    out.push(item(&name, Kind::Dir, &meta));
                }
                self.walk(&path, &r, &name, out)?;
            } else if excluded {
                continue;
            } else if meta.file_type().is_symlink() {
                let target = fs::read_link(&path).map_err(io_err("read symlink", &path))?;
                out.push(item(&name, Kind::Symlink(target), &meta));
            } else if meta.is_file() {
                out.push(item(&name, Kind::File(path), &meta));
            }
            // Sockets, FIFOs and devices in a context are not copied.
        }
        Ok(())
    }
}

fn item(name: &str, kind: Kind, meta: &fs::Metadata) -> Item {
    Item {
        name: name.to_owned(),
        kind,
        mode: meta.mode() & 0o7777,
        mtime: meta.mtime(),
    }
}

/// A source that is not a path.
pub(crate) enum Inline {
    /// A heredoc (`COPY <<EOF /f`): name and expanded body.
    Heredoc(String, Vec<u8>),
    /// An ADD URL, downloaded: file name and bytes.
    Url(String, Vec<u8>),
}

/// Resolves every source into a plan. `add`: local archives are unpacked.
pub(crate) fn plan(
    root: &Root<'_>,
    sources: &[String],
    inline: Vec<Inline>,
    dest: &str,
    add: bool,
) -> Result<Plan> {
    let mut plan = Plan {
        dest_is_dir: dest.ends_with('/') || sources.len() + inline.len() > 1,
        ..Default::default()
    };
    let mut kinds = Vec::new();
    for i in inline {
        let (name, data, mode) = match i {
            Inline::Heredoc(n, d) => (n, d, 0o644),
            // docker writes downloaded files 0600.
            Inline::Url(n, d) => (n, d, 0o600),
        };
        plan.single_file = Some(name.clone());
        plan.items.push(Item {
            name,
            kind: Kind::Data(data),
            mode,
            mtime: 0,
        });
        kinds.push("file");
    }
    for src in sources {
        let matches = root.expand(src)?;
        if matches.is_empty() {
            return Err(Error::invalid(format!(
                "file not found in build context or excluded by .dockerignore: stat {src}: file does not exist"
            )));
        }
        if matches.len() > 1 {
            plan.dest_is_dir = true;
        }
        for rel in matches {
            let path = secure_join(root.dir, &rel).map_err(io_err("resolve", &rel))?;
            // The source itself is followed (inside the root), as docker
            // copies what a top-level symlink points at.
            let meta = fs::metadata(&path).map_err(io_err("stat", &path))?;
            let base = rel
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if meta.is_dir() {
                plan.dest_is_dir = true;
                kinds.push("dir");
                root.walk(&path, &rel, "", &mut plan.items)?;
            } else if add && is_archive(&path) {
                plan.dest_is_dir = true;
                kinds.push("file");
                plan.items.push(item("", Kind::Archive(path), &meta));
            } else {
                kinds.push("file");
                plan.single_file = Some(base.clone());
                plan.items.push(item(&base, Kind::File(path), &meta));
            }
        }
    }
    let hash = content_hash(&plan.items, root.hashes)?;
    plan.summary = match kinds.as_slice() {
        [one] => format!("{one}:{hash}"),
        _ => format!("multi:{hash}"),
    };
    Ok(plan)
}

/// sha256 over names, types, modes and contents (not mtimes or owners,
/// which COPY sets itself).
fn content_hash(
    items: &[Item],
    memo: Option<&RefCell<HashMap<PathBuf, String>>>,
) -> Result<String> {
    let file_digest = |p: &PathBuf| -> Result<String> {
        if let Some(d) = memo.and_then(|m| m.borrow().get(p).cloned()) {
            return Ok(d);
        }
        let d =
            cais_image::content::hash_file(p, cais_image::digest::Algorithm::Sha256)?.to_string();
        if let Some(m) = memo {
            m.borrow_mut().insert(p.clone(), d.clone());
        }
        Ok(d)
    };
    let mut h = Sha256::new();
    let mut field = |b: &[u8]| {
        h.update((b.len() as u64).to_le_bytes());
        h.update(b);
    };
    for i in items {
        field(i.name.as_bytes());
        field(&i.mode.to_le_bytes());
        match &i.kind {
            Kind::File(p) | Kind::Archive(p) => {
                field(b"f");
                field(file_digest(p)?.as_bytes());
            }
            Kind::Data(d) => {
                field(b"d");
                field(d);
            }
            Kind::Dir => field(b"D"),
            Kind::Symlink(t) => {
                field(b"l");
                field(t.as_os_str().as_encoded_bytes());
            }
        }
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// A local file as ADD unpacks it: decompressed when it starts with the
/// magic of gzip, zstd, bzip2 (`BZh`) or xz (`FD 37 7A 58 5A 00`), as it
/// is otherwise. Docker recognizes the same four.
fn open_archive(path: &Path) -> std::io::Result<Box<dyn Read>> {
    let mut head = Vec::new();
    fs::File::open(path)?.take(6).read_to_end(&mut head)?;
    let f = std::io::BufReader::new(fs::File::open(path)?);
    Ok(if head.starts_with(b"BZh") {
        Box::new(bzip2::read::MultiBzDecoder::new(f))
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Box::new(lzma_rust2::XzReader::new(f, true))
    } else {
        unpack::decompress(f, Compression::sniff(&head)).map_err(std::io::Error::other)?
    })
}

/// Whether a local file is a tar archive ADD unpacks: plain or compressed
/// (gzip, zstd, bzip2, xz) with a tar inside.
fn is_archive(path: &Path) -> bool {
    let Ok(mut r) = open_archive(path) else {
        return false;
    };
    let mut block = vec![0u8; 512];
    if r.read_exact(&mut block).is_err() {
        return false;
    }
    // The POSIX ustar magic (also GNU's "ustar  ") at offset 257.
    &block[257..262] == b"ustar"
}

/// How items are written: owner and mode overrides.
pub(crate) struct WriteOptions {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) chmod: Option<u32>,
}

/// Writes a plan into `rootfs` at the absolute path `dest` (already joined
/// with the working directory). Existing symlinks in the destination are
/// resolved inside `rootfs`.
pub(crate) fn write(rootfs: &Path, dest: &str, plan: &Plan, o: &WriteOptions) -> Result<()> {
    let dest_path = Path::new(dest);
    let resolved = secure_join(rootfs, dest_path).map_err(io_err("resolve", dest_path))?;
    // A single file to a path that is an existing directory goes inside it.
    let into_dir = plan.dest_is_dir || resolved.is_dir();
    let mut dir_times = Vec::new();
    for it in &plan.items {
        let rel = if into_dir {
            if it.name.is_empty() {
                dest_path.to_path_buf()
            } else {
                dest_path.join(&it.name)
            }
        } else {
            dest_path.to_path_buf()
        };
        let target = secure_join(rootfs, &rel).map_err(io_err("resolve", &rel))?;
        if let Some(parent) = target.parent() {
            crate::fsutil::mkdir_p(rootfs, parent)?;
        }
        let mode = o.chmod.unwrap_or(it.mode);
        match &it.kind {
            Kind::Dir => {
                if !target.is_dir() {
                    let _ = fs::remove_file(&target);
                    fs::create_dir(&target).map_err(io_err("create directory", &target))?;
                }
                set_perms(&target, mode, o)?;
                dir_times.push((target, it.mtime));
            }
            Kind::File(src) => {
                replace(&target)?;
                fs::copy(src, &target).map_err(io_err("copy to", &target))?;
                set_perms(&target, mode, o)?;
                set_mtime(&target, it.mtime)?;
            }
            Kind::Data(d) => {
                replace(&target)?;
                fs::write(&target, d).map_err(io_err("write", &target))?;
                set_perms(&target, mode, o)?;
                set_mtime(&target, it.mtime)?;
            }
            Kind::Symlink(t) => {
                replace(&target)?;
                std::os::unix::fs::symlink(t, &target).map_err(io_err("symlink", &target))?;
                std::os::unix::fs::lchown(&target, Some(o.uid), Some(o.gid))
                    .map_err(io_err("chown", &target))?;
            }
            Kind::Archive(src) => {
                crate::fsutil::mkdir_p(rootfs, &target)?;
                let stream = open_archive(src).map_err(io_err("open", src))?;
                // The same contained extraction as image layers: nothing
                // in the archive can write outside the destination.
                let name = Digest::sha256(src.as_os_str().as_encoded_bytes());
                unpack::extract(stream, &target, &name)
                    .map_err(|e| Error::invalid(format!("unpacking {}: {e}", src.display())))?;
            }
        }
    }
    // Directory times last: writing their entries changed them.
    for (d, t) in dir_times.iter().rev() {
        set_mtime(d, *t)?;
    }
    Ok(())
}

fn replace(target: &Path) -> Result<()> {
    match fs::symlink_metadata(target) {
        Ok(m) if m.is_dir() => Err(Error::invalid(format!(
            "cannot overwrite directory {} with a file",
            target.display()
        ))),
        Ok(_) => fs::remove_file(target).map_err(io_err("replace", target)),
        Err(_) => Ok(()),
    }
}

fn set_perms(path: &Path, mode: u32, o: &WriteOptions) -> Result<()> {
    std::os::unix::fs::lchown(path, Some(o.uid), Some(o.gid)).map_err(io_err("chown", path))?;
    // After chown: chown clears set-id bits.
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io_err("chmod", path))
}

fn set_mtime(path: &Path, secs: i64) -> Result<()> {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64);
    let f = fs::File::options()
        .write(false)
        .read(true)
        .open(path)
        .map_err(io_err("open", path))?;
    f.set_times(fs::FileTimes::new().set_modified(t).set_accessed(t))
        .map_err(io_err("set times of", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> tempfile::TempDir {
        let d = tempfile::tempdir().expect("tempdir");
        for (p, body) in [
            ("a.txt", "a"),
            ("b.txt", "b"),
            ("c.log", "c"),
            ("dir/x", "x"),
            ("dir/sub/y", "y"),
        ] {
            let p = d.path().join(p);
            fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            fs::write(p, body).expect("write");
        }
        std::os::unix::fs::symlink("/etc/passwd", d.path().join("escape")).expect("symlink");
        std::os::unix::fs::symlink("a.txt", d.path().join("inside")).expect("symlink");
        d
    }

    fn names(p: &Plan) -> Vec<&str> {
        p.items.iter().map(|i| i.name.as_str()).collect()
    }

    #[test]
    fn sources_are_cleaned_and_kept_inside() {
        assert_eq!(clean("a/../b").expect("clean"), PathBuf::from("b"));
        assert_eq!(clean("/a/./b").expect("clean"), PathBuf::from("a/b"));
        assert_eq!(clean(".").expect("clean"), PathBuf::new());
        for bad in ["..", "../x", "a/../../x", "/.."] {
            assert!(clean(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn plans_follow_docker_rules() {
        let d = ctx();
        let root = Root {
            dir: d.path(),
            ignore: None,
            hashes: None,
        };
        let src = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();

        let p = plan(&root, &src(&["a.txt"]), vec![], "/dst", false).expect("one file");
        assert!(!p.dest_is_dir && p.summary.starts_with("file:"));
        assert_eq!(p.single_file.as_deref(), Some("a.txt"));

        let p = plan(&root, &src(&["*.txt"]), vec![], "/dst", false).expect("wildcard");
        assert_eq!(names(&p), ["a.txt", "b.txt"]);
        assert!(p.dest_is_dir && p.summary.starts_with("multi:"));

        let p = plan(&root, &src(&["dir"]), vec![], "/dst", false).expect("dir");
        assert_eq!(names(&p), ["sub", "sub/y", "x"]);
        assert!(p.dest_is_dir && p.summary.starts_with("dir:"));

        // A top-level symlink is followed, inside the context.
        let p = plan(&root, &src(&["inside"]), vec![], "/dst", false).expect("link");
        assert!(matches!(&p.items[0].kind, Kind::File(f) if f.ends_with("a.txt")));
        // One pointing out of it resolves inside the context: not there.
        assert!(plan(&root, &src(&["escape"]), vec![], "/dst", false).is_err());
        assert!(plan(&root, &src(&["../x"]), vec![], "/dst", false).is_err());
        assert!(plan(&root, &src(&["nothing*"]), vec![], "/dst", false).is_err());

        let ignore = Ignore::parse("*.log\ndir/sub\n").expect("ignore");
        let root = Root {
            dir: d.path(),
            ignore: Some(&ignore),
            hashes: None,
        };
        assert!(plan(&root, &src(&["c.log"]), vec![], "/dst", false).is_err());
        let p = plan(&root, &src(&["."]), vec![], "/dst/", false).expect("context");
        assert_eq!(
            names(&p),
            ["a.txt", "b.txt", "dir", "dir/x", "escape", "inside"]
        );
    }

    #[test]
    fn the_content_hash_ignores_mtimes_but_not_bytes_or_modes() {
        let d = ctx();
        let root = Root {
            dir: d.path(),
            ignore: None,
            hashes: None,
        };
        let src = vec!["dir".to_owned()];
        let hash = || {
            plan(&root, &src, vec![], "/d", false)
                .expect("plan")
                .summary
        };
        let first = hash();
        let f = fs::File::options()
            .write(true)
            .open(d.path().join("dir/x"))
            .expect("open");
        f.set_modified(std::time::UNIX_EPOCH).expect("mtime");
        assert_eq!(hash(), first);
        fs::set_permissions(d.path().join("dir/x"), fs::Permissions::from_mode(0o700))
            .expect("chmod");
        let moded = hash();
        assert_ne!(moded, first);
        fs::write(d.path().join("dir/x"), "changed").expect("write");
        assert_ne!(hash(), moded);
    }
}
