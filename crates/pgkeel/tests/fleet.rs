//! `fleet`: migrate many databases and tenant schemas against a real PostgreSQL. Every test
//! creates its own databases (kept when it fails) and checks the databases themselves, not only
//! the report.

mod support;

use std::collections::HashMap;
use std::path::Path;

use pgkeel::config::Settings;
use pgkeel::fleet::{self, FleetOptions, FleetReport, FleetTarget, TargetStatus, TargetsFile};
use pgkeel::migrate::MigrateOptions;
use pgkeel::source::{self, MigrationSet};
use support::{admin_url, native, settings_for, TestDb};

/// Three small migrations; `runs` gets one row per migration that inserts, so a migration
/// applied twice shows up as a duplicate row.
fn migrations() -> tempfile::TempDir {
    native(&[
        (
            "0001_items.sql",
            "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);\n",
        ),
        (
            "0002_runs.sql",
            "CREATE TABLE runs (migration int NOT NULL);\nINSERT INTO runs VALUES (2);\n",
        ),
        (
            "0003_note.sql",
            "ALTER TABLE items ADD COLUMN note text;\nINSERT INTO runs VALUES (3);\n",
        ),
    ])
}

/// `n` fresh databases, created a few at a time.
async fn databases(test: &str, n: usize) -> Vec<TestDb> {
    let mut dbs = Vec::with_capacity(n);
    let names: Vec<String> = (0..n).map(|i| format!("{test}{i}")).collect();
    for chunk in names.chunks(8) {
        let batch =
            futures_util::future::join_all(chunk.iter().map(|name| TestDb::new(name))).await;
        dbs.extend(batch);
    }
    dbs
}

fn targets_toml(dbs: &[&str]) -> String {
    dbs.iter()
        .map(|url| format!("[[database]]\nurl = \"{url}\"\n"))
        .collect()
}

async fn resolve(text: &str) -> Vec<FleetTarget> {
    let file = TargetsFile::parse(text, Path::new("targets.toml")).unwrap();
    fleet::resolve(&file, &base(), &HashMap::new())
        .await
        .unwrap()
}

fn base() -> Settings {
    settings_for(&admin_url())
}

async fn migrate_all(
    targets: Vec<FleetTarget>,
    set: &MigrationSet,
    opts: &FleetOptions,
) -> FleetReport {
    let mopts = MigrateOptions::default();
    fleet::run(targets, opts, |t| {
        fleet::migrate_target(t, set, &mopts, None)
    })
    .await
}

fn statuses(r: &FleetReport) -> Vec<TargetStatus> {
    r.targets.iter().map(|t| t.status).collect()
}

