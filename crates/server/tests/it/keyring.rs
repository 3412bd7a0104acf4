//! `jinliu keys rotate`: a new data key and JWT key are added wrapped under the master key, every
//! stored secret is re-encrypted under the new data key, new keys seal and sign only after every
//! node can know them, and logins, tokens, webhook signing and provider calls keep working.

use std::sync::Arc;
use std::time::Duration;

use jinliu_domain::{EndpointId, Role};
use jinliu_server::keyring;
use jinliu_server::secrets::kid_of;
use jinliu_server::state::ManualClock;
use jinliu_store::SealedField;
use jinliu_testkit::Engine;
use serde_json::json;

use crate::{TestApp, spawn_app_on};

async fn login(app: &TestApp, email: &str, password: &str, totp: &str, step: i64) -> crate::Answer {
    let code = jinliu_server::totp::code_at(totp, step).unwrap_or_default();
    app.send(
        app.anon
            .post(format!("{}/api/auth/login", app.base))
            .json(&json!({ "email": email, "password": password, "totp": code })),
    )
    .await
}

async fn profile(app: &TestApp, token: &str) -> u16 {
    app.send(
        app.anon
            .get(format!("{}/api/auth/profile", app.base))
            .header("authorization", format!("Bearer {token}")),
    )
    .await
    .status
}

fn token_kid(token: &str) -> Option<String> {
    jsonwebtoken::decode_header(token).ok().and_then(|h| h.kid)
}

async fn rotate(app: &TestApp, clock: &ManualClock) -> keyring::RotateReport {
    keyring::rotate(
        &app.store,
        &app.state.sealer,
        &app.state.auth,
        jinliu_server::state::Clock::now(clock),
        Duration::ZERO,
    )
    .await
    .unwrap_or_else(|e| panic!("rotate: {e}"))
}

async fn stored_endpoint(app: &TestApp, id: &str) -> jinliu_domain::webhook::WebhookEndpoint {
    app.store
        .webhook_endpoint_unscoped(&EndpointId::parse(id).unwrap_or_else(|| panic!("ep id")))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("endpoint"))
}

async fn reload_after_grace(app: &TestApp, clock: &ManualClock) {
    clock.advance(chrono::Duration::seconds(keyring::GRACE_SECS + 1));
    keyring::load(
        &app.store,
        &app.state.sealer,
        &app.state.auth,
        jinliu_server::state::Clock::now(clock),
    )
    .await
    .unwrap_or_else(|e| panic!("load: {e}"));
}

