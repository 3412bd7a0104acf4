//! Writes shared by the units of work: compare-and-set updates and outbox inserts.

use jinliu_domain::{EventDraft, EventId, MerchantId, Order, Payment, Refund, Timestamp};
use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use crate::StoreError;
use crate::convert::{ms, order_to_row, payment_to_row, refund_to_row};
use crate::entity::{events, orders, payments, refunds};

/// Writes the outbox rows for `drafts`, in order, with ids that sort in that order.
pub(crate) async fn insert_events<C: ConnectionTrait>(
    conn: &C,
    merchant: &MerchantId,
    livemode: bool,
    drafts: &[EventDraft],
    now: Timestamp,
) -> Result<(), StoreError> {
    if drafts.is_empty() {
        return Ok(());
    }
    let rows = drafts.iter().map(|d| {
        let id = EventId::generate();
        events::ActiveModel {
            payload: Set(d.render(&id, now, livemode)),
            id: Set(id.to_string()),
            merchant_id: Set(merchant.to_string()),
            livemode: Set(livemode),
            event_type: Set(d.event_type.as_str().to_owned()),
            object_id: Set(d.object_id.clone()),
            object_version: Set(d.version),
            created_at: Set(ms(now)),
        }
    });
    events::Entity::insert_many(rows).exec_without_returning(conn).await?;
    Ok(())
}

/// Updates an order only if nobody changed it since it was read at `expected_version`.
pub(crate) async fn update_order<C: ConnectionTrait>(
    conn: &C,
    o: &Order,
    expected_version: i64,
) -> Result<(), StoreError> {
    let mut row = order_to_row(o);
    row.id = NotSet;
    let res = orders::Entity::update_many()
        .set(row)
        .filter(orders::Column::Id.eq(o.id.as_str()))
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
    let mut row = payment_to_row(p);
    row.id = NotSet;
    let res = payments::Entity::update_many()
        .set(row)
        .filter(payments::Column::Id.eq(p.id.as_str()))
        .filter(payments::Column::Version.eq(expected_version))
        .exec(conn)
        .await?;
    if res.rows_affected == 1 {
        Ok(())
    } else {
        Err(StoreError::Conflict)
    }
}

/// Updates a refund only if nobody changed it since it was read at `expected_version`.
pub(crate) async fn update_refund<C: ConnectionTrait>(
    conn: &C,
    r: &Refund,
    expected_version: i64,
) -> Result<(), StoreError> {
    let mut row = refund_to_row(r);
    row.id = NotSet;
    let res = refunds::Entity::update_many()
        .set(row)
        .filter(refunds::Column::Id.eq(r.id.as_str()))
        .filter(refunds::Column::Version.eq(expected_version))
        .exec(conn)
        .await?;
    if res.rows_affected == 1 {
        Ok(())
    } else {
        Err(StoreError::Conflict)
    }
}
