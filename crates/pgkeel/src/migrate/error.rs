//! What can go wrong applying migrations, each with where it happened and what to do next.

use super::*;

/// Errors of planning and applying. Each says how far the run got and what to do next.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(transparent)]
    Source(#[from] source::SourceError),
    #[error(transparent)]
    Db(#[from] DbError),
    /// Another tool's ledger that cannot be adopted as it stands (dirty, or naming a migration
    /// the folder lacks).
    #[error(transparent)]
    Foreign(#[from] crate::foreign::ForeignError),
    #[error("syntax error in {id}: {message}\n{location}")]
    Syntax {
        id: String,
        message: String,
        location: Location,
    },
    #[error(
        "{id} was applied with hash {ledger_hash} but {path} now hashes to {file_hash}; {}",
        if *.cosmetic { "the change is cosmetic only (line endings, BOM or trailing whitespace): run `pgkeel repair` to record the new hash" }
        else { "the SQL itself changed: restore the file as it was applied and put the change in a new migration (`pgkeel new NAME`), or run `pgkeel repair --force` if you are sure" }
    )]
    Modified {
        id: String,
        path: PathBuf,
        ledger_hash: String,
        file_hash: String,
        cosmetic: bool,
    },
    #[error("{} applied migration(s) changed on disk: {}; run `pgkeel status` for details", .ids.len(), .ids.join(", "))]
    ModifiedMany { ids: Vec<String> },
    #[error("recorded the new hash of the cosmetic edit(s) {}; not of the rest: {source}", .repaired.join(", "))]
    PartlyRepaired {
        repaired: Vec<String>,
        source: Box<MigrateError>,
    },
    #[error("migration {id} failed{}{}: {pg}{}{}\n{}", statement_note(*.statement, *.statements), attempts_note(*.attempts), blockers_note(.blockers), location_note(.location), applied_note(.id, *.committed, *.statements, .applied_before))]
    Failed {
        id: String,
        pg: PgError,
        location: Option<Location>,
        /// 0-based index of the failing statement; `None` when it was pgkeel's own SQL.
        statement: Option<usize>,
        statements: usize,
        /// Statements of this migration committed before the failing unit (they ran outside
        /// one transaction with the rest, and stay in effect).
        committed: usize,
        attempts: u32,
        applied_before: Vec<String>,
        /// Sessions that blocked the migration while it waited for a lock.
        blockers: Vec<Blocker>,
    },
    #[error("no migration `{id}` in {dir}; `pgkeel status` lists the ids")]
    UnknownId { id: String, dir: PathBuf },
    #[error("{id}: `{statement}`: {problem}\n{location}")]
    TransactionControl {
        id: String,
        statement: String,
        problem: sql::BlockProblem,
        location: Location,
    },
    #[error(
        "--single-transaction cannot include {id}: {reason}; run without --single-transaction"
    )]
    SingleTransactionImpossible { id: String, reason: &'static str },
    #[error(
        "{id} committed {done} statement(s) before it failed, and {} has changed since{}:\n  {}\n\
         Put those statements back as they were applied (only the statements after them may change) and run `pgkeel migrate` again; \
         or, if the database already matches the edited statements, accept them with `pgkeel repair --force` (the run then resumes after statement {done}); \
         or undo them by hand, delete the migration's ledger row and run again",
        .path.display(),
        .first_changed.map(|i| format!(" (statement {} differs)", i + 1)).unwrap_or_else(|| " (the ledger has no statement hashes to compare)".into()),
        .committed.join("\n  ")
    )]
    CommittedChanged {
        id: String,
        path: PathBuf,
        /// `file:line: first line` of each committed statement, in the file as it is now.
        committed: Vec<String>,
        done: usize,
        /// 0-based index of the first committed statement that differs.
        first_changed: Option<usize>,
    },
    #[error("{id} is one drizzle-orm skipped (its `when` is older than a migration drizzle applied after it); review it, apply it by hand and record it with `pgkeel baseline --to {id}`, or re-date it")]
    HeldBack { id: String },
    #[error("interrupted before or during {id}: its transaction was rolled back and the deploy lock released; migrations before it stay applied; run `pgkeel migrate` again to continue")]
    Interrupted { id: String },
}

