//! The audit log: one row per mutation, written in the mutation's own transaction, then chained
//! by a single sealer so that any later edit, deletion, reordering or truncation shows.
//!
//! Writing a row costs a share of the group commit's tail (the writer writes the rows of a whole
//! batch together: the rows, and their ids and hashes into the `audit_pending` queue) in a
//! transaction that is being committed anyway; nothing on the write path waits for a counter or a
//! lock. The chain is built afterwards: the sealer (one node at a time, by lease) takes committed
//! rows off the queue, numbers them (`seq`) and gives each a MAC over the previous row's MAC, its
//! number and its hash (SHA-256 over every field), under a key that is not in the database. Seals are rows of their own
//! (`audit_seals`): an audit row is written once and never updated, so sealing inserts a few
//! narrow rows instead of rewriting wide ones (docs/performance.md, run O). `verify_audit` walks the chain and
//! compares it with checkpoints (`seq`, head MAC) the server writes outside the database, which
//! is what catches a truncated tail. Retention deletes only whole sealed ranges that end just
//! before a checkpointed row; that row stays as the anchor (its MAC is in the checkpoint), so
//! verification still passes.
//!
//! Who acted comes from an [`AuditContext`] the server sets once per request with
//! [`with_audit_context`]; a store method reads it when it queues its unit of work. A task-local
//! rather than an argument on every mutation: the context is request metadata (like a tracing
//! span), and a mutation that forgets to pass it would be silently unattributed, while here a
//! missing context is visible in the log as the `unattributed` system actor.

use std::future::Future;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use jinliu_domain::{AuditActor, AuditContext, AuditId, AuditTarget, Timestamp};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionSession, TransactionTrait, TryIntoModel,
};
use sha2::{Digest, Sha256};

use crate::entity::{audit_log, audit_pending, audit_seals, worker_leases};
use crate::error::is_unique_violation;
use crate::persist::ByKey;
use crate::writer::{TxFuture, work};
use crate::{Store, StoreError};

tokio::task_local! {
    static CONTEXT: Arc<AuditContext>;
}

/// Runs `f` with `ctx` as the author of every audit row it causes.
pub async fn with_audit_context<F: Future>(ctx: AuditContext, f: F) -> F::Output {
    CONTEXT.scope(Arc::new(ctx), f).await
}

/// The context set by [`with_audit_context`], or the `unattributed` system actor.
pub fn current_audit_context() -> Arc<AuditContext> {
    CONTEXT
        .try_with(|c| c.clone())
        .unwrap_or_else(|_| Arc::new(AuditContext::system("unattributed")))
}

/// Describes a unit's result as the audit target (`None`: nothing changed).
type Describe<T> = Box<dyn Fn(&T) -> Option<AuditTarget> + Send + Sync>;

/// What a mutation records: its action name and how to describe its result.
pub(crate) struct AuditSpec<T> {
    ctx: Arc<AuditContext>,
    action: &'static str,
    /// The object after the change; `None` when nothing changed (a duplicate notification).
    target: Describe<T>,
    /// The object as the request named it, for refusals and no-ops.
    hint: AuditTarget,
}

impl<T> AuditSpec<T> {
    /// A spec authored by the current context.
    pub(crate) fn new(
        action: &'static str,
        target: impl Fn(&T) -> Option<AuditTarget> + Send + Sync + 'static,
        hint: AuditTarget,
    ) -> Self {
        AuditSpec {
            ctx: current_audit_context(),
            action,
            target: Box::new(target),
            hint,
        }
    }

    /// The row for a unit that succeeded.
    pub(crate) fn success_row(&self, value: &T) -> audit_log::ActiveModel {
        match (self.target)(value) {
            Some(t) => row(&self.ctx, self.action, &t, "ok"),
            None => row(&self.ctx, self.action, &self.hint, "no_change"),
        }
    }

    /// The row for a unit the business rules refused.
    pub(crate) fn refusal_row(&self, e: &StoreError) -> audit_log::ActiveModel {
        let outcome = format!("refused:{}", e.audit_code());
        row(&self.ctx, self.action, &self.hint, &outcome)
    }

    /// Appends the row for a unit that succeeded.
    pub(crate) async fn record_success<C: ConnectionTrait>(&self, conn: &C, value: &T) -> Result<(), StoreError> {
        insert_rows(conn, vec![self.success_row(value)]).await
    }

