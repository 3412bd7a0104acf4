//! Typed configuration: defaults → `jinliu.toml` → `JINLIU_*` environment → command-line flags.
//!
//! Everything is validated once at start; a bad value stops the process with a message naming
//! the key. Secrets (the database URL may carry a password) print as `***`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use chrono_tz::Tz;
use jinliu_domain::{Currency, MerchantId};
use jinliu_providers::{CallPolicy, ProviderAccount};
use serde::Deserialize;
use std::time::Duration;

/// A value that must never reach a log.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    /// The secret itself; call only where it is used.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on (`JINLIU_LISTEN`, default 127.0.0.1:8080).
    pub listen: SocketAddr,
    /// Data directory for the embedded SQLite store (`JINLIU_DATA_DIR`, default ./data).
    pub data_dir: PathBuf,
    /// `DATABASE_URL`: wins over the data directory.
    pub database_url: Option<Secret>,
    /// Base of every URL jinliu hands out (`JINLIU_PUBLIC_URL`, default http://<listen>).
    pub public_url: String,
    /// Business time zone: what "a day" means in filters and reports (`JINLIU_TIMEZONE`).
    pub timezone: Tz,
    /// Currency of orders that name none (`JINLIU_DEFAULT_CURRENCY`, default TWD).
    pub default_currency: Currency,
    /// Largest payment in major units (`JINLIU_AMOUNT_LIMIT`, default 1,000,000).
    pub amount_limit: i64,
    /// How long a customer has to pay, seconds (`JINLIU_PAYMENT_TTL_SECS`, default 900).
    pub payment_ttl_secs: i64,
    /// Default provider per currency (`[default_providers]` in jinliu.toml).
    pub default_providers: BTreeMap<Currency, String>,
    /// The id of the demo merchant created on the first run (`JINLIU_MERCHANT_ID`); requests act
    /// for their credential's merchant.
    pub merchant_id: MerchantId,
    /// SQLite durability: FULL (default), NORMAL or OFF (`JINLIU_SQLITE_SYNCHRONOUS`).
    pub sqlite_synchronous: String,
    /// Group-commit writer tasks for PostgreSQL/MySQL (`JINLIU_DB_WRITERS`, default one per two
    /// CPUs, at least 1 and at most 4: [`default_db_writers`]).
    pub db_writers: usize,
    /// Most units of work per commit (`JINLIU_DB_MAX_BATCH`, default 256).
    pub db_max_batch: usize,
    /// Whether the built-in sandbox providers are mounted (`JINLIU_SANDBOX`, default true).
    pub sandbox: bool,
    /// Log format: `text` or `json` (`JINLIU_LOG_FORMAT`).
    pub log_format: String,
    /// Where the default test-mode provider accounts send their calls (`JINLIU_SANDBOX_URL`):
    /// by default this server's own sandbox; point several nodes at one shared `jinliu sandbox`.
    pub sandbox_url: Option<String>,
    /// Provider accounts from `[[provider_accounts]]`; the sandbox fills in a test account for
    /// every provider that has none.
    pub provider_accounts: Vec<AccountConfig>,
    /// Timeouts, retries and circuit breaker for provider calls (`[provider_calls]`,
    /// `JINLIU_PROVIDER_TIMEOUT_MS`, `JINLIU_PROVIDER_MAX_ATTEMPTS`).
    pub provider_calls: CallPolicy,
    /// The secret of seed 000's `X-Signature` notifications on `POST /payments/notify`
    /// (`JINLIU_NOTIFY_SECRET`); that path answers 401 while it is unset.
    pub notify_secret: Option<Secret>,
    /// Status sync: payments still open this long after creation are queried at the provider
    /// (`JINLIU_SYNC_AFTER_SECS`, default 60).
    pub sync_after_secs: i64,
    /// Status sync: how often a node looks for due work (`JINLIU_SYNC_INTERVAL_MS`, default 5000).
    pub sync_interval_ms: u64,
    /// The master key, 64 hex digits (`JINLIU_MASTER_KEY`); see `secrets`.
    pub master_key: Option<Secret>,
    /// Access token lifetime in seconds (`JINLIU_JWT_EXPIRES_IN`: `24h` — seed 004's default —
    /// `15m`, `3600s` or plain seconds).
    pub jwt_expires_in_secs: i64,
    /// The built checkout front end, served at `/pay/…`, `/assets/…` and `/js/…`
    /// (`JINLIU_WEB_DIR` / `--web-dir`, default `./web/dist`). Read from disk at request time, so
    /// `cargo build` needs no Node; when it is missing those paths say how to build it.
    pub web_dir: PathBuf,
    /// Where the audit sealer appends its signed checkpoints (`JINLIU_AUDIT_CHECKPOINTS`, default
    /// `<data-dir>/audit-checkpoints.jsonl`). Keep it off the database's disk, or ship it to a log
    /// sink: it is what proves the log's tail was not cut off.
    pub audit_checkpoints: PathBuf,
    /// How often the audit sealer chains new rows (`JINLIU_AUDIT_SEAL_INTERVAL_MS`, default 1000).
    pub audit_seal_interval_ms: u64,
    /// Least time between two checkpoints (`JINLIU_AUDIT_CHECKPOINT_SECS`, default 60; 0 = after
    /// every pass that sealed something).
    pub audit_checkpoint_secs: u64,
    /// Audit rows older than this are pruned, in whole checkpointed ranges
    /// (`JINLIU_AUDIT_RETENTION_DAYS`, default 365: PCI DSS 10.5.1 asks for 12 months).
    pub audit_retention_days: u64,
    /// Webhooks: how often a node sends due messages, when nothing wakes it sooner
    /// (`JINLIU_WEBHOOK_INTERVAL_MS`, default 1000).
    pub webhook_interval_ms: u64,
    /// Webhooks: how long one delivery attempt may take (`JINLIU_WEBHOOK_TIMEOUT_MS`, default 15000).
    pub webhook_timeout_ms: u64,
    /// Webhooks: whether test-mode endpoints may target loopback addresses, for a receiver on the
    /// developer's machine (`JINLIU_WEBHOOK_TEST_LOOPBACK`, default true). Live endpoints never may.
    pub webhook_test_loopback: bool,
    /// Webhooks: whether this node runs the relay and delivery worker (`JINLIU_WEBHOOK_WORKER`,
    /// default true); API-only nodes (and tests that step the worker themselves) turn it off.
    pub webhook_worker: bool,
    /// Webhooks: delivered and given-up messages (with their attempts) are deleted this many days
    /// after their last change (`JINLIU_WEBHOOK_RETENTION_DAYS`, default 30); pending ones stay.
    pub webhook_retention_days: u64,
    /// Redis for the realtime event bus across nodes (`REDIS_URL`, `redis://…`); unset: the bus
    /// is in-process and live updates reach only watchers connected to the node that made them.
    pub redis_url: Option<Secret>,
    /// The Redis pub/sub channel of the event bus (`JINLIU_REDIS_CHANNEL`, default
    /// `jinliu:events`); nodes of one installation share it.
    pub redis_channel: String,
}

