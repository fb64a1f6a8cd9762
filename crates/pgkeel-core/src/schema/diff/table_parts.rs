//! One table's constraints, indexes, triggers, policies and row-level security flags.

use super::*;

/// Constraints, indexes, triggers, policies and RLS flags of one table.
pub(super) fn diff_table_parts(
    b: &mut Builder,
    old: &Table,
    new: &Table,
    exists: bool,
    rekeyed: &HashSet<TableRef>,
) {
    let tname = new.sql_name();
    let owner = display_name(&new.schema, &new.name);
    let hz = |list: &[Hazard]| if exists { h(list) } else { none() };
    let sub = |n: &str| format!("{owner}.{}", display_ident(n));

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
