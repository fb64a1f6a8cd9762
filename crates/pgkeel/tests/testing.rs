//! `pgkeel test` against real PostgreSQL: the example passes; a down file that forgets an
//! index and a migration that fails on fixture data fail with the right message; the JUnit
//! output parses.

mod support;

use pgkeel::db::Target;
use pgkeel::scratch::ScratchOptions;
use pgkeel::source;
use pgkeel::testing::{self, TestOptions};
use support::{native, settings_for};

fn opts() -> TestOptions {
    let admin = Target::from_settings(&settings_for(&support::admin_url())).unwrap();
    TestOptions {
        scratch: ScratchOptions {
            target: Some(admin),
            no_embedded: true,
            ..ScratchOptions::default()
        },
        ..TestOptions::default()
    }
}

#[tokio::test]
async fn the_example_passes_with_locks_rewrites_and_lint() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/cfi-handbook/drizzle");
    let set = source::load(&dir).unwrap();
    let settings = settings_for(&support::admin_url());
    let r = testing::run(&settings, &set, &opts()).await.unwrap();
    assert!(r.ok, "{r:#?}");
    assert_eq!(r.passed, set.migrations.len());
    assert!(r.idempotent);
    assert!(
        r.migrations
            .iter()
            .all(|m| m.rollback == "ok" && m.reapply == "ok"),
        "{r:#?}"
    );
    let last = r.migrations.last().unwrap();
    let locks = last.locks.as_ref().unwrap();
    assert!(
        locks.iter().any(|l| l.relation == "public.page_feedback"
            && l.mode == "AccessExclusiveLock"
            && l.existing),
        "{locks:?}"
    );
    assert!(
        last.rewrites.is_empty(),
        "a constant default rewrites nothing since PG 11"
    );
    assert_eq!(r.lint_errors, 0);
    assert!(r.lint_warnings > 0, "serial keys are warned about");
}

/// The relations are read once and then followed through what each apply and re-apply locked:
/// after a table is created, rolled back and created again (a new oid), and renamed, its
/// rewrites and "existing" locks must still be reported.
#[tokio::test]
async fn rewrites_and_locks_are_reported_on_tables_recreated_by_earlier_round_trips() {
    let dir = native(&[
        (
            "0001_items.sql",
            "CREATE TABLE items (id int PRIMARY KEY, qty int);\n",
        ),
        (
            "0002_widen_qty.sql",
            "ALTER TABLE items ALTER COLUMN qty TYPE bigint;\n",
        ),
        (
            "0002_widen_qty.down.sql",
            "ALTER TABLE items ALTER COLUMN qty TYPE int;\n",
        ),
        ("0003_rename.sql", "ALTER TABLE items RENAME TO goods;\n"),
        (
            "0004_widen_id.sql",
            "ALTER TABLE goods ALTER COLUMN id TYPE bigint;\n",
        ),
        (
            "0004_widen_id.down.sql",
            "ALTER TABLE goods ALTER COLUMN id TYPE int;\n",
        ),
    ]);
    let set = source::load(dir.path()).unwrap();
    let settings = settings_for(&support::admin_url());
    let r = testing::run(&settings, &set, &opts()).await.unwrap();
    // Not `r.ok`: lint rightly calls the type changes errors.
    assert_eq!(r.failed, 0, "{r:#?}");
    let by_id = |id: &str| r.migrations.iter().find(|m| m.id == id).unwrap();
    for (id, table) in [
        ("0002_widen_qty", "public.items"),
        ("0004_widen_id", "public.goods"),
    ] {
        let m = by_id(id);
        assert_eq!(m.rollback, "ok", "{m:#?}");
        assert_eq!(m.rewrites, [table], "{m:#?}");
        let locks = m.locks.as_ref().unwrap();
        assert!(
            locks
                .iter()
                .any(|l| l.relation == table && l.mode == "AccessExclusiveLock" && l.existing),
            "{locks:?}"
        );
    }
}

