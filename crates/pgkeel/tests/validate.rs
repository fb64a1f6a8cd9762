//! `validate` against real PostgreSQL: for each check, a database holding exactly one problem of
//! its kind, and a clean database on which nothing is found (no false positives).

mod support;

use pgkeel::db::Target;
use pgkeel::report::{Finding, Severity};
use pgkeel::source;
use pgkeel::validate::{self, ValidateOptions, ValidationReport};
use support::{native, TestDb};

/// Creates a database, runs `setup` in it (statement by statement, so CREATE INDEX
/// CONCURRENTLY may be among them), resets its statistics and validates it.
async fn validate_after(
    name: &str,
    setup: &[&str],
    tweak: impl FnOnce(&mut ValidateOptions),
) -> (TestDb, ValidationReport) {
    let db = TestDb::new(name).await;
    let client = db.client().await;
    for sql in setup {
        // Expected failures (a unique index built over duplicates) are part of some setups.
        if let Err(e) = client.batch_execute(sql).await {
            assert!(
                sql.contains("-- may fail"),
                "setup statement failed: {e:?}\n{sql}"
            );
        }
    }
    client
        .batch_execute("SELECT pg_stat_reset()")
        .await
        .unwrap();
    let settings = db.settings();
    let mut opts = ValidateOptions::from_settings(&settings);
    // The schema section has tests of its own below.
    opts.schema = false;
    tweak(&mut opts);
    let target = Target::from_settings(&settings).unwrap();
    let report = validate::run(&target, &settings, None, &opts)
        .await
        .unwrap();
    (db, report)
}

fn of<'a>(r: &'a ValidationReport, id: &str) -> Vec<&'a Finding> {
    r.findings.iter().filter(|f| f.id == id).collect()
}

/// Parent/child tables every fixture starts from: clean by construction.
const BASE: &str = "
    CREATE TABLE users (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text NOT NULL UNIQUE);
    CREATE TABLE orders (
        id bigserial PRIMARY KEY,
        user_id bigint NOT NULL REFERENCES users (id),
        code text,
        CONSTRAINT orders_code_check CHECK (code <> '')
    );
    CREATE INDEX orders_user_id_idx ON orders (user_id);
    INSERT INTO users (email) SELECT 'u' || g || '@example.com' FROM generate_series(1, 50) g;
    INSERT INTO orders (user_id, code) SELECT 1 + g % 50, 'c' || g FROM generate_series(1, 500) g;
";

#[tokio::test]
async fn clean_database_has_no_findings() {
    let (_db, r) = validate_after("val_clean", &[BASE], |_| {}).await;
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
    assert!(
        r.checks.iter().any(|c| c.name.starts_with("fk-orphans")),
        "{:?}",
        r.checks
    );
    assert!(r
        .checks
        .iter()
        .all(|c| c.status == "ok" || c.name == "slow-statements"));
}

