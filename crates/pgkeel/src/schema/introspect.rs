//! Reads a [`Snapshot`] from `pg_catalog` with a fixed number of set-based queries.
//!
//! One query per object kind (never one per table): the count is the same for 10 tables and
//! 2,000 and is reported in [`IntrospectStats`]. The queries run pipelined on one connection
//! with `search_path` emptied for their duration, so every name the server renders
//! (`format_type`, `pg_get_*def`, `pg_get_expr`) is schema-qualified and exact; the session's
//! `search_path` is put back afterwards. Objects owned by extensions (`pg_depend.deptype = 'e'`)
//! and pgkeel's own bookkeeping tables are left out. Comments are read from `pg_description`
//! directly: `obj_description()` and `col_description()` are SQL functions that look the catalog
//! up by name on every call, which cost more than the rest of a scoped query. This module must
//! not compare snapshots or render DDL.

use std::collections::HashMap;
use std::time::Instant;

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row, Statement, ToStatement};

use super::model::*;
use super::SchemaError;
use crate::config::Settings;
use crate::db::DbError;

/// What to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntrospectOptions {
    /// Schemas to include (default `public`).
    pub schemas: Vec<String>,
    /// Tables to leave out, as (schema, table): pgkeel's ledger and audit tables, drizzle's.
    pub exclude_tables: Vec<(String, String)>,
    /// Read only these relations (tables, partitioned tables, materialized views, as (schema,
    /// name)) with their columns, constraints, indexes, triggers and policies, and only the
    /// sequences they own (unowned sequences, types, views, functions, schemas and extensions
    /// are read whole). `None`: every relation. The migration test suite uses it to compare
    /// only what a migration touched, so its cost does not grow with the schema.
    pub only_tables: Option<Vec<(String, String)>>,
}

impl Default for IntrospectOptions {
    fn default() -> Self {
        IntrospectOptions {
            schemas: vec!["public".into()],
            exclude_tables: Vec::new(),
            only_tables: None,
        }
    }
}

impl IntrospectOptions {
    /// The configured schemas (drizzle-kit's `schemaFilter`, else `public`) with pgkeel's own
    /// tables (ledger, audit, drizzle's table, as configured) excluded.
    pub fn from_settings(settings: &Settings) -> Self {
        let schemas = match settings.schemas.is_empty() {
            true => vec!["public".into()],
            false => settings.schemas.clone(),
        };
        IntrospectOptions {
            schemas,
            exclude_tables: pgkeel_tables(settings),
            only_tables: None,
        }
    }

    /// Replaces the schema list (ignored when empty).
    pub fn with_schemas(mut self, schemas: &[String]) -> Self {
        if !schemas.is_empty() {
            let mut s = schemas.to_vec();
            s.sort();
            s.dedup();
            self.schemas = s;
        }
        self
    }
}

/// The tables pgkeel and drizzle-orm keep their bookkeeping in (see
/// [`Settings::bookkeeping_tables`]).
pub fn pgkeel_tables(settings: &Settings) -> Vec<(String, String)> {
    settings.bookkeeping_tables()
}

/// How an introspection went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct IntrospectStats {
    /// Statements sent to the server (catalog queries plus setting and restoring search_path).
    pub queries: usize,
    pub elapsed_ms: u64,
}

// The relations in scope: tables, partitioned tables and materialized views of the wanted
// schemas, minus extension members and excluded tables. $1 schemas, $2/$3 excluded tables, $4/$5
// the only relations wanted (NULL: all). Two texts, so that each keeps a plan of its own when
// prepared: every relation of the schemas (a scan of pg_class), or only those named in $4/$5
// (index lookups by name, so a snapshot of a few tables costs the same in a schema of thousands).
fn rels(scoped: bool) -> &'static str {
    if scoped {
        "WITH rels AS (
  SELECT DISTINCT c.oid, c.relkind FROM unnest($4::text[], $5::text[]) y(s, t)
    JOIN pg_namespace n ON n.nspname = y.s
    JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = y.t
   WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname = ANY($1::text[])
     AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                      AND d.objid = c.oid AND d.deptype = 'e')
     AND NOT EXISTS (SELECT 1 FROM unnest($2::text[], $3::text[]) x(s, t)
                      WHERE x.s = n.nspname AND x.t = c.relname))"
    } else {
        "WITH rels AS (
  SELECT c.oid, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname = ANY($1::text[])
     AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                      AND d.objid = c.oid AND d.deptype = 'e')
     AND NOT EXISTS (SELECT 1 FROM unnest($2::text[], $3::text[]) x(s, t)
                      WHERE x.s = n.nspname AND x.t = c.relname)
     -- NULL here: named so that both texts take the same parameters.
     AND ($4::text[] IS NULL OR $5::text[] IS NULL))"
    }
}

