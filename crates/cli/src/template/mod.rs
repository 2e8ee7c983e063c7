//! `--format` and `inspect -f`: Go's text/template as docker's CLI runs
//! it. `value` is the data (JSON in the daemon's field order) and how Go
//! prints it, `parse` the template syntax, `exec` its execution and
//! functions; this module is docker's formatter around them: `table`
//! formats (a header from the row's titles, columns aligned by an elastic
//! tab writer with docker's settings), `json` (`{{json .}}`), `\t` and
//! `\n` written literally, and the compatibility helpers the older
//! commands and `compose` use.

mod exec;
mod parse;
mod value;

use std::io::Write;

use anyhow::{anyhow, Result};

pub use exec::{Env, Names, Structs};
pub use parse::Template;
pub use value::{go_float, Val};

/// Parses a template, refusing calls to functions that do not exist (as
/// Go does at parse time).
pub fn parse(src: &str) -> Result<Template> {
    let t = parse::parse(src).map_err(|e| anyhow!("{e}"))?;
    if let Some(f) = t.unknown_functions().first() {
        let line = 1 + src.matches('\n').count().min(
            src[..src.find(f.as_str()).unwrap_or(0)]
                .matches('\n')
                .count(),
        );
        return Err(anyhow!("template: :{line}: function \"{f}\" not defined"));
    }
    Ok(t)
}

/// Renders `template` against a JSON value with plain semantics (missing
/// keys are `<no value>`), after docker's `\t`/`\n` replacement.
pub fn render(template: &str, value: &serde_json::Value) -> Result<String> {
    render_val(template, &Val::from(value))
}

pub fn render_val(template: &str, value: &Val) -> Result<String> {
    let t = parse(&unescape(template))?;
    t.execute(value, Env::default()).map_err(|e| anyhow!("{e}"))
}

/// `\t` and `\n` written literally on a command line mean tab and newline.
pub fn unescape(s: &str) -> String {
    s.replace("\\t", "\t").replace("\\n", "\n")
}

/// A row method with arguments (`.Label "k"`): row index, name, args;
/// `None` when the row has no such method.
pub type RowMethod<'a> = &'a dyn Fn(usize, &str, &[Val]) -> Option<Result<Val, String>>;

/// What a listing command's rows are, for its `--format`.
pub struct Listing<'a> {
    /// The Go type of a row (`*formatter.ContainerContext`), named in the
    /// error for a field a row does not have.
    pub type_name: &'a str,
    /// Each field's column title (docker's header context).
    pub headers: &'a [(&'a str, &'a str)],
    /// Row methods with arguments (`.Label "k"`): row index, name, args.
    pub method: Option<RowMethod<'a>>,
    /// How docker's command words an error while executing the template
    /// (`failed to execute template` or `template parsing error`).
    pub exec_error: &'a str,
}

/// A `--format` value as docker's formatter reads it: `table [TEMPLATE]`
/// (the command's default columns when just `table` or nothing),
/// `json`, or a template printed once per row.
#[derive(Debug, Clone)]
pub struct Format {
    pub table: bool,
    pub template: String,
}

impl Format {
    /// `default` is the command's table template (without `table`).
    pub fn parse(format: Option<&str>, default: &str) -> Format {
        let raw = match format {
            None | Some("") | Some("table") => return Format::table_of(default),
            Some("json") => {
                return Format {
                    table: false,
                    template: "{{json .}}".into(),
                }
            }
            Some(f) => f,
        };
        let (table, rest) = match raw.strip_prefix("table") {
            Some(rest) => (true, rest),
            None => (false, raw),
        };
        Format {
            table,
            template: unescape(rest.trim_matches(' ')),
        }
    }

    fn table_of(default: &str) -> Format {
        Format {
            table: true,
            template: unescape(default),
        }
    }

    /// The output for `rows`: each row rendered and ended by a newline;
    /// for a table, a header first and the columns aligned.
    pub fn render(&self, rows: &[Val], listing: &Listing) -> Result<String> {
        let t = parse(&self.template).map_err(|e| anyhow!("failed to parse template: {e}"))?;
        let mut body = String::new();
        for (i, row) in rows.iter().enumerate() {
            let m = |name: &str, args: &[Val]| listing.method.and_then(|f| f(i, name, args));
            let env = Env {
                header: false,
                methods: Some(&m),
                strict: Some(listing.type_name),
                missing_key_error: false,
                structs: None,
                names: Names::Both,
            };
            let line = t
                .execute(row, env)
                .map_err(|e| anyhow!("{}: {e}", listing.exec_error))?;
            body.push_str(&line);
            body.push('\n');
        }
        if !self.table {
            return Ok(body);
        }
        let header = Val::Map(
            listing
                .headers
                .iter()
                .map(|(k, v)| (k.to_string(), Val::str(*v)))
                .collect(),
        );
        let label = |name: &str, args: &[Val]| -> Option<Result<Val, String>> {
            // docker's header for `.Label "a.b-c"`: the last part, with
            // dashes and underscores as spaces.
            (name == "Label").then(|| {
                let key = args.first().and_then(Val::as_str).unwrap_or_default();
                let last = key.rsplit('.').next().unwrap_or_default();
                Ok(Val::Str(last.replace(['-', '_'], " ")))
            })
        };
        let env = Env {
            header: true,
            methods: Some(&label),
            ..Env::default()
        };
        // dockerd's CLI ignores errors in the header (it is best effort).
        let mut text = t.execute(&header, env).unwrap_or_default();
        text.push('\n');
        text.push_str(&body);
        Ok(tabwrite(&text, 10, 3))
    }

