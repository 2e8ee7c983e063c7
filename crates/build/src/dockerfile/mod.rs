//! The Dockerfile language: parsing into [`ast`] (no I/O, no evaluation of
//! build stages). Variable substitution happens in the executor, which knows
//! the ARG/ENV values in scope, through [`expand`]; [`ast`] keeps words as
//! written.
//!
//! Rules worth knowing (the Dockerfile reference leaves them implicit):
//! - Exec form: arguments starting with `[` that parse as a JSON array of
//!   strings are the exec form. Anything else is the shell form (docker's
//!   fallback, so `RUN [ -f x ] && y` works), *except* text that is a
//!   truncated JSON array (`["a", "b"` or `["a", "b`: the JSON parser runs
//!   out of input), which is the error "unterminated JSON array": it is
//!   certainly a typo, and as a shell command it would fail obscurely.
//!   `SHELL` only has the exec form.
//! - Heredocs (`RUN`, `COPY`, `ADD`): every unquoted word `<<NAME`,
//!   `<<-NAME`, `<<"NAME"` (also with an fd, `2<<NAME`) opens one; bodies
//!   follow the instruction in order, verbatim, each up to a line equal to
//!   `NAME` (after removing leading tabs for `<<-`). A `RUN` keeps its
//!   first line as the shell command (`python3 <<EOF`); `Instruction::
//!   original` holds the bodies too, so the cache sees them.
//! - Flags: leading `--name[=value]` words of every instruction, checked
//!   against the instruction's list (an unknown one is an error, as in
//!   docker; `--` ends them). Flags docker has but we do not implement
//!   (`COPY --parents/--exclude`, `ADD --checksum/--keep-git-dir/...`) are
//!   refused rather than ignored.

pub mod ast;
mod expand;
mod instructions;
mod lines;
pub mod run_flags;
/// Fuzz entry point (`fuzz/` and the corpus tests): any text is parsed or
/// refused with an error naming a line inside the text, never a panic.
#[doc(hidden)]
pub fn fuzz_parse(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Err(e) = parse(&text) {
        let _ = e.to_string();
    }
}

/// Fuzz entry point: the first byte picks the escape character, the rest is
/// a word, a heredoc body and an argument string for the three expanders,
/// with a few variables in scope; never a panic.
#[doc(hidden)]
pub fn fuzz_expand(data: &[u8]) {
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    let escape = if first % 2 == 0 { '\\' } else { '`' };
    let text = String::from_utf8_lossy(rest);
    let lookup = |name: &str| match name {
        "A" => Some("a".to_string()),
        "SPACED" => Some("x  y".to_string()),
        "EMPTY" => Some(String::new()),
        _ => None,
    };
    let _ = expand(&text, escape, &lookup);
    let _ = expand_heredoc(&text, escape, &lookup);
    let _ = expand_words(&text, escape, &lookup);
}

#[cfg(test)]
mod tests;
mod words;

/// A syntax error, with the 1-based line it was found on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Dockerfile:{line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

/// Parses a whole Dockerfile: directives, continuations, comments,
/// heredocs, every instruction's flags and forms. Errors name the line.
///
/// Every string in the result is kept as written, quotes included (`ENV
/// A="x y"` gives the value `"x y"`): [`expand`] removes quotes while
/// substituting, so it must see them to know what is quoted.
pub fn parse(text: &str) -> Result<ast::Dockerfile, ParseError> {
    let lines = lines::split(text)?;
    let escape = lines.escape;
    let mut global_args = Vec::new();
    let mut stages: Vec<ast::Stage> = Vec::new();
    let mut last_line = 1;
    for l in lines.logical {
        last_line = l.line;
        let err = |message: String| ParseError {
            line: l.line,
            message,
        };
        let keyword = l.keyword.to_ascii_uppercase();
        if keyword == "FROM" {
            let from = instructions::from(&l.rest, escape).map_err(err)?;
            if let Some(name) = &from.name {
                if stages.iter().any(|s| s.name.as_ref() == Some(name)) {
                    return Err(err(format!("duplicate stage name {name:?}")));
                }
            }
            stages.push(ast::Stage {
                base: from.base,
                name: from.name,
                platform: from.platform,
                line: l.line,
                instructions: Vec::new(),
            });
            continue;
        }
        if !instructions::KEYWORDS.contains(&keyword.as_str()) {
            return Err(err(format!("unknown instruction {:?}", l.keyword)));
        }
        let kind = instructions::instruction(&keyword, &l.rest, escape, l.heredocs).map_err(err)?;
        match stages.last_mut() {
            Some(stage) => stage.instructions.push(ast::Instruction {
                line: l.line,
                kind,
                original: l.original,
            }),
            None => match kind {
                ast::Kind::Arg(args) => global_args.extend(args),
                _ => {
                    return Err(err(format!(
                        "no FROM before {keyword}: only ARG may come before the first FROM"
                    )))
                }
            },
        }
    }
    if stages.is_empty() {
        return Err(ParseError {
            line: last_line,
            message: "no FROM: a Dockerfile needs at least one FROM instruction".to_string(),
        });
    }
    Ok(ast::Dockerfile {
        global_args,
        stages,
        escape,
    })
}

/// Substitutes `$VAR`, `${VAR}`, `${VAR:-word}`, `${VAR:+word}` (and the
/// `-`/`+` forms without colon) in one word, honouring quotes and the
/// escape character; quotes are removed. `lookup` gives values in scope.
///
/// Errors (`bad substitution ...`, unterminated quotes) name the word.
pub fn expand(
    word: &str,
    escape: char,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    expand::expand(word, escape, lookup)
}

/// Substitution for the body of a heredoc whose name is not quoted (`COPY
/// <<EOF /f`): like a shell here-document, `$VAR` and `${...}` expand and
/// the escape character only escapes `$` and itself; quotes and every other
/// character are kept, since the body is file content, not words. (`RUN`
/// heredocs are left to the shell that runs them.)
pub fn expand_heredoc(
    body: &str,
    escape: char,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    expand::expand_heredoc(body, escape, lookup)
}

/// Like [`expand`] on a whole argument string, then split into words on
/// unquoted whitespace (for COPY sources, EXPOSE, VOLUME, ...).
/// Like the shell, the value of an unquoted `$VAR` is split too; quoted
/// text (`"a b"`, `'a b'`) and escaped blanks are not.
pub fn expand_words(
    text: &str,
    escape: char,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>, String> {
    expand::expand_words(text, escape, lookup)
}
