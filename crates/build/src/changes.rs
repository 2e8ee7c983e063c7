//! Dockerfile instructions applied to an image's container config without
//! a build: the `changes` of `docker commit -c` and `docker import -c`
//! (`apply_changes`), and the config edits the executor's metadata steps
//! share with it (environment, labels, exposed ports, volumes, health
//! checks, triggers), so both give an instruction one meaning.

use serde_json::{json, Map, Value};

use crate::dockerfile::ast::{Command, Healthcheck, Kind};
use crate::dockerfile::{self, expand, expand_words};
use crate::{fsutil, Error, Result};

/// The instructions a change may be, as dockerd accepts them for commit
/// and import; anything else is refused with dockerd's words.
const CHANGE_COMMANDS: [&str; 11] = [
    "cmd",
    "entrypoint",
    "env",
    "expose",
    "healthcheck",
    "label",
    "onbuild",
    "stopsignal",
    "user",
    "volume",
    "workdir",
];

/// Applies `changes` (one Dockerfile instruction each) to `config`, an
/// image's container config (`Cmd`, `Env`, ...; `null` is an empty one),
/// in order. Variables expand against the config's `Env` as it stands at
/// each instruction, as in a build. An instruction outside
/// [`CHANGE_COMMANDS`] is refused as dockerd refuses it: "run is not a
/// valid change command".
pub fn apply_changes(config: &mut Value, changes: &[String]) -> Result<()> {
    let changes: Vec<&str> = changes
        .iter()
        .map(|c| c.trim())
        .filter(|c| !c.is_empty())
        .collect();
    for change in &changes {
        let word = change
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if !CHANGE_COMMANDS.contains(&word.as_str()) {
            return Err(Error::invalid(format!(
                "{word} is not a valid change command"
            )));
        }
    }
    if changes.is_empty() {
        return Ok(());
    }
    let text = format!("FROM scratch\n{}\n", changes.join("\n"));
    let parsed = dockerfile::parse(&text)?;
    if !config.is_object() {
        *config = json!({});
    }
    let cc = config.as_object_mut().expect("made an object above");
    let mut cmd_set = false;
    for ins in parsed.stages.iter().flat_map(|s| &s.instructions) {
        let env = env_of(cc);
        let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let x = |w: &str| expand(w, parsed.escape, &lookup).map_err(Error::invalid);
        match &ins.kind {
            Kind::Cmd(c) => {
                cc.insert("Cmd".into(), json!(argv(cc, c)));
                cmd_set = true;
            }
            Kind::Entrypoint(c) => {
                cc.insert("Entrypoint".into(), json!(argv(cc, c)));
                // As in a build: an ENTRYPOINT drops a CMD not set by
                // these changes.
                if !cmd_set {
                    cc.insert("Cmd".into(), Value::Null);
                }
            }
            Kind::Env(pairs) => {
                let mut kv = Vec::new();
                for (k, v) in pairs {
                    kv.push((x(k)?, x(v)?));
                }
                merge_env(cc, kv);
            }
            Kind::Label(pairs) => {
                let mut kv = Vec::new();
                for (k, v) in pairs {
                    kv.push((x(k)?, x(v)?));
                }
                set_labels(cc, kv);
            }
            Kind::Expose(ports) => {
                let mut list = Vec::new();
                for p in ports {
                    for w in expand_words(p, parsed.escape, &lookup).map_err(Error::invalid)? {
                        list.push(exposed_port(&w)?);
                    }
                }
                add_exposed(cc, list);
            }
            Kind::Volume(vols) => {
                let mut list = Vec::new();
                for v in vols {
                    list.push(x(v)?);
                }
                add_volumes(cc, list)?;
            }
            Kind::User(u) => {
                cc.insert("User".into(), json!(x(u)?));
            }
            Kind::StopSignal(s) => {
                cc.insert("StopSignal".into(), json!(x(s)?));
            }
            Kind::Workdir(w) => {
                let w = x(w)?;
                let current = cc
                    .get("WorkingDir")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                cc.insert("WorkingDir".into(), json!(join_workdir(&current, &w)));
            }
            Kind::Healthcheck(h) => {
                let hc = healthcheck(h, &x)?;
                cc.insert("Healthcheck".into(), Value::Object(hc));
            }
            Kind::Onbuild(t) => push_onbuild(cc, t.clone()),
            // Refused by name above; the parser gives nothing else for
            // the accepted words.
            _ => {
                return Err(Error::invalid(format!(
                    "{} is not a valid change command",
                    ins.original
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_ascii_lowercase()
                )))
            }
        }
    }
    Ok(())
}

