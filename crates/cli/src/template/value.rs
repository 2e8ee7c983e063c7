//! The values templates see: JSON as the daemon sent it, objects in the
//! order of its fields (so `{{json .Config}}` prints them as dockerd's
//! structs do), numbers as the integers or floats they were; and how Go
//! prints them (`fmt`'s `%v`) and encodes them (`encoding/json` without
//! HTML escaping, as docker's `json` function). docker's templates see Go
//! structs, so a field is also found under the Go name of its JSON key
//! (`GO_JSON_KEYS`), and a known struct prints as `%v` prints one.

use std::fmt::Write as _;

/// A value in a template: JSON, plus Go's "no value" (a missing key).
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    /// A key that is not there (Go prints `<no value>`).
    Missing,
    /// JSON `null` (a nil pointer, slice or map in Go).
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Val>),
    /// An object, in the order its fields came.
    Map(Vec<(String, Val)>),
}

impl Val {
    pub fn str(s: impl Into<String>) -> Val {
        Val::Str(s.into())
    }

    /// An object from `(key, value)` pairs, in that order.
    #[cfg(test)]
    pub fn map<K: Into<String>>(pairs: impl IntoIterator<Item = (K, Val)>) -> Val {
        Val::Map(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// The value of `key` in an object.
    pub fn get(&self, key: &str) -> Option<&Val> {
        match self {
            Val::Map(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The value of a field as a template names it: the key itself, or,
    /// for a Go field whose JSON key differs (`APIVersion` is sent as
    /// `ApiVersion`), the key it is sent under. Templates run on docker's
    /// Go structs, so `.Server.APIVersion` and `.ID` must reach the daemon's
    /// `ApiVersion` and `Id`.
    pub fn field(&self, name: &str) -> Option<&Val> {
        self.get(name)
            .or_else(|| go_json_key(name).and_then(|k| self.get(k)))
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Val::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Go's name of the value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Val::Missing => "<no value>",
            Val::Null => "nil",
            Val::Bool(_) => "bool",
            Val::Int(_) => "int",
            Val::Float(_) => "float64",
            Val::Str(_) => "string",
            Val::List(_) => "[]interface {}",
            Val::Map(_) => "map[string]interface {}",
        }
    }

    /// Go's truth: false, 0, nil and empty strings, lists and maps are
    /// false.
    pub fn truthy(&self) -> bool {
        match self {
            Val::Missing | Val::Null => false,
            Val::Bool(b) => *b,
            Val::Int(n) => *n != 0,
            Val::Float(f) => *f != 0.0,
            Val::Str(s) => !s.is_empty(),
            Val::List(l) => !l.is_empty(),
            Val::Map(m) => !m.is_empty(),
        }
    }

    /// Reads JSON text keeping the order of object fields.
    pub fn parse_json(text: &str) -> Result<Val, String> {
        let mut p = JsonParser {
            s: text.as_bytes(),
            i: 0,
        };
        p.ws();
        let v = p.value(0)?;
        p.ws();
        if p.i != p.s.len() {
            return Err(format!("invalid JSON: trailing data at byte {}", p.i));
        }
        Ok(v)
    }

    /// `encoding/json` of the value, compact, without HTML escaping.
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        self.write_json(&mut out, None, 0);
        out
    }

    /// Indented JSON, as `json.Indent(_, _, "", indent)` lays it out:
    /// empty lists and objects stay `[]` and `{}`.
    #[cfg(test)]
    pub fn to_json_indented(&self, indent: &str) -> String {
        let mut out = String::new();
        self.write_json(&mut out, Some(indent), 0);
        out
    }

    fn write_json(&self, out: &mut String, indent: Option<&str>, depth: usize) {
        let newline = |out: &mut String, depth: usize| {
            if let Some(ind) = indent {
                out.push('\n');
                for _ in 0..depth {
                    out.push_str(ind);
                }
            }
        };
        match self {
            Val::Missing | Val::Null => out.push_str("null"),
            Val::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Val::Int(n) => {
                let _ = write!(out, "{n}");
            }
            Val::Float(f) => out.push_str(&json_float(*f)),
            Val::Str(s) => json_string(out, s),
            Val::List(l) if l.is_empty() => out.push_str("[]"),
            Val::Map(m) if m.is_empty() => out.push_str("{}"),
            Val::List(l) => {
                out.push('[');
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    newline(out, depth + 1);
                    v.write_json(out, indent, depth + 1);
                }
                newline(out, depth);
                out.push(']');
            }
            Val::Map(m) => {
                out.push('{');
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    newline(out, depth + 1);
                    json_string(out, k);
                    out.push(':');
                    if indent.is_some() {
                        out.push(' ');
                    }
                    v.write_json(out, indent, depth + 1);
                }
                newline(out, depth);
                out.push('}');
            }
        }
    }

    /// How Go's `fmt` prints the value with `%v` (what `{{.X}}` shows):
    /// strings bare, lists `[a b]`, maps `map[k:v]` with sorted keys.
    pub fn go_string(&self) -> String {
        match self {
            Val::Missing => "<no value>".into(),
            Val::Null => "<nil>".into(),
            Val::Bool(b) => b.to_string(),
            Val::Int(n) => n.to_string(),
            Val::Float(f) => go_float(*f, 'g', None),
            Val::Str(s) => s.clone(),
            Val::List(l) => format!(
                "[{}]",
                l.iter().map(Val::go_string).collect::<Vec<_>>().join(" ")
            ),
            Val::Map(m) => {
                let mut pairs: Vec<&(String, Val)> = m.iter().collect();
                pairs.sort_by(|a, b| a.0.cmp(&b.0));
                format!(
                    "map[{}]",
                    pairs
                        .iter()
                        .map(|(k, v)| format!("{k}:{}", v.go_string()))
                        .collect::<Vec<_>>()
                        .join(" ")
                )
            }
        }
    }
}

/// The Go fields of the objects `cais` renders (the Engine API types:
/// version, info, containers, images, networks, volumes) whose JSON key is
/// not their name, as their `json:"..."` tags spell it: Go name, JSON key.
const GO_JSON_KEYS: &[(&str, &str)] = &[
    ("ID", "Id"),
    ("APIVersion", "ApiVersion"),
    ("CPUShares", "CpuShares"),
    ("CPUPeriod", "CpuPeriod"),
    ("CPUQuota", "CpuQuota"),
    ("CPURealtimePeriod", "CpuRealtimePeriod"),
    ("CPURealtimeRuntime", "CpuRealtimeRuntime"),
    ("CPUCount", "CpuCount"),
    ("CPUPercent", "CpuPercent"),
    ("NanoCPUs", "NanoCpus"),
    ("DNS", "Dns"),
    ("DNSOptions", "DnsOptions"),
    ("DNSSearch", "DnsSearch"),
    ("HostIP", "HostIp"),
    ("AuxAddress", "AuxiliaryAddresses"),
];

/// The JSON key a Go field name is sent under, when it is another.
pub fn go_json_key(go_name: &str) -> Option<&'static str> {
    GO_JSON_KEYS
        .iter()
        .find(|(g, _)| *g == go_name)
        .map(|(_, k)| *k)
}

