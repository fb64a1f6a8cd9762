//! `pgkeel test`: the migration test suite, run in a scratch database (never the target).
//!
//! For every migration, in order: optional data fixtures are loaded first; it is applied with
//! the real migrator, timed, with the relation locks its transaction holds copied from
//! `pg_locks` just before it commits ([`CAPTURE_LOCKS`]), and checked for table rewrites (a
//! changed `relfilenode`); then the round trip: rolled back (down file, stored or generated
//! rollback) and the schema compared with the snapshot from before it, re-applied and compared
//! with the snapshot from after it. Snapshots cover the relations it locked (and every
//! non-relation object); the "before" one is cut from a model of the whole schema that the
//! suite keeps up to date, so each migration costs one apply, one rollback, one re-apply and
//! three scoped snapshots. Differences are schema diffs. At the end a second `migrate` must be
//! a no-op with every hash matching, and every file is linted.
//!
//! Every migration gets a [`Verdict`]: a round trip that leaves a difference the suite cannot
//! repair is judged and the rest go on from a scratch database rebuilt up to it; a migration
//! without a rollback is `skipped` with the reason; columns that come back in another order
//! are a warning (`strict` makes them a failure); the migrations after one that fails to apply
//! are `skipped` ("not run"), never failed. Lint findings are reported beside the verdicts and
//! fail the suite only when critical in a migration the target database has not applied yet
//! (or at the severity the caller asks for). This module renders nothing: the CLI prints
//! [`TestReport`], writes it as JSON and as JUnit XML ([`junit`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use tokio_postgres::Client;

use crate::config::Settings;
use crate::db::{DbError, DeployLock, Target};
use crate::lint::{self, LintOptions, Violation};
use crate::migrate::{MigrateOptions, Migrator, Silent};
use crate::report::Severity;
use crate::rollback::{self, RollbackError, RollbackOptions};
use crate::schema::{self, IntrospectOptions, Snapshot};
use crate::scratch::{Scratch, ScratchOptions};
use crate::source::MigrationSet;

#[derive(Debug, Clone, Default)]
pub struct TestOptions {
    pub scratch: ScratchOptions,
    /// `*.sql` files named after a migration id (`0003_slim_warhawk.sql`), loaded just before
    /// that migration. Default `tests/fixtures` when it exists.
    pub fixtures: Option<PathBuf>,
    /// Skip the rollback round trip.
    pub no_round_trip: bool,
    /// Lint findings at least this severe fail the suite, in every migration. `None`: only
    /// critical findings in migrations the target database has not applied (pending) fail it;
    /// an applied migration cannot be changed any more, so its findings are reported only.
    pub lint_fail_on: Option<Severity>,
    /// Columns that come back in another order after a round trip fail the migration instead
    /// of being a warning.
    pub strict: bool,
    pub pg_version: Option<u32>,
}

/// How one migration was judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Applied, and (unless the round trip was left out) rolled back and re-applied to the same
    /// schema.
    Pass,
    /// As `pass`, with something to look at (`warnings`): columns back in another order.
    Warning,
    /// It failed to apply, its rollback failed or left the schema different, or re-applying it
    /// failed or gave another schema (`error`, `diff`).
    Fail,
    /// Could not be judged (`note` says why): it has no rollback, or an earlier migration
    /// failed to apply so it was not run.
    Skipped,
}

/// A lock a migration's transaction held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct LockTaken {
    pub relation: String,
    /// The strongest mode held on it.
    pub mode: String,
    /// The relation existed before the migration (a lock on a new one blocks nobody).
    pub existing: bool,
}

/// PostgreSQL's table lock modes, weakest first.
const MODES: &[&str] = &[
    "AccessShareLock",
    "RowShareLock",
    "RowExclusiveLock",
    "ShareUpdateExclusiveLock",
    "ShareLock",
    "ShareRowExclusiveLock",
    "ExclusiveLock",
    "AccessExclusiveLock",
];

fn strength(mode: &str) -> usize {
    MODES.iter().position(|m| *m == mode).unwrap_or(0)
}

/// What happened to one migration.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct MigrationResult {
    pub id: String,
    pub verdict: Verdict,
    /// Not failed (`verdict` is not `fail`).
    pub ok: bool,
    /// Not applied on the target database (or no target was known): its lint errors count.
    pub pending: bool,
    pub apply_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fixture: Option<PathBuf>,
    /// Relation locks held inside its transaction; `None` when it runs outside one.
    pub locks: Option<Vec<LockTaken>>,
    /// Tables whose storage was rewritten.
    pub rewrites: Vec<String>,
    /// `ok`, `failed`, `skipped` (with `note`), or `not-run`.
    pub rollback: &'static str,
    pub reapply: &'static str,
    pub rollback_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The failure, when `ok` is false.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The schema difference that made the round trip fail, as SQL that would repair it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// What made the verdict `warning`: the tables whose columns came back in another order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    pub lint: Vec<Violation>,
}

