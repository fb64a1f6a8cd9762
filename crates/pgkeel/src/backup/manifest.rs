//! The manifest: the one file that makes a backup directory a backup. It records the format
//! version, the server, the snapshot, every file with its size, rows and hashes, the sequences,
//! the migration ledger at backup time and its own hash. It is written last, to a temporary name
//! and renamed, so a directory without `manifest.json` is never a valid backup.

use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{io_err, BackupError};

/// The manifest layout this pgkeel writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;
/// The manifest's file name inside a backup directory.
pub const MANIFEST: &str = "manifest.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Full,
    Incremental,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Full => "full",
            Kind::Incremental => "incremental",
        })
    }
}

/// One file of the backup, relative to the backup directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FileEntry {
    pub path: String,
    /// Bytes on disk (compressed, encrypted).
    pub stored_bytes: u64,
    /// SHA-256 of the bytes on disk.
    pub sha256: String,
    /// Plaintext bytes (COPY text, or the schema archive).
    pub raw_bytes: u64,
    /// COPY rows in this file (0 for the schema).
    pub rows: u64,
    /// Order-independent hash of the rows (hex), see `codec::RowHasher`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub content_hash: String,
}

/// How an incremental backup holds a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "mode", rename_all = "kebab-case")]
pub enum TableMode {
    /// Every row is in this backup's files.
    Full,
    /// Content equal to the base backup's: nothing stored, the base has it.
    Unchanged,
    /// Only rows whose `column` is at or after `since`; applied by primary key over the base.
    Changed {
        column: String,
        key: Vec<String>,
        since: DateTime<Utc>,
    },
}

/// One table's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TableEntry {
    pub schema: String,
    pub name: String,
    /// Column names (unquoted) in COPY order; generated columns are left out.
    pub columns: Vec<String>,
    /// Rows in the table at the snapshot (for `changed`, in the whole table, not in the files).
    pub rows: u64,
    /// Order-independent hash of all the table's rows at the snapshot (hex).
    pub content_hash: String,
    #[serde(flatten)]
    pub mode: TableMode,
    pub files: Vec<FileEntry>,
}

impl TableEntry {
    /// `schema.name`, unquoted, as users type it.
    pub fn display_name(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

/// A sequence's value at backup time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SequenceValue {
    pub schema: String,
    pub name: String,
    pub last_value: i64,
    pub is_called: bool,
}

/// One row of the migration ledger at backup time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LedgerEntry {
    pub id: String,
    pub hash: String,
    pub status: String,
    pub applied_at: Option<NaiveDateTime>,
}

/// How the files are encrypted (public information only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EncryptionInfo {
    /// `age`.
    pub scheme: String,
    /// The age public keys the files are encrypted to (the per-backup key included).
    pub recipients: Vec<String>,
    /// The per-backup key, sealed with the passphrase, when a passphrase was configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passphrase_key_file: Option<String>,
}

/// The database a backup was taken of: `latest`, incremental bases and retention keep to one
/// source, and a restore over another database's data must be asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SourceDb {
    /// The cluster's `pg_control_system().system_identifier`; `None` when the role may not read
    /// it (then the name alone identifies the database).
    pub system_identifier: Option<String>,
    pub name: String,
    pub oid: u32,
}

impl SourceDb {
    /// Reads the identity of the database `client` is connected to.
    pub async fn of(client: &crate::db::Client) -> Result<SourceDb, crate::db::DbError> {
        let row = client
            .query_one(
                "SELECT current_database()::text, (SELECT oid FROM pg_database WHERE datname = current_database())",
                &[],
            )
            .await
            .map_err(|e| crate::db::DbError::query("reading the database's identity", e))?;
        // pg_control_system() is for superusers and pg_monitor members only: best effort.
        let system_identifier = client
            .query_one(
                "SELECT system_identifier::text FROM pg_control_system()",
                &[],
            )
            .await
            .ok()
            .map(|r| r.get(0));
        Ok(SourceDb {
            system_identifier,
            name: row.get(0),
            oid: row.get(1),
        })
    }

    /// The same database: the same name on the same cluster (when both clusters are known).
    pub fn same_as(&self, other: &SourceDb) -> bool {
        self.name == other.name
            && match (&self.system_identifier, &other.system_identifier) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

impl std::fmt::Display for SourceDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.system_identifier {
            Some(id) => write!(f, "database {} of cluster {id}", self.name),
            None => write!(f, "database {}", self.name),
        }
    }
}

