//! `.dockerignore`: patterns of context paths not sent to the build, with
//! Docker's rules (Go `filepath.Match` syntax, `**`, `!` exceptions, the
//! last matching line wins, leading `/` and `./` ignored).
//!
//! Semantics follow docker's documented behaviour:
//! - a line starting with `#` (in the first column) is a comment; other
//!   lines are trimmed, cleaned like Go's `filepath.Clean` (`a//b`, `a/./b`,
//!   `a/../b`) and lose one leading `/`;
//! - `*` matches any run of characters except `/`, `?` one such character,
//!   `[...]` a class (ranges, `^` or `!` negation, `\` escapes), `\c` the
//!   character `c`; `**` matches any number of directories (zero included),
//!   and a trailing `**` anything at all;
//! - a pattern that matches a directory excludes everything below it (as
//!   docker's `MatchesOrParentMatches`, the pattern is tried on the path and
//!   on each of its leading directories);
//! - patterns are applied in order and the last one that matches decides,
//!   so `!exception` lines re-include what earlier lines excluded.

/// The parsed patterns of a `.dockerignore` file.
#[derive(Debug, Clone, Default)]
pub struct Ignore {
    patterns: Vec<Pattern>,
}

#[derive(Debug, Clone)]
struct Pattern {
    /// `!pattern`: re-includes what it matches.
    exception: bool,
    tokens: Vec<Token>,
}

#[derive(Debug, Clone)]
enum Token {
    Literal(char),
    /// `*`: any run of characters other than `/`.
    Star,
    /// `?`: one character other than `/`.
    One,
    /// `[...]`: one character (never `/`) in (or, negated, not in) the ranges.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    /// `**` followed by more pattern: zero or more whole directories, that
    /// is an optional `.*/`.
    AnyDirs,
    /// `**` at the end: anything.
    Anything,
}

/// Go's `filepath.Clean` for `/`-separated paths.
fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            s => out.push(s),
        }
    }
    let joined = out.join("/");
    if rooted {
        format!("/{joined}")
    } else if joined.is_empty() {
        ".".to_string()
    } else {
        joined
    }
}

/// One class member, with Go's rules: `-` and `]` must be escaped to be
/// members, and the class must go on after it.
fn class_char(chars: &[char], i: &mut usize, pattern: &str) -> Result<char, String> {
    let bad = || format!("malformed pattern {pattern:?}: bad character class");
    let mut c = *chars.get(*i).ok_or_else(bad)?;
    if c == '-' || c == ']' {
        return Err(bad());
    }
    if c == '\\' {
        *i += 1;
        c = *chars.get(*i).ok_or_else(bad)?;
    }
    *i += 1;
    if *i >= chars.len() {
        return Err(bad());
    }
    Ok(c)
}

fn compile(pattern: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                // `**/` is the same as `**`: the slash is part of "any
                // number of directories".
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                // Adjacent `**`s mean no more than one.
                if matches!(tokens.last(), Some(Token::AnyDirs)) {
                    tokens.pop();
                }
                tokens.push(if i == chars.len() {
                    Token::Anything
                } else {
                    Token::AnyDirs
                });
            }
            // `**` was handled above; a run of single stars is one star.
            '*' if matches!(tokens.last(), Some(Token::Star)) => {}
            '*' => tokens.push(Token::Star),
            '?' => tokens.push(Token::One),
            '\\' => match chars.get(i) {
                Some(&n) => {
                    i += 1;
                    tokens.push(Token::Literal(n));
                }
                None => {
                    return Err(format!(
                        "malformed pattern {pattern:?}: it ends with an escape"
                    ))
                }
            },
            '[' => {
                let negated = matches!(chars.get(i), Some('^' | '!'));
                if negated {
                    i += 1;
                }
                let mut ranges = Vec::new();
                loop {
                    if chars.get(i) == Some(&']') && !ranges.is_empty() {
                        i += 1;
                        break;
                    }
                    let lo = class_char(&chars, &mut i, pattern)?;
                    let mut hi = lo;
                    if chars.get(i) == Some(&'-') {
                        i += 1;
                        hi = class_char(&chars, &mut i, pattern)?;
                    }
                    ranges.push((lo, hi));
                }
                tokens.push(Token::Class { negated, ranges });
            }
            c => tokens.push(Token::Literal(c)),
        }
    }
    Ok(tokens)
}

