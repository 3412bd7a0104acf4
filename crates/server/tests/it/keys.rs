//! `/api/keys`: create (shown once, stored hashed), list, roll with overlap, revoke; no key can
//! be made that may do more than its maker; no body can smuggle in a mode or another merchant.

use serde_json::json;

use crate::{Answer, TestApp, spawn_app};

async fn with_key(app: &TestApp, key: &str, method: &str, path: &str, body: serde_json::Value) -> Answer {
    let url = format!("{}{path}", app.base);
    let req = match method {
        "GET" => app.anon.get(url),
        _ => app.anon.post(url).json(&body),
    };
    app.send(req.header("authorization", format!("Bearer {key}"))).await
}

#[tokio::test]
async fn a_created_key_works_at_once_is_never_listed_with_its_text_and_dies_when_revoked() {
    let app = spawn_app().await;
    let made = app
        .post(
            "/api/keys",
            json!({ "permissions": ["orders:read"], "description": "reporting" }),
        )
        .await;
    assert_eq!(made.status, 201, "{:?}", made.body);
    let secret = made.data()["secret"].as_str().unwrap_or_default().to_owned();
    assert!(secret.starts_with("jl_sk_test_"), "test credentials make test keys");
    assert_eq!(made.data()["permissions"], json!(["orders:read"]));
    assert_eq!(
        with_key(&app, &secret, "GET", "/api/orders", json!(null)).await.status,
        200
    );
    let denied = with_key(&app, &secret, "POST", "/api/orders", json!({ "amount": 1 })).await;
    assert_eq!((denied.status, denied.code()), (403, "permission_denied"));
    let list = app.get("/api/keys").await;
    assert!(!list.text.contains(&secret), "a key's text is shown once");
    assert!(
        list.text
            .contains(&made.data()["prefix"].as_str().unwrap_or("?").to_owned())
    );
    let id = made.id();
    let revoked = app.post(&format!("/api/keys/{id}/revoke"), json!({})).await;
    assert_eq!(revoked.status, 200, "{:?}", revoked.body);
    let a = with_key(&app, &secret, "GET", "/api/orders", json!(null)).await;
    assert_eq!((a.status, a.code()), (401, "invalid_credentials"));
    let again = app.post(&format!("/api/keys/{id}/revoke"), json!({})).await;
    assert_eq!((again.status, again.code()), (409, "key_revoked"));
}

#[tokio::test]
async fn a_rolled_key_overlaps_with_its_successor_or_stops_at_once() {
    let app = spawn_app().await;
    let made = app.post("/api/keys", json!({})).await;
    let old = made.data()["secret"].as_str().unwrap_or_default().to_owned();
    let rolled = app
        .post(&format!("/api/keys/{}/roll", made.id()), json!({ "overlapHours": 24 }))
        .await;
    assert_eq!(rolled.status, 201, "{:?}", rolled.body);
    let new = rolled.data()["secret"].as_str().unwrap_or_default().to_owned();
    assert_ne!(old, new);
    assert_eq!(
        with_key(&app, &old, "GET", "/api/orders", json!(null)).await.status,
        200,
        "overlap"
    );
    assert_eq!(
        with_key(&app, &new, "GET", "/api/orders", json!(null)).await.status,
        200
    );
    let rolled_now = app
        .post(&format!("/api/keys/{}/roll", rolled.id()), json!({ "overlapHours": 0 }))
        .await;
    assert_eq!(rolled_now.status, 201);
    assert_eq!(
        with_key(&app, &new, "GET", "/api/orders", json!(null)).await.status,
        401,
        "no overlap"
    );
}

#[tokio::test]
async fn a_restricted_key_cannot_mint_a_more_powerful_one() {
    let app = spawn_app().await;
    let limited = app
        .post("/api/keys", json!({ "permissions": ["keys:manage", "orders:read"] }))
        .await;
    let limited = limited.data()["secret"].as_str().unwrap_or_default().to_owned();
    let escalate = with_key(
        &app,
        &limited,
        "POST",
        "/api/keys",
        json!({ "permissions": ["refunds:write"] }),
    )
    .await;
    assert_eq!(
        (escalate.status, escalate.code()),
        (403, "permission_denied"),
        "{:?}",
        escalate.body
    );
    let platform = with_key(
        &app,
        &limited,
        "POST",
        "/api/keys",
        json!({ "permissions": ["payouts:approve"] }),
    )
    .await;
    assert_eq!((platform.status, platform.code()), (422, "invalid_permission"));
    // With no list, the new key gets the maker's own permissions, not everything.
    let same = with_key(&app, &limited, "POST", "/api/keys", json!({})).await;
    assert_eq!(same.status, 201, "{:?}", same.body);
    let mut perms: Vec<String> = serde_json::from_value(same.data()["permissions"].clone()).unwrap_or_default();
    perms.sort();
    assert_eq!(perms, ["keys:manage", "orders:read"]);
}

