//! The plan: the folder's migrations against the ledger's rows (applied, pending, failed,
//! modified, missing), and the checks of a folder and a plan before anything runs. Pure: no I/O.

use super::*;

/// What the plan says about one migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum State {
    Applied,
    Baselined,
    Pending,
    /// Tried and failed; will be retried (resumed) by the next `migrate`.
    Failed,
    RolledBack,
    /// In effect, but its file changed since.
    Modified {
        cosmetic: bool,
    },
    /// In the ledger, not on disk.
    MissingFile,
}

/// One line of `pgkeel status`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Entry {
    pub id: String,
    #[serde(flatten)]
    pub state: State,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ledger_hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied_at: Option<chrono::NaiveDateTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip)]
    pub statements_done: Option<i32>,
    #[serde(skip)]
    pub statement_hashes: Option<Vec<String>>,
    #[serde(skip)]
    pub index: Option<usize>,
}

impl State {
    /// Whether the next `migrate` runs a migration in this state (pending, failed, rolled
    /// back), and so whether a takeover or baseline may record it.
    pub fn is_runnable(&self) -> bool {
        matches!(self, State::Pending | State::Failed | State::RolledBack)
    }
}

impl Entry {
    /// Applied, and its file changed in line endings, BOM or trailing whitespace only.
    pub fn is_cosmetic(&self) -> bool {
        self.state == State::Modified { cosmetic: true }
    }

    /// The error that refuses to go on with this changed file.
    pub(super) fn modified_error(&self) -> MigrateError {
        MigrateError::Modified {
            id: self.id.clone(),
            path: self.path.clone().unwrap_or_default(),
            ledger_hash: self.ledger_hash.clone().unwrap_or_default(),
            file_hash: self.file_hash.clone().unwrap_or_default(),
            cosmetic: self.state == (State::Modified { cosmetic: true }),
        }
    }
}

/// Counts over a plan.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct Counts {
    pub applied: usize,
    pub pending: usize,
    pub failed: usize,
    pub rolled_back: usize,
    pub modified: usize,
    pub missing_file: usize,
}

impl Counts {
    /// What the next `migrate` runs: pending, failed and rolled-back migrations (the one notion
    /// of "to apply", as [`State::is_runnable`] says, shared by `status`, `migrate`, `deploy`
    /// and the production backup).
    pub fn to_apply(&self) -> usize {
        self.pending + self.failed + self.rolled_back
    }
}

/// The folder compared with the ledger.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Plan {
    pub migrations: Vec<Entry>,
    pub counts: Counts,
}

impl Plan {
    /// Migrations the next `migrate` would run, in order.
    pub fn pending<'a>(
        &'a self,
        set: &'a MigrationSet,
    ) -> impl Iterator<Item = (&'a Entry, &'a Migration)> {
        self.migrations.iter().filter_map(move |e| {
            e.state
                .is_runnable()
                .then(|| e.index.map(|i| (e, &set.migrations[i])))
                .flatten()
        })
    }

    pub fn modified(&self) -> impl Iterator<Item = &Entry> {
        self.migrations
            .iter()
            .filter(|e| matches!(e.state, State::Modified { .. }))
    }
}

/// Compares the folder with the ledger rows. Linear in the number of migrations.
pub fn plan(set: &MigrationSet, rows: &[LedgerRow]) -> Plan {
    // Built for every migrator run (three per migration in the test suite): a fast hasher.
    let by_id: rustc_hash::FxHashMap<&str, &LedgerRow> =
        rows.iter().map(|r| (r.id.as_str(), r)).collect();
    let mut counts = Counts::default();
    let mut migrations = Vec::with_capacity(set.migrations.len() + rows.len());
    for (i, m) in set.migrations.iter().enumerate() {
        let row = by_id.get(m.id.as_str()).copied();
        let state = match row {
            None => State::Pending,
            // A repeatable migration (Flyway `R__`) is applied again whenever its file changes.
            Some(r) if m.repeatable && r.hash != m.hash => State::Pending,
            Some(r) => match &r.status {
                RowStatus::Applied | RowStatus::Baselined | RowStatus::Other(_)
                    if r.hash != m.hash =>
                {
                    State::Modified {
                        cosmetic: r.normalized_hash.as_deref()
                            == Some(m.normalized_hash().as_str()),
                    }
                }
                RowStatus::Applied | RowStatus::Other(_) => State::Applied,
                RowStatus::Baselined => State::Baselined,
                RowStatus::Failed => State::Failed,
                RowStatus::RolledBack => State::RolledBack,
            },
        };
        match state {
            State::Applied | State::Baselined => counts.applied += 1,
            State::Pending => counts.pending += 1,
            State::Failed => counts.failed += 1,
            State::RolledBack => counts.rolled_back += 1,
            State::Modified { .. } => counts.modified += 1,
            State::MissingFile => {}
        }
        migrations.push(Entry {
            id: m.id.clone(),
            state,
            path: Some(m.path.clone()),
            file_hash: Some(m.hash.clone()),
            ledger_hash: row.map(|r| r.hash.clone()),
            applied_at: row.and_then(|r| r.applied_at),
            execution_ms: row.and_then(|r| r.execution_ms),
            error: row.and_then(|r| r.error.clone()),
            statements_done: row.and_then(|r| r.statements_done),
            statement_hashes: row.and_then(|r| r.statement_hashes.clone()),
            index: Some(i),
        });
    }
    let on_disk: rustc_hash::FxHashSet<&str> =
        set.migrations.iter().map(|m| m.id.as_str()).collect();
    for r in rows.iter().filter(|r| !on_disk.contains(r.id.as_str())) {
        counts.missing_file += 1;
        migrations.push(Entry {
            id: r.id.clone(),
            state: State::MissingFile,
            path: None,
            file_hash: None,
            ledger_hash: Some(r.hash.clone()),
            applied_at: r.applied_at,
            execution_ms: r.execution_ms,
            error: r.error.clone(),
            statements_done: r.statements_done,
            statement_hashes: None,
            index: None,
        });
    }
    Plan { migrations, counts }
}

