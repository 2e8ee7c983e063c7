//! The request types against the engine API's published schema
//! (`swagger-fields.txt`, generated from moby's `api/swagger.yaml`): every
//! field the schema defines is a field of the Rust type, and reads `null`
//! as "not given", as dockerd's Go decoding does.

use std::collections::BTreeMap;

use cais_api::*;
use serde::de::DeserializeOwned;

/// Type name → field names, from the committed list.
fn schema() -> BTreeMap<String, Vec<String>> {
    include_str!("swagger-fields.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (name, fields) = l.split_once(':').expect("`Type: fields`");
            (
                name.to_string(),
                fields.split_whitespace().map(str::to_string).collect(),
            )
        })
        .collect()
}

/// Checks one type; returns what is wrong with it.
fn check<T: DeserializeOwned>(name: &str, schema: &BTreeMap<String, Vec<String>>) -> Vec<String> {
    let mut problems = Vec::new();
    let wanted = schema
        .get(name)
        .unwrap_or_else(|| panic!("{name} is not in swagger-fields.txt"));
    let have = field_names::<T>();
    assert!(!have.is_empty(), "{name} is not a plain struct");
    for f in wanted {
        if !have.contains(&f.as_str()) {
            problems.push(format!("{name}.{f} is missing"));
        }
    }
    // Every field null at once, and each alone.
    let all: serde_json::Map<String, serde_json::Value> = wanted
        .iter()
        .map(|f| (f.clone(), serde_json::Value::Null))
        .collect();
    if let Err(e) = serde_json::from_value::<T>(serde_json::Value::Object(all)) {
        problems.push(format!("{name} with every field null: {e}"));
    }
    for f in wanted {
        let one = serde_json::json!({ f.as_str(): null });
        if let Err(e) = serde_json::from_value::<T>(one) {
            problems.push(format!("{name}.{f} = null: {e}"));
        }
    }
    problems
}

#[test]
fn every_schema_field_is_in_the_types_and_reads_null() {
    let s = schema();
    let mut problems = Vec::new();
    problems.extend(check::<ContainerConfig>("ContainerConfig", &s));
    problems.extend(check::<HostConfig>("HostConfig", &s));
    problems.extend(check::<HealthConfig>("HealthConfig", &s));
    problems.extend(check::<RestartPolicy>("RestartPolicy", &s));
    problems.extend(check::<LogConfig>("LogConfig", &s));
    problems.extend(check::<Mount>("Mount", &s));
    problems.extend(check::<BindOptions>("BindOptions", &s));
    problems.extend(check::<VolumeOptions>("VolumeOptions", &s));
    problems.extend(check::<Driver>("Driver", &s));
    problems.extend(check::<ImageOptions>("ImageOptions", &s));
    problems.extend(check::<TmpfsOptions>("TmpfsOptions", &s));
    problems.extend(check::<WeightDevice>("WeightDevice", &s));
    problems.extend(check::<ThrottleDevice>("ThrottleDevice", &s));
    problems.extend(check::<DeviceMapping>("DeviceMapping", &s));
    problems.extend(check::<DeviceRequest>("DeviceRequest", &s));
    problems.extend(check::<Ulimit>("Ulimit", &s));
    problems.extend(check::<PortBinding>("PortBinding", &s));
    problems.extend(check::<NetworkingConfig>("NetworkingConfig", &s));
    problems.extend(check::<EndpointSettings>("EndpointSettings", &s));
    problems.extend(check::<EndpointIpamConfig>("EndpointIpamConfig", &s));
    problems.extend(check::<ContainerUpdate>("ContainerUpdate", &s));
    problems.extend(check::<ExecConfig>("ExecConfig", &s));
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn the_check_catches_a_missing_field() {
    // A type with a field fewer than the schema's must fail the check, so
    // the test above cannot pass vacuously.
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    #[allow(dead_code, reason = "only its field names are read")]
    struct Partial {
        name: String,
    }
    let problems = check::<Partial>("RestartPolicy", &schema());
    assert!(
        problems
            .iter()
            .any(|p| p == "RestartPolicy.MaximumRetryCount is missing"),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("= null")),
        "{problems:?}"
    );
}

#[test]
fn a_create_body_with_nulls_everywhere_parses() {
    // What SDKs send: every optional field present, most of them null.
    let s = schema();
    let mut body = serde_json::Map::new();
    for f in &s["ContainerConfig"] {
        body.insert(f.clone(), serde_json::Value::Null);
    }
    body.insert("Image".into(), "busybox".into());
    let host: serde_json::Map<String, serde_json::Value> = s["HostConfig"]
        .iter()
        .map(|f| (f.clone(), serde_json::Value::Null))
        .collect();
    body.insert("HostConfig".into(), host.into());
    body.insert("NetworkingConfig".into(), serde_json::Value::Null);
    let req: CreateRequest =
        serde_json::from_value(serde_json::Value::Object(body)).expect("parses");
    assert_eq!(req.config.image, "busybox");
    assert_eq!(req.host_config, HostConfig::default());
    // Integers where Go takes integers (memory in bytes), and a value-less
    // environment entry kept as it is.
    let req: CreateRequest = serde_json::from_str(
        r#"{"Image":"busybox","Env":["FOO","BAR=1"],"HostConfig":{"Memory":67108864,"MemorySwap":-1,"MemorySwappiness":null,"OomKillDisable":null}}"#,
    )
    .expect("parses");
    assert_eq!(req.host_config.memory, 64 << 20);
    assert_eq!(req.host_config.memory_swap, -1);
    assert_eq!(req.config.env, ["FOO", "BAR=1"]);
}