#[tokio::test]
async fn bodies_cannot_choose_the_mode_the_merchant_or_a_role() {
    let app = spawn_app().await;
    let before = app.counts().await;
    for body in [
        json!({ "livemode": true }),
        json!({ "merchantId": "mer_0000000000000000000000000000000f" }),
        json!({ "role": "platform_admin" }),
    ] {
        let a = app.post("/api/keys", body.clone()).await;
        assert_eq!((a.status, a.code()), (400, "invalid_request"), "{body}: {:?}", a.body);
    }
    for body in [
        json!({ "amount": 10, "currency": "HKD", "merchantId": "mer_0000000000000000000000000000000f" }),
        json!({ "amount": 10, "currency": "HKD", "livemode": true }),
    ] {
        let a = app.post("/api/orders", body.clone()).await;
        assert_eq!((a.status, a.code()), (400, "invalid_request"), "{body}: {:?}", a.body);
    }
    assert_eq!(app.counts().await, before);
}

#[tokio::test]
async fn a_rolled_keys_overlap_can_be_cut_short_by_revoking_it() {
    let app = spawn_app().await;
    let made = app.post("/api/keys", json!({})).await;
    let old = made.data()["secret"].as_str().unwrap_or_default().to_owned();
    let rolled = app
        .post(&format!("/api/keys/{}/roll", made.id()), json!({ "overlapHours": 168 }))
        .await;
    assert_eq!(rolled.status, 201);
    let revoked = app.post(&format!("/api/keys/{}/revoke", made.id()), json!({})).await;
    assert_eq!(
        revoked.status, 200,
        "a leaked key must not live out its overlap: {:?}",
        revoked.body
    );
    assert_eq!(
        with_key(&app, &old, "GET", "/api/orders", json!(null)).await.status,
        401
    );
}

#[tokio::test]
async fn a_key_manager_cannot_revoke_or_roll_a_more_powerful_key() {
    let app = spawn_app().await;
    let full = app.post("/api/keys", json!({})).await;
    let manager = app.post("/api/keys", json!({ "permissions": ["keys:manage"] })).await;
    let manager = manager.data()["secret"].as_str().unwrap_or_default().to_owned();
    for action in ["revoke", "roll"] {
        let a = with_key(
            &app,
            &manager,
            "POST",
            &format!("/api/keys/{}/{action}", full.id()),
            json!({}),
        )
        .await;
        assert_eq!(
            (a.status, a.code()),
            (403, "permission_denied"),
            "{action}: {:?}",
            a.body
        );
    }
    let still = full.data()["secret"].as_str().unwrap_or_default().to_owned();
    assert_eq!(
        with_key(&app, &still, "GET", "/api/orders", json!(null)).await.status,
        200
    );
}

#[tokio::test]
async fn a_retried_key_creation_makes_one_key_and_its_replay_holds_no_text() {
    let app = spawn_app().await;
    let before = app.get("/api/keys").await.data().as_array().map(Vec::len).unwrap_or(0);
    let body = json!({ "description": "retried" });
    let first = app.post_with_key("/api/keys", "key-retry-1", body.clone()).await;
    let again = app.post_with_key("/api/keys", "key-retry-1", body).await;
    assert_eq!((first.status, again.status), (201, 201), "{:?}", again.body);
    let secret = first.data()["secret"].as_str().unwrap_or_default().to_owned();
    assert!(secret.starts_with("jl_sk_test_"));
    assert!(again.replayed && again.id() == first.id(), "{:?}", again.body);
    assert!(!again.text.contains(&secret), "the replay never holds the key's text");
    let after = app.get("/api/keys").await.data().as_array().map(Vec::len).unwrap_or(0);
    assert_eq!(after, before + 1, "one key was made");
    let other = app
        .post_with_key("/api/keys", "key-retry-1", json!({ "description": "another" }))
        .await;
    assert_eq!((other.status, other.code()), (422, "idempotency_key_reused"));
}
