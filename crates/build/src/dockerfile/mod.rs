//! The Dockerfile language: parsing into [`ast`] (no I/O, no evaluation of
//! build stages). Variable substitution happens in the executor, which knows
//! the ARG/ENV values in scope, through [`expand`]; [`ast`] keeps words as
//! written.

pub mod ast;

/// A syntax error, with the 1-based line it was found on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Dockerfile:{line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

/// Parses a whole Dockerfile: directives, continuations, comments,
/// heredocs, every instruction's flags and forms. Errors name the line.
pub fn parse(_text: &str) -> Result<ast::Dockerfile, ParseError> {
    todo!()
}

/// Substitutes `$VAR`, `${VAR}`, `${VAR:-word}`, `${VAR:+word}` (and the
/// `-`/`+` forms without colon) in one word, honouring quotes and the
/// escape character; quotes are removed. `lookup` gives values in scope.
pub fn expand(
    _word: &str,
    _escape: char,
    _lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    todo!()
}

/// Like [`expand`] on a whole argument string, then split into words on
/// unquoted whitespace (for COPY sources, EXPOSE, VOLUME, ...).
pub fn expand_words(
    _text: &str,
    _escape: char,
    _lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>, String> {
    todo!()
}
