//! Calls to a provider: per-call timeout, retries with exponential backoff and full jitter for
//! calls that are safe to repeat, a circuit breaker per provider account, and a timing metric
//! (`jinliu_provider_request_seconds{provider, op, outcome}`) plus a log line for every call.
//!
//! What is "safe to repeat" is the adapter's decision, passed per call as [`Retry`]: queries
//! always are; creates are when the provider deduplicates on the reference jinliu sends; refunds
//! only when the provider deduplicates on jinliu's refund id (otherwise the caller checks the
//! refunded total first — see [`refund_safely`]).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;

use crate::{PaymentProvider, ProviderError, RefundOutcome, RefundRequest};

/// Timeouts, retries and the circuit breaker for one provider account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallPolicy {
    /// Whole-call timeout (connect + answer).
    pub timeout: Duration,
    /// Attempts for a repeatable call, the first included.
    pub max_attempts: u32,
    /// First backoff; doubles per attempt, capped at `backoff_max`, then full jitter.
    pub backoff_base: Duration,
    /// Largest backoff.
    pub backoff_max: Duration,
    /// Consecutive failures (unreachable, timeout, 5xx) that open the breaker.
    pub breaker_failures: u32,
    /// How long an open breaker refuses calls before letting one trial through.
    pub breaker_cooldown: Duration,
}

impl Default for CallPolicy {
    fn default() -> Self {
        CallPolicy {
            timeout: Duration::from_secs(10),
            max_attempts: 3,
            backoff_base: Duration::from_millis(200),
            backoff_max: Duration::from_secs(5),
            breaker_failures: 5,
            breaker_cooldown: Duration::from_secs(30),
        }
    }
}

/// Whether a call may be sent again after a failure whose outcome is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Repeating it cannot do anything twice.
    Safe,
    /// One attempt only.
    Never,
}

/// A provider's answer that arrived (any status below 500).
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The raw body.
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A shared resolver as reqwest wants it (a sized type).
struct SharedResolver(Arc<dyn reqwest::dns::Resolve>);

impl reqwest::dns::Resolve for SharedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        self.0.resolve(name)
    }
}

#[derive(Debug, Default)]
struct Breaker {
    consecutive_failures: u32,
    open_until: Option<Instant>,
}

/// The HTTP client of one provider account.
#[derive(Debug)]
pub struct Outbound {
    provider: String,
    /// The account the calls are made for (in log lines; the metric keeps the provider only, so
    /// its label set stays small).
    account: String,
    policy: CallPolicy,
    http: reqwest::Client,
    breaker: Mutex<Breaker>,
}

impl Outbound {
    /// A client for `provider` with `policy`.
    pub fn new(provider: impl Into<String>, policy: CallPolicy) -> Outbound {
        Outbound::with_resolver(provider, policy, None)
    }

    /// A client for `provider` with `policy` that resolves names through `resolver` when given.
    pub fn with_resolver(
        provider: impl Into<String>,
        policy: CallPolicy,
        resolver: Option<Arc<dyn reqwest::dns::Resolve>>,
    ) -> Outbound {
        let mut builder = reqwest::Client::builder()
            .timeout(policy.timeout)
            .connect_timeout(policy.timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("jinliu/", env!("CARGO_PKG_VERSION")));
        if let Some(r) = resolver {
            builder = builder.dns_resolver(Arc::new(SharedResolver(r)));
        }
        let http = builder
            .build()
            // Building fails only when the TLS backend cannot initialise; the default client then
            // still serves plain-HTTP sandboxes and fails loudly on HTTPS.
            .unwrap_or_else(|_| reqwest::Client::new());
        Outbound {
            provider: provider.into(),
            account: String::new(),
            policy,
            http,
            breaker: Mutex::new(Breaker::default()),
        }
    }

    /// Names the account in this client's log lines.
    pub fn for_account(mut self, account: impl Into<String>) -> Outbound {
        self.account = account.into();
        self
    }

    /// The policy in force.
    pub fn policy(&self) -> &CallPolicy {
        &self.policy
    }

