//! The ECPay adapter against its sandbox over real HTTP on 127.0.0.1, plus its pure rules.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use chrono::TimeZone as _;
use jinliu_domain::{PaymentId, RefundId, provider_reference};
use proptest::prelude::*;
use tokio::sync::mpsc;

use super::*;
use crate::CallPolicy;
use crate::sandbox::Kit;

fn account(base_url: &str, notify_url: &str, policy: CallPolicy) -> ProviderAccount {
    ProviderAccount {
        id: "ecpay_test".into(),
        provider: "ecpay".into(),
        livemode: false,
        base_url: base_url.into(),
        notify_url: notify_url.into(),
        credentials: crate::sandbox_credentials("ecpay"),
        policy,
    }
}

fn adapter(base_url: &str, notify_url: &str, policy: CallPolicy) -> EcPay {
    let out = Outbound::new("ecpay", policy.clone());
    EcPay::new(account(base_url, notify_url, policy), out).expect("sandbox credentials are complete")
}

fn twd(whole: i64) -> Money {
    Money::from_minor(whole * 100, Currency::Twd).expect("positive")
}

fn request(amount: Money) -> CreatePayment {
    let payment_id = PaymentId::generate();
    CreatePayment {
        reference: provider_reference(&payment_id),
        payment_id,
        amount,
        method: "ecpay_credit".into(),
        description: "Bubble tea × 2".into(),
        return_url: Some("https://shop.example/thanks".into()),
        created_at: chrono::Utc
            .with_ymd_and_hms(2026, 3, 12, 7, 30, 23)
            .single()
            .expect("valid"),
        expires_at: chrono::Utc
            .with_ymd_and_hms(2026, 3, 12, 8, 0, 0)
            .single()
            .expect("valid"),
    }
}

fn refund_request(reference: &str, paid: Money, amount: Money) -> RefundRequest {
    RefundRequest {
        payment_reference: reference.into(),
        method: "ecpay_credit".into(),
        payment_amount: paid,
        refund_id: RefundId::generate(),
        amount,
        reason: None,
    }
}

fn inbound(body: &[u8]) -> InboundNotification {
    InboundNotification {
        headers: vec![("content-type".into(), "application/x-www-form-urlencoded".into())],
        body: body.to_vec(),
    }
}

/// A sandbox on a free port; its base URL.
async fn sandbox() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = sandbox::router(Kit::new("ecpay", format!("http://{addr}")));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    format!("http://{addr}")
}

/// A notify receiver that answers `1|OK` and hands over what arrived; its URL.
async fn receiver() -> (String, mpsc::UnboundedReceiver<InboundNotification>) {
    async fn take(
        State(tx): State<mpsc::UnboundedSender<InboundNotification>>,
        headers: HeaderMap,
        body: axum::body::Bytes,
    ) -> &'static str {
        let headers = headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
            .collect();
        let _ = tx.send(InboundNotification {
            headers,
            body: body.to_vec(),
        });
        ACK
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = axum::Router::new().route("/notify", post(take)).with_state(tx);
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    (format!("http://{addr}/notify"), rx)
}

/// What the customer's browser does with jinliu's auto-posting page.
async fn post_form(form: &CheckoutForm) -> (u16, String) {
    let resp = reqwest::Client::new()
        .post(&form.action)
        .form(&form.fields)
        .send()
        .await
        .expect("sandbox reachable");
    (resp.status().as_u16(), resp.text().await.expect("body"))
}

async fn simulate(base: &str, reference: &str, outcome: &str) -> serde_json::Value {
    reqwest::Client::new()
        .post(format!("{base}/simulate"))
        .json(&serde_json::json!({ "reference": reference, "outcome": outcome }))
        .send()
        .await
        .expect("sandbox reachable")
        .json()
        .await
        .expect("json")
}

