//! The key ring: the data keys that seal secrets at rest (TOTP seeds, notify secrets, webhook
//! signing secrets, provider credentials) and the keys that sign access tokens.
//!
//! The first key of each kind (`k1`) is derived from the master key, so a fresh installation
//! needs nothing stored. `jinliu keys rotate` adds a random data key (`k2`, `k3`, …) and a
//! random JWT key (`j2`, `j3`, …), each stored in `key_ring` wrapped (AES-256-GCM) under a
//! key-encryption key derived from the master key, then re-seals every stored secret under the
//! new data key. The database alone therefore never opens a secret.
//!
//! Several nodes run without talking to each other, so a new key is *used* only once every node
//! can know it: each node reloads the ring every [`REFRESH`], and a key becomes the one that
//! seals and signs only [`GRACE_SECS`] after it was added. Until then nodes already accept it
//! (open values sealed with it, verify tokens signed with it), and the rotation waits that long
//! before it re-seals anything. Old keys stay in the ring, so nothing sealed under them is lost.

use std::time::Duration;

use jinliu_domain::{EndpointId, MerchantId, MerchantProviderAccount, ProviderAccountId, Timestamp, UserId};
use jinliu_store::{RingKey, SealedField, SealedValue, Store, StoreError};
use serde::Serialize;

use crate::auth::Auth;
use crate::secrets::{DERIVED_KID, Sealer, kid_of};

/// How often a running node reloads the ring.
pub const REFRESH: Duration = Duration::from_secs(15);

/// How long after it was added a key starts sealing and signing (longer than [`REFRESH`], so
/// every node has loaded it by then).
pub const GRACE_SECS: i64 = 30;

/// The ring entry that proves a master key is the ring's own: a known value wrapped under it,
/// written once. Every load unwraps it, so a wrong master key is refused before anything is
/// written with it.
const CHECK_KID: &str = "check";

/// Why the ring could not be loaded or rotated.
#[derive(Debug, thiserror::Error)]
pub enum KeyRingError {
    /// The database failed.
    #[error("database: {0}")]
    Store(#[from] StoreError),
    /// A stored key does not unwrap: the master key is not the one it was wrapped under.
    #[error(
        "key ring entry {0} does not open under this master key (JINLIU_MASTER_KEY differs from the one the ring was made with)"
    )]
    WrongMasterKey(String),
    /// Stored secrets do not open: rotating now would lose them.
    #[error(
        "{count} stored secrets (first: {first}) do not open under this master key and its ring; nothing was changed. Run with the servers' JINLIU_MASTER_KEY"
    )]
    Unreadable {
        /// How many.
        count: usize,
        /// `table.column row`.
        first: String,
    },
    /// Nothing proves the master key yet (no check entry, no stored secret).
    #[error(
        "nothing in the database proves this master key yet; start `jinliu serve` once with it (it records a check value), then rotate"
    )]
    Unproven,
}

/// Loads the ring from the database into the sealer and the token signer. A key sealing and
/// signing is the newest one added at least [`GRACE_SECS`] before `now`.
pub async fn load(store: &Store, sealer: &Sealer, auth: &Auth, now: Timestamp) -> Result<(), KeyRingError> {
    let ring = store.ring_keys().await?;
    let mut data = Vec::new();
    let mut jwt = Vec::new();
    let (mut data_active, mut jwt_active) = (DERIVED_KID.to_owned(), crate::auth::JWT_KID.to_owned());
    for k in &ring {
        let key = sealer
            .unwrap(&k.kid, &k.wrapped)
            .ok_or_else(|| KeyRingError::WrongMasterKey(k.kid.clone()))?;
        let usable = k.created_at + chrono::Duration::seconds(GRACE_SECS) <= now;
        match k.purpose.as_str() {
            "data" => {
                if usable {
                    data_active = k.kid.clone();
                }
                data.push((k.kid.clone(), key));
            }
            "jwt" => {
                if usable {
                    jwt_active = k.kid.clone();
                }
                jwt.push((k.kid.clone(), key));
            }
            "check" => {}
            other => tracing::warn!(kid = %k.kid, purpose = other, "unknown key ring purpose; ignored"),
        }
    }
    sealer.install(&data, &data_active);
    auth.install_jwt_keys(&jwt, &jwt_active);
    Ok(())
}

