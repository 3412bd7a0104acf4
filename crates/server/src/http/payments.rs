//! `/api/payments`: create, get, cancel, refund, list refunds.

use axum::extract::{Path, State};
use axum::response::Response;
use jinliu_domain::{Currency, OrderId, Payment, PaymentId, Refund, RefundId};
use jinliu_store::StoredResponse;

use super::dto::{CreatePaymentBody, EmptyBody, PaymentDto, PublicPaymentDto, RefundBody, RefundDto, ok};
use super::error::ApiError;
use super::extract::{ApiJson, Authenticated, Caller, IdempotencyKey};
use super::idempotency::{self, respond};
use super::qr;
use super::validate;
use super::watch::{self, Watched, Watcher};
use crate::service::{self, PaymentRequest};
use crate::state::AppState;

/// A payment renderer; it captures the public URL because `checkoutUrl` is built from it.
fn render_payment(
    app: &AppState,
    status: u16,
    message: Option<&'static str>,
) -> impl Fn(&Payment) -> StoredResponse + Send + Sync + 'static {
    let base = app.config.public_url.clone();
    move |p| ok(status, PaymentDto::new(p, &base), message)
}

fn render_created(app: &AppState) -> impl Fn(&Payment) -> StoredResponse + Send + Sync + 'static {
    render_payment(app, 201, Some("支付請求已創建"))
}

fn render_cancelled(app: &AppState) -> impl Fn(&Payment) -> StoredResponse + Send + Sync + 'static {
    render_payment(app, 200, Some("支付已取消"))
}

fn render_refund(r: &Refund) -> StoredResponse {
    ok(201, RefundDto::from(r), Some("退款已處理"))
}

fn render_refund_started(r: &(Refund, Payment)) -> StoredResponse {
    render_refund(&r.0)
}

fn payment_id(id: &str) -> Result<PaymentId, ApiError> {
    PaymentId::parse(id).ok_or_else(|| ApiError::not_found("payment"))
}

/// Create a payment for an order (seed 004 or seed 000 body).
#[utoipa::path(post, path = "/api/payments", tag = "payments", request_body = CreatePaymentBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer for 24 h")),
    responses((status = 201, description = "Created; pay with qrCodeData.url", body = PaymentDto),
        (status = 404, description = "No such order"), (status = 409, description = "Order not payable"),
        (status = 422, description = "Amount, currency or provider refused")))]
pub async fn create(
    State(app): State<AppState>,
    Authenticated(caller): Authenticated,
    IdempotencyKey(key): IdempotencyKey,
    body: ApiJson<CreatePaymentBody>,
) -> Result<Response, ApiError> {
    let scope = caller.scope();
    let b = body.value;
    let req = PaymentRequest {
        order_id: OrderId::parse(&b.order_id).ok_or_else(|| ApiError::not_found("order"))?,
        amount: b
            .amount
            .map(|a| a.0)
            .ok_or_else(|| ApiError::unprocessable("invalid_amount", "amount is required"))?,
        currency: b
            .currency
            .map(|c| c.parse::<Currency>())
            .transpose()
            .map_err(|e| ApiError::unprocessable("unsupported_currency", e.to_string()))?,
        provider: b.provider,
        method: b.method,
        description: validate::opt_text("description", b.description, 1000)?,
        customer_email: validate::email(b.customer_email)?,
        customer_phone: validate::phone(b.customer_phone)?,
        metadata: validate::metadata(b.metadata)?,
        success_url: validate::url("successUrl", b.success_url)?,
        failure_url: validate::url("failureUrl", b.failure_url)?,
    };
    Ok(idempotency::run(
        &app,
        &scope,
        key,
        "POST /api/payments",
        &body.raw,
        render_created(&app),
        |idem| async {
            let idem = idem.map(|c| c.request(true, render_created(&app)));
            service::create_payment(&app, &scope, &caller.merchant, req, idem).await
        },
    )
    .await)
}

/// Get one payment: the merchant's full view (seed 004 shape) with merchant credentials, or the
/// public view with the payment's `clientSecret` (the checkout page polls this).
#[utoipa::path(get, path = "/api/payments/{id}", tag = "payments",
    params(("id" = String, Path, description = "pay_…"),
        ("clientSecret" = Option<String>, Query, description = "The payment's client secret: answers the public view without merchant credentials")),
    responses((status = 200, description = "The payment (merchant credentials)", body = PaymentDto),
        (status = 200, description = "The public view (clientSecret)", body = PublicPaymentDto),
        (status = 404, description = "No such payment, or a wrong client secret")))]
