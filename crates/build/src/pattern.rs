//! Wildcards in COPY/ADD sources: Go's `filepath.Match` per path component
//! (`*`, `?`, `[a-z]`, `[^...]`, `\` escapes), which is what docker uses.

/// Whether a source contains wildcard characters.
pub(crate) fn has_wildcards(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Matches one path component against one pattern component. A malformed
/// pattern (unterminated class) matches nothing.
pub(crate) fn matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    match_at(&p, &n)
}

fn match_at(p: &[char], n: &[char]) -> bool {
    let Some((&first, rest)) = p.split_first() else {
        return n.is_empty();
    };
    match first {
        '*' => (0..=n.len()).any(|i| match_at(rest, &n[i..])),
        '?' => !n.is_empty() && match_at(rest, &n[1..]),
        '[' => {
            let Some((&c, n_rest)) = n.split_first() else {
                return false;
            };
            match class(rest, c) {
                Some((true, after)) => match_at(after, n_rest),
                _ => false,
            }
        }
        '\\' => match rest.split_first() {
            Some((&lit, after)) => n.first() == Some(&lit) && match_at(after, &n[1..]),
            None => false,
        },
        lit => n.first() == Some(&lit) && match_at(rest, &n[1..]),
    }
}

/// Matches `c` against the class after `[`; returns (matched, rest after `]`).
fn class(p: &[char], c: char) -> Option<(bool, &[char])> {
    let mut i = 0;
    let negate = matches!(p.first(), Some('^') | Some('!'));
    if negate {
        i += 1;
    }
    let mut hit = false;
    let mut first = true;
    loop {
        let ch = *p.get(i)?;
        if ch == ']' && !first {
            return Some((hit != negate, &p[i + 1..]));
        }
        first = false;
        let lo = if ch == '\\' {
            i += 1;
            *p.get(i)?
        } else {
            ch
        };
        i += 1;
        let hi = if p.get(i) == Some(&'-') && p.get(i + 1).is_some_and(|c| *c != ']') {
            i += 1;
            let h = if p[i] == '\\' {
                i += 1;
                *p.get(i)?
            } else {
                p[i]
            };
            i += 1;
            h
        } else {
            lo
        };
        if lo <= c && c <= hi {
            hit = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_filepath_match_rules() {
        for (p, n, want) in [
            ("*.txt", "a.txt", true),
            ("*.txt", "a.txt.bak", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("[a-c]x", "bx", true),
            ("[^a-c]x", "bx", false),
            ("[!a-c]x", "dx", true),
            ("\\*", "*", true),
            ("\\*", "a", false),
            ("[", "[", false),
            ("*", "", true),
            ("file[0-9]", "file7", true),
        ] {
            assert_eq!(matches(p, n), want, "{p} {n}");
        }
        assert!(has_wildcards("a*") && !has_wildcards("plain"));
    }
}
