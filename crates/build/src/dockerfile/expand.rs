//! Variable substitution and quote removal for Dockerfile words, following
//! the rules the Dockerfile reference gives for environment replacement:
//! `$VAR`, `${VAR}`, `${VAR:-word}`, `${VAR:+word}` and the colon-less
//! `${VAR-word}`/`${VAR+word}` (unset only, rather than unset-or-empty).
//!
//! Quoting follows a small subset of POSIX sh: inside single quotes nothing
//! is special; inside double quotes `$` expands and the escape character
//! only escapes `"`, `$` and itself (anything else keeps the escape, so
//! `"C:\dir"` survives); outside quotes the escape character makes the next
//! character literal.

/// Where characters go: one word (`expand`) or a list of words split on
/// unquoted whitespace (`expand_words`).
struct Words {
    split: bool,
    done: Vec<String>,
    cur: String,
    /// A word has started even if it is still empty (`""` is a word).
    in_word: bool,
}

impl Words {
    fn new(split: bool) -> Words {
        Words {
            split,
            done: Vec::new(),
            cur: String::new(),
            in_word: false,
        }
    }

    /// Quoted or escaped text: never splits.
    fn raw(&mut self, s: &str) {
        self.cur.push_str(s);
        self.in_word = true;
    }

    /// Unquoted text, including the value of an unquoted `$VAR`: like the
    /// shell (and docker), whitespace in it separates words.
    fn unquoted(&mut self, s: &str) {
        if !self.split {
            self.raw(s);
            return;
        }
        for c in s.chars() {
            if c.is_whitespace() {
                if self.in_word {
                    self.done.push(std::mem::take(&mut self.cur));
                    self.in_word = false;
                }
            } else {
                self.cur.push(c);
                self.in_word = true;
            }
        }
    }

    fn finish(mut self) -> Vec<String> {
        if self.in_word {
            self.done.push(self.cur);
        }
        self.done
    }

    fn into_string(self) -> String {
        self.cur
    }
}

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    lookup: &'a dyn Fn(&str) -> Option<String>,
    /// Heredoc body: quotes are ordinary characters and the escape only
    /// escapes `$` and itself.
    heredoc: bool,
    /// Nesting of `${...:-word}` words, bounded so that hostile input
    /// cannot exhaust the stack.
    depth: usize,
}

