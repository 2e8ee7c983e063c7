//! The repository's rules, checked as ordinary tests (`cargo test -p xtask
//! tidy`, which `cargo xtask ci` runs with the workspace's tests):
//!
//! - crates depend on each other only as ARCHITECTURE.md allows
//!   ([`DEPENDENCY_RULES`], read from `cargo metadata`);
//! - library crates log through `tracing` and never print
//!   ([`libraries_do_not_print`]);
//! - every `unsafe` says why it is sound ([`every_unsafe_has_a_safety_comment`]);
//! - ARCHITECTURE.md stays short enough to be read whole.
//!
//! Each failure names the file and line, then the rule it breaks.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Which crates a dependency rule is about.
#[derive(Clone, Copy)]
enum Crates {
    /// The crate with this package name.
    Named(&'static str),
    /// Each of the crates with these package names.
    AnyOf(&'static [&'static str]),
    /// Every crate whose package name contains one of these words.
    NameContains(&'static [&'static str]),
    /// Every workspace crate except these.
    AllBut(&'static [&'static str]),
}

/// What a rule allows among the workspace's own crates, counting normal
/// dependencies transitively (dev- and build-dependencies do not count).
#[derive(Clone, Copy)]
enum Allowed {
    /// Anything of ours except these.
    Never(&'static [&'static str]),
    /// None of ours but these.
    Only(&'static [&'static str]),
}

struct DependencyRule {
    crates: Crates,
    allowed: Allowed,
    /// The rule as ARCHITECTURE.md words it.
    rule: &'static str,
}

/// The layering of ARCHITECTURE.md, one row per invariant.
#[rustfmt::skip]
const DEPENDENCY_RULES: &[DependencyRule] = &[
    DependencyRule {
        crates: Crates::Named("cais-runtime"),
        allowed: Allowed::Never(&["cais-oci", "cais-image", "cais-registry", "cais-registry-server", "cais-engine", "cais-build", "cais-net"]),
        rule: "the runtime's input is a bundle: it knows no image, registry, engine, build or network",
    },
    DependencyRule {
        crates: Crates::Named("cais-cgroups"),
        allowed: Allowed::Only(&[]),
        rule: "cgroups depends on no other cais crate",
    },
    DependencyRule {
        crates: Crates::Named("cais-oci"),
        allowed: Allowed::Only(&[]),
        rule: "the OCI model (digests, references, manifests) depends on no cais crate",
    },
    DependencyRule {
        crates: Crates::Named("cais-image"),
        allowed: Allowed::Never(&["cais-engine", "cais-build"]),
        rule: "the image store knows neither the engine nor builds",
    },
    DependencyRule {
        crates: Crates::Named("cais-registry"),
        allowed: Allowed::Only(&["cais-oci"]),
        rule: "the registry client knows the OCI model only: no image store, no server",
    },
    DependencyRule {
        crates: Crates::Named("cais-registry-server"),
        allowed: Allowed::Only(&["cais-oci"]),
        rule: "the registry server knows the OCI model only: no client, no image store",
    },
    DependencyRule {
        crates: Crates::AnyOf(&["cais-image", "cais-build", "cais-engine"]),
        allowed: Allowed::Never(&["cais-registry-server"]),
        rule: "image, build and engine reach registries through the client and never compile the server",
    },
    DependencyRule {
        crates: Crates::Named("cais-api"),
        allowed: Allowed::Only(&[]),
        rule: "the API crate is wire types and a client: no cais crate",
    },
    DependencyRule {
        crates: Crates::Named("cais-store"),
        allowed: Allowed::Only(&[]),
        rule: "the store is bytes in and out: it depends on no other cais crate",
    },
    DependencyRule {
        crates: Crates::Named("cais-client"),
        allowed: Allowed::Only(&["cais-api"]),
        rule: "the engine client depends on the API crate only",
    },
    DependencyRule {
        crates: Crates::NameContains(&["compose", "orchestrator", "apiserver", "scheduler", "controller", "agent"]),
        allowed: Allowed::Never(&["cais-engine", "cais-runtime", "cais-image"]),
        rule: "compose and the orchestrator talk to the engine through its API, never its internals",
    },
    DependencyRule {
        crates: Crates::Named("cais-kube"),
        allowed: Allowed::Only(&[]),
        rule: "the Kubernetes client speaks to any API server over HTTPS: it depends on no cais crate (the API server is only its tests' fixture)",
    },
    DependencyRule {
        crates: Crates::Named("cais-agent"),
        allowed: Allowed::Only(&["cais-api", "cais-client", "cais-kube"]),
        rule: "the node agent drives the engine through its client and the API server through the Kubernetes client, nothing else",
    },
    DependencyRule {
        crates: Crates::Named("cais-buildkit"),
        allowed: Allowed::Never(&["cais-engine", "cais-net", "cais-api", "cais-client", "cais-compose", "cais-registry-server"]),
        rule: "BuildKit's protocol builds through the executor: the engine hands it connections and a host, it knows no engine, network or API",
    },
    DependencyRule {
        crates: Crates::AllBut(&["cais"]),
        allowed: Allowed::Never(&["cais-testkit"]),
        rule: "the testkit is for tests: only a dev-dependency (and of the cais binary)",
    },
];

