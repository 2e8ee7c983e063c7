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
    let line = format_line(level, msg, cfg.is_some_and(|c| c.json));
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

/// One log line: runc's JSON (`level`, `msg`, `time`), which containerd and
/// podman parse, or `level: msg` for people.
fn format_line(level: &str, msg: &str, json: bool) -> String {
    if json {
        let now = crate::state::rfc3339(std::time::SystemTime::now());
        serde_json::json!({"level": level, "msg": msg, "time": now}).to_string()
    } else {
        format!("{level}: {msg}")
    }
}

#[cfg(test)]
mod tests {
    use super::format_line;

    #[test]
    fn json_lines_have_runcs_fields() {
        let line = format_line("error", "container \"x\" does not exist", true);
        let v: serde_json::Value = serde_json::from_str(&line).expect("one JSON object");
        assert_eq!(v["level"], "error");
        assert_eq!(v["msg"], "container \"x\" does not exist");
        assert!(v["time"].as_str().is_some_and(|t| t.ends_with('Z')));
        assert_eq!(v.as_object().map(|o| o.len()), Some(3));
    }

    #[test]
    fn text_lines_are_level_then_message() {
        assert_eq!(format_line("warning", "w", false), "warning: w");
    }
}
