//! Migration status for monitoring: the folder compared with the ledger through
//! [`Migrator::plan`] (the same plan `pgkeel status` prints), summarised as counts, the last
//! applied migration with its duration, failures with their error, modified files, and a
//! timeline for the dashboard. It must not change the ledger.

use std::path::Path;

use serde::Serialize;

use super::probe::Probe;
use crate::config::Settings;
use crate::migrate::{Counts, Migrator, State};

/// One migration on the timeline.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct TimelineEntry {
    pub id: String,
    /// `applied`, `pending`, `failed`, `rolled_back`, `modified`, `missing_file`, `baselined`.
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied_at: Option<chrono::NaiveDateTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The migrations section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct MigrationStatus {
    pub dir: String,
    /// Why the status could not be read (no folder, unreadable ledger, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub total: usize,
    pub counts: Counts,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_applied: Option<TimelineEntry>,
    pub failures: Vec<TimelineEntry>,
    pub modified: Vec<TimelineEntry>,
    pub pending: Vec<String>,
    pub timeline: Vec<TimelineEntry>,
}

fn state_name(s: &State) -> &'static str {
    match s {
        State::Applied => "applied",
        State::Baselined => "baselined",
        State::Pending => "pending",
        State::Failed => "failed",
        State::RolledBack => "rolled_back",
        State::Modified { .. } => "modified",
        State::MissingFile => "missing_file",
    }
}

/// Reads the folder at `dir` and the ledger; problems land in `error`, never as a failure.
pub async fn collect(probe: &Probe<'_>, settings: &Settings, dir: &Path) -> MigrationStatus {
    let mut out = MigrationStatus {
        dir: dir.display().to_string(),
        ..MigrationStatus::default()
    };
    let set = match crate::source::load(dir) {
        Ok(set) => set,
        Err(e) => {
            out.error = Some(e.to_string());
            return out;
        }
    };
    let migrator = Migrator::new(settings, &set);
    let started = std::time::Instant::now();
    let plan = migrator.plan(probe.client()).await;
    // The ledger read is a column lookup and one SELECT.
    probe.add(2, started.elapsed());
    let plan = match plan {
        Ok(p) => p,
        Err(e) => {
            out.error = Some(e.to_string());
            return out;
        }
    };
    out.total = plan.migrations.len();
    out.counts = plan.counts.clone();
    for e in &plan.migrations {
        let t = TimelineEntry {
            id: e.id.clone(),
            state: state_name(&e.state).to_string(),
            applied_at: e.applied_at,
            execution_ms: e.execution_ms,
            error: e.error.clone(),
        };
        match e.state {
            State::Failed => out.failures.push(t.clone()),
            State::Modified { .. } => out.modified.push(t.clone()),
            State::Pending | State::RolledBack => out.pending.push(e.id.clone()),
            _ => {}
        }
        if matches!(e.state, State::Applied | State::Modified { .. }) && e.applied_at.is_some() {
            let newer = out
                .last_applied
                .as_ref()
                .is_none_or(|l| l.applied_at <= e.applied_at);
            if newer {
                out.last_applied = Some(t.clone());
            }
        }
        out.timeline.push(t);
    }
    out
}
