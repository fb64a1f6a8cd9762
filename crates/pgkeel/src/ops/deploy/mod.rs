//! `pgkeel deploy`: the spec's production pipeline ("Railway Deployment Pipeline", "Production
//! Deployment Flow") as one run with one report.
//!
//! Owns the order of the steps and what stops a deploy, nothing else: every step calls the module
//! that owns the work ([`migrate`], [`lint`], [`validate`], [`backup`], [`monitor`]) and this
//! module sends no SQL of its own. The steps, in order:
//!
//! 1. `connect`: the database answers.
//! 2. `check-migrations`: the folder parses, no applied file changed, nothing applied is missing,
//!    nothing failed (what `migrate validate` checks).
//! 3. `lint`: the pending migrations' files; errors stop a production deploy, elsewhere they
//!    are warnings.
//! 4. `validate-before`: schema drift (stops the deploy unless `allow_drift`), data and
//!    performance findings (the baseline for step 7), and a performance snapshot.
//! 5. `backup`: a full, verified backup in production when something is pending.
//! 6. `migrate`: with all of `migrate`'s safety (deploy lock, lock_timeout, retries).
//! 7. `validate-after`: the schema now equals the folder's; data and performance findings that
//!    were not there before are reported as new.
//! 8. `performance`: database size, largest tables and indexes, slowest statements before vs
//!    after.
//! 9. `health`: an optional URL polled until it answers 2xx within the health-check timeout.
//!
//! [`run`] never returns an error: whatever fails is recorded in the [`DeployReport`] with the
//! step it failed in, what kind of failure it was ([`FailureKind`], which the CLI maps to its
//! exit code), the steps that did not run, and the exact commands that undo what was done.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::backup::{self, BackupError, BackupOptions};
use crate::config::Settings;
use crate::db::{error_chain as chain, DbError, Target};
use crate::lint::{self, LintOptions};
use crate::migrate::{self, MigrateError, MigrateOptions, MigrateReport, Migrator, Observer};
use crate::monitor::{self, Monitor};
use crate::report::{Finding, Severity, SeverityCounts};
use crate::scratch::ScratchOptions;
use crate::source::MigrationSet;
use crate::validate::{self, ValidateOptions, ValidationReport};

mod compare;
mod health;
mod steps;

use compare::*;
pub use health::*;

pub use super::environment::Environment;

/// What a deploy does; [`DeployOptions::for_env`] gives each environment's defaults.
#[derive(Debug, Clone)]
pub struct DeployOptions {
    pub environment: Environment,
    /// Go on when the schema drifted from the folder before migrating.
    pub allow_drift: bool,
    /// Take a full backup before migrating (when something is pending).
    pub backup: bool,
    pub backup_options: BackupOptions,
    /// Lint findings at or above this stop the deploy; `None`: they are reported only.
    pub lint_fail_on: Option<Severity>,
    /// Run the data-integrity checks before and after (they scan tables).
    pub data_checks: bool,
    /// `TABLESAMPLE` percentage for the data checks.
    pub sample_percent: Option<f64>,
    /// Where the expected schema's scratch database may be created.
    pub scratch: ScratchOptions,
    /// Schemas the validation looks at; empty = every non-system schema.
    pub schemas: Vec<String>,
    /// Compare the schema with the folder's before and after migrating. Off for tenant-schema
    /// targets: the folder cannot be applied to a scratch database in a schema that exists only
    /// on the target.
    pub drift_check: bool,
    /// Polled after migrating until it answers 2xx.
    pub health_url: Option<String>,
    /// How long the health URL has to turn healthy.
    pub health_timeout: Duration,
    /// Pause between two health polls.
    pub health_interval: Duration,
    pub migrate: MigrateOptions,
    /// Retry a migration the ledger records as failed (a failed or interrupted earlier run):
    /// it is applied again, after the backup in production, resuming where it stopped when its
    /// file is unchanged. Off (`--no-retry-failed`): such a migration stops the deploy at
    /// `check-migrations`, as `migrate validate` reports it.
    pub retry_failed: bool,
}

impl DeployOptions {
    /// Production backs up first and lets lint errors stop the deploy; staging and development
    /// don't back up and only report lint findings.
    pub fn for_env(environment: Environment, settings: &Settings) -> Self {
        let production = environment == Environment::Production;
        DeployOptions {
            environment,
            allow_drift: false,
            backup: production,
            backup_options: BackupOptions::from_settings(settings),
            lint_fail_on: production.then_some(Severity::Critical),
            data_checks: true,
            sample_percent: None,
            scratch: ScratchOptions::default(),
            schemas: Vec::new(),
            drift_check: true,
            health_url: None,
            health_timeout: settings.health_check_timeout,
            health_interval: Duration::from_secs(1),
            migrate: MigrateOptions::default(),
            retry_failed: true,
        }
    }
}

