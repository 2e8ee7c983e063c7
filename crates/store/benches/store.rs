//! The store benchmark (`cargo xtask bench-store [--runs N] [--dir DIR]`),
//! not a test: durable puts from 1 and from 256 concurrent clients, point
//! gets, a 10,000-key range read and watch fan-out to 1,000 watchers, on
//! the embedded backend. Each run opens a fresh store in a directory on the
//! work tree's disk (`--dir`, default: a temporary directory under
//! `target/`); the report gives per measure the median of the runs, and the
//! latency percentiles of the median run.
//!
//! Shapes follow `benchmarks.md` (B1-B3): 8-byte-ish keys and 256-byte
//! values for puts and gets, 2 KiB values for the range (an object of
//! realistic size), watchers on one prefix while writes arrive at 500/s for
//! latency and as fast as 256 clients can write for throughput. Latency of a
//! watch event is from the start of the write call to the watcher's
//! receipt: it includes the durable commit.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use cais_store::sqlite::{Options, SqliteStore};
use cais_store::{Bytes, KeyRange, Store};

struct Args {
    runs: usize,
    dir: Option<PathBuf>,
}

fn args() -> Args {
    let mut args = Args { runs: 5, dir: None };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--runs" => {
                args.runs = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n > 0)
                    .expect("--runs takes a positive number")
            }
            "--dir" => args.dir = Some(PathBuf::from(it.next().expect("--dir takes a path"))),
            // cargo bench passes --bench.
            "--bench" => {}
            other => panic!("unknown argument {other:?}: --runs N, --dir DIR"),
        }
    }
    args
}

/// Latencies of one measure, in microseconds.
#[derive(Default)]
struct Latencies(Vec<f64>);

impl Latencies {
    fn push(&mut self, d: Duration) {
        self.0.push(d.as_secs_f64() * 1e6);
    }

    fn percentile(&mut self, p: f64) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        self.0.sort_by(f64::total_cmp);
        let index = ((self.0.len() - 1) as f64 * p).round() as usize;
        self.0[index]
    }
}

/// One measure of one run: a rate (or a duration) and its latencies.
struct Measure {
    name: &'static str,
    value: f64,
    unit: &'static str,
    p50_us: f64,
    p99_us: f64,
    note: String,
}

fn measure(
    name: &'static str,
    value: f64,
    unit: &'static str,
    mut latencies: Latencies,
    note: String,
) -> Measure {
    Measure {
        name,
        value,
        unit,
        p50_us: latencies.percentile(0.5),
        p99_us: latencies.percentile(0.99),
        note,
    }
}

fn value(len: usize, seed: usize) -> Bytes {
    Bytes::from(
        (0..len)
            .map(|i| (i.wrapping_mul(31) ^ seed) as u8)
            .collect::<Vec<u8>>(),
    )
}

async fn puts_sequential(store: &SqliteStore, n: usize) -> Measure {
    let v = value(256, 1);
    let mut latencies = Latencies::default();
    let start = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        store
            .create(format!("/s/{i:06}").as_bytes(), v.clone(), None)
            .await
            .expect("put");
        latencies.push(t.elapsed());
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    measure(
        "durable puts, 1 client",
        rate,
        "puts/s",
        latencies,
        String::new(),
    )
}

