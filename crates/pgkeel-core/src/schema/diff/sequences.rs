//! Sequences, owned and free-standing.

use super::*;

pub(super) fn diff_sequences(b: &mut Builder, from: &Snapshot, to: &Snapshot) {
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
