//! Many databases: one command over a fleet of targets (a database per tenant, a schema per
//! tenant, shards).
//!
//! This module owns the targets file ([`TargetsFile`], `targets.toml`), turning it into
//! [`FleetTarget`]s (each a name and the [`Settings`] to reach it: its URL, and for a tenant
//! schema its own ledger schema and `search_path`), the generic runner [`run`] (bounded
//! concurrency, canary targets first, stop on the first failure or continue, resume from an
//! earlier report, stop launching on Ctrl-C), the [`FleetReport`] with one line per target, and
//! [`migrate_target`], what `pgkeel migrate --targets` runs on each target. The runner knows
//! nothing about what it runs: any command (migrate, deploy, …) passes its own closure. It must
//! not render anything or decide exit codes; that is the CLI's.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures_util::stream::{FuturesUnordered, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::config::{redact_text, Origin, Settings};
use crate::db::{DbError, Target};
use crate::migrate::{MigrateError, MigrateOptions, Migrator, Silent};
use crate::source::MigrationSet;

/// `targets.toml`: the databases and tenant schemas a fleet command runs on.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct TargetsFile {
    /// `[[database]]`: one target per entry.
    pub database: Vec<DatabaseEntry>,
    /// `[[tenants]]`: one target per schema a query lists.
    pub tenants: Vec<TenantsEntry>,
    /// The file this was read from, for error messages and settings origins.
    #[serde(skip)]
    pub path: PathBuf,
}

/// A `[[database]]` entry. Exactly one of `url` and `url-env` is set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct DatabaseEntry {
    /// The target's name; default: the URL's database name.
    pub name: Option<String>,
    /// The connection URL. Keep passwords out of the file: use `url-env` or `PGPASSWORD`.
    pub url: Option<String>,
    /// The environment variable holding the URL.
    #[serde(alias = "url_env")]
    pub url_env: Option<String>,
}

/// A `[[tenants]]` entry: the schemas `query` returns (first column), each a target named
/// `<name>/<schema>`, with its ledger in that schema and `search_path` set to it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct TenantsEntry {
    /// Prefix of the targets' names; default: the URL's database name.
    pub name: Option<String>,
    /// The database holding the schemas; default: the configured DATABASE_URL.
    pub url: Option<String>,
    #[serde(alias = "url_env")]
    pub url_env: Option<String>,
    /// Lists the tenant schemas, one per row, in the first column.
    pub query: String,
}

