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

/// The deployment environment: decides the defaults of what protects the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Production,
    Staging,
    Development,
}

impl std::str::FromStr for Environment {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "production" | "prod" => Ok(Environment::Production),
            "staging" | "stage" => Ok(Environment::Staging),
            "development" | "dev" => Ok(Environment::Development),
            other => Err(format!(
                "unknown environment {other:?}: use production, staging or development"
            )),
        }
    }
}

impl std::fmt::Display for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Environment::Production => "production",
            Environment::Staging => "staging",
            Environment::Development => "development",
        })
    }
}

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
        }
    }
}

/// How a step went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub step: &'static str,
    pub kind: FailureKind,
    /// The error and its causes.
    pub message: String,
}

/// The backup a deploy took.
#[derive(Debug, Clone, Serialize)]
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Change<T> {
    pub before: Option<T>,
    pub after: Option<T>,
}

/// A table or index whose size is known before or after.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SizeChange {
    pub name: String,
    pub bytes: Change<i64>,
}

/// A pg_stat_statements entry before and after (mean time per call).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatementChange {
    pub query: String,
    pub mean_ms: Change<f64>,
}

/// The performance assessment: what the deploy changed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
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

/// Identity of a finding across two runs: its rule and object (messages carry numbers and the
/// migration the expected schema was built up to, which change between the runs).
fn key(f: &Finding) -> (String, String) {
    (f.id.clone(), f.object.clone())
}