/// Crates the rules name that do not exist yet; any other name a rule uses
/// must be a workspace crate, so a typo cannot make a rule vacuous.
const FUTURE_CRATES: &[&str] = &["cais-client"];

/// Crates that may print: the binary, the automation and the test fixtures.
const PRINTING_CRATES: &[&str] = &["cais", "xtask", "cais-testkit"];

/// A `SAFETY:` comment may sit this many code lines above the line of its
/// `unsafe` (a block is often an argument of a call or the right-hand side
/// of a `let` that starts a few lines higher).
const SAFETY_MAX_CODE_LINES_ABOVE: usize = 3;

/// Fewer words cannot say why a call is sound ("plain prctl.").
const SAFETY_MIN_WORDS: usize = 4;

/// What can be wrong with the comment an `unsafe` needs.
#[derive(Debug, PartialEq)]
enum SafetyProblem {
    Missing,
    /// Too short to give a reason, or pointing elsewhere ("as above").
    Boilerplate,
}

const ARCHITECTURE_MAX_LINES: usize = 200;

#[test]
fn crate_dependencies_follow_architecture() {
    let workspace = Workspace::load();
    let mut failures = Vec::new();
    for rule in DEPENDENCY_RULES {
        for name in rule.names() {
            if !workspace.packages.contains_key(name) && !FUTURE_CRATES.contains(&name) {
                failures.push(format!(
                    "xtask/src/tidy.rs: the rule \"{}\" names {name}, which is no workspace crate",
                    rule.rule
                ));
            }
        }
    }
    for package in workspace.packages.values() {
        for rule in DEPENDENCY_RULES
            .iter()
            .filter(|r| r.applies_to(&package.name))
        {
            for (dep, chain) in workspace.normal_closure(&package.name) {
                if rule.forbids(&package.name, &dep) {
                    let direct = &chain[0];
                    let line = line_of_dependency(&package.manifest, direct);
                    let through = if chain.len() > 1 {
                        format!(" (through {})", chain.join(" -> "))
                    } else {
                        String::new()
                    };
                    failures.push(format!(
                        "{}:{line}: {} depends on {dep}{through}; rule: {}",
                        workspace.relative(&package.manifest),
                        package.name,
                        rule.rule
                    ));
                }
            }
        }
    }
    report(failures);
}

#[test]
fn libraries_do_not_print() {
    let workspace = Workspace::load();
    let mut failures = Vec::new();
    for file in workspace.rust_files() {
        let Some(package) = workspace.package_of(&file) else {
            continue;
        };
        if PRINTING_CRATES.contains(&package.name.as_str())
            || !workspace.is_library_code(package, &file)
        {
            continue;
        }
        let source = Source::read(&file);
        let test_lines = source.test_lines();
        for (i, line) in source.code.iter().enumerate() {
            if test_lines[i] {
                continue;
            }
            for name in macro_calls(line) {
                if ["print", "println", "eprint", "eprintln"].contains(&name) {
                    failures.push(format!(
                        "{}:{}: `{name}!` in library crate {}; rule: libraries log through \
                         `tracing` (warn!/info!/debug!/error!) and leave printing to the binary",
                        workspace.relative(&file),
                        i + 1,
                        package.name
                    ));
                }
            }
        }
    }
    report(failures);
}

