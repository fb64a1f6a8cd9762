//! Samples kept over time so growth per day can be computed and the dashboard can chart size
//! and connections: one row per sample in `<ledger schema>.__pgkeel_monitor_history`, written
//! and read back in a single statement (a data-modifying CTE), pruned after 90 days. When the
//! table can't be created or written (read-only role, standby) the section says why and the
//! rest of the report is unaffected.

use serde::Serialize;

use super::probe::Probe;
use crate::config::Settings;
use crate::db::DbError;
use crate::ident::qualified;

/// The history table's name (in the ledger's schema).
pub const TABLE: &str = crate::config::MONITOR_HISTORY_TABLE;

/// One sample.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Sample {
    pub at: chrono::DateTime<chrono::Utc>,
    pub database_size_bytes: i64,
    pub connections: i32,
}

/// Database size growth computed from the samples.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Growth {
    pub bytes_per_day: f64,
    pub percent_per_day: f64,
    /// The sample the growth is measured from.
    pub since: chrono::DateTime<chrono::Utc>,
}

/// The history section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, schemars::JsonSchema)]
pub struct History {
    pub table: String,
    /// False when samples can't be kept; `reason` says why.
    pub kept: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `None` until samples span at least an hour.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub growth: Option<Growth>,
    /// Up to the last 500 samples of the last 30 days, oldest first.
    pub samples: Vec<Sample>,
}

/// What is being recorded now.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub database_size_bytes: i64,
    pub connections: i32,
    pub xact_commit: i64,
    pub xact_rollback: i64,
}

fn table_sql(settings: &Settings) -> String {
    qualified(&settings.ledger_schema, TABLE)
}

/// Records `now` (when `record`) and reads the samples back. One statement once the table
/// exists; the first run creates it.
pub async fn record_and_read(
    probe: &Probe<'_>,
    settings: &Settings,
    now: Now,
    record: bool,
) -> History {
    let table = table_sql(settings);
    let mut out = History {
        table: table.clone(),
        ..History::default()
    };
    let mut res = read(probe, &table, now, record).await;
    if matches!(&res, Err(e) if e.pg().is_some_and(|p| p.code == "42P01")) {
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {table} (
               at timestamptz NOT NULL DEFAULT now(),
               database_size_bytes bigint NOT NULL,
               connections integer NOT NULL,
               xact_commit bigint,
               xact_rollback bigint)"
        );
        res = match probe
            .query("creating the monitor history table", &create, &[])
            .await
        {
            Ok(_) => read(probe, &table, now, record).await,
            Err(e) => Err(e),
        };
    }
    match res {
        Ok(samples) => {
            out.kept = true;
            out.growth = growth(&samples);
            out.samples = samples;
        }
        Err(e) => {
            out.reason = Some(format!(
                "{e}; growth per day needs this table (grant CREATE on schema {} or create it as its owner)",
                settings.ledger_schema
            ))
        }
    }
    out
}

async fn read(
    probe: &Probe<'_>,
    table: &str,
    now: Now,
    record: bool,
) -> Result<Vec<Sample>, DbError> {
    let sql = format!(
        "WITH ins AS (
           INSERT INTO {table} (database_size_bytes, connections, xact_commit, xact_rollback)
           SELECT $1, $2, $3, $4 WHERE $5
           RETURNING at, database_size_bytes, connections),
         prune AS (DELETE FROM {table} WHERE $5 AND at < now() - interval '90 days')
         SELECT at, database_size_bytes, connections FROM (
           SELECT at, database_size_bytes, connections FROM {table}
            WHERE at > now() - interval '30 days'
           UNION ALL SELECT at, database_size_bytes, connections FROM ins
           ORDER BY at DESC LIMIT 500) s
         ORDER BY at"
    );
    let rows = probe
        .query(
            "recording monitor history",
            &sql,
            &[
                &now.database_size_bytes,
                &now.connections,
                &now.xact_commit,
                &now.xact_rollback,
                &record,
            ],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Sample {
            at: r.get(0),
            database_size_bytes: r.get(1),
            connections: r.get(2),
        })
        .collect())
}

/// Growth from the oldest sample of the last 7 days to the newest, once they span an hour.
pub fn growth(samples: &[Sample]) -> Option<Growth> {
    let last = samples.last()?;
    let week_ago = last.at - chrono::Duration::days(7);
    let first = samples.iter().find(|s| s.at >= week_ago)?;
    let span = (last.at - first.at).num_seconds() as f64;
    if span < 3600.0 {
        return None;
    }
    let days = span / 86_400.0;
    let bytes_per_day = (last.database_size_bytes - first.database_size_bytes) as f64 / days;
    let percent_per_day = if first.database_size_bytes > 0 {
        bytes_per_day * 100.0 / first.database_size_bytes as f64
    } else {
        0.0
    };
    Some(Growth {
        bytes_per_day: bytes_per_day.round(),
        percent_per_day: (percent_per_day * 100.0).round() / 100.0,
        since: first.at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(hours: i64, size: i64) -> Sample {
        Sample {
            at: chrono::DateTime::from_timestamp(1_700_000_000 + hours * 3600, 0).unwrap(),
            database_size_bytes: size,
            connections: 1,
        }
    }

    #[test]
    fn growth_needs_an_hour_and_uses_the_last_week() {
        assert_eq!(growth(&[s(0, 100), s(0, 200)]), None);
        let g = growth(&[s(0, 1000), s(24, 1100)]).unwrap();
        assert_eq!(g.bytes_per_day, 100.0);
        assert_eq!(g.percent_per_day, 10.0);
        // A sample older than a week is not the base.
        let g = growth(&[s(-24 * 30, 1), s(0, 1000), s(12, 1050)]).unwrap();
        assert_eq!(g.bytes_per_day, 100.0);
    }
}
