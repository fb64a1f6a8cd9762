//! Rollback generation: a migration's statements, parsed with PostgreSQL's own parser,
//! inverted in reverse order into SQL with quoted identifiers ([`generate`], [`generate_with`]).
//!
//! Pure (no I/O, no database). A statement whose inverse pgkeel cannot know (dropped data, a
//! previous default, an enum value) is reported as irreversible with the reason, and then no SQL
//! is produced at all: a partial rollback is worse than none. Running a rollback is
//! [`crate::rollback`]'s; this module decides nothing about what runs.

use std::collections::HashMap;

use pg_query::protobuf as pb;
use pg_query::NodeEnum;
use serde::Serialize;

use crate::ident::{minimal as ident, quote_literal};
use crate::sql::Statement;

mod catalog;
mod inverter;
mod text;

pub use catalog::{
    objects_changed, views_replaced, AclItem, CatalogObject, ObjectBefore, ViewBefore,
};
pub use text::*;

/// Rollback SQL generated from a migration's statements.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Generated {
    /// The rollback, one statement per line group, each ending in `;`. `Some` only when every
    /// statement could be inverted (a migration without statements inverts to `Some("")`).
    pub sql: Option<String>,
    /// The statements that could not be inverted, in file order.
    pub irreversible: Vec<Irreversible>,
    /// Whether an irreversible statement destroys data (DROP TABLE/COLUMN, DELETE, UPDATE,
    /// TRUNCATE, a column type change, …): only a hand-written down file plus a backup can undo it.
    pub data_loss: bool,
    /// Whether every statement without an inverse changes only what the schema model holds
    /// (a `CREATE OR REPLACE VIEW`, a comment, a domain): then a state-based rollback, the diff of
    /// schema snapshots before and after, undoes it. False as soon as one statement changes
    /// rows, privileges, owners, roles or anything pgkeel cannot see (an `INSERT`, a `GRANT`, a
    /// `SELECT` of a function, a `CALL`): a schema diff would be empty and the rollback a lie.
    pub state_based: bool,
}

impl Generated {
    /// Why no rollback can be generated, state-based or not: the first statement that changes
    /// what the schema model cannot see. `None` when there is an inverse, or a state-based one.
    pub fn refusal(&self) -> Option<&Irreversible> {
        if self.sql.is_some() || self.state_based {
            return None;
        }
        self.irreversible
            .iter()
            .find(|i| !i.schema_only)
            .or(self.irreversible.first())
    }
}

/// A statement pgkeel cannot invert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Irreversible {
    /// 0-based index in the migration's statements.
    pub statement: usize,
    /// The statement text.
    pub text: String,
    /// Why, and what to do instead.
    pub reason: String,
    /// The statement changes only what the schema model holds (see [`Generated::state_based`]).
    pub schema_only: bool,
}

/// The reason given for statements that destroy data.
pub const LOSES_DATA: &str = "loses data: write a .down.sql";

/// Inverts `stmts` (a migration's statements, as [`crate::migrate::parse`] returns them).
///
/// Assumptions, stated once: `CREATE … IF NOT EXISTS`, `ADD COLUMN IF NOT EXISTS` and drizzle's
/// `DO $$ … EXCEPTION WHEN duplicate_object …` blocks are taken to have created the object (the
/// rollback drops it, with `IF EXISTS`); `SET NOT NULL` is taken to have changed the column (the
/// rollback drops the constraint again). `CREATE OR REPLACE` and `CREATE EXTENSION IF NOT
/// EXISTS` are irreversible: they usually meet an object that existed before.
pub fn generate(stmts: &[Statement]) -> Generated {
    generate_with(stmts, &Before::default())
}

/// A column's state in the catalog just before a migration ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnBefore {
    pub not_null: bool,
    /// `pg_get_expr` of the default, `None` when the column had none.
    pub default: Option<String>,
}

/// What the catalog said, just before a migration ran, about the columns whose default or
/// NOT NULL it changes ([`columns_altered`]). With it, `SET/DROP DEFAULT` and `SET/DROP NOT
/// NULL` invert to exactly the previous state, and a change that changed nothing (SET NOT NULL
/// on a column that already was) inverts to nothing.
#[derive(Debug, Clone, Default)]
pub struct Before {
    columns: HashMap<(String, String, String), ColumnBefore>,
    /// Functions `CREATE OR REPLACE` writes, by [`function_signature`]: the definition before
    /// (`pg_get_functiondef`), or `None` when there was no such function.
    functions: HashMap<String, Option<String>>,
    /// Owners, privileges, comments and storage parameters of the objects [`objects_changed`]
    /// names.
    objects: HashMap<CatalogObject, ObjectBefore>,
    /// Views `CREATE OR REPLACE VIEW` writes, by name as written ([`views_replaced`]): their
    /// state before, or `None` when there was no such view.
    views: HashMap<Vec<String>, Option<ViewBefore>>,
    /// Before the apply: every object's state is taken as readable (see [`generate_as_applied`]).
    assumed: bool,
}

