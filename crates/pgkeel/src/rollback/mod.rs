//! Rolling migrations back: generating rollback SQL from a migration's parse tree ([`generate`])
//! and running a rollback against the database ([`rollback`]).
//!
//! Generation is pure (no I/O): every statement is parsed with PostgreSQL's own parser and
//! inverted, in reverse order, into SQL with quoted identifiers. A statement whose inverse pgkeel
//! cannot know (dropped data, a previous default, an enum value) is reported as irreversible with
//! the reason, and then no SQL is produced at all: a partial rollback is worse than none.
//! Statements that only change objects the same migration created need no inverse of their own
//! (dropping the object undoes them), so `CREATE TABLE t …; INSERT INTO t …; COMMENT ON TABLE t …`
//! inverts to `DROP TABLE IF EXISTS t` — unless the change depends on something created after the
//! object (a column of a type created later): then it is undone in place, so every drop runs
//! after what depends on it.
//!
//! Running takes the deploy lock like `migrate`, refuses to roll back a migration that later
//! ones still build on (unless asked to cascade), and sends each rollback as one batch: `BEGIN;
//! SET LOCAL …; <rollback>; <ledger update>; <audit row>; COMMIT`. The SQL comes from the
//! migration's `.down.sql`, else from the `rollback_sql` the ledger stored when it was applied.
//! This module decides neither what `migrate` applies nor how anything is rendered.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use pg_query::protobuf as pb;
use pg_query::NodeEnum;

use serde::Serialize;
use tokio_postgres::Client;

use crate::config::Settings;
use crate::db::{DbError, DeployLock, PgError};
use crate::ident::{minimal as ident, quote_literal};
use crate::ledger::{Held, Ledger, LedgerRow};
use crate::location::Location;
use crate::source::{Layout, Migration, MigrationSet, SourceError};
use crate::sql::{Batch, Statement};

// ---------------------------------------------------------------------------------------------
// Generation
// ---------------------------------------------------------------------------------------------

/// Rollback SQL generated from a migration's statements.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Generated {
    /// The rollback, one statement per line group, each ending in `;`. `Some` only when every
    /// statement could be inverted (a migration without statements inverts to `Some("")`).
    pub sql: Option<String>,
    /// The statements that could not be inverted, in file order.
    pub irreversible: Vec<Irreversible>,
    /// Whether an irreversible statement destroys data (DROP TABLE/COLUMN, DELETE, UPDATE,
    /// TRUNCATE, a column type change, …): only a hand-written down file plus a backup can undo it.
    pub data_loss: bool,
}

/// A statement pgkeel cannot invert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Irreversible {
    /// 0-based index in the migration's statements.
    pub statement: usize,
    /// The statement text.
    pub text: String,
    /// Why, and what to do instead.
    pub reason: String,
}

/// The reason given for statements that destroy data.
const LOSES_DATA: &str = "loses data: write a .down.sql";

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
}

impl Before {
    /// Records the state of `schema.table.column` (schema `public` for unqualified names).
    pub fn insert(&mut self, schema: &str, table: &str, column: &str, state: ColumnBefore) {
        self.columns
            .insert((schema.into(), table.into(), column.into()), state);
    }

    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }
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

