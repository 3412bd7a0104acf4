//! The application state shared by every request: cheap `Arc` handles, no globals.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use jinliu_domain::Timestamp;
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

/// A clock that moves only when told to: tests (and simulations) drive retry schedules, lease
/// expiry and time-outs with it instead of sleeping.
#[derive(Debug)]
pub struct ManualClock(Mutex<Timestamp>);

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: Timestamp) -> ManualClock {
        ManualClock(Mutex::new(start))
    }

    /// Moves the clock forward (or back, with a negative duration).
    pub fn advance(&self, by: chrono::Duration) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *t += by;
    }

    /// Sets the clock.
    pub fn set(&self, to: Timestamp) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Everything a handler may use.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub store: Store,
    /// Provider adapters: the platform's accounts and merchants' own.
    pub providers: Arc<crate::provider_accounts::Adapters>,
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
    /// The audit chain's and checkpoints' keys.
    pub audit_keys: Arc<crate::audit::AuditKeys>,
    /// Login rate limits (per node).
    pub login_limits: Arc<crate::ratelimit::LoginLimits>,
    /// This process's name in work leases (status sync), unique per start. Shared rather than
    /// owned: the state is cloned for every extractor of every request.
    pub node_id: Arc<str>,
    /// Outbound merchant webhooks: HTTP clients and the worker's wake-up signal.
    pub webhooks: Arc<crate::webhooks::Webhooks>,
    /// Live payment updates: the event bus (in-process, or through Redis).
    pub realtime: crate::realtime::Bus,
    /// The Prometheus exporter's handle, when `serve` installed it (`GET /metrics`).
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
}
