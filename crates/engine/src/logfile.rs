//! Container logs in Docker's json-file format: one JSON object per line,
//! `{"log":"text\n","stream":"stdout","attrs":{...},"time":"RFC 3339
//! nanoseconds"}`, with size-based rotation (`container-json.log`, `.1`,
//! `.2`, ...), and the log drivers a container may ask for (`Options`,
//! from its `LogConfig`): `json-file`, `local` (the same files, with
//! dockerd's defaults for the local driver: 20 MB, 5 files) and `none`.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One log record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    pub log: String,
    pub stream: String,
    /// The extra attributes the log options ask for (`labels`, `env`, `tag`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attrs: BTreeMap<String, String>,
    pub time: String,
}

/// Appends records and rotates by size.
pub struct Writer {
    path: PathBuf,
    file: File,
    size: u64,
    /// 0: never rotate.
    max_size: u64,
    max_files: u32,
    attrs: BTreeMap<String, String>,
    /// Bytes of an unfinished line per stream (stdout, stderr).
    partial: [Vec<u8>; 2],
}

/// Docker splits lines longer than this into several records.
const MAX_LINE: usize = 16 * 1024;

impl Writer {
    pub fn open(path: &Path, max_size: u64, max_files: u32) -> std::io::Result<Writer> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(Writer {
            path: path.to_path_buf(),
            file,
            size,
            max_size,
            max_files: max_files.max(1),
            attrs: BTreeMap::new(),
            partial: [Vec::new(), Vec::new()],
        })
    }

    /// Every record written from now on carries `attrs`.
    pub fn with_attrs(mut self, attrs: BTreeMap<String, String>) -> Writer {
        self.attrs = attrs;
        self
    }

    /// Records output of a stream (1 stdout, 2 stderr), line by line.
    pub fn write(&mut self, stream: u8, data: &[u8]) -> std::io::Result<()> {
        let idx = usize::from(stream == 2);
        let mut buf = std::mem::take(&mut self.partial[idx]);
        buf.extend_from_slice(data);
        let mut start = 0;
        while let Some(pos) = buf[start..].iter().position(|b| *b == b'\n') {
            let end = start + pos + 1;
            self.record(stream, &buf[start..end])?;
            start = end;
        }
        while buf.len() - start >= MAX_LINE {
            self.record(stream, &buf[start..start + MAX_LINE])?;
            start += MAX_LINE;
        }
        self.partial[idx] = buf[start..].to_vec();
        Ok(())
    }

    /// Writes out unfinished lines (at exit).
    pub fn flush_partial(&mut self) -> std::io::Result<()> {
        for (idx, stream) in [(0usize, 1u8), (1, 2)] {
            let rest = std::mem::take(&mut self.partial[idx]);
            if !rest.is_empty() {
                self.record(stream, &rest)?;
            }
        }
        Ok(())
    }

    fn record(&mut self, stream: u8, line: &[u8]) -> std::io::Result<()> {
        let entry = Entry {
            log: String::from_utf8_lossy(line).into_owned(),
            stream: if stream == 2 { "stderr" } else { "stdout" }.into(),
            attrs: self.attrs.clone(),
            time: cais_runtime::state::rfc3339(std::time::SystemTime::now()),
        };
        let mut text = serde_json::to_vec(&entry).expect("entries serialize");
        text.push(b'\n');
        if self.max_size > 0 && self.size + text.len() as u64 > self.max_size && self.size > 0 {
            self.rotate()?;
        }
        self.file.write_all(&text)?;
        self.size += text.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        if self.max_files <= 1 {
            self.file.set_len(0)?;
            self.size = 0;
            return Ok(());
        }
        for n in (1..self.max_files - 1).rev() {
            let from = rotated(&self.path, n);
            if from.exists() {
                fs::rename(&from, rotated(&self.path, n + 1))?;
            }
        }
        fs::rename(&self.path, rotated(&self.path, 1))?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// Reads every record, oldest first (rotated files included).
pub fn read_all(path: &Path) -> std::io::Result<Vec<Entry>> {
    let mut files = rotated_files(path);
    files.push(path.to_path_buf());
    read_files(&files)
}

/// Records of the rotated files only, oldest first.
pub fn read_rotated(path: &Path) -> std::io::Result<Vec<Entry>> {
    read_files(&rotated_files(path))
}

fn rotated_files(path: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut n = 1;
    while rotated(path, n).exists() {
        files.push(rotated(path, n));
        n += 1;
    }
    files.reverse();
    files
}

/// Nanoseconds since the epoch of an RFC 3339 time with a fraction.
pub fn parse_time_nanos(t: &str) -> Option<i64> {
    let secs = cais_image::time::parse_rfc3339(t)?;
    let frac = t
        .split_once('.')
        .map(|(_, f)| f.trim_end_matches(|c: char| !c.is_ascii_digit()))
        .unwrap_or("");
    let digits: String = frac
        .chars()
        .take_while(char::is_ascii_digit)
        .take(9)
        .collect();
    let nanos = format!("{digits:0<9}").parse::<i64>().unwrap_or(0);
    Some(secs * 1_000_000_000 + nanos)
}

fn read_files(files: &[PathBuf]) -> std::io::Result<Vec<Entry>> {
    let mut out = Vec::new();
    for f in files {
        let Ok(file) = File::open(f) else { continue };
        for line in BufReader::new(file).lines() {
            let line = line?;
            if let Ok(e) = serde_json::from_str::<Entry>(&line) {
                out.push(e);
            }
        }
    }
    Ok(out)
}

/// Every record (rotated files first) and the end offset of the current
/// file, where a follower goes on reading (`read_from`).
pub fn read_with_offset(path: &Path) -> std::io::Result<(Vec<Entry>, u64)> {
    let mut all = read_rotated(path)?;
    let (current, end) = read_from(path, 0)?;
    all.extend(current);
    Ok((all, end))
}

/// Records of the current log file from `offset`; a shorter file than
/// `offset` was rotated, so it is read from the start.
pub fn read_from(path: &Path, offset: u64) -> std::io::Result<(Vec<Entry>, u64)> {
    let data = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e),
    };
    let start = if (data.len() as u64) < offset {
        0
    } else {
        offset as usize
    };
    let chunk = &data[start..];
    // Only whole lines: a record being written is read next time.
    let end = chunk
        .iter()
        .rposition(|b| *b == b'\n')
        .map(|p| p + 1)
        .unwrap_or(0);
    let entries = chunk[..end]
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(|l| serde_json::from_slice(l).ok())
        .collect();
    Ok((entries, (start + end) as u64))
}

