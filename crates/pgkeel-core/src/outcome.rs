//! How a failure counts: one classification for every error of the library, so the CLI's exit
//! codes, deploy's report and the fleet runner agree on what went wrong.
//!
//! Each error enum implements [`Classify`] with an exhaustive match (no catch-all), so a new
//! variant cannot be added without deciding its kind. A leaf: it uses nothing of the crate;
//! the impls live beside each error.

use serde::Serialize;

/// What kind of failure an error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// Problems found in the files or the database (broken or changed migration files, drift,
    /// a damaged backup, findings at the gate).
    Findings,
    /// The database could not be reached, or the connection path cannot hold a session.
    Connection,
    /// A backup failed or did not verify; nothing was migrated.
    Backup,
    /// A migration's (or rollback's) SQL failed on the server; its transaction was rolled back.
    Migration,
    /// Another process held the deploy lock for longer than the configured wait.
    LockTimeout,
    /// Migrated, but the schema is not the expected one or new critical findings appeared.
    PostCheck,
    /// Migrated, but the health URL did not answer 2xx in time.
    Unhealthy,
    /// Ctrl-C / SIGTERM.
    Interrupted,
    /// Bad options or configuration; nothing was tried.
    Usage,
    /// An encrypted backup that the given identity or passphrase does not open (the backup may
    /// be fine: the key is wrong).
    Keys,
    /// A bug in pgkeel, or the machine failing under it (a worker died, a report cannot be
    /// serialised).
    Internal,
}

/// An error that knows its [`FailureKind`].
pub trait Classify {
    fn kind(&self) -> FailureKind;
}
