//! Who may do what: the permissions every merchant API route requires, the roles that bundle
//! them, and the kinds of API key.
//!
//! The permission names are stable (they appear in restricted keys and docs/security.md).

use std::fmt;

/// One capability on the merchant API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    /// Read orders.
    OrdersRead,
    /// Create and cancel orders.
    OrdersWrite,
    /// Read payments and refunds.
    PaymentsRead,
    /// Create and cancel payments.
    PaymentsWrite,
    /// Refund payments.
    RefundsWrite,
    /// Request payouts.
    PayoutsRequest,
    /// Approve payouts (platform).
    PayoutsApprove,
    /// Publish announcements (platform).
    AnnouncementsWrite,
    /// Read reports.
    ReportsRead,
    /// Read the audit log.
    AuditRead,
    /// Manage users.
    UsersManage,
    /// Manage API keys.
    KeysManage,
    /// Manage webhook endpoints.
    WebhooksManage,
    /// Read and change the merchant's settings.
    SettingsManage,
}

impl Permission {
    /// Every permission, in a stable order.
    pub const ALL: [Permission; 14] = [
        Permission::OrdersRead,
        Permission::OrdersWrite,
        Permission::PaymentsRead,
        Permission::PaymentsWrite,
        Permission::RefundsWrite,
        Permission::PayoutsRequest,
        Permission::PayoutsApprove,
        Permission::AnnouncementsWrite,
        Permission::ReportsRead,
        Permission::AuditRead,
        Permission::UsersManage,
        Permission::KeysManage,
        Permission::WebhooksManage,
        Permission::SettingsManage,
    ];

    /// The wire name (`orders:read`).
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::OrdersRead => "orders:read",
            Permission::OrdersWrite => "orders:write",
            Permission::PaymentsRead => "payments:read",
            Permission::PaymentsWrite => "payments:write",
            Permission::RefundsWrite => "refunds:write",
            Permission::PayoutsRequest => "payouts:request",
            Permission::PayoutsApprove => "payouts:approve",
            Permission::AnnouncementsWrite => "announcements:write",
            Permission::ReportsRead => "reports:read",
            Permission::AuditRead => "audit:read",
            Permission::UsersManage => "users:manage",
            Permission::KeysManage => "keys:manage",
            Permission::WebhooksManage => "webhooks:manage",
            Permission::SettingsManage => "settings:manage",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Permission> {
        Permission::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// Permissions only the platform (not a merchant) holds.
    pub fn is_platform_only(self) -> bool {
        matches!(self, Permission::PayoutsApprove | Permission::AnnouncementsWrite)
    }

    /// What a merchant's unrestricted secret key may do: everything a merchant may do.
    pub fn merchant_all() -> Vec<Permission> {
        Permission::ALL.into_iter().filter(|p| !p.is_platform_only()).collect()
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of an API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiKeyKind {
    /// `jl_sk_…`: for the merchant's server; full merchant scope or a listed set of permissions.
    Secret,
    /// `jl_pk_…`: for browser code; identifies the merchant and nothing more (a payment's
    /// public view still needs that payment's client secret).
    Publishable,
}

impl ApiKeyKind {
    /// `secret` or `publishable`.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiKeyKind::Secret => "secret",
            ApiKeyKind::Publishable => "publishable",
        }
    }

    /// Parses `secret` / `publishable`.
    pub fn parse(s: &str) -> Option<ApiKeyKind> {
        match s {
            "secret" => Some(ApiKeyKind::Secret),
            "publishable" => Some(ApiKeyKind::Publishable),
            _ => None,
        }
    }

    /// The key's text prefix for a mode: `jl_sk_test_`, `jl_pk_live_`, …
    pub fn prefix(self, livemode: bool) -> &'static str {
        match (self, livemode) {
            (ApiKeyKind::Secret, false) => "jl_sk_test_",
            (ApiKeyKind::Secret, true) => "jl_sk_live_",
            (ApiKeyKind::Publishable, false) => "jl_pk_test_",
            (ApiKeyKind::Publishable, true) => "jl_pk_live_",
        }
    }

    /// Reads kind and mode from a key's text; `None` for anything that is not a jinliu key.
    pub fn of_key(key: &str) -> Option<(ApiKeyKind, bool)> {
        [
            (ApiKeyKind::Secret, false),
            (ApiKeyKind::Secret, true),
            (ApiKeyKind::Publishable, false),
            (ApiKeyKind::Publishable, true),
        ]
        .into_iter()
        .find(|(k, live)| key.starts_with(k.prefix(*live)))
    }
}

