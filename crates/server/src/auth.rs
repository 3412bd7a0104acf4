//! Authentication: who a request speaks for.
//!
//! Today a caller is an API key (`Authorization: Bearer jl_sk_test_…`). Keys are never stored:
//! the store keeps `HMAC-SHA256(pepper, key)` — the pepper derived from the master key, which is
//! not in the database — so a stolen database yields no usable key and no offline guessing.
//! A verified key is cached for [`CACHE_TTL`] so the hot path does not read the database on
//! every request; revoking a key therefore takes effect within that time on every node.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use jinliu_domain::access::new_api_key;
use jinliu_domain::{ApiKey, ApiKeyId, ApiKeyKind, MerchantId, Permission, Timestamp};
use jinliu_store::{Scope, Store, StoreError};
use sha2::Sha256;

/// How long a verified key is trusted without asking the database again.
pub const CACHE_TTL: Duration = Duration::from_secs(30);
const CACHE_MAX: usize = 10_000;

/// The caller of a merchant API request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The merchant it acts for.
    pub merchant_id: MerchantId,
    /// Live or test mode.
    pub livemode: bool,
    /// The key.
    pub key_id: ApiKeyId,
    /// Secret or publishable.
    pub kind: ApiKeyKind,
    /// What it may do.
    pub permissions: Vec<Permission>,
}

impl Principal {
    /// The store scope of everything it reads and writes.
    pub fn scope(&self) -> Scope {
        Scope {
            merchant_id: self.merchant_id.clone(),
            livemode: self.livemode,
        }
    }

    /// Whether it holds `p`.
    pub fn may(&self, p: Permission) -> bool {
        self.permissions.contains(&p)
    }
}

/// Why a credential was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer …`.
    #[error("authentication required")]
    Missing,
    /// Not a key jinliu issued, revoked, or expired.
    #[error("invalid credentials")]
    Invalid,
    /// The store could not be asked.
    #[error("store: {0}")]
    Store(String),
}

/// A verified key: who it is, until when this node may trust it without asking, and when the
/// key itself ends (expiry or a scheduled revocation).
type Cached = (Principal, Instant, Option<Timestamp>);

/// Key hashing and the verified-key cache.
pub struct Auth {
    pepper: [u8; 32],
    cache: Mutex<HashMap<String, Cached>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").finish_non_exhaustive()
    }
}

impl Auth {
    /// Hashing with a pepper derived from the master key.
    pub fn new(pepper: [u8; 32]) -> Auth {
        Auth {
            pepper,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The keyed hash a key is stored and found by (lower-case hex).
    pub fn hash(&self, key: &str) -> String {
        // HMAC takes keys of any length, so this cannot fail.
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.pepper).unwrap_or_else(|_| Hmac::<Sha256>::new(&Default::default()));
        mac.update(key.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Creates a key for `merchant` and returns it with its text, which is shown once and never
    /// stored.
    // Each argument is one property of the new key; a builder would only rename them.
    #[allow(clippy::too_many_arguments)]
    pub async fn issue_key(
        &self,
        store: &Store,
        merchant: &MerchantId,
        kind: ApiKeyKind,
        livemode: bool,
        permissions: Option<Vec<Permission>>,
        description: Option<String>,
        now: Timestamp,
    ) -> Result<(ApiKey, String), StoreError> {
        let text = new_api_key(kind, livemode);
        let prefix_len = kind.prefix(livemode).len() + 4;
        let key = ApiKey {
            id: ApiKeyId::generate(),
            merchant_id: merchant.clone(),
            kind,
            livemode,
            prefix: text[..prefix_len].to_owned(),
            permissions,
            description,
            expires_at: None,
            revoked_at: None,
            created_at: now,
        };
        store.create_api_key(&key, &self.hash(&text)).await?;
        Ok((key, text))
    }

    /// The principal behind an `Authorization` header value.
    pub async fn authenticate(
        &self,
        store: &Store,
        header: Option<&str>,
        now: Timestamp,
    ) -> Result<Principal, AuthError> {
        let token = header
            .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Missing)?;
        if ApiKeyKind::of_key(token).is_none() || token.len() > 128 {
            return Err(AuthError::Invalid);
        }
        let hash = self.hash(token);
        if let Some(p) = self.cached(&hash, now) {
            return Ok(p);
        }
        let key = store
            .api_key_by_hash(&hash)
            .await
            .map_err(|e| AuthError::Store(e.to_string()))?
            .filter(|k| k.is_usable(now))
            .ok_or(AuthError::Invalid)?;
        let principal = Principal {
            merchant_id: key.merchant_id.clone(),
            livemode: key.livemode,
            key_id: key.id.clone(),
            kind: key.kind,
            permissions: key.granted(),
        };
        let ends = match (key.expires_at, key.revoked_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(hash, (principal.clone(), Instant::now() + CACHE_TTL, ends));
        Ok(principal)
    }

    fn cached(&self, hash: &str, now: Timestamp) -> Option<Principal> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let (p, until, ends) = cache.get(hash)?;
        (Instant::now() < *until && ends.is_none_or(|e| e > now)).then(|| p.clone())
    }

    /// Forgets cached keys (after a revocation on this node).
    pub fn forget_all(&self) {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}