/// Errors of reading a targets file or a fleet report. Each names the file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("cannot read targets file {}: {error}; check the --targets path", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    /// `message` is toml's, without the offending line (it may hold a URL with a password).
    #[error(
        "invalid targets file {} at line {line}: {message}\n(expected [[database]] entries with \
         name, url or url-env, and [[tenants]] entries with name, url or url-env, query; see \
         examples/targets.toml)",
        path.display()
    )]
    Toml {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{entry} in {} has no URL: set `url` or `url-env` (the name of an environment variable holding it)", path.display())]
    MissingUrl { path: PathBuf, entry: String },
    #[error("{entry} in {} sets both `url` and `url-env`: keep one", path.display())]
    BothUrls { path: PathBuf, entry: String },
    #[error("environment variable {var} (`url-env` of {entry} in {}) is not set: export it, or fix the name", path.display())]
    EnvNotSet {
        path: PathBuf,
        entry: String,
        var: String,
    },
    #[error("{entry} in {} has no `url` and no database is configured: set `url` or `url-env` there, or DATABASE_URL", path.display())]
    NoDefaultUrl { path: PathBuf, entry: String },
    #[error("{entry} in {}: {error}", path.display())]
    InvalidUrl {
        path: PathBuf,
        entry: String,
        error: DbError,
    },
    #[error("{entry} in {} has an empty `query`: give the SQL that lists the tenant schemas", path.display())]
    EmptyQuery { path: PathBuf, entry: String },
    #[error("listing the tenant schemas of {entry} in {}: {error}", path.display())]
    TenantQuery {
        path: PathBuf,
        entry: String,
        error: DbError,
    },
    #[error("two targets in {} are named `{name}` ({first} and {second}): give one of them a distinct `name`", path.display())]
    DuplicateName {
        path: PathBuf,
        name: String,
        first: String,
        second: String,
    },
    #[error("{} lists no targets: add a [[database]] entry, or a [[tenants]] entry whose query returns schemas", path.display())]
    Empty { path: PathBuf },
    #[error("cannot read report {}: {error}; pass the JSON report a previous run wrote (reports/fleet-*.json)", path.display())]
    ReadReport {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{} is not a fleet report: {message}; pass the JSON report a previous run wrote (reports/fleet-*.json)", path.display())]
    ParseReport { path: PathBuf, message: String },
}

impl FleetError {
    /// True when a server could not be reached while resolving the targets.
    pub fn is_connection(&self) -> bool {
        matches!(self, FleetError::TenantQuery { error, .. } if error.is_connection())
    }
}

impl TargetsFile {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Self, FleetError> {
        let text = std::fs::read_to_string(path).map_err(|error| FleetError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        Self::parse(&text, path)
    }

    /// Parses `text`, read from `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Self, FleetError> {
        let mut file: TargetsFile = toml::from_str(text).map_err(|e| FleetError::Toml {
            path: path.to_path_buf(),
            line: e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
                .unwrap_or(1),
            message: redact_text(e.message().trim_end()),
        })?;
        file.path = path.to_path_buf();
        Ok(file)
    }
}

/// One place a fleet command runs: a database, or a tenant schema in one.
#[derive(Debug, Clone)]
pub struct FleetTarget {
    /// Stable and unique in the fleet: the database name (or the entry's `name`), or
    /// `<database>/<schema>` for a tenant schema. Reports and `--resume` go by it.
    pub name: String,
    /// Where it connects, password redacted (`postgresql://user:***@host:port/db`).
    pub database: String,
    /// The tenant schema, for `[[tenants]]` targets.
    pub schema: Option<String>,
    /// The settings to run with: the command's own, with this target's URL, and for a tenant
    /// schema `ledger_schema` and `search_path` set to it (and drizzle-orm's table, kept only
    /// for journal folders, in `drizzle_<schema>`, so tenants never share it).
    pub settings: Settings,
}

/// Resolves `file` into targets, in file order (`[[database]]` entries, then `[[tenants]]`),
/// each with `base` adapted to it. `env` is where `url-env` variables are looked up. Runs each
/// `[[tenants]]` query; a duplicate name is an error.
pub async fn resolve(
    file: &TargetsFile,
    base: &Settings,
    env: &HashMap<String, String>,
) -> Result<Vec<FleetTarget>, FleetError> {
    let path = &file.path;
    let mut targets: Vec<FleetTarget> = Vec::new();
    let mut origin_of: HashMap<String, String> = HashMap::new();
    let mut push = |t: FleetTarget, entry: &str| -> Result<(), FleetError> {
        if let Some(first) = origin_of.get(&t.name) {
            return Err(FleetError::DuplicateName {
                path: path.clone(),
                name: t.name,
                first: first.clone(),
                second: entry.to_string(),
            });
        }
        origin_of.insert(t.name.clone(), entry.to_string());
        targets.push(t);
        Ok(())
    };

    for (i, d) in file.database.iter().enumerate() {
        let entry = describe_entry("database", i, d.name.as_deref());
        let url = entry_url(path, &entry, d.url.as_deref(), d.url_env.as_deref(), env)?
            .ok_or_else(|| FleetError::MissingUrl {
                path: path.clone(),
                entry: entry.clone(),
            })?;
        let settings = with_url(base, url, path);
        let target = target_of(&settings, path, &entry)?;
        let name = d
            .name
            .clone()
            .unwrap_or_else(|| target.dbname().to_string());
        push(
            FleetTarget {
                name,
                database: target.to_string(),
                schema: None,
                settings,
            },
            &entry,
        )?;
    }

    for (i, t) in file.tenants.iter().enumerate() {
        let entry = describe_entry("tenants", i, t.name.as_deref());
        if t.query.trim().is_empty() {
            return Err(FleetError::EmptyQuery {
                path: path.clone(),
                entry,
            });
        }
        let settings = match entry_url(path, &entry, t.url.as_deref(), t.url_env.as_deref(), env)? {
            Some(url) => with_url(base, url, path),
            None => base.clone(),
        };
        let target = match Target::from_settings(&settings) {
            Err(DbError::NotConfigured) => {
                return Err(FleetError::NoDefaultUrl {
                    path: path.clone(),
                    entry,
                })
            }
            other => other.map_err(|error| FleetError::InvalidUrl {
                path: path.clone(),
                entry: entry.clone(),
                error,
            })?,
        };
        let schemas =
            list_schemas(&target, &t.query)
                .await
                .map_err(|error| FleetError::TenantQuery {
                    path: path.clone(),
                    entry: entry.clone(),
                    error,
                })?;
        let prefix = t
            .name
            .clone()
            .unwrap_or_else(|| target.dbname().to_string());
        for schema in schemas {
            let mut s = settings.clone();
            s.ledger_schema = schema.clone();
            s.drizzle_schema = format!("drizzle_{schema}");
            s.search_path = vec![schema.clone()];
            for key in ["ledger.schema", "drizzle.schema"] {
                s.origins
                    .insert(key.to_string(), Origin::File(path.to_path_buf()));
            }
            push(
                FleetTarget {
                    name: format!("{prefix}/{schema}"),
                    database: target.to_string(),
                    schema: Some(schema),
                    settings: s,
                },
                &entry,
            )?;
        }
    }

    if targets.is_empty() {
        return Err(FleetError::Empty { path: path.clone() });
    }
    Ok(targets)
}

fn describe_entry(kind: &str, index: usize, name: Option<&str>) -> String {
    match name {
        Some(n) => format!("[[{kind}]] #{} (`{n}`)", index + 1),
        None => format!("[[{kind}]] #{}", index + 1),
    }
}

fn entry_url(
    path: &Path,
    entry: &str,
    url: Option<&str>,
    url_env: Option<&str>,
    env: &HashMap<String, String>,
) -> Result<Option<String>, FleetError> {
    match (url, url_env) {
        (Some(_), Some(_)) => Err(FleetError::BothUrls {
            path: path.to_path_buf(),
            entry: entry.to_string(),
        }),
        (Some(u), None) => Ok(Some(u.to_string())),
        (None, Some(var)) => match env.get(var) {
            Some(v) if !v.trim().is_empty() => Ok(Some(v.clone())),
            _ => Err(FleetError::EnvNotSet {
                path: path.to_path_buf(),
                entry: entry.to_string(),
                var: var.to_string(),
            }),
        },
        (None, None) => Ok(None),
    }
}

fn with_url(base: &Settings, url: String, path: &Path) -> Settings {
    let mut s = base.clone();
    s.database_url = Some(url);
    s.origins
        .insert("database-url".into(), Origin::File(path.to_path_buf()));
    s
}

fn target_of(settings: &Settings, path: &Path, entry: &str) -> Result<Target, FleetError> {
    Target::from_settings(settings).map_err(|error| FleetError::InvalidUrl {
        path: path.to_path_buf(),
        entry: entry.to_string(),
        error,
    })
}

/// Runs the tenants query (simple protocol: any column type arrives as text); NULLs are skipped.
async fn list_schemas(target: &Target, query: &str) -> Result<Vec<String>, DbError> {
    let client = target.connect().await?;
    let messages = client
        .simple_query(query)
        .await
        .map_err(|e| DbError::query("running the tenants query", e))?;
    Ok(messages
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .collect())
}

/// How a fleet run proceeds.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// Targets running at once (at least 1).
    pub parallel: usize,
    /// The first `canary` targets (in file order, not counting resumed ones) run first, at most
    /// `parallel` of them at once; if any fails, no other target runs.
    pub canary: usize,
    /// Keep launching targets after one failed (otherwise running ones finish, the rest are
    /// `not-run`).
    pub continue_on_error: bool,
    /// Names done in an earlier run (see [`done_in_report`]): reported `skipped`, not run.
    pub resume: Option<BTreeSet<String>>,
    /// Turns true on Ctrl-C: no new target is launched; running ones finish (the closure
    /// decides how fast, e.g. [`Migrator::with_interrupt`]).
    pub interrupt: Option<watch::Receiver<bool>>,
}

