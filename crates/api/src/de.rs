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
//! - Field names match regardless of case, as Go's `encoding/json`
//!   matches them (`from_slice`): the Docker SDK for Python sends
//!   `CPURealtimePeriod` for `CpuRealtimePeriod`. An exact match wins.
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

/// Reads a request body as dockerd's Go decoding reads it: besides the
/// field rules above, an object key that names no field exactly is taken
/// for the field it names regardless of ASCII case.
pub fn from_slice<T: DeserializeOwned>(body: &[u8]) -> Result<T, serde_json::Error> {
    let v: serde_json::Value = serde_json::from_slice(body)?;
    T::deserialize(GoValue(v))
}

/// A JSON value whose structs take their field names in any case.
pub(crate) struct GoValue(pub(crate) serde_json::Value);

impl GoValue {
    /// `map` with every key that is no field but a field in another case
    /// renamed to that field (unless the field is there too).
    fn fold_keys(
        map: serde_json::Map<String, serde_json::Value>,
        fields: &[&str],
    ) -> serde_json::Map<String, serde_json::Value> {
        let exact: Vec<String> = map
            .keys()
            .filter(|k| fields.contains(&k.as_str()))
            .cloned()
            .collect();
        map.into_iter()
            .map(|(k, v)| {
                if fields.contains(&k.as_str()) {
                    return (k, v);
                }
                match fields
                    .iter()
                    .find(|f| f.eq_ignore_ascii_case(&k) && !exact.iter().any(|e| e == *f))
                {
                    Some(f) => (f.to_string(), v),
                    None => (k, v),
                }
            })
            .collect()
    }
}

impl<'de> Deserializer<'de> for GoValue {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            serde_json::Value::Object(m) => visitor.visit_map(GoMap {
                iter: m.into_iter(),
                value: None,
            }),
            serde_json::Value::Array(a) => visitor.visit_seq(GoSeq(a.into_iter())),
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            serde_json::Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self.0 {
            serde_json::Value::Object(m) => visitor.visit_map(GoMap {
                iter: Self::fold_keys(m, fields).into_iter(),
                value: None,
            }),
            other => GoValue(other).deserialize_any(visitor),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_enum(name, variants, visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple
        tuple_struct map identifier ignored_any
    }
}

struct GoMap {
    iter: serde_json::map::IntoIter,
    value: Option<serde_json::Value>,
}

impl<'de> de::MapAccess<'de> for GoMap {
    type Error = serde_json::Error;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        match self.iter.next() {
            Some((k, v)) => {
                self.value = Some(v);
                seed.deserialize(serde_json::Value::String(k)).map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        match self.value.take() {
            Some(v) => seed.deserialize(GoValue(v)),
            None => Err(de::Error::custom(
                "a map value was asked for before its key",
            )),
        }
    }
}

struct GoSeq(std::vec::IntoIter<serde_json::Value>);

impl<'de> de::SeqAccess<'de> for GoSeq {
    type Error = serde_json::Error;

    fn next_element_seed<T: de::DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Self::Error> {
        self.0
            .next()
            .map(|v| seed.deserialize(GoValue(v)))
            .transpose()
    }
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
    fn field_names_match_in_any_case_and_an_exact_name_wins() {
        let s: Sample = from_slice(br#"{"COUNT":5,"names":["a"],"LABELS":{"k":"v"},"ids":"x"}"#)
            .expect("parses");
        assert_eq!(s.count, 5);
        assert_eq!(s.names, ["a"]);
        assert_eq!(s.labels["k"], "v");
        assert_eq!(s.ids, ["x"]);
        let s: Sample = from_slice(br#"{"count":1,"Count":2}"#).expect("parses");
        assert_eq!(s.count, 2, "the exact name wins");
        // Every other rule holds through it.
        let s: Sample =
            from_slice(br#"{"Count":null,"Names":["a",null],"Cmd":"echo hi"}"#).expect("parses");
        assert_eq!(s.names, ["a", ""]);
        assert_eq!(s.cmd, Some(vec!["echo hi".to_string()]));
        for bad in [&br#"{"Count":1e8}"#[..], br#"{"count":"100"}"#, b"{"] {
            assert!(
                from_slice::<Sample>(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
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
