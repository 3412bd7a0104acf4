//! The services: what a request means, between the parsed input and the store. They call
//! providers and the store; they never see HTTP, and every state change goes through one of the
//! store's units of work.

use chrono::Duration;
use jinliu_domain::settle::check_amount;
use jinliu_domain::{Currency, Merchant, Money, NewOrder, Order, OrderId, Payment, PaymentId, PaymentStatus, Refund};
use std::sync::Arc;

use jinliu_providers::{
    CreatePayment, InboundNotification, PaymentProvider, ProviderError, ProviderStatus, RefundOutcome, RefundRequest,
    VerifiedNotification,
};
use jinliu_store::{IdemRequest, NotificationKey, PaymentChange, Scope, StoreError};
use serde_json::json;

use crate::http::error::ApiError;
use crate::state::AppState;
use axum::http::StatusCode;

/// Methods jinliu knows, with the provider each belongs to.
pub const METHODS: [(&str, &str); 4] = [
    ("octopus_qr", "octopus"),
    ("kpay_qr", "kpay"),
    ("tpay_redirect", "tpay"),
    ("ecpay_credit", "ecpay"),
];

/// A new payment, parsed from either seed's body.
#[derive(Debug, Clone)]
pub struct PaymentRequest {
    /// The order.
    pub order_id: OrderId,
    /// Amount text in major units.
    pub amount: String,
    /// Currency, when given.
    pub currency: Option<Currency>,
    /// Provider id, when given.
    pub provider: Option<String>,
    /// Method, when given.
    pub method: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Contact.
    pub customer_email: Option<String>,
    /// Contact.
    pub customer_phone: Option<String>,
    /// JSON text.
    pub metadata: Option<String>,
    /// Redirect after success.
    pub success_url: Option<String>,
    /// Redirect after failure.
    pub failure_url: Option<String>,
}

/// Creates an order.
pub async fn create_order(app: &AppState, new: NewOrder, idem: Option<IdemRequest<Order>>) -> Result<Order, ApiError> {
    Ok(app.store.create_order(new, app.clock.now(), idem).await?)
}

/// Refuses an amount above the merchant's own limit for its currency (the server's limit was
/// checked when the amount was parsed; the strictest wins).
pub fn check_merchant_limit(merchant: &Merchant, amount: Money) -> Result<(), ApiError> {
    let currency = amount.currency();
    match merchant.settings.max_minor(currency) {
        Some(max) if amount.minor() > max => Err(jinliu_domain::AmountError::AboveLimit {
            limit: jinliu_domain::money::format_minor(max, currency),
            currency,
        }
        .into()),
        _ => Ok(()),
    }
}

/// Picks the provider and method for a payment: the one named, the merchant's default for the
/// currency, or the server's.
fn route(
    app: &AppState,
    merchant: &Merchant,
    req: &PaymentRequest,
    currency: Currency,
) -> Result<(String, String), ApiError> {
    let by_method = match &req.method {
        Some(m) => Some(
            METHODS
                .iter()
                .find(|(name, _)| name == m)
                .map(|(_, p)| *p)
                .ok_or_else(|| {
                    ApiError::unprocessable("unsupported_method", format!("unknown method {m:?}"))
                        .with_details(json!({ "methods": METHODS.iter().map(|(m, _)| *m).collect::<Vec<_>>() }))
                })?,
        ),
        None => None,
    };
    let provider = match (&req.provider, by_method) {
        (Some(p), Some(m)) if p != m => {
            return Err(ApiError::unprocessable(
                "method_provider_mismatch",
                format!("method belongs to {m}, not {p}"),
            ));
        }
        (Some(p), _) => p.clone(),
        (None, Some(m)) => m.to_owned(),
        (None, None) => merchant
            .settings
            .default_providers
            .get(currency.code())
            .or_else(|| app.config.default_providers.get(&currency))
            .cloned()
            .ok_or_else(|| {
                ApiError::unprocessable("no_default_provider", format!("no default provider for {currency}"))
            })?,
    };
    if !jinliu_providers::PROVIDER_IDS.contains(&provider.as_str()) {
        return Err(
            ApiError::unprocessable("unknown_provider", format!("unknown provider {provider:?}"))
                .with_details(json!({ "providers": jinliu_providers::PROVIDER_IDS })),
        );
    }
    let method = req.method.clone().unwrap_or_else(|| {
        METHODS
            .iter()
            .find(|(_, p)| *p == provider)
            .map(|(m, _)| (*m).to_owned())
            .unwrap_or_default()
    });
    Ok((provider, method))
}

