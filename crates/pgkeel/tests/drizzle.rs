//! drizzle takeover: matching a folder with drizzle-orm's migrations table (pure), and the round
//! trip with the real drizzle-orm migrator (Node.js, `tests/drizzle-compat/`) on a real
//! PostgreSQL, one fresh database per test.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use pgkeel::drizzle::{
    self, delete_row_sql, ensure_table_sql, insert_row_sql, match_journal, read_rows, DrizzleRow,
    TakeoverWarning,
};
use pgkeel::source::{self, Directives, Layout, Migration, MigrationSet};
use support::TestDb;

const SCHEMA: &str = "drizzle";
const TABLE: &str = "__drizzle_migrations";

// --- pure: match_journal ---------------------------------------------------------------------

fn mig(id: &str, when: i64, sql: &str) -> Migration {
    Migration {
        id: id.into(),
        index: 0,
        path: PathBuf::from(format!("drizzle/{id}.sql")),
        when: Some(when),
        sql: sql.into(),
        hash: source::sha256_hex(sql.as_bytes()),
        breakpoints: true,
        layout: Layout::DrizzleJournal,
        down: None,
        directives: Directives::default(),
        repeatable: false,
    }
}

fn set(migrations: Vec<Migration>) -> MigrationSet {
    let mut migrations = migrations;
    for (i, m) in migrations.iter_mut().enumerate() {
        m.index = i;
    }
    MigrationSet {
        dir: PathBuf::from("drizzle"),
        layout: Layout::DrizzleJournal,
        migrations,
        warnings: Vec::new(),
    }
}

fn row(id: i32, m: &Migration) -> DrizzleRow {
    DrizzleRow {
        id,
        hash: m.hash.clone(),
        created_at: m.when,
    }
}

fn three() -> MigrationSet {
    set(vec![
        mig("0000_a", 1000, "CREATE TABLE a (id int);"),
        mig("0001_b", 2000, "CREATE TABLE b (id int);"),
        mig("0002_c", 3000, "CREATE TABLE c (id int);"),
    ])
}

fn applied_ids(t: &drizzle::Takeover) -> Vec<(&str, bool)> {
    t.applied
        .iter()
        .map(|a| (a.id.as_str(), a.hash_matches))
        .collect()
}

#[test]
fn hash_match_is_applied_and_newer_entries_are_pending() {
    let s = three();
    let rows = [row(1, &s.migrations[0]), row(2, &s.migrations[1])];
    let t = match_journal(&s, &rows);
    assert_eq!(applied_ids(&t), [("0000_a", true), ("0001_b", true)]);
    assert_eq!(t.pending, ["0002_c"]);
    assert!(t.skipped.is_empty() && t.unmatched_rows.is_empty());
    assert_eq!(t.latest.as_ref().unwrap().created_at, 2000);
    assert_eq!(t.latest.as_ref().unwrap().id.as_deref(), Some("0001_b"));
    assert!(t.warnings().is_empty());
}

#[test]
fn empty_table_means_everything_is_pending() {
    let s = three();
    let t = match_journal(&s, &[]);
    assert!(t.applied.is_empty() && t.skipped.is_empty());
    assert_eq!(t.pending, ["0000_a", "0001_b", "0002_c"]);
    assert_eq!(t.latest, None);
}

#[test]
fn hash_match_counts_even_when_the_entry_was_re_dated() {
    let s = three();
    let rows = [DrizzleRow {
        id: 1,
        hash: s.migrations[0].hash.clone(),
        created_at: Some(500),
    }];
    let t = match_journal(&s, &rows);
    assert_eq!(applied_ids(&t), [("0000_a", true)]);
    assert_eq!(t.pending, ["0001_b", "0002_c"]);
}

#[test]
fn when_match_with_changed_hash_is_applied_but_modified() {
    let s = three();
    let rows = [
        row(1, &s.migrations[0]),
        DrizzleRow {
            id: 2,
            hash: source::sha256_hex(b"the file as it was applied"),
            created_at: Some(2000),
        },
    ];
    let t = match_journal(&s, &rows);
    assert_eq!(applied_ids(&t), [("0000_a", true), ("0001_b", false)]);
    assert_eq!(t.pending, ["0002_c"]);
    let modified: Vec<_> = t.modified().map(|a| a.id.as_str()).collect();
    assert_eq!(modified, ["0001_b"]);
    assert_eq!(t.applied[1].row_hash, rows[1].hash);
    assert_eq!(t.applied[1].file_hash, s.migrations[1].hash);
    let w = t.warnings();
    assert!(matches!(&w[..], [TakeoverWarning::Modified { id, row_id: 2, .. }] if id == "0001_b"));
    let text = w[0].to_string();
    assert!(
        text.contains("0001_b") && text.contains(&rows[1].hash),
        "{text}"
    );
}

#[test]
fn out_of_order_entry_is_skipped_not_pending() {
    // 0001_b was merged after 0002_c had been applied: drizzle never runs it.
    let s = three();
    let rows = [row(1, &s.migrations[0]), row(2, &s.migrations[2])];
    let t = match_journal(&s, &rows);
    assert_eq!(applied_ids(&t), [("0000_a", true), ("0002_c", true)]);
    assert_eq!(t.skipped.len(), 1);
    assert_eq!(
        (t.skipped[0].id.as_str(), t.skipped[0].when),
        ("0001_b", 2000)
    );
    assert!(t.pending.is_empty());
    let w = t.warnings();
    assert_eq!(w.len(), 1);
    let text = w[0].to_string();
    for needle in [
        "drizzle never applied 0001_b because its `when`",
        "is older than the newest applied migration (0002_c, 3000",
        "apply it by hand after review",
        "re-date it",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in: {text}");
    }
}