const Q_SCHEMAS: &str = "SELECT n.nspname::text, (SELECT pd.description FROM pg_description pd WHERE pd.objoid = n.oid AND pd.classoid = 'pg_namespace'::regclass AND pd.objsubid = 0)
  FROM pg_namespace n WHERE n.nspname = ANY($1::text[]) AND $2::text[] IS NOT NULL AND $3::text[] IS NOT NULL";

const Q_EXTENSIONS: &str = "SELECT e.extname::text, e.extversion, n.nspname::text
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE e.extname <> 'plpgsql' AND n.nspname = ANY($1::text[]) AND $2::text[] IS NOT NULL AND $3::text[] IS NOT NULL";

const Q_TYPES: &str = "SELECT n.nspname::text, t.typname::text, t.typtype::text,
  ARRAY(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder),
  CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) END,
  CASE WHEN t.typtype = 'd' AND t.typcollation <> 0 AND t.typcollation <> bt.typcollation THEN
    (SELECT format('%I.%I', cn.nspname, co.collname) FROM pg_collation co
       JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = t.typcollation) END,
  pg_get_expr(t.typdefaultbin, 0), t.typnotnull,
  ARRAY(SELECT c.conname::text FROM pg_constraint c WHERE c.contypid = t.oid ORDER BY c.conname),
  ARRAY(SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c WHERE c.contypid = t.oid ORDER BY c.conname),
  ARRAY(SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0
         AND NOT a.attisdropped ORDER BY a.attnum),
  ARRAY(SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a WHERE a.attrelid = t.typrelid
         AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum),
  ARRAY(SELECT coalesce((SELECT format('%I.%I', cn.nspname, co.collname) FROM pg_collation co
                           JOIN pg_namespace cn ON cn.oid = co.collnamespace
                          WHERE co.oid = a.attcollation AND a.attcollation <> at.typcollation), '')
          FROM pg_attribute a JOIN pg_type at ON at.oid = a.atttypid
         WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum),
  (SELECT pd.description FROM pg_description pd WHERE pd.objoid = t.oid AND pd.classoid = 'pg_type'::regclass AND pd.objsubid = 0)
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
  LEFT JOIN pg_type bt ON bt.oid = t.typbasetype
 WHERE n.nspname = ANY($1::text[]) AND $2::text[] IS NOT NULL AND $3::text[] IS NOT NULL
   AND (t.typtype IN ('e', 'd')
        OR (t.typtype = 'c' AND (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c'))
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass
                    AND d.objid = t.oid AND d.deptype = 'e')";

// Sequences in two queries, so that a snapshot scoped to a few tables does not scan every
// sequence: those owned by a table column (`OWNED BY`, serial) are reached from their tables;
// the others (owned by nothing) are read by their own query, which the test suite can skip
// (see [`KEPT`]). Identity sequences belong to their column and extension members to the
// extension: neither is read.
const SEQUENCE_COLUMNS: &str = "n.nspname::text, c.relname::text, format_type(s.seqtypid, NULL),
  s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcache, s.seqcycle";
const SEQUENCE_COMMENT: &str = "(SELECT pd.description FROM pg_description pd WHERE pd.objoid = c.oid AND pd.classoid = 'pg_class'::regclass AND pd.objsubid = 0)";

/// Sequences owned by a column: of every table, or (scoped) of the tables named in $4/$5.
fn q_sequences_owned(scoped: bool) -> String {
    let owners = match scoped {
        true => {
            "unnest($4::text[], $5::text[]) y(s, t)
  JOIN pg_namespace tn ON tn.nspname = y.s
  JOIN pg_class tc ON tc.relnamespace = tn.oid AND tc.relname = y.t"
        }
        false => {
            "pg_class tc JOIN pg_namespace tn ON tn.oid = tc.relnamespace
  -- NULL here: named so that both texts take the same parameters.
  AND ($4::text[] IS NULL OR $5::text[] IS NULL)"
        }
    };
    format!(
        "SELECT {SEQUENCE_COLUMNS}, tn.nspname::text, tc.relname::text, ta.attname::text, {SEQUENCE_COMMENT}
  FROM {owners}
  JOIN pg_depend d ON d.refclassid = 'pg_class'::regclass AND d.refobjid = tc.oid
   AND d.classid = 'pg_class'::regclass AND d.deptype = 'a'
  JOIN pg_class c ON c.oid = d.objid AND c.relkind = 'S'
  JOIN pg_sequence s ON s.seqrelid = c.oid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_attribute ta ON ta.attrelid = tc.oid AND ta.attnum = d.refobjsubid
 WHERE n.nspname = ANY($1::text[])
   AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_class'::regclass
                    AND e.objid = c.oid AND e.deptype IN ('e', 'i'))
   AND NOT EXISTS (SELECT 1 FROM unnest($2::text[], $3::text[]) x(s, t)
                    WHERE x.s = tn.nspname AND x.t = tc.relname)"
    )
}

/// Sequences owned by nothing.
fn q_sequences_unowned() -> String {
    format!(
        "SELECT {SEQUENCE_COLUMNS}, NULL::text, NULL::text, NULL::text, {SEQUENCE_COMMENT}
  FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = ANY($1::text[]) AND $2::text[] IS NOT NULL AND $3::text[] IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                    AND d.objid = c.oid
                    AND (d.deptype IN ('e', 'i')
                         OR (d.deptype = 'a' AND d.refclassid = 'pg_class'::regclass)))"
    )
}

