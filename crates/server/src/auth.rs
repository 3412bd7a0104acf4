//! Authentication: who a request speaks for.
//!
//! A caller is an API key (`Authorization: Bearer jl_sk_test_…`) or a user's access token (a
//! JWT, `Authorization: Bearer eyJ…`). Keys are never stored:
//! the store keeps `HMAC-SHA256(pepper, key)` — the pepper derived from the master key, which is
//! not in the database — so a stolen database yields no usable key and no offline guessing.
//! A verified key is cached for [`CACHE_TTL`] so the hot path does not read the database on
//! every request; revoking a key therefore takes effect within that time on every node.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use jinliu_domain::access::new_api_key;
use jinliu_domain::{ApiKey, ApiKeyId, ApiKeyKind, Merchant, MerchantId, Permission, Role, Timestamp, User, UserId};
use jinliu_store::{Scope, Store, StoreError};
use sha2::Sha256;

/// How long a verified key is trusted without asking the database again.
pub const CACHE_TTL: Duration = Duration::from_secs(30);
const CACHE_MAX: usize = 10_000;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// An API key.
    Key {
        /// The key.
        id: ApiKeyId,
        /// Secret or publishable.
        kind: ApiKeyKind,
    },
    /// A logged-in user.
    User {
        /// The user.
        id: UserId,
        /// The user's role.
        role: Role,
    },
}

/// The caller of a merchant API request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The merchant it acts for (for a platform admin: the one named in `Jinliu-Merchant`).
    pub merchant_id: MerchantId,
    /// Live or test mode.
    pub livemode: bool,
    /// The key or user.
    pub actor: Actor,
    /// What it may do.
    pub permissions: Vec<Permission>,
    /// The merchant as read when the credential was verified (its settings apply to the
    /// request; a change reaches cached keys within 30 s).
    pub merchant: Arc<Merchant>,
}

impl Principal {
    /// The actor of the audit rows this principal causes.
    pub fn audit_actor(&self) -> jinliu_domain::AuditActor {
        match &self.actor {
            Actor::Key { id, .. } => jinliu_domain::AuditActor::Key { id: id.clone() },
            Actor::User { id, role } => jinliu_domain::AuditActor::User {
                id: id.clone(),
                role: *role,
            },
        }
    }

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

    /// Whether this is a publishable key (which opens no merchant route).
    pub fn is_publishable(&self) -> bool {
        matches!(
            self.actor,
            Actor::Key {
                kind: ApiKeyKind::Publishable,
                ..
            }
        )
    }
}

/// A logged-in user, before a merchant is chosen (the profile route needs no merchant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSession {
    /// The user as stored.
    pub user: User,
}

/// The claims of jinliu's access tokens.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Claims {
    /// `jinliu`.
    pub iss: String,
    /// `jinliu-api`.
    pub aud: String,
    /// The user id.
    pub sub: String,
    /// Expiry (unix seconds).
    pub exp: i64,
    /// Not before.
    pub nbf: i64,
    /// Issued at.
    pub iat: i64,
    /// The login (refresh-token family): a logout or a detected token reuse ends the access
    /// tokens of that login too.
    pub sid: String,
}

/// Issuer of access tokens.
pub const ISSUER: &str = "jinliu";
/// Audience of access tokens.
pub const AUDIENCE: &str = "jinliu-api";
/// The id of the signing key derived from the master key; `jinliu keys rotate` adds `j2`, `j3`,
/// … (see [`crate::keyring`]). Tokens naming a `kid` the ring does not accept are refused.
pub const JWT_KID: &str = "k1";

/// Why a credential was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer …`.
    #[error("authentication required")]
    Missing,
    /// Not a key jinliu issued, revoked, or expired.
    #[error("invalid credentials")]
    Invalid,
    /// A platform admin must name the merchant it acts on (`Jinliu-Merchant`).
    #[error("merchant required")]
    MerchantRequired,
    /// `Jinliu-Mode` names a mode other than the key's.
    #[error("mode mismatch")]
    ModeMismatch,
    /// The store could not be asked.
    #[error("store: {0}")]
    Store(String),
}

/// A verified key: who it is, until when this node may trust it without asking, and when the
/// key itself ends (expiry or a scheduled revocation).
type Cached = (Principal, Instant, Option<Timestamp>);

/// A credential works only for a merchant that exists and is active.
async fn active_merchant(store: &Store, id: &MerchantId) -> Result<Arc<Merchant>, AuthError> {
    store
        .merchant(id)
        .await
        .map_err(|e| AuthError::Store(e.to_string()))?
        .filter(|m| m.status == "active")
        .map(Arc::new)
        .ok_or(AuthError::Invalid)
}

