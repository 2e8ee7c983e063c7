//! BuildKit's protocol on the cais daemon, spoken raw: a `/grpc`
//! connection calling the Control API and a `/session` connection serving
//! FileSync from the test, both upgraded to h2c over the daemon's socket,
//! with the wire types of `cais-buildkit`. Real clients (docker compose
//! v2) are in `compose.rs`; here are the paths they never take: a direct
//! `dockerfile.v0` solve, bad requests, a session that goes away in the
//! middle of a transfer.
//!
//! Needs root and a static busybox; a missing one fails under `CI` and
//! skips the test otherwise.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cais_buildkit::proto::control::{
    control_client::ControlClient, Exporter, SolveRequest, StatusRequest,
};
use cais_buildkit::proto::filesync::file_sync_server::{FileSync, FileSyncServer};
use cais_buildkit::proto::{Packet, PacketType, Stat};
use cais_buildkit::{origin, Channel};
use cais_testkit::daemon::{shared, SharedDaemon};
use cais_testkit::require_root_and_busybox;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, Notify};
use tokio_stream::StreamExt;

const CAIS: &str = env!("CARGO_BIN_EXE_cais");

/// The daemon, and a turn: the tests look at the daemon's whole build
/// scratch directory, so they run one at a time.
fn ready() -> Option<(SharedDaemon, std::sync::MutexGuard<'static, ()>)> {
    static TURN: Mutex<()> = Mutex::new(());
    let turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    require_root_and_busybox().then(|| (shared(CAIS, true), turn))
}

fn socket(d: &SharedDaemon) -> PathBuf {
    d.dir.join("api.sock")
}

/// Opens `path` on the daemon with an h2c upgrade; the raw connection
/// after the 101.
async fn upgrade(d: &SharedDaemon, path: &str, headers: &[(&str, &str)]) -> tokio::net::UnixStream {
    let mut s = tokio::net::UnixStream::connect(socket(d))
        .await
        .expect("connect");
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nContent-Length: 0\r\n"
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.expect("request");
    // The head only: byte by byte, so nothing of HTTP/2 is read here.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let b = s.read_u8().await.expect("response head");
        head.push(b);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{path}: {head}");
    assert!(head.to_ascii_lowercase().contains("upgrade: h2c"), "{head}");
    s
}

async fn control(d: &SharedDaemon) -> ControlClient<Channel> {
    control_conn(d).await.0
}

/// A Control client and the task driving its connection (abort it and
/// the connection closes).
async fn control_conn(d: &SharedDaemon) -> (ControlClient<Channel>, tokio::task::JoinHandle<()>) {
    let io = upgrade(d, "/grpc", &[]).await;
    let (channel, driver) = Channel::handshake(TokioIo::new(io)).await.expect("h2");
    let driver = tokio::spawn(driver);
    (ControlClient::with_origin(channel, origin()), driver)
}

/// A client's directories as FileSync serves them: name → entries
/// (path, contents; `None` for a directory).
type Dirs = BTreeMap<String, Vec<(String, Option<Vec<u8>>)>>;

/// FileSync's sending side, enough for these tests: all entries (or only
/// the `followpaths`), then file contents on request. With `vanish`, the
/// first file of the `context` directory gets one chunk, then `vanished`
/// is notified (and the test drops the session).
#[derive(Clone)]
struct Files {
    dirs: Arc<Dirs>,
    vanish: bool,
    vanished: Arc<Notify>,
    /// dir-name of every DiffCopy, in order.
    calls: Arc<Mutex<Vec<String>>>,
}

#[tonic::async_trait]
impl FileSync for Files {
    type DiffCopyStream = tokio_stream::wrappers::ReceiverStream<Result<Packet, tonic::Status>>;

