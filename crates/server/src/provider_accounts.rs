//! Merchant provider accounts: the rules for what a merchant may add (credentials a provider
//! knows, a base URL that is not a sandbox in live mode and not the private network), the sealing
//! of their credentials, and [`Adapters`], which finds the adapter a payment uses.
//!
//! Two kinds of account exist. The platform's come from `[[provider_accounts]]` in the server's
//! configuration (and the sandbox's `<provider>_test` accounts) and serve every merchant. A
//! merchant's own live in the database with sealed credentials; when a merchant has an active
//! default account for a provider and mode, its payments use it instead of the platform's.
//! Adapters of merchant accounts are built lazily, the first time a merchant's payment needs one,
//! and cached per merchant for [`CACHE_TTL`](crate::auth::CACHE_TTL): a change made on this node
//! takes effect at once, one made on another node within that time. An adapter is rebuilt only
//! when its account's version changes, so its circuit breaker and token cache survive a refresh.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::http::StatusCode;
use jinliu_domain::provider_account::MAX_ACCOUNTS;
use jinliu_domain::{AccountStatus, MerchantId, MerchantProviderAccount, Payment, ProviderAccountId};
use jinliu_providers::{PaymentProvider, ProviderAccount, Registry};
use jinliu_store::{AccountPatch, NewAccount, Scope, StoreError};
use serde_json::json;

use crate::http::error::ApiError;
use crate::http::validate;
use crate::state::AppState;
use crate::webhooks::guard::{GuardedResolver, Policy};

/// Longest credential value accepted.
const MAX_CREDENTIAL_CHARS: usize = 1024;

/// The adapters of every account: the platform's, built at start, and merchants', built on use.
pub struct Adapters {
    platform: Registry,
    merchants: Mutex<HashMap<MerchantId, Arc<MerchantSet>>>,
}

impl std::fmt::Debug for Adapters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Adapters").field("platform", &self.platform).finish()
    }
}

/// One merchant's accounts as loaded at `loaded`.
struct MerchantSet {
    loaded: Instant,
    entries: Vec<Entry>,
}

struct Entry {
    id: String,
    version: i64,
    provider: String,
    livemode: bool,
    usable_as_default: bool,
    /// `None` when the account's credentials no longer open or no longer build an adapter
    /// (logged once per load); its payments then wait for the account to be fixed.
    adapter: Option<Arc<dyn PaymentProvider>>,
}

impl Adapters {
    /// The adapters with the platform's accounts.
    pub fn new(platform: Registry) -> Adapters {
        Adapters {
            platform,
            merchants: Mutex::new(HashMap::new()),
        }
    }

    /// The platform's accounts.
    pub fn platform(&self) -> &Registry {
        &self.platform
    }

    /// Drops a merchant's cached adapters (after a change to its accounts on this node).
    pub fn forget(&self, merchant: &MerchantId) {
        self.merchants
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(merchant);
    }

    fn cached(&self, merchant: &MerchantId) -> Option<Arc<MerchantSet>> {
        self.merchants
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(merchant)
            .cloned()
    }
}

/// A merchant's account set, from the cache when it is fresh.
async fn merchant_set(app: &AppState, merchant: &MerchantId) -> Result<Arc<MerchantSet>, StoreError> {
    let previous = app.providers.cached(merchant);
    if let Some(set) = &previous
        && set.loaded.elapsed() < crate::auth::CACHE_TTL
    {
        return Ok(set.clone());
    }
    let rows = app.store.merchant_provider_accounts(merchant).await?;
    crate::keyring::ensure_known(app, rows.iter().map(|a| a.credentials_sealed.as_str())).await;
    let entries = rows
        .into_iter()
        .map(|a| {
            let reuse = previous.as_ref().and_then(|set| {
                set.entries
                    .iter()
                    .find(|e| e.id == a.id.as_str() && e.version == a.version)
                    .and_then(|e| e.adapter.clone())
            });
            let adapter = reuse.or_else(|| match build_adapter(app, &a) {
                Ok(adapter) => Some(adapter),
                Err(why) => {
                    tracing::error!(account = %a.id, merchant = %a.merchant_id, %why, "provider account unusable");
                    None
                }
            });
            Entry {
                id: a.id.to_string(),
                version: a.version,
                provider: a.provider,
                livemode: a.livemode,
                usable_as_default: a.is_default && a.status == AccountStatus::Active,
                adapter,
            }
        })
        .collect();
    let set = Arc::new(MerchantSet {
        loaded: Instant::now(),
        entries,
    });
    app.providers
        .merchants
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(merchant.clone(), set.clone());
    Ok(set)
}

