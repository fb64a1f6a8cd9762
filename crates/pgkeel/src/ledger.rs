//! The ledger: the spec's `__drizzle_migrations` table (which migrations ran, with which hash and
//! which rollback) and pgkeel's append-only audit table.
//!
//! The spec's seven columns are kept exactly (`id TEXT PRIMARY KEY, hash, sql_content,
//! created_at, applied_at, rollback_sql, status`); pgkeel adds its own beside them
//! (`execution_ms`, `normalized_hash`, `applied_by`, `pgkeel_version`, `statements_done`,
//! `statement_hashes`, `error`) so a table created by the spec's Node scripts is adopted as it is. This module owns
//! the DDL and the SQL text of every ledger write; it does not decide what to apply.

use chrono::NaiveDateTime;
use serde::Serialize;
use tokio_postgres::types::Type;
use tokio_postgres::Client;

use crate::config::Settings;
use crate::db::DbError;
use crate::ident::{qualified, quote_literal};
use crate::source::Migration;

/// The state of a migration as the ledger records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RowStatus {
    Applied,
    Failed,
    RolledBack,
    Baselined,
    /// A value written by another tool; shown as-is.
    Other(String),
}

impl RowStatus {
    pub fn as_str(&self) -> &str {
        match self {
            RowStatus::Applied => "applied",
            RowStatus::Failed => "failed",
            RowStatus::RolledBack => "rolled_back",
            RowStatus::Baselined => "baselined",
            RowStatus::Other(s) => s,
        }
    }

    fn parse(s: Option<&str>) -> Self {
        match s.unwrap_or("applied") {
            "applied" => RowStatus::Applied,
            "failed" => RowStatus::Failed,
            "rolled_back" => RowStatus::RolledBack,
            "baselined" => RowStatus::Baselined,
            other => RowStatus::Other(other.to_string()),
        }
    }

    /// Applied or baselined: the migration's effects are in the database.
    pub fn is_in_effect(&self) -> bool {
        matches!(self, RowStatus::Applied | RowStatus::Baselined)
    }
}

/// One row of the ledger.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct LedgerRow {
    pub id: String,
    pub hash: String,
    pub normalized_hash: Option<String>,
    pub status: RowStatus,
    pub applied_at: Option<NaiveDateTime>,
    pub execution_ms: Option<i64>,
    pub statements_done: Option<i32>,
    /// [`crate::sql::statement_hash`] of each statement of the file as it was when progress was
    /// recorded; written only for a migration that committed part of its statements.
    pub statement_hashes: Option<Vec<String>>,
    pub error: Option<String>,
    pub rollback_sql: Option<String>,
    pub applied_by: Option<String>,
}

/// How far a migration got: `done` statements in effect, and, when part of it committed
/// while the rest did not, the hashes of the file's statements at that time (so a later run
/// can tell whether the committed ones are still the file's).
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    pub done: usize,
    pub hashes: Option<&'a [String]>,
}

impl Progress<'_> {
    /// `done` statements, with no statement hashes.
    pub fn count(done: usize) -> Progress<'static> {
        Progress { done, hashes: None }
    }
}

/// A marker in [`Ledger::record_sql`]'s `execution_ms` expression, followed by `0`: a record
/// sent alone after a non-transactional statement (which runs in its own query, so its time is
/// not in the record's `statement_timestamp()`) gets the statement's time, measured by the
/// sender, put in front of that `0` ([`with_time_before`]).
pub const RAN_BEFORE_MS: &str = "/*pgkeel:ran-before-ms*/";

/// `sql` (a record) with `ms` milliseconds spent before it added to its `execution_ms`.
pub fn with_time_before(sql: &str, ms: u128) -> String {
    sql.replace(
        &format!("{RAN_BEFORE_MS}0"),
        &format!("{RAN_BEFORE_MS}{ms}"),
    )
}

/// Columns pgkeel adds beside the spec's seven.
const EXTRA_COLUMNS: &[(&str, &str)] = &[
    ("execution_ms", "bigint"),
    ("normalized_hash", "text"),
    ("applied_by", "text"),
    ("pgkeel_version", "text"),
    ("statements_done", "integer"),
    ("error", "text"),
    ("statement_hashes", "text[]"),
];

