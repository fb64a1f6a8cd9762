//! Who blocks a session ([`blockers`], from `pg_blocking_pids()`, which knows which lock modes
//! conflict) and the session set-up a migration runs with ([`prepare_migration_session`]).

use super::*;

/// A session that blocks another one (from `pg_blocking_pids`, which knows which lock modes
/// conflict).
#[derive(Debug, Clone, Serialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct Blocker {
    pub pid: i32,
    pub user: Option<String>,
    pub application_name: Option<String>,
    pub state: Option<String>,
    /// The blocker's current (or last) statement, truncated to 200 characters.
    pub query: Option<String>,
    /// How long the blocker's transaction has been open, in milliseconds.
    pub xact_age_ms: Option<i64>,
}

impl fmt::Display for Blocker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {}", self.pid)?;
        if let Some(u) = &self.user {
            write!(f, " ({u})")?;
        }
        if let Some(s) = &self.state {
            write!(f, " {s}")?;
        }
        if let Some(age) = self.xact_age_ms {
            write!(f, " for {}s", age / 1000)?;
        }
        if let Some(q) = &self.query {
            write!(
                f,
                ": {}",
                q.split_whitespace().collect::<Vec<_>>().join(" ")
            )?;
        }
        Ok(())
    }
}

/// The sessions blocking `pid` right now.
pub async fn blockers(client: &Client, pid: i32) -> Result<Vec<Blocker>, DbError> {
    let rows = client
        .query(
            "SELECT pid, usename::text, application_name, state, left(query, 200),
                    (extract(epoch FROM now() - xact_start) * 1000)::bigint
               FROM pg_stat_activity WHERE pid = ANY (pg_blocking_pids($1)) ORDER BY pid",
            &[&pid],
        )
        .await
        .map_err(|e| DbError::query("looking up blocking sessions", e))?;
    Ok(rows
        .iter()
        .map(|r| Blocker {
            pid: r.get(0),
            user: r.get(1),
            application_name: r.get(2),
            state: r.get(3),
            query: r.get(4),
            xact_age_ms: r.get(5),
        })
        .collect())
}

/// Prepares a session that will change the schema and returns its backend pid. On PostgreSQL
/// 14+, `client_connection_check_interval` makes the server notice a vanished client (kill -9,
/// lost network) within a second even in the middle of a long statement, so its locks — the
/// deploy lock included — are released promptly.
pub async fn prepare_migration_session(client: &Client) -> Result<i32, DbError> {
    let row = client
        .query_typed_one(
            "SELECT pg_backend_pid(),
                    (SELECT set_config('client_connection_check_interval', '1000', false)
                      WHERE current_setting('server_version_num')::int >= 140000)",
            &[],
        )
        .await
        .map_err(|e| DbError::query("preparing the migration session", e))?;
    Ok(row.get(0))
}