/// Deeper nesting than any real Dockerfile uses.
const MAX_DEPTH: usize = 32;

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }

    /// Reads up to `stop` (consumed) or to the end when `stop` is `None`.
    fn lex(&mut self, stop: Option<char>, out: &mut Words) -> Result<(), String> {
        loop {
            let Some(c) = self.next() else {
                return match stop {
                    Some(_) => Err("bad substitution: missing '}'".to_string()),
                    None => Ok(()),
                };
            };
            if Some(c) == stop {
                return Ok(());
            }
            if self.heredoc && c != '$' {
                let escaped = match self.peek() {
                    Some(n) if c == self.escape && (n == '$' || n == self.escape) => {
                        self.pos += 1;
                        n
                    }
                    _ => c,
                };
                out.raw(escaped.encode_utf8(&mut [0; 4]));
            } else if c == self.escape {
                // A trailing escape has nothing to escape and is dropped,
                // as docker does.
                if let Some(n) = self.next() {
                    out.raw(n.encode_utf8(&mut [0; 4]));
                }
            } else if c == '\'' {
                let mut s = String::new();
                loop {
                    match self.next() {
                        Some('\'') => break,
                        Some(c) => s.push(c),
                        None => return Err("unterminated single-quoted string".to_string()),
                    }
                }
                out.raw(&s);
            } else if c == '"' {
                let s = self.double_quoted()?;
                out.raw(&s);
            } else if c == '$' {
                let s = self.dollar()?;
                out.unquoted(&s);
            } else {
                out.unquoted(c.encode_utf8(&mut [0; 4]));
            }
        }
    }

    fn double_quoted(&mut self) -> Result<String, String> {
        let mut s = String::new();
        loop {
            match self.next() {
                None => return Err("unterminated double-quoted string".to_string()),
                Some('"') => return Ok(s),
                Some('$') => s.push_str(&self.dollar()?),
                Some(c) if c == self.escape => match self.peek() {
                    Some(n) if n == '"' || n == '$' || n == self.escape => {
                        s.push(n);
                        self.pos += 1;
                    }
                    _ => s.push(c),
                },
                Some(c) => s.push(c),
            }
        }
    }

    /// A name after `$`: a shell identifier, or one digit (a positional
    /// parameter, never set in a Dockerfile).
    fn name(&mut self) -> String {
        let mut name = String::new();
        match self.peek() {
            Some(c) if c.is_ascii_digit() => {
                name.push(c);
                self.pos += 1;
            }
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                while let Some(c) = self.peek() {
                    if c.is_ascii_alphanumeric() || c == '_' {
                        name.push(c);
                        self.pos += 1;
                    } else {
                        break;
                    }
                }
            }
            _ => {}
        }
        name
    }

    /// After a `$`: returns the substituted text.
    fn dollar(&mut self) -> Result<String, String> {
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                // `$` not followed by a name is literal (`echo $`, `a$-b`).
                return Ok("$".to_string());
            }
            return Ok((self.lookup)(&name).unwrap_or_default());
        }
        self.pos += 1;
        let name = self.name();
        if name.is_empty() {
            return Err(match self.peek() {
                Some('}') => "bad substitution: empty name in ${}".to_string(),
                Some(c) => format!("bad substitution: '{c}' cannot start a variable name"),
                None => "bad substitution: missing '}'".to_string(),
            });
        }
        let (colon, op) = match self.next() {
            None => return Err("bad substitution: missing '}'".to_string()),
            Some('}') => return Ok((self.lookup)(&name).unwrap_or_default()),
            Some(':') => match self.next() {
                Some(op @ ('-' | '+')) => (true, op),
                Some(op) => {
                    return Err(format!(
                        "bad substitution: unsupported operator ':{op}' in ${{{name}:{op}...}} (only :-, :+, - and + are)"
                    ))
                }
                None => return Err("bad substitution: missing '}'".to_string()),
            },
            Some(op @ ('-' | '+')) => (false, op),
            // Shell operators docker's stable syntax lacks (`#`, `%`, `/`,
            // `?`, `=`): refused, since silently ignoring them would build
            // something else than the author meant.
            Some(op @ ('#' | '%' | '/' | '?' | '=')) => {
                return Err(format!(
                    "bad substitution: unsupported operator '{op}' in ${{{name}{op}...}} (only :-, :+, - and + are)"
                ))
            }
            Some(c) => {
                return Err(format!(
                    "bad substitution: unexpected '{c}' after ${{{name}"
                ))
            }
        };
        // The word is itself expanded (and its quotes removed) whether or
        // not it is used, so errors in it are always reported.
        if self.depth >= MAX_DEPTH {
            return Err(format!(
                "bad substitution: more than {MAX_DEPTH} nested ${{...}}"
            ));
        }
        let mut word = Words::new(false);
        self.depth += 1;
        let lexed = self.lex(Some('}'), &mut word);
        self.depth -= 1;
        lexed?;
        let word = word.into_string();
        let value = (self.lookup)(&name);
        // With a colon an empty value counts as unset.
        let set = match &value {
            Some(v) => !(colon && v.is_empty()),
            None => false,
        };
        Ok(match op {
            '-' if set => value.unwrap_or_default(),
            '-' => word,
            _ if set => word,
            _ => String::new(),
        })
    }
}

fn run(
    text: &str,
    escape: char,
    lookup: &dyn Fn(&str) -> Option<String>,
    split: bool,
    heredoc: bool,
) -> Result<Words, String> {
    let mut lexer = Lexer {
        chars: text.chars().collect(),
        pos: 0,
        escape,
        lookup,
        heredoc,
        depth: 0,
    };
    let mut out = Words::new(split);
    lexer
        .lex(None, &mut out)
        .map_err(|e| format!("{e} (in {text:?})"))?;
    Ok(out)
}

pub(super) fn expand(
    word: &str,
    escape: char,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    Ok(run(word, escape, lookup, false, false)?.into_string())
}

pub(super) fn expand_words(
    text: &str,
    escape: char,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>, String> {
    Ok(run(text, escape, lookup, true, false)?.finish())
}

pub(super) fn expand_heredoc(
    body: &str,
    escape: char,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    Ok(run(body, escape, lookup, false, true)?.into_string())
}