impl DeployReport {
    /// The deploy's alert: `deploy-failed` (critical) naming the step, why, and the first
    /// recovery command. Sent as firing when the deploy failed and as resolved when it
    /// succeeded, so a receiver that tracks alerts sees a later good deploy close it.
    pub fn alert(&self) -> crate::report::Finding {
        let (message, fix) = match &self.failure {
            Some(f) => (
                format!(
                    "deploy ({}) failed at {}: {}",
                    self.environment,
                    f.step,
                    f.message.lines().next().unwrap_or_default()
                ),
                self.recovery.first().cloned(),
            ),
            None => (format!("deploy ({}) succeeded", self.environment), None),
        };
        let mut f = crate::report::Finding::new(
            "deploy-failed",
            crate::report::Severity::Critical,
            self.database.clone(),
            message,
        );
        f.fix = fix;
        f
    }
}

impl DeployOptions {
    /// Why these options cannot run, before anything is tried: a health URL with a zero
    /// timeout would wait forever in a pre-deploy step (elsewhere a zero HEALTH_CHECK_TIMEOUT
    /// means "no limit").
    pub fn refusal(&self) -> Option<String> {
        (self.health_url.is_some() && self.health_timeout.is_zero()).then(|| {
            "the health URL needs a time limit, but HEALTH_CHECK_TIMEOUT / --health-timeout is 0: \
             give one (e.g. --health-timeout 60s), or drop the health URL"
                .to_string()
        })
    }
}

/// How a step went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum StepStatus {
    Ok,
    /// Done, with something worth a look (lint warnings, new non-critical findings).
    Warning,
    Failed,
    /// Not needed this time (nothing pending, no health URL, backups off).
    Skipped,
    /// An earlier step failed.
    NotRun,
}

/// One step of the pipeline.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Step {
    pub name: &'static str,
    pub status: StepStatus,
    pub duration_ms: u64,
    /// One line for humans.
    pub summary: String,
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub detail: serde_json::Value,
}

/// Why a deploy failed, as far as the exit code is concerned (the library's one
/// classification of failures).
pub use crate::outcome::FailureKind;

/// The failure of a deploy.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Failure {
    pub step: &'static str,
    pub kind: FailureKind,
    /// The error and its causes.
    pub message: String,
}

/// The backup a deploy took.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct BackupRef {
    pub name: String,
    pub path: PathBuf,
    pub stored_bytes: u64,
    pub verified: bool,
    /// Verified by reading every file back (else by the stored bytes' checksums only: the
    /// backup is encrypted and no private key was configured).
    pub decrypted: bool,
}

/// A number before and after.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Change<T> {
    pub before: Option<T>,
    pub after: Option<T>,
}

/// A table or index whose size is known before or after.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct SizeChange {
    pub name: String,
    pub bytes: Change<i64>,
}

/// A pg_stat_statements entry before and after (mean time per call).
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct StatementChange {
    pub query: String,
    pub mean_ms: Change<f64>,
}

/// The performance assessment: what the deploy changed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct PerformanceDelta {
    pub database_size_bytes: Option<Change<i64>>,
    pub tables: Vec<SizeChange>,
    pub indexes: Vec<SizeChange>,
    /// Empty without pg_stat_statements.
    pub statements: Vec<StatementChange>,
    /// Performance findings (unindexed foreign keys, unused indexes, …) before and after.
    pub performance_findings: Change<usize>,
}

/// The outcome of a deploy: `reports/deploy-YYYY-MM-DD-HHMMSS.json`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct DeployReport {
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub environment: Environment,
    /// The database, with its password redacted.
    pub database: String,
    pub migrations_dir: PathBuf,
    /// `succeeded` or `failed`.
    pub outcome: &'static str,
    pub duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    pub steps: Vec<Step>,
    /// Migrations this deploy applied, in order.
    pub applied: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupRef>,
    /// Findings after migrating that were not there before.
    pub new_findings: Vec<Finding>,
    /// Findings before migrating that are gone after.
    pub resolved_findings: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub performance: Option<PerformanceDelta>,
    /// What to run to undo this deploy, in order (empty when nothing changed).
    pub recovery: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub migrate: Option<MigrateReport>,
}