    /// Appends the row for a unit the business rules refused.
    pub(crate) async fn record_refusal<C: ConnectionTrait>(&self, conn: &C, e: &StoreError) -> Result<(), StoreError> {
        insert_rows(conn, vec![self.refusal_row(e)]).await
    }
}

/// Appends one row (unsealed) in `conn`'s transaction.
pub(crate) async fn append<C: ConnectionTrait>(
    conn: &C,
    ctx: &AuditContext,
    action: &str,
    target: &AuditTarget,
    outcome: &str,
) -> Result<(), StoreError> {
    insert_rows(conn, vec![row(ctx, action, target, outcome)]).await
}

/// Inserts rows in `conn`'s transaction, with their ids and hashes in the sealer's queue,
/// [`INSERT_CHUNK`](crate::persist::INSERT_CHUNK) per statement (the group-commit writer writes
/// the rows of a whole batch at once).
pub(crate) async fn insert_rows<C: ConnectionTrait>(
    conn: &C,
    rows: Vec<audit_log::ActiveModel>,
) -> Result<(), StoreError> {
    let pending = pending_rows(&rows);
    crate::persist::insert_chunked(conn, rows).await?;
    crate::persist::insert_chunked(conn, pending).await
}

/// The sealer's queue entries of `rows`: each row's id and [`row_hash`].
pub(crate) fn pending_rows(rows: &[audit_log::ActiveModel]) -> Vec<audit_pending::ActiveModel> {
    rows.iter()
        .filter_map(|r| r.clone().try_into_model().ok())
        .map(|m| {
            let entry = AuditEntry::from(m);
            audit_pending::ActiveModel {
                row_hash: Set(Some(row_hash(&entry))),
                audit_id: Set(entry.id),
            }
        })
        .collect()
}

/// One unsealed row, timed now.
fn row(ctx: &AuditContext, action: &str, target: &AuditTarget, outcome: &str) -> audit_log::ActiveModel {
    let detail = target.detail.to_string();
    let digest = hex::encode(Sha256::digest(detail.as_bytes()));
    let merchant = target.merchant_id.as_ref().or(ctx.merchant_id.as_ref());
    audit_log::ActiveModel {
        id: Set(AuditId::generate().to_string()),
        at: Set(chrono::Utc::now().timestamp_millis()),
        merchant_id: Set(merchant.map(|m| m.to_string())),
        actor_type: Set(ctx.actor.kind().to_owned()),
        actor_id: Set(ctx.actor.id().map(|s| cut(&s, 128))),
        role: Set(ctx.actor.role().map(str::to_owned)),
        action: Set(cut(action, 64)),
        target_type: Set(target.kind.to_owned()),
        target_id: Set(cut(&target.id, 128)),
        digest: Set(digest),
        detail: Set(detail),
        outcome: Set(cut(outcome, 64)),
        request_id: Set(ctx.request_id.as_deref().map(|s| cut(s, 64))),
        ip: Set(ctx.ip.as_deref().map(|s| cut(s, 64))),
        user_agent: Set(ctx.user_agent.as_deref().map(|s| cut(s, 200))),
    }
}

fn cut(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

/// One audit row as read back.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    /// `aud_…`
    pub id: String,
    /// Position in the chain; `None` until sealed (about a second after the commit).
    pub seq: Option<i64>,
    /// The chain MAC, hex.
    #[serde(skip)]
    pub mac: Option<String>,
    /// When (unix milliseconds).
    pub at: i64,
    /// The merchant.
    pub merchant_id: Option<String>,
    /// `user`, `key`, `provider`, `cli`, `system`, `anonymous`.
    pub actor_type: String,
    /// The user or key id, provider account or worker.
    pub actor_id: Option<String>,
    /// The user's role.
    pub role: Option<String>,
    /// `payment.create`, `refund.create`, `key.revoke`, …
    pub action: String,
    /// `payment`, `refund`, `api_key`, …
    pub target_type: String,
    /// Its id.
    pub target_id: String,
    /// SHA-256 of `detail`.
    pub digest: String,
    /// The redacted after-state summary (JSON text).
    pub detail: String,
    /// `ok`, `no_change`, `refused:<code>`.
    pub outcome: String,
    /// `x-request-id`.
    pub request_id: Option<String>,
    /// Client address.
    pub ip: Option<String>,
    /// Client user agent.
    pub user_agent: Option<String>,
}

