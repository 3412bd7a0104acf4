//! The jinliu store: every SQL statement, the migrations, and the unit-of-work methods that
//! change state.
//!
//! One code path serves SQLite, PostgreSQL and MySQL/MariaDB (SeaORM renders the dialect). Each
//! state change is a *unit of work*: it loads what it needs inside a transaction, lets the domain
//! decide, and writes the new state (compare-and-set on `version`), the event rows of the
//! transactional outbox and the idempotency record together. Units of work are not run one
//! transaction each: the [`writer`] groups whatever is queued into one transaction with a
//! savepoint per unit, so many requests share one commit (one fsync) and a failing unit never
//! rolls back another. Nothing outside this crate sees a transaction or a row type.

mod accounts;
pub mod audit;
pub mod bench;
mod convert;
mod entity;
mod error;
mod idempotency;
mod keyring;
mod migrations;
mod orders;
mod payments;
mod persist;
mod provider_accounts;
mod refunds;
mod sync;
mod users;
mod webhooks;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};
use sea_orm_migration::MigratorTrait;

pub use audit::{AuditCheckpoint, AuditEntry, AuditFilter, AuditReport, SealPass, with_audit_context};
pub use error::StoreError;
pub use idempotency::{IdemRequest, IdempotencyRecord, StoredResponse};
pub use keyring::{RingKey, SealedField, SealedValue};
pub use orders::{OrderFilter, Page};
pub use payments::{NotificationKey, PaymentChange};
pub use provider_accounts::{AccountPatch, NewAccount};
pub use sync::{SyncJob, SyncKind};
pub use users::RefreshToken;
pub use webhooks::{Delivery, EndpointPatch, MessageFilter, NewEndpoint, RECOVER_MAX_EVENTS, RELAY_LEASE, RelayReport};
pub use writer::{EVENT_FEED_CAPACITY, WriterStats};

use jinliu_domain::MerchantId;

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite file (WAL).
    Sqlite,
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB.
    MySql,
}

impl Backend {
    /// Picks the backend from a URL scheme.
    pub fn from_url(url: &str) -> Result<Backend, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else if url.starts_with("mysql://") {
            Ok(Backend::MySql)
        } else {
            Err(StoreError::Config(
                "database URL must start with sqlite://, postgres:// or mysql://".into(),
            ))
        }
    }

    /// Lower-case name for logs and reports.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
            Backend::MySql => "mysql",
        }
    }
}

/// How to open a store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `sqlite://path?mode=rwc`, `postgres://…` or `mysql://…` (also for MariaDB).
    pub url: String,
    /// Most units of work per shared commit.
    pub max_batch: usize,
    /// Concurrent group-commit writers for PostgreSQL/MySQL (SQLite always has one: it allows
    /// one writer at a time anyway).
    pub writers: usize,
    /// Connections for reads.
    pub read_connections: u32,
    /// SQLite `synchronous` level: `FULL` (durable, the default), `NORMAL` or `OFF`.
    pub sqlite_synchronous: String,
    /// How long after creation an open payment or a pending refund becomes due for status sync.
    pub sync_delay_ms: i64,
}

impl StoreConfig {
    /// Defaults for a URL.
    pub fn new(url: impl Into<String>) -> StoreConfig {
        StoreConfig {
            url: url.into(),
            max_batch: 256,
            // More than the server's default on a small machine (`JINLIU_DB_WRITERS`) on
            // purpose: the conformance suite runs on these defaults, and several writers are what
            // make its races between batches happen.
            writers: 4,
            read_connections: 8,
            sqlite_synchronous: "FULL".into(),
            sync_delay_ms: 60_000,
        }
    }
}

/// Who is asking: every read and write is confined to one merchant and one mode, so a handler
/// cannot forget to scope a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The merchant.
    pub merchant_id: MerchantId,
    /// Live (`true`) or test objects.
    pub livemode: bool,
}

