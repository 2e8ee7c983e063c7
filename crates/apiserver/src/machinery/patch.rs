//! JSON merge patch (RFC 7386, `application/merge-patch+json`) and JSON
//! patch (RFC 6902, `application/json-patch+json`). Strategic merge patch
//! and server-side apply have modules of their own (`strategic`, `apply`).

use serde_json::{Map, Value};

/// RFC 7386 §2: objects merge member by member, `null` removes a member,
/// anything else (arrays included) replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let target = target.as_object_mut().expect("made an object above");
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// Why a JSON patch does not apply; the message is what the client sees.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JsonPatchError {
    #[error("the JSON patch is not a list of operations: {0}")]
    Malformed(String),
    #[error("unexpected kind of operation: {op:?}")]
    UnknownOp { op: String },
    #[error("operation {op} is missing the field {field:?}")]
    MissingField { op: String, field: &'static str },
    #[error("invalid JSON pointer {pointer:?}: {reason}")]
    BadPointer { pointer: String, reason: String },
    #[error("the path {path:?} does not exist")]
    Missing { path: String },
    #[error("testing value {path} failed")]
    TestFailed { path: String },
    #[error("a {op} cannot move {from:?} into its own child {path:?}")]
    IntoChild {
        op: String,
        from: String,
        path: String,
    },
}

/// RFC 6901 pointer into its reference tokens.
fn parse_pointer(pointer: &str) -> Result<Vec<String>, JsonPatchError> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(JsonPatchError::BadPointer {
            pointer: pointer.into(),
            reason: "must start with '/'".into(),
        });
    };
    rest.split('/')
        .map(|t| {
            let mut out = String::new();
            let mut chars = t.chars();
            while let Some(c) = chars.next() {
                if c == '~' {
                    match chars.next() {
                        Some('0') => out.push('~'),
                        Some('1') => out.push('/'),
                        _ => {
                            return Err(JsonPatchError::BadPointer {
                                pointer: pointer.into(),
                                reason: "'~' must be followed by '0' or '1'".into(),
                            })
                        }
                    }
                } else {
                    out.push(c);
                }
            }
            Ok(out)
        })
        .collect()
}

/// An array index token: decimal digits without a leading zero.
fn array_index(
    token: &str,
    len: usize,
    allow_end: bool,
    path: &str,
) -> Result<usize, JsonPatchError> {
    if allow_end && token == "-" {
        return Ok(len);
    }
    let valid = !token.is_empty()
        && token.bytes().all(|b| b.is_ascii_digit())
        && (token == "0" || !token.starts_with('0'));
    let index = valid.then(|| token.parse::<usize>().ok()).flatten();
    match index {
        Some(i) if i < len || (allow_end && i == len) => Ok(i),
        _ => Err(JsonPatchError::Missing { path: path.into() }),
    }
}

fn get<'a>(doc: &'a Value, tokens: &[String], path: &str) -> Result<&'a Value, JsonPatchError> {
    let mut at = doc;
    for t in tokens {
        at = match at {
            Value::Object(m) => m.get(t),
            Value::Array(a) => Some(&a[array_index(t, a.len(), false, path)?]),
            _ => None,
        }
        .ok_or_else(|| JsonPatchError::Missing { path: path.into() })?;
    }
    Ok(at)
}

fn parent_mut<'a>(
    doc: &'a mut Value,
    tokens: &[String],
    path: &str,
) -> Result<&'a mut Value, JsonPatchError> {
    let mut at = doc;
    for t in tokens {
        at = match at {
            Value::Object(m) => m.get_mut(t),
            Value::Array(a) => {
                let i = array_index(t, a.len(), false, path)?;
                a.get_mut(i)
            }
            _ => None,
        }
        .ok_or_else(|| JsonPatchError::Missing { path: path.into() })?;
    }
    Ok(at)
}

fn add(doc: &mut Value, tokens: &[String], value: Value, path: &str) -> Result<(), JsonPatchError> {
    let Some((last, parents)) = tokens.split_last() else {
        *doc = value;
        return Ok(());
    };
    match parent_mut(doc, parents, path)? {
        Value::Object(m) => {
            m.insert(last.clone(), value);
        }
        Value::Array(a) => {
            let i = array_index(last, a.len(), true, path)?;
            a.insert(i, value);
        }
        _ => return Err(JsonPatchError::Missing { path: path.into() }),
    }
    Ok(())
}

fn remove(doc: &mut Value, tokens: &[String], path: &str) -> Result<Value, JsonPatchError> {
    let Some((last, parents)) = tokens.split_last() else {
        return Ok(std::mem::take(doc));
    };
    match parent_mut(doc, parents, path)? {
        Value::Object(m) => m
            .remove(last)
            .ok_or_else(|| JsonPatchError::Missing { path: path.into() }),
        Value::Array(a) => {
            let i = array_index(last, a.len(), false, path)?;
            Ok(a.remove(i))
        }
        _ => Err(JsonPatchError::Missing { path: path.into() }),
    }
}

