//! Merchant webhooks end to end against a local receiver on 127.0.0.1:0: signatures checked by an
//! independent implementation (Python's `standardwebhooks` package, run as a subprocess), the
//! retry schedule under a controllable clock, 410, rotation, resend, the SSRF guard, two nodes on
//! one PostgreSQL, bad input and another merchant's ids.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use axum::http::{HeaderMap, StatusCode};
use chrono::{Duration, Utc};
use jinliu_domain::{ApiKeyKind, Merchant, MerchantId};
use jinliu_server::state::ManualClock;
use jinliu_server::webhooks;
use jinliu_testkit::Engine;
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::{TestApp, spawn_app_on};

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    headers: HashMap<String, String>,
    body: String,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }
}

/// A scripted answer: status and extra headers.
type Scripted = (u16, Vec<(&'static str, String)>);

#[derive(Default)]
struct ReceiverState {
    got: Mutex<Vec<Received>>,
    /// Answers to give, in order; then `fallback`.
    script: Mutex<VecDeque<Scripted>>,
    fallback: Mutex<u16>,
    arrived: Notify,
}

/// A merchant's webhook receiver that records every request and answers as scripted.
struct Receiver {
    url: String,
    state: Arc<ReceiverState>,
}

impl Receiver {
    async fn start(status: u16) -> Receiver {
        let state = Arc::new(ReceiverState::default());
        *state.fallback.lock().unwrap_or_else(|p| p.into_inner()) = status;
        let s = state.clone();
        let app = axum::Router::new().fallback(move |headers: HeaderMap, body: String| {
            let s = s.clone();
            async move {
                let headers = headers
                    .iter()
                    .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                    .collect();
                s.got
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(Received { headers, body });
                s.arrived.notify_waiters();
                let (status, extra) = s
                    .script
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .pop_front()
                    .unwrap_or_else(|| (*s.fallback.lock().unwrap_or_else(|p| p.into_inner()), vec![]));
                let mut resp = axum::response::Response::new(axum::body::Body::from(format!("answer {status}")));
                *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
                for (k, v) in extra {
                    if let Ok(v) = v.parse() {
                        resp.headers_mut().insert(k, v);
                    }
                }
                resp
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            url: format!("http://{addr}/hook"),
            state,
        }
    }

    fn port(&self) -> u16 {
        self.url
            .rsplit(':')
            .next()
            .and_then(|p| p.trim_end_matches("/hook").parse().ok())
            .unwrap_or(0)
    }

    fn answer_next(&self, status: u16, headers: Vec<(&'static str, String)>) {
        self.state
            .script
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back((status, headers));
    }

    fn got(&self) -> Vec<Received> {
        self.state.got.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits (at most 20 s) until `n` requests have arrived.
    async fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + StdDuration::from_secs(20);
        loop {
            let notified = self.state.arrived.notified();
            let got = self.got();
            if got.len() >= n {
                return got;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!("the receiver got {} requests, not {n}, within 20 s", self.got().len());
            }
        }
    }
}

/// Verifies a delivery with Python's `standardwebhooks` package (the Standard Webhooks reference
/// library): `Ok` when it accepts the headers and body for `secret`.
fn verify_with_standardwebhooks(secret: &str, r: &Received, only_signature: Option<&str>) -> Result<(), String> {
    const SCRIPT: &str = r#"
import json, sys
try:
    from standardwebhooks import Webhook
except ImportError:
    print("MISSING standardwebhooks: python3 -m pip install standardwebhooks (.ci/run does)")
    sys.exit(3)
req = json.load(sys.stdin)
try:
    Webhook(req["secret"]).verify(req["body"], req["headers"])
    print("ok")
except Exception as e:
    print("refused: %s" % e)
    sys.exit(1)
"#;
    let headers = json!({
        "webhook-id": r.header("webhook-id"),
        "webhook-timestamp": r.header("webhook-timestamp"),
        "webhook-signature": only_signature.unwrap_or(r.header("webhook-signature")),
    });
    let input = json!({ "secret": secret, "headers": headers, "body": r.body }).to_string();
    let mut child = std::process::Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("python3 is needed for this test: {e}"));
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        stdin
            .write_all(input.as_bytes())
            .unwrap_or_else(|e| panic!("python stdin: {e}"));
    }
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("python: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_ne!(out.status.code(), Some(3), "{text}");
    if out.status.success() { Ok(()) } else { Err(text) }
}

/// A server with a controllable clock standing at the real time (the Python verifier checks the
/// timestamp against its own clock), the webhook worker stepped by the test.
async fn app_with_clock(engine: Engine) -> (TestApp, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    (spawn_app_on(engine, &[], Some(clock.clone())).await, clock)
}

async fn endpoint(app: &TestApp, url: &str, events: Option<Vec<&str>>) -> (String, String) {
    let mut body = json!({ "url": url, "description": "test receiver" });
    if let Some(e) = events {
        body["events"] = json!(e);
    }
    let a = app.post("/api/webhook-endpoints", body).await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    let secret = a.data()["secret"].as_str().unwrap_or_default().to_owned();
    assert!(secret.starts_with("whsec_"), "{:?}", a.body);
    (a.id(), secret)
}

async fn step(app: &TestApp) -> webhooks::Pass {
    webhooks::run_once(&app.state)
        .await
        .unwrap_or_else(|e| panic!("webhook pass: {e}"))
}

async fn message(app: &TestApp, id: &str) -> Value {
    let a = app.get(&format!("/api/webhook-messages/{id}")).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    a.data().clone()
}

fn at(v: &Value) -> chrono::DateTime<Utc> {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a time: {v}")))
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|e| panic!("{v}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_sandbox_payment_sends_a_signed_payment_completed_that_standardwebhooks_verifies() {
    // The real worker, woken by its own short tick, as on a running server.
    let app = spawn_app_on(
        Engine::Sqlite,
        &[("JINLIU_WEBHOOK_WORKER", "true"), ("JINLIU_WEBHOOK_INTERVAL_MS", "50")],
        None,
    )
    .await;
    let receiver = Receiver::start(200).await;
    let (ep, secret) = endpoint(&app, &receiver.url, Some(vec!["payment.completed"])).await;

    let paid = app.paid("100", "HKD").await;
    let got = receiver.wait_for(1).await;
    let r = &got[0];
    let body: Value = serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.body));
    assert_eq!(body["type"], "payment.completed");
    assert_eq!(body["data"]["id"], paid.id().as_str(), "{body}");
    assert_eq!(body["livemode"], false);
    assert!(body["id"].as_str().unwrap_or("").starts_with("evt_"));
    let stored = app.store.events_for_object(&paid.id()).await.unwrap_or_default();
    let event = stored
        .iter()
        .find(|e| e.event_type == "payment.completed")
        .unwrap_or_else(|| panic!("no payment.completed event"));
    assert_eq!(r.body, event.payload, "the body is the outbox payload, byte for byte");
    assert!(r.header("webhook-id").starts_with("msg_"));
    assert!(r.header("webhook-signature").starts_with("v1,"));
    assert_eq!(r.header("content-type"), "application/json");
    assert!(
        r.header("user-agent").starts_with("jinliu-webhooks/"),
        "{:?}",
        r.headers
    );
    let ts: i64 = r.header("webhook-timestamp").parse().unwrap_or(0);
    assert!((Utc::now().timestamp() - ts).abs() < 60);

    verify_with_standardwebhooks(&secret, r, None).unwrap_or_else(|e| panic!("standardwebhooks refused: {e}"));
    let mut tampered = r.clone();
    tampered.body = r.body.replace("payment.completed", "payment.completeD");
    assert!(
        verify_with_standardwebhooks(&secret, &tampered, None).is_err(),
        "the verifier must refuse a changed body"
    );
    let (_, other_secret) = endpoint(&app, "http://127.0.0.1:9/other", None).await;
    assert!(verify_with_standardwebhooks(&other_secret, r, None).is_err());

    // Only the subscribed type was sent; the attempts log shows the success.
    let list = app.get(&format!("/api/webhook-endpoints/{ep}/messages")).await;
    assert_eq!(list.data()["total"], 1, "{:?}", list.body);
    let m = message(&app, r.header("webhook-id")).await;
    assert_eq!(m["status"], "succeeded");
    assert_eq!(m["attemptLog"][0]["statusCode"], 200);
    assert_eq!(m["attemptLog"][0]["responseBody"], "answer 200");
    assert_eq!(m["payload"]["type"], "payment.completed");
    // The secret is never shown again, and is not stored in plain text.
    let shown = app.get(&format!("/api/webhook-endpoints/{ep}")).await;
    assert!(shown.data().get("secret").is_none());
    assert!(!app.get("/api/webhook-endpoints").await.text.contains(&secret));
    let row = app
        .store
        .webhook_endpoint_unscoped(&jinliu_domain::EndpointId::parse(&ep).unwrap_or_else(|| panic!()))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("endpoint"));
    assert!(!row.secret_sealed.contains(&secret[6..]) && row.secret_sealed.starts_with("v1.k1."));
}

#[tokio::test]
async fn failed_deliveries_follow_the_schedule_under_the_controllable_clock_and_then_stop() {
    let (app, clock) = app_with_clock(Engine::Sqlite).await;
    let receiver = Receiver::start(500).await;
    let (_ep, _) = endpoint(&app, &receiver.url, Some(vec!["order.created"])).await;
    app.order("10.00", "TWD").await;

    let first = step(&app).await;
    // The message was made with the event, so the pass had nothing to relay.
    assert_eq!((first.events, first.messages, first.attempts), (0, 0, 1));
    let id = receiver.got()[0].header("webhook-id").to_owned();
    let schedule = [5, 300, 1_800, 7_200, 18_000, 36_000, 36_000];
    for (i, secs) in schedule.iter().enumerate() {
        let m = message(&app, &id).await;
        assert_eq!(m["status"], "pending");
        assert_eq!(m["attempts"], i as i64 + 1);
        let last = at(&m["attemptLog"][i]["attemptedAt"]);
        let next = at(&m["nextAttemptAt"]);
        let wait = (next - last).num_milliseconds() as f64 / 1000.0;
        let (lo, hi) = (*secs as f64 * 0.8, *secs as f64 * 1.2);
        assert!((lo..=hi).contains(&wait), "wait {i}: {wait} s is not {secs} s ± 20 %");
        // Just before it is due, nothing is sent; at the due time, the next attempt goes.
        clock.set(next - Duration::milliseconds(1));
        assert_eq!(step(&app).await.attempts, 0, "attempt {} went early", i + 2);
        assert_eq!(receiver.got().len(), i + 1);
        clock.set(next);
        assert_eq!(step(&app).await.attempts, 1, "attempt {} is due", i + 2);
        assert_eq!(receiver.got().len(), i + 2);
    }
    let m = message(&app, &id).await;
    assert_eq!(
        (m["status"].as_str(), m["attempts"].as_i64()),
        (Some("failed"), Some(8))
    );
    assert!(m["nextAttemptAt"].is_null());
    clock.advance(Duration::days(2));
    assert_eq!(step(&app).await.attempts, 0, "eight attempts, then it stops");

    let got = receiver.got();
    assert!(
        got.iter().all(|r| r.header("webhook-id") == id),
        "one id on every retry"
    );
    assert!(got.iter().all(|r| r.body == got[0].body), "one body on every retry");
    let stamps: std::collections::HashSet<&str> = got.iter().map(|r| r.header("webhook-timestamp")).collect();
    assert_eq!(stamps.len(), 8, "each attempt is signed at its own time");
}

#[tokio::test]
async fn the_worker_relays_and_sends_events_an_older_version_left_without_messages() {
    let (app, _clock) = app_with_clock(Engine::Sqlite).await;
    let receiver = Receiver::start(200).await;
    endpoint(&app, &receiver.url, Some(vec!["order.created"])).await;
    app.order("10.00", "TWD").await;
    // As an older jinliu left it: the event undispatched, and no message yet.
    let db = app.raw_db().await;
    use sea_orm::ConnectionTrait;
    for sql in [
        "DELETE FROM webhook_messages",
        "UPDATE events SET webhooks_dispatched = false",
    ] {
        db.execute_unprepared(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let pass = step(&app).await;
    assert_eq!((pass.events, pass.messages, pass.attempts), (1, 1, 1));
    let got = receiver.wait_for(1).await;
    let body: Value = serde_json::from_str(&got[0].body).unwrap_or_default();
    assert_eq!(body["type"], "order.created");
    assert_eq!(
        step(&app).await,
        webhooks::Pass::default(),
        "nothing left to relay or send"
    );
}

#[tokio::test]
async fn a_message_whose_endpoint_is_gone_is_given_up_instead_of_claimed_again() {
    use sea_orm::{ConnectionTrait, Statement};
    let (app, clock) = app_with_clock(Engine::Sqlite).await;
    let receiver = Receiver::start(200).await;
    endpoint(&app, &receiver.url, None).await;
    app.order("10.00", "TWD").await;
    // As when a batch read the endpoint just before its deletion committed: the message is
    // left behind without its endpoint.
    let db = app.raw_db().await;
    db.execute_unprepared("DELETE FROM webhook_endpoints")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(step(&app).await.attempts, 1, "claimed once");
    clock.advance(Duration::days(2));
    assert_eq!(step(&app).await.attempts, 0, "not claimed again");
    assert!(receiver.got().is_empty(), "nothing was sent");
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT status FROM webhook_messages",
        ))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("the message"));
    assert_eq!(row.try_get::<String>("", "status").unwrap_or_default(), "failed");
}

#[tokio::test]
async fn retry_after_is_honoured_and_a_success_ends_the_message() {
    let (app, clock) = app_with_clock(Engine::Sqlite).await;
    let receiver = Receiver::start(200).await;
    receiver.answer_next(503, vec![("retry-after", "120".into())]);
    endpoint(&app, &receiver.url, None).await;
    app.order("10.00", "TWD").await;
    step(&app).await;
    let id = receiver.got()[0].header("webhook-id").to_owned();
    let m = message(&app, &id).await;
    let wait = at(&m["nextAttemptAt"]) - at(&m["attemptLog"][0]["attemptedAt"]);
    assert_eq!(
        wait,
        Duration::seconds(120),
        "the receiver asked for 2 minutes, more than 5 s"
    );
    clock.advance(Duration::seconds(119));
    assert_eq!(step(&app).await.attempts, 0);
    clock.advance(Duration::seconds(1));
    assert_eq!(step(&app).await.attempts, 1);
    let m = message(&app, &id).await;
    assert_eq!(
        (m["status"].as_str(), m["attempts"].as_i64()),
        (Some("succeeded"), Some(2))
    );
}

#[tokio::test]
async fn a_410_disables_the_endpoint_and_the_merchant_hears_of_it() {
    let (app, _clock) = app_with_clock(Engine::Sqlite).await;
    let gone = Receiver::start(410).await;
    let watcher = Receiver::start(200).await;
    let (ep, _) = endpoint(&app, &gone.url, Some(vec!["order.created"])).await;
    endpoint(&app, &watcher.url, Some(vec!["webhook_endpoint.disabled"])).await;
    app.order("10.00", "TWD").await;
    step(&app).await;
    let e = app.get(&format!("/api/webhook-endpoints/{ep}")).await;
    assert_eq!(e.data()["status"], "disabled", "{:?}", e.body);
    assert!(e.data()["disabledReason"].as_str().unwrap_or("").contains("410"));
    let id = gone.got()[0].header("webhook-id").to_owned();
    let m = message(&app, &id).await;
    assert_eq!(
        (m["status"].as_str(), m["nextAttemptAt"].is_null()),
        (Some("failed"), true)
    );

    // The disabling is an event in the outbox, with a message for the merchant's other endpoint.
    step(&app).await;
    let told = watcher.wait_for(1).await;
    let body: Value = serde_json::from_str(&told[0].body).unwrap_or_default();
    assert_eq!(body["type"], "webhook_endpoint.disabled");
    assert_eq!(body["data"]["endpointId"], ep.as_str());

    // Nothing more goes to a disabled endpoint; a resend is refused until it is enabled again.
    app.order("11.00", "TWD").await;
    step(&app).await;
    assert_eq!(gone.got().len(), 1);
    let r = app.post(&format!("/api/webhook-messages/{id}/resend"), json!({})).await;
    assert_eq!((r.status, r.code()), (409, "endpoint_disabled"));
    let on = app
        .patch(&format!("/api/webhook-endpoints/{ep}"), json!({ "disabled": false }))
        .await;
    assert_eq!(on.data()["status"], "enabled", "{:?}", on.body);
}

#[tokio::test]
async fn an_endpoint_failing_for_five_days_is_disabled() {
    let (app, clock) = app_with_clock(Engine::Sqlite).await;
    let receiver = Receiver::start(500).await;
    let (ep, _) = endpoint(&app, &receiver.url, Some(vec!["order.created"])).await;
    app.order("10.00", "TWD").await;
    step(&app).await;
    let e = app.get(&format!("/api/webhook-endpoints/{ep}")).await;
    assert!(e.data()["failingSince"].is_string());
    clock.advance(Duration::days(5) - Duration::seconds(1));
    app.order("12.00", "TWD").await;
    step(&app).await;
    let e = app.get(&format!("/api/webhook-endpoints/{ep}")).await;
    assert_eq!(e.data()["status"], "enabled", "not yet five days");
    clock.advance(Duration::seconds(1));
    app.order("13.00", "TWD").await;
    step(&app).await;
    let e = app.get(&format!("/api/webhook-endpoints/{ep}")).await;
    assert_eq!(e.data()["status"], "disabled", "{:?}", e.body);
    assert!(e.data()["disabledReason"].as_str().unwrap_or("").contains("5 days"));
    let events = app.store.events_for_object(&ep).await.unwrap_or_default();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_type, "webhook_endpoint.disabled");
}

