//! Wire types: request bodies as the two seeds send them, and response bodies. Kept apart from
//! domain types; conversion happens at the edge (here and in the handlers).

use jinliu_domain::money::{serialize_amount, serialize_minor};
use jinliu_domain::{Currency, MajorAmount, Order, Payment, Refund, format_time};
use serde::{Deserialize, Serialize, Serializer};
use utoipa::ToSchema;

/// `POST /api/orders`: seed 004's body (`description, amount, currency, customerEmail,
/// customerPhone, metadata`) or seed 000's (`items, totalAmount`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateOrderBody {
    /// Shown to the customer.
    pub description: Option<String>,
    /// Total in major units: a number or a decimal string ("100.00").
    #[schema(value_type = Option<f64>, example = 100.00)]
    pub amount: Option<MajorAmount>,
    /// Seed 000's name for the total.
    #[schema(value_type = Option<f64>)]
    pub total_amount: Option<MajorAmount>,
    /// ISO 4217; default from configuration (TWD).
    #[schema(example = "TWD")]
    pub currency: Option<String>,
    /// Customer email.
    pub customer_email: Option<String>,
    /// Customer phone.
    pub customer_phone: Option<String>,
    /// The merchant's own key/values (an object, at most 50 keys, 8 KiB).
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
    /// Seed 000 line items.
    pub items: Option<Vec<OrderItemBody>>,
}

/// One seed-000 line item.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrderItemBody {
    /// What was bought.
    pub name: String,
    /// How many (default 1).
    pub quantity: Option<i64>,
    /// Price of one, major units.
    #[schema(value_type = Option<f64>)]
    pub unit_price: Option<MajorAmount>,
}

/// `POST /api/payments`: seed 004's body (`orderId, amount, currency, method`) or seed 000's
/// (`provider, amount, orderId`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreatePaymentBody {
    /// The order to pay.
    pub order_id: String,
    /// Must equal the order's outstanding amount.
    #[schema(value_type = f64, example = 100.00)]
    pub amount: Option<MajorAmount>,
    /// Default: the order's currency.
    pub currency: Option<String>,
    /// `octopus_qr` means Octopus.
    pub method: Option<String>,
    /// `kpay`, `tpay`, `octopus` or `ecpay`; default per currency.
    pub provider: Option<String>,
    /// Customer email.
    pub customer_email: Option<String>,
    /// Customer phone.
    pub customer_phone: Option<String>,
    /// Shown to the customer; default the order's.
    pub description: Option<String>,
    /// The merchant's own key/values.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
    /// Where the hosted page sends the customer after success.
    pub success_url: Option<String>,
    /// Where the hosted page sends the customer after failure.
    pub failure_url: Option<String>,
}

/// `POST /api/payments/refund/{id}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RefundBody {
    /// Major units; leave the field out to refund everything not yet refunded (`null` is an
    /// invalid amount, never "everything").
    #[schema(value_type = Option<f64>)]
    #[serde(default, deserialize_with = "present")]
    pub amount: Option<MajorAmount>,
    /// Why (kept with the refund).
    pub reason: Option<String>,
}

/// A field that is present is `Some`, even when it is `null`: the raw text "null" then fails
/// amount parsing with `invalid_amount` instead of meaning "absent".
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<MajorAmount>, D::Error> {
    MajorAmount::deserialize(d).map(Some)
}

/// `POST /api/payments/{id}/cancel` and `POST /api/orders/{id}/cancel` take no fields.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmptyBody {}

/// An order as returned.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderDto {
    /// `ord_…`
    pub id: String,
    /// `ORD-XXXXXXXX`
    pub order_number: String,
    /// Free text.
    pub description: Option<String>,
    /// Major units with the currency's decimals.
    #[serde(serialize_with = "serialize_amount")]
    #[schema(value_type = f64)]
    pub amount: (i64, Currency),
    /// ISO 4217.
    #[schema(value_type = String)]
    pub currency: Currency,
    /// pending, paid, partially_refunded, refunded, cancelled, expired.
    pub status: &'static str,
    /// Seed-000 items.
    pub items: Vec<OrderItemDto>,
    /// Contact.
    pub customer_email: Option<String>,
    /// Contact.
    pub customer_phone: Option<String>,
    /// The merchant's key/values.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Box<serde_json::value::RawValue>>,
    /// The payment that paid it.
    pub paid_by: Option<String>,
    /// Refunded so far.
    #[serde(serialize_with = "serialize_amount")]
    #[schema(value_type = f64)]
    pub refunded_amount: (i64, Currency),
    /// Test or live.
    pub livemode: bool,
    /// Increases on every change.
    pub version: i64,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// RFC 3339 UTC.
    pub updated_at: String,
}

/// An order line as returned.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderItemDto {
    /// Name.
    pub name: String,
    /// Quantity.
    pub quantity: i64,
    /// Price of one, when known.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "opt_amount")]
    #[schema(value_type = Option<f64>)]
    pub unit_price: Option<(i64, Currency)>,
}

fn opt_amount<S: Serializer>(v: &Option<(i64, Currency)>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => serialize_minor(v.0, v.1, s),
        None => s.serialize_none(),
    }
}