impl<O: DeployObserver> Run<'_, O> {
    fn begin(&mut self, name: &'static str) {
        self.clock = Instant::now();
        self.obs.step_start(name);
    }

    fn end(
        &mut self,
        name: &'static str,
        status: StepStatus,
        summary: impl Into<String>,
        detail: serde_json::Value,
    ) {
        let step = Step {
            name,
            status,
            duration_ms: self.clock.elapsed().as_millis() as u64,
            summary: summary.into(),
            detail,
        };
        self.obs.step_done(&step);
        self.report.steps.push(step);
    }

    /// Records the failure of step `name`; the caller stops.
    fn fail(&mut self, name: &'static str, kind: FailureKind, message: String) {
        self.end(
            name,
            StepStatus::Failed,
            message.lines().next().unwrap_or_default().to_string(),
            serde_json::Value::Null,
        );
        self.report.failure = Some(Failure {
            step: name,
            kind,
            message,
        });
    }

    fn interrupted(&mut self, next: &'static str) -> bool {
        let stop = self.interrupt.as_ref().is_some_and(|rx| *rx.borrow());
        if stop {
            self.begin(next);
            self.fail(
                next,
                FailureKind::Interrupted,
                format!("interrupted before {next}: nothing of it was done"),
            );
        }
        stop
    }

    async fn steps(&mut self) {
        // 1. connect
        self.begin("connect");
        let target = match Target::from_settings(self.settings) {
            Ok(t) => t,
            Err(e) => return self.fail("connect", db_kind(&e), chain(&e)),
        };
        let client = match target.connect().await {
            Ok(c) => c,
            Err(e) => return self.fail("connect", db_kind(&e), chain(&e)),
        };
        let version = match crate::db::server_version_num(&client).await {
            Ok(v) => v,
            Err(e) => return self.fail("connect", db_kind(&e), chain(&e)),
        };
        self.end(
            "connect",
            StepStatus::Ok,
            format!("{target} answers (server_version_num {version})"),
            serde_json::json!({ "server_version_num": version }),
        );

        // 2. check-migrations
        if self.interrupted("check-migrations") {
            return;
        }
        self.begin("check-migrations");
        let migrator = {
            let m = Migrator::new(self.settings, self.set);
            match &self.interrupt {
                Some(rx) => m.with_interrupt(rx.clone()),
                None => m,
            }
        };
        let plan = match migrator.plan(&client).await {
            Ok(p) => p,
            Err(e) => return self.fail("check-migrations", migrate_kind(&e), chain(&e)),
        };
        let mut problems = migrate::check_folder(self.set);
        problems.extend(migrate::check_plan(&plan));
        let blocking: Vec<&migrate::Problem> = problems
            .iter()
            .filter(|p| p.severity >= Severity::Critical)
            .collect();
        if !blocking.is_empty() {
            let lines: Vec<String> = blocking.iter().map(|p| p.message.clone()).collect();
            return self.fail(
                "check-migrations",
                FailureKind::Findings,
                format!(
                    "{} problem(s) with the migrations; `pgkeel migrate validate` shows them: {}",
                    lines.len(),
                    lines.join("; ")
                ),
            );
        }
        let pending: Vec<&crate::source::Migration> =
            plan.pending(self.set).map(|(_, m)| m).collect();
        let warnings = problems.len();
        self.end(
            "check-migrations",
            if warnings > 0 {
                StepStatus::Warning
            } else {
                StepStatus::Ok
            },
            format!(
                "{} applied, {} pending{}",
                plan.counts.applied,
                pending.len(),
                if warnings > 0 {
                    format!(", {warnings} warning(s)")
                } else {
                    String::new()
                }
            ),
            serde_json::json!({ "counts": plan.counts, "problems": problems }),
        );

        // 3. lint the pending files
        if self.interrupted("lint") {
            return;
        }
        self.begin("lint");
        let lint_opts = LintOptions {
            pg_version: if version == 0 {
                LintOptions::default().pg_version
            } else {
                version
            },
            lock_timeout_disabled: self.settings.lock_timeout.is_zero(),
            rollback_file: false,
        };
        let pending_ids: HashSet<&str> = pending.iter().map(|m| m.id.as_str()).collect();
        let pending_set = MigrationSet {
            migrations: self
                .set
                .migrations
                .iter()
                .filter(|m| pending_ids.contains(m.id.as_str()))
                .cloned()
                .collect(),
            ..self.set.clone()
        };
        let files = lint::lint_set(&pending_set, &lint_opts);
        let violations: Vec<(String, &lint::Violation)> = files
            .iter()
            .flat_map(|f| {
                f.violations
                    .iter()
                    .map(move |v| (f.path.display().to_string(), v))
            })
            .collect();
        let syntax: Vec<String> = files
            .iter()
            .filter_map(|f| {
                f.syntax_error
                    .as_ref()
                    .map(|e| format!("{}: {e}", f.path.display()))
            })
            .collect();
        let errors = violations
            .iter()
            .filter(|(_, v)| v.severity >= Severity::Critical)
            .count();
        let detail = serde_json::json!({
            "files": files.len(),
            "violations": violations.iter().map(|(_, v)| v).collect::<Vec<_>>(),
            "syntax_errors": syntax,
        });
        let stops = !syntax.is_empty()
            || self
                .opts
                .lint_fail_on
                .is_some_and(|at| violations.iter().any(|(_, v)| v.severity >= at));
        if stops {
            let first: Vec<String> = violations
                .iter()
                .filter(|(_, v)| self.opts.lint_fail_on.is_some_and(|at| v.severity >= at))
                .take(3)
                .map(|(p, v)| format!("{p}:{}: {} ({})", v.location.line, v.message, v.rule))
                .chain(syntax.iter().cloned())
                .collect();
            self.fail(
                "lint",
                FailureKind::Findings,
                format!(
                    "lint stops the {} deploy: {}; run `pgkeel lint` for the details, fix the file or add a reasoned `-- pgkeel:ignore RULE reason`",
                    self.opts.environment,
                    first.join("; ")
                ),
            );
            if let Some(s) = self.report.steps.last_mut() {
                s.detail = detail;
            }
            return;
        }
        self.end(
            "lint",
            if violations.is_empty() {
                StepStatus::Ok
            } else {
                StepStatus::Warning
            },
            format!(
                "{} pending migration(s), {} file(s): {} error(s), {} other finding(s){}",
                pending_set.migrations.len(),
                files.len(),
                errors,
                violations.len() - errors,
                if errors > 0 {
                    format!(" (not fatal in {})", self.opts.environment)
                } else {
                    String::new()
                }
            ),
            detail,
        );

        // 4. validate-before: drift, baseline findings, performance snapshot
        if self.interrupted("validate-before") {
            return;
        }
        self.begin("validate-before");
        let vopts = self.validate_options();
        let before = match validate::run(&target, self.settings, Some(self.set), &vopts).await {
            Ok(r) => r,
            Err(e) => return self.fail("validate-before", validate_kind(&e), chain(&e)),
        };
        let drift: Vec<&Finding> = before.findings.iter().filter(|f| is_drift(f)).collect();
        let schema_unchecked = schema_not_checked(&before);
        let perf_before = self.performance_snapshot().await;
        let detail = serde_json::json!({
            "counts": before.counts,
            "drift": drift,
            "schema_check": schema_unchecked,
        });
        if !drift.is_empty() && !self.opts.allow_drift {
            let objects: Vec<&str> = drift.iter().take(5).map(|f| f.object.as_str()).collect();
            self.fail(
                "validate-before",
                FailureKind::Findings,
                format!(
                    "the database drifted from the migrations folder before migrating ({} difference(s): {}{}); `pgkeel validate --schema` shows each with its fix; deploy with --allow-drift to go on anyway",
                    drift.len(),
                    objects.join(", "),
                    if drift.len() > objects.len() { ", …" } else { "" }
                ),
            );
            if let Some(s) = self.report.steps.last_mut() {
                s.detail = detail;
            }
            return;
        }
        let status = if drift.is_empty() && schema_unchecked.is_none() {
            StepStatus::Ok
        } else {
            StepStatus::Warning
        };
        let mut summary = format!(
            "{} critical, {} warning, {} info finding(s) before migrating",
            before.counts.critical, before.counts.warning, before.counts.info
        );
        if !drift.is_empty() {
            summary.push_str(&format!("; {} drift(s) allowed", drift.len()));
        }
        if let Some(why) = &schema_unchecked {
            summary.push_str(&format!("; drift not checked: {why}"));
        }
        if !self.opts.drift_check {
            summary.push_str("; drift not checked (tenant schema)");
        }
        self.end("validate-before", status, summary, detail);

        // 5. backup
        if self.interrupted("backup") {
            return;
        }
        self.begin("backup");
        if !self.opts.backup {
            self.end(
                "backup",
                StepStatus::Skipped,
                format!("off for {} (--backup turns it on)", self.opts.environment),
                serde_json::Value::Null,
            );
        } else if pending.is_empty() {
            self.end(
                "backup",
                StepStatus::Skipped,
                "nothing pending: no backup needed",
                serde_json::Value::Null,
            );
        } else {
            match self.backup().await {
                Ok(b) => {
                    let summary = format!(
                        "{} ({} bytes stored, checksums verified) in {}",
                        b.name,
                        b.stored_bytes,
                        b.path.display()
                    );
                    self.report.backup = Some(b);
                    self.end("backup", StepStatus::Ok, summary, serde_json::Value::Null);
                }
                Err((kind, message)) => {
                    return self.fail("backup", kind, format!("{message}; nothing was migrated"))
                }
            }
        }

        // 6. migrate
        if self.interrupted("migrate") {
            return;
        }
        self.begin("migrate");
        match migrator
            .migrate(&client, &self.opts.migrate, &mut *self.obs)
            .await
        {
            Ok(m) => {
                self.report.applied = m.applied.iter().map(|a| a.id.clone()).collect();
                let summary = if m.applied.is_empty() {
                    format!("nothing to do: {} already applied", m.already_applied)
                } else {
                    format!(
                        "applied {} migration(s): {}",
                        m.applied.len(),
                        self.report.applied.join(", ")
                    )
                };
                self.report.migrate = Some(m);
                self.end("migrate", StepStatus::Ok, summary, serde_json::Value::Null);
            }
            Err(e) => {
                if let MigrateError::Failed { applied_before, .. } = &e {
                    self.report.applied = applied_before.clone();
                }
                return self.fail("migrate", migrate_kind(&e), chain(&e));
            }
        }

        // 7. validate-after
        if self.interrupted("validate-after") {
            return;
        }
        self.begin("validate-after");
        let after = match validate::run(&target, self.settings, Some(self.set), &vopts).await {
            Ok(r) => r,
            Err(e) => return self.fail("validate-after", validate_kind(&e), chain(&e)),
        };
        let known: HashSet<_> = before.findings.iter().map(key).collect();
        let now: HashSet<_> = after.findings.iter().map(key).collect();
        let new: Vec<Finding> = after
            .findings
            .iter()
            .filter(|f| !known.contains(&key(f)))
            .cloned()
            .collect();
        self.report.resolved_findings = before
            .findings
            .iter()
            .filter(|f| !now.contains(&key(f)))
            .count();
        // Drift the deploy was allowed to start with is not the deploy's fault.
        let new_drift: Vec<&Finding> = new.iter().filter(|f| is_drift(f)).collect();
        let new_critical: Vec<&Finding> = new
            .iter()
            .filter(|f| f.severity >= Severity::Critical && !is_drift(f))
            .collect();
        let counts = SeverityCounts::of(&new);
        let detail = serde_json::json!({ "counts": after.counts, "new": counts });
        let failure = if !new_drift.is_empty() {
            Some(format!(
                "after migrating, the schema differs from the migrations folder ({} difference(s): {}); a migration did not do what its file says, or something changed the schema meanwhile; `pgkeel validate --schema` shows the fix",
                new_drift.len(),
                new_drift.iter().take(5).map(|f| f.object.as_str()).collect::<Vec<_>>().join(", ")
            ))
        } else if !new_critical.is_empty() {
            Some(format!(
                "{} new critical finding(s) after migrating: {}",
                new_critical.len(),
                new_critical
                    .iter()
                    .take(3)
                    .map(|f| format!("{} ({})", f.message, f.id))
                    .collect::<Vec<_>>()
                    .join("; ")
            ))
        } else {
            None
        };
        self.report.new_findings = new;
        if let Some(message) = failure {
            self.fail("validate-after", FailureKind::PostCheck, message);
            if let Some(s) = self.report.steps.last_mut() {
                s.detail = detail;
            }
        } else {
            self.end(
                "validate-after",
                if counts.warning + counts.critical > 0 {
                    StepStatus::Warning
                } else {
                    StepStatus::Ok
                },
                format!(
                    "{}{} new finding(s) ({} warning), {} resolved",
                    if self.opts.drift_check {
                        "schema matches the folder; "
                    } else {
                        ""
                    },
                    self.report.new_findings.len(),
                    counts.warning,
                    self.report.resolved_findings
                ),
                detail,
            );
        }

        // 8. performance (an assessment: it never fails the deploy)
        self.begin("performance");
        let perf_after = self.performance_snapshot().await;
        let mut delta = compare(perf_before.as_ref(), perf_after.as_ref());
        delta.performance_findings = Change {
            before: Some(count_section(&before, "performance")),
            after: Some(count_section(&after, "performance")),
        };
        let summary = match delta.database_size_bytes {
            Some(Change {
                before: Some(b),
                after: Some(a),
            }) => format!(
                "database size {} → {} bytes ({:+}); performance findings {} → {}",
                b,
                a,
                a - b,
                delta.performance_findings.before.unwrap_or(0),
                delta.performance_findings.after.unwrap_or(0)
            ),
            _ => "statistics could not be read (see the monitor report)".into(),
        };
        self.report.performance = Some(delta);
        self.end(
            "performance",
            StepStatus::Ok,
            summary,
            serde_json::Value::Null,
        );
        if self.report.failure.is_some() {
            return;
        }

        // 9. health
        self.begin("health");
        match &self.opts.health_url {
            None => self.end(
                "health",
                StepStatus::Skipped,
                "no --health-url given",
                serde_json::Value::Null,
            ),
            Some(url) => {
                let url = url.clone();
                match poll_health(
                    &url,
                    self.opts.health_timeout,
                    self.opts.health_interval,
                    self.interrupt.clone(),
                )
                .await
                {
                    Ok(h) => self.end(
                        "health",
                        StepStatus::Ok,
                        format!(
                            "{} answered {} after {} attempt(s)",
                            h.url,
                            h.last_status.unwrap_or(0),
                            h.attempts
                        ),
                        serde_json::to_value(&h).unwrap_or_default(),
                    ),
                    Err(h) => {
                        let message = format!(
                            "{} did not answer 2xx within {} ms ({} attempt(s); last: {})",
                            h.url,
                            self.opts.health_timeout.as_millis(),
                            h.attempts,
                            h.last_error
                                .clone()
                                .unwrap_or_else(|| format!("HTTP {}", h.last_status.unwrap_or(0)))
                        );
                        self.fail("health", FailureKind::Unhealthy, message);
                        if let Some(s) = self.report.steps.last_mut() {
                            s.detail = serde_json::to_value(&h).unwrap_or_default();
                        }
                    }
                }
            }
        }
    }

    /// `validate`'s options for this deploy (it falls back to the target server for the
    /// expected schema's scratch database itself).
    fn validate_options(&self) -> ValidateOptions {
        let mut v = ValidateOptions::from_settings(self.settings);
        v.schema = self.opts.drift_check;
        v.schemas = self.opts.schemas.clone();
        v.data = self.opts.data_checks;
        v.sample_percent = self.opts.sample_percent;
        v.scratch = self.opts.scratch.clone();
        v
    }

    async fn performance_snapshot(&self) -> Option<monitor::performance::Performance> {
        let m = Monitor::new(self.settings, self.set.dir.clone()).ok()?;
        let (client, ms) = m.connect().await.ok()?;
        let sections = monitor::Sections {
            health: false,
            migrations: false,
            performance: true,
        };
        m.collect(&client, ms, sections, false).await.performance
    }

    async fn backup(&self) -> Result<BackupRef, (FailureKind, String)> {
        let quiet: Arc<dyn backup::Progress> = Arc::new(backup::Quiet);
        let b = backup::full_verified(
            self.settings,
            &self.opts.backup_options,
            "pre-deploy",
            self.report.started_at,
            quiet,
        )
        .await
        .map_err(|e| (backup_kind(&e), format!("the backup failed: {}", chain(&e))))?;
        Ok(BackupRef {
            name: b.manifest.name.clone(),
            stored_bytes: b.manifest.stored_bytes(),
            path: b.path,
            verified: true,
            decrypted: b.decrypted,
        })
    }
}