/// One `[[provider_accounts]]` entry.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    /// Account id (`[a-z0-9_-]`, ≤ 64).
    pub id: String,
    /// Provider id.
    pub provider: String,
    /// `test` (default) or `live`.
    #[serde(default)]
    pub mode: Option<String>,
    /// The provider's base URL; defaults to the sandbox for test mode.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Provider-specific credentials.
    #[serde(default)]
    pub credentials: std::collections::HashMap<String, String>,
}

impl std::fmt::Debug for AccountConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut keys: Vec<&String> = self.credentials.keys().collect();
        keys.sort();
        f.debug_struct("AccountConfig")
            .field("id", &self.id)
            .field("provider", &self.provider)
            .field("mode", &self.mode)
            .field("base_url", &self.base_url)
            .field("credentials", &keys)
            .finish()
    }
}

/// `[provider_calls]` in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallsFile {
    timeout_ms: Option<u64>,
    max_attempts: Option<u32>,
    backoff_base_ms: Option<u64>,
    backoff_max_ms: Option<u64>,
    breaker_failures: Option<u32>,
    breaker_cooldown_ms: Option<u64>,
}

/// Overrides from the command line (highest precedence).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--config FILE`
    pub config_file: Option<PathBuf>,
    /// `--listen ADDR`
    pub listen: Option<String>,
    /// `--data-dir DIR`
    pub data_dir: Option<PathBuf>,
    /// `--database-url URL`
    pub database_url: Option<String>,
    /// `--web-dir DIR`
    pub web_dir: Option<PathBuf>,
}