fn raw_json(s: &Option<String>) -> Option<Box<serde_json::value::RawValue>> {
    s.as_ref()
        .and_then(|t| serde_json::value::RawValue::from_string(t.clone()).ok())
}

impl From<&Order> for OrderDto {
    fn from(o: &Order) -> Self {
        let cur = o.amount.currency();
        OrderDto {
            id: o.id.to_string(),
            order_number: o.order_number.clone(),
            description: o.description.clone(),
            amount: (o.amount.minor(), cur),
            currency: cur,
            status: o.status.as_str(),
            items: o
                .items
                .iter()
                .map(|i| OrderItemDto {
                    name: i.name.clone(),
                    quantity: i.quantity,
                    unit_price: i.unit_price_minor.map(|m| (m, cur)),
                })
                .collect(),
            customer_email: o.customer_email.clone(),
            customer_phone: o.customer_phone.clone(),
            metadata: raw_json(&o.metadata),
            paid_by: o.paid_by.as_ref().map(ToString::to_string),
            refunded_amount: (o.refunded_minor, cur),
            livemode: o.livemode,
            version: o.version,
            created_at: format_time(o.created_at),
            updated_at: format_time(o.updated_at),
        }
    }
}

/// A payment as returned (seed 004's shape plus jinliu's fields).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentDto {
    /// `pay_…`
    pub id: String,
    /// The order it pays.
    pub order_id: String,
    /// Provider id.
    pub provider: String,
    /// The provider account the payment was made with.
    pub provider_account: String,
    /// Payment method.
    pub method: String,
    /// Major units.
    #[serde(serialize_with = "serialize_amount")]
    #[schema(value_type = f64)]
    pub amount: (i64, Currency),
    /// ISO 4217.
    #[schema(value_type = String)]
    pub currency: Currency,
    /// pending, processing, completed, failed, expired, cancelled, partially_refunded, refunded.
    pub status: &'static str,
    /// Token to type into the provider's app.
    pub payment_token: Option<String>,
    /// JSON text with at least `url` (what the QR code encodes).
    pub qr_code_data: Option<String>,
    /// Unlocks this payment's public view for the browser.
    pub client_secret: String,
    /// The hosted checkout page for the customer: `{JINLIU_PUBLIC_URL}/pay/{id}?clientSecret=…`.
    pub checkout_url: String,
    /// The provider's id for this payment.
    pub provider_reference: Option<String>,
    /// The provider's transaction id, once the money moved.
    pub provider_transaction_id: Option<String>,
    /// Seed 004's name for it, on Octopus payments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub octopus_transaction_id: Option<String>,
    /// Refunded so far.
    #[serde(serialize_with = "serialize_amount")]
    #[schema(value_type = f64)]
    pub refunded_amount: (i64, Currency),
    /// Completed after jinliu had expired or cancelled it.
    pub late_success: bool,
    /// Completed after another attempt had paid the order.
    pub duplicate: bool,
    /// Free text.
    pub description: Option<String>,
    /// Contact.
    pub customer_email: Option<String>,
    /// Contact.
    pub customer_phone: Option<String>,
    /// The merchant's key/values.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Box<serde_json::value::RawValue>>,
    /// After-success redirect.
    pub success_url: Option<String>,
    /// After-failure redirect.
    pub failure_url: Option<String>,
    /// Test or live.
    pub livemode: bool,
    /// Increases on every change.
    pub version: i64,
    /// When the customer can no longer pay.
    pub expires_at: String,
    /// When the money was confirmed.
    pub completed_at: Option<String>,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// RFC 3339 UTC.
    pub updated_at: String,
}

/// The hosted checkout page of a payment. The client secret is URL-safe by construction
/// (`pay_…_secret_` + alphanumerics), so it goes into the query string as it is.
pub fn checkout_url(public_url: &str, p: &Payment) -> String {
    format!("{public_url}/pay/{}?clientSecret={}", p.id, p.client_secret)
}

impl PaymentDto {
    /// Renders a payment; `public_url` is `JINLIU_PUBLIC_URL`, the base of `checkoutUrl`.
    pub fn new(p: &Payment, public_url: &str) -> Self {
        let cur = p.amount.currency();
        PaymentDto {
            checkout_url: checkout_url(public_url, p),
            id: p.id.to_string(),
            order_id: p.order_id.to_string(),
            provider: p.provider.clone(),
            provider_account: p.provider_account.clone(),
            method: p.method.clone(),
            amount: (p.amount.minor(), cur),
            currency: cur,
            status: p.status.as_str(),
            payment_token: p.payment_token.clone(),
            qr_code_data: p.qr_code_data.clone(),
            client_secret: p.client_secret.clone(),
            provider_reference: p.provider_reference.clone(),
            provider_transaction_id: p.provider_transaction_id.clone(),
            octopus_transaction_id: (p.provider == "octopus")
                .then(|| p.provider_transaction_id.clone())
                .flatten(),
            refunded_amount: (p.refunded_minor, cur),
            late_success: p.late_success,
            duplicate: p.duplicate,
            description: p.description.clone(),
            customer_email: p.customer_email.clone(),
            customer_phone: p.customer_phone.clone(),
            metadata: raw_json(&p.metadata),
            success_url: p.success_url.clone(),
            failure_url: p.failure_url.clone(),
            livemode: p.livemode,
            version: p.version,
            expires_at: format_time(p.expires_at),
            completed_at: p.completed_at.map(format_time),
            created_at: format_time(p.created_at),
            updated_at: format_time(p.updated_at),
        }
    }
}

