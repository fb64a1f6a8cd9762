//! Tests of rollback generation and running.

use super::*;
use crate::ident::minimal as ident;
use crate::invert::LOSES_DATA;

fn gen(sql: &str) -> Generated {
    generate(&crate::sql::split(sql, 0).expect("test SQL parses"))
}

/// The generated rollback, which must itself parse.
fn inverse(sql: &str) -> String {
    let g = gen(sql);
    let out = g
        .sql
        .unwrap_or_else(|| panic!("{sql}: irreversible: {:?}", g.irreversible));
    if let Err(e) = pg_query::parse(&out) {
        panic!("generated rollback does not parse ({e}):\n{out}");
    }
    out
}

/// The reason a one-statement migration is irreversible, and whether it loses data.
fn refused(sql: &str) -> (String, bool) {
    let g = gen(sql);
    assert!(
        g.sql.is_none(),
        "{sql} should be irreversible, got {:?}",
        g.sql
    );
    assert_eq!(g.irreversible.len(), 1, "{:?}", g.irreversible);
    (g.irreversible[0].reason.clone(), g.data_loss)
}

#[test]
fn identifiers_are_quoted_only_when_needed() {
    assert_eq!(ident("users"), "users");
    assert_eq!(ident("_a1"), "_a1");
    assert_eq!(ident("MyTable"), "\"MyTable\"");
    assert_eq!(ident("user"), "\"user\"", "reserved keyword");
    assert_eq!(ident("select"), "\"select\"");
    assert_eq!(ident("name"), "name", "unreserved keyword");
    assert_eq!(ident("1abc"), "\"1abc\"");
    assert_eq!(ident("a b"), "\"a b\"");
    assert_eq!(ident("a\"b"), "\"a\"\"b\"");
    assert_eq!(ident(""), "\"\"");
}

#[test]
fn create_table_drops_it_with_names_that_round_trip() {
    assert_eq!(
        inverse("CREATE TABLE IF NOT EXISTS \"users\" (id int)"),
        "DROP TABLE IF EXISTS users;\n"
    );
    assert_eq!(
        inverse("CREATE TABLE \"App\".\"MyTable\" (\"select\" int)"),
        "DROP TABLE IF EXISTS \"App\".\"MyTable\";\n"
    );
    assert_eq!(
        inverse("CREATE TABLE \"user\" (id int)"),
        "DROP TABLE IF EXISTS \"user\";\n"
    );
    assert_eq!(
        inverse("CREATE TABLE s.t AS SELECT 1 AS x"),
        "DROP TABLE IF EXISTS s.t;\n"
    );
}

#[test]
fn statements_are_undone_last_first() {
    let sql = "CREATE TABLE a (id int PRIMARY KEY);\n\
               CREATE TABLE b (id int, a_id int REFERENCES a);\n\
               CREATE INDEX b_a_idx ON b (a_id);";
    assert_eq!(
        inverse(sql),
        "DROP INDEX IF EXISTS b_a_idx;\nDROP TABLE IF EXISTS b;\nDROP TABLE IF EXISTS a;\n"
    );
}

#[test]
fn indexes_views_sequences_and_materialized_views() {
    assert_eq!(
        inverse("CREATE UNIQUE INDEX IF NOT EXISTS \"Idx\" ON s.t (a)"),
        "DROP INDEX IF EXISTS s.\"Idx\";\n",
        "an index lives in its table's schema"
    );
    // Dropped in a transaction like every rollback: no CONCURRENTLY.
    assert_eq!(
        inverse("CREATE INDEX CONCURRENTLY i ON t (a)"),
        "DROP INDEX IF EXISTS i;\n"
    );
    let (reason, _) = refused("CREATE INDEX ON t (a)");
    assert!(reason.contains("name the index"), "{reason}");
    assert_eq!(
        inverse("CREATE VIEW v AS SELECT 1"),
        "DROP VIEW IF EXISTS v;\n"
    );
    assert_eq!(
        inverse("CREATE MATERIALIZED VIEW s.mv AS SELECT 1"),
        "DROP MATERIALIZED VIEW IF EXISTS s.mv;\n"
    );
    assert_eq!(
        inverse("CREATE SEQUENCE IF NOT EXISTS s.seq START 10"),
        "DROP SEQUENCE IF EXISTS s.seq;\n"
    );
    let (reason, loss) = refused("CREATE OR REPLACE VIEW v AS SELECT 1");
    assert!(reason.contains("earlier definition"), "{reason}");
    assert!(!loss);
}

