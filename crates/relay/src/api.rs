//! The shares API: handlers over a [`Store`](crate::store::Store), and its JSON errors.

use crate::AppState;
use crate::secret::{DeleteToken, RandomError, ShareId};
use crate::store::{Deletion, Lookup, NewShare, StoreError};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

/// A share lives a week unless its sender chooses otherwise.
pub const DEFAULT_TTL: i64 = 7 * 24 * 3600;
/// ... and at most 30 days.
pub const MAX_TTL: i64 = 30 * 24 * 3600;
/// Replies a share may hold (each up to the reply size limit).
pub const MAX_REPLIES: u32 = 100;

/// Every refusal of the API, sent as `{"error": "<message>"}` with its status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("send the delete token as `Authorization: Bearer <token>`")]
    NoToken,
    #[error("the delete token is not this share's")]
    WrongToken,
    #[error("no share with this id (it may have expired and been removed, or been deleted)")]
    NoShare,
    #[error("this share has expired")]
    Expired,
    #[error("this share could be read once and has been read")]
    Burnt,
    #[error("this share already has its {MAX_REPLIES} replies")]
    RepliesFull,
    #[error("the upload is larger than this relay's limit of {0} bytes")]
    TooLarge(usize),
    #[error("too many requests from this address: try again in {0} s")]
    TooMany(u64),
    #[error("{0}")]
    NotFound(&'static str),
    #[error("method not allowed here")]
    MethodNotAllowed,
    #[error("the relay's storage failed; try again later")]
    Storage(#[source] StoreError),
    #[error("the request failed inside the relay")]
    Internal,
    #[error("the relay could not draw a random id; try again later")]
    Random(#[source] RandomError),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) | ApiError::NoToken => StatusCode::BAD_REQUEST,
            ApiError::WrongToken => StatusCode::FORBIDDEN,
            ApiError::NoShare | ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Expired | ApiError::Burnt => StatusCode::GONE,
            ApiError::RepliesFull => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Storage(_) | ApiError::Random(_) | ApiError::Internal => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            // The cause is for the operator, not the client.
            ApiError::Storage(cause) => eprintln!("relay: storage error: {cause}"),
            ApiError::Random(cause) => eprintln!("relay: {cause}"),
            _ => {}
        }
        let mut response = (self.status(), Json(json!({ "error": self.to_string() }))).into_response();
        if let ApiError::TooMany(seconds) = self {
            response.headers_mut().insert(header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

impl<T> From<Lookup<T>> for ApiError {
    /// The refusal a lookup that found nothing to return stands for.
    fn from(lookup: Lookup<T>) -> ApiError {
        match lookup {
            Lookup::Found(_) | Lookup::Missing => ApiError::NoShare,
            Lookup::Expired => ApiError::Expired,
            Lookup::Burnt => ApiError::Burnt,
            Lookup::Full => ApiError::RepliesFull,
        }
    }
}

/// The query of `POST /api/shares`: `ttl` in seconds, `burn=1` for burn-after-reading.
#[derive(Deserialize)]
pub struct ShareOptions {
    ttl: Option<String>,
    burn: Option<String>,
}

impl ShareOptions {
    fn ttl(&self) -> Result<i64, ApiError> {
        let Some(ttl) = &self.ttl else { return Ok(DEFAULT_TTL) };
        ttl.parse().ok().filter(|t| (1..=MAX_TTL).contains(t)).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "ttl must be a whole number of seconds from 1 to {MAX_TTL}, not {ttl:?}"
            ))
        })
    }

    fn burn(&self) -> Result<bool, ApiError> {
        match self.burn.as_deref() {
            None | Some("0" | "false") => Ok(false),
            Some("1" | "true") => Ok(true),
            Some(other) => Err(ApiError::BadRequest(format!("burn must be 1 or 0, not {other:?}"))),
        }
    }
}

