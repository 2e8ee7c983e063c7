//! `cais daemon`: opens the engine, serves the API on a unix socket (mode
//! 0660, root-owned) until SIGTERM or SIGINT. Containers keep running when
//! it stops; the next start finds them again.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use crate::engine::{Config, Engine};
use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct Options {
    pub socket: PathBuf,
    pub root: PathBuf,
    pub exec_root: PathBuf,
    pub binary: PathBuf,
}

pub fn run(opts: Options) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::internal("starting the async runtime", e))?;
    rt.block_on(serve(opts))
}

async fn serve(opts: Options) -> Result<()> {
    let engine = tokio::task::spawn_blocking({
        let cfg = Config {
            root: opts.root.clone(),
            exec_root: opts.exec_root.clone(),
            binary: opts.binary.clone(),
        };
        move || Engine::open(cfg)
    })
    .await
    .map_err(|e| Error::internal("opening the engine", e))??;
    if let Some(dir) = opts.socket.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::internal("creating the socket directory", e))?;
    }
    // A socket file left by a daemon that died is replaced; a live daemon is not.
    if std::os::unix::net::UnixStream::connect(&opts.socket).is_ok() {
        return Err(Error::Conflict(format!(
            "another daemon is already listening on {}",
            opts.socket.display()
        )));
    }
    let _ = std::fs::remove_file(&opts.socket);
    let listener = tokio::net::UnixListener::bind(&opts.socket)
        .map_err(|e| Error::internal(&format!("binding {}", opts.socket.display()), e))?;
    std::fs::set_permissions(&opts.socket, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| Error::internal("setting socket permissions", e))?;
    let shutdown = async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let mut int =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
        tokio::select! {
            _ = async { if let Some(t) = term.as_mut() { t.recv().await; } else { std::future::pending::<()>().await } } => {}
            _ = async { if let Some(i) = int.as_mut() { i.recv().await; } else { std::future::pending::<()>().await } } => {}
        }
    };
    eprintln!(
        "cais daemon: serving the Docker Engine API on {}",
        opts.socket.display()
    );
    crate::server::serve(engine, listener, shutdown).await;
    let _ = std::fs::remove_file(&opts.socket);
    Ok(())
}
