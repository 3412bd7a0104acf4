//! Request extractors: JSON bodies with stable error codes, the idempotency key and the
//! caller's scope.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use jinliu_store::Scope;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// Most bytes a request body may have (larger bodies answer 413).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A JSON body, parsed, plus its raw bytes (for the idempotency request hash).
pub struct ApiJson<T> {
    /// The parsed body.
    pub value: T,
    /// The bytes as received.
    pub raw: Bytes,
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let mime = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        let is_json = mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"));
        let raw = Bytes::from_request(req, state).await.map_err(|rej| {
            if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "request body is larger than 1 MiB",
                )
            } else {
                ApiError::bad_request("could not read the request body")
            }
        })?;
        if !is_json {
            // An empty body with no content type is an empty JSON object: `POST …/cancel` and a
            // full refund need no body at all.
            if raw.is_empty() && mime.is_empty() {
                return parse(b"{}").map(|value| ApiJson { value, raw });
            }
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as application/json",
            ));
        }
        let body: &[u8] = if raw.is_empty() { b"{}" } else { &raw };
        parse(body).map(|value| ApiJson { value, raw })
    }
}

fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Syntax | Category::Eof => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", format!("malformed JSON: {e}"))
            }
            Category::Data | Category::Io => ApiError::bad_request(e.to_string()),
        }
    })
}

/// The `Idempotency-Key` header, when sent.
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let Some(v) = parts.headers.get("idempotency-key") else {
            return Ok(IdempotencyKey(None));
        };
        let key = v
            .to_str()
            .ok()
            .filter(|k| !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| (0x21..=0x7e).contains(&b)))
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_idempotency_key",
                    "Idempotency-Key must be 1–255 visible ASCII characters",
                )
            })?;
        Ok(IdempotencyKey(Some(key.to_owned())))
    }
}

/// The principal the route's access check authenticated (`routes::require`). A handler behind
/// a route without a permission has no principal, and asking for one is a bug: it answers 500.
pub struct Authenticated(pub std::sync::Arc<crate::auth::Principal>);

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<std::sync::Arc<crate::auth::Principal>>()
            .cloned()
            .map(Authenticated)
            .ok_or_else(|| ApiError::internal("a principal was asked for on a route without an access check"))
    }
}

/// The client's address as the connection saw it (`None` where the server was started without
/// connect info, e.g. in some tests). Behind a proxy this is the proxy's address.
pub struct PeerIp(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for PeerIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(PeerIp(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// The caller's store scope (merchant and mode), from its [`Authenticated`] principal.
pub struct Caller(pub Scope);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Authenticated(p) = Authenticated::from_request_parts(parts, state).await?;
        Ok(Caller(p.scope()))
    }
}

/// A raw body (for signature checks), with the same 413 answer as JSON bodies.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        Bytes::from_request(req, state).await.map(RawBody).map_err(|rej| {
            if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "request body is larger than 1 MiB",
                )
            } else {
                ApiError::bad_request("could not read the request body")
            }
        })
    }
}
