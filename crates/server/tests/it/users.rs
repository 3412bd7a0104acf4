//! Users: login, lockout, access tokens (and every way to forge one), refresh rotation, and the
//! route table × every role.

use jinliu_domain::{MerchantId, Permission, Role};
use jinliu_server::http::routes::{Access, table};
use serde_json::{Value, json};

use crate::{Answer, MASTER_KEY, TestApp, spawn_app};

const PASSWORD: &str = "correct horse 42 battery";

/// Creates a user; returns a platform admin's TOTP secret.
async fn user(app: &TestApp, email: &str, role: Role, merchant: Option<MerchantId>) -> Option<String> {
    jinliu_server::users::create_user(
        &app.store,
        &app.state.sealer,
        email,
        PASSWORD,
        role,
        merchant,
        chrono::Utc::now(),
    )
    .await
    .unwrap_or_else(|e| panic!("user: {e}"))
    .1
}

async fn login(app: &TestApp, email: &str, password: &str) -> Answer {
    login_totp(app, email, password, None).await
}

async fn login_totp(app: &TestApp, email: &str, password: &str, totp: Option<&str>) -> Answer {
    app.send(
        app.anon
            .post(format!("{}/api/auth/login", app.base))
            .json(&json!({ "email": email, "password": password, "totp": totp })),
    )
    .await
}

/// The current code of a TOTP secret, `skew` steps away.
fn code(secret: &str, skew: i64) -> String {
    jinliu_server::totp::code_at(secret, chrono::Utc::now().timestamp() / 30 + skew).unwrap_or_default()
}

async fn get_with(app: &TestApp, path: &str, token: &str, merchant: Option<&str>) -> Answer {
    let mut req = app
        .anon
        .get(format!("{}{path}", app.base))
        .header("authorization", format!("Bearer {token}"));
    if let Some(m) = merchant {
        req = req.header("jinliu-merchant", m);
    }
    app.send(req).await
}

