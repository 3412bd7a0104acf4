//! Merchant settings over HTTP: defaults and limits change how payments are made, the body cannot
//! reach the id or status, bad values change nothing, and a merchant's own notify secret replaces
//! the server's for its payments.

use serde_json::json;

use crate::{Answer, TestApp, spawn_app};

async fn patch(app: &TestApp, body: serde_json::Value) -> Answer {
    app.send(app.http.patch(format!("{}/api/merchant", app.base)).json(&body))
        .await
}

#[tokio::test]
async fn the_merchants_default_provider_and_amount_limit_apply_to_new_payments() {
    let app = spawn_app().await;
    let a = patch(
        &app,
        json!({ "defaultProviders": { "TWD": "tpay" }, "amountLimits": { "TWD": 100 }, "timezone": "Asia/Hong_Kong" }),
    )
    .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.data()["defaultProviders"]["TWD"], "tpay");
    assert!(
        a.text.contains(r#""amountLimits":{"TWD":100.00}"#),
        "limits are shown in major units with the currency's decimals: {}",
        a.text
    );
    assert_eq!(a.data()["timezone"], "Asia/Hong_Kong");

    let too_big = app
        .post("/api/orders", json!({ "amount": 150, "currency": "TWD" }))
        .await;
    assert_eq!(
        (too_big.status, too_big.code()),
        (422, "invalid_amount"),
        "{:?}",
        too_big.body
    );
    let order = app.order("50", "TWD").await;
    let pay = app
        .post(
            "/api/payments",
            json!({ "orderId": order, "amount": 50, "currency": "TWD" }),
        )
        .await;
    assert_eq!(pay.status, 201, "{:?}", pay.body);
    assert_eq!(
        pay.data()["provider"],
        "tpay",
        "the merchant's default, not the server's"
    );

    let cleared = patch(
        &app,
        json!({ "defaultProviders": { "TWD": null }, "amountLimits": { "TWD": null } }),
    )
    .await;
    assert_eq!(cleared.data()["defaultProviders"], json!({}));
    assert_eq!(cleared.data()["amountLimits"], json!({}));
    let big = app
        .post("/api/orders", json!({ "amount": 150, "currency": "TWD" }))
        .await;
    assert_eq!(big.status, 201);
}

#[tokio::test]
async fn a_settings_body_cannot_set_the_id_or_status_and_bad_values_change_nothing() {
    let app = spawn_app().await;
    let before = app.get("/api/merchant").await;
    assert_eq!(before.status, 200);
    for body in [
        json!({ "status": "disabled" }),
        json!({ "id": "mer_0000000000000000000000000000000b" }),
        json!({ "notifySecret": "mine" }),
    ] {
        let a = patch(&app, body.clone()).await;
        assert_eq!(a.status, 400, "{body}: {:?}", a.body);
    }
    for (body, code) in [
        (json!({ "defaultProviders": { "TWD": "paypal" } }), "unknown_provider"),
        (json!({ "defaultProviders": { "QQQ": "tpay" } }), "unsupported_currency"),
        (json!({ "amountLimits": { "TWD": "lots" } }), "invalid_amount"),
        (json!({ "amountLimits": { "TWD": 0.001 } }), "invalid_amount"),
        (json!({ "timezone": "Mars/Olympus" }), "validation_failed"),
        (json!({ "name": "" }), "validation_failed"),
        (
            json!({ "name": "ok", "defaultCurrency": "ZZZ" }),
            "unsupported_currency",
        ),
    ] {
        let a = patch(&app, body.clone()).await;
        assert_eq!((a.status, a.code()), (422, code), "{body}: {:?}", a.body);
    }
    let after = app.get("/api/merchant").await;
    assert_eq!(after.body, before.body, "nothing was written");
    assert_eq!(after.data()["status"], "active");
}

#[tokio::test]
async fn a_merchants_own_notify_secret_replaces_the_servers_for_its_payments() {
    let app = spawn_app().await;
    let made = app.post("/api/merchant/notify-secret", json!({})).await;
    assert_eq!(made.status, 201, "{:?}", made.body);
    let secret = made.data()["notifySecret"].as_str().unwrap_or_default().to_owned();
    assert!(secret.starts_with("nsk_"));
    let stored = app
        .store
        .merchant(&app.state.config.merchant_id)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .and_then(|m| m.notify_secret)
        .unwrap_or_default();
    assert!(
        !stored.is_empty() && !stored.contains(&secret),
        "stored sealed, never in clear"
    );
    assert_eq!(app.get("/api/merchant").await.data()["notifySecretSet"], true);

    let order = app.order("5", "HKD").await;
    let p = app.payment(&order, "5", "HKD").await;
    let body = json!({ "provider": "octopus", "paymentId": p.id(), "eventId": "evt-9",
        "status": "completed", "amount": "5.00", "currency": "HKD" })
    .to_string();
    let sign = |key: &str| {
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).expect("any key length");
        mac.update(body.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    };
    let send = |sig: String| {
        app.send(
            app.anon
                .post(format!("{}/payments/notify", app.base))
                .header("x-signature", sig)
                .body(body.clone()),
        )
    };
    let with_server_secret = send(sign(crate::NOTIFY_SECRET)).await;
    assert_eq!(
        (with_server_secret.status, with_server_secret.code()),
        (401, "invalid_signature")
    );
    assert_eq!(app.payment_now(&p.id()).await.data()["status"], "pending");
    let with_own = send(sign(&secret)).await;
    assert_eq!((with_own.status, with_own.text.as_str()), (200, "OK"));
    assert_eq!(app.payment_now(&p.id()).await.data()["status"], "completed");

    let rows = app.get("/api/audit?action=merchant.update").await.data()["items"].to_string();
    assert!(rows.contains("notifySecretSet") && !rows.contains(&secret), "{rows}");
}

#[tokio::test]
async fn an_unsigned_relay_notification_learns_nothing_about_payment_ids() {
    let app = spawn_app().await;
    let order = app.order("5", "HKD").await;
    let p = app.payment(&order, "5", "HKD").await;
    for id in [
        p.id(),
        "pay_0000000000000000000000000000000f".to_owned(),
        "garbage".to_owned(),
    ] {
        let body = json!({ "provider": "octopus", "paymentId": id, "status": "completed", "amount": "5.00", "currency": "HKD" });
        let a = app
            .send(
                app.anon
                    .post(format!("{}/payments/notify", app.base))
                    .header("x-signature", "00".repeat(32))
                    .json(&body),
            )
            .await;
        assert_eq!((a.status, a.code()), (401, "invalid_signature"), "{id}");
    }
}

#[tokio::test]
async fn date_filters_follow_the_merchants_time_zone() {
    let app = spawn_app().await;
    app.order("5", "TWD").await;
    // The local date at UTC+14, which is always a day or two ahead of the date at UTC−12.
    let ahead = (chrono::Utc::now() + chrono::Duration::hours(14))
        .date_naive()
        .to_string();
    let listed = |tz: &'static str| {
        let app = &app;
        let ahead = ahead.clone();
        async move {
            assert_eq!(patch(app, json!({ "timezone": tz })).await.status, 200);
            app.get(&format!("/api/orders?from={ahead}&to={ahead}")).await.data()["total"].clone()
        }
    };
    assert_eq!(
        listed("Etc/GMT-14").await,
        1,
        "in UTC+14 the order was made on that day"
    );
    assert_eq!(
        listed("Etc/GMT+12").await,
        0,
        "in UTC−12 it was made a day or two earlier"
    );
}
