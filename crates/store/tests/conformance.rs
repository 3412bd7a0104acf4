//! The store conformance suite: every case runs against SQLite, PostgreSQL and MySQL/MariaDB
//! (see jinliu-testkit for how the servers are found and when they may be skipped).

use std::future::Future;

use chrono::{Duration, Utc};
use jinliu_domain::{
    ApiKeyId, AuditActor, AuditContext, Currency, MerchantId, Money, NewOrder, Order, OrderId, OrderStatus, Payment,
    PaymentId, PaymentStatus, RefundStatus, Timestamp, new_client_secret,
};
use jinliu_store::{
    AuditCheckpoint, AuditFilter, IdemRequest, IdempotencyRecord, NotificationKey, OrderFilter, PaymentChange, Scope,
    Store, StoreConfig, StoreError, StoredResponse, SyncKind,
};
use jinliu_testkit::{Engine, TestDb, engines};

async fn run<F, Fut>(engine: Engine, case: F)
where
    F: FnOnce(Store, String) -> Fut,
    Fut: Future<Output = ()>,
{
    if !engines().contains(&engine) {
        eprintln!("{} not selected by JINLIU_TEST_DATABASES; skipped", engine.name());
        return;
    }
    let db = TestDb::new(engine).await;
    let store = open(&db.url).await;
    store.migrate().await.unwrap_or_else(|e| panic!("migrate: {e}"));
    case(store, db.url.clone()).await;
}

async fn open(url: &str) -> Store {
    Store::connect(&StoreConfig::new(url))
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"))
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $case() { super::run(jinliu_testkit::Engine::Sqlite, super::$case).await } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $case() { super::run(jinliu_testkit::Engine::Postgres, super::$case).await } )* }
        mod mysql { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $case() { super::run(jinliu_testkit::Engine::MySql, super::$case).await } )* }
    };
}

conformance!(
    migrations_can_run_twice,
    an_order_is_stored_with_its_created_event,
    a_payment_for_the_wrong_amount_writes_nothing,
    an_attempt_decided_on_a_stale_order_reads_it_again_before_writing,
    new_attempts_commit_as_their_batchs_one_statement_on_postgresql_unless_a_key_is_recorded,
    completing_an_attempt_pays_the_order_and_cancels_the_others_in_one_commit,
    parallel_refunds_from_two_nodes_never_exceed_the_captured_amount,
    a_refused_unit_in_a_shared_commit_does_not_roll_back_the_others,
    idempotency_records_keep_answers_and_refusals_but_not_failures,
    orders_list_newest_first_with_filters_pages_and_cursors,
    another_merchants_objects_are_invisible,
    a_refund_that_fails_at_the_provider_releases_its_reservation,
    a_key_in_flight_on_one_node_cannot_be_started_on_another,
    the_same_provider_notification_applies_once_but_a_new_status_gets_through,
    a_due_sync_job_is_leased_to_exactly_one_node,
    an_exclusive_refund_waits_for_the_pending_one_and_sync_waits_for_its_request,
    mutations_and_refusals_are_audited_with_the_request_that_made_them,
    the_audit_chain_reports_edited_swapped_deleted_and_truncated_rows,
    retention_prunes_whole_sealed_ranges_and_verification_still_passes,
    one_node_at_a_time_seals_the_audit_log,
    a_row_deleted_before_its_seal_is_reported_missing,
    a_row_neither_sealed_nor_queued_is_reported_unchained,
    an_event_becomes_one_message_per_matching_endpoint_in_the_transaction_that_commits_it,
    events_an_older_version_left_undispatched_are_relayed_once_even_with_two_relayers,
    a_due_webhook_message_is_leased_to_exactly_one_node_and_follows_its_schedule,
    the_relay_lease_is_held_by_one_node_at_a_time,
    the_event_feed_publishes_exactly_the_committed_outbox_rows,
    finished_webhook_messages_are_purged_after_their_retention_but_pending_ones_stay,
    provider_accounts_keep_one_default_per_provider_and_mode_and_stay_in_their_scope,
    hundreds_of_units_in_shared_commits_keep_their_events_and_audit_rows_and_seal_in_one_pass,
    attempts_on_one_order_submitted_together_each_claim_it_once,
    a_duplicate_provider_reference_among_attempts_committed_together_fails_alone,
    attempts_completed_while_they_are_being_created_leave_orders_and_payments_consistent,
);

fn scope() -> Scope {
    Scope {
        merchant_id: MerchantId::parse("mer_0000000000000000000000000000000a").unwrap_or_else(|| panic!()),
        livemode: false,
    }
}

fn twd(major: i64) -> Money {
    Money::from_minor(major * 100, Currency::Twd).unwrap_or_else(|e| panic!("{e}"))
}

