//! Each provider end to end over real HTTP on 127.0.0.1: jinliu's API → the adapter → the
//! provider's in-process sandbox (its own paths and signatures) → the customer's pay page →
//! the provider-format notification back to jinliu. One set of scenarios, run for every
//! provider by the macro at the bottom.

use serde_json::{Value, json};

use crate::{Answer, TestApp, spawn_app};

/// One provider's test parameters: its method, currency, and amounts that respect its money
/// rules (whole TWD; Octopus' 10-cent steps).
pub struct Case {
    pub provider: &'static str,
    pub method: &'static str,
    pub currency: &'static str,
    /// The payment.
    pub amount: &'static str,
    /// A third of it.
    pub part: &'static str,
    /// What remains after two parts, plus the smallest step.
    pub over: &'static str,
    /// The amounts above, as the API renders them.
    pub part_rendered: &'static str,
    pub two_parts_rendered: &'static str,
    /// Minor units of two parts.
    pub two_parts_minor: i64,
}

async fn create(app: &TestApp, c: &Case) -> Answer {
    let order = app.order(c.amount, c.currency).await;
    let p = app
        .post(
            "/api/payments",
            json!({ "orderId": order, "amount": c.amount, "currency": c.currency, "method": c.method,
                    "successUrl": "https://shop.example/thanks" }),
        )
        .await;
    assert_eq!(p.status, 201, "{:?}", p.body);
    assert_eq!(p.data()["provider"], c.provider);
    assert_eq!(p.data()["status"], "pending");
    let reference = p.data()["providerReference"].as_str().unwrap_or_default();
    assert_eq!(reference.len(), 20, "references are ECPay-sized: {reference}");
    let (status, page) = app.open_checkout(&p).await;
    assert_eq!(status, 200, "the customer sees the provider's pay page: {page}");
    assert!(page.contains("Pay"), "{page}");
    p
}

async fn paid(app: &TestApp, c: &Case) -> Answer {
    let p = create(app, c).await;
    let (status, report) = app.simulate(&p, "paid").await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["delivery"]["acknowledged"], true, "{report}");
    let now = app.payment_now(&p.id()).await;
    assert_eq!(now.data()["status"], "completed", "{:?}", now.body);
    now
}

async fn refund(app: &TestApp, p: &Answer, body: Value) -> Answer {
    app.post(&format!("/api/payments/refund/{}", p.id()), body).await
}

async fn refunded_at_provider(app: &TestApp, p: &Answer) -> i64 {
    let account = p.data()["providerAccount"].as_str().map(str::to_owned);
    let adapter = match account {
        Some(a) => jinliu_server::provider_accounts::adapter_by_id(&app.state, &a)
            .await
            .unwrap_or_else(|e| panic!("{e}")),
        None => None,
    }
    .or_else(|| {
        app.state
            .providers
            .platform()
            .default_for(p.data()["provider"].as_str().unwrap_or_default(), false)
    })
    .unwrap_or_else(|| panic!("no adapter"));
    adapter
        .refunded_total(p.data()["providerReference"].as_str().unwrap_or_default())
        .await
        .unwrap_or_else(|e| panic!("refunded_total: {e}"))
}

async fn event_count(app: &TestApp, object: &str, event_type: &str) -> usize {
    app.store
        .events_for_object(object)
        .await
        .unwrap_or_else(|e| panic!("events: {e}"))
        .iter()
        .filter(|e| e.event_type == event_type)
        .count()
}

