//! Each instruction's flags and arguments, after `lines.rs` has produced
//! its logical line. Arguments stay as written (quotes included) so that
//! the executor's [`super::expand`] applies docker's quoting rules once,
//! with the ARG/ENV values in scope.

use super::ast::{Arg, Command, Copy, Healthcheck, Heredoc, Kind};
use super::lines::heredoc_opener;
use super::words::{maybe_json, split_raw, take_flags, unquoted_eq, Flag, Json};

/// The flags an instruction accepts, read off its argument string.
struct Flags {
    keyword: &'static str,
    flags: Vec<Flag>,
}

/// How one flag may be written.
#[derive(PartialEq)]
enum Spec {
    /// `--name=value`, at most once.
    Value,
    /// `--name=value`, any number of times (`RUN --mount`).
    Repeated,
    /// `--name` or `--name=true|false`.
    Bool,
    /// Known to docker but not implemented here: refused clearly rather
    /// than silently ignored, since ignoring it would change the result.
    Unsupported,
}

impl Flags {
    fn check(
        keyword: &'static str,
        flags: Vec<Flag>,
        known: &[(&str, Spec)],
    ) -> Result<Flags, String> {
        for (i, flag) in flags.iter().enumerate() {
            let Some((_, spec)) = known.iter().find(|(n, _)| *n == flag.name) else {
                return Err(format!("unknown flag --{} for {keyword}", flag.name));
            };
            match spec {
                Spec::Unsupported => {
                    return Err(format!(
                        "flag --{} of {keyword} is not supported",
                        flag.name
                    ))
                }
                Spec::Value | Spec::Repeated => match flag.value.as_deref() {
                    None | Some("") => {
                        return Err(format!(
                            "flag --{} of {keyword} needs a value (--{}=...)",
                            flag.name, flag.name
                        ))
                    }
                    Some(_) => {}
                },
                Spec::Bool => match flag.value.as_deref() {
                    None | Some("true") | Some("false") => {}
                    Some(v) => {
                        return Err(format!(
                            "flag --{} of {keyword} takes no value or true/false, not {v:?}",
                            flag.name
                        ))
                    }
                },
            }
            if *spec != Spec::Repeated && flags[..i].iter().any(|f| f.name == flag.name) {
                return Err(format!(
                    "flag --{} is given more than once to {keyword}",
                    flag.name
                ));
            }
        }
        Ok(Flags { keyword, flags })
    }

    fn value(&self, name: &str) -> Option<String> {
        self.flags
            .iter()
            .find(|f| f.name == name)
            .and_then(|f| f.value.clone())
    }

    fn bool(&self, name: &str) -> bool {
        self.flags
            .iter()
            .any(|f| f.name == name && f.value.as_deref() != Some("false"))
    }
}

/// The parsed `FROM` line.
pub(super) struct From {
    pub base: String,
    pub name: Option<String>,
    pub platform: Option<String>,
}

/// Stage names: the reference allows letters, digits, `-`, `_` and `.`,
/// starting with a letter; they are case-insensitive, so kept lowercased.
fn valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

pub(super) fn from(rest: &str, escape: char) -> Result<From, String> {
    let (flags, rest) = take_flags(rest, escape);
    let flags = Flags::check("FROM", flags, &[("platform", Spec::Value)])?;
    let words: Vec<&str> = rest.split_whitespace().collect();
    let (base, name) = match words.as_slice() {
        [] => return Err("FROM needs an image (or scratch)".to_string()),
        [base] => (base, None),
        [base, as_, name] if as_.eq_ignore_ascii_case("as") => {
            let name = name.to_ascii_lowercase();
            if !valid_stage_name(&name) {
                return Err(format!(
                    "invalid stage name {name:?}: it must start with a letter and contain only letters, digits, '-', '_' and '.'"
                ));
            }
            (base, Some(name))
        }
        _ => {
            return Err(format!(
                "FROM takes an image and optionally AS <name>, not {rest:?}"
            ))
        }
    };
    Ok(From {
        base: base.to_string(),
        name,
        platform: flags.value("platform"),
    })
}

