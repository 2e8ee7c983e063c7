//! Image tarballs.
//!
//! [`save`] writes one tarball that is both a docker-archive (Docker image
//! spec v1.2: `manifest.json` listing each image's config and layer files
//! with its `RepoTags`) and an OCI image layout (image-spec
//! `image-layout.md`: `oci-layout`, `index.json`, `blobs/<alg>/<hex>`), with
//! the docker-archive paths pointing into `blobs/`, so `docker load`,
//! `skopeo ... docker-archive:` and `skopeo ... oci-archive:` all read it and
//! manifest digests are kept.
//!
//! [`load`] reads either form. Blobs stream into the content store as they
//! come (each verified against its name when it has one); images are
//! checked and unpacked, and only when every image of the archive is good
//! are they recorded, in one metadata update. On failure the blobs and
//! snapshots this load added are removed again, so the store is as before.
//!
//! [`import`] makes a one-layer image from a root filesystem tarball.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, BufRead, Read, Write};
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use crate::digest::{Digest, HashingReader};
use crate::oci::{self, Compression, Descriptor, History, ImageConfig, Platform, RootFs};
use crate::reference::Reference;
use crate::store::{ImageRecord, ImageStore};
use crate::{io_err, unpack, Error, Result};

/// Annotation containerd and Docker put on index.json entries: the full
/// image name.
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
/// image-spec `annotations.md`: the reference name (Docker writes the tag).
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Files bigger than this that are not blobs are not metadata.
const MAX_METADATA_FILE: u64 = 8 << 20;

#[derive(serde::Serialize, Deserialize)]
struct DockerManifestEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

fn blob_path(d: &Digest) -> String {
    format!("blobs/{}/{}", d.algorithm().name(), d.hex())
}

/// Writes `images` (names or ids) as one tarball to `out`.
pub fn save(store: &ImageStore, images: &[String], out: impl Write) -> Result<()> {
    let mut b = tar::Builder::new(out);
    let mut written: BTreeSet<Digest> = BTreeSet::new();
    let mut docker_manifest = Vec::new();
    let mut index_entries = Vec::new();
    let mut add_blob = |b: &mut tar::Builder<_>, d: &Digest| -> Result<()> {
        if !written.insert(d.clone()) {
            return Ok(());
        }
        let f = store.content().open(d)?;
        let size = f
            .metadata()
            .map_err(io_err("stat blob", &store.content().path(d)))?
            .len();
        let mut h = file_header(size);
        b.append_data(&mut h, blob_path(d), f)
            .map_err(io_err("write archive entry", &store.content().path(d)))
    };
    // One entry per image, with every tag asked for.
    let mut by_image: BTreeMap<Digest, (ImageRecord, Vec<String>)> = BTreeMap::new();
    let mut order = Vec::new();
    for name in images {
        let rec = store.resolve(name)?;
        let tag = name
            .parse::<Reference>()
            .ok()
            .filter(|r| {
                r.digest.is_none() && rec.tags.contains(&r.tagged_name().unwrap_or_default())
            })
            .and_then(|r| r.tagged_name());
        let e = by_image.entry(rec.manifest.clone()).or_insert_with(|| {
            order.push(rec.manifest.clone());
            (rec.clone(), Vec::new())
        });
        if let Some(t) = tag {
            if !e.1.contains(&t) {
                e.1.push(t);
            }
        }
    }
    for d in order {
        let Some((rec, tags)) = by_image.get(&d) else {
            continue;
        };
        let manifest = store.manifest(rec)?;
        add_blob(&mut b, &rec.manifest)?;
        add_blob(&mut b, &manifest.config.digest)?;
        for l in &manifest.layers {
            add_blob(&mut b, &l.digest)?;
        }
        docker_manifest.push(DockerManifestEntry {
            config: blob_path(&manifest.config.digest),
            repo_tags: Some(tags.iter().map(|t| crate::reference::familiar(t)).collect()),
            layers: manifest
                .layers
                .iter()
                .map(|l| blob_path(&l.digest))
                .collect(),
        });
        let size = store.content().size(&rec.manifest)?;
        let mut desc = Descriptor::new(&rec.manifest_media_type, rec.manifest.clone(), size);
        if tags.is_empty() {
            index_entries.push(desc.clone());
        }
        for t in tags {
            let r: Reference = t.parse()?;
            let mut ann = BTreeMap::new();
            ann.insert(ANNOTATION_IMAGE_NAME.to_owned(), t.clone());
            ann.insert(
                ANNOTATION_REF_NAME.to_owned(),
                r.tag.clone().unwrap_or_default(),
            );
            desc.annotations = Some(ann);
            index_entries.push(desc.clone());
        }
    }
    let index = oci::Index::new(index_entries);
    for (name, body) in [
        ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
        ("index.json", oci::to_json(&index)?),
        ("manifest.json", oci::to_json(&docker_manifest)?),
    ] {
        let mut h = file_header(body.len() as u64);
        b.append_data(&mut h, name, body.as_slice())
            .map_err(io_err("write archive entry", Path::new(name)))?;
    }
    b.into_inner()
        .and_then(|mut w| w.flush())
        .map_err(io_err("finish archive", Path::new("-")))?;
    Ok(())
}

