//! drizzle-kit's snapshots (`meta/<prefix>_snapshot.json` beside a journal folder, PostgreSQL,
//! versions 5 to 7): the schema drizzle-kit expected after each migration, compared with a live
//! schema ([`compare`]) at the level the snapshot describes: tables and their columns (type, NOT
//! NULL), primary keys, unique, foreign-key and check constraints and indexes by name, and enums
//! with their values.
//!
//! Owns reading a snapshot and that comparison. Must not read a database (the engine passes the
//! live [`Snapshot`], read with an empty `search_path`), nor compare what a snapshot writes as
//! the TypeScript gave it rather than as PostgreSQL keeps it (defaults, check expressions, index
//! expressions): those would differ in spelling only, and a drift report must not cry wolf.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::model::{ConstraintKind, Snapshot, TypeKind};
use crate::ident::minimal as quote_ident;

#[derive(Debug, thiserror::Error)]
pub enum DrizzleSnapshotError {
    #[error("cannot read drizzle-kit's snapshot {}: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("drizzle-kit's snapshot {} is not one pgkeel reads ({message}); compare with a scratch database instead (validate --schema without snapshots)", path.display())]
    Malformed { path: PathBuf, message: String },
}

/// The snapshot drizzle-kit wrote with the migration `tag` (`0003_cool_name` or
/// `20261203101500_name`): `meta/0003_snapshot.json`, named by the tag's prefix.
pub fn path_for_tag(dir: &Path, tag: &str) -> PathBuf {
    let prefix = tag.split_once('_').map_or(tag, |(p, _)| p);
    dir.join("meta").join(format!("{prefix}_snapshot.json"))
}

