//! `meta.k8s.io/v1` Table responses, what `kubectl get` asks for: column
//! definitions (priority 0 always shown, higher ones only by `-o wide`)
//! and one row of cells per object, with the object's metadata embedded
//! as `PartialObjectMetadata`. The per-kind printers live with their
//! kinds (`crate::groups`); this module has the shared pieces.

use serde_json::{json, Value};

/// One column of a kind's table.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    pub name: String,
    /// `string`, `integer`, `number`, `boolean` or `date`.
    pub kind: String,
    /// `name` for the NAME column.
    pub format: String,
    pub description: String,
    pub priority: i32,
}

impl Column {
    pub fn new(name: &str, kind: &str, description: &str) -> Column {
        Column {
            name: name.into(),
            kind: kind.into(),
            format: if name == "Name" {
                "name".into()
            } else {
                String::new()
            },
            description: description.into(),
            priority: 0,
        }
    }

    /// A `-o wide` column.
    pub fn wide(mut self) -> Column {
        self.priority = 1;
        self
    }

    fn definition(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.kind,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

/// The NAME and AGE of kinds without a printer of their own.
pub fn default_columns() -> Vec<Column> {
    vec![
        Column::new("Name", "string", "Name must be unique within a namespace."),
        Column::new("Created At", "date", "CreationTimestamp is a timestamp representing the server time when this object was created."),
    ]
}

/// How `includeObject` asked for rows' objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(s: Option<&str>) -> Result<IncludeObject, String> {
        Ok(match s {
            None | Some("") | Some("Metadata") => IncludeObject::Metadata,
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            Some(other) => {
                return Err(format!(
                    "includeObject: Unsupported value: \"{other}\": supported values: \"Metadata\", \"None\", \"Object\""
                ))
            }
        })
    }
}

/// The object a row carries.
pub fn row_object(obj: &Value, include: IncludeObject) -> Value {
    match include {
        IncludeObject::None => Value::Null,
        IncludeObject::Object => obj.clone(),
        IncludeObject::Metadata => {
            let mut meta = obj.get("metadata").cloned().unwrap_or_else(|| json!({}));
            if let Some(m) = meta.as_object_mut() {
                m.remove("managedFields");
            }
            json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": meta,
            })
        }
    }
}

/// A Table of `rows` (cells already printed), with list metadata.
pub fn table(columns: &[Column], rows: Vec<(Vec<Value>, Value)>, list_meta: Value) -> Value {
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": columns.iter().map(Column::definition).collect::<Vec<_>>(),
        "rows": rows.into_iter().map(|(cells, object)| {
            let mut row = json!({"cells": cells});
            if !object.is_null() {
                row["object"] = object;
            }
            row
        }).collect::<Vec<_>>(),
    })
}

/// Seconds as the printers show ages: `45s`, `3m20s`, `5h`, `12d`, `2y`.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        let d = hours / 24;
        return if h == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{h}h")
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        let y = hours / 24 / 365;
        return if dy == 0 {
            format!("{y}y")
        } else {
            format!("{y}y{dy}d")
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// The AGE cell of an RFC 3339 timestamp (`<unknown>` without one).
pub fn age(timestamp: Option<&str>, now: jiff::Timestamp) -> String {
    let Some(ts) = timestamp.and_then(|t| t.parse::<jiff::Timestamp>().ok()) else {
        return "<unknown>".into();
    };
    human_duration(now.duration_since(ts).as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_the_printers_show_them() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (59, "59s"),
            (119, "119s"),
            (120, "2m"),
            (200, "3m20s"),
            (600, "10m"),
            (179 * 60, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 5 * 60, "3h5m"),
            (47 * 3600, "47h"),
            (2 * 86400, "2d"),
            (2 * 86400 + 3600, "2d1h"),
            (30 * 86400, "30d"),
            (3 * 365 * 86400, "3y"),
            (3 * 365 * 86400 + 86400 * 5, "3y5d"),
            (9 * 365 * 86400, "9y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(secs), want, "{secs}");
        }
    }

    #[test]
    fn tables_and_rows() {
        let cols = vec![
            Column::new("Name", "string", "n"),
            Column::new("IP", "string", "ip").wide(),
        ];
        let obj = json!({"metadata": {"name": "p", "managedFields": [{}]}, "spec": {}});
        let t = table(
            &cols,
            vec![(
                vec![json!("p"), json!("10.0.0.1")],
                row_object(&obj, IncludeObject::Metadata),
            )],
            json!({"resourceVersion": "5"}),
        );
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["columnDefinitions"][0]["format"], "name");
        assert_eq!(t["columnDefinitions"][1]["priority"], 1);
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert!(t["rows"][0]["object"]["metadata"]
            .get("managedFields")
            .is_none());
        assert_eq!(
            IncludeObject::parse(Some("Object")),
            Ok(IncludeObject::Object)
        );
        assert!(IncludeObject::parse(Some("All")).is_err());
    }

    #[test]
    fn ages() {
        let now: jiff::Timestamp = "2026-01-01T01:00:00Z".parse().expect("valid");
        assert_eq!(age(Some("2026-01-01T00:00:00Z"), now), "60m");
        assert_eq!(age(None, now), "<unknown>");
        assert_eq!(age(Some("garbage"), now), "<unknown>");
    }
}
