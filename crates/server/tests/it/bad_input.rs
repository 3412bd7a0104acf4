//! Bad input: every refusal is a clear 4xx with a stable code, and nothing is written.

use serde_json::{Value, json};

use crate::{Answer, TestApp, spawn_app};

/// Sends `body` to `path`, asserts the status and code, and that no table changed.
async fn refused(app: &TestApp, path: &str, body: Value, status: u16, code: &str) -> Answer {
    // Applied-notification keys are left out: a provider's late notification for an earlier
    // payment (KPay sends its capture notice in the background) may land meanwhile.
    let counts = || async {
        let mut c = app.counts().await;
        c.provider_notifications = 0;
        c
    };
    let before = counts().await;
    let a = app.post(path, body.clone()).await;
    assert_eq!((a.status, a.code()), (status, code), "{path} {body} → {:?}", a.body);
    assert_eq!(a.body["success"], false);
    assert!(a.body["message"].is_string());
    assert_eq!(counts().await, before, "{path} {body} wrote something");
    a
}

#[tokio::test]
async fn bad_amounts_are_refused_with_invalid_amount() {
    let app = spawn_app().await;
    for (amount, currency) in [
        (json!("1.001"), "TWD"),
        (json!(0), "TWD"),
        (json!("0.00"), "HKD"),
        (json!(-5), "TWD"),
        (json!("abc"), "TWD"),
        (json!(true), "TWD"),
        (json!(null), "TWD"),
        (json!("1000000.01"), "TWD"),
        (json!(1.5), "JPY"),
        (json!("99999999999999999999999999"), "USD"),
    ] {
        refused(
            &app,
            "/api/orders",
            json!({ "amount": amount, "currency": currency }),
            422,
            "invalid_amount",
        )
        .await;
    }
    refused(
        &app,
        "/api/orders",
        json!({ "description": "no amount" }),
        422,
        "invalid_amount",
    )
    .await;
    for raw in [
        r#"{"amount":1e3}"#,
        r#"{"amount":"1,000"}"#,
        r#"{"amount":0.1e1}"#,
        r#"{"amount":[1]}"#,
    ] {
        let a = app.post_raw("/api/orders", "application/json", raw).await;
        assert_eq!((a.status, a.code()), (422, "invalid_amount"), "{raw}");
    }
    assert_eq!(app.counts().await.orders, 0);
}

#[tokio::test]
async fn malformed_wrongly_typed_or_unknown_fields_are_refused() {
    let app = spawn_app().await;
    let before = app.counts().await;
    let a = app
        .post_raw("/api/orders", "application/json", "{\"amount\": 10,")
        .await;
    assert_eq!((a.status, a.code()), (400, "invalid_json"));
    let a = app.post_raw("/api/orders", "application/json", "[1,2]").await;
    assert_eq!((a.status, a.code()), (400, "invalid_request"));
    refused(
        &app,
        "/api/orders",
        json!({ "amount": 10, "description": 5 }),
        400,
        "invalid_request",
    )
    .await;
    refused(
        &app,
        "/api/orders",
        json!({ "amount": 10, "colour": "red" }),
        400,
        "invalid_request",
    )
    .await;
    refused(
        &app,
        "/api/orders",
        json!({ "amount": 10, "items": [{ "name": "x", "price": 1 }] }),
        400,
        "invalid_request",
    )
    .await;
    refused(&app, "/api/payments", json!({ "amount": 10 }), 400, "invalid_request").await;
    assert_eq!(app.counts().await, before);
}

#[tokio::test]
async fn oversized_bodies_and_wrong_content_types_are_refused() {
    let app = spawn_app().await;
    let big = format!("{{\"description\":\"{}\",\"amount\":1}}", "x".repeat(1024 * 1024 + 10));
    let a = app.post_raw("/api/orders", "application/json", big).await;
    assert_eq!((a.status, a.code()), (413, "payload_too_large"));
    let a = app.post_raw("/api/orders", "text/plain", "{\"amount\":1}").await;
    assert_eq!((a.status, a.code()), (415, "unsupported_media_type"));
    let a = app
        .post_raw("/api/orders", "application/x-www-form-urlencoded", "amount=1")
        .await;
    assert_eq!((a.status, a.code()), (415, "unsupported_media_type"));
    assert_eq!(app.counts().await.orders, 0);
}

