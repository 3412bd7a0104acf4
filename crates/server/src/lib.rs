//! The jinliu server: configuration, the HTTP API, and the wiring between store, providers and
//! handlers. `main.rs` is a thin CLI over [`build`] and [`serve`]; tests call the same two
//! functions on a listener bound to port 0.

pub mod audit;
pub mod auth;
pub mod bench;
pub mod bootstrap;
pub mod config;
pub mod http;
pub mod keyring;
pub mod provider_accounts;
pub mod ratelimit;
pub mod realtime;
pub mod secrets;
pub mod service;
pub mod state;
pub mod sync;
pub mod telemetry;
pub mod totp;
pub mod users;
pub mod webhooks;

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};

use jinliu_providers::Registry;
use jinliu_store::Store;

use config::Config;
use state::{AppState, SystemClock};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database could not be opened or migrated.
    #[error("database: {0}")]
    Store(#[from] jinliu_store::StoreError),
    /// A provider account is unusable (missing credential, unknown provider).
    #[error("provider account: {0}")]
    Provider(#[from] jinliu_providers::account::AccountError),
    /// The master key is missing or malformed.
    #[error("master key: {0}")]
    MasterKey(#[from] secrets::MasterKeyError),
    /// The key ring could not be loaded.
    #[error("key ring: {0}")]
    KeyRing(#[from] keyring::KeyRingError),
    /// The demo credentials could not be created or written.
    #[error("first run: {0}")]
    Bootstrap(String),
    /// The webhook HTTP clients could not be built.
    #[error("webhook client: {0}")]
    Webhooks(String),
    /// The realtime bus could not be set up (a malformed `REDIS_URL`).
    #[error("{0}")]
    Bus(#[from] realtime::bus::BusError),
    /// The data directory could not be created.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// Opens the store (creating the data directory for SQLite) without migrating.
pub async fn open_store(config: &Config) -> Result<Store, StartError> {
    if config.database_url.is_none() {
        let fresh = !config.data_dir.exists();
        std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::DataDir {
            path: config.data_dir.display().to_string(),
            source,
        })?;
        // The directory holds the database, the generated master key and the demo credentials:
        // a directory jinliu creates is private to its user (an existing one is left as it is).
        #[cfg(unix)]
        if fresh {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&config.data_dir, std::fs::Permissions::from_mode(0o700)).map_err(|source| {
                StartError::DataDir {
                    path: config.data_dir.display().to_string(),
                    source,
                }
            })?;
        }
    }
    Ok(Store::connect(&config.store_config()).await?)
}

/// Builds the application: opens and migrates the store, registers providers.
pub async fn build(config: Config) -> Result<AppState, StartError> {
    let store = open_store(&config).await?;
    store.migrate().await?;
    if config.master_key.is_none() && store.has_live_provider_accounts().await? {
        return Err(StartError::MasterKey(secrets::MasterKeyError::LiveNeedsKey));
    }
    let app = build_with_store(config, store)?;
    keyring::load(&app.store, &app.sealer, &app.auth, app.clock.now()).await?;
    keyring::ensure_check(&app.store, &app.sealer, app.clock.now()).await?;
    let first_run = bootstrap::first_run(&app);
    jinliu_store::with_audit_context(jinliu_domain::AuditContext::system("first_run"), first_run)
        .await
        .map_err(StartError::Bootstrap)?;
    Ok(app)
}

/// Builds the application on an already migrated store: one adapter per provider account.
pub fn build_with_store(config: Config, store: Store) -> Result<AppState, StartError> {
    let mut providers = Registry::default();
    for account in config.accounts() {
        if account.livemode && provider_accounts::is_sandbox(&config, &account.base_url) {
            return Err(StartError::Provider(jinliu_providers::account::AccountError::Invalid {
                account: account.id,
                message: "a live account's base_url cannot be a sandbox or a provider's test host".into(),
            }));
        }
        providers.register(jinliu_providers::adapter(account)?);
    }
    let (master, generated) = secrets::MasterKey::load(&config)?;
    if generated {
        tracing::warn!(
            path = %config.data_dir.join("master.key").display(),
            "generated a master key for test mode; set JINLIU_MASTER_KEY in production"
        );
    }
    let auth = auth::Auth::new(&master);
    let webhooks = webhooks::Webhooks::new(&config).map_err(|e| StartError::Webhooks(e.to_string()))?;
    let node_id = format!("node-{}", uuid::Uuid::now_v7().simple());
    let realtime = match &config.redis_url {
        Some(url) => realtime::Bus::with_redis(&node_id, url.expose(), &config.redis_channel)?,
        None => realtime::Bus::local(&node_id),
    };
    Ok(AppState {
        webhooks: Arc::new(webhooks),
        realtime,
        auth: Arc::new(auth),
        sealer: Arc::new(secrets::Sealer::new(&master)),
        audit_keys: Arc::new(audit::AuditKeys::new(&master)),
        login_limits: Arc::new(ratelimit::LoginLimits::default()),
        store,
        providers: Arc::new(provider_accounts::Adapters::new(providers)),
        config: Arc::new(config),
        clock: Arc::new(SystemClock),
        in_flight: Arc::new(Mutex::new(HashSet::new())),
        node_id: node_id.into(),
        metrics: None,
    })
}

/// Serves `app` on `listener` until `shutdown` completes, then drains in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let housekeeping = tokio::spawn(housekeeping(app.clone()));
    let sync = tokio::spawn(sync::run(app.clone()));
    let ring = tokio::spawn(keyring::run(app.clone()));
    let sealer = tokio::spawn(audit::run(app.clone()));
    let webhooks = app.config.webhook_worker.then(|| {
        // Every committed event wakes the webhook worker at once instead of at its next tick
        // (its messages committed with it); a lagging feed wakes it too (delivery reads the
        // messages table, so nothing is lost either way).
        let (mut feed, hooks) = (app.store.subscribe_events(), app.webhooks.clone());
        let waker = tokio::spawn(async move {
            while let Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) = feed.recv().await {
                hooks.wake();
            }
        });
        (tokio::spawn(webhooks::run(app.clone())), waker)
    });
    // Subscribed here, before the first request, so no committed event is missed.
    let relay = tokio::spawn(realtime::relay(app.store.subscribe_events(), app.realtime.clone()));
    let bus = tokio::spawn(app.realtime.clone().run());
    // Live streams never end by themselves; closing the bus ends them so the server can drain.
    let closing = app.realtime.clone();
    let shutdown = async move {
        shutdown.await;
        closing.close();
    };
    // No Nagle on accepted connections: a live stream (SSE, Socket.IO) writes small frames one
    // after another, and with Nagle each one after the first would wait for the client's
    // delayed ACK (up to 40 ms on Linux).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY on an accepted connection");
        }
    });
    // Peer addresses reach the handlers (the login rate limit keys on them).
    let result = axum::serve(
        listener,
        http::router(app).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    housekeeping.abort();
    sync.abort();
    ring.abort();
    sealer.abort();
    if let Some((worker, waker)) = webhooks {
        worker.abort();
        waker.abort();
    }
    relay.abort();
    bus.abort();
    result
}

/// Deletes idempotency records past their 24 hours and finished webhook messages past their
/// retention, once an hour. Idempotent, so several nodes doing it at once is harmless and needs
/// no lease.
async fn housekeeping(app: AppState) {
    let mut every_hour = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        every_hour.tick().await;
        match app
            .store
            .purge_expired_idempotency_keys(app.clock.now().timestamp_millis())
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "purged expired idempotency keys"),
            Err(e) => tracing::warn!(error = %e, "could not purge expired idempotency keys"),
        }
        let before = app.clock.now() - chrono::Duration::days(app.config.webhook_retention_days as i64);
        loop {
            match app.store.purge_webhook_messages(before, 1_000).await {
                Ok(0) => break,
                Ok(n) => tracing::info!(deleted = n, "purged finished webhook messages"),
                Err(e) => {
                    tracing::warn!(error = %e, "could not purge finished webhook messages");
                    break;
                }
            }
        }
    }
}