/// [`generate`] with the catalog's state before the migration: see [`Before`].
pub fn generate_with(stmts: &[Statement], before: &Before) -> Generated {
    let mut inv = Inverter {
        before: before.clone(),
        ..Inverter::default()
    };
    let mut out = Generated::default();
    let mut parts: Vec<Vec<String>> = Vec::with_capacity(stmts.len());
    for (i, s) in stmts.iter().enumerate() {
        match inv.statement_text(&s.text) {
            Inverse::Sql(sql) => parts.push(sql),
            Inverse::Noop => {}
            Inverse::Irreversible { reason, data_loss } => {
                out.data_loss |= data_loss;
                out.irreversible.push(Irreversible {
                    statement: i,
                    text: s.text.clone(),
                    reason,
                });
            }
        }
    }
    if out.irreversible.is_empty() {
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
enum Inverse {
    /// Statements to run, in order.
    Sql(Vec<String>),
    /// Nothing to undo (or undone by dropping an object the migration created).
    Noop,
    Irreversible {
        reason: String,
        data_loss: bool,
    },
}

fn irreversible(reason: impl Into<String>) -> Inverse {
    Inverse::Irreversible {
        reason: reason.into(),
        data_loss: false,
    }
}

fn loses_data() -> Inverse {
    Inverse::Irreversible {
        reason: LOSES_DATA.into(),
        data_loss: true,
    }
}

fn unsupported(text: &str) -> Inverse {
    irreversible(format!(
        "pgkeel cannot generate the inverse of `{}`: write a .down.sql",
        head(text)
    ))
}

/// The first words of a statement, for messages.
fn head(text: &str) -> String {
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
enum Obj {
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
fn mentions(node: &impl Serialize) -> std::collections::HashSet<String> {
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

fn norm_schema(s: &str) -> String {
    if s.is_empty() {
        "public".into()
    } else {
        s.to_string()
    }
}

fn rel_obj(rv: &pb::RangeVar) -> Obj {
    Obj::Rel(norm_schema(&rv.schemaname), rv.relname.clone())
}

/// `[schema.]name` from a list of name parts (`["s", "t"]`), as an object.
fn names_obj(names: &[String], kind: fn(String, String) -> Obj) -> Option<Obj> {
    match names {
        [name] => Some(kind("public".into(), name.clone())),
        [schema, name] => Some(kind(schema.clone(), name.clone())),
        [_, schema, name] => Some(kind(schema.clone(), name.clone())),
        _ => None,
    }
}

#[derive(Debug, Default)]
struct Inverter {
    created: Vec<Obj>,
    /// The catalog's state of altered columns before the migration.
    before: Before,
    /// Columns whose default / NOT NULL an earlier statement already changed: the earlier
    /// statement's inverse, which runs later, restores the original state.
    altered: std::collections::HashSet<(String, String, String, bool)>,
}

impl Inverter {
    fn has(&self, o: &Obj) -> bool {
        self.created.contains(o)
    }

    /// When `o` was created, in creation order.
    fn position(&self, o: &Obj) -> Option<usize> {
        self.created.iter().position(|c| c == o)
    }

    /// Whether `node` may depend on something created after the object at `at`. A change to an
    /// object the migration created can go without an inverse (dropping the object undoes it)
    /// only when it does not: otherwise that later object's drop, which runs first, would fail.
    fn mentions_later(&self, node: &impl Serialize, at: usize) -> bool {
        let names = mentions(node);
        self.created[at + 1..]
            .iter()
            .any(|o| names.contains(o.name()))
    }

    fn has_rel(&self, rv: &pb::RangeVar) -> bool {
        self.has(&rel_obj(rv))
    }

    fn add(&mut self, o: Obj) {
        if !self.has(&o) {
            self.created.push(o);
        }
    }

    fn statement_text(&mut self, text: &str) -> Inverse {
        let parsed = match pg_query::parse(text) {
            Ok(p) => p,
            Err(e) => return irreversible(format!("does not parse: {e}")),
        };
        let mut all = Vec::new();
        for raw in &parsed.protobuf.stmts {
            let Some(node) = raw.stmt.as_ref().and_then(|n| n.node.as_ref()) else {
                continue;
            };
            match self.node(node, text) {
                Inverse::Sql(s) => all.push(s),
                Inverse::Noop => {}
                irr @ Inverse::Irreversible { .. } => return irr,
            }
        }
        if all.is_empty() {
            return Inverse::Noop;
        }
        // Several statements in one text (a DO body): undo them last first.
        all.reverse();
        Inverse::Sql(all.into_iter().flatten().collect())
    }

    fn node(&mut self, node: &NodeEnum, text: &str) -> Inverse {
        use pb::ObjectType as O;
        match node {
            NodeEnum::CreateStmt(s) => {
                let Some(rv) = &s.relation else {
                    return unsupported(text);
                };
                self.add(rel_obj(rv));
                drop_sql("TABLE", &rv_name(rv))
            }
            NodeEnum::CreateTableAsStmt(s) => {
                let Some(rv) = s.into.as_ref().and_then(|i| i.rel.as_ref()) else {
                    return unsupported(text);
                };
                self.add(rel_obj(rv));
                let kind = if s.objtype() == O::ObjectMatview {
                    "MATERIALIZED VIEW"
                } else {
                    "TABLE"
                };
                drop_sql(kind, &rv_name(rv))
            }
            NodeEnum::ViewStmt(s) => {
                let Some(rv) = &s.view else {
                    return unsupported(text);
                };
                if s.replace {
                    return or_replace("view");
                }
                self.add(rel_obj(rv));
                drop_sql("VIEW", &rv_name(rv))
            }
            NodeEnum::IndexStmt(s) => {
                let Some(rv) = &s.relation else {
                    return unsupported(text);
                };
                if s.idxname.is_empty() {
                    return irreversible(
                        "the index has no name (PostgreSQL picks one): name the index (CREATE INDEX name ON …) so it can be dropped",
                    );
                }
                // An index lives in its table's schema. Dropped with a plain DROP INDEX even when
                // built CONCURRENTLY: rollbacks run in a transaction.
                let idx = qualify(&rv.schemaname, &s.idxname);
                self.add(Obj::Rel(norm_schema(&rv.schemaname), s.idxname.clone()));
                drop_sql("INDEX", &idx)
            }
            NodeEnum::CreateSeqStmt(s) => {
                let Some(rv) = &s.sequence else {
                    return unsupported(text);
                };
                self.add(rel_obj(rv));
                drop_sql("SEQUENCE", &rv_name(rv))
            }
            NodeEnum::CreateEnumStmt(s) => self.create_type("TYPE", &s.type_name, text),
            NodeEnum::CreateRangeStmt(s) => self.create_type("TYPE", &s.type_name, text),
            NodeEnum::CreateDomainStmt(s) => self.create_type("DOMAIN", &s.domainname, text),
            NodeEnum::CompositeTypeStmt(s) => {
                let Some(rv) = &s.typevar else {
                    return unsupported(text);
                };
                self.add(Obj::Type(norm_schema(&rv.schemaname), rv.relname.clone()));
                drop_sql("TYPE", &rv_name(rv))
            }
            NodeEnum::CreateFunctionStmt(s) => {
                let what = if s.is_procedure {
                    "procedure"
                } else {
                    "function"
                };
                if s.replace {
                    return or_replace(what);
                }
                if let Some(o) = names_obj(&strings(&s.funcname), Obj::Function) {
                    self.add(o);
                }
                match drop_function_sql(s) {
                    Some(sql) => Inverse::Sql(vec![sql]),
                    None => unsupported(text),
                }
            }
            NodeEnum::CreateTrigStmt(s) => {
                let Some(rv) = &s.relation else {
                    return unsupported(text);
                };
                if s.replace {
                    return or_replace("trigger");
                }
                Inverse::Sql(vec![format!(
                    "DROP TRIGGER IF EXISTS {} ON {}",
                    ident(&s.trigname),
                    rv_name(rv)
                )])
            }
            NodeEnum::CreatePolicyStmt(s) => {
                let Some(rv) = &s.table else {
                    return unsupported(text);
                };
                Inverse::Sql(vec![format!(
                    "DROP POLICY IF EXISTS {} ON {}",
                    ident(&s.policy_name),
                    rv_name(rv)
                )])
            }
            NodeEnum::RuleStmt(s) => {
                let Some(rv) = &s.relation else {
                    return unsupported(text);
                };
                if s.replace {
                    return or_replace("rule");
                }
                Inverse::Sql(vec![format!(
                    "DROP RULE IF EXISTS {} ON {}",
                    ident(&s.rulename),
                    rv_name(rv)
                )])
            }
            NodeEnum::CreateExtensionStmt(s) => {
                if s.if_not_exists {
                    return irreversible(
                        "CREATE EXTENSION IF NOT EXISTS: the extension may have been there before, and dropping it would break what uses it; write a .down.sql",
                    );
                }
                drop_sql("EXTENSION", &ident(&s.extname))
            }
            NodeEnum::CreateSchemaStmt(s) => {
                if s.schemaname.is_empty() {
                    return irreversible(
                        "the schema is named after a role (CREATE SCHEMA AUTHORIZATION): name it so it can be dropped",
                    );
                }
                if !s.schema_elts.is_empty() {
                    return irreversible(
                        "CREATE SCHEMA with elements: create them in separate statements, or write a .down.sql",
                    );
                }
                self.add(Obj::Schema(s.schemaname.clone()));
                drop_sql("SCHEMA", &ident(&s.schemaname))
            }
            NodeEnum::AlterTableStmt(s) => self.alter_table(s, text),
            NodeEnum::RenameStmt(s) => self.rename(s, text),
            NodeEnum::AlterEnumStmt(s) => {
                let ty = qualified_names(&strings(&s.type_name));
                if !s.old_val.is_empty() {
                    return Inverse::Sql(vec![format!(
                        "ALTER TYPE {ty} RENAME VALUE {} TO {}",
                        quote_literal(&s.new_val),
                        quote_literal(&s.old_val)
                    )]);
                }
                match names_obj(&strings(&s.type_name), Obj::Type) {
                    Some(o) if self.has(&o) => Inverse::Noop,
                    _ => irreversible(
                        "PostgreSQL cannot remove an enum value: write a .down.sql that recreates the type, or keep the value",
                    ),
                }
            }
            NodeEnum::DoStmt(s) => self.do_block(s),
            NodeEnum::DropStmt(s) => self.drop(s),
            NodeEnum::AlterObjectSchemaStmt(s) => self.set_schema(s, text),
            NodeEnum::CommentStmt(s) => {
                if self.comment_target_created(s) {
                    Inverse::Noop
                } else {
                    irreversible("the previous comment is unknown: write a .down.sql")
                }
            }
            NodeEnum::GrantStmt(s) => {
                let created = s.targtype == pb::GrantTargetType::AclTargetObject as i32
                    && !s.objects.is_empty()
                    && s.objects.iter().all(|o| match &o.node {
                        Some(NodeEnum::RangeVar(rv)) => self.has_rel(rv),
                        Some(NodeEnum::String(n)) if s.objtype() == O::ObjectSchema => {
                            self.has(&Obj::Schema(n.sval.clone()))
                        }
                        _ => false,
                    });
                if created {
                    Inverse::Noop
                } else {
                    irreversible("the previous privileges are unknown: write a .down.sql")
                }
            }
            NodeEnum::AlterOwnerStmt(s) => match &s.relation {
                Some(rv) if self.has_rel(rv) => Inverse::Noop,
                _ => irreversible("the previous owner is unknown: write a .down.sql"),
            },
            NodeEnum::AlterSeqStmt(s) => match &s.sequence {
                Some(rv) if self.has_rel(rv) => Inverse::Noop,
                _ => irreversible("the sequence's previous settings are unknown: write a .down.sql"),
            },
            NodeEnum::AlterDomainStmt(s) => {
                match names_obj(&strings(&s.type_name), Obj::Type).and_then(|o| self.position(&o)) {
                    Some(at) if !self.mentions_later(s, at) => Inverse::Noop,
                    _ => unsupported(text),
                }
            }
            NodeEnum::InsertStmt(s) => {
                self.dml(s.relation.as_ref(), s.with_clause.is_some(), false, "inserts rows pgkeel cannot tell apart from others: write a .down.sql that deletes them")
            }
            NodeEnum::UpdateStmt(s) => {
                self.dml(s.relation.as_ref(), s.with_clause.is_some(), true, LOSES_DATA)
            }
            NodeEnum::DeleteStmt(s) => {
                self.dml(s.relation.as_ref(), s.with_clause.is_some(), true, LOSES_DATA)
            }
            NodeEnum::TruncateStmt(s) => {
                let created = s.behavior() != pb::DropBehavior::DropCascade
                    && s.relations
                        .iter()
                        .all(|r| matches!(&r.node, Some(NodeEnum::RangeVar(rv)) if self.has_rel(rv)));
                if created {
                    Inverse::Noop
                } else {
                    loses_data()
                }
            }
            NodeEnum::RefreshMatViewStmt(_)
            | NodeEnum::VacuumStmt(_)
            | NodeEnum::CheckPointStmt(_)
            | NodeEnum::NotifyStmt(_) => Inverse::Noop,
            NodeEnum::VariableSetStmt(s) => match s.name.as_str() {
                "search_path" | "role" | "session_authorization" | "" => irreversible(
                    "SET changes how later statements resolve names or who owns what: write a .down.sql",
                ),
                _ => Inverse::Noop,
            },
            _ => unsupported(text),
        }
    }

    fn create_type(&mut self, kind: &str, names: &[pb::Node], text: &str) -> Inverse {
        let parts = strings(names);
        let Some(o) = names_obj(&parts, Obj::Type) else {
            return unsupported(text);
        };
        self.add(o);
        drop_sql(kind, &qualified_names(&parts))
    }

    fn dml(
        &self,
        rel: Option<&pb::RangeVar>,
        with: bool,
        data_loss: bool,
        reason: &str,
    ) -> Inverse {
        // A WITH clause may write to other tables (data-modifying CTEs).
        match rel {
            Some(rv) if !with && self.has_rel(rv) => Inverse::Noop,
            _ => Inverse::Irreversible {
                reason: reason.into(),
                data_loss,
            },
        }
    }

    fn alter_table(&mut self, a: &pb::AlterTableStmt, text: &str) -> Inverse {
        use pb::AlterTableType as T;
        let Some(rv) = &a.relation else {
            return unsupported(text);
        };
        let Some(kw) = alter_keyword(a.objtype()) else {
            return unsupported(text);
        };
        let table_obj = rel_obj(rv);
        let (schema, table) = match &table_obj {
            Obj::Rel(s, t) => (s.clone(), t.clone()),
            _ => unreachable!("rel_obj returns a Rel"),
        };
        let created_at = self.position(&table_obj);
        let column = |kw: &str| if kw == "TYPE" { "ATTRIBUTE" } else { "COLUMN" };
        let mut fragments: Vec<String> = Vec::new();
        let mut effects: Vec<Obj> = Vec::new();
        for cmd in &a.cmds {
            let Some(NodeEnum::AlterTableCmd(c)) = &cmd.node else {
                return unsupported(text);
            };
            let sub = c.subtype();
            // Changes to a relation this migration created go away when it is dropped, unless
            // they depend on something created after it (see `mentions_later`). Added columns
            // and named constraints are still undone in place, which is always in the right
            // order; an attached partition would be dropped with its parent.
            let named_constraint = matches!(
                c.def.as_ref().and_then(|d| d.node.as_ref()),
                Some(NodeEnum::Constraint(con)) if !con.conname.is_empty()
            );
            let explicit = matches!(sub, T::AtAddColumn | T::AtAttachPartition)
                || (sub == T::AtAddConstraint && named_constraint);
            if let (Some(at), false) = (created_at, explicit) {
                if !self.mentions_later(c, at) {
                    continue;
                }
                if sub == T::AtColumnDefault {
                    // The default uses a later object: drop it first; the table goes anyway.
                    fragments.push(format!("ALTER COLUMN {} DROP DEFAULT", ident(&c.name)));
                    continue;
                }
            }
            let col = ident(&c.name);
            let fragment = match sub {
                T::AtAddColumn => {
                    let Some(NodeEnum::ColumnDef(def)) = c.def.as_ref().and_then(|d| d.node.as_ref()) else {
                        return unsupported(text);
                    };
                    effects.push(Obj::Column(schema.clone(), table.clone(), def.colname.clone()));
                    format!("DROP {} IF EXISTS {}", column(kw), ident(&def.colname))
                }
                T::AtAddConstraint => {
                    let Some(NodeEnum::Constraint(con)) = c.def.as_ref().and_then(|d| d.node.as_ref()) else {
                        return unsupported(text);
                    };
                    if con.conname.is_empty() {
                        return irreversible(
                            "the constraint has no name (PostgreSQL picks one): name the constraint (ADD CONSTRAINT name …) so it can be dropped",
                        );
                    }
                    if !con.indexname.is_empty() {
                        return irreversible(
                            "the constraint took over an existing index (USING INDEX), which dropping it would remove: write a .down.sql",
                        );
                    }
                    effects.push(Obj::Constraint(schema.clone(), table.clone(), con.conname.clone()));
                    format!("DROP CONSTRAINT IF EXISTS {}", ident(&con.conname))
                }
                T::AtSetNotNull | T::AtDropNotNull | T::AtColumnDefault => {
                    let is_default = sub == T::AtColumnDefault;
                    let key = (schema.clone(), table.clone(), c.name.clone());
                    if !self
                        .altered
                        .insert((key.0.clone(), key.1.clone(), key.2.clone(), is_default))
                    {
                        continue;
                    }
                    match (sub, self.before.columns.get(&key)) {
                        (T::AtSetNotNull, Some(b)) if b.not_null => continue,
                        (T::AtDropNotNull, Some(b)) if !b.not_null => continue,
                        // Without the catalog's state, SET NOT NULL is taken to have changed
                        // the column (see `generate`).
                        (T::AtSetNotNull, _) => format!("ALTER COLUMN {col} DROP NOT NULL"),
                        (T::AtDropNotNull, _) => format!("ALTER COLUMN {col} SET NOT NULL"),
                        (_, Some(ColumnBefore { default: Some(d), .. })) => {
                            format!("ALTER COLUMN {col} SET DEFAULT {d}")
                        }
                        (_, Some(ColumnBefore { default: None, .. })) => {
                            format!("ALTER COLUMN {col} DROP DEFAULT")
                        }
                        (_, None) => {
                            return irreversible(
                                "previous default unknown: write a .down.sql that sets it back",
                            )
                        }
                    }
                }
                T::AtAddIdentity => format!("ALTER COLUMN {col} DROP IDENTITY IF EXISTS"),
                T::AtEnableRowSecurity => "DISABLE ROW LEVEL SECURITY".into(),
                T::AtDisableRowSecurity => "ENABLE ROW LEVEL SECURITY".into(),
                T::AtForceRowSecurity => "NO FORCE ROW LEVEL SECURITY".into(),
                T::AtNoForceRowSecurity => "FORCE ROW LEVEL SECURITY".into(),
                T::AtDisableTrig => format!("ENABLE TRIGGER {col}"),
                T::AtEnableTrig => format!("DISABLE TRIGGER {col}"),
                T::AtDisableTrigAll => "ENABLE TRIGGER ALL".into(),
                T::AtEnableTrigAll => "DISABLE TRIGGER ALL".into(),
                T::AtDisableTrigUser => "ENABLE TRIGGER USER".into(),
                T::AtEnableTrigUser => "DISABLE TRIGGER USER".into(),
                // A validated constraint cannot be marked NOT VALID again; leaving it validated
                // is harmless, and dropping a constraint added earlier undoes both.
                T::AtValidateConstraint => continue,
                T::AtAttachPartition => {
                    let Some(NodeEnum::PartitionCmd(p)) = c.def.as_ref().and_then(|d| d.node.as_ref()) else {
                        return unsupported(text);
                    };
                    let Some(part) = &p.name else {
                        return unsupported(text);
                    };
                    format!("DETACH PARTITION {}", rv_name(part))
                }
                T::AtDropColumn => {
                    if self.has(&Obj::Column(schema.clone(), table.clone(), c.name.clone())) {
                        continue;
                    }
                    return loses_data();
                }
                T::AtDropConstraint => {
                    if self.has(&Obj::Constraint(schema.clone(), table.clone(), c.name.clone())) {
                        continue;
                    }
                    return irreversible(
                        "the dropped constraint's definition is unknown: write a .down.sql",
                    );
                }
                T::AtAlterColumnType => {
                    return Inverse::Irreversible {
                        reason: "the column's previous type is unknown and converting back may change values: write a .down.sql".into(),
                        data_loss: true,
                    }
                }
                T::AtChangeOwner => {
                    return irreversible("the previous owner is unknown: write a .down.sql")
                }
                other => {
                    return irreversible(format!(
                        "pgkeel cannot invert this ALTER {kw} subcommand ({}): write a .down.sql",
                        other.as_str_name()
                    ))
                }
            };
            fragments.push(fragment);
        }
        for e in effects {
            self.add(e);
        }
        if fragments.is_empty() {
            return Inverse::Noop;
        }
        fragments.reverse();
        Inverse::Sql(vec![format!(
            "ALTER {kw} {}{}{} {}",
            if a.missing_ok { "IF EXISTS " } else { "" },
            if rv.inh { "" } else { "ONLY " },
            rv_name(rv),
            fragments.join(", ")
        )])
    }

    fn rename(&mut self, r: &pb::RenameStmt, text: &str) -> Inverse {
        use pb::ObjectType as O;
        let if_exists = if r.missing_ok { "IF EXISTS " } else { "" };
        let rename_type = r.rename_type();
        match (rename_type, &r.relation) {
            (
                O::ObjectTable
                | O::ObjectView
                | O::ObjectMatview
                | O::ObjectSequence
                | O::ObjectIndex
                | O::ObjectForeignTable,
                Some(rv),
            ) => {
                let kw = alter_keyword(rename_type).unwrap_or("TABLE");
                if self.has_rel(rv) {
                    self.add(Obj::Rel(norm_schema(&rv.schemaname), r.newname.clone()));
                }
                Inverse::Sql(vec![format!(
                    "ALTER {kw} {if_exists}{} RENAME TO {}",
                    qualify(&rv.schemaname, &r.newname),
                    ident(&rv.relname)
                )])
            }
            (O::ObjectColumn | O::ObjectAttribute, Some(rv)) => {
                let kw = if rename_type == O::ObjectAttribute {
                    "TYPE"
                } else {
                    alter_keyword(r.relation_type()).unwrap_or("TABLE")
                };
                let what = if rename_type == O::ObjectAttribute {
                    "ATTRIBUTE"
                } else {
                    "COLUMN"
                };
                let (s, t) = (norm_schema(&rv.schemaname), rv.relname.clone());
                if self.has(&Obj::Column(s.clone(), t.clone(), r.subname.clone())) {
                    self.add(Obj::Column(s, t, r.newname.clone()));
                }
                Inverse::Sql(vec![format!(
                    "ALTER {kw} {if_exists}{} RENAME {what} {} TO {}",
                    rv_name(rv),
                    ident(&r.newname),
                    ident(&r.subname)
                )])
            }
            (O::ObjectTabconstraint, Some(rv)) => {
                let (s, t) = (norm_schema(&rv.schemaname), rv.relname.clone());
                if self.has(&Obj::Constraint(s.clone(), t.clone(), r.subname.clone())) {
                    self.add(Obj::Constraint(s, t, r.newname.clone()));
                }
                Inverse::Sql(vec![format!(
                    "ALTER TABLE {if_exists}{} RENAME CONSTRAINT {} TO {}",
                    rv_name(rv),
                    ident(&r.newname),
                    ident(&r.subname)
                )])
            }
            (O::ObjectTrigger | O::ObjectPolicy, Some(rv)) => {
                let kw = if rename_type == O::ObjectTrigger {
                    "TRIGGER"
                } else {
                    "POLICY"
                };
                Inverse::Sql(vec![format!(
                    "ALTER {kw} {} ON {} RENAME TO {}",
                    ident(&r.newname),
                    rv_name(rv),
                    ident(&r.subname)
                )])
            }
            (O::ObjectSchema, _) => {
                if self.has(&Obj::Schema(r.subname.clone())) {
                    self.add(Obj::Schema(r.newname.clone()));
                }
                Inverse::Sql(vec![format!(
                    "ALTER SCHEMA {} RENAME TO {}",
                    ident(&r.newname),
                    ident(&r.subname)
                )])
            }
            (O::ObjectType | O::ObjectDomain, _) => {
                let names = match r.object.as_deref().and_then(|o| o.node.as_ref()) {
                    Some(NodeEnum::List(l)) => strings(&l.items),
                    Some(NodeEnum::TypeName(t)) => strings(&t.names),
                    _ => return unsupported(text),
                };
                let Some(Obj::Type(schema, old)) = names_obj(&names, Obj::Type) else {
                    return unsupported(text);
                };
                if self.has(&Obj::Type(schema.clone(), old.clone())) {
                    self.add(Obj::Type(schema, r.newname.clone()));
                }
                let kw = if rename_type == O::ObjectDomain {
                    "DOMAIN"
                } else {
                    "TYPE"
                };
                let mut renamed = names.clone();
                if let Some(last) = renamed.last_mut() {
                    *last = r.newname.clone();
                }
                Inverse::Sql(vec![format!(
                    "ALTER {kw} {} RENAME TO {}",
                    qualified_names(&renamed),
                    ident(&old)
                )])
            }
            _ => irreversible(format!(
                "pgkeel cannot invert `{}`: write a .down.sql",
                head(text)
            )),
        }
    }

    /// `ALTER TABLE t SET SCHEMA s` back to where `t` was, when the statement says where that is.
    fn set_schema(&mut self, s: &pb::AlterObjectSchemaStmt, text: &str) -> Inverse {
        let Some(rv) = &s.relation else {
            return unsupported(text);
        };
        let Some(kw) = alter_keyword(s.object_type()) else {
            return unsupported(text);
        };
        if rv.schemaname.is_empty() {
            return irreversible(
                "the relation's schema before SET SCHEMA is not written in the statement: qualify the name (ALTER TABLE old_schema.t SET SCHEMA …) or write a .down.sql",
            );
        }
        if self.has_rel(rv) {
            self.add(Obj::Rel(s.newschema.clone(), rv.relname.clone()));
        }
        Inverse::Sql(vec![format!(
            "ALTER {kw} {}{} SET SCHEMA {}",
            if s.missing_ok { "IF EXISTS " } else { "" },
            qualify(&s.newschema, &rv.relname),
            ident(&rv.schemaname)
        )])
    }

    fn drop(&mut self, d: &pb::DropStmt) -> Inverse {
        use pb::ObjectType as O;
        let kind = d.remove_type();
        let cascade = d.behavior() == pb::DropBehavior::DropCascade;
        let targets: Option<Vec<Obj>> = d
            .objects
            .iter()
            .map(|o| match (kind, o.node.as_ref()?) {
                (
                    O::ObjectTable
                    | O::ObjectView
                    | O::ObjectMatview
                    | O::ObjectSequence
                    | O::ObjectIndex
                    | O::ObjectForeignTable,
                    NodeEnum::List(l),
                ) => names_obj(&strings(&l.items), Obj::Rel),
                (O::ObjectType | O::ObjectDomain, NodeEnum::TypeName(t)) => {
                    names_obj(&strings(&t.names), Obj::Type)
                }
                (O::ObjectSchema, NodeEnum::String(s)) => Some(Obj::Schema(s.sval.clone())),
                _ => None,
            })
            .collect();
        // Dropping what this migration created (a scratch table, say) needs no inverse: the
        // object did not exist before the migration either.
        if !cascade && targets.is_some_and(|t| t.iter().all(|o| self.has(o))) {
            return Inverse::Noop;
        }
        let data = cascade
            || matches!(
                kind,
                O::ObjectTable
                    | O::ObjectSchema
                    | O::ObjectSequence
                    | O::ObjectMatview
                    | O::ObjectForeignTable
            );
        if data {
            loses_data()
        } else {
            irreversible(format!(
                "the dropped {}'s definition is unknown: write a .down.sql",
                object_word(kind)
            ))
        }
    }

    fn comment_target_created(&self, c: &pb::CommentStmt) -> bool {
        use pb::ObjectType as O;
        let Some(node) = c.object.as_deref().and_then(|o| o.node.as_ref()) else {
            return false;
        };
        let list = |n: &NodeEnum| match n {
            NodeEnum::List(l) => Some(strings(&l.items)),
            _ => None,
        };
        let target = match c.objtype() {
            O::ObjectTable
            | O::ObjectView
            | O::ObjectMatview
            | O::ObjectSequence
            | O::ObjectIndex
            | O::ObjectForeignTable => list(node).and_then(|n| names_obj(&n, Obj::Rel)),
            O::ObjectType | O::ObjectDomain => match node {
                NodeEnum::TypeName(t) => names_obj(&strings(&t.names), Obj::Type),
                _ => None,
            },
            O::ObjectSchema => match node {
                NodeEnum::String(s) => Some(Obj::Schema(s.sval.clone())),
                _ => None,
            },
            O::ObjectColumn | O::ObjectTabconstraint => {
                let Some(mut parts) = list(node) else {
                    return false;
                };
                let Some(last) = parts.pop() else {
                    return false;
                };
                let Some(Obj::Rel(s, t)) = names_obj(&parts, Obj::Rel) else {
                    return false;
                };
                if self.has(&Obj::Rel(s.clone(), t.clone())) {
                    return true;
                }
                Some(if c.objtype() == O::ObjectColumn {
                    Obj::Column(s, t, last)
                } else {
                    Obj::Constraint(s, t, last)
                })
            }
            _ => None,
        };
        target.is_some_and(|t| self.has(&t))
    }

    /// drizzle-kit's `DO $$ BEGIN <statements> EXCEPTION WHEN duplicate_object THEN null; END $$`:
    /// the inverse of the statements inside.
    fn do_block(&mut self, s: &pb::DoStmt) -> Inverse {
        let mut body = None;
        let mut plpgsql = true;
        for arg in &s.args {
            let Some(NodeEnum::DefElem(d)) = &arg.node else {
                continue;
            };
            let value = match d.arg.as_deref().and_then(|a| a.node.as_ref()) {
                Some(NodeEnum::String(v)) => v.sval.as_str(),
                _ => continue,
            };
            match d.defname.as_str() {
                "as" => body = Some(value),
                "language" => plpgsql = value.eq_ignore_ascii_case("plpgsql"),
                _ => {}
            }
        }
        let Some(inner) = body.filter(|_| plpgsql).and_then(drizzle_do_inner) else {
            return irreversible(
                "pgkeel cannot tell what a DO block changes (only drizzle-kit's `DO $$ BEGIN …; EXCEPTION WHEN duplicate_object THEN null; END $$` is understood): write a .down.sql",
            );
        };
        match self.statement_text(inner) {
            Inverse::Irreversible { reason, data_loss } => Inverse::Irreversible {
                reason: format!("inside the DO block: {reason}"),
                data_loss,
            },
            other => other,
        }
    }
}

/// The statements inside drizzle-kit's DO block, or `None` when the body has another shape.
fn drizzle_do_inner(body: &str) -> Option<&str> {
    let b = body.trim();
    // `get`: the body may start with a multi-byte character (`--ñé` …), where byte 5 is not a
    // char boundary.
    if !b.get(..5).is_some_and(|w| w.eq_ignore_ascii_case("begin")) {
        return None;
    }
    let rest = &b[5..];
    if !rest.starts_with(char::is_whitespace) {
        return None;
    }
    let lower = rest.to_ascii_lowercase();
    let at = lower.rfind("exception")?;
    let tail = lower[at + "exception".len()..]
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace(" ;", ";");
    let tail = tail.strip_suffix(';').unwrap_or(&tail);
    if tail != "when duplicate_object then null; end" {
        return None;
    }
    let inner = rest[..at].trim();
    (!inner.is_empty()).then_some(inner)
}

fn or_replace(what: &str) -> Inverse {
    irreversible(format!(
        "CREATE OR REPLACE {what}: it may have replaced an earlier definition, which dropping would not bring back; write a .down.sql"
    ))
}

fn drop_sql(kind: &str, name: &str) -> Inverse {
    Inverse::Sql(vec![format!("DROP {kind} IF EXISTS {name}")])
}

fn object_word(kind: pb::ObjectType) -> String {
    kind.as_str_name()
        .trim_start_matches("OBJECT_")
        .to_ascii_lowercase()
        .replace('_', " ")
}

/// `ALTER <keyword>` for the relation kinds pgkeel inverts.
fn alter_keyword(kind: pb::ObjectType) -> Option<&'static str> {
    use pb::ObjectType as O;
    Some(match kind {
        O::ObjectTable => "TABLE",
        O::ObjectForeignTable => "FOREIGN TABLE",
        O::ObjectView => "VIEW",
        O::ObjectMatview => "MATERIALIZED VIEW",
        O::ObjectSequence => "SEQUENCE",
        O::ObjectIndex => "INDEX",
        O::ObjectType => "TYPE",
        _ => return None,
    })
}

/// `DROP FUNCTION IF EXISTS name(argtypes)` for a CREATE FUNCTION/PROCEDURE, rendered by
/// PostgreSQL's deparser so argument types (arrays, qualified and quoted types) come out right.
fn drop_function_sql(f: &pb::CreateFunctionStmt) -> Option<String> {
    use pb::FunctionParameterMode as M;
    let args: Vec<pb::Node> = f
        .parameters
        .iter()
        .filter_map(|p| match &p.node {
            Some(NodeEnum::FunctionParameter(fp)) => Some(fp),
            _ => None,
        })
        // RETURNS TABLE columns are results, not arguments; OUT arguments do not identify a
        // function (they do a procedure).
        .filter(|fp| match fp.mode() {
            M::FuncParamTable => false,
            M::FuncParamOut => f.is_procedure,
            _ => true,
        })
        .map(|fp| pb::Node {
            node: Some(NodeEnum::FunctionParameter(Box::new(
                pb::FunctionParameter {
                    name: String::new(),
                    arg_type: fp.arg_type.clone(),
                    // No mode written for plain input arguments: `f(int, text)`.
                    mode: if fp.mode() == M::FuncParamIn {
                        M::FuncParamDefault as i32
                    } else {
                        fp.mode
                    },
                    defexpr: None,
                },
            ))),
        })
        .collect();
    let drop = pb::DropStmt {
        objects: vec![pb::Node {
            node: Some(NodeEnum::ObjectWithArgs(pb::ObjectWithArgs {
                objname: f.funcname.clone(),
                objargs: Vec::new(),
                objfuncargs: args,
                args_unspecified: false,
            })),
        }],
        remove_type: if f.is_procedure {
            pb::ObjectType::ObjectProcedure
        } else {
            pb::ObjectType::ObjectFunction
        } as i32,
        behavior: pb::DropBehavior::DropRestrict as i32,
        missing_ok: true,
        concurrent: false,
    };
    NodeEnum::DropStmt(drop).deparse().ok()
}

/// The `sval`s of a list of `String` nodes.
fn strings(nodes: &[pb::Node]) -> Vec<String> {
    nodes
        .iter()
        .filter_map(|n| match &n.node {
            Some(NodeEnum::String(s)) => Some(s.sval.clone()),
            _ => None,
        })
        .collect()
}

fn rv_name(rv: &pb::RangeVar) -> String {
    qualify(&rv.schemaname, &rv.relname)
}

fn qualify(schema: &str, name: &str) -> String {
    if schema.is_empty() {
        ident(name)
    } else {
        format!("{}.{}", ident(schema), ident(name))
    }
}

fn qualified_names(parts: &[String]) -> String {
    parts.iter().map(|p| ident(p)).collect::<Vec<_>>().join(".")
}

// ---------------------------------------------------------------------------------------------
// Running
// ---------------------------------------------------------------------------------------------

/// SQLSTATE raised by the guard when another process rolled the migration back first.
const NOT_APPLIED: &str = "PGS02";

/// Options of `pgkeel rollback`.
#[derive(Debug, Clone, Default)]
pub struct RollbackOptions {
    /// Also roll back every later migration that is still applied, newest first.
    pub cascade: bool,
    /// Return the SQL that would run; change nothing (no lock, no writes).
    pub dry_run: bool,
    /// The caller holds the deploy lock on this connection and has created the ledger: the lock
    /// is neither taken nor released, the ledger not checked (see [`crate::db::LockedSession`]).
    pub locked: Option<crate::db::LockedSession>,
    /// With `locked`: the ledger's rows as that session last read or wrote them (see
    /// [`crate::ledger::RowCache`]).
    pub row_cache: Option<std::sync::Arc<crate::ledger::RowCache>>,
}

/// Where a rollback's SQL came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RollbackSource {
    /// The migration's `.down.sql` on disk.
    DownFile,
    /// The ledger's `rollback_sql`, stored when the migration was applied.
    Stored,
}

impl std::fmt::Display for RollbackSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RollbackSource::DownFile => "down file",
            RollbackSource::Stored => "stored rollback_sql",
        })
    }
}

