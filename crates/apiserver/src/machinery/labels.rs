//! Label selectors: the `labelSelector` query parameter of lists and
//! watches, and `metav1.LabelSelector` fields (Deployment selectors).
//!
//! Grammar (requirements are ANDed):
//!
//! ```text
//! selector    := requirement { "," requirement }
//! requirement := ["!"] KEY [ ("="|"=="|"!=") VALUE | ("in"|"notin") "(" VALUES ")"
//!                          | (">"|"<") INTEGER ]
//! ```
//!
//! A bare `KEY` means the key exists, `!KEY` that it does not. `in` and
//! `notin` are keywords only where an operator is expected, so `x in (in)`
//! is valid. Keys are qualified names, values label values. Errors are
//! worded as the real API server words them (kubectl shows them as is).

use std::collections::BTreeMap;
use std::fmt;

use super::validation;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operator {
    Exists,
    DoesNotExist,
    Equals,
    DoubleEquals,
    NotEquals,
    In,
    NotIn,
    GreaterThan,
    LessThan,
}

/// One condition on one label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub operator: Operator,
    /// Sorted and without duplicates.
    pub values: Vec<String>,
}

/// Requirements that must all hold; the empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    End,
    OpenPar,
    ClosePar,
    Comma,
    Not,
    Equals,
    DoubleEquals,
    NotEquals,
    Greater,
    Less,
    In,
    NotIn,
    Ident(String),
}

impl Token {
    /// How the token appears in error messages.
    fn literal(&self) -> &str {
        match self {
            Token::End => "",
            Token::OpenPar => "(",
            Token::ClosePar => ")",
            Token::Comma => ",",
            Token::Not => "!",
            Token::Equals => "=",
            Token::DoubleEquals => "==",
            Token::NotEquals => "!=",
            Token::Greater => ">",
            Token::Less => "<",
            Token::In => "in",
            Token::NotIn => "notin",
            Token::Ident(s) => s,
        }
    }

    /// In value position the keywords are plain identifiers.
    fn into_value(self) -> Token {
        match self {
            Token::In => Token::Ident("in".into()),
            Token::NotIn => Token::Ident("notin".into()),
            other => other,
        }
    }
}

