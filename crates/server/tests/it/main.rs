//! The one integration-test binary of the server: real HTTP against a server on port 0, each
//! test with its own SQLite database (the store conformance suite covers PostgreSQL and MySQL).

mod access;
mod audit;
mod bad_input;
mod bench;
mod checkout;
mod flows;
mod idempotency;
mod keyring;
mod keys;
mod merchant;
mod provider_accounts;
mod providers;
mod realtime;
mod secrets_in_logs;
mod spec;
mod users;
mod webhooks;

use jinliu_server::config::{Config, Overrides};
use jinliu_store::{Store, TableCounts};
use jinliu_testkit::{Engine, TestDb};
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// A running server and what a test needs to poke it.
pub struct TestApp {
    pub base: String,
    /// Sends the test merchant's secret key with every request.
    pub http: reqwest::Client,
    /// Sends no credentials.
    pub anon: reqwest::Client,
    /// The test merchant's secret key.
    pub secret_key: String,
    pub store: Store,
    pub state: jinliu_server::state::AppState,
    /// The database's URL (for tests that tamper with rows the way an attacker would, and for a
    /// second node on the same database).
    pub db_url: String,
    /// Holds the audit checkpoint file.
    pub dir: tempfile::TempDir,
    /// The database this app owns (`None` for a second node on another app's database).
    _db: Option<TestDb>,
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

/// The master key of test servers (so tests can forge tokens with the right key).
pub const MASTER_KEY: &str = "7e3a9c1f5b2d4e6f8a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f";

/// The secret test servers check seed 000's `X-Signature` relay notifications with.
pub const NOTIFY_SECRET: &str = "test-notify-secret";

/// A request with the route table's `method`; anything but GET carries an empty JSON body.
pub fn request(client: &reqwest::Client, method: &axum::http::Method, url: String) -> reqwest::RequestBuilder {
    let m = reqwest::Method::from_bytes(method.as_str().as_bytes()).unwrap_or(reqwest::Method::GET);
    if m == reqwest::Method::GET {
        client.get(url)
    } else {
        client.request(m, url).json(&json!({}))
    }
}

/// The process's Prometheus recorder, shared by every test server in it: the metrics crate
/// allows one recorder per process, as `jinliu serve` installs one.
fn metrics_handle() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    static HANDLE: std::sync::OnceLock<Option<metrics_exporter_prometheus::PrometheusHandle>> =
        std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .install_recorder()
                .ok()
        })
        .clone()
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// A server with extra `JINLIU_*` settings. Provider calls time out after one second so the
/// timeout tests stay short; status sync never runs by itself (tests call `sync_now`).
pub async fn spawn_app_with(env: &[(&str, &str)]) -> TestApp {
    spawn_app_on(Engine::Sqlite, env, None).await
}

/// A server on a fresh `engine` database, with extra settings and, optionally, a controllable
/// clock. The webhook worker does not run by itself unless `JINLIU_WEBHOOK_WORKER` is set to
/// true here; tests step it with `jinliu_server::webhooks::run_once`.
pub async fn spawn_app_on(
    engine: Engine,
    env: &[(&str, &str)],
    clock: Option<std::sync::Arc<jinliu_server::state::ManualClock>>,
) -> TestApp {
    let db = TestDb::new(engine).await;
    let url = db.url.clone();
    spawn_node(Some(db), &url, env, clock).await
}

