//! `rollback` against a real PostgreSQL, one fresh database per test. Schemas are compared with
//! `pg_dump --schema-only`, so "restored" means restored as PostgreSQL itself describes it.

mod support;

use std::path::{Path, PathBuf};

use pgkeel::migrate::{self, MigrateOptions, Migrator, Silent};
use pgkeel::rollback::{self, RollbackError, RollbackOptions, RollbackSource};
use pgkeel::source::{self, MigrationSet};
use support::{native, TestDb};

fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/cfi-handbook/drizzle")
}

/// The schema as `pg_dump --schema-only --no-owner` prints it, without comments and blank
/// lines (and without the random `\restrict` key newer pg_dump versions print).
fn schema(db: &TestDb) -> String {
    let out = std::process::Command::new("pg_dump")
        .args([
            "--schema-only",
            "--no-owner",
            "--no-privileges",
            "-d",
            &db.url,
        ])
        .output()
        .expect("run pg_dump (apt-get install postgresql-client)");
    assert!(
        out.status.success(),
        "pg_dump failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| {
            !l.starts_with("--")
                && !l.trim().is_empty()
                && !l.starts_with("\\restrict")
                && !l.starts_with("\\unrestrict")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

async fn migrate_to(db: &TestDb, set: &MigrationSet, target: Option<&str>) -> Vec<String> {
    let settings = db.settings();
    let client = db.client().await;
    let opts = MigrateOptions {
        target: target.map(str::to_string),
        ..MigrateOptions::default()
    };
    Migrator::new(&settings, set)
        .migrate(&client, &opts, &mut Silent)
        .await
        .unwrap()
        .applied
        .into_iter()
        .map(|a| a.id)
        .collect()
}

async fn roll_back(
    db: &TestDb,
    set: &MigrationSet,
    id: &str,
    cascade: bool,
    dry_run: bool,
) -> Result<rollback::RollbackReport, RollbackError> {
    let client = db.client().await;
    rollback::rollback(
        &client,
        &db.settings(),
        set,
        id,
        &RollbackOptions {
            cascade,
            dry_run,
            ..RollbackOptions::default()
        },
    )
    .await
}

fn ids(r: &rollback::RollbackReport) -> Vec<&str> {
    r.rolled_back.iter().map(|b| b.id.as_str()).collect()
}

async fn statuses(db: &TestDb) -> Vec<(String, String)> {
    support::ledger_statuses(&db.client().await).await
}

fn status_of<'a>(rows: &'a [(String, String)], id: &str) -> &'a str {
    rows.iter()
        .find(|(i, _)| i == id)
        .map(|(_, s)| s.as_str())
        .unwrap_or("<none>")
}

async fn audit_count(db: &TestDb, outcome: &str) -> i64 {
    db.client()
        .await
        .query_one(
            "SELECT count(*) FROM __pgkeel_audit WHERE operation = 'rollback' AND outcome = $1",
            &[&outcome],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn example_rollback_of_0004_and_0003_restores_the_schema_and_migrate_reapplies() {
    let db = TestDb::new("rb_example").await;
    let set = source::load(&example_dir()).unwrap();
    migrate_to(&db, &set, Some("0002_loose_colossus")).await;
    let before_0003 = schema(&db);
    migrate_to(&db, &set, None).await;
    let full = schema(&db);
    assert_ne!(before_0003, full);

    let r = roll_back(&db, &set, "0004_happy_banshee", false, false)
        .await
        .unwrap();
    assert_eq!(ids(&r), ["0004_happy_banshee"]);
    assert_eq!(r.rolled_back[0].source, RollbackSource::DownFile);
    assert_eq!(r.rolled_back[0].statements, 3);
    // A unique prefix names the migration too.
    let r = roll_back(&db, &set, "0003", false, false).await.unwrap();
    assert_eq!(ids(&r), ["0003_slim_warhawk"]);

    assert_eq!(schema(&db), before_0003, "schema as it was before 0003");
    let rows = statuses(&db).await;
    assert_eq!(status_of(&rows, "0003_slim_warhawk"), "rolled_back");
    assert_eq!(status_of(&rows, "0004_happy_banshee"), "rolled_back");
    assert_eq!(status_of(&rows, "0002_loose_colossus"), "applied");
    assert_eq!(audit_count(&db, "rolled_back").await, 2);

    // Rolled back counts as pending: migrate applies both again, and drizzle-orm's own table was
    // kept in step (otherwise the takeover would record them as applied without running them).
    let again = migrate_to(&db, &set, None).await;
    assert_eq!(again, ["0003_slim_warhawk", "0004_happy_banshee"]);
    assert_eq!(schema(&db), full);
    let rows = statuses(&db).await;
    assert!(rows.iter().all(|(_, s)| s == "applied"), "{rows:?}");

    // Rolling back something no longer applied is an error, not a no-op.
    roll_back(&db, &set, "0004_happy_banshee", false, false)
        .await
        .unwrap();
    let err = roll_back(&db, &set, "0004_happy_banshee", false, false)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RollbackError::NotApplied { state, .. } if state == "rolled_back"),
        "{err}"
    );
}

