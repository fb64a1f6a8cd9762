//! Planning and applying migrations.
//!
//! [`plan`] compares a migration folder with the ledger (pure: no I/O) and says, per migration,
//! whether it is applied, pending, failed, modified (and whether only cosmetically) or missing
//! on disk. [`Migrator`] executes a plan: one transaction per migration, sent as a single
//! simple-query batch (`BEGIN; SET LOCAL …; <migration>; <ledger row>; <audit row>; COMMIT`) so
//! the safety costs no extra round trip; statements PostgreSQL refuses inside a transaction run
//! on their own with per-statement progress; transient lock failures are retried with backoff.
//! This module does not render anything: callers get typed results and an [`Observer`] hook.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_postgres::Client;

use crate::config::Settings;
use crate::db::{Blocker, DbError, DeployLock, LockHolder, LockedSession, PgError};
use crate::invert::{Before, ColumnBefore};
use crate::ledger::{Held, Ledger, LedgerRow, Progress, RowCache, RowStatus};
pub use crate::location::Location;
use crate::source::{self, Migration, MigrationSet};
use crate::sql::{self, Batch, Statement};

/// SQLSTATE raised by the guard when another process applied the migration first.
const ALREADY_APPLIED: &str = "PGS01";

/// Errors of planning and applying. Each says how far the run got and what to do next.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(transparent)]
    Source(#[from] source::SourceError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("syntax error in {id}: {message}\n{location}")]
    Syntax {
        id: String,
        message: String,
        location: Location,
    },
    #[error(
        "{id} was applied with hash {ledger_hash} but {path} now hashes to {file_hash}; {}",
        if *.cosmetic { "the change is cosmetic only (line endings, BOM or trailing whitespace): run `pgkeel repair` to record the new hash" }
        else { "the SQL itself changed: restore the file as it was applied and put the change in a new migration (`pgkeel new NAME`), or run `pgkeel repair --force` if you are sure" }
    )]
    Modified {
        id: String,
        path: PathBuf,
        ledger_hash: String,
        file_hash: String,
        cosmetic: bool,
    },
    #[error("{} applied migration(s) changed on disk: {}; run `pgkeel status` for details", .ids.len(), .ids.join(", "))]
    ModifiedMany { ids: Vec<String> },
    #[error("migration {id} failed{}{}: {pg}{}{}\n{}", statement_note(*.statement, *.statements), attempts_note(*.attempts), blockers_note(.blockers), location_note(.location), applied_note(.id, *.committed, *.statements, .applied_before))]
    Failed {
        id: String,
        pg: PgError,
        location: Option<Location>,
        /// 0-based index of the failing statement; `None` when it was pgkeel's own SQL.
        statement: Option<usize>,
        statements: usize,
        /// Statements of this migration committed before the failing unit (they ran outside
        /// one transaction with the rest, and stay in effect).
        committed: usize,
        attempts: u32,
        applied_before: Vec<String>,
        /// Sessions that blocked the migration while it waited for a lock.
        blockers: Vec<Blocker>,
    },
    #[error("no migration `{id}` in {dir}; `pgkeel status` lists the ids")]
    UnknownId { id: String, dir: PathBuf },
    #[error("{id}: `{statement}`: {problem}\n{location}")]
    TransactionControl {
        id: String,
        statement: String,
        problem: sql::BlockProblem,
        location: Location,
    },
    #[error(
        "--single-transaction cannot include {id}: {reason}; run without --single-transaction"
    )]
    SingleTransactionImpossible { id: String, reason: &'static str },
    #[error(
        "{id} committed {done} statement(s) before it failed, and {} has changed since{}:\n  {}\n\
         Put those statements back as they were applied (only the statements after them may change) and run `pgkeel migrate` again; \
         or, if the database already matches the edited statements, accept them with `pgkeel repair --force` (the run then resumes after statement {done}); \
         or undo them by hand, delete the migration's ledger row and run again",
        .path.display(),
        .first_changed.map(|i| format!(" (statement {} differs)", i + 1)).unwrap_or_else(|| " (the ledger has no statement hashes to compare)".into()),
        .committed.join("\n  ")
    )]
    CommittedChanged {
        id: String,
        path: PathBuf,
        /// `file:line: first line` of each committed statement, in the file as it is now.
        committed: Vec<String>,
        done: usize,
        /// 0-based index of the first committed statement that differs.
        first_changed: Option<usize>,
    },
    #[error("{id} is one drizzle-orm skipped (its `when` is older than a migration drizzle applied after it); review it, apply it by hand and record it with `pgkeel baseline --to {id}`, or re-date it")]
    HeldBack { id: String },
    #[error("interrupted before or during {id}: its transaction was rolled back and the deploy lock released; migrations before it stay applied; run `pgkeel migrate` again to continue")]
    Interrupted { id: String },
}

fn statement_note(statement: Option<usize>, statements: usize) -> String {
    match statement {
        Some(i) if statements > 1 => format!(" at statement {} of {statements}", i + 1),
        Some(_) => String::new(),
        None => " in pgkeel's own bookkeeping around its statements".into(),
    }
}

fn attempts_note(attempts: u32) -> String {
    if attempts > 1 {
        format!(" after {attempts} tries")
    } else {
        String::new()
    }
}

fn blockers_note(blockers: &[Blocker]) -> String {
    if blockers.is_empty() {
        return String::new();
    }
    let list: Vec<String> = blockers
        .iter()
        .map(|b| format!("\n  blocked by {b}"))
        .collect();
    format!(
        "{}\n  (end or cancel those sessions, e.g. SELECT pg_cancel_backend(pid), or retry later)",
        list.join("")
    )
}

fn location_note(l: &Option<Location>) -> String {
    l.as_ref().map(|l| format!("\n{l}")).unwrap_or_default()
}

fn applied_note(id: &str, committed: usize, statements: usize, before: &[String]) -> String {
    let this = if committed == 0 {
        "its transaction was rolled back".to_string()
    } else {
        format!(
            "statements 1–{committed} of {statements} of {id} ran before the failing transaction and stay committed; \
             the failing transaction was rolled back; `pgkeel migrate` resumes at statement {} once it is fixed",
            committed + 1
        )
    };
    match (before.is_empty(), committed) {
        (true, 0) => format!("{this}; nothing was applied in this run"),
        (true, _) => this,
        (false, _) => format!(
            "{this}; applied before it in this run: {}",
            before.join(", ")
        ),
    }
}

impl MigrateError {
    /// Validation problems (bad files, changed files) as opposed to runtime failures.
    pub fn is_validation(&self) -> bool {
        matches!(
            self,
            MigrateError::Source(_)
                | MigrateError::Syntax { .. }
                | MigrateError::Modified { .. }
                | MigrateError::ModifiedMany { .. }
                | MigrateError::TransactionControl { .. }
                | MigrateError::SingleTransactionImpossible { .. }
                | MigrateError::CommittedChanged { .. }
        )
    }
}

/// What the plan says about one migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum State {
    Applied,
    Baselined,
    Pending,
    /// Tried and failed; will be retried (resumed) by the next `migrate`.
    Failed,
    RolledBack,
    /// In effect, but its file changed since.
    Modified {
        cosmetic: bool,
    },
    /// In the ledger, not on disk.
    MissingFile,
}

/// One line of `pgkeel status`.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub id: String,
    #[serde(flatten)]
    pub state: State,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ledger_hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied_at: Option<chrono::NaiveDateTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip)]
    pub statements_done: Option<i32>,
    #[serde(skip)]
    pub statement_hashes: Option<Vec<String>>,
    #[serde(skip)]
    pub index: Option<usize>,
}

impl Entry {
    /// The error that refuses to go on with this changed file.
    fn modified_error(&self) -> MigrateError {
        MigrateError::Modified {
            id: self.id.clone(),
            path: self.path.clone().unwrap_or_default(),
            ledger_hash: self.ledger_hash.clone().unwrap_or_default(),
            file_hash: self.file_hash.clone().unwrap_or_default(),
            cosmetic: self.state == (State::Modified { cosmetic: true }),
        }
    }
}

/// Counts over a plan.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Counts {
    pub applied: usize,
    pub pending: usize,
    pub failed: usize,
    pub rolled_back: usize,
    pub modified: usize,
    pub missing_file: usize,
}

/// The folder compared with the ledger.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub migrations: Vec<Entry>,
    pub counts: Counts,
}

