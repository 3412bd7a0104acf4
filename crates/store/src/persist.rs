//! Writes shared by the units of work: compare-and-set updates and outbox inserts.

use jinliu_domain::{EventDraft, EventId, MerchantId, Order, OrderId, Payment, Refund, Timestamp};
use sea_orm::sea_query::{Expr, ExprTrait, Value, sea_value_to_json_value};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityName, EntityTrait, IdenStatic, Iterable,
    QueryFilter, Statement,
};

use crate::convert::{ms, order_to_row, payment_to_row, refund_to_row};
use crate::entity::{audit_log, events, orders, payments, refunds, sync_jobs};
use crate::error::is_unique_violation;
use crate::writer::UnitSink;
use crate::{OutboxEvent, StoreError};

/// Renders the outbox rows for `drafts`, in order, with ids that sort in that order, and records
/// them in the unit's sink. The writer inserts the rows of every unit that succeeded at the end
/// of the batch, inside the same transaction (see [`write_batch_tail`]), and
/// publishes them once committed; a unit rolled back to its savepoint writes none.
pub(crate) fn record_events(
    sink: &UnitSink,
    merchant: &MerchantId,
    livemode: bool,
    drafts: &[EventDraft],
    now: Timestamp,
) {
    if drafts.is_empty() {
        return;
    }
    sink.record(drafts.iter().map(|d| {
        let id = EventId::generate();
        OutboxEvent {
            payload: d.render(&id, now, livemode),
            id: id.to_string(),
            merchant_id: merchant.clone(),
            livemode,
            event_type: d.event_type.as_str().to_owned(),
            object_id: d.object_id.clone(),
            object_version: d.version,
            created_at: now,
        }
    }));
}

/// Rows per multi-row INSERT: below every backend's bound-parameter limit (SQLite 32,766,
/// PostgreSQL and MySQL 65,535) for the widest row written this way (a payment's 30 columns:
/// 15,000 parameters).
pub(crate) const INSERT_CHUNK: usize = 500;

/// Writes what a batch's units left for its end: the [`Deferred`] writes its optimistic pass has
/// not made yet (the order claims and payment rows of its last run of new attempts), the outbox
/// rows with their webhook messages, one per matching enabled endpoint, the status-sync jobs,
/// and the audit rows with their sealer queue entries. The events go in already dispatched, and
/// nothing writes them a second time (the relay only handles rows an older jinliu left
/// undispatched).
///
/// PostgreSQL gets everything in one statement ([`write_together`]), which makes the messages
/// itself ([`crate::webhooks::pg_fan_out`]); being one statement, it is all or nothing on its own,
/// so `conn` may be the batch's transaction or, when nothing else of the batch is to be written,
/// the bare connection (see `writer.rs`). SQLite and MySQL get one read of the endpoints
/// ([`crate::webhooks::messages_for`]), the claims' `UPDATE` ([`Deferred::flush`]) and one
/// multi-row INSERT per table, [`INSERT_CHUNK`] rows a statement, in the batch's transaction.
///
/// A claim that misses is [`StoreError::Conflict`], as from [`Deferred::flush`]; the caller
/// must then roll the transaction back (on PostgreSQL the statement has failed whole already).
pub(crate) async fn write_batch_tail<C: ConnectionTrait>(
    conn: &C,
    mut deferred: Deferred,
    written: &[OutboxEvent],
    sync_jobs: Vec<sync_jobs::ActiveModel>,
    audit: Vec<audit_log::ActiveModel>,
) -> Result<(), StoreError> {
    let models: Vec<events::Model> = written
        .iter()
        .map(|e| events::Model {
            id: e.id.clone(),
            merchant_id: e.merchant_id.to_string(),
            livemode: e.livemode,
            event_type: e.event_type.clone(),
            object_id: e.object_id.clone(),
            object_version: e.object_version,
            payload: e.payload.clone(),
            created_at: ms(e.created_at),
            webhooks_dispatched: true,
        })
        .collect();
    let pending = crate::audit::pending_rows(&audit);
    if deferred.is_empty() && models.is_empty() && sync_jobs.is_empty() && audit.is_empty() {
        // A batch of sealer passes, say: nothing to write.
        return Ok(());
    }
    if conn.get_database_backend() == DbBackend::Postgres {
        let events: Vec<events::ActiveModel> = models.into_iter().map(events::ActiveModel::from).collect();
        return write_together(
            conn,
            deferred.claims_json(),
            deferred.order_claims.len(),
            JsonRows::of(&events)?,
            [
                JsonRows::of(&deferred.payments)?,
                JsonRows::of(&sync_jobs)?,
                JsonRows::of(&audit)?,
                JsonRows::of(&pending)?,
            ],
        )
        .await;
    }
    let messages = crate::webhooks::messages_for(conn, &models, None).await?;
    let events: Vec<events::ActiveModel> = models.into_iter().map(events::ActiveModel::from).collect();
    deferred.flush(conn).await?;
    insert_chunked(conn, messages).await?;
    insert_chunked(conn, events).await?;
    insert_chunked(conn, sync_jobs).await?;
    insert_chunked(conn, audit).await?;
    insert_chunked(conn, pending).await
}

