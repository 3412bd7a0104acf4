//! The watcher rule: who may read and follow one payment. Either the merchant's own credentials
//! with `payments:read` (the full payment), or the payment's `clientSecret` (its public view
//! only), optionally together with the merchant's publishable key.
//!
//! The route table's [`Access::Watch`](super::routes::Access::Watch) check authenticates any
//! `Authorization` header and leaves a [`Watcher`] in the request; [`Watcher::payment`] then
//! resolves the payment. It is the one place this rule lives, shared by `GET /api/payments/{id}`,
//! the SSE stream and (without HTTP) Socket.IO rooms, so the three cannot drift apart.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use jinliu_domain::{Payment, PaymentId};

use super::error::ApiError;
use crate::auth::Principal;
use crate::state::AppState;

/// Who is asking to watch a payment, as the route's access check established.
#[derive(Debug, Clone)]
pub enum Watcher {
    /// Merchant credentials (secret key or user) holding `payments:read`.
    Merchant(Arc<Principal>),
    /// A browser: no credentials, or a publishable key. Needs the payment's client secret.
    Browser {
        /// The publishable key sent, if any; it must belong to the payment's merchant and mode.
        key: Option<Arc<Principal>>,
    },
}

/// A payment the watcher may see, with how much of it.
#[derive(Debug, Clone)]
pub enum Watched {
    /// The merchant's view: everything.
    Full(Payment),
    /// The customer's view: [`super::dto::PublicPaymentDto`] fields only.
    Public(Payment),
}

impl Watched {
    /// The payment, whichever the view.
    pub fn payment(&self) -> &Payment {
        match self {
            Watched::Full(p) | Watched::Public(p) => p,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Watcher {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Watcher>()
            .cloned()
            .ok_or_else(|| ApiError::internal("a watcher was asked for on a route without the watch check"))
    }
}

impl Watcher {
    /// The payment `id` if this watcher may see it. A wrong or missing client secret answers 404
    /// exactly like a missing payment, so a guessed id reveals nothing.
    pub async fn payment(&self, app: &AppState, id: &str, client_secret: Option<&str>) -> Result<Watched, ApiError> {
        let id = PaymentId::parse(id).ok_or_else(|| ApiError::not_found("payment"))?;
        match self {
            Watcher::Merchant(p) => app
                .store
                .payment(&p.scope(), &id)
                .await?
                .map(Watched::Full)
                .ok_or_else(|| ApiError::not_found("payment")),
            Watcher::Browser { key } => {
                let payment = app.store.payment_unscoped(&id).await?;
                public_payment(payment, key.as_deref(), client_secret.unwrap_or_default())
                    .map(Watched::Public)
                    .ok_or_else(|| ApiError::not_found("payment"))
            }
        }
    }
}

/// The payment if `secret` is its client secret (compared in constant time) and the
/// publishable key, when one was sent, is of the payment's merchant and mode: a test key never
/// opens a live payment, and another merchant's key opens nothing.
pub fn public_payment(payment: Option<Payment>, key: Option<&Principal>, secret: &str) -> Option<Payment> {
    let p = payment?;
    if secret.is_empty() || !crate::secrets::constant_time_eq(p.client_secret.as_bytes(), secret.as_bytes()) {
        return None;
    }
    match key {
        Some(k) if k.merchant_id != p.merchant_id || k.livemode != p.livemode => None,
        _ => Some(p),
    }
}

/// The merchant's display name for the public view (empty if the merchant row is gone).
pub async fn merchant_name(app: &AppState, p: &Payment) -> Result<String, ApiError> {
    Ok(app
        .store
        .merchant(&p.merchant_id)
        .await?
        .map(|m| m.name)
        .unwrap_or_default())
}
