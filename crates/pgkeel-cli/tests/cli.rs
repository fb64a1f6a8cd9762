//! End-to-end tests of the `pgkeel` binary: exit codes, JSON output, error messages, and that no
//! secret is ever printed. Real PostgreSQL, one fresh database per test.

#[path = "../../pgkeel/tests/support/mod.rs"]
mod support;

mod cli_support;

use cli_support::{example_dir, json, pgkeel};
use std::path::Path;

use assert_cmd::Command;
use predicates::prelude::*;
use support::TestDb;

/// A temp project with one migration in `migrations/`.
fn project() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("migrations")).unwrap();
    std::fs::write(
        tmp.path().join("migrations/0001_init.sql"),
        "CREATE TABLE t (id int);\n",
    )
    .unwrap();
    tmp
}

#[tokio::test]
async fn migrate_and_status_json_have_the_documented_fields() {
    let db = TestDb::new("cli_json").await;
    let tmp = tempfile::tempdir().unwrap();
    let out = pgkeel(tmp.path())
        .env("DATABASE_URL", &db.url)
        .args(["migrate", "--format", "json", "--migrations"])
        .arg(example_dir())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let doc = json(&out);
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["dry_run"], false);
    let applied = doc["applied"].as_array().unwrap();
    assert_eq!(applied.len(), 5);
    for a in applied {
        assert!(
            a["id"].is_string() && a["duration_ms"].is_u64() && a["statements"].is_u64(),
            "{a}"
        );
    }
    assert_eq!(doc["counts"]["applied"], 5);
    assert_eq!(doc["counts"]["pending"], 0);

    let out = pgkeel(tmp.path())
        .env("DATABASE_URL", &db.url)
        .args(["status", "--format", "json", "--migrations"])
        .arg(example_dir())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let doc = json(&out);
    assert_eq!(doc["layout"], "drizzle-journal");
    let ms = doc["migrations"].as_array().unwrap();
    assert_eq!(ms.len(), 5);
    assert!(ms.iter().all(|m| m["state"] == "applied"
        && m["applied_at"].is_string()
        && m["file_hash"] == m["ledger_hash"]));
    assert!(ms.iter().any(|m| m["id"] == "0003_slim_warhawk"));
    assert!(
        doc["database"]
            .as_str()
            .unwrap()
            .starts_with("postgresql://postgres@127.0.0.1"),
        "{}",
        doc["database"]
    );

    // Second run: nothing to do, still exit 0.
    pgkeel(tmp.path())
        .env("DATABASE_URL", &db.url)
        .args(["migrate", "--migrations"])
        .arg(example_dir())
        .assert()
        .success()
        .stdout(predicate::str::contains("nothing to do"));
}

#[tokio::test]
async fn modified_file_exits_with_findings_code_and_names_both_hashes() {
    let db = TestDb::new("cli_modified").await;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("migrations")).unwrap();
    let file = tmp.path().join("migrations/0001_init.sql");
    std::fs::write(&file, "CREATE TABLE t (id int);\n").unwrap();
    pgkeel(tmp.path())
        .env("DATABASE_URL", &db.url)
        .arg("migrate")
        .assert()
        .success();
    std::fs::write(&file, "CREATE TABLE t (id bigint);\n").unwrap();
    pgkeel(tmp.path())
        .env("DATABASE_URL", &db.url)
        .arg("migrate")
        .assert()
        .code(1)
        .stderr(
            predicate::str::contains("0001_init")
                .and(predicate::str::contains("the SQL itself changed")),
        );
    pgkeel(tmp.path())
        .env("DATABASE_URL", &db.url)
        .args(["migrate", "validate"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("modified: 0001_init"));
}

#[test]
fn syntax_error_is_reported_with_file_line_column_before_connecting() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("migrations");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("0001_ok.sql"), "CREATE TABLE a (id int);\n").unwrap();
    std::fs::write(
        dir.join("0002_bad.sql"),
        "CREATE TABLE b (\n  id int,,\n  x int\n);\n",
    )
    .unwrap();
    // --offline: no database at all, so the error must come from the files alone.
    pgkeel(tmp.path())
        .args(["migrate", "validate", "--offline"])
        .assert()
        .code(1)
        .stdout(
            predicate::str::contains("0002_bad.sql:2:10")
                .and(predicate::str::contains("  id int,,"))
                .and(predicate::str::contains("|          ^")),
        );
}

