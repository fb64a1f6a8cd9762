//! Switching from another migration runner: a database the real tool migrated (dbmate, sqlx-cli,
//! the Supabase CLI and Prisma Migrate from their registries; golang-migrate, goose and Flyway
//! through their documented tables) is adopted by `migrate` with nothing re-applied, the tool's
//! table is kept in step on request so the tool can take back over, and a ledger that is dirty
//! or names a migration the folder lacks is refused. One fresh database per test.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use pgkeel::config::Settings;
use pgkeel::migrate::{MigrateError, MigrateOptions, MigrateReport, Migrator, Silent, State};
use pgkeel::rollback::{rollback, RollbackOptions};
use pgkeel::source::{self, Layout, MigrationSet};
use support::TestDb;

fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A tool installed by `scripts/setup.sh` into `tests/other-runners` (npm) or cargo's bin.
fn tool(name: &str) -> PathBuf {
    let npm = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/other-runners/node_modules/.bin")
        .join(name);
    let cargo = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_default()
        .join("bin")
        .join(name);
    [npm, cargo]
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} is not installed: run scripts/setup.sh"))
}

use support::run_tool as run;

fn no_ssl(url: &str) -> String {
    format!("{url}?sslmode=disable")
}

async fn migrate(settings: &Settings, set: &MigrationSet) -> Result<MigrateReport, MigrateError> {
    let client = support_client(settings).await;
    Migrator::new(settings, set)
        .migrate(&client, &MigrateOptions::default(), &mut Silent)
        .await
}

async fn support_client(settings: &Settings) -> tokio_postgres::Client {
    pgkeel::db::Target::from_settings(settings)
        .unwrap()
        .connect()
        .await
        .unwrap()
}

async fn states(settings: &Settings, set: &MigrationSet) -> Vec<State> {
    let client = support_client(settings).await;
    let plan = Migrator::new(settings, set).plan(&client).await.unwrap();
    plan.migrations.into_iter().map(|e| e.state).collect()
}

