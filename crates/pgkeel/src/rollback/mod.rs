//! Rolling migrations back: generating rollback SQL from a migration's parse tree ([`generate`])
//! and running a rollback against the database ([`rollback`]).
//!
//! Generation is pure (no I/O): every statement is parsed with PostgreSQL's own parser and
//! inverted, in reverse order, into SQL with quoted identifiers. A statement whose inverse pgkeel
//! cannot know (dropped data, a previous default, an enum value) is reported as irreversible with
//! the reason, and then no SQL is produced at all: a partial rollback is worse than none.
//! Statements that only change objects the same migration created need no inverse of their own
//! (dropping the object undoes them), so `CREATE TABLE t …; INSERT INTO t …; COMMENT ON TABLE t …`
//! inverts to `DROP TABLE IF EXISTS t` — unless the change depends on something created after the
//! object (a column of a type created later): then it is undone in place, so every drop runs
//! after what depends on it.
//!
//! Running takes the deploy lock like `migrate`, refuses to roll back a migration that later
//! ones still build on (unless asked to cascade), and sends each rollback as one batch: `BEGIN;
//! SET LOCAL …; <rollback>; <ledger update>; <audit row>; COMMIT`. The SQL comes from the
//! migration's `.down.sql`, else from the `rollback_sql` the ledger stored when it was applied.
//! This module decides neither what `migrate` applies nor how anything is rendered.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_postgres::Client;

use crate::config::Settings;
use crate::db::{DbError, DeployLock, PgError};
use crate::ledger::{Held, Ledger, LedgerRow};
use crate::location::Location;
use crate::migrate::{session_sql, Expect, Group, SendError, Sender};
use crate::source::{Migration, MigrationSet, SourceError};
use crate::sql::{Batch, Statement};

pub use crate::invert::{
    columns_altered, generate, generate_with, Before, ColumnBefore, Generated, Irreversible,
};

/// Options of `pgkeel rollback`.
#[derive(Debug, Clone, Default)]
pub struct RollbackOptions {
    /// Also roll back every later migration that is still applied, newest first.
    pub cascade: bool,
    /// Return the SQL that would run; change nothing (no lock, no writes).
    pub dry_run: bool,
    /// For a migration pgkeel has no rollback for: mark it rolled back in the ledger only (so
    /// `migrate` applies it again) and run nothing; what it did stays in the database.
    pub force: bool,
    /// The caller holds the deploy lock on this connection and has created the ledger: the lock
    /// is neither taken nor released, the ledger not checked (see [`crate::db::LockedSession`]).
    pub locked: Option<crate::db::LockedSession>,
    /// With `locked`: the ledger's rows as that session last read or wrote them (see
    /// [`crate::ledger::RowCache`]).
    pub row_cache: Option<std::sync::Arc<crate::ledger::RowCache>>,
}

/// Where a rollback's SQL came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RollbackSource {
    /// The migration's `.down.sql` on disk.
    DownFile,
    /// The ledger's `rollback_sql`, stored when the migration was applied.
    Stored,
    /// Nothing ran (`--force` on a migration with no rollback): only its ledger row changed.
    LedgerOnly,
}

impl std::fmt::Display for RollbackSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RollbackSource::DownFile => "down file",
            RollbackSource::Stored => "stored rollback_sql",
            RollbackSource::LedgerOnly => {
                "ledger row only (--force): nothing ran, its effects stay"
            }
        })
    }
}

/// One migration rolled back (or, in a dry run, that would be).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct RolledBack {
    pub id: String,
    pub duration_ms: u64,
    pub source: RollbackSource,
    pub statements: usize,
    /// Dry run only: the exact SQL that would be sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
}

/// The outcome of `pgkeel rollback`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct RollbackReport {
    pub dry_run: bool,
    /// In the order they were (or would be) rolled back: newest first, the requested one last.
    pub rolled_back: Vec<RolledBack>,
    pub duration_ms: u64,
}