    async fn diff_copy(
        &self,
        req: tonic::Request<tonic::Streaming<Packet>>,
    ) -> Result<tonic::Response<Self::DiffCopyStream>, tonic::Status> {
        let md = req.metadata();
        let dir = md
            .get("dir-name")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let follow: Vec<String> = md
            .get_all("followpaths")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect();
        self.calls.lock().expect("calls").push(dir.clone());
        let entries: Vec<(String, Option<Vec<u8>>)> = self
            .dirs
            .get(&dir)
            .ok_or_else(|| tonic::Status::not_found(format!("no dir {dir}")))?
            .iter()
            .filter(|(p, _)| follow.is_empty() || follow.contains(p))
            .cloned()
            .collect();
        let (tx, rx) = mpsc::channel(64);
        let mut inbound = req.into_inner();
        let me = self.clone();
        tokio::spawn(async move {
            let packet = |t: PacketType| Packet {
                r#type: t as i32,
                ..Default::default()
            };
            for (path, data) in &entries {
                let stat = Stat {
                    path: path.clone(),
                    mode: if data.is_some() {
                        0o644
                    } else {
                        (1 << 31) | 0o755
                    },
                    size: data.as_ref().map_or(0, |d| d.len() as i64),
                    mod_time: 1_700_000_000_000_000_000,
                    ..Default::default()
                };
                let _ = tx
                    .send(Ok(Packet {
                        stat: Some(stat),
                        ..packet(PacketType::PacketStat)
                    }))
                    .await;
            }
            let _ = tx.send(Ok(packet(PacketType::PacketStat))).await;
            while let Some(Ok(p)) = inbound.next().await {
                match PacketType::try_from(p.r#type) {
                    Ok(PacketType::PacketReq) => {
                        let Some((_, Some(data))) = entries.get(p.id as usize) else {
                            return;
                        };
                        if me.vanish && dir == "context" {
                            let half = Packet {
                                id: p.id,
                                data: data[..data.len() / 2].to_vec(),
                                ..packet(PacketType::PacketData)
                            };
                            let _ = tx.send(Ok(half)).await;
                            me.vanished.notify_one();
                            // Never finishes: the session goes away.
                            std::future::pending::<()>().await;
                        }
                        for d in [data.clone(), Vec::new()] {
                            let _ = tx
                                .send(Ok(Packet {
                                    id: p.id,
                                    data: d,
                                    ..packet(PacketType::PacketData)
                                }))
                                .await;
                        }
                    }
                    Ok(PacketType::PacketFin) => {
                        let _ = tx.send(Ok(packet(PacketType::PacketFin))).await;
                        return;
                    }
                    _ => return,
                }
            }
        });
        Ok(tonic::Response::new(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ))
    }
}

/// Connects a session serving `files`; the task serving it (abort it and
/// the session is gone).
async fn session(d: &SharedDaemon, id: &str, files: Files) -> tokio::task::JoinHandle<()> {
    let io = upgrade(
        d,
        "/session",
        &[
            ("X-Docker-Expose-Session-Uuid", id),
            ("X-Docker-Expose-Session-Name", "test"),
            ("X-Docker-Expose-Session-Sharedkey", "key"),
            (
                "X-Docker-Expose-Session-Grpc-Method",
                "/moby.filesync.v1.FileSync/DiffCopy",
            ),
        ],
    )
    .await;
    tokio::spawn(async move {
        let routes = tonic::service::Routes::new(FileSyncServer::new(files));
        let _ = cais_buildkit::serve(TokioIo::new(io), routes).await;
    })
}

fn files(dockerfile: &str, context: &[(&str, &[u8])], vanish: bool) -> Files {
    let mut dirs = Dirs::new();
    dirs.insert(
        "dockerfile".into(),
        vec![("Dockerfile".into(), Some(dockerfile.as_bytes().to_vec()))],
    );
    dirs.insert(
        "context".into(),
        context
            .iter()
            .map(|(p, d)| (p.to_string(), Some(d.to_vec())))
            .collect(),
    );
    Files {
        dirs: Arc::new(dirs),
        vanish,
        vanished: Arc::new(Notify::new()),
        calls: Default::default(),
    }
}

fn solve(r#ref: &str, session: &str, frontend: &str, name: &str) -> SolveRequest {
    SolveRequest {
        r#ref: r#ref.into(),
        session: session.into(),
        frontend: frontend.into(),
        exporters: vec![Exporter {
            r#type: "moby".into(),
            attrs: HashMap::from([("name".to_string(), name.to_string())]),
        }],
        ..Default::default()
    }
}

fn has_image(d: &SharedDaemon, name: &str) -> bool {
    std::process::Command::new(CAIS)
        .args(["-H", &d.host, "inspect", "--type", "image", name])
        .output()
        .expect("cais inspect")
        .status
        .success()
}

/// The build scratch directories left under the daemon's root.
fn scratch_left(d: &SharedDaemon) -> Vec<String> {
    std::fs::read_dir(d.dir.join("root/engine/build"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("buildkit-"))
                .collect()
        })
        .unwrap_or_default()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// One plain HTTP/1.1 exchange on the daemon's socket: status line and
