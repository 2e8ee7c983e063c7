//! Parsing Go's text/template syntax: text and `{{actions}}` (with `{{-`
//! and `-}}` trimming and `{{/* comments */}}`), pipelines of commands
//! joined by `|`, variables (`$x := ...`, `$x = ...`), parenthesised
//! pipelines, and the `if`/`else if`/`else`, `with`/`else with`,
//! `range` (with `$i, $v :=`, `else`, `break`, `continue`) and `end`
//! actions. `define`, `template` and `block` are refused: a `--format`
//! is one template.

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    pub(super) nodes: Vec<Node>,
}

#[derive(Debug, Clone)]
pub(super) enum Node {
    Text(String),
    Action(Pipe),
    /// `if` and `with`: the branches (`else if` / `else with` add more),
    /// then the `else` list.
    If(Vec<(Pipe, Vec<Node>)>, Vec<Node>),
    With(Vec<(Pipe, Vec<Node>)>, Vec<Node>),
    Range(Pipe, Vec<Node>, Vec<Node>),
    Break,
    Continue,
}

/// A pipeline: optional variable declarations, then commands.
#[derive(Debug, Clone)]
pub(super) struct Pipe {
    pub vars: Vec<String>,
    /// `=` (assign to existing variables) rather than `:=`.
    pub assign: bool,
    pub cmds: Vec<Cmd>,
    /// Where it starts, `line:col`, and its text, for error messages.
    pub pos: String,
    pub text: String,
}

#[derive(Debug, Clone)]
pub(super) struct Cmd {
    pub args: Vec<Operand>,
    pub text: String,
}

#[derive(Debug, Clone)]
pub(super) enum Operand {
    /// `.`
    Dot,
    /// `.A.B`
    Field(Vec<String>),
    /// `$x.A.B` (`$` alone is the data the template started with).
    Var(String, Vec<String>),
    /// A function's name.
    Func(String),
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Nil,
    /// `(pipeline).A.B`
    Sub(Box<Pipe>, Vec<String>),
}

pub type ParseError = String;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Dot,
    Field(Vec<String>),
    Var(String, Vec<String>),
    Ident(String),
    Str(String),
    Int(i64),
    Float(f64),
    LParen,
    /// `)`, and a field chain written right after it.
    RParen(Vec<String>),
    Bar,
    Declare,
    Assign,
    Comma,
}

/// One `{{...}}` after lexing.
struct Action {
    toks: Vec<Tok>,
    text: String,
    line: usize,
    col: usize,
}

enum Item {
    Text(String),
    Action(Action),
}

pub fn parse(src: &str) -> Result<Template, ParseError> {
    let items = lex(src)?;
    let mut p = Parser {
        items: items.into_iter().peekable(),
        range_depth: 0,
    };
    let (nodes, end) = p.list()?;
    match end {
        End::Eof => Ok(Template { nodes }),
        End::Close(a) => Err(format!("template: :{}: unexpected {{{{end}}}}", a.line)),
        End::Else(a, _) => Err(format!("template: :{}: unexpected {{{{else}}}}", a.line)),
    }
}