/// How a reader stands towards the ledger, for [`Ledger::with_rows`].
#[derive(Debug, Clone, Copy)]
pub enum Held<'a> {
    /// Nothing known: the ledger may be missing or lack pgkeel's columns.
    No,
    /// The connection holds the deploy lock and [`Ledger::ensure`] ran on it since it took it.
    Locked,
    /// As `Locked`, and every write to the ledger on that connection is announced to the
    /// cache ([`RowCache::written`]).
    Cached(&'a RowCache),
}

impl<'a> Held<'a> {
    /// `No` unless `locked`; `Cached` when there is a cache.
    pub fn of(locked: bool, cache: Option<&'a RowCache>) -> Self {
        match (locked, cache) {
            (false, _) => Held::No,
            (true, None) => Held::Locked,
            (true, Some(c)) => Held::Cached(c),
        }
    }
}

/// The ledger's rows, for one connection that holds the deploy lock and runs many migrations,
/// rollbacks and re-applies in a row (the test suite): nobody else can write the ledger, so
/// after the first full read only the rows this connection wrote since are read again. Reading
/// the whole ledger before each step made a 1000-migration suite read half a million rows.
#[derive(Debug, Default)]
pub struct RowCache {
    state: std::sync::Mutex<CacheState>,
}

#[derive(Debug, Default)]
struct CacheState {
    /// `None`: not read yet, or forgotten.
    rows: Option<Vec<LedgerRow>>,
    /// Ids whose rows may have changed since they were read.
    written: Vec<String>,
}

impl RowCache {
    fn state(&self) -> std::sync::MutexGuard<'_, CacheState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Says that the rows of `ids` may be written (inserted, updated or deleted): they are read
    /// again before the rows are next used.
    pub fn written<'i>(&self, ids: impl IntoIterator<Item = &'i str>) {
        let mut st = self.state();
        if st.rows.is_some() {
            st.written.extend(ids.into_iter().map(str::to_string));
        }
    }

    /// Says that the ledger may have changed in ways not known: the next use reads it whole.
    pub fn forget(&self) {
        let mut st = self.state();
        st.rows = None;
        st.written.clear();
    }

    async fn with_rows<R>(
        &self,
        ledger: &Ledger,
        client: &Client,
        f: impl FnOnce(&[LedgerRow]) -> R,
    ) -> Result<R, DbError> {
        let (known, mut written) = {
            let mut st = self.state();
            (st.rows.is_some(), std::mem::take(&mut st.written))
        };
        if !known {
            let rows = ledger.read_rows(client, None, None).await?;
            let mut st = self.state();
            st.rows = Some(rows);
            return Ok(f(st.rows.as_deref().unwrap_or_default()));
        }
        written.sort();
        written.dedup();
        let fresh = match written.is_empty() {
            true => Vec::new(),
            false => ledger
                .read_rows(client, None, Some(&written))
                .await
                .inspect_err(|_| self.forget())?,
        };
        let mut st = self.state();
        let rows = st.rows.get_or_insert_with(Vec::new);
        if !written.is_empty() {
            rows.retain(|r| written.binary_search(&r.id).is_err());
            rows.extend(fresh);
            // The order of a full read (see `read_rows`).
            rows.sort_by(|a, b| {
                (a.applied_at.is_none(), a.applied_at, &a.id).cmp(&(
                    b.applied_at.is_none(),
                    b.applied_at,
                    &b.id,
                ))
            });
        }
        Ok(f(rows))
    }
}

/// Where the ledger lives.
#[derive(Debug, Clone)]
pub struct Ledger {
    pub schema: String,
    pub table: String,
    pub audit_table: String,
}

impl Ledger {
    pub fn from_settings(settings: &Settings) -> Self {
        Ledger {
            schema: settings.ledger_schema.clone(),
            table: settings.ledger_table.clone(),
            audit_table: crate::config::AUDIT_TABLE.into(),
        }
    }

    /// The ledger table, quoted and qualified.
    pub fn table_sql(&self) -> String {
        qualified(&self.schema, &self.table)
    }

    fn audit_sql_name(&self) -> String {
        qualified(&self.schema, &self.audit_table)
    }

    /// Appends one row to the audit table when the database has one (a restored database has
    /// it when the backup did); creates nothing.
    pub async fn audit_if_present(
        &self,
        client: &Client,
        operation: &str,
        outcome: &str,
        detail: &serde_json::Value,
    ) -> Result<bool, DbError> {
        let present: bool = client
            .query_one(
                "SELECT to_regclass($1) IS NOT NULL",
                &[&self.audit_sql_name()],
            )
            .await
            .map_err(|e| DbError::query("looking for pgkeel's audit table", e))?
            .get(0);
        if present {
            client
                .batch_execute(&self.audit_sql(operation, None, outcome, Some(detail)))
                .await
                .map_err(|e| DbError::query("recording the operation in the audit table", e))?;
        }
        Ok(present)
    }

