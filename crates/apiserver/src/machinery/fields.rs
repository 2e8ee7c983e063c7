//! Field selectors: the `fieldSelector` query parameter.
//!
//! `term { "," term }` where a term is `field=value`, `field==value` or
//! `field!=value`; `\` escapes `\`, `,` and `=` in values. Which fields a
//! kind can be selected on is the kind's business (every kind has
//! `metadata.name` and `metadata.namespace`); see
//! `crate::registry::Resource::field_labels`.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operator {
    Equals,
    DoubleEquals,
    NotEquals,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    pub field: String,
    pub operator: Operator,
    pub value: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

/// Splits on commas not preceded by an escaping backslash.
fn split_terms(input: &str) -> Vec<String> {
    let mut terms = Vec::new();
    let mut current = String::new();
    let mut escaped = false;
    for c in input.chars() {
        if escaped {
            current.push('\\');
            current.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            terms.push(std::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    if escaped {
        current.push('\\');
    }
    terms.push(current);
    terms
}

/// Finds the first unescaped operator of a term: `!=`, then `==`, then `=`
/// at each position.
fn split_term(term: &str) -> Option<(&str, Operator, &str)> {
    let bytes = term.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            i += 2;
            continue;
        }
        for (op, operator) in [
            ("!=", Operator::NotEquals),
            ("==", Operator::DoubleEquals),
            ("=", Operator::Equals),
        ] {
            if term[i..].starts_with(op) {
                return Some((&term[..i], operator, &term[i + op.len()..]));
            }
        }
        i += 1;
    }
    None
}

fn unescape(value: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(e @ ('\\' | ',' | '=')) => out.push(e),
                Some(other) => {
                    return Err(format!(
                        "invalid field selector: invalid escape sequence: \\{other}"
                    ))
                }
                None => return Err("invalid field selector: invalid escape sequence: \\".into()),
            }
        } else if c == ',' || c == '=' {
            return Err(format!(
                "invalid field selector: unescaped {c:?} in value {value:?}"
            ));
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace(',', "\\,")
        .replace('=', "\\=")
}

impl Selector {
    pub fn parse(input: &str) -> Result<Selector, String> {
        let mut requirements = Vec::new();
        if input.trim().is_empty() {
            return Ok(Selector::default());
        }
        for term in split_terms(input) {
            if term.is_empty() {
                continue;
            }
            let Some((field, operator, value)) = split_term(&term) else {
                return Err(format!(
                    "invalid selector: '{input}'; can't understand '{term}'"
                ));
            };
            requirements.push(Requirement {
                field: field.trim().to_string(),
                operator,
                value: unescape(value)?,
            });
        }
        requirements.sort_by(|a, b| a.field.cmp(&b.field));
        Ok(Selector { requirements })
    }

    /// `metadata.name=NAME`, what informers send for one object.
    pub fn name(name: &str) -> Selector {
        Selector {
            requirements: vec![Requirement {
                field: "metadata.name".into(),
                operator: Operator::Equals,
                value: name.into(),
            }],
        }
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Refuses a field the kind cannot be selected on, as the server does.
    pub fn check_supported(&self, supported: &[&str]) -> Result<(), String> {
        for r in &self.requirements {
            if !supported.contains(&r.field.as_str()) {
                return Err(format!("field label not supported: {}", r.field));
            }
        }
        Ok(())
    }

    /// The value an equality requirement pins `field` to, if any
    /// (lets a list of one name or one namespace skip the rest).
    pub fn exact(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && r.operator != Operator::NotEquals)
            .map(|r| r.value.as_str())
    }

    /// Matches with `value_of(field)`, the object's value of a supported
    /// field (a missing field is the empty string).
    pub fn matches(&self, value_of: impl Fn(&str) -> String) -> bool {
        self.requirements.iter().all(|r| {
            let have = value_of(&r.field);
            match r.operator {
                Operator::Equals | Operator::DoubleEquals => have == r.value,
                Operator::NotEquals => have != r.value,
            }
        })
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .requirements
            .iter()
            .map(|r| {
                let op = match r.operator {
                    Operator::Equals => "=",
                    Operator::DoubleEquals => "==",
                    Operator::NotEquals => "!=",
                };
                format!("{}{op}{}", r.field, escape(&r.value))
            })
            .collect();
        write!(f, "{}", parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(field: &str) -> String {
        match field {
            "metadata.name" => "web".into(),
            "metadata.namespace" => "default".into(),
            "spec.nodeName" => "node-1".into(),
            "status.phase" => "Running".into(),
            "odd" => "a,b=c\\d".into(),
            _ => String::new(),
        }
    }

    #[test]
    fn matching_table() {
        let cases: &[(&str, bool)] = &[
            ("", true),
            ("metadata.name=web", true),
            ("metadata.name==web", true),
            ("metadata.name!=web", false),
            ("metadata.name=db", false),
            ("metadata.name=web,metadata.namespace=default", true),
            ("metadata.name=web,metadata.namespace=kube-system", false),
            ("spec.nodeName=", false),
            ("spec.nodeName!=", true),
            ("status.phase!=Pending,status.phase!=Failed", true),
            ("odd=a\\,b\\=c\\\\d", true),
            ("missing=", true),
            (" metadata.name = web", false),
        ];
        for (sel, want) in cases {
            let s = Selector::parse(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
            assert_eq!(s.matches(object), *want, "{sel}");
        }
    }

    #[test]
    fn parse_errors() {
        let cases: &[(&str, &str)] = &[
            ("foo", "invalid selector: 'foo'; can't understand 'foo'"),
            (
                "a=b,foo",
                "invalid selector: 'a=b,foo'; can't understand 'foo'",
            ),
            (
                "a=b\\x",
                "invalid field selector: invalid escape sequence: \\x",
            ),
            (
                "a=b=c",
                "invalid field selector: unescaped '=' in value \"b=c\"",
            ),
            ("a=b\\", "invalid field selector: invalid escape sequence"),
        ];
        for (input, want) in cases {
            let err = Selector::parse(input).expect_err(input);
            assert!(err.starts_with(want), "{input:?}: got {err:?}");
        }
    }

    #[test]
    fn supported_fields_are_checked() {
        let s = Selector::parse("spec.nodeName=n,metadata.name=x").expect("valid");
        assert!(s
            .check_supported(&["metadata.name", "metadata.namespace", "spec.nodeName"])
            .is_ok());
        assert_eq!(
            s.check_supported(&["metadata.name", "metadata.namespace"]),
            Err("field label not supported: spec.nodeName".into())
        );
    }

    #[test]
    fn exact_and_display() {
        let s = Selector::parse("metadata.name=web,status.phase!=Failed").expect("valid");
        assert_eq!(s.exact("metadata.name"), Some("web"));
        assert_eq!(s.exact("status.phase"), None);
        assert_eq!(s.to_string(), "metadata.name=web,status.phase!=Failed");
        assert_eq!(Selector::name("a,b").to_string(), "metadata.name=a\\,b");
    }
}