impl From<audit_log::Model> for AuditEntry {
    fn from(r: audit_log::Model) -> Self {
        AuditEntry {
            id: r.id,
            seq: None,
            mac: None,
            at: r.at,
            merchant_id: r.merchant_id,
            actor_type: r.actor_type,
            actor_id: r.actor_id,
            role: r.role,
            action: r.action,
            target_type: r.target_type,
            target_id: r.target_id,
            digest: r.digest,
            detail: r.detail,
            outcome: r.outcome,
            request_id: r.request_id,
            ip: r.ip,
            user_agent: r.user_agent,
        }
    }
}

/// A row's fields in the order the hashes take them (absent ones as a lone NUL).
fn fields(e: &AuditEntry) -> [std::borrow::Cow<'_, str>; 15] {
    fn opt(v: &Option<String>) -> std::borrow::Cow<'_, str> {
        v.as_deref().unwrap_or("\u{0}").into()
    }
    [
        e.id.as_str().into(),
        e.at.to_string().into(),
        opt(&e.merchant_id),
        e.actor_type.as_str().into(),
        opt(&e.actor_id),
        opt(&e.role),
        e.action.as_str().into(),
        e.target_type.as_str().into(),
        e.target_id.as_str().into(),
        e.digest.as_str().into(),
        e.detail.as_str().into(),
        e.outcome.as_str().into(),
        opt(&e.request_id),
        opt(&e.ip),
        opt(&e.user_agent),
    ]
}

/// Feeds `parts` to `sink`, each length-prefixed so that moving bytes between parts changes the
/// input.
fn feed<'a>(mut sink: impl FnMut(&[u8]), parts: impl IntoIterator<Item = &'a str>) {
    for p in parts {
        sink(&(p.len() as u64).to_be_bytes());
        sink(p.as_bytes());
    }
}

/// A row's hash: SHA-256 over every field, hex. The writer computes it as it queues the row, so
/// the sealer chains rows without reading them.
pub fn row_hash(e: &AuditEntry) -> String {
    let mut h = Sha256::new();
    let f = fields(e);
    feed(|b| h.update(b), f.iter().map(|c| c.as_ref()));
    hex::encode(h.finalize())
}

/// The MAC of the link `seq`: HMAC-SHA256 over the previous MAC, the number and the row's hash.
pub fn seal_mac(key: &[u8], prev_mac: &str, seq: i64, row_hash: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    feed(|b| mac.update(b), [prev_mac, &seq.to_string(), row_hash]);
    hex::encode(mac.finalize().into_bytes())
}

/// The MAC of a link sealed before migration m0012 (whose seal has no row hash): HMAC-SHA256
/// over the previous MAC, the number and every field.
pub fn chain_mac(key: &[u8], prev_mac: &str, seq: i64, e: &AuditEntry) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    let seq = seq.to_string();
    let f = fields(e);
    feed(
        |b| mac.update(b),
        [prev_mac, seq.as_str()].into_iter().chain(f.iter().map(|c| c.as_ref())),
    );
    hex::encode(mac.finalize().into_bytes())
}

/// A point of the chain recorded outside the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditCheckpoint {
    /// The last sealed row at the time.
    pub seq: i64,
    /// Its MAC.
    pub mac: String,
}

/// What the sealer did in one pass.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SealPass {
    /// Whether this node holds the sealer lease.
    pub leader: bool,
    /// Rows chained in this pass.
    pub sealed: usize,
    /// The chain's head after the pass.
    pub head: Option<AuditCheckpoint>,
}

/// What `verify_audit` found.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditReport {
    /// Sealed rows checked.
    pub checked: u64,
    /// Committed rows the sealer has not reached yet (not covered by the chain).
    pub unsealed: u64,
    /// The first retained row's sequence number.
    pub first_seq: Option<i64>,
    /// The last sealed row's sequence number.
    pub last_seq: Option<i64>,
    /// The first problem, if any: what, and at which sequence number.
    pub problem: Option<AuditProblem>,
}

/// The first thing wrong with the chain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditProblem {
    /// `deleted`, `altered` (edited, reordered or forged), `truncated`, `unanchored`,
    /// `unchained` (a row neither sealed nor queued for its seal: added behind jinliu's back).
    /// `seq` is 0 for `unchained`.
    pub kind: &'static str,
    /// Where.
    pub seq: i64,
    /// The row id there, when there is a row.
    pub row_id: Option<String>,
    /// For a human.
    pub message: String,
}

