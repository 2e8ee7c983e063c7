//! Container logs in Docker's json-file format: one JSON object per line,
//! `{"log":"text\n","stream":"stdout","time":"RFC 3339 nanoseconds"}`, with
//! size-based rotation (`container-json.log`, `.1`, `.2`, ...).

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One log record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    pub log: String,
    pub stream: String,
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
            partial: [Vec::new(), Vec::new()],
        })
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
}
