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
//! [`verified`] takes and verifies the backup a production change relies on. [`bucket`] keeps
//! backups in an S3-compatible bucket (`s3://bucket/prefix` wherever a directory is taken).
//!
//! This module must not print: progress goes through [`Progress`], results are returned.

pub mod bucket;
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

pub use catalog::{latest, list, BackupStatus, BackupSummary};
pub use full::{full, BackupOptions};
pub use incremental::{incremental, IncrementalOptions, Since};
pub use keys::KeyConfig;
pub use manifest::{Kind, Manifest, SourceDb};
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
    #[error("`{name}` is not a backup name: {reason}; use letters, digits, `-`, `_` and `.` (not first)")]
    BadName { name: String, reason: &'static str },
    #[error("{url} is not a bucket location: {reason}")]
    BadBucketUrl { url: String, reason: String },
    #[error("{url}: {doing} failed: {reason}\ncheck AWS_ENDPOINT_URL, AWS_REGION and the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), that the bucket exists, and AWS_ALLOW_HTTP=true for a plain-http server")]
    Bucket {
        url: String,
        doing: String,
        reason: String,
    },
    #[error("no backup {name} in {url}: see `pgkeel backup list --dir {url}`")]
    NotInBucket { url: String, name: String },
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
    #[error("cannot decrypt {}: wrong identity or passphrase (the backup may be fine: check --identity / BACKUP_ENCRYPTION_IDENTITY_FILE / BACKUP_ENCRYPTION_PASSPHRASE)", path.display())]
    WrongKey { path: PathBuf },
    #[error("{} is encrypted: set BACKUP_ENCRYPTION_IDENTITY_FILE (age identity) or BACKUP_ENCRYPTION_PASSPHRASE, or pass --identity", path.display())]
    KeysNeeded { path: PathBuf },
    #[error("invalid age recipient `{recipient}` in the encryption settings: expected an age public key (age1…); fix BACKUP_ENCRYPTION_RECIPIENTS / backup.encryption-recipients")]
    BadRecipient { recipient: String },
    #[error("{} holds no age identity (AGE-SECRET-KEY-1…): point BACKUP_ENCRYPTION_IDENTITY_FILE at the key file made by age-keygen", path.display())]
    BadIdentityFile { path: PathBuf },
    #[error("cannot read the age identity file {}: {source}; check --identity / BACKUP_ENCRYPTION_IDENTITY_FILE", path.display())]
    IdentityUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
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
    #[error("backup {backup} is damaged, so nothing was written to the target: {problems}; restore another backup (`pgkeel backup list`), or pass --no-verify to restore what is readable (dangerous: the target may end up half-restored)")]
    DamagedBeforeRestore { backup: String, problems: String },
    #[error("{source}\nthe target {target} was emptied by --clean before this failure and now holds only part of the backup: restore a backup that verifies (`pgkeel backup verify NAME`) into it again")]
    FailedAfterClean {
        target: String,
        source: Box<BackupError>,
    },
    #[error("{} holds backups of {}: `latest` cannot tell which is meant while the database is unreachable; name the backup (`pgkeel backup list`)", dir.display(), sources.join(" and "))]
    SeveralSources { dir: PathBuf, sources: Vec<String> },
    #[error("backup {backup} is of {source_db}, not of {target_db}, whose data --clean would replace: check that this is the backup you mean, then pass --from-other-database")]
    OtherDatabase {
        backup: String,
        source_db: String,
        target_db: String,
    },
    #[error("{source}\nthe backup was restored completely into database {restored}, but it could not be swapped in for {target}, which is unchanged: rename them yourself (ALTER DATABASE … RENAME, with no sessions connected), or drop {restored}")]
    SwapFailed {
        target: String,
        restored: String,
        source: Box<BackupError>,
    },
    #[error("the backup was interrupted")]
    Interrupted,
    #[error("a backup worker stopped unexpectedly: {reason}")]
    Worker { reason: String },
}

/// Creates `path` (which must not exist) readable and writable by its owner only (`0600`):
/// backup files hold table data.
pub(crate) fn private_file(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::File::options();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path)
}

/// Where backups given as `dir` live, seen from `cwd`: a relative directory is taken from `cwd`,
/// an absolute one and an `s3://` bucket as they are.
pub fn locate(dir: &std::path::Path, cwd: &std::path::Path) -> PathBuf {
    if dir.is_absolute() || bucket::is_bucket(dir) {
        dir.to_path_buf()
    } else {
        cwd.join(dir)
    }
}

/// A directory builder for backup directories: owner only (`0700`).
pub(crate) fn private_dir_builder() -> std::fs::DirBuilder {
    #[allow(unused_mut)]
    let mut b = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b
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
            BackupError::SwapFailed { source, .. } => {
                crate::outcome::Classify::kind(source.as_ref())
            }
            BackupError::FailedAfterClean { source, .. } => {
                crate::outcome::Classify::kind(source.as_ref())
            }
            BackupError::Exists { .. }
            | BackupError::BadName { .. }
            | BackupError::BadBucketUrl { .. }
            | BackupError::NotInBucket { .. }
            | BackupError::BadRecipient { .. }
            | BackupError::BadIdentityFile { .. }
            | BackupError::IdentityUnreadable { .. }
            | BackupError::TargetNotEmpty { .. }
            | BackupError::UnknownTable { .. }
            | BackupError::NoBase { .. }
            | BackupError::BadSince { .. }
            | BackupError::BadChangeColumn { .. }
            | BackupError::BaseNotFull { .. }
            | BackupError::KeysNeeded { .. }
            | BackupError::ToolTooOld { .. }
            | BackupError::ToolMissing { .. }
            | BackupError::SeveralSources { .. }
            | BackupError::OtherDatabase { .. }
            | BackupError::UnsupportedFormat { .. } => K::Usage,
            BackupError::NoManifest { .. }
            | BackupError::BadManifest { .. }
            | BackupError::Corrupt { .. }
            | BackupError::DamagedBeforeRestore { .. }
            | BackupError::MissingBase { .. } => K::Findings,
            BackupError::WrongKey { .. } => K::Keys,
            BackupError::Io { .. }
            | BackupError::Bucket { .. }
            | BackupError::ToolFailed { .. }
            | BackupError::Encrypt { .. }
            | BackupError::NotVerified { .. }
            | BackupError::Worker { .. } => K::Backup,
        }
    }
}
