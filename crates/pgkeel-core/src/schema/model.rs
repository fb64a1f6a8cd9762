//! The schema model: a typed, serialisable [`Snapshot`] of one database's schema.
//!
//! Every collection is kept sorted (by schema and name, columns by position) so that two
//! snapshots of the same database serialise to byte-identical JSON. Text that PostgreSQL can
//! render exactly (`pg_get_constraintdef`, `pg_get_indexdef`, `pg_get_viewdef`,
//! `pg_get_functiondef`, `pg_get_triggerdef`, `pg_get_expr`, `format_type`) is stored as the
//! server renders it with an empty `search_path`, so every name in it is schema-qualified. This
//! module owns the shapes, and cutting a snapshot down to some relations and merging such a
//! part back ([`Snapshot::scoped`], [`Snapshot::merge_scoped`]); it does not talk to the server
//! and does not diff.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::ident::{qualified, quote_ident};

/// The snapshot format version; bumped when the JSON shape changes incompatibly.
pub const SNAPSHOT_FORMAT: u32 = 1;

/// The schema of one database (restricted to the schemas asked for).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// [`SNAPSHOT_FORMAT`].
    pub format: u32,
    pub schemas: Vec<Schema>,
    pub extensions: Vec<Extension>,
    pub types: Vec<Type>,
    pub sequences: Vec<Sequence>,
    pub tables: Vec<Table>,
    pub views: Vec<View>,
    pub functions: Vec<Function>,
}

/// A schema (namespace).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Schema {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// An installed extension. Objects it owns are not part of the snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Extension {
    pub name: String,
    pub version: String,
    /// The schema its objects live in.
    pub schema: String,
}

/// A user-defined type: enum, domain or composite. (No `deny_unknown_fields`: serde cannot
/// combine it with the flattened kind.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Type {
    pub schema: String,
    pub name: String,
    #[serde(flatten)]
    pub kind: TypeKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TypeKind {
    /// Labels in their sort order.
    Enum {
        labels: Vec<String>,
    },
    Domain {
        /// `format_type` of the base type.
        base: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        collation: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        default: Option<String>,
        not_null: bool,
        /// Named CHECK constraints, sorted by name.
        constraints: Vec<NamedDef>,
    },
    Composite {
        attributes: Vec<Attribute>,
    },
}

/// A name with the server's rendering of its definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NamedDef {
    pub name: String,
    pub definition: String,
}

/// An attribute of a composite type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Attribute {
    pub name: String,
    #[serde(rename = "type")]
    pub type_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collation: Option<String>,
}

/// A sequence (identity sequences belong to their column and are not listed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Sequence {
    pub schema: String,
    pub name: String,
    pub data_type: String,
    pub start: i64,
    pub increment: i64,
    pub min: i64,
    pub max: i64,
    pub cache: i64,
    pub cycle: bool,
    /// The column that owns it (`OWNED BY`), as schema, table, column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owned_by: Option<ColumnRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// A column of a table, by name.
#[derive(
    Debug, Clone, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct ColumnRef {
    pub schema: String,
    pub table: String,
    pub column: String,
}