impl Pattern {
    /// Runs the pattern as an NFA over `text`; a state is a token index
    /// plus, for `AnyDirs`, whether it has started consuming (then it can
    /// only end after a `/`). Returns the live states after all of `text`.
    fn run(&self, text: &str) -> Vec<(usize, bool)> {
        let mut states = self.closure(vec![(0, false)]);
        for c in text.chars() {
            let mut next = Vec::new();
            for &(t, _) in &states {
                let Some(tok) = self.tokens.get(t) else {
                    continue;
                };
                match tok {
                    Token::Literal(l) if *l == c => next.push((t + 1, false)),
                    Token::Literal(_) => {}
                    Token::One if c != '/' => next.push((t + 1, false)),
                    Token::One => {}
                    Token::Class { negated, ranges } => {
                        let inside = ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi);
                        if c != '/' && inside != *negated {
                            next.push((t + 1, false));
                        }
                    }
                    Token::Star if c != '/' => next.push((t, false)),
                    Token::Star => {}
                    Token::Anything => next.push((t, false)),
                    Token::AnyDirs => {
                        next.push((t, true));
                        if c == '/' {
                            next.push((t + 1, false));
                        }
                    }
                }
            }
            states = self.closure(next);
            if states.is_empty() {
                break;
            }
        }
        states
    }

    /// Adds the states reachable without consuming anything, and removes
    /// duplicates (linear: a set indexed by state keeps long patterns of
    /// many `*` from going quadratic).
    fn closure(&self, states: Vec<(usize, bool)>) -> Vec<(usize, bool)> {
        let index = |(t, inside): (usize, bool)| 2 * t + usize::from(inside);
        let mut seen = vec![false; 2 * (self.tokens.len() + 1)];
        let mut out = Vec::with_capacity(states.len());
        for s in states {
            if !std::mem::replace(&mut seen[index(s)], true) {
                out.push(s);
            }
        }
        let mut i = 0;
        while i < out.len() {
            let (t, inside) = out[i];
            let skippable = match self.tokens.get(t) {
                Some(Token::Star | Token::Anything) => true,
                Some(Token::AnyDirs) => !inside,
                _ => false,
            };
            if skippable && !std::mem::replace(&mut seen[index((t + 1, false))], true) {
                out.push((t + 1, false));
            }
            i += 1;
        }
        out
    }

    fn matches(&self, path: &str) -> bool {
        let end = self.tokens.len();
        self.run(path).iter().any(|&(t, _)| t == end)
    }

    /// Whether some path starting with `prefix` could match.
    fn may_match_with_prefix(&self, prefix: &str) -> bool {
        !self.run(prefix).is_empty()
    }
}