#[tokio::test]
async fn rollback_under_later_migrations_is_refused_unless_cascade() {
    let db = TestDb::new("rb_cascade").await;
    let set = source::load(&example_dir()).unwrap();
    migrate_to(&db, &set, Some("0001_tiny_nightcrawler")).await;
    let before_0002 = schema(&db);
    migrate_to(&db, &set, None).await;
    let full = schema(&db);

    let err = roll_back(&db, &set, "0002_loose_colossus", false, false)
        .await
        .unwrap_err();
    match &err {
        RollbackError::LaterApplied { id, later } => {
            assert_eq!(id, "0002_loose_colossus");
            assert_eq!(later, &["0004_happy_banshee", "0003_slim_warhawk"]);
        }
        other => panic!("expected LaterApplied, got {other}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("0004_happy_banshee") && msg.contains("--cascade"),
        "{msg}"
    );
    assert!(err.is_usage());
    assert_eq!(schema(&db), full, "a refused rollback changes nothing");

    let r = roll_back(&db, &set, "0002_loose_colossus", true, false)
        .await
        .unwrap();
    assert_eq!(
        ids(&r),
        [
            "0004_happy_banshee",
            "0003_slim_warhawk",
            "0002_loose_colossus"
        ]
    );
    assert_eq!(schema(&db), before_0002);
    let rows = statuses(&db).await;
    for id in [
        "0002_loose_colossus",
        "0003_slim_warhawk",
        "0004_happy_banshee",
    ] {
        assert_eq!(status_of(&rows, id), "rolled_back", "{id}");
    }
    assert_eq!(status_of(&rows, "0001_tiny_nightcrawler"), "applied");
}

#[tokio::test]
async fn dry_run_changes_nothing_and_shows_the_sql() {
    let db = TestDb::new("rb_dry").await;
    let set = source::load(&example_dir()).unwrap();
    migrate_to(&db, &set, None).await;
    let before = schema(&db);
    let r = roll_back(&db, &set, "0002_loose_colossus", true, true)
        .await
        .unwrap();
    assert!(r.dry_run);
    assert_eq!(r.rolled_back.len(), 3);
    let sql = r.rolled_back[2].sql.as_deref().unwrap();
    assert!(sql.contains("DROP TABLE \"user_progress\""), "{sql}");
    assert!(sql.contains("SET LOCAL lock_timeout"), "{sql}");
    assert!(sql.contains("rolled_back"), "{sql}");
    // pgkeel's own guard is a one-line comment (`-v` shows it): the user sees their SQL and
    // the ledger writes; no session function is named (a dry run installs nothing).
    assert!(
        sql.contains("-- pgkeel's guard") && !sql.contains("pg_locks") && !sql.contains("pg_temp."),
        "{sql}"
    );
    assert_eq!(schema(&db), before);
    let rows = statuses(&db).await;
    assert!(rows.iter().all(|(_, s)| s == "applied"), "{rows:?}");
    assert_eq!(audit_count(&db, "rolled_back").await, 0);
    // The dry run refuses what the real run would refuse.
    let err = roll_back(&db, &set, "0002_loose_colossus", false, true)
        .await
        .unwrap_err();
    assert!(matches!(err, RollbackError::LaterApplied { .. }), "{err}");
}

const BASE: &str = "CREATE TABLE accounts (id int PRIMARY KEY, email text);\n";

/// Everything `generate` inverts that a typical hand-written migration does, on a table that
/// existed before and on one it creates.
const GROW: &str = r#"CREATE TABLE "Orders" (
    id serial PRIMARY KEY,
    account_id int NOT NULL,
    "select" text
);
CREATE INDEX orders_account_idx ON "Orders" (account_id);
CREATE INDEX accounts_email_idx ON accounts (lower(email));
ALTER TABLE accounts ADD COLUMN plan text DEFAULT 'free' NOT NULL;
ALTER TABLE "Orders" ADD CONSTRAINT orders_account_fk FOREIGN KEY (account_id) REFERENCES accounts (id);
ALTER TABLE accounts ADD CONSTRAINT accounts_email_key UNIQUE (email), ALTER COLUMN email SET NOT NULL;
CREATE TYPE "Status" AS ENUM ('new', 'paid');
ALTER TABLE "Orders" ADD COLUMN status "Status" DEFAULT 'new' NOT NULL;
CREATE FUNCTION order_count(acc int, since timestamptz DEFAULT now()) RETURNS bigint
    LANGUAGE sql AS $$ SELECT count(*) FROM "Orders" WHERE account_id = acc $$;
CREATE VIEW paid_orders AS SELECT * FROM "Orders" WHERE status = 'paid';
COMMENT ON TABLE "Orders" IS 'one row per order';
INSERT INTO "Orders" (account_id) SELECT id FROM accounts;
"#;