async fn strings(client: &tokio_postgres::Client, sql: &str) -> Vec<String> {
    client
        .query(sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Adopted with nothing run: every migration baselined, the audit row naming the tool.
async fn assert_adopted(db: &TestDb, set: &MigrationSet, tool: &str) {
    let settings = db.settings();
    let report = migrate(&settings, set).await.unwrap();
    assert!(report.applied.is_empty(), "{report:?}");
    assert_eq!(report.taken_over.len(), set.len(), "{report:?}");
    assert_eq!(report.taken_over_from.as_deref(), Some(tool));
    assert!(states(&settings, set)
        .await
        .iter()
        .all(|s| *s == State::Baselined));
    let client = db.client().await;
    let audit = strings(
        &client,
        "SELECT detail->>'tool' FROM __pgkeel_audit WHERE operation = 'takeover'",
    )
    .await;
    assert_eq!(audit, [tool]);
    let again = migrate(&settings, set).await.unwrap();
    assert!(again.applied.is_empty() && again.taken_over.is_empty());
}

fn keeping(db: &TestDb) -> Settings {
    let mut s = db.settings();
    s.keep_ledger_in_step = true;
    s
}

#[tokio::test]
async fn dbmate_database_is_adopted_then_kept_in_step_so_dbmate_can_take_back_over() {
    let db = TestDb::new("dbmate_adopt").await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db/migrations");
    write(&dir, "20240101000000_create_widget.sql", "-- migrate:up\nCREATE TABLE widget (id serial PRIMARY KEY, name text NOT NULL);\n\n-- migrate:down\nDROP TABLE widget;\n");
    write(&dir, "20240102000000_index-name.sql", "-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY widget_name ON widget (name);\n\n-- migrate:down\nDROP INDEX widget_name;\n");
    let dbmate = || {
        let mut c = Command::new(tool("dbmate"));
        c.args(["--url", &no_ssl(&db.url), "--migrations-dir"])
            .arg(&dir)
            .arg("--no-dump-schema");
        c
    };
    run(dbmate().arg("up"));
    let set = source::load(&dir).unwrap();
    assert_eq!(set.layout, Layout::Dbmate);
    assert_adopted(&db, &set, "dbmate").await;

    // A migration pgkeel applies shows in dbmate's table, and dbmate has nothing left to do.
    write(&dir, "20240103000000_add_qty.sql", "-- migrate:up\nALTER TABLE widget ADD COLUMN qty int;\n-- migrate:down\nALTER TABLE widget DROP COLUMN qty;\n");
    let set = source::load(&dir).unwrap();
    let keep = keeping(&db);
    assert_eq!(migrate(&keep, &set).await.unwrap().applied.len(), 1);
    assert!(run(dbmate().arg("status")).contains("Pending: 0"));
    // Rolled back by pgkeel, it is pending for dbmate again, which re-applies it.
    let client = db.client().await;
    rollback(
        &client,
        &keep,
        &set,
        "20240103000000_add_qty",
        &RollbackOptions::default(),
    )
    .await
    .unwrap();
    assert!(run(dbmate().arg("status")).contains("Pending: 1"));
    run(dbmate().arg("up"));
    let cols = strings(&client, "SELECT column_name::text FROM information_schema.columns WHERE table_name = 'widget' AND column_name = 'qty'").await;
    assert_eq!(cols, ["qty"]);
}

#[tokio::test]
async fn sqlx_database_is_adopted_kept_in_step_with_its_checksum_and_an_edit_is_refused() {
    let db = TestDb::new("sqlx_adopt").await;
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "Cargo.toml", "[package]\nname = \"app\"\n");
    let dir = tmp.path().join("migrations");
    write(
        &dir,
        "20240101000000_create-users.sql",
        "CREATE TABLE users (id bigint PRIMARY KEY, email text);\n",
    );
    write(
        &dir,
        "20240102000000_index_email.sql",
        "-- no-transaction\nCREATE INDEX CONCURRENTLY users_email ON users (email);\n",
    );
    let sqlx = |url: &str| {
        let mut c = Command::new(tool("sqlx"));
        c.args(["migrate", "run", "--source"])
            .arg(&dir)
            .args(["--database-url", url]);
        c
    };
    run(&mut sqlx(&db.url));
    let set = source::load(&dir).unwrap();
    assert_eq!(set.layout, Layout::Sqlx);
    assert!(set.migrations[1].directives.no_transaction);
    assert_adopted(&db, &set, "sqlx").await;

    write(
        &dir,
        "20240103000000_add_name.sql",
        "ALTER TABLE users ADD COLUMN name text;\n",
    );
    let set = source::load(&dir).unwrap();
    assert_eq!(migrate(&keeping(&db), &set).await.unwrap().applied.len(), 1);
    // sqlx finds its own row with its own checksum: nothing to apply, no mismatch.
    let out = run(&mut sqlx(&db.url));
    assert!(!out.contains("Applied"), "{out}");

    // On a database sqlx built from the old text, an edited file is shown modified, not trusted.
    let db2 = TestDb::new("sqlx_edited").await;
    run(&mut sqlx(&db2.url));
    write(
        &dir,
        "20240101000000_create-users.sql",
        "CREATE TABLE users (id bigint PRIMARY KEY, email text, extra int);\n",
    );
    let set = source::load(&dir).unwrap();
    let err = migrate(&db2.settings(), &set).await.unwrap_err();
    assert!(
        matches!(err, MigrateError::Modified { ref id, .. } if id == "20240101000000_create-users"),
        "{err}"
    );
}

#[tokio::test]
async fn supabase_cli_database_is_adopted_and_kept_in_step() {
    let db = TestDb::new("supabase_adopt").await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("supabase/migrations");
    write(
        &dir,
        "20240101000000_add-users.sql",
        "CREATE TABLE users (id uuid PRIMARY KEY);\nCOMMENT ON TABLE users IS 'a;b';\n",
    );
    write(
        &dir,
        "20240102000000_posts.sql",
        "CREATE TABLE posts (id int PRIMARY KEY, author uuid REFERENCES users);\n",
    );
    let supabase = || {
        let mut c = Command::new(tool("supabase"));
        c.args(["migration", "up", "--db-url", &no_ssl(&db.url)])
            .current_dir(tmp.path());
        c
    };
    run(&mut supabase());
    let set = source::load(&dir).unwrap();
    assert_eq!(set.layout, Layout::Supabase);
    assert_adopted(&db, &set, "Supabase CLI").await;

    write(
        &dir,
        "20240103000000_tags.sql",
        "CREATE TABLE tags (name text PRIMARY KEY);\n",
    );
    let set = source::load(&dir).unwrap();
    assert_eq!(migrate(&keeping(&db), &set).await.unwrap().applied.len(), 1);
    let client = db.client().await;
    let names = strings(
        &client,
        "SELECT name FROM supabase_migrations.schema_migrations ORDER BY version",
    )
    .await;
    assert_eq!(names, ["add-users", "posts", "tags"]);
    let out = run(&mut supabase());
    assert!(!out.contains("20240103000000_tags.sql"), "{out}");
}

#[tokio::test]
async fn prisma_database_with_names_that_are_not_timestamps_is_adopted_and_a_failed_row_refused() {
    let db = TestDb::new("prisma_adopt").await;
    let tmp = tempfile::tempdir().unwrap();
    let prisma_dir = tmp.path().join("prisma");
    write(
        &prisma_dir,
        "schema.prisma",
        "datasource db {\n  provider = \"postgresql\"\n  url = env(\"DATABASE_URL\")\n}\n",
    );
    let dir = prisma_dir.join("migrations");
    write(
        &dir,
        "migration_lock.toml",
        "# Please do not edit this file manually\nprovider = \"postgresql\"\n",
    );
    write(&dir, "01_init/migration.sql", "-- CreateTable\nCREATE TABLE \"User\" (\"id\" SERIAL NOT NULL, CONSTRAINT \"User_pkey\" PRIMARY KEY (\"id\"));\n");
    write(
        &dir,
        "20230101276000_hour_27/migration.sql",
        "ALTER TABLE \"User\" ADD COLUMN \"name\" TEXT;\n",
    );
    let runners = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/other-runners");
    let prisma = || {
        let mut c = Command::new(tool("prisma"));
        c.args(["migrate", "deploy", "--config"])
            .arg(runners.join("prisma.config.ts"))
            .env("DATABASE_URL", &db.url)
            .env("PGKEEL_PRISMA_DIR", &prisma_dir)
            .env("PRISMA_QUERY_ENGINE_LIBRARY", "/dev/null")
            .env("PRISMA_HIDE_UPDATE_MESSAGE", "1")
            .current_dir(tmp.path());
        c
    };
    run(&mut prisma());
    let set = source::load(&dir).unwrap();
    assert_eq!(set.layout, Layout::Prisma);
    assert_adopted(&db, &set, "Prisma Migrate").await;

    write(
        &dir,
        "20240101000000_posts/migration.sql",
        "CREATE TABLE \"Post\" (\"id\" SERIAL PRIMARY KEY);\n",
    );
    let set = source::load(&dir).unwrap();
    assert_eq!(migrate(&keeping(&db), &set).await.unwrap().applied.len(), 1);
    let out = run(&mut prisma());
    assert!(out.contains("No pending migrations"), "{out}");

    // A migration Prisma left unfinished: pgkeel says so and how to mend it, and changes nothing.
    let db2 = TestDb::new("prisma_failed").await;
    let client = db2.client().await;
    client
        .batch_execute(
            "CREATE TABLE _prisma_migrations (id varchar(36) PRIMARY KEY, checksum varchar(64) NOT NULL, \
             finished_at timestamptz, migration_name varchar(255) NOT NULL, logs text, rolled_back_at timestamptz, \
             started_at timestamptz NOT NULL DEFAULT now(), applied_steps_count int NOT NULL DEFAULT 0);
             INSERT INTO _prisma_migrations (id, checksum, migration_name) VALUES ('x', 'y', '01_init');",
        )
        .await
        .unwrap();
    let err = migrate(&db2.settings(), &set).await.unwrap_err();
    assert!(err.to_string().contains("prisma migrate resolve"), "{err}");
    assert!(strings(
        &client,
        "SELECT relname::text FROM pg_class WHERE relname = 'User'"
    )
    .await
    .is_empty());
}

/// golang-migrate's table as its postgres driver creates it.
const GOLANG_MIGRATE_DDL: &str =
    "CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL)";

#[tokio::test]
async fn golang_migrate_database_is_adopted_by_its_one_row_and_a_dirty_one_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(
        d,
        "000001_create-users.up.sql",
        "CREATE TABLE users (id int PRIMARY KEY);",
    );
    write(d, "000001_create-users.down.sql", "DROP TABLE users;");
    write(
        d,
        "000002_Add.Email.up.sql",
        "ALTER TABLE users ADD COLUMN email text;",
    );
    write(
        d,
        "000002_Add.Email.down.sql",
        "ALTER TABLE users DROP COLUMN email;",
    );
    write(
        d,
        "000003_index.up.sql",
        "CREATE INDEX users_email ON users (email);",
    );
    write(d, "000003_index.down.sql", "DROP INDEX users_email;");
    let set = source::load(d).unwrap();
    assert_eq!(set.layout, Layout::GolangMigrate);

    let db = TestDb::new("golang_migrate_adopt").await;
    let client = db.client().await;
    client
        .batch_execute(&format!(
            "{GOLANG_MIGRATE_DDL}; CREATE TABLE users (id int PRIMARY KEY); \
             ALTER TABLE users ADD COLUMN email text; INSERT INTO schema_migrations VALUES (2, false);"
        ))
        .await
        .unwrap();
    let keep = keeping(&db);
    let report = migrate(&keep, &set).await.unwrap();
    assert_eq!(
        report.taken_over,
        ["000001_create-users", "000002_Add.Email"]
    );
    assert_eq!(report.applied.len(), 1);
    let version = "SELECT version::text || ' ' || dirty::text FROM schema_migrations";
    assert_eq!(strings(&client, version).await, ["3 false"]);
    rollback(
        &client,
        &keep,
        &set,
        "000003_index",
        &RollbackOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(strings(&client, version).await, ["2 false"]);

    for (row, says) in [
        ("(2, true)", "failed halfway"),
        ("(7, false)", "no migration 7"),
    ] {
        let db = TestDb::new("golang_migrate_refused").await;
        let client = db.client().await;
        client
            .batch_execute(&format!(
                "{GOLANG_MIGRATE_DDL}; INSERT INTO schema_migrations VALUES {row};"
            ))
            .await
            .unwrap();
        let err = migrate(&db.settings(), &set).await.unwrap_err();
        assert!(matches!(err, MigrateError::Foreign(_)), "{err}");
        assert!(err.to_string().contains(says), "{err}");
        assert!(strings(
            &client,
            "SELECT relname::text FROM pg_class WHERE relname = 'users'"
        )
        .await
        .is_empty());
    }
}

#[tokio::test]
async fn goose_database_is_adopted_from_its_newest_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(
        d,
        "00001_users.sql",
        "-- +goose Up\nCREATE TABLE users (id int);\n-- +goose Down\nDROP TABLE users;\n",
    );
    write(d, "00002_fn.sql", "-- +goose Up\n-- +goose StatementBegin\nCREATE FUNCTION one() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql;\n-- +goose StatementEnd\n-- +goose Down\nDROP FUNCTION one();\n");
    write(d, "00003_more.sql", "-- +goose NO TRANSACTION\n-- +goose Up\nCREATE INDEX CONCURRENTLY users_id ON users (id);\n");
    let set = source::load(d).unwrap();
    assert_eq!(set.layout, Layout::Goose);
    let db = TestDb::new("goose_adopt").await;
    let client = db.client().await;
    // goose's table, its seed row, 1 and 2 applied; an old goose recorded 3's rollback.
    client
        .batch_execute(
            "CREATE TABLE goose_db_version (id integer PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, \
             version_id bigint NOT NULL, is_applied boolean NOT NULL, tstamp timestamp NOT NULL DEFAULT now());
             INSERT INTO goose_db_version (version_id, is_applied) VALUES (0, true), (1, true), (2, true), (3, true), (3, false);
             CREATE TABLE users (id int); CREATE FUNCTION one() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql;",
        )
        .await
        .unwrap();
    let report = migrate(&keeping(&db), &set).await.unwrap();
    assert_eq!(report.taken_over, ["00001_users", "00002_fn"]);
    assert_eq!(report.applied.len(), 1);
    let rows = strings(&client, "SELECT string_agg(version_id::text, ',' ORDER BY id) FROM goose_db_version WHERE is_applied").await;
    assert_eq!(rows, ["0,1,2,3,3"]);
}