#[test]
fn every_unsafe_has_a_safety_comment() {
    let workspace = Workspace::load();
    let mut failures = Vec::new();
    for file in workspace.rust_files() {
        let source = Source::read(&file);
        for (line, problem) in source.unsafe_safety_problems() {
            let what = match problem {
                SafetyProblem::Missing => "`unsafe` without a `// SAFETY:` comment",
                SafetyProblem::Boilerplate => "a `// SAFETY:` comment that says nothing",
            };
            failures.push(format!(
                "{}:{line}: {what}; rule: a `// SAFETY:` comment on the line of each `unsafe` \
                 or above it, with at most {SAFETY_MAX_CODE_LINES_ABOVE} code lines and no \
                 blank line or other `unsafe` in between, says in at least \
                 {SAFETY_MIN_WORDS} words of its own (not \"as above\") why it is sound",
                workspace.relative(&file),
            ));
        }
    }
    report(failures);
}

#[test]
fn architecture_md_is_short() {
    let workspace = Workspace::load();
    let path = workspace.root.join("ARCHITECTURE.md");
    let text = std::fs::read_to_string(&path).expect("ARCHITECTURE.md is readable");
    let lines = text.lines().count();
    if lines >= ARCHITECTURE_MAX_LINES {
        report(vec![format!(
            "ARCHITECTURE.md:{lines}: {lines} lines; rule: ARCHITECTURE.md has fewer than \
             {ARCHITECTURE_MAX_LINES} lines (per-file detail belongs in each crate's `//!` docs)"
        )]);
    }
}

fn report(failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "\n{} tidy violation(s):\n{}\n",
        failures.len(),
        failures.join("\n")
    );
}

impl DependencyRule {
    fn applies_to(&self, package: &str) -> bool {
        match self.crates {
            Crates::Named(name) => package == name,
            Crates::AnyOf(names) => names.contains(&package),
            Crates::NameContains(words) => words.iter().any(|w| package.contains(w)),
            Crates::AllBut(names) => !names.contains(&package),
        }
    }

    /// Whether `package`, to which the rule applies, may not depend on `dep`.
    fn forbids(&self, package: &str, dep: &str) -> bool {
        dep != package
            && match self.allowed {
                Allowed::Never(names) => names.contains(&dep),
                Allowed::Only(names) => !names.contains(&dep),
            }
    }

    /// Every crate name the rule spells out.
    fn names(&self) -> Vec<&'static str> {
        let mut names = match self.crates {
            Crates::Named(name) => vec![name],
            Crates::AnyOf(names) => names.to_vec(),
            Crates::NameContains(_) => Vec::new(),
            Crates::AllBut(names) => names.to_vec(),
        };
        match self.allowed {
            Allowed::Never(allowed) | Allowed::Only(allowed) => names.extend(allowed),
        }
        names
    }
}

struct Package {
    name: String,
    manifest: PathBuf,
    /// Workspace crates this one lists as normal dependencies.
    normal_deps: Vec<String>,
}

impl Package {
    fn dir(&self) -> &Path {
        self.manifest
            .parent()
            .expect("a manifest is in a directory")
    }
}

struct Workspace {
    root: PathBuf,
    packages: BTreeMap<String, Package>,
}

