//! The audit log's server side: the sealer worker, the checkpoint file, retention and
//! verification (`jinliu audit verify`).
//!
//! The store writes one row per mutation inside the mutation's transaction and knows how to chain
//! them (`jinliu_store::audit`). This module runs the single sealer (whichever node holds the
//! lease), and after each pass that moved the chain's head — at most once per
//! `JINLIU_AUDIT_CHECKPOINT_SECS` — appends a signed checkpoint `{seq, mac, at, sig}` to a file
//! outside the database (`JINLIU_AUDIT_CHECKPOINTS`, default `<data-dir>/audit-checkpoints.jsonl`).
//! Someone who can rewrite the database but not that file (or its copy in a log sink) cannot cut
//! rows off the end unnoticed, and without the master key cannot recompute the chain.
//!
//! Both keys are derived from the master key and never stored in the database.

use std::io::{BufRead, Write};
use std::path::Path;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use jinliu_domain::Timestamp;
use jinliu_store::{AuditCheckpoint, AuditReport, SealPass, Store, StoreError};
use sha2::Sha256;

use crate::config::Config;
use crate::secrets::MasterKey;
use crate::state::AppState;

/// Rows chained per sealer pass. A pass is one unit of the group-commit writer, so it delays the
/// requests that share its commit: a small pass keeps that delay to a few milliseconds, and the
/// sealer goes again at once while its passes come back full.
const SEAL_BATCH: u64 = 200;

/// The keys of the audit chain and of the checkpoints.
#[derive(Clone)]
pub struct AuditKeys {
    chain: [u8; 32],
    checkpoint: [u8; 32],
}

impl std::fmt::Debug for AuditKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKeys(..)")
    }
}

impl AuditKeys {
    /// Derives both keys from the master key.
    pub fn new(master: &MasterKey) -> AuditKeys {
        AuditKeys {
            chain: master.derive("jinliu audit chain v1"),
            checkpoint: master.derive("jinliu audit checkpoint v1"),
        }
    }

    fn sign(&self, seq: i64, mac: &str, at: &str) -> String {
        let mut h = Hmac::<Sha256>::new_from_slice(&self.checkpoint).expect("HMAC takes any key length");
        h.update(format!("{seq}|{mac}|{at}").as_bytes());
        hex::encode(h.finalize().into_bytes())
    }
}

/// One line of the checkpoint file.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct CheckpointLine {
    seq: i64,
    mac: String,
    at: String,
    sig: String,
}

/// A checkpoint read back from the file, with its time.
#[derive(Debug, Clone)]
pub struct StoredCheckpoint {
    /// The chain position.
    pub checkpoint: AuditCheckpoint,
    /// When it was written.
    pub at: Timestamp,
}

/// Why the checkpoint file cannot be trusted or read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file could not be read or written.
    #[error("checkpoint file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// A line is malformed or its signature is wrong (forged or edited).
    #[error("checkpoint file {path}, line {line}: {reason}")]
    Bad {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
}

/// Appends a signed checkpoint (the file is created 0600) and flushes it to disk.
pub fn append_checkpoint(
    path: &Path,
    keys: &AuditKeys,
    cp: &AuditCheckpoint,
    now: Timestamp,
) -> Result<(), CheckpointError> {
    let io = |source| CheckpointError::Io {
        path: path.display().to_string(),
        source,
    };
    let at = jinliu_domain::format_time(now);
    let line = CheckpointLine {
        seq: cp.seq,
        mac: cp.mac.clone(),
        sig: keys.sign(cp.seq, &cp.mac, &at),
        at,
    };
    // A node on PostgreSQL or MySQL may have no data directory yet: make the file's folder
    // (owner-only, like the data directory).
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder.create(dir).map_err(io)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io)?;
    let mut text = serde_json::to_string(&line).unwrap_or_default();
    text.push('\n');
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_data().map_err(io)
}

/// Reads every checkpoint, checking each signature. A missing file is an empty list.
pub fn read_checkpoints(path: &Path, keys: &AuditKeys) -> Result<Vec<StoredCheckpoint>, CheckpointError> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(CheckpointError::Io {
                path: path.display().to_string(),
                source,
            });
        }
    };
    let bad = |line, reason| CheckpointError::Bad {
        path: path.display().to_string(),
        line,
        reason,
    };
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|source| CheckpointError::Io {
            path: path.display().to_string(),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let cp: CheckpointLine = serde_json::from_str(&line).map_err(|_| bad(i + 1, "not a checkpoint"))?;
        let expected = keys.sign(cp.seq, &cp.mac, &cp.at);
        if !crate::secrets::constant_time_eq(expected.as_bytes(), cp.sig.as_bytes()) {
            return Err(bad(i + 1, "the signature does not match (forged or edited)"));
        }
        let at = DateTime::parse_from_rfc3339(&cp.at)
            .map_err(|_| bad(i + 1, "bad time"))?
            .with_timezone(&Utc);
        out.push(StoredCheckpoint {
            checkpoint: AuditCheckpoint {
                seq: cp.seq,
                mac: cp.mac,
            },
            at,
        });
    }
    Ok(out)
}

/// What `jinliu audit verify` found.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    /// The chain walk.
    #[serde(flatten)]
    pub report: AuditReport,
    /// Checkpoints compared.
    pub checkpoints: usize,
}

/// Verifies the chain in `store` against the checkpoint file.
pub async fn verify(store: &Store, keys: &AuditKeys, checkpoints: &Path) -> Result<Verification, VerifyError> {
    let cps = read_checkpoints(checkpoints, keys)?;
    let list: Vec<AuditCheckpoint> = cps.iter().map(|c| c.checkpoint.clone()).collect();
    let report = store.verify_audit(&keys.chain, &list).await?;
    Ok(Verification {
        report,
        checkpoints: list.len(),
    })
}