/// Errors of `pgkeel rollback`. Each says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("no migration `{id}` in {} or in the ledger; `pgkeel status` lists the ids", .dir.display())]
    UnknownId { id: String, dir: PathBuf },
    #[error("`{id}` matches several migrations ({}); give the whole id", .candidates.join(", "))]
    AmbiguousId { id: String, candidates: Vec<String> },
    #[error("{id} is not applied (it is {state}): there is nothing to roll back; `pgkeel status` shows every migration's state")]
    NotApplied { id: String, state: String },
    #[error(
        "cannot roll back {id}: {} later migration(s) still applied ({}); roll them back first, or pass --cascade to roll back all of them, newest first",
        .later.len(), .later.join(", ")
    )]
    LaterApplied {
        id: String,
        /// Newest first: the order `--cascade` would roll them back in.
        later: Vec<String>,
    },
    #[error("{id} is marked `-- pgkeel:irreversible`: it cannot be rolled back; restore a backup, or undo it in a new migration (`pgkeel new NAME`)")]
    Irreversible { id: String },
    #[error("refusing to roll back {id}: {}; nothing was changed. Write {} and run `pgkeel rollback` again, or pass --force to only mark it rolled back in the ledger (what it did stays in the database)", .reason.as_deref().unwrap_or("pgkeel has no rollback for it (it stores one at apply time only when every statement can be undone)"), .expected.display())]
    NoRollback {
        id: String,
        expected: PathBuf,
        /// The statement pgkeel cannot undo, and why.
        reason: Option<String>,
    },
    #[error("no rollback for {id}: its file is gone and the ledger stores no rollback_sql; restore the migration file with a down file next to it, or undo it in a new migration")]
    NoRollbackMissingFile { id: String },
    #[error("syntax error in the rollback of {id} ({source_kind}): {message}{}", location_note(.location))]
    Syntax {
        id: String,
        source_kind: RollbackSource,
        message: String,
        location: Option<Location>,
    },
    #[error("the rollback of {id}: `{statement}`: {problem}")]
    TransactionControl {
        id: String,
        statement: String,
        problem: crate::sql::BlockProblem,
    },
    #[error("interrupted during the rollback of {id}: its transaction was rolled back, so it is still applied; rollbacks before it stay done; run `pgkeel rollback` again to continue")]
    Interrupted { id: String },
    #[error(
        "rollback of {id} failed{}{}: {pg}{}\n{}",
        statement_note(*.statement, *.statements),
        attempts_note(*.attempts),
        location_note(.location),
        done_note(*.statements_done, *.statements, .rolled_back_before)
    )]
    Failed {
        id: String,
        source_kind: RollbackSource,
        pg: PgError,
        location: Option<Location>,
        /// 0-based index of the failing statement, when known: the server gives no position
        /// for some errors, and then only a statement run alone can be named.
        statement: Option<usize>,
        statements: usize,
        attempts: u32,
        /// Statements of this rollback that ran and stayed (non-transactional ones run alone).
        statements_done: usize,
        /// Migrations this run rolled back before the failure (they stay rolled back).
        rolled_back_before: Vec<String>,
    },
}

fn location_note(l: &Option<Location>) -> String {
    l.as_ref().map(|l| format!("\n{l}")).unwrap_or_default()
}

fn statement_note(statement: Option<usize>, statements: usize) -> String {
    match statement {
        Some(i) if statements > 1 => format!(" at statement {} of {statements}", i + 1),
        _ => String::new(),
    }
}

fn attempts_note(attempts: u32) -> String {
    if attempts > 1 {
        format!(" after {attempts} tries")
    } else {
        String::new()
    }
}

