//! Mark-and-sweep garbage collection of blobs nothing references.
//!
//! Roots are the manifests of every repository (`_manifests/revisions`);
//! each marks itself, its config and layers, and its child manifests. A blob
//! not marked is garbage, with two exceptions that make the online
//! collection safe against concurrent pushes:
//!
//! 1. While a collection runs, `Storage::gc_live` collects every digest
//!    that becomes referenced (upload committed, blob mounted or linked,
//!    manifest validated). A manifest push checks its blobs exist and adds
//!    them to that set under the same lock the sweep holds while deleting a
//!    blob, so either the sweep deleted first (and the push fails cleanly
//!    with `MANIFEST_BLOB_UNKNOWN`, nothing half-stored) or the blob is kept.
//!    A collection starts only between manifest commits (`commit_gate`), so
//!    a commit is either complete before marking begins or sees the set.
//! 2. A push uploads its layers before the manifest that references them,
//!    possibly before the collection started. Linking a blob sets its
//!    modification time, and blobs younger than the grace period are kept,
//!    so layers of a push in progress survive until its manifest lands.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::storage::{self, list_dir, Storage};
use cais_oci::distribution::ManifestRefs;
use cais_oci::Digest;

/// Collection errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading storage")]
    Storage(#[from] storage::Error),
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What a collection did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub marked: usize,
    pub deleted: Vec<Digest>,
    pub bytes_freed: u64,
    /// Upload sessions abandoned for longer than `UPLOAD_TTL`, removed.
    pub stale_uploads: usize,
}

/// An upload untouched this long is abandoned: clients finish or resume
/// within minutes, and the spec lets registries expire sessions.
pub const UPLOAD_TTL: Duration = Duration::from_secs(24 * 3600);

/// Runs one collection. With `dry_run` nothing is deleted.
pub fn collect(storage: &Storage, grace: Duration, dry_run: bool) -> Result<Report, Error> {
    let _running = storage.gc_running.lock().unwrap_or_else(|p| p.into_inner());
    let started = SystemTime::now();
    {
        let _gate = storage
            .commit_gate
            .write()
            .unwrap_or_else(|p| p.into_inner());
        let mut live = storage.gc_live.lock().unwrap_or_else(|p| p.into_inner());
        *live = Some(HashSet::new());
    }
    let result = collect_inner(storage, started, grace, dry_run);
    let mut live = storage.gc_live.lock().unwrap_or_else(|p| p.into_inner());
    *live = None;
    result
}

fn collect_inner(
    storage: &Storage,
    started: SystemTime,
    grace: Duration,
    dry_run: bool,
) -> Result<Report, Error> {
    let mut marked: HashSet<Digest> = HashSet::new();
    let repos = storage.catalog()?;
    for repo in &repos {
        for digest in storage.revisions(repo)? {
            marked.insert(digest.clone());
            let Ok(body) = storage.read_blob(&digest) else {
                continue;
            };
            // A manifest the registry accepted always parses; if one does
            // not, keeping its digest alone is the conservative choice.
            if let Ok(m) = ManifestRefs::parse(&body, None, &digest) {
                marked.extend(m.blobs);
                marked.extend(m.manifests);
            }
        }
    }
    let mut report = Report {
        marked: marked.len(),
        ..Report::default()
    };
    let cutoff = started.checked_sub(grace).unwrap_or(SystemTime::UNIX_EPOCH);
    let blobs = storage.root().join("blobs/sha256");
    for prefix in list_dir(&blobs)? {
        for hex in list_dir(&blobs.join(&prefix))? {
            let Ok(digest) = format!("sha256:{hex}").parse::<Digest>() else {
                continue;
            };
            if marked.contains(&digest) {
                continue;
            }
            let path = storage.blob_path(&digest);
            let Ok(meta) = fs::metadata(&path) else {
                continue;
            };
            if meta.modified().map(|m| m > cutoff).unwrap_or(true) {
                continue;
            }
            let live = storage.gc_live.lock().unwrap_or_else(|p| p.into_inner());
            if live.as_ref().is_some_and(|set| set.contains(&digest)) {
                continue;
            }
            if !dry_run {
                fs::remove_file(&path).map_err(|source| Error::Io {
                    op: "remove",
                    path: path.clone(),
                    source,
                })?;
            }
            drop(live);
            report.bytes_freed += meta.len();
            report.deleted.push(digest);
        }
    }
    let uploads = storage.root().join("uploads");
    let stale_before = started
        .checked_sub(UPLOAD_TTL)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    for id in list_dir(&uploads)? {
        let dir = uploads.join(&id);
        let touched = fs::metadata(dir.join("data")).and_then(|m| m.modified());
        if touched.map(|t| t < stale_before).unwrap_or(false) {
            if !dry_run {
                fs::remove_dir_all(&dir).map_err(|source| Error::Io {
                    op: "remove",
                    path: dir.clone(),
                    source,
                })?;
            }
            report.stale_uploads += 1;
        }
    }
    if !dry_run {
        let deleted: HashSet<&Digest> = report.deleted.iter().collect();
        for repo in &repos {
            unlink_dangling(storage, repo, &deleted)?;
        }
    }
    Ok(report)
}

