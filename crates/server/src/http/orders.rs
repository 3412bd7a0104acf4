//! `/api/orders`: create, get, list, cancel.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use jinliu_domain::{Currency, Merchant, Money, NewOrder, Order, OrderId, OrderItem, OrderStatus};
use jinliu_store::{OrderFilter, StoredResponse};
use serde_json::json;

use super::dto::{CreateOrderBody, EmptyBody, ListDto, OrderDto, PaymentDto, ok};
use super::error::ApiError;
use super::extract::{ApiJson, Authenticated, Caller, IdempotencyKey};
use super::idempotency::{self, respond};
use super::validate;
use crate::service;
use crate::state::AppState;

/// A malformed id answers 404, exactly like an id that does not exist.
fn order_id(id: &str) -> Result<OrderId, ApiError> {
    OrderId::parse(id).ok_or_else(|| ApiError::not_found("order"))
}

fn render_created(o: &Order) -> StoredResponse {
    ok(201, OrderDto::from(o), Some("訂單已創建"))
}

fn render_cancelled(o: &Order) -> StoredResponse {
    ok(200, OrderDto::from(o), Some("訂單已取消"))
}

/// Create an order (seed 004 or seed 000 body).
#[utoipa::path(post, path = "/api/orders", tag = "orders", request_body = CreateOrderBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer for 24 h")),
    responses((status = 201, description = "Created", body = OrderDto), (status = 422, description = "Invalid amount or items")))]
pub async fn create(
    State(app): State<AppState>,
    Authenticated(caller): Authenticated,
    IdempotencyKey(key): IdempotencyKey,
    body: ApiJson<CreateOrderBody>,
) -> Result<Response, ApiError> {
    let scope = caller.scope();
    let new = parse_new_order(&app, &scope, &caller.merchant, body.value)?;
    Ok(idempotency::run(
        &app,
        &scope,
        key,
        "POST /api/orders",
        &body.raw,
        render_created,
        |idem| async { service::create_order(&app, new, idem.map(|c| c.request(true, render_created))).await },
    )
    .await)
}

/// Cancel a pending order and its open payment attempts.
#[utoipa::path(post, path = "/api/orders/{id}/cancel", tag = "orders",
    params(("id" = String, Path, description = "ord_…")),
    responses((status = 200, description = "Cancelled", body = OrderDto), (status = 409, description = "Not pending")))]
pub async fn cancel(
    State(app): State<AppState>,
    Caller(scope): Caller,
    IdempotencyKey(key): IdempotencyKey,
    Path(id): Path<String>,
    body: ApiJson<EmptyBody>,
) -> Result<Response, ApiError> {
    let id = order_id(&id)?;
    let path = format!("POST /api/orders/{id}/cancel");
    Ok(
        idempotency::run(&app, &scope, key, &path, &body.raw, render_cancelled, |idem| async {
            let idem = idem.map(|c| c.request(true, render_cancelled));
            crate::service::cancel_order(&app, &scope, &id, idem).await
        })
        .await,
    )
}

/// Get one order.
#[utoipa::path(get, path = "/api/orders/{id}", tag = "orders", params(("id" = String, Path, description = "ord_…")),
    responses((status = 200, description = "The order", body = OrderDto), (status = 404, description = "No such order")))]
pub async fn get(
    State(app): State<AppState>,
    Caller(scope): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = order_id(&id)?;
    let order = app
        .store
        .order(&scope, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("order"))?;
    Ok(respond(ok(200, OrderDto::from(&order), None)))
}

/// An order's payment attempts, oldest first.
#[utoipa::path(get, path = "/api/orders/{id}/payments", tag = "orders", params(("id" = String, Path, description = "ord_…")),
    responses((status = 200, description = "Attempts", body = Vec<PaymentDto>), (status = 404, description = "No such order")))]
pub async fn payments(
    State(app): State<AppState>,
    Caller(scope): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = order_id(&id)?;
    let list = app.store.payments_for_order(&scope, &id).await?;
    Ok(respond(ok(
        200,
        list.iter()
            .map(|p| PaymentDto::new(p, &app.config.public_url))
            .collect::<Vec<_>>(),
        None,
    )))
}

/// List orders, newest first.
#[utoipa::path(get, path = "/api/orders", tag = "orders",
    params(
        ("page" = Option<u64>, Query, description = "1-based page (default 1)"),
        ("limit" = Option<u64>, Query, description = "1–100 (default 20)"),
        ("status" = Option<String>, Query, description = "Only this status"),
        ("from" = Option<String>, Query, description = "Created on/after: YYYY-MM-DD in the business time zone, or RFC 3339"),
        ("to" = Option<String>, Query, description = "Created on/before: YYYY-MM-DD (whole day included), or RFC 3339 (exclusive)"),
        ("startingAfter" = Option<String>, Query, description = "Cursor: orders older than this id"),
    ),
    responses((status = 200, description = "A page", body = ListDto<OrderDto>)))]
pub async fn list(
    State(app): State<AppState>,
    Authenticated(caller): Authenticated,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let scope = caller.scope();
    let filter = parse_filter(crate::auth::business_zone(&app, &caller.merchant), &q)?;
    let page = app.store.list_orders(&scope, &filter).await?;
    let dto = ListDto {
        items: page.items.iter().map(OrderDto::from).collect(),
        page: page.page,
        limit: page.limit,
        total: page.total,
        has_more: page.has_more,
    };
    Ok(respond(ok(200, dto, None)))
}