fn done_note(done: usize, statements: usize, before: &[String]) -> String {
    let this = if done == 0 {
        "its transaction was rolled back: the migration is still applied".to_string()
    } else {
        format!(
            "statements 1 to {done} of {statements} ran outside a transaction and stay undone; the ledger still says applied: fix the cause and run the rollback again"
        )
    };
    if before.is_empty() {
        this
    } else {
        format!(
            "{this}; rolled back before it in this run: {}",
            before.join(", ")
        )
    }
}

impl RollbackError {
    /// The server's error, when there is one.
    pub fn pg(&self) -> Option<&PgError> {
        match self {
            RollbackError::Failed { pg, .. } => Some(pg),
            RollbackError::Db(d) => d.pg(),
            _ => None,
        }
    }

    /// The request itself cannot be carried out as asked (unknown id, not applied, later
    /// migrations in the way): a usage error rather than a problem with files or the server.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            RollbackError::UnknownId { .. }
                | RollbackError::AmbiguousId { .. }
                | RollbackError::NotApplied { .. }
                | RollbackError::LaterApplied { .. }
        )
    }

    /// Problems with the migration files (no rollback written, a rollback that does not parse).
    pub fn is_validation(&self) -> bool {
        matches!(
            self,
            RollbackError::Source(_)
                | RollbackError::Irreversible { .. }
                | RollbackError::NoRollback { .. }
                | RollbackError::NoRollbackMissingFile { .. }
                | RollbackError::Syntax { .. }
                | RollbackError::TransactionControl { .. }
        )
    }
}

/// One migration to roll back, resolved before anything runs.
#[derive(Debug)]
struct Unit<'a> {
    id: String,
    migration: Option<&'a Migration>,
    source: RollbackSource,
    /// The rollback text (a down file's, or the stored one).
    text: String,
    /// Where `text` lives, for error locations (down files only).
    path: Option<PathBuf>,
    stmts: Vec<Statement>,
    no_transaction: bool,
    lock_timeout: Duration,
    statement_timeout: Duration,
    retries: u32,
}

/// Rolls back migration `id` (and, with `cascade`, every later one still applied, newest first).
///
/// Takes the deploy lock (not in a dry run), re-reads the ledger under it, resolves and parses
/// every rollback before running any, then runs each as one transaction (statements PostgreSQL
/// refuses inside one run alone). The ledger row becomes `rolled_back` in the same transaction,
/// so the next `migrate` applies the migration again.
pub async fn rollback(
    client: &Client,
    settings: &Settings,
    set: &MigrationSet,
    id: &str,
    opts: &RollbackOptions,
) -> Result<RollbackReport, RollbackError> {
    let started = Instant::now();
    let ledger = Ledger::from_settings(settings);
    if opts.dry_run {
        let rows = ledger.rows(client).await?;
        let units = resolve(settings, set, &rows, id, opts.cascade, opts.force)?;
        let drizzle = drizzle_table_exists(client, settings, set).await?;
        // Nothing is installed: the guard stays a DO block, shown as a comment unless `-v`.
        let mut runner = Runner::new(settings, &ledger, drizzle);
        runner.in_step = in_step_ledger(client, settings, set).await?;
        return Ok(RollbackReport {
            dry_run: true,
            rolled_back: units
                .iter()
                .map(|u| RolledBack {
                    id: u.id.clone(),
                    duration_ms: 0,
                    source: u.source,
                    statements: u.stmts.len(),
                    sql: Some({
                        let guard = runner.guard_sql(u);
                        runner
                            .groups(u)
                            .iter()
                            .map(|g| crate::migrate::shown_sql(&g.sql(), &guard, &ledger))
                            .collect::<Vec<_>>()
                            .join("\n")
                    }),
                })
                .collect(),
            duration_ms: started.elapsed().as_millis() as u64,
        });
    }
    let lock = DeployLock::for_ledger(&ledger.schema, &ledger.table);
    let mut taken = None;
    if opts.locked.is_none() {
        taken = Some(
            lock.take(client, settings.deploy_lock_timeout, |holder, waited| {
                tracing::warn!(
                    "waiting {}s for the deploy lock held by {}",
                    waited.as_secs(),
                    holder.map_or_else(|| "another session".to_string(), |h| h.to_string())
                );
            })
            .await?,
        );
    }
    let result = async {
        let held = Held::of(opts.locked.is_some(), opts.row_cache.as_deref());
        let units = ledger
            .with_rows(client, held, |rows| {
                resolve(settings, set, rows, id, opts.cascade, opts.force)
            })
            .await??;
        if let Some(c) = &opts.row_cache {
            c.written(units.iter().map(|u| u.id.as_str()));
        }
        // The audit table (and pgkeel's ledger columns) may be missing on a ledger another
        // tool created.
        if opts.locked.is_none() {
            ledger.ensure(client).await?;
        }
        let drizzle = drizzle_table_exists(client, settings, set).await?;
        let mut runner = Runner::new(settings, &ledger, drizzle);
        runner.in_step = in_step_ledger(client, settings, set).await?;
        if !units.is_empty() {
            runner.sender.install_guard(client, &ledger).await;
        }
        let mut done: Vec<RolledBack> = Vec::with_capacity(units.len());
        for u in &units {
            let before: Vec<String> = done.iter().map(|d| d.id.clone()).collect();
            if let Some(r) = runner.run(client, u, &before).await? {
                done.push(r);
            }
        }
        Ok(RollbackReport {
            dry_run: false,
            rolled_back: done,
            duration_ms: started.elapsed().as_millis() as u64,
        })
    }
    .await;
    if let (Err(_), Some(c)) = (&result, &opts.row_cache) {
        c.forget();
    }
    if let Some(session) = taken {
        lock.release_logged(client, session).await;
    }
    result
}