impl Default for FleetOptions {
    fn default() -> Self {
        FleetOptions {
            parallel: 4,
            canary: 0,
            continue_on_error: false,
            resume: None,
            interrupt: None,
        }
    }
}

impl FleetOptions {
    fn interrupted(&self) -> bool {
        self.interrupt.as_ref().is_some_and(|rx| *rx.borrow())
    }
}

/// What the closure passed to [`run`] says about one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OutcomeStatus {
    Ok,
    Failed,
}

/// The result of running a command on one target.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetOutcome {
    pub status: OutcomeStatus,
    /// The error, as the command would print it (no password).
    pub error: Option<String>,
    /// True when the failure was about reaching the server (refused, timed out, authentication,
    /// connection lost), not about what was asked of it.
    pub connection_error: bool,
    /// Command-specific result (for migrate: its [`crate::migrate::MigrateReport`]).
    pub detail: serde_json::Value,
}

impl TargetOutcome {
    pub fn ok(detail: serde_json::Value) -> Self {
        TargetOutcome {
            status: OutcomeStatus::Ok,
            error: None,
            connection_error: false,
            detail,
        }
    }

    pub fn failed(error: impl fmt::Display, detail: serde_json::Value) -> Self {
        TargetOutcome {
            status: OutcomeStatus::Failed,
            error: Some(error.to_string()),
            connection_error: false,
            detail,
        }
    }

