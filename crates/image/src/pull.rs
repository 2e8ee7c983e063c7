//! Pulling an image from a registry into the store.
//!
//! Order of events, chosen so that a pull killed at any instant leaves no
//! visible broken image and the next pull simply completes:
//! 1. resolve the reference to a manifest (an index is narrowed to the
//!    platform's manifest), validate it, and fetch the config, all in memory;
//! 2. fetch the layers the store lacks, several at once; each streams
//!    through a [`BlobWriter`] (temporary file, hashed) and, at the same
//!    time, through the decompressor into a temporary snapshot directory.
//!    The blob becomes visible only once its digest and size check out
//!    ([`BlobWriter::commit`]), the snapshot only once the blob is committed
//!    and the uncompressed stream hashes to the config's diff ID;
//! 3. write the config and manifest blobs, then record the name
//!    ([`ImageStore::record_pull`]): the only step that makes the image
//!    visible, and it comes last.
//!
//! Leftovers of a killed pull are temporary files (never read, removed by
//! the store's cleanup) and complete, verified blobs and snapshots, which
//! the next pull reuses instead of fetching them again.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use cais_registry::client::{self, Client};

use crate::content::BlobWriter;
use crate::oci::{self, Compression, Descriptor, ImageConfig, Parsed, Platform};
use crate::reference::Reference;
use crate::store::{ImageRecord, ImageStore};
use crate::unpack;
use crate::{io_err, Digest};

/// Errors of pull and push.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error(transparent)]
    Registry(#[from] client::Error),
    #[error(transparent)]
    Store(#[from] crate::Error),
    #[error("fetching blob {digest}")]
    Fetch {
        digest: Digest,
        #[source]
        source: io::Error,
    },
    #[error("{reference}: {reason}")]
    Invalid { reference: String, reason: String },
    #[error("a transfer thread panicked")]
    Panicked,
}

impl From<oci::Error> for TransferError {
    fn from(e: oci::Error) -> TransferError {
        TransferError::Store(e.into())
    }
}

/// What happens to one blob, for progress displays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Present in the store: nothing to fetch.
    AlreadyExists,
    Waiting,
    /// Bytes transferred so far of the total.
    Transferring {
        done: u64,
        total: u64,
    },
    /// Transferred and checked (and unpacked, for a pulled layer).
    Complete,
    /// Push only: the registry already had it.
    RemoteExists,
    /// Push only: mounted from another repository.
    Mounted,
}

/// Receives progress from the transfer threads.
pub trait Progress: Send + Sync {
    fn update(&self, digest: &Digest, status: Status);
}

/// No progress reporting.
pub struct Quiet;

impl Progress for Quiet {
    fn update(&self, _: &Digest, _: Status) {}
}

/// Pull settings.
pub struct PullOptions {
    pub platform: Platform,
    /// Blobs fetched at once (docker's default is 3).
    pub jobs: usize,
    pub progress: Arc<dyn Progress>,
}

impl Default for PullOptions {
    fn default() -> PullOptions {
        PullOptions {
            platform: Platform::default(),
            jobs: 3,
            progress: Arc::new(Quiet),
        }
    }
}

/// What a pull did.
#[derive(Debug)]
pub struct PullReport {
    pub image: ImageRecord,
    /// The digest the reference resolved to (an index or a manifest).
    pub target: Digest,
    /// Layers fetched (the others were in the store).
    pub fetched: usize,
    pub bytes_fetched: u64,
}

fn invalid(reference: &Reference, reason: impl Into<String>) -> TransferError {
    TransferError::Invalid {
        reference: reference.to_string(),
        reason: reason.into(),
    }
}

