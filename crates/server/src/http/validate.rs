//! Field checks shared by the request parsers; each failure is a 422 `validation_failed` naming
//! the field.

use serde_json::json;

use super::error::ApiError;

/// 422 `validation_failed` for `field`.
pub fn failed(field: &str, message: &str) -> ApiError {
    ApiError::unprocessable("validation_failed", format!("{field}: {message}")).with_details(json!({ "field": field }))
}

/// Text of `min..=max` characters.
pub fn text(field: &str, v: &str, min: usize, max: usize) -> Result<(), ApiError> {
    let n = v.chars().count();
    if n < min || n > max {
        return Err(failed(field, &format!("must be {min}–{max} characters")));
    }
    if v.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(failed(field, "must not contain control characters"));
    }
    Ok(())
}

/// Optional text up to `max` characters; empty counts as absent.
pub fn opt_text(field: &str, v: Option<String>, max: usize) -> Result<Option<String>, ApiError> {
    match v.filter(|s| !s.is_empty()) {
        Some(s) => text(field, &s, 1, max).map(|()| Some(s)),
        None => Ok(None),
    }
}

/// An email address, loosely: something@something, no spaces, ≤ 254 characters.
pub fn email(v: Option<String>) -> Result<Option<String>, ApiError> {
    match v.filter(|s| !s.is_empty()) {
        Some(s) => {
            let ok = s.len() <= 254
                && !s.chars().any(char::is_whitespace)
                && s.split_once('@')
                    .is_some_and(|(a, d)| !a.is_empty() && d.contains('.') && !d.starts_with('.'));
            if ok {
                Ok(Some(s))
            } else {
                Err(failed("customerEmail", "must be an email address"))
            }
        }
        None => Ok(None),
    }
}

/// A phone number: digits, spaces, `+ - ( )`, 3–32 characters.
pub fn phone(v: Option<String>) -> Result<Option<String>, ApiError> {
    match v.filter(|s| !s.is_empty()) {
        Some(s) => {
            let ok = (3..=32).contains(&s.len())
                && s.chars().any(|c| c.is_ascii_digit())
                && s.chars().all(|c| c.is_ascii_digit() || " +-()".contains(c));
            if ok {
                Ok(Some(s))
            } else {
                Err(failed("customerPhone", "must be a phone number such as +852 1234 5678"))
            }
        }
        None => Ok(None),
    }
}

/// Metadata: a JSON object of at most 50 keys (each ≤ 40 characters), ≤ 8 KiB, kept as text.
pub fn metadata(v: Option<serde_json::Value>) -> Result<Option<String>, ApiError> {
    match v {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Object(map)) => {
            if map.len() > 50 || map.keys().any(|k| k.is_empty() || k.chars().count() > 40) {
                return Err(failed("metadata", "at most 50 keys of 1–40 characters"));
            }
            let text = serde_json::Value::Object(map).to_string();
            if text.len() > 8 * 1024 {
                return Err(failed("metadata", "at most 8 KiB"));
            }
            Ok(Some(text))
        }
        Some(_) => Err(failed("metadata", "must be an object")),
    }
}

/// An absolute http(s) URL of at most 2048 characters.
pub fn url(field: &str, v: Option<String>) -> Result<Option<String>, ApiError> {
    match v.filter(|s| !s.is_empty()) {
        Some(s) => {
            let ok = s.len() <= 2048
                && (s.starts_with("https://") || s.starts_with("http://"))
                && s.len() > 8
                && !s.chars().any(|c| c.is_whitespace() || c.is_control());
            if ok {
                Ok(Some(s))
            } else {
                Err(failed(field, "must be an absolute http(s) URL"))
            }
        }
        None => Ok(None),
    }
}

/// A `from` / `to` query bound as unix milliseconds: `YYYY-MM-DD` in the business time zone `tz`
/// (the start of that day, or of the next day when `end_of_day`, so a whole day is included), or
/// an RFC 3339 time.
pub fn time_bound(
    tz: chrono_tz::Tz,
    name: &str,
    value: Option<&String>,
    end_of_day: bool,
) -> Result<Option<i64>, ApiError> {
    use chrono::{DateTime, NaiveDate, TimeZone};
    let Some(v) = value else { return Ok(None) };
    if let Ok(d) = NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        let d = if end_of_day { d.succ_opt().unwrap_or(d) } else { d };
        let start = d
            .and_hms_opt(0, 0, 0)
            .and_then(|t| tz.from_local_datetime(&t).earliest());
        return start
            .map(|t| Some(t.timestamp_millis()))
            .ok_or_else(|| ApiError::bad_request(format!("{name}: no such local time")));
    }
    DateTime::parse_from_rfc3339(v)
        .map(|t| Some(t.timestamp_millis()))
        .map_err(|_| ApiError::bad_request(format!("{name} must be YYYY-MM-DD or an RFC 3339 time")))
}

/// A URL jinliu will call (a webhook endpoint, a provider's base URL): absolute http(s), at most
/// 2048 characters, no user name or password (they would be stored and shown in plain text),
/// https in live mode (422 `insecure_url` with `live_https`), and an IP literal only where the
/// address `policy` allows it (422 `url_not_allowed`). Names are checked at connect time.
pub fn outbound_url(
    field: &str,
    text: &str,
    livemode: bool,
    policy: crate::webhooks::guard::Policy,
    live_https: &'static str,
) -> Result<url::Url, ApiError> {
    let fail = |m: &str| failed(field, m);
    if text.is_empty() || text.len() > 2048 || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(fail("must be an absolute http(s) URL of at most 2048 characters"));
    }
    let url = url::Url::parse(text).map_err(|e| fail(&format!("not a URL ({e})")))?;
    match url.scheme() {
        "https" => {}
        "http" if !livemode => {}
        "http" => return Err(ApiError::unprocessable("insecure_url", live_https)),
        _ => return Err(fail("must start with http:// or https://")),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(fail("must name a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(fail("must not contain a user name or password"));
    }
    crate::webhooks::guard::check_url(&url, policy)
        .map_err(|why| ApiError::unprocessable("url_not_allowed", why).with_details(json!({ "field": field })))?;
    Ok(url)
}