impl Before {
    /// Records the state of `schema.table.column` (schema `public` for unqualified names).
    pub fn insert(&mut self, schema: &str, table: &str, column: &str, state: ColumnBefore) {
        self.columns
            .insert((schema.into(), table.into(), column.into()), state);
    }

    /// Records the definition of the function with `signature` before the migration (`None`:
    /// it did not exist).
    pub fn insert_function(&mut self, signature: &str, definition: Option<String>) {
        self.functions.insert(signature.into(), definition);
    }

    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
            && self.functions.is_empty()
            && self.objects.is_empty()
            && self.views.is_empty()
    }
}

/// The signatures of the functions `stmts` create with `CREATE OR REPLACE`, in order and
/// without repeats: the functions whose definition [`Before`] should hold.
pub fn functions_replaced(stmts: &[Statement]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in stmts {
        let Ok(parsed) = pg_query::parse(&s.text) else {
            continue;
        };
        for raw in &parsed.protobuf.stmts {
            if let Some(NodeEnum::CreateFunctionStmt(f)) =
                raw.stmt.as_ref().and_then(|n| n.node.as_ref())
            {
                if let Some(sig) = f.replace.then(|| function_signature(f)).flatten() {
                    if !out.contains(&sig) {
                        out.push(sig);
                    }
                }
            }
        }
    }
    out
}

/// The `(schema, table, column)` triples whose default or NOT NULL `stmts` change with `ALTER
/// TABLE … ALTER COLUMN`, in order and without repeats: what [`Before`] should hold. Unqualified
/// tables are in `public`, as everywhere in this module.
pub fn columns_altered(stmts: &[Statement]) -> Vec<(String, String, String)> {
    use pb::AlterTableType as T;
    let mut out: Vec<(String, String, String)> = Vec::new();
    for s in stmts {
        let upper = s.text.to_ascii_uppercase();
        if !upper.contains("ALTER") || !(upper.contains("DEFAULT") || upper.contains("NULL")) {
            continue;
        }
        let Ok(parsed) = pg_query::parse(&s.text) else {
            continue;
        };
        for raw in &parsed.protobuf.stmts {
            let Some(NodeEnum::AlterTableStmt(a)) = raw.stmt.as_ref().and_then(|n| n.node.as_ref())
            else {
                continue;
            };
            let Some(rv) = &a.relation else { continue };
            for cmd in &a.cmds {
                let Some(NodeEnum::AlterTableCmd(c)) = &cmd.node else {
                    continue;
                };
                if matches!(
                    c.subtype(),
                    T::AtColumnDefault | T::AtSetNotNull | T::AtDropNotNull
                ) {
                    let key = (
                        norm_schema(&rv.schemaname),
                        rv.relname.clone(),
                        c.name.clone(),
                    );
                    if !out.contains(&key) {
                        out.push(key);
                    }
                }
            }
        }
    }
    out
}

/// What the apply will generate, said before it runs (`lint`, `migrate validate`): the catalog
/// state the apply reads just before the migration ([`objects_changed`]) is taken as readable,
/// so a `GRANT` on an existing table is not called irreversible. The SQL it gives is not the
/// rollback (the state is not known yet); its refusals are.
pub fn generate_as_applied(stmts: &[Statement]) -> Generated {
    generate_with(
        stmts,
        &Before {
            assumed: true,
            ..Before::default()
        },
    )
}