fn q_tables(scoped: bool) -> String {
    format!(
        "{}
SELECT c.oid, n.nspname::text, c.relname::text, c.relpersistence = 'u',
  CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END,
  pn.nspname::text, pc.relname::text,
  CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END,
  coalesce(c.reloptions, '{{}}')::text[], c.relrowsecurity, c.relforcerowsecurity,
  (SELECT pd.description FROM pg_description pd WHERE pd.objoid = c.oid AND pd.classoid = 'pg_class'::regclass AND pd.objsubid = 0)
  FROM rels JOIN pg_class c ON c.oid = rels.oid JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_inherits i ON c.relispartition AND i.inhrelid = c.oid
  LEFT JOIN pg_class pc ON pc.oid = i.inhparent
  LEFT JOIN pg_namespace pn ON pn.oid = pc.relnamespace
 WHERE rels.relkind IN ('r', 'p')",
        rels(scoped)
    )
}

fn q_columns(scoped: bool) -> String {
    format!(
        "{}
SELECT a.attrelid, a.attname::text, format_type(a.atttypid, a.atttypmod),
  CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation
       THEN format('%I.%I', cn.nspname, co.collname) END,
  a.attnotnull,
  CASE WHEN a.attgenerated = '' THEN pg_get_expr(ad.adbin, ad.adrelid) END,
  a.attidentity::text,
  CASE WHEN a.attgenerated <> '' THEN pg_get_expr(ad.adbin, ad.adrelid) END,
  (SELECT pd.description FROM pg_description pd WHERE pd.objoid = a.attrelid AND pd.classoid = 'pg_class'::regclass AND pd.objsubid = a.attnum)
  FROM pg_attribute a JOIN rels ON rels.oid = a.attrelid AND rels.relkind IN ('r', 'p')
  JOIN pg_type t ON t.oid = a.atttypid
  LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
  LEFT JOIN pg_collation co ON co.oid = a.attcollation
  LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace
 WHERE a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attrelid, a.attnum",
        rels(scoped)
    )
}

fn q_constraints(scoped: bool) -> String {
    format!(
        "{}
SELECT con.conrelid, con.conname::text, con.contype::text, pg_get_constraintdef(con.oid),
  ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, o)
          JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.o),
  fn.nspname::text, fc.relname::text, con.condeferrable, con.condeferred, con.convalidated,
  (SELECT pd.description FROM pg_description pd WHERE pd.objoid = con.oid AND pd.classoid = 'pg_constraint'::regclass AND pd.objsubid = 0)
  FROM pg_constraint con JOIN rels ON rels.oid = con.conrelid
  LEFT JOIN pg_class fc ON fc.oid = con.confrelid
  LEFT JOIN pg_namespace fn ON fn.oid = fc.relnamespace
 WHERE con.contype IN ('p', 'u', 'c', 'f', 'x') AND con.conparentid = 0 AND con.conislocal",
        rels(scoped)
    )
}