impl Workspace {
    fn load() -> Workspace {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let out = Command::new(cargo)
            .args([
                "metadata",
                "--format-version",
                "1",
                "--no-deps",
                "--offline",
            ])
            .current_dir(crate::workspace())
            .output()
            .expect("running cargo metadata");
        assert!(
            out.status.success(),
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let meta: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
        let root = PathBuf::from(meta["workspace_root"].as_str().expect("workspace_root"));
        let packages = meta["packages"].as_array().expect("packages");
        let names: BTreeSet<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
        let packages = packages
            .iter()
            .map(|p| {
                let name = p["name"].as_str().expect("package name").to_owned();
                let normal_deps = p["dependencies"]
                    .as_array()
                    .expect("dependencies")
                    .iter()
                    .filter(|d| d["kind"].is_null())
                    .filter_map(|d| d["name"].as_str())
                    .filter(|d| names.contains(d))
                    .map(str::to_owned)
                    .collect();
                let manifest = PathBuf::from(p["manifest_path"].as_str().expect("manifest_path"));
                let package = Package {
                    name: name.clone(),
                    manifest,
                    normal_deps,
                };
                (name, package)
            })
            .collect();
        Workspace { root, packages }
    }

    /// Every workspace crate `package` depends on through normal
    /// dependencies, each with one chain of crates leading to it (the
    /// first is a direct dependency, the last the crate itself).
    fn normal_closure(&self, package: &str) -> BTreeMap<String, Vec<String>> {
        let mut reached: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut queue = VecDeque::from([(package.to_owned(), Vec::new())]);
        while let Some((name, chain)) = queue.pop_front() {
            for dep in &self.packages[&name].normal_deps {
                if dep == package || reached.contains_key(dep) {
                    continue;
                }
                let mut chain: Vec<String> = chain.clone();
                chain.push(dep.clone());
                reached.insert(dep.clone(), chain.clone());
                queue.push_back((dep.clone(), chain));
            }
        }
        reached
    }

    /// Every `.rs` file of the repository outside build output.
    fn rust_files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        let mut dirs = vec![self.root.clone()];
        while let Some(dir) = dirs.pop() {
            let entries = std::fs::read_dir(&dir).expect("reading a source directory");
            for entry in entries {
                let entry = entry.expect("reading a directory entry");
                let path = entry.path();
                let name = entry.file_name();
                let name = name.to_string_lossy();
                let kind = entry.file_type().expect("file type");
                if kind.is_dir() && !name.starts_with('.') && name != "target" {
                    dirs.push(path);
                } else if kind.is_file() && name.ends_with(".rs") {
                    files.push(path);
                }
            }
        }
        files.sort();
        files
    }

    /// The crate a file belongs to: the one with the deepest directory
    /// holding it.
    fn package_of(&self, file: &Path) -> Option<&Package> {
        self.packages
            .values()
            .filter(|p| file.starts_with(p.dir()))
            .max_by_key(|p| p.dir().components().count())
    }

    /// Whether `file` is part of a crate's library or binary code: in
    /// `src/`, not a `build.rs`, and not a module the crate declares under
    /// `#[cfg(test)]` (nor one inside such a module).
    fn is_library_code(&self, package: &Package, file: &Path) -> bool {
        let src = package.dir().join("src");
        file.starts_with(&src) && !test_module_paths(&src).iter().any(|t| file.starts_with(t))
    }

    fn relative(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .display()
            .to_string()
    }
}

/// The files and directories of the modules declared as `#[cfg(test)] mod
/// NAME;` anywhere under `src`.
fn test_module_paths(src: &Path) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("reading a source directory") {
            let path = entry.expect("reading a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            // `mod x;` in lib.rs, main.rs or mod.rs is a sibling file; in
            // foo.rs it lives under foo/.
            let stem = path.file_stem().expect("a file name").to_string_lossy();
            let parent = path.parent().expect("a file is in a directory");
            let module_dir = if ["lib", "main", "mod"].contains(&stem.as_ref()) {
                parent.to_path_buf()
            } else {
                parent.join(stem.as_ref())
            };
            for name in Source::read(&path).test_module_names() {
                paths.push(module_dir.join(format!("{name}.rs")));
                paths.push(module_dir.join(&name));
            }
        }
    }
    paths
}

/// The 1-based line of `crate_name`'s entry in a manifest's dependency
/// tables (0 when it cannot be found, which a failure message still shows).
fn line_of_dependency(manifest: &Path, crate_name: &str) -> usize {
    let text = std::fs::read_to_string(manifest).expect("reading a manifest");
    let mut in_dependencies = false;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.starts_with('[') {
            in_dependencies = line.ends_with("dependencies]") && !line.contains("dev-");
            continue;
        }
        let key = line
            .split(['=', '.', ' '])
            .next()
            .unwrap_or_default()
            .trim_matches('"');
        if in_dependencies && key == crate_name {
            return i + 1;
        }
    }
    0
}