fn file_header(size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(size);
    h.set_mtime(0);
    h
}

/// An image [`load`] recorded, with the names it got.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub image: ImageRecord,
    pub tags: Vec<String>,
}

/// Blobs a load or import added so far, removed again on failure.
/// Snapshots it unpacked are left: each is complete and verified against
/// its diff ID, another ingestion running at the same time may be about to
/// use it, and GC removes it once no image does.
struct Undo<'a> {
    store: &'a ImageStore,
    blobs: Vec<Digest>,
    done: bool,
}

impl Undo<'_> {
    fn new(store: &ImageStore) -> Result<Undo<'_>> {
        Ok(Undo {
            store,
            blobs: Vec::new(),
            done: false,
        })
    }
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        for d in &self.blobs {
            let _ = self.store.content().delete(d);
        }
    }
}

/// Normalizes an archive path: no `..`, no leading `/` or `./`.
fn archive_path(raw: &[u8]) -> Result<String> {
    let s = String::from_utf8_lossy(raw);
    let mut out = PathBuf::new();
    for c in Path::new(s.as_ref()).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(Error::BadArchive {
                    reason: format!("entry {s:?} leaves the archive"),
                })
            }
        }
    }
    Ok(out.to_string_lossy().into_owned())
}

/// Loads a docker-archive or OCI-layout tarball from `input`.
pub fn load(store: &ImageStore, input: impl Read, platform: &Platform) -> Result<Vec<Loaded>> {
    let _lease = store.lease()?;
    let mut undo = Undo::new(store)?;
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut blobs: BTreeMap<String, Digest> = BTreeMap::new();
    let mut links: BTreeMap<String, String> = BTreeMap::new();
    let mut archive = tar::Archive::new(input);
    let bad = |reason: String| Error::BadArchive { reason };
    let entries = archive
        .entries()
        .map_err(|e| bad(format!("not a tar archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("corrupt tar: {e}")))?;
        let path = archive_path(&entry.path_bytes())?;
        let kind = entry.header().entry_type();
        let size = entry.header().size().unwrap_or(0);
        if kind.is_symlink() || kind.is_hard_link() {
            let target = entry
                .link_name_bytes()
                .map(|t| String::from_utf8_lossy(&t).into_owned())
                .unwrap_or_default();
            let joined = if kind.is_symlink() {
                Path::new(&path)
                    .parent()
                    .unwrap_or(Path::new(""))
                    .join(&target)
            } else {
                PathBuf::from(&target)
            };
            links.insert(path, lexical_clean(&joined));
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        let blob_digest = path
            .strip_prefix("blobs/")
            .and_then(|rest| rest.split_once('/'))
            .map(|(alg, hex)| format!("{alg}:{hex}"));
        let truncated = |e: Error| match e {
            Error::Io { source, .. } if source.kind() == io::ErrorKind::UnexpectedEof => {
                bad(format!("{path} is truncated"))
            }
            other => other,
        };
        if let Some(d) = blob_digest {
            let d: Digest = d
                .parse()
                .map_err(|_| bad(format!("{path} is not a digest")))?;
            let existed = store.content().exists(&d);
            store
                .content()
                .ingest(&mut entry, Some((&d, Some(size))))
                .map_err(truncated)?;
            if !existed {
                undo.blobs.push(d.clone());
            }
            blobs.insert(path, d);
        } else if path.ends_with(".json") || path == "oci-layout" || path == "repositories" {
            if size > MAX_METADATA_FILE {
                return Err(bad(format!("{path} is too big for metadata")));
            }
            let mut body = Vec::new();
            entry
                .read_to_end(&mut body)
                .map_err(|e| bad(format!("reading {path}: {e}")))?;
            files.insert(path, body);
        } else {
            // A legacy layer (`<id>/layer.tar`): named by its path only.
            let mut w = store.content().writer()?;
            io::copy(&mut entry, &mut w).map_err(|e| bad(format!("reading {path}: {e}")))?;
            let (d, _, created) = w.commit_computed_created()?;
            if created {
                undo.blobs.push(d.clone());
            }
            blobs.insert(path, d);
        }
    }
    let resolve_link = |p: &str| -> String {
        let mut p = p.to_owned();
        for _ in 0..16 {
            match links.get(&p) {
                Some(t) => p = t.clone(),
                None => break,
            }
        }
        p
    };

    let mut prepared: Vec<(ImageRecord, Vec<String>)> = Vec::new();
    if let Some(body) = files.get("index.json") {
        let index: oci::Index = serde_json::from_slice(body)
            .map_err(|e| bad(format!("index.json is not an image index: {e}")))?;
        for desc in &index.manifests {
            let names = desc.annotations.as_ref().and_then(|a| {
                a.get(ANNOTATION_IMAGE_NAME).cloned().or_else(|| {
                    a.get(ANNOTATION_REF_NAME)
                        .filter(|n| n.contains(':') || n.contains('/'))
                        .cloned()
                })
            });
            let tags = match names {
                Some(n) => n.parse::<Reference>()?.tagged_name().into_iter().collect(),
                None => Vec::new(),
            };
            let rec = store.check_image(&desc.digest, Some(&desc.media_type), platform)?;
            prepared.push((rec, tags));
        }
    } else if let Some(body) = files.get("manifest.json") {
        let entries: Vec<DockerManifestEntry> = serde_json::from_slice(body).map_err(|e| {
            bad(format!(
                "manifest.json is not a docker-archive manifest: {e}"
            ))
        })?;
        for e in entries {
            let config_path = resolve_link(&e.config);
            let config_body = match (files.get(&config_path), blobs.get(&config_path)) {
                (Some(b), _) => b.clone(),
                (None, Some(d)) => store.content().read(d)?,
                (None, None) => return Err(bad(format!("config {} is missing", e.config))),
            };
            let config_digest = Digest::sha256(&config_body);
            let existed = store.content().exists(&config_digest);
            store.content().put(&config_body, Some(&config_digest))?;
            if !existed {
                undo.blobs.push(config_digest.clone());
            }
            let config = ImageConfig::parse(&config_body, &config_digest)?;
            let mut layers = Vec::new();
            for l in &e.layers {
                let d = blobs
                    .get(&resolve_link(l))
                    .ok_or_else(|| bad(format!("layer {l} is missing")))?;
                let mut head = [0u8; 4];
                let n = store
                    .content()
                    .open(d)?
                    .read(&mut head)
                    .map_err(io_err("read layer", &store.content().path(d)))?;
                let media = Compression::sniff(&head[..n]).oci_media_type();
                layers.push(Descriptor::new(media, d.clone(), store.content().size(d)?));
            }
            let manifest = store.put_image_with_config(&config_body, &config_digest, layers)?;
            if !undo.blobs.contains(&manifest) {
                undo.blobs.push(manifest.clone());
            }
            let mut tags = Vec::new();
            for t in e.repo_tags.unwrap_or_default() {
                let r: Reference = t.parse()?;
                tags.extend(r.tagged_name());
            }
            let plat = Platform {
                architecture: config.architecture.clone(),
                os: config.os.clone(),
                variant: config.variant.clone(),
                os_version: None,
            };
            let rec = store.check_image(&manifest, Some(oci::OCI_MANIFEST), &plat)?;
            prepared.push((rec, tags));
        }
    } else {
        return Err(bad(
            "neither index.json (OCI layout) nor manifest.json (docker-archive) found".into(),
        ));
    }
    store.record(&prepared)?;
    undo.done = true;
    let mut out = Vec::new();
    for (rec, tags) in prepared {
        out.push(Loaded {
            image: store.get(&rec.manifest)?,
            tags,
        });
    }
    Ok(out)
}

fn lexical_clean(p: &Path) -> String {
    let mut out: Vec<String> = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n.to_string_lossy().into_owned()),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out.join("/")
}

/// Options of [`import`].
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    pub reference: Option<Reference>,
    /// The history comment (`docker import -m`).
    pub message: Option<String>,
    pub platform: Option<Platform>,
    /// Where the tarball came from, for the history entry.
    pub source: String,
    /// The image's container config (`Cmd`, `Env`...: `docker import
    /// --change`); empty when `None`.
    pub config: Option<serde_json::Value>,
}

/// The platform of this host, as image configs name it.
pub fn host_platform() -> Platform {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    };
    Platform {
        architecture: arch.into(),
        os: "linux".into(),
        variant: None,
        os_version: None,
    }
}