pub async fn paid_then_refunded_in_two_parts_and_no_more(c: &Case) {
    let app = spawn_app().await;
    let p = paid(&app, c).await;
    assert!(p.data()["providerTransactionId"].is_string(), "{:?}", p.body);
    let order = app
        .get(&format!(
            "/api/orders/{}",
            p.data()["orderId"].as_str().unwrap_or_default()
        ))
        .await;
    assert_eq!(order.data()["status"], "paid");
    for _ in 0..2 {
        let r = refund(&app, &p, json!({ "amount": c.part })).await;
        assert_eq!(
            (r.status, r.data()["status"].as_str()),
            (201, Some("succeeded")),
            "{:?}",
            r.body
        );
        assert_eq!(r.amount("amount"), c.part_rendered);
    }
    let over = refund(&app, &p, json!({ "amount": c.over })).await;
    assert_eq!(
        (over.status, over.code()),
        (422, "refund_exceeds_remaining"),
        "{:?}",
        over.body
    );
    let now = app.payment_now(&p.id()).await;
    assert_eq!(now.data()["status"], "partially_refunded");
    assert_eq!(now.amount("refundedAmount"), c.two_parts_rendered);
    assert_eq!(refunded_at_provider(&app, &p).await, c.two_parts_minor);
}

pub async fn a_full_refund_refunds_the_order(c: &Case) {
    let app = spawn_app().await;
    let p = paid(&app, c).await;
    let r = refund(&app, &p, json!({})).await;
    assert_eq!(
        (r.status, r.data()["status"].as_str()),
        (201, Some("succeeded")),
        "{:?}",
        r.body
    );
    assert_eq!(app.payment_now(&p.id()).await.data()["status"], "refunded");
    let order = app
        .get(&format!(
            "/api/orders/{}",
            p.data()["orderId"].as_str().unwrap_or_default()
        ))
        .await;
    assert_eq!(order.data()["status"], "refunded");
}

pub async fn a_declined_payment_fails(c: &Case) {
    let app = spawn_app().await;
    let p = create(&app, c).await;
    let (status, report) = app.simulate(&p, "declined").await;
    assert_eq!(status, 200, "{report}");
    let now = app.payment_now(&p.id()).await;
    assert_eq!(now.data()["status"], "failed", "{:?}", now.body);
    // The customer cannot pay it afterwards.
    assert_eq!(app.simulate(&p, "paid").await.0, 409);
}

pub async fn an_expired_payment_expires(c: &Case) {
    let app = spawn_app().await;
    let p = create(&app, c).await;
    let (status, report) = app.simulate(&p, "expired").await;
    assert_eq!(status, 200, "{report}");
    if app.payment_now(&p.id()).await.data()["status"] == "pending" {
        // Providers that do not notify on expiry: the status sync finds out.
        app.sync_now(&p.id()).await;
    }
    let now = app.payment_now(&p.id()).await;
    assert_eq!(now.data()["status"], "expired", "{:?}", now.body);
}

pub async fn duplicated_notifications_change_the_payment_once(c: &Case) {
    let app = spawn_app().await;
    app.faults(c.provider, json!({ "duplicateNotifications": true })).await;
    let p = paid(&app, c).await;
    assert_eq!(event_count(&app, &p.id(), "payment.completed").await, 1);
}

pub async fn reordered_notifications_never_move_a_payment_backwards(c: &Case) {
    let app = spawn_app().await;
    app.faults(c.provider, json!({ "reorderNotifications": true })).await;
    let p = paid(&app, c).await;
    assert_eq!(event_count(&app, &p.id(), "payment.completed").await, 1);
    assert_eq!(app.payment_now(&p.id()).await.data()["status"], "completed");
}

