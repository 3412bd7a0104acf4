//! `jinliu bench`: measures `POST /api/payments` end to end against a real `jinliu serve`
//! child process, with a baseline measured in the same run.
//!
//! For each database (SQLite always, PostgreSQL when `--postgres` names a server) it:
//! 1. creates a scratch database and seeds enough pending orders;
//! 2. measures the baseline: the same payment + event inserts, one transaction each, straight
//!    through the driver (and, on PostgreSQL when it is installed, initialises `pgbench`);
//! 3. starts `jinliu serve` as a child process (so its RSS and CPU time are its own);
//! 4. drives `POST /api/payments` (one TWD payment per order, through the KPay adapter and its
//!    in-process sandbox over HTTP) closed-loop at each `--connections` count in `--rounds`
//!    rounds, then open-loop at a fixed arrival rate with latency measured from each request's
//!    intended send time. On PostgreSQL each round follows a `pgbench -N` run of the same length
//!    at the same client count and is compared with it: on a shared machine the speed of both
//!    moves by a quarter within minutes, and only ratios measured side by side hold. A round's
//!    database CPU includes some of the previous pgbench run's after-work (checkpoint,
//!    autovacuum), and a pgbench run some of the previous round's (the server's background
//!    workers, too), in turn;
//! 5. drives Octopus payment notifications (`POST /api/payments/notify/octopus/octopus_test`,
//!    signed as the Octopus sandbox signs them; verify + dedupe + transition + events) closed-loop
//!    at each `--connections` count, one seeded pending payment per notification;
//! 6. prints offered and achieved rates, p50/p95/p99, errors, server CPU per request and RSS, and
//!    the ratios to the baselines.
//!
//! Numbers on a shared machine are noisy; the ratios to the same-run baseline are what to compare,
//! and the median of the rounds' ratios (printed with their range under the table).

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use jinliu_domain::{Currency, MerchantId, Money, OrderId};
use jinliu_store::{Store, StoreConfig};
use tokio::process::{Child, Command};

/// Flags of `jinliu bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Seconds per measured run.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Closed-loop client counts, comma-separated.
    #[arg(long, default_value = "16,64", value_delimiter = ',')]
    pub connections: Vec<usize>,
    /// Rounds each closed-loop creation run is split into, `--duration / --rounds` whole seconds
    /// each (at least 1).
    /// On PostgreSQL every round follows a `pgbench -N` run of the same length at the same client
    /// count and is compared with that run, so that a ratio never spans minutes of a shared
    /// machine's changing speed.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Open-loop arrival rate (requests/s); default 70 % of the best closed-loop rate.
    #[arg(long)]
    pub rate: Option<u64>,
    /// Also benchmark PostgreSQL: a server URL (a scratch database is created and dropped).
    #[arg(long)]
    pub postgres: Option<String>,
    /// Skip the SQLite run.
    #[arg(long)]
    pub skip_sqlite: bool,
    /// SQLite synchronous level for the run (FULL is durable).
    #[arg(long, default_value = "FULL")]
    pub sqlite_synchronous: String,
    /// Orders to seed (each request pays one).
    #[arg(long, default_value_t = 300_000)]
    pub orders: usize,
    /// Pending Octopus payments to seed for the notification ingestion run (each notification
    /// completes one).
    #[arg(long, default_value_t = 150_000)]
    pub notifications: usize,
    /// Run only the realtime benchmark: SSE watchers of pending payments, each completed by an
    /// Octopus notification at `--notify-rate`; notification → watcher latency and server RSS.
    #[arg(long)]
    pub realtime: bool,
    /// Realtime: how the watchers follow their payment: `sse` or `socketio` (seed 004's
    /// `joinPaymentRoom` over a WebSocket).
    #[arg(long, default_value = "sse", value_parser = ["sse", "socketio"])]
    pub transport: String,
    /// Realtime: concurrent watchers.
    #[arg(long, default_value_t = 10_000)]
    pub watchers: usize,
    /// Realtime: payments they watch (watcher i watches payment i mod this).
    #[arg(long, default_value_t = 1_000)]
    pub watched_payments: usize,
    /// Realtime: notifications per second.
    #[arg(long, default_value_t = 100)]
    pub notify_rate: u64,
}

/// One request of a run: `Some(ok)` for request `i`, `None` when the fixtures ran out.
type Op = Arc<dyn Fn(usize) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<bool>> + Send>> + Send + Sync>;

fn pay_op(client: &reqwest::Client, base: &str, orders: &Arc<Vec<OrderId>>) -> Op {
    let (client, base, orders) = (client.clone(), base.to_owned(), orders.clone());
    Arc::new(move |i| {
        let (client, base, order) = (client.clone(), base.clone(), orders.get(i).cloned());
        Box::pin(async move {
            let order = order?;
            Some(pay(&client, &base, &order).await)
        })
    })
}