/// A configuration value was wrong.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {key}: {message}")]
pub struct ConfigError {
    /// The key (file key or environment variable).
    pub key: String,
    /// What is wrong.
    pub message: String,
}

fn err(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.to_owned(),
        message: message.into(),
    }
}

/// The file format; every key optional, unknown keys refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    public_url: Option<String>,
    timezone: Option<String>,
    default_currency: Option<String>,
    amount_limit: Option<i64>,
    payment_ttl_secs: Option<i64>,
    default_providers: Option<BTreeMap<String, String>>,
    merchant_id: Option<String>,
    sqlite_synchronous: Option<String>,
    db_writers: Option<usize>,
    db_max_batch: Option<usize>,
    sandbox: Option<bool>,
    log_format: Option<String>,
    sandbox_url: Option<String>,
    provider_accounts: Option<Vec<AccountConfig>>,
    provider_calls: Option<CallsFile>,
    notify_secret: Option<String>,
    sync_after_secs: Option<i64>,
    sync_interval_ms: Option<u64>,
    jwt_expires_in: Option<String>,
    web_dir: Option<PathBuf>,
    webhook_interval_ms: Option<u64>,
    webhook_timeout_ms: Option<u64>,
    webhook_test_loopback: Option<bool>,
    webhook_worker: Option<bool>,
    redis_url: Option<String>,
    redis_channel: Option<String>,
}

impl Config {
    /// Loads from the real environment.
    pub fn load(o: &Overrides) -> Result<Config, ConfigError> {
        Config::load_from(o, |k| std::env::var(k).ok())
    }

