//! The provider sandboxes: local servers that behave like KPay, TPay, Octopus and ECPay.
//!
//! Each provider's `sandbox.rs` serves that provider's own paths, checks request signatures the
//! way the provider would, keeps its payments in memory and shows the customer a pay page. What
//! every sandbox shares lives here, in [`Kit`]:
//! - fault injection set with `PUT {prefix}/control` (latency, 5xx, timeouts that still take
//!   effect, duplicated / reordered / dropped notifications);
//! - notification delivery that retries like a provider until jinliu acknowledges;
//! - `POST {prefix}/simulate` `{ paymentId | reference, outcome: paid|declined|expired }`, which
//!   does what the customer would and answers with the delivery result;
//! - the pay page and its Pay / Decline buttons.
//!
//! The in-process sandboxes are mounted under `/sandbox/<provider>/` when `JINLIU_SANDBOX` is on;
//! `jinliu sandbox --listen ADDR` serves the same [`router`] alone.

pub mod kit;
pub mod page;

pub use kit::{DeliveryReport, Faults, Kit, Notification, Outcome, SandboxPayments, SimError};
pub use page::PageView;

/// Every sandbox, nested under `/sandbox/<provider>`, with pages and notification senders that
/// believe they live at `{public_url}/sandbox/<provider>`.
pub fn router(public_url: &str) -> axum::Router {
    let base = public_url.trim_end_matches('/');
    axum::Router::new()
        .nest(
            "/sandbox/kpay",
            crate::kpay::sandbox::router(Kit::new("kpay", format!("{base}/sandbox/kpay"))),
        )
        .nest(
            "/sandbox/tpay",
            crate::tpay::sandbox::router(Kit::new("tpay", format!("{base}/sandbox/tpay"))),
        )
        .nest(
            "/sandbox/octopus",
            crate::octopus::sandbox::router(Kit::new("octopus", format!("{base}/sandbox/octopus"))),
        )
        .nest(
            "/sandbox/ecpay",
            crate::ecpay::sandbox::router(Kit::new("ecpay", format!("{base}/sandbox/ecpay"))),
        )
}
