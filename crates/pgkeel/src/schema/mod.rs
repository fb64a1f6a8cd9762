//! The schema model: introspect a live database into a [`Snapshot`], compare two snapshots
//! into an ordered [`Diff`], and render DDL.
//!
//! ```text
//! introspect(client, &IntrospectOptions) -> Snapshot        (introspect.rs, constant query count)
//! Snapshot::to_json() / Snapshot::from_json()               (model.rs, stable sorted JSON)
//! Snapshot::to_sql()                                        (re-creatable DDL = diff(empty, s))
//! diff(&from, &to) -> Diff { changes: Vec<Change> }         (diff.rs, dependency-ordered)
//! Diff::is_empty() / Diff::to_sql() / Diff::unsupported()   (hazards per Change)
//! ```
//!
//! `validate` (drift) compares `introspect` of the database with the snapshot of the migrations
//! folder; `test` checks `diff(up, up-down-up).is_empty()`; state-based rollback stores
//! `diff(after, before).to_sql()` with [`Diff::hazards`]. A change PostgreSQL cannot make safely
//! (removing an enum value, reordering columns, changing a partition key) carries
//! `unsupported` and no SQL; callers must check [`Diff::unsupported`] before running a diff.
//! This module does not run the DDL it renders.

pub mod introspect;

pub use introspect::{
    introspect, introspect_with_stats, pgkeel_tables, IntrospectOptions, IntrospectStats,
    Introspector,
};
pub use pgkeel_core::schema::Snapshot;
pub use pgkeel_core::schema::{ddl, diff, drizzle_snapshot, model};
pub use pgkeel_core::schema::{Action, Change, Diff, Hazard, ObjectKind, Phase};

use std::path::PathBuf;

use crate::db::DbError;

/// Errors of the schema module.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("cannot read snapshot file {path}: {source}; check the path (a snapshot is what `pgkeel schema dump --format json` writes)")]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a pgkeel schema snapshot: {source}; write one with `pgkeel schema dump --format json -o FILE`")]
    ParseSnapshot {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("snapshot {path} has format {found}, this pgkeel reads format {expected}; dump it again with this version")]
    SnapshotFormat {
        path: PathBuf,
        found: u32,
        expected: u32,
    },
}

impl SchemaError {
    /// PostgreSQL's own error, when the server sent one.
    pub fn pg(&self) -> Option<&crate::db::PgError> {
        match self {
            SchemaError::Db(d) => d.pg(),
            _ => None,
        }
    }
}

impl crate::outcome::Classify for SchemaError {
    fn kind(&self) -> crate::outcome::FailureKind {
        match self {
            SchemaError::Db(d) => crate::outcome::Classify::kind(d),
            SchemaError::ReadFile { .. }
            | SchemaError::ParseSnapshot { .. }
            | SchemaError::SnapshotFormat { .. } => crate::outcome::FailureKind::Usage,
        }
    }
}
