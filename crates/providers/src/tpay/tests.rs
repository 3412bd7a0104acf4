//! The TPay adapter against known vectors and against its sandbox over real HTTP on 127.0.0.1.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use jinliu_domain::{Currency, Money, PaymentId, RefundId, provider_reference};
use proptest::prelude::*;
use tokio::sync::mpsc;

use super::*;
use crate::account::AccountError;
use crate::outbound::refund_safely;
use crate::sandbox::Kit;
use crate::{CallPolicy, CreatePayment, InboundNotification, PaymentProvider, ProviderAccount, ProviderStatus};

const VECTOR_REF: &str = "J0ABCDEFGHIJKLMNOPQR";

fn account(base_url: &str, notify_url: &str) -> ProviderAccount {
    ProviderAccount {
        id: "tpay_test".into(),
        provider: "tpay".into(),
        livemode: false,
        base_url: base_url.into(),
        notify_url: notify_url.into(),
        credentials: crate::sandbox_credentials("tpay"),
        policy: CallPolicy::default(),
    }
}

fn quick_policy() -> CallPolicy {
    CallPolicy {
        timeout: Duration::from_millis(300),
        max_attempts: 3,
        backoff_base: Duration::from_millis(1),
        backoff_max: Duration::from_millis(5),
        breaker_failures: 50,
        breaker_cooldown: Duration::from_secs(1),
    }
}

fn adapter_for(acc: ProviderAccount) -> TPay {
    let out = Outbound::new("tpay", acc.policy.clone());
    TPay::new(acc, out).expect("sandbox credentials are complete")
}

fn twd(major: i64) -> Money {
    Money::from_minor(major * 100, Currency::Twd).expect("positive")
}

fn create_req(payment_id: &PaymentId, major: i64) -> CreatePayment {
    let now = chrono::Utc::now();
    CreatePayment {
        payment_id: payment_id.clone(),
        reference: provider_reference(payment_id),
        amount: twd(major),
        method: "tpay_redirect".into(),
        description: "Bubble tea".into(),
        return_url: Some("http://127.0.0.1:1/return".into()),
        created_at: now,
        expires_at: now + chrono::Duration::minutes(30),
    }
}

fn refund_req(reference: &str, paid: i64, major: i64) -> RefundRequest {
    RefundRequest {
        payment_reference: reference.into(),
        method: "tpay_redirect".into(),
        payment_amount: twd(paid),
        refund_id: RefundId::generate(),
        amount: twd(major),
        reason: None,
    }
}

fn note(body: &str) -> InboundNotification {
    InboundNotification {
        headers: vec![("content-type".into(), wire::FORM_CONTENT_TYPE.into())],
        body: body.as_bytes().to_vec(),
    }
}

/// A result notification for the vector reference, signed with the sandbox keys.
fn signed_result(amount: &str, status: &str) -> String {
    let parts = sign::result_parts(VECTOR_REF, amount, "2", status, "TWV000001");
    let verify = sign::check_value("tpay-sandbox-key1", &parts, "tpay-sandbox-key2");
    format!("txid={VECTOR_REF}&amount={amount}&pay_type=2&status={status}&tid=TWV000001&verify={verify}")
}

// ---------------------------------------------------------------------------------------------
// Without a network

#[test]
fn an_account_without_key2_is_refused_up_front() {
    let mut acc = account("http://127.0.0.1:1", "http://127.0.0.1:1/n");
    acc.credentials.remove("key2");
    let err = TPay::new(acc, Outbound::new("tpay", CallPolicy::default())).expect_err("key2 is missing");
    assert!(
        matches!(err, AccountError::MissingCredential { ref key, .. } if key == "key2"),
        "{err:?}"
    );
}