impl Plan {
    /// Migrations the next `migrate` would run, in order.
    pub fn pending<'a>(
        &'a self,
        set: &'a MigrationSet,
    ) -> impl Iterator<Item = (&'a Entry, &'a Migration)> {
        self.migrations.iter().filter_map(move |e| {
            let runnable = matches!(e.state, State::Pending | State::Failed | State::RolledBack);
            runnable
                .then(|| e.index.map(|i| (e, &set.migrations[i])))
                .flatten()
        })
    }

    pub fn modified(&self) -> impl Iterator<Item = &Entry> {
        self.migrations
            .iter()
            .filter(|e| matches!(e.state, State::Modified { .. }))
    }
}

/// Compares the folder with the ledger rows. Linear in the number of migrations.
pub fn plan(set: &MigrationSet, rows: &[LedgerRow]) -> Plan {
    // Built for every migrator run (three per migration in the test suite): a fast hasher.
    let by_id: rustc_hash::FxHashMap<&str, &LedgerRow> =
        rows.iter().map(|r| (r.id.as_str(), r)).collect();
    let mut counts = Counts::default();
    let mut migrations = Vec::with_capacity(set.migrations.len() + rows.len());
    for (i, m) in set.migrations.iter().enumerate() {
        let row = by_id.get(m.id.as_str()).copied();
        let state = match row {
            None => State::Pending,
            Some(r) => match &r.status {
                RowStatus::Applied | RowStatus::Baselined | RowStatus::Other(_)
                    if r.hash != m.hash =>
                {
                    State::Modified {
                        cosmetic: r.normalized_hash.as_deref()
                            == Some(m.normalized_hash().as_str()),
                    }
                }
                RowStatus::Applied | RowStatus::Other(_) => State::Applied,
                RowStatus::Baselined => State::Baselined,
                RowStatus::Failed => State::Failed,
                RowStatus::RolledBack => State::RolledBack,
            },
        };
        match state {
            State::Applied | State::Baselined => counts.applied += 1,
            State::Pending => counts.pending += 1,
            State::Failed => counts.failed += 1,
            State::RolledBack => counts.rolled_back += 1,
            State::Modified { .. } => counts.modified += 1,
            State::MissingFile => {}
        }
        migrations.push(Entry {
            id: m.id.clone(),
            state,
            path: Some(m.path.clone()),
            file_hash: Some(m.hash.clone()),
            ledger_hash: row.map(|r| r.hash.clone()),
            applied_at: row.and_then(|r| r.applied_at),
            execution_ms: row.and_then(|r| r.execution_ms),
            error: row.and_then(|r| r.error.clone()),
            statements_done: row.and_then(|r| r.statements_done),
            statement_hashes: row.and_then(|r| r.statement_hashes.clone()),
            index: Some(i),
        });
    }
    let on_disk: rustc_hash::FxHashSet<&str> =
        set.migrations.iter().map(|m| m.id.as_str()).collect();
    for r in rows.iter().filter(|r| !on_disk.contains(r.id.as_str())) {
        counts.missing_file += 1;
        migrations.push(Entry {
            id: r.id.clone(),
            state: State::MissingFile,
            path: None,
            file_hash: None,
            ledger_hash: Some(r.hash.clone()),
            applied_at: r.applied_at,
            execution_ms: r.execution_ms,
            error: r.error.clone(),
            statements_done: r.statements_done,
            statement_hashes: None,
            index: None,
        });
    }
    Plan { migrations, counts }
}

/// Parses every statement of `m` with PostgreSQL's parser; a syntax error becomes
/// `file:line:column` with the line and a caret.
pub fn parse(m: &Migration) -> Result<Vec<Statement>, MigrateError> {
    let mut out = Vec::new();
    for chunk in m.chunks() {
        let stmts = sql::split(chunk.text, chunk.offset).map_err(|e| MigrateError::Syntax {
            id: m.id.clone(),
            message: e.message,
            location: Location::in_file(&m.path, &m.sql, e.offset),
        })?;
        out.extend(stmts);
    }
    let wrapping = if m.layout.splits_on_breakpoints() {
        sql::Wrapping::Outer
    } else {
        sql::Wrapping::None
    };
    let out =
        sql::transaction_blocks(out, wrapping).map_err(|e| MigrateError::TransactionControl {
            id: m.id.clone(),
            statement: first_line(&e.statement),
            problem: e.problem,
            location: Location::in_file(&m.path, &m.sql, e.offset),
        })?;
    Ok(out)
}

/// What a run works out from its migrations' text once and keeps, for runs that apply the
/// same migration several times (the test suite applies, rolls back and re-applies each one
/// with one [`Migrator`]): each migration's statements ([`parse`]) and its parse-tree rollback
/// for a catalog with nothing to restore. Owned by the run, by folder position; a migration
/// that is not the set's own (same position, another value) is worked out again.
#[derive(Debug)]
pub struct Prepared<'a> {
    set: &'a MigrationSet,
    statements: Vec<std::sync::OnceLock<Vec<Statement>>>,
    rollback: Vec<std::sync::OnceLock<crate::invert::Generated>>,
}

impl<'a> Prepared<'a> {
    pub fn for_set(set: &'a MigrationSet) -> Self {
        let n = set.migrations.len();
        Prepared {
            set,
            statements: (0..n).map(|_| std::sync::OnceLock::new()).collect(),
            rollback: (0..n).map(|_| std::sync::OnceLock::new()).collect(),
        }
    }

    /// The slot of `m` when it is the set's own migration.
    fn slot(&self, m: &Migration) -> Option<usize> {
        self.set
            .migrations
            .get(m.index)
            .is_some_and(|own| std::ptr::eq(own, m))
            .then_some(m.index)
    }

    /// [`parse`], once per migration.
    pub fn statements(&self, m: &Migration) -> Result<Vec<Statement>, MigrateError> {
        let Some(i) = self.slot(m) else {
            return parse(m);
        };
        if let Some(stmts) = self.statements[i].get() {
            return Ok(stmts.clone());
        }
        let stmts = parse(m)?;
        let _ = self.statements[i].set(stmts.clone());
        Ok(stmts)
    }

    /// The parse-tree rollback of `stmts` (the statements of `m`) for an empty catalog, once
    /// per migration.
    fn rollback(&self, m: &Migration, stmts: &[Statement]) -> crate::invert::Generated {
        let generate = || crate::invert::generate_with(stmts, &Before::default());
        match self.slot(m) {
            Some(i) => self.rollback[i].get_or_init(generate).clone(),
            None => generate(),
        }
    }
}

/// One problem `migrate validate` found, in the folder or against the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// `syntax`, `no_rollback`, `never_runs`, `modified`, `missing_file` or `failed`.
    pub kind: &'static str,
    /// Critical problems stop a deploy; warnings are reported and don't.
    pub severity: crate::report::Severity,
    /// The migration it concerns.
    pub id: String,
    pub message: String,
}

/// Checks a folder without a database: every file parses with PostgreSQL's parser, and a
/// migration whose statements destroy data (DROP TABLE/COLUMN, DELETE, UPDATE, TRUNCATE, …) has a
/// hand-written rollback file or says `-- pgkeel: irreversible` (a warning: `pgkeel rollback`
/// could not undo it otherwise).
pub fn check_folder(set: &MigrationSet) -> Vec<Problem> {
    use crate::report::Severity;
    let mut out: Vec<Problem> = set
        .warnings
        .iter()
        .map(|w| Problem {
            kind: "never_runs",
            severity: Severity::Warning,
            id: w
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            message: w.to_string(),
        })
        .collect();
    for m in &set.migrations {
        let stmts = match parse(m) {
            Ok(s) => s,
            Err(e) => {
                out.push(Problem {
                    kind: "syntax",
                    severity: Severity::Critical,
                    id: m.id.clone(),
                    message: e.to_string(),
                });
                continue;
            }
        };
        if m.has_down() || m.directives.irreversible {
            continue;
        }
        let generated = crate::invert::generate(&stmts);
        if !generated.data_loss {
            continue;
        }
        let first = generated
            .irreversible
            .iter()
            .find(|i| i.reason.contains("loses data"))
            .or(generated.irreversible.first());
        let what = first.map_or_else(String::new, |i| {
            let text: String = i.text.split_whitespace().collect::<Vec<_>>().join(" ");
            let short: String = text.chars().take(60).collect();
            let more = if text.chars().count() > 60 { "…" } else { "" };
            format!(" (statement {}: {short}{more})", i.statement + 1)
        });
        out.push(Problem {
            kind: "no_rollback",
            severity: Severity::Warning,
            id: m.id.clone(),
            message: format!(
                "loses data{what} and has no rollback file: `pgkeel rollback` cannot undo it; \
                 write {}.down.sql (restoring the data from a backup) or mark the file \
                 `-- pgkeel: irreversible`",
                m.id
            ),
        });
    }
    out
}

