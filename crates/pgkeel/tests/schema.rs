//! The schema model against real PostgreSQL: the corpus of schema pairs (A→B→A through the
//! diff), dump → SQL → restore, the constant catalog query count, and what is left out.

mod support;

use std::path::{Path, PathBuf};

use futures_util::stream::{self, StreamExt};
use pgkeel::schema::{self, introspect, Diff, IntrospectOptions, Snapshot};
use pgkeel::scratch::ScratchOptions;
use pgkeel::snapshot_input::{self, SnapshotInput};
use support::TestDb;
use tokio_postgres::Client;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schema_corpus")
}

async fn run_sql(db: &TestDb, sql: &str) -> Result<(), String> {
    exec(&db.client().await, sql).await
}

async fn exec(client: &Client, sql: &str) -> Result<(), String> {
    client
        .batch_execute(sql)
        .await
        .map_err(|e| format!("{e:?}"))
}

async fn snapshot(db: &TestDb, opts: &IntrospectOptions) -> Snapshot {
    snap(&db.client().await, opts).await
}

async fn snap(client: &Client, opts: &IntrospectOptions) -> Snapshot {
    introspect(client, opts).await.expect("introspection works")
}

/// Applies a diff change by change (each in its own implicit transaction, as a new enum
/// value must be committed before it is used).
async fn apply(client: &Client, d: &Diff) -> Result<(), String> {
    for c in &d.changes {
        assert!(
            c.sql.is_some() || c.unsupported.is_some(),
            "a change has neither SQL nor a reason: {c:?}"
        );
        if let Some(sql) = &c.sql {
            client
                .batch_execute(sql)
                .await
                .map_err(|e| format!("{sql}\n  -> {e:?}"))?;
        }
    }
    Ok(())
}

fn compare(what: &str, got: &Snapshot, want: &Snapshot) -> Result<(), String> {
    if got == want {
        return Ok(());
    }
    let (g, w) = (got.to_json(), want.to_json());
    let first = g
        .lines()
        .zip(w.lines())
        .enumerate()
        .find(|(_, (a, b))| a != b)
        .map(|(i, (a, b))| format!("line {}: got `{a}`, want `{b}`", i + 1))
        .unwrap_or_else(|| "lengths differ".into());
    Err(format!("{what}: snapshots differ at {first}"))
}