#[tokio::test]
async fn rotating_the_keys_re_encrypts_every_secret_and_everything_keeps_working() {
    // The clock starts two minutes back so that moving it past the grace period never puts a
    // token's `nbf` ahead of the system clock the JWT library checks it against.
    let clock = Arc::new(ManualClock::new(chrono::Utc::now() - chrono::Duration::minutes(2)));
    let app = spawn_app_on(Engine::Sqlite, &[], Some(clock.clone())).await;
    let now = || jinliu_server::state::Clock::now(clock.as_ref());
    // One secret of every sealed kind.
    let password = "rotation test 8472 ok";
    let (_, totp) = jinliu_server::users::create_user(
        &app.store,
        &app.state.sealer,
        "rotate@platform.example",
        password,
        Role::PlatformAdmin,
        None,
        now(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let totp = totp.unwrap_or_else(|| panic!("platform admins enrol TOTP"));
    let endpoint = app
        .post("/api/webhook-endpoints", json!({ "url": "http://127.0.0.1:9/hook" }))
        .await;
    let whsec = endpoint.data()["secret"].as_str().unwrap_or_default().to_owned();
    let notify = app.post("/api/merchant/notify-secret", json!({})).await;
    let notify_secret = notify.data()["notifySecret"].as_str().unwrap_or_default().to_owned();
    let account = app
        .post(
            "/api/provider-accounts",
            json!({ "provider": "octopus", "credentials": jinliu_providers::sandbox_credentials("octopus") }),
        )
        .await;
    assert_eq!((endpoint.status, notify.status, account.status), (201, 201, 201));
    let step = now().timestamp() / 30;
    let before = login(&app, "rotate@platform.example", password, &totp, step).await;
    assert_eq!(before.status, 200, "{:?}", before.body);
    let old_token = before.data()["accessToken"].as_str().unwrap_or_default().to_owned();
    assert_eq!(token_kid(&old_token).as_deref(), Some("k1"));

    let report = rotate(&app, &clock).await;
    assert_eq!((report.data_kid.as_str(), report.jwt_kid.as_str()), ("k2", "j2"));
    assert!(report.unreadable.is_empty(), "{:?}", report.unreadable);
    let resealed: Vec<(&str, usize)> = report.resealed.iter().map(|(c, n)| (c.as_str(), *n)).collect();
    assert_eq!(
        resealed,
        vec![
            ("users.totp_secret", 1),
            ("merchants.notify_secret", 1),
            ("webhook_endpoints.secret", 1),
            ("webhook_endpoints.previous_secret", 0),
            ("provider_accounts.credentials", 1),
        ]
    );
    for field in SealedField::ALL {
        for v in app.store.sealed_values(field).await.unwrap_or_default() {
            assert_eq!(kid_of(&v.value), Some("k2"), "{} {}", field.name(), v.row_id);
        }
    }
    // Until every node can have loaded them, the new keys only open and verify.
    assert_eq!(app.state.sealer.active_kid(), "k1");
    assert_eq!(app.state.auth.signing_kid(), "k1");
    reload_after_grace(&app, &clock).await;
    assert_eq!(app.state.sealer.active_kid(), "k2");
    assert_eq!(app.state.auth.signing_kid(), "j2");

    // Tokens signed before the rotation still work; new ones are signed with the new key, and
    // the re-encrypted TOTP seed still checks codes.
    assert_eq!(profile(&app, &old_token).await, 200);
    let after = login(&app, "rotate@platform.example", password, &totp, now().timestamp() / 30).await;
    assert_eq!(after.status, 200, "{:?}", after.body);
    let new_token = after.data()["accessToken"].as_str().unwrap_or_default().to_owned();
    assert_eq!(token_kid(&new_token).as_deref(), Some("j2"));
    // The webhook secret and notify secret open to what the merchant was given.
    let ep = stored_endpoint(&app, &endpoint.id()).await;
    let keys = jinliu_server::webhooks::endpoints::signing_keys(&app.state.sealer, &ep, now())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        keys,
        vec![jinliu_server::webhooks::sign::secret_key(&whsec).unwrap_or_default()]
    );
    let merchant = app
        .store
        .merchant(&app.state.config.merchant_id)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("merchant"));
    let opened = app.state.sealer.open(
        merchant.notify_secret.as_deref().unwrap_or_default(),
        &jinliu_server::http::merchant::notify_secret_aad(&merchant.id),
    );
    assert_eq!(opened.as_deref(), Some(notify_secret.as_bytes()));
    // The provider account's adapter is rebuilt from the re-encrypted credentials and pays.
    app.state.providers.forget(&merchant.id);
    let paid = app.paid("10.00", "HKD").await;
    assert_eq!(paid.data()["providerAccount"], account.id().as_str());

    // A second rotation retires the first JWT key: tokens it signed stop working.
    let second = rotate(&app, &clock).await;
    assert_eq!((second.data_kid.as_str(), second.jwt_kid.as_str()), ("k3", "j3"));
    reload_after_grace(&app, &clock).await;
    assert_eq!(profile(&app, &new_token).await, 200, "the previous key still verifies");
    assert_eq!(profile(&app, &old_token).await, 401, "the key before it no longer does");
}

