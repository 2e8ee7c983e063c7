//! YAML in and out.
//!
//! [`parse`] reads one document into a `serde_json::Value` tree, resolving
//! plain scalars with the YAML 1.2 core schema (so `8080:80` and `yes` stay
//! strings), anchors and aliases, and merge keys (`<<: *base`, or a list of
//! them: keys written in the mapping win, then earlier merged mappings win
//! over later ones). It also records what the tree itself cannot hold: the
//! line of every mapping key (for error messages) and the values tagged
//! `!reset` or `!override` (the Compose merge rules, `13-merge.md`).
//! A duplicated key is an error, as in the YAML spec.
//!
//! [`emit`] writes a value back as block YAML with two-space indentation,
//! quoting only strings that would otherwise read back as something else.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// What `!reset` and `!override` ask of the merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeTag {
    /// Drop the value the earlier files set (and this one).
    Reset,
    /// Replace the earlier value instead of merging with it.
    Override,
}

/// A parsed document.
#[derive(Debug, Clone, Default)]
pub struct Document {
    pub value: Value,
    /// Dotted path (`services.web.ports`) → merge tag.
    pub tags: BTreeMap<String, MergeTag>,
    /// Dotted path of a mapping key → its 1-based line.
    pub lines: HashMap<String, usize>,
}

/// A YAML syntax error, at a 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Joins a path and a key the way error messages name keys.
pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

enum Frame {
    Map {
        anchor: usize,
        tag: Option<MergeTag>,
        /// Key, value, whether it is a merge key, the key's line.
        entries: Vec<(String, Value, bool, usize)>,
        /// The key read, waiting for its value; `merge` when it is a plain `<<`.
        key: Option<(String, bool, usize)>,
        path: String,
    },
    Seq {
        anchor: usize,
        tag: Option<MergeTag>,
        items: Vec<Value>,
        path: String,
    },
}

struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Value>,
    doc: Document,
    root: Option<Value>,
    error: Option<SyntaxError>,
}

fn merge_tag(tag: &Option<Tag>) -> Option<MergeTag> {
    match tag {
        Some(t) if t.handle == "!" && t.suffix == "reset" => Some(MergeTag::Reset),
        Some(t) if t.handle == "!" && t.suffix == "override" => Some(MergeTag::Override),
        _ => None,
    }
}

/// The core schema's reading of a scalar; `tag` forces a type (`!!str`).
fn scalar(text: &str, style: TScalarStyle, tag: &Option<Tag>) -> Value {
    if let Some(t) = tag {
        if t.handle == "tag:yaml.org,2002:" || t.handle == "!!" {
            match t.suffix.as_str() {
                "str" => return Value::String(text.to_string()),
                "null" => return Value::Null,
                _ => {}
            }
        }
    }
    if style != TScalarStyle::Plain {
        return Value::String(text.to_string());
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Value::String(text.to_string())
        }
        _ => {}
    }
    if let Some(n) = integer(text) {
        return Value::Number(n.into());
    }
    if is_float(text) {
        if let Some(n) = text.parse::<f64>().ok().and_then(Number::from_f64) {
            return Value::Number(n);
        }
    }
    Value::String(text.to_string())
}