async fn puts_concurrent(store: &SqliteStore, clients: usize, per_client: usize) -> Measure {
    let before = store.stats();
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let store = store.clone();
            tokio::spawn(async move {
                let v = value(256, c);
                let mut latencies = Vec::with_capacity(per_client);
                for i in 0..per_client {
                    let t = Instant::now();
                    store
                        .create(format!("/c/{c:03}/{i:05}").as_bytes(), v.clone(), None)
                        .await
                        .expect("put");
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Latencies::default();
    for task in tasks {
        for d in task.await.expect("client") {
            latencies.push(d);
        }
    }
    let elapsed = start.elapsed();
    let stats = store.stats();
    let writes = stats.writes - before.writes;
    let commits = stats.commits - before.commits;
    let rate = writes as f64 / elapsed.as_secs_f64();
    measure(
        "durable puts, 256 clients",
        rate,
        "puts/s",
        latencies,
        format!(
            "{:.0} writes per commit",
            writes as f64 / commits.max(1) as f64
        ),
    )
}

async fn gets(store: &SqliteStore, keys: usize, clients: usize, per_client: usize) -> Measure {
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut rng = fastrand::Rng::with_seed(c as u64);
                let mut latencies = Vec::with_capacity(per_client);
                for _ in 0..per_client {
                    let key = format!("/s/{:06}", rng.usize(..keys));
                    let t = Instant::now();
                    let got = store.get(key.as_bytes(), 0).await.expect("get");
                    latencies.push(t.elapsed());
                    assert!(got.kv.is_some(), "{key} is there");
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Latencies::default();
    for task in tasks {
        for d in task.await.expect("client") {
            latencies.push(d);
        }
    }
    let rate = (clients * per_client) as f64 / start.elapsed().as_secs_f64();
    let name = if clients == 1 {
        "point gets, 1 client"
    } else {
        "point gets, 64 clients"
    };
    measure(name, rate, "gets/s", latencies, String::new())
}

async fn range(store: &SqliteStore, keys: usize, reads: usize) -> Measure {
    // Loaded by 64 writers (group commit), then read whole, repeatedly.
    let tasks: Vec<_> = (0..64)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in (w..keys).step_by(64) {
                    store
                        .create(format!("/r/{i:06}").as_bytes(), value(2048, i), None)
                        .await
                        .expect("put");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("loader");
    }
    let range = KeyRange::prefix(Bytes::from_static(b"/r/"));
    let mut latencies = Latencies::default();
    for _ in 0..reads {
        let t = Instant::now();
        let listed = store.list(&range, 0, 0).await.expect("list");
        latencies.push(t.elapsed());
        assert_eq!(listed.kvs.len(), keys);
    }
    let median_ms = latencies.percentile(0.5) / 1000.0;
    measure(
        "range of 10,000 keys (2 KiB values)",
        median_ms,
        "ms median",
        latencies,
        format!("{reads} reads"),
    )
}

/// `watchers` watches on one prefix; each event's value carries the
/// nanoseconds (since `base`) at which its write was started.
async fn fan_out(
    store: &SqliteStore,
    watchers: usize,
    writes: usize,
    rate: Option<f64>,
) -> Measure {
    let base = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..watchers {
        let mut watch = store
            .watch(&KeyRange::prefix(Bytes::from_static(b"/w/")), 0)
            .await
            .expect("watch");
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(writes);
            let mut last_receipt = Duration::ZERO;
            while latencies.len() < writes {
                let batch = watch
                    .next()
                    .await
                    .expect("watching")
                    .expect("no watch error");
                let now = base.elapsed();
                for event in batch.events {
                    let cais_store::Event::Put { kv, .. } = event else {
                        panic!("the benchmark only creates");
                    };
                    let sent = u64::from_le_bytes(kv.value[..8].try_into().expect("8 bytes"));
                    latencies.push(now.saturating_sub(Duration::from_nanos(sent)));
                }
                last_receipt = now;
            }
            (latencies, last_receipt)
        }));
    }
    let start = base.elapsed();
    match rate {
        Some(rate) => {
            // Paced writes from one client.
            let interval = Duration::from_secs_f64(1.0 / rate);
            let mut next = Instant::now();
            for i in 0..writes {
                tokio::time::sleep_until(next.into()).await;
                next += interval;
                let mut v = (base.elapsed().as_nanos() as u64).to_le_bytes().to_vec();
                v.resize(256, 0);
                store
                    .create(format!("/w/p{i:06}").as_bytes(), Bytes::from(v), None)
                    .await
                    .expect("put");
            }
        }
        None => {
            let writers: Vec<_> = (0..256)
                .map(|w| {
                    let store = store.clone();
                    tokio::spawn(async move {
                        for i in (w..writes).step_by(256) {
                            let mut v = (base.elapsed().as_nanos() as u64).to_le_bytes().to_vec();
                            v.resize(256, 0);
                            store
                                .create(format!("/w/b{i:06}").as_bytes(), Bytes::from(v), None)
                                .await
                                .expect("put");
                        }
                    })
                })
                .collect();
            for writer in writers {
                writer.await.expect("writer");
            }
        }
    }
    let mut latencies = Latencies::default();
    let mut last = Duration::ZERO;
    for task in tasks {
        let (lat, last_receipt) = task.await.expect("watcher");
        for d in lat {
            latencies.push(d);
        }
        last = last.max(last_receipt);
    }
    let delivered = (watchers * writes) as f64;
    let events_per_s = delivered / (last - start).as_secs_f64();
    match rate {
        Some(rate) => measure(
            "watch delivery, 1,000 watchers, 500 writes/s",
            events_per_s,
            "events/s",
            latencies,
            format!("{writes} writes at {rate}/s; latency from write call to receipt"),
        ),
        None => measure(
            "watch fan-out, 1,000 watchers, 256 writers",
            events_per_s,
            "events/s",
            latencies,
            format!("{writes} writes as fast as they go"),
        ),
    }
}

async fn run(dir: &std::path::Path) -> Vec<Measure> {
    let options = Options {
        // The benchmark keeps its history; compaction is not what it measures.
        retention: None,
        ..Options::default()
    };
    let store = SqliteStore::open(dir, options).expect("open the store");
    let sequential = 5_000;
    vec![
        puts_sequential(&store, sequential).await,
        puts_concurrent(&store, 256, 200).await,
        gets(&store, sequential, 1, 50_000).await,
        gets(&store, sequential, 64, 2_000).await,
        range(&store, 10_000, 30).await,
        fan_out(&store, 1000, 2_000, Some(500.0)).await,
        fan_out(&store, 1000, 5_000, None).await,
    ]
}

/// The disk's serial sync rate right now, the way `benchmarks.md` §0
/// measured it: 8000-byte writes at rotating offsets, each followed by
/// `fdatasync`. Durable puts from one client cannot beat it; the shared
/// disk's rate varies with what else runs, so every run reports it.
fn disk_syncs_per_second(dir: &std::path::Path) -> f64 {
    use std::os::unix::fs::FileExt;
    let path = dir.join("sync-probe");
    let file = std::fs::File::create(&path).expect("probe file");
    let block = vec![0x5au8; 8000];
    let n = 500;
    let start = Instant::now();
    for i in 0..n {
        file.write_all_at(&block, (i % 16) * 8000)
            .expect("probe write");
        file.sync_data().expect("probe sync");
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    rate
}

fn shell(cmd: &str) -> String {
    std::process::Command::new("sh")
        .args(["-c", cmd])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn main() {
    let args = args();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target");
    println!(
        "store benchmark: {} runs; commit {}; {} CPUs; load {}; kernel {}",
        args.runs,
        shell("git rev-parse --short HEAD"),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        shell("cut -d' ' -f1-3 /proc/loadavg"),
        shell("uname -r"),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut runs: Vec<Vec<Measure>> = Vec::new();
    for run_index in 0..args.runs {
        let parent = match &args.dir {
            Some(dir) => dir.clone(),
            None => root.clone(),
        };
        std::fs::create_dir_all(&parent).expect("benchmark directory");
        let dir = tempfile::Builder::new()
            .prefix("bench-store-")
            .tempdir_in(&parent)
            .expect("temporary directory");
        let syncs = disk_syncs_per_second(dir.path());
        let measures = runtime.block_on(run(dir.path()));
        println!(
            "run {}: disk {:.0} serial fdatasync/s before, {:.0} after; load {}",
            run_index + 1,
            syncs,
            disk_syncs_per_second(dir.path()),
            shell("cut -d' ' -f1-3 /proc/loadavg"),
        );
        for m in &measures {
            println!(
                "  {:<44} {:>12.1} {:<10} p50 {:>9.1} us  p99 {:>9.1} us  {}",
                m.name, m.value, m.unit, m.p50_us, m.p99_us, m.note
            );
        }
        runs.push(measures);
    }
    println!(
        "median of {} runs (percentiles from the median run):",
        args.runs
    );
    for i in 0..runs[0].len() {
        let mut order: Vec<usize> = (0..runs.len()).collect();
        order.sort_by(|a, b| runs[*a][i].value.total_cmp(&runs[*b][i].value));
        let m = &runs[order[order.len() / 2]][i];
        println!(
            "  {:<44} {:>12.1} {:<10} p50 {:>9.1} us  p99 {:>9.1} us  {}",
            m.name, m.value, m.unit, m.p50_us, m.p99_us, m.note
        );
    }
}