/// The base an incremental backup builds on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BaseRef {
    pub name: String,
    pub manifest_sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Manifest {
    pub format_version: u32,
    pub pgkeel_version: String,
    pub kind: Kind,
    pub name: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub server_version: String,
    pub server_version_num: i32,
    pub database: String,
    pub snapshot: String,
    pub compression: String,
    pub compression_level: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<EncryptionInfo>,
    /// `pg_dump --format=custom --schema-only` of the database at the snapshot.
    pub schema: FileEntry,
    pub tables: Vec<TableEntry>,
    pub sequences: Vec<SequenceValue>,
    pub ledger: Vec<LedgerEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<BaseRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    /// Which database this is a backup of (`None` in backups of pgkeel before 2026-12-03).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceDb>,
    /// SHA-256 of this document with this field empty.
    pub manifest_sha256: String,
}

impl Manifest {
    pub fn is_encrypted(&self) -> bool {
        self.encryption.is_some()
    }

    /// Bytes on disk of every file.
    pub fn stored_bytes(&self) -> u64 {
        self.schema.stored_bytes
            + self
                .tables
                .iter()
                .flat_map(|t| &t.files)
                .map(|f| f.stored_bytes)
                .sum::<u64>()
    }

    /// Plaintext bytes of every file.
    pub fn raw_bytes(&self) -> u64 {
        self.schema.raw_bytes
            + self
                .tables
                .iter()
                .flat_map(|t| &t.files)
                .map(|f| f.raw_bytes)
                .sum::<u64>()
    }

    pub fn duration_ms(&self) -> i64 {
        (self.finished_at - self.started_at).num_milliseconds()
    }

    fn digest(&self) -> String {
        let mut copy = self.clone();
        copy.manifest_sha256 = String::new();
        let text = serde_json::to_vec(&copy).expect("a manifest always serializes");
        hex::encode(Sha256::digest(&text))
    }

    /// Seals the manifest and writes it as `dir/manifest.json` (temporary file, fsync, rename,
    /// fsync of the directory).
    pub fn write(&mut self, dir: &Path) -> Result<(), BackupError> {
        use std::io::Write;
        self.manifest_sha256 = self.digest();
        let tmp = dir.join(".manifest.json.tmp");
        let text = serde_json::to_vec_pretty(self).expect("a manifest always serializes");
        {
            let _ = std::fs::remove_file(&tmp); // a leftover of an interrupted write
            let mut f = super::private_file(&tmp).map_err(io_err(&tmp))?;
            f.write_all(&text).map_err(io_err(&tmp))?;
            f.sync_all().map_err(io_err(&tmp))?;
        }
        let path = dir.join(MANIFEST);
        std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Reads and checks `dir/manifest.json` (format version and its own hash).
    pub fn read(dir: &Path) -> Result<Self, BackupError> {
        let path = dir.join(MANIFEST);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(BackupError::NoManifest {
                    path: dir.to_path_buf(),
                })
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        Manifest::parse(&text, &path)
    }

    /// Parses and checks a manifest's bytes (format version and its own hash); `path` names it
    /// in errors.
    pub fn parse(text: &[u8], path: &Path) -> Result<Self, BackupError> {
        #[derive(Deserialize)]
        struct Version {
            format_version: u32,
        }
        let bad = |reason: String| BackupError::BadManifest {
            path: path.to_path_buf(),
            reason,
        };
        let v: Version = serde_json::from_slice(text).map_err(|e| bad(e.to_string()))?;
        if v.format_version > FORMAT_VERSION {
            return Err(BackupError::UnsupportedFormat {
                path: path.to_path_buf(),
                found: v.format_version,
                supported: FORMAT_VERSION,
            });
        }
        let m: Manifest = serde_json::from_slice(text).map_err(|e| bad(e.to_string()))?;
        let want = m.digest();
        if want != m.manifest_sha256 {
            return Err(bad(format!(
                "its hash is {want} but it records {}: it was edited or damaged",
                m.manifest_sha256
            )));
        }
        Ok(m)
    }

    /// Every file of the backup with the table it belongs to (`None` for the schema).
    pub fn files(&self) -> Vec<(Option<&TableEntry>, &FileEntry)> {
        let mut out = vec![(None, &self.schema)];
        for t in &self.tables {
            for f in &t.files {
                out.push((Some(t), f));
            }
        }
        out
    }
}

/// `dir/name` for a backup called `name`.
pub fn backup_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}
