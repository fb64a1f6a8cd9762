//! Performance findings from the catalog and the statistics views: one query per check,
//! whatever the number of tables, and no table scans.
//!
//! Thresholds follow the field's tools (PgHero, check_postgres, pg-index-health): a foreign key
//! is covered when a valid, non-partial index's leading key columns are exactly the key's columns
//! in any order; sequences count against the column's type (a bigint sequence feeding an int
//! column overflows at 2^31-1); an index is only called unused when statistics have been
//! collected for at least a week.

use tokio_postgres::Client;

use super::{schema_filter, timed, CheckRun, Outcome, ValidateOptions};
use crate::db::DbError;
use crate::report::{Finding, Severity};

/// Sequence use at which overflow is a warning / critical.
const SEQ_WARN: f64 = 0.75;
const SEQ_CRIT: f64 = 0.90;
/// Transaction ID age (of 2^31) at which wraparound is a warning / critical.
const XID_WARN: i64 = 1_000_000_000;
const XID_CRIT: i64 = 1_500_000_000;
/// Days of statistics needed before an index is called unused.
const UNUSED_AFTER_DAYS: f64 = 7.0;

pub(crate) async fn run(
    client: &Client,
    opts: &ValidateOptions,
) -> Result<Vec<(CheckRun, Vec<Finding>)>, DbError> {
    let f = |c: &str| schema_filter(c, &opts.schemas);
    Ok(vec![
        timed(
            "performance",
            "fk-without-index".into(),
            fk_without_index(client, &f("n.nspname")),
        )
        .await,
        timed(
            "performance",
            "invalid-index".into(),
            invalid_indexes(client, &f("n.nspname")),
        )
        .await,
        timed(
            "performance",
            "redundant-index".into(),
            redundant_indexes(client, &f("n.nspname")),
        )
        .await,
        timed(
            "performance",
            "unused-index".into(),
            unused_indexes(client, &f("s.schemaname")),
        )
        .await,
        timed(
            "performance",
            "seq-scans".into(),
            seq_scans(client, &f("s.schemaname")),
        )
        .await,
        timed(
            "performance",
            "bloat".into(),
            bloat(client, &f("s.schemaname")),
        )
        .await,
        timed(
            "performance",
            "sizes".into(),
            sizes(client, &f("n.nspname")),
        )
        .await,
        timed(
            "performance",
            "sequence-overflow".into(),
            sequence_overflow(client, &f("tn.nspname")),
        )
        .await,
        timed(
            "performance",
            "xid-wraparound".into(),
            wraparound(client, &f("n.nspname")),
        )
        .await,
        timed(
            "performance",
            "stale-statistics".into(),
            stale_stats(client, &f("s.schemaname")),
        )
        .await,
        timed(
            "performance",
            "slow-statements".into(),
            slow_statements(client),
        )
        .await,
    ])
}

async fn query(
    client: &Client,
    what: &str,
    sql: &str,
) -> Result<Vec<tokio_postgres::Row>, DbError> {
    client
        .query(sql, &[])
        .await
        .map_err(|e| DbError::query(format!("checking {what}"), e))
}