#[tokio::test]
async fn rotation_sends_two_signatures_that_both_verify_for_24_hours() {
    let (app, clock) = app_with_clock(Engine::Sqlite).await;
    let receiver = Receiver::start(200).await;
    let (ep, old) = endpoint(&app, &receiver.url, Some(vec!["order.created"])).await;
    let rotated = app
        .post(&format!("/api/webhook-endpoints/{ep}/rotate-secret"), json!({}))
        .await;
    assert_eq!(rotated.status, 200, "{:?}", rotated.body);
    let new = rotated.data()["secret"].as_str().unwrap_or_default().to_owned();
    assert!(new.starts_with("whsec_") && new != old);
    assert!(rotated.data()["previousSecretExpiresAt"].is_string());

    app.order("10.00", "TWD").await;
    step(&app).await;
    let r = &receiver.wait_for(1).await[0];
    let sigs: Vec<&str> = r.header("webhook-signature").split(' ').collect();
    assert_eq!(sigs.len(), 2, "{:?}", r.headers);
    // Each signature on its own verifies with exactly one of the secrets.
    verify_with_standardwebhooks(&new, r, Some(sigs[0])).unwrap_or_else(|e| panic!("new secret: {e}"));
    verify_with_standardwebhooks(&old, r, Some(sigs[1])).unwrap_or_else(|e| panic!("old secret: {e}"));
    assert!(verify_with_standardwebhooks(&old, r, Some(sigs[0])).is_err());
    verify_with_standardwebhooks(&old, r, None).unwrap_or_else(|e| panic!("a receiver still on the old secret: {e}"));

    // After 24 hours only the new secret signs.
    clock.advance(Duration::hours(24));
    app.order("11.00", "TWD").await;
    step(&app).await;
    let later = &receiver.wait_for(2).await[1];
    let sigs: Vec<&str> = later.header("webhook-signature").split(' ').collect();
    assert_eq!(sigs.len(), 1);
    let key = webhooks::sign::secret_key(&new).unwrap_or_default();
    let ts: i64 = later.header("webhook-timestamp").parse().unwrap_or(0);
    assert_eq!(
        sigs[0],
        webhooks::sign::sign(&key, later.header("webhook-id"), ts, later.body.as_bytes())
    );
}