fn token_of(a: &Answer) -> String {
    a.data()["accessToken"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_merchant_admin_logs_in_and_uses_the_merchant_api_with_the_access_token() {
    let app = spawn_app().await;
    let merchant = app.state.config.merchant_id.clone();
    user(&app, "Owner@Shop.example", Role::MerchantAdmin, Some(merchant.clone())).await;
    let a = login(&app, "owner@shop.example", PASSWORD).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.data()["tokenType"], "Bearer");
    assert_eq!(a.data()["expiresIn"], 86_400, "seed 004's 24h default");
    assert_eq!(a.data()["user"]["role"], "merchant_admin");
    assert!(!a.text.contains("argon2"), "no password hash in the answer");
    let token = token_of(&a);
    let profile = get_with(&app, "/api/auth/profile", &token, None).await;
    assert_eq!(profile.data()["email"], "owner@shop.example");
    let profile = get_with(&app, "/auth/profile", &token, None).await;
    assert_eq!(profile.status, 200, "seed 000's root path");
    let orders = get_with(&app, "/api/orders", &token, None).await;
    assert_eq!(orders.status, 200, "{:?}", orders.body);
    let other = MerchantId::generate();
    let refused = get_with(&app, "/api/orders", &token, Some(other.as_str())).await;
    assert_eq!(refused.status, 401, "a merchant user cannot act for another merchant");
    // An API key is not a user session.
    let a = get_with(&app, "/api/auth/profile", &app.secret_key, None).await;
    assert_eq!((a.status, a.code()), (401, "invalid_credentials"));
}

#[tokio::test]
async fn ten_wrong_passwords_lock_the_account_and_a_locked_account_looks_like_a_wrong_password() {
    let app = spawn_app().await;
    user(
        &app,
        "finance@shop.example",
        Role::Finance,
        Some(app.state.config.merchant_id.clone()),
    )
    .await;
    let unknown = login(&app, "nobody@shop.example", PASSWORD).await;
    let wrong = login(&app, "finance@shop.example", "wrong password 1").await;
    assert_eq!((unknown.status, unknown.code()), (wrong.status, wrong.code()));
    assert_eq!(wrong.code(), "invalid_credentials");
    for _ in 1..10 {
        assert_eq!(
            login(&app, "finance@shop.example", "wrong password 1").await.status,
            401
        );
    }
    let locked = login(&app, "finance@shop.example", PASSWORD).await;
    assert_eq!(
        (locked.status, locked.code()),
        (401, "invalid_credentials"),
        "locked: even the right password fails, and the answer does not say the account exists"
    );
}

#[tokio::test]
async fn parallel_guesses_get_no_more_than_ten_tries() {
    let app = spawn_app().await;
    user(
        &app,
        "race@shop.example",
        Role::Viewer,
        Some(app.state.config.merchant_id.clone()),
    )
    .await;
    let guesses: Vec<_> = (0..15)
        .map(|_| login(&app, "race@shop.example", "wrong password 1"))
        .collect();
    for a in futures::future::join_all(guesses).await {
        assert_eq!(a.status, 401);
    }
    assert_eq!(
        login(&app, "race@shop.example", PASSWORD).await.status,
        401,
        "the account locked after ten, however fast they came"
    );
}

#[tokio::test]
async fn an_access_token_dies_with_its_login() {
    let app = spawn_app().await;
    user(
        &app,
        "out@shop.example",
        Role::MerchantAdmin,
        Some(app.state.config.merchant_id.clone()),
    )
    .await;
    let a = login(&app, "out@shop.example", PASSWORD).await;
    let token = token_of(&a);
    assert_eq!(get_with(&app, "/api/orders", &token, None).await.status, 200);
    let refresh = a.data()["refreshToken"].as_str().unwrap_or_default().to_owned();
    let out = app
        .send(
            app.anon
                .post(format!("{}/api/auth/logout", app.base))
                .json(&json!({ "refreshToken": refresh })),
        )
        .await;
    assert_eq!(out.status, 200);
    let after = get_with(&app, "/api/orders", &token, None).await;
    assert_eq!((after.status, after.code()), (401, "invalid_credentials"));
}

#[tokio::test]
async fn a_platform_admin_cannot_act_on_a_merchant_that_does_not_exist() {
    let app = spawn_app().await;
    let totp = user(&app, "root2@jinliu.example", Role::PlatformAdmin, None)
        .await
        .unwrap_or_default();
    let token = token_of(&login_totp(&app, "root2@jinliu.example", PASSWORD, Some(&code(&totp, 0))).await);
    let ghost = MerchantId::generate();
    let a = get_with(&app, "/api/orders", &token, Some(ghost.as_str())).await;
    assert_eq!((a.status, a.code()), (401, "invalid_credentials"), "{:?}", a.body);
}

fn forge(claims: Value, kid: Option<&str>, alg: jsonwebtoken::Algorithm, key: &[u8]) -> String {
    let mut header = jsonwebtoken::Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_secret(key)).unwrap_or_default()
}

