//! The OpenAPI description: served, and the committed copy is current.

use crate::spawn_app;

#[tokio::test]
async fn the_openapi_description_is_served_and_names_every_route() {
    let app = spawn_app().await;
    let a = app.get("/api/openapi.json").await;
    assert_eq!(a.status, 200);
    assert!(a.body["openapi"].as_str().unwrap_or("").starts_with("3.1"));
    for path in [
        "/api/orders",
        "/api/payments",
        "/api/payments/refund/{id}",
        "/api/payments/{id}/refunds",
        "/health",
        "/ready",
    ] {
        assert!(a.body["paths"].get(path).is_some(), "{path} missing");
    }
}

#[test]
fn the_committed_api_spec_matches_the_code() {
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api-spec.yaml")).unwrap_or_default();
    let generated = jinliu_server::http::openapi::yaml();
    assert!(
        committed == generated,
        "docs/api-spec.yaml is stale: run `cargo run -q -p jinliu-server -- openapi > docs/api-spec.yaml`"
    );
}
