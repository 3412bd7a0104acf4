//! The event bus: payment updates fanned out to watchers, keyed by payment id.
//!
//! Local delivery is a map from payment id to that payment's watchers, so an update costs a
//! lookup and one `try_send` per watcher of that payment, whatever the total number of watchers
//! (10,000 watchers of 1,000 payments do not each filter every event). Each watcher has a small
//! bounded queue; when it is full the watcher is marked lagged and, on its next read, gets
//! [`Notice::Resync`] (re-read the payment from the database) instead of the updates it missed.
//! Nobody ever waits for a slow watcher.
//!
//! With `REDIS_URL` set, every update raised on this node is also published on a Redis channel
//! and every node delivers what other nodes publish, so a watcher connected to any node hears
//! about a payment paid through any other. Local watchers are always served directly, without
//! the round trip; messages carry the publishing node's id so a node skips its own. When Redis is
//! down the bus logs, keeps serving local watchers, and reconnects with exponential backoff
//! (100 ms up to 5 s); after a reconnect every local watcher resyncs, since updates from other
//! nodes may have been missed meanwhile.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::PaymentUpdate;

/// How many undelivered notices a watcher may have queued before it is marked lagged.
pub const WATCHER_QUEUE: usize = 16;
/// Updates waiting to be published to Redis; beyond this they are dropped (and logged).
const PUBLISH_QUEUE: usize = 10_000;
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// What a watcher is told.
#[derive(Debug, Clone)]
pub enum Notice {
    /// The payment changed.
    Update(Arc<PaymentUpdate>),
    /// Updates may have been missed: read the payment's current state again.
    Resync,
}

struct Slot {
    tx: mpsc::Sender<Notice>,
    lagged: Arc<AtomicBool>,
}

impl Slot {
    fn offer(&self, n: Notice) {
        if self.tx.try_send(n).is_err() {
            // Full (or the watcher is leaving): it resyncs on its next read instead.
            if !self.lagged.swap(true, Ordering::AcqRel) {
                metrics::counter!("jinliu_realtime_lagged_total").increment(1);
            }
        }
    }
}

#[derive(Default)]
struct Local {
    rooms: Mutex<HashMap<String, HashMap<u64, Slot>>>,
    next: AtomicU64,
    closed: AtomicBool,
}

impl Local {
    fn deliver(&self, u: Arc<PaymentUpdate>) {
        let rooms = self.rooms.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(room) = rooms.get(&u.payment_id) {
            for slot in room.values() {
                slot.offer(Notice::Update(u.clone()));
            }
        }
    }

    fn resync_all(&self) {
        let rooms = self.rooms.lock().unwrap_or_else(PoisonError::into_inner);
        for slot in rooms.values().flat_map(HashMap::values) {
            slot.offer(Notice::Resync);
        }
    }
}

/// What travels over Redis.
#[derive(Debug, Serialize, Deserialize)]
struct Wire {
    /// The publishing node.
    node: String,
    /// An update, or `None`: "resync everything" (the node lost track of its own events).
    update: Option<PaymentUpdate>,
}

struct Remote {
    client: redis::Client,
    channel: String,
    queue: mpsc::Sender<String>,
    pending: Mutex<Option<mpsc::Receiver<String>>>,
    /// Whether the subscription to the channel is up.
    subscribed: tokio::sync::watch::Sender<bool>,
}

/// The bus handle: cheap to clone, one per node.
#[derive(Clone)]
pub struct Bus {
    local: Arc<Local>,
    remote: Option<Arc<Remote>>,
    node: Arc<str>,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus")
            .field("node", &self.node)
            .field("redis", &self.remote.is_some())
            .finish_non_exhaustive()
    }
}

/// A watcher of one payment; dropping it unsubscribes.
pub struct Subscription {
    rx: mpsc::Receiver<Notice>,
    lagged: Arc<AtomicBool>,
    payment: String,
    key: u64,
    local: Arc<Local>,
}

impl Subscription {
    /// The next notice; `None` when the bus shuts down. A watcher that fell behind gets
    /// [`Notice::Resync`] and its queued, now stale, updates are discarded.
    pub async fn recv(&mut self) -> Option<Notice> {
        if self.lagged.swap(false, Ordering::AcqRel) {
            while self.rx.try_recv().is_ok() {}
            return Some(Notice::Resync);
        }
        self.rx.recv().await
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        metrics::gauge!("jinliu_realtime_watchers").decrement(1.0);
        let mut rooms = self.local.rooms.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(room) = rooms.get_mut(&self.payment) {
            room.remove(&self.key);
            if room.is_empty() {
                rooms.remove(&self.payment);
            }
        }
    }
}

