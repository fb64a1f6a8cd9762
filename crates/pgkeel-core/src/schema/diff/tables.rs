//! Tables: created and dropped in partition order, and altered column by column.

use super::*;

pub(super) fn partition_depth(t: &Table, all: &HashMap<(String, String), &Table>) -> usize {
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
pub(super) type Altered = HashSet<TableRef>;

pub(super) fn diff_tables(b: &mut Builder, from: &Snapshot, to: &Snapshot) -> Altered {
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
                format!("{name}.{}", display_ident(&c.name)),
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

pub(super) fn strip_not_valid(def: &str) -> &str {
    def.strip_suffix(" NOT VALID").unwrap_or(def)
}

pub(super) fn varchar_len(t: &str) -> Option<Option<u32>> {
    if t == "text" || t == "character varying" {
        return Some(None);
    }
    t.strip_prefix("character varying(")
        .and_then(|r| r.strip_suffix(')'))
        .and_then(|n| n.parse().ok())
        .map(Some)
}

/// True when changing `from` to `to` needs no rewrite (varchar widened, varchar to text).
pub(super) fn binary_compatible(from: &str, to: &str) -> bool {
    match (varchar_len(from), varchar_len(to)) {
        (Some(_), Some(None)) => true,
        (Some(Some(a)), Some(Some(b))) => b >= a,
        _ => false,
    }
}

pub(super) fn volatile_default(d: &str) -> bool {
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
pub(super) fn diff_table(
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
    let col_obj = |c: &str| format!("{owner}.{}", display_ident(c));

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
                "{COLUMN_ORDER} (after the change it would be {}, wanted {}): PostgreSQL only appends columns; recreate the table or accept the order",
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
