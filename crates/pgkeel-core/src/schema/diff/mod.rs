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

/// What a change may do to a running application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// The ordered changes from one snapshot to another.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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

fn diff_schemas(b: &mut Builder, from: &Snapshot, to: &Snapshot) {
    let f = by_key(&from.schemas, |s| s.name.clone());
    let t = by_key(&to.schemas, |s| s.name.clone());
    for (name, s) in &t {
        let old = f.get(name);
        if old.is_none() {
            b.push(
                Phase::CreateSchema,
                ObjectKind::Schema,
                name.clone(),
                name.clone(),
                Action::Create,
                format!("CREATE SCHEMA IF NOT EXISTS {};", quote_ident(name)),
                none(),
            );
        }
        comment_change(
            b,
            ObjectKind::Schema,
            name.clone(),
            name.clone(),
            format!("SCHEMA {}", quote_ident(name)),
            old.and_then(|o| o.comment.as_deref()),
            s.comment.as_deref(),
        );
    }
    for name in f.keys().filter(|n| !t.contains_key(*n)) {
        b.push(
            Phase::DropSchema,
            ObjectKind::Schema,
            name.clone(),
            name.clone(),
            Action::Drop,
            format!("DROP SCHEMA {};", quote_ident(name)),
            h(&[DeletesData]),
        );
    }
}

fn diff_extensions(b: &mut Builder, from: &Snapshot, to: &Snapshot) {
    let f = by_key(&from.extensions, |e| e.name.clone());
    let t = by_key(&to.extensions, |e| e.name.clone());
    for (name, e) in &t {
        match f.get(name) {
            None => b.push(
                Phase::CreateExtension,
                ObjectKind::Extension,
                name.clone(),
                name.clone(),
                Action::Create,
                format!(
                    "CREATE EXTENSION IF NOT EXISTS {} WITH SCHEMA {} VERSION {};",
                    quote_ident(name),
                    quote_ident(&e.schema),
                    quote_literal(&e.version)
                ),
                none(),
            ),
            Some(old) => {
                if old.schema != e.schema {
                    b.push(
                        Phase::CreateExtension,
                        ObjectKind::Extension,
                        name.clone(),
                        name.clone(),
                        Action::Alter,
                        format!(
                            "ALTER EXTENSION {} SET SCHEMA {};",
                            quote_ident(name),
                            quote_ident(&e.schema)
                        ),
                        none(),
                    );
                }
                if old.version != e.version {
                    b.push(
                        Phase::CreateExtension,
                        ObjectKind::Extension,
                        name.clone(),
                        name.clone(),
                        Action::Alter,
                        format!(
                            "ALTER EXTENSION {} UPDATE TO {};",
                            quote_ident(name),
                            quote_literal(&e.version)
                        ),
                        none(),
                    );
                }
            }
        }
    }
    for name in f.keys().filter(|n| !t.contains_key(*n)) {
        b.push(
            Phase::DropExtension,
            ObjectKind::Extension,
            name.clone(),
            name.clone(),
            Action::Drop,
            format!("DROP EXTENSION {};", quote_ident(name)),
            h(&[DeletesData]),
        );
    }
}

// ---------------------------------------------------------------- types

fn type_rank(t: &Type) -> u8 {
    match t.kind {
        TypeKind::Enum { .. } => 0,
        TypeKind::Domain { .. } => 1,
        TypeKind::Composite { .. } => 2,
    }
}

fn diff_types(b: &mut Builder, from: &Snapshot, to: &Snapshot) {
    let f = by_key(&from.types, |t| (t.schema.clone(), t.name.clone()));
    let mut created: Vec<&Type> = Vec::new();
    for t in &to.types {
        let name = display_name(&t.schema, &t.name);
        let target = format!("{} {}", ddl::type_keyword(t), t.sql_name());
        match f.get(&(t.schema.clone(), t.name.clone())) {
            None => {
                created.push(t);
                comment_change(
                    b,
                    ObjectKind::Type,
                    name.clone(),
                    name,
                    target,
                    None,
                    t.comment.as_deref(),
                );
            }
            Some(old) => {
                alter_type(b, old, t, &name);
                comment_change(
                    b,
                    ObjectKind::Type,
                    name.clone(),
                    name,
                    target,
                    old.comment.as_deref(),
                    t.comment.as_deref(),
                );
            }
        }
    }
    created.sort_by_key(|t| type_rank(t));
    for t in created {
        let name = display_name(&t.schema, &t.name);
        b.push(
            Phase::AlterType,
            ObjectKind::Type,
            name.clone(),
            name,
            Action::Create,
            ddl::create_type(t),
            none(),
        );
    }
    let t_keys: HashSet<(String, String)> = to
        .types
        .iter()
        .map(|t| (t.schema.clone(), t.name.clone()))
        .collect();
    let mut dropped: Vec<&Type> = from
        .types
        .iter()
        .filter(|t| !t_keys.contains(&(t.schema.clone(), t.name.clone())))
        .collect();
    dropped.sort_by_key(|t| std::cmp::Reverse(type_rank(t)));
    for t in dropped {
        let name = display_name(&t.schema, &t.name);
        b.push(
            Phase::DropType,
            ObjectKind::Type,
            name.clone(),
            name,
            Action::Drop,
            format!("DROP {} {};", ddl::type_keyword(t), t.sql_name()),
            none(),
        );
    }
}

