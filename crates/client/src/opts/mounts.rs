//! Mounts: `--mount`, `-v/--volume` and `--tmpfs`.

use cais_api::{Mount, TmpfsOptions};

use super::{bytes, refuse, Result};

/// One `--mount` value: comma-separated `key=value` fields. `type` is
/// `volume` (the default), `bind` or `tmpfs`; `source`/`src`,
/// `target`/`destination`/`dst`, `readonly`/`ro` (`true`, `false`, `1`,
/// `0`, or bare), `tmpfs-size` (a byte size) and `tmpfs-mode` (octal) for
/// tmpfs. Options the engine does not apply (propagation, nocopy, volume
/// drivers...) are refused by name rather than dropped.
pub fn mount(spec: &str) -> Result<Mount> {
    let mut m = Mount {
        kind: "volume".into(),
        ..Mount::default()
    };
    let mut tmpfs = None::<TmpfsOptions>;
    for field in spec.split(',') {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v)),
            None => (field.trim().to_ascii_lowercase(), None),
        };
        let value_of = |what: &str| -> Result<&str> {
            match value {
                Some(v) => Ok(v),
                None => refuse!("invalid field '{field}' must be a key=value pair ({what})"),
            }
        };
        match key.as_str() {
            "type" => {
                m.kind = match value_of("type")? {
                    t @ ("volume" | "bind" | "tmpfs") => t.to_string(),
                    t => refuse!("invalid mount type '{t}' (volume, bind or tmpfs)"),
                }
            }
            "source" | "src" => m.source = value_of("source")?.to_string(),
            "target" | "destination" | "dst" => m.target = value_of("target")?.to_string(),
            "readonly" | "ro" => {
                m.read_only = match value {
                    None | Some("true" | "1") => true,
                    Some("false" | "0") => false,
                    Some(v) => refuse!("invalid value for {key}: '{v}' (true or false)"),
                }
            }
            "tmpfs-size" => {
                tmpfs.get_or_insert_with(Default::default).size_bytes =
                    bytes(value_of("tmpfs-size")?)?
            }
            "tmpfs-mode" => {
                let v = value_of("tmpfs-mode")?;
                tmpfs.get_or_insert_with(Default::default).mode = match u32::from_str_radix(v, 8) {
                    Ok(mode) if mode <= 0o7777 => mode,
                    _ => refuse!("invalid tmpfs-mode '{v}' (an octal mode such as 1777)"),
                }
            }
            "" => refuse!("invalid --mount '{spec}': empty field"),
            "bind-propagation" | "bind-nonrecursive" | "bind-recursive" | "volume-nocopy"
            | "volume-driver" | "volume-label" | "volume-opt" | "volume-subpath"
            | "consistency" | "tmpfs-options" => {
                refuse!("--mount option '{key}' is not supported by cais")
            }
            _ => refuse!("unexpected key '{key}' in '{field}'"),
        }
    }
    if m.target.is_empty() {
        refuse!("invalid --mount '{spec}': target is required");
    }
    if !m.target.starts_with('/') {
        refuse!(
            "invalid mount target '{}': it must be an absolute path",
            m.target
        );
    }
    match m.kind.as_str() {
        "bind" if m.source.is_empty() => {
            refuse!("invalid --mount '{spec}': source is required for a bind mount")
        }
        "bind" if !m.source.starts_with('/') => {
            refuse!(
                "invalid mount source '{}': a bind source must be an absolute path",
                m.source
            )
        }
        "tmpfs" if !m.source.is_empty() => {
            refuse!("invalid --mount '{spec}': a tmpfs mount takes no source")
        }
        "volume" | "bind" if tmpfs.is_some() => {
            refuse!(
                "invalid --mount '{spec}': tmpfs options on a {} mount",
                m.kind
            )
        }
        _ => {}
    }
    m.tmpfs_options = tmpfs;
    Ok(m)
}

/// One `-v/--volume` value: `[SOURCE:]TARGET[:OPTIONS]`, where SOURCE is a
/// volume name or an absolute host path, TARGET an absolute path, OPTIONS a
/// comma list of `ro`/`rw` and propagation/SELinux words docker accepts.
/// Returned as the daemon takes it in `HostConfig.Binds` (unchanged), once
/// it is known to be well formed.
pub fn volume(spec: &str) -> Result<String> {
    let invalid = || super::Error(format!("invalid volume specification: '{spec}'"));
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, target, options) = match parts.as_slice() {
        [target] => ("", *target, ""),
        [a, b] if b.starts_with('/') => (*a, *b, ""),
        [target, options] => ("", *target, *options),
        [source, target, options] => (*source, *target, *options),
        _ => return Err(invalid()),
    };
    if !target.starts_with('/') || target.is_empty() {
        return Err(invalid());
    }
    if target == "/" {
        refuse!("invalid volume specification: '{spec}': the root of a container cannot be a mount target");
    }
    if !source.is_empty() && !source.starts_with('/') && !valid_volume_name(source) {
        refuse!(
            "invalid volume specification: '{spec}': '{source}' includes invalid characters for a local volume name"
        );
    }
    let mut modes = 0;
    for option in options.split(',').filter(|o| !o.is_empty()) {
        match option {
            "ro" | "rw" => modes += 1,
            "z" | "Z" | "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave"
            | "nocopy" | "consistent" | "cached" | "delegated" => {}
            _ => refuse!("invalid mode: {option}"),
        }
    }
    if modes > 1 {
        refuse!("invalid mode: {options}");
    }
    Ok(spec.to_string())
}