#[tokio::test]
async fn forged_expired_or_mis_addressed_access_tokens_are_all_refused() {
    let app = spawn_app().await;
    user(
        &app,
        "viewer@shop.example",
        Role::Viewer,
        Some(app.state.config.merchant_id.clone()),
    )
    .await;
    let good = token_of(&login(&app, "viewer@shop.example", PASSWORD).await);
    let sub = get_with(&app, "/api/auth/profile", &good, None).await.data()["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let key = jinliu_server::secrets::MasterKey::from_hex(MASTER_KEY)
        .unwrap_or_else(|e| panic!("{e}"))
        .derive("jinliu jwt hs256 k1");
    let now = chrono::Utc::now().timestamp();
    let sid = {
        use base64::Engine;
        let payload = good.split('.').nth(1).unwrap_or_default();
        let v: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap_or_default(),
        )
        .unwrap_or_default();
        v["sid"].clone()
    };
    let claims = |iss: &str, aud: &str, exp: Value, nbf: i64| json!({ "iss": iss, "aud": aud, "sub": sub, "exp": exp, "nbf": nbf, "iat": now, "sid": sid });
    let hs = jsonwebtoken::Algorithm::HS256;
    // The right key, so only the checked property is wrong.
    let sanity = forge(
        claims("jinliu", "jinliu-api", json!(now + 600), now),
        Some("k1"),
        hs,
        &key,
    );
    assert_eq!(
        get_with(&app, "/api/orders", &sanity, None).await.status,
        200,
        "the forger's baseline works"
    );
    let parts: Vec<&str> = good.split('.').collect();
    let tampered = {
        use base64::Engine;
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut payload: Value =
            serde_json::from_slice(&engine.decode(parts[1]).unwrap_or_default()).unwrap_or_default();
        payload["sub"] = json!("usr_00000000000000000000000000000000");
        format!("{}.{}.{}", parts[0], engine.encode(payload.to_string()), parts[2])
    };
    let alg_none = {
        use base64::Engine;
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.",
            engine.encode(r#"{"alg":"none","typ":"JWT","kid":"k1"}"#),
            engine.encode(claims("jinliu", "jinliu-api", json!(now + 600), now).to_string())
        )
    };
    let cases = [
        ("alg none", alg_none),
        (
            "HS384",
            forge(
                claims("jinliu", "jinliu-api", json!(now + 600), now),
                Some("k1"),
                jsonwebtoken::Algorithm::HS384,
                &key,
            ),
        ),
        (
            "another key",
            forge(
                claims("jinliu", "jinliu-api", json!(now + 600), now),
                Some("k1"),
                hs,
                b"not the key",
            ),
        ),
        (
            "unknown kid",
            forge(
                claims("jinliu", "jinliu-api", json!(now + 600), now),
                Some("k9"),
                hs,
                &key,
            ),
        ),
        (
            "no kid",
            forge(claims("jinliu", "jinliu-api", json!(now + 600), now), None, hs, &key),
        ),
        (
            "wrong issuer",
            forge(
                claims("evil", "jinliu-api", json!(now + 600), now),
                Some("k1"),
                hs,
                &key,
            ),
        ),
        (
            "wrong audience",
            forge(claims("jinliu", "other", json!(now + 600), now), Some("k1"), hs, &key),
        ),
        (
            "expired",
            forge(
                claims("jinliu", "jinliu-api", json!(now - 120), now - 600),
                Some("k1"),
                hs,
                &key,
            ),
        ),
        (
            "not yet valid",
            forge(
                claims("jinliu", "jinliu-api", json!(now + 600), now + 300),
                Some("k1"),
                hs,
                &key,
            ),
        ),
        (
            "string exp",
            forge(
                claims("jinliu", "jinliu-api", json!((now + 600).to_string()), now),
                Some("k1"),
                hs,
                &key,
            ),
        ),
        ("tampered payload", tampered),
        ("garbage", "a.b.c".to_owned()),
    ];
    for (what, token) in cases {
        let a = get_with(&app, "/api/orders", &token, None).await;
        assert_eq!(
            (a.status, a.code()),
            (401, "invalid_credentials"),
            "{what}: {:?}",
            a.body
        );
    }
}

#[tokio::test]
async fn a_refresh_token_rotates_and_a_reused_one_revokes_its_login() {
    let app = spawn_app().await;
    user(
        &app,
        "support@shop.example",
        Role::Support,
        Some(app.state.config.merchant_id.clone()),
    )
    .await;
    let first = login(&app, "support@shop.example", PASSWORD).await;
    let r1 = first.data()["refreshToken"].as_str().unwrap_or_default().to_owned();
    let refresh = |t: String| {
        app.send(
            app.anon
                .post(format!("{}/api/auth/refresh", app.base))
                .json(&json!({ "refreshToken": t })),
        )
    };
    let second = refresh(r1.clone()).await;
    assert_eq!(second.status, 200, "{:?}", second.body);
    let r2 = second.data()["refreshToken"].as_str().unwrap_or_default().to_owned();
    assert_ne!(r1, r2);
    let replay = refresh(r1).await;
    assert_eq!((replay.status, replay.code()), (401, "invalid_refresh_token"));
    let after = refresh(r2).await;
    assert_eq!(
        after.status, 401,
        "the reuse revoked the whole login, the newest token too"
    );
    // Logout ends a login.
    let third = login(&app, "support@shop.example", PASSWORD).await;
    let r3 = third.data()["refreshToken"].as_str().unwrap_or_default().to_owned();
    let out = app
        .send(
            app.anon
                .post(format!("{}/api/auth/logout", app.base))
                .json(&json!({ "refreshToken": r3 })),
        )
        .await;
    assert_eq!(out.status, 200);
    assert_eq!(refresh(r3).await.status, 401);
}

