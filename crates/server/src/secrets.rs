//! The master key: the one secret that is not in the database. Everything derived from it
//! (the API-key hash pepper now; the AES-256-GCM keys that will encrypt provider credentials and
//! other secrets at rest) is derived with a labelled HMAC, so one leaked derived key reveals
//! neither the master key nor its siblings.
//!
//! It comes from `JINLIU_MASTER_KEY` (64 hex digits). When that is unset and no live provider
//! account is configured, `jinliu serve` keeps a generated one in `<data-dir>/master.key`
//! (mode 0600) and says so; live mode refuses to start without the variable.

use std::io::Write;
use std::path::Path;

use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;

use crate::config::Config;

/// 32 random bytes.
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(***)")
    }
}

/// Why the master key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    /// `JINLIU_MASTER_KEY` is not 64 hex digits.
    #[error("JINLIU_MASTER_KEY must be 64 hex digits (32 bytes), e.g. from `openssl rand -hex 32`")]
    Malformed,
    /// A live account is configured but there is no `JINLIU_MASTER_KEY`.
    #[error(
        "live provider accounts exist (configured, or added by merchants): set JINLIU_MASTER_KEY (a generated key file is for test mode only)"
    )]
    LiveNeedsKey,
    /// The key file could not be read or written.
    #[error("master key file {path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
}

impl MasterKey {
    /// Parses 64 hex digits.
    pub fn from_hex(text: &str) -> Result<MasterKey, MasterKeyError> {
        let bytes = hex::decode(text.trim()).map_err(|_| MasterKeyError::Malformed)?;
        let arr: [u8; 32] = bytes.try_into().map_err(|_| MasterKeyError::Malformed)?;
        Ok(MasterKey(arr))
    }

    /// A key for one purpose: `HMAC-SHA256(master, label)`.
    pub fn derive(&self, label: &str) -> [u8; 32] {
        // HMAC takes keys of any length, so this cannot fail.
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).unwrap_or_else(|_| Hmac::<Sha256>::new(&Default::default()));
        mac.update(label.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The master key for `config`: the variable, or (test mode only) the data directory's file,
    /// created on first use. Returns the key and whether the file was just generated.
    pub fn load(config: &Config) -> Result<(MasterKey, bool), MasterKeyError> {
        if let Some(k) = &config.master_key {
            return Ok((MasterKey::from_hex(k.expose())?, false));
        }
        if config
            .provider_accounts
            .iter()
            .any(|a| a.mode.as_deref() == Some("live"))
        {
            return Err(MasterKeyError::LiveNeedsKey);
        }
        load_or_create(&config.data_dir.join("master.key"))
    }
}

fn load_or_create(path: &Path) -> Result<(MasterKey, bool), MasterKeyError> {
    let file_err = |e: std::io::Error| MasterKeyError::File {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            // A key file others can read is a leaked key: refuse it rather than use it.
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(path).map_err(file_err)?.permissions().mode();
                if mode & 0o077 != 0 {
                    return Err(MasterKeyError::File {
                        path: path.display().to_string(),
                        message: format!("mode {:o} lets others read it; run chmod 600", mode & 0o777),
                    });
                }
            }
            return Ok((MasterKey::from_hex(&text)?, false));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(file_err(e)),
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(file_err)?;
    }
    let mut bytes = [0_u8; 32];
    rand::rng().fill(&mut bytes);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(file_err)?;
    file.write_all(hex::encode(bytes).as_bytes()).map_err(file_err)?;
    Ok((MasterKey(bytes), true))
}

/// Compares two secrets in time that depends only on their length, so a response's timing does
/// not tell how much of a guess was right.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0_u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Encrypts secrets for storage with AES-256-GCM: a random 96-bit nonce per value, and
/// associated data that binds each value to its row (a ciphertext copied into another row fails
/// to decrypt). Stored as `v1.<key id>.<base64(nonce ‖ ciphertext ‖ tag)>`, so every value names
/// the key that opens it.
///
/// The keys form a ring: `k1` is derived from the master key; later ones (`k2`, …, added by
/// `jinliu keys rotate`) are random and kept in the database wrapped under a key-encryption key
/// that is also derived from the master key (see [`crate::keyring`]). New values are sealed with
/// the active key; every key of the ring still opens what it sealed.
pub struct Sealer {
    wrap: aes_gcm::Aes256Gcm,
    ring: std::sync::RwLock<DataKeys>,
}

struct DataKeys {
    keys: Vec<(String, aes_gcm::Aes256Gcm)>,
    active: usize,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(***)")
    }
}

