//! Reports and findings shared by every command that judges a database.
//!
//! Owns the [`Severity`] scale (info < warning < critical), the [`Finding`] shape that `validate`,
//! `monitor` alerts and `lint` all emit, and [`write_report`], the one place that writes a JSON
//! report under `reports/` with the spec's names (`validation-YYYY-MM-DD.json`,
//! `db-health-YYYY-MM-DD.json`, `migration-test-YYYY-MM-DD.json`, …). A report of the same day is
//! never overwritten: the next one gets `-2`, `-3`, … appended, and the file is created
//! atomically (`create_new`), so two processes writing at once never clobber each other.

use std::fs::{self, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// How bad a finding is. Ordered: `Info < Warning < Critical`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    Default,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    #[default]
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Severity {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "info" => Ok(Severity::Info),
            "warning" | "warn" => Ok(Severity::Warning),
            "critical" | "crit" => Ok(Severity::Critical),
            other => Err(format!(
                "unknown severity {other:?}: expected info, warning or critical"
            )),
        }
    }
}

/// One thing a check found. `id` is a stable rule name (`fk-orphans`, `missing-fk-index`, …) so
/// CI can filter on it; `object` names what it concerns (`public.orders.user_id`); `evidence`
/// carries the numbers; `fix` is SQL when there is one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Finding {
    pub id: String,
    pub severity: Severity,
    pub object: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub evidence: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Finding {
    pub fn new(
        id: impl Into<String>,
        severity: Severity,
        object: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Finding {
            id: id.into(),
            severity,
            object: object.into(),
            message: message.into(),
            evidence: serde_json::Value::Null,
            fix: None,
        }
    }

    pub fn with_evidence(mut self, evidence: serde_json::Value) -> Self {
        self.evidence = evidence;
        self
    }

    pub fn with_fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
}

/// The worst severity among `findings`, `None` when there are none.
pub fn worst<'a>(findings: impl IntoIterator<Item = &'a Finding>) -> Option<Severity> {
    findings.into_iter().map(|f| f.severity).max()
}

/// Counts per severity, for summaries.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct SeverityCounts {
    pub critical: usize,
    pub warning: usize,
    pub info: usize,
}

impl SeverityCounts {
    pub fn of<'a>(findings: impl IntoIterator<Item = &'a Finding>) -> Self {
        let mut c = SeverityCounts::default();
        for f in findings {
            match f.severity {
                Severity::Critical => c.critical += 1,
                Severity::Warning => c.warning += 1,
                Severity::Info => c.info += 1,
            }
        }
        c
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot create the reports directory {}: {source}; point PGKEEL_REPORTS_DIR (or `reports-dir` in pgkeel.toml) at a writable directory, or pass --no-report", dir.display())]
    CreateDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write report {}: {source}; point PGKEEL_REPORTS_DIR (or `reports-dir` in pgkeel.toml) at a writable directory, or pass --no-report", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot serialise the report: {0}")]
    Serialize(#[from] serde_json::Error),
}

/// The file name a report of kind `stem` gets on `date` (`validation-2026-11-25.json`), with a
/// `-N` suffix for the N-th report of that day (N ≥ 2).
pub fn report_file_name(stem: &str, date: chrono::NaiveDate, nth: u32) -> String {
    if nth <= 1 {
        format!("{stem}-{}.json", date.format("%Y-%m-%d"))
    } else {
        format!("{stem}-{}-{nth}.json", date.format("%Y-%m-%d"))
    }
}

/// Writes `value` as pretty JSON to `dir/<stem>-YYYY-MM-DD.json` (today, UTC), never overwriting
/// an existing report: the first free of `…-2.json`, `…-3.json`, … is used instead. Returns the
/// path written.
pub fn write_report<T: Serialize + ?Sized>(
    dir: &Path,
    stem: &str,
    value: &T,
) -> Result<PathBuf, ReportError> {
    write_report_on(dir, stem, chrono::Utc::now().date_naive(), value)
}

