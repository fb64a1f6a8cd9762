//! The backups in a directory: each subdirectory with its manifest's facts, and whether it is
//! valid (manifest present and intact), incomplete (no manifest: interrupted or still running)
//! or damaged.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::manifest::{Kind, Manifest};
use super::{io_err, BackupError};

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "status", content = "reason", rename_all = "kebab-case")]
pub enum BackupStatus {
    Valid,
    Incomplete,
    Damaged(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct BackupSummary {
    pub name: String,
    pub path: PathBuf,
    #[serde(flatten)]
    pub status: BackupStatus,
    pub kind: Option<Kind>,
    /// When the backup started (for incomplete ones: the directory's modification time).
    pub created_at: Option<DateTime<Utc>>,
    pub stored_bytes: u64,
    pub raw_bytes: u64,
    pub tables: usize,
    pub encrypted: bool,
    pub base: Option<String>,
}

impl BackupSummary {
    pub fn is_valid(&self) -> bool {
        self.status == BackupStatus::Valid
    }
}

/// Every backup under `dir`, oldest first. A missing `dir` is an empty list.
pub fn list(dir: &Path) -> Result<Vec<BackupSummary>, BackupError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(dir)(e)),
    };
    let mut out = Vec::new();
    for e in entries {
        let e = e.map_err(io_err(dir))?;
        let path = e.path();
        if !path.is_dir() || e.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let name = e.file_name().to_string_lossy().into_owned();
        let mtime = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .map(DateTime::<Utc>::from);
        let summary = match Manifest::read(&path) {
            Ok(m) => BackupSummary {
                name,
                path,
                status: BackupStatus::Valid,
                kind: Some(m.kind),
                created_at: Some(m.started_at),
                stored_bytes: m.stored_bytes(),
                raw_bytes: m.raw_bytes(),
                tables: m.tables.len(),
                encrypted: m.is_encrypted(),
                base: m.base.map(|b| b.name),
            },
            Err(err) => BackupSummary {
                name,
                status: match err {
                    BackupError::NoManifest { .. } => BackupStatus::Incomplete,
                    other => BackupStatus::Damaged(other.to_string()),
                },
                stored_bytes: dir_size(&path),
                path,
                kind: None,
                created_at: mtime,
                raw_bytes: 0,
                tables: 0,
                encrypted: false,
                base: None,
            },
        };
        out.push(summary);
    }
    out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.name.cmp(&b.name)));
    Ok(out)
}

fn dir_size(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
