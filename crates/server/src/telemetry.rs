//! Logging setup: `tracing` to stderr, human text or JSON, filtered by `RUST_LOG`
//! (default `info`). Never log secrets or personal data.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber (once, in `main`).
pub fn init(format: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}