#[tokio::test]
async fn generated_rollback_restores_the_schema() {
    let db = TestDb::new("rb_generated").await;
    let dir = native(&[("0001_base.sql", BASE), ("0002_grow.sql", GROW)]);
    let set = source::load(dir.path()).unwrap();
    migrate_to(&db, &set, Some("0001_base")).await;
    db.client()
        .await
        .batch_execute("INSERT INTO accounts VALUES (1, 'a@example.com')")
        .await
        .unwrap();
    let before = schema(&db);
    migrate_to(&db, &set, None).await;
    assert_ne!(schema(&db), before);

    let stmts = migrate::parse(set.get("0002_grow").unwrap()).unwrap();
    let g = rollback::generate(&stmts);
    assert!(g.irreversible.is_empty(), "{:?}", g.irreversible);
    let sql = g.sql.unwrap();
    db.client()
        .await
        .batch_execute(&format!("BEGIN;\n{sql}COMMIT;"))
        .await
        .unwrap_or_else(|e| panic!("generated rollback failed: {e:?}\n{sql}"));
    assert_eq!(schema(&db), before, "generated rollback:\n{sql}");
}

/// SET/DROP DEFAULT and SET/DROP NOT NULL on columns that existed before the migration: the
/// stored rollback restores what the catalog said just before the migration ran.
#[tokio::test]
async fn column_default_and_not_null_changes_roll_back_to_the_catalog_state() {
    let db = TestDb::new("rb_catalog").await;
    let dir = native(&[
        (
            "0001_base.sql",
            "CREATE SEQUENCE ticket_seq;\n\
             CREATE TABLE tickets (\n\
               id bigint NOT NULL DEFAULT nextval('ticket_seq'),\n\
               state text NOT NULL DEFAULT 'open',\n\
               owner text,\n\
               note text DEFAULT 'n/a',\n\
               priority int NOT NULL\n\
             );\n",
        ),
        (
            "0002_defaults.sql",
            "ALTER TABLE tickets ALTER COLUMN state SET DEFAULT 'new';\n\
             ALTER TABLE tickets ALTER COLUMN state SET DEFAULT 'triage';\n\
             ALTER TABLE tickets ALTER COLUMN id DROP DEFAULT;\n\
             ALTER TABLE tickets ALTER COLUMN owner SET DEFAULT current_user;\n\
             ALTER TABLE tickets ALTER COLUMN note DROP DEFAULT, ALTER COLUMN note SET NOT NULL;\n\
             ALTER TABLE tickets ALTER COLUMN priority SET NOT NULL;\n\
             ALTER TABLE tickets ALTER COLUMN state DROP NOT NULL;\n",
        ),
    ]);
    let set = source::load(dir.path()).unwrap();
    migrate_to(&db, &set, Some("0001_base")).await;
    let before = schema(&db);
    migrate_to(&db, &set, None).await;
    assert_ne!(schema(&db), before);

    let client = db.client().await;
    let stored: Option<String> = client
        .query_one(
            "SELECT rollback_sql FROM __drizzle_migrations WHERE id = '0002_defaults'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let stored = stored.expect("every statement can be inverted with the catalog's state");
    assert!(
        stored.contains("SET DEFAULT 'open'::text"),
        "the previous default, not the intermediate one:\n{stored}"
    );
    assert!(
        stored.contains("SET DEFAULT nextval('ticket_seq'::regclass)"),
        "{stored}"
    );
    assert!(
        !stored.contains("priority"),
        "SET NOT NULL on a NOT NULL column changed nothing:\n{stored}"
    );
    roll_back(&db, &set, "0002_defaults", false, false)
        .await
        .unwrap_or_else(|e| panic!("stored rollback failed: {e}\n{stored}"));
    assert_eq!(schema(&db), before, "stored rollback:\n{stored}");
}

#[tokio::test]
async fn without_a_down_file_the_stored_rollback_runs_and_else_it_says_what_to_write() {
    let db = TestDb::new("rb_stored").await;
    let dir = native(&[("0001_base.sql", BASE), ("0002_grow.sql", GROW)]);
    let set = source::load(dir.path()).unwrap();
    migrate_to(&db, &set, Some("0001_base")).await;
    let before = schema(&db);
    migrate_to(&db, &set, None).await;

    // migrate stored the rollback it generated from the parse tree.
    let stored: Option<String> = db
        .client()
        .await
        .query_one(
            "SELECT rollback_sql FROM __drizzle_migrations WHERE id = '0002_grow'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(stored.is_some_and(|s| s.starts_with("-- generated by pgkeel")));
    let r = roll_back(&db, &set, "0002_grow", false, false)
        .await
        .unwrap();
    assert_eq!(r.rolled_back[0].source, RollbackSource::Stored);
    assert_eq!(schema(&db), before);
    assert_eq!(
        migrate_to(&db, &set, None).await,
        ["0002_grow"],
        "applied again"
    );

    // Nothing stored and no down file: the error says what to write.
    db.client()
        .await
        .batch_execute("UPDATE __drizzle_migrations SET rollback_sql = NULL WHERE id = '0002_grow'")
        .await
        .unwrap();
    let err = roll_back(&db, &set, "0002_grow", false, false)
        .await
        .unwrap_err();
    match &err {
        RollbackError::NoRollback { id, expected, .. } => {
            assert_eq!(id, "0002_grow");
            assert_eq!(expected, &dir.path().join("0002_grow.down.sql"));
        }
        other => panic!("expected NoRollback, got {other}"),
    }
    assert!(err.to_string().contains("0002_grow.down.sql"), "{err}");
}

#[tokio::test]
async fn non_transactional_rollback_statements_run_alone() {
    let db = TestDb::new("rb_concurrently").await;
    let dir = native(&[
        ("0001_t.sql", "CREATE TABLE t (a int);\n"),
        (
            "0002_idx.sql",
            "CREATE INDEX CONCURRENTLY t_a_idx ON t (a);\nALTER TABLE t ADD COLUMN b int;\n",
        ),
        (
            "0002_idx.down.sql",
            "ALTER TABLE t DROP COLUMN b;\nDROP INDEX CONCURRENTLY IF EXISTS t_a_idx;\n",
        ),
    ]);
    let set = source::load(dir.path()).unwrap();
    migrate_to(&db, &set, Some("0001_t")).await;
    let before = schema(&db);
    migrate_to(&db, &set, None).await;
    let r = roll_back(&db, &set, "0002_idx", false, false)
        .await
        .unwrap();
    assert_eq!(ids(&r), ["0002_idx"]);
    assert_eq!(schema(&db), before);
    assert_eq!(status_of(&statuses(&db).await, "0002_idx"), "rolled_back");
}

#[tokio::test]
async fn failing_rollback_leaves_the_migration_applied_and_points_at_the_line() {
    let db = TestDb::new("rb_fail").await;
    let dir = native(&[
        ("0001_t.sql", "CREATE TABLE t (a int);\n"),
        (
            "0001_t.down.sql",
            "DROP TABLE t;\nCREATE TABLE u (a no_such_type);\n",
        ),
    ]);
    let set = source::load(dir.path()).unwrap();
    migrate_to(&db, &set, None).await;
    let before = schema(&db);
    let err = roll_back(&db, &set, "0001_t", false, false)
        .await
        .unwrap_err();
    match &err {
        RollbackError::Failed {
            id,
            pg,
            location,
            statement,
            statements,
            statements_done,
            ..
        } => {
            assert_eq!(id, "0001_t");
            assert_eq!(pg.code, "42704");
            assert_eq!((*statement, *statements, *statements_done), (Some(1), 2, 0));
            let l = location.as_ref().expect("a location in the down file");
            assert_eq!(l.path, dir.path().join("0001_t.down.sql"));
            assert_eq!((l.line, l.column), (2, 19));
        }
        other => panic!("expected Failed, got {other}"),
    }
    assert!(
        err.to_string().contains("still applied"),
        "says what state it left: {err}"
    );
    assert_eq!(
        schema(&db),
        before,
        "the rollback's transaction was rolled back"
    );
    assert_eq!(status_of(&statuses(&db).await, "0001_t"), "applied");
    assert_eq!(audit_count(&db, "failed").await, 1);
}

#[tokio::test]
async fn unknown_pending_and_irreversible_migrations_are_refused() {
    let db = TestDb::new("rb_refused").await;
    let dir = native(&[
        ("0001_a.sql", "-- pgkeel:irreversible\nCREATE TABLE a ();\n"),
        ("0002_b.sql", "CREATE TABLE b ();\n"),
    ]);
    let set = source::load(dir.path()).unwrap();
    migrate_to(&db, &set, Some("0001_a")).await;
    let err = roll_back(&db, &set, "0009_nope", false, false)
        .await
        .unwrap_err();
    assert!(matches!(err, RollbackError::UnknownId { .. }), "{err}");
    assert!(err.to_string().contains("pgkeel status"), "{err}");
    let err = roll_back(&db, &set, "0002_b", false, false)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RollbackError::NotApplied { state, .. } if state == "pending"),
        "{err}"
    );
    let err = roll_back(&db, &set, "0001_a", false, false)
        .await
        .unwrap_err();
    assert!(matches!(err, RollbackError::Irreversible { .. }), "{err}");
    assert!(err.is_validation());
}

