//! Pushing an image from the store to a registry: blobs first (skipped when
//! the repository has them, mounted when another repository of the same
//! registry does, uploaded otherwise), then the manifest, byte for byte as
//! stored so its digest is the same on both sides.

use std::io::Read;
use std::sync::Arc;

use cais_registry::client::{Client, PushOutcome, DEFAULT_CHUNK_THRESHOLD};

use crate::pull::{run_parallel, Progress, Quiet, Status, TransferError};
use crate::reference::Reference;
use crate::store::ImageStore;
use crate::Digest;

/// Push settings.
pub struct PushOptions {
    /// Blobs pushed at once.
    pub jobs: usize,
    /// Blobs larger than this go up in PATCH chunks of this size.
    pub chunk_size: u64,
    pub progress: Arc<dyn Progress>,
}

impl Default for PushOptions {
    fn default() -> PushOptions {
        PushOptions {
            jobs: 3,
            chunk_size: DEFAULT_CHUNK_THRESHOLD,
            progress: Arc::new(Quiet),
        }
    }
}

/// What a push did.
#[derive(Debug)]
pub struct PushReport {
    pub manifest: Digest,
    pub uploaded: usize,
    pub mounted: usize,
    pub existed: usize,
}

/// Pushes the image `source` names in the store to `target` (a tagged or
/// digest reference on `client`'s registry).
pub fn push(
    store: &ImageStore,
    client: &Client,
    source: &str,
    target: &Reference,
    options: &PushOptions,
) -> Result<PushReport, TransferError> {
    let image = store.resolve(source)?;
    let manifest = store.manifest(&image)?;
    let manifest_bytes = store.content().read(&image.manifest)?;
    // A repository of the same registry that has the blobs: where the
    // image was pulled from, known by its repo digests.
    let mount_from: Option<String> = image.repo_digests.iter().find_map(|rd| {
        let (name, _) = rd.split_once('@')?;
        let (domain, path) = name.split_once('/')?;
        (domain == target.domain && path != target.path).then(|| path.to_owned())
    });
    let blobs: Vec<(Digest, u64)> = std::iter::once(&manifest.config)
        .chain(&manifest.layers)
        .map(|d| (d.digest.clone(), d.size.max(0) as u64))
        .collect();
    for (d, _) in &blobs {
        options.progress.update(d, Status::Waiting);
    }
    let counts = std::sync::Mutex::new((0, 0, 0));
    run_parallel(options.jobs, &blobs, |(digest, size)| {
        let content = store.content();
        let mut open = || -> std::io::Result<Box<dyn Read + '_>> {
            let file = content
                .open(digest)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::NotFound, e.to_string()))?;
            Ok(Box::new(ProgressReader {
                inner: std::io::BufReader::with_capacity(1 << 20, file),
                progress: options.progress.as_ref(),
                digest: digest.clone(),
                total: *size,
                done: 0,
                reported: 0,
            }))
        };
        let outcome = client.push_blob(
            &target.path,
            digest,
            *size,
            mount_from.as_deref(),
            options.chunk_size,
            &mut open,
        )?;
        let mut c = counts.lock().unwrap_or_else(|p| p.into_inner());
        match outcome {
            PushOutcome::AlreadyExists => {
                c.2 += 1;
                options.progress.update(digest, Status::RemoteExists);
            }
            PushOutcome::Mounted => {
                c.1 += 1;
                options.progress.update(digest, Status::Mounted);
            }
            PushOutcome::Uploaded => {
                c.0 += 1;
                options.progress.update(digest, Status::Complete);
            }
        }
        Ok(())
    })?;
    let digest = client.put_manifest(
        &target.path,
        &target.tag_or_digest(),
        &image.manifest_media_type,
        &manifest_bytes,
    )?;
    let (uploaded, mounted, existed) = counts.into_inner().unwrap_or_else(|p| p.into_inner());
    Ok(PushReport {
        manifest: digest,
        uploaded,
        mounted,
        existed,
    })
}

struct ProgressReader<'a, R> {
    inner: R,
    progress: &'a dyn Progress,
    digest: Digest,
    total: u64,
    done: u64,
    reported: u64,
}

impl<R: Read> Read for ProgressReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        if self.done - self.reported >= 512 * 1024 {
            self.reported = self.done;
            self.progress.update(
                &self.digest,
                Status::Transferring {
                    done: self.done,
                    total: self.total,
                },
            );
        }
        Ok(n)
    }
}
