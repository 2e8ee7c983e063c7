//! The subset of Go's text/template that `--format` and `inspect -f` take:
//! `{{.A.B}}`, `{{.}}`, `{{json .A}}`, `{{index .A "key"}}`, `{{upper .A}}`,
//! `{{lower .A}}`, and `table` (a header row, columns aligned on tabs).

use anyhow::{bail, Result};
use serde_json::Value;

/// Renders `template` against `value`, the way Go prints values: strings
/// bare, `<no value>` for a missing field, maps as `map[k:v ...]`.
pub fn render(template: &str, value: &Value) -> Result<String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            bail!("template: unclosed action in {template:?}");
        };
        let action = after[..end]
            .trim()
            .trim_start_matches('-')
            .trim_end_matches('-');
        out.push_str(&eval(action.trim(), value)?);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(unescape(&out))
}

/// `\t` and `\n` written literally on a command line mean tab and newline.
fn unescape(s: &str) -> String {
    s.replace("\\t", "\t").replace("\\n", "\n")
}

fn eval(action: &str, value: &Value) -> Result<String> {
    let words = split_words(action);
    match words.as_slice() {
        [path] => Ok(go_string(lookup(value, path)?)),
        [f, path] if f == "json" => Ok(match lookup(value, path)? {
            Some(v) => serde_json::to_string(v)?,
            None => "null".into(),
        }),
        [f, path] if f == "upper" => Ok(go_string(lookup(value, path)?).to_uppercase()),
        [f, path] if f == "lower" => Ok(go_string(lookup(value, path)?).to_lowercase()),
        [f, path, key] if f == "index" => {
            let key = key.trim_matches('"');
            Ok(go_string(lookup(value, path)?.and_then(|v| v.get(key))))
        }
        _ => bail!("template: unsupported action {{{{{action}}}}}"),
    }
}

fn split_words(action: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in action.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

fn lookup<'a>(value: &'a Value, path: &str) -> Result<Option<&'a Value>> {
    if path == "." {
        return Ok(Some(value));
    }
    let Some(rest) = path.strip_prefix('.') else {
        bail!("template: {path:?} is not a field path (start it with a dot)");
    };
    let mut v = value;
    for part in rest.split('.') {
        match v.get(part) {
            Some(next) => v = next,
            None => return Ok(None),
        }
    }
    Ok(Some(v))
}

fn go_string(v: Option<&Value>) -> String {
    match v {
        None => "<no value>".into(),
        Some(Value::Null) => "<nil>".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Array(a)) => format!(
            "[{}]",
            a.iter()
                .map(|x| go_string(Some(x)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        Some(Value::Object(o)) => format!(
            "map[{}]",
            o.iter()
                .map(|(k, x)| format!("{k}:{}", go_string(Some(x))))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
}

/// Lines of cells (split on tabs) printed as aligned columns, three spaces
/// apart, like Go's tabwriter in docker's tables.
pub fn print_columns(lines: &[String]) {
    use std::io::Write;
    let rows: Vec<Vec<&str>> = lines.iter().map(|l| l.split('\t').collect()).collect();
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter(|r| r.len() > c + 1)
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = std::io::stdout().lock();
    for r in rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}   ", w = widths[i]));
            }
        }
        // A closed pipe (`| head`) ends the listing quietly.
        if writeln!(out, "{}", line.trim_end()).is_err() {
            return;
        }
    }
}

/// A `--format` value: `table ...` prints a header and aligns columns.
pub struct Format {
    pub table: bool,
    pub template: String,
}

impl Format {
    /// `default` is the table used without `--format` (or with `table`).
    pub fn parse(format: Option<&str>, default: &str) -> Format {
        match format {
            None | Some("table") => Format {
                table: true,
                template: default.to_string(),
            },
            Some(f) => match f.strip_prefix("table") {
                Some(rest) if rest.starts_with(char::is_whitespace) => Format {
                    table: true,
                    template: rest.trim_start().to_string(),
                },
                _ => Format {
                    table: false,
                    template: f.to_string(),
                },
            },
        }
    }

    /// Renders and prints rows; `header` maps a field name to its column
    /// title.
    pub fn print(&self, rows: &[Value], header: &dyn Fn(&str) -> String) -> Result<()> {
        // A bad template is an error even when there are no rows.
        render(&self.template, &Value::Null)?;
        let mut lines = Vec::new();
        if self.table {
            let titles = header_row(&self.template, header);
            lines.push(titles);
        }
        for r in rows {
            lines.push(render(&self.template, r)?);
        }
        if self.table {
            print_columns(&lines);
        } else {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            for l in lines {
                if writeln!(out, "{l}").is_err() {
                    break;
                }
            }
        }
        Ok(())
    }
}

/// The header of a table template: each `{{.Field}}` becomes its title.
fn header_row(template: &str, header: &dyn Fn(&str) -> String) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        let words = split_words(after[..end].trim());
        let field = words
            .last()
            .map(|w| w.trim_start_matches('.').to_string())
            .unwrap_or_default();
        out.push_str(&header(&field));
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    unescape(&out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn templates_render_like_go() {
        let v = json!({"State": {"Running": true, "Pid": 42}, "Name": "/web",
            "Config": {"Labels": {"a": "b"}, "Env": ["X=1", "Y=2"]}});
        let cases = [
            ("{{.State.Running}}", "true"),
            ("{{ .State.Pid }}", "42"),
            ("{{.Name}} {{.State.Running}}", "/web true"),
            ("{{json .Config.Labels}}", r#"{"a":"b"}"#),
            ("{{index .Config.Labels \"a\"}}", "b"),
            ("{{.Config.Env}}", "[X=1 Y=2]"),
            ("{{.Missing}}", "<no value>"),
            ("{{.Config.Labels}}", "map[a:b]"),
            ("{{upper .Name}}", "/WEB"),
            ("a\\tb", "a\tb"),
        ];
        for (t, want) in cases {
            assert_eq!(render(t, &v).expect(t), want, "{t}");
        }
    }

    #[test]
    fn bad_templates_are_errors() {
        let v = json!({});
        for t in ["{{.A", "{{range .A}}", "{{A}}"] {
            assert!(render(t, &v).is_err(), "{t}");
        }
    }

    #[test]
    fn table_formats_have_headers() {
        let f = Format::parse(Some("table {{.ID}}\t{{.Names}}"), "x");
        assert!(f.table);
        assert_eq!(header_row(&f.template, &|f| f.to_uppercase()), "ID\tNAMES");
        let f = Format::parse(Some("{{.ID}}"), "x");
        assert!(!f.table);
    }
}