fn alter_type(b: &mut Builder, old: &Type, new: &Type, name: &str) {
    let tname = new.sql_name();
    let push = |b: &mut Builder, sql: String, extra: Extra| {
        b.push(
            Phase::AlterType,
            ObjectKind::Type,
            name.to_string(),
            name.to_string(),
            Action::Alter,
            sql,
            extra,
        )
    };
    match (&old.kind, &new.kind) {
        (TypeKind::Enum { labels: a }, TypeKind::Enum { labels: z }) => {
            if a == z {
                return;
            }
            let old_set: HashSet<&String> = a.iter().collect();
            let kept: Vec<&String> = z.iter().filter(|l| old_set.contains(l)).collect();
            if kept.len() == a.len() && kept.iter().zip(a).all(|(k, o)| *k == o) {
                // Only additions, in an order compatible with the existing labels.
                for (i, label) in z.iter().enumerate() {
                    if old_set.contains(label) {
                        continue;
                    }
                    let place = if i > 0 {
                        format!(" AFTER {}", quote_literal(&z[i - 1]))
                    } else {
                        match z.iter().find(|l| old_set.contains(l)) {
                            Some(next) => format!(" BEFORE {}", quote_literal(next)),
                            None => String::new(),
                        }
                    };
                    push(
                        b,
                        format!(
                            "ALTER TYPE {tname} ADD VALUE {}{place};",
                            quote_literal(label)
                        ),
                        Extra {
                            hazards: vec![NonTransactional],
                            note: Some(
                                "a new enum value cannot be used in the transaction that adds it"
                                    .into(),
                            ),
                        },
                    );
                }
            } else if a.len() == z.len() && a.iter().zip(z).filter(|(x, y)| x != y).count() == 1 {
                let (x, y) = a.iter().zip(z).find(|(x, y)| x != y).unwrap_or((&a[0], &z[0]));
                push(
                    b,
                    format!(
                        "ALTER TYPE {tname} RENAME VALUE {} TO {};",
                        quote_literal(x),
                        quote_literal(y)
                    ),
                    none(),
                );
            } else {
                let removed: Vec<&String> = a.iter().filter(|l| !z.contains(l)).collect();
                let why = if removed.is_empty() {
                    "enum values were reordered: PostgreSQL cannot reorder enum values; create a new type, convert every column that uses it, drop the old type".to_string()
                } else {
                    format!(
                        "enum value(s) {} removed: PostgreSQL cannot remove enum values; create a new type without them, convert every column that uses it (rows holding them must change first), drop the old type",
                        removed.iter().map(|l| quote_literal(l)).collect::<Vec<_>>().join(", ")
                    )
                };
                b.unsupported(Phase::AlterType, ObjectKind::Type, name.into(), name.into(), why);
            }
        }
        (
            TypeKind::Domain {
                base: b1,
                collation: c1,
                default: d1,
                not_null: n1,
                constraints: k1,
            },
            TypeKind::Domain {
                base: b2,
                collation: c2,
                default: d2,
                not_null: n2,
                constraints: k2,
            },
        ) => {
            if b1 != b2 || c1 != c2 {
                b.unsupported(
                    Phase::AlterType,
                    ObjectKind::Type,
                    name.into(),
                    name.into(),
                    format!("domain base type or collation changed ({b1} -> {b2}): PostgreSQL cannot alter it; create a new domain and convert the columns that use it"),
                );
                return;
            }
            if d1 != d2 {
                let sql = match d2 {
                    Some(d) => format!("ALTER DOMAIN {tname} SET DEFAULT {d};"),
                    None => format!("ALTER DOMAIN {tname} DROP DEFAULT;"),
                };
                push(b, sql, none());
            }
            if n1 != n2 {
                if *n2 {
                    push(b, format!("ALTER DOMAIN {tname} SET NOT NULL;"), h(&[ScansTable]));
                } else {
                    push(b, format!("ALTER DOMAIN {tname} DROP NOT NULL;"), none());
                }
            }
            let old_k = by_key(k1, |c| c.name.clone());
            let new_k = by_key(k2, |c| c.name.clone());
            for (cname, c) in &old_k {
                if new_k.get(cname).map(|n| n.definition != c.definition).unwrap_or(true) {
                    push(
                        b,
                        format!("ALTER DOMAIN {tname} DROP CONSTRAINT {};", quote_ident(cname)),
                        none(),
                    );
                }
            }
            for (cname, c) in &new_k {
                if old_k.get(cname).map(|o| o.definition != c.definition).unwrap_or(true) {
                    push(
                        b,
                        format!(
                            "ALTER DOMAIN {tname} ADD CONSTRAINT {} {};",
                            quote_ident(cname),
                            c.definition
                        ),
                        h(&[ScansTable]),
                    );
                }
            }
        }
        (TypeKind::Composite { attributes: a1 }, TypeKind::Composite { attributes: a2 }) => {
            let names2: HashSet<&str> = a2.iter().map(|a| a.name.as_str()).collect();
            let names1: HashSet<&str> = a1.iter().map(|a| a.name.as_str()).collect();
            let mut expect: Vec<&str> = a1
                .iter()
                .map(|a| a.name.as_str())
                .filter(|n| names2.contains(n))
                .collect();
            expect.extend(a2.iter().map(|a| a.name.as_str()).filter(|n| !names1.contains(n)));
            if expect != a2.iter().map(|a| a.name.as_str()).collect::<Vec<_>>() {
                b.unsupported(
                    Phase::AlterType,
                    ObjectKind::Type,
                    name.into(),
                    name.into(),
                    "composite type attributes change order: PostgreSQL only appends attributes".into(),
                );
                return;
            }
            for a in a1.iter().filter(|a| !names2.contains(a.name.as_str())) {
                push(
                    b,
                    format!("ALTER TYPE {tname} DROP ATTRIBUTE {};", quote_ident(&a.name)),
                    h(&[DeletesData]),
                );
            }
            for a in a2 {
                match a1.iter().find(|o| o.name == a.name) {
                    None => push(
                        b,
                        format!("ALTER TYPE {tname} ADD ATTRIBUTE {};", ddl::attribute_def(a)),
                        none(),
                    ),
                    Some(o) if o != a => push(
                        b,
                        format!(
                            "ALTER TYPE {tname} ALTER ATTRIBUTE {} SET DATA TYPE {}{};",
                            quote_ident(&a.name),
                            a.type_name,
                            a.collation
                                .as_ref()
                                .map(|c| format!(" COLLATE {c}"))
                                .unwrap_or_default()
                        ),
                        none(),
                    ),
                    _ => {}
                }
            }
        }
        _ => b.unsupported(
            Phase::AlterType,
            ObjectKind::Type,
            name.into(),
            name.into(),
            "the type changed kind (enum, domain, composite): drop it and create it again once no column uses it".into(),
        ),
    }
}

// ---------------------------------------------------------------- sequences