#[tokio::test]
async fn resend_sends_the_same_message_again() {
    let (app, _clock) = app_with_clock(Engine::Sqlite).await;
    let receiver = Receiver::start(200).await;
    let (ep, secret) = endpoint(&app, &receiver.url, Some(vec!["order.created"])).await;
    app.order("10.00", "TWD").await;
    step(&app).await;
    let id = receiver.got()[0].header("webhook-id").to_owned();
    assert_eq!(message(&app, &id).await["status"], "succeeded");
    let r = app.post(&format!("/api/webhook-messages/{id}/resend"), json!({})).await;
    assert_eq!(
        (r.status, r.data()["status"].as_str()),
        (202, Some("pending")),
        "{:?}",
        r.body
    );
    step(&app).await;
    let got = receiver.wait_for(2).await;
    assert_eq!(got[1].header("webhook-id"), id);
    assert_eq!(got[1].body, got[0].body);
    verify_with_standardwebhooks(&secret, &got[1], None).unwrap_or_else(|e| panic!("{e}"));
    let m = message(&app, &id).await;
    assert_eq!(
        (m["status"].as_str(), m["attempts"].as_i64()),
        (Some("succeeded"), Some(2))
    );

    // Recovery: a failed message and an event missed while disabled are both queued again.
    receiver.answer_next(400, vec![]);
    app.order("11.00", "TWD").await;
    step(&app).await;
    app.patch(&format!("/api/webhook-endpoints/{ep}"), json!({ "disabled": true }))
        .await;
    let since = Utc::now() - Duration::minutes(1);
    app.order("12.00", "TWD").await;
    step(&app).await;
    app.patch(&format!("/api/webhook-endpoints/{ep}"), json!({ "disabled": false }))
        .await;
    let before = receiver.got().len();
    let r = app
        .post(
            &format!("/api/webhook-endpoints/{ep}/recover"),
            json!({ "since": since.to_rfc3339() }),
        )
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    // The 400 above failed only its first attempt, so it is still pending and not counted; the
    // missed event makes one new message.
    assert_eq!(r.data()["queued"], 1, "{:?}", r.body);
    step(&app).await;
    let got = receiver.got();
    assert_eq!(got.len(), before + 1);
    let last: Value = serde_json::from_str(&got[got.len() - 1].body).unwrap_or_default();
    assert_eq!(last["type"], "order.created");
}

