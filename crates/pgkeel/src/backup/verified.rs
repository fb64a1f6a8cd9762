//! A full backup taken and verified before a production change (`deploy`, `migrate --env
//! production`): one function, so both take the same backup and trust it the same way.
//!
//! It owns the collision-safe name (replicas deploying in the same second get `-2`, `-3`, …; a
//! name the user chose is never changed) and the verification: decrypt and decompress every
//! file when the keys are at hand, else check the stored bytes against the manifest. It does not
//! decide when a backup is needed (that is policy, in `ops`).

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{full, verify, BackupError, BackupOptions, Manifest, Progress, Quiet, VerifyOptions};
use crate::config::Settings;

/// A backup that was written and verified.
#[derive(Debug, Clone)]
pub struct VerifiedBackup {
    pub manifest: Manifest,
    pub path: PathBuf,
    /// Whether verification decrypted and decompressed every file (the keys were at hand);
    /// otherwise only the stored bytes were checked against the manifest.
    pub decrypted: bool,
}

/// Takes a full backup named `opts.name`, or `<prefix>-<started, UTC>` with the next free
/// `-N` when that name is taken, and verifies it.
pub async fn full_verified(
    settings: &Settings,
    opts: &BackupOptions,
    prefix: &str,
    started: DateTime<Utc>,
    progress: Arc<dyn Progress>,
) -> Result<VerifiedBackup, BackupError> {
    let mut opts = opts.clone();
    let (base, ours) = match &opts.name {
        Some(n) => (n.clone(), false),
        None => (
            format!("{prefix}-{}", started.format("%Y%m%dT%H%M%SZ")),
            true,
        ),
    };
    let mut names = super::full::candidate_names((!ours).then_some(base.as_str()), &base)
        .into_iter()
        .peekable();
    let manifest = loop {
        // There is always a candidate; the last one's failure is returned.
        opts.name = names.next();
        match full(settings, &opts, progress.clone()).await {
            Ok(m) => break m,
            Err(BackupError::Exists { .. }) if names.peek().is_some() => {}
            Err(e) => return Err(e),
        }
    };
    let path = super::manifest::backup_path(&opts.dir, &manifest.name);
    // Decrypting needs the private key, which a deploy machine often does not hold: then the
    // stored bytes are checked against the manifest's checksums instead.
    let decrypted = !manifest.is_encrypted()
        || opts.keys.passphrase.is_some()
        || opts.keys.identity_file.is_some();
    let problems = if decrypted {
        let verify_opts = VerifyOptions {
            keys: opts.keys.clone(),
            restore_test: None,
            workers: 2,
        };
        verify(&path, &verify_opts, Arc::new(Quiet)).await?.problems
    } else {
        let fetched = super::bucket::fetch(&path).await?;
        let local = fetched.as_ref().map_or(path.as_path(), |f| f.path());
        super::verify::verify_stored(local, &manifest)
    };
    if !problems.is_empty() {
        let first: Vec<String> = problems
            .iter()
            .take(3)
            .map(|p| format!("{}: {}", p.subject, p.problem))
            .collect();
        return Err(BackupError::NotVerified {
            path,
            problems: first.join("; "),
        });
    }
    Ok(VerifiedBackup {
        manifest,
        path,
        decrypted,
    })
}