/// One migration rolled back (or, in a dry run, that would be).
#[derive(Debug, Clone, Serialize)]
pub struct RolledBack {
    pub id: String,
    pub duration_ms: u64,
    pub source: RollbackSource,
    pub statements: usize,
    /// Dry run only: the exact SQL that would be sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
}

/// The outcome of `pgkeel rollback`.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackReport {
    pub dry_run: bool,
    /// In the order they were (or would be) rolled back: newest first, the requested one last.
    pub rolled_back: Vec<RolledBack>,
    pub duration_ms: u64,
}

/// Errors of `pgkeel rollback`. Each says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("no migration `{id}` in {} or in the ledger; `pgkeel status` lists the ids", .dir.display())]
    UnknownId { id: String, dir: PathBuf },
    #[error("`{id}` matches several migrations ({}); give the whole id", .candidates.join(", "))]
    AmbiguousId { id: String, candidates: Vec<String> },
    #[error("{id} is not applied (it is {state}): there is nothing to roll back; `pgkeel status` shows every migration's state")]
    NotApplied { id: String, state: String },
    #[error(
        "cannot roll back {id}: {} later migration(s) still applied ({}); roll them back first, or pass --cascade to roll back all of them, newest first",
        .later.len(), .later.join(", ")
    )]
    LaterApplied {
        id: String,
        /// Newest first: the order `--cascade` would roll them back in.
        later: Vec<String>,
    },
    #[error("{id} is marked `-- pgkeel:irreversible`: it cannot be rolled back; restore a backup, or undo it in a new migration (`pgkeel new NAME`)")]
    Irreversible { id: String },
    #[error("no rollback for {id}: write {} (pgkeel stores a generated rollback at apply time only when every statement can be inverted; irreversible statements need one written by hand)", .expected.display())]
    NoRollback { id: String, expected: PathBuf },
    #[error("no rollback for {id}: its file is gone and the ledger stores no rollback_sql; restore the migration file with a down file next to it, or undo it in a new migration")]
    NoRollbackMissingFile { id: String },
    #[error("syntax error in the rollback of {id} ({source_kind}): {message}{}", location_note(.location))]
    Syntax {
        id: String,
        source_kind: RollbackSource,
        message: String,
        location: Option<Location>,
    },
    #[error("the rollback of {id}: `{statement}`: {problem}")]
    TransactionControl {
        id: String,
        statement: String,
        problem: crate::sql::BlockProblem,
    },
    #[error(
        "rollback of {id} failed{}{}: {pg}{}\n{}",
        statement_note(*.statement, *.statements),
        attempts_note(*.attempts),
        location_note(.location),
        done_note(*.statements_done, *.statements, .rolled_back_before)
    )]
    Failed {
        id: String,
        source_kind: RollbackSource,
        pg: PgError,
        location: Option<Location>,
        /// 0-based index of the failing statement, when known: the server gives no position
        /// for some errors, and then only a statement run alone can be named.
        statement: Option<usize>,
        statements: usize,
        attempts: u32,
        /// Statements of this rollback that ran and stayed (non-transactional ones run alone).
        statements_done: usize,
        /// Migrations this run rolled back before the failure (they stay rolled back).
        rolled_back_before: Vec<String>,
    },
}

