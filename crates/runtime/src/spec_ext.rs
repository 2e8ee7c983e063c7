//! Reading config.json and process JSON where the `oci-spec` crate (0.8)
//! and runtime-spec 1.3 disagree.
//!
//! Two kinds of gap: names the crate spells differently (two of the
//! `process.scheduler.flags`, config.md "scheduler": the crate expects
//! `SCHED_RESET_ON_FORK` and `SCHED_FLAG_D_L_OVERRUN` and would refuse the
//! spec's own names), and fields it does not have at all, which serde
//! would silently drop (`mounts[].uidMappings`/`gidMappings`, config.md
//! "mounts"; `linux.intelRdt.schemata` and `enableMonitoring`,
//! config-linux.md "IntelRdt"). The first are rewritten to the crate's
//! names before it parses the document; the second are read here into
//! [`Extensions`].

use oci_spec::runtime::{LinuxIdMapping, Process, Spec};
use serde::Deserialize;
use serde_json::Value;

/// Spec names of scheduler flags the crate spells differently, and its spelling.
const SCHED_FLAG_SPELLINGS: [(&str, &str); 2] = [
    ("SCHED_FLAG_RESET_ON_FORK", "SCHED_RESET_ON_FORK"),
    ("SCHED_FLAG_DL_OVERRUN", "SCHED_FLAG_D_L_OVERRUN"),
];

/// What config.json holds beyond what [`Spec`] keeps.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Extensions {
    /// One entry per element of `mounts`, in order: its id mappings, if any.
    pub mount_idmaps: Vec<Option<MountIdmap>>,
    /// `linux.intelRdt.schemata`: lines written to the `schemata` file last.
    pub rdt_schemata: Vec<String>,
    /// `linux.intelRdt.enableMonitoring`.
    pub rdt_monitoring: bool,
}