/// The log drivers a container may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    JsonFile,
    /// dockerd keeps these in a format of its own; here they are json-file
    /// records with the local driver's defaults, read back the same way.
    Local,
    /// Nothing is kept; `logs` is refused.
    None,
}

/// A container's logging, as its `LogConfig` asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub driver: Driver,
    /// Rotate once a file would grow past this; 0: never.
    pub max_size: u64,
    /// Files kept, the current one included.
    pub max_files: u32,
}

/// What a container's log lines may name (`labels`, `env`, `tag`).
pub struct Subject<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub image_id: &'a str,
    pub image_name: &'a str,
    pub command: &'a str,
    pub hostname: &'a str,
    pub labels: &'a BTreeMap<String, String>,
    /// `KEY=VALUE` entries.
    pub env: &'a [String],
}

const JSON_FILE_OPTS: [&str; 8] = [
    "max-file",
    "max-size",
    "compress",
    "labels",
    "labels-regex",
    "env",
    "env-regex",
    "tag",
];
const LOCAL_OPTS: [&str; 3] = ["max-file", "max-size", "compress"];

impl Options {
    /// Checks a `LogConfig` (type "" is json-file) as dockerd does at
    /// create and at start, in dockerd's words; every value is checked
    /// here, so a container that was created starts.
    pub fn parse(kind: &str, config: &BTreeMap<String, String>) -> Result<Options, String> {
        let driver = match kind {
            "" | "json-file" => Driver::JsonFile,
            "local" => Driver::Local,
            "none" => {
                return Ok(Options {
                    driver: Driver::None,
                    max_size: 0,
                    max_files: 1,
                })
            }
            other => {
                return Err(format!(
                    "logger: no log driver named '{other}' is registered"
                ))
            }
        };
        let mode = config.get("mode").map(String::as_str).unwrap_or("");
        if !matches!(mode, "" | "blocking" | "non-blocking") {
            return Err(format!("logger: logging mode not supported: {mode}"));
        }
        if let Some(size) = config.get("max-buffer-size") {
            if mode != "non-blocking" {
                return Err(
                    "logger: max-buffer-size option is only supported with 'mode=non-blocking'"
                        .into(),
                );
            }
            parse_human_size(size, 1024)
                .map_err(|e| format!("error parsing option max-buffer-size: {e}"))?;
        }
        let own = |k: &String| k != "mode" && k != "max-buffer-size";
        let known: &[&str] = if driver == Driver::Local {
            &LOCAL_OPTS
        } else {
            &JSON_FILE_OPTS
        };
        if let Some(k) = config
            .keys()
            .filter(|k| own(k))
            .find(|k| !known.contains(&k.as_str()))
        {
            return Err(if driver == Driver::Local {
                format!("unknown log opt '{k}' for log driver local")
            } else {
                format!("unknown log opt '{k}' for json-file log driver")
            });
        }
        let max_size = match config.get("max-size") {
            Some(v) => {
                let n = parse_human_size(v, 1000).map_err(|e| {
                    if driver == Driver::Local {
                        format!("invalid value for max-size: {v}: {e}")
                    } else {
                        e
                    }
                })?;
                if n == 0 {
                    return Err("max-size must be a positive number".into());
                }
                n
            }
            // The local driver's defaults.
            None if driver == Driver::Local => 20 * 1024 * 1024,
            None => 0,
        };
        let max_files = match config.get("max-file") {
            Some(v) => {
                let n: i64 = v.trim().parse().map_err(|_| {
                    let e = format!("strconv.Atoi: parsing {v:?}: invalid syntax");
                    if driver == Driver::Local {
                        format!("invalid value for max-file: {v}: {e}")
                    } else {
                        e
                    }
                })?;
                if n < 1 {
                    return Err("max-file cannot be less than 1".into());
                }
                u32::try_from(n).map_err(|_| format!("max-file {n} is too large"))?
            }
            None if driver == Driver::Local => 5,
            None => 1,
        };
        if let Some(v) = config.get("compress") {
            let compress = parse_bool(v)
                .ok_or_else(|| format!("strconv.ParseBool: parsing {v:?}: invalid syntax"))?;
            // The local driver's compression is a detail of its format;
            // json-file's is files a user reads, which are not written.
            if compress && driver == Driver::JsonFile {
                if max_files < 2 || max_size == 0 {
                    return Err("compress cannot be true when max-file is less than 2 or max-size is not set".into());
                }
                return Err("compress=true is not supported: cais keeps rotated json-file logs uncompressed".into());
            }
        }
        for key in ["labels-regex", "env-regex"] {
            if let Some(re) = config.get(key) {
                regex::Regex::new(re).map_err(|e| format!("invalid {key} {re:?}: {e}"))?;
            }
        }
        if let Some(tag) = config.get("tag") {
            expand_tag(tag, None)?;
        }
        Ok(Options {
            driver,
            max_size,
            max_files,
        })
    }