#[test]
fn types_enums_domains() {
    assert_eq!(
        inverse("CREATE TYPE \"public\".\"feedback_category\" AS ENUM('a', 'b')"),
        "DROP TYPE IF EXISTS public.feedback_category;\n"
    );
    assert_eq!(
        inverse("CREATE TYPE pair AS (a int, b text)"),
        "DROP TYPE IF EXISTS pair;\n"
    );
    assert_eq!(
        inverse("CREATE DOMAIN s.\"Email\" AS text CHECK (VALUE LIKE '%@%')"),
        "DROP DOMAIN IF EXISTS s.\"Email\";\n"
    );
    assert_eq!(
        inverse("CREATE TYPE r AS RANGE (subtype = int4)"),
        "DROP TYPE IF EXISTS r;\n"
    );
}

#[test]
fn functions_and_procedures_are_dropped_with_their_argument_types() {
    // Defaults and OUT arguments are not part of a function's identity.
    assert_eq!(
        inverse(
            "CREATE FUNCTION s.f(a int, b text[] DEFAULT '{}', OUT c int, VARIADIC d numeric[]) \
             RETURNS int LANGUAGE sql AS 'SELECT 1'",
        ),
        "DROP FUNCTION IF EXISTS s.f(int, text[], VARIADIC numeric[]);\n"
    );
    assert_eq!(
        inverse(
            "CREATE FUNCTION \"User\".\"select\"(x \"MyType\", y timestamp with time zone, z varchar(10)) \
             RETURNS int LANGUAGE sql AS 'SELECT 1'",
        ),
        "DROP FUNCTION IF EXISTS \"User\".\"select\"(\"MyType\", timestamp with time zone, varchar(10));\n"
    );
    let out =
        inverse("CREATE FUNCTION \"Count\"() RETURNS TABLE (n int) LANGUAGE sql AS 'SELECT 1'");
    assert_eq!(out, "DROP FUNCTION IF EXISTS \"Count\"();\n");
    // A procedure's OUT arguments do identify it.
    assert_eq!(
        inverse(
            "CREATE PROCEDURE p(IN a int, OUT b int) LANGUAGE plpgsql AS $$ BEGIN b := a; END $$",
        ),
        "DROP PROCEDURE IF EXISTS p(int, OUT int);\n"
    );
    let (reason, _) =
        refused("CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'");
    assert!(reason.contains("CREATE OR REPLACE function"), "{reason}");
}

#[test]
fn triggers_policies_rules_extensions_schemas() {
    assert_eq!(
        inverse("CREATE TRIGGER trg BEFORE UPDATE ON s.t FOR EACH ROW EXECUTE FUNCTION f()"),
        "DROP TRIGGER IF EXISTS trg ON s.t;\n"
    );
    assert_eq!(
        inverse("CREATE POLICY \"Own rows\" ON t USING (true)"),
        "DROP POLICY IF EXISTS \"Own rows\" ON t;\n"
    );
    assert_eq!(
        inverse("CREATE RULE r AS ON INSERT TO t DO INSTEAD NOTHING"),
        "DROP RULE IF EXISTS r ON t;\n"
    );
    assert_eq!(
        inverse("CREATE EXTENSION \"uuid-ossp\""),
        "DROP EXTENSION IF EXISTS \"uuid-ossp\";\n"
    );
    let (reason, _) = refused("CREATE EXTENSION IF NOT EXISTS pgcrypto");
    assert!(reason.contains("may have been there before"), "{reason}");
    assert_eq!(
        inverse("CREATE SCHEMA IF NOT EXISTS app"),
        "DROP SCHEMA IF EXISTS app;\n"
    );
}