const SEALER_LEASE: &str = "audit_sealer";

/// Ids per `IN (…)` list when the sealer and the readers look rows up by id.
const ID_CHUNK: usize = 1000;

/// The audit rows with these ids, by id (missing ones absent).
async fn rows_by_id<C: ConnectionTrait>(
    conn: &C,
    ids: &[String],
) -> Result<std::collections::HashMap<String, audit_log::Model>, StoreError> {
    let mut found = std::collections::HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(ID_CHUNK) {
        for row in audit_log::Entity::find()
            .filter(audit_log::Column::Id.is_in(chunk.iter().map(String::as_str)))
            .all(conn)
            .await?
        {
            found.insert(row.id.clone(), row);
        }
    }
    Ok(found)
}

/// `entries` with their seals (`seq`, `mac`) filled in where the sealer has chained them.
async fn with_seals<C: ConnectionTrait>(conn: &C, mut entries: Vec<AuditEntry>) -> Result<Vec<AuditEntry>, StoreError> {
    let mut seals = std::collections::HashMap::with_capacity(entries.len());
    for chunk in entries.chunks(ID_CHUNK) {
        for seal in audit_seals::Entity::find()
            .filter(audit_seals::Column::AuditId.is_in(chunk.iter().map(|e| e.id.as_str())))
            .all(conn)
            .await?
        {
            seals.insert(seal.audit_id, (seal.seq, seal.mac));
        }
    }
    for e in &mut entries {
        if let Some((seq, mac)) = seals.remove(&e.id) {
            (e.seq, e.mac) = (Some(seq), Some(mac));
        }
    }
    Ok(entries)
}

/// `EXISTS` a row of `table` whose `col` is the audit row's id (for a filter on `audit_log`).
fn names_the_row<E: EntityTrait>(table: E, col: E::Column) -> Expr {
    Expr::exists(
        Query::select()
            .expr(Expr::val(1))
            .from(table)
            .and_where(Expr::col((table, col)).equals((audit_log::Entity, audit_log::Column::Id)))
            .to_owned(),
    )
}

/// The last link of the chain.
async fn head<C: ConnectionTrait>(conn: &C) -> Result<Option<AuditCheckpoint>, StoreError> {
    Ok(audit_seals::Entity::find()
        .order_by_desc(audit_seals::Column::Seq)
        .one(conn)
        .await?
        .map(|h| AuditCheckpoint { seq: h.seq, mac: h.mac }))
}

impl Store {
    /// One sealer pass: takes or renews the sealer lease for `owner`, then chains up to `max`
    /// committed unsealed rows. Another node holding the lease → nothing done.
    ///
    /// The pass is a unit of work of the group-commit writer, like every other write on the hot
    /// path. It used to be its own transaction beside the writer; on SQLite the two then took
    /// turns at the one write lock, and the writer, finding it held, slept in SQLite's busy
    /// handler (1, 2, 5, 10 ms …) about ten times a second under load (docs/performance.md,
    /// run G). Another sealer that got to the same rows first (its lease ran out under it) makes
    /// this unit conflict, and the writer runs it again from the new head.
    pub async fn seal_audit(
        &self,
        key: &[u8],
        owner: &str,
        now: Timestamp,
        lease_ms: i64,
        max: u64,
    ) -> Result<SealPass, StoreError> {
        let now_ms = now.timestamp_millis();
        let (key, owner) = (key.to_vec(), owner.to_owned());
        let w = work(move |txn, _sink| {
            let (key, owner) = (key.clone(), owner.clone());
            Box::pin(async move {
                if !take_lease(txn, SEALER_LEASE, &owner, now_ms, lease_ms).await? {
                    return Ok(SealPass::default());
                }
                let (mut seq, mut prev) = match head(txn).await? {
                    Some(h) => (h.seq, h.mac),
                    None => (0, String::new()),
                };
                let queued = audit_pending::Entity::find()
                    .order_by_asc(audit_pending::Column::AuditId)
                    .limit(max)
                    .all(txn)
                    .await?;
                // Off the queue before the seals go in: a sealer that got to these rows first
                // (its lease ran out under it) has deleted them, or holds them locked until it
                // commits, so this deletes fewer and the pass runs again from the new head.
                let mut taken = 0;
                for chunk in queued.chunks(ID_CHUNK) {
                    taken += audit_pending::Entity::delete_many()
                        .filter(audit_pending::Column::AuditId.is_in(chunk.iter().map(|q| q.audit_id.as_str())))
                        .exec(txn)
                        .await?
                        .rows_affected;
                }
                if taken != queued.len() as u64 {
                    return Err(StoreError::Conflict);
                }
                // Rows queued by migration m0012 came without a hash: read those.
                let unhashed: Vec<String> = queued
                    .iter()
                    .filter(|q| q.row_hash.is_none())
                    .map(|q| q.audit_id.clone())
                    .collect();
                let mut rows = rows_by_id(txn, &unhashed).await?;
                let mut seals = Vec::with_capacity(queued.len());
                for q in queued {
                    let hash = match q.row_hash {
                        Some(h) => h,
                        // A row the migration queued and someone deleted since: nothing to hash.
                        // (A hashed row deleted before its seal is sealed all the same, and
                        // verification reports it missing.)
                        None => match rows.remove(&q.audit_id) {
                            Some(row) => row_hash(&AuditEntry::from(row)),
                            None => continue,
                        },
                    };
                    seq += 1;
                    let mac = seal_mac(&key, &prev, seq, &hash);
                    prev = mac.clone();
                    seals.push(audit_seals::ActiveModel {
                        seq: Set(seq),
                        audit_id: Set(q.audit_id),
                        row_hash: Set(Some(hash)),
                        mac: Set(mac),
                    });
                }
                let sealed = seals.len();
                // A duplicate number: another sealer chained other rows after this pass read the
                // head. Run again from the new head.
                match crate::persist::insert_chunked_raw(txn, seals).await {
                    Ok(()) => {}
                    Err(e) if is_unique_violation(&e) => return Err(StoreError::Conflict),
                    Err(e) => return Err(e.into()),
                }
                Ok(SealPass {
                    leader: true,
                    sealed,
                    head: (seq > 0).then_some(AuditCheckpoint { seq, mac: prev }),
                })
            })
        });
        self.writer().submit(w, None).await
    }