/// One table's rows for [`write_together`]: its name, its columns, and the rows as a JSON array
/// of objects keyed by column.
pub(crate) struct JsonRows {
    table: String,
    columns: Vec<String>,
    rows: String,
}

impl JsonRows {
    /// Every column of every row of `rows` (all of them must be set, as for an INSERT).
    ///
    /// Written straight into the text: building a `serde_json::Value` tree first cost an owned
    /// key and a map entry per cell, a few hundred allocations per batch on the writer's thread.
    pub(crate) fn of<A: ActiveModelTrait>(rows: &[A]) -> Result<JsonRows, StoreError> {
        let columns: Vec<_> = <<A::Entity as EntityTrait>::Column as Iterable>::iter().collect();
        let mut out: Vec<u8> = Vec::with_capacity(2 + rows.len() * 64 * columns.len().max(1));
        out.push(b'[');
        for (i, r) in rows.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'{');
            for (j, c) in columns.iter().enumerate() {
                if j > 0 {
                    out.push(b',');
                }
                // Column names are plain identifiers: nothing in them needs escaping.
                out.push(b'"');
                out.extend_from_slice(c.as_str().as_bytes());
                out.extend_from_slice(b"\":");
                match r.get(*c).into_value() {
                    Some(v) => serde_json::to_writer(&mut out, &sea_value_to_json_value(&v))
                        .map_err(|e| StoreError::Corrupt(format!("a row as JSON: {e}")))?,
                    None => out.extend_from_slice(b"null"),
                }
            }
            out.push(b'}');
        }
        out.push(b']');
        Ok(JsonRows {
            table: A::Entity::default().table_name().to_owned(),
            columns: columns.iter().map(|c| c.as_str().to_owned()).collect(),
            rows: String::from_utf8(out).map_err(|e| StoreError::Corrupt(format!("a row as JSON: {e}")))?,
        })
    }
}

