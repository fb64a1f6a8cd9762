//! Data-integrity checks: rows that break a constraint PostgreSQL is not (yet) enforcing, or
//! that a pending migration is about to enforce.
//!
//! The constraints come from three catalog queries; each table scan is then one job on the
//! pool, under the check timeout, optionally over a `TABLESAMPLE`. Identifiers in generated SQL
//! are quoted by the server (`quote_ident`), so mixed case and reserved words are safe.

use futures_util::stream::{self, StreamExt};
use pg_query::NodeEnum;
use tokio_postgres::Client;

use super::{schema_filter, timed, CheckRun, Outcome, ValidateOptions};
use crate::db::DbError;
use crate::ident::quote_literal;
use crate::report::{Finding, Severity};
use crate::source::Migration;

/// How many offending keys a finding shows at most.
const SAMPLES: i64 = 5;

/// A table, as named in generated SQL and in messages.
#[derive(Debug, Clone)]
struct Table {
    schema: String,
    name: String,
    /// `quote_ident(schema).quote_ident(name)`.
    sql: String,
    /// Partitioned (`relkind = 'p'`): scanned with its partitions, never with ONLY.
    partitioned: bool,
}

impl Table {
    /// `ONLY t` for plain tables (foreign keys and checks are not inherited by legacy
    /// inheritance children); partitioned tables are scanned whole.
    fn scan_clause(&self, alias: &str, sample: Option<f64>) -> String {
        let only = if self.partitioned { "" } else { "ONLY " };
        let sample = sample
            .map(|p| format!(" TABLESAMPLE SYSTEM ({p})"))
            .unwrap_or_default();
        format!("{only}{} {alias}{sample}", self.sql)
    }
}

fn table(schema: String, name: String, sql: String, relkind: &str) -> Table {
    Table {
        schema,
        name,
        sql,
        partitioned: relkind == "p",
    }
}

/// A job that scans one table.
type Job<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = (CheckRun, Vec<Finding>)> + Send + 'a>>;

/// Runs every data check. `pending` are the migrations the next `migrate` would apply.
pub(crate) async fn run(
    client: &Client,
    pool: &deadpool_postgres::Pool,
    opts: &ValidateOptions,
    pending: &[Migration],
) -> Result<Vec<(CheckRun, Vec<Finding>)>, DbError> {
    let mut jobs: Vec<Job<'_>> = Vec::new();
    for fk in foreign_keys(client, opts).await? {
        let name = format!("fk-orphans {}", fk.constraint);
        jobs.push(Box::pin(timed(
            "data",
            name,
            scan(pool, opts, orphans_sql(&fk, opts), move |row| {
                orphan_finding(&fk, row)
            }),
        )));
    }
    for ck in unvalidated_checks(client, opts).await? {
        let name = format!("not-valid-check {}", ck.constraint);
        let sql = format!(
            "SELECT count(*), NULL::text FROM {} WHERE NOT ({})",
            ck.table.scan_clause("t", opts.sample_percent),
            ck.expr
        );
        jobs.push(Box::pin(timed(
            "data",
            name,
            scan(pool, opts, sql, move |row| check_finding(&ck, row)),
        )));
    }
    for key in unique_keys(client, opts, pending).await? {
        let name = format!("duplicates {}", key.what);
        let sql = duplicates_sql(&key, opts);
        jobs.push(Box::pin(timed(
            "data",
            name,
            scan(pool, opts, sql, move |row| duplicate_finding(&key, row)),
        )));
    }
    for nn in pending_not_nulls(client, pending).await? {
        let name = format!("nulls {}.{}", nn.table.sql, nn.column);
        let sql = format!(
            "SELECT count(*), NULL::text FROM {} WHERE t.{} IS NULL",
            nn.table.scan_clause("t", opts.sample_percent),
            nn.column
        );
        jobs.push(Box::pin(timed(
            "data",
            name,
            scan(pool, opts, sql, move |row| null_finding(&nn, row)),
        )));
    }
    for seq in sequences(client, opts).await? {
        let name = format!("sequence-behind {}", seq.sequence);
        let sql = format!(
            "SELECT max(t.{})::text FROM {}",
            seq.column,
            seq.table.scan_clause("t", None)
        );
        jobs.push(Box::pin(timed(
            "data",
            name,
            sequence_check(pool, opts, sql, seq),
        )));
    }
    Ok(stream::iter(jobs)
        .buffer_unordered(opts.parallel.max(1))
        .collect()
        .await)
}