fn q_indexes(scoped: bool) -> String {
    format!(
        "{}
SELECT i.indrelid, ic.relname::text, pg_get_indexdef(i.indexrelid), am.amname::text, i.indisunique,
  ARRAY(SELECT pg_get_indexdef(i.indexrelid, k, true) FROM generate_series(1, i.indnkeyatts) k ORDER BY k),
  ARRAY(SELECT pg_get_indexdef(i.indexrelid, k, true)
          FROM generate_series(i.indnkeyatts + 1, i.indnatts) k ORDER BY k),
  pg_get_expr(i.indpred, i.indrelid), i.indisvalid, (SELECT pd.description FROM pg_description pd WHERE pd.objoid = i.indexrelid AND pd.classoid = 'pg_class'::regclass AND pd.objsubid = 0)
  FROM pg_index i JOIN rels ON rels.oid = i.indrelid
  JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam
 WHERE NOT ic.relispartition
   AND NOT EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = i.indexrelid
                    AND con.conrelid = i.indrelid AND con.contype IN ('p', 'u', 'x'))",
        rels(scoped)
    )
}

fn q_triggers(scoped: bool) -> String {
    format!(
        "{}
SELECT t.tgrelid, t.tgname::text, pg_get_triggerdef(t.oid), t.tgenabled::text,
  (SELECT pd.description FROM pg_description pd WHERE pd.objoid = t.oid AND pd.classoid = 'pg_trigger'::regclass AND pd.objsubid = 0)
  FROM pg_trigger t JOIN rels ON rels.oid = t.tgrelid
 WHERE NOT t.tgisinternal AND t.tgparentid = 0",
        rels(scoped)
    )
}

fn q_policies(scoped: bool) -> String {
    format!(
        "{}
SELECT p.polrelid, p.polname::text, p.polpermissive,
  CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'
                WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
  ARRAY(SELECT CASE WHEN r = 0 THEN 'public' ELSE (SELECT rolname::text FROM pg_roles WHERE oid = r) END
          FROM unnest(p.polroles) r ORDER BY 1),
  pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid)
  FROM pg_policy p JOIN rels ON rels.oid = p.polrelid",
        rels(scoped)
    )
}

const Q_VIEWS: &str = "SELECT c.oid, n.nspname::text, c.relname::text, c.relkind = 'm', pg_get_viewdef(c.oid),
  coalesce(c.reloptions, '{}')::text[], (SELECT pd.description FROM pg_description pd WHERE pd.objoid = c.oid AND pd.classoid = 'pg_class'::regclass AND pd.objsubid = 0),
  (SELECT coalesce(json_agg(json_build_object('schema', x.s, 'name', x.n) ORDER BY x.s, x.n), '[]'::json)
     FROM (SELECT DISTINCT rn.nspname::text s, rc.relname::text n
             FROM pg_rewrite rw
             JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = rw.oid
                             AND d.refclassid = 'pg_class'::regclass
             JOIN pg_class rc ON rc.oid = d.refobjid
             JOIN pg_namespace rn ON rn.oid = rc.relnamespace
            WHERE rw.ev_class = c.oid AND d.refobjid <> c.oid
              AND rc.relkind IN ('r', 'p', 'v', 'm', 'f')) x)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('v', 'm') AND n.nspname = ANY($1::text[])
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                    AND d.objid = c.oid AND d.deptype = 'e')
   AND NOT EXISTS (SELECT 1 FROM unnest($2::text[], $3::text[]) x(s, t)
                    WHERE x.s = n.nspname AND x.t = c.relname)";

const Q_FUNCTIONS: &str =
    "SELECT n.nspname::text, p.proname::text, pg_get_function_identity_arguments(p.oid),
  p.prokind = 'p', coalesce(pg_get_function_result(p.oid), ''), l.lanname::text,
  CASE p.provolatile WHEN 'i' THEN 'immutable' WHEN 's' THEN 'stable' ELSE 'volatile' END,
  p.prosecdef, pg_get_functiondef(p.oid), (SELECT pd.description FROM pg_description pd WHERE pd.objoid = p.oid AND pd.classoid = 'pg_proc'::regclass AND pd.objsubid = 0)
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
  JOIN pg_language l ON l.oid = p.prolang
 WHERE n.nspname = ANY($1::text[]) AND p.prokind IN ('f', 'p')
   AND $2::text[] IS NOT NULL AND $3::text[] IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                    AND d.objid = p.oid AND d.deptype = 'e')";