/// PostgreSQL only: makes a batch's order claims, inserts its `events` rows with their webhook
/// messages and the rows of the other tables in `parts`, all with one statement. The claims (a JSON
/// array of `{id, version}`) are an `UPDATE … FROM json_populate_recordset(…)` that bumps each
/// order still at its expected version; each table's rows are one JSON parameter expanded the
/// same way. Every part but the final check is a data-modifying `WITH` (PostgreSQL runs each of
/// them to completion, read or not), so a unique violation in any part fails the whole statement;
/// the final check, `jinliu_expect_claims` (migration m0014), fails it with SQLSTATE 40001 when
/// fewer than `expected` orders were claimed. Either way nothing of it is written, with or
/// without a transaction around it.
///
/// One statement instead of a read of the endpoints and one statement per table saves the
/// writer's serial chain seven round trips per batch of new payment attempts, and its text
/// depends only on the tables, never on the row counts, so it is prepared once per connection
/// (multi-row `VALUES` lists are a new statement for every count).
async fn write_together<C: ConnectionTrait, const N: usize>(
    conn: &C,
    claims: String,
    expected: usize,
    events: JsonRows,
    parts: [JsonRows; N],
) -> Result<(), StoreError> {
    // The `= ANY (ARRAY(…))` repeats the join's ids for the planner's sake: it estimates any set
    // returning function at 100 rows, and against an `orders` table of a few thousand rows it
    // then preferred a sequential scan and a hash join; an `ANY` over a sub-select it estimates
    // at 10 elements, which keeps the primary-key index scan at every table size.
    let mut sql = String::from(
        "WITH claimed AS (UPDATE \"orders\" AS o SET \"version\" = o.\"version\" + 1 \
         FROM json_populate_recordset(NULL::\"orders\", $1::json) AS c \
         WHERE o.\"id\" = c.\"id\" AND o.\"version\" = c.\"version\" \
         AND o.\"id\" = ANY (ARRAY(SELECT x->>'id' FROM json_array_elements($1::json) AS x)) \
         RETURNING o.\"id\")",
    );
    // `$2` is the events, whose inserted rows the fan-out reads (`RETURNING *`, so their JSON is
    // parsed once); the other tables follow.
    let parts: Vec<JsonRows> = std::iter::once(events).chain(parts).collect();
    for (i, p) in parts.iter().enumerate() {
        let columns = p
            .columns
            .iter()
            .map(|c| format!("\"{c}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let (name, returning) = if i == 0 {
            ("new_events".to_owned(), " RETURNING *")
        } else {
            (format!("t{i}"), "")
        };
        sql.push_str(&format!(
            ", {name} AS (INSERT INTO \"{t}\" ({columns}) SELECT {columns} \
             FROM json_populate_recordset(NULL::\"{t}\", ${n}::json){returning})",
            t = p.table,
            n = i + 2
        ));
    }
    sql.push_str(&format!(
        ", fan_out AS ({}) SELECT jinliu_expect_claims(count(*), ${}) AS claimed FROM claimed",
        crate::webhooks::pg_fan_out("new_events"),
        parts.len() + 2
    ));
    let values = std::iter::once(Value::String(Some(claims)))
        .chain(parts.into_iter().map(|p| Value::String(Some(p.rows))))
        .chain(std::iter::once(Value::BigInt(Some(expected as i64))));
    conn.query_one_raw(Statement::from_sql_and_values(DbBackend::Postgres, sql, values))
        .await?;
    Ok(())
}

/// Reading the one row a primary- or unique-key filter selects.
///
/// Not `Select::one`: it adds `LIMIT ?` with 1 bound as a parameter, and SQLite re-prepares a
/// statement whose `LIMIT` is a bound parameter every time a value is bound to it (its query
/// planner reads that value). On the payment-creation path that re-parsing was about 6 % of the
/// server's CPU (docs/performance.md, run G). Only for filters that select at most one row: the
/// query has no `LIMIT`, so any other filter reads every row it matches.
pub(crate) trait ByKey<E: EntityTrait> {
    fn by_key<'a, C: ConnectionTrait>(
        self,
        conn: &'a C,
    ) -> impl std::future::Future<Output = Result<Option<E::Model>, sea_orm::DbErr>> + Send + 'a
    where
        Self: 'a;
}

impl<E: EntityTrait> ByKey<E> for sea_orm::Select<E>
where
    E::Model: Send + Sync,
{
    async fn by_key<'a, C: ConnectionTrait>(self, conn: &'a C) -> Result<Option<E::Model>, sea_orm::DbErr>
    where
        Self: 'a,
    {
        Ok(self.all(conn).await?.into_iter().next())
    }
}