/// A server on the database at `url` (owning `db` when given). Several nodes may share one
/// database: the test merchant is created by the first.
pub async fn spawn_node(
    db: Option<TestDb>,
    url: &str,
    env: &[(&str, &str)],
    clock: Option<std::sync::Arc<jinliu_server::state::ManualClock>>,
) -> TestApp {
    let mut vars: std::collections::HashMap<String, String> = [
        ("JINLIU_NOTIFY_SECRET", NOTIFY_SECRET),
        ("JINLIU_PROVIDER_TIMEOUT_MS", "1000"),
        ("JINLIU_SYNC_AFTER_SECS", "3600"),
        ("JINLIU_SYNC_INTERVAL_MS", "3600000"),
        ("JINLIU_MASTER_KEY", MASTER_KEY),
        ("JINLIU_WEBHOOK_WORKER", "false"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    // The audit sealer runs on its own only at start; tests seal when they need to.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let checkpoints = dir.path().join("audit-checkpoints.jsonl").display().to_string();
    vars.insert("JINLIU_AUDIT_CHECKPOINTS".into(), checkpoints);
    vars.insert("JINLIU_AUDIT_SEAL_INTERVAL_MS".into(), "60000".into());
    vars.insert("JINLIU_AUDIT_CHECKPOINT_SECS".into(), "0".into());
    vars.extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("addr: {e}"));
    let overrides = Overrides {
        listen: Some(addr.to_string()),
        database_url: Some(url.to_owned()),
        ..Overrides::default()
    };
    let config = Config::load_from(&overrides, |k| vars.get(k).cloned()).unwrap_or_else(|e| panic!("config: {e}"));
    let store = Store::connect(&config.store_config())
        .await
        .unwrap_or_else(|e| panic!("store: {e}"));
    store.migrate().await.unwrap_or_else(|e| panic!("migrate: {e}"));
    let mut app = jinliu_server::build_with_store(config, store.clone()).unwrap_or_else(|e| panic!("build: {e}"));
    app.metrics = metrics_handle();
    if let Some(c) = &clock {
        app.clock = c.clone();
    }
    let now = app.clock.now();
    let merchant = jinliu_domain::Merchant::new(
        app.config.merchant_id.clone(),
        "Test shop",
        jinliu_domain::Currency::Twd,
        "Asia/Taipei",
        now,
    );
    let exists = store
        .merchant(&merchant.id)
        .await
        .unwrap_or_else(|e| panic!("merchant: {e}"))
        .is_some();
    if !exists {
        store
            .create_merchant(&merchant)
            .await
            .unwrap_or_else(|e| panic!("merchant: {e}"));
    }
    let (_, secret_key) = app
        .auth
        .issue_key(
            &store,
            &merchant.id,
            jinliu_domain::ApiKeyKind::Secret,
            false,
            None,
            None,
            now,
        )
        .await
        .unwrap_or_else(|e| panic!("key: {e}"));
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {secret_key}").parse().unwrap_or_else(|e| panic!("{e}")),
    );
    let http = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap_or_else(|e| panic!("client: {e}"));
    let state = app.clone();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(jinliu_server::serve(listener, app, async move {
        let _ = rx.await;
    }));
    TestApp {
        base: format!("http://{addr}"),
        http,
        anon: reqwest::Client::new(),
        secret_key,
        store,
        state,
        db_url: url.to_owned(),
        dir,
        _db: db,
        _shutdown: tx,
    }
}

impl TestApp {
    /// A connection of its own to the app's database, for tests that change rows behind the
    /// server's back (as an attacker, or an older version, would).
    pub async fn raw_db(&self) -> sea_orm::DatabaseConnection {
        sea_orm::Database::connect(&self.db_url)
            .await
            .unwrap_or_else(|e| panic!("connect {}: {e}", self.db_url))
    }

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