/// [`write_report`] for a given date (tests, and reports named after the run's start).
pub fn write_report_on<T: Serialize + ?Sized>(
    dir: &Path,
    stem: &str,
    date: chrono::NaiveDate,
    value: &T,
) -> Result<PathBuf, ReportError> {
    write_report_named(dir, &format!("{stem}-{}", date.format("%Y-%m-%d")), value)
}

/// Writes `value` to `dir/<name>.json` (e.g. `deploy-2026-11-25-143000`), with `-2`, `-3`, …
/// appended when that file exists; never overwrites. Returns the path written.
pub fn write_report_named<T: Serialize + ?Sized>(
    dir: &Path,
    name: &str,
    value: &T,
) -> Result<PathBuf, ReportError> {
    let body = serde_json::to_vec_pretty(value)?;
    fs::create_dir_all(dir).map_err(|source| ReportError::CreateDir {
        dir: dir.to_path_buf(),
        source,
    })?;
    let mut nth = 1;
    loop {
        let file = if nth == 1 {
            format!("{name}.json")
        } else {
            format!("{name}-{nth}.json")
        };
        let path = dir.join(file);
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(f) => {
                let mut out = BufWriter::new(f);
                out.write_all(&body)
                    .and_then(|()| out.write_all(b"\n"))
                    .and_then(|()| out.flush())
                    .map_err(|source| ReportError::Write {
                        path: path.clone(),
                        source,
                    })?;
                return Ok(path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => nth += 1,
            Err(source) => return Err(ReportError::Write { path, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_orders_and_parses() {
        assert!(Severity::Info < Severity::Warning && Severity::Warning < Severity::Critical);
        assert_eq!("WARN".parse::<Severity>().unwrap(), Severity::Warning);
        assert!("fatal".parse::<Severity>().is_err());
        assert_eq!(
            serde_json::to_string(&Severity::Critical).unwrap(),
            "\"critical\""
        );
    }

    #[test]
    fn worst_and_counts() {
        let f = [
            Finding::new("a", Severity::Info, "x", "m"),
            Finding::new("b", Severity::Critical, "y", "m"),
            Finding::new("c", Severity::Info, "z", "m"),
        ];
        assert_eq!(worst(&f), Some(Severity::Critical));
        assert_eq!(worst(&[]), None);
        let c = SeverityCounts::of(&f);
        assert_eq!((c.critical, c.warning, c.info), (1, 0, 2));
    }

    #[test]
    fn same_day_reports_get_suffixes_and_never_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
        let reports = dir.path().join("reports");
        let a = write_report_on(&reports, "validation", day, &serde_json::json!({"n": 1})).unwrap();
        let b = write_report_on(&reports, "validation", day, &serde_json::json!({"n": 2})).unwrap();
        let c = write_report_on(&reports, "validation", day, &serde_json::json!({"n": 3})).unwrap();
        assert_eq!(a.file_name().unwrap(), "validation-2026-11-25.json");
        assert_eq!(b.file_name().unwrap(), "validation-2026-11-25-2.json");
        assert_eq!(c.file_name().unwrap(), "validation-2026-11-25-3.json");
        let first: serde_json::Value = serde_json::from_slice(&std::fs::read(&a).unwrap()).unwrap();
        assert_eq!(first["n"], 1);
    }

    #[test]
    fn finding_json_omits_empty_parts() {
        let f = Finding::new(
            "no-pk",
            Severity::Warning,
            "public.t",
            "table has no primary key",
        );
        let v = serde_json::to_value(&f).unwrap();
        assert!(v.get("fix").is_none() && v.get("evidence").is_none());
        let f = f
            .with_fix("ALTER TABLE …")
            .with_evidence(serde_json::json!({"rows": 3}));
        let v = serde_json::to_value(&f).unwrap();
        assert_eq!(v["fix"], "ALTER TABLE …");
        assert_eq!(v["evidence"]["rows"], 3);
    }
}
