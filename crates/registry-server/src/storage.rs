//! On-disk registry storage.
//!
//! ```text
//! ROOT/blobs/sha256/<hh>/<hex>                         content, shared by every repository
//! ROOT/repositories/<name>/_layers/<hex>               the repository may serve this blob
//! ROOT/repositories/<name>/_manifests/revisions/<hex>  a manifest of the repository (file holds its media type)
//! ROOT/repositories/<name>/_manifests/tags/<tag>       file holds the tagged digest
//! ROOT/repositories/<name>/_referrers/<subject>/<hex>  descriptor JSON of a manifest whose subject is <subject>
//! ROOT/uploads/<uuid>/{data,repo}                      upload sessions, invisible until committed
//! ROOT/tmp/                                            staging for atomic renames
//! ```
//!
//! Every visible file appears through `rename(2)` from `tmp/` or `uploads/`
//! (same file system), so a crash never exposes a partial blob or link.
//! Repository names are checked against the spec grammar before they reach
//! this module, and no name component can start with `_`, so the `_` entries
//! never collide with nested repository names.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::SystemTime;

use cais_oci::digest::{Algorithm, Hasher};
use cais_oci::distribution::ManifestRefs;
use cais_oci::{Descriptor, Digest};

/// Storage errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("upload {id} not found")]
    UploadUnknown { id: String },
    #[error("uploaded content has digest {actual}, not {expected}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("blob {digest} is being collected")]
    BlobCollected { digest: Digest },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// The registry's files under one root directory.
#[derive(Debug)]
pub struct Storage {
    root: PathBuf,
    /// While an online collection runs, the digests that became referenced
    /// since it started; the sweep never deletes those. `None` when no
    /// collection runs. See `gc.rs` for the argument.
    pub(crate) gc_live: Mutex<Option<HashSet<Digest>>>,
    /// Held for the whole of a collection: two at once would reset each
    /// other's live set.
    pub(crate) gc_running: Mutex<()>,
    /// Manifest commits hold it shared from their blob check to their last
    /// write; a collection takes it exclusively to start, so every commit
    /// either is complete before the mark phase reads the repositories or
    /// sees the live set and records its blobs there.
    pub(crate) commit_gate: RwLock<()>,
}

impl Storage {
    /// Opens (creating) the storage at `root`.
    pub fn open(root: &Path) -> Result<Storage, Error> {
        for dir in ["blobs/sha256", "repositories", "uploads", "tmp"] {
            let path = root.join(dir);
            fs::create_dir_all(&path).map_err(io_err("create directory", &path))?;
        }
        Ok(Storage {
            root: root.to_owned(),
            gc_live: Mutex::new(None),
            gc_running: Mutex::new(()),
            commit_gate: RwLock::new(()),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Path of a blob's content.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.root.join("blobs/sha256").join(&hex[..2]).join(hex)
    }

    fn repo_dir(&self, name: &str) -> PathBuf {
        self.root.join("repositories").join(name)
    }

    fn layer_link(&self, name: &str, digest: &Digest) -> PathBuf {
        self.repo_dir(name).join("_layers").join(digest.hex())
    }

    fn revision_link(&self, name: &str, digest: &Digest) -> PathBuf {
        self.repo_dir(name)
            .join("_manifests/revisions")
            .join(digest.hex())
    }

    fn tag_link(&self, name: &str, tag: &str) -> PathBuf {
        self.repo_dir(name).join("_manifests/tags").join(tag)
    }

    /// Records that `digests` are referenced now, so a running online
    /// collection keeps them. Returns false if one of them no longer exists
    /// (the sweep already took it).
    fn protect(&self, digests: &[&Digest]) -> bool {
        let mut live = self.gc_live.lock().unwrap_or_else(|p| p.into_inner());
        for d in digests {
            if !self.blob_path(d).exists() {
                return false;
            }
        }
        if let Some(set) = live.as_mut() {
            set.extend(digests.iter().map(|d| (*d).clone()));
        }
        true
    }

    /// Writes `data` to `path` atomically through `tmp/`.
    fn write_atomic(&self, path: &Path, data: &[u8]) -> Result<(), Error> {
        let tmp = self.root.join("tmp").join(random_id());
        let mut f = fs::File::create(&tmp).map_err(io_err("create", &tmp))?;
        f.write_all(data).map_err(io_err("write", &tmp))?;
        drop(f);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io_err("create directory", parent))?;
        }
        fs::rename(&tmp, path).map_err(io_err("rename into", path))
    }