/// A notification in the provider's own format for `p` claiming it was paid, with a signature
/// that is wrong (or, for KPay, a checksum anyone can compute, since it contains no secret).
fn forged_notification(c: &Case, p: &Answer) -> (&'static str, Vec<(&'static str, String)>, String) {
    let reference = p.data()["providerReference"].as_str().unwrap_or("").to_owned();
    let whole = c.amount.split('.').next().unwrap_or("0").to_owned();
    let now = chrono::Utc::now().timestamp();
    match c.provider {
        "octopus" => {
            let merchant = jinliu_providers::sandbox_credentials("octopus")
                .get("merchant_id")
                .cloned()
                .unwrap_or_default();
            let body = json!({ "eventId": "oevt_forged", "merchantId": merchant, "paymentId": "opay_x", "orderId": reference,
                "status": "SUCCESS", "amount": c.amount, "currency": "HKD", "transactionId": "otx_forged", "timestamp": now });
            (
                "application/json",
                vec![
                    ("x-octopus-signature", "00".repeat(32)),
                    ("x-octopus-timestamp", now.to_string()),
                ],
                body.to_string(),
            )
        }
        "ecpay" => (
            "application/x-www-form-urlencoded",
            vec![],
            format!(
                "MerchantID=3002607&MerchantTradeNo={reference}&RtnCode=1&RtnMsg=paid&TradeNo=2411221234567890&TradeAmt={whole}\
                 &PaymentDate=2026%2F11%2F22+12%3A00%3A00&PaymentType=Credit_CreditCard&PaymentTypeChargeFee=0\
                 &TradeDate=2026%2F11%2F22+11%3A59%3A00&SimulatePaid=0&CheckMacValue={}",
                "A".repeat(64)
            ),
        ),
        "tpay" => (
            "application/x-www-form-urlencoded",
            vec![],
            format!(
                "txid={reference}&amount={whole}&pay_type=CREDIT&status=1&tid=T123&verify={}",
                "0".repeat(32)
            ),
        ),
        _ => {
            // KPay: the checksum covers no secret, so a forger computes it correctly.
            let creds = jinliu_providers::sandbox_credentials("kpay");
            let api_id = creds.get("merchant_id").cloned().unwrap_or_default();
            let sum = jinliu_providers::kpay::sign::checksum(&api_id, "T999", &whole, "E", "n1");
            let body = json!({ "api_id": api_id, "trans_id": "T999", "order_no": reference, "amount": whole,
                "status": "E", "nonce": "n1", "checksum": sum });
            ("application/json", vec![], body.to_string())
        }
    }
}

pub async fn a_forged_notification_is_refused_and_changes_nothing(c: &Case) {
    let app = spawn_app().await;
    let p = create(&app, c).await;
    let account = p.data()["providerAccount"].as_str().unwrap_or("").to_owned();
    let (content_type, headers, body) = forged_notification(c, &p);
    let mut req = app
        .http
        .post(format!("{}/api/payments/notify/{}/{account}", app.base, c.provider))
        .header("content-type", content_type)
        .body(body);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let before = app.counts().await;
    let a = app.send(req).await;
    if c.provider == "kpay" {
        // A KPay notification proves nothing, so jinliu asks KPay, which says "not paid".
        assert_eq!((a.status, a.text.as_str()), (200, "OK"), "{:?}", a.body);
    } else {
        assert_eq!((a.status, a.code()), (401, "invalid_signature"), "{:?}", a.body);
    }
    assert_eq!(app.payment_now(&p.id()).await.data()["status"], "pending");
    let after = app.counts().await;
    assert_eq!(
        (after.events, after.payments),
        (before.events, before.payments),
        "nothing changed"
    );
}

pub async fn status_sync_rescues_a_payment_whose_notification_was_dropped(c: &Case) {
    let app = spawn_app().await;
    app.faults(c.provider, json!({ "dropNotifications": true })).await;
    let p = create(&app, c).await;
    let (status, report) = app.simulate(&p, "paid").await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["delivery"]["dropped"], true, "{report}");
    assert_eq!(app.payment_now(&p.id()).await.data()["status"], "pending");
    app.sync_now(&p.id()).await;
    let now = app.payment_now(&p.id()).await;
    assert_eq!(now.data()["status"], "completed", "{:?}", now.body);
}

pub async fn provider_failures_and_timeouts_during_refund_refund_exactly_once(c: &Case) {
    let app = spawn_app().await;
    let p = paid(&app, c).await;
    // A 503 (nothing happened at the provider), then a retry.
    app.faults(c.provider, json!({ "failNext": 1, "ops": ["refund"] }))
        .await;
    let r = refund(&app, &p, json!({ "amount": c.part })).await;
    assert_eq!(
        (r.status, r.data()["status"].as_str()),
        (201, Some("succeeded")),
        "{:?}",
        r.body
    );
    // The refund happens at the provider but its answer comes after jinliu's 1 s timeout.
    app.faults(
        c.provider,
        json!({ "timeoutNext": 1, "timeoutMs": 2500, "ops": ["refund"] }),
    )
    .await;
    let r = refund(&app, &p, json!({ "amount": c.part })).await;
    assert_eq!(
        (r.status, r.data()["status"].as_str()),
        (201, Some("succeeded")),
        "{:?}",
        r.body
    );
    assert_eq!(
        refunded_at_provider(&app, &p).await,
        c.two_parts_minor,
        "refunded exactly once per refund at the provider"
    );
    assert_eq!(
        app.payment_now(&p.id()).await.amount("refundedAmount"),
        c.two_parts_rendered
    );
}

