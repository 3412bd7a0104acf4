//! Merchant webhooks, outbound: the endpoint service, Standard Webhooks signing, the SSRF guard,
//! the relay from the outbox and the delivery worker.
//!
//! The store makes an event's messages in the transaction that commits it. Every node runs
//! [`run`]: each tick (or on [`Webhooks::wake`]) it sends due messages, and at most every
//! [`RELAY_EVERY`] it relays outbox rows left undispatched by an older jinliu (one that made
//! messages in a relay instead, e.g. a node not yet upgraded). Both steps claim their work with
//! leases in the store, so several nodes never relay or send the same thing twice in normal
//! operation; delivery is at-least-once (a crash between sending and recording repeats that
//! attempt, with the same `webhook-id`). Tests drive [`run_once`] step by step under a
//! controllable clock.

pub mod deliver;
pub mod endpoints;
pub mod guard;
pub mod relay;
pub mod sign;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::config::Config;
use crate::state::AppState;
use guard::{GuardedResolver, Policy};

/// The webhook machinery a node shares: one HTTP client per mode and the wake-up signal.
#[derive(Debug)]
pub struct Webhooks {
    wake: Arc<Notify>,
    live: reqwest::Client,
    test: reqwest::Client,
    test_loopback: bool,
    timeout: Duration,
}

impl Webhooks {
    /// Builds the two clients: no proxy, no redirects, the configured timeout, and each mode's
    /// guarded resolver.
    pub fn new(config: &Config) -> Result<Webhooks, reqwest::Error> {
        let timeout = Duration::from_millis(config.webhook_timeout_ms);
        let client = |policy: Policy| {
            reqwest::Client::builder()
                .dns_resolver(Arc::new(GuardedResolver::new(policy)))
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(timeout)
                .connect_timeout(timeout.min(Duration::from_secs(10)))
                .user_agent(concat!("jinliu-webhooks/", env!("CARGO_PKG_VERSION")))
                .build()
        };
        Ok(Webhooks {
            wake: Arc::new(Notify::new()),
            live: client(Policy::LIVE)?,
            test: client(endpoints::policy(false, config.webhook_test_loopback))?,
            test_loopback: config.webhook_test_loopback,
            timeout,
        })
    }

    /// Asks this node's worker to run now instead of at its next tick: call it when events were
    /// committed (the store's committed-event feed), so a message leaves within milliseconds.
    /// Several calls before the worker wakes make one pass.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Whether test-mode endpoints may target loopback.
    pub fn test_loopback(&self) -> bool {
        self.test_loopback
    }

    pub(crate) fn client(&self, livemode: bool) -> &reqwest::Client {
        if livemode { &self.live } else { &self.test }
    }

    pub(crate) fn policy(&self, livemode: bool) -> Policy {
        endpoints::policy(livemode, self.test_loopback)
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    /// Outbox rows relayed.
    pub events: usize,
    /// Messages made from them.
    pub messages: usize,
    /// Messages this node claimed and attempted.
    pub attempts: usize,
}

/// Runs until the task is aborted.
pub async fn run(app: AppState) {
    let period = Duration::from_millis(app.config.webhook_interval_ms);
    // The first pass comes one period after start (or at the first wake-up), not at once.
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let wake = app.webhooks.wake.clone();
    let mut last_relay: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = wake.notified() => {}
        }
        let started = tokio::time::Instant::now();
        let relay = last_relay.is_none_or(|at| started.duration_since(at) >= RELAY_EVERY);
        if relay {
            last_relay = Some(started);
        }
        if let Err(e) = pass(&app, relay).await {
            tracing::warn!(error = %e, "webhook pass failed");
        }
        // Under a steady stream of commits the event feed wakes the worker after every batch,
        // and each pass costs a delivery query however few messages it finds. Wake-ups that
        // arrive meanwhile are kept (one permit) and served after this gap: a lone event still
        // leaves at once, a busy server sends at most every `MIN_PASS_GAP` in larger batches.
        tokio::time::sleep_until(started + MIN_PASS_GAP).await;
    }
}

/// The least time from the start of one wake-up pass to the next.
const MIN_PASS_GAP: Duration = Duration::from_millis(50);

/// How often, at most, the worker looks for outbox rows an older jinliu left undispatched (at
/// the first pass once this much time has gone by). Rows this version writes never need it, and
/// a pass that finds none still costs a lease claim and a unit in the group-commit writer, so not
/// at every pass.
pub const RELAY_EVERY: Duration = Duration::from_secs(10);

/// One pass: relay, then send what is due (again and again while full batches come back).
pub async fn run_once(app: &AppState) -> Result<Pass, jinliu_store::StoreError> {
    pass(app, true).await
}

async fn pass(app: &AppState, relay: bool) -> Result<Pass, jinliu_store::StoreError> {
    // A failing relay (older rows only) must not hold up the delivery of new messages.
    let relayed = if relay {
        relay::run_once(app).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "webhook relay failed; delivering anyway");
            jinliu_store::RelayReport::default()
        })
    } else {
        jinliu_store::RelayReport::default()
    };
    let mut attempts = 0;
    loop {
        let n = deliver::run_once(app).await?;
        attempts += n;
        if n < deliver::BATCH as usize {
            break;
        }
    }
    Ok(Pass {
        events: relayed.events,
        messages: relayed.messages,
        attempts,
    })
}
