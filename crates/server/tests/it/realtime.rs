//! Live payment status: the SSE stream, seed 004's Socket.IO client (the real npm
//! `socket.io-client`, run by node) and two nodes sharing PostgreSQL and Redis.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

use crate::{Answer, TestApp, spawn_app, spawn_node};

/// How long any single wait in these tests may take before it fails.
const DEADLINE: Duration = Duration::from_secs(15);

/// One parsed Server-Sent Event.
#[derive(Debug)]
struct SseEvent {
    event: String,
    id: String,
    data: Value,
}

/// A client reading an SSE response as it arrives.
struct Sse {
    resp: reqwest::Response,
    buf: String,
}

impl Sse {
    async fn open(app: &TestApp, payment: &Answer, last_event_id: Option<i64>) -> Sse {
        let secret = payment.data()["clientSecret"].as_str().unwrap_or_default();
        let mut req = app.anon.get(format!(
            "{}/api/payments/{}/events?clientSecret={secret}",
            app.base,
            payment.id()
        ));
        if let Some(v) = last_event_id {
            req = req.header("last-event-id", v.to_string());
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("sse: {e}"));
        assert_eq!(resp.status().as_u16(), 200);
        assert_eq!(
            resp.headers().get("content-type").and_then(|v| v.to_str().ok()),
            Some("text/event-stream")
        );
        Sse {
            resp,
            buf: String::new(),
        }
    }

    /// The next event with data; `None` when the server ended the stream.
    async fn next(&mut self) -> Option<SseEvent> {
        tokio::time::timeout(DEADLINE, self.next_inner())
            .await
            .unwrap_or_else(|_| panic!("no SSE event within {DEADLINE:?}; so far: {:?}", self.buf))
    }

    async fn next_inner(&mut self) -> Option<SseEvent> {
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut event, mut id, mut data) = (String::new(), String::new(), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim());
                    }
                }
                if !data.is_empty() {
                    let data = serde_json::from_str(&data).unwrap_or_else(|e| panic!("data {data}: {e}"));
                    return Some(SseEvent { event, id, data });
                }
            }
            match self.resp.chunk().await.unwrap_or_else(|e| panic!("sse read: {e}")) {
                Some(bytes) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
                None => return None,
            }
        }
    }
}

/// The exact fields of a `paymentUpdate`.
fn assert_update_shape(data: &Value) {
    let mut keys: Vec<&str> = data
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "amount",
            "currency",
            "orderId",
            "paymentId",
            "status",
            "updatedAt",
            "version"
        ],
        "{data}"
    );
}

async fn pending_payment(app: &TestApp) -> Answer {
    let order = app.order("68.00", "HKD").await;
    app.payment(&order, "68.00", "HKD").await
}

/// Reads events until one has `status`, checking every event on the way; returns them all.
async fn until_status(sse: &mut Sse, status: &str) -> Vec<SseEvent> {
    let mut seen = Vec::new();
    loop {
        let Some(e) = sse.next().await else {
            panic!("the stream ended before {status}: {seen:?}")
        };
        assert_eq!(e.event, "paymentUpdate");
        assert_update_shape(&e.data);
        assert_eq!(e.id, e.data["version"].to_string(), "id: is the version");
        let done = e.data["status"] == status;
        seen.push(e);
        if done {
            return seen;
        }
    }
}

#[tokio::test]
async fn an_sse_watcher_with_the_client_secret_sees_a_sandbox_payment_complete_and_the_stream_ends() {
    let app = spawn_app().await;
    let p = pending_payment(&app).await;
    let mut sse = Sse::open(&app, &p, None).await;
    let first = sse
        .next()
        .await
        .unwrap_or_else(|| panic!("the current state comes first"));
    assert_eq!(first.data["status"], "pending");
    assert_eq!(first.data["paymentId"], p.id().as_str());
    assert_eq!(first.data["currency"], "HKD");
    assert_eq!(first.data["amount"].as_f64(), Some(68.0));
    assert_update_shape(&first.data);

    assert_eq!(app.sandbox_pay(&p, "success").await, 200);
    let seen = until_status(&mut sse, "completed").await;
    let versions: Vec<i64> = seen.iter().filter_map(|e| e.data["version"].as_i64()).collect();
    assert!(
        versions.windows(2).all(|w| w[0] < w[1]),
        "versions only grow: {versions:?}"
    );
    let last = app.payment_now(&p.id()).await;
    assert_eq!(seen.last().map(|e| &e.data["version"]), Some(&last.data()["version"]));
    assert!(sse.next().await.is_none(), "the stream ends after the final state");
}