#[tokio::test]
async fn cascade_includes_applied_migrations_whose_files_are_gone() {
    let db = TestDb::new("rb_missing").await;
    let dir = native(&[
        ("0001_a.sql", "CREATE TABLE a (id int);\n"),
        ("0001_a.down.sql", "DROP TABLE a;\n"),
        ("0002_b.sql", "CREATE TABLE b (id int);\n"),
        ("0002_b.down.sql", "DROP TABLE b;\n"),
    ]);
    let before = schema(&db);
    migrate_to(&db, &source::load(dir.path()).unwrap(), None).await;
    std::fs::remove_file(dir.path().join("0002_b.sql")).unwrap();
    std::fs::remove_file(dir.path().join("0002_b.down.sql")).unwrap();
    let set = source::load(dir.path()).unwrap();
    let err = roll_back(&db, &set, "0001_a", false, false)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RollbackError::LaterApplied { later, .. } if later == &["0002_b"]),
        "{err}"
    );
    let r = roll_back(&db, &set, "0001_a", true, false).await.unwrap();
    assert_eq!(ids(&r), ["0002_b", "0001_a"]);
    assert_eq!(r.rolled_back[0].source, RollbackSource::Stored);
    assert_eq!(r.rolled_back[1].source, RollbackSource::DownFile);
    // Only the ledger and audit tables remain.
    let after = schema(&db);
    assert!(
        !after.contains("TABLE public.a ") && !after.contains("TABLE public.b "),
        "{after}"
    );
    assert_ne!(after, before);
}