#[test]
fn only_whole_new_taiwan_dollars_are_accepted() {
    let t = adapter_for(account("http://127.0.0.1:1", "http://127.0.0.1:1/n"));
    assert!(t.supports(Currency::Twd));
    assert!(!t.supports(Currency::Hkd));
    assert_eq!(t.check_amount(twd(170)), Ok(()));
    let cents = t
        .check_amount(Money::from_minor(17_050, Currency::Twd).expect("positive"))
        .expect_err("cents");
    assert!(cents.contains("whole TWD only"), "{cents}");
    let hkd = t
        .check_amount(Money::from_minor(100, Currency::Hkd).expect("positive"))
        .expect_err("HKD");
    assert!(hkd.contains("TWD only"), "{hkd}");
}

#[test]
fn the_checkout_form_is_signed_with_the_published_scheme_and_is_deterministic() {
    let t = adapter_for(account(
        "http://tpay.example/",
        "http://jinliu.example/api/payments/notify/tpay/tpay_test",
    ));
    let id = PaymentId::generate();
    let mut req = create_req(&id, 170);
    req.reference = VECTOR_REF.into();
    let form = t.checkout_form(&req).expect("whole TWD");
    assert_eq!(form.action, "http://tpay.example/openpay/pay.php");
    let names: Vec<&str> = form.fields.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "version",
            "mid",
            "txid",
            "amount",
            "iid",
            "verify",
            "return_url",
            "charset",
            "language",
            "mode",
            "select_paymethod",
            "description",
            "notify_url"
        ]
    );
    let field = |k: &str| form.fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(field("amount"), Some("170"));
    assert_eq!(field("verify"), Some("e776c2119c107a8f714f334c884743d7"));
    assert_eq!(
        field("notify_url"),
        Some("http://jinliu.example/api/payments/notify/tpay/tpay_test")
    );
    assert_eq!(t.checkout_form(&req), Some(form));
}

#[test]
fn a_paid_result_verifies_untrusted_with_its_amount_transaction_id_and_ack() {
    let t = adapter_for(account("http://127.0.0.1:1", "http://127.0.0.1:1/n"));
    let body = signed_result("170", "1");
    assert!(body.ends_with("verify=4a9ce2385fe8741458ef8e96c3381d95"), "{body}");
    let v = t.verify_notification(&note(&body), chrono::Utc::now()).expect("valid");
    assert_eq!(v.reference, VECTOR_REF);
    assert_eq!(
        v.status,
        ProviderStatus::Succeeded {
            transaction_id: Some("TWV000001".into())
        }
    );
    assert_eq!(v.status_code, "1");
    assert_eq!(v.amount, Some(twd(170)));
    assert!(!v.trusted);
    assert_eq!(v.ack, "OK");
}

#[test]
fn waiting_and_failed_results_map_to_processing_and_failed() {
    let t = adapter_for(account("http://127.0.0.1:1", "http://127.0.0.1:1/n"));
    let now = chrono::Utc::now();
    let waiting = t
        .verify_notification(&note(&signed_result("170", "3")), now)
        .expect("valid");
    assert_eq!(waiting.status, ProviderStatus::Processing);
    let failed = t
        .verify_notification(&note(&signed_result("170", "2")), now)
        .expect("valid");
    assert!(matches!(failed.status, ProviderStatus::Failed { .. }), "{failed:?}");
}

#[test]
fn a_notification_with_any_single_byte_changed_is_rejected() {
    let t = adapter_for(account("http://127.0.0.1:1", "http://127.0.0.1:1/n"));
    let body = signed_result("170", "1").into_bytes();
    for i in 0..body.len() {
        let mut forged = body.clone();
        forged[i] ^= 0x01;
        let n = InboundNotification {
            headers: Vec::new(),
            body: forged,
        };
        assert!(
            matches!(
                t.verify_notification(&n, chrono::Utc::now()),
                Err(ProviderError::BadNotification(_))
            ),
            "byte {i} changed was accepted"
        );
    }
}

#[test]
fn a_correctly_signed_result_with_a_query_only_status_is_rejected() {
    let t = adapter_for(account("http://127.0.0.1:1", "http://127.0.0.1:1/n"));
    let res = t.verify_notification(&note(&signed_result("170", "5")), chrono::Utc::now());
    assert!(matches!(res, Err(ProviderError::BadNotification(_))), "{res:?}");
}