impl Val {
    /// How Go's `%v` prints a struct with these fields (in declaration
    /// order) whose JSON this map is: `{v1 v2 ...}`, each field as `%v`
    /// prints it, a field the JSON left out (`omitempty`) as its zero
    /// value, `<nil>` (the pointers, slices and maps `omitempty` drops are
    /// nil).
    pub fn go_struct_string(&self, fields: &[&str]) -> String {
        let parts: Vec<String> = fields
            .iter()
            .map(|f| match self.field(f) {
                Some(v) => v.go_string(),
                None => "<nil>".into(),
            })
            .collect();
        format!("{{{}}}", parts.join(" "))
    }
}

/// The Go field name a JSON key is sent for, when it is another.
pub fn go_name_of(json_key: &str) -> Option<&'static str> {
    GO_JSON_KEYS
        .iter()
        .find(|(_, k)| *k == json_key)
        .map(|(g, _)| *g)
}

impl From<&serde_json::Value> for Val {
    fn from(v: &serde_json::Value) -> Val {
        use serde_json::Value as J;
        match v {
            J::Null => Val::Null,
            J::Bool(b) => Val::Bool(*b),
            J::Number(n) => match n.as_i64() {
                Some(i) => Val::Int(i),
                None => Val::Float(n.as_f64().unwrap_or(0.0)),
            },
            J::String(s) => Val::Str(s.clone()),
            J::Array(a) => Val::List(a.iter().map(Val::from).collect()),
            J::Object(o) => Val::Map(o.iter().map(|(k, v)| (k.clone(), Val::from(v))).collect()),
        }
    }
}

impl From<&str> for Val {
    fn from(s: &str) -> Val {
        Val::Str(s.to_string())
    }
}