/// The adapter of the account a payment was made with.
pub async fn adapter_of(app: &AppState, payment: &Payment) -> Option<Arc<dyn PaymentProvider>> {
    crate::provider_accounts::adapter_of(app, payment).await
}

/// What jinliu hands to a form-started provider's customer: its own page that posts the form.
pub fn checkout_url(app: &AppState, payment_id: &PaymentId, client_secret: &str) -> String {
    format!(
        "{}/api/payments/{payment_id}/checkout?clientSecret={client_secret}",
        app.config.public_url
    )
}

/// The provider request a payment was (or would be) created with; rebuilt from the stored
/// payment for form-started providers, whose form must be byte-identical every time.
pub fn provider_request(payment: &Payment) -> CreatePayment {
    CreatePayment {
        payment_id: payment.id.clone(),
        reference: payment
            .provider_reference
            .clone()
            .unwrap_or_else(|| jinliu_domain::provider_reference(&payment.id)),
        amount: payment.amount,
        method: payment.method.clone(),
        description: payment.description.clone().unwrap_or_default(),
        return_url: payment.success_url.clone(),
        created_at: payment.created_at,
        expires_at: payment.expires_at,
    }
}

pub(crate) fn provider_error(e: ProviderError) -> ApiError {
    tracing::warn!(error = %e, "provider call failed");
    match e {
        ProviderError::Refused(reason) => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "provider_refused",
            format!("the provider refused: {reason}"),
        ),
        _ => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "provider_unavailable",
            "the provider could not be reached",
        ),
    }
}

