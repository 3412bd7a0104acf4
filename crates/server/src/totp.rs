//! TOTP (RFC 6238): HMAC-SHA1, 6 digits, 30-second steps, one step of clock drift either way —
//! what authenticator apps implement. A code is accepted once: the step it belongs to is stored,
//! and no code of that step or an earlier one is accepted again.

use hmac::{Hmac, Mac};
use sha1::Sha1;

/// Seconds per step.
pub const STEP: i64 = 30;

/// A new secret: 20 random bytes (RFC 4226's recommended length), base32 as apps expect.
pub fn new_secret() -> String {
    data_encoding::BASE32_NOPAD.encode(&rand::random::<[u8; 20]>())
}

/// The code of `secret` (base32) at step `counter` (RFC 4226 HOTP).
pub fn code_at(secret: &str, counter: i64) -> Option<String> {
    let key = data_encoding::BASE32_NOPAD.decode(secret.as_bytes()).ok()?;
    let mut mac = Hmac::<Sha1>::new_from_slice(&key).ok()?;
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = (digest[19] & 0x0f) as usize;
    let bin = ((u32::from(digest[offset]) & 0x7f) << 24)
        | (u32::from(digest[offset + 1]) << 16)
        | (u32::from(digest[offset + 2]) << 8)
        | u32::from(digest[offset + 3]);
    Some(format!("{:06}", bin % 1_000_000))
}

/// The step `code` belongs to, if it is valid at `unix` (±1 step) and newer than `last_step`.
pub fn verify(secret: &str, code: &str, unix: i64, last_step: i64) -> Option<i64> {
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = unix.div_euclid(STEP);
    [now - 1, now, now + 1]
        .into_iter()
        .filter(|s| *s > last_step)
        .find(|s| code_at(secret, *s).is_some_and(|c| crate::secrets::constant_time_eq(c.as_bytes(), code.as_bytes())))
}

/// The `otpauth://` URI an authenticator app scans.
pub fn uri(secret: &str, account: &str) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    format!(
        "otpauth://totp/jinliu:{}?secret={secret}&issuer=jinliu&algorithm=SHA1&digits=6&period=30",
        enc(account)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6238_sha1_vectors_pass() {
        // RFC 6238 appendix B, SHA-1 seed "12345678901234567890" (8 digits there; the last 6
        // digits here).
        let secret = data_encoding::BASE32_NOPAD.encode(b"12345678901234567890");
        for (t, eight) in [
            (59_i64, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
        ] {
            assert_eq!(code_at(&secret, t / STEP).as_deref(), Some(&eight[2..]), "t={t}");
        }
    }

    #[test]
    fn a_code_is_accepted_within_one_step_and_only_once() {
        let secret = new_secret();
        let now = 1_800_000_000;
        let code = code_at(&secret, now / STEP).unwrap_or_default();
        let step = verify(&secret, &code, now, 0);
        assert_eq!(step, Some(now / STEP));
        assert_eq!(verify(&secret, &code, now, now / STEP), None, "single use");
        assert_eq!(verify(&secret, &code, now + 3 * STEP, 0), None, "too late");
        assert_eq!(verify(&secret, "12345", now, 0), None);
    }
}