    /// The attributes every log line of the container carries: the labels
    /// and environment variables the options name (or match), and the tag.
    pub fn attrs(
        config: &BTreeMap<String, String>,
        subject: &Subject<'_>,
    ) -> Result<BTreeMap<String, String>, String> {
        let mut out = BTreeMap::new();
        let names = |key: &str| -> Vec<String> {
            config
                .get(key)
                .map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
        let regex = |key: &str| -> Result<Option<regex::Regex>, String> {
            config
                .get(key)
                .map(|re| regex::Regex::new(re).map_err(|e| format!("invalid {key} {re:?}: {e}")))
                .transpose()
        };
        let labels_re = regex("labels-regex")?;
        for (k, v) in subject.labels {
            if names("labels").contains(k) || labels_re.as_ref().is_some_and(|r| r.is_match(k)) {
                out.insert(k.clone(), v.clone());
            }
        }
        let env_re = regex("env-regex")?;
        for kv in subject.env {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            if names("env").iter().any(|n| n == k) || env_re.as_ref().is_some_and(|r| r.is_match(k))
            {
                out.insert(k.to_string(), v.to_string());
            }
        }
        if let Some(tag) = config.get("tag") {
            out.insert("tag".into(), expand_tag(tag, Some(subject))?);
        }
        Ok(out)
    }
}

/// A log tag: text with `{{.ID}}`, `{{.FullID}}`, `{{.Name}}`,
/// `{{.ImageID}}`, `{{.ImageFullID}}`, `{{.ImageName}}`, `{{.Command}}`,
/// `{{.Hostname}}` and `{{.DaemonName}}`. Without a subject, only checks.
fn expand_tag(tag: &str, subject: Option<&Subject<'_>>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = tag;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| format!("template: log-tag: unclosed action in {tag:?}"))?;
        let field = after[..end].trim();
        let short = |s: &str| s.chars().take(12).collect::<String>();
        let value = match (field, subject) {
            (
                ".ID" | ".FullID" | ".Name" | ".ImageID" | ".ImageFullID" | ".ImageName"
                | ".Command" | ".Hostname" | ".DaemonName",
                None,
            ) => String::new(),
            (".ID", Some(s)) => short(s.id),
            (".FullID", Some(s)) => s.id.to_string(),
            (".Name", Some(s)) => s.name.trim_start_matches('/').to_string(),
            (".ImageID", Some(s)) => short(s.image_id.trim_start_matches("sha256:")),
            (".ImageFullID", Some(s)) => s.image_id.to_string(),
            (".ImageName", Some(s)) => s.image_name.to_string(),
            (".Command", Some(s)) => s.command.to_string(),
            (".Hostname", Some(s)) => s.hostname.to_string(),
            (".DaemonName", Some(_)) => "cais".to_string(),
            (other, _) => {
                return Err(format!(
                    "template: log-tag: {other:?} is not a field a log tag can use"
                ))
            }
        };
        out.push_str(&value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Go's `strconv.ParseBool`.
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// A size as docker's command line writes it: a number (fractions
/// allowed), an optional k, m, g, t or p (any case), an optional `i` and
/// `b`; `unit` 1000 for SI sizes (log `max-size`), 1024 for memory sizes.
pub fn parse_human_size(s: &str, unit: u64) -> Result<u64, String> {
    let invalid = || format!("invalid size: '{s}'");
    let t = s.trim();
    let digits_end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, suffix) = t.split_at(digits_end);
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') {
        return Err(invalid());
    }
    let value: f64 = num.parse().map_err(|_| invalid())?;
    let suffix = suffix.trim_start_matches(' ').to_ascii_lowercase();
    let mut chars = suffix.chars().peekable();
    let power = match chars.peek() {
        Some('k') => 1,
        Some('m') => 2,
        Some('g') => 3,
        Some('t') => 4,
        Some('p') => 5,
        _ => 0,
    };
    if power > 0 {
        chars.next();
    }
    let rest: String = chars.collect();
    if !matches!(rest.as_str(), "" | "b" | "i" | "ib") {
        return Err(invalid());
    }
    Ok((value * (unit as f64).powi(power)) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_joined_and_rotated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c-json.log");
        let mut w = Writer::open(&path, 400, 3).expect("open");
        w.write(1, b"hel").expect("write");
        w.write(1, b"lo\nwor").expect("write");
        w.write(2, b"oops\n").expect("write");
        w.write(1, b"ld\n").expect("write");
        let got: Vec<(String, String)> = read_all(&path)
            .expect("read")
            .into_iter()
            .map(|e| (e.stream, e.log))
            .collect();
        assert_eq!(
            got,
            [
                ("stdout".to_string(), "hello\n".to_string()),
                ("stderr".to_string(), "oops\n".to_string()),
                ("stdout".to_string(), "world\n".to_string())
            ]
        );
        for i in 0..50 {
            w.write(1, format!("line {i}\n").as_bytes()).expect("write");
        }
        assert!(rotated(&path, 1).exists() && rotated(&path, 2).exists());
        assert!(
            !rotated(&path, 3).exists(),
            "max-file 3 keeps two rotated files"
        );
        let all = read_all(&path).expect("read");
        assert_eq!(all.last().map(|e| e.log.as_str()), Some("line 49\n"));
        assert!(fs::metadata(&path).expect("meta").len() <= 400);
    }

    #[test]
    fn long_lines_are_split_and_partials_flushed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log");
        let mut w = Writer::open(&path, 0, 1).expect("open");
        w.write(1, &vec![b'a'; MAX_LINE + 10]).expect("write");
        w.write(1, b"tail-without-newline").expect("write");
        w.flush_partial().expect("flush");
        let all = read_all(&path).expect("read");
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].log.len(), MAX_LINE);
        assert!(all[1].log.ends_with("tail-without-newline"));
    }

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn log_configs_are_checked_in_dockerds_words() {
        let ok = Options::parse("", &opts(&[("max-size", "10m"), ("max-file", "3")])).expect("ok");
        assert_eq!(
            ok,
            Options {
                driver: Driver::JsonFile,
                max_size: 10_000_000,
                max_files: 3
            }
        );
        let local = Options::parse("local", &BTreeMap::new()).expect("local");
        assert_eq!((local.max_size, local.max_files), (20 << 20, 5));
        assert_eq!(
            Options::parse("none", &opts(&[("anything", "x")]))
                .expect("none takes anything")
                .driver,
            Driver::None
        );
        for (kind, config, message) in [
            (
                "nosuch",
                &[][..],
                "logger: no log driver named 'nosuch' is registered",
            ),
            (
                "json-file",
                &[("foo", "1")][..],
                "unknown log opt 'foo' for json-file log driver",
            ),
            (
                "local",
                &[("tag", "x")][..],
                "unknown log opt 'tag' for log driver local",
            ),
            (
                "json-file",
                &[("max-size", "ten")][..],
                "invalid size: 'ten'",
            ),
            (
                "json-file",
                &[("max-size", "0")][..],
                "max-size must be a positive number",
            ),
            (
                "json-file",
                &[("max-file", "0")][..],
                "max-file cannot be less than 1",
            ),
            (
                "json-file",
                &[("max-file", "x")][..],
                "strconv.Atoi: parsing \"x\": invalid syntax",
            ),
            (
                "local",
                &[("max-file", "x")][..],
                "invalid value for max-file: x: strconv.Atoi: parsing \"x\": invalid syntax",
            ),
            (
                "json-file",
                &[("mode", "fast")][..],
                "logger: logging mode not supported: fast",
            ),
            (
                "json-file",
                &[("max-buffer-size", "4m")][..],
                "logger: max-buffer-size option is only supported with 'mode=non-blocking'",
            ),
            (
                "json-file",
                &[("compress", "true")][..],
                "compress cannot be true when max-file is less than 2 or max-size is not set",
            ),
            (
                "json-file",
                &[("tag", "{{.Nope}}")][..],
                "template: log-tag: \".Nope\" is not a field a log tag can use",
            ),
        ] {
            assert_eq!(
                Options::parse(kind, &opts(config)).expect_err(message),
                message,
                "{kind} {config:?}"
            );
        }
        assert!(Options::parse(
            "json-file",
            &opts(&[("mode", "non-blocking"), ("max-buffer-size", "4m")])
        )
        .is_ok());
    }

    #[test]
    fn attributes_name_labels_env_and_the_tag() {
        let labels = opts(&[("app", "web"), ("tier", "front"), ("other", "x")]);
        let env = ["A=1".to_string(), "B=2".to_string(), "NOVALUE".to_string()];
        let subject = Subject {
            id: "0123456789abcdef0123",
            name: "/web",
            image_id: "sha256:fedcba9876543210",
            image_name: "busybox",
            command: "sh",
            hostname: "h",
            labels: &labels,
            env: &env,
        };
        let attrs = Options::attrs(
            &opts(&[
                ("labels", "app,missing"),
                ("labels-regex", "^ti"),
                ("env", "A"),
                ("tag", "{{.Name}}/{{.ID}}@{{.ImageID}}"),
            ]),
            &subject,
        )
        .expect("attrs");
        assert_eq!(
            attrs,
            opts(&[
                ("app", "web"),
                ("tier", "front"),
                ("A", "1"),
                ("tag", "web/0123456789ab@fedcba987654")
            ])
        );
    }

    #[test]
    fn human_sizes_parse_as_docker_reads_them() {
        assert_eq!(parse_human_size("10m", 1000), Ok(10_000_000));
        assert_eq!(parse_human_size("1.5k", 1000), Ok(1500));
        assert_eq!(parse_human_size("2KiB", 1024), Ok(2048));
        assert_eq!(parse_human_size("100", 1000), Ok(100));
        for bad in ["", "m", "1x", ".5", "1mm"] {
            assert!(parse_human_size(bad, 1000).is_err(), "{bad:?}");
        }
    }
}
