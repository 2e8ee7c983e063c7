//! From Compose files to a [`Project`]: which files (`-f`, `COMPOSE_FILE`,
//! or `compose.yaml` and friends in the working directory or a parent,
//! with its `*.override.*` file), the environment (`.env` or
//! `--env-file`, the process environment winning), then per file: parse,
//! interpolate, check the schema, resolve `extends` and `include`, build
//! each service once to catch bad values while the file is still known;
//! then merge the files in order, pick the project name, build the model,
//! apply profiles and check references (`depends_on`, networks, volumes,
//! secrets, configs; dependency cycles). Nothing here talks to a daemon.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::interpolate::{self, Env};
use crate::merge::{self, merge};
use crate::model::{self, Context, FileObject, Network, Project, Service, Volume};
use crate::schema;
use crate::yaml::{self, MergeTag};
use crate::{dotenv, labels};

/// The files `up` looks for when no `-f` is given, in order.
pub const DEFAULT_FILES: &[&str] = &[
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
];

/// What the command line and environment say about the project.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `-f` files (relative to `cwd`), in order; empty to look for one.
    pub files: Vec<PathBuf>,
    /// `--project-directory`.
    pub project_directory: Option<PathBuf>,
    /// `-p`.
    pub project_name: Option<String>,
    /// `--env-file`s; empty for the project directory's `.env`.
    pub env_files: Vec<PathBuf>,
    /// `--profile`s.
    pub profiles: Vec<String>,
    /// Services named on the command line: their profiles become active.
    pub services: Vec<String>,
    /// The process environment.
    pub environment: BTreeMap<String, String>,
    /// The working directory.
    pub cwd: PathBuf,
}

impl Options {
    /// Options with the process's environment and working directory.
    pub fn from_process() -> Options {
        Options {
            environment: std::env::vars().collect(),
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
            ..Options::default()
        }
    }
}

/// `[a-z0-9][a-z0-9_-]*`.
pub fn valid_project_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// A directory's name as a project name: lower case, only `a-z0-9_-`,
/// no leading `_` or `-` (`My.Proj_X` → `myproj_x`).
pub fn normalize_project_name(name: &str) -> String {
    name.to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-')
        .collect::<String>()
        .trim_start_matches(['_', '-'])
        .to_string()
}

fn checked_name(name: &str) -> Result<String> {
    if name.is_empty() {
        return Err(Error::ProjectName {
            name: name.into(),
            reason: "project name must not be empty".into(),
        });
    }
    if !valid_project_name(name) {
        return Err(Error::ProjectName {
            name: name.into(),
            reason: "must contain only lowercase letters, decimal digits, dashes, and underscores, and must begin with a lowercase letter or decimal digit".into(),
        });
    }
    Ok(name.to_string())
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The override file that goes with a default file
/// (`compose.yaml` → `compose.override.yaml` or `.yml`).
fn override_file(file: &Path) -> Option<PathBuf> {
    let dir = file.parent()?;
    let stem = file.file_stem()?.to_str()?;
    ["yaml", "yml"]
        .iter()
        .map(|ext| dir.join(format!("{stem}.override.{ext}")))
        .find(|p| p.is_file())
}

fn find_default(cwd: &Path) -> Result<Vec<PathBuf>> {
    let mut dir = Some(cwd);
    while let Some(d) = dir {
        if let Some(f) = DEFAULT_FILES
            .iter()
            .map(|f| d.join(f))
            .find(|p| p.is_file())
        {
            let mut files = vec![f.clone()];
            files.extend(override_file(&f));
            return Ok(files);
        }
        dir = d.parent();
    }
    Err(Error::NoConfigFile {
        dir: cwd.to_path_buf(),
        looked_for: DEFAULT_FILES.join(", "),
    })
}

/// One file, read: its tree (interpolated, checked, `extends` resolved and
/// paths made absolute) and its merge tags.
struct Loaded {
    path: PathBuf,
    value: Value,
    tags: BTreeMap<String, MergeTag>,
}

/// The state shared while loading one project.
struct Loader<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
    warnings: Vec<String>,
    unset: BTreeSet<String>,
    /// Files on the current `include` / `extends` path, to stop cycles.
    stack: Vec<PathBuf>,
}