/// The store handle: cheap to clone, shared by every request.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    read: DatabaseConnection,
    writer: writer::Writer,
    sync_delay_ms: i64,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.inner.backend)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Connects (creating the SQLite file if needed). Does not migrate: call [`Store::migrate`].
    pub async fn connect(config: &StoreConfig) -> Result<Store, StoreError> {
        let backend = Backend::from_url(&config.url)?;
        let (read, write, writers) = match backend {
            Backend::Sqlite => {
                let sync = config.sqlite_synchronous.clone();
                let read = Database::connect(sqlite_options(&config.url, config.read_connections, &sync, 100)).await?;
                (read, sqlite_options(&config.url, 1, &sync, WRITER_STATEMENT_CACHE), 1)
            }
            Backend::Postgres | Backend::MySql => {
                let writers = config.writers.max(1);
                let server_options = |connections: u32| {
                    let mut opts = ConnectOptions::new(config.url.clone());
                    opts.max_connections(connections)
                        .min_connections(1)
                        .connect_timeout(Duration::from_secs(5))
                        .acquire_timeout(Duration::from_secs(10))
                        .test_before_acquire_if_idle_for(PING_IF_IDLE_FOR)
                        .sqlx_logging(false);
                    opts
                };
                let read = Database::connect(server_options(config.read_connections)).await?;
                let mut write = server_options(writers as u32);
                writer_sessions(&mut write);
                (read, write, writers)
            }
        };
        let writer = writer::Writer::start(write, backend, writers, config.max_batch.max(1)).await?;
        Ok(Store {
            inner: Arc::new(Inner {
                backend,
                read,
                writer,
                sync_delay_ms: config.sync_delay_ms,
            }),
        })
    }

    /// Applies every pending migration.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        migrations::Migrator::up(&self.inner.read, None).await?;
        Ok(())
    }

    /// Whether the database answers (for `/ready`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.inner.read.execute_unprepared("SELECT 1").await?;
        Ok(())
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    /// The committed-event feed: every outbox row (`events`) is sent here once the transaction
    /// that wrote it has committed, in the order its unit wrote it; rows of a unit rolled back to
    /// its savepoint, or of a batch whose commit failed, never are. Events of one node's store
    /// only (other nodes reach subscribers through the server's event bus). A receiver that falls
    /// more than [`EVENT_FEED_CAPACITY`] events behind gets `RecvError::Lagged` and must catch up
    /// from the `events` table; with several writers (PostgreSQL, MySQL) two batches may publish
    /// out of commit order, so consumers order by `object_version`. The realtime bus and the
    /// webhook delivery worker are woken by it.
    pub fn subscribe_events(&self) -> tokio::sync::broadcast::Receiver<OutboxEvent> {
        self.inner.writer.subscribe()
    }

    /// How the group-commit writer has been batching (for the benchmark report).
    pub fn writer_stats(&self) -> WriterStats {
        self.inner.writer.stats()
    }

    pub(crate) fn read(&self) -> &DatabaseConnection {
        &self.inner.read
    }

    pub(crate) fn writer(&self) -> &writer::Writer {
        &self.inner.writer
    }

    pub(crate) fn sync_delay_ms(&self) -> i64 {
        self.inner.sync_delay_ms
    }
}

/// A pooled connection idle this long is pinged before it is handed out, in case the server, a
/// proxy or a firewall dropped it meanwhile. The pools' default pinged on every checkout: one
/// more round trip per read and per writer batch (on SQLite, one more hop to the connection's
/// thread), for connections that were in use a moment ago.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(30);

/// Prepared statements each writer connection keeps (sqlx's default is 100). The writer's
/// multi-row statements have one text per row count (the batch's payments, outbox, sync-job and
/// audit rows, its order claims), so batches of up to a few dozen units use a few hundred
/// texts; with 100 the cache kept evicting them, and each eviction costs a `Close` and the next
/// use a `Parse` round trip (on SQLite a parse) again.
const WRITER_STATEMENT_CACHE: usize = 512;

/// Makes READ COMMITTED the isolation level of every transaction on the writers' connections, set
/// once per connection rather than per transaction: the writer then opens a batch with a bare
/// `BEGIN`. SeaORM sends a transaction's isolation level as a statement of its own (`SET
/// TRANSACTION …`, after `BEGIN` on PostgreSQL and before it on MySQL), one more round trip per
/// batch. The writer needs READ COMMITTED so that a unit retried after a version conflict reads
/// the row another node has just committed; it is PostgreSQL's default but not MySQL's, and a
/// server's configured default may differ either way.
///
/// Also gives the writers' connections a larger prepared-statement cache
/// ([`WRITER_STATEMENT_CACHE`]).
fn writer_sessions(opts: &mut ConnectOptions) {
    // A statement after connecting rather than PostgreSQL's `options` startup parameter, which
    // PgBouncer refuses unless told to ignore it. Through a transaction-pooling proxy a session
    // setting does not stick, so there the server's default must be READ COMMITTED (PostgreSQL's
    // own default); the README's configuration table says so.
    opts.map_sqlx_postgres_opts(move |o| o.statement_cache_capacity(WRITER_STATEMENT_CACHE))
        .map_sqlx_postgres_pool_opts(|o| {
            on_connect(
                o,
                "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED",
            )
        })
        .map_sqlx_mysql_opts(move |o| o.statement_cache_capacity(WRITER_STATEMENT_CACHE))
        .map_sqlx_mysql_pool_opts(|o| on_connect(o, "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"));
}

