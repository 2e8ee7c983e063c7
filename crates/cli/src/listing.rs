//! What docker's formatter prints for the listing and inspect commands:
//! each listing's row (the fields a `--format` can name, valued as docker's
//! row contexts value them), its column titles and default table, and
//! `inspect`'s output (the daemon's JSON indented as Go's `json.Indent`
//! does, or a template per object).

use anyhow::{anyhow, Result};
use cais_api::{ContainerSummary, ImageSummary, Volume};
use serde_json::Value;

use crate::template::{self, go_float, Env, Format, Listing, Val};

// ---- values as Go prints them ----------------------------------------------

/// Go's `time.Time.String()` of an RFC 3339 UTC time
/// (`2006-01-02 15:04:05.999999999 +0000 UTC`); other text is kept.
pub fn go_time(rfc3339: &str) -> String {
    let Some((date, rest)) = rfc3339.split_once('T') else {
        return rfc3339.to_string();
    };
    let Some(clock) = rest.strip_suffix('Z') else {
        return rfc3339.to_string();
    };
    let clock = match clock.split_once('.') {
        Some((hms, frac)) => {
            let frac = frac.trim_end_matches('0');
            if frac.is_empty() {
                hms.to_string()
            } else {
                format!("{hms}.{frac}")
            }
        }
        None => clock.to_string(),
    };
    format!("{date} {clock} +0000 UTC")
}

/// Go's time string of a Unix time in seconds.
pub fn go_unix_time(secs: i64) -> String {
    go_time(&cais_image::time::format_unix(secs, 0))
}

/// docker's `units.HumanSizeWithPrecision`: decimal units, `%.*g`.
pub fn human_size(size: f64, precision: usize) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut size = size;
    let mut i = 0;
    while size >= 1000.0 && i < UNITS.len() - 1 {
        size /= 1000.0;
        i += 1;
    }
    format!("{}{}", go_float(size, 'g', Some(precision)), UNITS[i])
}

fn key_value_list(labels: &serde_json::Map<String, Value>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect::<Vec<_>>()
        .join(",")
}

fn short(id: &str, no_trunc: bool) -> String {
    if no_trunc {
        id.to_string()
    } else {
        id.trim_start_matches("sha256:").chars().take(12).collect()
    }
}

// ---- ps ------------------------------------------------------------------------

pub const PS_TABLE: &str =
    "{{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";

pub const PS_HEADERS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Image", "IMAGE"),
    ("Command", "COMMAND"),
    ("CreatedAt", "CREATED AT"),
    ("RunningFor", "CREATED"),
    ("Ports", "PORTS"),
    ("State", "STATE"),
    ("Status", "STATUS"),
    ("Size", "SIZE"),
    ("Labels", "LABELS"),
    ("Names", "NAMES"),
    ("Mounts", "MOUNTS"),
    ("LocalVolumes", "LOCAL VOLUMES"),
    ("Networks", "NETWORKS"),
    ("Platform", "PLATFORM"),
];

/// A `ps` row: the common row of [`crate::client_cmds::ps_row`] with the
/// fields only docker's `ps` has, its times as Go prints them.
pub fn ps_row(s: &ContainerSummary, no_trunc: bool) -> Val {
    let mut row = crate::client_cmds::ps_row(s, no_trunc);
    row["CreatedAt"] = Value::from(go_unix_time(s.created));
    let local = s.mounts.iter().filter(|m| m.driver == "local").count();
    row["LocalVolumes"] = Value::from(local.to_string());
    row["Platform"] = Value::Null;
    Val::from(&row)
}

/// `ps`'s `.Label "key"`.
pub fn label_method(
    labels: Vec<std::collections::BTreeMap<String, String>>,
) -> impl Fn(usize, &str, &[Val]) -> Option<Result<Val, String>> {
    move |i, name, args| {
        (name == "Label").then(|| {
            let key = args.first().and_then(Val::as_str).unwrap_or_default();
            Ok(Val::str(
                labels
                    .get(i)
                    .and_then(|l| l.get(key))
                    .cloned()
                    .unwrap_or_default(),
            ))
        })
    }
}