async fn fk_without_index(client: &Client, filter: &str) -> Result<Outcome, DbError> {
    let sql = format!(
        "SELECT quote_ident(n.nspname) || '.' || quote_ident(t.relname),
                quote_ident(c.conname),
                quote_ident(pn.nspname) || '.' || quote_ident(p.relname),
                ARRAY(SELECT quote_ident(a.attname) FROM unnest(c.conkey) WITH ORDINALITY k(n, i)
                        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i),
                'idx_' || t.relname::text || '_' || array_to_string(ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(n, i)
                        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i), '_'),
                greatest(t.reltuples, 0)::bigint, pg_relation_size(t.oid)
           FROM pg_constraint c
           JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace
           JOIN pg_class p ON p.oid = c.confrelid JOIN pg_namespace pn ON pn.oid = p.relnamespace
          WHERE c.contype = 'f' AND c.conparentid = 0 AND {filter}
            AND NOT EXISTS (
                SELECT 1 FROM pg_index x
                 WHERE x.indrelid = c.conrelid AND x.indisvalid AND x.indpred IS NULL
                   AND x.indnkeyatts >= cardinality(c.conkey)
                   AND (SELECT array_agg(k ORDER BY k) FROM unnest((x.indkey::int2[])[0:cardinality(c.conkey) - 1]) k)
                     = (SELECT array_agg(k ORDER BY k) FROM unnest(c.conkey) k))
          ORDER BY 1, 2"
    );
    let rows = query(client, "foreign keys without an index", &sql).await?;
    Ok(Outcome::findings(
        rows.iter()
            .map(|r| {
                let table: String = r.get(0);
                let cols: Vec<String> = r.get(3);
                let index: String = r.get(4);
                // The spec's naming (idx_<table>_<columns>), quoted only when it must be.
                let index: String = index.chars().take(63).collect();
                let index = if index.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
                    index
                } else {
                    crate::ident::quote_ident(&index)
                };
                Finding::new(
                    "fk-without-index",
                    Severity::Warning,
                    format!("{table} ({})", cols.join(", ")),
                    format!(
                        "foreign key {} to {} has no index on ({}): deletes and key updates in {} scan all of {table}, and joins are slow",
                        r.get::<_, String>(1),
                        r.get::<_, String>(2),
                        cols.join(", "),
                        r.get::<_, String>(2)
                    ),
                )
                .with_evidence(serde_json::json!({
                    "rows_estimate": r.get::<_, i64>(5),
                    "table_bytes": r.get::<_, i64>(6),
                }))
                .with_fix(format!(
                    "CREATE INDEX CONCURRENTLY IF NOT EXISTS {index} ON {table} ({});",
                    cols.join(", ")
                ))
            })
            .collect(),
    ))
}

async fn invalid_indexes(client: &Client, filter: &str) -> Result<Outcome, DbError> {
    let sql = format!(
        "SELECT quote_ident(n.nspname) || '.' || quote_ident(i.relname),
                quote_ident(n.nspname) || '.' || quote_ident(t.relname), pg_relation_size(i.oid)
           FROM pg_index x
           JOIN pg_class i ON i.oid = x.indexrelid
           JOIN pg_class t ON t.oid = x.indrelid JOIN pg_namespace n ON n.oid = i.relnamespace
          WHERE NOT x.indisvalid AND {filter}
            AND NOT EXISTS (SELECT 1 FROM pg_stat_progress_create_index p WHERE p.index_relid = x.indexrelid)
          ORDER BY 1"
    );
    let rows = query(client, "invalid indexes", &sql).await?;
    Ok(Outcome::findings(
        rows.iter()
            .map(|r| {
                let index: String = r.get(0);
                Finding::new(
                    "invalid-index",
                    Severity::Warning,
                    index.clone(),
                    format!(
                        "index {index} on {} is invalid (a failed CREATE INDEX CONCURRENTLY): it is maintained on every write but never used",
                        r.get::<_, String>(1)
                    ),
                )
                .with_evidence(serde_json::json!({ "index_bytes": r.get::<_, i64>(2) }))
                .with_fix(format!("REINDEX INDEX CONCURRENTLY {index};  -- or DROP INDEX CONCURRENTLY {index};"))
            })
            .collect(),
    ))
}

