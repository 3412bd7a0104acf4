//! The audit log over HTTP: who did what is recorded with the request that did it, only the
//! merchant's own rows are listed, the sealer's chain verifies, and `jinliu audit verify` finds a
//! row edited behind jinliu's back.

use serde_json::{Value, json};

use crate::{Answer, TestApp, spawn_app};

async fn audit(app: &TestApp, query: &str) -> Answer {
    app.get(&format!("/api/audit{query}")).await
}

fn items(a: &Answer) -> Vec<Value> {
    a.data()["items"].as_array().cloned().unwrap_or_default()
}

async fn test_key_id(app: &TestApp) -> String {
    let keys = app
        .store
        .api_keys(&app.state.config.merchant_id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    keys[0].id.to_string()
}

#[tokio::test]
async fn a_payment_and_a_refused_refund_are_audited_with_the_key_request_id_and_address() {
    let app = spawn_app().await;
    let paid = app.paid("100.00", "HKD").await;
    let refused = app
        .send(
            app.http
                .post(format!("{}/api/payments/refund/{}", app.base, paid.id()))
                .header("x-request-id", "req-refund-1")
                .header("user-agent", "audit-test/1.0")
                .json(&json!({ "amount": 500 })),
        )
        .await;
    assert_eq!(refused.status, 422, "{:?}", refused.body);

    let page = audit(&app, &format!("?targetId={}", paid.id())).await;
    assert_eq!(page.status, 200, "{:?}", page.body);
    let rows = items(&page);
    let (refusal, create) = (&rows[0], &rows[rows.len() - 1]);
    assert_eq!(
        (&create["action"], &create["outcome"]),
        (&json!("payment.create"), &json!("ok"))
    );
    assert_eq!(
        (&refusal["action"], &refusal["outcome"]),
        (&json!("refund.create"), &json!("refused:refund_rejected"))
    );
    let notifications = &rows[1..rows.len() - 1];
    assert!(!notifications.is_empty(), "{rows:#?}");
    for n in notifications {
        assert_eq!(n["action"], "payment.notification");
        assert_eq!(
            n["actorType"], "provider",
            "the sandbox's notifications are the provider's doing"
        );
    }
    let key = test_key_id(&app).await;
    assert_eq!(
        (create["actorType"].as_str(), create["actorId"].as_str()),
        (Some("key"), Some(key.as_str()))
    );
    assert_eq!(create["detail"]["status"], "pending");
    let refusal = &rows[0];
    assert_eq!(refusal["requestId"], "req-refund-1");
    assert_eq!(refusal["ip"], "127.0.0.1");
    assert_eq!(refusal["userAgent"], "audit-test/1.0");
}

#[tokio::test]
async fn the_audit_list_filters_pages_and_refuses_bad_filters() {
    let app = spawn_app().await;
    for _ in 0..3 {
        app.order("10.00", "TWD").await;
    }
    let first = audit(&app, "?action=order.create&limit=2").await;
    assert_eq!(items(&first).len(), 2);
    assert_eq!(first.data()["hasMore"], true);
    let last_id = items(&first)[1]["id"].as_str().unwrap_or_default().to_owned();
    let second = audit(&app, &format!("?action=order.create&limit=2&before={last_id}")).await;
    assert_eq!((items(&second).len(), &second.data()["hasMore"]), (1, &json!(false)));
    assert_eq!(items(&audit(&app, "?action=refund.create").await).len(), 0);
    assert_eq!(items(&audit(&app, "?from=2999-01-01").await).len(), 0);
    for bad in ["?limit=0", "?limit=x", "?before=ord_1", "?from=yesterday"] {
        let a = audit(&app, bad).await;
        assert_eq!((a.status, a.code()), (400, "invalid_request"), "{bad}: {:?}", a.body);
    }
}

#[tokio::test]
async fn another_merchant_sees_none_of_these_rows() {
    let app = spawn_app().await;
    app.order("10.00", "TWD").await;
    let other = jinliu_domain::MerchantId::generate();
    let now = chrono::Utc::now();
    app.store
        .create_merchant(&jinliu_domain::Merchant::new(
            other.clone(),
            "Other",
            jinliu_domain::Currency::Twd,
            "Asia/Taipei",
            now,
        ))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (_, key) = app
        .state
        .auth
        .issue_key(
            &app.store,
            &other,
            jinliu_domain::ApiKeyKind::Secret,
            false,
            None,
            None,
            now,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let theirs = app
        .send(app.anon.get(format!("{}/api/audit", app.base)).bearer_auth(&key))
        .await;
    assert_eq!(theirs.status, 200);
    let rows = items(&theirs);
    assert!(
        rows.iter().all(|r| r["action"] != "order.create"),
        "only the other merchant's own rows (its key's creation): {rows:#?}"
    );
}

#[tokio::test]
async fn a_failed_login_is_audited_without_revealing_whether_the_account_exists() {
    let app = spawn_app().await;
    let a = app
        .send(
            app.anon
                .post(format!("{}/api/auth/login", app.base))
                .json(&json!({ "email": "nobody@example.com", "password": "wrong-password-1" })),
        )
        .await;
    assert_eq!(a.status, 401);
    let rows = app
        .store
        .audit_entries(&jinliu_store::AuditFilter {
            action: Some("user.login".into()),
            limit: 10,
            ..jinliu_store::AuditFilter::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].target_id, "email:nobody@example.com");
    assert_eq!(rows[0].outcome, "refused:invalid_credentials");
    assert_eq!(rows[0].actor_type, "anonymous");
    assert!(
        !rows[0].detail.contains("wrong-password-1"),
        "the password is never logged"
    );
}

#[tokio::test]
async fn sealed_rows_verify_and_an_edit_behind_jinlius_back_is_found_by_the_cli() {
    let app = spawn_app().await;
    let paid = app.paid("50.00", "HKD").await;
    let mut last = None;
    let pass = jinliu_server::audit::seal_once(&app.state, &mut last)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(pass.leader && pass.head.is_some(), "{pass:?}");
    let listed = audit(&app, &format!("?targetId={}", paid.id())).await;
    assert!(
        items(&listed).iter().all(|r| r["seq"].is_i64()),
        "listed rows carry their seq once sealed"
    );

    let verify = |app: &TestApp| {
        std::process::Command::new(env!("CARGO_BIN_EXE_jinliu"))
            .args(["audit", "verify", "--database-url", &app.db_url, "--checkpoints"])
            .arg(&app.state.config.audit_checkpoints)
            .env("JINLIU_MASTER_KEY", crate::MASTER_KEY)
            .output()
            .unwrap_or_else(|e| panic!("run jinliu: {e}"))
    };
    let ok = verify(&app);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let report: Value = serde_json::from_slice(&ok.stdout).unwrap_or_default();
    assert!(report["checked"].as_u64().unwrap_or(0) >= 3, "{report}");

    use sea_orm::ConnectionTrait;
    let db = app.raw_db().await;
    db.execute_unprepared(
        "UPDATE audit_log SET outcome = 'refused:not_found' \
         WHERE id = (SELECT audit_id FROM audit_seals WHERE seq = 2)",
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let damaged = verify(&app);
    assert!(!damaged.status.success(), "an edited row fails verification");
    let stderr = String::from_utf8_lossy(&damaged.stderr);
    assert!(stderr.contains("row seq 2"), "{stderr}");

    // A wrong master key cannot vouch for the chain either.
    let forged = std::process::Command::new(env!("CARGO_BIN_EXE_jinliu"))
        .args(["audit", "verify", "--database-url", &app.db_url, "--checkpoints"])
        .arg(&app.state.config.audit_checkpoints)
        .env("JINLIU_MASTER_KEY", "00".repeat(32))
        .output()
        .unwrap_or_else(|e| panic!("run jinliu: {e}"));
    assert!(!forged.status.success());
}
