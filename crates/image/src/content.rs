//! The content store: blobs addressed by digest under
//! `<root>/blobs/<algorithm>/<hex>`.
//!
//! Every blob is written to `<root>/tmp/` first, hashed while it streams,
//! flushed to disk, checked against the digest (and size) the caller
//! expected, and only then renamed into `blobs/`. rename(2) is atomic within
//! a file system, so a reader sees either no blob or the whole verified blob:
//! a crash, a dropped writer or a mismatch leaves at most a temporary file,
//! which [`ContentStore::remove_stale_temps`] clears once its writer is gone.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::digest::{Algorithm, Digest, Hasher};
use crate::{io_err, Error, Result};

/// Blobs by digest. Cheap to clone; holds only its root path.
#[derive(Debug, Clone)]
pub struct ContentStore {
    root: PathBuf,
}

/// A blob whose bytes no longer hash to its name, found by [`ContentStore::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptBlob {
    pub digest: Digest,
    pub actual: Digest,
}

impl ContentStore {
    /// The store rooted at `root` (created if missing).
    pub fn new(root: impl Into<PathBuf>) -> Result<ContentStore> {
        let root = root.into();
        for dir in [
            root.join("blobs/sha256"),
            root.join("blobs/sha512"),
            root.join("tmp"),
        ] {
            fs::create_dir_all(&dir).map_err(io_err("create content directory", &dir))?;
        }
        Ok(ContentStore { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob `digest` lives (whether or not it exists).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(digest.algorithm().name())
            .join(digest.hex())
    }

    pub fn exists(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// Opens the blob for reading.
    pub fn open(&self, digest: &Digest) -> Result<File> {
        let path = self.path(digest);
        File::open(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                Error::NotFound {
                    what: format!("blob {digest}"),
                }
            } else {
                Error::Io {
                    context: "open blob",
                    path,
                    source: e,
                }
            }
        })
    }

    /// Reads a whole (small) blob: manifests, configs, indexes.
    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.open(digest)?
            .read_to_end(&mut buf)
            .map_err(io_err("read blob", &self.path(digest)))?;
        Ok(buf)
    }

    pub fn size(&self, digest: &Digest) -> Result<u64> {
        Ok(self
            .open(digest)?
            .metadata()
            .map_err(io_err("stat blob", &self.path(digest)))?
            .len())
    }

