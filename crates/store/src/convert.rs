//! Rows ↔ domain types. Reading back a value jinliu did not write (an unknown status, a bad
//! currency) is reported as corrupt instead of guessed.

use chrono::{TimeZone, Utc};
use jinliu_domain::{
    Currency, MerchantId, Money, Order, OrderId, OrderItem, OrderStatus, Payment, PaymentId, PaymentStatus, Refund,
    RefundId, RefundStatus, Timestamp,
};
use sea_orm::ActiveValue::Set;

use crate::StoreError;
use crate::entity::{orders, payments, refunds};

pub(crate) fn ms(t: Timestamp) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn time(ms: i64) -> Result<Timestamp, StoreError> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .ok_or_else(|| StoreError::Corrupt(format!("timestamp {ms}")))
}

fn money(minor: i64, currency: &str) -> Result<Money, StoreError> {
    let cur: Currency = currency
        .parse()
        .map_err(|_| StoreError::Corrupt(format!("currency {currency}")))?;
    Money::from_minor(minor, cur).map_err(|_| StoreError::Corrupt(format!("amount {minor}")))
}

pub(crate) fn order_from_row(r: orders::Model) -> Result<Order, StoreError> {
    let items: Vec<OrderItem> = match r.items.as_deref() {
        Some(json) => serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("order items: {e}")))?,
        None => Vec::new(),
    };
    Ok(Order {
        status: OrderStatus::parse(&r.status)
            .ok_or_else(|| StoreError::Corrupt(format!("order status {}", r.status)))?,
        amount: money(r.amount_minor, &r.currency)?,
        id: OrderId::from_trusted(r.id),
        merchant_id: MerchantId::from_trusted(r.merchant_id),
        order_number: r.order_number,
        description: r.description,
        items,
        customer_email: r.customer_email,
        customer_phone: r.customer_phone,
        metadata: r.metadata,
        paid_by: r.paid_by.map(PaymentId::from_trusted),
        refunded_minor: r.refunded_minor,
        livemode: r.livemode,
        version: r.version,
        created_at: time(r.created_at)?,
        updated_at: time(r.updated_at)?,
    })
}

pub(crate) fn order_to_row(o: &Order) -> orders::ActiveModel {
    orders::ActiveModel {
        id: Set(o.id.to_string()),
        merchant_id: Set(o.merchant_id.to_string()),
        livemode: Set(o.livemode),
        order_number: Set(o.order_number.clone()),
        description: Set(o.description.clone()),
        amount_minor: Set(o.amount.minor()),
        currency: Set(o.amount.currency().code().to_owned()),
        items: Set((!o.items.is_empty()).then(|| serde_json::to_string(&o.items).unwrap_or_else(|_| "[]".into()))),
        customer_email: Set(o.customer_email.clone()),
        customer_phone: Set(o.customer_phone.clone()),
        metadata: Set(o.metadata.clone()),
        status: Set(o.status.as_str().to_owned()),
        paid_by: Set(o.paid_by.as_ref().map(ToString::to_string)),
        refunded_minor: Set(o.refunded_minor),
        version: Set(o.version),
        created_at: Set(ms(o.created_at)),
        updated_at: Set(ms(o.updated_at)),
    }
}