/// The ledger-side problems of `plan`: files changed after they were applied, applied
/// migrations whose file is gone, and migrations that failed last time.
pub fn check_plan(plan: &Plan) -> Vec<Problem> {
    use crate::report::Severity;
    let mut out = Vec::new();
    for e in &plan.migrations {
        let (kind, severity, message) = match &e.state {
            State::Modified { cosmetic } => (
                "modified",
                Severity::Critical,
                format!(
                    "applied with hash {} but the file now hashes to {}; {}",
                    e.ledger_hash.as_deref().unwrap_or("?"),
                    e.file_hash.as_deref().unwrap_or("?"),
                    if *cosmetic {
                        "cosmetic change only: `pgkeel repair` records it"
                    } else {
                        "the SQL changed: restore the file and add a new migration"
                    }
                ),
            ),
            State::MissingFile => (
                "missing_file",
                Severity::Critical,
                "recorded in the ledger but its file is not in the folder".to_string(),
            ),
            State::Failed => (
                "failed",
                Severity::Critical,
                format!(
                    "failed last time: {}",
                    e.error.as_deref().unwrap_or("no error recorded")
                ),
            ),
            _ => continue,
        };
        out.push(Problem {
            kind,
            severity,
            id: e.id.clone(),
            message,
        });
    }
    out
}

/// Hooks for progress display. Every method has a no-op default.
pub trait Observer: Send {
    fn lock_wait(&mut self, _holder: Option<&LockHolder>, _waited: Duration) {}
    fn start(&mut self, _id: &str, _index: usize, _total: usize) {}
    fn retry(
        &mut self,
        _id: &str,
        _attempt: u32,
        _delay: Duration,
        _error: &PgError,
        _blockers: &[Blocker],
    ) {
    }
    fn done(&mut self, _applied: &Applied) {}
    fn warn(&mut self, _message: &str) {}
}

/// An observer that sees nothing.
#[derive(Debug, Default)]
pub struct Silent;
impl Observer for Silent {}

/// Options of `pgkeel migrate`.
#[derive(Debug, Clone, Default)]
pub struct MigrateOptions {
    pub dry_run: bool,
    /// Stop after this migration id.
    pub target: Option<String>,
    /// All pending migrations in one transaction (all or nothing).
    pub single_transaction: bool,
}

/// One migration applied (or, in a dry run, planned).
#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    pub id: String,
    pub duration_ms: u64,
    pub statements: usize,
    pub attempts: u32,
    /// True when the migration resumed after a partial failure.
    pub resumed_at: Option<usize>,
    /// Dry run only: the exact SQL that would be sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
}

/// The outcome of `pgkeel migrate`.
#[derive(Debug, Clone, Serialize)]
pub struct MigrateReport {
    pub dry_run: bool,
    /// Problems worth a human's attention that did not stop the run (drizzle takeover).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Migrations drizzle-orm silently skipped: reported, never applied blindly.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub held_back: Vec<String>,
    /// Migrations drizzle-orm had applied, recorded in the ledger without running them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub taken_over: Vec<String>,
    pub applied: Vec<Applied>,
    pub already_applied: usize,
    pub duration_ms: u64,
    pub counts: Counts,
}

/// Runs migrations on one connection that holds the deploy lock.
#[derive(Debug)]
pub struct Migrator<'a> {
    pub settings: &'a Settings,
    pub set: &'a MigrationSet,
    pub ledger: Ledger,
    /// Backend pid of the migrating session (0 until `migrate` starts).
    pid: std::sync::atomic::AtomicI32,
    /// A second connection, opened only when a migration waits, to see who blocks it.
    side: tokio::sync::Mutex<Option<Client>>,
    /// Becomes true on Ctrl-C / SIGTERM: the running statement is cancelled and rolled back.
    interrupt: Option<tokio::sync::watch::Receiver<bool>>,
    /// SQL run inside a migration's transaction after its statements, before it is recorded.
    before_commit: Option<String>,
    /// The caller holds the deploy lock on the connection `migrate` gets.
    session: Option<LockedSession>,
    /// The ledger's rows as that session last read or wrote them (with `session` only).
    cache: Option<std::sync::Arc<RowCache>>,
    /// Statements and inverses worked out once per migration for this migrator's runs.
    prepared: Prepared<'a>,
}

impl<'a> Migrator<'a> {
    pub fn new(settings: &'a Settings, set: &'a MigrationSet) -> Self {
        Migrator {
            settings,
            set,
            ledger: Ledger::from_settings(settings),
            pid: std::sync::atomic::AtomicI32::new(0),
            side: tokio::sync::Mutex::new(None),
            interrupt: None,
            before_commit: None,
            session: None,
            cache: None,
            prepared: Prepared::for_set(set),
        }
    }

    /// For a caller that holds the deploy lock on the connection it passes to `migrate`
    /// ([`DeployLock::take`]) and has created the ledger ([`Ledger::ensure`]): the session is
    /// not prepared again, the lock neither taken nor released, the ledger not checked; it is
    /// read once per call, under the caller's lock.
    pub fn in_locked_session(mut self, session: LockedSession) -> Self {
        self.session = Some(session);
        self
    }

    /// With [`Migrator::in_locked_session`]: the ledger's rows are kept in `cache` (shared with
    /// the caller's other migrators and rollbacks on that connection) instead of being read
    /// whole on each call; only the rows written since are read again.
    pub fn with_row_cache(mut self, cache: std::sync::Arc<RowCache>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// The session given to [`Migrator::in_locked_session`].
    pub fn session(&self) -> Option<LockedSession> {
        self.session
    }

    /// The row cache given to [`Migrator::with_row_cache`].
    pub fn row_cache(&self) -> Option<std::sync::Arc<RowCache>> {
        self.cache.clone()
    }

    fn held(&self) -> Held<'_> {
        Held::of(self.session.is_some(), self.cache.as_deref())
    }

    /// Runs `sql` inside each migration that is one transaction, after its statements and
    /// before its ledger row, so it sees what the migration holds: the test suite records the
    /// locks there (see [`crate::testing`]). It must not fail: its error fails the migration.
    pub fn with_before_commit(mut self, sql: impl Into<String>) -> Self {
        self.before_commit = Some(sql.into());
        self
    }

    /// Stops cleanly when `rx` turns true: the running statement is cancelled on the server, its
    /// transaction rolled back, the outcome recorded, the lock released; the run then ends with
    /// [`MigrateError::Interrupted`].
    pub fn with_interrupt(mut self, rx: tokio::sync::watch::Receiver<bool>) -> Self {
        self.interrupt = Some(rx);
        self
    }

    fn interrupted(&self) -> bool {
        self.interrupt.as_ref().is_some_and(|rx| *rx.borrow())
    }

    /// Reads the ledger (without creating it) and plans.
    pub async fn plan(&self, client: &Client) -> Result<Plan, MigrateError> {
        Ok(self
            .ledger
            .with_rows(client, self.held(), |rows| plan(self.set, rows))
            .await?)
    }

    /// Applies pending migrations. Takes the deploy lock unless this is a dry run.
    pub async fn migrate(
        &self,
        client: &Client,
        opts: &MigrateOptions,
        obs: &mut dyn Observer,
    ) -> Result<MigrateReport, MigrateError> {
        let started = Instant::now();
        if let Some(t) = &opts.target {
            if self.set.get(t).is_none() {
                return Err(MigrateError::UnknownId {
                    id: t.clone(),
                    dir: self.set.dir.clone(),
                });
            }
        }
        for w in self.folder_warnings() {
            obs.warn(&w);
        }
        if opts.dry_run {
            return self.dry_run(client, opts, started).await;
        }
        if let Some(session) = self.session {
            self.pid
                .store(session.pid, std::sync::atomic::Ordering::Relaxed);
            let result = self.migrate_locked(client, opts, obs, started).await;
            if let (Err(_), Some(c)) = (&result, &self.cache) {
                c.forget();
            }
            return result;
        }
        // A deploy with nothing to do is the common case: read the ledger without the lock and
        // stop there. `migrate` never removes an applied row, so a plan with nothing pending and
        // nothing modified cannot be made stale by a concurrent run.
        let plan = self.plan(client).await?;
        if plan.pending(self.set).next().is_none() && plan.modified().next().is_none() {
            return Ok(MigrateReport {
                dry_run: false,
                warnings: self.folder_warnings(),
                held_back: Vec::new(),
                taken_over: Vec::new(),
                already_applied: plan.counts.applied,
                applied: Vec::new(),
                duration_ms: started.elapsed().as_millis() as u64,
                counts: plan.counts,
            });
        }
        let lock = DeployLock::for_ledger(&self.ledger.schema, &self.ledger.table);
        // Behind a transaction-pooling proxy the lock lands on whichever backend ran that
        // statement: it would protect nothing. `take` refuses instead of migrating unprotected.
        let session = lock
            .take(client, self.settings.deploy_lock_timeout, |h, w| {
                obs.lock_wait(h, w)
            })
            .await?;
        self.pid
            .store(session.pid, std::sync::atomic::Ordering::Relaxed);
        let result = self.migrate_locked(client, opts, obs, started).await;
        // The lock goes with the session anyway; release it now so waiters don't wait for us
        // to disconnect. A failure to release is not worth masking the real outcome.
        // Behind a pooler every transaction checked the lock (and took the transaction-level
        // one), so what ran is right; a lock left on a pooled connection is freed and said.
        lock.release_logged(client, session).await;
        result
    }