/// Duplicate indexes (same table, key, opclasses, expressions and predicate) and btree
/// indexes whose key is a prefix of another's (same predicate, not unique: a unique index
/// enforces something).
async fn redundant_indexes(client: &Client, filter: &str) -> Result<Outcome, DbError> {
    let sql = format!(
        "WITH ix AS (
            SELECT x.indexrelid, x.indrelid, x.indisunique, x.indisprimary, x.indkey::int2[] AS keys,
                   x.indclass::oid[] AS classes, x.indnkeyatts, coalesce(pg_get_expr(x.indexprs, x.indrelid), '') AS exprs,
                   coalesce(pg_get_expr(x.indpred, x.indrelid), '') AS pred, am.amname,
                   quote_ident(n.nspname) || '.' || quote_ident(i.relname) AS name,
                   quote_ident(n.nspname) || '.' || quote_ident(t.relname) AS tname,
                   pg_get_indexdef(x.indexrelid) AS def, pg_relation_size(x.indexrelid) AS bytes,
                   EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid) AS backs_constraint
              FROM pg_index x
              JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_am am ON am.oid = i.relam
              JOIN pg_class t ON t.oid = x.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace
             WHERE x.indisvalid AND {filter})
         SELECT a.name, b.name, a.tname, a.def, b.def, a.bytes,
                a.keys[0:a.indnkeyatts - 1] = b.keys[0:b.indnkeyatts - 1]
                  AND a.classes = b.classes AND a.exprs = b.exprs AND a.indisunique = b.indisunique AS same
           FROM ix a JOIN ix b ON a.indrelid = b.indrelid AND a.indexrelid <> b.indexrelid
          WHERE a.amname = b.amname AND a.pred = b.pred AND NOT a.backs_constraint AND NOT a.indisprimary
            AND (
              -- exact duplicates: report the one with the larger oid (the later one)
              (a.keys[0:a.indnkeyatts - 1] = b.keys[0:b.indnkeyatts - 1] AND a.classes = b.classes
                AND a.exprs = b.exprs AND a.indisunique = b.indisunique AND a.indexrelid > b.indexrelid)
              OR
              -- a btree prefix of a longer btree key
              (a.amname = 'btree' AND NOT a.indisunique AND a.exprs = '' AND b.exprs = ''
                AND a.indnkeyatts < b.indnkeyatts
                AND a.keys[0:a.indnkeyatts - 1] = b.keys[0:a.indnkeyatts - 1]
                AND a.classes[0:a.indnkeyatts - 1] = b.classes[0:a.indnkeyatts - 1]))
          ORDER BY 1, 7 DESC, 2"
    );
    let rows = query(client, "redundant indexes", &sql).await?;
    let mut seen = std::collections::HashSet::new();
    Ok(Outcome::findings(
        rows.iter()
            .filter(|r| seen.insert(r.get::<_, String>(0)))
            .map(|r| {
                let (a, b): (String, String) = (r.get(0), r.get(1));
                let same: bool = r.get(6);
                let (id, severity, what) = if same {
                    ("duplicate-index", Severity::Warning, "duplicates")
                } else {
                    ("redundant-index", Severity::Info, "is a prefix of")
                };
                Finding::new(
                    id,
                    severity,
                    a.clone(),
                    format!(
                        "index {a} {what} {b} on {}: it costs writes and space for nothing",
                        r.get::<_, String>(2)
                    ),
                )
                .with_evidence(serde_json::json!({
                    "index": r.get::<_, String>(3),
                    "kept": r.get::<_, String>(4),
                    "index_bytes": r.get::<_, i64>(5),
                }))
                .with_fix(format!("DROP INDEX CONCURRENTLY {a};"))
            })
            .collect(),
    ))
}

async fn unused_indexes(client: &Client, filter: &str) -> Result<Outcome, DbError> {
    // Statistics start at the last reset, or (never reset) at the server's start at best.
    let sql = format!(
        "WITH since AS (
            SELECT extract(epoch FROM now() - coalesce(
                     (SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()),
                     pg_postmaster_start_time())) / 86400 AS days)
         SELECT quote_ident(s.schemaname) || '.' || quote_ident(s.indexrelname),
                quote_ident(s.schemaname) || '.' || quote_ident(s.relname),
                pg_relation_size(s.indexrelid), (SELECT days FROM since)
           FROM pg_stat_user_indexes s JOIN pg_index x ON x.indexrelid = s.indexrelid
          WHERE s.idx_scan = 0 AND NOT x.indisunique AND NOT x.indisprimary AND x.indisvalid
            AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = s.indexrelid)
            AND (SELECT days FROM since) >= {UNUSED_AFTER_DAYS} AND {filter}
          ORDER BY 3 DESC, 1"
    );
    let rows = query(client, "unused indexes", &sql).await?;
    Ok(Outcome::findings(
        rows.iter()
            .map(|r| {
                let index: String = r.get(0);
                let days: f64 = r.get::<_, Option<f64>>(3).unwrap_or(0.0);
                Finding::new(
                    "unused-index",
                    Severity::Info,
                    index.clone(),
                    format!(
                        "index {index} on {} was never used in {days:.0} days of statistics",
                        r.get::<_, String>(1)
                    ),
                )
                .with_evidence(serde_json::json!({ "index_bytes": r.get::<_, i64>(2), "stats_days": days.round() }))
                .with_fix(format!("DROP INDEX CONCURRENTLY {index};  -- after checking replicas use it neither"))
            })
            .collect(),
    ))
}

