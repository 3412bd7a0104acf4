//! Whole flows over HTTP: seed 004 and seed 000 bodies, sandbox payments, refunds, attempts.

use serde_json::json;

use crate::spawn_app;

#[tokio::test]
async fn an_octopus_order_is_paid_in_the_sandbox_and_refunded_in_two_parts() {
    let app = spawn_app().await;
    let order = app
        .post(
            "/api/orders",
            json!({ "description": "商品描述", "amount": 100.00, "currency": "HKD", "customerEmail": "customer@example.com",
                    "customerPhone": "+852 1234 5678", "metadata": { "productId": "PROD_001" } }),
        )
        .await;
    assert_eq!(order.status, 201);
    assert_eq!(order.body["message"], "訂單已創建");
    assert!(order.data()["orderNumber"].as_str().unwrap_or("").starts_with("ORD-"));
    assert_eq!(
        order.amount("amount"),
        "100.00",
        "amounts carry the currency's decimals"
    );

    let pay = app
        .post(
            "/api/payments",
            json!({ "orderId": order.id(), "amount": 100.00, "currency": "HKD", "method": "octopus_qr" }),
        )
        .await;
    assert_eq!(pay.status, 201, "{:?}", pay.body);
    assert_eq!(pay.data()["provider"], "octopus");
    assert_eq!(pay.data()["status"], "pending");
    assert!(pay.data()["paymentToken"].as_str().is_some_and(|t| !t.is_empty()));
    let qr: serde_json::Value =
        serde_json::from_str(pay.data()["qrCodeData"].as_str().unwrap_or("")).unwrap_or_default();
    assert!(
        qr["url"].as_str().unwrap_or("").starts_with(&app.base),
        "the QR opens a page under JINLIU_PUBLIC_URL"
    );

    assert_eq!(app.sandbox_pay(&pay, "success").await, 200);
    let done = app.get(&format!("/api/payments/{}", pay.id())).await;
    assert_eq!(done.data()["status"], "completed");
    assert!(done.data()["completedAt"].is_string());
    let tx = done.data()["providerTransactionId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(!tx.is_empty(), "the provider's transaction id is kept");
    assert_eq!(done.data()["octopusTransactionId"], tx.as_str());
    assert_eq!(
        app.get(&format!("/api/orders/{}", order.id())).await.data()["status"],
        "paid"
    );

    let r1 = app
        .post(
            &format!("/api/payments/refund/{}", pay.id()),
            json!({ "amount": "30.5", "reason": "damaged" }),
        )
        .await;
    assert_eq!(
        (r1.status, r1.data()["status"].as_str()),
        (201, Some("succeeded")),
        "{:?}",
        r1.body
    );
    assert_eq!(
        app.get(&format!("/api/orders/{}", order.id())).await.data()["status"],
        "partially_refunded"
    );
    let r2 = app.post(&format!("/api/payments/refund/{}", pay.id()), json!({})).await;
    assert_eq!(r2.amount("amount"), "69.50", "no amount refunds the remainder");
    let p = app.get(&format!("/api/payments/{}", pay.id())).await;
    assert_eq!(
        (p.data()["status"].as_str(), p.amount("refundedAmount")),
        (Some("refunded"), "100.00".into())
    );
    assert_eq!(
        app.get(&format!("/api/orders/{}", order.id())).await.data()["status"],
        "refunded"
    );
    let list = app.get(&format!("/api/payments/{}/refunds", pay.id())).await;
    assert_eq!(list.data().as_array().map(Vec::len), Some(2));
    let one = app.get(&format!("/refunds/{}", r1.id())).await;
    assert_eq!((one.status, one.amount("amount")), (200, "30.50".into()));

    let events = app.store.events_for_object(&pay.id()).await.unwrap_or_default();
    let kinds: Vec<_> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "payment.created",
            "payment.processing",
            "payment.completed",
            "payment.partially_refunded",
            "payment.refunded"
        ]
    );
}