    /// Loads with `env` as the environment (tests pass a map).
    pub fn load_from(o: &Overrides, env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let file_path = o
            .config_file
            .clone()
            .or_else(|| env("JINLIU_CONFIG").map(PathBuf::from));
        let file = match &file_path {
            Some(p) => read_file(p)?,
            None if Path::new("jinliu.toml").exists() => read_file(Path::new("jinliu.toml"))?,
            None => FileConfig::default(),
        };
        // Later sources win: file < environment < flags.
        let pick = |flag: Option<String>, var: &str, file: Option<String>| flag.or_else(|| env(var)).or(file);

        let listen_text =
            pick(o.listen.clone(), "JINLIU_LISTEN", file.listen).unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            err(
                "JINLIU_LISTEN",
                format!("{listen_text:?} is not an address like 127.0.0.1:8080"),
            )
        })?;
        let data_dir = o
            .data_dir
            .clone()
            .or_else(|| env("JINLIU_DATA_DIR").map(PathBuf::from))
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("data"));
        let database_url = o
            .database_url
            .clone()
            .or_else(|| env("DATABASE_URL"))
            .or_else(|| env("JINLIU_DATABASE_URL"))
            .or(file.database_url)
            .filter(|s| !s.is_empty());
        if let Some(url) = &database_url {
            jinliu_store::Backend::from_url(url).map_err(|e| err("DATABASE_URL", e.to_string()))?;
        }
        let public_url = pick(None, "JINLIU_PUBLIC_URL", file.public_url)
            .unwrap_or_else(|| format!("http://{listen}"))
            .trim_end_matches('/')
            .to_owned();
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            return Err(err("JINLIU_PUBLIC_URL", "must start with http:// or https://"));
        }
        let tz_text = pick(None, "JINLIU_TIMEZONE", file.timezone).unwrap_or_else(|| "Asia/Taipei".into());
        let timezone: Tz = tz_text
            .parse()
            .map_err(|_| err("JINLIU_TIMEZONE", format!("unknown IANA time zone {tz_text:?}")))?;
        let cur_text = pick(None, "JINLIU_DEFAULT_CURRENCY", file.default_currency).unwrap_or_else(|| "TWD".into());
        let default_currency: Currency = cur_text
            .parse()
            .map_err(|e| err("JINLIU_DEFAULT_CURRENCY", format!("{e}")))?;
        let amount_limit = parse_num(
            pick(None, "JINLIU_AMOUNT_LIMIT", file.amount_limit.map(|v| v.to_string())),
            "JINLIU_AMOUNT_LIMIT",
            1_000_000,
        )?;
        if !(1..=1_000_000_000_000).contains(&amount_limit) {
            return Err(err("JINLIU_AMOUNT_LIMIT", "must be between 1 and 10^12 major units"));
        }
        let payment_ttl_secs = parse_num(
            pick(
                None,
                "JINLIU_PAYMENT_TTL_SECS",
                file.payment_ttl_secs.map(|v| v.to_string()),
            ),
            "JINLIU_PAYMENT_TTL_SECS",
            900,
        )?;
        if !(60..=7 * 24 * 3600).contains(&payment_ttl_secs) {
            return Err(err("JINLIU_PAYMENT_TTL_SECS", "must be between 60 seconds and 7 days"));
        }
        let mut default_providers: BTreeMap<Currency, String> = [(Currency::Twd, "kpay"), (Currency::Hkd, "octopus")]
            .into_iter()
            .map(|(c, p)| (c, p.to_owned()))
            .collect();
        for (cur, provider) in file.default_providers.unwrap_or_default() {
            let c: Currency = cur.parse().map_err(|e| err("default_providers", format!("{e}")))?;
            if !jinliu_providers::PROVIDER_IDS.contains(&provider.as_str()) {
                return Err(err("default_providers", format!("unknown provider {provider:?}")));
            }
            default_providers.insert(c, provider);
        }
        let merchant_text = pick(None, "JINLIU_MERCHANT_ID", file.merchant_id)
            .unwrap_or_else(|| "mer_00000000000000000000000000000001".into());
        let merchant_id = MerchantId::parse(&merchant_text).ok_or_else(|| {
            err(
                "JINLIU_MERCHANT_ID",
                "must be mer_ followed by 32 lower-case hex digits",
            )
        })?;
        let sqlite_synchronous = pick(None, "JINLIU_SQLITE_SYNCHRONOUS", file.sqlite_synchronous)
            .unwrap_or_else(|| "FULL".into())
            .to_ascii_uppercase();
        if !["FULL", "NORMAL", "OFF", "EXTRA"].contains(&sqlite_synchronous.as_str()) {
            return Err(err("JINLIU_SQLITE_SYNCHRONOUS", "must be FULL, EXTRA, NORMAL or OFF"));
        }
        let db_writers = parse_num(
            pick(None, "JINLIU_DB_WRITERS", file.db_writers.map(|v| v.to_string())),
            "JINLIU_DB_WRITERS",
            default_db_writers(std::thread::available_parallelism().map_or(1, |n| n.get())),
        )?;
        let db_max_batch = parse_num(
            pick(None, "JINLIU_DB_MAX_BATCH", file.db_max_batch.map(|v| v.to_string())),
            "JINLIU_DB_MAX_BATCH",
            256,
        )?;
        if !(1..=64).contains(&db_writers) {
            return Err(err("JINLIU_DB_WRITERS", "must be 1–64"));
        }
        if !(1..=10_000).contains(&db_max_batch) {
            return Err(err("JINLIU_DB_MAX_BATCH", "must be 1–10000"));
        }
        let sandbox = match pick(None, "JINLIU_SANDBOX", file.sandbox.map(|b| b.to_string())).as_deref() {
            None | Some("true" | "1" | "yes") => true,
            Some("false" | "0" | "no") => false,
            Some(other) => return Err(err("JINLIU_SANDBOX", format!("{other:?} is not true or false"))),
        };
        let log_format = pick(None, "JINLIU_LOG_FORMAT", file.log_format).unwrap_or_else(|| "text".into());
        if !["text", "json"].contains(&log_format.as_str()) {
            return Err(err("JINLIU_LOG_FORMAT", "must be text or json"));
        }
        let sandbox_url = pick(None, "JINLIU_SANDBOX_URL", file.sandbox_url)
            .filter(|s| !s.is_empty())
            .map(|s| s.trim_end_matches('/').to_owned());
        if let Some(u) = &sandbox_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            return Err(err("JINLIU_SANDBOX_URL", "must start with http:// or https://"));
        }
        let calls = file.provider_calls.unwrap_or_default();
        let defaults = CallPolicy::default();
        let provider_calls = CallPolicy {
            timeout: Duration::from_millis(parse_num(
                pick(
                    None,
                    "JINLIU_PROVIDER_TIMEOUT_MS",
                    calls.timeout_ms.map(|v| v.to_string()),
                ),
                "JINLIU_PROVIDER_TIMEOUT_MS",
                defaults.timeout.as_millis() as u64,
            )?),
            max_attempts: parse_num(
                pick(
                    None,
                    "JINLIU_PROVIDER_MAX_ATTEMPTS",
                    calls.max_attempts.map(|v| v.to_string()),
                ),
                "JINLIU_PROVIDER_MAX_ATTEMPTS",
                defaults.max_attempts,
            )?,
            backoff_base: calls
                .backoff_base_ms
                .map(Duration::from_millis)
                .unwrap_or(defaults.backoff_base),
            backoff_max: calls
                .backoff_max_ms
                .map(Duration::from_millis)
                .unwrap_or(defaults.backoff_max),
            breaker_failures: calls.breaker_failures.unwrap_or(defaults.breaker_failures),
            breaker_cooldown: calls
                .breaker_cooldown_ms
                .map(Duration::from_millis)
                .unwrap_or(defaults.breaker_cooldown),
        };
        if provider_calls.timeout.is_zero() || !(1..=10).contains(&provider_calls.max_attempts) {
            return Err(err(
                "provider_calls",
                "timeout_ms must be positive and max_attempts 1–10",
            ));
        }
        let provider_accounts = file.provider_accounts.unwrap_or_default();
        let mut seen = std::collections::HashSet::new();
        for a in &provider_accounts {
            let ok_id = !a.id.is_empty()
                && a.id.len() <= 64
                && a.id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
            if !ok_id {
                return Err(err(
                    "provider_accounts",
                    format!("account id {:?} must be [a-z0-9_-]{{1,64}}", a.id),
                ));
            }
            if a.id.starts_with(jinliu_domain::ProviderAccountId::PREFIX) {
                return Err(err(
                    "provider_accounts",
                    format!("account id {:?}: the pa_ prefix is for merchants' own accounts", a.id),
                ));
            }
            if !seen.insert(a.id.clone()) {
                return Err(err("provider_accounts", format!("account id {:?} appears twice", a.id)));
            }
            if !jinliu_providers::PROVIDER_IDS.contains(&a.provider.as_str()) {
                return Err(err("provider_accounts", format!("unknown provider {:?}", a.provider)));
            }
            match a.mode.as_deref() {
                None | Some("test") => {}
                Some("live") if a.base_url.is_some() => {}
                Some("live") => {
                    return Err(err(
                        "provider_accounts",
                        format!("live account {:?} needs a base_url", a.id),
                    ));
                }
                Some(other) => return Err(err("provider_accounts", format!("mode {other:?} is not test or live"))),
            }
        }
        let notify_secret = pick(None, "JINLIU_NOTIFY_SECRET", file.notify_secret)
            .filter(|s| !s.is_empty())
            .map(Secret::new);
        let sync_after_secs = parse_num(
            pick(
                None,
                "JINLIU_SYNC_AFTER_SECS",
                file.sync_after_secs.map(|v| v.to_string()),
            ),
            "JINLIU_SYNC_AFTER_SECS",
            60,
        )?;
        let sync_interval_ms = parse_num(
            pick(
                None,
                "JINLIU_SYNC_INTERVAL_MS",
                file.sync_interval_ms.map(|v| v.to_string()),
            ),
            "JINLIU_SYNC_INTERVAL_MS",
            5_000,
        )?;
        if !(0..=86_400).contains(&sync_after_secs) || !(10..=3_600_000).contains(&sync_interval_ms) {
            return Err(err(
                "JINLIU_SYNC_AFTER_SECS",
                "sync_after_secs must be 0–86400 and sync_interval_ms 10–3600000",
            ));
        }
        let master_key = env("JINLIU_MASTER_KEY").filter(|s| !s.is_empty()).map(Secret::new);
        let jwt_text = pick(None, "JINLIU_JWT_EXPIRES_IN", file.jwt_expires_in).unwrap_or_else(|| "24h".into());
        let jwt_expires_in_secs = parse_duration_secs(&jwt_text)
            .filter(|s| (60..=30 * 86_400).contains(s))
            .ok_or_else(|| {
                err(
                    "JINLIU_JWT_EXPIRES_IN",
                    "must be a duration like 24h, 15m or 3600s, between 1 minute and 30 days",
                )
            })?;
        let web_dir = o
            .web_dir
            .clone()
            .or_else(|| env("JINLIU_WEB_DIR").filter(|s| !s.is_empty()).map(PathBuf::from))
            .or(file.web_dir)
            .unwrap_or_else(|| PathBuf::from("web/dist"));
        let audit_checkpoints = env("JINLIU_AUDIT_CHECKPOINTS")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| data_dir.join("audit-checkpoints.jsonl"));
        let audit_seal_interval_ms = parse_num(
            env("JINLIU_AUDIT_SEAL_INTERVAL_MS"),
            "JINLIU_AUDIT_SEAL_INTERVAL_MS",
            1_000,
        )?;
        let audit_checkpoint_secs = parse_num(env("JINLIU_AUDIT_CHECKPOINT_SECS"), "JINLIU_AUDIT_CHECKPOINT_SECS", 60)?;
        let audit_retention_days = parse_num(env("JINLIU_AUDIT_RETENTION_DAYS"), "JINLIU_AUDIT_RETENTION_DAYS", 365)?;
        if !(10..=60_000).contains(&audit_seal_interval_ms)
            || audit_checkpoint_secs > 86_400
            || !(1..=3_650).contains(&audit_retention_days)
        {
            return Err(err(
                "JINLIU_AUDIT_SEAL_INTERVAL_MS",
                "audit seal interval must be 10–60000 ms, checkpoint interval 0–86400 s, retention 1–3650 days",
            ));
        }
        let webhook_interval_ms = parse_num(
            pick(
                None,
                "JINLIU_WEBHOOK_INTERVAL_MS",
                file.webhook_interval_ms.map(|v| v.to_string()),
            ),
            "JINLIU_WEBHOOK_INTERVAL_MS",
            1_000,
        )?;
        if !(10..=3_600_000).contains(&webhook_interval_ms) {
            return Err(err("JINLIU_WEBHOOK_INTERVAL_MS", "must be 10–3600000"));
        }
        let webhook_timeout_ms = parse_num(
            pick(
                None,
                "JINLIU_WEBHOOK_TIMEOUT_MS",
                file.webhook_timeout_ms.map(|v| v.to_string()),
            ),
            "JINLIU_WEBHOOK_TIMEOUT_MS",
            15_000,
        )?;
        if !(100..=60_000).contains(&webhook_timeout_ms) {
            return Err(err("JINLIU_WEBHOOK_TIMEOUT_MS", "must be 100–60000"));
        }
        let webhook_test_loopback = match pick(
            None,
            "JINLIU_WEBHOOK_TEST_LOOPBACK",
            file.webhook_test_loopback.map(|b| b.to_string()),
        )
        .as_deref()
        {
            None | Some("true" | "1" | "yes") => true,
            Some("false" | "0" | "no") => false,
            Some(other) => {
                return Err(err(
                    "JINLIU_WEBHOOK_TEST_LOOPBACK",
                    format!("{other:?} is not true or false"),
                ));
            }
        };
        let webhook_worker = match pick(
            None,
            "JINLIU_WEBHOOK_WORKER",
            file.webhook_worker.map(|b| b.to_string()),
        )
        .as_deref()
        {
            None | Some("true" | "1" | "yes") => true,
            Some("false" | "0" | "no") => false,
            Some(other) => return Err(err("JINLIU_WEBHOOK_WORKER", format!("{other:?} is not true or false"))),
        };
        let redis_url = pick(None, "REDIS_URL", file.redis_url)
            .or_else(|| env("JINLIU_REDIS_URL"))
            .filter(|s| !s.is_empty());
        if let Some(url) = &redis_url
            && !(url.starts_with("redis://") || url.starts_with("rediss://") || url.starts_with("unix://"))
        {
            return Err(err("REDIS_URL", "must start with redis://, rediss:// or unix://"));
        }
        let redis_channel =
            pick(None, "JINLIU_REDIS_CHANNEL", file.redis_channel).unwrap_or_else(|| "jinliu:events".into());
        if redis_channel.is_empty() || redis_channel.len() > 200 {
            return Err(err("JINLIU_REDIS_CHANNEL", "must be 1–200 characters"));
        }
        let webhook_retention_days = parse_num(
            env("JINLIU_WEBHOOK_RETENTION_DAYS"),
            "JINLIU_WEBHOOK_RETENTION_DAYS",
            30,
        )?;
        if !(1..=3_650).contains(&webhook_retention_days) {
            return Err(err("JINLIU_WEBHOOK_RETENTION_DAYS", "must be 1–3650"));
        }
        Ok(Config {
            webhook_retention_days,
            web_dir,
            audit_checkpoints,
            audit_seal_interval_ms,
            audit_checkpoint_secs,
            audit_retention_days,
            webhook_worker,
            webhook_interval_ms,
            webhook_timeout_ms,
            webhook_test_loopback,
            redis_url: redis_url.map(Secret::new),
            redis_channel,
            jwt_expires_in_secs,
            master_key,
            sandbox_url,
            provider_accounts,
            provider_calls,
            notify_secret,
            sync_after_secs,
            sync_interval_ms,
            listen,
            data_dir,
            database_url: database_url.map(Secret::new),
            public_url,
            timezone,
            default_currency,
            amount_limit,
            payment_ttl_secs,
            default_providers,
            merchant_id,
            sqlite_synchronous,
            db_writers,
            db_max_batch,
            sandbox,
            log_format,
        })
    }

    /// The database URL in use: `DATABASE_URL`, else a SQLite file in the data directory.
    pub fn effective_database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.expose().to_owned(),
            None => format!("sqlite://{}?mode=rwc", self.data_dir.join("jinliu.db").display()),
        }
    }

    /// The provider accounts in force: the configured ones, plus — when a sandbox is reachable
    /// (mounted here, or `JINLIU_SANDBOX_URL`) — a test account `<provider>_test` for every provider
    /// without a test account of its own, using the sandbox's test merchant.
    pub fn accounts(&self) -> Vec<ProviderAccount> {
        let sandbox_base = self.sandbox_base();
        let mut out: Vec<ProviderAccount> = Vec::new();
        for a in &self.provider_accounts {
            let livemode = a.mode.as_deref() == Some("live");
            let base_url = a
                .base_url
                .clone()
                .or_else(|| sandbox_base.as_ref().map(|b| format!("{b}/sandbox/{}", a.provider)))
                .unwrap_or_default();
            let mut credentials = a.credentials.clone();
            if credentials.is_empty() && !livemode {
                credentials = jinliu_providers::sandbox_credentials(&a.provider);
            }
            out.push(self.account(a.id.clone(), a.provider.clone(), livemode, base_url, credentials));
        }
        if let Some(base) = sandbox_base {
            for provider in jinliu_providers::PROVIDER_IDS {
                if out.iter().any(|a| a.provider == provider && !a.livemode) {
                    continue;
                }
                out.push(self.account(
                    format!("{provider}_test"),
                    provider.to_owned(),
                    false,
                    format!("{base}/sandbox/{provider}"),
                    jinliu_providers::sandbox_credentials(provider),
                ));
            }
        }
        out
    }

    /// Where test-mode accounts without a base URL of their own send their calls: the shared
    /// sandbox of `JINLIU_SANDBOX_URL`, else this server's own when it is mounted.
    pub fn sandbox_base(&self) -> Option<String> {
        self.sandbox_url
            .clone()
            .or_else(|| self.sandbox.then(|| self.public_url.clone()))
            .map(|b| b.trim_end_matches('/').to_owned())
    }

    /// A provider account with this server's notify URL and call policy.
    pub fn account(
        &self,
        id: String,
        provider: String,
        livemode: bool,
        base_url: String,
        credentials: std::collections::HashMap<String, String>,
    ) -> ProviderAccount {
        ProviderAccount {
            notify_url: format!("{}/api/payments/notify/{provider}/{id}", self.public_url),
            id,
            provider,
            livemode,
            base_url: base_url.trim_end_matches('/').to_owned(),
            credentials,
            policy: self.provider_calls.clone(),
        }
    }

    /// The store settings derived from this configuration.
    pub fn store_config(&self) -> jinliu_store::StoreConfig {
        let mut c = jinliu_store::StoreConfig::new(self.effective_database_url());
        c.sqlite_synchronous = self.sqlite_synchronous.clone();
        c.writers = self.db_writers;
        c.max_batch = self.db_max_batch;
        c.sync_delay_ms = self.sync_after_secs * 1000;
        c
    }
}

