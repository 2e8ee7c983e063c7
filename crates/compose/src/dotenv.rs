//! The `.env` format of Compose, for the project's `.env` / `--env-file`
//! and a service's `env_file`: `NAME=value` lines (an `export ` prefix and
//! `NAME: value` are accepted), `#` comments, blank lines. Values:
//! unquoted ones are trimmed and end at ` #`; single-quoted ones are taken
//! literally; double-quoted ones may span lines and know the escapes
//! `\n \r \t \\ \" \$`. Unquoted and double-quoted values are interpolated
//! (`${VAR:-x}` and the rest, see `interpolate`), from the names defined
//! above in the same file first, then from `lookup`. A bare `NAME` takes
//! its value from `lookup`, and is left out when unset there.

use crate::interpolate::{Env, Problem};

/// A line that is not `NAME=value`, or a substitution that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// The `(name, value)` pairs of `text`, in order; a name defined twice
/// keeps its last value (callers collect into a map).
pub fn parse(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>, ParseError> {
    let mut out: Vec<(String, String)> = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let number = i + 1;
        let raw = lines[i].trim_start_matches('\u{feff}');
        i += 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line
            .strip_prefix("export ")
            .map(str::trim_start)
            .unwrap_or(line);
        let err = |message: String| ParseError {
            line: number,
            message,
        };
        let split = line.find(['=', ':']);
        let Some(at) = split else {
            let name = line.trim();
            if !valid_name(name) {
                return Err(err(format!(
                    "unexpected character in variable name {name:?}"
                )));
            }
            if let Some(v) = lookup(name) {
                out.push((name.to_string(), v));
            }
            continue;
        };
        let name = line[..at].trim();
        if !valid_name(name) {
            return Err(err(format!(
                "unexpected character in variable name {name:?}"
            )));
        }
        let mut value = line[at + 1..].trim_start();
        let known: Vec<(String, String)> = out.clone();
        let resolve = move |k: &str| {
            known
                .iter()
                .rev()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .or_else(|| lookup(k))
        };
        let interpolate = |text: &str| -> Result<String, ParseError> {
            Env::new(&resolve)
                .substitute(text)
                .map_err(|p: Problem| err(p.to_string()))
        };
        let parsed = if let Some(body) = value.strip_prefix('\'') {
            match body.find('\'') {
                Some(end) => body[..end].to_string(),
                None => return Err(err(format!("unterminated quoted value for {name}"))),
            }
        } else if let Some(body) = value.strip_prefix('"') {
            // Collect lines until the closing unescaped quote.
            let mut collected = body.to_string();
            let close = loop {
                if let Some(end) = closing_quote(&collected) {
                    break end;
                }
                if i >= lines.len() {
                    return Err(err(format!("unterminated quoted value for {name}")));
                }
                collected.push('\n');
                collected.push_str(lines[i]);
                i += 1;
            };
            interpolate(&unescape(&collected[..close]))?
        } else {
            if let Some(hash) = value.find(" #") {
                value = &value[..hash];
            }
            interpolate(value.trim())?
        };
        out.push((name.to_string(), parsed));
    }
    Ok(out)
}

/// The index of the first `"` not escaped by a backslash.
fn closing_quote(s: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => return Some(i),
            _ => escaped = false,
        }
    }
    None
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('"') => out.push('"'),
            Some('\\') => out.push('\\'),
            // `\$` keeps a literal dollar through the substitution.
            Some('$') => out.push_str("$$"),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        match k {
            "HOME_DIR" => Some("/root".into()),
            "FROM_SHELL" => Some("shell".into()),
            _ => None,
        }
    }

    #[test]
    fn values_quotes_comments_and_substitution() {
        let text = "# a comment\n\nA=1\nexport B = two words \nC='single ${A} #not'\nD=\"double ${A}\\n\\\"q\\\"\"\nE=${A}-${HOME_DIR} # comment\nF=\nG: colon\nFROM_SHELL\nNOT_SET\nH=\"multi\nline\"\nI=${MISSING:-dflt}\nJ=a#b\n";
        let got = parse(text, &env).expect("parses");
        let want: Vec<(String, String)> = [
            ("A", "1"),
            ("B", "two words"),
            ("C", "single ${A} #not"),
            ("D", "double 1\n\"q\""),
            ("E", "1-/root"),
            ("F", ""),
            ("G", "colon"),
            ("FROM_SHELL", "shell"),
            ("H", "multi\nline"),
            ("I", "dflt"),
            ("J", "a#b"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn bad_lines_name_their_line() {
        for (text, line) in [
            ("A=1\nB C=2\n", 2),
            ("A=\"open\n", 1),
            ("A='open\n", 1),
            ("1A=x\n", 1),
            ("A=1\nB=${X:?need X}\n", 2),
            ("A=$1\n", 1),
        ] {
            let e = parse(text, &env).expect_err(text);
            assert_eq!(e.line, line, "{text:?}: {e:?}");
        }
    }
}
