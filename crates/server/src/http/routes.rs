//! The route table: every merchant API route with its method, path and the access it requires.
//! The router is built from this table only, so a route cannot be mounted without saying who may
//! call it; docs/security.md is generated from it (`jinliu routes`), and the access test walks it.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use jinliu_domain::Permission;

use super::error::ApiError;
use super::watch::Watcher;
use super::{auth, keys, notify, orders, payments};
use crate::auth::AuthError;
use crate::state::AppState;

/// What a route requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A secret API key (or, later, a user) holding this permission.
    Need(Permission),
    /// A provider's signature, checked on the raw body by the adapter.
    ProviderSignature,
    /// The payment's client secret in the query string.
    ClientSecret,
    /// Anyone (login, refresh, logout: the body carries the credential).
    Public,
    /// A logged-in user's access token, for any role.
    User,
    /// Merchant credentials with `payments:read` (the full payment), or the payment's
    /// `clientSecret` in the query string (its public view), with no key or a publishable key of
    /// the payment's merchant and mode. See [`super::watch`].
    Watch,
}

impl Access {
    /// As written in docs/security.md.
    pub fn describe(self) -> String {
        match self {
            Access::Need(p) => format!("secret key with `{p}`"),
            Access::ProviderSignature => "provider signature (verified on the raw body)".into(),
            Access::ClientSecret => "the payment's `clientSecret`".into(),
            Access::Public => "none (the body carries the credential)".into(),
            Access::User => "a user's access token (any role)".into(),
            Access::Watch => "secret key with `payments:read`, or the payment's `clientSecret` (public view; \
                              a publishable key may accompany it)"
                .into(),
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    /// HTTP method.
    pub method: Method,
    /// Path under `/api` (also served at the root, for seed 000's paths).
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// What it does.
    pub summary: &'static str,
}

fn spec(method: Method, path: &'static str, access: Access, summary: &'static str) -> RouteSpec {
    RouteSpec {
        method,
        path,
        access,
        summary,
    }
}

/// Every merchant API route with its handler.
pub fn table() -> Vec<(RouteSpec, MethodRouter<AppState>)> {
    use Access::*;
    use Permission::*;
    vec![
        (
            spec(Method::POST, "/auth/login", Public, "Log in (email, password)"),
            post(auth::login),
        ),
        (
            spec(Method::POST, "/auth/refresh", Public, "Rotate a refresh token"),
            post(auth::refresh),
        ),
        (
            spec(Method::POST, "/auth/logout", Public, "End a login"),
            post(auth::logout),
        ),
        (
            spec(Method::GET, "/auth/profile", User, "The logged-in user"),
            get(auth::profile),
        ),
        (
            spec(Method::POST, "/auth/mfa/setup", User, "Start TOTP enrolment"),
            post(auth::mfa_setup),
        ),
        (
            spec(
                Method::POST,
                "/auth/mfa/confirm",
                User,
                "Confirm TOTP; get recovery codes",
            ),
            post(auth::mfa_confirm),
        ),
        (
            spec(Method::POST, "/keys", Need(KeysManage), "Create an API key"),
            post(keys::create),
        ),
        (
            spec(Method::GET, "/keys", Need(KeysManage), "List API keys"),
            get(keys::list),
        ),
        (
            spec(
                Method::POST,
                "/keys/{id}/roll",
                Need(KeysManage),
                "Replace a key, with overlap",
            ),
            post(keys::roll),
        ),
        (
            spec(Method::POST, "/keys/{id}/revoke", Need(KeysManage), "Revoke a key now"),
            post(keys::revoke),
        ),
        (
            spec(Method::POST, "/orders", Need(OrdersWrite), "Create an order"),
            post(orders::create),
        ),
        (
            spec(Method::GET, "/orders", Need(OrdersRead), "List orders"),
            get(orders::list),
        ),
        (
            spec(Method::GET, "/orders/{id}", Need(OrdersRead), "Get an order"),
            get(orders::get),
        ),
        (
            spec(
                Method::POST,
                "/orders/{id}/cancel",
                Need(OrdersWrite),
                "Cancel an order and its open attempts",
            ),
            post(orders::cancel),
        ),
        (
            spec(
                Method::GET,
                "/orders/{id}/payments",
                Need(PaymentsRead),
                "An order's payment attempts",
            ),
            get(orders::payments),
        ),
        (
            spec(Method::POST, "/payments", Need(PaymentsWrite), "Create a payment"),
            post(payments::create),
        ),
        (
            spec(
                Method::GET,
                "/payments/{id}",
                Watch,
                "Get a payment (public view with `clientSecret`)",
            ),
            get(payments::get),
        ),
        (
            spec(
                Method::GET,
                "/payments/{id}/events",
                Watch,
                "A payment's live status (Server-Sent Events)",
            ),
            get(crate::realtime::sse::stream),
        ),
        (
            spec(
                Method::POST,
                "/payments/{id}/cancel",
                Need(PaymentsWrite),
                "Cancel a payment",
            ),
            post(payments::cancel),
        ),
        (
            spec(
                Method::GET,
                "/payments/{id}/refunds",
                Need(PaymentsRead),
                "A payment's refunds",
            ),
            get(payments::refunds),
        ),
        (
            spec(
                Method::POST,
                "/payments/refund/{id}",
                Need(RefundsWrite),
                "Refund a payment",
            ),
            post(payments::refund),
        ),
        (
            spec(Method::GET, "/refunds/{id}", Need(PaymentsRead), "Get a refund"),
            get(payments::get_refund),
        ),
        (
            spec(
                Method::GET,
                "/payments/{id}/checkout",
                ClientSecret,
                "The customer's checkout page (form-started providers)",
            ),
            get(payments::checkout),
        ),
        (
            spec(
                Method::POST,
                "/payments/notify",
                ProviderSignature,
                "Seed 000 relay notification (X-Signature)",
            ),
            post(notify::seed),
        ),
        (
            spec(
                Method::POST,
                "/payments/notify/{provider}",
                ProviderSignature,
                "Notification for a provider's default test account",
            ),
            post(notify::for_provider),
        ),
        (
            spec(
                Method::POST,
                "/payments/notify/{provider}/{account}",
                ProviderSignature,
                "Notification for a provider account",
            ),
            post(notify::for_account),
        ),
        (
            spec(
                Method::POST,
                "/payments/webhook/octopus",
                ProviderSignature,
                "Seed 004's Octopus webhook path",
            ),
            post(notify::octopus_alias),
        ),
    ]
}

/// The merchant API router, each route behind its access check.
pub fn api(app: &AppState) -> Router<AppState> {
    let mut router = Router::new();
    for (route, handler) in table() {
        let handler = match route.access {
            Access::Need(p) => handler.layer(middleware::from_fn_with_state((app.clone(), p), require)),
            Access::User => handler.layer(middleware::from_fn_with_state(app.clone(), require_user)),
            Access::Watch => handler.layer(middleware::from_fn_with_state(app.clone(), require_watcher)),
            // Checked by the handler itself, on the raw body or the query string.
            Access::ProviderSignature | Access::ClientSecret | Access::Public => handler,
        };
        router = router.route(route.path, handler);
    }
    router
}

/// The request's `Authorization` header value.
fn authorization(req: &Request) -> Option<&str> {
    req.headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
}

/// The answer to a refused credential; `wanted` names the credential the route takes, `invalid`
/// says what was wrong with the one sent.
fn refusal(e: AuthError, wanted: &str, invalid: &str) -> Response {
    match e {
        AuthError::Missing => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "authentication_required",
            format!("send `Authorization: Bearer <{wanted}>`"),
        ),
        AuthError::Invalid => ApiError::new(StatusCode::UNAUTHORIZED, "invalid_credentials", invalid),
        AuthError::MerchantRequired => ApiError::new(
            StatusCode::BAD_REQUEST,
            "merchant_required",
            "a platform admin names the merchant it acts on in the Jinliu-Merchant header",
        ),
        AuthError::Store(e) => ApiError::internal(e),
    }
    .into_response()
}

/// Authenticates the caller and checks the route's permission; the principal travels to the
/// handler's `Caller` extractor in the request's extensions.
async fn require(State((app, permission)): State<(AppState, Permission)>, mut req: Request, next: Next) -> Response {
    let merchant = req.headers().get("jinliu-merchant").and_then(|v| v.to_str().ok());
    let principal = match app
        .auth
        .authenticate(&app.store, authorization(&req), merchant, app.clock.now())
        .await
    {
        Ok(p) => p,
        Err(e) => return refusal(e, "secret key", "the key is unknown, revoked or expired"),
    };
    if principal.is_publishable() {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "permission_denied",
            "a publishable key cannot call the merchant API; use a secret key on your server",
        )
        .into_response();
    }
    if !principal.may(permission) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "permission_denied",
            format!("this key lacks the `{permission}` permission"),
        )
        .with_details(serde_json::json!({ "required": permission.as_str() }))
        .into_response();
    }
    req.extensions_mut().insert(Arc::new(principal));
    next.run(req).await
}