/// Runs `sql` (which returns `count, samples-as-json-text`) on a pooled connection under the
/// check timeout and turns the row into findings.
async fn scan(
    pool: &deadpool_postgres::Pool,
    opts: &ValidateOptions,
    sql: String,
    judge: impl FnOnce(&tokio_postgres::Row) -> Option<Finding>,
) -> Result<Outcome, DbError> {
    let row = pooled_query_one(pool, opts, &sql).await?;
    Ok(Outcome::findings(judge(&row).into_iter().collect()))
}

async fn pooled_query_one(
    pool: &deadpool_postgres::Pool,
    opts: &ValidateOptions,
    sql: &str,
) -> Result<tokio_postgres::Row, DbError> {
    let conn = pool.get().await.map_err(|e| DbError::Connect {
        target: "the validation pool".into(),
        reason: e.to_string(),
        hint: Some("lower DATABASE_CONNECTION_POOL_SIZE or free connections".into()),
        pg: None,
    })?;
    // Each check is read-only and bounded; SET (not LOCAL) because the pool reuses sessions and
    // every check sets its own value anyway.
    conn.batch_execute(&format!(
        "SET statement_timeout = {}; SET lock_timeout = '5s'",
        opts.check_timeout.as_millis().max(1)
    ))
    .await
    .map_err(|e| DbError::query("preparing a validation session", e))?;
    conn.query_one(sql, &[])
        .await
        .map_err(|e| DbError::query(format!("running `{}`", first_line(sql)), e))
}

fn first_line(sql: &str) -> String {
    let one: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.chars().count() > 120 {
        format!("{}…", one.chars().take(120).collect::<String>())
    } else {
        one
    }
}

fn samples(row: &tokio_postgres::Row) -> serde_json::Value {
    row.get::<_, Option<String>>(1)
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// `WITH o AS (<offending rows>) SELECT count(*), <first SAMPLES as json>`; without samples for
/// sensitive tables.
fn count_with_samples(offending: &str, sensitive: bool) -> String {
    let samples = if sensitive {
        "NULL::text".to_string()
    } else {
        format!("(SELECT json_agg(s)::text FROM (SELECT * FROM o LIMIT {SAMPLES}) s)")
    };
    format!("WITH o AS MATERIALIZED ({offending}) SELECT count(*), {samples} FROM o")
}

// --- foreign keys ------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct ForeignKey {
    constraint: String,
    name_sql: String,
    child: Table,
    parent: Table,
    child_cols: Vec<String>,
    parent_cols: Vec<String>,
    match_full: bool,
    validated: bool,
}

async fn foreign_keys(client: &Client, opts: &ValidateOptions) -> Result<Vec<ForeignKey>, DbError> {
    // conparentid <> 0: the copy of a partitioned table's key on each partition; the parent's
    // key is checked across all partitions at once.
    let sql = format!(
        "SELECT cn.nspname::text, cc.relname::text, quote_ident(cn.nspname) || '.' || quote_ident(cc.relname), cc.relkind::text,
                pn.nspname::text, pc.relname::text, quote_ident(pn.nspname) || '.' || quote_ident(pc.relname), pc.relkind::text,
                c.conname::text, quote_ident(c.conname), c.confmatchtype::text, c.convalidated,
                ARRAY(SELECT quote_ident(a.attname) FROM unnest(c.conkey) WITH ORDINALITY k(n, i)
                        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i),
                ARRAY(SELECT quote_ident(a.attname) FROM unnest(c.confkey) WITH ORDINALITY k(n, i)
                        JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.i)
           FROM pg_constraint c
           JOIN pg_class cc ON cc.oid = c.conrelid JOIN pg_namespace cn ON cn.oid = cc.relnamespace
           JOIN pg_class pc ON pc.oid = c.confrelid JOIN pg_namespace pn ON pn.oid = pc.relnamespace
          WHERE c.contype = 'f' AND c.conparentid = 0 AND {}
          ORDER BY 1, 2, 9",
        schema_filter("cn.nspname", &opts.schemas)
    );
    let rows = client
        .query(&sql, &[])
        .await
        .map_err(|e| DbError::query("listing foreign keys", e))?;
    Ok(rows
        .iter()
        .map(|r| {
            let child = table(r.get(0), r.get(1), r.get(2), r.get(3));
            ForeignKey {
                constraint: format!("{}.{}", child.sql, r.get::<_, String>(9)),
                name_sql: r.get(9),
                parent: table(r.get(4), r.get(5), r.get(6), r.get(7)),
                child,
                match_full: r.get::<_, String>(10) == "f",
                validated: r.get(11),
                child_cols: r.get(12),
                parent_cols: r.get(13),
            }
        })
        .collect())
}

