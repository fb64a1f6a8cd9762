//! Alerts: each metric judged against thresholds per level, as [`Finding`]s. Defaults follow the
//! spec — critical: migration failure, connection timeout, connections above 95 %, wraparound
//! risk; warning: long-running queries, high error rate, lock waits (and idle-in-transaction
//! sessions, modified files, replication lag); info: performance degradation, fast growth,
//! pending migrations, autovacuum lag. `[monitor.thresholds]` in pgkeel.toml overrides them.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::json;

use super::MonitorReport;
use crate::report::{Finding, Severity};

/// Alert thresholds (`[monitor.thresholds]`, kebab-case keys; durations as in pgkeel.toml:
/// integer milliseconds or `500ms`, `5s`, `2min`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Thresholds {
    /// Warning when connections in use exceed this percentage of the usable slots.
    pub connections_warning_percent: f64,
    /// Critical above this percentage.
    pub connections_critical_percent: f64,
    /// Warning for an active query running longer.
    #[serde(with = "dur")]
    #[schemars(with = "String")]
    pub long_query_warning: Duration,
    /// Warning for a session idle in a transaction longer (it holds locks and stops vacuum).
    #[serde(with = "dur")]
    #[schemars(with = "String")]
    pub idle_in_transaction_warning: Duration,
    /// Warning for a statement waiting for a lock longer.
    #[serde(with = "dur")]
    #[schemars(with = "String")]
    pub lock_wait_warning: Duration,
    /// Warning when rollbacks exceed this percentage of transactions…
    pub error_rate_warning_percent: f64,
    /// …once there are at least this many transactions.
    pub error_rate_min_transactions: i64,
    /// Warning when a standby lags longer.
    #[serde(with = "dur")]
    #[schemars(with = "String")]
    pub replication_lag_warning: Duration,
    /// Warning / critical when the oldest unfrozen XID reaches this percentage of 2^31.
    pub wraparound_warning_percent: f64,
    pub wraparound_critical_percent: f64,
    /// Info (performance degradation) when the cache hit ratio drops below this percentage.
    pub cache_hit_info_percent: f64,
    /// Info (performance degradation) when the median round trip is slower.
    #[serde(with = "dur")]
    #[schemars(with = "String")]
    pub latency_info: Duration,
    /// Info when the database grows faster than this percentage per day.
    pub growth_info_percent_per_day: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            connections_warning_percent: 80.0,
            connections_critical_percent: 95.0,
            long_query_warning: Duration::from_secs(60),
            idle_in_transaction_warning: Duration::from_secs(60),
            lock_wait_warning: Duration::from_secs(5),
            error_rate_warning_percent: 5.0,
            error_rate_min_transactions: 1000,
            replication_lag_warning: Duration::from_secs(60),
            wraparound_warning_percent: 50.0,
            wraparound_critical_percent: 75.0,
            cache_hit_info_percent: 99.0,
            latency_info: Duration::from_millis(100),
            growth_info_percent_per_day: 10.0,
        }
    }
}

mod dur {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}ms", d.as_millis()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Ms(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Ms(ms) => Ok(Duration::from_millis(ms)),
            Raw::Text(t) => crate::duration::parse(&t).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "`{t}` is not a duration: use milliseconds or e.g. 500ms, 5s, 2min"
                ))
            }),
        }
    }
}