#[test]
fn alter_table_add_column_and_constraints() {
    assert_eq!(
        inverse(
            "ALTER TABLE \"page_feedback\" ADD COLUMN \"category\" text DEFAULT 'other' NOT NULL"
        ),
        "ALTER TABLE page_feedback DROP COLUMN IF EXISTS category;\n"
    );
    assert_eq!(
        inverse("ALTER TABLE IF EXISTS ONLY s.t ADD COLUMN a int, ADD CONSTRAINT \"T_pos\" CHECK (a > 0)"),
        "ALTER TABLE IF EXISTS ONLY s.t DROP CONSTRAINT IF EXISTS \"T_pos\", DROP COLUMN IF EXISTS a;\n"
    );
    assert_eq!(
        inverse("ALTER TABLE t ADD CONSTRAINT t_fk FOREIGN KEY (a) REFERENCES u (id)"),
        "ALTER TABLE t DROP CONSTRAINT IF EXISTS t_fk;\n"
    );
    let (reason, loss) = refused("ALTER TABLE t ADD CHECK (a > 0)");
    assert!(reason.contains("name the constraint"), "{reason}");
    assert!(!loss);
    let (reason, _) = refused("ALTER TABLE t ADD PRIMARY KEY (id)");
    assert!(reason.contains("name the constraint"), "{reason}");
    let (reason, _) = refused("ALTER TABLE t ADD CONSTRAINT t_pk PRIMARY KEY USING INDEX t_idx");
    assert!(reason.contains("USING INDEX"), "{reason}");
}

#[test]
fn catalog_state_inverts_defaults_and_skips_changes_that_changed_nothing() {
    let sql = "ALTER TABLE app.t ALTER COLUMN a SET DEFAULT 2, ALTER COLUMN b SET NOT NULL;\n\
               ALTER TABLE t ALTER COLUMN c DROP DEFAULT;\n\
               ALTER TABLE app.t ALTER COLUMN a SET DEFAULT 3, ALTER COLUMN a DROP NOT NULL;";
    let stmts = crate::sql::split(sql, 0).unwrap();
    assert_eq!(
        columns_altered(&stmts),
        vec![
            ("app".to_string(), "t".to_string(), "a".to_string()),
            ("app".into(), "t".into(), "b".into()),
            ("public".into(), "t".into(), "c".into()),
        ]
    );
    let mut before = Before::default();
    let col = |not_null, default: Option<&str>| ColumnBefore {
        not_null,
        default: default.map(str::to_string),
    };
    before.insert("app", "t", "a", col(true, Some("1")));
    before.insert("app", "t", "b", col(true, None));
    before.insert("public", "t", "c", col(false, Some("'x'::text")));
    let g = generate_with(&stmts, &before);
    assert_eq!(
        g.sql.as_deref(),
        Some(
            "ALTER TABLE app.t ALTER COLUMN a SET NOT NULL;\n\
             ALTER TABLE t ALTER COLUMN c SET DEFAULT 'x'::text;\n\
             ALTER TABLE app.t ALTER COLUMN a SET DEFAULT 1;\n"
        ),
        "b was NOT NULL already; a's second SET DEFAULT is undone by the first one's inverse"
    );
}

#[test]
fn alter_column_not_null_and_defaults() {
    assert_eq!(
        inverse("ALTER TABLE t ALTER COLUMN \"Email\" SET NOT NULL"),
        "ALTER TABLE t ALTER COLUMN \"Email\" DROP NOT NULL;\n"
    );
    assert_eq!(
        inverse("ALTER TABLE t ALTER COLUMN email DROP NOT NULL"),
        "ALTER TABLE t ALTER COLUMN email SET NOT NULL;\n"
    );
    let (reason, loss) = refused("ALTER TABLE t ALTER COLUMN a SET DEFAULT 1");
    assert!(reason.contains("previous default unknown"), "{reason}");
    assert!(!loss);
    let (reason, _) = refused("ALTER TABLE t ALTER COLUMN a DROP DEFAULT");
    assert!(reason.contains("previous default unknown"), "{reason}");
    let (_, loss) = refused("ALTER TABLE t ALTER COLUMN a TYPE bigint");
    assert!(loss, "a type change may lose precision");
    assert_eq!(
        inverse("ALTER TABLE t ENABLE ROW LEVEL SECURITY"),
        "ALTER TABLE t DISABLE ROW LEVEL SECURITY;\n"
    );
    assert_eq!(
        inverse("ALTER TABLE t ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY"),
        "ALTER TABLE t ALTER COLUMN id DROP IDENTITY IF EXISTS;\n"
    );
    // Inverted from the catalog read at apply time (invert::catalog); without it, refused.
    let (reason, _) = refused("ALTER TABLE t SET (fillfactor = 70)");
    assert!(reason.contains("previous storage parameters"), "{reason}");
}