/// head of the response.
fn http(d: &SharedDaemon, request: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(socket(d)).expect("connect");
    s.write_all(request.as_bytes()).expect("request");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).expect("response");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// `/_ping` says BuildKit is served; its endpoints refuse plain requests.
#[test]
fn ping_advertises_buildkit_and_its_endpoints_need_h2c() {
    let Some((d, _turn)) = ready() else { return };
    let ping = http(&d, "HEAD /_ping HTTP/1.1\r\nHost: docker\r\n\r\n");
    assert!(
        ping.to_ascii_lowercase().contains("builder-version: 2\r\n"),
        "{ping}"
    );
    let grpc = http(
        &d,
        "POST /grpc HTTP/1.1\r\nHost: docker\r\nContent-Length: 0\r\n\r\n",
    );
    assert!(grpc.starts_with("HTTP/1.1 400"), "{grpc}");
    assert!(
        grpc.contains("needs an upgraded connection (Upgrade: h2c)"),
        "{grpc}"
    );
    let session = http(
        &d,
        "POST /session HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nContent-Length: 0\r\n\r\n",
    );
    assert!(session.starts_with("HTTP/1.1 400"), "{session}");
    assert!(
        session.contains("X-Docker-Expose-Session-Uuid"),
        "{session}"
    );
}

/// A client that names the frontend itself (no gateway): the Dockerfile
/// and context come over its session, the steps over Status, the image id
/// in the response, and the name is set.
#[test]
fn a_dockerfile_solve_builds_and_names_the_image() {
    let Some((d, _turn)) = ready() else { return };
    runtime().block_on(async {
        let f = files(
            "FROM busybox\nCOPY hello.txt /hello.txt\nRUN cat /hello.txt\n",
            &[("hello.txt", b"hello over filesync\n")],
            false,
        );
        let _s = session(&d, "sess-direct", f.clone()).await;
        let mut c = control(&d).await;
        let status = c
            .status(StatusRequest {
                r#ref: "direct-1".into(),
            })
            .await
            .expect("status")
            .into_inner();
        let resp = c
            .solve(solve(
                "direct-1",
                "sess-direct",
                "dockerfile.v0",
                "bk-direct:1",
            ))
            .await
            .expect("solve")
            .into_inner();
        let events: Vec<_> =
            tokio::time::timeout(Duration::from_secs(30), status.collect::<Vec<_>>())
                .await
                .expect("the status stream ends with the build");
        let names: Vec<String> = events
            .iter()
            .flatten()
            .flat_map(|e| &e.vertexes)
            .filter(|v| v.completed.is_some())
            .map(|v| v.name.clone())
            .collect();
        assert!(
            names.contains(&"[3/3] RUN cat /hello.txt".to_string()),
            "{names:?}"
        );
        let logs: String = events
            .iter()
            .flatten()
            .flat_map(|e| &e.logs)
            .map(|l| String::from_utf8_lossy(&l.msg).into_owned())
            .collect();
        assert!(logs.contains("hello over filesync"), "{logs}");
        let id = resp.exporter_response["containerimage.digest"].clone();
        assert!(id.starts_with("sha256:"), "{:?}", resp.exporter_response);
        assert_eq!(
            resp.exporter_response["image.name"],
            "docker.io/library/bk-direct:1"
        );
        let out = std::process::Command::new(CAIS)
            .args(["-H", &d.host, "inspect", "-f", "{{.Id}}", "bk-direct:1"])
            .output()
            .expect("inspect");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), id);
        assert_eq!(
            *f.calls.lock().expect("calls"),
            ["dockerfile", "context", "context"],
            "the Dockerfile, the .dockerignore, the context"
        );
    });
}