/// The anti-join PostgreSQL's own `VALIDATE CONSTRAINT` runs, as a count with samples.
///
/// MATCH SIMPLE: a row with any NULL key column is not checked. MATCH FULL: all NULL is fine,
/// some NULL is a violation, none NULL must have a parent.
fn orphans_sql(fk: &ForeignKey, opts: &ValidateOptions) -> String {
    let child_cols: Vec<String> = fk.child_cols.iter().map(|c| format!("c.{c}")).collect();
    let join: Vec<String> = fk
        .child_cols
        .iter()
        .zip(&fk.parent_cols)
        .map(|(c, p)| format!("p.{p} = c.{c}"))
        .collect();
    let no_parent = format!(
        "NOT EXISTS (SELECT 1 FROM {} WHERE {})",
        fk.parent.scan_clause("p", None),
        join.join(" AND ")
    );
    let all_set = child_cols
        .iter()
        .map(|c| format!("{c} IS NOT NULL"))
        .collect::<Vec<_>>()
        .join(" AND ");
    let condition = if fk.match_full {
        let all_null = child_cols
            .iter()
            .map(|c| format!("{c} IS NULL"))
            .collect::<Vec<_>>()
            .join(" AND ");
        format!("NOT ({all_null}) AND (NOT ({all_set}) OR {no_parent})")
    } else {
        format!("{all_set} AND {no_parent}")
    };
    let offending = format!(
        "SELECT {} FROM {} WHERE {condition}",
        child_cols.join(", "),
        fk.child.scan_clause("c", opts.sample_percent)
    );
    count_with_samples(
        &offending,
        opts.is_sensitive(&fk.child.schema, &fk.child.name),
    )
}

fn orphan_finding(fk: &ForeignKey, row: &tokio_postgres::Row) -> Option<Finding> {
    let count: i64 = row.get(0);
    if count == 0 {
        return None;
    }
    let (severity, why) = if fk.validated {
        (
            Severity::Critical,
            "the key is validated, so these rows got in while it was disabled (triggers off, session_replication_role = replica) or by corruption",
        )
    } else {
        (
            Severity::Warning,
            "the key is NOT VALID: `VALIDATE CONSTRAINT` will fail until they are fixed",
        )
    };
    let cols = fk.child_cols.join(", ");
    let message = format!(
        "{count} row(s) of {} reference no row of {} through ({cols}); {why}",
        fk.child.sql, fk.parent.sql
    );
    let mut fix = format!(
        "-- list them:\nSELECT {cols} FROM {} c WHERE {} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {} p WHERE {});\n\
         -- then insert the missing parents, or delete / set NULL the orphans",
        fk.child.sql,
        fk.child_cols
            .iter()
            .map(|c| format!("c.{c}"))
            .collect::<Vec<_>>()
            .join(" IS NOT NULL AND "),
        fk.parent.sql,
        fk.child_cols
            .iter()
            .zip(&fk.parent_cols)
            .map(|(c, p)| format!("p.{p} = c.{c}"))
            .collect::<Vec<_>>()
            .join(" AND ")
    );
    if !fk.validated {
        fix.push_str(&format!(
            ";\nALTER TABLE {} VALIDATE CONSTRAINT {};",
            fk.child.sql, fk.name_sql
        ));
    }
    Some(
        Finding::new("fk-orphans", severity, fk.constraint.clone(), message)
            .with_evidence(serde_json::json!({
                "rows": count,
                "child": fk.child.sql,
                "parent": fk.parent.sql,
                "columns": fk.child_cols,
                "match": if fk.match_full { "full" } else { "simple" },
                "validated": fk.validated,
                "sample_keys": samples(row),
            }))
            .with_fix(fix),
    )
}

// --- NOT VALID checks --------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct UnvalidatedCheck {
    constraint: String,
    name_sql: String,
    table: Table,
    expr: String,
}

async fn unvalidated_checks(
    client: &Client,
    opts: &ValidateOptions,
) -> Result<Vec<UnvalidatedCheck>, DbError> {
    let sql = format!(
        "SELECT n.nspname::text, t.relname::text, quote_ident(n.nspname) || '.' || quote_ident(t.relname), t.relkind::text,
                quote_ident(c.conname), pg_get_expr(c.conbin, c.conrelid)
           FROM pg_constraint c
           JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace
          WHERE c.contype = 'c' AND NOT c.convalidated AND c.conparentid = 0 AND {}
          ORDER BY 1, 2, 5",
        schema_filter("n.nspname", &opts.schemas)
    );
    let rows = client
        .query(&sql, &[])
        .await
        .map_err(|e| DbError::query("listing NOT VALID check constraints", e))?;
    Ok(rows
        .iter()
        .map(|r| {
            let t = table(r.get(0), r.get(1), r.get(2), r.get(3));
            UnvalidatedCheck {
                constraint: format!("{}.{}", t.sql, r.get::<_, String>(4)),
                name_sql: r.get(4),
                table: t,
                expr: r.get(5),
            }
        })
        .collect())
}

