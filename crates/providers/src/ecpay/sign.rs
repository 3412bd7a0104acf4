//! ECPay's CheckMacValue: the checksum on every AIO request, answer and notification.
//!
//! The algorithm (developers.ecpay.com.tw p=2902, encoding table p=2904): every parameter sent
//! except `CheckMacValue`, sorted by name case-insensitively, joined as `k=v` with `&`, framed as
//! `HashKey=…&…&HashIV=…`, URL-encoded the way .NET's `HttpUtility.UrlEncode` does, lower-cased,
//! hashed (SHA-256 for `EncryptType=1`; MD5 for the legacy and e-invoice APIs) and upper-cased as
//! hex. This module only computes and compares; it knows nothing about which fields a request has.

use md5::Md5;
use sha2::{Digest as _, Sha256};

/// The hash under the checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    /// `EncryptType=1`: every AIO payment API.
    Sha256,
    /// The legacy `EncryptType=0` (still used by ECPay's e-invoice and logistics APIs).
    Md5,
}

/// The parameter that carries the checksum; it never enters its own computation.
pub const FIELD: &str = "CheckMacValue";

/// URL-encodes like .NET's `HttpUtility.UrlEncode`: `A–Z a–z 0–9 - _ . ! * ( )` stay, a space
/// becomes `+`, every other UTF-8 byte becomes `%XX`. (PHP's `urlencode` and JS's
/// `encodeURIComponent` both differ on some of these, which is the usual cause of mismatches.)
pub fn dotnet_url_encode(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(s.len() * 3);
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'!' | b'*' | b'(' | b')' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(HEX[usize::from(b >> 4)] as char);
                out.push(HEX[usize::from(b & 0x0f)] as char);
            }
        }
    }
    out
}

/// The text that is hashed: the sorted, framed, encoded and lower-cased parameters.
pub fn plain_text<'a>(params: impl IntoIterator<Item = (&'a str, &'a str)>, hash_key: &str, hash_iv: &str) -> String {
    let mut pairs: Vec<(&str, &str)> = params.into_iter().filter(|(k, _)| *k != FIELD).collect();
    // ECPay's SDK sorts with strcasecmp; the original name breaks ties so the order is total.
    pairs.sort_by(|a, b| {
        a.0.to_ascii_lowercase()
            .cmp(&b.0.to_ascii_lowercase())
            .then_with(|| a.0.cmp(b.0))
    });
    let mut raw = format!("HashKey={hash_key}");
    for (k, v) in pairs {
        raw.push('&');
        raw.push_str(k);
        raw.push('=');
        raw.push_str(v);
    }
    raw.push_str("&HashIV=");
    raw.push_str(hash_iv);
    dotnet_url_encode(&raw).to_lowercase()
}

/// The CheckMacValue of `params` (64 upper-case hex digits for SHA-256, 32 for MD5).
pub fn check_mac_value<'a>(
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
    hash_key: &str,
    hash_iv: &str,
    hash: Hash,
) -> String {
    let text = plain_text(params, hash_key, hash_iv);
    let digest = match hash {
        Hash::Sha256 => Sha256::digest(text.as_bytes()).to_vec(),
        Hash::Md5 => Md5::digest(text.as_bytes()).to_vec(),
    };
    hex::encode_upper(digest)
}

/// Appends the SHA-256 CheckMacValue to `fields` (the way every AIO request is sent).
pub fn sign(fields: &mut Vec<(String, String)>, hash_key: &str, hash_iv: &str) {
    let mac = check_mac_value(
        fields.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        hash_key,
        hash_iv,
        Hash::Sha256,
    );
    fields.push((FIELD.to_owned(), mac));
}

