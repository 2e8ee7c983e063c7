//! The engine's modules import downwards only: each may use modules of
//! the layers below its own, never one above or beside it (the order the
//! crate's docs give). Read from the sources, test code left out.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Bottom to top. A module may use those of earlier layers only; modules
/// of one layer never use each other.
const LAYERS: &[&[&str]] = &[
    &["error"],
    &["timing"],
    &["trash"],
    &["config"],
    &["ids"],
    &["events"],
    &["filters"],
    &["logfile"],
    &["spec"],
    &["devices"],
    &["shim"],
    &["volumes"],
    &["images"],
    &["archive"],
    &["build"],
    &["networks::netconf"],
    &["containers::fields", "containers::settings"],
    &["containers::state"],
    &["containers::record"],
    &["containers::table"],
    &["networks::records"],
    &["networks::wiring"],
    &["containers::health"],
    &["containers::monitor"],
    &["containers::mounts"],
    &["containers::exec"],
    &["containers::inspect"],
    &["containers::lifecycle"],
    &["containers", "networks"],
    &["engine"],
    &["http::plumbing"],
    &[
        "http::handlers::archive",
        "http::handlers::build",
        "http::handlers::buildkit",
        "http::handlers::containers",
        "http::handlers::exec",
        "http::handlers::images",
        "http::handlers::networks",
        "http::handlers::swarm",
        "http::handlers::system",
        "http::handlers::volumes",
    ],
    &["http::handlers"],
    &["http::router"],
    &["http"],
    &["daemon"],
    &[""],
];

fn rank_of() -> BTreeMap<&'static str, usize> {
    LAYERS
        .iter()
        .enumerate()
        .flat_map(|(i, layer)| layer.iter().map(move |m| (*m, i)))
        .collect()
}

/// `src/a/b.rs` and `src/a/b/mod.rs` are `a::b`; `src/lib.rs` is "".
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().expect("a file name");
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_string());
    }
    parts.join("::")
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src").flatten() {
        let p = entry.path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// Every `crate::a::b` and `super::a::{b, c}` path in `code`, as module
/// paths (`super` resolved against `module`'s parent).
fn paths(code: &str, module: &str) -> Vec<Vec<String>> {
    let parent: Vec<String> = {
        let mut p: Vec<String> = module.split("::").map(str::to_string).collect();
        p.pop();
        p
    };
    let mut out = Vec::new();
    for (start, base) in [("crate::", Vec::new()), ("super::", parent)] {
        let mut rest = code;
        while let Some(i) = rest.find(start) {
            let before = rest[..i].chars().last();
            rest = &rest[i + start.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let mut segs = base.clone();
            let mut grouped = false;
            let mut s = rest;
            loop {
                let end = s
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(s.len());
                if end == 0 {
                    break;
                }
                segs.push(s[..end].to_string());
                s = &s[end..];
                if let Some(t) = s.strip_prefix("::") {
                    if let Some(group) = t.strip_prefix('{') {
                        let close = group.find('}').unwrap_or(group.len());
                        for name in group[..close].split(',') {
                            let name = name.trim().split("::").next().unwrap_or("").trim();
                            if !name.is_empty() && name != "self" {
                                let mut g = segs.clone();
                                g.push(name.to_string());
                                out.push(g);
                            }
                        }
                        grouped = true;
                        break;
                    }
                    s = t;
                } else {
                    break;
                }
            }
            if !grouped {
                out.push(segs);
            }
        }
    }
    out
}

#[test]
fn modules_import_downwards_only() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let ranks = rank_of();
    let mut violations = Vec::new();
    let mut checked = 0;
    for file in &files {
        let module = module_of(&src, file);
        let Some(&rank) = ranks.get(module.as_str()) else {
            violations.push(format!("{module}: not in the layers"));
            continue;
        };
        let text = std::fs::read_to_string(file).expect("read");
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        for path in paths(code, &module) {
            // The longest prefix that names a module.
            let Some(target) = (1..=path.len())
                .rev()
                .map(|n| path[..n].join("::"))
                .find(|m| ranks.contains_key(m.as_str()))
            else {
                continue;
            };
            checked += 1;
            let other = ranks[target.as_str()];
            let inside = target == module || target.starts_with(&format!("{module}::"));
            if !inside && other >= rank {
                violations.push(format!("{module} uses {target}"));
            }
        }
    }
    assert!(checked > 100, "only {checked} paths were checked");
    assert!(violations.is_empty(), "{violations:#?}");
}
