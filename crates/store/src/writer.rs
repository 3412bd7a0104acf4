//! The group-commit writer.
//!
//! Every unit of work is queued here. A writer task takes whatever is queued (up to
//! `max_batch`), opens one transaction, runs each unit in its own savepoint, commits once and
//! then answers every caller. Under load this turns N fsyncs into one, which is what lets a
//! durable (`synchronous=FULL`) SQLite take thousands of payments a second; with a single request
//! in the queue it is an ordinary transaction with no added wait (there is no timer).
//!
//! Callers are answered only after the commit, so nobody ever sees a success that a crash could
//! take back. A unit that fails is rolled back to its savepoint and does not affect the others.
//!
//! After a commit the writer publishes the outbox rows (`events`) of the units that succeeded on
//! a broadcast channel ([`crate::Store::subscribe_events`]). Each unit gets its own
//! [`EventSink`], passed to it explicitly beside its savepoint: the outbox insert records what it
//! wrote there, and the writer — which alone knows whether the savepoint was released and the
//! batch committed — keeps the sink of a released savepoint and publishes it only after the
//! commit. A retried attempt starts with a fresh sink, and a unit rolled back to its savepoint or
//! a batch whose commit failed publishes nothing. The sink is an argument rather than a task-local
//! or a shared map so that a unit cannot write events the writer does not see, and no state lives
//! outside the writer.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::FutureExt;
use sea_orm::{
    AccessMode, DatabaseConnection, DatabaseTransaction, IsolationLevel, SqliteTransactionMode, TransactionOptions,
    TransactionTrait,
};
use tokio::sync::{Mutex, broadcast, mpsc, oneshot};

use crate::audit::AuditSpec;
use crate::idempotency::{self, IdemRequest};
use crate::{Backend, OutboxEvent, StoreError};

/// The future a unit of work returns; it borrows the savepoint it runs in and its event sink.
pub(crate) type TxFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A unit of work: may run more than once (after a conflict), always in a fresh savepoint with a
/// fresh [`EventSink`].
pub(crate) type Work<T> = Box<dyn for<'a> Fn(&'a DatabaseTransaction, &'a EventSink) -> TxFuture<'a, T> + Send + Sync>;

/// Helps type inference turn a closure into a [`Work`].
pub(crate) fn work<T, F>(f: F) -> Work<T>
where
    F: for<'a> Fn(&'a DatabaseTransaction, &'a EventSink) -> TxFuture<'a, T> + Send + Sync + 'static,
{
    Box::new(f)
}

/// The outbox rows one attempt of a unit of work wrote, in order. Filled by
/// `persist::insert_events`; read by the writer after the commit. Write events only on the
/// unit's own savepoint (not on a nested savepoint the unit may roll back on its own), since the
/// sink records what the unit wrote, not what survived inside it.
#[derive(Debug, Default)]
pub(crate) struct EventSink(std::sync::Mutex<Vec<OutboxEvent>>);

impl EventSink {
    pub(crate) fn record(&self, events: impl IntoIterator<Item = OutboxEvent>) {
        // Never held across an await; a poisoned lock still holds valid rows.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend(events);
    }