impl Ignore {
    /// Parses the file's text; comments (`#`) and blank lines are skipped.
    /// A malformed pattern (e.g. an unterminated `[`) is an error.
    pub fn parse(text: &str) -> Result<Ignore, String> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut patterns = Vec::new();
        for (n, line) in text.lines().enumerate() {
            // Only a `#` in the first column starts a comment, as in docker.
            if line.starts_with('#') {
                continue;
            }
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let (exception, pattern) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            if pattern.is_empty() {
                return Err(format!(
                    ".dockerignore line {}: \"!\" needs a pattern after it",
                    n + 1
                ));
            }
            let mut cleaned = clean(pattern);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
            let tokens =
                compile(&cleaned).map_err(|e| format!(".dockerignore line {}: {e}", n + 1))?;
            patterns.push(Pattern { exception, tokens });
        }
        Ok(Ignore { patterns })
    }

    /// Whether `path` (relative to the context, `/`-separated, no leading
    /// `./`) is excluded.
    pub fn excluded(&self, path: &str) -> bool {
        let file = clean(path.trim_start_matches('/'));
        if file == "." {
            // The context root itself is always sent.
            return false;
        }
        let parents: Vec<&str> = match file.rfind('/') {
            Some(at) => file[..at].split('/').collect(),
            None => Vec::new(),
        };
        let mut excluded = false;
        for p in &self.patterns {
            // An exception cannot change a path that is not excluded, nor
            // an exclusion one that already is.
            if p.exception != excluded {
                continue;
            }
            let matched =
                p.matches(&file) || (1..=parents.len()).any(|k| p.matches(&parents[..k].join("/")));
            if matched {
                excluded = !p.exception;
            }
        }
        excluded
    }

    /// Whether some exception (`!pattern`) could re-include something under
    /// the excluded directory `dir`, so the walk must still descend into it.
    /// Errs on the side of descending: the walker still checks every path
    /// with [`Ignore::excluded`].
    pub fn may_include_under(&self, dir: &str) -> bool {
        let dir = clean(dir.trim_start_matches('/'));
        if dir == "." {
            return self.patterns.iter().any(|p| p.exception);
        }
        let prefix = format!("{dir}/");
        let ancestors: Vec<&str> = dir.split('/').collect();
        self.patterns.iter().filter(|p| p.exception).any(|p| {
            p.may_match_with_prefix(&prefix)
                || (1..=ancestors.len()).any(|k| p.matches(&ancestors[..k].join("/")))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Ignore;

    /// (patterns, path, excluded?)
    const CASES: &[(&str, &str, bool)] = &[
        // The reference's examples.
        ("*/temp*", "somedir/temporary.txt", true),
        ("*/temp*", "somedir/temp", true),
        ("*/temp*", "temp", false),
        ("*/temp*", "a/b/temp", false),
        ("*/temp*", "somedir/temp/inner.txt", true),
        ("*/*/temp*", "somedir/subdir/temporary.txt", true),
        ("*/*/temp*", "somedir/temporary.txt", false),
        ("temp?", "tempa", true),
        ("temp?", "tempb", true),
        ("temp?", "temp", false),
        ("temp?", "tempab", false),
        ("temp?", "temp/", false),
        ("**/*.go", "main.go", true),
        ("**/*.go", "a/b/c/main.go", true),
        ("**/*.go", "a/b/c/main.gox", false),
        ("*.md\n!README*.md", "CHANGES.md", true),
        ("*.md\n!README*.md", "README.md", false),
        ("*.md\n!README*.md", "README-secret.md", false),
        ("*.md\n!README*.md", "docs/CHANGES.md", false),
        (
            "*.md\n!README*.md\nREADME-secret.md",
            "README-secret.md",
            true,
        ),
        ("*.md\n!README*.md\nREADME-secret.md", "README.md", false),
        (
            "*.md\nREADME-secret.md\n!README*.md",
            "README-secret.md",
            false,
        ),
        // A directory pattern excludes everything below it.
        ("node_modules", "node_modules", true),
        ("node_modules", "node_modules/x/y.js", true),
        ("node_modules", "a/node_modules", false),
        ("**/node_modules", "a/b/node_modules/x.js", true),
        ("a/b", "a/b/c/d", true),
        ("a/b", "a/bc", false),
        ("a/*", "a/b/c", true),
        // Leading `/`, `./` and unclean paths.
        ("/secret", "secret", true),
        ("./secret", "secret", true),
        ("a//b/./c", "a/b/c", true),
        ("a/x/../b", "a/b", true),
        ("secret", "./secret", true),
        ("secret", "/secret", true),
        ("secret", "a/../secret", true),
        // `**` forms.
        ("**", "anything/at/all", true),
        ("a/**", "a/b/c", true),
        ("a/**", "b/c", false),
        ("a/**/z", "a/z", true),
        ("a/**/z", "a/b/c/z", true),
        ("a/**/z", "a/bz", false),
        ("**foo", "x/y/foo", true),
        ("**foo", "xfoo", false),
        // Classes and escapes.
        ("[abc].txt", "b.txt", true),
        ("[abc].txt", "d.txt", false),
        ("[a-c]x", "bx", true),
        ("[a-c]x", "dx", false),
        ("[^a-c]x", "dx", true),
        ("[^a-c]x", "ax", false),
        ("[!a-c]x", "dx", true),
        ("[\\]]x", "]x", true),
        ("\\*x", "*x", true),
        ("\\*x", "ax", false),
        ("*", "a/b", true),
        ("?", "/", false),
        // Comments and blanks.
        ("# secret\n\n  \nother", "# secret", false),
        ("  secret  ", "secret", true),
        // Exceptions under an excluded directory.
        ("docs\n!docs/keep.md", "docs/keep.md", false),
        ("docs\n!docs/keep.md", "docs/other.md", true),
        ("*\n!src\nsrc/target", "src/target/x", true),
        ("*\n!src\nsrc/target", "src/main.rs", false),
        ("*\n!src\nsrc/target", "Cargo.toml", true),
        // The context root is never excluded.
        ("*", ".", false),
        ("*", "", false),
    ];

    #[test]
    fn excluded_table() {
        for (patterns, path, want) in CASES {
            let ignore = Ignore::parse(patterns).expect("valid patterns");
            assert_eq!(
                ignore.excluded(path),
                *want,
                "patterns {patterns:?}, path {path:?}"
            );
        }
    }

    #[test]
    fn may_include_under_table() {
        // (patterns, excluded dir, must descend?)
        let cases: &[(&str, &str, bool)] = &[
            ("docs", "docs", false),
            ("docs\n!docs/keep.md", "docs", true),
            ("docs\n!docs/*/keep.md", "docs/a", true),
            ("docs\n!docs/keep.md", "docs/a", false),
            ("*\n!**/*.go", "vendor/x", true),
            ("*\n!*.go", "vendor", false),
            ("*\n!README.md", "docs", false),
            ("*\n!d?cs/a", "docs", true),
            ("*\n![a-c]*/x", "b", true),
            ("*\n![a-c]*/x", "d", false),
        ];
        for (patterns, dir, want) in cases {
            let ignore = Ignore::parse(patterns).expect("valid patterns");
            assert_eq!(
                ignore.may_include_under(dir),
                *want,
                "patterns {patterns:?}, dir {dir:?}"
            );
        }
    }

    #[test]
    fn malformed_patterns() {
        for bad in [
            "[abc", "a[", "[]", "[]a]", "[a-]", "[-a]", "x\\", "ok\n!", "![z",
        ] {
            let err = Ignore::parse(bad).expect_err(bad);
            assert!(err.contains("line"), "{bad:?}: {err}");
        }
        let err = Ignore::parse("ok\n[abc").expect_err("bad class");
        assert!(err.contains("line 2") && err.contains("[abc"), "{err}");
    }
}