#[tokio::test]
async fn a_platform_admin_names_the_merchant_it_acts_on() {
    let app = spawn_app().await;
    let totp = user(&app, "root@jinliu.example", Role::PlatformAdmin, None)
        .await
        .unwrap_or_default();
    let token = token_of(&login_totp(&app, "root@jinliu.example", PASSWORD, Some(&code(&totp, 0))).await);
    let a = get_with(&app, "/api/orders", &token, None).await;
    assert_eq!((a.status, a.code()), (400, "merchant_required"));
    let merchant = app.state.config.merchant_id.to_string();
    let a = get_with(&app, "/api/orders", &token, Some(&merchant)).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
}

#[tokio::test]
async fn passwords_that_break_the_policy_are_refused() {
    let app = spawn_app().await;
    let m = Some(app.state.config.merchant_id.clone());
    for bad in ["short1", "onlyletterslong", "123456789012345", "Password1234"] {
        let r = jinliu_server::users::create_user(
            &app.store,
            &app.state.sealer,
            "x@shop.example",
            bad,
            Role::Viewer,
            m.clone(),
            chrono::Utc::now(),
        )
        .await;
        assert!(r.is_err(), "{bad} was accepted");
    }
    let r = jinliu_server::users::create_user(
        &app.store,
        &app.state.sealer,
        "x@shop.example",
        PASSWORD,
        Role::Viewer,
        None,
        chrono::Utc::now(),
    )
    .await;
    assert!(r.is_err(), "a merchant role needs a merchant");
}

#[tokio::test]
async fn every_merchant_route_allows_exactly_the_roles_holding_its_permission() {
    let app = spawn_app().await;
    let merchant = app.state.config.merchant_id.clone();
    let paid = app.paid("100", "HKD").await;
    let mut tokens = Vec::new();
    for role in Role::ALL {
        let email = format!("{}@shop.example", role.as_str());
        let m = role.is_merchant_role().then(|| merchant.clone());
        let totp = user(&app, &email, role, m).await;
        let a = login_totp(&app, &email, PASSWORD, totp.map(|t| code(&t, 0)).as_deref()).await;
        tokens.push((role, token_of(&a)));
    }
    let mut checked = 0;
    for (route, _) in table() {
        let Access::Need(needed) = route.access else { continue };
        let path = format!("/api{}", route.path).replace("{id}", &paid.id());
        for (role, token) in &tokens {
            let mut req = crate::request(&app.anon, &route.method, format!("{}{path}", app.base));
            req = req
                .header("authorization", format!("Bearer {token}"))
                .header("jinliu-merchant", merchant.as_str());
            let a = app.send(req).await;
            let allowed = role.permissions().contains(&needed);
            assert_eq!(
                a.status != 403,
                allowed,
                "{role:?} on {} {}: {:?}",
                route.method,
                route.path,
                a.body
            );
            assert_ne!(a.status, 401, "{role:?} is authenticated");
            checked += 1;
        }
    }
    assert!(checked >= 11 * 5);
    // The table is the only way in: a permission no role holds does not exist.
    assert!(
        Permission::ALL
            .iter()
            .all(|p| Role::PlatformAdmin.permissions().contains(p))
    );
}

