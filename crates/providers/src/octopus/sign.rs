//! Octopus-like request and notification signatures: hex HMAC-SHA256 over plain concatenations
//! of fields (requests, under the merchant's signing secret) or over the raw notification body
//! (under the webhook secret).
//!
//! This module only computes and compares signatures; it knows nothing of HTTP, time windows or
//! nonce replay (the adapter and the sandbox own those). Both sides use the same functions, so the
//! sandbox can never drift from the adapter; the known-answer tests pin the bytes against an
//! independent computation.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The text signed for `POST /v1/payments`: orderId + amount + currency + timestamp + nonce.
pub fn create_payload(order_id: &str, amount: &str, currency: &str, timestamp: &str, nonce: &str) -> String {
    format!("{order_id}{amount}{currency}{timestamp}{nonce}")
}

/// The text signed for `POST /v1/refunds`: refundId + orderId + amount + currency + timestamp +
/// nonce.
pub fn refund_payload(
    refund_id: &str,
    order_id: &str,
    amount: &str,
    currency: &str,
    timestamp: &str,
    nonce: &str,
) -> String {
    format!("{refund_id}{order_id}{amount}{currency}{timestamp}{nonce}")
}

/// The text signed for body-less requests (`GET /v1/payments/{id}`, `POST
/// /v1/payments/{id}/cancel`): method + path + timestamp + nonce. `path` is the API path relative
/// to the base URL (`/v1/payments/J0…`), without a query string.
pub fn path_payload(method: &str, path: &str, timestamp: &str, nonce: &str) -> String {
    format!("{method}{path}{timestamp}{nonce}")
}

/// Lower-case hex HMAC-SHA256 of `data` under `secret`.
pub fn sign(secret: &str, data: &[u8]) -> String {
    hex::encode(mac(secret, data).finalize().into_bytes())
}

/// Whether `signature_hex` is the HMAC-SHA256 of `data` under `secret`. The comparison is
/// constant-time (hmac's `verify_slice`); a signature that is not hex is simply wrong.
pub fn verify(secret: &str, data: &[u8], signature_hex: &str) -> bool {
    match hex::decode(signature_hex.trim()) {
        Ok(bytes) => mac(secret, data).verify_slice(&bytes).is_ok(),
        Err(_) => false,
    }
}

fn mac(secret: &str, data: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length (long keys are hashed), so construction cannot fail.
    let mut m = match <HmacSha256 as Mac>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    m.update(data);
    m
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn the_create_payload_concatenates_fields_without_separators() {
        assert_eq!(
            create_payload("J0ABCDEFGHIJKLMNOPQR", "100.00", "HKD", "1700000000", "n0nce"),
            "J0ABCDEFGHIJKLMNOPQR100.00HKD1700000000n0nce"
        );
        assert_eq!(
            path_payload("GET", "/v1/payments/J0ABCDEFGHIJKLMNOPQR", "1700000000", "n0nce"),
            "GET/v1/payments/J0ABCDEFGHIJKLMNOPQR1700000000n0nce"
        );
        assert_eq!(
            refund_payload("re_1", "J0ABCDEFGHIJKLMNOPQR", "10.50", "HKD", "1700000000", "n"),
            "re_1J0ABCDEFGHIJKLMNOPQR10.50HKD1700000000n"
        );
    }

    #[test]
    fn hmac_sha256_matches_the_rfc_4231_test_case_2() {
        // RFC 4231 §4.3: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn the_worked_example_in_the_docs_signs_to_the_documented_value() {
        // docs/providers/octopus.md, "Signing": recomputed independently with
        // `printf %s '<payload>' | openssl dgst -sha256 -hmac oct-sandbox-signing-secret`.
        let payload = create_payload(
            "J0M9Z3K2X1W0V9U8T7S6",
            "100.00",
            "HKD",
            "1700000000",
            "9f8e7d6c5b4a39281706f5e4d3c2b1a0",
        );
        assert_eq!(
            sign("oct-sandbox-signing-secret", payload.as_bytes()),
            "710cacee3483c4155da49b3ef974a361ce14c6aba2608b80dc7f11b06aec1b4a"
        );
    }

    #[test]
    fn the_documented_query_and_notification_examples_sign_to_the_documented_values() {
        // docs/providers/octopus.md, recomputed with openssl as above.
        let query = path_payload(
            "GET",
            "/v1/payments/J0M9Z3K2X1W0V9U8T7S6",
            "1700000000",
            "9f8e7d6c5b4a39281706f5e4d3c2b1a0",
        );
        assert_eq!(
            sign("oct-sandbox-signing-secret", query.as_bytes()),
            "6339944b9e9d544b847da37f37cdbac213e9f4a4ae204e92296858c38e2006d6"
        );
        assert_eq!(
            sign("oct-sandbox-webhook-secret", DOC_NOTIFICATION.as_bytes()),
            "4c20df72c2d5007f1890959544de47c29f0ba07b6b59714f5b47fa8b5af2089a"
        );
    }

    /// The notification body of the docs' worked example, byte for byte.
    pub(crate) const DOC_NOTIFICATION: &str = concat!(
        r#"{"eventId":"oevt_5f2c1a9e0b7d3c4e8a1f6b20","merchantId":"OCTSANDBOX01","#,
        r#""paymentId":"opay_3b9d2e7f1c0a4b8e6d5f2a19","orderId":"J0M9Z3K2X1W0V9U8T7S6","#,
        r#""status":"SUCCESS","amount":"100.00","currency":"HKD","transactionId":"R4F1C9A2B7E3D","#,
        r#""failureReason":null,"timestamp":1700000000}"#
    );

    #[test]
    fn verify_accepts_the_right_signature_and_refuses_a_changed_byte_or_non_hex() {
        let sig = sign("k", b"body");
        assert!(verify("k", b"body", &sig));
        assert!(verify("k", b"body", &sig.to_uppercase()));
        assert!(!verify("k", b"bodY", &sig));
        assert!(!verify("other", b"body", &sig));
        assert!(!verify("k", b"body", "zz"));
        assert!(!verify("k", b"body", ""));
    }
}
