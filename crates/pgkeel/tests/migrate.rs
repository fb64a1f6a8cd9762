//! `migrate`, `status`, `baseline` and `repair` against a real PostgreSQL, one fresh database per
//! test.

mod support;

use std::path::{Path, PathBuf};

use pgkeel::migrate::{MigrateError, MigrateOptions, Migrator, Silent, State};
use pgkeel::source;
use support::{copy_dir, ledger_statuses, native, TestDb};

fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/cfi-handbook/drizzle")
}

/// Copies the example into a temp dir so tests can edit files.
fn example_copy() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&example_dir(), tmp.path());
    tmp
}

async fn tables(client: &tokio_postgres::Client) -> Vec<String> {
    client
        .query(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn example_applies_then_second_run_is_a_no_op() {
    let db = TestDb::new("example").await;
    let settings = db.settings();
    let set = source::load(&example_dir()).unwrap();
    let client = db.client().await;
    let m = Migrator::new(&settings, &set);

    let first = m
        .migrate(&client, &MigrateOptions::default(), &mut Silent)
        .await
        .unwrap();
    assert_eq!(first.applied.len(), set.migrations.len());
    assert!(set.migrations.len() >= 5);
    let t = tables(&client).await;
    for want in [
        "users",
        "analysis_sessions",
        "processed_files",
        "question_analysis",
        "user_progress",
        "page_feedback",
    ] {
        assert!(t.contains(&want.to_string()), "{want} missing from {t:?}");
    }
    let rows = ledger_statuses(&client).await;
    assert_eq!(rows.len(), set.migrations.len());
    assert!(rows.iter().all(|(_, s)| s == "applied"), "{rows:?}");
    assert!(rows.iter().any(|(id, _)| id == "0003_slim_warhawk"));

    // The ledger records what the spec asks for: hash, content and timing.
    let row = client
        .query_one(
            "SELECT hash, sql_content, execution_ms, normalized_hash, rollback_sql IS NOT NULL FROM __drizzle_migrations WHERE id = '0003_slim_warhawk'",
            &[],
        )
        .await
        .unwrap();
    let m3 = set.get("0003_slim_warhawk").unwrap();
    assert_eq!(row.get::<_, String>(0), m3.hash);
    assert_eq!(row.get::<_, String>(1), m3.sql);
    assert!(row.get::<_, Option<i64>>(2).is_some());
    assert_eq!(
        row.get::<_, Option<String>>(3).as_deref(),
        Some(m3.normalized_hash().as_str())
    );
    assert!(
        row.get::<_, bool>(4),
        "the down file is stored as rollback_sql"
    );

    let second = m
        .migrate(&client, &MigrateOptions::default(), &mut Silent)
        .await
        .unwrap();
    assert!(second.applied.is_empty());
    assert_eq!(second.already_applied, set.migrations.len());
    let audit: i64 = client
        .query_one("SELECT count(*) FROM __pgkeel_audit WHERE operation = 'migrate' AND outcome = 'applied'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        audit as usize,
        set.migrations.len(),
        "one audit row per applied migration, none for the no-op"
    );

    // With nothing to do, migrate reads the ledger and stops: it neither waits for the deploy
    // lock (another deploy holding it cannot make a no-op slow or fail) nor takes it.
    let holder = db.client().await;
    let lock = pgkeel::db::DeployLock::for_ledger("public", "__drizzle_migrations");
    holder
        .execute("SELECT pg_advisory_lock($1)", &[&lock.key()])
        .await
        .unwrap();
    let mut impatient = settings.clone();
    impatient.deploy_lock_timeout = std::time::Duration::from_millis(50);
    let third = Migrator::new(&impatient, &set)
        .migrate(&client, &MigrateOptions::default(), &mut Silent)
        .await
        .expect("a no-op migrate must not need the deploy lock");
    assert!(third.applied.is_empty());
    assert_eq!(third.counts.applied, set.migrations.len());
}

/// Session advisory locks are re-entrant: a server backend that already holds the deploy lock
/// would grant it again. Behind a transaction-pooling proxy that backend can be another
/// client's, so taking the lock there must be refused, not granted twice.
#[tokio::test]
async fn a_backend_that_already_holds_the_deploy_lock_refuses_it_instead_of_granting_it_again() {
    use pgkeel::db::{DbError, DeployLock};
    use std::time::Duration;
    let db = TestDb::new("lock_reentry").await;
    let client = db.client().await;
    let lock = DeployLock::for_ledger("public", "__drizzle_migrations");
    let session = lock
        .take(&client, Duration::from_secs(1), |_, _| {})
        .await
        .unwrap();
    let again = lock
        .acquire(&client, Duration::from_secs(1), |_, _| {})
        .await;
    assert!(
        matches!(again, Err(DbError::SharedBackend { pid }) if pid == session.pid),
        "{again:?}"
    );
    // Held once, not twice: one release frees it for the next deploy.
    lock.release(&client, session).await.unwrap();
    let other = db.client().await;
    lock.take(&other, Duration::from_secs(1), |_, _| {})
        .await
        .expect("free after one release");
}

/// The test suite keeps the ledger's rows under its lock (`RowCache`) instead of reading them
/// before each step: after applies, a rollback and a re-apply through the cache, what it plans
/// must be what a fresh read of the ledger plans.
#[tokio::test]
async fn a_row_cache_under_the_deploy_lock_sees_every_write_made_through_it() {
    use pgkeel::db::DeployLock;
    use pgkeel::ledger::{Ledger, RowCache};
    use pgkeel::rollback::{rollback, RollbackOptions};
    let db = TestDb::new("row_cache").await;
    let settings = db.settings();
    let dir = native(&[
        ("0001_a.sql", "CREATE TABLE a (id bigint PRIMARY KEY);"),
        ("0002_b.sql", "CREATE TABLE b (id bigint PRIMARY KEY);"),
    ]);
    let set = source::load(dir.path()).unwrap();
    let client = db.client().await;
    let ledger = Ledger::from_settings(&settings);
    let session = DeployLock::for_ledger(&ledger.schema, &ledger.table)
        .take(&client, std::time::Duration::from_secs(5), |_, _| {})
        .await
        .unwrap();
    ledger.ensure(&client).await.unwrap();
    let cache = std::sync::Arc::new(RowCache::default());
    let cached = Migrator::new(&settings, &set)
        .in_locked_session(session)
        .with_row_cache(cache.clone());
    let fresh = Migrator::new(&settings, &set);
    let plans = || async {
        let a = serde_json::to_value(cached.plan(&client).await.unwrap()).unwrap();
        let b = serde_json::to_value(fresh.plan(&client).await.unwrap()).unwrap();
        assert_eq!(
            a, b,
            "the cached plan differs from a fresh read of the ledger"
        );
        a["counts"].clone()
    };
    // Read once while empty, then written through the cache.
    assert_eq!(plans().await["pending"], 2);
    let one = MigrateOptions {
        target: Some("0001_a".into()),
        ..MigrateOptions::default()
    };
    cached.migrate(&client, &one, &mut Silent).await.unwrap();
    assert_eq!(plans().await["applied"], 1);
    let opts = RollbackOptions {
        locked: Some(session),
        row_cache: Some(cache.clone()),
        ..RollbackOptions::default()
    };
    rollback(&client, &settings, &set, "0001_a", &opts)
        .await
        .unwrap();
    assert_eq!(plans().await["rolled_back"], 1);
    cached
        .migrate(&client, &MigrateOptions::default(), &mut Silent)
        .await
        .unwrap();
    assert_eq!(plans().await["applied"], 2);
    assert_eq!(
        ledger_statuses(&client).await,
        vec![
            ("0001_a".to_string(), "applied".to_string()),
            ("0002_b".to_string(), "applied".to_string())
        ]
    );
}

#[tokio::test]
async fn edited_applied_file_is_refused_and_cosmetic_edit_can_be_repaired() {
    let db = TestDb::new("edited").await;
    let settings = db.settings();
    let dir = example_copy();
    let client = db.client().await;
    {
        let set = source::load(dir.path()).unwrap();
        Migrator::new(&settings, &set)
            .migrate(&client, &MigrateOptions::default(), &mut Silent)
            .await
            .unwrap();
    }
    let file = source::load(dir.path()).unwrap().migrations[1].path.clone();
    let original = std::fs::read_to_string(&file).unwrap();

    // A real edit: refused, named, not cosmetic.
    std::fs::write(&file, format!("{original}\nSELECT 1;\n")).unwrap();
    let set = source::load(dir.path()).unwrap();
    let err = Migrator::new(&settings, &set)
        .migrate(&client, &MigrateOptions::default(), &mut Silent)
        .await
        .unwrap_err();
    match &err {
        MigrateError::Modified {
            id, cosmetic, path, ..
        } => {
            assert_eq!(id, &set.migrations[1].id);
            assert!(!cosmetic);
            assert_eq!(path, &set.migrations[1].path);
        }
        other => panic!("expected Modified, got {other:?}"),
    }
    assert!(err.is_validation());
    let repair = Migrator::new(&settings, &set).repair(&client, false).await;
    assert!(
        matches!(
            repair,
            Err(MigrateError::Modified {
                cosmetic: false,
                ..
            })
        ),
        "{repair:?}"
    );

    // A CRLF-only edit: reported cosmetic; migrate goes on with a warning naming repair
    // (it refused before), repair records it, and the warning is gone.
    std::fs::write(&file, original.replace('\n', "\r\n")).unwrap();
    let set = source::load(dir.path()).unwrap();
    let plan = Migrator::new(&settings, &set).plan(&client).await.unwrap();
    assert_eq!(plan.migrations[1].state, State::Modified { cosmetic: true });
    let report = Migrator::new(&settings, &set)
        .migrate(&client, &MigrateOptions::default(), &mut Silent)
        .await
        .unwrap();
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("pgkeel repair") && w.contains(&set.migrations[1].id)),
        "{:?}",
        report.warnings
    );
    let fixed = Migrator::new(&settings, &set)
        .repair(&client, false)
        .await
        .unwrap();
    assert_eq!(fixed, vec![set.migrations[1].id.clone()]);
    let again = Migrator::new(&settings, &set)
        .migrate(&client, &MigrateOptions::default(), &mut Silent)
        .await
        .unwrap();
    assert!(again.applied.is_empty());
    assert!(again.warnings.is_empty(), "{:?}", again.warnings);

    // An applied migration's file removed from a native folder: migrate goes on (it applies
    // what is pending) and says which file is gone (it said nothing before).
    let native = support::native(&[("0001_a.sql", "CREATE TABLE gone_a (id int);\n")]);
    let set = source::load(native.path()).unwrap();
    let db2 = TestDb::new("edited_gone").await;
    let c2 = db2.client().await;
    Migrator::new(&db2.settings(), &set)
        .migrate(&c2, &MigrateOptions::default(), &mut Silent)
        .await
        .unwrap();
    std::fs::remove_file(native.path().join("0001_a.sql")).unwrap();
    std::fs::write(
        native.path().join("0002_b.sql"),
        "CREATE TABLE gone_b (id int);\n",
    )
    .unwrap();
    let set = source::load(native.path()).unwrap();
    let r = Migrator::new(&db2.settings(), &set)
        .migrate(&c2, &MigrateOptions::default(), &mut Silent)
        .await
        .unwrap();
    assert_eq!(r.applied.len(), 1);
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("0001_a") && w.contains("not in the folder")),
        "{:?}",
        r.warnings
    );
}

