//! The hosted checkout: `checkoutUrl` on payments, the QR code at `qr.svg`, and the built front
//! end (web/dist) served from disk with its cache and security headers.

use serde_json::json;

use crate::{TestApp, spawn_app, spawn_app_with};

/// A fake built front end: what `make web` leaves in web/dist, in miniature.
fn web_dist() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let write = |path: &str, text: &str| {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap_or(dir.path())).unwrap_or_else(|e| panic!("mkdir: {e}"));
        std::fs::write(p, text).unwrap_or_else(|e| panic!("write: {e}"));
    };
    write(
        "index.html",
        "<!doctype html><div id=\"app\"></div><script type=\"module\" src=\"/assets/index-abc123.js\"></script>",
    );
    write("assets/index-abc123.js", "console.log('checkout')");
    write("js/jinliu.js", "export function mount() {}");
    dir
}

async fn raw(app: &TestApp, path: &str) -> reqwest::Response {
    app.anon
        .get(format!("{}{path}", app.base))
        .send()
        .await
        .unwrap_or_else(|e| panic!("request: {e}"))
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn a_payment_carries_a_checkout_url_under_the_public_url_with_its_client_secret() {
    // The test server's public URL is its own address (the sandboxes must be reachable there).
    let app = spawn_app().await;
    let order = app.order("68.00", "HKD").await;
    let pay = app.payment(&order, "68.00", "HKD").await;
    let secret = pay.data()["clientSecret"].as_str().unwrap_or_default().to_owned();
    let expected = format!("{}/pay/{}?clientSecret={secret}", app.base, pay.id());
    assert_eq!(pay.data()["checkoutUrl"], expected.as_str());
    assert_eq!(
        app.get(&format!("/api/payments/{}", pay.id())).await.data()["checkoutUrl"],
        expected.as_str(),
        "a read answers the same URL"
    );
    let listed = app.get(&format!("/api/orders/{order}/payments")).await;
    assert_eq!(listed.data()[0]["checkoutUrl"], expected.as_str());
}

#[tokio::test]
async fn an_idempotent_replay_answers_the_same_checkout_url() {
    let app = spawn_app().await;
    let order = app.order("100", "TWD").await;
    let body = json!({ "orderId": order, "amount": 100 });
    let first = app.post_with_key("/api/payments", "checkout-1", body.clone()).await;
    let again = app.post_with_key("/api/payments", "checkout-1", body).await;
    assert!(again.replayed);
    assert!(
        first.data()["checkoutUrl"]
            .as_str()
            .is_some_and(|u| u.contains("/pay/pay_"))
    );
    assert_eq!(first.data()["checkoutUrl"], again.data()["checkoutUrl"]);
}

#[tokio::test]
async fn the_qr_code_is_an_svg_of_the_payments_customer_url_and_needs_the_right_secret() {
    let app = spawn_app().await;
    let order = app.order("68.00", "HKD").await;
    let pay = app.payment(&order, "68.00", "HKD").await;
    let secret = pay.data()["clientSecret"].as_str().unwrap_or_default().to_owned();
    let url = TestApp::pay_url(&pay);

    let r = raw(
        &app,
        &format!("/api/payments/{}/qr.svg?clientSecret={secret}", pay.id()),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), "image/svg+xml");
    assert_eq!(header(&r, "cache-control"), "no-store");
    let svg = r.text().await.unwrap_or_default();
    assert_eq!(
        Some(svg),
        jinliu_server::http::qr::svg(&url),
        "the image encodes qrCodeData.url"
    );

    for wrong in [
        format!("/api/payments/{}/qr.svg?clientSecret=nope", pay.id()),
        format!("/api/payments/{}/qr.svg", pay.id()),
        format!("/api/payments/pay_0190000000007000800000000000000a/qr.svg?clientSecret={secret}"),
        format!("/api/payments/not-an-id/qr.svg?clientSecret={secret}"),
    ] {
        let a = app.send(app.anon.get(format!("{}{wrong}", app.base))).await;
        assert_eq!((a.status, a.code()), (404, "payment_not_found"), "{wrong}");
    }
}

#[tokio::test]
async fn the_qr_code_answers_any_origin_because_merchant_pages_embed_it() {
    let app = spawn_app().await;
    let order = app.order("100", "TWD").await;
    let pay = app.payment(&order, "100", "TWD").await;
    let secret = pay.data()["clientSecret"].as_str().unwrap_or_default().to_owned();
    let r = app
        .anon
        .get(format!(
            "{}/api/payments/{}/qr.svg?clientSecret={secret}",
            app.base,
            pay.id()
        ))
        .header("origin", "https://shop.example")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(header(&r, "access-control-allow-origin"), "*");
    assert_eq!(header(&r, "access-control-allow-credentials"), "");
}

