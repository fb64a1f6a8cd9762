//! Monitoring: one report of health, migration status, performance and alerts (the spec's
//! `db:monitor`, `db-health-YYYY-MM-DD.json`), its Prometheus exposition, and the HTTP service
//! that serves health/readiness checks, metrics and a dashboard.
//!
//! [`Monitor`] opens one monitoring connection (bounded by HEALTH_CHECK_TIMEOUT, also as the
//! server-side `statement_timeout`) and runs a fixed number of queries through a counting
//! [`probe::Probe`]: [`activity`] (pg_stat_activity), [`health`], [`migrations`] (the migration
//! plan), [`performance`], [`history`] (samples for growth). [`alerts`] judges the result with
//! [`alerts::Thresholds`] into [`Finding`]s. [`metrics`] renders Prometheus text, [`dashboard`]
//! the HTML page and [`serve`] the axum service with its collection cache; [`notify`] sends
//! alerts that appear or resolve to webhooks. An unreachable
//! database is a report with a critical alert, never an error or a hang.

pub mod activity;
pub mod alerts;
pub mod dashboard;
pub mod health;
pub mod history;
pub mod metrics;
pub mod migrations;
pub mod notify;
pub mod performance;
pub mod probe;
pub mod serve;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

pub use alerts::Thresholds;
pub use health::Health;
pub use history::History;
pub use migrations::MigrationStatus;
pub use performance::Performance;
pub use probe::Cost;
pub use serve::{ServeError, ServeOptions};

use crate::config::Settings;
use crate::db::{Client, DbError, Target};
use crate::report::{self, Finding, ReportError, Severity, SeverityCounts};

/// The monitoring session's `lock_timeout`, in milliseconds.
pub const LOCK_TIMEOUT_MS: u64 = 100;

/// Errors of this module (the monitored database being down is not one: it is a report).
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("invalid [monitor.thresholds] in {}: {reason}; fix or remove the key (the README's `pgkeel monitor` section lists them)", file.as_ref().map_or_else(|| "pgkeel.toml".to_string(), |f| f.display().to_string()))]
    Thresholds {
        file: Option<PathBuf>,
        reason: String,
    },
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Report(#[from] ReportError),
}

/// Which sections to collect (all when none is asked for).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Sections {
    pub health: bool,
    pub migrations: bool,
    pub performance: bool,
}

impl Sections {
    pub const ALL: Sections = Sections {
        health: true,
        migrations: true,
        performance: true,
    };

    /// The flags as given; none set means all.
    pub fn from_flags(health: bool, migrations: bool, performance: bool) -> Self {
        if !(health || migrations || performance) {
            Sections::ALL
        } else {
            Sections {
                health,
                migrations,
                performance,
            }
        }
    }
}

/// The worst level and counts of a report's alerts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Summary {
    /// `ok`, `info`, `warning` or `critical`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worst: Option<Severity>,
    pub alerts: SeverityCounts,
}

/// One monitoring report (`reports/db-health-YYYY-MM-DD.json`).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct MonitorReport {
    pub generated_at: chrono::DateTime<chrono::Utc>,
    /// The database, password redacted.
    pub database: String,
    pub sections: Sections,
    pub summary: Summary,
    pub alerts: Vec<Finding>,
    /// Always collected: reachability and connections feed every other section.
    pub health: Health,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub migrations: Option<MigrationStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub performance: Option<Performance>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<History>,
    /// What collecting this report cost the database.
    pub cost: Cost,
    pub thresholds: Thresholds,
}

impl MonitorReport {
    /// The worst alert level, `None` when there are no alerts.
    pub fn worst(&self) -> Option<Severity> {
        report::worst(&self.alerts)
    }

    /// Pending or failed migrations (what makes a service not ready).
    pub fn migrations_blocking(&self) -> Vec<String> {
        let Some(m) = &self.migrations else {
            return Vec::new();
        };
        let mut v: Vec<String> = m
            .pending
            .iter()
            .map(|id| format!("pending: {id}"))
            .collect();
        v.extend(m.failures.iter().map(|f| format!("failed: {}", f.id)));
        if let Some(e) = &m.error {
            v.push(format!("migration status unknown: {e}"));
        }
        v
    }

    /// Writes `db-health-YYYY-MM-DD.json` (never overwriting the day's earlier reports).
    pub fn save(&self, reports_dir: &Path) -> Result<PathBuf, ReportError> {
        report::write_report(reports_dir, "db-health", self)
    }

    fn finish(&mut self) {
        self.alerts = alerts::evaluate(self, &self.thresholds);
        let worst = self.worst();
        self.summary = Summary {
            status: worst.map_or("ok", Severity::as_str).to_string(),
            worst,
            alerts: SeverityCounts::of(&self.alerts),
        };
    }
}

/// Runs monitoring for one database.
#[derive(Debug, Clone)]
pub struct Monitor {
    pub settings: Settings,
    pub thresholds: Thresholds,
    pub migrations_dir: PathBuf,
    target: Target,
}

impl Monitor {
    /// Reads the thresholds and prepares the monitoring connection's settings.
    pub fn new(settings: &Settings, migrations_dir: PathBuf) -> Result<Self, MonitorError> {
        let thresholds = Thresholds::from_section(&settings.monitor).map_err(|reason| {
            MonitorError::Thresholds {
                file: settings.config_file.clone(),
                reason,
            }
        })?;
        let mut target = Target::from_settings(settings)?;
        // HEALTH_CHECK_TIMEOUT=0 means no limit (statement_timeout 0 is PostgreSQL's "none").
        let limit = probe::limit(settings.health_check_timeout);
        let connect = match limit {
            Some(t) => settings.connect_timeout.min(t),
            None => settings.connect_timeout,
        };
        target.config.connect_timeout(connect);
        let mut options = target.config.get_options().unwrap_or("").to_string();
        if !options.is_empty() {
            options.push(' ');
        }
        // Never queue behind a lock (an exclusive lock request would then queue everyone else
        // behind the monitor too): give up after LOCK_TIMEOUT_MS and use what needs no lock.
        options.push_str(&format!(
            "-c statement_timeout={} -c lock_timeout={LOCK_TIMEOUT_MS}",
            limit.map_or(0, |t| t.as_millis())
        ));
        target.config.options(&options);
        Ok(Monitor {
            settings: settings.clone(),
            thresholds,
            migrations_dir,
            target,
        })
    }