/// Finds `id`: exactly, or as the unique id starting with `id_` (`0003` for `0003_slim_warhawk`).
fn find_id(set: &MigrationSet, rows: &[LedgerRow], id: &str) -> Result<String, RollbackError> {
    let mut known: Vec<&str> = set.migrations.iter().map(|m| m.id.as_str()).collect();
    known.extend(rows.iter().map(|r| r.id.as_str()));
    if known.contains(&id) {
        return Ok(id.to_string());
    }
    let prefix = format!("{id}_");
    let mut candidates: Vec<String> = known
        .iter()
        .filter(|k| k.starts_with(&prefix))
        .map(|k| k.to_string())
        .collect();
    candidates.sort();
    candidates.dedup();
    match candidates.len() {
        0 => Err(RollbackError::UnknownId {
            id: id.to_string(),
            dir: set.dir.clone(),
        }),
        1 => Ok(candidates.remove(0)),
        _ => Err(RollbackError::AmbiguousId {
            id: id.to_string(),
            candidates,
        }),
    }
}

/// What to roll back, in order, with each rollback's SQL parsed. Pure: reads nothing.
fn resolve<'a>(
    settings: &Settings,
    set: &'a MigrationSet,
    rows: &[LedgerRow],
    id: &str,
    cascade: bool,
    force: bool,
) -> Result<Vec<Unit<'a>>, RollbackError> {
    let id = find_id(set, rows, id)?;
    let Some(pos) = rows.iter().position(|r| r.id == id) else {
        return Err(RollbackError::NotApplied {
            id,
            state: "pending".into(),
        });
    };
    let row = &rows[pos];
    if !row.status.is_in_effect() {
        return Err(RollbackError::NotApplied {
            id,
            state: row.status.as_str().to_string(),
        });
    }
    // Positions in the folder by id, looked up once per ledger row: a scan of the folder per
    // row made every rollback quadratic in the folder's length.
    let in_folder: rustc_hash::FxHashMap<&str, usize> = set
        .migrations
        .iter()
        .enumerate()
        .map(|(i, m)| (m.id.as_str(), i))
        .collect();
    let folder_index = |id: &str| in_folder.get(id).copied();
    let target_index = folder_index(&id);
    // Later: applied after it, or after it in the folder (applied out of order). Newest first.
    let mut later: Vec<usize> = rows
        .iter()
        .enumerate()
        .filter(|(i, r)| {
            *i != pos
                && r.status.is_in_effect()
                && (*i > pos
                    || matches!((target_index, folder_index(&r.id)), (Some(t), Some(f)) if f > t))
        })
        .map(|(i, _)| i)
        .collect();
    later.sort_unstable_by(|a, b| b.cmp(a));
    if !later.is_empty() && !cascade {
        return Err(RollbackError::LaterApplied {
            id,
            later: later.iter().map(|i| rows[*i].id.clone()).collect(),
        });
    }
    later.push(pos);
    later
        .into_iter()
        .map(|i| unit(settings, set, &rows[i], force))
        .collect()
}