/// The adapter a new payment of `merchant` for `provider` in a mode uses: the merchant's active
/// default account, else the platform's default account.
pub async fn default_adapter(
    app: &AppState,
    merchant: &MerchantId,
    provider: &str,
    livemode: bool,
) -> Result<Option<Arc<dyn PaymentProvider>>, StoreError> {
    let set = merchant_set(app, merchant).await?;
    let own = set
        .entries
        .iter()
        .find(|e| e.usable_as_default && e.provider == provider && e.livemode == livemode);
    Ok(match own {
        Some(e) => e.adapter.clone(),
        None => app.providers.platform.default_for(provider, livemode),
    })
}

/// The adapter of the account a payment was made with.
pub async fn adapter_of(app: &AppState, payment: &Payment) -> Option<Arc<dyn PaymentProvider>> {
    if let Some(a) = app.providers.platform.account(&payment.provider_account) {
        return Some(a);
    }
    match merchant_set(app, &payment.merchant_id).await {
        Ok(set) => set
            .entries
            .iter()
            .find(|e| e.id == payment.provider_account)
            .and_then(|e| e.adapter.clone()),
        Err(e) => {
            tracing::warn!(error = %e, payment = %payment.id, "provider accounts could not be read");
            None
        }
    }
}

/// The adapter of an account named by id (a notification URL names only the account).
pub async fn adapter_by_id(app: &AppState, id: &str) -> Result<Option<Arc<dyn PaymentProvider>>, StoreError> {
    if let Some(a) = app.providers.platform.account(id) {
        return Ok(Some(a));
    }
    let Some(id) = ProviderAccountId::parse(id) else {
        return Ok(None);
    };
    let Some(account) = app.store.provider_account_unscoped(&id).await? else {
        return Ok(None);
    };
    let set = merchant_set(app, &account.merchant_id).await?;
    Ok(set
        .entries
        .iter()
        .find(|e| e.id == id.as_str())
        .and_then(|e| e.adapter.clone()))
}

/// Opens a stored account's credentials and builds its adapter.
fn build_adapter(app: &AppState, a: &MerchantProviderAccount) -> Result<Arc<dyn PaymentProvider>, String> {
    let credentials = open_credentials(app, a)?;
    adapter_for(app, a, credentials).map_err(|e| e.to_string())
}

fn open_credentials(app: &AppState, a: &MerchantProviderAccount) -> Result<HashMap<String, String>, String> {
    let aad = MerchantProviderAccount::credentials_aad(&a.merchant_id, &a.id);
    let plain = app
        .sealer
        .open(&a.credentials_sealed, &aad)
        .ok_or("its credentials do not open under the current master key")?;
    serde_json::from_slice(&plain).map_err(|_| "its credentials are not a JSON object of strings".to_owned())
}

/// The adapter of `a` with `credentials`; a base URL the merchant chose is resolved through the
/// live address guard in either mode: a merchant's test key must not reach this machine's or
/// its network's services either (the server's own sandbox is the default, not a chosen URL).
fn adapter_for(
    app: &AppState,
    a: &MerchantProviderAccount,
    credentials: HashMap<String, String>,
) -> Result<Arc<dyn PaymentProvider>, jinliu_providers::account::AccountError> {
    let (base_url, resolver) = match &a.base_url {
        Some(url) => {
            let r: Arc<dyn reqwest::dns::Resolve> = Arc::new(GuardedResolver::new(Policy::LIVE));
            (url.clone(), Some(r))
        }
        None => (
            app.config
                .sandbox_base()
                .map(|b| format!("{b}/sandbox/{}", a.provider))
                .unwrap_or_default(),
            None,
        ),
    };
    let account: ProviderAccount =
        app.config
            .account(a.id.to_string(), a.provider.clone(), a.livemode, base_url, credentials);
    jinliu_providers::adapter_with(account, resolver)
}

