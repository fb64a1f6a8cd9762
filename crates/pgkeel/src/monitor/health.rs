//! Is the database there and well: connect latency and round-trip probes, server version and
//! uptime, connections against `max_connections` (by state), the configured pool against the
//! free slots, TLS on the monitoring connection, recovery / replication lag, and transaction-ID
//! age (wraparound risk). One catalog query plus the probes, whatever the schema's size. An
//! unreachable server is a [`Health`] with the reason, never an error or a hang.

use serde::Serialize;

use super::activity::{Activity, Connections};
use super::probe::{ms, Probe};
use crate::config::Settings;
use crate::db::DbError;

/// How many `SELECT 1` round trips the latency figures come from.
pub const PROBES: usize = 3;

#[derive(Debug, Clone, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Latency {
    /// Time to open the monitoring connection (TCP, TLS, authentication).
    pub connect_ms: f64,
    /// Median and worst of the `SELECT 1` round trips.
    pub p50_ms: f64,
    pub max_ms: f64,
    pub probes: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Tls {
    pub in_use: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cipher: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Pool {
    /// DATABASE_CONNECTION_POOL_SIZE: what one application instance may open.
    pub configured_size: usize,
    /// Slots still free for ordinary roles.
    pub free_slots: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Replica {
    pub name: Option<String>,
    pub client: Option<String>,
    pub state: Option<String>,
    pub replay_lag_seconds: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Replication {
    /// True on a standby.
    pub in_recovery: bool,
    /// On a standby: seconds since the last replayed transaction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay_lag_seconds: Option<f64>,
    /// On a primary: the standbys it streams to (visible with pg_monitor or superuser).
    pub replicas: Vec<Replica>,
}

/// The health section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Health {
    pub reachable: bool,
    /// Why the database could not be reached (or a check failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// True when the failure was a timeout (HEALTH_CHECK_TIMEOUT).
    pub timed_out: bool,
    pub latency: Latency,
    pub server_version: String,
    pub server_version_num: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<chrono::DateTime<chrono::Utc>>,
    pub uptime_seconds: f64,
    pub connections: Connections,
    pub pool: Pool,
    pub tls: Tls,
    pub replication: Replication,
    /// `age(datfrozenxid)` of this database: transactions since its oldest unfrozen XID.
    pub xid_age: i64,
    /// `xid_age` as a percentage of the 2^31 hard limit.
    pub wraparound_percent: f64,
}

impl Health {
    /// The health of a database that could not be reached.
    pub fn unreachable(err: &DbError, connect_ms: f64) -> Self {
        Health {
            reachable: false,
            timed_out: matches!(err, DbError::ConnectTimeout { .. })
                || err.to_string().contains("HEALTH_CHECK_TIMEOUT"),
            error: Some(err.to_string()),
            latency: Latency {
                connect_ms,
                ..Latency::default()
            },
            ..Health::default()
        }
    }
}

const SQL: &str = "
SELECT current_setting('server_version'),
       current_setting('server_version_num')::int,
       pg_postmaster_start_time(),
       extract(epoch FROM now() - pg_postmaster_start_time())::float8,
       current_setting('max_connections')::bigint,
       current_setting('superuser_reserved_connections')::bigint,
       pg_is_in_recovery(),
       coalesce(s.ssl, false), s.version, s.cipher,
       CASE WHEN pg_is_in_recovery()
            THEN extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 END,
       (SELECT coalesce(json_agg(json_build_object(
                 'name', application_name, 'client', client_addr::text, 'state', state,
                 'replay_lag_seconds', extract(epoch FROM replay_lag)::float8)), '[]'::json)
          FROM pg_stat_replication),
       age(d.datfrozenxid)::bigint
  FROM pg_database d
  LEFT JOIN pg_stat_ssl s ON s.pid = pg_backend_pid()
 WHERE d.datname = current_database()";

/// Reads the health section over an open monitoring connection.
pub async fn collect(
    probe: &Probe<'_>,
    settings: &Settings,
    connect_ms: f64,
    activity: &Activity,
) -> Result<Health, DbError> {
    let mut pings = Vec::with_capacity(PROBES);
    for _ in 0..PROBES {
        let t = std::time::Instant::now();
        probe.query("probing the server", "SELECT 1", &[]).await?;
        pings.push(ms(t.elapsed()));
    }
    pings.sort_by(f64::total_cmp);
    let rows = probe.query("reading server health", SQL, &[]).await?;
    let r = rows.first().ok_or_else(|| DbError::ConnectionLost {
        context: "reading server health".into(),
        reason: "the current database is missing from pg_database".into(),
    })?;
    let max: i64 = r.get(4);
    let reserved: i64 = r.get(5);
    let connections = activity.connections(max, reserved);
    let replicas: serde_json::Value = r.get(11);
    let replicas = replicas
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| Replica {
                    name: v["name"].as_str().map(str::to_string),
                    client: v["client"].as_str().map(str::to_string),
                    state: v["state"].as_str().map(str::to_string),
                    replay_lag_seconds: v["replay_lag_seconds"].as_f64(),
                })
                .collect()
        })
        .unwrap_or_default();
    let xid_age: i64 = r.get(12);
    Ok(Health {
        reachable: true,
        error: None,
        timed_out: false,
        latency: Latency {
            connect_ms,
            p50_ms: pings[pings.len() / 2],
            max_ms: *pings.last().unwrap_or(&0.0),
            probes: PROBES,
        },
        server_version: r.get(0),
        server_version_num: r.get(1),
        started_at: r.get(2),
        uptime_seconds: r.get::<_, Option<f64>>(3).unwrap_or(0.0).round(),
        pool: Pool {
            configured_size: settings.pool_size,
            free_slots: (max - reserved - connections.used).max(0),
        },
        connections,
        tls: Tls {
            in_use: r.get(7),
            version: r.get(8),
            cipher: r.get(9),
        },
        replication: Replication {
            in_recovery: r.get(6),
            replay_lag_seconds: r.get(10),
            replicas,
        },
        xid_age,
        wraparound_percent: (xid_age as f64 * 10000.0 / 2f64.powi(31)).round() / 100.0,
    })
}