/// Inserts rows of one table, [`INSERT_CHUNK`] per statement (the writer's deferred rows).
pub(crate) async fn insert_chunked<C, A>(conn: &C, rows: Vec<A>) -> Result<(), StoreError>
where
    C: ConnectionTrait,
    A: ActiveModelTrait + Send,
{
    Ok(insert_chunked_raw(conn, rows).await?)
}

/// [`insert_chunked`] with the database's own error, for a caller that tells a unique-key
/// violation from other failures.
pub(crate) async fn insert_chunked_raw<C, A>(conn: &C, mut rows: Vec<A>) -> Result<(), sea_orm::DbErr>
where
    C: ConnectionTrait,
    A: ActiveModelTrait + Send,
{
    while !rows.is_empty() {
        let rest = rows.split_off(rows.len().min(INSERT_CHUNK));
        <A::Entity as EntityTrait>::insert_many(rows)
            .exec_without_returning(conn)
            .await?;
        rows = rest;
    }
    Ok(())
}

/// Writes `row` only if the stored row still has `expected_version`: the compare-and-set that
/// makes concurrent writers (other batches, other nodes) notice each other.
pub(crate) async fn compare_and_set<C, A>(
    conn: &C,
    mut row: A,
    (id_col, id): (<A::Entity as EntityTrait>::Column, &str),
    (version_col, expected_version): (<A::Entity as EntityTrait>::Column, i64),
) -> Result<(), StoreError>
where
    C: ConnectionTrait,
    A: ActiveModelTrait + Send,
{
    row.not_set(id_col);
    let res = <A::Entity as EntityTrait>::update_many()
        .set(row)
        .filter(id_col.eq(id))
        .filter(version_col.eq(expected_version))
        .exec(conn)
        .await?;
    if res.rows_affected == 1 {
        Ok(())
    } else {
        Err(StoreError::Conflict)
    }
}

/// Updates an order only if nobody changed it since it was read at `expected_version`.
pub(crate) async fn update_order<C: ConnectionTrait>(
    conn: &C,
    o: &Order,
    expected_version: i64,
) -> Result<(), StoreError> {
    let (id, version) = (
        (orders::Column::Id, o.id.as_str()),
        (orders::Column::Version, expected_version),
    );
    compare_and_set(conn, order_to_row(o), id, version).await
}

/// Claims an order for a new payment attempt: bumps its version from `expected_version`, and
/// changes nothing else (the one-column form of [`update_order`] for that case).
///
/// When the writer lets the unit defer ([`UnitSink::defers`]), the claim is only recorded, and
/// the writer makes it together with the claims of the units around it ([`Deferred::flush`]).
pub(crate) async fn claim_order<C: ConnectionTrait>(
    conn: &C,
    sink: &UnitSink,
    id: &OrderId,
    expected_version: i64,
) -> Result<(), StoreError> {
    if sink.defers() {
        sink.defer(|d| d.claim_order(id, expected_version));
        return Ok(());
    }
    let res = orders::Entity::update_many()
        .col_expr(orders::Column::Version, Expr::value(expected_version + 1))
        .filter(orders::Column::Id.eq(id.as_str()))
        .filter(orders::Column::Version.eq(expected_version))
        .exec(conn)
        .await?;
    if res.rows_affected == 1 {
        Ok(())
    } else {
        Err(StoreError::Conflict)
    }
}

/// Inserts a new payment row, or records it for the writer to insert with the rows of the units
/// around it when the unit may defer. A provider reference another payment already holds is the
/// provider's fault, not the caller's: `Corrupt`.
pub(crate) async fn insert_payment<C: ConnectionTrait>(
    conn: &C,
    sink: &UnitSink,
    row: payments::ActiveModel,
) -> Result<(), StoreError> {
    if sink.defers() {
        sink.defer(|d| d.insert_payment(row));
        return Ok(());
    }
    match payments::Entity::insert(row).exec_without_returning(conn).await {
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e) => Err(StoreError::Corrupt("duplicate provider reference".into())),
        Err(e) => Err(e.into()),
    }
}