#[tokio::test]
async fn a_platform_admin_needs_a_fresh_totp_code_every_time() {
    let app = spawn_app().await;
    let totp = user(&app, "ops@jinliu.example", Role::PlatformAdmin, None)
        .await
        .unwrap_or_default();
    let none = login(&app, "ops@jinliu.example", PASSWORD).await;
    assert_eq!((none.status, none.code()), (401, "mfa_required"));
    let wrong = login_totp(&app, "ops@jinliu.example", PASSWORD, Some("000000")).await;
    assert_eq!((wrong.status, wrong.code()), (401, "invalid_mfa_code"));
    let now_code = code(&totp, 0);
    let ok = login_totp(&app, "ops@jinliu.example", PASSWORD, Some(&now_code)).await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    let replay = login_totp(&app, "ops@jinliu.example", PASSWORD, Some(&now_code)).await;
    assert_eq!(
        (replay.status, replay.code()),
        (401, "invalid_mfa_code"),
        "a code works once"
    );
    // The secret is stored sealed, never as given.
    let stored = app.store.user_by_email("ops@jinliu.example").await.ok().flatten();
    let sealed = stored.and_then(|u| u.totp_secret).unwrap_or_default();
    assert!(sealed.starts_with("v1.k1.") && !sealed.contains(&totp), "{sealed}");
}

#[tokio::test]
async fn a_user_enrols_in_totp_and_a_recovery_code_works_once() {
    let app = spawn_app().await;
    user(
        &app,
        "cfo@shop.example",
        Role::Finance,
        Some(app.state.config.merchant_id.clone()),
    )
    .await;
    let token = token_of(&login(&app, "cfo@shop.example", PASSWORD).await);
    let post = |path: &str, body: Value| {
        app.send(
            app.anon
                .post(format!("{}{path}", app.base))
                .header("authorization", format!("Bearer {token}"))
                .json(&body),
        )
    };
    let stolen = post("/api/auth/mfa/setup", json!({ "password": "not the password 1" })).await;
    assert_eq!(stolen.status, 401, "a token alone cannot enrol a second factor");
    let setup = post("/api/auth/mfa/setup", json!({ "password": PASSWORD })).await;
    assert_eq!(setup.status, 200, "{:?}", setup.body);
    let secret = setup.data()["secret"].as_str().unwrap_or_default().to_owned();
    assert!(
        setup.data()["otpauthUri"]
            .as_str()
            .unwrap_or("")
            .starts_with("otpauth://totp/jinliu:")
    );
    // Until confirmed, logins do not need it.
    assert_eq!(login(&app, "cfo@shop.example", PASSWORD).await.status, 200);
    let bad = post("/api/auth/mfa/confirm", json!({ "code": "123456" })).await;
    assert_eq!((bad.status, bad.code()), (422, "invalid_mfa_code"));
    let confirmed = post("/api/auth/mfa/confirm", json!({ "code": code(&secret, 0) })).await;
    assert_eq!(confirmed.status, 200, "{:?}", confirmed.body);
    let recovery: Vec<String> = serde_json::from_value(confirmed.data()["recoveryCodes"].clone()).unwrap_or_default();
    assert_eq!(recovery.len(), 10);
    assert_eq!(login(&app, "cfo@shop.example", PASSWORD).await.code(), "mfa_required");
    let r = login_totp(&app, "cfo@shop.example", PASSWORD, Some(&recovery[3])).await;
    assert_eq!(r.status, 200, "a recovery code: {:?}", r.body);
    let again = login_totp(&app, "cfo@shop.example", PASSWORD, Some(&recovery[3])).await;
    assert_eq!(again.code(), "invalid_mfa_code", "a recovery code works once");
    let next = login_totp(&app, "cfo@shop.example", PASSWORD, Some(&code(&secret, 1))).await;
    assert_eq!(next.status, 200, "the next step's code: {:?}", next.body);
}

