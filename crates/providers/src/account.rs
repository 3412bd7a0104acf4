//! Provider accounts and the registry of their adapters.
//!
//! A provider account is merchant × provider × mode with its credentials, the provider's base URL
//! (the in-process sandbox, a shared sandbox, ECPay's stage or the production host) and its own
//! notify URL `/api/payments/notify/{provider}/{accountId}` — TPay's result carries no merchant
//! id, so the URL is what says whose notification it is.

use std::collections::HashMap;
use std::sync::Arc;

use crate::{CallPolicy, PaymentProvider};

/// A provider account's configuration.
#[derive(Clone)]
pub struct ProviderAccount {
    /// The account id (`[a-z0-9_-]`, ≤ 64), in notify URLs and on every payment made with it.
    pub id: String,
    /// The provider id (`kpay`, `tpay`, `octopus`, `ecpay`).
    pub provider: String,
    /// Live (real money) or test mode.
    pub livemode: bool,
    /// The provider's base URL, without a trailing slash.
    pub base_url: String,
    /// jinliu's notify URL for this account.
    pub notify_url: String,
    /// Provider-specific credentials (see each provider's `CREDENTIAL_KEYS`).
    pub credentials: HashMap<String, String>,
    /// Timeouts, retries and circuit breaker for calls to the provider.
    pub policy: CallPolicy,
}

impl ProviderAccount {
    /// A credential by key, or an error naming the account and the key.
    pub fn credential(&self, key: &str) -> Result<&str, AccountError> {
        self.credentials
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| AccountError::MissingCredential {
                account: self.id.clone(),
                key: key.to_owned(),
            })
    }
}

impl std::fmt::Debug for ProviderAccount {
    // Credentials never reach a log: only their keys are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut keys: Vec<&String> = self.credentials.keys().collect();
        keys.sort();
        f.debug_struct("ProviderAccount")
            .field("id", &self.id)
            .field("provider", &self.provider)
            .field("livemode", &self.livemode)
            .field("base_url", &self.base_url)
            .field("notify_url", &self.notify_url)
            .field("credentials", &keys)
            .field("policy", &self.policy)
            .finish()
    }
}

/// A provider account is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    /// No adapter for this provider id.
    #[error("unknown provider {0:?}")]
    UnknownProvider(String),
    /// A credential the provider needs is missing or empty.
    #[error("provider account {account}: missing credential {key:?}")]
    MissingCredential {
        /// The account.
        account: String,
        /// The credential key.
        key: String,
    },
    /// A credential or setting has the wrong form.
    #[error("provider account {account}: {message}")]
    Invalid {
        /// The account.
        account: String,
        /// What is wrong.
        message: String,
    },
}

/// The adapters by account, plus the default account per provider and mode.
#[derive(Clone, Default)]
pub struct Registry {
    accounts: HashMap<String, Arc<dyn PaymentProvider>>,
    defaults: HashMap<(String, bool), String>,
}

impl Registry {
    /// Adds an account's adapter. The first account of a provider and mode is its default.
    pub fn register(&mut self, adapter: Arc<dyn PaymentProvider>) {
        let account = adapter.account();
        self.defaults
            .entry((account.provider.clone(), account.livemode))
            .or_insert_with(|| account.id.clone());
        self.accounts.insert(account.id.clone(), adapter);
    }

    /// The adapter of an account.
    pub fn account(&self, id: &str) -> Option<Arc<dyn PaymentProvider>> {
        self.accounts.get(id).cloned()
    }

    /// The default account's adapter for a provider in a mode.
    pub fn default_for(&self, provider: &str, livemode: bool) -> Option<Arc<dyn PaymentProvider>> {
        self.defaults
            .get(&(provider.to_owned(), livemode))
            .and_then(|id| self.account(id))
    }

    /// Every account id, sorted.
    pub fn account_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.accounts.keys().cloned().collect();
        ids.sort();
        ids
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("accounts", &self.account_ids())
            .finish()
    }
}