/// `POST /api/shares`: stores the body, answers `{"id", "delete_token", "expires_at"}` (201).
pub async fn create_share(
    State(state): State<AppState>,
    options: Result<Query<ShareOptions>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Query(options) =
        options.map_err(|e| ApiError::BadRequest(format!("malformed query: {}", e.body_text())))?;
    let body = body_of(body, state.limits.max_upload)?;
    if body.is_empty() {
        return Err(ApiError::BadRequest("the share is empty: post its ciphertext as the body".into()));
    }
    let now = state.clock.now();
    let token = DeleteToken::random().map_err(ApiError::Random)?;
    let share = NewShare {
        id: ShareId::random().map_err(ApiError::Random)?,
        token: token.hash(),
        // No copy: the body's buffer is handed over whole.
        ciphertext: Vec::from(body),
        created_at: now,
        expires_at: now + options.ttl()?,
        burn_after_reading: options.burn()?,
    };
    let (id, expires_at) = (share.id, share.expires_at);
    state.blocking(move |store| store.put_share(&share)).await?;
    let reply = json!({ "id": id.to_string(), "delete_token": token.to_hex(), "expires_at": expires_at });
    Ok((StatusCode::CREATED, Json(reply)).into_response())
}

/// `GET /api/shares/{id}`: the ciphertext as posted.
pub async fn read_share(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = share_id(id)?;
    let now = state.clock.now();
    match state.blocking(move |store| store.read_share(&id, now)).await? {
        Lookup::Found(ciphertext) => Ok(octets(ciphertext)),
        refused => Err(refused.into()),
    }
}

/// `DELETE /api/shares/{id}` with `Authorization: Bearer <delete token>`: 204.
pub async fn delete_share(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = share_id(id)?;
    let given = headers.get(header::AUTHORIZATION).ok_or(ApiError::NoToken)?;
    let token = given.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")).ok_or(ApiError::NoToken)?;
    // A token of the wrong shape cannot be the share's: the same answer as a wrong one.
    let token = DeleteToken::parse(token.trim()).ok_or(ApiError::WrongToken)?.hash();
    match state.blocking(move |store| store.delete_share(&id, &token)).await? {
        Deletion::Deleted => Ok(StatusCode::NO_CONTENT.into_response()),
        Deletion::WrongToken => Err(ApiError::WrongToken),
        Deletion::Missing => Err(ApiError::NoShare),
    }
}

/// `POST /api/shares/{id}/replies`: stores the body as the share's next reply, answers
/// `{"replies": <count>}` (201).
pub async fn add_reply(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let id = share_id(id)?;
    let body = body_of(body, state.limits.max_reply)?;
    if body.is_empty() {
        return Err(ApiError::BadRequest("the reply is empty: post its ciphertext as the body".into()));
    }
    let now = state.clock.now();
    match state.blocking(move |store| store.add_reply(&id, &body, now, MAX_REPLIES)).await? {
        Lookup::Found(count) => Ok((StatusCode::CREATED, Json(json!({ "replies": count }))).into_response()),
        refused => Err(refused.into()),
    }
}

/// `GET /api/shares/{id}/replies`: every reply, oldest first, each as a 4-byte big-endian length
/// and that many bytes (an empty body when there is none).
pub async fn replies(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = share_id(id)?;
    let now = state.clock.now();
    match state.blocking(move |store| store.replies(&id, now)).await? {
        Lookup::Found(bodies) => Ok(octets(frame(&bodies))),
        refused => Err(refused.into()),
    }
}

/// Replies as one body: each a big-endian `u32` length, then its bytes.
pub fn frame(bodies: &[Vec<u8>]) -> Vec<u8> {
    let mut framed = Vec::with_capacity(bodies.iter().map(|b| 4 + b.len()).sum());
    for body in bodies {
        // Replies are limited far below 4 GiB when posted.
        framed.extend_from_slice(&(body.len() as u32).to_be_bytes());
        framed.extend_from_slice(body);
    }
    framed
}

fn octets(bytes: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response()
}

fn share_id(id: Result<Path<String>, PathRejection>) -> Result<ShareId, ApiError> {
    let invalid = || ApiError::BadRequest("a share id is 32 lowercase hex digits".into());
    let Path(id) = id.map_err(|_| invalid())?;
    ShareId::parse(&id).ok_or_else(invalid)
}

fn body_of(body: Result<Bytes, BytesRejection>, limit: usize) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge(limit),
        _ => ApiError::BadRequest(format!("could not read the request body: {}", rejection.body_text())),
    })
}