/// Why the schema section could not judge drift, if it could not.
fn schema_not_checked(r: &ValidationReport) -> Option<String> {
    r.checks
        .iter()
        .find(|c| c.section == "schema" && c.status != "ok")
        .map(|c| {
            format!(
                "{} {}{}",
                c.name,
                c.status,
                c.note
                    .as_deref()
                    .map(|n| format!(": {n}"))
                    .unwrap_or_default()
            )
        })
}

fn count_section(r: &ValidationReport, section: &str) -> usize {
    r.checks
        .iter()
        .filter(|c| c.section == section)
        .map(|c| c.findings)
        .sum()
}

fn compare(
    before: Option<&monitor::performance::Performance>,
    after: Option<&monitor::performance::Performance>,
) -> PerformanceDelta {
    use monitor::performance::Relation;
    fn sizes(before: Option<&[Relation]>, after: Option<&[Relation]>) -> Vec<SizeChange> {
        let name = |r: &Relation| format!("{}.{}", r.schema, r.name);
        let mut out: Vec<SizeChange> = Vec::new();
        for r in before.unwrap_or_default() {
            out.push(SizeChange {
                name: name(r),
                bytes: Change {
                    before: Some(r.bytes),
                    after: None,
                },
            });
        }
        for r in after.unwrap_or_default() {
            let n = name(r);
            match out.iter_mut().find(|c| c.name == n) {
                Some(c) => c.bytes.after = Some(r.bytes),
                None => out.push(SizeChange {
                    name: n,
                    bytes: Change {
                        before: None,
                        after: Some(r.bytes),
                    },
                }),
            }
        }
        out
    }
    let ok =
        |p: Option<&monitor::performance::Performance>| p.filter(|p| p.error.is_none()).cloned();
    let (b, a) = (ok(before), ok(after));
    let mut d = PerformanceDelta {
        database_size_bytes: (b.is_some() || a.is_some()).then(|| Change {
            before: b.as_ref().map(|p| p.database_size_bytes),
            after: a.as_ref().map(|p| p.database_size_bytes),
        }),
        tables: sizes(
            b.as_ref().map(|p| p.largest_tables.as_slice()),
            a.as_ref().map(|p| p.largest_tables.as_slice()),
        ),
        indexes: sizes(
            b.as_ref().map(|p| p.largest_indexes.as_slice()),
            a.as_ref().map(|p| p.largest_indexes.as_slice()),
        ),
        ..PerformanceDelta::default()
    };
    if let (Some(b), Some(a)) = (&b, &a) {
        for s in &a.statements.top {
            let before = b
                .statements
                .top
                .iter()
                .find(|x| x.query == s.query)
                .map(|x| x.mean_ms);
            d.statements.push(StatementChange {
                query: s.query.clone(),
                mean_ms: Change {
                    before,
                    after: Some(s.mean_ms),
                },
            });
        }
    }
    d
}