/// The header pgkeel writes on a state-based rollback (see `migrate::state_rollback`).
const STATE_BASED: &str = "-- generated by pgkeel from schema snapshots";

/// Why `m` has no rollback pgkeel can trust: its first statement that changes what neither
/// the parse tree nor a schema diff can undo (rows, privileges, owners, …).
fn refusal(m: &Migration) -> Option<String> {
    let stmts = crate::migrate::parse(m).ok()?;
    let g = crate::invert::generate(&stmts);
    let r = g.refusal()?;
    let l = crate::migrate::statement_place(m, &stmts, r.statement);
    Some(format!(
        "statement {} at {}:{} ({}) {}",
        r.statement + 1,
        l.path.display(),
        l.line,
        crate::invert::head(&r.text),
        r.reason
    ))
}

fn unit<'a>(
    settings: &Settings,
    set: &'a MigrationSet,
    row: &LedgerRow,
    force: bool,
) -> Result<Unit<'a>, RollbackError> {
    let m = set.get(&row.id);
    let mut stored = row.rollback_sql.as_deref().filter(|s| !s.trim().is_empty());
    // A state-based rollback stored by an earlier pgkeel for a migration whose effect a schema
    // diff cannot see (seed rows, a GRANT) is empty or partial: refuse it rather than report a
    // rollback that left the effect in place.
    let mut reason = None;
    if let (Some(sql), Some(m)) = (stored, m) {
        if m.down.is_none() && sql.starts_with(STATE_BASED) {
            if let Some(r) = refusal(m) {
                reason = Some(format!("its stored state-based rollback cannot undo {r}"));
                stored = None;
            }
        }
    }
    let ledger_only = |m: Option<&'a Migration>| Unit {
        id: row.id.clone(),
        migration: m,
        source: RollbackSource::LedgerOnly,
        text: String::new(),
        path: None,
        stmts: Vec::new(),
        no_transaction: false,
        lock_timeout: settings.lock_timeout,
        statement_timeout: settings.statement_timeout,
        retries: settings.retries.max(1),
    };
    let (source, text, path, directives) = match (m.and_then(|m| m.down.as_ref()), stored) {
        (Some(down), _) => (
            RollbackSource::DownFile,
            down.sql.clone(),
            Some(down.path.clone()),
            down.directives.clone(),
        ),
        (None, Some(sql)) => (
            RollbackSource::Stored,
            sql.to_string(),
            None,
            crate::source::Directives {
                no_transaction: stored_no_transaction(sql),
                ..Default::default()
            },
        ),
        (None, None) if force => return Ok(ledger_only(m)),
        (None, None) => {
            return Err(match m {
                Some(m) if m.directives.irreversible => {
                    RollbackError::Irreversible { id: row.id.clone() }
                }
                Some(m) => RollbackError::NoRollback {
                    id: row.id.clone(),
                    expected: m.down_path(),
                    reason: reason.or_else(|| refusal(m)),
                },
                None => RollbackError::NoRollbackMissingFile { id: row.id.clone() },
            })
        }
    };
    let start = if text.starts_with('\u{feff}') {
        '\u{feff}'.len_utf8()
    } else {
        0
    };
    let stmts = crate::sql::split(&text[start..], start).map_err(|e| RollbackError::Syntax {
        id: row.id.clone(),
        source_kind: source,
        location: path
            .as_deref()
            .map(|p| Location::in_file(p, &text, e.offset)),
        message: e.message,
    })?;
    // A `BEGIN … COMMIT` wrapper is dropped: the rollback's transactional statements run in
    // one transaction anyway.
    let stmts = crate::sql::transaction_blocks(stmts, crate::sql::Wrapping::None).map_err(|e| {
        RollbackError::TransactionControl {
            id: row.id.clone(),
            statement: e.statement,
            problem: e.problem,
        }
    })?;
    Ok(Unit {
        id: row.id.clone(),
        migration: m,
        source,
        text,
        path,
        stmts,
        no_transaction: directives.no_transaction,
        lock_timeout: directives
            .lock_timeout
            .map_or(settings.lock_timeout, |t| t.as_duration()),
        statement_timeout: directives
            .statement_timeout
            .map_or(settings.statement_timeout, |t| t.as_duration()),
        retries: directives.retries.unwrap_or(settings.retries).max(1),
    })
}

