//! `RUN`'s flags as BuildKit's Dockerfile frontend defines them
//! (Dockerfile reference, "RUN --mount", "RUN --network"): each `--mount`
//! value is a CSV record of `key=value` fields (Go's `encoding/csv`: a
//! field may be wrapped in double quotes, `""` inside is one quote), and
//! every value goes through [`super::expand`] with the variables in scope.
//! Pure: the executor turns the result into mounts.

/// What a `--mount` brings into the `RUN` container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountType {
    /// Files of the context, a stage or an image (the default type).
    Bind,
    /// A directory kept between builds (package caches).
    Cache,
    /// An empty tmpfs.
    Tmpfs,
    /// A secret the build was given, as a file or an environment variable.
    Secret,
    /// An SSH agent socket: refused (no agent forwarding here).
    Ssh,
}

/// How concurrent builds share a cache mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sharing {
    /// Everyone uses the same directory at once.
    #[default]
    Shared,
    /// A builder that finds it in use gets a directory of its own.
    Private,
    /// One builder at a time; others wait.
    Locked,
}

/// One `--mount`, values expanded. Fields a type does not use stay at
/// their defaults (the parser refuses keys a type does not take).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub kind: MountType,
    /// Where it appears in the container; relative paths are relative to
    /// the working directory. Empty only for an env-only secret.
    pub target: String,
    /// Path inside `from` (or the context); `None` is its root.
    pub source: Option<String>,
    /// A stage (name or index) or an image; `None` is the build context
    /// for `bind`, an empty directory for `cache`.
    pub from: Option<String>,
    pub readonly: bool,
    /// Cache and secret id (defaults: the target; the target's base name).
    pub id: Option<String>,
    pub sharing: Sharing,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// tmpfs size in bytes.
    pub size: Option<u64>,
    /// Secret as this environment variable.
    pub env: Option<String>,
    /// A missing secret is an error (default: the mount is skipped).
    pub required: bool,
}

/// `RUN --network`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// The builder's default: here the host's network.
    #[default]
    Default,
    /// A network namespace of its own with only `lo`.
    None,
    Host,
}

/// All of a `RUN`'s flags.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RunFlags {
    pub mounts: Vec<Mount>,
    pub network: Network,
}

/// Splits one CSV record (Go's `encoding/csv` with `,`): quoted fields
/// may hold commas; a quote inside a quoted field is doubled.
fn csv_fields(record: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = record.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err(format!("unterminated quote in {record:?}")),
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                }
            }
            match chars.next() {
                None => {
                    out.push(field);
                    return Ok(out);
                }
                Some(',') => {}
                Some(c) => {
                    return Err(format!(
                        "extraneous {c:?} after a quoted field in {record:?}"
                    ))
                }
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        out.push(field);
                        return Ok(out);
                    }
                    Some(',') => break,
                    Some('"') => return Err(format!("bare quote in a field of {record:?}")),
                    Some(c) => field.push(c),
                }
            }
        }
        out.push(field);
    }
}

fn parse_bool(key: &str, value: Option<&str>) -> Result<bool, String> {
    match value {
        None | Some("true") | Some("1") => Ok(true),
        Some("false") | Some("0") => Ok(false),
        Some(v) => Err(format!("invalid value {v:?} for {key}: true or false")),
    }
}

fn parse_u32(key: &str, v: &str) -> Result<u32, String> {
    v.parse()
        .map_err(|_| format!("invalid value {v:?} for {key}: a number"))
}

/// Octal file mode (`0755`, `755`).
fn parse_mode(v: &str) -> Result<u32, String> {
    u32::from_str_radix(v, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("invalid mode {v:?}: an octal mode such as 0755"))
}