impl MigrationResult {
    fn new(id: &str, pending: bool, lint: Vec<Violation>) -> Self {
        MigrationResult {
            id: id.to_string(),
            verdict: Verdict::Pass,
            ok: true,
            pending,
            apply_ms: 0,
            fixture: None,
            locks: None,
            rewrites: Vec::new(),
            rollback: "not-run",
            reapply: "not-run",
            rollback_ms: 0,
            note: None,
            error: None,
            diff: None,
            warnings: Vec::new(),
            lint,
        }
    }

    /// Sets the verdict from what the suite recorded: a failure is `fail`; not run or no
    /// rollback is `skipped`; warnings make a pass a `warning`.
    fn judged(mut self) -> Self {
        self.verdict = if !self.ok {
            Verdict::Fail
        } else if self.verdict == Verdict::Skipped || self.rollback == "skipped" {
            Verdict::Skipped
        } else if !self.warnings.is_empty() {
            Verdict::Warning
        } else {
            Verdict::Pass
        };
        self
    }
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct TestReport {
    pub ok: bool,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub migrations_dir: PathBuf,
    /// Where the scratch database ran (redacted).
    pub scratch: String,
    pub duration_ms: u64,
    pub apply_ms: u64,
    /// Verdict `pass` or `warning`.
    pub passed: usize,
    pub failed: usize,
    /// Of the passed, those with warnings.
    pub warned: usize,
    pub skipped: usize,
    /// Where `pending` came from: `target` (the target database's ledger) or `none` (no target
    /// could be read: every migration counts as pending).
    pub pending_from: &'static str,
    pub idempotent: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_error: Option<String>,
    /// The PostgreSQL version (`server_version_num`) the lint rules were checked against.
    pub lint_pg_version: u32,
    pub lint_errors: usize,
    pub lint_warnings: usize,
    pub migrations: Vec<MigrationResult>,
}

#[derive(Debug, thiserror::Error)]
pub enum TestError {
    #[error(transparent)]
    Scratch(#[from] crate::scratch::ScratchError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("cannot read fixtures folder {}: {source}", path.display())]
    Fixtures {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("rebuilding the scratch database to go on after a failed round trip: re-applying {id} failed: {message}")]
    Rebuild { id: String, message: String },
    #[error("introspecting the scratch database: {0}")]
    Schema(#[from] schema::SchemaError),
    #[error("reading the locks a migration took: {0} (a bug in pgkeel: please report it)")]
    LockCapture(String),
    #[error("writing the JUnit report: {0} (a bug in pgkeel: please report it)")]
    Junit(#[from] quick_junit::SerializeError),
}

/// Runs the suite for `set` in a scratch database created as `opts.scratch` says.
pub async fn run(
    settings: &Settings,
    set: &MigrationSet,
    opts: &TestOptions,
) -> Result<TestReport, TestError> {
    let started_at = chrono::Utc::now();
    let started = Instant::now();
    let fixtures = load_fixtures(opts.fixtures.as_deref())?;
    let lint_opts = LintOptions {
        pg_version: opts.pg_version.unwrap_or(170000),
        lock_timeout_disabled: settings.lock_timeout.is_zero(),
        rollback_file: false,
        needs_rollback: false,
    };
    let mut lint_by_file: HashMap<PathBuf, Vec<Violation>> = HashMap::new();
    for r in lint::lint_set(set, &lint_opts) {
        lint_by_file.insert(r.path.clone(), r.violations);
    }
    let applied = match &opts.scratch.target {
        Some(target) => applied_on_target(settings, target).await,
        None => None,
    };
    let pending_from = if applied.is_some() { "target" } else { "none" };
    let inputs = Inputs {
        fixtures,
        applied: applied.unwrap_or_default(),
    };
    // One scratch database, and a fresh one rebuilt up to the last migration judged whenever a
    // round trip leaves the schema in a state the suite cannot repair: every migration is judged.
    let mut migrations = Vec::new();
    let idempotency_error;
    let mut scratch_name;
    let mut start = 0;
    loop {
        let db = Scratch::create(settings, &opts.scratch).await?;
        scratch_name = db.target().to_string();
        let result = suite(settings, set, opts, &db, &inputs, &mut lint_by_file, start).await;
        let dropped = db.drop_now().await;
        let (mut part, idempotency, broken_at) = result?;
        if let Err(e) = dropped {
            tracing::warn!("dropping the scratch database: {e}");
        }
        migrations.append(&mut part);
        match broken_at {
            Some(i) if i + 1 < set.migrations.len() => {
                tracing::info!(
                    "{}: the scratch database could not be brought back; rebuilding it up to this migration to go on",
                    set.migrations[i].id
                );
                start = i + 1;
            }
            _ => {
                idempotency_error = idempotency;
                break;
            }
        }
    }
    let fails = |m: &MigrationResult, v: &Violation| match opts.lint_fail_on {
        Some(at) => v.severity >= at,
        None => m.pending && v.severity >= Severity::Critical,
    };
    let lint_errors = migrations
        .iter()
        .map(|m| m.lint.iter().filter(|v| fails(m, v)).count())
        .sum();
    let lint_warnings = migrations.iter().map(|m| m.lint.len()).sum::<usize>() - lint_errors;
    let count = |v: Verdict| migrations.iter().filter(|m| m.verdict == v).count();
    let (failed, skipped, warned) = (
        count(Verdict::Fail),
        count(Verdict::Skipped),
        count(Verdict::Warning),
    );
    Ok(TestReport {
        lint_pg_version: lint_opts.pg_version,
        ok: failed == 0 && idempotency_error.is_none() && lint_errors == 0,
        started_at,
        migrations_dir: set.dir.clone(),
        scratch: scratch_name,
        duration_ms: started.elapsed().as_millis() as u64,
        apply_ms: migrations.iter().map(|m| m.apply_ms).sum(),
        passed: migrations.len() - failed - skipped,
        failed,
        warned,
        skipped,
        pending_from,
        idempotent: idempotency_error.is_none(),
        idempotency_error,
        lint_errors,
        lint_warnings,
        migrations,
    })
}

/// The migrations the target database's ledger has in effect (applied or baselined), or `None`
/// when it cannot be read (no such server, no access): then every migration counts as pending.
async fn applied_on_target(
    settings: &Settings,
    target: &Target,
) -> Option<std::collections::HashSet<String>> {
    let read = async {
        let client = target.connect().await?;
        crate::ledger::Ledger::from_settings(settings)
            .rows(&client)
            .await
    };
    match read.await {
        Ok(rows) => Some(
            rows.into_iter()
                .filter(|r| r.status.is_in_effect())
                .map(|r| r.id)
                .collect(),
        ),
        Err(e) => {
            tracing::info!(
                "cannot read which migrations the target database has applied ({e}): every migration's lint counts"
            );
            None
        }
    }
}

fn load_fixtures(dir: Option<&Path>) -> Result<HashMap<String, (PathBuf, String)>, TestError> {
    let mut out = HashMap::new();
    let Some(dir) = dir else { return Ok(out) };
    let io = |source| TestError::Fixtures {
        path: dir.to_path_buf(),
        source,
    };
    for e in std::fs::read_dir(dir).map_err(io)? {
        let path = e.map_err(io)?.path();
        if path.extension().and_then(|x| x.to_str()) != Some("sql") {
            continue;
        }
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let text = std::fs::read_to_string(&path).map_err(io)?;
        out.insert(stem.to_string(), (path, text));
    }
    Ok(out)
}

/// What the suite reads once, before the first scratch database.
struct Inputs {
    /// By migration id: the fixture's path and SQL.
    fixtures: HashMap<String, (PathBuf, String)>,
    /// The migrations the target database has applied ([`applied_on_target`]).
    applied: std::collections::HashSet<String>,
}

/// The results of the migrations judged, the idempotency error, and the index of the migration
/// after which the scratch database was left in a state the suite cannot repair (then the
/// caller rebuilds one up to it and calls again from the next).
type SuiteResult = (Vec<MigrationResult>, Option<String>, Option<usize>);

async fn suite(
    settings: &Settings,
    set: &MigrationSet,
    opts: &TestOptions,
    db: &Scratch,
    inputs: &Inputs,
    lint_by_file: &mut HashMap<PathBuf, Vec<Violation>>,
    start: usize,
) -> Result<SuiteResult, TestError> {
    let (fixtures, applied) = (&inputs.fixtures, &inputs.applied);
    let client = db.target().connect().await?;
    scratch_session(&client).await?;
    let mut introspector = schema::Introspector::prepare(&client).await?;
    let relations_stmt = client
        .prepare(RELATIONS)
        .await
        .map_err(|e| DbError::query("preparing the query that reads the relations", e))?;
    let mut s = settings.clone();
    s.database_url = None;
    let intro = IntrospectOptions::from_settings(&s);
    // Nothing else uses the scratch database: the deploy lock is taken and the ledger created
    // once, and every apply, rollback and re-apply runs under that lock.
    let ledger = crate::ledger::Ledger::from_settings(&s);
    let session = DeployLock::for_ledger(&ledger.schema, &ledger.table)
        .take(&client, s.deploy_lock_timeout, |_, _| {})
        .await?;
    ledger.ensure(&client).await?;
    // Each apply and re-apply records, inside its own transaction, the locks it holds: for the
    // locks and rewrites reports, the snapshots' scope and following the relations.
    let migrator = Migrator::new(&s, set)
        .in_locked_session(session)
        .with_row_cache(std::sync::Arc::new(crate::ledger::RowCache::default()))
        .with_before_commit(CAPTURE_LOCKS);
    // A rebuilt scratch database: the migrations already judged are applied again (with their
    // fixtures), untested, to reach the state after the last of them.
    for m in &set.migrations[..start] {
        if let Some((path, sql)) = fixtures.get(&m.id) {
            client.batch_execute(sql).await.map_err(|e| {
                DbError::query(format!("loading fixture {} again", path.display()), e)
            })?;
        }
        let upto = MigrateOptions {
            target: Some(m.id.clone()),
            ..MigrateOptions::default()
        };
        migrator
            .migrate(&client, &upto, &mut Silent)
            .await
            .map_err(|e| TestError::Rebuild {
                id: m.id.clone(),
                message: e.to_string(),
            })?;
        captured_locks(&client).await?;
    }
    // The whole schema as it stands, kept up to date from the scoped snapshots: the "before"
    // of each migration is cut from it instead of being read (see `Snapshot::merge_scoped`).
    let mut model = match opts.no_round_trip {
        true => None,
        false => Some(introspector.read(&client, &intro).await?),
    };
    // The relations by oid, for the locks and rewrites reports: read once, then kept up to date
    // from what each apply and re-apply locked (every DDL locks what it creates, changes or
    // drops; see `follow`), and read again after anything that was not captured (a fixture, a
    // migration outside one transaction, a rollback that failed or had to be repaired).
    let mut rels: Option<HashMap<u32, Relation>> = None;
    let mut results = Vec::new();
    // The migration that failed to apply: the ones after it are not run.
    let mut broken: Option<&str> = None;
    for (index, m) in set.migrations.iter().enumerate().skip(start) {
        let mut lint = lint_by_file.remove(&m.path).unwrap_or_default();
        if let Some(d) = &m.down {
            lint.extend(lint_by_file.remove(&d.path).unwrap_or_default());
        }
        let mut r = MigrationResult::new(&m.id, !applied.contains(&m.id), lint);
        if let Some(failed) = broken {
            r.verdict = Verdict::Skipped;
            r.note = Some(format!("not run: {failed} failed to apply"));
            results.push(r.judged());
            continue;
        }
        if let Some((path, sql)) = fixtures.get(&m.id) {
            r.fixture = Some(path.clone());
            if let Err(e) = client.batch_execute(sql).await {
                r.ok = false;
                r.error = Some(format!(
                    "loading fixture {}: {}",
                    path.display(),
                    DbError::query("fixture", e)
                ));
                broken = Some(&m.id);
                results.push(r.judged());
                continue;
            }
            // A fixture may create objects as well as rows.
            rels = None;
            if model.is_some() {
                model = Some(introspector.read(&client, &intro).await?);
            }
        }
        let mut rels_before = match rels.take() {
            Some(kept) => kept,
            None => relations(&client, &relations_stmt).await?,
        };
        let opts_one = MigrateOptions {
            target: Some(m.id.clone()),
            ..MigrateOptions::default()
        };
        let t = Instant::now();
        let applied = migrator.migrate(&client, &opts_one, &mut Silent).await;
        r.apply_ms = t.elapsed().as_millis() as u64;
        // Read (and empty) the capture also when the apply failed: nothing is left behind.
        let captured = captured_locks(&client).await?;
        if let Err(e) = applied {
            r.ok = false;
            r.error = Some(e.to_string());
            broken = Some(&m.id);
            results.push(r.judged());
            continue;
        }
        // Migrations that run outside one transaction record no locks: compared on the whole
        // schema, and their rewrites found among every relation.
        let in_one_tx = !captured.is_empty();
        let rels_after = match in_one_tx {
            true => None,
            false => Some(relations(&client, &relations_stmt).await?),
        };
        r.rewrites = match &rels_after {
            None => rewrites(
                &rels_before,
                captured
                    .iter()
                    .filter_map(|c| Some((c.oid, c.relfilenode?))),
            ),
            Some(after) => rewrites(
                &rels_before,
                after.iter().map(|(oid, a)| (*oid, a.relfilenode)),
            ),
        };
        let scope = in_one_tx.then(|| {
            let names = touched(&captured, &rels_before, &intro);
            match &model {
                Some(whole) => whole.with_dependents(&names),
                None => names,
            }
        });
        if in_one_tx {
            r.locks = Some(locks_taken(&captured, &rels_before, &intro));
        }
        rels = Some(match rels_after {
            Some(after) => after,
            None => {
                follow(&mut rels_before, &captured);
                rels_before
            }
        });
        let Some(whole) = model.as_mut() else {
            results.push(r.judged());
            continue;
        };
        introspector
            .replan_if_grown(&client, whole.tables.len() + whole.views.len())
            .await?;
        // The round trip compares the relations the migration touched (every DDL locks what it
        // changes, creates or drops) with their columns, constraints, indexes and the rest, and
        // every non-relation object: snapshots whose cost does not grow with the folder.
        let scoped = match &scope {
            Some(names) => IntrospectOptions {
                only_tables: Some(names.clone()),
                ..intro.clone()
            },
            None => intro.clone(),
        };
        let before = match &scope {
            Some(names) => whole.scoped(names),
            None => whole.clone(),
        };
        // Types, functions, schemas and extensions are read again only when the migration or
        // its down file has a statement that could change them.
        let table_level = crate::sql::table_level_only(&m.sql)
            && m.down
                .as_ref()
                .is_none_or(|d| crate::sql::table_level_only(&d.sql));
        let kept = table_level.then_some(&before);
        let after = introspector.read_keeping(&client, &scoped, kept).await?;
        match &scope {
            Some(names) => {
                if whole.merge_scoped(names, after.clone()) {
                    *whole = introspector.read(&client, &intro).await?;
                }
            }
            None => *whole = after.clone(),
        }
        let snap = Snap {
            introspector: &introspector,
            intro: &scoped,
            kept,
            before: &before,
            after: &after,
            strict: opts.strict,
        };
        // The relations follow the re-apply's capture (its tables are new oids); the rollback
        // in between is not captured: what it changed and the re-apply did not undo makes the
        // round trip fail, and then the relations are read again.
        round_trip(&client, &s, set, &migrator, m, &snap, &mut r).await?;
        let recaptured = captured_locks(&client).await?;
        // Columns back in another order: the model (and the next "before") must be the table
        // as it now is, not as the first apply left it.
        if !r.warnings.is_empty() {
            *whole = introspector.read(&client, &intro).await?;
        }
        match (r.rollback, r.reapply) {
            _ if !r.warnings.is_empty() => rels = None,
            ("skipped", _) => {}
            ("ok", "ok") if !recaptured.is_empty() => {
                if let Some(kept) = rels.as_mut() {
                    follow(kept, &recaptured);
                }
            }
            _ => rels = None,
        }
        // A failed round trip is reported; the suite goes on here as long as the schema is
        // back to the state after this migration, and on a rebuilt scratch database otherwise.
        let unrepaired = r.reapply == "failed";
        results.push(r.judged());
        if unrepaired {
            return Ok((results, None, Some(index)));
        }
    }
    // Idempotency: nothing left to apply, no hash differs.
    let mut idempotency = None;
    if broken.is_none() {
        match migrator
            .migrate(&client, &MigrateOptions::default(), &mut Silent)
            .await
        {
            Ok(rep) if rep.applied.is_empty() => {
                let plan = migrator.plan(&client).await.ok();
                if let Some(m) = plan.as_ref().and_then(|p| p.modified().next()) {
                    idempotency = Some(format!("{} is recorded with another hash", m.id));
                }
            }
            Ok(rep) => {
                idempotency = Some(format!(
                    "a second migrate applied {} migration(s) again",
                    rep.applied.len()
                ))
            }
            Err(e) => idempotency = Some(format!("a second migrate failed: {e}")),
        }
        // The model must have followed the database; if it did not, a migration changed a
        // relation without locking it and the "before" snapshots after it may be off.
        if let Some(whole) = &model {
            let now = introspector.read(&client, &intro).await?;
            let d = schema::diff(&now, whole);
            if !d.is_empty() {
                tracing::warn!(
                    "the test suite's schema model differs from the scratch database: {}",
                    changed_objects(&d)
                );
            }
        }
    }
    Ok((results, idempotency, None))
}

/// The scratch database is thrown away at the end: its commits need not wait for the WAL to
/// reach disk (`synchronous_commit = off`; apply, rollback and re-apply each commit), and the
/// snapshot queries, run three times per migration, keep one generic plan (`plan_cache_mode`,
/// PostgreSQL 12 and later) instead of being planned again every time: planned again only as
/// the catalog grows ([`schema::Introspector::replan_if_grown`]).
async fn scratch_session(client: &Client) -> Result<(), DbError> {
    client
        .batch_execute(
            "SELECT set_config('synchronous_commit', 'off', false),
                    (SELECT set_config('plan_cache_mode', 'force_generic_plan', false)
                      WHERE current_setting('server_version_num')::int >= 120000)",
        )
        .await
        .map_err(|e| DbError::query("preparing the scratch session", e))?;
    Ok(())
}

/// One migration's snapshots: before it and after it, scoped to what it touched.
struct Snap<'a> {
    introspector: &'a schema::Introspector,
    intro: &'a IntrospectOptions,
    /// Where the non-relation objects come from when they need not be read.
    kept: Option<&'a Snapshot>,
    before: &'a Snapshot,
    after: &'a Snapshot,
    /// Columns back in another order fail the round trip (else they are a warning).
    strict: bool,
}

async fn round_trip(
    client: &Client,
    settings: &Settings,
    set: &MigrationSet,
    migrator: &Migrator<'_>,
    m: &crate::source::Migration,
    snap: &Snap<'_>,
    r: &mut MigrationResult,
) -> Result<(), TestError> {
    let t = Instant::now();
    let rolled = rollback::rollback(
        client,
        settings,
        set,
        &m.id,
        &RollbackOptions {
            cascade: false,
            dry_run: false,
            force: false,
            locked: migrator.session(),
            row_cache: migrator.row_cache(),
        },
    )
    .await;
    r.rollback_ms = t.elapsed().as_millis() as u64;
    match rolled {
        Ok(_) => {}
        Err(RollbackError::Irreversible { .. }) => {
            r.rollback = "skipped";
            r.note = Some("marked -- pgkeel:irreversible".into());
            return Ok(());
        }
        // Not `rollback`'s refusal text: its `--force` means nothing to a test run.
        Err(RollbackError::NoRollback {
            expected, reason, ..
        }) => {
            r.rollback = "skipped";
            r.note = Some(format!(
                "no rollback: {}; write {} to test its round trip",
                reason
                    .as_deref()
                    .unwrap_or("pgkeel cannot undo every statement of it"),
                expected.display()
            ));
            return Ok(());
        }
        Err(e @ RollbackError::NoRollbackMissingFile { .. }) => {
            r.rollback = "skipped";
            r.note = Some(e.to_string());
            return Ok(());
        }
        Err(e) => {
            r.ok = false;
            r.rollback = "failed";
            r.error = Some(e.to_string());
            // The migration is still applied: the next ones can run.
            r.reapply = "ok";
            return Ok(());
        }
    }
    let now = snap
        .introspector
        .read_keeping(client, snap.intro, snap.kept)
        .await?;
    let mut d = schema::diff(&now, snap.before);
    column_order(&mut d, snap.strict, "rolled back", &mut r.warnings);
    if d.is_empty() {
        r.rollback = "ok";
    } else {
        r.ok = false;
        r.rollback = "failed";
        r.error = Some(format!(
            "after its rollback the schema differs from before it: {}",
            changed_objects(&d)
        ));
        r.diff = Some(d.to_sql());
        // Bring the schema to where the rollback should have left it, so the re-apply (and the
        // migrations after it) are tested from the right state.
        let repair = if d.unsupported().next().is_some() {
            Err("the difference cannot be repaired automatically".to_string())
        } else {
            client.batch_execute(&d.to_sql()).await.map_err(|e| {
                DbError::query("repairing the schema after the rollback", e).to_string()
            })
        };
        if let Err(e) = repair {
            r.reapply = "failed";
            r.note = Some(format!(
                "{e}: the migrations after it are judged on a scratch database rebuilt up to it"
            ));
            return Ok(());
        }
    }
    match migrator
        .migrate(
            client,
            &MigrateOptions {
                target: Some(m.id.clone()),
                ..MigrateOptions::default()
            },
            &mut Silent,
        )
        .await
    {
        Ok(_) => {}
        Err(e) => {
            r.ok = false;
            r.reapply = "failed";
            r.error = Some(format!("re-applying after the rollback failed: {e}"));
            return Ok(());
        }
    }
    let again = snap
        .introspector
        .read_keeping(client, snap.intro, snap.kept)
        .await?;
    let mut d = schema::diff(&again, snap.after);
    column_order(&mut d, snap.strict, "re-applied", &mut r.warnings);
    if d.is_empty() {
        r.reapply = "ok";
    } else {
        r.ok = false;
        r.reapply = "failed";
        r.error.get_or_insert_with(|| {
            format!(
                "re-applied, the schema differs from the first time: {}",
                changed_objects(&d)
            )
        });
        r.diff.get_or_insert_with(|| d.to_sql());
    }
    Ok(())
}

/// Takes the changes that are only a table's column order out of `d` and words them as
/// warnings (`when`: "rolled back", "re-applied"), unless `strict`: then they stay, and fail
/// the round trip like any other difference.
fn column_order(d: &mut schema::Diff, strict: bool, when: &str, warnings: &mut Vec<String>) {
    if strict {
        return;
    }
    d.changes.retain(|c| {
        if !c.is_column_order() {
            return true;
        }
        warnings.push(format!(
            "{when}, {} has its columns in another order: {}",
            c.object,
            c.unsupported.as_deref().unwrap_or_default()
        ));
        false
    });
}

/// The objects a schema diff names, for a one-line message.
fn changed_objects(d: &schema::Diff) -> String {
    d.changes
        .iter()
        .map(|c| c.object.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A relation of the scratch database, as read before and after a migration.
struct Relation {
    schema: String,
    name: String,
    /// `r`, `p`, `m` or `v`.
    kind: String,
    relfilenode: u32,
}

/// Every table, partitioned table, materialized view and view outside the system schemas,
/// by oid: read at the start and again after anything the suite did not capture (a fixture, a
/// migration outside one transaction, a failed or repaired round trip); in between the suite
/// follows the locks captured by each apply and re-apply ([`follow`]). Prepared once.
const RELATIONS: &str =
    "SELECT c.oid, n.nspname::text, c.relname::text, c.relkind::text, c.relfilenode::oid
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p', 'm', 'v')
        AND n.nspname NOT IN ('pg_catalog', 'information_schema')
        AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'";

/// Runs [`RELATIONS`], prepared as `stmt`.
async fn relations(
    client: &Client,
    stmt: &tokio_postgres::Statement,
) -> Result<HashMap<u32, Relation>, DbError> {
    let rows = client
        .query(stmt, &[])
        .await
        .map_err(|e| DbError::query("reading the relations", e))?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                r.get::<_, u32>(0),
                Relation {
                    schema: r.get(1),
                    name: r.get(2),
                    kind: r.get(3),
                    relfilenode: r.get(4),
                },
            )
        })
        .collect())
}

/// Brings `rels` up to date with what a migration locked (`captured`): relations it created or
/// changed take their names and storage from the capture, those it dropped go, and so does an
/// entry whose name now belongs to another oid (a table the rollback dropped and the re-apply
/// created again). System and temporary relations are left out, as [`RELATIONS`] leaves them.
fn follow(rels: &mut HashMap<u32, Relation>, captured: &[Captured]) {
    let mut named: std::collections::HashSet<(&str, &str)> = Default::default();
    for c in captured {
        match (&c.schema, &c.name, &c.kind, c.relfilenode) {
            (Some(schema), Some(name), Some(kind), Some(relfilenode))
                if matches!(kind.as_str(), "r" | "p" | "m" | "v") && !is_system(schema) =>
            {
                named.insert((schema, name));
                rels.insert(
                    c.oid,
                    Relation {
                        schema: schema.clone(),
                        name: name.clone(),
                        kind: kind.clone(),
                        relfilenode,
                    },
                );
            }
            (None, None, ..) => {
                rels.remove(&c.oid);
            }
            _ => {}
        }
    }
    let locked: std::collections::HashSet<u32> = captured.iter().map(|c| c.oid).collect();
    rels.retain(|oid, r| {
        locked.contains(oid) || !named.contains(&(r.schema.as_str(), r.name.as_str()))
    });
}

/// A schema [`RELATIONS`] leaves out.
fn is_system(schema: &str) -> bool {
    schema == "pg_catalog"
        || schema == "information_schema"
        || schema.starts_with("pg_toast")
        || schema.starts_with("pg_temp")
}

/// Tables and materialized views whose storage changed (the same oid, another relfilenode),
/// from `after`'s (oid, relfilenode) pairs: every relation after the migration, or only those
/// it locked (a rewrite takes a lock).
fn rewrites(
    before: &HashMap<u32, Relation>,
    after: impl IntoIterator<Item = (u32, u32)>,
) -> Vec<String> {
    let mut out: Vec<String> = after
        .into_iter()
        .filter_map(|(oid, relfilenode)| before.get(&oid).map(|b| (b, relfilenode)))
        .filter(|(b, relfilenode)| {
            matches!(b.kind.as_str(), "r" | "m") && b.relfilenode != *relfilenode
        })
        .map(|(b, _)| format!("{}.{}", b.schema, b.name))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Appended to each migration's transaction by the apply and the re-apply: keeps the relation
/// locks the session holds at that point in a session setting, as JSON (oids as numbers), for
/// [`captured_locks`]. An index or a sequence stands for the table it belongs to. A setting
/// rather than a temporary table: it is set only if the transaction commits, like a row would
/// be, but leaves no dead rows behind (a temporary table is never vacuumed: emptying it once
/// per migration made reading it cost more with each one) and no file to create.
const CAPTURE_LOCKS: &str = "SELECT set_config('pgkeel.test_locks', coalesce((
SELECT json_agg(json_build_array(l.relation::int8, l.mode, n.nspname, c.relname, c.relkind,
       coalesce(i.indrelid, (SELECT d.refobjid FROM pg_depend d
                              WHERE d.classid = 'pg_class'::regclass AND d.objid = l.relation
                                AND d.refclassid = 'pg_class'::regclass
                                AND d.deptype IN ('a', 'i') LIMIT 1))::int8,
       c.relfilenode::int8))
  FROM pg_locks l LEFT JOIN pg_class c ON c.oid = l.relation
  LEFT JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_index i ON i.indexrelid = l.relation
 WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.granted
   AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
), '[]')::text, false);
";