/// Starts a payment attempt: checks the order, asks the provider, records the attempt.
pub async fn create_payment(
    app: &AppState,
    scope: &Scope,
    merchant: &Merchant,
    req: PaymentRequest,
    idem: Option<IdemRequest<Payment>>,
) -> Result<Payment, ApiError> {
    let order = app
        .store
        .order(scope, &req.order_id)
        .await?
        .ok_or_else(|| ApiError::not_found("order"))?;
    if !order.is_payable() {
        return Err(jinliu_domain::settle::AttemptRejected::OrderNotPayable(order.status.as_str()).into());
    }
    let currency = req.currency.unwrap_or(order.amount.currency());
    let amount = Money::parse_major(&req.amount, currency, app.config.amount_limit)?;
    check_merchant_limit(merchant, amount)?;
    check_amount(&order, amount)?;
    let (provider_id, method) = route(app, merchant, &req, currency)?;
    let provider = crate::provider_accounts::default_adapter(app, &scope.merchant_id, &provider_id, scope.livemode)
        .await?
        .ok_or_else(|| {
            ApiError::unprocessable(
                "provider_not_configured",
                format!("provider {provider_id} has no account on this server"),
            )
        })?;
    if !provider.supports(currency) {
        return Err(ApiError::unprocessable(
            "currency_not_supported",
            format!("{provider_id} does not take {currency}"),
        ));
    }
    provider
        .check_amount(amount)
        .map_err(|message| ApiError::unprocessable("invalid_amount", message))?;
    let now = app.clock.now();
    let id = PaymentId::generate();
    let reference = jinliu_domain::provider_reference(&id);
    let expires_at = now + Duration::seconds(app.config.payment_ttl_secs);
    let description = req
        .description
        .clone()
        .or_else(|| order.description.clone())
        .unwrap_or_else(|| order.order_number.clone());
    let provider_req = CreatePayment {
        payment_id: id.clone(),
        reference: reference.clone(),
        amount,
        method: method.clone(),
        description: description.clone(),
        return_url: req.success_url.clone(),
        created_at: now,
        expires_at,
    };
    let created = provider.create_payment(&provider_req).await.map_err(provider_error)?;
    let client_secret = jinliu_domain::new_client_secret(&id);
    let pay_url = created
        .pay_url
        .clone()
        .unwrap_or_else(|| checkout_url(app, &id, &client_secret));
    let expires_at = created.expires_at.map_or(expires_at, |e| e.min(expires_at));
    let qr = json!({ "url": pay_url, "token": created.payment_token, "deepLink": created.deep_link });
    let payment = Payment {
        client_secret,
        id,
        merchant_id: scope.merchant_id.clone(),
        order_id: order.id.clone(),
        provider: provider_id,
        provider_account: provider.account().id.clone(),
        method,
        amount,
        status: PaymentStatus::Pending,
        provider_reference: Some(reference),
        provider_transaction_id: None,
        payment_token: created.payment_token,
        qr_code_data: Some(qr.to_string()),
        success_url: req.success_url,
        failure_url: req.failure_url,
        description: Some(description),
        customer_email: req.customer_email.or_else(|| order.customer_email.clone()),
        customer_phone: req.customer_phone.or_else(|| order.customer_phone.clone()),
        metadata: req.metadata,
        refunded_minor: 0,
        refund_pending_minor: 0,
        late_success: false,
        duplicate: false,
        livemode: scope.livemode,
        version: 1,
        expires_at,
        completed_at: None,
        created_at: now,
        updated_at: now,
    };
    let reference = payment.provider_reference.clone();
    match app.store.create_payment(scope, &order, payment, idem).await {
        Ok(p) => Ok(p),
        Err(e) => {
            // The provider holds a payment jinliu will never show anyone: close it there so the
            // customer cannot pay it. Best effort; a failure here is logged, not surfaced.
            if let Some(r) = reference
                && let Err(cancel_err) = provider.cancel(&r).await
            {
                tracing::warn!(error = %cancel_err, reference = %r, "could not cancel an unrecorded provider payment");
            }
            Err(e.into())
        }
    }
}

/// Cancels an open payment at the provider, then in jinliu.
pub async fn cancel_payment(
    app: &AppState,
    scope: &Scope,
    id: &PaymentId,
    idem: Option<IdemRequest<Payment>>,
) -> Result<Payment, ApiError> {
    let payment = app
        .store
        .payment(scope, id)
        .await?
        .ok_or_else(|| ApiError::not_found("payment"))?;
    if !payment.status.is_open() {
        return Err(StoreError::Transition(jinliu_domain::TransitionError {
            object: "payment",
            action: "cancel",
            from: payment.status.as_str(),
        })
        .into());
    }
    cancel_at_provider(app, &payment).await?;
    Ok(app
        .store
        .change_payment(Some(scope), id, PaymentChange::Cancel, app.clock.now(), idem)
        .await?)
}

/// Closes an open attempt at its provider, so the customer can no longer pay it there. A
/// refusal (typically: already paid there) stops the cancellation: the money moved.
async fn cancel_at_provider(app: &AppState, payment: &Payment) -> Result<(), ApiError> {
    if let (Some(provider), Some(reference)) = (adapter_of(app, payment).await, &payment.provider_reference) {
        match provider.cancel(reference).await {
            // Unknown at the provider: nobody can pay it there, so cancelling here is safe.
            Ok(()) | Err(ProviderError::NotFound) => {}
            Err(e) => return Err(provider_error(e)),
        }
    }
    Ok(())
}

