//! Status sync: the worker that rescues payments and refunds no notification settled.
//!
//! Every node runs it. Each tick it claims due jobs from the store's queue with a lease (so two
//! nodes never work on the same payment), asks the provider where each one stands, applies the
//! answer, and either finishes the job or gives it back with exponential backoff. A payment past
//! its expiry that the provider still shows open is cancelled there and expired here.

use chrono::Duration;
use jinliu_domain::{PaymentId, RefundId, RefundStatus};
use jinliu_providers::{ProviderError, ProviderStatus, RefundOutcome, RefundRequest};
use jinliu_store::{PaymentChange, StoreError, SyncJob, SyncKind};

use crate::service;
use crate::state::AppState;

/// How long a claimed job is ours before another node may take it.
const LEASE_MS: i64 = 120_000;
/// Jobs claimed per tick.
const BATCH: u64 = 32;
/// Longest wait between two queries of the same payment.
const MAX_BACKOFF_SECS: i64 = 600;

/// Runs until the task is aborted.
pub async fn run(app: AppState) {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(app.config.sync_interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let pass = jinliu_store::with_audit_context(jinliu_domain::AuditContext::system("status_sync"), run_once(&app));
        if let Err(e) = pass.await {
            tracing::warn!(error = %e, "status sync tick failed");
        }
    }
}

/// One pass: claims due jobs and works them. Returns how many were claimed.
pub async fn run_once(app: &AppState) -> Result<usize, StoreError> {
    let jobs = app
        .store
        .claim_sync_jobs(&app.node_id, app.clock.now(), LEASE_MS, BATCH)
        .await?;
    let n = jobs.len();
    for job in jobs {
        // The batch is worked one job at a time, and provider calls can be slow: renew each
        // job's lease just before its turn, and skip it if another node took it meanwhile.
        if !app
            .store
            .renew_sync_lease(&app.node_id, &job.object_id, app.clock.now(), LEASE_MS)
            .await?
        {
            continue;
        }
        let done = match job.kind {
            SyncKind::Payment => sync_payment(app, &job).await,
            SyncKind::Refund => sync_refund(app, &job).await,
        };
        match done {
            Ok(true) => app.store.finish_sync_job(&job.object_id).await?,
            Ok(false) => {
                let next = app.clock.now() + backoff(app, job.attempts);
                app.store
                    .reschedule_sync_job(&app.node_id, &job.object_id, next)
                    .await?;
            }
            Err(e) => {
                tracing::warn!(object = %job.object_id, error = %e, "status sync failed; retrying later");
                let next = app.clock.now() + backoff(app, job.attempts);
                app.store
                    .reschedule_sync_job(&app.node_id, &job.object_id, next)
                    .await?;
            }
        }
    }
    Ok(n)
}

/// Doubling from the configured delay (at least 5 s), capped at ten minutes.
fn backoff(app: &AppState, attempts: i64) -> Duration {
    let base = app.config.sync_after_secs.max(5);
    let exp = attempts.clamp(1, 10) - 1;
    Duration::seconds(base.saturating_mul(1 << exp).min(MAX_BACKOFF_SECS))
}

/// Whether the job is finished.
async fn sync_payment(app: &AppState, job: &SyncJob) -> Result<bool, String> {
    let Some(id) = PaymentId::parse(&job.object_id) else {
        return Ok(true);
    };
    let Some(payment) = app.store.payment_unscoped(&id).await.map_err(|e| e.to_string())? else {
        return Ok(true);
    };
    if !payment.status.is_open() {
        return Ok(true);
    }
    let (Some(provider), Some(reference)) = (
        service::adapter_of(app, &payment).await,
        payment.provider_reference.clone(),
    ) else {
        tracing::warn!(payment = %payment.id, account = %payment.provider_account, "no adapter for the payment's account; sync stops");
        return Ok(true);
    };
    let status = match provider.query_payment(&reference).await {
        Ok(s) => service::capture_if_authorized(provider.as_ref(), &payment, s)
            .await
            .map_err(|e| e.message)?,
        // Never created there (a form the customer never posted): nothing can be paid.
        Err(ProviderError::NotFound) => ProviderStatus::Pending,
        Err(e) => return Err(e.to_string()),
    };
    if status.is_final() {
        service::apply_status(app, &payment, status, None)
            .await
            .map_err(|e| e.message)?;
        return Ok(true);
    }
    if app.clock.now() < payment.expires_at {
        // Still open and not yet expired: apply "processing" if the customer started, ask later.
        service::apply_status(app, &payment, status, None)
            .await
            .map_err(|e| e.message)?;
        return Ok(false);
    }
    // Past its expiry and still open at the provider: close it there first, so the customer can
    // no longer pay, then expire it here. A refusal means it moved meanwhile: ask again later.
    match provider.cancel(&reference).await {
        Ok(()) | Err(ProviderError::NotFound) => {}
        Err(e) => return Err(e.to_string()),
    }
    match app
        .store
        .change_payment(None, &payment.id, PaymentChange::Expire, app.clock.now(), None)
        .await
    {
        Ok(_) | Err(StoreError::Transition(_)) => Ok(true),
        Err(e) => Err(e.to_string()),
    }
}

/// Whether the job is finished.
async fn sync_refund(app: &AppState, job: &SyncJob) -> Result<bool, String> {
    let Some(id) = RefundId::parse(&job.object_id) else {
        return Ok(true);
    };
    let Some(refund) = app.store.refund_unscoped(&id).await.map_err(|e| e.to_string())? else {
        return Ok(true);
    };
    if refund.status != RefundStatus::Pending {
        return Ok(true);
    }
    let Some(payment) = app
        .store
        .payment_unscoped(&refund.payment_id)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(true);
    };
    let (Some(provider), Some(reference)) = (
        service::adapter_of(app, &payment).await,
        payment.provider_reference.clone(),
    ) else {
        return Ok(true);
    };
    let req = RefundRequest {
        payment_reference: reference,
        method: payment.method.clone(),
        payment_amount: payment.amount,
        refund_id: refund.id.clone(),
        amount: refund.amount,
        reason: refund.reason.clone(),
    };
    // Re-send only when the provider deduplicates on the refund id, or when its refunded total
    // shows this refund did not happen: a refund whose answer was lost must never run twice.
    if !provider.refund_is_idempotent() {
        let total = provider
            .refunded_total(&req.payment_reference)
            .await
            .map_err(|e| e.to_string())?;
        if total >= payment.refunded_minor + refund.amount.minor() {
            return settle(app, &refund.id, Ok(None)).await;
        }
    }
    let outcome = provider.refund(&req).await;
    let outcome = match outcome {
        Ok(RefundOutcome::Succeeded(r)) => Ok(r),
        Ok(RefundOutcome::Failed(reason)) | Err(ProviderError::Refused(reason)) => Err(reason),
        Ok(RefundOutcome::Pending(_)) => return Ok(false),
        Err(e) => return Err(e.to_string()),
    };
    settle(app, &refund.id, outcome).await
}

async fn settle(app: &AppState, id: &RefundId, outcome: Result<Option<String>, String>) -> Result<bool, String> {
    match app.store.settle_refund(id, outcome, app.clock.now(), None).await {
        Ok(_) | Err(StoreError::Transition(_)) => Ok(true),
        Err(e) => Err(e.to_string()),
    }
}