/// `24h`, `15m`, `3600s`, `3600` → seconds.
fn parse_duration_secs(text: &str) -> Option<i64> {
    let t = text.trim();
    let (num, unit) = match t.char_indices().last()? {
        (i, 'h') => (&t[..i], 3600),
        (i, 'm') => (&t[..i], 60),
        (i, 's') => (&t[..i], 1),
        (i, 'd') => (&t[..i], 86_400),
        _ => (t, 1),
    };
    num.parse::<i64>().ok()?.checked_mul(unit)
}

fn read_file(p: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(p).map_err(|e| err(&p.display().to_string(), e.to_string()))?;
    toml::from_str(&text).map_err(|e| err(&p.display().to_string(), e.to_string()))
}

/// The default number of group-commit writer tasks for `cpus` CPUs: one per two, at least 1 and
/// at most 4.
///
/// Several writers overlap their batches' round trips to the database; one writer makes bigger
/// batches, so fewer statements and commits per unit of work. Where the CPUs, not the round
/// trips, bound the rate (a small machine, often with the database beside jinliu), the bigger
/// batches win: on two CPUs one writer reached a median 0.56 × `pgbench -N` at 16 connections
/// where four reached 0.50 (+12 %), with less CPU per payment in jinliu and in PostgreSQL
/// (docs/performance.md, run R). Four stays the most, as before, for machines where round trips
/// dominate.
pub fn default_db_writers(cpus: usize) -> usize {
    (cpus / 2).clamp(1, 4)
}