pub(crate) fn payment_from_row(r: payments::Model) -> Result<Payment, StoreError> {
    Ok(Payment {
        status: PaymentStatus::parse(&r.status)
            .ok_or_else(|| StoreError::Corrupt(format!("payment status {}", r.status)))?,
        amount: money(r.amount_minor, &r.currency)?,
        id: PaymentId::from_trusted(r.id),
        merchant_id: MerchantId::from_trusted(r.merchant_id),
        order_id: OrderId::from_trusted(r.order_id),
        provider: r.provider,
        provider_account: r.provider_account,
        method: r.method,
        provider_reference: r.provider_reference,
        provider_transaction_id: r.provider_transaction_id,
        payment_token: r.payment_token,
        qr_code_data: r.qr_code_data,
        client_secret: r.client_secret,
        success_url: r.success_url,
        failure_url: r.failure_url,
        description: r.description,
        customer_email: r.customer_email,
        customer_phone: r.customer_phone,
        metadata: r.metadata,
        refunded_minor: r.refunded_minor,
        refund_pending_minor: r.refund_pending_minor,
        late_success: r.late_success,
        duplicate: r.duplicate,
        livemode: r.livemode,
        version: r.version,
        expires_at: time(r.expires_at)?,
        completed_at: r.completed_at.map(time).transpose()?,
        created_at: time(r.created_at)?,
        updated_at: time(r.updated_at)?,
    })
}

pub(crate) fn payment_to_row(p: &Payment) -> payments::ActiveModel {
    payments::ActiveModel {
        id: Set(p.id.to_string()),
        merchant_id: Set(p.merchant_id.to_string()),
        livemode: Set(p.livemode),
        order_id: Set(p.order_id.to_string()),
        provider: Set(p.provider.clone()),
        provider_account: Set(p.provider_account.clone()),
        method: Set(p.method.clone()),
        amount_minor: Set(p.amount.minor()),
        currency: Set(p.amount.currency().code().to_owned()),
        status: Set(p.status.as_str().to_owned()),
        provider_reference: Set(p.provider_reference.clone()),
        provider_transaction_id: Set(p.provider_transaction_id.clone()),
        payment_token: Set(p.payment_token.clone()),
        qr_code_data: Set(p.qr_code_data.clone()),
        client_secret: Set(p.client_secret.clone()),
        success_url: Set(p.success_url.clone()),
        failure_url: Set(p.failure_url.clone()),
        description: Set(p.description.clone()),
        customer_email: Set(p.customer_email.clone()),
        customer_phone: Set(p.customer_phone.clone()),
        metadata: Set(p.metadata.clone()),
        refunded_minor: Set(p.refunded_minor),
        refund_pending_minor: Set(p.refund_pending_minor),
        late_success: Set(p.late_success),
        duplicate: Set(p.duplicate),
        version: Set(p.version),
        expires_at: Set(ms(p.expires_at)),
        completed_at: Set(p.completed_at.map(ms)),
        created_at: Set(ms(p.created_at)),
        updated_at: Set(ms(p.updated_at)),
    }
}

pub(crate) fn refund_from_row(r: refunds::Model) -> Result<Refund, StoreError> {
    Ok(Refund {
        status: RefundStatus::parse(&r.status)
            .ok_or_else(|| StoreError::Corrupt(format!("refund status {}", r.status)))?,
        amount: money(r.amount_minor, &r.currency)?,
        id: RefundId::from_trusted(r.id),
        merchant_id: MerchantId::from_trusted(r.merchant_id),
        payment_id: PaymentId::from_trusted(r.payment_id),
        reason: r.reason,
        provider_reference: r.provider_reference,
        failure_reason: r.failure_reason,
        livemode: r.livemode,
        version: r.version,
        created_at: time(r.created_at)?,
        updated_at: time(r.updated_at)?,
    })
}

pub(crate) fn refund_to_row(r: &Refund) -> refunds::ActiveModel {
    refunds::ActiveModel {
        id: Set(r.id.to_string()),
        merchant_id: Set(r.merchant_id.to_string()),
        livemode: Set(r.livemode),
        payment_id: Set(r.payment_id.to_string()),
        amount_minor: Set(r.amount.minor()),
        currency: Set(r.amount.currency().code().to_owned()),
        status: Set(r.status.as_str().to_owned()),
        reason: Set(r.reason.clone()),
        provider_reference: Set(r.provider_reference.clone()),
        failure_reason: Set(r.failure_reason.clone()),
        version: Set(r.version),
        created_at: Set(ms(r.created_at)),
        updated_at: Set(ms(r.updated_at)),
    }
}
