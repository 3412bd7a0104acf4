//! QR codes as SVG for the checkout page (`GET /api/payments/{id}/qr.svg`).
//!
//! Drawn on the server with the `qrcode` crate so the browser needs no QR library and the page's
//! Content-Security-Policy can keep `img-src 'self'`. Owns only the rendering; who may see which
//! payment's code is decided by the route table and the handler.

use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};

/// The QR code of `text` as an SVG document, or `None` when the text is too long for a QR code.
///
/// Error correction M (15 %) is what payment apps scan reliably off a phone screen; the quiet
/// zone is kept because scanners need it against a busy page.
pub fn svg(text: &str) -> Option<String> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M).ok()?;
    Some(
        code.render::<svg::Color<'_>>()
            .min_dimensions(240, 240)
            .dark_color(svg::Color("#000000"))
            .light_color(svg::Color("#ffffff"))
            .quiet_zone(true)
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_becomes_an_svg_document_of_at_least_240_pixels() {
        let s = svg("http://127.0.0.1:8080/sandbox/octopus/oos/payment/?token=abc").unwrap_or_default();
        assert!(s.starts_with("<?xml"), "{s:.80}");
        assert!(s.contains("<svg"));
        let width: u32 = s
            .split("width=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .and_then(|w| w.parse().ok())
            .unwrap_or(0);
        assert!(width >= 240, "width {width}");
    }

    #[test]
    fn different_urls_draw_different_codes_and_the_same_url_the_same_code() {
        let a = svg("https://example.com/a");
        assert_eq!(a, svg("https://example.com/a"));
        assert_ne!(a, svg("https://example.com/b"));
    }

    #[test]
    fn text_too_long_for_any_qr_code_is_refused() {
        assert_eq!(svg(&"x".repeat(5000)), None);
    }
}
