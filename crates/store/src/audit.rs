//! The audit log: one row per mutation, written in the mutation's own transaction, then chained
//! by a single sealer so that any later edit, deletion, reordering or truncation shows.
//!
//! Writing a row costs a share of one multi-row INSERT per group commit (the writer writes the
//! rows of a whole batch together) in a transaction that is being committed anyway; nothing on
//! the write path waits for a counter or a lock. The chain is built afterwards: the sealer (one node
//! at a time, by lease) numbers committed rows (`seq`) and gives each a MAC over its fields and the
//! previous row's MAC, under a key that is not in the database. `verify_audit` walks the chain and
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
use sea_orm::sea_query::{CaseStatement, Expr, ExprTrait, Func};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionSession, TransactionTrait,
};
use sha2::{Digest, Sha256};

use crate::entity::{audit_log, worker_leases};
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

/// Inserts unsealed rows in `conn`'s transaction, [`INSERT_CHUNK`] per statement (the
/// group-commit writer writes the rows of a whole batch at once).
pub(crate) async fn insert_rows<C: ConnectionTrait>(
    conn: &C,
    rows: Vec<audit_log::ActiveModel>,
) -> Result<(), StoreError> {
    crate::persist::insert_chunked(conn, rows).await
}

/// One unsealed row, timed now.
fn row(ctx: &AuditContext, action: &str, target: &AuditTarget, outcome: &str) -> audit_log::ActiveModel {
    let detail = target.detail.to_string();
    let digest = hex::encode(Sha256::digest(detail.as_bytes()));
    let merchant = target.merchant_id.as_ref().or(ctx.merchant_id.as_ref());
    audit_log::ActiveModel {
        id: Set(AuditId::generate().to_string()),
        seq: Set(None),
        mac: Set(None),
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
            seq: r.seq,
            mac: r.mac,
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

/// The chain MAC of a row: HMAC-SHA256 over the previous MAC and every field, each
/// length-prefixed so that moving bytes between fields changes the input.
pub fn chain_mac(key: &[u8], prev_mac: &str, seq: i64, e: &AuditEntry) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    let fields: [&str; 16] = [
        prev_mac,
        &seq.to_string(),
        &e.id,
        &e.at.to_string(),
        e.merchant_id.as_deref().unwrap_or("\u{0}"),
        &e.actor_type,
        e.actor_id.as_deref().unwrap_or("\u{0}"),
        e.role.as_deref().unwrap_or("\u{0}"),
        &e.action,
        &e.target_type,
        &e.target_id,
        &e.digest,
        &e.detail,
        &e.outcome,
        e.request_id.as_deref().unwrap_or("\u{0}"),
        e.ip.as_deref().unwrap_or("\u{0}"),
    ];
    for f in fields
        .iter()
        .chain(std::iter::once(&e.user_agent.as_deref().unwrap_or("\u{0}")))
    {
        mac.update(&(f.len() as u64).to_be_bytes());
        mac.update(f.as_bytes());
    }
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
    /// `deleted`, `altered` (edited, reordered or forged), `truncated`, `unanchored`.
    pub kind: &'static str,
    /// Where.
    pub seq: i64,
    /// The row id there, when there is a row.
    pub row_id: Option<String>,
    /// For a human.
    pub message: String,
}

const SEALER_LEASE: &str = "audit_sealer";

/// Rows chained per UPDATE statement (three bound values a row, plus the id list).
const SEAL_CHUNK: usize = 200;

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
                let head = audit_log::Entity::find()
                    .filter(audit_log::Column::Seq.is_not_null())
                    .order_by_desc(audit_log::Column::Seq)
                    .one(txn)
                    .await?;
                let (mut seq, mut prev) = match head {
                    Some(h) => (h.seq.unwrap_or(0), h.mac.unwrap_or_default()),
                    None => (0, String::new()),
                };
                let rows = audit_log::Entity::find()
                    .filter(audit_log::Column::Seq.is_null())
                    .order_by_asc(audit_log::Column::Id)
                    .limit(max)
                    .all(txn)
                    .await?;
                let sealed = rows.len();
                let mut chained = Vec::with_capacity(sealed);
                for row in rows {
                    let entry = AuditEntry::from(row);
                    seq += 1;
                    let mac = chain_mac(&key, &prev, seq, &entry);
                    prev = mac.clone();
                    chained.push((entry.id, seq, mac));
                }
                // One UPDATE per chunk rather than per row: a few statements per pass, not a
                // thousand.
                for chunk in chained.chunks(SEAL_CHUNK) {
                    let (mut seqs, mut macs) = (CaseStatement::new(), CaseStatement::new());
                    for (id, seq, mac) in chunk {
                        seqs = seqs.case(audit_log::Column::Id.eq(id.as_str()), Expr::value(*seq));
                        macs = macs.case(audit_log::Column::Id.eq(id.as_str()), Expr::value(mac.clone()));
                    }
                    let res = audit_log::Entity::update_many()
                        .col_expr(audit_log::Column::Seq, seqs.into())
                        .col_expr(audit_log::Column::Mac, macs.into())
                        .filter(audit_log::Column::Id.is_in(chunk.iter().map(|(id, _, _)| id.as_str())))
                        // "Still unsealed", written so that no index can serve it: the rows are
                        // found by primary key. As `seq IS NULL`, PostgreSQL's planner picked the
                        // `seq` index instead (its estimate: a handful of NULLs), whose NULL
                        // entries include every row sealed since the last vacuum, and spent
                        // 30–50 ms per pass holding a writer (performance.md, run J).
                        .filter(
                            Expr::expr(Func::coalesce([Expr::col(audit_log::Column::Seq), Expr::val(-1i64)])).eq(-1i64),
                        )
                        .exec(txn)
                        .await;
                    match res {
                        Ok(r) if r.rows_affected == chunk.len() as u64 => {}
                        // Another sealer got there first: run again from the new head.
                        Ok(_) => return Err(StoreError::Conflict),
                        Err(e) if is_unique_violation(&e) => return Err(StoreError::Conflict),
                        Err(e) => return Err(e.into()),
                    }
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
        let head = audit_log::Entity::find()
            .filter(audit_log::Column::Seq.is_not_null())
            .order_by_desc(audit_log::Column::Seq)
            .one(self.read())
            .await?;
        Ok(head.map(|h| AuditCheckpoint {
            seq: h.seq.unwrap_or(0),
            mac: h.mac.unwrap_or_default(),
        }))
    }

    /// Walks the whole chain with `key`, comparing it with `checkpoints` (already checked for
    /// authenticity by the caller). Reports the first problem.
    pub async fn verify_audit(&self, key: &[u8], checkpoints: &[AuditCheckpoint]) -> Result<AuditReport, StoreError> {
        let mut report = AuditReport {
            unsealed: audit_log::Entity::find()
                .filter(audit_log::Column::Seq.is_null())
                .count(self.read())
                .await?,
            ..AuditReport::default()
        };
        let mut by_seq: std::collections::BTreeMap<i64, &str> = std::collections::BTreeMap::new();
        for c in checkpoints {
            by_seq.insert(c.seq, c.mac.as_str());
        }
        let mut prev: Option<(i64, String)> = None;
        let mut after = i64::MIN;
        loop {
            let page = audit_log::Entity::find()
                .filter(audit_log::Column::Seq.gt(after))
                .order_by_asc(audit_log::Column::Seq)
                .limit(1000)
                .all(self.read())
                .await?;
            if page.is_empty() {
                break;
            }
            for row in page {
                let seq = row.seq.unwrap_or(0);
                after = seq;
                let entry = AuditEntry::from(row);
                let (prev_seq, prev_mac) = match &prev {
                    Some(p) => p.clone(),
                    None => {
                        // The first retained row: the chain's start, or the row a checkpoint
                        // recorded when retention pruned everything before it.
                        report.first_seq = Some(seq);
                        let stored = entry.mac.clone().unwrap_or_default();
                        if seq == 1 {
                            (0, String::new())
                        } else if by_seq.get(&seq).is_some_and(|m| *m == stored) {
                            report.checked += 1;
                            report.last_seq = Some(seq);
                            prev = Some((seq, stored));
                            continue;
                        } else {
                            report.problem = Some(AuditProblem {
                                kind: "unanchored",
                                seq,
                                row_id: Some(entry.id.clone()),
                                message: format!("the log starts at seq {seq} and no checkpoint vouches for that row"),
                            });
                            return Ok(report);
                        }
                    }
                };
                if seq != prev_seq + 1 {
                    report.problem = Some(AuditProblem {
                        kind: "deleted",
                        seq: prev_seq + 1,
                        row_id: None,
                        message: format!("row seq {} is missing", prev_seq + 1),
                    });
                    return Ok(report);
                }
                let expected = chain_mac(key, &prev_mac, seq, &entry);
                let stored = entry.mac.clone().unwrap_or_default();
                let checkpoint_differs = by_seq.get(&seq).is_some_and(|m| *m != stored);
                if expected != stored || checkpoint_differs {
                    report.problem = Some(AuditProblem {
                        kind: "altered",
                        seq,
                        row_id: Some(entry.id.clone()),
                        message: format!("row seq {seq} ({}) was edited, reordered or forged", entry.id),
                    });
                    return Ok(report);
                }
                report.checked += 1;
                report.last_seq = Some(seq);
                prev = Some((seq, stored));
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
        }
        Ok(report)
    }

    /// Deletes the sealed rows before `checkpoint.seq` (which the caller has recorded outside
    /// the database). The checkpoint's own row stays: it anchors the rest of the chain.
    pub async fn prune_audit(&self, checkpoint: &AuditCheckpoint) -> Result<u64, StoreError> {
        let anchor = self.audit_entry_at(checkpoint.seq).await?;
        if anchor.and_then(|a| a.mac).as_deref() != Some(checkpoint.mac.as_str()) {
            return Err(StoreError::Corrupt(format!(
                "audit row seq {} does not match the checkpoint; not pruning",
                checkpoint.seq
            )));
        }
        Ok(audit_log::Entity::delete_many()
            .filter(audit_log::Column::Seq.lt(checkpoint.seq))
            .exec(self.read())
            .await?
            .rows_affected)
    }

    /// The sealed row with sequence number `seq`.
    pub async fn audit_entry_at(&self, seq: i64) -> Result<Option<AuditEntry>, StoreError> {
        Ok(audit_log::Entity::find()
            .filter(audit_log::Column::Seq.eq(seq))
            .by_key(self.read())
            .await?
            .map(AuditEntry::from))
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
        Ok(q.order_by_desc(audit_log::Column::Id)
            .limit(f.limit.clamp(1, 1000))
            .all(self.read())
            .await?
            .into_iter()
            .map(AuditEntry::from)
            .collect())
    }

    /// Every audit row in sequence order, sealed ones first (for export).
    pub async fn audit_page(&self, after_id: Option<&str>, limit: u64) -> Result<Vec<AuditEntry>, StoreError> {
        let mut q = audit_log::Entity::find();
        if let Some(a) = after_id {
            q = q.filter(audit_log::Column::Id.gt(a));
        }
        Ok(q.order_by_asc(audit_log::Column::Id)
            .limit(limit)
            .all(self.read())
            .await?
            .into_iter()
            .map(AuditEntry::from)
            .collect())
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
