//! Blob and upload endpoints (spec end-2, end-4 to end-6, end-10, end-11,
//! end-13).

use super::*;

fn blob_unknown(digest: &Digest) -> ApiError {
    ApiError::new(
        ErrorCode::BlobUnknown,
        format!("blob {digest} unknown to registry"),
    )
}

/// Parses `Range: bytes=start-end` (RFC 9110 14.1.2), one range only.
fn parse_range(header: &str, size: u64) -> Option<(u64, u64)> {
    let spec = header.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (start, end) = spec.split_once('-')?;
    let (start, end) = if start.is_empty() {
        let suffix: u64 = end.parse().ok()?;
        if suffix == 0 {
            return None;
        }
        (size.saturating_sub(suffix), size.checked_sub(1)?)
    } else {
        let start: u64 = start.parse().ok()?;
        let end: u64 = if end.is_empty() {
            size.checked_sub(1)?
        } else {
            end.parse::<u64>().ok()?.min(size.checked_sub(1)?)
        };
        (start, end)
    };
    (start <= end && end < size).then_some((start, end))
}

pub(super) async fn get_blob(
    app: &App,
    name: String,
    digest: String,
    req: &Request<Incoming>,
    head: bool,
) -> ApiResult {
    let digest = parse_digest(&digest)?;
    let storage = app.storage.clone();
    let (n, d) = (name.clone(), digest.clone());
    let Some(size) = blocking(move || storage.blob_size(&n, &d)).await? else {
        return Err(blob_unknown(&digest));
    };
    let range = req
        .headers()
        .get(hyper::header::RANGE)
        .and_then(|v| v.to_str().ok());
    let (status, start, end) = match range {
        None => (StatusCode::OK, 0, size.saturating_sub(1)),
        Some(r) => match parse_range(r, size) {
            Some((s, e)) => (StatusCode::PARTIAL_CONTENT, s, e),
            None => {
                return Err(ApiError::new(
                    ErrorCode::RangeInvalid,
                    "requested range not satisfiable",
                )
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header("Content-Range", format!("bytes */{size}")))
            }
        },
    };
    let length = if size == 0 { 0 } else { end - start + 1 };
    let mut builder = Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/octet-stream")
        .header(CONTENT_LENGTH, length)
        .header("Docker-Content-Digest", digest.to_string())
        .header("Accept-Ranges", "bytes")
        .header("ETag", format!("\"{digest}\""));
    if status == StatusCode::PARTIAL_CONTENT {
        builder = builder.header("Content-Range", format!("bytes {start}-{end}/{size}"));
    }
    if head || length == 0 {
        return builder.body(empty()).map_err(ApiError::internal);
    }
    let path = app.storage.blob_path(&digest);
    let file = std::fs::File::open(&path).map_err(|_| blob_unknown(&digest))?;
    let maps = req.extensions().get::<Arc<Maps>>();
    let body = file_body(file, start, length, maps).map_err(ApiError::internal)?;
    builder.body(body).map_err(ApiError::internal)
}

/// Serves `length` bytes of `file` from `start` out of a memory map, in
/// zero-copy slices. On plain TCP connections the map is listed in the
/// connection's `Maps`, and `sendfile::SendfileStream` sends those slices
/// from the file with `sendfile(2)`; elsewhere (TLS) the kernel copies
/// straight from the mapping.
fn file_body(
    file: std::fs::File,
    start: u64,
    length: u64,
    maps: Option<&Arc<Maps>>,
) -> Result<Body, io::Error> {
    const CHUNK: usize = 1024 * 1024;
    let map = MappedBlob::new(file, maps)?;
    let end = usize::try_from(start + length).map_err(io::Error::other)?;
    if end > map.as_ref().len() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "blob shorter than its size",
        ));
    }
    let data = Bytes::from_owner(map).slice(start as usize..end);
    let chunks = (0..data.len()).step_by(CHUNK).map(move |at| {
        Ok::<_, io::Error>(Frame::data(data.slice(at..(at + CHUNK).min(data.len()))))
    });
    Ok(StreamBody::new(futures_util::stream::iter(chunks)).boxed())
}

pub(super) async fn delete_blob(app: &App, name: String, digest: String) -> ApiResult {
    let digest = parse_digest(&digest)?;
    let storage = app.storage.clone();
    let d = digest.clone();
    if !blocking(move || storage.unlink_blob(&name, &d)).await? {
        return Err(blob_unknown(&digest));
    }
    Response::builder()
        .status(StatusCode::ACCEPTED)
        .header(CONTENT_LENGTH, 0)
        .body(empty())
        .map_err(ApiError::internal)
}

fn upload_response(status: StatusCode, name: &str, id: &str, offset: u64) -> ApiResult {
    // Range is inclusive; with nothing received the spec's examples and
    // common registries send 0-0.
    let end = offset.saturating_sub(1);
    Response::builder()
        .status(status)
        .header(LOCATION, format!("/v2/{name}/blobs/uploads/{id}"))
        .header("Range", format!("0-{end}"))
        .header("Docker-Upload-UUID", id)
        .header(CONTENT_LENGTH, 0)
        .body(empty())
        .map_err(ApiError::internal)
}

