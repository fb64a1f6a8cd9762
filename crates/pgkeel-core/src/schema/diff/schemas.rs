//! Schemas and extensions: created, dropped, commented, an extension's version and schema.

use super::*;

pub(super) fn diff_schemas(b: &mut Builder, from: &Snapshot, to: &Snapshot) {
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

pub(super) fn diff_extensions(b: &mut Builder, from: &Snapshot, to: &Snapshot) {
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
