//! Prometheus text exposition (format 0.0.4) of a [`MonitorReport`]: conventional names with
//! base units (`pgkeel_database_size_bytes`, `_seconds`), `_total` for counters, labels for
//! states (`pgkeel_connections{state="idle"}`). Pure rendering: `serve` caches the result.

use std::fmt::Write as _;

use super::MonitorReport;

/// Writes one metric family.
struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str, samples: &[(&[(&str, &str)], f64)]) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            self.0.push_str(name);
            if !labels.is_empty() {
                self.0.push('{');
                for (i, (k, v)) in labels.iter().enumerate() {
                    if i > 0 {
                        self.0.push(',');
                    }
                    let _ = write!(self.0, "{k}=\"{}\"", escape(v));
                }
                self.0.push('}');
            }
            let _ = writeln!(self.0, " {}", number(*value));
        }
    }

    fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.family(name, "gauge", help, &[(&[], value)]);
    }

    fn counter(&mut self, name: &str, help: &str, value: f64) {
        self.family(name, "counter", help, &[(&[], value)]);
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// Renders `r` as Prometheus text. `collections` is how many collections the process made.
pub fn render(r: &MonitorReport, collections: u64) -> String {
    let mut o = Out(String::with_capacity(4096));
    let h = &r.health;
    o.gauge(
        "pgkeel_up",
        "Whether the database answered the last collection (1) or not (0).",
        if h.reachable { 1.0 } else { 0.0 },
    );
    o.counter(
        "pgkeel_collections_total",
        "Collections made by this process (the database sees one per interval at most).",
        collections as f64,
    );
    o.gauge(
        "pgkeel_collection_timestamp_seconds",
        "Unix time of the last collection.",
        r.generated_at.timestamp_millis() as f64 / 1000.0,
    );
    o.gauge(
        "pgkeel_collection_db_time_seconds",
        "Database time the last collection cost (sum of round trips).",
        r.cost.db_time_ms / 1000.0,
    );
    o.gauge(
        "pgkeel_collection_queries",
        "Queries the last collection sent.",
        r.cost.queries as f64,
    );
    o.gauge(
        "pgkeel_connect_duration_seconds",
        "Time to open the monitoring connection.",
        h.latency.connect_ms / 1000.0,
    );
    o.family(
        "pgkeel_roundtrip_duration_seconds",
        "gauge",
        "SELECT 1 round trips of the last collection: median and worst.",
        &[
            (&[("stat", "p50")], h.latency.p50_ms / 1000.0),
            (&[("stat", "max")], h.latency.max_ms / 1000.0),
        ],
    );
    let alerts = &r.summary.alerts;
    o.family(
        "pgkeel_alerts",
        "gauge",
        "Alerts of the last collection by severity.",
        &[
            (&[("severity", "critical")], alerts.critical as f64),
            (&[("severity", "warning")], alerts.warning as f64),
            (&[("severity", "info")], alerts.info as f64),
        ],
    );
    if h.reachable {
        if let Some(started) = h.started_at {
            o.gauge(
                "pgkeel_server_start_time_seconds",
                "Unix time the PostgreSQL server started.",
                started.timestamp() as f64,
            );
        }
        o.family(
            "pgkeel_server_info",
            "gauge",
            "The PostgreSQL server version (value is always 1).",
            &[(&[("version", h.server_version.as_str())], 1.0)],
        );
        let states: Vec<(String, f64)> = h
            .connections
            .by_state
            .iter()
            .map(|(k, v)| (k.clone(), *v as f64))
            .collect();
        let samples: Vec<([(&str, &str); 1], f64)> = states
            .iter()
            .map(|(k, v)| ([("state", k.as_str())], *v))
            .collect();
        let samples: Vec<(&[(&str, &str)], f64)> =
            samples.iter().map(|(l, v)| (&l[..], *v)).collect();
        o.family(
            "pgkeel_connections",
            "gauge",
            "Client connections to the server by state.",
            &samples,
        );
        o.gauge(
            "pgkeel_connections_max",
            "max_connections of the server.",
            h.connections.max as f64,
        );
        o.gauge(
            "pgkeel_connections_used_ratio",
            "Connections in use over the slots ordinary roles may use.",
            h.connections.percent / 100.0,
        );
        o.gauge(
            "pgkeel_in_recovery",
            "1 on a standby, 0 on a primary.",
            if h.replication.in_recovery { 1.0 } else { 0.0 },
        );
        if let Some(lag) = h.replication.replay_lag_seconds {
            o.gauge(
                "pgkeel_replication_lag_seconds",
                "On a standby: time since the last replayed transaction.",
                lag,
            );
        }
        o.gauge(
            "pgkeel_database_xid_age",
            "Transactions since the database's oldest unfrozen transaction ID (wraparound at 2^31).",
            h.xid_age as f64,
        );
        o.gauge(
            "pgkeel_tls_in_use",
            "Whether the monitoring connection uses TLS.",
            if h.tls.in_use { 1.0 } else { 0.0 },
        );
    }
    if let Some(m) = &r.migrations {
        let c = &m.counts;
        o.gauge(
            "pgkeel_migrations_applied",
            "Migrations applied.",
            c.applied as f64,
        );
        o.gauge(
            "pgkeel_migrations_pending",
            "Migrations in the folder not yet applied (rolled back ones included).",
            (c.pending + c.rolled_back) as f64,
        );
        o.gauge(
            "pgkeel_migrations_failed",
            "Migrations whose last run failed.",
            c.failed as f64,
        );
        o.gauge(
            "pgkeel_migrations_modified",
            "Applied migrations whose file changed since.",
            c.modified as f64,
        );
        o.gauge(
            "pgkeel_migrations_missing_files",
            "Applied migrations missing from the folder.",
            c.missing_file as f64,
        );
        if let Some(at) = m.last_applied.as_ref().and_then(|l| l.applied_at) {
            o.gauge(
                "pgkeel_migration_last_applied_timestamp_seconds",
                "Unix time the newest migration was applied.",
                at.and_utc().timestamp() as f64,
            );
        }
    }
    if let Some(p) = r.performance.as_ref().filter(|p| p.error.is_none()) {
        o.gauge(
            "pgkeel_database_size_bytes",
            "Size of the database on disk.",
            p.database_size_bytes as f64,
        );
        let c = &p.counters;
        o.family(
            "pgkeel_transactions_total",
            "counter",
            "Transactions of this database since statistics were reset, by result.",
            &[
                (&[("result", "commit")], c.commits as f64),
                (&[("result", "rollback")], c.rollbacks as f64),
            ],
        );
        o.counter(
            "pgkeel_deadlocks_total",
            "Deadlocks detected in this database.",
            c.deadlocks as f64,
        );
        o.counter(
            "pgkeel_temp_files_total",
            "Temporary files written by queries of this database.",
            c.temp_files as f64,
        );
        o.counter(
            "pgkeel_temp_bytes_total",
            "Bytes written to temporary files by queries of this database.",
            c.temp_bytes as f64,
        );
        if let Some(hit) = c.cache_hit_percent {
            o.gauge(
                "pgkeel_cache_hit_ratio",
                "Buffer cache hits over block reads.",
                hit / 100.0,
            );
        }
        // What is there and how old the oldest is; Prometheus rules (docs/prometheus) judge.
        let oldest = |ages: &mut dyn Iterator<Item = f64>| ages.fold(0.0_f64, f64::max);
        o.gauge(
            "pgkeel_active_queries",
            "Active queries in this database (the monitoring session excluded, 50 at most).",
            p.long_running.len() as f64,
        );
        o.gauge(
            "pgkeel_longest_query_seconds",
            "Age of the longest-running active query, 0 when none.",
            oldest(&mut p.long_running.iter().filter_map(|s| s.query_seconds)),
        );
        o.gauge(
            "pgkeel_idle_in_transaction_sessions",
            "Sessions idle in a transaction (50 at most).",
            p.idle_in_transaction.len() as f64,
        );
        o.gauge(
            "pgkeel_longest_idle_in_transaction_seconds",
            "How long the oldest idle-in-transaction session has been idle, 0 when none.",
            oldest(&mut p.idle_in_transaction.iter().filter_map(|s| s.state_seconds)),
        );
        o.gauge(
            "pgkeel_lock_waits",
            "Statements waiting for a lock held by another session.",
            p.lock_waits.len() as f64,
        );
        o.gauge(
            "pgkeel_longest_lock_wait_seconds",
            "How long the longest lock wait has waited, 0 when none.",
            oldest(&mut p.lock_waits.iter().map(|w| w.waiting_seconds)),
        );
        o.gauge(
            "pgkeel_autovacuum_lagging_tables",
            "Tables with more dead tuples than autovacuum's trigger point (top 10 at most).",
            p.autovacuum_lag.len() as f64,
        );
        if let Some(g) = r.history.as_ref().and_then(|h| h.growth.as_ref()) {
            o.gauge(
                "pgkeel_database_growth_bytes_per_second",
                "Database size growth over the kept history (up to a week), per second.",
                g.bytes_per_day / 86_400.0,
            );
        }
    }
    o.0
}