#[tokio::test]
async fn a_rotation_under_the_wrong_master_key_changes_nothing() {
    let app = crate::spawn_app().await;
    let other = jinliu_server::secrets::MasterKey::from_hex(&"cd".repeat(32)).unwrap_or_else(|e| panic!("{e}"));
    let (sealer, auth) = (
        jinliu_server::secrets::Sealer::new(&other),
        jinliu_server::auth::Auth::new(&other),
    );
    let rotate_wrong = || keyring::rotate(&app.store, &sealer, &auth, chrono::Utc::now(), Duration::ZERO);
    let unproven = rotate_wrong().await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(unproven.contains("nothing in the database proves"), "{unproven}");
    let endpoint = app
        .post("/api/webhook-endpoints", json!({ "url": "http://127.0.0.1:9/hook" }))
        .await;
    assert_eq!(endpoint.status, 201);
    let unreadable = rotate_wrong().await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        unreadable.contains("1 stored secrets") && unreadable.contains("webhook_endpoints.secret"),
        "{unreadable}"
    );
    assert!(
        app.store.ring_keys().await.unwrap_or_default().is_empty(),
        "nothing was written"
    );
    // Under the right key the rotation records the check entry; from then on a wrong key is
    // refused by the ring itself.
    keyring::rotate(
        &app.store,
        &app.state.sealer,
        &app.state.auth,
        chrono::Utc::now(),
        Duration::ZERO,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let refused = rotate_wrong().await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(refused.contains("does not open under this master key"), "{refused}");
}

#[tokio::test]
async fn a_ring_made_under_another_master_key_refuses_to_load() {
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let app = spawn_app_on(Engine::Sqlite, &[], Some(clock.clone())).await;
    // What `jinliu serve` records at its first start: the proof of its master key.
    keyring::ensure_check(&app.store, &app.state.sealer, chrono::Utc::now())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    rotate(&app, &clock).await;
    let other = jinliu_server::secrets::MasterKey::from_hex(&"cd".repeat(32)).unwrap_or_else(|e| panic!("{e}"));
    let err = keyring::load(
        &app.store,
        &jinliu_server::secrets::Sealer::new(&other),
        &jinliu_server::auth::Auth::new(&other),
        chrono::Utc::now(),
    )
    .await
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(err.contains("does not open under this master key"), "{err}");
}

#[tokio::test]
async fn the_cli_rotates_a_running_servers_ring_and_refuses_another_master_key() {
    let app = crate::spawn_app().await;
    let endpoint = app
        .post("/api/webhook-endpoints", json!({ "url": "http://127.0.0.1:9/hook" }))
        .await;
    assert_eq!(endpoint.status, 201, "{:?}", endpoint.body);
    // Run without blocking the runtime: the server under test shares this thread, and its
    // background tasks must keep running while the command works on the same database.
    let jinliu = async |master: &str, args: &[&str]| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_jinliu"))
            .args(args)
            .args(["--database-url", &app.db_url])
            .env("JINLIU_MASTER_KEY", master)
            .output()
            .await
            .unwrap_or_else(|e| panic!("run jinliu: {e}"))
    };
    let out = jinliu(crate::MASTER_KEY, &["keys", "rotate", "--wait-secs", "0", "--json"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert_eq!(report["dataKid"], "k2", "{report}");
    assert!(
        report["resealed"]
            .to_string()
            .contains(r#"["webhook_endpoints.secret",1]"#),
        "{report}"
    );
    // The running server reloads the ring (every 15 s by itself) and signs with the re-sealed secret.
    keyring::load(&app.store, &app.state.sealer, &app.state.auth, chrono::Utc::now())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let ep = stored_endpoint(&app, &endpoint.id()).await;
    assert_eq!(kid_of(&ep.secret_sealed), Some("k2"));
    let secret = endpoint.data()["secret"].as_str().unwrap_or_default();
    let keys = jinliu_server::webhooks::endpoints::signing_keys(&app.state.sealer, &ep, chrono::Utc::now())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        keys,
        vec![jinliu_server::webhooks::sign::secret_key(secret).unwrap_or_default()]
    );

    let list = jinliu(crate::MASTER_KEY, &["keys", "list"]).await;
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.status.success() && text.contains("k2\tdata") && text.contains("j2\tjwt"),
        "{text}"
    );
    let wrong = jinliu(&"00".repeat(32), &["keys", "list"]).await;
    assert!(!wrong.status.success());
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("does not open under this master key"),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );
}