/// `(ledger ids in effect, rows in runs)` of a database's public schema; `None` when it has no
/// ledger.
async fn migrated(db: &TestDb) -> Option<(Vec<String>, Vec<i32>)> {
    let c = db.client().await;
    let has_ledger: bool = c
        .query_one(
            "SELECT to_regclass('public.__drizzle_migrations') IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    if !has_ledger {
        return None;
    }
    let ids = c
        .query(
            "SELECT id FROM __drizzle_migrations WHERE status = 'applied' ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let runs = c
        .query("SELECT migration FROM runs ORDER BY 1", &[])
        .await
        .map(|rows| rows.iter().map(|r| r.get(0)).collect())
        .unwrap_or_default();
    Some((ids, runs))
}

fn all_three() -> Option<(Vec<String>, Vec<i32>)> {
    Some((
        vec!["0001_items".into(), "0002_runs".into(), "0003_note".into()],
        vec![2, 3],
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_databases_with_parallel_8_get_every_migration_exactly_once() {
    let dir = migrations();
    let set = source::load(dir.path()).unwrap();
    let dbs = databases("fleet50_", 50).await;
    let urls: Vec<&str> = dbs.iter().map(|d| d.url.as_str()).collect();
    let targets = resolve(&targets_toml(&urls)).await;
    assert_eq!(targets.len(), 50);
    let opts = FleetOptions {
        parallel: 8,
        ..FleetOptions::default()
    };
    let report = migrate_all(targets.clone(), &set, &opts).await;
    assert_eq!(report.counts.ok, 50, "{report:#?}");
    assert_eq!(report.parallel, 8);
    for (db, line) in dbs.iter().zip(&report.targets) {
        assert_eq!(line.name, db.name());
        assert_eq!(
            line.detail["applied"].as_array().unwrap().len(),
            3,
            "{line:?}"
        );
        assert_eq!(migrated(db).await, all_three(), "{}", db.name());
    }

    // Again: nothing to do anywhere, nothing applied twice.
    let again = migrate_all(targets, &set, &opts).await;
    assert_eq!(again.counts.ok, 50);
    assert!(again
        .targets
        .iter()
        .all(|l| l.detail["applied"].as_array().unwrap().is_empty()));
    for db in &dbs {
        assert_eq!(migrated(db).await, all_three(), "{}", db.name());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_tenant_schemas_each_get_their_own_ledger_and_tables() {
    let dir = migrations();
    let set = source::load(dir.path()).unwrap();
    let db = TestDb::new("fleet_tenants").await;
    let c = db.client().await;
    c.batch_execute(
        "DO $$ BEGIN
           FOR i IN 1..200 LOOP EXECUTE format('CREATE SCHEMA %I', 'tenant_' || lpad(i::text, 3, '0')); END LOOP;
         END $$;
         CREATE SCHEMA \"tenantless\";",
    )
    .await
    .unwrap();
    let text = format!(
        "[[tenants]]\nurl = \"{}\"\nquery = \"SELECT nspname FROM pg_namespace WHERE nspname LIKE 'tenant\\\\_%' ORDER BY 1\"\n",
        db.url
    );
    let targets = resolve(&text).await;
    assert_eq!(targets.len(), 200);
    assert_eq!(targets[0].name, format!("{}/tenant_001", db.name()));
    assert_eq!(targets[0].schema.as_deref(), Some("tenant_001"));
    assert_eq!(targets[199].settings.ledger_schema, "tenant_200");

    let opts = FleetOptions {
        parallel: 8,
        ..FleetOptions::default()
    };
    let report = migrate_all(targets, &set, &opts).await;
    assert_eq!(
        report.counts.ok,
        200,
        "{:#?}",
        report.targets.iter().find(|t| t.status != TargetStatus::Ok)
    );

    // Every tenant schema has its own ledger with the three migrations, and the tables.
    let rows = c
        .query(
            "SELECT n.nspname::text,
                    (SELECT count(*) FROM pg_tables t WHERE t.schemaname = n.nspname AND t.tablename IN ('items', 'runs', '__drizzle_migrations'))
               FROM pg_namespace n WHERE n.nspname LIKE 'tenant\\_%' ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 200);
    for r in &rows {
        let (schema, tables): (String, i64) = (r.get(0), r.get(1));
        assert_eq!(tables, 3, "{schema} lacks its tables or its ledger");
    }
    for schema in ["tenant_001", "tenant_117", "tenant_200"] {
        let ledger: i64 = c
            .query_one(
                &format!(
                    "SELECT count(*) FROM {schema}.__drizzle_migrations WHERE status = 'applied'"
                ),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(ledger, 3, "{schema}");
        let runs: Vec<i32> = c
            .query(
                &format!("SELECT migration FROM {schema}.runs ORDER BY 1"),
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(runs, [2, 3], "{schema}");
        let note: bool = c
            .query_one(
                "SELECT EXISTS (SELECT FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'items' AND column_name = 'note')",
                &[&schema],
            )
            .await
            .unwrap()
            .get(0);
        assert!(note, "{schema}.items lacks the column of 0003");
    }
    // Nothing landed in public or in the schema the query did not list.
    let elsewhere: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname IN ('public', 'tenantless')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(elsewhere, 0);
}

/// Six databases; the third already has `items`, so its 0001 fails.
async fn fleet_with_a_broken_third(test: &str) -> (Vec<TestDb>, Vec<FleetTarget>) {
    let dbs = databases(test, 6).await;
    dbs[2]
        .client()
        .await
        .batch_execute("CREATE TABLE items (id int)")
        .await
        .unwrap();
    let urls: Vec<&str> = dbs.iter().map(|d| d.url.as_str()).collect();
    let targets = resolve(&targets_toml(&urls)).await;
    (dbs, targets)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_database_stops_the_run_unless_continue_on_error() {
    use TargetStatus::*;
    let dir = migrations();
    let set = source::load(dir.path()).unwrap();
    let (dbs, targets) = fleet_with_a_broken_third("fleet_stop").await;

    let opts = FleetOptions {
        parallel: 1,
        ..FleetOptions::default()
    };
    let report = migrate_all(targets.clone(), &set, &opts).await;
    assert_eq!(statuses(&report), [Ok, Ok, Failed, NotRun, NotRun, NotRun]);
    let broken = &report.targets[2];
    assert!(!broken.connection_error);
    assert!(
        broken.error.as_deref().unwrap().contains("0001_items"),
        "{broken:?}"
    );
    assert_eq!(broken.detail["postgres"]["code"], "42P07", "{broken:?}");
    assert!(report.stopped.as_deref().unwrap().contains(&broken.name));
    assert_eq!(migrated(&dbs[1]).await, all_three());
    assert_eq!(
        migrated(&dbs[3]).await,
        None,
        "a not-run target was touched"
    );

    let opts = FleetOptions {
        parallel: 3,
        continue_on_error: true,
        ..FleetOptions::default()
    };
    let report = migrate_all(targets, &set, &opts).await;
    assert_eq!(statuses(&report), [Ok, Ok, Failed, Ok, Ok, Ok]);
    assert_eq!(report.stopped, None);
    for (i, db) in dbs.iter().enumerate().filter(|(i, _)| *i != 2) {
        assert_eq!(migrated(db).await, all_three(), "database {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_database_is_a_connection_failure_and_the_rest_migrate() {
    let dir = migrations();
    let set = source::load(dir.path()).unwrap();
    let dbs = databases("fleet_unreach", 2).await;
    let text = format!(
        "{}[[database]]\nname = \"nowhere\"\nurl = \"postgresql://postgres:hunter2@127.0.0.1:1/nowhere\"\n",
        targets_toml(&[&dbs[0].url, &dbs[1].url])
    );
    let targets = resolve(&text).await;
    let opts = FleetOptions {
        parallel: 2,
        continue_on_error: true,
        ..FleetOptions::default()
    };
    let report = migrate_all(targets, &set, &opts).await;
    use TargetStatus::*;
    assert_eq!(statuses(&report), [Ok, Ok, Failed]);
    let line = &report.targets[2];
    assert!(line.connection_error, "{line:?}");
    assert_eq!(
        line.database,
        "postgresql://postgres:***@127.0.0.1:1/nowhere"
    );
    assert!(report.only_connection_failures());
    let json = serde_json::to_string(&report).unwrap();
    assert!(!json.contains("hunter2"), "{json}");
    for db in &dbs {
        assert_eq!(migrated(db).await, all_three());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_canary_runs_nothing_else() {
    let dir = migrations();
    let set = source::load(dir.path()).unwrap();
    let dbs = databases("fleet_canary", 4).await;
    dbs[0]
        .client()
        .await
        .batch_execute("CREATE TABLE items (id int)")
        .await
        .unwrap();
    let urls: Vec<&str> = dbs.iter().map(|d| d.url.as_str()).collect();
    let targets = resolve(&targets_toml(&urls)).await;
    let opts = FleetOptions {
        parallel: 4,
        canary: 1,
        continue_on_error: true,
        ..FleetOptions::default()
    };
    let report = migrate_all(targets, &set, &opts).await;
    use TargetStatus::*;
    assert_eq!(statuses(&report), [Failed, NotRun, NotRun, NotRun]);
    assert!(report.stopped.as_deref().unwrap().contains("canary"));
    for db in &dbs[1..] {
        assert_eq!(
            migrated(db).await,
            None,
            "{} was migrated after the canary failed",
            db.name()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_skips_targets_done_in_the_previous_report() {
    use TargetStatus::*;
    let dir = migrations();
    let (dbs, targets) = fleet_with_a_broken_third("fleet_resume").await;
    let set = source::load(dir.path()).unwrap();
    let opts = FleetOptions {
        parallel: 2,
        ..FleetOptions::default()
    };
    let first = migrate_all(targets.clone(), &set, &opts).await;
    assert_eq!(first.targets[2].status, Failed);
    let reports = tempfile::tempdir().unwrap();
    let path =
        pgkeel::report::write_report_named(reports.path(), "fleet-migrate-x", &first).unwrap();

    // Fix the broken database, add a migration, resume: the targets done before are skipped
    // (so they do not get the new migration), the others get all four.
    dbs[2]
        .client()
        .await
        .batch_execute("DROP TABLE items")
        .await
        .unwrap();
    std::fs::write(
        dir.path().join("0004_more.sql"),
        "INSERT INTO runs VALUES (4);\n",
    )
    .unwrap();
    let set = source::load(dir.path()).unwrap();
    let done = fleet::done_in_report(&path).unwrap();
    assert_eq!(done, first.done());
    let resumed = migrate_all(
        targets,
        &set,
        &FleetOptions {
            resume: Some(done.clone()),
            ..opts
        },
    )
    .await;
    assert!(resumed.all_done(), "{resumed:#?}");
    for (i, (line, db)) in resumed.targets.iter().zip(&dbs).enumerate() {
        let runs = migrated(db).await.unwrap().1;
        if done.contains(&line.name) {
            assert_eq!(line.status, Skipped, "{i}");
            assert_eq!(runs, [2, 3], "skipped database {i} was migrated");
        } else {
            assert_eq!(line.status, Ok, "{i}");
            assert_eq!(runs, [2, 3, 4], "database {i}");
        }
    }
    assert_eq!(resumed.counts.skipped, done.len());
    assert!(resumed.counts.ok >= 1);
}
