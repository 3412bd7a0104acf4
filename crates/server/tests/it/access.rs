//! Who may call what: the route table × every kind of credential. Every merchant route refuses a
//! missing, forged, revoked or publishable credential and a key without its permission, and
//! accepts a key restricted to exactly that permission; another merchant sees 404.

use jinliu_domain::{ApiKeyKind, Merchant, MerchantId, Permission};
use jinliu_server::http::routes::{Access, table};
use serde_json::json;

use crate::{Answer, TestApp, spawn_app};

/// A key for `merchant` (the test merchant when `None`).
async fn key(app: &TestApp, merchant: Option<&MerchantId>, kind: ApiKeyKind, perms: Option<Vec<Permission>>) -> String {
    let merchant = merchant
        .cloned()
        .unwrap_or_else(|| app.state.config.merchant_id.clone());
    app.state
        .auth
        .issue_key(&app.store, &merchant, kind, false, perms, None, chrono::Utc::now())
        .await
        .unwrap_or_else(|e| panic!("key: {e}"))
        .1
}

async fn call(app: &TestApp, method: &axum::http::Method, path: &str, bearer: Option<&str>) -> Answer {
    let url = format!("{}/api{path}", app.base);
    let mut req = crate::request(&app.anon, method, url);
    if let Some(b) = bearer {
        req = req.header("authorization", format!("Bearer {b}"));
    }
    app.send(req).await
}