/// Why the bus could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("REDIS_URL: {0}")]
pub struct BusError(String);

impl Bus {
    /// An in-process bus (one node).
    pub fn local(node: &str) -> Bus {
        Bus {
            local: Arc::new(Local::default()),
            remote: None,
            node: node.into(),
        }
    }

    /// A bus that also goes through Redis pub/sub on `channel` (`redis://…`). Nothing connects
    /// until [`Bus::run`].
    pub fn with_redis(node: &str, url: &str, channel: &str) -> Result<Bus, BusError> {
        let client = redis::Client::open(url).map_err(|e| BusError(e.to_string()))?;
        let (queue, pending) = mpsc::channel(PUBLISH_QUEUE);
        Ok(Bus {
            remote: Some(Arc::new(Remote {
                client,
                channel: channel.to_owned(),
                queue,
                pending: Mutex::new(Some(pending)),
                subscribed: tokio::sync::watch::Sender::new(false),
            })),
            ..Bus::local(node)
        })
    }

    /// Starts watching `payment_id`. Subscribe before reading the payment's current state, so a
    /// change that commits in between is not lost.
    pub fn subscribe(&self, payment_id: &str) -> Subscription {
        let (tx, rx) = mpsc::channel(WATCHER_QUEUE);
        let lagged = Arc::new(AtomicBool::new(false));
        let key = self.local.next.fetch_add(1, Ordering::Relaxed);
        if !self.local.closed.load(Ordering::Acquire) {
            self.local
                .rooms
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(payment_id.to_owned())
                .or_default()
                .insert(
                    key,
                    Slot {
                        tx,
                        lagged: lagged.clone(),
                    },
                );
        }
        metrics::gauge!("jinliu_realtime_watchers").increment(1.0);
        Subscription {
            rx,
            lagged,
            payment: payment_id.to_owned(),
            key,
            local: self.local.clone(),
        }
    }

    /// Delivers `u` to this node's watchers and, with Redis, queues it for every other node.
    pub fn publish(&self, u: PaymentUpdate) {
        metrics::counter!("jinliu_realtime_updates_total").increment(1);
        let u = Arc::new(u);
        self.local.deliver(u.clone());
        self.send_remote(Some(&u));
    }

    /// Tells every watcher on every node to re-read its payment.
    pub fn resync_everywhere(&self) {
        self.local.resync_all();
        self.send_remote(None);
    }

    fn send_remote(&self, u: Option<&PaymentUpdate>) {
        let Some(remote) = &self.remote else { return };
        let wire = serde_json::json!({ "node": &*self.node, "update": u }).to_string();
        if remote.queue.try_send(wire).is_err() {
            tracing::warn!("the Redis publish queue is full; an update reaches only this node's watchers");
        }
    }

    /// With Redis: whether this node is subscribed to the channel, as it changes (`None` for an
    /// in-process bus). Readiness checks and tests wait on it.
    pub fn redis_subscribed(&self) -> Option<tokio::sync::watch::Receiver<bool>> {
        self.remote.as_ref().map(|r| r.subscribed.subscribe())
    }

    /// How many watchers this node has (for metrics and the benchmark).
    pub fn watchers(&self) -> usize {
        self.local
            .rooms
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(HashMap::len)
            .sum()
    }

    /// Ends every subscription (at shutdown, so long-lived streams let the server drain).
    pub fn close(&self) {
        self.local.closed.store(true, Ordering::Release);
        self.local.rooms.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }

    /// Runs the Redis side (publisher and subscriber) until the task is aborted; returns at once
    /// for an in-process bus, or if already started.
    pub async fn run(self) {
        let Some(remote) = self.remote.clone() else { return };
        let Some(queue) = remote.pending.lock().unwrap_or_else(PoisonError::into_inner).take() else {
            return;
        };
        tokio::join!(
            publish_loop(remote.clone(), queue),
            subscribe_loop(remote, self.local.clone(), self.node.clone())
        );
    }
}