/// One pair: returns an error text instead of panicking so every failure is reported.
async fn check_pair(dir: PathBuf) -> Result<(), String> {
    let name = dir.file_name().unwrap().to_string_lossy().to_string();
    let a_sql = std::fs::read_to_string(dir.join("a.sql")).unwrap();
    let b_sql = std::fs::read_to_string(dir.join("b.sql")).unwrap();
    let expect = std::fs::read_to_string(dir.join("unsupported")).unwrap_or_default();
    let schemas: Vec<String> = std::fs::read_to_string(dir.join("schemas"))
        .map(|s| s.lines().map(str::to_string).collect())
        .unwrap_or_default();
    let opts = IntrospectOptions::default().with_schemas(&schemas);
    let tag = &name[..2];
    // One connection per database: the server may be busy, connections are the slow part.
    let (da, db) = (
        TestDb::new(&format!("sc{tag}a")).await,
        TestDb::new(&format!("sc{tag}b")).await,
    );
    let (ca, cb) = (da.client().await, db.client().await);
    exec(&ca, &a_sql)
        .await
        .map_err(|e| format!("{name}: a.sql: {e}"))?;
    exec(&cb, &b_sql)
        .await
        .map_err(|e| format!("{name}: b.sql: {e}"))?;
    let (sa, sb) = (snap(&ca, &opts).await, snap(&cb, &opts).await);
    let fwd = schema::diff(&sa, &sb);
    let back = schema::diff(&sb, &sa);
    if fwd.is_empty() || back.is_empty() {
        return Err(format!("{name}: A and B do not differ"));
    }
    let fwd_ok = fwd.unsupported().count() == 0;
    let back_ok = back.unsupported().count() == 0;
    if fwd_ok == expect.contains("a->b") || back_ok == expect.contains("b->a") {
        return Err(format!(
            "{name}: unsupported changes a->b {}, b->a {}, expected `{}`\n{}\n{}",
            !fwd_ok,
            !back_ok,
            expect.trim(),
            fwd.to_sql(),
            back.to_sql()
        ));
    }
    let mut at_b = &cb;
    if fwd_ok {
        apply(&ca, &fwd)
            .await
            .map_err(|e| format!("{name}: A->B: {e}"))?;
        compare(
            &format!("{name}: A + diff(A,B)"),
            &snap(&ca, &opts).await,
            &sb,
        )?;
        at_b = &ca;
    }
    if back_ok {
        apply(at_b, &back)
            .await
            .map_err(|e| format!("{name}: B->A: {e}"))?;
        compare(
            &format!("{name}: B + diff(B,A)"),
            &snap(at_b, &opts).await,
            &sa,
        )?;
    }
    // Dump -> SQL -> restore into an empty database -> dump again is identical.
    let restored = TestDb::new(&format!("sc{tag}r")).await;
    let cr = restored.client().await;
    exec(&cr, &sb.to_sql())
        .await
        .map_err(|e| format!("{name}: restoring B's dump: {e}"))?;
    compare(
        &format!("{name}: restore of B's SQL dump"),
        &snap(&cr, &opts).await,
        &sb,
    )?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_pairs_round_trip_through_the_diff() {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("a.sql").exists())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 40, "the corpus has {} pairs", dirs.len());
    let failures: Vec<String> = stream::iter(dirs)
        .map(check_pair)
        .buffer_unordered(4)
        .filter_map(|r| async move { r.err() })
        .collect()
        .await;
    assert!(
        failures.is_empty(),
        "{} pair(s) failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

async fn tables(db: &TestDb, n: usize) {
    let mut sql = String::new();
    for i in 0..n {
        sql.push_str(&format!(
            "CREATE TABLE t{i} (id int PRIMARY KEY, p int REFERENCES t0, s text);
             CREATE INDEX t{i}_s ON t{i} (s);
             CREATE VIEW v{i} AS SELECT id FROM t{i};"
        ));
    }
    run_sql(db, &sql).await.unwrap();
}

#[tokio::test]
async fn catalog_query_count_does_not_grow_with_the_schema() {
    let small = TestDb::new("schema_q10").await;
    let large = TestDb::new("schema_q200").await;
    tables(&small, 10).await;
    tables(&large, 200).await;
    let opts = IntrospectOptions::default();
    let (s1, st1) = schema::introspect_with_stats(&small.client().await, &opts)
        .await
        .unwrap();
    let (s2, st2) = schema::introspect_with_stats(&large.client().await, &opts)
        .await
        .unwrap();
    assert_eq!((s1.tables.len(), s2.tables.len()), (10, 200));
    assert_eq!(s2.views.len(), 200);
    assert_eq!(st1.queries, st2.queries);
    assert_eq!(st1.queries, 15);
}

#[tokio::test]
async fn two_dumps_of_the_same_database_are_byte_identical_and_search_path_is_restored() {
    let db = TestDb::new("schema_stable").await;
    tables(&db, 20).await;
    let client = db.client().await;
    client
        .batch_execute("SET search_path = public, pg_temp")
        .await
        .unwrap();
    let opts = IntrospectOptions::default();
    let a = introspect(&client, &opts).await.unwrap().to_json();
    let b = introspect(&client, &opts).await.unwrap().to_json();
    assert_eq!(a, b);
    let sp: String = client
        .query_one("SHOW search_path", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(sp, "public, pg_temp");
    assert_eq!(Snapshot::from_json(&a).unwrap().to_json(), a);
}

#[tokio::test]
async fn extension_members_and_pgkeel_tables_are_left_out() {
    let db = TestDb::new("schema_excl").await;
    run_sql(
        &db,
        "CREATE EXTENSION citext;
         CREATE TABLE __drizzle_migrations (id text PRIMARY KEY);
         CREATE TABLE __pgkeel_audit (id serial PRIMARY KEY);
         CREATE TABLE mine (email citext);",
    )
    .await
    .unwrap();
    let settings = db.settings();
    let snap = introspect(
        &db.client().await,
        &IntrospectOptions::from_settings(&settings),
    )
    .await
    .unwrap();
    let names: Vec<&str> = snap.tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["mine"]);
    assert!(snap.sequences.is_empty(), "{:?}", snap.sequences);
    assert!(snap.types.is_empty(), "citext's type is the extension's");
    assert!(
        snap.functions.is_empty(),
        "citext's functions are the extension's"
    );
    assert_eq!(snap.extensions.len(), 1);
    assert_eq!(snap.extensions[0].name, "citext");
}

#[tokio::test]
async fn removing_an_enum_value_is_reported_not_emitted() {
    let a = TestDb::new("schema_enum_a").await;
    let b = TestDb::new("schema_enum_b").await;
    run_sql(&a, "CREATE TYPE s AS ENUM ('new', 'old', 'gone');")
        .await
        .unwrap();
    run_sql(&b, "CREATE TYPE s AS ENUM ('new', 'old');")
        .await
        .unwrap();
    let opts = IntrospectOptions::default();
    let d = schema::diff(&snapshot(&a, &opts).await, &snapshot(&b, &opts).await);
    let u: Vec<_> = d.unsupported().collect();
    assert_eq!(u.len(), 1);
    assert!(u[0].unsupported.as_ref().unwrap().contains("'gone'"));
    assert_eq!(d.statements().count(), 0);
    assert!(d.to_sql().starts_with("-- UNSUPPORTED"));
}

#[tokio::test]
async fn a_migrations_folder_is_snapshotted_through_a_scratch_database() {
    let target = TestDb::new("schema_folder").await;
    let dir = support::native(&[
        (
            "0001_users.sql",
            "CREATE TABLE users (id int PRIMARY KEY, email text);",
        ),
        ("0002_idx.sql", "CREATE INDEX users_email ON users (email);"),
    ]);
    let settings = target.settings();
    let scratch = ScratchOptions {
        scratch_url: None,
        target: Some(pgkeel::db::Target::from_settings(&settings).unwrap()),
        no_embedded: true,
    };
    // Other tests of this binary create scratch databases too: judge only the ones that
    // appeared during this load, and give the others time to finish.
    let scratch_names = || async {
        target
            .client()
            .await
            .query(
                "SELECT datname::text FROM pg_database WHERE datname LIKE 'pgkeel_scratch_%'",
                &[],
            )
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<std::collections::HashSet<String>>()
    };
    let before = scratch_names().await;
    let from_folder = snapshot_input::load(
        &SnapshotInput::Folder(dir.path().to_path_buf()),
        &settings,
        &IntrospectOptions::from_settings(&settings),
        &scratch,
    )
    .await
    .unwrap();
    assert_eq!(from_folder.tables.len(), 1, "the ledger table is left out");
    assert_eq!(from_folder.tables[0].indexes[0].name, "users_email");
    // The scratch database is gone afterwards.
    let mut left: Vec<String> = scratch_names().await.difference(&before).cloned().collect();
    for _ in 0..120 {
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let now = scratch_names().await;
        left.retain(|n| now.contains(n));
    }
    assert!(left.is_empty(), "scratch databases left behind: {left:?}");
    // Applying the same migrations to the target gives no differences.
    run_sql(
        &target,
        "CREATE TABLE users (id int PRIMARY KEY, email text); CREATE INDEX users_email ON users (email);",
    )
    .await
    .unwrap();
    let live = snapshot(&target, &IntrospectOptions::from_settings(&settings)).await;
    assert!(schema::diff(&live, &from_folder).is_empty());
}

/// The migration test suite cuts its "before" snapshots from a model of the whole schema and
/// merges scoped snapshots back into it: both must agree with what the server reports, for
/// tables, owned and unowned sequences, identity columns, partitions, views and a materialized
/// view's indexes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scoped_snapshots_cut_and_merged_agree_with_the_server() {
    let db = TestDb::new("schema_scoped").await;
    let client = db.client().await;
    exec(
        &client,
        "CREATE TABLE a (id serial PRIMARY KEY, v text);
         CREATE TABLE b (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                         a_id int REFERENCES a (id));
         CREATE INDEX b_a_id_idx ON b (a_id);
         CREATE SEQUENCE loose;
         CREATE TABLE p (at date NOT NULL) PARTITION BY RANGE (at);
         CREATE TABLE p_2026 PARTITION OF p FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
         CREATE VIEW v AS SELECT id FROM a;
         CREATE MATERIALIZED VIEW mv AS SELECT id FROM b;
         CREATE INDEX mv_id_idx ON mv (id);",
    )
    .await
    .unwrap();
    let full = IntrospectOptions::default();
    let scoped = |names: &[(&str, &str)]| IntrospectOptions {
        only_tables: Some(
            names
                .iter()
                .map(|(s, n)| (s.to_string(), n.to_string()))
                .collect(),
        ),
        ..IntrospectOptions::default()
    };
    let reader = schema::Introspector::prepare(&client).await.unwrap();
    let mut model = reader.read(&client, &full).await.unwrap();
    assert_eq!(
        model,
        snap(&client, &full).await,
        "prepared and one-off reads"
    );
    for names in [
        &[("public", "a")][..],
        &[("public", "b"), ("public", "mv")][..],
        &[("public", "p"), ("public", "p_2026"), ("public", "gone")][..],
        &[][..],
    ] {
        let opts = scoped(names);
        let cut = model.scoped(opts.only_tables.as_ref().unwrap());
        compare(
            &format!("{names:?} cut from the whole"),
            &cut,
            &reader.read(&client, &opts).await.unwrap(),
        )
        .unwrap();
    }

    // A change to two relations, merged back from a snapshot scoped to them.
    exec(
        &client,
        "ALTER TABLE a ADD COLUMN w int; ALTER TABLE a RENAME TO a2;
         CREATE INDEX mv_id2_idx ON mv (id);",
    )
    .await
    .unwrap();
    let locked: Vec<(String, String)> = [("public", "a"), ("public", "a2"), ("public", "mv")]
        .iter()
        .map(|(s, n)| (s.to_string(), n.to_string()))
        .collect();
    // `b`'s foreign key names `a`: renaming `a` changes `b` without locking it.
    let names = model.with_dependents(&locked);
    assert!(
        names.contains(&("public".to_string(), "b".to_string())),
        "{names:?}"
    );
    let fresh = reader
        .read(
            &client,
            &IntrospectOptions {
                only_tables: Some(names.clone()),
                ..IntrospectOptions::default()
            },
        )
        .await
        .unwrap();
    // The view `v` now reads `a2`: a view changed, so the caller is told to read everything.
    assert!(
        model.merge_scoped(&names, fresh),
        "a view's definition changed"
    );
    compare("merged", &model, &snap(&client, &full).await).unwrap();

    // A change to a table alone: nothing outside the relations changed.
    exec(&client, "ALTER TABLE b ADD COLUMN note text")
        .await
        .unwrap();
    let names = vec![("public".to_string(), "b".to_string())];
    let fresh = reader
        .read(&client, &scoped(&[("public", "b")]))
        .await
        .unwrap();
    assert!(!model.merge_scoped(&names, fresh));
    compare("merged again", &model, &snap(&client, &full).await).unwrap();
}