fn diff_sequences(b: &mut Builder, from: &Snapshot, to: &Snapshot) {
    let f = by_key(&from.sequences, |s| (s.schema.clone(), s.name.clone()));
    let t = by_key(&to.sequences, |s| (s.schema.clone(), s.name.clone()));
    let to_tables: HashMap<(String, String), &Table> = to
        .tables
        .iter()
        .map(|t| ((t.schema.clone(), t.name.clone()), t))
        .collect();
    for (key, s) in &t {
        let name = display_name(&s.schema, &s.name);
        let old = f.get(key);
        match old {
            None => b.push(
                Phase::CreateSequence,
                ObjectKind::Sequence,
                name.clone(),
                name.clone(),
                Action::Create,
                ddl::create_sequence(s),
                none(),
            ),
            Some(o) => {
                if (
                    o.data_type.as_str(),
                    o.start,
                    o.increment,
                    o.min,
                    o.max,
                    o.cache,
                    o.cycle,
                ) != (
                    s.data_type.as_str(),
                    s.start,
                    s.increment,
                    s.min,
                    s.max,
                    s.cache,
                    s.cycle,
                ) {
                    b.push(
                        Phase::CreateSequence,
                        ObjectKind::Sequence,
                        name.clone(),
                        name.clone(),
                        Action::Alter,
                        format!(
                            "ALTER SEQUENCE {} AS {} {};",
                            s.sql_name(),
                            s.data_type,
                            ddl::sequence_params(s)
                        ),
                        none(),
                    );
                }
            }
        }
        let old_owner = old.and_then(|o| o.owned_by.as_ref());
        if old_owner != s.owned_by.as_ref() {
            if old_owner.is_some() {
                b.push(
                    Phase::DropConstraint,
                    ObjectKind::Sequence,
                    name.clone(),
                    name.clone(),
                    Action::Alter,
                    format!("ALTER SEQUENCE {} OWNED BY NONE;", s.sql_name()),
                    none(),
                );
            }
            if let Some(c) = &s.owned_by {
                b.push(
                    Phase::AlterSequence,
                    ObjectKind::Sequence,
                    name.clone(),
                    name.clone(),
                    Action::Alter,
                    format!(
                        "ALTER SEQUENCE {} OWNED BY {}.{};",
                        s.sql_name(),
                        qualified(&c.schema, &c.table),
                        quote_ident(&c.column)
                    ),
                    none(),
                );
            }
        }
        comment_change(
            b,
            ObjectKind::Sequence,
            name.clone(),
            name,
            format!("SEQUENCE {}", s.sql_name()),
            old.and_then(|o| o.comment.as_deref()),
            s.comment.as_deref(),
        );
    }
    for (key, s) in f.iter().filter(|(k, _)| !t.contains_key(*k)) {
        // A sequence owned by a column that goes away goes with it.
        if let Some(c) = &s.owned_by {
            let gone = match to_tables.get(&(c.schema.clone(), c.table.clone())) {
                None => true,
                Some(tt) => tt.column(&c.column).is_none(),
            };
            if gone {
                continue;
            }
        }
        let name = display_name(&key.0, &key.1);
        b.push(
            Phase::DropSequence,
            ObjectKind::Sequence,
            name.clone(),
            name,
            Action::Drop,
            format!("DROP SEQUENCE {};", s.sql_name()),
            none(),
        );
    }
}

// ---------------------------------------------------------------- tables

fn partition_depth(t: &Table, all: &HashMap<(String, String), &Table>) -> usize {
    let mut depth = 0;
    let mut cur = t;
    while let Some(p) = &cur.partition_of {
        depth += 1;
        match all.get(&(p.schema.clone(), p.table.clone())) {
            Some(parent) if depth < 32 => cur = parent,
            _ => break,
        }
    }
    depth
}

/// Tables whose columns change in a way views reading them must be rebuilt for.
type Altered = HashSet<TableRef>;

fn diff_tables(b: &mut Builder, from: &Snapshot, to: &Snapshot) -> Altered {
    let f: HashMap<(String, String), &Table> = from
        .tables
        .iter()
        .map(|t| ((t.schema.clone(), t.name.clone()), t))
        .collect();
    let t: HashMap<(String, String), &Table> = to
        .tables
        .iter()
        .map(|t| ((t.schema.clone(), t.name.clone()), t))
        .collect();
    let mut altered = Altered::new();

    // Keys (primary/unique/exclusion) that are dropped or replaced: foreign keys that
    // reference their table must be dropped first and added back after.
    let mut rekeyed: HashSet<TableRef> = HashSet::new();
    for old in &from.tables {
        let new = t.get(&(old.schema.clone(), old.name.clone()));
        for c in old.constraints.iter().filter(|c| {
            matches!(
                c.kind,
                ConstraintKind::PrimaryKey | ConstraintKind::Unique | ConstraintKind::Exclusion
            )
        }) {
            let same = new
                .and_then(|n| n.constraints.iter().find(|x| x.name == c.name))
                .is_some_and(|x| x == c);
            if !same {
                rekeyed.insert(old.table_ref());
            }
        }
    }

    let mut order: Vec<&Table> = to.tables.iter().collect();
    order.sort_by_key(|x| partition_depth(x, &t));
    for new in order {
        let old = f.get(&(new.schema.clone(), new.name.clone())).copied();
        diff_table(b, old, new, from, &rekeyed, &mut altered);
    }
    let mut dropped: Vec<&Table> = from
        .tables
        .iter()
        .filter(|x| !t.contains_key(&(x.schema.clone(), x.name.clone())))
        .collect();
    dropped.sort_by_key(|x| std::cmp::Reverse(partition_depth(x, &f)));
    for old in dropped {
        altered.insert(old.table_ref());
        // Foreign keys of surviving tables pointing at it are not in `to` and are dropped by
        // diff_table. Its own foreign keys go first, so that neither the keys they reference
        // nor the other tables being dropped are held up by them.
        let name = display_name(&old.schema, &old.name);
        for c in old.constraints.iter().filter(|c| {
            c.kind == ConstraintKind::ForeignKey
                && c.references.as_ref().is_some_and(|r| *r != old.table_ref())
        }) {
            b.push(
                Phase::DropForeignKey,
                ObjectKind::Constraint,
                format!(
                    "{name}.{}",
                    display_name("x", &c.name).trim_start_matches("x.")
                ),
                name.clone(),
                Action::Drop,
                format!(
                    "ALTER TABLE {} DROP CONSTRAINT {};",
                    old.sql_name(),
                    quote_ident(&c.name)
                ),
                h(&[AccessExclusiveLock]),
            );
        }
        b.push(
            Phase::DropTable,
            ObjectKind::Table,
            name.clone(),
            name,
            Action::Drop,
            format!("DROP TABLE {};", old.sql_name()),
            h(&[AccessExclusiveLock, DeletesData]),
        );
    }
    altered
}

fn strip_not_valid(def: &str) -> &str {
    def.strip_suffix(" NOT VALID").unwrap_or(def)
}

fn varchar_len(t: &str) -> Option<Option<u32>> {
    if t == "text" || t == "character varying" {
        return Some(None);
    }
    t.strip_prefix("character varying(")
        .and_then(|r| r.strip_suffix(')'))
        .and_then(|n| n.parse().ok())
        .map(Some)
}