/// What a merchant sends to add an account.
#[derive(Debug, Clone, Default)]
pub struct AccountInput {
    /// Provider id.
    pub provider: String,
    /// Credential name → value.
    pub credentials: BTreeMap<String, String>,
    /// The provider's base URL; none for the sandbox (test) or the provider's production host.
    pub base_url: Option<String>,
    /// Take over as the default for its provider and mode (`None`: only if it has none).
    pub is_default: Option<bool>,
    /// A note.
    pub description: Option<String>,
}

/// Changes as sent (`None` = not sent; `Some(None)` = sent as null).
#[derive(Debug, Clone, Default)]
pub struct AccountChange {
    /// A new full set of credentials.
    pub credentials: Option<BTreeMap<String, String>>,
    /// A new base URL, or null for the default.
    pub base_url: Option<Option<String>>,
    /// Become (or stop being) the default.
    pub is_default: Option<bool>,
    /// Disable (true) or enable (false).
    pub disabled: Option<bool>,
    /// A new note, or null to clear it.
    pub description: Option<Option<String>>,
}

/// The production host of providers whose public documentation names one.
fn production_url(provider: &str) -> Option<&'static str> {
    (provider == "ecpay").then_some(jinliu_providers::ecpay::PRODUCTION_URL)
}

/// Checks a base URL for a mode: absolute, https in live mode, no user name, query or fragment,
/// an IP literal only if it is a public address (in both modes), and — in live mode — neither
/// this server, its sandbox nor a provider's known test host.
pub fn check_base_url(app: &AppState, text: &str, livemode: bool) -> Result<String, ApiError> {
    check_base_url_in(&app.config, text, livemode)
}

fn check_base_url_in(config: &crate::config::Config, text: &str, livemode: bool) -> Result<String, ApiError> {
    // First, because it is the most important thing to tell, whatever else is wrong with it.
    if livemode && is_sandbox(config, text.trim_end_matches('/')) {
        return Err(ApiError::unprocessable(
            "sandbox_in_live_mode",
            "a live provider account cannot point at a sandbox or test host: live payments move real money",
        ));
    }
    let url = validate::outbound_url(
        "baseUrl",
        text,
        livemode,
        Policy::LIVE,
        "live provider accounts must use https",
    )?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(validate::failed("baseUrl", "must not carry a query or fragment"));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// Whether `url` is on this server's origin (and so its sandbox), the shared sandbox's origin, or
/// a provider's known test host: never a place for live money. Origins are compared parsed
/// (scheme, host without a trailing dot, port with defaults filled in), so case, a trailing dot
/// or an explicit `:443` cannot slip past.
pub fn is_sandbox(config: &crate::config::Config, url: &str) -> bool {
    fn origin(text: &str) -> Option<(String, String, u16)> {
        let u = url::Url::parse(text).ok()?;
        let host = u.host_str()?.trim_end_matches('.').to_ascii_lowercase();
        Some((u.scheme().to_owned(), host, u.port_or_known_default()?))
    }
    let Some(target) = origin(url) else { return false };
    jinliu_providers::TEST_HOSTS.contains(&target.1.as_str())
        || [Some(config.public_url.clone()), config.sandbox_url.clone()]
            .iter()
            .flatten()
            .filter_map(|base| origin(base))
            .any(|own| own == target)
}

/// Checks credential names against the provider's and values for shape (never echoing a value).
fn check_credentials(provider: &str, credentials: &BTreeMap<String, String>) -> Result<(), ApiError> {
    let allowed = jinliu_providers::credential_keys(provider);
    for (key, value) in credentials {
        if !allowed.contains(&key.as_str()) {
            return Err(ApiError::unprocessable(
                "unknown_credential",
                format!("{provider} accounts have no credential {key:?}"),
            )
            .with_details(json!({ "credentials": allowed })));
        }
        if value.is_empty() || value.chars().count() > MAX_CREDENTIAL_CHARS || value.chars().any(char::is_control) {
            return Err(validate::failed(
                &format!("credentials.{key}"),
                &format!("must be 1–{MAX_CREDENTIAL_CHARS} printable characters"),
            ));
        }
    }
    Ok(())
}

/// Builds the adapter once to prove the account usable, then seals the credentials.
fn prove_and_seal(
    app: &AppState,
    draft: &MerchantProviderAccount,
    credentials: &BTreeMap<String, String>,
) -> Result<(String, Vec<String>), ApiError> {
    let map: HashMap<String, String> = credentials.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    adapter_for(app, draft, map).map_err(|e| {
        use jinliu_providers::account::AccountError;
        // Not `e` itself: it names the account, which a refused creation never made.
        let message = match e {
            AccountError::MissingCredential { key, .. } => format!("missing credential {key:?}"),
            AccountError::Invalid { message, .. } => message,
            AccountError::UnknownProvider(p) => format!("unknown provider {p:?}"),
        };
        ApiError::unprocessable("invalid_provider_credentials", message)
            .with_details(json!({ "credentials": jinliu_providers::credential_keys(&draft.provider) }))
    })?;
    // A map of strings always serialises.
    let plain = serde_json::to_vec(credentials).unwrap_or_default();
    let sealed = app.sealer.seal(
        &plain,
        &MerchantProviderAccount::credentials_aad(&draft.merchant_id, &draft.id),
    );
    Ok((sealed, credentials.keys().cloned().collect()))
}

/// Live accounts need a master key an operator holds, not one generated into the data directory.
fn require_master_key(app: &AppState, livemode: bool) -> Result<(), ApiError> {
    if livemode && app.config.master_key.is_none() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "master_key_required",
            "live provider accounts need JINLIU_MASTER_KEY set on the server",
        ));
    }
    Ok(())
}

