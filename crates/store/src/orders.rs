//! Orders: creation, cancellation, lookup and listing.

use jinliu_domain::settle::cancel_order;
use jinliu_domain::{AuditTarget, NewOrder, Order, OrderId, OrderStatus, Timestamp, new_order_number};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::audit::AuditSpec;
use crate::convert::{order_from_row, order_to_row};
use crate::entity::orders;
use crate::error::{found, is_unique_violation};
use crate::idempotency::IdemRequest;
use crate::payments::load_attempts;
use crate::persist::{ByKey, record_events, update_order, update_payment};
use crate::writer::work;
use crate::{Scope, Store, StoreError};

/// Filters for listing orders. Time bounds are UTC unix milliseconds, `from` inclusive and `to`
/// exclusive; the server turns business-time-zone dates into these.
#[derive(Debug, Clone, Default)]
pub struct OrderFilter {
    /// Only this status.
    pub status: Option<OrderStatus>,
    /// Created at or after.
    pub from_ms: Option<i64>,
    /// Created before.
    pub to_ms: Option<i64>,
    /// 1-based page number (ignored with `starting_after`).
    pub page: u64,
    /// Page size, 1–100.
    pub limit: u64,
    /// Cursor: the items after (older than) this order, for deep lists.
    pub starting_after: Option<OrderId>,
}

/// A page of `q`'s rows, newest first by id (ids are UUIDv7, so by creation time, with no ties):
/// after `cursor` when one is given, else page `page`; one row more is read to know whether more
/// follow. The one pagination of every list.
pub(crate) async fn page_newest_first<E, C, T>(
    conn: &C,
    q: sea_orm::Select<E>,
    id: E::Column,
    cursor: Option<&str>,
    page: u64,
    limit: u64,
    convert: impl Fn(E::Model) -> Result<T, StoreError>,
) -> Result<Page<T>, StoreError>
where
    E: EntityTrait,
    E::Model: Send + Sync,
    C: ConnectionTrait,
{
    let total = q.clone().count(conn).await?;
    let mut q = q.order_by_desc(id);
    let offset = match cursor {
        Some(cursor) => {
            q = q.filter(id.lt(cursor));
            0
        }
        None => (page - 1) * limit,
    };
    let rows = q.offset(offset).limit(limit + 1).all(conn).await?;
    let has_more = rows.len() as u64 > limit;
    let items = rows
        .into_iter()
        .take(limit as usize)
        .map(convert)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Page {
        items,
        page,
        limit,
        total,
        has_more,
    })
}

/// One page of a list, newest first.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Page number asked for.
    pub page: u64,
    /// Page size.
    pub limit: u64,
    /// Items matching the filter in all pages.
    pub total: u64,
    /// Whether more items follow this page.
    pub has_more: bool,
}

pub(crate) async fn load_order<C: ConnectionTrait>(
    conn: &C,
    scope: Option<&Scope>,
    id: &str,
) -> Result<Order, StoreError> {
    let mut q = orders::Entity::find_by_id(id.to_owned());
    if let Some(s) = scope {
        q = q
            .filter(orders::Column::MerchantId.eq(s.merchant_id.as_str()))
            .filter(orders::Column::Livemode.eq(s.livemode));
    }
    let row = q.by_key(conn).await?.ok_or(StoreError::NotFound("order"))?;
    order_from_row(row)
}

impl Store {
    /// Creates a pending order (and its `order.created` event).
    pub async fn create_order(
        &self,
        new: NewOrder,
        now: Timestamp,
        idem: Option<IdemRequest<Order>>,
    ) -> Result<Order, StoreError> {
        let w = work(move |txn, sink| {
            let new = new.clone();
            Box::pin(async move {
                let (order, event) = Order::create(new, new_order_number(), now);
                match orders::Entity::insert(order_to_row(&order))
                    .exec_without_returning(txn)
                    .await
                {
                    Ok(_) => {}
                    // A collision on the random order number: draw again (the unit is retried).
                    Err(e) if is_unique_violation(&e) => return Err(StoreError::Conflict),
                    Err(e) => return Err(e.into()),
                }
                record_events(sink, &order.merchant_id, order.livemode, &[event], now);
                Ok(order)
            })
        });
        self.writer()
            .submit_audited(
                w,
                idem,
                Some(AuditSpec::new(
                    "order.create",
                    |o: &Order| Some(AuditTarget::order(o)),
                    AuditTarget::id_only("order", "new"),
                )),
            )
            .await
    }

    /// Cancels a pending order and its open payment attempts.
    pub async fn cancel_order(
        &self,
        scope: &Scope,
        id: &OrderId,
        now: Timestamp,
        idem: Option<IdemRequest<Order>>,
    ) -> Result<Order, StoreError> {
        let hint = AuditTarget::id_only("order", id.as_str());
        let (scope, id) = (scope.clone(), id.clone());
        let w = work(move |txn, sink| {
            let (scope, id) = (scope.clone(), id.clone());
            Box::pin(async move {
                let mut order = load_order(txn, Some(&scope), id.as_str()).await?;
                let mut attempts = load_attempts(txn, &order.id).await?;
                let versions: Vec<i64> = attempts.iter().map(|p| p.version).collect();
                let order_version = order.version;
                let events = cancel_order(&mut order, &mut attempts, now)?;
                update_order(txn, &order, order_version).await?;
                for (p, v) in attempts.iter().zip(versions) {
                    if p.version != v {
                        update_payment(txn, p, v).await?;
                    }
                }
                record_events(sink, &order.merchant_id, order.livemode, &events, now);
                Ok(order)
            })
        });
        self.writer()
            .submit_audited(
                w,
                idem,
                Some(AuditSpec::new(
                    "order.cancel",
                    |o: &Order| Some(AuditTarget::order(o)),
                    hint,
                )),
            )
            .await
    }

    /// One order in the caller's scope.
    pub async fn order(&self, scope: &Scope, id: &OrderId) -> Result<Option<Order>, StoreError> {
        found(load_order(self.read(), Some(scope), id.as_str()).await)
    }

    /// A page of the caller's orders, newest first.
    pub async fn list_orders(&self, scope: &Scope, f: &OrderFilter) -> Result<Page<Order>, StoreError> {
        let limit = f.limit.clamp(1, 100);
        let page = f.page.max(1);
        let mut q = orders::Entity::find()
            .filter(orders::Column::MerchantId.eq(scope.merchant_id.as_str()))
            .filter(orders::Column::Livemode.eq(scope.livemode));
        if let Some(st) = f.status {
            q = q.filter(orders::Column::Status.eq(st.as_str()));
        }
        if let Some(from) = f.from_ms {
            q = q.filter(orders::Column::CreatedAt.gte(from));
        }
        if let Some(to) = f.to_ms {
            q = q.filter(orders::Column::CreatedAt.lt(to));
        }
        page_newest_first(
            self.read(),
            q,
            orders::Column::Id,
            f.starting_after.as_ref().map(|c| c.as_str()),
            page,
            limit,
            order_from_row,
        )
        .await
    }
}
