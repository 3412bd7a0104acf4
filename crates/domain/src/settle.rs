//! Rules that span several objects: completing one attempt of an order, starting and settling a
//! refund. Each function changes the objects in memory and returns the events, in order; the
//! store writes all of it in one transaction or none of it.

use crate::event::EventDraft;
use crate::event::EventType;
use crate::payment::RefundRejected;
use crate::{Currency, Money, Order, OrderStatus, Payment, Refund, Timestamp, TransitionError};

/// Why a new payment attempt was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttemptRejected {
    /// The order is paid, cancelled or expired.
    #[error("the order is {0} and cannot take a new payment")]
    OrderNotPayable(&'static str),
    /// The currency is not the order's.
    #[error("the payment currency {got} differs from the order currency {expected}")]
    CurrencyMismatch {
        /// The order's currency.
        expected: Currency,
        /// What the client sent.
        got: Currency,
    },
    /// The amount is not the order's outstanding amount.
    #[error("the payment amount must equal the order's outstanding amount, {expected} {currency}")]
    AmountMismatch {
        /// The outstanding amount in major units.
        expected: String,
        /// Its currency.
        currency: Currency,
    },
}

/// Checks that `order` can take the new attempt `payment` (pending, same currency, the full
/// outstanding amount) and returns its `payment.created` event.
pub fn new_attempt(order: &Order, payment: &Payment) -> Result<EventDraft, AttemptRejected> {
    if !order.is_payable() {
        return Err(AttemptRejected::OrderNotPayable(order.status.as_str()));
    }
    check_amount(order, payment.amount)?;
    Ok(payment.event(EventType::PaymentCreated))
}

/// The amount/currency rule alone, so the server can refuse early without a transaction.
pub fn check_amount(order: &Order, amount: Money) -> Result<(), AttemptRejected> {
    if amount.currency() != order.amount.currency() {
        return Err(AttemptRejected::CurrencyMismatch {
            expected: order.amount.currency(),
            got: amount.currency(),
        });
    }
    if amount.minor() != order.amount.minor() {
        return Err(AttemptRejected::AmountMismatch {
            expected: order.amount.major_string(),
            currency: order.amount.currency(),
        });
    }
    Ok(())
}

/// The provider confirmed `payment`. The order becomes paid if it was still pending, other open
/// attempts are cancelled, and a completion after another attempt already paid is marked
/// `duplicate`. Repeated confirmations of a captured payment change nothing (returns no events).
pub fn complete_attempt(
    order: &mut Order,
    payment: &mut Payment,
    siblings: &mut [Payment],
    transaction_id: Option<String>,
    now: Timestamp,
) -> Result<Vec<EventDraft>, TransitionError> {
    if payment.status.is_captured() {
        return Ok(Vec::new());
    }
    let paid_by_other = order.paid_by.as_ref().is_some_and(|p| *p != payment.id);
    let order_closed = matches!(order.status, OrderStatus::Cancelled | OrderStatus::Expired);
    let mut events = vec![payment.complete(paid_by_other, order_closed, transaction_id, now)?];
    if order.status == OrderStatus::Pending {
        events.push(order.mark_paid(&payment.id, now)?);
        for other in siblings.iter_mut().filter(|p| p.id != payment.id && p.status.is_open()) {
            events.push(other.cancel(now)?);
        }
    }
    Ok(events)
}

/// The merchant cancels a pending order: the order and every open attempt are cancelled.
pub fn cancel_order(
    order: &mut Order,
    attempts: &mut [Payment],
    now: Timestamp,
) -> Result<Vec<EventDraft>, TransitionError> {
    close_order(order, attempts, now, Order::cancel, Payment::cancel)
}

/// A pending order ran out of time: the order and every open attempt expire.
pub fn expire_order(
    order: &mut Order,
    attempts: &mut [Payment],
    now: Timestamp,
) -> Result<Vec<EventDraft>, TransitionError> {
    close_order(order, attempts, now, Order::expire, Payment::expire)
}

type Transition<T> = fn(&mut T, Timestamp) -> Result<EventDraft, TransitionError>;

