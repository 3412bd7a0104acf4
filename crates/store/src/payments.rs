//! Payments: new attempts, provider-driven transitions, lookup.

use jinliu_domain::settle::{complete_attempt, new_attempt};
use jinliu_domain::{AuditTarget, Order, OrderId, Payment, PaymentId, Timestamp};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, TransactionTrait};

use crate::audit::AuditSpec;
use crate::convert::{payment_from_row, payment_to_row};
use crate::entity::{payments, provider_notifications};
use crate::error::{found, is_unique_violation};
use crate::idempotency::IdemRequest;
use crate::orders::load_order;
use crate::persist::{ByKey, claim_order, insert_payment, record_events, update_order, update_payment};
use crate::sync::{SyncKind, schedule};
use crate::writer::{Staged, UnitSink, work};
use crate::{Scope, Store, StoreError};

/// A transition of a payment, decided by a provider answer, a notification, the merchant or the
/// clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentChange {
    /// The customer started paying.
    Processing,
    /// The provider confirmed the money (pays the order, cancels sibling attempts).
    Complete {
        /// The provider's transaction id, when it gave one.
        transaction_id: Option<String>,
    },
    /// The provider declined.
    Fail,
    /// The payment window passed.
    Expire,
    /// The merchant (or the customer) gave up.
    Cancel,
}

impl PaymentChange {
    /// The audit log's action name.
    fn audit_action(&self) -> &'static str {
        match self {
            PaymentChange::Processing => "payment.processing",
            PaymentChange::Complete { .. } => "payment.complete",
            PaymentChange::Fail => "payment.fail",
            PaymentChange::Expire => "payment.expire",
            PaymentChange::Cancel => "payment.cancel",
        }
    }
}

pub(crate) async fn load_payment<C: ConnectionTrait>(
    conn: &C,
    scope: Option<&Scope>,
    id: &str,
) -> Result<Payment, StoreError> {
    let mut q = payments::Entity::find_by_id(id.to_owned());
    if let Some(s) = scope {
        q = q
            .filter(payments::Column::MerchantId.eq(s.merchant_id.as_str()))
            .filter(payments::Column::Livemode.eq(s.livemode));
    }
    let row = q.by_key(conn).await?.ok_or(StoreError::NotFound("payment"))?;
    payment_from_row(row)
}

/// A notification's identity for deduplication: the same provider status for the same
/// reference on the same account is applied once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationKey {
    /// Provider id.
    pub provider: String,
    /// Provider account id.
    pub account: String,
    /// The payment's provider reference.
    pub reference: String,
    /// The provider's own status word or code.
    pub status_code: String,
}

async fn apply_change<C: ConnectionTrait>(
    txn: &C,
    sink: &UnitSink,
    scope: Option<&Scope>,
    id: &PaymentId,
    change: PaymentChange,
    now: Timestamp,
) -> Result<Payment, StoreError> {
    let mut payment = load_payment(txn, scope, id.as_str()).await?;
    let payment_version = payment.version;
    let mut events = Vec::new();
    match change {
        PaymentChange::Complete { transaction_id } => {
            let mut order = load_order(txn, None, payment.order_id.as_str()).await?;
            let order_version = order.version;
            let mut siblings: Vec<Payment> = load_attempts(txn, &order.id)
                .await?
                .into_iter()
                .filter(|p| p.id != payment.id)
                .collect();
            let sibling_versions: Vec<i64> = siblings.iter().map(|p| p.version).collect();
            events = complete_attempt(&mut order, &mut payment, &mut siblings, transaction_id, now)?;
            if order.version != order_version {
                update_order(txn, &order, order_version).await?;
            }
            for (p, v) in siblings.iter().zip(sibling_versions) {
                if p.version != v {
                    update_payment(txn, p, v).await?;
                }
            }
        }
        PaymentChange::Processing => events.push(payment.mark_processing(now)?),
        PaymentChange::Fail => events.push(payment.fail(now)?),
        PaymentChange::Expire => events.push(payment.expire(now)?),
        PaymentChange::Cancel => events.push(payment.cancel(now)?),
    }
    if payment.version != payment_version {
        update_payment(txn, &payment, payment_version).await?;
    }
    record_events(sink, &payment.merchant_id, payment.livemode, &events, now);
    Ok(payment)
}