    pub async fn patch(&self, path: &str, body: Value) -> Answer {
        self.send(self.http.patch(format!("{}{path}", self.base)).json(&body))
            .await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.send(self.http.delete(format!("{}{path}", self.base))).await
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

    /// The payment's customer URL (`qrCodeData.url`).
    pub fn pay_url(payment: &Answer) -> String {
        let qr: Value = serde_json::from_str(payment.data()["qrCodeData"].as_str().unwrap_or("{}")).unwrap_or_default();
        qr["url"].as_str().unwrap_or_default().to_owned()
    }

    /// What the customer's browser does first: opens the payment's URL and, for providers
    /// started by a form POST (ECPay, TPay), lets jinliu's page post the signed form to the
    /// provider. Returns the provider's pay page.
    pub async fn open_checkout(&self, payment: &Answer) -> (u16, String) {
        let page = self
            .http
            .get(Self::pay_url(payment))
            .send()
            .await
            .unwrap_or_else(|e| panic!("checkout: {e}"));
        let status = page.status().as_u16();
        let html = page.text().await.unwrap_or_default();
        let Some(form) = parse_checkout_form(&html) else {
            return (status, html);
        };
        let resp = self
            .http
            .post(&form.0)
            .form(&form.1)
            .send()
            .await
            .unwrap_or_else(|e| panic!("provider form: {e}"));
        (resp.status().as_u16(), resp.text().await.unwrap_or_default())
    }

    /// The customer pays (`paid`), declines (`declined`) or lets it lapse (`expired`) at the
    /// provider's sandbox; the sandbox notifies jinliu over HTTP and answers once jinliu has.
    /// Returns the sandbox's HTTP status and its delivery report.
    pub async fn simulate(&self, payment: &Answer, outcome: &str) -> (u16, Value) {
        let provider = payment.data()["provider"].as_str().unwrap_or_default().to_owned();
        let resp = self
            .http
            .post(format!("{}/sandbox/{provider}/simulate", self.base))
            .json(&json!({ "paymentId": payment.id(), "outcome": outcome }))
            .send()
            .await
            .unwrap_or_else(|e| panic!("simulate: {e}"));
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or_default())
    }

    /// Sets a provider sandbox's fault injection (`PUT /sandbox/{provider}/control`).
    pub async fn faults(&self, provider: &str, faults: Value) {
        let resp = self
            .http
            .put(format!("{}/sandbox/{provider}/control", self.base))
            .json(&faults)
            .send()
            .await
            .unwrap_or_else(|e| panic!("control: {e}"));
        assert_eq!(resp.status().as_u16(), 200, "{:?}", resp.text().await);
    }

    /// Makes the status-sync job of `object_id` due and runs one sync pass, as a node's worker
    /// would on its next tick.
    pub async fn sync_now(&self, object_id: &str) {
        let due = self
            .store
            .sync_job_due_now(object_id, chrono::Utc::now())
            .await
            .unwrap_or_else(|e| panic!("due: {e}"));
        assert!(due, "no sync job for {object_id}");
        jinliu_server::sync::run_once(&self.state)
            .await
            .unwrap_or_else(|e| panic!("sync: {e}"));
    }

    /// A payment as it stands now.
    pub async fn payment_now(&self, id: &str) -> Answer {
        self.get(&format!("/api/payments/{id}")).await
    }

    /// The customer pays (`success`) or is declined (`fail`), opening the checkout first.
    pub async fn sandbox_pay(&self, payment: &Answer, outcome: &str) -> u16 {
        let (opened, page) = self.open_checkout(payment).await;
        assert_eq!(opened, 200, "{page}");
        let outcome = if outcome == "success" { "paid" } else { "declined" };
        self.simulate(payment, outcome).await.0
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

/// Finds jinliu's auto-posting checkout form in a page: its action and hidden fields.
pub fn parse_checkout_form(html: &str) -> Option<(String, Vec<(String, String)>)> {
    let start = html.find("<form id=\"checkout\"")?;
    let form = &html[start..start + html[start..].find("</form>")?];
    let action = unescape(attr(form, "action")?);
    let fields = form
        .split("<input ")
        .skip(1)
        .filter_map(|input| Some((unescape(attr(input, "name")?), unescape(attr(input, "value")?))))
        .collect();
    Some((action, fields))
}

fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let needle = format!("{name}=\"");
    let start = tag.find(&needle)? + needle.len();
    Some(&tag[start..start + tag[start..].find('"')?])
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}