#[test]
fn a_result_with_a_field_sent_twice_is_rejected() {
    let t = adapter_for(account("http://127.0.0.1:1", "http://127.0.0.1:1/n"));
    // A second `status` after the signed one must not be able to override it.
    let body = format!("{}&status=2", signed_result("170", "1"));
    let res = t.verify_notification(&note(&body), chrono::Utc::now());
    assert!(matches!(res, Err(ProviderError::BadNotification(_))), "{res:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn verifying_arbitrary_headers_and_bodies_never_panics(
        headers in proptest::collection::vec(("[a-z-]{0,12}", ".{0,40}"), 0..4),
        body in proptest::collection::vec(any::<u8>(), 0..300),
        form in "(txid|amount|pay_type|status|tid|verify)=[A-Za-z0-9%&=+]{0,20}(&(txid|amount|pay_type|status|tid|verify)=[A-Za-z0-9%&=+]{0,40}){0,7}",
    ) {
        let t = adapter_for(account("http://127.0.0.1:1", "http://127.0.0.1:1/n"));
        let n = InboundNotification { headers: headers.clone(), body };
        let _ = t.verify_notification(&n, chrono::Utc::now());
        let n = InboundNotification { headers, body: form.into_bytes() };
        let _ = t.verify_notification(&n, chrono::Utc::now());
    }
}

// ---------------------------------------------------------------------------------------------
// Over real HTTP against the sandbox

/// Serves the sandbox on a free port; returns its base URL.
async fn spawn_sandbox() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    let app = sandbox::router(Kit::new("tpay", format!("http://{addr}")));
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

async fn receive(
    State(tx): State<mpsc::UnboundedSender<InboundNotification>>,
    headers: HeaderMap,
    body: Bytes,
) -> &'static str {
    let headers = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    let _ = tx.send(InboundNotification {
        headers,
        body: body.to_vec(),
    });
    "OK"
}