/// Octopus notifications (SUCCESS) for seeded pending payments, signed as the Octopus sandbox
/// signs them: what the ingestion run sends.
fn notify_op(client: &reqwest::Client, base: &str, references: &Arc<Vec<String>>) -> Op {
    let creds = jinliu_providers::sandbox_credentials("octopus");
    let merchant = creds.get("merchant_id").cloned().unwrap_or_default();
    let secret = creds.get("webhook_secret").cloned().unwrap_or_default();
    let url = format!("{base}/api/payments/notify/octopus/octopus_test");
    let (client, references) = (client.clone(), references.clone());
    Arc::new(move |i| {
        let reference = references.get(i).cloned();
        let (client, url, merchant, secret) = (client.clone(), url.clone(), merchant.clone(), secret.clone());
        Box::pin(async move {
            use jinliu_providers::octopus::{sign, wire};
            let reference = reference?;
            let timestamp = chrono::Utc::now().timestamp();
            let body = wire::NotificationBody {
                event_id: format!("oevt_bench_{i}"),
                merchant_id: merchant,
                payment_id: format!("opay_bench_{i}"),
                order_id: reference,
                status: wire::status::SUCCESS.into(),
                amount: wire::amount_text(10_000),
                currency: wire::CURRENCY.into(),
                transaction_id: Some(format!("otx_bench_{i}")),
                failure_reason: None,
                timestamp,
            };
            let bytes = serde_json::to_vec(&body).unwrap_or_default();
            let resp = client
                .post(&url)
                .header("content-type", "application/json")
                .header(wire::H_SIGNATURE, sign::sign(&secret, &bytes))
                .header(wire::H_TIMESTAMP, timestamp.to_string())
                .body(bytes)
                .send()
                .await;
            Some(match resp {
                Ok(r) => {
                    let ok = r.status().as_u16() == 200;
                    let _ = r.bytes().await;
                    ok
                }
                Err(_) => false,
            })
        })
    })
}

struct RunResult {
    label: String,
    /// Client connections of the run (for an open-loop run, the first closed-loop count).
    clients: usize,
    /// Which round of its closed-loop count this run was, and of how many.
    round: Option<(usize, usize)>,
    /// The `pgbench -N` rate (tps) this run is compared with: the run just before it for a
    /// round, the median of the runs at its client count for any other run.
    pgbench_tps: Option<f64>,
    offered: Option<f64>,
    achieved: f64,
    ok: u64,
    errors: u64,
    p50: f64,
    p95: f64,
    p99: f64,
    cpu_ms_per_req: f64,
    /// PostgreSQL's CPU per request (all local `postgres` processes), when it runs here.
    db_cpu_ms_per_req: Option<f64>,
    /// Units of work per commit of the group-commit writer during the run.
    units_per_commit: Option<f64>,
    rss_mb: f64,
}

/// Runs the benchmark and prints the report.
pub async fn run(args: BenchArgs) -> Result<(), String> {
    if args.realtime {
        let r = realtime_bench(&args).await?;
        println!("\n{r}");
        return Ok(());
    }
    let mut report = Vec::new();
    if !args.skip_sqlite {
        let dir = ScratchDir::new()?;
        let url = format!("sqlite://{}/bench.db?mode=rwc", dir.0.display());
        report.push(bench_backend(&args, "sqlite", &url).await?);
    }
    if let Some(server) = &args.postgres {
        let name = format!("jl_bench_{}", uuid::Uuid::new_v4().simple());
        let url = jinliu_store::bench::create_scratch_database(server, &name)
            .await
            .map_err(|e| e.to_string())?;
        let r = bench_backend(&args, "postgres", &url).await;
        let _ = jinliu_store::bench::drop_scratch_database(server, &name).await;
        report.push(r?);
    }
    println!("\n{}", report.join("\n"));
    Ok(())
}

/// A directory of its own under the system's temporary directory, removed when dropped.
struct ScratchDir(std::path::PathBuf);

