//! Merchant webhooks: endpoints, the fan-out from the outbox to messages, the delivery queue with
//! its leases, and the attempts log.
//!
//! The group-commit writer makes one message per matching enabled endpoint for every event it
//! inserts, in the same transaction ([`messages_for`], written with the batch's other rows by
//! `persist::write_batch_tail`), and inserts the event already dispatched. The
//! relay does the same for `events` rows an older jinliu left undispatched (it relayed them in a
//! second transaction) and marks them dispatched; a named lease (`worker_leases`) lets one node
//! relay at a time, and the conditional mark (`webhooks_dispatched = false`) plus the unique
//! (endpoint, event) index keep a message from being made twice even if a lease expires mid-run.
//! Delivery claims due messages with a per-row lease, as status sync claims its jobs: a
//! conditional UPDATE that only one node can win. Secrets arrive and leave sealed; this module
//! never sees one in plain text.

use std::collections::{HashMap, HashSet};

use jinliu_domain::webhook::{
    EndpointStatus, MessageStatus, WebhookAttempt, WebhookEndpoint, WebhookMessage, endpoint_disabled_event,
    failing_too_long,
};
use jinliu_domain::{AttemptId, AuditTarget, EndpointId, EventType, MerchantId, MessageId, Timestamp, TransitionError};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::audit::AuditSpec;
use crate::convert::{ms, time};
use crate::entity::{events, merchants, webhook_attempts, webhook_endpoints, webhook_messages, worker_leases};
use crate::persist::ByKey;
use crate::persist::record_events;
use crate::writer::work;
use crate::{Page, Scope, Store, StoreError};

/// The lease name of the relay.
pub const RELAY_LEASE: &str = "webhook_relay";

/// Most events one recovery walks (an operator can call it again with a later `since`).
pub const RECOVER_MAX_EVENTS: u64 = 10_000;

/// The relay's query: the oldest `limit` events not yet dispatched. The filter is a literal
/// written exactly as the predicate of the partial index `events_undispatched` (migration
/// m0013): a bound `false` would do for the rows, but a generic prepared plan cannot match a
/// parameter to an index predicate, and SQLite matches the predicate's terms as written.
pub(crate) fn undispatched(limit: u64) -> sea_orm::Select<events::Entity> {
    events::Entity::find()
        .filter(Expr::cust("webhooks_dispatched = FALSE"))
        .order_by_asc(events::Column::Id)
        .limit(limit)
}

/// A new endpoint; the server made the id (the sealed secret is bound to it) and sealed the secret.
#[derive(Debug, Clone)]
pub struct NewEndpoint {
    /// `ep_…`
    pub id: EndpointId,
    /// Where to send.
    pub url: String,
    /// The merchant's note.
    pub description: Option<String>,
    /// Types heard; `None` for all.
    pub events: Option<Vec<EventType>>,
    /// The sealed signing secret.
    pub secret_sealed: String,
}

/// Changes to an endpoint; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct EndpointPatch {
    /// A new URL.
    pub url: Option<String>,
    /// A new note (`Some(None)` clears it).
    pub description: Option<Option<String>>,
    /// New types (`Some(None)` means all).
    pub events: Option<Option<Vec<EventType>>>,
    /// Enable (also forgets the failure streak) or disable.
    pub enabled: Option<bool>,
}

/// How a delivery attempt ended, as the worker decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// A 2xx.
    Succeeded,
    /// No 2xx.
    Failed {
        /// When to try again; `None` when the schedule is exhausted.
        retry_at: Option<Timestamp>,
        /// Disable the endpoint now, for this reason (a 410).
        disable: Option<String>,
    },
}

/// What a relay pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayReport {
    /// Outbox rows marked dispatched.
    pub events: usize,
    /// Messages made.
    pub messages: usize,
}

/// Which messages of an endpoint to list.
#[derive(Debug, Clone, Default)]
pub struct MessageFilter {
    /// Only this status.
    pub status: Option<MessageStatus>,
    /// 1-based page.
    pub page: u64,
    /// 1–100.
    pub limit: u64,
    /// Cursor: messages older than this one.
    pub starting_after: Option<MessageId>,
}

