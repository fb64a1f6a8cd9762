//! A run's parsed statements and generated inverses, per migration, computed once and owned by
//! the run (not by `source::Migration`).

use super::*;

/// Parses every statement of `m` with PostgreSQL's parser; a syntax error becomes
/// `file:line:column` with the line and a caret.
pub fn parse(m: &Migration) -> Result<Vec<Statement>, MigrateError> {
    let mut out = Vec::new();
    for chunk in m.chunks() {
        let stmts = sql::split(chunk.text, chunk.offset).map_err(|e| MigrateError::Syntax {
            id: m.id.clone(),
            message: e.message,
            location: Location::in_file(&m.path, &m.sql, e.offset),
        })?;
        out.extend(stmts);
    }
    let wrapping = if m.layout.splits_on_breakpoints() {
        sql::Wrapping::Outer
    } else {
        sql::Wrapping::None
    };
    let out =
        sql::transaction_blocks(out, wrapping).map_err(|e| MigrateError::TransactionControl {
            id: m.id.clone(),
            statement: first_line(&e.statement),
            problem: e.problem,
            location: Location::in_file(&m.path, &m.sql, e.offset),
        })?;
    Ok(out)
}

/// What a run works out from its migrations' text once and keeps, for runs that apply the
/// same migration several times (the test suite applies, rolls back and re-applies each one
/// with one [`Migrator`]): each migration's statements ([`parse`]) and its parse-tree rollback
/// for a catalog with nothing to restore. Owned by the run, by folder position; a migration
/// that is not the set's own (same position, another value) is worked out again.
#[derive(Debug)]
pub struct Prepared<'a> {
    set: &'a MigrationSet,
    statements: Vec<std::sync::OnceLock<Vec<Statement>>>,
    rollback: Vec<std::sync::OnceLock<crate::invert::Generated>>,
}

impl<'a> Prepared<'a> {
    pub fn for_set(set: &'a MigrationSet) -> Self {
        let n = set.migrations.len();
        Prepared {
            set,
            statements: (0..n).map(|_| std::sync::OnceLock::new()).collect(),
            rollback: (0..n).map(|_| std::sync::OnceLock::new()).collect(),
        }
    }

    /// The slot of `m` when it is the set's own migration.
    pub(super) fn slot(&self, m: &Migration) -> Option<usize> {
        self.set
            .migrations
            .get(m.index)
            .is_some_and(|own| std::ptr::eq(own, m))
            .then_some(m.index)
    }

    /// [`parse`], once per migration.
    pub fn statements(&self, m: &Migration) -> Result<Vec<Statement>, MigrateError> {
        let Some(i) = self.slot(m) else {
            return parse(m);
        };
        if let Some(stmts) = self.statements[i].get() {
            return Ok(stmts.clone());
        }
        let stmts = parse(m)?;
        let _ = self.statements[i].set(stmts.clone());
        Ok(stmts)
    }

    /// The parse-tree rollback of `stmts` (the statements of `m`) for an empty catalog, once
    /// per migration.
    pub(super) fn rollback(&self, m: &Migration, stmts: &[Statement]) -> crate::invert::Generated {
        let generate = || crate::invert::generate_with(stmts, &Before::default());
        match self.slot(m) {
            Some(i) => self.rollback[i].get_or_init(generate).clone(),
            None => generate(),
        }
    }
}