#[test]
fn the_checkout_form_is_deterministic_signed_and_in_taipei_time() {
    let ecpay = adapter(
        "https://payment-stage.ecpay.com.tw/",
        "https://jinliu.example/api/payments/notify/ecpay/a",
        CallPolicy::default(),
    );
    let req = request(twd(1200));
    let form = ecpay.checkout_form(&req).expect("form");
    assert_eq!(
        form,
        ecpay.checkout_form(&req).expect("form"),
        "the same request builds the same bytes"
    );
    assert_eq!(form.action, "https://payment-stage.ecpay.com.tw/Cashier/AioCheckOut/V5");
    let get = |k: &str| wire::field(&form.fields, k).map(str::to_owned);
    assert_eq!(get("MerchantID").as_deref(), Some("3002607"));
    assert_eq!(get("MerchantTradeNo"), Some(req.reference.clone()));
    assert_eq!(get("MerchantTradeDate").as_deref(), Some("2026/03/12 15:30:23"));
    assert_eq!(get("TotalAmount").as_deref(), Some("1200"));
    assert_eq!(get("ChoosePayment").as_deref(), Some("Credit"));
    assert_eq!(get("PaymentType").as_deref(), Some("aio"));
    assert_eq!(get("EncryptType").as_deref(), Some("1"));
    assert_eq!(
        get("ReturnURL").as_deref(),
        Some("https://jinliu.example/api/payments/notify/ecpay/a")
    );
    assert_eq!(get("ClientBackURL").as_deref(), Some("https://shop.example/thanks"));
    assert_eq!(form.fields.last().map(|(k, _)| k.as_str()), Some("CheckMacValue"));
    assert!(sign::verify(&form.fields, "pwFHCqoQZGmho4w6", "EkRm7iFT261dpevs"));
}

#[test]
fn long_descriptions_are_cut_to_ecpays_limits_without_splitting_characters() {
    let ecpay = adapter("http://x", "http://y", CallPolicy::default());
    let mut req = request(twd(10));
    req.description = "綠".repeat(300);
    let form = ecpay.checkout_form(&req).expect("form");
    let item = wire::field(&form.fields, "ItemName").expect("ItemName");
    let desc = wire::field(&form.fields, "TradeDesc").expect("TradeDesc");
    assert_eq!(item.len(), 399);
    assert_eq!(desc.len(), 198);
}

#[test]
fn only_whole_positive_twd_is_accepted() {
    let ecpay = adapter("http://x", "http://y", CallPolicy::default());
    assert!(ecpay.supports(Currency::Twd));
    assert!(!ecpay.supports(Currency::Hkd));
    assert!(ecpay.check_amount(twd(1)).is_ok());
    let cents = Money::from_minor(10_050, Currency::Twd).expect("positive");
    assert!(ecpay.check_amount(cents).expect_err("cents").contains("whole TWD"));
    let hkd = Money::from_minor(10_000, Currency::Hkd).expect("positive");
    assert!(ecpay.check_amount(hkd).expect_err("hkd").contains("TWD only"));
}

#[test]
fn only_card_payments_are_refundable_through_the_api() {
    let ecpay = adapter("http://x", "http://y", CallPolicy::default());
    assert!(ecpay.can_refund("ecpay_credit"));
    assert!(!ecpay.can_refund("ecpay_atm"));
    assert!(!ecpay.refund_is_idempotent());
}

#[test]
fn missing_credentials_are_refused_up_front() {
    let mut acc = account("http://x", "http://y", CallPolicy::default());
    acc.credentials.remove("hash_iv");
    let err = EcPay::new(acc, Outbound::new("ecpay", CallPolicy::default())).expect_err("missing");
    assert!(matches!(err, AccountError::MissingCredential { ref key, .. } if key == "hash_iv"));
}

#[test]
fn refunds_are_planned_from_the_card_state() {
    let state = |status: &str, refunded| CardState {
        status: status.into(),
        amount: 1000,
        refunded,
    };
    assert_eq!(
        plan_refund(&state(card_status::SETTLED, 0), 1000),
        Ok(vec![Action::Refund])
    );
    assert_eq!(
        plan_refund(&state(card_status::SETTLED, 300), 200),
        Ok(vec![Action::Refund])
    );
    assert_eq!(
        plan_refund(&state(card_status::SETTLING, 0), 1000),
        Ok(vec![Action::CancelSettlement, Action::Abandon])
    );
    assert_eq!(
        plan_refund(&state(card_status::SETTLING, 0), 400),
        Ok(vec![Action::Refund])
    );
    assert_eq!(
        plan_refund(&state(card_status::AUTHORISED, 0), 1000),
        Ok(vec![Action::Abandon])
    );
    assert!(plan_refund(&state(card_status::AUTHORISED, 0), 400).is_err());
    assert!(plan_refund(&state(card_status::ABANDONED, 1000), 1).is_err());
}

fn signed_notification(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut fields: wire::Fields = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    sign::sign(&mut fields, "pwFHCqoQZGmho4w6", "EkRm7iFT261dpevs");
    wire::encode_fields(&fields).into_bytes()
}

const PAID: &[(&str, &str)] = &[
    ("MerchantID", "3002607"),
    ("MerchantTradeNo", "J0ABCDEFGHIJKLMNOPQR"),
    ("RtnCode", "1"),
    ("RtnMsg", "交易成功"),
    ("TradeNo", "2603121530230001"),
    ("TradeAmt", "1200"),
    ("PaymentType", "Credit_CreditCard"),
    ("SimulatePaid", "0"),
];

