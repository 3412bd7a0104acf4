//! The group-commit writer.
//!
//! Every unit of work is queued here. A writer task takes whatever is queued (up to
//! `max_batch`), opens one transaction, runs each unit in its own savepoint, writes the outbox
//! and audit rows of the whole batch in one multi-row INSERT each, commits once and then answers
//! every caller. (On PostgreSQL a batch made only of [`Staged`] units is a single statement with
//! no transaction around it, which commits by itself: see [`WriterLoop::optimistic`].) Under
//! load this turns N fsyncs into one, which is what lets a durable (`synchronous=FULL`) SQLite
//! take thousands of payments a second; with a single request in the queue it is an ordinary
//! transaction with no added wait (there is no timer).
//!
//! Callers are answered only after the commit, so nobody ever sees a success that a crash could
//! take back. A unit that fails does not affect the others: their batch runs again, each unit in
//! its own savepoint, and the failing one is rolled back to it.
//!
//! A unit does not write its outbox rows (`events`) or its status-sync jobs (`sync_jobs`, always
//! for an object the unit has just created) itself: it renders them into its own [`UnitSink`],
//! passed to it explicitly beside the transaction. The writer — which alone knows whether the
//! unit succeeded or was rolled back to its savepoint — keeps the sink of a unit that succeeded,
//! inserts the kept rows of the whole batch before the commit and publishes the events on a
//! broadcast channel ([`crate::Store::subscribe_events`]) after it. A retried attempt starts with a
//! fresh sink, and a unit rolled back to its savepoint or a batch whose commit failed publishes
//! nothing. The audit row of each unit (its success or its refusal) is kept and written the same
//! way. The sink is an argument rather than a task-local or a shared map so that a unit cannot
//! write events the writer does not see, and no state lives outside the writer.
//!
//! Statements are what a unit costs here (each is a round trip to the driver, and on SQLite a
//! hop to the connection's thread), so the writer issues as few as it can. A batch first runs
//! optimistically: every unit once, with no savepoint ([`WriterLoop::optimistic`]). Only when a
//! unit fails (a refusal, a conflict, a panic) is the batch rolled back and run again with one
//! `SAVEPOINT` per unit and no `RELEASE` ([`WriterLoop::with_savepoints`]), where a failing unit
//! is rolled back alone. The per-unit outbox, sync-job and audit rows are folded into one
//! multi-row INSERT per table per batch either way; on PostgreSQL into one statement, together
//! with the order claims and payment rows that new payment attempts left to the writer
//! ([`crate::persist::Deferred`], [`crate::persist::write_batch_tail`]).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::FutureExt;
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, SqliteTransactionMode,
    TransactionOptions, TransactionTrait,
};
use tokio::sync::{Mutex, broadcast, mpsc, oneshot};

use crate::audit::AuditSpec;
use crate::entity::{audit_log, sync_jobs};
use crate::idempotency::{self, IdemRequest};
use crate::persist::Deferred;
use crate::{Backend, OutboxEvent, StoreError, persist};

