//! Merchant webhooks: endpoints, messages and attempts, which events an endpoint hears, the retry
//! schedule and when an endpoint is given up on.
//!
//! Only the rules live here. Signing, the HTTP call and the address guard are the server's; the
//! rows are the store's. A secret appears here only sealed (encrypted by the server), so nothing in
//! this module can leak one.

use chrono::Duration;
use serde::Serialize;

use crate::event::{EventDraft, EventType};
use crate::{EndpointId, MerchantId, Timestamp};

/// Most endpoints one merchant may have in one mode: every event is copied once per endpoint, so
/// the fan-out stays bounded.
pub const MAX_ENDPOINTS: usize = 16;

/// Waits before the 2nd … 8th attempt (the 1st is immediate): 5 s, 5 min, 30 min, 2 h, 5 h, 10 h,
/// 10 h — the Standard Webhooks / Svix schedule, about 28 hours in all.
pub const RETRY_DELAYS_SECS: [i64; 7] = [5, 300, 1_800, 7_200, 18_000, 36_000, 36_000];

/// Each wait is stretched or shrunk by up to this fraction, so endpoints that failed together
/// (an outage) are not all retried in the same second.
pub const JITTER: f64 = 0.2;

/// The longest `Retry-After` jinliu honours: the schedule's own longest step. A receiver cannot
/// park a message for longer than that.
pub const MAX_RETRY_AFTER_SECS: i64 = 36_000;

/// An endpoint that has failed without a single success for this long is disabled.
pub const DISABLE_AFTER_DAYS: i64 = 5;

/// How long the previous secret keeps signing after a rotation.
pub const ROTATION_OVERLAP_HOURS: i64 = 24;

/// Whether jinliu sends to an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointStatus {
    /// Messages are sent.
    Enabled,
    /// Nothing is sent (by the merchant's choice, after a 410, or after five days of failures).
    Disabled,
}

impl EndpointStatus {
    /// As stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointStatus::Enabled => "enabled",
            EndpointStatus::Disabled => "disabled",
        }
    }

    /// Reads the stored word.
    pub fn parse(s: &str) -> Option<EndpointStatus> {
        match s {
            "enabled" => Some(EndpointStatus::Enabled),
            "disabled" => Some(EndpointStatus::Disabled),
            _ => None,
        }
    }
}

/// A merchant's webhook endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    /// `ep_…`
    pub id: EndpointId,
    /// Its merchant.
    pub merchant_id: MerchantId,
    /// Live or test events.
    pub livemode: bool,
    /// Where messages are POSTed.
    pub url: String,
    /// The merchant's note.
    pub description: Option<String>,
    /// The event types it hears; `None` means every type.
    pub events: Option<Vec<EventType>>,
    /// Enabled or disabled.
    pub status: EndpointStatus,
    /// Why it was disabled (by jinliu or by the merchant).
    pub disabled_reason: Option<String>,
    /// Start of the current run of failures; cleared by any success.
    pub failing_since: Option<Timestamp>,
    /// The signing secret, sealed by the server (never the plain text).
    pub secret_sealed: String,
    /// The previous secret after a rotation, sealed, while it still signs.
    pub previous_secret_sealed: Option<String>,
    /// Until when the previous secret signs.
    pub previous_secret_until: Option<Timestamp>,
    /// Increases on every change.
    pub version: i64,
    /// Events created before this are never sent to it.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

impl WebhookEndpoint {
    /// Whether an event of `event_type` is for this endpoint.
    pub fn hears(&self, event_type: &str) -> bool {
        match &self.events {
            None => true,
            Some(list) => list.iter().any(|t| t.as_str() == event_type),
        }
    }

    /// Whether the previous secret still signs at `now`.
    pub fn previous_secret_active(&self, now: Timestamp) -> bool {
        self.previous_secret_sealed.is_some() && self.previous_secret_until.is_some_and(|t| now < t)
    }
}

/// Where a message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    /// Waiting for its next attempt.
    Pending,
    /// An attempt got a 2xx.
    Succeeded,
    /// Given up: the schedule ran out, or the endpoint was disabled. A resend or a recovery can
    /// queue it again.
    Failed,
}

impl MessageStatus {
    /// As stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Pending => "pending",
            MessageStatus::Succeeded => "succeeded",
            MessageStatus::Failed => "failed",
        }
    }

    /// Reads the stored word.
    pub fn parse(s: &str) -> Option<MessageStatus> {
        match s {
            "pending" => Some(MessageStatus::Pending),
            "succeeded" => Some(MessageStatus::Succeeded),
            "failed" => Some(MessageStatus::Failed),
            _ => None,
        }
    }
}