#[tokio::test]
async fn flyway_history_with_a_baseline_and_a_changed_repeatable() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(
        d,
        "V1__init.sql",
        "CREATE TABLE widget (id serial PRIMARY KEY, name text NOT NULL);",
    );
    write(
        d,
        "V1.1__name_index.sql",
        "CREATE INDEX widget_name ON widget (name);\n",
    );
    write(d, "V2__qty.sql", "ALTER TABLE widget ADD COLUMN qty int;\n");
    write(
        d,
        "R__view.sql",
        "CREATE OR REPLACE VIEW widget_names AS SELECT name, qty FROM widget;\n",
    );
    let set = source::load(d).unwrap();
    assert_eq!(set.layout, Layout::Flyway);
    let db = TestDb::new("flyway_adopt").await;
    let client = db.client().await;
    // Baselined at 1, V1.1 applied by Flyway with its checksum; the view's row is of an older text.
    let checksum = pgkeel::foreign::flyway_checksum(&set.migrations[1].sql);
    client
        .batch_execute(&format!(
            "CREATE TABLE flyway_schema_history (installed_rank INT NOT NULL PRIMARY KEY, version VARCHAR(50), \
             description VARCHAR(200) NOT NULL, type VARCHAR(20) NOT NULL, script VARCHAR(1000) NOT NULL, checksum INTEGER, \
             installed_by VARCHAR(100) NOT NULL, installed_on TIMESTAMP NOT NULL DEFAULT now(), execution_time INTEGER NOT NULL, \
             success BOOLEAN NOT NULL);
             INSERT INTO flyway_schema_history VALUES
               (1, '1', '<< Flyway Baseline >>', 'BASELINE', '<< Flyway Baseline >>', NULL, 'me', now(), 0, true),
               (2, '1.1', 'name index', 'SQL', 'V1.1__name_index.sql', {checksum}, 'me', now(), 3, true),
               (3, NULL, 'view', 'SQL', 'R__view.sql', 12345, 'me', now(), 3, true);
             CREATE TABLE widget (id serial PRIMARY KEY, name text NOT NULL); CREATE INDEX widget_name ON widget (name);
             CREATE VIEW widget_names AS SELECT name FROM widget;"
        ))
        .await
        .unwrap();
    let report = migrate(&keeping(&db), &set).await.unwrap();
    assert_eq!(report.taken_over, ["V1__init", "V1.1__name_index"]);
    let applied: Vec<&str> = report.applied.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(
        applied,
        ["V2__qty", "R__view"],
        "the changed repeatable runs again"
    );
    let history = strings(&client, "SELECT string_agg(coalesce(version, script), ',' ORDER BY installed_rank) FROM flyway_schema_history WHERE success").await;
    assert_eq!(history, ["1,1.1,R__view.sql,2,R__view.sql"]);
    // The same file again is not re-run; an edit of it is.
    let set = source::load(d).unwrap();
    assert!(migrate(&db.settings(), &set)
        .await
        .unwrap()
        .applied
        .is_empty());
    write(
        d,
        "R__view.sql",
        "CREATE OR REPLACE VIEW widget_names AS SELECT name, qty, id FROM widget;\n",
    );
    let set = source::load(d).unwrap();
    let again = migrate(&db.settings(), &set).await.unwrap();
    assert_eq!(again.applied.len(), 1);
}

