//! Manifest, tag, catalog and referrers endpoints (spec end-3, end-7,
//! end-8, end-9, end-12).

use super::*;

/// `n`/`last` pagination shared by the catalog and tag list (spec
/// "Listing Tags": results are lexically sorted, `last` is exclusive, and a
/// `Link` header points at the next page).
fn paginate(
    items: Vec<String>,
    params: &[(String, String)],
    base: &str,
) -> Result<(Vec<String>, Option<String>), ApiError> {
    let last = param(params, "last");
    let n = match param(params, "n") {
        Some(v) => Some(v.parse::<usize>().map_err(|_| {
            ApiError::new(ErrorCode::Unsupported, "n must be a non-negative integer")
                .status(StatusCode::BAD_REQUEST)
        })?),
        None => None,
    };
    let mut items: Vec<String> = match last {
        Some(last) => items.into_iter().filter(|t| t.as_str() > last).collect(),
        None => items,
    };
    let mut link = None;
    if let Some(n) = n {
        if items.len() > n {
            items.truncate(n);
            if let Some(l) = items.last() {
                link = Some(format!("<{base}?n={n}&last={l}>; rel=\"next\""));
            }
        }
    }
    Ok((items, link))
}

pub(super) async fn catalog(app: &App, params: &[(String, String)]) -> ApiResult {
    let storage = app.storage.clone();
    let repos = blocking(move || storage.catalog()).await?;
    let (repos, link) = paginate(repos, params, "/v2/_catalog")?;
    let mut resp = json_response(StatusCode::OK, json!({"repositories": repos}).to_string());
    if let Some(link) = link {
        resp.headers_mut().insert("Link", header_value(&link));
    }
    Ok(resp)
}

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

pub(super) async fn tags(app: &App, name: String, params: &[(String, String)]) -> ApiResult {
    let storage = app.storage.clone();
    let n = name.clone();
    let (exists, tags) = blocking(move || Ok((storage.repo_exists(&n), storage.tags(&n)?))).await?;
    if !exists {
        return Err(ApiError::new(
            ErrorCode::NameUnknown,
            format!("repository {name} not known to registry"),
        ));
    }
    let (tags, link) = paginate(tags, params, &format!("/v2/{name}/tags/list"))?;
    let mut resp = json_response(
        StatusCode::OK,
        json!({"name": name, "tags": tags}).to_string(),
    );
    if let Some(link) = link {
        resp.headers_mut().insert("Link", header_value(&link));
    }
    Ok(resp)
}

/// The `<reference>` of a manifest URL. A bad (or non-sha256) digest is
/// `DIGEST_INVALID`; a bad tag is `bad_tag` (`MANIFEST_INVALID` where a
/// manifest is read or written, `DIGEST_INVALID` for a delete).
fn parse_reference(reference: &str, bad_tag: ErrorCode) -> Result<TagOrDigest, ApiError> {
    match reference.parse() {
        Ok(TagOrDigest::Digest(d)) => sha256_only(d)
            .map(TagOrDigest::Digest)
            .map_err(|e| ApiError::new(ErrorCode::DigestInvalid, e.to_string())),
        Ok(tag) => Ok(tag),
        Err(e @ cais_oci::Error::InvalidTag { .. }) => Err(ApiError::new(bad_tag, e.to_string())),
        Err(e) => Err(ApiError::new(ErrorCode::DigestInvalid, e.to_string())),
    }
}

fn manifest_unknown(name: &str, reference: &str) -> ApiError {
    ApiError::new(
        ErrorCode::ManifestUnknown,
        format!("manifest {reference} unknown to repository {name}"),
    )
}

async fn resolve(
    app: &App,
    name: &str,
    reference: &str,
) -> Result<Option<(Digest, String)>, ApiError> {
    let reference = parse_reference(reference, ErrorCode::ManifestInvalid)?;
    let storage = app.storage.clone();
    let name = name.to_owned();
    blocking(move || {
        let digest = match reference {
            TagOrDigest::Digest(d) => d,
            TagOrDigest::Tag(t) => match storage.resolve_tag(&name, &t)? {
                Some(d) => d,
                None => return Ok(None),
            },
        };
        Ok(storage.manifest_type(&name, &digest)?.map(|t| (digest, t)))
    })
    .await
}

pub(super) async fn get_manifest(
    app: &App,
    name: String,
    reference: String,
    head: bool,
) -> ApiResult {
    let Some((digest, media_type)) = resolve(app, &name, &reference).await? else {
        if !app.storage.repo_exists(&name) {
            return Err(ApiError::new(
                ErrorCode::NameUnknown,
                format!("repository {name} not known to registry"),
            )
            .status(StatusCode::NOT_FOUND));
        }
        return Err(manifest_unknown(&name, &reference));
    };
    let storage = app.storage.clone();
    let d = digest.clone();
    let body = blocking(move || storage.read_blob(&d)).await?;
    let builder = Response::builder()
        .status(StatusCode::OK)
        .header(CONTENT_TYPE, media_type)
        .header(CONTENT_LENGTH, body.len())
        .header("Docker-Content-Digest", digest.to_string())
        .header("ETag", format!("\"{digest}\""));
    let body = if head { empty() } else { full(body) };
    builder.body(body).map_err(ApiError::internal)
}

