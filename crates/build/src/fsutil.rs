//! Small file-system and parsing helpers of the executor: users from a
//! root's passwd/group files, Go-style durations, octal modes.

use std::path::Path;

use crate::{Error, Result};

/// Resolves `user` (`name`, `uid`, `uid:gid`, `name:group`) against the
/// `/etc/passwd` and `/etc/group` of `rootfs`, the way docker does for
/// `USER` and `COPY --chown` (the runtime crate's rules, shared with the
/// engine). Returns (uid, gid).
pub(crate) fn resolve_user(rootfs: &Path, user: &str) -> Result<(u32, u32)> {
    let (uid, gid, _) = cais_runtime::bundle::resolve_user(rootfs, user).map_err(Error::invalid)?;
    Ok((uid, gid))
}

/// Creates `path` (inside `root`, already resolved) and its missing
/// parents as root-owned 0755 directories, as docker does, whatever this
/// process's umask is.
pub(crate) fn mkdir_p(root: &Path, path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let rel = path.strip_prefix(root).unwrap_or(path);
    let mut cur = root.to_path_buf();
    for c in rel.components() {
        cur.push(c);
        match std::fs::symlink_metadata(&cur) {
            Ok(_) => continue,
            Err(_) => {
                std::fs::create_dir(&cur).map_err(crate::io_err("create directory", &cur))?;
                std::fs::set_permissions(&cur, std::fs::Permissions::from_mode(0o755))
                    .map_err(crate::io_err("chmod", &cur))?;
            }
        }
    }
    Ok(())
}

/// A Go `time.ParseDuration` subset (`1h2m3.5s`, `500ms`, `10us`, `5ns`)
/// as HEALTHCHECK flags take it, in nanoseconds.
pub(crate) fn parse_duration(s: &str) -> Result<i64> {
    let bad = || Error::invalid(format!("time: invalid duration {s:?}"));
    if s == "0" {
        return Ok(0);
    }
    let mut rest = s;
    let mut total: f64 = 0.0;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if n == 0 {
            return Err(bad());
        }
        let value: f64 = rest[..n].parse().map_err(|_| bad())?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..u] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += value * unit;
        rest = &rest[u..];
    }
    Ok(total as i64)
}

/// `--chmod=0755` (octal).
pub(crate) fn parse_mode(s: &str) -> Result<u32> {
    u32::from_str_radix(s, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| Error::invalid(format!("invalid chmod mode {s:?}: expected octal")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_resolve_like_docker() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("etc")).expect("etc");
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nweb:x:33:44::/:/bin/false\n",
        )
        .expect("passwd");
        std::fs::write(dir.path().join("etc/group"), "root:x:0:\nwww:x:44:\n").expect("group");
        let r = |u| resolve_user(dir.path(), u);
        assert_eq!(r("").expect("empty"), (0, 0));
        assert_eq!(r("web").expect("web"), (33, 44));
        assert_eq!(r("web:root").expect("web:root"), (33, 0));
        assert_eq!(r("33").expect("uid"), (33, 44));
        assert_eq!(r("1000:1000").expect("numeric"), (1000, 1000));
        assert_eq!(r("1000:www").expect("group name"), (1000, 44));
        assert!(r("nobody").is_err());
        assert!(r("web:nogroup").is_err());
    }

    #[test]
    fn durations_and_modes() {
        assert_eq!(parse_duration("30s").expect("30s"), 30_000_000_000);
        assert_eq!(parse_duration("1m30s").expect("1m30s"), 90_000_000_000);
        assert_eq!(parse_duration("500ms").expect("ms"), 500_000_000);
        assert_eq!(parse_duration("1.5h").expect("h"), 5_400_000_000_000);
        for bad in ["", "s", "10", "1x", "-1s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_mode("755").expect("mode"), 0o755);
        assert!(parse_mode("9").is_err() && parse_mode("17777").is_err());
    }
}