fn endpoint_from_row(r: webhook_endpoints::Model) -> Result<WebhookEndpoint, StoreError> {
    let events = match r.event_types {
        None => None,
        Some(list) => Some(
            list.split(',')
                .filter(|s| !s.is_empty())
                .map(|s| EventType::parse(s).ok_or_else(|| StoreError::Corrupt(format!("event type {s:?}"))))
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    Ok(WebhookEndpoint {
        id: EndpointId::from_trusted(r.id),
        merchant_id: MerchantId::from_trusted(r.merchant_id),
        livemode: r.livemode,
        url: r.url,
        description: r.description,
        events,
        status: EndpointStatus::parse(&r.status)
            .ok_or_else(|| StoreError::Corrupt(format!("endpoint status {:?}", r.status)))?,
        disabled_reason: r.disabled_reason,
        failing_since: r.failing_since.map(time).transpose()?,
        secret_sealed: r.secret,
        previous_secret_sealed: r.previous_secret,
        previous_secret_until: r.previous_secret_until.map(time).transpose()?,
        version: r.version,
        created_at: time(r.created_at)?,
        updated_at: time(r.updated_at)?,
    })
}

/// An endpoint as the audit log records it: address, subscriptions and state, never a secret.
fn endpoint_target(e: &WebhookEndpoint) -> AuditTarget {
    AuditTarget {
        kind: "webhook_endpoint",
        id: e.id.to_string(),
        merchant_id: Some(e.merchant_id.clone()),
        detail: serde_json::json!({
            "url": e.url, "livemode": e.livemode, "status": e.status.as_str(), "version": e.version,
            "events": e.events.as_ref().map(|es| es.iter().map(|t| t.as_str()).collect::<Vec<_>>()),
        }),
    }
}

fn endpoint_to_row(e: &WebhookEndpoint) -> webhook_endpoints::ActiveModel {
    webhook_endpoints::ActiveModel {
        id: Set(e.id.to_string()),
        merchant_id: Set(e.merchant_id.to_string()),
        livemode: Set(e.livemode),
        url: Set(e.url.clone()),
        description: Set(e.description.clone()),
        event_types: Set(events_text(e.events.as_deref())),
        status: Set(e.status.as_str().to_owned()),
        disabled_reason: Set(e.disabled_reason.clone()),
        failing_since: Set(e.failing_since.map(ms)),
        secret: Set(e.secret_sealed.clone()),
        previous_secret: Set(e.previous_secret_sealed.clone()),
        previous_secret_until: Set(e.previous_secret_until.map(ms)),
        version: Set(e.version),
        created_at: Set(ms(e.created_at)),
        updated_at: Set(ms(e.updated_at)),
    }
}

fn events_text(events: Option<&[EventType]>) -> Option<String> {
    events.map(|list| list.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(","))
}

fn message_from_row(r: webhook_messages::Model) -> Result<WebhookMessage, StoreError> {
    Ok(WebhookMessage {
        id: MessageId::from_trusted(r.id),
        endpoint_id: EndpointId::from_trusted(r.endpoint_id),
        event_id: r.event_id,
        event_type: r.event_type,
        payload: r.payload,
        status: MessageStatus::parse(&r.status)
            .ok_or_else(|| StoreError::Corrupt(format!("message status {:?}", r.status)))?,
        attempts: r.attempts,
        series_attempts: r.series_attempts,
        next_attempt_at: r.next_attempt_at.map(time).transpose()?,
        created_at: time(r.created_at)?,
        updated_at: time(r.updated_at)?,
    })
}

fn attempt_from_row(r: webhook_attempts::Model) -> Result<WebhookAttempt, StoreError> {
    Ok(WebhookAttempt {
        id: AttemptId::from_trusted(r.id),
        message_id: MessageId::from_trusted(r.message_id),
        attempted_at: time(r.attempted_at)?,
        status_code: r.status_code,
        duration_ms: r.duration_ms,
        response_body: r.response_body,
        error: r.error,
        succeeded: r.succeeded,
        next_attempt_at: r.next_attempt_at.map(time).transpose()?,
    })
}

fn new_message(ep: &webhook_endpoints::Model, event: &events::Model, now_ms: i64) -> webhook_messages::ActiveModel {
    webhook_messages::ActiveModel {
        id: Set(MessageId::generate().to_string()),
        endpoint_id: Set(ep.id.clone()),
        merchant_id: Set(ep.merchant_id.clone()),
        livemode: Set(ep.livemode),
        event_id: Set(event.id.clone()),
        event_type: Set(event.event_type.clone()),
        payload: Set(event.payload.clone()),
        status: Set(MessageStatus::Pending.as_str().to_owned()),
        attempts: Set(0),
        series_attempts: Set(0),
        next_attempt_at: Set(Some(now_ms)),
        lease_owner: Set(None),
        lease_until: Set(0),
        created_at: Set(now_ms),
        updated_at: Set(now_ms),
    }
}

/// Whether `ep` is to hear `event`: same merchant and mode, enabled, subscribed, and not younger
/// than the event (an endpoint never receives what happened before it existed).
fn matches(ep: &webhook_endpoints::Model, event: &events::Model) -> bool {
    ep.merchant_id == event.merchant_id
        && ep.livemode == event.livemode
        && ep.status == EndpointStatus::Enabled.as_str()
        && ep.created_at <= event.created_at
        && ep
            .event_types
            .as_deref()
            .is_none_or(|list| list.split(',').any(|t| t == event.event_type))
}

/// PostgreSQL only: an `INSERT` of the messages [`messages_for`] would make for the `events` rows
/// that the statement's `WITH` query `relation` returns (each made at its event's time), for the
/// writer's one-statement tail (`persist::write_together`), which then needs no read of the
/// endpoints first. The join is [`matches`] written in SQL, and [`new_message`]'s row; message
/// ids come from `jinliu_new_id` (migration m0014), the same shape as [`MessageId::generate`].
/// The conformance suite expects the same messages from both: its webhook cases run on
/// PostgreSQL (this SQL) and on SQLite and MariaDB (`messages_for`).
pub(crate) fn pg_fan_out(relation: &str) -> String {
    format!(
        "INSERT INTO \"webhook_messages\" (\"id\", \"endpoint_id\", \"merchant_id\", \"livemode\", \"event_id\", \
         \"event_type\", \"payload\", \"status\", \"attempts\", \"series_attempts\", \"next_attempt_at\", \
         \"lease_owner\", \"lease_until\", \"created_at\", \"updated_at\") \
         SELECT jinliu_new_id('{prefix}'), ep.\"id\", ep.\"merchant_id\", ep.\"livemode\", e.\"id\", e.\"event_type\", \
         e.\"payload\", '{pending}', 0, 0, e.\"created_at\", NULL, 0, e.\"created_at\", e.\"created_at\" \
         FROM {relation} AS e \
         JOIN \"webhook_endpoints\" AS ep ON ep.\"merchant_id\" = e.\"merchant_id\" \
         AND ep.\"livemode\" = e.\"livemode\" AND ep.\"status\" = '{enabled}' \
         AND ep.\"created_at\" <= e.\"created_at\" \
         AND (ep.\"event_types\" IS NULL OR e.\"event_type\" = ANY (string_to_array(ep.\"event_types\", ',')))",
        prefix = MessageId::PREFIX,
        pending = MessageStatus::Pending.as_str(),
        enabled = EndpointStatus::Enabled.as_str(),
    )
}

/// Makes the webhook messages of `batch`: one per enabled endpoint of the event's merchant that
/// [`matches`] it, each due at once. Messages are made at `at`, or when `None` (the writer, in the
/// transaction that commits the events) at each event's own time. One read of the merchants'
/// enabled endpoints, then the messages in multi-row INSERTs; nothing at all for a merchant
/// without endpoints beyond that read.
///
/// An endpoint that commits after this read does not hear these events, even one whose creation
/// time is earlier than theirs (on PostgreSQL and MySQL another writer may commit it meanwhile; a
/// recovery can make those messages); one disabled or deleted meanwhile may still get messages,
/// which delivery gives up without an attempt. Here (the relay) messages go in
/// [`crate::persist::INSERT_CHUNK`] rows a statement; the writer inserts them with the rest of
/// its batch's tail, inside the commit of the events: a merchant with many endpoints makes its
/// batches' tails longer.
pub(crate) async fn fan_out<C: ConnectionTrait>(
    conn: &C,
    batch: &[events::Model],
    at: Option<i64>,
) -> Result<usize, StoreError> {
    let rows = messages_for(conn, batch, at).await?;
    let made = rows.len();
    crate::persist::insert_chunked(conn, rows).await?;
    Ok(made)
}

/// The messages [`fan_out`] inserts, made but not written: one read of the endpoints.
pub(crate) async fn messages_for<C: ConnectionTrait>(
    conn: &C,
    batch: &[events::Model],
    at: Option<i64>,
) -> Result<Vec<webhook_messages::ActiveModel>, StoreError> {
    let merchants: Vec<&str> = batch
        .iter()
        .map(|e| e.merchant_id.as_str())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let mut endpoints = Vec::new();
    for chunk in merchants.chunks(crate::persist::INSERT_CHUNK) {
        endpoints.extend(
            webhook_endpoints::Entity::find()
                .filter(webhook_endpoints::Column::MerchantId.is_in(chunk.iter().copied()))
                .filter(webhook_endpoints::Column::Status.eq(EndpointStatus::Enabled.as_str()))
                .all(conn)
                .await?,
        );
    }
    Ok(batch
        .iter()
        .flat_map(|ev| {
            endpoints
                .iter()
                .filter(|ep| matches(ep, ev))
                .map(|ep| new_message(ep, ev, at.unwrap_or(ev.created_at)))
        })
        .collect())
}

async fn load_endpoint<C: ConnectionTrait>(
    conn: &C,
    scope: Option<&Scope>,
    id: &str,
) -> Result<webhook_endpoints::Model, StoreError> {
    let mut q = webhook_endpoints::Entity::find_by_id(id.to_owned());
    if let Some(s) = scope {
        q = q
            .filter(webhook_endpoints::Column::MerchantId.eq(s.merchant_id.as_str()))
            .filter(webhook_endpoints::Column::Livemode.eq(s.livemode));
    }
    q.by_key(conn).await?.ok_or(StoreError::NotFound("webhook_endpoint"))
}

/// Writes an endpoint only if it is still at `expected_version`.
async fn save_endpoint<C: ConnectionTrait>(
    conn: &C,
    e: &WebhookEndpoint,
    expected_version: i64,
) -> Result<(), StoreError> {
    crate::persist::compare_and_set(
        conn,
        endpoint_to_row(e),
        (webhook_endpoints::Column::Id, e.id.as_str()),
        (webhook_endpoints::Column::Version, expected_version),
    )
    .await
}

fn disabled_refusal(action: &'static str) -> StoreError {
    StoreError::Transition(TransitionError {
        object: "webhook endpoint",
        action,
        from: "disabled",
    })
}

impl Store {
    /// Creates an endpoint, refusing a merchant's 17th in one mode. The count and the insert share
    /// a transaction that first touches the merchant's row, so two concurrent creations on
    /// PostgreSQL or MySQL queue behind each other's row lock and cannot both squeeze past the limit.
    pub async fn create_webhook_endpoint(
        &self,
        scope: &Scope,
        new: NewEndpoint,
        max: usize,
        now: Timestamp,
        idem: Option<crate::IdemRequest<WebhookEndpoint>>,
    ) -> Result<WebhookEndpoint, StoreError> {
        let spec = AuditSpec::new(
            "webhook_endpoint.create",
            |e: &WebhookEndpoint| Some(endpoint_target(e)),
            AuditTarget::id_only("webhook_endpoint", new.id.as_str()),
        );
        let scope = scope.clone();
        let w = work(move |txn, _sink| {
            let (scope, new) = (scope.clone(), new.clone());
            Box::pin(async move {
                merchants::Entity::update_many()
                    .col_expr(merchants::Column::UpdatedAt, Expr::col(merchants::Column::UpdatedAt))
                    .filter(merchants::Column::Id.eq(scope.merchant_id.as_str()))
                    .exec(txn)
                    .await?;
                let count = webhook_endpoints::Entity::find()
                    .filter(webhook_endpoints::Column::MerchantId.eq(scope.merchant_id.as_str()))
                    .filter(webhook_endpoints::Column::Livemode.eq(scope.livemode))
                    .count(txn)
                    .await?;
                if count >= max as u64 {
                    return Err(StoreError::LimitReached("webhook endpoints"));
                }
                let e = WebhookEndpoint {
                    id: new.id,
                    merchant_id: scope.merchant_id,
                    livemode: scope.livemode,
                    url: new.url,
                    description: new.description,
                    events: new.events,
                    status: EndpointStatus::Enabled,
                    disabled_reason: None,
                    failing_since: None,
                    secret_sealed: new.secret_sealed,
                    previous_secret_sealed: None,
                    previous_secret_until: None,
                    version: 1,
                    created_at: now,
                    updated_at: now,
                };
                webhook_endpoints::Entity::insert(endpoint_to_row(&e))
                    .exec_without_returning(txn)
                    .await?;
                Ok(e)
            })
        });
        self.writer().submit_audited(w, idem, Some(spec)).await
    }

    /// The caller's endpoints, oldest first.
    pub async fn webhook_endpoints(&self, scope: &Scope) -> Result<Vec<WebhookEndpoint>, StoreError> {
        webhook_endpoints::Entity::find()
            .filter(webhook_endpoints::Column::MerchantId.eq(scope.merchant_id.as_str()))
            .filter(webhook_endpoints::Column::Livemode.eq(scope.livemode))
            .order_by_asc(webhook_endpoints::Column::Id)
            .all(self.read())
            .await?
            .into_iter()
            .map(endpoint_from_row)
            .collect()
    }

    /// One endpoint in the caller's scope.
    pub async fn webhook_endpoint(
        &self,
        scope: &Scope,
        id: &EndpointId,
    ) -> Result<Option<WebhookEndpoint>, StoreError> {
        crate::error::found(load_endpoint(self.read(), Some(scope), id.as_str()).await)?
            .map(endpoint_from_row)
            .transpose()
    }

    /// One endpoint, whoever owns it (the delivery worker).
    pub async fn webhook_endpoint_unscoped(&self, id: &EndpointId) -> Result<Option<WebhookEndpoint>, StoreError> {
        crate::error::found(load_endpoint(self.read(), None, id.as_str()).await)?
            .map(endpoint_from_row)
            .transpose()
    }

    /// Changes an endpoint.
    pub async fn update_webhook_endpoint(
        &self,
        scope: &Scope,
        id: &EndpointId,
        patch: EndpointPatch,
        now: Timestamp,
    ) -> Result<WebhookEndpoint, StoreError> {
        let spec = AuditSpec::new(
            "webhook_endpoint.update",
            |e: &WebhookEndpoint| Some(endpoint_target(e)),
            AuditTarget::id_only("webhook_endpoint", id.as_str()),
        );
        let (scope, id) = (scope.clone(), id.clone());
        let w = work(move |txn, _sink| {
            let (scope, id, patch) = (scope.clone(), id.clone(), patch.clone());
            Box::pin(async move {
                let mut e = endpoint_from_row(load_endpoint(txn, Some(&scope), id.as_str()).await?)?;
                let version = e.version;
                if let Some(url) = patch.url {
                    e.url = url;
                }
                if let Some(d) = patch.description {
                    e.description = d;
                }
                if let Some(events) = patch.events {
                    e.events = events;
                }
                match patch.enabled {
                    Some(true) => {
                        e.status = EndpointStatus::Enabled;
                        e.disabled_reason = None;
                        e.failing_since = None;
                    }
                    Some(false) if e.status == EndpointStatus::Enabled => {
                        e.status = EndpointStatus::Disabled;
                        e.disabled_reason = Some("disabled by the merchant".into());
                    }
                    _ => {}
                }
                e.version += 1;
                e.updated_at = now;
                save_endpoint(txn, &e, version).await?;
                Ok(e)
            })
        });
        self.writer().submit_audited(w, None, Some(spec)).await
    }

    /// Replaces the signing secret; the current one keeps signing until `previous_until`.
    pub async fn rotate_webhook_secret(
        &self,
        scope: &Scope,
        id: &EndpointId,
        new_sealed: String,
        previous_until: Timestamp,
        now: Timestamp,
    ) -> Result<WebhookEndpoint, StoreError> {
        let spec = AuditSpec::new(
            "webhook_endpoint.rotate_secret",
            |e: &WebhookEndpoint| Some(endpoint_target(e)),
            AuditTarget::id_only("webhook_endpoint", id.as_str()),
        );
        let (scope, id) = (scope.clone(), id.clone());
        let w = work(move |txn, _sink| {
            let (scope, id, new_sealed) = (scope.clone(), id.clone(), new_sealed.clone());
            Box::pin(async move {
                let mut e = endpoint_from_row(load_endpoint(txn, Some(&scope), id.as_str()).await?)?;
                let version = e.version;
                e.previous_secret_sealed = Some(std::mem::replace(&mut e.secret_sealed, new_sealed));
                e.previous_secret_until = Some(previous_until);
                e.version += 1;
                e.updated_at = now;
                save_endpoint(txn, &e, version).await?;
                Ok(e)
            })
        });
        self.writer().submit_audited(w, None, Some(spec)).await
    }

    /// Deletes an endpoint with its messages and attempts; `false` when the caller has no such
    /// endpoint.
    pub async fn delete_webhook_endpoint(&self, scope: &Scope, id: &EndpointId) -> Result<bool, StoreError> {
        let target = AuditTarget::id_only("webhook_endpoint", id.as_str());
        let spec = AuditSpec::new(
            "webhook_endpoint.delete",
            move |gone: &bool| gone.then(|| target.clone()),
            AuditTarget::id_only("webhook_endpoint", id.as_str()),
        );
        let (scope, id) = (scope.clone(), id.clone());
        let w = work(move |txn, _sink| {
            let (scope, id) = (scope.clone(), id.clone());
            Box::pin(async move {
                let gone = webhook_endpoints::Entity::delete_many()
                    .filter(webhook_endpoints::Column::Id.eq(id.as_str()))
                    .filter(webhook_endpoints::Column::MerchantId.eq(scope.merchant_id.as_str()))
                    .filter(webhook_endpoints::Column::Livemode.eq(scope.livemode))
                    .exec(txn)
                    .await?
                    .rows_affected
                    == 1;
                if gone {
                    webhook_attempts::Entity::delete_many()
                        .filter(webhook_attempts::Column::EndpointId.eq(id.as_str()))
                        .exec(txn)
                        .await?;
                    webhook_messages::Entity::delete_many()
                        .filter(webhook_messages::Column::EndpointId.eq(id.as_str()))
                        .exec(txn)
                        .await?;
                }
                Ok(gone)
            })
        });
        self.writer().submit_audited(w, None, Some(spec)).await
    }

    /// Takes (or renews) the named lease for `owner` until `now + lease_ms`; `false` while another
    /// owner holds it. The row is made on first use; a race to make it has one winner (the
    /// primary key).
    pub async fn claim_worker_lease(
        &self,
        name: &str,
        owner: &str,
        now: Timestamp,
        lease_ms: i64,
    ) -> Result<bool, StoreError> {
        crate::audit::take_lease(self.read(), name, owner, ms(now), lease_ms).await
    }

    /// Gives the named lease back, if `owner` still holds it.
    pub async fn release_worker_lease(&self, name: &str, owner: &str) -> Result<(), StoreError> {
        worker_leases::Entity::update_many()
            .col_expr(worker_leases::Column::LeaseUntil, Expr::value(0_i64))
            .filter(worker_leases::Column::Name.eq(name))
            .filter(worker_leases::Column::Owner.eq(owner))
            .exec(self.read())
            .await?;
        Ok(())
    }

    /// Relays up to `limit` undispatched outbox rows (rows an older jinliu wrote; this one makes
    /// messages at commit), oldest first: in one transaction, one message per matching enabled
    /// endpoint, and the rows marked dispatched. Call it while
    /// holding [`RELAY_LEASE`]; if another relayer got to a row first, the unit is re-run on
    /// what is left.
    pub async fn relay_webhook_events(&self, limit: u64, now: Timestamp) -> Result<RelayReport, StoreError> {
        let w = work(move |txn, _sink| {
            Box::pin(async move {
                let batch = undispatched(limit).all(txn).await?;
                if batch.is_empty() {
                    return Ok(RelayReport::default());
                }
                let ids: Vec<String> = batch.iter().map(|e| e.id.clone()).collect();
                // Mark first: the row locks this takes make a concurrent relayer wait here and then
                // see fewer rows, which sends it round again instead of making duplicates.
                let marked = events::Entity::update_many()
                    .col_expr(events::Column::WebhooksDispatched, Expr::value(true))
                    .filter(events::Column::Id.is_in(ids))
                    .filter(events::Column::WebhooksDispatched.eq(false))
                    .exec(txn)
                    .await?
                    .rows_affected;
                if marked != batch.len() as u64 {
                    return Err(StoreError::Conflict);
                }
                let messages = fan_out(txn, &batch, Some(ms(now))).await?;
                Ok(RelayReport {
                    events: batch.len(),
                    messages,
                })
            })
        });
        self.writer().submit(w, None).await
    }

    /// Claims up to `limit` due messages for `owner` for `lease_ms`, in two statements: one
    /// conditional UPDATE over the due ids (a message another node holds, or wins meanwhile, does
    /// not match), then a read of what `owner` got. `owner` must be unique to this call (the
    /// worker adds a random suffix to its node name), so the read finds this claim only.
    pub async fn claim_webhook_messages(
        &self,
        owner: &str,
        now: Timestamp,
        lease_ms: i64,
        limit: u64,
    ) -> Result<Vec<WebhookMessage>, StoreError> {
        let now_ms = ms(now);
        let due: Vec<String> = webhook_messages::Entity::find()
            .select_only()
            .column(webhook_messages::Column::Id)
            .filter(webhook_messages::Column::Status.eq(MessageStatus::Pending.as_str()))
            .filter(webhook_messages::Column::NextAttemptAt.lte(now_ms))
            .filter(webhook_messages::Column::LeaseUntil.lt(now_ms))
            .order_by_asc(webhook_messages::Column::NextAttemptAt)
            .limit(limit)
            .into_tuple()
            .all(self.read())
            .await?;
        if due.is_empty() {
            return Ok(Vec::new());
        }
        webhook_messages::Entity::update_many()
            .col_expr(webhook_messages::Column::LeaseOwner, Expr::value(owner))
            .col_expr(webhook_messages::Column::LeaseUntil, Expr::value(now_ms + lease_ms))
            .filter(webhook_messages::Column::Id.is_in(due.clone()))
            .filter(webhook_messages::Column::Status.eq(MessageStatus::Pending.as_str()))
            .filter(webhook_messages::Column::NextAttemptAt.lte(now_ms))
            .filter(webhook_messages::Column::LeaseUntil.lt(now_ms))
            .exec(self.read())
            .await?;
        webhook_messages::Entity::find()
            .filter(webhook_messages::Column::Id.is_in(due))
            .filter(webhook_messages::Column::LeaseOwner.eq(owner))
            .filter(webhook_messages::Column::LeaseUntil.eq(now_ms + lease_ms))
            .order_by_asc(webhook_messages::Column::NextAttemptAt)
            .all(self.read())
            .await?
            .into_iter()
            .map(message_from_row)
            .collect()
    }

    /// Renews a claimed message's lease just before sending; `false` when it was lost (expired
    /// and taken by another node), and the message must be left alone.
    pub async fn renew_webhook_lease(
        &self,
        owner: &str,
        id: &MessageId,
        now: Timestamp,
        lease_ms: i64,
    ) -> Result<bool, StoreError> {
        let now_ms = ms(now);
        Ok(webhook_messages::Entity::update_many()
            .col_expr(webhook_messages::Column::LeaseUntil, Expr::value(now_ms + lease_ms))
            .filter(webhook_messages::Column::Id.eq(id.as_str()))
            .filter(webhook_messages::Column::LeaseOwner.eq(owner))
            .filter(webhook_messages::Column::LeaseUntil.gte(now_ms))
            .exec(self.read())
            .await?
            .rows_affected
            == 1)
    }

    /// Records one attempt and its consequences in one transaction: the attempt row; the message's
    /// new state (its lease released); the endpoint's failure streak, and — after a 410 or five
    /// days of failures — the endpoint disabled with a `webhook_endpoint.disabled` event in the
    /// outbox. Returns the reason when this attempt disabled the endpoint.
    pub async fn record_webhook_attempt(
        &self,
        owner: &str,
        endpoint_id: &EndpointId,
        attempt: WebhookAttempt,
        delivery: Delivery,
    ) -> Result<Option<String>, StoreError> {
        let (owner, endpoint_id) = (owner.to_owned(), endpoint_id.clone());
        let w = work(move |txn, sink| {
            let (owner, endpoint_id, attempt, delivery) =
                (owner.clone(), endpoint_id.clone(), attempt.clone(), delivery.clone());
            Box::pin(async move {
                let now = attempt.attempted_at;
                let mut disabled = None;
                if let Some(row) = crate::error::found(load_endpoint(txn, None, endpoint_id.as_str()).await)? {
                    let mut e = endpoint_from_row(row)?;
                    let version = e.version;
                    let before = e.clone();
                    match &delivery {
                        Delivery::Succeeded => e.failing_since = None,
                        Delivery::Failed { disable, .. } => {
                            e.failing_since = e.failing_since.or(Some(now));
                            let reason = disable.clone().or_else(|| {
                                failing_too_long(e.failing_since, now).then(|| {
                                    format!(
                                        "every attempt failed for {} days",
                                        jinliu_domain::webhook::DISABLE_AFTER_DAYS
                                    )
                                })
                            });
                            if let Some(reason) = reason
                                && e.status == EndpointStatus::Enabled
                            {
                                let event = endpoint_disabled_event(&e, &reason, now);
                                record_events(sink, &e.merchant_id, e.livemode, &[event], now);
                                e.status = EndpointStatus::Disabled;
                                e.disabled_reason = Some(reason.clone());
                                disabled = Some(reason);
                            }
                        }
                    }
                    if e != before {
                        e.version += 1;
                        e.updated_at = now;
                        save_endpoint(txn, &e, version).await?;
                    }
                }
                let (status, next) = match &delivery {
                    Delivery::Succeeded => (MessageStatus::Succeeded, None),
                    Delivery::Failed { .. } if disabled.is_some() => (MessageStatus::Failed, None),
                    Delivery::Failed { retry_at: None, .. } => (MessageStatus::Failed, None),
                    Delivery::Failed { retry_at: Some(t), .. } => (MessageStatus::Pending, Some(*t)),
                };
                webhook_attempts::Entity::insert(webhook_attempts::ActiveModel {
                    id: Set(attempt.id.to_string()),
                    message_id: Set(attempt.message_id.to_string()),
                    endpoint_id: Set(endpoint_id.to_string()),
                    attempted_at: Set(ms(now)),
                    status_code: Set(attempt.status_code),
                    duration_ms: Set(attempt.duration_ms),
                    response_body: Set(attempt.response_body.clone()),
                    error: Set(attempt.error.clone()),
                    succeeded: Set(delivery == Delivery::Succeeded),
                    next_attempt_at: Set(next.map(ms)),
                })
                .exec_without_returning(txn)
                .await?;
                // Only the lease holder moves the message on; if the lease was lost the attempt
                // still happened and stays in the log.
                webhook_messages::Entity::update_many()
                    .col_expr(webhook_messages::Column::Status, Expr::value(status.as_str()))
                    .col_expr(webhook_messages::Column::NextAttemptAt, Expr::value(next.map(ms)))
                    .col_expr(
                        webhook_messages::Column::Attempts,
                        Expr::col(webhook_messages::Column::Attempts).add(1),
                    )
                    .col_expr(
                        webhook_messages::Column::SeriesAttempts,
                        Expr::col(webhook_messages::Column::SeriesAttempts).add(1),
                    )
                    .col_expr(
                        webhook_messages::Column::LeaseOwner,
                        Expr::value(Option::<String>::None),
                    )
                    .col_expr(webhook_messages::Column::LeaseUntil, Expr::value(0_i64))
                    .col_expr(webhook_messages::Column::UpdatedAt, Expr::value(ms(now)))
                    .filter(webhook_messages::Column::Id.eq(attempt.message_id.as_str()))
                    .filter(webhook_messages::Column::LeaseOwner.eq(owner.as_str()))
                    .exec(txn)
                    .await?;
                Ok(disabled)
            })
        });
        self.writer().submit(w, None).await
    }

    /// Gives up a claimed message without an attempt: its endpoint is disabled (a resend or a
    /// recovery can queue it again once it is enabled) or gone.
    pub async fn abandon_webhook_message(&self, owner: &str, id: &MessageId, now: Timestamp) -> Result<(), StoreError> {
        webhook_messages::Entity::update_many()
            .col_expr(
                webhook_messages::Column::Status,
                Expr::value(MessageStatus::Failed.as_str()),
            )
            .col_expr(
                webhook_messages::Column::NextAttemptAt,
                Expr::value(Option::<i64>::None),
            )
            .col_expr(
                webhook_messages::Column::LeaseOwner,
                Expr::value(Option::<String>::None),
            )
            .col_expr(webhook_messages::Column::LeaseUntil, Expr::value(0_i64))
            .col_expr(webhook_messages::Column::UpdatedAt, Expr::value(ms(now)))
            .filter(webhook_messages::Column::Id.eq(id.as_str()))
            .filter(webhook_messages::Column::LeaseOwner.eq(owner))
            .exec(self.read())
            .await?;
        Ok(())
    }

    /// An endpoint's messages, newest first.
    pub async fn webhook_messages(
        &self,
        scope: &Scope,
        endpoint: &EndpointId,
        f: &MessageFilter,
    ) -> Result<Page<WebhookMessage>, StoreError> {
        load_endpoint(self.read(), Some(scope), endpoint.as_str()).await?;
        let limit = f.limit.clamp(1, 100);
        let page = Ord::max(f.page, 1);
        let mut q = webhook_messages::Entity::find().filter(webhook_messages::Column::EndpointId.eq(endpoint.as_str()));
        if let Some(st) = f.status {
            q = q.filter(webhook_messages::Column::Status.eq(st.as_str()));
        }
        let cursor = f.starting_after.as_ref().map(|c| c.as_str());
        crate::orders::page_newest_first(
            self.read(),
            q,
            webhook_messages::Column::Id,
            cursor,
            page,
            limit,
            message_from_row,
        )
        .await
    }

    /// One message in the caller's scope, with its attempts (oldest first).
    pub async fn webhook_message(
        &self,
        scope: &Scope,
        id: &MessageId,
    ) -> Result<Option<(WebhookMessage, Vec<WebhookAttempt>)>, StoreError> {
        let Some(row) = webhook_messages::Entity::find_by_id(id.to_string())
            .filter(webhook_messages::Column::MerchantId.eq(scope.merchant_id.as_str()))
            .filter(webhook_messages::Column::Livemode.eq(scope.livemode))
            .by_key(self.read())
            .await?
        else {
            return Ok(None);
        };
        let attempts = webhook_attempts::Entity::find()
            .filter(webhook_attempts::Column::MessageId.eq(id.as_str()))
            .order_by_asc(webhook_attempts::Column::AttemptedAt)
            .order_by_asc(webhook_attempts::Column::Id)
            .all(self.read())
            .await?
            .into_iter()
            .map(attempt_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some((message_from_row(row)?, attempts)))
    }

    /// Queues a message again, due now, with a fresh retry schedule (its attempts log is kept).
    pub async fn resend_webhook_message(
        &self,
        scope: &Scope,
        id: &MessageId,
        now: Timestamp,
    ) -> Result<WebhookMessage, StoreError> {
        let target = AuditTarget::id_only("webhook_message", id.as_str());
        let spec = AuditSpec::new(
            "webhook_message.resend",
            move |_: &WebhookMessage| Some(target.clone()),
            AuditTarget::id_only("webhook_message", id.as_str()),
        );
        let (scope, id) = (scope.clone(), id.clone());
        let w = work(move |txn, _sink| {
            let (scope, id) = (scope.clone(), id.clone());
            Box::pin(async move {
                let row = webhook_messages::Entity::find_by_id(id.to_string())
                    .filter(webhook_messages::Column::MerchantId.eq(scope.merchant_id.as_str()))
                    .filter(webhook_messages::Column::Livemode.eq(scope.livemode))
                    .by_key(txn)
                    .await?
                    .ok_or(StoreError::NotFound("webhook_message"))?;
                let ep = load_endpoint(txn, Some(&scope), &row.endpoint_id).await?;
                if ep.status != EndpointStatus::Enabled.as_str() {
                    return Err(disabled_refusal("resend to"));
                }
                webhook_messages::Entity::update_many()
                    .col_expr(
                        webhook_messages::Column::Status,
                        Expr::value(MessageStatus::Pending.as_str()),
                    )
                    .col_expr(webhook_messages::Column::NextAttemptAt, Expr::value(ms(now)))
                    .col_expr(webhook_messages::Column::SeriesAttempts, Expr::value(0_i64))
                    .col_expr(webhook_messages::Column::UpdatedAt, Expr::value(ms(now)))
                    .filter(webhook_messages::Column::Id.eq(id.as_str()))
                    .exec(txn)
                    .await?;
                let row = webhook_messages::Entity::find_by_id(id.to_string())
                    .by_key(txn)
                    .await?
                    .ok_or(StoreError::NotFound("webhook_message"))?;
                message_from_row(row)
            })
        });
        self.writer().submit_audited(w, None, Some(spec)).await
    }

    /// Re-queues everything for an endpoint since `since` (never before the endpoint existed):
    /// its failed messages, and a new message for every event it hears that it has none for
    /// (events from while it was disabled). At most [`RECOVER_MAX_EVENTS`] events are walked.
    /// Returns how many messages were queued.
    pub async fn recover_webhook_endpoint(
        &self,
        scope: &Scope,
        id: &EndpointId,
        since: Timestamp,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let endpoint = id.to_string();
        let spec = AuditSpec::new(
            "webhook_endpoint.recover",
            move |queued: &u64| {
                Some(AuditTarget {
                    detail: serde_json::json!({ "since": jinliu_domain::format_time(since), "queued": queued }),
                    ..AuditTarget::id_only("webhook_endpoint", endpoint.clone())
                })
            },
            AuditTarget::id_only("webhook_endpoint", id.as_str()),
        );
        let (scope, id) = (scope.clone(), id.clone());
        let w = work(move |txn, _sink| {
            let (scope, id) = (scope.clone(), id.clone());
            Box::pin(async move {
                let ep = load_endpoint(txn, Some(&scope), id.as_str()).await?;
                if ep.status != EndpointStatus::Enabled.as_str() {
                    return Err(disabled_refusal("recover"));
                }
                let since_ms = Ord::max(ms(since), ep.created_at);
                let now_ms = ms(now);
                let requeued = webhook_messages::Entity::update_many()
                    .col_expr(
                        webhook_messages::Column::Status,
                        Expr::value(MessageStatus::Pending.as_str()),
                    )
                    .col_expr(webhook_messages::Column::NextAttemptAt, Expr::value(now_ms))
                    .col_expr(webhook_messages::Column::SeriesAttempts, Expr::value(0_i64))
                    .col_expr(webhook_messages::Column::UpdatedAt, Expr::value(now_ms))
                    .filter(webhook_messages::Column::EndpointId.eq(id.as_str()))
                    .filter(webhook_messages::Column::Status.eq(MessageStatus::Failed.as_str()))
                    .filter(webhook_messages::Column::CreatedAt.gte(since_ms))
                    .exec(txn)
                    .await?
                    .rows_affected;
                // Undispatched events are left to the relay, which will make their messages.
                let candidates = events::Entity::find()
                    .filter(events::Column::MerchantId.eq(scope.merchant_id.as_str()))
                    .filter(events::Column::Livemode.eq(scope.livemode))
                    .filter(events::Column::CreatedAt.gte(since_ms))
                    .filter(events::Column::WebhooksDispatched.eq(true))
                    .order_by_asc(events::Column::Id)
                    .limit(RECOVER_MAX_EVENTS)
                    .all(txn)
                    .await?;
                let heard: Vec<&events::Model> = candidates.iter().filter(|ev| matches(&ep, ev)).collect();
                let mut have: HashMap<String, ()> = HashMap::new();
                for chunk in heard.chunks(500) {
                    let ids: Vec<&str> = chunk.iter().map(|e| e.id.as_str()).collect();
                    let existing: Vec<String> = webhook_messages::Entity::find()
                        .select_only()
                        .column(webhook_messages::Column::EventId)
                        .filter(webhook_messages::Column::EndpointId.eq(id.as_str()))
                        .filter(webhook_messages::Column::EventId.is_in(ids))
                        .into_tuple()
                        .all(txn)
                        .await?;
                    have.extend(existing.into_iter().map(|e| (e, ())));
                }
                let rows: Vec<_> = heard
                    .into_iter()
                    .filter(|ev| !have.contains_key(&ev.id))
                    .map(|ev| new_message(&ep, ev, now_ms))
                    .collect();
                let made = rows.len() as u64;
                crate::persist::insert_chunked(txn, rows).await?;
                Ok(requeued + made)
            })
        });
        self.writer().submit_audited(w, None, Some(spec)).await
    }
}

impl Store {
    /// Deletes up to `limit` finished messages (succeeded, or failed and given up) last changed
    /// before `before`, with their attempts; returns how many messages went. Pending messages are
    /// kept whatever their age. The events stay in the outbox, so a later recovery can still make
    /// new messages for them.
    pub async fn purge_webhook_messages(&self, before: Timestamp, limit: u64) -> Result<u64, StoreError> {
        use sea_orm::TransactionTrait;
        let txn = self.read().begin().await?;
        let ids: Vec<String> = webhook_messages::Entity::find()
            .select_only()
            .column(webhook_messages::Column::Id)
            .filter(
                webhook_messages::Column::Status
                    .is_in([MessageStatus::Succeeded.as_str(), MessageStatus::Failed.as_str()]),
            )
            .filter(webhook_messages::Column::UpdatedAt.lt(ms(before)))
            .limit(limit)
            .into_tuple()
            .all(&txn)
            .await?;
        if ids.is_empty() {
            txn.rollback().await?;
            return Ok(0);
        }
        webhook_attempts::Entity::delete_many()
            .filter(webhook_attempts::Column::MessageId.is_in(ids.iter().map(String::as_str)))
            .exec(&txn)
            .await?;
        let gone = webhook_messages::Entity::delete_many()
            .filter(webhook_messages::Column::Id.is_in(ids.iter().map(String::as_str)))
            .exec(&txn)
            .await?
            .rows_affected;
        txn.commit().await?;
        Ok(gone)
    }
}