/// Why verification could not run.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The checkpoint file.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The database.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One sealer pass on this node: chain what is committed, and checkpoint when the head moved and
/// the checkpoint interval has passed since `last_checkpoint`.
pub async fn seal_once(app: &AppState, last_checkpoint: &mut Option<(i64, Timestamp)>) -> Result<SealPass, String> {
    let now = app.clock.now();
    let lease_ms = (app.config.audit_seal_interval_ms as i64 * 5).clamp(5_000, 60_000);
    let pass = app
        .store
        .seal_audit(&app.audit_keys.chain, &app.node_id, now, lease_ms, SEAL_BATCH)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(head) = &pass.head {
        let due = match last_checkpoint {
            Some((seq, at)) => *seq != head.seq && (now - *at).num_seconds() >= app.config.audit_checkpoint_secs as i64,
            None => true,
        };
        if pass.leader && due {
            append_checkpoint(&app.config.audit_checkpoints, &app.audit_keys, head, now).map_err(|e| e.to_string())?;
            *last_checkpoint = Some((head.seq, now));
        }
    }
    Ok(pass)
}

/// Seals everything committed and writes a checkpoint, outside a running server (`jinliu audit
/// seal`).
pub async fn seal_now(store: &Store, keys: &AuditKeys, config: &Config, owner: &str) -> Result<SealPass, String> {
    let now = Utc::now();
    let mut last = SealPass::default();
    loop {
        let pass = store
            .seal_audit(&keys.chain, owner, now, 10_000, SEAL_BATCH)
            .await
            .map_err(|e| e.to_string())?;
        let done = !pass.leader || pass.sealed < SEAL_BATCH as usize;
        if pass.leader {
            last.leader = true;
            last.sealed += pass.sealed;
            last.head = pass.head;
        }
        if done {
            break;
        }
    }
    if let Some(head) = &last.head {
        append_checkpoint(&config.audit_checkpoints, keys, head, now).map_err(|e| e.to_string())?;
    }
    Ok(last)
}

/// Deletes sealed rows older than the retention period, up to the newest checkpoint written
/// before the cut-off (so the chain stays verifiable from that checkpoint on).
pub async fn apply_retention(app: &AppState) -> Result<u64, String> {
    let cutoff = app.clock.now() - chrono::Duration::days(app.config.audit_retention_days as i64);
    let cps = read_checkpoints(&app.config.audit_checkpoints, &app.audit_keys).map_err(|e| e.to_string())?;
    let Some(point) = cps.iter().filter(|c| c.at < cutoff).max_by_key(|c| c.checkpoint.seq) else {
        return Ok(0);
    };
    app.store
        .prune_audit(&point.checkpoint)
        .await
        .map_err(|e| e.to_string())
}

/// The sealer worker: a pass every `JINLIU_AUDIT_SEAL_INTERVAL_MS` (and more at once while passes
/// come back full), retention once an hour.
pub async fn run(app: AppState) {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(app.config.audit_seal_interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_checkpoint = None;
    let mut last_retention: Option<Timestamp> = None;
    loop {
        tick.tick().await;
        let mut result = seal_once(&app, &mut last_checkpoint).await;
        // A full pass means more rows are waiting: keep going before the next tick, so the chain
        // keeps up when more than `SEAL_BATCH` rows a second are written (each pass is one short
        // transaction, so writers get the database between passes).
        while let Ok(pass) = &result
            && pass.leader
            && pass.sealed == SEAL_BATCH as usize
        {
            result = seal_once(&app, &mut last_checkpoint).await;
        }
        match result {
            Ok(pass) if pass.leader => {
                let now = app.clock.now();
                if last_retention.is_none_or(|t| (now - t).num_minutes() >= 60) {
                    last_retention = Some(now);
                    match apply_retention(&app).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(deleted = n, "audit retention pruned sealed rows"),
                        Err(e) => tracing::warn!(error = %e, "audit retention failed"),
                    }
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "audit sealer pass failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> AuditKeys {
        AuditKeys::new(&MasterKey::from_hex(&"11".repeat(32)).unwrap_or_else(|e| panic!("{e}")))
    }

    #[test]
    fn checkpoints_read_back_and_an_edited_line_is_refused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("cp.jsonl");
        let k = keys();
        let now = Utc::now();
        for seq in [3, 7] {
            let cp = AuditCheckpoint {
                seq,
                mac: format!("{seq:064}"),
            };
            append_checkpoint(&path, &k, &cp, now).unwrap_or_else(|e| panic!("{e}"));
        }
        let read = read_checkpoints(&path, &k).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read.iter().map(|c| c.checkpoint.seq).collect::<Vec<_>>(), vec![3, 7]);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(&path, text.replacen("\"seq\":7", "\"seq\":5", 1)).unwrap_or_else(|e| panic!("{e}"));
        let err = read_checkpoints(&path, &k).err();
        assert!(matches!(err, Some(CheckpointError::Bad { line: 2, .. })), "{err:?}");
    }

    #[test]
    fn the_checkpoint_files_folder_is_made_when_missing() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("not/yet/cp.jsonl");
        let cp = AuditCheckpoint {
            seq: 1,
            mac: "ab".repeat(32),
        };
        append_checkpoint(&path, &keys(), &cp, Utc::now()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read_checkpoints(&path, &keys()).map(|c| c.len()).unwrap_or(0), 1);
    }

    #[test]
    fn a_missing_checkpoint_file_is_an_empty_list() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let read = read_checkpoints(&dir.path().join("none.jsonl"), &keys()).unwrap_or_else(|e| panic!("{e}"));
        assert!(read.is_empty());
    }
}