    /// Sends the request `make` builds (again for each attempt). Answers below 500 are returned
    /// for the adapter to read; unreachable, timed out and 5xx answers are failures, retried
    /// when `retry` is [`Retry::Safe`], and reported as [`ProviderError::Unavailable`].
    pub async fn call<F>(&self, op: &'static str, retry: Retry, make: F) -> Result<Reply, ProviderError>
    where
        F: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    {
        let attempts = match retry {
            Retry::Safe => self.policy.max_attempts.max(1),
            Retry::Never => 1,
        };
        let mut last = String::new();
        for attempt in 1..=attempts {
            if attempt > 1 {
                tokio::time::sleep(self.backoff(attempt - 1)).await;
            }
            if let Err(e) = self.admit() {
                self.record(op, "circuit_open", Duration::ZERO);
                return Err(e);
            }
            let started = Instant::now();
            let result = match make(&self.http).send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    match resp.bytes().await {
                        Ok(body) if status < 500 => Ok(Reply {
                            status,
                            body: body.to_vec(),
                        }),
                        Ok(_) => Err(format!("HTTP {status}")),
                        Err(e) => Err(describe(&e)),
                    }
                }
                Err(e) => Err(describe(&e)),
            };
            let elapsed = started.elapsed();
            match result {
                Ok(reply) => {
                    self.succeeded();
                    self.record(op, "ok", elapsed);
                    tracing::debug!(provider = %self.provider, account = %self.account, op, status = reply.status, ms = elapsed.as_millis() as u64, "provider call");
                    return Ok(reply);
                }
                Err(reason) => {
                    self.failed();
                    self.record(op, "error", elapsed);
                    tracing::warn!(provider = %self.provider, account = %self.account, op, attempt, %reason, ms = elapsed.as_millis() as u64, "provider call failed");
                    last = reason;
                }
            }
        }
        Err(ProviderError::Unavailable(last))
    }

    /// Full jitter: a uniform wait in [0, min(max, base·2ⁿ⁻¹)].
    fn backoff(&self, retry: u32) -> Duration {
        let exp = self
            .policy
            .backoff_base
            .saturating_mul(2_u32.saturating_pow(retry.saturating_sub(1)))
            .min(self.policy.backoff_max);
        let ceiling = exp.as_millis() as u64;
        Duration::from_millis(rand::rng().random_range(0..=ceiling))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Breaker> {
        // The breaker is two counters; a panic elsewhere cannot leave them inconsistent.
        self.breaker.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn admit(&self) -> Result<(), ProviderError> {
        let mut b = self.lock();
        match b.open_until {
            Some(until) if Instant::now() < until => Err(ProviderError::Unavailable(format!(
                "circuit open for {} after {} consecutive failures",
                self.provider, b.consecutive_failures
            ))),
            Some(_) => {
                // Half-open: this call is the trial; others keep failing fast until it returns.
                b.open_until = Some(Instant::now() + self.policy.breaker_cooldown);
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn succeeded(&self) {
        let mut b = self.lock();
        b.consecutive_failures = 0;
        b.open_until = None;
    }

    fn failed(&self) {
        let mut b = self.lock();
        b.consecutive_failures = b.consecutive_failures.saturating_add(1);
        if b.consecutive_failures >= self.policy.breaker_failures {
            b.open_until = Some(Instant::now() + self.policy.breaker_cooldown);
        }
    }

    fn record(&self, op: &'static str, outcome: &'static str, elapsed: Duration) {
        metrics::histogram!(
            "jinliu_provider_request_seconds",
            "provider" => self.provider.clone(),
            "op" => op,
            "outcome" => outcome
        )
        .record(elapsed.as_secs_f64());
    }
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "could not connect".into()
    } else {
        e.to_string()
    }
}

/// Refunds through `provider` so that a lost answer can never refund twice.
///
/// `refunded_before` is what jinliu knows the provider had refunded before this refund. When the
/// outcome of an attempt is unknown (timeout, 5xx), a provider that deduplicates on the refund id
/// is simply asked again; for any other, the refunded total is queried first, and a total that
/// already includes this refund counts as success instead of a second request.
pub async fn refund_safely(
    provider: &dyn PaymentProvider,
    req: &RefundRequest,
    refunded_before: i64,
    policy: &CallPolicy,
) -> Result<RefundOutcome, ProviderError> {
    let attempts = policy.max_attempts.max(1);
    let mut last = ProviderError::Unavailable("no attempt".into());
    for attempt in 1..=attempts {
        if attempt > 1 {
            if !provider.refund_is_idempotent() {
                match provider.refunded_total(&req.payment_reference).await {
                    Ok(total) if total >= refunded_before + req.amount.minor() => {
                        return Ok(RefundOutcome::Succeeded(None));
                    }
                    Ok(_) => {}
                    // Without the total a retry could refund twice: leave the outcome unknown.
                    Err(e) => return Err(e),
                }
            }
            let wait = policy
                .backoff_base
                .saturating_mul(2_u32.saturating_pow(attempt - 2))
                .min(policy.backoff_max);
            // Drawn before the await: the thread-local generator must not live across it.
            let jitter = rand::rng().random_range(0..=wait.as_millis() as u64);
            tokio::time::sleep(Duration::from_millis(jitter)).await;
        }
        match provider.refund(req).await {
            Err(e @ ProviderError::Unavailable(_)) => last = e,
            other => return other,
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> CallPolicy {
        CallPolicy {
            timeout: Duration::from_millis(200),
            max_attempts: 2,
            backoff_base: Duration::from_millis(1),
            backoff_max: Duration::from_millis(2),
            breaker_failures: 2,
            breaker_cooldown: Duration::from_secs(60),
        }
    }

    #[tokio::test]
    async fn the_breaker_opens_after_consecutive_failures_and_then_fails_fast() {
        // Port 9 on 127.0.0.1 (discard) refuses connections here: a quick, real failure.
        let out = Outbound::new("demo", policy());
        let url = "http://127.0.0.1:9/";
        let first = out.call("query", Retry::Safe, |c| c.get(url)).await;
        assert!(
            matches!(first, Err(ProviderError::Unavailable(ref m)) if m.contains("connect")),
            "{first:?}"
        );
        let second = out.call("query", Retry::Never, |c| c.get(url)).await;
        assert!(
            matches!(second, Err(ProviderError::Unavailable(ref m)) if m.contains("circuit open")),
            "{second:?}"
        );
    }

    #[test]
    fn backoff_never_exceeds_the_cap() {
        let out = Outbound::new("demo", policy());
        for n in 1..40 {
            assert!(out.backoff(n) <= Duration::from_millis(2));
        }
    }
}