/// What polling the health URL saw.
#[derive(Debug, Clone, Serialize)]
pub struct HealthPoll {
    /// The URL without credentials or query string.
    pub url: String,
    pub attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub waited_ms: u64,
}

/// A URL fit for a report: no user information, no query (tokens live there).
pub fn display_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            let had_query = u.query().is_some();
            u.set_query(None);
            u.set_fragment(None);
            let mut s = u.to_string();
            if had_query {
                s.push_str("?…");
            }
            s
        }
        Err(_) => "(not a URL)".into(),
    }
}

/// Polls `url` with GET until it answers 2xx or `timeout` has passed. Each request gets what
/// is left of the timeout (at most 10 s); redirects are followed.
pub async fn poll_health(
    url: &str,
    timeout: Duration,
    interval: Duration,
    interrupt: Option<tokio::sync::watch::Receiver<bool>>,
) -> Result<HealthPoll, HealthPoll> {
    let started = Instant::now();
    let mut h = HealthPoll {
        url: display_url(url),
        attempts: 0,
        last_status: None,
        last_error: None,
        waited_ms: 0,
    };
    let client = match reqwest::Client::builder()
        .user_agent(concat!("pgkeel/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            h.last_error = Some(format!("cannot build an HTTP client: {e}"));
            return Err(h);
        }
    };
    loop {
        let left = timeout.saturating_sub(started.elapsed());
        if left.is_zero() || interrupt.as_ref().is_some_and(|rx| *rx.borrow()) {
            h.waited_ms = started.elapsed().as_millis() as u64;
            return Err(h);
        }
        h.attempts += 1;
        match client
            .get(url)
            .timeout(left.min(Duration::from_secs(10)))
            .send()
            .await
        {
            Ok(resp) => {
                h.last_status = Some(resp.status().as_u16());
                h.last_error = None;
                if resp.status().is_success() {
                    h.waited_ms = started.elapsed().as_millis() as u64;
                    return Ok(h);
                }
            }
            Err(e) => {
                h.last_status = None;
                // reqwest's message names the URL: keep only what went wrong.
                h.last_error = Some(chain(&e.without_url()));
            }
        }
        let left = timeout.saturating_sub(started.elapsed());
        tokio::time::sleep(interval.min(left)).await;
    }
}

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
mod tests {
    use super::*;

