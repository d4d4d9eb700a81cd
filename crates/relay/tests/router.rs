//! The router called in-process (no socket, no client address): what the handlers and layers
//! answer, without a network.

mod common;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use bedside_relay::router;
use bedside_relay::store::SqliteStore;
use std::sync::Arc;
use tower::ServiceExt;

#[tokio::test]
async fn the_router_answers_in_process_and_head_never_burns_a_share() {
    let mut config = common::config(common::folder("router"));
    // Without a client address there is nothing to limit by: the limit is skipped, not fatal.
    config.rate_per_minute = 1;
    let store = Arc::new(SqliteStore::open(&config.data_dir).unwrap());
    let app = router(&config, store);
    let send = |method: &str, uri: &str, body: &'static [u8]| {
        let request = Request::builder().method(method).uri(uri).body(Body::from(body)).unwrap();
        let app = app.clone();
        async move {
            let response = app.oneshot(request).await.unwrap();
            let status = response.status();
            (status, to_bytes(response.into_body(), usize::MAX).await.unwrap())
        }
    };
    let (status, created) = send("POST", "/api/shares?burn=1", b"sealed").await;
    assert_eq!(status, StatusCode::CREATED);
    let created: serde_json::Value = serde_json::from_slice(&created).unwrap();
    let share = format!("/api/shares/{}", created["id"].as_str().unwrap());

    let (status, body) = send("HEAD", &share, b"").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body.as_ref(), b"", "a HEAD answer has no body");
    let (status, body) = send("GET", &share, b"").await;
    assert_eq!((status, body.as_ref()), (StatusCode::OK, b"sealed".as_slice()), "HEAD left it unread");
    let (status, body) = send("GET", &share, b"").await;
    assert_eq!(status, StatusCode::GONE);
    assert_eq!(body.as_ref(), br#"{"error":"this share could be read once and has been read"}"#);
    let (status, _) = send("PATCH", &share, b"").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}
