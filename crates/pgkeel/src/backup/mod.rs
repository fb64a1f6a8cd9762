//! Backups and restores: `pgkeel backup full|incremental|list|verify|cleanup` and
//! `pgkeel restore`.
//!
//! The hybrid design: one leader connection opens a REPEATABLE READ, READ ONLY transaction and
//! exports its snapshot; `pg_dump --snapshot` writes the schema ([`pgtools`]); N workers import
//! the snapshot and stream `COPY … TO STDOUT` per table or per ctid range ([`full`]); every
//! stream is compressed, optionally encrypted and hashed on its way to disk ([`codec`]); the
//! manifest is written last ([`manifest`]). [`restore`] runs pre-data, parallel `COPY FROM`,
//! sequences and post-data; [`verify`] re-reads everything; [`catalog`] lists backups and
//! [`retention`] decides what cleanup may delete; [`incremental`] stores only what changed since
//! a base backup. [`keys`] turns the encryption settings into age recipients and identities.
//! [`verified`] takes and verifies the backup a production change relies on.
//!
//! This module must not print: progress goes through [`Progress`], results are returned.

pub mod catalog;
pub mod codec;
pub mod full;
pub mod incremental;
pub mod keys;
pub mod manifest;
pub mod pgtools;
pub mod restore;
pub mod retention;
pub mod session;
pub mod verified;
pub mod verify;

use std::path::PathBuf;

pub use catalog::{list, BackupStatus, BackupSummary};
pub use full::{full, BackupOptions};
pub use incremental::{incremental, IncrementalOptions, Since};
pub use keys::KeyConfig;
pub use manifest::{Kind, Manifest};
pub use restore::{restore, RestoreOptions, RestoreSummary};
pub use retention::{cleanup, CleanupPlan};
pub use verified::{full_verified, VerifiedBackup};
pub use verify::{verify, VerifyOptions, VerifyProblem, VerifyReport};

use crate::db::DbError;

/// Progress of a running backup or restore, reported per table. Every method has a no-op
/// default; the CLI draws bars from it.
pub trait Progress: Send + Sync {
    /// A table starts; `estimated_bytes` is its size on the server (0 when unknown).
    fn table_started(&self, _table: &str, _estimated_bytes: u64) {}
    /// `bytes` more plaintext bytes of `table` went through.
    fn table_bytes(&self, _table: &str, _bytes: u64) {}
    /// The last chunk of `table` is done.
    fn table_done(&self, _table: &str) {}
    /// A phase started (`schema`, `data`, `post-data`, …).
    fn phase(&self, _name: &str) {}
}

/// A [`Progress`] that reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Quiet;
impl Progress for Quiet {}