fn check_finding(ck: &UnvalidatedCheck, row: &tokio_postgres::Row) -> Option<Finding> {
    let count: i64 = row.get(0);
    (count > 0).then(|| {
        Finding::new(
            "not-valid-check-fails",
            Severity::Warning,
            ck.constraint.clone(),
            format!(
                "{count} row(s) of {} violate the NOT VALID check {}: `VALIDATE CONSTRAINT` will fail",
                ck.table.sql, ck.expr
            ),
        )
        .with_evidence(serde_json::json!({ "rows": count, "check": ck.expr }))
        .with_fix(format!(
            "SELECT * FROM {} WHERE NOT ({});\n-- fix those rows, then:\nALTER TABLE {} VALIDATE CONSTRAINT {};",
            ck.table.sql, ck.expr, ck.table.sql, ck.name_sql
        ))
    })
}

// --- unique keys: invalid unique indexes and keys pending migrations add -----------------------

#[derive(Debug, Clone)]
struct UniqueKey {
    /// What imposes it: an index, or a pending migration.
    what: String,
    table: Table,
    columns: Vec<String>,
    predicate: Option<String>,
    nulls_not_distinct: bool,
    /// `Some(id)` when a pending migration adds it.
    pending: Option<String>,
}

async fn unique_keys(
    client: &Client,
    opts: &ValidateOptions,
    pending: &[Migration],
) -> Result<Vec<UniqueKey>, DbError> {
    // Invalid unique indexes: a failed CREATE UNIQUE INDEX CONCURRENTLY, usually over duplicates.
    // An index being built right now is invalid too, and is left alone. Expression indexes are
    // skipped (their duplicates can't be named by column). `indnullsnotdistinct` is PG 15+:
    // read through to_jsonb so older servers simply don't have it.
    let sql = format!(
        "SELECT n.nspname::text, t.relname::text, quote_ident(n.nspname) || '.' || quote_ident(t.relname), t.relkind::text,
                quote_ident(n.nspname) || '.' || quote_ident(i.relname),
                ARRAY(SELECT quote_ident(a.attname) FROM unnest(x.indkey::int2[]) WITH ORDINALITY k(n, o)
                        JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.n
                       WHERE k.o <= x.indnkeyatts ORDER BY k.o),
                pg_get_expr(x.indpred, x.indrelid),
                coalesce((to_jsonb(x) ->> 'indnullsnotdistinct')::boolean, false)
           FROM pg_index x
           JOIN pg_class i ON i.oid = x.indexrelid
           JOIN pg_class t ON t.oid = x.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace
          WHERE x.indisunique AND NOT x.indisvalid AND x.indexprs IS NULL
            AND NOT EXISTS (SELECT 1 FROM pg_stat_progress_create_index p WHERE p.index_relid = x.indexrelid)
            AND {}
          ORDER BY 1, 2, 5",
        schema_filter("n.nspname", &opts.schemas)
    );
    let rows = client
        .query(&sql, &[])
        .await
        .map_err(|e| DbError::query("listing invalid unique indexes", e))?;
    let mut out: Vec<UniqueKey> = rows
        .iter()
        .map(|r| UniqueKey {
            what: format!("invalid unique index {}", r.get::<_, String>(4)),
            table: table(r.get(0), r.get(1), r.get(2), r.get(3)),
            columns: r.get(5),
            predicate: r.get(6),
            nulls_not_distinct: r.get(7),
            pending: None,
        })
        .collect();
    let mut wanted = Vec::new();
    for m in pending {
        for (rel, cols, nnd) in pending_unique_keys(m) {
            wanted.push((m.id.clone(), rel, cols, nnd));
        }
    }
    if !wanted.is_empty() {
        let rels: Vec<String> = wanted.iter().map(|w| w.1.clone()).collect();
        for (w, t) in wanted.into_iter().zip(resolve(client, &rels).await?) {
            let Some(t) = t else { continue };
            let columns = w.2.iter().map(|c| quote_ident_local(c)).collect();
            out.push(UniqueKey {
                what: format!("{} adds UNIQUE ({}) on {}", w.0, w.2.join(", "), t.sql),
                table: t,
                columns,
                predicate: None,
                nulls_not_distinct: w.3,
                pending: Some(w.0),
            });
        }
    }
    Ok(out)
}