/// `read_keeping` takes schemas, types, functions, sequences owned by nothing and (when no view
/// can have changed) views from the snapshot it is given: after table-level changes it must
/// read what a full scoped read does, owned sequences and views included.
#[tokio::test]
async fn reads_keeping_unchanged_objects_agree_with_full_reads() {
    let db = TestDb::new("schema_keeping").await;
    let client = db.client().await;
    exec(
        &client,
        "CREATE TABLE a (id serial PRIMARY KEY, v text);
         CREATE TABLE c (id int PRIMARY KEY);
         CREATE SEQUENCE loose;
         CREATE TYPE mood AS ENUM ('ok');
         CREATE VIEW v AS SELECT id FROM a;",
    )
    .await
    .unwrap();
    let reader = schema::Introspector::prepare(&client).await.unwrap();
    let model = reader
        .read(&client, &IntrospectOptions::default())
        .await
        .unwrap();
    let scope = |names: &[&str]| -> Vec<(String, String)> {
        names
            .iter()
            .map(|n| ("public".to_string(), n.to_string()))
            .collect()
    };
    assert!(model.views_outside(&scope(&["c"])));
    assert!(!model.views_outside(&scope(&["a"])), "v reads a");
    assert!(!model.views_outside(&scope(&["v"])), "v itself");

    for (sql, names, view_reread) in [
        // A new owned sequence on a table no view reads: views are kept, sequences read.
        ("ALTER TABLE c ADD COLUMN n serial", &["c"][..], false),
        // Renaming a table a view reads changes the view's text: views are read again.
        ("ALTER TABLE a RENAME TO a2", &["a", "a2"][..], true),
    ] {
        let names = scope(names);
        let opts = IntrospectOptions {
            only_tables: Some(names.clone()),
            ..IntrospectOptions::default()
        };
        let before = reader.read(&client, &opts).await.unwrap();
        exec(&client, sql).await.unwrap();
        let kept = reader
            .read_keeping(&client, &opts, Some(&before))
            .await
            .unwrap();
        compare(sql, &kept, &reader.read(&client, &opts).await.unwrap()).unwrap();
        assert!(kept.sequences.iter().any(|q| q.name == "loose"), "{sql}");
        assert_eq!(kept.types.len(), 1, "{sql}");
        let v = kept.views.iter().find(|v| v.name == "v").unwrap();
        assert_eq!(v.definition.contains("a2"), view_reread, "{sql}: {v:?}");
    }
}