fn command(keyword: &str, rest: &str) -> Result<Command, String> {
    if rest.trim().is_empty() {
        return Err(format!("{keyword} needs a command"));
    }
    Ok(match maybe_json(rest)? {
        Json::Strings(argv) => Command::Exec(argv),
        Json::NotJson => Command::Shell(rest.trim().to_string()),
    })
}

/// `key=value ...`, or the legacy single pair `key value with spaces`.
fn pairs(keyword: &str, rest: &str, escape: char) -> Result<Vec<(String, String)>, String> {
    let words = split_raw(rest, escape);
    let Some(first) = words.first() else {
        return Err(format!("{keyword} needs at least one name=value pair"));
    };
    if unquoted_eq(first, escape).is_none() {
        // Legacy form: the first word is the name, the rest of the line
        // (as written) the value.
        let value = rest.trim_start()[first.len()..].trim();
        if value.is_empty() {
            return Err(format!(
                "{keyword} {first} has no value: write {keyword} {first}=<value>"
            ));
        }
        return Ok(vec![(first.clone(), value.to_string())]);
    }
    let mut out = Vec::with_capacity(words.len());
    for word in &words {
        let Some(at) = unquoted_eq(word, escape) else {
            return Err(format!("{keyword}: {word:?} is not of the form name=value"));
        };
        let (name, value) = (&word[..at], &word[at + 1..]);
        if name.is_empty() {
            return Err(format!("{keyword}: empty name in {word:?}"));
        }
        out.push((name.to_string(), value.to_string()));
    }
    Ok(out)
}

fn args(rest: &str, escape: char) -> Result<Vec<Arg>, String> {
    let words = split_raw(rest, escape);
    if words.is_empty() {
        return Err("ARG needs a name".to_string());
    }
    words
        .into_iter()
        .map(|word| {
            let (name, default) = match unquoted_eq(&word, escape) {
                Some(at) => (word[..at].to_string(), Some(word[at + 1..].to_string())),
                None => (word.clone(), None),
            };
            if name.is_empty() {
                return Err(format!("ARG: empty name in {word:?}"));
            }
            Ok(Arg { name, default })
        })
        .collect()
}

/// A JSON list or whitespace-separated words (COPY, VOLUME).
fn list(rest: &str, escape: char) -> Result<Vec<String>, String> {
    Ok(match maybe_json(rest)? {
        Json::Strings(items) => items,
        Json::NotJson => split_raw(rest, escape),
    })
}

fn copy(
    keyword: &'static str,
    rest: &str,
    escape: char,
    heredocs: Vec<Heredoc>,
) -> Result<Copy, String> {
    let (flags, rest) = take_flags(rest, escape);
    let known: &[(&str, Spec)] = if keyword == "COPY" {
        &[
            ("from", Spec::Value),
            ("chown", Spec::Value),
            ("chmod", Spec::Value),
            ("link", Spec::Bool),
            ("parents", Spec::Unsupported),
            ("exclude", Spec::Unsupported),
        ]
    } else {
        &[
            ("chown", Spec::Value),
            ("chmod", Spec::Value),
            ("link", Spec::Bool),
            ("checksum", Spec::Unsupported),
            ("keep-git-dir", Spec::Unsupported),
            ("exclude", Spec::Unsupported),
            ("unpack", Spec::Unsupported),
        ]
    };
    let flags = Flags::check(keyword, flags, known)?;
    let mut words = list(&rest, escape)?;
    if !heredocs.is_empty() {
        // Heredoc openers become sources named after the heredoc.
        for w in &mut words {
            if let Some((name, _, _)) = heredoc_opener(w) {
                *w = name;
            }
        }
    }
    let Some(dest) = words.pop() else {
        return Err(format!(
            "{keyword} needs at least one source and a destination"
        ));
    };
    if words.is_empty() {
        return Err(format!(
            "{keyword} needs at least one source and a destination, got only {dest:?}"
        ));
    }
    Ok(Copy {
        sources: words,
        dest,
        from: flags.value("from"),
        chown: flags.value("chown"),
        chmod: flags.value("chmod"),
        link: flags.bool("link"),
        heredocs,
    })
}

