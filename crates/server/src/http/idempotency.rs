//! `Idempotency-Key` handling for POST requests.
//!
//! The first answer to a key is kept 24 hours per caller and replayed with the same status (and
//! `Idempotent-Replayed: true`); the same key with a different request answers 422
//! `idempotency_key_reused`; a duplicate while the first is still running answers 409
//! `idempotency_key_in_use`. The answer is written by the store in the same transaction as the
//! state change, so a crash can never leave a change without its answer or the reverse. Requests
//! refused before the store is touched (validation) are not kept.

use std::future::Future;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jinliu_store::{IdemRequest, IdempotencyRecord, Scope, StoreError, StoredResponse};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use crate::state::AppState;

/// What a unit of work needs to record the key; build one [`IdemRequest`] per unit.
#[derive(Debug, Clone)]
pub struct IdemCtx {
    scope: String,
    key: String,
    request_hash: String,
    now_ms: i64,
}

impl IdemCtx {
    /// The record request for a unit whose success renders with `render_ok`. `finish = false`
    /// marks the key in flight (more units follow). A renderer may capture configuration (the
    /// payment renderer needs the public URL for `checkoutUrl`), hence a closure, not a `fn`.
    pub fn request<T: 'static>(
        &self,
        finish: bool,
        render_ok: impl Fn(&T) -> StoredResponse + Send + Sync + 'static,
    ) -> IdemRequest<T> {
        IdemRequest {
            scope: self.scope.clone(),
            key: self.key.clone(),
            request_hash: self.request_hash.clone(),
            finish,
            now_ms: self.now_ms,
            render: Box::new(move |r: Result<&T, &StoreError>| match r {
                Ok(v) => Some(render_ok(v)),
                Err(e) if e.is_business() => Some(ApiError::from(e.clone()).stored()),
                Err(_) => None,
            }),
        }
    }
}

/// Turns a stored (or freshly rendered) answer into a response.
pub fn respond(r: StoredResponse) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        r.body,
    )
        .into_response()
}

fn replay(r: StoredResponse) -> Response {
    let mut resp = respond(r);
    resp.headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    resp
}

/// Runs `work` at most once per caller + key. `render_ok` renders the success answer, the same
/// way for the live response and for what is kept.
pub async fn run<T, R, F, Fut>(
    app: &AppState,
    scope: &Scope,
    key: Option<String>,
    method_path: &str,
    raw_body: &[u8],
    render_ok: R,
    work: F,
) -> Response
where
    R: Fn(&T) -> StoredResponse,
    F: FnOnce(Option<IdemCtx>) -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    let Some(key) = key else {
        return finish(work(None).await, render_ok);
    };
    let scope_key = format!("{}:{}", scope.merchant_id, if scope.livemode { "live" } else { "test" });
    let mut hasher = Sha256::new();
    hasher.update(method_path.as_bytes());
    hasher.update(b"\n");
    hasher.update(raw_body);
    let request_hash = hex::encode(hasher.finalize());
    let now_ms = app.clock.now().timestamp_millis();

    // Claim first, then look up: a request that looked up first could miss an answer committed
    // while it waited for the claim, and run the work a second time.
    let Some(_guard) = InFlightGuard::claim(app, &scope_key, &key) else {
        return in_use().into_response();
    };
    if let Some(resp) = known(app, &scope_key, &key, &request_hash, now_ms).await {
        return resp;
    }
    let ctx = IdemCtx {
        scope: scope_key.clone(),
        key: key.clone(),
        request_hash: request_hash.clone(),
        now_ms,
    };
    match work(Some(ctx)).await {
        // Another node finished the same key first: answer what it answered.
        Err(e) if e.code == "idempotency_key_in_use" => known(app, &scope_key, &key, &request_hash, now_ms)
            .await
            .unwrap_or_else(|| in_use().into_response()),
        other => finish(other, render_ok),
    }
}

fn finish<T>(r: Result<T, ApiError>, render_ok: impl Fn(&T) -> StoredResponse) -> Response {
    match r {
        Ok(v) => respond(render_ok(&v)),
        Err(e) => e.into_response(),
    }
}

fn in_use() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "idempotency_key_in_use",
        "a request with this idempotency key is being processed",
    )
}

async fn known(app: &AppState, scope: &str, key: &str, hash: &str, now_ms: i64) -> Option<Response> {
    let reused = || {
        ApiError::unprocessable(
            "idempotency_key_reused",
            "this idempotency key was used with a different request",
        )
        .into_response()
    };
    match app.store.idempotency_lookup(scope, key, now_ms).await {
        Ok(None) => None,
        Ok(Some(IdempotencyRecord::Complete { request_hash, response })) => Some(if request_hash == hash {
            replay(response)
        } else {
            reused()
        }),
        Ok(Some(IdempotencyRecord::InFlight { request_hash })) => Some(if request_hash == hash {
            in_use().into_response()
        } else {
            reused()
        }),
        Err(e) => Some(ApiError::from(e).into_response()),
    }
}

/// Marks a key as running on this node; released on drop, even if the client disconnects.
struct InFlightGuard {
    app: AppState,
    entry: (String, String),
}

impl InFlightGuard {
    fn claim(app: &AppState, scope: &str, key: &str) -> Option<InFlightGuard> {
        let entry = (scope.to_owned(), key.to_owned());
        let mut set = app.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        set.insert(entry.clone()).then(|| InFlightGuard {
            app: app.clone(),
            entry,
        })
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.app
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.entry);
    }
}