/// Writes that units which allow it leave to their writer, so that a run of such units costs two
/// statements in all instead of two each: the order claims of new payment attempts
/// ([`claim_order`]) and the new payment rows ([`insert_payment`]). Those of a batch's last run
/// go in with the batch's tail ([`write_batch_tail`]), on PostgreSQL in its one statement.
///
/// Only the writer's optimistic pass defers (see `writer.rs`), and it makes these writes before
/// it runs any unit that does not defer, so only the deferring units of the same run can read the
/// database without them. Hence the rule for a deferring unit: it must not base a decision on
/// rows another unit may have deferred unless its own claim checks that decision (a new attempt
/// reads nothing in that pass; it decides on the order its caller read, which its claim checks).
/// Any miss (a claim whose order moved on, two claims of one order, a duplicate provider
/// reference) fails the flush; the writer then rolls the batch back and runs it again unit by
/// unit without deferring, where the unit concerned meets the conflict itself (and retries it, or
/// reports it) and the others are unaffected.
#[derive(Default)]
pub(crate) struct Deferred {
    order_claims: Vec<(String, i64)>,
    payments: Vec<payments::ActiveModel>,
}

/// Counts only: a payment row holds its client secret and payment token.
impl std::fmt::Debug for Deferred {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deferred")
            .field("order_claims", &self.order_claims.len())
            .field("payments", &self.payments.len())
            .finish()
    }
}

/// Claims per UPDATE: two bound parameters per claim plus one per id.
const CLAIM_CHUNK: usize = 200;

impl Deferred {
    /// Records a claim of order `id` at `expected_version` ([`claim_order`]).
    pub(crate) fn claim_order(&mut self, id: &OrderId, expected_version: i64) {
        self.order_claims.push((id.to_string(), expected_version));
    }

    /// Records a new payment row ([`insert_payment`]).
    pub(crate) fn insert_payment(&mut self, row: payments::ActiveModel) {
        self.payments.push(row);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.order_claims.is_empty() && self.payments.is_empty()
    }

    /// The order claims as a JSON array of `{"id", "version"}` objects ([`write_together`]).
    fn claims_json(&self) -> String {
        serde_json::Value::Array(
            self.order_claims
                .iter()
                .map(|(id, version)| serde_json::json!({ "id": id, "version": version }))
                .collect(),
        )
        .to_string()
    }

    pub(crate) fn append(&mut self, other: &mut Deferred) {
        self.order_claims.append(&mut other.order_claims);
        self.payments.append(&mut other.payments);
    }

    /// Makes the recorded writes: every claim (`UPDATE orders SET version = version + 1 WHERE
    /// id IN (…) AND version = CASE WHEN id = … THEN … END`, which must change exactly one row
    /// per claim), then every payment row in multi-row INSERTs. Leaves `self` empty.
    pub(crate) async fn flush<C: ConnectionTrait>(&mut self, conn: &C) -> Result<(), StoreError> {
        let claims = std::mem::take(&mut self.order_claims);
        for chunk in claims.chunks(CLAIM_CHUNK) {
            let mut expected = Expr::case(orders::Column::Id.eq(chunk[0].0.as_str()), Expr::value(chunk[0].1));
            for (id, version) in &chunk[1..] {
                expected = expected.case(orders::Column::Id.eq(id.as_str()), Expr::value(*version));
            }
            let res = orders::Entity::update_many()
                .col_expr(orders::Column::Version, Expr::col(orders::Column::Version).add(1))
                .filter(orders::Column::Id.is_in(chunk.iter().map(|(id, _)| id.as_str())))
                .filter(Expr::col(orders::Column::Version).eq(expected))
                .exec(conn)
                .await?;
            if res.rows_affected != chunk.len() as u64 {
                return Err(StoreError::Conflict);
            }
        }
        insert_chunked(conn, std::mem::take(&mut self.payments)).await
    }
}