async fn seq_scans(client: &Client, filter: &str) -> Result<Outcome, DbError> {
    let sql = format!(
        "SELECT quote_ident(s.schemaname) || '.' || quote_ident(s.relname), s.seq_scan, s.seq_tup_read,
                coalesce(s.idx_scan, 0), s.n_live_tup
           FROM pg_stat_user_tables s
          WHERE s.seq_scan >= 100 AND s.n_live_tup >= 10000
            AND s.seq_tup_read / s.seq_scan >= 10000
            AND coalesce(s.idx_scan, 0) * 10 < s.seq_scan AND {filter}
          ORDER BY s.seq_tup_read DESC LIMIT 20"
    );
    let rows = query(client, "sequential scans", &sql).await?;
    Ok(Outcome::findings(
        rows.iter()
            .map(|r| {
                let t: String = r.get(0);
                let (scans, read): (i64, i64) = (r.get(1), r.get(2));
                Finding::new(
                    "seq-scan-heavy",
                    Severity::Info,
                    t.clone(),
                    format!(
                        "{t} was scanned sequentially {scans} times ({} rows per scan on average) and by index {} times: a query on it probably lacks an index",
                        read / scans.max(1),
                        r.get::<_, i64>(3)
                    ),
                )
                .with_evidence(serde_json::json!({
                    "seq_scan": scans, "seq_tup_read": read, "idx_scan": r.get::<_, i64>(3), "live_rows": r.get::<_, i64>(4),
                }))
            })
            .collect(),
    ))
}

/// Dead-tuple bloat from the statistics: no table is read. Exact numbers need pgstattuple.
async fn bloat(client: &Client, filter: &str) -> Result<Outcome, DbError> {
    let sql = format!(
        "SELECT quote_ident(s.schemaname) || '.' || quote_ident(s.relname), s.n_live_tup, s.n_dead_tup,
                pg_table_size(s.relid), coalesce(s.last_autovacuum, s.last_vacuum)::text
           FROM pg_stat_user_tables s
          WHERE s.n_dead_tup > 10000 AND s.n_dead_tup > 0.2 * (s.n_live_tup + s.n_dead_tup)
            AND pg_table_size(s.relid) > 10 * 1024 * 1024 AND {filter}
          ORDER BY s.n_dead_tup DESC LIMIT 20"
    );
    let rows = query(client, "dead tuples", &sql).await?;
    Ok(Outcome::findings(
        rows.iter()
            .map(|r| {
                let t: String = r.get(0);
                let (live, dead): (i64, i64) = (r.get(1), r.get(2));
                let pct = 100.0 * dead as f64 / (live + dead).max(1) as f64;
                Finding::new(
                    "table-bloat",
                    Severity::Warning,
                    t.clone(),
                    format!("{t} is {pct:.0}% dead rows ({dead} dead, {live} live): autovacuum is not keeping up"),
                )
                .with_evidence(serde_json::json!({
                    "live_rows": live, "dead_rows": dead, "table_bytes": r.get::<_, i64>(3),
                    "last_vacuum": r.get::<_, Option<String>>(4),
                }))
                .with_fix(format!("VACUUM (ANALYZE) {t};  -- and review autovacuum_vacuum_scale_factor for it"))
            })
            .collect(),
    ))
}

/// The largest tables and indexes: numbers for the report, not findings.
async fn sizes(client: &Client, filter: &str) -> Result<Outcome, DbError> {
    let sql = format!(
        "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), c.relkind::text,
                pg_total_relation_size(c.oid), pg_relation_size(c.oid), greatest(c.reltuples, 0)::bigint
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'm', 'i') AND {filter}
          ORDER BY 3 DESC, 1 LIMIT 20"
    );
    let rows = query(client, "table sizes", &sql).await?;
    let list: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "name": r.get::<_, String>(0),
                "kind": match r.get::<_, String>(1).as_str() { "i" => "index", "m" => "materialized view", _ => "table" },
                "total_bytes": r.get::<_, i64>(2),
                "bytes": r.get::<_, i64>(3),
                "rows_estimate": r.get::<_, i64>(4),
            })
        })
        .collect();
    Ok(Outcome {
        findings: Vec::new(),
        data: serde_json::json!({ "largest": list }),
        note: None,
    })
}