    /// A failure to reach the server.
    pub fn connection_failed(error: impl fmt::Display) -> Self {
        TargetOutcome {
            connection_error: true,
            ..TargetOutcome::failed(error, serde_json::Value::Null)
        }
    }
}

/// A target's state in the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TargetStatus {
    Ok,
    Failed,
    /// Done in the run being resumed.
    Skipped,
    /// Not started: an earlier failure (or a failed canary, or Ctrl-C) stopped the run.
    NotRun,
}

impl TargetStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetStatus::Ok => "ok",
            TargetStatus::Failed => "failed",
            TargetStatus::Skipped => "skipped",
            TargetStatus::NotRun => "not-run",
        }
    }

    /// Ok or skipped: nothing left to do there.
    pub fn is_done(self) -> bool {
        matches!(self, TargetStatus::Ok | TargetStatus::Skipped)
    }
}

impl fmt::Display for TargetStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One target's line in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TargetLine {
    pub name: String,
    /// Password redacted.
    pub database: String,
    pub schema: Option<String>,
    pub status: TargetStatus,
    pub duration_ms: u64,
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub connection_error: bool,
    #[serde(default)]
    pub detail: serde_json::Value,
}

/// How many targets ended in each state.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct FleetCounts {
    pub total: usize,
    pub ok: usize,
    pub failed: usize,
    pub skipped: usize,
    pub not_run: usize,
}

/// The outcome of a fleet run; written to `reports/fleet-<command>-…json` by the CLI and read
/// back by `--resume` ([`done_in_report`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FleetReport {
    pub started_at: DateTime<Utc>,
    pub duration_ms: u64,
    pub parallel: usize,
    pub canary: usize,
    pub continue_on_error: bool,
    /// Why targets were left `not-run`, if any were.
    pub stopped: Option<String>,
    /// Ctrl-C stopped the run.
    pub interrupted: bool,
    /// In the targets file's order.
    pub targets: Vec<TargetLine>,
    pub counts: FleetCounts,
}

impl FleetReport {
    /// Every target ok or skipped.
    pub fn all_done(&self) -> bool {
        self.targets.iter().all(|t| t.status.is_done())
    }

    /// At least one target failed and every failure was a connection failure.
    pub fn only_connection_failures(&self) -> bool {
        let mut failed = self
            .targets
            .iter()
            .filter(|t| t.status == TargetStatus::Failed)
            .peekable();
        failed.peek().is_some() && failed.all(|t| t.connection_error)
    }

    /// Names of the targets with nothing left to do (ok or skipped).
    pub fn done(&self) -> BTreeSet<String> {
        self.targets
            .iter()
            .filter(|t| t.status.is_done())
            .map(|t| t.name.clone())
            .collect()
    }
}

