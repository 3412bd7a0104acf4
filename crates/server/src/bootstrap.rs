//! First run: with an empty merchants table and the sandbox on (test mode only), `jinliu serve`
//! creates a demo merchant (`JINLIU_MERCHANT_ID`) with a test secret key and a test publishable
//! key, a platform admin and a merchant admin with random passwords, prints them once, and writes them to `<data-dir>/demo-credentials.json` (mode 0600) so a
//! new user can call the API at once. Never in live mode: without the sandbox, or with any live
//! provider account configured, nothing is created.

use std::io::Write;

use jinliu_domain::{ApiKeyKind, Merchant};
use serde_json::json;

use crate::state::AppState;

/// Creates the demo merchant and keys when this is a fresh test-mode installation.
pub async fn first_run(app: &AppState) -> Result<(), String> {
    let live = app
        .config
        .provider_accounts
        .iter()
        .any(|a| a.mode.as_deref() == Some("live"));
    if !app.config.sandbox || live || app.store.merchant_count().await.map_err(|e| e.to_string())? > 0 {
        return Ok(());
    }
    let now = app.clock.now();
    let merchant = Merchant::new(
        app.config.merchant_id.clone(),
        "Demo merchant",
        app.config.default_currency,
        app.config.timezone.name().to_owned(),
        now,
    );
    app.store.create_merchant(&merchant).await.map_err(|e| e.to_string())?;
    let issue = |kind, description: &str| {
        app.auth.issue_key(
            &app.store,
            &merchant.id,
            kind,
            false,
            None,
            Some(description.to_owned()),
            now,
        )
    };
    let (_, secret) = issue(ApiKeyKind::Secret, "demo secret key")
        .await
        .map_err(|e| e.to_string())?;
    let (_, publishable) = issue(ApiKeyKind::Publishable, "demo publishable key")
        .await
        .map_err(|e| e.to_string())?;
    let create = |email: &str, role, merchant| {
        let password = crate::users::random_password();
        let (store, sealer) = (app.store.clone(), app.sealer.clone());
        let email = email.to_owned();
        async move {
            crate::users::create_user(&store, &sealer, &email, &password, role, merchant, now)
                .await
                .map(|(_, totp)| (email, password, totp))
                .map_err(|e| e.to_string())
        }
    };
    let (admin_email, admin_password, admin_totp) =
        create("admin@jinliu.local", jinliu_domain::Role::PlatformAdmin, None).await?;
    let (owner_email, owner_password, _) = create(
        "merchant@jinliu.local",
        jinliu_domain::Role::MerchantAdmin,
        Some(merchant.id.clone()),
    )
    .await?;
    // The platform admin's TOTP secret: add it to an authenticator app (or compute codes from it).
    let creds = json!({
        "merchantId": merchant.id,
        "platformAdmin": { "email": admin_email, "password": admin_password, "totpSecret": admin_totp },
        "merchantAdmin": { "email": owner_email, "password": owner_password },
        "secretKey": secret,
        "publishableKey": publishable,
    });
    let path = app.config.data_dir.join("demo-credentials.json");
    write_private(&path, &serde_json::to_vec_pretty(&creds).map_err(|e| e.to_string())?)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!(
        "first run: created demo merchant {} (test mode)\n  secret key:      {secret}\n  publishable key: {publishable}\n  platform admin:  {admin_email} / {admin_password} (TOTP secret {})\n  merchant admin:  {owner_email} / {owner_password}\n  (also in {}; shown once)",
        merchant.id,
        admin_totp.as_deref().unwrap_or("-"),
        path.display()
    );
    Ok(())
}

fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(bytes)
}
