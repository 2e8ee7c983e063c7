//! Ports: `-p/--publish` and `--expose`.

use std::net::IpAddr;

use cais_api::PortBinding;

use super::{refuse, Error, Result};

/// A port range `START[-END]` with `START <= END`, both in 1..=65535.
fn parse_range(s: &str, what: &str) -> Result<(u16, u16)> {
    let port = |p: &str| -> Result<u16> {
        match p.parse::<u16>() {
            Ok(n) if n > 0 => Ok(n),
            _ => refuse!("invalid {what}: {s:?} (ports are 1 to 65535)"),
        }
    };
    let (start, end) = match s.split_once('-') {
        Some((a, b)) => (port(a)?, port(b)?),
        None => {
            let p = port(s)?;
            (p, p)
        }
    };
    if end < start {
        refuse!("invalid {what}: {s:?} (the range ends before it starts)");
    }
    Ok((start, end))
}

/// `tcp` (also when absent) or `udp`.
fn parse_proto(proto: &str, spec: &str) -> Result<&'static str> {
    match proto.to_ascii_lowercase().as_str() {
        "tcp" => Ok("tcp"),
        "udp" => Ok("udp"),
        "sctp" => refuse!("invalid port {spec:?}: sctp is not supported (tcp or udp)"),
        _ => refuse!("invalid protocol {proto:?} in {spec:?} (tcp or udp)"),
    }
}

/// One `-p/--publish` value, in any of docker's forms:
/// `[IP:][HOSTPORT:]CONTAINERPORT[/PROTO]`, where ports may be ranges
/// (`8000-8010:80-90`: pairwise; `8000-8010:80`: any free host port of the
/// range) and an IPv6 address is written in brackets (`[::1]:8080:80`).
/// Returns the container ports (`80/tcp`) with their host bindings; an
/// empty host port means "any free port".
pub fn publish(spec: &str) -> Result<Vec<(String, PortBinding)>> {
    let (addr, proto) = match spec.rsplit_once('/') {
        Some((a, p)) => (a, parse_proto(p, spec)?),
        None => (spec, "tcp"),
    };
    // Split off the host address: bracketed (IPv6) or the part before the
    // second-to-last colon.
    let (ip, rest) = if let Some(after) = addr.strip_prefix('[') {
        let (ip, rest) = after
            .split_once(']')
            .ok_or_else(|| Error(format!("invalid port {spec:?}: unclosed '['")))?;
        let rest = rest.strip_prefix(':').ok_or_else(|| {
            Error(format!(
                "invalid port {spec:?}: expected ':' after the address"
            ))
        })?;
        (ip, rest)
    } else {
        match addr.matches(':').count() {
            0 | 1 => ("", addr),
            2 => addr.split_once(':').expect("two colons"),
            _ => refuse!("invalid port {spec:?}: an IPv6 host address must be in brackets"),
        }
    };
    if !ip.is_empty() && ip.parse::<IpAddr>().is_err() {
        refuse!("invalid host address {ip:?} in {spec:?}");
    }
    let (host, container) = match rest.split_once(':') {
        Some((h, c)) => (h, c),
        None => ("", rest),
    };
    if container.is_empty() {
        refuse!("invalid port {spec:?}: no container port");
    }
    let (c_start, c_end) = parse_range(container, "container port")?;
    let host_range = if host.is_empty() {
        None
    } else {
        Some(parse_range(host, "host port")?)
    };
    let binding = |host_port: String| PortBinding {
        host_ip: ip.to_string(),
        host_port,
    };
    let key = |p: u16| format!("{p}/{proto}");
    match host_range {
        None => Ok((c_start..=c_end)
            .map(|p| (key(p), binding(String::new())))
            .collect()),
        Some((h_start, h_end)) if h_end - h_start == c_end - c_start => Ok((c_start..=c_end)
            .zip(h_start..=h_end)
            .map(|(c, h)| (key(c), binding(h.to_string())))
            .collect()),
        // One container port, a host range: the daemon picks a free one.
        Some(_) if c_start == c_end => Ok(vec![(key(c_start), binding(host.to_string()))]),
        Some(_) => refuse!(
            "invalid ranges in {spec:?}: host ports {host} and container ports {container} \
             differ in size"
        ),
    }
}