impl Loader<'_> {
    /// Parses, interpolates and checks one file.
    fn parse_file(
        &mut self,
        path: &Path,
    ) -> Result<(Value, BTreeMap<String, MergeTag>, yaml::Document)> {
        let text = read(path)?;
        let doc = yaml::parse(&text).map_err(|e| Error::Yaml {
            file: path.to_path_buf(),
            line: e.line,
            column: e.column,
            message: e.message,
        })?;
        let mut value = doc.value.clone();
        if value.is_null() {
            value = Value::Object(Map::new());
        }
        let mut env = Env::new(self.env);
        interpolate::tree(&mut value, "", &mut env).map_err(|(key, p)| Error::Interpolation {
            file: path.to_path_buf(),
            key,
            message: p.to_string(),
        })?;
        for name in env.unset {
            if self.unset.insert(name.clone()) {
                self.warnings.push(format!(
                    "The \"{name}\" variable is not set. Defaulting to a blank string."
                ));
            }
        }
        schema::check(&schema::FILE, &value, "").map_err(|p| {
            // An unknown key's own line, else the line of the value at fault.
            let unknown = p
                .message
                .strip_prefix("additional properties '")
                .and_then(|r| r.split_once('\''))
                .map(|(k, _)| yaml::join(&p.path, k));
            let line = line_of(&doc, unknown.as_deref().unwrap_or(&p.path));
            let (key, message) = split_problem(&p);
            Error::Invalid {
                file: path.to_path_buf(),
                key,
                message,
                line,
            }
        })?;
        if value.get("version").is_some() {
            self.warnings.push(format!(
                "{}: the attribute `version` is obsolete, it will be ignored, please remove it to avoid potential confusion",
                path.display()
            ));
        }
        let tags = doc.tags.clone();
        Ok((value, tags, doc))
    }

    /// Loads one file of a project whose relative paths start at `base`.
    fn load_file(&mut self, path: &Path, base: &Path) -> Result<Loaded> {
        if self.stack.iter().any(|p| p == path) {
            return Err(Error::Project(format!(
                "include cycle: {} is already being loaded",
                path.display()
            )));
        }
        self.stack.push(path.to_path_buf());
        let result = self.load_file_inner(path, base);
        self.stack.pop();
        result
    }

    fn load_file_inner(&mut self, path: &Path, base: &Path) -> Result<Loaded> {
        let (mut value, tags, doc) = self.parse_file(path)?;
        merge::rebase_files(&mut value, base);
        self.resolve_extends(&mut value, path, &tags)?;
        self.resolve_includes(&mut value, path, base)?;
        // Build each service once now, so a bad value is reported with the
        // file it is in.
        if let Some(Value::Object(services)) = value.get("services") {
            for (name, s) in services {
                let mut s = s.clone();
                if let Some(o) = s.as_object_mut() {
                    if !o.contains_key("image") && !o.contains_key("build") {
                        o.insert("image".into(), Value::String("placeholder".into()));
                    }
                }
                let cx = Context {
                    base,
                    lookup: self.env,
                };
                let key = format!("services.{name}");
                model::service(name, &s, &cx, &key).map_err(|e| Error::Value {
                    file: format!(
                        "{}{}",
                        path.display(),
                        line_of(&doc, &e.path)
                            .map(|l| format!(":{l}"))
                            .unwrap_or_default()
                    ),
                    key: e.path,
                    message: e.message,
                })?;
            }
        }
        Ok(Loaded {
            path: path.to_path_buf(),
            value,
            tags,
        })
    }

    /// Replaces every `extends` of `file`'s services by the merge of the
    /// base service and the service.
    fn resolve_extends(
        &mut self,
        value: &mut Value,
        file: &Path,
        tags: &BTreeMap<String, MergeTag>,
    ) -> Result<()> {
        let Some(Value::Object(services)) = value.get("services").cloned() else {
            return Ok(());
        };
        let mut done: BTreeMap<String, Value> = BTreeMap::new();
        for name in services.keys() {
            let mut chain = Vec::new();
            let resolved = self.extended(name, &services, file, tags, &mut done, &mut chain)?;
            done.insert(name.clone(), resolved);
        }
        if let Some(Value::Object(out)) = value.get_mut("services") {
            for (name, v) in done {
                out.insert(name, v);
            }
        }
        Ok(())
    }

    fn extended(
        &mut self,
        name: &str,
        services: &Map<String, Value>,
        file: &Path,
        tags: &BTreeMap<String, MergeTag>,
        done: &mut BTreeMap<String, Value>,
        chain: &mut Vec<String>,
    ) -> Result<Value> {
        if let Some(v) = done.get(name) {
            return Ok(v.clone());
        }
        let Some(service) = services.get(name) else {
            return Err(Error::Value {
                file: file.display().to_string(),
                key: format!(
                    "services.{}.extends",
                    chain.last().map(String::as_str).unwrap_or(name)
                ),
                message: format!("cannot extend service {name:?}: no such service"),
            });
        };
        let mut service = service.clone();
        let Some(ext) = service.as_object_mut().and_then(|o| o.remove("extends")) else {
            return Ok(service);
        };
        if chain.iter().any(|c| c == name) {
            chain.push(name.to_string());
            return Err(Error::Value {
                file: file.display().to_string(),
                key: format!("services.{name}.extends"),
                message: format!("circular reference: {}", chain.join(" -> ")),
            });
        }
        chain.push(name.to_string());
        let (base_name, base_file) = match &ext {
            Value::String(s) => (s.clone(), None),
            Value::Object(o) => (
                o.get("service")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                o.get("file").and_then(Value::as_str).map(str::to_string),
            ),
            _ => (String::new(), None),
        };
        let mut base = match base_file {
            None => self.extended(&base_name, services, file, tags, done, chain)?,
            Some(f) => {
                let dir = file.parent().unwrap_or(Path::new("/"));
                let other = dir.join(&f);
                if self.stack.contains(&other) {
                    return Err(Error::Value {
                        file: file.display().to_string(),
                        key: format!("services.{name}.extends"),
                        message: format!("circular reference through {}", other.display()),
                    });
                }
                self.stack.push(other.clone());
                let loaded = (|| {
                    let (mut v, other_tags, _) = self.parse_file(&other)?;
                    let other_dir = other.parent().unwrap_or(Path::new("/")).to_path_buf();
                    merge::rebase_files(&mut v, &other_dir);
                    self.resolve_extends(&mut v, &other, &other_tags)?;
                    Ok::<_, Error>(v)
                })();
                self.stack.pop();
                let v = loaded?;
                match v.get("services").and_then(|s| s.get(&base_name)) {
                    Some(s) => s.clone(),
                    None => {
                        return Err(Error::Value {
                            file: file.display().to_string(),
                            key: format!("services.{name}.extends"),
                            message: format!(
                                "cannot extend service {base_name:?}: not defined in {}",
                                other.display()
                            ),
                        })
                    }
                }
            }
        };
        chain.pop();
        merge(&mut base, service, tags, &format!("services.{name}"));
        Ok(base)
    }

    /// Loads the projects `include` names and adds their resources.
    fn resolve_includes(&mut self, value: &mut Value, file: &Path, base: &Path) -> Result<()> {
        let Some(Value::Array(includes)) = value.as_object_mut().and_then(|o| o.remove("include"))
        else {
            return Ok(());
        };
        for (i, inc) in includes.iter().enumerate() {
            let (paths, project_dir, env_files) = match inc {
                Value::String(s) => (vec![s.clone()], None, Vec::new()),
                Value::Object(o) => {
                    let list = |k: &str| -> Vec<String> {
                        match o.get(k) {
                            Some(Value::String(s)) => vec![s.clone()],
                            Some(Value::Array(a)) => a
                                .iter()
                                .filter_map(|x| x.as_str().map(str::to_string))
                                .collect(),
                            _ => Vec::new(),
                        }
                    };
                    (
                        list("path"),
                        o.get("project_directory")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                        list("env_file"),
                    )
                }
                _ => continue,
            };
            let files: Vec<PathBuf> = paths.iter().map(|p| base.join(p)).collect();
            let Some(first) = files.first() else {
                return Err(Error::Value {
                    file: file.display().to_string(),
                    key: format!("include.{i}"),
                    message: "an include needs a path".into(),
                });
            };
            let dir = match project_dir {
                Some(d) => base.join(d),
                None => first.parent().unwrap_or(base).to_path_buf(),
            };
            // The included project's own .env; the including environment wins.
            let mut own = BTreeMap::new();
            let env_paths: Vec<PathBuf> = if env_files.is_empty() {
                vec![dir.join(".env")]
                    .into_iter()
                    .filter(|p| p.is_file())
                    .collect()
            } else {
                env_files.iter().map(|f| base.join(f)).collect()
            };
            for p in &env_paths {
                for (k, v) in read_env_file(p, self.env)? {
                    own.insert(k, v);
                }
            }
            let parent = self.env;
            let lookup = move |k: &str| parent(k).or_else(|| own.get(k).cloned());
            let mut sub = Loader {
                env: &lookup,
                warnings: Vec::new(),
                unset: self.unset.clone(),
                stack: self.stack.clone(),
            };
            let mut merged = Value::Object(Map::new());
            for f in &files {
                let loaded = sub.load_file(f, &dir)?;
                merge(&mut merged, loaded.value, &loaded.tags, "");
            }
            self.warnings.append(&mut sub.warnings);
            self.unset.extend(sub.unset);
            let target = value.as_object_mut().expect("a file is a mapping");
            for section in ["services", "networks", "volumes", "secrets", "configs"] {
                let Some(Value::Object(imported)) = merged.get(section) else {
                    continue;
                };
                let entry = target
                    .entry(section)
                    .or_insert_with(|| Value::Object(Map::new()));
                let Some(existing) = entry.as_object_mut() else {
                    continue;
                };
                for (k, v) in imported {
                    if existing.contains_key(k) && section == "services" {
                        return Err(Error::Value {
                            file: file.display().to_string(),
                            key: format!("{section}.{k}"),
                            message: format!(
                                "conflicts with the service {k} imported from {}",
                                first.display()
                            ),
                        });
                    }
                    existing.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
        }
        Ok(())
    }
}

fn read_env_file(
    path: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>> {
    let text = read(path)?;
    dotenv::parse(&text, lookup).map_err(|e| Error::Env {
        file: path.to_path_buf(),
        message: format!("line {}: {}", e.line, e.message),
    })
}

/// The line of `path` or of its nearest ancestor the parser saw.
fn line_of(doc: &yaml::Document, path: &str) -> Option<usize> {
    let mut p = path.to_string();
    loop {
        if let Some(l) = doc.lines.get(&p) {
            return Some(*l);
        }
        match p.rfind('.') {
            Some(i) => p.truncate(i),
            None => return None,
        }
    }
}

/// A schema problem as (key, message): an unknown property is named by
/// its own path.
fn split_problem(p: &schema::Problem) -> (String, String) {
    if p.path.is_empty() {
        return ("(top level)".into(), p.message.clone());
    }
    (p.path.clone(), p.message.clone())
}

/// Loads the project the options describe.
pub fn load(opts: &Options) -> Result<Project> {
    let os_env = &opts.environment;
    let files: Vec<PathBuf> = if !opts.files.is_empty() {
        opts.files.iter().map(|f| opts.cwd.join(f)).collect()
    } else if let Some(list) = os_env.get("COMPOSE_FILE").filter(|s| !s.is_empty()) {
        let sep = os_env
            .get("COMPOSE_PATH_SEPARATOR")
            .cloned()
            .unwrap_or_else(|| ":".into());
        list.split(sep.as_str()).map(|f| opts.cwd.join(f)).collect()
    } else {
        let start = opts.project_directory.as_ref().map(|d| opts.cwd.join(d));
        find_default(start.as_deref().unwrap_or(&opts.cwd))?
    };
    for f in &files {
        if !f.is_file() {
            return Err(Error::Read {
                path: f.clone(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            });
        }
    }
    let project_dir = match &opts.project_directory {
        Some(d) => opts.cwd.join(d),
        None => files[0].parent().unwrap_or(&opts.cwd).to_path_buf(),
    };
    let project_dir = PathBuf::from(model::absolute(".", &project_dir));
    // The environment: .env (or --env-file, or COMPOSE_ENV_FILES), with the
    // process environment winning.
    let env_files: Vec<PathBuf> = if !opts.env_files.is_empty() {
        opts.env_files.iter().map(|f| opts.cwd.join(f)).collect()
    } else if let Some(list) = os_env.get("COMPOSE_ENV_FILES").filter(|s| !s.is_empty()) {
        list.split(',').map(|f| opts.cwd.join(f)).collect()
    } else {
        vec![project_dir.join(".env")]
            .into_iter()
            .filter(|p| p.is_file())
            .collect()
    };
    let mut dot: BTreeMap<String, String> = BTreeMap::new();
    for f in &env_files {
        if !f.is_file() {
            return Err(Error::Env {
                file: f.clone(),
                message: "couldn't find env file".into(),
            });
        }
        let pairs = {
            let lookup = |k: &str| os_env.get(k).cloned().or_else(|| dot.get(k).cloned());
            read_env_file(f, &lookup)?
        };
        dot.extend(pairs);
    }
    let var = |k: &str| os_env.get(k).or_else(|| dot.get(k)).cloned();
    // The name, as far as it is known before the files are read.
    let early_name = match &opts.project_name {
        Some(n) => Some(checked_name(n)?),
        None => match var("COMPOSE_PROJECT_NAME").filter(|s| !s.is_empty()) {
            Some(n) => Some(checked_name(&n)?),
            None => None,
        },
    };
    let dir_name = normalize_project_name(
        &project_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    );
    let provisional = early_name.clone().unwrap_or_else(|| dir_name.clone());
    let lookup =
        |k: &str| var(k).or_else(|| (k == "COMPOSE_PROJECT_NAME").then(|| provisional.clone()));
    let mut loader = Loader {
        env: &lookup,
        warnings: Vec::new(),
        unset: BTreeSet::new(),
        stack: Vec::new(),
    };
    let mut merged = Value::Object(Map::new());
    for f in &files {
        let Loaded { path, value, tags } = loader.load_file(f, &project_dir)?;
        let _ = path;
        merge(&mut merged, value, &tags, "");
    }
    let name = match early_name {
        Some(n) => n,
        None => match merged
            .get("name")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            Some(n) => checked_name(n)?,
            None => {
                if dir_name.is_empty() {
                    return Err(Error::ProjectName {
                        name: project_dir.display().to_string(),
                        reason: "project name must not be empty: the directory's name has no usable character; use -p".into(),
                    });
                }
                dir_name
            }
        },
    };
    let file_label = files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let mut project = Project {
        name: name.clone(),
        working_dir: project_dir.clone(),
        config_files: files.clone(),
        environment_files: env_files,
        warnings: loader.warnings,
        ..Project::default()
    };
    let value_err = |key: String, message: String| Error::Value {
        file: file_label.clone(),
        key,
        message,
    };
    let top = merged.as_object().cloned().unwrap_or_default();
    let cx = Context {
        base: &project_dir,
        lookup: &lookup,
    };
    let mut all: BTreeMap<String, Service> = BTreeMap::new();
    if let Some(Value::Object(services)) = top.get("services") {
        for (sname, v) in services {
            let s = model::service(sname, v, &cx, &format!("services.{sname}"))
                .map_err(|e| value_err(e.path, e.message))?;
            all.insert(sname.clone(), s);
        }
    }
    for (k, v) in &top {
        if k.starts_with("x-") {
            project.extensions.insert(k.clone(), v.clone());
        }
    }
    networks_and_volumes(&mut project, &top, &all, &name).map_err(|(k, m)| value_err(k, m))?;
    // Profiles: a service named on the command line activates its own.
    let mut active: BTreeSet<String> = opts.profiles.iter().cloned().collect();
    if let Some(p) = var("COMPOSE_PROFILES").filter(|s| !s.is_empty()) {
        active.extend(
            p.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty()),
        );
    }
    for s in &opts.services {
        match all.get(s) {
            Some(svc) => active.extend(svc.profiles.iter().cloned()),
            None => return Err(Error::NoSuchService(s.clone())),
        }
    }
    for (sname, s) in all {
        let enabled = s.profiles.is_empty()
            || active.contains("*")
            || s.profiles.iter().any(|p| active.contains(p));
        if enabled {
            project.services.insert(sname, s);
        } else {
            project.disabled.insert(sname, s);
        }
    }
    check_references(&mut project).map_err(|(k, m)| value_err(k, m))?;
    Ok(project)
}

/// Top-level networks, volumes, secrets and configs, with names and
/// defaults; `default` exists when a service uses it.
fn networks_and_volumes(
    project: &mut Project,
    top: &Map<String, Value>,
    services: &BTreeMap<String, Service>,
    name: &str,
) -> std::result::Result<(), (String, String)> {
    let get_str =
        |o: &Map<String, Value>, k: &str| o.get(k).and_then(Value::as_str).map(str::to_string);
    let external = |o: &Map<String, Value>| -> (bool, Option<String>) {
        match o.get("external") {
            Some(Value::Bool(b)) => (*b, None),
            Some(Value::String(s)) => (s == "true", None),
            Some(Value::Object(e)) => (
                true,
                e.get("name").and_then(Value::as_str).map(str::to_string),
            ),
            _ => (false, None),
        }
    };
    let strmap = |v: Option<&Value>| -> BTreeMap<String, String> {
        match v {
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string()),
                    )
                })
                .collect(),
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(|s| {
                    let (k, v) = s.split_once('=').unwrap_or((s, ""));
                    (k.to_string(), v.to_string())
                })
                .collect(),
            _ => BTreeMap::new(),
        }
    };
    let empty = Map::new();
    if let Some(Value::Object(nets)) = top.get("networks") {
        for (key, def) in nets {
            if key.starts_with("x-") {
                continue;
            }
            let o = def.as_object().unwrap_or(&empty);
            let (ext, ext_name) = external(o);
            let net_name = get_str(o, "name").or(ext_name).unwrap_or_else(|| {
                if ext {
                    key.clone()
                } else {
                    labels::network_name(name, key)
                }
            });
            let mut ipam = model::Ipam::default();
            if let Some(Value::Object(i)) = o.get("ipam") {
                ipam.driver = get_str(i, "driver");
                for pool in i
                    .get("config")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let p = pool.as_object().unwrap_or(&empty);
                    ipam.config.push(model::IpamPool {
                        subnet: get_str(p, "subnet"),
                        gateway: get_str(p, "gateway"),
                        ip_range: get_str(p, "ip_range"),
                    });
                }
            }
            let bool_of = |k: &str| {
                matches!(o.get(k), Some(Value::Bool(true)))
                    || o.get(k).and_then(Value::as_str) == Some("true")
            };
            project.networks.insert(
                key.clone(),
                Network {
                    name: net_name,
                    driver: get_str(o, "driver"),
                    driver_opts: strmap(o.get("driver_opts")),
                    ipam,
                    external: ext,
                    internal: bool_of("internal"),
                    attachable: bool_of("attachable"),
                    labels: strmap(o.get("labels")),
                },
            );
        }
    }
    let uses_default = services.values().any(|s| {
        s.network_mode.is_none() && (s.networks.is_empty() || s.networks.contains_key("default"))
    });
    if uses_default && !project.networks.contains_key("default") {
        project.networks.insert(
            "default".into(),
            Network {
                name: labels::network_name(name, "default"),
                ..Network::default()
            },
        );
    }
    if let Some(Value::Object(vols)) = top.get("volumes") {
        for (key, def) in vols {
            if key.starts_with("x-") {
                continue;
            }
            let o = def.as_object().unwrap_or(&empty);
            let (ext, ext_name) = external(o);
            project.volumes.insert(
                key.clone(),
                Volume {
                    name: get_str(o, "name").or(ext_name).unwrap_or_else(|| {
                        if ext {
                            key.clone()
                        } else {
                            labels::volume_name(name, key)
                        }
                    }),
                    driver: get_str(o, "driver"),
                    driver_opts: strmap(o.get("driver_opts")),
                    external: ext,
                    labels: strmap(o.get("labels")),
                },
            );
        }
    }
    for (section, target) in [
        ("secrets", &mut project.secrets),
        ("configs", &mut project.configs),
    ] {
        if let Some(Value::Object(defs)) = top.get(section) {
            for (key, def) in defs {
                if key.starts_with("x-") {
                    continue;
                }
                let o = def.as_object().unwrap_or(&empty);
                let (ext, _) = external(o);
                let obj = FileObject {
                    name: get_str(o, "name").unwrap_or_else(|| format!("{name}_{key}")),
                    file: get_str(o, "file"),
                    environment: get_str(o, "environment"),
                    content: get_str(o, "content"),
                    external: ext,
                };
                if !ext && obj.file.is_none() && obj.environment.is_none() && obj.content.is_none()
                {
                    return Err((
                        format!("{section}.{key}"),
                        "needs a file, environment or content (or external: true)".into(),
                    ));
                }
                if let Some(f) = &obj.file {
                    if !Path::new(f).exists() {
                        return Err((
                            format!("{section}.{key}.file"),
                            format!("{f} does not exist"),
                        ));
                    }
                }
                target.insert(key.clone(), obj);
            }
        }
    }
    Ok(())
}