    async fn dry_run(
        &self,
        client: &Client,
        opts: &MigrateOptions,
        started: Instant,
    ) -> Result<MigrateReport, MigrateError> {
        let plan = self.plan(client).await?;
        self.refuse_modified(&plan)?;
        // What a real run would first record from drizzle-orm's table, and hold back.
        let takeover = self.take_over_drizzle(client, &mut Silent, true).await?;
        let mut applied = Vec::new();
        let last = self.last_index(opts);
        for (entry, m) in plan.pending(self.set) {
            if m.index > last {
                break;
            }
            if takeover.taken_over.contains(&m.id) || takeover.held_back.contains(&m.id) {
                continue;
            }
            let stmts = self.prepared.statements(m)?;
            let resume = resume_point(entry, m, &stmts)?;
            let catalog = self.columns_before(client, m, &stmts, resume).await?;
            let rollback = self.rollback_for(m, Some(&stmts), &catalog);
            let groups = self.groups(m, &stmts, resume, rollback);
            let sql = groups
                .iter()
                .map(|g| g.batch.text.as_str())
                .collect::<Vec<_>>()
                .join("\n");
            applied.push(Applied {
                id: m.id.clone(),
                duration_ms: 0,
                statements: stmts.len(),
                attempts: 0,
                resumed_at: resume,
                sql: Some(sql),
            });
        }
        Ok(MigrateReport {
            dry_run: true,
            already_applied: plan.counts.applied + takeover.taken_over.len(),
            warnings: [self.folder_warnings(), takeover.warnings].concat(),
            held_back: takeover.held_back,
            taken_over: takeover.taken_over,
            applied,
            duration_ms: started.elapsed().as_millis() as u64,
            counts: plan.counts,
        })
    }

    /// The folder position of the last migration this run may apply: `--target`'s (whether or
    /// not it is applied already), else the folder's last.
    fn last_index(&self, opts: &MigrateOptions) -> usize {
        opts.target
            .as_deref()
            .and_then(|t| self.set.get(t))
            .map_or(usize::MAX, |m| m.index)
    }

    /// The folder's files that will never run ([`MigrationSet::warnings`]), as report warnings.
    fn folder_warnings(&self) -> Vec<String> {
        self.set.warnings.iter().map(|w| w.to_string()).collect()
    }

    fn refuse_modified(&self, plan: &Plan) -> Result<(), MigrateError> {
        let modified: Vec<&Entry> = plan.modified().collect();
        match modified.as_slice() {
            [] => Ok(()),
            [e] => Err(e.modified_error()),
            many => Err(MigrateError::ModifiedMany {
                ids: many.iter().map(|e| e.id.clone()).collect(),
            }),
        }
    }

    async fn migrate_locked(
        &self,
        client: &Client,
        opts: &MigrateOptions,
        obs: &mut dyn Observer,
        started: Instant,
    ) -> Result<MigrateReport, MigrateError> {
        if self.session.is_none() {
            self.ledger.ensure(client).await?;
        }
        let takeover = self.take_over_drizzle(client, obs, false).await?;
        if let (false, Some(c)) = (takeover.taken_over.is_empty(), &self.cache) {
            c.forget();
        }
        let plan = self.plan(client).await?;
        self.refuse_modified(&plan)?;
        if let Some(t) = opts
            .target
            .as_deref()
            .filter(|t| takeover.held_back.iter().any(|h| h == t))
        {
            return Err(MigrateError::HeldBack { id: t.to_string() });
        }
        let last = self.last_index(opts);
        let mut todo: Vec<(&Entry, &Migration)> = Vec::new();
        for (e, m) in plan.pending(self.set) {
            if m.index > last {
                break;
            }
            if takeover.held_back.contains(&m.id) {
                continue;
            }
            todo.push((e, m));
        }
        if let Some(c) = &self.cache {
            c.written(todo.iter().map(|(_, m)| m.id.as_str()));
        }
        // Parse everything that is going to run before running any of it.
        let parsed: Vec<Vec<Statement>> = todo
            .iter()
            .map(|(_, m)| self.prepared.statements(m))
            .collect::<Result<_, _>>()?;
        let mut applied = Vec::with_capacity(todo.len());
        let mut elsewhere = 0;
        if opts.single_transaction && !todo.is_empty() {
            applied = self.apply_all_in_one(client, &todo, &parsed, obs).await?;
        } else {
            let total = todo.len();
            for (i, ((entry, m), stmts)) in todo.iter().zip(&parsed).enumerate() {
                if self.interrupted() {
                    return Err(MigrateError::Interrupted { id: m.id.clone() });
                }
                obs.start(&m.id, i, total);
                match self
                    .apply_one(client, entry, m, stmts, obs, &applied)
                    .await?
                {
                    Some(a) => {
                        obs.done(&a);
                        applied.push(a);
                    }
                    None => elsewhere += 1,
                }
            }
        }
        let counts = Counts {
            applied: plan.counts.applied + applied.len() + elsewhere,
            pending: plan.counts.pending + plan.counts.failed + plan.counts.rolled_back
                - applied.len()
                - elsewhere,
            failed: 0,
            ..plan.counts.clone()
        };
        Ok(MigrateReport {
            dry_run: false,
            warnings: [self.folder_warnings(), takeover.warnings].concat(),
            held_back: takeover.held_back,
            taken_over: takeover.taken_over,
            already_applied: plan.counts.applied + elsewhere,
            applied,
            duration_ms: started.elapsed().as_millis() as u64,
            counts,
        })
    }

    fn settings_sql(&self, m: &Migration, local: bool) -> String {
        let lock = m
            .directives
            .lock_timeout
            .map_or(self.settings.lock_timeout, |t| t.as_duration());
        let stmt = m
            .directives
            .statement_timeout
            .map_or(self.settings.statement_timeout, |t| t.as_duration());
        let scope = if local { "SET LOCAL" } else { "SET" };
        format!(
            "{scope} lock_timeout = '{}ms';\n{scope} statement_timeout = '{}ms';\n",
            lock.as_millis(),
            stmt.as_millis()
        )
    }

    /// The rollback stored with `m`: its down file, else SQL generated from the parse tree
    /// when every statement can be inverted (see [`crate::invert::generate`]).
    /// The catalog's state of the columns whose default or NOT NULL `stmts` change, read just
    /// before they run, so the generated rollback restores exactly that state. One query, and
    /// only for migrations that have such statements and no down file. A resumed migration
    /// already ran part of its statements, so its catalog is not "before": it gets none.
    async fn columns_before(
        &self,
        client: &Client,
        m: &Migration,
        stmts: &[Statement],
        resume: Option<usize>,
    ) -> Result<Before, MigrateError> {
        let mut before = Before::default();
        if m.down.is_some() || m.directives.irreversible || resume.is_some_and(|r| r > 0) {
            return Ok(before);
        }
        let cols = crate::invert::columns_altered(stmts);
        if cols.is_empty() {
            return Ok(before);
        }
        let (schemas, rest): (Vec<String>, Vec<(String, String)>) =
            cols.into_iter().map(|(s, t, c)| (s, (t, c))).unzip();
        let (tables, columns): (Vec<String>, Vec<String>) = rest.into_iter().unzip();
        let rows = client
            .query(
                "SELECT w.s, w.t, w.c, a.attnotnull, pg_get_expr(d.adbin, d.adrelid)
                   FROM unnest($1::text[], $2::text[], $3::text[]) AS w(s, t, c)
                   JOIN pg_attribute a
                     ON a.attrelid = to_regclass(format('%I.%I', w.s, w.t))
                    AND a.attname = w.c AND a.attnum > 0 AND NOT a.attisdropped
                   LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum",
                &[&schemas, &tables, &columns],
            )
            .await
            .map_err(|e| DbError::query(format!("reading the columns {} alters", m.id), e))?;
        for r in rows {
            before.insert(
                r.get(0),
                r.get(1),
                r.get(2),
                ColumnBefore {
                    not_null: r.get(3),
                    default: r.get(4),
                },
            );
        }
        Ok(before)
    }

