//! `POST /build`: the classic builder's protocol, the one `docker build`
//! speaks without buildx or with `DOCKER_BUILDKIT=0`, and docker-compose
//! 1.29 always. BuildKit's protocol is `handlers::buildkit`.
//!
//! The request body is a tar of the build context (plain, gzip or zstd),
//! spooled to a file and handed to `crate::build` with the parameters and
//! the credentials of `X-Registry-Config`.
//!
//! Until the first line of output, a failure (a bad context or Dockerfile,
//! an unknown target) is an ordinary HTTP error, as docker answers it. After
//! that the response is committed (200) and a failure is the last JSON line,
//! `{"errorDetail":{"message":...},"error":...}`, which the docker CLI
//! prints before exiting non-zero (with the code of a failed `RUN`).
//!
//! Query parameters used: `t` (repeated), `dockerfile`, `buildargs`,
//! `labels`, `target`, `nocache`, `pull`, `q`, `platform` (only this
//! host's), `cachefrom` (only those images' steps are reused),
//! `networkmode` (`host`, `default` and `bridge` run `RUN` in the host's
//! network, `none` in one of its own, a user network's name in a sandbox on
//! it with the embedded DNS), `extrahosts` (repeated `name:ip`, lines of
//! `RUN`'s /etc/hosts). Accepted and ignored, because they have no meaning
//! here: `rm` and `forcerm` (no intermediate containers are kept either
//! way), `shmsize`, `cpu*`/`memory*`/`ulimits`, `outputs`, `session`.
//! Refused: `squash` (as dockerd outside experimental mode), `version=2`
//! (BuildKit) and `remote` (a URL context). `POST /build/prune` (`docker
//! builder prune`) empties the step cache.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use cais_image::Reference;
use cais_registry::client::Credentials;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use tokio::sync::mpsc;

use crate::build::{invalid, BuildNetwork, Msg, Params};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::http::plumbing::{
    all_values, blocking, body_to_file, channel_body, json, streaming, Body, Query,
};
use crate::networks::netconf::extra_host_lines;

/// A JSON object of strings (`buildargs`, `labels`). A `null` value is a
/// build argument named without a value whose variable was not set on the
/// client: it is left out, so the Dockerfile's default applies.
fn string_map(query: &Query, key: &str) -> Result<BTreeMap<String, String>> {
    let Some(raw) = query.get(key).filter(|v| !v.is_empty()) else {
        return Ok(BTreeMap::new());
    };
    let v: BTreeMap<String, Option<String>> =
        serde_json::from_str(raw).map_err(|e| invalid(format!("invalid {key}: {e}: {raw}")))?;
    Ok(v.into_iter().filter_map(|(k, v)| Some((k, v?))).collect())
}

