//! Local image commands (`cais images|tag|rmi|inspect|history|save|load|
//! import`, `cais image ...`), working directly on the image store under
//! `--data-root` (default `$CAIS_DATA_ROOT`, else `/var/lib/cais`).

use std::collections::BTreeSet;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use cais_image::archive::{self, ImportOptions};
use cais_image::snapshot::{self, CommitOptions};
use cais_image::store::{display_name, Removal};
use cais_image::time::{human_age, human_size};
use cais_image::{ImageRecord, ImageStore, Platform, Reference};
use clap::{Args, Subcommand};

/// Where the store lives.
#[derive(Debug, Clone, Args)]
pub struct DataRoot {
    /// Image store directory [env: CAIS_DATA_ROOT; default /var/lib/cais].
    #[arg(long = "data-root", global = true)]
    pub(crate) data_root: Option<PathBuf>,
}

impl DataRoot {
    /// Whether the local store was asked for (`--data-root` or
    /// `CAIS_DATA_ROOT`); otherwise image commands go through the daemon.
    pub(crate) fn given(&self) -> bool {
        self.data_root.is_some()
            || std::env::var_os("CAIS_DATA_ROOT").is_some_and(|v| !v.is_empty())
    }

    fn open(&self) -> Result<ImageStore> {
        let root = self
            .data_root
            .clone()
            .unwrap_or_else(ImageStore::default_root);
        ImageStore::open(&root)
            .with_context(|| format!("opening the image store at {}", root.display()))
    }
}

/// The top-level image commands, flattened into `cais`'s command list.
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// List images.
    Images(ImagesArgs),
    /// Point a name at an image (a digest or id restores an earlier version).
    Tag(TagArgs),
    /// Remove images (untag only while other tags point at it).
    Rmi(RmiArgs),
    /// Print images' details as JSON.
    Inspect(InspectArgs),
    /// Show an image's layer history.
    History(HistoryArgs),
    /// Write images to a tarball (docker-archive and OCI layout at once).
    Save(SaveArgs),
    /// Load images from a docker-archive or OCI-layout tarball.
    Load(LoadArgs),
    /// Make an image from a root filesystem tarball.
    Import(ImportArgs),
    /// Manage images.
    #[command(subcommand)]
    Image(ImageSub),
}

#[derive(Debug, Subcommand)]
pub enum ImageSub {
    /// List images.
    #[command(alias = "list")]
    Ls(ImagesArgs),
    Tag(TagArgs),
    #[command(alias = "remove")]
    Rm(RmiArgs),
    Inspect(InspectArgs),
    History(HistoryArgs),
    Save(SaveArgs),
    Load(LoadArgs),
    Import(ImportArgs),
    /// Remove unused images (dangling ones, or all unused with -a).
    Prune(PruneArgs),
    /// Check the store: every blob re-hashes to its name, every image is whole.
    Verify(VerifyArgs),
    /// Container root filesystems (overlay snapshots).
    #[command(subcommand)]
    Snapshot(SnapshotCmd),
}

#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Only show image ids.
    #[arg(short, long)]
    pub(crate) quiet: bool,
    /// Show digests.
    #[arg(long)]
    pub(crate) digests: bool,
    /// Do not truncate ids.
    #[arg(long = "no-trunc")]
    pub(crate) no_trunc: bool,
    /// Accepted for compatibility (there are no intermediate images).
    #[arg(short, long)]
    pub(crate) all: bool,
    /// KEY=VALUE (dangling, label, reference, before, since).
    #[arg(short, long)]
    pub(crate) filter: Vec<String>,
    /// A Go template, `table TEMPLATE` or `json`.
    #[arg(long)]
    pub(crate) format: Option<String>,
    /// Only images of this repository[:tag].
    pub(crate) repository: Option<String>,
    #[command(flatten)]
    pub(crate) root: DataRoot,
}

#[derive(Debug, Args)]
pub struct TagArgs {
    /// Image name, id or digest.
    pub(crate) source: String,
    /// New name[:tag].
    pub(crate) target: String,
    #[command(flatten)]
    pub(crate) root: DataRoot,
}