fn parse_num<T: std::str::FromStr>(v: Option<String>, key: &str, default: T) -> Result<T, ConfigError> {
    match v {
        Some(s) => s.trim().parse().map_err(|_| err(key, format!("{s:?} is not a number"))),
        None => Ok(default),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn a_small_machine_gets_one_writer_and_a_big_one_four() {
        let by_cpus: Vec<usize> = [1, 2, 3, 4, 6, 8, 64].into_iter().map(default_db_writers).collect();
        assert_eq!(by_cpus, [1, 1, 1, 2, 3, 4, 4]);
    }

    fn load(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Config::load_from(&Overrides::default(), |k| map.get(k).cloned())
    }

    #[test]
    fn defaults_describe_a_local_sqlite_server() {
        let c = load(&[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.public_url, "http://127.0.0.1:8080");
        assert_eq!(c.timezone, chrono_tz::Asia::Taipei);
        assert!(c.effective_database_url().starts_with("sqlite://data/"));
        assert_eq!(
            c.default_providers.get(&Currency::Hkd).map(String::as_str),
            Some("octopus")
        );
    }

    #[test]
    fn the_web_dir_defaults_to_web_dist_and_the_flag_wins_over_the_environment() {
        let c = load(&[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.web_dir, PathBuf::from("web/dist"));
        let c = load(&[("JINLIU_WEB_DIR", "/srv/jinliu/web")]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.web_dir, PathBuf::from("/srv/jinliu/web"));
        let o = Overrides {
            web_dir: Some(PathBuf::from("built")),
            ..Overrides::default()
        };
        let c = Config::load_from(&o, |k| (k == "JINLIU_WEB_DIR").then(|| "/srv/jinliu/web".to_owned()))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.web_dir, PathBuf::from("built"));
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let e = load(&[("JINLIU_TIMEZONE", "Mars/Base")]).err().map(|e| e.key);
        assert_eq!(e.as_deref(), Some("JINLIU_TIMEZONE"));
        let e = load(&[("DATABASE_URL", "oracle://x")]).err().map(|e| e.key);
        assert_eq!(e.as_deref(), Some("DATABASE_URL"));
    }

    #[test]
    fn flags_win_over_the_environment_and_database_url_wins_over_the_data_dir() {
        let o = Overrides {
            listen: Some("127.0.0.1:9999".into()),
            ..Overrides::default()
        };
        let c = Config::load_from(&o, |k| match k {
            "JINLIU_LISTEN" => Some("127.0.0.1:1111".into()),
            "DATABASE_URL" => Some("postgres://u:pw@h/db".into()),
            _ => None,
        })
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.listen.port(), 9999);
        assert_eq!(c.effective_database_url(), "postgres://u:pw@h/db");
        assert!(
            !format!("{c:?}").contains("pw"),
            "the database URL is redacted in Debug"
        );
    }
}
