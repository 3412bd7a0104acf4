//! The delivery worker: claims due messages with a lease, signs and POSTs each one, records the
//! attempt and schedules the next.
//!
//! The body is the stored payload, byte for byte, on every attempt; `webhook-id` is the message
//! id (the same on every retry) and `webhook-timestamp` this attempt's time, so each attempt has
//! its own signature. Only a 2xx succeeds; a 410 disables the endpoint; anything else (3xx
//! included: redirects are never followed) is retried on the schedule in `domain::webhook`,
//! later if the receiver's `Retry-After` asks for it.

use std::time::Instant;

use chrono::Duration;
use futures::StreamExt;
use jinliu_domain::AttemptId;
use jinliu_domain::webhook::{EndpointStatus, WebhookAttempt, WebhookEndpoint, WebhookMessage, next_delay};
use jinliu_store::{Delivery, StoreError};
use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};

use super::{endpoints, guard, sign};
use crate::state::AppState;

/// Messages claimed per round.
pub const BATCH: u64 = 64;
/// Messages sent at once by one node: a slow endpoint must not hold up the others.
const CONCURRENCY: usize = 16;
/// The first 20 kB of an answer's body are kept in the attempts log.
pub const MAX_LOGGED_BODY: usize = 20 * 1024;

/// Claims due messages and attempts each; returns how many were claimed.
pub async fn run_once(app: &AppState) -> Result<usize, StoreError> {
    let lease_ms = lease_ms(app);
    // Each claim has its own owner name, so the store can read back exactly this claim.
    let owner = format!("{}#{:012x}", app.node_id, rand::random::<u64>() & 0xffff_ffff_ffff);
    let claimed = app
        .store
        .claim_webhook_messages(&owner, app.clock.now(), lease_ms, BATCH)
        .await?;
    let n = claimed.len();
    let (owner, claimed_at) = (owner.as_str(), Instant::now());
    futures::stream::iter(claimed)
        .for_each_concurrent(CONCURRENCY, |m| async move {
            if let Err(e) = attempt(app, owner, claimed_at, m).await {
                tracing::warn!(error = %e, "could not record a webhook attempt; the message is retried when its lease ends");
            }
        })
        .await;
    Ok(n)
}

/// Long enough for the whole call and the write after it.
fn lease_ms(app: &AppState) -> i64 {
    i64::try_from(app.webhooks.timeout().as_millis()).unwrap_or(60_000) + 30_000
}

/// What came back from the endpoint.
struct Answer {
    status: u16,
    body: String,
    retry_after: Option<Duration>,
}

async fn attempt(app: &AppState, owner: &str, claimed_at: Instant, m: WebhookMessage) -> Result<(), StoreError> {
    let store = &app.store;
    // A message that waited behind slow ones gets its lease renewed before it is sent (and is
    // left alone if another node took it meanwhile); a fresh claim needs no extra write.
    let lease = lease_ms(app);
    if i64::try_from(claimed_at.elapsed().as_millis()).unwrap_or(i64::MAX) > lease / 3
        && !store.renew_webhook_lease(owner, &m.id, app.clock.now(), lease).await?
    {
        return Ok(());
    }
    let ep = match store.webhook_endpoint_unscoped(&m.endpoint_id).await? {
        Some(ep) if ep.status != EndpointStatus::Disabled => ep,
        // Disabled; or deleted meanwhile, when its messages went with it except one made by a
        // batch that read the endpoint just before the deletion committed, which would otherwise
        // be claimed again at every lease's end. Given up without an attempt.
        _ => return store.abandon_webhook_message(owner, &m.id, app.clock.now()).await,
    };
    let at = app.clock.now();
    let started = Instant::now();
    let answer = send(app, &ep, &m, at.timestamp()).await;
    let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let series = m.series_attempts + 1;
    let (delivery, status_code, body, error) = match answer {
        Ok(a) if (200..300).contains(&a.status) => (Delivery::Succeeded, Some(a.status), Some(a.body), None),
        Ok(a) if a.status == 410 => (
            Delivery::Failed {
                retry_at: None,
                disable: Some("the endpoint answered 410 Gone".into()),
            },
            Some(a.status),
            Some(a.body),
            None,
        ),
        Ok(a) => (
            Delivery::Failed {
                retry_at: retry_at(at, series, a.retry_after),
                disable: None,
            },
            Some(a.status),
            Some(a.body),
            None,
        ),
        Err(why) => (
            Delivery::Failed {
                retry_at: retry_at(at, series, None),
                disable: None,
            },
            None,
            None,
            Some(why),
        ),
    };
    let outcome = match &delivery {
        Delivery::Succeeded => "succeeded",
        Delivery::Failed { .. } => "failed",
    };
    metrics::counter!("jinliu_webhook_attempts_total", "outcome" => outcome).increment(1);
    tracing::info!(message = %m.id, endpoint = %ep.id, event = %m.event_id, status = ?status_code, outcome, duration_ms, "webhook attempt");
    let attempt = WebhookAttempt {
        id: AttemptId::generate(),
        message_id: m.id.clone(),
        attempted_at: at,
        status_code: status_code.map(i32::from),
        duration_ms,
        response_body: body,
        error,
        succeeded: delivery == Delivery::Succeeded,
        next_attempt_at: match &delivery {
            Delivery::Failed { retry_at, .. } => *retry_at,
            Delivery::Succeeded => None,
        },
    };
    if let Some(reason) = store.record_webhook_attempt(owner, &ep.id, attempt, delivery).await? {
        // The merchant hears of it through a `webhook_endpoint.disabled` event (written with the
        // change) on its other endpoints, and the operator through this line.
        tracing::warn!(endpoint = %ep.id, merchant = %ep.merchant_id, reason, "webhook endpoint disabled");
    }
    Ok(())
}

