//! Idempotency records: the first answer to a POST with an `Idempotency-Key`, kept 24 hours per
//! caller and key, written in the same transaction as the state change it answers.

use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter, TransactionTrait,
};

use sea_orm::sea_query::ExprTrait;

use crate::entity::idempotency as row;
use crate::error::is_unique_violation;
use crate::persist::ByKey;
use crate::{Store, StoreError};

/// How long a key is remembered.
pub const RETENTION_MS: i64 = 24 * 60 * 60 * 1000;

/// An HTTP answer as stored: status and JSON body. It may hold what the API lets the same caller
/// read back anyway (a payment's client secret); it never holds a secret that is shown only once
/// (API keys and webhook secrets of later issues are rendered without it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: String,
}

/// Renders the answer to keep for an outcome; `None` means "do not keep" (e.g. a 5xx, which
/// the client should be able to retry).
pub type Render<T> = Box<dyn Fn(Result<&T, &StoreError>) -> Option<StoredResponse> + Send + Sync>;

/// What a unit of work must record about its idempotency key.
pub struct IdemRequest<T> {
    /// The caller (merchant and mode today; the API key or user later).
    pub scope: String,
    /// The client's `Idempotency-Key`.
    pub key: String,
    /// Hash of method, path and body: the same key with another request is refused.
    pub request_hash: String,
    /// `true`: this unit's success is the final answer. `false`: the request continues after
    /// this unit (a refund waiting for its provider), so the key is only marked in flight.
    pub finish: bool,
    /// Now, unix milliseconds.
    pub now_ms: i64,
    /// Turns the outcome into the stored answer.
    pub render: Render<T>,
}

/// What is known about a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyRecord {
    /// A request with this key is still running.
    InFlight {
        /// Its request hash.
        request_hash: String,
    },
    /// The request finished with this answer.
    Complete {
        /// Its request hash.
        request_hash: String,
        /// The answer to replay.
        response: StoredResponse,
    },
}

const IN_FLIGHT: &str = "in_flight";
const COMPLETE: &str = "complete";

pub(crate) async fn record_success<T>(
    conn: &DatabaseTransaction,
    idem: &IdemRequest<T>,
    value: &T,
) -> Result<(), StoreError> {
    if !idem.finish {
        return write(conn, &idem.scope, &idem.key, &idem.request_hash, idem.now_ms, None).await;
    }
    match (idem.render)(Ok(value)) {
        Some(resp) => {
            write(
                conn,
                &idem.scope,
                &idem.key,
                &idem.request_hash,
                idem.now_ms,
                Some(resp),
            )
            .await
        }
        None => Ok(()),
    }
}

pub(crate) async fn record_failure<T>(
    txn: &DatabaseTransaction,
    idem: &IdemRequest<T>,
    err: &StoreError,
) -> Result<(), StoreError> {
    if !err.is_business() {
        return Ok(());
    }
    let IdemRequest {
        scope,
        key,
        request_hash,
        now_ms,
        render,
        ..
    } = idem;
    let Some(resp) = render(Err(err)) else { return Ok(()) };
    // Its own savepoint: on PostgreSQL a failed statement would otherwise poison the whole
    // shared transaction.
    // A failing SAVEPOINT/RELEASE/ROLLBACK TO means the shared transaction is gone.
    let sp = txn.begin().await.map_err(|_| StoreError::TransactionAborted)?;
    match write(&sp, scope, key, request_hash, *now_ms, Some(resp)).await {
        Ok(()) => sp.commit().await.map_err(|_| StoreError::TransactionAborted),
        Err(e) => match sp.rollback().await {
            Ok(()) => Err(e),
            Err(_) => Err(StoreError::TransactionAborted),
        },
    }
}

async fn write<C: ConnectionTrait>(
    conn: &C,
    scope: &str,
    key: &str,
    request_hash: &str,
    now_ms: i64,
    response: Option<StoredResponse>,
) -> Result<(), StoreError> {
    // Make room: an expired record, and — only when finishing — this request's own in-flight
    // marker. Marking in flight never replaces a live marker, so a second node running the same
    // key collides on the primary key instead of repeating the work.
    let own_marker = row::Column::State
        .eq(IN_FLIGHT)
        .and(row::Column::RequestHash.eq(request_hash));
    let stale = if response.is_some() {
        row::Column::ExpiresAt.lt(now_ms).or(own_marker)
    } else {
        row::Column::ExpiresAt.lt(now_ms)
    };
    row::Entity::delete_many()
        .filter(row::Column::Scope.eq(scope))
        .filter(row::Column::IdemKey.eq(key))
        .filter(stale)
        .exec(conn)
        .await?;
    let (state, status, body) = match response {
        Some(r) => (COMPLETE, i32::from(r.status), Some(r.body)),
        None => (IN_FLIGHT, 0, None),
    };
    let model = row::ActiveModel {
        scope: Set(scope.to_owned()),
        idem_key: Set(key.to_owned()),
        request_hash: Set(request_hash.to_owned()),
        state: Set(state.to_owned()),
        status_code: Set(status),
        body: Set(body),
        created_at: Set(now_ms),
        expires_at: Set(now_ms + RETENTION_MS),
    };
    match row::Entity::insert(model).exec_without_returning(conn).await {
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e) => Err(StoreError::IdempotencyRace),
        Err(e) => Err(e.into()),
    }
}

impl Store {
    /// The record for `scope` + `key`, unless it has expired.
    pub async fn idempotency_lookup(
        &self,
        scope: &str,
        key: &str,
        now_ms: i64,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        let found = row::Entity::find()
            .filter(row::Column::Scope.eq(scope))
            .filter(row::Column::IdemKey.eq(key))
            .filter(row::Column::ExpiresAt.gte(now_ms))
            .by_key(self.read())
            .await?;
        Ok(found.map(|r| match (r.state.as_str(), r.body) {
            (COMPLETE, Some(body)) => IdempotencyRecord::Complete {
                request_hash: r.request_hash,
                response: StoredResponse {
                    status: u16::try_from(r.status_code).unwrap_or(500),
                    body,
                },
            },
            _ => IdempotencyRecord::InFlight {
                request_hash: r.request_hash,
            },
        }))
    }

    /// Deletes records past their retention; returns how many.
    pub async fn purge_expired_idempotency_keys(&self, now_ms: i64) -> Result<u64, StoreError> {
        let res = row::Entity::delete_many()
            .filter(row::Column::ExpiresAt.lt(now_ms))
            .exec(self.read())
            .await?;
        Ok(res.rows_affected)
    }
}

impl Store {
    /// Records the final answer of a multi-step request whose last step changed nothing (a
    /// refund the provider has not settled yet), as its own small unit of work.
    pub async fn finish_idempotency<T: Clone + Send + Sync + 'static>(
        &self,
        value: T,
        idem: IdemRequest<T>,
    ) -> Result<T, StoreError> {
        let w = crate::writer::work(move |_txn, _sink| {
            let v = value.clone();
            Box::pin(async move { Ok(v) })
        });
        self.writer().submit(w, Some(idem)).await
    }
}