/// Imports a root filesystem tarball (plain, gzip or zstd) as a one-layer
/// image.
pub fn import(store: &ImageStore, input: impl Read, opts: &ImportOptions) -> Result<ImageRecord> {
    let _lease = store.lease()?;
    let mut input = io::BufReader::with_capacity(1 << 20, input);
    let head = input
        .fill_buf()
        .map_err(io_err("read", Path::new(&opts.source)))?
        .to_vec();
    let stream = unpack::decompress(input, Compression::sniff(&head))?;
    let mut hashing = HashingReader::new(stream);
    let writer = store.content().writer()?;
    let mut gz = flate2::write::GzEncoder::new(writer, flate2::Compression::fast());
    io::copy(&mut hashing, &mut gz).map_err(io_err("import", Path::new(&opts.source)))?;
    let (diff_id, _) = hashing.finish();
    let writer = gz
        .finish()
        .map_err(io_err("compress", Path::new(&opts.source)))?;
    let (layer, size, layer_created) = writer.commit_computed_created()?;
    let platform = opts.platform.clone().unwrap_or_else(host_platform);
    let now = crate::time::now_rfc3339();
    let config = ImageConfig {
        created: Some(now.clone()),
        architecture: platform.architecture.clone(),
        os: platform.os.clone(),
        variant: platform.variant.clone(),
        config: Some(opts.config.clone().unwrap_or_else(|| serde_json::json!({}))),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: vec![diff_id],
        },
        history: vec![History {
            created: Some(now),
            created_by: Some(format!("cais import {}", opts.source)),
            comment: opts.message.clone(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let layers = vec![Descriptor::new(oci::OCI_LAYER_GZIP, layer.clone(), size)];
    let mut undo = Undo::new(store)?;
    if layer_created {
        undo.blobs.push(layer);
    }
    let config_body = oci::to_json(&config)?;
    let config_digest = Digest::sha256(&config_body);
    if !store.content().exists(&config_digest) {
        undo.blobs.push(config_digest.clone());
    }
    let target = store.put_image_with_config(&config_body, &config_digest, layers)?;
    if !undo.blobs.contains(&target) {
        undo.blobs.push(target.clone());
    }
    let tags: Vec<String> = opts
        .reference
        .as_ref()
        .and_then(|r| r.tagged_name())
        .into_iter()
        .collect();
    // On failure (a refused layer...) `undo` removes what this import added.
    let rec = store.add_image(
        &target,
        Some(oci::OCI_MANIFEST),
        &platform,
        &tags,
        BTreeSet::new(),
    )?;
    undo.done = true;
    Ok(rec)
}

#[cfg(test)]
mod tests;