#[tokio::test]
async fn dry_run_changes_nothing_and_shows_the_sql() {
    let db = TestDb::new("dryrun").await;
    let settings = db.settings();
    let set = source::load(&example_dir()).unwrap();
    let client = db.client().await;
    let opts = MigrateOptions {
        dry_run: true,
        ..Default::default()
    };
    let report = Migrator::new(&settings, &set)
        .migrate(&client, &opts, &mut Silent)
        .await
        .unwrap();
    assert!(report.dry_run);
    assert_eq!(report.applied.len(), set.migrations.len());
    assert!(report.applied[0]
        .sql
        .as_deref()
        .unwrap()
        .contains("CREATE TABLE"));
    assert!(tables(&client).await.is_empty(), "dry run created tables");
}

#[tokio::test]
async fn failing_migration_rolls_back_alone_and_a_fixed_file_then_applies() {
    let db = TestDb::new("failing").await;
    let settings = db.settings();
    let dir = native(&[
        (
            "0001_create_a.sql",
            "CREATE TABLE a (id int PRIMARY KEY);\n",
        ),
        (
            "0002_broken.sql",
            "CREATE TABLE b (id int);\nINSERT INTO b VALUES (1);\nINSERT INTO nope VALUES (1);\n",
        ),
        ("0003_create_c.sql", "CREATE TABLE c (id int);\n"),
    ]);
    let client = db.client().await;
    let set = source::load(dir.path()).unwrap();
    let err = Migrator::new(&settings, &set)
        .migrate(&client, &MigrateOptions::default(), &mut Silent)
        .await
        .unwrap_err();
    match &err {
        MigrateError::Failed {
            id,
            pg,
            location,
            applied_before,
            ..
        } => {
            assert_eq!(id, "0002_broken");
            assert_eq!(pg.code, "42P01");
            let loc = location
                .as_ref()
                .expect("error position mapped to the file");
            assert_eq!((loc.line, loc.column), (3, 13));
            assert_eq!(applied_before, &vec!["0001_create_a".to_string()]);
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    assert_eq!(
        tables(&client).await,
        vec!["__drizzle_migrations", "__pgkeel_audit", "a"]
    );
    assert_eq!(
        ledger_statuses(&client).await,
        vec![
            ("0001_create_a".into(), "applied".into()),
            ("0002_broken".into(), "failed".into())
        ]
    );

    std::fs::write(
        dir.path().join("0002_broken.sql"),
        "CREATE TABLE b (id int);\nINSERT INTO b VALUES (1);\n",
    )
    .unwrap();
    let set = source::load(dir.path()).unwrap();
    let report = Migrator::new(&settings, &set)
        .migrate(&client, &MigrateOptions::default(), &mut Silent)
        .await
        .unwrap();
    assert_eq!(
        report
            .applied
            .iter()
            .map(|a| a.id.as_str())
            .collect::<Vec<_>>(),
        ["0002_broken", "0003_create_c"]
    );
    assert!(ledger_statuses(&client)
        .await
        .iter()
        .all(|(_, s)| s == "applied"));
}

#[tokio::test]
async fn target_stops_after_the_named_migration_and_baseline_skips_running() {
    let db = TestDb::new("target").await;
    let settings = db.settings();
    let set = source::load(&example_dir()).unwrap();
    let client = db.client().await;
    let m = Migrator::new(&settings, &set);
    let opts = MigrateOptions {
        target: Some(set.migrations[1].id.clone()),
        ..Default::default()
    };
    let r = m.migrate(&client, &opts, &mut Silent).await.unwrap();
    assert_eq!(r.applied.len(), 2);

    let unknown = MigrateOptions {
        target: Some("9999_nope".into()),
        ..Default::default()
    };
    assert!(matches!(
        m.migrate(&client, &unknown, &mut Silent).await,
        Err(MigrateError::UnknownId { .. })
    ));

    // Baseline the next one without running it: its tables must not appear.
    let third = set.migrations[2].id.clone();
    let ids = m.baseline(&client, &third).await.unwrap();
    assert_eq!(ids, vec![third.clone()]);
    let plan = m.plan(&client).await.unwrap();
    assert_eq!(plan.migrations[2].state, State::Baselined);
    assert_eq!(plan.counts.applied, 3);
}

#[tokio::test]
async fn single_transaction_is_all_or_nothing() {
    let db = TestDb::new("single").await;
    let settings = db.settings();
    let dir = native(&[
        ("0001_a.sql", "CREATE TABLE a (id int);\n"),
        ("0002_b.sql", "CREATE TABLE b (id int);\nSELECT 1/0;\n"),
    ]);
    let client = db.client().await;
    let set = source::load(dir.path()).unwrap();
    let opts = MigrateOptions {
        single_transaction: true,
        ..Default::default()
    };
    let err = Migrator::new(&settings, &set)
        .migrate(&client, &opts, &mut Silent)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, MigrateError::Failed { id, .. } if id == "0002_b"),
        "{err:?}"
    );
    assert_eq!(
        tables(&client).await,
        vec!["__drizzle_migrations", "__pgkeel_audit"]
    );
}