#[test]
fn renames_are_reversed() {
    assert_eq!(
        inverse("ALTER TABLE s.old RENAME TO new"),
        "ALTER TABLE s.new RENAME TO old;\n"
    );
    assert_eq!(
        inverse("ALTER TABLE t RENAME COLUMN \"A\" TO b"),
        "ALTER TABLE t RENAME COLUMN b TO \"A\";\n"
    );
    assert_eq!(
        inverse("ALTER TABLE t RENAME CONSTRAINT c1 TO c2"),
        "ALTER TABLE t RENAME CONSTRAINT c2 TO c1;\n"
    );
    assert_eq!(
        inverse("ALTER INDEX IF EXISTS s.i1 RENAME TO i2"),
        "ALTER INDEX IF EXISTS s.i2 RENAME TO i1;\n"
    );
    assert_eq!(
        inverse("ALTER TYPE s.mood RENAME TO feeling"),
        "ALTER TYPE s.feeling RENAME TO mood;\n"
    );
    assert_eq!(
        inverse("ALTER TYPE mood RENAME VALUE 'sad' TO 'blue'"),
        "ALTER TYPE mood RENAME VALUE E'blue' TO E'sad';\n"
    );
    assert_eq!(
        inverse("ALTER TRIGGER a ON t RENAME TO b"),
        "ALTER TRIGGER b ON t RENAME TO a;\n"
    );
    assert_eq!(
        inverse("ALTER TABLE s.t SET SCHEMA archive"),
        "ALTER TABLE archive.t SET SCHEMA s;\n"
    );
    let (reason, _) = refused("ALTER TABLE t SET SCHEMA archive");
    assert!(reason.contains("qualify the name"), "{reason}");
    // A table created and renamed in one migration: renamed back, then dropped.
    assert_eq!(
        inverse("CREATE TABLE a (id int); ALTER TABLE a RENAME TO b; ALTER TABLE b ALTER COLUMN id SET NOT NULL;"),
        "ALTER TABLE b RENAME TO a;\nDROP TABLE IF EXISTS a;\n"
    );
}

#[test]
fn enum_values_cannot_be_removed() {
    let (reason, loss) = refused("ALTER TYPE mood ADD VALUE 'meh' AFTER 'ok'");
    assert!(
        reason.contains("PostgreSQL cannot remove an enum value"),
        "{reason}"
    );
    assert!(!loss);
    // …unless the type itself is new.
    assert_eq!(
        inverse("CREATE TYPE mood AS ENUM ('ok'); ALTER TYPE mood ADD VALUE 'meh';"),
        "DROP TYPE IF EXISTS mood;\n"
    );
}

#[test]
fn drops_and_data_changes_lose_data() {
    for sql in [
        "DROP TABLE users",
        "DROP TABLE IF EXISTS a, b",
        "ALTER TABLE t DROP COLUMN c",
        "DELETE FROM t WHERE id = 1",
        "UPDATE t SET a = 1",
        "TRUNCATE t",
        "DROP SCHEMA s",
        "DROP TYPE mood CASCADE",
    ] {
        let (reason, loss) = refused(sql);
        assert_eq!(reason, LOSES_DATA, "{sql}");
        assert!(loss, "{sql}");
    }
    for sql in [
        "DROP INDEX i",
        "DROP VIEW v",
        "DROP FUNCTION f()",
        "ALTER TABLE t DROP CONSTRAINT c",
    ] {
        let (reason, loss) = refused(sql);
        assert!(reason.contains("write a .down.sql"), "{sql}: {reason}");
        assert!(!loss, "{sql}");
    }
    let (reason, loss) = refused("INSERT INTO t VALUES (1)");
    assert!(reason.contains("inserts rows"), "{reason}");
    assert!(!loss);
    let (reason, _) = refused("COMMENT ON TABLE t IS 'x'");
    assert!(reason.contains("previous comment"), "{reason}");
}