#[tokio::test]
async fn seed_000_paths_and_bodies_work_at_the_root() {
    let app = spawn_app().await;
    let order = app
        .post("/orders", json!({ "items": [{ "name": "珍珠奶茶", "quantity": 2, "unitPrice": 65 }, { "name": "蛋餅", "quantity": 1, "unitPrice": 40 }], "totalAmount": 170 }))
        .await;
    assert_eq!(order.status, 201, "{:?}", order.body);
    assert_eq!(order.data()["currency"], "TWD");
    assert_eq!(order.amount("unitPrice"), "65.00");
    let pay = app
        .post(
            "/payments",
            json!({ "provider": "tpay", "amount": 170, "orderId": order.id() }),
        )
        .await;
    assert_eq!(
        (pay.status, pay.data()["provider"].as_str()),
        (201, Some("tpay")),
        "{:?}",
        pay.body
    );
    assert_eq!(app.sandbox_pay(&pay, "success").await, 200);
    assert_eq!(
        app.get(&format!("/payments/{}", pay.id())).await.data()["status"],
        "completed"
    );
    let refund = app.post(&format!("/payments/refund/{}", pay.id()), json!({})).await;
    assert_eq!((refund.status, refund.amount("amount")), (201, "170.00".into()));
    let page = app.get("/orders?page=1&limit=10").await;
    assert_eq!(
        (page.data()["total"].as_u64(), page.data()["hasMore"].as_bool()),
        (Some(1), Some(false))
    );
}

#[tokio::test]
async fn a_declined_payment_fails_and_the_order_can_be_paid_by_a_new_attempt() {
    let app = spawn_app().await;
    let order = app.order("250", "TWD").await;
    let first = app.payment(&order, "250", "TWD").await;
    assert_eq!(first.data()["provider"], "kpay", "TWD defaults to kpay");
    assert_eq!(app.sandbox_pay(&first, "fail").await, 200);
    assert_eq!(
        app.get(&format!("/api/payments/{}", first.id())).await.data()["status"],
        "failed"
    );
    let second = app.payment(&order, "250.00", "TWD").await;
    assert_eq!(app.sandbox_pay(&second, "success").await, 200);
    assert_eq!(
        app.get(&format!("/api/orders/{order}")).await.data()["paidBy"],
        second.id().as_str()
    );
}

#[tokio::test]
async fn when_one_attempt_completes_the_others_are_cancelled_at_their_providers_too() {
    let app = spawn_app().await;
    let order = app.order("80", "TWD").await;
    let a = app
        .post(
            "/api/payments",
            json!({ "orderId": order, "amount": 80, "provider": "ecpay" }),
        )
        .await;
    let b = app.payment(&order, "80", "TWD").await;
    assert_eq!(b.data()["provider"], "kpay");
    assert_eq!(app.sandbox_pay(&a, "success").await, 200);
    assert_eq!(app.payment_now(&b.id()).await.data()["status"], "cancelled");
    assert_eq!(
        app.simulate(&b, "paid").await.0,
        409,
        "the customer can no longer pay the superseded attempt at KPay"
    );
}

#[tokio::test]
async fn when_one_attempt_completes_the_others_are_cancelled_and_a_late_payment_is_flagged() {
    let app = spawn_app().await;
    let order = app.order("80", "TWD").await;
    let a = app.payment(&order, "80", "TWD").await;
    let b = app
        .post(
            "/api/payments",
            json!({ "orderId": order, "amount": 80, "provider": "ecpay" }),
        )
        .await;
    // The customer has both pay pages open; ECPay has no call that voids an unpaid order, so
    // the second one stays payable there.
    assert_eq!(app.open_checkout(&b).await.0, 200);
    assert_eq!(app.sandbox_pay(&a, "success").await, 200);
    assert_eq!(
        app.get(&format!("/api/payments/{}", b.id())).await.data()["status"],
        "cancelled"
    );
    // The customer still pays the other attempt at its provider: real money, kept and flagged.
    assert_eq!(app.simulate(&b, "paid").await.0, 200);
    let late = app.get(&format!("/api/payments/{}", b.id())).await;
    assert_eq!(late.data()["status"], "completed");
    assert_eq!(
        (late.data()["lateSuccess"].as_bool(), late.data()["duplicate"].as_bool()),
        (Some(true), Some(true))
    );
    assert_eq!(
        app.get(&format!("/api/orders/{order}")).await.data()["paidBy"],
        a.id().as_str()
    );
    let attempts = app.get(&format!("/api/orders/{order}/payments")).await;
    let ids: Vec<_> = attempts
        .data()
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["id"].as_str())
        .collect();
    assert_eq!(ids, [a.id().as_str(), b.id().as_str()], "attempts, oldest first");
}

#[tokio::test]
async fn cancelling_an_order_closes_its_open_attempts_at_their_providers() {
    let app = spawn_app().await;
    let order = app.order("10", "HKD").await;
    let p = app.payment(&order, "10.00", "HKD").await;
    let oc = app.post(&format!("/api/orders/{order}/cancel"), json!({})).await;
    assert_eq!(
        (oc.status, oc.data()["status"].as_str()),
        (200, Some("cancelled")),
        "{:?}",
        oc.body
    );
    assert_eq!(app.payment_now(&p.id()).await.data()["status"], "cancelled");
    assert_eq!(app.simulate(&p, "paid").await.0, 409, "Octopus no longer takes it");
}

