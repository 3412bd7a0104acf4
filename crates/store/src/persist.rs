//! Writes shared by the units of work: compare-and-set updates and outbox inserts.

use jinliu_domain::{EventDraft, EventId, MerchantId, Order, OrderId, Payment, Refund, Timestamp};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use crate::convert::{ms, order_to_row, payment_to_row, refund_to_row};
use crate::entity::{events, orders, payments, refunds};
use crate::writer::UnitSink;
use crate::{OutboxEvent, StoreError};

/// Renders the outbox rows for `drafts`, in order, with ids that sort in that order, and records
/// them in the unit's sink. The writer inserts the rows of every unit that succeeded at the end
/// of the batch, in one multi-row INSERT inside the same transaction (see [`insert_outbox`]), and
/// publishes them once committed; a unit rolled back to its savepoint writes none.
pub(crate) fn record_events(
    sink: &UnitSink,
    merchant: &MerchantId,
    livemode: bool,
    drafts: &[EventDraft],
    now: Timestamp,
) {
    if drafts.is_empty() {
        return;
    }
    sink.record(drafts.iter().map(|d| {
        let id = EventId::generate();
        OutboxEvent {
            payload: d.render(&id, now, livemode),
            id: id.to_string(),
            merchant_id: merchant.clone(),
            livemode,
            event_type: d.event_type.as_str().to_owned(),
            object_id: d.object_id.clone(),
            object_version: d.version,
            created_at: now,
        }
    }));
}

/// Rows per multi-row INSERT: far below every backend's bound-parameter limit (SQLite 32,766,
/// PostgreSQL and MySQL 65,535) for the widest deferred row (17 audit columns).
pub(crate) const INSERT_CHUNK: usize = 500;

/// Inserts outbox rows, [`INSERT_CHUNK`] per statement.
pub(crate) async fn insert_outbox<C: ConnectionTrait>(conn: &C, written: &[OutboxEvent]) -> Result<(), StoreError> {
    let rows = written
        .iter()
        .map(|e| events::ActiveModel {
            id: Set(e.id.clone()),
            merchant_id: Set(e.merchant_id.to_string()),
            livemode: Set(e.livemode),
            event_type: Set(e.event_type.clone()),
            object_id: Set(e.object_id.clone()),
            object_version: Set(e.object_version),
            payload: Set(e.payload.clone()),
            created_at: Set(ms(e.created_at)),
            webhooks_dispatched: Set(false),
        })
        .collect();
    insert_chunked(conn, rows).await
}

/// Reading the one row a primary- or unique-key filter selects.
///
/// Not `Select::one`: it adds `LIMIT ?` with 1 bound as a parameter, and SQLite re-prepares a
/// statement whose `LIMIT` is a bound parameter every time a value is bound to it (its query
/// planner reads that value). On the payment-creation path that re-parsing was about 6 % of the
/// server's CPU (docs/performance.md, run G). Only for filters that select at most one row: the
/// query has no `LIMIT`, so any other filter reads every row it matches.
pub(crate) trait ByKey<E: EntityTrait> {
    fn by_key<'a, C: ConnectionTrait>(
        self,
        conn: &'a C,
    ) -> impl std::future::Future<Output = Result<Option<E::Model>, sea_orm::DbErr>> + Send + 'a
    where
        Self: 'a;
}

impl<E: EntityTrait> ByKey<E> for sea_orm::Select<E>
where
    E::Model: Send + Sync,
{
    async fn by_key<'a, C: ConnectionTrait>(self, conn: &'a C) -> Result<Option<E::Model>, sea_orm::DbErr>
    where
        Self: 'a,
    {
        Ok(self.all(conn).await?.into_iter().next())
    }
}

/// Inserts rows of one table, [`INSERT_CHUNK`] per statement (the writer's deferred rows).
pub(crate) async fn insert_chunked<C, A>(conn: &C, mut rows: Vec<A>) -> Result<(), StoreError>
where
    C: ConnectionTrait,
    A: ActiveModelTrait + Send,
{
    while !rows.is_empty() {
        let rest = rows.split_off(rows.len().min(INSERT_CHUNK));
        <A::Entity as EntityTrait>::insert_many(rows)
            .exec_without_returning(conn)
            .await?;
        rows = rest;
    }
    Ok(())
}

/// Writes `row` only if the stored row still has `expected_version`: the compare-and-set that
/// makes concurrent writers (other batches, other nodes) notice each other.
pub(crate) async fn compare_and_set<C, A>(
    conn: &C,
    mut row: A,
    (id_col, id): (<A::Entity as EntityTrait>::Column, &str),
    (version_col, expected_version): (<A::Entity as EntityTrait>::Column, i64),
) -> Result<(), StoreError>
where
    C: ConnectionTrait,
    A: ActiveModelTrait + Send,
{
    row.not_set(id_col);
    let res = <A::Entity as EntityTrait>::update_many()
        .set(row)
        .filter(id_col.eq(id))
        .filter(version_col.eq(expected_version))
        .exec(conn)
        .await?;
    if res.rows_affected == 1 {
        Ok(())
    } else {
        Err(StoreError::Conflict)
    }
}

/// Updates an order only if nobody changed it since it was read at `expected_version`.
pub(crate) async fn update_order<C: ConnectionTrait>(
    conn: &C,
    o: &Order,
    expected_version: i64,
) -> Result<(), StoreError> {
    let (id, version) = (
        (orders::Column::Id, o.id.as_str()),
        (orders::Column::Version, expected_version),
    );
    compare_and_set(conn, order_to_row(o), id, version).await
}

/// Claims an order for a new payment attempt: bumps its version from `expected_version`, and
/// changes nothing else (the one-column form of [`update_order`] for that case).
pub(crate) async fn claim_order<C: ConnectionTrait>(
    conn: &C,
    id: &OrderId,
    expected_version: i64,
) -> Result<(), StoreError> {
    let res = orders::Entity::update_many()
        .col_expr(orders::Column::Version, Expr::value(expected_version + 1))
        .filter(orders::Column::Id.eq(id.as_str()))
        .filter(orders::Column::Version.eq(expected_version))
        .exec(conn)
        .await?;
    if res.rows_affected == 1 {
        Ok(())
    } else {
        Err(StoreError::Conflict)
    }
}

/// Updates a payment only if nobody changed it since it was read at `expected_version`.
pub(crate) async fn update_payment<C: ConnectionTrait>(
    conn: &C,
    p: &Payment,
    expected_version: i64,
) -> Result<(), StoreError> {
    let (id, version) = (
        (payments::Column::Id, p.id.as_str()),
        (payments::Column::Version, expected_version),
    );
    compare_and_set(conn, payment_to_row(p), id, version).await
}

/// Updates a refund only if nobody changed it since it was read at `expected_version`.
pub(crate) async fn update_refund<C: ConnectionTrait>(
    conn: &C,
    r: &Refund,
    expected_version: i64,
) -> Result<(), StoreError> {
    let (id, version) = (
        (refunds::Column::Id, r.id.as_str()),
        (refunds::Column::Version, expected_version),
    );
    compare_and_set(conn, refund_to_row(r), id, version).await
}