impl Thresholds {
    /// The thresholds of `[monitor.thresholds]` (defaults for keys not given).
    pub fn from_section(monitor: &toml::Table) -> Result<Self, String> {
        match monitor.get("thresholds") {
            None => Ok(Thresholds::default()),
            Some(v) => v
                .clone()
                .try_into()
                .map_err(|e: toml::de::Error| e.message().to_string()),
        }
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Judges a report: every alert, worst first.
pub fn evaluate(r: &MonitorReport, t: &Thresholds) -> Vec<Finding> {
    let mut out = Vec::new();
    let db = r.database.clone();
    let h = &r.health;
    if !h.reachable {
        let (id, msg) = if h.timed_out {
            (
                "connection-timeout",
                "the database did not answer within HEALTH_CHECK_TIMEOUT",
            )
        } else {
            ("database-unreachable", "the database cannot be reached")
        };
        out.push(
            Finding::new(
                id,
                Severity::Critical,
                &db,
                format!("{msg}: {}", h.error.as_deref().unwrap_or("unknown reason")),
            )
            .with_evidence(json!({"connect_ms": h.latency.connect_ms})),
        );
    }
    if let Some(err) = h.error.as_deref().filter(|_| h.reachable) {
        out.push(Finding::new(
            "health-check-failed",
            Severity::Critical,
            &db,
            format!("a health query failed: {err}"),
        ));
    }
    if h.reachable && h.error.is_none() {
        let c = &h.connections;
        let level = if c.percent > t.connections_critical_percent {
            Some(Severity::Critical)
        } else if c.percent > t.connections_warning_percent {
            Some(Severity::Warning)
        } else {
            None
        };
        if let Some(level) = level {
            out.push(
                Finding::new(
                    "connections-high",
                    level,
                    &db,
                    format!(
                        "{} of {} usable connections in use ({:.1} %); close idle sessions or put a pooler in front",
                        c.used,
                        c.max - c.reserved,
                        c.percent
                    ),
                )
                .with_evidence(json!({"by_state": c.by_state})),
            );
        }
        if (h.pool.configured_size as i64) > h.pool.free_slots {
            out.push(Finding::new(
                "pool-exceeds-free-slots",
                Severity::Warning,
                &db,
                format!(
                    "DATABASE_CONNECTION_POOL_SIZE is {} but only {} connection slots are free; a new instance could exhaust the server",
                    h.pool.configured_size, h.pool.free_slots
                ),
            ));
        }
        let level = if h.wraparound_percent >= t.wraparound_critical_percent {
            Some(Severity::Critical)
        } else if h.wraparound_percent >= t.wraparound_warning_percent {
            Some(Severity::Warning)
        } else {
            None
        };
        if let Some(level) = level {
            out.push(
                Finding::new(
                    "wraparound-risk",
                    level,
                    &db,
                    format!(
                        "the oldest unfrozen transaction ID is {} transactions old ({:.1} % of the limit); run VACUUM (FREEZE) and check what holds back the xmin horizon",
                        h.xid_age, h.wraparound_percent
                    ),
                )
                .with_fix("VACUUM (FREEZE, VERBOSE);"),
            );
        }
        if let Some(lag) = h.replication.replay_lag_seconds {
            if lag > secs(t.replication_lag_warning) {
                out.push(Finding::new(
                    "replication-lag",
                    Severity::Warning,
                    &db,
                    format!("this standby is {lag:.0} s behind its primary"),
                ));
            }
        }
        for rep in &h.replication.replicas {
            if let Some(lag) = rep
                .replay_lag_seconds
                .filter(|l| *l > secs(t.replication_lag_warning))
            {
                out.push(Finding::new(
                    "replication-lag",
                    Severity::Warning,
                    rep.name.clone().unwrap_or_default(),
                    format!(
                        "standby {} replays {lag:.0} s behind",
                        rep.client.as_deref().unwrap_or("?")
                    ),
                ));
            }
        }
        if h.latency.p50_ms > t.latency_info.as_secs_f64() * 1000.0 {
            out.push(Finding::new(
                "slow-round-trips",
                Severity::Info,
                &db,
                format!(
                    "median round trip {:.1} ms (over {} probes) is above {} ms: performance degradation",
                    h.latency.p50_ms,
                    h.latency.probes,
                    t.latency_info.as_millis()
                ),
            ));
        }
    }
    if let Some(m) = &r.migrations {
        if let Some(err) = &m.error {
            out.push(Finding::new(
                "migrations-unreadable",
                Severity::Warning,
                &m.dir,
                format!("migration status unknown: {err}"),
            ));
        }
        for f in &m.failures {
            out.push(Finding::new(
                "migration-failed",
                Severity::Critical,
                &f.id,
                format!(
                    "migration failed: {}; fix it and run `pgkeel migrate` (it resumes) or roll back",
                    f.error.as_deref().unwrap_or("no error recorded").lines().next().unwrap_or("")
                ),
            ));
        }
        for f in &m.modified {
            out.push(Finding::new(
                "migration-modified",
                Severity::Warning,
                &f.id,
                "an applied migration's file changed since it ran; `pgkeel status` tells cosmetic from real changes",
            ));
        }
        if m.counts.missing_file > 0 {
            out.push(Finding::new(
                "migration-file-missing",
                Severity::Warning,
                &m.dir,
                format!(
                    "{} applied migration(s) are not in the folder",
                    m.counts.missing_file
                ),
            ));
        }
        if !m.pending.is_empty() {
            out.push(
                Finding::new(
                    "migrations-pending",
                    Severity::Info,
                    &m.dir,
                    format!(
                        "{} migration(s) pending; run `pgkeel migrate`",
                        m.pending.len()
                    ),
                )
                .with_evidence(json!({"pending": m.pending})),
            );
        }
    }
    if let Some(p) = &r.performance {
        if let Some(err) = &p.error {
            out.push(Finding::new(
                "performance-unreadable",
                Severity::Warning,
                &db,
                format!("performance metrics incomplete: {err}"),
            ));
        }
        let over = |secs: Option<f64>, limit: Duration| secs.unwrap_or(0.0) >= limit.as_secs_f64();
        for s in p
            .long_running
            .iter()
            .filter(|s| over(s.query_seconds, t.long_query_warning))
        {
            out.push(
                Finding::new(
                    "long-running-query",
                    Severity::Warning,
                    format!("pid {}", s.pid),
                    format!(
                        "query running for {:.0} s (threshold {} s): {}",
                        s.query_seconds.unwrap_or(0.0),
                        t.long_query_warning.as_secs(),
                        one_line(s.query.as_deref())
                    ),
                )
                .with_evidence(json!(s))
                .with_fix(format!("SELECT pg_cancel_backend({});", s.pid)),
            );
        }
        for s in p
            .idle_in_transaction
            .iter()
            .filter(|s| over(s.state_seconds, t.idle_in_transaction_warning))
        {
            out.push(
                Finding::new(
                    "idle-in-transaction",
                    Severity::Warning,
                    format!("pid {}", s.pid),
                    format!(
                        "session idle in a transaction for {:.0} s (threshold {} s); it holds its locks and keeps vacuum from cleaning up. Last query: {}",
                        s.state_seconds.unwrap_or(0.0),
                        t.idle_in_transaction_warning.as_secs(),
                        one_line(s.query.as_deref())
                    ),
                )
                .with_evidence(json!(s))
                .with_fix(format!("SELECT pg_terminate_backend({});", s.pid)),
            );
        }
        for w in p
            .lock_waits
            .iter()
            .filter(|w| over(Some(w.waiting_seconds), t.lock_wait_warning))
        {
            out.push(
                Finding::new(
                    "lock-wait",
                    Severity::Warning,
                    format!("pid {}", w.blocked.pid),
                    format!(
                        "waiting {:.0} s (threshold {} s) for a lock held by pid {:?}: {}",
                        w.waiting_seconds,
                        t.lock_wait_warning.as_secs(),
                        w.blocked_by,
                        one_line(w.blocked.query.as_deref())
                    ),
                )
                .with_evidence(json!(w)),
            );
        }
        let c = &p.counters;
        if c.commits + c.rollbacks >= t.error_rate_min_transactions
            && c.error_rate_percent > t.error_rate_warning_percent
        {
            out.push(Finding::new(
                "high-error-rate",
                Severity::Warning,
                &db,
                format!(
                    "{:.1} % of transactions roll back ({} of {} since statistics were reset)",
                    c.error_rate_percent,
                    c.rollbacks,
                    c.commits + c.rollbacks
                ),
            ));
        }
        if let Some(hit) = c
            .cache_hit_percent
            .filter(|h| *h < t.cache_hit_info_percent)
        {
            out.push(Finding::new(
                "cache-hit-low",
                Severity::Info,
                &db,
                format!("buffer cache hit ratio {hit:.2} % is below {} %: performance degradation; shared_buffers may be too small for the working set", t.cache_hit_info_percent),
            ));
        }
        for v in &p.autovacuum_lag {
            out.push(Finding::new(
                "autovacuum-lag",
                Severity::Info,
                format!("{}.{}", v.schema, v.table),
                format!(
                    "{} dead tuples, past autovacuum's trigger of {}",
                    v.dead_tuples, v.trigger_at
                ),
            ));
        }
    }
    if let Some(g) = r.history.as_ref().and_then(|h| h.growth.as_ref()) {
        if g.percent_per_day > t.growth_info_percent_per_day {
            out.push(Finding::new(
                "fast-growth",
                Severity::Info,
                &db,
                format!(
                    "the database grows {:.1} % per day ({:.0} bytes/day)",
                    g.percent_per_day, g.bytes_per_day
                ),
            ));
        }
    }
    out.sort_by_key(|f| std::cmp::Reverse(f.severity));
    out
}

fn one_line(q: Option<&str>) -> String {
    let q = q
        .unwrap_or("")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if q.chars().count() > 120 {
        format!("{}…", q.chars().take(120).collect::<String>())
    } else {
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_file_lists_every_threshold_with_its_default() {
        let text = include_str!("../../../../docs/pgkeel.toml");
        let file: toml::Table = toml::from_str(text).unwrap();
        let monitor = file["monitor"].as_table().unwrap();
        assert_eq!(
            Thresholds::from_section(monitor).unwrap(),
            Thresholds::default()
        );
        let listed = monitor["thresholds"].as_table().unwrap().len();
        let fields = serde_json::to_value(Thresholds::default())
            .unwrap()
            .as_object()
            .unwrap()
            .len();
        assert_eq!(listed, fields, "docs/pgkeel.toml misses a threshold");
    }

    #[test]
    fn thresholds_parse_with_defaults_and_reject_unknown_keys() {
        let t: toml::Table = toml::from_str(
            "[thresholds]\nlong-query-warning = \"2s\"\nlock-wait-warning = 1500\nconnections-critical-percent = 90\n",
        )
        .unwrap();
        let th = Thresholds::from_section(&t).unwrap();
        assert_eq!(th.long_query_warning, Duration::from_secs(2));
        assert_eq!(th.lock_wait_warning, Duration::from_millis(1500));
        assert_eq!(th.connections_critical_percent, 90.0);
        assert_eq!(th.connections_warning_percent, 80.0);
        assert_eq!(
            Thresholds::from_section(&toml::Table::new()).unwrap(),
            Thresholds::default()
        );
        let bad: toml::Table = toml::from_str("[thresholds]\nlong-query = \"2s\"\n").unwrap();
        assert!(Thresholds::from_section(&bad)
            .unwrap_err()
            .contains("long-query"));
        let bad: toml::Table =
            toml::from_str("[thresholds]\nlong-query-warning = \"soon\"\n").unwrap();
        assert!(Thresholds::from_section(&bad).unwrap_err().contains("soon"));
    }
}