/// Records the check entry when the ring has none (the first start of a server, whose master key
/// is then the ring's). A concurrent start that records it first wins; both wrap the same value
/// under the same key.
pub async fn ensure_check(store: &Store, sealer: &Sealer, now: Timestamp) -> Result<(), KeyRingError> {
    if store.ring_keys().await?.iter().any(|k| k.kid == CHECK_KID) {
        return Ok(());
    }
    match store
        .add_ring_key(RingKey {
            kid: CHECK_KID.into(),
            purpose: CHECK_KID.into(),
            seq: 0,
            wrapped: sealer.wrap(CHECK_KID, &[0; 32]),
            created_at: now,
        })
        .await
    {
        Ok(()) | Err(StoreError::Conflict) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Reloads the ring when a value names a key this node has not loaded yet (another node or
/// `jinliu keys rotate` added it since the last reload), so such a value opens at once rather
/// than after the next periodic reload.
pub async fn ensure_known<'a>(app: &crate::state::AppState, sealed: impl IntoIterator<Item = &'a str>) {
    if sealed.into_iter().any(|v| !app.sealer.knows(v))
        && let Err(e) = load(&app.store, &app.sealer, &app.auth, app.clock.now()).await
    {
        tracing::error!(error = %e, "key ring reload failed");
    }
}

/// Reloads the ring every [`REFRESH`] for the life of the server.
pub async fn run(app: crate::state::AppState) {
    let mut tick = tokio::time::interval(REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = load(&app.store, &app.sealer, &app.auth, app.clock.now()).await {
            tracing::error!(error = %e, "key ring reload failed; the keys loaded before stay in use");
        }
    }
}

/// What a rotation did.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RotateReport {
    /// The new data key.
    pub data_kid: String,
    /// The new JWT signing key.
    pub jwt_kid: String,
    /// Values re-sealed under the new data key, per column.
    pub resealed: Vec<(String, usize)>,
    /// Values no key of the ring opens (`table.column` and row id): left as they are.
    pub unreadable: Vec<(String, String)>,
}

/// The associated data a sealed value was sealed with.
pub fn aad_of(v: &SealedValue) -> String {
    let merchant = || MerchantId::from_trusted(v.merchant_id.clone().unwrap_or_default());
    match v.field {
        SealedField::UserTotp => crate::users::totp_aad(&UserId::from_trusted(v.row_id.clone())),
        SealedField::MerchantNotifySecret => {
            crate::http::merchant::notify_secret_aad(&MerchantId::from_trusted(v.row_id.clone()))
        }
        SealedField::WebhookSecret | SealedField::WebhookPreviousSecret => {
            crate::webhooks::endpoints::secret_aad(&merchant(), &EndpointId::from_trusted(v.row_id.clone()))
        }
        SealedField::ProviderCredentials => {
            MerchantProviderAccount::credentials_aad(&merchant(), &ProviderAccountId::from_trusted(v.row_id.clone()))
        }
    }
}

fn next(ring: &[RingKey], purpose: &str, prefix: &str) -> (String, i64) {
    let seq = ring
        .iter()
        .filter(|k| k.purpose == purpose)
        .map(|k| k.seq)
        .max()
        .unwrap_or(1)
        + 1;
    (format!("{prefix}{seq}"), seq)
}

/// Adds a new data key and JWT key, waits `wait` so that every node has loaded them, then
/// re-seals every stored secret under the new data key. Values changed meanwhile by a request
/// are read again; values no key opens are reported, not touched.
pub async fn rotate(
    store: &Store,
    sealer: &Sealer,
    auth: &Auth,
    now: Timestamp,
    wait: Duration,
) -> Result<RotateReport, KeyRingError> {
    load(store, sealer, auth, now).await?;
    // Nothing is written until this master key is proven to be the ring's: every stored secret
    // must open, and something must vouch for the key.
    let mut proven = store.ring_keys().await?.iter().any(|k| k.kid == CHECK_KID);
    let mut unreadable = Vec::new();
    for field in SealedField::ALL {
        for v in store.sealed_values(field).await? {
            if sealer.open(&v.value, &aad_of(&v)).is_some() {
                proven = true;
            } else {
                unreadable.push(format!("{} {}", field.name(), v.row_id));
            }
        }
    }
    if let Some(first) = unreadable.first() {
        return Err(KeyRingError::Unreadable {
            count: unreadable.len(),
            first: first.clone(),
        });
    }
    if !proven {
        return Err(KeyRingError::Unproven);
    }
    ensure_check(store, sealer, now).await?;
    let ring = store.ring_keys().await?;
    let (data_kid, data_seq) = next(&ring, "data", "k");
    let (jwt_kid, jwt_seq) = next(&ring, "jwt", "j");
    for (kid, seq, purpose) in [(&data_kid, data_seq, "data"), (&jwt_kid, jwt_seq, "jwt")] {
        let key: [u8; 32] = rand::random();
        store
            .add_ring_key(RingKey {
                kid: kid.clone(),
                purpose: purpose.into(),
                seq,
                wrapped: sealer.wrap(kid, &key),
                created_at: now,
            })
            .await?;
    }
    load(store, sealer, auth, now).await?;
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
    let mut report = RotateReport {
        data_kid: data_kid.clone(),
        jwt_kid,
        ..RotateReport::default()
    };
    for field in SealedField::ALL {
        let mut done = 0;
        // A value a request replaced between the read and the write is read again; three passes
        // outlast any realistic rate of secret changes.
        for _ in 0..3 {
            let stale: Vec<SealedValue> = store
                .sealed_values(field)
                .await?
                .into_iter()
                .filter(|v| kid_of(&v.value) != Some(data_kid.as_str()))
                .filter(|v| !report.unreadable.iter().any(|(_, id)| *id == v.row_id))
                .collect();
            if stale.is_empty() {
                break;
            }
            for v in stale {
                let aad = aad_of(&v);
                let Some(plain) = sealer.open(&v.value, &aad) else {
                    report.unreadable.push((field.name().to_owned(), v.row_id.clone()));
                    continue;
                };
                let Some(new) = sealer.seal_with(&data_kid, &plain, &aad) else {
                    continue;
                };
                if store.replace_sealed(&v, &new).await? {
                    done += 1;
                }
            }
        }
        report.resealed.push((field.name().to_owned(), done));
    }
    Ok(report)
}
