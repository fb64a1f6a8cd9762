//! Timed, counted round trips. Every statement `monitor` sends goes through a [`Probe`], so a
//! report can say how many queries it cost and how much database time (client-measured round
//! trips on the monitoring connection). Each query is bounded by the health-check timeout, so a
//! stuck server turns into an error instead of a hang. It must not decide what to ask.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use crate::db::{Client, DbError};

/// What a monitor run cost the database.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Cost {
    /// Round trips to the server (queries, plus the ledger reads the migration plan makes).
    pub queries: u32,
    /// Sum of the round trips' wall time, in milliseconds.
    pub db_time_ms: f64,
}

/// A monitoring connection that counts and times what it sends.
#[derive(Debug)]
pub struct Probe<'a> {
    client: &'a Client,
    /// `None`: no limit (`HEALTH_CHECK_TIMEOUT=0`).
    timeout: Option<Duration>,
    queries: AtomicU32,
    micros: AtomicU64,
}

impl<'a> Probe<'a> {
    /// A zero `timeout` means no limit, as `HEALTH_CHECK_TIMEOUT=0` is documented.
    pub fn new(client: &'a Client, timeout: Duration) -> Self {
        Probe {
            client,
            timeout: limit(timeout),
            queries: AtomicU32::new(0),
            micros: AtomicU64::new(0),
        }
    }

    pub fn client(&self) -> &'a Client {
        self.client
    }

    /// Runs `sql` (`what` names it in errors), bounded by the health-check timeout.
    pub async fn query(
        &self,
        what: &str,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, DbError> {
        let started = Instant::now();
        let query = self.client.query(sql, params);
        let res = match self.timeout {
            Some(t) => tokio::time::timeout(t, query).await.map_err(|_| t),
            None => Ok(query.await),
        };
        self.add(1, started.elapsed());
        match res {
            Ok(r) => r.map_err(|e| DbError::query(what.to_string(), e)),
            Err(t) => Err(DbError::ConnectionLost {
                context: what.to_string(),
                reason: format!(
                    "no answer within {} ms (HEALTH_CHECK_TIMEOUT)",
                    t.as_millis()
                ),
            }),
        }
    }

    /// Counts work done through the client by another module (`queries` round trips taking
    /// `elapsed`).
    pub fn add(&self, queries: u32, elapsed: Duration) {
        self.queries.fetch_add(queries, Ordering::Relaxed);
        self.micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn cost(&self) -> Cost {
        Cost {
            queries: self.queries.load(Ordering::Relaxed),
            db_time_ms: self.micros.load(Ordering::Relaxed) as f64 / 1000.0,
        }
    }
}

/// Milliseconds of a duration, with microsecond precision.
/// A configured time limit: zero means none (`HEALTH_CHECK_TIMEOUT=0`, `READINESS_CHECK_TIMEOUT=0`).
pub fn limit(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

pub fn ms(d: Duration) -> f64 {
    (d.as_micros() as f64 / 1000.0 * 1000.0).round() / 1000.0
}