    fn rollback_for(
        &self,
        m: &Migration,
        stmts: Option<&[Statement]>,
        catalog: &Before,
    ) -> Option<String> {
        if let Some(d) = &m.down {
            return Some(d.sql.clone());
        }
        if m.directives.irreversible {
            return None;
        }
        let parsed;
        let stmts = match stmts {
            Some(s) => s,
            None => {
                parsed = self.prepared.statements(m).ok()?;
                &parsed
            }
        };
        generated_text(&crate::invert::generate_with(stmts, catalog))
    }

    /// Whether to keep drizzle-orm's own table in step (journal folders only: drizzle v1's
    /// table has more columns and is not verified yet).
    fn drizzle_enabled(&self) -> bool {
        crate::drizzle::keeps_table_for(self.set.layout)
    }

    /// The row drizzle-orm would write for `m`, so the team can return to drizzle's migrator.
    fn drizzle_row_sql(&self, m: &Migration) -> String {
        if !self.drizzle_enabled() {
            return String::new();
        }
        crate::drizzle::insert_row_sql(
            &self.settings.drizzle_schema,
            &self.settings.drizzle_table,
            m,
        )
        .map(|s| format!("{s};\n"))
        .unwrap_or_default()
    }

    /// Takes over a database drizzle-orm migrated: entries drizzle applied are recorded (never
    /// re-applied), entries it silently skipped are held back with a warning, and migrations
    /// pgkeel applied earlier get their drizzle rows.
    /// Records in pgkeel's ledger what drizzle-orm applied (see the crate docs). With `dry`, only
    /// says what it would record and hold back: nothing is written.
    async fn take_over_drizzle(
        &self,
        client: &Client,
        obs: &mut dyn Observer,
        dry: bool,
    ) -> Result<TakeoverOutcome, MigrateError> {
        let mut out = TakeoverOutcome::default();
        if !self.drizzle_enabled() {
            return Ok(out);
        }
        let (schema, table) = (&self.settings.drizzle_schema, &self.settings.drizzle_table);
        let Some(rows) = crate::drizzle::read_rows(client, schema, table).await? else {
            if dry {
                return Ok(out);
            }
            client
                .batch_execute(&crate::drizzle::ensure_table_sql(schema, table))
                .await
                .map_err(|e| DbError::query("creating drizzle-orm's migrations table", e))?;
            return Ok(out);
        };
        let t = crate::drizzle::match_journal(self.set, &rows);
        for w in t.warnings() {
            let text = w.to_string();
            tracing::warn!("{text}");
            obs.warn(&text);
            out.warnings.push(text);
        }
        let plan = self.plan(client).await?;
        let state = |id: &str| {
            plan.migrations
                .iter()
                .find(|e| e.id == id)
                .map(|e| e.state.clone())
        };
        let mut sql = String::new();
        for a in &t.applied {
            if !matches!(
                state(&a.id),
                Some(State::Pending | State::Failed | State::RolledBack)
            ) {
                continue;
            }
            let Some(m) = self.set.get(&a.id) else {
                continue;
            };
            sql.push_str(&self.ledger.record_sql(
                m,
                "baselined",
                self.rollback_for(m, None, &Before::default()).as_deref(),
                None,
                None,
            ));
            sql.push_str(";\n");
            if !a.hash_matches {
                // Applied by drizzle from an older text: record what ran so the plan shows it
                // as modified instead of trusting the edited file.
                sql.push_str(&format!(
                    "UPDATE {} SET hash = {}, normalized_hash = NULL WHERE id = {};\n",
                    self.ledger.table_sql(),
                    crate::ident::quote_literal(&a.row_hash),
                    crate::ident::quote_literal(&a.id)
                ));
            }
            out.taken_over.push(a.id.clone());
        }
        // Migrations pgkeel applied before drizzle's table was kept in step.
        let in_drizzle: std::collections::HashSet<&str> =
            t.applied.iter().map(|a| a.id.as_str()).collect();
        for e in &plan.migrations {
            if matches!(e.state, State::Applied | State::Baselined)
                && !in_drizzle.contains(e.id.as_str())
            {
                if let Some(m) = self.set.get(&e.id) {
                    sql.push_str(&self.drizzle_row_sql(m));
                }
            }
        }
        for s in &t.skipped {
            if matches!(
                state(&s.id),
                Some(State::Pending | State::Failed | State::RolledBack)
            ) {
                out.held_back.push(s.id.clone());
            }
        }
        if !sql.is_empty() && !dry {
            let detail =
                serde_json::json!({ "taken_over": out.taken_over, "held_back": out.held_back });
            sql = format!(
                "BEGIN;\n{sql}{};\nCOMMIT;",
                self.ledger
                    .audit_sql("drizzle-takeover", None, "recorded", Some(&detail))
            );
            client
                .batch_execute(&sql)
                .await
                .map_err(|e| DbError::query("recording migrations drizzle-orm applied", e))?;
        }
        Ok(out)
    }

    /// The first statements of every migration transaction: a transaction-level advisory lock
    /// (which, unlike the session-level deploy lock, also holds behind a transaction-pooling
    /// proxy) and a ledger check, so a migration another process already applied is never run
    /// twice whatever the connection path.
    fn guard_sql(&self, m: &Migration) -> String {
        let lock = DeployLock::for_ledger(&self.ledger.schema, &self.ledger.table);
        let (key, held) = (lock.tx_key(), lock.held_check_sql());
        let id = crate::ident::quote_literal(&m.id);
        format!(
            "{held}SELECT pg_advisory_xact_lock({key});\n\
             DO $pgkeel$ BEGIN IF EXISTS (SELECT 1 FROM {t} WHERE id = {id} AND status IN ('applied', 'baselined')) \
             THEN RAISE EXCEPTION 'pgkeel: % was already applied by another process', {id} USING ERRCODE = '{ALREADY_APPLIED}'; \
             END IF; END $pgkeel$;\n",
            t = self.ledger.table_sql(),
        )
    }

    /// Splits a migration into units of execution. A migration whose statements may all run in
    /// a transaction is one transaction (a `BEGIN … COMMIT` wrapper around the whole file is
    /// that transaction); otherwise each of the file's own `BEGIN … COMMIT` blocks is one, consecutive
    /// transactional statements outside blocks form one, and each non-transactional statement
    /// runs alone. The ledger row goes into the last transactional unit, or alone after a
    /// trailing non-transactional statement; every earlier unit records its progress.
    /// `rollback` is what [`Migrator::rollback_for`] gives for `m` (stored with its row).
    fn groups(
        &self,
        m: &Migration,
        stmts: &[Statement],
        resume: Option<usize>,
        rollback: Option<String>,
    ) -> Vec<Group> {
        let start = resume.unwrap_or(0).min(stmts.len());
        let drizzle_row = self.drizzle_row_sql(m);
        let record = |done: usize| {
            format!(
                "{};\n{};\n{drizzle_row}",
                self.ledger.record_sql(
                    m,
                    "applied",
                    rollback.as_deref(),
                    Some(Progress::count(done)),
                    None
                ),
                self.ledger
                    .audit_sql("migrate", Some(&m.id), "applied", None)
            )
        };
        let units = units_of(m, stmts, start);
        // Hashes of the statements, recorded with partial progress so a resumed run can tell
        // whether the committed statements are still the file's.
        let hashes: Vec<String> = if units.len() > 1 {
            statement_hashes(stmts)
        } else {
            Vec::new()
        };
        let mut groups: Vec<Group> = Vec::with_capacity(units.len().max(1));
        for unit in &units {
            let mut b = Batch::default();
            let mut pre = String::new();
            let mut cleanup = None;
            let range = unit.from..unit.to;
            if let Some(begin) = &unit.transaction {
                self.open_transaction(&mut b, m, begin, stmts, range);
            } else {
                // Sent alone: a statement in a multi-statement query runs in an implicit
                // transaction block, which these statements refuse.
                pre = self.settings_sql(m, false);
                cleanup = stmts[unit.from].concurrent_index.clone();
                b.push_statement(&stmts[unit.from], unit.from);
            }
            let progress = if unit.to == stmts.len() {
                record(stmts.len())
            } else {
                format!(
                    "{};\n",
                    self.ledger.record_sql(
                        m,
                        "failed",
                        None,
                        Some(Progress {
                            done: unit.to,
                            hashes: Some(&hashes),
                        }),
                        Some("in progress: interrupted before completion")
                    )
                )
            };
            let mut post = String::new();
            if unit.transaction.is_some() {
                if unit.to == stmts.len() {
                    if let Some(sql) = &self.before_commit {
                        b.push_raw(sql);
                    }
                }
                b.push_raw(&progress);
                b.push_raw("COMMIT;");
            } else {
                post = progress;
            }
            groups.push(Group {
                pre,
                batch: b,
                post,
                cleanup,
                first: unit.from,
            });
        }
        if groups.is_empty() {
            // Empty migration (or resumed past its end): record it.
            let mut b = Batch::default();
            b.push_raw(&record(stmts.len()));
            groups.push(Group {
                pre: String::new(),
                batch: b,
                post: String::new(),
                cleanup: None,
                first: stmts.len(),
            });
        }
        groups
    }