pub(super) fn statement_note(statement: Option<usize>, statements: usize) -> String {
    match statement {
        Some(i) if statements > 1 => format!(" at statement {} of {statements}", i + 1),
        Some(_) => String::new(),
        None => " in pgkeel's own bookkeeping around its statements".into(),
    }
}

pub(super) fn attempts_note(attempts: u32) -> String {
    if attempts > 1 {
        format!(" after {attempts} tries")
    } else {
        String::new()
    }
}

pub(super) fn blockers_note(blockers: &[Blocker]) -> String {
    if blockers.is_empty() {
        return String::new();
    }
    let list: Vec<String> = blockers
        .iter()
        .map(|b| format!("\n  blocked by {b}"))
        .collect();
    format!(
        "{}\n  (end or cancel those sessions, e.g. SELECT pg_cancel_backend(pid), or retry later)",
        list.join("")
    )
}

pub(super) fn location_note(l: &Option<Location>) -> String {
    l.as_ref().map(|l| format!("\n{l}")).unwrap_or_default()
}

pub(super) fn applied_note(
    id: &str,
    committed: usize,
    statements: usize,
    before: &[String],
) -> String {
    let this = if committed == 0 {
        "its transaction was rolled back".to_string()
    } else {
        format!(
            "statements 1–{committed} of {statements} of {id} ran before the failing transaction and stay committed; \
             the failing transaction was rolled back; `pgkeel migrate` resumes at statement {} once it is fixed",
            committed + 1
        )
    };
    match (before.is_empty(), committed) {
        (true, 0) => format!("{this}; nothing was applied in this run"),
        (true, _) => this,
        (false, _) => format!(
            "{this}; applied before it in this run: {}",
            before.join(", ")
        ),
    }
}

impl MigrateError {
    /// Validation problems (bad files, changed files) as opposed to runtime failures.
    pub fn is_validation(&self) -> bool {
        matches!(
            self,
            MigrateError::Source(_)
                | MigrateError::Syntax { .. }
                | MigrateError::Modified { .. }
                | MigrateError::ModifiedMany { .. }
                | MigrateError::PartlyRepaired { .. }
                | MigrateError::TransactionControl { .. }
                | MigrateError::SingleTransactionImpossible { .. }
                | MigrateError::CommittedChanged { .. }
        )
    }
}

impl From<crate::foreign::FindError> for MigrateError {
    fn from(e: crate::foreign::FindError) -> Self {
        match e {
            crate::foreign::FindError::Db(d) => MigrateError::Db(d),
            crate::foreign::FindError::Foreign(f) => MigrateError::Foreign(f),
        }
    }
}

impl crate::outcome::Classify for MigrateError {
    fn kind(&self) -> crate::outcome::FailureKind {
        use crate::outcome::FailureKind as K;
        match self {
            MigrateError::Db(d) => crate::outcome::Classify::kind(d),
            MigrateError::Failed { .. } => K::Migration,
            MigrateError::Interrupted { .. } => K::Interrupted,
            MigrateError::UnknownId { .. } => K::Usage,
            MigrateError::Source(_)
            | MigrateError::Syntax { .. }
            | MigrateError::Modified { .. }
            | MigrateError::ModifiedMany { .. }
            | MigrateError::PartlyRepaired { .. }
            | MigrateError::TransactionControl { .. }
            | MigrateError::SingleTransactionImpossible { .. }
            | MigrateError::CommittedChanged { .. }
            | MigrateError::Foreign(_)
            | MigrateError::HeldBack { .. } => K::Findings,
        }
    }
}