/// Go's `time.ParseDuration` syntax (what docker accepts for HEALTHCHECK):
/// one or more `<decimal><unit>`, or a bare `0`.
fn valid_duration(s: &str) -> bool {
    if s == "0" {
        return true;
    }
    let mut rest = s;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num = &rest[..num_len];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return false;
        }
        rest = &rest[num_len..];
        let Some(unit) = ["ns", "us", "µs", "μs", "ms", "s", "m", "h"]
            .iter()
            .find(|u| rest.starts_with(*u))
        else {
            return false;
        };
        // `ms` must win over `m`: the list puts longer units first.
        rest = &rest[unit.len()..];
    }
    true
}

fn healthcheck(rest: &str, escape: char) -> Result<Healthcheck, String> {
    let (flags, rest) = take_flags(rest, escape);
    let flags = Flags::check(
        "HEALTHCHECK",
        flags,
        &[
            ("interval", Spec::Value),
            ("timeout", Spec::Value),
            ("start-period", Spec::Value),
            ("start-interval", Spec::Value),
            ("retries", Spec::Value),
        ],
    )?;
    for f in &flags.flags {
        let v = f.value.as_deref().unwrap_or("");
        if f.name == "retries" {
            if v.parse::<u32>().is_err() {
                return Err(format!(
                    "HEALTHCHECK --retries must be a non-negative integer, not {v:?}"
                ));
            }
        } else if !valid_duration(v) {
            return Err(format!(
                "HEALTHCHECK --{} must be a duration like 30s or 1m30s, not {v:?}",
                f.name
            ));
        }
    }
    let rest = rest.trim();
    let (kind, cmd) = match rest.find(char::is_whitespace) {
        Some(at) => (&rest[..at], rest[at..].trim_start()),
        None => (rest, ""),
    };
    let test = if kind.eq_ignore_ascii_case("NONE") {
        if !cmd.is_empty() {
            return Err("HEALTHCHECK NONE takes no arguments".to_string());
        }
        if !flags.flags.is_empty() {
            return Err("HEALTHCHECK NONE takes no options".to_string());
        }
        None
    } else if kind.eq_ignore_ascii_case("CMD") {
        Some(command("HEALTHCHECK CMD", cmd)?)
    } else if kind.is_empty() {
        return Err("HEALTHCHECK needs CMD <command> or NONE".to_string());
    } else {
        return Err(format!(
            "HEALTHCHECK needs CMD <command> or NONE, not {kind:?}"
        ));
    };
    Ok(Healthcheck {
        test,
        interval: flags.value("interval"),
        timeout: flags.value("timeout"),
        start_period: flags.value("start-period"),
        start_interval: flags.value("start-interval"),
        retries: flags.value("retries"),
    })
}

/// The whole rest of the line as one value (WORKDIR, USER, MAINTAINER).
fn one(keyword: &str, rest: &str, what: &str) -> Result<String, String> {
    let rest = rest.trim();
    if rest.is_empty() {
        return Err(format!("{keyword} needs {what}"));
    }
    Ok(rest.to_string())
}

/// Every instruction keyword, uppercased.
pub(super) const KEYWORDS: &[&str] = &[
    "FROM",
    "RUN",
    "CMD",
    "ENTRYPOINT",
    "COPY",
    "ADD",
    "ENV",
    "ARG",
    "LABEL",
    "WORKDIR",
    "USER",
    "EXPOSE",
    "VOLUME",
    "SHELL",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "ONBUILD",
    "MAINTAINER",
];