    /// Starts a new blob. Nothing is visible until [`BlobWriter::commit`].
    pub fn writer(&self) -> Result<BlobWriter> {
        static N: AtomicU64 = AtomicU64::new(0);
        // The writer's pid in the name lets a later process tell a dead
        // writer's leftovers from a live one's file.
        let name = format!(
            "{}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            unique_suffix()
        );
        let path = self.root.join("tmp").join(name);
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io_err("create temporary blob", &path))?;
        Ok(BlobWriter {
            store: self.clone(),
            file: Some(io::BufWriter::with_capacity(1 << 20, file)),
            hasher: Some(Hasher::new(Algorithm::Sha256)),
            written: 0,
            temp: path,
        })
    }

    /// Writes `data` as a blob. With `expected`, the data must hash to it.
    pub fn put(&self, data: &[u8], expected: Option<&Digest>) -> Result<Digest> {
        let computed = Digest::sha256(data);
        let digest = match expected {
            Some(e) if e.algorithm() == Algorithm::Sha256 && *e != computed => {
                return Err(Error::DigestMismatch {
                    expected: e.clone(),
                    actual: computed,
                })
            }
            Some(e) => e.clone(),
            None => computed,
        };
        if self.exists(&digest) {
            return Ok(digest);
        }
        let mut w = self.writer()?;
        w.write_all(data)
            .map_err(io_err("write temporary blob", &w.temp))?;
        w.commit(&digest, Some(data.len() as u64))?;
        Ok(digest)
    }

    /// Copies `reader` into a blob. With `expected`, the bytes must hash to
    /// it and the blob is not rewritten when already present (the reader is
    /// then left unread).
    pub fn ingest(
        &self,
        reader: &mut dyn Read,
        expected: Option<(&Digest, Option<u64>)>,
    ) -> Result<(Digest, u64)> {
        if let Some((d, _)) = expected {
            if self.exists(d) {
                return Ok((d.clone(), self.size(d)?));
            }
        }
        let mut w = self.writer()?;
        let temp = w.temp.clone();
        io::copy(reader, &mut w).map_err(io_err("copy into temporary blob", &temp))?;
        match expected {
            Some((d, size)) => {
                let n = w.written();
                w.commit(d, size)?;
                Ok((d.clone(), n))
            }
            None => w.commit_computed(),
        }
    }

    /// Removes a blob; false when it was not there.
    pub fn delete(&self, digest: &Digest) -> Result<bool> {
        let path = self.path(digest);
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::Io {
                context: "delete blob",
                path,
                source: e,
            }),
        }
    }

    /// Every committed blob.
    pub fn list(&self) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        for alg in [Algorithm::Sha256, Algorithm::Sha512] {
            let dir = self.root.join("blobs").join(alg.name());
            let entries = fs::read_dir(&dir).map_err(io_err("list blobs", &dir))?;
            for entry in entries {
                let entry = entry.map_err(io_err("list blobs", &dir))?;
                let name = entry.file_name();
                // Anything else in blobs/ was not put there by this store.
                if let Ok(d) = format!("{}:{}", alg.name(), name.to_string_lossy()).parse() {
                    out.push(d);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Re-hashes every blob and reports those that no longer match their name.
    pub fn verify(&self) -> Result<Vec<CorruptBlob>> {
        let mut bad = Vec::new();
        for digest in self.list()? {
            let actual = hash_file(&self.path(&digest), digest.algorithm())?;
            if actual != digest {
                bad.push(CorruptBlob { digest, actual });
            }
        }
        Ok(bad)
    }

    /// Removes temporary files whose writing process is gone (a crash or a
    /// SIGKILL midway). Returns how many were removed.
    pub fn remove_stale_temps(&self) -> Result<usize> {
        remove_stale_temps(&self.root.join("tmp"))
    }
}

/// Removes entries named `<pid>-...` in `dir` whose pid no longer runs.
pub(crate) fn remove_stale_temps(dir: &Path) -> Result<usize> {
    let mut removed = 0;
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io_err("list temporary files", dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err("list temporary files", dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid: Option<u32> = name.split('-').next().and_then(|p| p.parse().ok());
        let alive = pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
        if !alive {
            let path = entry.path();
            let res = if path.is_dir() && !path.is_symlink() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            res.map_err(io_err("remove stale temporary file", &path))?;
            removed += 1;
        }
    }
    Ok(removed)
}

pub(crate) fn unique_suffix() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    t ^ (u64::from(std::process::id()) << 32)
}

/// Hashes a file with `algorithm`.
pub fn hash_file(path: &Path, algorithm: Algorithm) -> Result<Digest> {
    let mut f = File::open(path).map_err(io_err("open for hashing", path))?;
    let mut h = Hasher::new(algorithm);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(io_err("read for hashing", path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finish())
}

/// A blob being written. Dropping it without [`commit`](Self::commit)
/// deletes the temporary file; nothing ever appears in the store.
pub struct BlobWriter {
    store: ContentStore,
    file: Option<io::BufWriter<File>>,
    hasher: Option<Hasher>,
    written: u64,
    temp: PathBuf,
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Flushes, checks the content against `expected` (and `expected_size`
    /// when given), then makes the blob visible under its digest.
    pub fn commit(mut self, expected: &Digest, expected_size: Option<u64>) -> Result<()> {
        let computed = self.finish_file()?;
        if let Some(size) = expected_size {
            if size != self.written {
                return Err(Error::SizeMismatch {
                    digest: expected.clone(),
                    expected: size,
                    actual: self.written,
                });
            }
        }
        let actual = match expected.algorithm() {
            Algorithm::Sha256 => computed,
            // Blobs stream through sha256; the rare sha512 blob is hashed
            // again from its temporary file.
            Algorithm::Sha512 => hash_file(&self.temp, Algorithm::Sha512)?,
        };
        if actual != *expected {
            return Err(Error::DigestMismatch {
                expected: expected.clone(),
                actual,
            });
        }
        self.publish(expected)
    }

    /// Makes the blob visible under the sha256 of what was written, for
    /// content whose digest is learnt by writing it (a new layer).
    pub fn commit_computed(mut self) -> Result<(Digest, u64)> {
        let digest = self.finish_file()?;
        self.publish(&digest)?;
        Ok((digest, self.written))
    }

    fn finish_file(&mut self) -> Result<Digest> {
        let buf = self.file.take().ok_or_else(|| Error::InvalidArgument {
            reason: "blob writer already finished".into(),
        })?;
        let file = buf
            .into_inner()
            .map_err(|e| io_err("flush temporary blob", &self.temp)(e.into_error()))?;
        // fsync before rename: otherwise a crash could leave the final name
        // pointing at a file whose data never reached the disk.
        file.sync_all()
            .map_err(io_err("sync temporary blob", &self.temp))?;
        let hasher = self.hasher.take().ok_or_else(|| Error::InvalidArgument {
            reason: "blob writer already finished".into(),
        })?;
        Ok(hasher.finish())
    }

    fn publish(&mut self, digest: &Digest) -> Result<()> {
        let dest = self.store.path(digest);
        if dest.exists() {
            // Same digest, same bytes: keep the blob already there.
            let _ = fs::remove_file(&self.temp);
            return Ok(());
        }
        fs::rename(&self.temp, &dest).map_err(io_err("publish blob", &dest))?;
        sync_dir(dest.parent().unwrap_or(Path::new("/")))?;
        Ok(())
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("blob writer already finished"))?;
        let n = file.write(buf)?;
        if let Some(h) = self.hasher.as_mut() {
            h.update(&buf[..n]);
        }
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        // Committed writers renamed the file away; this only removes the
        // leftovers of an abandoned or failed write.
        let _ = fs::remove_file(&self.temp);
    }
}

/// fsync(2) on a directory, so a rename in it survives a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync directory", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, ContentStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ContentStore::new(dir.path().join("content")).expect("store");
        (dir, store)
    }

    fn temps(store: &ContentStore) -> usize {
        fs::read_dir(store.root().join("tmp")).expect("tmp").count()
    }

    #[test]
    fn commit_verifies_then_publishes() {
        let (_d, store) = store();
        let digest = Digest::sha256(b"hello");
        let mut w = store.writer().expect("writer");
        w.write_all(b"hel").expect("write");
        assert!(!store.exists(&digest), "partial blob visible");
        w.write_all(b"lo").expect("write");
        w.commit(&digest, Some(5)).expect("commit");
        assert_eq!(store.read(&digest).expect("read"), b"hello");
        assert_eq!(store.list().expect("list"), vec![digest]);
        assert_eq!(temps(&store), 0);
        assert!(store.verify().expect("verify").is_empty());
    }

    #[test]
    fn mismatched_digest_or_size_leaves_nothing() {
        let (_d, store) = store();
        let wrong = Digest::sha256(b"other");
        let mut w = store.writer().expect("writer");
        w.write_all(b"hello").expect("write");
        let err = w.commit(&wrong, None).expect_err("mismatch accepted");
        assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
        let right = Digest::sha256(b"hello");
        let mut w = store.writer().expect("writer");
        w.write_all(b"hell").expect("write");
        let err = w.commit(&right, Some(5)).expect_err("truncated accepted");
        assert!(matches!(err, Error::SizeMismatch { .. }), "{err}");
        assert!(store.list().expect("list").is_empty());
        assert_eq!(temps(&store), 0);
    }

    #[test]
    fn dropped_writer_leaves_nothing_and_a_retry_completes() {
        let (_d, store) = store();
        let data = vec![7u8; 3 << 20];
        let digest = Digest::sha256(&data);
        {
            let mut w = store.writer().expect("writer");
            w.write_all(&data[..1 << 20]).expect("write");
            // Dropped here: the simulated crash of an in-process writer.
        }
        assert!(!store.exists(&digest));
        assert_eq!(temps(&store), 0);
        store.put(&data, Some(&digest)).expect("retry");
        assert!(store.exists(&digest));
    }

    #[test]
    fn sha512_blobs_are_accepted() {
        let (_d, store) = store();
        let mut h = Hasher::new(Algorithm::Sha512);
        h.update(b"x");
        let d = h.finish();
        store.put(b"x", Some(&d)).expect("put");
        assert!(store.exists(&d));
        assert!(store.verify().expect("verify").is_empty());
        assert!(store.put(b"y", Some(&d)).is_ok(), "existing blob is kept");
        let mut w = store.writer().expect("writer");
        w.write_all(b"y").expect("write");
        let mut h = Hasher::new(Algorithm::Sha512);
        h.update(b"z");
        assert!(w.commit(&h.finish(), None).is_err());
    }

    #[test]
    fn verify_finds_a_corrupted_blob_and_stale_temps_are_cleared() {
        let (_d, store) = store();
        let d = store.put(b"good", None).expect("put");
        fs::write(store.path(&d), b"evil").expect("corrupt");
        let bad = store.verify().expect("verify");
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].digest, d);
        // A leftover of a pid that cannot exist (above pid_max).
        fs::write(store.root().join("tmp/4294967-0-0"), b"partial").expect("temp");
        assert_eq!(store.remove_stale_temps().expect("clean"), 1);
    }
}
