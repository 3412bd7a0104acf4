//! `Idempotency-Key`: replay, reuse with another body, in-flight duplicates, refunds.

use serde_json::json;

use crate::spawn_app;

#[tokio::test]
async fn the_same_key_and_body_replays_the_first_answer_without_a_second_payment() {
    let app = spawn_app().await;
    let order = app.order("100", "TWD").await;
    let body = json!({ "orderId": order, "amount": 100 });
    let first = app.post_with_key("/api/payments", "pay-1", body.clone()).await;
    let second = app.post_with_key("/api/payments", "pay-1", body).await;
    assert_eq!((first.status, second.status), (201, 201));
    assert!(!first.replayed && second.replayed);
    assert_eq!(first.body, second.body);
    assert_eq!(app.counts().await.payments, 1);
}

#[tokio::test]
async fn the_same_key_with_another_body_is_refused() {
    let app = spawn_app().await;
    app.post_with_key("/api/orders", "k", json!({ "amount": 1 })).await;
    let a = app.post_with_key("/api/orders", "k", json!({ "amount": 2 })).await;
    assert_eq!((a.status, a.code()), (422, "idempotency_key_reused"));
    let a = app.post_with_key("/orders", "k", json!({ "amount": 1 })).await;
    assert_eq!(a.status, 201, "the seed path is the same request as /api/…");
    assert_eq!(app.counts().await.orders, 1);
}

#[tokio::test]
async fn a_refusal_after_the_store_ran_is_kept_but_a_validation_error_is_not() {
    let app = spawn_app().await;
    let p = app.paid("10", "TWD").await;
    let path = format!("/api/payments/refund/{}", p.id());
    let over = app.post_with_key(&path, "r1", json!({ "amount": 11 })).await;
    assert_eq!(over.code(), "refund_exceeds_remaining");
    let again = app.post_with_key(&path, "r1", json!({ "amount": 11 })).await;
    assert!(again.replayed, "a business refusal is replayed");
    assert_eq!(again.text, over.text, "the replay is the first answer, byte for byte");
    assert_eq!(over.amount("remainingAmount"), "10.00");
    let invalid = app.post_with_key(&path, "r2", json!({ "amount": "x" })).await;
    assert_eq!(invalid.code(), "invalid_amount");
    assert_eq!(
        app.counts().await.idempotency_keys,
        1,
        "the validation error was not kept"
    );
}

#[tokio::test]
async fn a_retried_refund_is_not_refunded_twice() {
    let app = spawn_app().await;
    let p = app.paid("100", "TWD").await;
    let path = format!("/api/payments/refund/{}", p.id());
    let tasks: Vec<_> = (0..6)
        .map(|_| app.post_with_key(&path, "refund-once", json!({ "amount": 10 })))
        .collect();
    let answers = futures::future::join_all(tasks).await;
    assert!(
        answers
            .iter()
            .all(|a| a.status == 201 || (a.status == 409 && a.code() == "idempotency_key_in_use")),
        "{answers:?}"
    );
    let later = app.post_with_key(&path, "refund-once", json!({ "amount": 10 })).await;
    assert!(later.replayed && later.status == 201);
    assert_eq!(app.counts().await.refunds, 1);
    assert_eq!(
        app.get(&format!("/api/payments/{}", p.id()))
            .await
            .amount("refundedAmount"),
        "10.00"
    );
}

#[tokio::test]
async fn a_malformed_idempotency_key_is_refused() {
    let app = spawn_app().await;
    let a = app
        .post_with_key("/api/orders", &"k".repeat(256), json!({ "amount": 1 }))
        .await;
    assert_eq!((a.status, a.code()), (400, "invalid_idempotency_key"));
    assert_eq!(app.counts().await.orders, 0);
}