    /// The chain's head: the last sealed row.
    pub async fn audit_head(&self) -> Result<Option<AuditCheckpoint>, StoreError> {
        head(self.read()).await
    }

    /// Walks the whole chain with `key`, comparing it with `checkpoints` (already checked for
    /// authenticity by the caller). Reports the first problem.
    pub async fn verify_audit(&self, key: &[u8], checkpoints: &[AuditCheckpoint]) -> Result<AuditReport, StoreError> {
        let mut report = AuditReport {
            unsealed: audit_pending::Entity::find().count(self.read()).await?,
            ..AuditReport::default()
        };
        let by_seq: std::collections::BTreeMap<i64, &str> =
            checkpoints.iter().map(|c| (c.seq, c.mac.as_str())).collect();
        let mut prev: Option<(i64, String)> = None;
        let mut after = i64::MIN;
        loop {
            let page = audit_seals::Entity::find()
                .filter(audit_seals::Column::Seq.gt(after))
                .order_by_asc(audit_seals::Column::Seq)
                .limit(ID_CHUNK as u64)
                .all(self.read())
                .await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            let ids: Vec<String> = page.iter().map(|s| s.audit_id.clone()).collect();
            let mut rows = rows_by_id(self.read(), &ids).await?;
            for seal in page {
                let seq = seal.seq;
                let problem = |kind: &'static str, row_id: Option<String>, message: String| AuditProblem {
                    kind,
                    seq,
                    row_id,
                    message,
                };
                let Some(row) = rows.remove(&seal.audit_id) else {
                    let message = format!("row seq {seq} ({}) is missing", seal.audit_id);
                    report.problem = Some(problem("deleted", Some(seal.audit_id), message));
                    return Ok(report);
                };
                let (prev_seq, prev_mac) = match &prev {
                    Some(p) => p.clone(),
                    // The chain's start.
                    None if seq == 1 => (0, String::new()),
                    // The first retained row after a prune: a checkpoint recorded its MAC when
                    // retention deleted everything before it.
                    None if by_seq.get(&seq).is_some_and(|m| *m == seal.mac) => {
                        report.first_seq = Some(seq);
                        report.checked += 1;
                        report.last_seq = Some(seq);
                        prev = Some((seq, seal.mac));
                        continue;
                    }
                    None => {
                        let message = format!("the log starts at seq {seq} and no checkpoint vouches for that row");
                        report.problem = Some(problem("unanchored", Some(seal.audit_id), message));
                        return Ok(report);
                    }
                };
                report.first_seq.get_or_insert(seq);
                if seq != prev_seq + 1 {
                    report.problem = Some(AuditProblem {
                        kind: "deleted",
                        seq: prev_seq + 1,
                        row_id: None,
                        message: format!("row seq {} is missing", prev_seq + 1),
                    });
                    return Ok(report);
                }
                let entry = AuditEntry::from(row);
                let (expected, hash_matches) = match &seal.row_hash {
                    Some(hash) => (seal_mac(key, &prev_mac, seq, hash), *hash == row_hash(&entry)),
                    None => (chain_mac(key, &prev_mac, seq, &entry), true),
                };
                let checkpoint_differs = by_seq.get(&seq).is_some_and(|m| *m != seal.mac);
                if expected != seal.mac || !hash_matches || checkpoint_differs {
                    let message = format!("row seq {seq} ({}) was edited, reordered or forged", seal.audit_id);
                    report.problem = Some(problem("altered", Some(seal.audit_id), message));
                    return Ok(report);
                }
                report.checked += 1;
                report.last_seq = Some(seq);
                prev = Some((seq, seal.mac));
            }
        }
        // A checkpoint beyond the last row means rows were cut off the end.
        let last = report.last_seq.unwrap_or(0);
        if let Some((&seq, _)) = by_seq.range(last + 1..).next() {
            report.problem = Some(AuditProblem {
                kind: "truncated",
                seq: last + 1,
                row_id: None,
                message: format!("the log ends at seq {last} but a checkpoint records seq {seq}"),
            });
            return Ok(report);
        }
        // A row goes into the queue in its own transaction and leaves it in the one that seals
        // it, so a row with neither a seal nor a queue entry was added, or had its entry
        // removed, behind jinliu's back (and could be edited unnoticed from then on).
        let unchained = audit_log::Entity::find()
            .filter(names_the_row(audit_seals::Entity, audit_seals::Column::AuditId).not())
            .filter(names_the_row(audit_pending::Entity, audit_pending::Column::AuditId).not())
            .order_by_asc(audit_log::Column::Id)
            .limit(1)
            .all(self.read())
            .await?;
        if let Some(row) = unchained.into_iter().next() {
            report.problem = Some(AuditProblem {
                kind: "unchained",
                seq: 0,
                message: format!("row {} is neither sealed nor waiting for its seal", row.id),
                row_id: Some(row.id),
            });
        }
        Ok(report)
    }

    /// Deletes the sealed rows before `checkpoint.seq` (which the caller has recorded outside
    /// the database), with their seals. The checkpoint's own row stays: it anchors the rest of
    /// the chain.
    pub async fn prune_audit(&self, checkpoint: &AuditCheckpoint) -> Result<u64, StoreError> {
        let anchor = self.audit_entry_at(checkpoint.seq).await?;
        if anchor.and_then(|a| a.mac).as_deref() != Some(checkpoint.mac.as_str()) {
            return Err(StoreError::Corrupt(format!(
                "audit row seq {} does not match the checkpoint; not pruning",
                checkpoint.seq
            )));
        }
        // The check reads outside the transaction, so that the transaction's first statement is
        // a write: on SQLite a transaction that read first cannot take the write lock once
        // another connection has committed (SQLITE_BUSY at once, no busy wait).
        let txn = self.read().begin().await?;
        let pruned = audit_log::Entity::delete_many()
            .filter(
                audit_log::Column::Id.in_subquery(
                    Query::select()
                        .column(audit_seals::Column::AuditId)
                        .from(audit_seals::Entity)
                        .and_where(Expr::col(audit_seals::Column::Seq).lt(checkpoint.seq))
                        .to_owned(),
                ),
            )
            .exec(&txn)
            .await?
            .rows_affected;
        audit_seals::Entity::delete_many()
            .filter(audit_seals::Column::Seq.lt(checkpoint.seq))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(pruned)
    }

    /// The sealed row with sequence number `seq`.
    pub async fn audit_entry_at(&self, seq: i64) -> Result<Option<AuditEntry>, StoreError> {
        let Some(seal) = audit_seals::Entity::find_by_id(seq).by_key(self.read()).await? else {
            return Ok(None);
        };
        let row = audit_log::Entity::find_by_id(seal.audit_id).by_key(self.read()).await?;
        Ok(row.map(|r| AuditEntry {
            seq: Some(seal.seq),
            mac: Some(seal.mac),
            ..AuditEntry::from(r)
        }))
    }

    /// Audit rows matching `f`, newest first.
    pub async fn audit_entries(&self, f: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        let mut q = audit_log::Entity::find();
        if let Some(m) = &f.merchant_id {
            q = q.filter(audit_log::Column::MerchantId.eq(m.as_str()));
        }
        if let Some(a) = &f.actor_id {
            q = q.filter(audit_log::Column::ActorId.eq(a.as_str()));
        }
        if let Some(a) = &f.action {
            q = q.filter(audit_log::Column::Action.eq(a.as_str()));
        }
        if let Some(t) = &f.target_type {
            q = q.filter(audit_log::Column::TargetType.eq(t.as_str()));
        }
        if let Some(t) = &f.target_id {
            q = q.filter(audit_log::Column::TargetId.eq(t.as_str()));
        }
        if let Some(from) = f.from {
            q = q.filter(audit_log::Column::At.gte(from.timestamp_millis()));
        }
        if let Some(to) = f.to {
            q = q.filter(audit_log::Column::At.lt(to.timestamp_millis()));
        }
        if let Some(before) = &f.before_id {
            q = q.filter(audit_log::Column::Id.lt(before.as_str()));
        }
        let rows = q
            .order_by_desc(audit_log::Column::Id)
            .limit(f.limit.clamp(1, 1000))
            .all(self.read())
            .await?;
        with_seals(self.read(), rows.into_iter().map(AuditEntry::from).collect()).await
    }

    /// Every audit row in id order, with its seal once it has one (for export).
    pub async fn audit_page(&self, after_id: Option<&str>, limit: u64) -> Result<Vec<AuditEntry>, StoreError> {
        let mut q = audit_log::Entity::find();
        if let Some(a) = after_id {
            q = q.filter(audit_log::Column::Id.gt(a));
        }
        let rows = q
            .order_by_asc(audit_log::Column::Id)
            .limit(limit)
            .all(self.read())
            .await?;
        with_seals(self.read(), rows.into_iter().map(AuditEntry::from).collect()).await
    }

    /// Records `ctx` doing `action` to `target` in a transaction of its own: for what happens
    /// outside a unit of work (a refused login, a provider call).
    pub async fn record_audit(
        &self,
        ctx: &AuditContext,
        action: &str,
        target: &AuditTarget,
        outcome: &str,
    ) -> Result<(), StoreError> {
        append(self.read(), ctx, action, target, outcome).await
    }

    /// Runs `f` and its audit row in one transaction of the read pool (for the account and user
    /// changes that do not go through the group-commit writer).
    pub(crate) async fn audited_txn<T, F>(&self, spec: AuditSpec<T>, f: F) -> Result<T, StoreError>
    where
        F: for<'a> FnOnce(&'a DatabaseTransaction) -> TxFuture<'a, T>,
    {
        self.audited_txn_idem(spec, None, f).await
    }

    /// [`audited_txn`](Store::audited_txn) that also keeps the request's idempotent answer: in
    /// the change's own transaction on success, and in one of its own for a business refusal.
    pub(crate) async fn audited_txn_idem<T, F>(
        &self,
        spec: AuditSpec<T>,
        idem: Option<crate::IdemRequest<T>>,
        f: F,
    ) -> Result<T, StoreError>
    where
        F: for<'a> FnOnce(&'a DatabaseTransaction) -> TxFuture<'a, T>,
    {
        let txn = self.read().begin().await?;
        match f(&txn).await {
            Ok(v) => {
                spec.record_success(&txn, &v).await?;
                if let Some(idem) = idem {
                    crate::idempotency::record_success(&txn, &idem, &v).await?;
                }
                txn.commit().await?;
                Ok(v)
            }
            Err(e) => {
                txn.rollback().await?;
                if e.is_business() {
                    spec.record_refusal(self.read(), &e).await?;
                    if let Some(idem) = idem {
                        let txn = self.read().begin().await?;
                        crate::idempotency::record_failure(&txn, &idem, &e).await?;
                        txn.commit().await?;
                    }
                }
                Err(e)
            }
        }
    }
}

