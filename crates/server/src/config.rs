//! Typed configuration: defaults → `jinliu.toml` → `JINLIU_*` environment → command-line flags.
//!
//! Everything is validated once at start; a bad value stops the process with a message naming
//! the key. Secrets (the database URL may carry a password) print as `***`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use chrono_tz::Tz;
use jinliu_domain::{Currency, MerchantId};
use serde::Deserialize;

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
    /// The merchant every request acts for until accounts arrive (`JINLIU_MERCHANT_ID`).
    pub merchant_id: MerchantId,
    /// SQLite durability: FULL (default), NORMAL or OFF (`JINLIU_SQLITE_SYNCHRONOUS`).
    pub sqlite_synchronous: String,
    /// Group-commit writer tasks for PostgreSQL/MySQL (`JINLIU_DB_WRITERS`, default 4).
    pub db_writers: usize,
    /// Most units of work per commit (`JINLIU_DB_MAX_BATCH`, default 256).
    pub db_max_batch: usize,
    /// Whether the built-in sandbox providers are mounted (`JINLIU_SANDBOX`, default true).
    pub sandbox: bool,
    /// Log format: `text` or `json` (`JINLIU_LOG_FORMAT`).
    pub log_format: String,
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
        let mut default_providers: BTreeMap<Currency, String> = [
            (Currency::Twd, "kpay"),
            (Currency::Hkd, "octopus"),
            (Currency::Usd, "kpay"),
            (Currency::Cny, "kpay"),
            (Currency::Jpy, "kpay"),
        ]
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
            4,
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
        Ok(Config {
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

    /// The store settings derived from this configuration.
    pub fn store_config(&self) -> jinliu_store::StoreConfig {
        let mut c = jinliu_store::StoreConfig::new(self.effective_database_url());
        c.sqlite_synchronous = self.sqlite_synchronous.clone();
        c.writers = self.db_writers;
        c.max_batch = self.db_max_batch;
        c
    }
}

fn read_file(p: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(p).map_err(|e| err(&p.display().to_string(), e.to_string()))?;
    toml::from_str(&text).map_err(|e| err(&p.display().to_string(), e.to_string()))
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