#[tokio::test]
async fn non_transactional_statements_run_outside_a_transaction() {
    let db = TestDb::new("nontx").await;
    let settings = db.settings();
    let dir = native(&[(
        "0001_index.sql",
        "CREATE TABLE a (id int);\nCREATE INDEX CONCURRENTLY IF NOT EXISTS a_id ON a (id);\nCREATE TABLE b (id int);\n",
    )]);
    let client = db.client().await;
    let set = source::load(dir.path()).unwrap();
    let r = Migrator::new(&settings, &set)
        .migrate(&client, &MigrateOptions::default(), &mut Silent)
        .await
        .unwrap();
    assert_eq!(r.applied.len(), 1);
    let valid: bool = client
        .query_one(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'a_id'::regclass",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(valid);
    assert_eq!(
        ledger_statuses(&client).await,
        vec![("0001_index".into(), "applied".into())]
    );
}

#[tokio::test]
async fn ledger_created_by_the_spec_scripts_is_adopted() {
    let db = TestDb::new("adopt").await;
    let settings = db.settings();
    let client = db.client().await;
    // Exactly the spec's table, as the Node scripts created it.
    client
        .batch_execute(
            "CREATE TABLE __drizzle_migrations (id TEXT PRIMARY KEY, hash TEXT NOT NULL, sql_content TEXT NOT NULL,
               created_at TIMESTAMP DEFAULT NOW(), applied_at TIMESTAMP DEFAULT NOW(), rollback_sql TEXT,
               status VARCHAR(20) DEFAULT 'applied')",
        )
        .await
        .unwrap();
    let set = source::load(&example_dir()).unwrap();
    let first = &set.migrations[0];
    // The first migration ran under the old scripts.
    for chunk in first.chunks() {
        client.batch_execute(chunk.text).await.unwrap();
    }
    client
        .execute(
            "INSERT INTO __drizzle_migrations (id, hash, sql_content) VALUES ($1, $2, $3)",
            &[&first.id, &first.hash, &first.sql],
        )
        .await
        .unwrap();
    let r = Migrator::new(&settings, &set)
        .migrate(&client, &MigrateOptions::default(), &mut Silent)
        .await
        .unwrap();
    assert_eq!(
        r.applied.len(),
        set.migrations.len() - 1,
        "the first is not re-applied"
    );
    assert_eq!(r.already_applied, 1);
}