/// A build request's parameters, decoded and checked.
fn parse_params(raw_query: &str) -> Result<Params> {
    let query = Query::parse(Some(raw_query));
    if query.get("version") == Some("2") {
        return Err(invalid(
            "POST /build serves the classic builder (version 1); BuildKit clients use /session and /grpc",
        ));
    }
    if query.get("remote").is_some_and(|r| !r.is_empty()) {
        return Err(invalid(
            "remote build contexts (a URL or git repository) are not supported: send the context as a tar",
        ));
    }
    if query.flag("squash") {
        // dockerd's answer when it is not in experimental mode, as cais
        // never is: squashed images are not made.
        return Err(invalid("squash is only supported with experimental mode"));
    }
    if let Some(p) = query.get("platform").filter(|p| !p.is_empty()) {
        let want: cais_image::Platform = p.parse().map_err(|_: cais_image::oci::Error| {
            invalid(format!(
                "{p:?}: unknown operating system or architecture: invalid argument"
            ))
        })?;
        let host = cais_image::archive::host_platform();
        if want.os != host.os
            || (!want.architecture.is_empty() && want.architecture != host.architecture)
        {
            return Err(invalid(format!(
                "cannot build for platform {p}: only {}/{} is supported",
                host.os, host.architecture
            )));
        }
    }
    let mut tags = Vec::new();
    for t in all_values(raw_query, "t") {
        let r: Reference = t.parse().map_err(|e: cais_image::oci::Error| {
            invalid(format!("invalid tag {t:?}: {}", crate::error::chain(&e)))
        })?;
        if r.digest.is_some() {
            return Err(invalid(format!(
                "invalid tag {t:?}: a tag cannot name a digest"
            )));
        }
        tags.push(t);
    }
    let build_args = string_map(&query, "buildargs")?;
    let source_date_epoch = build_args
        .get("SOURCE_DATE_EPOCH")
        .map(|v| {
            v.parse::<i64>().map_err(|_| {
                invalid(format!(
                    "invalid SOURCE_DATE_EPOCH {v:?}: not a number of seconds"
                ))
            })
        })
        .transpose()?;
    let dockerfile = query
        .get("dockerfile")
        .filter(|d| !d.is_empty())
        .map(str::to_string);
    let cache_from = match query.get("cachefrom").filter(|c| !c.is_empty()) {
        Some(raw) => Some(
            serde_json::from_str::<Vec<String>>(raw)
                .map_err(|e| invalid(format!("invalid cachefrom: {e}: {raw}")))?,
        ),
        None => None,
    };
    let network = match query.get("networkmode").unwrap_or_default() {
        "" | "default" | "bridge" | "host" => BuildNetwork::Host,
        "none" => BuildNetwork::None,
        m if m.starts_with("container:") => {
            return Err(invalid(format!(
                "network mode {m:?} is not supported for builds: give host, none or a user-defined network"
            )))
        }
        m => BuildNetwork::Network(m.to_string()),
    };
    let extra_hosts = all_values(raw_query, "extrahosts");
    // Checked now, so a bad entry is a 400 before the build starts.
    extra_host_lines(&extra_hosts, None)?;
    Ok(Params {
        tags,
        dockerfile,
        build_args,
        labels: string_map(&query, "labels")?,
        target: query
            .get("target")
            .filter(|t| !t.is_empty())
            .map(str::to_string),
        no_cache: query.flag("nocache"),
        pull: query.flag("pull"),
        quiet: query.flag("q"),
        source_date_epoch,
        cache_from,
        network,
        extra_hosts,
    })
}

/// Credentials by registry from `X-Registry-Config`: base64 of a JSON
/// object `{"<registry>": {"username", "password"} | {"auth": base64("user:pass")}}`.
fn registry_config(header: Option<&str>) -> BTreeMap<String, Credentials> {
    use base64::Engine as _;
    let Some(raw) = header.map(str::trim).filter(|h| !h.is_empty()) else {
        return BTreeMap::new();
    };
    let decoded = [
        &base64::engine::general_purpose::URL_SAFE,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        &base64::engine::general_purpose::STANDARD,
    ]
    .iter()
    .find_map(|e| {
        e.decode(raw.trim_end_matches('='))
            .ok()
            .or_else(|| e.decode(raw).ok())
    });
    let Some(map) = decoded
        .and_then(|b| serde_json::from_slice::<BTreeMap<String, serde_json::Value>>(&b).ok())
    else {
        return BTreeMap::new();
    };
    let mut out = BTreeMap::new();
    for (registry, v) in map {
        let mut username = v["username"].as_str().unwrap_or_default().to_string();
        let mut password = v["password"].as_str().unwrap_or_default().to_string();
        if username.is_empty() {
            if let Some((u, p)) = v["auth"]
                .as_str()
                .and_then(|a| base64::engine::general_purpose::STANDARD.decode(a).ok())
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| {
                    s.split_once(':')
                        .map(|(u, p)| (u.to_string(), p.to_string()))
                })
            {
                (username, password) = (u, p);
            }
        }
        if !username.is_empty() {
            out.insert(
                cais_registry::client::reference::normalize_registry(&registry),
                Credentials { username, password },
            );
        }
    }
    out
}

