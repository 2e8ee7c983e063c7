//! Splitting an instruction's arguments without evaluating them: words with
//! their quotes kept (expansion removes them later), `--flags`, and the
//! JSON (exec) form.

/// Splits on whitespace outside quotes; quotes and escapes are kept as
/// written so that [`super::expand`] sees exactly what the user wrote.
pub(super) fn split_raw(text: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                cur.push(c);
                if c == q {
                    quote = None;
                } else if c == escape && q == '"' {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                }
            }
            None if c.is_whitespace() => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            None => {
                cur.push(c);
                if c == '"' || c == '\'' {
                    quote = Some(c);
                } else if c == escape {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                }
            }
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

/// Byte offset of the first `=` outside quotes (for `key=value` words).
pub(super) fn unquoted_eq(word: &str, escape: char) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in word.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match quote {
            Some(q) if c == q => quote = None,
            Some('"') if c == escape => escaped = true,
            Some(_) => {}
            None if c == escape => escaped = true,
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '=' => return Some(i),
            None => {}
        }
    }
    None
}

/// A `--name[=value]` flag before an instruction's arguments.
#[derive(Debug, Clone)]
pub(super) struct Flag {
    pub name: String,
    /// As written after `=` (quotes kept); `None` for a bare `--name`.
    pub value: Option<String>,
    /// The whole word as written.
    pub raw: String,
}

/// Takes the leading `--flag` words off `rest`. A bare `--` ends the flags
/// (so an argument may start with `--`).
pub(super) fn take_flags(rest: &str, escape: char) -> (Vec<Flag>, String) {
    let mut flags = Vec::new();
    let mut rest = rest.trim_start();
    loop {
        if !rest.starts_with("--") {
            break;
        }
        // The flag word ends at the first whitespace outside quotes.
        let word = split_raw(rest, escape)
            .into_iter()
            .next()
            .unwrap_or_default();
        let after = rest.get(word.len()..).unwrap_or("").trim_start();
        if word == "--" {
            rest = after;
            break;
        }
        let body = &word[2..];
        let (name, value) = match body.find('=') {
            Some(at) => (&body[..at], Some(body[at + 1..].to_string())),
            None => (body, None),
        };
        flags.push(Flag {
            name: name.to_string(),
            value,
            raw: word.clone(),
        });
        rest = after;
    }
    (flags, rest.to_string())
}

/// The outcome of reading an argument string that may be a JSON array.
pub(super) enum Json {
    /// A JSON array of strings.
    Strings(Vec<String>),
    /// Not JSON (or JSON that is not an array of strings): docker then
    /// takes the text as a shell command or plain words.
    NotJson,
}

/// The rule for "looks like JSON but is not": text that starts with `[`
/// and is a *prefix* of valid JSON (the JSON parser ran out of input, e.g.
/// `["a", "b"` or `["a", "b`) is an error, because it is almost certainly
/// a mistyped exec form and running it through a shell would fail in a
/// confusing way. Anything else that fails to parse (`[ -f x ] && y`,
/// `["a"] b`) is shell form / plain words, as in docker.
pub(super) fn maybe_json(text: &str) -> Result<Json, String> {
    let t = text.trim();
    if !t.starts_with('[') {
        return Ok(Json::NotJson);
    }
    match serde_json::from_str::<serde_json::Value>(t) {
        Ok(serde_json::Value::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    serde_json::Value::String(s) => out.push(s),
                    _ => return Ok(Json::NotJson),
                }
            }
            Ok(Json::Strings(out))
        }
        Ok(_) => Ok(Json::NotJson),
        Err(e) if e.is_eof() => Err(format!(
            "unterminated JSON array {t:?}: the exec form must end with ']'"
        )),
        Err(_) => Ok(Json::NotJson),
    }
}