#[derive(Debug, Args)]
pub struct RmiArgs {
    /// Remove an image referenced by several repositories; untag one in use.
    #[arg(short, long)]
    pub(crate) force: bool,
    #[arg(required = true)]
    pub(crate) images: Vec<String>,
    #[command(flatten)]
    pub(crate) root: DataRoot,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A Go template (`{{.Config.Env}}`, `{{json .RootFS}}`).
    #[arg(short, long)]
    pub(crate) format: Option<String>,
    /// container or image (through the daemon).
    #[arg(long = "type")]
    pub(crate) kind: Option<String>,
    #[arg(required = true)]
    pub(crate) images: Vec<String>,
    #[command(flatten)]
    pub(crate) root: DataRoot,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    pub(crate) image: String,
    #[arg(long = "no-trunc")]
    pub(crate) no_trunc: bool,
    #[arg(short, long)]
    pub(crate) quiet: bool,
    #[command(flatten)]
    pub(crate) root: DataRoot,
}

#[derive(Debug, Args)]
pub struct SaveArgs {
    /// Write to this file instead of standard output.
    #[arg(short, long)]
    pub(crate) output: Option<PathBuf>,
    #[arg(required = true)]
    pub(crate) images: Vec<String>,
    #[command(flatten)]
    pub(crate) root: DataRoot,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Read from this file instead of standard input.
    #[arg(short, long)]
    pub(crate) input: Option<PathBuf>,
    #[arg(short, long)]
    pub(crate) quiet: bool,
    /// Platform to pick from an index.
    #[arg(long)]
    pub(crate) platform: Option<Platform>,
    #[command(flatten)]
    pub(crate) root: DataRoot,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Tarball path, or `-` for standard input.
    pub(crate) file: String,
    /// Name[:tag] for the new image.
    pub(crate) reference: Option<String>,
    /// History comment.
    #[arg(short, long)]
    pub(crate) message: Option<String>,
    #[arg(long)]
    pub(crate) platform: Option<Platform>,
    #[command(flatten)]
    pub(crate) root: DataRoot,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove every image no container uses, not only untagged ones.
    #[arg(short, long)]
    pub(crate) all: bool,
    /// Do not ask for confirmation (through the daemon).
    #[arg(short, long)]
    pub(crate) force: bool,
    /// KEY=VALUE (until, label), through the daemon.
    #[arg(long)]
    pub(crate) filter: Vec<String>,
    #[command(flatten)]
    pub(crate) root: DataRoot,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub(crate) root: DataRoot,
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCmd {
    /// Create container ID's writable snapshot on IMAGE and print its mount.
    Prepare {
        id: String,
        image: String,
        /// Also mount it.
        #[arg(long)]
        mount: bool,
        #[command(flatten)]
        root: DataRoot,
    },
    /// Mount container ID's root filesystem; prints the mount point.
    Mount {
        id: String,
        #[command(flatten)]
        root: DataRoot,
    },
    /// Unmount container ID's root filesystem.
    Unmount {
        id: String,
        #[command(flatten)]
        root: DataRoot,
    },
    /// Unmount and delete container ID's snapshot.
    Rm {
        id: String,
        #[command(flatten)]
        root: DataRoot,
    },
    /// Make an image of container ID's changes on top of its image.
    Commit {
        id: String,
        reference: Option<String>,
        #[arg(short, long)]
        message: Option<String>,
        #[arg(short, long)]
        author: Option<String>,
        #[command(flatten)]
        root: DataRoot,
    },
}

/// Whether `cmd` works on the local store (a data root was given, or the
/// command only exists locally) rather than through the daemon.
pub fn is_local(cmd: &ImageCommand) -> bool {
    match cmd {
        ImageCommand::Images(a) => a.root.given(),
        ImageCommand::Tag(a) => a.root.given(),
        ImageCommand::Rmi(a) => a.root.given(),
        ImageCommand::Inspect(a) => a.root.given(),
        ImageCommand::History(a) => a.root.given(),
        ImageCommand::Save(a) => a.root.given(),
        ImageCommand::Load(a) => a.root.given(),
        ImageCommand::Import(a) => a.root.given(),
        ImageCommand::Image(sub) => match sub {
            ImageSub::Ls(a) => a.root.given(),
            ImageSub::Tag(a) => a.root.given(),
            ImageSub::Rm(a) => a.root.given(),
            ImageSub::Inspect(a) => a.root.given(),
            ImageSub::History(a) => a.root.given(),
            ImageSub::Save(a) => a.root.given(),
            ImageSub::Load(a) => a.root.given(),
            ImageSub::Import(a) => a.root.given(),
            ImageSub::Prune(a) => a.root.given(),
            ImageSub::Verify(_) | ImageSub::Snapshot(_) => true,
        },
    }
}

/// The same commands through the daemon's API.
pub fn run_remote(c: &cais_client::http::Client, cmd: ImageCommand) -> Result<i32> {
    use crate::client_cmds::images as remote;
    let inspect = |a: InspectArgs| {
        crate::client_cmds::inspect(
            c,
            &crate::client_cmds::InspectArgs {
                format: a.format,
                kind: a.kind,
                names: a.images,
            },
        )
    };
    let image_inspect = |a: InspectArgs| {
        crate::client_cmds::inspect(
            c,
            &crate::client_cmds::InspectArgs {
                format: a.format,
                kind: Some("image".into()),
                names: a.images,
            },
        )
    };
    let sub = match cmd {
        ImageCommand::Images(a) => ImageSub::Ls(a),
        ImageCommand::Tag(a) => ImageSub::Tag(a),
        ImageCommand::Rmi(a) => ImageSub::Rm(a),
        ImageCommand::Inspect(a) => return inspect(a),
        ImageCommand::History(a) => ImageSub::History(a),
        ImageCommand::Save(a) => ImageSub::Save(a),
        ImageCommand::Load(a) => ImageSub::Load(a),
        ImageCommand::Import(a) => ImageSub::Import(a),
        ImageCommand::Image(sub) => sub,
    };
    match sub {
        ImageSub::Ls(a) => remote::list(c, &a),
        ImageSub::Tag(a) => remote::tag(c, &a.source, &a.target),
        ImageSub::Rm(a) => remote::rmi(c, a.force, &a.images),
        ImageSub::Inspect(a) => image_inspect(a),
        ImageSub::History(a) => remote::history(c, &a.image, a.quiet, a.no_trunc),
        ImageSub::Save(a) => remote::save(c, &a.images, a.output.as_deref()),
        ImageSub::Load(a) => remote::load(c, a.input.as_deref(), a.quiet),
        ImageSub::Import(a) => {
            remote::import(c, &a.file, a.reference.as_deref(), a.message.as_deref())
        }
        ImageSub::Prune(a) => crate::system::prune(
            c,
            crate::system::Kind::Images,
            crate::system::PruneArgs {
                force: a.force,
                filter: a.filter,
                all: a.all,
            },
        ),
        ImageSub::Verify(_) | ImageSub::Snapshot(_) => {
            bail!("this command works on a local store: give --data-root")
        }
    }
}

pub fn run(cmd: ImageCommand) -> Result<i32> {
    match cmd {
        ImageCommand::Images(a) => images(a),
        ImageCommand::Tag(a) => tag(a),
        ImageCommand::Rmi(a) => rmi(a),
        ImageCommand::Inspect(a) => inspect(a),
        ImageCommand::History(a) => history(a),
        ImageCommand::Save(a) => save(a),
        ImageCommand::Load(a) => load(a),
        ImageCommand::Import(a) => import(a),
        ImageCommand::Image(sub) => match sub {
            ImageSub::Ls(a) => images(a),
            ImageSub::Tag(a) => tag(a),
            ImageSub::Rm(a) => rmi(a),
            ImageSub::Inspect(a) => inspect(a),
            ImageSub::History(a) => history(a),
            ImageSub::Save(a) => save(a),
            ImageSub::Load(a) => load(a),
            ImageSub::Import(a) => import(a),
            ImageSub::Prune(a) => prune(a),
            ImageSub::Verify(a) => verify(a),
            ImageSub::Snapshot(s) => snapshot_cmd(s),
        },
    }
}

fn print_table(rows: &[Vec<String>]) {
    let lines: Vec<String> = rows.iter().map(|r| r.join("\t")).collect();
    crate::template::print_columns(&lines);
}

fn short_id(rec: &ImageRecord, no_trunc: bool) -> String {
    if no_trunc {
        rec.config.to_string()
    } else {
        rec.config.short().to_owned()
    }
}

fn images(a: ImagesArgs) -> Result<i32> {
    let _ = a.all;
    let store = a.root.open()?;
    let filter = match &a.repository {
        Some(r) => {
            let explicit_tag = r.rsplit('/').next().is_some_and(|last| last.contains(':'));
            let parsed: Reference = r.parse()?;
            Some((
                parsed.name(),
                explicit_tag.then(|| parsed.tag.clone()).flatten(),
            ))
        }
        None => None,
    };
    let mut list: Vec<(ImageRecord, Option<i64>, u64)> = Vec::new();
    for rec in store.list()? {
        let config = store.config(&rec).ok();
        let created = config
            .as_ref()
            .and_then(|c| c.created.as_deref())
            .and_then(cais_image::time::parse_rfc3339);
        let size = store.image_size(&rec);
        list.push((rec, created, size));
    }
    list.sort_by_key(|x| std::cmp::Reverse(x.1));
    let mut rows = Vec::new();
    let mut header = vec!["REPOSITORY", "TAG"];
    if a.digests {
        header.push("DIGEST");
    }
    header.extend(["IMAGE ID", "CREATED", "SIZE"]);
    rows.push(header.into_iter().map(String::from).collect::<Vec<_>>());
    let mut ids = Vec::new();
    for (rec, _, size) in &list {
        let config = store.config(rec).ok();
        let created = human_age(config.as_ref().and_then(|c| c.created.as_deref()));
        // (repository, tag) pairs: tags, else repos pulled by digest, else none.
        let mut names: Vec<(String, String)> = rec
            .tags
            .iter()
            .filter_map(|t| {
                t.rsplit_once(':')
                    .map(|(n, t)| (n.to_owned(), t.to_owned()))
            })
            .collect();
        if names.is_empty() {
            let repos: BTreeSet<String> = rec
                .repo_digests
                .iter()
                .filter_map(|rd| rd.split_once('@').map(|(n, _)| n.to_owned()))
                .collect();
            names = repos
                .into_iter()
                .map(|n| (n, "<none>".to_owned()))
                .collect();
        }
        if names.is_empty() {
            names.push(("<none>".into(), "<none>".into()));
        }
        for (repo, tag) in names {
            if let Some((want, want_tag)) = &filter {
                if repo != *want || want_tag.as_ref().is_some_and(|t| *t != tag) {
                    continue;
                }
            }
            ids.push(short_id(rec, a.no_trunc));
            let mut row = vec![display_name(&repo), tag];
            if a.digests {
                let d = rec
                    .repo_digests
                    .iter()
                    .find_map(|rd| rd.strip_prefix(&format!("{repo}@")).map(str::to_owned))
                    .unwrap_or_else(|| "<none>".into());
                row.push(d);
            }
            row.extend([
                short_id(rec, a.no_trunc),
                created.clone(),
                human_size(*size),
            ]);
            rows.push(row);
        }
    }
    if a.quiet {
        let mut seen = BTreeSet::new();
        for id in ids {
            if seen.insert(id.clone()) {
                println!("{id}");
            }
        }
    } else {
        print_table(&rows);
    }
    Ok(0)
}

fn tag(a: TagArgs) -> Result<i32> {
    let store = a.root.open()?;
    let target: Reference = a.target.parse()?;
    store.tag(&a.source, &target)?;
    Ok(0)
}

fn rmi(a: RmiArgs) -> Result<i32> {
    let store = a.root.open()?;
    let mut failed = false;
    for name in &a.images {
        match store.remove(name, a.force) {
            Ok(removals) => {
                for r in removals {
                    match r {
                        Removal::Untagged(n) => println!("Untagged: {n}"),
                        Removal::Deleted(d) => println!("Deleted: {d}"),
                    }
                }
            }
            Err(e) => {
                eprintln!("cais: {e}");
                failed = true;
            }
        }
    }
    Ok(i32::from(failed))
}

fn inspect_json(store: &ImageStore, rec: &ImageRecord) -> Result<serde_json::Value> {
    let config = store.config_json(rec)?;
    let typed = store.config(rec)?;
    let layers = store.layer_dirs(rec)?;
    let mut lower: Vec<String> = layers.iter().map(|p| p.display().to_string()).collect();
    lower.reverse();
    let manifest_size = store.content().size(&rec.manifest)?;
    Ok(serde_json::json!({
        "Id": rec.config.to_string(),
        "RepoTags": rec.tags.iter().map(|t| display_name(t)).collect::<Vec<_>>(),
        "RepoDigests": rec.repo_digests.iter().map(|t| display_name(t)).collect::<Vec<_>>(),
        "Parent": "",
        "Comment": typed.history.last().and_then(|h| h.comment.clone()).unwrap_or_default(),
        "Created": typed.created.clone().unwrap_or_default(),
        "DockerVersion": config.get("docker_version").cloned().unwrap_or("".into()),
        "Author": typed.author.clone().unwrap_or_default(),
        "Config": typed.config.clone().unwrap_or(serde_json::Value::Null),
        "Architecture": typed.architecture,
        "Variant": typed.variant,
        "Os": typed.os,
        "Size": store.image_size(rec),
        "GraphDriver": {
            "Name": "overlay",
            "Data": { "LowerDir": lower.join(":") },
        },
        "RootFS": {
            "Type": "layers",
            "Layers": typed.rootfs.diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        },
        "Metadata": { "LastTagTime": rec.added },
        "Descriptor": {
            "mediaType": rec.manifest_media_type,
            "digest": rec.manifest.to_string(),
            "size": manifest_size,
        },
    }))
}

fn inspect(a: InspectArgs) -> Result<i32> {
    let store = a.root.open()?;
    let mut out = Vec::new();
    let mut failed = false;
    for name in &a.images {
        match store
            .resolve(name)
            .map_err(anyhow::Error::from)
            .and_then(|r| inspect_json(&store, &r))
        {
            Ok(v) => out.push(v),
            Err(e) => {
                eprintln!("cais: {e:#}");
                failed = true;
            }
        }
    }
    if let Some(t) = &a.format {
        for v in &out {
            let _ = writeln!(
                std::io::stdout().lock(),
                "{}",
                crate::template::render(t, v)?
            );
        }
        return Ok(i32::from(failed));
    }
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = writeln!(
        std::io::stdout().lock(),
        "{}",
        serde_json::to_string_pretty(&out)?
    );
    Ok(i32::from(failed))
}

fn history(a: HistoryArgs) -> Result<i32> {
    let store = a.root.open()?;
    let rec = store.resolve(&a.image)?;
    let config = store.config(&rec)?;
    let snapshots = store.root().join("snapshots");
    let mut layer_sizes = config
        .rootfs
        .diff_ids
        .iter()
        .map(|d| cais_image::unpack::snapshot_size(&snapshots, d));
    let mut rows: Vec<Vec<String>> = Vec::new();
    let entries: Vec<_> = if config.history.is_empty() {
        // No history: one row per layer, as Docker shows it.
        config
            .rootfs
            .diff_ids
            .iter()
            .map(|_| Default::default())
            .collect()
    } else {
        config.history.clone()
    };
    for h in &entries {
        let h: &cais_image::oci::History = h;
        let size = if h.empty_layer {
            0
        } else {
            layer_sizes.next().unwrap_or(0)
        };
        let mut by = h.created_by.clone().unwrap_or_default();
        if !a.no_trunc && by.chars().count() > 45 {
            by = format!("{}…", by.chars().take(44).collect::<String>());
        }
        rows.push(vec![
            "<missing>".into(),
            human_age(h.created.as_deref()),
            by,
            human_size(size),
            h.comment.clone().unwrap_or_default(),
        ]);
    }
    rows.reverse();
    if let Some(first) = rows.first_mut() {
        first[0] = short_id(&rec, a.no_trunc);
    }
    if a.quiet {
        for r in rows {
            println!("{}", r[0]);
        }
        return Ok(0);
    }
    let mut all = vec![["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]
        .map(String::from)
        .to_vec()];
    all.extend(rows);
    print_table(&all);
    Ok(0)
}

fn save(a: SaveArgs) -> Result<i32> {
    let store = a.root.open()?;
    match &a.output {
        Some(path) => {
            // Written beside and renamed, so a failed save leaves no half file.
            let tmp = path.with_file_name(format!(
                ".{}.tmp-{}",
                path.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                std::process::id()
            ));
            let file = std::fs::File::create(&tmp)
                .with_context(|| format!("creating {}", tmp.display()))?;
            let mut w = std::io::BufWriter::new(file);
            let res = archive::save(&store, &a.images, &mut w)
                .map_err(anyhow::Error::from)
                .and_then(|()| Ok(w.into_inner().map_err(|e| e.into_error())?.sync_all()?))
                .and_then(|()| Ok(std::fs::rename(&tmp, path)?));
            if res.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            res.with_context(|| format!("saving to {}", path.display()))?;
        }
        None => {
            if std::io::stdout().is_terminal() {
                bail!("refusing to write a tarball to a terminal; use -o or redirect");
            }
            let mut w = std::io::BufWriter::new(std::io::stdout().lock());
            archive::save(&store, &a.images, &mut w)?;
            w.flush()?;
        }
    }
    Ok(0)
}

fn load(a: LoadArgs) -> Result<i32> {
    let store = a.root.open()?;
    // Leftovers of a load killed midway are cleared first.
    let _ = store.remove_stale_temps();
    let platform = a.platform.clone().unwrap_or_else(archive::host_platform);
    let loaded = match &a.input {
        Some(p) => {
            let f = std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?;
            archive::load(
                &store,
                std::io::BufReader::with_capacity(1 << 20, f),
                &platform,
            )
        }
        None if std::io::stdin().is_terminal() => {
            bail!("requested a load from standard input, which is a terminal; use -i or a pipe")
        }
        None => archive::load(
            &store,
            std::io::BufReader::with_capacity(1 << 20, std::io::stdin().lock()),
            &platform,
        ),
    }
    .context("loading images")?;
    if !a.quiet {
        for l in loaded {
            if l.tags.is_empty() {
                println!("Loaded image ID: {}", l.image.config);
            }
            for t in l.tags {
                println!("Loaded image: {}", display_name(&t));
            }
        }
    }
    Ok(0)
}

fn import(a: ImportArgs) -> Result<i32> {
    let store = a.root.open()?;
    let _ = store.remove_stale_temps();
    let reference = a
        .reference
        .as_deref()
        .map(str::parse::<Reference>)
        .transpose()?;
    let opts = ImportOptions {
        reference,
        message: a.message.clone(),
        platform: a.platform.clone(),
        source: a.file.clone(),
        config: None,
    };
    let rec = if a.file == "-" {
        archive::import(&store, std::io::stdin().lock(), &opts)
    } else {
        let f = std::fs::File::open(&a.file).with_context(|| format!("opening {}", a.file))?;
        archive::import(&store, f, &opts)
    }
    .with_context(|| format!("importing {}", a.file))?;
    println!("{}", rec.config);
    Ok(0)
}

fn prune(a: PruneArgs) -> Result<i32> {
    let _ = a.force;
    let store = a.root.open()?;
    let (removed, gc) = store.prune(a.all)?;
    if !removed.is_empty() {
        println!("Deleted Images:");
        for r in removed {
            match r {
                Removal::Untagged(n) => println!("untagged: {n}"),
                Removal::Deleted(d) => println!("deleted: {d}"),
            }
        }
        println!();
    }
    println!("Total reclaimed space: {}", human_size(gc.bytes));
    Ok(0)
}

fn verify(a: VerifyArgs) -> Result<i32> {
    let store = a.root.open()?;
    let r = store.verify()?;
    for c in &r.corrupt {
        println!("corrupt blob {} (content hashes to {})", c.digest, c.actual);
    }
    for (image, d) in &r.missing {
        println!("image {image} misses blob {d}");
    }
    for (image, d) in &r.missing_snapshots {
        println!("image {image} misses the snapshot of layer {d}");
    }
    println!(
        "{} blobs checked, {}",
        r.blobs_checked,
        if r.is_consistent() {
            "consistent"
        } else {
            "NOT consistent"
        }
    );
    Ok(if r.is_consistent() { 0 } else { 1 })
}

fn snapshot_cmd(s: SnapshotCmd) -> Result<i32> {
    match s {
        SnapshotCmd::Prepare {
            id,
            image,
            mount,
            root,
        } => {
            let store = root.open()?;
            let m = store.prepare_container(&id, &image)?;
            if mount {
                snapshot::mount(&m)?;
            }
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "type": "overlay",
                    "source": "overlay",
                    "target": m.target,
                    "lowerdirs": m.lowerdirs,
                    "upperdir": m.upperdir,
                    "workdir": m.workdir,
                    "options": m.options().ok(),
                }))?
            );
        }
        SnapshotCmd::Mount { id, root } => {
            let store = root.open()?;
            let m = store.container_mount(&id)?;
            snapshot::mount(&m)?;
            println!("{}", m.target.display());
        }
        SnapshotCmd::Unmount { id, root } => {
            let store = root.open()?;
            snapshot::unmount(&store.container_mount(&id)?.target)?;
        }
        SnapshotCmd::Rm { id, root } => root.open()?.remove_container(&id)?,
        SnapshotCmd::Commit {
            id,
            reference,
            message,
            author,
            root,
        } => {
            let store = root.open()?;
            let opts = CommitOptions {
                reference: reference.as_deref().map(str::parse).transpose()?,
                author,
                comment: message,
                ..Default::default()
            };
            let rec = store.commit_container(&id, &opts)?;
            println!("{}", rec.config);
        }
    }
    Ok(0)
}