    /// Is the blob present in the repository? Returns its size if so.
    pub fn blob_size(&self, name: &str, digest: &Digest) -> Result<Option<u64>, Error> {
        if !self.layer_link(name, digest).exists() {
            return Ok(None);
        }
        match fs::metadata(self.blob_path(digest)) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("stat blob", &self.blob_path(digest))(e)),
        }
    }

    /// Does the repository exist (has it ever had content)?
    pub fn repo_exists(&self, name: &str) -> bool {
        self.repo_dir(name).join("_layers").is_dir()
            || self.repo_dir(name).join("_manifests").is_dir()
    }

    /// Links an existing blob into `name`.
    pub fn link_blob(&self, name: &str, digest: &Digest) -> Result<(), Error> {
        if !self.protect(&[digest]) {
            return Err(Error::BlobCollected {
                digest: digest.clone(),
            });
        }
        // The collector keeps blobs linked recently (see `gc.rs`): a push
        // links its layers before the manifest naming them arrives.
        let blob = self.blob_path(digest);
        let touched = fs::File::options()
            .write(true)
            .open(&blob)
            .and_then(|f| f.set_modified(SystemTime::now()));
        touched.map_err(io_err("touch", &blob))?;
        let link = self.layer_link(name, digest);
        if link.exists() {
            return Ok(());
        }
        self.write_atomic(&link, b"")
    }

    /// Cross-repository mount: links `digest` into `name` if `from` has it.
    pub fn mount_blob(&self, name: &str, from: &str, digest: &Digest) -> Result<bool, Error> {
        if self.blob_size(from, digest)?.is_none() {
            return Ok(false);
        }
        self.link_blob(name, digest)?;
        Ok(true)
    }

    /// Removes the blob from the repository (the content stays until the
    /// collector finds nothing else referencing it).
    pub fn unlink_blob(&self, name: &str, digest: &Digest) -> Result<bool, Error> {
        let link = self.layer_link(name, digest);
        match fs::remove_file(&link) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err("remove", &link)(e)),
        }
    }

    /// Puts bytes known in full (manifests, small monolithic uploads).
    pub fn put_blob_bytes(&self, name: &str, data: &[u8]) -> Result<Digest, Error> {
        let digest = Digest::sha256(data);
        let path = self.blob_path(&digest);
        // Protect first so a concurrent sweep cannot take the blob between
        // the write and the link.
        self.mark_live(&digest);
        if !path.exists() {
            self.write_atomic(&path, data)?;
        }
        self.link_blob(name, &digest)?;
        Ok(digest)
    }

    fn mark_live(&self, digest: &Digest) {
        let mut live = self.gc_live.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(set) = live.as_mut() {
            set.insert(digest.clone());
        }
    }

    // ---- uploads ----

    fn upload_dir(&self, id: &str) -> PathBuf {
        self.root.join("uploads").join(id)
    }

    /// Starts an upload session for `name`.
    pub fn start_upload(&self, name: &str) -> Result<String, Error> {
        let id = random_id();
        let dir = self.upload_dir(&id);
        fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
        let data = dir.join("data");
        fs::File::create(&data).map_err(io_err("create", &data))?;
        let repo = dir.join("repo");
        fs::write(&repo, name).map_err(io_err("write", &repo))?;
        Ok(id)
    }

    /// Path of an upload's data, after checking it belongs to `name`.
    pub fn upload_data(&self, name: &str, id: &str) -> Result<PathBuf, Error> {
        let unknown = || Error::UploadUnknown { id: id.to_owned() };
        // Ids are ours: 32 hex chars. Anything else cannot name an upload
        // and must not reach the file system.
        if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(unknown());
        }
        let dir = self.upload_dir(id);
        match fs::read_to_string(dir.join("repo")) {
            Ok(owner) if owner == name => Ok(dir.join("data")),
            Ok(_) => Err(unknown()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(unknown()),
            Err(e) => Err(io_err("read", &dir.join("repo"))(e)),
        }
    }

    /// Current size of an upload.
    pub fn upload_offset(&self, name: &str, id: &str) -> Result<u64, Error> {
        let data = self.upload_data(name, id)?;
        fs::metadata(&data)
            .map(|m| m.len())
            .map_err(io_err("stat", &data))
    }

    /// Hashes an upload's data from disk (used when no running hash is
    /// cached, e.g. after a restart).
    pub fn hash_upload(&self, name: &str, id: &str) -> Result<(Hasher, u64), Error> {
        let data = self.upload_data(name, id)?;
        let mut f = fs::File::open(&data).map_err(io_err("open", &data))?;
        let mut hasher = Hasher::new(Algorithm::Sha256);
        let mut buf = vec![0u8; 1 << 20];
        let mut n_total = 0u64;
        loop {
            let n = f.read(&mut buf).map_err(io_err("read", &data))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            n_total += n as u64;
        }
        Ok((hasher, n_total))
    }

    /// Commits an upload whose content hashes to `actual` as `expected`.
    /// On mismatch the upload is discarded: the spec says a failed
    /// completion leaves nothing to resume.
    pub fn commit_upload(
        &self,
        name: &str,
        id: &str,
        expected: &Digest,
        actual: Digest,
    ) -> Result<u64, Error> {
        let data = self.upload_data(name, id)?;
        if &actual != expected {
            self.cancel_upload(name, id)?;
            return Err(Error::DigestMismatch {
                expected: expected.clone(),
                actual,
            });
        }
        let size = fs::metadata(&data).map_err(io_err("stat", &data))?.len();
        self.mark_live(expected);
        let dest = self.blob_path(expected);
        if !dest.exists() {
            if let Some(parent) = dest.parent() {
                fs::create_dir_all(parent).map_err(io_err("create directory", parent))?;
            }
            fs::rename(&data, &dest).map_err(io_err("rename into", &dest))?;
        }
        self.link_blob(name, expected)?;
        let dir = self.upload_dir(id);
        fs::remove_dir_all(&dir).map_err(io_err("remove", &dir))?;
        Ok(size)
    }

    /// Drops an upload session.
    pub fn cancel_upload(&self, name: &str, id: &str) -> Result<(), Error> {
        self.upload_data(name, id)?;
        let dir = self.upload_dir(id);
        fs::remove_dir_all(&dir).map_err(io_err("remove", &dir))
    }

    // ---- manifests and tags ----

    /// Stores a validated manifest. Returns the blobs/manifests it needs
    /// that the repository lacks, and stores nothing in that case.
    pub fn put_manifest(
        &self,
        name: &str,
        body: &[u8],
        manifest: &ManifestRefs,
        tags: &[String],
    ) -> Result<Result<Digest, Digest>, Error> {
        let _gate = self.commit_gate.read().unwrap_or_else(|p| p.into_inner());
        {
            // Check and protect under the collector's lock: either the sweep
            // ran first (and the check fails) or it will see these as live.
            let mut live = self.gc_live.lock().unwrap_or_else(|p| p.into_inner());
            for d in &manifest.blobs {
                if !self.layer_link(name, d).exists() || !self.blob_path(d).exists() {
                    return Ok(Err(d.clone()));
                }
            }
            for d in &manifest.manifests {
                if !self.revision_link(name, d).exists() || !self.blob_path(d).exists() {
                    return Ok(Err(d.clone()));
                }
            }
            if let Some(set) = live.as_mut() {
                set.extend(manifest.blobs.iter().cloned());
                set.extend(manifest.manifests.iter().cloned());
            }
        }
        let digest = self.put_blob_bytes(name, body)?;
        self.write_atomic(
            &self.revision_link(name, &digest),
            manifest.media_type.as_bytes(),
        )?;
        for tag in tags {
            self.write_atomic(&self.tag_link(name, tag), digest.to_string().as_bytes())?;
        }
        if let Some(subject) = &manifest.subject {
            let desc = Descriptor {
                artifact_type: manifest.artifact_type.clone(),
                annotations: manifest.annotations.clone(),
                ..Descriptor::new(&manifest.media_type, digest.clone(), body.len() as u64)
            };
            let json = serde_json::to_vec(&desc).expect("a descriptor always serializes");
            let path = self
                .repo_dir(name)
                .join("_referrers")
                .join(subject.hex())
                .join(digest.hex());
            self.write_atomic(&path, &json)?;
        }
        Ok(Ok(digest))
    }

    /// Resolves a tag to a digest.
    pub fn resolve_tag(&self, name: &str, tag: &str) -> Result<Option<Digest>, Error> {
        let path = self.tag_link(name, tag);
        match fs::read_to_string(&path) {
            Ok(s) => Ok(s.trim().parse().ok()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("read", &path)(e)),
        }
    }

    /// Media type of a manifest of the repository, if it has it.
    pub fn manifest_type(&self, name: &str, digest: &Digest) -> Result<Option<String>, Error> {
        let path = self.revision_link(name, digest);
        match fs::read_to_string(&path) {
            Ok(s) if self.blob_path(digest).exists() => Ok(Some(s)),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("read", &path)(e)),
        }
    }

    /// Reads a whole blob (manifests are small).
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>, Error> {
        let path = self.blob_path(digest);
        fs::read(&path).map_err(io_err("read", &path))
    }

    /// Deletes a manifest and every tag pointing at it.
    pub fn delete_manifest(&self, name: &str, digest: &Digest) -> Result<bool, Error> {
        let link = self.revision_link(name, digest);
        if !link.exists() {
            return Ok(false);
        }
        for tag in self.tags(name)? {
            if self.resolve_tag(name, &tag)?.as_ref() == Some(digest) {
                let path = self.tag_link(name, &tag);
                fs::remove_file(&path).map_err(io_err("remove", &path))?;
            }
        }
        if let Ok(body) = self.read_blob(digest) {
            if let Ok(m) = ManifestRefs::parse(&body, None, digest) {
                if let Some(subject) = m.subject {
                    let path = self
                        .repo_dir(name)
                        .join("_referrers")
                        .join(subject.hex())
                        .join(digest.hex());
                    let _ = fs::remove_file(path);
                }
            }
        }
        fs::remove_file(&link).map_err(io_err("remove", &link))?;
        Ok(true)
    }

    /// Deletes a tag only.
    pub fn delete_tag(&self, name: &str, tag: &str) -> Result<bool, Error> {
        let path = self.tag_link(name, tag);
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err("remove", &path)(e)),
        }
    }

    /// Tags of a repository, sorted lexically as the spec requires.
    pub fn tags(&self, name: &str) -> Result<Vec<String>, Error> {
        list_dir(&self.repo_dir(name).join("_manifests/tags"))
    }

    /// Manifest digests of a repository.
    pub fn revisions(&self, name: &str) -> Result<Vec<Digest>, Error> {
        Ok(list_dir(&self.repo_dir(name).join("_manifests/revisions"))?
            .into_iter()
            .filter_map(|hex| format!("sha256:{hex}").parse().ok())
            .collect())
    }

    /// Descriptors of the manifests whose subject is `subject`.
    pub fn referrers(&self, name: &str, subject: &Digest) -> Result<Vec<Descriptor>, Error> {
        let dir = self.repo_dir(name).join("_referrers").join(subject.hex());
        let mut out = Vec::new();
        for hex in list_dir(&dir)? {
            let path = dir.join(&hex);
            let data = match fs::read(&path) {
                Ok(d) => d,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("read", &path)(e)),
            };
            if let Ok(desc) = serde_json::from_slice::<Descriptor>(&data) {
                out.push(desc);
            }
        }
        Ok(out)
    }

    /// All repository names, sorted.
    pub fn catalog(&self) -> Result<Vec<String>, Error> {
        let mut out = Vec::new();
        let base = self.root.join("repositories");
        walk_repos(&base, String::new(), &mut out)?;
        out.sort();
        Ok(out)
    }
}

