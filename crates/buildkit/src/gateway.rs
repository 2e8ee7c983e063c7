//! The gateway (LLBBridge) a client's own build function calls, on the
//! `/grpc` connection: `Ping` announces what is supported, `Solve` records
//! a `dockerfile.v0` request (checked now, built when the result is
//! exported) and answers a reference to it, `Return` hands the function's
//! result (or error) to the waiting Control `Solve`. Every call names its
//! build in the `buildkit-controlapi-buildid` metadata; calls may come
//! before the build's `Solve`, so they wait for it a while.

use std::sync::Arc;
use std::time::Duration;

use tonic::{Request, Response, Status};

use crate::frontend;
use crate::jobs::{FrontendRequest, Job};
use crate::proto::gateway::{
    llb_bridge_server::LlbBridge, result, PingRequest, PongResponse, Ref, Result as GwResult,
    ReturnRequest, ReturnResponse, SolveRequest, SolveResponse,
};
use crate::proto::moby::buildkit::v1::apicaps::ApiCap;
use crate::{Error, Inner};

const BUILD_ID: &str = "buildkit-controlapi-buildid";

/// The gateway capabilities cais implements: solving a frontend, returning
/// a result, and references as messages. Clients check these before each
/// feature; everything else stays unused.
const CAPS: &[&str] = &["solve.base", "return", "proto.refarray"];

pub(crate) struct GatewayService {
    pub inner: Arc<Inner>,
}

impl GatewayService {
    async fn job<T>(&self, req: &Request<T>) -> Result<Arc<Job>, Status> {
        let id = req
            .metadata()
            .get(BUILD_ID)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                Status::invalid_argument(format!("a gateway call needs the {BUILD_ID} metadata"))
            })?;
        let job = self.inner.jobs.get(id);
        job.gateway_ready(Duration::from_secs(10))
            .await
            .map_err(|e| e.status())?;
        Ok(job)
    }
}

#[tonic::async_trait]
impl LlbBridge for GatewayService {
    async fn ping(&self, req: Request<PingRequest>) -> Result<Response<PongResponse>, Status> {
        self.job(&req).await?;
        Ok(Response::new(PongResponse {
            frontend_api_caps: CAPS
                .iter()
                .map(|id| ApiCap {
                    id: id.to_string(),
                    enabled: true,
                    ..Default::default()
                })
                .collect(),
            llb_caps: Vec::new(),
            workers: vec![self.inner.worker()],
        }))
    }

    async fn solve(&self, req: Request<SolveRequest>) -> Result<Response<SolveResponse>, Status> {
        let job = self.job(&req).await?;
        let r = req.into_inner();
        let refuse = |e: Error| e.status();
        if r.definition.as_ref().is_some_and(|d| !d.def.is_empty()) {
            return Err(refuse(Error::invalid(
                "LLB definitions are not supported: cais builds Dockerfiles (frontend dockerfile.v0)",
            )));
        }
        if !r.frontend_inputs.is_empty() {
            return Err(refuse(Error::invalid(
                "frontend inputs given as LLB (named or remote contexts) are not supported",
            )));
        }
        let attrs = r.frontend_opt.into_iter().collect();
        tracing::debug!(build = %job.id, frontend = %r.frontend, ?attrs, "gateway solve");
        frontend::parse(&r.frontend, &attrs, &self.inner.host.platform()).map_err(refuse)?;
        let id = job.add_request(FrontendRequest {
            frontend: r.frontend,
            attrs,
        });
        let result = r.allow_result_return.then(|| GwResult {
            result: Some(if r.allow_result_array_ref {
                result::Result::Ref(Ref {
                    id: id.clone(),
                    def: None,
                })
            } else {
                result::Result::RefDeprecated(id.clone())
            }),
            metadata: Default::default(),
        });
        Ok(Response::new(SolveResponse { r#ref: id, result }))
    }

    async fn r#return(
        &self,
        req: Request<ReturnRequest>,
    ) -> Result<Response<ReturnResponse>, Status> {
        let job = self.job(&req).await?;
        job.give_return(req.into_inner()).map_err(|e| e.status())?;
        Ok(Response::new(ReturnResponse {}))
    }
}