/// One problem `migrate validate` found, in the folder or against the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Problem {
    /// `syntax`, `no_rollback`, `never_runs`, `modified`, `missing_file` or `failed`.
    pub kind: &'static str,
    /// Critical problems stop a deploy; warnings are reported and don't.
    pub severity: crate::report::Severity,
    /// The migration it concerns.
    pub id: String,
    pub message: String,
}

/// Checks a folder without a database: every file parses with PostgreSQL's parser, and a
/// migration whose statements destroy data (DROP TABLE/COLUMN, DELETE, UPDATE, TRUNCATE, …) has a
/// hand-written rollback file or says `-- pgkeel: irreversible` (a warning: `pgkeel rollback`
/// could not undo it otherwise).
pub fn check_folder(set: &MigrationSet) -> Vec<Problem> {
    use crate::report::Severity;
    let mut out: Vec<Problem> = set
        .warnings
        .iter()
        .map(|w| Problem {
            kind: "never_runs",
            severity: Severity::Warning,
            id: w
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            message: w.to_string(),
        })
        .collect();
    for m in &set.migrations {
        let stmts = match parse(m) {
            Ok(s) => s,
            Err(e) => {
                out.push(Problem {
                    kind: "syntax",
                    severity: Severity::Critical,
                    id: m.id.clone(),
                    message: e.to_string(),
                });
                continue;
            }
        };
        if m.has_down() || m.directives.irreversible {
            continue;
        }
        let generated = crate::invert::generate_as_applied(&stmts);
        if !generated.data_loss {
            // Rows, privileges, owners, a DO block: no inverse and no state-based rollback.
            if let Some(r) = generated.refusal() {
                let l = super::statement_place(m, &stmts, r.statement);
                out.push(Problem {
                    kind: "no_rollback",
                    severity: Severity::Warning,
                    id: m.id.clone(),
                    message: format!(
                        "{}:{}: {} — `pgkeel rollback` will refuse it; {} or \
                         mark the file `-- pgkeel:irreversible`",
                        l.path.display(),
                        l.line,
                        r.reason,
                        m.down_hint()
                    ),
                });
            }
            continue;
        }
        let first = generated
            .irreversible
            .iter()
            .find(|i| i.reason.contains("loses data"))
            .or(generated.irreversible.first());
        let what = first.map_or_else(String::new, |i| {
            let text: String = i.text.split_whitespace().collect::<Vec<_>>().join(" ");
            let short: String = text.chars().take(60).collect();
            let more = if text.chars().count() > 60 { "…" } else { "" };
            format!(" (statement {}: {short}{more})", i.statement + 1)
        });
        out.push(Problem {
            kind: "no_rollback",
            severity: Severity::Warning,
            id: m.id.clone(),
            message: format!(
                "loses data{what} and has no rollback file: `pgkeel rollback` cannot undo it; \
                 {} (restoring the data from a backup) or mark the file \
                 `-- pgkeel: irreversible`",
                m.down_hint()
            ),
        });
    }
    out
}

/// The ledger-side problems of `plan`: files changed after they were applied, applied
/// migrations whose file is gone, and migrations that failed last time.
pub fn check_plan(plan: &Plan) -> Vec<Problem> {
    use crate::report::Severity;
    let mut out = Vec::new();
    for e in &plan.migrations {
        let (kind, severity, message) = match &e.state {
            State::Modified { cosmetic } => (
                "modified",
                // A cosmetic edit changes nothing that runs: `migrate` goes on past it too.
                if *cosmetic {
                    Severity::Warning
                } else {
                    Severity::Critical
                },
                format!(
                    "applied with hash {} but the file now hashes to {}; {}",
                    e.ledger_hash.as_deref().unwrap_or("?"),
                    e.file_hash.as_deref().unwrap_or("?"),
                    if *cosmetic {
                        "cosmetic change only: `pgkeel repair` records it"
                    } else {
                        "the SQL changed: restore the file and add a new migration"
                    }
                ),
            ),
            State::MissingFile => (
                "missing_file",
                Severity::Critical,
                "recorded in the ledger but its file is not in the folder".to_string(),
            ),
            State::Failed => (
                "failed",
                Severity::Critical,
                format!(
                    "failed last time: {}",
                    e.error.as_deref().unwrap_or("no error recorded")
                ),
            ),
            _ => continue,
        };
        out.push(Problem {
            kind,
            severity,
            id: e.id.clone(),
            message,
        });
    }
    out
}