impl From<String> for Val {
    fn from(s: String) -> Val {
        Val::Str(s)
    }
}

impl From<bool> for Val {
    fn from(b: bool) -> Val {
        Val::Bool(b)
    }
}

impl From<i64> for Val {
    fn from(n: i64) -> Val {
        Val::Int(n)
    }
}

/// A JSON string as Go's encoder writes it with HTML escaping off.
fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A float as `encoding/json` writes it: plain unless the exponent is
/// below -6 or at least 21.
fn json_float(f: f64) -> String {
    if !f.is_finite() {
        return "null".into();
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let s = format!("{f:e}");
        // Go writes e-07 as e-07 and e+21 as e+21: two exponent digits.
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        let (sign, digits) = match e.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', e),
        };
        format!("{m}e{sign}{digits:0>2}")
    } else {
        let s = format!("{f}");
        s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
    }
}

/// Go's `%g`/`%e`/`%f` of a float (`strconv.FormatFloat`): with no
/// precision the shortest form, `%g` (and `%v`) switching to an exponent
/// below 1e-4 or from 1e6 for the shortest form, else from 10^precision.
pub fn go_float(f: f64, verb: char, prec: Option<usize>) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let exp_form = |digits: Option<usize>| -> String {
        let s = match digits {
            Some(p) => format!("{f:.p$e}"),
            None => format!("{f:e}"),
        };
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        let (sign, d) = match e.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', e),
        };
        format!("{m}e{sign}{d:0>2}")
    };
    match verb {
        'e' => exp_form(Some(prec.unwrap_or(6))),
        'f' => format!("{f:.p$}", p = prec.unwrap_or(6)),
        _ => {
            if f == 0.0 {
                return "0".into();
            }
            let exp = f.abs().log10().floor() as i32;
            match prec {
                None => {
                    if !(-4..6).contains(&exp) {
                        exp_form(None)
                    } else {
                        let s = format!("{f}");
                        s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
                    }
                }
                Some(p) => {
                    let p = p.max(1);
                    // Round to p significant digits first: the exponent
                    // can change (999.5 at 3 digits is 1e+03).
                    let rounded: f64 = format!("{f:.prec$e}", prec = p - 1).parse().unwrap_or(f);
                    let exp = if rounded == 0.0 {
                        0
                    } else {
                        rounded.abs().log10().floor() as i32
                    };
                    if exp < -4 || exp >= p as i32 {
                        let s = exp_form(Some(p - 1));
                        // %g drops trailing zeros of the mantissa.
                        let (m, e) = s.split_once('e').unwrap_or((&s, ""));
                        let m = if m.contains('.') {
                            m.trim_end_matches('0').trim_end_matches('.')
                        } else {
                            m
                        };
                        format!("{m}e{e}")
                    } else {
                        let decimals = (p as i32 - 1 - exp).max(0) as usize;
                        let s = format!("{rounded:.decimals$}");
                        if s.contains('.') {
                            s.trim_end_matches('0').trim_end_matches('.').to_string()
                        } else {
                            s
                        }
                    }
                }
            }
        }
    }
}

