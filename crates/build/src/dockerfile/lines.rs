//! From text to logical lines: parser directives, comments, continuations
//! and heredoc bodies. What an instruction *means* is `instructions.rs`.

use super::ast::Heredoc;
use super::words::split_raw;
use super::ParseError;

/// One instruction's text: continuation lines joined, comments dropped,
/// heredoc bodies collected.
#[derive(Debug)]
pub(super) struct Logical {
    /// 1-based line the instruction starts on.
    pub line: usize,
    /// Keyword as written.
    pub keyword: String,
    /// Everything after the keyword, trimmed.
    pub rest: String,
    pub heredocs: Vec<Heredoc>,
    /// The joined line plus any heredoc lines, for `Instruction::original`.
    pub original: String,
}

pub(super) struct Lines {
    pub escape: char,
    pub logical: Vec<Logical>,
}

fn err(line: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        line,
        message: message.into(),
    }
}

/// `# name=value` with optional blanks around each part. Returns the
/// lowercased name and the value.
fn directive(line: &str) -> Option<(String, &str)> {
    let rest = line.trim_start().strip_prefix('#')?.trim_start();
    let name_len = rest
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
        .map_or(rest.len(), |(i, _)| i);
    if name_len == 0 {
        return None;
    }
    let (name, after) = rest.split_at(name_len);
    let value = after.trim_start().strip_prefix('=')?.trim();
    if value.is_empty() {
        return None;
    }
    Some((name.to_ascii_lowercase(), value))
}

/// Reads the parser directives at the top of the file; returns the escape
/// character and the index of the first line that is not a directive.
///
/// Per the reference, directives are only looked for until the first line
/// that is not one: an instruction, a blank line, an ordinary comment or an
/// unknown directive (which is an ordinary comment). The directives we know
/// are `escape`; `syntax` and `check` are accepted and ignored (we have one
/// frontend and no lint checks).
fn directives(lines: &[&str]) -> Result<(char, usize), ParseError> {
    let mut escape = None;
    let mut seen_syntax = false;
    let mut seen_check = false;
    for (i, line) in lines.iter().enumerate() {
        let Some((name, value)) = directive(line) else {
            return Ok((escape.unwrap_or('\\'), i));
        };
        let seen = match name.as_str() {
            "escape" => {
                let c = match value {
                    "\\" => '\\',
                    "`" => '`',
                    _ => {
                        return Err(err(
                            i + 1,
                            format!("invalid escape directive {value:?}: the escape character must be \\ or `"),
                        ))
                    }
                };
                escape.replace(c).is_some()
            }
            "syntax" => std::mem::replace(&mut seen_syntax, true),
            "check" => std::mem::replace(&mut seen_check, true),
            _ => return Ok((escape.unwrap_or('\\'), i)),
        };
        if seen {
            return Err(err(
                i + 1,
                format!("the {name} parser directive is given more than once"),
            ));
        }
    }
    Ok((escape.unwrap_or('\\'), lines.len()))
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// Strips a line continuation: the escape character at the end of the line,
/// possibly followed by blanks (docker tolerates those, since they are
/// invisible in most editors).
fn continuation(line: &str, escape: char) -> (&str, bool) {
    let t = line.trim_end_matches([' ', '\t']);
    match t.strip_suffix(escape) {
        Some(joined) => (joined, true),
        None => (line, false),
    }
}

/// Instructions whose arguments may open heredocs.
fn takes_heredocs(keyword: &str) -> bool {
    ["RUN", "COPY", "ADD"]
        .iter()
        .any(|k| keyword.eq_ignore_ascii_case(k))
}

/// A heredoc opener word, `[n]<<[-]NAME`; `NAME` may be quoted (which turns
/// off expansion in the body). `<<<` (a here-string) is not one.
pub(super) fn heredoc_opener(word: &str) -> Option<(String, bool, bool)> {
    let rest = word.trim_start_matches(|c: char| c.is_ascii_digit());
    let rest = rest.strip_prefix("<<")?;
    let (strip_tabs, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    if rest.contains('<') {
        return None;
    }
    let quoted = rest.contains(['"', '\'']);
    let name: String = rest.chars().filter(|&c| c != '"' && c != '\'').collect();
    if name.is_empty() {
        return None;
    }
    Some((name, strip_tabs, !quoted))
}

pub(super) fn split(text: &str) -> Result<Lines, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    let (escape, mut i) = directives(&lines)?;
    let mut logical = Vec::new();
    while i < lines.len() {
        let start = i + 1;
        let first = lines[i].trim_start();
        i += 1;
        if first.trim().is_empty() || is_comment(first) {
            continue;
        }
        let (mut joined, mut more) = {
            let (s, more) = continuation(first, escape);
            (s.to_string(), more)
        };
        // Comment lines and blank lines inside a continued instruction are
        // dropped (docker warns about the blank ones, but accepts them).
        while more && i < lines.len() {
            let l = lines[i];
            i += 1;
            if is_comment(l) || l.trim().is_empty() {
                continue;
            }
            let (s, m) = continuation(l, escape);
            joined.push_str(s);
            more = m;
        }
        let trimmed = joined.trim();
        if trimmed.is_empty() {
            continue;
        }
        let (keyword, rest) = match trimmed.find(char::is_whitespace) {
            Some(at) => (&trimmed[..at], trimmed[at..].trim_start()),
            None => (trimmed, ""),
        };
        let mut original = trimmed.to_string();
        let mut heredocs = Vec::new();
        if takes_heredocs(keyword) {
            for word in split_raw(rest, escape) {
                let Some((name, strip_tabs, expand)) = heredoc_opener(&word) else {
                    continue;
                };
                // The body starts on the line after the instruction (or
                // after the previous heredoc's terminator) and is taken
                // verbatim: no continuations, no comments.
                let mut body = String::new();
                let mut terminated = false;
                while i < lines.len() {
                    let l = lines[i];
                    i += 1;
                    original.push('\n');
                    original.push_str(l);
                    let l = if strip_tabs {
                        l.trim_start_matches('\t')
                    } else {
                        l
                    };
                    if l == name {
                        terminated = true;
                        break;
                    }
                    body.push_str(l);
                    body.push('\n');
                }
                if !terminated {
                    return Err(err(
                        start,
                        format!("unterminated heredoc <<{name}: no line {name:?} before the end of the file"),
                    ));
                }
                heredocs.push(Heredoc {
                    name,
                    body,
                    strip_tabs,
                    expand,
                });
            }
        }
        logical.push(Logical {
            line: start,
            keyword: keyword.to_string(),
            rest: rest.to_string(),
            heredocs,
            original,
        });
    }
    Ok(Lines { escape, logical })
}
