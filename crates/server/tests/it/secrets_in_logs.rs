//! Secrets never reach the logs: every log line of a login (password, tokens), a TOTP
//! enrolment (secret, recovery codes), a key creation (key text) and a provider account's
//! creation and credential update, at TRACE level, is searched for them.
//!
//! The capture is process-wide (a `tracing` subscriber is global), so the buffer also holds
//! other tests' lines; only this test's own secrets are looked for.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use jinliu_domain::Role;
use serde_json::json;

use crate::spawn_app;

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logs() -> &'static Buffer {
    static LOGS: OnceLock<Buffer> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish();
        // Fails only if another test installed one first; then nothing is captured and the
        // assertion on the captured volume below says so.
        let _ = tracing::subscriber::set_global_default(subscriber);
        buffer
    })
}

#[tokio::test]
async fn passwords_tokens_totp_secrets_and_keys_never_appear_in_the_logs() {
    let buffer = logs();
    let app = spawn_app().await;
    let password = "log-test secret 9137";
    jinliu_server::users::create_user(
        &app.store,
        &app.state.sealer,
        "logs@shop.example",
        password,
        Role::MerchantAdmin,
        Some(app.state.config.merchant_id.clone()),
        chrono::Utc::now(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    // A failed and a successful login.
    let _ = app
        .post(
            "/api/auth/login",
            json!({ "email": "logs@shop.example", "password": "wrong 1234567890" }),
        )
        .await;
    let login = app
        .post(
            "/api/auth/login",
            json!({ "email": "logs@shop.example", "password": password }),
        )
        .await;
    assert_eq!(login.status, 200, "{:?}", login.body);
    let access = login.data()["accessToken"].as_str().unwrap_or_default().to_owned();
    let refresh = login.data()["refreshToken"].as_str().unwrap_or_default().to_owned();
    let bearer = |path: &str, body: serde_json::Value| {
        app.send(
            app.anon
                .post(format!("{}{path}", app.base))
                .header("authorization", format!("Bearer {access}"))
                .json(&body),
        )
    };
    let setup = bearer("/api/auth/mfa/setup", json!({ "password": password })).await;
    let totp = setup.data()["secret"].as_str().unwrap_or_default().to_owned();
    let code = jinliu_server::totp::code_at(&totp, chrono::Utc::now().timestamp() / 30).unwrap_or_default();
    let confirm = bearer("/api/auth/mfa/confirm", json!({ "code": code })).await;
    let recovery: Vec<String> = serde_json::from_value(confirm.data()["recoveryCodes"].clone()).unwrap_or_default();
    let key = app.post("/api/keys", json!({ "description": "log test" })).await;
    let key_text = key.data()["secret"].as_str().unwrap_or_default().to_owned();
    let _ = app.post("/api/auth/refresh", json!({ "refreshToken": refresh })).await;
    // A provider account is added and its credentials replaced: neither set is logged or shown.
    let mut provider_creds = jinliu_providers::sandbox_credentials("kpay");
    provider_creds.insert("api_key".into(), "provider-log-secret-4471".into());
    let account = app
        .post(
            "/api/provider-accounts",
            json!({ "provider": "kpay", "credentials": provider_creds }),
        )
        .await;
    assert_eq!(account.status, 201, "{:?}", account.body);
    provider_creds.insert("api_key".into(), "provider-log-secret-rotated-8823".into());
    let replaced = app
        .patch(
            &format!("/api/provider-accounts/{}", account.id()),
            json!({ "credentials": provider_creds }),
        )
        .await;
    assert_eq!(replaced.status, 200, "{:?}", replaced.body);
    for answer in [&account, &replaced] {
        assert!(!answer.text.contains("provider-log-secret"), "{}", answer.text);
    }

    let text = String::from_utf8_lossy(&buffer.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
    assert!(
        text.len() > 200,
        "the capture saw the server's log lines ({} bytes)",
        text.len()
    );
    let mut secrets = vec![
        ("password", password.to_owned()),
        ("access token", access),
        ("refresh token", refresh),
        ("TOTP secret", totp),
        ("API key", key_text),
        ("test merchant's key", app.secret_key.clone()),
        ("provider credential", "provider-log-secret-4471".to_owned()),
        (
            "replaced provider credential",
            "provider-log-secret-rotated-8823".to_owned(),
        ),
    ];
    secrets.extend(recovery.into_iter().map(|c| ("recovery code", c)));
    for (what, secret) in secrets {
        assert!(!secret.is_empty(), "{what} was produced");
        assert!(!text.contains(&secret), "the {what} appears in the logs");
    }
}