fn duplicates_sql(key: &UniqueKey, opts: &ValidateOptions) -> String {
    let cols: Vec<String> = key.columns.iter().map(|c| format!("t.{c}")).collect();
    let mut conds = Vec::new();
    if !key.nulls_not_distinct {
        conds.extend(cols.iter().map(|c| format!("{c} IS NOT NULL")));
    }
    if let Some(p) = &key.predicate {
        conds.push(format!("({p})"));
    }
    let filter = if conds.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conds.join(" AND "))
    };
    let offending = format!(
        "SELECT {cols}, count(*) AS copies FROM {}{filter} GROUP BY {cols} HAVING count(*) > 1",
        key.table.scan_clause("t", opts.sample_percent),
        cols = cols.join(", ")
    );
    count_with_samples(
        &offending,
        opts.is_sensitive(&key.table.schema, &key.table.name),
    )
}

fn duplicate_finding(key: &UniqueKey, row: &tokio_postgres::Row) -> Option<Finding> {
    let groups: i64 = row.get(0);
    if groups == 0 {
        return None;
    }
    let cols = key.columns.join(", ");
    let message = match &key.pending {
        Some(id) => format!(
            "{groups} value(s) of ({cols}) appear more than once in {}: pending migration {id} adds a unique key there and will fail",
            key.table.sql
        ),
        None => format!(
            "{groups} value(s) of ({cols}) appear more than once in {}: the {} cannot be rebuilt until they are removed",
            key.table.sql, key.what
        ),
    };
    Some(
        Finding::new(
            "duplicate-keys",
            Severity::Critical,
            format!("{} ({cols})", key.table.sql),
            message,
        )
        .with_evidence(serde_json::json!({
            "duplicate_values": groups,
            "because": key.what,
            "sample": samples(row),
        }))
        .with_fix(format!(
            "SELECT {cols}, count(*) FROM {} GROUP BY {cols} HAVING count(*) > 1;\n-- keep one row per value, then build the key",
            key.table.sql
        )),
    )
}

// --- NOT NULL a pending migration adds ---------------------------------------------------------

#[derive(Debug, Clone)]
struct PendingNotNull {
    migration: String,
    table: Table,
    column: String,
}

async fn pending_not_nulls(
    client: &Client,
    pending: &[Migration],
) -> Result<Vec<PendingNotNull>, DbError> {
    let mut wanted = Vec::new();
    for m in pending {
        for (rel, col) in pending_set_not_null(m) {
            wanted.push((m.id.clone(), rel, col));
        }
    }
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let rels: Vec<String> = wanted.iter().map(|w| w.1.clone()).collect();
    let resolved = resolve(client, &rels).await?;
    Ok(wanted
        .into_iter()
        .zip(resolved)
        .filter_map(|(w, t)| {
            t.map(|table| PendingNotNull {
                migration: w.0,
                table,
                column: quote_ident_local(&w.2),
            })
        })
        .collect())
}

fn null_finding(nn: &PendingNotNull, row: &tokio_postgres::Row) -> Option<Finding> {
    let count: i64 = row.get(0);
    (count > 0).then(|| {
        Finding::new(
            "nulls-before-not-null",
            Severity::Critical,
            format!("{}.{}", nn.table.sql, nn.column),
            format!(
                "{count} row(s) of {} have {} NULL: pending migration {} makes it NOT NULL and will fail",
                nn.table.sql, nn.column, nn.migration
            ),
        )
        .with_evidence(serde_json::json!({ "rows": count, "migration": nn.migration }))
        .with_fix(format!(
            "UPDATE {} SET {} = <value> WHERE {} IS NULL;  -- or give the migration a backfill first",
            nn.table.sql, nn.column, nn.column
        ))
    })
}

/// Relation names as written in migrations (`t`, `s.t`) → the tables they name now, resolved
/// by the server with its search_path; `None` for those that don't exist yet.
async fn resolve(client: &Client, rels: &[String]) -> Result<Vec<Option<Table>>, DbError> {
    let rows = client
        .query(
            "SELECT w.i, n.nspname::text, c.relname::text, quote_ident(n.nspname) || '.' || quote_ident(c.relname), c.relkind::text
               FROM unnest($1::text[]) WITH ORDINALITY w(rel, i)
               JOIN pg_class c ON c.oid = to_regclass(w.rel)
               JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind IN ('r', 'p')",
            &[&rels],
        )
        .await
        .map_err(|e| DbError::query("resolving the tables pending migrations change", e))?;
    let mut out = vec![None; rels.len()];
    for r in rows {
        let i = r.get::<_, i64>(0) as usize - 1;
        out[i] = Some(table(r.get(1), r.get(2), r.get(3), r.get(4)));
    }
    Ok(out)
}