/// The names of the macros called on a line of code (`name!`).
fn macro_calls(code: &str) -> Vec<&str> {
    let mut names = Vec::new();
    for (bang, _) in code.match_indices('!') {
        let before = &code[..bang];
        let start = before
            .rfind(|c: char| !is_ident_char(c))
            .map_or(0, |i| i + 1);
        let name = &before[start..];
        let is_macro = code[bang + 1..].starts_with(['(', '[', '{']);
        if !name.is_empty() && is_macro {
            names.push(name);
        }
    }
    names
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// A Rust source file, line by line: the code with comments and the
/// insides of string and character literals blanked, and the text of each
/// line's `//` comment.
struct Source {
    code: Vec<String>,
    comments: Vec<String>,
}

impl Source {
    fn read(path: &Path) -> Source {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        Source::parse(&text)
    }

    fn parse(text: &str) -> Source {
        enum State {
            Code,
            LineComment,
            BlockComment(usize),
            Str,
            RawStr(usize),
        }
        let chars: Vec<char> = text.chars().collect();
        let mut code = vec![String::new()];
        let mut comments = vec![String::new()];
        let mut state = State::Code;
        let mut i = 0;
        let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
        while i < chars.len() {
            let c = chars[i];
            let line = code.len() - 1;
            if c == '\n' {
                if matches!(state, State::LineComment) {
                    state = State::Code;
                }
                code.push(String::new());
                comments.push(String::new());
                i += 1;
                continue;
            }
            match state {
                State::Code => {
                    let prev_is_ident = i > 0 && is_ident_char(chars[i - 1]);
                    if c == '/' && at(i + 1) == '/' {
                        state = State::LineComment;
                        code[line].push_str("  ");
                        i += 2;
                        continue;
                    } else if c == '/' && at(i + 1) == '*' {
                        state = State::BlockComment(1);
                        code[line].push_str("  ");
                        i += 2;
                        continue;
                    } else if c == '"' {
                        state = State::Str;
                    } else if c == 'r'
                        && (!prev_is_ident
                            || (at(i - 1) == 'b' && i > 1 && !is_ident_char(chars[i - 2])))
                    {
                        let hashes = chars[i + 1..].iter().take_while(|&&h| h == '#').count();
                        if at(i + 1 + hashes) == '"' {
                            code[line].extend(&chars[i..i + 2 + hashes]);
                            state = State::RawStr(hashes);
                            i += 2 + hashes;
                            continue;
                        }
                    } else if c == '\'' {
                        // A character literal ('x', '\n', '\u{1F600}'), or
                        // else a lifetime or label, which stays code.
                        let end = if at(i + 1) == '\\' {
                            (i + 3..chars.len().min(i + 12)).find(|&j| chars[j] == '\'')
                        } else if at(i + 2) == '\'' {
                            Some(i + 2)
                        } else {
                            None
                        };
                        if let Some(end) = end {
                            code[line].push('\'');
                            code[line].extend(std::iter::repeat_n(' ', end - i - 1));
                            code[line].push('\'');
                            i = end + 1;
                            continue;
                        }
                    }
                    code[line].push(c);
                }
                State::LineComment => {
                    comments[line].push(c);
                    code[line].push(' ');
                }
                State::BlockComment(depth) => {
                    code[line].push(' ');
                    if c == '*' && at(i + 1) == '/' {
                        code[line].push(' ');
                        state = if depth == 1 {
                            State::Code
                        } else {
                            State::BlockComment(depth - 1)
                        };
                        i += 2;
                        continue;
                    } else if c == '/' && at(i + 1) == '*' {
                        code[line].push(' ');
                        state = State::BlockComment(depth + 1);
                        i += 2;
                        continue;
                    }
                }
                State::Str => {
                    if c == '\\' && at(i + 1) != '\n' {
                        code[line].push_str("  ");
                        i += 2;
                        continue;
                    } else if c == '"' {
                        code[line].push('"');
                        state = State::Code;
                    } else {
                        code[line].push(' ');
                    }
                }
                State::RawStr(hashes) => {
                    let closes = c == '"'
                        && chars[i + 1..]
                            .iter()
                            .take(hashes)
                            .filter(|&&h| h == '#')
                            .count()
                            == hashes;
                    if closes {
                        code[line].extend(&chars[i..i + 1 + hashes]);
                        state = State::Code;
                        i += 1 + hashes;
                        continue;
                    }
                    code[line].push(' ');
                }
            }
            i += 1;
        }
        Source { code, comments }
    }

    /// Which lines belong to an item under `#[cfg(test)]`: from the
    /// attribute to the item's closing brace or semicolon.
    fn test_lines(&self) -> Vec<bool> {
        let mut test = vec![false; self.code.len()];
        for (start, end) in self.test_items() {
            test[start..=end].iter_mut().for_each(|t| *t = true);
        }
        test
    }

    /// The modules declared `#[cfg(test)] mod NAME;`, in other files.
    fn test_module_names(&self) -> Vec<String> {
        self.test_items()
            .into_iter()
            .filter_map(|(start, end)| {
                let item = self.code[start + 1..=end].join(" ");
                let item = item.trim().strip_suffix(';')?;
                let name = item.strip_prefix("mod ").or_else(|| {
                    item.split_once(") mod ")
                        .filter(|(vis, _)| vis.starts_with("pub("))
                        .map(|(_, name)| name)
                })?;
                Some(name.trim().to_owned())
            })
            .collect()
    }

    /// (attribute line, last line) of each item under `#[cfg(test)]`.
    fn test_items(&self) -> Vec<(usize, usize)> {
        let mut items = Vec::new();
        let mut line = 0;
        while line < self.code.len() {
            if self.code[line].trim() != "#[cfg(test)]" {
                line += 1;
                continue;
            }
            let start = line;
            let mut depth = 0usize;
            let mut end = None;
            'item: for (l, text) in self.code.iter().enumerate().skip(start + 1) {
                for c in text.chars() {
                    match c {
                        '(' | '[' | '{' => depth += 1,
                        ')' | ']' => depth = depth.saturating_sub(1),
                        '}' => {
                            depth = depth.saturating_sub(1);
                            if depth == 0 {
                                end = Some(l);
                                break 'item;
                            }
                        }
                        ';' if depth == 0 => {
                            end = Some(l);
                            break 'item;
                        }
                        _ => {}
                    }
                }
            }
            let end = end.unwrap_or(self.code.len() - 1);
            items.push((start, end));
            line = end + 1;
        }
        items
    }

    /// The 1-based lines holding an `unsafe` whose `SAFETY:` comment is
    /// missing (on its line, or above it passing over only comment lines,
    /// attributes and at most [`SAFETY_MAX_CODE_LINES_ABOVE`] code lines,
    /// and no blank line or other `unsafe`) or says nothing.
    fn unsafe_safety_problems(&self) -> Vec<(usize, SafetyProblem)> {
        let has_unsafe = |l: usize| has_word(&self.code[l], "unsafe");
        let mut problems = Vec::new();
        for line in (0..self.code.len()).filter(|&l| has_unsafe(l)) {
            let mut code_lines = 0;
            let mut comment = None;
            for l in (0..=line).rev() {
                if self.comments[l].contains("SAFETY:") {
                    comment = Some(l);
                    break;
                }
                let code = self.code[l].trim();
                let comment_only = code.is_empty() && !self.comments[l].is_empty();
                if l != line {
                    if code.is_empty() && !comment_only || has_unsafe(l) {
                        break;
                    }
                    if !comment_only && !code.starts_with("#[") {
                        code_lines += 1;
                        if code_lines > SAFETY_MAX_CODE_LINES_ABOVE {
                            break;
                        }
                    }
                }
            }
            match comment {
                None => problems.push((line + 1, SafetyProblem::Missing)),
                Some(l) if self.says_nothing(l) => {
                    problems.push((line + 1, SafetyProblem::Boilerplate))
                }
                Some(_) => {}
            }
        }
        problems
    }

    /// Whether the `SAFETY:` comment starting on line `l` (with the comment
    /// lines that continue it) is too short to give a reason, or defers to
    /// another one.
    fn says_nothing(&self, l: usize) -> bool {
        let (_, first) = self.comments[l]
            .split_once("SAFETY:")
            .expect("the line holds SAFETY:");
        let mut text = first.to_owned();
        // A comment of its own lines goes on until code; one trailing code
        // is that line's alone.
        let own_lines = self.code[l].trim().is_empty();
        for next in (l + 1..self.code.len()).take_while(|_| own_lines) {
            let continues = self.code[next].trim().is_empty()
                && !self.comments[next].is_empty()
                && !self.comments[next].contains("SAFETY:");
            if !continues {
                break;
            }
            text.push(' ');
            text.push_str(&self.comments[next]);
        }
        let text = text.trim().to_lowercase();
        let defers = ["as above", "see above", "same as above", "likewise"]
            .iter()
            .any(|p| text.starts_with(p));
        defers || text.split_whitespace().count() < SAFETY_MIN_WORDS
    }
}