fn line_col(src: &str, at: usize) -> (usize, usize) {
    let before = &src[..at];
    let line = before.matches('\n').count() + 1;
    let col = at - before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    (line, col)
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn lex(src: &str) -> Result<Vec<Item>, ParseError> {
    let mut items = Vec::new();
    let mut rest_at = 0;
    let mut trim_next = false;
    while rest_at <= src.len() {
        let rest = &src[rest_at..];
        let Some(open) = rest.find("{{") else {
            let mut text = rest.to_string();
            if trim_next {
                text = text.trim_start_matches(is_space).to_string();
            }
            if !text.is_empty() {
                items.push(Item::Text(text));
            }
            break;
        };
        let mut text = rest[..open].to_string();
        if trim_next {
            text = text.trim_start_matches(is_space).to_string();
        }
        let mut inner = rest_at + open + 2;
        // `{{- ` trims the text before.
        if src[inner..].starts_with('-') && src[inner + 1..].starts_with(is_space) {
            text = text.trim_end_matches(is_space).to_string();
            inner += 1;
        }
        if !text.is_empty() {
            items.push(Item::Text(text));
        }
        let (line, col) = line_col(src, rest_at + open);
        // A comment: `{{/* ... */}}`, with optional trim markers.
        let body = src[inner..].trim_start_matches(is_space);
        if body.starts_with("/*") {
            let start = src.len() - body.len();
            let Some(close) = src[start..].find("*/") else {
                return Err(format!("template: :{line}: unclosed comment"));
            };
            let after = start + close + 2;
            let tail = src[after..].trim_start_matches(is_space);
            let (end, trim) = if let Some(t) = tail.strip_prefix("-}}") {
                (src.len() - t.len(), true)
            } else if let Some(t) = tail.strip_prefix("}}") {
                (src.len() - t.len(), false)
            } else {
                return Err(format!(
                    "template: :{line}: comment ends before closing delimiter"
                ));
            };
            trim_next = trim;
            rest_at = end;
            continue;
        }
        let (toks, end, trim) = lex_action(src, inner, line)?;
        items.push(Item::Action(Action {
            toks,
            text: src[inner..end].trim().to_string(),
            line,
            col,
        }));
        trim_next = trim;
        rest_at = end + if trim { 3 } else { 2 };
    }
    Ok(items)
}

fn ident_char(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// Lexes one action from `start` (just inside `{{`) to its `}}`; returns
/// the tokens, where the closing delimiter starts and whether it trims.
fn lex_action(src: &str, start: usize, line: usize) -> Result<(Vec<Tok>, usize, bool), ParseError> {
    let b = src.as_bytes();
    let mut i = start;
    let mut toks = Vec::new();
    let err = |m: &str| Err(format!("template: :{line}: {m}"));
    // Reads `.A.B...` from `i` (at a dot); returns the names.
    let chain = |i: &mut usize| -> Vec<String> {
        let mut names = Vec::new();
        while *i < b.len() && b[*i] == b'.' {
            let s = *i + 1;
            let len: usize = src[s..]
                .chars()
                .take_while(|c| ident_char(*c))
                .map(char::len_utf8)
                .sum();
            if len == 0 {
                break;
            }
            names.push(src[s..s + len].to_string());
            *i = s + len;
        }
        names
    };
    loop {
        let Some(c) = src[i..].chars().next() else {
            return err("unclosed action");
        };
        if src[i..].starts_with("}}") {
            return Ok((toks, i, false));
        }
        if is_space(c) {
            let ws_end = i + src[i..]
                .chars()
                .take_while(|c| is_space(*c))
                .map(char::len_utf8)
                .sum::<usize>();
            if src[ws_end..].starts_with("-}}") {
                return Ok((toks, ws_end, true));
            }
            i = ws_end;
            continue;
        }
        match c {
            '.' => {
                let names = chain(&mut i);
                if names.is_empty() {
                    i += 1;
                    if src[i..].starts_with(|c: char| c.is_ascii_digit()) {
                        return err("bad number syntax");
                    }
                    toks.push(Tok::Dot);
                } else {
                    toks.push(Tok::Field(names));
                }
            }
            '$' => {
                let s = i + 1;
                let len: usize = src[s..]
                    .chars()
                    .take_while(|c| ident_char(*c))
                    .map(char::len_utf8)
                    .sum();
                let name = format!("${}", &src[s..s + len]);
                i = s + len;
                let names = chain(&mut i);
                toks.push(Tok::Var(name, names));
            }
            '(' => {
                toks.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                i += 1;
                let names = chain(&mut i);
                toks.push(Tok::RParen(names));
            }
            '|' => {
                toks.push(Tok::Bar);
                i += 1;
            }
            ',' => {
                toks.push(Tok::Comma);
                i += 1;
            }
            ':' => {
                if src[i..].starts_with(":=") {
                    toks.push(Tok::Declare);
                    i += 2;
                } else {
                    return err("expected :=");
                }
            }
            '=' => {
                toks.push(Tok::Assign);
                i += 1;
            }
            '"' => {
                let (s, end) = quoted(src, i)
                    .ok_or_else(|| format!("template: :{line}: unterminated quoted string"))?;
                toks.push(Tok::Str(s));
                i = end;
            }
            '`' => {
                let Some(close) = src[i + 1..].find('`') else {
                    return err("unterminated raw quoted string");
                };
                toks.push(Tok::Str(src[i + 1..i + 1 + close].to_string()));
                i += close + 2;
            }
            '\'' => {
                let (s, end) = quoted(src, i)
                    .ok_or_else(|| format!("template: :{line}: unterminated character constant"))?;
                let mut cs = s.chars();
                match (cs.next(), cs.next()) {
                    (Some(ch), None) => toks.push(Tok::Int(ch as i64)),
                    _ => return err("malformed character constant"),
                }
                i = end;
            }
            c if c.is_ascii_digit()
                || ((c == '-' || c == '+')
                    && src[i + 1..].starts_with(|d: char| d.is_ascii_digit())) =>
            {
                let len: usize = src[i + 1..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-'))
                    .map(char::len_utf8)
                    .sum::<usize>()
                    + 1;
                let text = src[i..i + len].replace('_', "");
                i += len;
                toks.push(
                    number(&text).ok_or_else(|| {
                        format!("template: :{line}: bad number syntax: {:?}", text)
                    })?,
                );
            }
            c if ident_char(c) => {
                let len: usize = src[i..]
                    .chars()
                    .take_while(|c| ident_char(*c))
                    .map(char::len_utf8)
                    .sum();
                toks.push(Tok::Ident(src[i..i + len].to_string()));
                i += len;
                // A field chain right after an identifier is not Go syntax
                // either (`len.X`), but it is rare: let the parser refuse.
            }
            other => return err(&format!("unexpected {other:?} in command")),
        }
    }
}

fn number(text: &str) -> Option<Tok> {
    let (neg, digits) = match text.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let int = if let Some(h) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        i64::from_str_radix(h, 16).ok()
    } else if let Some(o) = digits.strip_prefix("0o") {
        i64::from_str_radix(o, 8).ok()
    } else if digits.len() > 1
        && digits.starts_with('0')
        && digits.chars().all(|c| c.is_ascii_digit())
    {
        i64::from_str_radix(&digits[1..], 8).ok()
    } else {
        digits.parse::<i64>().ok()
    };
    if let Some(n) = int {
        return Some(Tok::Int(if neg { -n } else { n }));
    }
    digits
        .parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .map(|f| Tok::Float(if neg { -f } else { f }))
}

/// A Go double- or single-quoted literal starting at `at`: its value and
/// the index after the closing quote.
fn quoted(src: &str, at: usize) -> Option<(String, usize)> {
    let quote = src[at..].chars().next()?;
    let mut out = String::new();
    let mut chars = src[at + 1..].char_indices();
    while let Some((off, c)) = chars.next() {
        match c {
            c if c == quote => return Some((out, at + 1 + off + 1)),
            '\n' => return None,
            '\\' => {
                let (_, e) = chars.next()?;
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'a' => out.push('\u{7}'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'v' => out.push('\u{b}'),
                    '\\' => out.push('\\'),
                    '"' => out.push('"'),
                    '\'' => out.push('\''),
                    'x' | 'u' | 'U' => {
                        let n = match e {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let mut hex = String::new();
                        for _ in 0..n {
                            hex.push(chars.next()?.1);
                        }
                        out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                    }
                    d if d.is_digit(8) => {
                        let mut oct = d.to_string();
                        for _ in 0..2 {
                            oct.push(chars.next()?.1);
                        }
                        out.push(char::from_u32(u32::from_str_radix(&oct, 8).ok()?)?);
                    }
                    _ => return None,
                }
            }
            c => out.push(c),
        }
    }
    None
}

enum End {
    Eof,
    Close(Action),
    /// `{{else}}` or `{{else if ...}}`: the action and its tokens after
    /// `else`.
    Else(Action, Vec<Tok>),
}

struct Parser {
    items: std::iter::Peekable<std::vec::IntoIter<Item>>,
    range_depth: usize,
}

impl Parser {
    /// Nodes up to the end of input, `{{end}}` or `{{else...}}`.
    fn list(&mut self) -> Result<(Vec<Node>, End), ParseError> {
        let mut nodes = Vec::new();
        while let Some(item) = self.items.next() {
            let a = match item {
                Item::Text(t) => {
                    nodes.push(Node::Text(t));
                    continue;
                }
                Item::Action(a) => a,
            };
            let err = |m: String| format!("template: :{}: {m}", a.line);
            match a.toks.first() {
                None => return Err(err("missing value for command".into())),
                Some(Tok::Ident(k)) if k == "end" => {
                    if a.toks.len() > 1 {
                        return Err(err("unexpected tokens after end".into()));
                    }
                    return Ok((nodes, End::Close(a)));
                }
                Some(Tok::Ident(k)) if k == "else" => {
                    let rest = a.toks[1..].to_vec();
                    return Ok((nodes, End::Else(a, rest)));
                }
                Some(Tok::Ident(k)) if k == "if" || k == "with" => {
                    let is_if = k == "if";
                    let toks = a.toks[1..].to_vec();
                    let node = self.conditional(is_if, toks, &a)?;
                    nodes.push(node);
                }
                Some(Tok::Ident(k)) if k == "range" => {
                    let pipe = pipeline(&a.toks[1..], &a, true)?;
                    self.range_depth += 1;
                    let (body, end) = self.list()?;
                    let else_ = match end {
                        End::Close(_) => Vec::new(),
                        End::Else(e, rest) if rest.is_empty() => {
                            let (else_body, end) = self.list()?;
                            if !matches!(end, End::Close(_)) {
                                return Err(format!("template: :{}: expected end; found {{{{else}}}} or end of input", e.line));
                            }
                            else_body
                        }
                        End::Else(e, _) => {
                            return Err(format!(
                                "template: :{}: range can only have a plain {{{{else}}}}",
                                e.line
                            ))
                        }
                        End::Eof => return Err(err("unexpected EOF".into())),
                    };
                    self.range_depth -= 1;
                    nodes.push(Node::Range(pipe, body, else_));
                }
                Some(Tok::Ident(k)) if k == "break" || k == "continue" => {
                    if self.range_depth == 0 {
                        return Err(err(format!("{{{{{k}}}}} outside {{{{range}}}}")));
                    }
                    if a.toks.len() > 1 {
                        return Err(err(format!("unexpected tokens after {k}")));
                    }
                    nodes.push(if k == "break" {
                        Node::Break
                    } else {
                        Node::Continue
                    });
                }
                Some(Tok::Ident(k)) if matches!(k.as_str(), "define" | "template" | "block") => {
                    return Err(err(format!("{{{{{k}}}}} is not supported in a format")));
                }
                Some(_) => nodes.push(Node::Action(pipeline(&a.toks, &a, true)?)),
            }
        }
        Ok((nodes, End::Eof))
    }

    /// `if`/`with` from the tokens after the keyword, through `else if`
    /// chains to the `end`.
    fn conditional(&mut self, is_if: bool, toks: Vec<Tok>, a: &Action) -> Result<Node, ParseError> {
        let mut branches = Vec::new();
        let mut cond = pipeline(&toks, a, true)?;
        loop {
            let (body, end) = self.list()?;
            branches.push((cond, body));
            match end {
                End::Close(_) => break,
                End::Eof => return Err(format!("template: :{}: unexpected EOF", a.line)),
                End::Else(_, rest) if rest.is_empty() => {
                    let (else_body, end) = self.list()?;
                    match end {
                        End::Close(_) => {}
                        End::Else(e, _) => {
                            return Err(format!(
                                "template: :{}: expected end; found {{{{else}}}}",
                                e.line
                            ))
                        }
                        End::Eof => return Err(format!("template: :{}: unexpected EOF", a.line)),
                    }
                    return Ok(if is_if {
                        Node::If(branches, else_body)
                    } else {
                        Node::With(branches, else_body)
                    });
                }
                End::Else(e, rest) => {
                    let keyword = if is_if { "if" } else { "with" };
                    match rest.first() {
                        Some(Tok::Ident(k)) if k == keyword => {
                            cond = pipeline(&rest[1..], &e, true)?;
                        }
                        _ => {
                            return Err(format!(
                                "template: :{}: unexpected tokens after else",
                                e.line
                            ))
                        }
                    }
                }
            }
        }
        Ok(if is_if {
            Node::If(branches, Vec::new())
        } else {
            Node::With(branches, Vec::new())
        })
    }
}

/// A pipeline from tokens: `[$a[, $b] (:=|=)] cmd [| cmd]...`.
fn pipeline(toks: &[Tok], a: &Action, allow_decl: bool) -> Result<Pipe, ParseError> {
    let err = |m: &str| format!("template: :{}: {m}", a.line);
    let mut vars = Vec::new();
    let mut assign = false;
    let mut rest = toks;
    if allow_decl {
        let mut i = 0;
        let mut names = Vec::new();
        while let Some(Tok::Var(name, chain)) = rest.get(i) {
            if !chain.is_empty() {
                break;
            }
            names.push(name.clone());
            i += 1;
            match rest.get(i) {
                Some(Tok::Comma) if names.len() < 2 => i += 1,
                _ => break,
            }
        }
        match rest.get(i) {
            Some(Tok::Declare) | Some(Tok::Assign) if !names.is_empty() => {
                assign = rest[i] == Tok::Assign;
                vars = names;
                rest = &rest[i + 1..];
            }
            _ => {}
        }
    }
    if rest.is_empty() {
        return Err(err("missing value for command"));
    }
    let mut cmds = Vec::new();
    let mut i = 0;
    while i < rest.len() {
        let mut args = Vec::new();
        let start = i;
        while i < rest.len() && rest[i] != Tok::Bar {
            let (op, next) = operand(rest, i, a)?;
            args.push(op);
            i = next;
        }
        if args.is_empty() {
            return Err(err("missing command"));
        }
        cmds.push(Cmd {
            text: render_tokens(&rest[start..i]),
            args,
        });
        if i < rest.len() {
            i += 1;
            if i == rest.len() {
                return Err(err("missing command after |"));
            }
        }
    }
    Ok(Pipe {
        vars,
        assign,
        cmds,
        pos: format!("{}:{}", a.line, a.col + 2),
        text: a.text.clone(),
    })
}

fn operand(toks: &[Tok], i: usize, a: &Action) -> Result<(Operand, usize), ParseError> {
    let err = |m: String| format!("template: :{}: {m}", a.line);
    Ok(match &toks[i] {
        Tok::Dot => (Operand::Dot, i + 1),
        Tok::Field(names) => (Operand::Field(names.clone()), i + 1),
        Tok::Var(name, chain) => (Operand::Var(name.clone(), chain.clone()), i + 1),
        Tok::Str(s) => (Operand::Str(s.clone()), i + 1),
        Tok::Int(n) => (Operand::Int(*n), i + 1),
        Tok::Float(f) => (Operand::Float(*f), i + 1),
        Tok::Ident(k) if k == "true" || k == "false" => (Operand::Bool(k == "true"), i + 1),
        Tok::Ident(k) if k == "nil" => (Operand::Nil, i + 1),
        Tok::Ident(k) => (Operand::Func(k.clone()), i + 1),
        Tok::LParen => {
            // Find the matching `)`.
            let mut depth = 0;
            let mut j = i;
            loop {
                match toks.get(j) {
                    Some(Tok::LParen) => depth += 1,
                    Some(Tok::RParen(_)) => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    Some(_) => {}
                    None => return Err(err("unclosed left paren".into())),
                }
                j += 1;
            }
            let Tok::RParen(chain) = &toks[j] else {
                return Err(err("unclosed left paren".into()));
            };
            let inner = pipeline(&toks[i + 1..j], a, false)?;
            (Operand::Sub(Box::new(inner), chain.clone()), j + 1)
        }
        Tok::RParen(_) => return Err(err("unexpected right paren".into())),
        Tok::Declare | Tok::Assign => return Err(err("unexpected \":=\" in operand".into())),
        Tok::Comma => return Err(err("unexpected \",\" in operand".into())),
        Tok::Bar => return Err(err("missing value for command".into())),
    })
}

/// Tokens written back, for error messages (`at <.Foo>`).
fn render_tokens(toks: &[Tok]) -> String {
    let chain = |c: &[String]| c.iter().map(|n| format!(".{n}")).collect::<String>();
    toks.iter()
        .map(|t| match t {
            Tok::Dot => ".".to_string(),
            Tok::Field(c) => chain(c),
            Tok::Var(n, c) => format!("{n}{}", chain(c)),
            Tok::Ident(k) => k.clone(),
            Tok::Str(s) => format!("{s:?}"),
            Tok::Int(n) => n.to_string(),
            Tok::Float(f) => f.to_string(),
            Tok::LParen => "(".into(),
            Tok::RParen(c) => format!("){}", chain(c)),
            Tok::Bar => "|".into(),
            Tok::Declare => ":=".into(),
            Tok::Assign => "=".into(),
            Tok::Comma => ",".into(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_templates_parse() {
        for t in [
            "",
            "plain text",
            "{{.}}",
            "{{.A.B}} and {{ $x := .A }}{{$x}}",
            "{{range $i, $v := .L}}{{$i}}={{$v}}{{else}}none{{end}}",
            "{{if eq .A \"x\"}}x{{else if .B}}b{{else}}c{{end}}",
            "{{with .A}}{{.}}{{else with .B}}{{.}}{{end}}",
            "{{range .L}}{{if .}}{{break}}{{end}}{{continue}}{{end}}",
            "{{(index .M \"k\").Name}}",
            "{{.A | printf \"%s-%d\" 3}}",
            "{{- .A -}} {{/* a comment */}} {{- /* trimmed */ -}}",
            "{{ \"}}\" }}",
            "{{ -3 }} {{ 0x10 }} {{ 1.5 }} {{ 'a' }} {{ `raw` }}",
            "{{$x = 1}}",
        ] {
            assert!(parse(t).is_ok(), "{t}: {:?}", parse(t).err());
        }
    }

    #[test]
    fn bad_templates_are_refused() {
        for (t, why) in [
            ("{{.A", "unclosed action"),
            ("{{}}", "missing value"),
            ("{{if .A}}x", "unexpected EOF"),
            ("{{end}}", "unexpected {{end}}"),
            ("{{else}}", "unexpected {{else}}"),
            ("{{range .A}}{{else if .B}}{{end}}", "plain {{else}}"),
            ("{{break}}", "outside {{range}}"),
            ("{{.A | }}", "missing command"),
            ("{{(.A}}", "unclosed left paren"),
            ("{{.A)}}", "unexpected right paren"),
            ("{{\"abc}}", "unterminated"),
            ("{{template \"x\"}}", "not supported"),
            ("{{/* open", "unclosed comment"),
            ("{{ 1x }}", "bad number"),
            ("{{ # }}", "unexpected"),
            ("{{if}}{{end}}", "missing value"),
        ] {
            let e = parse(t).expect_err(t);
            assert!(e.contains(why), "{t}: {e}");
        }
    }

    #[test]
    fn trim_markers_trim_the_text_beside_them() {
        let t = parse("a  {{- .X -}}  b {{-3}}").expect("parses");
        assert!(matches!(&t.nodes[0], Node::Text(s) if s == "a"));
        assert!(matches!(&t.nodes[2], Node::Text(s) if s == "b "));
        assert!(
            matches!(&t.nodes[3], Node::Action(p) if matches!(p.cmds[0].args[0], Operand::Int(-3)))
        );
    }
}