#[tokio::test]
async fn a_pending_payment_can_be_cancelled_and_the_order_too() {
    let app = spawn_app().await;
    let order = app.order("10", "HKD").await;
    let p = app.payment(&order, "10.00", "HKD").await;
    let c = app.post(&format!("/api/payments/{}/cancel", p.id()), json!({})).await;
    assert_eq!((c.status, c.data()["status"].as_str()), (200, Some("cancelled")));
    // The customer can no longer pay it at the sandbox either.
    assert_eq!(app.sandbox_pay(&p, "success").await, 409);
    let oc = app
        .send(app.http.post(format!("{}/api/orders/{order}/cancel", app.base)))
        .await;
    assert_eq!(
        (oc.status, oc.data()["status"].as_str()),
        (200, Some("cancelled")),
        "{:?}",
        oc.body
    );
    let again = app
        .post(
            "/api/payments",
            json!({ "orderId": order, "amount": "10", "currency": "HKD" }),
        )
        .await;
    assert_eq!((again.status, again.code()), (409, "order_not_payable"));
}

#[tokio::test]
async fn a_refund_the_provider_cannot_answer_stays_pending_until_status_sync_settles_it_once() {
    let app = spawn_app().await;
    let p = app.paid("100", "TWD").await;
    // Every refund call fails with 503 (no effect at the provider): the outcome is unknown to
    // jinliu only in the sense that it must not guess; the amount stays reserved.
    app.faults("kpay", json!({ "failNext": 10, "ops": ["refund"] })).await;
    let r = app
        .post(&format!("/api/payments/refund/{}", p.id()), json!({ "amount": 40 }))
        .await;
    assert_eq!(
        (r.status, r.data()["status"].as_str()),
        (201, Some("pending")),
        "{:?}",
        r.body
    );
    let over = app
        .post(&format!("/api/payments/refund/{}", p.id()), json!({ "amount": 61 }))
        .await;
    assert_eq!(
        over.code(),
        "refund_in_progress",
        "KPay cannot tell two refunds apart: the next waits for the pending one"
    );
    app.faults("kpay", json!({})).await;
    app.sync_now(&r.id()).await;
    let settled = app.get(&format!("/api/refunds/{}", r.id())).await;
    assert_eq!(settled.data()["status"], "succeeded", "{:?}", settled.body);
    let paid = app.payment_now(&p.id()).await;
    assert_eq!(paid.amount("refundedAmount"), "40.00");
}

#[tokio::test]
async fn parallel_refunds_that_together_exceed_the_payment_let_exactly_one_through() {
    // Octopus deduplicates refunds on jinliu's refund id, so refunds may run side by side and
    // only the reservation decides.
    let app = spawn_app().await;
    let p = app.paid("100", "HKD").await;
    let path = format!("/api/payments/refund/{}", p.id());
    let tasks: Vec<_> = (0..10).map(|_| app.post(&path, json!({ "amount": 60 }))).collect();
    let answers = futures::future::join_all(tasks).await;
    let ok = answers.iter().filter(|a| a.status == 201).count();
    assert_eq!(ok, 1, "{answers:?}");
    assert!(
        answers
            .iter()
            .filter(|a| a.status != 201)
            .all(|a| a.code() == "refund_exceeds_remaining")
    );
    assert_eq!(
        app.get(&format!("/api/payments/{}", p.id()))
            .await
            .amount("refundedAmount"),
        "60.00"
    );
}

fn seed_signature(body: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(crate::NOTIFY_SECRET.as_bytes()).expect("any key length");
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn a_seed_000_relay_notification_must_carry_the_merchant_signature() {
    let app = spawn_app().await;
    let order = app.order("5", "HKD").await;
    let p = app.payment(&order, "5", "HKD").await;
    let body =
        json!({ "merchantId": p.data()["merchantId"], "provider": "octopus", "paymentId": p.id(), "eventId": "evt-1",
        "status": "completed", "amount": "5.00", "currency": "HKD" })
        .to_string();
    let unsigned = app.post_raw("/payments/notify", "application/json", body.clone()).await;
    assert_eq!((unsigned.status, unsigned.code()), (401, "invalid_signature"));
    let forged = app
        .send(
            app.http
                .post(format!("{}/payments/notify", app.base))
                .header("x-signature", "00".repeat(32))
                .body(body.clone()),
        )
        .await;
    assert_eq!((forged.status, forged.code()), (401, "invalid_signature"));
    assert_eq!(app.payment_now(&p.id()).await.data()["status"], "pending");
    let signed = app
        .send(
            app.http
                .post(format!("{}/payments/notify", app.base))
                .header("x-signature", seed_signature(&body))
                .body(body),
        )
        .await;
    assert_eq!((signed.status, signed.text.as_str()), (200, "OK"));
    assert_eq!(app.payment_now(&p.id()).await.data()["status"], "completed");
}

#[tokio::test]
async fn a_signed_notification_for_another_amount_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let order = app.order("5", "HKD").await;
    let p = app.payment(&order, "5", "HKD").await;
    let body = json!({ "provider": "octopus", "paymentId": p.id(), "eventId": "evt-2",
        "status": "completed", "amount": "0.50", "currency": "HKD" })
    .to_string();
    let a = app
        .send(
            app.http
                .post(format!("{}/api/payments/notify", app.base))
                .header("content-type", "application/json")
                .header("x-signature", seed_signature(&body))
                .body(body),
        )
        .await;
    assert_eq!((a.status, a.code()), (422, "notification_amount_mismatch"));
    assert_eq!(app.payment_now(&p.id()).await.data()["status"], "pending");
}

