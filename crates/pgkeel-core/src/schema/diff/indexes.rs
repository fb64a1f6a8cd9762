//! Index changes of one table: created, dropped, rebuilt where the definition changed.

use super::*;

#[allow(clippy::too_many_arguments)]
pub(super) fn diff_indexes(
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
