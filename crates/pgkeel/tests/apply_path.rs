//! The apply path on SQL real projects write: comments at statement ends, files wrapped in
//! `BEGIN; … COMMIT;`, `SET TRANSACTION` first, errors without a position, and resuming a
//! partly committed migration after its file was fixed. One fresh database per test.

mod support;

use pgkeel::migrate::{MigrateError, MigrateOptions, Migrator, Silent};
use pgkeel::source;
use support::{native, TestDb};

async fn migrate(db: &TestDb, dir: &std::path::Path) -> Result<usize, MigrateError> {
    let settings = db.settings();
    let set = source::load(dir).unwrap();
    let client = db.client().await;
    Migrator::new(&settings, &set)
        .migrate(&client, &MigrateOptions::default(), &mut Silent)
        .await
        .map(|r| r.applied.len())
}

async fn exists(client: &tokio_postgres::Client, table: &str) -> bool {
    client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .await
        .unwrap()
        .get(0)
}

async fn progress(client: &tokio_postgres::Client, id: &str) -> (String, Option<i32>) {
    let row = client
        .query_one(
            "SELECT status, statements_done FROM __drizzle_migrations WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn semicolon_after_trailing_line_comment_is_not_swallowed() {
    let db = TestDb::new("comment_semicolon").await;
    let dir = native(&[
        (
            "0001_a.sql",
            "CREATE TABLE a (id int) -- the first table\n;\nALTER TABLE a ADD COLUMN b int -- and a column\n;\n",
        ),
        // No final semicolon, and a comment after the last statement.
        (
            "0002_b.sql",
            "CREATE TABLE b (id int);\r\nALTER TABLE b ADD COLUMN c text\r\n-- trailing note",
        ),
    ]);
    assert_eq!(migrate(&db, dir.path()).await.unwrap(), 2);
    let client = db.client().await;
    assert!(exists(&client, "a").await && exists(&client, "b").await);
}

#[tokio::test]
async fn begin_commit_wrapper_runs_as_one_transaction() {
    let db = TestDb::new("wrapper").await;
    // What Prisma writes for an enum change.
    let dir = native(&[(
        "0001_enum.sql",
        "-- AlterEnum\nBEGIN;\nCREATE TYPE \"Role_new\" AS ENUM ('USER', 'ADMIN');\nCREATE TABLE u (r \"Role_new\");\nCOMMIT;\n",
    )]);
    assert_eq!(migrate(&db, dir.path()).await.unwrap(), 1);
    let client = db.client().await;
    assert!(exists(&client, "u").await);
    assert_eq!(progress(&client, "0001_enum").await.0, "applied");
}

#[tokio::test]
async fn begin_commit_wrapper_failure_leaves_nothing_behind() {
    let db = TestDb::new("wrapper_fail").await;
    let dir = native(&[(
        "0001_bad.sql",
        "BEGIN;\nCREATE TABLE w (id int);\nSELECT 1/0;\nCOMMIT;\n",
    )]);
    let err = migrate(&db, dir.path()).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("at statement 2 of 2"), "{text}");
    assert!(text.contains("0001_bad.sql:3"), "{text}");
    assert!(text.contains("nothing was applied"), "{text}");
    assert!(!exists(&db.client().await, "w").await);
}

#[tokio::test]
async fn set_transaction_first_is_honoured() {
    let db = TestDb::new("set_transaction").await;
    let dir = native(&[
        (
            "0001_iso.sql",
            "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE;\nCREATE TABLE iso AS SELECT current_setting('transaction_isolation') AS level;\n",
        ),
        (
            "0002_iso_block.sql",
            "BEGIN ISOLATION LEVEL REPEATABLE READ;\nINSERT INTO iso SELECT current_setting('transaction_isolation');\nCOMMIT;\n",
        ),
    ]);
    assert_eq!(migrate(&db, dir.path()).await.unwrap(), 2);
    let levels: Vec<String> = db
        .client()
        .await
        .query("SELECT level FROM iso ORDER BY level DESC", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(levels, ["serializable", "repeatable read"]);
}

#[tokio::test]
async fn several_blocks_run_as_their_own_transactions() {
    let db = TestDb::new("blocks").await;
    let dir = native(&[(
        "0001_blocks.sql",
        "BEGIN;\nCREATE TABLE b1 (id int);\nCOMMIT;\nBEGIN;\nCREATE TABLE b2 (id int);\nINSERT INTO nope VALUES (1);\nCOMMIT;\n",
    )]);
    let err = migrate(&db, dir.path()).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("statements 1–1 of 3"), "{text}");
    assert!(!text.contains("nothing was applied"), "{text}");
    let client = db.client().await;
    assert!(exists(&client, "b1").await, "the first block committed");
    assert!(!exists(&client, "b2").await, "the second block rolled back");
    assert_eq!(
        progress(&client, "0001_blocks").await,
        ("failed".into(), Some(1))
    );
}