/// The watcher rule's credential half: no `Authorization` or a publishable key makes a browser
/// watcher (the handler then needs the client secret); anything else must be merchant
/// credentials with `payments:read`, refused as on any merchant route otherwise. A publishable
/// key is never more than a browser: it cannot unlock the full view.
async fn require_watcher(State(app): State<AppState>, mut req: Request, next: Next) -> Response {
    let watcher = if authorization(&req).is_none() {
        Watcher::Browser { key: None }
    } else {
        let merchant = req.headers().get("jinliu-merchant").and_then(|v| v.to_str().ok());
        match app
            .auth
            .authenticate(&app.store, authorization(&req), merchant, app.clock.now())
            .await
        {
            Ok(p) if p.is_publishable() => Watcher::Browser { key: Some(Arc::new(p)) },
            Ok(p) if p.may(Permission::PaymentsRead) => {
                let p = Arc::new(p);
                req.extensions_mut().insert(p.clone());
                Watcher::Merchant(p)
            }
            Ok(_) => {
                return ApiError::new(
                    StatusCode::FORBIDDEN,
                    "permission_denied",
                    "this key lacks the `payments:read` permission",
                )
                .with_details(serde_json::json!({ "required": Permission::PaymentsRead.as_str() }))
                .into_response();
            }
            Err(e) => return refusal(e, "secret key", "the key is unknown, revoked or expired"),
        }
    };
    req.extensions_mut().insert(watcher);
    next.run(req).await
}