pub async fn provider_failures_and_timeouts_during_create_still_create_one_payment(c: &Case) {
    let app = spawn_app().await;
    app.faults(c.provider, json!({ "failNext": 1, "ops": ["create"] }))
        .await;
    let first = paid(&app, c).await;
    assert_eq!(first.data()["status"], "completed");
    app.faults(
        c.provider,
        json!({ "timeoutNext": 1, "timeoutMs": 2500, "ops": ["create"] }),
    )
    .await;
    let second = paid(&app, c).await;
    assert_eq!(second.data()["status"], "completed");
}

macro_rules! provider_suite {
    ($name:ident, $case:expr, [$($extra:ident),*]) => {
        mod $name {
            use super::*;
            const CASE: Case = $case;
            #[tokio::test]
            async fn is_paid_on_its_sandbox_and_refunded_in_two_parts_and_no_more() {
                paid_then_refunded_in_two_parts_and_no_more(&CASE).await;
            }
            #[tokio::test]
            async fn a_full_refund_refunds_the_order() {
                super::a_full_refund_refunds_the_order(&CASE).await;
            }
            #[tokio::test]
            async fn a_declined_payment_fails() {
                super::a_declined_payment_fails(&CASE).await;
            }
            #[tokio::test]
            async fn an_expired_payment_expires() {
                super::an_expired_payment_expires(&CASE).await;
            }
            #[tokio::test]
            async fn duplicated_notifications_change_the_payment_once() {
                super::duplicated_notifications_change_the_payment_once(&CASE).await;
            }
            #[tokio::test]
            async fn reordered_notifications_never_move_a_payment_backwards() {
                super::reordered_notifications_never_move_a_payment_backwards(&CASE).await;
            }
            #[tokio::test]
            async fn a_forged_notification_is_refused_and_changes_nothing() {
                super::a_forged_notification_is_refused_and_changes_nothing(&CASE).await;
            }
            #[tokio::test]
            async fn status_sync_rescues_a_payment_whose_notification_was_dropped() {
                super::status_sync_rescues_a_payment_whose_notification_was_dropped(&CASE).await;
            }
            #[tokio::test]
            async fn provider_failures_and_timeouts_during_refund_refund_exactly_once() {
                super::provider_failures_and_timeouts_during_refund_refund_exactly_once(&CASE).await;
            }
            $(
                #[tokio::test]
                async fn $extra() {
                    super::$extra(&CASE).await;
                }
            )*
        }
    };
}

const TWD: (&str, &str, &str, &str, &str, i64) = ("300", "100", "101", "100.00", "200.00", 200);

provider_suite!(
    kpay,
    Case {
        provider: "kpay",
        method: "kpay_qr",
        currency: "TWD",
        amount: TWD.0,
        part: TWD.1,
        over: TWD.2,
        part_rendered: TWD.3,
        two_parts_rendered: TWD.4,
        two_parts_minor: TWD.5 * 100
    },
    [provider_failures_and_timeouts_during_create_still_create_one_payment]
);
provider_suite!(
    octopus,
    Case {
        provider: "octopus",
        method: "octopus_qr",
        currency: "HKD",
        amount: "300.00",
        part: "100.00",
        over: "100.10",
        part_rendered: "100.00",
        two_parts_rendered: "200.00",
        two_parts_minor: 20_000
    },
    [provider_failures_and_timeouts_during_create_still_create_one_payment]
);
provider_suite!(
    tpay,
    Case {
        provider: "tpay",
        method: "tpay_redirect",
        currency: "TWD",
        amount: TWD.0,
        part: TWD.1,
        over: TWD.2,
        part_rendered: TWD.3,
        two_parts_rendered: TWD.4,
        two_parts_minor: TWD.5 * 100
    },
    []
);
provider_suite!(
    ecpay,
    Case {
        provider: "ecpay",
        method: "ecpay_credit",
        currency: "TWD",
        amount: TWD.0,
        part: TWD.1,
        over: TWD.2,
        part_rendered: TWD.3,
        two_parts_rendered: TWD.4,
        two_parts_minor: TWD.5 * 100
    },
    []
);

