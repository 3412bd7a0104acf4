//! Octopus adapter tests: money rules and notification checks in isolation, and round trips
//! against the sandbox over real HTTP on 127.0.0.1 (a tiny receiver on another port plays
//! jinliu's notify endpoint and hands what arrives over a channel, so nothing sleeps).

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use jinliu_domain::{PaymentId, RefundId, provider_reference};
use proptest::prelude::*;
use tokio::sync::mpsc;

use super::*;
use crate::CallPolicy;
use crate::sandbox::Kit;

fn hkd(minor: i64) -> Money {
    Money::from_minor(minor, Currency::Hkd).expect("positive")
}

fn fast_policy() -> CallPolicy {
    CallPolicy {
        timeout: Duration::from_secs(5),
        max_attempts: 3,
        backoff_base: Duration::from_millis(1),
        backoff_max: Duration::from_millis(5),
        breaker_failures: 50,
        breaker_cooldown: Duration::from_secs(1),
    }
}

fn account(base_url: &str, notify_url: &str, policy: CallPolicy) -> ProviderAccount {
    ProviderAccount {
        id: "octopus_test".into(),
        provider: "octopus".into(),
        livemode: false,
        base_url: base_url.into(),
        notify_url: notify_url.into(),
        credentials: crate::sandbox_credentials("octopus"),
        policy,
    }
}

fn adapter_with(base_url: &str, notify_url: &str, policy: CallPolicy) -> Octopus {
    let out = Outbound::new("octopus", policy.clone());
    Octopus::new(account(base_url, notify_url, policy), out).expect("sandbox credentials are complete")
}

fn offline() -> Octopus {
    adapter_with("http://127.0.0.1:9", "http://127.0.0.1:9/notify", fast_policy())
}

/// A notification as the receiver saw it.
type Received = InboundNotification;

/// Serves the Octopus sandbox on a free port; returns its base URL.
async fn start_sandbox() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = sandbox::router(Kit::new("octopus", format!("http://{addr}")));
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

/// Plays jinliu's notify endpoint: acknowledges with [`wire::ACK`] and forwards what arrived.
async fn start_receiver() -> (String, mpsc::UnboundedReceiver<Received>) {
    let (tx, rx) = mpsc::unbounded_channel::<Received>();
    async fn receive(State(tx): State<mpsc::UnboundedSender<Received>>, headers: HeaderMap, body: Bytes) -> String {
        let headers = headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
            .collect();
        let _ = tx.send(InboundNotification {
            headers,
            body: body.to_vec(),
        });
        wire::ACK.to_owned()
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = axum::Router::new().route("/notify", post(receive)).with_state(tx);
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/notify"), rx)
}

fn new_payment(amount: Money) -> CreatePayment {
    let payment_id = PaymentId::generate();
    let now = Utc::now();
    CreatePayment {
        reference: provider_reference(&payment_id),
        payment_id,
        amount,
        method: "octopus_qr".into(),
        description: "Milk tea x2".into(),
        return_url: Some("http://127.0.0.1:1/return".into()),
        created_at: now,
        expires_at: now + chrono::Duration::minutes(15),
    }
}

fn refund_of(p: &CreatePayment, id: &RefundId, minor: i64) -> RefundRequest {
    RefundRequest {
        payment_reference: p.reference.clone(),
        method: p.method.clone(),
        payment_amount: p.amount,
        refund_id: id.clone(),
        amount: hkd(minor),
        reason: Some("customer asked".into()),
    }
}

async fn simulate(base: &str, reference: &str, outcome: &str) -> (u16, serde_json::Value) {
    let resp = reqwest::Client::new()
        .post(format!("{base}/simulate"))
        .json(&serde_json::json!({ "reference": reference, "outcome": outcome }))
        .send()
        .await
        .expect("simulate reachable");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("json"))
}

async fn put_control(base: &str, faults: serde_json::Value) {
    let resp = reqwest::Client::new()
        .put(format!("{base}/control"))
        .json(&faults)
        .send()
        .await
        .expect("control reachable");
    assert_eq!(resp.status().as_u16(), 200);
}