/// An identifier as the server's `quote_ident` would write it (lowercase plain names bare).
fn quote_ident_local(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain && !is_reserved(name) {
        name.to_string()
    } else {
        crate::ident::quote_ident(name)
    }
}

fn is_reserved(name: &str) -> bool {
    // Words that can't be a bare column name; quoting an unreserved word is merely unneeded.
    matches!(
        name,
        "all"
            | "analyse"
            | "analyze"
            | "and"
            | "any"
            | "array"
            | "as"
            | "asc"
            | "asymmetric"
            | "both"
            | "case"
            | "cast"
            | "check"
            | "collate"
            | "column"
            | "constraint"
            | "create"
            | "current_catalog"
            | "current_date"
            | "current_role"
            | "current_time"
            | "current_timestamp"
            | "current_user"
            | "default"
            | "deferrable"
            | "desc"
            | "distinct"
            | "do"
            | "else"
            | "end"
            | "except"
            | "false"
            | "fetch"
            | "for"
            | "foreign"
            | "from"
            | "grant"
            | "group"
            | "having"
            | "in"
            | "initially"
            | "intersect"
            | "into"
            | "lateral"
            | "leading"
            | "limit"
            | "localtime"
            | "localtimestamp"
            | "not"
            | "null"
            | "offset"
            | "on"
            | "only"
            | "or"
            | "order"
            | "placing"
            | "primary"
            | "references"
            | "returning"
            | "select"
            | "session_user"
            | "some"
            | "symmetric"
            | "table"
            | "then"
            | "to"
            | "trailing"
            | "true"
            | "union"
            | "unique"
            | "user"
            | "using"
            | "variadic"
            | "when"
            | "where"
            | "window"
            | "with"
    )
}

fn range_var_name(rv: &pg_query::protobuf::RangeVar) -> String {
    if rv.schemaname.is_empty() {
        quote_ident_local(&rv.relname)
    } else {
        format!(
            "{}.{}",
            quote_ident_local(&rv.schemaname),
            quote_ident_local(&rv.relname)
        )
    }
}

fn statements(m: &Migration) -> Vec<NodeEnum> {
    let mut out = Vec::new();
    for chunk in m.chunks() {
        let Ok(parsed) = pg_query::parse(chunk.text) else {
            continue;
        };
        for raw in parsed.protobuf.stmts {
            if let Some(node) = raw.stmt.and_then(|n| n.node) {
                out.push(node);
            }
        }
    }
    out
}

