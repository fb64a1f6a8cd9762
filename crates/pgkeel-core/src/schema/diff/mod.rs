//! Compares two snapshots and orders the changes that turn one into the other.
//!
//! [`diff`] walks both snapshots by name and emits [`Change`]s, each with its DDL, the object it
//! touches, a [`Hazard`] list and, where PostgreSQL cannot make the change safely (removing an
//! enum value, moving a column, changing a partition key), an `unsupported` reason instead of
//! SQL. Changes are put in dependency order by [`Phase`]: schemas, extensions and types before
//! tables, views dropped before the columns they read change and re-created after, keys before
//! the foreign keys that reference them, drops of types and schemas last. Renames are not
//! guessed: a renamed object shows as a drop plus a create (the drop carries `deletes_data`).
//! This module renders whole statements with [`super::ddl`]; it never talks to a server.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::ident::{qualified, quote_ident, quote_literal};

use super::ddl;
use super::model::*;

mod functions;
mod indexes;
mod schemas;
mod sequences;
mod table_parts;
mod tables;
mod types;
mod views;

use functions::*;
use indexes::*;
use schemas::*;
use sequences::*;
use table_parts::*;
use tables::*;
use types::*;
use views::*;

/// What a change may do to a running application.
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
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Hazard {
    /// Takes an ACCESS EXCLUSIVE lock: blocks reads and writes of the table while it runs.
    AccessExclusiveLock,
    /// Rewrites every row of the table (time and disk proportional to its size).
    RewritesTable,
    /// Reads the whole table (validation, index build).
    ScansTable,
    /// Data is lost (dropped table or column, a type conversion that may truncate).
    DeletesData,
    /// Cannot run inside a transaction block, or its result cannot be used in the same one.
    NonTransactional,
}

impl Hazard {
    pub fn as_str(self) -> &'static str {
        match self {
            Hazard::AccessExclusiveLock => "access_exclusive_lock",
            Hazard::RewritesTable => "rewrites_table",
            Hazard::ScansTable => "scans_table",
            Hazard::DeletesData => "deletes_data",
            Hazard::NonTransactional => "non_transactional",
        }
    }
}

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
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    Schema,
    Extension,
    Type,
    Sequence,
    Table,
    Column,
    Constraint,
    Index,
    Trigger,
    Policy,
    View,
    MaterializedView,
    Function,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Drop,
    Alter,
    /// Dropped and created again (a changed index, constraint, view, …).
    Replace,
    Comment,
}

/// Where in the script a change goes. Declaration order is execution order.
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
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    CreateSchema,
    CreateExtension,
    DropView,
    DropTrigger,
    DropForeignKey,
    DropConstraint,
    AlterType,
    CreateFunction,
    CreateSequence,
    AlterTable,
    DropTable,
    AlterSequence,
    AddConstraint,
    AddForeignKey,
    CreateIndex,
    CreateView,
    CreateLateFunction,
    CreateTrigger,
    Comment,
    DropFunction,
    DropSequence,
    DropType,
    DropExtension,
    DropSchema,
}

/// One step of a diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Change {
    pub kind: ObjectKind,
    /// The object, e.g. `public.users.email`.
    pub object: String,
    /// The top-level object it belongs to (its table for a column), for grouping.
    pub owner: String,
    pub action: Action,
    pub phase: Phase,
    /// The statements; `None` when the change is unsupported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
    pub hazards: Vec<Hazard>,
    /// Why pgkeel will not write SQL for this change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unsupported: Option<String>,
    /// Something a reviewer should know (a possible rename, a NOT NULL column on a full table).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// How the reason of an unsupported change that is only a column order begins: PostgreSQL only
/// appends columns, so a table whose columns are the same in another order cannot be altered
/// into the wanted one ([`Change::is_column_order`]).
pub const COLUMN_ORDER: &str = "column order differs";

impl Change {
    /// The change is only that a table's columns are in another order (nothing else differs in
    /// it): the test suite reports this as a warning, not as a broken rollback.
    pub fn is_column_order(&self) -> bool {
        self.unsupported
            .as_deref()
            .is_some_and(|why| why.starts_with(COLUMN_ORDER))
    }
}

