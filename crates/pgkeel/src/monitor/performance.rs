//! How the database performs: size, largest tables and indexes, cache hit ratio, commits vs
//! rollbacks, deadlocks, temp files, autovacuum lag, long-running queries, idle-in-transaction
//! sessions, lock waits (from [`Activity`]) and the top statements of pg_stat_statements when it
//! is installed and readable. A fixed number of queries (each with a `LIMIT`), so the cost does
//! not grow with the number of tables. It must not judge: `alerts` does.

use serde::Serialize;

use super::activity::{Activity, LockWait, Session};
use super::probe::Probe;
use crate::db::DbError;
use crate::ident::quote_ident;

/// A table or index by size.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Relation {
    pub schema: String,
    pub name: String,
    /// For an index: its table.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// Tables: with indexes and TOAST (`pg_total_relation_size`); indexes: their own size.
    pub bytes: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows_estimate: Option<i64>,
    /// One of pgkeel's or drizzle-orm's own tables (ledger, audit, monitor history).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub bookkeeping: bool,
}

/// A table with more dead tuples than autovacuum's trigger point.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct VacuumLag {
    pub schema: String,
    pub table: String,
    pub dead_tuples: i64,
    pub live_tuples: i64,
    /// `autovacuum_vacuum_threshold + autovacuum_vacuum_scale_factor × reltuples` (server
    /// settings; per-table storage options are not read).
    pub trigger_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_vacuum: Option<chrono::DateTime<chrono::Utc>>,
}

/// A statement from pg_stat_statements.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Statement {
    pub query: String,
    pub calls: i64,
    pub total_ms: f64,
    pub mean_ms: f64,
    pub rows: i64,
}

/// The pg_stat_statements part: available, or why not.
#[derive(Debug, Clone, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Statements {
    pub available: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub top: Vec<Statement>,
}

/// Counters of this database since its statistics were last reset.
#[derive(Debug, Clone, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Counters {
    pub commits: i64,
    pub rollbacks: i64,
    /// Rollbacks as a percentage of all transactions.
    pub error_rate_percent: f64,
    pub deadlocks: i64,
    pub temp_files: i64,
    pub temp_bytes: i64,
    /// Buffer cache hits as a percentage of block reads; `None` before any read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_hit_percent: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats_reset: Option<chrono::DateTime<chrono::Utc>>,
}

/// The performance section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Performance {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub database_size_bytes: i64,
    pub counters: Counters,
    /// True when a table was locked exclusively and sizes come from the catalog's page counts
    /// (the monitor never waits for a lock).
    pub sizes_estimated: bool,
    pub largest_tables: Vec<Relation>,
    pub largest_indexes: Vec<Relation>,
    pub autovacuum_lag: Vec<VacuumLag>,
    /// Active queries in this database, longest first (at most [`LISTED`]), each with its age.
    /// What is there, not what is too long: `alerts` judges them against the thresholds.
    pub long_running: Vec<Session>,
    /// Every session idle in a transaction, longest first (at most [`LISTED`]).
    pub idle_in_transaction: Vec<Session>,
    /// Every statement waiting for a lock, with its blockers and how long it has waited.
    pub lock_waits: Vec<LockWait>,
    pub statements: Statements,
}

const DATABASE_SQL: &str = "
SELECT pg_database_size(d.oid), s.xact_commit, s.xact_rollback, s.deadlocks, s.temp_files,
       s.temp_bytes, s.blks_hit, s.blks_read, s.stats_reset,
       (SELECT n.nspname::text FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
         WHERE e.extname = 'pg_stat_statements')
  FROM pg_database d JOIN pg_stat_database s ON s.datid = d.oid
 WHERE d.datname = current_database()";

const RELATIONS_SQL: &str = "
(SELECT 'table', n.nspname::text, c.relname::text, NULL::text, pg_total_relation_size(c.oid),
        c.reltuples::bigint
   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p', 'm')
    AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
  ORDER BY 5 DESC, 2, 3 LIMIT 10)
UNION ALL
(SELECT 'index', n.nspname::text, c.relname::text, t.relname::text, pg_relation_size(c.oid),
        NULL::bigint
   FROM pg_index i
   JOIN pg_class c ON c.oid = i.indexrelid
   JOIN pg_class t ON t.oid = i.indrelid
   JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
  ORDER BY 5 DESC, 2, 3 LIMIT 10)";

/// The same lists from the catalog's page counts (as of the last VACUUM / ANALYZE / CREATE
/// INDEX): takes no lock, used when a table is locked exclusively.
const RELATIONS_ESTIMATE_SQL: &str = "
(SELECT 'table', n.nspname::text, c.relname::text, NULL::text,
        (c.relpages + coalesce(t.relpages, 0)
         + coalesce((SELECT sum(ic.relpages) FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
                      WHERE i.indrelid = c.oid), 0))::bigint
          * current_setting('block_size')::bigint,
        c.reltuples::bigint
   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   LEFT JOIN pg_class t ON t.oid = c.reltoastrelid
  WHERE c.relkind IN ('r', 'p', 'm')
    AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
  ORDER BY 5 DESC, 2, 3 LIMIT 10)
UNION ALL
(SELECT 'index', n.nspname::text, c.relname::text, t.relname::text,
        c.relpages::bigint * current_setting('block_size')::bigint, NULL::bigint
   FROM pg_index i
   JOIN pg_class c ON c.oid = i.indexrelid
   JOIN pg_class t ON t.oid = i.indrelid
   JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
  ORDER BY 5 DESC, 2, 3 LIMIT 10)";