/// A database pgkeel already migrates may share its server database with an unrelated sqlx
/// application: its `_sqlx_migrations` must not make pgkeel's own folder fail.
#[tokio::test]
async fn another_apps_ledger_beside_a_pgkeel_database_is_left_alone() {
    let db = TestDb::new("foreign_unrelated").await;
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "0001_users.sql", "CREATE TABLE users (id int);");
    let set = source::load(tmp.path()).unwrap();
    assert_eq!(set.layout, Layout::Native);
    assert_eq!(
        migrate(&db.settings(), &set).await.unwrap().applied.len(),
        1
    );
    db.client()
        .await
        .batch_execute(
            "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
             installed_on TIMESTAMPTZ NOT NULL DEFAULT now(), success BOOLEAN NOT NULL, \
             checksum BYTEA NOT NULL, execution_time BIGINT NOT NULL);
             INSERT INTO _sqlx_migrations VALUES (20240101000000, 'other app', now(), true, '\\x00', 1);",
        )
        .await
        .unwrap();
    write(tmp.path(), "0002_posts.sql", "CREATE TABLE posts (id int);");
    let set = source::load(tmp.path()).unwrap();
    let report = migrate(&db.settings(), &set).await.unwrap();
    assert_eq!(report.applied.len(), 1);
    assert!(report.taken_over.is_empty());
}