/// Takes `name`'s lease for `owner` until `now + lease_ms` if it is free, expired or already
/// `owner`'s.
pub(crate) async fn take_lease<C: ConnectionTrait + TransactionTrait>(
    conn: &C,
    name: &str,
    owner: &str,
    now_ms: i64,
    lease_ms: i64,
) -> Result<bool, StoreError> {
    let renewed = worker_leases::Entity::update_many()
        .col_expr(worker_leases::Column::Owner, Expr::value(owner))
        .col_expr(worker_leases::Column::LeaseUntil, Expr::value(now_ms + lease_ms))
        .filter(worker_leases::Column::Name.eq(name))
        .filter(
            Condition::any()
                .add(worker_leases::Column::Owner.eq(owner))
                .add(worker_leases::Column::LeaseUntil.lt(now_ms)),
        )
        .exec(conn)
        .await?;
    if renewed.rows_affected == 1 {
        return Ok(true);
    }
    let exists = worker_leases::Entity::find_by_id(name.to_owned()).by_key(conn).await?;
    if exists.is_some() {
        return Ok(false);
    }
    // In a transaction of its own (a savepoint inside a unit of work): on PostgreSQL a failed
    // INSERT would otherwise abort the whole transaction it runs in.
    let nested = conn.begin().await?;
    let inserted = worker_leases::Entity::insert(worker_leases::ActiveModel {
        name: Set(name.to_owned()),
        owner: Set(owner.to_owned()),
        lease_until: Set(now_ms + lease_ms),
    })
    .exec_without_returning(&nested)
    .await;
    match inserted {
        Ok(_) => {
            nested.commit().await?;
            Ok(true)
        }
        Err(e) if is_unique_violation(&e) => {
            nested.rollback().await?;
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

/// Filters of `GET /api/audit`.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// The caller's merchant (always set for merchant callers).
    pub merchant_id: Option<jinliu_domain::MerchantId>,
    /// A user or key id.
    pub actor_id: Option<String>,
    /// An action name.
    pub action: Option<String>,
    /// A target type.
    pub target_type: Option<String>,
    /// A target id.
    pub target_id: Option<String>,
    /// From (inclusive).
    pub from: Option<Timestamp>,
    /// To (exclusive).
    pub to: Option<Timestamp>,
    /// Rows older than this id (the previous page's last id).
    pub before_id: Option<String>,
    /// Page size (1–1000).
    pub limit: u64,
}

/// The actor of a CLI command.
pub fn cli_context() -> AuditContext {
    AuditContext::bare(AuditActor::Cli)
}

#[cfg(test)]
mod tests {
    use super::{AuditEntry, chain_mac, row_hash, seal_mac};

    fn entry() -> AuditEntry {
        AuditEntry {
            id: "aud_01".into(),
            seq: None,
            mac: None,
            at: 1_700_000_000_000,
            merchant_id: Some("mer_1".into()),
            actor_type: "key".into(),
            actor_id: Some("key_1".into()),
            role: None,
            action: "payment.create".into(),
            target_type: "payment".into(),
            target_id: "pay_1".into(),
            digest: "ab".into(),
            detail: "{\"status\":\"pending\"}".into(),
            outcome: "ok".into(),
            request_id: Some("req-1".into()),
            ip: None,
            user_agent: Some("curl/8".into()),
        }
    }

    /// The value the m0006 sealer computed for this row (taken from that code): links sealed
    /// before m0012 must keep verifying.
    #[test]
    fn links_sealed_before_m0012_keep_their_mac() {
        assert_eq!(
            chain_mac(b"k", "prev", 7, &entry()),
            "37e327aaf164cbc4dbb3db05e9ece56bf202ee7c86850ca06eeb0a91c4829657"
        );
    }

    #[test]
    fn the_row_hash_changes_when_a_field_is_edited_or_bytes_move_between_fields() {
        let base = row_hash(&entry());
        let mut moved = entry();
        (moved.target_type, moved.target_id) = ("paymentp".into(), "ay_1".into());
        let mut edited = entry();
        edited.user_agent = Some("curl/9".into());
        for other in [moved, edited] {
            assert_ne!(row_hash(&other), base);
        }
    }

    #[test]
    fn a_link_mac_depends_on_the_key_the_previous_mac_the_number_and_the_row() {
        let h = row_hash(&entry());
        let mac = seal_mac(b"k", "prev", 7, &h);
        for other in [
            seal_mac(b"K", "prev", 7, &h),
            seal_mac(b"k", "prev2", 7, &h),
            seal_mac(b"k", "prev", 8, &h),
            seal_mac(b"k", "prev", 7, &row_hash(&AuditEntry { at: 1, ..entry() })),
        ] {
            assert_ne!(other, mac);
        }
    }
}
