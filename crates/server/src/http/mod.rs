//! The HTTP layer: routes, middleware, extractors, the error type and the wire DTOs.
//!
//! Handlers are thin: extract, parse into domain types, call a service, render. Every route under
//! `/api` is also served at the root so seed 000's paths (`/orders`, `/payments/refund/:id`)
//! work unchanged.

pub mod audit;
pub mod auth;
pub mod dto;
pub mod error;
pub mod extract;
pub mod health;
pub mod idempotency;
pub mod keys;
pub mod merchant;
pub mod notify;
pub mod openapi;
pub mod orders;
pub mod payments;
pub mod provider_accounts;
pub mod qr;
pub mod routes;
pub mod users;
pub mod validate;
pub mod watch;
pub mod web;
pub mod webhooks;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::state::AppState;
use error::ApiError;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole router.
pub fn router(app: AppState) -> Router {
    let r = Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", get(health::metrics))
        .route(
            "/api/openapi.json",
            get(|| async { ([(header::CONTENT_TYPE, "application/json")], openapi::json()) }),
        )
        .nest("/api", routes::api(&app))
        .merge(routes::api(&app))
        .merge(web::routes(&app.config.web_dir));
    // The sandboxes answer like the providers they imitate (their own error formats, injected
    // 5xx), so they sit outside jinliu's middleware.
    let sandboxes = app
        .config
        .sandbox
        .then(|| jinliu_providers::sandbox::router(&app.config.public_url));
    // Socket.IO answers `/socket.io/` before the API's layers: it speaks its own protocol
    // (long-polling and websocket) and does its own access check per join.
    let (socket_io, _) = crate::realtime::socketio::layer(app.clone());
    let r = with_middleware(
        r.fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed)
            .with_state(app),
    )
    .layer(socket_io);
    match sandboxes {
        Some(s) => s.merge(r),
        None => r,
    }
}

/// The layers every route gets: request ids, tracing, panic capture, 5xx scrubbing, body limit.
/// Order matters: the panic catcher sits inside the 5xx scrubber, so a panic's answer gets the
/// request id like every other 5xx.
fn with_middleware(r: Router) -> Router {
    r.layer(DefaultBodyLimit::max(extract::MAX_BODY_BYTES))
        .layer(middleware::from_fn(audit_context))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::internal("a handler panicked").into_response()
        }))
        .layer(middleware::from_fn(server_errors))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<Body>| {
            // Every log line of a request carries its id, the one 5xx answers show the client.
            let id = req
                .headers()
                .get(&REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
        }))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// Every request runs inside an audit context carrying its request id, client address and user
/// agent; the access checks of `routes` name the actor once the credential is known.
async fn audit_context(req: Request<Body>, next: middleware::Next) -> axum::response::Response {
    let ctx = audit_context_of(&req);
    jinliu_store::with_audit_context(ctx, next.run(req)).await
}

fn audit_context_of(req: &Request<Body>) -> jinliu_domain::AuditContext {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    jinliu_domain::AuditContext {
        request_id: header(REQUEST_ID.as_str()),
        ip: req
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip().to_string()),
        user_agent: header("user-agent"),
        ..jinliu_domain::AuditContext::bare(jinliu_domain::AuditActor::Anonymous)
    }
}

/// Marks a 5xx response whose body is public by design (the readiness probe's), so the scrubber
/// leaves it alone.
#[derive(Debug, Clone, Copy)]
pub struct PublicBody;

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "route_not_found", "no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method",
    )
}

/// Every 5xx answer carries the request id and nothing else of the failure: the stable code and
/// message of an [`ApiError`] are kept, anything else (a panic, a layer's own error) becomes
/// `internal_error`.
async fn server_errors(req: Request, next: Next) -> Response {
    let request_id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let resp = next.run(req).await;
    if !resp.status().is_server_error() || resp.extensions().get::<PublicBody>().is_some() {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024).await.unwrap_or_default();
    let original: Option<serde_json::Value> = serde_json::from_slice(&bytes).ok();
    let known = original.as_ref().and_then(|v| v.get("error")).and_then(|e| {
        Some((
            e.get("code")?.as_str()?.to_owned(),
            e.get("message")?.as_str()?.to_owned(),
        ))
    });
    let (code, message) = match known {
        Some(k) => k,
        None => {
            // Not an ApiError (a layer's or a nested service's own answer): keep it for the
            // operator, send the client nothing of it.
            let text = String::from_utf8_lossy(&bytes[..bytes.len().min(2048)]).into_owned();
            tracing::error!(status = parts.status.as_u16(), request_id = %request_id, body = %text, "server error");
            ("internal_error".into(), "internal error".into())
        }
    };
    if code == "internal_error" {
        tracing::error!(status = parts.status.as_u16(), request_id = %request_id, "answered internal_error");
    }
    let body = json!({
        "success": false,
        "error": { "code": code, "message": message, "requestId": request_id },
        "message": message,
    });
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    async fn call(router: Router) -> (StatusCode, Option<String>, serde_json::Value) {
        let req = Request::builder().uri("/boom").body(Body::empty()).unwrap_or_default();
        let resp = router.oneshot(req).await.unwrap_or_else(|e| match e {});
        let status = resp.status();
        let id = resp
            .headers()
            .get(&REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap_or_default();
        (status, id, serde_json::from_slice(&bytes).unwrap_or_default())
    }

    #[tokio::test]
    async fn a_panic_becomes_a_500_that_carries_the_request_id_and_nothing_else() {
        async fn boom() -> &'static str {
            panic!("database password is hunter2")
        }
        let router = with_middleware(Router::new().route("/boom", get(boom)));
        let (status, id, body) = call(router).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["error"]["code"], "internal_error");
        assert_eq!(body["error"]["requestId"].as_str(), id.as_deref());
        assert!(!body.to_string().contains("hunter2"));
    }

    #[tokio::test]
    async fn an_internal_error_keeps_its_stable_code_but_not_its_cause() {
        let router = with_middleware(
            Router::new().route("/boom", get(|| async { ApiError::internal("disk full at /var/lib/x") })),
        );
        let (status, _, body) = call(router).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["error"]["message"], "internal error");
        assert!(!body.to_string().contains("/var/lib"));
        assert!(body["error"].get("details").is_none());
    }

    #[tokio::test]
    async fn a_public_5xx_body_such_as_the_readiness_probe_s_is_left_alone() {
        async fn probe() -> Response {
            let mut r = (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({ "status": "unavailable" })),
            )
                .into_response();
            r.extensions_mut().insert(PublicBody);
            r
        }
        let (status, _, body) = call(with_middleware(Router::new().route("/boom", get(probe)))).await;
        assert_eq!(
            (status, body["status"].as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, Some("unavailable"))
        );
    }
}