#[tokio::test]
async fn the_pay_page_is_the_built_index_html_for_any_payment_id_with_a_strict_csp() {
    let dist = web_dist();
    let dir = dist.path().to_string_lossy().into_owned();
    let app = spawn_app_with(&[("JINLIU_WEB_DIR", &dir)]).await;
    let r = raw(&app, "/pay/pay_01a2021408117428bcd4f99b7e4115ba?clientSecret=x").await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&r, "cache-control"), "no-cache");
    let csp = header(&r, "content-security-policy");
    for part in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(part), "{csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(
        header(&r, "referrer-policy"),
        "no-referrer",
        "the client secret in the URL never leaves in a Referer"
    );
    assert!(r.text().await.unwrap_or_default().contains("id=\"app\""));
}

#[tokio::test]
async fn hashed_assets_are_cached_for_a_year_and_jinliu_js_is_revalidated_and_cross_origin() {
    let dist = web_dist();
    let dir = dist.path().to_string_lossy().into_owned();
    let app = spawn_app_with(&[("JINLIU_WEB_DIR", &dir)]).await;
    let a = raw(&app, "/assets/index-abc123.js").await;
    assert_eq!(a.status(), 200);
    assert_eq!(header(&a, "cache-control"), "public, max-age=31536000, immutable");
    assert!(header(&a, "content-type").contains("javascript"));
    let j = raw(&app, "/js/jinliu.js").await;
    assert_eq!(j.status(), 200);
    assert_eq!(header(&j, "cache-control"), "no-cache");
    assert_eq!(header(&j, "access-control-allow-origin"), "*");
    assert!(header(&j, "content-type").contains("javascript"));
    assert_eq!(raw(&app, "/assets/missing-000.js").await.status(), 404);
    assert_eq!(raw(&app, "/assets/../index.html").await.status(), 404);
}

#[tokio::test]
async fn without_a_built_front_end_the_pay_page_says_how_to_build_it() {
    let empty = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let dir = empty.path().join("dist").to_string_lossy().into_owned();
    let app = spawn_app_with(&[("JINLIU_WEB_DIR", &dir)]).await;
    let r = raw(&app, "/pay/pay_01a2021408117428bcd4f99b7e4115ba").await;
    assert_eq!(r.status(), 503);
    let text = r.text().await.unwrap_or_default();
    assert!(text.contains("make web"), "{text}");
    assert!(!text.contains(&dir), "the page names no server path");
}

#[tokio::test]
async fn the_public_view_answers_any_origin_but_lets_no_merchant_key_ride_along() {
    let app = spawn_app().await;
    let order = app.order("100", "TWD").await;
    let pay = app.payment(&order, "100", "TWD").await;
    let secret = pay.data()["clientSecret"].as_str().unwrap_or_default().to_owned();
    let get = |q: String| {
        app.anon
            .get(format!("{}/api/payments/{}{q}", app.base, pay.id()))
            .header("origin", "https://shop.example")
            .send()
    };
    let ok = get(format!("?clientSecret={secret}"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ok.status(), 200);
    assert_eq!(header(&ok, "access-control-allow-origin"), "*");
    let wrong = get("?clientSecret=nope".into()).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(wrong.status(), 404);
    assert_eq!(
        header(&wrong, "access-control-allow-origin"),
        "*",
        "the page on another origin can read the refusal"
    );
    // A browser asks before sending `Authorization` cross-origin; the answer does not allow it.
    let preflight = app
        .anon
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/api/payments/{}", app.base, pay.id()),
        )
        .header("origin", "https://shop.example")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !header(&preflight, "access-control-allow-headers")
            .to_ascii_lowercase()
            .contains("authorization")
    );
    assert_eq!(header(&preflight, "access-control-allow-credentials"), "");
}

#[tokio::test]
async fn the_form_posting_page_sends_no_referrer_and_is_neither_cached_nor_framed() {
    let app = spawn_app().await;
    let order = app.order("100", "TWD").await;
    let pay = app
        .post(
            "/api/payments",
            json!({ "orderId": order, "amount": 100, "currency": "TWD", "provider": "ecpay" }),
        )
        .await;
    assert_eq!(pay.status, 201, "{:?}", pay.body);
    let secret = pay.data()["clientSecret"].as_str().unwrap_or_default().to_owned();
    let r = raw(
        &app,
        &format!("/api/payments/{}/checkout?clientSecret={secret}", pay.id()),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "referrer-policy"),
        "no-referrer",
        "the secret in the URL must not reach ECPay"
    );
    assert_eq!(header(&r, "cache-control"), "no-store");
    assert_eq!(header(&r, "x-frame-options"), "DENY");
}
