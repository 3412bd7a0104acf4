//! The OpenAPI 3.1 description, generated from the handlers' annotations. Served at
//! `/api/openapi.json`; committed as docs/api-spec.yaml (a test fails when that file is stale).

use utoipa::OpenApi;

use super::dto::{
    CreateOrderBody, CreatePaymentBody, EmptyBody, ListDto, OrderDto, OrderItemBody, OrderItemDto, PaymentDto,
    RefundBody, RefundDto,
};

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "jinliu",
        description = "Self-hosted payment platform: one API over KPay, TPay, Octopus and ECPay. \
                       Every path under /api is also served at the root (seed 000 paths). \
                       Success: { success: true, data, message? }. Error: { success: false, error: { code, message, details? }, message }.",
        license(name = "MIT")
    ),
    paths(
        super::orders::create, super::orders::list, super::orders::get, super::orders::cancel, super::orders::payments,
        super::payments::create, super::payments::get, super::payments::cancel, super::payments::refund, super::payments::refunds, super::payments::get_refund,
        super::notify::for_provider, super::notify::seed,
        super::health::health, super::health::ready,
    ),
    components(schemas(
        CreateOrderBody, OrderItemBody, CreatePaymentBody, RefundBody, EmptyBody,
        OrderDto, OrderItemDto, PaymentDto, RefundDto, ListDto<OrderDto>,
    )),
    tags(
        (name = "orders", description = "Orders (seed 000 and 004 bodies)"),
        (name = "payments", description = "Payments, cancellation and refunds"),
        (name = "notifications", description = "Inbound provider notifications"),
        (name = "health", description = "Liveness and readiness"),
    )
)]
pub struct ApiDoc;

/// The spec as pretty JSON.
pub fn json() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_else(|_| "{}".into())
}

/// The spec as YAML, as committed in docs/api-spec.yaml.
pub fn yaml() -> String {
    ApiDoc::openapi().to_yaml().unwrap_or_default()
}