/// Pulls `reference` through `client` (which must be for its registry).
pub fn pull(
    store: &ImageStore,
    client: &Client,
    reference: &Reference,
    options: &PullOptions,
) -> Result<PullReport, TransferError> {
    let _lease = store.lease()?;
    let repository = &reference.path;
    let top = client.get_manifest(repository, &reference.tag_or_digest())?;
    let target = top.digest.clone();
    // Manifests to store, in order; written only once the layers are in.
    let mut manifests = vec![(target.clone(), top.bytes.clone())];
    let manifest = match oci::parse_manifest(&top.bytes, Some(&top.media_type), &target)? {
        Parsed::Manifest(m) => *m,
        Parsed::Index(index) => {
            let entry = oci::select_platform(&index, &options.platform, &target)?;
            let child = client.get_manifest(repository, &entry.digest.to_string())?;
            if child.bytes.len() as i64 != entry.size {
                return Err(invalid(
                    reference,
                    format!(
                        "manifest {} has {} bytes, the index says {}",
                        entry.digest,
                        child.bytes.len(),
                        entry.size
                    ),
                ));
            }
            let digest = child.digest.clone();
            let parsed = oci::parse_manifest(&child.bytes, Some(&entry.media_type), &digest)?;
            manifests.push((digest, child.bytes));
            match parsed {
                Parsed::Manifest(m) => *m,
                Parsed::Index(_) => {
                    return Err(invalid(reference, "the platform's entry is an index"))
                }
            }
        }
    };
    for layer in &manifest.layers {
        if !layer.urls.is_empty() {
            return Err(invalid(
                reference,
                format!("layer {} is non-distributable (urls)", layer.digest),
            ));
        }
    }
    // The config, in memory: it is small and gives the diff IDs that let
    // layers be unpacked while they arrive. (No progress line for it:
    // docker shows layers only.)
    let config_desc = &manifest.config;
    let config_bytes = if store.content().exists(&config_desc.digest) {
        None
    } else {
        let mut reader = open_blob(client, repository, config_desc)?;
        let mut bytes = Vec::new();
        reader
            .read_to_end(&mut bytes)
            .map_err(|source| TransferError::Fetch {
                digest: config_desc.digest.clone(),
                source,
            })?;
        Some(bytes)
    };
    let config = match &config_bytes {
        Some(b) => ImageConfig::parse(b, &config_desc.digest)?,
        None => ImageConfig::parse(
            &store.content().read(&config_desc.digest)?,
            &config_desc.digest,
        )?,
    };
    let diff_ids = &config.rootfs.diff_ids;
    if diff_ids.len() != manifest.layers.len() {
        return Err(invalid(
            reference,
            format!(
                "{} layers but {} diff IDs in the config",
                manifest.layers.len(),
                diff_ids.len()
            ),
        ));
    }
    let snapshots = store.snapshots_dir();
    let mut jobs = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (layer, diff_id) in manifest.layers.iter().zip(diff_ids) {
        let have_blob = store.content().exists(&layer.digest);
        let have_snapshot = unpack::snapshot_dir(&snapshots, diff_id)
            .join("fs")
            .is_dir();
        if have_blob {
            options
                .progress
                .update(&layer.digest, Status::AlreadyExists);
        } else if seen.insert(&layer.digest) {
            options.progress.update(&layer.digest, Status::Waiting);
            jobs.push((layer, diff_id, !have_snapshot));
        }
    }
    let fetched = jobs.len();
    let bytes_fetched = jobs.iter().map(|(l, _, _)| l.size.max(0) as u64).sum();
    run_parallel(options.jobs, &jobs, |(layer, diff_id, unpack_too)| {
        fetch_layer(
            store,
            client,
            repository,
            layer,
            unpack_too.then_some(*diff_id),
            &snapshots,
            options.progress.as_ref(),
        )
    })?;
    if let Some(bytes) = config_bytes {
        store.content().put(&bytes, Some(&config_desc.digest))?;
    }
    for (digest, bytes) in manifests.iter().rev() {
        if !store.content().exists(digest) {
            store.content().put(bytes, Some(digest))?;
        }
    }
    // Unpacks whatever is still missing (layers that were in the store
    // without their snapshot), then makes the name visible.
    let image = store.record_pull(reference, &target, &options.platform)?;
    Ok(PullReport {
        image,
        target,
        fetched,
        bytes_fetched,
    })
}

fn open_blob(
    client: &Client,
    repository: &str,
    desc: &Descriptor,
) -> Result<client::BlobReader, TransferError> {
    Ok(client.get_blob(repository, &desc.digest, desc.size.max(0) as u64)?)
}

/// Runs `f` over `items` on up to `jobs` threads; the first error wins and
/// stops the others from starting new items.
pub(crate) fn run_parallel<T: Sync>(
    jobs: usize,
    items: &[T],
    f: impl Fn(&T) -> Result<(), TransferError> + Sync,
) -> Result<(), TransferError> {
    let next = AtomicUsize::new(0);
    let failed: Mutex<Option<TransferError>> = Mutex::new(None);
    let threads = jobs.clamp(1, items.len().max(1));
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= items.len() {
                        break;
                    }
                    if let Err(e) = f(&items[i]) {
                        next.store(items.len(), Ordering::Relaxed);
                        let mut slot = failed.lock().unwrap_or_else(|p| p.into_inner());
                        slot.get_or_insert(e);
                        break;
                    }
                })
            })
            .collect();
        for h in handles {
            if h.join().is_err() {
                let mut slot = failed.lock().unwrap_or_else(|p| p.into_inner());
                slot.get_or_insert(TransferError::Panicked);
            }
        }
    });
    match failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Copies what it reads into the blob writer and reports progress.