fn parse_filter(tz: chrono_tz::Tz, q: &HashMap<String, String>) -> Result<OrderFilter, ApiError> {
    let num = |name: &str, default: u64, range: std::ops::RangeInclusive<u64>| -> Result<u64, ApiError> {
        match q.get(name) {
            None => Ok(default),
            Some(v) => v.parse::<u64>().ok().filter(|n| range.contains(n)).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "{name} must be a whole number in {}–{}",
                    range.start(),
                    range.end()
                ))
            }),
        }
    };
    let status = match q.get("status") {
        None => None,
        Some(s) => Some(OrderStatus::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!("unknown status {s:?}"))
                .with_details(json!({ "statuses": OrderStatus::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>() }))
        })?),
    };
    let starting_after = match q.get("startingAfter") {
        None => None,
        Some(s) => Some(OrderId::parse(s).ok_or_else(|| ApiError::bad_request("startingAfter must be an order id"))?),
    };
    let bound = |name: &str, end_of_day: bool| validate::time_bound(tz, name, q.get(name), end_of_day);
    Ok(OrderFilter {
        status,
        from_ms: bound("from", false)?,
        to_ms: bound("to", true)?,
        page: num("page", 1, 1..=1_000_000)?,
        limit: num("limit", 20, 1..=100)?,
        starting_after,
    })
}

fn parse_new_order(
    app: &AppState,
    scope: &jinliu_store::Scope,
    merchant: &Merchant,
    b: CreateOrderBody,
) -> Result<NewOrder, ApiError> {
    let currency: Currency = match &b.currency {
        Some(c) => c
            .parse()
            .map_err(|e| ApiError::unprocessable("unsupported_currency", format!("{e}")))?,
        None => merchant.default_currency,
    };
    let limit = app.config.amount_limit;
    let mut items = Vec::new();
    let mut items_total: Option<i64> = Some(0);
    for (i, item) in b.items.unwrap_or_default().into_iter().enumerate() {
        if i >= 100 {
            return Err(validate::failed("items", "at most 100 items"));
        }
        validate::text(&format!("items[{i}].name"), &item.name, 1, 200)?;
        let quantity = item.quantity.unwrap_or(1);
        if !(1..=1_000_000).contains(&quantity) {
            return Err(validate::failed(&format!("items[{i}].quantity"), "must be 1–1000000"));
        }
        let unit = match &item.unit_price {
            Some(p) => Some(Money::parse_major(&p.0, currency, limit)?.minor()),
            None => None,
        };
        items_total = match (items_total, unit) {
            (Some(t), Some(u)) => Some(u.checked_mul(quantity).and_then(|x| x.checked_add(t)).ok_or_else(|| {
                ApiError::from(jinliu_domain::AmountError::AboveLimit {
                    limit: limit.to_string(),
                    currency,
                })
            })?),
            _ => None,
        };
        items.push(OrderItem {
            name: item.name,
            quantity,
            unit_price_minor: unit,
        });
    }
    // MySQL's TEXT holds 64 KiB; 100 long multi-byte names could exceed it.
    if serde_json::to_string(&items).map(|t| t.len()).unwrap_or(0) > 32 * 1024 {
        return Err(validate::failed("items", "at most 32 KiB in all"));
    }
    let items_total = items_total.filter(|_| !items.is_empty());
    let parse = |a: &Option<jinliu_domain::MajorAmount>| {
        a.as_ref()
            .map(|a| Money::parse_major(&a.0, currency, limit))
            .transpose()
    };
    let (amount, total) = (parse(&b.amount)?, parse(&b.total_amount)?);
    let amount = match (amount, total) {
        (Some(a), Some(t)) if a != t => {
            return Err(ApiError::unprocessable(
                "amount_mismatch",
                "amount and totalAmount differ",
            ));
        }
        (Some(a), _) | (None, Some(a)) => a,
        (None, None) => match items_total {
            Some(sum) => Money::parse_major(&jinliu_domain::money::format_minor(sum, currency), currency, limit)?,
            None => {
                return Err(ApiError::unprocessable(
                    "invalid_amount",
                    "amount (or totalAmount, or priced items) is required",
                ));
            }
        },
    };
    service::check_merchant_limit(merchant, amount)?;
    if let Some(sum) = items_total
        && sum != amount.minor()
    {
        return Err(ApiError::unprocessable(
            "items_total_mismatch",
            "totalAmount must equal the sum of quantity × unitPrice",
        )
        .with_raw_details(format!(
            r#"{{"itemsTotal":{},"currency":"{currency}"}}"#,
            jinliu_domain::money::format_minor(sum, currency)
        )));
    }
    Ok(NewOrder {
        merchant_id: scope.merchant_id.clone(),
        description: validate::opt_text("description", b.description, 1000)?,
        amount,
        items,
        customer_email: validate::email(b.customer_email)?,
        customer_phone: validate::phone(b.customer_phone)?,
        metadata: validate::metadata(b.metadata)?,
        livemode: scope.livemode,
    })
}
