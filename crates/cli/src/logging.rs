//! The binary's logger. Libraries emit `tracing` events and never print;
//! this installs the one subscriber, once per process, writing to stderr.
//! The OCI runtime keeps its own runc-compatible log (`--log FILE
//! --log-format json`, `cais_runtime::log`), which podman and containerd read.

use std::io::IsTerminal;

use tracing_subscriber::filter::LevelFilter;

/// `--log-level`, as dockerd spells it.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

/// `--log-format`: text for people, JSON (one object per line, the event's
/// fields at the top level) for log collectors.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// Installs the process's subscriber. Called once, from `main`.
pub fn init(level: Level, format: Format) {
    let level = match level {
        Level::Error => LevelFilter::ERROR,
        Level::Warn => LevelFilter::WARN,
        Level::Info => LevelFilter::INFO,
        Level::Debug => LevelFilter::DEBUG,
        Level::Trace => LevelFilter::TRACE,
    };
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr);
    // Setting a second subscriber is the only way this fails, and `main`
    // calls this once: nothing to report.
    let _ = match format {
        Format::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        Format::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
}