impl ScratchDir {
    fn new() -> Result<ScratchDir, String> {
        let dir = std::env::temp_dir().join(format!("jinliu-bench-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        Ok(ScratchDir(dir))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn bench_backend(args: &BenchArgs, backend: &str, url: &str) -> Result<String, String> {
    let merchant = MerchantId::parse("mer_00000000000000000000000000000001").ok_or("merchant id")?;
    let amount = Money::from_minor(10_000, Currency::Twd).map_err(|e| e.to_string())?;
    eprintln!("[{backend}] preparing: migrate, seed {} orders", args.orders);
    let mut cfg = StoreConfig::new(url);
    cfg.sqlite_synchronous = args.sqlite_synchronous.clone();
    let store = Store::connect(&cfg).await.map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    let orders = store
        .seed_orders(&merchant, amount, args.orders)
        .await
        .map_err(|e| e.to_string())?;
    let hkd = Money::from_minor(10_000, Currency::Hkd).map_err(|e| e.to_string())?;
    eprintln!(
        "[{backend}] seeding {} pending Octopus payments for the ingestion run",
        args.notifications
    );
    let references = Arc::new(
        store
            .seed_pending_payments(&merchant, "octopus", "octopus_test", hkd, args.notifications)
            .await
            .map_err(|e| e.to_string())?,
    );

    // The merchant the seeded orders belong to, and a secret key for the load generator; the
    // child server gets the same master key, so it recognises the key's hash.
    let (master_hex, secret_key) = bench_merchant(&store, &merchant).await?;

    let main_conns = args.connections.first().copied().unwrap_or(16);
    let base_conc = if backend == "sqlite" { 1 } else { main_conns };
    eprintln!("[{backend}] baseline: raw payment+event inserts, one transaction each, {base_conc} connection(s)");
    let (n, took) = store
        .baseline_inserts(Duration::from_secs(args.duration.min(5)), base_conc)
        .await
        .map_err(|e| e.to_string())?;
    let baseline = n as f64 / took.as_secs_f64();
    let pgbench_ready = backend == "postgres" && pgbench_init(url).await;
    drop(store);

    let port = free_port()?;
    let data_dir = ScratchDir::new()?;
    let mut child = spawn_server(url, port, &args.sqlite_synchronous, &master_hex, &data_dir.0)?;
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&base).await?;
    let pid = child.id().ok_or("server exited")?;
    let orders = Arc::new(orders);
    let next = Arc::new(AtomicUsize::new(0));
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {secret_key}").parse().map_err(|e| format!("{e}"))?,
    );
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .pool_max_idle_per_host(1024)
        .build()
        .map_err(|e| e.to_string())?;

    let probe = Probe {
        pid,
        client: &client,
        base: &base,
        postgres: backend == "postgres",
    };
    let pay = pay_op(&client, &base, &orders);
    // Warm-up: connections, statement caches, allocator.
    let _ = closed_loop(&pay, &next, 16, Duration::from_secs(1)).await;
    let mut runs = Vec::new();
    let mut pgbench: Vec<(usize, PgBench)> = Vec::new();
    let rounds = args.rounds.max(1);
    // Whole seconds, so that each pgbench run (`-T` takes seconds) is exactly as long as its round.
    let round_len = Duration::from_secs((args.duration / rounds as u64).max(1));
    for &c in &args.connections {
        for round in 1..=rounds {
            let paired = if pgbench_ready {
                let r = pgbench_run(url, c, round_len.as_secs()).await;
                if let Some(r) = r {
                    pgbench.push((c, r));
                }
                r
            } else {
                None
            };
            eprintln!(
                "[{backend}] closed loop, {c} connections, round {round}/{rounds}, {} s",
                round_len.as_secs()
            );
            let label = if rounds > 1 {
                format!("create payment, closed, {c} conns, round {round}/{rounds}")
            } else {
                format!("create payment, closed, {c} conns")
            };
            let load = Load {
                label,
                clients: c,
                offered: None,
            };
            let mut r = probe.measure(load, closed_loop(&pay, &next, c, round_len)).await;
            r.round = Some((round, rounds));
            r.pgbench_tps = paired.map(|p| p.tps);
            runs.push(r);
        }
    }
    let best = runs.iter().map(|r| r.achieved).fold(0.0, f64::max);
    let rate = args.rate.unwrap_or(((best * 0.7) as u64).max(50));
    eprintln!("[{backend}] open loop, {rate}/s, {} s", args.duration);
    let load = Load {
        label: format!("create payment, open, {rate}/s"),
        clients: main_conns,
        offered: Some(rate as f64),
    };
    runs.push(
        probe
            .measure(load, open_loop(&pay, &next, rate, Duration::from_secs(args.duration)))
            .await,
    );
    let used = next.load(Ordering::Relaxed);
    let notify = notify_op(&client, &base, &references);
    let next_note = Arc::new(AtomicUsize::new(0));
    for &c in &args.connections {
        eprintln!(
            "[{backend}] Octopus notification ingestion, closed loop, {c} connections, {} s",
            args.duration
        );
        let load = Load {
            label: format!("octopus notification, closed, {c} conns"),
            clients: c,
            offered: None,
        };
        runs.push(
            probe
                .measure(
                    load,
                    closed_loop(&notify, &next_note, c, Duration::from_secs(args.duration)),
                )
                .await,
        );
    }
    if next_note.load(Ordering::Relaxed) >= references.len() {
        eprintln!("[{backend}] all seeded Octopus payments were used; raise --notifications");
    }
    let _ = child.kill().await;
    for r in runs.iter_mut().filter(|r| r.round.is_none()) {
        r.pgbench_tps = median_tps(&pgbench, r.clients);
    }
    Ok(render(
        backend,
        &runs,
        baseline,
        base_conc,
        &pgbench,
        used,
        orders.len(),
    ))
}

/// Creates the bench merchant and a secret key for the load generator, under a fresh master
/// key; returns that key in hex (the child server gets it, so it recognises the key's hash) and
/// the key's text.
async fn bench_merchant(store: &Store, merchant: &MerchantId) -> Result<(String, String), String> {
    let master_hex = hex::encode(rand::random::<[u8; 32]>());
    let master = crate::secrets::MasterKey::from_hex(&master_hex).map_err(|e| e.to_string())?;
    let now = chrono::Utc::now();
    store
        .create_merchant(&jinliu_domain::Merchant::new(
            merchant.clone(),
            "Bench merchant",
            Currency::Twd,
            "Asia/Taipei",
            now,
        ))
        .await
        .map_err(|e| e.to_string())?;
    let (_, secret_key) = crate::auth::Auth::new(&master)
        .issue_key(
            store,
            merchant,
            jinliu_domain::ApiKeyKind::Secret,
            false,
            None,
            None,
            now,
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok((master_hex, secret_key))
}

/// One Socket.IO watcher, as seed 004's client behaves over the WebSocket transport: open the
/// Engine.IO session, connect to the default namespace, `joinPaymentRoom` with the bare payment
/// id, answer pings, and wait for the `paymentUpdate` that says `completed`. `joined` runs at the
/// first update (the current state, sent on join). Returns when that update arrived.
async fn socketio_watch(url: &str, payment: &str, mut joined: impl FnMut()) -> Result<Instant, String> {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.map_err(|e| e.to_string())?;
    let mut counted = false;
    while let Some(msg) = ws.next().await {
        let text = match msg.map_err(|e| e.to_string())? {
            Message::Text(t) => t.to_string(),
            Message::Close(_) => break,
            _ => continue,
        };
        let reply = if text.starts_with('0') {
            // Engine.IO open: connect to the default namespace.
            Some("40".to_owned())
        } else if text == "2" {
            Some("3".to_owned())
        } else if text.starts_with("40") {
            Some(format!("42[\"joinPaymentRoom\",\"{payment}\"]"))
        } else if text.starts_with("42") {
            if !counted {
                counted = true;
                joined();
            }
            if text.contains("\"status\":\"completed\"") {
                return Ok(Instant::now());
            }
            None
        } else {
            None
        };
        if let Some(r) = reply {
            ws.send(Message::Text(r.into())).await.map_err(|e| e.to_string())?;
        }
    }
    Err("the socket closed before the payment completed".into())
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// Starts `jinliu serve` on `url`, with a data directory of its own: the server keeps its audit
/// checkpoints there, and the current directory's `data/` may belong to a real deployment whose
/// checkpoint file must not get lines signed with the benchmark's throwaway key.
fn spawn_server(
    url: &str,
    port: u16,
    sync: &str,
    master_key: &str,
    data_dir: &std::path::Path,
) -> Result<Child, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    Command::new(exe)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(data_dir)
        // This setting wins over the data directory; an operator's may name a shared file.
        .env("JINLIU_AUDIT_CHECKPOINTS", data_dir.join("audit-checkpoints.jsonl"))
        .env("DATABASE_URL", url)
        .env("JINLIU_SQLITE_SYNCHRONOUS", sync)
        .env("JINLIU_MASTER_KEY", master_key)
        .env("JINLIU_MERCHANT_ID", "mer_00000000000000000000000000000001")
        // The created payments are never paid; keep the status sync from querying them mid-run.
        .env("JINLIU_SYNC_AFTER_SECS", "3600")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start the server: {e}"))
}

async fn wait_ready(base: &str) -> Result<(), String> {
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if let Ok(r) = client.get(format!("{base}/ready")).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err("the server did not become ready".into())
}

async fn pay(client: &reqwest::Client, base: &str, order: &OrderId) -> bool {
    let body = format!(r#"{{"orderId":"{order}","amount":"100.00","currency":"TWD"}}"#);
    match client
        .post(format!("{base}/api/payments"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
    {
        Ok(r) => {
            let ok = r.status().as_u16() == 201;
            let _ = r.bytes().await;
            ok
        }
        Err(_) => false,
    }
}

async fn closed_loop(op: &Op, next: &Arc<AtomicUsize>, conns: usize, duration: Duration) -> (Vec<u32>, u64, Duration) {
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (op, next) = (op.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0_u64;
            while Instant::now() < deadline {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                match op(i).await {
                    None => break,
                    Some(true) => lat.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32),
                    Some(false) => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        if let Ok((l, e)) = t.await {
            all.extend(l);
            errors += e;
        }
    }
    (all, errors, start.elapsed())
}

async fn open_loop(op: &Op, next: &Arc<AtomicUsize>, rate: u64, duration: Duration) -> (Vec<u32>, u64, Duration) {
    let start = tokio::time::Instant::now();
    let total = rate * duration.as_secs();
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::with_capacity(total as usize);
    let mut dropped = 0_u64;
    for k in 0..total {
        let intended = start + interval.mul_f64(k as f64);
        tokio::time::sleep_until(intended).await;
        // Beyond this many outstanding requests the server is not keeping up; count the
        // request as an error instead of letting the client run out of sockets.
        if in_flight.load(Ordering::Relaxed) >= 4096 {
            dropped += 1;
            continue;
        }
        let i = next.fetch_add(1, Ordering::Relaxed);
        let request = op(i);
        let in_flight = in_flight.clone();
        in_flight.fetch_add(1, Ordering::Relaxed);
        tasks.push(tokio::spawn(async move {
            let ok = request.await.unwrap_or(false);
            in_flight.fetch_sub(1, Ordering::Relaxed);
            // Latency from the intended send time: a slow server delays later sends in a closed
            // loop and hides its own queueing (coordinated omission); here it cannot.
            ok.then(|| intended.elapsed().as_micros().min(u32::MAX as u128) as u32)
        }));
    }
    let mut lat = Vec::new();
    let mut errors = dropped;
    for t in tasks {
        match t.await {
            Ok(Some(l)) => lat.push(l),
            _ => errors += 1,
        }
    }
    (lat, errors, start.elapsed())
}

#[derive(Clone, Copy, Default)]
struct ProcStats {
    cpu_secs: f64,
    rss_kb: u64,
}

/// CPU seconds (user + system) and resident memory of a process, from /proc (Linux).
fn proc_stats(pid: u32) -> ProcStats {
    let [utime, stime, _, _] = cpu_secs(pid);
    let cpu_secs = utime + stime;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kb = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    ProcStats { cpu_secs, rss_kb }
}

/// A process's utime, stime, cutime and cstime (its reaped children's) in seconds, from
/// /proc/<pid>/stat (fields 14–17); zeros when it is gone.
fn cpu_secs(pid: u32) -> [f64; 4] {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name, which may itself hold spaces.
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let mut out = [0.0; 4];
    for (slot, v) in out.iter_mut().zip(after.split_whitespace().skip(11)) {
        // USER_HZ is 100 on Linux x86_64 and aarch64.
        *slot = v.parse::<f64>().unwrap_or(0.0) / 100.0;
    }
    out
}

/// CPU seconds used between two [`postgres_cpu`] snapshots (a process that started meanwhile
/// counts from zero).
fn postgres_cpu_used(before: &HashMap<u32, f64>, after: &HashMap<u32, f64>) -> f64 {
    after
        .iter()
        .map(|(pid, secs)| secs - before.get(pid).copied().unwrap_or(0.0))
        .sum()
}

/// CPU seconds used so far by each local PostgreSQL process (`comm` = `postgres`: backends,
/// WAL writer, checkpointer), so a run can report the database's CPU per request beside the
/// server's. Meaningful only when the server under test is on this machine.
fn postgres_cpu() -> HashMap<u32, f64> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim_end() == "postgres" {
            // Own time plus reaped children's (cutime, cstime): a backend that exits during the
            // run (pgbench disconnecting) is reaped by the postmaster, whose children's time
            // then holds it.
            out.insert(pid, cpu_secs(pid).iter().sum());
        }
    }
    out
}

/// What the server (and, on PostgreSQL, the database) had used at one instant.
struct Sample {
    server: ProcStats,
    database: Option<HashMap<u32, f64>>,
    /// The writer's (commits, units of work) from `GET /metrics`.
    writer: Option<(u64, u64)>,
}

/// Where to take [`Sample`]s from.
struct Probe<'a> {
    pid: u32,
    client: &'a reqwest::Client,
    base: &'a str,
    postgres: bool,
}

impl Probe<'_> {
    /// Runs `run` (a load: its latencies, errors and duration) between two samples and
    /// summarises it as `load`.
    async fn measure(
        &self,
        load: Load,
        run: impl std::future::Future<Output = (Vec<u32>, u64, Duration)>,
    ) -> RunResult {
        let before = self.sample().await;
        let (lat, errors, took) = run.await;
        summarise(load, lat, errors, took, before, self.sample().await)
    }

    async fn sample(&self) -> Sample {
        Sample {
            server: proc_stats(self.pid),
            database: self.postgres.then(postgres_cpu),
            writer: self.writer_counters().await,
        }
    }

    async fn writer_counters(&self) -> Option<(u64, u64)> {
        let text = self
            .client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        let value = |name: &str| -> Option<u64> {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
                .and_then(|v| v.trim().parse().ok())
        };
        Some((value("jinliu_db_commits_total")?, value("jinliu_db_units_total")?))
    }
}

/// What a run drove: its row label, its client connections, and its offered rate (open loop).
struct Load {
    label: String,
    clients: usize,
    offered: Option<f64>,
}

fn summarise(
    Load {
        label,
        clients,
        offered,
    }: Load,
    mut lat: Vec<u32>,
    errors: u64,
    took: Duration,
    before: Sample,
    after: Sample,
) -> RunResult {
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let idx = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
        lat[idx] as f64 / 1000.0
    };
    let ok = lat.len() as u64;
    RunResult {
        label,
        clients,
        round: None,
        pgbench_tps: None,
        offered,
        achieved: ok as f64 / took.as_secs_f64(),
        ok,
        errors,
        p50: pct(0.50),
        p95: pct(0.95),
        p99: pct(0.99),
        cpu_ms_per_req: if ok > 0 {
            (after.server.cpu_secs - before.server.cpu_secs) * 1000.0 / ok as f64
        } else {
            0.0
        },
        db_cpu_ms_per_req: match (&before.database, &after.database) {
            (Some(b), Some(a)) if ok > 0 => Some(postgres_cpu_used(b, a) * 1000.0 / ok as f64),
            _ => None,
        },
        units_per_commit: match (before.writer, after.writer) {
            (Some((c0, u0)), Some((c1, u1))) if c1 > c0 => Some((u1 - u0) as f64 / (c1 - c0) as f64),
            _ => None,
        },
        rss_mb: after.server.rss_kb as f64 / 1024.0,
    }
}

fn render(
    backend: &str,
    runs: &[RunResult],
    baseline: f64,
    base_conc: usize,
    pgbench: &[(usize, PgBench)],
    used: usize,
    seeded: usize,
) -> String {
    let mut s = format!("## {backend}\n\n");
    s.push_str(&format!(
        "baseline: raw payment+event inserts, one transaction each, {base_conc} connection(s): {baseline:.0} tx/s\n"
    ));
    for (clients, PgBench { tps, db_cpu_ms_per_tx }) in pgbench {
        let cpu = db_cpu_ms_per_tx
            .map(|ms| format!(", database CPU {ms:.3} ms/tx"))
            .unwrap_or_default();
        s.push_str(&format!("baseline: pgbench -N, {clients} clients: {tps:.0} tps{cpu}\n"));
    }
    if !pgbench.is_empty() {
        s.push_str(
            "(each closed-loop round is compared with the pgbench run just before it; other runs with the median pgbench run at their client count)\n",
        );
    }
    s.push_str("\n| run | offered/s | achieved/s | ok | errors | p50 ms | p95 ms | p99 ms | server CPU ms/req | database CPU ms/req | units/commit | server RSS MB | × raw inserts |");
    if !pgbench.is_empty() {
        // Each run against pgbench at the run's own client count.
        s.push_str(" × pgbench -N |");
    }
    s.push_str("\n|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    if !pgbench.is_empty() {
        s.push_str("---|");
    }
    s.push('\n');
    for r in runs {
        s.push_str(&format!(
            "| {} | {} | {:.0} | {} | {} | {:.2} | {:.2} | {:.2} | {:.3} | {} | {} | {:.1} | {:.2} |",
            r.label,
            r.offered.map(|o| format!("{o:.0}")).unwrap_or_else(|| "-".into()),
            r.achieved,
            r.ok,
            r.errors,
            r.p50,
            r.p95,
            r.p99,
            r.cpu_ms_per_req,
            r.db_cpu_ms_per_req
                .map(|v| format!("{v:.3}"))
                .unwrap_or_else(|| "-".into()),
            r.units_per_commit
                .map(|v| format!("{v:.1}"))
                .unwrap_or_else(|| "-".into()),
            r.rss_mb,
            r.achieved / baseline.max(1e-9),
        ));
        if !pgbench.is_empty() {
            match r.pgbench_tps {
                Some(tps) => s.push_str(&format!(" {:.2} |", r.achieved / tps.max(1e-9))),
                None => s.push_str(" - |"),
            }
        }
        s.push('\n');
    }
    s.push_str(&round_summaries(runs, baseline));
    if used >= seeded {
        s.push_str(&format!(
            "\nnote: all {seeded} seeded orders were used; runs may have stopped early (raise --orders)\n"
        ));
    }
    s
}

/// Initialises `pgbench`'s tables in the scratch database; false (and a note) when pgbench is
/// not installed or fails, and the runs then go without the pgbench baseline.
async fn pgbench_init(url: &str) -> bool {
    let init = Command::new("pgbench")
        .args(["-i", "-q", "-s", "10", url])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
    let ok = init.is_ok_and(|s| s.success());
    if !ok {
        eprintln!("pgbench -i failed or pgbench is not installed; skipping the pgbench baseline");
    }
    ok
}

/// The median `pgbench -N` rate among the runs at `clients`.
fn median_tps(pgbench: &[(usize, PgBench)], clients: usize) -> Option<f64> {
    let mut tps: Vec<f64> = pgbench
        .iter()
        .filter(|(c, _)| *c == clients)
        .map(|(_, p)| p.tps)
        .collect();
    median(&mut tps)
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// One line per closed-loop count run in several rounds: the median rate and ratios, and the
/// ratios' range, which shows how much the machine moved under the run.
fn round_summaries(runs: &[RunResult], baseline: f64) -> String {
    let mut s = String::new();
    let mut counts: Vec<usize> = runs
        .iter()
        .filter(|r| r.round.is_some_and(|(_, of)| of > 1))
        .map(|r| r.clients)
        .collect();
    counts.sort_unstable();
    counts.dedup();
    for c in counts {
        let rounds: Vec<&RunResult> = runs.iter().filter(|r| r.round.is_some() && r.clients == c).collect();
        let mut rates: Vec<f64> = rounds.iter().map(|r| r.achieved).collect();
        let mut ratios: Vec<f64> = rounds
            .iter()
            .filter_map(|r| r.pgbench_tps.map(|tps| r.achieved / tps.max(1e-9)))
            .collect();
        let rate = median(&mut rates).unwrap_or(0.0);
        s.push_str(&format!(
            "\ncreate payment, closed, {c} conns, {} rounds: median {rate:.0}/s, {:.2} × raw inserts",
            rounds.len(),
            rate / baseline.max(1e-9)
        ));
        if let Some(m) = median(&mut ratios) {
            s.push_str(&format!(
                "; × pgbench -N median {m:.2} (rounds {:.2}–{:.2})",
                ratios[0],
                ratios[ratios.len() - 1]
            ));
        }
        s.push('\n');
    }
    s
}

/// One `pgbench -N` run at `clients` on an initialised database.
async fn pgbench_run(url: &str, clients: usize, secs: u64) -> Option<PgBench> {
    eprintln!("baseline: pgbench -N -c {clients} -T {secs}");
    let before = postgres_cpu();
    let out = Command::new("pgbench")
        .args([
            "-N",
            "-n",
            "-c",
            &clients.to_string(),
            "-j",
            "2",
            "-T",
            &secs.to_string(),
            url,
        ])
        .output()
        .await
        .ok()?;
    let used = postgres_cpu_used(&before, &postgres_cpu());
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |prefix: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    };
    let tps = field("tps = ")?;
    let done = field("number of transactions actually processed: ").filter(|n| *n > 0.0);
    Some(PgBench {
        tps,
        db_cpu_ms_per_tx: done.map(|n| used * 1000.0 / n),
    })
}

/// The `pgbench -N` baseline: its rate, and the database's CPU per transaction.
#[derive(Clone, Copy)]
struct PgBench {
    tps: f64,
    db_cpu_ms_per_tx: Option<f64>,
}

/// The realtime run (`--realtime`), on a scratch SQLite database:
/// 1. baseline: Octopus notifications at `--notify-rate` completing `--watched-payments` pending
///    payments nobody watches (the notification's own answer time);
/// 2. `--watchers` SSE streams (merchant key) spread over another `--watched-payments` pending
///    payments, each connected and past its first (current-state) event;
/// 3. the same notifications for the watched payments; each watcher records when the
///    `completed` event arrives. Latency = that instant − the instant the notification was sent.
///
/// Server RSS is read before the watchers connect, once they are all connected, and at the end
/// (with the peak, VmHWM).
async fn realtime_bench(args: &BenchArgs) -> Result<String, String> {
    use tokio::sync::Semaphore;
    let dir = ScratchDir::new()?;
    let url = format!("sqlite://{}/bench.db?mode=rwc", dir.0.display());
    let merchant = MerchantId::parse("mer_00000000000000000000000000000001").ok_or("merchant id")?;
    let mut cfg = StoreConfig::new(&url);
    cfg.sqlite_synchronous = args.sqlite_synchronous.clone();
    let store = Store::connect(&cfg).await.map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    let hkd = Money::from_minor(10_000, Currency::Hkd).map_err(|e| e.to_string())?;
    let p = args.watched_payments.max(1);
    let seeded = store
        .seed_pending_payments_with_ids(&merchant, "octopus", "octopus_test", hkd, 2 * p)
        .await
        .map_err(|e| e.to_string())?;
    let (master_hex, secret_key) = bench_merchant(&store, &merchant).await?;
    drop(store);

    let port = free_port()?;
    let mut child = spawn_server(&url, port, &args.sqlite_synchronous, &master_hex, &dir.0.join("data"))?;
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&base).await?;
    let pid = child.id().ok_or("server exited")?;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {secret_key}").parse().map_err(|e| format!("{e}"))?,
    );
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .map_err(|e| e.to_string())?;
    let (baseline_set, watched_set) = seeded.split_at(p);
    let rate = args.notify_rate.max(1);

    // 1. Baseline: the same notifications, nobody watching.
    eprintln!("[realtime] baseline: {p} notifications at {rate}/s, no watchers");
    let refs: Arc<Vec<String>> = Arc::new(baseline_set.iter().map(|(_, r)| r.clone()).collect());
    let (_, baseline_acks, baseline_errors) = paced_notifications(&client, &base, &refs, rate).await;
    let rss_idle = proc_stats(pid).rss_kb;

    // 2. Watchers.
    let socketio = args.transport == "socketio";
    let kind = if socketio { "Socket.IO" } else { "SSE" };
    eprintln!(
        "[realtime] connecting {} {kind} watchers over {p} payments",
        args.watchers
    );
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Instant)>();
    let connecting = Arc::new(Semaphore::new(256));
    let ready = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let connect_start = Instant::now();
    for w in 0..args.watchers {
        let idx = w % p;
        let url = format!("{base}/api/payments/{}/events", watched_set[idx].0);
        let ws_url = format!(
            "{}/socket.io/?EIO=4&transport=websocket",
            base.replacen("http://", "ws://", 1)
        );
        let payment = watched_set[idx].0.to_string();
        let (client, done_tx, connecting, ready, failed) = (
            client.clone(),
            done_tx.clone(),
            connecting.clone(),
            ready.clone(),
            failed.clone(),
        );
        tokio::spawn(async move {
            let Ok(permit) = connecting.acquire_owned().await else {
                return;
            };
            if socketio {
                let mut permit = Some(permit);
                let joined = || {
                    ready.fetch_add(1, Ordering::Relaxed);
                    permit.take();
                };
                match socketio_watch(&ws_url, &payment, joined).await {
                    Ok(at) => {
                        let _ = done_tx.send((idx, at));
                    }
                    Err(_) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                return;
            }
            let Ok(mut resp) = client.get(url).send().await else {
                failed.fetch_add(1, Ordering::Relaxed);
                return;
            };
            let mut buf = String::new();
            let mut counted = false;
            let mut permit = Some(permit);
            while let Ok(Some(chunk)) = resp.chunk().await {
                buf.push_str(&String::from_utf8_lossy(&chunk));
                if !counted && buf.contains("\n\n") {
                    counted = true;
                    ready.fetch_add(1, Ordering::Relaxed);
                    permit.take();
                }
                if buf.contains("\"status\":\"completed\"") {
                    let _ = done_tx.send((idx, Instant::now()));
                    return;
                }
            }
            failed.fetch_add(1, Ordering::Relaxed);
        });
    }
    drop(done_tx);
    let connect_deadline = Instant::now() + Duration::from_secs(180);
    while ready.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) < args.watchers {
        if Instant::now() > connect_deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let connected = ready.load(Ordering::Relaxed);
    let connect_secs = connect_start.elapsed().as_secs_f64();
    let rss_watching = proc_stats(pid).rss_kb;

    // 3. The watched payments complete.
    eprintln!("[realtime] {connected} watchers connected in {connect_secs:.1} s; {p} notifications at {rate}/s");
    let refs: Arc<Vec<String>> = Arc::new(watched_set.iter().map(|(_, r)| r.clone()).collect());
    let (sent_at, loaded_acks, loaded_errors) = paced_notifications(&client, &base, &refs, rate).await;
    let mut lat = Vec::with_capacity(connected);
    let drain_deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while let Ok(Some((idx, at))) = tokio::time::timeout_at(drain_deadline, done_rx.recv()).await {
        if let Some(Some(sent)) = sent_at.get(idx) {
            lat.push(
                at.saturating_duration_since(*sent)
                    .as_micros()
                    .min(u128::from(u32::MAX)) as u32,
            );
        }
    }
    let end = proc_stats(pid);
    let peak_kb = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let _ = child.kill().await;
    drop(dir);

    let pct = |v: &mut Vec<u32>, q: f64| -> f64 {
        if v.is_empty() {
            return f64::NAN;
        }
        v.sort_unstable();
        let i = ((v.len() as f64 - 1.0) * q).round() as usize;
        f64::from(v[i]) / 1000.0
    };
    let (mut b, mut l, mut lat_all) = (baseline_acks, loaded_acks, lat);
    let mb = |kb: u64| kb as f64 / 1024.0;
    Ok(format!(
        "## Realtime (SQLite, {rate} notifications/s, {watchers} {kind} watchers over {p} payments)\n\n\
| measure | p50 ms | p99 ms | n | errors |\n|---|---|---|---|---|\n\
| baseline: notification answered, no watchers | {:.2} | {:.2} | {} | {} |\n\
| notification answered, {connected} watchers | {:.2} | {:.2} | {} | {} |\n\
| **notification sent → `completed` event at a watcher** | **{:.2}** | **{:.2}** | {} | {} watchers missed it |\n\n\
Watchers connected: {connected} of {watchers} in {connect_secs:.1} s ({} failed).  \n\
Server RSS: {:.0} MB before the watchers, {:.0} MB with them connected, {:.0} MB at the end, peak {:.0} MB.\n",
        pct(&mut b, 0.5),
        pct(&mut b, 0.99),
        b.len(),
        baseline_errors,
        pct(&mut l, 0.5),
        pct(&mut l, 0.99),
        l.len(),
        loaded_errors,
        pct(&mut lat_all, 0.5),
        pct(&mut lat_all, 0.99),
        lat_all.len(),
        connected.saturating_sub(lat_all.len()),
        failed.load(Ordering::Relaxed),
        mb(rss_idle),
        mb(rss_watching),
        mb(end.rss_kb),
        mb(peak_kb),
        watchers = args.watchers,
    ))
}