/// `CREATE OR REPLACE` of an existing view and function: the parse tree cannot know what was
/// replaced, so the apply reads both definitions just before (one query each, no schema
/// snapshot) and the stored rollback puts them back. The view gained a column, which `CREATE
/// OR REPLACE` cannot take away: the rollback drops and re-creates it with its options, owner,
/// privileges and comment.
#[tokio::test]
async fn create_or_replace_view_and_function_roll_back_to_the_definitions_read_before() {
    let db = TestDb::new("rb_replace").await;
    let dir = native(&[
        (
            "0001_base.sql",
            "CREATE TABLE t (id int PRIMARY KEY, c int);\n\
             CREATE VIEW v WITH (security_barrier = true) AS SELECT id FROM t WHERE c > 0;\n\
             GRANT SELECT ON v TO PUBLIC;\nCOMMENT ON VIEW v IS 'positive ids';\n\
             CREATE FUNCTION answer() RETURNS int LANGUAGE sql AS 'SELECT 41';\n",
        ),
        (
            "0002_reshape.sql",
            "CREATE OR REPLACE VIEW v AS SELECT id, id * 2 AS doubled FROM t;\n\
             CREATE OR REPLACE FUNCTION answer() RETURNS int LANGUAGE sql AS 'SELECT 42';\n",
        ),
    ]);
    let set = source::load(dir.path()).unwrap();
    let stmts = migrate::parse(set.get("0002_reshape").unwrap()).unwrap();
    assert!(
        rollback::generate(&stmts).sql.is_none(),
        "the parse tree alone cannot invert this"
    );
    migrate_to(&db, &set, Some("0001_base")).await;
    let before = schema(&db);
    let state = "SELECT relacl::text || ' ' || coalesce(reloptions::text, '') || ' ' \
                 || obj_description(oid, 'pg_class') FROM pg_class WHERE relname = 'v'";
    let state_before = text(&db, state).await;
    migrate_to(&db, &set, None).await;
    assert_ne!(schema(&db), before);
    let stored = rollback_sql_of(&db, "0002_reshape")
        .await
        .expect("a rollback is stored");
    assert!(
        stored.starts_with("-- generated by pgkeel from the parse tree"),
        "{stored}"
    );
    // Read with an empty search_path: the definition names its table with its schema, so the
    // rollback means the same table whatever path it runs under.
    assert!(stored.contains("FROM public.t"), "{stored}");
    roll_back(&db, &set, "0002_reshape", false, false)
        .await
        .unwrap_or_else(|e| panic!("rollback failed: {e}\n{stored}"));
    assert_eq!(schema(&db), before, "rollback:\n{stored}");
    assert_eq!(text(&db, state).await, state_before, "{stored}");
}

/// A view replaced with the same columns goes back with `CREATE OR REPLACE`, so a view that
/// depends on it stays; one that gained columns and has dependents cannot be dropped, and
/// then the rollback fails whole with the server's reason and leaves the migration applied.
#[tokio::test]
async fn a_replaced_view_with_dependents_rolls_back_in_place_or_not_at_all() {
    let db = TestDb::new("rb_view_dep").await;
    let dir = native(&[
        (
            "0001_base.sql",
            "CREATE TABLE t (id int PRIMARY KEY, c int);\n\
             CREATE VIEW v AS SELECT id FROM t WHERE c > 0;\nCREATE VIEW w AS SELECT id FROM v;\n",
        ),
        (
            "0002_same_columns.sql",
            "CREATE OR REPLACE VIEW v AS SELECT id FROM t WHERE c > 1;\n",
        ),
        (
            "0003_more_columns.sql",
            "CREATE OR REPLACE VIEW v AS SELECT id, c FROM t WHERE c > 1;\n",
        ),
    ]);
    let set = source::load(dir.path()).unwrap();
    migrate_to(&db, &set, Some("0001_base")).await;
    let base = schema(&db);
    migrate_to(&db, &set, Some("0002_same_columns")).await;
    let same = schema(&db);
    migrate_to(&db, &set, None).await;
    let err = roll_back(&db, &set, "0003_more_columns", false, false)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("depend"), "{err}");
    assert_eq!(
        text(
            &db,
            "SELECT status FROM __drizzle_migrations WHERE id = '0003_more_columns'"
        )
        .await,
        "applied"
    );
    // Without the dependent view it goes: drop it by hand, roll back, put it back.
    db.client()
        .await
        .batch_execute("DROP VIEW w")
        .await
        .unwrap();
    roll_back(&db, &set, "0003_more_columns", false, false)
        .await
        .unwrap();
    db.client()
        .await
        .batch_execute("CREATE VIEW w AS SELECT id FROM v")
        .await
        .unwrap();
    assert_eq!(schema(&db), same);
    roll_back(&db, &set, "0002_same_columns", false, false)
        .await
        .unwrap();
    assert_eq!(schema(&db), base, "w stayed through the rollback in place");
}

