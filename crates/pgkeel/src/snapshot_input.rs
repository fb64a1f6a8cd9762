//! Where a snapshot comes from: a database URL, a snapshot JSON file, or a migrations folder
//! (applied to a scratch database with the regular migrator, then introspected).
//!
//! This module owns telling the three apart and loading each; it does not compare snapshots.
//! It sits above `schema` (which only reads catalogs and compares models) and above `migrate`
//! and `scratch`, which it combines, so `schema` depends on none of them.

use std::path::{Path, PathBuf};

use crate::config::Settings;
use crate::db::{DbError, Target};
use crate::migrate::{MigrateOptions, Migrator, Silent};
use crate::schema::introspect::{introspect, IntrospectOptions};
use crate::schema::model::{Snapshot, SNAPSHOT_FORMAT};
use crate::schema::SchemaError;
use crate::scratch::{Scratch, ScratchOptions};

/// Why a snapshot could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotInputError {
    /// Reading the catalog or the snapshot file.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("cannot read migrations folder {}: {source}", .path.display())]
    Source {
        path: PathBuf,
        #[source]
        source: crate::source::SourceError,
    },
    #[error("applying migrations folder {} to a scratch database failed", .path.display())]
    Migrate {
        path: PathBuf,
        #[source]
        source: crate::migrate::MigrateError,
    },
    #[error(transparent)]
    Scratch(#[from] crate::scratch::ScratchError),
    /// The migrations folder is the expected schema, but there is none.
    #[error("no migrations folder: pass --migrations DIR or --expected FILE")]
    NoFolder,
}

/// One side of `schema diff`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotInput {
    /// `postgres://…` or `postgresql://…`.
    Url(String),
    /// A JSON file written by `schema dump --format json`.
    File(PathBuf),
    /// A migrations folder.
    Folder(PathBuf),
}

impl SnapshotInput {
    /// A URL when it has a postgres scheme, a folder when it is a directory, else a file.
    pub fn parse(s: &str) -> Self {
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            SnapshotInput::Url(s.to_string())
        } else if Path::new(s).is_dir() {
            SnapshotInput::Folder(PathBuf::from(s))
        } else {
            SnapshotInput::File(PathBuf::from(s))
        }
    }
}

impl std::fmt::Display for SnapshotInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SnapshotInput::Url(u) => f.write_str(&crate::config::redact_url(u)),
            SnapshotInput::File(p) => write!(f, "{}", p.display()),
            SnapshotInput::Folder(p) => write!(f, "{}/", p.display()),
        }
    }
}

/// Reads a snapshot file.
pub fn read_file(path: &Path) -> Result<Snapshot, SchemaError> {
    let text = std::fs::read_to_string(path).map_err(|source| SchemaError::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    let snap = Snapshot::from_json(&text).map_err(|source| SchemaError::ParseSnapshot {
        path: path.to_path_buf(),
        source,
    })?;
    if snap.format != SNAPSHOT_FORMAT {
        return Err(SchemaError::SnapshotFormat {
            path: path.to_path_buf(),
            found: snap.format,
            expected: SNAPSHOT_FORMAT,
        });
    }
    Ok(snap)
}

/// Loads a snapshot from any input. `settings` gives connection settings (and the ledger
/// names excluded by `opts`); `scratch` says where a folder may be applied.
pub async fn load(
    input: &SnapshotInput,
    settings: &Settings,
    opts: &IntrospectOptions,
    scratch: &ScratchOptions,
) -> Result<Snapshot, SnapshotInputError> {
    match input {
        SnapshotInput::File(p) => Ok(read_file(p)?),
        SnapshotInput::Url(u) => {
            let mut s = settings.clone();
            s.database_url = Some(u.clone());
            let client = Target::from_settings(&s)?.connect().await?;
            Ok(introspect(&client, opts).await?)
        }
        SnapshotInput::Folder(dir) => from_folder(dir, settings, opts, scratch).await,
    }
}

/// Applies a migrations folder to a scratch database and snapshots the result. The scratch
/// database is dropped afterwards, whether or not the migrations succeeded.
pub async fn from_folder(
    dir: &Path,
    settings: &Settings,
    opts: &IntrospectOptions,
    scratch: &ScratchOptions,
) -> Result<Snapshot, SnapshotInputError> {
    let set = crate::source::load(dir).map_err(|source| SnapshotInputError::Source {
        path: dir.to_path_buf(),
        source,
    })?;
    let db = Scratch::create(settings, scratch).await?;
    let result: Result<Snapshot, SnapshotInputError> = async {
        let client = db.target().connect().await?;
        let mut s = settings.clone();
        s.database_url = None;
        let migrator = Migrator::new(&s, &set);
        migrator
            .migrate(&client, &MigrateOptions::default(), &mut Silent)
            .await
            .map_err(|source| SnapshotInputError::Migrate {
                path: dir.to_path_buf(),
                source,
            })?;
        Ok(introspect(&client, opts).await?)
    }
    .await;
    let dropped = db.drop_now().await;
    let snap = result?;
    dropped?;
    Ok(snap)
}

impl crate::outcome::Classify for SnapshotInputError {
    fn kind(&self) -> crate::outcome::FailureKind {
        use crate::outcome::FailureKind as K;
        match self {
            SnapshotInputError::Schema(s) => s.kind(),
            SnapshotInputError::Db(d) => d.kind(),
            SnapshotInputError::Migrate { source, .. } => source.kind(),
            SnapshotInputError::Scratch(e) => e.kind(),
            SnapshotInputError::Source { .. } | SnapshotInputError::NoFolder => K::Usage,
        }
    }
}