// ---- images --------------------------------------------------------------------

pub const IMAGES_TABLE: &str = "{{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";
pub const IMAGES_DIGESTS_TABLE: &str =
    "{{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";

pub const IMAGES_HEADERS: &[(&str, &str)] = &[
    ("ID", "IMAGE ID"),
    ("Repository", "REPOSITORY"),
    ("Tag", "TAG"),
    ("Digest", "DIGEST"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("Size", "SIZE"),
    ("Containers", "CONTAINERS"),
    // docker titles the virtual size SIZE too.
    ("VirtualSize", "SIZE"),
    ("SharedSize", "SHARED SIZE"),
    ("UniqueSize", "UNIQUE SIZE"),
];

/// `images` rows: one per repository and tag (`<none>` for untagged
/// images; a digest without a tag is a row of its own), as docker lists
/// them.
pub fn image_rows(list: &[ImageSummary], no_trunc: bool) -> Vec<Val> {
    let mut rows = Vec::new();
    for i in list {
        let n_a = |n: i64, s: String| if n == -1 { "N/A".to_string() } else { s };
        let unique = if i.size == -1 || i.shared_size == -1 {
            "N/A".to_string()
        } else {
            human_size((i.size - i.shared_size) as f64, 3)
        };
        let row = |repo: &str, tag: &str, digest: &str| -> Val {
            Val::from(&serde_json::json!({
                "Containers": n_a(i.containers, i.containers.to_string()),
                "CreatedAt": go_unix_time(i.created),
                "CreatedSince": ago(i.created),
                "Digest": digest,
                "ID": short(&i.id, no_trunc),
                "Repository": repo,
                "SharedSize": n_a(i.shared_size, human_size(i.shared_size as f64, 3)),
                "Size": human_size(i.size as f64, 3),
                "Tag": tag,
                "UniqueSize": unique,
                "VirtualSize": human_size(i.virtual_size.max(i.size) as f64, 4),
            }))
        };
        let digest_of = |repo: &str| {
            i.repo_digests
                .iter()
                .filter_map(|d| d.split_once('@'))
                .find(|(r, _)| *r == repo)
                .map(|(_, d)| d.to_string())
                .unwrap_or_else(|| "<none>".to_string())
        };
        let mut seen_repos = Vec::new();
        for t in &i.repo_tags {
            let (repo, tag) = split_tag(t);
            rows.push(row(&repo, &tag, &digest_of(&repo)));
            seen_repos.push(repo);
        }
        for d in &i.repo_digests {
            if let Some((repo, digest)) = d.split_once('@') {
                if !seen_repos.iter().any(|r| r == repo) {
                    rows.push(row(repo, "<none>", digest));
                    seen_repos.push(repo.to_string());
                }
            }
        }
        if i.repo_tags.is_empty() && i.repo_digests.is_empty() {
            rows.push(row("<none>", "<none>", "<none>"));
        }
    }
    rows
}

fn split_tag(r: &str) -> (String, String) {
    match r.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo.to_string(), tag.to_string()),
        _ => (r.to_string(), "<none>".to_string()),
    }
}

fn ago(secs: i64) -> String {
    cais_image::time::human_age(Some(&cais_image::time::format_unix(secs, 0)))
}

// ---- networks, volumes ---------------------------------------------------------

pub const NETWORKS_TABLE: &str = "{{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}";

pub const NETWORKS_HEADERS: &[(&str, &str)] = &[
    ("ID", "NETWORK ID"),
    ("Name", "NAME"),
    ("Driver", "DRIVER"),
    ("Scope", "SCOPE"),
    ("IPv4", "IPV4"),
    ("IPv6", "IPV6"),
    ("Internal", "INTERNAL"),
    ("Labels", "LABELS"),
    ("CreatedAt", "CREATED AT"),
];