/// The base URL an account stores: the one sent (checked), or none for the sandbox (test) or
/// the provider's production host (live).
fn stored_base_url(
    app: &AppState,
    provider: &str,
    sent: Option<String>,
    livemode: bool,
) -> Result<Option<String>, ApiError> {
    match sent {
        Some(text) => check_base_url(app, &text, livemode).map(Some),
        None if livemode => production_url(provider).map(|u| Some(u.to_owned())).ok_or_else(|| {
            ApiError::unprocessable(
                "base_url_required",
                format!("a live {provider} account needs the baseUrl its contract names"),
            )
        }),
        None if app.config.sandbox_base().is_some() => Ok(None),
        None => Err(ApiError::unprocessable(
            "base_url_required",
            "this server runs no sandbox: a test account needs a baseUrl",
        )),
    }
}

/// Adds an account for the caller's merchant in the caller's mode.
pub async fn create(
    app: &AppState,
    scope: &Scope,
    input: AccountInput,
    idem: Option<jinliu_store::IdemRequest<MerchantProviderAccount>>,
) -> Result<MerchantProviderAccount, ApiError> {
    if !jinliu_providers::PROVIDER_IDS.contains(&input.provider.as_str()) {
        return Err(
            ApiError::unprocessable("unknown_provider", format!("unknown provider {:?}", input.provider))
                .with_details(json!({ "providers": jinliu_providers::PROVIDER_IDS })),
        );
    }
    require_master_key(app, scope.livemode)?;
    check_credentials(&input.provider, &input.credentials)?;
    let description = validate::opt_text("description", input.description, 500)?;
    let base_url = stored_base_url(app, &input.provider, input.base_url, scope.livemode)?;
    let input_default = input.is_default;
    let now = app.clock.now();
    let draft = MerchantProviderAccount {
        id: ProviderAccountId::generate(),
        merchant_id: scope.merchant_id.clone(),
        livemode: scope.livemode,
        provider: input.provider,
        base_url,
        credentials_sealed: String::new(),
        credential_keys: Vec::new(),
        is_default: input.is_default.unwrap_or(false),
        status: AccountStatus::Active,
        description,
        version: 0,
        created_at: now,
        updated_at: now,
    };
    let (sealed, keys) = prove_and_seal(app, &draft, &input.credentials)?;
    let new = NewAccount {
        id: draft.id.clone(),
        provider: draft.provider.clone(),
        base_url: draft.base_url.clone(),
        credentials_sealed: sealed,
        credential_keys: keys,
        is_default: input_default,
        description: draft.description.clone(),
    };
    let account = app
        .store
        .create_provider_account(scope, new, now, idem)
        .await
        .map_err(|e| match e {
            StoreError::LimitReached(_) => ApiError::unprocessable(
                "too_many_provider_accounts",
                format!("a merchant may have at most {MAX_ACCOUNTS} provider accounts in each mode"),
            ),
            other => other.into(),
        })?;
    app.providers.forget(&scope.merchant_id);
    Ok(account)
}