fn blob_created(name: &str, digest: &Digest) -> ApiResult {
    Response::builder()
        .status(StatusCode::CREATED)
        .header(LOCATION, format!("/v2/{name}/blobs/{digest}"))
        .header("Docker-Content-Digest", digest.to_string())
        .header(CONTENT_LENGTH, 0)
        .body(empty())
        .map_err(ApiError::internal)
}

pub(super) async fn start_upload(
    app: &App,
    name: String,
    params: &[(String, String)],
    from_allowed: bool,
    req: Request<Incoming>,
) -> ApiResult {
    if let Some(mount) = param(params, "mount") {
        let digest = parse_digest(mount)?;
        // Spec "Mounting a blob from another repository": if the mount
        // cannot happen (no `from`, unknown blob, no pull right on `from`)
        // the registry falls back to opening an upload session.
        if let Some(from) = param(params, "from").filter(|_| from_allowed) {
            if validate_name(from).is_ok() {
                let storage = app.storage.clone();
                let (n, f, d) = (name.clone(), from.to_owned(), digest.clone());
                if blocking(move || storage.mount_blob(&n, &f, &d)).await? {
                    return blob_created(&name, &digest);
                }
            }
        }
    }
    let expected = param(params, "digest").map(parse_digest).transpose()?;
    let storage = app.storage.clone();
    let n = name.clone();
    let id = blocking(move || storage.start_upload(&n)).await?;
    match expected {
        None => upload_response(StatusCode::ACCEPTED, &name, &id, 0),
        Some(expected) => {
            // Monolithic POST: the whole blob is the body. The client never
            // learns this session's id, so a failed body leaves nothing to
            // resume: drop the session.
            if let Err(e) = append_body(app, &name, &id, req, None).await {
                forget_upload(app, &id);
                let storage = app.storage.clone();
                let (n, i) = (name.clone(), id.clone());
                let _ = blocking(move || storage.cancel_upload(&n, &i)).await;
                return Err(e);
            }
            commit(app, &name, &id, &expected).await
        }
    }
}

fn upload_lock(app: &App, id: &str) -> Arc<tokio::sync::Mutex<UploadHash>> {
    let mut map = app.uploads.lock().unwrap_or_else(|p| p.into_inner());
    map.entry(id.to_owned()).or_default().clone()
}

fn forget_upload(app: &App, id: &str) {
    app.uploads
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(id);
}

/// Appends a request body to an upload, hashing as it goes. Whatever
/// arrived before a failure stays (it is a correct prefix), so the client
/// can ask for the offset and resume.
async fn append_body(
    app: &App,
    name: &str,
    id: &str,
    req: Request<Incoming>,
    start: Option<u64>,
) -> Result<u64, ApiError> {
    let lock = upload_lock(app, id);
    let mut state = lock.lock().await;
    let storage = app.storage.clone();
    let (n, i) = (name.to_owned(), id.to_owned());
    let path = blocking(move || storage.upload_data(&n, &i)).await?;
    let mut file = std::fs::File::options()
        .append(true)
        .open(&path)
        .map_err(|_| ApiError::new(ErrorCode::BlobUploadUnknown, "upload unknown"))?;
    let offset = file.metadata().map_err(ApiError::internal)?.len();
    if let Some(start) = start {
        if start != offset {
            return Err(ApiError::new(
                ErrorCode::RangeInvalid,
                format!("upload is at offset {offset}, chunk starts at {start}"),
            )
            .status(StatusCode::RANGE_NOT_SATISFIABLE)
            .header(LOCATION.as_str(), format!("/v2/{name}/blobs/uploads/{id}"))
            .header("Range", format!("0-{}", offset.saturating_sub(1))));
        }
    }
    let (mut hasher, mut written) = match state.hasher.take() {
        Some((h, w)) if w == offset => (h, w),
        _ => {
            let storage = app.storage.clone();
            let (n, i) = (name.to_owned(), id.to_owned());
            blocking(move || storage.hash_upload(&n, &i)).await?
        }
    };
    let limit = app.config.max_blob_bytes;
    let mut body = req.into_body();
    let mut pending: Vec<u8> = Vec::with_capacity(1 << 20);
    let mut failure = None;
    loop {
        let frame = match tokio::time::timeout(app.config.timeout, body.frame()).await {
            Err(_) => {
                failure = Some(ApiError::new(
                    ErrorCode::BlobUploadInvalid,
                    "timed out reading the upload body",
                ));
                None
            }
            Ok(None) => None,
            Ok(Some(Err(e))) => {
                failure = Some(ApiError::new(
                    ErrorCode::BlobUploadInvalid,
                    format!("reading the upload body: {e}"),
                ));
                None
            }
            Ok(Some(Ok(frame))) => Some(frame),
        };
        let done = frame.is_none();
        if let Some(data) = frame.and_then(|f| f.into_data().ok()) {
            if limit.is_some_and(|l| written + (pending.len() + data.len()) as u64 > l) {
                failure = Some(
                    ApiError::new(
                        ErrorCode::SizeInvalid,
                        "blob larger than the registry accepts",
                    )
                    .status(StatusCode::PAYLOAD_TOO_LARGE),
                );
            } else {
                pending.extend_from_slice(&data);
            }
        }
        if !pending.is_empty() && (done || failure.is_some() || pending.len() >= 1 << 20) {
            // Hash and write a megabyte at a time on a blocking-capable
            // thread: both are CPU or disk work the reactor should not do.
            let result = tokio::task::block_in_place(|| {
                file.write_all(&pending)?;
                hasher.update(&pending);
                Ok::<_, io::Error>(())
            });
            if let Err(e) = result {
                // The file may hold part of this buffer: let the next
                // request rehash from disk.
                return Err(ApiError::internal(e));
            }
            written += pending.len() as u64;
            pending.clear();
        }
        if done || failure.is_some() {
            break;
        }
    }
    state.hasher = Some((hasher, written));
    if let Some(f) = failure {
        if f.status == StatusCode::PAYLOAD_TOO_LARGE {
            // An oversized blob can never complete: drop it so nothing stays.
            drop(state);
            forget_upload(app, id);
            let storage = app.storage.clone();
            let (n, i) = (name.to_owned(), id.to_owned());
            let _ = blocking(move || storage.cancel_upload(&n, &i)).await;
        }
        return Err(f);
    }
    Ok(written)
}