fn new_order(scope: &Scope, amount: Money) -> NewOrder {
    NewOrder {
        merchant_id: scope.merchant_id.clone(),
        description: Some("tea".into()),
        amount,
        items: vec![],
        customer_email: Some("a@example.com".into()),
        customer_phone: None,
        metadata: Some(r#"{"sku":"T1"}"#.into()),
        livemode: scope.livemode,
    }
}

fn attempt(order: &Order, amount: Money, now: Timestamp) -> Payment {
    let id = PaymentId::generate();
    Payment {
        client_secret: new_client_secret(&id),
        provider_reference: Some(format!("ref-{id}")),
        provider_transaction_id: None,
        id,
        merchant_id: order.merchant_id.clone(),
        order_id: order.id.clone(),
        provider: "test".into(),
        provider_account: String::new(),
        method: "qr".into(),
        amount,
        status: PaymentStatus::Pending,
        payment_token: Some("tok".into()),
        qr_code_data: Some(r#"{"url":"http://127.0.0.1/pay"}"#.into()),
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
        livemode: order.livemode,
        version: 1,
        expires_at: now + Duration::minutes(15),
        completed_at: None,
        created_at: now,
        updated_at: now,
    }
}

/// An order with one completed payment of `major` TWD.
async fn paid_order(store: &Store, major: i64) -> (Order, Payment) {
    let s = scope();
    let now = Utc::now();
    let order = store
        .create_order(new_order(&s, twd(major)), now, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let p = store
        .create_payment(&s, &order, attempt(&order, twd(major), now), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let p = store
        .change_payment(
            None,
            &p.id,
            PaymentChange::Complete {
                transaction_id: Some("tx-1".into()),
            },
            now,
            None,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    (order, p)
}

async fn migrations_can_run_twice(store: Store, _url: String) {
    store.migrate().await.unwrap_or_else(|e| panic!("second migrate: {e}"));
    store.ping().await.unwrap_or_else(|e| panic!("ping: {e}"));
}

async fn an_order_is_stored_with_its_created_event(store: Store, _url: String) {
    let s = scope();
    let now = Utc::now();
    let created = store
        .create_order(new_order(&s, twd(100)), now, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let read = store
        .order(&s, &created.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("missing"));
    assert_eq!(read.order_number, created.order_number);
    assert_eq!(read.amount, twd(100));
    assert_eq!(read.metadata.as_deref(), Some(r#"{"sku":"T1"}"#));
    assert_eq!(read.created_at.timestamp_millis(), now.timestamp_millis());
    let events = store
        .events_for_object(created.id.as_str())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_type, "order.created");
    assert!(
        events[0].payload.contains(r#""amount":100.00"#),
        "{}",
        events[0].payload
    );
    assert!(
        !events[0].payload.contains("a@example.com"),
        "events never carry personal data"
    );
}

async fn a_payment_for_the_wrong_amount_writes_nothing(store: Store, _url: String) {
    let s = scope();
    let now = Utc::now();
    let order = store
        .create_order(new_order(&s, twd(100)), now, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let before = store.table_counts().await.unwrap_or_else(|e| panic!("{e}"));
    let err = store
        .create_payment(&s, &order, attempt(&order, twd(99), now), None)
        .await
        .err();
    assert!(matches!(err, Some(StoreError::Attempt(_))), "{err:?}");
    assert_eq!(store.table_counts().await.unwrap_or_else(|e| panic!("{e}")), before);
}

async fn an_attempt_decided_on_a_stale_order_reads_it_again_before_writing(store: Store, _url: String) {
    let s = scope();
    let now = Utc::now();
    let count = || async { store.table_counts().await.unwrap_or_else(|e| panic!("{e}")) };
    // Read while pending, paid since: the claim at the old version conflicts, the retry reads the
    // paid order and refuses, and nothing is written.
    let (stale, _) = paid_order(&store, 30).await;
    let before = count().await;
    let err = store
        .create_payment(&s, &stale, attempt(&stale, twd(30), now), None)
        .await
        .err();
    assert!(matches!(err, Some(StoreError::Attempt(_))), "{err:?}");
    // A snapshot from another scope is not the caller's order, whatever it says.
    let live = Scope {
        livemode: true,
        ..s.clone()
    };
    let err = store
        .create_payment(&live, &stale, attempt(&stale, twd(30), now), None)
        .await
        .err();
    assert!(matches!(err, Some(StoreError::NotFound("order"))), "{err:?}");
    assert_eq!(count().await, before);
    // Read before another attempt claimed it: still payable, accepted after reading it again,
    // with its event and its status-sync job.
    let order = store
        .create_order(new_order(&s, twd(50)), now, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    store
        .create_payment(&s, &order, attempt(&order, twd(50), now), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let before = count().await;
    let second = store
        .create_payment(&s, &order, attempt(&order, twd(50), now), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(second.status, PaymentStatus::Pending);
    let after = count().await;
    assert_eq!(
        (after.payments, after.events, after.sync_jobs),
        (before.payments + 1, before.events + 1, before.sync_jobs + 1)
    );
}

async fn new_attempts_commit_as_their_batchs_one_statement_on_postgresql_unless_a_key_is_recorded(
    store: Store,
    url: String,
) {
    use jinliu_domain::EventType;
    let s = scope();
    let now = Utc::now();
    // Subscribed to two types, so the statement's fan-out splits a list.
    let ep = webhook_endpoint(
        &store,
        &s,
        Some(vec![EventType::OrderCreated, EventType::PaymentCreated]),
        now,
    )
    .await;
    let orders = pending_orders(&store, 9, now).await;
    assert_eq!(message_count(&store, &s, &ep.id).await, 9, "order.created");
    let before = store.writer_stats();
    let counts = store.table_counts().await.unwrap_or_else(|e| panic!("{e}"));
    // Submitted together, so that batches hold several attempts.
    let created = futures::future::join_all(orders[..8].iter().zip(1..).map(|(order, major)| {
        let store = store.clone();
        let s = s.clone();
        async move {
            store
                .create_payment(&s, order, attempt(order, twd(major), now), None)
                .await
        }
    }))
    .await;
    for r in created {
        r.unwrap_or_else(|e| panic!("{e}"));
    }
    let attempts = store.writer_stats();
    let commits = attempts.commits - before.commits;
    let single = attempts.single_statement - before.single_statement;
    assert!(commits >= 1, "{attempts:?}");
    if url.starts_with("postgres") {
        assert_eq!(single, commits, "no BEGIN or COMMIT around them: {attempts:?}");
    } else {
        assert_eq!(
            single, 0,
            "a tail of several statements needs a transaction: {attempts:?}"
        );
    }
    // Whole: each attempt's row, its order's claim, its event and its status-sync job.
    let after = store.table_counts().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (after.payments, after.events, after.sync_jobs),
        (counts.payments + 8, counts.events + 8, counts.sync_jobs + 8)
    );
    assert_eq!(message_count(&store, &s, &ep.id).await, 9 + 8, "and payment.created");
    let claimed_once = |orders: Vec<Order>| {
        let (store, s) = (store.clone(), s.clone());
        async move {
            for order in orders {
                let now_order = store
                    .order(&s, &order.id)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"))
                    .unwrap_or_else(|| panic!("order"));
                assert_eq!(now_order.version, order.version + 1, "claimed once");
            }
        }
    };
    claimed_once(orders[..8].to_vec()).await;
    // A stale order among fresh ones, submitted together: the claim that misses fails the whole
    // statement (or flush), the batch runs again unit by unit, the fresh attempts commit once and
    // the stale one is refused on the order as it now is.
    let (stale, _) = paid_order(&store, 40).await;
    let fresh = pending_orders(&store, 4, now).await;
    let (counts, messages, reruns) = (
        store.table_counts().await.unwrap_or_else(|e| panic!("{e}")),
        message_count(&store, &s, &ep.id).await,
        store.writer_stats().reruns,
    );
    let mixed = futures::future::join_all(std::iter::once(&stale).chain(&fresh).map(|order| {
        let (store, s) = (store.clone(), s.clone());
        async move {
            store
                .create_payment(&s, order, attempt(order, order.amount, now), None)
                .await
        }
    }))
    .await;
    assert!(matches!(mixed[0], Err(StoreError::Attempt(_))), "{:?}", mixed[0]);
    for r in &mixed[1..] {
        assert!(r.is_ok(), "{r:?}");
    }
    let after = store.table_counts().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (after.payments, after.events, after.sync_jobs),
        (counts.payments + 4, counts.events + 4, counts.sync_jobs + 4)
    );
    assert_eq!(message_count(&store, &s, &ep.id).await, messages + 4);
    assert!(
        store.writer_stats().reruns > reruns,
        "the stale claim sent a batch to its second run"
    );
    claimed_once(fresh).await;
    // An idempotency record is a statement of the unit's own, so its batch is a transaction.
    let unkeyed = store.writer_stats();
    store
        .create_payment(
            &s,
            &orders[8],
            attempt(&orders[8], twd(9), now),
            Some(idem("k9", "h9", true)),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let keyed = store.writer_stats();
    assert_eq!(keyed.commits, unkeyed.commits + 1, "{keyed:?}");
    assert_eq!(keyed.single_statement, unkeyed.single_statement, "{keyed:?}");
}

async fn completing_an_attempt_pays_the_order_and_cancels_the_others_in_one_commit(store: Store, _url: String) {
    let s = scope();
    let now = Utc::now();
    let order = store
        .create_order(new_order(&s, twd(50)), now, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let a = store
        .create_payment(&s, &order, attempt(&order, twd(50), now), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let b = store
        .create_payment(&s, &order, attempt(&order, twd(50), now), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let a = store
        .change_payment(
            None,
            &a.id,
            PaymentChange::Complete {
                transaction_id: Some("tx-1".into()),
            },
            now,
            None,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((a.status, a.version), (PaymentStatus::Completed, 2));
    assert_eq!(a.provider_transaction_id.as_deref(), Some("tx-1"));
    let order = store
        .order(&s, &order.id)
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("order"));
    assert_eq!(order.status, OrderStatus::Paid);
    assert_eq!(order.paid_by.as_ref(), Some(&a.id));
    let b_now = store
        .payment(&s, &b.id)
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("b"));
    assert_eq!(b_now.status, PaymentStatus::Cancelled);
    // The customer paid the cancelled attempt anyway: real money, kept and flagged.
    let b_late = store
        .change_payment(
            None,
            &b.id,
            PaymentChange::Complete {
                transaction_id: Some("tx-1".into()),
            },
            now,
            None,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(b_late.late_success && b_late.duplicate);
    // A repeated confirmation changes nothing.
    let again = store
        .change_payment(
            None,
            &a.id,
            PaymentChange::Complete {
                transaction_id: Some("tx-1".into()),
            },
            now,
            None,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again.version, 2);
    let kinds: Vec<String> = store
        .events_for_object(b.id.as_str())
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(kinds, ["payment.created", "payment.cancelled", "payment.completed"]);
}

async fn parallel_refunds_from_two_nodes_never_exceed_the_captured_amount(store: Store, url: String) {
    let s = scope();
    let (_, p) = paid_order(&store, 100).await;
    // A second store on the same database is a second jinliu node with its own writer.
    let node_b = open(&url).await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let node = if i % 2 == 0 { store.clone() } else { node_b.clone() };
        let (s, id) = (s.clone(), p.id.clone());
        tasks.push(tokio::spawn(async move {
            node.start_refund(&s, &id, Some(6_000), None, false, Utc::now(), None)
                .await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap_or_else(|e| panic!("join: {e}")) {
            Ok(_) => ok += 1,
            Err(StoreError::Refund(_)) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(ok, 1, "exactly one 60 TWD refund fits in 100 TWD");
    let p = store
        .payment(&s, &p.id)
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("payment"));
    assert_eq!(p.refund_pending_minor, 6_000);
    assert_eq!(store.refunds_for_payment(&s, &p.id).await.unwrap_or_default().len(), 1);
}

async fn a_refused_unit_in_a_shared_commit_does_not_roll_back_the_others(store: Store, _url: String) {
    let s = scope();
    let now = Utc::now();
    let order = store
        .create_order(new_order(&s, twd(10)), now, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut tasks = Vec::new();
    for i in 0..40 {
        let (store, s, order) = (store.clone(), s.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                store
                    .create_order(new_order(&s, twd(1 + i)), now, None)
                    .await
                    .map(|_| ())
            } else {
                store
                    .create_payment(&s, &order, attempt(&order, twd(11), now), None)
                    .await
                    .map(|_| ())
            }
        }));
    }
    let mut created = 0;
    for (i, t) in tasks.into_iter().enumerate() {
        let r = t.await.unwrap_or_else(|e| panic!("join: {e}"));
        if i % 2 == 0 {
            assert!(r.is_ok(), "{r:?}");
            created += 1;
        } else {
            assert!(matches!(r, Err(StoreError::Attempt(_))), "{r:?}");
        }
    }
    let counts = store.table_counts().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(counts.orders, created + 1);
    assert_eq!(counts.payments, 0);
    // One `order.created` each: a batch run again after a refusal keeps no row of its first run.
    assert_eq!(counts.events, created + 1);
    let stats = store.writer_stats();
    assert!(stats.units >= 41, "{stats:?}");
}

fn idem<T: 'static>(key: &str, hash: &str, finish: bool) -> IdemRequest<T> {
    IdemRequest {
        scope: "mer_test".into(),
        key: key.into(),
        request_hash: hash.into(),
        finish,
        now_ms: Utc::now().timestamp_millis(),
        render: Box::new(|r: Result<&T, &StoreError>| match r {
            Ok(_) => Some(StoredResponse {
                status: 201,
                body: "{\"ok\":true}".into(),
            }),
            Err(e) if e.is_business() => Some(StoredResponse {
                status: 422,
                body: "{\"ok\":false}".into(),
            }),
            Err(_) => None,
        }),
    }
}

async fn idempotency_records_keep_answers_and_refusals_but_not_failures(store: Store, _url: String) {
    let s = scope();
    let now = Utc::now();
    let now_ms = now.timestamp_millis();
    store
        .create_order(new_order(&s, twd(5)), now, Some(idem("k1", "h1", true)))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let rec = store
        .idempotency_lookup("mer_test", "k1", now_ms)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        rec,
        Some(IdempotencyRecord::Complete {
            request_hash: "h1".into(),
            response: StoredResponse {
                status: 201,
                body: "{\"ok\":true}".into()
            }
        })
    );
    // A second unit with the same key loses the race and writes nothing.
    let before = store.table_counts().await.unwrap_or_else(|e| panic!("{e}"));
    let err = store
        .create_order(new_order(&s, twd(5)), now, Some(idem("k1", "h1", true)))
        .await
        .err();
    assert!(matches!(err, Some(StoreError::IdempotencyRace)), "{err:?}");
    assert_eq!(store.table_counts().await.unwrap_or_else(|e| panic!("{e}")), before);

    // A refusal is kept with its key.
    let order = store
        .create_order(new_order(&s, twd(5)), now, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let err = store
        .create_payment(&s, &order, attempt(&order, twd(6), now), Some(idem("k2", "h2", true)))
        .await
        .err();
    assert!(matches!(err, Some(StoreError::Attempt(_))));
    let rec = store
        .idempotency_lookup("mer_test", "k2", now_ms)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matches!(
            rec,
            Some(IdempotencyRecord::Complete {
                response: StoredResponse { status: 422, .. },
                ..
            })
        ),
        "{rec:?}"
    );

    // A multi-step request is in flight until its last unit finishes it.
    let (_, p) = paid_order(&store, 10).await;
    let (refund, _) = store
        .start_refund(&s, &p.id, None, None, false, now, Some(idem("k3", "h3", false)))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let rec = store
        .idempotency_lookup("mer_test", "k3", now_ms)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        rec,
        Some(IdempotencyRecord::InFlight {
            request_hash: "h3".into()
        })
    );
    store
        .settle_refund(&refund.id, Ok(None), now, Some(idem("k3", "h3", true)))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let rec = store
        .idempotency_lookup("mer_test", "k3", now_ms)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(rec, Some(IdempotencyRecord::Complete { .. })), "{rec:?}");

    // Expired records are invisible and purged.
    let later = now_ms + 25 * 3600 * 1000;
    assert_eq!(
        store
            .idempotency_lookup("mer_test", "k1", later)
            .await
            .unwrap_or_else(|e| panic!("{e}")),
        None
    );
    assert_eq!(
        store
            .purge_expired_idempotency_keys(later)
            .await
            .unwrap_or_else(|e| panic!("{e}")),
        3
    );
}

async fn orders_list_newest_first_with_filters_pages_and_cursors(store: Store, _url: String) {
    let s = scope();
    let base = Utc::now();
    let mut ids = Vec::new();
    for i in 0..7 {
        let o = store
            .create_order(new_order(&s, twd(i + 1)), base + Duration::seconds(i), None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        ids.push(o.id);
    }
    store
        .cancel_order(&s, &ids[0], base, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let page = |page, limit| OrderFilter {
        page,
        limit,
        ..OrderFilter::default()
    };
    let p1 = store
        .list_orders(&s, &page(1, 3))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((p1.total, p1.has_more, p1.items.len()), (7, true, 3));
    assert_eq!(p1.items[0].id, ids[6], "newest first");
    let p3 = store
        .list_orders(&s, &page(3, 3))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((p3.items.len(), p3.has_more), (1, false));
    let after = OrderFilter {
        starting_after: Some(ids[2].clone()),
        limit: 10,
        ..OrderFilter::default()
    };
    let rest: Vec<OrderId> = store
        .list_orders(&s, &after)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .items
        .into_iter()
        .map(|o| o.id)
        .collect();
    assert_eq!(rest, vec![ids[1].clone(), ids[0].clone()]);
    let cancelled = OrderFilter {
        status: Some(OrderStatus::Cancelled),
        limit: 10,
        ..OrderFilter::default()
    };
    assert_eq!(
        store
            .list_orders(&s, &cancelled)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .total,
        1
    );
    let window = OrderFilter {
        from_ms: Some((base + Duration::seconds(2)).timestamp_millis()),
        to_ms: Some((base + Duration::seconds(4)).timestamp_millis()),
        limit: 10,
        ..OrderFilter::default()
    };
    assert_eq!(
        store
            .list_orders(&s, &window)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .total,
        2
    );
}

async fn another_merchants_objects_are_invisible(store: Store, _url: String) {
    let (order, p) = paid_order(&store, 10).await;
    let other = Scope {
        merchant_id: MerchantId::generate(),
        livemode: false,
    };
    assert_eq!(store.order(&other, &order.id).await.ok().flatten(), None);
    assert_eq!(store.payment(&other, &p.id).await.ok().flatten(), None);
    let live = Scope {
        livemode: true,
        ..scope()
    };
    assert_eq!(
        store.payment(&live, &p.id).await.ok().flatten(),
        None,
        "test objects are invisible to live mode"
    );
    let err = store
        .start_refund(&other, &p.id, None, None, false, Utc::now(), None)
        .await
        .err();
    assert!(matches!(err, Some(StoreError::NotFound("payment"))), "{err:?}");
    assert!(matches!(
        store.refunds_for_payment(&other, &p.id).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn a_refund_that_fails_at_the_provider_releases_its_reservation(store: Store, _url: String) {
    let s = scope();
    let (order, p) = paid_order(&store, 100).await;
    let now = Utc::now();
    let (r1, _) = store
        .start_refund(&s, &p.id, Some(4_000), None, false, now, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let r1 = store
        .settle_refund(&r1.id, Err("declined".into()), now, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r1.status, RefundStatus::Failed);
    let (r2, _) = store
        .start_refund(&s, &p.id, None, Some("all".into()), false, now, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        r2.amount.minor(),
        10_000,
        "the failed refund's reservation was released"
    );
    store
        .settle_refund(&r2.id, Ok(Some("prov-re-1".into())), now, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let p = store
        .payment(&s, &p.id)
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("payment"));
    assert_eq!(
        (p.status, p.refunded_minor, p.refund_pending_minor),
        (PaymentStatus::Refunded, 10_000, 0)
    );
    let o = store
        .order(&s, &order.id)
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("order"));
    assert_eq!((o.status, o.refunded_minor), (OrderStatus::Refunded, 10_000));
    let err = store
        .start_refund(&s, &p.id, Some(1), None, false, now, None)
        .await
        .err();
    assert!(matches!(err, Some(StoreError::Refund(_))), "{err:?}");
}

async fn a_key_in_flight_on_one_node_cannot_be_started_on_another(store: Store, url: String) {
    let s = scope();
    let (_, p) = paid_order(&store, 10).await;
    let now = Utc::now();
    store
        .start_refund(&s, &p.id, Some(100), None, false, now, Some(idem("same", "h", false)))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let node_b = open(&url).await;
    let err = node_b
        .start_refund(&s, &p.id, Some(100), None, false, now, Some(idem("same", "h", false)))
        .await
        .err();
    assert!(matches!(err, Some(StoreError::IdempotencyRace)), "{err:?}");
    assert_eq!(store.refunds_for_payment(&s, &p.id).await.unwrap_or_default().len(), 1);
}

async fn the_same_provider_notification_applies_once_but_a_new_status_gets_through(store: Store, _url: String) {
    let s = scope();
    let now = Utc::now();
    let order = store
        .create_order(new_order(&s, twd(50)), now, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let p = store
        .create_payment(&s, &order, attempt(&order, twd(50), now), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let key = |code: &str| NotificationKey {
        provider: "test".into(),
        account: "acct".into(),
        reference: p.provider_reference.clone().unwrap_or_default(),
        status_code: code.into(),
    };
    // "waiting" (processing) then "paid", each sent five times, concurrently.
    for (code, change) in [
        ("3", PaymentChange::Processing),
        (
            "1",
            PaymentChange::Complete {
                transaction_id: Some("tx".into()),
            },
        ),
    ] {
        let tries: Vec<_> = (0..5)
            .map(|_| store.apply_notification(&p.id, key(code), change.clone(), now))
            .collect();
        let results = futures::future::join_all(tries).await;
        let applied = results.into_iter().filter(|r| matches!(r, Ok(Some(_)))).count();
        assert_eq!(applied, 1, "status {code} applied once");
    }
    let events = store
        .events_for_object(p.id.as_str())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["payment.created", "payment.processing", "payment.completed"]);
}

async fn a_due_sync_job_is_leased_to_exactly_one_node(store: Store, url: String) {
    let other = open(&url).await;
    let s = scope();
    let now = Utc::now();
    let order = store
        .create_order(new_order(&s, twd(7)), now, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let p = store
        .create_payment(&s, &order, attempt(&order, twd(7), now), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let nothing = store
        .claim_sync_jobs("a", now, 60_000, 10)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(nothing.is_empty(), "not due before the sync delay");
    assert!(
        store
            .sync_job_due_now(p.id.as_str(), now)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    );
    let later = now + Duration::seconds(1);
    let (a, b) = tokio::join!(
        store.claim_sync_jobs("node-a", later, 60_000, 10),
        other.claim_sync_jobs("node-b", later, 60_000, 10)
    );
    let (a, b) = (a.unwrap_or_else(|e| panic!("{e}")), b.unwrap_or_else(|e| panic!("{e}")));
    assert_eq!(a.len() + b.len(), 1, "exactly one node holds the job: {a:?} {b:?}");
    let (owner, job) = if a.is_empty() {
        ("node-b", &b[0])
    } else {
        ("node-a", &a[0])
    };
    assert_eq!((job.kind, job.attempts), (SyncKind::Payment, 1));
    // Given back with a later due time, nobody can claim it before then.
    store
        .reschedule_sync_job(owner, p.id.as_str(), later + Duration::seconds(30))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let early = other
        .claim_sync_jobs("node-c", later + Duration::seconds(29), 60_000, 10)
        .await;
    assert!(early.unwrap_or_else(|e| panic!("{e}")).is_empty());
    let due = other
        .claim_sync_jobs("node-c", later + Duration::seconds(31), 60_000, 10)
        .await;
    assert_eq!(due.unwrap_or_else(|e| panic!("{e}")).len(), 1);
    store
        .finish_sync_job(p.id.as_str())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let gone = other
        .claim_sync_jobs("node-c", later + Duration::seconds(999), 60_000, 10)
        .await;
    assert!(gone.unwrap_or_else(|e| panic!("{e}")).is_empty());
}

async fn an_exclusive_refund_waits_for_the_pending_one_and_sync_waits_for_its_request(store: Store, _url: String) {
    let s = scope();
    let (_, p) = paid_order(&store, 100).await;
    let now = Utc::now();
    let (first, _) = store
        .start_refund(&s, &p.id, Some(3_000), None, true, now, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let second = store
        .start_refund(&s, &p.id, Some(3_000), None, true, now, None)
        .await
        .err();
    assert!(
        matches!(
            second,
            Some(StoreError::Refund(jinliu_domain::payment::RefundRejected::InProgress))
        ),
        "{second:?}"
    );
    // The refund's job belongs to its request: not claimable, even when due.
    // (The payment's own job is due by then too; only the refund's matters here.)
    let far = now + Duration::seconds(3_600);
    let refund_jobs = |jobs: Vec<jinliu_store::SyncJob>| -> Vec<String> {
        jobs.into_iter()
            .filter(|j| j.kind == SyncKind::Refund)
            .map(|j| j.object_id)
            .collect()
    };
    let none = store
        .claim_sync_jobs("node-a", now + Duration::seconds(300), 60_000, 10)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(refund_jobs(none).is_empty());
    // The request gives up: sync may take it after the delay.
    store
        .release_refund_to_sync(first.id.as_str(), now)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let claimed = store
        .claim_sync_jobs("node-a", far, 60_000, 10)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(refund_jobs(claimed), [first.id.to_string()]);
    // Settling removes the job; the next refund may start.
    store
        .settle_refund(&first.id, Ok(None), now, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let after = store
        .claim_sync_jobs("node-b", far + Duration::seconds(999), 60_000, 10)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(refund_jobs(after).is_empty(), "a settled refund has no job");
    store
        .start_refund(&s, &p.id, Some(3_000), None, true, now, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

const AUDIT_KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

fn key_context(key: &ApiKeyId) -> AuditContext {
    AuditContext {
        actor: AuditActor::Key { id: key.clone() },
        merchant_id: Some(scope().merchant_id),
        request_id: Some("req-1".into()),
        ip: Some("203.0.113.9".into()),
        user_agent: Some("curl/8".into()),
    }
}

/// Runs raw SQL against the test database, as an attacker with database access would.
async fn tamper(url: &str, sql: &str) {
    use sea_orm::ConnectionTrait;
    let db = sea_orm::Database::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    db.execute_unprepared(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    db.close().await.unwrap_or_else(|e| panic!("close: {e}"));
}

/// The statement that sets `assignments` on the audit row sealed as `seq`.
fn edit_row(seq: i64, assignments: &str) -> String {
    format!("UPDATE audit_log SET {assignments} WHERE id = (SELECT audit_id FROM audit_seals WHERE seq = {seq})")
}

/// Deletes the audit row sealed as `seq` and its seal, as someone covering their tracks would.
async fn delete_sealed_row(url: &str, seq: i64) {
    tamper(
        url,
        &format!("DELETE FROM audit_log WHERE id = (SELECT audit_id FROM audit_seals WHERE seq = {seq})"),
    )
    .await;
    tamper(url, &format!("DELETE FROM audit_seals WHERE seq = {seq}")).await;
}

/// Seals everything committed so far and returns the head.
async fn seal_all(store: &Store) -> AuditCheckpoint {
    let pass = store
        .seal_audit(AUDIT_KEY, "node-a", Utc::now(), 30_000, 10_000)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(pass.leader);
    store
        .audit_head()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no head"))
}

async fn verify(store: &Store, checkpoints: &[AuditCheckpoint]) -> jinliu_store::AuditReport {
    store
        .verify_audit(AUDIT_KEY, checkpoints)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn webhook_endpoint(
    store: &Store,
    scope: &Scope,
    events: Option<Vec<jinliu_domain::EventType>>,
    now: Timestamp,
) -> jinliu_domain::webhook::WebhookEndpoint {
    store
        .create_webhook_endpoint(
            scope,
            jinliu_store::NewEndpoint {
                id: jinliu_domain::EndpointId::generate(),
                url: "https://example.com/hook".into(),
                description: None,
                events,
                secret_sealed: "v1.k1.sealed".into(),
            },
            16,
            now,
            None,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn mutations_and_refusals_are_audited_with_the_request_that_made_them(store: Store, _url: String) {
    let key = ApiKeyId::generate();
    let (order, payment) = jinliu_store::with_audit_context(key_context(&key), paid_order(&store, 10)).await;
    let refused = jinliu_store::with_audit_context(
        key_context(&key),
        store.start_refund(&scope(), &payment.id, Some(1_100), None, false, Utc::now(), None),
    )
    .await;
    assert!(matches!(refused, Err(StoreError::Refund(_))), "{refused:?}");
    let rows = store
        .audit_entries(&AuditFilter {
            merchant_id: Some(scope().merchant_id),
            limit: 100,
            ..AuditFilter::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let actions: Vec<(&str, &str)> = rows
        .iter()
        .rev()
        .map(|r| (r.action.as_str(), r.outcome.as_str()))
        .collect();
    assert_eq!(
        actions,
        vec![
            ("order.create", "ok"),
            ("payment.create", "ok"),
            ("payment.complete", "ok"),
            ("refund.create", "refused:refund_rejected"),
        ]
    );
    let create = &rows[rows.len() - 1];
    assert_eq!(create.target_id, order.id.as_str());
    assert_eq!(create.actor_type, "key");
    assert_eq!(create.actor_id.as_deref(), Some(key.as_str()));
    assert_eq!(create.request_id.as_deref(), Some("req-1"));
    assert_eq!(create.ip.as_deref(), Some("203.0.113.9"));
    assert!(!create.detail.contains("a@example.com"), "no personal data in the log");
    // Outside any request context a row is still written, and says it is unattributed.
    paid_order(&store, 5).await;
    let latest = store
        .audit_entries(&AuditFilter {
            limit: 1,
            ..AuditFilter::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (latest[0].actor_type.as_str(), latest[0].actor_id.as_deref()),
        ("system", Some("unattributed"))
    );
    let other = store
        .audit_entries(&AuditFilter {
            merchant_id: Some(MerchantId::generate()),
            limit: 100,
            ..AuditFilter::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(other.is_empty(), "another merchant sees none of these rows");
}

async fn the_audit_chain_reports_edited_swapped_deleted_and_truncated_rows(store: Store, url: String) {
    for _ in 0..3 {
        paid_order(&store, 10).await;
    }
    let head = seal_all(&store).await;
    assert_eq!(head.seq, 9);
    let cps = [head.clone()];
    let clean = verify(&store, &cps).await;
    assert_eq!((clean.checked, clean.problem.clone()), (9, None), "{clean:?}");

    // An edited outcome.
    tamper(&url, &edit_row(3, "outcome = 'refused:not_found'")).await;
    let r = verify(&store, &cps).await;
    let p = r.problem.unwrap_or_else(|| panic!("edit not detected"));
    assert_eq!((p.kind, p.seq), ("altered", 3));
    tamper(&url, &edit_row(3, "outcome = 'ok'")).await;
    assert_eq!(verify(&store, &cps).await.problem, None);

    // Two rows swapped (their numbers exchanged).
    tamper(&url, "UPDATE audit_seals SET seq = -5 WHERE seq = 5").await;
    tamper(&url, "UPDATE audit_seals SET seq = 5 WHERE seq = 6").await;
    tamper(&url, "UPDATE audit_seals SET seq = 6 WHERE seq = -5").await;
    let p = verify(&store, &cps)
        .await
        .problem
        .unwrap_or_else(|| panic!("swap not detected"));
    assert_eq!((p.kind, p.seq), ("altered", 5));
    tamper(&url, "UPDATE audit_seals SET seq = -5 WHERE seq = 5").await;
    tamper(&url, "UPDATE audit_seals SET seq = 5 WHERE seq = 6").await;
    tamper(&url, "UPDATE audit_seals SET seq = 6 WHERE seq = -5").await;
    assert_eq!(verify(&store, &cps).await.problem, None);

    // The last row cut off with its seal: only the checkpoint outside the database can tell.
    delete_sealed_row(&url, 9).await;
    let without_checkpoint = verify(&store, &[]).await;
    assert_eq!((without_checkpoint.checked, without_checkpoint.problem), (8, None));
    let p = verify(&store, &cps)
        .await
        .problem
        .unwrap_or_else(|| panic!("truncation not detected"));
    assert_eq!((p.kind, p.seq), ("truncated", 9));

    // A forged MAC on an edited row does not verify without the key.
    tamper(&url, &edit_row(2, "action = 'order.view'")).await;
    tamper(&url, "UPDATE audit_seals SET mac = 'ffff' WHERE seq = 2").await;
    let p = verify(&store, &cps)
        .await
        .problem
        .unwrap_or_else(|| panic!("forgery not detected"));
    assert_eq!((p.kind, p.seq), ("altered", 2));

    // A row deleted from the middle, its seal left.
    tamper(
        &url,
        "DELETE FROM audit_log WHERE id = (SELECT audit_id FROM audit_seals WHERE seq = 2)",
    )
    .await;
    let p = verify(&store, &cps)
        .await
        .problem
        .unwrap_or_else(|| panic!("deletion not detected"));
    assert_eq!((p.kind, p.seq), ("deleted", 2));
    // And with its seal: the numbers have a gap.
    tamper(&url, "DELETE FROM audit_seals WHERE seq = 2").await;
    let p = verify(&store, &cps)
        .await
        .problem
        .unwrap_or_else(|| panic!("deletion not detected"));
    assert_eq!((p.kind, p.seq), ("deleted", 2));
}

async fn retention_prunes_whole_sealed_ranges_and_verification_still_passes(store: Store, url: String) {
    for _ in 0..2 {
        paid_order(&store, 10).await;
    }
    let first = seal_all(&store).await;
    assert_eq!(first.seq, 6);
    let mid = AuditCheckpoint {
        seq: 4,
        mac: store
            .audit_entry_at(4)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .and_then(|e| e.mac)
            .unwrap_or_else(|| panic!("no row 4")),
    };
    let pruned = store.prune_audit(&mid).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(pruned, 3);
    paid_order(&store, 10).await;
    let head = seal_all(&store).await;
    assert_eq!(head.seq, 9, "numbering goes on after a prune");
    let r = verify(&store, &[mid.clone(), first.clone(), head.clone()]).await;
    assert_eq!((r.first_seq, r.checked, r.problem), (Some(4), 6, None));
    // Without the checkpoint that vouches for the first retained row, the gap shows.
    let r = verify(&store, &[first, head]).await;
    assert_eq!(r.problem.map(|p| p.kind), Some("unanchored"));
    // A checkpoint that does not match the row is refused as a pruning point.
    let bogus = AuditCheckpoint {
        seq: 5,
        mac: "00".into(),
    };
    assert!(store.prune_audit(&bogus).await.is_err());
    delete_sealed_row(&url, 4).await;
    let r = verify(&store, &[mid]).await;
    assert_eq!(
        r.problem.map(|p| p.kind),
        Some("unanchored"),
        "the anchor row itself deleted"
    );
}

/// The sealer chains the hash the writer queued with the row, without reading the row: a row
/// deleted between its commit and its seal leaves a link without a row.
async fn a_row_deleted_before_its_seal_is_reported_missing(store: Store, url: String) {
    paid_order(&store, 10).await;
    let first = seal_all(&store).await;
    assert_eq!(first.seq, 3);
    paid_order(&store, 10).await;
    let rows = store.audit_page(None, 100).await.unwrap_or_else(|e| panic!("{e}"));
    let victim = rows
        .iter()
        .find(|r| r.seq.is_none())
        .unwrap_or_else(|| panic!("an unsealed row"));
    tamper(&url, &format!("DELETE FROM audit_log WHERE id = '{}'", victim.id)).await;
    let head = seal_all(&store).await;
    assert_eq!(head.seq, 6, "its link is made all the same");
    let p = verify(&store, &[])
        .await
        .problem
        .unwrap_or_else(|| panic!("deletion not detected"));
    assert_eq!((p.kind, p.row_id.as_deref()), ("deleted", Some(victim.id.as_str())));
}

/// A row written behind jinliu's back has no queue entry, and an entry deleted takes its row
/// out of the sealer's sight: either way verification names the row.
async fn a_row_neither_sealed_nor_queued_is_reported_unchained(store: Store, url: String) {
    paid_order(&store, 10).await;
    seal_all(&store).await;
    assert_eq!(verify(&store, &[]).await.problem, None);
    tamper(
        &url,
        "INSERT INTO audit_log (id, at, actor_type, action, target_type, target_id, digest, detail, outcome) \
         VALUES ('aud_forged', 1, 'system', 'order.create', 'order', 'ord_x', '00', '{}', 'ok')",
    )
    .await;
    let p = verify(&store, &[])
        .await
        .problem
        .unwrap_or_else(|| panic!("forged row not reported"));
    assert_eq!((p.kind, p.row_id.as_deref()), ("unchained", Some("aud_forged")));
    tamper(&url, "DELETE FROM audit_log WHERE id = 'aud_forged'").await;

    paid_order(&store, 10).await;
    assert_eq!(verify(&store, &[]).await.problem, None, "queued rows are not unchained");
    tamper(&url, "DELETE FROM audit_pending").await;
    let p = verify(&store, &[])
        .await
        .problem
        .unwrap_or_else(|| panic!("dequeued row not reported"));
    assert_eq!(p.kind, "unchained");
}

async fn one_node_at_a_time_seals_the_audit_log(store: Store, url: String) {
    let other = open(&url).await;
    paid_order(&store, 10).await;
    let now = Utc::now();
    let a = store
        .seal_audit(AUDIT_KEY, "node-a", now, 30_000, 100)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(a.leader && a.sealed == 3, "{a:?}");
    paid_order(&store, 10).await;
    let b = other
        .seal_audit(AUDIT_KEY, "node-b", now, 30_000, 100)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((b.leader, b.sealed), (false, 0), "node A holds the lease");
    let later = now + Duration::seconds(31);
    let b = other
        .seal_audit(AUDIT_KEY, "node-b", later, 30_000, 100)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(b.leader && b.sealed == 3, "node B takes over an expired lease: {b:?}");
    let r = verify(&store, &[]).await;
    assert_eq!((r.checked, r.problem), (6, None));
}

/// More units than one sealer statement chains, sharing commits: every order keeps its event and
/// its audit row (written once per batch), and one seal pass chains them all, over several
/// UPDATE statements, into a chain that verifies.
async fn hundreds_of_units_in_shared_commits_keep_their_events_and_audit_rows_and_seal_in_one_pass(
    store: Store,
    _url: String,
) {
    let s = scope();
    let now = Utc::now();
    let mut tasks = Vec::new();
    for i in 0..450 {
        let (store, s) = (store.clone(), s.clone());
        tasks.push(tokio::spawn(async move {
            store.create_order(new_order(&s, twd(1 + i)), now, None).await
        }));
    }
    let mut committed = 0_u64;
    for t in tasks {
        match t.await.unwrap_or_else(|e| panic!("join: {e}")) {
            Ok(_) => committed += 1,
            // A MySQL deadlock aborts a whole batch: none of it is written, audit rows included.
            Err(StoreError::TransactionAborted) => {}
            Err(other) => panic!("{other}"),
        }
    }
    assert!(committed > 400, "{committed} of 450 committed");
    let stats = store.writer_stats();
    assert!(stats.commits < stats.units, "the units shared commits: {stats:?}");
    let counts = store.table_counts().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((counts.orders, counts.events), (committed, committed));
    let pass = store
        .seal_audit(AUDIT_KEY, "node-a", now, 30_000, 10_000)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((pass.leader, pass.sealed as u64), (true, committed));
    let r = verify(&store, &[]).await;
    assert_eq!((r.checked, r.unsealed, r.problem), (committed, 0, None));
}

/// How many messages endpoint `ep` has, after checking that each is as new as a message is made
/// (by the writer, in SQL on PostgreSQL, or by the relay, in Rust): an id of the generated
/// shape (a UUIDv7 body) made within the last minute (the test's and the database's clocks
/// agree that far), due at once, no attempt, and its event's type and body.
async fn message_count(store: &Store, s: &Scope, ep: &jinliu_domain::EndpointId) -> u64 {
    let page = store
        .webhook_messages(
            s,
            ep,
            &jinliu_store::MessageFilter {
                limit: 100,
                ..Default::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for m in &page.items {
        let id = m.id.as_str();
        assert_eq!(jinliu_domain::MessageId::parse(id).as_ref(), Some(&m.id), "{id}");
        let body = &id[jinliu_domain::MessageId::PREFIX.len()..];
        assert_eq!(&body[12..13], "7", "a UUIDv7: {id}");
        assert!(
            matches!(&body[16..17], "8" | "9" | "a" | "b"),
            "the RFC 9562 variant: {id}"
        );
        let id_ms = i64::from_str_radix(&body[..12], 16).unwrap_or_else(|e| panic!("{e}: {id}"));
        assert!(
            (id_ms - Utc::now().timestamp_millis()).abs() < 60_000,
            "an id made now: {id}"
        );
        assert_eq!(m.status, jinliu_domain::webhook::MessageStatus::Pending, "{m:?}");
        assert_eq!((m.attempts, m.series_attempts), (0, 0), "{m:?}");
        assert_eq!(m.next_attempt_at, Some(m.created_at), "{m:?}");
        assert!(m.event_id.starts_with("evt_"), "{m:?}");
        let payload: serde_json::Value = serde_json::from_str(&m.payload).unwrap_or_else(|e| panic!("{e}: {m:?}"));
        assert_eq!(payload["id"], m.event_id.as_str(), "{m:?}");
        assert_eq!(payload["type"], m.event_type.as_str(), "{m:?}");
    }
    page.total
}

async fn an_event_becomes_one_message_per_matching_endpoint_in_the_transaction_that_commits_it(
    store: Store,
    _url: String,
) {
    use jinliu_domain::EventType;
    let s = scope();
    let now = Utc::now();
    let all = webhook_endpoint(&store, &s, None, now).await;
    let paid_only = webhook_endpoint(&store, &s, Some(vec![EventType::PaymentCompleted]), now).await;
    let orders_only = webhook_endpoint(&store, &s, Some(vec![EventType::OrderCreated]), now).await;
    let off = webhook_endpoint(&store, &s, None, now).await;
    store
        .update_webhook_endpoint(
            &s,
            &off.id,
            jinliu_store::EndpointPatch {
                enabled: Some(false),
                ..Default::default()
            },
            now,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let live = Scope {
        livemode: true,
        ..s.clone()
    };
    let other_mode = webhook_endpoint(&store, &live, None, now).await;
    let younger = webhook_endpoint(&store, &s, None, now + Duration::seconds(1)).await;
    // Three orders, two of them submitted together (they may share a commit): three
    // order.created events, older than the `younger` endpoint.
    let together = futures::future::join(
        store.create_order(new_order(&s, twd(5)), now, None),
        store.create_order(new_order(&s, twd(6)), now, None),
    );
    let (a, b) = together.await;
    a.unwrap_or_else(|e| panic!("{e}"));
    b.unwrap_or_else(|e| panic!("{e}"));
    store
        .create_order(new_order(&s, twd(7)), now, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(message_count(&store, &s, &all.id).await, 3);
    assert_eq!(message_count(&store, &s, &orders_only.id).await, 3);
    assert_eq!(message_count(&store, &s, &paid_only.id).await, 0, "not subscribed");
    assert_eq!(message_count(&store, &s, &off.id).await, 0, "disabled");
    assert_eq!(message_count(&store, &live, &other_mode.id).await, 0, "other mode");
    assert_eq!(
        message_count(&store, &s, &younger.id).await,
        0,
        "younger than the events"
    );
    // Nothing is left for the relay: the events went in dispatched.
    let relayed = store
        .relay_webhook_events(100, now)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(relayed, jinliu_store::RelayReport::default());
}

async fn events_an_older_version_left_undispatched_are_relayed_once_even_with_two_relayers(store: Store, url: String) {
    let other_node = open(&url).await;
    let s = scope();
    let now = Utc::now();
    for major in [5, 6, 7] {
        store
            .create_order(new_order(&s, twd(major)), now, None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    // Made after the events: it hears them only because they are undispatched rows as an
    // older jinliu left them (it relayed instead of making messages at commit), which the
    // relay dispatches with the endpoints it finds then.
    let ep = webhook_endpoint(&store, &s, None, now - Duration::seconds(1)).await;
    tamper(&url, "UPDATE events SET webhooks_dispatched = false").await;
    // Both nodes relay at once, without the lease: the conditional mark still lets each event
    // through once.
    let (a, b) = tokio::join!(
        store.relay_webhook_events(2, now),
        other_node.relay_webhook_events(100, now)
    );
    let (a, b) = (a.unwrap_or_else(|e| panic!("{e}")), b.unwrap_or_else(|e| panic!("{e}")));
    let rest = store
        .relay_webhook_events(100, now)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(a.events + b.events + rest.events, 3, "{a:?} {b:?} {rest:?}");
    assert_eq!(a.messages + b.messages + rest.messages, 3, "{a:?} {b:?} {rest:?}");
    let again = store
        .relay_webhook_events(100, now)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again, jinliu_store::RelayReport::default());
    assert_eq!(message_count(&store, &s, &ep.id).await, 3);
}

async fn a_due_webhook_message_is_leased_to_exactly_one_node_and_follows_its_schedule(store: Store, url: String) {
    use jinliu_domain::webhook::WebhookAttempt;
    let other = open(&url).await;
    let s = scope();
    let now = Utc::now();
    let ep = webhook_endpoint(&store, &s, None, now).await;
    store
        .create_order(new_order(&s, twd(5)), now, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (a, b) = tokio::join!(
        store.claim_webhook_messages("node-a", now, 60_000, 10),
        other.claim_webhook_messages("node-b", now, 60_000, 10)
    );
    let (a, b) = (a.unwrap_or_else(|e| panic!("{e}")), b.unwrap_or_else(|e| panic!("{e}")));
    assert_eq!(a.len() + b.len(), 1, "exactly one node holds the message: {a:?} {b:?}");
    let (owner, m) = if a.is_empty() {
        ("node-b", &b[0])
    } else {
        ("node-a", &a[0])
    };
    assert!(
        other
            .claim_webhook_messages("node-c", now, 60_000, 10)
            .await
            .unwrap_or_default()
            .is_empty(),
        "leased"
    );
    assert!(
        store
            .renew_webhook_lease(owner, &m.id, now, 60_000)
            .await
            .unwrap_or(false)
    );
    assert!(
        !store
            .renew_webhook_lease("node-c", &m.id, now, 60_000)
            .await
            .unwrap_or(true)
    );
    let retry_at = now + Duration::seconds(5);
    let attempt = |at: Timestamp, ok: bool| WebhookAttempt {
        id: jinliu_domain::AttemptId::generate(),
        message_id: m.id.clone(),
        attempted_at: at,
        status_code: Some(if ok { 200 } else { 500 }),
        duration_ms: 3,
        response_body: Some("x".into()),
        error: None,
        succeeded: ok,
        next_attempt_at: None,
    };
    let disabled = store
        .record_webhook_attempt(
            owner,
            &ep.id,
            attempt(now, false),
            jinliu_store::Delivery::Failed {
                retry_at: Some(retry_at),
                disable: None,
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(disabled, None);
    let early = other
        .claim_webhook_messages("node-c", retry_at - Duration::milliseconds(1), 60_000, 10)
        .await;
    assert!(
        early.unwrap_or_else(|e| panic!("{e}")).is_empty(),
        "not before its retry time"
    );
    let due = other
        .claim_webhook_messages("node-c", retry_at, 60_000, 10)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((due.len(), due[0].attempts, due[0].series_attempts), (1, 1, 1));
    other
        .record_webhook_attempt(
            "node-c",
            &ep.id,
            attempt(retry_at, true),
            jinliu_store::Delivery::Succeeded,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let later = store
        .claim_webhook_messages("node-a", retry_at + Duration::days(9), 60_000, 10)
        .await;
    assert!(
        later.unwrap_or_else(|e| panic!("{e}")).is_empty(),
        "a delivered message is done"
    );
    let (done, attempts) = store
        .webhook_message(&s, &m.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("message"));
    assert_eq!(done.status, jinliu_domain::webhook::MessageStatus::Succeeded);
    assert_eq!(attempts.len(), 2);
    assert!(!attempts[0].succeeded && attempts[1].succeeded);
    let ep_now = store
        .webhook_endpoint(&s, &ep.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("endpoint"));
    assert_eq!(ep_now.failing_since, None, "a success ends the failure streak");
}

async fn the_relay_lease_is_held_by_one_node_at_a_time(store: Store, url: String) {
    let other = open(&url).await;
    let now = Utc::now();
    let lease = jinliu_store::RELAY_LEASE;
    let (a, b) = tokio::join!(
        store.claim_worker_lease(lease, "node-a", now, 30_000),
        other.claim_worker_lease(lease, "node-b", now, 30_000)
    );
    let (a, b) = (a.unwrap_or_else(|e| panic!("{e}")), b.unwrap_or_else(|e| panic!("{e}")));
    assert!(a ^ b, "exactly one node gets it: {a} {b}");
    let (holder, waiter) = if a { ("node-a", "node-b") } else { ("node-b", "node-a") };
    assert!(
        store
            .claim_worker_lease(lease, holder, now, 30_000)
            .await
            .unwrap_or(false),
        "renewal at the same instant"
    );
    assert!(
        !store
            .claim_worker_lease(lease, waiter, now + Duration::seconds(29), 30_000)
            .await
            .unwrap_or(true)
    );
    assert!(
        store
            .claim_worker_lease(lease, waiter, now + Duration::seconds(31), 30_000)
            .await
            .unwrap_or(false),
        "an expired lease can be taken"
    );
    store
        .release_worker_lease(lease, waiter)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        store
            .claim_worker_lease(lease, holder, now, 30_000)
            .await
            .unwrap_or(false),
        "free after release"
    );
}

async fn the_event_feed_publishes_exactly_the_committed_outbox_rows(store: Store, _url: String) {
    let s = scope();
    let now = Utc::now();
    // Key k-taken is finished first: later units with it write their order and its event, then
    // lose the idempotency race and are rolled back to their savepoint, inside shared batches.
    store
        .create_order(new_order(&s, twd(5)), now, Some(idem("k-taken", "h", true)))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let order = store
        .create_order(new_order(&s, twd(10)), now, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let before: Vec<String> = store
        .events_for_object(order.id.as_str())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|e| e.id)
        .collect();
    let mut feed = store.subscribe_events();
    let mut tasks = Vec::new();
    for i in 0..30 {
        let (store, s, order) = (store.clone(), s.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            match i % 3 {
                0 => store
                    .create_order(new_order(&s, twd(1 + i)), now, None)
                    .await
                    .map(|o| Some(o.id)),
                1 => store
                    .create_order(new_order(&s, twd(1 + i)), now, Some(idem("k-taken", "h", true)))
                    .await
                    .map(|o| Some(o.id)),
                // Refused before it writes anything (wrong amount).
                _ => store
                    .create_payment(&s, &order, attempt(&order, twd(11), now), None)
                    .await
                    .map(|_| None),
            }
        }));
    }
    let mut created = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        let r = t.await.unwrap_or_else(|e| panic!("join: {e}"));
        match (i % 3, r) {
            (0, Ok(Some(id))) => created.push(id.to_string()),
            (1, Err(StoreError::IdempotencyRace)) | (2, Err(StoreError::Attempt(_))) => {}
            // On MySQL two writers inserting the same idempotency key can deadlock; InnoDB then
            // rolls back a whole batch, and every unit in it is answered TransactionAborted.
            // Nothing of such a batch may be published either.
            (_, Err(StoreError::TransactionAborted)) => {}
            (_, other) => panic!("unit {i}: {other:?}"),
        }
    }
    // Every committed event is already published (the writer publishes before it answers).
    let mut published = Vec::new();
    loop {
        match feed.try_recv() {
            Ok(e) => published.push(e),
            Err(tokio::sync::broadcast::error::TryRecvError::Empty) => break,
            Err(e) => panic!("feed: {e}"),
        }
    }
    let mut published_objects: Vec<String> = published.iter().map(|e| e.object_id.clone()).collect();
    published_objects.sort();
    created.sort();
    assert_eq!(
        published_objects, created,
        "one order.created per committed order, nothing else"
    );
    for e in &published {
        assert_eq!(e.event_type, "order.created");
        assert_eq!(e.merchant_id, s.merchant_id);
        let stored = store
            .events_for_object(&e.object_id)
            .await
            .unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(stored.len(), 1);
        assert_eq!((&stored[0].id, &stored[0].payload), (&e.id, &e.payload), "as stored");
    }
    // The table holds exactly what was published plus what existed before subscribing.
    let counts = store.table_counts().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(counts.events, published.len() as u64 + 2, "two orders existed before");
    assert_eq!(
        store
            .events_for_object(order.id.as_str())
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .map(|e| e.id)
            .collect::<Vec<_>>(),
        before,
        "the refused payments wrote no event"
    );
}

async fn finished_webhook_messages_are_purged_after_their_retention_but_pending_ones_stay(store: Store, _url: String) {
    use jinliu_domain::webhook::WebhookAttempt;
    let s = scope();
    let now = Utc::now();
    let ep = webhook_endpoint(&store, &s, None, now).await;
    for major in [5, 6] {
        store
            .create_order(new_order(&s, twd(major)), now, None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let claimed = store
        .claim_webhook_messages("node-a", now, 60_000, 1)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let delivered = claimed[0].id.clone();
    store
        .record_webhook_attempt(
            "node-a",
            &ep.id,
            WebhookAttempt {
                id: jinliu_domain::AttemptId::generate(),
                message_id: delivered.clone(),
                attempted_at: now,
                status_code: Some(200),
                duration_ms: 3,
                response_body: None,
                error: None,
                succeeded: true,
                next_attempt_at: None,
            },
            jinliu_store::Delivery::Succeeded,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let purge = |before| {
        let store = store.clone();
        async move {
            store
                .purge_webhook_messages(before, 1_000)
                .await
                .unwrap_or_else(|e| panic!("{e}"))
        }
    };
    assert_eq!(purge(now).await, 0, "not older than the cut-off yet");
    assert_eq!(purge(now + Duration::days(31)).await, 1, "the delivered message goes");
    let gone = store
        .webhook_message(&s, &delivered)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(gone.is_none(), "with its attempts");
    let left = store
        .webhook_messages(
            &s,
            &ep.id,
            &jinliu_store::MessageFilter {
                status: None,
                page: 1,
                limit: 100,
                starting_after: None,
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(left.items.len(), 1, "the pending one stays, whatever its age");
}

fn new_account(provider: &str, is_default: Option<bool>) -> jinliu_store::NewAccount {
    jinliu_store::NewAccount {
        id: jinliu_domain::ProviderAccountId::generate(),
        provider: provider.into(),
        base_url: None,
        credentials_sealed: "v1.k1.sealed".into(),
        credential_keys: vec!["api_key".into(), "merchant_id".into()],
        is_default,
        description: None,
    }
}

async fn provider_accounts_keep_one_default_per_provider_and_mode_and_stay_in_their_scope(store: Store, _url: String) {
    let now = Utc::now();
    let create = |n: jinliu_store::NewAccount, s: Scope| {
        let store = store.clone();
        async move {
            store
                .create_provider_account(&s, n, now, None)
                .await
                .unwrap_or_else(|e| panic!("{e}"))
        }
    };
    let first = create(new_account("kpay", None), scope()).await;
    let other_provider = create(new_account("tpay", None), scope()).await;
    let second = create(new_account("kpay", Some(true)), scope()).await;
    let quiet = create(new_account("tpay", Some(false)), scope()).await;
    assert!(!quiet.is_default, "an account created as not the default stays so");
    let live = Scope {
        livemode: true,
        ..scope()
    };
    let live_kpay = create(new_account("kpay", None), live.clone()).await;
    assert!(
        first.is_default && other_provider.is_default && live_kpay.is_default,
        "first of each kind"
    );
    assert!(second.is_default);
    let defaults = |list: Vec<jinliu_domain::MerchantProviderAccount>| -> Vec<(String, bool)> {
        list.into_iter().map(|a| (a.id.to_string(), a.is_default)).collect()
    };
    let test_list = store
        .provider_accounts(&scope())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        defaults(test_list),
        vec![
            (first.id.to_string(), false),
            (other_provider.id.to_string(), true),
            (second.id.to_string(), true),
            (quiet.id.to_string(), false),
        ],
        "the new default took over from the old one of the same provider and mode only"
    );
    assert_eq!(store.provider_accounts(&live).await.unwrap_or_default().len(), 1);
    assert_eq!(
        store
            .merchant_provider_accounts(&scope().merchant_id)
            .await
            .unwrap_or_default()
            .len(),
        5
    );
    let changed = store
        .update_provider_account(
            &scope(),
            &first.id,
            jinliu_store::AccountPatch {
                is_default: Some(true),
                ..Default::default()
            },
            now,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Version 2 when `second` took the default over, 3 now: every change bumps it.
    assert!(changed.is_default && changed.version == 3, "{changed:?}");
    let second_now = store
        .provider_account(&scope(), &second.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("second"));
    assert!(!second_now.is_default);
    let disabled = store
        .update_provider_account(
            &scope(),
            &first.id,
            jinliu_store::AccountPatch {
                status: Some(jinliu_domain::AccountStatus::Disabled),
                ..Default::default()
            },
            now,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!disabled.is_default, "a disabled account is nobody's default");
    // Another merchant, or the other mode, sees nothing by id.
    let stranger = Scope {
        merchant_id: MerchantId::generate(),
        livemode: false,
    };
    assert!(
        store
            .provider_account(&stranger, &first.id)
            .await
            .unwrap_or_default()
            .is_none()
    );
    assert!(
        store
            .provider_account(&live, &first.id)
            .await
            .unwrap_or_default()
            .is_none()
    );
    let refused = store
        .update_provider_account(&stranger, &first.id, jinliu_store::AccountPatch::default(), now)
        .await;
    assert!(matches!(refused, Err(StoreError::NotFound(_))), "{refused:?}");
    assert!(store.has_live_provider_accounts().await.unwrap_or_default());
}

/// `n` pending orders of 1, 2, … `n` TWD, created one after another.
async fn pending_orders(store: &Store, n: i64, now: Timestamp) -> Vec<Order> {
    let mut orders = Vec::new();
    for i in 0..n {
        let order = store
            .create_order(new_order(&scope(), twd(1 + i)), now, None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        orders.push(order);
    }
    orders
}

async fn order_version(store: &Store, id: &OrderId) -> i64 {
    store
        .order(&scope(), id)
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("order {id}"))
        .version
}

/// New attempts defer their order claim and payment row to one UPDATE and one INSERT per run of
/// units (`persist::Deferred`); claims of one order in one run collide, and the batch runs again
/// unit by unit, where each attempt re-reads the order and claims it at its current version.
async fn attempts_on_one_order_submitted_together_each_claim_it_once(store: Store, _url: String) {
    let s = scope();
    let now = Utc::now();
    let order = store
        .create_order(new_order(&s, twd(10)), now, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let tasks: Vec<_> = (0..30)
        .map(|_| {
            let (store, s, order) = (store.clone(), s.clone(), order.clone());
            tokio::spawn(async move {
                store
                    .create_payment(&s, &order, attempt(&order, twd(10), now), None)
                    .await
            })
        })
        .collect();
    let mut created = 0;
    for t in tasks {
        match t.await.unwrap_or_else(|e| panic!("join: {e}")) {
            Ok(p) => {
                assert_eq!(
                    (p.status, p.order_id.clone()),
                    (PaymentStatus::Pending, order.id.clone())
                );
                created += 1;
            }
            // Out of retries against the other writers' claims of the same row: refused whole.
            Err(StoreError::Conflict) => {}
            Err(other) => panic!("{other}"),
        }
    }
    assert!(created >= 25, "{created} of 30 attempts created");
    let attempts = store
        .payments_for_order(&s, &order.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(attempts.len() as i64, created);
    assert_eq!(order_version(&store, &order.id).await, order.version + created);
    let counts = store.table_counts().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((counts.payments, counts.events), (created as u64, created as u64 + 1));
}

async fn a_duplicate_provider_reference_among_attempts_committed_together_fails_alone(store: Store, _url: String) {
    let s = scope();
    let now = Utc::now();
    let orders = pending_orders(&store, 20, now).await;
    let tasks: Vec<_> = orders
        .iter()
        .enumerate()
        .map(|(i, order)| {
            let (store, s, order) = (store.clone(), s.clone(), order.clone());
            let mut payment = attempt(&order, order.amount, now);
            if i == 7 || i == 13 {
                payment.provider_reference = Some("ref-handed-out-twice".into());
            }
            tokio::spawn(async move { store.create_payment(&s, &order, payment, None).await })
        })
        .collect();
    let mut refused = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await.unwrap_or_else(|e| panic!("join: {e}")) {
            Ok(_) => assert_eq!(order_version(&store, &orders[i].id).await, orders[i].version + 1),
            Err(StoreError::Corrupt(_)) => {
                // Refused whole: the order's claim went with the payment row.
                assert_eq!(order_version(&store, &orders[i].id).await, orders[i].version);
                refused.push(i);
            }
            Err(other) => panic!("attempt {i}: {other}"),
        }
    }
    assert!(refused == [7] || refused == [13], "refused {refused:?}");
    let counts = store.table_counts().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((counts.orders, counts.payments, counts.events), (20, 19, 20 + 19));
}

/// A unit that does not defer (here, completing an attempt) runs only after the deferred writes of
/// the new attempts queued before it have been made, so it finds them; one queued before the
/// attempt it completes finds nothing. Either way the two objects agree afterwards.
async fn attempts_completed_while_they_are_being_created_leave_orders_and_payments_consistent(
    store: Store,
    _url: String,
) {
    let s = scope();
    let now = Utc::now();
    let mut tasks = Vec::new();
    for order in pending_orders(&store, 20, now).await {
        let payment = attempt(&order, order.amount, now);
        let id = payment.id.clone();
        let (st, sc, o) = (store.clone(), s.clone(), order.clone());
        let create = tokio::spawn(async move { st.create_payment(&sc, &o, payment, None).await });
        let st = store.clone();
        let complete = tokio::spawn(async move {
            let change = PaymentChange::Complete { transaction_id: None };
            st.change_payment(None, &id, change, now, None).await
        });
        tasks.push((order, create, complete));
    }
    for (order, create, complete) in tasks {
        let created = create.await.unwrap_or_else(|e| panic!("join: {e}"));
        let created = created.unwrap_or_else(|e| panic!("create: {e}"));
        let completed = match complete.await.unwrap_or_else(|e| panic!("join: {e}")) {
            Ok(p) => {
                assert_eq!(p.status, PaymentStatus::Completed);
                true
            }
            Err(StoreError::NotFound(_)) => false,
            Err(other) => panic!("complete: {other}"),
        };
        let stored = store
            .payment(&s, &created.id)
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("payment"));
        let order = store
            .order(&s, &order.id)
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("order"));
        let expected = if completed {
            (PaymentStatus::Completed, OrderStatus::Paid)
        } else {
            (PaymentStatus::Pending, OrderStatus::Pending)
        };
        assert_eq!((stored.status, order.status), expected);
    }
}