/// The names done (status `ok` or `skipped`) in the report at `path`, for `--resume REPORT`.
pub fn done_in_report(path: &Path) -> Result<BTreeSet<String>, FleetError> {
    #[derive(Deserialize)]
    struct Lines {
        targets: Vec<NameStatus>,
    }
    #[derive(Deserialize)]
    struct NameStatus {
        name: String,
        status: TargetStatus,
    }
    let text = std::fs::read(path).map_err(|error| FleetError::ReadReport {
        path: path.to_path_buf(),
        error,
    })?;
    let lines: Lines = serde_json::from_slice(&text).map_err(|e| FleetError::ParseReport {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok(lines
        .targets
        .into_iter()
        .filter(|t| t.status.is_done())
        .map(|t| t.name)
        .collect())
}

/// Runs `f` on every target (see [`run_with_progress`]).
pub async fn run<F, Fut>(targets: Vec<FleetTarget>, opts: &FleetOptions, f: F) -> FleetReport
where
    F: FnMut(FleetTarget) -> Fut,
    Fut: Future<Output = TargetOutcome>,
{
    run_with_progress(targets, opts, f, |_| {}).await
}

/// Runs `f` on every target: resumed ones are `skipped`; the first `opts.canary` others run
/// first, and if one fails nothing else runs; then the rest, at most `opts.parallel` at once.
/// Without `continue_on_error` the first failure stops launching (running targets finish, the
/// rest are `not-run`); so does `opts.interrupt`. `progress` sees each line as it is settled
/// (finished targets as they finish; skipped first, not-run last). The futures run concurrently
/// on the caller's task, so `f` may borrow (a migration set, options).
pub async fn run_with_progress<F, Fut, P>(
    targets: Vec<FleetTarget>,
    opts: &FleetOptions,
    mut f: F,
    mut progress: P,
) -> FleetReport
where
    F: FnMut(FleetTarget) -> Fut,
    Fut: Future<Output = TargetOutcome>,
    P: FnMut(&TargetLine),
{
    let started_at = Utc::now();
    let started = Instant::now();
    let parallel = opts.parallel.max(1);
    let mut lines: Vec<Option<TargetLine>> = vec![None; targets.len()];
    let mut todo = Vec::new();
    for (i, t) in targets.into_iter().enumerate() {
        if opts
            .resume
            .as_ref()
            .is_some_and(|done| done.contains(&t.name))
        {
            let line = line_of(&t, TargetStatus::Skipped, 0);
            progress(&line);
            lines[i] = Some(line);
        } else {
            todo.push((i, t));
        }
    }
    let rest = todo.split_off(opts.canary.min(todo.len()));
    let canaries = todo;
    let mut phase = Phase {
        opts,
        lines: &mut lines,
        stopped: None,
    };
    if !canaries.is_empty() {
        let limit = parallel.min(canaries.len());
        let failed = phase.run(canaries, limit, &mut f, &mut progress).await;
        if !failed.is_empty() && phase.stopped.is_none() {
            phase.stopped = Some(format!("canary failed: {}", failed.join(", ")));
        }
    }
    phase.run(rest, parallel, &mut f, &mut progress).await;
    let stopped = phase.stopped;
    // Not-run lines last, in file order.
    let lines: Vec<TargetLine> = lines
        .into_iter()
        .map(|l| l.expect("every target has a line"))
        .collect();
    for l in lines.iter().filter(|l| l.status == TargetStatus::NotRun) {
        progress(l);
    }
    let mut counts = FleetCounts {
        total: lines.len(),
        ..FleetCounts::default()
    };
    for l in &lines {
        match l.status {
            TargetStatus::Ok => counts.ok += 1,
            TargetStatus::Failed => counts.failed += 1,
            TargetStatus::Skipped => counts.skipped += 1,
            TargetStatus::NotRun => counts.not_run += 1,
        }
    }
    FleetReport {
        started_at,
        duration_ms: started.elapsed().as_millis() as u64,
        parallel,
        canary: opts.canary,
        continue_on_error: opts.continue_on_error,
        interrupted: opts.interrupted(),
        stopped: if counts.not_run > 0 { stopped } else { None },
        targets: lines,
        counts,
    }
}

fn line_of(t: &FleetTarget, status: TargetStatus, duration_ms: u64) -> TargetLine {
    TargetLine {
        name: t.name.clone(),
        database: t.database.clone(),
        schema: t.schema.clone(),
        status,
        duration_ms,
        error: None,
        connection_error: false,
        detail: serde_json::Value::Null,
    }
}

/// The state of one run shared by its phases (canaries, then the rest).
struct Phase<'a> {
    opts: &'a FleetOptions,
    lines: &'a mut Vec<Option<TargetLine>>,
    /// Set once launching must stop: why.
    stopped: Option<String>,
}

impl Phase<'_> {
    /// Runs `batch` with at most `limit` at once; returns the names that failed. Once
    /// `self.stopped` is set nothing more is launched and the rest become `not-run`.
    async fn run<F, Fut, P>(
        &mut self,
        batch: Vec<(usize, FleetTarget)>,
        limit: usize,
        f: &mut F,
        progress: &mut P,
    ) -> Vec<String>
    where
        F: FnMut(FleetTarget) -> Fut,
        Fut: Future<Output = TargetOutcome>,
        P: FnMut(&TargetLine),
    {
        let mut queue = batch.into_iter();
        let mut running = FuturesUnordered::new();
        let mut failed = Vec::new();
        loop {
            while self.stopped.is_none() && running.len() < limit {
                if self.opts.interrupted() {
                    self.stopped = Some("interrupted".into());
                    break;
                }
                let Some((i, t)) = queue.next() else { break };
                let line = line_of(&t, TargetStatus::NotRun, 0);
                let fut = f(t);
                running.push(async move {
                    let started = Instant::now();
                    let outcome = fut.await;
                    (i, line, outcome, started.elapsed().as_millis() as u64)
                });
            }
            let Some((i, mut line, outcome, ms)) = running.next().await else {
                break;
            };
            line.status = match outcome.status {
                OutcomeStatus::Ok => TargetStatus::Ok,
                OutcomeStatus::Failed => TargetStatus::Failed,
            };
            line.duration_ms = ms;
            line.error = outcome.error;
            line.connection_error = outcome.connection_error;
            line.detail = outcome.detail;
            if line.status == TargetStatus::Failed {
                failed.push(line.name.clone());
                if !self.opts.continue_on_error && self.stopped.is_none() {
                    self.stopped = Some(format!("{} failed (no --continue-on-error)", line.name));
                }
            }
            progress(&line);
            self.lines[i] = Some(line);
        }
        for (i, t) in queue {
            self.lines[i] = Some(line_of(&t, TargetStatus::NotRun, 0));
        }
        failed
    }
}