/// An Octopus notification for `payment`, signed with the sandbox merchant's webhook secret,
/// stamped `timestamp`.
fn octopus_notification(p: &Answer, status: &str, timestamp: i64) -> (Vec<u8>, String) {
    use jinliu_providers::octopus::{sign, wire};
    let creds = jinliu_providers::sandbox_credentials("octopus");
    let body = wire::NotificationBody {
        event_id: "oevt_test".into(),
        merchant_id: creds.get("merchant_id").cloned().unwrap_or_default(),
        payment_id: "opay_test".into(),
        order_id: p.data()["providerReference"].as_str().unwrap_or_default().to_owned(),
        status: status.into(),
        amount: p.amount("amount"),
        currency: "HKD".into(),
        transaction_id: Some("otx_test".into()),
        failure_reason: None,
        timestamp,
    };
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let signature = sign::sign(creds.get("webhook_secret").map(String::as_str).unwrap_or(""), &bytes);
    (bytes, signature)
}

async fn post_octopus(app: &TestApp, path: &str, body: Vec<u8>, signature: &str, timestamp: i64) -> Answer {
    app.send(
        app.http
            .post(format!("{}{path}", app.base))
            .header("content-type", "application/json")
            .header("x-octopus-signature", signature)
            .header("x-octopus-timestamp", timestamp.to_string())
            .body(body),
    )
    .await
}

#[tokio::test]
async fn a_stale_octopus_notification_is_refused_even_with_a_valid_signature() {
    let app = spawn_app().await;
    let order = app.order("20.00", "HKD").await;
    let p = app.payment(&order, "20.00", "HKD").await;
    let stale = chrono::Utc::now().timestamp() - 301;
    let (body, signature) = octopus_notification(&p, "SUCCESS", stale);
    let a = post_octopus(&app, "/api/payments/webhook/octopus", body, &signature, stale).await;
    assert_eq!((a.status, a.code()), (401, "invalid_signature"), "{:?}", a.body);
    assert_eq!(app.payment_now(&p.id()).await.data()["status"], "pending");
}

