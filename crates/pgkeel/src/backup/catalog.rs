//! The backups in a directory or a bucket prefix: each backup with its manifest's facts, and
//! whether it is valid (manifest present and intact, every file there with its size), incomplete (no manifest:
//! interrupted or still running) or damaged (with the reason).

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::bucket::Bucket;
use super::manifest::{Kind, Manifest, SourceDb};
use super::{io_err, BackupError};

#[derive(Debug, Clone, Serialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(tag = "status", content = "reason", rename_all = "kebab-case")]
pub enum BackupStatus {
    Valid,
    Incomplete,
    Damaged(String),
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
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
    /// The database it is a backup of (unknown for old and unreadable backups).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceDb>,
}

impl BackupSummary {
    pub fn is_valid(&self) -> bool {
        self.status == BackupStatus::Valid
    }
}

/// Every backup under `dir` (a local directory or an `s3://` bucket prefix), oldest first. A
/// missing directory is an empty list.
pub async fn list(dir: &Path) -> Result<Vec<BackupSummary>, BackupError> {
    match Bucket::open(dir)? {
        Some(bucket) => bucket.list().await,
        None => list_local(dir),
    }
}

/// Every backup in the local directory `dir`, oldest first.
pub fn list_local(dir: &Path) -> Result<Vec<BackupSummary>, BackupError> {
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
        let read = Manifest::read(&path);
        let loose = if read.is_err() { dir_size(&path) } else { 0 };
        let size_of = |rel: &str| std::fs::metadata(path.join(rel)).ok().map(|m| m.len());
        out.push(summarize(name, path.clone(), read, size_of, mtime, loose));
    }
    sort(&mut out);
    Ok(out)
}

/// One backup's summary from its manifest (or why it could not be read), with `size_of` giving
/// each stored file's size (`None`: missing). `modified` and `loose_bytes` describe a backup
/// with no readable manifest.
pub(crate) fn summarize(
    name: String,
    path: PathBuf,
    read: Result<Manifest, BackupError>,
    size_of: impl Fn(&str) -> Option<u64>,
    modified: Option<DateTime<Utc>>,
    loose_bytes: u64,
) -> BackupSummary {
    match read {
        Ok(m) => BackupSummary {
            status: match missing_or_truncated(&m, size_of) {
                Some(reason) => BackupStatus::Damaged(reason),
                None => BackupStatus::Valid,
            },
            name,
            path,
            kind: Some(m.kind),
            created_at: Some(m.started_at),
            stored_bytes: m.stored_bytes(),
            raw_bytes: m.raw_bytes(),
            tables: m.tables.len(),
            encrypted: m.is_encrypted(),
            base: m.base.map(|b| b.name),
            source: m.source,
        },
        Err(err) => BackupSummary {
            name,
            status: match err {
                BackupError::NoManifest { .. } => BackupStatus::Incomplete,
                other => BackupStatus::Damaged(other.to_string()),
            },
            stored_bytes: loose_bytes,
            path,
            kind: None,
            created_at: modified,
            raw_bytes: 0,
            tables: 0,
            encrypted: false,
            base: None,
            source: None,
        },
    }
}

/// Oldest first; names break ties.
pub(crate) fn sort(backups: &mut [BackupSummary]) {
    backups.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.name.cmp(&b.name)));
}

/// The newest valid backup (of `kind`, when given) of the database `source`; with no `source`
/// (the database cannot be reached), the newest valid backup when every backup in `dir` is of
/// one database, else [`BackupError::SeveralSources`]. Backups older than the source record
/// count only where no backup names its source.
pub async fn latest(
    dir: &Path,
    source: Option<&SourceDb>,
    kind: Option<Kind>,
) -> Result<BackupSummary, BackupError> {
    let valid: Vec<BackupSummary> = list(dir)
        .await?
        .into_iter()
        .filter(|b| b.is_valid() && kind.is_none_or(|k| b.kind == Some(k)))
        .collect();
    let any_sourced = valid.iter().any(|b| b.source.is_some());
    let of_source = |b: &BackupSummary| match (&b.source, source) {
        (Some(s), Some(want)) => s.same_as(want),
        (None, _) => !any_sourced,
        (Some(_), None) => true,
    };
    if source.is_none() {
        let mut sources: Vec<String> = Vec::new();
        for s in valid.iter().filter_map(|b| b.source.as_ref()) {
            let s = s.to_string();
            if !sources.contains(&s) {
                sources.push(s);
            }
        }
        if sources.len() > 1 {
            return Err(BackupError::SeveralSources {
                dir: dir.to_path_buf(),
                sources,
            });
        }
    }
    valid
        .into_iter()
        .rfind(of_source)
        .ok_or_else(|| BackupError::NoBase {
            dir: dir.to_path_buf(),
        })
}

/// The first file of `m` that is missing or not the size the manifest says: cheap (one `stat`
/// per file), so `list` and `latest` never call a truncated backup valid. Contents are checked
/// by `verify` and before every restore.
fn missing_or_truncated(m: &Manifest, size_of: impl Fn(&str) -> Option<u64>) -> Option<String> {
    m.files()
        .into_iter()
        .find_map(|(_, f)| match size_of(&f.path) {
            None => Some(format!("{} is missing", f.path)),
            Some(len) if len != f.stored_bytes => Some(format!(
                "{} has {} bytes, the manifest says {}",
                f.path, len, f.stored_bytes
            )),
            Some(_) => None,
        })
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