/// Errors of backups and restores. Each says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the local {tool} is version {local} but the server runs PostgreSQL {server}: {tool} cannot read a newer server. \
         Install a matching client (Debian/Ubuntu: apt-get install postgresql-client-{server_major} from apt.postgresql.org; \
         macOS: brew install postgresql@{server_major}) and put its bin directory first in PATH"
    )]
    ToolTooOld {
        tool: String,
        local: String,
        server: String,
        server_major: u32,
    },
    #[error("cannot run {tool}: {reason}; install the PostgreSQL client tools (apt-get install postgresql-client) and make sure {tool} is in PATH")]
    ToolMissing { tool: String, reason: String },
    #[error("{tool} failed ({status}): {stderr}")]
    ToolFailed {
        tool: String,
        status: String,
        stderr: String,
    },
    #[error("backup {} already exists: choose another --name or delete it", path.display())]
    Exists { path: PathBuf },
    #[error("{} is not a pgkeel backup (no manifest.json): it is incomplete (interrupted or still running) or not a backup directory", path.display())]
    NoManifest { path: PathBuf },
    #[error("manifest {} is damaged: {reason}; this backup cannot be trusted, use another one", path.display())]
    BadManifest { path: PathBuf, reason: String },
    #[error("manifest {} has format version {found}, this pgkeel reads up to {supported}: upgrade pgkeel", path.display())]
    UnsupportedFormat {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("{} is damaged: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("cannot encrypt {}: {reason}; nothing was written in plaintext", path.display())]
    Encrypt { path: PathBuf, reason: String },
    #[error("{} is encrypted and none of the given keys opens it: wrong identity file or passphrase (check BACKUP_ENCRYPTION_IDENTITY_FILE / BACKUP_ENCRYPTION_PASSPHRASE)", path.display())]
    WrongKey { path: PathBuf },
    #[error("{} is encrypted: set BACKUP_ENCRYPTION_IDENTITY_FILE (age identity) or BACKUP_ENCRYPTION_PASSPHRASE, or pass --identity", path.display())]
    KeysNeeded { path: PathBuf },
    #[error("invalid age recipient `{recipient}` in the encryption settings: expected an age public key (age1…); fix BACKUP_ENCRYPTION_RECIPIENTS / backup.encryption-recipients")]
    BadRecipient { recipient: String },
    #[error("{} holds no age identity (AGE-SECRET-KEY-1…): point BACKUP_ENCRYPTION_IDENTITY_FILE at the key file made by age-keygen", path.display())]
    BadIdentityFile { path: PathBuf },
    #[error("target database {target} is not empty ({objects} tables, views or sequences): restore into an empty database, or pass --clean to drop everything in it first")]
    TargetNotEmpty { target: String, objects: i64 },
    #[error("table {table} is not in backup {backup}: check the name (schema.table) against `pgkeel backup verify`")]
    UnknownTable { table: String, backup: String },
    #[error("no backup found in {}: take one with `pgkeel backup full`", dir.display())]
    NoBase { dir: PathBuf },
    #[error("base backup {name} of this incremental is missing or invalid in {}: restore needs it; restore it from your off-site copy", dir.display())]
    MissingBase { name: String, dir: PathBuf },
    #[error("`{input}` is not a time: use `last`, a date (2024-05-01) or an RFC 3339 time (2024-05-01T12:00:00Z)")]
    BadSince { input: String },
    #[error("{table}.{column} is {type_name}, which pgkeel cannot compare with a time: name a timestamp, timestamptz, date or bigint (epoch milliseconds) column for {table}, or leave it out to back the table up whole")]
    BadChangeColumn {
        table: String,
        column: String,
        type_name: String,
    },
    #[error("backup {name} is not a full backup: an incremental must build on a full one; pass --base with a full backup's name")]
    BaseNotFull { name: String },
    #[error("the backup {} was written but does not verify: {problems}; check the disk and the backup directory, then take a new one", path.display())]
    NotVerified { path: PathBuf, problems: String },
    #[error("the backup was interrupted")]
    Interrupted,
    #[error("a backup worker stopped unexpectedly: {reason}")]
    Worker { reason: String },
}

impl BackupError {
    /// True when the command line or configuration is wrong (nothing was tried).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            BackupError::Exists { .. }
                | BackupError::BadRecipient { .. }
                | BackupError::BadIdentityFile { .. }
                | BackupError::TargetNotEmpty { .. }
                | BackupError::UnknownTable { .. }
                | BackupError::NoBase { .. }
                | BackupError::BadSince { .. }
                | BackupError::BadChangeColumn { .. }
                | BackupError::BaseNotFull { .. }
                | BackupError::KeysNeeded { .. }
                | BackupError::ToolTooOld { .. }
                | BackupError::ToolMissing { .. }
        )
    }

    /// True when a backup's files are damaged or cannot be opened with the given keys.
    pub fn is_integrity(&self) -> bool {
        matches!(
            self,
            BackupError::NoManifest { .. }
                | BackupError::BadManifest { .. }
                | BackupError::Corrupt { .. }
                | BackupError::NotVerified { .. }
                | BackupError::WrongKey { .. }
                | BackupError::MissingBase { .. }
        )
    }
}

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> BackupError {
    let path = path.into();
    move |source| BackupError::Io { path, source }
}

impl crate::outcome::Classify for BackupError {
    fn kind(&self) -> crate::outcome::FailureKind {
        use crate::outcome::FailureKind as K;
        match self {
            BackupError::Db(d) => match crate::outcome::Classify::kind(d) {
                // A query of the backup itself that failed is a failed backup.
                K::Migration => K::Backup,
                k => k,
            },
            BackupError::Interrupted => K::Interrupted,
            BackupError::Exists { .. }
            | BackupError::BadRecipient { .. }
            | BackupError::BadIdentityFile { .. }
            | BackupError::TargetNotEmpty { .. }
            | BackupError::UnknownTable { .. }
            | BackupError::NoBase { .. }
            | BackupError::BadSince { .. }
            | BackupError::BadChangeColumn { .. }
            | BackupError::BaseNotFull { .. }
            | BackupError::KeysNeeded { .. }
            | BackupError::ToolTooOld { .. }
            | BackupError::ToolMissing { .. }
            | BackupError::UnsupportedFormat { .. } => K::Usage,
            BackupError::NoManifest { .. }
            | BackupError::BadManifest { .. }
            | BackupError::Corrupt { .. }
            | BackupError::WrongKey { .. }
            | BackupError::MissingBase { .. } => K::Findings,
            BackupError::Io { .. }
            | BackupError::ToolFailed { .. }
            | BackupError::Encrypt { .. }
            | BackupError::NotVerified { .. }
            | BackupError::Worker { .. } => K::Backup,
        }
    }
}
