//! The status-sync queue: payments still open and refunds still pending whose outcome jinliu
//! must fetch from the provider because no notification settled them.
//!
//! A job is written in the same transaction as the payment or refund it follows, due a set delay
//! later (a refund's job is leased to the request that started it until that request settles it
//! or gives up, so sync never re-sends a refund whose first request is still in flight). Nodes claim due jobs with a lease: a conditional UPDATE that only one node can win
//! (`lease_until < now`), so two nodes never query the same payment at once, and a node that
//! dies mid-job loses its lease when it expires. A job whose object is settled is deleted.

use jinliu_domain::Timestamp;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::entity::sync_jobs as row;
use crate::writer::UnitSink;
use crate::{Store, StoreError};

/// What a job follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncKind {
    /// An open payment (`pay_…`).
    Payment,
    /// A pending refund (`re_…`).
    Refund,
}

impl SyncKind {
    fn as_str(self) -> &'static str {
        match self {
            SyncKind::Payment => "payment",
            SyncKind::Refund => "refund",
        }
    }
}

/// A claimed job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncJob {
    /// The payment or refund id.
    pub object_id: String,
    /// What it is.
    pub kind: SyncKind,
    /// How many times it has been claimed, this time included.
    pub attempts: i64,
}

/// The lease holder of a refund job while the request that started the refund is still talking
/// to the provider.
pub(crate) const REQUEST_LEASE_OWNER: &str = "request";
/// How long that request may hold it: far beyond a provider call's timeouts and retries, so sync
/// never races a live request; a crashed node's refunds are picked up after it.
pub(crate) const REQUEST_LEASE_MS: i64 = 10 * 60 * 1000;

/// Schedules the status sync of an object the unit has just created (`object_id` is fresh): the
/// job is written with the unit's batch, only if the unit succeeds (see [`UnitSink`]).
pub(crate) fn schedule(sink: &UnitSink, object_id: &str, kind: SyncKind, due_ms: i64, lease: Option<(&str, i64)>) {
    sink.schedule(row::ActiveModel {
        object_id: Set(object_id.to_owned()),
        kind: Set(kind.as_str().to_owned()),
        next_at: Set(due_ms),
        attempts: Set(0),
        lease_owner: Set(lease.map(|(owner, _)| owner.to_owned())),
        lease_until: Set(lease.map_or(0, |(_, until)| until)),
    });
}

pub(crate) async fn finish<C: ConnectionTrait>(conn: &C, object_id: &str) -> Result<(), StoreError> {
    row::Entity::delete_by_id(object_id.to_owned()).exec(conn).await?;
    Ok(())
}

impl Store {
    /// Claims up to `limit` due jobs for `owner` for `lease_ms`. Jobs another node holds, or
    /// that another node wins between the read and the claim, are skipped.
    pub async fn claim_sync_jobs(
        &self,
        owner: &str,
        now: Timestamp,
        lease_ms: i64,
        limit: u64,
    ) -> Result<Vec<SyncJob>, StoreError> {
        let now_ms = now.timestamp_millis();
        let due = row::Entity::find()
            .filter(row::Column::NextAt.lte(now_ms))
            .filter(row::Column::LeaseUntil.lt(now_ms))
            .order_by_asc(row::Column::NextAt)
            .limit(limit)
            .all(self.read())
            .await?;
        let mut claimed = Vec::with_capacity(due.len());
        for job in due {
            let won = row::Entity::update_many()
                .col_expr(row::Column::LeaseOwner, Expr::value(owner))
                .col_expr(row::Column::LeaseUntil, Expr::value(now_ms + lease_ms))
                .col_expr(row::Column::Attempts, Expr::col(row::Column::Attempts).add(1))
                .filter(row::Column::ObjectId.eq(&job.object_id))
                .filter(row::Column::LeaseUntil.lt(now_ms))
                .filter(row::Column::NextAt.lte(now_ms))
                .exec(self.read())
                .await?
                .rows_affected
                == 1;
            if won {
                claimed.push(SyncJob {
                    kind: if job.kind == "refund" {
                        SyncKind::Refund
                    } else {
                        SyncKind::Payment
                    },
                    object_id: job.object_id,
                    attempts: job.attempts + 1,
                });
            }
        }
        Ok(claimed)
    }

    /// Gives a claimed job back, due again at `next_at`.
    pub async fn reschedule_sync_job(
        &self,
        owner: &str,
        object_id: &str,
        next_at: Timestamp,
    ) -> Result<(), StoreError> {
        row::Entity::update_many()
            .col_expr(row::Column::NextAt, Expr::value(next_at.timestamp_millis()))
            .col_expr(row::Column::LeaseUntil, Expr::value(0_i64))
            .col_expr(row::Column::LeaseOwner, Expr::value(Option::<String>::None))
            .filter(row::Column::ObjectId.eq(object_id))
            .filter(row::Column::LeaseOwner.eq(owner))
            .exec(self.read())
            .await?;
        Ok(())
    }

    /// Renews a claimed job's lease just before working on it; `false` when the lease was lost
    /// meanwhile (expired and taken by another node), and the job must be left alone.
    pub async fn renew_sync_lease(
        &self,
        owner: &str,
        object_id: &str,
        now: Timestamp,
        lease_ms: i64,
    ) -> Result<bool, StoreError> {
        let now_ms = now.timestamp_millis();
        Ok(row::Entity::update_many()
            .col_expr(row::Column::LeaseUntil, Expr::value(now_ms + lease_ms))
            .filter(row::Column::ObjectId.eq(object_id))
            .filter(row::Column::LeaseOwner.eq(owner))
            .filter(row::Column::LeaseUntil.gte(now_ms))
            .exec(self.read())
            .await?
            .rows_affected
            == 1)
    }

    /// Hands the job of a refund whose outcome the request could not learn to status sync: the
    /// request's lease is released and the job is due after the sync delay.
    pub async fn release_refund_to_sync(&self, object_id: &str, now: Timestamp) -> Result<(), StoreError> {
        self.reschedule_sync_job(
            REQUEST_LEASE_OWNER,
            object_id,
            now + chrono::Duration::milliseconds(self.sync_delay_ms()),
        )
        .await
    }

    /// Removes a job whose object needs no more syncing.
    pub async fn finish_sync_job(&self, object_id: &str) -> Result<(), StoreError> {
        row::Entity::delete_by_id(object_id.to_owned())
            .exec(self.read())
            .await?;
        Ok(())
    }

    /// Makes a job due now (tests and operators: "sync this payment at once").
    pub async fn sync_job_due_now(&self, object_id: &str, now: Timestamp) -> Result<bool, StoreError> {
        Ok(row::Entity::update_many()
            .col_expr(row::Column::NextAt, Expr::value(now.timestamp_millis()))
            .filter(row::Column::ObjectId.eq(object_id))
            .exec(self.read())
            .await?
            .rows_affected
            == 1)
    }
}
