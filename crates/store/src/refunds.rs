//! Refunds: reserve (start), settle after the provider answered, lookup.

use jinliu_domain::payment::RefundRejected;
use jinliu_domain::settle::{settle_refund, start_refund};
use jinliu_domain::{AuditTarget, Money, Payment, PaymentId, Refund, RefundId, Timestamp};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};

use crate::audit::AuditSpec;
use crate::convert::{refund_from_row, refund_to_row};
use crate::entity::refunds;
use crate::error::found;
use crate::idempotency::IdemRequest;
use crate::orders::load_order;
use crate::payments::load_payment;
use crate::persist::{ByKey, record_events, update_order, update_payment, update_refund};
use crate::sync::{REQUEST_LEASE_MS, REQUEST_LEASE_OWNER, SyncKind, finish, schedule};
use crate::writer::work;
use crate::{Scope, Store, StoreError};

async fn load_refund<C: ConnectionTrait>(conn: &C, scope: Option<&Scope>, id: &str) -> Result<Refund, StoreError> {
    let mut q = refunds::Entity::find_by_id(id.to_owned());
    if let Some(s) = scope {
        q = q
            .filter(refunds::Column::MerchantId.eq(s.merchant_id.as_str()))
            .filter(refunds::Column::Livemode.eq(s.livemode));
    }
    refund_from_row(q.by_key(conn).await?.ok_or(StoreError::NotFound("refund"))?)
}

impl Store {
    /// Creates a pending refund of `amount_minor` (or of everything left when `None`), reserving
    /// it on the payment so that concurrent refunds can never together exceed the capture.
    // Each argument is one fact of the request; a struct would only rename them.
    #[allow(clippy::too_many_arguments)]
    pub async fn start_refund(
        &self,
        scope: &Scope,
        payment_id: &PaymentId,
        amount_minor: Option<i64>,
        reason: Option<String>,
        exclusive: bool,
        now: Timestamp,
        idem: Option<IdemRequest<(Refund, Payment)>>,
    ) -> Result<(Refund, Payment), StoreError> {
        let spec = AuditSpec::new(
            "refund.create",
            |(r, _): &(Refund, Payment)| Some(AuditTarget::refund(r)),
            AuditTarget::id_only("payment", payment_id.as_str()),
        );
        let (scope, payment_id) = (scope.clone(), payment_id.clone());
        let sync_delay = self.sync_delay_ms();
        let w = work(move |txn, sink| {
            let (scope, payment_id, reason) = (scope.clone(), payment_id.clone(), reason.clone());
            Box::pin(async move {
                let mut payment = load_payment(txn, Some(&scope), payment_id.as_str()).await?;
                let version = payment.version;
                if !payment.status.is_captured() {
                    return Err(RefundRejected::NotRefundable(payment.status.as_str()).into());
                }
                if exclusive && payment.refund_pending_minor > 0 {
                    return Err(RefundRejected::InProgress.into());
                }
                let minor = amount_minor.unwrap_or_else(|| payment.refundable_minor());
                let amount = Money::from_minor(minor, payment.amount.currency()).map_err(|_| {
                    if amount_minor.is_none() {
                        RefundRejected::NotRefundable(payment.status.as_str())
                    } else {
                        RefundRejected::ExceedsRemaining {
                            remaining_minor: payment.refundable_minor(),
                            currency: payment.amount.currency(),
                        }
                    }
                })?;
                let (refund, event) = start_refund(&mut payment, amount, reason, now)?;
                update_payment(txn, &payment, version).await?;
                refunds::Entity::insert(refund_to_row(&refund))
                    .exec_without_returning(txn)
                    .await?;
                record_events(sink, &refund.merchant_id, refund.livemode, &[event], now);
                // The request that started the refund holds the job's lease while it talks to the
                // provider; status sync takes over only when that request gives up (it releases
                // the lease) or its node dies (the lease expires).
                schedule(
                    sink,
                    refund.id.as_str(),
                    SyncKind::Refund,
                    now.timestamp_millis() + sync_delay,
                    Some((REQUEST_LEASE_OWNER, now.timestamp_millis() + REQUEST_LEASE_MS)),
                );
                Ok((refund, payment))
            })
        });
        self.writer().submit_audited(w, idem, Some(spec)).await
    }

    /// Records the provider's answer to a refund: `Ok(provider reference)` or `Err(reason)`.
    pub async fn settle_refund(
        &self,
        refund_id: &RefundId,
        outcome: Result<Option<String>, String>,
        now: Timestamp,
        idem: Option<IdemRequest<Refund>>,
    ) -> Result<Refund, StoreError> {
        let spec = AuditSpec::new(
            "refund.settle",
            |r: &Refund| Some(AuditTarget::refund(r)),
            AuditTarget::id_only("refund", refund_id.as_str()),
        );
        let refund_id = refund_id.clone();
        let w = work(move |txn, sink| {
            let (refund_id, outcome) = (refund_id.clone(), outcome.clone());
            Box::pin(async move {
                let mut refund = load_refund(txn, None, refund_id.as_str()).await?;
                let mut payment = load_payment(txn, None, refund.payment_id.as_str()).await?;
                let mut order = load_order(txn, None, payment.order_id.as_str()).await?;
                let (rv, pv, ov) = (refund.version, payment.version, order.version);
                let events = settle_refund(&mut order, &mut payment, &mut refund, outcome, now)?;
                update_refund(txn, &refund, rv).await?;
                update_payment(txn, &payment, pv).await?;
                if order.version != ov {
                    update_order(txn, &order, ov).await?;
                }
                record_events(sink, &refund.merchant_id, refund.livemode, &events, now);
                finish(txn, refund.id.as_str()).await?;
                Ok(refund)
            })
        });
        self.writer().submit_audited(w, idem, Some(spec)).await
    }

    /// One refund in the caller's scope.
    pub async fn refund(&self, scope: &Scope, id: &RefundId) -> Result<Option<Refund>, StoreError> {
        found(load_refund(self.read(), Some(scope), id.as_str()).await)
    }

    /// A refund by id alone (the status-sync worker).
    pub async fn refund_unscoped(&self, id: &RefundId) -> Result<Option<Refund>, StoreError> {
        found(load_refund(self.read(), None, id.as_str()).await)
    }

    /// A payment's refunds, oldest first (404 when the payment is not the caller's).
    pub async fn refunds_for_payment(&self, scope: &Scope, payment: &PaymentId) -> Result<Vec<Refund>, StoreError> {
        load_payment(self.read(), Some(scope), payment.as_str()).await?;
        refunds::Entity::find()
            .filter(refunds::Column::PaymentId.eq(payment.as_str()))
            .order_by_asc(refunds::Column::Id)
            .all(self.read())
            .await?
            .into_iter()
            .map(refund_from_row)
            .collect()
    }
}