/// Parses every instruction except FROM (which opens a stage and is
/// handled by the caller). `keyword` is uppercased.
pub(super) fn instruction(
    keyword: &str,
    rest: &str,
    escape: char,
    heredocs: Vec<Heredoc>,
) -> Result<Kind, String> {
    // Flags come first for every instruction; those that take none reject
    // a leading `--x` as docker does (`CMD --help` needs the exec form).
    let (flags, after) = take_flags(rest, escape);
    let no_flags = |keyword: &'static str| Flags::check(keyword, flags.clone(), &[]);
    Ok(match keyword {
        "RUN" => {
            let flags = Flags::check(
                "RUN",
                flags,
                &[
                    ("mount", Spec::Repeated),
                    ("network", Spec::Value),
                    ("security", Spec::Value),
                ],
            )?;
            Kind::Run {
                command: command(flags.keyword, &after)?,
                heredocs,
                flags: flags.flags.into_iter().map(|f| f.raw).collect(),
            }
        }
        "CMD" => {
            no_flags("CMD")?;
            Kind::Cmd(command("CMD", &after)?)
        }
        "ENTRYPOINT" => {
            no_flags("ENTRYPOINT")?;
            Kind::Entrypoint(command("ENTRYPOINT", &after)?)
        }
        "COPY" => Kind::Copy(copy("COPY", rest, escape, heredocs)?),
        "ADD" => Kind::Add(copy("ADD", rest, escape, heredocs)?),
        "ENV" => {
            no_flags("ENV")?;
            Kind::Env(pairs("ENV", &after, escape)?)
        }
        "LABEL" => {
            no_flags("LABEL")?;
            Kind::Label(pairs("LABEL", &after, escape)?)
        }
        "ARG" => {
            no_flags("ARG")?;
            Kind::Arg(args(&after, escape)?)
        }
        "WORKDIR" => {
            no_flags("WORKDIR")?;
            Kind::Workdir(one("WORKDIR", &after, "a directory")?)
        }
        "USER" => {
            no_flags("USER")?;
            Kind::User(one("USER", &after, "a user[:group]")?)
        }
        "MAINTAINER" => {
            no_flags("MAINTAINER")?;
            Kind::Maintainer(one("MAINTAINER", &after, "a name")?)
        }
        "EXPOSE" => {
            no_flags("EXPOSE")?;
            let ports = split_raw(&after, escape);
            if ports.is_empty() {
                return Err("EXPOSE needs at least one port".to_string());
            }
            Kind::Expose(ports)
        }
        "VOLUME" => {
            no_flags("VOLUME")?;
            let vols = list(&after, escape)?;
            if vols.is_empty() {
                return Err("VOLUME needs at least one path".to_string());
            }
            if vols.iter().any(|v| v.trim().is_empty()) {
                return Err("VOLUME paths cannot be empty".to_string());
            }
            Kind::Volume(vols)
        }
        "SHELL" => {
            no_flags("SHELL")?;
            match maybe_json(&after)? {
                Json::Strings(argv) if !argv.is_empty() => Kind::Shell(argv),
                Json::Strings(_) => {
                    return Err(
                        "SHELL needs at least one element, e.g. [\"/bin/sh\", \"-c\"]".to_string(),
                    )
                }
                Json::NotJson => {
                    return Err(format!(
                    "SHELL must be a JSON array of strings, e.g. [\"/bin/sh\", \"-c\"], not {:?}",
                    after.trim()
                ))
                }
            }
        }
        "STOPSIGNAL" => {
            no_flags("STOPSIGNAL")?;
            match split_raw(&after, escape).as_slice() {
                [sig] => Kind::StopSignal(sig.clone()),
                [] => return Err("STOPSIGNAL needs a signal".to_string()),
                _ => return Err("STOPSIGNAL takes exactly one signal".to_string()),
            }
        }
        "HEALTHCHECK" => Kind::Healthcheck(healthcheck(rest, escape)?),
        "ONBUILD" => {
            no_flags("ONBUILD")?;
            let trigger = after.trim();
            let (kw, trigger_rest) = match trigger.find(char::is_whitespace) {
                Some(at) => (&trigger[..at], trigger[at..].trim_start()),
                None => (trigger, ""),
            };
            let kw = kw.to_ascii_uppercase();
            match kw.as_str() {
                "" => return Err("ONBUILD needs an instruction".to_string()),
                "ONBUILD" => {
                    return Err("ONBUILD ONBUILD is not allowed (triggers cannot chain)".to_string())
                }
                "FROM" | "MAINTAINER" => {
                    return Err(format!("{kw} is not allowed as an ONBUILD trigger"))
                }
                _ => {}
            }
            // Check the trigger now, so its mistakes are reported against
            // this Dockerfile rather than when a child image is built.
            instruction(&kw, trigger_rest, escape, Vec::new())
                .map_err(|e| format!("ONBUILD {e}"))?;
            Kind::Onbuild(trigger.to_string())
        }
        _ => return Err(format!("unknown instruction {keyword:?}")),
    })
}