/// The time zone that defines "a day" for `merchant` (date filters, later reports): its own, or
/// the server's `JINLIU_TIMEZONE` when its stored zone is unknown.
pub fn business_zone(app: &crate::state::AppState, merchant: &Merchant) -> chrono_tz::Tz {
    merchant.timezone.parse().unwrap_or(app.config.timezone)
}

/// Key hashing, access tokens and the verified-credential cache.
pub struct Auth {
    pepper: [u8; 32],
    jwt: std::sync::RwLock<JwtKeys>,
    cache: Mutex<HashMap<String, Cached>>,
}

/// The JWT signing keys, oldest first: tokens are signed with `keys[signing]`, and accepted when
/// they name that key, the one before it (tokens signed before a rotation stay valid until they
/// expire) or a newer one (signing on another node may already have moved to it).
struct JwtKeys {
    keys: Vec<(String, [u8; 32])>,
    signing: usize,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").finish_non_exhaustive()
    }
}

impl Auth {
    /// Hashing with a pepper and signing tokens with a key, both derived from the master key.
    pub fn new(master: &crate::secrets::MasterKey) -> Auth {
        Auth {
            pepper: master.derive("jinliu api-key hash v1"),
            jwt: std::sync::RwLock::new(JwtKeys {
                keys: vec![(JWT_KID.to_owned(), master.derive("jinliu jwt hs256 k1"))],
                signing: 0,
            }),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// A signed access token for `user`, valid `ttl_secs` from `now`.
    pub fn access_token(&self, user: &UserId, session: &str, now: Timestamp, ttl_secs: i64) -> String {
        let claims = Claims {
            sid: session.to_owned(),
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: user.to_string(),
            exp: now.timestamp() + ttl_secs,
            nbf: now.timestamp(),
            iat: now.timestamp(),
        };
        let (kid, key) = {
            let jwt = self.jwt.read().unwrap_or_else(|p| p.into_inner());
            jwt.keys[jwt.signing.min(jwt.keys.len() - 1)].clone()
        };
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some(kid);
        // Encoding a struct of strings and integers with an HMAC key cannot fail.
        jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_secret(&key)).unwrap_or_default()
    }

    /// The user id of a valid access token: algorithm pinned to HS256, `kid`, issuer, audience,
    /// `exp`, `nbf`, `iat` and `sub` required and checked, 30 s leeway.
    pub fn verify_access_token(&self, token: &str, now: Timestamp) -> Result<(UserId, String), AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Invalid)?;
        if header.alg != jsonwebtoken::Algorithm::HS256 {
            return Err(AuthError::Invalid);
        }
        let key = {
            let jwt = self.jwt.read().unwrap_or_else(|p| p.into_inner());
            let oldest = jwt.signing.saturating_sub(1);
            jwt.keys
                .iter()
                .skip(oldest)
                .find(|(kid, _)| Some(kid.as_str()) == header.kid.as_deref())
                .map(|(_, key)| *key)
                .ok_or(AuthError::Invalid)?
        };
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        v.leeway = 30;
        v.validate_nbf = true;
        v.set_issuer(&[ISSUER]);
        v.set_audience(&[AUDIENCE]);
        v.set_required_spec_claims(&["exp", "nbf", "iat", "sub", "iss", "aud"]);
        // The library checks exp/nbf against the system clock; jinliu's clock must agree.
        let data = jsonwebtoken::decode::<Claims>(token, &jsonwebtoken::DecodingKey::from_secret(&key), &v)
            .map_err(|_| AuthError::Invalid)?;
        if data.claims.iat > now.timestamp() + 30 {
            return Err(AuthError::Invalid);
        }
        let user = UserId::parse(&data.claims.sub).ok_or(AuthError::Invalid)?;
        Ok((user, data.claims.sid))
    }

    /// Installs the ring's stored JWT keys (oldest first) after the derived one; `signing` is the
    /// id new tokens are signed with.
    pub fn install_jwt_keys(&self, stored: &[(String, [u8; 32])], signing: &str) {
        let mut jwt = self.jwt.write().unwrap_or_else(|p| p.into_inner());
        jwt.keys.truncate(1);
        jwt.keys.extend(stored.iter().cloned());
        jwt.signing = jwt.keys.iter().position(|(k, _)| k == signing).unwrap_or(0);
    }

    /// The id new tokens are signed with.
    pub fn signing_kid(&self) -> String {
        let jwt = self.jwt.read().unwrap_or_else(|p| p.into_inner());
        jwt.keys[jwt.signing.min(jwt.keys.len() - 1)].0.clone()
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
        self.issue_key_until(
            store,
            merchant,
            kind,
            livemode,
            permissions,
            description,
            None,
            now,
            None,
        )
        .await
    }

    /// [`issue_key`](Auth::issue_key) with an expiry.
    #[allow(clippy::too_many_arguments)]
    pub async fn issue_key_until(
        &self,
        store: &Store,
        merchant: &MerchantId,
        kind: ApiKeyKind,
        livemode: bool,
        permissions: Option<Vec<Permission>>,
        description: Option<String>,
        expires_at: Option<Timestamp>,
        now: Timestamp,
        idem: Option<jinliu_store::IdemRequest<ApiKey>>,
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
            expires_at,
            revoked_at: None,
            created_at: now,
        };
        store.create_api_key(&key, &self.hash(&text), idem).await?;
        Ok((key, text))
    }

    /// The bearer token of an `Authorization` header value.
    pub fn bearer(header: Option<&str>) -> Result<&str, AuthError> {
        header
            .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Missing)
    }

    /// The logged-in user behind an access token (active, not locked out of existence).
    pub async fn user_session(
        &self,
        store: &Store,
        header: Option<&str>,
        now: Timestamp,
    ) -> Result<UserSession, AuthError> {
        let token = Self::bearer(header)?;
        let (id, session) = self.verify_access_token(token, now)?;
        if store
            .refresh_family_revoked(&session)
            .await
            .map_err(|e| AuthError::Store(e.to_string()))?
        {
            return Err(AuthError::Invalid);
        }
        let user = store
            .user(&id)
            .await
            .map_err(|e| AuthError::Store(e.to_string()))?
            .filter(|u| u.status == "active")
            .ok_or(AuthError::Invalid)?;
        Ok(UserSession { user })
    }

    /// The principal behind an `Authorization` header value; `merchant` is the
    /// `Jinliu-Merchant` header, which only a platform admin may (and must) send.
    pub async fn authenticate(
        &self,
        store: &Store,
        header: Option<&str>,
        merchant: Option<&str>,
        now: Timestamp,
    ) -> Result<Principal, AuthError> {
        self.authenticate_in_mode(store, header, merchant, None, now).await
    }

    /// [`authenticate`](Auth::authenticate) with the `Jinliu-Mode` header: a user's session works
    /// in the mode it names (test by default); a key's mode is its own, and naming the other one
    /// is refused rather than ignored.
    pub async fn authenticate_in_mode(
        &self,
        store: &Store,
        header: Option<&str>,
        merchant: Option<&str>,
        livemode: Option<bool>,
        now: Timestamp,
    ) -> Result<Principal, AuthError> {
        let principal = self.principal(store, header, merchant, livemode, now).await?;
        match (livemode, &principal.actor) {
            (Some(mode), Actor::Key { .. }) if mode != principal.livemode => Err(AuthError::ModeMismatch),
            _ => Ok(principal),
        }
    }

    async fn principal(
        &self,
        store: &Store,
        header: Option<&str>,
        merchant: Option<&str>,
        livemode: Option<bool>,
        now: Timestamp,
    ) -> Result<Principal, AuthError> {
        let token = Self::bearer(header)?;
        if token.len() > 4096 {
            return Err(AuthError::Invalid);
        }
        if ApiKeyKind::of_key(token).is_none() {
            return self
                .authenticate_user(store, header, merchant, livemode.unwrap_or(false), now)
                .await;
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
        let merchant = active_merchant(store, &key.merchant_id).await?;
        let principal = Principal {
            merchant,
            merchant_id: key.merchant_id.clone(),
            livemode: key.livemode,
            actor: Actor::Key {
                id: key.id.clone(),
                kind: key.kind,
            },
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

    async fn authenticate_user(
        &self,
        store: &Store,
        header: Option<&str>,
        merchant: Option<&str>,
        livemode: bool,
        now: Timestamp,
    ) -> Result<Principal, AuthError> {
        let UserSession { user } = self.user_session(store, header, now).await?;
        let (merchant_id, merchant) = match (user.role, &user.merchant_id) {
            (Role::PlatformAdmin, _) => {
                let id = merchant
                    .and_then(MerchantId::parse)
                    .ok_or(AuthError::MerchantRequired)?;
                let m = active_merchant(store, &id).await?;
                (id, m)
            }
            (_, Some(m)) => {
                // A merchant user acts for its own merchant; naming another is refused.
                if merchant.is_some_and(|h| h != m.as_str()) {
                    return Err(AuthError::Invalid);
                }
                (m.clone(), active_merchant(store, m).await?)
            }
            (_, None) => return Err(AuthError::Invalid),
        };
        Ok(Principal {
            merchant,
            merchant_id,
            livemode,
            actor: Actor::User {
                id: user.id.clone(),
                role: user.role,
            },
            permissions: user.role.permissions(),
        })
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
