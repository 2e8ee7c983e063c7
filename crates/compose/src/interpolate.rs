//! Variable substitution (`12-interpolation.md`): `$VAR`, `${VAR}`,
//! `${VAR:-default}` (unset or empty), `${VAR-default}` (unset),
//! `${VAR:?error}` / `${VAR?error}` (an error carrying the message),
//! `${VAR:+replacement}` / `${VAR+replacement}` (when set and non-empty /
//! set), `$$` for a literal `$`. Defaults, errors and replacements may
//! themselves hold substitutions, evaluated only when used. A variable
//! that is unset and has no default becomes the empty string, with a
//! warning. Only values are substituted, never mapping keys.

use serde_json::Value;

use crate::yaml::join;

/// Why a substitution failed; the caller adds the file and path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// `${VAR:?message}` on an unset variable.
    Required { name: String, message: String },
    /// A `$` that starts nothing valid, or an unclosed `${`.
    Syntax { text: String },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Required { name, message } if message.is_empty() => {
                write!(f, "required variable {name} is missing a value")
            }
            Problem::Required { name, message } => {
                write!(f, "required variable {name} is missing a value: {message}")
            }
            Problem::Syntax { text } => write!(
                f,
                "invalid interpolation format for {text:?}; you may need to escape any $ with another $"
            ),
        }
    }
}

/// Variable lookups, and the names found unset (for the warnings).
pub struct Env<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    pub unset: Vec<String>,
}

impl<'a> Env<'a> {
    pub fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Env<'a> {
        Env {
            lookup,
            unset: Vec::new(),
        }
    }

    fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
    }

    /// `text` with every substitution done.
    pub fn substitute(&mut self, text: &str) -> Result<String, Problem> {
        let bad = || Problem::Syntax {
            text: text.to_string(),
        };
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            if let Some(r) = after.strip_prefix('$') {
                out.push('$');
                rest = r;
            } else if let Some(inner) = after.strip_prefix('{') {
                let end = closing_brace(inner).ok_or_else(bad)?;
                out.push_str(&self.braced(&inner[..end]).map_err(|p| match p {
                    Problem::Syntax { .. } => bad(),
                    p => p,
                })?);
                rest = &inner[end + 1..];
            } else {
                let n = name_len(after);
                if n == 0 {
                    return Err(bad());
                }
                out.push_str(&self.plain(&after[..n]));
                rest = &after[n..];
            }
        }
        out.push_str(rest);
        Ok(out)
    }

    fn plain(&mut self, name: &str) -> String {
        match self.get(name) {
            Some(v) => v,
            None => {
                if !self.unset.iter().any(|u| u == name) {
                    self.unset.push(name.to_string());
                }
                String::new()
            }
        }
    }

    /// The inside of `${...}`.
    fn braced(&mut self, body: &str) -> Result<String, Problem> {
        let n = name_len(body);
        if n == 0 {
            return Err(Problem::Syntax { text: body.into() });
        }
        let (name, op) = body.split_at(n);
        let value = self.get(name);
        let set_nonempty = value.as_deref().is_some_and(|v| !v.is_empty());
        let (operator, arg) = [":-", ":?", ":+", "-", "?", "+"]
            .iter()
            .find_map(|o| op.strip_prefix(o).map(|a| (*o, a)))
            .unwrap_or(("", op));
        match operator {
            "" if arg.is_empty() => Ok(self.plain(name)),
            ":-" if !set_nonempty => self.substitute(arg),
            "-" if value.is_none() => self.substitute(arg),
            ":?" if !set_nonempty => Err(Problem::Required {
                name: name.into(),
                message: self.substitute(arg)?,
            }),
            "?" if value.is_none() => Err(Problem::Required {
                name: name.into(),
                message: self.substitute(arg)?,
            }),
            ":+" if set_nonempty => self.substitute(arg),
            "+" if value.is_some() => self.substitute(arg),
            ":+" | "+" => Ok(String::new()),
            ":-" | "-" | ":?" | "?" => Ok(value.unwrap_or_default()),
            _ => Err(Problem::Syntax { text: body.into() }),
        }
    }
}

