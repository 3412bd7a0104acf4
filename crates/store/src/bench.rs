//! Helpers for `jinliu bench` and fixtures: bulk-seeding orders, the raw insert baseline, and
//! scratch databases. Not used by the request path.

use std::time::{Duration, Instant};

use jinliu_domain::{
    EventId, MerchantId, Money, NewOrder, Order, OrderId, Payment, PaymentId, PaymentStatus, new_client_secret,
    provider_reference,
};
use sea_orm::ActiveValue::Set;
use sea_orm::{ConnectionTrait, Database, EntityTrait, TransactionTrait};

use crate::convert::{ms, order_to_row, payment_to_row};
use crate::entity::{events, orders, payments};
use crate::{Store, StoreError};

impl Store {
    /// Inserts `count` pending orders of `amount` for `merchant` in large batches (bypassing
    /// units of work and events: this prepares a benchmark, it is not a business operation).
    pub async fn seed_orders(
        &self,
        merchant: &MerchantId,
        amount: Money,
        count: usize,
    ) -> Result<Vec<OrderId>, StoreError> {
        let mut ids = Vec::with_capacity(count);
        let now = chrono::Utc::now();
        let txn = self.read().begin().await?;
        let mut left = count;
        while left > 0 {
            let n = left.min(500);
            let rows: Vec<_> = (0..n)
                // Random numbers could collide across half a million rows; a counter cannot.
                .map(|i| bench_order(merchant, amount, format!("B{:011}", ids.len() + i), now))
                .collect();
            ids.extend(rows.iter().map(|o| o.id.clone()));
            orders::Entity::insert_many(rows.iter().map(order_to_row))
                .exec_without_returning(&txn)
                .await?;
            left -= n;
        }
        txn.commit().await?;
        Ok(ids)
    }

    /// Inserts `count` orders, each with one pending payment of `amount` made through
    /// `provider`/`account`, in large batches (a benchmark fixture for notification ingestion).
    /// Returns the payments' provider references.
    pub async fn seed_pending_payments(
        &self,
        merchant: &MerchantId,
        provider: &str,
        account: &str,
        amount: Money,
        count: usize,
    ) -> Result<Vec<String>, StoreError> {
        Ok(self
            .seed_pending_payments_with_ids(merchant, provider, account, amount, count)
            .await?
            .into_iter()
            .map(|(_, reference)| reference)
            .collect())
    }

    /// Like [`Store::seed_pending_payments`], also returning each payment's id (the realtime
    /// benchmark watches them).
    pub async fn seed_pending_payments_with_ids(
        &self,
        merchant: &MerchantId,
        provider: &str,
        account: &str,
        amount: Money,
        count: usize,
    ) -> Result<Vec<(PaymentId, String)>, StoreError> {
        let mut references = Vec::with_capacity(count);
        let now = chrono::Utc::now();
        let txn = self.read().begin().await?;
        let mut left = count;
        while left > 0 {
            let n = left.min(250);
            let mut order_rows = Vec::with_capacity(n);
            let mut payment_rows = Vec::with_capacity(n);
            let first = references.len();
            for i in 0..n {
                let mut order = bench_order(merchant, amount, format!("N{:011}", first + i), now);
                // The order is claimed by its attempt, as a unit of work would leave it.
                order.version += 1;
                let id = PaymentId::generate();
                let reference = provider_reference(&id);
                payment_rows.push(payment_to_row(&Payment {
                    client_secret: new_client_secret(&id),
                    provider_reference: Some(reference.clone()),
                    provider_transaction_id: None,
                    merchant_id: merchant.clone(),
                    order_id: order.id.clone(),
                    provider: provider.to_owned(),
                    provider_account: account.to_owned(),
                    method: "bench".into(),
                    amount,
                    status: PaymentStatus::Pending,
                    payment_token: None,
                    qr_code_data: None,
                    success_url: None,
                    failure_url: None,
                    description: None,
                    customer_email: None,
                    customer_phone: None,
                    metadata: None,
                    refunded_minor: 0,
                    refund_pending_minor: 0,
                    late_success: false,
                    duplicate: false,
                    livemode: false,
                    version: 1,
                    expires_at: now + chrono::Duration::hours(1),
                    completed_at: None,
                    created_at: now,
                    updated_at: now,
                    id: id.clone(),
                }));
                order_rows.push(order_to_row(&order));
                references.push((id, reference));
            }
            orders::Entity::insert_many(order_rows)
                .exec_without_returning(&txn)
                .await?;
            payments::Entity::insert_many(payment_rows)
                .exec_without_returning(&txn)
                .await?;
            left -= n;
        }
        txn.commit().await?;
        Ok(references)
    }