#[tokio::test]
async fn orphans_under_a_not_valid_foreign_key_are_counted_with_samples() {
    let setup = [
        BASE,
        "CREATE TABLE notes (id int PRIMARY KEY, user_id bigint);
         INSERT INTO notes VALUES (1, 1), (2, 999), (3, 998), (4, NULL);
         ALTER TABLE notes ADD CONSTRAINT notes_user_fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;
         CREATE INDEX ON notes (user_id);",
    ];
    let (_db, r) = validate_after("val_orphans", &setup, |_| {}).await;
    let f = of(&r, "fk-orphans");
    assert_eq!(f.len(), 1, "{:#?}", r.findings);
    assert_eq!(f[0].severity, Severity::Warning, "NOT VALID: a warning");
    assert_eq!(
        f[0].evidence["rows"], 2,
        "NULL keys are not orphans (MATCH SIMPLE)"
    );
    let mut sample: Vec<i64> = f[0].evidence["sample_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["user_id"].as_i64().unwrap())
        .collect();
    sample.sort();
    assert_eq!(sample, [998, 999]);
    assert!(f[0]
        .fix
        .as_deref()
        .unwrap()
        .contains("VALIDATE CONSTRAINT notes_user_fk"));

    // Marked sensitive: the same count, no values.
    let (_db, r) = validate_after("val_orphans_sensitive", &setup, |o| {
        o.sensitive = vec!["public.notes".into()];
    })
    .await;
    let f = of(&r, "fk-orphans");
    assert_eq!(f[0].evidence["rows"], 2);
    assert!(
        f[0].evidence["sample_keys"].is_null(),
        "{:?}",
        f[0].evidence
    );
    // No finding shows the orphans' keys (the whole report also holds timings, which may
    // contain the same digits).
    let findings = serde_json::to_string(&r.findings).unwrap();
    assert!(
        !findings.contains("998") && !findings.contains("999"),
        "{findings}"
    );
}

#[tokio::test]
async fn match_full_counts_half_null_keys_and_partitioned_children_once() {
    let setup = [
        "CREATE TABLE parent (a int, b int, PRIMARY KEY (a, b));
         INSERT INTO parent VALUES (1, 1);
         CREATE TABLE child (id int, a int, b int,
             CONSTRAINT child_fk FOREIGN KEY (a, b) REFERENCES parent MATCH FULL);
         CREATE INDEX ON child (b, a);
         SET session_replication_role = replica;
         INSERT INTO child VALUES (1, 1, 1), (2, NULL, NULL), (3, 1, NULL), (4, 2, 2);
         RESET session_replication_role;",
        "CREATE TABLE events (id int, user_ref int, at date NOT NULL) PARTITION BY RANGE (at);
         CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
         CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
         CREATE TABLE refs (id int PRIMARY KEY);
         INSERT INTO refs VALUES (1);
         ALTER TABLE events ADD CONSTRAINT events_ref_fk FOREIGN KEY (user_ref) REFERENCES refs;
         CREATE INDEX ON events (user_ref);
         SET session_replication_role = replica;
         INSERT INTO events VALUES (1, 1, '2025-03-01'), (2, 7, '2025-04-01'), (3, 8, '2026-02-01');
         RESET session_replication_role;",
    ];
    let (_db, r) = validate_after("val_match_full", &setup, |_| {}).await;
    let f = of(&r, "fk-orphans");
    assert_eq!(f.len(), 2, "{:#?}", r.findings);
    let child = f.iter().find(|f| f.object.contains("child_fk")).unwrap();
    assert_eq!(child.severity, Severity::Critical, "a validated key");
    assert_eq!(
        child.evidence["rows"], 2,
        "(1, NULL) breaks MATCH FULL, (2, 2) has no parent, (NULL, NULL) is fine"
    );
    let events = f
        .iter()
        .find(|f| f.object.contains("events_ref_fk"))
        .unwrap();
    assert_eq!(events.evidence["rows"], 2, "both partitions, counted once");
    assert!(
        of(&r, "fk-without-index").is_empty(),
        "an index on (b, a) covers the key (a, b): {:#?}",
        r.findings
    );
}

#[tokio::test]
async fn foreign_key_covered_only_by_a_partial_index_is_reported() {
    let setup = [
        BASE,
        "CREATE TABLE payments (id int PRIMARY KEY, order_id bigint REFERENCES orders (id), refunded bool);
         CREATE INDEX payments_partial ON payments (order_id) WHERE NOT refunded;",
    ];
    let (_db, r) = validate_after("val_fk_partial", &setup, |_| {}).await;
    let f = of(&r, "fk-without-index");
    assert_eq!(f.len(), 1, "{:#?}", r.findings);
    assert_eq!(f[0].object, "public.payments (order_id)");
    assert_eq!(
        f[0].fix.as_deref(),
        Some("CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_payments_order_id ON public.payments (order_id);")
    );
}

#[tokio::test]
async fn bigint_sequence_feeding_an_int_column_at_97_percent_is_critical() {
    let setup = ["CREATE SEQUENCE counter_seq AS bigint;
         CREATE TABLE counters (id int PRIMARY KEY DEFAULT nextval('counter_seq'));
         SELECT setval('counter_seq', 2083059138);  -- 97% of 2^31-1
         INSERT INTO counters DEFAULT VALUES;"];
    let (_db, r) = validate_after("val_seq_overflow", &setup, |_| {}).await;
    let f = of(&r, "sequence-overflow");
    assert_eq!(f.len(), 1, "{:#?}", r.findings);
    assert_eq!(f[0].severity, Severity::Critical);
    assert_eq!(
        f[0].evidence["limit"], 2147483647_i64,
        "the column type's limit"
    );
    assert!(
        f[0].message.contains("limited by the column type integer"),
        "{}",
        f[0].message
    );
}

#[tokio::test]
async fn sequence_behind_its_column_is_found_and_the_fix_works() {
    let setup = [BASE, "INSERT INTO orders (id, user_id) VALUES (10000, 1);"];
    let (db, r) = validate_after("val_seq_behind", &setup, |_| {}).await;
    let f = of(&r, "sequence-behind");
    assert_eq!(f.len(), 1, "{:#?}", r.findings);
    assert_eq!(f[0].evidence["column_max"], 10000);
    let fix = f[0].fix.clone().unwrap();
    db.client().await.batch_execute(&fix).await.unwrap();
    let settings = db.settings();
    let mut opts = ValidateOptions::from_settings(&settings);
    opts.schema = false;
    let again = validate::run(
        &Target::from_settings(&settings).unwrap(),
        &settings,
        None,
        &opts,
    )
    .await
    .unwrap();
    assert!(of(&again, "sequence-behind").is_empty(), "{fix}");
}

#[tokio::test]
async fn not_valid_check_that_would_fail_is_reported() {
    let setup = [
        BASE,
        "INSERT INTO orders (user_id, code) VALUES (1, 'x'), (1, 'y');
         ALTER TABLE orders ADD CONSTRAINT orders_code_short CHECK (length(code) > 1) NOT VALID;",
    ];
    let (_db, r) = validate_after("val_check", &setup, |_| {}).await;
    let f = of(&r, "not-valid-check-fails");
    assert_eq!(f.len(), 1, "{:#?}", r.findings);
    assert_eq!(f[0].evidence["rows"], 2);
}

#[tokio::test]
async fn failed_unique_index_build_shows_the_duplicates_and_the_invalid_index() {
    let setup = [
        BASE,
        "INSERT INTO orders (user_id, code) VALUES (1, 'dup'), (2, 'dup');",
        "CREATE UNIQUE INDEX CONCURRENTLY orders_code_uq ON orders (code); -- may fail",
    ];
    let (_db, r) = validate_after("val_invalid_unique", &setup, |_| {}).await;
    let dups = of(&r, "duplicate-keys");
    assert_eq!(dups.len(), 1, "{:#?}", r.findings);
    assert_eq!(dups[0].evidence["duplicate_values"], 1);
    assert_eq!(dups[0].evidence["sample"][0]["code"], "dup");
    assert_eq!(of(&r, "invalid-index").len(), 1, "{:#?}", r.findings);
}

#[tokio::test]
async fn duplicate_and_prefix_indexes_are_reported_unique_ones_kept() {
    let setup = [
        BASE,
        "CREATE INDEX orders_user_id_again ON orders (user_id);
         CREATE INDEX orders_user_code ON orders (user_id, code);
         CREATE UNIQUE INDEX orders_id_code ON orders (id, code);",
    ];
    let (_db, r) = validate_after("val_redundant", &setup, |_| {}).await;
    let dup = of(&r, "duplicate-index");
    assert_eq!(dup.len(), 1, "{:#?}", r.findings);
    assert_eq!(dup[0].object, "public.orders_user_id_again");
    let prefix: Vec<&str> = of(&r, "redundant-index")
        .iter()
        .map(|f| f.object.as_str())
        .collect();
    assert_eq!(
        prefix,
        ["public.orders_user_id_idx"],
        "the single-column index is a prefix of (user_id, code); the unique (id, code) and the primary key stay"
    );
}

#[tokio::test]
async fn pending_migrations_that_would_fail_on_current_data_are_found() {
    let db = TestDb::new("val_pending").await;
    let dir = native(&[
        ("0001_base.sql", BASE),
        (
            "0002_tighten.sql",
            "ALTER TABLE orders ALTER COLUMN code SET NOT NULL;\nCREATE UNIQUE INDEX orders_code_key ON orders (code);\n",
        ),
    ]);
    let set = source::load(dir.path()).unwrap();
    let settings = db.settings();
    pgkeel::migrate::Migrator::new(&settings, &set)
        .migrate(
            &db.client().await,
            &pgkeel::migrate::MigrateOptions {
                target: Some("0001_base".into()),
                ..Default::default()
            },
            &mut pgkeel::migrate::Silent,
        )
        .await
        .unwrap();
    db.client()
        .await
        .batch_execute(
            "INSERT INTO orders (user_id, code) VALUES (1, NULL), (2, NULL), (3, 'c7'), (4, 'c7')",
        )
        .await
        .unwrap();
    let mut opts = ValidateOptions::from_settings(&settings);
    opts.schema = false;
    let r = validate::run(
        &Target::from_settings(&settings).unwrap(),
        &settings,
        Some(&set),
        &opts,
    )
    .await
    .unwrap();
    let nulls = of(&r, "nulls-before-not-null");
    assert_eq!(nulls.len(), 1, "{:#?}", r.findings);
    assert_eq!(nulls[0].evidence["rows"], 2);
    assert!(nulls[0].message.contains("0002_tighten"));
    let dups = of(&r, "duplicate-keys");
    assert_eq!(dups.len(), 1, "{:#?}", r.findings);
    assert_eq!(
        dups[0].evidence["sample"][0]["code"], "c7",
        "NULLs are distinct in a unique index: only c7 is duplicated"
    );
}

#[tokio::test]
async fn a_check_without_privilege_is_skipped_and_the_run_goes_on() {
    let db = TestDb::new("val_privilege").await;
    let client = db.client().await;
    let role = format!("pgkeel_lowly_{}", std::process::id());
    client
        .batch_execute(&format!(
            "{BASE}
             DROP ROLE IF EXISTS {role};
             CREATE ROLE {role} LOGIN;
             GRANT USAGE ON SCHEMA public TO {role};
             GRANT SELECT ON users TO {role};"
        ))
        .await
        .unwrap();
    let url = db.url.replace("postgres@", &format!("{role}@"));
    let settings = support::settings_for(&url);
    let mut opts = ValidateOptions::from_settings(&settings);
    opts.schema = false;
    let r = validate::run(
        &Target::from_settings(&settings).unwrap(),
        &settings,
        None,
        &opts,
    )
    .await
    .unwrap();
    let skipped: Vec<&str> = r
        .checks
        .iter()
        .filter(|c| c.status == "skipped")
        .map(|c| c.name.as_str())
        .collect();
    assert!(
        skipped.iter().any(|n| n.starts_with("fk-orphans")),
        "orders is not readable: {:?}",
        r.checks
    );
    assert!(r
        .checks
        .iter()
        .any(|c| c.name == "fk-without-index" && c.status == "ok"));
    drop(client);
    db.client()
        .await
        .batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role};"))
        .await
        .unwrap();
}

/// Schema drift: the database against the migrations folder applied (up to what the ledger has
/// applied) to a scratch database. Pending migrations are not drift; manual changes are, and
/// their fix is the diff's DDL.
#[tokio::test]
async fn schema_drift_is_found_against_the_folder_and_the_fix_removes_it() {
    let db = TestDb::new("val_drift").await;
    let dir = native(&[
        ("0001_base.sql", BASE),
        (
            "0002_later.sql",
            "CREATE TABLE later (id bigint PRIMARY KEY);\n",
        ),
    ]);
    let set = source::load(dir.path()).unwrap();
    let settings = db.settings();
    let client = db.client().await;
    pgkeel::migrate::Migrator::new(&settings, &set)
        .migrate(
            &client,
            &pgkeel::migrate::MigrateOptions {
                target: Some("0001_base".into()),
                ..Default::default()
            },
            &mut pgkeel::migrate::Silent,
        )
        .await
        .unwrap();
    let target = Target::from_settings(&settings).unwrap();
    let mut opts = ValidateOptions::from_settings(&settings);
    opts.data = false;
    opts.performance = false;
    opts.scratch.no_embedded = true;

    let clean = validate::run(&target, &settings, Some(&set), &opts)
        .await
        .unwrap();
    assert!(
        clean.findings.is_empty(),
        "0002 is pending, not drift: {:#?}",
        clean.findings
    );
    assert!(
        clean.checks.iter().all(|c| c.status == "ok"),
        "{:?}",
        clean.checks
    );

    client
        .batch_execute(
            "DROP INDEX orders_user_id_idx;
             ALTER TABLE orders ADD COLUMN extra int;
             CREATE TABLE scratchpad (note text);",
        )
        .await
        .unwrap();
    let r = validate::run(&target, &settings, Some(&set), &opts)
        .await
        .unwrap();
    let ids: Vec<(&str, &str)> = r
        .findings
        .iter()
        .map(|f| (f.id.as_str(), f.object.as_str()))
        .collect();
    assert!(
        ids.contains(&("missing-index", "public.orders_user_id_idx")),
        "{ids:?}"
    );
    assert!(
        ids.contains(&("extra-column", "public.orders.extra")),
        "{ids:?}"
    );
    assert!(
        ids.contains(&("extra-table", "public.scratchpad")),
        "{ids:?}"
    );
    assert!(
        ids.contains(&("no-primary-key", "public.scratchpad")),
        "{ids:?}"
    );
    for f in r.findings.iter().filter(|f| f.id != "no-primary-key") {
        client
            .batch_execute(f.fix.as_deref().unwrap())
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "fix of {} failed: {e:?}\n{}",
                    f.object,
                    f.fix.as_deref().unwrap()
                )
            });
    }
    let fixed = validate::run(&target, &settings, Some(&set), &opts)
        .await
        .unwrap();
    assert!(fixed.findings.is_empty(), "{:#?}", fixed.findings);
}