/// The id of the data key derived from the master key.
pub const DERIVED_KID: &str = "k1";

fn cipher(key: &[u8; 32]) -> aes_gcm::Aes256Gcm {
    use aes_gcm::KeyInit;
    aes_gcm::Aes256Gcm::new(key.into())
}

fn encrypt(cipher: &aes_gcm::Aes256Gcm, plain: &[u8], aad: &str) -> Vec<u8> {
    use aes_gcm::aead::{Aead, Payload};
    let nonce: [u8; 12] = rand::random();
    // Encryption fails only for plaintexts beyond 64 GiB.
    let ct = cipher
        .encrypt(
            &nonce.into(),
            Payload {
                msg: plain,
                aad: aad.as_bytes(),
            },
        )
        .unwrap_or_default();
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    out
}

fn decrypt(cipher: &aes_gcm::Aes256Gcm, bytes: &[u8], aad: &str) -> Option<Vec<u8>> {
    use aes_gcm::aead::{Aead, Payload};
    if bytes.len() < 12 + 16 {
        return None;
    }
    let (nonce, ct) = bytes.split_at(12);
    let nonce: [u8; 12] = nonce.try_into().ok()?;
    cipher
        .decrypt(
            &nonce.into(),
            Payload {
                msg: ct,
                aad: aad.as_bytes(),
            },
        )
        .ok()
}

/// The key id a sealed value names.
pub fn kid_of(sealed: &str) -> Option<&str> {
    sealed.strip_prefix("v1.")?.split('.').next()
}

impl Sealer {
    /// The sealer of `master`, with only the derived key `k1` until the ring is loaded.
    pub fn new(master: &MasterKey) -> Sealer {
        Sealer {
            wrap: cipher(&master.derive("jinliu key ring kek v1")),
            ring: std::sync::RwLock::new(DataKeys {
                keys: vec![(
                    DERIVED_KID.to_owned(),
                    cipher(&master.derive("jinliu secrets aes-256-gcm k1")),
                )],
                active: 0,
            }),
        }
    }

    /// Encrypts `plain` with the active key, bound to `aad` (e.g. `users.totp_secret:usr_…`).
    pub fn seal(&self, plain: &[u8], aad: &str) -> String {
        let ring = self.ring.read().unwrap_or_else(|p| p.into_inner());
        let (kid, c) = &ring.keys[ring.active.min(ring.keys.len() - 1)];
        format!("v1.{kid}.{}", data_encoding::BASE64.encode(&encrypt(c, plain, aad)))
    }

    /// Encrypts `plain` with the named key (key rotation re-seals under the new key before
    /// every node uses it for new values); `None` for a key the ring does not hold.
    pub fn seal_with(&self, kid: &str, plain: &[u8], aad: &str) -> Option<String> {
        let ring = self.ring.read().unwrap_or_else(|p| p.into_inner());
        let (_, c) = ring.keys.iter().find(|(k, _)| k == kid)?;
        Some(format!(
            "v1.{kid}.{}",
            data_encoding::BASE64.encode(&encrypt(c, plain, aad))
        ))
    }

    /// Decrypts a sealed value; `None` when it was tampered with, moved to another row, or
    /// sealed under a key this ring does not hold.
    pub fn open(&self, sealed: &str, aad: &str) -> Option<Vec<u8>> {
        let kid = kid_of(sealed)?;
        let rest = sealed.strip_prefix("v1.")?.strip_prefix(kid)?.strip_prefix('.')?;
        let bytes = data_encoding::BASE64.decode(rest.as_bytes()).ok()?;
        let ring = self.ring.read().unwrap_or_else(|p| p.into_inner());
        let (_, c) = ring.keys.iter().find(|(k, _)| k == kid)?;
        decrypt(c, &bytes, aad)
    }

    /// Whether the ring holds the key a sealed value names (`false` for a malformed value too).
    pub fn knows(&self, sealed: &str) -> bool {
        let Some(kid) = kid_of(sealed) else { return false };
        let ring = self.ring.read().unwrap_or_else(|p| p.into_inner());
        ring.keys.iter().any(|(k, _)| k == kid)
    }

    /// The id of the key new values are sealed with.
    pub fn active_kid(&self) -> String {
        let ring = self.ring.read().unwrap_or_else(|p| p.into_inner());
        ring.keys[ring.active.min(ring.keys.len() - 1)].0.clone()
    }

    /// Wraps a ring key for storage, bound to its id.
    pub fn wrap(&self, kid: &str, key: &[u8; 32]) -> String {
        data_encoding::BASE64.encode(&encrypt(&self.wrap, key, &format!("key_ring:{kid}")))
    }

