//! `pgkeel validate`: judges a live database and reports [`Finding`]s.
//!
//! Three sections, each a set of independent checks:
//! - [`data`]: rows that break, or will break, a constraint: foreign-key orphans (PostgreSQL's
//!   own MATCH SIMPLE / MATCH FULL rules, NOT VALID keys included), NOT VALID checks that would
//!   fail VALIDATE, duplicates under invalid unique indexes and under unique keys or NOT NULLs a
//!   pending migration adds, sequences behind their column's maximum.
//! - [`performance`]: catalog and statistics findings: foreign keys without a covering index,
//!   invalid / duplicate / redundant / unused indexes, sequential-scan-heavy tables, dead-tuple
//!   bloat, sequences and identity columns near overflow (against the column's type),
//!   transaction ID wraparound, tables never analysed, and the top of pg_stat_statements.
//! - [`schema`]: drift of the live database from the expected schema (the migrations folder
//!   applied to a scratch database up to what the ledger has applied, or a snapshot file), using
//!   the `schema` module's diff; tables without a primary key.
//!
//! The catalog is read with a constant number of set-based queries; the data checks that scan
//! tables run concurrently over a pool bounded by `DATABASE_CONNECTION_POOL_SIZE`, each under
//! its own `statement_timeout`. A check that lacks a privilege, times out or fails is reported
//! as such in [`CheckRun`] and the run goes on: nothing fails the whole run but an unreachable
//! database. This module renders nothing; the CLI prints and [`crate::report`] writes the file.

pub mod data;
pub mod performance;
pub mod schema;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::Settings;
use crate::db::{DbError, PgError, Target};
use crate::report::{Finding, Severity, SeverityCounts};
use crate::source::MigrationSet;

/// What to check and how.
#[derive(Debug, Clone)]
pub struct ValidateOptions {
    pub schema: bool,
    /// Where the expected schema comes from (`schema` section).
    pub expected: schema::Expected,
    /// Where a scratch database for the expected schema may be created.
    pub scratch: crate::scratch::ScratchOptions,
    pub data: bool,
    pub performance: bool,
    /// Schemas to look at; empty = every non-system schema.
    pub schemas: Vec<String>,
    /// Tables (`table` or `schema.table`) whose values never appear in a report: their findings
    /// carry counts, never sample rows.
    pub sensitive: Vec<String>,
    /// `Some(pct)`: scan a `TABLESAMPLE SYSTEM (pct)` of each table instead of all of it.
    pub sample_percent: Option<f64>,
    /// `statement_timeout` of each data check.
    pub check_timeout: Duration,
    /// Concurrent data checks (at least 1).
    pub parallel: usize,
}

impl ValidateOptions {
    pub fn from_settings(settings: &Settings) -> Self {
        ValidateOptions {
            schema: true,
            expected: schema::Expected::Folder,
            scratch: crate::scratch::ScratchOptions::default(),
            data: true,
            performance: true,
            schemas: Vec::new(),
            sensitive: Vec::new(),
            sample_percent: None,
            check_timeout: Duration::from_secs(300),
            parallel: settings.pool_size.max(1),
        }
    }

    /// Whether `schema.table` is marked sensitive (`table` alone matches any schema).
    pub fn is_sensitive(&self, schema: &str, table: &str) -> bool {
        self.sensitive.iter().any(|s| match s.split_once('.') {
            Some((sc, t)) => sc == schema && t == table,
            None => s == table,
        })
    }
}

/// How one check went.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct CheckRun {
    /// Section: `data` or `performance` (or `schema`).
    pub section: &'static str,
    pub name: String,
    /// `ok`, `skipped` (a missing privilege or extension: see `note`), `timeout` or `error`.
    pub status: &'static str,
    pub duration_ms: u64,
    pub findings: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Numbers worth seeing even when nothing is wrong (largest tables, slowest statements).
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub data: serde_json::Value,
}

/// The outcome of `validate`: the spec's `reports/validation-YYYY-MM-DD.json`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ValidationReport {
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// The database, with its password redacted.
    pub database: String,
    pub server_version: String,
    pub duration_ms: u64,
    pub sections: Vec<&'static str>,
    pub sample_percent: Option<f64>,
    pub counts: SeverityCounts,
    pub findings: Vec<Finding>,
    pub checks: Vec<CheckRun>,
}

