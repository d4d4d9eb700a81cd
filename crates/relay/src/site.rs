//! What every response gets (security headers, the access log line) and the built page's files.

use crate::AppState;
use crate::api::ApiError;
use crate::limit::client_address;
use axum::body::{Body, HttpBody};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bedside_site_policy::{SECURITY_HEADERS, content_type, etag, negotiate, not_modified, resolve};
use std::net::SocketAddr;
use std::time::Instant;

/// [`SECURITY_HEADERS`] as typed headers (the list is a constant: a name it cannot hold is a bug
/// found by the first test, not at a request).
pub fn security_headers() -> Vec<(HeaderName, HeaderValue)> {
    SECURITY_HEADERS
        .iter()
        .map(|(name, value)| {
            let name = HeaderName::from_bytes(name.as_bytes()).expect("a valid header name");
            (name, HeaderValue::from_static(value))
        })
        .collect()
}

/// Adds the security headers to every response (API and page alike), and logs one line per
/// request: method, path (never the query, never a body), status and body lengths.
pub async fn headers_and_log(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let length_in = content_length(request.headers());
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in state.security_headers.iter() {
        headers.insert(name, value.clone());
    }
    headers.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    if state.log {
        // The length is known here only from the body (hyper writes the header later).
        let length_out =
            response.body().size_hint().exact().unwrap_or_else(|| content_length(response.headers()));
        eprintln!("{method} {path} {} in={length_in} out={length_out}", response.status().as_u16());
    }
    response
}

fn content_length(headers: &axum::http::HeaderMap) -> u64 {
    headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse().ok()).unwrap_or(0)
}

/// Refuses API requests beyond the client address's rate (429 with `Retry-After`).
pub async fn rate_limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    // Served without a client address (a router called in-process): nothing to limit by.
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let client = client_address(request.headers(), peer, state.trust_forwarded_for);
    if let Some(client) = client.filter(|_| request.uri().path().starts_with("/api/"))
        && let Err(seconds) = state.limiter.take(client, Instant::now())
    {
        return ApiError::TooMany(seconds).into_response();
    }
    next.run(request).await
}

/// Everything the API's routes do not name: the built page's files (GET and HEAD; a file's gzip copy
/// to a client that takes it, `bedside_site_policy::negotiate`; 304 to one that has it already,
/// `not_modified`), or a JSON 404.
pub async fn fallback(
    State(state): State<AppState>,
    method: Method,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
) -> Response {
    let path = uri.path();
    if path == "/api" || path.starts_with("/api/") {
        return ApiError::NotFound("no such API endpoint").into_response();
    }
    if method != Method::GET && method != Method::HEAD {
        return ApiError::MethodNotAllowed.into_response();
    }
    let Some(site) = state.site.clone() else {
        return ApiError::NotFound("this relay serves the API only (no site folder)").into_response();
    };
    let target = path.to_string();
    let accept = headers.get(header::ACCEPT_ENCODING).and_then(|v| v.to_str().ok()).map(str::to_string);
    let found = tokio::task::spawn_blocking(move || {
        resolve(&site, &target).map(|file| (negotiate(&file, accept.as_deref()), file))
    });
    let Some((sent, file)) = found.await.ok().flatten() else {
        return ApiError::NotFound("no such file").into_response();
    };
    let Ok(metadata) = tokio::fs::metadata(&sent.body).await else {
        return ApiError::NotFound("no such file").into_response();
    };
    let tag = etag(&sent, &metadata);
    let unchanged = not_modified(headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()), &tag);
    let body = if unchanged { Ok(Vec::new()) } else { tokio::fs::read(&sent.body).await };
    match body {
        Ok(bytes) => {
            // File names carry no hash: always revalidate (the service worker keeps the offline copy).
            let status = if unchanged { StatusCode::NOT_MODIFIED } else { StatusCode::OK };
            let mut response = (
                status,
                [(header::CONTENT_TYPE, content_type(&file)), (header::CACHE_CONTROL, "no-cache")],
                Body::from(bytes),
            )
                .into_response();
            let headers = response.headers_mut();
            for (name, value) in sent.headers(&tag) {
                let name = HeaderName::from_bytes(name.as_bytes()).expect("a valid header name");
                if let Ok(value) = HeaderValue::from_str(&value) {
                    headers.insert(name, value);
                }
            }
            response
        }
        Err(_) => ApiError::NotFound("no such file").into_response(),
    }
}

/// 405 for a method an API route does not have.
pub async fn method_not_allowed() -> Response {
    ApiError::MethodNotAllowed.into_response()
}
