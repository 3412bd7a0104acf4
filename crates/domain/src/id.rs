//! Typed, prefixed, time-sortable identifiers (`ord_…`, `pay_…`, `re_…`, `evt_…`, `mer_…`, `ep_…`,
//! `msg_…`, `att_…`, `pa_…`).
//!
//! The body is a UUIDv7 in lower-case hex: the first 48 bits are the creation time in
//! milliseconds, so ids sort by creation time as text and as database keys (good B-tree locality),
//! and the remaining 74 random bits make them unguessable. A prefix tells a human (and the parser)
//! what kind of object an id names; an order id can never be passed where a payment id belongs.

use std::fmt;

use rand::Rng;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

const BODY_LEN: usize = 32;

macro_rules! typed_id {
    ($(#[$meta:meta])* $name:ident, $prefix:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// The prefix, including the underscore.
            pub const PREFIX: &'static str = $prefix;

            /// A new id for an object created now.
            pub fn generate() -> Self {
                $name(format!("{}{}", $prefix, uuid::Uuid::now_v7().simple()))
            }

            /// Parses an id; `None` when the prefix or body is wrong (callers answer 404, as for
            /// an id that does not exist).
            pub fn parse(s: &str) -> Option<Self> {
                let body = s.strip_prefix($prefix)?;
                (body.len() == BODY_LEN && body.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
                    .then(|| $name(s.to_owned()))
            }

            /// Wraps a value read back from the store, which only ever holds ids jinliu made.
            pub fn from_trusted(s: String) -> Self {
                $name(s)
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $name::parse(&s).ok_or_else(|| serde::de::Error::custom(concat!("not a valid ", $prefix, " id")))
            }
        }
    };
}

typed_id!(/// An order.
    OrderId, "ord_");
typed_id!(/// A payment attempt.
    PaymentId, "pay_");
typed_id!(/// A refund.
    RefundId, "re_");
typed_id!(/// A domain event (outbox row, later a webhook message id).
    EventId, "evt_");
typed_id!(/// A merchant (tenant).
    MerchantId, "mer_");
typed_id!(/// An API key (its id, never the secret).
    ApiKeyId, "key_");
typed_id!(/// A user.
    UserId, "usr_");
typed_id!(/// An audit log row.
    AuditId, "aud_");
typed_id!(/// A merchant's webhook endpoint.
    EndpointId, "ep_");
typed_id!(/// One webhook message: one event for one endpoint; its id is the `webhook-id` header, the
    /// same on every retry.
    MessageId, "msg_");
typed_id!(/// One delivery attempt of a webhook message.
    AttemptId, "att_");
typed_id!(/// A merchant's own provider account (its credentials are sealed by the server).
    ProviderAccountId, "pa_");

/// Crockford's base32 alphabet: no I, L, O or U, so an order number read aloud is unambiguous.
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A new human order number, `ORD-XXXXXXXX` (seed 000/004), 40 random bits. Uniqueness is
/// enforced by the store, which draws again on the rare collision.
pub fn new_order_number() -> String {
    let mut rng = rand::rng();
    let mut s = String::with_capacity(12);
    s.push_str("ORD-");
    for _ in 0..8 {
        s.push(CROCKFORD[rng.random_range(0..32)] as char);
    }
    s
}

/// A payment's client secret: the payment id plus 192 random bits, handed to the browser so it
/// can see that one payment's public view and nothing else.
pub fn new_client_secret(payment: &PaymentId) -> String {
    let mut bytes = [0_u8; 24];
    rand::rng().fill(&mut bytes);
    let mut s = String::with_capacity(payment.as_str().len() + 8 + 48);
    s.push_str(payment.as_str());
    s.push_str("_secret_");
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The reference a provider knows a payment attempt by: `J` + 19 upper-case base-36 digits, 20
/// alphanumerics in all — ECPay's `MerchantTradeNo` rule (≤ 20 alphanumerics), the strictest of
/// the providers, so one format serves them all.
///
/// It is derived from the payment id (its 48-bit millisecond time and 50 of its random bits), so
/// every retry of the same attempt sends the same reference and a provider that deduplicates on it
/// never creates the attempt twice. References sort by creation time like the ids.
pub fn provider_reference(payment: &PaymentId) -> String {
    const BASE36: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let body = payment.as_str().trim_start_matches(PaymentId::PREFIX);
    // Ids are validated on the way in, so the body is 32 hex digits.
    let bits = u128::from_str_radix(body, 16).unwrap_or_default();
    let millis = bits >> 80;
    let rand_a = (bits >> 64) & 0xfff;
    let rand_b_top = (bits >> 24) & ((1 << 38) - 1);
    let mut v = (millis << 50) | (rand_a << 38) | rand_b_top;
    let mut digits = [b'0'; 19];
    for d in digits.iter_mut().rev() {
        *d = BASE36[(v % 36) as usize];
        v /= 36;
    }
    let mut s = String::with_capacity(20);
    s.push('J');
    s.extend(digits.iter().map(|&b| b as char));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_provider_reference_is_twenty_alphanumerics_stable_and_time_sorted() {
        let a = PaymentId::generate();
        let b = PaymentId::generate();
        let (ra, rb) = (provider_reference(&a), provider_reference(&b));
        assert_eq!(ra.len(), 20);
        assert!(ra.bytes().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()), "{ra}");
        assert_eq!(ra, provider_reference(&a), "derived, so retries reuse it");
        assert!(ra < rb || a.as_str()[4..16] == b.as_str()[4..16], "{ra} !< {rb}");
        assert_ne!(ra, rb);
    }

    #[test]
    fn generated_ids_parse_back_and_sort_by_creation_time() {
        let a = PaymentId::generate();
        let b = PaymentId::generate();
        assert_eq!(PaymentId::parse(a.as_str()), Some(a.clone()));
        assert!(a < b, "{a} should sort before {b}");
    }

    #[test]
    fn an_id_with_another_prefix_or_a_bad_body_is_not_parsed() {
        let order = OrderId::generate();
        assert_eq!(PaymentId::parse(order.as_str()), None);
        assert_eq!(PaymentId::parse("pay_123"), None);
        assert_eq!(PaymentId::parse("pay_ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ"), None);
    }

    #[test]
    fn order_numbers_have_the_seed_shape() {
        let n = new_order_number();
        assert_eq!(n.len(), 12);
        assert!(n.starts_with("ORD-"));
        assert!(n[4..].bytes().all(|b| CROCKFORD.contains(&b)));
    }

    #[test]
    fn client_secrets_name_their_payment_and_differ_each_time() {
        let p = PaymentId::generate();
        let a = new_client_secret(&p);
        assert!(a.starts_with(p.as_str()));
        assert_ne!(a, new_client_secret(&p));
    }
}
