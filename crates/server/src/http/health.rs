//! `GET /health` (the process is alive) and `GET /ready` (the database answers) — seed 004.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::state::AppState;

/// Liveness: answers while the process runs.
#[utoipa::path(get, path = "/health", tag = "health", responses((status = 200, description = "Alive")))]
pub async fn health() -> Response {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") })).into_response()
}

/// Readiness: answers 200 only when the database does.
#[utoipa::path(get, path = "/ready", tag = "health",
    responses((status = 200, description = "Ready"), (status = 503, description = "Database unreachable")))]
pub async fn ready(State(app): State<AppState>) -> Response {
    match app.store.ping().await {
        Ok(()) => Json(json!({ "status": "ready", "database": app.store.backend().name() })).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            let mut resp = (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable", "database": app.store.backend().name() })),
            )
                .into_response();
            resp.extensions_mut().insert(super::PublicBody);
            resp
        }
    }
}

/// Prometheus metrics (`jinliu_provider_request_seconds`, …) in the text exposition format.
pub async fn metrics(axum::extract::State(app): axum::extract::State<AppState>) -> axum::response::Response {
    use axum::response::IntoResponse;
    match &app.metrics {
        Some(h) => {
            // The group-commit writer counts in atomics of its own (the store crate records no
            // metrics); copied in at each scrape, so units ÷ commits is the batching achieved.
            let writer = app.store.writer_stats();
            metrics::counter!("jinliu_db_commits_total").absolute(writer.commits);
            metrics::counter!("jinliu_db_units_total").absolute(writer.units);
            metrics::counter!("jinliu_db_batch_reruns_total").absolute(writer.reruns);
            metrics::counter!("jinliu_db_single_statement_commits_total").absolute(writer.single_statement);
            (
                [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                h.render(),
            )
                .into_response()
        }
        None => (
            axum::http::StatusCode::NOT_FOUND,
            "metrics are not enabled in this process",
        )
            .into_response(),
    }
}