/// A jinliu stand-in that acknowledges every notification and hands it over.
async fn spawn_receiver() -> (String, mpsc::UnboundedReceiver<InboundNotification>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = axum::Router::new().route("/notify", post(receive)).with_state(tx);
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/notify"), rx)
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// Posts the checkout form the way the customer's browser would; returns status and Location.
async fn post_form(form: &CheckoutForm) -> (u16, Option<String>, String) {
    let resp = browser()
        .post(&form.action)
        .form(&form.fields)
        .send()
        .await
        .expect("post form");
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (status, location, resp.text().await.unwrap_or_default())
}

async fn simulate(base: &str, payment_id: &PaymentId, outcome: &str) -> serde_json::Value {
    let resp = reqwest::Client::new()
        .post(format!("{base}/simulate"))
        .json(&serde_json::json!({ "paymentId": payment_id.as_str(), "outcome": outcome }))
        .send()
        .await
        .expect("simulate");
    assert_eq!(resp.status().as_u16(), 200);
    resp.json().await.expect("json")
}

/// A payment opened at the sandbox (form posted), with its adapter and the notification inbox.
async fn opened(
    major: i64,
) -> (
    String,
    TPay,
    PaymentId,
    String,
    mpsc::UnboundedReceiver<InboundNotification>,
) {
    let base = spawn_sandbox().await;
    let (notify_url, rx) = spawn_receiver().await;
    let t = adapter_for(account(&base, &notify_url));
    let id = PaymentId::generate();
    let req = create_req(&id, major);
    let created = t.create_payment(&req).await.expect("create");
    assert_eq!(created.pay_url, None);
    let form = t.checkout_form(&req).expect("form");
    let (status, location, _) = post_form(&form).await;
    assert_eq!(status, 303);
    assert_eq!(location, Some(format!("{base}/pay/{}", req.reference)));
    (base, t, id, req.reference, rx)
}

#[tokio::test]
async fn a_paid_payment_notifies_waiting_then_paid_and_refunds_up_to_its_amount() {
    let (base, t, id, reference, mut rx) = opened(170).await;
    assert_eq!(t.query_payment(&reference).await, Ok(ProviderStatus::Pending));

    let sim = simulate(&base, &id, "paid").await;
    assert_eq!(sim["delivery"]["acknowledged"], true);
    assert_eq!(sim["delivery"]["sent"], 2);
    let now = chrono::Utc::now();
    let first = t
        .verify_notification(&rx.recv().await.expect("waiting"), now)
        .expect("valid");
    assert_eq!(
        (first.status_code.as_str(), first.status),
        ("3", ProviderStatus::Processing)
    );
    let second = t
        .verify_notification(&rx.recv().await.expect("paid"), now)
        .expect("valid");
    assert_eq!(second.status_code, "1");
    assert_eq!(second.reference, reference);
    assert_eq!(second.amount, Some(twd(170)));
    assert!(matches!(
        t.query_payment(&reference).await,
        Ok(ProviderStatus::Succeeded {
            transaction_id: Some(_)
        })
    ));

    let first_refund = refund_req(&reference, 170, 50);
    assert!(matches!(
        t.refund(&first_refund).await,
        Ok(RefundOutcome::Succeeded(Some(_)))
    ));
    assert!(matches!(
        t.refund(&refund_req(&reference, 170, 70)).await,
        Ok(RefundOutcome::Succeeded(Some(_)))
    ));
    let over = t.refund(&refund_req(&reference, 170, 60)).await;
    assert!(
        matches!(over, Ok(RefundOutcome::Failed(ref m)) if m.contains("301")),
        "{over:?}"
    );
    // The same refund number again is answered, not refunded a second time.
    assert!(matches!(
        t.refund(&first_refund).await,
        Ok(RefundOutcome::Succeeded(Some(_)))
    ));
    assert_eq!(t.refunded_total(&reference).await, Ok(12_000));
    assert!(matches!(
        t.refund(&refund_req(&reference, 170, 50)).await,
        Ok(RefundOutcome::Succeeded(_))
    ));
    assert_eq!(t.refunded_total(&reference).await, Ok(17_000));
}

#[tokio::test]
async fn reordered_and_duplicated_notifications_all_verify_and_keep_their_status_codes() {
    let (base, t, id, _reference, mut rx) = opened(170).await;
    let control = reqwest::Client::new()
        .put(format!("{base}/control"))
        .json(&serde_json::json!({ "reorderNotifications": true, "duplicateNotifications": true }))
        .send()
        .await
        .expect("control");
    assert_eq!(control.status().as_u16(), 200);
    let sim = simulate(&base, &id, "paid").await;
    assert_eq!(sim["delivery"]["sent"], 4);
    let mut codes = Vec::new();
    for _ in 0..4 {
        let n = rx.recv().await.expect("notification");
        codes.push(
            t.verify_notification(&n, chrono::Utc::now())
                .expect("valid")
                .status_code,
        );
    }
    assert_eq!(codes, ["1", "1", "3", "3"]);
}

#[tokio::test]
async fn a_refund_number_reused_with_another_amount_is_refused() {
    let (base, t, id, reference, _rx) = opened(170).await;
    simulate(&base, &id, "paid").await;
    let mut req = refund_req(&reference, 170, 20);
    assert!(matches!(t.refund(&req).await, Ok(RefundOutcome::Succeeded(_))));
    req.amount = twd(30);
    let again = t.refund(&req).await;
    assert!(
        matches!(again, Ok(RefundOutcome::Failed(ref m)) if m.contains("304")),
        "{again:?}"
    );
    assert_eq!(t.refunded_total(&reference).await, Ok(2_000));
}

#[tokio::test]
async fn a_declined_payment_notifies_failed_and_an_expired_one_only_shows_in_the_query() {
    let (base, t, id, reference, mut rx) = opened(90).await;
    simulate(&base, &id, "declined").await;
    let v = t
        .verify_notification(&rx.recv().await.expect("failed"), chrono::Utc::now())
        .expect("valid");
    assert_eq!(v.status_code, "2");
    assert!(matches!(
        t.query_payment(&reference).await,
        Ok(ProviderStatus::Failed { .. })
    ));
    let refund = t.refund(&refund_req(&reference, 90, 10)).await;
    assert!(
        matches!(refund, Ok(RefundOutcome::Failed(ref m)) if m.contains("302")),
        "{refund:?}"
    );

    let (base, t, id, reference, mut rx) = opened(90).await;
    let sim = simulate(&base, &id, "expired").await;
    assert_eq!(sim["delivery"]["sent"], 0);
    assert!(rx.try_recv().is_err());
    assert_eq!(t.query_payment(&reference).await, Ok(ProviderStatus::Expired));
}

#[tokio::test]
async fn a_payment_unknown_to_tpay_is_not_found_and_can_be_cancelled_before_its_form_arrives() {
    let base = spawn_sandbox().await;
    let t = adapter_for(account(&base, "http://127.0.0.1:1/n"));
    let id = PaymentId::generate();
    let req = create_req(&id, 100);
    assert_eq!(t.query_payment(&req.reference).await, Err(ProviderError::NotFound));
    assert_eq!(t.cancel(&req.reference).await, Ok(()));
    assert_eq!(t.query_payment(&req.reference).await, Ok(ProviderStatus::Cancelled));
    let (status, _, page) = post_form(&t.checkout_form(&req).expect("form")).await;
    assert_eq!(status, 400);
    assert!(page.contains("203"), "{page}");
}

#[tokio::test]
async fn a_paid_payment_cannot_be_cancelled() {
    let (base, t, id, reference, _rx) = opened(100).await;
    simulate(&base, &id, "paid").await;
    let res = t.cancel(&reference).await;
    assert!(
        matches!(res, Err(ProviderError::Refused(ref m)) if m.contains("303")),
        "{res:?}"
    );
}

#[tokio::test]
async fn the_sandbox_refuses_requests_with_a_wrong_verify() {
    let base = spawn_sandbox().await;
    let mut acc = account(&base, "http://127.0.0.1:1/n");
    acc.credentials.insert("key1".into(), "not-the-key".into());
    let wrong = adapter_for(acc);
    let res = wrong.query_payment("J0ABCDEFGHIJKLMNOPQR").await;
    assert!(
        matches!(res, Err(ProviderError::Refused(ref m)) if m.contains("101")),
        "{res:?}"
    );

    let right = adapter_for(account(&base, "http://127.0.0.1:1/n"));
    let mut form = right
        .checkout_form(&create_req(&PaymentId::generate(), 100))
        .expect("form");
    for (k, v) in &mut form.fields {
        if k == "amount" {
            *v = "1".into();
        }
    }
    let (status, _, page) = post_form(&form).await;
    assert_eq!(status, 400);
    assert!(page.contains("101"), "{page}");
}

#[tokio::test]
async fn a_refund_whose_answer_times_out_is_made_exactly_once() {
    let (base, _, id, reference, _rx) = opened(200).await;
    simulate(&base, &id, "paid").await;
    let (notify_url, _rx2) = spawn_receiver().await;
    let mut acc = account(&base, &notify_url);
    acc.policy = quick_policy();
    let t = adapter_for(acc);
    let control = reqwest::Client::new()
        .put(format!("{base}/control"))
        .json(&serde_json::json!({ "timeoutNext": 1, "timeoutMs": 1000, "ops": ["refund"] }))
        .send()
        .await
        .expect("control");
    assert_eq!(control.status().as_u16(), 200);

    let req = refund_req(&reference, 200, 80);
    let outcome = refund_safely(&t, &req, 0, &quick_policy()).await;
    assert_eq!(outcome, Ok(RefundOutcome::Succeeded(None)));
    assert_eq!(t.refunded_total(&reference).await, Ok(8_000));
}

#[test]
fn the_adapter_debug_output_never_shows_the_keys() {
    let t = adapter_for(account("http://127.0.0.1:1", "http://127.0.0.1:1/n"));
    let text = format!("{t:?}");
    assert!(!text.contains("tpay-sandbox-key"), "{text}");
    let _unused: Arc<dyn PaymentProvider> = Arc::new(t);
}