#[test]
fn changes_to_objects_the_migration_created_need_no_inverse() {
    let sql = "CREATE TABLE roles (id int, name text);\n\
               COMMENT ON TABLE roles IS 'who may do what';\n\
               COMMENT ON COLUMN roles.name IS 'shown';\n\
               INSERT INTO roles VALUES (1, 'admin');\n\
               UPDATE roles SET name = 'root';\n\
               ALTER TABLE roles ALTER COLUMN name SET DEFAULT 'user', DROP COLUMN id;\n\
               GRANT SELECT ON roles TO PUBLIC;\n\
               CREATE TABLE tmp (x int);\n\
               DROP TABLE tmp;";
    assert_eq!(
        inverse(sql),
        "DROP TABLE IF EXISTS tmp;\nDROP TABLE IF EXISTS roles;\n"
    );
    // A column added and dropped again in the same migration.
    assert_eq!(
        inverse("ALTER TABLE t ADD COLUMN x int; ALTER TABLE t DROP COLUMN x;"),
        "ALTER TABLE t DROP COLUMN IF EXISTS x;\n"
    );
    // A data-modifying WITH may write elsewhere.
    let g = gen("CREATE TABLE a (x int); WITH d AS (DELETE FROM b RETURNING x) INSERT INTO a SELECT x FROM d;");
    assert!(g.sql.is_none());
    assert_eq!(g.irreversible[0].statement, 1);
}

#[test]
fn changes_that_depend_on_later_objects_are_undone_in_place() {
    // The column uses a type created after its table: it must go before the type does.
    assert_eq!(
        inverse(
            "CREATE TABLE t (id int); CREATE TYPE st AS ENUM ('a'); \
             ALTER TABLE t ADD COLUMN s st, ALTER COLUMN id SET NOT NULL;"
        ),
        "ALTER TABLE t DROP COLUMN IF EXISTS s;\nDROP TYPE IF EXISTS st;\nDROP TABLE IF EXISTS t;\n"
    );
    // A default calling a later function, or a later sequence by its name in a literal.
    assert_eq!(
        inverse(
            "CREATE TABLE t (a int, b int); \
             CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'; \
             CREATE SEQUENCE app.seq; \
             ALTER TABLE t ALTER COLUMN a SET DEFAULT f(), ALTER COLUMN b SET DEFAULT nextval('app.seq');"
        ),
        "ALTER TABLE t ALTER COLUMN b DROP DEFAULT, ALTER COLUMN a DROP DEFAULT;\n\
         DROP SEQUENCE IF EXISTS app.seq;\n\
         DROP FUNCTION IF EXISTS f();\n\
         DROP TABLE IF EXISTS t;\n"
    );
    // An unnamed foreign key to a later table cannot be dropped by name.
    let g = gen(
        "CREATE TABLE a (id int, b_id int); CREATE TABLE b (id int PRIMARY KEY); \
                 ALTER TABLE a ADD FOREIGN KEY (b_id) REFERENCES b;",
    );
    assert_eq!(g.irreversible.len(), 1, "{:?}", g.irreversible);
    assert!(g.irreversible[0].reason.contains("name the constraint"));
    // …while one to an earlier table goes with its table.
    assert_eq!(
        inverse(
            "CREATE TABLE b (id int PRIMARY KEY); CREATE TABLE a (id int, b_id int); \
                 ALTER TABLE a ADD FOREIGN KEY (b_id) REFERENCES b;"
        ),
        "DROP TABLE IF EXISTS a;\nDROP TABLE IF EXISTS b;\n"
    );
}

#[test]
fn drizzle_do_blocks_are_understood() {
    let sql = "DO $$ BEGIN\n ALTER TABLE \"analysis_sessions\" ADD CONSTRAINT \"analysis_sessions_user_id_users_id_fk\" FOREIGN KEY (\"user_id\") REFERENCES \"public\".\"users\"(\"id\") ON DELETE cascade ON UPDATE no action;\nEXCEPTION\n WHEN duplicate_object THEN null;\nEND $$;";
    assert_eq!(
        inverse(sql),
        "ALTER TABLE analysis_sessions DROP CONSTRAINT IF EXISTS analysis_sessions_user_id_users_id_fk;\n"
    );
    // Older drizzle-kit wraps CREATE TYPE the same way.
    assert_eq!(
        inverse("DO $$ BEGIN CREATE TYPE \"public\".\"role\" AS ENUM('a'); EXCEPTION WHEN duplicate_object THEN null; END $$;"),
        "DROP TYPE IF EXISTS public.role;\n"
    );
    for other in [
        "DO $$ BEGIN PERFORM 1; END $$",
        "DO $$ BEGIN ALTER TABLE t ADD CONSTRAINT c CHECK (true); EXCEPTION WHEN others THEN null; END $$",
        "DO LANGUAGE plperl $$ 1 $$",
    ] {
        let (reason, _) = refused(other);
        assert!(reason.contains("DO block"), "{other}: {reason}");
    }
    let (reason, _) = refused(
        "DO $$ BEGIN ALTER TABLE t ADD CHECK (a > 0); EXCEPTION WHEN duplicate_object THEN null; END $$",
    );
    assert!(reason.contains("name the constraint"), "{reason}");
}