/// Docker's rule for local volume names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
fn valid_volume_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() >= 2
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// One `--tmpfs` value: `PATH[:OPTIONS]` (mount(8) options such as
/// `size=64m,mode=1777`), as `HostConfig.Tmpfs` takes it.
pub fn tmpfs(spec: &str) -> Result<(String, String)> {
    let (path, options) = spec.split_once(':').unwrap_or((spec, ""));
    if !path.starts_with('/') {
        refuse!("invalid tmpfs '{spec}': the path must be absolute");
    }
    if path == "/" {
        refuse!("invalid tmpfs '{spec}': the root of a container cannot be a mount target");
    }
    for option in options.split(',').filter(|o| !o.is_empty()) {
        if let Some(size) = option.strip_prefix("size=") {
            // A percentage of memory is mount(8)'s own syntax.
            if !size.ends_with('%') {
                bytes(size)?;
            }
        }
        if let Some(mode) = option.strip_prefix("mode=") {
            if u32::from_str_radix(mode, 8).map_or(true, |m| m > 0o7777) {
                refuse!("invalid tmpfs '{spec}': mode '{mode}' is not an octal mode");
            }
        }
    }
    Ok((path.to_string(), options.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_parse_like_docker() {
        let m = mount("type=bind,source=/srv,target=/data,readonly").expect("bind");
        assert_eq!(
            (
                m.kind.as_str(),
                m.source.as_str(),
                m.target.as_str(),
                m.read_only
            ),
            ("bind", "/srv", "/data", true)
        );
        let m = mount("src=cache,dst=/cache").expect("volume by default");
        assert_eq!((m.kind.as_str(), m.source.as_str()), ("volume", "cache"));
        assert!(!m.read_only);
        let m = mount("target=/anon").expect("anonymous volume");
        assert!(m.source.is_empty());
        let m = mount("type=tmpfs,destination=/run,tmpfs-size=64m,tmpfs-mode=1777").expect("tmpfs");
        assert_eq!(
            m.tmpfs_options,
            Some(TmpfsOptions {
                size_bytes: 64 << 20,
                mode: 0o1777,
                ..Default::default()
            })
        );
        assert!(
            !mount("type=volume,target=/x,ro=false")
                .expect("ro=false")
                .read_only
        );
        assert!(
            mount("type=volume,target=/x,readonly=1")
                .expect("ro=1")
                .read_only
        );
    }

    #[test]
    fn bad_mounts_are_refused_with_a_reason() {
        for (spec, reason) in [
            ("", "empty field"),
            ("source=/x", "target is required"),
            ("type=nfs,target=/x", "invalid mount type 'nfs'"),
            ("type,target=/x", "must be a key=value pair"),
            ("target", "must be a key=value pair"),
            ("target=data", "must be an absolute path"),
            ("type=bind,target=/x", "source is required for a bind mount"),
            (
                "type=bind,source=rel,target=/x",
                "a bind source must be an absolute path",
            ),
            ("type=tmpfs,source=x,target=/x", "takes no source"),
            ("target=/x,tmpfs-size=1m", "tmpfs options on a volume mount"),
            ("type=tmpfs,target=/x,tmpfs-size=big", "invalid size"),
            ("type=tmpfs,target=/x,tmpfs-mode=999", "invalid tmpfs-mode"),
            (
                "type=tmpfs,target=/x,tmpfs-mode=77777",
                "invalid tmpfs-mode",
            ),
            ("target=/x,ro=maybe", "invalid value for ro"),
            ("target=/x,colour=blue", "unexpected key 'colour'"),
            ("target=/x,,ro", "empty field"),
            (
                "type=bind,source=/a,target=/x,bind-propagation=rshared",
                "not supported",
            ),
            ("target=/x,volume-nocopy", "not supported"),
        ] {
            let e = mount(spec).expect_err(spec);
            assert!(e.0.contains(reason), "{spec:?}: {e} lacks {reason:?}");
        }
    }

    #[test]
    fn volumes_parse_like_docker() {
        for spec in [
            "/data",
            "cache:/data",
            "/srv:/data",
            "/srv:/data:ro",
            "cache:/data:rw",
            "/srv:/data:ro,z",
            "/data:ro",
            "my.vol_1:/data:nocopy",
            "/srv:/data:rshared",
        ] {
            assert_eq!(volume(spec).expect(spec), spec);
        }
    }

    #[test]
    fn bad_volumes_are_refused() {
        for (spec, reason) in [
            ("", "invalid volume specification: ''"),
            ("data", "invalid volume specification: 'data'"),
            ("cache:data", "invalid volume specification"),
            ("a:b:c:d", "invalid volume specification"),
            ("cache:/", "cannot be a mount target"),
            ("bad name:/data", "invalid characters"),
            ("-x:/data", "invalid characters"),
            ("/srv:/data:rx", "invalid mode: rx"),
            ("/srv:/data:ro,rw", "invalid mode: ro,rw"),
        ] {
            let e = volume(spec).expect_err(spec);
            assert!(e.0.contains(reason), "{spec:?}: {e} lacks {reason:?}");
        }
    }

    #[test]
    fn tmpfs_specs_are_checked() {
        assert_eq!(tmpfs("/run").expect("bare"), ("/run".into(), String::new()));
        assert_eq!(
            tmpfs("/run:size=64m,mode=1777,noexec").expect("options"),
            ("/run".into(), "size=64m,mode=1777,noexec".into())
        );
        assert!(tmpfs("/run:size=50%").is_ok());
        for (spec, reason) in [
            ("run", "must be absolute"),
            ("", "must be absolute"),
            ("/", "cannot be a mount target"),
            ("/run:size=lots", "invalid size"),
            ("/run:mode=rwx", "not an octal mode"),
        ] {
            let e = tmpfs(spec).expect_err(spec);
            assert!(e.0.contains(reason), "{spec:?}: {e} lacks {reason:?}");
        }
    }
}
