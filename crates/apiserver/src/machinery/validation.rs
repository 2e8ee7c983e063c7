//! Field errors and the name rules of the Kubernetes API (DNS labels and
//! subdomains, qualified names, label values), worded as the real API
//! server words them, because kubectl prints these messages verbatim.
//!
//! The rules are RFC 1123 host names (lower case, 63 characters a label,
//! 253 a subdomain) and the "qualified name" of labels and annotations
//! (`[prefix/]name`, the prefix a DNS subdomain, the name 63 characters of
//! `[A-Za-z0-9_.-]` starting and ending alphanumeric).

use std::fmt;

/// Why a field is wrong; the strings are `metav1.CauseType`s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorType {
    Required,
    Invalid,
    NotSupported,
    Duplicate,
    TooLong,
    Forbidden,
    /// A field the schema does not know (strict decoding).
    Unknown,
}

impl ErrorType {
    /// The `reason` of a `StatusCause`.
    pub fn cause(self) -> &'static str {
        match self {
            ErrorType::Required => "FieldValueRequired",
            ErrorType::Invalid => "FieldValueInvalid",
            ErrorType::NotSupported => "FieldValueNotSupported",
            ErrorType::Duplicate => "FieldValueDuplicate",
            ErrorType::TooLong => "FieldValueTooLong",
            ErrorType::Forbidden => "FieldValueForbidden",
            ErrorType::Unknown => "FieldValueTypeInvalid",
        }
    }
}

/// One thing wrong with one field of an object.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    pub kind: ErrorType,
    /// `spec.containers[0].name`.
    pub field: String,
    /// The offending value, shown for `Invalid`, `NotSupported`, `Duplicate`.
    pub value: Option<serde_json::Value>,
    pub detail: String,
}

impl FieldError {
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> FieldError {
        FieldError {
            kind: ErrorType::Required,
            field: field.into(),
            value: None,
            detail: detail.into(),
        }
    }

    pub fn invalid(
        field: impl Into<String>,
        value: impl Into<serde_json::Value>,
        detail: impl Into<String>,
    ) -> FieldError {
        FieldError {
            kind: ErrorType::Invalid,
            field: field.into(),
            value: Some(value.into()),
            detail: detail.into(),
        }
    }

    /// A value outside a closed set; the detail lists the supported ones.
    pub fn not_supported(
        field: impl Into<String>,
        value: impl Into<serde_json::Value>,
        supported: &[&str],
    ) -> FieldError {
        let quoted: Vec<String> = supported.iter().map(|s| format!("\"{s}\"")).collect();
        FieldError {
            kind: ErrorType::NotSupported,
            field: field.into(),
            value: Some(value.into()),
            detail: format!("supported values: {}", quoted.join(", ")),
        }
    }

    pub fn duplicate(field: impl Into<String>, value: impl Into<serde_json::Value>) -> FieldError {
        FieldError {
            kind: ErrorType::Duplicate,
            field: field.into(),
            value: Some(value.into()),
            detail: String::new(),
        }
    }

    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> FieldError {
        FieldError {
            kind: ErrorType::Forbidden,
            field: field.into(),
            value: None,
            detail: detail.into(),
        }
    }

