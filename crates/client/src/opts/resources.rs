//! Resource and device flags of `run`, `create`, `update` and `build`:
//! `--ulimit`, `--device`, `--blkio-weight-device`, `--device-read-bps`
//! and friends, `--gpus`, and the `KEY=VALUE` lists (`--sysctl`,
//! `--log-opt`, `--annotation`, `--storage-opt`, `--label-file`).

use std::collections::BTreeMap;

use cais_api::{DeviceMapping, DeviceRequest, ThrottleDevice, Ulimit, WeightDevice};

use super::{bytes, refuse, Result};

/// The limits `--ulimit` knows (setrlimit(2) resources without `RLIMIT_`).
const ULIMITS: &[&str] = &[
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// `--ulimit NAME=SOFT[:HARD]` (a missing hard limit is the soft one).
pub fn ulimit(spec: &str) -> Result<Ulimit> {
    let Some((name, limits)) = spec.split_once('=') else {
        refuse!("invalid ulimit argument: {spec}");
    };
    if !ULIMITS.contains(&name) {
        refuse!("invalid ulimit type: {name}");
    }
    let number = |s: &str| -> Result<i64> {
        match s.parse::<i64>() {
            Ok(n) => Ok(n),
            Err(_) => refuse!("invalid ulimit argument: {spec}"),
        }
    };
    let (soft, hard) = match limits.split_once(':') {
        Some((s, h)) => (number(s)?, number(h)?),
        None => {
            let n = number(limits)?;
            (n, n)
        }
    };
    // -1 is "unlimited" for either side.
    if soft > hard && hard != -1 {
        refuse!("ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}");
    }
    Ok(Ulimit {
        name: name.to_string(),
        soft,
        hard,
    })
}

/// A `--device` value: a host device `HOST[:CONTAINER][:PERMISSIONS]`, or
/// a Container Device Interface name `vendor.com/class=name`.
#[derive(Debug, Clone, PartialEq)]
pub enum Device {
    Node(DeviceMapping),
    Cdi(String),
}

fn is_permissions(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| matches!(c, 'r' | 'w' | 'm'))
}

/// `--device`: docker's grammar; the container path defaults to the host
/// one and the permissions to `rwm`.
pub fn device(spec: &str) -> Result<Device> {
    if !spec.starts_with('/') && spec.contains('=') && spec.contains('/') {
        return Ok(Device::Cdi(spec.to_string()));
    }
    let parts: Vec<&str> = spec.split(':').collect();
    let (host, container, perms) = match parts.as_slice() {
        [h] => (*h, *h, "rwm"),
        [h, p] if is_permissions(p) => (*h, *h, *p),
        [h, c] => (*h, *c, "rwm"),
        [h, c, p] => {
            if !is_permissions(p) {
                refuse!("invalid device mode: {p}");
            }
            (*h, *c, *p)
        }
        _ => refuse!("invalid device specification: {spec}"),
    };
    if host.is_empty() {
        refuse!("invalid device specification: {spec}");
    }
    if !container.starts_with('/') {
        refuse!("bad format for path: {container}");
    }
    Ok(Device::Node(DeviceMapping {
        path_on_host: host.to_string(),
        path_in_container: container.to_string(),
        cgroup_permissions: perms.to_string(),
    }))
}

/// `--device-cgroup-rule 'TYPE MAJOR:MINOR PERMS'` (devices.allow's
/// syntax, `*` for any number).
pub fn device_cgroup_rule(spec: &str) -> Result<String> {
    let fields: Vec<&str> = spec.split_whitespace().collect();
    let number = |s: &str| s == "*" || s.parse::<u32>().is_ok();
    let ok = match fields.as_slice() {
        [kind, nums, perms] => {
            matches!(*kind, "a" | "b" | "c")
                && nums
                    .split_once(':')
                    .is_some_and(|(ma, mi)| number(ma) && number(mi))
                && is_permissions(perms)
        }
        _ => false,
    };
    if !ok {
        refuse!("invalid device cgroup format '{spec}'");
    }
    Ok(spec.to_string())
}