/// `Env` of a container config as pairs.
pub(crate) fn env_of(cc: &Map<String, Value>) -> Vec<(String, String)> {
    cc.get("Env")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    (k.to_owned(), v.to_owned())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `ENV`: each pair replaces the variable of that name or is appended.
pub(crate) fn merge_env(cc: &mut Map<String, Value>, kv: Vec<(String, String)>) {
    let mut env = env_of(cc);
    for (k, v) in kv {
        match env.iter_mut().find(|(ek, _)| *ek == k) {
            Some(e) => e.1 = v,
            None => env.push((k, v)),
        }
    }
    let list: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    cc.insert("Env".into(), json!(list));
}

/// An object field of the config, made an object if it is not one.
fn object<'a>(cc: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let e = cc.entry(key).or_insert_with(|| json!({}));
    if !e.is_object() {
        *e = json!({});
    }
    e.as_object_mut().expect("made an object above")
}

/// `LABEL`: each pair set.
pub(crate) fn set_labels(cc: &mut Map<String, Value>, kv: Vec<(String, String)>) {
    let labels = object(cc, "Labels");
    for (k, v) in kv {
        labels.insert(k, json!(v));
    }
}

/// One `EXPOSE` word as the config keys it: `80` is `80/tcp`, a protocol
/// is lowercased; a port that is not a number (or range) is refused with
/// dockerd's words.
pub(crate) fn exposed_port(word: &str) -> Result<String> {
    let p = if word.contains('/') {
        word.to_ascii_lowercase()
    } else {
        format!("{word}/tcp")
    };
    let port = p.split('/').next().unwrap_or("");
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        return Err(Error::invalid(format!("Invalid containerPort: {word}")));
    }
    Ok(p)
}

/// `EXPOSE`: the ports (already [`exposed_port`]s) added.
pub(crate) fn add_exposed(cc: &mut Map<String, Value>, ports: Vec<String>) {
    let exposed = object(cc, "ExposedPorts");
    for p in ports {
        exposed.insert(p, json!({}));
    }
}

/// `VOLUME`: the paths added; an empty one is refused with dockerd's words.
pub(crate) fn add_volumes(cc: &mut Map<String, Value>, paths: Vec<String>) -> Result<()> {
    if paths.iter().any(String::is_empty) {
        return Err(Error::invalid(
            "VOLUME specified can not be an empty string",
        ));
    }
    let volumes = object(cc, "Volumes");
    for v in paths {
        volumes.insert(v, json!({}));
    }
    Ok(())
}

/// `ONBUILD`: the trigger appended.
pub(crate) fn push_onbuild(cc: &mut Map<String, Value>, trigger: String) {
    let o = cc.entry("OnBuild").or_insert_with(|| json!([]));
    if !o.is_array() {
        *o = json!([]);
    }
    if let Some(a) = o.as_array_mut() {
        a.push(json!(trigger));
    }
}

/// `HEALTHCHECK` as the config's `Healthcheck` object (durations in
/// nanoseconds); `x` expands a word.
pub(crate) fn healthcheck(
    h: &Healthcheck,
    x: &dyn Fn(&str) -> Result<String>,
) -> Result<Map<String, Value>> {
    let mut hc = Map::new();
    match &h.test {
        None => {
            hc.insert("Test".into(), json!(["NONE"]));
        }
        Some(Command::Shell(s)) => {
            hc.insert("Test".into(), json!(["CMD-SHELL", s]));
        }
        Some(Command::Exec(v)) => {
            let mut t = vec!["CMD".to_owned()];
            t.extend(v.iter().cloned());
            hc.insert("Test".into(), json!(t));
        }
    }
    for (field, v) in [
        ("Interval", &h.interval),
        ("Timeout", &h.timeout),
        ("StartPeriod", &h.start_period),
        ("StartInterval", &h.start_interval),
    ] {
        if let Some(v) = v {
            hc.insert(field.into(), json!(fsutil::parse_duration(&x(v)?)?));
        }
    }
    if let Some(r) = &h.retries {
        let r: i64 = x(r)?
            .parse()
            .map_err(|_| Error::invalid(format!("invalid --retries {r:?}")))?;
        hc.insert("Retries".into(), json!(r));
    }
    Ok(hc)
}