/// Changes an account; new credentials or a new base URL are proven usable before they are kept.
pub async fn update(
    app: &AppState,
    scope: &Scope,
    id: &ProviderAccountId,
    change: AccountChange,
) -> Result<MerchantProviderAccount, ApiError> {
    let current = app
        .store
        .provider_account(scope, id)
        .await?
        .ok_or_else(|| ApiError::not_found("provider_account"))?;
    let mut patch = AccountPatch {
        is_default: change.is_default,
        status: change.disabled.map(|d| {
            if d {
                AccountStatus::Disabled
            } else {
                AccountStatus::Active
            }
        }),
        ..AccountPatch::default()
    };
    if let Some(d) = change.description {
        patch.description = Some(validate::opt_text("description", d, 500)?);
    }
    if change.credentials.is_some() || change.base_url.is_some() {
        require_master_key(app, current.livemode)?;
        let mut draft = current.clone();
        if let Some(sent) = change.base_url {
            draft.base_url = stored_base_url(app, &current.provider, sent, current.livemode)?;
            patch.base_url = Some(draft.base_url.clone());
        }
        let credentials: BTreeMap<String, String> = match change.credentials {
            Some(c) => {
                check_credentials(&current.provider, &c)?;
                c
            }
            None => open_credentials(app, &current)
                .map_err(|why| {
                    ApiError::unprocessable(
                        "credentials_required",
                        format!("send the account's credentials again: {why}"),
                    )
                })?
                .into_iter()
                .collect(),
        };
        patch.credentials = Some(prove_and_seal(app, &draft, &credentials)?);
    }
    let account = app
        .store
        .update_provider_account(scope, id, patch, app.clock.now())
        .await?;
    app.providers.forget(&scope.merchant_id);
    Ok(account)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> crate::config::Config {
        crate::config::Config::load_from(&crate::config::Overrides::default(), |_| None)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_live_base_url_may_not_be_a_sandbox_a_test_host_or_plain_http() {
        let c = config();
        let sandbox = format!("{}/sandbox/kpay", c.sandbox_base().unwrap_or_default());
        let shouted = format!(
            "{}/sandbox/ecpay",
            c.public_url.to_uppercase().replacen("HTTP", "http", 1)
        );
        for (url, code) in [
            (sandbox.as_str(), "sandbox_in_live_mode"),
            (shouted.as_str(), "sandbox_in_live_mode"),
            ("https://payment-stage.ecpay.com.tw", "sandbox_in_live_mode"),
            ("https://PAYMENT-STAGE.ecpay.com.tw.:443/x", "sandbox_in_live_mode"),
            ("https://test.4128888card.com.tw/app", "sandbox_in_live_mode"),
            ("http://payment.ecpay.com.tw", "insecure_url"),
            ("https://10.0.0.7/api", "url_not_allowed"),
            ("https://user:pw@payment.ecpay.com.tw", "validation_failed"),
        ] {
            let err = check_base_url_in(&c, url, true).err().map(|e| e.code);
            assert_eq!(err, Some(code), "{url}");
        }
        assert_eq!(
            check_base_url_in(&c, "https://payment.ecpay.com.tw/", true)
                .ok()
                .as_deref(),
            Some("https://payment.ecpay.com.tw")
        );
    }

    #[test]
    fn a_test_base_url_may_be_a_stage_host_but_never_this_machine_or_its_network() {
        let c = config();
        assert!(check_base_url_in(&c, "https://payment-stage.ecpay.com.tw", false).is_ok());
        for url in [
            "http://127.0.0.1:22/",
            "http://2130706433/",
            "http://10.0.0.1/",
            "http://[::1]/",
        ] {
            let err = check_base_url_in(&c, url, false).err().map(|e| e.code);
            assert_eq!(err, Some("url_not_allowed"), "{url}");
        }
    }

    #[test]
    fn credentials_are_checked_by_name_without_echoing_values() {
        let mut c = BTreeMap::new();
        c.insert("password".to_owned(), "s3cret-value".to_owned());
        let err = check_credentials("kpay", &c)
            .err()
            .map(|e| e.message)
            .unwrap_or_default();
        assert!(err.contains("password") && !err.contains("s3cret-value"), "{err}");
    }
}