struct JsonParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl JsonParser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\n' | b'\r' | b'\t') {
            self.i += 1;
        }
    }

    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("invalid JSON: {what} at byte {}", self.i))
    }

    fn value(&mut self, depth: usize) -> Result<Val, String> {
        if depth > 512 {
            return self.err("nesting too deep");
        }
        match self.s.get(self.i) {
            None => self.err("unexpected end"),
            Some(b'{') => {
                self.i += 1;
                let mut m = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok(Val::Map(m));
                }
                loop {
                    self.ws();
                    let k = self.string()?;
                    self.ws();
                    if self.s.get(self.i) != Some(&b':') {
                        return self.err("expected ':'");
                    }
                    self.i += 1;
                    self.ws();
                    let v = self.value(depth + 1)?;
                    m.push((k, v));
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(Val::Map(m));
                        }
                        _ => return self.err("expected ',' or '}'"),
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                let mut l = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(Val::List(l));
                }
                loop {
                    self.ws();
                    l.push(self.value(depth + 1)?);
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Val::List(l));
                        }
                        _ => return self.err("expected ',' or ']'"),
                    }
                }
            }
            Some(b'"') => Ok(Val::Str(self.string()?)),
            Some(b't') if self.s[self.i..].starts_with(b"true") => {
                self.i += 4;
                Ok(Val::Bool(true))
            }
            Some(b'f') if self.s[self.i..].starts_with(b"false") => {
                self.i += 5;
                Ok(Val::Bool(false))
            }
            Some(b'n') if self.s[self.i..].starts_with(b"null") => {
                self.i += 4;
                Ok(Val::Null)
            }
            Some(c) if *c == b'-' || c.is_ascii_digit() => {
                let start = self.i;
                self.i += 1;
                while self.i < self.s.len()
                    && matches!(
                        self.s[self.i],
                        b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-'
                    )
                {
                    self.i += 1;
                }
                let text = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
                if let Ok(n) = text.parse::<i64>() {
                    return Ok(Val::Int(n));
                }
                match text.parse::<f64>() {
                    Ok(f) => Ok(Val::Float(f)),
                    Err(_) => self.err("bad number"),
                }
            }
            Some(_) => self.err("unexpected character"),
        }
    }

    fn string(&mut self) -> Result<String, String> {
        if self.s.get(self.i) != Some(&b'"') {
            return self.err("expected a string");
        }
        self.i += 1;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let Some(&c) = self.s.get(self.i) else {
                return self.err("unterminated string");
            };
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let Some(&e) = self.s.get(self.i) else {
                        return self.err("unterminated escape");
                    };
                    self.i += 1;
                    let ch = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            if (0xD800..0xDC00).contains(&hi)
                                && self.s[self.i..].starts_with(b"\\u")
                            {
                                self.i += 2;
                                let lo = self.hex4()?;
                                let code =
                                    0x10000 + ((hi - 0xD800) << 10) + (lo.wrapping_sub(0xDC00));
                                char::from_u32(code).unwrap_or('\u{FFFD}')
                            } else {
                                char::from_u32(hi).unwrap_or('\u{FFFD}')
                            }
                        }
                        _ => return self.err("bad escape"),
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                c => out.push(c),
            }
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let Some(h) = self.s.get(self.i..self.i + 4) else {
            return self.err("short \\u escape");
        };
        let h = std::str::from_utf8(h).unwrap_or("");
        let n = u32::from_str_radix(h, 16).or_else(|_| self.err("bad \\u escape"))?;
        self.i += 4;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_keeps_field_order_and_numbers() {
        let text = r#"{"Id":"abc","State":{"Status":"running","Pid":42,"Ratio":0.5},"Args":[],"Labels":{},"Big":12345678,"Esc":"a<b>\"\u00e9\n"}"#;
        let v = Val::parse_json(text).expect("parses");
        assert_eq!(
            v.to_json(),
            r#"{"Id":"abc","State":{"Status":"running","Pid":42,"Ratio":0.5},"Args":[],"Labels":{},"Big":12345678,"Esc":"a<b>\"é\n"}"#
        );
        assert_eq!(
            Val::parse_json(r#"{"a":[1,{"b":null}],"c":{}}"#)
                .expect("parses")
                .to_json_indented("    "),
            "{\n    \"a\": [\n        1,\n        {\n            \"b\": null\n        }\n    ],\n    \"c\": {}\n}"
        );
        for bad in [
            "",
            "{",
            "{\"a\"}",
            "[1,]",
            "tru",
            "\"x",
            "{\"a\":1}x",
            "[01x]",
        ] {
            assert!(Val::parse_json(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn values_print_as_go_prints_them() {
        let v = Val::parse_json(r#"{"b":[1,"x",true],"a":{"z":1,"y":null}}"#).expect("json");
        assert_eq!(v.go_string(), "map[a:map[y:<nil> z:1] b:[1 x true]]");
        assert_eq!(Val::Missing.go_string(), "<no value>");
        assert_eq!(Val::Float(0.5).go_string(), "0.5");
        assert_eq!(Val::Float(2.0).go_string(), "2");
        assert_eq!(Val::Float(1e6).go_string(), "1e+06");
        assert_eq!(Val::Float(123456.0).go_string(), "123456");
        assert_eq!(go_float(1234.5678, 'g', Some(3)), "1.23e+03");
        assert_eq!(go_float(999.5, 'g', Some(3)), "1e+03");
        assert_eq!(go_float(4.261, 'g', Some(3)), "4.26");
        assert_eq!(go_float(12.0, 'g', Some(3)), "12");
        assert_eq!(go_float(0.00001, 'g', None), "1e-05");
        assert_eq!(go_float(1.5, 'f', Some(2)), "1.50");
        assert_eq!(json_float(1e21), "1e+21");
        assert_eq!(json_float(3.0), "3");
    }
}