/// Cancels a pending order: its open attempts at their providers first, then the order and the
/// attempts in jinliu, in one transaction.
pub async fn cancel_order(
    app: &AppState,
    scope: &Scope,
    id: &OrderId,
    idem: Option<IdemRequest<Order>>,
) -> Result<Order, ApiError> {
    let order = app
        .store
        .order(scope, id)
        .await?
        .ok_or_else(|| ApiError::not_found("order"))?;
    if order.is_payable() {
        for attempt in app.store.payments_for_order(scope, id).await? {
            if attempt.status.is_open() {
                cancel_at_provider(app, &attempt).await?;
            }
        }
    }
    Ok(app.store.cancel_order(scope, id, app.clock.now(), idem).await?)
}

/// Refunds (part of) a payment: reserve, ask the provider, settle.
pub async fn refund_payment(
    app: &AppState,
    scope: &Scope,
    id: &PaymentId,
    amount: Option<String>,
    reason: Option<String>,
    start_idem: Option<IdemRequest<(Refund, Payment)>>,
    finish_idem: Option<IdemFactory<Refund>>,
) -> Result<Refund, ApiError> {
    let payment = app
        .store
        .payment(scope, id)
        .await?
        .ok_or_else(|| ApiError::not_found("payment"))?;
    let adapter = adapter_of(app, &payment).await;
    if let Some(p) = &adapter
        && !p.can_refund(&payment.method)
    {
        return Err(ApiError::unprocessable(
            "refund_not_supported",
            format!(
                "{} payments made with {} cannot be refunded through the API",
                p.id(),
                payment.method
            ),
        ));
    }
    let currency = payment.amount.currency();
    let minor = match amount {
        Some(text) => {
            let money = Money::parse_major(&text, currency, app.config.amount_limit)?;
            // The provider's own money rules (whole TWD, Octopus' 10-cent steps) hold for
            // refunds too: refused here, before anything is reserved.
            if let Some(p) = &adapter {
                p.check_amount(money)
                    .map_err(|message| ApiError::unprocessable("invalid_amount", message))?;
            }
            Some(money.minor())
        }
        None => None,
    };
    // A provider that cannot tell two refunds apart gets one at a time: otherwise a refund whose
    // answer was lost could be taken for done because another one raised the refunded total.
    let exclusive = adapter.as_ref().is_some_and(|p| !p.refund_is_idempotent());
    let (refund, payment) = app
        .store
        .start_refund(scope, id, minor, reason.clone(), exclusive, app.clock.now(), start_idem)
        .await?;
    // The provider call and the settlement run in their own task: once the reservation is
    // committed they must finish even if the client disconnects (which drops this future).
    let app = app.clone();
    let task = tokio::spawn(async move {
        let outcome = match (adapter_of(&app, &payment).await, &payment.provider_reference) {
            (Some(p), Some(reference)) => {
                let req = RefundRequest {
                    payment_reference: reference.clone(),
                    method: payment.method.clone(),
                    payment_amount: payment.amount,
                    refund_id: refund.id.clone(),
                    amount: refund.amount,
                    reason,
                };
                jinliu_providers::outbound::refund_safely(p.as_ref(), &req, payment.refunded_minor, &p.account().policy)
                    .await
            }
            // Nothing can reach a provider this server does not have: fail the refund now
            // rather than keep its amount reserved for ever.
            _ => Ok(RefundOutcome::Failed(
                "the payment's provider is not configured on this server".into(),
            )),
        };
        let settled = match outcome {
            Ok(RefundOutcome::Succeeded(r)) => Ok(r),
            Ok(RefundOutcome::Failed(reason)) | Err(ProviderError::Refused(reason)) => Err(reason),
            Err(ProviderError::NotFound) => Err("the provider does not know this payment".to_owned()),
            // Unknown outcome: the refund stays pending until the provider's notification or
            // the status sync settles it; the answer says so.
            Ok(RefundOutcome::Pending(_)) | Err(_) => {
                if let Err(e) = app
                    .store
                    .release_refund_to_sync(refund.id.as_str(), app.clock.now())
                    .await
                {
                    // The request's lease then expires by itself and sync takes over later.
                    tracing::warn!(refund = %refund.id, error = %e, "could not hand the refund to status sync");
                }
                return with_retries(|| async {
                    match finish_idem.as_ref() {
                        Some(make) => app.store.finish_idempotency(refund.clone(), make()).await,
                        None => Ok(refund.clone()),
                    }
                })
                .await;
            }
        };
        with_retries(|| {
            app.store.settle_refund(
                &refund.id,
                settled.clone(),
                app.clock.now(),
                finish_idem.as_ref().map(|make| make()),
            )
        })
        .await
    });
    Ok(task.await.map_err(ApiError::internal)??)
}