/// `pgkeel migrate` on one target: its own connection, deploy lock and ledger. The detail is
/// the [`crate::migrate::MigrateReport`] (on failure: the server's error and what was applied
/// before it).
pub async fn migrate_target(
    target: FleetTarget,
    set: &MigrationSet,
    opts: &MigrateOptions,
    interrupt: Option<watch::Receiver<bool>>,
) -> TargetOutcome {
    let client = match Target::from_settings(&target.settings) {
        Ok(t) => match t.connect().await {
            Ok(c) => c,
            Err(e) => return db_failure(e),
        },
        Err(e) => return db_failure(e),
    };
    let mut migrator = Migrator::new(&target.settings, set);
    if let Some(rx) = interrupt {
        migrator = migrator.with_interrupt(rx);
    }
    match migrator.migrate(&client, opts, &mut Silent).await {
        Ok(report) => TargetOutcome::ok(serde_json::to_value(&report).unwrap_or_default()),
        Err(MigrateError::Db(e)) => db_failure(e),
        Err(e) => {
            let detail = match &e {
                MigrateError::Failed {
                    id,
                    pg,
                    applied_before,
                    ..
                } => serde_json::json!({
                    "migration": id,
                    "postgres": pg,
                    "applied_before": applied_before,
                }),
                _ => serde_json::Value::Null,
            };
            TargetOutcome::failed(e, detail)
        }
    }
}