/// Whether a stored rollback starts with `-- pgkeel:no-transaction` among its leading comments.
fn stored_no_transaction(sql: &str) -> bool {
    sql.trim_start_matches('\u{feff}')
        .lines()
        .map(str::trim)
        .take_while(|l| l.is_empty() || l.starts_with("--"))
        .any(|l| l == "-- pgkeel:no-transaction")
}

/// Whether drizzle-orm's own table must be kept in step (as `migrate` does for journal
/// folders): then a rollback deletes the migration's row there too, or drizzle's migrator and
/// pgkeel's takeover would take the migration for applied.
async fn drizzle_table_exists(
    client: &Client,
    settings: &Settings,
    set: &MigrationSet,
) -> Result<bool, DbError> {
    if !crate::drizzle::keeps_table_for(set.layout) {
        return Ok(false);
    }
    let name = crate::ident::qualified(&settings.drizzle_schema, &settings.drizzle_table);
    let row = client
        .query_typed_one(
            "SELECT to_regclass($1) IS NOT NULL",
            &[(&name, tokio_postgres::types::Type::TEXT)],
        )
        .await
        .map_err(|e| DbError::query("looking for drizzle-orm's migrations table", e))?;
    Ok(row.get(0))
}

/// The folder's own tool's ledger, when `--keep-ledger-in-step` keeps it and it exists: a
/// rollback then removes the migration there too, with the migration before it (which
/// golang-migrate's one row names then).
async fn in_step_ledger<'s>(
    client: &Client,
    settings: &Settings,
    set: &'s MigrationSet,
) -> Result<Option<(crate::foreign::Found, &'s MigrationSet)>, DbError> {
    if !settings.keep_ledger_in_step {
        return Ok(None);
    }
    for &tool in crate::foreign::Tool::for_layout(set.layout) {
        if let Some(found) = crate::foreign::locate(client, tool).await? {
            return Ok(Some((found, set)));
        }
    }
    Ok(None)
}

/// Reverts migrations through the executor `migrate` applies them with.
#[derive(Debug)]
struct Runner<'a> {
    settings: &'a Settings,
    ledger: &'a Ledger,
    drizzle: bool,
    /// The other tool's ledger kept in step, with the folder.
    in_step: Option<(crate::foreign::Found, &'a MigrationSet)>,
    sender: Sender<'a>,
}

impl<'a> Runner<'a> {
    fn new(settings: &'a Settings, ledger: &'a Ledger, drizzle: bool) -> Self {
        Runner {
            settings,
            ledger,
            drizzle,
            in_step: None,
            sender: Sender::new(settings),
        }
    }

    fn settings_sql(u: &Unit<'_>, local: bool) -> String {
        session_sql(u.lock_timeout, u.statement_timeout, local)
    }