    /// Unwraps a stored ring key; `None` under another master key or when tampered with.
    pub fn unwrap(&self, kid: &str, wrapped: &str) -> Option<[u8; 32]> {
        let bytes = data_encoding::BASE64.decode(wrapped.as_bytes()).ok()?;
        decrypt(&self.wrap, &bytes, &format!("key_ring:{kid}"))?.try_into().ok()
    }

    /// Installs the ring's stored data keys (oldest first) after the derived one; `active` is
    /// the id new values are sealed with.
    pub fn install(&self, stored: &[(String, [u8; 32])], active: &str) {
        let mut ring = self.ring.write().unwrap_or_else(|p| p.into_inner());
        ring.keys.truncate(1);
        ring.keys
            .extend(stored.iter().map(|(kid, key)| (kid.clone(), cipher(key))));
        ring.active = ring.keys.iter().position(|(k, _)| k == active).unwrap_or(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_in_its_own_row_and_under_its_own_key() {
        let master = MasterKey::from_hex(&"ab".repeat(32)).unwrap_or_else(|e| panic!("{e}"));
        let s = Sealer::new(&master);
        let sealed = s.seal(b"JBSWY3DPEHPK3PXP", "users.totp_secret:usr_a");
        assert!(sealed.starts_with("v1.k1."));
        assert_eq!(kid_of(&sealed), Some("k1"));
        assert!(!sealed.contains("JBSWY3DP"));
        assert_eq!(
            s.open(&sealed, "users.totp_secret:usr_a").as_deref(),
            Some(&b"JBSWY3DPEHPK3PXP"[..])
        );
        assert_eq!(
            s.open(&sealed, "users.totp_secret:usr_b"),
            None,
            "copied to another row"
        );
        assert_ne!(
            sealed,
            s.seal(b"JBSWY3DPEHPK3PXP", "users.totp_secret:usr_a"),
            "fresh nonce each time"
        );
        let other = Sealer::new(&MasterKey::from_hex(&"cd".repeat(32)).unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(
            other.open(&sealed, "users.totp_secret:usr_a"),
            None,
            "another master key"
        );
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(s.open(&tampered, "users.totp_secret:usr_a"), None);
    }

    #[test]
    fn a_rotated_ring_seals_with_the_new_key_and_still_opens_the_old() {
        let master = MasterKey::from_hex(&"ab".repeat(32)).unwrap_or_else(|e| panic!("{e}"));
        let s = Sealer::new(&master);
        let old = s.seal(b"seed", "row:a");
        let key: [u8; 32] = rand::random();
        let wrapped = s.wrap("k2", &key);
        assert_eq!(s.unwrap("k2", &wrapped), Some(key));
        assert_eq!(s.unwrap("k3", &wrapped), None, "a wrapped key is bound to its id");
        let other = Sealer::new(&MasterKey::from_hex(&"cd".repeat(32)).unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(
            other.unwrap("k2", &wrapped),
            None,
            "another master key cannot unwrap it"
        );
        s.install(&[("k2".to_owned(), key)], "k1");
        assert!(
            s.seal(b"x", "row:a").starts_with("v1.k1."),
            "a new key is not used before it is active"
        );
        let early = s.seal_with("k2", b"seed", "row:a").unwrap_or_default();
        assert!(early.starts_with("v1.k2."));
        s.install(&[("k2".to_owned(), key)], "k2");
        let new = s.seal(b"seed", "row:a");
        assert!(new.starts_with("v1.k2."), "{new}");
        assert_eq!(s.open(&old, "row:a").as_deref(), Some(&b"seed"[..]));
        assert_eq!(s.open(&new, "row:a").as_deref(), Some(&b"seed"[..]));
        assert_eq!(s.seal_with("k9", b"x", "row:a"), None);
    }

    #[test]
    fn a_generated_key_file_is_private_and_read_back_the_same() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("master.key");
        let (a, created) = load_or_create(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(created);
        let (b, created_again) = load_or_create(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(!created_again);
        assert_eq!(a.derive("x"), b.derive("x"));
        assert_ne!(a.derive("x"), a.derive("y"), "labels separate derived keys");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0);
            assert_eq!(mode, 0o600);
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_key_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("master.key");
        load_or_create(&path).unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap_or_else(|e| panic!("{e}"));
        let err = load_or_create(&path).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("chmod 600"), "{err}");
    }

    #[test]
    fn a_malformed_key_is_refused() {
        assert!(MasterKey::from_hex("abc").is_err());
        assert!(MasterKey::from_hex(&"0".repeat(64)).is_ok());
    }
}