fn close_order(
    order: &mut Order,
    attempts: &mut [Payment],
    now: Timestamp,
    close: Transition<Order>,
    close_attempt: Transition<Payment>,
) -> Result<Vec<EventDraft>, TransitionError> {
    let mut events = vec![close(order, now)?];
    for p in attempts.iter_mut().filter(|p| p.status.is_open()) {
        events.push(close_attempt(p, now)?);
    }
    Ok(events)
}

/// Starts a refund of `amount` on `payment`: reserves it and creates the pending refund.
pub fn start_refund(
    payment: &mut Payment,
    amount: Money,
    reason: Option<String>,
    now: Timestamp,
) -> Result<(Refund, EventDraft), RefundRejected> {
    if amount.currency() != payment.amount.currency() {
        return Err(RefundRejected::ExceedsRemaining {
            remaining_minor: payment.refundable_minor(),
            currency: payment.amount.currency(),
        });
    }
    payment.reserve_refund(amount.minor(), now)?;
    Ok(Refund::create(
        payment.merchant_id.clone(),
        payment.id.clone(),
        amount,
        reason,
        payment.livemode,
        now,
    ))
}

/// The provider answered a refund. Success moves the refund, the payment and (when this payment
/// is the one that paid it) the order; failure releases the reservation.
pub fn settle_refund(
    order: &mut Order,
    payment: &mut Payment,
    refund: &mut Refund,
    outcome: Result<Option<String>, String>,
    now: Timestamp,
) -> Result<Vec<EventDraft>, TransitionError> {
    let minor = refund.amount.minor();
    let mut events = Vec::with_capacity(3);
    match outcome {
        Ok(provider_reference) => {
            events.push(refund.succeed(provider_reference, now)?);
            events.extend(payment.settle_refund(minor, true, now)?);
            if order.paid_by.as_ref() == Some(&payment.id) {
                events.push(order.apply_refund(minor, now)?);
            }
        }
        Err(reason) => {
            events.push(refund.fail(reason, now)?);
            payment.settle_refund(minor, false, now)?;
        }
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::NewOrder;
    use crate::{Currency, MerchantId, OrderId, PaymentId, PaymentStatus, RefundStatus, new_client_secret};
    use chrono::{TimeZone, Utc};
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn t0() -> Timestamp {
        Utc.timestamp_millis_opt(1_700_000_000_000).single().unwrap_or_default()
    }

    fn order(amount: i64) -> Order {
        let new = NewOrder {
            merchant_id: MerchantId::generate(),
            description: None,
            amount: Money::from_minor(amount, Currency::Twd).unwrap_or_else(|_| panic!("positive")),
            items: vec![],
            customer_email: None,
            customer_phone: None,
            metadata: None,
            livemode: false,
        };
        Order::create(new, "ORD-TEST0001".into(), t0()).0
    }

    fn attempt(order: &Order) -> Payment {
        let id = PaymentId::generate();
        Payment {
            client_secret: new_client_secret(&id),
            id,
            merchant_id: order.merchant_id.clone(),
            order_id: order.id.clone(),
            provider: "test".into(),
            provider_account: String::new(),
            method: "qr".into(),
            amount: order.amount,
            status: PaymentStatus::Pending,
            provider_reference: None,
            provider_transaction_id: None,
            payment_token: None,
            qr_code_data: None,
            success_url: None,
            failure_url: None,
            description: None,
            customer_email: None,
            customer_phone: None,
            metadata: None,
            refunded_minor: 0,
            refund_pending_minor: 0,
            late_success: false,
            duplicate: false,
            livemode: false,
            version: 1,
            expires_at: t0(),
            completed_at: None,
            created_at: t0(),
            updated_at: t0(),
        }
    }

    #[test]
    fn completing_one_attempt_pays_the_order_and_cancels_the_others() {
        let mut o = order(10_000);
        let mut a = attempt(&o);
        let mut siblings = vec![attempt(&o), attempt(&o)];
        let events = complete_attempt(&mut o, &mut a, &mut siblings, None, t0()).unwrap_or_default();
        let kinds: Vec<_> = events.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "payment.completed",
                "order.paid",
                "payment.cancelled",
                "payment.cancelled"
            ]
        );
        assert_eq!(o.status, OrderStatus::Paid);
        assert!(siblings.iter().all(|p| p.status == PaymentStatus::Cancelled));
    }

    #[test]
    fn a_cancelled_attempt_that_still_completes_is_a_late_duplicate() {
        let mut o = order(10_000);
        let mut a = attempt(&o);
        let mut b = attempt(&o);
        complete_attempt(&mut o, &mut a, std::slice::from_mut(&mut b), None, t0()).unwrap_or_default();
        assert_eq!(b.status, PaymentStatus::Cancelled);
        let events = complete_attempt(&mut o, &mut b, std::slice::from_mut(&mut a), None, t0()).unwrap_or_default();
        assert_eq!(events.len(), 1);
        assert_eq!(b.status, PaymentStatus::Completed);
        assert!(b.late_success && b.duplicate);
        assert_eq!(o.paid_by.as_ref(), Some(&a.id));
    }

    #[test]
    fn a_failed_payment_never_completes() {
        let mut o = order(100);
        let mut a = attempt(&o);
        a.fail(t0()).unwrap_or_else(|e| panic!("{e}"));
        assert!(complete_attempt(&mut o, &mut a, &mut [], None, t0()).is_err());
    }

    #[test]
    fn refunds_move_payment_and_order_to_partially_refunded_then_refunded() {
        let mut o = order(10_000);
        let mut p = attempt(&o);
        complete_attempt(&mut o, &mut p, &mut [], None, t0()).unwrap_or_default();
        let half = Money::from_minor(5_000, Currency::Twd).unwrap_or_else(|_| panic!());
        for expected in [
            (PaymentStatus::PartiallyRefunded, OrderStatus::PartiallyRefunded),
            (PaymentStatus::Refunded, OrderStatus::Refunded),
        ] {
            let (mut r, _) = start_refund(&mut p, half, None, t0()).unwrap_or_else(|e| panic!("{e}"));
            settle_refund(&mut o, &mut p, &mut r, Ok(None), t0()).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!((p.status, o.status), expected);
        }
        assert!(matches!(
            start_refund(&mut p, half, None, t0()),
            Err(RefundRejected::NotRefundable(_))
        ));
    }

    #[derive(Debug, Clone)]
    enum Op {
        NewAttempt,
        Processing(usize),
        Complete(usize),
        Fail(usize),
        Cancel(usize),
        Expire(usize),
        Refund(usize, i64),
        Settle(usize, bool),
        CancelOrder,
        ExpireOrder,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            Just(Op::NewAttempt),
            (0..4usize).prop_map(Op::Processing),
            (0..4usize).prop_map(Op::Complete),
            (0..4usize).prop_map(Op::Fail),
            (0..4usize).prop_map(Op::Cancel),
            (0..4usize).prop_map(Op::Expire),
            (0..4usize, 1..12_000i64).prop_map(|(i, a)| Op::Refund(i, a)),
            (0..8usize, any::<bool>()).prop_map(|(i, s)| Op::Settle(i, s)),
            Just(Op::CancelOrder),
            Just(Op::ExpireOrder),
        ]
    }

    /// Snapshot of (status word, version) per object id, to check what each step emitted.
    fn snapshot(o: &Order, ps: &[Payment], rs: &[Refund]) -> HashMap<String, (&'static str, i64)> {
        let mut m = HashMap::new();
        m.insert(o.id.to_string(), (o.status.as_str(), o.version));
        for p in ps {
            m.insert(p.id.to_string(), (p.status.as_str(), p.version));
        }
        for r in rs {
            m.insert(r.id.to_string(), (r.status.as_str(), r.version));
        }
        m
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn random_operation_sequences_keep_every_invariant(ops in proptest::collection::vec(op(), 1..40)) {
            let amount = 10_000;
            let mut o = order(amount);
            let mut ps: Vec<Payment> = Vec::new();
            let mut rs: Vec<Refund> = Vec::new();
            let now = t0();
            for op in ops {
                let before = snapshot(&o, &ps, &rs);
                let events: Vec<EventDraft> = match op {
                    Op::NewAttempt => if o.is_payable() { ps.push(attempt(&o)); vec![] } else { vec![] },
                    Op::Processing(i) => ps.get_mut(i).and_then(|p| p.mark_processing(now).ok()).into_iter().collect(),
                    Op::Complete(i) if i < ps.len() => {
                        let mut p = ps.remove(i);
                        let ev = complete_attempt(&mut o, &mut p, &mut ps, Some("tx".into()), now).unwrap_or_default();
                        ps.insert(i, p);
                        ev
                    }
                    Op::Complete(_) => vec![],
                    Op::Fail(i) => ps.get_mut(i).and_then(|p| p.fail(now).ok()).into_iter().collect(),
                    Op::Cancel(i) => ps.get_mut(i).and_then(|p| p.cancel(now).ok()).into_iter().collect(),
                    Op::Expire(i) => ps.get_mut(i).and_then(|p| p.expire(now).ok()).into_iter().collect(),
                    Op::Refund(i, a) => match (ps.get_mut(i), Money::from_minor(a, Currency::Twd)) {
                        (Some(p), Ok(m)) => match start_refund(p, m, None, now) {
                            Ok((r, e)) => { rs.push(r); vec![e] }
                            Err(_) => vec![],
                        },
                        _ => vec![],
                    },
                    Op::Settle(j, ok) => match rs.get(j).map(|r| r.payment_id.clone()) {
                        Some(pid) => {
                            let pi = ps.iter().position(|p| p.id == pid).unwrap_or(0);
                            let outcome = if ok { Ok(None) } else { Err("declined".to_owned()) };
                            settle_refund(&mut o, &mut ps[pi], &mut rs[j], outcome, now).unwrap_or_default()
                        }
                        None => vec![],
                    },
                    Op::ExpireOrder => expire_order(&mut o, &mut ps, now).unwrap_or_default(),
                    Op::CancelOrder => cancel_order(&mut o, &mut ps, now).unwrap_or_default(),
                };
                let after = snapshot(&o, &ps, &rs);

                // Every status change emitted exactly one event, carrying the new version; every
                // event belongs to a change; versions never go down.
                for (id, (status, version)) in &after {
                    let emitted: Vec<_> = events.iter().filter(|e| &e.object_id == id).collect();
                    prop_assert!(emitted.len() <= 1, "{} events for {id}", emitted.len());
                    match before.get(id) {
                        Some((old_status, old_version)) => {
                            prop_assert!(version >= old_version);
                            if old_status != status { prop_assert_eq!(emitted.len(), 1); }
                            if let Some(e) = emitted.first() { prop_assert!(e.version == *version && version > old_version); }
                        }
                        None => prop_assert!(*version == 1),
                    }
                }

                // Refunds never exceed what was captured, and the reservation matches the refunds.
                for p in &ps {
                    let pending: i64 = rs.iter().filter(|r| r.payment_id == p.id && r.status == RefundStatus::Pending).map(|r| r.amount.minor()).sum();
                    let succeeded: i64 = rs.iter().filter(|r| r.payment_id == p.id && r.status == RefundStatus::Succeeded).map(|r| r.amount.minor()).sum();
                    prop_assert_eq!(p.refund_pending_minor, pending);
                    prop_assert_eq!(p.refunded_minor, succeeded);
                    prop_assert!(pending + succeeded <= p.amount.minor());
                    if pending + succeeded > 0 { prop_assert!(p.status.is_captured()); }
                }

                // Exactly one attempt pays the order; any other capture is a flagged duplicate or late.
                let payers: Vec<&Payment> = ps.iter().filter(|p| p.status.is_captured() && !p.duplicate && !p.late_success).collect();
                match &o.paid_by {
                    Some(id) => {
                        prop_assert!(payers.len() <= 1);
                        prop_assert!(ps.iter().any(|p| &p.id == id && p.status.is_captured()));
                        prop_assert!(!matches!(o.status, OrderStatus::Pending | OrderStatus::Cancelled | OrderStatus::Expired));
                        let payer = ps.iter().find(|p| &p.id == id).map(|p| p.refunded_minor).unwrap_or(-1);
                        prop_assert_eq!(o.refunded_minor, payer);
                    }
                    None => prop_assert!(payers.is_empty()),
                }
            }
            let _ = OrderId::generate();
        }
    }
}