impl ValidationReport {
    /// The worst severity found, if any.
    pub fn worst(&self) -> Option<Severity> {
        crate::report::worst(&self.findings)
    }

    /// Whether a gate at `fail_on` fails: a finding at or above it, or a check that errored
    /// (an incomplete validation never passes).
    pub fn fails(&self, fail_on: Severity) -> bool {
        self.worst().is_some_and(|w| w >= fail_on) || self.errored().next().is_some()
    }

    /// The checks that failed with an error (not skipped for a missing privilege, not timed
    /// out): the report is incomplete and a gate on it must not pass.
    pub fn errored(&self) -> impl Iterator<Item = &CheckRun> {
        self.checks.iter().filter(|c| c.status == "error")
    }
}

/// Why one check could not run.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Db(#[from] DbError),
    /// Reading the live database's catalog.
    #[error(transparent)]
    Schema(#[from] crate::schema::SchemaError),
    /// The schema the database should have could not be built or read.
    #[error("the expected schema could not be built")]
    Expected(#[source] crate::snapshot_input::SnapshotInputError),
    /// The ledger could not be read to know what is applied.
    #[error("reading the ledger failed")]
    Ledger(#[source] crate::migrate::MigrateError),
    /// The scratch database the expected schema is built in could not be made.
    #[error("no scratch database for the expected schema")]
    Scratch(#[source] crate::scratch::ScratchError),
    /// drizzle-kit's snapshot of the last applied migration could not be read.
    #[error(transparent)]
    DrizzleSnapshot(#[from] crate::schema::drizzle_snapshot::DrizzleSnapshotError),
}

impl CheckError {
    /// PostgreSQL's own error, when the server sent one.
    pub fn pg(&self) -> Option<&PgError> {
        use crate::snapshot_input::SnapshotInputError as S;
        match self {
            CheckError::Db(d)
            | CheckError::Schema(crate::schema::SchemaError::Db(d))
            | CheckError::Expected(S::Db(d))
            | CheckError::Expected(S::Schema(crate::schema::SchemaError::Db(d))) => d.pg(),
            CheckError::Expected(S::Migrate { source, .. }) | CheckError::Ledger(source) => {
                match source {
                    crate::migrate::MigrateError::Failed { pg, .. } => Some(pg),
                    crate::migrate::MigrateError::Db(d) => d.pg(),
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Migrate(#[from] crate::migrate::MigrateError),
}

/// The result of one check: its findings, or why it could not run.
pub(crate) struct Outcome {
    pub findings: Vec<Finding>,
    pub data: serde_json::Value,
    pub note: Option<String>,
}

impl Outcome {
    pub fn findings(findings: Vec<Finding>) -> Self {
        Outcome {
            findings,
            data: serde_json::Value::Null,
            note: None,
        }
    }
}

/// Runs the selected sections against `target`. `set` (the migration folder) lets the data
/// section check what pending migrations are about to add.
pub async fn run(
    target: &Target,
    settings: &Settings,
    set: Option<&MigrationSet>,
    opts: &ValidateOptions,
) -> Result<ValidationReport, ValidateError> {
    let started_at = chrono::Utc::now();
    let started = Instant::now();
    let client = target.connect().await?;
    let server_version: String = client
        .query_one("SELECT current_setting('server_version')", &[])
        .await
        .map_err(|e| DbError::query("reading the server version", e))?
        .get(0);
    let mut checks = Vec::new();
    let mut sections = Vec::new();
    if opts.schema {
        sections.push("schema");
        let mut scratch = opts.scratch.clone();
        if scratch.target.is_none() {
            scratch.target = Some(target.clone());
        }
        checks.extend(
            schema::run(
                &client,
                settings,
                set,
                &opts.expected,
                &scratch,
                &opts.schemas,
            )
            .await,
        );
    }
    if opts.data {
        sections.push("data");
        let pending = match set {
            Some(set) => {
                let plan = crate::migrate::Migrator::new(settings, set)
                    .plan(&client)
                    .await?;
                plan.pending(set)
                    .map(|(_, m)| m.clone())
                    .collect::<Vec<_>>()
            }
            None => Vec::new(),
        };
        let pool = target.pool(settings)?;
        checks.extend(data::run(&client, &pool, opts, &pending).await?);
    }
    if opts.performance {
        sections.push("performance");
        checks.extend(performance::run(&client, opts).await?);
    }
    let mut findings: Vec<Finding> = Vec::new();
    let mut seen = HashSet::new();
    for c in &mut checks {
        for f in std::mem::take(&mut c.1) {
            if seen.insert((f.id.clone(), f.object.clone(), f.message.clone())) {
                findings.push(f);
            }
        }
    }
    // Worst first, then by rule and object, so two runs over the same database read the same.
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.id.cmp(&b.id))
            .then_with(|| a.object.cmp(&b.object))
    });
    Ok(ValidationReport {
        started_at,
        database: target.to_string(),
        server_version,
        duration_ms: started.elapsed().as_millis() as u64,
        sections,
        sample_percent: opts.sample_percent,
        counts: SeverityCounts::of(&findings),
        findings,
        checks: checks.into_iter().map(|c| c.0).collect(),
    })
}

/// Runs one check and records how it went. Errors become the check's status: a missing
/// privilege (42501) is `skipped` with the server's message, a statement timeout (57014)
/// `timeout`, anything else `error`.
pub(crate) async fn timed<F, E>(
    section: &'static str,
    name: String,
    f: F,
) -> (CheckRun, Vec<Finding>)
where
    F: std::future::Future<Output = Result<Outcome, E>>,
    E: Into<CheckError>,
{
    let started = Instant::now();
    let result = f.await.map_err(Into::into);
    let duration_ms = started.elapsed().as_millis() as u64;
    match result {
        Ok(o) => (
            CheckRun {
                section,
                name,
                status: if o.note.is_some() && o.findings.is_empty() && o.data.is_null() {
                    "skipped"
                } else {
                    "ok"
                },
                duration_ms,
                findings: o.findings.len(),
                note: o.note,
                data: o.data,
            },
            o.findings,
        ),
        Err(e) => {
            let (status, note) = match e.pg().map(|p: &PgError| p.code.as_str()) {
                Some("42501") => ("skipped", format!("lacks a privilege: {e}")),
                Some("57014") => (
                    "timeout",
                    format!("cancelled by the check timeout: {e}; raise --check-timeout or use --sample"),
                ),
                _ => ("error", crate::db::error_chain(&e)),
            };
            (
                CheckRun {
                    section,
                    name,
                    status,
                    duration_ms,
                    findings: 0,
                    note: Some(note),
                    data: serde_json::Value::Null,
                },
                Vec::new(),
            )
        }
    }
}

/// `AND <col> <filter>`: the schemas to look at.
pub(crate) fn schema_filter(col: &str, schemas: &[String]) -> String {
    if schemas.is_empty() {
        format!(
            "{col} NOT IN ('pg_catalog', 'information_schema') AND {col} NOT LIKE 'pg\\_toast%' AND {col} NOT LIKE 'pg\\_temp\\_%'"
        )
    } else {
        let list: Vec<String> = schemas
            .iter()
            .map(|s| crate::ident::quote_literal(s))
            .collect();
        format!("{col} IN ({})", list.join(", "))
    }
}

impl crate::outcome::Classify for ValidateError {
    fn kind(&self) -> crate::outcome::FailureKind {
        match self {
            ValidateError::Db(d) => d.kind(),
            ValidateError::Migrate(m) => m.kind(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensitive_tables_match_with_or_without_schema() {
        let mut o = ValidateOptions::from_settings(&Settings::defaults());
        o.sensitive = vec!["users".into(), "billing.cards".into()];
        assert!(o.is_sensitive("public", "users"));
        assert!(o.is_sensitive("app", "users"));
        assert!(o.is_sensitive("billing", "cards"));
        assert!(!o.is_sensitive("public", "cards"));
    }

    #[test]
    fn schema_filter_lists_or_excludes_system_schemas() {
        assert_eq!(
            schema_filter("n.nspname", &["public".into(), "o'k".into()]),
            "n.nspname IN (E'public', E'o''k')"
        );
        assert!(schema_filter("n.nspname", &[]).contains("NOT IN ('pg_catalog'"));
    }
}