/// Reads what [`CAPTURE_LOCKS`] kept and empties it, in one statement: the materialized CTE
/// reads the setting before the outer query clears it.
const TAKE_CAPTURED_LOCKS: &str =
    "WITH kept AS MATERIALIZED (SELECT current_setting('pgkeel.test_locks', true) AS locks)
     SELECT kept.locks, set_config('pgkeel.test_locks', '', false) FROM kept";

/// One lock [`CAPTURE_LOCKS`] recorded.
struct Captured {
    oid: u32,
    mode: String,
    /// The name inside the migration; `None` for a relation it dropped.
    schema: Option<String>,
    name: Option<String>,
    kind: Option<String>,
    /// The table of an index or of an owned sequence.
    parent: Option<u32>,
    /// Its storage at the end of the migration; `None` for a relation it dropped.
    relfilenode: Option<u32>,
}

/// One element of [`CAPTURE_LOCKS`]'s JSON array, in its order.
type CapturedJson = (
    u32,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<u32>,
    Option<u32>,
);

/// Reads and empties what [`CAPTURE_LOCKS`] recorded. Empty when the migration ran outside one
/// transaction (nothing was recorded), or failed.
async fn captured_locks(client: &Client) -> Result<Vec<Captured>, TestError> {
    let rows = client
        .query_typed(TAKE_CAPTURED_LOCKS, &[])
        .await
        .map_err(|e| DbError::query("reading the locks a migration took", e))?;
    let kept: Option<String> = rows.first().and_then(|r| r.get(0));
    let kept = kept.unwrap_or_default();
    if kept.is_empty() {
        return Ok(Vec::new());
    }
    let parsed: Vec<CapturedJson> =
        serde_json::from_str(&kept).map_err(|e| TestError::LockCapture(e.to_string()))?;
    Ok(parsed
        .into_iter()
        .map(
            |(oid, mode, schema, name, kind, parent, relfilenode)| Captured {
                oid,
                mode,
                schema,
                name,
                kind,
                parent,
                relfilenode,
            },
        )
        .collect())
}