#[test]
fn data_losing_migration_without_rollback_warns_but_passes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("migrations");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("0001_init.sql"), "CREATE TABLE a (id int);\n").unwrap();
    std::fs::write(dir.join("0002_drop.sql"), "DROP TABLE a;\n").unwrap();
    pgkeel(tmp.path())
        .args(["migrate", "validate", "--offline"])
        .assert()
        .code(0)
        .stdout(
            predicate::str::contains("warning: no_rollback: 0002_drop: loses data")
                .and(predicate::str::contains("1 warning(s)")),
        );
    let out = pgkeel(tmp.path())
        .args(["migrate", "validate", "--offline", "--format", "json"])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["problems"][0]["kind"], "no_rollback");
    assert_eq!(v["problems"][0]["severity"], "warning");
}

#[test]
fn missing_folder_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    pgkeel(tmp.path())
        .args(["migrate", "validate", "--offline", "--migrations", "nope"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("nope"));
}

#[test]
fn an_ambiguous_folder_names_the_candidates_and_layout_chooses() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("migrations/20240101000000_init");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("migration.sql"), "CREATE TABLE t (a int);").unwrap();
    pgkeel(tmp.path())
        .args(["migrate", "validate", "--offline"])
        .assert()
        .code(1)
        .stderr(
            predicate::str::contains("drizzle-folders")
                .and(predicate::str::contains("prisma"))
                .and(predicate::str::contains("--layout")),
        );
    pgkeel(tmp.path())
        .args(["migrate", "validate", "--offline", "--layout", "prisma"])
        .assert()
        .success();
    pgkeel(tmp.path())
        .args(["migrate", "validate", "--offline", "--layout", "rails"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("golang-migrate"));
}

#[test]
fn password_is_never_printed_on_connection_failure() {
    let tmp = project();
    pgkeel(tmp.path())
        .env(
            "DATABASE_URL",
            "postgresql://app:hunter2secret@127.0.0.1:1/prod",
        )
        .args(["status", "--format", "json"])
        .assert()
        .code(3)
        .stderr(
            predicate::str::contains("hunter2secret")
                .not()
                .and(predicate::str::contains("app:***@127.0.0.1:1/prod")),
        )
        .stdout(
            predicate::str::contains("hunter2secret")
                .not()
                .and(predicate::str::contains("\"exit_code\": 3")),
        );
}

#[test]
fn malformed_url_is_a_usage_error_without_the_password() {
    let tmp = project();
    pgkeel(tmp.path())
        .env(
            "DATABASE_URL",
            "postgresql://app:hunter2secret@host:notaport/db",
        )
        .arg("status")
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("hunter2secret")
                .not()
                .and(predicate::str::contains("invalid database URL")),
        );
}

#[test]
fn connect_timeout_is_honoured() {
    let tmp = project();
    // A server that accepts the TCP connection and never answers: only the timeout ends the wait.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let held: Vec<_> = listener.incoming().take(4).collect();
        std::thread::sleep(std::time::Duration::from_secs(60));
        drop(held);
    });
    let started = std::time::Instant::now();
    pgkeel(tmp.path())
        .env(
            "DATABASE_URL",
            format!("postgresql://app@127.0.0.1:{port}/db"),
        )
        .env("DATABASE_CONNECTION_TIMEOUT", "1000")
        .arg("status")
        .assert()
        .code(3)
        .stderr(predicate::str::contains("timed out after"));
    assert!(
        started.elapsed().as_secs() < 10,
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn no_database_configured_says_what_to_set() {
    let tmp = project();
    pgkeel(tmp.path())
        .arg("status")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("DATABASE_URL"));
}

#[tokio::test]
async fn missing_privilege_is_named() {
    let db = TestDb::new("cli_priv").await;
    let client = db.client().await;
    let role = format!("{}_ro", db.name());
    client
        .batch_execute(&format!("DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN; REVOKE CREATE ON SCHEMA public FROM PUBLIC;"))
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("migrations")).unwrap();
    std::fs::write(
        tmp.path().join("migrations/0001_init.sql"),
        "CREATE TABLE t (id int);\n",
    )
    .unwrap();
    let url = db.url.replacen("postgres@", &format!("{role}@"), 1);
    pgkeel(tmp.path())
        .env("DATABASE_URL", &url)
        .arg("migrate")
        .assert()
        .code(4)
        .stderr(
            predicate::str::contains("permission denied for schema public")
                .and(predicate::str::contains("42501")),
        );
    drop(client);
    let client = db.client().await;
    client
        .batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role};"))
        .await
        .unwrap();
}