#[tokio::test]
async fn apply_reports_unknown_statement_when_the_server_gives_no_position() {
    let db = TestDb::new("no_position").await;
    // A duplicate key has no error position: the statement is found by what completed.
    let dir = native(&[(
        "0001_dup.sql",
        "CREATE TABLE d (id int PRIMARY KEY);\nINSERT INTO d VALUES (1);\n\n-- again\nINSERT INTO d VALUES (1);\nCREATE TABLE after_it (id int);\n",
    )]);
    let err = migrate(&db, dir.path()).await.unwrap_err();
    match &err {
        MigrateError::Failed {
            statement,
            statements,
            location,
            pg,
            ..
        } => {
            assert_eq!(pg.code, "23505");
            assert_eq!((*statement, *statements), (Some(2), 4));
            let l = location.as_ref().expect("a location");
            assert_eq!(l.line, 5, "{l}");
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("0001_dup.sql:5"), "{err}");
}

#[tokio::test]
async fn resume_after_fixing_the_failed_statement_skips_committed_ones() {
    let db = TestDb::new("resume_fixed").await;
    let client = db.client().await;
    let before = "CREATE TABLE r1 (id int);\nCREATE INDEX CONCURRENTLY r1_i ON r1 (id);\nCREATE TABLE r2 (id int);\nSELECT 1/0;\n";
    let dir = native(&[("0001_steps.sql", before)]);
    let err = migrate(&db, dir.path()).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("statements 1–2 of 4"), "{text}");
    assert!(text.contains("resumes at statement 3"), "{text}");
    assert_eq!(
        progress(&client, "0001_steps").await,
        ("failed".into(), Some(2))
    );

    // The user fixes statement 4 and reformats statement 1 (a comment, other spacing).
    let fixed = "CREATE TABLE r1 (id int); -- the first\nCREATE INDEX CONCURRENTLY r1_i ON r1 (id);\nCREATE TABLE r2 (id int);\nSELECT 1/1;\n";
    std::fs::write(dir.path().join("0001_steps.sql"), fixed).unwrap();
    assert_eq!(migrate(&db, dir.path()).await.unwrap(), 1);
    assert!(exists(&client, "r2").await);
    assert_eq!(progress(&client, "0001_steps").await.0, "applied");
}