/// A logged-in user (any role); API keys are refused here.
async fn require_user(State(app): State<AppState>, mut req: Request, next: Next) -> Response {
    match app
        .auth
        .user_session(&app.store, authorization(&req), app.clock.now())
        .await
    {
        Ok(session) => {
            req.extensions_mut().insert(Arc::new(session));
            next.run(req).await
        }
        Err(e) => refusal(e, "access token", "the access token is invalid or expired"),
    }
}

/// docs/security.md's route table (Markdown), generated from [`table`].
pub fn markdown() -> String {
    let mut s =
        String::from("| method | path (under `/api`, also at the root) | requires | what |\n|---|---|---|---|\n");
    for (r, _) in table() {
        s.push_str(&format!(
            "| {} | `{}` | {} | {} |\n",
            r.method,
            r.path,
            r.access.describe(),
            r.summary
        ));
    }
    s
}

/// The whole of docs/security.md.
pub fn security_doc() -> String {
    let mut s = String::from(
        "# Security model\n\n\
<!-- Generated by `jinliu routes` from crates/server/src/http/routes.rs; do not edit by hand. -->\n\n\
## Credentials\n\n\
- **Secret keys** `jl_sk_test_…` / `jl_sk_live_…` are for the merchant's server: `Authorization: Bearer <key>`. \
A key is unrestricted (every merchant permission) or restricted to a listed set. jinliu stores only \
`HMAC-SHA256(pepper, key)`, the pepper derived from the master key (`JINLIU_MASTER_KEY`), which is not in the \
database; the key text is shown once. A verified key is cached for 30 s, so a revocation reaches every node \
within 30 s.\n\
- **Users** log in at `POST /api/auth/login` (argon2id passwords: 19 MiB, 2 iterations, 1 lane; at least 12 \
characters with letters and digits, not a common one; 10 attempts, counted atomically before the password check, lock the account for 30 minutes, and a locked \
account answers like a wrong password; \
at most 30 attempts a minute per client address and 20 per account on each node, else 429 `rate_limited`) and get an \
HS256 access token (`JINLIU_JWT_EXPIRES_IN`, default 24h; `iss`, `aud`, `exp`, `nbf`, `iat`, `sub` and the `kid` \
header required and checked, algorithm pinned, 30 s leeway; the signing key is derived from the master key) \
and a single-use refresh token: each refresh returns a new pair, and presenting a used refresh token again \
revokes that login. Access tokens carry their login (`sid`): after a logout or a detected reuse they stop working \
too. Keys and logins work only for an existing, active merchant. A user's permissions are its role's (below); a platform admin names the merchant it acts \
on in `Jinliu-Merchant` (400 `merchant_required` otherwise); a merchant user acts for its own merchant only. \
User sessions work in test mode.\n\
- **TOTP** (RFC 6238, SHA-1, 6 digits, 30 s, ±1 step; each code works once): required for platform admins, \
who are enrolled when created; optional for others (`/api/auth/mfa/setup` with the password again, then `/api/auth/mfa/confirm` with a \
first code, which returns ten single-use recovery codes). Login then needs `totp` (a code or a recovery code). \
TOTP secrets are stored encrypted (AES-256-GCM under a key derived from the master key, bound to the user's row); \
recovery codes only as keyed hashes.\n\
- **Publishable keys** `jl_pk_test_…` / `jl_pk_live_…` identify the merchant to browser code and open no merchant \
route (403 `permission_denied`); next to a payment's client secret they read its public view.\n\
- **Test and live mode**: every object carries `livemode`; a test key sees only test objects and uses only test \
provider accounts (sandboxes); a live key never reaches a sandbox.\n\
- **Client secret**: a payment's `clientSecret` (query parameter `clientSecret`) opens only that payment's \
customer page and its public view (`GET /api/payments/{id}`, its live status): status, amount, currency, QR data, \
expiry, version; no contact data, metadata or provider references. A wrong or missing secret answers 404 like a \
missing payment (compared in constant time). A publishable key may accompany it, and must then be of the payment's \
merchant and mode; it never unlocks the full view.\n\
- **Provider notifications** carry no jinliu credential: the provider's own signature is verified on the raw \
body (or, for protocols whose checksum proves nothing, the provider is asked back).\n\n\
Refusals: 401 `authentication_required` (no credential), 401 `invalid_credentials` (unknown, revoked or \
expired key or token), 403 `permission_denied` (publishable key, or a restricted key without the route's permission). \
Another merchant's object answers 404, exactly like a missing one: every store query takes the caller's scope.\n\n\
One deliberate difference from seed 004: its browser sample posts `/api/payments` itself; jinliu refuses that \
(401), because a browser must never choose the amount. The merchant's server creates the payment and hands \
the browser only the payment id and client secret.\n\n\
## Permissions\n\n",
    );
    for p in Permission::ALL {
        s.push_str(&format!(
            "- `{p}`{}\n",
            if p.is_platform_only() { " (platform only)" } else { "" }
        ));
    }
    s.push_str("\n## Roles\n\n| role | permissions |\n|---|---|\n");
    for r in jinliu_domain::Role::ALL {
        let ps: Vec<String> = r.permissions().iter().map(|p| format!("`{p}`")).collect();
        s.push_str(&format!("| `{}` | {} |\n", r.as_str(), ps.join(", ")));
    }
    s.push_str("\n## Routes\n\n");
    s.push_str(&markdown());
    s.push_str(
        "\nAlso public: `GET /health`, `GET /ready`, `GET /metrics`, `GET /api/openapi.json`, and the sandboxes under \
`/sandbox/<provider>/` when `JINLIU_SANDBOX` is on (test mode only).\n\n\
Socket.IO at `/socket.io/` is outside the route table: it has no merchant route, only the `joinPaymentRoom` \
event, which takes a payment id (as seed 004 sends it; ids are UUIDv7 with 74 random bits) or `{ paymentId, clientSecret }`, \
and sends only `{ paymentId, orderId, status, amount, currency, version, updatedAt }`; an unknown payment or a \
wrong secret answers an `error` event. At most 20 payments per socket.\n",
    );
    s
}