#[tokio::test]
async fn order_fields_are_validated() {
    let app = spawn_app().await;
    refused(
        &app,
        "/api/orders",
        json!({ "amount": 1, "currency": "XYZ" }),
        422,
        "unsupported_currency",
    )
    .await;
    refused(
        &app,
        "/api/orders",
        json!({ "amount": 1, "customerEmail": "not-an-email" }),
        422,
        "validation_failed",
    )
    .await;
    refused(
        &app,
        "/api/orders",
        json!({ "amount": 1, "customerPhone": "call me" }),
        422,
        "validation_failed",
    )
    .await;
    refused(
        &app,
        "/api/orders",
        json!({ "amount": 1, "metadata": [1] }),
        422,
        "validation_failed",
    )
    .await;
    refused(
        &app,
        "/api/orders",
        json!({ "amount": 1, "description": "x".repeat(1001) }),
        422,
        "validation_failed",
    )
    .await;
    refused(
        &app,
        "/api/orders",
        json!({ "amount": 10, "totalAmount": 11 }),
        422,
        "amount_mismatch",
    )
    .await;
    let items = json!([{ "name": "a", "quantity": 2, "unitPrice": 10 }]);
    refused(
        &app,
        "/api/orders",
        json!({ "items": items, "totalAmount": 21 }),
        422,
        "items_total_mismatch",
    )
    .await;
    refused(
        &app,
        "/api/orders",
        json!({ "items": [{ "name": "", "unitPrice": 1 }] }),
        422,
        "validation_failed",
    )
    .await;
    refused(
        &app,
        "/api/orders",
        json!({ "items": [{ "name": "a", "quantity": 0, "unitPrice": 1 }] }),
        422,
        "validation_failed",
    )
    .await;
}

#[tokio::test]
async fn payments_that_do_not_match_their_order_are_refused() {
    let app = spawn_app().await;
    let order = app.order("100", "TWD").await;
    refused(
        &app,
        "/api/payments",
        json!({ "orderId": "ord_0123456789abcdef0123456789abcdef", "amount": 100 }),
        404,
        "order_not_found",
    )
    .await;
    refused(
        &app,
        "/api/payments",
        json!({ "orderId": "nonsense", "amount": 100 }),
        404,
        "order_not_found",
    )
    .await;
    refused(
        &app,
        "/api/payments",
        json!({ "orderId": order, "amount": 99 }),
        422,
        "amount_mismatch",
    )
    .await;
    refused(
        &app,
        "/api/payments",
        json!({ "orderId": order, "amount": 100, "currency": "HKD" }),
        422,
        "currency_mismatch",
    )
    .await;
    refused(
        &app,
        "/api/payments",
        json!({ "orderId": order }),
        422,
        "invalid_amount",
    )
    .await;
    refused(
        &app,
        "/api/payments",
        json!({ "orderId": order, "amount": 100, "provider": "paypal" }),
        422,
        "unknown_provider",
    )
    .await;
    refused(
        &app,
        "/api/payments",
        json!({ "orderId": order, "amount": 100, "method": "cash" }),
        422,
        "unsupported_method",
    )
    .await;
    refused(
        &app,
        "/api/payments",
        json!({ "orderId": order, "amount": 100, "method": "octopus_qr", "provider": "kpay" }),
        422,
        "method_provider_mismatch",
    )
    .await;
    refused(
        &app,
        "/api/payments",
        json!({ "orderId": order, "amount": 100, "successUrl": "javascript:alert(1)" }),
        422,
        "validation_failed",
    )
    .await;
}

