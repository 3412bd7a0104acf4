//! A merchant's own provider account: its contract with one provider (客樂得, 台灣里, Octopus,
//! ECPay) in one mode, with the credentials that contract came with.
//!
//! The platform's accounts come from the server's configuration and serve every merchant; a
//! merchant that holds its own contract adds an account here, and its payments then use it. The
//! credentials appear here only sealed (AES-256-GCM, bound to this merchant and row), so nothing
//! in this module can leak one; which keys are set is kept in the clear for the dashboard.

use crate::{MerchantId, ProviderAccountId, Timestamp};

/// Most accounts one merchant may have in one mode.
pub const MAX_ACCOUNTS: usize = 20;

/// Whether new payments may use the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountStatus {
    /// In use.
    Active,
    /// No new payments; the payments already made with it can still be queried, refunded and
    /// notified about, so disabling never strands money.
    Disabled,
}

impl AccountStatus {
    /// The stored and API word.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Active => "active",
            AccountStatus::Disabled => "disabled",
        }
    }

    /// Parses the stored word.
    pub fn parse(s: &str) -> Option<AccountStatus> {
        match s {
            "active" => Some(AccountStatus::Active),
            "disabled" => Some(AccountStatus::Disabled),
            _ => None,
        }
    }
}

/// One merchant provider account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerchantProviderAccount {
    /// `pa_…`, also the last segment of its notify URL.
    pub id: ProviderAccountId,
    /// The owner.
    pub merchant_id: MerchantId,
    /// Live (real money) or test.
    pub livemode: bool,
    /// `kpay`, `tpay`, `octopus` or `ecpay`.
    pub provider: String,
    /// The provider's base URL; `None` means the server's sandbox (test mode only).
    pub base_url: Option<String>,
    /// The credentials as a JSON object, sealed by the server.
    pub credentials_sealed: String,
    /// The names of the credentials that are set, sorted (never their values).
    pub credential_keys: Vec<String>,
    /// Whether payments for this provider and mode use it when they name no account.
    pub is_default: bool,
    /// Active or disabled.
    pub status: AccountStatus,
    /// A note for the merchant's staff.
    pub description: Option<String>,
    /// Bumped by every change (adapters built from an older version are rebuilt).
    pub version: i64,
    /// When it was added.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

impl MerchantProviderAccount {
    /// The associated data that binds sealed credentials to this merchant and row: a sealed value
    /// copied into another account's row does not open.
    pub fn credentials_aad(merchant: &MerchantId, id: &ProviderAccountId) -> String {
        format!("provider_accounts.credentials:{merchant}:{id}")
    }
}