/// A sandbox, a receiver, an adapter pointed at both, and one paid payment.
async fn paid_payment(amount: i64) -> (String, Octopus, CreatePayment, mpsc::UnboundedReceiver<Received>) {
    let base = start_sandbox().await;
    let (notify, mut rx) = start_receiver().await;
    let octopus = adapter_with(&base, &notify, fast_policy());
    let p = new_payment(hkd(amount));
    octopus.create_payment(&p).await.expect("created");
    let (status, _) = simulate(&base, &p.reference, "paid").await;
    assert_eq!(status, 200);
    rx.recv().await.expect("processing");
    rx.recv().await.expect("success");
    (base, octopus, p, rx)
}

/// Signs `body` the way the sandbox does, for hand-made notifications.
fn signed_note(body: &serde_json::Value, stamp: i64) -> InboundNotification {
    let bytes = serde_json::to_vec(body).expect("json");
    InboundNotification {
        headers: vec![
            (
                "x-octopus-signature".into(),
                sign::sign("oct-sandbox-webhook-secret", &bytes),
            ),
            ("x-octopus-timestamp".into(), stamp.to_string()),
        ],
        body: bytes,
    }
}

fn note_body(status: &str, stamp: i64) -> serde_json::Value {
    serde_json::json!({
        "eventId": "oevt_1", "merchantId": "OCTSANDBOX01", "paymentId": "opay_1",
        "orderId": "J0000000000000000001", "status": status, "amount": "100.00", "currency": "HKD",
        "transactionId": "R1", "failureReason": null, "timestamp": stamp
    })
}

// ---------- money rules ----------

#[test]
fn hkd_amounts_from_ten_cents_to_thirty_thousand_in_ten_cent_steps_are_accepted() {
    let o = offline();
    for minor in [10, 20, 1_000, 10_000, 2_999_990, 3_000_000] {
        assert_eq!(o.check_amount(hkd(minor)), Ok(()), "{minor}");
    }
    assert!(o.supports(Currency::Hkd));
    assert!(!o.supports(Currency::Twd));
}

#[test]
fn amounts_off_the_ten_cent_step_or_outside_the_limits_are_refused_with_a_clear_message() {
    let o = offline();
    let step = o.check_amount(hkd(1_005)).expect_err("10.05 is off-step");
    assert!(step.contains("10-cent steps") && step.contains("10.05"), "{step}");
    let low = o.check_amount(hkd(5)).expect_err("0.05 is below the minimum");
    assert!(low.contains("at least HKD 0.10"), "{low}");
    let high = o
        .check_amount(hkd(3_000_010))
        .expect_err("30,000.10 is above the maximum");
    assert!(high.contains("at most HKD 30,000.00"), "{high}");
    let usd = o
        .check_amount(Money::from_minor(1_000, Currency::Usd).expect("positive"))
        .expect_err("USD is refused");
    assert!(usd.contains("HKD only"), "{usd}");
}

#[test]
fn an_account_missing_a_credential_is_refused_up_front() {
    for key in CREDENTIAL_KEYS {
        let mut acc = account("http://127.0.0.1:9", "http://127.0.0.1:9/n", fast_policy());
        acc.credentials.remove(key);
        let err = Octopus::new(acc, Outbound::new("octopus", fast_policy())).expect_err("missing");
        assert_eq!(
            err,
            AccountError::MissingCredential {
                account: "octopus_test".into(),
                key: key.into()
            }
        );
    }
}

#[test]
fn the_debug_form_never_shows_a_secret() {
    let shown = format!("{:?}", offline());
    assert!(!shown.contains("oct-sandbox-signing-secret") && !shown.contains("oct-sandbox-api-key"));
    assert!(!shown.contains("oct-sandbox-webhook-secret"));
}

// ---------- notifications in isolation ----------

