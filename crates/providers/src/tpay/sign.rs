//! TPay's `verify` check value: lower-hex MD5 of `key1|field|…|field|key2`.
//!
//! The same construction signs the checkout form, the payment result (browser return and server
//! notification) and the query / refund / cancel calls we defined in its style; only the fields
//! between the two keys differ, and each message type has its own field list so a value signed
//! for one cannot be replayed as another. This module computes and compares check values and
//! knows nothing about HTTP or field names.
//!
//! MD5 with two secret salts is a weak MAC (no HMAC construction, MD5 collisions are practical),
//! which is why the adapter reports notifications as untrusted and the server queries back.

use md5::{Digest, Md5};

/// The field separator between keys and values.
const SEP: &[u8] = b"|";

/// The MD5 digest of `key1|parts…|key2`.
fn digest(key1: &str, parts: &[&str], key2: &str) -> [u8; 16] {
    let mut h = Md5::new();
    h.update(key1.as_bytes());
    for p in parts {
        h.update(SEP);
        h.update(p.as_bytes());
    }
    h.update(SEP);
    h.update(key2.as_bytes());
    h.finalize().into()
}

/// The check value for `parts`, lower-hex as TPay sends it.
pub fn check_value(key1: &str, parts: &[&str], key2: &str) -> String {
    hex::encode(digest(key1, parts, key2))
}

/// Whether `given` (hex, either case) is the check value for `parts`. The comparison of the
/// digests takes the same time wherever they differ, so timing reveals nothing about the value.
pub fn matches(key1: &str, parts: &[&str], key2: &str, given: &str) -> bool {
    let Ok(given) = hex::decode(given.trim()) else {
        return false;
    };
    let expected = digest(key1, parts, key2);
    if given.len() != expected.len() {
        return false;
    }
    let diff = given
        .iter()
        .zip(expected.iter())
        .fold(0_u8, |acc, (a, b)| acc | (a ^ b));
    diff == 0
}

/// The checkout form's check: `md5(key1|mid|txid|amount|key2)` (public material).
pub fn form(key1: &str, key2: &str, mid: &str, txid: &str, amount: &str) -> String {
    check_value(key1, &[mid, txid, amount], key2)
}

/// The fields a payment result's check covers, in order: `txid, amount, pay_type, status, tid`
/// (public material).
pub fn result_parts<'a>(
    txid: &'a str,
    amount: &'a str,
    pay_type: &'a str,
    status: &'a str,
    tid: &'a str,
) -> [&'a str; 5] {
    [txid, amount, pay_type, status, tid]
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "tpay-sandbox-key1";
    const K2: &str = "tpay-sandbox-key2";

    // The expected values below were computed outside this code with coreutils:
    // `printf '%s' 'tpay-sandbox-key1|TPAYSANDBOX01|J0ABCDEFGHIJKLMNOPQR|170|tpay-sandbox-key2' | md5sum`.
    #[test]
    fn the_form_check_matches_an_independently_computed_md5() {
        assert_eq!(
            form(K1, K2, "TPAYSANDBOX01", "J0ABCDEFGHIJKLMNOPQR", "170"),
            "e776c2119c107a8f714f334c884743d7"
        );
    }

    #[test]
    fn the_result_check_matches_an_independently_computed_md5() {
        let parts = result_parts("J0ABCDEFGHIJKLMNOPQR", "170", "2", "1", "TWV000001");
        assert_eq!(check_value(K1, &parts, K2), "4a9ce2385fe8741458ef8e96c3381d95");
    }

    #[test]
    fn a_check_value_matches_in_either_hex_case_and_not_after_one_changed_digit() {
        let parts = ["a", "b"];
        let good = check_value(K1, &parts, K2);
        assert!(matches(K1, &parts, K2, &good));
        assert!(matches(K1, &parts, K2, &good.to_uppercase()));
        let mut bad = good.into_bytes();
        bad[31] = if bad[31] == b'0' { b'1' } else { b'0' };
        assert!(!matches(K1, &parts, K2, &String::from_utf8(bad).expect("ascii")));
    }

    #[test]
    fn malformed_or_truncated_check_values_never_match() {
        let parts = ["a"];
        let good = check_value(K1, &parts, K2);
        assert!(!matches(K1, &parts, K2, ""));
        assert!(!matches(K1, &parts, K2, "zz"));
        assert!(!matches(K1, &parts, K2, &good[..30]));
        assert!(!matches(K1, &parts, K2, &format!("{good}00")));
    }

    #[test]
    fn moving_a_separator_changes_the_check_value() {
        assert_ne!(check_value(K1, &["ab", "c"], K2), check_value(K1, &["a", "bc"], K2));
    }
}