/// One event for one endpoint. The payload is the event's, byte for byte, on every attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookMessage {
    /// `msg_…`, sent as `webhook-id`.
    pub id: crate::MessageId,
    /// The endpoint.
    pub endpoint_id: EndpointId,
    /// The event (`evt_…`).
    pub event_id: String,
    /// Its type.
    pub event_type: String,
    /// The body, as rendered when the event was created.
    pub payload: String,
    /// Where it stands.
    pub status: MessageStatus,
    /// Attempts made so far (a resend starts a new series but keeps counting here).
    pub attempts: i64,
    /// Attempts in the current series: what the retry schedule counts.
    pub series_attempts: i64,
    /// When the next attempt is due (pending messages only).
    pub next_attempt_at: Option<Timestamp>,
    /// When the message was made.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookAttempt {
    /// `att_…`
    pub id: crate::AttemptId,
    /// The message.
    pub message_id: crate::MessageId,
    /// When it was sent.
    pub attempted_at: Timestamp,
    /// The HTTP status, when an answer came.
    pub status_code: Option<i32>,
    /// From sending to the end of the answer (or the failure).
    pub duration_ms: i64,
    /// The first 20 kB of the answer's body.
    pub response_body: Option<String>,
    /// What went wrong when no answer came (timeout, refused address, connection error).
    pub error: Option<String>,
    /// Whether it succeeded (2xx).
    pub succeeded: bool,
    /// When the next attempt was scheduled, if any.
    pub next_attempt_at: Option<Timestamp>,
}

/// The wait before the next attempt after `series_attempts` failed attempts (1 after the first
/// try), or `None` when the schedule is exhausted. `jitter` in `[-1, 1]` picks the point within
/// ±20 %; `retry_after` is the receiver's `Retry-After`, honoured (up to
/// [`MAX_RETRY_AFTER_SECS`]) when it asks for a longer wait than the schedule.
pub fn next_delay(series_attempts: i64, jitter: f64, retry_after: Option<Duration>) -> Option<Duration> {
    let idx = usize::try_from(series_attempts.checked_sub(1)?).ok()?;
    let base_ms = RETRY_DELAYS_SECS.get(idx)? * 1000;
    let factor = 1.0 + JITTER * jitter.clamp(-1.0, 1.0);
    // The product stays far below i64::MAX (36e6 ms × 1.2).
    let scheduled = Duration::milliseconds((base_ms as f64 * factor).round() as i64);
    let asked = retry_after.map(|d| d.min(Duration::seconds(MAX_RETRY_AFTER_SECS)));
    Some(match asked {
        Some(a) if a > scheduled => a,
        _ => scheduled,
    })
}

/// Whether an endpoint failing since `failing_since` has failed long enough to be disabled.
pub fn failing_too_long(failing_since: Option<Timestamp>, now: Timestamp) -> bool {
    failing_since.is_some_and(|t| now - t >= Duration::days(DISABLE_AFTER_DAYS))
}

/// The `webhook_endpoint.disabled` event: thin, like every event (no URL query strings, no
/// secrets): which endpoint, why, and when.
pub fn endpoint_disabled_event(endpoint: &WebhookEndpoint, reason: &str, now: Timestamp) -> EventDraft {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Data<'a> {
        endpoint_id: &'a EndpointId,
        status: &'static str,
        reason: &'a str,
        disabled_at: String,
        version: i64,
    }
    EventDraft::new(
        EventType::WebhookEndpointDisabled,
        endpoint.id.as_str(),
        endpoint.version + 1,
        &Data {
            endpoint_id: &endpoint.id,
            status: EndpointStatus::Disabled.as_str(),
            reason,
            disabled_at: crate::format_time(now),
            version: endpoint.version + 1,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_is_five_seconds_then_minutes_then_hours_and_ends_after_eight_attempts() {
        let secs = |n| next_delay(n, 0.0, None).map(|d| d.num_seconds());
        assert_eq!(secs(0), None, "no wait before the first attempt is asked for");
        let waits: Vec<_> = (1..=7).map(|n| secs(n).unwrap_or(-1)).collect();
        assert_eq!(waits, [5, 300, 1_800, 7_200, 18_000, 36_000, 36_000]);
        assert_eq!(secs(8), None, "the 8th failure is the last");
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        let ms = |j| next_delay(2, j, None).map(|d| d.num_milliseconds()).unwrap_or(0);
        assert_eq!(ms(-1.0), 240_000);
        assert_eq!(ms(1.0), 360_000);
        assert_eq!(ms(5.0), 360_000, "clamped");
    }

    #[test]
    fn a_longer_retry_after_wins_but_is_bounded() {
        let d = |ra| next_delay(1, 0.0, Some(Duration::seconds(ra))).map(|d| d.num_seconds());
        assert_eq!(d(60), Some(60));
        assert_eq!(d(1), Some(5), "a shorter Retry-After does not shorten the schedule");
        assert_eq!(d(10 * 86_400), Some(MAX_RETRY_AFTER_SECS));
    }

    #[test]
    fn an_endpoint_is_given_up_after_five_days_of_failures() {
        let now = chrono::Utc::now();
        assert!(!failing_too_long(None, now));
        assert!(!failing_too_long(
            Some(now - Duration::days(5) + Duration::seconds(1)),
            now
        ));
        assert!(failing_too_long(Some(now - Duration::days(5)), now));
    }

    #[test]
    fn every_event_type_parses_back_from_its_name() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
        assert_eq!(EventType::parse("payment.paid"), None);
    }
}