/// The relations a state-based rollback of `stmts` must compare: every table, view or sequence
/// named in the statements that have no parse-tree inverse (`[schema, name]` or `[name]` as
/// written). Types, functions, views, schemas and extensions are compared whole anyway (see
/// the engine's scoped snapshots), so this is what keeps the snapshots around such a migration
/// from reading every table of the schema.
pub fn relations_named(stmts: &[Statement], g: &Generated) -> Vec<Vec<String>> {
    fn walk(v: &serde_json::Value, out: &mut Vec<Vec<String>>) {
        match v {
            serde_json::Value::Object(o) => {
                if let Some(serde_json::Value::String(rel)) = o.get("relname") {
                    let mut name = Vec::new();
                    if let Some(serde_json::Value::String(s)) = o.get("schemaname") {
                        if !s.is_empty() {
                            name.push(s.clone());
                        }
                    }
                    name.push(rel.clone());
                    if !out.contains(&name) {
                        out.push(name);
                    }
                }
                o.values().for_each(|v| walk(v, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for i in &g.irreversible {
        let Some(s) = stmts.get(i.statement) else {
            continue;
        };
        if let Ok(parsed) = pg_query::parse(&s.text) {
            if let Ok(v) = serde_json::to_value(&parsed.protobuf) {
                walk(&v, &mut out);
            }
        }
    }
    out
}

/// [`generate`] with the catalog's state before the migration: see [`Before`].
pub fn generate_with(stmts: &[Statement], before: &Before) -> Generated {
    let mut inv = Inverter {
        before: before.clone(),
        ..Inverter::default()
    };
    let mut out = Generated {
        state_based: true,
        ..Generated::default()
    };
    let mut parts: Vec<Vec<String>> = Vec::with_capacity(stmts.len());
    for (i, s) in stmts.iter().enumerate() {
        match inv.statement_text(&s.text) {
            Inverse::Sql(sql) => parts.push(sql),
            Inverse::Noop => {}
            Inverse::Irreversible {
                reason,
                data_loss,
                schema_only,
            } => {
                out.data_loss |= data_loss;
                out.state_based &= schema_only && !data_loss;
                out.irreversible.push(Irreversible {
                    statement: i,
                    text: s.text.clone(),
                    reason,
                    schema_only,
                });
            }
        }
    }
    if out.irreversible.is_empty() {
        out.state_based = false;
        let mut sql = String::new();
        for stmt in parts.iter().rev().flatten() {
            sql.push_str(stmt);
            sql.push_str(";\n");
        }
        out.sql = Some(sql);
    }
    out
}

/// The inverse of one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Inverse {
    /// Statements to run, in order.
    Sql(Vec<String>),
    /// Nothing to undo (or undone by dropping an object the migration created).
    Noop,
    Irreversible {
        reason: String,
        data_loss: bool,
        /// Its effect is on objects the schema model holds (a state-based rollback sees it).
        schema_only: bool,
    },
}

/// A schema change pgkeel cannot invert from the parse tree (a state-based rollback may).
pub(crate) fn irreversible(reason: impl Into<String>) -> Inverse {
    Inverse::Irreversible {
        reason: reason.into(),
        data_loss: false,
        schema_only: true,
    }
}

/// A change the schema model does not see (rows, privileges, owners, roles, whatever a
/// function or a procedure does): only a down file undoes it.
pub(crate) fn unseen(reason: impl Into<String>) -> Inverse {
    Inverse::Irreversible {
        reason: reason.into(),
        data_loss: false,
        schema_only: false,
    }
}

pub(crate) fn loses_data() -> Inverse {
    Inverse::Irreversible {
        reason: LOSES_DATA.into(),
        data_loss: true,
        schema_only: false,
    }
}

pub(crate) fn unsupported(text: &str) -> Inverse {
    irreversible(format!(
        "pgkeel cannot generate the inverse of `{}`: write a .down.sql",
        head(text)
    ))
}

/// A statement of a kind pgkeel does not know: it may change anything.
pub(crate) fn unknown(text: &str) -> Inverse {
    unseen(format!(
        "pgkeel cannot tell what `{}` changes: write a .down.sql",
        head(text)
    ))
}

/// The first words of a statement (`CREATE TABLE foo …`), for messages.
pub fn head(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.len() > 3 {
        format!("{} …", words[..3].join(" "))
    } else {
        words.join(" ")
    }
}

/// An object the migration created, so later statements that only change it need no inverse.
/// Schemas are normalised: an unqualified name is taken to be in `public`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Obj {
    /// Tables, views, materialized views, sequences, indexes (one namespace: pg_class).
    Rel(String, String),
    /// Types, enums, domains.
    Type(String, String),
    Schema(String),
    Column(String, String, String),
    Constraint(String, String, String),
    /// Functions and procedures, by name only.
    Function(String, String),
}

impl Obj {
    fn name(&self) -> &str {
        match self {
            Obj::Rel(_, n)
            | Obj::Type(_, n)
            | Obj::Schema(n)
            | Obj::Column(_, _, n)
            | Obj::Constraint(_, _, n)
            | Obj::Function(_, n) => n,
        }
    }
}

/// Every string in a parse tree (names, literals), and each dot-separated part of it, so
/// `nextval('public.seq')` mentions `seq`. Over-approximates what the node depends on.
pub(crate) fn mentions(node: &impl Serialize) -> std::collections::HashSet<String> {
    fn walk(v: &serde_json::Value, out: &mut std::collections::HashSet<String>) {
        match v {
            serde_json::Value::String(s) => {
                for part in s.split('.') {
                    out.insert(part.trim_matches('"').to_string());
                }
                out.insert(s.clone());
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            serde_json::Value::Object(o) => o.values().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = std::collections::HashSet::new();
    if let Ok(v) = serde_json::to_value(node) {
        walk(&v, &mut out);
    }
    out
}

pub(crate) fn norm_schema(s: &str) -> String {
    if s.is_empty() {
        "public".into()
    } else {
        s.to_string()
    }
}

pub(crate) fn rel_obj(rv: &pb::RangeVar) -> Obj {
    Obj::Rel(norm_schema(&rv.schemaname), rv.relname.clone())
}

/// `[schema.]name` from a list of name parts (`["s", "t"]`), as an object.
pub(crate) fn names_obj(names: &[String], kind: fn(String, String) -> Obj) -> Option<Obj> {
    match names {
        [name] => Some(kind("public".into(), name.clone())),
        [schema, name] => Some(kind(schema.clone(), name.clone())),
        [_, schema, name] => Some(kind(schema.clone(), name.clone())),
        _ => None,
    }
}

#[derive(Debug, Default)]
pub(crate) struct Inverter {
    created: Vec<Obj>,
    /// The catalog's state of altered columns before the migration.
    before: Before,
    /// Columns whose default / NOT NULL an earlier statement already changed: the earlier
    /// statement's inverse, which runs later, restores the original state.
    altered: std::collections::HashSet<(String, String, String, bool)>,
}

impl Inverter {}
