//! The route table: every merchant API route with its method, path and the access it requires.
//! The router is built from this table only, so a route cannot be mounted without saying who may
//! call it; docs/security.md is generated from it (`jinliu routes`), and the access test walks it.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, patch, post};
use jinliu_domain::{AuditActor, Permission};
use jinliu_store::audit::current_audit_context;
use jinliu_store::with_audit_context;

use super::error::ApiError;
use super::watch::Watcher;
use super::{audit, auth, keys, merchant, notify, orders, payments, provider_accounts, users, webhooks};
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
            spec(Method::GET, "/audit", Need(AuditRead), "The merchant's audit log"),
            get(audit::list),
        ),
        (
            spec(
                Method::POST,
                "/users",
                Need(UsersManage),
                "Create a user in the merchant",
            ),
            post(users::create),
        ),
        (
            spec(Method::GET, "/users", Need(UsersManage), "The merchant's users"),
            get(users::list),
        ),
        (
            spec(
                Method::PATCH,
                "/users/{id}",
                Need(UsersManage),
                "Change a user's role or status",
            ),
            patch(users::update),
        ),
        (
            spec(
                Method::GET,
                "/merchant",
                Need(SettingsManage),
                "The merchant and its settings",
            ),
            get(merchant::get),
        ),
        (
            spec(
                Method::PATCH,
                "/merchant",
                Need(SettingsManage),
                "Change the merchant's settings",
            ),
            patch(merchant::update),
        ),
        (
            spec(
                Method::POST,
                "/merchant/notify-secret",
                Need(SettingsManage),
                "New seed-000 notify secret (shown once)",
            ),
            post(merchant::rotate_notify_secret),
        ),
        (
            spec(
                Method::POST,
                "/provider-accounts",
                Need(SettingsManage),
                "Add a provider account (credentials sealed, never shown again)",
            ),
            post(provider_accounts::create),
        ),
        (
            spec(
                Method::GET,
                "/provider-accounts",
                Need(SettingsManage),
                "List provider accounts",
            ),
            get(provider_accounts::list),
        ),
        (
            spec(
                Method::GET,
                "/provider-accounts/{id}",
                Need(SettingsManage),
                "Get a provider account",
            ),
            get(provider_accounts::get),
        ),
        (
            spec(
                Method::PATCH,
                "/provider-accounts/{id}",
                Need(SettingsManage),
                "Change a provider account",
            ),
            patch(provider_accounts::update),
        ),
        (
            spec(
                Method::POST,
                "/webhook-endpoints",
                Need(WebhooksManage),
                "Create a webhook endpoint (secret shown once)",
            ),
            post(webhooks::create),
        ),
        (
            spec(
                Method::GET,
                "/webhook-endpoints",
                Need(WebhooksManage),
                "List webhook endpoints",
            ),
            get(webhooks::list),
        ),
        (
            spec(
                Method::GET,
                "/webhook-endpoints/{id}",
                Need(WebhooksManage),
                "Get a webhook endpoint",
            ),
            get(webhooks::get),
        ),
        (
            spec(
                Method::PATCH,
                "/webhook-endpoints/{id}",
                Need(WebhooksManage),
                "Change a webhook endpoint",
            ),
            patch(webhooks::update),
        ),
        (
            spec(
                Method::POST,
                "/webhook-endpoints/{id}/rotate-secret",
                Need(WebhooksManage),
                "Rotate the signing secret (old one signs 24 h more)",
            ),
            post(webhooks::rotate_secret),
        ),
        (
            spec(
                Method::GET,
                "/webhook-endpoints/{id}/messages",
                Need(WebhooksManage),
                "An endpoint's messages",
            ),
            get(webhooks::messages),
        ),
        (
            spec(
                Method::POST,
                "/webhook-endpoints/{id}/recover",
                Need(WebhooksManage),
                "Re-queue everything since a time",
            ),
            post(webhooks::recover),
        ),
        (
            spec(
                Method::GET,
                "/webhook-messages/{id}",
                Need(WebhooksManage),
                "A webhook message with its attempts",
            ),
            get(webhooks::get_message),
        ),
        (
            spec(
                Method::POST,
                "/webhook-messages/{id}/resend",
                Need(WebhooksManage),
                "Send a webhook message again",
            ),
            post(webhooks::resend),
        ),
        (
            spec(
                Method::DELETE,
                "/webhook-endpoints/{id}",
                Need(WebhooksManage),
                "Delete a webhook endpoint",
            ),
            delete(webhooks::delete),
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
                Method::GET,
                "/payments/{id}/qr.svg",
                ClientSecret,
                "The QR code of the payment's customer URL (SVG)",
            ),
            get(payments::qr_svg),
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
            // The client secret is checked by the handler. These are the routes a merchant's own
            // page calls through jinliu.js (another origin), so they answer any origin.
            Access::ClientSecret => handler.layer(browser_cors()),
            // The watcher rule (merchant credentials or the client secret); jinliu.js reads the
            // public view cross-origin, so it answers any origin too, refusals included.
            Access::Watch => handler
                .layer::<_, std::convert::Infallible>(middleware::from_fn_with_state(app.clone(), require_watcher))
                .layer(browser_cors()),
            // Checked by the handler itself, on the raw body.
            Access::ProviderSignature | Access::Public => handler,
        };
        router = router.route(route.path, handler);
    }
    router
}