    fn take(&self) -> Vec<OutboxEvent> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

/// How many committed events a slow subscriber may fall behind before it is told it lagged
/// (`RecvError::Lagged`) and must catch up from the database.
pub const EVENT_FEED_CAPACITY: usize = 4096;

/// How many times a unit of work is retried after a concurrency conflict before giving up.
const MAX_ATTEMPTS: usize = 5;

#[async_trait::async_trait]
trait Job: Send {
    async fn run(&mut self, txn: &DatabaseTransaction);
    /// The database rolled back the whole transaction while this unit ran.
    fn aborted_transaction(&self) -> bool;
    /// The events of the unit's released savepoint, if it succeeded (asked only after a commit).
    fn take_events(&mut self) -> Vec<OutboxEvent>;
    fn finish(self: Box<Self>, commit: Result<(), StoreError>);
}

struct UnitJob<T> {
    work: Work<T>,
    idem: Option<IdemRequest<T>>,
    audit: Option<AuditSpec<T>>,
    outcome: Option<Result<T, StoreError>>,
    events: Vec<OutboxEvent>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

#[async_trait::async_trait]
impl<T: Send + Sync + 'static> Job for UnitJob<T> {
    async fn run(&mut self, txn: &DatabaseTransaction) {
        // When SAVEPOINT, RELEASE or ROLLBACK TO itself fails, the connection or the transaction
        // is gone, and SeaORM's clean-up may already have rolled back the whole batch: nothing
        // of this batch can be reported as done. `TransactionAborted` makes the writer abort it.
        let mut attempt = 0;
        let outcome = loop {
            attempt += 1;
            let Ok(sp) = txn.begin().await else {
                break Err(StoreError::TransactionAborted);
            };
            let sink = EventSink::default();
            match (self.work)(&sp, &sink).await {
                Ok(value) => {
                    let recorded = match self.idem.take() {
                        Some(idem) => idempotency::record_success(&sp, idem, &value).await,
                        None => Ok(()),
                    };
                    // The audit row commits or rolls back with the change it describes.
                    let recorded = match (recorded, &self.audit) {
                        (Ok(()), Some(audit)) => audit.record_success(&sp, &value).await,
                        (other, _) => other,
                    };
                    match recorded {
                        Ok(()) => match sp.commit().await {
                            Ok(()) => {
                                self.events = sink.take();
                                break Ok(value);
                            }
                            Err(_) => break Err(StoreError::TransactionAborted),
                        },
                        Err(e) => {
                            if sp.rollback().await.is_err() {
                                break Err(StoreError::TransactionAborted);
                            }
                            break Err(e);
                        }
                    }
                }
                Err(e) => {
                    if sp.rollback().await.is_err() {
                        break Err(StoreError::TransactionAborted);
                    }
                    if e.is_retryable() && attempt < MAX_ATTEMPTS {
                        continue;
                    }
                    if e.is_business()
                        && let Some(audit) = &self.audit
                    {
                        // A refusal is recorded too (outcome `refused:…`), outside the rolled-back
                        // savepoint, in the batch's transaction.
                        match audit.record_refusal(txn, &e).await {
                            Ok(()) => {}
                            Err(StoreError::TransactionAborted) => break Err(StoreError::TransactionAborted),
                            Err(store_err) => tracing::warn!(error = %store_err, "could not audit a refusal"),
                        }
                    }
                    if let Some(idem) = self.idem.take() {
                        // A business refusal is the request's answer and is kept with its key.
                        match idempotency::record_failure(txn, idem, &e).await {
                            Ok(()) => {}
                            // The batch is lost, or another request finished this key first
                            // (the caller then replays that answer instead of this refusal).
                            Err(other @ (StoreError::TransactionAborted | StoreError::IdempotencyRace)) => {
                                break Err(other);
                            }
                            Err(store_err) => {
                                tracing::warn!(error = %store_err, "could not store the idempotent refusal")
                            }
                        }
                    }
                    break Err(e);
                }
            }
        };
        self.outcome = Some(outcome);
    }

    fn aborted_transaction(&self) -> bool {
        matches!(self.outcome, Some(Err(StoreError::TransactionAborted)))
    }

    fn take_events(&mut self) -> Vec<OutboxEvent> {
        match self.outcome {
            Some(Ok(_)) => std::mem::take(&mut self.events),
            _ => Vec::new(),
        }
    }

    fn finish(self: Box<Self>, commit: Result<(), StoreError>) {
        let result = match (commit, self.outcome) {
            (Ok(()), Some(outcome)) => outcome,
            // No outcome: the unit panicked and was abandoned.
            (Ok(()), None) => Err(StoreError::Panicked),
            // The shared commit failed: a unit that had failed on its own keeps its own error
            // (nothing of it was to be written anyway); the others report the commit failure.
            (Err(_), Some(Err(own))) => Err(own),
            (Err(e), _) => Err(e),
        };
        // The caller may have gone away (client disconnected); the work is committed regardless.
        let _ = self.reply.send(result);
    }
}

/// Batching figures since start.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriterStats {
    /// Commits made.
    pub commits: u64,
    /// Units of work run.
    pub units: u64,
}

/// The handle to the writer tasks.
pub(crate) struct Writer {
    tx: mpsc::Sender<Box<dyn Job>>,
    events: broadcast::Sender<OutboxEvent>,
    commits: Arc<AtomicU64>,
    units: Arc<AtomicU64>,
}