/// Sends one Octopus notification per reference at `rate` per second (open loop, each in its own
/// task). Returns when each was sent, each answer's latency (µs) and the error count.
async fn paced_notifications(
    client: &reqwest::Client,
    base: &str,
    references: &Arc<Vec<String>>,
    rate: u64,
) -> (Vec<Option<Instant>>, Vec<u32>, u64) {
    let op = notify_op(client, base, references);
    let n = references.len();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sent = vec![None; n];
    let mut tasks = Vec::with_capacity(n);
    for (i, slot) in sent.iter_mut().enumerate() {
        tick.tick().await;
        let op = op.clone();
        let start = Instant::now();
        *slot = Some(start);
        tasks.push(tokio::spawn(async move {
            let ok = op(i).await.unwrap_or(false);
            (ok, start.elapsed())
        }));
    }
    let (mut lat, mut errors) = (Vec::with_capacity(n), 0);
    for t in tasks {
        match t.await {
            Ok((true, d)) => lat.push(d.as_micros().min(u128::from(u32::MAX)) as u32),
            _ => errors += 1,
        }
    }
    (sent, lat, errors)
}

#[cfg(test)]
mod tests {
    use super::{PgBench, RunResult, median_tps, render};

    fn run(label: &str, clients: usize, achieved: f64) -> RunResult {
        RunResult {
            label: label.into(),
            clients,
            round: None,
            pgbench_tps: None,
            offered: None,
            achieved,
            ok: 1,
            errors: 0,
            p50: 1.0,
            p95: 1.0,
            p99: 1.0,
            cpu_ms_per_req: 0.1,
            db_cpu_ms_per_req: None,
            units_per_commit: None,
            rss_mb: 1.0,
        }
    }

