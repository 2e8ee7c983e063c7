//! Small helpers for cgroupfs control files.
//!
//! Control files are written with a single `write(2)` and are never created:
//! a missing file means the kernel (or the fake hierarchy in a test) does not
//! offer that knob, which must surface as an error instead of silently
//! producing a regular file.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use crate::error::{Error, Result};

#[cfg(test)]
thread_local! {
    /// Every write attempted by this thread, in order, so tests can check
    /// ordering and repeated writes to one file, which a plain file in a
    /// temporary directory cannot show.
    pub(crate) static WRITES: std::cell::RefCell<Vec<(std::path::PathBuf, String)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

pub(crate) fn write(dir: &Path, file: &str, value: &str) -> Result<()> {
    let path = dir.join(file);
    let err = |source: io::Error| Error::Write {
        path: path.clone(),
        value: value.to_owned(),
        source,
    };
    #[cfg(test)]
    WRITES.with(|w| w.borrow_mut().push((path.clone(), value.to_owned())));
    let mut f = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .map_err(err)?;
    f.write_all(value.as_bytes()).map_err(err)
}

pub(crate) fn exists(dir: &Path, file: &str) -> bool {
    dir.join(file).exists()
}

pub(crate) fn read(dir: &Path, file: &str) -> Result<String> {
    let path = dir.join(file);
    fs::read_to_string(&path).map_err(|source| Error::Read { path, source })
}

/// Like [`read`], but a missing file is `None`.
pub(crate) fn read_opt(dir: &Path, file: &str) -> Result<Option<String>> {
    let path = dir.join(file);
    match fs::read_to_string(&path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Read { path, source }),
    }
}

/// Parses a single-number file; "max" (cgroup v2 for "no limit") is `u64::MAX`.
pub(crate) fn parse_u64(dir: &Path, file: &str, text: &str) -> Result<u64> {
    let t = text.trim();
    if t == "max" {
        return Ok(u64::MAX);
    }
    t.parse().map_err(|_| Error::Parse {
        path: dir.join(file),
        reason: format!("expected a number, got {t:?}"),
    })
}

/// Reads a single-number file; a missing file reads as 0 (stats are best effort).
pub(crate) fn read_u64_or_zero(dir: &Path, file: &str) -> Result<u64> {
    match read_opt(dir, file)? {
        Some(t) => parse_u64(dir, file, &t),
        None => Ok(0),
    }
}

/// Parses "key value" lines (memory.stat, cpu.stat, memory.events, ...).
pub(crate) fn parse_flat_keyed(text: &str) -> impl Iterator<Item = (&str, u64)> {
    text.lines().filter_map(|line| {
        let mut it = line.split_whitespace();
        let key = it.next()?;
        let value = it.next()?;
        if it.next().is_some() {
            return None;
        }
        let value = if value == "max" {
            u64::MAX
        } else {
            value.parse().ok()?
        };
        Some((key, value))
    })
}

/// Looks up one key of a flat-keyed file; a missing file or key is `None`.
pub(crate) fn read_keyed(dir: &Path, file: &str, key: &str) -> Result<Option<u64>> {
    Ok(read_opt(dir, file)?.and_then(|t| {
        parse_flat_keyed(&t)
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }))
}
