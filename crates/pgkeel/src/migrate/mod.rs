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

mod baseline;
mod error;
mod executor;
mod plan;
mod prepared;
mod state_rollback;
mod takeover;
pub use takeover::OtherLedger;

use baseline::*;
pub use error::*;
use executor::*;
pub(crate) use executor::{
    session_sql, shown_sql, Expect, Flush, Group, RunSoFar, SendError, Sender,
};
pub use plan::*;
pub use prepared::*;
use state_rollback::*;

/// SQLSTATE raised by the guard when another process applied the migration first.
pub(crate) const ALREADY_APPLIED: &str = "PGS01";

/// Where statement `index` of `m` (`stmts`: its statements) is in its file, for the messages
/// that refuse or warn about it (`rollback`, `migrate validate`).
pub(crate) fn statement_place(m: &Migration, stmts: &[Statement], index: usize) -> Location {
    Location::in_file(&m.path, &m.sql, stmts.get(index).map_or(0, |s| s.offset))
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
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct MigrateReport {
    pub dry_run: bool,
    /// Problems worth a human's attention that did not stop the run (drizzle takeover).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Migrations drizzle-orm silently skipped: reported, never applied blindly.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub held_back: Vec<String>,
    /// Migrations drizzle-orm or the folder's own tool had applied, recorded in the ledger
    /// as baselined without running them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub taken_over: Vec<String>,
    /// Whose ledger `taken_over` came from (`drizzle-orm`, `golang-migrate`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub taken_over_from: Option<String>,
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
    /// Sends each migration's batches (retries, blockers, Ctrl-C).
    sender: Sender<'a>,
    /// SQL run inside a migration's transaction after its statements, before it is recorded.
    before_commit: Option<String>,
    /// The caller holds the deploy lock on the connection `migrate` gets.
    session: Option<LockedSession>,
    /// The ledger's rows as that session last read or wrote them (with `session` only).
    cache: Option<std::sync::Arc<RowCache>>,
    /// Statements and inverses worked out once per migration for this migrator's runs.
    prepared: Prepared<'a>,
    /// The catalog queries of state-based rollback snapshots, prepared on the migrating
    /// connection the first time one is taken: preparing them afresh was most of what each
    /// scoped snapshot cost (bench/apply_cost.sh, views).
    introspector: tokio::sync::OnceCell<crate::schema::Introspector>,
    /// The other tool's ledger kept in step (`--keep-ledger-in-step`), set by the takeover.
    in_step: std::sync::OnceLock<Option<crate::foreign::Found>>,
    /// Set once another tool's ledger was looked at and written (not in a dry run): the test
    /// suite runs `migrate` thousands of times on one migrator, and pays for the look once.
    foreign_done: std::sync::OnceLock<()>,
}

impl<'a> Migrator<'a> {
    pub fn new(settings: &'a Settings, set: &'a MigrationSet) -> Self {
        Migrator {
            settings,
            set,
            ledger: Ledger::from_settings(settings),
            sender: Sender::new(settings),
            before_commit: None,
            session: None,
            cache: None,
            prepared: Prepared::for_set(set),
            introspector: tokio::sync::OnceCell::new(),
            in_step: std::sync::OnceLock::new(),
            foreign_done: std::sync::OnceLock::new(),
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
    /// locks there (see `pgkeel::ops::testing`). It must not fail: its error fails the migration.
    pub fn with_before_commit(mut self, sql: impl Into<String>) -> Self {
        self.before_commit = Some(sql.into());
        self
    }

    /// Stops cleanly when `rx` turns true: the running statement is cancelled on the server, its
    /// transaction rolled back, the outcome recorded, the lock released; the run then ends with
    /// [`MigrateError::Interrupted`].
    pub fn with_interrupt(mut self, rx: tokio::sync::watch::Receiver<bool>) -> Self {
        self.sender.set_interrupt(rx);
        self
    }

    fn interrupted(&self) -> bool {
        self.sender.interrupted()
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
            self.sender.set_pid(session.pid);
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
        if plan.pending(self.set).next().is_none() && plan.modified().all(Entry::is_cosmetic) {
            let ledger = ledger_warnings(&plan);
            for w in &ledger {
                obs.warn(w);
            }
            return Ok(MigrateReport {
                dry_run: false,
                warnings: [self.folder_warnings(), ledger].concat(),
                held_back: Vec::new(),
                taken_over: Vec::new(),
                taken_over_from: None,
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
        self.sender.set_pid(session.pid);
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
        let takeover = self.take_over(client, &mut Silent, true).await?;
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
            let catalog = self.catalog_before(client, m, &stmts, resume).await?;
            let rollback = self.rollback_for(m, Some(&stmts), &catalog);
            let groups = self.groups(m, &stmts, resume, rollback, Flush::Durable);
            let guard = self.guard_sql(m);
            let sql = groups
                .iter()
                .map(|g| shown_sql(&g.batch.text, &guard, &self.ledger))
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
            taken_over_from: takeover.from,
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

    /// Refuses to go on over an applied file whose SQL changed; a cosmetic-only change (line
    /// endings, BOM, trailing whitespace) is a warning ([`ledger_warnings`]), not a stop.
    fn refuse_modified(&self, plan: &Plan) -> Result<(), MigrateError> {
        let modified: Vec<&Entry> = plan.modified().filter(|e| !e.is_cosmetic()).collect();
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
        let takeover = self.take_over(client, obs, false).await?;
        if let (false, Some(c)) = (takeover.taken_over.is_empty(), &self.cache) {
            c.forget();
        }
        let plan = self.plan(client).await?;
        self.refuse_modified(&plan)?;
        let ledger = ledger_warnings(&plan);
        for w in &ledger {
            obs.warn(w);
        }
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
        if !todo.is_empty() {
            self.sender.install_guard(client, &self.ledger).await;
        }
        let mut applied = Vec::with_capacity(todo.len());
        let mut elsewhere = 0;
        if opts.single_transaction && !todo.is_empty() {
            applied = self.apply_all_in_one(client, &todo, &parsed, obs).await?;
        } else {
            let total = todo.len();
            for (i, ((entry, m), stmts)) in todo.iter().zip(&parsed).enumerate() {
                if self.interrupted() {
                    if i > 0 {
                        // The migrations before this one committed without waiting for the
                        // disk (`Flush::Deferred`): a transaction that takes an xid commits
                        // durably, which flushes the WAL up to it, theirs included.
                        let _ = client.batch_execute("SELECT txid_current()").await;
                    }
                    return Err(MigrateError::Interrupted { id: m.id.clone() });
                }
                obs.start(&m.id, i, total);
                let run = RunSoFar {
                    applied: &applied,
                    flush: match i + 1 < total {
                        true => Flush::Deferred,
                        false => Flush::Durable,
                    },
                };
                match self.apply_one(client, entry, m, stmts, obs, run).await? {
                    Some(a) => {
                        obs.done(&a);
                        applied.push(a);
                    }
                    None => elsewhere += 1,
                }
            }
        }
        // The report gives the durations the ledger recorded, so `migrate`, `deploy` and `status`
        // show one number per migration (the live lines gave the wall time as it went).
        if !applied.is_empty() {
            let ids: Vec<String> = applied.iter().map(|a| a.id.clone()).collect();
            match self.ledger.execution_times(client, &ids).await {
                Ok(times) => {
                    for a in &mut applied {
                        if let Some(ms) = times.get(&a.id).and_then(|ms| u64::try_from(*ms).ok()) {
                            a.duration_ms = ms;
                        }
                    }
                }
                Err(e) => tracing::debug!("keeping the measured durations: {e}"),
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
            warnings: [self.folder_warnings(), takeover.warnings, ledger].concat(),
            held_back: takeover.held_back,
            taken_over: takeover.taken_over,
            taken_over_from: takeover.from,
            already_applied: plan.counts.applied + elsewhere,
            applied,
            duration_ms: started.elapsed().as_millis() as u64,
            counts,
        })
    }
}

#[cfg(test)]
mod tests;

/// What `migrate` goes on past but says: applied migrations whose file is not in the folder any
/// more, and applied files changed only cosmetically (as `migrate validate` reports them).
fn ledger_warnings(plan: &Plan) -> Vec<String> {
    plan.migrations
        .iter()
        .filter_map(|e| match e.state {
            State::MissingFile => Some(format!(
                "{} is applied but its file is not in the folder any more: restore it (`pgkeel migrate validate` lists every such migration)",
                e.id
            )),
            State::Modified { cosmetic: true } => Some(format!(
                "{} changed after it was applied, in line endings, BOM or trailing whitespace only: `pgkeel repair` records it",
                e.id
            )),
            _ => None,
        })
        .collect()
}
