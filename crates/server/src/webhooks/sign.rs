//! Standard Webhooks signing: secrets `whsec_<base64 of 32 random bytes>`, and
//! `webhook-signature: v1,<base64 HMAC-SHA256("{id}.{timestamp}.{body}")>` keyed by the
//! base64-decoded part after `whsec_`. Several signatures (during a rotation) are space-separated;
//! a receiver accepts the message when any one of them verifies.

use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;

/// The prefix of every signing secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// A new signing secret: `whsec_` + base64 of 32 random bytes.
pub fn new_secret() -> String {
    let mut bytes = [0_u8; 32];
    rand::rng().fill(&mut bytes);
    format!("{SECRET_PREFIX}{}", data_encoding::BASE64.encode(&bytes))
}

/// The HMAC key of a secret; `None` when it is not `whsec_` + base64.
pub fn secret_key(secret: &str) -> Option<Vec<u8>> {
    let b64 = secret.strip_prefix(SECRET_PREFIX)?;
    data_encoding::BASE64
        .decode(b64.as_bytes())
        .ok()
        .filter(|k| !k.is_empty())
}

/// One `v1,<base64>` signature of `body` for message `id` at unix second `timestamp`.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap_or_else(|_| Hmac::<Sha256>::new(&Default::default()));
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", data_encoding::BASE64.encode(&mac.finalize().into_bytes()))
}

/// The `webhook-signature` header value: one signature per key, space-separated.
pub fn header(keys: &[Vec<u8>], id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter()
        .map(|k| sign(k, id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_webhooks_reference_vector_verifies() {
        // The example of the Standard Webhooks specification (and its reference libraries' tests).
        let key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap_or_default();
        let sig = sign(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn a_new_secret_is_whsec_and_32_bytes_of_base64_and_differs_each_time() {
        let a = new_secret();
        assert!(a.starts_with("whsec_"));
        assert_eq!(secret_key(&a).map(|k| k.len()), Some(32));
        assert_ne!(a, new_secret());
        assert_eq!(secret_key("sk_nope"), None);
    }

    #[test]
    fn two_keys_give_two_space_separated_signatures() {
        let h = header(&[vec![1; 32], vec![2; 32]], "msg_x", 1, b"{}");
        let parts: Vec<&str> = h.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| p.starts_with("v1,")));
        assert_ne!(parts[0], parts[1]);
    }
}