#[test]
fn pending_starts_after_the_newest_row_even_an_unknown_one() {
    // A row no entry explains (entry removed from the journal) still moves drizzle's mark.
    let s = three();
    let rows = [
        row(1, &s.migrations[0]),
        DrizzleRow {
            id: 2,
            hash: "f".repeat(64),
            created_at: Some(2500),
        },
    ];
    let t = match_journal(&s, &rows);
    assert_eq!(applied_ids(&t), [("0000_a", true)]);
    assert_eq!(t.skipped[0].id, "0001_b");
    assert_eq!(t.pending, ["0002_c"]);
    assert_eq!(t.unmatched_rows, [rows[1].clone()]);
    assert_eq!(t.latest.as_ref().unwrap().id, None);
    let w = t.warnings();
    assert!(matches!(
        &w[..],
        [
            TakeoverWarning::Skipped { .. },
            TakeoverWarning::UnmatchedRow { .. }
        ]
    ));
}

#[test]
fn each_row_explains_one_entry_only() {
    // Two files with the same text: one row of that hash is one applied migration.
    let s = set(vec![
        mig("0000_a", 1000, "SELECT 1;"),
        mig("0001_b", 2000, "SELECT 1;"),
    ]);
    let t = match_journal(&s, &[row(1, &s.migrations[0])]);
    assert_eq!(applied_ids(&t), [("0000_a", true)]);
    assert_eq!(t.pending, ["0001_b"]);

    // Rows are matched exactly (hash and when) before by hash alone.
    let rows = [row(1, &s.migrations[1]), row(2, &s.migrations[0])];
    let t = match_journal(&s, &rows);
    let got: Vec<_> = t
        .applied
        .iter()
        .map(|a| (a.id.as_str(), a.row_id))
        .collect();
    assert_eq!(got, [("0000_a", 2), ("0001_b", 1)]);
}

#[test]
fn null_created_at_is_reported() {
    let s = three();
    let rows = [DrizzleRow {
        id: 7,
        hash: s.migrations[0].hash.clone(),
        created_at: None,
    }];
    let t = match_journal(&s, &rows);
    assert_eq!(applied_ids(&t), [("0000_a", true)]);
    assert_eq!(t.pending, ["0001_b", "0002_c"]);
    let w = t.warnings();
    assert!(matches!(
        &w[..],
        [TakeoverWarning::NullCreatedAt { row_id: 7 }]
    ));
    assert!(w[0].to_string().contains("re-run every migration"));
}

#[test]
fn sql_text_is_drizzles() {
    let m = mig("0000_a", 1736849523512, "SELECT 1;");
    assert_eq!(
        ensure_table_sql("drizzle", "__drizzle_migrations"),
        "CREATE SCHEMA IF NOT EXISTS \"drizzle\";\n\
         CREATE TABLE IF NOT EXISTS \"drizzle\".\"__drizzle_migrations\" (\n\tid SERIAL PRIMARY KEY,\n\thash text NOT NULL,\n\tcreated_at bigint\n)"
    );
    let insert = insert_row_sql("drizzle", "__drizzle_migrations", &m).unwrap();
    assert!(insert.starts_with(
        "INSERT INTO \"drizzle\".\"__drizzle_migrations\" (\"hash\", \"created_at\") SELECT E'"
    ));
    assert!(insert.contains(&m.hash) && insert.contains("1736849523512"));
    let native = Migration {
        when: None,
        layout: Layout::Native,
        ..m
    };
    assert_eq!(
        insert_row_sql("drizzle", "__drizzle_migrations", &native),
        None
    );
}

// --- database, without Node ------------------------------------------------------------------

async fn count(client: &tokio_postgres::Client, schema: &str, table: &str) -> i64 {
    client
        .query_one(
            &format!(
                "SELECT count(*) FROM {}",
                pgkeel::ident::qualified(schema, table)
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn read_rows_is_none_without_the_table_and_round_trips_quoted_names() {
    let db = TestDb::new("drizzle_rows").await;
    let client = db.client().await;
    assert_eq!(read_rows(&client, SCHEMA, TABLE).await.unwrap(), None);

    let (schema, table) = ("Drizzle \"Meta\"", "my migrations");
    client
        .batch_execute(&ensure_table_sql(schema, table))
        .await
        .unwrap();
    // Twice: both statements are IF NOT EXISTS.
    client
        .batch_execute(&ensure_table_sql(schema, table))
        .await
        .unwrap();
    assert_eq!(
        read_rows(&client, schema, table).await.unwrap(),
        Some(vec![])
    );

    let s = three();
    for m in &s.migrations[..2] {
        let sql = insert_row_sql(schema, table, m).unwrap();
        client.batch_execute(&sql).await.unwrap();
        // Idempotent: the same row is not written twice.
        client.batch_execute(&sql).await.unwrap();
    }
    let rows = read_rows(&client, schema, table).await.unwrap().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1].hash, s.migrations[1].hash);
    assert_eq!(rows[1].created_at, Some(2000));
    let t = match_journal(&s, &rows);
    assert_eq!(applied_ids(&t), [("0000_a", true), ("0001_b", true)]);

    // A rollback removes exactly the row of that migration.
    client
        .batch_execute(&delete_row_sql(schema, table, &s.migrations[1]))
        .await
        .unwrap();
    assert_eq!(count(&client, schema, table).await, 1);
    let rows = read_rows(&client, schema, table).await.unwrap().unwrap();
    assert_eq!(match_journal(&s, &rows).pending, ["0001_b", "0002_c"]);
}

// --- the real drizzle-orm --------------------------------------------------------------------

fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/cfi-handbook/drizzle")
}

