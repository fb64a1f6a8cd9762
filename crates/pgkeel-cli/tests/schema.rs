//! `pgkeel schema dump|diff` end to end: stable JSON, SQL that restores, exit codes that tell
//! "no differences" from "differences", a migrations folder as one side, the insta snapshot of
//! the human diff.

#[path = "../../pgkeel/tests/support/mod.rs"]
mod support;

mod cli_support;

use cli_support::pgkeel;

use support::TestDb;

async fn exec(db: &TestDb, sql: &str) {
    db.client().await.batch_execute(sql).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dump_json_is_stable_and_dump_sql_restores_to_the_same_schema() {
    let a = TestDb::new("cli_schema_dump").await;
    let b = TestDb::new("cli_schema_restore").await;
    exec(
        &a,
        "CREATE TYPE \"Mood\" AS ENUM ('ok', 'meh');
         CREATE TABLE \"User\" (id int PRIMARY KEY, \"select\" text, m \"Mood\");
         CREATE VIEW v AS SELECT id FROM \"User\";",
    )
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let dump = |url: &str, format: &str| {
        pgkeel(tmp.path())
            .args(["--database-url", url, "--format", format, "schema", "dump"])
            .assert()
            .code(0)
            .get_output()
            .stdout
            .clone()
    };
    let j1 = dump(&a.url, "json");
    assert_eq!(j1, dump(&a.url, "json"), "two dumps differ");
    let sql = String::from_utf8(dump(&a.url, "sql")).unwrap();
    assert!(sql.contains("CREATE TABLE \"public\".\"User\""), "{sql}");
    exec(&b, &sql).await;
    assert_eq!(dump(&b.url, "json"), j1, "the restored schema differs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_exit_code_says_whether_schemas_differ() {
    let a = TestDb::new("cli_schema_diff_a").await;
    let b = TestDb::new("cli_schema_diff_b").await;
    exec(&a, "CREATE TABLE t (id int);").await;
    exec(&b, "CREATE TABLE t (id int, note text);").await;
    let tmp = tempfile::tempdir().unwrap();
    // Same database on both sides: no differences, exit 0.
    pgkeel(tmp.path())
        .args(["schema", "diff", "--from", &a.url, "--to", &a.url])
        .assert()
        .code(0)
        .stdout(predicates::str::contains("no differences"));
    // Differences: exit 1, JSON with the change and its hazards.
    let out = pgkeel(tmp.path())
        .args([
            "--format", "json", "schema", "diff", "--from", &a.url, "--to", &b.url,
        ])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["identical"], false);
    assert_eq!(v["ok"], false, "ok follows the exit code");
    assert_eq!(
        v["changes"][0]["sql"],
        "ALTER TABLE \"public\".\"t\" ADD COLUMN \"note\" text;"
    );
    assert_eq!(v["changes"][0]["hazards"][0], "access_exclusive_lock");
    // The human output groups by table.
    let human = pgkeel(tmp.path())
        .args(["schema", "diff", "--from", &a.url, "--to", &b.url])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let human = String::from_utf8(human)
        .unwrap()
        .replace(&a.url, "<A>")
        .replace(&b.url, "<B>");
    insta::assert_snapshot!("schema_diff_human", human);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_from_a_migrations_folder_uses_a_scratch_database() {
    let db = TestDb::new("cli_schema_folder").await;
    exec(&db, "CREATE TABLE users (id int PRIMARY KEY);").await;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("migrations")).unwrap();
    std::fs::write(
        tmp.path().join("migrations/0001_users.sql"),
        "CREATE TABLE users (id int PRIMARY KEY);\n",
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("migrations/0002_email.sql"),
        "ALTER TABLE users ADD COLUMN email text;\n",
    )
    .unwrap();
    let out = pgkeel(tmp.path())
        .args([
            "--database-url",
            &db.url,
            "--format",
            "sql",
            "schema",
            "diff",
            "--from",
            "migrations",
        ])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    // From the folder (with email) to the live database (without): drop the column.
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "ALTER TABLE \"public\".\"users\" DROP COLUMN \"email\";\n"
    );
}

#[test]
fn a_file_that_is_not_a_snapshot_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("x.json"), "{}").unwrap();
    pgkeel(tmp.path())
        .args(["schema", "diff", "--from", "x.json", "--to", "x.json"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("schema dump --format json"));
}