/// A size with an optional unit (`65536`, `64k`, `64m`, `1g`; binary
/// units, as docker's `RAMInBytes`).
fn parse_size(v: &str) -> Result<u64, String> {
    let lower = v.to_ascii_lowercase();
    let t = lower.trim_end_matches('b').trim_end_matches('i');
    let (num, mult) = match t.char_indices().last() {
        Some((i, 'k')) => (&t[..i], 1u64 << 10),
        Some((i, 'm')) => (&t[..i], 1 << 20),
        Some((i, 'g')) => (&t[..i], 1 << 30),
        Some((i, 't')) => (&t[..i], 1 << 40),
        _ => (t, 1),
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("invalid size {v:?}"))
}

/// Parses one `--mount` value; `expand` substitutes variables in values.
pub fn parse_mount(
    value: &str,
    expand: &dyn Fn(&str) -> Result<String, String>,
) -> Result<Mount, String> {
    let mut fields = Vec::new();
    for f in csv_fields(value)? {
        let f = f.trim().to_string();
        if f.is_empty() {
            continue;
        }
        let (key, val) = match f.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(expand(v.trim())?)),
            None => (f.to_ascii_lowercase(), None),
        };
        fields.push((key, val));
    }
    let kind = match fields.iter().find(|(k, _)| k == "type") {
        None => MountType::Bind,
        Some((_, v)) => match v.as_deref() {
            Some("bind") => MountType::Bind,
            Some("cache") => MountType::Cache,
            Some("tmpfs") => MountType::Tmpfs,
            Some("secret") => MountType::Secret,
            Some("ssh") => MountType::Ssh,
            other => {
                return Err(format!(
                    "unsupported mount type {:?}: one of bind, cache, tmpfs, secret, ssh",
                    other.unwrap_or_default()
                ))
            }
        },
    };
    let mut m = Mount {
        kind,
        target: String::new(),
        source: None,
        from: None,
        readonly: kind == MountType::Bind,
        id: None,
        sharing: Sharing::Shared,
        mode: None,
        uid: None,
        gid: None,
        size: None,
        env: None,
        required: false,
    };
    use MountType::*;
    for (key, val) in fields {
        let need = |v: &Option<String>| -> Result<String, String> {
            v.clone()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("mount option {key} needs a value ({key}=...)"))
        };
        let takes = |kinds: &[MountType]| -> Result<(), String> {
            if kinds.contains(&kind) {
                Ok(())
            } else {
                Err(format!(
                    "mount option {key} is not valid for type={}",
                    type_name(kind)
                ))
            }
        };
        match key.as_str() {
            "type" => {}
            "target" | "dst" | "destination" => m.target = need(&val)?,
            "source" | "src" => {
                takes(&[Bind, Cache, Secret])?;
                // A secret's `src` names a file in BuildKit's older syntax
                // only for the client; in a Dockerfile it is an alias of id.
                if kind == Secret {
                    m.id = Some(need(&val)?);
                } else {
                    m.source = Some(need(&val)?);
                }
            }
            "from" => {
                takes(&[Bind, Cache])?;
                m.from = Some(need(&val)?);
            }
            "readonly" | "ro" => {
                takes(&[Bind, Cache])?;
                m.readonly = parse_bool(&key, val.as_deref())?;
            }
            "readwrite" | "rw" => {
                takes(&[Bind, Cache])?;
                m.readonly = !parse_bool(&key, val.as_deref())?;
            }
            "id" => {
                takes(&[Cache, Secret, Ssh])?;
                m.id = Some(need(&val)?);
            }
            "sharing" => {
                takes(&[Cache])?;
                m.sharing = match need(&val)?.as_str() {
                    "shared" => Sharing::Shared,
                    "private" => Sharing::Private,
                    "locked" => Sharing::Locked,
                    v => {
                        return Err(format!(
                            "invalid sharing {v:?}: one of shared, private, locked"
                        ))
                    }
                };
            }
            "mode" => {
                takes(&[Cache, Secret, Ssh])?;
                m.mode = Some(parse_mode(&need(&val)?)?);
            }
            "uid" => {
                takes(&[Cache, Secret, Ssh])?;
                m.uid = Some(parse_u32(&key, &need(&val)?)?);
            }
            "gid" => {
                takes(&[Cache, Secret, Ssh])?;
                m.gid = Some(parse_u32(&key, &need(&val)?)?);
            }
            "size" | "tmpfs-size" => {
                takes(&[Tmpfs])?;
                m.size = Some(parse_size(&need(&val)?)?);
            }
            "env" => {
                takes(&[Secret])?;
                m.env = Some(need(&val)?);
            }
            "required" => {
                takes(&[Secret, Ssh])?;
                m.required = parse_bool(&key, val.as_deref())?;
            }
            other => {
                return Err(format!(
                    "unknown mount option {other:?} for type={}",
                    type_name(kind)
                ))
            }
        }
    }
    match kind {
        Ssh => {
            return Err(
                "RUN --mount=type=ssh is not supported: cais does not forward SSH agents to builds (fetch with credentials from a secret mount instead)"
                    .into(),
            )
        }
        Secret => {
            if m.id.is_none() {
                let base = m.target.trim_end_matches('/').rsplit('/').next();
                m.id = base.filter(|b| !b.is_empty()).map(str::to_string);
            }
            let Some(id) = &m.id else {
                return Err("a secret mount needs an id or a target".into());
            };
            if m.target.is_empty() && m.env.is_none() {
                m.target = format!("/run/secrets/{id}");
            }
        }
        Cache => {
            if m.target.is_empty() {
                return Err("a cache mount needs a target".into());
            }
            if m.id.is_none() {
                m.id = Some(m.target.clone());
            }
        }
        Bind | Tmpfs => {
            if m.target.is_empty() {
                return Err(format!("a {} mount needs a target", type_name(kind)));
            }
        }
    }
    Ok(m)
}