    /// The guard shared with `migrate`'s transactions: the migration must still be applied, so
    /// it is rolled back once, whatever the connection path.
    fn guard_sql(&self, u: &Unit<'_>) -> String {
        self.sender.guard_sql(self.ledger, &u.id, Expect::Applied)
    }

    /// The ledger update, the audit row, and drizzle-orm's row, ending in `;\n`.
    fn record_sql(&self, u: &Unit<'_>) -> String {
        let mut sql = format!(
            "{};\n{};\n",
            self.ledger.rolled_back_sql(&u.id),
            self.ledger.audit_sql(
                "rollback",
                Some(&u.id),
                "rolled_back",
                Some(&serde_json::json!({ "source": u.source })),
            )
        );
        if let (true, Some(m)) = (self.drizzle, u.migration) {
            sql.push_str(&crate::drizzle::delete_row_sql(
                &self.settings.drizzle_schema,
                &self.settings.drizzle_table,
                m,
            ));
            sql.push_str(";\n");
        }
        if let (Some((found, set)), Some(m)) = (&self.in_step, u.migration) {
            let before = m.index.checked_sub(1).and_then(|i| set.migrations.get(i));
            sql.push_str(&found.reverted_sql(m, before));
        }
        sql
    }

    /// Consecutive transactional statements form one transaction; each statement PostgreSQL
    /// refuses inside one (or every statement, with `-- pgkeel:no-transaction`) runs alone. The
    /// ledger update goes into the last transaction, or alone after a trailing lone statement.
    fn groups(&self, u: &Unit<'_>) -> Vec<Group> {
        let tx_start = |b: &mut Batch| {
            b.push_raw("BEGIN;\n");
            b.push_raw(&Self::settings_sql(u, true));
            b.push_raw(&self.guard_sql(u));
        };
        let mut groups = Vec::new();
        let mut recorded = false;
        let mut i = 0;
        while i < u.stmts.len() {
            let first = i;
            let mut b = Batch::default();
            let mut pre = String::new();
            if u.stmts[i].transactional && !u.no_transaction {
                tx_start(&mut b);
                while i < u.stmts.len() && u.stmts[i].transactional {
                    b.push_statement(&u.stmts[i], i);
                    i += 1;
                }
                if i == u.stmts.len() {
                    b.push_raw(&self.record_sql(u));
                    recorded = true;
                }
                b.push_raw("COMMIT;");
            } else {
                // Sent alone: in a multi-statement query it would run in an implicit
                // transaction block, which these statements refuse.
                pre = Self::settings_sql(u, false);
                b.push_statement(&u.stmts[i], i);
                i += 1;
            }
            groups.push(Group {
                pre,
                batch: b,
                post: String::new(),
                cleanup: None,
                first,
                len: i - first,
            });
        }
        if !recorded {
            let mut post = String::from("BEGIN;\n");
            post.push_str(&self.guard_sql(u));
            post.push_str(&self.record_sql(u));
            post.push_str("COMMIT;");
            match groups.last_mut() {
                Some(g) => g.post = post,
                None => {
                    let mut b = Batch::default();
                    b.push_raw(&post);
                    groups.push(Group {
                        pre: String::new(),
                        batch: b,
                        post: String::new(),
                        cleanup: None,
                        first: 0,
                        len: 0,
                    });
                }
            }
        }
        groups
    }