async fn commit(app: &App, name: &str, id: &str, expected: &Digest) -> ApiResult {
    let lock = upload_lock(app, id);
    let mut state = lock.lock().await;
    let storage = app.storage.clone();
    let (n, i) = (name.to_owned(), id.to_owned());
    let offset = blocking(move || storage.upload_offset(&n, &i)).await?;
    let hasher = match state.hasher.take() {
        Some((h, w)) if w == offset => h,
        _ => {
            let storage = app.storage.clone();
            let (n, i) = (name.to_owned(), id.to_owned());
            blocking(move || storage.hash_upload(&n, &i)).await?.0
        }
    };
    let actual = hasher.finish();
    let storage = app.storage.clone();
    let (n, i, e) = (name.to_owned(), id.to_owned(), expected.clone());
    let result = blocking(move || storage.commit_upload(&n, &i, &e, actual)).await;
    drop(state);
    forget_upload(app, id);
    result?;
    blob_created(name, expected)
}

pub(super) async fn upload_status(app: &App, name: String, id: String) -> ApiResult {
    let storage = app.storage.clone();
    let (n, i) = (name.clone(), id.clone());
    let offset = blocking(move || storage.upload_offset(&n, &i)).await?;
    upload_response(StatusCode::NO_CONTENT, &name, &id, offset)
}

pub(super) async fn patch_upload(
    app: &App,
    name: String,
    id: String,
    req: Request<Incoming>,
) -> ApiResult {
    // Content-Range on PATCH is `start-end` (no unit), spec "Pushing a blob
    // in chunks"; the start must be the current offset.
    let start = match req
        .headers()
        .get("Content-Range")
        .and_then(|v| v.to_str().ok())
    {
        None => None,
        Some(r) => {
            let r = r
                .trim()
                .trim_start_matches("bytes ")
                .trim_start_matches("bytes=");
            let start = r.split_once('-').and_then(|(s, _)| s.parse::<u64>().ok());
            match start {
                Some(s) => Some(s),
                None => {
                    return Err(
                        ApiError::new(ErrorCode::RangeInvalid, "malformed Content-Range")
                            .status(StatusCode::RANGE_NOT_SATISFIABLE),
                    )
                }
            }
        }
    };
    let offset = append_body(app, &name, &id, req, start).await?;
    upload_response(StatusCode::ACCEPTED, &name, &id, offset)
}

pub(super) async fn finish_upload(
    app: &App,
    name: String,
    id: String,
    params: &[(String, String)],
    req: Request<Incoming>,
) -> ApiResult {
    let Some(digest) = param(params, "digest") else {
        return Err(ApiError::new(
            ErrorCode::DigestInvalid,
            "digest query parameter required",
        ));
    };
    let digest = parse_digest(digest)?;
    append_body(app, &name, &id, req, None).await?;
    commit(app, &name, &id, &digest).await
}

pub(super) async fn cancel_upload(app: &App, name: String, id: String) -> ApiResult {
    let lock = upload_lock(app, &id);
    let _state = lock.lock().await;
    let storage = app.storage.clone();
    let (n, i) = (name, id.clone());
    blocking(move || storage.cancel_upload(&n, &i)).await?;
    forget_upload(app, &id);
    Response::builder()
        .status(StatusCode::NO_CONTENT)
        .body(empty())
        .map_err(ApiError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some((0, 9)));
        assert_eq!(parse_range("bytes=90-", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=-10", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=50-500", 100), Some((50, 99)));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=5-1", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
    }
}
