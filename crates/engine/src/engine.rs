//! The engine: a facade that opens the daemon's state and composes the
//! owners of each job. Callers (the HTTP handlers, the daemon) reach the
//! owner of what they need through its field; the owners hold shared
//! handles to the ones below them (see the crate docs for the order).

use std::fs;
use std::sync::Arc;

use cais_image::ImageStore;

pub use crate::config::Config;
use crate::containers::exec::Execs;
use crate::containers::inspect::Views;
use crate::containers::lifecycle::Containers;
use crate::containers::table::{self, Table};
use crate::error::{Error, Result};
use crate::events::Events;
use crate::networks::records::NetworkStore;
use crate::networks::wiring::Wiring;
use crate::trash::Trash;
use crate::volumes::Volumes;

pub struct Engine {
    pub cfg: Config,
    /// Images, layers and container snapshots.
    pub images: Arc<ImageStore>,
    pub volumes: Arc<Volumes>,
    pub events: Arc<Events>,
    /// The containers and their records on disk.
    pub table: Arc<Table>,
    /// The network records.
    pub networks: Arc<NetworkStore>,
    /// Containers wired into networks; the firewall and the DNS server.
    pub wiring: Arc<Wiring>,
    /// The container life cycle.
    pub containers: Arc<Containers>,
    /// What the API shows of containers.
    pub views: Views,
    /// Exec sessions.
    pub execs: Execs,
    /// BuildKit's protocol (`POST /grpc`, `POST /session`): one per daemon,
    /// since a build on one connection names a session on another.
    pub buildkit: cais_buildkit::BuildKit,
}

impl Engine {
    /// Opens the engine's state and finds containers again (live restore):
    /// the predefined networks and the DNS server first, then containers
    /// whose shims still run are watched again and dead ones handled as
    /// exits, then their network resources are restored or released.
    pub fn open(cfg: Config) -> Result<Arc<Engine>> {
        for d in [cfg.containers_dir(), cfg.runtime_root()] {
            fs::create_dir_all(&d).map_err(Error::io("creating", &d))?;
        }
        let mut images = ImageStore::open(&cfg.root)?;
        let records = cfg.containers_dir();
        images.set_in_use_check(Box::new(move |image: &cais_image::ImageRecord| {
            // An image is in use while a container record names it.
            table::image_user(&records, &image.id().to_string())
        }));
        let images = Arc::new(images);
        let volumes = Arc::new(Volumes::new(&cfg.root)?);
        let events = Arc::new(Events::default());
        let table = Arc::new(Table::load(cfg.containers_dir())?);
        let networks = Arc::new(NetworkStore::load(
            &cfg.root,
            cfg.networks_dir(),
            table.clone(),
            events.clone(),
        )?);
        networks.init()?;
        let wiring = Arc::new(Wiring::new(
            cfg.clone(),
            table.clone(),
            networks.clone(),
            events.clone(),
        ));
        wiring.start_dns();
        let trash = Arc::new(Trash::open(cfg.trash_dir())?);
        let containers = Arc::new(Containers::new(
            cfg.clone(),
            images.clone(),
            volumes.clone(),
            events.clone(),
            table.clone(),
            wiring.clone(),
            trash.clone(),
        ));
        containers.restore();
        wiring.restore();
        let buildkit = cais_buildkit::BuildKit::new(Arc::new(crate::build::BuildKitHost {
            root: cfg.root.clone(),
            binary: cfg.binary.clone(),
            images: images.clone(),
            events: events.clone(),
        }));
        Ok(Arc::new(Engine {
            buildkit,
            views: Views::new(cfg.clone(), table.clone(), images.clone()),
            execs: Execs::new(cfg.clone(), table.clone(), images.clone(), events.clone()),
            cfg,
            images,
            volumes,
            events,
            table,
            networks,
            wiring,
            containers,
        }))
    }

    /// At daemon shutdown: the firewall tables and unused bridges go;
    /// containers keep running.
    pub fn shutdown(&self) {
        self.wiring.shutdown();
    }
}