fn location_note(l: &Option<Location>) -> String {
    l.as_ref().map(|l| format!("\n{l}")).unwrap_or_default()
}

fn statement_note(statement: Option<usize>, statements: usize) -> String {
    match statement {
        Some(i) if statements > 1 => format!(" at statement {} of {statements}", i + 1),
        _ => String::new(),
    }
}

fn attempts_note(attempts: u32) -> String {
    if attempts > 1 {
        format!(" after {attempts} tries")
    } else {
        String::new()
    }
}

fn done_note(done: usize, statements: usize, before: &[String]) -> String {
    let this = if done == 0 {
        "its transaction was rolled back: the migration is still applied".to_string()
    } else {
        format!(
            "statements 1 to {done} of {statements} ran outside a transaction and stay undone; the ledger still says applied: fix the cause and run the rollback again"
        )
    };
    if before.is_empty() {
        this
    } else {
        format!(
            "{this}; rolled back before it in this run: {}",
            before.join(", ")
        )
    }
}

impl RollbackError {
    /// The server's error, when there is one.
    pub fn pg(&self) -> Option<&PgError> {
        match self {
            RollbackError::Failed { pg, .. } => Some(pg),
            RollbackError::Db(d) => d.pg(),
            _ => None,
        }
    }

    /// The request itself cannot be carried out as asked (unknown id, not applied, later
    /// migrations in the way): a usage error rather than a problem with files or the server.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            RollbackError::UnknownId { .. }
                | RollbackError::AmbiguousId { .. }
                | RollbackError::NotApplied { .. }
                | RollbackError::LaterApplied { .. }
        )
    }

    /// Problems with the migration files (no rollback written, a rollback that does not parse).
    pub fn is_validation(&self) -> bool {
        matches!(
            self,
            RollbackError::Source(_)
                | RollbackError::Irreversible { .. }
                | RollbackError::NoRollback { .. }
                | RollbackError::NoRollbackMissingFile { .. }
                | RollbackError::Syntax { .. }
                | RollbackError::TransactionControl { .. }
        )
    }
}