/// Sequences (serial, identity, or used in a default) against the smaller of their own
/// maximum and their column type's.
async fn sequence_overflow(client: &Client, filter: &str) -> Result<Outcome, DbError> {
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
                quote_ident(tn.nspname) || '.' || quote_ident(t.relname), quote_ident(a.attname),
                format_type(a.atttypid, NULL), ps.last_value, ps.max_value,
                CASE a.atttypid WHEN 'int2'::regtype THEN 32767 WHEN 'int4'::regtype THEN 2147483647
                                ELSE 9223372036854775807 END::bigint,
                ps.increment_by, ps.data_type::text, a.attidentity::text
           FROM uses u
           JOIN pg_class s ON s.oid = u.seq AND s.relkind = 'S' JOIN pg_namespace sn ON sn.oid = s.relnamespace
           JOIN pg_class t ON t.oid = u.rel JOIN pg_namespace tn ON tn.oid = t.relnamespace
           JOIN pg_attribute a ON a.attrelid = u.rel AND a.attnum = u.att AND NOT a.attisdropped
           JOIN pg_sequences ps ON ps.schemaname = sn.nspname AND ps.sequencename = s.relname
          WHERE ps.last_value IS NOT NULL AND ps.increment_by > 0
            AND a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype) AND {filter}
          ORDER BY 1, 2, 3"
    );
    let rows = query(client, "sequences near overflow", &sql).await?;
    let mut out = Vec::new();
    for r in &rows {
        let (seq, table, column, coltype): (String, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        let last: i64 = r.get(4);
        let (seq_max, type_max): (i64, i64) = (r.get(5), r.get(6));
        let limit = seq_max.min(type_max);
        let used = last as f64 / limit as f64;
        let severity = if used >= SEQ_CRIT {
            Severity::Critical
        } else if used >= SEQ_WARN {
            Severity::Warning
        } else {
            continue;
        };
        let by_type = type_max < seq_max;
        let identity = !r.get::<_, String>(9).is_empty();
        let fix = if coltype == "bigint" {
            format!("ALTER SEQUENCE {seq} MAXVALUE 9223372036854775807;")
        } else if identity {
            format!(
                "ALTER TABLE {table} ALTER COLUMN {column} TYPE bigint;  -- rewrites the table under ACCESS EXCLUSIVE: plan it (or migrate to a new bigint column online)"
            )
        } else {
            format!(
                "ALTER TABLE {table} ALTER COLUMN {column} TYPE bigint;  -- rewrites the table under ACCESS EXCLUSIVE: plan it (or migrate to a new bigint column online)\nALTER SEQUENCE {seq} AS bigint;"
            )
        };
        out.push(
            Finding::new(
                "sequence-overflow",
                severity,
                format!("{table}.{column}"),
                format!(
                    "{seq} is at {last} of {limit} ({:.1}%){}: inserts fail when it runs out",
                    used * 100.0,
                    if by_type {
                        format!(", limited by the column type {coltype}, not by the sequence ({})", r.get::<_, String>(8))
                    } else {
                        String::new()
                    }
                ),
            )
            .with_evidence(serde_json::json!({
                "sequence": seq, "last_value": last, "limit": limit, "used_percent": (used * 1000.0).round() / 10.0,
                "column_type": coltype, "sequence_type": r.get::<_, String>(8),
            }))
            .with_fix(fix),
        );
    }
    Ok(Outcome::findings(out))
}

async fn wraparound(client: &Client, filter: &str) -> Result<Outcome, DbError> {
    let db = client
        .query_one(
            "SELECT age(datfrozenxid)::bigint, mxid_age(datminmxid)::bigint FROM pg_database WHERE datname = current_database()",
            &[],
        )
        .await
        .map_err(|e| DbError::query("checking transaction ID age", e))?;
    let (xid_age, mxid_age): (i64, i64) = (db.get(0), db.get(1));
    let sql = format!(
        "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), age(c.relfrozenxid)::bigint
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'm', 't') AND {filter}
          ORDER BY 2 DESC LIMIT 5"
    );
    let oldest: Vec<serde_json::Value> = query(client, "table transaction ID ages", &sql)
        .await?
        .iter()
        .map(|r| serde_json::json!({ "table": r.get::<_, String>(0), "xid_age": r.get::<_, i64>(1) }))
        .collect();
    let worst = xid_age.max(mxid_age);
    let mut findings = Vec::new();
    if worst >= XID_WARN {
        let severity = if worst >= XID_CRIT {
            Severity::Critical
        } else {
            Severity::Warning
        };
        findings.push(
            Finding::new(
                "xid-wraparound",
                severity,
                "database",
                format!(
                    "the oldest unfrozen transaction ID is {worst} transactions old (PostgreSQL stops accepting writes at about 2,147 million): vacuum is not freezing"
                ),
            )
            .with_evidence(serde_json::json!({ "xid_age": xid_age, "mxid_age": mxid_age, "oldest_tables": oldest }))
            .with_fix("VACUUM (FREEZE, VERBOSE) <the oldest tables>;  -- and look for long transactions or abandoned replication slots holding the horizon"),
        );
    }
    Ok(Outcome {
        findings,
        data: serde_json::json!({ "xid_age": xid_age, "mxid_age": mxid_age }),
        note: None,
    })
}

