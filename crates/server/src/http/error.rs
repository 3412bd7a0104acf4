//! The one HTTP error type. Every failure of every layer becomes an [`ApiError`] with a stable
//! snake_case code (listed in docs/errors.md) and the right status. 5xx answers carry the request
//! id only; the cause is logged once, here, never sent.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use jinliu_domain::AmountError;
use jinliu_domain::payment::RefundRejected;
use jinliu_domain::settle::AttemptRejected;
use jinliu_store::{StoreError, StoredResponse};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

/// An error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code.
    pub code: &'static str,
    /// Human message (never internal detail for 5xx).
    pub message: String,
    /// Structured extra facts (e.g. the remaining refundable amount), as JSON text so that
    /// amounts keep their exact decimals.
    pub details: Option<Box<RawValue>>,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            details: None,
        }
    }

    /// Adds details.
    pub fn with_details(mut self, details: Value) -> ApiError {
        self.details = RawValue::from_string(details.to_string()).ok();
        self
    }

    /// Adds details already rendered as JSON (keeps `100.00` as written).
    pub fn with_raw_details(mut self, details: String) -> ApiError {
        self.details = RawValue::from_string(details).ok();
        self
    }

    /// 400 `invalid_request`.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// 422 with a code.
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// 404 for a kind of object.
    pub fn not_found(what: &str) -> ApiError {
        let code = match what {
            "order" => "order_not_found",
            "payment" => "payment_not_found",
            "refund" => "refund_not_found",
            "webhook_endpoint" => "webhook_endpoint_not_found",
            "webhook_message" => "webhook_message_not_found",
            "provider_account" => "provider_account_not_found",
            _ => "not_found",
        };
        ApiError::new(
            StatusCode::NOT_FOUND,
            code,
            format!("no such {}", what.replace('_', " ")),
        )
    }

    /// 500, logging the cause.
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %cause, "internal error");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "internal error")
    }

    /// The JSON body (5xx bodies name the request id only; the request-id layer fills it in).
    pub fn body(&self) -> String {
        #[derive(Serialize)]
        struct Error<'a> {
            code: &'a str,
            message: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            details: Option<&'a RawValue>,
        }
        #[derive(Serialize)]
        struct Body<'a> {
            success: bool,
            error: Error<'a>,
            message: &'a str,
        }
        // 5xx answers never carry details: they could hold internals.
        let details = if self.status.is_server_error() {
            None
        } else {
            self.details.as_deref()
        };
        let error = Error {
            code: self.code,
            message: &self.message,
            details,
        };
        serde_json::to_string(&Body {
            success: false,
            error,
            message: &self.message,
        })
        .unwrap_or_default()
    }

    /// The answer as kept with an idempotency key.
    pub fn stored(&self) -> StoredResponse {
        StoredResponse {
            status: self.status.as_u16(),
            body: self.body(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // 5xx bodies get the request id from the middleware in `http::mod`.
        (
            self.status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            self.body(),
        )
            .into_response()
    }
}

impl From<AmountError> for ApiError {
    fn from(e: AmountError) -> Self {
        ApiError::unprocessable("invalid_amount", e.to_string())
    }
}

impl From<AttemptRejected> for ApiError {
    fn from(e: AttemptRejected) -> Self {
        match e {
            AttemptRejected::OrderNotPayable(status) => {
                ApiError::new(StatusCode::CONFLICT, "order_not_payable", e.to_string())
                    .with_details(json!({ "orderStatus": status }))
            }
            AttemptRejected::CurrencyMismatch { .. } => ApiError::unprocessable("currency_mismatch", e.to_string()),
            AttemptRejected::AmountMismatch { .. } => ApiError::unprocessable("amount_mismatch", e.to_string()),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ApiError::not_found(what),
            StoreError::Transition(t) => ApiError::new(StatusCode::CONFLICT, "invalid_state", t.to_string())
                .with_details(json!({ "object": t.object, "status": t.from })),
            StoreError::Attempt(a) => a.into(),
            StoreError::Refund(RefundRejected::NotRefundable(status)) => ApiError::new(
                StatusCode::CONFLICT,
                "payment_not_refundable",
                format!("a payment that is {status} cannot be refunded"),
            )
            .with_details(json!({ "paymentStatus": status })),
            StoreError::Refund(RefundRejected::InProgress) => ApiError::new(
                StatusCode::CONFLICT,
                "refund_in_progress",
                "another refund of this payment is still pending; retry when it has settled",
            ),
            StoreError::Refund(RefundRejected::ExceedsRemaining {
                remaining_minor,
                currency,
            }) => ApiError::unprocessable(
                "refund_exceeds_remaining",
                "refund amount exceeds the remaining refundable amount",
            )
            .with_raw_details(format!(
                r#"{{"remainingAmount":{},"currency":"{currency}"}}"#,
                jinliu_domain::money::format_minor(remaining_minor, currency)
            )),
            StoreError::Conflict | StoreError::TransactionAborted => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                "the object was changed concurrently; retry the request",
            ),
            StoreError::IdempotencyRace => ApiError::new(
                StatusCode::CONFLICT,
                "idempotency_key_in_use",
                "a request with this idempotency key is being processed",
            ),
            StoreError::Closed => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the server is shutting down",
            ),
            other => ApiError::internal(other),
        }
    }
}