#[tokio::test]
async fn a_declined_payment_ends_the_stream_with_failed() {
    let app = spawn_app().await;
    let p = pending_payment(&app).await;
    let mut sse = Sse::open(&app, &p, None).await;
    assert!(sse.next().await.is_some());
    app.sandbox_pay(&p, "fail").await;
    until_status(&mut sse, "failed").await;
    assert!(sse.next().await.is_none());
}

#[tokio::test]
async fn last_event_id_resumes_after_the_version_the_client_already_has() {
    let app = spawn_app().await;
    let p = pending_payment(&app).await;
    let mut first = Sse::open(&app, &p, None).await;
    let v1 = first
        .next()
        .await
        .and_then(|e| e.data["version"].as_i64())
        .unwrap_or_else(|| panic!("a version"));
    drop(first);

    // Reconnecting with the version it has: nothing old is sent again.
    let mut again = Sse::open(&app, &p, Some(v1)).await;
    assert_eq!(app.sandbox_pay(&p, "success").await, 200);
    let seen = until_status(&mut again, "completed").await;
    assert!(seen.iter().all(|e| e.data["version"].as_i64() > Some(v1)), "{seen:?}");
    let final_version = seen.last().and_then(|e| e.data["version"].as_i64()).unwrap_or_default();

    // A client that already has the final state gets an empty stream that ends.
    let mut done = Sse::open(&app, &p, Some(final_version)).await;
    assert!(done.next().await.is_none());
    // One that missed everything gets the final state and the end.
    let mut late = Sse::open(&app, &p, Some(v1)).await;
    let e = late.next().await.unwrap_or_else(|| panic!("the final state"));
    assert_eq!(e.data["status"], "completed");
    assert!(late.next().await.is_none());
}

#[tokio::test]
async fn a_wrong_client_secret_gets_404_and_no_stream() {
    let app = spawn_app().await;
    let p = pending_payment(&app).await;
    for query in ["?clientSecret=cs_wrong", ""] {
        let a = app
            .send(
                app.anon
                    .get(format!("{}/api/payments/{}/events{query}", app.base, p.id())),
            )
            .await;
        assert_eq!((a.status, a.code()), (404, "payment_not_found"), "{query}: {}", a.text);
    }
    assert_eq!(app.state.realtime.watchers(), 0, "nobody was subscribed");
}

/// Runs seed 004's client snippet (tests/node/seed004.js) for `payment` against `base`.
fn seed_client(base: &str, payment: &str, secret: Option<&str>) -> tokio::process::Child {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node");
    assert!(
        dir.join("node_modules/socket.io-client").exists(),
        "socket.io-client is not installed: run `make node-deps`"
    );
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(dir.join("seed004.js"))
        .arg(base)
        .arg(payment)
        .args(secret)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true);
    cmd.spawn().unwrap_or_else(|e| panic!("node: {e}"))
}