/// The relation a captured lock is on, as (schema, name, kind): its name inside the migration,
/// else (dropped there) its name before it. `None` for pgkeel's own tables, system and
/// temporary relations, and relations created and dropped inside the migration.
fn locked_relation(
    c: &Captured,
    before: &HashMap<u32, Relation>,
    intro: &IntrospectOptions,
) -> Option<(String, String, String)> {
    let (schema, name, kind) = match (&c.schema, &c.name, &c.kind) {
        (Some(s), Some(n), Some(k)) => (s.clone(), n.clone(), k.clone()),
        _ => {
            let b = before.get(&c.oid)?;
            (b.schema.clone(), b.name.clone(), b.kind.clone())
        }
    };
    let system = is_system(&schema);
    let own = intro
        .exclude_tables
        .iter()
        .any(|(s, t)| *s == schema && *t == name);
    (!system && !own).then_some((schema, name, kind))
}

/// The relations a migration locked, strongest mode each, flagged when they existed before it.
fn locks_taken(
    captured: &[Captured],
    before: &HashMap<u32, Relation>,
    intro: &IntrospectOptions,
) -> Vec<LockTaken> {
    let mut strongest: std::collections::BTreeMap<String, (String, bool)> = Default::default();
    for c in captured {
        let Some((schema, name, kind)) = locked_relation(c, before, intro) else {
            continue;
        };
        if !matches!(kind.as_str(), "r" | "p" | "m" | "v") {
            continue;
        }
        let e = strongest
            .entry(format!("{schema}.{name}"))
            .or_insert_with(|| (c.mode.clone(), before.contains_key(&c.oid)));
        if strength(&c.mode) > strength(&e.0) {
            e.0 = c.mode.clone();
        }
    }
    strongest
        .into_iter()
        .map(|(relation, (mode, existing))| LockTaken {
            relation,
            mode,
            existing,
        })
        .collect()
}