/// A command's argv: the exec form as written, the shell form through the
/// config's `Shell` (default `/bin/sh -c`).
fn argv(cc: &Map<String, Value>, c: &Command) -> Vec<String> {
    match c {
        Command::Exec(v) => v.clone(),
        Command::Shell(s) => {
            let mut argv = cc
                .get("Shell")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect::<Vec<_>>()
                })
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()]);
            argv.push(s.clone());
            argv
        }
    }
}

/// `WORKDIR dir` from `current`: an absolute `dir` replaces it, a relative
/// one is joined to it; `.` and `..` are resolved lexically.
fn join_workdir(current: &str, dir: &str) -> String {
    let joined = if dir.starts_with('/') {
        dir.to_string()
    } else {
        format!("{}/{dir}", if current.is_empty() { "/" } else { current })
    };
    let mut parts: Vec<&str> = Vec::new();
    for p in joined.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(config: Value, changes: &[&str]) -> Result<Value> {
        let mut c = config;
        let changes: Vec<String> = changes.iter().map(|s| s.to_string()).collect();
        apply_changes(&mut c, &changes).map(|()| c)
    }

    #[test]
    fn changes_edit_the_config_as_a_build_would() {
        let c = applied(
            json!({"Env": ["PATH=/bin", "A=1"], "Cmd": ["sh"], "WorkingDir": "/srv"}),
            &[
                "EXPOSE 8000 53/UDP",
                "CMD [\"bash\"]",
                "ENV A=2 B=$PATH:/x",
                "USER foobar",
                "WORKDIR ../data",
                "LABEL k=\"v w\"",
                "VOLUME /v1 /v2",
                "STOPSIGNAL SIGINT",
                "ONBUILD RUN true",
                "HEALTHCHECK --interval=2s CMD true",
            ],
        )
        .expect("valid changes");
        assert_eq!(c["Cmd"], json!(["bash"]));
        assert_eq!(c["Env"], json!(["PATH=/bin", "A=2", "B=/bin:/x"]));
        assert_eq!(c["ExposedPorts"], json!({"8000/tcp": {}, "53/udp": {}}));
        assert_eq!(c["User"], "foobar");
        assert_eq!(c["WorkingDir"], "/data");
        assert_eq!(c["Labels"], json!({"k": "v w"}));
        assert_eq!(c["Volumes"], json!({"/v1": {}, "/v2": {}}));
        assert_eq!(c["StopSignal"], "SIGINT");
        assert_eq!(c["OnBuild"], json!(["RUN true"]));
        assert_eq!(
            c["Healthcheck"],
            json!({"Test": ["CMD-SHELL", "true"], "Interval": 2_000_000_000i64})
        );
    }

    #[test]
    fn a_null_config_takes_changes_and_shell_forms_use_sh() {
        let c = applied(Value::Null, &["CMD echo hi", "WORKDIR rel"]).expect("valid");
        assert_eq!(c["Cmd"], json!(["/bin/sh", "-c", "echo hi"]));
        assert_eq!(c["WorkingDir"], "/rel");
    }

    #[test]
    fn an_entrypoint_drops_a_cmd_these_changes_did_not_set() {
        let c = applied(json!({"Cmd": ["sh"]}), &["ENTRYPOINT [\"top\"]"]).expect("valid");
        assert_eq!(c["Cmd"], Value::Null);
        let c = applied(json!({}), &["CMD [\"-b\"]", "ENTRYPOINT [\"top\"]"]).expect("valid");
        assert_eq!(c["Cmd"], json!(["-b"]));
    }

    #[test]
    fn instructions_that_are_not_changes_are_refused_in_dockerds_words() {
        for (change, want) in [
            ("RUN ls", "run is not a valid change command"),
            ("FROM busybox", "from is not a valid change command"),
            ("foo bar", "foo is not a valid change command"),
            ("COPY a b", "copy is not a valid change command"),
            ("EXPOSE abc", "Invalid containerPort: abc"),
            ("VOLUME \"\"", "VOLUME specified can not be an empty string"),
        ] {
            let err = applied(json!({}), &[change]).expect_err(change);
            assert_eq!(err.to_string(), want, "{change}");
        }
        let unchanged = applied(json!({"Cmd": ["sh"]}), &["", "  "]).expect("blank changes");
        assert_eq!(unchanged, json!({"Cmd": ["sh"]}));
    }
}