/// A new API key's text: the kind's prefix and 32 base-62 characters (about 190 random bits).
pub fn new_api_key(kind: ApiKeyKind, livemode: bool) -> String {
    use rand::Rng;
    const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rng();
    let mut s = String::with_capacity(44);
    s.push_str(kind.prefix(livemode));
    for _ in 0..32 {
        s.push(BASE62[rng.random_range(0..62)] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_names_parse_back() {
        for p in Permission::ALL {
            assert_eq!(Permission::parse(p.as_str()), Some(p));
        }
        assert_eq!(Permission::parse("orders:delete"), None);
    }

    #[test]
    fn a_new_key_says_its_kind_and_mode_and_is_unique() {
        let a = new_api_key(ApiKeyKind::Secret, false);
        assert!(a.starts_with("jl_sk_test_") && a.len() == 43, "{a}");
        assert_eq!(ApiKeyKind::of_key(&a), Some((ApiKeyKind::Secret, false)));
        assert_ne!(a, new_api_key(ApiKeyKind::Secret, false));
        let p = new_api_key(ApiKeyKind::Publishable, true);
        assert_eq!(ApiKeyKind::of_key(&p), Some((ApiKeyKind::Publishable, true)));
        assert_eq!(ApiKeyKind::of_key("sk_live_stripe"), None);
    }
}

/// A merchant's own payment rules, applied on top of the server's (for limits, the strictest
/// wins).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MerchantSettings {
    /// The provider a payment in this currency uses when it names none (`{"TWD": "ecpay"}`).
    #[serde(default)]
    pub default_providers: std::collections::BTreeMap<String, String>,
    /// The largest payment per currency, in minor units.
    #[serde(default)]
    pub max_amount_minor: std::collections::BTreeMap<String, i64>,
}

impl MerchantSettings {
    /// The merchant's cap for `currency`, if it set one.
    pub fn max_minor(&self, currency: crate::Currency) -> Option<i64> {
        self.max_amount_minor.get(currency.code()).copied()
    }
}

/// A merchant: the tenant every order, payment, key and provider account belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merchant {
    /// `mer_…`
    pub id: crate::MerchantId,
    /// Display name (the pay page shows it).
    pub name: String,
    /// `active` or `disabled`.
    pub status: String,
    /// Currency of orders that name none.
    pub default_currency: crate::Currency,
    /// IANA time zone of the merchant's business day.
    pub timezone: String,
    /// Default providers and amount limits.
    pub settings: MerchantSettings,
    /// The secret of seed 000's `X-Signature` relay notifications for this merchant, sealed
    /// (AES-256-GCM) by the server; `None` falls back to the server's `JINLIU_NOTIFY_SECRET`.
    pub notify_secret: Option<String>,
    /// Created.
    pub created_at: crate::Timestamp,
    /// Last change.
    pub updated_at: crate::Timestamp,
}

impl Merchant {
    /// A new active merchant with no settings of its own.
    pub fn new(
        id: crate::MerchantId,
        name: impl Into<String>,
        default_currency: crate::Currency,
        timezone: impl Into<String>,
        now: crate::Timestamp,
    ) -> Merchant {
        Merchant {
            id,
            name: name.into(),
            status: "active".into(),
            default_currency,
            timezone: timezone.into(),
            settings: MerchantSettings::default(),
            notify_secret: None,
            created_at: now,
            updated_at: now,
        }
    }
}

/// An API key as stored: everything but the key itself (only its keyed hash is kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// `key_…`
    pub id: crate::ApiKeyId,
    /// Whose.
    pub merchant_id: crate::MerchantId,
    /// Secret or publishable.
    pub kind: ApiKeyKind,
    /// Live or test mode.
    pub livemode: bool,
    /// The visible start of the key (`jl_sk_test_AbCd`), to recognise it in lists.
    pub prefix: String,
    /// For a restricted secret key, what it may do; `None` = everything a merchant may do.
    pub permissions: Option<Vec<Permission>>,
    /// The merchant's note.
    pub description: Option<String>,
    /// After this the key no longer works.
    pub expires_at: Option<crate::Timestamp>,
    /// When it was revoked.
    pub revoked_at: Option<crate::Timestamp>,
    /// Created.
    pub created_at: crate::Timestamp,
}