    #[test]
    fn environment_parses_and_sets_defaults() {
        assert_eq!(
            "PROD".parse::<Environment>().unwrap(),
            Environment::Production
        );
        assert!("qa".parse::<Environment>().is_err());
        let s = Settings::defaults();
        let prod = DeployOptions::for_env(Environment::Production, &s);
        assert!(prod.backup);
        assert_eq!(prod.lint_fail_on, Some(Severity::Critical));
        let dev = DeployOptions::for_env(Environment::Development, &s);
        assert!(!dev.backup);
        assert_eq!(dev.lint_fail_on, None);
    }

    #[test]
    fn drift_excludes_advice_and_comments() {
        let f = |id: &str| Finding::new(id, Severity::Warning, "public.t", "m");
        assert!(is_drift(&f("missing-table")));
        assert!(is_drift(&f("extra-index")));
        assert!(is_drift(&f("changed-column")));
        assert!(!is_drift(&f("changed-comment")));
        assert!(!is_drift(&f("no-primary-key")));
    }

    #[test]
    fn display_url_hides_credentials_and_query() {
        assert_eq!(
            display_url("https://user:secret@app.example.com/healthz?token=abc"),
            "https://app.example.com/healthz?…"
        );
        assert_eq!(
            display_url("http://127.0.0.1:3000/api/health"),
            "http://127.0.0.1:3000/api/health"
        );
        assert_eq!(display_url("not a url"), "(not a URL)");
    }