#[test]
fn a_signed_success_notification_is_read_with_its_status_amount_and_ack() {
    let now = Utc::now();
    let n = signed_note(&note_body("SUCCESS", now.timestamp()), now.timestamp());
    let v = offline().verify_notification(&n, now).expect("valid");
    assert_eq!(v.reference, "J0000000000000000001");
    assert_eq!(
        v.status,
        ProviderStatus::Succeeded {
            transaction_id: Some("R1".into())
        }
    );
    assert_eq!(v.status_code, "SUCCESS");
    assert_eq!(v.amount, Some(hkd(10_000)));
    assert!(v.trusted);
    assert_eq!(v.ack, r#"{"received":true}"#);
}

#[test]
fn a_notification_outside_the_300_second_window_is_rejected() {
    let now = Utc::now();
    let stale = now.timestamp() - 301;
    let n = signed_note(&note_body("SUCCESS", stale), stale);
    assert!(matches!(
        offline().verify_notification(&n, now),
        Err(ProviderError::BadNotification(_))
    ));
    let edge = now.timestamp() - 300;
    let n = signed_note(&note_body("SUCCESS", edge), edge);
    assert!(offline().verify_notification(&n, now).is_ok());
}

#[test]
fn a_timestamp_header_that_differs_from_the_signed_body_is_rejected() {
    let now = Utc::now();
    let mut n = signed_note(&note_body("SUCCESS", now.timestamp() - 3_600), now.timestamp());
    assert!(offline().verify_notification(&n, now).is_err());
    n.headers.retain(|(k, _)| k != "x-octopus-timestamp");
    assert!(offline().verify_notification(&n, now).is_err());
}

#[test]
fn an_unknown_status_word_or_another_merchant_is_rejected() {
    let now = Utc::now();
    let stamp = now.timestamp();
    let n = signed_note(&note_body("PAID_MAYBE", stamp), stamp);
    assert!(offline().verify_notification(&n, now).is_err());
    let mut other = note_body("SUCCESS", stamp);
    other["merchantId"] = "SOMEONE_ELSE".into();
    assert!(offline().verify_notification(&signed_note(&other, stamp), now).is_err());
}

#[test]
fn every_provider_status_word_maps_to_a_jinliu_status() {
    assert_eq!(map_status("PENDING", None, None), Some(ProviderStatus::Pending));
    assert_eq!(map_status("PROCESSING", None, None), Some(ProviderStatus::Processing));
    assert_eq!(
        map_status("FAILED", None, Some("DECLINED")),
        Some(ProviderStatus::Failed {
            reason: "DECLINED".into()
        })
    );
    assert_eq!(map_status("EXPIRED", None, None), Some(ProviderStatus::Expired));
    assert_eq!(map_status("CANCELLED", None, None), Some(ProviderStatus::Cancelled));
    assert_eq!(map_status("success", None, None), None);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn verify_notification_never_panics_on_arbitrary_headers_and_body(
        headers in proptest::collection::vec(("[a-z-]{0,24}", ".{0,40}"), 0..6),
        body in proptest::collection::vec(any::<u8>(), 0..512),
        stamp in any::<i64>(),
        sign_it in any::<bool>(),
    ) {
        let mut headers: Vec<(String, String)> = headers;
        if sign_it {
            // Reach the parser too: a correct signature over garbage.
            headers.push(("x-octopus-signature".into(), sign::sign("oct-sandbox-webhook-secret", &body)));
            headers.push(("x-octopus-timestamp".into(), stamp.to_string()));
        }
        let _ = offline().verify_notification(&InboundNotification { headers, body }, Utc::now());
    }

    #[test]
    fn verify_notification_never_panics_on_signed_json_with_arbitrary_fields(
        status in ".{0,12}", amount in ".{0,12}", currency in ".{0,4}", stamp in any::<i64>(),
    ) {
        let body = serde_json::json!({
            "eventId": "e", "merchantId": "OCTSANDBOX01", "paymentId": "p", "orderId": "o",
            "status": status, "amount": amount, "currency": currency, "timestamp": stamp
        });
        let _ = offline().verify_notification(&signed_note(&body, stamp), Utc::now());
    }
}

// ---------- over real HTTP ----------

#[tokio::test]
async fn a_payment_is_created_paid_notified_queried_and_refunded_in_two_parts() {
    let base = start_sandbox().await;
    let (notify, mut rx) = start_receiver().await;
    let octopus = adapter_with(&base, &notify, fast_policy());
    let p = new_payment(hkd(10_000));

    let created = octopus.create_payment(&p).await.expect("created");
    let pay_url = created.pay_url.clone().expect("landing URL");
    let token = created.payment_token.clone().expect("token");
    assert_eq!(pay_url, format!("{base}/oos/payment/?token={token}"));
    assert_eq!(
        created.deep_link.as_deref(),
        Some(format!("octopus://payment?token={token}").as_str())
    );
    assert!(
        created
            .expires_at
            .is_some_and(|t| (t - p.expires_at).num_seconds().abs() <= 1)
    );
    assert_eq!(octopus.query_payment(&p.reference).await, Ok(ProviderStatus::Pending));

    // The QR code's content is the pay page.
    let page = reqwest::get(&pay_url).await.expect("page").text().await.expect("text");
    assert!(
        page.contains("100.00") && page.contains("Milk tea x2") && page.contains("id=\"pay\""),
        "{page}"
    );

    let (status, answer) = simulate(&base, &p.reference, "paid").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["delivery"]["acknowledged"], true, "{answer}");
    assert_eq!(answer["delivery"]["sent"], 2, "{answer}");

    let first = rx.recv().await.expect("first notification");
    let v = octopus.verify_notification(&first, Utc::now()).expect("verified");
    assert_eq!(
        (v.reference.as_str(), v.status_code.as_str()),
        (p.reference.as_str(), "PROCESSING")
    );
    assert_eq!(v.status, ProviderStatus::Processing);
    let second = rx.recv().await.expect("second notification");
    let v = octopus.verify_notification(&second, Utc::now()).expect("verified");
    assert_eq!(v.status_code, "SUCCESS");
    assert_eq!(v.amount, Some(p.amount));
    assert!(matches!(
        v.status,
        ProviderStatus::Succeeded {
            transaction_id: Some(_)
        }
    ));
    assert!(matches!(
        octopus.query_payment(&p.reference).await,
        Ok(ProviderStatus::Succeeded {
            transaction_id: Some(_)
        })
    ));

    let (r1, r2, r3) = (RefundId::generate(), RefundId::generate(), RefundId::generate());
    assert!(matches!(
        octopus.refund(&refund_of(&p, &r1, 3_000)).await,
        Ok(RefundOutcome::Succeeded(Some(_)))
    ));
    assert!(matches!(
        octopus.refund(&refund_of(&p, &r2, 2_000)).await,
        Ok(RefundOutcome::Succeeded(Some(_)))
    ));
    match octopus.refund(&refund_of(&p, &r3, 6_000)).await {
        Ok(RefundOutcome::Failed(reason)) => assert!(reason.contains("REFUND_EXCEEDS_AVAILABLE"), "{reason}"),
        other => panic!("over-refund should be refused, got {other:?}"),
    }
    // The same refund id again is the same refund, not a third one.
    assert!(matches!(
        octopus.refund(&refund_of(&p, &r1, 3_000)).await,
        Ok(RefundOutcome::Succeeded(Some(_)))
    ));
    assert_eq!(octopus.refunded_total(&p.reference).await, Ok(5_000));
    assert!(octopus.refund_is_idempotent());
}

