//! The hosted checkout front end: the built Vue app in `web/dist`, served from disk.
//!
//! `cargo build` stays free of Node: the binary reads `JINLIU_WEB_DIR` (default `./web/dist`) at
//! request time, so `make web` can rebuild it under a running server. Owns the paths `/pay/…`
//! (the page, an SPA: every payment id gets the same `index.html`), `/assets/…` (Vite's hashed
//! files, cached for a year) and `/js/…` (the `jinliu.js` drop-in for merchant sites). It holds no
//! payment data: the page fetches that with the payment's client secret from the API routes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower::ServiceBuilder;
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;

use super::PublicBody;
use crate::state::AppState;

/// The page's Content-Security-Policy: only this origin's scripts, styles, images and API; no
/// inline script, no framing (clickjacking a pay page), no forms, no `<base>` tricks. `data:`
/// images are for the UI library's inline icons.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; font-src 'self' data:; manifest-src 'self'; base-uri 'none'; form-action 'none'; \
frame-ancestors 'none'";

/// Vite names every file under `assets/` by its content hash, so a file never changes: cache it
/// for a year. `index.html` and `jinliu.js` keep fixed names and are revalidated every time.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const REVALIDATE: &str = "no-cache";

/// The routes of the front end, reading files under `dir`.
pub fn routes(dir: &Path) -> Router<AppState> {
    let index = Arc::new(dir.join("index.html"));
    if !index.is_file() {
        tracing::warn!(
            web_dir = %dir.display(),
            "the checkout front end is not built: /pay/… will answer 503 until `make web` builds it \
             (or set JINLIU_WEB_DIR / --web-dir to a built web/dist)"
        );
    }
    let page = {
        let index = index.clone();
        get(move || page(index.clone()))
    };
    let assets = ServiceBuilder::new()
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static(IMMUTABLE),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .service(ServeDir::new(dir.join("assets")));
    let js = ServiceBuilder::new()
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static(REVALIDATE),
        ))
        // A module script from another origin (the merchant's page) is fetched in CORS mode.
        .layer(SetResponseHeaderLayer::overriding(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .service(ServeDir::new(dir.join("js")));
    Router::new()
        .route("/pay/{payment_id}", page)
        .nest_service("/assets", assets)
        .nest_service("/js", js)
}

/// `index.html` for any payment id; the app reads the id and the client secret from the URL.
async fn page(index: Arc<PathBuf>) -> Response {
    match tokio::fs::read(index.as_path()).await {
        Ok(html) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, REVALIDATE),
                (header::CONTENT_SECURITY_POLICY, CSP),
                // The URL carries the client secret: never send it to the pages the customer
                // follows from here (the provider's pay page).
                (header::REFERRER_POLICY, "no-referrer"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (header::X_FRAME_OPTIONS, "DENY"),
            ],
            html,
        )
            .into_response(),
        Err(e) => {
            tracing::warn!(path = %index.display(), error = %e, "checkout page missing: run `make web`");
            not_built()
        }
    }
}

/// 503 with a page that says how to build the front end. Marked public: it names no secret,
/// only the build command, and the operator needs to read it.
fn not_built() -> Response {
    let mut r = (
        StatusCode::SERVICE_UNAVAILABLE,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Body::from(
            "<!doctype html><meta charset=\"utf-8\"><title>Checkout page not built</title>\
             <h1>The checkout page is not built</h1>\
             <p>Build it with <code>make web</code> (runs <code>npm ci</code> and <code>npm run build</code> in \
             <code>web/</code>), or point <code>JINLIU_WEB_DIR</code> / <code>--web-dir</code> at a built \
             <code>web/dist</code>.</p>",
        ),
    )
        .into_response();
    r.extensions_mut().insert(PublicBody);
    r
}