    /// Opens a transaction in `b` and adds `stmts[range]`: the file's own `BEGIN` (or pgkeel's),
    /// then its leading `SET TRANSACTION` statements (they must come before any query), then
    /// pgkeel's `SET LOCAL` settings and guards, then the rest.
    fn open_transaction(
        &self,
        b: &mut Batch,
        m: &Migration,
        begin: &str,
        stmts: &[Statement],
        range: std::ops::Range<usize>,
    ) {
        b.push_raw(begin);
        b.push_raw(";\n");
        let mut i = range.start;
        while i < range.end && stmts[i].set_transaction {
            b.push_statement(&stmts[i], i);
            i += 1;
        }
        b.push_raw(&self.settings_sql(m, true));
        b.push_raw(&self.guard_sql(m));
        for (k, s) in stmts.iter().enumerate().take(range.end).skip(i) {
            b.push_statement(s, k);
        }
    }

    async fn apply_one(
        &self,
        client: &Client,
        entry: &Entry,
        m: &Migration,
        stmts: &[Statement],
        obs: &mut dyn Observer,
        // Only read when this migration fails, to say how far the run got.
        before: &[Applied],
    ) -> Result<Option<Applied>, MigrateError> {
        let started = Instant::now();
        let resume = resume_point(entry, m, stmts)?;
        let catalog = self.columns_before(client, m, stmts, resume).await?;
        // The parse-tree rollback, inverted once: stored with the row (what `rollback_for`
        // gives), and when there is none, the reason to snapshot the schema around it.
        let generated = (m.down.is_none() && !m.directives.irreversible).then(|| {
            match catalog.is_empty() && resume.is_none() {
                true => self.prepared.rollback(m, stmts),
                false => crate::invert::generate_with(stmts, &catalog),
            }
        });
        let rollback = match (&m.down, &generated) {
            (Some(d), _) => Some(d.sql.clone()),
            (None, Some(g)) => generated_text(g),
            (None, None) => None,
        };
        let groups = self.groups(m, stmts, resume, rollback);
        // No down file and no parse-tree inverse, but nothing that destroys data either: snapshot
        // the schema around the migration and store diff(after → before) as its rollback
        // (state-based). Data-losing migrations keep "no automatic rollback": a schema-only undo
        // would pretend to restore what it cannot.
        let state_before =
            if resume.is_none() && generated.is_some_and(|g| g.sql.is_none() && !g.data_loss) {
                match self.user_schemas_snapshot(client).await {
                    Ok(s) => Some(s),
                    Err(e) => {
                        tracing::info!("no state-based rollback for {}: {e}", m.id);
                        None
                    }
                }
            } else {
                None
            };
        let tries = m.directives.retries.unwrap_or(self.settings.retries).max(1);
        let mut attempts_total = 0;
        for g in &groups {
            if !g.pre.is_empty() {
                client
                    .batch_execute(&g.pre)
                    .await
                    .map_err(|e| DbError::query(format!("preparing {}", m.id), e))?;
            }
            let mut attempt = 0;
            loop {
                attempt += 1;
                attempts_total += 1;
                if let Some(index) = &g.cleanup {
                    drop_invalid_index(client, index).await?;
                }
                let (result, blockers) = self.exec_watched(client, &g.batch.text).await;
                match result.map_err(|f| (f.error, f.completed)) {
                    Ok(()) => {
                        if !g.post.is_empty() {
                            client.batch_execute(&g.post).await.map_err(|e| {
                                DbError::query(format!("recording progress of {}", m.id), e)
                            })?;
                        }
                        break;
                    }
                    Err((e, completed)) => {
                        let pg = PgError::from_driver(&e);
                        // Leave no aborted transaction behind; the connection may be gone, so
                        // a failing ROLLBACK says nothing new.
                        let _ = client.batch_execute("ROLLBACK").await;
                        let Some(pg) = pg else {
                            return Err(DbError::query(format!("applying {}", m.id), e).into());
                        };
                        if self.interrupted() {
                            let hashes = committed_hashes(g.first, stmts);
                            let progress = Progress {
                                done: g.first,
                                hashes: hashes.as_deref(),
                            };
                            let _ = self
                                .ledger
                                .record_failure(
                                    client,
                                    m,
                                    progress,
                                    "interrupted (Ctrl-C / SIGTERM); rolled back",
                                )
                                .await;
                            return Err(MigrateError::Interrupted { id: m.id.clone() });
                        }
                        if pg.code == crate::db::LOCK_NOT_HELD {
                            return Err(DbError::LockNotHeld {
                                context: format!("applying {}", m.id),
                            }
                            .into());
                        }
                        if pg.code == ALREADY_APPLIED {
                            tracing::info!("{} was applied by another process meanwhile", m.id);
                            return Ok(None);
                        }
                        if pg.is_transient() && attempt < tries {
                            let delay = backoff(attempt);
                            obs.retry(&m.id, attempt, delay, &pg, &blockers);
                            tokio::time::sleep(delay).await;
                            continue;
                        }
                        let (failed_at, location) =
                            failure_place(m, stmts, &g.batch, &pg, completed);
                        let done = g.first; // the group's work was rolled back (or never happened)
                        let hashes = committed_hashes(done, stmts);
                        let progress = Progress {
                            done,
                            hashes: hashes.as_deref(),
                        };
                        self.ledger
                            .record_failure(client, m, progress, &pg.to_string())
                            .await
                            .ok();
                        return Err(MigrateError::Failed {
                            id: m.id.clone(),
                            pg,
                            location,
                            statement: failed_at,
                            statements: stmts.len(),
                            committed: done,
                            attempts: attempt,
                            applied_before: before.iter().map(|a| a.id.clone()).collect(),
                            blockers,
                        });
                    }
                }
            }
        }
        let duration_ms = started.elapsed().as_millis() as u64;
        if let Some(before) = state_before {
            if let Err(e) = self.store_state_rollback(client, m, &before).await {
                let text = format!("{}: no state-based rollback stored: {e}", m.id);
                tracing::warn!("{text}");
                obs.warn(&text);
            }
        }
        Ok(Some(Applied {
            id: m.id.clone(),
            duration_ms,
            statements: stmts.len(),
            attempts: attempts_total,
            resumed_at: resume,
            sql: None,
        }))
    }

    /// A snapshot of every user schema (pgkeel's and drizzle's tables left out).
    async fn user_schemas_snapshot(
        &self,
        client: &Client,
    ) -> Result<crate::schema::Snapshot, crate::schema::SchemaError> {
        let schemas: Vec<String> = client
            .query(
                "SELECT nspname::text FROM pg_namespace
                  WHERE nspname !~ '^pg_' AND nspname <> 'information_schema'",
                &[],
            )
            .await
            .map_err(|e| DbError::query("listing schemas", e))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let opts =
            crate::schema::IntrospectOptions::from_settings(self.settings).with_schemas(&schemas);
        crate::schema::introspect(client, &opts).await
    }

    /// Stores diff(after → before) as `m`'s rollback, with its hazards, unless the diff has a
    /// change pgkeel cannot write safely (then nothing is stored and `rollback` asks for a down
    /// file).
    async fn store_state_rollback(
        &self,
        client: &Client,
        m: &Migration,
        before: &crate::schema::Snapshot,
    ) -> Result<(), String> {
        let after = self
            .user_schemas_snapshot(client)
            .await
            .map_err(|e| e.to_string())?;
        let d = crate::schema::diff(&after, before);
        if let Some(c) = d.unsupported().next() {
            return Err(format!(
                "undoing it needs a change pgkeel cannot write ({}: {}); write a .down.sql",
                c.object,
                c.unsupported.as_deref().unwrap_or("unsupported")
            ));
        }
        let hazards: Vec<String> = d.hazards().iter().map(|h| format!("{h:?}")).collect();
        let sql = format!(
            "-- generated by pgkeel from schema snapshots taken just before and after the migration (state-based)\n\
             -- it restores the schema, not data the migration removed or changed\n\
             -- hazards: {}\n{}",
            if hazards.is_empty() { "none".to_string() } else { hazards.join(", ") },
            d.to_sql()
        );
        client
            .execute(
                &format!(
                    "UPDATE {} SET rollback_sql = $1 WHERE id = $2",
                    self.ledger.table_sql()
                ),
                &[&sql, &m.id],
            )
            .await
            .map_err(|e| DbError::query("storing the state-based rollback", e).to_string())?;
        Ok(())
    }