/// Runs `sql` on every connection the pool makes (SeaORM's own `after_connect` runs once per
/// pool, not per connection).
fn on_connect<DB: sqlx::Database>(pool: sqlx::pool::PoolOptions<DB>, sql: &'static str) -> sqlx::pool::PoolOptions<DB>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
{
    pool.after_connect(move |conn, _| Box::pin(async move { sqlx::Executor::execute(conn, sql).await.map(|_| ()) }))
}

fn sqlite_options(url: &str, connections: u32, synchronous: &str, statement_cache: usize) -> ConnectOptions {
    let mut opts = ConnectOptions::new(url.to_owned());
    let sync = synchronous.to_owned();
    opts.max_connections(connections)
        .min_connections(1)
        .test_before_acquire_if_idle_for(PING_IF_IDLE_FOR)
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(move |o| {
            use sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
            let level = match sync.to_ascii_uppercase().as_str() {
                "OFF" => SqliteSynchronous::Off,
                "NORMAL" => SqliteSynchronous::Normal,
                "EXTRA" => SqliteSynchronous::Extra,
                _ => SqliteSynchronous::Full,
            };
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(level)
                .busy_timeout(Duration::from_secs(10))
                .create_if_missing(true)
                .foreign_keys(true)
                .statement_cache_capacity(statement_cache)
                // The writer's savepoint journal (the pages each unit changes, kept so that the
                // unit can be rolled back alone) stays in memory instead of spilling to a temp
                // file; it is never needed after the transaction, so this costs no durability.
                .pragma("temp_store", "memory")
        });
    opts
}

/// Row counts per table, for tests that prove a refused request wrote nothing, and for ops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TableCounts {
    /// `orders`
    pub orders: u64,
    /// `payments`
    pub payments: u64,
    /// `refunds`
    pub refunds: u64,
    /// `events`
    pub events: u64,
    /// `idempotency_keys`
    pub idempotency_keys: u64,
    /// `provider_notifications` (applied notification keys)
    pub provider_notifications: u64,
    /// `sync_jobs`
    pub sync_jobs: u64,
    /// `webhook_endpoints`
    pub webhook_endpoints: u64,
    /// `webhook_messages`
    pub webhook_messages: u64,
    /// `webhook_attempts`
    pub webhook_attempts: u64,
}

/// An outbox row as committed, as published by [`Store::subscribe_events`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    /// `evt_…`
    pub id: String,
    /// The merchant it belongs to.
    pub merchant_id: MerchantId,
    /// Test or live.
    pub livemode: bool,
    /// `payment.completed`, …
    pub event_type: String,
    /// The object that changed (`ord_…`, `pay_…`, `re_…`).
    pub object_id: String,
    /// The object's version after the transition.
    pub object_version: i64,
    /// The rendered payload `{ id, type, createdAt, livemode, data }`.
    pub payload: String,
    /// When it was written.
    pub created_at: jinliu_domain::Timestamp,
}

/// An outbox row as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// `evt_…`
    pub id: String,
    /// `payment.completed`, …
    pub event_type: String,
    /// The object's version after the transition.
    pub object_version: i64,
    /// The rendered payload.
    pub payload: String,
}

impl Store {
    /// Counts rows in every table.
    pub async fn table_counts(&self) -> Result<TableCounts, StoreError> {
        use sea_orm::{EntityTrait, PaginatorTrait};
        let db = self.read();
        Ok(TableCounts {
            orders: entity::orders::Entity::find().count(db).await?,
            payments: entity::payments::Entity::find().count(db).await?,
            refunds: entity::refunds::Entity::find().count(db).await?,
            events: entity::events::Entity::find().count(db).await?,
            idempotency_keys: entity::idempotency::Entity::find().count(db).await?,
            provider_notifications: entity::provider_notifications::Entity::find().count(db).await?,
            sync_jobs: entity::sync_jobs::Entity::find().count(db).await?,
            webhook_endpoints: entity::webhook_endpoints::Entity::find().count(db).await?,
            webhook_messages: entity::webhook_messages::Entity::find().count(db).await?,
            webhook_attempts: entity::webhook_attempts::Entity::find().count(db).await?,
        })
    }

    /// The outbox rows of one object, oldest first.
    pub async fn events_for_object(&self, object_id: &str) -> Result<Vec<StoredEvent>, StoreError> {
        use entity::events;
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
        Ok(events::Entity::find()
            .filter(events::Column::ObjectId.eq(object_id))
            .order_by_asc(events::Column::Id)
            .all(self.read())
            .await?
            .into_iter()
            .map(|r| StoredEvent {
                id: r.id,
                event_type: r.event_type,
                object_version: r.object_version,
                payload: r.payload,
            })
            .collect())
    }
}