#[tokio::test]
async fn changed_committed_statement_is_refused_until_repaired() {
    let db = TestDb::new("resume_changed").await;
    let client = db.client().await;
    let dir = native(&[(
        "0001_steps.sql",
        "CREATE TABLE c1 (id int);\nCREATE INDEX CONCURRENTLY c1_i ON c1 (id);\nSELECT 1/0;\n",
    )]);
    migrate(&db, dir.path()).await.unwrap_err();
    // Statement 1, already committed, is edited: pgkeel must not re-run or skip it silently.
    std::fs::write(
        dir.path().join("0001_steps.sql"),
        "CREATE TABLE c1 (id bigint);\nCREATE INDEX CONCURRENTLY c1_i ON c1 (id);\nSELECT 1;\n",
    )
    .unwrap();
    let err = migrate(&db, dir.path()).await.unwrap_err();
    assert!(
        matches!(
            &err,
            MigrateError::CommittedChanged {
                done: 2,
                first_changed: Some(0),
                ..
            }
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("0001_steps.sql:1: CREATE TABLE c1 (id bigint)"),
        "{text}"
    );
    assert!(text.contains("pgkeel repair --force"), "{text}");
    assert_eq!(
        progress(&client, "0001_steps").await,
        ("failed".into(), Some(2)),
        "progress is never reset"
    );

    let settings = db.settings();
    let set = source::load(dir.path()).unwrap();
    let m = Migrator::new(&settings, &set);
    assert!(
        m.repair(&client, false).await.is_err(),
        "repair needs --force"
    );
    assert_eq!(m.repair(&client, true).await.unwrap(), ["0001_steps"]);
    assert_eq!(migrate(&db, dir.path()).await.unwrap(), 1);
    assert_eq!(progress(&client, "0001_steps").await.0, "applied");
}

#[tokio::test]
async fn transaction_control_misuse_is_a_clear_error_before_anything_runs() {
    let db = TestDb::new("tx_misuse").await;
    let dir = native(&[
        ("0001_ok.sql", "CREATE TABLE ok (id int);\n"),
        (
            "0002_rollback.sql",
            "BEGIN;\nCREATE TABLE never (id int);\nROLLBACK;\n",
        ),
    ]);
    let err = migrate(&db, dir.path()).await.unwrap_err();
    assert!(
        matches!(&err, MigrateError::TransactionControl { .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("0002_rollback.sql:3"), "{text}");
    assert!(text.contains("rolls itself back"), "{text}");
}

#[tokio::test]
async fn target_already_applied_applies_nothing_after_it() {
    let db = TestDb::new("target_applied").await;
    let dir = native(&[
        ("0001_a.sql", "CREATE TABLE a (id int);"),
        ("0002_b.sql", "CREATE TABLE b (id int);"),
        ("0003_c.sql", "CREATE TABLE c (id int);"),
    ]);
    let settings = db.settings();
    let set = source::load(dir.path()).unwrap();
    let client = db.client().await;
    let opts = MigrateOptions {
        target: Some("0002_b".into()),
        ..Default::default()
    };
    for expected in [2, 0] {
        let r = Migrator::new(&settings, &set)
            .migrate(&client, &opts, &mut Silent)
            .await
            .unwrap();
        assert_eq!(r.applied.len(), expected);
        assert!(!exists(&client, "c").await, "0003_c is after the target");
    }
    let mut dry = opts.clone();
    dry.dry_run = true;
    let r = Migrator::new(&settings, &set)
        .migrate(&client, &dry, &mut Silent)
        .await
        .unwrap();
    assert!(r.applied.is_empty(), "{:?}", r.applied);
}

/// Writes a drizzle-kit journal folder with these tags and files.
fn drizzle(files: &[(&str, &str)]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("meta")).unwrap();
    let entries: Vec<String> = files
        .iter()
        .enumerate()
        .map(|(i, (tag, _))| {
            format!(
                r#"{{"idx":{i},"version":"7","when":{},"tag":"{tag}","breakpoints":true}}"#,
                1_700_000_000_000u64 + i as u64
            )
        })
        .collect();
    std::fs::write(
        tmp.path().join("meta/_journal.json"),
        format!(
            r#"{{"version":"7","dialect":"postgresql","entries":[{}]}}"#,
            entries.join(",")
        ),
    )
    .unwrap();
    for (tag, sql) in files {
        std::fs::write(tmp.path().join(format!("{tag}.sql")), sql).unwrap();
    }
    tmp
}

#[tokio::test]
async fn drizzle_commit_before_create_index_concurrently_applies_as_drizzle_orm_does() {
    let db = TestDb::new("drizzle_commit_first").await;
    // The pattern drizzle-kit users write to leave drizzle-orm's transaction for CONCURRENTLY,
    // reopening one at the end for drizzle-orm's own COMMIT.
    let dir = drizzle(&[
        ("0000_init", "CREATE TABLE \"t\" (\"id\" integer);"),
        (
            "0001_concurrent_index",
            "ALTER TABLE \"t\" ADD COLUMN \"c\" integer;--> statement-breakpoint\nCOMMIT;--> statement-breakpoint\nCREATE INDEX CONCURRENTLY IF NOT EXISTS \"t_id_idx\" ON \"t\" (\"id\");--> statement-breakpoint\nBEGIN;--> statement-breakpoint\nALTER TABLE \"t\" ADD COLUMN \"d\" integer;",
        ),
    ]);
    assert_eq!(migrate(&db, dir.path()).await.unwrap(), 2);
    let client = db.client().await;
    let valid: bool = client
        .query_one(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 't_id_idx'::regclass",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(valid);
    let cols: i64 = client
        .query_one(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 't'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(cols, 3);
}

#[tokio::test]
async fn statements_after_a_files_commit_run_as_written() {
    let db = TestDb::new("after_commit").await;
    // As psql and Prisma run it: the block commits, the statements after it are their own
    // transaction, so the block stays when they fail.
    let dir = native(&[(
        "0001_enum.sql",
        "BEGIN;\nCREATE TYPE e AS ENUM ('a');\nCOMMIT;\nCREATE TABLE uses_e (v e);\nSELECT 1/0;\n",
    )]);
    migrate(&db, dir.path()).await.unwrap_err();
    let client = db.client().await;
    let has_type: bool = client
        .query_one("SELECT to_regtype('e') IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert!(has_type, "the committed block stays");
    assert!(!exists(&client, "uses_e").await);
    assert_eq!(
        progress(&client, "0001_enum").await,
        ("failed".into(), Some(1))
    );
}