async fn text(db: &TestDb, sql: &str) -> String {
    db.client().await.query_one(sql, &[]).await.unwrap().get(0)
}

async fn rollback_sql_of(db: &TestDb, id: &str) -> Option<String> {
    db.client()
        .await
        .query_one(
            "SELECT rollback_sql FROM __drizzle_migrations WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0)
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    db.client().await.query_one(sql, &[]).await.unwrap().get(0)
}

/// Seed rows are what a schema diff cannot see: no state-based rollback is stored for them, and
/// `rollback` refuses (naming the statement and the file to write) with the ledger unchanged,
/// never "rolled back" with the rows left behind. `--force` only marks the row rolled back and
/// says so.
#[tokio::test]
async fn rollback_of_seed_rows_is_refused_and_force_changes_only_the_ledger() {
    let db = TestDb::new("rb_seed").await;
    let dir = native(&[
        (
            "0001_flags.sql",
            "CREATE TABLE flags (name text PRIMARY KEY, on_ boolean);\n",
        ),
        (
            "0002_seed.sql",
            "INSERT INTO flags VALUES ('beta', true), ('dark', false);\n",
        ),
    ]);
    let set = source::load(dir.path()).unwrap();
    migrate_to(&db, &set, None).await;
    assert_eq!(
        rollback_sql_of(&db, "0002_seed").await,
        None,
        "no state-based rollback"
    );

    let err = roll_back(&db, &set, "0002_seed", false, false)
        .await
        .unwrap_err();
    let text = err.to_string();
    match &err {
        RollbackError::NoRollback { id, reason, .. } => {
            assert_eq!(id, "0002_seed");
            let reason = reason.as_deref().expect("the reason is named");
            assert!(reason.contains("INSERT INTO flags"), "{reason}");
            assert!(reason.contains("0002_seed.sql:1"), "{reason}");
        }
        other => panic!("expected NoRollback, got {other}"),
    }
    assert!(
        text.contains("0002_seed.down.sql") && text.contains("--force"),
        "{text}"
    );
    assert_eq!(status_of(&statuses(&db).await, "0002_seed"), "applied");
    assert_eq!(count(&db, "SELECT count(*) FROM flags").await, 2);

    let client = db.client().await;
    let forced = rollback::rollback(
        &client,
        &db.settings(),
        &set,
        "0002_seed",
        &RollbackOptions {
            force: true,
            ..RollbackOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(forced.rolled_back[0].source, RollbackSource::LedgerOnly);
    assert_eq!(status_of(&statuses(&db).await, "0002_seed"), "rolled_back");
    assert_eq!(
        count(&db, "SELECT count(*) FROM flags").await,
        2,
        "nothing ran"
    );
}

/// A state-based rollback an earlier pgkeel stored for a GRANT is an empty diff: running it
/// would report success and leave the privilege. It is refused instead.
#[tokio::test]
async fn a_stored_state_based_rollback_that_cannot_see_a_grant_is_refused() {
    let db = TestDb::new("rb_grant").await;
    let dir = native(&[
        ("0001_t.sql", "CREATE TABLE t (id int);\n"),
        ("0002_grant.sql", "GRANT SELECT ON t TO PUBLIC;\n"),
    ]);
    let set = source::load(dir.path()).unwrap();
    migrate_to(&db, &set, None).await;
    // Today's apply stores an inverse from the ACL read just before.
    let stored = rollback_sql_of(&db, "0002_grant").await.unwrap();
    assert!(
        stored.contains("REVOKE SELECT ON TABLE t FROM PUBLIC"),
        "{stored}"
    );
    db.client()
        .await
        .batch_execute(
            "UPDATE __drizzle_migrations SET rollback_sql = \
             '-- generated by pgkeel from schema snapshots taken just before and after the migration (state-based)\n-- hazards: none\n' \
             WHERE id = '0002_grant'",
        )
        .await
        .unwrap();
    let err = roll_back(&db, &set, "0002_grant", false, false)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RollbackError::NoRollback { reason: Some(r), .. } if r.contains("GRANT") && r.contains("state-based")),
        "{err}"
    );
    assert_eq!(status_of(&statuses(&db).await, "0002_grant"), "applied");
}

/// A migration of queries only (`SELECT 1;`) changes nothing: its rollback is empty and no
/// schema snapshot is taken for it (that cost grew with the schema).
#[tokio::test]
async fn a_query_only_migration_stores_an_empty_generated_rollback() {
    let db = TestDb::new("rb_select").await;
    let dir = native(&[("0001_q.sql", "SELECT 1;\nSELECT 'a' || 'b';\n")]);
    let set = source::load(dir.path()).unwrap();
    migrate_to(&db, &set, None).await;
    let stored = rollback_sql_of(&db, "0001_q").await.unwrap();
    assert!(
        stored.starts_with("-- generated by pgkeel from the parse tree"),
        "{stored}"
    );
    roll_back(&db, &set, "0001_q", false, false).await.unwrap();
}

/// `CREATE OR REPLACE FUNCTION` inverts from the catalog read just before it (the previous
/// definition, or a drop for a function that was not there): no schema snapshot, whose cost grew
/// with the schema.
#[tokio::test]
async fn replaced_functions_roll_back_to_their_previous_definition_from_the_catalog() {
    let db = TestDb::new("rb_func").await;
    let dir = native(&[
        (
            "0001_base.sql",
            "CREATE FUNCTION answer(x int, label text DEFAULT 'a') RETURNS int LANGUAGE sql AS 'SELECT 41';\n",
        ),
        (
            "0002_replace.sql",
            "CREATE OR REPLACE FUNCTION answer(x integer, label text DEFAULT 'a') RETURNS int LANGUAGE sql AS 'SELECT 42';\n\
             CREATE OR REPLACE FUNCTION fresh() RETURNS int LANGUAGE sql AS 'SELECT 1';\n",
        ),
    ]);
    let set = source::load(dir.path()).unwrap();
    migrate_to(&db, &set, Some("0001_base")).await;
    let before = schema(&db);
    migrate_to(&db, &set, None).await;
    let stored = rollback_sql_of(&db, "0002_replace").await.unwrap();
    assert!(
        stored.starts_with("-- generated by pgkeel from the parse tree"),
        "{stored}"
    );
    assert!(
        stored.contains("SELECT 41") && stored.contains("DROP FUNCTION IF EXISTS fresh()"),
        "{stored}"
    );
    roll_back(&db, &set, "0002_replace", false, false)
        .await
        .unwrap();
    assert_eq!(schema(&db), before);
    assert_eq!(count(&db, "SELECT answer(1)::bigint").await, 41);
}

/// The catalog state of `t` and schema `app` that the catalog inverses restore: privileges in
/// effect (by grantee, privilege and grant option; an empty ACL is the owner's defaults; the
/// grantor and the order are PostgreSQL's business),
/// owners, comments and storage parameters.
async fn catalog_state(db: &TestDb) -> Vec<Option<String>> {
    let row = db
        .client()
        .await
        .query_one(
            "SELECT (SELECT string_agg(format('%s:%s:%s', x.grantee::regrole, x.privilege_type, x.is_grantable), ' '
                                         ORDER BY x.grantee::regrole::text, x.privilege_type)
                       FROM pg_class c, aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) x WHERE c.oid = 't'::regclass),
                    (SELECT relowner::regrole::text FROM pg_class WHERE oid = 't'::regclass),
                    obj_description('t'::regclass, 'pg_class'),
                    col_description('t'::regclass, 1),
                    (SELECT reloptions::text FROM pg_class WHERE oid = 't'::regclass),
                    (SELECT string_agg(format('%s:%s:%s', x.grantee::regrole, x.privilege_type, x.is_grantable), ' '
                                         ORDER BY x.grantee::regrole::text, x.privilege_type)
                       FROM pg_namespace n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) x WHERE n.nspname = 'app'),
                    (SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'app')",
            &[],
        )
        .await
        .unwrap();
    (0..7).map(|i| row.get(i)).collect()
}