#[test]
fn a_paid_notification_verifies_with_the_exact_ack() {
    let ecpay = adapter("http://x", "http://y", CallPolicy::default());
    let v = ecpay
        .verify_notification(&inbound(&signed_notification(PAID)), chrono::Utc::now())
        .expect("verifies");
    assert_eq!(v.reference, "J0ABCDEFGHIJKLMNOPQR");
    assert_eq!(
        v.status,
        ProviderStatus::Succeeded {
            transaction_id: Some("2603121530230001".into())
        }
    );
    assert_eq!(v.status_code, "1");
    assert_eq!(v.amount, Some(twd(1200)));
    assert!(v.trusted);
    assert_eq!(v.ack, "1|OK");
}

#[test]
fn a_notification_with_one_byte_changed_is_rejected() {
    let ecpay = adapter("http://x", "http://y", CallPolicy::default());
    let body = signed_notification(PAID);
    let text = String::from_utf8(body).expect("utf8");
    let forged = text.replace("TradeAmt=1200", "TradeAmt=1201");
    assert_ne!(forged, text);
    let err = ecpay.verify_notification(&inbound(forged.as_bytes()), chrono::Utc::now());
    assert!(matches!(err, Err(ProviderError::BadNotification(_))), "{err:?}");
}

#[test]
fn a_non_1_rtncode_is_a_failure_and_another_merchants_notification_is_rejected() {
    let ecpay = adapter("http://x", "http://y", CallPolicy::default());
    let mut declined = PAID.to_vec();
    declined[2] = ("RtnCode", "10100058");
    let v = ecpay
        .verify_notification(&inbound(&signed_notification(&declined)), chrono::Utc::now())
        .expect("verifies");
    assert!(matches!(v.status, ProviderStatus::Failed { .. }));
    assert_eq!(v.status_code, "10100058");
    let mut other = PAID.to_vec();
    other[0] = ("MerchantID", "2000132");
    assert!(
        ecpay
            .verify_notification(&inbound(&signed_notification(&other)), chrono::Utc::now())
            .is_err()
    );
}

#[test]
fn a_simulated_payment_never_pays_a_live_account() {
    let mut acc = account("http://x", "http://y", CallPolicy::default());
    acc.livemode = true;
    let ecpay = EcPay::new(acc, Outbound::new("ecpay", CallPolicy::default())).expect("valid");
    let mut simulated = PAID.to_vec();
    simulated[7] = ("SimulatePaid", "1");
    assert!(
        ecpay
            .verify_notification(&inbound(&signed_notification(&simulated)), chrono::Utc::now())
            .is_err()
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn verify_notification_never_panics_on_arbitrary_input(
        headers in proptest::collection::vec(("[a-z-]{0,12}", ".{0,24}"), 0..4),
        body in proptest::collection::vec(any::<u8>(), 0..512),
        form in proptest::collection::vec(("[A-Za-z]{0,12}", ".{0,16}"), 0..10),
    ) {
        let ecpay = adapter("http://x", "http://y", CallPolicy::default());
        let n = InboundNotification { headers, body };
        let _ = ecpay.verify_notification(&n, chrono::Utc::now());
        // Well-formed forms with arbitrary fields, signed or not, must not panic either.
        let mut fields: wire::Fields = form;
        let _ = ecpay.verify_notification(&inbound(wire::encode_fields(&fields).as_bytes()), chrono::Utc::now());
        sign::sign(&mut fields, "pwFHCqoQZGmho4w6", "EkRm7iFT261dpevs");
        let _ = ecpay.verify_notification(&inbound(wire::encode_fields(&fields).as_bytes()), chrono::Utc::now());
    }
}

#[tokio::test]
async fn pay_then_two_partial_refunds_and_an_over_refund_round_trip_over_http() {
    let base = sandbox().await;
    let (notify_url, mut inbox) = receiver().await;
    let ecpay = adapter(&base, &notify_url, CallPolicy::default());
    let req = request(twd(1000));

    let created = ecpay.create_payment(&req).await.expect("created");
    assert_eq!(created.pay_url, None);
    let form = ecpay.checkout_form(&req).expect("form");
    let (status, page) = post_form(&form).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("1000.00 TWD"), "{page}");
    assert_eq!(ecpay.query_payment(&req.reference).await, Ok(ProviderStatus::Pending));

    let sim = simulate(&base, &req.reference, "paid").await;
    assert_eq!(sim["delivery"]["acknowledged"], true, "{sim}");
    let note = inbox.recv().await.expect("a notification arrived");
    let v = ecpay.verify_notification(&note, chrono::Utc::now()).expect("verifies");
    assert_eq!(v.reference, req.reference);
    assert_eq!(v.status_code, "1");
    assert_eq!(v.amount, Some(twd(1000)));
    let ProviderStatus::Succeeded { transaction_id } = v.status else {
        panic!("not paid: {:?}", v.status)
    };
    assert!(transaction_id.is_some());
    assert_eq!(
        ecpay.query_payment(&req.reference).await,
        Ok(ProviderStatus::Succeeded { transaction_id })
    );

    let first = ecpay
        .refund(&refund_request(&req.reference, req.amount, twd(300)))
        .await;
    assert!(matches!(first, Ok(RefundOutcome::Succeeded(_))), "{first:?}");
    let second = ecpay
        .refund(&refund_request(&req.reference, req.amount, twd(500)))
        .await;
    assert!(matches!(second, Ok(RefundOutcome::Succeeded(_))), "{second:?}");
    let over = ecpay
        .refund(&refund_request(&req.reference, req.amount, twd(201)))
        .await;
    assert!(
        matches!(over, Ok(RefundOutcome::Failed(ref m)) if m.contains("exceeds")),
        "{over:?}"
    );
    assert_eq!(ecpay.refunded_total(&req.reference).await, Ok(80_000));
    let rest = ecpay
        .refund(&refund_request(&req.reference, req.amount, twd(200)))
        .await;
    assert!(matches!(rest, Ok(RefundOutcome::Succeeded(_))), "{rest:?}");
    assert_eq!(ecpay.refunded_total(&req.reference).await, Ok(100_000));
    assert!(matches!(
        ecpay.cancel(&req.reference).await,
        Err(ProviderError::Refused(_))
    ));
}