impl DeployReport {
    pub fn succeeded(&self) -> bool {
        self.failure.is_none()
    }
}

/// Progress hooks: the migrate observer's plus a step's start and end.
pub trait DeployObserver: Observer {
    fn step_start(&mut self, _name: &'static str) {}
    fn step_done(&mut self, _step: &Step) {}
}

/// An observer that sees nothing.
#[derive(Debug, Default)]
pub struct Quiet;
impl Observer for Quiet {}
impl DeployObserver for Quiet {}

/// The step names, in order.
pub const STEPS: [&str; 9] = [
    "connect",
    "check-migrations",
    "lint",
    "validate-before",
    "backup",
    "migrate",
    "validate-after",
    "performance",
    "health",
];

/// Whether a schema finding is drift (the database differs from the expected schema), as
/// opposed to advice such as a table without a primary key.
pub fn is_drift(f: &Finding) -> bool {
    (f.id.starts_with("missing-") || f.id.starts_with("extra-") || f.id.starts_with("changed-"))
        && f.id != "changed-comment"
}

struct Run<'a, O: DeployObserver> {
    settings: &'a Settings,
    set: &'a MigrationSet,
    opts: &'a DeployOptions,
    obs: &'a mut O,
    interrupt: Option<tokio::sync::watch::Receiver<bool>>,
    report: DeployReport,
    clock: Instant,
}

/// Runs the deploy of `set` to the database `settings` point at.
pub async fn run<O: DeployObserver>(
    settings: &Settings,
    set: &MigrationSet,
    opts: &DeployOptions,
    interrupt: Option<tokio::sync::watch::Receiver<bool>>,
    obs: &mut O,
) -> DeployReport {
    let started = Instant::now();
    let database = Target::from_settings(settings)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| "(not configured)".into());
    let mut run = Run {
        settings,
        set,
        opts,
        obs,
        interrupt,
        report: DeployReport {
            started_at: chrono::Utc::now(),
            environment: opts.environment,
            database,
            migrations_dir: set.dir.clone(),
            outcome: "failed",
            duration_ms: 0,
            failure: None,
            steps: Vec::new(),
            applied: Vec::new(),
            backup: None,
            new_findings: Vec::new(),
            resolved_findings: 0,
            performance: None,
            recovery: Vec::new(),
            migrate: None,
        },
        clock: Instant::now(),
    };
    run.steps().await;
    let done: HashSet<&str> = run.report.steps.iter().map(|s| s.name).collect();
    for name in STEPS {
        if !done.contains(name) {
            run.report.steps.push(Step {
                name,
                status: StepStatus::NotRun,
                duration_ms: 0,
                summary: "not run: an earlier step failed".into(),
                detail: serde_json::Value::Null,
            });
        }
    }
    run.report.outcome = if run.report.failure.is_none() {
        "succeeded"
    } else {
        "failed"
    };
    run.report.recovery = recovery(&run.report);
    run.report.duration_ms = started.elapsed().as_millis() as u64;
    run.report
}

fn db_kind(e: &DbError) -> FailureKind {
    crate::outcome::Classify::kind(e)
}

fn migrate_kind(e: &MigrateError) -> FailureKind {
    crate::outcome::Classify::kind(e)
}

fn backup_kind(e: &BackupError) -> FailureKind {
    crate::outcome::Classify::kind(e)
}

fn validate_kind(e: &validate::ValidateError) -> FailureKind {
    crate::outcome::Classify::kind(e)
}

impl<O: DeployObserver> Run<'_, O> {}

/// The commands that undo what a deploy did, newest change first.
fn recovery(r: &DeployReport) -> Vec<String> {
    let mut out = Vec::new();
    if r.failure.is_none() || r.applied.is_empty() {
        // A failed migration rolled its own transaction back; with nothing applied before it
        // there is nothing to undo.
        return out;
    }
    let first = &r.applied[0];
    out.push(format!(
        "pgkeel rollback {first} --cascade   # undoes {} migration(s) this deploy applied, newest first (preview with --dry-run)",
        r.applied.len()
    ));
    if let Some(b) = &r.backup {
        out.push(format!(
            "pgkeel restore {} --clean   # last resort: puts back the whole database as it was before the deploy (loses writes made since)",
            b.path.display()
        ));
    }
    out
}

#[cfg(test)]
mod tests;