/// The catalog queries in the order [`read_all`] runs them ([`WHAT`] names them). Those in
/// [`SCOPED`] also take the relation scope (`$4`/`$5`, see [`IntrospectOptions::only_tables`]).
fn catalog_queries(scoped: bool) -> [String; CATALOG_QUERIES] {
    [
        Q_SCHEMAS.to_string(),
        Q_EXTENSIONS.to_string(),
        Q_TYPES.to_string(),
        q_sequences_owned(scoped),
        q_tables(scoped),
        q_columns(scoped),
        q_constraints(scoped),
        q_indexes(scoped),
        q_triggers(scoped),
        q_policies(scoped),
        Q_VIEWS.to_string(),
        Q_FUNCTIONS.to_string(),
        q_sequences_unowned(),
    ]
}

/// Owned sequences through policies.
const SCOPED: std::ops::Range<usize> = 3..10;

/// Schemas, extensions, types, functions and sequences owned by nothing: what
/// [`Introspector::read_keeping`] can keep.
const KEPT: [usize; 5] = [0, 1, 2, 11, 12];

/// The views query, kept under a further condition (see [`read_all`]).
const VIEWS: usize = 10;

const CATALOG_QUERIES: usize = 13;
const WHAT: [&str; CATALOG_QUERIES] = [
    "schemas",
    "extensions",
    "types",
    "owned sequences",
    "tables",
    "columns",
    "constraints",
    "indexes",
    "triggers",
    "policies",
    "views",
    "functions",
    "sequences owned by nothing",
];

/// Reads the schema. The session's `search_path` is emptied while the catalog queries run and
/// restored afterwards (also when a query fails).
pub async fn introspect(
    client: &Client,
    opts: &IntrospectOptions,
) -> Result<Snapshot, SchemaError> {
    introspect_with_stats(client, opts).await.map(|(s, _)| s)
}

/// [`introspect`], also saying how many statements it took.
pub async fn introspect_with_stats(
    client: &Client,
    opts: &IntrospectOptions,
) -> Result<(Snapshot, IntrospectStats), SchemaError> {
    let queries = catalog_queries(opts.only_tables.is_some());
    let texts: [&str; CATALOG_QUERIES] = std::array::from_fn(|i| queries[i].as_str());
    with_empty_search_path(client, Box::pin(read_all(client, texts, opts, None))).await
}

/// The catalog queries prepared once on one connection, for a caller that reads the schema
/// many times there (the migration test suite takes four snapshots per migration). The server
/// keeps the prepared statements' plans, and planning these joins was most of what a snapshot
/// scoped to a few relations cost. The statements belong to the connection they were prepared
/// on: use [`Introspector::read`] with that client only.
///
/// A prepared statement keeps the plan made the first time it ran, for the catalog as it was
/// then. Prepared on a nearly empty database, the plans scan `pg_class` and `pg_constraint`
/// whole, which stays cheap only while they are small: a caller whose database grows a lot
/// says so with [`Introspector::replan_if_grown`].
#[derive(Debug)]
pub struct Introspector {
    /// Reading every relation, then reading only those named.
    statements: [Vec<Statement>; 2],
    /// How many relations the caller said the database had when the statements were prepared.
    planned_for: usize,
}

/// Below this many relations a plan made for an empty catalog is as good as any.
const REPLAN_FLOOR: usize = 32;

impl Introspector {
    pub async fn prepare(client: &Client) -> Result<Self, SchemaError> {
        Ok(Introspector {
            statements: prepare_all(client).await?,
            planned_for: 0,
        })
    }

    /// Prepares the statements again, so that they are planned for the catalog as it is now,
    /// when the database has at least doubled (and has [`REPLAN_FLOOR`] relations) since they
    /// were: a few times over a run of thousands of migrations. Without it, scoped snapshots
    /// made of index lookups became whole-catalog scans whose cost grew with every migration
    /// (`pgkeel test` on 1000 migrations: a snapshot of two tables went from 1.3 to 4.5 ms).
    /// `relations` is the caller's count of the database's relations. Returns whether it did.
    pub async fn replan_if_grown(
        &mut self,
        client: &Client,
        relations: usize,
    ) -> Result<bool, SchemaError> {
        if relations < REPLAN_FLOOR.max(self.planned_for.saturating_mul(2)) {
            return Ok(false);
        }
        self.statements = prepare_all(client).await?;
        self.planned_for = relations;
        Ok(true)
    }

    /// [`introspect`] with the prepared statements, in one round trip: emptying `search_path`
    /// (its value kept in a session setting), the catalog queries and restoring it are sent
    /// together. This needs every query prepared: the server runs pipelined requests in the
    /// order they arrive, and a query that still had to be parsed would arrive late.
    pub async fn read(
        &self,
        client: &Client,
        opts: &IntrospectOptions,
    ) -> Result<Snapshot, SchemaError> {
        self.read_keeping(client, opts, None).await
    }

