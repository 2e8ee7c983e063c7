//! Image metadata: which manifests are images, and which names point at
//! them, in one JSON file (`images.json`) replaced atomically (write a
//! temporary file, fsync, rename, fsync the directory) under an exclusive
//! flock(2), so readers never see a half-written file and concurrent
//! writers do not lose each other's updates.
//!
//! An image is keyed by its manifest digest; its id is its config digest,
//! as Docker prints it. Tags (`domain/path:tag`) point at manifests, which
//! never change, so re-pointing a tag at an earlier digest is a rollback.
//!
//! Garbage collection and ingestion exclude each other through
//! `ingest.lock`: ingestion (pull, load, import, commit) holds it shared for
//! its whole length through a [`Lease`], GC takes it exclusive, so GC never
//! deletes a blob written but not yet recorded.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::content::{remove_stale_temps, sync_dir, unique_suffix, ContentStore, CorruptBlob};
use crate::digest::Digest;
use crate::oci::{self, ImageConfig, Manifest, Parsed, Platform};
use crate::reference::Reference;
use crate::{io_err, unpack, Error, Result};

/// Default data root.
pub const DEFAULT_ROOT: &str = "/var/lib/cais";
/// Environment variable overriding the default data root.
pub const ROOT_ENV: &str = "CAIS_DATA_ROOT";

/// One image: a platform manifest with its config.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ImageRecord {
    /// The image manifest (one platform).
    pub manifest: Digest,
    pub manifest_media_type: String,
    /// The config digest: the image id.
    pub config: Digest,
    /// What the image was pulled or loaded as: an index or the manifest.
    pub target: Digest,
    /// `domain/path@digest` names it was pulled by.
    #[serde(default)]
    pub repo_digests: BTreeSet<String>,
    /// When this store recorded it (RFC 3339).
    pub added: String,
    /// The image a commit made this one from (`docker inspect`'s
    /// `Parent`); images pulled, loaded, imported or built have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Digest>,
    /// Filled from the tag table when read; not stored in the record.
    #[serde(skip)]
    pub tags: Vec<String>,
}

impl ImageRecord {
    /// The image id, Docker style.
    pub fn id(&self) -> &Digest {
        &self.config
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Metadata {
    version: u32,
    /// Manifest digest -> image.
    images: BTreeMap<Digest, ImageRecord>,
    /// `domain/path:tag` -> manifest digest.
    tags: BTreeMap<String, Digest>,
}

/// What `remove` did, in Docker's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    Untagged(String),
    Deleted(Digest),
}

/// What GC removed.
#[derive(Debug, Default, Clone)]
pub struct GcReport {
    pub blobs: Vec<Digest>,
    pub snapshots: Vec<String>,
    pub bytes: u64,
    /// False when an ingestion held its lease, so GC waited for next time.
    pub ran: bool,
}

/// What `verify` found; empty lists mean a consistent store.
#[derive(Debug, Default, Clone)]
pub struct VerifyReport {
    pub blobs_checked: usize,
    pub corrupt: Vec<CorruptBlob>,
    /// Blobs an image needs that are missing, with the image's manifest.
    pub missing: Vec<(Digest, Digest)>,
    /// Diff IDs an image needs whose snapshot is missing.
    pub missing_snapshots: Vec<(Digest, Digest)>,
}

impl VerifyReport {
    pub fn is_consistent(&self) -> bool {
        self.corrupt.is_empty() && self.missing.is_empty() && self.missing_snapshots.is_empty()
    }
}

/// Decides whether an image is in use (by a container), naming the user.
pub type InUseCheck = Box<dyn Fn(&ImageRecord) -> Option<String> + Send + Sync>;

/// Held while blobs are written but not yet recorded; GC waits for it.
pub struct Lease {
    _file: File,
}

/// The image store under one data root.
pub struct ImageStore {
    root: PathBuf,
    content: ContentStore,
    in_use: Option<InUseCheck>,
}

impl std::fmt::Debug for ImageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageStore")
            .field("root", &self.root)
            .finish()
    }
}