#[tokio::test]
async fn without_the_round_trip_migrations_are_applied_but_not_rolled_back() {
    let dir = native(&[
        ("0001_a.sql", "CREATE TABLE a (id bigint PRIMARY KEY);\n"),
        ("0002_b.sql", "CREATE TABLE b (id bigint PRIMARY KEY);\n"),
        // A broken down file: only a round trip would notice it.
        ("0002_b.down.sql", "SELECT 1;\n"),
    ]);
    let set = source::load(dir.path()).unwrap();
    let settings = settings_for(&support::admin_url());
    let o = TestOptions {
        no_round_trip: true,
        ..opts()
    };
    let r = testing::run(&settings, &set, &o).await.unwrap();
    assert!(r.ok, "{r:#?}");
    assert!(r.idempotent);
    assert!(
        r.migrations
            .iter()
            .all(|m| m.rollback == "not-run" && m.reapply == "not-run" && m.diff.is_none()),
        "{r:#?}"
    );
    // With it, the broken down file fails.
    let r = testing::run(&settings, &set, &opts()).await.unwrap();
    assert!(!r.ok);
    assert_eq!(r.migrations[1].rollback, "failed", "{r:#?}");
}

#[tokio::test]
async fn renamed_and_dropped_tables_are_compared_by_the_round_trip() {
    // The round trip compares only what each migration locked: a rename and a drop must still
    // be seen under the names the tables had before.
    let dir = native(&[
        ("0001_a.sql", "CREATE TABLE a (id bigint PRIMARY KEY, v text);\nCREATE TABLE gone (id bigint PRIMARY KEY, w int);\n"),
        ("0002_rename.sql", "ALTER TABLE a RENAME TO b;\n"),
        // Forgets to rename back.
        ("0002_rename.down.sql", "SELECT 1;\n"),
        ("0003_drop.sql", "DROP TABLE gone;\n"),
        // Recreates it without its column.
        ("0003_drop.down.sql", "CREATE TABLE gone (id bigint PRIMARY KEY);\n"),
        ("0004_untouched.sql", "CREATE TABLE c (id bigint PRIMARY KEY);\n"),
    ]);
    let set = source::load(dir.path()).unwrap();
    let settings = settings_for(&support::admin_url());
    let r = testing::run(&settings, &set, &opts()).await.unwrap();
    assert!(!r.ok);
    let by_id = |id: &str| r.migrations.iter().find(|m| m.id == id).unwrap();
    let rename = by_id("0002_rename");
    assert_eq!(rename.rollback, "failed", "{r:#?}");
    assert!(
        rename.error.as_deref().unwrap_or("").contains("public.a"),
        "{rename:#?}"
    );
    let drop = by_id("0003_drop");
    assert_eq!(drop.rollback, "failed", "{r:#?}");
    assert!(
        drop.diff.as_deref().unwrap_or("").contains("\"w\""),
        "{drop:#?}"
    );
    assert_eq!(by_id("0004_untouched").rollback, "ok", "{r:#?}");
}

#[tokio::test]
async fn forgotten_index_in_a_down_file_and_a_migration_failing_on_data_are_caught() {
    let dir = native(&[
        (
            "0001_items.sql",
            "CREATE TABLE items (id bigint PRIMARY KEY, sku text, price int);\n",
        ),
        (
            "0002_sku_index.sql",
            "CREATE INDEX items_sku_idx ON items (sku);\n",
        ),
        (
            "0002_sku_index.down.sql",
            "SELECT 1;  -- forgot DROP INDEX items_sku_idx\n",
        ),
        (
            "0003_widen.sql",
            "ALTER TABLE items ALTER COLUMN price TYPE bigint;\n",
        ),
        (
            "0004_required.sql",
            "ALTER TABLE items ADD COLUMN owner text NOT NULL;\n",
        ),
        (
            "0005_after.sql",
            "CREATE TABLE after_that (id bigint PRIMARY KEY);\n",
        ),
    ]);
    let fixtures = tempfile::tempdir().unwrap();
    std::fs::write(
        fixtures.path().join("0003_widen.sql"),
        "INSERT INTO items VALUES (1, 'a', 10), (2, 'b', 20);\n",
    )
    .unwrap();
    let set = source::load(dir.path()).unwrap();
    let settings = settings_for(&support::admin_url());
    let mut o = opts();
    o.fixtures = Some(fixtures.path().to_path_buf());
    let r = testing::run(&settings, &set, &o).await.unwrap();
    assert!(!r.ok);
    let by_id = |id: &str| r.migrations.iter().find(|m| m.id == id).unwrap();

    let m2 = by_id("0002_sku_index");
    assert!(!m2.ok && m2.rollback == "failed", "{m2:#?}");
    assert!(
        m2.error.as_deref().unwrap().contains("items_sku_idx"),
        "{m2:#?}"
    );
    assert!(
        m2.diff.as_deref().unwrap().contains("DROP INDEX"),
        "the diff says what the down file missed: {m2:#?}"
    );

    let m3 = by_id("0003_widen");
    assert!(m3.ok, "{m3:#?}");
    assert_eq!(
        m3.rewrites,
        ["public.items"],
        "int → bigint rewrites the table"
    );
    assert!(m3.fixture.is_some());

    let m4 = by_id("0004_required");
    assert!(!m4.ok);
    let err = m4.error.as_deref().unwrap();
    assert!(
        err.contains("23502") || err.contains("null values"),
        "{err}"
    );
    let m5 = by_id("0005_after");
    assert!(!m5.ok && m5.error.as_deref().unwrap().contains("not run"));

    let xml = testing::junit(&r);
    let doc = roxmltree::Document::parse(&xml).expect("JUnit XML parses");
    let cases: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert_eq!(cases.len(), set.migrations.len() + 1);
    let failed: Vec<&str> = cases
        .iter()
        .filter(|c| c.children().any(|x| x.has_tag_name("failure")))
        .map(|c| c.attribute("name").unwrap())
        .collect();
    assert_eq!(failed, ["0002_sku_index", "0004_required", "0005_after"]);
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .unwrap();
    assert_eq!(suite.attribute("failures"), Some("3"));
}