/// Requests cais cannot honour are refused with a reason, before any
/// transfer, and name nothing.
#[test]
fn bad_solves_are_refused_clearly() {
    let Some((d, _turn)) = ready() else { return };
    runtime().block_on(async {
        let f = files("FROM busybox\n", &[], false);
        let _s = session(&d, "sess-bad", f.clone()).await;
        let mut c = control(&d).await;
        let e = c
            .solve(solve("bad-1", "sess-bad", "nope.v0", "bk-bad:1"))
            .await
            .expect_err("unknown frontend");
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(
            e.message().contains("frontend \"nope.v0\" not supported"),
            "{e}"
        );
        // Its Status still ends.
        let status = c
            .status(StatusRequest {
                r#ref: "bad-1".into(),
            })
            .await
            .expect("status")
            .into_inner();
        tokio::time::timeout(Duration::from_secs(10), status.collect::<Vec<_>>())
            .await
            .expect("status of a failed solve ends");

        let mut local = solve("bad-2", "sess-bad", "dockerfile.v0", "");
        local.exporters[0].r#type = "local".into();
        let e = c.solve(local).await.expect_err("local exporter");
        assert!(
            e.message().contains("exporter \"local\" is not supported"),
            "{e}"
        );

        let mut platform = solve("bad-3", "sess-bad", "dockerfile.v0", "bk-bad:1");
        platform
            .frontend_attrs
            .insert("platform".into(), "linux/s390x".into());
        let e = c.solve(platform).await.expect_err("foreign platform");
        assert!(
            e.message()
                .contains("cannot build for platform linux/s390x"),
            "{e}"
        );

        let e = c
            .solve(solve("bad-4", "sess-bad", "dockerfile.v0", "Not A Tag"))
            .await
            .expect_err("bad name");
        assert!(e.message().contains("invalid tag"), "{e}");

        let e = c
            .solve(solve("bad-1", "sess-bad", "dockerfile.v0", "bk-bad:1"))
            .await
            .expect_err("a ref is used once");
        assert!(e.message().contains("already in use"), "{e}");

        assert!(
            f.calls.lock().expect("calls").is_empty(),
            "nothing was fetched"
        );
        assert!(!has_image(&d, "bk-bad:1"));
    });
}

/// The session goes away while the context is being sent: the solve fails
/// saying so, nothing is tagged, the scratch directory is gone.
#[test]
fn a_session_that_disappears_mid_build_fails_it_cleanly() {
    let Some((d, _turn)) = ready() else { return };
    runtime().block_on(async {
        let big = vec![b'x'; 1 << 20];
        let f = files("FROM busybox\nCOPY big /big\n", &[("big", &big)], true);
        let s = session(&d, "sess-vanish", f.clone()).await;
        let mut c = control(&d).await;
        assert_eq!(scratch_left(&d), Vec::<String>::new());
        let vanished = f.vanished.clone();
        let solving = tokio::spawn(async move {
            c.solve(solve(
                "vanish-1",
                "sess-vanish",
                "dockerfile.v0",
                "bk-vanish:1",
            ))
            .await
        });
        tokio::time::timeout(Duration::from_secs(30), vanished.notified())
            .await
            .expect("the context transfer started");
        assert!(
            !scratch_left(&d).is_empty(),
            "the build has its scratch directory"
        );
        s.abort();
        let e = tokio::time::timeout(Duration::from_secs(30), solving)
            .await
            .expect("the solve ends")
            .expect("join")
            .expect_err("the session is gone");
        assert!(
            e.message()
                .contains("the client's session sess-vanish ended"),
            "{e}"
        );
        assert!(!has_image(&d, "bk-vanish:1"));
        assert_eq!(scratch_left(&d), Vec::<String>::new());
    });
}

/// The client goes away (its `/grpc` connection closes) while a step runs:
/// the build is abandoned, the name never set, the scratch removed.
#[test]
fn a_client_that_goes_away_mid_build_gets_nothing_tagged() {
    let Some((d, _turn)) = ready() else { return };
    runtime().block_on(async {
        let f = files("FROM busybox\nRUN echo started && sleep 3\n", &[], false);
        let _s = session(&d, "sess-gone", f.clone()).await;
        let (mut c, conn) = control_conn(&d).await;
        let status = c
            .status(StatusRequest {
                r#ref: "gone-1".into(),
            })
            .await
            .expect("status")
            .into_inner();
        let solving = tokio::spawn(async move {
            c.solve(solve("gone-1", "sess-gone", "dockerfile.v0", "bk-gone:1"))
                .await
        });
        // Wait for the RUN step to start, then leave.
        let mut status = status;
        loop {
            let e = tokio::time::timeout(Duration::from_secs(30), status.next())
                .await
                .expect("progress")
                .expect("the build is under way")
                .expect("status");
            if e.vertexes
                .iter()
                .any(|v| v.name.contains("RUN echo started"))
            {
                break;
            }
        }
        solving.abort();
        conn.abort();
        // The step ends by itself; then nothing is left and nothing named.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !scratch_left(&d).is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "{:?}",
                scratch_left(&d)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!has_image(&d, "bk-gone:1"));
    });
}
