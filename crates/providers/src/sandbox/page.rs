//! The sandbox pay page: what the customer sees after scanning the QR code or being redirected —
//! merchant, description, amount, and Pay / Decline buttons.

use axum::http::StatusCode;
use axum::response::Html;
use jinliu_domain::Money;

use super::kit::{DeliveryReport, Outcome};

/// What the pay page shows.
#[derive(Debug, Clone)]
pub struct PageView {
    /// The provider's name as shown (`Octopus`, `綠界 ECPay`…).
    pub provider_title: String,
    /// The merchant's name or id.
    pub merchant: String,
    /// The payment's description.
    pub description: String,
    /// The amount.
    pub amount: Money,
    /// `open`, `paid`, `declined`, `expired`, `cancelled`, `refunded`…
    pub status: String,
    /// Where the customer goes afterwards, when the merchant gave a return URL.
    pub return_url: Option<String>,
}

/// The page with Pay / Decline buttons posting `outcome=paid|declined` to `action`.
pub fn render(view: &PageView, action: &str) -> Html<String> {
    let buttons = if view.status == "open" {
        format!(
            "<form method=\"post\" action=\"{action}\">\
             <button name=\"outcome\" value=\"paid\" id=\"pay\">Pay</button> \
             <button name=\"outcome\" value=\"declined\" id=\"decline\">Decline</button></form>",
            action = escape(action)
        )
    } else {
        String::new()
    };
    Html(frame(
        &view.provider_title,
        &format!(
            "<p class=\"merchant\">{merchant}</p><p>{desc}</p><p class=\"amount\"><strong>{amount} {currency}</strong></p>\
             <p>Status: <span id=\"status\">{status}</span></p>{buttons}",
            merchant = escape(&view.merchant),
            desc = escape(&view.description),
            amount = view.amount.major_string(),
            currency = view.amount.currency(),
            status = escape(&view.status),
        ),
    ))
}

/// The page after the customer chose.
pub fn done(view: Option<&PageView>, outcome: Outcome, report: &DeliveryReport) -> Html<String> {
    let title = view.map(|v| v.provider_title.as_str()).unwrap_or("Sandbox");
    let back = view
        .and_then(|v| v.return_url.as_deref())
        .map(|u| {
            format!(
                "<p><a id=\"return\" href=\"{}\">Back to the merchant</a></p>",
                escape(u)
            )
        })
        .unwrap_or_default();
    let said = match outcome {
        Outcome::Paid => "Paid",
        Outcome::Declined => "Declined",
        Outcome::Expired => "Expired",
    };
    let notified = if report.acknowledged {
        "the merchant acknowledged the notification"
    } else if report.dropped {
        "the notification was withheld (fault injection)"
    } else {
        "the merchant has not acknowledged yet; the sandbox keeps retrying"
    };
    Html(frame(
        title,
        &format!("<p id=\"result\">{said}</p><p class=\"delivery\">{notified}</p>{back}"),
    ))
}

/// The page for a reference the sandbox does not know.
pub fn unknown() -> (StatusCode, Html<String>) {
    (StatusCode::NOT_FOUND, Html(frame("Sandbox", "<p>Unknown payment</p>")))
}

fn frame(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{t} (sandbox)</title></head>\
         <body style=\"font-family:sans-serif;max-width:28em;margin:2em auto;padding:0 1em\">\
         <h1>{t} <small>sandbox</small></h1>{body}</body></html>",
        t = escape(title)
    )
}

/// HTML-escapes text for element content and double-quoted attributes.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}
