//! `pgshift test`: the migration test suite, run in a scratch database (never the target).
//!
//! For every migration, in order: optional data fixtures are loaded first; the locks its
//! transaction takes are read from `pg_locks` (by running it once in a transaction that is
//! rolled back); it is applied with the real migrator, timed, and checked for table rewrites
//! (a changed `relfilenode`); then the round trip: rolled back (down file, stored or generated
//! rollback) and the schema compared with the snapshot from before it, re-applied and compared
//! with the snapshot from after it. Differences are schema diffs. At the end a second `migrate`
//! must be a no-op with every hash matching, and every file is linted. This module renders
//! nothing: the CLI prints [`TestReport`], writes it as JSON and as JUnit XML ([`junit`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use tokio_postgres::Client;

use crate::config::Settings;
use crate::db::DbError;
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
    /// Lint severity that fails the suite.
    pub lint_fail_on: Option<Severity>,
    pub pg_version: Option<u32>,
}

/// A lock a migration's transaction held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
pub struct MigrationResult {
    pub id: String,
    pub ok: bool,
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
    pub lint: Vec<Violation>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TestReport {
    pub ok: bool,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub migrations_dir: PathBuf,
    /// Where the scratch database ran (redacted).
    pub scratch: String,
    pub duration_ms: u64,
    pub apply_ms: u64,
    pub passed: usize,
    pub failed: usize,
    pub idempotent: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_error: Option<String>,
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
    #[error("introspecting the scratch database: {0}")]
    Schema(#[from] schema::SchemaError),
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
    };
    let mut lint_by_file: HashMap<PathBuf, Vec<Violation>> = HashMap::new();
    for r in lint::lint_set(set, &lint_opts) {
        lint_by_file.insert(r.path.clone(), r.violations);
    }
    let db = Scratch::create(settings, &opts.scratch).await?;
    let scratch_name = db.target().to_string();
    let result = suite(settings, set, opts, &db, &fixtures, &mut lint_by_file).await;
    let dropped = db.drop_now().await;
    let (migrations, idempotency_error) = result?;
    if let Err(e) = dropped {
        tracing::warn!("dropping the scratch database: {e}");
    }
    let fail_on = opts.lint_fail_on.unwrap_or(Severity::Critical);
    let all_lint: Vec<&Violation> = migrations.iter().flat_map(|m| &m.lint).collect();
    let lint_errors = all_lint.iter().filter(|v| v.severity >= fail_on).count();
    let lint_warnings = all_lint.len() - lint_errors;
    let failed = migrations.iter().filter(|m| !m.ok).count();
    Ok(TestReport {
        ok: failed == 0 && idempotency_error.is_none() && lint_errors == 0,
        started_at,
        migrations_dir: set.dir.clone(),
        scratch: scratch_name,
        duration_ms: started.elapsed().as_millis() as u64,
        apply_ms: migrations.iter().map(|m| m.apply_ms).sum(),
        passed: migrations.len() - failed,
        failed,
        idempotent: idempotency_error.is_none(),
        idempotency_error,
        lint_errors,
        lint_warnings,
        migrations,
    })
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

type SuiteResult = (Vec<MigrationResult>, Option<String>);

async fn suite(
    settings: &Settings,
    set: &MigrationSet,
    opts: &TestOptions,
    db: &Scratch,
    fixtures: &HashMap<String, (PathBuf, String)>,
    lint_by_file: &mut HashMap<PathBuf, Vec<Violation>>,
) -> Result<SuiteResult, TestError> {
    let client = db.target().connect().await?;
    let mut s = settings.clone();
    s.database_url = None;
    let intro = IntrospectOptions::from_settings(&s);
    let migrator = Migrator::new(&s, set);
    let mut results = Vec::new();
    let mut broken = false;
    for m in &set.migrations {
        let mut lint = lint_by_file.remove(&m.path).unwrap_or_default();
        if let Some(d) = &m.down {
            lint.extend(lint_by_file.remove(&d.path).unwrap_or_default());
        }
        let mut r = MigrationResult {
            id: m.id.clone(),
            ok: true,
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
            lint,
        };
        if broken {
            r.ok = false;
            r.error = Some("not run: an earlier migration failed".into());
            results.push(r);
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
                broken = true;
                results.push(r);
                continue;
            }
        }
        let files_before = relfilenodes(&client).await?;
        let probe = probe_locks(&client, m, &files_before).await;
        // The round trip compares the relations the migration touched (every DDL locks what it
        // changes, creates or drops) with their columns, constraints, indexes and the rest, and
        // every non-relation object: snapshots whose cost does not grow with the folder. When
        // the probe cannot run (statements outside a transaction), the whole schema.
        let scoped = match (&probe, opts.no_round_trip) {
            (_, true) => None,
            (Some(p), false) => Some(IntrospectOptions {
                only_tables: Some(touched(&client, p).await?),
                ..intro.clone()
            }),
            (None, false) => Some(intro.clone()),
        };
        let before = match &scoped {
            Some(i) => Some(schema::introspect(&client, i).await?),
            None => None,
        };
        r.locks = probe.map(|p| p.locks);
        let opts_one = MigrateOptions {
            target: Some(m.id.clone()),
            ..MigrateOptions::default()
        };
        let t = Instant::now();
        let applied = migrator.migrate(&client, &opts_one, &mut Silent).await;
        r.apply_ms = t.elapsed().as_millis() as u64;
        if let Err(e) = applied {
            r.ok = false;
            r.error = Some(e.to_string());
            broken = true;
            results.push(r);
            continue;
        }
        let files_after = relfilenodes(&client).await?;
        r.rewrites = files_before
            .iter()
            .filter(|(name, node)| files_after.get(*name).is_some_and(|n| n != *node))
            .map(|(name, _)| name.clone())
            .collect();
        r.rewrites.sort();
        if let (Some(prev), Some(scope)) = (&before, &scoped) {
            let after = schema::introspect(&client, scope).await?;
            round_trip(&client, &s, set, &migrator, m, prev, &after, scope, &mut r).await?;
            // A failed round trip is reported; the suite goes on as long as the schema is back
            // to the state after this migration.
            broken = r.reapply == "failed";
        }
        results.push(r);
    }
    // Idempotency: nothing left to apply, no hash differs.
    let mut idempotency = None;
    if !broken {
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
    }
    Ok((results, idempotency))
}

#[allow(clippy::too_many_arguments)]
async fn round_trip(
    client: &Client,
    settings: &Settings,
    set: &MigrationSet,
    migrator: &Migrator<'_>,
    m: &crate::source::Migration,
    before: &Snapshot,
    after: &Snapshot,
    intro: &IntrospectOptions,
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
        },
    )
    .await;
    r.rollback_ms = t.elapsed().as_millis() as u64;
    match rolled {
        Ok(_) => {}
        Err(RollbackError::Irreversible { .. }) => {
            r.rollback = "skipped";
            r.note = Some("marked -- pgshift:irreversible".into());
            return Ok(());
        }
        Err(
            e @ (RollbackError::NoRollback { .. } | RollbackError::NoRollbackMissingFile { .. }),
        ) => {
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
    let now = schema::introspect(client, intro).await?;
    let d = schema::diff(&now, before);
    if d.is_empty() {
        r.rollback = "ok";
    } else {
        r.ok = false;
        r.rollback = "failed";
        r.error = Some(format!(
            "after its rollback the schema differs from before it: {}",
            d.changes
                .iter()
                .map(|c| c.object.as_str())
                .collect::<Vec<_>>()
                .join(", ")
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
            r.note = Some(format!("{e}: later migrations were not run"));
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
    let again = schema::introspect(client, intro).await?;
    let d = schema::diff(&again, after);
    if d.is_empty() {
        r.reapply = "ok";
    } else {
        r.ok = false;
        r.reapply = "failed";
        r.error.get_or_insert_with(|| {
            format!(
                "re-applied, the schema differs from the first time: {}",
                d.changes
                    .iter()
                    .map(|c| c.object.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        });
        r.diff.get_or_insert_with(|| d.to_sql());
    }
    Ok(())
}

/// `schema.table` → relfilenode of every ordinary table and materialized view.
async fn relfilenodes(client: &Client) -> Result<HashMap<String, u32>, DbError> {
    let rows = client
        .query(
            "SELECT n.nspname || '.' || c.relname, c.relfilenode::oid
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                AND n.nspname NOT LIKE 'pg\\_toast%'",
            &[],
        )
        .await
        .map_err(|e| DbError::query("reading relfilenodes", e))?;
    Ok(rows
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, u32>(1)))
        .collect())
}

/// What the lock probe saw.
struct Probe {
    /// Tables, partitioned tables, materialized views and views locked, with the strongest mode.
    locks: Vec<LockTaken>,
    /// (schema, name) of every relation of those kinds locked, as named inside the migration.
    named: Vec<(String, String)>,
    /// Oids of every relation locked, also those the migration dropped.
    oids: Vec<u32>,
}

/// The relations a migration touched: the names they have inside it and the names they have
/// now (before it runs), so that renamed and dropped ones are compared too.
async fn touched(client: &Client, p: &Probe) -> Result<Vec<(String, String)>, DbError> {
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.oid = ANY($1::oid[]) AND c.relkind IN ('r', 'p', 'm', 'v')",
            &[&p.oids],
        )
        .await
        .map_err(|e| DbError::query("naming the relations a migration locks", e))?;
    let mut out: Vec<(String, String)> = p.named.clone();
    out.extend(rows.iter().map(|r| (r.get(0), r.get(1))));
    out.sort();
    out.dedup();
    Ok(out)
}

/// Runs `m` in a transaction that is rolled back, reading the relation locks it held just before
/// the rollback. `None` for migrations that run outside a transaction, or that fail here (the
/// real apply reports that).
async fn probe_locks(
    client: &Client,
    m: &crate::source::Migration,
    existing: &HashMap<String, u32>,
) -> Option<Probe> {
    let stmts = crate::migrate::parse(m).ok()?;
    if m.directives.no_transaction || stmts.iter().any(|s| !s.transactional) {
        return None;
    }
    let body: String = stmts.iter().map(|s| format!("{};\n", s.text)).collect();
    let sql = format!(
        "BEGIN;\n{body}SELECT coalesce(n.nspname || '.' || c.relname, l.relation::text), l.mode,
                n.nspname, c.relname, l.relation::oid::text,
                coalesce(c.relkind IN ('r', 'p', 'm', 'v'), false)
           FROM pg_locks l LEFT JOIN pg_class c ON c.oid = l.relation
           LEFT JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' AND l.granted
            AND coalesce(n.nspname, '') NOT IN ('pg_catalog', 'information_schema')
            AND coalesce(n.nspname, '') NOT LIKE 'pg\\_toast%'
            AND (c.relkind IS NULL OR c.relkind IN ('r', 'p', 'm', 'v'))
          ORDER BY 1, 2;"
    );
    let msgs = client.simple_query(&sql).await;
    let _ = client.batch_execute("ROLLBACK").await;
    let mut strongest: std::collections::BTreeMap<String, String> = Default::default();
    let mut named = Vec::new();
    let mut oids = Vec::new();
    for msg in msgs.ok()? {
        if let tokio_postgres::SimpleQueryMessage::Row(row) = msg {
            if let Some(oid) = row.get(4).and_then(|o| o.parse::<u32>().ok()) {
                oids.push(oid);
            }
            if let (Some(schema), Some(name)) = (row.get(2), row.get(3)) {
                named.push((schema.to_string(), name.to_string()));
            }
            // Dropped inside the migration: no name or kind any more (named above by oid).
            if row.get(5) != Some("t") {
                continue;
            }
            if let (Some(rel), Some(mode)) = (row.get(0), row.get(1)) {
                let e = strongest
                    .entry(rel.to_string())
                    .or_insert_with(|| mode.to_string());
                if strength(mode) > strength(e) {
                    *e = mode.to_string();
                }
            }
        }
    }
    Some(Probe {
        locks: strongest
            .into_iter()
            .map(|(relation, mode)| LockTaken {
                existing: existing.contains_key(&relation),
                relation,
                mode,
            })
            .collect(),
        named,
        oids,
    })
}

/// The report as JUnit XML: one test case per migration (and one for idempotency).
pub fn junit(r: &TestReport) -> String {
    fn esc(s: &str) -> String {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    }
    let failures = r.failed + usize::from(!r.idempotent);
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!(
        "<testsuites name=\"pgshift test\" tests=\"{}\" failures=\"{failures}\" time=\"{:.3}\">\n",
        r.migrations.len() + 1,
        r.duration_ms as f64 / 1000.0
    ));
    out.push_str(&format!(
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" time=\"{:.3}\">\n",
        esc(&r.migrations_dir.display().to_string()),
        r.migrations.len() + 1,
        r.duration_ms as f64 / 1000.0
    ));
    for m in &r.migrations {
        out.push_str(&format!(
            "    <testcase classname=\"migrations\" name=\"{}\" time=\"{:.3}\">",
            esc(&m.id),
            (m.apply_ms + m.rollback_ms) as f64 / 1000.0
        ));
        if m.ok {
            out.push_str("</testcase>\n");
        } else {
            out.push_str(&format!(
                "\n      <failure message=\"{}\">{}</failure>\n    </testcase>\n",
                esc(m.error.as_deref().unwrap_or("failed")),
                esc(m.diff.as_deref().unwrap_or(""))
            ));
        }
    }
    out.push_str("    <testcase classname=\"migrations\" name=\"idempotency\">");
    match &r.idempotency_error {
        None => out.push_str("</testcase>\n"),
        Some(e) => out.push_str(&format!(
            "\n      <failure message=\"{}\"/>\n    </testcase>\n",
            esc(e)
        )),
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}