struct Tee<'a, R> {
    src: R,
    sink: BlobWriter,
    progress: &'a dyn Progress,
    digest: &'a Digest,
    total: u64,
    done: u64,
    reported: u64,
}

impl<R> Tee<'_, R> {
    fn into_writer(self) -> BlobWriter {
        self.sink
    }
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.src.read(buf)?;
        self.sink.write_all(&buf[..n])?;
        self.done += n as u64;
        if self.done - self.reported >= 512 * 1024 || (n == 0 && self.done != self.reported) {
            self.reported = self.done;
            self.progress.update(
                self.digest,
                Status::Transferring {
                    done: self.done,
                    total: self.total,
                },
            );
        }
        Ok(n)
    }
}

fn temp_snapshot(snapshots: &Path) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    snapshots.join("tmp").join(format!(
        "{}-pull-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        crate::content::unique_suffix()
    ))
}

/// Fetches one layer into the content store, unpacking it on the way when
/// `diff_id` is given.
fn fetch_layer(
    store: &ImageStore,
    client: &Client,
    repository: &str,
    layer: &Descriptor,
    diff_id: Option<&Digest>,
    snapshots: &Path,
    progress: &dyn Progress,
) -> Result<(), TransferError> {
    let fetch_err = |source| TransferError::Fetch {
        digest: layer.digest.clone(),
        source,
    };
    let size = layer.size.max(0) as u64;
    let mut blob = open_blob(client, repository, layer)?;
    // The BlobWriter hashes what it stores and commit() checks it, so the
    // reader need not hash the same bytes again; it still checks the size.
    blob.trust_digest_to_consumer();
    let writer = store.content().writer()?;
    let mut tee = Tee {
        src: io::BufReader::with_capacity(256 * 1024, blob),
        sink: writer,
        progress,
        digest: &layer.digest,
        total: size,
        done: 0,
        reported: 0,
    };
    let compression = Compression::from_media_type(&layer.media_type).ok_or_else(|| {
        crate::Error::from(oci::Error::UnsupportedMediaType {
            media_type: layer.media_type.clone(),
            what: format!("layer {}", layer.digest),
        })
    })?;
    let Some(diff_id) = diff_id else {
        io::copy(&mut tee, &mut io::sink()).map_err(fetch_err)?;
        tee.into_writer().commit(&layer.digest, Some(size))?;
        progress.update(&layer.digest, Status::Complete);
        return Ok(());
    };
    let tmp = temp_snapshot(snapshots);
    let fs_dir = tmp.join("fs");
    let tmp_ref = &tmp;
    let result = (move || -> Result<(), TransferError> {
        let tmp = tmp_ref;
        std::fs::create_dir_all(&fs_dir).map_err(io_err("create snapshot", &fs_dir))?;
        let (actual, unpacked) = {
            let stream = unpack::decompress(&mut tee, compression)?;
            let out = unpack::extract_hashed(stream, &fs_dir, &layer.digest);
            // Whatever the unpacker left (padding after the tar, or all of
            // it on error) still goes through the writer, so a corrupt blob
            // is reported as such rather than as a bad tar.
            let rest = io::copy(&mut tee, &mut io::sink());
            match (out, rest) {
                (Ok(v), Ok(_)) => v,
                (_, Err(e)) => return Err(fetch_err(e)),
                (Err(e), Ok(_)) => {
                    // The bytes were whole: check them, so a blob that is
                    // not what the manifest names is called that.
                    tee.into_writer().commit(&layer.digest, Some(size))?;
                    return Err(e.into());
                }
            }
        };
        tee.into_writer().commit(&layer.digest, Some(size))?;
        if actual != *diff_id {
            return Err(crate::Error::DiffIdMismatch {
                layer: layer.digest.clone(),
                expected: diff_id.clone(),
                actual,
            }
            .into());
        }
        std::fs::write(tmp.join("size"), unpacked.to_string())
            .map_err(io_err("write snapshot size", tmp))?;
        let dir = unpack::snapshot_dir(snapshots, diff_id);
        match std::fs::rename(tmp, &dir) {
            Ok(()) => Ok(()),
            // Another pull unpacked the same layer first: same content.
            Err(_) if dir.join("fs").is_dir() => {
                unpack::remove_tree(tmp)?;
                Ok(())
            }
            Err(e) => Err(io_err("publish snapshot", &dir)(e).into()),
        }
    })();
    if result.is_err() {
        let _ = unpack::remove_tree(&tmp);
    } else {
        progress.update(&layer.digest, Status::Complete);
    }
    result
}