/// Where a build's `RUN` steps run, and the sandbox made for a user
/// network (to remove when the build ends).
fn run_network(
    engine: &Engine,
    mode: &BuildNetwork,
    extra_hosts: &[String],
) -> Result<(
    cais_build::RunNetwork,
    Option<crate::networks::wiring::Sandbox>,
)> {
    let with_extra = |base: String| -> Result<Option<String>> {
        if extra_hosts.is_empty() {
            return Ok(None);
        }
        Ok(Some(base + &extra_host_lines(extra_hosts, None)?))
    };
    Ok(match mode {
        BuildNetwork::Host => {
            let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
            (
                cais_build::RunNetwork {
                    namespace: cais_build::RunNetns::Host,
                    hosts: with_extra(hosts)?,
                    resolv_conf: None,
                },
                None,
            )
        }
        BuildNetwork::None => (
            cais_build::RunNetwork {
                namespace: cais_build::RunNetns::Isolated,
                hosts: with_extra(
                    "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n".into(),
                )?,
                resolv_conf: None,
            },
            None,
        ),
        BuildNetwork::Network(name) => {
            let s = engine.wiring.sandbox(name, extra_hosts)?;
            (
                cais_build::RunNetwork {
                    namespace: cais_build::RunNetns::Join(s.netns.clone()),
                    hosts: Some(s.hosts.clone()),
                    resolv_conf: Some(s.resolv_conf.clone()),
                },
                Some(s),
            )
        }
    })
}

fn line(v: &serde_json::Value) -> Bytes {
    Bytes::from(format!("{v}\n"))
}

/// `POST /build`.
pub(crate) async fn build(engine: Arc<Engine>, req: Request<Incoming>) -> Result<Response<Body>> {
    let raw_query = req.uri().query().unwrap_or("").to_string();
    let credentials = registry_config(
        req.headers()
            .get("X-Registry-Config")
            .and_then(|v| v.to_str().ok()),
    );
    let tmp = engine.cfg.root.join("engine/build");
    std::fs::create_dir_all(&tmp).map_err(Error::io("creating", &tmp))?;
    // The body is read first even when the parameters are wrong: a client
    // still sending its context would not see an early answer.
    let body = body_to_file(req, &tmp).await?;
    let params = parse_params(&raw_query)?;
    let (network, sandbox) = {
        let e = engine.clone();
        let mode = params.network.clone();
        let extra = params.extra_hosts.clone();
        blocking(move || run_network(&e, &mode, &extra)).await?
    };
    let (tx, mut rx) = mpsc::channel::<Msg>(64);
    let ctx = crate::build::Context {
        root: engine.cfg.root.clone(),
        binary: engine.cfg.binary.clone(),
        images: engine.images.clone(),
        events: engine.events.clone(),
        network,
    };
    let e = engine.clone();
    tokio::task::spawn_blocking(move || {
        crate::build::run(ctx, params, body, credentials, tx);
        if let Some(s) = sandbox {
            e.wiring.remove_sandbox(&s);
        }
    });
    // Nothing is sent before the build says something: an early failure
    // (bad context, Dockerfile syntax) is a plain HTTP error.
    let first = match rx.recv().await {
        Some(Msg::Failed(e, _)) => return Err(e),
        None => {
            return Err(Error::Failed {
                program: "the build",
                message: "the build ended without a result".into(),
            })
        }
        Some(Msg::Line(v)) => v,
    };
    let (out, body) = channel_body();
    tokio::spawn(async move {
        if out.send(line(&first)).await.is_err() {
            return;
        }
        while let Some(msg) = rx.recv().await {
            let v = match msg {
                Msg::Line(v) => v,
                Msg::Failed(e, code) => {
                    let text = e.message();
                    let mut detail = serde_json::json!({"message": text});
                    if let Some(c) = code {
                        detail["code"] = c.into();
                    }
                    serde_json::json!({"errorDetail": detail, "error": text})
                }
            };
            if out.send(line(&v)).await.is_err() {
                return;
            }
        }
    });
    Ok(streaming(body, "application/json"))
}

