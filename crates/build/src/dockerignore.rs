//! `.dockerignore`: patterns of context paths not sent to the build, with
//! Docker's rules (Go `filepath.Match` syntax, `**`, `!` exceptions, the
//! last matching line wins, leading `/` and `./` ignored).

/// The parsed patterns of a `.dockerignore` file.
#[derive(Debug, Clone, Default)]
pub struct Ignore {
    _patterns: Vec<String>,
}

impl Ignore {
    /// Parses the file's text; comments (`#`) and blank lines are skipped.
    /// A malformed pattern (e.g. an unterminated `[`) is an error.
    pub fn parse(_text: &str) -> Result<Ignore, String> {
        todo!()
    }

    /// Whether `path` (relative to the context, `/`-separated, no leading
    /// `./`) is excluded.
    pub fn excluded(&self, _path: &str) -> bool {
        todo!()
    }

    /// Whether some exception (`!pattern`) could re-include something under
    /// the excluded directory `dir`, so the walk must still descend into it.
    pub fn may_include_under(&self, _dir: &str) -> bool {
        todo!()
    }
}
