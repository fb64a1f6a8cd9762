//! `migrate --env production`: a verified full backup before the migrations run, whenever the
//! run would change anything.
//!
//! "Would change anything" is [`crate::migrate::Plan::pending`], the same notion `migrate` and
//! `deploy` use: pending migrations, and failed or rolled-back ones it re-applies. The backup is
//! [`crate::backup::full_verified`], the one deploy takes. A failed backup stops the run before
//! any migration.

use std::sync::Arc;

use chrono::Utc;
use tokio_postgres::Client;

use crate::backup::{self, BackupError, BackupOptions, VerifiedBackup};
use crate::config::Settings;
use crate::migrate::{MigrateError, Migrator};

/// Why the pre-migration backup could not be taken; nothing was migrated.
#[derive(Debug, thiserror::Error)]
pub enum ProductionError {
    /// Reading the plan failed.
    #[error(transparent)]
    Plan(#[from] MigrateError),
    /// The backup failed or does not verify.
    #[error("the pre-migration backup failed; nothing was migrated")]
    Backup(#[source] BackupError),
}

/// Takes the backup a production migrate needs first: `None` when nothing would run (no
/// backup is needed), else the verified backup. `ids` of the migrations that would run are
/// returned with it, for the message.
pub async fn backup_before_migrate(
    settings: &Settings,
    migrator: &Migrator<'_>,
    client: &Client,
    opts: &BackupOptions,
    progress: Arc<dyn backup::Progress>,
) -> Result<Option<(VerifiedBackup, Vec<String>)>, ProductionError> {
    let would_run = to_run(migrator, client).await?;
    if would_run.is_empty() {
        return Ok(None);
    }
    let backup = backup::full_verified(settings, opts, "pre-migrate", Utc::now(), progress)
        .await
        .map_err(ProductionError::Backup)?;
    Ok(Some((backup, would_run)))
}

/// The ids of the migrations the next `migrate` would run.
pub async fn to_run(migrator: &Migrator<'_>, client: &Client) -> Result<Vec<String>, MigrateError> {
    let plan = migrator.plan(client).await?;
    Ok(plan
        .pending(migrator.set)
        .map(|(_, m)| m.id.clone())
        .collect())
}

impl crate::outcome::Classify for ProductionError {
    fn kind(&self) -> crate::outcome::FailureKind {
        match self {
            ProductionError::Plan(m) => crate::outcome::Classify::kind(m),
            ProductionError::Backup(b) => crate::outcome::Classify::kind(b),
        }
    }
}