    /// The message without the field: `Invalid value: "x": detail`.
    pub fn body(&self) -> String {
        let value = self.value.as_ref().map(show_value).unwrap_or_default();
        let with_detail = |head: String| {
            if self.detail.is_empty() {
                head
            } else {
                format!("{head}: {}", self.detail)
            }
        };
        match self.kind {
            ErrorType::Required => with_detail("Required value".into()),
            ErrorType::Forbidden => with_detail("Forbidden".into()),
            ErrorType::Invalid => with_detail(format!("Invalid value: {value}")),
            ErrorType::NotSupported => with_detail(format!("Unsupported value: {value}")),
            ErrorType::Duplicate => with_detail(format!("Duplicate value: {value}")),
            ErrorType::TooLong => with_detail("Too long".into()),
            ErrorType::Unknown => with_detail("field not declared in schema".into()),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

/// A value as field errors quote it: strings in quotes, numbers bare.
fn show_value(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => format!("{s:?}"),
        serde_json::Value::Null => "null".into(),
        other => other.to_string(),
    }
}

pub const DNS1123_LABEL_MAX: usize = 63;
pub const DNS1123_SUBDOMAIN_MAX: usize = 253;
const QUALIFIED_NAME_MAX: usize = 63;
const LABEL_VALUE_MAX: usize = 63;

const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case \
alphanumeric characters or '-', and must start and end with an alphanumeric character \
(e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower \
case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric \
character (e.g. 'example.com', regex used for validation is \
'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

const QUALIFIED_NAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', \
and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or \
'123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of \
alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric \
character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is \
'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

fn max_len_msg(max: usize) -> String {
    format!("must be no more than {max} characters")
}

fn is_dns_label_chars(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// RFC 1123 label (namespace names, service names, container names).
/// Returns the problems, empty when valid.
pub fn dns1123_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > DNS1123_LABEL_MAX {
        errs.push(max_len_msg(DNS1123_LABEL_MAX));
    }
    if !is_dns_label_chars(s) {
        errs.push(DNS1123_LABEL_MSG.into());
    }
    errs
}

/// RFC 1123 subdomain (most object names).
pub fn dns1123_subdomain(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > DNS1123_SUBDOMAIN_MAX {
        errs.push(max_len_msg(DNS1123_SUBDOMAIN_MAX));
    }
    if !s.split('.').all(is_dns_label_chars) {
        errs.push(DNS1123_SUBDOMAIN_MSG.into());
    }
    errs
}

fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// `[prefix/]name`: label and annotation keys, finalizer names.
pub fn qualified_name(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = s.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".into());
            } else {
                for e in dns1123_subdomain(prefix) {
                    errs.push(format!("prefix part {e}"));
                }
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a qualified name {QUALIFIED_NAME_MSG} with an optional DNS subdomain prefix \
                 and '/' (e.g. 'example.com/MyName')"
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".into());
    } else if name.len() > QUALIFIED_NAME_MAX {
        errs.push(format!("name part {}", max_len_msg(QUALIFIED_NAME_MAX)));
    }
    if !name.is_empty() && !is_qualified_name_part(name) {
        errs.push(format!("name part {QUALIFIED_NAME_MSG}"));
    }
    errs
}

/// A label value: empty, or up to 63 characters of `[A-Za-z0-9_.-]`
/// starting and ending alphanumeric.
pub fn label_value(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > LABEL_VALUE_MAX {
        errs.push(max_len_msg(LABEL_VALUE_MAX));
    }
    if !s.is_empty() && !is_qualified_name_part(s) {
        errs.push(LABEL_VALUE_MSG.into());
    }
    errs
}

/// Validates `metadata.labels`: keys are qualified names, values label values.
pub fn labels<'a>(
    labels: impl IntoIterator<Item = (&'a String, &'a String)>,
    path: &str,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (k, v) in labels {
        for e in qualified_name(k) {
            errs.push(FieldError::invalid(path, k.as_str(), e));
        }
        for e in label_value(v) {
            errs.push(FieldError::invalid(format!("{path}[{k}]"), v.as_str(), e));
        }
    }
    errs
}

/// Annotations: qualified-name keys, 256 KiB in total.
pub fn annotations<'a>(
    annotations: impl IntoIterator<Item = (&'a String, &'a String)>,
    path: &str,
) -> Vec<FieldError> {
    const TOTAL_MAX: usize = 256 * 1024;
    let mut errs = Vec::new();
    let mut total = 0;
    for (k, v) in annotations {
        total += k.len() + v.len();
        for e in qualified_name(&k.to_lowercase()) {
            errs.push(FieldError::invalid(path, k.as_str(), e));
        }
    }
    if total > TOTAL_MAX {
        errs.push(FieldError {
            kind: ErrorType::TooLong,
            field: path.into(),
            value: None,
            detail: format!("must have at most {TOTAL_MAX} bytes"),
        });
    }
    errs
}

/// A port number, 1-65535.
pub fn port_number(port: i32, path: &str) -> Option<FieldError> {
    (!(1..=65535).contains(&port))
        .then(|| FieldError::invalid(path, port, "must be between 1 and 65535, inclusive"))
}

/// An IANA service name (named ports): at most 15 characters, lower case
/// alphanumerics and '-', at least one letter, no '--'.
pub fn port_name(name: &str, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if name.len() > 15 {
        errs.push(FieldError::invalid(
            path,
            name,
            "must be no more than 15 characters",
        ));
    }
    if !name
        .bytes()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    {
        errs.push(FieldError::invalid(
            path,
            name,
            "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
        ));
    }
    if !name.bytes().any(|c| c.is_ascii_lowercase()) {
        errs.push(FieldError::invalid(
            path,
            name,
            "must contain at least one letter (a-z)",
        ));
    }
    if name.contains("--") {
        errs.push(FieldError::invalid(
            path,
            name,
            "must not contain consecutive hyphens",
        ));
    }
    if name.starts_with('-') || name.ends_with('-') {
        errs.push(FieldError::invalid(
            path,
            name,
            "must not begin or end with a hyphen",
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        for good in ["a", "web", "a-b", "0", "x1", &"a".repeat(63)] {
            assert!(dns1123_label(good).is_empty(), "{good}");
        }
        for bad in [
            "",
            "A",
            "-a",
            "a-",
            "a.b",
            "a_b",
            "é",
            " a",
            &"a".repeat(64),
        ] {
            assert!(!dns1123_label(bad).is_empty(), "{bad:?}");
        }
        assert_eq!(
            dns1123_label(&"a".repeat(64)),
            vec!["must be no more than 63 characters"]
        );
    }

    #[test]
    fn dns_subdomains() {
        for good in ["a", "a.b", "example.com", "my-app.v1", &"a".repeat(253)] {
            assert!(dns1123_subdomain(good).is_empty(), "{good}");
        }
        for bad in [
            "",
            ".",
            "a..b",
            "a.",
            ".a",
            "A.b",
            "a_b",
            "a.-b",
            &"a".repeat(254),
        ] {
            assert!(!dns1123_subdomain(bad).is_empty(), "{bad:?}");
        }
        assert!(dns1123_subdomain("Foo_bar")[0].starts_with("a lowercase RFC 1123 subdomain"));
    }

    #[test]
    fn qualified_names() {
        for good in ["app", "App_1", "example.com/app", "a.b/c-d", "x"] {
            assert!(qualified_name(good).is_empty(), "{good}");
        }
        let cases: &[(&str, &str)] = &[
            ("", "name part must be non-empty"),
            ("/a", "prefix part must be non-empty"),
            ("a/", "name part must be non-empty"),
            ("a/b/c", "a qualified name must consist"),
            ("-a", "name part must consist"),
            ("a-", "name part must consist"),
            ("Bad_Prefix/a", "prefix part a lowercase RFC 1123 subdomain"),
            ("a b", "name part must consist"),
        ];
        for (input, want) in cases {
            let errs = qualified_name(input);
            assert!(
                errs.iter().any(|e| e.starts_with(want)),
                "{input:?}: {errs:?}"
            );
        }
        assert_eq!(
            qualified_name(&"a".repeat(64)),
            vec!["name part must be no more than 63 characters"]
        );
    }

    #[test]
    fn label_values() {
        for good in ["", "v1", "My_Value.2", &"a".repeat(63)] {
            assert!(label_value(good).is_empty(), "{good}");
        }
        for bad in ["-v", "v-", "a b", "a/b", "ü", &"a".repeat(64)] {
            assert!(!label_value(bad).is_empty(), "{bad:?}");
        }
    }

    #[test]
    fn field_error_bodies() {
        let e = FieldError::invalid("metadata.name", "Foo", "bad");
        assert_eq!(e.to_string(), "metadata.name: Invalid value: \"Foo\": bad");
        let e = FieldError::invalid("spec.replicas", -1, "must be greater than or equal to 0");
        assert_eq!(
            e.to_string(),
            "spec.replicas: Invalid value: -1: must be greater than or equal to 0"
        );
        let e = FieldError::required("spec.containers", "");
        assert_eq!(e.to_string(), "spec.containers: Required value");
        let e = FieldError::not_supported("spec.restartPolicy", "Sometimes", &["Always", "Never"]);
        assert_eq!(
            e.to_string(),
            "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"Never\""
        );
        let e = FieldError::duplicate("spec.containers[1].name", "web");
        assert_eq!(
            e.to_string(),
            "spec.containers[1].name: Duplicate value: \"web\""
        );
    }

    #[test]
    fn ports() {
        assert!(port_number(80, "p").is_none());
        assert!(port_number(0, "p").is_some());
        assert!(port_number(65536, "p").is_some());
        assert!(port_name("http", "p").is_empty());
        assert!(!port_name("HTTP", "p").is_empty());
        assert!(!port_name("8080", "p").is_empty());
        assert!(!port_name("a--b", "p").is_empty());
        assert!(!port_name("a-very-long-port-name", "p").is_empty());
    }
}