impl ImageStore {
    /// `$CAIS_DATA_ROOT`, else `/var/lib/cais`.
    pub fn default_root() -> PathBuf {
        std::env::var_os(ROOT_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT))
    }

    /// Opens (creating if needed) the store under `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<ImageStore> {
        let root = root.into();
        for d in [root.join("snapshots/tmp"), root.join("containers")] {
            fs::create_dir_all(&d).map_err(io_err("create store directory", &d))?;
        }
        let content = ContentStore::new(root.join("content"))?;
        Ok(ImageStore {
            root,
            content,
            in_use: None,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn content(&self) -> &ContentStore {
        &self.content
    }

    /// The engine's hook: images it reports in use are not removed.
    /// Containers made by [`ImageStore::prepare_container`] are always
    /// checked as well.
    pub fn set_in_use_check(&mut self, check: InUseCheck) {
        self.in_use = Some(check);
    }

    pub(crate) fn snapshots_dir(&self) -> PathBuf {
        self.root.join("snapshots")
    }

    pub(crate) fn containers_dir(&self) -> PathBuf {
        self.root.join("containers")
    }

    /// Takes a lease: GC will not run until it is dropped. Hold one while
    /// writing blobs that an image will reference once recorded.
    pub fn lease(&self) -> Result<Lease> {
        let file = self.lock_file("ingest.lock", libc::LOCK_SH)?;
        Ok(Lease { _file: file })
    }

    fn lock_file(&self, name: &str, op: libc::c_int) -> Result<File> {
        let path = self.root.join(name);
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err("open lock file", &path))?;
        // SAFETY: flock on a descriptor we own; no memory is involved.
        if unsafe { libc::flock(file.as_raw_fd(), op) } != 0 {
            return Err(io_err("lock", &path)(io::Error::last_os_error()));
        }
        Ok(file)
    }

    fn read_metadata(&self) -> Result<Metadata> {
        let path = self.root.join("images.json");
        match fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| Error::Json {
                context: format!("parse {}", path.display()),
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Metadata {
                version: 1,
                ..Default::default()
            }),
            Err(e) => Err(io_err("read metadata", &path)(e)),
        }
    }

    /// Read-modify-write of the metadata under the store lock. `f` sees the
    /// current state; when it fails nothing is written.
    fn update<T>(&self, f: impl FnOnce(&mut Metadata) -> Result<T>) -> Result<T> {
        let _lock = self.lock_file("lock", libc::LOCK_EX)?;
        let mut md = self.read_metadata()?;
        let out = f(&mut md)?;
        let path = self.root.join("images.json");
        let tmp = self.root.join(format!(
            ".images.json.{}-{}",
            std::process::id(),
            unique_suffix()
        ));
        let body = serde_json::to_vec_pretty(&md).map_err(|e| Error::Json {
            context: "serialize metadata".into(),
            reason: e.to_string(),
        })?;
        let res = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(&body)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)
        })();
        if let Err(e) = res {
            let _ = fs::remove_file(&tmp);
            return Err(io_err("write metadata", &path)(e));
        }
        sync_dir(&self.root)?;
        Ok(out)
    }

    /// Reads a manifest or index blob.
    pub fn read_manifest(&self, digest: &Digest, media_type: Option<&str>) -> Result<Parsed> {
        let body = self.content.read(digest)?;
        Ok(oci::parse_manifest(&body, media_type, digest)?)
    }

    /// The image manifest of a record.
    pub fn manifest(&self, rec: &ImageRecord) -> Result<Manifest> {
        match self.read_manifest(&rec.manifest, Some(&rec.manifest_media_type))? {
            Parsed::Manifest(m) => Ok(*m),
            Parsed::Index(_) => Err(oci::Error::InvalidManifest {
                digest: rec.manifest.clone(),
                reason: "expected an image manifest, found an index".into(),
            }
            .into()),
        }
    }

    /// The config of a record.
    pub fn config(&self, rec: &ImageRecord) -> Result<ImageConfig> {
        Ok(ImageConfig::parse(
            &self.content.read(&rec.config)?,
            &rec.config,
        )?)
    }

    /// Raw config JSON (for inspect, save).
    pub fn config_json(&self, rec: &ImageRecord) -> Result<serde_json::Value> {
        let body = self.content.read(&rec.config)?;
        serde_json::from_slice(&body).map_err(|e| {
            oci::Error::InvalidConfig {
                digest: rec.config.clone(),
                reason: e.to_string(),
            }
            .into()
        })
    }

    /// Snapshot directories of an image's layers, bottom first.
    pub fn layer_dirs(&self, rec: &ImageRecord) -> Result<Vec<PathBuf>> {
        let config = self.config(rec)?;
        Ok(config
            .rootfs
            .diff_ids
            .iter()
            .map(|d| unpack::snapshot_dir(&self.snapshots_dir(), d).join("fs"))
            .collect())
    }

    /// Unpacked size of an image: the sum of its layers' snapshots.
    pub fn image_size(&self, rec: &ImageRecord) -> u64 {
        let Ok(config) = self.config(rec) else {
            return 0;
        };
        config
            .rootfs
            .diff_ids
            .iter()
            .map(|d| unpack::snapshot_size(&self.snapshots_dir(), d))
            .sum()
    }

    /// Records a pulled image: `target` (a manifest or an index, selected by
    /// `platform`) and every blob it needs must already be in the content
    /// store. Layers are unpacked (checking diff IDs), then `reference`'s
    /// tag and `name@target` are recorded.
    pub fn record_pull(
        &self,
        reference: &Reference,
        target: &Digest,
        platform: &Platform,
    ) -> Result<ImageRecord> {
        let mut repo_digests = BTreeSet::new();
        repo_digests.insert(format!("{}@{target}", reference.name()));
        let tags: Vec<String> = reference.tagged_name().into_iter().collect();
        self.add_image(target, None, platform, &tags, repo_digests)
    }

    /// Records an image (the common path of pull, load, import and commit):
    /// [`check_image`](Self::check_image), then [`record`](Self::record).
    /// `media_type` is the descriptor's type for `target`, when known.
    pub fn add_image(
        &self,
        target: &Digest,
        media_type: Option<&str>,
        platform: &Platform,
        tags: &[String],
        repo_digests: BTreeSet<String>,
    ) -> Result<ImageRecord> {
        let _lease = self.lease()?;
        let mut rec = self.check_image(target, media_type, platform)?;
        rec.repo_digests = repo_digests;
        let manifest = rec.manifest.clone();
        self.record(&[(rec, tags.to_vec())])?;
        self.get(&manifest)
    }

    /// Checks that `target` (a manifest, or an index resolved for
    /// `platform`) is a complete image in the content store and unpacks its
    /// layers, checking their diff IDs. Nothing is recorded.
    pub fn check_image(
        &self,
        target: &Digest,
        media_type: Option<&str>,
        platform: &Platform,
    ) -> Result<ImageRecord> {
        let (manifest_digest, manifest_type, manifest) =
            match self.read_manifest(target, media_type)? {
                Parsed::Manifest(m) => (
                    target.clone(),
                    m.media_type
                        .clone()
                        .unwrap_or_else(|| oci::OCI_MANIFEST.into()),
                    *m,
                ),
                Parsed::Index(i) => {
                    let d = oci::select_platform(&i, platform, target)?;
                    match self.read_manifest(&d.digest, Some(&d.media_type))? {
                        Parsed::Manifest(m) => (d.digest.clone(), d.media_type.clone(), *m),
                        Parsed::Index(_) => {
                            return Err(oci::Error::InvalidManifest {
                                digest: d.digest.clone(),
                                reason: "platform entry is an index".into(),
                            }
                            .into())
                        }
                    }
                }
            };
        let config_digest = manifest.config.digest.clone();
        let config = ImageConfig::parse(&self.content.read(&config_digest)?, &config_digest)?;
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(oci::Error::InvalidManifest {
                digest: manifest_digest,
                reason: format!(
                    "{} layers but {} diff IDs in the config",
                    manifest.layers.len(),
                    config.rootfs.diff_ids.len()
                ),
            }
            .into());
        }
        for (layer, diff_id) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
            unpack::unpack_layer(&self.content, &self.snapshots_dir(), layer, diff_id)?;
        }
        Ok(ImageRecord {
            manifest: manifest_digest,
            manifest_media_type: manifest_type,
            config: config_digest,
            target: target.clone(),
            repo_digests: BTreeSet::new(),
            added: crate::time::now_rfc3339(),
            tags: Vec::new(),
            parent: None,
        })
    }

    /// Records checked images and their tags in one metadata update.
    pub fn record(&self, images: &[(ImageRecord, Vec<String>)]) -> Result<()> {
        self.update(|md| {
            for (rec, tags) in images {
                let entry = md
                    .images
                    .entry(rec.manifest.clone())
                    .or_insert_with(|| rec.clone());
                entry.repo_digests.extend(rec.repo_digests.iter().cloned());
                for t in tags {
                    md.tags.insert(t.clone(), rec.manifest.clone());
                }
            }
            Ok(())
        })
    }

    /// The image with this manifest digest.
    pub fn get(&self, manifest: &Digest) -> Result<ImageRecord> {
        let md = self.read_metadata()?;
        with_tags(&md, manifest).ok_or_else(|| Error::NotFound {
            what: format!("image {manifest}"),
        })
    }

    /// Every image, with its tags.
    pub fn list(&self) -> Result<Vec<ImageRecord>> {
        let md = self.read_metadata()?;
        Ok(md.images.keys().filter_map(|d| with_tags(&md, d)).collect())
    }

    /// Finds an image by reference (`name[:tag]`, `name@digest`), by id or
    /// manifest digest (`sha256:...`), or by a unique id prefix.
    pub fn resolve(&self, s: &str) -> Result<ImageRecord> {
        let md = self.read_metadata()?;
        resolve_in(&md, s)
            .and_then(|d| with_tags(&md, &d))
            .ok_or_else(|| Error::NotFound {
                what: format!("image {s}"),
            })
    }

    /// Points `target`'s tag at the image `source` names. Tagging an
    /// earlier digest is how a rollback is done.
    pub fn tag(&self, source: &str, target: &Reference) -> Result<ImageRecord> {
        let tagged = target.tagged_name().ok_or_else(|| Error::InvalidArgument {
            reason: format!("{target} has no tag to set"),
        })?;
        if target.digest.is_some() {
            return Err(Error::InvalidArgument {
                reason: "a tag target cannot carry a digest".into(),
            });
        }
        let manifest = self.update(|md| {
            let d = resolve_in(md, source).ok_or_else(|| Error::NotFound {
                what: format!("image {source}"),
            })?;
            md.tags.insert(tagged.clone(), d.clone());
            Ok(d)
        })?;
        self.get(&manifest)
    }

    /// Removes `name` the way `docker rmi` does: a tag of an image with
    /// other tags is only untagged; the last name removes the image, then
    /// GC removes the blobs and snapshots nothing else uses. By id, an
    /// image tagged in several repositories needs `force`. An image in use
    /// by a container is refused, even with `force` (then only untagged).
    pub fn remove(&self, name: &str, force: bool) -> Result<Vec<Removal>> {
        let by_id = looks_like_id(name);
        let candidate = self.resolve(name)?;
        let user = self.user_of(&candidate)?;
        let out = self.update(|md| {
            let manifest = resolve_in(md, name).ok_or_else(|| Error::NotFound {
                what: format!("image {name}"),
            })?;
            let tags: Vec<String> = md
                .tags
                .iter()
                .filter(|(_, d)| **d == manifest)
                .map(|(t, _)| t.clone())
                .collect();
            let mut out = Vec::new();
            if !by_id {
                // By name: untag that name; delete only when it was the last.
                let r: Reference = name.parse()?;
                let tagged = r.tagged_name();
                let named_by_tag = tagged.as_ref().is_some_and(|t| tags.contains(t));
                if named_by_tag && tags.len() > 1 {
                    if let Some(t) = tagged {
                        md.tags.remove(&t);
                        out.push(Removal::Untagged(display_name(&t)));
                    }
                    return Ok(out);
                }
                // By `name@digest` while tags remain: drop that reference only.
                if let (Some(d), false) = (&r.digest, tags.is_empty()) {
                    let by_digest = format!("{}@{d}", r.name());
                    if let Some(rec) = md.images.get_mut(&manifest) {
                        if rec.repo_digests.remove(&by_digest) {
                            out.push(Removal::Untagged(display_name(&by_digest)));
                            return Ok(out);
                        }
                    }
                }
            } else {
                let repos: BTreeSet<&str> = tags
                    .iter()
                    .map(|t| t.rsplit_once(':').map_or(t.as_str(), |(n, _)| n))
                    .collect();
                if repos.len() > 1 && !force {
                    return Err(Error::Conflict {
                        reason: format!(
                            "unable to delete {} (must be forced) - image is referenced in multiple repositories",
                            candidate.config.short()
                        ),
                    });
                }
            }
            if let Some(user) = &user {
                if !force || by_id {
                    return Err(Error::Conflict {
                        reason: format!(
                            "unable to remove {name} (must force) - image {} is being used by {user}",
                            candidate.config.short()
                        ),
                    });
                }
                // Forced by name while in use: untag, keep the image.
                for t in &tags {
                    md.tags.remove(t);
                    out.push(Removal::Untagged(display_name(t)));
                }
                return Ok(out);
            }
            for t in &tags {
                md.tags.remove(t);
                out.push(Removal::Untagged(display_name(t)));
            }
            if let Some(rec) = md.images.remove(&manifest) {
                for rd in &rec.repo_digests {
                    out.push(Removal::Untagged(display_name(rd)));
                }
                out.push(Removal::Deleted(rec.config.clone()));
            }
            Ok(out)
        })?;
        if out.iter().any(|r| matches!(r, Removal::Deleted(_))) {
            self.gc()?;
        }
        Ok(out)
    }

    /// Removes dangling images (no tag), or with `all` every image no
    /// container uses, then collects garbage.
    pub fn prune(&self, all: bool) -> Result<(Vec<Removal>, GcReport)> {
        self.prune_selected(all, &|_| true)
    }

    /// `prune` limited to the images `select` accepts (the engine's prune
    /// filters: labels, creation time).
    pub fn prune_selected(
        &self,
        all: bool,
        select: &dyn Fn(&ImageRecord) -> bool,
    ) -> Result<(Vec<Removal>, GcReport)> {
        let mut users = BTreeMap::new();
        let mut selected = BTreeSet::new();
        for rec in self.list()? {
            if let Some(u) = self.user_of(&rec)? {
                users.insert(rec.manifest.clone(), u);
            }
            if select(&rec) {
                selected.insert(rec.manifest.clone());
            }
        }
        let removed = self.update(|md| {
            let mut out = Vec::new();
            let tagged: BTreeSet<Digest> = md.tags.values().cloned().collect();
            let victims: Vec<Digest> = md
                .images
                .keys()
                .filter(|d| {
                    selected.contains(*d)
                        && !users.contains_key(*d)
                        && (all || !tagged.contains(*d))
                })
                .cloned()
                .collect();
            for d in victims {
                md.tags.retain(|t, m| {
                    if *m == d {
                        out.push(Removal::Untagged(display_name(t)));
                        false
                    } else {
                        true
                    }
                });
                if let Some(rec) = md.images.remove(&d) {
                    out.push(Removal::Deleted(rec.config));
                }
            }
            Ok(out)
        })?;
        let gc = self.gc()?;
        Ok((removed, gc))
    }

    fn user_of(&self, rec: &ImageRecord) -> Result<Option<String>> {
        if let Some(check) = &self.in_use {
            if let Some(u) = check(rec) {
                return Ok(Some(u));
            }
        }
        for (id, image) in crate::snapshot::container_images(self)? {
            if image == rec.manifest {
                return Ok(Some(format!("container {id}")));
            }
        }
        Ok(None)
    }

    /// Removes blobs and snapshots no image or container references, and
    /// temporary files of dead writers. Skipped (`ran == false`) while an
    /// ingestion holds a lease.
    pub fn gc(&self) -> Result<GcReport> {
        let mut report = GcReport::default();
        let Ok(_gc_lock) = self.lock_file("ingest.lock", libc::LOCK_EX | libc::LOCK_NB) else {
            return Ok(report);
        };
        report.ran = true;
        let md = self.read_metadata()?;
        let (blobs, diff_ids) = self.reachable(&md)?;
        for d in self.content.list()? {
            if !blobs.contains(&d) {
                report.bytes += self.content.size(&d).unwrap_or(0);
                self.content.delete(&d)?;
                report.blobs.push(d);
            }
        }
        let mut keep: BTreeSet<String> = diff_ids.iter().map(unpack::snapshot_name).collect();
        for (_, layers) in crate::snapshot::container_layers(self)? {
            keep.extend(layers);
        }
        let snaps = self.snapshots_dir();
        let entries = fs::read_dir(&snaps).map_err(io_err("list snapshots", &snaps))?;
        for e in entries {
            let e = e.map_err(io_err("list snapshots", &snaps))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name == "tmp" || keep.contains(&name) {
                continue;
            }
            unpack::remove_tree(&e.path())?;
            report.snapshots.push(name);
        }
        self.content.remove_stale_temps()?;
        remove_stale_temps(&snaps.join("tmp"))?;
        self.remove_stale_metadata_temps();
        // Short layer links whose snapshot is gone.
        if let Ok(links) = fs::read_dir(self.root.join("l")) {
            for l in links.flatten() {
                if !l.path().exists() {
                    let _ = fs::remove_file(l.path());
                }
            }
        }
        Ok(report)
    }

    /// Removes what writers that died midway left: temporary blobs,
    /// half-unpacked snapshots, unrenamed metadata. Safe while other
    /// processes ingest: only files of dead pids are touched.
    pub fn remove_stale_temps(&self) -> Result<usize> {
        let n = self.content.remove_stale_temps()?
            + remove_stale_temps(&self.snapshots_dir().join("tmp"))?;
        self.remove_stale_metadata_temps();
        Ok(n)
    }

    /// Removes `.images.json.<pid>-...` files of writers that died between
    /// writing and renaming.
    fn remove_stale_metadata_temps(&self) {
        let Ok(entries) = fs::read_dir(&self.root) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix(".images.json.") else {
                continue;
            };
            let pid = rest.split('-').next().unwrap_or("");
            if !pid.is_empty() && !Path::new("/proc").join(pid).exists() {
                let _ = fs::remove_file(e.path());
            }
        }
    }

    /// Blobs and diff IDs reachable from the recorded images.
    fn reachable(&self, md: &Metadata) -> Result<(BTreeSet<Digest>, BTreeSet<Digest>)> {
        let mut blobs = BTreeSet::new();
        let mut diff_ids = BTreeSet::new();
        let mut stack: Vec<(Digest, Option<String>)> = Vec::new();
        for rec in md.images.values() {
            stack.push((rec.target.clone(), None));
            stack.push((rec.manifest.clone(), Some(rec.manifest_media_type.clone())));
        }
        for d in self.all_pins() {
            stack.push((d, None));
        }
        while let Some((d, mt)) = stack.pop() {
            if !blobs.insert(d.clone()) || !self.content.exists(&d) {
                continue;
            }
            match self.read_manifest(&d, mt.as_deref()) {
                Ok(Parsed::Index(i)) => {
                    for m in i.manifests {
                        stack.push((m.digest, Some(m.media_type)));
                    }
                }
                Ok(Parsed::Manifest(m)) => {
                    blobs.insert(m.config.digest.clone());
                    if let Ok(c) = self
                        .content
                        .read(&m.config.digest)
                        .and_then(|b| Ok(ImageConfig::parse(&b, &m.config.digest)?))
                    {
                        diff_ids.extend(c.rootfs.diff_ids);
                    }
                    blobs.extend(m.layers.into_iter().map(|l| l.digest));
                }
                Err(_) => {}
            }
        }
        Ok((blobs, diff_ids))
    }

    /// Pins manifest `manifest` under `group/key` (`<root>/pins/`): GC
    /// keeps it, its config and layers, and their snapshots, as if it were
    /// an image, but it is no image (not listed, not resolvable). The build
    /// cache is made of pins. Replacing a pin is one atomic rename.
    pub fn pin(&self, group: &str, key: &str, manifest: &Digest) -> Result<()> {
        check_pin_name(group)?;
        check_pin_name(key)?;
        let dir = self.root.join("pins").join(group);
        fs::create_dir_all(&dir).map_err(io_err("create pin directory", &dir))?;
        let tmp = dir.join(format!(".{key}.{}-{}", std::process::id(), unique_suffix()));
        fs::write(&tmp, manifest.to_string()).map_err(io_err("write pin", &tmp))?;
        let path = dir.join(key);
        fs::rename(&tmp, &path).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            io_err("write pin", &path)(e)
        })
    }

    /// The manifest pinned under `group/key`, if any.
    pub fn pinned(&self, group: &str, key: &str) -> Option<Digest> {
        check_pin_name(group).ok()?;
        check_pin_name(key).ok()?;
        let path = self.root.join("pins").join(group).join(key);
        let d: Digest = fs::read_to_string(path).ok()?.trim().parse().ok()?;
        self.content.exists(&d).then_some(d)
    }

    /// Removes every pin of `group` (e.g. `builder prune`); the next GC
    /// collects what only they kept. Returns how many were removed.
    pub fn unpin_group(&self, group: &str) -> Result<usize> {
        check_pin_name(group)?;
        let dir = self.root.join("pins").join(group);
        let Ok(entries) = fs::read_dir(&dir) else {
            return Ok(0);
        };
        let mut n = 0;
        for e in entries.flatten() {
            if fs::remove_file(e.path()).is_ok() {
                n += 1;
            }
        }
        Ok(n)
    }

    fn all_pins(&self) -> Vec<Digest> {
        let mut out = Vec::new();
        let Ok(groups) = fs::read_dir(self.root.join("pins")) else {
            return out;
        };
        for g in groups.flatten() {
            for e in fs::read_dir(g.path()).into_iter().flatten().flatten() {
                if let Some(d) = fs::read_to_string(e.path())
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                {
                    out.push(d);
                }
            }
        }
        out
    }

    /// Checks the store: every blob re-hashes to its name, and every image
    /// has its manifest, config, layers and snapshots.
    pub fn verify(&self) -> Result<VerifyReport> {
        let mut report = VerifyReport {
            corrupt: self.content.verify()?,
            blobs_checked: self.content.list()?.len(),
            ..Default::default()
        };
        let md = self.read_metadata()?;
        for rec in md.images.values() {
            let mut need = vec![rec.target.clone(), rec.manifest.clone(), rec.config.clone()];
            if let Ok(m) = self.manifest(rec) {
                need.extend(m.layers.into_iter().map(|l| l.digest));
            }
            for d in need {
                if !self.content.exists(&d) {
                    report.missing.push((rec.manifest.clone(), d));
                }
            }
            if let Ok(c) = self.config(rec) {
                for d in c.rootfs.diff_ids {
                    if !unpack::snapshot_dir(&self.snapshots_dir(), &d)
                        .join("fs")
                        .is_dir()
                    {
                        report.missing_snapshots.push((rec.manifest.clone(), d));
                    }
                }
            }
        }
        report.missing.dedup();
        Ok(report)
    }
}