    /// The monitored database (its `Display` has no password).
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Opens the monitoring connection; returns it with the time it took (ms), or the error
    /// with the time until it failed.
    pub async fn connect(&self) -> Result<(Client, f64), (DbError, f64)> {
        let started = Instant::now();
        let bound = probe::limit(self.settings.health_check_timeout)
            .unwrap_or(self.settings.connect_timeout)
            + Duration::from_millis(500);
        match tokio::time::timeout(bound, self.target.connect()).await {
            Ok(Ok(c)) => Ok((c, probe::ms(started.elapsed()))),
            Ok(Err(e)) => Err((e, probe::ms(started.elapsed()))),
            Err(_) => Err((
                DbError::ConnectTimeout {
                    target: self.target.to_string(),
                    after: started.elapsed(),
                },
                probe::ms(started.elapsed()),
            )),
        }
    }

    /// Connects, collects `sections` and judges them. Records a history sample.
    pub async fn run(&self, sections: Sections) -> MonitorReport {
        match self.connect().await {
            Ok((client, connect_ms)) => self.collect(&client, connect_ms, sections, true).await,
            Err((e, connect_ms)) => self.unreachable(&e, connect_ms, sections),
        }
    }

    fn empty(&self, sections: Sections) -> MonitorReport {
        MonitorReport {
            generated_at: chrono::Utc::now(),
            database: self.target.to_string(),
            sections,
            summary: Summary::default(),
            alerts: Vec::new(),
            health: Health::default(),
            migrations: None,
            performance: None,
            history: None,
            cost: Cost::default(),
            thresholds: self.thresholds.clone(),
        }
    }

    /// The report for a database that could not be reached.
    pub fn unreachable(&self, err: &DbError, connect_ms: f64, sections: Sections) -> MonitorReport {
        let mut r = self.empty(sections);
        r.health = Health::unreachable(err, connect_ms);
        r.finish();
        r
    }

    /// Collects over an open connection. `record_history` adds a sample to the history table
    /// (only when performance is collected: a sample needs the database size). The whole
    /// collection is bounded by HEALTH_CHECK_TIMEOUT: a server that stops answering half-way is
    /// reported as timed out, not waited for query after query.
    pub async fn collect(
        &self,
        client: &Client,
        connect_ms: f64,
        sections: Sections,
        record_history: bool,
    ) -> MonitorReport {
        let work = self.collect_unbounded(client, connect_ms, sections, record_history);
        let Some(limit) = probe::limit(self.settings.health_check_timeout) else {
            return work.await;
        };
        match tokio::time::timeout(limit, work).await {
            Ok(r) => r,
            Err(_) => self.unreachable(
                &DbError::ConnectionLost {
                    context: "collecting health and metrics".into(),
                    reason: format!(
                        "no complete answer within {} ms (HEALTH_CHECK_TIMEOUT)",
                        limit.as_millis()
                    ),
                },
                connect_ms,
                sections,
            ),
        }
    }

    async fn collect_unbounded(
        &self,
        client: &Client,
        connect_ms: f64,
        sections: Sections,
        record_history: bool,
    ) -> MonitorReport {
        let mut r = self.empty(sections);
        let probe = probe::Probe::new(client, self.settings.health_check_timeout);
        let activity = match activity::Activity::read(&probe).await {
            Ok(a) => a,
            Err(e) => {
                r.health = Health::unreachable(&e, connect_ms);
                r.cost = probe.cost();
                r.finish();
                return r;
            }
        };
        match health::collect(&probe, &self.settings, connect_ms, &activity).await {
            Ok(h) => r.health = h,
            Err(e) => {
                let lost = e.is_connection();
                r.health = Health::unreachable(&e, connect_ms);
                r.health.reachable = !lost;
                if lost {
                    r.cost = probe.cost();
                    r.finish();
                    return r;
                }
            }
        }
        if sections.migrations {
            r.migrations =
                Some(migrations::collect(&probe, &self.settings, &self.migrations_dir).await);
        }
        if sections.performance {
            let perf = match performance::collect(&probe, &activity).await {
                Ok(mut p) => {
                    // pgkeel's and drizzle-orm's own tables are marked, so a summary can leave
                    // them out of "largest" (the data still lists them).
                    let ours = self.settings.bookkeeping_tables();
                    for t in &mut p.largest_tables {
                        t.bookkeeping = ours.contains(&(t.schema.clone(), t.name.clone()))
                            || t.name == "__pgkeel_monitor_history";
                    }
                    p
                }
                Err(e) => Performance {
                    error: Some(e.to_string()),
                    ..Performance::default()
                },
            };
            if perf.error.is_none() {
                let now = history::Now {
                    database_size_bytes: perf.database_size_bytes,
                    connections: r.health.connections.used as i32,
                    xact_commit: perf.counters.commits,
                    xact_rollback: perf.counters.rollbacks,
                };
                r.history = Some(
                    history::record_and_read(&probe, &self.settings, now, record_history).await,
                );
            }
            r.performance = Some(perf);
        }
        r.cost = probe.cost();
        r.finish();
        r
    }
}