#[tokio::test]
async fn a_full_refund_before_the_nightly_batch_cancels_the_settlement_and_abandons_the_authorisation() {
    let base = sandbox().await;
    let (notify_url, mut inbox) = receiver().await;
    let ecpay = adapter(&base, &notify_url, CallPolicy::default());
    let req = request(twd(700));
    post_form(&ecpay.checkout_form(&req).expect("form")).await;
    simulate(&base, &req.reference, "paid").await;
    inbox.recv().await.expect("notified");

    let full = ecpay
        .refund(&refund_request(&req.reference, req.amount, twd(700)))
        .await;
    assert!(matches!(full, Ok(RefundOutcome::Succeeded(_))), "{full:?}");
    assert_eq!(ecpay.refunded_total(&req.reference).await, Ok(70_000));
    // Paid a moment ago, so still before the 20:30 batch: E then N, not R.
    let info = ecpay.trade_info(&req.reference).await.expect("trade");
    let state = ecpay.card_state(&info).await.expect("card");
    assert_eq!(state.status, card_status::ABANDONED);
    let again = ecpay.refund(&refund_request(&req.reference, req.amount, twd(1))).await;
    assert!(matches!(again, Ok(RefundOutcome::Failed(_))), "{again:?}");
}

#[tokio::test]
async fn a_decline_notifies_a_failure_and_an_expiry_is_only_seen_by_querying() {
    let base = sandbox().await;
    let (notify_url, mut inbox) = receiver().await;
    let ecpay = adapter(&base, &notify_url, CallPolicy::default());

    let declined = request(twd(50));
    post_form(&ecpay.checkout_form(&declined).expect("form")).await;
    let sim = simulate(&base, &declined.reference, "declined").await;
    assert_eq!(sim["delivery"]["acknowledged"], true, "{sim}");
    let v = ecpay
        .verify_notification(&inbox.recv().await.expect("notified"), chrono::Utc::now())
        .expect("verifies");
    assert!(matches!(v.status, ProviderStatus::Failed { .. }), "{v:?}");
    assert_eq!(
        simulate(&base, &declined.reference, "paid").await["error"],
        "the payment is no longer open"
    );

    let expired = request(twd(50));
    post_form(&ecpay.checkout_form(&expired).expect("form")).await;
    let sim = simulate(&base, &expired.reference, "expired").await;
    assert_eq!(sim["delivery"]["sent"], 0, "{sim}");
    assert_eq!(
        ecpay.query_payment(&expired.reference).await,
        Ok(ProviderStatus::Expired)
    );
    assert_eq!(ecpay.cancel(&expired.reference).await, Ok(()));
    assert_eq!(
        ecpay.query_payment("J0000000000000000000").await,
        Err(ProviderError::NotFound)
    );
}

