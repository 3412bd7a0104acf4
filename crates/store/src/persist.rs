//! Writes shared by the units of work: compare-and-set updates and outbox inserts.

use jinliu_domain::{EventDraft, EventId, MerchantId, Order, Payment, Refund, Timestamp};
use sea_orm::ActiveValue::Set;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

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
            webhooks_dispatched: Set(false),
        }
    });
    events::Entity::insert_many(rows).exec_without_returning(conn).await?;
    Ok(())
}

/// Writes `row` only if the stored row still has `expected_version`: the compare-and-set that
/// makes concurrent writers (other batches, other nodes) notice each other.
async fn compare_and_set<C, A>(
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