/// `GRANT`/`REVOKE`, `ALTER … OWNER TO`, `COMMENT ON` and `ALTER TABLE … SET (…)` on objects
/// that existed before invert from the catalog read just before the migration: the rollback
/// restores exactly that state (a privilege already held inverts to nothing), with no schema
/// snapshot.
#[tokio::test]
async fn grants_owners_comments_and_storage_parameters_roll_back_to_the_catalog_state() {
    let db = TestDb::new("rb_acl").await;
    // Roles are cluster-wide: created once, whichever test gets there first.
    db.client()
        .await
        .batch_execute(
            "DO $$ BEGIN
               CREATE ROLE pgkeel_t_rb_acl_role;
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
             DO $$ BEGIN
               CREATE ROLE pgkeel_t_rb_owner;
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;",
        )
        .await
        .unwrap();
    let dir = native(&[
        (
            "0001_base.sql",
            "CREATE TABLE t (id int);\n\
             CREATE SCHEMA app;\n\
             COMMENT ON TABLE t IS 'first';\n\
             GRANT SELECT ON t TO pgkeel_t_rb_acl_role;\n\
             ALTER TABLE t SET (fillfactor = 80);\n",
        ),
        (
            "0002_catalog.sql",
            "GRANT SELECT, INSERT ON t TO pgkeel_t_rb_acl_role;\n\
             GRANT ALL ON TABLE t TO PUBLIC;\n\
             REVOKE UPDATE ON t FROM pgkeel_t_rb_acl_role;\n\
             GRANT USAGE ON SCHEMA app TO pgkeel_t_rb_acl_role WITH GRANT OPTION;\n\
             ALTER TABLE t OWNER TO pgkeel_t_rb_owner;\n\
             ALTER SCHEMA app OWNER TO pgkeel_t_rb_owner;\n\
             COMMENT ON TABLE t IS 'second';\n\
             COMMENT ON COLUMN t.id IS 'the id';\n\
             ALTER TABLE t SET (fillfactor = 70, autovacuum_enabled = false);\n",
        ),
    ]);
    let set = source::load(dir.path()).unwrap();
    migrate_to(&db, &set, Some("0001_base")).await;
    let before = catalog_state(&db).await;
    let schema_before = schema(&db);
    migrate_to(&db, &set, None).await;
    assert_ne!(catalog_state(&db).await, before, "the migration changed it");
    let stored = rollback_sql_of(&db, "0002_catalog").await.unwrap();
    assert!(
        stored.starts_with("-- generated by pgkeel from the parse tree"),
        "{stored}"
    );
    assert!(
        stored.contains("REVOKE INSERT ON TABLE t FROM pgkeel_t_rb_acl_role")
            && !stored.contains("REVOKE SELECT ON TABLE t FROM pgkeel_t_rb_acl_role"),
        "a privilege already held inverts to nothing: {stored}"
    );
    roll_back(&db, &set, "0002_catalog", false, false)
        .await
        .unwrap();
    assert_eq!(catalog_state(&db).await, before, "{stored}");
    assert_eq!(schema(&db), schema_before);
    // Applied again, rolled back again: the same state (the inverse was read afresh).
    migrate_to(&db, &set, None).await;
    roll_back(&db, &set, "0002_catalog", false, false)
        .await
        .unwrap();
    assert_eq!(catalog_state(&db).await, before);
}