/// A table: ordinary, partitioned, or a partition of another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Table {
    pub schema: String,
    pub name: String,
    pub unlogged: bool,
    /// `pg_get_partkeydef`, e.g. `RANGE (created_at)`, for a partitioned table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_by: Option<String>,
    /// For a partition: its parent and bound (`FOR VALUES …` or `DEFAULT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_of: Option<PartitionOf>,
    /// Storage parameters (`fillfactor=70`), sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// In position order. Empty for partitions: they take their parent's columns.
    pub columns: Vec<Column>,
    /// Sorted by name. Constraints cloned from a partitioned parent are not listed.
    pub constraints: Vec<Constraint>,
    /// Indexes that do not back a constraint, sorted by name.
    pub indexes: Vec<Index>,
    pub triggers: Vec<Trigger>,
    pub rls_enabled: bool,
    pub rls_forced: bool,
    pub policies: Vec<Policy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PartitionOf {
    pub schema: String,
    pub table: String,
    pub bound: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Column {
    pub name: String,
    /// `format_type(atttypid, atttypmod)`, e.g. `character varying(80)`, `public.mood[]`.
    #[serde(rename = "type")]
    pub type_name: String,
    /// Only when it differs from the type's default collation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collation: Option<String>,
    pub not_null: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    /// Expression of a `GENERATED ALWAYS AS (…) STORED` column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Identity {
    Always,
    ByDefault,
}

impl Identity {
    pub fn sql(self) -> &'static str {
        match self {
            Identity::Always => "ALWAYS",
            Identity::ByDefault => "BY DEFAULT",
        }
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ConstraintKind {
    PrimaryKey,
    Unique,
    Check,
    Exclusion,
    ForeignKey,
}

/// A table constraint. `definition` is `pg_get_constraintdef`: it carries columns, match type,
/// ON DELETE/UPDATE actions, deferrability, NULLS NOT DISTINCT and NOT VALID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Constraint {
    pub name: String,
    pub kind: ConstraintKind,
    pub definition: String,
    /// Columns it is on, in key order.
    pub columns: Vec<String>,
    /// For a foreign key: the referenced table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub references: Option<TableRef>,
    pub deferrable: bool,
    pub initially_deferred: bool,
    /// False for a constraint added `NOT VALID` and not validated since.
    pub validated: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct TableRef {
    pub schema: String,
    pub name: String,
}

impl TableRef {
    pub fn sql(&self) -> String {
        qualified(&self.schema, &self.name)
    }
}

/// An index that does not back a constraint. `definition` is `pg_get_indexdef`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Index {
    pub name: String,
    pub definition: String,
    /// Access method: btree, gin, gist, …
    pub method: String,
    pub unique: bool,
    /// Key columns or expressions, with opclass and sort order when not the default.
    pub keys: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicate: Option<String>,
    /// False after a failed `CREATE INDEX CONCURRENTLY`.
    pub valid: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// A user trigger; `definition` is `pg_get_triggerdef`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    pub name: String,
    pub definition: String,
    /// `O` enabled, `D` disabled, `R` replica, `A` always.
    pub enabled: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// A row-level security policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub name: String,
    pub permissive: bool,
    /// ALL, SELECT, INSERT, UPDATE or DELETE.
    pub command: String,
    /// Role names, sorted; `public` for everyone.
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub using: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with_check: Option<String>,
}

/// A view or materialized view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct View {
    pub schema: String,
    pub name: String,
    pub materialized: bool,
    /// `pg_get_viewdef`: the SELECT.
    pub definition: String,
    /// `security_barrier=true`, `check_option=local`, …, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// Tables and views it reads, sorted.
    pub depends_on: Vec<TableRef>,
    /// Indexes of a materialized view, sorted by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub indexes: Vec<Index>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// A function or procedure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Function {
    pub schema: String,
    pub name: String,
    /// `pg_get_function_identity_arguments`: what tells overloads apart.
    pub arguments: String,
    pub procedure: bool,
    /// `pg_get_function_result`; empty for a procedure.
    pub returns: String,
    pub language: String,
    /// `immutable`, `stable` or `volatile`.
    pub volatility: String,
    pub security_definer: bool,
    /// `pg_get_functiondef`: the whole `CREATE OR REPLACE …`.
    pub definition: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

impl Type {
    pub fn sql_name(&self) -> String {
        qualified(&self.schema, &self.name)
    }
}

impl Sequence {
    pub fn sql_name(&self) -> String {
        qualified(&self.schema, &self.name)
    }
}

impl Table {
    pub fn sql_name(&self) -> String {
        qualified(&self.schema, &self.name)
    }
    pub fn table_ref(&self) -> TableRef {
        TableRef {
            schema: self.schema.clone(),
            name: self.name.clone(),
        }
    }
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

impl View {
    pub fn sql_name(&self) -> String {
        qualified(&self.schema, &self.name)
    }
    pub fn table_ref(&self) -> TableRef {
        TableRef {
            schema: self.schema.clone(),
            name: self.name.clone(),
        }
    }
}

impl Function {
    /// `"schema"."name"(args)`: how DROP and COMMENT name it.
    pub fn signature(&self) -> String {
        format!(
            "{}({})",
            qualified(&self.schema, &self.name),
            self.arguments
        )
    }
    pub fn keyword(&self) -> &'static str {
        if self.procedure {
            "PROCEDURE"
        } else {
            "FUNCTION"
        }
    }
}

impl Snapshot {
    /// A snapshot with nothing in it (what an empty database compares as).
    pub fn empty() -> Self {
        Snapshot {
            format: SNAPSHOT_FORMAT,
            ..Snapshot::default()
        }
    }

    /// What reading the same database with [`super::IntrospectOptions::only_tables`] set to
    /// `scope` gives: the tables in `scope`, the sequences they own and every unowned one, the
    /// indexes of the materialized views in `scope`, and all types, views, functions, schemas and
    /// extensions. [`Snapshot::merge_scoped`] is its converse.
    pub fn scoped(&self, scope: &[(String, String)]) -> Snapshot {
        let within = Scope::new(scope);
        // Field by field: cloning the whole snapshot first would copy every table only to
        // drop most of them.
        let mut out = Snapshot {
            format: self.format,
            schemas: self.schemas.clone(),
            extensions: self.extensions.clone(),
            types: self.types.clone(),
            sequences: Vec::new(),
            tables: Vec::new(),
            views: Vec::new(),
            functions: self.functions.clone(),
        };
        out.tables = self
            .tables
            .iter()
            .filter(|t| within.has(&t.schema, &t.name))
            .cloned()
            .collect();
        out.sequences = self
            .sequences
            .iter()
            .filter(|q| within.keeps_sequence(q))
            .cloned()
            .collect();
        out.views = self
            .views
            .iter()
            .map(|v| {
                let mut v = v.clone();
                if !within.has(&v.schema, &v.name) {
                    v.indexes.clear();
                }
                v
            })
            .collect();
        out
    }

    /// Whether no view is in `scope` or reads a relation in it: then statements that change
    /// only those relations' tables and indexes ([`crate::sql::table_level_only`]) leave every
    /// view as it was.
    pub fn views_outside(&self, scope: &[(String, String)]) -> bool {
        let within = Scope::new(scope);
        self.views.iter().all(|v| {
            !within.has(&v.schema, &v.name)
                && !v.depends_on.iter().any(|d| within.has(&d.schema, &d.name))
        })
    }

    /// `scope` plus the tables whose definitions name a table in it: those with a foreign key
    /// to it and its partitions. Renaming a table changes their text without locking them, so
    /// a scope that is to be merged back ([`Snapshot::merge_scoped`]) must hold them too.
    pub fn with_dependents(&self, scope: &[(String, String)]) -> Vec<(String, String)> {
        let within = Scope::new(scope);
        let mut out = scope.to_vec();
        for t in &self.tables {
            let refers = t.constraints.iter().any(|c| {
                c.references
                    .as_ref()
                    .is_some_and(|r| within.has(&r.schema, &r.name))
            }) || t
                .partition_of
                .as_ref()
                .is_some_and(|p| within.has(&p.schema, &p.table));
            if refers {
                out.push((t.schema.clone(), t.name.clone()));
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// Takes in `fresh`, a snapshot read with `only_tables = scope` after this one: what it
    /// covers replaces what this one holds (see [`Snapshot::scoped`]), the rest stays. Returns
    /// whether something outside the relations changed (a type, function, view, schema or
    /// extension): a change there can alter tables outside `scope` too (a renamed type renames
    /// their columns' type), so the caller should read the whole snapshot again.
    pub fn merge_scoped(&mut self, scope: &[(String, String)], fresh: Snapshot) -> bool {
        let within = Scope::new(scope);
        let view_key = |v: &View| (v.schema.clone(), v.name.clone());
        let unchanged_views = self.views.len() == fresh.views.len()
            && self.views.iter().zip(&fresh.views).all(|(a, b)| {
                view_key(a) == view_key(b)
                    && View {
                        indexes: Vec::new(),
                        ..a.clone()
                    } == View {
                        indexes: Vec::new(),
                        ..b.clone()
                    }
            });
        let others_changed = !unchanged_views
            || self.schemas != fresh.schemas
            || self.extensions != fresh.extensions
            || self.types != fresh.types
            || self.functions != fresh.functions;
        let mut old_view_indexes: HashMap<(String, String), Vec<Index>> =
            std::mem::take(&mut self.views)
                .into_iter()
                .map(|v| (view_key(&v), v.indexes))
                .collect();
        self.views = fresh
            .views
            .into_iter()
            .map(|mut v| {
                if !within.has(&v.schema, &v.name) {
                    v.indexes = old_view_indexes.remove(&view_key(&v)).unwrap_or_default();
                }
                v
            })
            .collect();
        self.tables.retain(|t| !within.has(&t.schema, &t.name));
        self.tables.extend(fresh.tables);
        self.sequences.retain(|q| !within.keeps_sequence(q));
        self.sequences.extend(fresh.sequences);
        self.schemas = fresh.schemas;
        self.extensions = fresh.extensions;
        self.types = fresh.types;
        self.functions = fresh.functions;
        self.normalize();
        others_changed
    }

    /// Puts every collection in its canonical order.
    pub fn normalize(&mut self) {
        self.schemas.sort_by(|a, b| a.name.cmp(&b.name));
        self.extensions.sort_by(|a, b| a.name.cmp(&b.name));
        self.types
            .sort_by(|a, b| (&a.schema, &a.name).cmp(&(&b.schema, &b.name)));
        self.sequences
            .sort_by(|a, b| (&a.schema, &a.name).cmp(&(&b.schema, &b.name)));
        self.tables
            .sort_by(|a, b| (&a.schema, &a.name).cmp(&(&b.schema, &b.name)));
        for t in &mut self.tables {
            t.constraints.sort_by(|a, b| a.name.cmp(&b.name));
            t.indexes.sort_by(|a, b| a.name.cmp(&b.name));
            t.triggers.sort_by(|a, b| a.name.cmp(&b.name));
            t.policies.sort_by(|a, b| a.name.cmp(&b.name));
            t.options.sort();
        }
        self.views
            .sort_by(|a, b| (&a.schema, &a.name).cmp(&(&b.schema, &b.name)));
        for v in &mut self.views {
            v.indexes.sort_by(|a, b| a.name.cmp(&b.name));
            v.depends_on.sort();
            v.depends_on.dedup();
            v.options.sort();
        }
        self.functions.sort_by(|a, b| {
            (&a.schema, &a.name, &a.arguments).cmp(&(&b.schema, &b.name, &b.arguments))
        });
    }

    /// Stable, pretty JSON (ends with a newline).
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Reads a snapshot written by [`Snapshot::to_json`].
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        let mut s: Snapshot = serde_json::from_str(text)?;
        s.normalize();
        Ok(s)
    }

    /// Re-creatable DDL for the whole snapshot, in dependency order.
    pub fn to_sql(&self) -> String {
        super::diff::diff(&Snapshot::empty(), self).to_sql()
    }

    /// Number of tables, views, types, sequences and functions: a size for humans.
    pub fn object_count(&self) -> usize {
        self.tables.len()
            + self.views.len()
            + self.types.len()
            + self.sequences.len()
            + self.functions.len()
    }
}

/// `"schema"."name"`, for messages.
pub fn display_name(schema: &str, name: &str) -> String {
    if is_plain(schema) && is_plain(name) {
        format!("{schema}.{name}")
    } else {
        format!("{}.{}", quote_ident(schema), quote_ident(name))
    }
}

/// One identifier as [`display_name`] shows it: bare when plain, quoted otherwise.
pub fn display_ident(name: &str) -> String {
    if is_plain(name) {
        name.to_string()
    } else {
        quote_ident(name)
    }
}

fn is_plain(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

/// A set of (schema, relation) names, as [`Snapshot::scoped`] reads it.
/// Checked once per table of the model for each migration the test suite runs: a fast hasher.
struct Scope<'a>(rustc_hash::FxHashSet<(&'a str, &'a str)>);

impl<'a> Scope<'a> {
    fn new(scope: &'a [(String, String)]) -> Self {
        Scope(
            scope
                .iter()
                .map(|(s, n)| (s.as_str(), n.as_str()))
                .collect(),
        )
    }

    fn has(&self, schema: &str, name: &str) -> bool {
        self.0.contains(&(schema, name))
    }

    /// Unowned sequences are always read; owned ones with their table.
    fn keeps_sequence(&self, q: &Sequence) -> bool {
        q.owned_by
            .as_ref()
            .is_none_or(|o| self.has(&o.schema, &o.table))
    }
}