#[tokio::test]
async fn login_attempts_are_rate_limited_per_account() {
    let app = spawn_app().await;
    // All at once: the limit refills one attempt every 3 s, and 21 argon2 checks one after the
    // other can take longer than that on a busy machine. The limiter runs before the password
    // check, so concurrent attempts meet it within milliseconds of each other.
    let n = jinliu_server::ratelimit::PER_ACCOUNT_PER_MINUTE as usize + 1;
    let answers = futures::future::join_all((0..n).map(|_| login(&app, "ghost@shop.example", "guess 123456789"))).await;
    let limited: Vec<&Answer> = answers.iter().filter(|a| a.status == 429).collect();
    assert_eq!(answers.iter().filter(|a| a.status == 401).count(), n - 1);
    assert_eq!(limited.len(), 1, "exactly the attempt over the limit is refused");
    let a = limited[0];
    assert_eq!(a.code(), "rate_limited", "{:?}", a.body);
    assert!(
        a.body["error"]["details"]["retryAfterSeconds"]
            .as_u64()
            .is_some_and(|s| s >= 1)
    );
}

async fn send_as(app: &TestApp, method: reqwest::Method, path: &str, bearer: &str, body: Value) -> Answer {
    app.send(
        app.anon
            .request(method, format!("{}{path}", app.base))
            .bearer_auth(bearer)
            .json(&body),
    )
    .await
}

#[tokio::test]
async fn a_merchant_admin_creates_lists_and_disables_staff_and_a_disabled_user_is_locked_out_at_once() {
    let app = spawn_app().await;
    let made = app
        .post(
            "/api/users",
            json!({ "email": "Finance@Example.com", "password": PASSWORD, "role": "finance" }),
        )
        .await;
    assert_eq!(made.status, 201, "{:?}", made.body);
    assert_eq!(made.data()["email"], "finance@example.com");
    assert_eq!(made.data()["merchantId"], app.state.config.merchant_id.as_str());
    assert!(!made.text.contains("argon2"), "no password hash in answers");
    let id = made.id();
    let session = login(&app, "finance@example.com", PASSWORD).await;
    assert_eq!(session.status, 200);
    let token = token_of(&session);
    assert_eq!(get_with(&app, "/api/orders", &token, None).await.status, 200);

    let listed = app.get("/api/users").await;
    assert!(
        listed
            .data()
            .as_array()
            .is_some_and(|a| a.iter().any(|u| u["id"] == id.as_str()))
    );

    let off = send_as(
        &app,
        reqwest::Method::PATCH,
        &format!("/api/users/{id}"),
        &app.secret_key,
        json!({ "status": "disabled" }),
    )
    .await;
    assert_eq!(
        (off.status, &off.data()["status"]),
        (200, &json!("disabled")),
        "{:?}",
        off.body
    );
    assert_eq!(
        get_with(&app, "/api/orders", &token, None).await.status,
        401,
        "the live token dies at once"
    );
    assert_eq!(login(&app, "finance@example.com", PASSWORD).await.status, 401);
    let audited = app.get(&format!("/api/audit?targetId={id}")).await.data()["items"].to_string();
    assert!(
        audited.contains("user.update") && audited.contains("user.create"),
        "{audited}"
    );
}