#[tokio::test]
async fn concurrent_migrators_apply_each_migration_once() {
    let db = TestDb::new("concurrent").await;
    let dir = native(&[
        (
            "0001_a.sql",
            "CREATE TABLE side_effects (n int);\nINSERT INTO side_effects VALUES (1);\n",
        ),
        (
            "0002_b.sql",
            "INSERT INTO side_effects VALUES (2);\nSELECT pg_sleep(0.2);\n",
        ),
        ("0003_c.sql", "INSERT INTO side_effects VALUES (3);\n"),
    ]);
    let mut handles = Vec::new();
    for _ in 0..6 {
        let settings = db.settings();
        let path = dir.path().to_path_buf();
        handles.push(tokio::spawn(async move {
            let set = source::load(&path).unwrap();
            let client = pgkeel::db::Target::from_settings(&settings)
                .unwrap()
                .connect()
                .await
                .unwrap();
            Migrator::new(&settings, &set)
                .migrate(&client, &MigrateOptions::default(), &mut Silent)
                .await
                .map(|r| r.applied.len())
        }));
    }
    let mut total = 0;
    for h in handles {
        total += h.await.unwrap().expect("every concurrent migrate succeeds");
    }
    assert_eq!(total, 3, "each migration applied by exactly one process");
    let client = db.client().await;
    let n: Vec<i32> = client
        .query("SELECT n FROM side_effects ORDER BY n", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(n, vec![1, 2, 3]);
}

#[tokio::test]
async fn non_transactional_migration_failing_at_statement_3_of_5_resumes_at_3() {
    let db = TestDb::new("resume").await;
    let settings = db.settings();
    let dir = native(&[(
        "0001_steps.sql",
        "-- pgkeel:no-transaction\nCREATE TABLE r1 (id int);\nINSERT INTO r1 VALUES (1);\nINSERT INTO r2 VALUES (1);\nCREATE TABLE r3 (id int);\nINSERT INTO r1 VALUES (5);\n",
    )]);
    let client = db.client().await;
    let set = source::load(dir.path()).unwrap();
    let err = Migrator::new(&settings, &set)
        .migrate(&client, &MigrateOptions::default(), &mut Silent)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            MigrateError::Failed {
                statement: Some(2),
                statements: 5,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("at statement 3 of 5"), "{err}");
    let row = client
        .query_one(
            "SELECT status, statements_done FROM __drizzle_migrations WHERE id = '0001_steps'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, Option<i32>>(1)),
        ("failed".into(), Some(2))
    );

    client
        .batch_execute("CREATE TABLE r2 (id int)")
        .await
        .unwrap();
    let r = Migrator::new(&settings, &set)
        .migrate(&client, &MigrateOptions::default(), &mut Silent)
        .await
        .unwrap();
    assert_eq!(r.applied[0].resumed_at, Some(2));
    let ids: Vec<i32> = client
        .query("SELECT id FROM r1 ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids, vec![1, 5], "statements 1-2 were not run again");
    assert_eq!(
        ledger_statuses(&client).await,
        vec![("0001_steps".into(), "applied".into())]
    );
}

#[tokio::test]
async fn failed_concurrent_index_build_is_dropped_and_rebuilt_on_resume() {
    let db = TestDb::new("cicresume").await;
    let settings = db.settings();
    let dir = native(&[(
        "0001_unique.sql",
        "CREATE TABLE u (v int);\nINSERT INTO u VALUES (1), (1);\nCREATE UNIQUE INDEX CONCURRENTLY u_v ON u (v);\n",
    )]);
    let client = db.client().await;
    let set = source::load(dir.path()).unwrap();
    let err = Migrator::new(&settings, &set)
        .migrate(&client, &MigrateOptions::default(), &mut Silent)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, MigrateError::Failed { pg, .. } if pg.code == "23505"),
        "{err:?}"
    );
    let valid: bool = client
        .query_one(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'u_v'::regclass",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!valid, "PostgreSQL leaves an invalid index behind");

    client
        .batch_execute("DELETE FROM u WHERE ctid = (SELECT max(ctid) FROM u)")
        .await
        .unwrap();
    let r = Migrator::new(&settings, &set)
        .migrate(&client, &MigrateOptions::default(), &mut Silent)
        .await
        .unwrap();
    assert_eq!(r.applied[0].resumed_at, Some(2));
    let valid: bool = client
        .query_one(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'u_v'::regclass",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(valid);
}

#[tokio::test]
async fn migration_without_down_file_stores_a_generated_rollback_that_works() {
    let db = TestDb::new("genrollback").await;
    let settings = db.settings();
    let dir = native(&[
        ("0001_base.sql", "CREATE TABLE accounts (id bigint PRIMARY KEY);\n"),
        (
            "0002_more.sql",
            "CREATE TABLE notes (id bigint PRIMARY KEY, account_id bigint);\nCREATE INDEX notes_account ON notes (account_id);\nALTER TABLE accounts ADD COLUMN email text;\nALTER TABLE notes ADD CONSTRAINT notes_account_fk FOREIGN KEY (account_id) REFERENCES accounts (id);\n",
        ),
        ("0003_lossy.sql", "ALTER TABLE accounts DROP COLUMN email;\n"),
    ]);
    let client = db.client().await;
    let set = source::load(dir.path()).unwrap();
    Migrator::new(&settings, &set)
        .migrate(&client, &MigrateOptions::default(), &mut Silent)
        .await
        .unwrap();
    let stored: Vec<(String, Option<String>)> = client
        .query(
            "SELECT id, rollback_sql FROM __drizzle_migrations ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(
        stored[1]
            .1
            .as_deref()
            .is_some_and(|s| s.starts_with("-- generated by pgkeel")),
        "{stored:?}"
    );
    assert_eq!(
        stored[2].1, None,
        "DROP COLUMN loses data: no automatic rollback"
    );

    // Roll 0002 back through the stored SQL (0003 first is refused: it has no rollback).
    let opts = pgkeel::rollback::RollbackOptions {
        cascade: false,
        ..Default::default()
    };
    std::fs::remove_file(dir.path().join("0003_lossy.sql")).unwrap();
    client.batch_execute("DELETE FROM __drizzle_migrations WHERE id = '0003_lossy'; ALTER TABLE accounts ADD COLUMN email text;").await.unwrap();
    let set = source::load(dir.path()).unwrap();
    pgkeel::rollback::rollback(&client, &settings, &set, "0002_more", &opts)
        .await
        .unwrap();
    assert_eq!(
        tables(&client).await,
        vec!["__drizzle_migrations", "__pgkeel_audit", "accounts"]
    );
    let cols: i64 = client
        .query_one(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'accounts'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(cols, 1, "the added column was dropped");
    assert_eq!(
        ledger_statuses(&client).await[1],
        ("0002_more".into(), "rolled_back".into())
    );
}

/// The guard is a temporary function installed once per session; a migration that drops the
/// session's temporary objects must not make the next one look like it ran on a pooled server
/// connection without the deploy lock.
#[tokio::test]
async fn a_migration_that_discards_temporary_objects_does_not_stop_the_next_one() {
    let db = TestDb::new("discard_temp").await;
    let settings = db.settings();
    let dir = native(&[
        ("0001_a.sql", "CREATE TABLE a (id int);\nDISCARD TEMP;\n"),
        ("0002_b.sql", "CREATE TABLE b (id int);\n"),
        ("0003_c.sql", "CREATE TABLE c (id int);\n"),
    ]);
    let client = db.client().await;
    let set = source::load(dir.path()).unwrap();
    let r = Migrator::new(&settings, &set)
        .migrate(&client, &MigrateOptions::default(), &mut Silent)
        .await
        .unwrap();
    assert_eq!(r.applied.len(), 3);
    assert_eq!(
        tables(&client).await,
        vec!["__drizzle_migrations", "__pgkeel_audit", "a", "b", "c"]
    );
}

/// Where the role may not create temporary objects (a hosted database that revoked TEMP from
/// PUBLIC), the guard stays a `DO` block and migrations apply as before.
#[tokio::test]
async fn a_role_without_the_temp_privilege_still_migrates_with_every_guard() {
    let db = TestDb::new("no_temp").await;
    let admin = db.client().await;
    let role = format!("{}_role", db.name());
    admin
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN;
             REVOKE TEMPORARY ON DATABASE {d} FROM PUBLIC;
             GRANT CREATE ON DATABASE {d} TO {role};
             GRANT CREATE, USAGE ON SCHEMA public TO {role};",
            d = db.name()
        ))
        .await
        .unwrap();
    let url = db.url.replacen("postgres@", &format!("{role}@"), 1);
    assert_ne!(url, db.url, "the test URL names its user");
    let settings = support::settings_for(&url);
    let dir = native(&[
        ("0001_a.sql", "CREATE TABLE a (id int);\n"),
        ("0002_b.sql", "CREATE TABLE b (id int);\n"),
    ]);
    let set = source::load(dir.path()).unwrap();
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let refused = client
        .batch_execute("CREATE TEMP TABLE t (x int)")
        .await
        .unwrap_err();
    assert_eq!(refused.code().map(|c| c.code()), Some("42501"));
    let r = Migrator::new(&settings, &set)
        .migrate(&client, &MigrateOptions::default(), &mut Silent)
        .await
        .unwrap();
    assert_eq!(r.applied.len(), 2);
    drop(client);
    admin
        .batch_execute(&format!("DROP OWNED BY {role};"))
        .await
        .unwrap();
    admin
        .batch_execute(&format!("DROP ROLE {role}"))
        .await
        .unwrap();
}

#[tokio::test]
async fn repair_records_the_cosmetic_edit_and_names_the_real_one() {
    let db = TestDb::new("repair_mixed").await;
    let settings = db.settings();
    let dir = example_copy();
    let client = db.client().await;
    let set = source::load(dir.path()).unwrap();
    Migrator::new(&settings, &set)
        .migrate(&client, &MigrateOptions::default(), &mut Silent)
        .await
        .unwrap();
    let (cosmetic, real) = (&set.migrations[1], &set.migrations[2]);
    let text = std::fs::read_to_string(&cosmetic.path).unwrap();
    std::fs::write(&cosmetic.path, text.replace('\n', "\r\n")).unwrap();
    let text = std::fs::read_to_string(&real.path).unwrap();
    std::fs::write(&real.path, format!("{text}\nSELECT 1;\n")).unwrap();
    let set = source::load(dir.path()).unwrap();
    let err = Migrator::new(&settings, &set)
        .repair(&client, false)
        .await
        .unwrap_err();
    match &err {
        MigrateError::PartlyRepaired { repaired, source } => {
            assert_eq!(repaired, &vec![cosmetic.id.clone()]);
            assert!(
                matches!(source.as_ref(), MigrateError::Modified { id, cosmetic: false, .. } if id == &real.id),
                "{source:?}"
            );
        }
        other => panic!("expected PartlyRepaired, got {other:?}"),
    }
    assert!(err.to_string().contains(&cosmetic.id) && err.to_string().contains(&real.id));
    // The cosmetic one is recorded: only the real edit is still modified.
    let plan = Migrator::new(&settings, &set).plan(&client).await.unwrap();
    let modified: Vec<&str> = plan.modified().map(|e| e.id.as_str()).collect();
    assert_eq!(modified, [real.id.as_str()]);
}

#[tokio::test]
async fn a_migration_applied_in_several_units_records_the_time_of_all_of_them() {
    let db = TestDb::new("units_time").await;
    let settings = db.settings();
    // Two units: the transactional start (which sleeps 300 ms), then the index built alone,
    // whose ledger record is sent after it on its own.
    let dir = native(&[(
        "0001_index.sql",
        "CREATE TABLE a (id int);\nSELECT pg_sleep(0.3);\nCREATE INDEX CONCURRENTLY a_id ON a (id);\n",
    )]);
    let client = db.client().await;
    let set = source::load(dir.path()).unwrap();
    let r = Migrator::new(&settings, &set)
        .migrate(&client, &MigrateOptions::default(), &mut Silent)
        .await
        .unwrap();
    let recorded: i64 = client
        .query_one(
            "SELECT execution_ms FROM __drizzle_migrations WHERE id = '0001_index'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        recorded >= 300,
        "recorded {recorded} ms for a 300 ms migration"
    );
    // One number per migration: the report (what deploy prints) is the ledger's (what status
    // prints).
    assert_eq!(r.applied[0].duration_ms, recorded as u64);
}