/// The next `UPDATE`/`ERROR` line the node client prints (the seed's own console.log lines are
/// skipped), parsed.
async fn next_line(lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>) -> (String, Value) {
    tokio::time::timeout(DEADLINE, async {
        loop {
            let line = lines
                .next_line()
                .await
                .unwrap_or_else(|e| panic!("node output: {e}"))
                .unwrap_or_else(|| panic!("node exited early"));
            if let Some((kind @ ("UPDATE" | "ERROR"), rest)) = line.split_once(' ') {
                return (
                    kind.to_owned(),
                    serde_json::from_str(rest).unwrap_or_else(|e| panic!("{rest}: {e}")),
                );
            }
            assert_ne!(line, "TIMEOUT", "the node client timed out");
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no line from node within {DEADLINE:?}"))
}

#[tokio::test]
async fn seed_004s_socket_io_client_receives_the_update_of_a_payment_paid_through_a_sandbox() {
    let app = spawn_app().await;
    let p = pending_payment(&app).await;
    let mut child = seed_client(&app.base, &p.id(), None);
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap_or_else(|| panic!("stdout"))).lines();
    let (kind, first) = next_line(&mut lines).await;
    assert_eq!(
        (kind.as_str(), first["status"].as_str()),
        ("UPDATE", Some("pending")),
        "{first}"
    );
    assert_update_shape(&first);

    assert_eq!(app.sandbox_pay(&p, "success").await, 200);
    loop {
        let (kind, u) = next_line(&mut lines).await;
        assert_eq!(kind, "UPDATE", "{u}");
        assert_update_shape(&u);
        assert_eq!(u["paymentId"], p.id().as_str());
        if u["status"] == "completed" {
            break;
        }
    }
    let status = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .unwrap_or_else(|_| panic!("node did not exit"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success());
}

#[tokio::test]
async fn a_socket_io_join_with_a_wrong_secret_or_an_unknown_payment_gets_an_error_and_no_room() {
    let app = spawn_app().await;
    let p = pending_payment(&app).await;
    let secret = p.data()["clientSecret"].as_str().unwrap_or_default().to_owned();
    for (id, secret) in [
        (p.id(), Some("cs_wrong")),
        ("pay_0000000000000000000000000000000f".to_owned(), None),
    ] {
        let mut child = seed_client(&app.base, &id, secret);
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap_or_else(|| panic!("stdout"))).lines();
        let (kind, e) = next_line(&mut lines).await;
        assert_eq!(kind, "ERROR", "{e}");
        assert_eq!(e["code"], "payment_not_found");
    }
    assert_eq!(app.state.realtime.watchers(), 0);
    // The right secret joins and gets the current state.
    let mut child = seed_client(&app.base, &p.id(), Some(&secret));
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap_or_else(|| panic!("stdout"))).lines();
    let (kind, u) = next_line(&mut lines).await;
    assert_eq!((kind.as_str(), u["status"].as_str()), ("UPDATE", Some("pending")));
}

#[tokio::test]
async fn a_watcher_on_node_a_sees_a_payment_paid_through_node_b() {
    let db = jinliu_testkit::TestDb::new(jinliu_testkit::Engine::Postgres).await;
    let url = db.url.clone();
    let redis = std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    // A channel of this test's own, so parallel tests never hear each other.
    let channel = format!("jinliu-test:{}", uuid::Uuid::new_v4().simple());
    let env = [
        ("REDIS_URL", redis.as_str()),
        ("JINLIU_REDIS_CHANNEL", channel.as_str()),
    ];
    let a = spawn_node(Some(db), &url, &env, None).await;
    let b = spawn_node(None, &url, &env, None).await;
    for node in [&a, &b] {
        let mut up = node
            .state
            .realtime
            .redis_subscribed()
            .unwrap_or_else(|| panic!("the bus uses Redis"));
        tokio::time::timeout(DEADLINE, up.wait_for(|s| *s))
            .await
            .unwrap_or_else(|_| panic!("node did not subscribe to Redis (is it running at {redis}?)"))
            .unwrap_or_else(|e| panic!("{e}"));
    }

    let p = pending_payment(&b).await;
    let mut on_a = Sse::open(&a, &p, None).await;
    let first = on_a.next().await.unwrap_or_else(|| panic!("current state"));
    assert_eq!(first.data["status"], "pending");
    assert_eq!(b.sandbox_pay(&p, "success").await, 200);
    until_status(&mut on_a, "completed").await;
    assert!(on_a.next().await.is_none());
    assert_eq!(json!(b.payment_now(&p.id()).await.data()["status"]), json!("completed"));
}

#[tokio::test]
async fn with_redis_down_local_watchers_are_still_served() {
    // A port nothing listens on: bind one, then free it.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        l.local_addr().unwrap_or_else(|e| panic!("{e}")).port()
    };
    let redis = format!("redis://127.0.0.1:{port}");
    let app = crate::spawn_app_with(&[("REDIS_URL", redis.as_str())]).await;
    let p = pending_payment(&app).await;
    let mut sse = Sse::open(&app, &p, None).await;
    assert!(sse.next().await.is_some());
    assert_eq!(app.sandbox_pay(&p, "success").await, 200);
    until_status(&mut sse, "completed").await;
    let subscribed = app.state.realtime.redis_subscribed().map(|r| *r.borrow());
    assert_eq!(subscribed, Some(false), "Redis was never reachable");
}