#[tokio::test]
async fn nobody_can_hand_out_more_than_they_hold_or_name_another_merchant() {
    let app = spawn_app().await;
    for (body, status) in [
        (
            json!({ "email": "a@example.com", "password": PASSWORD, "role": "platform_admin" }),
            403,
        ),
        (
            json!({ "email": "a@example.com", "password": PASSWORD, "role": "viewer", "merchantId": "mer_0000000000000000000000000000000b" }),
            400,
        ),
        (
            json!({ "email": "a@example.com", "password": PASSWORD, "role": "viewer", "status": "active" }),
            400,
        ),
        (
            json!({ "email": "a@example.com", "password": PASSWORD, "role": "wizard" }),
            422,
        ),
        (
            json!({ "email": "a@example.com", "password": "short1", "role": "viewer" }),
            422,
        ),
        (
            json!({ "email": "not-an-email", "password": PASSWORD, "role": "viewer" }),
            422,
        ),
    ] {
        let a = app.post("/api/users", body.clone()).await;
        assert_eq!(a.status, status, "{body}: {:?}", a.body);
    }
    assert_eq!(app.get("/api/users").await.data(), &json!([]), "nothing was created");
    let first = app
        .post(
            "/api/users",
            json!({ "email": "v@example.com", "password": PASSWORD, "role": "viewer" }),
        )
        .await;
    assert_eq!(first.status, 201);
    let again = app
        .post(
            "/api/users",
            json!({ "email": "V@example.com", "password": PASSWORD, "role": "viewer" }),
        )
        .await;
    assert_eq!((again.status, again.code()), (409, "email_taken"));

    // A key that may only manage users holds none of a viewer's permissions: it grants nothing.
    let restricted = app.post("/api/keys", json!({ "permissions": ["users:manage"] })).await;
    let key = restricted.data()["secret"].as_str().unwrap_or_default().to_owned();
    let a = send_as(
        &app,
        reqwest::Method::POST,
        "/api/users",
        &key,
        json!({ "email": "b@example.com", "password": PASSWORD, "role": "viewer" }),
    )
    .await;
    assert_eq!((a.status, a.code()), (403, "permission_denied"));
    let a = send_as(
        &app,
        reqwest::Method::PATCH,
        &format!("/api/users/{}", first.id()),
        &key,
        json!({ "role": "merchant_admin" }),
    )
    .await;
    assert_eq!((a.status, a.code()), (403, "permission_denied"), "nor promote anyone");

    // Another merchant's admin sees this merchant's user as missing.
    let other = MerchantId::generate();
    app.store
        .create_merchant(&jinliu_domain::Merchant::new(
            other.clone(),
            "Other",
            jinliu_domain::Currency::Twd,
            "Asia/Taipei",
            chrono::Utc::now(),
        ))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    user(&app, "admin@other.example", Role::MerchantAdmin, Some(other)).await;
    let theirs = token_of(&login(&app, "admin@other.example", PASSWORD).await);
    let a = send_as(
        &app,
        reqwest::Method::PATCH,
        &format!("/api/users/{}", first.id()),
        &theirs,
        json!({ "status": "disabled" }),
    )
    .await;
    assert_eq!(a.status, 404);
    let listed = get_with(&app, "/api/users", &theirs, None).await;
    assert!(!listed.text.contains("v@example.com"));
}

#[tokio::test]
async fn a_user_cannot_change_their_own_role_or_status() {
    let app = spawn_app().await;
    user(
        &app,
        "boss@example.com",
        Role::MerchantAdmin,
        Some(app.state.config.merchant_id.clone()),
    )
    .await;
    let token = token_of(&login(&app, "boss@example.com", PASSWORD).await);
    let me = get_with(&app, "/api/auth/profile", &token, None).await.id();
    let a = send_as(
        &app,
        reqwest::Method::PATCH,
        &format!("/api/users/{me}"),
        &token,
        json!({ "status": "disabled" }),
    )
    .await;
    assert_eq!((a.status, a.code()), (403, "permission_denied"));
    let a = send_as(
        &app,
        reqwest::Method::PATCH,
        &format!("/api/users/{me}"),
        &token,
        json!({ "role": "viewer" }),
    )
    .await;
    assert_eq!(a.status, 403);
}

#[tokio::test]
async fn a_dashboard_login_gets_short_tokens_and_an_idle_timeout_while_an_api_login_keeps_the_long_ones() {
    let app = spawn_app().await;
    user(
        &app,
        "desk@example.com",
        Role::Support,
        Some(app.state.config.merchant_id.clone()),
    )
    .await;
    let login_as = |session: Option<&'static str>| {
        app.send(
            app.anon
                .post(format!("{}/api/auth/login", app.base))
                .json(&json!({ "email": "desk@example.com", "password": PASSWORD, "session": session })),
        )
    };
    let refresh_life = |a: &Answer| {
        let token = a.data()["refreshToken"].as_str().unwrap_or_default().to_owned();
        let app = &app;
        async move {
            let stored = app
                .store
                .refresh_token(&app.state.auth.hash(&token))
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .unwrap_or_else(|| panic!("no refresh token"));
            (stored.expires_at - chrono::Utc::now()).num_minutes()
        }
    };
    let dash = login_as(Some("dashboard")).await;
    assert_eq!(dash.status, 200, "{:?}", dash.body);
    assert_eq!(dash.data()["expiresIn"], 900);
    assert!(
        (14..=15).contains(&refresh_life(&dash).await),
        "15 minutes without a refresh ends it"
    );
    let next = app
        .send(
            app.anon
                .post(format!("{}/api/auth/refresh", app.base))
                .json(&json!({ "refreshToken": dash.data()["refreshToken"] })),
        )
        .await;
    assert_eq!(
        next.data()["expiresIn"],
        900,
        "a refresh keeps the login a dashboard login"
    );
    assert!((14..=15).contains(&refresh_life(&next).await));

    let api = login_as(None).await;
    assert_eq!(api.data()["expiresIn"], 86_400);
    assert!(refresh_life(&api).await > 29 * 24 * 60);
    let bad = login_as(Some("forever")).await;
    assert_eq!((bad.status, bad.code()), (422, "validation_failed"));
}

