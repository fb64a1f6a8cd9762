//! What the server's sessions are doing, from one read of `pg_stat_activity`: connections by
//! state (cluster-wide, against `max_connections`), and in this database the long-running
//! queries, idle-in-transaction sessions and lock waits with who blocks whom
//! (`pg_blocking_pids`, which knows which lock modes conflict). One query whatever the number of
//! sessions or tables. It must not judge: thresholds live in `alerts`.

use std::collections::BTreeMap;

use serde::Serialize;

use super::probe::Probe;
use crate::db::DbError;

/// One client session (never the monitoring session itself).
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Session {
    pub pid: i32,
    pub user: Option<String>,
    pub application: Option<String>,
    /// `active`, `idle`, `idle in transaction`, …
    pub state: Option<String>,
    pub wait_event_type: Option<String>,
    pub wait_event: Option<String>,
    /// Seconds since the current (or last) query started.
    pub query_seconds: Option<f64>,
    /// Seconds since the transaction started.
    pub transaction_seconds: Option<f64>,
    /// Seconds in the current state (idle-in-transaction age is measured from here).
    pub state_seconds: Option<f64>,
    /// The query text, cut to 300 characters.
    pub query: Option<String>,
    #[serde(skip)]
    pub here: bool,
    #[serde(skip)]
    pub blocked_by: Vec<i32>,
}

/// A session waiting for a lock, and the sessions it waits for.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct LockWait {
    pub blocked: Session,
    pub blocked_by: Vec<i32>,
    /// The blockers that are visible (client sessions of this server).
    pub blockers: Vec<Session>,
    /// How long the blocked statement has been waiting, in seconds.
    pub waiting_seconds: f64,
}

/// Connections in use, cluster-wide.
#[derive(Debug, Clone, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Connections {
    /// Client connections in use, this one included.
    pub used: i64,
    pub max: i64,
    /// `superuser_reserved_connections`: slots ordinary roles can't use.
    pub reserved: i64,
    /// `used` as a percentage of `max - reserved`.
    pub percent: f64,
    pub by_state: BTreeMap<String, i64>,
}

/// One reading of `pg_stat_activity`.
#[derive(Debug, Clone, Default)]
pub struct Activity {
    pub sessions: Vec<Session>,
}

const SQL: &str = "
SELECT pid, datname = current_database(), usename::text, application_name, state,
       wait_event_type, wait_event,
       extract(epoch FROM clock_timestamp() - query_start)::float8,
       extract(epoch FROM clock_timestamp() - xact_start)::float8,
       extract(epoch FROM clock_timestamp() - state_change)::float8,
       left(query, 300),
       CASE WHEN wait_event_type = 'Lock' THEN pg_blocking_pids(pid) END
  FROM pg_stat_activity
 WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()";

impl Activity {
    pub async fn read(probe: &Probe<'_>) -> Result<Self, DbError> {
        let rows = probe.query("reading pg_stat_activity", SQL, &[]).await?;
        let sessions = rows
            .iter()
            .map(|r| Session {
                pid: r.get(0),
                here: r.get::<_, Option<bool>>(1).unwrap_or(false),
                user: r.get(2),
                application: r.get(3),
                state: r.get(4),
                wait_event_type: r.get(5),
                wait_event: r.get(6),
                query_seconds: r.get(7),
                transaction_seconds: r.get(8),
                state_seconds: r.get(9),
                query: r.get(10),
                blocked_by: r.get::<_, Option<Vec<i32>>>(11).unwrap_or_default(),
            })
            .collect();
        Ok(Activity { sessions })
    }

    /// Connections by state, counting the monitoring session as active.
    pub fn connections(&self, max: i64, reserved: i64) -> Connections {
        let mut by_state: BTreeMap<String, i64> = BTreeMap::new();
        *by_state.entry("active".into()).or_default() += 1;
        for s in &self.sessions {
            let state = s.state.clone().unwrap_or_else(|| "unknown".into());
            *by_state.entry(state).or_default() += 1;
        }
        let used = self.sessions.len() as i64 + 1;
        let usable = (max - reserved).max(1);
        Connections {
            used,
            max,
            reserved,
            percent: round2(used as f64 * 100.0 / usable as f64),
            by_state,
        }
    }

    /// Active queries in this database running for at least `min_seconds`, longest first.
    pub fn long_running(&self, min_seconds: f64) -> Vec<Session> {
        let mut v: Vec<Session> = self
            .sessions
            .iter()
            .filter(|s| s.here && s.state.as_deref() == Some("active"))
            .filter(|s| s.query_seconds.unwrap_or(0.0) >= min_seconds)
            .cloned()
            .collect();
        v.sort_by(|a, b| b.query_seconds.total_cmp(&a.query_seconds));
        v
    }

    /// Sessions in this database idle in a transaction for at least `min_seconds`.
    pub fn idle_in_transaction(&self, min_seconds: f64) -> Vec<Session> {
        let mut v: Vec<Session> = self
            .sessions
            .iter()
            .filter(|s| {
                s.here
                    && matches!(
                        s.state.as_deref(),
                        Some("idle in transaction" | "idle in transaction (aborted)")
                    )
            })
            .filter(|s| s.state_seconds.unwrap_or(0.0) >= min_seconds)
            .cloned()
            .collect();
        v.sort_by(|a, b| b.state_seconds.total_cmp(&a.state_seconds));
        v
    }

    /// Sessions in this database waiting for a lock held by another session.
    pub fn lock_waits(&self) -> Vec<LockWait> {
        let mut v: Vec<LockWait> = self
            .sessions
            .iter()
            .filter(|s| s.here && !s.blocked_by.is_empty())
            .map(|s| LockWait {
                blocked: s.clone(),
                blocked_by: s.blocked_by.clone(),
                blockers: self
                    .sessions
                    .iter()
                    .filter(|b| s.blocked_by.contains(&b.pid))
                    .cloned()
                    .collect(),
                waiting_seconds: s.query_seconds.unwrap_or(0.0),
            })
            .collect();
        v.sort_by(|a, b| b.waiting_seconds.total_cmp(&a.waiting_seconds));
        v
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

trait TotalCmp {
    fn total_cmp(&self, other: &Self) -> std::cmp::Ordering;
}

impl TotalCmp for Option<f64> {
    fn total_cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.unwrap_or(0.0).total_cmp(&other.unwrap_or(0.0))
    }
}