/// `--blkio-weight-device PATH:WEIGHT` (10 to 1000, or 0).
pub fn weight_device(spec: &str) -> Result<WeightDevice> {
    let Some((path, weight)) = spec
        .rsplit_once(':')
        .filter(|(p, _)| p.starts_with("/dev/"))
    else {
        refuse!("bad format: {spec}");
    };
    match weight.parse::<u16>() {
        Ok(w) if w == 0 || (10..=1000).contains(&w) => Ok(WeightDevice {
            path: path.to_string(),
            weight: w,
        }),
        _ => refuse!("invalid weight for device: {spec}"),
    }
}

/// `--device-read-bps PATH:RATE` (a size: `1mb`) and, with `iops`,
/// `--device-read-iops PATH:NUMBER`.
pub fn throttle_device(spec: &str, iops: bool) -> Result<ThrottleDevice> {
    let Some((path, rate)) = spec
        .rsplit_once(':')
        .filter(|(p, _)| p.starts_with("/dev/"))
    else {
        refuse!("bad format: {spec}");
    };
    let rate = if iops {
        rate.parse::<u64>().ok()
    } else {
        bytes(rate).ok().and_then(|r| u64::try_from(r).ok())
    };
    match rate {
        Some(rate) => Ok(ThrottleDevice {
            path: path.to_string(),
            rate,
        }),
        None if iops => refuse!(
            "invalid rate for device: {spec}. The correct format is <device-path>:<number>. Number must be a positive integer"
        ),
        None => refuse!(
            "invalid rate for device: {spec}. The correct format is <device-path>:<number>[<unit>]. Number must be a positive integer. Unit is optional and can be kb, mb, or gb"
        ),
    }
}

/// `--gpus all|N|device=ID[,ID]|count=N[,capabilities=...]`: a request to
/// a device driver (the `nvidia` one in docker's CLI when none is named).
pub fn gpus(spec: &str) -> Result<DeviceRequest> {
    let mut req = DeviceRequest {
        capabilities: vec![vec!["gpu".to_string()]],
        ..DeviceRequest::default()
    };
    for field in spec.split(',').map(str::trim) {
        match field.split_once('=') {
            None if field == "all" => req.count = -1,
            None => match field.parse::<i64>() {
                Ok(n) => req.count = n,
                Err(_) => refuse!("unexpected key '{field}' in '{spec}'"),
            },
            Some(("count", n)) => {
                req.count = match n {
                    "all" => -1,
                    n => match n.parse() {
                        Ok(n) => n,
                        Err(_) => refuse!("invalid count ({n}): {spec}"),
                    },
                }
            }
            Some(("device", ids)) => {
                req.device_ids = ids.split(',').map(str::to_string).collect();
            }
            Some(("driver", d)) => req.driver = d.to_string(),
            Some(("capabilities", c)) => {
                req.capabilities = vec![c.split(',').map(str::to_string).collect()]
            }
            Some((k, _)) => refuse!("unexpected key '{k}' in '{spec}'"),
        }
    }
    if req.count != 0 && !req.device_ids.is_empty() {
        refuse!("cannot set both Count and DeviceIDs on device request");
    }
    Ok(req)
}

/// `KEY=VALUE` flags gathered into a map (`--sysctl`, `--log-opt`,
/// `--annotation`, `--storage-opt`); `what` names the flag in errors.
pub fn key_values(items: &[String], what: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for item in items {
        match item.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                out.insert(k.to_string(), v.to_string());
            }
            _ => refuse!("invalid {what} format: {item}, expected key=value"),
        }
    }
    Ok(out)
}

