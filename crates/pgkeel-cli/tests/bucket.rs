//! Backups in an S3-compatible bucket, end to end against a real S3 server (moto's) and a real
//! PostgreSQL: full (multipart, encrypted), incremental, list, verify --restore-test, restore
//! (also `latest`, past an interrupted upload), a damaged object refused before the target is
//! touched, cleanup with retention, and the production pre-migration backup. No secret printed.

#[path = "../../pgkeel/tests/support/mod.rs"]
mod support;

mod cli_support;

use cli_support::s3::{S3Server, SECRET_KEY};
use cli_support::{json, pgkeel};

use support::TestDb;

/// `pgkeel` pointed at `s3` (AWS_*), the database and a private staging directory.
fn cmd(
    cwd: &std::path::Path,
    s3: &S3Server,
    db: &TestDb,
    staging: &std::path::Path,
) -> assert_cmd::Command {
    let mut c = pgkeel(cwd);
    for (k, v) in s3.env() {
        c.env(k, v);
    }
    c.env("DATABASE_URL", &db.url)
        .env("PGKEEL_STAGING_DIR", staging)
        .env("BACKUP_ENCRYPTION_PASSPHRASE", "bucket-pass-phrase");
    c
}

fn output(a: &assert_cmd::assert::Assert) -> String {
    let o = a.get_output();
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    db.client().await.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_in_a_bucket_cover_full_incremental_list_verify_restore_and_cleanup() {
    let s3 = S3Server::start();
    s3.create_bucket("bkt");
    let db = TestDb::new("cli_s3").await;
    // `big` holds ~25 MB of hex text: as one piece, its file (~13 MB compressed) goes up in
    // multipart parts.
    db.client()
        .await
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY, v text, updated_at timestamptz NOT NULL DEFAULT now() - interval '1 day');
             INSERT INTO t (id, v) SELECT g, md5(g::text) FROM generate_series(1, 2000) g;
             CREATE TABLE big (id int PRIMARY KEY, blob text);
             INSERT INTO big SELECT g, (SELECT string_agg(md5(random()::text || g || i), '') FROM generate_series(1, 32) i)
               FROM generate_series(1, 25000) g;",
        )
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let staging = tempfile::tempdir().unwrap();
    let dir = "s3://bkt/prod/db";
    let mut all_output = String::new();

    let a = cmd(tmp.path(), &s3, &db, staging.path())
        .args([
            "backup", "full", "--dir", dir, "--name", "f1", "--format", "json",
        ])
        // One piece for `big` (a bucket's default is 16 MiB pieces): its file needs several parts.
        .args(["--chunk-mib", "64"])
        .assert()
        .success();
    all_output += &output(&a);
    let doc = json(&a.get_output().stdout);
    assert_eq!(doc["encrypted"], true);
    assert_eq!(doc["rows"], 27000);
    assert_eq!(doc["path"], "s3://bkt/prod/db/f1");
    let objects = s3.list("bkt", "prod/db/f1/");
    assert!(
        objects.iter().any(|(k, _)| k == "prod/db/f1/manifest.json"),
        "{objects:?}"
    );
    assert!(
        objects.iter().any(|(_, size)| *size > 8 << 20),
        "the big table's file went up in several parts: {objects:?}"
    );
    assert!(
        std::fs::read_dir(staging.path()).unwrap().next().is_none(),
        "staging is emptied after the upload"
    );
    // The same name again is refused, and the bucket copy stays.
    cmd(tmp.path(), &s3, &db, staging.path())
        .args(["backup", "full", "--dir", dir, "--name", "f1"])
        .assert()
        .code(2);

    // An incremental over it: only the changed rows of `t`.
    db.client()
        .await
        .batch_execute("UPDATE t SET v = 'changed', updated_at = now() WHERE id <= 10")
        .await
        .unwrap();
    let a = cmd(tmp.path(), &s3, &db, staging.path())
        .args([
            "backup",
            "incremental",
            "--since",
            "last",
            "--dir",
            dir,
            "--name",
            "i1",
            "--format",
            "json",
        ])
        .assert()
        .success();
    all_output += &output(&a);
    assert_eq!(json(&a.get_output().stdout)["base"], "f1");

    // An interrupted upload: objects without a manifest. Listed incomplete, never `latest`.
    s3.put(
        "bkt",
        "prod/db/zz-interrupted/data/public.t.0.zst.age",
        b"partial",
    );
    let a = cmd(tmp.path(), &s3, &db, staging.path())
        .args(["backup", "list", "--dir", dir, "--format", "json"])
        .assert()
        .success();
    let doc = json(&a.get_output().stdout);
    let statuses: Vec<(String, String)> = doc["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["name"].as_str().unwrap().to_string(),
                b["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        statuses.contains(&("f1".into(), "valid".into())),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&("i1".into(), "valid".into())),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&("zz-interrupted".into(), "incomplete".into())),
        "{statuses:?}"
    );

    // verify --restore-test downloads the chain and restores it into a scratch database.
    let a = cmd(tmp.path(), &s3, &db, staging.path())
        .args(["backup", "verify", "i1", "--dir", dir, "--restore-test"])
        .assert()
        .success();
    all_output += &output(&a);

    // restore latest (the incremental over its base) into a fresh database.
    let target = TestDb::new("cli_s3_target").await;
    let a = cmd(tmp.path(), &s3, &db, staging.path())
        .args([
            "restore",
            "latest",
            "--dir",
            dir,
            "--target-url",
            &target.url,
        ])
        .assert()
        .success();
    all_output += &output(&a);
    assert_eq!(count(&target, "SELECT count(*) FROM big").await, 25000);
    assert_eq!(
        count(&target, "SELECT count(*) FROM t WHERE v = 'changed'").await,
        10
    );

    // cleanup with 0 days: the newest valid full backup stays, the rest goes from the bucket.
    let a = cmd(tmp.path(), &s3, &db, staging.path())
        .args([
            "backup",
            "cleanup",
            "--dir",
            dir,
            "--retention-days",
            "0",
            "--format",
            "json",
        ])
        .assert()
        .success();
    all_output += &output(&a);
    let left: Vec<String> = s3
        .list("bkt", "prod/db/")
        .into_iter()
        .map(|(k, _)| k.split('/').nth(2).unwrap().to_string())
        .collect();
    assert!(left.iter().all(|n| n == "f1"), "{left:?}");

    // One damaged object: restore --clean refuses before touching the target.
    // Same size, other bytes: only the hash check can tell (`list` still says valid).
    let (data, size) = s3
        .list("bkt", "prod/db/f1/data/")
        .into_iter()
        .find(|(k, _)| k.contains("public.t"))
        .unwrap();
    s3.put("bkt", &data, &vec![0x5a; size as usize]);
    let a = cmd(tmp.path(), &s3, &db, staging.path())
        .args([
            "restore",
            "f1",
            "--dir",
            dir,
            "--clean",
            "--target-url",
            &target.url,
        ])
        .assert()
        .code(1);
    let text = output(&a);
    assert!(text.contains("nothing was written to the target"), "{text}");
    assert_eq!(
        count(&target, "SELECT count(*) FROM t WHERE v = 'changed'").await,
        10,
        "the target is as it was"
    );
    all_output += &text;

    // A bucket that does not exist: the error says what to check, and no secret.
    let a = cmd(tmp.path(), &s3, &db, staging.path())
        .args(["backup", "list", "--dir", "s3://no-such-bucket/x"])
        .assert()
        .code(6);
    let text = output(&a);
    assert!(text.contains("AWS_ENDPOINT_URL"), "{text}");
    all_output += &text;

    assert!(!all_output.contains(SECRET_KEY), "{all_output}");
    assert!(!all_output.contains("bucket-pass-phrase"), "{all_output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_migrate_backs_up_to_the_bucket_in_pgkeel_backup_dir() {
    let s3 = S3Server::start();
    s3.create_bucket("railway");
    let db = TestDb::new("cli_s3_prod").await;
    let tmp = tempfile::tempdir().unwrap();
    let staging = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("migrations")).unwrap();
    std::fs::write(
        tmp.path().join("migrations/0001_init.sql"),
        "CREATE TABLE t (id int);\n",
    )
    .unwrap();
    cmd(tmp.path(), &s3, &db, staging.path())
        .env("PGKEEL_BACKUP_DIR", "s3://railway/backups")
        .args(["migrate", "--env", "production"])
        .assert()
        .success();
    let names: Vec<String> = s3
        .list("railway", "backups/")
        .into_iter()
        .filter(|(k, _)| k.ends_with("/manifest.json"))
        .map(|(k, _)| k)
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(names[0].starts_with("backups/pre-migrate-"), "{names:?}");
    assert!(!tmp.path().join("backups").exists());
}