/// One migration to roll back, resolved before anything runs.
#[derive(Debug)]
struct Unit<'a> {
    id: String,
    migration: Option<&'a Migration>,
    source: RollbackSource,
    /// The rollback text (a down file's, or the stored one).
    text: String,
    /// Where `text` lives, for error locations (down files only).
    path: Option<PathBuf>,
    stmts: Vec<Statement>,
    no_transaction: bool,
    lock_timeout: Duration,
    statement_timeout: Duration,
    retries: u32,
}

/// Rolls back migration `id` (and, with `cascade`, every later one still applied, newest first).
///
/// Takes the deploy lock (not in a dry run), re-reads the ledger under it, resolves and parses
/// every rollback before running any, then runs each as one transaction (statements PostgreSQL
/// refuses inside one run alone). The ledger row becomes `rolled_back` in the same transaction,
/// so the next `migrate` applies the migration again.
pub async fn rollback(
    client: &Client,
    settings: &Settings,
    set: &MigrationSet,
    id: &str,
    opts: &RollbackOptions,
) -> Result<RollbackReport, RollbackError> {
    let started = Instant::now();
    let ledger = Ledger::from_settings(settings);
    if opts.dry_run {
        let rows = ledger.rows(client).await?;
        let units = resolve(settings, set, &rows, id, opts.cascade)?;
        let drizzle = drizzle_table_exists(client, settings, set).await?;
        let runner = Runner::new(settings, &ledger, drizzle);
        return Ok(RollbackReport {
            dry_run: true,
            rolled_back: units
                .iter()
                .map(|u| RolledBack {
                    id: u.id.clone(),
                    duration_ms: 0,
                    source: u.source,
                    statements: u.stmts.len(),
                    sql: Some(
                        runner
                            .groups(u)
                            .iter()
                            .map(|g| g.sql())
                            .collect::<Vec<_>>()
                            .join("\n"),
                    ),
                })
                .collect(),
            duration_ms: started.elapsed().as_millis() as u64,
        });
    }
    let lock = DeployLock::for_ledger(&ledger.schema, &ledger.table);
    let mut taken = None;
    if opts.locked.is_none() {
        taken = Some(
            lock.take(client, settings.deploy_lock_timeout, |holder, waited| {
                tracing::warn!(
                    "waiting {}s for the deploy lock held by {}",
                    waited.as_secs(),
                    holder.map_or_else(|| "another session".to_string(), |h| h.to_string())
                );
            })
            .await?,
        );
    }
    let result = async {
        let held = Held::of(opts.locked.is_some(), opts.row_cache.as_deref());
        let units = ledger
            .with_rows(client, held, |rows| {
                resolve(settings, set, rows, id, opts.cascade)
            })
            .await??;
        if let Some(c) = &opts.row_cache {
            c.written(units.iter().map(|u| u.id.as_str()));
        }
        // The audit table (and pgkeel's ledger columns) may be missing on a ledger another
        // tool created.
        if opts.locked.is_none() {
            ledger.ensure(client).await?;
        }
        let drizzle = drizzle_table_exists(client, settings, set).await?;
        let runner = Runner::new(settings, &ledger, drizzle);
        let mut done: Vec<RolledBack> = Vec::with_capacity(units.len());
        for u in &units {
            let before: Vec<String> = done.iter().map(|d| d.id.clone()).collect();
            if let Some(r) = runner.run(client, u, &before).await? {
                done.push(r);
            }
        }
        Ok(RollbackReport {
            dry_run: false,
            rolled_back: done,
            duration_ms: started.elapsed().as_millis() as u64,
        })
    }
    .await;
    if let (Err(_), Some(c)) = (&result, &opts.row_cache) {
        c.forget();
    }
    if let Some(session) = taken {
        lock.release_logged(client, session).await;
    }
    result
}

/// Finds `id`: exactly, or as the unique id starting with `id_` (`0003` for `0003_slim_warhawk`).
fn find_id(set: &MigrationSet, rows: &[LedgerRow], id: &str) -> Result<String, RollbackError> {
    let mut known: Vec<&str> = set.migrations.iter().map(|m| m.id.as_str()).collect();
    known.extend(rows.iter().map(|r| r.id.as_str()));
    if known.contains(&id) {
        return Ok(id.to_string());
    }
    let prefix = format!("{id}_");
    let mut candidates: Vec<String> = known
        .iter()
        .filter(|k| k.starts_with(&prefix))
        .map(|k| k.to_string())
        .collect();
    candidates.sort();
    candidates.dedup();
    match candidates.len() {
        0 => Err(RollbackError::UnknownId {
            id: id.to_string(),
            dir: set.dir.clone(),
        }),
        1 => Ok(candidates.remove(0)),
        _ => Err(RollbackError::AmbiguousId {
            id: id.to_string(),
            candidates,
        }),
    }
}

/// What to roll back, in order, with each rollback's SQL parsed. Pure: reads nothing.
fn resolve<'a>(
    settings: &Settings,
    set: &'a MigrationSet,
    rows: &[LedgerRow],
    id: &str,
    cascade: bool,
) -> Result<Vec<Unit<'a>>, RollbackError> {
    let id = find_id(set, rows, id)?;
    let Some(pos) = rows.iter().position(|r| r.id == id) else {
        return Err(RollbackError::NotApplied {
            id,
            state: "pending".into(),
        });
    };
    let row = &rows[pos];
    if !row.status.is_in_effect() {
        return Err(RollbackError::NotApplied {
            id,
            state: row.status.as_str().to_string(),
        });
    }
    // Positions in the folder by id, looked up once per ledger row: a scan of the folder per
    // row made every rollback quadratic in the folder's length.
    let in_folder: rustc_hash::FxHashMap<&str, usize> = set
        .migrations
        .iter()
        .enumerate()
        .map(|(i, m)| (m.id.as_str(), i))
        .collect();
    let folder_index = |id: &str| in_folder.get(id).copied();
    let target_index = folder_index(&id);
    // Later: applied after it, or after it in the folder (applied out of order). Newest first.
    let mut later: Vec<usize> = rows
        .iter()
        .enumerate()
        .filter(|(i, r)| {
            *i != pos
                && r.status.is_in_effect()
                && (*i > pos
                    || matches!((target_index, folder_index(&r.id)), (Some(t), Some(f)) if f > t))
        })
        .map(|(i, _)| i)
        .collect();
    later.sort_unstable_by(|a, b| b.cmp(a));
    if !later.is_empty() && !cascade {
        return Err(RollbackError::LaterApplied {
            id,
            later: later.iter().map(|i| rows[*i].id.clone()).collect(),
        });
    }
    later.push(pos);
    later
        .into_iter()
        .map(|i| unit(settings, set, &rows[i]))
        .collect()
}

fn unit<'a>(
    settings: &Settings,
    set: &'a MigrationSet,
    row: &LedgerRow,
) -> Result<Unit<'a>, RollbackError> {
    let m = set.get(&row.id);
    let stored = row.rollback_sql.as_deref().filter(|s| !s.trim().is_empty());
    let (source, text, path, directives) = match (m.and_then(|m| m.down.as_ref()), stored) {
        (Some(down), _) => (
            RollbackSource::DownFile,
            down.sql.clone(),
            Some(down.path.clone()),
            down.directives.clone(),
        ),
        (None, Some(sql)) => (
            RollbackSource::Stored,
            sql.to_string(),
            None,
            crate::source::Directives {
                no_transaction: stored_no_transaction(sql),
                ..Default::default()
            },
        ),
        (None, None) => {
            return Err(match m {
                Some(m) if m.directives.irreversible => {
                    RollbackError::Irreversible { id: row.id.clone() }
                }
                Some(m) => RollbackError::NoRollback {
                    id: row.id.clone(),
                    expected: expected_down_path(m),
                },
                None => RollbackError::NoRollbackMissingFile { id: row.id.clone() },
            })
        }
    };
    let start = if text.starts_with('\u{feff}') {
        '\u{feff}'.len_utf8()
    } else {
        0
    };
    let stmts = crate::sql::split(&text[start..], start).map_err(|e| RollbackError::Syntax {
        id: row.id.clone(),
        source_kind: source,
        location: path
            .as_deref()
            .map(|p| Location::in_file(p, &text, e.offset)),
        message: e.message,
    })?;
    // A `BEGIN … COMMIT` wrapper is dropped: the rollback's transactional statements run in
    // one transaction anyway.
    let stmts = crate::sql::transaction_blocks(stmts, crate::sql::Wrapping::None).map_err(|e| {
        RollbackError::TransactionControl {
            id: row.id.clone(),
            statement: e.statement,
            problem: e.problem,
        }
    })?;
    Ok(Unit {
        id: row.id.clone(),
        migration: m,
        source,
        text,
        path,
        stmts,
        no_transaction: directives.no_transaction,
        lock_timeout: directives
            .lock_timeout
            .map_or(settings.lock_timeout, |t| t.as_duration()),
        statement_timeout: directives
            .statement_timeout
            .map_or(settings.statement_timeout, |t| t.as_duration()),
        retries: directives.retries.unwrap_or(settings.retries).max(1),
    })
}

/// Whether a stored rollback starts with `-- pgkeel:no-transaction` among its leading comments.
fn stored_no_transaction(sql: &str) -> bool {
    sql.trim_start_matches('\u{feff}')
        .lines()
        .map(str::trim)
        .take_while(|l| l.is_empty() || l.starts_with("--"))
        .any(|l| l == "-- pgkeel:no-transaction")
}

/// Where the rollback file of `m` belongs.
fn expected_down_path(m: &Migration) -> PathBuf {
    match m.layout {
        Layout::DrizzleFolders => m
            .path
            .parent()
            .map(|d| d.join("down.sql"))
            .unwrap_or_else(|| PathBuf::from("down.sql")),
        _ => m.path.with_file_name(format!("{}.down.sql", m.id)),
    }
}

/// Whether drizzle-orm's own table must be kept in step (as `migrate` does for journal
/// folders): then a rollback deletes the migration's row there too, or drizzle's migrator and
/// pgkeel's takeover would take the migration for applied.
async fn drizzle_table_exists(
    client: &Client,
    settings: &Settings,
    set: &MigrationSet,
) -> Result<bool, DbError> {
    if !crate::drizzle::keeps_table_for(set.layout) {
        return Ok(false);
    }
    let name = crate::ident::qualified(&settings.drizzle_schema, &settings.drizzle_table);
    let row = client
        .query_typed_one(
            "SELECT to_regclass($1) IS NOT NULL",
            &[(&name, tokio_postgres::types::Type::TEXT)],
        )
        .await
        .map_err(|e| DbError::query("looking for drizzle-orm's migrations table", e))?;
    Ok(row.get(0))
}

/// A unit of execution: one transaction, or one statement alone.
#[derive(Debug)]
struct Group {
    /// Session settings sent before `batch` (statements run alone only).
    pre: String,
    batch: Batch,
    /// The ledger update sent after `batch` (when the last statement runs alone).
    post: String,
    /// Index of the group's first statement.
    first: usize,
    /// Statements in the group.
    len: usize,
}

impl Group {
    fn sql(&self) -> String {
        format!("{}{}{}", self.pre, self.batch.text, self.post)
    }
}

#[derive(Debug)]
struct Runner<'a> {
    settings: &'a Settings,
    ledger: &'a Ledger,
    drizzle: bool,
}

impl<'a> Runner<'a> {
    fn new(settings: &'a Settings, ledger: &'a Ledger, drizzle: bool) -> Self {
        Runner {
            settings,
            ledger,
            drizzle,
        }
    }