#[tokio::test]
async fn every_route_in_the_table_enforces_its_access_for_every_kind_of_credential() {
    let app = spawn_app().await;
    // Real objects of the test merchant, so ids resolve. The webhook endpoint exists before the
    // payment, so the payment's events become messages to it.
    let endpoint = app
        .post("/api/webhook-endpoints", json!({ "url": "http://127.0.0.1:9/hook" }))
        .await;
    assert_eq!(endpoint.status, 201, "{:?}", endpoint.body);
    let paid = app.paid("100", "HKD").await;
    let refund = app
        .post(
            &format!("/api/payments/refund/{}", paid.id()),
            json!({ "amount": "1.00" }),
        )
        .await;
    assert_eq!(refund.status, 201, "{:?}", refund.body);
    let order = paid.data()["orderId"].as_str().unwrap_or_default().to_owned();
    let messages = app
        .get(&format!("/api/webhook-endpoints/{}/messages", endpoint.id()))
        .await;
    let message = messages.data()["items"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(message.starts_with("msg_"), "{:?}", messages.body);
    // Restricted to keys:manage, so a key holding exactly that permission may manage it.
    let own_key = app
        .post(
            "/api/keys",
            json!({ "permissions": ["keys:manage"], "description": "access test" }),
        )
        .await;
    assert_eq!(own_key.status, 201, "{:?}", own_key.body);
    let account = app
        .post(
            "/api/provider-accounts",
            json!({ "provider": "tpay", "credentials": jinliu_providers::sandbox_credentials("tpay") }),
        )
        .await;
    assert_eq!(account.status, 201, "{:?}", account.body);
    let fill = |path: &str| {
        let id = if path.starts_with("/orders") {
            order.clone()
        } else if path.starts_with("/keys") {
            own_key.id()
        } else if path.starts_with("/refunds") {
            refund.id()
        } else if path.starts_with("/webhook-endpoints") {
            endpoint.id()
        } else if path.starts_with("/webhook-messages") {
            message.clone()
        } else if path.starts_with("/provider-accounts") {
            account.id()
        } else {
            paid.id()
        };
        path.replace("{id}", &id)
    };

    let other = Merchant::new(
        MerchantId::generate(),
        "Other shop",
        jinliu_domain::Currency::Twd,
        "Asia/Taipei",
        chrono::Utc::now(),
    );
    app.store
        .create_merchant(&other)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let other_key = key(&app, Some(&other.id), ApiKeyKind::Secret, None).await;
    let publishable = key(&app, None, ApiKeyKind::Publishable, None).await;
    let revoked = key(&app, None, ApiKeyKind::Secret, None).await;
    let revoked_id = app
        .state
        .auth
        .authenticate(&app.store, Some(&format!("Bearer {revoked}")), None, chrono::Utc::now())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .actor;
    let jinliu_server::auth::Actor::Key { id: revoked_id, .. } = revoked_id else {
        panic!("a key")
    };
    app.state.auth.forget_all();
    assert!(
        app.store
            .revoke_api_key(&app.state.config.merchant_id, &revoked_id, chrono::Utc::now())
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    );

    let mut checked = 0;
    for (route, _) in table() {
        let path = fill(route.path);
        if route.access == Access::User {
            let a = call(&app, &route.method, &path, None).await;
            assert_eq!(
                (a.status, a.code()),
                (401, "authentication_required"),
                "{} {path}",
                route.method
            );
            let a = call(&app, &route.method, &path, Some(&app.secret_key)).await;
            assert_eq!(
                (a.status, a.code()),
                (401, "invalid_credentials"),
                "a key is not a user session"
            );
            continue;
        }
        let Access::Need(needed) = route.access else {
            // Provider, client-secret and public routes never ask for a key: their own check answers.
            let a = call(
                &app,
                &route.method,
                &path
                    .replace("{provider}", "octopus")
                    .replace("{account}", "octopus_test"),
                None,
            )
            .await;
            assert_ne!(a.code(), "authentication_required", "{} {path}", route.method);
            continue;
        };
        let label = format!("{} {}", route.method, route.path);
        let a = call(&app, &route.method, &path, None).await;
        assert_eq!((a.status, a.code()), (401, "authentication_required"), "{label}: none");
        let a = call(
            &app,
            &route.method,
            &path,
            Some("jl_sk_test_forgedforgedforgedforgedforged1"),
        )
        .await;
        assert_eq!((a.status, a.code()), (401, "invalid_credentials"), "{label}: forged");
        let a = call(&app, &route.method, &path, Some("eyJhbGciOiJub25lIn0.e30.")).await;
        assert_eq!(
            (a.status, a.code()),
            (401, "invalid_credentials"),
            "{label}: alg none token"
        );
        let a = call(&app, &route.method, &path, Some(&revoked)).await;
        assert_eq!((a.status, a.code()), (401, "invalid_credentials"), "{label}: revoked");
        let a = call(&app, &route.method, &path, Some(&publishable)).await;
        assert_eq!((a.status, a.code()), (403, "permission_denied"), "{label}: publishable");
        let all_but: Vec<Permission> = Permission::merchant_all()
            .into_iter()
            .filter(|p| *p != needed)
            .collect();
        let lacking = key(&app, None, ApiKeyKind::Secret, Some(all_but)).await;
        let a = call(&app, &route.method, &path, Some(&lacking)).await;
        assert_eq!(
            (a.status, a.code()),
            (403, "permission_denied"),
            "{label}: without {needed}"
        );
        let exact = key(&app, None, ApiKeyKind::Secret, Some(vec![needed])).await;
        let a = call(&app, &route.method, &path, Some(&exact)).await;
        assert!(
            ![401, 403, 500].contains(&a.status),
            "{label}: a key with exactly {needed} gets through: {:?}",
            a.body
        );
        if route.path.contains("{id}") {
            let a = call(&app, &route.method, &path, Some(&other_key)).await;
            assert_eq!(
                a.status, 404,
                "{label}: another merchant's object is invisible: {:?}",
                a.body
            );
        }
        checked += 1;
    }
    assert!(checked >= 11, "every merchant route was checked ({checked})");
}

#[tokio::test]
async fn seed_004s_browser_call_without_credentials_is_refused() {
    // Seed 004's browser sample posts /api/payments itself; in jinliu the merchant's server
    // creates payments with its secret key.
    let app = spawn_app().await;
    let order = app.order("10.00", "HKD").await;
    let a = app
        .send(
            app.anon
                .post(format!("{}/api/payments", app.base))
                .json(&json!({ "orderId": order, "amount": 10.00, "currency": "HKD", "method": "octopus_qr" })),
        )
        .await;
    assert_eq!((a.status, a.code()), (401, "authentication_required"));
    assert_eq!(app.counts().await.payments, 0);
}

#[tokio::test]
async fn a_live_key_sees_no_test_objects() {
    let app = spawn_app().await;
    let order = app.order("10.00", "HKD").await;
    let live = app
        .state
        .auth
        .issue_key(
            &app.store,
            &app.state.config.merchant_id,
            ApiKeyKind::Secret,
            true,
            None,
            None,
            chrono::Utc::now(),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .1;
    assert!(live.starts_with("jl_sk_live_"));
    let a = call(&app, &axum::http::Method::GET, &format!("/orders/{order}"), Some(&live)).await;
    assert_eq!(a.status, 404, "test objects are invisible in live mode");
    let list = call(&app, &axum::http::Method::GET, "/orders", Some(&live)).await;
    assert_eq!(list.data()["total"], 0, "{:?}", list.body);
}

/// A key of the test merchant in live mode.
async fn live_key(app: &TestApp, kind: ApiKeyKind) -> String {
    app.state
        .auth
        .issue_key(
            &app.store,
            &app.state.config.merchant_id,
            kind,
            true,
            None,
            None,
            chrono::Utc::now(),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .1
}

#[tokio::test]
async fn every_watch_route_opens_for_payments_read_or_the_client_secret_and_nothing_else() {
    let app = spawn_app().await;
    // A completed payment, so streaming routes send the final state and end.
    let paid = app.paid("100", "HKD").await;
    let secret = paid.data()["clientSecret"].as_str().unwrap_or_default().to_owned();
    assert!(!secret.is_empty());
    let other = Merchant::new(
        MerchantId::generate(),
        "Other shop",
        jinliu_domain::Currency::Twd,
        "Asia/Taipei",
        chrono::Utc::now(),
    );
    app.store
        .create_merchant(&other)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let other_secret = key(&app, Some(&other.id), ApiKeyKind::Secret, None).await;
    let other_publishable = key(&app, Some(&other.id), ApiKeyKind::Publishable, None).await;
    let publishable = key(&app, None, ApiKeyKind::Publishable, None).await;
    let live_publishable = live_key(&app, ApiKeyKind::Publishable).await;
    let live_secret = live_key(&app, ApiKeyKind::Secret).await;
    let all_but: Vec<Permission> = Permission::merchant_all()
        .into_iter()
        .filter(|p| *p != Permission::PaymentsRead)
        .collect();
    let lacking = key(&app, None, ApiKeyKind::Secret, Some(all_but)).await;
    let exact = key(&app, None, ApiKeyKind::Secret, Some(vec![Permission::PaymentsRead])).await;

    let mut checked = 0;
    for (route, _) in table().into_iter().filter(|(r, _)| r.access == Access::Watch) {
        let path = route.path.replace("{id}", &paid.id());
        let with_secret = format!("{path}?clientSecret={secret}");
        let wrong_secret = format!("{path}?clientSecret=cs_wrong");
        let label = format!("{} {}", route.method, route.path);
        let cases: Vec<(&str, &str, Option<&str>, u16)> = vec![
            ("no credential, no secret", &path, None, 404),
            ("wrong secret", &wrong_secret, None, 404),
            ("the client secret", &with_secret, None, 200),
            ("publishable key alone", &path, Some(&publishable), 404),
            ("publishable key + secret", &with_secret, Some(&publishable), 200),
            (
                "another merchant's publishable key + secret",
                &with_secret,
                Some(&other_publishable),
                404,
            ),
            (
                "a live publishable key + a test payment's secret",
                &with_secret,
                Some(&live_publishable),
                404,
            ),
            ("a live secret key", &path, Some(&live_secret), 404),
            (
                "forged key",
                &path,
                Some("jl_sk_test_forgedforgedforgedforgedforged1"),
                401,
            ),
            (
                "forged key + secret",
                &with_secret,
                Some("jl_sk_test_forgedforgedforgedforgedforged1"),
                401,
            ),
            ("key without payments:read", &path, Some(&lacking), 403),
            ("key with exactly payments:read", &path, Some(&exact), 200),
            ("another merchant's key", &path, Some(&other_secret), 404),
        ];
        for (what, url, bearer, want) in cases {
            let a = call(&app, &route.method, url, bearer).await;
            assert_eq!(a.status, want, "{label}: {what}: {}", a.text);
            if a.status == 200 && route.path == "/payments/{id}" {
                let full = bearer == Some(exact.as_str());
                assert_eq!(
                    a.data().get("clientSecret").is_some(),
                    full,
                    "{label}: {what}: only merchant credentials see the full payment"
                );
            }
        }
        checked += 1;
    }
    assert!(checked >= 1, "the table has watch routes");
}

#[tokio::test]
async fn the_public_view_has_exactly_the_public_fields() {
    let app = spawn_app().await;
    let order = app.order("12.50", "HKD").await;
    let p = app
        .post(
            "/api/payments",
            json!({ "orderId": order, "amount": "12.50", "currency": "HKD", "customerEmail": "a@example.com",
                    "customerPhone": "+85291234567", "metadata": { "cart": "cart-private-7f3q" }, "successUrl": "https://shop.example/ok" }),
        )
        .await;
    assert_eq!(p.status, 201, "{:?}", p.body);
    let secret = p.data()["clientSecret"].as_str().unwrap_or_default();
    let a = call(
        &app,
        &axum::http::Method::GET,
        &format!("/payments/{}?clientSecret={secret}", p.id()),
        None,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let mut keys: Vec<&str> = a
        .data()
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    keys.sort_unstable();
    let mut want = vec![
        "id",
        "orderId",
        "merchantName",
        "description",
        "provider",
        "method",
        "amount",
        "currency",
        "status",
        "paymentToken",
        "qrCodeData",
        "expiresAt",
        "version",
        "updatedAt",
        "livemode",
        "successUrl",
        "failureUrl",
    ];
    want.sort_unstable();
    assert_eq!(keys, want);
    assert_eq!(a.body["success"], true);
    assert_eq!(a.data()["merchantName"], "Test shop");
    assert_eq!(a.amount("amount"), "12.50");
    assert_eq!(a.data()["successUrl"], "https://shop.example/ok");
    for private in ["a@example.com", "91234567", "cart-private-7f3q", secret] {
        assert!(!a.text.contains(private), "the public view leaks {private}");
    }
}