/// Grants pgkeel does not invert from the catalog (every table in a schema, column privileges)
/// are refused with the reason, before anything runs.
#[tokio::test]
async fn grants_on_all_tables_in_a_schema_are_refused_with_the_reason() {
    let db = TestDb::new("rb_acl_all").await;
    let dir = native(&[
        ("0001_t.sql", "CREATE TABLE t (id int);\n"),
        (
            "0002_all.sql",
            "GRANT SELECT ON ALL TABLES IN SCHEMA public TO PUBLIC;\n",
        ),
    ]);
    let set = source::load(dir.path()).unwrap();
    migrate_to(&db, &set, None).await;
    let err = roll_back(&db, &set, "0002_all", false, false)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RollbackError::NoRollback { reason: Some(r), .. } if r.contains("ALL … IN SCHEMA")),
        "{err}"
    );
    assert_eq!(status_of(&statuses(&db).await, "0002_all"), "applied");
}

/// Types: an enum value renamed back from the parse tree, and a domain change the parse tree
/// cannot invert rolled back from snapshots (scoped to the relations the statement names, with
/// every type), both to the schema as it was.
#[tokio::test]
async fn renamed_enum_values_and_changed_domains_roll_back_to_the_schema_before() {
    let db = TestDb::new("rb_types").await;
    let dir = native(&[
        (
            "0001_base.sql",
            "CREATE TYPE mood AS ENUM ('a', 'b');\n\
             CREATE DOMAIN pos AS int CHECK (VALUE > 0);\n\
             CREATE TABLE t (id int PRIMARY KEY, m mood DEFAULT 'a', p pos);\n\
             CREATE TABLE other (id int);\n",
        ),
        (
            "0002_rename.sql",
            "ALTER TYPE mood RENAME VALUE 'a' TO 'x';\n",
        ),
        ("0003_domain.sql", "ALTER DOMAIN pos SET DEFAULT 1;\n"),
    ]);
    let set = source::load(dir.path()).unwrap();
    migrate_to(&db, &set, Some("0001_base")).await;
    let base = schema(&db);
    migrate_to(&db, &set, Some("0002_rename")).await;
    let renamed = schema(&db);
    assert_ne!(renamed, base);
    migrate_to(&db, &set, None).await;
    let stored = rollback_sql_of(&db, "0003_domain").await.unwrap();
    assert!(
        stored.starts_with("-- generated by pgkeel from schema snapshots"),
        "{stored}"
    );
    roll_back(&db, &set, "0003_domain", false, false)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{stored}"));
    assert_eq!(schema(&db), renamed, "{stored}");
    roll_back(&db, &set, "0002_rename", false, false)
        .await
        .unwrap();
    assert_eq!(schema(&db), base);
}
