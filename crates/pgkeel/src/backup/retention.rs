//! Retention: which backups `pgkeel backup cleanup` deletes. Older than the retention period
//! goes, except the newest valid full backup (always kept, whatever its age) and every base an
//! incremental that stays depends on. Incomplete directories older than the period go too (a
//! running backup is never that old); damaged ones are reported and kept for a person to look at.

use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::bucket::Bucket;
use super::catalog::{list, BackupStatus, BackupSummary};
use super::manifest::Kind;
use super::{io_err, BackupError};

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Decision {
    pub name: String,
    pub delete: bool,
    pub reason: String,
    pub stored_bytes: u64,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct CleanupPlan {
    pub retention_days: u32,
    pub decisions: Vec<Decision>,
    pub dry_run: bool,
    pub freed_bytes: u64,
}

/// Decides for every backup in `backups` (as [`list`] returns them).
pub fn plan(backups: &[BackupSummary], now: DateTime<Utc>, retention_days: u32) -> Vec<Decision> {
    let cutoff = now - Duration::days(i64::from(retention_days));
    // The newest valid full backup of each database (backups that do not name theirs count as
    // one database).
    let mut newest_full: std::collections::HashMap<String, (Option<DateTime<Utc>>, String)> =
        std::collections::HashMap::new();
    for b in backups
        .iter()
        .filter(|b| b.is_valid() && b.kind == Some(Kind::Full))
    {
        let key = b.source.as_ref().map(|s| s.to_string()).unwrap_or_default();
        let newer = newest_full
            .get(&key)
            .is_none_or(|(at, _)| b.created_at >= *at);
        if newer {
            newest_full.insert(key, (b.created_at, b.name.clone()));
        }
    }
    let is_newest_full = |b: &BackupSummary| newest_full.values().any(|(_, n)| *n == b.name);
    let old = |b: &BackupSummary| b.created_at.is_some_and(|t| t < cutoff);
    // Bases of incrementals that are kept.
    let kept_bases: Vec<String> = backups
        .iter()
        .filter(|b| b.is_valid() && !old(b))
        .filter_map(|b| b.base.clone())
        .collect();
    backups
        .iter()
        .map(|b| {
            let (delete, reason) = if is_newest_full(b) {
                (
                    false,
                    "newest valid full backup of its database: always kept".to_string(),
                )
            } else if kept_bases.contains(&b.name) {
                (false, "base of an incremental that is kept".to_string())
            } else if let BackupStatus::Damaged(why) = &b.status {
                (false, format!("damaged, kept for inspection: {why}"))
            } else if old(b) {
                (true, format!("older than {retention_days} days"))
            } else {
                (false, format!("within {retention_days} days"))
            };
            Decision {
                name: b.name.clone(),
                delete,
                reason,
                stored_bytes: b.stored_bytes,
            }
        })
        .collect()
}

/// Deletes (unless `dry_run`) what [`plan`] says in `dir` (a local directory or a bucket).
pub async fn cleanup(
    dir: &Path,
    retention_days: u32,
    dry_run: bool,
    now: DateTime<Utc>,
) -> Result<CleanupPlan, BackupError> {
    let bucket = Bucket::open(dir)?;
    let backups = list(dir).await?;
    let decisions = plan(&backups, now, retention_days);
    let mut freed = 0;
    for d in decisions.iter().filter(|d| d.delete) {
        freed += d.stored_bytes;
        if dry_run {
            continue;
        }
        match &bucket {
            Some(b) => b.delete(&d.name).await?,
            None => {
                let p = dir.join(&d.name);
                std::fs::remove_dir_all(&p).map_err(io_err(&p))?;
            }
        }
    }
    Ok(CleanupPlan {
        retention_days,
        decisions,
        dry_run,
        freed_bytes: freed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::manifest::SourceDb;

    fn b(
        name: &str,
        days_ago: i64,
        kind: Kind,
        base: Option<&str>,
        now: DateTime<Utc>,
    ) -> BackupSummary {
        BackupSummary {
            name: name.into(),
            path: name.into(),
            status: BackupStatus::Valid,
            kind: Some(kind),
            created_at: Some(now - Duration::days(days_ago)),
            stored_bytes: 10,
            raw_bytes: 20,
            tables: 1,
            encrypted: false,
            base: base.map(str::to_string),
            source: None,
        }
    }

    fn of(mut b: BackupSummary, db: &str) -> BackupSummary {
        b.source = Some(SourceDb {
            system_identifier: Some("7300000000000000001".into()),
            name: db.into(),
            oid: 16384,
        });
        b
    }

    /// The newest valid full backup used to be kept across databases: a staging backup taken
    /// after production's let production's only full backup expire.
    #[test]
    fn the_newest_full_of_each_database_is_kept() {
        let now = Utc::now();
        let all = vec![
            of(b("prod-full", 40, Kind::Full, None, now), "prod"),
            of(b("staging-full", 35, Kind::Full, None, now), "staging"),
        ];
        assert!(plan(&all, now, 30).iter().all(|d| !d.delete));
    }

    #[test]
    fn keeps_the_newest_full_and_bases_of_kept_incrementals() {
        let now = Utc::now();
        let mut incomplete = b("partial", 40, Kind::Full, None, now);
        incomplete.status = BackupStatus::Incomplete;
        incomplete.kind = None;
        let mut damaged = b("damaged", 40, Kind::Full, None, now);
        damaged.status = BackupStatus::Damaged("bad hash".into());
        let all = vec![
            b("full-old", 60, Kind::Full, None, now),
            b("full-base", 45, Kind::Full, None, now),
            b("inc-old", 44, Kind::Incremental, Some("full-old"), now),
            b("inc-recent", 2, Kind::Incremental, Some("full-base"), now),
            incomplete,
            damaged,
        ];
        let d = plan(&all, now, 30);
        let deleted: Vec<&str> = d
            .iter()
            .filter(|d| d.delete)
            .map(|d| d.name.as_str())
            .collect();
        // full-base is both the newest full and a kept incremental's base.
        assert_eq!(deleted, ["full-old", "inc-old", "partial"]);

        // With a recent full, an old full that no kept incremental needs goes.
        let mut all2 = all.clone();
        all2.push(b("full-new", 1, Kind::Full, None, now));
        let d = plan(&all2, now, 30);
        let kept: Vec<&str> = d
            .iter()
            .filter(|d| !d.delete)
            .map(|d| d.name.as_str())
            .collect();
        assert_eq!(kept, ["full-base", "inc-recent", "damaged", "full-new"]);

        // Nothing is too old: nothing goes, whatever the kinds.
        assert!(plan(&all, now, 365).iter().all(|d| !d.delete));
    }
}