/// Pin groups and keys are single path components of safe characters.
fn check_pin_name(s: &str) -> Result<()> {
    let ok = !s.is_empty()
        && !s.starts_with('.')
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument {
            reason: format!("invalid pin name {s:?}"),
        })
    }
}

fn with_tags(md: &Metadata, manifest: &Digest) -> Option<ImageRecord> {
    let mut rec = md.images.get(manifest)?.clone();
    rec.tags = md
        .tags
        .iter()
        .filter(|(_, d)| *d == manifest)
        .map(|(t, _)| t.clone())
        .collect();
    Some(rec)
}

fn looks_like_id(s: &str) -> bool {
    let hex = s
        .strip_prefix("sha256:")
        .or_else(|| s.strip_prefix("sha512:"))
        .unwrap_or(s);
    !s.contains('/')
        && !s.contains('@')
        && !hex.is_empty()
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && (s.contains(':') || hex.len() >= 4)
}

fn resolve_in(md: &Metadata, s: &str) -> Option<Digest> {
    // A full digest: manifest digest or config (image id).
    if let Ok(d) = s.parse::<Digest>() {
        if md.images.contains_key(&d) {
            return Some(d);
        }
        if let Some(r) = md.images.values().find(|r| r.config == d || r.target == d) {
            return Some(r.manifest.clone());
        }
        return None;
    }
    // A name wins over an id prefix, as in Docker.
    if let Ok(r) = s.parse::<Reference>() {
        if let Some(d) = &r.digest {
            let by_digest = format!("{}@{d}", r.name());
            if let Some(rec) = md
                .images
                .values()
                .find(|rec| rec.repo_digests.contains(&by_digest))
            {
                return Some(rec.manifest.clone());
            }
            if let Some(rec) = md.images.get(d) {
                return Some(rec.manifest.clone());
            }
        } else if let Some(t) = r.tagged_name() {
            if let Some(d) = md.tags.get(&t) {
                return Some(d.clone());
            }
        }
    }
    if looks_like_id(s) {
        let hex = s.strip_prefix("sha256:").unwrap_or(s);
        let matches: Vec<&ImageRecord> = md
            .images
            .values()
            .filter(|r| r.config.hex().starts_with(hex))
            .collect();
        let ids: BTreeSet<&Digest> = matches.iter().map(|r| &r.config).collect();
        if ids.len() == 1 {
            return matches.first().map(|r| r.manifest.clone());
        }
    }
    None
}

/// `docker.io/library/busybox:latest` as Docker prints it: `busybox:latest`.
pub fn display_name(full: &str) -> String {
    crate::reference::familiar(full)
}

#[cfg(test)]
mod tests;