#[tokio::test]
async fn the_sandbox_refuses_wrong_signatures_and_unknown_merchants() {
    let base = sandbox().await;
    let ecpay = adapter(&base, "http://127.0.0.1:9/notify", CallPolicy::default());
    let req = request(twd(100));
    let mut form = ecpay.checkout_form(&req).expect("form");
    for (k, v) in form.fields.iter_mut() {
        if k == "TotalAmount" {
            *v = "99".into();
        }
    }
    let (status, page) = post_form(&form).await;
    assert_eq!(status, 400);
    assert!(page.contains("CheckMacValue Error"), "{page}");

    let mut acc = account(&base, "http://127.0.0.1:9/notify", CallPolicy::default());
    acc.credentials.insert("hash_key".into(), "wrongwrongwrong1".into());
    let forger = EcPay::new(acc, Outbound::new("ecpay", CallPolicy::default())).expect("valid");
    let err = forger.query_payment(&req.reference).await;
    assert!(
        matches!(err, Err(ProviderError::Refused(ref m)) if m.contains("CheckMacValue")),
        "{err:?}"
    );

    let mut acc = account(&base, "http://127.0.0.1:9/notify", CallPolicy::default());
    acc.credentials.insert("merchant_id".into(), "9999999".into());
    let stranger = EcPay::new(acc, Outbound::new("ecpay", CallPolicy::default())).expect("valid");
    assert!(matches!(
        stranger.query_payment(&req.reference).await,
        Err(ProviderError::Refused(_))
    ));
}

#[tokio::test]
async fn the_same_form_may_be_posted_again_but_a_used_trade_number_may_not() {
    let base = sandbox().await;
    let ecpay = adapter(&base, "http://127.0.0.1:9/notify", CallPolicy::default());
    let req = request(twd(100));
    let form = ecpay.checkout_form(&req).expect("form");
    assert_eq!(post_form(&form).await.0, 200);
    assert_eq!(post_form(&form).await.0, 200, "the customer reopened the page");
    let mut other = req.clone();
    other.amount = twd(101);
    let (status, page) = post_form(&ecpay.checkout_form(&other).expect("form")).await;
    assert_eq!(status, 400);
    assert!(page.contains("already used"), "{page}");
}

#[tokio::test]
async fn the_sandbox_refuses_a_query_timestamp_older_than_three_minutes() {
    let base = sandbox().await;
    let mut fields = wire::QueryTradeInfo {
        merchant_id: "3002607".into(),
        merchant_trade_no: "J0000000000000000000".into(),
        timestamp: chrono::Utc::now().timestamp() - 181,
    }
    .fields();
    sign::sign(&mut fields, "pwFHCqoQZGmho4w6", "EkRm7iFT261dpevs");
    let resp = reqwest::Client::new()
        .post(format!("{base}/Cashier/QueryTradeInfo/V5"))
        .form(&fields)
        .send()
        .await
        .expect("sandbox reachable");
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.text().await.expect("body"), "TimeStamp Error");
}

#[tokio::test]
async fn a_refund_whose_answer_times_out_is_made_exactly_once() {
    let base = sandbox().await;
    let (notify_url, mut inbox) = receiver().await;
    let policy = CallPolicy {
        timeout: Duration::from_millis(300),
        max_attempts: 3,
        backoff_base: Duration::from_millis(1),
        backoff_max: Duration::from_millis(5),
        ..CallPolicy::default()
    };
    let ecpay = adapter(&base, &notify_url, policy.clone());
    let req = request(twd(1000));
    post_form(&ecpay.checkout_form(&req).expect("form")).await;
    simulate(&base, &req.reference, "paid").await;
    inbox.recv().await.expect("notified");

    let control = reqwest::Client::new()
        .put(format!("{base}/control"))
        .json(&serde_json::json!({ "timeoutNext": 1, "timeoutMs": 1000, "ops": ["refund"] }))
        .send()
        .await
        .expect("control");
    assert_eq!(control.status(), 200);

    let refund = refund_request(&req.reference, req.amount, twd(400));
    let outcome = crate::outbound::refund_safely(&ecpay, &refund, 0, &policy).await;
    assert!(matches!(outcome, Ok(RefundOutcome::Succeeded(_))), "{outcome:?}");
    assert_eq!(
        ecpay.refunded_total(&req.reference).await,
        Ok(40_000),
        "refunded once, not twice"
    );
    let arc: Arc<dyn PaymentProvider> = Arc::new(ecpay);
    assert_eq!(arc.id(), "ecpay");
}
