//! The Control API: `Solve` (a build from start to export), `Status` (its
//! progress), `ListWorkers` and `Info` (what buildx asks to pick platforms
//! and features).
//!
//! Exporters: `moby` (docker's) and `image` write to the image store and
//! set the names of their `name` attribute (comma-separated); `moby`'s
//! `push` is the client's to do afterwards (buildx pushes with docker),
//! `image` with `push=true` is refused. Other exporters (local, tar, oci,
//! docker) would send files back through the session and are refused, as
//! are more than one exporter, session exporters and cache exports; cache
//! imports are ignored with a warning. The response carries the image id
//! as `containerimage.digest` and `containerimage.config.digest`
//! (compose labels containers with it) and the names as `image.name`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tonic::{Request, Response, Status};

use crate::frontend;
use crate::jobs::{FrontendRequest, Job};
use crate::progress::Reporter;
use crate::proto::control::{
    control_server::Control, InfoRequest, InfoResponse, ListWorkersRequest, ListWorkersResponse,
    SolveRequest, SolveResponse, StatusRequest, StatusResponse,
};
use crate::proto::gateway::result;
use crate::{Error, Inner};

pub(crate) struct ControlService {
    pub inner: Arc<Inner>,
}

/// Ends a job however its Solve ends (returned, failed or dropped because
/// the client went away), so its Status streams finish.
struct Finish(Arc<Job>);

impl Drop for Finish {
    fn drop(&mut self) {
        self.0.finish();
    }
}

fn truthy(v: Option<&String>) -> bool {
    v.is_some_and(|v| matches!(v.as_str(), "1" | "true" | "True" | "TRUE"))
}

