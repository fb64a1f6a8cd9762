//! Functions and procedures, keyed by signature.

use super::*;

pub(super) fn diff_functions(b: &mut Builder, from: &Snapshot, to: &Snapshot) {
    let key = |f: &Function| (f.schema.clone(), f.name.clone(), f.arguments.clone());
    let of = by_key(&from.functions, key);
    let nf = by_key(&to.functions, key);
    for (k, f) in &nf {
        let name = format!("{}({})", display_name(&f.schema, &f.name), f.arguments);
        let phase = if f.language == "sql" {
            Phase::CreateLateFunction
        } else {
            Phase::CreateFunction
        };
        let target = format!("{} {}", f.keyword(), f.signature());
        match of.get(k) {
            None => {
                b.push(
                    phase,
                    ObjectKind::Function,
                    name.clone(),
                    name.clone(),
                    Action::Create,
                    ddl::create_function(f),
                    none(),
                );
                comment_change(
                    b,
                    ObjectKind::Function,
                    name.clone(),
                    name,
                    target,
                    None,
                    f.comment.as_deref(),
                );
            }
            Some(o) => {
                if o.definition != f.definition {
                    let sql = if o.returns != f.returns || o.procedure != f.procedure {
                        format!(
                            "DROP {} {};\n{}",
                            o.keyword(),
                            o.signature(),
                            ddl::create_function(f)
                        )
                    } else {
                        ddl::create_function(f)
                    };
                    b.push(
                        phase,
                        ObjectKind::Function,
                        name.clone(),
                        name.clone(),
                        Action::Replace,
                        sql,
                        none(),
                    );
                }
                comment_change(
                    b,
                    ObjectKind::Function,
                    name.clone(),
                    name,
                    target,
                    o.comment.as_deref(),
                    f.comment.as_deref(),
                );
            }
        }
    }
    for (k, f) in &of {
        if !nf.contains_key(k) {
            let name = format!("{}({})", display_name(&f.schema, &f.name), f.arguments);
            b.push(
                Phase::DropFunction,
                ObjectKind::Function,
                name.clone(),
                name,
                Action::Drop,
                format!("DROP {} {};", f.keyword(), f.signature()),
                none(),
            );
        }
    }
}
