//! How request bodies are read: as the engine API's Go decoding reads
//! them, so a body dockerd takes is taken here too.
//!
//! - `null` means "not given": every field reads it as its empty value,
//!   including list elements and map values (`nullable*`).
//! - Command lines and capability lists may be one string or a list of
//!   strings (`str_slice*`: `"Cmd": "echo hi"` is `["echo hi"]`).
//! - Integers are integers: `1e8` or `"100"` for a number is refused, as
//!   dockerd refuses them.
//!
//! `field_names` lists the wire names of a struct's fields, so tests can
//! compare the types with the API's published schema and the engine's
//! table of how each field is handled.

use std::collections::BTreeMap;

use serde::de::{self, DeserializeOwned, Visitor};
use serde::{Deserialize, Deserializer};

/// `null` reads as the empty value.
pub(crate) fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A list where `null`, and any `null` element, read as empty values.
pub(crate) fn nullable_list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<Vec<Option<T>>>::deserialize(d)?
        .unwrap_or_default()
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect())
}

/// A map where `null`, and any `null` value, read as empty values.
pub(crate) fn nullable_map<'de, D, V>(d: D) -> Result<BTreeMap<String, V>, D::Error>
where
    D: Deserializer<'de>,
    V: Default + Deserialize<'de>,
{
    Ok(Option::<BTreeMap<String, Option<V>>>::deserialize(d)?
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect())
}

/// A string or a list of strings; `null` is `None`.
pub(crate) fn str_slice<'de, D>(d: D) -> Result<Option<Vec<String>>, D::Error>
where
    D: Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<Option<String>>),
    }
    Ok(Option::<OneOrMany>::deserialize(d)?.map(|v| match v {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(l) => l.into_iter().map(Option::unwrap_or_default).collect(),
    }))
}

/// A string or a list of strings; `null` is the empty list.
pub(crate) fn str_slice_list<'de, D>(d: D) -> Result<Vec<String>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(str_slice(d)?.unwrap_or_default())
}

/// The wire names of the fields of struct `T` (as serde reads them).
/// Empty for a type that does not deserialize as a plain struct.
pub fn field_names<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut found = None;
    let _ = T::deserialize(Introspect(&mut found));
    found.unwrap_or(&[])
}

/// A deserializer that records the field names a struct asks for and
/// then fails (nothing is built).
struct Introspect<'a>(&'a mut Option<&'static [&'static str]>);

impl<'de> Deserializer<'de> for Introspect<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = Some(fields);
        Err(de::Error::custom("only the field names were wanted"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(rename_all = "PascalCase", default)]
    struct Sample {
        #[serde(deserialize_with = "nullable")]
        count: i64,
        #[serde(deserialize_with = "nullable_list")]
        names: Vec<String>,
        #[serde(deserialize_with = "nullable_map")]
        labels: BTreeMap<String, String>,
        #[serde(deserialize_with = "str_slice")]
        cmd: Option<Vec<String>>,
        #[serde(rename = "IDs", deserialize_with = "str_slice_list")]
        ids: Vec<String>,
    }

    #[test]
    fn nulls_read_as_empty_values_everywhere() {
        let s: Sample = serde_json::from_str(
            r#"{"Count":null,"Names":["a",null],"Labels":{"k":null},"Cmd":null,"IDs":null}"#,
        )
        .expect("parses");
        assert_eq!(
            s,
            Sample {
                names: vec!["a".into(), String::new()],
                labels: BTreeMap::from([("k".into(), String::new())]),
                ..Default::default()
            }
        );
    }

    #[test]
    fn command_lines_are_one_string_or_a_list() {
        let s: Sample = serde_json::from_str(r#"{"Cmd":"echo hi","IDs":["a","b"]}"#).expect("one");
        assert_eq!(s.cmd, Some(vec!["echo hi".to_string()]));
        assert_eq!(s.ids, ["a", "b"]);
        let s: Sample = serde_json::from_str(r#"{"Cmd":[]}"#).expect("empty list");
        assert_eq!(s.cmd, Some(vec![]), "an empty list is not null");
    }

    #[test]
    fn numbers_are_integers_as_go_reads_them() {
        assert!(serde_json::from_str::<Sample>(r#"{"Count":104857600}"#).is_ok());
        for bad in [r#"{"Count":1e8}"#, r#"{"Count":"100"}"#, r#"{"Count":1.5}"#] {
            assert!(serde_json::from_str::<Sample>(bad).is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<Sample>(r#"{"Cmd":5}"#).is_err());
    }

    #[test]
    fn field_names_are_the_wire_names() {
        assert_eq!(
            field_names::<Sample>(),
            ["Count", "Names", "Labels", "Cmd", "IDs"]
        );
        assert!(field_names::<String>().is_empty());
    }
}