/// Builds the idempotency record of a later unit of work; a function because a retried unit
/// needs a fresh one.
pub type IdemFactory<T> = Box<dyn Fn() -> IdemRequest<T> + Send + Sync>;

/// Runs a settlement again when the shared transaction was lost or kept conflicting: the
/// provider has already answered, so giving up would leave money moved and unrecorded.
async fn with_retries<T, F, Fut>(mut f: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match f().await {
            Err(StoreError::Conflict | StoreError::TransactionAborted) if attempt < 5 => continue,
            other => return other,
        }
    }
}

/// Verifies and applies a provider notification for `account`; returns the acknowledgement the
/// provider expects. A bad signature changes nothing; an untrusted protocol is queried back
/// before anything changes; the same notification twice changes nothing twice.
pub async fn receive_notification(
    app: &AppState,
    account: &Arc<dyn PaymentProvider>,
    inbound: &InboundNotification,
) -> Result<String, ApiError> {
    let provider_id = account.id();
    let verified: VerifiedNotification = account
        .verify_notification(inbound, app.clock.now())
        .map_err(|e| match e {
            ProviderError::BadNotification(reason) => {
                tracing::warn!(provider = provider_id, account = %account.account().id, %reason, "notification rejected");
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "invalid_signature",
                    "the notification could not be verified",
                )
            }
            other => ApiError::internal(other),
        })?;
    let payment = app
        .store
        .payment_by_reference(provider_id, &account.account().id, &verified.reference)
        .await?
        .ok_or_else(|| ApiError::not_found("payment"))?;
    if let Some(a) = verified.amount
        && a != payment.amount
    {
        // A signed notification for another amount is a provider bug or an attack; money must
        // never follow it. The operator is told; the provider gets a refusal.
        tracing::error!(payment = %payment.id, provider = provider_id, "notification amount differs from the payment");
        return Err(ApiError::unprocessable(
            "notification_amount_mismatch",
            "the notified amount differs from the payment",
        ));
    }
    let (status, status_code) = if verified.trusted {
        (verified.status.clone(), verified.status_code.clone())
    } else {
        // The notification proves nothing by itself: ask the provider, and deduplicate on what
        // the provider said, not on what the (forgeable) notification claimed.
        let queried = account
            .query_payment(&verified.reference)
            .await
            .map_err(provider_error)?;
        let code = format!("queried:{}", status_word(&queried));
        (queried, code)
    };
    let status = capture_if_authorized(account.as_ref(), &payment, status).await?;
    let key = NotificationKey {
        provider: provider_id.to_owned(),
        account: account.account().id.clone(),
        reference: verified.reference.clone(),
        status_code,
    };
    apply_status(app, &payment, status, Some(key)).await?;
    Ok(verified.ack)
}

