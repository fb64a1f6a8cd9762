//! Types (enums, composites, domains, ranges): created and dropped in dependency rank, and
//! altered in place where PostgreSQL can.

use super::*;

pub(super) fn type_rank(t: &Type) -> u8 {
    match t.kind {
        TypeKind::Enum { .. } => 0,
        TypeKind::Domain { .. } => 1,
        TypeKind::Composite { .. } => 2,
    }
}

pub(super) fn diff_types(b: &mut Builder, from: &Snapshot, to: &Snapshot) {
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

pub(super) fn alter_type(b: &mut Builder, old: &Type, new: &Type, name: &str) {
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