fn is_operator_char(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

fn operator_token(s: &str) -> Option<Token> {
    Some(match s {
        "(" => Token::OpenPar,
        ")" => Token::ClosePar,
        "," => Token::Comma,
        "!" => Token::Not,
        "=" => Token::Equals,
        "==" => Token::DoubleEquals,
        "!=" => Token::NotEquals,
        ">" => Token::Greater,
        "<" => Token::Less,
        _ => return None,
    })
}

/// Splits a selector into tokens. Runs of operator characters take the
/// longest prefix that is an operator (`!=`, `==`), then start again.
fn tokenize(input: &str) -> Vec<Token> {
    let chars: Vec<char> = input.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    loop {
        while i < chars.len() && matches!(chars[i], ' ' | '\t' | '\r' | '\n') {
            i += 1;
        }
        if i == chars.len() {
            tokens.push(Token::End);
            return tokens;
        }
        if is_operator_char(chars[i]) {
            let mut best = None;
            let mut j = i;
            let mut run = String::new();
            while j < chars.len() && is_operator_char(chars[j]) {
                run.push(chars[j]);
                match operator_token(&run) {
                    Some(t) => best = Some((t, j + 1)),
                    None => break,
                }
                j += 1;
            }
            let (token, next) = best.expect("every single operator character is a token");
            tokens.push(token);
            i = next;
        } else {
            let start = i;
            while i < chars.len()
                && !is_operator_char(chars[i])
                && !matches!(chars[i], ' ' | '\t' | '\r' | '\n')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            tokens.push(match word.as_str() {
                "in" => Token::In,
                "notin" => Token::NotIn,
                _ => Token::Ident(word),
            });
        }
    }
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek_value(&self) -> Token {
        self.tokens[self.pos].clone().into_value()
    }

    fn next_value(&mut self) -> Token {
        let t = self.peek_value();
        self.pos = (self.pos + 1).min(self.tokens.len() - 1);
        t
    }

    fn next_operator(&mut self) -> Token {
        let t = self.tokens[self.pos].clone();
        self.pos = (self.pos + 1).min(self.tokens.len() - 1);
        t
    }

    fn selector(&mut self) -> Result<Vec<Requirement>, String> {
        let mut reqs = Vec::new();
        loop {
            match self.peek_value() {
                Token::Ident(_) | Token::Not => {
                    let r = self
                        .requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    reqs.push(r);
                    match self.next_value() {
                        Token::End => return Ok(reqs),
                        Token::Comma => match self.peek_value() {
                            Token::Ident(_) | Token::Not => {}
                            t => {
                                return Err(format!(
                                    "found '{}', expected: identifier after ','",
                                    t.literal()
                                ))
                            }
                        },
                        t => {
                            return Err(format!(
                                "found '{}', expected: ',' or 'end of string'",
                                t.literal()
                            ))
                        }
                    }
                }
                Token::End => return Ok(reqs),
                t => {
                    return Err(format!(
                        "found '{}', expected: !, identifier, or 'end of string'",
                        t.literal()
                    ))
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        let mut negated = false;
        let mut tok = self.next_value();
        if tok == Token::Not {
            negated = true;
            tok = self.next_value();
        }
        let Token::Ident(key) = tok else {
            return Err(format!("found '{}', expected: identifier", tok.literal()));
        };
        let errs = validation::qualified_name(&key);
        if !errs.is_empty() {
            return Err(format!(
                "<nil>: Invalid value: {key:?}: {}",
                errs.join("; ")
            ));
        }
        // `!key` stands alone: whatever follows is the next separator's
        // business (so `!a=b` fails at the `=`).
        if negated {
            return Requirement::new(key, Operator::DoesNotExist, Vec::new());
        }
        if matches!(self.peek_value(), Token::End | Token::Comma) {
            return Requirement::new(key, Operator::Exists, Vec::new());
        }
        let operator = self.operator()?;
        let values = self.values_for(operator)?;
        Requirement::new(key, operator, values)
    }

    fn operator(&mut self) -> Result<Operator, String> {
        Ok(match self.next_operator() {
            Token::In => Operator::In,
            Token::NotIn => Operator::NotIn,
            Token::Equals => Operator::Equals,
            Token::DoubleEquals => Operator::DoubleEquals,
            Token::NotEquals => Operator::NotEquals,
            Token::Greater => Operator::GreaterThan,
            Token::Less => Operator::LessThan,
            t => {
                return Err(format!(
                    "found '{}', expected: in, notin, =, ==, !=, gt, lt",
                    t.literal()
                ))
            }
        })
    }

    fn values_for(&mut self, op: Operator) -> Result<Vec<String>, String> {
        match op {
            Operator::In | Operator::NotIn => self.value_set(),
            _ => self.exact_value(),
        }
    }

    fn exact_value(&mut self) -> Result<Vec<String>, String> {
        match self.peek_value() {
            Token::End | Token::Comma => Ok(vec![String::new()]),
            _ => match self.next_value() {
                Token::Ident(v) => Ok(vec![v]),
                t => Err(format!("found '{}', expected: identifier", t.literal())),
            },
        }
    }

    /// `( v1, v2 )`; empty members are the empty value, so `()` and
    /// `(a,)` hold "".
    fn value_set(&mut self) -> Result<Vec<String>, String> {
        let open = self.next_value();
        if open != Token::OpenPar {
            return Err(format!("found '{}' expected: '('", open.literal()));
        }
        let mut values = Vec::new();
        match self.peek_value() {
            Token::ClosePar => {
                self.next_value();
                return Ok(vec![String::new()]);
            }
            Token::Ident(_) | Token::Comma => {}
            t => {
                return Err(format!(
                    "found '{}', expected: ',', ')' or identifier",
                    t.literal()
                ))
            }
        }
        // Alternating members and commas; a missing member is "".
        let mut expect_member = true;
        loop {
            match self.next_value() {
                Token::Ident(v) if expect_member => {
                    values.push(v);
                    expect_member = false;
                    match self.peek_value() {
                        Token::Comma | Token::ClosePar => {}
                        t => return Err(format!("found '{}', expected: ',' or ')'", t.literal())),
                    }
                }
                Token::Comma => {
                    if expect_member {
                        values.push(String::new());
                    }
                    expect_member = true;
                }
                Token::ClosePar => {
                    if expect_member {
                        values.push(String::new());
                    }
                    return Ok(values);
                }
                t => {
                    return Err(format!(
                        "found '{}', expected: ',', or identifier",
                        t.literal()
                    ))
                }
            }
        }
    }
}

impl Requirement {
    /// Checks the operator's arity and every value.
    pub fn new(
        key: String,
        operator: Operator,
        values: Vec<String>,
    ) -> Result<Requirement, String> {
        let errs = validation::qualified_name(&key);
        if !errs.is_empty() {
            return Err(format!(
                "<nil>: Invalid value: {key:?}: {}",
                errs.join("; ")
            ));
        }
        match operator {
            Operator::In | Operator::NotIn if values.is_empty() => {
                return Err("for 'in', 'notin' operators, values set can't be empty".into())
            }
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals
                if values.len() != 1 =>
            {
                return Err("exact-match compatibility requires one single value".into())
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                return Err("values set must be empty for exists and does not exist".into())
            }
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    return Err("for 'Gt', 'Lt' operators, exactly one value is required".into());
                }
                if values[0].parse::<i64>().is_err() {
                    return Err(format!(
                        "values[0]: Invalid value: {:?}: for 'Gt', 'Lt' operators, the value must be an integer",
                        values[0]
                    ));
                }
            }
            _ => {}
        }
        if !matches!(operator, Operator::GreaterThan | Operator::LessThan) {
            for (i, v) in values.iter().enumerate() {
                let errs = validation::label_value(v);
                if !errs.is_empty() {
                    return Err(format!(
                        "values[{i}][{key}]: Invalid value: {v:?}: {}",
                        errs.join("; ")
                    ));
                }
            }
        }
        let mut values = values;
        values.sort();
        values.dedup();
        Ok(Requirement {
            key,
            operator,
            values,
        })
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::Equals | Operator::DoubleEquals | Operator::In => {
                value.is_some_and(|v| self.values.contains(v))
            }
            Operator::NotEquals | Operator::NotIn => value.is_none_or(|v| !self.values.contains(v)),
            Operator::GreaterThan | Operator::LessThan => {
                let (Some(have), Some(want)) = (
                    value.and_then(|v| v.parse::<i64>().ok()),
                    self.values.first().and_then(|v| v.parse::<i64>().ok()),
                ) else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = &self.key;
        let one = self.values.first().map(String::as_str).unwrap_or("");
        match self.operator {
            Operator::Exists => write!(f, "{key}"),
            Operator::DoesNotExist => write!(f, "!{key}"),
            Operator::Equals => write!(f, "{key}={one}"),
            Operator::DoubleEquals => write!(f, "{key}=={one}"),
            Operator::NotEquals => write!(f, "{key}!={one}"),
            Operator::GreaterThan => write!(f, "{key}>{one}"),
            Operator::LessThan => write!(f, "{key}<{one}"),
            Operator::In => write!(f, "{key} in ({})", self.values.join(",")),
            Operator::NotIn => write!(f, "{key} notin ({})", self.values.join(",")),
        }
    }
}

impl Selector {
    /// Parses the `labelSelector` query parameter.
    pub fn parse(input: &str) -> Result<Selector, String> {
        let mut parser = Parser {
            tokens: tokenize(input),
            pos: 0,
        };
        let mut requirements = parser.selector()?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Selector { requirements })
    }

    /// A `metav1.LabelSelector` (matchLabels and matchExpressions).
    pub fn from_label_selector(
        selector: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    ) -> Result<Selector, String> {
        let mut requirements = Vec::new();
        for (k, v) in selector.match_labels.iter().flatten() {
            requirements.push(Requirement::new(
                k.clone(),
                Operator::Equals,
                vec![v.clone()],
            )?);
        }
        for e in selector.match_expressions.iter().flatten() {
            let operator = match e.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => return Err(format!("{other:?} is not a valid label selector operator")),
            };
            requirements.push(Requirement::new(
                e.key.clone(),
                operator,
                e.values.clone().unwrap_or_default(),
            )?);
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Selector { requirements })
    }

    /// Selects objects whose labels equal all of `labels`.
    pub fn from_map(labels: &BTreeMap<String, String>) -> Selector {
        Selector {
            requirements: labels
                .iter()
                .map(|(k, v)| Requirement {
                    key: k.clone(),
                    operator: Operator::Equals,
                    values: vec![v.clone()],
                })
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.requirements.iter().map(ToString::to_string).collect();
        write!(f, "{}", parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn matching_table() {
        let l = labels(&[("app", "web"), ("tier", "front"), ("n", "5"), ("empty", "")]);
        let cases: &[(&str, bool)] = &[
            ("", true),
            ("app", true),
            ("!app", false),
            ("missing", false),
            ("!missing", true),
            ("app=web", true),
            ("app==web", true),
            ("app=db", false),
            ("app!=db", true),
            ("app!=web", false),
            ("missing!=x", true),
            ("app in (web,db)", true),
            ("app in (db)", false),
            ("missing in (x)", false),
            ("app notin (db)", true),
            ("app notin (web)", false),
            ("missing notin (x)", true),
            ("app=web,tier=front", true),
            ("app=web,tier=back", false),
            ("n>4", true),
            ("n>5", false),
            ("n<6", true),
            ("app>1", false),
            ("missing<1", false),
            ("empty=", true),
            ("empty in ()", true),
            ("app in (in)", false),
            ("  app  =  web  ", true),
            ("app in (web, db)", true),
            ("app in (,web)", true),
        ];
        for (sel, want) in cases {
            let s = Selector::parse(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
            assert_eq!(s.matches(&l), *want, "{sel}");
        }
    }

    #[test]
    fn parse_errors_as_the_server_words_them() {
        let cases: &[(&str, &str)] = &[
            (
                "type=app,versionv1.0.1)",
                "unable to parse requirement: found ')', expected: in, notin, =, ==, !=, gt, lt",
            ),
            (
                "env IN (a)",
                "unable to parse requirement: found 'IN', expected: in, notin, =, ==, !=, gt, lt",
            ),
            (
                "x (",
                "unable to parse requirement: found '(', expected: in, notin, =, ==, !=, gt, lt",
            ),
            ("=a", "found '=', expected: !, identifier, or 'end of string'"),
            (",a", "found ',', expected: !, identifier, or 'end of string'"),
            ("a,", "found '', expected: identifier after ','"),
            ("a,,b", "found ',', expected: identifier after ','"),
            ("a=b c", "found 'c', expected: ',' or 'end of string'"),
            ("a in b", "unable to parse requirement: found 'b' expected: '('"),
            ("a in (b", "unable to parse requirement: found '', expected: ',' or ')'"),
            ("a in (b c)", "unable to parse requirement: found 'c', expected: ',' or ')'"),
            ("a in (=)", "unable to parse requirement: found '=', expected: ',', ')' or identifier"),
            ("a=(", "unable to parse requirement: found '(', expected: identifier"),
            ("!", "unable to parse requirement: found '', expected: identifier"),
            ("!=a", "found '!=', expected: !, identifier, or 'end of string'"),
            ("!a=b", "found '=', expected: ',' or 'end of string'"),
            (
                "a>b",
                "unable to parse requirement: values[0]: Invalid value: \"b\": for 'Gt', 'Lt' operators, the value must be an integer",
            ),
            (
                "-a=b",
                "unable to parse requirement: <nil>: Invalid value: \"-a\": name part must consist of alphanumeric characters",
            ),
            (
                "a=-b",
                "unable to parse requirement: values[0][a]: Invalid value: \"-b\": a valid label must be an empty string",
            ),
            ("a/b/c", "unable to parse requirement: <nil>: Invalid value: \"a/b/c\": a qualified name"),
        ];
        for (input, want) in cases {
            let err = Selector::parse(input).expect_err(input);
            assert!(
                err.starts_with(want),
                "{input:?}: got {err:?}, want {want:?}"
            );
        }
        let long = format!("a={}", "v".repeat(64));
        assert!(Selector::parse(&long)
            .expect_err("long")
            .contains("must be no more than 63 characters"));
    }

    #[test]
    fn tokens_take_the_longest_operator() {
        assert_eq!(
            tokenize("a!=b==c===d"),
            vec![
                Token::Ident("a".into()),
                Token::NotEquals,
                Token::Ident("b".into()),
                Token::DoubleEquals,
                Token::Ident("c".into()),
                Token::DoubleEquals,
                Token::Equals,
                Token::Ident("d".into()),
                Token::End,
            ]
        );
    }

    #[test]
    fn canonical_strings() {
        let s = Selector::parse("b notin (y,x), a==1, !c, d").expect("valid");
        assert_eq!(s.to_string(), "a==1,b notin (x,y),!c,d");
    }

    #[test]
    fn from_label_selector_fields() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
        let sel = meta::LabelSelector {
            match_labels: Some([("app".to_string(), "web".to_string())].into()),
            match_expressions: Some(vec![meta::LabelSelectorRequirement {
                key: "tier".into(),
                operator: "In".into(),
                values: Some(vec!["front".into()]),
            }]),
        };
        let s = Selector::from_label_selector(&sel).expect("valid");
        assert!(s.matches(&labels(&[("app", "web"), ("tier", "front")])));
        assert!(!s.matches(&labels(&[("app", "web")])));
        let bad = meta::LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![meta::LabelSelectorRequirement {
                key: "tier".into(),
                operator: "Maybe".into(),
                values: None,
            }]),
        };
        assert!(Selector::from_label_selector(&bad).is_err());
    }
}