/// Types and functions are not read again around a migration of table-level statements only,
/// but a down file that reaches beyond its tables is still compared on them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_file_that_drops_a_function_is_caught() {
    let dir = native(&[
        (
            "0001_fn.sql",
            "CREATE FUNCTION one() RETURNS int LANGUAGE sql AS 'SELECT 1';\n",
        ),
        (
            "0002_t.sql",
            "CREATE TABLE t (id bigint PRIMARY KEY, n int DEFAULT 1);\n",
        ),
        ("0002_t.down.sql", "DROP TABLE t;\nDROP FUNCTION one();\n"),
        ("0003_u.sql", "CREATE TABLE u (id bigint PRIMARY KEY);\n"),
    ]);
    let set = source::load(dir.path()).unwrap();
    let settings = settings_for(&support::admin_url());
    let r = testing::run(&settings, &set, &opts()).await.unwrap();
    let by_id = |id: &str| r.migrations.iter().find(|m| m.id == id).unwrap();
    let m2 = by_id("0002_t");
    assert!(!m2.ok && m2.rollback == "failed", "{m2:#?}");
    assert!(m2.error.as_deref().unwrap().contains("one"), "{m2:#?}");
    // Repaired, re-applied: the table-level migration after it passes.
    assert!(by_id("0003_u").ok, "{r:#?}");
}

/// A round trip that leaves the schema in a state the suite cannot repair (a down file that
/// leaves an added enum value: PostgreSQL cannot remove enum values) no longer stops
/// the suite: the migrations after it are judged on a scratch database rebuilt up to it.
#[tokio::test]
async fn the_suite_goes_on_after_a_round_trip_it_cannot_repair() {
    let dir = native(&[
        (
            "0001_t.sql",
            "CREATE TYPE mood AS ENUM ('a');\nCREATE TABLE t (m mood);\n",
        ),
        ("0002_c.sql", "ALTER TYPE mood ADD VALUE 'b';\n"),
        ("0002_c.down.sql", "SELECT 1; -- cannot remove the value\n"),
        ("0003_u.sql", "CREATE TABLE u (id bigint PRIMARY KEY);\n"),
        ("0004_v.sql", "ALTER TABLE u ADD COLUMN note text;\n"),
    ]);
    let set = source::load(dir.path()).unwrap();
    let settings = settings_for(&support::admin_url());
    let r = testing::run(&settings, &set, &opts()).await.unwrap();
    let by_id = |id: &str| r.migrations.iter().find(|m| m.id == id).unwrap();
    assert_eq!(r.migrations.len(), 4, "{r:#?}");
    let m2 = by_id("0002_c");
    assert!(!m2.ok && m2.reapply == "failed", "{m2:#?}");
    assert!(
        m2.note.as_deref().unwrap_or("").contains("rebuilt"),
        "{m2:#?}"
    );
    for id in ["0003_u", "0004_v"] {
        let m = by_id(id);
        assert!(m.ok && m.rollback == "ok" && m.reapply == "ok", "{m:#?}");
    }
    assert_eq!(r.failed, 1, "{r:#?}");
}