pub fn network_row(n: &Value, no_trunc: bool) -> Val {
    let flag = |k: &str| n[k].as_bool().unwrap_or(false).to_string();
    Val::from(&serde_json::json!({
        "CreatedAt": go_time(n["Created"].as_str().unwrap_or_default()),
        "Driver": n["Driver"],
        "ID": short(n["Id"].as_str().unwrap_or_default(), no_trunc),
        "IPv4": flag("EnableIPv4"),
        "IPv6": flag("EnableIPv6"),
        "Internal": flag("Internal"),
        "Labels": n["Labels"].as_object().map(key_value_list).unwrap_or_default(),
        "Name": n["Name"],
        "Scope": n["Scope"],
    }))
}

pub const VOLUMES_TABLE: &str = "{{.Driver}}\t{{.Name}}";

pub const VOLUMES_HEADERS: &[(&str, &str)] = &[
    ("Name", "VOLUME NAME"),
    ("Driver", "DRIVER"),
    ("Scope", "SCOPE"),
    ("Mountpoint", "MOUNTPOINT"),
    ("Labels", "LABELS"),
    ("Links", "LINKS"),
    ("Size", "SIZE"),
    ("Group", "GROUP"),
    ("Availability", "AVAILABILITY"),
    ("Status", "STATUS"),
];

pub fn volume_row(v: &Volume) -> Val {
    let labels: Vec<String> = v.labels.iter().map(|(k, x)| format!("{k}={x}")).collect();
    Val::from(&serde_json::json!({
        // Cluster volumes' fields and the usage data `ls` does not ask for.
        "Availability": "N/A",
        "Driver": v.driver,
        "Group": "N/A",
        "Labels": labels.join(","),
        "Links": "N/A",
        "Mountpoint": v.mountpoint,
        "Name": v.name,
        "Scope": v.scope,
        "Size": "N/A",
        "Status": "N/A",
    }))
}

/// Prints a listing with `--format` (or its default table).
pub fn print(
    format: Option<&str>,
    default_table: &str,
    rows: &[Val],
    type_name: &str,
    headers: &[(&str, &str)],
    method: Option<template::RowMethod>,
) -> Result<()> {
    let f = Format::parse(format, default_table);
    let listing = Listing {
        type_name,
        headers,
        method,
        // `ps` words it apart from the other listings.
        exec_error: if type_name == "*formatter.ContainerContext" {
            "failed to execute template"
        } else {
            "template parsing error"
        },
    };
    match f.write(rows, &listing) {
        Ok(()) => Ok(()),
        Err(e) => {
            // docker prints a template's error as it is, and exits 1.
            eprintln!("{e}");
            Err(crate::client_cmds::Exit(1).into())
        }
    }
}

// ---- inspect -------------------------------------------------------------------

/// `inspect`'s output for the objects found, each the daemon's bytes:
/// without a template one JSON array indented by four spaces (Go's
/// `json.Indent`, so strings stay byte for byte), else the template run on
/// each object, a line each.
pub fn inspect_output(objects: &[Vec<u8>], format: Option<&str>) -> Result<String> {
    match format {
        None | Some("") => {
            if objects.is_empty() {
                return Ok("[]\n".into());
            }
            let mut joined = b"[".to_vec();
            for (i, o) in objects.iter().enumerate() {
                if i > 0 {
                    joined.push(b',');
                }
                joined.extend_from_slice(o.trim_ascii());
            }
            joined.push(b']');
            let mut out = indent_json(&String::from_utf8_lossy(&joined), "    ");
            out.push('\n');
            Ok(out)
        }
        // `-f json`: every object in one compact JSON array.
        Some("json") => {
            let parts: Vec<String> = objects
                .iter()
                .map(|o| compact_json(&String::from_utf8_lossy(o)))
                .collect();
            Ok(format!("[{}]\n", parts.join(",")))
        }
        Some(f) => {
            let t = template::parse(&template::unescape(f))
                .map_err(|e| anyhow!("template parsing error: {e}"))?;
            let mut out = String::new();
            let mut errors = Vec::new();
            for o in objects {
                let v = Val::parse_json(&String::from_utf8_lossy(o))
                    .map_err(|e| anyhow!("decoding the daemon's answer: {e}"))?;
                // docker runs the template on its Go struct of the object
                // first and, when that fails, on the raw JSON with missing
                // keys an error: Go names, or JSON keys, not both at once.
                let structs = |path: &str| (path == "State").then_some(CONTAINER_STATE);
                let is_container = matches!(v.get("State"), Some(Val::Map(_)));
                let typed = Env {
                    missing_key_error: true,
                    structs: is_container.then_some(&structs as template::Structs),
                    names: template::Names::Go,
                    ..Env::default()
                };
                let raw = Env {
                    missing_key_error: true,
                    names: template::Names::Json,
                    ..Env::default()
                };
                match t.execute(&v, typed).or_else(|_| t.execute(&v, raw)) {
                    Ok(text) => {
                        out.push_str(&text);
                        out.push('\n');
                    }
                    // The other objects are still printed, then the errors.
                    Err(e) => errors.push(format!("template parsing error: {e}")),
                }
            }
            // Nothing printed at all is an empty line.
            if out.is_empty() {
                out.push('\n');
            }
            if !errors.is_empty() {
                return Err(Inspected(out, errors.join("\n")).into());
            }
            Ok(out)
        }
    }
}