#[tokio::test]
async fn an_oversized_notification_gets_a_json_413() {
    let app = spawn_app().await;
    let a = app
        .post_raw(
            "/api/payments/notify/kpay",
            "application/json",
            vec![b' '; 1024 * 1024 + 1],
        )
        .await;
    assert_eq!((a.status, a.code()), (413, "payload_too_large"));
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = spawn_app().await;
    assert_eq!(app.get("/health").await.status, 200);
    let ready = app.get("/ready").await;
    assert_eq!((ready.status, ready.body["database"].as_str()), (200, Some("sqlite")));
}

#[tokio::test]
async fn the_metrics_page_counts_the_writers_commits_and_units_of_work() {
    let app = spawn_app().await;
    let counter = |text: &str, name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{text}"))
    };
    let before = app.get("/metrics").await;
    assert_eq!(before.status, 200);
    let (commits, units) = (
        counter(&before.text, "jinliu_db_commits_total"),
        counter(&before.text, "jinliu_db_units_total"),
    );
    for _ in 0..3 {
        app.order("100", "TWD").await;
    }
    let after = app.get("/metrics").await.text;
    let (commits_after, units_after) = (
        counter(&after, "jinliu_db_commits_total"),
        counter(&after, "jinliu_db_units_total"),
    );
    // Three orders are three units of work, in one to three commits (concurrent background
    // units may add to both).
    assert!(units_after >= units + 3, "units {units} -> {units_after}");
    assert!(commits_after > commits, "commits {commits} -> {commits_after}");
    assert!(units_after - units >= commits_after - commits);
    // Batches run again after a failed optimistic pass: exported beside them (three orders that
    // all succeed need no rerun, but concurrent background units might).
    counter(&after, "jinliu_db_batch_reruns_total");
    // Commits that were a batch's one statement alone: none for orders (SQLite here, whose tail
    // is several statements in a transaction).
    assert_eq!(counter(&after, "jinliu_db_single_statement_commits_total"), 0);
}

#[tokio::test]
async fn orders_are_listed_with_status_date_and_cursor_filters() {
    let app = spawn_app().await;
    let taipei_now = chrono::Utc::now().with_timezone(&chrono_tz::Asia::Taipei);
    let today = taipei_now.format("%Y-%m-%d").to_string();
    let tomorrow = (taipei_now + chrono::Duration::days(1)).format("%Y-%m-%d").to_string();
    let mut ids = Vec::new();
    for i in 1..=5 {
        ids.push(app.order(&i.to_string(), "TWD").await);
    }
    app.post(&format!("/api/orders/{}/cancel", ids[0]), json!({})).await;
    let p = app.get("/api/orders?limit=2").await;
    assert_eq!(
        (p.data()["total"].as_u64(), p.data()["hasMore"].as_bool()),
        (Some(5), Some(true))
    );
    assert_eq!(p.data()["items"][0]["id"], ids[4].as_str());
    let c = app.get(&format!("/api/orders?startingAfter={}&limit=10", ids[2])).await;
    assert_eq!(c.data()["items"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        app.get("/api/orders?status=cancelled").await.data()["total"].as_u64(),
        Some(1)
    );
    // `to` is a whole business day, inclusive (Asia/Taipei by default).
    assert_eq!(
        app.get(&format!("/api/orders?from={today}&to={tomorrow}")).await.data()["total"].as_u64(),
        Some(5)
    );
    assert_eq!(
        app.get("/api/orders?to=2000-01-01").await.data()["total"].as_u64(),
        Some(0)
    );
}
