//! First run: with an empty merchants table and the sandbox on (test mode only), `jinliu serve`
//! creates a demo merchant (`JINLIU_MERCHANT_ID`) with a test secret key and a test publishable
//! key, prints them once, and writes them to `<data-dir>/demo-credentials.json` (mode 0600) so a
//! new user can call the API at once. Never in live mode: without the sandbox nothing is created.

use std::io::Write;

use jinliu_domain::{ApiKeyKind, Merchant};
use serde_json::json;

use crate::state::AppState;

/// Creates the demo merchant and keys when this is a fresh test-mode installation.
pub async fn first_run(app: &AppState) -> Result<(), String> {
    if !app.config.sandbox || app.store.merchant_count().await.map_err(|e| e.to_string())? > 0 {
        return Ok(());
    }
    let now = app.clock.now();
    let merchant = Merchant {
        id: app.config.merchant_id.clone(),
        name: "Demo merchant".into(),
        status: "active".into(),
        default_currency: app.config.default_currency,
        timezone: app.config.timezone.name().to_owned(),
        created_at: now,
        updated_at: now,
    };
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
    let creds = json!({ "merchantId": merchant.id, "secretKey": secret, "publishableKey": publishable });
    let path = app.config.data_dir.join("demo-credentials.json");
    write_private(&path, &serde_json::to_vec_pretty(&creds).map_err(|e| e.to_string())?)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!(
        "first run: created demo merchant {} (test mode)\n  secret key:      {secret}\n  publishable key: {publishable}\n  (also in {}; shown once)",
        merchant.id,
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