#[tokio::test]
async fn refunds_and_cancellations_in_the_wrong_state_are_refused() {
    let app = spawn_app().await;
    let order = app.order("100", "TWD").await;
    let pending = app.payment(&order, "100", "TWD").await;
    refused(
        &app,
        &format!("/api/payments/refund/{}", pending.id()),
        json!({}),
        409,
        "payment_not_refundable",
    )
    .await;
    let paid = app.paid("100", "HKD").await;
    let a = refused(
        &app,
        &format!("/api/payments/refund/{}", paid.id()),
        json!({ "amount": 100.1 }),
        422,
        "refund_exceeds_remaining",
    )
    .await;
    assert_eq!(a.amount("remainingAmount"), "100.00");
    refused(
        &app,
        &format!("/api/payments/refund/{}", paid.id()),
        json!({ "amount": "0" }),
        422,
        "invalid_amount",
    )
    .await;
    refused(
        &app,
        &format!("/api/payments/refund/{}", paid.id()),
        json!({ "amount": 1, "extra": 1 }),
        400,
        "invalid_request",
    )
    .await;
    refused(
        &app,
        &format!("/api/payments/{}/cancel", paid.id()),
        json!({}),
        409,
        "invalid_state",
    )
    .await;
    refused(
        &app,
        "/api/payments/refund/pay_0123456789abcdef0123456789abcdef",
        json!({}),
        404,
        "payment_not_found",
    )
    .await;
    let paid_order = paid.data()["orderId"].as_str().unwrap_or_default().to_owned();
    refused(
        &app,
        "/api/payments",
        json!({ "orderId": paid_order, "amount": 100 }),
        409,
        "order_not_payable",
    )
    .await;
}

#[tokio::test]
async fn unknown_routes_methods_and_query_values_get_json_errors() {
    let app = spawn_app().await;
    let a = app.get("/api/nothing-here").await;
    assert_eq!((a.status, a.code()), (404, "route_not_found"));
    let a = app.send(app.http.delete(format!("{}/api/orders", app.base))).await;
    assert_eq!((a.status, a.code()), (405, "method_not_allowed"));
    for q in [
        "limit=0",
        "limit=101",
        "page=0",
        "status=lost",
        "from=yesterday",
        "startingAfter=pay_1",
    ] {
        let a = app.get(&format!("/api/orders?{q}")).await;
        assert_eq!((a.status, a.code()), (400, "invalid_request"), "{q}");
    }
    let a = app.get("/api/orders/ord_nope").await;
    assert_eq!((a.status, a.code()), (404, "order_not_found"));
    let a = app.get("/api/refunds/re_0123456789abcdef0123456789abcdef").await;
    assert_eq!((a.status, a.code()), (404, "refund_not_found"));
    let a = app
        .get("/api/orders/ord_0123456789abcdef0123456789abcdef/payments")
        .await;
    assert_eq!((a.status, a.code()), (404, "order_not_found"));
}

#[tokio::test]
async fn no_random_body_produces_a_server_error() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    let app = spawn_app().await;
    let order = app.order("10", "TWD").await;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        "[a-zA-Z0-9._-]{0,12}".prop_map(Value::String),
        Just(Value::String(order.clone())),
    ];
    let value = leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            proptest::collection::hash_map("[a-z]{1,6}", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    let keys = proptest::sample::select(vec![
        "amount",
        "totalAmount",
        "currency",
        "orderId",
        "provider",
        "method",
        "items",
        "metadata",
        "description",
        "customerEmail",
        "reason",
        "successUrl",
    ]);
    let bodies = proptest::collection::vec((keys, value), 0..5)
        .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()));
    let mut runner = TestRunner::new(Config {
        cases: 48,
        ..Config::default()
    });
    let mut samples = Vec::new();
    for _ in 0..48 {
        samples.push(
            bodies
                .new_tree(&mut runner)
                .map(|t| proptest::strategy::ValueTree::current(&t))
                .unwrap_or(Value::Null),
        );
    }
    for body in samples {
        for path in ["/api/orders", "/api/payments"] {
            let a = app.post(path, body.clone()).await;
            assert!(a.status < 500, "{path} {body} → {} {:?}", a.status, a.body);
        }
    }
}
