//! DDL text for single objects of the model: `CREATE …`, column definitions, `COMMENT ON …`.
//!
//! Pure string rendering from [`super::model`] values, every identifier quoted with
//! [`quote_ident`]. It decides nothing about order or safety; that is [`super::diff`]'s job.

use crate::ident::{qualified, quote_ident, quote_literal};

use super::model::*;

/// `col type [COLLATE c] [GENERATED …] [DEFAULT …] [NOT NULL]`.
pub fn column_def(c: &Column) -> String {
    let mut s = format!("{} {}", quote_ident(&c.name), c.type_name);
    if let Some(coll) = &c.collation {
        s.push_str(&format!(" COLLATE {coll}"));
    }
    if let Some(g) = &c.generated {
        s.push_str(&format!(" GENERATED ALWAYS AS ({g}) STORED"));
    }
    if let Some(id) = c.identity {
        s.push_str(&format!(" GENERATED {} AS IDENTITY", id.sql()));
    }
    if let Some(d) = &c.default {
        s.push_str(&format!(" DEFAULT {d}"));
    }
    if c.not_null {
        s.push_str(" NOT NULL");
    }
    s
}

fn with_options(options: &[String]) -> String {
    if options.is_empty() {
        String::new()
    } else {
        format!(" WITH ({})", options.join(", "))
    }
}

/// `CREATE TABLE` with its columns (constraints, indexes and the rest come separately).
pub fn create_table(t: &Table) -> String {
    let unlogged = if t.unlogged { "UNLOGGED " } else { "" };
    let mut s = format!("CREATE {unlogged}TABLE {}", t.sql_name());
    if let Some(p) = &t.partition_of {
        s.push_str(&format!(
            " PARTITION OF {} {}",
            qualified(&p.schema, &p.table),
            p.bound
        ));
    } else if t.columns.is_empty() {
        s.push_str(" ()");
    } else {
        s.push_str(" (\n");
        let cols: Vec<String> = t
            .columns
            .iter()
            .map(|c| format!("    {}", column_def(c)))
            .collect();
        s.push_str(&cols.join(",\n"));
        s.push_str("\n)");
    }
    if let Some(key) = &t.partition_by {
        s.push_str(&format!(" PARTITION BY {key}"));
    }
    s.push_str(&with_options(&t.options));
    s.push(';');
    s
}

/// `CREATE SEQUENCE` with every parameter spelled out.
pub fn create_sequence(s: &Sequence) -> String {
    format!(
        "CREATE SEQUENCE {} AS {} {};",
        s.sql_name(),
        s.data_type,
        sequence_params(s)
    )
}

pub fn sequence_params(s: &Sequence) -> String {
    format!(
        "INCREMENT BY {} MINVALUE {} MAXVALUE {} START WITH {} CACHE {} {}",
        s.increment,
        s.min,
        s.max,
        s.start,
        s.cache,
        if s.cycle { "CYCLE" } else { "NO CYCLE" }
    )
}

/// `CREATE TYPE` / `CREATE DOMAIN`.
pub fn create_type(t: &Type) -> String {
    match &t.kind {
        TypeKind::Enum { labels } => format!(
            "CREATE TYPE {} AS ENUM ({});",
            t.sql_name(),
            labels
                .iter()
                .map(|l| quote_literal(l))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        TypeKind::Domain {
            base,
            collation,
            default,
            not_null,
            constraints,
        } => {
            let mut s = format!("CREATE DOMAIN {} AS {base}", t.sql_name());
            if let Some(c) = collation {
                s.push_str(&format!(" COLLATE {c}"));
            }
            if let Some(d) = default {
                s.push_str(&format!(" DEFAULT {d}"));
            }
            if *not_null {
                s.push_str(" NOT NULL");
            }
            for c in constraints {
                s.push_str(&format!(
                    " CONSTRAINT {} {}",
                    quote_ident(&c.name),
                    c.definition
                ));
            }
            s.push(';');
            s
        }
        TypeKind::Composite { attributes } => format!(
            "CREATE TYPE {} AS ({});",
            t.sql_name(),
            attributes
                .iter()
                .map(attribute_def)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

pub fn attribute_def(a: &Attribute) -> String {
    let mut s = format!("{} {}", quote_ident(&a.name), a.type_name);
    if let Some(c) = &a.collation {
        s.push_str(&format!(" COLLATE {c}"));
    }
    s
}

/// The keyword `DROP`/`COMMENT ON` use for a type.
pub fn type_keyword(t: &Type) -> &'static str {
    match t.kind {
        TypeKind::Domain { .. } => "DOMAIN",
        _ => "TYPE",
    }
}

/// The SELECT of a view without pg_get_viewdef's trailing semicolon.
pub fn view_query(v: &View) -> &str {
    v.definition.trim().trim_end_matches(';').trim_end()
}

pub fn create_view(v: &View) -> String {
    if v.materialized {
        format!(
            "CREATE MATERIALIZED VIEW {}{} AS\n{}\nWITH DATA;",
            v.sql_name(),
            with_options(&v.options),
            view_query(v)
        )
    } else {
        format!(
            "CREATE VIEW {}{} AS\n{};",
            v.sql_name(),
            with_options(&v.options),
            view_query(v)
        )
    }
}

pub fn view_keyword(v: &View) -> &'static str {
    if v.materialized {
        "MATERIALIZED VIEW"
    } else {
        "VIEW"
    }
}

/// `pg_get_indexdef`, made to build on every partition when the table is partitioned.
pub fn create_index(i: &Index) -> String {
    format!("{};", i.definition.replacen(" ON ONLY ", " ON ", 1))
}

/// `pg_get_functiondef` as a statement.
pub fn create_function(f: &Function) -> String {
    let d = f.definition.trim_end();
    if d.ends_with(';') {
        d.to_string()
    } else {
        format!("{d};")
    }
}

pub fn create_policy(table: &Table, p: &Policy) -> String {
    let mut s = format!(
        "CREATE POLICY {} ON {} AS {} FOR {} TO {}",
        quote_ident(&p.name),
        table.sql_name(),
        if p.permissive {
            "PERMISSIVE"
        } else {
            "RESTRICTIVE"
        },
        p.command,
        p.roles
            .iter()
            .map(|r| if r == "public" {
                "PUBLIC".to_string()
            } else {
                quote_ident(r)
            })
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some(u) = &p.using {
        s.push_str(&format!(" USING ({u})"));
    }
    if let Some(w) = &p.with_check {
        s.push_str(&format!(" WITH CHECK ({w})"));
    }
    s.push(';');
    s
}

/// `ALTER TABLE … ENABLE/DISABLE … TRIGGER` for a `tgenabled` state.
pub fn trigger_state(table: &Table, name: &str, enabled: &str) -> String {
    let mode = match enabled {
        "D" => "DISABLE",
        "R" => "ENABLE REPLICA",
        "A" => "ENABLE ALWAYS",
        _ => "ENABLE",
    };
    format!(
        "ALTER TABLE {} {mode} TRIGGER {};",
        table.sql_name(),
        quote_ident(name)
    )
}

/// `COMMENT ON <target> IS …` (NULL removes it).
pub fn comment(target: &str, text: Option<&str>) -> String {
    format!(
        "COMMENT ON {target} IS {};",
        text.map(quote_literal).unwrap_or_else(|| "NULL".into())
    )
}