#[tokio::test]
async fn live_endpoints_on_private_addresses_are_refused_for_ip_literals_and_for_names() {
    let (app, _clock) = app_with_clock(Engine::Sqlite).await;
    let receiver = Receiver::start(200).await;
    let port = receiver.port();
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
            Utc::now(),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .1;
    let as_live = |req: reqwest::RequestBuilder| req.header("authorization", format!("Bearer {live}"));
    let before = app.counts().await;
    for url in [
        format!("https://127.0.0.1:{port}/hook"),
        format!("https://[::1]:{port}/hook"),
        "https://169.254.169.254/latest/meta-data".to_owned(),
        "https://10.0.0.1/hook".to_owned(),
    ] {
        let a = app
            .send(as_live(app.anon.post(format!("{}/api/webhook-endpoints", app.base))).json(&json!({ "url": url })))
            .await;
        assert_eq!((a.status, a.code()), (422, "url_not_allowed"), "{url}: {:?}", a.body);
    }
    let a = app
        .send(
            as_live(app.anon.post(format!("{}/api/webhook-endpoints", app.base))).json(&json!({ "url": receiver.url })),
        )
        .await;
    assert_eq!((a.status, a.code()), (422, "insecure_url"), "live endpoints need https");
    assert_eq!(app.counts().await, before, "nothing written");

    // A name is accepted when saved and refused where the connection is made.
    let a = app
        .send(
            as_live(app.anon.post(format!("{}/api/webhook-endpoints", app.base)))
                .json(&json!({ "url": format!("https://localhost:{port}/hook") })),
        )
        .await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    let order = app
        .send(
            as_live(app.anon.post(format!("{}/api/orders", app.base)))
                .json(&json!({ "description": "Tea", "amount": "10.00", "currency": "TWD" })),
        )
        .await;
    assert_eq!(order.status, 201, "{:?}", order.body);
    assert_eq!(step(&app).await.attempts, 1);
    let list = app
        .send(as_live(app.anon.get(format!(
            "{}/api/webhook-endpoints/{}/messages",
            app.base,
            a.id()
        ))))
        .await;
    let id = list.data()["items"][0]["id"].as_str().unwrap_or_default().to_owned();
    let m = app
        .send(as_live(app.anon.get(format!("{}/api/webhook-messages/{id}", app.base))))
        .await;
    let attempt = &m.data()["attemptLog"][0];
    let error = attempt["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("localhost resolves only to refused addresses") && error.contains("loopback"),
        "{error}"
    );
    assert!(attempt["statusCode"].is_null());

    // An IP literal that got into the table anyway (older rules, a manual edit) is refused at
    // send time too: literals never reach the resolver.
    let scope = jinliu_store::Scope {
        merchant_id: app.state.config.merchant_id.clone(),
        livemode: true,
    };
    let ep = app
        .store
        .create_webhook_endpoint(
            &scope,
            jinliu_store::NewEndpoint {
                id: jinliu_domain::EndpointId::generate(),
                url: format!("http://127.0.0.1:{port}/hook"),
                description: None,
                events: None,
                secret_sealed: "v1.k1.x".into(),
            },
            16,
            app.state.clock.now(),
            None,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    app.send(
        as_live(app.anon.post(format!("{}/api/orders", app.base)))
            .json(&json!({ "description": "Tea", "amount": "10.00", "currency": "TWD" })),
    )
    .await;
    step(&app).await;
    let list = app
        .send(as_live(
            app.anon
                .get(format!("{}/api/webhook-endpoints/{}/messages", app.base, ep.id)),
        ))
        .await;
    let id = list.data()["items"][0]["id"].as_str().unwrap_or_default().to_owned();
    let m = app
        .send(as_live(app.anon.get(format!("{}/api/webhook-messages/{id}", app.base))))
        .await;
    let error = m.data()["attemptLog"][0]["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(error.contains("address 127.0.0.1 is loopback"), "{error}");
    assert!(receiver.got().is_empty(), "nothing reached the receiver");

    // The same receiver is fine for a test-mode endpoint (local development).
    endpoint(&app, &receiver.url, Some(vec!["order.created"])).await;
    app.order("10.00", "TWD").await;
    step(&app).await;
    assert_eq!(receiver.wait_for(1).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_postgresql_send_each_message_once() {
    let (app, clock) = app_with_clock(Engine::Postgres).await;
    let receiver = Receiver::start(200).await;
    endpoint(&app, &receiver.url, Some(vec!["order.created"])).await;
    for i in 0..24 {
        app.order(&format!("{}.00", 10 + i), "TWD").await;
    }
    // Node B: its own store connection pool and name, the same database and clock.
    let config = app.state.config.as_ref().clone();
    let store_b = jinliu_store::Store::connect(&jinliu_store::StoreConfig::new(app.db_url.clone()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut node_b = jinliu_server::build_with_store(config, store_b).unwrap_or_else(|e| panic!("{e}"));
    node_b.clock = clock.clone();
    assert_ne!(node_b.node_id, app.state.node_id);

    // Each order's commit made its message.
    assert_eq!(app.counts().await.webhook_messages, 24);
    let (a, b) = tokio::join!(
        webhooks::deliver::run_once(&app.state),
        webhooks::deliver::run_once(&node_b)
    );
    let sent = a.unwrap_or_else(|e| panic!("{e}")) + b.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sent, 24);
    let got = receiver.wait_for(24).await;
    let ids: std::collections::HashSet<&str> = got.iter().map(|r| r.header("webhook-id")).collect();
    assert_eq!((got.len(), ids.len()), (24, 24), "each message sent exactly once");
    // Nothing left for either node.
    let (a, b) = tokio::join!(webhooks::run_once(&app.state), webhooks::run_once(&node_b));
    assert_eq!(
        a.unwrap_or_else(|e| panic!("{e}")).attempts + b.unwrap_or_else(|e| panic!("{e}")).attempts,
        0
    );
    let counts = app.counts().await;
    assert_eq!((counts.webhook_messages, counts.webhook_attempts), (24, 24));
    assert_eq!(receiver.got().len(), 24);
}

#[tokio::test]
async fn bad_webhook_input_is_refused_and_writes_nothing() {
    let (app, _clock) = app_with_clock(Engine::Sqlite).await;
    let before = app.counts().await;
    let long = "x".repeat(201);
    let cases: Vec<(Value, u16, &str)> = vec![
        (json!({}), 400, "invalid_request"),
        (json!({ "url": "ftp://example.com/x" }), 422, "validation_failed"),
        (json!({ "url": "not a url" }), 422, "validation_failed"),
        (
            json!({ "url": "https://user:pw@example.com/x" }),
            422,
            "validation_failed",
        ),
        (
            json!({ "url": format!("https://example.com/{}", "a".repeat(2100)) }),
            422,
            "validation_failed",
        ),
        (json!({ "url": "https://10.1.2.3/x" }), 422, "url_not_allowed"),
        (
            json!({ "url": "https://example.com/x", "events": ["payment.paid"] }),
            422,
            "invalid_event_type",
        ),
        (
            json!({ "url": "https://example.com/x", "events": [] }),
            422,
            "validation_failed",
        ),
        (
            json!({ "url": "https://example.com/x", "description": long }),
            422,
            "validation_failed",
        ),
        (
            json!({ "url": "https://example.com/x", "secret": "whsec_mine" }),
            400,
            "invalid_request",
        ),
        (json!({ "url": 42 }), 400, "invalid_request"),
    ];
    for (body, status, code) in cases {
        let a = app.post("/api/webhook-endpoints", body.clone()).await;
        assert_eq!((a.status, a.code()), (status, code), "{body}: {:?}", a.body);
    }
    let a = app
        .post_raw("/api/webhook-endpoints", "application/json", "{\"url\":")
        .await;
    assert_eq!((a.status, a.code()), (400, "invalid_json"));
    assert_eq!(app.counts().await, before, "nothing written");

    let (ep, _) = endpoint(&app, "https://example.com/hook", None).await;
    let bad_patch = app
        .patch(
            &format!("/api/webhook-endpoints/{ep}"),
            json!({ "url": "https://192.168.0.1/x" }),
        )
        .await;
    assert_eq!((bad_patch.status, bad_patch.code()), (422, "url_not_allowed"));
    let bad_since = app
        .post(
            &format!("/api/webhook-endpoints/{ep}/recover"),
            json!({ "since": (Utc::now() + Duration::hours(1)).to_rfc3339() }),
        )
        .await;
    assert_eq!((bad_since.status, bad_since.code()), (422, "invalid_since"));
    assert_eq!(
        app.get(&format!("/api/webhook-endpoints/{ep}")).await.data()["url"],
        "https://example.com/hook"
    );
    for i in 1..16 {
        endpoint(&app, &format!("https://example.com/{i}"), None).await;
    }
    let full = app
        .post("/api/webhook-endpoints", json!({ "url": "https://example.com/17" }))
        .await;
    assert_eq!((full.status, full.code()), (422, "too_many_endpoints"));
    assert_eq!(app.counts().await.webhook_endpoints, 16);
    let deleted = app.delete(&format!("/api/webhook-endpoints/{ep}")).await;
    assert_eq!(deleted.status, 200);
    assert_eq!(app.get(&format!("/api/webhook-endpoints/{ep}")).await.status, 404);
}

#[tokio::test]
async fn another_merchants_endpoint_and_messages_answer_404() {
    let (app, _clock) = app_with_clock(Engine::Sqlite).await;
    let receiver = Receiver::start(200).await;
    let (ep, _) = endpoint(&app, &receiver.url, None).await;
    app.order("10.00", "TWD").await;
    step(&app).await;
    let msg = receiver.wait_for(1).await[0].header("webhook-id").to_owned();
    let other = Merchant::new(
        MerchantId::generate(),
        "Other shop",
        jinliu_domain::Currency::Twd,
        "Asia/Taipei",
        Utc::now(),
    );
    app.store
        .create_merchant(&other)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let key = app
        .state
        .auth
        .issue_key(&app.store, &other.id, ApiKeyKind::Secret, false, None, None, Utc::now())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .1;
    let call = |method: reqwest::Method, path: String| {
        app.anon
            .request(method, format!("{}/api{path}", app.base))
            .header("authorization", format!("Bearer {key}"))
            .json(&json!({ "since": (Utc::now() - Duration::hours(1)).to_rfc3339() }))
    };
    for (method, path, code) in [
        (
            reqwest::Method::GET,
            format!("/webhook-endpoints/{ep}"),
            "webhook_endpoint_not_found",
        ),
        (
            reqwest::Method::DELETE,
            format!("/webhook-endpoints/{ep}"),
            "webhook_endpoint_not_found",
        ),
        (
            reqwest::Method::POST,
            format!("/webhook-endpoints/{ep}/rotate-secret"),
            "webhook_endpoint_not_found",
        ),
        (
            reqwest::Method::GET,
            format!("/webhook-endpoints/{ep}/messages"),
            "webhook_endpoint_not_found",
        ),
        (
            reqwest::Method::POST,
            format!("/webhook-endpoints/{ep}/recover"),
            "webhook_endpoint_not_found",
        ),
        (
            reqwest::Method::GET,
            format!("/webhook-messages/{msg}"),
            "webhook_message_not_found",
        ),
        (
            reqwest::Method::POST,
            format!("/webhook-messages/{msg}/resend"),
            "webhook_message_not_found",
        ),
    ] {
        let a = app.send(call(method.clone(), path.clone())).await;
        assert_eq!((a.status, a.code()), (404, code), "{method} {path}: {:?}", a.body);
    }
    let a = app
        .send(
            app.anon
                .patch(format!("{}/api/webhook-endpoints/{ep}", app.base))
                .header("authorization", format!("Bearer {key}"))
                .json(&json!({ "disabled": true })),
        )
        .await;
    assert_eq!(a.status, 404);
    let list = app
        .send(
            app.anon
                .get(format!("{}/api/webhook-endpoints", app.base))
                .header("authorization", format!("Bearer {key}")),
        )
        .await;
    assert_eq!(list.data().as_array().map(Vec::len), Some(0));
    // Still there for its owner, unchanged.
    let mine = app.get(&format!("/api/webhook-endpoints/{ep}")).await;
    assert_eq!((mine.status, mine.data()["status"].as_str()), (200, Some("enabled")));
}

#[tokio::test]
async fn the_example_receiver_verifies_and_prints_a_delivery() {
    use tokio::io::AsyncBufReadExt;
    let (app, _clock) = app_with_clock(Engine::Sqlite).await;
    // The secret exists once the endpoint does; the receiver starts with it, then the endpoint is
    // pointed at the port it got.
    let (ep, secret) = endpoint(&app, "http://127.0.0.1:9/not-yet", Some(vec!["order.created"])).await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/webhook-receiver/receiver.mjs"
    );
    let mut child = tokio::process::Command::new("node")
        .arg(script)
        .env("WEBHOOK_SECRET", &secret)
        .env("PORT", "0")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("node is needed for this test: {e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("stdout"));
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let deadline = tokio::time::Instant::now() + StdDuration::from_secs(20);
    let mut next_line = async || {
        tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("the receiver printed nothing within 20 s"))
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("the receiver exited"))
    };
    let listening = next_line().await;
    let url = listening
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{listening}"))
        .to_owned();
    let p = app
        .patch(&format!("/api/webhook-endpoints/{ep}"), json!({ "url": url }))
        .await;
    assert_eq!(p.status, 200, "{:?}", p.body);
    let order = app.order("10.00", "TWD").await;
    step(&app).await;
    let printed = next_line().await;
    assert!(printed.starts_with("verified order.created evt_"), "{printed}");
    assert!(printed.contains(&order), "{printed}");
    // A forged delivery is refused with 400 and said so.
    let forged = reqwest::Client::new()
        .post(&url)
        .header("webhook-id", "msg_forged")
        .header("webhook-timestamp", Utc::now().timestamp().to_string())
        .header("webhook-signature", "v1,AAAA")
        .body("{}")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(forged.status().as_u16(), 400);
    let printed = next_line().await;
    assert!(printed.starts_with("refused msg_forged"), "{printed}");
}

#[tokio::test]
async fn a_pending_message_of_an_endpoint_disabled_meanwhile_is_given_up_without_sending() {
    let (app, clock) = app_with_clock(Engine::Sqlite).await;
    let receiver = Receiver::start(500).await;
    let (ep, _) = endpoint(&app, &receiver.url, Some(vec!["order.created"])).await;
    app.order("10.00", "TWD").await;
    step(&app).await;
    let id = receiver.got()[0].header("webhook-id").to_owned();
    assert_eq!(message(&app, &id).await["status"], "pending");
    let off = app
        .patch(&format!("/api/webhook-endpoints/{ep}"), json!({ "disabled": true }))
        .await;
    assert_eq!(off.data()["disabledReason"], "disabled by the merchant");
    clock.advance(Duration::minutes(1));
    assert_eq!(step(&app).await.attempts, 1, "claimed once");
    let m = message(&app, &id).await;
    assert_eq!(
        (m["status"].as_str(), m["attempts"].as_i64()),
        (Some("failed"), Some(1))
    );
    assert_eq!(receiver.got().len(), 1, "nothing sent to a disabled endpoint");
    clock.advance(Duration::hours(1));
    assert_eq!(step(&app).await.attempts, 0, "and it is not claimed again");
}

#[tokio::test]
async fn a_retried_endpoint_creation_makes_one_endpoint_and_its_replay_holds_no_secret() {
    let app = crate::spawn_app().await;
    let body = json!({ "url": "http://127.0.0.1:9/hook" });
    let first = app
        .post_with_key("/api/webhook-endpoints", "ep-retry-1", body.clone())
        .await;
    let again = app.post_with_key("/api/webhook-endpoints", "ep-retry-1", body).await;
    assert_eq!((first.status, again.status), (201, 201), "{:?}", again.body);
    assert!(first.data()["secret"].as_str().is_some_and(|s| s.starts_with("whsec_")));
    assert!(again.replayed && again.id() == first.id(), "{:?}", again.body);
    assert!(
        again.data().get("secret").is_none_or(|s| s.is_null()),
        "{:?}",
        again.body
    );
    assert_eq!(
        app.get("/api/webhook-endpoints").await.data().as_array().map(Vec::len),
        Some(1)
    );
}