#[test]
fn config_shows_sources_and_redacts_secrets() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("pgkeel.toml"), "pool-size = 7\n").unwrap();
    std::fs::write(
        tmp.path().join(".env"),
        "DATABASE_URL=postgresql://u:dotenvsecret@h/db\n",
    )
    .unwrap();
    let out = pgkeel(tmp.path())
        .env("DATABASE_CONNECTION_TIMEOUT", "1234")
        .args(["config", "--format", "json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8_lossy(&out);
    assert!(!text.contains("dotenvsecret"), "{text}");
    let doc = json(&out);
    let entries = doc["settings"].as_array().unwrap();
    let find = |k: &str| {
        entries
            .iter()
            .find(|e| e["key"] == k)
            .unwrap_or_else(|| panic!("no {k} in {text}"))
            .clone()
    };
    assert!(find("pool-size")["value"].as_str().unwrap().contains('7'));
    assert!(find("database-url")["value"]
        .as_str()
        .unwrap()
        .contains("u:***@h"));
    assert!(find("connect-timeout")["value"]
        .as_str()
        .unwrap()
        .contains("1234"));
    // A setting with no value is null, not the text "(not set)".
    assert!(find("sslrootcert")["value"].is_null(), "{text}");
}

/// A drizzle project as drizzle-kit 0.31 sets it up: pgkeel reads drizzle.config.ts (no flags,
/// no pgkeel.toml), shows where each value came from, says once what it cannot evaluate, never
/// prints the URL's password, and `new` names the file the way the config's prefix says.
#[test]
fn a_drizzle_project_is_read_from_drizzle_config_ts_with_no_flags() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("drizzle.config.ts"),
        "import { defineConfig } from \"drizzle-kit\";\n\
         export default defineConfig({\n  schema: \"./src/db/schema.ts\",\n  \
         out: \"./src/db/migrations\",\n  dialect: \"postgresql\",\n  \
         migrations: { schema: \"public\", prefix: \"timestamp\" },\n  \
         tablesFilter: [`app_${process.env.TENANT}`],\n  \
         dbCredentials: { url: process.env.POSTGRES_URL! },\n});\n",
    )
    .unwrap();
    let dir = tmp.path().join("src/db/migrations");
    std::fs::create_dir_all(dir.join("meta")).unwrap();
    std::fs::write(
        dir.join("meta/_journal.json"),
        r#"{"version":"7","dialect":"postgresql","entries":[]}"#,
    )
    .unwrap();
    let out = pgkeel(tmp.path())
        .env(
            "POSTGRES_URL",
            "postgresql://app:drizzlesecret@db.internal/app",
        )
        .args(["config", "--format", "json"])
        .assert()
        .success()
        .get_output()
        .clone();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        !stdout.contains("drizzlesecret") && !stderr.contains("drizzlesecret"),
        "{stdout}{stderr}"
    );
    assert_eq!(
        stderr.matches("tablesFilter").count(),
        1,
        "said once: {stderr}"
    );
    let doc = json(&out.stdout);
    let entry = |k: &str| {
        doc["settings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["key"] == k)
            .unwrap_or_else(|| panic!("no {k} in {stdout}"))
            .clone()
    };
    assert_eq!(entry("migrations")["origin"]["kind"], "drizzle");
    assert_eq!(entry("database-url")["origin"]["var"], "POSTGRES_URL");
    assert!(entry("database-url")["value"]
        .as_str()
        .unwrap()
        .contains("app:***@db.internal"));
    assert_eq!(entry("drizzle.schema")["value"], "public");
    assert_eq!(entry("ledger.table")["value"], "__pgkeel_migrations");
    assert_eq!(
        entry("ledger.table")["origin"]["avoids"],
        "public.__drizzle_migrations"
    );

    pgkeel(tmp.path())
        .args(["new", "add posts"])
        .assert()
        .success();
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".sql"))
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(
        names[0].len() == "20261203101500_add_posts.sql".len()
            && names[0].ends_with("_add_posts.sql"),
        "{names:?}"
    );
}