fn has_word(code: &str, word: &str) -> bool {
    code.match_indices(word).any(|(i, _)| {
        let before = code[..i].chars().next_back();
        let after = code[i + word.len()..].chars().next();
        !before.is_some_and(is_ident_char) && !after.is_some_and(is_ident_char)
    })
}

#[cfg(test)]
mod checker_tests {
    use super::*;

    #[test]
    fn literals_and_comments_are_not_code() {
        let src = Source::parse(
            "let a = \"unsafe { println!() }\"; // unsafe\n\
             let b = r#\"eprintln!(\"x\")\"#; let c = '{';\n\
             /* unsafe\n println!() */ let d = 'a'; fn f<'a>(x: &'a str) {}\n",
        );
        assert!(!src.code.iter().any(|l| has_word(l, "unsafe")));
        assert!(src.code.iter().all(|l| macro_calls(l).is_empty()));
        assert_eq!(src.comments[0], " unsafe");
        assert!(src.code[3].contains("fn f<'a>(x: &'a str) {}"));
    }

    #[test]
    fn safety_comment_rule() {
        let src = Source::parse(
            "// SAFETY: documented, with a reason.\n\
             unsafe { a() };\n\
             unsafe { b() };\n\
             let x = unsafe { c() }; // SAFETY: trailing, its own reason.\n\
             // SAFETY: a multi-line comment\n\
             // that goes on.\n\
             let y = f(\n\
                 g,\n\
                 unsafe { d() },\n\
             );\n\
             // SAFETY: too far up.\n\
             let z = f(\n\
                 g,\n\
                 h,\n\
                 i,\n\
                 unsafe { e() },\n\
             );\n\
             // SAFETY: a blank line breaks it.\n\
             \n\
             unsafe impl Send for T {}\n\
             // SAFETY: a reason, in a few words.\n\
             unsafe { f() };\n\
             // SAFETY: as above.\n\
             unsafe { g() };\n\
             // SAFETY: plain prctl.\n\
             unsafe { h() };\n\
             unsafe { i() }; // SAFETY: too short.\n\
             // SAFETY: a comment of its own lines\n\
             // may wrap.\n\
             unsafe { j() };\n",
        );
        use SafetyProblem::*;
        assert_eq!(
            src.unsafe_safety_problems(),
            vec![
                (3, Missing),
                (16, Missing),
                (20, Missing),
                (24, Boilerplate),
                (26, Boilerplate),
                (27, Boilerplate),
            ]
        );
    }