/// References between services and to top-level resources; the default
/// network for services that name none.
fn check_references(project: &mut Project) -> std::result::Result<(), (String, String)> {
    let names: BTreeSet<String> = project.services.keys().cloned().collect();
    for (name, s) in project.services.iter_mut() {
        let path = format!("services.{name}");
        for (dep, d) in &s.depends_on {
            if names.contains(dep) {
                continue;
            }
            if project.disabled.contains_key(dep) && d.required {
                return Err((
                    format!("{path}.depends_on"),
                    format!("service {dep:?} is required by {name:?} but is disabled by the active profiles; add a common profile to {dep:?} and {name:?} or enable {dep:?}'s profile"),
                ));
            }
            if d.required {
                return Err((
                    format!("{path}.depends_on"),
                    format!("service {name:?} depends on undefined service {dep:?}"),
                ));
            }
        }
        if let Some(other) = s
            .network_mode
            .as_deref()
            .and_then(|m| m.strip_prefix("service:"))
        {
            if !names.contains(other) {
                return Err((
                    format!("{path}.network_mode"),
                    format!(
                        "service {name:?} uses the network stack of undefined service {other:?}"
                    ),
                ));
            }
        }
        for vf in &s.volumes_from {
            let other = vf.split(':').next().unwrap_or_default();
            if !other.starts_with("container:") && !names.contains(other) {
                return Err((
                    format!("{path}.volumes_from"),
                    format!("service {name:?} mounts volumes from undefined service {other:?}"),
                ));
            }
        }
        if s.network_mode.is_none() && s.networks.is_empty() {
            s.networks.insert("default".into(), None);
        }
        for net in s.networks.keys() {
            if !project.networks.contains_key(net) {
                return Err((
                    format!("{path}.networks"),
                    format!("service {name:?} refers to undefined network {net}"),
                ));
            }
        }
        for m in &s.volumes {
            if m.kind != "volume" {
                continue;
            }
            if let Some(src) = &m.source {
                if !project.volumes.contains_key(src) {
                    return Err((
                        format!("{path}.volumes"),
                        format!("service {name:?} refers to undefined volume {src}"),
                    ));
                }
            }
        }
        for (section, refs, defined) in [
            ("secrets", &s.secrets, &project.secrets),
            ("configs", &s.configs, &project.configs),
        ] {
            for r in refs {
                if !defined.contains_key(&r.source) {
                    return Err((
                        format!("{path}.{section}"),
                        format!(
                            "service {name:?} refers to undefined {} {}",
                            &section[..section.len() - 1],
                            r.source
                        ),
                    ));
                }
            }
        }
        if s.container_name.is_some() && s.replicas() > 1 {
            return Err((
                format!("{path}.container_name"),
                format!("services.{name}: can't set container_name and scale it above 1: a container name must be unique"),
            ));
        }
    }
    // Cycles, over every required or optional edge between enabled services.
    fn visit(
        n: &str,
        services: &BTreeMap<String, Service>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> std::result::Result<(), (String, String)> {
        match state.get(n) {
            Some(2) => return Ok(()),
            Some(1) => {
                let start = stack.iter().position(|s| s == n).unwrap_or(0);
                let mut cycle: Vec<String> = stack[start..].to_vec();
                cycle.push(n.to_string());
                return Err((
                    format!("services.{n}.depends_on"),
                    format!("dependency cycle detected: {}", cycle.join(" -> ")),
                ));
            }
            _ => {}
        }
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        if let Some(s) = services.get(n) {
            for dep in s.depends_on.keys() {
                if services.contains_key(dep) {
                    visit(dep, services, state, stack)?;
                }
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        Ok(())
    }
    let mut state = BTreeMap::new();
    for n in project.services.keys() {
        visit(n, &project.services, &mut state, &mut Vec::new())?;
    }
    Ok(())
}