/// What a new attempt of `order` leaves to the writer besides its own row and the order's claim:
/// its event and its status-sync job. Fails when `order` cannot take `payment`.
fn stage_attempt(sink: &UnitSink, order: &Order, payment: &Payment, sync_delay: i64) -> Result<(), StoreError> {
    let event = new_attempt(order, payment)?;
    record_events(
        sink,
        &payment.merchant_id,
        payment.livemode,
        &[event],
        payment.created_at,
    );
    schedule(
        sink,
        payment.id.as_str(),
        SyncKind::Payment,
        payment.created_at.timestamp_millis() + sync_delay,
        None,
    );
    Ok(())
}

pub(crate) async fn load_attempts<C: ConnectionTrait>(conn: &C, order: &OrderId) -> Result<Vec<Payment>, StoreError> {
    payments::Entity::find()
        .filter(payments::Column::OrderId.eq(order.as_str()))
        .order_by_asc(payments::Column::Id)
        .all(conn)
        .await?
        .into_iter()
        .map(payment_from_row)
        .collect()
}

impl Store {
    /// Records a new payment attempt that the provider has already accepted. The order must be
    /// pending and the amount its outstanding amount; both are checked again here, inside the
    /// transaction.
    ///
    /// `order` is the payment's order as [`Store::order`] returned it to the caller. The first
    /// attempt decides on it without reading it again, here, before the unit is queued
    /// (`writer::Staged`): its claim of the order updates the order only at that version, so it
    /// succeeds only if the row is still exactly what the caller read; when the order changed
    /// meanwhile, the claim conflicts and the unit runs again, reading the current row.
    pub async fn create_payment(
        &self,
        scope: &Scope,
        order: &Order,
        payment: Payment,
        idem: Option<IdemRequest<Payment>>,
    ) -> Result<Payment, StoreError> {
        if order.id != payment.order_id || order.merchant_id != scope.merchant_id || order.livemode != scope.livemode {
            return Err(StoreError::NotFound("order"));
        }
        let hint = AuditTarget::id_only("payment", payment.id.as_str());
        let audit = AuditSpec::new("payment.create", |p: &Payment| Some(AuditTarget::payment(p)), hint);
        let sync_delay = self.sync_delay_ms();
        // A refusal from the caller's copy of the order is left to the unit, which reads the row:
        // the order may have changed since (and the refusal is audited there).
        let staged = Staged::new(|sink| {
            stage_attempt(sink, order, &payment, sync_delay)?;
            sink.defer(|d| {
                d.claim_order(&order.id, order.version);
                d.insert_payment(payment_to_row(&payment));
            });
            Ok(payment.clone())
        })
        .ok();
        let scope = scope.clone();
        let w = work(move |txn, sink| {
            let (scope, payment) = (scope.clone(), payment.clone());
            Box::pin(async move {
                let order = load_order(txn, Some(&scope), payment.order_id.as_str()).await?;
                stage_attempt(sink, &order, &payment, sync_delay)?;
                // Claim the order: a unit that completes or cancels another attempt of it in a
                // concurrent batch (another writer, another node) then conflicts and re-reads,
                // instead of both committing and leaving a payable attempt on a paid order.
                // Both writes may be left to the writer, which makes those of a run of new
                // attempts in two statements (`persist::Deferred`).
                claim_order(txn, sink, &order.id, order.version).await?;
                insert_payment(txn, sink, payment_to_row(&payment)).await?;
                Ok(payment)
            })
        });
        match staged {
            Some(staged) => self.writer().submit_staged(w, staged, idem, Some(audit)).await,
            None => self.writer().submit_deferring(w, idem, Some(audit)).await,
        }
    }

    /// Applies `change` to a payment. With a scope the payment must belong to it (merchant
    /// actions); without one the caller has already proven it speaks for the provider (a verified
    /// notification). Completing an already captured payment is a no-op that returns it.
    pub async fn change_payment(
        &self,
        scope: Option<&Scope>,
        id: &PaymentId,
        change: PaymentChange,
        now: Timestamp,
        idem: Option<IdemRequest<Payment>>,
    ) -> Result<Payment, StoreError> {
        let spec = AuditSpec::new(
            change.audit_action(),
            |p: &Payment| Some(AuditTarget::payment(p)),
            AuditTarget::id_only("payment", id.as_str()),
        );
        let (scope, id) = (scope.cloned(), id.clone());
        let w = work(move |txn, sink| {
            let (scope, id, change) = (scope.clone(), id.clone(), change.clone());
            Box::pin(async move { apply_change(txn, sink, scope.as_ref(), &id, change, now).await })
        });
        self.writer().submit_audited(w, idem, Some(spec)).await
    }