    /// Runs `sql`; while it runs longer than a moment, samples who blocks it from a second
    /// connection, so a lock timeout can be explained. Returns the last non-empty sample.
    async fn exec_watched(
        &self,
        client: &Client,
        sql: &str,
    ) -> (Result<(), crate::db::BatchFailure>, Vec<Blocker>) {
        let exec = crate::db::execute_counting(client, sql);
        tokio::pin!(exec);
        let mut seen = Vec::new();
        let mut wait = Duration::from_millis(150);
        let mut interrupt = self.interrupt.clone();
        let mut cancelled = false;
        loop {
            tokio::select! {
                res = &mut exec => return (res, seen),
                changed = async {
                    match interrupt.as_mut() {
                        Some(rx) => rx.wait_for(|v| *v).await.map(|_| ()),
                        None => std::future::pending().await,
                    }
                }, if !cancelled => {
                    cancelled = true;
                    if changed.is_ok() {
                        if let Ok(target) = crate::db::Target::from_settings(self.settings) {
                            let _ = target.cancel(client).await;
                        }
                    }
                }
                _ = tokio::time::sleep(wait) => {
                    wait = Duration::from_millis(400);
                    let now = self.sample_blockers().await;
                    if !now.is_empty() {
                        seen = now;
                    }
                }
            }
        }
    }

    async fn sample_blockers(&self) -> Vec<Blocker> {
        let pid = self.pid.load(std::sync::atomic::Ordering::Relaxed);
        if pid == 0 {
            return Vec::new();
        }
        let mut side = self.side.lock().await;
        if side.as_ref().is_none_or(|c| c.is_closed()) {
            let Ok(target) = crate::db::Target::from_settings(self.settings) else {
                return Vec::new();
            };
            *side = target.connect().await.ok();
        }
        match side.as_ref() {
            Some(c) => crate::db::blockers(c, pid).await.unwrap_or_default(),
            None => Vec::new(),
        }
    }

    /// `--single-transaction`: one BEGIN … COMMIT around every pending migration. Each migration
    /// is still sent as its own batch so a failure is attributed to the right file.
    async fn apply_all_in_one(
        &self,
        client: &Client,
        todo: &[(&Entry, &Migration)],
        parsed: &[Vec<Statement>],
        obs: &mut dyn Observer,
    ) -> Result<Vec<Applied>, MigrateError> {
        for ((_, m), stmts) in todo.iter().zip(parsed) {
            let reason = if m.directives.no_transaction || stmts.iter().any(|s| !s.transactional) {
                Some("it has statements that cannot run inside a transaction block")
            } else if stmts.iter().any(|s| s.set_transaction) {
                Some("it sets its own transaction's characteristics (SET TRANSACTION)")
            } else if stmts
                .iter()
                .any(|s| s.block.as_ref().is_some_and(|b| b.index > 0))
            {
                Some("it runs several BEGIN … COMMIT blocks of its own")
            } else if stmts.iter().any(|s| {
                s.block
                    .as_ref()
                    .is_some_and(|b| !b.begin.eq_ignore_ascii_case("begin"))
            }) {
                Some("it opens its own transaction with options (BEGIN ISOLATION LEVEL …)")
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(MigrateError::SingleTransactionImpossible {
                    id: m.id.clone(),
                    reason,
                });
            }
        }
        client
            .batch_execute("BEGIN")
            .await
            .map_err(|e| DbError::query("starting the migration transaction", e))?;
        let mut applied = Vec::with_capacity(todo.len());
        for (i, ((_, m), stmts)) in todo.iter().zip(parsed).enumerate() {
            obs.start(&m.id, i, todo.len());
            let started = Instant::now();
            let mut b = Batch::default();
            b.push_raw(&self.settings_sql(m, true));
            b.push_raw(&self.guard_sql(m));
            for (k, s) in stmts.iter().enumerate() {
                b.push_statement(s, k);
            }
            b.push_raw(&self.drizzle_row_sql(m));
            b.push_raw(&format!(
                "{};\n{};\n",
                self.ledger.record_sql(
                    m,
                    "applied",
                    self.rollback_for(m, Some(stmts), &Before::default())
                        .as_deref(),
                    Some(Progress::count(stmts.len())),
                    None
                ),
                self.ledger.audit_sql(
                    "migrate",
                    Some(&m.id),
                    "applied",
                    Some(&serde_json::json!({"single_transaction": true}))
                )
            ));
            if let Err(f) = crate::db::execute_counting(client, &b.text).await {
                let _ = client.batch_execute("ROLLBACK").await;
                let Some(pg) = PgError::from_driver(&f.error) else {
                    return Err(DbError::query(format!("applying {}", m.id), f.error).into());
                };
                let (statement, location) = failure_place(m, stmts, &b, &pg, f.completed);
                return Err(MigrateError::Failed {
                    id: m.id.clone(),
                    pg,
                    location,
                    statement,
                    statements: stmts.len(),
                    committed: 0,
                    attempts: 1,
                    // Everything before it was rolled back with it.
                    applied_before: Vec::new(),
                    blockers: Vec::new(),
                });
            }
            applied.push(Applied {
                id: m.id.clone(),
                duration_ms: started.elapsed().as_millis() as u64,
                statements: stmts.len(),
                attempts: 1,
                resumed_at: None,
                sql: None,
            });
        }
        client
            .batch_execute("COMMIT")
            .await
            .map_err(|e| DbError::query("committing the migration transaction", e))?;
        for a in &applied {
            obs.done(a);
        }
        Ok(applied)
    }

    /// `pgkeel baseline --to ID`: records migrations up to ID as applied without running them.
    pub async fn baseline(&self, client: &Client, to: &str) -> Result<Vec<String>, MigrateError> {
        let Some(last) = self.set.migrations.iter().position(|m| m.id == to) else {
            return Err(MigrateError::UnknownId {
                id: to.to_string(),
                dir: self.set.dir.clone(),
            });
        };
        let lock = DeployLock::for_ledger(&self.ledger.schema, &self.ledger.table);
        let session = lock
            .take(client, self.settings.deploy_lock_timeout, |_, _| {})
            .await?;
        let result = async {
            self.ledger.ensure(client).await?;
            let plan = self.plan(client).await?;
            let mut sql = String::from("BEGIN;\n");
            let mut ids = Vec::new();
            for e in &plan.migrations[..=last] {
                if matches!(e.state, State::Pending | State::Failed | State::RolledBack) {
                    let m = &self.set.migrations[e.index.expect("file-backed entry")];
                    sql.push_str(&self.drizzle_row_sql(m));
                    sql.push_str(&self.ledger.record_sql(
                        m,
                        "baselined",
                        self.rollback_for(m, None, &Before::default()).as_deref(),
                        None,
                        None,
                    ));
                    sql.push_str(";\n");
                    ids.push(m.id.clone());
                }
            }
            sql.push_str(&self.ledger.audit_sql(
                "baseline",
                Some(to),
                "baselined",
                Some(&serde_json::json!({ "ids": ids })),
            ));
            sql.push_str(";\nCOMMIT;");
            client
                .batch_execute(&sql)
                .await
                .map_err(|e| DbError::query("recording the baseline", e))?;
            Ok(ids)
        }
        .await;
        lock.release_logged(client, session).await;
        result
    }

    /// `pgkeel repair`: records the new hash of modified files. Cosmetic changes only unless
    /// `force`. Returns the repaired ids, or the error for the first non-cosmetic change.
    pub async fn repair(&self, client: &Client, force: bool) -> Result<Vec<String>, MigrateError> {
        let plan = self.plan(client).await?;
        let mut fixed = Vec::new();
        for e in plan.modified() {
            if e.state != (State::Modified { cosmetic: true }) && !force {
                return Err(e.modified_error());
            }
        }
        // Failed migrations that committed part of their statements and whose committed
        // statements were edited since: `--force` accepts the edited ones as what ran.
        let mut partial = Vec::new();
        for e in plan.migrations.iter().filter(|e| e.state == State::Failed) {
            let Some(m) = e.index.map(|i| &self.set.migrations[i]) else {
                continue;
            };
            let stmts = self.prepared.statements(m)?;
            if let Err(err) = resume_point(e, m, &stmts) {
                if !force {
                    return Err(err);
                }
                let hashes = statement_hashes(&stmts);
                partial.push((m, hashes));
            }
        }
        self.ledger.ensure(client).await?;
        for e in plan.modified() {
            let m = &self.set.migrations[e.index.expect("modified entries are on disk")];
            let cosmetic = matches!(e.state, State::Modified { cosmetic: true });
            self.ledger.update_hash(client, m, !cosmetic, None).await?;
            fixed.push(m.id.clone());
        }
        for (m, hashes) in partial {
            self.ledger
                .update_hash(client, m, true, Some(&hashes))
                .await?;
            fixed.push(m.id.clone());
        }
        Ok(fixed)
    }
}