fn walk_repos(dir: &Path, prefix: String, out: &mut Vec<String>) -> Result<(), Error> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("read directory", dir)(e)),
    };
    let mut is_repo = false;
    for entry in entries {
        let entry = entry.map_err(io_err("read directory", dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('_') {
            is_repo = true;
            continue;
        }
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            let child = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            walk_repos(&entry.path(), child, out)?;
        }
    }
    if is_repo && !prefix.is_empty() {
        out.push(prefix);
    }
    Ok(())
}

/// Sorted entry names of a directory; a missing directory is empty.
pub(crate) fn list_dir(dir: &Path) -> Result<Vec<String>, Error> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("read directory", dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err("read directory", dir))?;
        out.push(entry.file_name().to_string_lossy().into_owned());
    }
    out.sort();
    Ok(out)
}

/// 128 random bits as hex: upload ids and temporary names.
pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the kernel random source is available");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_commit_and_mismatch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Storage::open(dir.path()).expect("open");
        let id = s.start_upload("a/b").expect("start");
        assert!(
            s.upload_data("other", &id).is_err(),
            "uploads are per repository"
        );
        assert!(s.upload_data("a/b", "../../etc").is_err());
        fs::write(s.upload_data("a/b", &id).expect("data"), b"hello").expect("write");
        let (h, n) = s.hash_upload("a/b", &id).expect("hash");
        assert_eq!(n, 5);
        let actual = h.finish();
        let wrong = Digest::sha256(b"other");
        assert!(matches!(
            s.commit_upload("a/b", &id, &wrong, actual.clone()),
            Err(Error::DigestMismatch { .. })
        ));
        assert!(!s.blob_path(&actual).exists(), "nothing stored on mismatch");
        let id = s.start_upload("a/b").expect("start");
        fs::write(s.upload_data("a/b", &id).expect("data"), b"hello").expect("write");
        s.commit_upload("a/b", &id, &actual, actual.clone())
            .expect("commit");
        assert_eq!(s.blob_size("a/b", &actual).expect("size"), Some(5));
        assert_eq!(
            s.blob_size("c", &actual).expect("size"),
            None,
            "blobs are linked per repository"
        );
        assert!(s.mount_blob("c", "a/b", &actual).expect("mount"));
        assert_eq!(
            s.catalog().expect("catalog"),
            vec!["a/b".to_owned(), "c".to_owned()]
        );
    }
}