fn compat_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/drizzle-compat")
}

/// The example folder in a temp dir with only the first `n` journal entries.
fn example_prefix(n: usize) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("meta")).unwrap();
    for e in std::fs::read_dir(example_dir()).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), tmp.path().join(e.file_name())).unwrap();
        }
    }
    let journal_path = example_dir().join(source::JOURNAL_PATH);
    let mut journal: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(journal_path).unwrap()).unwrap();
    let entries = journal["entries"].as_array_mut().unwrap();
    assert!(entries.len() > n, "the example needs more than {n} entries");
    entries.truncate(n);
    std::fs::write(
        tmp.path().join(source::JOURNAL_PATH),
        serde_json::to_string_pretty(&journal).unwrap(),
    )
    .unwrap();
    tmp
}

fn need_node() {
    for tool in ["node", "npm"] {
        match Command::new(tool).arg("--version").output() {
            Ok(o) if o.status.success() => {}
            other => panic!(
                "`{tool} --version` failed ({}): the drizzle compatibility tests run the real \
                 drizzle-orm migrator and need Node.js 18+ with npm. Install Node.js \
                 (`apt-get install nodejs npm`, or https://nodejs.org) and run the tests again.",
                match other {
                    Ok(o) => format!("exit {}", o.status),
                    Err(e) => e.to_string(),
                }
            ),
        }
    }
}

/// `npm install` in `tests/drizzle-compat`, once per test binary and guarded against other
/// processes by a lock directory; skipped when a finished install is there.
fn npm_install() {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    need_node();
    let result = DONE.get_or_init(|| {
        let dir = compat_dir();
        let installed = || {
            [
                "node_modules/.package-lock.json",
                "node_modules/drizzle-orm/package.json",
                "node_modules/drizzle-kit/package.json",
                "node_modules/pg/package.json",
            ]
            .iter()
            .all(|p| dir.join(p).is_file())
        };
        if installed() {
            return Ok(());
        }
        let lock = dir.join(".install-lock");
        let started = SystemTime::now();
        loop {
            match std::fs::create_dir(&lock) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    // Another process installs; a lock older than 10 minutes is a leftover.
                    let stale = std::fs::metadata(&lock)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age > Duration::from_secs(600));
                    if stale {
                        let _ = std::fs::remove_dir(&lock);
                    } else if started.elapsed().unwrap_or_default() > Duration::from_secs(900) {
                        return Err(format!("waited 15 minutes for {}", lock.display()));
                    } else {
                        std::thread::sleep(Duration::from_millis(500));
                    }
                }
                Err(e) => return Err(format!("creating {}: {e}", lock.display())),
            }
        }
        let out = if installed() {
            Ok(())
        } else {
            Command::new("npm")
                .args(["install", "--no-audit", "--no-fund"])
                .current_dir(&dir)
                .output()
                .map_err(|e| format!("running npm install: {e}"))
                .and_then(|o| {
                    if o.status.success() {
                        Ok(())
                    } else {
                        Err(format!(
                            "npm install in {} failed ({}):\n{}\n{}",
                            dir.display(),
                            o.status,
                            String::from_utf8_lossy(&o.stdout),
                            String::from_utf8_lossy(&o.stderr)
                        ))
                    }
                })
        };
        let _ = std::fs::remove_dir(&lock);
        out
    });
    if let Err(e) = result {
        panic!("{e}\n(the drizzle compatibility tests need the npm registry once, to install drizzle-orm and pg)");
    }
}

