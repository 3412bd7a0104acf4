//! Money: integer minor units plus an ISO 4217 currency.
//!
//! Amounts enter jinliu as JSON in major units (`100`, `100.5`, `"100.00"`). They are parsed from
//! the raw JSON text, never through `f64`, so `0.1 + 0.2` style errors cannot reach a ledger. On the
//! way out an amount is a JSON number carrying exactly the currency's decimals (`100.00` for TWD,
//! `100` for JPY).

use std::fmt;
use std::str::FromStr;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// ISO 4217 currencies jinliu accepts, with their ISO minor-unit exponents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Currency {
    /// New Taiwan dollar (ISO exponent 2; several Taiwanese providers only take whole dollars,
    /// which their adapters enforce).
    Twd,
    /// Hong Kong dollar.
    Hkd,
    /// US dollar.
    Usd,
    /// Renminbi.
    Cny,
    /// Japanese yen (no minor unit).
    Jpy,
}

impl Currency {
    /// Every supported currency, for docs and property tests.
    pub const ALL: [Currency; 5] = [
        Currency::Twd,
        Currency::Hkd,
        Currency::Usd,
        Currency::Cny,
        Currency::Jpy,
    ];

    /// The ISO 4217 code, upper case.
    pub fn code(self) -> &'static str {
        match self {
            Currency::Twd => "TWD",
            Currency::Hkd => "HKD",
            Currency::Usd => "USD",
            Currency::Cny => "CNY",
            Currency::Jpy => "JPY",
        }
    }

    /// Number of decimal places of the minor unit.
    pub fn exponent(self) -> u32 {
        match self {
            Currency::Jpy => 0,
            _ => 2,
        }
    }

    fn scale(self) -> i64 {
        10_i64.pow(self.exponent())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// The text was not a supported ISO 4217 code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported currency {0:?}; supported: TWD, HKD, USD, CNY, JPY")]
pub struct UnknownCurrency(pub String);

impl FromStr for Currency {
    type Err = UnknownCurrency;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Codes are case-insensitive on input ("hkd" is a common client mistake, not an attack).
        Currency::ALL
            .into_iter()
            .find(|c| c.code().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownCurrency(s.to_owned()))
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(D::Error::custom)
    }
}

/// Why an amount was refused. Every variant is reported to clients as `invalid_amount`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// Not a plain decimal number.
    #[error("amount must be a decimal number in major units, such as 100 or \"100.00\"")]
    NotANumber,
    /// More decimals than the currency has.
    #[error("{currency} amounts have at most {max} decimal places")]
    TooManyDecimals {
        /// The currency.
        currency: Currency,
        /// Its exponent.
        max: u32,
    },
    /// Zero or negative.
    #[error("amount must be greater than zero")]
    NotPositive,
    /// Above the configured per-payment limit.
    #[error("amount exceeds the limit of {limit} {currency}")]
    AboveLimit {
        /// The limit in major units, formatted.
        limit: String,
        /// The currency.
        currency: Currency,
    },
}

/// An amount of money: minor units and a currency. Always positive when built from input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    minor: i64,
    currency: Currency,
}

impl Money {
    /// Builds money from minor units; refuses zero and negative values.
    pub fn from_minor(minor: i64, currency: Currency) -> Result<Money, AmountError> {
        if minor <= 0 {
            return Err(AmountError::NotPositive);
        }
        Ok(Money { minor, currency })
    }

    /// Parses a decimal text in major units ("100", "100.5", "100.00") for `currency`, checking
    /// the currency's decimals, positivity and the limit (in major units).
    pub fn parse_major(text: &str, currency: Currency, limit_major: i64) -> Result<Money, AmountError> {
        let minor = parse_minor(text, currency)?;
        if minor <= 0 {
            return Err(AmountError::NotPositive);
        }
        let limit_minor = limit_major.saturating_mul(currency.scale());
        if minor > limit_minor {
            return Err(AmountError::AboveLimit {
                limit: limit_major.to_string(),
                currency,
            });
        }
        Ok(Money { minor, currency })
    }