/// The relations a migration touched, under the names they have inside it and the names they
/// had before it, so renamed and dropped ones are compared too. Indexes and sequences count as
/// their table.
fn touched(
    captured: &[Captured],
    before: &HashMap<u32, Relation>,
    intro: &IntrospectOptions,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for c in captured {
        if let Some((schema, name, kind)) = locked_relation(c, before, intro) {
            if matches!(kind.as_str(), "r" | "p" | "m" | "v") {
                out.push((schema, name));
            }
        }
        for oid in [Some(c.oid), c.parent].into_iter().flatten() {
            if let Some(b) = before.get(&oid) {
                out.push((b.schema.clone(), b.name.clone()));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The report as JUnit XML: one test case per migration (a failure with the error and the
/// repairing diff, `skipped` with the reason), one for idempotency, and one for lint when lint
/// fails the suite. Written by `quick-junit`, which escapes what must be escaped and drops the
/// characters XML 1.0 cannot hold (a control character in a server message).
pub fn junit(r: &TestReport) -> Result<String, TestError> {
    use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
    let secs = |ms: u64| std::time::Duration::from_millis(ms);
    let mut suite = TestSuite::new(r.migrations_dir.display().to_string());
    for m in &r.migrations {
        let status = match m.verdict {
            Verdict::Pass | Verdict::Warning => TestCaseStatus::success(),
            Verdict::Skipped => {
                let mut s = TestCaseStatus::skipped();
                s.set_message(m.note.as_deref().unwrap_or("skipped"));
                s
            }
            Verdict::Fail => {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_message(m.error.as_deref().unwrap_or("failed"));
                if let Some(d) = &m.diff {
                    s.set_description(d.as_str());
                }
                s
            }
        };
        let mut case = TestCase::new(m.id.as_str(), status);
        case.set_classname("migrations")
            .set_time(secs(m.apply_ms + m.rollback_ms));
        if !m.warnings.is_empty() {
            case.set_system_out(m.warnings.join("\n"));
        }
        suite.add_test_case(case);
    }
    let idempotency = match &r.idempotency_error {
        None => TestCaseStatus::success(),
        Some(e) => {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            s.set_message(e.as_str());
            s
        }
    };
    let mut case = TestCase::new("idempotency", idempotency);
    case.set_classname("migrations");
    suite.add_test_case(case);
    if r.lint_errors > 0 {
        let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
        s.set_message(format!("{} lint error(s)", r.lint_errors));
        let mut case = TestCase::new("lint", s);
        case.set_classname("migrations");
        suite.add_test_case(case);
    }
    suite.set_time(secs(r.duration_ms));
    let mut report = Report::new("pgkeel test");
    report.set_time(secs(r.duration_ms)).add_test_suite(suite);
    Ok(report.to_string()?)
}

impl crate::outcome::Classify for TestError {
    fn kind(&self) -> crate::outcome::FailureKind {
        match self {
            TestError::Scratch(e) => e.kind(),
            TestError::Db(e) => e.kind(),
            TestError::Fixtures { .. } => crate::outcome::FailureKind::Usage,
            TestError::Rebuild { .. } => crate::outcome::FailureKind::Migration,
            TestError::Schema(e) => e.kind(),
            TestError::LockCapture(_) | TestError::Junit(_) => {
                crate::outcome::FailureKind::Internal
            }
        }
    }
}