    /// [`Introspector::read`], except that schemas, extensions, types, functions and
    /// sequences owned by nothing (and views, when none is in scope or reads a relation in
    /// scope) are taken from `kept` instead of being read, for a caller that knows they have not changed since
    /// `kept` was read (the test suite, for migrations of table-level statements only: see
    /// [`crate::sql::table_level_only`]).
    pub async fn read_keeping(
        &self,
        client: &Client,
        opts: &IntrospectOptions,
        kept: Option<&Snapshot>,
    ) -> Result<Snapshot, SchemaError> {
        let set = &self.statements[usize::from(opts.only_tables.is_some())];
        let stmts: [&Statement; CATALOG_QUERIES] = std::array::from_fn(|i| &set[i]);
        let q = |e| SchemaError::Db(DbError::query("reading the schema from pg_catalog", e));
        let (emptied, read, restored) = tokio::join!(
            client.simple_query(EMPTY_SEARCH_PATH),
            Box::pin(read_all(client, stmts, opts, kept)),
            client.simple_query(RESTORE_SEARCH_PATH),
        );
        emptied.map_err(q)?;
        let snapshot = read?;
        restored.map_err(q)?;
        Ok(snapshot)
    }
}

/// Prepares the catalog queries, both texts (see [`rels`]).
async fn prepare_all(client: &Client) -> Result<[Vec<Statement>; 2], SchemaError> {
    let mut statements: [Vec<Statement>; 2] = Default::default();
    for (scoped, out) in [false, true].into_iter().zip(&mut statements) {
        for (sql, what) in catalog_queries(scoped).iter().zip(WHAT) {
            out.push(client.prepare(sql).await.map_err(|e| {
                SchemaError::Db(DbError::query(
                    format!("preparing the query that reads {what}"),
                    e,
                ))
            })?);
        }
    }
    Ok(statements)
}

/// Empties `search_path`, keeping its value in a session setting for [`RESTORE_SEARCH_PATH`]:
/// two statements that need nothing from each other's results, so they can be pipelined.
const EMPTY_SEARCH_PATH: &str =
    "SELECT set_config('pgkeel.saved_search_path', current_setting('search_path'), false),
            set_config('search_path', '', false)";
const RESTORE_SEARCH_PATH: &str =
    "SELECT set_config('search_path', current_setting('pgkeel.saved_search_path'), false)";

/// Runs `read` with `search_path` emptied, one statement after the other (the one-off path: its
/// queries are parsed on the way, so they cannot be pipelined behind the emptying).
async fn with_empty_search_path(
    client: &Client,
    read: impl std::future::Future<Output = Result<Snapshot, SchemaError>>,
) -> Result<(Snapshot, IntrospectStats), SchemaError> {
    let started = Instant::now();
    let q = |e| SchemaError::Db(DbError::query("reading the schema from pg_catalog", e));
    client.simple_query(EMPTY_SEARCH_PATH).await.map_err(q)?;
    let result = read.await;
    let restore = client.simple_query(RESTORE_SEARCH_PATH).await;
    let snapshot = result?;
    restore.map_err(q)?;
    Ok((
        snapshot,
        IntrospectStats {
            queries: CATALOG_QUERIES + 2,
            elapsed_ms: started.elapsed().as_millis() as u64,
        },
    ))
}