    /// Applies a provider notification's `change` once: the notification's key is recorded in the
    /// same transaction, so the same notification re-sent changes nothing (`Ok(None)`), while a
    /// new status for the same payment still gets through.
    pub async fn apply_notification(
        &self,
        id: &PaymentId,
        key: NotificationKey,
        change: PaymentChange,
        now: Timestamp,
    ) -> Result<Option<Payment>, StoreError> {
        // A duplicate is recorded as `no_change`, so the log shows every notification received.
        let spec = AuditSpec::new(
            "payment.notification",
            |p: &Option<Payment>| p.as_ref().map(AuditTarget::payment),
            AuditTarget::id_only("payment", id.as_str()),
        );
        let id = id.clone();
        let w = work(move |txn, sink| {
            let (id, key, change) = (id.clone(), key.clone(), change.clone());
            Box::pin(async move {
                let row = provider_notifications::ActiveModel {
                    provider: Set(key.provider),
                    account: Set(key.account),
                    reference: Set(key.reference),
                    status_code: Set(key.status_code),
                    payment_id: Set(id.to_string()),
                    received_at: Set(now.timestamp_millis()),
                };
                if sink.optimistic() {
                    // No savepoint in the optimistic pass: a duplicate fails this unit, and the
                    // batch runs again with savepoints, taking the branch below. Saves the
                    // SAVEPOINT and RELEASE round trips of every notification that is new.
                    provider_notifications::Entity::insert(row)
                        .exec_without_returning(txn)
                        .await?;
                    return apply_change(txn, sink, None, &id, change, now).await.map(Some);
                }
                // The key goes in inside its own savepoint: a duplicate (the same notification
                // applied earlier, or by a concurrent transaction that committed first) rolls back
                // just the insert, and the unit answers "nothing changed". ON CONFLICT DO NOTHING
                // cannot say which happened on MySQL, whose driver counts matched rows.
                let savepoint = txn.begin().await?;
                let inserted = provider_notifications::Entity::insert(row)
                    .exec_without_returning(&savepoint)
                    .await;
                match inserted {
                    Ok(_) => savepoint.commit().await?,
                    Err(e) if is_unique_violation(&e) => {
                        savepoint.rollback().await?;
                        return Ok(None);
                    }
                    Err(e) => return Err(e.into()),
                }
                apply_change(txn, sink, None, &id, change, now).await.map(Some)
            })
        });
        self.writer().submit_audited(w, None, Some(spec)).await
    }

    /// A payment by id alone, for callers that proved their right another way (a client secret,
    /// the status-sync worker).
    pub async fn payment_unscoped(&self, id: &PaymentId) -> Result<Option<Payment>, StoreError> {
        found(load_payment(self.read(), None, id.as_str()).await)
    }

    /// One payment in the caller's scope.
    pub async fn payment(&self, scope: &Scope, id: &PaymentId) -> Result<Option<Payment>, StoreError> {
        found(load_payment(self.read(), Some(scope), id.as_str()).await)
    }

    /// The payment a provider knows as `reference` on `account`.
    pub async fn payment_by_reference(
        &self,
        provider: &str,
        account: &str,
        reference: &str,
    ) -> Result<Option<Payment>, StoreError> {
        payments::Entity::find()
            .filter(payments::Column::Provider.eq(provider))
            .filter(payments::Column::ProviderAccount.eq(account))
            .filter(payments::Column::ProviderReference.eq(reference))
            .by_key(self.read())
            .await?
            .map(payment_from_row)
            .transpose()
    }

    /// Every attempt of an order in the caller's scope, oldest first.
    pub async fn payments_for_order(&self, scope: &Scope, order: &OrderId) -> Result<Vec<Payment>, StoreError> {
        load_order(self.read(), Some(scope), order.as_str()).await?;
        load_attempts(self.read(), order).await
    }
}