/// Runs drizzle-orm's `migrate()` on `folder`; panics with its output when it fails.
async fn drizzle_migrate(url: &str, folder: &Path, schema_table: Option<(&str, &str)>) {
    npm_install();
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(compat_dir().join("migrate.mjs"))
        .arg(url)
        .arg(folder);
    if let Some((schema, table)) = schema_table {
        cmd.arg(schema).arg(table);
    }
    let out = cmd.output().await.expect("running node");
    assert!(
        out.status.success(),
        "drizzle's migrator failed ({}) on {}:\n{}\n{}",
        out.status,
        folder.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What pgkeel's migrate will do once wired: the migration's chunks and drizzle's row, in one
/// transaction.
async fn apply_like_pgkeel(
    client: &mut tokio_postgres::Client,
    m: &Migration,
    schema: &str,
    table: &str,
) {
    let tx = client.transaction().await.unwrap();
    for chunk in m.chunks().iter().filter(|c| !c.is_blank()) {
        tx.batch_execute(chunk.text)
            .await
            .unwrap_or_else(|e| panic!("applying {}: {e:?}", m.id));
    }
    tx.batch_execute(&insert_row_sql(schema, table, m).unwrap())
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

/// Columns, types, nullability, defaults (schema names taken out) and primary key of a table.
async fn table_shape(client: &tokio_postgres::Client, schema: &str, table: &str) -> Vec<String> {
    client
        .query(
            "SELECT a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                    || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
                    || coalesce(' default ' || replace(pg_get_expr(d.adbin, d.adrelid), quote_ident($1) || '.', ''), '')
                    || CASE WHEN EXISTS (SELECT 1 FROM pg_constraint k
                                          WHERE k.conrelid = c.oid AND k.contype = 'p' AND a.attnum = ANY (k.conkey))
                            THEN ' primary key' ELSE '' END
               FROM pg_attribute a
               JOIN pg_class c ON c.oid = a.attrelid
               JOIN pg_namespace n ON n.oid = c.relnamespace
               LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
              WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped
              ORDER BY a.attnum",
            &[&schema, &table],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn drizzle_then_pgkeel_then_drizzle_again_applies_nothing() {
    let db = TestDb::new("drizzle_roundtrip").await;
    let mut client = db.client().await;
    let full = source::load(&example_dir()).unwrap();
    assert_eq!(full.len(), 5, "the example has 5 migrations");

    // drizzle applies the first three.
    let first3 = example_prefix(3);
    drizzle_migrate(&db.url, first3.path(), None).await;
    let rows = read_rows(&client, SCHEMA, TABLE)
        .await
        .unwrap()
        .expect("drizzle made its table");
    assert_eq!(rows.len(), 3);

    // Our hashes and `when`s are drizzle's.
    let t = match_journal(&full, &rows);
    let ids = |r: std::ops::Range<usize>| -> Vec<String> {
        full.migrations[r].iter().map(|m| m.id.clone()).collect()
    };
    assert_eq!(
        t.applied.iter().map(|a| a.id.clone()).collect::<Vec<_>>(),
        ids(0..3)
    );
    assert!(t.applied.iter().all(|a| a.hash_matches), "{:?}", t.applied);
    assert_eq!(t.pending, ids(3..5));
    assert!(t.skipped.is_empty() && t.unmatched_rows.is_empty() && t.warnings().is_empty());
    for (r, m) in rows.iter().zip(&full.migrations) {
        assert_eq!((r.hash.as_str(), r.created_at), (m.hash.as_str(), m.when));
    }

    // ensure_table_sql builds drizzle's table, column for column.
    client
        .batch_execute(&ensure_table_sql("pgkeel_shape", TABLE))
        .await
        .unwrap();
    let theirs = table_shape(&client, SCHEMA, TABLE).await;
    assert_eq!(theirs.len(), 3, "{theirs:?}");
    assert_eq!(table_shape(&client, "pgkeel_shape", TABLE).await, theirs);

    // pgkeel applies the last two, writing drizzle's rows in the same transactions.
    for m in &full.migrations[3..] {
        apply_like_pgkeel(&mut client, m, SCHEMA, TABLE).await;
    }
    let rows = read_rows(&client, SCHEMA, TABLE).await.unwrap().unwrap();
    assert_eq!(rows.len(), 5);
    let t = match_journal(&full, &rows);
    assert_eq!(t.applied.len(), 5);
    assert!(t.pending.is_empty() && t.skipped.is_empty());

    // Back to drizzle's migrator on the full folder: nothing to do. drizzle inserts a row for
    // every migration it runs, so an unchanged table proves it ran none (and 0004's CREATE TYPE
    // would have failed).
    drizzle_migrate(&db.url, &example_dir(), None).await;
    assert_eq!(count(&client, SCHEMA, TABLE).await, 5);
    assert_eq!(
        read_rows(&client, SCHEMA, TABLE).await.unwrap().unwrap(),
        rows
    );
}

#[tokio::test]
async fn pgkeel_first_then_drizzle_applies_exactly_the_rest_in_a_custom_table() {
    let db = TestDb::new("drizzle_handback").await;
    let mut client = db.client().await;
    let full = source::load(&example_dir()).unwrap();
    let (schema, table) = ("Drizzle \"Meta\"", "my migrations");

    // pgkeel on a database drizzle never saw: it creates drizzle's table and applies three.
    assert_eq!(read_rows(&client, schema, table).await.unwrap(), None);
    client
        .batch_execute(&ensure_table_sql(schema, table))
        .await
        .unwrap();
    for m in &full.migrations[..3] {
        apply_like_pgkeel(&mut client, m, schema, table).await;
    }

    // The team goes back to drizzle: it runs exactly the two pgkeel did not.
    drizzle_migrate(&db.url, &example_dir(), Some((schema, table))).await;
    let rows = read_rows(&client, schema, table).await.unwrap().unwrap();
    assert_eq!(rows.len(), 5);
    let t = match_journal(&full, &rows);
    assert_eq!(t.applied.len(), 5);
    assert!(t.applied.iter().all(|a| a.hash_matches));
    assert!(t.warnings().is_empty());
    let n: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = 'page_feedback'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1, "drizzle applied 0003_slim_warhawk");
}

/// The real thing: drizzle-orm applies the first three, `pgkeel migrate` takes the database
/// over (re-applying nothing) and applies the rest, drizzle-orm then finds nothing to do.
#[tokio::test]
async fn pgkeel_migrate_takes_over_a_drizzle_database_and_hands_it_back() {
    use pgkeel::migrate::{MigrateOptions, Migrator, Silent};
    let db = TestDb::new("drizzle_takeover").await;
    let client = db.client().await;
    drizzle_migrate(&db.url, example_prefix(3).path(), None).await;

    let settings = support::settings_for(&db.url);
    let full = source::load(&example_dir()).unwrap();
    let report = Migrator::new(&settings, &full)
        .migrate(&client, &MigrateOptions::default(), &mut Silent)
        .await
        .unwrap();
    let ids: Vec<&str> = full.migrations.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(report.taken_over, ids[..3]);
    assert_eq!(
        report
            .applied
            .iter()
            .map(|a| a.id.as_str())
            .collect::<Vec<_>>(),
        ids[3..]
    );
    assert!(
        report.held_back.is_empty() && report.warnings.is_empty(),
        "{report:?}"
    );
    assert_eq!(
        count(&client, SCHEMA, TABLE).await,
        5,
        "pgkeel wrote drizzle's rows"
    );

    drizzle_migrate(&db.url, &example_dir(), None).await;
    assert_eq!(
        count(&client, SCHEMA, TABLE).await,
        5,
        "drizzle-orm found nothing to apply"
    );
    let again = Migrator::new(&settings, &full)
        .migrate(&client, &MigrateOptions::default(), &mut Silent)
        .await
        .unwrap();
    assert!(again.applied.is_empty() && again.taken_over.is_empty());
}

/// An entry drizzle-orm skipped (older `when` than an applied one) is held back loudly.
#[tokio::test]
async fn entry_drizzle_skipped_is_held_back_with_a_warning() {
    use pgkeel::migrate::{MigrateError, MigrateOptions, Migrator, Silent};
    let db = TestDb::new("drizzle_skipped").await;
    let client = db.client().await;
    let full = source::load(&example_dir()).unwrap();
    // drizzle applied 0000, 0001 and 0003 (a merge brought 0002 in later with an older `when`).
    client
        .batch_execute(&ensure_table_sql(SCHEMA, TABLE))
        .await
        .unwrap();
    for i in [0usize, 1, 3] {
        let m = &full.migrations[i];
        for chunk in m.chunks() {
            client.batch_execute(chunk.text).await.unwrap();
        }
        client
            .batch_execute(&drizzle::insert_row_sql(SCHEMA, TABLE, m).unwrap())
            .await
            .unwrap();
    }
    let settings = support::settings_for(&db.url);
    let skipped = full.migrations[2].id.clone();

    // A dry run previews the takeover and writes nothing.
    let dry = Migrator::new(&settings, &full)
        .migrate(
            &client,
            &MigrateOptions {
                dry_run: true,
                ..Default::default()
            },
            &mut Silent,
        )
        .await
        .unwrap();
    let id = |i: usize| full.migrations[i].id.clone();
    assert_eq!(dry.taken_over, vec![id(0), id(1), id(3)]);
    assert_eq!(dry.held_back, vec![skipped.clone()]);
    assert_eq!(
        dry.applied.iter().map(|a| a.id.clone()).collect::<Vec<_>>(),
        vec![id(4)],
        "only the entry drizzle never saw would run"
    );
    assert!(dry.warnings.iter().any(|w| w.contains(&skipped)));
    let ledger: Option<String> = client
        .query_one("SELECT to_regclass('__drizzle_migrations')::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(ledger, None, "a dry run creates no ledger");

    let report = Migrator::new(&settings, &full)
        .migrate(&client, &MigrateOptions::default(), &mut Silent)
        .await
        .unwrap();
    assert_eq!(report.held_back, vec![skipped.clone()]);
    assert!(
        report.warnings.iter().any(|w| w.contains(&skipped)),
        "{:?}",
        report.warnings
    );
    assert_eq!(
        report
            .applied
            .iter()
            .map(|a| a.id.clone())
            .collect::<Vec<_>>(),
        vec![full.migrations[4].id.clone()]
    );
    let opts = MigrateOptions {
        target: Some(skipped.clone()),
        ..Default::default()
    };
    let err = Migrator::new(&settings, &full)
        .migrate(&client, &opts, &mut Silent)
        .await
        .unwrap_err();
    assert!(matches!(err, MigrateError::HeldBack { .. }), "{err:?}");
}

/// A drizzle project's own configuration is what pgkeel follows: `out` in another folder and
/// drizzle's table where drizzle.config.ts puts it (also `public.__drizzle_migrations`, the
/// name pgkeel's ledger has by default: the ledger then moves beside it). drizzle-orm applies
/// the first three, pgkeel migrates from the project directory with no flags and no
/// pgkeel.toml (re-applying nothing), and drizzle-orm then finds nothing pending.
#[tokio::test]
async fn a_drizzle_project_migrates_with_no_flags_and_drizzle_sees_nothing_pending() {
    use pgkeel::migrate::{MigrateOptions, Migrator, Silent};
    let cases: [(&str, (&str, &str), &str); 2] = [
        (
            "{ schema: \"public\" }",
            ("public", TABLE),
            pgkeel::config::LEDGER_BESIDE_DRIZZLE,
        ),
        (
            "{ table: \"app_migrations\", schema: \"public\" }",
            ("public", "app_migrations"),
            TABLE,
        ),
    ];
    for (i, (migrations, (schema, table), ledger)) in cases.into_iter().enumerate() {
        let db = TestDb::new(&format!("drizzle_config_{i}")).await;
        let client = db.client().await;
        let project = tempfile::tempdir().unwrap();
        std::fs::write(
            project.path().join("drizzle.config.ts"),
            format!(
                "import {{ defineConfig }} from \"drizzle-kit\";\n\
                 export default defineConfig({{\n  schema: \"./src/db/schema.ts\",\n  \
                 out: \"./src/db/migrations\",\n  dialect: \"postgresql\",\n  \
                 migrations: {migrations},\n  dbCredentials: {{ url: process.env.DATABASE_URL! }},\n}});\n"
            ),
        )
        .unwrap();
        let out = project.path().join("src/db/migrations");
        support::copy_dir(&example_dir(), &out);
        drizzle_migrate(&db.url, example_prefix(3).path(), Some((schema, table))).await;
        assert_eq!(count(&client, schema, table).await, 3);

        let settings = project_settings(project.path(), &db.url);
        assert_eq!(
            (
                settings.ledger_schema.as_str(),
                settings.ledger_table.as_str()
            ),
            ("public", ledger)
        );
        let dir = source::resolve_dir(settings.migrations_dir.as_deref(), project.path());
        let set = source::load(&dir).unwrap();
        let report = Migrator::new(&settings, &set)
            .migrate(&client, &MigrateOptions::default(), &mut Silent)
            .await
            .unwrap_or_else(|e| panic!("{migrations}: {e}"));
        assert_eq!(report.taken_over.len(), 3, "{migrations}: {report:?}");
        assert_eq!(report.applied.len(), 2, "{migrations}: {report:?}");
        assert_eq!(
            table_shape(&client, schema, table).await.len(),
            3,
            "drizzle's table keeps drizzle's columns"
        );
        drizzle_migrate(&db.url, &out, Some((schema, table))).await;
        assert_eq!(
            count(&client, schema, table).await,
            5,
            "{migrations}: drizzle-orm found nothing to apply"
        );
    }
}

/// `baseline --to` on a drizzle folder of a database drizzle-orm never saw: drizzle's table is
/// created and gets the baselined rows, so drizzle-orm then applies exactly the rest.
#[tokio::test]
async fn baseline_on_a_drizzle_folder_creates_drizzles_table_and_keeps_it_in_step() {
    use pgkeel::migrate::Migrator;
    let db = TestDb::new("drizzle_baseline").await;
    let client = db.client().await;
    let full = source::load(&example_dir()).unwrap();
    // The schema of the first two, built by hand (what a team baselines).
    for m in &full.migrations[..2] {
        for chunk in m.chunks().iter().filter(|c| !c.is_blank()) {
            client.batch_execute(chunk.text).await.unwrap();
        }
    }
    assert_eq!(read_rows(&client, SCHEMA, TABLE).await.unwrap(), None);
    let settings = support::settings_for(&db.url);
    let ids = Migrator::new(&settings, &full)
        .baseline(&client, &full.migrations[1].id)
        .await
        .unwrap();
    assert_eq!(ids.len(), 2);
    assert_eq!(count(&client, SCHEMA, TABLE).await, 2);
    drizzle_migrate(&db.url, &example_dir(), None).await;
    assert_eq!(
        count(&client, SCHEMA, TABLE).await,
        5,
        "drizzle-orm applied exactly the three after the baseline"
    );
}

/// drizzle-orm's table at `public.__drizzle_migrations` (drizzle's `migrationsSchema: "public"`)
/// is where pgkeel's ledger is by default. Not told so, pgkeel refuses with what to set and
/// leaves drizzle's table as it is (it used to add columns to it and then fail on `status`).
#[tokio::test]
async fn drizzles_table_where_the_ledger_would_be_is_refused_untouched_with_the_fix() {
    use pgkeel::db::DbError;
    use pgkeel::migrate::{MigrateError, MigrateOptions, Migrator, Silent};
    let db = TestDb::new("drizzle_in_public").await;
    let client = db.client().await;
    drizzle_migrate(&db.url, example_prefix(3).path(), Some(("public", TABLE))).await;
    let shape = table_shape(&client, "public", TABLE).await;
    let full = source::load(&example_dir()).unwrap();
    let settings = support::settings_for(&db.url);
    let err = Migrator::new(&settings, &full)
        .migrate(&client, &MigrateOptions::default(), &mut Silent)
        .await
        .unwrap_err();
    assert!(
        matches!(err, MigrateError::Db(DbError::LedgerIsDrizzles { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("schema = \"public\""), "{err}");
    assert_eq!(table_shape(&client, "public", TABLE).await, shape);
}

/// Runs the real drizzle-kit CLI in `project` (its drizzle.config.ts and schema.ts resolve
/// drizzle-kit and drizzle-orm from `tests/drizzle-compat` through NODE_PATH); panics with its
/// output when it fails.
fn drizzle_kit(project: &Path, url: &str, args: &[&str]) -> String {
    npm_install();
    let modules = compat_dir().join("node_modules");
    support::run_tool(
        Command::new("node")
            .arg(modules.join("drizzle-kit/bin.cjs"))
            .args(args)
            .current_dir(project)
            .env("NODE_PATH", &modules)
            .env("DATABASE_URL", url),
    )
}

/// The whole loop with the real drizzle-kit 0.31: `generate` (timestamp prefix, drizzle's table
/// in public), `migrate` by drizzle-kit, a second `generate`, then pgkeel from the project
/// directory with no flags applies only the new one; drizzle-kit `migrate` then finds nothing
/// pending and `check` is content. `pgkeel new` names its file the way the config says.
#[tokio::test]
async fn drizzle_kit_generate_and_migrate_then_pgkeel_with_no_flags_then_drizzle_kit_again() {
    use pgkeel::migrate::{MigrateOptions, Migrator, Silent};
    let db = TestDb::new("drizzle_kit_loop").await;
    let client = db.client().await;
    let schema_v1 = "import { pgTable, serial, text, integer } from \"drizzle-orm/pg-core\";\n\
        export const users = pgTable(\"users\", { id: serial(\"id\").primaryKey(), name: text(\"name\").notNull() });\n";
    let project = drizzle_project(
        "import { defineConfig } from \"drizzle-kit\";\n\
         export default defineConfig({\n  schema: \"./src/db/schema.ts\",\n  \
         out: \"./src/db/migrations\",\n  dialect: \"postgresql\",\n  \
         migrations: { schema: \"public\", prefix: \"timestamp\" },\n  \
         dbCredentials: { url: process.env.DATABASE_URL! },\n});\n",
        schema_v1,
    );
    let p = project.path();
    drizzle_kit(p, &db.url, &["generate", "--name", "init"]);
    drizzle_kit(p, &db.url, &["migrate"]);
    assert_eq!(count(&client, "public", TABLE).await, 1);
    std::fs::write(
        p.join("src/db/schema.ts"),
        format!(
            "{schema_v1}export const posts = pgTable(\"posts\", {{ id: serial(\"id\").primaryKey(), \
             userId: integer(\"user_id\").references(() => users.id), body: text(\"body\") }});\n"
        ),
    )
    .unwrap();
    // drizzle-kit names files by the second: the two must not share one.
    std::thread::sleep(Duration::from_millis(1100));
    drizzle_kit(p, &db.url, &["generate", "--name", "posts"]);

    let settings = project_settings(p, &db.url);
    let dir = source::resolve_dir(settings.migrations_dir.as_deref(), p);
    let set = source::load(&dir).unwrap();
    assert_eq!(set.len(), 2);
    let report = Migrator::new(&settings, &set)
        .migrate(&client, &MigrateOptions::default(), &mut Silent)
        .await
        .unwrap();
    assert_eq!(
        (report.taken_over.len(), report.applied.len()),
        (1, 1),
        "{report:?}"
    );
    assert_eq!(count(&client, "public", TABLE).await, 2);

    drizzle_kit(p, &db.url, &["migrate"]);
    assert_eq!(
        count(&client, "public", TABLE).await,
        2,
        "drizzle-kit migrate found nothing pending"
    );
    drizzle_kit(p, &db.url, &["check"]);

    let new = source::new_migration_with(
        &dir,
        "add index",
        chrono::Utc::now(),
        source::TagPrefix::parse(settings.migration_prefix.as_deref().unwrap()).unwrap(),
    )
    .unwrap();
    let name = new.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.len() == "20261203101500_add_index.sql".len() && name.ends_with("_add_index.sql"),
        "{name}"
    );
}

/// drizzle-kit's own snapshot is the expected schema: after drizzle-kit generates a schema of
/// many column kinds (serial, varchar, enum, numeric, timestamptz, uuid, jsonb, arrays, an
/// index, a unique and a foreign key) and pgkeel applies it, the live schema matches the
/// snapshot exactly; a column dropped by hand is then found, with its unique constraint.
#[tokio::test]
async fn drizzle_kits_snapshot_matches_what_pgkeel_applied_and_finds_a_dropped_column() {
    use pgkeel::migrate::{MigrateOptions, Migrator, Silent};
    use pgkeel::schema::drizzle_snapshot;
    let db = TestDb::new("drizzle_snapshot").await;
    let client = db.client().await;
    let project = drizzle_project(
        "export default { schema: './src/db/schema.ts', out: './drizzle', dialect: 'postgresql' };\n",
        r#"import { pgTable, pgEnum, serial, text, integer, varchar, timestamp, boolean, index, numeric, jsonb, uuid, bigint } from "drizzle-orm/pg-core";
export const role = pgEnum("role", ["admin", "member"]);
export const users = pgTable("users", {
  id: serial("id").primaryKey(),
  name: text("name").notNull(),
  email: varchar("email", { length: 256 }).notNull().unique(),
  role: role("role").default("member").notNull(),
  createdAt: timestamp("created_at", { withTimezone: true, precision: 3 }).defaultNow(),
  seen: timestamp("seen"),
  price: numeric("price", { precision: 10, scale: 2 }),
  meta: jsonb("meta"),
  ext: uuid("ext").defaultRandom(),
  big: bigint("big", { mode: "number" }),
  tags: text("tags").array(),
}, (t) => [index("users_name_idx").on(t.name)]);
export const posts = pgTable("posts", {
  id: serial("id").primaryKey(),
  userId: integer("user_id").references(() => users.id, { onDelete: "cascade" }),
  body: text("body"),
  done: boolean("done").default(false),
});
"#,
    );
    let p = project.path();
    drizzle_kit(p, &db.url, &["generate", "--name", "init"]);
    let settings = project_settings(p, &db.url);
    let dir = source::resolve_dir(settings.migrations_dir.as_deref(), p);
    let set = source::load(&dir).unwrap();
    Migrator::new(&settings, &set)
        .migrate(&client, &MigrateOptions::default(), &mut Silent)
        .await
        .unwrap();
    let expected =
        drizzle_snapshot::read(&drizzle_snapshot::path_for_tag(&dir, &set.migrations[0].id))
            .unwrap();
    let live = || async {
        pgkeel::schema::introspect(
            &client,
            &pgkeel::schema::IntrospectOptions::from_settings(&settings),
        )
        .await
        .unwrap()
    };
    let ignore = settings.bookkeeping_tables();
    let drift = drizzle_snapshot::compare(&expected, &live().await, &ignore, &[]);
    assert!(drift.is_empty(), "{drift:#?}");

    client
        .batch_execute("ALTER TABLE users DROP COLUMN email")
        .await
        .unwrap();
    let drift = drizzle_snapshot::compare(&expected, &live().await, &ignore, &[]);
    let objects: Vec<&str> = drift.iter().map(|d| d.object.as_str()).collect();
    assert_eq!(
        objects,
        [
            "column public.users.email",
            "constraint users_email_unique on public.users"
        ],
        "{drift:#?}"
    );

    // `validate --schema` finds it from the snapshot alone, as a role that may not create
    // databases (no scratch database is made; none could be).
    let role = format!("{}_ro", db.name());
    client
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN NOCREATEDB; GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role};"
        ))
        .await
        .unwrap();
    let url = db.url.replacen("postgres@", &format!("{role}@"), 1);
    let ro = support::settings_for(&url);
    let mut opts = pgkeel::validate::ValidateOptions::from_settings(&ro);
    (opts.data, opts.performance) = (false, false);
    opts.scratch.no_embedded = true;
    let target = pgkeel::db::Target::from_settings(&ro).unwrap();
    let r = pgkeel::validate::run(&target, &ro, Some(&set), &opts)
        .await
        .unwrap();
    let found: Vec<(&str, &str)> = r
        .findings
        .iter()
        .map(|f| (f.id.as_str(), f.object.as_str()))
        .collect();
    assert!(
        found.contains(&("missing-column", "column public.users.email")),
        "{found:?} {:#?}",
        r.checks
    );
    let drift = r.checks.iter().find(|c| c.name == "drift").unwrap();
    assert!(
        drift.data["expected"]
            .as_str()
            .unwrap()
            .starts_with("drizzle-kit's snapshot"),
        "{drift:?}"
    );
    client
        .batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role};"))
        .await
        .unwrap();
}

/// A migration edited by hand after drizzle-kit generated it: the database has what the SQL
/// made, the snapshot what the schema code says. Where a scratch database can be made, the
/// folder applied there shows it is the folder, not a change by hand, and says so.
#[tokio::test]
async fn a_migration_edited_after_drizzle_kit_wrote_it_is_named_as_such() {
    use pgkeel::migrate::{MigrateOptions, Migrator, Silent};
    let db = TestDb::new("drizzle_edited").await;
    let client = db.client().await;
    let project = drizzle_project(
        "export default { schema: './src/db/schema.ts', out: './drizzle', dialect: 'postgresql' };\n",
        "import { pgTable, serial, text } from \"drizzle-orm/pg-core\";\n\
         export const notes = pgTable(\"notes\", { id: serial(\"id\").primaryKey(), body: text(\"body\") });\n",
    );
    let p = project.path();
    drizzle_kit(p, &db.url, &["generate", "--name", "init"]);
    let settings = project_settings(p, &db.url);
    let dir = source::resolve_dir(settings.migrations_dir.as_deref(), p);
    let sql_path = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "sql"))
        .unwrap();
    let mut sql = std::fs::read_to_string(&sql_path).unwrap();
    sql.push_str("\n--> statement-breakpoint\nALTER TABLE \"notes\" ADD COLUMN \"by_hand\" text;");
    std::fs::write(&sql_path, sql).unwrap();
    let set = source::load(&dir).unwrap();
    Migrator::new(&settings, &set)
        .migrate(&client, &MigrateOptions::default(), &mut Silent)
        .await
        .unwrap();

    let mut opts = pgkeel::validate::ValidateOptions::from_settings(&settings);
    (opts.data, opts.performance) = (false, false);
    opts.scratch.no_embedded = true;
    let target = pgkeel::db::Target::from_settings(&settings).unwrap();
    let r = pgkeel::validate::run(&target, &settings, Some(&set), &opts)
        .await
        .unwrap();
    let found: Vec<(&str, &str)> = r
        .findings
        .iter()
        .map(|f| (f.id.as_str(), f.object.as_str()))
        .collect();
    assert!(
        found.contains(&("extra-column", "column public.notes.by_hand")),
        "{found:?}"
    );
    assert!(
        found.contains(&(
            "snapshot-disagrees-with-folder",
            "column public.notes.by_hand"
        )),
        "{found:?} {:#?}",
        r.checks
    );
}

/// The settings pgkeel resolves in a project directory with no flags and no pgkeel.toml: its
/// drizzle.config.ts, and `DATABASE_URL` = `url` as the only environment.
fn project_settings(dir: &Path, url: &str) -> pgkeel::config::Settings {
    pgkeel::config::load(&pgkeel::config::LoadOptions {
        cwd: dir.to_path_buf(),
        config_path: None,
        dotenv: false,
        env: [("DATABASE_URL".to_string(), url.to_string())].into(),
        overrides: pgkeel::config::Overrides::default(),
    })
    .unwrap()
}

/// A drizzle project in a temporary folder: `drizzle.config.ts` and `src/db/schema.ts`.
fn drizzle_project(config_ts: &str, schema_ts: &str) -> tempfile::TempDir {
    let project = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(project.path().join("src/db")).unwrap();
    std::fs::write(project.path().join("drizzle.config.ts"), config_ts).unwrap();
    std::fs::write(project.path().join("src/db/schema.ts"), schema_ts).unwrap();
    project
}