/// The image names the solve's exporter asks for; `None` without an
/// exporter (the result stays in the step cache, untagged).
fn export_names(r: &SolveRequest) -> Result<Option<Vec<String>>, Error> {
    if r.enable_session_exporter {
        return Err(Error::invalid(
            "exporters chosen by the session are not supported: name an image exporter",
        ));
    }
    let mut list: Vec<(&str, &HashMap<String, String>)> = r
        .exporters
        .iter()
        .map(|e| (e.r#type.as_str(), &e.attrs))
        .collect();
    if list.is_empty() && !r.exporter_deprecated.is_empty() {
        list.push((&r.exporter_deprecated, &r.exporter_attrs_deprecated));
    }
    let (kind, attrs) = match list.as_slice() {
        [] => return Ok(None),
        [one] => *one,
        _ => {
            return Err(Error::invalid(format!(
                "{} exporters given: cais exports one image per build",
                list.len()
            )))
        }
    };
    match kind {
        "moby" => {}
        "image" if truthy(attrs.get("push")) => {
            return Err(Error::invalid(
                "pushing from the build (image exporter, push=true) is not supported: push the image afterwards",
            ))
        }
        "image" => {}
        other => {
            return Err(Error::invalid(format!(
                "exporter {other:?} is not supported: cais exports to its image store only (type=image)"
            )))
        }
    }
    Ok(Some(
        attrs
            .get("name")
            .map(|n| {
                n.split(',')
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
    ))
}

/// What the client's build function returned: a frontend request it made
/// (by its reference), or nothing.
fn returned_request(
    job: &Job,
    ret: crate::proto::gateway::ReturnRequest,
) -> Result<Option<FrontendRequest>, Error> {
    if let Some(e) = ret.error.filter(|e| e.code != 0) {
        return Err(Error::Client {
            code: e.code,
            message: e.message,
        });
    }
    let id = match ret.result.and_then(|r| r.result) {
        None => String::new(),
        Some(result::Result::RefDeprecated(id)) => id,
        Some(result::Result::Ref(r)) => r.id,
        Some(result::Result::RefsDeprecated(m)) => match m.refs.len() {
            0 => String::new(),
            1 => m.refs.into_values().next().unwrap_or_default(),
            n => {
                return Err(Error::invalid(format!(
                    "{n} results returned: cais exports one"
                )))
            }
        },
        Some(result::Result::Refs(m)) => match m.refs.len() {
            0 => String::new(),
            1 => m
                .refs
                .into_values()
                .next()
                .map(|r| r.id)
                .unwrap_or_default(),
            n => {
                return Err(Error::invalid(format!(
                    "{n} results returned: cais exports one"
                )))
            }
        },
    };
    if id.is_empty() {
        return Ok(None);
    }
    job.request(&id).map(Some).ok_or_else(|| Error::NotFound {
        what: format!("result {id:?} of build {}", job.id),
    })
}

impl Inner {
    async fn solve(
        self: &Arc<Self>,
        job: &Arc<Job>,
        reporter: &Reporter,
        r: SolveRequest,
    ) -> Result<SolveResponse, Error> {
        let names = export_names(&r)?;
        if let Some(c) = &r.cache {
            if let Some(e) = c.exports.first() {
                return Err(Error::invalid(format!(
                    "cache export (type={}) is not supported: cais keeps its step cache in the daemon",
                    e.r#type
                )));
            }
        }
        if r.definition.as_ref().is_some_and(|d| !d.def.is_empty()) {
            return Err(Error::invalid(
                "LLB definitions are not supported: cais builds Dockerfiles (frontend dockerfile.v0)",
            ));
        }
        if !r.frontend_inputs.is_empty() {
            return Err(Error::invalid(
                "frontend inputs given as LLB (named or remote contexts) are not supported",
            ));
        }
        let request = if r.frontend.is_empty() {
            // The client runs its build function against the gateway and
            // returns what it wants exported.
            let returned = job.expect_gateway();
            let ret = returned.await.map_err(|_| Error::Internal {
                reason: format!("build {} ended without a result", job.id),
            })?;
            returned_request(job, ret)?
        } else {
            Some(FrontendRequest {
                frontend: r.frontend.clone(),
                attrs: r.frontend_attrs.clone().into_iter().collect(),
            })
        };
        let Some(request) = request else {
            if names.as_ref().is_some_and(|n| !n.is_empty()) {
                return Err(Error::invalid("the build returned no result to export"));
            }
            return Ok(SolveResponse::default());
        };
        let mut df = frontend::parse(&request.frontend, &request.attrs, &self.host.platform())?;
        if let Some(c) = &r.cache {
            for i in &c.imports {
                df.warnings.push(format!(
                    "cache import (type={}) ignored: cais reuses its own step cache only",
                    i.r#type
                ));
            }
        }
        let tags = self
            .host
            .normalize_tags(names.as_deref().unwrap_or_default())?;
        let session = self
            .sessions
            .get(&r.session, Duration::from_secs(30))
            .await?;
        let out = self.run_dockerfile(reporter, &session, &df, tags).await?;
        let mut resp = HashMap::new();
        resp.insert("containerimage.digest".into(), out.built.image_id.clone());
        resp.insert("containerimage.config.digest".into(), out.built.image_id);
        if !out.tags.is_empty() {
            resp.insert("image.name".into(), out.tags.join(","));
        }
        Ok(SolveResponse {
            exporter_response: resp,
        })
    }
}

#[tonic::async_trait]
impl Control for ControlService {
    async fn solve(&self, req: Request<SolveRequest>) -> Result<Response<SolveResponse>, Status> {
        let r = req.into_inner();
        let job = self.inner.jobs.begin(&r.r#ref).map_err(|e| e.status())?;
        let _finish = Finish(job.clone());
        let reporter = Reporter::new(job.clone());
        tracing::debug!(
            build = %r.r#ref,
            frontend = %r.frontend,
            session = %r.session,
            exporters = ?r.exporters,
            internal = r.internal,
            "solve"
        );
        match self.inner.solve(&job, &reporter, r).await {
            Ok(resp) => Ok(Response::new(resp)),
            Err(e) => {
                tracing::debug!(build = %job.id, error = %e, "solve failed");
                Err(e.status())
            }
        }
    }

    type StatusStream = std::pin::Pin<
        Box<dyn tokio_stream::Stream<Item = Result<StatusResponse, Status>> + Send + 'static>,
    >;

    async fn status(
        &self,
        req: Request<StatusRequest>,
    ) -> Result<Response<Self::StatusStream>, Status> {
        let r = req.into_inner();
        if r.r#ref.is_empty() {
            return Err(Status::invalid_argument("status needs a Ref"));
        }
        let job = self.inner.jobs.get(&r.r#ref);
        let stream = tokio_stream::StreamExt::map(job.follow(), Ok);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn list_workers(
        &self,
        _req: Request<ListWorkersRequest>,
    ) -> Result<Response<ListWorkersResponse>, Status> {
        Ok(Response::new(ListWorkersResponse {
            record: vec![self.inner.worker()],
        }))
    }

    async fn info(&self, _req: Request<InfoRequest>) -> Result<Response<InfoResponse>, Status> {
        Ok(Response::new(InfoResponse {
            buildkit_version: Some(crate::version()),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::control::Exporter;

    fn exporter(kind: &str, attrs: &[(&str, &str)]) -> SolveRequest {
        SolveRequest {
            exporters: vec![Exporter {
                r#type: kind.into(),
                attrs: attrs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn image_exporters_give_names_and_others_are_refused() {
        assert_eq!(
            export_names(&exporter("moby", &[("name", "a:1, b:2"), ("push", "true")]))
                .expect("moby"),
            Some(vec!["a:1".to_string(), "b:2".to_string()])
        );
        assert_eq!(
            export_names(&exporter("image", &[])).expect("image"),
            Some(vec![])
        );
        assert_eq!(export_names(&SolveRequest::default()).expect("none"), None);
        for (kind, attrs, want) in [
            ("image", &[("push", "true")][..], "pushing from the build"),
            ("local", &[][..], "exporter \"local\""),
            ("oci", &[][..], "exporter \"oci\""),
        ] {
            let e = export_names(&exporter(kind, attrs)).expect_err(kind);
            assert!(e.to_string().contains(want), "{kind}: {e}");
        }
        let mut two = exporter("moby", &[]);
        two.exporters.push(two.exporters[0].clone());
        assert!(export_names(&two).is_err());
        let deprecated = SolveRequest {
            exporter_deprecated: "moby".into(),
            exporter_attrs_deprecated: [("name".to_string(), "x".to_string())].into(),
            ..Default::default()
        };
        assert_eq!(
            export_names(&deprecated).expect("deprecated fields"),
            Some(vec!["x".to_string()])
        );
    }
}