    fn settings_sql(u: &Unit<'_>, local: bool) -> String {
        let scope = if local { "SET LOCAL" } else { "SET" };
        format!(
            "{scope} lock_timeout = '{}ms';\n{scope} statement_timeout = '{}ms';\n",
            u.lock_timeout.as_millis(),
            u.statement_timeout.as_millis()
        )
    }

    /// A transaction-level advisory lock shared with `migrate`'s transactions, and a check that
    /// the migration is still in effect (so it is rolled back once, whatever the connection path).
    fn guard_sql(&self, u: &Unit<'_>) -> String {
        let lock = DeployLock::for_ledger(&self.ledger.schema, &self.ledger.table);
        let (key, held) = (lock.tx_key(), lock.held_check_sql());
        let id = quote_literal(&u.id);
        format!(
            "{held}SELECT pg_advisory_xact_lock({key});\n\
             DO $pgkeel$ BEGIN IF NOT EXISTS (SELECT 1 FROM {t} WHERE id = {id} AND status IN ('applied', 'baselined')) \
             THEN RAISE EXCEPTION 'pgkeel: % is no longer applied (rolled back by another process?)', {id} USING ERRCODE = '{NOT_APPLIED}'; \
             END IF; END $pgkeel$;\n",
            t = self.ledger.table_sql(),
        )
    }

    /// The ledger update, the audit row, and drizzle-orm's row, ending in `;\n`.
    fn record_sql(&self, u: &Unit<'_>) -> String {
        let mut sql = format!(
            "{};\n{};\n",
            self.ledger.rolled_back_sql(&u.id),
            self.ledger.audit_sql(
                "rollback",
                Some(&u.id),
                "rolled_back",
                Some(&serde_json::json!({ "source": u.source })),
            )
        );
        if let (true, Some(m)) = (self.drizzle, u.migration) {
            sql.push_str(&crate::drizzle::delete_row_sql(
                &self.settings.drizzle_schema,
                &self.settings.drizzle_table,
                m,
            ));
            sql.push_str(";\n");
        }
        sql
    }

    /// Consecutive transactional statements form one transaction; each statement PostgreSQL
    /// refuses inside one (or every statement, with `-- pgkeel:no-transaction`) runs alone. The
    /// ledger update goes into the last transaction, or alone after a trailing lone statement.
    fn groups(&self, u: &Unit<'_>) -> Vec<Group> {
        let tx_start = |b: &mut Batch| {
            b.push_raw("BEGIN;\n");
            b.push_raw(&Self::settings_sql(u, true));
            b.push_raw(&self.guard_sql(u));
        };
        let mut groups = Vec::new();
        let mut recorded = false;
        let mut i = 0;
        while i < u.stmts.len() {
            let first = i;
            let mut b = Batch::default();
            let mut pre = String::new();
            if u.stmts[i].transactional && !u.no_transaction {
                tx_start(&mut b);
                while i < u.stmts.len() && u.stmts[i].transactional {
                    b.push_statement(&u.stmts[i], i);
                    i += 1;
                }
                if i == u.stmts.len() {
                    b.push_raw(&self.record_sql(u));
                    recorded = true;
                }
                b.push_raw("COMMIT;");
            } else {
                // Sent alone: in a multi-statement query it would run in an implicit
                // transaction block, which these statements refuse.
                pre = Self::settings_sql(u, false);
                b.push_statement(&u.stmts[i], i);
                i += 1;
            }
            groups.push(Group {
                pre,
                batch: b,
                post: String::new(),
                first,
                len: i - first,
            });
        }
        if !recorded {
            let mut post = String::from("BEGIN;\n");
            post.push_str(&self.guard_sql(u));
            post.push_str(&self.record_sql(u));
            post.push_str("COMMIT;");
            match groups.last_mut() {
                Some(g) => g.post = post,
                None => {
                    let mut b = Batch::default();
                    b.push_raw(&post);
                    groups.push(Group {
                        pre: String::new(),
                        batch: b,
                        post: String::new(),
                        first: 0,
                        len: 0,
                    });
                }
            }
        }
        groups
    }

    /// Runs one rollback. `Ok(None)` when another process rolled it back first.
    async fn run(
        &self,
        client: &Client,
        u: &Unit<'_>,
        before: &[String],
    ) -> Result<Option<RolledBack>, RollbackError> {
        let started = Instant::now();
        let groups = self.groups(u);
        let mut attempts_total = 0;
        for g in &groups {
            if !g.pre.is_empty() {
                client.batch_execute(&g.pre).await.map_err(|e| {
                    DbError::query(format!("preparing the rollback of {}", u.id), e)
                })?;
            }
            let mut attempt = 0;
            loop {
                attempt += 1;
                attempts_total += 1;
                let Err(e) = client.batch_execute(&g.batch.text).await else {
                    break;
                };
                let pg = PgError::from_driver(&e);
                // Leave no aborted transaction behind; the connection may be gone.
                let _ = client.batch_execute("ROLLBACK").await;
                let Some(pg) = pg else {
                    return Err(DbError::query(format!("rolling back {}", u.id), e).into());
                };
                if pg.code == crate::db::LOCK_NOT_HELD {
                    return Err(DbError::LockNotHeld {
                        context: format!("rolling back {}", u.id),
                    }
                    .into());
                }
                if pg.code == NOT_APPLIED {
                    tracing::info!("{} was rolled back by another process meanwhile", u.id);
                    return Ok(None);
                }
                if pg.is_transient() && attempt < u.retries {
                    let delay = backoff(attempt);
                    tracing::warn!(
                        "rollback of {} hit {} ({}); retrying in {} ms",
                        u.id,
                        pg.code,
                        pg.message,
                        delay.as_millis()
                    );
                    tokio::time::sleep(delay).await;
                    continue;
                }
                return Err(self.failure(client, u, g, pg, attempt, before).await);
            }
            if !g.post.is_empty() {
                client.batch_execute(&g.post).await.map_err(|e| {
                    DbError::query(format!("recording the rollback of {}", u.id), e)
                })?;
            }
        }
        tracing::info!(
            "rolled back {} ({}, {attempts_total} batch(es) sent)",
            u.id,
            u.source
        );
        Ok(Some(RolledBack {
            id: u.id.clone(),
            duration_ms: started.elapsed().as_millis() as u64,
            source: u.source,
            statements: u.stmts.len(),
            sql: None,
        }))
    }

    async fn failure(
        &self,
        client: &Client,
        u: &Unit<'_>,
        g: &Group,
        pg: PgError,
        attempts: u32,
        before: &[String],
    ) -> RollbackError {
        let offset = pg.position.and_then(|p| g.batch.file_offset(p));
        let location = match (offset, &u.path) {
            (Some(o), Some(path)) => Some(Location::in_file(path, &u.text, o)),
            _ => None,
        };
        let statement = offset
            .and_then(|o| u.stmts.iter().rposition(|s| s.offset <= o))
            .filter(|i| (g.first..g.first + g.len).contains(i))
            .or((g.len == 1).then_some(g.first));
        let statements_done = g.first;
        let audit = self.ledger.audit_sql(
            "rollback",
            Some(&u.id),
            "failed",
            Some(&serde_json::json!({
                "source": u.source,
                "error": pg.to_string(),
                "statements_done": statements_done,
            })),
        );
        if let Err(e) = client.batch_execute(&audit).await {
            tracing::debug!("recording the failed rollback of {}: {e}", u.id);
        }
        RollbackError::Failed {
            id: u.id.clone(),
            source_kind: u.source,
            pg,
            location,
            statement,
            statements: u.stmts.len(),
            attempts,
            statements_done,
            rolled_back_before: before.to_vec(),
        }
    }
}

/// Exponential backoff with jitter: 200ms, 400ms, 800ms … capped at 10s, ±25%.
fn backoff(attempt: u32) -> Duration {
    let base = 200u64
        .saturating_mul(1 << attempt.min(6).saturating_sub(1))
        .min(10_000);
    let jitter = rand::random::<u64>() % (base / 2 + 1);
    Duration::from_millis(base - base / 4 + jitter)
}