    /// Minor units (cents for TWD/HKD/USD/CNY, yen for JPY).
    pub fn minor(self) -> i64 {
        self.minor
    }

    /// The currency.
    pub fn currency(self) -> Currency {
        self.currency
    }

    /// The amount in major units with exactly the currency's decimals: "100.00", "100".
    pub fn major_string(self) -> String {
        format_minor(self.minor, self.currency)
    }
}

/// Formats minor units as major-unit text with the currency's exact decimals (works for zero and
/// negative values, which appear in totals).
pub fn format_minor(minor: i64, currency: Currency) -> String {
    let exp = currency.exponent();
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    if exp == 0 {
        return format!("{sign}{abs}");
    }
    let scale = 10_u64.pow(exp);
    format!("{sign}{}.{:0width$}", abs / scale, abs % scale, width = exp as usize)
}

/// Serialises minor units as a JSON number in major units with the currency's decimals.
pub fn serialize_minor<S: Serializer>(minor: i64, currency: Currency, s: S) -> Result<S::Ok, S::Error> {
    let raw =
        serde_json::value::RawValue::from_string(format_minor(minor, currency)).map_err(serde::ser::Error::custom)?;
    raw.serialize(s)
}

/// `serialize_with` helper for a `(minor units, currency)` field: a major-unit JSON number.
pub fn serialize_amount<S: Serializer>(v: &(i64, Currency), s: S) -> Result<S::Ok, S::Error> {
    serialize_minor(v.0, v.1, s)
}

fn parse_minor(text: &str, currency: Currency) -> Result<i64, AmountError> {
    let text = text.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int_part, frac_part) = match digits.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (digits, None),
    };
    if int_part.is_empty() || !int_part.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AmountError::NotANumber);
    }
    let frac = frac_part.unwrap_or("");
    if (frac_part.is_some() && frac.is_empty()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AmountError::NotANumber);
    }
    // Trailing zeros beyond the exponent ("100.000" TWD) are still "more decimal places than the
    // currency allows": the client's intent is ambiguous, so it is refused rather than guessed.
    let exp = currency.exponent() as usize;
    if frac.len() > exp {
        return Err(AmountError::TooManyDecimals {
            currency,
            max: currency.exponent(),
        });
    }
    // Cap the integer digits before arithmetic so huge inputs are "above limit", not overflow.
    let int_trimmed = int_part.trim_start_matches('0');
    if int_trimmed.len() > 15 {
        return Err(if negative {
            AmountError::NotPositive
        } else {
            AmountError::AboveLimit {
                limit: "999999999999999".into(),
                currency,
            }
        });
    }
    let int_value: i64 = if int_trimmed.is_empty() {
        0
    } else {
        int_trimmed.parse().map_err(|_| AmountError::NotANumber)?
    };
    let mut frac_value: i64 = if frac.is_empty() {
        0
    } else {
        frac.parse().map_err(|_| AmountError::NotANumber)?
    };
    for _ in frac.len()..exp {
        frac_value *= 10;
    }
    let minor = int_value * currency.scale() + frac_value;
    Ok(if negative { -minor } else { minor })
}

/// An amount exactly as the client wrote it in JSON: the text of a number or of a string.
///
/// Deserialising keeps the raw text (`100.10` stays "100.10") so that [`Money::parse_major`] can
/// check decimals without a binary float ever holding the value. Only works with `serde_json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MajorAmount(pub String);