impl Writer {
    /// Starts `tasks` writer loops on `db`.
    pub(crate) fn start(db: DatabaseConnection, backend: Backend, tasks: usize, max_batch: usize) -> Writer {
        let (tx, rx) = mpsc::channel::<Box<dyn Job>>(max_batch * 8);
        let rx = Arc::new(Mutex::new(rx));
        let commits = Arc::new(AtomicU64::new(0));
        let units = Arc::new(AtomicU64::new(0));
        let (events, _) = broadcast::channel(EVENT_FEED_CAPACITY);
        let options = match backend {
            // IMMEDIATE takes the write lock at BEGIN, so a batch never fails half-way on a lock
            // upgrade.
            Backend::Sqlite => TransactionOptions {
                isolation_level: None,
                access_mode: None,
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            },
            // READ COMMITTED so that a unit retried after a version conflict re-reads the row
            // another node just committed (MySQL's default REPEATABLE READ would show it the old
            // snapshot forever).
            Backend::Postgres | Backend::MySql => TransactionOptions {
                isolation_level: Some(IsolationLevel::ReadCommitted),
                access_mode: Some(AccessMode::ReadWrite),
                sqlite_transaction_mode: None,
            },
        };
        for _ in 0..tasks {
            let loop_state = WriterLoop {
                db: db.clone(),
                rx: rx.clone(),
                options,
                max_batch,
                commits: commits.clone(),
                units: units.clone(),
                events: events.clone(),
            };
            tokio::spawn(loop_state.run());
        }
        Writer {
            tx,
            events,
            commits,
            units,
        }
    }

    /// Queues a unit of work and waits for its committed result.
    pub(crate) async fn submit<T: Send + Sync + 'static>(
        &self,
        work: Work<T>,
        idem: Option<IdemRequest<T>>,
    ) -> Result<T, StoreError> {
        self.submit_audited(work, idem, None).await
    }

    /// Queues a unit of work whose success or refusal is written to the audit log in the same
    /// transaction, and waits for its committed result.
    pub(crate) async fn submit_audited<T: Send + Sync + 'static>(
        &self,
        work: Work<T>,
        idem: Option<IdemRequest<T>>,
        audit: Option<AuditSpec<T>>,
    ) -> Result<T, StoreError> {
        let (reply, rx) = oneshot::channel();
        let job = Box::new(UnitJob {
            work,
            idem,
            audit,
            outcome: None,
            events: Vec::new(),
            reply,
        });
        self.tx.send(job).await.map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// A receiver of every event committed from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<OutboxEvent> {
        self.events.subscribe()
    }

    pub(crate) fn stats(&self) -> WriterStats {
        WriterStats {
            commits: self.commits.load(Ordering::Relaxed),
            units: self.units.load(Ordering::Relaxed),
        }
    }
}

struct WriterLoop {
    db: DatabaseConnection,
    rx: Arc<Mutex<mpsc::Receiver<Box<dyn Job>>>>,
    options: TransactionOptions,
    max_batch: usize,
    commits: Arc<AtomicU64>,
    units: Arc<AtomicU64>,
    events: broadcast::Sender<OutboxEvent>,
}

impl WriterLoop {
    async fn run(self) {
        loop {
            let mut batch: Vec<Box<dyn Job>> = Vec::new();
            {
                let mut rx = self.rx.lock().await;
                match rx.recv().await {
                    Some(job) => batch.push(job),
                    None => return,
                }
                while batch.len() < self.max_batch {
                    match rx.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
            }
            self.run_batch(batch).await;
        }
    }

    async fn run_batch(&self, mut batch: Vec<Box<dyn Job>>) {
        let txn = match self.db.begin_with_options(self.options).await {
            Ok(txn) => txn,
            Err(e) => {
                tracing::error!(error = %e, "could not begin a write transaction");
                let err = StoreError::from(e);
                for job in batch {
                    job.finish(Err(err.clone()));
                }
                return;
            }
        };
        for job in batch.iter_mut() {
            // A panic in one unit must not take the writer (and every later request) with it.
            if AssertUnwindSafe(job.run(&txn)).catch_unwind().await.is_err() {
                tracing::error!("a unit of work panicked; it is answered with an error");
            }
            if job.aborted_transaction() {
                // Everything before this unit was rolled back with it: nobody in this batch may
                // be told "done". They all get a retryable error and nothing is committed.
                tracing::warn!(units = batch.len(), "the database rolled back the shared transaction");
                let _ = txn.rollback().await;
                for job in batch {
                    job.finish(Err(StoreError::TransactionAborted));
                }
                return;
            }
        }
        let commit = txn.commit().await.map_err(StoreError::from);
        match &commit {
            Ok(()) => {
                self.commits.fetch_add(1, Ordering::Relaxed);
                // Published before the callers are answered, so whoever reacts to an answer and
                // then subscribes has not missed this batch's events through the feed's own
                // lag; nobody can see them before they are durable.
                for job in batch.iter_mut() {
                    for event in job.take_events() {
                        // An error only means nobody is subscribed right now.
                        let _ = self.events.send(event);
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, units = batch.len(), "group commit failed"),
        }
        self.units.fetch_add(batch.len() as u64, Ordering::Relaxed);
        for job in batch {
            job.finish(commit.clone());
        }
    }
}