fn retry_at(
    at: jinliu_domain::Timestamp,
    series_attempts: i64,
    retry_after: Option<Duration>,
) -> Option<jinliu_domain::Timestamp> {
    let jitter = rand::random::<f64>() * 2.0 - 1.0;
    next_delay(series_attempts, jitter, retry_after).map(|d| at + d)
}

/// Signs and POSTs the message; `Err` says why no answer came.
async fn send(app: &AppState, ep: &WebhookEndpoint, m: &WebhookMessage, timestamp: i64) -> Result<Answer, String> {
    let url = url::Url::parse(&ep.url).map_err(|e| format!("the endpoint URL does not parse: {e}"))?;
    // IP literals never reach the resolver: check them here, every time (the policy may have
    // changed since the endpoint was saved).
    guard::check_url(&url, app.webhooks.policy(ep.livemode))?;
    crate::keyring::ensure_known(
        app,
        std::iter::once(ep.secret_sealed.as_str()).chain(ep.previous_secret_sealed.as_deref()),
    )
    .await;
    let keys = endpoints::signing_keys(&app.sealer, ep, app.clock.now())?;
    let body = m.payload.as_bytes();
    let resp = app
        .webhooks
        .client(ep.livemode)
        .post(url)
        .header("webhook-id", m.id.as_str())
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", sign::header(&keys, m.id.as_str(), timestamp, body))
        .header(CONTENT_TYPE, "application/json")
        .body(m.payload.clone())
        .send()
        .await
        .map_err(|e| describe(&e, app))?;
    let status = resp.status().as_u16();
    let retry_after = parse_retry_after(resp.headers(), app.clock.now());
    Ok(Answer {
        status,
        body: read_capped(resp).await,
        retry_after,
    })
}

/// The first [`MAX_LOGGED_BODY`] bytes of the body; the rest is not read.
async fn read_capped(mut resp: reqwest::Response) -> String {
    let mut buf: Vec<u8> = Vec::new();
    while buf.len() < MAX_LOGGED_BODY {
        match resp.chunk().await {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk),
            // End of body, or it broke off / timed out: keep what arrived.
            Ok(None) | Err(_) => break,
        }
    }
    buf.truncate(MAX_LOGGED_BODY);
    String::from_utf8_lossy(&buf).into_owned()
}

/// `Retry-After` as seconds or an HTTP date.
fn parse_retry_after(headers: &HeaderMap, now: jinliu_domain::Timestamp) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<i64>() {
        return (secs >= 0).then(|| Duration::seconds(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let d = at.with_timezone(&chrono::Utc) - now;
    (d > Duration::zero()).then_some(d)
}

/// A transport failure in words, with its causes (the resolver's refusal among them).
fn describe(e: &reqwest::Error, app: &AppState) -> String {
    if e.is_timeout() {
        return format!("no answer within {} ms", app.webhooks.timeout().as_millis());
    }
    let mut parts = vec![e.to_string()];
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_as_seconds_or_an_http_date() {
        let now = chrono::DateTime::parse_from_rfc3339("2015-10-21T07:27:00Z")
            .map(|t| t.with_timezone(&chrono::Utc))
            .unwrap_or_default();
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "120".parse().unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(parse_retry_after(&h, now), Some(Duration::seconds(120)));
        h.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT"
                .parse()
                .unwrap_or_else(|e| panic!("{e}")),
        );
        assert_eq!(parse_retry_after(&h, now), Some(Duration::seconds(60)));
        h.insert(RETRY_AFTER, "soon".parse().unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(parse_retry_after(&h, now), None);
    }
}
