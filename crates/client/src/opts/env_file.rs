//! `--env-file`: docker's format, which is not a shell's.

use super::{refuse, Result};

/// The variables of an env file, in order, as `NAME=value`. Docker's rules:
/// leading whitespace is dropped; blank lines and lines starting with `#`
/// are skipped; `NAME=value` is taken verbatim (quotes and trailing spaces
/// are part of the value); a `NAME` alone takes its value from `lookup` (the
/// client's environment) and is left out when unset there; a name is
/// non-empty and has no whitespace.
pub fn env_file(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, value) = match line.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (line.trim_end(), None),
        };
        if name.is_empty() {
            refuse!("invalid environment variable on line {}: '{line}'", n + 1);
        }
        if name.contains(char::is_whitespace) {
            refuse!("variable '{name}' contains whitespaces");
        }
        match value {
            Some(v) => out.push(format!("{name}={v}")),
            None => {
                if let Some(v) = lookup(name) {
                    out.push(format!("{name}={v}"));
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "FROM_HOST").then(|| "host value".to_string())
    }

    #[test]
    fn env_files_read_like_dockers() {
        let text = "# a comment\n\nA=1\n  B=two words  \nC=\"quoted\"\nD=\nE=x=y\nFROM_HOST\nUNSET\n\t# indented comment\r\nF=1\r\n";
        assert_eq!(
            env_file(text, env).expect("valid"),
            [
                "A=1",
                "B=two words  ",
                "C=\"quoted\"",
                "D=",
                "E=x=y",
                "FROM_HOST=host value",
                "F=1",
            ]
        );
        assert!(env_file("", env).expect("empty").is_empty());
    }

    #[test]
    fn bad_env_files_are_refused() {
        for (text, reason) in [
            ("=value", "invalid environment variable on line 1"),
            ("A=1\n=2", "on line 2"),
            ("MY VAR=1", "variable 'MY VAR' contains whitespaces"),
            ("MY\tVAR", "contains whitespaces"),
        ] {
            let e = env_file(text, env).expect_err(text);
            assert!(e.0.contains(reason), "{text:?}: {e} lacks {reason:?}");
        }
    }
}
