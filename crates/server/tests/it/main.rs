//! The one integration-test binary of the server: real HTTP against a server on port 0, each
//! test with its own SQLite database (the store conformance suite covers PostgreSQL and MySQL).

mod bad_input;
mod flows;
mod idempotency;
mod spec;

use jinliu_server::config::{Config, Overrides};
use jinliu_store::{Store, TableCounts};
use jinliu_testkit::{Engine, TestDb};
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// A running server and what a test needs to poke it.
pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub store: Store,
    pub state: jinliu_server::state::AppState,
    _db: TestDb,
    _shutdown: oneshot::Sender<()>,
}

/// An answer: status, parsed body, and one header a test may look at.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub text: String,
    pub replayed: bool,
}

impl Answer {
    /// `error.code` of an error envelope.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
    /// `data` of a success envelope.
    pub fn data(&self) -> &Value {
        &self.body["data"]
    }
    /// A money field of `data` exactly as sent (a parsed `Value` would turn 100.00 into 100.0).
    pub fn amount(&self, field: &str) -> String {
        let needle = format!("\"{field}\":");
        let Some(start) = self.text.find(&needle).map(|i| i + needle.len()) else {
            return String::new();
        };
        self.text[start..]
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == '-')
            .collect()
    }
    /// `data.id`.
    pub fn id(&self) -> String {
        self.body["data"]["id"].as_str().unwrap_or_default().to_owned()
    }
}

pub async fn spawn_app() -> TestApp {
    let db = TestDb::new(Engine::Sqlite).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("addr: {e}"));
    let overrides = Overrides {
        listen: Some(addr.to_string()),
        database_url: Some(db.url.clone()),
        ..Overrides::default()
    };
    let config = Config::load_from(&overrides, |_| None).unwrap_or_else(|e| panic!("config: {e}"));
    let store = Store::connect(&config.store_config())
        .await
        .unwrap_or_else(|e| panic!("store: {e}"));
    store.migrate().await.unwrap_or_else(|e| panic!("migrate: {e}"));
    let app = jinliu_server::build_with_store(config, store.clone());
    let state = app.clone();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(jinliu_server::serve(listener, app, async move {
        let _ = rx.await;
    }));
    TestApp {
        base: format!("http://{addr}"),
        http: reqwest::Client::new(),
        store,
        state,
        _db: db,
        _shutdown: tx,
    }
}

impl TestApp {
    pub async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        let resp = req.send().await.unwrap_or_else(|e| panic!("request: {e}"));
        let status = resp.status().as_u16();
        let replayed = resp.headers().get("idempotent-replayed").is_some();
        let text = resp.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.clone()));
        Answer {
            status,
            body,
            text,
            replayed,
        }
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.send(self.http.post(format!("{}{path}", self.base)).json(&body))
            .await
    }

    pub async fn post_with_key(&self, path: &str, key: &str, body: Value) -> Answer {
        self.send(
            self.http
                .post(format!("{}{path}", self.base))
                .header("idempotency-key", key)
                .json(&body),
        )
        .await
    }

    pub async fn post_raw(&self, path: &str, content_type: &str, body: impl Into<reqwest::Body>) -> Answer {
        self.send(
            self.http
                .post(format!("{}{path}", self.base))
                .header("content-type", content_type)
                .body(body),
        )
        .await
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(self.http.get(format!("{}{path}", self.base))).await
    }

    pub async fn counts(&self) -> TableCounts {
        self.store
            .table_counts()
            .await
            .unwrap_or_else(|e| panic!("counts: {e}"))
    }

    /// A pending order of `amount` in `currency`.
    pub async fn order(&self, amount: &str, currency: &str) -> String {
        let a = self
            .post(
                "/api/orders",
                json!({ "description": "Tea", "amount": amount, "currency": currency }),
            )
            .await;
        assert_eq!(a.status, 201, "{:?}", a.body);
        a.id()
    }

    /// A pending payment for an order.
    pub async fn payment(&self, order: &str, amount: &str, currency: &str) -> Answer {
        let a = self
            .post(
                "/api/payments",
                json!({ "orderId": order, "amount": amount, "currency": currency }),
            )
            .await;
        assert_eq!(a.status, 201, "{:?}", a.body);
        a
    }

    /// The customer pays (or declines) at the sandbox; the sandbox notifies jinliu over HTTP.
    pub async fn sandbox_pay(&self, payment: &Answer, outcome: &str) -> u16 {
        let qr: Value = serde_json::from_str(payment.data()["qrCodeData"].as_str().unwrap_or("{}")).unwrap_or_default();
        let url = qr["url"]
            .as_str()
            .unwrap_or_default()
            .split('?')
            .next()
            .unwrap_or_default()
            .to_owned();
        let resp = self
            .http
            .post(url)
            .form(&[("outcome", outcome)])
            .send()
            .await
            .unwrap_or_else(|e| panic!("sandbox: {e}"));
        resp.status().as_u16()
    }

    /// An order with one completed payment; returns the payment answer.
    pub async fn paid(&self, amount: &str, currency: &str) -> Answer {
        let order = self.order(amount, currency).await;
        let p = self.payment(&order, amount, currency).await;
        assert_eq!(self.sandbox_pay(&p, "success").await, 200);
        let now = self.get(&format!("/api/payments/{}", p.id())).await;
        assert_eq!(now.data()["status"], "completed");
        now
    }
}