/// `(relation, columns, nulls not distinct)` of every unique key (UNIQUE / PRIMARY KEY
/// constraint, CREATE UNIQUE INDEX over plain columns without WHERE) `m` adds to a table.
fn pending_unique_keys(m: &Migration) -> Vec<(String, Vec<String>, bool)> {
    use pg_query::protobuf::{AlterTableType, ConstrType};
    let mut out = Vec::new();
    for node in statements(m) {
        match node {
            NodeEnum::IndexStmt(ix) if ix.unique && ix.where_clause.is_none() => {
                let Some(rv) = &ix.relation else { continue };
                let cols: Option<Vec<String>> = ix
                    .index_params
                    .iter()
                    .map(|p| match &p.node {
                        Some(NodeEnum::IndexElem(e)) if !e.name.is_empty() => Some(e.name.clone()),
                        _ => None,
                    })
                    .collect();
                if let Some(cols) = cols {
                    out.push((range_var_name(rv), cols, ix.nulls_not_distinct));
                }
            }
            NodeEnum::AlterTableStmt(a) => {
                let Some(rv) = &a.relation else { continue };
                for cmd in &a.cmds {
                    let Some(NodeEnum::AlterTableCmd(c)) = &cmd.node else {
                        continue;
                    };
                    if c.subtype() != AlterTableType::AtAddConstraint {
                        continue;
                    }
                    let Some(NodeEnum::Constraint(con)) =
                        c.def.as_ref().and_then(|d| d.node.as_ref())
                    else {
                        continue;
                    };
                    if !matches!(
                        con.contype(),
                        ConstrType::ConstrUnique | ConstrType::ConstrPrimary
                    ) || !con.indexname.is_empty()
                    {
                        continue;
                    }
                    let cols: Vec<String> = con
                        .keys
                        .iter()
                        .filter_map(|k| match &k.node {
                            Some(NodeEnum::String(s)) => Some(s.sval.clone()),
                            _ => None,
                        })
                        .collect();
                    if !cols.is_empty() {
                        out.push((range_var_name(rv), cols, con.nulls_not_distinct));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// `(relation, column)` of every `ALTER COLUMN … SET NOT NULL` and every column of an added
/// PRIMARY KEY in `m`.
fn pending_set_not_null(m: &Migration) -> Vec<(String, String)> {
    use pg_query::protobuf::{AlterTableType, ConstrType};
    let mut out = Vec::new();
    for node in statements(m) {
        let NodeEnum::AlterTableStmt(a) = node else {
            continue;
        };
        let Some(rv) = &a.relation else { continue };
        for cmd in &a.cmds {
            let Some(NodeEnum::AlterTableCmd(c)) = &cmd.node else {
                continue;
            };
            match c.subtype() {
                AlterTableType::AtSetNotNull => out.push((range_var_name(rv), c.name.clone())),
                AlterTableType::AtAddConstraint => {
                    if let Some(NodeEnum::Constraint(con)) =
                        c.def.as_ref().and_then(|d| d.node.as_ref())
                    {
                        if con.contype() == ConstrType::ConstrPrimary {
                            for k in &con.keys {
                                if let Some(NodeEnum::String(s)) = &k.node {
                                    out.push((range_var_name(rv), s.sval.clone()));
                                }
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
    out
}

// --- sequences behind their column -------------------------------------------------------------

#[derive(Debug, Clone)]
struct SequenceUse {
    sequence: String,
    table: Table,
    column: String,
    /// What `nextval` returns next; `None` when the role can't read the sequence.
    next: Option<i64>,
    increment: i64,
}

async fn sequences(client: &Client, opts: &ValidateOptions) -> Result<Vec<SequenceUse>, DbError> {
    // Sequences a column owns (serial, identity) or uses in its default. pg_sequences hides
    // last_value from roles without USAGE/SELECT on the sequence.
    let sql = format!(
        "WITH uses AS (
            SELECT d.objid AS seq, d.refobjid AS rel, d.refobjsubid AS att
              FROM pg_depend d
             WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
               AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0
            UNION
            SELECT d.refobjid, ad.adrelid, ad.adnum
              FROM pg_depend d JOIN pg_attrdef ad ON ad.oid = d.objid
             WHERE d.classid = 'pg_attrdef'::regclass AND d.refclassid = 'pg_class'::regclass)
         SELECT quote_ident(sn.nspname) || '.' || quote_ident(s.relname),
                tn.nspname::text, t.relname::text, quote_ident(tn.nspname) || '.' || quote_ident(t.relname), t.relkind::text,
                quote_ident(a.attname),
                has_sequence_privilege(s.oid, 'SELECT') OR has_sequence_privilege(s.oid, 'USAGE'),
                ps.last_value, ps.start_value, ps.increment_by
           FROM uses u
           JOIN pg_class s ON s.oid = u.seq AND s.relkind = 'S'
           JOIN pg_namespace sn ON sn.oid = s.relnamespace
           JOIN pg_class t ON t.oid = u.rel AND t.relkind IN ('r', 'p')
           JOIN pg_namespace tn ON tn.oid = t.relnamespace
           JOIN pg_attribute a ON a.attrelid = u.rel AND a.attnum = u.att AND NOT a.attisdropped
           JOIN pg_sequences ps ON ps.schemaname = sn.nspname AND ps.sequencename = s.relname
          WHERE a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype) AND {}
          ORDER BY 1, 4, 6",
        schema_filter("tn.nspname", &opts.schemas)
    );
    let rows = client
        .query(&sql, &[])
        .await
        .map_err(|e| DbError::query("listing sequences and the columns they feed", e))?;
    Ok(rows
        .iter()
        .map(|r| {
            let readable: bool = r.get(6);
            let last: Option<i64> = r.get(7);
            let start: i64 = r.get(8);
            let increment: i64 = r.get(9);
            SequenceUse {
                sequence: r.get(0),
                table: table(r.get(1), r.get(2), r.get(3), r.get(4)),
                column: r.get(5),
                next: readable.then(|| last.map_or(start, |l| l.saturating_add(increment))),
                increment,
            }
        })
        .collect())
}

async fn sequence_check(
    pool: &deadpool_postgres::Pool,
    opts: &ValidateOptions,
    sql: String,
    seq: SequenceUse,
) -> Result<Outcome, DbError> {
    let Some(next) = seq.next else {
        return Ok(Outcome {
            findings: Vec::new(),
            data: serde_json::Value::Null,
            note: Some(format!(
                "lacks USAGE or SELECT on {}: cannot read where it stands",
                seq.sequence
            )),
        });
    };
    let row = pooled_query_one(pool, opts, &sql).await?;
    let Some(max) = row
        .get::<_, Option<String>>(0)
        .and_then(|m| m.parse::<i64>().ok())
    else {
        return Ok(Outcome::findings(Vec::new()));
    };
    let behind = if seq.increment > 0 {
        next <= max
    } else {
        next >= max
    };
    if !behind {
        return Ok(Outcome::findings(Vec::new()));
    }
    Ok(Outcome::findings(vec![Finding::new(
        "sequence-behind",
        Severity::Critical,
        format!("{}.{}", seq.table.sql, seq.column),
        format!(
            "{} will next return {next}, but {}.{} already holds values up to {max}: inserts that use the default will fail with duplicate keys (typical after a data import)",
            seq.sequence, seq.table.sql, seq.column
        ),
    )
    .with_evidence(serde_json::json!({ "sequence": seq.sequence, "next_value": next, "column_max": max }))
    .with_fix(format!(
        "SELECT setval({}, (SELECT max({}) FROM {}));",
        quote_literal(&seq.sequence),
        seq.column,
        seq.table.sql
    ))]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mig(sql: &str) -> Migration {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("0001_x.sql"), sql).unwrap();
        crate::source::load(tmp.path())
            .unwrap()
            .migrations
            .remove(0)
    }

    #[test]
    fn pending_keys_and_not_nulls_are_read_from_the_parse_tree() {
        let m = mig("CREATE UNIQUE INDEX CONCURRENTLY u ON app.\"Users\" (email, lower_name);\n\
             CREATE UNIQUE INDEX p ON t (a) WHERE a > 0;\n\
             CREATE UNIQUE INDEX e ON t (lower(b));\n\
             ALTER TABLE orders ADD CONSTRAINT o_uq UNIQUE NULLS NOT DISTINCT (code), ALTER COLUMN note SET NOT NULL;\n\
             ALTER TABLE items ADD PRIMARY KEY (id, \"Line\");\n");
        assert_eq!(
            pending_unique_keys(&m),
            vec![
                (
                    "app.\"Users\"".to_string(),
                    vec!["email".to_string(), "lower_name".to_string()],
                    false
                ),
                ("orders".into(), vec!["code".into()], true),
                ("items".into(), vec!["id".into(), "Line".into()], false),
            ],
            "partial and expression indexes are left out"
        );
        assert_eq!(
            pending_set_not_null(&m),
            vec![
                ("orders".to_string(), "note".to_string()),
                ("items".into(), "id".into()),
                ("items".into(), "Line".into()),
            ]
        );
    }

    #[test]
    fn identifiers_are_quoted_like_the_server_does() {
        assert_eq!(quote_ident_local("user_id"), "user_id");
        assert_eq!(quote_ident_local("userId"), "\"userId\"");
        assert_eq!(quote_ident_local("order"), "\"order\"");
        assert_eq!(quote_ident_local("9lives"), "\"9lives\"");
    }

    #[test]
    fn orphan_query_follows_match_simple_and_full() {
        let t = |n: &str| Table {
            schema: "public".into(),
            name: n.into(),
            sql: format!("public.{n}"),
            partitioned: n == "events",
        };
        let mut fk = ForeignKey {
            constraint: "public.c.fk".into(),
            name_sql: "fk".into(),
            child: t("c"),
            parent: t("events"),
            child_cols: vec!["a".into(), "b".into()],
            parent_cols: vec!["x".into(), "y".into()],
            match_full: false,
            validated: true,
        };
        let opts = ValidateOptions::from_settings(&crate::config::Settings::defaults());
        let simple = orphans_sql(&fk, &opts);
        assert!(simple.contains("FROM ONLY public.c c WHERE c.a IS NOT NULL AND c.b IS NOT NULL AND NOT EXISTS (SELECT 1 FROM public.events p WHERE p.x = c.a AND p.y = c.b)"), "{simple}");
        fk.match_full = true;
        let full = orphans_sql(&fk, &opts);
        assert!(
            full.contains("WHERE NOT (c.a IS NULL AND c.b IS NULL) AND (NOT (c.a IS NOT NULL AND c.b IS NOT NULL) OR NOT EXISTS"),
            "{full}"
        );
        let mut sensitive = opts.clone();
        sensitive.sensitive = vec!["c".into()];
        sensitive.sample_percent = Some(1.0);
        let s = orphans_sql(&fk, &sensitive);
        assert!(
            s.contains("NULL::text FROM o") && !s.contains("json_agg"),
            "{s}"
        );
        assert!(s.contains("TABLESAMPLE SYSTEM (1)"), "{s}");
    }
}
