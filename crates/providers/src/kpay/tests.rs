//! The KPay adapter against its sandbox over real HTTP on 127.0.0.1, plus unit tests of its money
//! rules, status letters and notification checks.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use jinliu_domain::{Currency, Money, PaymentId, RefundId};
use proptest::prelude::*;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::sandbox::{self, KPaySandbox};
use super::*;
use crate::CallPolicy;
use crate::sandbox::Kit;

type Inbox = mpsc::UnboundedReceiver<InboundNotification>;

struct World {
    base: String,
    sandbox: Arc<KPaySandbox>,
    notify_url: String,
    inbox: Inbox,
    http: reqwest::Client,
}

async fn receive(
    State(tx): State<mpsc::UnboundedSender<InboundNotification>>,
    headers: HeaderMap,
    body: Bytes,
) -> &'static str {
    let headers = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_ascii_lowercase(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    tx.send(InboundNotification {
        headers,
        body: body.to_vec(),
    })
    .expect("the test still listens");
    ACK
}

/// A sandbox and a notification receiver (answering `OK`), each on its own port.
async fn world() -> World {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind sandbox");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let sandbox = Arc::new(KPaySandbox::new(Kit::new("kpay", base.clone())));
    let app = sandbox::routes(sandbox.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let (tx, inbox) = mpsc::unbounded_channel();
    let receiver = TcpListener::bind("127.0.0.1:0").await.expect("bind receiver");
    let notify_url = format!("http://{}/notify", receiver.local_addr().expect("addr"));
    let app = Router::new().route("/notify", post(receive)).with_state(tx);
    tokio::spawn(async move { axum::serve(receiver, app).await });

    World {
        base,
        sandbox,
        notify_url,
        inbox,
        http: reqwest::Client::new(),
    }
}

fn quick_policy() -> CallPolicy {
    CallPolicy {
        timeout: Duration::from_millis(300),
        max_attempts: 3,
        backoff_base: Duration::from_millis(1),
        backoff_max: Duration::from_millis(5),
        breaker_failures: 20,
        breaker_cooldown: Duration::from_secs(1),
    }
}

fn account(base: &str, notify_url: &str, policy: CallPolicy) -> ProviderAccount {
    ProviderAccount {
        id: "kpay_test".into(),
        provider: "kpay".into(),
        livemode: false,
        base_url: base.to_owned(),
        notify_url: notify_url.to_owned(),
        credentials: crate::sandbox_credentials("kpay"),
        policy,
    }
}

impl World {
    fn adapter(&self, policy: CallPolicy) -> KPay {
        let acc = account(&self.base, &self.notify_url, policy.clone());
        KPay::new(acc, Outbound::new("kpay", policy)).expect("sandbox credentials are complete")
    }

    async fn simulate(&self, reference: &str, outcome: &str) -> serde_json::Value {
        self.http
            .post(format!("{}/simulate", self.base))
            .json(&serde_json::json!({ "reference": reference, "outcome": outcome }))
            .send()
            .await
            .expect("simulate answers")
            .json()
            .await
            .expect("simulate answers JSON")
    }

    async fn control(&self, faults: serde_json::Value) {
        let status = self
            .http
            .put(format!("{}/control", self.base))
            .json(&faults)
            .send()
            .await
            .expect("control answers")
            .status();
        assert_eq!(status, 200);
    }

    async fn next_note(&mut self) -> InboundNotification {
        tokio::time::timeout(Duration::from_secs(5), self.inbox.recv())
            .await
            .expect("a notification arrives")
            .expect("the receiver runs")
    }
}

fn twd(whole: i64) -> Money {
    Money::from_minor(whole * 100, Currency::Twd).expect("positive")
}

fn create_req(amount: Money) -> CreatePayment {
    let payment_id = PaymentId::generate();
    let now = chrono::Utc::now();
    CreatePayment {
        reference: jinliu_domain::provider_reference(&payment_id),
        payment_id,
        amount,
        method: "kpay_card".into(),
        description: "Order 1001".into(),
        return_url: Some("http://127.0.0.1:9/return".into()),
        created_at: now,
        expires_at: now + chrono::TimeDelta::minutes(15),
    }
}

fn refund_req(reference: &str, payment: Money, amount: Money) -> RefundRequest {
    RefundRequest {
        payment_reference: reference.to_owned(),
        method: "kpay_card".into(),
        payment_amount: payment,
        refund_id: RefundId::generate(),
        amount,
        reason: None,
    }
}

/// Creates a payment, pays it in the sandbox and captures it, consuming both notifications.
async fn paid_and_captured(w: &mut World, kpay: &KPay, amount: Money) -> String {
    let req = create_req(amount);
    kpay.create_payment(&req).await.expect("created");
    w.simulate(&req.reference, "paid").await;
    w.next_note().await;
    kpay.capture(&req.reference, amount).await.expect("captured");
    w.next_note().await;
    req.reference
}

#[tokio::test]
async fn a_payment_is_authorised_captured_and_refunded_in_parts_over_http() {
    let mut w = world().await;
    let kpay = w.adapter(quick_policy());
    let amount = twd(500);
    let req = create_req(amount);

    let created = kpay.create_payment(&req).await.expect("created");
    assert_eq!(created.pay_url, Some(format!("{}/pay/{}", w.base, req.reference)));
    assert_eq!(kpay.query_payment(&req.reference).await, Ok(ProviderStatus::Pending));

    let sim = w.simulate(&req.reference, "paid").await;
    assert_eq!(sim["delivery"]["acknowledged"], true, "{sim}");
    let note = w.next_note().await;
    let v = kpay.verify_notification(&note, chrono::Utc::now()).expect("authentic");
    assert_eq!(v.reference, req.reference);
    assert_eq!(v.status, ProviderStatus::Authorized);
    assert_eq!(v.status_code, "B");
    assert_eq!(v.amount, Some(amount));
    assert!(!v.trusted, "an MD5 without a secret proves nothing");
    assert_eq!(v.ack, "OK");
    assert_eq!(kpay.query_payment(&req.reference).await, Ok(ProviderStatus::Authorized));

    kpay.capture(&req.reference, amount).await.expect("captured");
    let note = w.next_note().await;
    let v = kpay.verify_notification(&note, chrono::Utc::now()).expect("authentic");
    assert_eq!(v.status_code, "E");
    let Ok(ProviderStatus::Succeeded {
        transaction_id: Some(trans_id),
    }) = kpay.query_payment(&req.reference).await
    else {
        panic!("the query should say captured");
    };
    assert_eq!(
        v.status,
        ProviderStatus::Succeeded {
            transaction_id: Some(trans_id)
        }
    );
    kpay.capture(&req.reference, amount)
        .await
        .expect("a repeated capture is harmless");

    let first = kpay.refund(&refund_req(&req.reference, amount, twd(100))).await;
    assert_eq!(first, Ok(RefundOutcome::Succeeded(None)));
    let second = kpay.refund(&refund_req(&req.reference, amount, twd(150))).await;
    assert_eq!(second, Ok(RefundOutcome::Succeeded(None)));
    let over = kpay.refund(&refund_req(&req.reference, amount, twd(251))).await;
    assert!(
        matches!(over, Ok(RefundOutcome::Failed(ref m)) if m.contains("refundable")),
        "{over:?}"
    );
    assert_eq!(kpay.refunded_total(&req.reference).await, Ok(25_000));
}

#[tokio::test]
async fn a_notification_with_any_one_byte_changed_is_rejected() {
    let mut w = world().await;
    let kpay = w.adapter(quick_policy());
    let req = create_req(twd(500));
    kpay.create_payment(&req).await.expect("created");
    w.simulate(&req.reference, "paid").await;
    let note = w.next_note().await;
    assert!(kpay.verify_notification(&note, chrono::Utc::now()).is_ok());

    for i in 0..note.body.len() {
        let mut forged = note.clone();
        forged.body[i] = b'#';
        let r = kpay.verify_notification(&forged, chrono::Utc::now());
        assert!(
            r.is_err(),
            "byte {i} changed was accepted: {}",
            String::from_utf8_lossy(&forged.body)
        );
    }
    let mut forged = note.clone();
    let text = String::from_utf8(forged.body).expect("utf-8");
    forged.body = text.replace("\"amount\":500", "\"amount\":5").into_bytes();
    assert!(matches!(
        kpay.verify_notification(&forged, chrono::Utc::now()),
        Err(ProviderError::BadNotification(ref m)) if m.contains("checksum")
    ));
}

#[tokio::test]
async fn a_notification_for_another_merchant_is_rejected() {
    let w = world().await;
    let kpay = w.adapter(quick_policy());
    let (api_id, trans_id, amount, status, nonce) = ("SOMEONEELSE", "KT1", "100", "E", "n1");
    let body = serde_json::json!({
        "api_id": api_id, "trans_id": trans_id, "order_no": "J0000000000000000001", "amount": 100,
        "status": status, "nonce": nonce, "checksum": sign::checksum(api_id, trans_id, amount, status, nonce),
    });
    let n = InboundNotification {
        headers: Vec::new(),
        body: serde_json::to_vec(&body).expect("json"),
    };
    assert!(matches!(
        kpay.verify_notification(&n, chrono::Utc::now()),
        Err(ProviderError::BadNotification(ref m)) if m.contains("api_id")
    ));
}

#[tokio::test]
async fn the_sandbox_refuses_a_wrong_api_key_and_a_forged_bearer_token() {
    let w = world().await;
    let reply = w
        .http
        .post(format!("{}/token", w.base))
        .form(&[
            ("grant_type", "password"),
            ("username", "KPAYSANDBOX01"),
            ("password", "wrong"),
        ])
        .send()
        .await
        .expect("answers");
    assert_eq!(reply.status(), 400);
    let body: serde_json::Value = reply.json().await.expect("json");
    assert_eq!(body["error"], "invalid_grant");

    let reply = w
        .http
        .post(format!("{}/api/Collect", w.base))
        .bearer_auth("forged")
        .json(
            &serde_json::json!({ "cmd": "CocsOrderQuery", "cust_id": "KPAYSANDBOX01",
            "cust_order_no": "J1", "send_time": "2025-01-01 12:00:00" }),
        )
        .send()
        .await
        .expect("answers");
    assert_eq!(reply.status(), 401);
    let body: serde_json::Value = reply.json().await.expect("json");
    assert_eq!(body["Message"], sandbox::UNAUTHORIZED_MESSAGE);

    let mut acc = account(&w.base, &w.notify_url, quick_policy());
    acc.credentials.insert("api_key".into(), "wrong".into());
    let kpay = KPay::new(acc, Outbound::new("kpay", quick_policy())).expect("complete");
    let r = kpay.create_payment(&create_req(twd(100))).await;
    assert!(
        matches!(r, Err(ProviderError::Refused(ref m)) if m.contains("incorrect")),
        "{r:?}"
    );
}

#[tokio::test]
async fn an_unknown_merchant_is_refused_a_token() {
    let w = world().await;
    let mut acc = account(&w.base, &w.notify_url, quick_policy());
    acc.credentials.insert("merchant_id".into(), "KPAYOTHER".into());
    let kpay = KPay::new(acc, Outbound::new("kpay", quick_policy())).expect("complete");
    let r = kpay.query_payment("J0000000000000000001").await;
    assert!(matches!(r, Err(ProviderError::Refused(_))), "{r:?}");
}

#[tokio::test]
async fn a_refund_whose_answer_times_out_is_made_exactly_once() {
    let mut w = world().await;
    let policy = quick_policy();
    let kpay = w.adapter(policy.clone());
    let amount = twd(300);
    let reference = paid_and_captured(&mut w, &kpay, amount).await;
    w.control(serde_json::json!({ "timeoutNext": 1, "timeoutMs": 1000, "ops": ["refund"] }))
        .await;

    let req = refund_req(&reference, amount, twd(120));
    let direct = kpay.refund(&req).await;
    assert!(matches!(direct, Err(ProviderError::Unavailable(_))), "{direct:?}");
    assert_eq!(
        w.sandbox.refunded(&reference),
        Some(120),
        "the timed-out refund took effect"
    );

    // Through refund_safely the lost answer is recognised from the refunded total.
    w.control(serde_json::json!({ "timeoutNext": 1, "timeoutMs": 1000, "ops": ["refund"] }))
        .await;
    let req = refund_req(&reference, amount, twd(80));
    let outcome = crate::outbound::refund_safely(&kpay, &req, 12_000, &policy).await;
    assert_eq!(outcome, Ok(RefundOutcome::Succeeded(None)));
    assert_eq!(w.sandbox.refunded(&reference), Some(200));
    assert_eq!(kpay.refunded_total(&reference).await, Ok(20_000));
}

#[tokio::test]
async fn a_create_that_failed_with_503_is_retried_on_the_same_order() {
    let w = world().await;
    let kpay = w.adapter(quick_policy());
    w.control(serde_json::json!({ "failNext": 1, "ops": ["create"] })).await;
    let req = create_req(twd(250));
    let first = kpay.create_payment(&req).await.expect("created on the retry");
    let again = kpay.create_payment(&req).await.expect("the same order again");
    assert_eq!(first, again);

    let mut other = req.clone();
    other.amount = twd(260);
    let r = kpay.create_payment(&other).await;
    assert!(
        matches!(r, Err(ProviderError::Refused(ref m)) if m.contains("another amount")),
        "{r:?}"
    );
}

#[tokio::test]
async fn a_create_that_timed_out_is_retried_and_finds_the_same_order() {
    let w = world().await;
    let kpay = w.adapter(quick_policy());
    w.control(serde_json::json!({ "timeoutNext": 1, "timeoutMs": 1000, "ops": ["create"] }))
        .await;
    let req = create_req(twd(250));
    let created = kpay.create_payment(&req).await.expect("created on the retry");
    assert_eq!(created.pay_url, Some(format!("{}/pay/{}", w.base, req.reference)));
}

#[tokio::test]
async fn a_revoked_token_is_replaced_once_and_the_call_goes_through() {
    let w = world().await;
    let kpay = w.adapter(quick_policy());
    let req = create_req(twd(100));
    kpay.create_payment(&req).await.expect("created");
    w.sandbox.revoke_tokens();
    assert_eq!(kpay.query_payment(&req.reference).await, Ok(ProviderStatus::Pending));
}

#[tokio::test]
async fn a_declined_payment_notifies_f_and_cannot_be_settled_again() {
    let mut w = world().await;
    let kpay = w.adapter(quick_policy());
    let req = create_req(twd(100));
    kpay.create_payment(&req).await.expect("created");
    w.simulate(&req.reference, "declined").await;
    let v = kpay
        .verify_notification(&w.next_note().await, chrono::Utc::now())
        .expect("authentic");
    assert_eq!(v.status_code, "F");
    assert!(matches!(v.status, ProviderStatus::Failed { .. }));
    assert!(matches!(
        kpay.query_payment(&req.reference).await,
        Ok(ProviderStatus::Failed { .. })
    ));
    let again = w.simulate(&req.reference, "paid").await;
    assert_eq!(again["error"], "the payment is no longer open");
}

#[tokio::test]
async fn an_expired_payment_notifies_d() {
    let mut w = world().await;
    let kpay = w.adapter(quick_policy());
    let req = create_req(twd(100));
    kpay.create_payment(&req).await.expect("created");
    w.simulate(&req.reference, "expired").await;
    let v = kpay
        .verify_notification(&w.next_note().await, chrono::Utc::now())
        .expect("authentic");
    assert_eq!((v.status_code.as_str(), v.status), ("D", ProviderStatus::Expired));
    assert_eq!(kpay.query_payment(&req.reference).await, Ok(ProviderStatus::Expired));
}

#[tokio::test]
async fn a_full_refund_before_capture_voids_the_authorisation() {
    let mut w = world().await;
    let kpay = w.adapter(quick_policy());
    let amount = twd(400);
    let req = create_req(amount);
    kpay.create_payment(&req).await.expect("created");
    w.simulate(&req.reference, "paid").await;
    w.next_note().await;

    let part = kpay.refund(&refund_req(&req.reference, amount, twd(100))).await;
    assert!(matches!(part, Ok(RefundOutcome::Failed(_))), "{part:?}");
    let full = kpay.refund(&refund_req(&req.reference, amount, amount)).await;
    assert_eq!(full, Ok(RefundOutcome::Succeeded(None)));
    let v = kpay
        .verify_notification(&w.next_note().await, chrono::Utc::now())
        .expect("authentic");
    assert_eq!((v.status_code.as_str(), v.status), ("M", ProviderStatus::Cancelled));
    assert_eq!(kpay.query_payment(&req.reference).await, Ok(ProviderStatus::Cancelled));
    assert_eq!(kpay.refunded_total(&req.reference).await, Ok(40_000));
}

#[tokio::test]
async fn an_open_payment_can_be_cancelled_twice_but_a_captured_one_cannot() {
    let mut w = world().await;
    let kpay = w.adapter(quick_policy());
    let req = create_req(twd(100));
    kpay.create_payment(&req).await.expect("created");
    kpay.cancel(&req.reference).await.expect("cancelled");
    kpay.cancel(&req.reference).await.expect("cancelling again is harmless");
    assert_eq!(kpay.query_payment(&req.reference).await, Ok(ProviderStatus::Cancelled));

    let reference = paid_and_captured(&mut w, &kpay, twd(100)).await;
    let r = kpay.cancel(&reference).await;
    assert!(
        matches!(r, Err(ProviderError::Refused(ref m)) if m.contains("status E")),
        "{r:?}"
    );
}

#[tokio::test]
async fn an_unknown_order_is_not_found() {
    let w = world().await;
    let kpay = w.adapter(quick_policy());
    assert_eq!(
        kpay.query_payment("J0000000000000000009").await,
        Err(ProviderError::NotFound)
    );
}

#[tokio::test]
async fn the_pay_page_shows_the_amount_and_the_merchant() {
    let w = world().await;
    let kpay = w.adapter(quick_policy());
    let req = create_req(twd(1234));
    let url = kpay
        .create_payment(&req)
        .await
        .expect("created")
        .pay_url
        .expect("a url");
    let html = w.http.get(url).send().await.expect("page").text().await.expect("text");
    assert!(html.contains("1234.00 TWD"), "{html}");
    assert!(html.contains("KPAYSANDBOX01"), "{html}");
    assert!(html.contains("id=\"pay\""), "{html}");
}

#[test]
fn only_whole_twd_within_the_limits_is_accepted() {
    let kpay = offline();
    assert!(kpay.supports(Currency::Twd));
    assert!(!kpay.supports(Currency::Hkd));
    assert_eq!(kpay.check_amount(twd(1)), Ok(()));
    assert_eq!(kpay.check_amount(twd(MAX_TWD)), Ok(()));
    let cents = Money::from_minor(10_050, Currency::Twd).expect("positive");
    assert!(kpay.check_amount(cents).expect_err("cents").contains("whole TWD"));
    let hkd = Money::from_minor(10_000, Currency::Hkd).expect("positive");
    assert!(kpay.check_amount(hkd).expect_err("HKD").contains("TWD only"));
    assert!(kpay.check_amount(twd(MAX_TWD + 1)).is_err());
    let half = Money::from_minor(50, Currency::Twd).expect("positive");
    assert!(kpay.check_amount(half).is_err());
}

#[test]
fn an_account_without_an_api_key_is_refused_up_front() {
    let mut acc = account("http://127.0.0.1:9", "http://127.0.0.1:9/n", CallPolicy::default());
    acc.credentials.remove("api_key");
    let r = KPay::new(acc, Outbound::new("kpay", CallPolicy::default()));
    assert!(matches!(r, Err(AccountError::MissingCredential { ref key, .. }) if key == "api_key"));
}

#[test]
fn status_letters_map_to_jinliu_statuses() {
    assert_eq!(map_status("A", None), Some(ProviderStatus::Pending));
    assert_eq!(map_status("B", None), Some(ProviderStatus::Authorized));
    assert_eq!(
        map_status("E", Some("T1".into())),
        Some(ProviderStatus::Succeeded {
            transaction_id: Some("T1".into())
        })
    );
    assert!(matches!(map_status("F", None), Some(ProviderStatus::Failed { .. })));
    assert_eq!(map_status("D", None), Some(ProviderStatus::Expired));
    assert_eq!(map_status("M", None), Some(ProviderStatus::Cancelled));
    assert_eq!(map_status("Z", None), None);
    assert_eq!(map_status("", None), None);
}

#[test]
fn the_debug_output_never_shows_the_api_key() {
    let text = format!("{:?}", offline());
    assert!(!text.contains("kpay-sandbox-api-key"), "{text}");
}

fn offline() -> KPay {
    let acc = account("http://127.0.0.1:9", "http://127.0.0.1:9/n", CallPolicy::default());
    KPay::new(acc, Outbound::new("kpay", CallPolicy::default())).expect("complete")
}

fn apn_field() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        any::<String>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        "[A-Z]".prop_map(serde_json::Value::from),
        Just(serde_json::Value::Null),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn verifying_arbitrary_bytes_never_panics(
        headers in proptest::collection::vec((".{0,20}", ".{0,40}"), 0..4),
        body in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let n = InboundNotification { headers, body };
        let _ = offline().verify_notification(&n, chrono::Utc::now());
    }

    #[test]
    fn verifying_arbitrary_apn_shaped_json_never_panics(
        fields in proptest::collection::vec(apn_field(), 7),
        amount in any::<i64>(),
        status in ".{0,3}",
    ) {
        let names = ["api_id", "trans_id", "order_no", "amount", "status", "nonce", "checksum"];
        let mut body: serde_json::Map<String, serde_json::Value> =
            names.iter().zip(fields).map(|(k, v)| ((*k).to_owned(), v)).collect();
        body.insert("api_id".into(), "KPAYSANDBOX01".into());
        let amount_text = amount.to_string();
        let checksum = sign::checksum("KPAYSANDBOX01", "T", &amount_text, &status, "n");
        let signed = serde_json::json!({
            "api_id": "KPAYSANDBOX01", "trans_id": "T", "order_no": "J1", "amount": amount,
            "status": status, "nonce": "n", "checksum": checksum,
        });
        let kpay = offline();
        for b in [serde_json::Value::Object(body), signed] {
            let n = InboundNotification { headers: Vec::new(), body: serde_json::to_vec(&b).unwrap_or_default() };
            let _ = kpay.verify_notification(&n, chrono::Utc::now());
        }
    }
}

#[tokio::test]
async fn the_public_router_works_nested_under_sandbox_kpay() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let root = format!("http://{}", listener.local_addr().expect("addr"));
    let prefix = format!("{root}/sandbox/kpay");
    let app = Router::new().nest("/sandbox/kpay", sandbox::router(Kit::new("kpay", prefix.clone())));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let mut w = world().await;
    w.base = prefix.clone();
    let kpay = w.adapter(quick_policy());

    let req = create_req(twd(100));
    let created = kpay.create_payment(&req).await.expect("created");
    assert_eq!(created.pay_url, Some(format!("{prefix}/pay/{}", req.reference)));
    let form = [("outcome", "paid")];
    let page = w
        .http
        .post(format!("{prefix}/pay/{}", req.reference))
        .form(&form)
        .send()
        .await
        .expect("pay action")
        .text()
        .await
        .expect("text");
    assert!(page.contains("acknowledged"), "{page}");
    let v = kpay
        .verify_notification(&w.next_note().await, chrono::Utc::now())
        .expect("authentic");
    assert_eq!(v.status, ProviderStatus::Authorized);
}