/// A `--label-file`: one `KEY[=VALUE]` a line; blank lines and lines
/// starting with `#` are skipped.
pub fn label_file(text: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.contains('\0') {
            refuse!("label file line {} holds a NUL byte", n + 1);
        }
        out.push(line.to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulimits_read_like_docker() {
        let u = ulimit("nofile=1024:2048").expect("accepted");
        assert_eq!((u.name.as_str(), u.soft, u.hard), ("nofile", 1024, 2048));
        let u = ulimit("nproc=64").expect("accepted");
        assert_eq!((u.soft, u.hard), (64, 64));
        let u = ulimit("core=-1").expect("accepted");
        assert_eq!((u.soft, u.hard), (-1, -1));
        for (bad, why) in [
            ("nofile", "invalid ulimit argument: nofile"),
            ("nosuch=1", "invalid ulimit type: nosuch"),
            ("nofile=a:b", "invalid ulimit argument: nofile=a:b"),
            (
                "nofile=20:10",
                "ulimit soft limit must be less than or equal to hard limit: 20 > 10",
            ),
        ] {
            assert_eq!(ulimit(bad).expect_err("refused").0, why, "{bad}");
        }
    }

    #[test]
    fn devices_read_like_docker() {
        let node = |h: &str, c: &str, p: &str| {
            Device::Node(DeviceMapping {
                path_on_host: h.into(),
                path_in_container: c.into(),
                cgroup_permissions: p.into(),
            })
        };
        assert_eq!(
            device("/dev/null").expect("accepted"),
            node("/dev/null", "/dev/null", "rwm")
        );
        assert_eq!(
            device("/dev/null:r").expect("accepted"),
            node("/dev/null", "/dev/null", "r")
        );
        assert_eq!(
            device("/dev/null:/dev/x").expect("accepted"),
            node("/dev/null", "/dev/x", "rwm")
        );
        assert_eq!(
            device("/dev/null:/dev/x:rw").expect("accepted"),
            node("/dev/null", "/dev/x", "rw")
        );
        assert_eq!(
            device("example.com/dev=zero").expect("accepted"),
            Device::Cdi("example.com/dev=zero".into())
        );
        assert!(device("/dev/null:/dev/x:q").is_err());
        assert!(device("/dev/null:x").is_err());
        assert!(device("a:b:c:d").is_err());
        assert!(device("").is_err());
    }

    #[test]
    fn cgroup_rules_and_block_devices() {
        assert!(device_cgroup_rule("c 1:3 rwm").is_ok());
        assert!(device_cgroup_rule("b *:* r").is_ok());
        for bad in ["c 1:3", "x 1:3 r", "c 1-3 r", "c 1:3 q", ""] {
            assert!(device_cgroup_rule(bad).is_err(), "{bad}");
        }
        assert_eq!(weight_device("/dev/sda:500").expect("accepted").weight, 500);
        assert!(weight_device("/dev/sda:5").is_err());
        assert!(weight_device("sda:500").is_err());
        assert_eq!(
            throttle_device("/dev/sda:1mb", false)
                .expect("accepted")
                .rate,
            1 << 20
        );
        assert_eq!(
            throttle_device("/dev/sda:100", true)
                .expect("accepted")
                .rate,
            100
        );
        assert!(throttle_device("/dev/sda:1mb", true).is_err());
        assert!(throttle_device("/dev/sda", false).is_err());
    }

    #[test]
    fn gpus_key_values_and_label_files() {
        assert_eq!(gpus("all").expect("accepted").count, -1);
        assert_eq!(gpus("2").expect("accepted").count, 2);
        assert_eq!(
            gpus("device=0").expect("accepted").device_ids,
            vec!["0".to_string()]
        );
        assert!(gpus("nosuch=1").is_err());
        let m = key_values(&["a=b".into(), "c=".into()], "sysctl").expect("accepted");
        assert_eq!(m["a"], "b");
        assert_eq!(m["c"], "");
        assert!(key_values(&["novalue".into()], "sysctl").is_err());
        assert!(key_values(&["=x".into()], "sysctl").is_err());
        assert_eq!(
            label_file("# c\n\na=1\n  b\n").expect("accepted"),
            vec!["a=1".to_string(), "b".to_string()]
        );
    }
}