#[tokio::test]
async fn a_notification_with_one_byte_changed_is_rejected() {
    let base = start_sandbox().await;
    let (notify, mut rx) = start_receiver().await;
    let octopus = adapter_with(&base, &notify, fast_policy());
    let p = new_payment(hkd(2_000));
    octopus.create_payment(&p).await.expect("created");
    simulate(&base, &p.reference, "declined").await;
    let genuine = rx.recv().await.expect("notification");
    let v = octopus
        .verify_notification(&genuine, Utc::now())
        .expect("genuine verifies");
    assert_eq!(v.status_code, "FAILED");
    for i in [0, genuine.body.len() / 2, genuine.body.len() - 1] {
        let mut forged = genuine.clone();
        forged.body[i] ^= 0x01;
        assert!(
            matches!(
                octopus.verify_notification(&forged, Utc::now()),
                Err(ProviderError::BadNotification(_))
            ),
            "byte {i}"
        );
    }
}

#[tokio::test]
async fn the_sandbox_refuses_a_request_signed_with_the_wrong_secret() {
    let base = start_sandbox().await;
    let mut acc = account(&base, "http://127.0.0.1:9/n", fast_policy());
    acc.credentials.insert("signing_secret".into(), "not-the-secret".into());
    let forged = Octopus::new(acc, Outbound::new("octopus", fast_policy())).expect("complete");
    match forged.create_payment(&new_payment(hkd(1_000))).await {
        Err(ProviderError::Refused(m)) => assert!(m.contains("INVALID_SIGNATURE"), "{m}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    match forged.query_payment("J0000000000000000001").await {
        Err(ProviderError::Refused(m)) => assert!(m.contains("INVALID_SIGNATURE"), "{m}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn the_sandbox_refuses_an_unknown_merchant_a_wrong_api_key_a_stale_timestamp_and_a_replayed_nonce() {
    let base = start_sandbox().await;
    let client = reqwest::Client::new();
    let path = "/v1/payments/J0000000000000000001";
    let send = |merchant: &'static str, key: &'static str, stamp: i64, nonce: &'static str| {
        let stamp = stamp.to_string();
        let sig = sign::sign(
            "oct-sandbox-signing-secret",
            sign::path_payload("GET", path, &stamp, nonce).as_bytes(),
        );
        client
            .get(format!("{base}{path}"))
            .bearer_auth(key)
            .header(wire::H_MERCHANT, merchant)
            .header(wire::H_TIMESTAMP, stamp)
            .header(wire::H_NONCE, nonce)
            .header(wire::H_SIGNATURE, sig)
            .send()
    };
    let code = |resp: reqwest::Response| async move {
        let status = resp.status().as_u16();
        let body: wire::ErrorBody = resp.json().await.expect("error envelope");
        (status, body.error.code)
    };
    let now = Utc::now().timestamp();
    let r = send("OCTSANDBOX01", "oct-sandbox-api-key", now, "nonce-a")
        .await
        .expect("sent");
    assert_eq!(code(r).await, (404, "PAYMENT_NOT_FOUND".into()));
    let r = send("OCTSANDBOX01", "oct-sandbox-api-key", now, "nonce-a")
        .await
        .expect("sent");
    assert_eq!(code(r).await, (401, "NONCE_REPLAYED".into()));
    let r = send("NOBODY", "oct-sandbox-api-key", now, "nonce-b")
        .await
        .expect("sent");
    assert_eq!(code(r).await, (401, "UNAUTHORIZED".into()));
    let r = send("OCTSANDBOX01", "oct-sandbox-signing-secret", now, "nonce-c")
        .await
        .expect("sent");
    assert_eq!(code(r).await, (401, "UNAUTHORIZED".into()));
    let r = send("OCTSANDBOX01", "oct-sandbox-api-key", now - 301, "nonce-d")
        .await
        .expect("sent");
    assert_eq!(code(r).await, (401, "TIMESTAMP_OUT_OF_RANGE".into()));
}

#[tokio::test]
async fn a_refund_whose_answer_times_out_is_retried_and_refunds_exactly_once() {
    let (base, _, p, _rx) = paid_payment(10_000).await;
    let policy = CallPolicy {
        timeout: Duration::from_millis(300),
        ..fast_policy()
    };
    let octopus = adapter_with(&base, "http://127.0.0.1:9/n", policy.clone());
    put_control(
        &base,
        serde_json::json!({ "timeoutNext": 1, "timeoutMs": 1000, "ops": ["refund"] }),
    )
    .await;
    let req = refund_of(&p, &RefundId::generate(), 4_000);
    let outcome = crate::outbound::refund_safely(&octopus, &req, 0, &policy).await;
    assert!(matches!(outcome, Ok(RefundOutcome::Succeeded(_))), "{outcome:?}");
    assert_eq!(octopus.refunded_total(&p.reference).await, Ok(4_000));
}

#[tokio::test]
async fn a_create_retried_after_a_5xx_makes_one_payment_and_a_repeat_returns_it() {
    let base = start_sandbox().await;
    let octopus = adapter_with(&base, "http://127.0.0.1:9/n", fast_policy());
    put_control(&base, serde_json::json!({ "failNext": 1, "ops": ["create"] })).await;
    let p = new_payment(hkd(2_500 * 10));
    let first = octopus.create_payment(&p).await.expect("created after one 503");
    let again = octopus.create_payment(&p).await.expect("repeat");
    assert_eq!(first.payment_token, again.payment_token);
    // The same orderId for other money is a different payment: refused.
    let mut other = p.clone();
    other.amount = hkd(30_000);
    match octopus.create_payment(&other).await {
        Err(ProviderError::Refused(m)) => assert!(m.contains("DUPLICATE_ORDER"), "{m}"),
        r => panic!("expected DUPLICATE_ORDER, got {r:?}"),
    }
}

#[tokio::test]
async fn a_create_whose_answer_times_out_is_retried_and_returns_the_payment_made() {
    let base = start_sandbox().await;
    let policy = CallPolicy {
        timeout: Duration::from_millis(300),
        ..fast_policy()
    };
    let octopus = adapter_with(&base, "http://127.0.0.1:9/n", policy);
    put_control(
        &base,
        serde_json::json!({ "timeoutNext": 1, "timeoutMs": 1000, "ops": ["create"] }),
    )
    .await;
    let p = new_payment(hkd(1_000));
    octopus.create_payment(&p).await.expect("created on the retry");
    assert_eq!(octopus.query_payment(&p.reference).await, Ok(ProviderStatus::Pending));
}

#[tokio::test]
async fn a_declined_payment_notifies_failed_and_an_expired_one_notifies_expired() {
    let base = start_sandbox().await;
    let (notify, mut rx) = start_receiver().await;
    let octopus = adapter_with(&base, &notify, fast_policy());
    let declined = new_payment(hkd(1_000));
    let expired = new_payment(hkd(1_000));
    octopus.create_payment(&declined).await.expect("created");
    octopus.create_payment(&expired).await.expect("created");

    simulate(&base, &declined.reference, "declined").await;
    let v = octopus
        .verify_notification(&rx.recv().await.expect("note"), Utc::now())
        .expect("ok");
    assert_eq!(
        v.status,
        ProviderStatus::Failed {
            reason: "DECLINED".into()
        }
    );
    simulate(&base, &expired.reference, "expired").await;
    let v = octopus
        .verify_notification(&rx.recv().await.expect("note"), Utc::now())
        .expect("ok");
    assert_eq!((v.status, v.status_code.as_str()), (ProviderStatus::Expired, "EXPIRED"));
    assert_eq!(
        octopus.query_payment(&expired.reference).await,
        Ok(ProviderStatus::Expired)
    );

    // Settled payments are no longer open; unknown ones are unknown.
    assert_eq!(simulate(&base, &declined.reference, "paid").await.0, 409);
    assert_eq!(simulate(&base, "J0000000000000000009", "paid").await.0, 404);
    // Refunding an unpaid payment is refused by the provider.
    let r = octopus
        .refund(&refund_of(&declined, &RefundId::generate(), 1_000))
        .await;
    assert!(
        matches!(r, Ok(RefundOutcome::Failed(ref m)) if m.contains("PAYMENT_NOT_REFUNDABLE")),
        "{r:?}"
    );
}

#[tokio::test]
async fn an_open_payment_can_be_cancelled_twice_but_a_paid_one_cannot() {
    let (base, octopus, paid, _rx) = paid_payment(1_000).await;
    let open = new_payment(hkd(1_000));
    octopus.create_payment(&open).await.expect("created");
    assert_eq!(octopus.cancel(&open.reference).await, Ok(()));
    assert_eq!(octopus.cancel(&open.reference).await, Ok(()));
    assert_eq!(
        octopus.query_payment(&open.reference).await,
        Ok(ProviderStatus::Cancelled)
    );
    assert!(
        matches!(octopus.cancel(&paid.reference).await, Err(ProviderError::Refused(m)) if m.contains("PAYMENT_NOT_CANCELLABLE"))
    );
    assert_eq!(
        octopus.query_payment("J0000000000000000009").await,
        Err(ProviderError::NotFound)
    );
    assert_eq!(simulate(&base, &open.reference, "paid").await.0, 409);
}

#[tokio::test]
async fn reordered_notifications_arrive_newest_first_and_still_verify() {
    let base = start_sandbox().await;
    let (notify, mut rx) = start_receiver().await;
    let octopus = adapter_with(&base, &notify, fast_policy());
    let p = new_payment(hkd(1_000));
    octopus.create_payment(&p).await.expect("created");
    put_control(&base, serde_json::json!({ "reorderNotifications": true })).await;
    simulate(&base, &p.reference, "paid").await;
    let codes: Vec<String> = [rx.recv().await, rx.recv().await]
        .into_iter()
        .map(|n| {
            octopus
                .verify_notification(&n.expect("note"), Utc::now())
                .expect("ok")
                .status_code
        })
        .collect();
    assert_eq!(codes, ["SUCCESS", "PROCESSING"]);
}

#[tokio::test]
async fn the_landing_page_for_an_unknown_token_is_not_found() {
    let base = start_sandbox().await;
    let resp = reqwest::get(format!("{base}/oos/payment/?token=nope"))
        .await
        .expect("reachable");
    assert_eq!(resp.status().as_u16(), 404);
}

#[tokio::test]
async fn a_payment_whose_notifications_were_dropped_is_found_paid_by_a_query() {
    let base = start_sandbox().await;
    let (notify, mut rx) = start_receiver().await;
    let octopus = adapter_with(&base, &notify, fast_policy());
    let p = new_payment(hkd(1_000));
    octopus.create_payment(&p).await.expect("created");
    put_control(&base, serde_json::json!({ "dropNotifications": true })).await;
    let (_, answer) = simulate(&base, &p.reference, "paid").await;
    assert_eq!(answer["delivery"]["dropped"], true, "{answer}");
    assert!(rx.try_recv().is_err());
    assert!(matches!(
        octopus.query_payment(&p.reference).await,
        Ok(ProviderStatus::Succeeded {
            transaction_id: Some(_)
        })
    ));
}

#[tokio::test]
async fn a_refund_answered_503_is_retried_and_refunds_exactly_once() {
    let (base, octopus, p, _rx) = paid_payment(10_000).await;
    put_control(&base, serde_json::json!({ "failNext": 2, "ops": ["refund"] })).await;
    let req = refund_of(&p, &RefundId::generate(), 10_000);
    let outcome = crate::outbound::refund_safely(&octopus, &req, 0, &fast_policy()).await;
    assert!(matches!(outcome, Ok(RefundOutcome::Succeeded(_))), "{outcome:?}");
    assert_eq!(octopus.refunded_total(&p.reference).await, Ok(10_000));
    let again = octopus.refund(&refund_of(&p, &RefundId::generate(), 10)).await;
    assert!(
        matches!(again, Ok(RefundOutcome::Failed(ref m)) if m.contains("REFUND_EXCEEDS_AVAILABLE")),
        "{again:?}"
    );
}

#[tokio::test]
async fn a_refund_off_the_ten_cent_step_is_refused_without_calling_the_provider() {
    let r = offline()
        .refund(&RefundRequest {
            payment_reference: "J0000000000000000001".into(),
            method: "octopus_qr".into(),
            payment_amount: hkd(10_000),
            refund_id: RefundId::generate(),
            amount: hkd(1_005),
            reason: None,
        })
        .await;
    assert!(
        matches!(r, Ok(RefundOutcome::Failed(ref m)) if m.contains("10-cent steps")),
        "{r:?}"
    );
}

#[test]
fn the_documented_notification_is_what_the_sandbox_serialises_and_it_verifies() {
    let body = wire::NotificationBody {
        event_id: "oevt_5f2c1a9e0b7d3c4e8a1f6b20".into(),
        merchant_id: "OCTSANDBOX01".into(),
        payment_id: "opay_3b9d2e7f1c0a4b8e6d5f2a19".into(),
        order_id: "J0M9Z3K2X1W0V9U8T7S6".into(),
        status: "SUCCESS".into(),
        amount: "100.00".into(),
        currency: "HKD".into(),
        transaction_id: Some("R4F1C9A2B7E3D".into()),
        failure_reason: None,
        timestamp: 1_700_000_000,
    };
    let bytes = serde_json::to_vec(&body).expect("json");
    assert_eq!(String::from_utf8_lossy(&bytes), sign::tests::DOC_NOTIFICATION);
    let n = InboundNotification {
        headers: vec![
            (
                "x-octopus-signature".into(),
                "4c20df72c2d5007f1890959544de47c29f0ba07b6b59714f5b47fa8b5af2089a".into(),
            ),
            ("x-octopus-timestamp".into(), "1700000000".into()),
        ],
        body: bytes,
    };
    let at = chrono::DateTime::from_timestamp(1_700_000_100, 0).expect("valid");
    let v = offline().verify_notification(&n, at).expect("verifies");
    assert_eq!(v.reference, "J0M9Z3K2X1W0V9U8T7S6");
}