async fn stale_stats(client: &Client, filter: &str) -> Result<Outcome, DbError> {
    let sql = format!(
        "SELECT quote_ident(s.schemaname) || '.' || quote_ident(s.relname), s.n_live_tup, s.n_mod_since_analyze,
                greatest(s.last_analyze, s.last_autoanalyze)::text
           FROM pg_stat_user_tables s
          WHERE s.n_live_tup + s.n_mod_since_analyze >= 10000
            AND (greatest(s.last_analyze, s.last_autoanalyze) IS NULL
                 OR (greatest(s.last_analyze, s.last_autoanalyze) < now() - interval '30 days'
                     AND s.n_mod_since_analyze > 0.2 * greatest(s.n_live_tup, 1)))
            AND {filter}
          ORDER BY s.n_mod_since_analyze DESC LIMIT 20"
    );
    let rows = query(client, "statistics age", &sql).await?;
    Ok(Outcome::findings(
        rows.iter()
            .map(|r| {
                let t: String = r.get(0);
                let last: Option<String> = r.get(3);
                Finding::new(
                    "stale-statistics",
                    Severity::Info,
                    t.clone(),
                    match &last {
                        None => format!("{t} has never been analysed: the planner guesses its size and distribution"),
                        Some(at) => format!(
                            "{t} was last analysed {at} and {} rows changed since",
                            r.get::<_, i64>(2)
                        ),
                    },
                )
                .with_evidence(serde_json::json!({
                    "live_rows": r.get::<_, i64>(1), "modified_since_analyze": r.get::<_, i64>(2), "last_analyze": last,
                }))
                .with_fix(format!("ANALYZE {t};"))
            })
            .collect(),
    ))
}

/// The statements with the most total time, when pg_stat_statements is installed here.
async fn slow_statements(client: &Client) -> Result<Outcome, DbError> {
    let ext: Option<String> = client
        .query_opt(
            "SELECT n.nspname::text FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_stat_statements'",
            &[],
        )
        .await
        .map_err(|e| DbError::query("looking for pg_stat_statements", e))?
        .map(|r| r.get(0));
    let Some(schema) = ext else {
        return Ok(Outcome {
            findings: Vec::new(),
            data: serde_json::Value::Null,
            note: Some(
                "pg_stat_statements is not installed in this database (CREATE EXTENSION pg_stat_statements; needs shared_preload_libraries)".into(),
            ),
        });
    };
    // Column names changed in PG 13 (total_time → total_exec_time): read through to_jsonb.
    let sql = format!(
        "SELECT left(s.query, 300), s.calls,
                coalesce((to_jsonb(s) ->> 'total_exec_time'), (to_jsonb(s) ->> 'total_time'))::float8,
                coalesce((to_jsonb(s) ->> 'mean_exec_time'), (to_jsonb(s) ->> 'mean_time'))::float8
           FROM {}.pg_stat_statements s
          WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
          ORDER BY 3 DESC NULLS LAST LIMIT 10",
        crate::ident::quote_ident(&schema)
    );
    let rows = query(client, "pg_stat_statements", &sql).await?;
    let top: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "query": r.get::<_, String>(0),
                "calls": r.get::<_, i64>(1),
                "total_ms": r.get::<_, Option<f64>>(2),
                "mean_ms": r.get::<_, Option<f64>>(3),
            })
        })
        .collect();
    Ok(Outcome {
        findings: Vec::new(),
        data: serde_json::json!({ "top_statements": top }),
        note: None,
    })
}