fn integer(text: &str) -> Option<i64> {
    if let Some(oct) = text.strip_prefix("0o") {
        return i64::from_str_radix(oct, 8).ok();
    }
    if let Some(hex) = text.strip_prefix("0x") {
        return i64::from_str_radix(hex, 16).ok();
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`
fn is_float(text: &str) -> bool {
    let t = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], Some(&t[i + 1..])),
        None => (t, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = all_digits(int)
        && all_digits(frac)
        && (!int.is_empty() || !frac.is_empty())
        && (mantissa.contains('.') || exponent.is_some());
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && all_digits(e)
    });
    mantissa_ok && exponent_ok
}

impl Builder {
    fn path(&self) -> String {
        match self.stack.last() {
            None => String::new(),
            Some(Frame::Map { key, path, .. }) => match key {
                Some((k, _, _)) => join(path, k),
                None => path.clone(),
            },
            Some(Frame::Seq { items, path, .. }) => join(path, &items.len().to_string()),
        }
    }

    fn fail(&mut self, mark: Marker, message: String) {
        if self.error.is_none() {
            self.error = Some(SyntaxError {
                line: mark.line(),
                column: mark.col() + 1,
                message,
            });
        }
    }

    /// A finished node: stored under its anchor, then given to its parent.
    fn finish(&mut self, value: Value, anchor: usize, tag: Option<MergeTag>, mark: Marker) {
        if anchor != 0 {
            self.anchors.insert(anchor, value.clone());
        }
        if let Some(t) = tag {
            let p = self.path();
            self.doc.tags.insert(p, t);
        }
        self.push_value(value, mark);
    }

    fn push_value(&mut self, value: Value, mark: Marker) {
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(Frame::Seq { items, .. }) => items.push(value),
            Some(Frame::Map { key, entries, .. }) => match key.take() {
                Some((k, merge, line)) => entries.push((k, value, merge, line)),
                None => {
                    // A key: only scalars make sense as Compose keys.
                    let (k, merge) = match &value {
                        Value::String(s) => (s.clone(), false),
                        Value::Null => ("null".into(), false),
                        Value::Bool(b) => (b.to_string(), false),
                        Value::Number(n) => (n.to_string(), false),
                        _ => {
                            self.fail(mark, "a mapping key must be a scalar".into());
                            return;
                        }
                    };
                    *key = Some((k, merge, mark.line()));
                }
            },
        }
    }

    fn end_map(
        &mut self,
        entries: Vec<(String, Value, bool, usize)>,
        mark: Marker,
    ) -> Option<Map<String, Value>> {
        let mut map = Map::new();
        let mut merged: Vec<Value> = Vec::new();
        for (k, v, merge, line) in entries {
            if merge {
                match v {
                    Value::Array(items) => merged.extend(items),
                    v => merged.push(v),
                }
                continue;
            }
            if map.contains_key(&k) {
                self.error.get_or_insert(SyntaxError {
                    line,
                    column: 1,
                    message: format!("mapping key {k:?} already defined"),
                });
                return None;
            }
            map.insert(k, v);
        }
        for m in merged {
            let Value::Object(m) = m else {
                self.fail(
                    mark,
                    "a merge key (<<) takes a mapping or a list of them".into(),
                );
                return None;
            };
            for (k, v) in m {
                map.entry(k).or_insert(v);
            }
        }
        Some(map)
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        match ev {
            Event::Scalar(text, style, anchor, tag) => {
                let in_key_position =
                    matches!(self.stack.last(), Some(Frame::Map { key: None, .. }));
                if in_key_position {
                    let merge = style == TScalarStyle::Plain && text == "<<";
                    if let Some(Frame::Map { key, path, .. }) = self.stack.last_mut() {
                        let line_path = join(path, &text);
                        *key = Some((text, merge, mark.line()));
                        self.doc.lines.entry(line_path).or_insert(mark.line());
                    }
                    return;
                }
                let value = scalar(&text, style, &tag);
                self.finish(value, anchor, merge_tag(&tag), mark);
            }
            Event::Alias(id) => match self.anchors.get(&id).cloned() {
                Some(v) => {
                    if let Some(Frame::Map { key: None, .. }) = self.stack.last() {
                        self.fail(mark, "an alias cannot be a mapping key".into());
                        return;
                    }
                    self.push_value(v, mark)
                }
                None => self.fail(mark, "alias to an unknown anchor".into()),
            },
            Event::MappingStart(anchor, tag) => {
                if let Some(Frame::Map { key: None, .. }) = self.stack.last() {
                    self.fail(mark, "a mapping key must be a scalar".into());
                    return;
                }
                let path = self.path();
                self.stack.push(Frame::Map {
                    anchor,
                    tag: merge_tag(&tag),
                    entries: Vec::new(),
                    key: None,
                    path,
                });
            }
            Event::SequenceStart(anchor, tag) => {
                if let Some(Frame::Map { key: None, .. }) = self.stack.last() {
                    self.fail(mark, "a mapping key must be a scalar".into());
                    return;
                }
                let path = self.path();
                self.stack.push(Frame::Seq {
                    anchor,
                    tag: merge_tag(&tag),
                    items: Vec::new(),
                    path,
                });
            }
            Event::MappingEnd => {
                if let Some(Frame::Map {
                    anchor,
                    tag,
                    entries,
                    ..
                }) = self.stack.pop()
                {
                    if let Some(map) = self.end_map(entries, mark) {
                        self.finish(Value::Object(map), anchor, tag, mark);
                    }
                }
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq {
                    anchor, tag, items, ..
                }) = self.stack.pop()
                {
                    self.finish(Value::Array(items), anchor, tag, mark);
                }
            }
            _ => {}
        }
    }
}

/// Parses the first document of `text`; an empty file is `null`.
pub fn parse(text: &str) -> Result<Document, SyntaxError> {
    let mut b = Builder {
        stack: Vec::new(),
        anchors: HashMap::new(),
        doc: Document::default(),
        root: None,
        error: None,
    };
    let mut parser = Parser::new_from_str(text);
    parser.load(&mut b, false).map_err(|e| SyntaxError {
        line: e.marker().line(),
        column: e.marker().col() + 1,
        message: e.info().to_string(),
    })?;
    if let Some(e) = b.error {
        return Err(e);
    }
    b.doc.value = b.root.take().unwrap_or(Value::Null);
    Ok(b.doc)
}

// ---- output -----------------------------------------------------------------

/// Whether a string must be quoted to read back as the same string.
fn needs_quotes(s: &str) -> bool {
    if s.is_empty() {
        return true;
    }
    if !matches!(scalar(s, TScalarStyle::Plain, &None), Value::String(_)) {
        return true;
    }
    // YAML 1.1 readers take these as booleans.
    let lower = s.to_ascii_lowercase();
    if matches!(lower.as_str(), "y" | "n" | "yes" | "no" | "on" | "off") {
        return true;
    }
    let mut chars = s.chars();
    let first = chars.next().unwrap_or(' ');
    let second = chars.next();
    let last = s.chars().last().unwrap_or(' ');
    // `-`, `?` and `:` start a plain scalar when a non-space follows.
    if "-?:".contains(first) && second.is_none_or(|c| c == ' ' || c == '\t') {
        return true;
    }
    if ",[]{}#&*!|>'\"%@`~ \t".contains(first) || last == ' ' || last == ':' {
        return true;
    }
    s.contains(": ")
        || s.contains(" #")
        || s.chars().any(|c| c.is_control())
        || s.contains('\u{feff}')
        || s == "---"
        || s == "..."
}

fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A value with its mappings in their written order (serde_json's maps
/// sort), so `config` prints fields in the model's order.
#[derive(Debug, Clone, PartialEq)]
pub enum Ordered {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Seq(Vec<Ordered>),
    Map(Vec<(String, Ordered)>),
}

impl From<&Value> for Ordered {
    fn from(v: &Value) -> Ordered {
        match v {
            Value::Null => Ordered::Null,
            Value::Bool(b) => Ordered::Bool(*b),
            Value::Number(n) => Ordered::Number(n.clone()),
            Value::String(s) => Ordered::String(s.clone()),
            Value::Array(a) => Ordered::Seq(a.iter().map(Ordered::from).collect()),
            Value::Object(m) => Ordered::Map(
                m.iter()
                    .map(|(k, v)| (k.clone(), Ordered::from(v)))
                    .collect(),
            ),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Ordered {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Ordered, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E>(self) -> Result<Ordered, E> {
                Ok(Ordered::Null)
            }
            fn visit_none<E>(self) -> Result<Ordered, E> {
                Ok(Ordered::Null)
            }
            fn visit_bool<E>(self, b: bool) -> Result<Ordered, E> {
                Ok(Ordered::Bool(b))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Ordered, E> {
                Ok(Ordered::Number(n.into()))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Ordered, E> {
                Ok(Ordered::Number(n.into()))
            }
            fn visit_f64<E>(self, n: f64) -> Result<Ordered, E> {
                Ok(Number::from_f64(n)
                    .map(Ordered::Number)
                    .unwrap_or(Ordered::Null))
            }
            fn visit_str<E>(self, s: &str) -> Result<Ordered, E> {
                Ok(Ordered::String(s.to_string()))
            }
            fn visit_string<E>(self, s: String) -> Result<Ordered, E> {
                Ok(Ordered::String(s))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Ordered, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = a.next_element()? {
                    out.push(v);
                }
                Ok(Ordered::Seq(out))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Ordered, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = a.next_entry::<String, Ordered>()? {
                    out.push((k, v));
                }
                Ok(Ordered::Map(out))
            }
        }
        d.deserialize_any(V)
    }
}

impl Ordered {
    /// The value of a serialisable type, fields in declaration order.
    pub fn of<T: serde::Serialize>(v: &T) -> Ordered {
        serde_json::to_string(v)
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or(Ordered::Null)
    }

    /// Applies `f` to every string value (not to keys).
    pub fn map_strings(self, f: &dyn Fn(String) -> String) -> Ordered {
        match self {
            Ordered::String(s) => Ordered::String(f(s)),
            Ordered::Seq(a) => Ordered::Seq(a.into_iter().map(|v| v.map_strings(f)).collect()),
            Ordered::Map(m) => {
                Ordered::Map(m.into_iter().map(|(k, v)| (k, v.map_strings(f))).collect())
            }
            other => other,
        }
    }

    /// Back to JSON text, keeping the order (pretty, two spaces).
    pub fn to_json(&self, indent: usize) -> String {
        let pad = "  ".repeat(indent + 1);
        let end = "  ".repeat(indent);
        match self {
            Ordered::Null => "null".into(),
            Ordered::Bool(b) => b.to_string(),
            Ordered::Number(n) => n.to_string(),
            Ordered::String(s) => Value::String(s.clone()).to_string(),
            Ordered::Seq(a) if a.is_empty() => "[]".into(),
            Ordered::Map(m) if m.is_empty() => "{}".into(),
            Ordered::Seq(a) => format!(
                "[\n{}\n{end}]",
                a.iter()
                    .map(|v| format!("{pad}{}", v.to_json(indent + 1)))
                    .collect::<Vec<_>>()
                    .join(",\n")
            ),
            Ordered::Map(m) => format!(
                "{{\n{}\n{end}}}",
                m.iter()
                    .map(|(k, v)| format!(
                        "{pad}{}: {}",
                        Value::String(k.clone()),
                        v.to_json(indent + 1)
                    ))
                    .collect::<Vec<_>>()
                    .join(",\n")
            ),
        }
    }
}

fn scalar_text(v: &Ordered) -> String {
    match v {
        Ordered::Null => "null".into(),
        Ordered::Bool(b) => b.to_string(),
        Ordered::Number(n) => n.to_string(),
        Ordered::String(s) if needs_quotes(s) => quote(s),
        Ordered::String(s) => s.clone(),
        Ordered::Seq(_) => "[]".into(),
        Ordered::Map(_) => "{}".into(),
    }
}

fn is_block(v: &Ordered) -> bool {
    match v {
        Ordered::Seq(a) => !a.is_empty(),
        Ordered::Map(m) => !m.is_empty(),
        _ => false,
    }
}

fn key_text(k: &str) -> String {
    if needs_quotes(k) {
        quote(k)
    } else {
        k.to_string()
    }
}

fn emit_into(out: &mut String, v: &Ordered, indent: usize) {
    let pad = " ".repeat(indent);
    match v {
        Ordered::Map(m) => {
            for (k, val) in m {
                if is_block(val) {
                    out.push_str(&format!("{pad}{}:\n", key_text(k)));
                    emit_into(out, val, indent + 2);
                } else {
                    out.push_str(&format!("{pad}{}: {}\n", key_text(k), scalar_text(val)));
                }
            }
        }
        Ordered::Seq(items) => {
            for item in items {
                match item {
                    Ordered::Map(m) if !m.is_empty() => {
                        // The first key goes on the dash's line.
                        let mut inner = String::new();
                        emit_into(&mut inner, item, indent + 2);
                        let inner = inner.trim_start_matches(' ');
                        out.push_str(&format!("{pad}- {inner}"));
                    }
                    Ordered::Seq(a) if !a.is_empty() => {
                        out.push_str(&format!("{pad}-\n"));
                        emit_into(out, item, indent + 2);
                    }
                    _ => out.push_str(&format!("{pad}- {}\n", scalar_text(item))),
                }
            }
        }
        other => out.push_str(&format!("{pad}{}\n", scalar_text(other))),
    }
}

/// Block YAML for `v`, mappings in their order.
pub fn emit_ordered(v: &Ordered) -> String {
    let mut out = String::new();
    emit_into(&mut out, v, 0);
    out
}

/// Block YAML for `v` (its mappings sorted).
pub fn emit(v: &Value) -> String {
    emit_ordered(&Ordered::from(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scalars_follow_the_core_schema() {
        let d = parse(
            "a: 8080:80\nb: yes\nc: 1.5\nd: 12\ne: ~\nf: true\ng: '12'\nh: 0o17\ni: 1e3\nj: .5\nk: 1.2.3\n",
        )
        .expect("parses");
        assert_eq!(
            d.value,
            json!({"a":"8080:80","b":"yes","c":1.5,"d":12,"e":null,"f":true,"g":"12","h":15,"i":1000.0,"j":0.5,"k":"1.2.3"})
        );
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let text = "x-base: &base\n  image: busybox\n  environment:\n    A: '1'\nx-more: &more\n  user: nobody\n  image: other\nservices:\n  web:\n    <<: [*base, *more]\n    image: mine\n  db:\n    <<: *base\n";
        let d = parse(text).expect("parses");
        assert_eq!(d.value["services"]["web"]["image"], "mine");
        assert_eq!(d.value["services"]["web"]["user"], "nobody");
        assert_eq!(d.value["services"]["web"]["environment"]["A"], "1");
        assert_eq!(d.value["services"]["db"]["image"], "busybox");
        assert_eq!(d.lines["services.web.image"], 11);
    }

    #[test]
    fn merge_tags_are_recorded_by_path() {
        let d = parse("services:\n  a:\n    ports: !reset []\n    command: !override [a]\n")
            .expect("parses");
        assert_eq!(d.tags["services.a.ports"], MergeTag::Reset);
        assert_eq!(d.tags["services.a.command"], MergeTag::Override);
    }

    #[test]
    fn bad_yaml_is_refused_with_its_line() {
        for (text, line) in [
            ("services:\n  web:\n    image: [a\n", 4),
            ("a: 1\na: 2\n", 2),
            ("a: *nope\n", 1),
            ("services:\n\tweb: {}\n", 2),
            ("a:\n  - b\n c: d\n", 3),
        ] {
            let e = parse(text).expect_err(text);
            assert!(e.line >= 1 && e.line <= line, "{text:?}: {e:?}");
        }
    }

    #[test]
    fn emitted_yaml_reads_back_the_same() {
        let v = json!({
            "name": "p",
            "services": {"web": {
                "command": ["echo", "a: b", "", "yes", "12", "#x", "-n"],
                "environment": {"A": null, "B": "x y", "C": "0123"},
                "ports": [{"target": 80, "published": "8080", "protocol": "tcp"}],
                "nested": [[1, 2], []],
                "empty": {},
                "multi": "line1\nline2"
            }}
        });
        let text = emit(&v);
        let back = parse(&text).expect("reparses");
        assert_eq!(back.value, v, "{text}");
    }
}
