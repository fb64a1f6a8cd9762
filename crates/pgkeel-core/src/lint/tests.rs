//! Every rule has a failing and a passing example; the catalogue, the examples and
//! docs/lint-rules.md stay in step.

use super::*;

/// `(rule, SQL that breaks it, SQL that does the same safely)`. "Existing" tables are those the
/// file did not create.
const CASES: &[(&str, &str, &str)] = &[
    ("require-concurrent-index",
        "CREATE INDEX orders_user_idx ON orders (user_id);",
        "CREATE TABLE t (id bigint); CREATE INDEX t_id_idx ON t (id);"),
    ("require-concurrent-drop-index",
        "DROP INDEX orders_user_idx;",
        "DROP INDEX CONCURRENTLY IF EXISTS orders_user_idx;"),
    ("constraint-without-not-valid",
        "ALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users (id);",
        "ALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;\nALTER TABLE orders VALIDATE CONSTRAINT orders_user_fk;"),
    ("set-not-null",
        "ALTER TABLE orders ALTER COLUMN note SET NOT NULL;",
        "ALTER TABLE orders ADD CONSTRAINT note_nn CHECK (note IS NOT NULL) NOT VALID;\nALTER TABLE orders VALIDATE CONSTRAINT note_nn;\nALTER TABLE orders ALTER COLUMN note SET NOT NULL;\nALTER TABLE orders DROP CONSTRAINT note_nn;"),
    ("volatile-default",
        "ALTER TABLE orders ADD COLUMN token uuid DEFAULT gen_random_uuid();",
        "ALTER TABLE orders ADD COLUMN created_at timestamptz DEFAULT now();"),
    ("rewriting-type-change",
        "ALTER TABLE orders ALTER COLUMN amount TYPE bigint;",
        "ALTER TABLE orders ALTER COLUMN note TYPE text;"),
    ("rename-column",
        "ALTER TABLE orders RENAME COLUMN note TO comment;",
        "CREATE TABLE t (a int); ALTER TABLE t RENAME COLUMN a TO b;"),
    ("rename-table",
        "ALTER TABLE orders RENAME TO purchases;",
        "CREATE TABLE t (a int); ALTER TABLE t RENAME TO u;"),
    ("drop-column",
        "ALTER TABLE orders DROP COLUMN note;",
        "CREATE TABLE t (a int, b int); ALTER TABLE t DROP COLUMN b;"),
    ("drop-table",
        "DROP TABLE orders;",
        "CREATE TABLE scratch (a int); DROP TABLE scratch;"),
    ("unique-without-index",
        "ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email);",
        "ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE USING INDEX users_email_idx;"),
    ("primary-key-without-index",
        "ALTER TABLE events ADD PRIMARY KEY (id);",
        "ALTER TABLE events ADD CONSTRAINT events_pkey PRIMARY KEY USING INDEX events_id_idx;"),
    ("prefer-bigint",
        "CREATE TABLE t (id serial PRIMARY KEY);",
        "CREATE TABLE t (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY);"),
    ("prefer-timestamptz",
        "CREATE TABLE t (at timestamp);",
        "CREATE TABLE t (at timestamptz);"),
    ("prefer-jsonb",
        "CREATE TABLE t (doc json);",
        "CREATE TABLE t (doc jsonb);"),
    ("ban-char",
        "CREATE TABLE t (code char(3));",
        "CREATE TABLE t (code text CHECK (length(code) = 3));"),
    ("concurrently-in-transaction",
        "BEGIN;\nCREATE INDEX CONCURRENTLY IF NOT EXISTS i ON orders (user_id);\nCOMMIT;",
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON orders (user_id);"),
    ("transaction-control",
        "BEGIN;\nCREATE TABLE t (id bigint);\nCOMMIT;",
        "CREATE TABLE t (id bigint);"),
    ("vacuum-full-or-cluster",
        "VACUUM FULL orders;",
        "VACUUM (ANALYZE) orders;"),
    ("truncate-cascade",
        "TRUNCATE users CASCADE;",
        "TRUNCATE orders, users;"),
    ("identifier-too-long",
        "CREATE TABLE a_table_name_that_goes_on_and_on_well_past_the_sixty_three_byte_limit (id bigint);",
        "CREATE TABLE a_reasonable_name (id bigint);"),
    ("non-idempotent-non-transactional",
        "CREATE INDEX CONCURRENTLY i ON orders (user_id);",
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON orders (user_id);"),
];

fn ids(sql: &str, no_tx: bool, opts: &LintOptions) -> Vec<&'static str> {
    let r = lint_file(Path::new("m.sql"), sql, no_tx, opts);
    assert!(r.syntax_error.is_none(), "{sql}: {:?}", r.syntax_error);
    r.violations.iter().map(|v| v.rule).collect()
}

#[test]
fn every_rule_fails_its_bad_example_and_passes_its_good_one() {
    let opts = LintOptions::default();
    for (rule, bad, good) in CASES {
        assert!(super::rule(rule).is_some(), "{rule} is not catalogued");
        let found = ids(bad, false, &opts);
        assert!(
            found.contains(rule),
            "{rule}: not found in\n{bad}\n(found {found:?})"
        );
        let found = ids(good, false, &opts);
        assert!(
            !found.contains(rule),
            "{rule}: false positive on\n{good}\n({found:?})"
        );
    }
}

#[test]
fn version_dependent_rules() {
    let old = LintOptions {
        pg_version: 100000,
        ..LintOptions::default()
    };
    let new = LintOptions::default();
    let add_value = "ALTER TYPE mood ADD VALUE 'meh';";
    assert!(ids(add_value, false, &old).contains(&"enum-add-value-in-transaction"));
    assert!(!ids(add_value, true, &old).contains(&"enum-add-value-in-transaction"));
    assert!(!ids(add_value, false, &new).contains(&"enum-add-value-in-transaction"));
    let constant_default = "ALTER TABLE orders ADD COLUMN flag bool DEFAULT false;";
    assert!(ids(constant_default, false, &old).contains(&"volatile-default"));
    assert!(!ids(constant_default, false, &new).contains(&"volatile-default"));
}

#[test]
fn missing_lock_timeout_only_when_pgkeels_is_off_and_the_file_sets_none() {
    let off = LintOptions {
        lock_timeout_disabled: true,
        ..LintOptions::default()
    };
    let sql = "ALTER TABLE orders ADD COLUMN note text;";
    assert_eq!(ids(sql, false, &off), ["missing-lock-timeout"]);
    assert!(ids(sql, false, &LintOptions::default()).is_empty());
    assert!(ids(&format!("SET lock_timeout = '2s';\n{sql}"), false, &off).is_empty());
}

#[test]
fn suppressions_silence_one_statement_or_the_file_and_are_checked() {
    let opts = LintOptions::default();
    let sql = "-- pgkeel:ignore drop-column the column was never read\n\
               ALTER TABLE orders DROP COLUMN legacy;\n\
               ALTER TABLE orders DROP COLUMN other;\n";
    let r = lint_file(Path::new("m.sql"), sql, false, &opts);
    let v: Vec<(&str, usize)> = r
        .violations
        .iter()
        .map(|v| (v.rule, v.location.line))
        .collect();
    assert_eq!(
        v,
        [("drop-column", 3)],
        "only the next statement is silenced"
    );

    let sql = "-- pgkeel:ignore-file drop-column cleanup release\n\
               ALTER TABLE orders DROP COLUMN a;\nALTER TABLE orders DROP COLUMN b;\n";
    assert!(ids(sql, false, &opts).is_empty());

    let sql = "-- pgkeel:ignore drop-colum typo\nALTER TABLE orders DROP COLUMN a;\n";
    assert_eq!(ids(sql, false, &opts), ["unknown-rule", "drop-column"]);

    let sql = "-- pgkeel:ignore prefer-jsonb not needed\nCREATE TABLE t (doc jsonb);\n";
    assert_eq!(ids(sql, false, &opts), ["unused-suppression"]);

    let sql = "-- pgkeel:ignore drop-column\nALTER TABLE orders DROP COLUMN a;\n";
    assert_eq!(
        ids(sql, false, &opts),
        ["unknown-rule"],
        "a reason is required"
    );
}

#[test]
fn positions_point_at_the_offending_token() {
    let sql = "CREATE TABLE t (\n  id bigint,\n  at timestamp\n);\n";
    let r = lint_file(Path::new("m.sql"), sql, false, &LintOptions::default());
    let v = &r.violations[0];
    assert_eq!(
        (v.rule, v.location.line, v.location.column),
        ("prefer-timestamptz", 3, 6)
    );
}

#[test]
fn drizzle_breakpoints_and_syntax_errors() {
    let sql = "CREATE TABLE \"a\" (\"id\" serial PRIMARY KEY);\n--> statement-breakpoint\nCREATE INDEX \"a_idx\" ON \"a\" (\"id\");";
    assert_eq!(ids(sql, false, &LintOptions::default()), ["prefer-bigint"]);
    let r = lint_file(
        Path::new("bad.sql"),
        "CREATE TABEL x ();",
        false,
        &LintOptions::default(),
    );
    assert!(
        r.syntax_error
            .as_deref()
            .unwrap()
            .starts_with("bad.sql:1:8: syntax error"),
        "{:?}",
        r.syntax_error
    );
}

#[test]
fn docs_list_every_rule() {
    let doc = include_str!("../../../../docs/lint-rules.md");
    for r in RULES {
        assert!(
            doc.contains(&format!("### `{}`", r.id)),
            "docs/lint-rules.md lacks {}",
            r.id
        );
    }
}
