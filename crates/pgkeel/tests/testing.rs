//! `pgkeel test` against real PostgreSQL: the example passes; a down file that forgets an
//! index and a migration that fails on fixture data fail with the right message; the JUnit
//! output parses.

mod support;

use pgkeel::db::Target;
use pgkeel::scratch::ScratchOptions;
use pgkeel::source;
use pgkeel::testing::{self, TestOptions, Verdict};
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
    // Skipped with what to write, not `rollback`'s refusal (whose --force means nothing here).
    let note = m3.note.as_deref().unwrap_or("");
    assert!(
        note.starts_with("no rollback: ") && note.contains("0003_widen.down.sql"),
        "{m3:#?}"
    );
    assert!(!note.contains("--force"), "{note}");
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
    assert_eq!(m5.verdict, Verdict::Skipped, "{m5:#?}");
    assert!(
        m5.note
            .as_deref()
            .unwrap()
            .contains("not run: 0004_required"),
        "{m5:#?}"
    );
    assert_eq!(
        (r.failed, r.skipped),
        (2, 2),
        "0003 has no rollback: {r:#?}"
    );

    let xml = testing::junit(&r).unwrap();
    let doc = roxmltree::Document::parse(&xml).expect("JUnit XML parses");
    let cases: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    // One per migration, idempotency, and lint: the type change in 0003 is a critical finding.
    assert!(r.lint_errors > 0, "{r:#?}");
    assert_eq!(cases.len(), set.migrations.len() + 2);
    let failed: Vec<&str> = cases
        .iter()
        .filter(|c| c.children().any(|x| x.has_tag_name("failure")))
        .map(|c| c.attribute("name").unwrap())
        .collect();
    assert_eq!(failed, ["0002_sku_index", "0004_required", "lint"]);
    let skipped: Vec<&str> = cases
        .iter()
        .filter(|c| c.children().any(|x| x.has_tag_name("skipped")))
        .map(|c| c.attribute("name").unwrap())
        .collect();
    assert_eq!(skipped, ["0003_widen", "0005_after"]);
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

/// A down file that adds dropped columns back puts them at the end of the table: the same
/// columns in another order are a warning naming them, not a failure, unless `strict`; the
/// migrations after it are still compared right (the suite's model follows the new order).
#[tokio::test]
async fn a_column_order_changed_by_a_round_trip_is_a_warning_unless_strict() {
    let dir = native(&[
        (
            "0001_t.sql",
            "CREATE TABLE t (id bigint, a text, b text);\n",
        ),
        ("0002_drop_a.sql", "ALTER TABLE t DROP COLUMN a;\n"),
        ("0002_drop_a.down.sql", "ALTER TABLE t ADD COLUMN a text;\n"),
        ("0003_c.sql", "ALTER TABLE t ADD COLUMN c int;\n"),
    ]);
    let set = source::load(dir.path()).unwrap();
    let settings = settings_for(&support::admin_url());
    let r = testing::run(&settings, &set, &opts()).await.unwrap();
    let by_id = |id: &str| r.migrations.iter().find(|m| m.id == id).unwrap();
    let m2 = by_id("0002_drop_a");
    assert_eq!(m2.verdict, Verdict::Warning, "{m2:#?}");
    assert!(m2.ok && m2.rollback == "ok", "{m2:#?}");
    assert!(
        m2.warnings
            .iter()
            .any(|w| w.contains("public.t") && w.contains("id, b, a")),
        "the warning names the order: {m2:#?}"
    );
    assert_eq!(by_id("0003_c").verdict, Verdict::Pass, "{r:#?}");
    assert!(r.ok && r.warned == 1 && r.failed == 0, "{r:#?}");

    let mut strict = opts();
    strict.strict = true;
    let r = testing::run(&settings, &set, &strict).await.unwrap();
    let m2 = r.migrations.iter().find(|m| m.id == "0002_drop_a").unwrap();
    assert_eq!(m2.verdict, Verdict::Fail, "{m2:#?}");
    assert!(!r.ok);
}