async fn read_all<S: ToStatement + ?Sized + Sync>(
    client: &Client,
    stmts: [&S; CATALOG_QUERIES],
    opts: &IntrospectOptions,
    kept: Option<&Snapshot>,
) -> Result<Snapshot, SchemaError> {
    let schemas = &opts.schemas;
    let ex_s: Vec<&str> = opts
        .exclude_tables
        .iter()
        .map(|(s, _)| s.as_str())
        .collect();
    let ex_t: Vec<&str> = opts
        .exclude_tables
        .iter()
        .map(|(_, t)| t.as_str())
        .collect();
    let params: [&(dyn ToSql + Sync); 3] = [schemas, &ex_s, &ex_t];
    let only_s: Option<Vec<&str>> = opts
        .only_tables
        .as_ref()
        .map(|v| v.iter().map(|(s, _)| s.as_str()).collect());
    let only_t: Option<Vec<&str>> = opts
        .only_tables
        .as_ref()
        .map(|v| v.iter().map(|(_, t)| t.as_str()).collect());
    let scoped: [&(dyn ToSql + Sync); 5] = [schemas, &ex_s, &ex_t, &only_s, &only_t];
    // Views are kept too when none can have changed: the relations in scope are neither views
    // nor read by one.
    let keep_views = kept.is_some_and(|k| {
        opts.only_tables
            .as_deref()
            .is_some_and(|scope| k.views_outside(scope))
    });
    let run = |i: usize| {
        let args: &[&(dyn ToSql + Sync)] = if SCOPED.contains(&i) {
            &scoped
        } else {
            &params
        };
        let skip = kept.is_some() && KEPT.contains(&i) || (i == VIEWS && keep_views);
        async move {
            match skip {
                true => Ok(Vec::new()),
                false => query(client, stmts[i], WHAT[i], args).await,
            }
        }
    };
    let (
        r_schemas,
        r_ext,
        r_types,
        r_seqs,
        r_tables,
        r_cols,
        r_cons,
        r_idx,
        r_trg,
        r_pol,
        r_views,
        r_funcs,
        r_free_seqs,
    ) = tokio::try_join!(
        run(0),
        run(1),
        run(2),
        run(3),
        run(4),
        run(5),
        run(6),
        run(7),
        run(8),
        run(9),
        run(10),
        run(11),
        run(12),
    )?;

    let mut snap = Snapshot::empty();
    snap.schemas = r_schemas
        .iter()
        .map(|r| Schema {
            name: r.get(0),
            comment: r.get(1),
        })
        .collect();
    snap.extensions = r_ext
        .iter()
        .map(|r| Extension {
            name: r.get(0),
            version: r.get(1),
            schema: r.get(2),
        })
        .collect();
    snap.types = r_types.iter().map(type_from_row).collect();
    snap.sequences = r_seqs
        .iter()
        .chain(&r_free_seqs)
        .map(|r| {
            let table: Option<String> = r.get(10);
            Sequence {
                schema: r.get(0),
                name: r.get(1),
                data_type: r.get(2),
                start: r.get(3),
                increment: r.get(4),
                min: r.get(5),
                max: r.get(6),
                cache: r.get(7),
                cycle: r.get(8),
                owned_by: table.map(|table| ColumnRef {
                    schema: r.get(9),
                    table,
                    column: r.get(11),
                }),
                comment: r.get(12),
            }
        })
        .collect();

    // Tables by oid, then their parts.
    let mut tables: Vec<Table> = Vec::with_capacity(r_tables.len());
    let mut by_oid: HashMap<u32, usize> = HashMap::with_capacity(r_tables.len());
    for r in &r_tables {
        let oid: u32 = r.get(0);
        let parent: Option<String> = r.get(6);
        by_oid.insert(oid, tables.len());
        tables.push(Table {
            schema: r.get(1),
            name: r.get(2),
            unlogged: r.get(3),
            partition_by: r.get(4),
            partition_of: parent.map(|table| PartitionOf {
                schema: r.get(5),
                table,
                bound: r.get::<_, Option<String>>(7).unwrap_or_default(),
            }),
            options: r.get(8),
            columns: Vec::new(),
            constraints: Vec::new(),
            indexes: Vec::new(),
            triggers: Vec::new(),
            rls_enabled: r.get(9),
            rls_forced: r.get(10),
            policies: Vec::new(),
            comment: r.get(11),
        });
    }
    for r in &r_cols {
        let Some(&i) = by_oid.get(&r.get::<_, u32>(0)) else {
            continue;
        };
        if tables[i].partition_of.is_some() {
            continue;
        }
        let identity: String = r.get(6);
        tables[i].columns.push(Column {
            name: r.get(1),
            type_name: r.get(2),
            collation: r.get(3),
            not_null: r.get(4),
            default: r.get(5),
            identity: match identity.as_str() {
                "a" => Some(Identity::Always),
                "d" => Some(Identity::ByDefault),
                _ => None,
            },
            generated: r.get(7),
            comment: r.get(8),
        });
    }
    for r in &r_cons {
        let Some(&i) = by_oid.get(&r.get::<_, u32>(0)) else {
            continue;
        };
        let kind = match r.get::<_, String>(2).as_str() {
            "p" => ConstraintKind::PrimaryKey,
            "u" => ConstraintKind::Unique,
            "c" => ConstraintKind::Check,
            "x" => ConstraintKind::Exclusion,
            _ => ConstraintKind::ForeignKey,
        };
        let ref_table: Option<String> = r.get(6);
        tables[i].constraints.push(Constraint {
            name: r.get(1),
            kind,
            definition: r.get(3),
            columns: r.get(4),
            references: ref_table
                .filter(|_| kind == ConstraintKind::ForeignKey)
                .map(|name| TableRef {
                    schema: r.get(5),
                    name,
                }),
            deferrable: r.get(7),
            initially_deferred: r.get(8),
            validated: r.get(9),
            comment: r.get(10),
        });
    }
    let mut view_indexes: HashMap<u32, Vec<Index>> = HashMap::new();
    for r in &r_idx {
        let oid: u32 = r.get(0);
        let index = Index {
            name: r.get(1),
            definition: r.get(2),
            method: r.get(3),
            unique: r.get(4),
            keys: r.get(5),
            include: r.get(6),
            predicate: r.get(7),
            valid: r.get(8),
            comment: r.get(9),
        };
        match by_oid.get(&oid) {
            Some(&i) => tables[i].indexes.push(index),
            None => view_indexes.entry(oid).or_default().push(index),
        }
    }
    for r in &r_trg {
        let Some(&i) = by_oid.get(&r.get::<_, u32>(0)) else {
            continue;
        };
        tables[i].triggers.push(Trigger {
            name: r.get(1),
            definition: r.get(2),
            enabled: r.get(3),
            comment: r.get(4),
        });
    }
    for r in &r_pol {
        let Some(&i) = by_oid.get(&r.get::<_, u32>(0)) else {
            continue;
        };
        tables[i].policies.push(Policy {
            name: r.get(1),
            permissive: r.get(2),
            command: r.get(3),
            roles: r.get(4),
            using: r.get(5),
            with_check: r.get(6),
        });
    }
    snap.tables = tables;
    snap.views = r_views
        .iter()
        .map(|r| {
            let oid: u32 = r.get(0);
            let deps: serde_json::Value = r.get(7);
            View {
                schema: r.get(1),
                name: r.get(2),
                materialized: r.get(3),
                definition: r.get(4),
                options: r.get(5),
                comment: r.get(6),
                depends_on: serde_json::from_value(deps).unwrap_or_default(),
                indexes: view_indexes.remove(&oid).unwrap_or_default(),
            }
        })
        .collect();
    snap.functions = r_funcs
        .iter()
        .map(|r| Function {
            schema: r.get(0),
            name: r.get(1),
            arguments: r.get(2),
            procedure: r.get(3),
            returns: r.get(4),
            language: r.get(5),
            volatility: r.get(6),
            security_definer: r.get(7),
            definition: r.get(8),
            comment: r.get(9),
        })
        .collect();
    if let Some(k) = kept.filter(|_| keep_views) {
        snap.views = k.views.clone();
    }
    if let Some(k) = kept {
        snap.schemas = k.schemas.clone();
        snap.extensions = k.extensions.clone();
        snap.types = k.types.clone();
        snap.functions = k.functions.clone();
        snap.sequences
            .extend(k.sequences.iter().filter(|q| q.owned_by.is_none()).cloned());
    }
    snap.normalize();
    Ok(snap)
}