/// Updates a payment only if nobody changed it since it was read at `expected_version`.
pub(crate) async fn update_payment<C: ConnectionTrait>(
    conn: &C,
    p: &Payment,
    expected_version: i64,
) -> Result<(), StoreError> {
    let (id, version) = (
        (payments::Column::Id, p.id.as_str()),
        (payments::Column::Version, expected_version),
    );
    compare_and_set(conn, payment_to_row(p), id, version).await
}

/// Updates a refund only if nobody changed it since it was read at `expected_version`.
pub(crate) async fn update_refund<C: ConnectionTrait>(
    conn: &C,
    r: &Refund,
    expected_version: i64,
) -> Result<(), StoreError> {
    let (id, version) = (
        (refunds::Column::Id, r.id.as_str()),
        (refunds::Column::Version, expected_version),
    );
    compare_and_set(conn, refund_to_row(r), id, version).await
}

#[cfg(test)]
mod tests {
    use sea_orm::sea_query::sea_value_to_json_value;
    use sea_orm::{ActiveModelTrait, EntityTrait, Iterable};

    use super::JsonRows;
    use crate::entity::{audit_pending, events};

    /// What `JsonRows::of` wrote before it wrote the text itself: a `serde_json::Value` per row.
    fn as_values<A: ActiveModelTrait>(rows: &[A]) -> serde_json::Value {
        rows.iter()
            .map(|r| {
                <<A::Entity as EntityTrait>::Column as Iterable>::iter()
                    .map(|c| {
                        let v = r
                            .get(c)
                            .into_value()
                            .map_or(serde_json::Value::Null, |v| sea_value_to_json_value(&v));
                        (sea_orm::IdenStatic::as_str(&c).to_owned(), v)
                    })
                    .collect::<serde_json::Map<_, _>>()
                    .into()
            })
            .collect::<Vec<serde_json::Value>>()
            .into()
    }

    fn parsed(rows: &JsonRows) -> serde_json::Value {
        serde_json::from_str(&rows.rows).unwrap_or_else(|e| panic!("{e}: {}", rows.rows))
    }

    #[test]
    fn rows_written_as_json_text_read_back_as_the_same_values() {
        let events: Vec<events::ActiveModel> = ["plain", "quote \" backslash \\ newline \n tab \t", "台灣 €"]
            .iter()
            .enumerate()
            .map(|(i, text)| {
                events::Model {
                    id: format!("evt_{i}"),
                    merchant_id: "mer_1".into(),
                    livemode: i % 2 == 0,
                    event_type: "payment.created".into(),
                    object_id: (*text).into(),
                    object_version: i64::MAX - i as i64,
                    payload: format!("{{\"text\":{}}}", serde_json::Value::from(*text)),
                    created_at: -1,
                    webhooks_dispatched: true,
                }
                .into()
            })
            .collect();
        let json = JsonRows::of(&events).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed(&json), as_values(&events));
        let pending: Vec<audit_pending::ActiveModel> = [None, Some("ab".to_owned())]
            .into_iter()
            .enumerate()
            .map(|(i, row_hash)| {
                audit_pending::Model {
                    audit_id: format!("aud_{i}"),
                    row_hash,
                }
                .into()
            })
            .collect();
        let json = JsonRows::of(&pending).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed(&json), as_values(&pending));
        assert_eq!(parsed(&json)[0]["row_hash"], serde_json::Value::Null);
        let none: Vec<events::ActiveModel> = Vec::new();
        assert_eq!(JsonRows::of(&none).unwrap_or_else(|e| panic!("{e}")).rows, "[]");
    }
}