/// Lint findings are reported beside the verdicts; by default only critical ones in migrations
/// the target database has not applied fail the suite, and `lint_fail_on` makes every
/// migration's count.
#[tokio::test]
async fn only_lint_errors_in_pending_migrations_fail_the_suite() {
    let target = support::TestDb::new("lint_pending").await;
    let dir = native(&[
        ("0001_t.sql", "CREATE TABLE t (id bigint, n int);\n"),
        // Critical for lint: a type change that rewrites the table.
        (
            "0002_widen.sql",
            "ALTER TABLE t ALTER COLUMN n TYPE bigint;\n",
        ),
        ("0003_u.sql", "CREATE TABLE u (id bigint);\n"),
    ]);
    let set = source::load(dir.path()).unwrap();
    let settings = settings_for(&target.url);
    // The target has applied 0001 and 0002: the critical finding is in an applied file.
    let upto = pgkeel::migrate::MigrateOptions {
        target: Some("0002_widen".into()),
        ..Default::default()
    };
    let client = target.client().await;
    pgkeel::migrate::Migrator::new(&settings, &set)
        .migrate(&client, &upto, &mut pgkeel::migrate::Silent)
        .await
        .unwrap();
    let mut o = opts();
    o.scratch.target = Some(Target::from_settings(&settings).unwrap());
    o.scratch.scratch_url = Some(support::admin_url());
    let r = testing::run(&settings, &set, &o).await.unwrap();
    assert_eq!(r.pending_from, "target");
    let widen = r.migrations.iter().find(|m| m.id == "0002_widen").unwrap();
    assert!(!widen.pending && !widen.lint.is_empty(), "{widen:#?}");
    assert_eq!(r.lint_errors, 0, "{r:#?}");
    assert!(
        r.ok,
        "an applied file's lint does not fail the suite: {r:#?}"
    );

    // Nothing applied on the target: the same finding is in a pending file and fails it.
    let fresh = support::TestDb::new("lint_pending_none").await;
    let mut o = opts();
    o.scratch.target = Some(Target::from_settings(&settings_for(&fresh.url)).unwrap());
    o.scratch.scratch_url = Some(support::admin_url());
    let r = testing::run(&settings_for(&fresh.url), &set, &o)
        .await
        .unwrap();
    assert!(r.lint_errors > 0 && !r.ok, "{r:#?}");

    // Asked for: every migration's findings count.
    let mut o = opts();
    o.scratch.target = Some(Target::from_settings(&settings).unwrap());
    o.scratch.scratch_url = Some(support::admin_url());
    o.lint_fail_on = Some(pgkeel::report::Severity::Critical);
    let r = testing::run(&settings, &set, &o).await.unwrap();
    assert!(r.lint_errors > 0 && !r.ok, "{r:#?}");
}

/// A server message with a control character (here from a RAISE in the migration) must not
/// break the JUnit file CI reads.
#[tokio::test]
async fn junit_parses_with_control_characters_in_a_server_message() {
    let dir = native(&[(
        "0001_boom.sql",
        "DO $$ BEGIN RAISE EXCEPTION 'bad %<&>\"', chr(27) || '[31m' || chr(1); END $$;\n",
    )]);
    let set = source::load(dir.path()).unwrap();
    let settings = settings_for(&support::admin_url());
    let r = testing::run(&settings, &set, &opts()).await.unwrap();
    assert_eq!(r.failed, 1, "{r:#?}");
    assert!(r.migrations[0].error.as_deref().unwrap().contains('\u{1b}'));
    let xml = testing::junit(&r).unwrap();
    let doc = roxmltree::Document::parse(&xml).expect("JUnit XML parses");
    let failure = doc
        .descendants()
        .find(|n| n.has_tag_name("failure"))
        .unwrap();
    assert!(
        failure.attribute("message").unwrap().contains("bad"),
        "{xml}"
    );
}