    /// The columns of the ledger table, or `None` when it does not exist. One round trip: the
    /// parameter's type is given, so nothing is prepared first (the test suite reads the ledger
    /// five times per migration).
    async fn columns(&self, client: &Client) -> Result<Option<Vec<String>>, DbError> {
        let row = client
            .query_typed_one(
                "SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_attribute a
                  WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped",
                &[(&self.table_sql(), Type::TEXT)],
            )
            .await
            .map_err(|e| DbError::query("reading the ledger's columns", e))?;
        let cols: Option<Vec<String>> = row.get(0);
        // drizzle-orm's own table where the ledger should be: never adopted (nor altered).
        if let Some(c) = &cols {
            let has = |n: &str| c.iter().any(|x| x == n);
            if !has("status") && !has("sql_content") && has("hash") && has("created_at") {
                return Err(DbError::LedgerIsDrizzles {
                    table: self.table_sql(),
                    schema: self.schema.clone(),
                    beside: crate::config::LEDGER_BESIDE_DRIZZLE,
                });
            }
        }
        Ok(cols)
    }

    /// Creates the ledger and audit tables if missing and adds pgkeel's columns to a ledger
    /// created by another tool. Cheap when everything exists (one catalog query).
    pub async fn ensure(&self, client: &Client) -> Result<(), DbError> {
        let ctx = |what: &str| format!("creating the ledger {} ({what})", self.table_sql());
        let columns = self.columns(client).await?;
        let row = client
            .query_typed_one(
                "SELECT to_regclass($1) IS NOT NULL, EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $2)",
                &[(&self.audit_sql_name(), Type::TEXT), (&self.schema, Type::TEXT)],
            )
            .await
            .map_err(|e| DbError::query(ctx("audit table"), e))?;
        let (audit_exists, schema_exists): (bool, bool) = (row.get(0), row.get(1));
        let mut ddl = String::new();
        match &columns {
            None => {
                if !schema_exists {
                    ddl.push_str(&format!(
                        "CREATE SCHEMA IF NOT EXISTS {};\n",
                        crate::ident::quote_ident(&self.schema)
                    ));
                }
                ddl.push_str(&format!(
                    "CREATE TABLE IF NOT EXISTS {t} (
                        id TEXT PRIMARY KEY,
                        hash TEXT NOT NULL,
                        sql_content TEXT NOT NULL,
                        created_at TIMESTAMP DEFAULT NOW(),
                        applied_at TIMESTAMP DEFAULT NOW(),
                        rollback_sql TEXT,
                        status VARCHAR(20) DEFAULT 'applied'",
                    t = self.table_sql()
                ));
                for (name, ty) in EXTRA_COLUMNS {
                    ddl.push_str(&format!(",\n {name} {ty}"));
                }
                ddl.push_str(");\n");
            }
            Some(cols) => {
                let missing: Vec<_> = EXTRA_COLUMNS
                    .iter()
                    .filter(|(n, _)| !cols.iter().any(|c| c == n))
                    .map(|(n, ty)| format!("ADD COLUMN IF NOT EXISTS {n} {ty}"))
                    .collect();
                if !missing.is_empty() {
                    ddl.push_str(&format!(
                        "ALTER TABLE {} {};\n",
                        self.table_sql(),
                        missing.join(", ")
                    ));
                }
            }
        }
        if !audit_exists {
            ddl.push_str(&format!(
                "CREATE TABLE IF NOT EXISTS {} (
                    id BIGSERIAL PRIMARY KEY,
                    at TIMESTAMPTZ NOT NULL DEFAULT now(),
                    operation TEXT NOT NULL,
                    migration_id TEXT,
                    outcome TEXT NOT NULL,
                    duration_ms BIGINT,
                    actor TEXT NOT NULL DEFAULT current_user,
                    detail JSONB
                 );\n",
                self.audit_sql_name()
            ));
        }
        if !ddl.is_empty() {
            client
                .batch_execute(&ddl)
                .await
                .map_err(|e| DbError::query(ctx("DDL"), e))?;
        }
        Ok(())
    }

    /// The recorded `execution_ms` of the rows with `ids` (after the ledger exists).
    pub async fn execution_times(
        &self,
        client: &Client,
        ids: &[String],
    ) -> Result<std::collections::HashMap<String, i64>, DbError> {
        let sql = format!(
            "SELECT id::text, execution_ms FROM {} WHERE id = ANY($1) AND execution_ms IS NOT NULL",
            self.table_sql()
        );
        let rows = client
            .query(&sql, &[&ids])
            .await
            .map_err(|e| DbError::query("reading the recorded durations", e))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Every ledger row in application order; empty when the ledger doesn't exist yet.
    pub async fn rows(&self, client: &Client) -> Result<Vec<LedgerRow>, DbError> {
        let Some(cols) = self.columns(client).await? else {
            return Ok(Vec::new());
        };
        self.read_rows(client, Some(&cols), None).await
    }

    /// [`Ledger::rows`] of a ledger that [`Ledger::ensure`] created or completed, read on a
    /// connection that has held the deploy lock since (nobody can have changed it): one query,
    /// without looking at its columns first.
    pub async fn rows_ensured(&self, client: &Client) -> Result<Vec<LedgerRow>, DbError> {
        self.read_rows(client, None, None).await
    }

    /// Runs `f` on the rows, read as `held` allows: looking the columns up first
    /// ([`Ledger::rows`]), not ([`Ledger::rows_ensured`]), or from a [`RowCache`] that reads
    /// only the rows written since it last read.
    pub async fn with_rows<R>(
        &self,
        client: &Client,
        held: Held<'_>,
        f: impl FnOnce(&[LedgerRow]) -> R,
    ) -> Result<R, DbError> {
        match held {
            Held::No => Ok(f(&self.rows(client).await?)),
            Held::Locked => Ok(f(&self.rows_ensured(client).await?)),
            Held::Cached(cache) => cache.with_rows(self, client, f).await,
        }
    }

    /// The rows, selecting pgkeel's own columns only where `cols` (`None`: all) has them, and
    /// only those with the ids in `only` (`None`: all).
    async fn read_rows(
        &self,
        client: &Client,
        cols: Option<&[String]>,
        only: Option<&[String]>,
    ) -> Result<Vec<LedgerRow>, DbError> {
        let has = |c: &str| cols.is_none_or(|cols| cols.iter().any(|x| x == c));
        let opt = |c: &str, ty: &str| {
            if has(c) {
                c.to_string()
            } else {
                format!("NULL::{ty}")
            }
        };
        let sql =
            format!(
            "SELECT id, hash, {nh}, status::text, applied_at, {ms}, {sd}, {err}, rollback_sql, {by}, {sh}
               FROM {t} {filter} ORDER BY applied_at NULLS LAST, id",
            nh = opt("normalized_hash", "text"),
            ms = opt("execution_ms", "bigint"),
            sd = opt("statements_done", "integer"),
            err = opt("error", "text"),
            by = opt("applied_by", "text"),
            sh = opt("statement_hashes", "text[]"),
            t = self.table_sql(),
            filter = if only.is_some() { "WHERE id = ANY($1)" } else { "" },
        );
        let rows = match only {
            Some(ids) => client.query_typed(&sql, &[(&ids, Type::TEXT_ARRAY)]).await,
            None => client.query_typed(&sql, &[]).await,
        }
        .map_err(|e| DbError::query(format!("reading the ledger {}", self.table_sql()), e))?;
        Ok(rows
            .iter()
            .map(|r| LedgerRow {
                id: r.get(0),
                hash: r.get(1),
                normalized_hash: r.get(2),
                status: RowStatus::parse(r.get::<_, Option<&str>>(3)),
                applied_at: r.get(4),
                execution_ms: r.get(5),
                statements_done: r.get(6),
                error: r.get(7),
                rollback_sql: r.get(8),
                applied_by: r.get(9),
                statement_hashes: r.get(10),
            })
            .collect())
    }

    /// The upsert that records `m` with `status`. Meant to run inside the migration's own
    /// transaction: `execution_ms` is computed by the server from `statement_timestamp()`, which
    /// is when the batch that applied the migration arrived, plus [`RAN_BEFORE_MS`] (which the
    /// sender fills in when the record goes alone after a non-transactional statement). A
    /// migration applied in several units, or resumed by a later run, adds each unit's time to
    /// what its in-progress row already holds: the row ends with the time all its statements
    /// took, not only the last unit's (the pauses between runs are not counted).
    pub fn record_sql(
        &self,
        m: &Migration,
        status: &str,
        rollback_sql: Option<&str>,
        progress: Option<Progress<'_>>,
        error: Option<&str>,
    ) -> String {
        let created = match m.when {
            Some(ms) => format!("(to_timestamp({ms}::double precision / 1000) AT TIME ZONE 'UTC')"),
            None => "NOW()".into(),
        };
        let lit_opt = |v: Option<&str>| v.map(quote_literal).unwrap_or_else(|| "NULL".into());
        let done = progress
            .map(|p| p.done.to_string())
            .unwrap_or_else(|| "NULL".into());
        let hashes = match progress.and_then(|p| p.hashes) {
            Some(h) => text_array(h),
            None => "NULL::text[]".into(),
        };
        format!(
            "INSERT INTO {t} AS l (id, hash, sql_content, created_at, applied_at, rollback_sql, status,
                                execution_ms, normalized_hash, applied_by, pgkeel_version, statements_done, error, statement_hashes)
             VALUES ({id}, {hash}, {sql}, {created}, NOW(), {rb}, {status},
                     (extract(epoch FROM clock_timestamp() - statement_timestamp()) * 1000)::bigint + {RAN_BEFORE_MS}0,
                     {nh}, {by}, {ver}, {done}, {err}, {hashes})
             ON CONFLICT (id) DO UPDATE SET hash = EXCLUDED.hash, sql_content = EXCLUDED.sql_content,
                applied_at = EXCLUDED.applied_at, rollback_sql = coalesce(EXCLUDED.rollback_sql, l.rollback_sql),
                status = EXCLUDED.status,
                execution_ms = CASE WHEN l.status = 'failed' AND coalesce(l.statements_done, 0) > 0
                                         AND coalesce(EXCLUDED.statements_done, 0) >= l.statements_done
                                    THEN coalesce(l.execution_ms, 0) + EXCLUDED.execution_ms
                                    ELSE EXCLUDED.execution_ms END,
                normalized_hash = EXCLUDED.normalized_hash, applied_by = EXCLUDED.applied_by,
                pgkeel_version = EXCLUDED.pgkeel_version, statements_done = EXCLUDED.statements_done,
                error = EXCLUDED.error, statement_hashes = EXCLUDED.statement_hashes",
            t = self.table_sql(),
            id = quote_literal(&m.id),
            hash = quote_literal(&m.hash),
            sql = quote_literal(&m.sql),
            rb = lit_opt(rollback_sql),
            status = quote_literal(status),
            nh = quote_literal(&m.normalized_hash()),
            by = actor_sql(),
            ver = quote_literal(env!("CARGO_PKG_VERSION")),
            err = lit_opt(error),
        )
    }

    /// `text` (a batch a dry run shows) with each of [`Ledger::record_sql`]'s upserts, which
    /// carry the whole file and its rollback, as a one-line comment naming what they write.
    pub fn abbreviate_records(&self, text: &str) -> String {
        let start = format!(
            "INSERT INTO {} AS l (id, hash, sql_content",
            self.table_sql()
        );
        const END: &str = "error = EXCLUDED.error, statement_hashes = EXCLUDED.statement_hashes;\n";
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(i) = rest.find(&start) {
            let Some(len) = rest[i..].find(END) else {
                break;
            };
            out.push_str(&rest[..i]);
            out.push_str(&format!(
                "-- pgkeel records it in its ledger {} (the file's SQL, hash, rollback and timing; `-v` shows the statement)\n",
                self.table_sql()
            ));
            rest = &rest[i + len + END.len()..];
        }
        out.push_str(rest);
        out
    }

    /// Marks migration `id` rolled back, to run inside the rollback's own transaction. The row
    /// keeps its hash, content and stored `rollback_sql`; `migrate` treats it as pending again.
    pub fn rolled_back_sql(&self, id: &str) -> String {
        format!(
            "UPDATE {t} SET status = 'rolled_back', error = NULL WHERE id = {id}",
            t = self.table_sql(),
            id = quote_literal(id),
        )
    }

    /// An audit insert, to run in the same transaction as the change it records (or alone).
    pub fn audit_sql(
        &self,
        operation: &str,
        migration_id: Option<&str>,
        outcome: &str,
        detail: Option<&serde_json::Value>,
    ) -> String {
        format!(
            "INSERT INTO {t} (operation, migration_id, outcome, duration_ms, actor, detail)
             VALUES ({op}, {id}, {outcome}, (extract(epoch FROM clock_timestamp() - statement_timestamp()) * 1000)::bigint, {by}, {detail})",
            t = self.audit_sql_name(),
            op = quote_literal(operation),
            id = migration_id.map(quote_literal).unwrap_or_else(|| "NULL".into()),
            outcome = quote_literal(outcome),
            by = actor_sql(),
            detail = detail
                .map(|d| format!("{}::jsonb", quote_literal(&d.to_string())))
                .unwrap_or_else(|| "NULL".into()),
        )
    }

    /// Records a failure outside the (rolled back) migration transaction.
    pub async fn record_failure(
        &self,
        client: &Client,
        m: &Migration,
        progress: Progress<'_>,
        error: &str,
    ) -> Result<(), DbError> {
        let statements_done = progress.done;
        let sql = format!(
            "{};\n{}",
            self.record_sql(m, "failed", None, Some(progress), Some(error)),
            self.audit_sql(
                "migrate",
                Some(&m.id),
                "failed",
                Some(&serde_json::json!({ "error": error, "statements_done": statements_done }))
            )
        );
        client.batch_execute(&sql).await.map_err(|e| {
            DbError::query(
                format!("recording the failure of {} in the ledger", m.id),
                e,
            )
        })
    }

    /// Replaces the recorded hash of an applied migration (`pgkeel repair`), or of a migration
    /// that committed part of its statements before it failed (then `statement_hashes` are the
    /// edited file's, so the next run resumes after the committed statements).
    pub async fn update_hash(
        &self,
        client: &Client,
        m: &Migration,
        forced: bool,
        statement_hashes: Option<&[String]>,
    ) -> Result<(), DbError> {
        let hashes = statement_hashes
            .map(|h| format!(", statement_hashes = {}", text_array(h)))
            .unwrap_or_default();
        let sql = format!(
            "BEGIN;
             UPDATE {t} SET hash = {hash}, normalized_hash = {nh}, sql_content = {sql}{hashes} WHERE id = {id};
             {audit};
             COMMIT;",
            t = self.table_sql(),
            hash = quote_literal(&m.hash),
            nh = quote_literal(&m.normalized_hash()),
            sql = quote_literal(&m.sql),
            id = quote_literal(&m.id),
            audit = self.audit_sql("repair", Some(&m.id), if forced { "forced" } else { "cosmetic" }, None),
        );
        client
            .batch_execute(&sql)
            .await
            .map_err(|e| DbError::query(format!("repairing the hash of {}", m.id), e))
    }
}