/// One `--expose` value: `PORT[-END][/PROTO]` → `80/tcp`, ...
pub fn expose(spec: &str) -> Result<Vec<String>> {
    let (ports, proto) = match spec.rsplit_once('/') {
        Some((a, p)) => (a, parse_proto(p, spec)?),
        None => (spec, "tcp"),
    };
    let (start, end) = parse_range(ports, "port")?;
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

/// `80` or `80/udp` as a port key (`80/tcp`), for `cais port C PORT`.
pub fn port_key(spec: &str) -> Result<String> {
    let keys = expose(spec)?;
    match keys.as_slice() {
        [k] => Ok(k.clone()),
        _ => refuse!("invalid port {spec:?}: one port, not a range"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(ip: &str, port: &str) -> PortBinding {
        PortBinding {
            host_ip: ip.into(),
            host_port: port.into(),
        }
    }

    /// (container port, host address, host port).
    type Want = &'static [(&'static str, &'static str, &'static str)];

    #[test]
    fn publish_specs_parse_like_docker() {
        let cases: &[(&str, Want)] = &[
            ("80", &[("80/tcp", "", "")]),
            ("8080:80", &[("80/tcp", "", "8080")]),
            ("127.0.0.1:8080:80", &[("80/tcp", "127.0.0.1", "8080")]),
            ("127.0.0.1::80", &[("80/tcp", "127.0.0.1", "")]),
            ("53:53/udp", &[("53/udp", "", "53")]),
            ("5353:53/UDP", &[("53/udp", "", "5353")]),
            ("80/tcp", &[("80/tcp", "", "")]),
            ("[::1]:8080:80", &[("80/tcp", "::1", "8080")]),
            ("[::]::80", &[("80/tcp", "::", "")]),
            (
                "8000-8002:80-82",
                &[
                    ("80/tcp", "", "8000"),
                    ("81/tcp", "", "8001"),
                    ("82/tcp", "", "8002"),
                ],
            ),
            (
                "0.0.0.0:9000-9001:90-91/udp",
                &[("90/udp", "0.0.0.0", "9000"), ("91/udp", "0.0.0.0", "9001")],
            ),
            ("80-81", &[("80/tcp", "", ""), ("81/tcp", "", "")]),
            ("8000-8010:80", &[("80/tcp", "", "8000-8010")]),
            ("65535:1", &[("1/tcp", "", "65535")]),
        ];
        for (spec, want) in cases {
            let got = publish(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
            let want: Vec<(String, PortBinding)> = want
                .iter()
                .map(|(k, ip, port)| (k.to_string(), b(ip, port)))
                .collect();
            assert_eq!(got, want, "{spec}");
        }
    }

    #[test]
    fn bad_publish_specs_are_refused_with_a_reason() {
        let cases = [
            ("", "no container port"),
            ("8080:", "no container port"),
            ("x:80", "invalid host port"),
            ("8080:y", "invalid container port"),
            ("0:80", "invalid host port"),
            ("8080:0", "invalid container port"),
            ("8080:65536", "invalid container port"),
            ("70000:80", "invalid host port"),
            ("8080:80/icmp", "invalid protocol"),
            ("8080:80/", "invalid protocol"),
            ("8080:80/sctp", "sctp is not supported"),
            ("8000-8010:80-85", "differ in size"),
            ("8080:80-81", "differ in size"),
            ("90-80", "ends before it starts"),
            ("8080-:80", "invalid host port"),
            ("300.0.0.1:8080:80", "invalid host address"),
            ("localhost:8080:80", "invalid host address"),
            ("::1:8080:80", "must be in brackets"),
            ("[::1:8080:80", "unclosed"),
            ("[::1]8080:80", "expected ':'"),
        ];
        for (spec, reason) in cases {
            match publish(spec) {
                Ok(v) => panic!("{spec:?} parsed as {v:?}"),
                Err(e) => {
                    let msg = format!("{e}");
                    assert!(msg.contains(reason), "{spec:?}: {msg:?} lacks {reason:?}");
                }
            }
        }
    }

    #[test]
    fn expose_specs_parse() {
        assert_eq!(expose("80").expect("80"), ["80/tcp"]);
        assert_eq!(expose("53-54/udp").expect("range"), ["53/udp", "54/udp"]);
        for bad in ["", "x", "0", "80/xyz", "81-80"] {
            assert!(expose(bad).is_err(), "{bad:?}");
        }
        assert_eq!(port_key("80").expect("80"), "80/tcp");
        assert!(port_key("80-81").is_err());
    }
}
