//! Runtime logging. Callers such as containerd and podman pass `--log FILE
//! --log-format json` and read the last error line from that file, so
//! warnings and errors go there as JSON lines; without `--log` they go to stderr.

use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

struct Config {
    file: Option<PathBuf>,
    json: bool,
}

static CONFIG: OnceLock<Config> = OnceLock::new();

/// Sets where log lines go; call once at start-up.
pub fn init(file: Option<PathBuf>, json: bool) {
    let _ = CONFIG.set(Config { file, json });
}

pub fn warn(msg: &str) {
    write("warning", msg);
}

pub fn error(msg: &str) {
    write("error", msg);
}

fn write(level: &str, msg: &str) {
    let cfg = CONFIG.get();
    let json = cfg.is_some_and(|c| c.json);
    let line = if json {
        let now = crate::state::rfc3339(std::time::SystemTime::now());
        serde_json::json!({"level": level, "msg": msg, "time": now}).to_string()
    } else {
        format!("{level}: {msg}")
    };
    match cfg.and_then(|c| c.file.as_ref()) {
        Some(path) => {
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                let _ = writeln!(f, "{line}");
            }
        }
        // This module is the runtime's log sink, in runc's format, so it
        // writes stderr itself rather than through the binary's logger.
        None => {
            let _ = writeln!(std::io::stderr(), "{line}");
        }
    }
}