    fn report(applied: &[&str], failed: bool, backup: bool) -> DeployReport {
        DeployReport {
            started_at: chrono::Utc::now(),
            environment: Environment::Production,
            database: "postgresql://u@h/db".into(),
            migrations_dir: "drizzle".into(),
            outcome: "failed",
            duration_ms: 0,
            failure: failed.then(|| Failure {
                step: "health",
                kind: FailureKind::Unhealthy,
                message: "x".into(),
            }),
            steps: Vec::new(),
            applied: applied.iter().map(|s| s.to_string()).collect(),
            backup: backup.then(|| BackupRef {
                name: "pre-deploy".into(),
                path: "backups/pre-deploy".into(),
                stored_bytes: 1,
                verified: true,
                decrypted: true,
            }),
            new_findings: Vec::new(),
            resolved_findings: 0,
            performance: None,
            recovery: Vec::new(),
            migrate: None,
        }
    }

    #[test]
    fn recovery_names_rollback_from_the_first_applied_then_restore() {
        let r = recovery(&report(&["0003_a", "0004_b"], true, true));
        assert_eq!(r.len(), 2);
        assert!(r[0].starts_with("pgkeel rollback 0003_a --cascade"));
        assert!(r[1].starts_with("pgkeel restore backups/pre-deploy --clean"));
        assert!(recovery(&report(&["0003_a"], false, true)).is_empty());
        assert!(recovery(&report(&[], true, true)).is_empty());
    }

    #[test]
    fn compare_matches_relations_by_name() {
        use monitor::performance::{Performance, Relation};
        let rel = |n: &str, b: i64| Relation {
            schema: "public".into(),
            name: n.into(),
            table: None,
            bytes: b,
            rows_estimate: None,
        };
        let before = Performance {
            database_size_bytes: 100,
            largest_tables: vec![rel("a", 10), rel("b", 5)],
            ..Performance::default()
        };
        let after = Performance {
            database_size_bytes: 150,
            largest_tables: vec![rel("a", 40), rel("c", 7)],
            ..Performance::default()
        };
        let d = compare(Some(&before), Some(&after));
        assert_eq!(
            d.database_size_bytes,
            Some(Change {
                before: Some(100),
                after: Some(150)
            })
        );
        let a = d.tables.iter().find(|t| t.name == "public.a").unwrap();
        assert_eq!((a.bytes.before, a.bytes.after), (Some(10), Some(40)));
        let c = d.tables.iter().find(|t| t.name == "public.c").unwrap();
        assert_eq!((c.bytes.before, c.bytes.after), (None, Some(7)));
        assert_eq!(d.tables.len(), 3);
    }
}