fn db_failure(e: DbError) -> TargetOutcome {
    if e.is_connection() {
        TargetOutcome::connection_failed(e)
    } else {
        let detail = e
            .pg()
            .map(|pg| serde_json::json!({ "postgres": pg }))
            .unwrap_or_default();
        TargetOutcome::failed(e, detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<TargetsFile, FleetError> {
        TargetsFile::parse(text, Path::new("/app/targets.toml"))
    }

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn target(name: &str) -> FleetTarget {
        FleetTarget {
            name: name.into(),
            database: format!("postgresql://u@h:5432/{name}"),
            schema: None,
            settings: Settings::defaults(),
        }
    }

    #[test]
    fn the_example_file_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/targets.toml");
        let file = TargetsFile::load(&path).unwrap();
        assert!(!file.database.is_empty() && !file.tenants.is_empty());
        assert_eq!(file.path, path);
    }

    #[test]
    fn unknown_keys_are_rejected_with_the_path_and_line() {
        let err = parse("[[database]]\nurl = \"postgresql://h/a\"\nurls = \"x\"\n").unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, FleetError::Toml { line: 3, .. }), "{err:?}");
        assert!(
            msg.contains("urls") && msg.contains("/app/targets.toml") && msg.contains("line 3"),
            "{msg}"
        );
        let msg = parse("[[databases]]\nurl = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("databases"), "{msg}");
    }

    #[test]
    fn toml_errors_do_not_leak_passwords() {
        let msg = parse("[[database]]\nurl = \"postgresql://u:hunter2@h/db\" junk\n")
            .unwrap_err()
            .to_string();
        assert!(!msg.contains("hunter2"), "{msg}");
    }

    #[test]
    fn url_env_is_read_from_the_environment_and_both_spellings_work() {
        let file = parse(
            "[[database]]\nname = \"eu-1\"\nurl-env = \"EU1\"\n[[database]]\nurl_env = \"US1\"\n",
        )
        .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let e = env(&[
            ("EU1", "postgresql://app:s3cret@eu.example/eu_db"),
            ("US1", "postgresql://app@us.example/us_db"),
        ]);
        let targets = rt
            .block_on(resolve(&file, &Settings::defaults(), &e))
            .unwrap();
        let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["eu-1", "us_db"]);
        assert_eq!(
            targets[0].database,
            "postgresql://app:***@eu.example:5432/eu_db"
        );
        assert_eq!(
            targets[0].settings.database_url.as_deref(),
            Some("postgresql://app:s3cret@eu.example/eu_db")
        );
        assert_eq!(
            targets[0].settings.origins["database-url"],
            Origin::File("/app/targets.toml".into())
        );

        let err = rt
            .block_on(resolve(&file, &Settings::defaults(), &env(&[])))
            .unwrap_err();
        assert!(
            matches!(&err, FleetError::EnvNotSet { var, .. } if var == "EU1"),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("[[database]] #1 (`eu-1`)"),
            "{err}"
        );
    }

    #[test]
    fn entry_mistakes_are_typed_errors() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let resolve_text = |text: &str| {
            let file = parse(text).unwrap();
            rt.block_on(resolve(
                &file,
                &Settings::defaults(),
                &env(&[("X", "postgresql://h/x")]),
            ))
        };
        assert!(matches!(
            resolve_text("[[database]]\nname = \"a\"\n"),
            Err(FleetError::MissingUrl { .. })
        ));
        assert!(matches!(
            resolve_text("[[database]]\nurl = \"postgresql://h/a\"\nurl-env = \"X\"\n"),
            Err(FleetError::BothUrls { .. })
        ));
        assert!(matches!(
            resolve_text("[[database]]\nurl = \"mysql://u:pw@h/a\"\n"),
            Err(FleetError::InvalidUrl { .. })
        ));
        assert!(matches!(
            resolve_text("[[tenants]]\nquery = \"SELECT 'a'\"\n"),
            Err(FleetError::NoDefaultUrl { .. })
        ));
        assert!(matches!(
            resolve_text("[[tenants]]\nurl = \"postgresql://h/a\"\nquery = \" \"\n"),
            Err(FleetError::EmptyQuery { .. })
        ));
        assert!(matches!(resolve_text(""), Err(FleetError::Empty { .. })));
        let err = resolve_text(
            "[[database]]\nurl = \"postgresql://h1/app\"\n[[database]]\nurl-env = \"X\"\nname = \"app\"\n",
        )
        .unwrap_err();
        assert!(
            matches!(&err, FleetError::DuplicateName { name, .. } if name == "app"),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("[[database]] #1") && msg.contains("[[database]] #2 (`app`)"),
            "{msg}"
        );
    }

    fn outcome_for(name: &str, failing: &[&str]) -> TargetOutcome {
        if failing.contains(&name) {
            TargetOutcome::failed(format!("{name} broke"), serde_json::Value::Null)
        } else {
            TargetOutcome::ok(serde_json::json!({ "name": name }))
        }
    }

    fn statuses(r: &FleetReport) -> Vec<(&str, TargetStatus)> {
        r.targets
            .iter()
            .map(|t| (t.name.as_str(), t.status))
            .collect()
    }

    #[tokio::test]
    async fn parallel_bounds_the_targets_in_flight() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let now = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let targets: Vec<FleetTarget> = (0..20).map(|i| target(&format!("t{i}"))).collect();
        let opts = FleetOptions {
            parallel: 3,
            ..FleetOptions::default()
        };
        let report = run(targets, &opts, |t| {
            let (now, peak) = (&now, &peak);
            async move {
                let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(n, Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                now.fetch_sub(1, Ordering::SeqCst);
                outcome_for(&t.name, &[])
            }
        })
        .await;
        assert_eq!(peak.load(Ordering::SeqCst), 3);
        assert_eq!(report.counts.ok, 20);
        assert!(report.all_done());
        // File order, not finishing order.
        assert_eq!(report.targets[7].name, "t7");
        assert_eq!(report.targets[7].detail["name"], "t7");
    }

    #[tokio::test]
    async fn first_failure_stops_launching_unless_continue_on_error() {
        let names = ["a", "b", "c", "d"];
        let mk = || names.iter().map(|n| target(n)).collect::<Vec<_>>();
        let opts = FleetOptions {
            parallel: 1,
            ..FleetOptions::default()
        };
        let r = run(mk(), &opts, |t| async move { outcome_for(&t.name, &["b"]) }).await;
        assert_eq!(
            statuses(&r),
            [
                ("a", TargetStatus::Ok),
                ("b", TargetStatus::Failed),
                ("c", TargetStatus::NotRun),
                ("d", TargetStatus::NotRun)
            ]
        );
        assert_eq!(r.targets[1].error.as_deref(), Some("b broke"));
        assert!(r.stopped.as_deref().unwrap().contains('b'));
        assert!(!r.only_connection_failures());

        let opts = FleetOptions {
            continue_on_error: true,
            ..opts
        };
        let r = run(mk(), &opts, |t| async move { outcome_for(&t.name, &["b"]) }).await;
        assert_eq!((r.counts.ok, r.counts.failed, r.counts.not_run), (3, 1, 0));
        assert_eq!(r.stopped, None);
    }

    #[tokio::test]
    async fn failed_canary_runs_nothing_else_even_with_continue_on_error() {
        let mk = || ["a", "b", "c", "d", "e"].map(target).to_vec();
        let opts = FleetOptions {
            parallel: 4,
            canary: 2,
            continue_on_error: true,
            ..FleetOptions::default()
        };
        let r = run(mk(), &opts, |t| async move { outcome_for(&t.name, &["b"]) }).await;
        assert_eq!(
            statuses(&r),
            [
                ("a", TargetStatus::Ok),
                ("b", TargetStatus::Failed),
                ("c", TargetStatus::NotRun),
                ("d", TargetStatus::NotRun),
                ("e", TargetStatus::NotRun)
            ]
        );
        assert!(r.stopped.as_deref().unwrap().contains("canary"), "{r:?}");
        let r = run(mk(), &opts, |t| async move { outcome_for(&t.name, &["d"]) }).await;
        assert_eq!((r.counts.ok, r.counts.failed), (4, 1));
    }

    #[tokio::test]
    async fn resume_skips_done_targets_and_the_report_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let opts = FleetOptions {
            parallel: 2,
            ..FleetOptions::default()
        };
        let first = run(
            ["a", "b", "c"].map(target).to_vec(),
            &opts,
            |t| async move { outcome_for(&t.name, &["b"]) },
        )
        .await;
        let path = crate::report::write_report_named(dir.path(), "fleet-test", &first).unwrap();
        let back: FleetReport = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(back, first);
        let done = done_in_report(&path).unwrap();
        assert_eq!(done, first.done());

        let mut seen = Vec::new();
        let opts = FleetOptions {
            resume: Some(done),
            ..opts
        };
        let second = run_with_progress(
            ["a", "b", "c"].map(target).to_vec(),
            &opts,
            |t| async move { outcome_for(&t.name, &[]) },
            |l| seen.push((l.name.clone(), l.status)),
        )
        .await;
        assert_eq!(second.targets[0].status, TargetStatus::Skipped);
        assert_eq!(second.targets[1].status, TargetStatus::Ok);
        assert!(second.all_done());
        assert_eq!(seen.len(), 3);
        // A skipped target stays done for the run after.
        assert!(done_in_report(
            &crate::report::write_report_named(dir.path(), "fleet-test", &second).unwrap()
        )
        .unwrap()
        .contains("a"));

        std::fs::write(dir.path().join("x.json"), "{\"ok\": true}").unwrap();
        let err = done_in_report(&dir.path().join("x.json")).unwrap_err();
        assert!(matches!(err, FleetError::ParseReport { .. }), "{err:?}");
        let err = done_in_report(&dir.path().join("missing.json")).unwrap_err();
        assert!(matches!(err, FleetError::ReadReport { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn interrupt_stops_launching() {
        let (tx, rx) = watch::channel(false);
        let opts = FleetOptions {
            parallel: 1,
            interrupt: Some(rx),
            ..FleetOptions::default()
        };
        let r = run(["a", "b", "c"].map(target).to_vec(), &opts, |t| {
            let tx = &tx;
            async move {
                let _ = tx.send(true);
                outcome_for(&t.name, &[])
            }
        })
        .await;
        assert_eq!((r.counts.ok, r.counts.not_run), (1, 2));
        assert!(r.interrupted);
        assert_eq!(r.stopped.as_deref(), Some("interrupted"));
    }

    #[test]
    fn only_connection_failures() {
        let mut r = FleetReport {
            started_at: Utc::now(),
            duration_ms: 0,
            parallel: 1,
            canary: 0,
            continue_on_error: true,
            stopped: None,
            interrupted: false,
            targets: vec![line_of(&target("a"), TargetStatus::Failed, 1)],
            counts: FleetCounts::default(),
        };
        assert!(!r.only_connection_failures());
        r.targets[0].connection_error = true;
        assert!(r.only_connection_failures());
        r.targets
            .push(line_of(&target("b"), TargetStatus::Failed, 1));
        assert!(!r.only_connection_failures());
    }
}