const VACUUM_SQL: &str = "
SELECT * FROM (
  SELECT s.schemaname::text, s.relname::text, s.n_dead_tup, s.n_live_tup,
         (current_setting('autovacuum_vacuum_threshold')::float8
          + current_setting('autovacuum_vacuum_scale_factor')::float8
            * greatest(c.reltuples, 0))::bigint AS trigger_at,
         greatest(s.last_autovacuum, s.last_vacuum)
    FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid) v
 WHERE n_dead_tup > trigger_at
 ORDER BY n_dead_tup DESC LIMIT 10";

/// How many active queries and idle-in-transaction sessions the section lists at most.
pub const LISTED: usize = 50;

/// Reads the performance section.
pub async fn collect(probe: &Probe<'_>, activity: &Activity) -> Result<Performance, DbError> {
    let rows = probe
        .query("reading database statistics", DATABASE_SQL, &[])
        .await?;
    let mut p = Performance::default();
    let mut pgss_schema: Option<String> = None;
    if let Some(r) = rows.first() {
        p.database_size_bytes = r.get(0);
        let commits: i64 = r.get::<_, Option<i64>>(1).unwrap_or(0);
        let rollbacks: i64 = r.get::<_, Option<i64>>(2).unwrap_or(0);
        let hit: i64 = r.get::<_, Option<i64>>(6).unwrap_or(0);
        let read: i64 = r.get::<_, Option<i64>>(7).unwrap_or(0);
        p.counters = Counters {
            commits,
            rollbacks,
            error_rate_percent: percent(rollbacks, commits + rollbacks).unwrap_or(0.0),
            deadlocks: r.get::<_, Option<i64>>(3).unwrap_or(0),
            temp_files: r.get::<_, Option<i64>>(4).unwrap_or(0),
            temp_bytes: r.get::<_, Option<i64>>(5).unwrap_or(0),
            cache_hit_percent: percent(hit, hit + read),
            stats_reset: r.get(8),
        };
        pgss_schema = r.get(9);
    }
    // Exact sizes need a share lock on each table; the monitoring session's lock_timeout turns
    // a wait into an error, and then the catalog's estimate is used instead.
    let rels = match probe
        .query("listing the largest tables and indexes", RELATIONS_SQL, &[])
        .await
    {
        Err(e) if e.pg().is_some_and(|p| p.code == "55P03") => {
            p.sizes_estimated = true;
            probe
                .query(
                    "estimating the largest tables and indexes",
                    RELATIONS_ESTIMATE_SQL,
                    &[],
                )
                .await?
        }
        other => other?,
    };
    for r in rels {
        let kind: &str = r.get(0);
        let rel = Relation {
            schema: r.get(1),
            name: r.get(2),
            table: r.get(3),
            bytes: r.get(4),
            rows_estimate: r.get(5),
            bookkeeping: false,
        };
        if kind == "table" {
            p.largest_tables.push(rel);
        } else {
            p.largest_indexes.push(rel);
        }
    }
    p.autovacuum_lag = probe
        .query("reading autovacuum lag", VACUUM_SQL, &[])
        .await?
        .iter()
        .map(|r| VacuumLag {
            schema: r.get(0),
            table: r.get(1),
            dead_tuples: r.get(2),
            live_tuples: r.get(3),
            trigger_at: r.get(4),
            last_vacuum: r.get(5),
        })
        .collect();
    // Everything there is, with its age: a session waiting 2 s for a lock is a lock wait even
    // while the alert threshold is 5 s. The thresholds are applied in `alerts` only.
    p.long_running = activity.long_running(0.0);
    p.long_running.truncate(LISTED);
    p.idle_in_transaction = activity.idle_in_transaction(0.0);
    p.idle_in_transaction.truncate(LISTED);
    p.lock_waits = activity.lock_waits();
    p.statements = statements(probe, pgss_schema.as_deref()).await;
    Ok(p)
}

async fn statements(probe: &Probe<'_>, schema: Option<&str>) -> Statements {
    let Some(schema) = schema else {
        return Statements {
            available: false,
            reason: Some(
                "pg_stat_statements is not installed in this database: add it to shared_preload_libraries and run CREATE EXTENSION pg_stat_statements".into(),
            ),
            top: Vec::new(),
        };
    };
    let sql = format!(
        "SELECT left(query, 300), calls, total_exec_time, mean_exec_time, rows
           FROM {}.pg_stat_statements
          WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
          ORDER BY total_exec_time DESC LIMIT 10",
        quote_ident(schema)
    );
    match probe.query("reading pg_stat_statements", &sql, &[]).await {
        Ok(rows) => Statements {
            available: true,
            reason: None,
            top: rows
                .iter()
                .map(|r| Statement {
                    query: r.get::<_, Option<String>>(0).unwrap_or_else(|| "<insufficient privilege>".into()),
                    calls: r.get(1),
                    total_ms: round3(r.get(2)),
                    mean_ms: round3(r.get(3)),
                    rows: r.get(4),
                })
                .collect(),
        },
        Err(e) => Statements {
            available: false,
            reason: Some(match e.pg().map(|p| p.code.as_str()) {
                Some("42501") => format!("no privilege to read pg_stat_statements ({e}); GRANT pg_read_all_stats TO this role"),
                Some("55000") => format!("pg_stat_statements is installed but not loaded ({e}); add it to shared_preload_libraries and restart"),
                _ => e.to_string(),
            }),
            top: Vec::new(),
        },
    }
}

fn percent(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| (part as f64 * 10000.0 / whole as f64).round() / 100.0)
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