/// The future a unit of work returns; it borrows the batch's transaction and its event sink.
pub(crate) type TxFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A unit of work: may run more than once (after a conflict, or when its batch is run again after
/// another unit failed), each time with a fresh [`UnitSink`] and inside the batch's transaction
/// (in a savepoint of its own when the batch runs with savepoints). It must not commit or roll
/// back that transaction; it may open nested savepoints of its own. It must not keep anything of
/// an attempt outside the database beyond what a later attempt may safely ignore.
pub(crate) type Work<T> = Box<dyn for<'a> Fn(&'a DatabaseTransaction, &'a UnitSink) -> TxFuture<'a, T> + Send + Sync>;

/// Helps type inference turn a closure into a [`Work`].
pub(crate) fn work<T, F>(f: F) -> Work<T>
where
    F: for<'a> Fn(&'a DatabaseTransaction, &'a UnitSink) -> TxFuture<'a, T> + Send + Sync + 'static,
{
    Box::new(f)
}

/// The rows one attempt of a unit of work leaves for the end of its batch: its outbox rows, in
/// order (filled by `persist::record_events`, written and then published by the writer), and the
/// status-sync jobs of the objects it created (`sync::schedule`). Record only what the unit keeps
/// (not work inside a nested savepoint the unit may roll back on its own), since the sink records
/// what the unit produced, not what survived inside it. Only rows that cannot conflict belong
/// in the events and sync jobs (fresh ids, tables without foreign keys): a failed multi-row
/// INSERT of those fails the whole batch, unless the batch's tail also carried [`Deferred`]
/// writes. Those may conflict; a failed flush, or a failed tail that carried them, sends the
/// batch to its second run instead.
#[derive(Debug)]
pub(crate) struct UnitSink {
    rows: std::sync::Mutex<UnitRows>,
    /// Whether this attempt runs in a batch's optimistic pass, where any error of the unit sends
    /// the whole batch to a second run with a savepoint per unit.
    optimistic: bool,
    /// Whether this attempt may leave some of its writes to the writer ([`Deferred`]).
    defer: bool,
}

#[derive(Debug, Default)]
struct UnitRows {
    events: Vec<OutboxEvent>,
    sync_jobs: Vec<sync_jobs::ActiveModel>,
    deferred: Deferred,
}

impl UnitSink {
    fn new(optimistic: bool, defer: bool) -> UnitSink {
        UnitSink {
            rows: Default::default(),
            optimistic,
            defer: optimistic && defer,
        }
    }

    /// Whether this attempt runs in its batch's optimistic pass. There a unit need not guard a
    /// statement that may fail with a savepoint of its own: its failure makes the writer run the
    /// batch again, the unit then with `optimistic() == false`, where it handles the failure.
    pub(crate) fn optimistic(&self) -> bool {
        self.optimistic
    }

    /// Whether the writer makes this attempt's [`Deferred`] writes for it: only in a batch's
    /// optimistic pass, and only for units submitted with [`Writer::submit_deferring`].
    pub(crate) fn defers(&self) -> bool {
        self.defer
    }

    pub(crate) fn defer(&self, f: impl FnOnce(&mut Deferred)) {
        f(&mut self.rows().deferred)
    }

    pub(crate) fn record(&self, events: impl IntoIterator<Item = OutboxEvent>) {
        self.rows().events.extend(events);
    }

    pub(crate) fn schedule(&self, job: sync_jobs::ActiveModel) {
        self.rows().sync_jobs.push(job);
    }

    fn rows(&self) -> std::sync::MutexGuard<'_, UnitRows> {
        // Never held across an await; a poisoned lock still holds valid rows.
        self.rows.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn take(&self) -> UnitRows {
        std::mem::take(&mut *self.rows())
    }
}

/// A unit's first attempt made by its caller before the unit is queued, from what the caller has
/// already read, with no statement: its value and the rows it leaves to the writer, all of its
/// writes deferred ([`UnitSink::defers`]). A batch made only of such units (and no idempotency
/// records) needs nothing of the database but its tail, which on PostgreSQL is one statement:
/// the writer then sends that statement alone, with no `BEGIN` and `COMMIT` round trips around
/// it. When the batch fails anyway, the staged attempt is dropped and the unit's [`Work`] runs
/// instead, as for any unit.
pub(crate) struct Staged<T> {
    value: T,
    rows: UnitRows,
}

impl<T> Staged<T> {
    /// Stages an attempt: `stage` records the unit's rows in the sink it is given, which defers
    /// every write, and returns the unit's value.
    pub(crate) fn new(stage: impl FnOnce(&UnitSink) -> Result<T, StoreError>) -> Result<Staged<T>, StoreError> {
        let sink = UnitSink::new(true, true);
        let value = stage(&sink)?;
        Ok(Staged {
            value,
            rows: sink.take(),
        })
    }
}

/// How many committed events a slow subscriber may fall behind before it is told it lagged
/// (`RecvError::Lagged`) and must catch up from the database.
pub const EVENT_FEED_CAPACITY: usize = 4096;

/// How many times a unit of work is retried after a concurrency conflict before giving up.
const MAX_ATTEMPTS: usize = 5;

#[async_trait::async_trait]
trait Job: Send {
    /// Whether the unit was submitted with [`Writer::submit_deferring`].
    fn defers(&self) -> bool;
    /// Whether [`Job::run_once`] needs a transaction: false for a [`Staged`] unit with no
    /// idempotency record to write.
    fn needs_transaction(&self) -> bool;
    /// Runs the unit once, with no savepoint of its own (the optimistic pass): `true` when it and
    /// its idempotency record succeeded, and then its deferred writes are added to `deferred`.
    /// On `false` the writer rolls the whole batch back. `txn` is `None` only when no unit of
    /// the batch [needs a transaction](Job::needs_transaction).
    async fn run_once(&mut self, txn: Option<&DatabaseTransaction>, deferred: &mut Deferred) -> bool;
    /// Forgets what [`Job::run_once`] kept, after its batch was rolled back.
    fn reset(&mut self);
    /// Runs the unit inside the batch's transaction; the writer has just set `savepoint`.
    async fn run(&mut self, txn: &DatabaseTransaction, savepoint: &str);
    /// The database rolled back the whole transaction while this unit ran.
    fn aborted_transaction(&self) -> bool;
    /// Moves the rows this unit leaves for the end of the batch into `rows`: the outbox rows of a
    /// unit that succeeded, and its audit row (success or refusal).
    fn take_rows(&mut self, rows: &mut BatchRows);
    fn finish(self: Box<Self>, commit: Result<(), StoreError>);
}

/// What the units of a batch leave to be written once, together, before the commit.
#[derive(Default)]
struct BatchRows {
    events: Vec<OutboxEvent>,
    sync_jobs: Vec<sync_jobs::ActiveModel>,
    audit: Vec<audit_log::ActiveModel>,
}

struct UnitJob<T> {
    work: Work<T>,
    /// The first attempt, made by the caller; taken by the optimistic pass.
    staged: Option<Staged<T>>,
    idem: Option<IdemRequest<T>>,
    audit: Option<AuditSpec<T>>,
    outcome: Option<Result<T, StoreError>>,
    kept: UnitRows,
    audit_row: Option<audit_log::ActiveModel>,
    defers: bool,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

/// Undoes what the current unit wrote since its savepoint. The savepoint stays set (on SQLite,
/// PostgreSQL and MySQL alike), so a retried attempt runs inside it again.
async fn rollback_to(txn: &DatabaseTransaction, savepoint: &str) -> Result<(), StoreError> {
    txn.execute_unprepared(&format!("ROLLBACK TO SAVEPOINT {savepoint}"))
        .await
        .map(|_| ())
        .map_err(|_| StoreError::TransactionAborted)
}

#[async_trait::async_trait]
impl<T: Send + Sync + 'static> Job for UnitJob<T> {
    fn defers(&self) -> bool {
        self.defers
    }

    fn needs_transaction(&self) -> bool {
        self.staged.is_none() || self.idem.is_some()
    }

    async fn run_once(&mut self, txn: Option<&DatabaseTransaction>, deferred: &mut Deferred) -> bool {
        let (value, rows) = match (self.staged.take(), txn) {
            (Some(staged), _) => (staged.value, staged.rows),
            (None, Some(txn)) => {
                let sink = UnitSink::new(true, self.defers);
                let Ok(value) = (self.work)(txn, &sink).await else {
                    return false;
                };
                (value, sink.take())
            }
            (None, None) => return false,
        };
        if let Some(idem) = &self.idem {
            let Some(txn) = txn else {
                return false;
            };
            if idempotency::record_success(txn, idem, &value).await.is_err() {
                return false;
            }
        }
        self.kept = rows;
        deferred.append(&mut self.kept.deferred);
        self.audit_row = self.audit.as_ref().map(|audit| audit.success_row(&value));
        self.outcome = Some(Ok(value));
        true
    }

    fn reset(&mut self) {
        self.outcome = None;
        self.kept = UnitRows::default();
        self.audit_row = None;
    }

    async fn run(&mut self, txn: &DatabaseTransaction, savepoint: &str) {
        // When ROLLBACK TO itself fails, the connection or the transaction is gone: nothing of
        // this batch can be reported as done. `TransactionAborted` makes the writer abort it.
        let mut attempt = 0;
        let outcome = loop {
            attempt += 1;
            // Never deferring here: a unit run with savepoints must meet its conflicts itself.
            let sink = UnitSink::new(false, false);
            match (self.work)(txn, &sink).await {
                Ok(value) => {
                    let recorded = match &self.idem {
                        Some(idem) => idempotency::record_success(txn, idem, &value).await,
                        None => Ok(()),
                    };
                    match recorded {
                        Ok(()) => {
                            self.kept = sink.take();
                            // The audit row commits or rolls back with the change it describes:
                            // it is written in this batch's transaction, before its commit.
                            self.audit_row = self.audit.as_ref().map(|audit| audit.success_row(&value));
                            break Ok(value);
                        }
                        Err(e) => {
                            if rollback_to(txn, savepoint).await.is_err() {
                                break Err(StoreError::TransactionAborted);
                            }
                            break Err(e);
                        }
                    }
                }
                Err(e) => {
                    if rollback_to(txn, savepoint).await.is_err() {
                        break Err(StoreError::TransactionAborted);
                    }
                    if e.is_retryable() && attempt < MAX_ATTEMPTS {
                        continue;
                    }
                    if e.is_business()
                        && let Some(audit) = &self.audit
                    {
                        // A refusal is recorded too (outcome `refused:…`); its row is written
                        // with the batch's, outside what was rolled back.
                        self.audit_row = Some(audit.refusal_row(&e));
                    }
                    if let Some(idem) = &self.idem {
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

    fn take_rows(&mut self, rows: &mut BatchRows) {
        if let Some(Ok(_)) = self.outcome {
            rows.events.append(&mut self.kept.events);
            rows.sync_jobs.append(&mut self.kept.sync_jobs);
        }
        if self.outcome.is_some() {
            rows.audit.extend(self.audit_row.take());
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
    /// Batches whose optimistic pass failed (a unit refused or conflicted, or a deferred write
    /// missed) and which were run again with a savepoint per unit.
    pub reruns: u64,
    /// Commits that were the batch's one statement alone, with no transaction around it
    /// (PostgreSQL, batches of new payment attempts: see `Staged`); included in `commits`.
    pub single_statement: u64,
}

/// The handle to the writer tasks.
pub(crate) struct Writer {
    tx: mpsc::Sender<Box<dyn Job>>,
    events: broadcast::Sender<OutboxEvent>,
    commits: Arc<AtomicU64>,
    units: Arc<AtomicU64>,
    reruns: Arc<AtomicU64>,
    single_statement: Arc<AtomicU64>,
}

impl Writer {
    /// Connects the writers' own pool (`connect`) and starts `tasks` writer loops on it, all on
    /// one thread of their own with a single-threaded runtime.
    ///
    /// Why a thread: a batch is a chain of round trips (each statement waits for the database,
    /// and on SQLite for the hop to the connection's thread), and each wake-up of a writer
    /// running on the server's runtime waits behind every request task that became ready
    /// meanwhile. Under load that queueing, not the database, bounded how many units a second
    /// the writer got through. On its own thread a writer is woken by the OS scheduler as soon
    /// as its statement returns. Its pool is made on that thread too, so the connections'
    /// sockets are driven by the runtime that uses them.
    pub(crate) async fn start(
        connect: ConnectOptions,
        backend: Backend,
        tasks: usize,
        max_batch: usize,
    ) -> Result<Writer, StoreError> {
        let (tx, rx) = mpsc::channel::<Box<dyn Job>>(max_batch * 8);
        let rx = Arc::new(Mutex::new(rx));
        let commits = Arc::new(AtomicU64::new(0));
        let units = Arc::new(AtomicU64::new(0));
        let reruns = Arc::new(AtomicU64::new(0));
        let single_statement = Arc::new(AtomicU64::new(0));
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
            // snapshot forever). Set on each of the writers' connections when it is made
            // (`writer_sessions` in lib.rs), so a batch begins with a bare `BEGIN`.
            Backend::Postgres | Backend::MySql => TransactionOptions {
                isolation_level: None,
                access_mode: None,
                sqlite_transaction_mode: None,
            },
        };
        let (ready_tx, ready_rx) = oneshot::channel::<Result<(), StoreError>>();
        let (loop_commits, loop_units, loop_reruns, loop_single, loop_events) = (
            commits.clone(),
            units.clone(),
            reruns.clone(),
            single_statement.clone(),
            events.clone(),
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Config(format!("cannot start the writer's runtime: {e}")))?;
        std::thread::Builder::new()
            .name("jinliu-writer".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let db = match Database::connect(connect).await {
                        Ok(db) => db,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.into()));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    let loops = (0..tasks).map(|_| {
                        WriterLoop {
                            db: db.clone(),
                            one_statement_tail: backend == Backend::Postgres,
                            rx: rx.clone(),
                            options,
                            max_batch,
                            commits: loop_commits.clone(),
                            units: loop_units.clone(),
                            reruns: loop_reruns.clone(),
                            single_statement: loop_single.clone(),
                            events: loop_events.clone(),
                        }
                        .run()
                    });
                    // Every loop returns once the last `Writer` handle (the queue's sender) is gone.
                    futures::future::join_all(loops).await;
                    let _ = db.close().await;
                });
            })
            .map_err(|e| StoreError::Config(format!("cannot start the writer's thread: {e}")))?;
        ready_rx.await.map_err(|_| StoreError::Closed)??;
        Ok(Writer {
            tx,
            events,
            commits,
            units,
            reruns,
            single_statement,
        })
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
        self.enqueue(work, None, idem, audit, false).await
    }

    /// Like [`Writer::submit_audited`], for a unit that may leave its [`Deferred`] writes to the
    /// writer (see [`UnitSink::defers`]).
    pub(crate) async fn submit_deferring<T: Send + Sync + 'static>(
        &self,
        work: Work<T>,
        idem: Option<IdemRequest<T>>,
        audit: Option<AuditSpec<T>>,
    ) -> Result<T, StoreError> {
        self.enqueue(work, None, idem, audit, true).await
    }

    /// Like [`Writer::submit_deferring`], with the unit's first attempt already made by the
    /// caller ([`Staged`]); `work` makes any later one.
    pub(crate) async fn submit_staged<T: Send + Sync + 'static>(
        &self,
        work: Work<T>,
        staged: Staged<T>,
        idem: Option<IdemRequest<T>>,
        audit: Option<AuditSpec<T>>,
    ) -> Result<T, StoreError> {
        self.enqueue(work, Some(staged), idem, audit, true).await
    }

    async fn enqueue<T: Send + Sync + 'static>(
        &self,
        work: Work<T>,
        staged: Option<Staged<T>>,
        idem: Option<IdemRequest<T>>,
        audit: Option<AuditSpec<T>>,
        defers: bool,
    ) -> Result<T, StoreError> {
        let (reply, rx) = oneshot::channel();
        let job = Box::new(UnitJob {
            work,
            staged,
            idem,
            audit,
            outcome: None,
            kept: UnitRows::default(),
            audit_row: None,
            defers,
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
            reruns: self.reruns.load(Ordering::Relaxed),
            single_statement: self.single_statement.load(Ordering::Relaxed),
        }
    }
}

struct WriterLoop {
    db: DatabaseConnection,
    /// Whether a batch's tail is one statement (PostgreSQL: `persist::write_together`), which
    /// then needs no transaction of its own when nothing else of the batch is to be written.
    one_statement_tail: bool,
    rx: Arc<Mutex<mpsc::Receiver<Box<dyn Job>>>>,
    options: TransactionOptions,
    max_batch: usize,
    commits: Arc<AtomicU64>,
    units: Arc<AtomicU64>,
    reruns: Arc<AtomicU64>,
    single_statement: Arc<AtomicU64>,
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

    /// The common case first: every unit runs once, with no savepoint, in one transaction. That
    /// saves a round trip per unit; the price is paid only when a unit fails (a refusal, a
    /// conflict, a panic), when the whole batch is rolled back and runs again through
    /// [`WriterLoop::with_savepoints`] (units may run more than once anyway). Returns the open
    /// transaction when every unit succeeded.
    ///
    /// Units submitted with [`Writer::submit_deferring`] leave their [`Deferred`] writes here; a
    /// run of such units has them made in one go, before the next unit that does not defer (which
    /// may read what they wrote); those of the last run are returned with the transaction, for
    /// the batch's tail. A failed flush fails the pass like a failed unit.
    ///
    /// When the tail is one statement and no unit needs a transaction (all are [`Staged`], with
    /// no idempotency record), nothing is sent here and no transaction is opened: `Some((None,
    /// deferred))`, and the tail is the batch's only statement. The `BEGIN` and `COMMIT` round
    /// trips were a quarter to a third of the writer's serial chain per batch at 16 connections on two CPUs
    /// (docs/performance.md, run S).
    async fn optimistic(&self, batch: &mut [Box<dyn Job>]) -> Option<(Option<DatabaseTransaction>, Deferred)> {
        let bare = self.one_statement_tail && batch.iter().all(|job| !job.needs_transaction());
        let txn = if bare {
            None
        } else {
            match self.db.begin_with_options(self.options).await {
                Ok(txn) => Some(txn),
                Err(_) => {
                    self.reruns.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
            }
        };
        let mut deferred = Deferred::default();
        let mut done = true;
        for job in batch.iter_mut() {
            if !job.defers() && !deferred.is_empty() {
                done = match &txn {
                    Some(txn) => deferred.flush(txn).await.is_ok(),
                    None => false,
                };
            }
            done = done
                && AssertUnwindSafe(job.run_once(txn.as_ref(), &mut deferred))
                    .catch_unwind()
                    .await
                    .unwrap_or(false);
            if !done {
                break;
            }
        }
        if done {
            // The last run's deferred writes go in with the batch's tail (`write_batch_tail`).
            return Some((txn, deferred));
        }
        if let Some(txn) = txn {
            let _ = txn.rollback().await;
        }
        for job in batch.iter_mut() {
            job.reset();
        }
        self.reruns.fetch_add(1, Ordering::Relaxed);
        None
    }

    /// Runs every unit in a savepoint of its own, so that a failing unit is rolled back alone.
    /// Returns the open transaction, or `None` when the database rolled the whole transaction
    /// back (every unit has then been answered).
    async fn with_savepoints(&self, batch: &mut Vec<Box<dyn Job>>) -> Option<DatabaseTransaction> {
        let txn = match self.db.begin_with_options(self.options).await {
            Ok(txn) => txn,
            Err(e) => {
                tracing::error!(error = %e, "could not begin a write transaction");
                let err = StoreError::from(e);
                for job in batch.drain(..) {
                    job.finish(Err(err.clone()));
                }
                return None;
            }
        };
        for (i, job) in batch.iter_mut().enumerate() {
            // Each unit gets a savepoint of its own, set here and never released: a unit that
            // fails rolls back to it, and a later unit's savepoint nests inside it, so rolling
            // that one back cannot touch this unit's rows. Releasing it would cost one more
            // statement per unit and change nothing of what commits.
            let savepoint = format!("jl_unit_{i}");
            let set = txn.execute_unprepared(&format!("SAVEPOINT {savepoint}")).await;
            let aborted = match set {
                Err(_) => true,
                Ok(_) => {
                    // A panic in one unit must not take the writer (and every later request)
                    // with it; what it wrote is rolled back to its savepoint.
                    let panicked = AssertUnwindSafe(job.run(&txn, &savepoint))
                        .catch_unwind()
                        .await
                        .is_err();
                    if panicked {
                        tracing::error!("a unit of work panicked; it is answered with an error");
                    }
                    job.aborted_transaction() || (panicked && rollback_to(&txn, &savepoint).await.is_err())
                }
            };
            if aborted {
                // Everything before this unit was rolled back with it: nobody in this batch may
                // be told "done". They all get a retryable error and nothing is committed.
                tracing::warn!(units = batch.len(), "the database rolled back the shared transaction");
                let _ = txn.rollback().await;
                for job in batch.drain(..) {
                    job.finish(Err(StoreError::TransactionAborted));
                }
                return None;
            }
        }
        Some(txn)
    }

    async fn run_batch(&self, mut batch: Vec<Box<dyn Job>>) {
        let mut optimistic = self.optimistic(&mut batch).await;
        let (events, commit) = loop {
            let (txn, deferred) = match optimistic.take() {
                Some(open) => open,
                None => match self.with_savepoints(&mut batch).await {
                    Some(txn) => (Some(txn), Deferred::default()),
                    // Every unit has been answered.
                    None => return,
                },
            };
            // The outbox, sync-job and audit rows of the whole batch, and the events' webhook
            // messages: one multi-row INSERT per table instead of one per unit, or on PostgreSQL
            // one statement for them all and the last deferred writes. Their ids are fresh (a
            // sync job's is the id of the object its unit created, a message's (endpoint, event)
            // pair has a fresh event) and the tables have no foreign keys, so they fail only
            // when the transaction itself does; such a failure is handled like a failed commit,
            // unless the tail carried deferred writes.
            let mut rows = BatchRows::default();
            for job in batch.iter_mut() {
                job.take_rows(&mut rows);
            }
            let BatchRows {
                events,
                sync_jobs,
                audit,
            } = rows;
            let carried = !deferred.is_empty();
            let written = match &txn {
                Some(txn) => persist::write_batch_tail(txn, deferred, &events, sync_jobs, audit).await,
                // One statement, committed on its own (`WriterLoop::optimistic`).
                None => persist::write_batch_tail(&self.db, deferred, &events, sync_jobs, audit).await,
            };
            match (written, txn) {
                (Ok(()), Some(txn)) => break (events, txn.commit().await.map_err(StoreError::from)),
                (Ok(()), None) => {
                    self.single_statement.fetch_add(1, Ordering::Relaxed);
                    break (events, Ok(()));
                }
                // The batch's one statement may have committed before its answer was lost: it
                // must not run again (its rows would be written twice, or refused as duplicates
                // while the callers are told nothing of the first). Answered as a failed commit.
                (Err(e), None) if e.outcome_unknown() => {
                    tracing::error!(error = %e, units = batch.len(), "a batch's one statement failed with its outcome unknown");
                    break (events, Err(e));
                }
                // A deferred write failed (a claim missed, a provider reference is taken), as a
                // failed flush in the optimistic pass: the batch runs again, a savepoint per unit.
                (Err(e), txn) if carried => {
                    // A miss is routine under contention; anything else would make every such
                    // batch run twice with only the rerun counter to show for it.
                    if !matches!(e, StoreError::Conflict) {
                        tracing::warn!(error = %e, units = batch.len(), "a batch's tail failed; running it again with savepoints");
                    }
                    if let Some(txn) = txn {
                        let _ = txn.rollback().await;
                    }
                    for job in batch.iter_mut() {
                        job.reset();
                    }
                    self.reruns.fetch_add(1, Ordering::Relaxed);
                }
                (Err(e), txn) => {
                    if let Some(txn) = txn {
                        let _ = txn.rollback().await;
                    }
                    break (events, Err(e));
                }
            }
        };
        match &commit {
            Ok(()) => {
                self.commits.fetch_add(1, Ordering::Relaxed);
                // Published before the callers are answered, so whoever reacts to an answer and
                // then subscribes has not missed this batch's events through the feed's own
                // lag; nobody can see them before they are durable.
                for event in events {
                    // An error only means nobody is subscribed right now.
                    let _ = self.events.send(event);
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

#[cfg(test)]
mod tests {
    use jinliu_testkit::{Engine, TestDb, engines};
    use sea_orm::{ConnectionTrait, Statement};

    use super::work;
    use crate::{Store, StoreConfig};

    /// The isolation level of a transaction the writer opens, as the database reports it.
    async fn writer_isolation(engine: Engine) -> Option<String> {
        if !engines().contains(&engine) {
            return None;
        }
        let db = TestDb::new(engine).await;
        let store = Store::connect(&StoreConfig::new(&db.url))
            .await
            .unwrap_or_else(|e| panic!("connect: {e}"));
        // MySQL 8 knows `transaction_isolation` only; MariaDB before 11.1 `tx_isolation` only.
        let queries: &[&str] = match engine {
            Engine::Postgres => &["SELECT current_setting('transaction_isolation') AS level"],
            _ => &[
                "SELECT @@transaction_isolation AS level",
                "SELECT @@tx_isolation AS level",
            ],
        };
        let level = store
            .writer()
            .submit(
                work(move |txn, _| {
                    Box::pin(async move {
                        let mut last = crate::StoreError::NotFound("isolation level");
                        for sql in queries {
                            let stmt = Statement::from_string(txn.get_database_backend(), *sql);
                            match txn.query_one_raw(stmt).await {
                                Ok(Some(row)) => return Ok(row.try_get::<String>("", "level")?),
                                Ok(None) => {}
                                Err(e) => last = e.into(),
                            }
                        }
                        Err(last)
                    })
                }),
                None,
            )
            .await
            .unwrap_or_else(|e| panic!("query: {e}"));
        Some(level.to_ascii_lowercase().replace(['-', '_'], " "))
    }

    // A unit retried after a version conflict must read the row another node has just committed,
    // which MySQL's default REPEATABLE READ would hide from it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_writers_transactions_are_read_committed_on_postgresql_and_mysql() {
        for engine in [Engine::Postgres, Engine::MySql] {
            if let Some(level) = writer_isolation(engine).await {
                assert_eq!(level, "read committed", "{}", engine.name());
            }
        }
    }
}
