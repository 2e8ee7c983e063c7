//! The parsed form of a Dockerfile. Words are kept unexpanded (`$VAR` is
//! substituted by the executor with the ARG/ENV values in scope at that
//! instruction); every instruction carries its first line for error messages.
//!
//! "As written" includes quotes: `ENV A="x y"` has the value `"x y"` and
//! `COPY "a b" /d/` the source `"a b"`. Passing a value through
//! [`super::expand`] substitutes variables *and* removes the quotes, which is
//! why they must survive parsing (`'$HOME'` must not expand). The exception
//! is the exec (JSON) form, whose strings are JSON-decoded.

/// A whole Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// `ARG`s before the first `FROM`: usable in `FROM` lines only (unless
    /// redeclared inside a stage).
    pub global_args: Vec<Arg>,
    pub stages: Vec<Stage>,
    /// The escape character from `# escape=` (default `\`).
    pub escape: char,
}

/// One `FROM ... [AS name]` and the instructions up to the next `FROM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// Image reference as written (may contain `$VAR`), or `scratch`.
    pub base: String,
    /// `AS name`, lowercased.
    pub name: Option<String>,
    /// `--platform=...` as written.
    pub platform: Option<String>,
    pub line: usize,
    pub instructions: Vec<Instruction>,
}

/// An instruction with the line it starts on (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    pub line: usize,
    pub kind: Kind,
    /// The instruction as written, continuation lines joined: what
    /// `docker history` shows and what the cache keys on. For heredocs the
    /// body and terminator lines follow, each after a `\n`, so a changed
    /// body changes the key.
    pub original: String,
}

/// Shell form (`RUN echo hi`, run through SHELL) or exec form (`RUN ["a","b"]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Shell(String),
    Exec(Vec<String>),
}

/// A heredoc attached to RUN or COPY (`<<EOF` ... `EOF`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// Name after `<<` (`EOF`), without quotes or `-`.
    pub name: String,
    /// The lines between the opener and the terminator, each ending in
    /// `\n` (empty for an empty heredoc); for `<<-`, already without their
    /// leading tabs. Unexpanded: see [`super::expand_heredoc`].
    pub body: String,
    /// `<<-EOF`: leading tabs stripped from body lines.
    pub strip_tabs: bool,
    /// Quoted name (`<<"EOF"`): no variable expansion in the body.
    pub expand: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arg {
    pub name: String,
    /// Default value as written (unexpanded).
    pub default: Option<String>,
}

/// `COPY` and `ADD`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Copy {
    /// Sources as written (may contain wildcards and `$VAR`); for a heredoc
    /// source, the heredoc's name.
    pub sources: Vec<String>,
    pub dest: String,
    /// `--from=stage|index|image`.
    pub from: Option<String>,
    /// `--chown=user[:group]`.
    pub chown: Option<String>,
    /// `--chmod=0755`.
    pub chmod: Option<String>,
    /// `--link` (accepted; the layer is independent of its parent anyway).
    pub link: bool,
    pub heredocs: Vec<Heredoc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Healthcheck {
    /// `HEALTHCHECK NONE` is `None`.
    pub test: Option<Command>,
    /// Durations as written (`30s`, `1m30s`).
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub start_period: Option<String>,
    pub start_interval: Option<String>,
    pub retries: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Run {
        command: Command,
        heredocs: Vec<Heredoc>,
        /// `--mount=...`, `--network=...` flags as written (not applied).
        flags: Vec<String>,
    },
    Cmd(Command),
    Entrypoint(Command),
    Copy(Copy),
    Add(Copy),
    /// `ENV a=b c=d` or legacy `ENV a b`; names and values as written
    /// (unexpanded, quotes kept: [`super::expand`] removes them).
    Env(Vec<(String, String)>),
    Arg(Vec<Arg>),
    Label(Vec<(String, String)>),
    Workdir(String),
    User(String),
    /// `80`, `80/tcp`, `53/udp`, `$PORT`.
    Expose(Vec<String>),
    Volume(Vec<String>),
    Shell(Vec<String>),
    StopSignal(String),
    Healthcheck(Healthcheck),
    /// The trigger instruction, stored as text and parsed when the image is
    /// used as a base.
    Onbuild(String),
    /// `MAINTAINER` (deprecated): recorded as the author.
    Maintainer(String),
}