/// Removes a repository's links to collected blobs, so that the same
/// content uploaded later elsewhere does not reappear in this repository.
fn unlink_dangling(storage: &Storage, repo: &str, deleted: &HashSet<&Digest>) -> Result<(), Error> {
    let dir: &Path = &storage
        .root()
        .join("repositories")
        .join(repo)
        .join("_layers");
    for hex in list_dir(dir)? {
        let Ok(digest) = format!("sha256:{hex}").parse::<Digest>() else {
            continue;
        };
        if deleted.contains(&digest) && !storage.blob_path(&digest).exists() {
            storage.unlink_blob(repo, &digest)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cais_oci::image::OCI_MANIFEST;

    #[test]
    fn keeps_referenced_and_recent_blobs_and_expires_uploads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Storage::open(dir.path()).expect("open");
        let config = s.put_blob_bytes("r", b"{}").expect("put");
        let layer = s.put_blob_bytes("r", b"layer").expect("put");
        let garbage = s.put_blob_bytes("r", b"garbage").expect("put");
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"x","digest":"{config}","size":2}},"layers":[{{"mediaType":"y","digest":"{layer}","size":5}}]}}"#
        );
        let m = ManifestRefs::parse(body.as_bytes(), None, &Digest::sha256(body.as_bytes()))
            .expect("parse");
        let manifest = s
            .put_manifest("r", body.as_bytes(), &m, &["t".to_owned()])
            .expect("put")
            .expect("complete");

        // Within the grace period the unreferenced blob stays.
        let r = collect(&s, Duration::from_secs(3600), false).expect("gc");
        assert!(r.deleted.is_empty(), "{r:?}");
        // Without grace it goes; referenced ones stay.
        let r = collect(&s, Duration::ZERO, false).expect("gc");
        assert_eq!(r.deleted, vec![garbage.clone()]);
        for d in [&config, &layer, &manifest] {
            assert!(s.blob_path(d).exists(), "{d} must stay");
        }
        assert_eq!(s.blob_size("r", &garbage).expect("size"), None);

        let id = s.start_upload("r").expect("upload");
        let data = s.upload_data("r", &id).expect("data");
        let r = collect(&s, Duration::ZERO, false).expect("gc");
        assert_eq!(r.stale_uploads, 0, "a fresh upload stays");
        let old = SystemTime::now() - UPLOAD_TTL - Duration::from_secs(60);
        fs::File::options()
            .write(true)
            .open(&data)
            .and_then(|f| f.set_modified(old))
            .expect("age");
        let r = collect(&s, Duration::ZERO, false).expect("gc");
        assert_eq!(r.stale_uploads, 1);
        assert!(s.upload_data("r", &id).is_err());
    }
}