    /// Renders and prints to stdout; a closed pipe ends quietly.
    pub fn write(&self, rows: &[Val], listing: &Listing) -> Result<()> {
        let out = self.render(rows, listing)?;
        let _ = std::io::stdout().lock().write_all(out.as_bytes());
        Ok(())
    }

    /// For commands whose rows are JSON built on the spot (`compose`):
    /// `header` titles each field the template names; fields the rows do
    /// not have print `<no value>`.
    pub fn print(&self, rows: &[serde_json::Value], header: &dyn Fn(&str) -> String) -> Result<()> {
        let t = parse(&self.template)?;
        let titles: Vec<(String, String)> = t
            .field_names()
            .into_iter()
            .map(|f| {
                let h = header(&f);
                (f, h)
            })
            .collect();
        let mut out = String::new();
        for r in rows {
            out.push_str(
                &t.execute(&Val::from(r), Env::default())
                    .map_err(|e| anyhow!("{e}"))?,
            );
            out.push('\n');
        }
        if self.table {
            let header = Val::Map(titles.into_iter().map(|(k, v)| (k, Val::Str(v))).collect());
            let env = Env {
                header: true,
                ..Env::default()
            };
            let mut text = t.execute(&header, env).unwrap_or_default();
            text.push('\n');
            text.push_str(&out);
            out = tabwrite(&text, 10, 3);
        }
        let _ = std::io::stdout().lock().write_all(out.as_bytes());
        Ok(())
    }
}

/// Lines of cells (split on tabs) printed as aligned columns, three spaces
/// apart, trailing spaces trimmed (compose's tables).
pub fn print_columns(lines: &[String]) {
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
        if writeln!(out, "{}", line.trim_end()).is_err() {
            return;
        }
    }
}

/// Elastic tabstops, as Go's `text/tabwriter` lays text out with a space
/// as padding character: a tab ends a cell; the cells of one column in
/// consecutive lines (a block) are padded to the widest of them plus
/// `padding`, and to at least `minwidth`; the text after a line's last
/// tab is no column's. A block ends at a line without that column.
pub fn tabwrite(text: &str, minwidth: usize, padding: usize) -> String {
    let lines: Vec<Vec<&str>> = text.split('\n').map(|l| l.split('\t').collect()).collect();
    let mut out = String::with_capacity(text.len() * 2);
    let mut widths = Vec::new();
    layout(
        &lines,
        0,
        lines.len(),
        &mut widths,
        minwidth,
        padding,
        &mut out,
    );
    out
}

fn layout(
    lines: &[Vec<&str>],
    mut line0: usize,
    line1: usize,
    widths: &mut Vec<usize>,
    minwidth: usize,
    padding: usize,
    out: &mut String,
) {
    let column = widths.len();
    let mut this = line0;
    while this < line1 {
        // Only tab-terminated cells make columns: a line of n cells has
        // n - 1 of them.
        if column + 1 >= lines[this].len() {
            this += 1;
            continue;
        }
        emit(lines, line0, this, widths, out);
        line0 = this;
        let mut width = minwidth;
        while this < line1 && column + 1 < lines[this].len() {
            width = width.max(lines[this][column].chars().count() + padding);
            this += 1;
        }
        widths.push(width);
        layout(lines, line0, this, widths, minwidth, padding, out);
        widths.pop();
        line0 = this;
    }
    emit(lines, line0, line1, widths, out);
}

fn emit(lines: &[Vec<&str>], line0: usize, line1: usize, widths: &[usize], out: &mut String) {
    for (i, line) in lines.iter().enumerate().take(line1).skip(line0) {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if let Some(w) = widths.get(j).filter(|_| j + 1 < line.len()) {
                let n = w.saturating_sub(cell.chars().count());
                out.extend(std::iter::repeat_n(' ', n));
            }
        }
        if i + 1 < lines.len() {
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests;