#[tokio::test]
async fn seed_004s_octopus_webhook_path_takes_a_signed_notification_once() {
    let app = spawn_app().await;
    let order = app.order("20.00", "HKD").await;
    let p = app.payment(&order, "20.00", "HKD").await;
    let now = chrono::Utc::now().timestamp();
    let (body, signature) = octopus_notification(&p, "SUCCESS", now);
    for _ in 0..5 {
        let a = post_octopus(&app, "/api/payments/webhook/octopus", body.clone(), &signature, now).await;
        assert_eq!((a.status, a.text.as_str()), (200, r#"{"received":true}"#));
    }
    assert_eq!(app.payment_now(&p.id()).await.data()["status"], "completed");
    assert_eq!(event_count(&app, &p.id(), "payment.completed").await, 1);
    assert_eq!(
        app.counts().await.provider_notifications,
        1,
        "one applied key for five deliveries"
    );
    // A late PROCESSING after SUCCESS is acknowledged and ignored.
    let (body, signature) = octopus_notification(&p, "PROCESSING", now);
    let a = post_octopus(&app, "/api/payments/webhook/octopus", body, &signature, now).await;
    assert_eq!(a.status, 200);
    assert_eq!(app.payment_now(&p.id()).await.data()["status"], "completed");
}

#[tokio::test]
async fn each_provider_refuses_amounts_outside_its_rules_with_invalid_amount() {
    let app = spawn_app().await;
    for (method, currency, amount, why) in [
        ("octopus_qr", "HKD", "10.05", "Octopus takes 10-cent steps"),
        (
            "octopus_qr",
            "HKD",
            "30000.10",
            "Octopus' per-payment maximum is HKD 30,000",
        ),
        ("octopus_qr", "HKD", "0.05", "Octopus' minimum is HKD 0.10"),
        ("kpay_qr", "TWD", "10.50", "KPay takes whole dollars"),
        ("tpay_redirect", "TWD", "10.50", "TPay takes whole dollars"),
        ("ecpay_credit", "TWD", "10.50", "ECPay takes whole dollars"),
    ] {
        let order = app.order(amount, currency).await;
        let before = app.counts().await;
        let a = app
            .post(
                "/api/payments",
                json!({ "orderId": order, "amount": amount, "currency": currency, "method": method }),
            )
            .await;
        assert_eq!((a.status, a.code()), (422, "invalid_amount"), "{why}: {:?}", a.body);
        assert_eq!(app.counts().await, before, "{why}: nothing written");
    }
    let order = app.order("10", "HKD").await;
    let a = app
        .post(
            "/api/payments",
            json!({ "orderId": order, "amount": "10", "currency": "HKD", "method": "kpay_qr" }),
        )
        .await;
    assert_eq!((a.status, a.code()), (422, "currency_not_supported"), "{:?}", a.body);
}

#[tokio::test]
async fn only_ecpay_card_payments_can_be_refunded_through_the_api() {
    // jinliu offers ECPay only as ecpay_credit; the refusal path is the adapter's `can_refund`.
    let app = spawn_app().await;
    let adapter = app
        .state
        .providers
        .platform()
        .default_for("ecpay", false)
        .unwrap_or_else(|| panic!("ecpay"));
    assert!(adapter.can_refund("ecpay_credit"));
    assert!(!adapter.can_refund("ecpay_atm"));
}

#[tokio::test]
async fn a_second_kpay_refund_waits_while_the_first_is_in_flight() {
    // KPay refunds carry no refund id: two at once could not be told apart after a timeout.
    let app = spawn_app().await;
    let c = Case {
        provider: "kpay",
        method: "kpay_qr",
        currency: "TWD",
        amount: "300",
        part: "100",
        over: "101",
        part_rendered: "100.00",
        two_parts_rendered: "200.00",
        two_parts_minor: 20_000,
    };
    let p = paid(&app, &c).await;
    app.faults("kpay", json!({ "latencyMs": 300, "ops": ["refund"] })).await;
    let (a, b) = tokio::join!(
        refund(&app, &p, json!({ "amount": "100" })),
        refund(&app, &p, json!({ "amount": "100" }))
    );
    let mut outcomes = [(a.status, a.code().to_owned()), (b.status, b.code().to_owned())];
    outcomes.sort();
    assert_eq!(
        outcomes,
        [(201, String::new()), (409, "refund_in_progress".to_owned())],
        "{a:?} {b:?}"
    );
    assert_eq!(refunded_at_provider(&app, &p).await, 10_000);
}

#[tokio::test]
async fn a_refund_outside_the_providers_money_rules_is_refused_before_anything_is_reserved() {
    let app = spawn_app().await;
    let c = Case {
        provider: "kpay",
        method: "kpay_qr",
        currency: "TWD",
        amount: "300",
        part: "100",
        over: "101",
        part_rendered: "100.00",
        two_parts_rendered: "200.00",
        two_parts_minor: 20_000,
    };
    let p = paid(&app, &c).await;
    let before = app.counts().await;
    let r = refund(&app, &p, json!({ "amount": "0.50" })).await;
    assert_eq!((r.status, r.code()), (422, "invalid_amount"), "{:?}", r.body);
    // (KPay's capture notification may still arrive meanwhile; only refund rows matter here.)
    let after = app.counts().await;
    assert_eq!(
        (after.refunds, after.idempotency_keys),
        (before.refunds, before.idempotency_keys)
    );
    assert_eq!(app.payment_now(&p.id()).await.amount("refundedAmount"), "0.00");
}