impl crate::outcome::Classify for RollbackError {
    fn kind(&self) -> crate::outcome::FailureKind {
        use crate::outcome::FailureKind as K;
        match self {
            RollbackError::Db(d) => crate::outcome::Classify::kind(d),
            RollbackError::Failed { .. } => K::Migration,
            RollbackError::UnknownId { .. }
            | RollbackError::AmbiguousId { .. }
            | RollbackError::NotApplied { .. }
            | RollbackError::LaterApplied { .. } => K::Usage,
            RollbackError::Source(_)
            | RollbackError::Irreversible { .. }
            | RollbackError::NoRollback { .. }
            | RollbackError::NoRollbackMissingFile { .. }
            | RollbackError::Syntax { .. }
            | RollbackError::TransactionControl { .. } => K::Findings,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gen(sql: &str) -> Generated {
        generate(&crate::sql::split(sql, 0).expect("test SQL parses"))
    }

    /// The generated rollback, which must itself parse.
    fn inverse(sql: &str) -> String {
        let g = gen(sql);
        let out = g
            .sql
            .unwrap_or_else(|| panic!("{sql}: irreversible: {:?}", g.irreversible));
        if let Err(e) = pg_query::parse(&out) {
            panic!("generated rollback does not parse ({e}):\n{out}");
        }
        out
    }

    /// The reason a one-statement migration is irreversible, and whether it loses data.
    fn refused(sql: &str) -> (String, bool) {
        let g = gen(sql);
        assert!(
            g.sql.is_none(),
            "{sql} should be irreversible, got {:?}",
            g.sql
        );
        assert_eq!(g.irreversible.len(), 1, "{:?}", g.irreversible);
        (g.irreversible[0].reason.clone(), g.data_loss)
    }

    #[test]
    fn identifiers_are_quoted_only_when_needed() {
        assert_eq!(ident("users"), "users");
        assert_eq!(ident("_a1"), "_a1");
        assert_eq!(ident("MyTable"), "\"MyTable\"");
        assert_eq!(ident("user"), "\"user\"", "reserved keyword");
        assert_eq!(ident("select"), "\"select\"");
        assert_eq!(ident("name"), "name", "unreserved keyword");
        assert_eq!(ident("1abc"), "\"1abc\"");
        assert_eq!(ident("a b"), "\"a b\"");
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(ident(""), "\"\"");
    }

    #[test]
    fn create_table_drops_it_with_names_that_round_trip() {
        assert_eq!(
            inverse("CREATE TABLE IF NOT EXISTS \"users\" (id int)"),
            "DROP TABLE IF EXISTS users;\n"
        );
        assert_eq!(
            inverse("CREATE TABLE \"App\".\"MyTable\" (\"select\" int)"),
            "DROP TABLE IF EXISTS \"App\".\"MyTable\";\n"
        );
        assert_eq!(
            inverse("CREATE TABLE \"user\" (id int)"),
            "DROP TABLE IF EXISTS \"user\";\n"
        );
        assert_eq!(
            inverse("CREATE TABLE s.t AS SELECT 1 AS x"),
            "DROP TABLE IF EXISTS s.t;\n"
        );
    }

    #[test]
    fn statements_are_undone_last_first() {
        let sql = "CREATE TABLE a (id int PRIMARY KEY);\n\
                   CREATE TABLE b (id int, a_id int REFERENCES a);\n\
                   CREATE INDEX b_a_idx ON b (a_id);";
        assert_eq!(
            inverse(sql),
            "DROP INDEX IF EXISTS b_a_idx;\nDROP TABLE IF EXISTS b;\nDROP TABLE IF EXISTS a;\n"
        );
    }

    #[test]
    fn indexes_views_sequences_and_materialized_views() {
        assert_eq!(
            inverse("CREATE UNIQUE INDEX IF NOT EXISTS \"Idx\" ON s.t (a)"),
            "DROP INDEX IF EXISTS s.\"Idx\";\n",
            "an index lives in its table's schema"
        );
        // Dropped in a transaction like every rollback: no CONCURRENTLY.
        assert_eq!(
            inverse("CREATE INDEX CONCURRENTLY i ON t (a)"),
            "DROP INDEX IF EXISTS i;\n"
        );
        let (reason, _) = refused("CREATE INDEX ON t (a)");
        assert!(reason.contains("name the index"), "{reason}");
        assert_eq!(
            inverse("CREATE VIEW v AS SELECT 1"),
            "DROP VIEW IF EXISTS v;\n"
        );
        assert_eq!(
            inverse("CREATE MATERIALIZED VIEW s.mv AS SELECT 1"),
            "DROP MATERIALIZED VIEW IF EXISTS s.mv;\n"
        );
        assert_eq!(
            inverse("CREATE SEQUENCE IF NOT EXISTS s.seq START 10"),
            "DROP SEQUENCE IF EXISTS s.seq;\n"
        );
        let (reason, loss) = refused("CREATE OR REPLACE VIEW v AS SELECT 1");
        assert!(reason.contains("earlier definition"), "{reason}");
        assert!(!loss);
    }

    #[test]
    fn types_enums_domains() {
        assert_eq!(
            inverse("CREATE TYPE \"public\".\"feedback_category\" AS ENUM('a', 'b')"),
            "DROP TYPE IF EXISTS public.feedback_category;\n"
        );
        assert_eq!(
            inverse("CREATE TYPE pair AS (a int, b text)"),
            "DROP TYPE IF EXISTS pair;\n"
        );
        assert_eq!(
            inverse("CREATE DOMAIN s.\"Email\" AS text CHECK (VALUE LIKE '%@%')"),
            "DROP DOMAIN IF EXISTS s.\"Email\";\n"
        );
        assert_eq!(
            inverse("CREATE TYPE r AS RANGE (subtype = int4)"),
            "DROP TYPE IF EXISTS r;\n"
        );
    }

    #[test]
    fn functions_and_procedures_are_dropped_with_their_argument_types() {
        // Defaults and OUT arguments are not part of a function's identity.
        assert_eq!(
            inverse(
                "CREATE FUNCTION s.f(a int, b text[] DEFAULT '{}', OUT c int, VARIADIC d numeric[]) \
                 RETURNS int LANGUAGE sql AS 'SELECT 1'",
            ),
            "DROP FUNCTION IF EXISTS s.f(int, text[], VARIADIC numeric[]);\n"
        );
        assert_eq!(
            inverse(
                "CREATE FUNCTION \"User\".\"select\"(x \"MyType\", y timestamp with time zone, z varchar(10)) \
                 RETURNS int LANGUAGE sql AS 'SELECT 1'",
            ),
            "DROP FUNCTION IF EXISTS \"User\".\"select\"(\"MyType\", timestamp with time zone, varchar(10));\n"
        );
        let out =
            inverse("CREATE FUNCTION \"Count\"() RETURNS TABLE (n int) LANGUAGE sql AS 'SELECT 1'");
        assert_eq!(out, "DROP FUNCTION IF EXISTS \"Count\"();\n");
        // A procedure's OUT arguments do identify it.
        assert_eq!(
            inverse(
                "CREATE PROCEDURE p(IN a int, OUT b int) LANGUAGE plpgsql AS $$ BEGIN b := a; END $$",
            ),
            "DROP PROCEDURE IF EXISTS p(int, OUT int);\n"
        );
        let (reason, _) =
            refused("CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'");
        assert!(reason.contains("CREATE OR REPLACE function"), "{reason}");
    }

    #[test]
    fn triggers_policies_rules_extensions_schemas() {
        assert_eq!(
            inverse("CREATE TRIGGER trg BEFORE UPDATE ON s.t FOR EACH ROW EXECUTE FUNCTION f()"),
            "DROP TRIGGER IF EXISTS trg ON s.t;\n"
        );
        assert_eq!(
            inverse("CREATE POLICY \"Own rows\" ON t USING (true)"),
            "DROP POLICY IF EXISTS \"Own rows\" ON t;\n"
        );
        assert_eq!(
            inverse("CREATE RULE r AS ON INSERT TO t DO INSTEAD NOTHING"),
            "DROP RULE IF EXISTS r ON t;\n"
        );
        assert_eq!(
            inverse("CREATE EXTENSION \"uuid-ossp\""),
            "DROP EXTENSION IF EXISTS \"uuid-ossp\";\n"
        );
        let (reason, _) = refused("CREATE EXTENSION IF NOT EXISTS pgcrypto");
        assert!(reason.contains("may have been there before"), "{reason}");
        assert_eq!(
            inverse("CREATE SCHEMA IF NOT EXISTS app"),
            "DROP SCHEMA IF EXISTS app;\n"
        );
    }

    #[test]
    fn alter_table_add_column_and_constraints() {
        assert_eq!(
            inverse("ALTER TABLE \"page_feedback\" ADD COLUMN \"category\" text DEFAULT 'other' NOT NULL"),
            "ALTER TABLE page_feedback DROP COLUMN IF EXISTS category;\n"
        );
        assert_eq!(
            inverse("ALTER TABLE IF EXISTS ONLY s.t ADD COLUMN a int, ADD CONSTRAINT \"T_pos\" CHECK (a > 0)"),
            "ALTER TABLE IF EXISTS ONLY s.t DROP CONSTRAINT IF EXISTS \"T_pos\", DROP COLUMN IF EXISTS a;\n"
        );
        assert_eq!(
            inverse("ALTER TABLE t ADD CONSTRAINT t_fk FOREIGN KEY (a) REFERENCES u (id)"),
            "ALTER TABLE t DROP CONSTRAINT IF EXISTS t_fk;\n"
        );
        let (reason, loss) = refused("ALTER TABLE t ADD CHECK (a > 0)");
        assert!(reason.contains("name the constraint"), "{reason}");
        assert!(!loss);
        let (reason, _) = refused("ALTER TABLE t ADD PRIMARY KEY (id)");
        assert!(reason.contains("name the constraint"), "{reason}");
        let (reason, _) =
            refused("ALTER TABLE t ADD CONSTRAINT t_pk PRIMARY KEY USING INDEX t_idx");
        assert!(reason.contains("USING INDEX"), "{reason}");
    }

    #[test]
    fn catalog_state_inverts_defaults_and_skips_changes_that_changed_nothing() {
        let sql = "ALTER TABLE app.t ALTER COLUMN a SET DEFAULT 2, ALTER COLUMN b SET NOT NULL;\n\
                   ALTER TABLE t ALTER COLUMN c DROP DEFAULT;\n\
                   ALTER TABLE app.t ALTER COLUMN a SET DEFAULT 3, ALTER COLUMN a DROP NOT NULL;";
        let stmts = crate::sql::split(sql, 0).unwrap();
        assert_eq!(
            columns_altered(&stmts),
            vec![
                ("app".to_string(), "t".to_string(), "a".to_string()),
                ("app".into(), "t".into(), "b".into()),
                ("public".into(), "t".into(), "c".into()),
            ]
        );
        let mut before = Before::default();
        let col = |not_null, default: Option<&str>| ColumnBefore {
            not_null,
            default: default.map(str::to_string),
        };
        before.insert("app", "t", "a", col(true, Some("1")));
        before.insert("app", "t", "b", col(true, None));
        before.insert("public", "t", "c", col(false, Some("'x'::text")));
        let g = generate_with(&stmts, &before);
        assert_eq!(
            g.sql.as_deref(),
            Some(
                "ALTER TABLE app.t ALTER COLUMN a SET NOT NULL;\n\
                 ALTER TABLE t ALTER COLUMN c SET DEFAULT 'x'::text;\n\
                 ALTER TABLE app.t ALTER COLUMN a SET DEFAULT 1;\n"
            ),
            "b was NOT NULL already; a's second SET DEFAULT is undone by the first one's inverse"
        );
    }

    #[test]
    fn alter_column_not_null_and_defaults() {
        assert_eq!(
            inverse("ALTER TABLE t ALTER COLUMN \"Email\" SET NOT NULL"),
            "ALTER TABLE t ALTER COLUMN \"Email\" DROP NOT NULL;\n"
        );
        assert_eq!(
            inverse("ALTER TABLE t ALTER COLUMN email DROP NOT NULL"),
            "ALTER TABLE t ALTER COLUMN email SET NOT NULL;\n"
        );
        let (reason, loss) = refused("ALTER TABLE t ALTER COLUMN a SET DEFAULT 1");
        assert!(reason.contains("previous default unknown"), "{reason}");
        assert!(!loss);
        let (reason, _) = refused("ALTER TABLE t ALTER COLUMN a DROP DEFAULT");
        assert!(reason.contains("previous default unknown"), "{reason}");
        let (_, loss) = refused("ALTER TABLE t ALTER COLUMN a TYPE bigint");
        assert!(loss, "a type change may lose precision");
        assert_eq!(
            inverse("ALTER TABLE t ENABLE ROW LEVEL SECURITY"),
            "ALTER TABLE t DISABLE ROW LEVEL SECURITY;\n"
        );
        assert_eq!(
            inverse("ALTER TABLE t ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY"),
            "ALTER TABLE t ALTER COLUMN id DROP IDENTITY IF EXISTS;\n"
        );
        let (reason, _) = refused("ALTER TABLE t SET (fillfactor = 70)");
        assert!(reason.contains("AT_SetRelOptions"), "{reason}");
    }

    #[test]
    fn renames_are_reversed() {
        assert_eq!(
            inverse("ALTER TABLE s.old RENAME TO new"),
            "ALTER TABLE s.new RENAME TO old;\n"
        );
        assert_eq!(
            inverse("ALTER TABLE t RENAME COLUMN \"A\" TO b"),
            "ALTER TABLE t RENAME COLUMN b TO \"A\";\n"
        );
        assert_eq!(
            inverse("ALTER TABLE t RENAME CONSTRAINT c1 TO c2"),
            "ALTER TABLE t RENAME CONSTRAINT c2 TO c1;\n"
        );
        assert_eq!(
            inverse("ALTER INDEX IF EXISTS s.i1 RENAME TO i2"),
            "ALTER INDEX IF EXISTS s.i2 RENAME TO i1;\n"
        );
        assert_eq!(
            inverse("ALTER TYPE s.mood RENAME TO feeling"),
            "ALTER TYPE s.feeling RENAME TO mood;\n"
        );
        assert_eq!(
            inverse("ALTER TYPE mood RENAME VALUE 'sad' TO 'blue'"),
            "ALTER TYPE mood RENAME VALUE E'blue' TO E'sad';\n"
        );
        assert_eq!(
            inverse("ALTER TRIGGER a ON t RENAME TO b"),
            "ALTER TRIGGER b ON t RENAME TO a;\n"
        );
        assert_eq!(
            inverse("ALTER TABLE s.t SET SCHEMA archive"),
            "ALTER TABLE archive.t SET SCHEMA s;\n"
        );
        let (reason, _) = refused("ALTER TABLE t SET SCHEMA archive");
        assert!(reason.contains("qualify the name"), "{reason}");
        // A table created and renamed in one migration: renamed back, then dropped.
        assert_eq!(
            inverse("CREATE TABLE a (id int); ALTER TABLE a RENAME TO b; ALTER TABLE b ALTER COLUMN id SET NOT NULL;"),
            "ALTER TABLE b RENAME TO a;\nDROP TABLE IF EXISTS a;\n"
        );
    }

    #[test]
    fn enum_values_cannot_be_removed() {
        let (reason, loss) = refused("ALTER TYPE mood ADD VALUE 'meh' AFTER 'ok'");
        assert!(
            reason.contains("PostgreSQL cannot remove an enum value"),
            "{reason}"
        );
        assert!(!loss);
        // …unless the type itself is new.
        assert_eq!(
            inverse("CREATE TYPE mood AS ENUM ('ok'); ALTER TYPE mood ADD VALUE 'meh';"),
            "DROP TYPE IF EXISTS mood;\n"
        );
    }

    #[test]
    fn drops_and_data_changes_lose_data() {
        for sql in [
            "DROP TABLE users",
            "DROP TABLE IF EXISTS a, b",
            "ALTER TABLE t DROP COLUMN c",
            "DELETE FROM t WHERE id = 1",
            "UPDATE t SET a = 1",
            "TRUNCATE t",
            "DROP SCHEMA s",
            "DROP TYPE mood CASCADE",
        ] {
            let (reason, loss) = refused(sql);
            assert_eq!(reason, LOSES_DATA, "{sql}");
            assert!(loss, "{sql}");
        }
        for sql in [
            "DROP INDEX i",
            "DROP VIEW v",
            "DROP FUNCTION f()",
            "ALTER TABLE t DROP CONSTRAINT c",
        ] {
            let (reason, loss) = refused(sql);
            assert!(reason.contains("write a .down.sql"), "{sql}: {reason}");
            assert!(!loss, "{sql}");
        }
        let (reason, loss) = refused("INSERT INTO t VALUES (1)");
        assert!(reason.contains("inserts rows"), "{reason}");
        assert!(!loss);
        let (reason, _) = refused("COMMENT ON TABLE t IS 'x'");
        assert!(reason.contains("previous comment"), "{reason}");
    }

    #[test]
    fn changes_to_objects_the_migration_created_need_no_inverse() {
        let sql = "CREATE TABLE roles (id int, name text);\n\
                   COMMENT ON TABLE roles IS 'who may do what';\n\
                   COMMENT ON COLUMN roles.name IS 'shown';\n\
                   INSERT INTO roles VALUES (1, 'admin');\n\
                   UPDATE roles SET name = 'root';\n\
                   ALTER TABLE roles ALTER COLUMN name SET DEFAULT 'user', DROP COLUMN id;\n\
                   GRANT SELECT ON roles TO PUBLIC;\n\
                   CREATE TABLE tmp (x int);\n\
                   DROP TABLE tmp;";
        assert_eq!(
            inverse(sql),
            "DROP TABLE IF EXISTS tmp;\nDROP TABLE IF EXISTS roles;\n"
        );
        // A column added and dropped again in the same migration.
        assert_eq!(
            inverse("ALTER TABLE t ADD COLUMN x int; ALTER TABLE t DROP COLUMN x;"),
            "ALTER TABLE t DROP COLUMN IF EXISTS x;\n"
        );
        // A data-modifying WITH may write elsewhere.
        let g = gen("CREATE TABLE a (x int); WITH d AS (DELETE FROM b RETURNING x) INSERT INTO a SELECT x FROM d;");
        assert!(g.sql.is_none());
        assert_eq!(g.irreversible[0].statement, 1);
    }

    #[test]
    fn changes_that_depend_on_later_objects_are_undone_in_place() {
        // The column uses a type created after its table: it must go before the type does.
        assert_eq!(
            inverse(
                "CREATE TABLE t (id int); CREATE TYPE st AS ENUM ('a'); \
                 ALTER TABLE t ADD COLUMN s st, ALTER COLUMN id SET NOT NULL;"
            ),
            "ALTER TABLE t DROP COLUMN IF EXISTS s;\nDROP TYPE IF EXISTS st;\nDROP TABLE IF EXISTS t;\n"
        );
        // A default calling a later function, or a later sequence by its name in a literal.
        assert_eq!(
            inverse(
                "CREATE TABLE t (a int, b int); \
                 CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'; \
                 CREATE SEQUENCE app.seq; \
                 ALTER TABLE t ALTER COLUMN a SET DEFAULT f(), ALTER COLUMN b SET DEFAULT nextval('app.seq');"
            ),
            "ALTER TABLE t ALTER COLUMN b DROP DEFAULT, ALTER COLUMN a DROP DEFAULT;\n\
             DROP SEQUENCE IF EXISTS app.seq;\n\
             DROP FUNCTION IF EXISTS f();\n\
             DROP TABLE IF EXISTS t;\n"
        );
        // An unnamed foreign key to a later table cannot be dropped by name.
        let g = gen(
            "CREATE TABLE a (id int, b_id int); CREATE TABLE b (id int PRIMARY KEY); \
                     ALTER TABLE a ADD FOREIGN KEY (b_id) REFERENCES b;",
        );
        assert_eq!(g.irreversible.len(), 1, "{:?}", g.irreversible);
        assert!(g.irreversible[0].reason.contains("name the constraint"));
        // …while one to an earlier table goes with its table.
        assert_eq!(
            inverse(
                "CREATE TABLE b (id int PRIMARY KEY); CREATE TABLE a (id int, b_id int); \
                     ALTER TABLE a ADD FOREIGN KEY (b_id) REFERENCES b;"
            ),
            "DROP TABLE IF EXISTS a;\nDROP TABLE IF EXISTS b;\n"
        );
    }

    #[test]
    fn drizzle_do_blocks_are_understood() {
        let sql = "DO $$ BEGIN\n ALTER TABLE \"analysis_sessions\" ADD CONSTRAINT \"analysis_sessions_user_id_users_id_fk\" FOREIGN KEY (\"user_id\") REFERENCES \"public\".\"users\"(\"id\") ON DELETE cascade ON UPDATE no action;\nEXCEPTION\n WHEN duplicate_object THEN null;\nEND $$;";
        assert_eq!(
            inverse(sql),
            "ALTER TABLE analysis_sessions DROP CONSTRAINT IF EXISTS analysis_sessions_user_id_users_id_fk;\n"
        );
        // Older drizzle-kit wraps CREATE TYPE the same way.
        assert_eq!(
            inverse("DO $$ BEGIN CREATE TYPE \"public\".\"role\" AS ENUM('a'); EXCEPTION WHEN duplicate_object THEN null; END $$;"),
            "DROP TYPE IF EXISTS public.role;\n"
        );
        for other in [
            "DO $$ BEGIN PERFORM 1; END $$",
            "DO $$ BEGIN ALTER TABLE t ADD CONSTRAINT c CHECK (true); EXCEPTION WHEN others THEN null; END $$",
            "DO LANGUAGE plperl $$ 1 $$",
        ] {
            let (reason, _) = refused(other);
            assert!(reason.contains("DO block"), "{other}: {reason}");
        }
        let (reason, _) = refused(
            "DO $$ BEGIN ALTER TABLE t ADD CHECK (a > 0); EXCEPTION WHEN duplicate_object THEN null; END $$",
        );
        assert!(reason.contains("name the constraint"), "{reason}");
    }

    #[test]
    fn do_block_with_non_ascii_body_does_not_panic() {
        // Byte 5 of the body falls inside `é`.
        for sql in [
            "DO $$--ñé\nBEGIN\n  CREATE TABLE d (id integer PRIMARY KEY);\nEND $$",
            "DO $$--ñé\nBEGIN CREATE TYPE e AS ENUM('a'); EXCEPTION WHEN duplicate_object THEN null; END $$",
            "DO $$ñé$$",
        ] {
            let (reason, _) = refused(sql);
            assert!(reason.contains("DO block"), "{sql}: {reason}");
        }
    }

    #[test]
    fn irreversible_statements_are_listed_and_no_sql_is_produced() {
        let g = gen("CREATE TABLE a (x int);\nDROP TABLE old;\nALTER TYPE mood ADD VALUE 'x';");
        assert_eq!(g.sql, None);
        assert!(g.data_loss);
        let at: Vec<usize> = g.irreversible.iter().map(|i| i.statement).collect();
        assert_eq!(at, vec![1, 2]);
        assert_eq!(g.irreversible[0].text, "DROP TABLE old");
        assert_eq!(gen("").sql.as_deref(), Some(""));
        assert_eq!(
            gen("VACUUM t; SET lock_timeout = '1s';").sql.as_deref(),
            Some("")
        );
        let (reason, _) = refused("SET search_path = app");
        assert!(reason.contains("resolve names"), "{reason}");
        let (reason, _) = refused("SELECT setval('s', 10)");
        assert!(reason.contains("`SELECT setval('s', 10)`"), "{reason}");
    }

    #[test]
    fn example_project_migrations_all_invert() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples/cfi-handbook/drizzle");
        let set = crate::source::load(&dir).unwrap();
        assert_eq!(set.migrations.len(), 5);
        for m in &set.migrations {
            let stmts = crate::migrate::parse(m).unwrap();
            let g = generate(&stmts);
            assert!(
                g.irreversible.is_empty() && !g.data_loss,
                "{}: {:?}",
                m.id,
                g.irreversible
            );
            let sql = g.sql.unwrap();
            pg_query::parse(&sql).unwrap_or_else(|e| panic!("{}: {e}\n{sql}", m.id));
        }
        let sql = |id: &str| {
            generate(&crate::migrate::parse(set.get(id).unwrap()).unwrap())
                .sql
                .unwrap()
        };
        assert_eq!(
            sql("0001_tiny_nightcrawler"),
            "ALTER TABLE question_analysis DROP CONSTRAINT IF EXISTS question_analysis_file_id_processed_files_id_fk;\n\
             ALTER TABLE question_analysis DROP CONSTRAINT IF EXISTS question_analysis_session_id_analysis_sessions_id_fk;\n\
             DROP TABLE IF EXISTS question_analysis;\n"
        );
        assert_eq!(
            sql("0004_happy_banshee"),
            "DROP INDEX IF EXISTS page_feedback_page_idx;\n\
             ALTER TABLE page_feedback DROP COLUMN IF EXISTS category;\n\
             DROP TYPE IF EXISTS public.feedback_category;\n"
        );
        assert_eq!(
            sql("0000_brave_wolverine"),
            "ALTER TABLE processed_files DROP CONSTRAINT IF EXISTS processed_files_session_id_analysis_sessions_id_fk;\n\
             ALTER TABLE processed_files DROP CONSTRAINT IF EXISTS processed_files_user_id_users_id_fk;\n\
             ALTER TABLE analysis_sessions DROP CONSTRAINT IF EXISTS analysis_sessions_user_id_users_id_fk;\n\
             DROP TABLE IF EXISTS processed_files;\n\
             DROP TABLE IF EXISTS analysis_sessions;\n\
             DROP TABLE IF EXISTS users;\n"
        );
    }

    #[test]
    fn stored_rollbacks_may_ask_for_no_transaction() {
        assert!(stored_no_transaction(
            "-- Rollback\n-- pgkeel:no-transaction\nDROP INDEX CONCURRENTLY i;"
        ));
        assert!(!stored_no_transaction(
            "DROP INDEX i;\n-- pgkeel:no-transaction\n"
        ));
    }
}
