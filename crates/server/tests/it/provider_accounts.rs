//! A merchant's own provider accounts over HTTP: they take over the merchant's payments end to end
//! (create, the provider's notification on the account's own URL, refunds), their credentials
//! are stored only sealed and never shown again, live accounts never point at a sandbox, and bad
//! input is refused with a stable code without writing anything.

use jinliu_domain::{ApiKeyKind, MerchantProviderAccount};
use jinliu_store::Scope;
use serde_json::{Value, json};

use crate::{Answer, TestApp, spawn_app, spawn_app_with};

fn creds(provider: &str) -> Value {
    json!(jinliu_providers::sandbox_credentials(provider))
}

async fn key(app: &TestApp, livemode: bool) -> String {
    app.state
        .auth
        .issue_key(
            &app.store,
            &app.state.config.merchant_id,
            ApiKeyKind::Secret,
            livemode,
            None,
            None,
            chrono::Utc::now(),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .1
}

/// `POST /api/provider-accounts` with another key than the test app's own.
async fn create_as(app: &TestApp, bearer: &str, body: Value) -> Answer {
    app.send(
        app.anon
            .post(format!("{}/api/provider-accounts", app.base))
            .header("authorization", format!("Bearer {bearer}"))
            .json(&body),
    )
    .await
}

async fn patch(app: &TestApp, id: &str, body: Value) -> Answer {
    app.patch(&format!("/api/provider-accounts/{id}"), body).await
}

async fn all_rows(app: &TestApp) -> Vec<MerchantProviderAccount> {
    app.store
        .merchant_provider_accounts(&app.state.config.merchant_id)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn a_merchants_own_account_takes_over_its_payments_and_disabling_it_strands_nothing() {
    let app = spawn_app().await;
    let a = app
        .post(
            "/api/provider-accounts",
            json!({ "provider": "kpay", "credentials": creds("kpay"), "description": "our own 客樂得 contract" }),
        )
        .await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    let id = a.id();
    assert!(id.starts_with("pa_"), "{id}");
    assert_eq!(a.data()["livemode"], false);
    assert_eq!(
        a.data()["default"],
        true,
        "the first account of a provider is its default"
    );
    assert_eq!(a.data()["baseUrl"], Value::Null, "test accounts default to the sandbox");
    assert!(
        a.data()["notifyUrl"]
            .as_str()
            .unwrap_or_default()
            .ends_with(&format!("/api/payments/notify/kpay/{id}")),
        "{:?}",
        a.body
    );
    let mut names: Vec<String> = jinliu_providers::sandbox_credentials("kpay").into_keys().collect();
    names.sort();
    assert_eq!(a.data()["credentialKeys"], json!(names));
    for value in jinliu_providers::sandbox_credentials("kpay").into_values() {
        assert!(!a.text.contains(&value), "a credential value came back: {}", a.text);
    }

    // The payment uses the merchant's account; the sandbox notifies the account's own URL.
    let paid = app.paid("300", "TWD").await;
    assert_eq!(paid.data()["provider"], "kpay");
    assert_eq!(paid.data()["providerAccount"], id.as_str());
    let refund = app
        .post(&format!("/api/payments/refund/{}", paid.id()), json!({ "amount": 100 }))
        .await;
    assert_eq!(refund.status, 201, "{:?}", refund.body);

    let off = patch(&app, &id, json!({ "disabled": true })).await;
    assert_eq!(off.status, 200, "{:?}", off.body);
    assert_eq!(
        (off.data()["status"].as_str(), off.data()["default"].as_bool()),
        (Some("disabled"), Some(false))
    );
    let order = app.order("50", "TWD").await;
    let next = app.payment(&order, "50", "TWD").await;
    assert_eq!(
        next.data()["providerAccount"],
        "kpay_test",
        "with the merchant's account disabled, the platform's takes new payments"
    );
    let again = app
        .post(&format!("/api/payments/refund/{}", paid.id()), json!({ "amount": 100 }))
        .await;
    assert_eq!(
        again.status, 201,
        "a disabled account still refunds its payments: {:?}",
        again.body
    );
}

#[tokio::test]
async fn credentials_are_stored_only_sealed_and_open_only_in_their_own_row() {
    let app = spawn_app().await;
    let a = app
        .post(
            "/api/provider-accounts",
            json!({ "provider": "octopus", "credentials": creds("octopus") }),
        )
        .await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    let scope = Scope {
        merchant_id: app.state.config.merchant_id.clone(),
        livemode: false,
    };
    let rows = app
        .store
        .provider_accounts(&scope)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert!(row.credentials_sealed.starts_with("v1."), "{}", row.credentials_sealed);
    for value in jinliu_providers::sandbox_credentials("octopus").into_values() {
        assert!(!row.credentials_sealed.contains(&value));
    }
    let own = MerchantProviderAccount::credentials_aad(&row.merchant_id, &row.id);
    let other =
        MerchantProviderAccount::credentials_aad(&row.merchant_id, &jinliu_domain::ProviderAccountId::generate());
    assert!(app.state.sealer.open(&row.credentials_sealed, &own).is_some());
    assert!(
        app.state.sealer.open(&row.credentials_sealed, &other).is_none(),
        "copied into another account's row, the credentials do not open"
    );
}

#[tokio::test]
async fn a_new_default_takes_over_and_the_old_one_steps_down() {
    let app = spawn_app().await;
    let first = app
        .post(
            "/api/provider-accounts",
            json!({ "provider": "tpay", "credentials": creds("tpay") }),
        )
        .await;
    let second = app
        .post(
            "/api/provider-accounts",
            json!({ "provider": "tpay", "credentials": creds("tpay"), "default": true }),
        )
        .await;
    assert_eq!((first.status, second.status), (201, 201), "{:?}", second.body);
    let list = app.get("/api/provider-accounts").await;
    let defaults: Vec<(String, bool)> = list
        .data()
        .as_array()
        .map(|l| {
            l.iter()
                .map(|a| (a["id"].as_str().unwrap_or_default().to_owned(), a["default"] == true))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(defaults, vec![(first.id(), false), (second.id(), true)]);
    let back = patch(&app, &first.id(), json!({ "default": true })).await;
    assert_eq!(back.data()["default"], true);
    let old = app.get(&format!("/api/provider-accounts/{}", second.id())).await;
    assert_eq!(old.data()["default"], false);
}

#[tokio::test]
async fn bad_accounts_are_refused_with_a_stable_code_and_nothing_is_written() {
    let app = spawn_app().await;
    let live = key(&app, true).await;
    let sandbox = format!("{}/sandbox/kpay", app.base);
    let kpay = creds("kpay");
    let cases: Vec<(&str, Option<&str>, Value, u16, &str)> = vec![
        (
            "unknown provider",
            None,
            json!({ "provider": "paypal" }),
            422,
            "unknown_provider",
        ),
        (
            "unknown credential",
            None,
            json!({ "provider": "kpay", "credentials": { "password": "x" } }),
            422,
            "unknown_credential",
        ),
        (
            "missing credentials",
            None,
            json!({ "provider": "kpay" }),
            422,
            "invalid_provider_credentials",
        ),
        (
            "livemode in the body",
            None,
            json!({ "provider": "kpay", "credentials": kpay, "livemode": true }),
            400,
            "",
        ),
        (
            "merchantId in the body",
            None,
            json!({ "provider": "kpay", "credentials": kpay, "merchantId": "mer_x" }),
            400,
            "",
        ),
        (
            "not http(s)",
            None,
            json!({ "provider": "kpay", "credentials": kpay, "baseUrl": "ftp://files.example/kpay" }),
            422,
            "validation_failed",
        ),
        (
            "the private network",
            None,
            json!({ "provider": "kpay", "credentials": kpay, "baseUrl": "http://10.1.2.3/api" }),
            422,
            "url_not_allowed",
        ),
        (
            "live on this server's sandbox",
            Some(&live),
            json!({ "provider": "kpay", "credentials": kpay, "baseUrl": sandbox }),
            422,
            "sandbox_in_live_mode",
        ),
        (
            "live on ECPay's stage host",
            Some(&live),
            json!({ "provider": "ecpay", "credentials": creds("ecpay"), "baseUrl": "https://payment-stage.ecpay.com.tw" }),
            422,
            "sandbox_in_live_mode",
        ),
        (
            "live over plain http",
            Some(&live),
            json!({ "provider": "kpay", "credentials": kpay, "baseUrl": "http://pay.example.com" }),
            422,
            "insecure_url",
        ),
        (
            "live without a base URL",
            Some(&live),
            json!({ "provider": "kpay", "credentials": kpay }),
            422,
            "base_url_required",
        ),
    ];
    for (what, bearer, body, status, code) in cases {
        let a = match bearer {
            Some(k) => create_as(&app, k, body).await,
            None => app.post("/api/provider-accounts", body).await,
        };
        assert_eq!(a.status, status, "{what}: {:?}", a.body);
        if !code.is_empty() {
            assert_eq!(a.code(), code, "{what}: {:?}", a.body);
        }
    }
    assert!(all_rows(&app).await.is_empty(), "nothing was written");

    // A live ECPay account defaults to ECPay's production host and stays out of test mode.
    let ok = create_as(
        &app,
        &live,
        json!({ "provider": "ecpay", "credentials": creds("ecpay") }),
    )
    .await;
    assert_eq!(ok.status, 201, "{:?}", ok.body);
    assert_eq!(ok.data()["livemode"], true);
    assert_eq!(ok.data()["baseUrl"], jinliu_providers::ecpay::PRODUCTION_URL);
    assert_eq!(app.get("/api/provider-accounts").await.data(), &json!([]));
    let hidden = app.get(&format!("/api/provider-accounts/{}", ok.id())).await;
    assert_eq!(hidden.status, 404, "a test key does not see a live account");
}

#[tokio::test]
async fn a_server_without_an_operator_held_master_key_refuses_live_accounts() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let data = dir.path().display().to_string();
    let app = spawn_app_with(&[("JINLIU_MASTER_KEY", ""), ("JINLIU_DATA_DIR", &data)]).await;
    let live = key(&app, true).await;
    let a = create_as(
        &app,
        &live,
        json!({ "provider": "ecpay", "credentials": creds("ecpay") }),
    )
    .await;
    assert_eq!((a.status, a.code()), (409, "master_key_required"), "{:?}", a.body);
    let test = app
        .post(
            "/api/provider-accounts",
            json!({ "provider": "ecpay", "credentials": creds("ecpay") }),
        )
        .await;
    assert_eq!(
        test.status, 201,
        "test accounts work under a generated key: {:?}",
        test.body
    );
}

#[tokio::test]
async fn new_credentials_are_proven_usable_before_they_replace_the_old() {
    let app = spawn_app().await;
    let a = app
        .post(
            "/api/provider-accounts",
            json!({ "provider": "ecpay", "credentials": creds("ecpay") }),
        )
        .await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    let mut bad = jinliu_providers::sandbox_credentials("ecpay");
    bad.insert("merchant_id".into(), "far-too-long-merchant-id".into());
    let refused = patch(&app, &a.id(), json!({ "credentials": bad })).await;
    assert_eq!(
        (refused.status, refused.code()),
        (422, "invalid_provider_credentials"),
        "{:?}",
        refused.body
    );
    let unchanged = app.get(&format!("/api/provider-accounts/{}", a.id())).await;
    assert_eq!(unchanged.data()["version"], a.data()["version"], "nothing changed");
    let moved = patch(
        &app,
        &a.id(),
        json!({ "baseUrl": "https://payment-stage.ecpay.com.tw" }),
    )
    .await;
    assert_eq!(
        moved.status, 200,
        "the stored credentials are reused for a new base URL: {:?}",
        moved.body
    );
    assert_eq!(moved.data()["baseUrl"], "https://payment-stage.ecpay.com.tw");
}

#[tokio::test]
async fn a_retried_creation_with_its_idempotency_key_makes_one_account() {
    let app = spawn_app().await;
    let body = json!({ "provider": "tpay", "credentials": creds("tpay"), "default": false });
    let first = app
        .post_with_key("/api/provider-accounts", "pa-retry-1", body.clone())
        .await;
    let again = app.post_with_key("/api/provider-accounts", "pa-retry-1", body).await;
    assert_eq!((first.status, again.status), (201, 201), "{:?}", again.body);
    assert!(again.replayed && again.id() == first.id(), "{:?}", again.body);
    assert_eq!(first.data()["default"], false, "created as not the default, as asked");
    let other = app
        .post_with_key(
            "/api/provider-accounts",
            "pa-retry-1",
            json!({ "provider": "kpay", "credentials": creds("kpay") }),
        )
        .await;
    assert_eq!((other.status, other.code()), (422, "idempotency_key_reused"));
    assert_eq!(all_rows(&app).await.len(), 1);
}