async fn read_limited(
    req: Request<Incoming>,
    limit: usize,
    timeout: Duration,
) -> Result<(Bytes, Option<String>), ApiError> {
    let too_big = || {
        ApiError::new(
            ErrorCode::SizeInvalid,
            format!("body larger than {limit} bytes"),
        )
        .status(StatusCode::PAYLOAD_TOO_LARGE)
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|d| d > limit as u64) {
        return Err(too_big());
    }
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut body = req.into_body();
    let mut buf = Vec::new();
    loop {
        let frame = tokio::time::timeout(timeout, body.frame())
            .await
            .map_err(|_| {
                ApiError::new(ErrorCode::BlobUploadInvalid, "timed out reading the body")
            })?;
        let Some(frame) = frame else { break };
        let frame = frame
            .map_err(|e| ApiError::new(ErrorCode::ManifestInvalid, format!("reading body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(too_big());
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok((Bytes::from(buf), content_type))
}

pub(super) async fn put_manifest(
    app: &App,
    name: String,
    reference: String,
    params: &[(String, String)],
    req: Request<Incoming>,
) -> ApiResult {
    // end-7b: a push by digest may name tags to set in the same request.
    let mut tags: Vec<String> = Vec::new();
    for (k, v) in params {
        if k == "tag" {
            cais_oci::reference::validate_tag(v)
                .map_err(|e| ApiError::new(ErrorCode::ManifestInvalid, e.to_string()))?;
            tags.push(v.clone());
        }
    }
    let reference = parse_reference(&reference, ErrorCode::ManifestInvalid)?;
    let (body, content_type) = read_limited(req, MAX_MANIFEST_BYTES, app.config.timeout).await?;
    let actual = Digest::sha256(&body);
    let manifest = ManifestRefs::parse(&body, content_type.as_deref(), &actual)
        .and_then(|m| {
            // What storage cannot hold, a manifest cannot name.
            m.digests()
                .try_for_each(|d| sha256_only(d.clone()).map(drop))?;
            Ok(m)
        })
        .map_err(|e| ApiError::new(ErrorCode::ManifestInvalid, e.to_string()))?;
    match &reference {
        TagOrDigest::Digest(d) if d != &actual => {
            return Err(ApiError::new(
                ErrorCode::DigestInvalid,
                format!("manifest digest {actual} does not match reference {d}"),
            ))
        }
        TagOrDigest::Digest(_) => {}
        TagOrDigest::Tag(t) => tags.push(t.clone()),
    }
    let storage = app.storage.clone();
    let n = name.clone();
    let m = manifest.clone();
    let stored = blocking(move || storage.put_manifest(&n, &body, &m, &tags)).await?;
    let digest = match stored {
        Ok(d) => d,
        Err(missing) => {
            return Err(ApiError::new(
                ErrorCode::ManifestBlobUnknown,
                format!("manifest references {missing}, which is not in repository {name}"),
            ))
        }
    };
    let mut builder = Response::builder()
        .status(StatusCode::CREATED)
        .header(LOCATION, format!("/v2/{name}/manifests/{digest}"))
        .header("Docker-Content-Digest", digest.to_string())
        .header(CONTENT_LENGTH, 0);
    if let Some(subject) = &manifest.subject {
        // Spec "Pushing Manifests with Subject": tells the client the
        // referrers API indexed it, so no fallback tag is needed.
        builder = builder.header("OCI-Subject", subject.to_string());
    }
    builder.body(empty()).map_err(ApiError::internal)
}

pub(super) async fn delete_manifest(app: &App, name: String, reference: String) -> ApiResult {
    let reference = parse_reference(&reference, ErrorCode::DigestInvalid)?;
    let storage = app.storage.clone();
    let n = name.clone();
    let deleted = blocking(move || match reference {
        TagOrDigest::Digest(d) => storage.delete_manifest(&n, &d),
        // Spec 1.1 "Deleting Tags": DELETE on a tag removes the tag only.
        TagOrDigest::Tag(t) => storage.delete_tag(&n, &t),
    })
    .await?;
    if !deleted {
        return Err(ApiError::new(
            ErrorCode::ManifestUnknown,
            format!("manifest unknown to repository {name}"),
        ));
    }
    Response::builder()
        .status(StatusCode::ACCEPTED)
        .header(CONTENT_LENGTH, 0)
        .body(empty())
        .map_err(ApiError::internal)
}

pub(super) async fn referrers(
    app: &App,
    name: String,
    digest: String,
    params: &[(String, String)],
) -> ApiResult {
    let digest = parse_digest(&digest)?;
    let storage = app.storage.clone();
    let mut list = blocking(move || storage.referrers(&name, &digest)).await?;
    let filter = param(params, "artifactType").map(str::to_owned);
    if let Some(t) = &filter {
        list.retain(|d| d.artifact_type.as_deref() == Some(t.as_str()));
    }
    let body = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": list}).to_string();
    let mut resp = Response::builder()
        .status(StatusCode::OK)
        .header(CONTENT_TYPE, OCI_INDEX)
        .header(CONTENT_LENGTH, body.len());
    if filter.is_some() {
        resp = resp.header("OCI-Filters-Applied", "artifactType");
    }
    resp.body(full(body)).map_err(ApiError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pagination() {
        let items: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        let (page, link) = paginate(items.clone(), &[("n".into(), "2".into())], "/x").expect("ok");
        assert_eq!(page, ["a", "b"]);
        assert_eq!(link.as_deref(), Some("</x?n=2&last=b>; rel=\"next\""));
        let (page, link) = paginate(
            items,
            &[("n".into(), "2".into()), ("last".into(), "b".into())],
            "/x",
        )
        .expect("ok");
        assert_eq!(page, ["c", "d"]);
        assert_eq!(link, None);
    }
}
