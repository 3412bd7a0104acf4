//! The application state shared by every request: cheap `Arc` handles, no globals.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use jinliu_domain::Timestamp;
use jinliu_providers::Registry;
use jinliu_store::Store;

use crate::config::Config;

/// Where "now" comes from, so tests can control time.
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        chrono::Utc::now()
    }
}

/// Everything a handler may use.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub store: Store,
    /// Provider adapters by id.
    pub providers: Arc<Registry>,
    /// The validated configuration.
    pub config: Arc<Config>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Idempotency keys whose first request is running on this node.
    pub in_flight: Arc<Mutex<HashSet<(String, String)>>>,
    /// API-key verification.
    pub auth: Arc<crate::auth::Auth>,
    /// Encryption of secrets at rest.
    pub sealer: Arc<crate::secrets::Sealer>,
    /// Login rate limits (per node).
    pub login_limits: Arc<crate::ratelimit::LoginLimits>,
    /// This process's name in work leases (status sync), unique per start.
    pub node_id: String,
    /// Live payment updates: the event bus (in-process, or through Redis).
    pub realtime: crate::realtime::Bus,
    /// The Prometheus exporter's handle, when `serve` installed it (`GET /metrics`).
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
}