fn field<'a>(
    op: &'a Map<String, Value>,
    name: &'static str,
    kind: &str,
) -> Result<&'a Value, JsonPatchError> {
    op.get(name).ok_or_else(|| JsonPatchError::MissingField {
        op: kind.into(),
        field: name,
    })
}

fn string_field<'a>(
    op: &'a Map<String, Value>,
    name: &'static str,
    kind: &str,
) -> Result<&'a str, JsonPatchError> {
    field(op, name, kind)?
        .as_str()
        .ok_or_else(|| JsonPatchError::MissingField {
            op: kind.into(),
            field: name,
        })
}

/// Applies RFC 6902 operations in order; all or nothing (the caller's
/// document is changed only when every operation applied).
pub fn json_patch(doc: &mut Value, patch: &Value) -> Result<(), JsonPatchError> {
    let Value::Array(ops) = patch else {
        return Err(JsonPatchError::Malformed(format!("got {}", kind_of(patch))));
    };
    let mut work = doc.clone();
    for op in ops {
        let Value::Object(op) = op else {
            return Err(JsonPatchError::Malformed(format!(
                "an operation is {}",
                kind_of(op)
            )));
        };
        let kind = op
            .get("op")
            .and_then(Value::as_str)
            .ok_or(JsonPatchError::MissingField {
                op: "operation".into(),
                field: "op",
            })?;
        let path = string_field(op, "path", kind)?;
        let tokens = parse_pointer(path)?;
        match kind {
            "add" => add(&mut work, &tokens, field(op, "value", kind)?.clone(), path)?,
            "remove" => {
                remove(&mut work, &tokens, path)?;
            }
            "replace" => {
                let value = field(op, "value", kind)?.clone();
                *get_mut(&mut work, &tokens, path)? = value;
            }
            "move" | "copy" => {
                let from = string_field(op, "from", kind)?;
                let from_tokens = parse_pointer(from)?;
                if kind == "move" {
                    if from_tokens == tokens {
                        continue;
                    }
                    if tokens.len() > from_tokens.len() && tokens.starts_with(&from_tokens) {
                        return Err(JsonPatchError::IntoChild {
                            op: kind.into(),
                            from: from.into(),
                            path: path.into(),
                        });
                    }
                    let value = remove(&mut work, &from_tokens, from)?;
                    add(&mut work, &tokens, value, path)?;
                } else {
                    let value = get(&work, &from_tokens, from)?.clone();
                    add(&mut work, &tokens, value, path)?;
                }
            }
            "test" => {
                let want = field(op, "value", kind)?;
                if get(&work, &tokens, path)? != want {
                    return Err(JsonPatchError::TestFailed { path: path.into() });
                }
            }
            other => return Err(JsonPatchError::UnknownOp { op: other.into() }),
        }
    }
    *doc = work;
    Ok(())
}