/// Length of the variable name at the start of `s`: `[A-Za-z_][A-Za-z0-9_]*`.
fn name_len(s: &str) -> usize {
    let b = s.as_bytes();
    if b.is_empty() || !(b[0].is_ascii_alphabetic() || b[0] == b'_') {
        return 0;
    }
    b.iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
        .count()
}

/// The index of the `}` closing a `${` whose body starts `s`, counting
/// nested `${`.
fn closing_brace(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut depth = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'$' if b.get(i + 1) == Some(&b'$') => i += 1,
            b'$' if b.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

/// Substitutes every string value of `v` (keys are left alone); an error
/// carries the dotted path of the value.
pub fn tree(v: &mut Value, path: &str, env: &mut Env) -> Result<(), (String, Problem)> {
    match v {
        Value::String(s) => {
            *s = env.substitute(s).map_err(|p| (path.to_string(), p))?;
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                tree(item, &join(path, &i.to_string()), env)?;
            }
        }
        Value::Object(m) => {
            for (k, item) in m.iter_mut() {
                tree(item, &join(path, k), env)?;
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> Result<String, Problem> {
        let vars = |k: &str| match k {
            "SET" => Some("value".to_string()),
            "EMPTY" => Some(String::new()),
            "PORT" => Some("8080".to_string()),
            _ => None,
        };
        Env::new(&vars).substitute(text)
    }

    #[test]
    fn every_form() {
        let table = [
            ("plain $SET and ${SET}", "plain value and value"),
            ("$SET_x ${SET}_x", " value_x"),
            ("${UNSET}", ""),
            ("${UNSET:-d}|${EMPTY:-d}|${SET:-d}", "d|d|value"),
            ("${UNSET-d}|${EMPTY-d}|${SET-d}", "d||value"),
            ("${UNSET:+r}|${EMPTY:+r}|${SET:+r}", "||r"),
            ("${UNSET+r}|${EMPTY+r}|${SET+r}", "|r|r"),
            ("${EMPTY?e}|${SET:?e}", "|value"),
            ("$$SET $${SET} $$", "$SET ${SET} $"),
            ("${UNSET:-${ALSO:-${PORT}}}", "8080"),
            ("${UNSET:-a ${SET} b}", "a value b"),
            ("${UNSET:-}", ""),
            ("${UNSET:-$$}", "$"),
            ("no dollars", "no dollars"),
            ("${SET:-${UNSET:?not needed}}", "value"),
        ];
        for (input, want) in table {
            assert_eq!(run(input).as_deref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn required_and_malformed() {
        assert_eq!(
            run("${NEEDX:?needx is required}"),
            Err(Problem::Required {
                name: "NEEDX".into(),
                message: "needx is required".into()
            })
        );
        assert_eq!(
            run("${EMPTY:?}").map_err(|e| e.to_string()),
            Err("required variable EMPTY is missing a value".into())
        );
        assert_eq!(
            run("${UNSET?${PORT} missing}").map_err(|e| e.to_string()),
            Err("required variable UNSET is missing a value: 8080 missing".into())
        );
        for bad in [
            "${", "${SET", "$1", "a $ b", "${-x}", "${SET!x}", "${}", "end $",
        ] {
            assert!(
                matches!(run(bad), Err(Problem::Syntax { .. })),
                "{bad} must be refused"
            );
        }
    }

    #[test]
    fn unset_variables_are_reported_once() {
        let none = |_: &str| None;
        let mut env = Env::new(&none);
        assert_eq!(env.substitute("$A ${A} ${B:-x} $C").as_deref(), Ok("  x "));
        assert_eq!(env.unset, ["A", "C"]);
    }
}