/// Whether `fields` carry exactly one CheckMacValue and it is right (SHA-256), compared in
/// constant time. Hex case is ignored: the digest is the same whatever case the sender used.
pub fn verify(fields: &[(String, String)], hash_key: &str, hash_iv: &str) -> bool {
    let mut sent = fields.iter().filter(|(k, _)| k == FIELD).map(|(_, v)| v);
    let (Some(sent), None) = (sent.next(), sent.next()) else {
        return false;
    };
    let expected = check_mac_value(
        fields.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        hash_key,
        hash_iv,
        Hash::Sha256,
    );
    constant_time_eq(sent.to_ascii_uppercase().as_bytes(), expected.as_bytes())
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0_u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    /// ECPay's published example (developers.ecpay.com.tw p=2902, merchant 3002607).
    const EXAMPLE_2023: &[(&str, &str)] = &[
        ("ChoosePayment", "ALL"),
        ("EncryptType", "1"),
        ("ItemName", "Apple iphone 15"),
        ("MerchantID", "3002607"),
        ("MerchantTradeDate", "2023/03/12 15:30:23"),
        ("MerchantTradeNo", "ecpay20230312153023"),
        ("PaymentType", "aio"),
        ("ReturnURL", "https://www.ecpay.com.tw/receive.php"),
        ("TotalAmount", "30000"),
        ("TradeDesc", "促銷方案"),
    ];

    #[test]
    fn ecpays_published_sha256_example_for_merchant_3002607_matches() {
        let mac = check_mac_value(
            EXAMPLE_2023.iter().copied(),
            "pwFHCqoQZGmho4w6",
            "EkRm7iFT261dpevs",
            Hash::Sha256,
        );
        assert_eq!(mac, "6C51C9E6888DE861FD62FB1DD17029FC742634498FD813DC43D4243B5685B840");
    }

    #[test]
    fn the_published_example_is_framed_encoded_and_lower_cased_as_documented() {
        let text = plain_text(EXAMPLE_2023.iter().copied(), "pwFHCqoQZGmho4w6", "EkRm7iFT261dpevs");
        assert_eq!(
            text,
            "hashkey%3dpwfhcqoqzgmho4w6%26choosepayment%3dall%26encrypttype%3d1%26itemname%3dapple+iphone+15\
             %26merchantid%3d3002607%26merchanttradedate%3d2023%2f03%2f12+15%3a30%3a23\
             %26merchanttradeno%3decpay20230312153023%26paymenttype%3daio\
             %26returnurl%3dhttps%3a%2f%2fwww.ecpay.com.tw%2freceive.php%26totalamount%3d30000\
             %26tradedesc%3d%e4%bf%83%e9%8a%b7%e6%96%b9%e6%a1%88%26hashiv%3dekrm7ift261dpevs"
        );
    }

    #[test]
    fn ecpays_older_sha256_example_for_merchant_2000132_matches() {
        let params = [
            ("ChoosePayment", "ALL"),
            ("EncryptType", "1"),
            ("ItemName", "Apple iphone 7 手機殼"),
            ("MerchantID", "2000132"),
            ("MerchantTradeDate", "2013/03/12 15:30:23"),
            ("MerchantTradeNo", "ecpay20130312153023"),
            ("PaymentType", "aio"),
            ("ReturnURL", "https://www.ecpay.com.tw/receive.php"),
            ("TotalAmount", "1000"),
            ("TradeDesc", "促銷方案"),
        ];
        let mac = check_mac_value(params, "5294y06JbISpM5x9", "v77hoKGq4kWxNNIS", Hash::Sha256);
        assert_eq!(mac, "CFA9BDE377361FBDD8F160274930E815D1A8A2E3E80CE7D404C45FC9A0A1E407");
    }

    #[test]
    fn ecpays_published_md5_example_matches() {
        // The e-invoice allowance example (p=38242): an empty value still enters the checksum.
        let params = [
            ("IA_Allow_No", "1909181313013546"),
            ("IA_Date", "2019-09-18 13:13:23"),
            ("IA_Invoice_No", "UV11100019"),
            ("IIS_Remain_Allowance_Amt", "0"),
            ("RtnCode", "1"),
            ("RtnMsg", ""),
        ];
        let mac = check_mac_value(params, "ejCk326UnaZWKisg", "q9jcZX8Ib9LM8wYk", Hash::Md5);
        assert_eq!(mac, "50A276E71DAE26343013958B405EEEA0");
    }

    #[test]
    fn parameter_order_does_not_change_the_checksum_because_names_are_sorted_case_insensitively() {
        let mut reversed: Vec<(&str, &str)> = EXAMPLE_2023.to_vec();
        reversed.reverse();
        let a = check_mac_value(EXAMPLE_2023.iter().copied(), "k", "i", Hash::Sha256);
        let b = check_mac_value(reversed, "k", "i", Hash::Sha256);
        assert_eq!(a, b);
        // Case-insensitive: "abc" sorts before "ABD", and "_" before letters (strcasecmp).
        assert_eq!(
            plain_text([("ABD", "2"), ("abc", "1"), ("a_b", "0")], "K", "I"),
            "hashkey%3dk%26a_b%3d0%26abc%3d1%26abd%3d2%26hashiv%3di"
        );
    }

    #[test]
    fn dotnet_encoding_keeps_only_its_unreserved_set() {
        assert_eq!(dotnet_url_encode("-_.!*()"), "-_.!*()");
        assert_eq!(dotnet_url_encode("a b"), "a+b");
        assert_eq!(
            dotnet_url_encode("~'@#$%^&+=/:;,?[]{}|\\\"<>"),
            "%7e%27%40%23%24%25%5e%26%2b%3d%2f%3a%3b%2c%3f%5b%5d%7b%7d%7c%5c%22%3c%3e"
        );
        assert_eq!(dotnet_url_encode("綠"), "%e7%b6%a0");
    }

    #[test]
    fn a_signed_form_verifies_and_any_change_breaks_it() {
        let mut fields = owned(EXAMPLE_2023);
        sign(&mut fields, "pwFHCqoQZGmho4w6", "EkRm7iFT261dpevs");
        assert!(verify(&fields, "pwFHCqoQZGmho4w6", "EkRm7iFT261dpevs"));
        assert!(!verify(&fields, "pwFHCqoQZGmho4w6", "wrong-iv"));
        let mut changed = fields.clone();
        changed[8].1 = "30001".into();
        assert!(!verify(&changed, "pwFHCqoQZGmho4w6", "EkRm7iFT261dpevs"));
        let mut twice = fields.clone();
        twice.push(fields[fields.len() - 1].clone());
        assert!(
            !verify(&twice, "pwFHCqoQZGmho4w6", "EkRm7iFT261dpevs"),
            "two checksums are ambiguous"
        );
        assert!(
            !verify(&owned(EXAMPLE_2023), "pwFHCqoQZGmho4w6", "EkRm7iFT261dpevs"),
            "unsigned"
        );
    }
}
