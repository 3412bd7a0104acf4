//! The store's one error type. Business refusals (an unknown id, a transition the state machine
//! forbids, a refund above what is left) are separate variants from database failures, so the
//! server can answer 4xx for the former and a bare 5xx for the latter.

use std::sync::Arc;

use jinliu_domain::TransitionError;
use jinliu_domain::payment::RefundRejected;
use jinliu_domain::settle::AttemptRejected;

/// Everything a store call can fail with. Cloneable because one commit failure is reported to
/// every unit of work that shared the commit.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The object does not exist in the caller's scope.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The state machine refused the transition.
    #[error(transparent)]
    Transition(#[from] TransitionError),
    /// A new payment attempt was refused.
    #[error(transparent)]
    Attempt(#[from] AttemptRejected),
    /// A refund was refused.
    #[error(transparent)]
    Refund(#[from] RefundRejected),
    /// Another writer changed the row first (version mismatch, deadlock, serialization failure).
    /// Units of work retry this themselves; it only escapes after several tries.
    #[error("the object was changed concurrently; retry")]
    Conflict,
    /// The database rolled back the whole shared transaction (a MySQL/MariaDB deadlock does this,
    /// unlike PostgreSQL, which only fails the statement): nothing of the batch was written.
    #[error("the transaction was rolled back by the database; retry")]
    TransactionAborted,
    /// A unit of work panicked (a bug); it was rolled back.
    #[error("a unit of work failed unexpectedly")]
    Panicked,
    /// Another request with the same idempotency key committed first.
    #[error("another request with this idempotency key finished first")]
    IdempotencyRace,
    /// A per-merchant limit would be exceeded (e.g. "webhook endpoints").
    #[error("too many {0}")]
    LimitReached(&'static str),
    /// A stored value could not be read back (a bug or manual edit).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// Bad store configuration.
    #[error("store configuration: {0}")]
    Config(String),
    /// The writer has shut down.
    #[error("the store is shutting down")]
    Closed,
    /// The database failed.
    #[error("database error: {0}")]
    Database(Arc<sea_orm::DbErr>),
}

impl StoreError {
    /// Whether a statement that failed with this error may have been carried out anyway: the
    /// database answered no SQLSTATE (the connection broke, the answer was lost) after the
    /// statement may have reached it. For a statement outside a transaction, which commits by
    /// itself, that means its outcome is unknown. A refusal by the database (a SQLSTATE) or a
    /// failure to get a connection at all means it was not.
    pub(crate) fn outcome_unknown(&self) -> bool {
        match self {
            StoreError::Database(e) => {
                database_error(e).is_none() && !matches!(**e, sea_orm::DbErr::ConnectionAcquire(_))
            }
            _ => false,
        }
    }

    /// Worth running the unit of work again in a fresh savepoint.
    pub(crate) fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Conflict)
    }

    /// A short code for the audit log's `outcome` (`refused:<code>`).
    pub(crate) fn audit_code(&self) -> &'static str {
        match self {
            StoreError::NotFound(_) => "not_found",
            StoreError::Transition(_) => "invalid_transition",
            StoreError::Attempt(_) => "attempt_rejected",
            StoreError::Refund(_) => "refund_rejected",
            _ => "error",
        }
    }

    /// A refusal the client caused (stored with the idempotency key), as opposed to an
    /// infrastructure failure (not stored, so a retry can succeed).
    pub fn is_business(&self) -> bool {
        matches!(
            self,
            StoreError::NotFound(_)
                | StoreError::Transition(_)
                | StoreError::Attempt(_)
                | StoreError::Refund(_)
                | StoreError::LimitReached(_)
        )
    }
}

impl From<sea_orm::DbErr> for StoreError {
    fn from(e: sea_orm::DbErr) -> Self {
        if is_whole_transaction_rollback(&e) {
            StoreError::TransactionAborted
        } else if is_concurrency_failure(&e) {
            StoreError::Conflict
        } else {
            StoreError::Database(Arc::new(e))
        }
    }
}

fn database_error(e: &sea_orm::DbErr) -> Option<&(dyn sqlx::error::DatabaseError + 'static)> {
    use sea_orm::{DbErr, RuntimeErr};
    let (DbErr::Exec(RuntimeErr::SqlxError(inner)) | DbErr::Query(RuntimeErr::SqlxError(inner))) = e else {
        return None;
    };
    match inner.as_ref() {
        sqlx::Error::Database(db) => Some(db.as_ref()),
        _ => None,
    }
}

/// InnoDB answers a deadlock (1213) by rolling back the entire transaction, savepoints included,
/// so the shared batch cannot continue.
fn is_whole_transaction_rollback(e: &sea_orm::DbErr) -> bool {
    database_error(e)
        .and_then(|db| db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>())
        .is_some_and(|m| m.number() == 1213)
}

/// Deadlocks, serialization failures and lock timeouts: the database asks us to try again.
fn is_concurrency_failure(e: &sea_orm::DbErr) -> bool {
    let Some(db) = database_error(e) else {
        return false;
    };
    match db.code().as_deref() {
        // PostgreSQL: serialization_failure, deadlock_detected, lock_not_available.
        Some("40001" | "40P01" | "55P03") => true,
        // MySQL/MariaDB report SQLSTATE 40001 for deadlocks and HY000 for lock wait timeout 1205.
        Some("HY000") => db.message().contains("Lock wait timeout"),
        // SQLite: SQLITE_BUSY (5) and SQLITE_LOCKED (6).
        Some("5" | "6" | "517") => true,
        _ => false,
    }
}

/// Whether a database error is a unique-key violation.
pub(crate) fn is_unique_violation(e: &sea_orm::DbErr) -> bool {
    matches!(e.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_)))
}

/// Turns "not found" into `None` for lookups that answer an `Option`.
pub(crate) fn found<T>(r: Result<T, StoreError>) -> Result<Option<T>, StoreError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(StoreError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sea_orm::{ConnAcquireErr, DbErr, RuntimeErr};

    use super::StoreError;

    #[test]
    fn a_lost_answer_leaves_the_outcome_unknown_but_a_refusal_or_no_connection_does_not() {
        let lost = StoreError::Database(Arc::new(DbErr::Query(RuntimeErr::SqlxError(Arc::new(
            sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset)),
        )))));
        assert!(lost.outcome_unknown());
        let no_connection = StoreError::Database(Arc::new(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout)));
        assert!(!no_connection.outcome_unknown());
        // A SQLSTATE 40001 (a claim that missed) arrives as `Conflict`: refused, nothing written.
        assert!(!StoreError::Conflict.outcome_unknown());
        assert!(!StoreError::Corrupt("a row as JSON".into()).outcome_unknown());
    }
}