/// The fields of a container's `State` in the order of the Go struct
/// docker's templates see (`{{.State}}` prints them in this order).
const CONTAINER_STATE: &[&str] = &[
    "Status",
    "Running",
    "Paused",
    "Restarting",
    "OOMKilled",
    "Dead",
    "Pid",
    "ExitCode",
    "Error",
    "StartedAt",
    "FinishedAt",
    "Health",
];

/// A template that failed on one of the objects: the output of those
/// before it, and the error.
#[derive(Debug)]
pub struct Inspected(pub String, pub String);

impl std::fmt::Display for Inspected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.1)
    }
}

impl std::error::Error for Inspected {}

/// JSON without insignificant whitespace (Go's `json.Compact`).
pub fn compact_json(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in src.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if !c.is_ascii_whitespace() {
            in_string = c == '"';
            out.push(c);
        }
    }
    out
}

/// Go's `json.Indent(dst, src, "", indent)`: whitespace between tokens
/// dropped, a newline and the depth's indent after `{`, `[` and `,`
/// (empty containers stay `{}`/`[]`), `": "` after keys.
pub fn indent_json(src: &str, indent: &str) -> String {
    let mut out = String::with_capacity(src.len() * 2);
    let mut depth = 0usize;
    let mut need_indent = false;
    let mut in_string = false;
    let mut escaped = false;
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        for _ in 0..depth {
            out.push_str(indent);
        }
    };
    for c in src.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        if c.is_ascii_whitespace() {
            continue;
        }
        if need_indent && c != '}' && c != ']' {
            need_indent = false;
            depth += 1;
            newline(&mut out, depth);
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                need_indent = true;
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            '}' | ']' => {
                if need_indent {
                    need_indent = false;
                } else {
                    depth = depth.saturating_sub(1);
                    newline(&mut out, depth);
                }
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_indented_as_go_indents_it() {
        assert_eq!(
            indent_json(r#"[{"a":1,"b":[],"c":{},"d":["x, y",{"e":"\"}"}]}]"#, "    "),
            "[\n    {\n        \"a\": 1,\n        \"b\": [],\n        \"c\": {},\n        \"d\": [\n            \"x, y\",\n            {\n                \"e\": \"\\\"}\"\n            }\n        ]\n    }\n]"
        );
    }

    #[test]
    fn times_and_sizes_print_as_go_prints_them() {
        assert_eq!(
            go_time("2026-12-08T01:39:53.504419600Z"),
            "2026-12-08 01:39:53.5044196 +0000 UTC"
        );
        assert_eq!(
            go_time("2026-12-08T01:39:53Z"),
            "2026-12-08 01:39:53 +0000 UTC"
        );
        assert_eq!(go_unix_time(0), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(human_size(1_982_000.0, 3), "1.98MB");
        assert_eq!(human_size(1_982_000.0, 4), "1.982MB");
        assert_eq!(human_size(0.0, 3), "0B");
        assert_eq!(human_size(999.0, 3), "999B");
        assert_eq!(human_size(1_000.0, 3), "1kB");
    }
}