/// What a snapshot says the schema is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    /// By (schema, name).
    pub tables: BTreeMap<(String, String), ExpectedTable>,
    /// By (schema, name): the labels in order.
    pub enums: BTreeMap<(String, String), Vec<String>>,
    /// Views drizzle manages (not `.existing()`), by (schema, name): whether materialized.
    pub views: BTreeMap<(String, String), bool>,
    /// Sequences declared with `pgSequence` (a serial's own sequence is the column's).
    pub sequences: std::collections::BTreeSet<(String, String)>,
    /// Schemas declared with `pgSchema`.
    pub schemas: std::collections::BTreeSet<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpectedTable {
    /// By name.
    pub columns: Vec<ExpectedColumn>,
    /// Columns of the primary key (a column's `primaryKey`, or a composite one).
    pub primary_key: Vec<String>,
    /// Unique, foreign-key and check constraints, by name.
    pub constraints: BTreeMap<String, ConstraintKind>,
    pub indexes: Vec<String>,
    /// Row-level security policies, by name.
    pub policies: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedColumn {
    pub name: String,
    /// As `format_type` writes it with an empty `search_path` (see [`normalize_type`]).
    pub type_name: String,
    pub not_null: bool,
}

#[derive(Deserialize)]
struct Doc {
    #[serde(default)]
    tables: BTreeMap<String, DocTable>,
    #[serde(default)]
    enums: BTreeMap<String, DocEnum>,
    #[serde(default)]
    views: BTreeMap<String, DocView>,
    #[serde(default)]
    sequences: BTreeMap<String, DocNamed>,
    #[serde(default)]
    schemas: BTreeMap<String, serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DocView {
    name: String,
    #[serde(default)]
    schema: String,
    #[serde(default)]
    materialized: bool,
    #[serde(default)]
    is_existing: bool,
}

#[derive(Deserialize)]
struct DocNamed {
    name: String,
    #[serde(default)]
    schema: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DocTable {
    name: String,
    #[serde(default)]
    schema: String,
    #[serde(default)]
    columns: BTreeMap<String, DocColumn>,
    #[serde(default)]
    indexes: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    foreign_keys: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    composite_primary_keys: BTreeMap<String, DocPk>,
    #[serde(default)]
    unique_constraints: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    check_constraints: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    policies: BTreeMap<String, serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DocColumn {
    name: String,
    #[serde(rename = "type")]
    type_name: String,
    #[serde(default)]
    type_schema: Option<String>,
    #[serde(default)]
    primary_key: bool,
    #[serde(default)]
    not_null: bool,
}

#[derive(Deserialize)]
struct DocPk {
    columns: Vec<String>,
}

#[derive(Deserialize)]
struct DocEnum {
    name: String,
    #[serde(default)]
    schema: String,
    values: Vec<String>,
}

impl Expected {
    /// Every schema the snapshot puts something in (and the ones it declares).
    pub fn schema_names(&self) -> Vec<String> {
        let mut out: std::collections::BTreeSet<String> = self.schemas.clone();
        for (s, _) in self
            .tables
            .keys()
            .chain(self.enums.keys())
            .chain(self.views.keys())
            .chain(self.sequences.iter())
        {
            out.insert(s.clone());
        }
        out.into_iter().collect()
    }
}

/// Reads the snapshot at `path`.
pub fn read(path: &Path) -> Result<Expected, DrizzleSnapshotError> {
    let text = std::fs::read_to_string(path).map_err(|error| DrizzleSnapshotError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    parse(&text).map_err(|message| DrizzleSnapshotError::Malformed {
        path: path.to_path_buf(),
        message,
    })
}

/// Parses a snapshot's text; the error says what is wrong with it.
pub fn parse(text: &str) -> Result<Expected, String> {
    let doc: Doc = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let mut out = Expected::default();
    let schema_or_public = |s: &str| match s {
        "" => "public".to_string(),
        s => s.to_string(),
    };
    for v in doc.views.into_values().filter(|v| !v.is_existing) {
        out.views
            .insert((schema_or_public(&v.schema), v.name), v.materialized);
    }
    for q in doc.sequences.into_values() {
        out.sequences.insert((schema_or_public(&q.schema), q.name));
    }
    out.schemas = doc.schemas.into_keys().collect();
    for e in doc.enums.into_values() {
        out.enums
            .insert((schema_or_public(&e.schema), e.name), e.values);
    }
    for t in doc.tables.into_values() {
        // By name (the snapshot keys them so); their order is not compared.
        let mut columns = Vec::new();
        let mut primary_key = Vec::new();
        for c in t.columns.into_values() {
            if c.primary_key {
                primary_key.push(c.name.clone());
            }
            columns.push(ExpectedColumn {
                type_name: normalize_type(&c.type_name, c.type_schema.as_deref()),
                not_null: c.not_null || c.primary_key,
                name: c.name,
            });
        }
        if let Some(pk) = t.composite_primary_keys.into_values().next() {
            primary_key = pk.columns;
        }
        let mut constraints = BTreeMap::new();
        for (names, kind) in [
            (t.unique_constraints, ConstraintKind::Unique),
            (t.foreign_keys, ConstraintKind::ForeignKey),
            (t.check_constraints, ConstraintKind::Check),
        ] {
            for name in names.into_keys() {
                constraints.insert(name, kind);
            }
        }
        out.tables.insert(
            (schema_or_public(&t.schema), t.name),
            ExpectedTable {
                columns,
                primary_key,
                constraints,
                indexes: t.indexes.into_keys().collect(),
                policies: t.policies.into_keys().collect(),
            },
        );
    }
    Ok(out)
}

/// drizzle-kit's spelling of a column type as `format_type` writes it with an empty
/// `search_path`: `varchar(256)` is `character varying(256)`, `serial` is `integer`, an enum
/// `role` of schema `public` is `public.role`, `numeric(10, 2)` is `numeric(10,2)`.
pub fn normalize_type(t: &str, type_schema: Option<&str>) -> String {
    // drizzle-kit writes `timestamp (3) with time zone`.
    let t = t.replace(" (", "(");
    let t = t.as_str();
    let (base, arrays) = match t.find("[]") {
        Some(i) => (&t[..i], &t[i..]),
        None => (t, ""),
    };
    let base = base.trim();
    let (name, args) = match base.find('(') {
        Some(i) if base.ends_with(')') => (base[..i].trim(), Some(&base[i + 1..base.len() - 1])),
        _ => (base, None),
    };
    let args = args.map(|a| a.split(',').map(str::trim).collect::<Vec<_>>().join(","));
    let with_args = |n: &str| match &args {
        Some(a) => format!("{n}({a})"),
        None => n.to_string(),
    };
    let lower = name.to_ascii_lowercase();
    let base = match lower.as_str() {
        "serial" | "serial4" | "int" | "int4" | "integer" => "integer".to_string(),
        "bigserial" | "serial8" | "int8" | "bigint" => "bigint".to_string(),
        "smallserial" | "serial2" | "int2" | "smallint" => "smallint".to_string(),
        "varchar" | "character varying" => with_args("character varying"),
        "char" | "character" => with_args("character"),
        "decimal" | "numeric" => with_args("numeric"),
        "bool" | "boolean" => "boolean".into(),
        "float8" | "double precision" => "double precision".into(),
        "float4" | "real" => "real".into(),
        "timestamp" | "timestamp without time zone" => time_type("timestamp", &args, false),
        "timestamptz" | "timestamp with time zone" => time_type("timestamp", &args, true),
        "time" | "time without time zone" => time_type("time", &args, false),
        "timetz" | "time with time zone" => time_type("time", &args, true),
        _ => {
            // `timestamp(3) with time zone`: the precision sits before the zone words.
            if let Some(rest) = lower
                .strip_prefix("timestamp")
                .or_else(|| lower.strip_prefix("time"))
            {
                if rest.starts_with('(') {
                    return format!("{}{arrays}", base.to_ascii_lowercase());
                }
            }
            match type_schema {
                Some(s) if s != "pg_catalog" => {
                    format!("{}.{}", quote_ident(s), quote_ident(name))
                }
                _ => with_args(name),
            }
        }
    };
    format!("{base}{arrays}")
}

fn time_type(word: &str, args: &Option<String>, zone: bool) -> String {
    let precision = args
        .as_deref()
        .map(|a| format!("({a})"))
        .unwrap_or_default();
    let zone = if zone { "with" } else { "without" };
    format!("{word}{precision} {zone} time zone")
}

/// One way the live schema differs from drizzle-kit's snapshot.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct Drift {
    /// `table`, `column`, `constraint`, `policy`, `index`, `view`, `materialized-view`,
    /// `sequence`, `schema`, `enum`.
    pub kind: &'static str,
    /// `table public.users`, `column public.users.email`, `enum public.role`, …
    pub object: String,
    pub how: How,
}

/// Whether the object is missing from the live schema, extra in it, or different.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub enum How {
    Missing,
    Extra,
    /// `{what} {live} in the live schema, {want} in drizzle's snapshot` (`is`, `has values`).
    Changed {
        what: &'static str,
        live: String,
        want: String,
    },
}

impl Drift {
    /// `missing-column`, `extra-table`, `changed-enum`, …
    pub fn id(&self) -> String {
        let how = match self.how {
            How::Missing => "missing",
            How::Extra => "extra",
            How::Changed { .. } => "changed",
        };
        format!("{how}-{}", self.kind)
    }

    /// What differs, `live` naming the schema compared with the snapshot (`the database`).
    pub fn message(&self, live: &str) -> String {
        match &self.how {
            How::Missing => format!("is in drizzle's snapshot but not in {live}"),
            How::Extra => format!("is in {live} but not in drizzle's snapshot"),
            How::Changed {
                what,
                live: have,
                want,
            } => format!("{what} {have} in {live}, {want} in drizzle's snapshot"),
        }
    }
}

/// Whether drizzle-kit's `tablesFilter` (globs; `!` excludes; empty: all) covers `table`.
pub fn managed(tables_filter: &[String], table: &str) -> bool {
    let matches = |p: &str| glob::Pattern::new(p).is_ok_and(|g| g.matches(table));
    let (exclude, include): (Vec<&String>, Vec<&String>) =
        tables_filter.iter().partition(|p| p.starts_with('!'));
    (include.is_empty() || include.iter().any(|p| matches(p)))
        && !exclude.iter().any(|p| matches(&p[1..]))
}

/// How `live` differs from `expected`, in the schemas the snapshot names (and `public`).
/// `ignore`d tables (pgkeel's and drizzle's bookkeeping) and tables outside drizzle-kit's
/// `tables_filter` ([`managed`]) are left out.
pub fn compare(
    expected: &Expected,
    live: &Snapshot,
    ignore: &[(String, String)],
    tables_filter: &[String],
) -> Vec<Drift> {
    let mut out = Vec::new();
    let mut drift =
        |kind: &'static str, object: String, how: How| out.push(Drift { kind, object, how });
    let changed = |what, live: String, want: String| How::Changed { what, live, want };
    let q = |s: &str, n: &str| format!("{}.{}", quote_ident(s), quote_ident(n));
    let view_word = |m: bool| if m { "materialized-view" } else { "view" };
    let schemas: std::collections::BTreeSet<&str> = expected
        .tables
        .keys()
        .chain(expected.enums.keys())
        .map(|(s, _)| s.as_str())
        .chain(["public"])
        .collect();
    for ((schema, name), want) in &expected.tables {
        let table = q(schema, name);
        let Some(have) = live
            .tables
            .iter()
            .find(|t| &t.schema == schema && &t.name == name)
        else {
            drift("table", format!("table {table}"), How::Missing);
            continue;
        };
        for c in &want.columns {
            let object = format!("column {table}.{}", quote_ident(&c.name));
            let Some(x) = have.columns.iter().find(|x| x.name == c.name) else {
                drift("column", object, How::Missing);
                continue;
            };
            if x.type_name != c.type_name {
                let how = changed("is", x.type_name.clone(), c.type_name.clone());
                drift("column", object.clone(), how);
            }
            if x.not_null != c.not_null {
                let says = |n: bool| if n { "NOT NULL" } else { "nullable" }.to_string();
                drift(
                    "column",
                    object,
                    changed("is", says(x.not_null), says(c.not_null)),
                );
            }
        }
        for x in &have.columns {
            if !want.columns.iter().any(|c| c.name == x.name) {
                let object = format!("column {table}.{}", quote_ident(&x.name));
                drift("column", object, How::Extra);
            }
        }
        let live_pk = have
            .constraints
            .iter()
            .find(|k| k.kind == ConstraintKind::PrimaryKey)
            .map(|k| k.columns.clone())
            .unwrap_or_default();
        if live_pk != want.primary_key {
            let cols = |c: &[String]| format!("({})", c.join(", "));
            let how = changed("has primary key", cols(&live_pk), cols(&want.primary_key));
            drift("table", format!("table {table}"), how);
        }
        for (cname, kind) in &want.constraints {
            if !have
                .constraints
                .iter()
                .any(|k| &k.name == cname && k.kind == *kind)
            {
                let object = format!("constraint {} on {table}", quote_ident(cname));
                drift("constraint", object, How::Missing);
            }
        }
        for pol in &want.policies {
            if !have.policies.iter().any(|x| &x.name == pol) {
                let object = format!("policy {} on {table}", quote_ident(pol));
                drift("policy", object, How::Missing);
            }
        }
        for i in &want.indexes {
            if !have.indexes.iter().any(|x| &x.name == i) {
                drift("index", format!("index {}", q(schema, i)), How::Missing);
            }
        }
    }
    for t in &live.tables {
        let key = (t.schema.clone(), t.name.clone());
        if schemas.contains(t.schema.as_str())
            && !expected.tables.contains_key(&key)
            && !ignore.contains(&key)
            && managed(tables_filter, &t.name)
        {
            drift(
                "table",
                format!("table {}", q(&t.schema, &t.name)),
                How::Extra,
            );
        }
    }
    for ((schema, name), materialized) in &expected.views {
        let kind = view_word(*materialized);
        let object = format!("{kind} {}", q(schema, name));
        match live
            .views
            .iter()
            .find(|v| &v.schema == schema && &v.name == name)
        {
            None => drift(kind, object, How::Missing),
            Some(v) if v.materialized != *materialized => {
                let word = |m: bool| if m { "materialized view" } else { "view" }.to_string();
                let how = changed("is a", word(v.materialized), word(*materialized));
                drift(kind, object, how);
            }
            Some(_) => {}
        }
    }
    for v in &live.views {
        let key = (v.schema.clone(), v.name.clone());
        if schemas.contains(v.schema.as_str()) && !expected.views.contains_key(&key) {
            let kind = view_word(v.materialized);
            drift(
                kind,
                format!("{kind} {}", q(&v.schema, &v.name)),
                How::Extra,
            );
        }
    }
    for (schema, name) in &expected.sequences {
        if !live
            .sequences
            .iter()
            .any(|x| &x.schema == schema && &x.name == name)
        {
            drift(
                "sequence",
                format!("sequence {}", q(schema, name)),
                How::Missing,
            );
        }
    }
    for schema in &expected.schemas {
        if !live.schemas.iter().any(|x| &x.name == schema) {
            drift(
                "schema",
                format!("schema {}", quote_ident(schema)),
                How::Missing,
            );
        }
    }
    for ((schema, name), labels) in &expected.enums {
        let object = format!("enum {}", q(schema, name));
        let have = live.types.iter().find_map(|t| match &t.kind {
            TypeKind::Enum { labels } if &t.schema == schema && &t.name == name => Some(labels),
            _ => None,
        });
        match have {
            None => drift("enum", object, How::Missing),
            Some(h) if h != labels => {
                let values = |v: &[String]| format!("({})", v.join(", "));
                drift(
                    "enum",
                    object,
                    changed("has values", values(h), values(labels)),
                );
            }
            Some(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drizzle_kit_type_spellings_become_format_type_ones() {
        for (t, schema, want) in [
            ("serial", None, "integer"),
            ("bigserial", None, "bigint"),
            ("varchar(256)", None, "character varying(256)"),
            ("varchar", None, "character varying"),
            ("numeric(10, 2)", None, "numeric(10,2)"),
            ("timestamp", None, "timestamp without time zone"),
            ("timestamp(3)", None, "timestamp(3) without time zone"),
            ("timestamp with time zone", None, "timestamp with time zone"),
            (
                "timestamp(6) with time zone",
                None,
                "timestamp(6) with time zone",
            ),
            ("text[]", None, "text[]"),
            ("varchar(20)[]", None, "character varying(20)[]"),
            ("role", Some("public"), "public.role"),
            ("Status", Some("app"), "app.\"Status\""),
            ("jsonb", None, "jsonb"),
            ("uuid", None, "uuid"),
            ("double precision", None, "double precision"),
        ] {
            assert_eq!(normalize_type(t, schema), want, "{t}");
        }
    }

    #[test]
    fn tables_filter_globs_include_and_exclude() {
        let f = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(managed(&[], "anything"));
        assert!(managed(&f(&["app_*"]), "app_users"));
        assert!(!managed(&f(&["app_*"]), "audit"));
        assert!(!managed(&f(&["app_*", "!app_tmp*"]), "app_tmp1"));
        assert!(!managed(&f(&["!legacy_*"]), "legacy_x"));
        assert!(managed(&f(&["!legacy_*"]), "users"));
    }

    #[test]
    fn snapshot_paths_follow_the_tags_prefix() {
        let d = Path::new("/m");
        assert_eq!(
            path_for_tag(d, "0003_cool_name"),
            Path::new("/m/meta/0003_snapshot.json")
        );
        assert_eq!(
            path_for_tag(d, "20261203105702_init"),
            Path::new("/m/meta/20261203105702_snapshot.json")
        );
    }

    #[test]
    fn a_snapshot_reads_into_tables_constraints_and_enums() {
        let e = parse(
            r#"{"version":"7","dialect":"postgresql","tables":{"public.users":{"name":"users","schema":"","columns":{
              "id":{"name":"id","type":"serial","primaryKey":true,"notNull":true},
              "role":{"name":"role","type":"role","typeSchema":"public","primaryKey":false,"notNull":true,"default":"'member'"}},
              "indexes":{"users_role_idx":{}},"foreignKeys":{},"compositePrimaryKeys":{},
              "uniqueConstraints":{"users_role_unique":{}},"checkConstraints":{}}},
              "enums":{"public.role":{"name":"role","schema":"public","values":["admin","member"]}}}"#,
        )
        .unwrap();
        let t = &e.tables[&("public".into(), "users".into())];
        assert_eq!(t.primary_key, ["id"]);
        assert_eq!(t.columns[1].type_name, "public.role");
        assert_eq!(t.indexes, ["users_role_idx"]);
        assert_eq!(
            t.constraints.get("users_role_unique"),
            Some(&ConstraintKind::Unique)
        );
        assert_eq!(
            e.enums[&("public".into(), "role".into())],
            ["admin", "member"]
        );
        assert!(parse("{\"tables\": 3}").is_err());
    }

    #[test]
    fn views_sequences_schemas_and_policies_are_compared_by_name() {
        let e = parse(
            r#"{"tables":{"auth.t":{"name":"t","schema":"auth","columns":{},"policies":{"own_rows":{}}}},
              "views":{"public.v":{"name":"v","schema":"public","materialized":false},
                       "public.old":{"name":"old","schema":"public","isExisting":true}},
              "sequences":{"public.counter":{"name":"counter","schema":"public"}},
              "schemas":{"auth":"auth"}}"#,
        )
        .unwrap();
        assert_eq!(e.schema_names(), ["auth", "public"]);
        let live = Snapshot::default();
        let objects: Vec<String> = compare(&e, &live, &[], &[])
            .into_iter()
            .map(|d| format!("{} {}", d.id(), d.object))
            .collect();
        assert_eq!(
            objects,
            [
                "missing-table table auth.t",
                "missing-view view public.v",
                "missing-sequence sequence public.counter",
                "missing-schema schema auth"
            ]
        );
    }
}