    /// The baseline: for `duration`, `concurrency` tasks each insert one payment row and one
    /// event row per transaction, straight through the driver (no batching, no HTTP). Returns how
    /// many transactions committed and how long it took.
    pub async fn baseline_inserts(
        &self,
        duration: Duration,
        concurrency: usize,
    ) -> Result<(u64, Duration), StoreError> {
        let start = Instant::now();
        let deadline = start + duration;
        let mut tasks = Vec::new();
        for _ in 0..concurrency.max(1) {
            let db = self.read().clone();
            tasks.push(tokio::spawn(async move {
                let mut n = 0_u64;
                while Instant::now() < deadline {
                    let txn = db.begin().await?;
                    insert_payment_and_event(&txn).await?;
                    txn.commit().await?;
                    n += 1;
                }
                Ok::<u64, StoreError>(n)
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await.map_err(|e| StoreError::Config(e.to_string()))??;
        }
        Ok((total, start.elapsed()))
    }
}

/// A pending test-mode order of a benchmark fixture, numbered by the caller.
fn bench_order(merchant: &MerchantId, amount: Money, number: String, now: jinliu_domain::Timestamp) -> Order {
    let new = NewOrder {
        merchant_id: merchant.clone(),
        description: Some("bench".into()),
        amount,
        items: vec![],
        customer_email: None,
        customer_phone: None,
        metadata: None,
        livemode: false,
    };
    Order::create(new, number, now).0
}

async fn insert_payment_and_event<C: ConnectionTrait>(conn: &C) -> Result<(), StoreError> {
    let now = ms(chrono::Utc::now());
    let id = PaymentId::generate();
    let row = payments::ActiveModel {
        id: Set(id.to_string()),
        merchant_id: Set("mer_00000000000000000000000000000000".into()),
        livemode: Set(false),
        order_id: Set(OrderId::generate().to_string()),
        provider: Set("baseline".into()),
        provider_account: Set(String::new()),
        method: Set("qr".into()),
        amount_minor: Set(10_000),
        currency: Set("TWD".into()),
        status: Set("pending".into()),
        provider_reference: Set(Some(id.to_string())),
        provider_transaction_id: Set(None),
        payment_token: Set(Some("tok".into())),
        qr_code_data: Set(Some(r#"{"url":"http://127.0.0.1/"}"#.into())),
        client_secret: Set(format!("{id}_secret_baseline")),
        success_url: Set(None),
        failure_url: Set(None),
        description: Set(Some("baseline".into())),
        customer_email: Set(None),
        customer_phone: Set(None),
        metadata: Set(None),
        refunded_minor: Set(0),
        refund_pending_minor: Set(0),
        late_success: Set(false),
        duplicate: Set(false),
        version: Set(1),
        expires_at: Set(now + 900_000),
        completed_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    };
    payments::Entity::insert(row).exec_without_returning(conn).await?;
    let event = events::ActiveModel {
        id: Set(EventId::generate().to_string()),
        merchant_id: Set("mer_00000000000000000000000000000000".into()),
        livemode: Set(false),
        event_type: Set("payment.created".into()),
        object_id: Set(id.to_string()),
        object_version: Set(1),
        payload: Set(r#"{"data":{}}"#.into()),
        created_at: Set(now),
        webhooks_dispatched: Set(true),
    };
    events::Entity::insert(event).exec_without_returning(conn).await?;
    Ok(())
}

/// Creates an empty database `name` on the server at `server_url` (PostgreSQL or MySQL) and
/// returns its URL.
pub async fn create_scratch_database(server_url: &str, name: &str) -> Result<String, StoreError> {
    check_name(name)?;
    let admin = Database::connect(server_url).await?;
    admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await?;
    let _ = admin.close().await;
    Ok(replace_database(server_url, name))
}

/// Drops a database made by [`create_scratch_database`].
pub async fn drop_scratch_database(server_url: &str, name: &str) -> Result<(), StoreError> {
    check_name(name)?;
    let admin = Database::connect(server_url).await?;
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name}"))
        .await?;
    let _ = admin.close().await;
    Ok(())
}

fn check_name(name: &str) -> Result<(), StoreError> {
    // Interpolated into DDL (identifiers cannot be bound), so only [a-z0-9_] is allowed.
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(StoreError::Config(format!("bad database name {name:?}")));
    }
    Ok(())
}

/// Replaces the database (last path segment) of a server URL.
pub fn replace_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}