pub async fn get(
    State(app): State<AppState>,
    watcher: Watcher,
    Path(id): Path<String>,
    axum::extract::Query(q): axum::extract::Query<ClientSecretQuery>,
) -> Result<Response, ApiError> {
    Ok(match watcher.payment(&app, &id, q.client_secret.as_deref()).await? {
        Watched::Full(p) => respond(render_payment(&app, 200, None)(&p)),
        Watched::Public(p) => {
            let name = watch::merchant_name(&app, &p).await?;
            respond(ok(200, PublicPaymentDto::new(&p, name), None))
        }
    })
}

/// Cancel a pending payment.
#[utoipa::path(post, path = "/api/payments/{id}/cancel", tag = "payments", params(("id" = String, Path, description = "pay_…")),
    responses((status = 200, description = "Cancelled", body = PaymentDto), (status = 409, description = "Not open")))]
pub async fn cancel(
    State(app): State<AppState>,
    Caller(scope): Caller,
    IdempotencyKey(key): IdempotencyKey,
    Path(id): Path<String>,
    body: ApiJson<EmptyBody>,
) -> Result<Response, ApiError> {
    let id = payment_id(&id)?;
    let path = format!("POST /api/payments/{id}/cancel");
    Ok(idempotency::run(
        &app,
        &scope,
        key,
        &path,
        &body.raw,
        render_cancelled(&app),
        |idem| async {
            service::cancel_payment(&app, &scope, &id, idem.map(|c| c.request(true, render_cancelled(&app)))).await
        },
    )
    .await)
}

/// Refund a payment, in full (no amount) or in part (seed 000 path).
#[utoipa::path(post, path = "/api/payments/refund/{id}", tag = "payments", request_body = RefundBody,
    params(("id" = String, Path, description = "pay_…")),
    responses((status = 201, description = "The refund (succeeded, failed or pending)", body = RefundDto),
        (status = 409, description = "Payment not refundable"), (status = 422, description = "Above the remaining amount")))]
pub async fn refund(
    State(app): State<AppState>,
    Caller(scope): Caller,
    IdempotencyKey(key): IdempotencyKey,
    Path(id): Path<String>,
    body: ApiJson<RefundBody>,
) -> Result<Response, ApiError> {
    let id = payment_id(&id)?;
    let b = body.value;
    let reason = validate::opt_text("reason", b.reason, 500)?;
    let path = format!("POST /api/payments/refund/{id}");
    let (app_ref, scope_ref, id_ref) = (&app, &scope, &id);
    Ok(
        idempotency::run(&app, &scope, key, &path, &body.raw, render_refund, |idem| async move {
            let start = idem.as_ref().map(|c| c.request(false, render_refund_started));
            let finish = idem
                .clone()
                .map(|c| Box::new(move || c.request(true, render_refund)) as service::IdemFactory<Refund>);
            service::refund_payment(app_ref, scope_ref, id_ref, b.amount.map(|a| a.0), reason, start, finish).await
        })
        .await,
    )
}

/// A payment's refunds, oldest first.
#[utoipa::path(get, path = "/api/payments/{id}/refunds", tag = "payments", params(("id" = String, Path, description = "pay_…")),
    responses((status = 200, description = "Refunds", body = Vec<RefundDto>), (status = 404, description = "No such payment")))]
pub async fn refunds(
    State(app): State<AppState>,
    Caller(scope): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = payment_id(&id)?;
    let list = app.store.refunds_for_payment(&scope, &id).await?;
    Ok(respond(ok(
        200,
        list.iter().map(RefundDto::from).collect::<Vec<_>>(),
        None,
    )))
}

/// One refund.
#[utoipa::path(get, path = "/api/refunds/{id}", tag = "payments", params(("id" = String, Path, description = "re_…")),
    responses((status = 200, description = "The refund", body = RefundDto), (status = 404, description = "No such refund")))]
pub async fn get_refund(
    State(app): State<AppState>,
    Caller(scope): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = RefundId::parse(&id).ok_or_else(|| ApiError::not_found("refund"))?;
    let r = app
        .store
        .refund(&scope, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("refund"))?;
    Ok(respond(ok(200, RefundDto::from(&r), None)))
}

/// `?clientSecret=…`: the payment's client secret, the browser's only credential.
#[derive(Debug, serde::Deserialize)]
pub struct ClientSecretQuery {
    /// The payment's client secret.
    #[serde(rename = "clientSecret")]
    pub client_secret: Option<String>,
}