impl ApiKey {
    /// Whether the key works at `now`.
    pub fn is_usable(&self, now: crate::Timestamp) -> bool {
        self.revoked_at.is_none_or(|r| r > now) && self.expires_at.is_none_or(|e| e > now)
    }

    /// What the key may do on the merchant API.
    pub fn granted(&self) -> Vec<Permission> {
        match self.kind {
            ApiKeyKind::Publishable => Vec::new(),
            ApiKeyKind::Secret => self.permissions.clone().unwrap_or_else(Permission::merchant_all),
        }
    }
}

/// A user's role: a fixed bundle of permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Runs the platform: every permission, on any merchant (named per request).
    PlatformAdmin,
    /// Runs one merchant: every merchant permission.
    MerchantAdmin,
    /// Money: reads, refunds, payouts, reports.
    Finance,
    /// Customer service: reads orders and payments, cancels orders.
    Support,
    /// Reads only.
    Viewer,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 5] = [
        Role::PlatformAdmin,
        Role::MerchantAdmin,
        Role::Finance,
        Role::Support,
        Role::Viewer,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::PlatformAdmin => "platform_admin",
            Role::MerchantAdmin => "merchant_admin",
            Role::Finance => "finance",
            Role::Support => "support",
            Role::Viewer => "viewer",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// What the role may do.
    pub fn permissions(self) -> Vec<Permission> {
        use Permission::*;
        match self {
            Role::PlatformAdmin => Permission::ALL.to_vec(),
            Role::MerchantAdmin => Permission::merchant_all(),
            Role::Finance => vec![OrdersRead, PaymentsRead, RefundsWrite, PayoutsRequest, ReportsRead],
            Role::Support => vec![OrdersRead, OrdersWrite, PaymentsRead],
            Role::Viewer => vec![OrdersRead, PaymentsRead, ReportsRead],
        }
    }

    /// Whether users of this role belong to a merchant (all but platform admins).
    pub fn is_merchant_role(self) -> bool {
        self != Role::PlatformAdmin
    }
}

/// A staff or merchant user (the password hash never leaves the store and auth code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// `usr_…`
    pub id: crate::UserId,
    /// Login name, lower-case.
    pub email: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Role.
    pub role: Role,
    /// The merchant; `None` for platform admins.
    pub merchant_id: Option<crate::MerchantId>,
    /// `active` or `disabled`.
    pub status: String,
    /// Consecutive failed logins.
    pub failed_logins: i64,
    /// Locked until then after too many failures.
    pub locked_until: Option<crate::Timestamp>,
    /// Last successful login.
    pub last_login_at: Option<crate::Timestamp>,
    /// Created.
    pub created_at: crate::Timestamp,
    /// The TOTP secret, sealed (AES-256-GCM) by the server; set while enrolling and after.
    pub totp_secret: Option<String>,
    /// Whether logins need a TOTP code.
    pub totp_enabled: bool,
    /// The last TOTP step used, so each code works once.
    pub totp_last_step: i64,
    /// Keyed hashes of the unused recovery codes, comma-separated.
    pub recovery_codes: Option<String>,
}

/// Why a password is refused (OWASP ASVS 2.1: length, no composition games beyond letters and
/// digits, and not a known-common password).
pub fn check_password_policy(password: &str) -> Result<(), &'static str> {
    const COMMON: [&str; 12] = [
        "password1234",
        "123456789012",
        "qwerty123456",
        "passw0rd1234",
        "iloveyou1234",
        "admin1234567",
        "welcome12345",
        "abc123456789",
        "password123!",
        "1q2w3e4r5t6y",
        "qwertyuiop12",
        "letmein12345",
    ];
    if password.chars().count() < 12 {
        return Err("the password must have at least 12 characters");
    }
    if password.chars().count() > 128 {
        return Err("the password must have at most 128 characters");
    }
    if !password.chars().any(|c| c.is_alphabetic()) || !password.chars().any(|c| c.is_ascii_digit()) {
        return Err("the password must contain letters and digits");
    }
    if COMMON.contains(&password.to_lowercase().as_str()) {
        return Err("the password is too common");
    }
    Ok(())
}
