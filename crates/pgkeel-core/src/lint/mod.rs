//! `pgkeel lint`: rules over PostgreSQL's parse tree that catch migrations which lock, rewrite
//! or break a live database.
//!
//! [`RULES`] is the catalogue (id, severity, why, the safe alternative; `docs/lint-rules.md`
//! documents the same list and a test keeps the two in step). [`lint_file`] parses a file with
//! the real parser (`pg_query`, via [`crate::sql::split`]), walks every statement with the
//! rules in [`rules`], and applies suppressions:
//!
//! - `-- pgkeel:ignore RULE reason` on the line(s) before a statement silences RULE for it;
//! - `-- pgkeel:ignore-file RULE reason` anywhere silences RULE for the whole file;
//! - an unknown rule id in a suppression is itself an error (`unknown-rule`), and a suppression
//!   that silenced nothing is reported (`unused-suppression`).
//!
//! Rules know the target server version ([`LintOptions::pg_version`]); tables created earlier
//! in the same file are exempt from the "existing table" rules. This module renders nothing.

mod rules;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::location::Location;
use crate::report::Severity;

/// One lint rule: its id, how bad, why, and what to do instead.
#[derive(Debug, Clone, Copy, Serialize, schemars::JsonSchema)]
pub struct Rule {
    pub id: &'static str,
    pub severity: Severity,
    /// What the rule catches and why it hurts, one sentence.
    pub why: &'static str,
    /// The safe way to get the same result.
    pub help: &'static str,
}

/// Every rule pgkeel knows, in documentation order.
pub const RULES: &[Rule] = rules::RULES;

/// Looks a rule up by id.
pub fn rule(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.id == id)
}

/// What the rules need to know beyond the file.
#[derive(Debug, Clone, Copy)]
pub struct LintOptions {
    /// `server_version_num` of the target (e.g. 150004); default: the newest supported.
    pub pg_version: u32,
    /// Whether pgkeel's own `lock_timeout` is off (then a file that takes strong locks must set
    /// one itself).
    pub lock_timeout_disabled: bool,
    /// The file is a rollback (`.down.sql`): dropping what the migration created is its job,
    /// so the drop-table / drop-column rules stay quiet.
    pub rollback_file: bool,
    /// The file is a migration with no down file and no `-- pgkeel:irreversible`: the
    /// `no-rollback` rule says when pgkeel cannot undo it either.
    pub needs_rollback: bool,
}

impl Default for LintOptions {
    fn default() -> Self {
        LintOptions {
            pg_version: 170000,
            lock_timeout_disabled: false,
            rollback_file: false,
            needs_rollback: false,
        }
    }
}

/// A rule broken at a place in a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Violation {
    pub rule: &'static str,
    pub severity: Severity,
    /// File, 1-based line and column of the offending token (or of the statement), and the
    /// line's text; its `Display` is rustc-style.
    #[serde(flatten)]
    pub location: Location,
    /// Byte offset in the file.
    #[serde(skip)]
    pub offset: usize,
    pub message: String,
    pub help: &'static str,
}

/// The outcome of linting one file.
#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
pub struct FileReport {
    pub path: PathBuf,
    pub statements: usize,
    pub violations: Vec<Violation>,
    /// The file does not parse: the parser's message and where (no rules ran).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub syntax_error: Option<String>,
}

/// Lints `text`, the content of `path`. `no_transaction`: the file runs outside a transaction
/// (its `-- pgkeel: no-transaction` directive).
pub fn lint_file(path: &Path, text: &str, no_transaction: bool, opts: &LintOptions) -> FileReport {
    let mut report = FileReport {
        path: path.to_path_buf(),
        ..FileReport::default()
    };
    let stmts = match crate::sql::split(text, 0) {
        Ok(s) => s,
        Err(e) => {
            let (line, col) = crate::location::line_col(text, e.offset);
            report.syntax_error = Some(format!("{}:{line}:{col}: {}", path.display(), e.message));
            return report;
        }
    };
    report.statements = stmts.len();
    let found = rules::check(&stmts, no_transaction, opts);
    let (mut suppressions, mut violations) = suppressions(path, text);
    for f in found {
        let code_start = stmts[f.statement].offset;
        let silenced = suppressions
            .iter_mut()
            .find(|s| s.rule == f.rule && (s.whole_file || s.applies_to(code_start, &stmts)));
        if let Some(s) = silenced {
            s.used = true;
            continue;
        }
        let rule = rule(f.rule).expect("rules only report catalogued ids");
        let offset = code_start + f.at;
        violations.push(Violation {
            rule: rule.id,
            severity: rule.severity,
            location: Location::in_file(path, text, offset),
            offset,
            message: f.message,
            help: rule.help,
        });
    }
    for s in suppressions
        .iter()
        .filter(|s| !s.used && rule(&s.rule).is_some())
    {
        violations.push(Violation {
            rule: "unused-suppression",
            severity: Severity::Warning,
            location: Location::in_file(path, text, s.offset),
            offset: s.offset,
            message: format!("this suppression of {} silences nothing", s.rule),
            help: rule("unused-suppression").map_or("", |r| r.help),
        });
    }
    violations.sort_by_key(|v| (v.offset, v.rule));
    report.violations = violations;
    report
}

