//! End-to-end tests of `pgkeel backup …` and `pgkeel restore`: exit codes, JSON output, the
//! production pre-migration backup, and that secrets never reach the output. Real PostgreSQL.

#[path = "../../pgkeel/tests/support/mod.rs"]
mod support;

mod cli_support;

use cli_support::{json, pgkeel};

use predicates::prelude::*;
use support::TestDb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_verify_restore_and_exit_codes() {
    let db = TestDb::new("cli_bk").await;
    db.client()
        .await
        .batch_execute("CREATE TABLE t (id serial PRIMARY KEY, v text); INSERT INTO t (v) SELECT md5(g::text) FROM generate_series(1, 2000) g;")
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = pgkeel(tmp.path())
        .env("DATABASE_URL", &db.url)
        .env("BACKUP_ENCRYPTION_PASSPHRASE", "s3cret-pass")
        .args(["backup", "full", "--name", "b1", "--format", "json"])
        .assert()
        .success()
        .get_output()
        .clone();
    let doc = json(&out.stdout);
    assert_eq!(doc["name"], "b1");
    assert_eq!(doc["rows"], 2000);
    assert_eq!(doc["encrypted"], true);
    assert!(doc["ratio"].as_f64().unwrap() > 1.0);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains("s3cret-pass"), "{all}");

    // list shows it valid; verify needs the passphrase and passes with it.
    let out = pgkeel(tmp.path())
        .args(["backup", "list", "--format", "json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let doc = json(&out);
    assert_eq!(doc["backups"][0]["status"], "valid");
    pgkeel(tmp.path())
        .args(["backup", "verify", "b1"])
        .assert()
        .code(2);
    // A wrong passphrase is a wrong key (exit 8), not a damaged backup; an identity file that
    // cannot be read is a usage error (exit 2), not a failed backup.
    let out = pgkeel(tmp.path())
        .env("BACKUP_ENCRYPTION_PASSPHRASE", "wrong")
        .args(["backup", "verify", "b1"])
        .assert()
        .code(8)
        .get_output()
        .clone();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("wrong identity or passphrase"), "{text}");
    assert!(!text.contains("DAMAGED"), "{text}");
    pgkeel(tmp.path())
        .args([
            "backup",
            "verify",
            "b1",
            "--identity",
            "/nonexistent/key.txt",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "cannot read the age identity file",
        ));
    pgkeel(tmp.path())
        .env("BACKUP_ENCRYPTION_PASSPHRASE", "s3cret-pass")
        .args(["backup", "verify", "latest"])
        .assert()
        .success();

    // Restoring over the non-empty source is refused (usage), with --clean it works.
    pgkeel(tmp.path())
        .env("DATABASE_URL", &db.url)
        .env("BACKUP_ENCRYPTION_PASSPHRASE", "s3cret-pass")
        .args(["restore", "b1"])
        .assert()
        .code(2);
    let other = TestDb::new("cli_bk_dst").await;
    pgkeel(tmp.path())
        .env("BACKUP_ENCRYPTION_PASSPHRASE", "s3cret-pass")
        .args(["restore", "b1", "--target-url", &other.url])
        .assert()
        .success();
    let n: i64 = other
        .client()
        .await
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2000);

    // A flipped byte: verify exits 1 and names the file.
    let data = tmp.path().join("backups/b1/data");
    let file = std::fs::read_dir(&data)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 20;
    bytes[last] ^= 0x80;
    std::fs::write(&file, bytes).unwrap();
    let out = pgkeel(tmp.path())
        .env("BACKUP_ENCRYPTION_PASSPHRASE", "s3cret-pass")
        .args(["backup", "verify", "b1"])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.contains(file.file_name().unwrap().to_str().unwrap()),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_migrations_take_a_backup_first() {
    let db = TestDb::new("cli_bk_prod").await;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("migrations")).unwrap();
    std::fs::write(
        tmp.path().join("migrations/0001_init.sql"),
        "CREATE TABLE t (id int);\n",
    )
    .unwrap();
    // A broken recipient makes the backup fail: nothing is migrated.
    pgkeel(tmp.path())
        .env("DATABASE_URL", &db.url)
        .env("BACKUP_ENCRYPTION_RECIPIENTS", "age1broken")
        .args(["migrate", "--env", "production"])
        .assert()
        .code(2);
    let c = db.client().await;
    assert!(c
        .query_opt("SELECT 1 FROM pg_class WHERE relname = 't'", &[])
        .await
        .unwrap()
        .is_none());
    pgkeel(tmp.path())
        .env("DATABASE_URL", &db.url)
        .args(["migrate", "--env", "production"])
        .assert()
        .success();
    assert!(c
        .query_opt("SELECT 1 FROM pg_class WHERE relname = 't'", &[])
        .await
        .unwrap()
        .is_some());
    let names: Vec<String> = std::fs::read_dir(tmp.path().join("backups"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(names[0].starts_with("pre-migrate-"), "{names:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_migrate_backs_up_before_retrying_a_failed_migration() {
    let db = TestDb::new("cli_bk_prod_retry").await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("migrations");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("0001_a.sql"), "CREATE TABLE a (id int);\n").unwrap();
    std::fs::write(dir.join("0002_b.sql"), "INSERT INTO nope VALUES (1);\n").unwrap();
    // Not production: 0001 applies, 0002 fails and is left `failed` in the ledger.
    pgkeel(tmp.path())
        .env("DATABASE_URL", &db.url)
        .args(["migrate"])
        .assert()
        .code(4);
    std::fs::write(dir.join("0002_b.sql"), "CREATE TABLE b (id int);\n").unwrap();
    // Nothing is `pending`, but the failed migration will run again: production backs up.
    pgkeel(tmp.path())
        .env("DATABASE_URL", &db.url)
        .args(["migrate", "--env", "production"])
        .assert()
        .success()
        .stderr(predicate::str::contains("done and verified"));
    let names: Vec<String> = std::fs::read_dir(tmp.path().join("backups"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    // Nothing left to run: no second backup.
    pgkeel(tmp.path())
        .env("DATABASE_URL", &db.url)
        .args(["migrate", "--env", "production"])
        .assert()
        .success();
    assert_eq!(
        std::fs::read_dir(tmp.path().join("backups"))
            .unwrap()
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_is_one_enum_typos_and_empty_values_are_refused_before_anything_runs() {
    let db = TestDb::new("cli_env_enum").await;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("migrations")).unwrap();
    std::fs::write(
        tmp.path().join("migrations/0001_init.sql"),
        "CREATE TABLE t (id int);\n",
    )
    .unwrap();
    let c = db.client().await;
    let created = || async {
        c.query_opt("SELECT 1 FROM pg_class WHERE relname = 't'", &[])
            .await
            .unwrap()
            .is_some()
    };
    // A typo, an empty PGKEEL_ENV, a made-up name: refused, exit 2, nothing migrated.
    for (flag, env) in [
        (Some("prodution"), None),
        (None, Some("")),
        (None, Some("qa")),
    ] {
        let mut cmd = pgkeel(tmp.path());
        cmd.env("DATABASE_URL", &db.url).arg("migrate");
        if let Some(f) = flag {
            cmd.args(["--env", f]);
        }
        if let Some(e) = env {
            cmd.env("PGKEEL_ENV", e);
        }
        let out = cmd.assert().code(2).get_output().clone();
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(
            text.contains("production, staging or development"),
            "{text}"
        );
        assert!(!created().await, "{flag:?} {env:?} migrated");
    }
    // `PRODUCTION` and `prod` are production: the backup comes first.
    pgkeel(tmp.path())
        .env("DATABASE_URL", &db.url)
        .env("PGKEEL_ENV", "PRODUCTION")
        .arg("migrate")
        .assert()
        .success();
    assert!(created().await);
    let names: Vec<String> = std::fs::read_dir(tmp.path().join("backups"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(names[0].starts_with("pre-migrate-"), "{names:?}");
}
