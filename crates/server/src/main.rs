//! The `jinliu` command: `serve` (default), `migrate`, `bench`, `openapi`, `routes`, `sandbox`,
//! and the admin commands `merchant`, `key`, `user` and `webhook`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use jinliu_server::config::{Config, Overrides};

#[derive(Parser)]
#[command(
    name = "jinliu",
    version,
    about = "Self-hosted payment platform for Taiwan and Hong Kong merchants"
)]
struct Cli {
    /// Configuration file (default ./jinliu.toml when present).
    #[arg(long, global = true, env = "JINLIU_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve {
        /// Address to listen on [env: JINLIU_LISTEN] [default: 127.0.0.1:8080].
        #[arg(long)]
        listen: Option<String>,
        /// Data directory for the embedded SQLite store [env: JINLIU_DATA_DIR] [default: ./data].
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Database URL; wins over --data-dir [env: DATABASE_URL].
        #[arg(long)]
        database_url: Option<String>,
        /// The built checkout front end (`make web`) [env: JINLIU_WEB_DIR] [default: ./web/dist].
        #[arg(long)]
        web_dir: Option<PathBuf>,
    },
    /// Apply database migrations and exit.
    Migrate {
        /// Data directory [env: JINLIU_DATA_DIR].
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Database URL; wins over --data-dir [env: DATABASE_URL].
        #[arg(long)]
        database_url: Option<String>,
    },
    /// Measure payment creation throughput and latency (see docs/performance.md).
    Bench(jinliu_server::bench::BenchArgs),
    /// Print the OpenAPI description (YAML).
    Openapi,
    /// Print docs/security.md: the access model and the route table it is generated from.
    Routes,
    /// Manage merchants.
    #[command(subcommand)]
    Merchant(MerchantCmd),
    /// Manage API keys.
    #[command(subcommand)]
    Key(KeyCmd),
    /// Manage users.
    #[command(subcommand)]
    User(UserCmd),
    /// The key ring that encrypts secrets at rest and signs access tokens (not API keys: see `key`).
    #[command(subcommand)]
    Keys(KeysCmd),
    /// The tamper-evident audit log.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Manage a merchant's webhook endpoints.
    #[command(subcommand)]
    Webhook(WebhookCmd),
    /// Run only the provider sandboxes (KPay, TPay, Octopus, ECPay), e.g. one shared by several
    /// jinliu nodes that set JINLIU_SANDBOX_URL to it.
    Sandbox {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: String,
        /// The URL customers and jinliu reach it at [default: http://<listen>].
        #[arg(long)]
        public_url: Option<String>,
    },
}

/// Where the admin commands find the database.
#[derive(clap::Args, Clone)]
struct DbArgs {
    /// Data directory [env: JINLIU_DATA_DIR].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Database URL; wins over --data-dir [env: DATABASE_URL].
    #[arg(long)]
    database_url: Option<String>,
}

