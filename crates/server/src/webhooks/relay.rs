//! The relay: undispatched outbox rows → webhook messages. This version makes an event's
//! messages in the transaction that commits it, so only rows an older jinliu wrote (one that
//! relayed instead) are undispatched. One node at a time holds the relay lease; it walks them
//! oldest first in batches, each batch one transaction in the store.

use jinliu_store::{RELAY_LEASE, RelayReport, StoreError};

use crate::state::AppState;

/// How long the lease is ours; renewed between batches.
const LEASE_MS: i64 = 30_000;
/// Outbox rows per transaction.
const BATCH: u64 = 200;

/// Relays everything undispatched, if this node can take the lease (another node relaying now
/// is not an error: it is doing the work).
pub async fn run_once(app: &AppState) -> Result<RelayReport, StoreError> {
    let store = &app.store;
    if !store
        .claim_worker_lease(RELAY_LEASE, &app.node_id, app.clock.now(), LEASE_MS)
        .await?
    {
        return Ok(RelayReport::default());
    }
    let mut total = RelayReport::default();
    let outcome = loop {
        match store.relay_webhook_events(BATCH, app.clock.now()).await {
            Ok(r) => {
                total.events += r.events;
                total.messages += r.messages;
                if r.events < BATCH as usize {
                    break Ok(total);
                }
            }
            Err(e) => break Err(e),
        }
        match store
            .claim_worker_lease(RELAY_LEASE, &app.node_id, app.clock.now(), LEASE_MS)
            .await
        {
            Ok(true) => {}
            Ok(false) => break Ok(total),
            Err(e) => break Err(e),
        }
    };
    store.release_worker_lease(RELAY_LEASE, &app.node_id).await?;
    if total.messages > 0 {
        tracing::debug!(
            events = total.events,
            messages = total.messages,
            "relayed events to webhook endpoints"
        );
    }
    outcome
}