/// A payment's public view: what the customer's browser may see with the payment's
/// `clientSecret` (the checkout page, polling, live status). No contact data, metadata, client
/// secret or provider references: a leaked page URL must not leak the customer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublicPaymentDto {
    /// `pay_…`
    pub id: String,
    /// The order it pays.
    pub order_id: String,
    /// The merchant's display name.
    pub merchant_name: String,
    /// Shown to the customer.
    pub description: Option<String>,
    /// Provider id.
    pub provider: String,
    /// Payment method.
    pub method: String,
    /// Major units.
    #[serde(serialize_with = "serialize_amount")]
    #[schema(value_type = f64)]
    pub amount: (i64, Currency),
    /// ISO 4217.
    #[schema(value_type = String)]
    pub currency: Currency,
    /// pending, processing, completed, failed, expired, cancelled, partially_refunded, refunded.
    pub status: &'static str,
    /// Token to type into the provider's app.
    pub payment_token: Option<String>,
    /// JSON text with at least `url` (what the QR code encodes).
    pub qr_code_data: Option<String>,
    /// When the customer can no longer pay.
    pub expires_at: String,
    /// Increases on every change.
    pub version: i64,
    /// RFC 3339 UTC.
    pub updated_at: String,
    /// Test or live.
    pub livemode: bool,
    /// After-success redirect.
    pub success_url: Option<String>,
    /// After-failure redirect.
    pub failure_url: Option<String>,
}

impl PublicPaymentDto {
    /// The public view of `p`, whose merchant is called `merchant_name`.
    pub fn new(p: &Payment, merchant_name: String) -> Self {
        let cur = p.amount.currency();
        PublicPaymentDto {
            id: p.id.to_string(),
            order_id: p.order_id.to_string(),
            merchant_name,
            description: p.description.clone(),
            provider: p.provider.clone(),
            method: p.method.clone(),
            amount: (p.amount.minor(), cur),
            currency: cur,
            status: p.status.as_str(),
            payment_token: p.payment_token.clone(),
            qr_code_data: p.qr_code_data.clone(),
            expires_at: format_time(p.expires_at),
            version: p.version,
            updated_at: format_time(p.updated_at),
            livemode: p.livemode,
            success_url: p.success_url.clone(),
            failure_url: p.failure_url.clone(),
        }
    }
}

/// A refund as returned.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefundDto {
    /// `re_…`
    pub id: String,
    /// The refunded payment.
    pub payment_id: String,
    /// Major units.
    #[serde(serialize_with = "serialize_amount")]
    #[schema(value_type = f64)]
    pub amount: (i64, Currency),
    /// ISO 4217.
    #[schema(value_type = String)]
    pub currency: Currency,
    /// pending, succeeded, failed.
    pub status: &'static str,
    /// Why.
    pub reason: Option<String>,
    /// The provider's refund id.
    pub provider_reference: Option<String>,
    /// Why the provider refused.
    pub failure_reason: Option<String>,
    /// Test or live.
    pub livemode: bool,
    /// Increases on every change.
    pub version: i64,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// RFC 3339 UTC.
    pub updated_at: String,
}

impl From<&Refund> for RefundDto {
    fn from(r: &Refund) -> Self {
        let cur = r.amount.currency();
        RefundDto {
            id: r.id.to_string(),
            payment_id: r.payment_id.to_string(),
            amount: (r.amount.minor(), cur),
            currency: cur,
            status: r.status.as_str(),
            reason: r.reason.clone(),
            provider_reference: r.provider_reference.clone(),
            failure_reason: r.failure_reason.clone(),
            livemode: r.livemode,
            version: r.version,
            created_at: format_time(r.created_at),
            updated_at: format_time(r.updated_at),
        }
    }
}

/// A page of a list.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListDto<T> {
    /// The items, newest first.
    pub items: Vec<T>,
    /// Page number.
    pub page: u64,
    /// Page size.
    pub limit: u64,
    /// Items in all pages.
    pub total: u64,
    /// Whether more follow.
    pub has_more: bool,
}

/// The success envelope `{ success: true, data, message? }`.
#[derive(Debug, Serialize)]
pub struct Envelope<T> {
    /// Always true.
    pub success: bool,
    /// The payload.
    pub data: T,
    /// A human message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<&'static str>,
}

/// Renders a success answer.
pub fn ok<T: Serialize>(status: u16, data: T, message: Option<&'static str>) -> jinliu_store::StoredResponse {
    let body = serde_json::to_string(&Envelope {
        success: true,
        data,
        message,
    })
    .unwrap_or_else(|_| "{}".into());
    jinliu_store::StoredResponse { status, body }
}