#[test]
fn new_creates_the_next_native_file() {
    let tmp = tempfile::tempdir().unwrap();
    pgkeel(tmp.path())
        .args(["new", "create users"])
        .assert()
        .success();
    pgkeel(tmp.path())
        .args(["new", "add-roles"])
        .assert()
        .success();
    let mut names: Vec<_> = std::fs::read_dir(tmp.path().join("migrations"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["0001_create_users.sql", "0002_add_roles.sql"]);
}

/// `pgkeel rollback` end to end: refused under later migrations (usage/validation exit code
/// naming them), dry run changes nothing, `--cascade` rolls back newest first, `status` shows it
/// and `migrate` re-applies.
#[tokio::test]
async fn rollback_refuses_then_cascades_and_migrate_reapplies() {
    let db = TestDb::new("cli_rollback").await;
    let tmp = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let mut cmd = pgkeel(tmp.path());
        cmd.env("DATABASE_URL", &db.url)
            .arg("--migrations")
            .arg(example_dir())
            .args(args);
        cmd
    };
    run(&["migrate"]).assert().success();

    let refused = run(&["rollback", "0003_slim_warhawk"]).assert().failure();
    let stderr = String::from_utf8_lossy(&refused.get_output().stderr).into_owned();
    assert!(stderr.contains("0004_happy_banshee"), "{stderr}");
    assert!(stderr.contains("--cascade"), "{stderr}");
    assert_ne!(refused.get_output().status.code(), Some(70), "{stderr}");

    let dry = run(&["rollback", "0003_slim_warhawk", "--cascade", "--dry-run"])
        .assert()
        .success();
    let out = String::from_utf8_lossy(&dry.get_output().stdout).into_owned();
    let (i4, i3) = (
        out.find("rollback of 0004_happy_banshee").expect(&out),
        out.find("rollback of 0003_slim_warhawk").expect(&out),
    );
    assert!(i4 < i3, "newest first:\n{out}");
    assert!(out.contains("nothing was changed"), "{out}");
    let status = |cmd: &mut Command| {
        json(&cmd.assert().success().get_output().stdout.clone())["counts"].clone()
    };
    assert_eq!(
        status(&mut run(&["status", "--format", "json"]))["rolled_back"],
        0
    );

    let done = run(&[
        "rollback",
        "0003_slim_warhawk",
        "--cascade",
        "--format",
        "json",
    ])
    .assert()
    .success();
    let v = json(&done.get_output().stdout);
    let ids: Vec<&str> = v["rolled_back"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["0004_happy_banshee", "0003_slim_warhawk"]);
    assert_eq!(
        status(&mut run(&["status", "--format", "json"]))["rolled_back"],
        2
    );

    let again = run(&["migrate", "--format", "json"]).assert().success();
    assert_eq!(
        json(&again.get_output().stdout)["applied"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        status(&mut run(&["status", "--format", "json"]))["rolled_back"],
        0
    );
}

/// `pgkeel validate`: the spec's report file (a second run the same day gets a suffix, never
/// overwriting), the JSON shape, and the exit code following `--fail-on`.
#[tokio::test]
async fn validate_writes_dated_reports_and_exits_by_fail_on() {
    let db = TestDb::new("cli_validate").await;
    db.client()
        .await
        .batch_execute(
            "CREATE TABLE a (id int PRIMARY KEY);
             CREATE TABLE b (id int PRIMARY KEY, a_id int REFERENCES a);",
        )
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let mut cmd = pgkeel(tmp.path());
        cmd.env("DATABASE_URL", &db.url).arg("validate").args(args);
        cmd
    };
    // An unindexed foreign key is a warning: below the default --fail-on critical.
    let out = run(&["--format", "json"]).assert().code(0);
    let v = json(&out.get_output().stdout);
    for key in [
        "started_at",
        "database",
        "server_version",
        "duration_ms",
        "sections",
        "counts",
        "findings",
        "checks",
    ] {
        assert!(v.get(key).is_some(), "{key} missing: {v}");
    }
    assert_eq!(v["counts"]["warning"], 1, "{v}");
    assert_eq!(v["findings"][0]["id"], "fk-without-index");
    assert_eq!(v["findings"][0]["severity"], "warning");

    run(&["--fail-on", "warning"]).assert().code(1).stdout(
        predicate::str::contains("WARNING (1)").and(predicate::str::contains(
            "fix: CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_b_a_id ON public.b (a_id);",
        )),
    );

    let day = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let reports = tmp.path().join("reports");
    let first = reports.join(format!("validation-{day}.json"));
    let second = reports.join(format!("validation-{day}-2.json"));
    assert!(
        first.is_file() && second.is_file(),
        "{:?}",
        std::fs::read_dir(&reports).unwrap().collect::<Vec<_>>()
    );
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&first).unwrap()).unwrap();
    assert_eq!(saved["findings"], v["findings"]);
    assert!(!saved["database"].as_str().unwrap().is_empty());

    run(&["--no-report", "--performance"]).assert().code(0);
    assert_eq!(std::fs::read_dir(&reports).unwrap().count(), 2);
}