async fn query<S: ToStatement + ?Sized + Sync>(
    client: &Client,
    sql: &S,
    what: &'static str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, SchemaError> {
    client
        .query(sql, params)
        .await
        .map_err(|e| SchemaError::Db(DbError::query(format!("reading {what} from pg_catalog"), e)))
}

fn type_from_row(r: &Row) -> Type {
    let typtype: String = r.get(2);
    let kind = match typtype.as_str() {
        "e" => TypeKind::Enum { labels: r.get(3) },
        "d" => {
            let names: Vec<String> = r.get(8);
            let defs: Vec<String> = r.get(9);
            TypeKind::Domain {
                base: r.get::<_, Option<String>>(4).unwrap_or_default(),
                collation: r.get(5),
                default: r.get(6),
                not_null: r.get(7),
                constraints: names
                    .into_iter()
                    .zip(defs)
                    .map(|(name, definition)| NamedDef { name, definition })
                    .collect(),
            }
        }
        _ => {
            let names: Vec<String> = r.get(10);
            let types: Vec<String> = r.get(11);
            let colls: Vec<String> = r.get(12);
            TypeKind::Composite {
                attributes: names
                    .into_iter()
                    .zip(types)
                    .zip(colls)
                    .map(|((name, type_name), c)| Attribute {
                        name,
                        type_name,
                        collation: Some(c).filter(|c| !c.is_empty()),
                    })
                    .collect(),
            }
        }
    };
    Type {
        schema: r.get(0),
        name: r.get(1),
        kind,
        comment: r.get(13),
    }
}