#[test]
fn do_block_with_non_ascii_body_does_not_panic() {
    // Byte 5 of the body falls inside `é`.
    for sql in [
        "DO $$--ñé\nBEGIN\n  CREATE TABLE d (id integer PRIMARY KEY);\nEND $$",
        "DO $$--ñé\nBEGIN CREATE TYPE e AS ENUM('a'); EXCEPTION WHEN duplicate_object THEN null; END $$",
        "DO $$ñé$$",
    ] {
        let (reason, _) = refused(sql);
        assert!(reason.contains("DO block"), "{sql}: {reason}");
    }
}

#[test]
fn irreversible_statements_are_listed_and_no_sql_is_produced() {
    let g = gen("CREATE TABLE a (x int);\nDROP TABLE old;\nALTER TYPE mood ADD VALUE 'x';");
    assert_eq!(g.sql, None);
    assert!(g.data_loss);
    let at: Vec<usize> = g.irreversible.iter().map(|i| i.statement).collect();
    assert_eq!(at, vec![1, 2]);
    assert_eq!(g.irreversible[0].text, "DROP TABLE old");
    assert_eq!(gen("").sql.as_deref(), Some(""));
    assert_eq!(
        gen("VACUUM t; SET lock_timeout = '1s';").sql.as_deref(),
        Some("")
    );
    let (reason, _) = refused("SET search_path = app");
    assert!(reason.contains("resolve names"), "{reason}");
    let (reason, _) = refused("SELECT setval('s', 10)");
    assert!(reason.contains("`SELECT setval('s', 10)`"), "{reason}");
}

#[test]
fn example_project_migrations_all_invert() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/cfi-handbook/drizzle");
    let set = crate::source::load(&dir).unwrap();
    assert_eq!(set.migrations.len(), 5);
    for m in &set.migrations {
        let stmts = crate::migrate::parse(m).unwrap();
        let g = generate(&stmts);
        assert!(
            g.irreversible.is_empty() && !g.data_loss,
            "{}: {:?}",
            m.id,
            g.irreversible
        );
        let sql = g.sql.unwrap();
        pg_query::parse(&sql).unwrap_or_else(|e| panic!("{}: {e}\n{sql}", m.id));
    }
    let sql = |id: &str| {
        generate(&crate::migrate::parse(set.get(id).unwrap()).unwrap())
            .sql
            .unwrap()
    };
    assert_eq!(
        sql("0001_tiny_nightcrawler"),
        "ALTER TABLE question_analysis DROP CONSTRAINT IF EXISTS question_analysis_file_id_processed_files_id_fk;\n\
         ALTER TABLE question_analysis DROP CONSTRAINT IF EXISTS question_analysis_session_id_analysis_sessions_id_fk;\n\
         DROP TABLE IF EXISTS question_analysis;\n"
    );
    assert_eq!(
        sql("0004_happy_banshee"),
        "DROP INDEX IF EXISTS page_feedback_page_idx;\n\
         ALTER TABLE page_feedback DROP COLUMN IF EXISTS category;\n\
         DROP TYPE IF EXISTS public.feedback_category;\n"
    );
    assert_eq!(
        sql("0000_brave_wolverine"),
        "ALTER TABLE processed_files DROP CONSTRAINT IF EXISTS processed_files_session_id_analysis_sessions_id_fk;\n\
         ALTER TABLE processed_files DROP CONSTRAINT IF EXISTS processed_files_user_id_users_id_fk;\n\
         ALTER TABLE analysis_sessions DROP CONSTRAINT IF EXISTS analysis_sessions_user_id_users_id_fk;\n\
         DROP TABLE IF EXISTS processed_files;\n\
         DROP TABLE IF EXISTS analysis_sessions;\n\
         DROP TABLE IF EXISTS users;\n"
    );
}

#[test]
fn stored_rollbacks_may_ask_for_no_transaction() {
    assert!(stored_no_transaction(
        "-- Rollback\n-- pgkeel:no-transaction\nDROP INDEX CONCURRENTLY i;"
    ));
    assert!(!stored_no_transaction(
        "DROP INDEX i;\n-- pgkeel:no-transaction\n"
    ));
}