    fn round(clients: usize, n: usize, of: usize, achieved: f64, pgbench_tps: f64) -> RunResult {
        RunResult {
            round: Some((n, of)),
            pgbench_tps: Some(pgbench_tps),
            ..run(&format!("create {clients}, round {n}/{of}"), clients, achieved)
        }
    }

    fn pg(clients: usize, tps: f64) -> (usize, PgBench) {
        (
            clients,
            PgBench {
                tps,
                db_cpu_ms_per_tx: None,
            },
        )
    }

    fn ratio(report: &str, label: &str) -> String {
        let line = report
            .lines()
            .find(|l| l.starts_with(&format!("| {label} |")))
            .unwrap_or_else(|| panic!("no row {label} in\n{report}"));
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        cells[cells.len() - 2].to_owned()
    }

    #[test]
    fn each_round_is_compared_with_the_pgbench_run_just_before_it() {
        // The machine slowed down between rounds: pgbench and jinliu alike.
        let pgbench = [pg(16, 5000.0), pg(16, 2500.0), pg(16, 4000.0), pg(64, 2000.0)];
        let runs = [
            round(16, 1, 3, 3000.0, 5000.0),
            round(16, 2, 3, 1250.0, 2500.0),
            round(16, 3, 3, 2800.0, 4000.0),
            round(64, 1, 1, 1800.0, 2000.0),
        ];
        let report = render("postgres", &runs, 1000.0, 16, &pgbench, 0, 1);
        assert_eq!(ratio(&report, "create 16, round 1/3"), "0.60");
        assert_eq!(ratio(&report, "create 16, round 2/3"), "0.50");
        assert_eq!(ratio(&report, "create 16, round 3/3"), "0.70");
        assert_eq!(ratio(&report, "create 64, round 1/1"), "0.90");
        assert!(
            report.contains(
                "create payment, closed, 16 conns, 3 rounds: median 2800/s, 2.80 × raw inserts; × pgbench -N median 0.60 (rounds 0.50–0.70)"
            ),
            "{report}"
        );
        // One round is its own summary.
        assert!(!report.contains("64 conns, 1 rounds"), "{report}");
        assert_eq!(
            report.matches("baseline: pgbench -N, 16 clients").count(),
            3,
            "{report}"
        );
    }

    #[test]
    fn other_runs_are_compared_with_the_median_pgbench_run_at_their_client_count() {
        let pgbench = [
            pg(16, 5000.0),
            pg(16, 2500.0),
            pg(16, 4000.0),
            pg(64, 2000.0),
            pg(64, 3000.0),
        ];
        assert_eq!(median_tps(&pgbench, 16), Some(4000.0));
        assert_eq!(median_tps(&pgbench, 64), Some(2500.0));
        // No pgbench run at that count: no ratio rather than one against another count.
        assert_eq!(median_tps(&pgbench, 8), None);
        let runs = [RunResult {
            pgbench_tps: median_tps(&pgbench, 8),
            ..run("notify 8", 8, 100.0)
        }];
        assert_eq!(
            ratio(&render("postgres", &runs, 1000.0, 16, &pgbench, 0, 1), "notify 8"),
            "-"
        );
    }
}