#[derive(Debug)]
struct Suppression {
    rule: String,
    whole_file: bool,
    /// Byte offset of the comment.
    offset: usize,
    used: bool,
}

impl Suppression {
    /// A line suppression applies to the first statement that starts after it.
    fn applies_to(&self, code_start: usize, stmts: &[crate::sql::Statement]) -> bool {
        stmts
            .iter()
            .find(|s| s.offset > self.offset)
            .is_some_and(|s| s.offset == code_start)
    }
}

/// Reads the `-- pgkeel:ignore` / `ignore-file` comments; unknown rule ids and missing reasons
/// come back as violations.
fn suppressions(path: &Path, text: &str) -> (Vec<Suppression>, Vec<Violation>) {
    let mut out = Vec::new();
    let mut bad = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let trimmed = line.trim();
        let Some(rest) = trimmed
            .strip_prefix("--")
            .map(str::trim_start)
            .and_then(|c| c.strip_prefix("pgkeel:"))
        else {
            continue;
        };
        let rest = rest.trim();
        let (kind, args) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        let whole_file = match kind {
            "ignore" => false,
            "ignore-file" => true,
            _ => continue,
        };
        let at = start + (line.len() - line.trim_start().len());
        let mut words = args.split_whitespace();
        let id = words.next().unwrap_or("");
        if rule(id).is_none() || id.is_empty() {
            bad.push(Violation {
                rule: "unknown-rule",
                severity: Severity::Critical,
                location: Location::in_file(path, text, at),
                offset: at,
                message: if id.is_empty() {
                    format!("`-- pgkeel:{kind}` names no rule")
                } else {
                    format!("`-- pgkeel:{kind} {id}`: there is no lint rule {id}")
                },
                help: rule("unknown-rule").map_or("", |r| r.help),
            });
            continue;
        }
        if words.next().is_none() {
            bad.push(Violation {
                rule: "unknown-rule",
                severity: Severity::Critical,
                location: Location::in_file(path, text, at),
                offset: at,
                message: format!("`-- pgkeel:{kind} {id}` gives no reason"),
                help: "say why, so the next reader knows: `-- pgkeel:ignore RULE the table is empty in every environment`",
            });
        }
        out.push(Suppression {
            rule: id.to_string(),
            whole_file,
            offset: at,
            used: false,
        });
    }
    (out, bad)
}

/// Lints every migration of a folder (and its rollback file), with each file's directives:
/// `no-transaction` makes its statements non-transactional, `lock-timeout` counts as a
/// lock_timeout in force.
pub fn lint_set(set: &crate::source::MigrationSet, opts: &LintOptions) -> Vec<FileReport> {
    let mut out = Vec::with_capacity(set.migrations.len());
    for m in &set.migrations {
        let file_opts = LintOptions {
            lock_timeout_disabled: opts.lock_timeout_disabled
                && m.directives
                    .lock_timeout
                    .is_none_or(|t| t.as_duration().is_zero()),
            needs_rollback: m.down.is_none() && !m.directives.irreversible,
            ..*opts
        };
        out.push(lint_file(
            &m.path,
            &m.sql,
            m.directives.no_transaction,
            &file_opts,
        ));
        if let Some(d) = &m.down {
            let down_opts = LintOptions {
                rollback_file: true,
                needs_rollback: false,
                ..file_opts
            };
            out.push(lint_file(
                &d.path,
                &d.sql,
                d.directives.no_transaction,
                &down_opts,
            ));
        }
    }
    out
}

/// Lints one file given by path, reading its directives like the migration folder would.
pub fn lint_path(
    path: &Path,
    opts: &LintOptions,
) -> Result<FileReport, crate::source::SourceError> {
    let bytes = std::fs::read(path).map_err(|error| crate::source::SourceError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let d = crate::source::directives_of(path, &text)?;
    let file_opts = LintOptions {
        lock_timeout_disabled: opts.lock_timeout_disabled
            && d.lock_timeout.is_none_or(|t| t.as_duration().is_zero()),
        rollback_file: opts.rollback_file || path.to_string_lossy().ends_with(".down.sql"),
        ..*opts
    };
    Ok(lint_file(path, &text, d.no_transaction, &file_opts))
}

/// Whether `v` should fail a run at `fail_on`.
pub fn fails(violations: &[Violation], fail_on: Severity) -> bool {
    violations.iter().any(|v| v.severity >= fail_on)
}

/// The label a severity gets in lint output (`error` for critical).
pub fn label(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "error",
        Severity::Warning => "warning",
        Severity::Info => "info",
    }
}

#[cfg(test)]
mod tests;