/// A mount's `uidMappings` and `gidMappings`: on-disk ids (the
/// `containerID` column) are seen through the mount as `hostID` ones, the
/// way a user namespace with these maps would show them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MountIdmap {
    pub uid: Vec<LinuxIdMapping>,
    pub gid: Vec<LinuxIdMapping>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawMount {
    uid_mappings: Option<Vec<LinuxIdMapping>>,
    gid_mappings: Option<Vec<LinuxIdMapping>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawRdt {
    schemata: Option<Vec<String>>,
    enable_monitoring: Option<bool>,
}

/// Parses a config.json document. Errors are messages for
/// `Error::InvalidConfig`.
pub fn spec_from_json(data: &[u8]) -> Result<(Spec, Extensions), String> {
    let mut doc: Value = serde_json::from_slice(data).map_err(|e| e.to_string())?;
    if let Some(process) = doc.get_mut("process") {
        respell_sched_flags(process);
    }
    let ext = extensions(&doc)?;
    let spec: Spec = serde_json::from_value(doc).map_err(|e| e.to_string())?;
    Ok((spec, ext))
}

/// Parses a process JSON document (`exec --process`).
pub fn process_from_json(data: &[u8]) -> Result<Process, String> {
    let mut doc: Value = serde_json::from_slice(data).map_err(|e| e.to_string())?;
    respell_sched_flags(&mut doc);
    serde_json::from_value(doc).map_err(|e| e.to_string())
}

fn respell_sched_flags(process: &mut Value) {
    let Some(flags) = process
        .pointer_mut("/scheduler/flags")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for flag in flags {
        if let Some((_, crate_name)) = SCHED_FLAG_SPELLINGS
            .iter()
            .find(|(spec_name, _)| flag.as_str() == Some(spec_name))
        {
            *flag = Value::from(*crate_name);
        }
    }
}

fn extensions(doc: &Value) -> Result<Extensions, String> {
    let mut ext = Extensions::default();
    if let Some(mounts) = doc.get("mounts").and_then(Value::as_array) {
        for (i, m) in mounts.iter().enumerate() {
            let raw: RawMount =
                serde_json::from_value(m.clone()).map_err(|e| format!("mounts[{i}]: {e}"))?;
            ext.mount_idmaps
                .push(match (raw.uid_mappings, raw.gid_mappings) {
                    (None, None) => None,
                    (Some(uid), Some(gid)) => Some(MountIdmap { uid, gid }),
                    _ => {
                        return Err(format!(
                            "mounts[{i}]: uidMappings and gidMappings must be given together"
                        ))
                    }
                });
        }
    }
    if let Some(rdt) = doc.pointer("/linux/intelRdt") {
        let raw: RawRdt =
            serde_json::from_value(rdt.clone()).map_err(|e| format!("linux.intelRdt: {e}"))?;
        ext.rdt_schemata = raw.schemata.unwrap_or_default();
        ext.rdt_monitoring = raw.enable_monitoring.unwrap_or(false);
    }
    Ok(ext)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxSchedulerFlag;

    fn spec_with(process_extra: Value, linux_extra: Value, mounts: Value) -> Vec<u8> {
        let mut doc = serde_json::json!({
            "ociVersion": "1.3.0",
            "root": {"path": "rootfs"},
            "process": {"args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
            "linux": {},
            "mounts": mounts
        });
        for (k, v) in process_extra.as_object().expect("object") {
            doc["process"][k] = v.clone();
        }
        for (k, v) in linux_extra.as_object().expect("object") {
            doc["linux"][k] = v.clone();
        }
        serde_json::to_vec(&doc).expect("json")
    }

    #[test]
    fn every_scheduler_flag_of_the_spec_parses() {
        let spec_names = [
            "SCHED_FLAG_RESET_ON_FORK",
            "SCHED_FLAG_RECLAIM",
            "SCHED_FLAG_DL_OVERRUN",
            "SCHED_FLAG_KEEP_POLICY",
            "SCHED_FLAG_KEEP_PARAMS",
            "SCHED_FLAG_UTIL_CLAMP_MIN",
            "SCHED_FLAG_UTIL_CLAMP_MAX",
        ];
        let data = spec_with(
            serde_json::json!({"scheduler": {"policy": "SCHED_FIFO", "priority": 5, "flags": spec_names}}),
            serde_json::json!({}),
            serde_json::json!([]),
        );
        let (spec, _) = spec_from_json(&data).expect("spec names parse");
        let sched = spec
            .process()
            .as_ref()
            .and_then(|p| p.scheduler().clone())
            .expect("scheduler kept");
        let flags = sched.flags().clone().expect("flags");
        assert_eq!(flags.len(), 7);
        assert_eq!(flags[0], LinuxSchedulerFlag::SchedResetOnFork);
        assert_eq!(flags[2], LinuxSchedulerFlag::SchedFlagDLOverrun);
        // What the crate writes back (the saved copy) parses again.
        let again = serde_json::to_vec(&spec).expect("serialize");
        let (back, _) = spec_from_json(&again).expect("round trip");
        assert_eq!(back.process(), spec.process());
        // And a process document for exec.
        let p = serde_json::json!({"args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0},
            "scheduler": {"policy": "SCHED_BATCH", "flags": ["SCHED_FLAG_RESET_ON_FORK"]}});
        let process = process_from_json(&serde_json::to_vec(&p).expect("json")).expect("process");
        assert!(process.scheduler().is_some());
        assert!(spec_from_json(
            &spec_with(
                serde_json::json!({"scheduler": {"policy": "SCHED_FIFO", "flags": ["SCHED_FLAG_BOGUS"]}}),
                serde_json::json!({}),
                serde_json::json!([])
            )
        )
        .is_err());
    }

    #[test]
    fn mount_idmaps_and_rdt_schemata_are_kept() {
        let map = serde_json::json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
        let data = spec_with(
            serde_json::json!({}),
            serde_json::json!({"intelRdt": {"closID": "c", "schemata": ["L3:0=f", "MB:0=50"], "enableMonitoring": true}}),
            serde_json::json!([
                {"destination": "/a", "type": "bind", "source": "/x", "options": ["bind", "idmap"],
                 "uidMappings": map, "gidMappings": map},
                {"destination": "/b", "type": "tmpfs", "source": "tmpfs"}
            ]),
        );
        let (spec, ext) = spec_from_json(&data).expect("parse");
        assert_eq!(spec.mounts().as_ref().map(Vec::len), Some(2));
        assert_eq!(ext.mount_idmaps.len(), 2);
        let idmap = ext.mount_idmaps[0]
            .as_ref()
            .expect("first mount is id-mapped");
        assert_eq!(idmap.uid[0].host_id(), 1000);
        assert_eq!(idmap.gid[0].container_id(), 0);
        assert!(ext.mount_idmaps[1].is_none());
        assert_eq!(ext.rdt_schemata, ["L3:0=f", "MB:0=50"]);
        assert!(ext.rdt_monitoring);

        let half = spec_with(
            serde_json::json!({}),
            serde_json::json!({}),
            serde_json::json!([{"destination": "/a", "source": "/x", "options": ["bind"], "uidMappings": map}]),
        );
        let err = spec_from_json(&half).expect_err("uid without gid");
        assert!(err.contains("must be given together"), "{err}");
    }
}