/// `pgkeel lint`: rustc-style human output (snapshot), exit code by `--fail-on`, JSON, GitHub
/// annotations. No database needed.
#[test]
fn lint_reports_rustc_style_json_and_github_annotations() {
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let files = [
        "fixtures/lint/0001_unsafe.sql",
        "fixtures/lint/0002_safe.sql",
        "fixtures/lint/0003_suppressions.sql",
    ];
    let run = |extra: &[&str]| {
        let mut cmd = pgkeel(&tests);
        cmd.args(["lint", "--pg-version", "15"])
            .args(extra)
            .args(files);
        cmd
    };
    let out = run(&[]).assert().code(1);
    let human = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    insta::assert_snapshot!("lint_human", human);

    let safe = pgkeel(&tests)
        .args(["lint", "fixtures/lint/0002_safe.sql"])
        .assert()
        .code(0);
    assert!(String::from_utf8_lossy(&safe.get_output().stdout).contains("0 error(s), 0 warning(s)"));

    let out = run(&["--format", "json"]).assert().code(1);
    let v = json(&out.get_output().stdout);
    assert_eq!(v["ok"], false);
    assert_eq!(v["pg_version"], 150000);
    let rules: Vec<&str> = v["reports"][0]["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["rule"].as_str().unwrap())
        .collect();
    assert_eq!(
        rules,
        [
            "require-concurrent-index",
            "constraint-without-not-valid",
            "volatile-default",
            "set-not-null",
            "prefer-bigint",
            "prefer-timestamptz",
            "prefer-jsonb"
        ]
    );
    let first = &v["reports"][0]["violations"][0];
    assert_eq!(
        (first["line"].as_u64(), first["column"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(first["severity"], "critical");

    let out = run(&["--github"]).assert().code(1);
    let gh = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(
        gh.lines().any(|l| l.starts_with("::error file=fixtures/lint/0001_unsafe.sql,line=2,col=1,title=require-concurrent-index::")),
        "{gh}"
    );
    assert!(gh.contains("::warning file=fixtures/lint/0003_suppressions.sql,line=1,col=1,title=unused-suppression::"), "{gh}");
}

#[tokio::test]
async fn stray_file_beside_the_journal_is_a_warning_and_the_rest_migrates() {
    let db = TestDb::new("cli_stray").await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("drizzle");
    std::fs::create_dir_all(dir.join("meta")).unwrap();
    std::fs::write(
        dir.join("meta/_journal.json"),
        r#"{"version":"7","dialect":"postgresql","entries":[{"idx":0,"version":"7","when":1700000000000,"tag":"0000_init","breakpoints":true}]}"#,
    )
    .unwrap();
    std::fs::write(dir.join("0000_init.sql"), "CREATE TABLE t (id int);").unwrap();
    // A real project's leftover: drizzle-orm never runs it.
    std::fs::write(dir.join("0001_old_idea.sql"), "DROP TABLE t;").unwrap();

    pgkeel(tmp.path())
        .args(["migrate", "validate", "--offline", "--migrations"])
        .arg(&dir)
        .assert()
        .success()
        .stdout(
            predicate::str::contains("0001_old_idea.sql")
                .and(predicate::str::contains("drizzle-orm never runs it")),
        );
    pgkeel(tmp.path())
        .env("DATABASE_URL", &db.url)
        .args(["migrate", "--migrations"])
        .arg(&dir)
        .assert()
        .success()
        .stderr(
            predicate::str::contains("warning: ").and(predicate::str::contains(
                "0001_old_idea.sql is not listed in the drizzle journal",
            )),
        );
    pgkeel(tmp.path())
        .env("DATABASE_URL", &db.url)
        .args(["status", "--migrations"])
        .arg(&dir)
        .assert()
        .success()
        .stderr(predicate::str::contains("0001_old_idea.sql"));
    let client = db.client().await;
    let t: bool = client
        .query_one("SELECT to_regclass('t') IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert!(t, "the stray DROP TABLE never ran");
}

#[tokio::test]
async fn validate_schema_whose_expected_folder_fails_is_an_error_not_connection_lost() {
    let db = TestDb::new("cli_validate_expected_fails").await;
    let tmp = tempfile::tempdir().unwrap();
    let expected = tmp.path().join("expected");
    std::fs::create_dir(&expected).unwrap();
    std::fs::write(
        expected.join("0001_bad.sql"),
        "CREATE TABLE t (id int);\nSELECT 1/0;\n",
    )
    .unwrap();
    let out = pgkeel(tmp.path())
        .env("DATABASE_URL", &db.url)
        .args(["validate", "--schema", "--no-report", "--expected"])
        .arg(&expected)
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("error drift"), "{text}");
    assert!(text.contains("division by zero"), "{text}");
    assert!(!text.contains("connection lost"), "{text}");
}

/// Runs `pgkeel args` with its stdout a pipe that is closed at once, as `| head -0` does.
fn with_closed_stdout(cwd: &Path, args: &[&str]) -> (Option<i32>, String) {
    use std::process::{Command as Std, Stdio};
    let mut child = Std::new(assert_cmd::cargo::cargo_bin("pgkeel"))
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn lint_to_a_closed_pipe_exits_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("migrations");
    std::fs::create_dir(&dir).unwrap();
    // Enough findings that the output cannot fit in the pipe's buffer before it is seen closed.
    for i in 1..=300 {
        std::fs::write(
            dir.join(format!("{i:04}_m.sql")),
            format!("CREATE TABLE t{i} (id serial PRIMARY KEY, j json, c char(3));\nCREATE INDEX i{i} ON t{i} (c);\n"),
        )
        .unwrap();
    }
    for args in [
        &["lint", "--migrations", "migrations"][..],
        &["lint", "--migrations", "migrations", "--format", "json"][..],
        &["config"][..],
    ] {
        let (code, stderr) = with_closed_stdout(tmp.path(), args);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(code, Some(0), "{args:?}: {stderr}");
    }
}

#[test]
fn the_cli_sends_no_sql_of_its_own() {
    // The binary parses flags, calls the library and renders: queries live in the library.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stack = vec![src];
    let mut offenders = Vec::new();
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (i, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                if [
                    ".query(",
                    ".query_one(",
                    ".query_opt(",
                    ".batch_execute(",
                    ".simple_query(",
                    ".execute(",
                ]
                .iter()
                .any(|call| code.contains(call))
                {
                    offenders.push(format!("{}:{}: {}", path.display(), i + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "SQL sent from the CLI:\n{}",
        offenders.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_counts_a_rolled_back_migration_as_to_apply_as_migrate_does() {
    let db = TestDb::new("cli_status_to_apply").await;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("migrations")).unwrap();
    std::fs::write(
        tmp.path().join("migrations/0001_t.sql"),
        "CREATE TABLE t (id int);\n",
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("migrations/0001_t.down.sql"),
        "DROP TABLE t;\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        pgkeel(tmp.path())
            .env("DATABASE_URL", &db.url)
            .args(args)
            .assert()
            .success()
            .get_output()
            .stdout
            .clone()
    };
    run(&["migrate"]);
    run(&["rollback", "0001_t"]);
    let out = String::from_utf8(run(&["status"])).unwrap();
    assert!(
        out.contains("0 applied, 1 to apply (0 pending, 0 failed, 1 rolled back)"),
        "{out}"
    );
    // The same notion as migrate's: the rolled-back migration is what it applies next.
    let out = String::from_utf8(run(&["migrate", "--dry-run"])).unwrap();
    assert!(out.contains("0001_t (1 statement)"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_lints_for_the_servers_version_as_lint_does() {
    let db = TestDb::new("cli_test_pgver").await;
    let server: i32 = db
        .client()
        .await
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await
        .unwrap()
        .get(0);
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("migrations")).unwrap();
    std::fs::write(
        tmp.path().join("migrations/0001_t.sql"),
        "CREATE TABLE t (id int);\n",
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("migrations/0001_t.down.sql"),
        "DROP TABLE t;\n",
    )
    .unwrap();
    let version = |args: &[&str], key: &str| {
        let out = pgkeel(tmp.path())
            .env("DATABASE_URL", &db.url)
            .args(args)
            .args(["--format", "json"])
            .assert()
            .get_output()
            .stdout
            .clone();
        json(&out)[key].as_u64().unwrap()
    };
    // One rule: the configured server's version (it was 17 for test, whatever the server).
    assert_eq!(
        version(&["test", "--no-report"], "lint_pg_version"),
        server as u64
    );
    assert_eq!(version(&["lint"], "pg_version"), server as u64);
    assert_eq!(
        version(
            &["test", "--no-report", "--pg-version", "16"],
            "lint_pg_version"
        ),
        160000
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_names_the_rollback_file_of_a_lint_finding() {
    let db = TestDb::new("cli_test_downlint").await;
    let tmp = tempfile::tempdir().unwrap();
    let m = tmp.path().join("migrations");
    std::fs::create_dir(&m).unwrap();
    std::fs::write(m.join("0001_a.sql"), "CREATE TABLE t (id int);\n").unwrap();
    std::fs::write(m.join("0001_a.down.sql"), "DROP TABLE t;\n").unwrap();
    std::fs::write(m.join("0002_b.sql"), "ALTER TABLE t ADD COLUMN v int;\n").unwrap();
    // A blocking index build on an existing table, in the rollback file.
    std::fs::write(
        m.join("0002_b.down.sql"),
        "CREATE INDEX t_id_idx ON t (id);\nALTER TABLE t DROP COLUMN v;\n",
    )
    .unwrap();
    let out = pgkeel(tmp.path())
        .env("DATABASE_URL", &db.url)
        .args(["test", "--no-report"])
        .assert()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8_lossy(&out);
    let line = cli_support::line_where(&text, |l| l.contains("require-concurrent-index"));
    assert!(line.contains("0002_b.down.sql:1:"), "{line}");
}

#[test]
fn a_usage_error_in_json_mode_is_a_json_document_on_stdout() {
    let tmp = tempfile::tempdir().unwrap();
    let out = pgkeel(tmp.path())
        .args(["--format", "json", "migrate", "--no-such-flag"])
        .assert()
        .code(2)
        .get_output()
        .clone();
    let doc = json(&out.stdout);
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["exit_code"], 2);
    assert!(
        doc["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--no-such-flag"),
        "{doc}"
    );
    // Without --format json, stdout stays empty and the text goes to stderr.
    let out = pgkeel(tmp.path())
        .args(["migrate", "--no-such-flag"])
        .assert()
        .code(2)
        .get_output()
        .clone();
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--no-such-flag"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_shows_the_users_sql_and_pgkeels_guard_only_with_v() {
    let db = TestDb::new("cli_dry_guard").await;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("migrations")).unwrap();
    std::fs::write(
        tmp.path().join("migrations/0001_t.sql"),
        "CREATE TABLE t (id int);\n",
    )
    .unwrap();
    let dry = |verbose: bool| {
        let mut c = pgkeel(tmp.path());
        c.env("DATABASE_URL", &db.url);
        if verbose {
            c.arg("-v");
        }
        let out = c.args(["migrate", "--dry-run"]).assert().success();
        String::from_utf8_lossy(&out.get_output().stdout).to_string()
    };
    let plain = dry(false);
    assert!(plain.contains("CREATE TABLE t (id int);"), "{plain}");
    assert!(plain.contains("-- pgkeel's guard"), "{plain}");
    assert!(!plain.contains("pg_locks"), "{plain}");
    let verbose = dry(true);
    assert!(verbose.contains("pg_locks"), "{verbose}");
}

#[test]
fn demo_tours_the_product_on_its_private_server_and_prints_each_command() {
    let tmp = tempfile::tempdir().unwrap();
    // The user's own database settings must not reach the tour's commands.
    let out = pgkeel(tmp.path())
        .env(
            "DATABASE_URL",
            "postgresql://nobody:secret@192.0.2.1:1/not_this_one",
        )
        .env("PGHOST", "192.0.2.1")
        .arg("demo")
        .timeout(std::time::Duration::from_secs(120))
        .assert()
        .success()
        .get_output()
        .clone();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for step in [
        "$ export DATABASE_URL=postgresql://postgres@127.0.0.1:",
        "$ pgkeel migrate --target 0002_loose_colossus",
        "$ pgkeel migrate --dry-run",
        "$ pgkeel migrate ",
        "$ pgkeel status",
        "$ pgkeel lint",
        "$ pgkeel test",
        "$ psql \"$DATABASE_URL\" -c \"ALTER TABLE users ADD COLUMN nickname text\"",
        "$ pgkeel validate --fail-on warning",
        "$ pgkeel backup full --name demo",
        "$ pgkeel backup verify demo",
        "$ pgkeel restore demo --target-url postgresql://postgres@127.0.0.1:",
        "$ pgkeel rollback 0004_happy_banshee --dry-run",
        "$ pgkeel rollback 0004_happy_banshee ",
        "$ pgkeel monitor",
    ] {
        assert!(stdout.contains(step), "no `{step}` in\n{stdout}\n{stderr}");
    }
    assert!(
        stdout.contains("[extra-column] public.users.nickname"),
        "{stdout}"
    );
    assert!(stdout.contains("(cfi_restored holds 3 users"), "{stdout}");
    assert!(
        !stdout.contains("192.0.2.1") && !stderr.contains("192.0.2.1"),
        "{stdout}{stderr}"
    );
    assert!(
        stderr.contains("server stopped and its data directory deleted"),
        "{stderr}"
    );
}

#[test]
fn completions_and_man_pages_come_from_the_same_flags_as_help() {
    let tmp = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = pgkeel(tmp.path())
            .args(["completions", shell])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.contains("migrate") && text.contains("lock-timeout"),
            "{shell}: {text}"
        );
    }
    pgkeel(tmp.path())
        .args(["completions", "tcsh"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("possible values"));
    let man = pgkeel(tmp.path())
        .arg("man")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert!(
        String::from_utf8_lossy(&man).starts_with(".ie"),
        "roff expected"
    );
    pgkeel(tmp.path())
        .args(["man", "--out-dir", "man1"])
        .assert()
        .success();
    for page in [
        "pgkeel.1",
        "pgkeel-migrate.1",
        "pgkeel-backup-full.1",
        "pgkeel-completions.1",
    ] {
        let text = std::fs::read_to_string(tmp.path().join("man1").join(page)).unwrap();
        assert!(text.contains(".TH"), "{page}");
    }
    let text = std::fs::read_to_string(tmp.path().join("man1/pgkeel-migrate.1")).unwrap();
    assert!(text.contains("lock\\-timeout"), "{text}");
}

#[test]
fn help_groups_the_shared_flags_under_their_own_headings() {
    let tmp = tempfile::tempdir().unwrap();
    let out = pgkeel(tmp.path())
        .args(["migrate", "--help"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let help = String::from_utf8_lossy(&out);
    let own = help.find("--lock-timeout").expect("own flag");
    for heading in [
        "Connection (every command):",
        "Configuration files (every command):",
        "Migrations folder (every command):",
        "Output (every command):",
    ] {
        let at = help
            .find(heading)
            .unwrap_or_else(|| panic!("no {heading} in\n{help}"));
        assert!(at > own, "the command's own flags come first:\n{help}");
    }
    let flat = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains("Default 10min"),
        "--lock-wait names its default:\n{help}"
    );
}

#[test]
fn format_sql_is_refused_where_no_sql_can_be_printed() {
    let tmp = tempfile::tempdir().unwrap();
    pgkeel(tmp.path())
        .args(["status", "--format", "sql"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "only `schema dump` and `schema diff` print SQL",
        ));
}

#[test]
fn color_is_never_on_a_pipe_unless_asked_and_never_with_no_color() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |args: &[&str], no_color: bool| {
        let mut cmd = pgkeel(tmp.path());
        cmd.env_remove("NO_COLOR");
        if no_color {
            cmd.env("NO_COLOR", "1");
        }
        let out = cmd
            .args(args)
            .args(["status", "-vv"])
            .assert()
            .get_output()
            .clone();
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(!run(&[], false).contains('\x1b'), "a pipe gets plain text");
    assert!(!run(&["--color", "never"], false).contains('\x1b'));
    assert!(!run(&[], true).contains('\x1b'), "NO_COLOR");
    assert!(
        run(&["--color", "always"], true).contains('\x1b'),
        "--color always wins"
    );
}

/// Starts `pgkeel migrate` on a migration that sleeps, waits until the sleep runs, sends
/// `signals` (with `gap` between them) and returns the exit code and the ledger row's error.
async fn interrupt_migration(
    test: &str,
    signals: &[&str],
    gap: std::time::Duration,
) -> (i32, String, bool) {
    let db = TestDb::new(test).await;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("migrations")).unwrap();
    std::fs::write(
        tmp.path().join("migrations/0001_sleep.sql"),
        "CREATE TABLE marker (id int);\nSELECT pg_sleep(20);\n",
    )
    .unwrap();
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("pgkeel"))
        .current_dir(tmp.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &db.url)
        .arg("migrate")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let client = db.client().await;
    let started = std::time::Instant::now();
    loop {
        let n: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE '%pg_sleep(20)%' AND pid <> pg_backend_pid()",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if n > 0 {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "the migration never started"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    for (i, sig) in signals.iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(gap).await;
        }
        let ok = std::process::Command::new("kill")
            .args([format!("-{sig}"), child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code().unwrap_or(-1);
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(40),
            "pgkeel did not stop"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let error: String = client
        .query_one(
            "SELECT coalesce((SELECT error FROM __drizzle_migrations WHERE id = '0001_sleep'), '(no row)')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let marker: bool = client
        .query_one("SELECT to_regclass('marker') IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    (code, error, marker)
}

#[tokio::test]
async fn the_same_ctrl_c_twice_still_rolls_back_cleanly_and_records_it() {
    // A terminal signals the whole process group, and `npx pgkeel` passes the signal on too:
    // pgkeel gets SIGINT twice within milliseconds. That is one Ctrl-C, not "stop now".
    let (code, error, marker) = interrupt_migration(
        "cli_double_int",
        &["INT", "INT"],
        std::time::Duration::from_millis(300),
    )
    .await;
    assert_eq!(code, 130);
    assert!(!marker, "the migration's transaction was rolled back");
    assert!(
        error.contains("interrupted"),
        "the clean path recorded it: {error}"
    );
}

#[tokio::test]
async fn sighup_stops_a_migration_cleanly() {
    let (code, error, marker) =
        interrupt_migration("cli_sighup", &["HUP"], std::time::Duration::ZERO).await;
    assert_eq!(code, 130);
    assert!(!marker);
    assert!(error.contains("interrupted"), "{error}");
}