/// `ARRAY['a','b']::text[]`.
fn text_array(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|x| quote_literal(x)).collect();
    format!("ARRAY[{}]::text[]", items.join(","))
}

/// `role@host` of whoever runs pgkeel, evaluated partly by the server.
fn actor_sql() -> String {
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    format!("current_user || '@' || {}", quote_literal(&host))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger() -> Ledger {
        Ledger {
            schema: "public".into(),
            table: "__drizzle_migrations".into(),
            audit_table: "__pgkeel_audit".into(),
        }
    }

    fn migration(sql: &str) -> Migration {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("0001_x.sql"), sql).unwrap();
        crate::source::load(tmp.path())
            .unwrap()
            .migrations
            .remove(0)
    }

    #[test]
    fn a_dry_run_shows_the_ledger_upsert_as_one_line_not_the_whole_file_again() {
        let l = ledger();
        let m = migration("CREATE TABLE t (a int);\nINSERT INTO t VALUES (1);\n");
        let batch = format!(
            "BEGIN;\nCREATE TABLE t (a int);\n{};\nCOMMIT;\n",
            l.record_sql(&m, "applied", Some("DROP TABLE t;"), None, None)
        );
        let shown = l.abbreviate_records(&batch);
        assert_eq!(
            shown,
            "BEGIN;\nCREATE TABLE t (a int);\n-- pgkeel records it in its ledger \
             \"public\".\"__drizzle_migrations\" (the file's SQL, hash, rollback and timing; `-v` \
             shows the statement)\nCOMMIT;\n"
        );
    }

    #[test]
    fn the_time_of_a_statement_sent_alone_is_added_to_its_record() {
        let l = ledger();
        let m = migration("CREATE INDEX CONCURRENTLY i ON t (a);\n");
        let sql = l.record_sql(&m, "applied", None, None, None);
        let timed = with_time_before(&sql, 1234);
        assert!(timed.contains(&format!("{RAN_BEFORE_MS}1234")), "{timed}");
        assert!(!timed.contains(&format!("{RAN_BEFORE_MS}0,")), "{timed}");
    }
}