/// The order is paid: the other attempts, already cancelled in jinliu in the same transaction,
/// are closed at their providers too, so the customer cannot pay twice. Best effort: a failure
/// is logged, and a payment that still completes there is kept and flagged `duplicate`.
async fn cancel_siblings_at_providers(app: &AppState, paid: &Payment) {
    let scope = Scope {
        merchant_id: paid.merchant_id.clone(),
        livemode: paid.livemode,
    };
    let siblings = match app.store.payments_for_order(&scope, &paid.order_id).await {
        Ok(list) => list,
        Err(e) => {
            tracing::warn!(order = %paid.order_id, error = %e, "could not list attempts to cancel at providers");
            return;
        }
    };
    for sibling in siblings
        .iter()
        .filter(|s| s.id != paid.id && s.status == PaymentStatus::Cancelled)
    {
        if let (Some(provider), Some(reference)) = (adapter_of(app, sibling).await, &sibling.provider_reference) {
            match provider.cancel(reference).await {
                Ok(()) | Err(ProviderError::NotFound) => {}
                Err(e) => {
                    tracing::warn!(payment = %sibling.id, error = %e, "could not cancel a superseded attempt at its provider")
                }
            }
        }
    }
}

/// KPay-style providers authorise first: jinliu captures at once, then asks again.
pub async fn capture_if_authorized(
    provider: &dyn PaymentProvider,
    payment: &Payment,
    status: ProviderStatus,
) -> Result<ProviderStatus, ApiError> {
    if status != ProviderStatus::Authorized {
        return Ok(status);
    }
    let reference = payment.provider_reference.clone().unwrap_or_default();
    if !payment.status.is_open() {
        // Nobody expects this money any more (the attempt was cancelled, expired, or another
        // attempt paid the order): release the authorisation instead of capturing it.
        provider.cancel(&reference).await.map_err(provider_error)?;
        return provider.query_payment(&reference).await.map_err(provider_error);
    }
    provider
        .capture(&reference, payment.amount)
        .await
        .map_err(provider_error)?;
    provider.query_payment(&reference).await.map_err(provider_error)
}

/// A provider status as one word, for deduplication keys of queried statuses.
fn status_word(status: &ProviderStatus) -> &'static str {
    match status {
        ProviderStatus::Pending => "pending",
        ProviderStatus::Processing => "processing",
        ProviderStatus::Authorized => "authorized",
        ProviderStatus::Succeeded { .. } => "succeeded",
        ProviderStatus::Failed { .. } => "failed",
        ProviderStatus::Expired => "expired",
        ProviderStatus::Cancelled => "cancelled",
    }
}

/// Applies where the provider says a payment stands. With a notification key the change is
/// applied at most once per key. Returns the payment, or `None` when nothing changed.
pub async fn apply_status(
    app: &AppState,
    payment: &Payment,
    status: ProviderStatus,
    key: Option<NotificationKey>,
) -> Result<Option<Payment>, ApiError> {
    let change = match status {
        ProviderStatus::Succeeded { transaction_id } => PaymentChange::Complete { transaction_id },
        ProviderStatus::Failed { .. } => PaymentChange::Fail,
        ProviderStatus::Processing => PaymentChange::Processing,
        ProviderStatus::Expired => PaymentChange::Expire,
        ProviderStatus::Cancelled => PaymentChange::Cancel,
        ProviderStatus::Pending | ProviderStatus::Authorized => return Ok(None),
    };
    let completes = matches!(change, PaymentChange::Complete { .. });
    let now = app.clock.now();
    let result = match key {
        Some(key) => app.store.apply_notification(&payment.id, key, change, now).await,
        None => app
            .store
            .change_payment(None, &payment.id, change, now, None)
            .await
            .map(Some),
    };
    match result {
        Ok(Some(p)) if completes && p.status == PaymentStatus::Completed && !p.duplicate => {
            cancel_siblings_at_providers(app, &p).await;
            Ok(Some(p))
        }
        Ok(p) => Ok(p),
        // A stale or reordered status (e.g. "processing" after "completed"): acknowledged so the
        // provider stops resending, never applied, and logged for the operator.
        Err(StoreError::Transition(t)) => {
            tracing::info!(payment = %payment.id, error = %t, "provider status ignored: the payment is past it");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}