/// True when changing `from` to `to` needs no rewrite (varchar widened, varchar to text).
fn binary_compatible(from: &str, to: &str) -> bool {
    match (varchar_len(from), varchar_len(to)) {
        (Some(_), Some(None)) => true,
        (Some(Some(a)), Some(Some(b))) => b >= a,
        _ => false,
    }
}

fn volatile_default(d: &str) -> bool {
    [
        "nextval(",
        "random(",
        "gen_random_uuid(",
        "clock_timestamp(",
        "uuid_generate",
    ]
    .iter()
    .any(|f| d.contains(f))
}

#[allow(clippy::too_many_lines)]
fn diff_table(
    b: &mut Builder,
    old: Option<&Table>,
    new: &Table,
    from: &Snapshot,
    rekeyed: &HashSet<TableRef>,
    altered: &mut Altered,
) {
    let tname = new.sql_name();
    let owner = display_name(&new.schema, &new.name);
    // Hazards only matter for tables that hold data already.
    let alter = |b: &mut Builder, kind: ObjectKind, object: String, sql: String, extra: Extra| {
        b.push(
            Phase::AlterTable,
            kind,
            object,
            owner.clone(),
            Action::Alter,
            sql,
            extra,
        )
    };
    let col_obj = |c: &str| format!("{owner}.{}", display_name("x", c).trim_start_matches("x."));

    let Some(old) = old else {
        b.push(
            Phase::AlterTable,
            ObjectKind::Table,
            owner.clone(),
            owner.clone(),
            Action::Create,
            ddl::create_table(new),
            none(),
        );
        let empty = Table {
            columns: new.columns.clone(),
            constraints: vec![],
            indexes: vec![],
            triggers: vec![],
            policies: vec![],
            rls_enabled: false,
            rls_forced: false,
            comment: None,
            ..new.clone()
        };
        for c in &new.columns {
            comment_change(
                b,
                ObjectKind::Column,
                col_obj(&c.name),
                owner.clone(),
                format!("COLUMN {tname}.{}", quote_ident(&c.name)),
                None,
                c.comment.as_deref(),
            );
        }
        comment_change(
            b,
            ObjectKind::Table,
            owner.clone(),
            owner.clone(),
            format!("TABLE {tname}"),
            None,
            new.comment.as_deref(),
        );
        diff_table_parts(b, &empty, new, false, rekeyed);
        return;
    };

    // Partitioning.
    if old.partition_by != new.partition_by {
        b.unsupported(
            Phase::AlterTable,
            ObjectKind::Table,
            owner.clone(),
            owner.clone(),
            format!(
                "partitioning changed ({} -> {}): PostgreSQL cannot change a table's partition key or make a table partitioned in place; create the new table, copy the rows, swap the names",
                old.partition_by.as_deref().unwrap_or("none"),
                new.partition_by.as_deref().unwrap_or("none")
            ),
        );
    }
    let mut old_columns = old.columns.clone();
    if old.partition_of != new.partition_of {
        if let Some(p) = &old.partition_of {
            b.push(
                Phase::AlterTable,
                ObjectKind::Table,
                owner.clone(),
                owner.clone(),
                Action::Alter,
                format!(
                    "ALTER TABLE {} DETACH PARTITION {tname};",
                    qualified(&p.schema, &p.table)
                ),
                h(&[AccessExclusiveLock]),
            );
            if new.partition_of.is_none() {
                // A detached partition keeps its parent's columns.
                old_columns = from
                    .tables
                    .iter()
                    .find(|t| t.schema == p.schema && t.name == p.table)
                    .map(|t| t.columns.clone())
                    .unwrap_or_default();
            }
        }
        if let Some(p) = &new.partition_of {
            b.push(
                Phase::AlterTable,
                ObjectKind::Table,
                owner.clone(),
                owner.clone(),
                Action::Alter,
                format!(
                    "ALTER TABLE {} ATTACH PARTITION {tname} {};",
                    qualified(&p.schema, &p.table),
                    p.bound
                ),
                h(&[ScansTable]),
            );
            old_columns = new.columns.clone();
        }
    }
    if old.unlogged != new.unlogged {
        alter(
            b,
            ObjectKind::Table,
            owner.clone(),
            format!(
                "ALTER TABLE {tname} SET {};",
                if new.unlogged { "UNLOGGED" } else { "LOGGED" }
            ),
            h(&[AccessExclusiveLock, RewritesTable]),
        );
    }
    if old.options != new.options {
        let keys = |o: &[String]| -> BTreeMap<String, String> {
            o.iter()
                .map(|kv| match kv.split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => (kv.clone(), String::new()),
                })
                .collect()
        };
        let (ko, kn) = (keys(&old.options), keys(&new.options));
        let reset: Vec<&String> = ko.keys().filter(|k| !kn.contains_key(*k)).collect();
        if !reset.is_empty() {
            alter(
                b,
                ObjectKind::Table,
                owner.clone(),
                format!(
                    "ALTER TABLE {tname} RESET ({});",
                    reset
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                none(),
            );
        }
        let set: Vec<&String> = new
            .options
            .iter()
            .filter(|kv| !old.options.contains(kv))
            .collect();
        if !set.is_empty() {
            alter(
                b,
                ObjectKind::Table,
                owner.clone(),
                format!(
                    "ALTER TABLE {tname} SET ({});",
                    set.iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                none(),
            );
        }
    }

    // Columns.
    let new_names: HashSet<&str> = new.columns.iter().map(|c| c.name.as_str()).collect();
    let old_names: HashSet<&str> = old_columns.iter().map(|c| c.name.as_str()).collect();
    let mut expect: Vec<&str> = old_columns
        .iter()
        .map(|c| c.name.as_str())
        .filter(|n| new_names.contains(n))
        .collect();
    expect.extend(
        new.columns
            .iter()
            .map(|c| c.name.as_str())
            .filter(|n| !old_names.contains(n)),
    );
    let actual: Vec<&str> = new.columns.iter().map(|c| c.name.as_str()).collect();
    if new.partition_of.is_none() && expect != actual {
        b.unsupported(
            Phase::AlterTable,
            ObjectKind::Table,
            owner.clone(),
            owner.clone(),
            format!(
                "column order differs (after the change it would be {}, wanted {}): PostgreSQL only appends columns; recreate the table or accept the order",
                expect.join(", "),
                actual.join(", ")
            ),
        );
    }
    let dropped: Vec<&Column> = old_columns
        .iter()
        .filter(|c| !new_names.contains(c.name.as_str()))
        .collect();
    let added: Vec<&Column> = new
        .columns
        .iter()
        .filter(|c| !old_names.contains(c.name.as_str()))
        .collect();
    for c in &dropped {
        altered.insert(new.table_ref());
        let note = added
            .iter()
            .find(|a| a.type_name == c.type_name)
            .map(|a| {
                format!(
                    "if `{}` was renamed to `{}`, use ALTER TABLE … RENAME COLUMN instead to keep the data",
                    c.name, a.name
                )
            });
        b.push(
            Phase::AlterTable,
            ObjectKind::Column,
            col_obj(&c.name),
            owner.clone(),
            Action::Drop,
            format!("ALTER TABLE {tname} DROP COLUMN {};", quote_ident(&c.name)),
            Extra {
                hazards: vec![AccessExclusiveLock, DeletesData],
                note,
            },
        );
    }
    if new.partition_of.is_none() {
        for c in &added {
            let mut hazards = vec![AccessExclusiveLock];
            if c.generated.is_some()
                || c.identity.is_some()
                || c.default.as_deref().is_some_and(volatile_default)
            {
                hazards.push(RewritesTable);
            }
            let note = (c.not_null
                && c.default.is_none()
                && c.identity.is_none()
                && c.generated.is_none())
            .then(|| "NOT NULL without a default fails when the table has rows".to_string());
            b.push(
                Phase::AlterTable,
                ObjectKind::Column,
                col_obj(&c.name),
                owner.clone(),
                Action::Create,
                format!("ALTER TABLE {tname} ADD COLUMN {};", ddl::column_def(c)),
                Extra { hazards, note },
            );
        }
    }
    for c in &new.columns {
        let Some(o) = old_columns.iter().find(|o| o.name == c.name) else {
            comment_change(
                b,
                ObjectKind::Column,
                col_obj(&c.name),
                owner.clone(),
                format!("COLUMN {tname}.{}", quote_ident(&c.name)),
                None,
                c.comment.as_deref(),
            );
            continue;
        };
        let obj = col_obj(&c.name);
        let col = quote_ident(&c.name);
        let mut default_dropped = false;
        if o.generated != c.generated {
            match (&o.generated, &c.generated) {
                (Some(_), None) => alter(
                    b,
                    ObjectKind::Column,
                    obj.clone(),
                    format!("ALTER TABLE {tname} ALTER COLUMN {col} DROP EXPRESSION;"),
                    h(&[AccessExclusiveLock]),
                ),
                _ => b.unsupported(
                    Phase::AlterTable,
                    ObjectKind::Column,
                    obj.clone(),
                    owner.clone(),
                    "the generation expression changed: PostgreSQL 15 cannot change it in place; drop the column and add it again".into(),
                ),
            }
        }
        if o.type_name != c.type_name || o.collation != c.collation {
            altered.insert(new.table_ref());
            if o.default.is_some() {
                alter(
                    b,
                    ObjectKind::Column,
                    obj.clone(),
                    format!("ALTER TABLE {tname} ALTER COLUMN {col} DROP DEFAULT;"),
                    h(&[AccessExclusiveLock]),
                );
                default_dropped = true;
            }
            let mut hazards = vec![AccessExclusiveLock];
            if !(binary_compatible(&o.type_name, &c.type_name) && o.collation == c.collation) {
                hazards.push(RewritesTable);
                hazards.push(DeletesData);
            }
            alter(
                b,
                ObjectKind::Column,
                obj.clone(),
                format!(
                    "ALTER TABLE {tname} ALTER COLUMN {col} TYPE {}{} USING {col}::{};",
                    c.type_name,
                    c.collation
                        .as_ref()
                        .map(|x| format!(" COLLATE {x}"))
                        .unwrap_or_default(),
                    c.type_name
                ),
                Extra {
                    hazards,
                    note: Some(format!("type {} -> {}", o.type_name, c.type_name)),
                },
            );
        }
        if o.identity != c.identity {
            let sql = match (o.identity, c.identity) {
                (None, Some(id)) => format!(
                    "ALTER TABLE {tname} ALTER COLUMN {col} ADD GENERATED {} AS IDENTITY;",
                    id.sql()
                ),
                (Some(_), None) => format!("ALTER TABLE {tname} ALTER COLUMN {col} DROP IDENTITY;"),
                (_, Some(id)) => format!(
                    "ALTER TABLE {tname} ALTER COLUMN {col} SET GENERATED {};",
                    id.sql()
                ),
                (None, None) => String::new(),
            };
            alter(
                b,
                ObjectKind::Column,
                obj.clone(),
                sql,
                h(&[AccessExclusiveLock]),
            );
        }
        if c.generated.is_none() && (o.default != c.default || default_dropped) {
            match &c.default {
                Some(d) => alter(
                    b,
                    ObjectKind::Column,
                    obj.clone(),
                    format!("ALTER TABLE {tname} ALTER COLUMN {col} SET DEFAULT {d};"),
                    h(&[AccessExclusiveLock]),
                ),
                None if !default_dropped && o.generated.is_none() => alter(
                    b,
                    ObjectKind::Column,
                    obj.clone(),
                    format!("ALTER TABLE {tname} ALTER COLUMN {col} DROP DEFAULT;"),
                    h(&[AccessExclusiveLock]),
                ),
                None => {}
            }
        }
        if o.not_null != c.not_null {
            if c.not_null {
                alter(
                    b,
                    ObjectKind::Column,
                    obj.clone(),
                    format!("ALTER TABLE {tname} ALTER COLUMN {col} SET NOT NULL;"),
                    Extra {
                        hazards: vec![AccessExclusiveLock, ScansTable],
                        note: Some("fails if any row holds NULL".into()),
                    },
                );
            } else {
                alter(
                    b,
                    ObjectKind::Column,
                    obj.clone(),
                    format!("ALTER TABLE {tname} ALTER COLUMN {col} DROP NOT NULL;"),
                    h(&[AccessExclusiveLock]),
                );
            }
        }
        comment_change(
            b,
            ObjectKind::Column,
            obj,
            owner.clone(),
            format!("COLUMN {tname}.{col}"),
            o.comment.as_deref(),
            c.comment.as_deref(),
        );
    }
    comment_change(
        b,
        ObjectKind::Table,
        owner.clone(),
        owner.clone(),
        format!("TABLE {tname}"),
        old.comment.as_deref(),
        new.comment.as_deref(),
    );
    diff_table_parts(b, old, new, true, rekeyed);
}

/// Constraints, indexes, triggers, policies and RLS flags of one table.
fn diff_table_parts(
    b: &mut Builder,
    old: &Table,
    new: &Table,
    exists: bool,
    rekeyed: &HashSet<TableRef>,
) {
    let tname = new.sql_name();
    let owner = display_name(&new.schema, &new.name);
    let hz = |list: &[Hazard]| if exists { h(list) } else { none() };
    let sub = |n: &str| format!("{owner}.{}", display_name("x", n).trim_start_matches("x."));

    // Constraints.
    let oc = by_key(&old.constraints, |c| c.name.clone());
    let nc = by_key(&new.constraints, |c| c.name.clone());
    for (name, c) in &oc {
        let fk = c.kind == ConstraintKind::ForeignKey;
        let replaced = match nc.get(name) {
            None => true,
            Some(n) => {
                let same_but_valid = strip_not_valid(&n.definition)
                    == strip_not_valid(&c.definition)
                    && !c.validated
                    && n.validated;
                (n.definition != c.definition && !same_but_valid)
                    || (fk && c.references.as_ref().is_some_and(|r| rekeyed.contains(r)))
            }
        };
        if replaced {
            b.push(
                if fk {
                    Phase::DropForeignKey
                } else {
                    Phase::DropConstraint
                },
                ObjectKind::Constraint,
                sub(name),
                owner.clone(),
                if nc.contains_key(name) {
                    Action::Replace
                } else {
                    Action::Drop
                },
                format!("ALTER TABLE {tname} DROP CONSTRAINT {};", quote_ident(name)),
                h(&[AccessExclusiveLock]),
            );
        }
    }
    for (name, c) in &nc {
        let fk = c.kind == ConstraintKind::ForeignKey;
        let phase = if fk {
            Phase::AddForeignKey
        } else {
            Phase::AddConstraint
        };
        let qn = quote_ident(name);
        let old_c = oc.get(name);
        if let Some(o) = old_c {
            let only_validate = strip_not_valid(&o.definition) == strip_not_valid(&c.definition)
                && !o.validated
                && c.validated;
            let rebuilt = fk && o.references.as_ref().is_some_and(|r| rekeyed.contains(r));
            if only_validate && !rebuilt {
                b.push(
                    phase,
                    ObjectKind::Constraint,
                    sub(name),
                    owner.clone(),
                    Action::Alter,
                    format!("ALTER TABLE {tname} VALIDATE CONSTRAINT {qn};"),
                    h(&[ScansTable]),
                );
                comment_change(
                    b,
                    ObjectKind::Constraint,
                    sub(name),
                    owner.clone(),
                    format!("CONSTRAINT {qn} ON {tname}"),
                    o.comment.as_deref(),
                    c.comment.as_deref(),
                );
                continue;
            }
            if o.definition == c.definition && !rebuilt {
                // Only the comment changed.
                comment_change(
                    b,
                    ObjectKind::Constraint,
                    sub(name),
                    owner.clone(),
                    format!("CONSTRAINT {qn} ON {tname}"),
                    o.comment.as_deref(),
                    c.comment.as_deref(),
                );
                continue;
            }
        }
        let staged = exists
            && new.partition_by.is_none()
            && c.validated
            && matches!(c.kind, ConstraintKind::ForeignKey | ConstraintKind::Check);
        let (sql, hazards) = if staged {
            (
                format!(
                    "ALTER TABLE {tname} ADD CONSTRAINT {qn} {} NOT VALID;\nALTER TABLE {tname} VALIDATE CONSTRAINT {qn};",
                    c.definition
                ),
                vec![AccessExclusiveLock, ScansTable],
            )
        } else {
            (
                format!("ALTER TABLE {tname} ADD CONSTRAINT {qn} {};", c.definition),
                if c.validated {
                    vec![AccessExclusiveLock, ScansTable]
                } else {
                    vec![AccessExclusiveLock]
                },
            )
        };
        b.push(
            phase,
            ObjectKind::Constraint,
            sub(name),
            owner.clone(),
            if old_c.is_some() {
                Action::Replace
            } else {
                Action::Create
            },
            sql,
            hz(&hazards),
        );
        comment_change(
            b,
            ObjectKind::Constraint,
            sub(name),
            owner.clone(),
            format!("CONSTRAINT {qn} ON {tname}"),
            None,
            c.comment.as_deref(),
        );
    }

    diff_indexes(
        b,
        Phase::CreateIndex,
        &new.schema,
        &old.indexes,
        &new.indexes,
        &owner,
        exists,
    );

    // Triggers.
    let ot = by_key(&old.triggers, |t| t.name.clone());
    let ntr = by_key(&new.triggers, |t| t.name.clone());
    for (name, t) in &ot {
        if ntr.get(name).is_none_or(|n| n.definition != t.definition) {
            b.push(
                Phase::DropTrigger,
                ObjectKind::Trigger,
                sub(name),
                owner.clone(),
                if ntr.contains_key(name) {
                    Action::Replace
                } else {
                    Action::Drop
                },
                format!("DROP TRIGGER {} ON {tname};", quote_ident(name)),
                none(),
            );
        }
    }
    for (name, t) in &ntr {
        let target = format!("TRIGGER {} ON {tname}", quote_ident(name));
        match ot.get(name).filter(|o| o.definition == t.definition) {
            Some(o) => {
                if o.enabled != t.enabled {
                    b.push(
                        Phase::CreateTrigger,
                        ObjectKind::Trigger,
                        sub(name),
                        owner.clone(),
                        Action::Alter,
                        ddl::trigger_state(new, name, &t.enabled),
                        h(&[AccessExclusiveLock]),
                    );
                }
                comment_change(
                    b,
                    ObjectKind::Trigger,
                    sub(name),
                    owner.clone(),
                    target,
                    o.comment.as_deref(),
                    t.comment.as_deref(),
                );
            }
            None => {
                let mut sql = format!("{};", t.definition);
                if t.enabled != "O" {
                    sql.push('\n');
                    sql.push_str(&ddl::trigger_state(new, name, &t.enabled));
                }
                b.push(
                    Phase::CreateTrigger,
                    ObjectKind::Trigger,
                    sub(name),
                    owner.clone(),
                    Action::Create,
                    sql,
                    none(),
                );
                comment_change(
                    b,
                    ObjectKind::Trigger,
                    sub(name),
                    owner.clone(),
                    target,
                    None,
                    t.comment.as_deref(),
                );
            }
        }
    }

    // Row-level security.
    if old.rls_enabled != new.rls_enabled {
        b.push(
            Phase::CreateTrigger,
            ObjectKind::Table,
            owner.clone(),
            owner.clone(),
            Action::Alter,
            format!(
                "ALTER TABLE {tname} {} ROW LEVEL SECURITY;",
                if new.rls_enabled { "ENABLE" } else { "DISABLE" }
            ),
            hz(&[AccessExclusiveLock]),
        );
    }
    if old.rls_forced != new.rls_forced {
        b.push(
            Phase::CreateTrigger,
            ObjectKind::Table,
            owner.clone(),
            owner.clone(),
            Action::Alter,
            format!(
                "ALTER TABLE {tname} {} ROW LEVEL SECURITY;",
                if new.rls_forced { "FORCE" } else { "NO FORCE" }
            ),
            hz(&[AccessExclusiveLock]),
        );
    }
    let op = by_key(&old.policies, |p| p.name.clone());
    let np = by_key(&new.policies, |p| p.name.clone());
    for (name, p) in &op {
        if np.get(name).is_none_or(|n| n != p) {
            b.push(
                Phase::DropTrigger,
                ObjectKind::Policy,
                sub(name),
                owner.clone(),
                if np.contains_key(name) {
                    Action::Replace
                } else {
                    Action::Drop
                },
                format!("DROP POLICY {} ON {tname};", quote_ident(name)),
                none(),
            );
        }
    }
    for (name, p) in &np {
        if op.get(name).is_none_or(|o| o != p) {
            b.push(
                Phase::CreateTrigger,
                ObjectKind::Policy,
                sub(name),
                owner.clone(),
                Action::Create,
                ddl::create_policy(new, p),
                none(),
            );
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn diff_indexes(
    b: &mut Builder,
    create_phase: Phase,
    schema: &str,
    old: &[Index],
    new: &[Index],
    owner: &str,
    exists: bool,
) {
    let oi = by_key(old, |i| i.name.clone());
    let ni = by_key(new, |i| i.name.clone());
    let sub = |n: &str| display_name(schema, n);
    for (name, i) in &oi {
        if ni.get(name).is_none_or(|n| n.definition != i.definition) {
            b.push(
                Phase::DropConstraint,
                ObjectKind::Index,
                sub(name),
                owner.to_string(),
                if ni.contains_key(name) {
                    Action::Replace
                } else {
                    Action::Drop
                },
                format!("DROP INDEX {};", qualified(schema, name)),
                h(&[AccessExclusiveLock]),
            );
        }
    }
    for (name, i) in &ni {
        let target = format!("INDEX {}", qualified(schema, name));
        match oi.get(name).filter(|o| o.definition == i.definition) {
            Some(o) => {
                if !o.valid && i.valid {
                    b.push(
                        create_phase,
                        ObjectKind::Index,
                        sub(name),
                        owner.to_string(),
                        Action::Alter,
                        format!("REINDEX INDEX {};", qualified(schema, name)),
                        h(&[ScansTable]),
                    );
                }
                comment_change(
                    b,
                    ObjectKind::Index,
                    sub(name),
                    owner.to_string(),
                    target,
                    o.comment.as_deref(),
                    i.comment.as_deref(),
                );
            }
            None => {
                b.push(
                    create_phase,
                    ObjectKind::Index,
                    sub(name),
                    owner.to_string(),
                    if oi.contains_key(name) {
                        Action::Replace
                    } else {
                        Action::Create
                    },
                    ddl::create_index(i),
                    if exists { h(&[ScansTable]) } else { none() },
                );
                comment_change(
                    b,
                    ObjectKind::Index,
                    sub(name),
                    owner.to_string(),
                    target,
                    None,
                    i.comment.as_deref(),
                );
            }
        }
    }
}

// ---------------------------------------------------------------- views

/// Views in dependency order (a view after every view it reads).
fn topo_views(views: &[View]) -> Vec<&View> {
    let index: HashMap<TableRef, usize> = views
        .iter()
        .enumerate()
        .map(|(i, v)| (v.table_ref(), i))
        .collect();
    let mut state = vec![0u8; views.len()];
    let mut out = Vec::with_capacity(views.len());
    fn visit<'a>(
        i: usize,
        views: &'a [View],
        index: &HashMap<TableRef, usize>,
        state: &mut [u8],
        out: &mut Vec<&'a View>,
    ) {
        if state[i] != 0 {
            return;
        }
        state[i] = 1;
        for d in &views[i].depends_on {
            if let Some(&j) = index.get(d) {
                visit(j, views, index, state, out);
            }
        }
        state[i] = 2;
        out.push(&views[i]);
    }
    for i in 0..views.len() {
        visit(i, views, &index, &mut state, &mut out);
    }
    out
}

fn diff_views(b: &mut Builder, from: &Snapshot, to: &Snapshot, altered: &Altered) {
    let f = by_key(&from.views, |v| v.table_ref());
    let t = by_key(&to.views, |v| v.table_ref());
    // Views of `from` that must go: dropped, changed, or reading something that changes.
    let mut dirty: HashSet<TableRef> = HashSet::new();
    for v in topo_views(&from.views) {
        let r = v.table_ref();
        let changed = match t.get(&r) {
            None => true,
            Some(n) => {
                n.definition != v.definition
                    || n.materialized != v.materialized
                    || n.options != v.options
            }
        };
        if changed
            || v.depends_on
                .iter()
                .any(|d| altered.contains(d) || dirty.contains(d))
        {
            dirty.insert(r);
        }
    }
    for v in topo_views(&from.views).into_iter().rev() {
        let r = v.table_ref();
        if dirty.contains(&r) {
            let name = display_name(&v.schema, &v.name);
            b.push(
                Phase::DropView,
                if v.materialized {
                    ObjectKind::MaterializedView
                } else {
                    ObjectKind::View
                },
                name.clone(),
                name,
                if t.contains_key(&r) {
                    Action::Replace
                } else {
                    Action::Drop
                },
                format!("DROP {} {};", ddl::view_keyword(v), v.sql_name()),
                h(&[AccessExclusiveLock]),
            );
        }
    }
    for v in topo_views(&to.views) {
        let r = v.table_ref();
        let name = display_name(&v.schema, &v.name);
        let kind = if v.materialized {
            ObjectKind::MaterializedView
        } else {
            ObjectKind::View
        };
        let target = format!("{} {}", ddl::view_keyword(v), v.sql_name());
        let old = f.get(&r).filter(|_| !dirty.contains(&r));
        match old {
            Some(o) => {
                diff_indexes(
                    b,
                    Phase::CreateView,
                    &v.schema,
                    &o.indexes,
                    &v.indexes,
                    &name,
                    true,
                );
                comment_change(
                    b,
                    kind,
                    name.clone(),
                    name,
                    target,
                    o.comment.as_deref(),
                    v.comment.as_deref(),
                );
            }
            None => {
                b.push(
                    Phase::CreateView,
                    kind,
                    name.clone(),
                    name.clone(),
                    if f.contains_key(&r) {
                        Action::Replace
                    } else {
                        Action::Create
                    },
                    ddl::create_view(v),
                    if v.materialized {
                        h(&[ScansTable])
                    } else {
                        none()
                    },
                );
                diff_indexes(
                    b,
                    Phase::CreateView,
                    &v.schema,
                    &[],
                    &v.indexes,
                    &name,
                    false,
                );
                comment_change(
                    b,
                    kind,
                    name.clone(),
                    name,
                    target,
                    None,
                    v.comment.as_deref(),
                );
            }
        }
    }
}

// ---------------------------------------------------------------- functions

fn diff_functions(b: &mut Builder, from: &Snapshot, to: &Snapshot) {
    let key = |f: &Function| (f.schema.clone(), f.name.clone(), f.arguments.clone());
    let of = by_key(&from.functions, key);
    let nf = by_key(&to.functions, key);
    for (k, f) in &nf {
        let name = format!("{}({})", display_name(&f.schema, &f.name), f.arguments);
        let phase = if f.language == "sql" {
            Phase::CreateLateFunction
        } else {
            Phase::CreateFunction
        };
        let target = format!("{} {}", f.keyword(), f.signature());
        match of.get(k) {
            None => {
                b.push(
                    phase,
                    ObjectKind::Function,
                    name.clone(),
                    name.clone(),
                    Action::Create,
                    ddl::create_function(f),
                    none(),
                );
                comment_change(
                    b,
                    ObjectKind::Function,
                    name.clone(),
                    name,
                    target,
                    None,
                    f.comment.as_deref(),
                );
            }
            Some(o) => {
                if o.definition != f.definition {
                    let sql = if o.returns != f.returns || o.procedure != f.procedure {
                        format!(
                            "DROP {} {};\n{}",
                            o.keyword(),
                            o.signature(),
                            ddl::create_function(f)
                        )
                    } else {
                        ddl::create_function(f)
                    };
                    b.push(
                        phase,
                        ObjectKind::Function,
                        name.clone(),
                        name.clone(),
                        Action::Replace,
                        sql,
                        none(),
                    );
                }
                comment_change(
                    b,
                    ObjectKind::Function,
                    name.clone(),
                    name,
                    target,
                    o.comment.as_deref(),
                    f.comment.as_deref(),
                );
            }
        }
    }
    for (k, f) in &of {
        if !nf.contains_key(k) {
            let name = format!("{}({})", display_name(&f.schema, &f.name), f.arguments);
            b.push(
                Phase::DropFunction,
                ObjectKind::Function,
                name.clone(),
                name,
                Action::Drop,
                format!("DROP {} {};", f.keyword(), f.signature()),
                none(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str, cols: &[(&str, &str)]) -> Table {
        Table {
            schema: "public".into(),
            name: name.into(),
            unlogged: false,
            partition_by: None,
            partition_of: None,
            options: vec![],
            columns: cols
                .iter()
                .map(|(n, t)| Column {
                    name: n.to_string(),
                    type_name: t.to_string(),
                    collation: None,
                    not_null: false,
                    default: None,
                    identity: None,
                    generated: None,
                    comment: None,
                })
                .collect(),
            constraints: vec![],
            indexes: vec![],
            triggers: vec![],
            rls_enabled: false,
            rls_forced: false,
            policies: vec![],
            comment: None,
        }
    }

    fn snap(tables: Vec<Table>, types: Vec<Type>) -> Snapshot {
        let mut s = Snapshot::empty();
        s.tables = tables;
        s.types = types;
        s.normalize();
        s
    }

    #[test]
    fn identical_snapshots_have_no_changes() {
        let a = snap(vec![table("t", &[("id", "integer")])], vec![]);
        assert!(diff(&a, &a).is_empty());
    }

    #[test]
    fn dropping_a_column_is_tagged_as_deleting_data() {
        let a = snap(
            vec![table("t", &[("id", "integer"), ("x", "text")])],
            vec![],
        );
        let b = snap(vec![table("t", &[("id", "integer")])], vec![]);
        let d = diff(&a, &b);
        assert_eq!(d.changes.len(), 1);
        assert!(d.changes[0].hazards.contains(&Hazard::DeletesData));
        assert_eq!(
            d.to_sql(),
            "ALTER TABLE \"public\".\"t\" DROP COLUMN \"x\";\n"
        );
    }

    #[test]
    fn removing_an_enum_value_is_unsupported_not_wrong_sql() {
        let e = |labels: &[&str]| Type {
            schema: "public".into(),
            name: "mood".into(),
            kind: TypeKind::Enum {
                labels: labels.iter().map(|s| s.to_string()).collect(),
            },
            comment: None,
        };
        let d = diff(
            &snap(vec![], vec![e(&["a", "b", "c"])]),
            &snap(vec![], vec![e(&["a", "c"])]),
        );
        assert_eq!(d.unsupported().count(), 1);
        assert_eq!(d.statements().count(), 0);
        let d = diff(
            &snap(vec![], vec![e(&["a", "c"])]),
            &snap(vec![], vec![e(&["x", "a", "b", "c"])]),
        );
        assert_eq!(
            d.statements().collect::<Vec<_>>(),
            [
                "ALTER TYPE \"public\".\"mood\" ADD VALUE E'x' BEFORE E'a';",
                "ALTER TYPE \"public\".\"mood\" ADD VALUE E'b' AFTER E'a';"
            ]
        );
    }

    #[test]
    fn varchar_widening_does_not_rewrite() {
        assert!(binary_compatible(
            "character varying(10)",
            "character varying(20)"
        ));
        assert!(binary_compatible("character varying(10)", "text"));
        assert!(!binary_compatible(
            "character varying(20)",
            "character varying(10)"
        ));
        assert!(!binary_compatible("integer", "bigint"));
    }
}