/// Drops the invalid leftover of a failed `CREATE INDEX CONCURRENTLY` so the build can be
/// retried (a valid index of that name is left alone: the statement's IF NOT EXISTS, or its
/// error, decides).
async fn drop_invalid_index(client: &Client, index: &str) -> Result<(), DbError> {
    let invalid: bool = client
        .query_one(
            "SELECT coalesce((SELECT NOT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)), false)",
            &[&index],
        )
        .await
        .map_err(|e| DbError::query(format!("checking index {index}"), e))?
        .get(0);
    if invalid {
        tracing::warn!("dropping invalid index {index} left by an earlier failed build");
        client
            .batch_execute(&format!("DROP INDEX CONCURRENTLY IF EXISTS {index}"))
            .await
            .map_err(|e| DbError::query(format!("dropping invalid index {index}"), e))?;
    }
    Ok(())
}

/// Where a previously failed migration resumes: after the statements it committed (those
/// of its units that ran before the failing one). When the file changed since, the committed
/// statements must be unchanged (by [`sql::statement_hash`]): then the run goes on with the
/// first changed or not-yet-run statement; otherwise it is refused, never silently restarted.
fn resume_point(
    entry: &Entry,
    m: &Migration,
    stmts: &[Statement],
) -> Result<Option<usize>, MigrateError> {
    if entry.state != State::Failed {
        return Ok(None);
    }
    let Some(done) = entry
        .statements_done
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| *n > 0)
    else {
        return Ok(None);
    };
    if entry.ledger_hash.as_deref() == Some(m.hash.as_str()) && done <= stmts.len() {
        return Ok(Some(done));
    }
    let now: Vec<String> = statement_hashes(stmts);
    let then = entry.statement_hashes.as_deref();
    let changed = match then {
        Some(then) if then.len() >= done => (0..done).find(|&i| now.get(i) != then.get(i)),
        _ => Some(0),
    };
    match changed {
        None => Ok(Some(done)),
        Some(first) => Err(MigrateError::CommittedChanged {
            id: m.id.clone(),
            path: m.path.clone(),
            committed: stmts
                .iter()
                .take(done)
                .map(|s| {
                    let l = Location::in_file(&m.path, &m.sql, s.offset);
                    format!("{}:{}: {}", l.path.display(), l.line, first_line(&s.text))
                })
                .collect(),
            done,
            first_changed: then.is_some().then_some(first),
        }),
    }
}

/// The first line of a statement, shortened to 80 characters.
fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or("").trim_end();
    let short: String = line.chars().take(80).collect();
    if short.len() < text.trim_end().len() {
        format!("{short} …")
    } else {
        short
    }
}

/// [`sql::statement_hash`] of each statement, in order: what partial progress records and a
/// resumed run compares.
fn statement_hashes(stmts: &[Statement]) -> Vec<String> {
    stmts.iter().map(|s| sql::statement_hash(&s.text)).collect()
}

/// The hashes to record with a failure after `done` statements committed: every statement's,
/// so a later run can check the committed ones; none when nothing is committed.
fn committed_hashes(done: usize, stmts: &[Statement]) -> Option<Vec<String>> {
    (done > 0).then(|| statement_hashes(stmts))
}

/// Which statement of `m` failed, and where: the one holding the server's error position when
/// there is one, else the one that was running when the batch stopped (`completed` of its
/// statements had completed). The location is the error position, or the statement's start.
fn failure_place(
    m: &Migration,
    stmts: &[Statement],
    batch: &Batch,
    pg: &PgError,
    completed: usize,
) -> (Option<usize>, Option<Location>) {
    let at = pg.position.and_then(|p| batch.file_offset(p));
    let index = at
        .and_then(|off| stmts.iter().rposition(|s| s.offset <= off))
        .or_else(|| batch.statement_after(completed));
    let offset = at.or_else(|| index.and_then(|i| stmts.get(i)).map(|s| s.offset));
    (index, offset.map(|o| Location::in_file(&m.path, &m.sql, o)))
}

/// One unit of execution of a migration: `stmts[from..to]`, in a transaction opened with
/// `transaction` (the file's own `BEGIN …` or pgkeel's `BEGIN`), or one statement alone.
#[derive(Debug)]
struct Unit {
    from: usize,
    to: usize,
    transaction: Option<String>,
}

/// The units of `stmts[start..]` (see [`Migrator::groups`]).
fn units_of(m: &Migration, stmts: &[Statement], start: usize) -> Vec<Unit> {
    let blocks = stmts
        .iter()
        .filter_map(|s| s.block.as_ref())
        .map(|b| b.index + 1)
        .max()
        .unwrap_or(0);
    // One transaction when the file has no blocks of its own, or one block around all of it;
    // otherwise the file's blocks are its transactions, as psql and Prisma run them.
    let wrapped_or_plain = match blocks {
        0 => true,
        1 => stmts.iter().all(|s| s.block.is_some()),
        _ => false,
    };
    let one =
        !m.directives.no_transaction && wrapped_or_plain && stmts.iter().all(|s| s.transactional);
    if one {
        if start >= stmts.len() {
            return Vec::new();
        }
        let begin = stmts
            .iter()
            .find_map(|s| s.block.as_ref())
            .map_or("BEGIN", |b| b.begin.as_str());
        return vec![Unit {
            from: start,
            to: stmts.len(),
            transaction: Some(begin.to_string()),
        }];
    }
    let mut units = Vec::new();
    let mut i = start;
    while i < stmts.len() {
        let from = i;
        let s = &stmts[i];
        if let Some(b) = &s.block {
            while i < stmts.len() && stmts[i].block.as_ref().map(|x| x.index) == Some(b.index) {
                i += 1;
            }
            units.push(Unit {
                from,
                to: i,
                transaction: Some(b.begin.clone()),
            });
        } else if s.transactional && !m.directives.no_transaction {
            while i < stmts.len() && stmts[i].block.is_none() && stmts[i].transactional {
                i += 1;
            }
            units.push(Unit {
                from,
                to: i,
                transaction: Some("BEGIN".into()),
            });
        } else {
            i += 1;
            units.push(Unit {
                from,
                to: i,
                transaction: None,
            });
        }
    }
    units
}

/// What [`Migrator::take_over_drizzle`] did.
#[derive(Debug, Default)]
struct TakeoverOutcome {
    warnings: Vec<String>,
    held_back: Vec<String>,
    taken_over: Vec<String>,
}

#[derive(Debug)]
struct Group {
    /// Session settings sent before `batch` (non-transactional units only).
    pre: String,
    batch: Batch,
    /// The ledger write sent after `batch` (non-transactional units only).
    post: String,
    /// `CREATE INDEX CONCURRENTLY`: the index whose invalid leftover to drop before a try.
    cleanup: Option<String>,
    first: usize,
}

/// Exponential backoff with jitter: 200ms, 400ms, 800ms … capped at 10s, ±25%.
/// A parse-tree rollback as stored in the ledger, marked as generated.
fn generated_text(g: &crate::invert::Generated) -> Option<String> {
    g.sql
        .as_ref()
        .map(|sql| format!("-- generated by pgkeel from the parse tree\n{sql}"))
}

fn backoff(attempt: u32) -> Duration {
    let base = 200u64
        .saturating_mul(1 << attempt.min(6).saturating_sub(1))
        .min(10_000);
    let jitter = rand::random::<u64>() % (base / 2 + 1);
    Duration::from_millis(base - base / 4 + jitter)
}

impl crate::outcome::Classify for MigrateError {
    fn kind(&self) -> crate::outcome::FailureKind {
        use crate::outcome::FailureKind as K;
        match self {
            MigrateError::Db(d) => crate::outcome::Classify::kind(d),
            MigrateError::Failed { .. } => K::Migration,
            MigrateError::Interrupted { .. } => K::Interrupted,
            MigrateError::UnknownId { .. } => K::Usage,
            MigrateError::Source(_)
            | MigrateError::Syntax { .. }
            | MigrateError::Modified { .. }
            | MigrateError::ModifiedMany { .. }
            | MigrateError::TransactionControl { .. }
            | MigrateError::SingleTransactionImpossible { .. }
            | MigrateError::CommittedChanged { .. }
            | MigrateError::HeldBack { .. } => K::Findings,
        }
    }
}

#[cfg(test)]
mod tests;