/// The ordered changes from one snapshot to another.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Diff {
    pub changes: Vec<Change>,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The changes pgkeel cannot express as SQL.
    pub fn unsupported(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| c.unsupported.is_some())
    }

    /// Every hazard of every change, once.
    pub fn hazards(&self) -> BTreeSet<Hazard> {
        self.changes
            .iter()
            .flat_map(|c| c.hazards.iter().copied())
            .collect()
    }

    /// The statements of every supported change, in order.
    pub fn statements(&self) -> impl Iterator<Item = &str> {
        self.changes.iter().filter_map(|c| c.sql.as_deref())
    }

    /// The script: every statement in order; unsupported changes appear as `-- UNSUPPORTED`
    /// comments so the script never silently does less than the diff says.
    pub fn to_sql(&self) -> String {
        let mut out = String::new();
        for c in &self.changes {
            match (&c.sql, &c.unsupported) {
                (Some(sql), _) => {
                    out.push_str(sql);
                    out.push('\n');
                }
                (None, Some(why)) => {
                    out.push_str(&format!("-- UNSUPPORTED {}: {why}\n", c.object));
                }
                (None, None) => {}
            }
        }
        out
    }
}

struct Builder {
    changes: Vec<Change>,
}

#[derive(Default)]
struct Extra {
    hazards: Vec<Hazard>,
    note: Option<String>,
}

impl Builder {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        phase: Phase,
        kind: ObjectKind,
        object: String,
        owner: String,
        action: Action,
        sql: String,
        extra: Extra,
    ) {
        let mut hazards = extra.hazards;
        hazards.sort();
        hazards.dedup();
        self.changes.push(Change {
            kind,
            object,
            owner,
            action,
            phase,
            sql: Some(sql),
            hazards,
            unsupported: None,
            note: extra.note,
        });
    }

    fn unsupported(
        &mut self,
        phase: Phase,
        kind: ObjectKind,
        object: String,
        owner: String,
        why: String,
    ) {
        self.changes.push(Change {
            kind,
            object,
            owner,
            action: Action::Alter,
            phase,
            sql: None,
            hazards: Vec::new(),
            unsupported: Some(why),
            note: None,
        });
    }
}

fn h(hazards: &[Hazard]) -> Extra {
    Extra {
        hazards: hazards.to_vec(),
        note: None,
    }
}

fn none() -> Extra {
    Extra::default()
}

use Hazard::*;

/// The changes that turn `from` into `to`, in an order PostgreSQL accepts.
pub fn diff(from: &Snapshot, to: &Snapshot) -> Diff {
    let mut b = Builder {
        changes: Vec::new(),
    };
    diff_schemas(&mut b, from, to);
    diff_extensions(&mut b, from, to);
    diff_types(&mut b, from, to);
    diff_sequences(&mut b, from, to);
    let altered = diff_tables(&mut b, from, to);
    diff_views(&mut b, from, to, &altered);
    diff_functions(&mut b, from, to);
    let mut changes = b.changes;
    changes.sort_by_key(|c| c.phase);
    Diff { changes }
}

fn by_key<T, K: Ord>(items: &[T], key: impl Fn(&T) -> K) -> BTreeMap<K, &T> {
    items.iter().map(|i| (key(i), i)).collect()
}

fn comment_change(
    b: &mut Builder,
    kind: ObjectKind,
    object: String,
    owner: String,
    target: String,
    from: Option<&str>,
    to: Option<&str>,
) {
    if from != to {
        b.push(
            Phase::Comment,
            kind,
            object,
            owner,
            Action::Comment,
            ddl::comment(&target, to),
            none(),
        );
    }
}

// ---------------------------------------------------------------- schemas, extensions

// ---------------------------------------------------------------- types

// ---------------------------------------------------------------- sequences

// ---------------------------------------------------------------- tables

// ---------------------------------------------------------------- views

// ---------------------------------------------------------------- functions

#[cfg(test)]
mod tests;
