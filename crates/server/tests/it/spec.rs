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

#[test]
fn the_committed_security_doc_matches_the_route_table() {
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/security.md")).unwrap_or_default();
    assert!(
        committed == jinliu_server::http::routes::security_doc(),
        "docs/security.md is stale: run `cargo run -q -p jinliu-server -- routes > docs/security.md`"
    );
}

#[test]
fn every_route_in_the_openapi_description_is_in_the_route_table() {
    // The table is what the router is built from; the description must not list a route the
    // table does not know (or the other way round) under /api.
    let spec: serde_json::Value = serde_json::from_str(&jinliu_server::http::openapi::json()).unwrap_or_default();
    let table: Vec<String> = jinliu_server::http::routes::table()
        .iter()
        .map(|(r, _)| format!("{} /api{}", r.method.as_str().to_lowercase(), r.path))
        .collect();
    let mut described = Vec::new();
    for (path, ops) in spec["paths"].as_object().into_iter().flatten() {
        if !path.starts_with("/api/") || path == "/api/openapi.json" {
            continue;
        }
        for method in ops.as_object().into_iter().flatten().map(|(m, _)| m) {
            described.push(format!("{method} {path}"));
        }
    }
    for d in &described {
        assert!(table.contains(d), "{d} is described but not in the route table");
    }
    for t in &table {
        assert!(described.contains(t), "{t} is in the route table but not described");
    }
}