fn type_name(kind: MountType) -> &'static str {
    match kind {
        MountType::Bind => "bind",
        MountType::Cache => "cache",
        MountType::Tmpfs => "tmpfs",
        MountType::Secret => "secret",
        MountType::Ssh => "ssh",
    }
}

/// Parses a `RUN`'s flags as written (`--mount=...`, `--network=...`,
/// `--security=...`). `--security=insecure` is refused: builds here never
/// get all capabilities; `sandbox` is the default anyway.
pub fn parse_run_flags(
    flags: &[String],
    expand: &dyn Fn(&str) -> Result<String, String>,
) -> Result<RunFlags, String> {
    let mut out = RunFlags::default();
    for raw in flags {
        let body = raw.strip_prefix("--").unwrap_or(raw);
        let (name, value) = body.split_once('=').unwrap_or((body, ""));
        match name {
            "mount" => out
                .mounts
                .push(parse_mount(value, expand).map_err(|e| format!("RUN --mount={value}: {e}"))?),
            "network" => {
                out.network = match expand(value)?.as_str() {
                    "default" => Network::Default,
                    "none" => Network::None,
                    "host" => Network::Host,
                    v => {
                        return Err(format!(
                            "RUN --network={v}: not a network mode (default, none or host)"
                        ))
                    }
                }
            }
            "security" => match expand(value)?.as_str() {
                "sandbox" => {}
                v => {
                    return Err(format!(
                        "RUN --security={v} is not supported: build steps run sandboxed"
                    ))
                }
            },
            other => return Err(format!("unknown flag --{other} for RUN")),
        }
    }
    let mut targets = std::collections::BTreeSet::new();
    for m in &out.mounts {
        if !m.target.is_empty() && !targets.insert(m.target.trim_end_matches('/')) {
            return Err(format!("two mounts have the target {}", m.target));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(s: &str) -> Result<String, String> {
        Ok(s.trim_matches('"').replace("$V", "v"))
    }

    fn mount(s: &str) -> Result<Mount, String> {
        parse_mount(s, &plain)
    }

    #[test]
    fn mounts_take_buildkit_defaults() {
        let m = mount("target=/src").expect("bind");
        assert_eq!(m.kind, MountType::Bind);
        assert!(m.readonly);
        assert_eq!(m.from, None);
        let m = mount("type=bind,from=build,source=/out,target=/x,rw").expect("bind rw");
        assert!(!m.readonly);
        assert_eq!(m.source.as_deref(), Some("/out"));
        assert_eq!(m.from.as_deref(), Some("build"));

        let m = mount("type=cache,target=/root/.cache").expect("cache");
        assert_eq!(m.id.as_deref(), Some("/root/.cache"));
        assert!(!m.readonly);
        assert_eq!(m.sharing, Sharing::Shared);
        let m = mount("type=cache,id=go,target=/c,sharing=locked,mode=0700,uid=1000,gid=1000,ro")
            .expect("cache with options");
        assert_eq!(
            (m.id.as_deref(), m.sharing, m.mode, m.uid, m.gid, m.readonly),
            (
                Some("go"),
                Sharing::Locked,
                Some(0o700),
                Some(1000),
                Some(1000),
                true
            )
        );

        let m = mount("type=secret,id=tok").expect("secret");
        assert_eq!(m.target, "/run/secrets/tok");
        assert!(!m.required);
        let m = mount("type=secret,target=/etc/key.pem,required").expect("secret by target");
        assert_eq!(m.id.as_deref(), Some("key.pem"));
        assert!(m.required);
        let m = mount("type=secret,id=tok,env=TOKEN").expect("env secret");
        assert_eq!((m.target.as_str(), m.env.as_deref()), ("", Some("TOKEN")));

        let m = mount("type=tmpfs,target=/t,size=64m").expect("tmpfs");
        assert_eq!(m.size, Some(64 << 20));
    }

    #[test]
    fn values_are_expanded_and_csv_quoting_holds_commas() {
        let m = mount(r#"type=cache,"id=a,b",target=/c/$V"#).expect("quoted");
        assert_eq!(m.id.as_deref(), Some("a,b"));
        assert_eq!(m.target, "/c/v");
        assert_eq!(
            csv_fields(r#"a,"b ""q"" c",d"#).expect("csv"),
            ["a", r#"b "q" c"#, "d"]
        );
    }

    #[test]
    fn bad_mounts_are_refused_with_a_reason() {
        for (value, says) in [
            ("type=volume,target=/x", "unsupported mount type"),
            ("type=bind", "needs a target"),
            ("type=cache", "needs a target"),
            ("type=tmpfs,target=/t,from=x", "not valid for type=tmpfs"),
            ("type=cache,target=/c,sharing=sometimes", "invalid sharing"),
            ("type=cache,target=/c,mode=999", "invalid mode"),
            ("type=cache,target=/c,uid=me", "a number"),
            ("type=tmpfs,target=/t,size=lots", "invalid size"),
            ("type=bind,target=/t,color=red", "unknown mount option"),
            ("type=secret", "needs an id or a target"),
            ("type=ssh", "not supported"),
            ("type=bind,target=/t,ro=maybe", "true or false"),
            (r#"type=bind,"target=/t"#, "unterminated quote"),
            ("type=bind,target=/t,id", "not valid for type=bind"),
        ] {
            let e = mount(value).expect_err(value);
            assert!(e.contains(says), "{value}: {e}");
        }
    }

    #[test]
    fn run_flags() {
        let f = parse_run_flags(
            &[
                "--network=none".into(),
                "--mount=type=tmpfs,target=/t".into(),
                "--security=sandbox".into(),
            ],
            &plain,
        )
        .expect("flags");
        assert_eq!(f.network, Network::None);
        assert_eq!(f.mounts.len(), 1);
        for (flags, says) in [
            (vec!["--network=bridge"], "not a network mode"),
            (vec!["--security=insecure"], "not supported"),
            (
                vec![
                    "--mount=type=tmpfs,target=/t",
                    "--mount=type=tmpfs,target=/t/",
                ],
                "two mounts",
            ),
        ] {
            let flags: Vec<String> = flags.into_iter().map(String::from).collect();
            let e = parse_run_flags(&flags, &plain).expect_err(says);
            assert!(e.contains(says), "{e}");
        }
    }
}