impl<'de> Deserialize<'de> for MajorAmount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw: Box<serde_json::value::RawValue> = Deserialize::deserialize(d)?;
        let text = raw.get();
        if text.starts_with('"') {
            let s: String = serde_json::from_str(text).map_err(D::Error::custom)?;
            Ok(MajorAmount(s))
        } else if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
            Ok(MajorAmount(text.to_owned()))
        } else {
            // true/null/objects: keep the text; parse_major reports it as not a number with the
            // stable invalid_amount code instead of a generic type error.
            Ok(MajorAmount(text.to_owned()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: i64 = 1_000_000;

    #[test]
    fn decimal_text_is_parsed_into_exact_minor_units() {
        assert_eq!(
            Money::parse_major("100", Currency::Twd, LIMIT).map(Money::minor),
            Ok(10_000)
        );
        assert_eq!(
            Money::parse_major("100.5", Currency::Hkd, LIMIT).map(Money::minor),
            Ok(10_050)
        );
        assert_eq!(
            Money::parse_major("100.05", Currency::Usd, LIMIT).map(Money::minor),
            Ok(10_005)
        );
        assert_eq!(
            Money::parse_major("0.01", Currency::Usd, LIMIT).map(Money::minor),
            Ok(1)
        );
        assert_eq!(
            Money::parse_major("500", Currency::Jpy, LIMIT).map(Money::minor),
            Ok(500)
        );
    }

    #[test]
    fn more_decimals_than_the_currency_allows_are_refused() {
        assert!(matches!(
            Money::parse_major("1.001", Currency::Twd, LIMIT),
            Err(AmountError::TooManyDecimals { .. })
        ));
        assert!(matches!(
            Money::parse_major("1.0", Currency::Jpy, LIMIT),
            Err(AmountError::TooManyDecimals { .. })
        ));
    }

    #[test]
    fn zero_negative_and_garbage_are_refused() {
        assert_eq!(
            Money::parse_major("0", Currency::Twd, LIMIT),
            Err(AmountError::NotPositive)
        );
        assert_eq!(
            Money::parse_major("0.00", Currency::Twd, LIMIT),
            Err(AmountError::NotPositive)
        );
        assert_eq!(
            Money::parse_major("-5", Currency::Twd, LIMIT),
            Err(AmountError::NotPositive)
        );
        for bad in [
            "", "abc", "1e3", "1.", ".5", "1,000", "NaN", "true", "null", "--1", "+1", " ", "1.2.3",
        ] {
            assert_eq!(
                Money::parse_major(bad, Currency::Twd, LIMIT),
                Err(AmountError::NotANumber),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn amounts_above_the_limit_are_refused_and_the_limit_itself_is_allowed() {
        assert!(Money::parse_major("1000000", Currency::Twd, LIMIT).is_ok());
        assert!(matches!(
            Money::parse_major("1000000.01", Currency::Twd, LIMIT),
            Err(AmountError::AboveLimit { .. })
        ));
        assert!(matches!(
            Money::parse_major("99999999999999999999999", Currency::Twd, LIMIT),
            Err(AmountError::AboveLimit { .. })
        ));
    }

    #[test]
    fn raw_json_numbers_and_strings_keep_their_text() {
        let a: MajorAmount = serde_json::from_str("100.10").expect("number");
        assert_eq!(a.0, "100.10");
        let b: MajorAmount = serde_json::from_str("\"100.00\"").expect("string");
        assert_eq!(b.0, "100.00");
    }

    #[test]
    fn output_has_exactly_the_currency_decimals() {
        let m = Money::from_minor(10_000, Currency::Twd).expect("positive");
        assert_eq!(m.major_string(), "100.00");
        assert_eq!(format_minor(5, Currency::Hkd), "0.05");
        assert_eq!(format_minor(-5, Currency::Hkd), "-0.05");
        assert_eq!(format_minor(700, Currency::Jpy), "700");
        #[derive(Serialize)]
        struct Out {
            #[serde(serialize_with = "ser")]
            amount: i64,
        }
        fn ser<S: Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
            serialize_minor(*v, Currency::Twd, s)
        }
        assert_eq!(
            serde_json::to_string(&Out { amount: 10_050 }).expect("json"),
            r#"{"amount":100.50}"#
        );
    }

    #[test]
    fn currency_codes_parse_case_insensitively() {
        assert_eq!("hkd".parse::<Currency>(), Ok(Currency::Hkd));
        assert!("XXX".parse::<Currency>().is_err());
    }

    proptest::proptest! {
        #[test]
        fn formatting_then_parsing_gives_back_the_same_minor_units(minor in 1_i64..=100_000_000, cur in 0usize..5) {
            let currency = Currency::ALL[cur];
            let text = format_minor(minor, currency);
            proptest::prop_assert_eq!(Money::parse_major(&text, currency, i64::MAX / 1000).map(Money::minor), Ok(minor));
        }
    }
}