#[tokio::test]
async fn a_dashboard_login_ends_twelve_hours_after_the_password_however_busy() {
    let clock = std::sync::Arc::new(jinliu_server::state::ManualClock::new(chrono::Utc::now()));
    let app = crate::spawn_app_on(jinliu_testkit::Engine::Sqlite, &[], Some(clock.clone())).await;
    user(
        &app,
        "busy@example.com",
        Role::Support,
        Some(app.state.config.merchant_id.clone()),
    )
    .await;
    let login = app
        .send(
            app.anon
                .post(format!("{}/api/auth/login", app.base))
                .json(&json!({ "email": "busy@example.com", "password": PASSWORD, "session": "dashboard" })),
        )
        .await;
    assert_eq!(login.status, 200, "{:?}", login.body);
    let mut token = login.data()["refreshToken"].clone();
    let refresh = |token: Value| {
        app.send(
            app.anon
                .post(format!("{}/api/auth/refresh", app.base))
                .json(&json!({ "refreshToken": token })),
        )
    };
    // Refreshed every 14 minutes, the login never idles out; it still ends at 12 hours.
    let mut refreshes = 0;
    loop {
        clock.advance(chrono::Duration::minutes(14));
        let next = refresh(token.clone()).await;
        if next.status != 200 {
            assert_eq!((next.status, next.code()), (401, "invalid_refresh_token"));
            break;
        }
        assert!(next.data()["expiresIn"].as_i64().unwrap_or(0) <= 900);
        token = next.data()["refreshToken"].clone();
        refreshes += 1;
        assert!(refreshes <= 52, "the login outlived 12 hours");
    }
    assert_eq!(refreshes, 51, "12 h / 14 min: the 52nd refresh falls after the cap");
}

#[tokio::test]
async fn jinliu_mode_switches_a_users_session_but_never_a_keys() {
    let app = spawn_app().await;
    app.order("5", "TWD").await;
    user(
        &app,
        "ops@example.com",
        Role::Viewer,
        Some(app.state.config.merchant_id.clone()),
    )
    .await;
    let token = token_of(&login(&app, "ops@example.com", PASSWORD).await);
    let orders = |bearer: String, mode: Option<&'static str>| {
        let mut req = app.anon.get(format!("{}/api/orders", app.base)).bearer_auth(bearer);
        if let Some(m) = mode {
            req = req.header("jinliu-mode", m);
        }
        app.send(req)
    };
    assert_eq!(
        orders(token.clone(), None).await.data()["total"],
        1,
        "test mode by default"
    );
    assert_eq!(
        orders(token.clone(), Some("live")).await.data()["total"],
        0,
        "live mode sees no test orders"
    );
    let bad = orders(token, Some("prod")).await;
    assert_eq!((bad.status, bad.code()), (400, "invalid_mode"));
    let key = orders(app.secret_key.clone(), Some("live")).await;
    assert_eq!(
        (key.status, key.code()),
        (400, "mode_mismatch"),
        "a test key stays a test key"
    );
    assert_eq!(orders(app.secret_key.clone(), Some("test")).await.status, 200);
}