    /// Runs one rollback. `Ok(None)` when another process rolled it back first.
    async fn run(
        &self,
        client: &Client,
        u: &Unit<'_>,
        before: &[String],
    ) -> Result<Option<RolledBack>, RollbackError> {
        let started = Instant::now();
        let groups = self.groups(u);
        let mut attempts_total = 0;
        let what = format!("rolling back {}", u.id);
        for g in &groups {
            let mut on_retry =
                |attempt, delay: Duration, pg: &PgError, _: &[crate::db::Blocker]| {
                    tracing::warn!(
                        "rollback of {} hit {} ({}); retrying in {} ms (attempt {attempt})",
                        u.id,
                        pg.code,
                        pg.message,
                        delay.as_millis()
                    );
                };
            match self
                .sender
                .send(client, g, &what, u.retries, &mut on_retry)
                .await
            {
                Ok(attempts) => attempts_total += attempts,
                Err(SendError::Db(e)) => return Err(e.into()),
                Err(SendError::Raced) => {
                    tracing::info!("{} was rolled back by another process meanwhile", u.id);
                    return Ok(None);
                }
                Err(SendError::Interrupted) => {
                    return Err(RollbackError::Interrupted { id: u.id.clone() })
                }
                Err(SendError::Failed {
                    pg,
                    completed,
                    attempts,
                    ..
                }) => {
                    return Err(self
                        .failure(client, u, g, (pg, completed, attempts), before)
                        .await)
                }
            }
        }
        tracing::info!(
            "rolled back {} ({}, {attempts_total} batch(es) sent)",
            u.id,
            u.source
        );
        Ok(Some(RolledBack {
            id: u.id.clone(),
            duration_ms: started.elapsed().as_millis() as u64,
            source: u.source,
            statements: u.stmts.len(),
            sql: None,
        }))
    }

    async fn failure(
        &self,
        client: &Client,
        u: &Unit<'_>,
        g: &Group,
        // The server's error, the statements of the batch that completed, the attempts made.
        (pg, completed, attempts): (PgError, usize, u32),
        before: &[String],
    ) -> RollbackError {
        // The statement holding the server's error position, else the one running when the
        // batch stopped.
        let offset = pg
            .position
            .and_then(|p| g.batch.file_offset(p))
            .or_else(|| {
                g.batch
                    .statement_after(completed)
                    .and_then(|i| u.stmts.get(i))
                    .map(|s| s.offset)
            });
        let location = match (offset, &u.path) {
            (Some(o), Some(path)) => Some(Location::in_file(path, &u.text, o)),
            _ => None,
        };
        let statement = offset
            .and_then(|o| u.stmts.iter().rposition(|s| s.offset <= o))
            .filter(|i| (g.first..g.first + g.len).contains(i))
            .or((g.len == 1).then_some(g.first));
        let statements_done = g.first;
        let audit = self.ledger.audit_sql(
            "rollback",
            Some(&u.id),
            "failed",
            Some(&serde_json::json!({
                "source": u.source,
                "error": pg.to_string(),
                "statements_done": statements_done,
            })),
        );
        if let Err(e) = client.batch_execute(&audit).await {
            tracing::debug!("recording the failed rollback of {}: {e}", u.id);
        }
        RollbackError::Failed {
            id: u.id.clone(),
            source_kind: u.source,
            pg,
            location,
            statement,
            statements: u.stmts.len(),
            attempts,
            statements_done,
            rolled_back_before: before.to_vec(),
        }
    }
}

impl crate::outcome::Classify for RollbackError {
    fn kind(&self) -> crate::outcome::FailureKind {
        use crate::outcome::FailureKind as K;
        match self {
            RollbackError::Db(d) => crate::outcome::Classify::kind(d),
            RollbackError::Failed { .. } => K::Migration,
            RollbackError::Interrupted { .. } => K::Interrupted,
            RollbackError::UnknownId { .. }
            | RollbackError::AmbiguousId { .. }
            | RollbackError::NotApplied { .. }
            | RollbackError::LaterApplied { .. } => K::Usage,
            RollbackError::Source(_)
            | RollbackError::Irreversible { .. }
            | RollbackError::NoRollback { .. }
            | RollbackError::NoRollbackMissingFile { .. }
            | RollbackError::Syntax { .. }
            | RollbackError::TransactionControl { .. } => K::Findings,
        }
    }
}

#[cfg(test)]
mod tests;
