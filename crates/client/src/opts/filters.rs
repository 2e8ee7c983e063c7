//! `--filter key=value`: the `filters` query parameter.

use std::collections::BTreeMap;

use super::{refuse, Result};

/// Repeated `--filter` values as the JSON the daemon takes:
/// `{"key":["v1","v2"]}`. The daemon checks the keys; here only the shape.
pub fn filters_json(filters: &[String]) -> Result<String> {
    let mut map: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for f in filters {
        match f.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => {
                map.entry(key.trim()).or_default().push(value)
            }
            _ => refuse!("bad format of filter (expected name=value): {f}"),
        }
    }
    Ok(serde_json::to_string(&map).expect("strings serialize"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn filters_group_by_key() {
        assert_eq!(filters_json(&[]).expect("none"), "{}");
        assert_eq!(
            filters_json(&strings(&[
                "label=a=1",
                "label=b",
                "name=web",
                "dangling=true"
            ]))
            .expect("valid"),
            r#"{"dangling":["true"],"label":["a=1","b"],"name":["web"]}"#
        );
        assert_eq!(
            filters_json(&strings(&["label="])).expect("empty value"),
            r#"{"label":[""]}"#
        );
    }

    #[test]
    fn bad_filters_are_refused() {
        for f in ["label", "", "=x", " =x"] {
            let e = filters_json(&strings(&[f])).expect_err(f);
            assert_eq!(
                e.0,
                format!("bad format of filter (expected name=value): {f}")
            );
        }
    }
}
