//! The OpenAPI 3.1 description, generated from the handlers' annotations. Served at
//! `/api/openapi.json`; committed as docs/api-spec.yaml (a test fails when that file is stale).

use utoipa::OpenApi;

use super::dto::{
    CreateOrderBody, CreatePaymentBody, EmptyBody, ListDto, OrderDto, OrderItemBody, OrderItemDto, PaymentDto,
    PublicPaymentDto, RefundBody, RefundDto,
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
        super::auth::login, super::auth::refresh, super::auth::logout, super::auth::profile, super::auth::mfa_setup, super::auth::mfa_confirm,
        super::keys::create, super::keys::list, super::keys::roll, super::keys::revoke, super::audit::list,
        super::merchant::get, super::merchant::update, super::merchant::rotate_notify_secret,
        super::users::create, super::users::list, super::users::update,
        super::orders::create, super::orders::list, super::orders::get, super::orders::cancel, super::orders::payments,
        super::payments::create, super::payments::get, super::payments::cancel, super::payments::refund, super::payments::refunds, super::payments::get_refund,
        super::payments::checkout, crate::realtime::sse::stream,
        super::payments::qr_svg,
        super::provider_accounts::create, super::provider_accounts::list, super::provider_accounts::get,
        super::provider_accounts::update,
        super::webhooks::create, super::webhooks::list, super::webhooks::get, super::webhooks::update, super::webhooks::delete,
        super::webhooks::rotate_secret, super::webhooks::messages, super::webhooks::recover, super::webhooks::get_message,
        super::webhooks::resend,
        super::notify::for_provider, super::notify::for_account, super::notify::octopus_alias, super::notify::seed,
        super::health::health, super::health::ready,
    ),
    components(schemas(
        super::auth::LoginBody, super::auth::RefreshBody, super::auth::MfaConfirmBody, super::auth::MfaSetupBody,
        super::keys::CreateKeyBody, super::keys::RollKeyBody, super::keys::KeyDto, super::audit::AuditEntryDto,
        super::audit::AuditPageDto, super::merchant::MerchantDto, super::merchant::UpdateMerchantBody,
        super::merchant::NotifySecretDto, super::users::CreateUserBody, super::users::UpdateUserBody,
        CreateOrderBody, OrderItemBody, CreatePaymentBody, RefundBody, EmptyBody,
        OrderDto, OrderItemDto, PaymentDto, PublicPaymentDto, RefundDto, ListDto<OrderDto>,
        super::provider_accounts::CreateAccountBody, super::provider_accounts::UpdateAccountBody,
        super::provider_accounts::ProviderAccountDto,
        super::webhooks::CreateEndpointBody, super::webhooks::UpdateEndpointBody, super::webhooks::RecoverBody,
        super::webhooks::EndpointDto, super::webhooks::MessageDto, super::webhooks::AttemptDto, super::webhooks::RecoverDto,
        ListDto<super::webhooks::MessageDto>,
    )),
    modifiers(&BearerOnMerchantRoutes),
    tags(
        (name = "auth", description = "Users: login, refresh, logout, profile"),
        (name = "keys", description = "API keys: create, list, roll, revoke"),
        (name = "audit", description = "The tamper-evident audit log"),
        (name = "merchant", description = "The caller's merchant and its settings"),
        (name = "users", description = "The merchant's staff accounts"),
        (name = "orders", description = "Orders (seed 000 and 004 bodies)"),
        (name = "payments", description = "Payments, cancellation and refunds"),
        (name = "notifications", description = "Inbound provider notifications"),
        (name = "webhooks", description = "Outbound merchant webhooks: endpoints, messages, attempts"),
        (name = "provider accounts", description = "A merchant's own provider contracts with sealed credentials"),
        (name = "health", description = "Liveness and readiness"),
    )
)]
pub struct ApiDoc;

/// Marks every route the route table protects with a permission as needing a bearer key, and
/// names the permission in its description.
struct BearerOnMerchantRoutes;

impl utoipa::Modify for BearerOnMerchantRoutes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "secretKey",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A secret API key, `jl_sk_test_…` or `jl_sk_live_…`"))
                    .build(),
            ),
        );
        for (route, _) in super::routes::table() {
            let note = match route.access {
                super::routes::Access::Need(permission) => format!("Requires a secret key with `{permission}`."),
                super::routes::Access::Watch => "Requires a secret key with `payments:read`, or the payment's \
                                                 `clientSecret` (public view; no key or a publishable key)."
                    .to_owned(),
                _ => continue,
            };
            let Some(item) = openapi.paths.paths.get_mut(&format!("/api{}", route.path)) else {
                continue;
            };
            let op = match route.method.as_str() {
                "GET" => item.get.as_mut(),
                "POST" => item.post.as_mut(),
                "PATCH" => item.patch.as_mut(),
                "DELETE" => item.delete.as_mut(),
                _ => None,
            };
            if let Some(op) = op {
                let mut security = vec![SecurityRequirement::new("secretKey", Vec::<String>::new())];
                if route.access == super::routes::Access::Watch {
                    // The empty requirement: callable without a key (with the client secret).
                    security.push(SecurityRequirement::default());
                }
                op.security = Some(security);
                op.description = Some(match op.description.take() {
                    Some(d) => format!("{d}\n\n{note}"),
                    None => note,
                });
            }
        }
    }
}

/// The spec as pretty JSON.
pub fn json() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_else(|_| "{}".into())
}

/// The spec as YAML, as committed in docs/api-spec.yaml.
pub fn yaml() -> String {
    ApiDoc::openapi().to_yaml().unwrap_or_default()
}