/// CORS for the routes a customer's browser calls from a merchant's page: any origin, GET only,
/// no credentials and no extra request headers, so a merchant key can never ride along (a
/// cross-origin request with `Authorization` fails its preflight).
fn browser_cors() -> tower_http::cors::CorsLayer {
    tower_http::cors::CorsLayer::new()
        .allow_origin(tower_http::cors::Any)
        .allow_methods([Method::GET])
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
        AuthError::ModeMismatch => ApiError::new(
            StatusCode::BAD_REQUEST,
            "mode_mismatch",
            "a key works in its own mode only: drop Jinliu-Mode or use the other mode's key",
        ),
        AuthError::Store(e) => ApiError::internal(e),
    }
    .into_response()
}

/// The `Jinliu-Mode` header: `None` when absent, else live (`true`) or test.
fn mode_header(req: &Request) -> Result<Option<bool>, ApiError> {
    match req.headers().get("jinliu-mode").map(|v| v.to_str().unwrap_or("")) {
        None => Ok(None),
        Some("test") => Ok(Some(false)),
        Some("live") => Ok(Some(true)),
        Some(_) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_mode",
            "Jinliu-Mode must be test or live",
        )),
    }
}

/// Authenticates the caller and checks the route's permission; the principal travels to the
/// handler's `Caller` extractor in the request's extensions.
async fn require(State((app, permission)): State<(AppState, Permission)>, mut req: Request, next: Next) -> Response {
    let merchant = req.headers().get("jinliu-merchant").and_then(|v| v.to_str().ok());
    let livemode = match mode_header(&req) {
        Ok(m) => m,
        Err(refused) => return refused.into_response(),
    };
    let principal = match app
        .auth
        .authenticate_in_mode(&app.store, authorization(&req), merchant, livemode, app.clock.now())
        .await
    {
        Ok(p) => p,
        Err(e) => {
            return refusal(
                e,
                "secret key",
                "the key or access token is unknown, revoked or expired, or its user is disabled",
            );
        }
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
    let ctx = current_audit_context().as_actor(principal.audit_actor(), Some(principal.merchant_id.clone()));
    req.extensions_mut().insert(Arc::new(principal));
    with_audit_context(ctx, next.run(req)).await
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
        let livemode = match mode_header(&req) {
            Ok(m) => m,
            Err(refused) => return refused.into_response(),
        };
        match app
            .auth
            .authenticate_in_mode(&app.store, authorization(&req), merchant, livemode, app.clock.now())
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
            Err(e) => {
                return refusal(
                    e,
                    "secret key",
                    "the key or access token is unknown, revoked or expired, or its user is disabled",
                );
            }
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
            let actor = AuditActor::User {
                id: session.user.id.clone(),
                role: session.user.role,
            };
            let ctx = current_audit_context().as_actor(actor, session.user.merchant_id.clone());
            req.extensions_mut().insert(Arc::new(session));
            with_audit_context(ctx, next.run(req)).await
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

/// The audit log section of docs/security.md.
const AUDIT_DOC: &str = "\n## Audit log\n\n\
Every change made through the API, the command line or a worker writes one audit row **in the same \
database transaction** as the change: time, actor (`user`, `key`, `provider`, `cli`, `system` or `anonymous`, \
with the user or key id and the user's role), merchant, action (`payment.create`, `refund.create`, \
`key.revoke`, `user.login`, …), target type and id, a redacted summary of the target after the change with its \
SHA-256 digest (statuses, versions, amounts; never a secret, key hash, password or customer contact), outcome \
(`ok`, `no_change`, or `refused:<code>` for a business refusal), request id, client address and user agent. \
Inbound provider notifications are recorded as the provider account's actions (duplicates as `no_change`), \
failed logins under the email tried (without saying whether it exists), and outbound provider calls through \
the change they cause (`payment.create` names the provider account, `refund.settle` records its answer).\n\n\
**Tamper evidence.** A single sealer (whichever node holds the `audit_sealer` lease) numbers committed rows \
(`seq`) and chains them, writing each link into `audit_seals` (the audit row itself is never updated): each \
link's MAC is `HMAC-SHA256(chain key, previous MAC ‖ seq ‖ row hash)`, the row hash being SHA-256 over every \
field, length-prefixed, computed when the row is written; the key is derived from the master key and never \
stored in the database. After a pass that moved the head, at \
most every `JINLIU_AUDIT_CHECKPOINT_SECS` (60), it appends a signed checkpoint `{seq, mac, at, sig}` to \
`JINLIU_AUDIT_CHECKPOINTS` (default `<data-dir>/audit-checkpoints.jsonl`, 0600), outside the database. \
`jinliu audit verify` walks the chain and reports the first edited, reordered or forged row (`altered`), a \
missing row (`deleted`), rows cut off the end (`truncated`, caught by a checkpoint), a start no checkpoint \
vouches for (`unanchored`) or a row that is neither sealed nor queued for its seal, written behind \
jinliu's back (`unchained`); a checkpoint line whose signature fails is itself reported. Rows are sealed about \
a second after they commit. A row's id and hash are queued for the sealer in the row's own transaction, so a \
row deleted before its seal is still chained and reported `deleted`; only someone who deletes the queue entry \
too, before the seal, goes unnoticed.\n\n\
**Retention** (`JINLIU_AUDIT_RETENTION_DAYS`, default 365 — PCI DSS 10.5.1): once an hour the sealer deletes \
the sealed rows before the newest checkpoint older than the cut-off; the checkpointed row stays as the anchor, \
so verification still passes. `jinliu audit export` prints every row as JSON lines for archiving first.\n\n\
**Reading it**: `GET /api/audit` (`audit:read`) lists the caller's merchant's rows, newest first, filtered by \
`actor`, `action`, `targetType`, `targetId`, `from`, `to`, with a `before` cursor. Rows of platform staff \
actions without a merchant (failed logins, say) are read with `jinliu audit export`.\n";

/// The secrets-at-rest and provider-account section of docs/security.md.
const SECRETS_DOC: &str = "\n## Secrets at rest\n\n\
**The master key** (`JINLIU_MASTER_KEY`, 64 hex digits) is the one secret outside the database. When it is unset \
and no live provider account exists, `jinliu serve` generates one into `<data-dir>/master.key` (0600) and says \
so; a server with live provider accounts (configured or stored) refuses to start without the variable, and a \
live account cannot be added without it (409 `master_key_required`). Keys for separate purposes are derived \
from it with labelled HMAC-SHA256: the API-key pepper, the audit chain and checkpoint keys, and the first key \
of each kind in the key ring.\n\n\
**The key ring.** TOTP seeds, seed-000 notify secrets, webhook signing secrets and provider credentials are \
sealed with AES-256-GCM: a random 96-bit nonce per value, associated data naming the table, merchant and row \
(a value copied into another row does not open), stored as `v1.<key id>.<base64>`. The data key `k1` and the JWT \
signing key `k1` are derived from the master key; `jinliu keys rotate` adds a random data key (`k2`, …) and JWT \
key (`j2`, …), stored in `key_ring` wrapped under a key-encryption key derived from the master key, and \
re-encrypts every stored secret under the new data key (compare-and-set per value, so a secret a request \
changes meanwhile is never overwritten). It first proves the master key: the ring's `check` entry (written at \
the first start) must unwrap and every stored secret must open, or nothing is written. Nodes reload the ring \
every 15 s (and at once when a value names a key they lack) and start sealing and signing with a new key 30 s \
after it was added, so no node meets a key it does not know; old data keys stay to open what they sealed; a \
JWT key stops verifying once two newer ones sign. `jinliu keys list` shows the ring (ids and \
dates only). A ring made under another master key refuses to load at start. Secrets are never returned after \
creation and never logged (tests capture the logs of a login, a key creation and a provider account update).\n\n\
<a id=\"provider-accounts\"></a>**Provider accounts.** The platform's accounts come from `[[provider_accounts]]` \
in the configuration (plus a `<provider>_test` sandbox account per provider) and serve every merchant. A \
merchant adds its own contract with `POST /api/provider-accounts` (`settings:manage`): the account's mode is \
the caller's (a body naming `livemode` or `merchantId` is refused), only the provider's credential names are \
accepted, the adapter is built once to check that they are complete and well-formed, and they are then sealed; \
responses show their names, never their values. A chosen base URL is held to the live address policy in both \
modes (no loopback, private, link-local or metadata addresses; checked again at every connect). A live account \
needs https and may not point at this server's origin, `JINLIU_SANDBOX_URL`'s, or a provider's known test host \
(422 `sandbox_in_live_mode`; origins are compared parsed, so case, a trailing dot or `:443` change nothing). The \
merchant's active default account for a provider and mode takes its new payments; disabling it returns them \
to the platform's account while its own payments still refund, sync and receive notifications at \
`/api/payments/notify/{provider}/{pa_…}`. Adapters are built on first use and cached per merchant for 30 s.\n";

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
header required and checked, algorithm pinned, 30 s leeway; signed with the key ring's JWT key, see below) \
and a single-use refresh token: each refresh returns a new pair, and presenting a used refresh token again \
revokes that login. Access tokens carry their login (`sid`): after a logout or a detected reuse they stop working \
too. Keys and logins work only for an existing, active merchant. A user's permissions are its role's (below); a platform admin names the merchant it acts \
on in `Jinliu-Merchant` (400 `merchant_required` otherwise); a merchant user acts for its own merchant only. \
A user's session works in test mode unless a request sends `Jinliu-Mode: live`; a key works in its own mode, \
and `Jinliu-Mode` naming the other one answers 400 `mode_mismatch`. A login with `\"session\":\"dashboard\"` \
gets 15-minute access tokens and an idle timeout: each refresh token expires 15 minutes after it was issued \
(OWASP ASVS 3.3.2), and the login ends 12 hours after the password was checked however busy it is (NIST SP \
800-63B §4.2.3; the login's start is the time in its UUIDv7 family id); the default `api` session keeps `JINLIU_JWT_EXPIRES_IN` and 30-day refresh tokens. \
Staff are managed at `/api/users` (`users:manage`): nobody grants or manages a role with permissions they \
lack, changes their own account, or creates a platform admin over HTTP.\n\
- **TOTP** (RFC 6238, SHA-1, 6 digits, 30 s, ±1 step; each code works once): required for platform admins, \
who are enrolled when created; optional for others (`/api/auth/mfa/setup` with the password again, then `/api/auth/mfa/confirm` with a \
first code, which returns ten single-use recovery codes). Login then needs `totp` (a code or a recovery code). \
TOTP secrets are stored encrypted (AES-256-GCM under the key ring's data key, bound to the user's row); \
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
    s.push_str(AUDIT_DOC);
    s.push_str(SECRETS_DOC);
    s.push_str("\n## Routes\n\n");
    s.push_str(&markdown());
    s.push_str(
        "\nRoutes marked with the `clientSecret` answer any origin (CORS `*`, no credentials), because a merchant's \
own page calls them through `jinliu.js`.\n\n\
Also public: `GET /health`, `GET /ready`, `GET /metrics`, `GET /api/openapi.json`, the checkout front end \
(`GET /pay/{paymentId}`, `/assets/…`, `/js/jinliu.js`: static files; the page's data needs the `clientSecret`), \
and the sandboxes under `/sandbox/<provider>/` when `JINLIU_SANDBOX` is on (test mode only).\n\n\
Socket.IO at `/socket.io/` is outside the route table: it has no merchant route, only the `joinPaymentRoom` \
event, which takes a payment id (as seed 004 sends it; ids are UUIDv7 with 74 random bits) or `{ paymentId, clientSecret }`, \
and sends only `{ paymentId, orderId, status, amount, currency, version, updatedAt }`; an unknown payment or a \
wrong secret answers an `error` event. At most 20 payments per socket.\n",
    );
    s
}