    #[test]
    fn cfg_test_items_are_test_code() {
        let src = Source::parse(
            "fn lib() { println!(); }\n\
             #[cfg(test)]\n\
             mod fake;\n\
             #[cfg(test)]\n\
             mod tests {\n\
                 fn t() { println!(\"{}\", '}'); }\n\
             }\n\
             fn after() {}\n",
        );
        assert_eq!(
            src.test_lines(),
            [false, true, true, true, true, true, true, false, false]
        );
        assert_eq!(src.test_module_names(), ["fake"]);
    }

    #[test]
    fn dependency_rules_are_transitive() {
        let package = |name: &str, deps: &[&str]| Package {
            name: name.into(),
            manifest: PathBuf::from(format!("/w/{name}/Cargo.toml")),
            normal_deps: deps.iter().map(|d| d.to_string()).collect(),
        };
        let workspace = Workspace {
            root: "/w".into(),
            packages: [
                package("cais-runtime", &["cais-cgroups"]),
                package("cais-cgroups", &["cais-registry"]),
                package("cais-registry", &[]),
            ]
            .into_iter()
            .map(|p| (p.name.clone(), p))
            .collect(),
        };
        let closure = workspace.normal_closure("cais-runtime");
        assert_eq!(closure["cais-registry"], ["cais-cgroups", "cais-registry"]);
        let runtime_rule = &DEPENDENCY_RULES[0];
        assert!(runtime_rule.applies_to("cais-runtime"));
        assert!(runtime_rule.forbids("cais-runtime", "cais-registry"));
        assert!(!runtime_rule.forbids("cais-runtime", "cais-cgroups"));
        let agent_rule = DEPENDENCY_RULES
            .iter()
            .find(|r| r.applies_to("cais-node-agent"))
            .expect("a rule for agents");
        assert!(agent_rule.forbids("cais-node-agent", "cais-engine"));
        assert!(!agent_rule.forbids("cais-node-agent", "cais-client"));
    }
}