async fn publish_loop(remote: Arc<Remote>, mut queue: mpsc::Receiver<String>) {
    use redis::AsyncCommands;
    let mut conn: Option<redis::aio::MultiplexedConnection> = None;
    let mut backoff = BACKOFF_START;
    let mut retry_at = tokio::time::Instant::now();
    while let Some(msg) = queue.recv().await {
        if conn.is_none() {
            if tokio::time::Instant::now() < retry_at {
                // Down and backing off: this update reaches local watchers only; remote ones
                // resync when their node's subscription comes back.
                continue;
            }
            match remote.client.get_multiplexed_async_connection().await {
                Ok(c) => {
                    backoff = BACKOFF_START;
                    conn = Some(c);
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "Redis publish connection failed");
                    retry_at = tokio::time::Instant::now() + backoff;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            }
        }
        if let Some(c) = conn.as_mut() {
            let sent: redis::RedisResult<i64> = c.publish(&remote.channel, msg).await;
            if let Err(e) = sent {
                tracing::warn!(error = %e, "Redis publish failed; reconnecting");
                conn = None;
            }
        }
    }
}

async fn subscribe_loop(remote: Arc<Remote>, local: Arc<Local>, node: Arc<str>) {
    let mut backoff = BACKOFF_START;
    let mut first = true;
    loop {
        match remote.client.get_async_pubsub().await {
            Ok(mut pubsub) => match pubsub.subscribe(&remote.channel).await {
                Ok(()) => {
                    tracing::info!(channel = %remote.channel, "subscribed to the Redis event channel");
                    backoff = BACKOFF_START;
                    if !first {
                        // Other nodes' updates may have gone by while we were away.
                        local.resync_all();
                    }
                    first = false;
                    remote.subscribed.send_replace(true);
                    let mut messages = pubsub.on_message();
                    while let Some(msg) = messages.next().await {
                        let Ok(text) = msg.get_payload::<String>() else {
                            continue;
                        };
                        match serde_json::from_str::<Wire>(&text) {
                            Ok(w) if *w.node == *node => {}
                            Ok(Wire { update: Some(u), .. }) => local.deliver(Arc::new(u)),
                            Ok(Wire { update: None, .. }) => local.resync_all(),
                            Err(e) => tracing::warn!(error = %e, "unreadable message on the Redis event channel"),
                        }
                    }
                    remote.subscribed.send_replace(false);
                    tracing::warn!("the Redis event subscription ended; reconnecting");
                }
                Err(e) => tracing::warn!(error = %e, "Redis SUBSCRIBE failed"),
            },
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "Redis subscribe connection failed")
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(id: &str, version: i64) -> PaymentUpdate {
        PaymentUpdate {
            payment_id: id.into(),
            order_id: "ord_1".into(),
            status: "pending".into(),
            amount: serde_json::value::RawValue::from_string("1.00".into()).unwrap_or_else(|e| panic!("{e}")),
            currency: "HKD".into(),
            version,
            updated_at: String::new(),
        }
    }

    #[tokio::test]
    async fn a_watcher_gets_only_its_payment_s_updates() {
        let bus = Bus::local("n1");
        let mut a = bus.subscribe("pay_a");
        let mut b = bus.subscribe("pay_b");
        bus.publish(update("pay_a", 2));
        let Some(Notice::Update(u)) = a.recv().await else {
            panic!("an update")
        };
        assert_eq!(u.version, 2);
        assert!(b.rx.try_recv().is_err(), "pay_b's watcher heard nothing");
        drop(a);
        drop(b);
        assert_eq!(bus.watchers(), 0);
    }

    #[tokio::test]
    async fn a_slow_watcher_is_told_to_resync_and_does_not_hold_up_the_others() {
        let bus = Bus::local("n1");
        let mut slow = bus.subscribe("pay_a");
        let mut fast = bus.subscribe("pay_a");
        for v in 0..(WATCHER_QUEUE as i64 + 5) {
            bus.publish(update("pay_a", v));
            let Some(Notice::Update(u)) = fast.recv().await else {
                panic!("an update")
            };
            assert_eq!(u.version, v);
        }
        assert!(matches!(slow.recv().await, Some(Notice::Resync)));
        bus.publish(update("pay_a", 100));
        let Some(Notice::Update(u)) = slow.recv().await else {
            panic!("live again")
        };
        assert_eq!(u.version, 100);
    }

    #[tokio::test]
    async fn closing_the_bus_ends_every_subscription() {
        let bus = Bus::local("n1");
        let mut a = bus.subscribe("pay_a");
        bus.close();
        assert!(a.recv().await.is_none());
    }
}