#[derive(Subcommand)]
enum MerchantCmd {
    /// Create a merchant.
    Create {
        /// Display name.
        #[arg(long)]
        name: String,
        /// Default currency.
        #[arg(long, default_value = "TWD")]
        currency: String,
        /// IANA time zone.
        #[arg(long, default_value = "Asia/Taipei")]
        timezone: String,
        /// Print the merchant as one JSON object.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Walk the chain and compare it with the checkpoint file; exits 1 at the first edited,
    /// deleted, reordered or forged row, or a truncated tail.
    Verify {
        /// The checkpoint file [env: JINLIU_AUDIT_CHECKPOINTS] [default: <data-dir>/audit-checkpoints.jsonl].
        #[arg(long)]
        checkpoints: Option<PathBuf>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Print every row as one JSON object per line, oldest first (archive before retention).
    Export {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Chain the rows committed so far and write a checkpoint now (a running server does this
    /// every second; this is for a stopped one).
    Seal {
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Subcommand)]
enum KeyCmd {
    /// Create an API key (its text is printed once).
    Create {
        /// The merchant (`mer_…`).
        #[arg(long)]
        merchant: String,
        /// A live-mode key (default: test mode).
        #[arg(long)]
        live: bool,
        /// A publishable key for browser code (default: secret).
        #[arg(long)]
        publishable: bool,
        /// Restrict a secret key to these permissions (comma-separated, e.g. orders:read,payments:read).
        #[arg(long, value_delimiter = ',')]
        permissions: Option<Vec<String>>,
        /// A note.
        #[arg(long)]
        description: Option<String>,
        /// Print the key as one JSON object.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Revoke an API key now.
    Revoke {
        /// The merchant (`mer_…`).
        #[arg(long)]
        merchant: String,
        /// The key id (`key_…`).
        #[arg(long)]
        key: String,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Subcommand)]
enum UserCmd {
    /// Create a user (password: at least 12 characters, letters and digits, not a common one).
    Create {
        /// Login email.
        #[arg(long)]
        email: String,
        /// Password [env: JINLIU_NEW_USER_PASSWORD], so it need not appear in the shell history.
        #[arg(long, env = "JINLIU_NEW_USER_PASSWORD", hide_env_values = true)]
        password: String,
        /// platform_admin, merchant_admin, finance, support or viewer.
        #[arg(long)]
        role: String,
        /// The merchant (`mer_…`), for every role but platform_admin.
        #[arg(long)]
        merchant: Option<String>,
        /// Print the user as one JSON object.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
}

/// The merchant and mode a webhook command acts on.
#[derive(clap::Args, Clone)]
struct WebhookScope {
    /// The merchant (`mer_…`).
    #[arg(long)]
    merchant: String,
    /// Live-mode endpoints (default: test mode).
    #[arg(long)]
    live: bool,
}

#[derive(Subcommand)]
enum KeysCmd {
    /// Add a new data key and JWT signing key, then re-encrypt every stored secret (TOTP seeds,
    /// notify secrets, webhook secrets, provider credentials) under the new data key.
    Rotate {
        /// Seconds to wait between adding the keys and re-encrypting, so that every running node
        /// has loaded the new key (nodes reload every 15 s); 0 when no node is running.
        #[arg(long, default_value_t = 20)]
        wait_secs: u64,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// List the key ring (ids, purposes and dates; never the keys).
    List {
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Subcommand)]
enum WebhookCmd {
    /// Create an endpoint (its signing secret is printed once).
    Create {
        #[command(flatten)]
        scope: WebhookScope,
        /// Where to POST events.
        #[arg(long)]
        url: String,
        /// Only these event types (comma-separated); default all.
        #[arg(long, value_delimiter = ',')]
        events: Option<Vec<String>>,
        /// A note.
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// List endpoints (as JSON lines, without secrets).
    List {
        #[command(flatten)]
        scope: WebhookScope,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Delete an endpoint with its messages.
    Delete {
        #[command(flatten)]
        scope: WebhookScope,
        /// The endpoint (`ep_…`).
        #[arg(long)]
        id: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Rotate an endpoint's secret (the new one is printed once; the old one signs 24 h more).
    Rotate {
        #[command(flatten)]
        scope: WebhookScope,
        /// The endpoint (`ep_…`).
        #[arg(long)]
        id: String,
        #[command(flatten)]
        db: DbArgs,
    },
}

/// Runs a `jinliu webhook` command through the same service as the HTTP routes.
async fn webhook_command(overrides: &Overrides, cmd: WebhookCmd) -> Result<(), String> {
    use jinliu_server::webhooks::endpoints::{self, Ctx, EndpointInput};
    let (scope, db) = match &cmd {
        WebhookCmd::Create { scope, db, .. }
        | WebhookCmd::List { scope, db }
        | WebhookCmd::Delete { scope, db, .. }
        | WebhookCmd::Rotate { scope, db, .. } => (scope.clone(), db.clone()),
    };
    if scope.live && std::env::var("JINLIU_MASTER_KEY").map_or(true, |k| k.is_empty()) {
        return Err("live endpoints need JINLIU_MASTER_KEY (a generated key file is for test mode only)".into());
    }
    let test_loopback = Config::load(overrides)
        .map_err(|e| e.to_string())?
        .webhook_test_loopback;
    let (store, _, sealer) = admin(overrides, db).await?;
    let merchant = jinliu_domain::MerchantId::parse(&scope.merchant).ok_or("--merchant must be a mer_ id")?;
    store
        .merchant(&merchant)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no merchant {merchant}"))?;
    let scope = jinliu_store::Scope {
        merchant_id: merchant,
        livemode: scope.live,
    };
    let ctx = Ctx {
        store: &store,
        sealer: &sealer,
        test_loopback,
    };
    let refused = |e: jinliu_server::http::error::ApiError| format!("{}: {}", e.code, e.message);
    let endpoint_id =
        |id: &str| jinliu_domain::EndpointId::parse(id).ok_or_else(|| "--id must be an ep_ id".to_owned());
    let now = chrono::Utc::now();
    match cmd {
        WebhookCmd::Create {
            url,
            events,
            description,
            ..
        } => {
            let input = EndpointInput {
                url,
                events,
                description,
            };
            let (ep, secret) = endpoints::create(ctx, &scope, input, now, None)
                .await
                .map_err(refused)?;
            println!(
                "created webhook endpoint {} -> {}\nsigning secret (shown once): {secret}",
                ep.id, ep.url
            );
        }
        WebhookCmd::List { .. } => {
            for ep in store.webhook_endpoints(&scope).await.map_err(|e| e.to_string())? {
                println!(
                    "{}",
                    serde_json::json!({ "id": ep.id, "url": ep.url, "status": ep.status.as_str(),
                        "events": ep.events.as_ref().map(|l| l.iter().map(|t| t.as_str()).collect::<Vec<_>>()),
                        "disabledReason": ep.disabled_reason, "livemode": ep.livemode })
                );
            }
        }
        WebhookCmd::Delete { id, .. } => {
            let id = endpoint_id(&id)?;
            endpoints::delete(ctx, &scope, &id).await.map_err(refused)?;
            println!("deleted {id}");
        }
        WebhookCmd::Rotate { id, .. } => {
            let id = endpoint_id(&id)?;
            let (ep, secret) = endpoints::rotate(ctx, &scope, &id, now).await.map_err(refused)?;
            println!(
                "rotated the secret of {}; the previous one signs for 24 hours more\nnew signing secret (shown once): {secret}",
                ep.id
            );
        }
    }
    Ok(())
}

/// Opens the store (migrated) and the key hasher, for the admin commands.
async fn admin(
    overrides: &Overrides,
    db: DbArgs,
) -> Result<
    (
        jinliu_store::Store,
        jinliu_server::auth::Auth,
        jinliu_server::secrets::Sealer,
    ),
    String,
> {
    let overrides = Overrides {
        data_dir: db.data_dir,
        database_url: db.database_url,
        ..overrides.clone()
    };
    let config = Config::load(&overrides).map_err(|e| e.to_string())?;
    let store = jinliu_server::open_store(&config).await.map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    let (master, _) = jinliu_server::secrets::MasterKey::load(&config).map_err(|e| e.to_string())?;
    let (auth, sealer) = (
        jinliu_server::auth::Auth::new(&master),
        jinliu_server::secrets::Sealer::new(&master),
    );
    jinliu_server::keyring::load(&store, &sealer, &auth, chrono::Utc::now())
        .await
        .map_err(|e| e.to_string())?;
    Ok((store, auth, sealer))
}

/// The store, audit keys and configuration for the `jinliu audit` commands.
async fn audit_admin(
    overrides: &Overrides,
    db: DbArgs,
) -> Result<(jinliu_store::Store, jinliu_server::audit::AuditKeys, Config), String> {
    let overrides = Overrides {
        data_dir: db.data_dir,
        database_url: db.database_url,
        ..overrides.clone()
    };
    let config = Config::load(&overrides).map_err(|e| e.to_string())?;
    let store = jinliu_server::open_store(&config).await.map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    let (master, _) = jinliu_server::secrets::MasterKey::load(&config).map_err(|e| e.to_string())?;
    Ok((store, jinliu_server::audit::AuditKeys::new(&master), config))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("jinliu: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Whatever a command changes is audited as done at the command line.
    let command = jinliu_store::with_audit_context(jinliu_store::audit::cli_context(), run(cli));
    match runtime.block_on(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("jinliu: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let mut overrides = Overrides {
        config_file: cli.config,
        ..Overrides::default()
    };
    match cli.command.unwrap_or(Command::Serve {
        listen: None,
        data_dir: None,
        database_url: None,
        web_dir: None,
    }) {
        Command::Serve {
            listen,
            data_dir,
            database_url,
            web_dir,
        } => {
            overrides.web_dir = web_dir;
            overrides.listen = listen;
            overrides.data_dir = data_dir;
            overrides.database_url = database_url;
            let config = Config::load(&overrides).map_err(|e| e.to_string())?;
            jinliu_server::telemetry::init(&config.log_format);
            let listener = tokio::net::TcpListener::bind(config.listen)
                .await
                .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
            let mut app = jinliu_server::build(config.clone()).await.map_err(|e| e.to_string())?;
            // The Prometheus recorder is process-wide by the metrics crate's design; `serve`
            // installs it once and hands the handle to the /metrics route.
            app.metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full("jinliu_provider_request_seconds".into()),
                    &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0],
                )
                .and_then(|b| b.install_recorder())
                .map_err(|e| tracing::warn!(error = %e, "metrics disabled"))
                .ok();
            tracing::info!(
                listen = %config.listen,
                public_url = %config.public_url,
                database = app.store.backend().name(),
                sandbox = config.sandbox,
                "jinliu is listening on http://{}",
                config.listen
            );
            eprintln!(
                "jinliu listening on http://{} (database: {})",
                config.listen,
                app.store.backend().name()
            );
            jinliu_server::serve(listener, app, shutdown_signal())
                .await
                .map_err(|e| e.to_string())
        }
        Command::Migrate { data_dir, database_url } => {
            overrides.data_dir = data_dir;
            overrides.database_url = database_url;
            let config = Config::load(&overrides).map_err(|e| e.to_string())?;
            let store = jinliu_server::open_store(&config).await.map_err(|e| e.to_string())?;
            store.migrate().await.map_err(|e| e.to_string())?;
            eprintln!("migrations applied ({})", store.backend().name());
            Ok(())
        }
        Command::Bench(args) => jinliu_server::bench::run(args).await,
        Command::Openapi => {
            print!("{}", jinliu_server::http::openapi::yaml());
            Ok(())
        }
        Command::Routes => {
            print!("{}", jinliu_server::http::routes::security_doc());
            Ok(())
        }
        Command::Merchant(MerchantCmd::Create {
            name,
            currency,
            timezone,
            json,
            db,
        }) => {
            let (store, _, _) = admin(&overrides, db).await?;
            let now = chrono::Utc::now();
            let m = jinliu_domain::Merchant::new(
                jinliu_domain::MerchantId::generate(),
                name,
                currency.parse().map_err(|e| format!("--currency: {e}"))?,
                timezone
                    .parse::<chrono_tz::Tz>()
                    .map_err(|_| format!("--timezone: unknown IANA zone {timezone:?}"))?
                    .name(),
                now,
            );
            store.create_merchant(&m).await.map_err(|e| e.to_string())?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "id": m.id, "name": m.name, "defaultCurrency": m.default_currency.code(), "timezone": m.timezone })
                );
            } else {
                println!("created merchant {} ({})", m.id, m.name);
            }
            Ok(())
        }
        Command::Key(KeyCmd::Create {
            merchant,
            live,
            publishable,
            permissions,
            description,
            json,
            db,
        }) => {
            if live && std::env::var("JINLIU_MASTER_KEY").map_or(true, |k| k.is_empty()) {
                return Err("live keys need JINLIU_MASTER_KEY (a generated key file is for test mode only)".into());
            }
            let (store, auth, _) = admin(&overrides, db).await?;
            let merchant = jinliu_domain::MerchantId::parse(&merchant).ok_or("--merchant must be a mer_ id")?;
            store
                .merchant(&merchant)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no merchant {merchant}"))?;
            let kind = if publishable {
                jinliu_domain::ApiKeyKind::Publishable
            } else {
                jinliu_domain::ApiKeyKind::Secret
            };
            let permissions = permissions
                .map(|list| {
                    list.iter()
                        .map(|p| {
                            jinliu_domain::Permission::parse(p)
                                .filter(|p| !p.is_platform_only())
                                .ok_or_else(|| format!("--permissions: {p:?} is not a merchant permission"))
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
                .transpose()?;
            if publishable && permissions.is_some() {
                return Err("--permissions applies to secret keys only".into());
            }
            let (key, text) = auth
                .issue_key(
                    &store,
                    &merchant,
                    kind,
                    live,
                    permissions,
                    description,
                    chrono::Utc::now(),
                )
                .await
                .map_err(|e| e.to_string())?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "id": key.id, "merchantId": key.merchant_id, "kind": key.kind.as_str(),
                        "livemode": key.livemode, "prefix": key.prefix, "secret": text,
                        "permissions": key.permissions.as_ref().map(|ps| ps.iter().map(|p| p.as_str()).collect::<Vec<_>>()) })
                );
            } else {
                println!(
                    "created {} key {} for {}:\n{text}\n(shown once; jinliu keeps only its hash)",
                    kind.as_str(),
                    key.id,
                    key.merchant_id
                );
            }
            Ok(())
        }
        Command::User(UserCmd::Create {
            email,
            password,
            role,
            merchant,
            json,
            db,
        }) => {
            let (store, _, sealer) = admin(&overrides, db).await?;
            let role = jinliu_domain::Role::parse(&role).ok_or_else(|| format!("--role: unknown role {role:?}"))?;
            let merchant = merchant
                .map(|m| jinliu_domain::MerchantId::parse(&m).ok_or("--merchant must be a mer_ id"))
                .transpose()?;
            if let Some(m) = &merchant {
                store
                    .merchant(m)
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("no merchant {m}"))?;
            }
            let (user, totp) = jinliu_server::users::create_user(
                &store,
                &sealer,
                &email,
                &password,
                role,
                merchant,
                chrono::Utc::now(),
            )
            .await
            .map_err(|e| e.to_string())?;
            if json {
                let mut v = jinliu_server::users::user_view(&user);
                v["totpSecret"] = serde_json::json!(totp);
                println!("{v}");
            } else {
                println!("created {} {} ({})", user.role.as_str(), user.email, user.id);
                if let Some(t) = totp {
                    println!("TOTP secret (add it to an authenticator app; shown once): {t}");
                }
            }
            Ok(())
        }
        Command::Key(KeyCmd::Revoke { merchant, key, db }) => {
            let (store, _, _) = admin(&overrides, db).await?;
            let merchant = jinliu_domain::MerchantId::parse(&merchant).ok_or("--merchant must be a mer_ id")?;
            let key = jinliu_domain::ApiKeyId::parse(&key).ok_or("--key must be a key_ id")?;
            if store
                .revoke_api_key(&merchant, &key, chrono::Utc::now())
                .await
                .map_err(|e| e.to_string())?
            {
                println!("revoked {key}; nodes stop accepting it within 30 s");
                Ok(())
            } else {
                Err(format!("{merchant} has no active key {key}"))
            }
        }
        Command::Audit(AuditCmd::Verify { checkpoints, db }) => {
            let (store, keys, config) = audit_admin(&overrides, db).await?;
            let path = checkpoints.unwrap_or(config.audit_checkpoints);
            let v = jinliu_server::audit::verify(&store, &keys, &path)
                .await
                .map_err(|e| e.to_string())?;
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            match &v.report.problem {
                None => {
                    eprintln!(
                        "audit log intact: {} sealed rows checked against {} checkpoints ({} not sealed yet)",
                        v.report.checked, v.checkpoints, v.report.unsealed
                    );
                    Ok(())
                }
                Some(p) => Err(format!("audit log damaged: {}", p.message)),
            }
        }
        Command::Audit(AuditCmd::Export { db }) => {
            let (store, _, _) = audit_admin(&overrides, db).await?;
            let mut after: Option<String> = None;
            loop {
                let page = store
                    .audit_page(after.as_deref(), 1_000)
                    .await
                    .map_err(|e| e.to_string())?;
                let Some(last) = page.last() else { break };
                after = Some(last.id.clone());
                for row in &page {
                    println!("{}", serde_json::to_string(row).unwrap_or_default());
                }
            }
            Ok(())
        }
        Command::Audit(AuditCmd::Seal { db }) => {
            let (store, keys, config) = audit_admin(&overrides, db).await?;
            let owner = format!("cli-{}", uuid::Uuid::now_v7().simple());
            let pass = jinliu_server::audit::seal_now(&store, &keys, &config, &owner)
                .await
                .map_err(|e| e.to_string())?;
            if !pass.leader {
                return Err("a running jinliu node holds the sealer lease; it seals every second".into());
            }
            eprintln!("sealed {} rows; head {:?}", pass.sealed, pass.head.map(|h| h.seq));
            Ok(())
        }
        Command::Keys(KeysCmd::Rotate { wait_secs, json, db }) => {
            // Never with a key made up on the spot: it would wrap the new keys under a master key
            // no server has.
            let config = Config::load(&Overrides {
                data_dir: db.data_dir.clone(),
                database_url: db.database_url.clone(),
                ..overrides.clone()
            })
            .map_err(|e| e.to_string())?;
            if config.master_key.is_none() && !config.data_dir.join("master.key").exists() {
                return Err(format!(
                    "no master key: set JINLIU_MASTER_KEY to the servers' key (or run in the data directory whose \
                     master.key the server uses; none at {})",
                    config.data_dir.display()
                ));
            }
            let (store, auth, sealer) = admin(&overrides, db).await?;
            let report = jinliu_server::keyring::rotate(
                &store,
                &sealer,
                &auth,
                chrono::Utc::now(),
                std::time::Duration::from_secs(wait_secs),
            )
            .await
            .map_err(|e| e.to_string())?;
            if json {
                println!("{}", serde_json::to_string(&report).unwrap_or_default());
            } else {
                println!(
                    "added data key {} and JWT key {}; they seal and sign from {} s after now on every node",
                    report.data_kid,
                    report.jwt_kid,
                    jinliu_server::keyring::GRACE_SECS
                );
                println!(
                    "access tokens signed two JWT keys ago stop working once {} signs; users log in again",
                    report.jwt_kid
                );
                for (column, n) in &report.resealed {
                    println!("re-encrypted {n} values of {column}");
                }
            }
            if report.unreadable.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "{} values open under no key of the ring and were left as they are: {:?}",
                    report.unreadable.len(),
                    report.unreadable
                ))
            }
        }
        Command::Keys(KeysCmd::List { db }) => {
            let (store, _, _) = admin(&overrides, db).await?;
            println!("k1\tdata\tderived from the master key");
            println!("{}\tjwt\tderived from the master key", jinliu_server::auth::JWT_KID);
            for k in store.ring_keys().await.map_err(|e| e.to_string())? {
                println!("{}\t{}\t{}", k.kid, k.purpose, jinliu_domain::format_time(k.created_at));
            }
            Ok(())
        }
        Command::Webhook(cmd) => webhook_command(&overrides, cmd).await,
        Command::Sandbox { listen, public_url } => {
            jinliu_server::telemetry::init("text");
            let listener = tokio::net::TcpListener::bind(&listen)
                .await
                .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
            let public = public_url.unwrap_or_else(|| format!("http://{listen}"));
            eprintln!("jinliu sandbox listening on http://{listen} (public URL {public})");
            axum::serve(listener, jinliu_providers::sandbox::router(&public))
                .with_graceful_shutdown(shutdown_signal())
                .await
                .map_err(|e| e.to_string())
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