/// `POST /build/prune` (`docker builder prune`).
pub(crate) async fn prune(engine: Arc<Engine>) -> Result<Response<Body>> {
    let (entries, bytes) = blocking(move || crate::build::prune_cache(&engine.images)).await?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"CachesDeleted": entries, "SpaceReclaimed": bytes}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_decode_like_dockers() {
        let p = parse_params(
            "t=web%3A1&t=web%3Alatest&dockerfile=sub%2FDockerfile.dev&buildargs=%7B%22A%22%3A%221%22%2C%22B%22%3Anull%2C%22SOURCE_DATE_EPOCH%22%3A%2210%22%7D&labels=%7B%22k%22%3A%22v%22%7D&target=app&nocache=1&pull=1&q=1&rm=1&forcerm=0&networkmode=default&cachefrom=%5B%5D",
        )
        .expect("valid");
        assert_eq!(p.tags, ["web:1", "web:latest"]);
        assert_eq!(p.dockerfile.as_deref(), Some("sub/Dockerfile.dev"));
        assert_eq!(
            p.build_args,
            BTreeMap::from([
                ("A".to_string(), "1".to_string()),
                ("SOURCE_DATE_EPOCH".to_string(), "10".to_string())
            ])
        );
        assert_eq!(p.source_date_epoch, Some(10));
        assert_eq!(p.labels["k"], "v");
        assert_eq!(p.target.as_deref(), Some("app"));
        assert!(p.no_cache && p.pull && p.quiet);
        assert_eq!(parse_params("").expect("empty"), Params::default());
    }

    #[test]
    fn bad_parameters_are_refused_with_a_reason() {
        for (q, want) in [
            ("version=2", "/session and /grpc"),
            (
                "remote=https%3A%2F%2Fexample.com%2Fx.git",
                "remote build contexts",
            ),
            ("t=UPPER%3Acase", "invalid tag"),
            (
                "t=x%40sha256%3A0000000000000000000000000000000000000000000000000000000000000000",
                "invalid tag",
            ),
            ("buildargs=%5B1%5D", "invalid buildargs"),
            ("labels=nope", "invalid labels"),
            (
                "buildargs=%7B%22SOURCE_DATE_EPOCH%22%3A%22soon%22%7D",
                "SOURCE_DATE_EPOCH",
            ),
            ("platform=linux%2Fs390x", "only linux/"),
        ] {
            let e = parse_params(q).expect_err(q);
            assert!(matches!(e, Error::InvalidArgument(_)), "{q}: {e:?}");
            assert!(e.to_string().contains(want), "{q}: {e}");
        }
        let host = cais_image::archive::host_platform();
        parse_params(&format!("platform=linux%2F{}", host.architecture)).expect("host platform");
    }

    #[test]
    fn registry_config_gives_credentials_per_registry() {
        use base64::Engine as _;
        let json = r#"{"127.0.0.1:5000":{"username":"u","password":"p"},"https://index.docker.io/v1/":{"auth":"aHViOnNlY3JldA=="},"empty.example":{}}"#;
        let header = base64::engine::general_purpose::URL_SAFE.encode(json);
        let m = registry_config(Some(&header));
        assert_eq!(m["127.0.0.1:5000"].username, "u");
        assert_eq!(m["127.0.0.1:5000"].password, "p");
        let hub =
            cais_registry::client::reference::normalize_registry("https://index.docker.io/v1/");
        assert_eq!(m[&hub].username, "hub");
        assert_eq!(m[&hub].password, "secret");
        assert_eq!(m.len(), 2);
        assert!(registry_config(Some("%%%")).is_empty());
        assert!(registry_config(None).is_empty());
    }
}