/// The payment whose client secret the caller presented. A wrong or missing secret answers 404,
/// exactly like an unknown payment, so the answer tells nothing about which ids exist.
async fn by_client_secret(app: &AppState, id: &str, q: ClientSecretQuery) -> Result<Payment, ApiError> {
    let id = payment_id(id)?;
    let secret = q.client_secret.unwrap_or_default();
    app.store
        .payment_unscoped(&id)
        .await?
        .filter(|p| crate::secrets::constant_time_eq(p.client_secret.as_bytes(), secret.as_bytes()))
        .ok_or_else(|| ApiError::not_found("payment"))
}

/// The QR code of a payment's customer URL (`qrCodeData.url`) as SVG, drawn here so the browser
/// needs no QR library and the checkout page's CSP can stay `img-src 'self'`.
#[utoipa::path(get, path = "/api/payments/{id}/qr.svg", tag = "payments",
    params(("id" = String, Path, description = "pay_…"), ("clientSecret" = String, Query, description = "The payment's client secret")),
    responses((status = 200, description = "The QR code", content_type = "image/svg+xml"),
        (status = 404, description = "Unknown payment, wrong secret, or no customer URL")))]
pub async fn qr_svg(
    State(app): State<AppState>,
    Path(id): Path<String>,
    axum::extract::Query(q): axum::extract::Query<ClientSecretQuery>,
) -> Result<Response, ApiError> {
    use axum::http::header;
    use axum::response::IntoResponse;
    let payment = by_client_secret(&app, &id, q).await?;
    let url = qr_url(&payment).ok_or_else(|| ApiError::not_found("payment"))?;
    let svg = qr::svg(&url).ok_or_else(|| ApiError::internal("the payment's URL does not fit in a QR code"))?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            // The QR leads to a payable page and the secret is in the URL: keep it out of caches.
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        svg,
    )
        .into_response())
}

/// `qrCodeData.url`: what the customer's phone should open.
fn qr_url(p: &Payment) -> Option<String> {
    let data: serde_json::Value = serde_json::from_str(p.qr_code_data.as_deref()?).ok()?;
    data.get("url")?.as_str().map(str::to_owned)
}

/// The customer's page for providers started by a browser form POST (ECPay, TPay): it posts
/// the signed form to the provider at once. This is the payment's `qrCodeData.url`.
#[utoipa::path(get, path = "/api/payments/{id}/checkout", tag = "payments",
    params(("id" = String, Path, description = "pay_…"), ("clientSecret" = String, Query, description = "The payment's client secret")),
    responses((status = 200, description = "HTML that posts the provider's form", content_type = "text/html"), (status = 404, description = "Unknown payment or wrong secret")))]
pub async fn checkout(
    State(app): State<AppState>,
    Path(id): Path<String>,
    axum::extract::Query(q): axum::extract::Query<ClientSecretQuery>,
) -> Result<Response, ApiError> {
    use axum::http::header::{CACHE_CONTROL, REFERRER_POLICY, X_FRAME_OPTIONS};
    use axum::response::{Html, IntoResponse};
    // The URL carries the client secret: no Referer to the provider, no caching, no framing.
    let headers = [
        (REFERRER_POLICY, "no-referrer"),
        (CACHE_CONTROL, "no-store"),
        (X_FRAME_OPTIONS, "DENY"),
    ];
    let payment = by_client_secret(&app, &id, q).await?;
    let esc = jinliu_providers::sandbox::page::escape;
    if !payment.status.is_open() {
        let page = Html(format!(
            "<!doctype html><meta charset=\"utf-8\"><title>Payment</title><p>This payment is {}.</p>",
            esc(payment.status.as_str())
        ));
        return Ok((headers, page).into_response());
    }
    let form = service::adapter_of(&app, &payment)
        .await
        .and_then(|a| a.checkout_form(&service::provider_request(&payment)))
        .ok_or_else(|| ApiError::not_found("payment"))?;
    let inputs: String = form
        .fields
        .iter()
        .map(|(k, v)| format!("<input type=\"hidden\" name=\"{}\" value=\"{}\">", esc(k), esc(v)))
        .collect();
    let page = Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Redirecting to the payment page</title></head>\
         <body><form id=\"checkout\" method=\"post\" action=\"{action}\">{inputs}\
         <noscript><button type=\"submit\">Continue to payment</button></noscript></form>\
         <script>document.getElementById('checkout').submit();</script></body></html>",
        action = esc(&form.action)
    ));
    Ok((headers, page).into_response())
}