fn get_mut<'a>(
    doc: &'a mut Value,
    tokens: &[String],
    path: &str,
) -> Result<&'a mut Value, JsonPatchError> {
    parent_mut(doc, tokens, path)
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_rfc7386_appendix_a() {
        // The examples of RFC 7386 Appendix A: (target, patch, result).
        let cases = [
            (json!({"a":"b"}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"b"}), json!({"b":"c"}), json!({"a":"b","b":"c"})),
            (json!({"a":"b"}), json!({"a":null}), json!({})),
            (
                json!({"a":"b","b":"c"}),
                json!({"a":null}),
                json!({"b":"c"}),
            ),
            (json!({"a":["b"]}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"c"}), json!({"a":["b"]}), json!({"a":["b"]})),
            (
                json!({"a":{"b":"c"}}),
                json!({"a":{"b":"d","c":null}}),
                json!({"a":{"b":"d"}}),
            ),
            (json!({"a":[{"b":"c"}]}), json!({"a":[1]}), json!({"a":[1]})),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a":"b"}), json!(["c"]), json!(["c"])),
            (json!({"a":"foo"}), json!(null), json!(null)),
            (json!({"a":"foo"}), json!("bar"), json!("bar")),
            (json!({"e":null}), json!({"a":1}), json!({"e":null,"a":1})),
            (json!([1, 2]), json!({"a":"b","c":null}), json!({"a":"b"})),
            (
                json!({}),
                json!({"a":{"bb":{"ccc":null}}}),
                json!({"a":{"bb":{}}}),
            ),
        ];
        for (mut target, patch, want) in cases {
            merge_patch(&mut target, &patch);
            assert_eq!(target, want, "patch {patch}");
        }
    }

    fn apply(doc: Value, patch: Value) -> Result<Value, JsonPatchError> {
        let mut doc = doc;
        json_patch(&mut doc, &patch)?;
        Ok(doc)
    }

    #[test]
    fn json_patch_operations() {
        let doc = json!({"foo": ["bar", "baz"], "a": {"b": 1}, "x~y": 1, "p/q": 2});
        let cases = [
            (
                json!([{"op":"add","path":"/foo/1","value":"qux"}]),
                json!({"foo":["bar","qux","baz"],"a":{"b":1},"x~y":1,"p/q":2}),
            ),
            (
                json!([{"op":"add","path":"/foo/-","value":"end"}]),
                json!({"foo":["bar","baz","end"],"a":{"b":1},"x~y":1,"p/q":2}),
            ),
            (
                json!([{"op":"add","path":"/new","value":{"n":1}}]),
                json!({"foo":["bar","baz"],"a":{"b":1},"x~y":1,"p/q":2,"new":{"n":1}}),
            ),
            (
                json!([{"op":"remove","path":"/foo/0"}]),
                json!({"foo":["baz"],"a":{"b":1},"x~y":1,"p/q":2}),
            ),
            (
                json!([{"op":"replace","path":"/a/b","value":2}]),
                json!({"foo":["bar","baz"],"a":{"b":2},"x~y":1,"p/q":2}),
            ),
            (
                json!([{"op":"remove","path":"/x~0y"},{"op":"remove","path":"/p~1q"}]),
                json!({"foo":["bar","baz"],"a":{"b":1}}),
            ),
            (
                json!([{"op":"move","from":"/a/b","path":"/c"}]),
                json!({"foo":["bar","baz"],"a":{},"c":1,"x~y":1,"p/q":2}),
            ),
            (
                json!([{"op":"move","from":"/foo/0","path":"/foo/1"}]),
                json!({"foo":["baz","bar"],"a":{"b":1},"x~y":1,"p/q":2}),
            ),
            (
                json!([{"op":"copy","from":"/a","path":"/d"}]),
                json!({"foo":["bar","baz"],"a":{"b":1},"d":{"b":1},"x~y":1,"p/q":2}),
            ),
            (
                json!([{"op":"test","path":"/a/b","value":1},{"op":"remove","path":"/a"}]),
                json!({"foo":["bar","baz"],"x~y":1,"p/q":2}),
            ),
            (json!([{"op":"replace","path":"","value":[1]}]), json!([1])),
            (json!([]), doc.clone()),
        ];
        for (patch, want) in cases {
            assert_eq!(
                apply(doc.clone(), patch.clone()).expect("applies"),
                want,
                "{patch}"
            );
        }
    }

    #[test]
    fn json_patch_bad_inputs_change_nothing() {
        let doc = json!({"foo": ["bar"], "a": {"b": 1}});
        let cases = [
            json!({"op":"add"}),
            json!(["add"]),
            json!([{"path":"/a"}]),
            json!([{"op":"frobnicate","path":"/a"}]),
            json!([{"op":"add","path":"/a/b"}]),
            json!([{"op":"add","path":"a","value":1}]),
            json!([{"op":"add","path":"/missing/x","value":1}]),
            json!([{"op":"add","path":"/foo/5","value":1}]),
            json!([{"op":"add","path":"/foo/01","value":1}]),
            json!([{"op":"remove","path":"/nope"}]),
            json!([{"op":"remove","path":"/foo/1"}]),
            json!([{"op":"replace","path":"/nope","value":1}]),
            json!([{"op":"move","from":"/a","path":"/a/c"}]),
            json!([{"op":"move","path":"/x"}]),
            json!([{"op":"copy","from":"/nope","path":"/x"}]),
            json!([{"op":"test","path":"/a/b","value":2}]),
            json!([{"op":"remove","path":"/a"},{"op":"test","path":"/a","value":1}]),
            json!([{"op":"add","path":"/x~2","value":1}]),
            json!([{"op":"remove","path":"/foo/-"}]),
        ];
        for patch in cases {
            let mut d = doc.clone();
            assert!(json_patch(&mut d, &patch).is_err(), "{patch}");
            assert_eq!(d, doc, "{patch} changed the document");
        }
    }

    #[test]
    fn json_patch_messages() {
        let err =
            apply(json!({}), json!([{"op":"test","path":"/a","value":1}])).expect_err("fails");
        assert_eq!(err.to_string(), "the path \"/a\" does not exist");
        let err =
            apply(json!({"a":2}), json!([{"op":"test","path":"/a","value":1}])).expect_err("fails");
        assert_eq!(err.to_string(), "testing value /a failed");
    }
}
