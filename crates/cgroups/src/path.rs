//! Turning OCI `linux.cgroupsPath` into a path below each hierarchy root.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// Resolves `cgroups_path` to a relative path below every hierarchy root.
///
/// * `/cais/abc` and `cais/abc` both resolve to `cais/abc`: relative paths
///   are taken relative to each hierarchy's root.
/// * `slice:prefix:name` is the systemd notation the runtime spec allows; it
///   maps to where systemd would put that scope in cgroupfs:
///   `system.slice:cais:abc` is `system.slice/cais-abc.scope`, and a nested
///   slice `a-b.slice` expands to `a.slice/a-b.slice` (systemd.slice(5)).
///   An empty slice means `system.slice`, `-.slice` is the root slice, and a
///   name that is itself a `.slice` is used as the unit name verbatim.
pub(crate) fn resolve(cgroups_path: &str) -> Result<PathBuf> {
    let invalid = |reason: &str| Error::InvalidPath {
        path: cgroups_path.to_owned(),
        reason: reason.to_owned(),
    };
    if cgroups_path.is_empty() {
        return Err(invalid("empty"));
    }
    if !cgroups_path.starts_with('/') {
        let parts: Vec<&str> = cgroups_path.split(':').collect();
        if parts.len() == 3 {
            return systemd(parts[0], parts[1], parts[2]).map_err(|r| invalid(&r));
        }
    }
    let mut out = PathBuf::new();
    for comp in cgroups_path.split('/') {
        match comp {
            "" | "." => {}
            ".." => return Err(invalid("\"..\" is not allowed")),
            c => out.push(c),
        }
    }
    if out.as_os_str().is_empty() {
        return Err(invalid("a container cannot use the root cgroup"));
    }
    Ok(out)
}

fn systemd(slice: &str, prefix: &str, name: &str) -> std::result::Result<PathBuf, String> {
    if name.is_empty() {
        return Err("systemd unit name is empty".into());
    }
    for part in [slice, prefix, name] {
        if part.contains('/') {
            return Err(format!("{part:?} contains \"/\""));
        }
    }
    let slice = if slice.is_empty() {
        "system.slice"
    } else {
        slice
    };
    let mut path = expand_slice(slice)?;
    if name.ends_with(".slice") {
        path.push(name);
    } else if prefix.is_empty() {
        path.push(format!("{name}.scope"));
    } else {
        path.push(format!("{prefix}-{name}.scope"));
    }
    Ok(path)
}

/// `a-b-c.slice` -> `a.slice/a-b.slice/a-b-c.slice`; `-.slice` -> root.
fn expand_slice(slice: &str) -> std::result::Result<PathBuf, String> {
    if slice == "-.slice" {
        return Ok(PathBuf::new());
    }
    let Some(base) = slice.strip_suffix(".slice") else {
        return Err(format!("slice {slice:?} does not end in \".slice\""));
    };
    if base.is_empty() || base.starts_with('-') || base.ends_with('-') || base.contains("--") {
        return Err(format!("invalid slice name {slice:?}"));
    }
    let mut path = PathBuf::new();
    for (i, _) in base.match_indices('-') {
        path.push(format!("{}.slice", &base[..i]));
    }
    path.push(slice);
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_and_relative() {
        for (input, want) in [
            ("/cais/abc", "cais/abc"),
            ("cais/abc", "cais/abc"),
            ("//cais/./abc/", "cais/abc"),
            ("/abc", "abc"),
            // A path with colons but starting with "/" is a plain path.
            ("/a:b:c", "a:b:c"),
            // Two parts is not the systemd notation.
            ("a:b", "a:b"),
        ] {
            assert_eq!(resolve(input).expect(input), PathBuf::from(want), "{input}");
        }
    }

    #[test]
    fn systemd_notation() {
        for (input, want) in [
            ("system.slice:cais:abc", "system.slice/cais-abc.scope"),
            ("a-b.slice:cais:abc", "a.slice/a-b.slice/cais-abc.scope"),
            ("a-b-c.slice:p:n", "a.slice/a-b.slice/a-b-c.slice/p-n.scope"),
            (":cais:abc", "system.slice/cais-abc.scope"),
            ("-.slice:cais:abc", "cais-abc.scope"),
            ("user.slice::abc", "user.slice/abc.scope"),
            ("machine.slice:x:sub.slice", "machine.slice/sub.slice"),
        ] {
            assert_eq!(resolve(input).expect(input), PathBuf::from(want), "{input}");
        }
    }

    #[test]
    fn rejected() {
        for input in [
            "",
            "/",
            "//",
            "/cais/../etc",
            "..",
            "system:cais:abc",
            "a--b.slice:cais:abc",
            "-a.slice:cais:abc",
            "a-.slice:cais:abc",
            ".slice:cais:abc",
            "system.slice:cais:",
            "system.slice:ca/is:abc",
        ] {
            assert!(
                matches!(resolve(input), Err(Error::InvalidPath { .. })),
                "{input:?} should be rejected, got {:?}",
                resolve(input)
            );
        }
    }
}
