//! SQL text the inverter writes: quoted names from parse-tree nodes, `DROP` statements, object
//! keywords, and function signatures.

use super::*;

pub(crate) fn or_replace(what: &str) -> Inverse {
    irreversible(format!(
        "CREATE OR REPLACE {what}: it may have replaced an earlier definition, which dropping would not bring back; write a .down.sql"
    ))
}

pub(crate) fn drop_sql(kind: &str, name: &str) -> Inverse {
    Inverse::Sql(vec![format!("DROP {kind} IF EXISTS {name}")])
}

pub(crate) fn object_word(kind: pb::ObjectType) -> String {
    kind.as_str_name()
        .trim_start_matches("OBJECT_")
        .to_ascii_lowercase()
        .replace('_', " ")
}

/// `ALTER <keyword>` for the relation kinds pgkeel inverts.
pub(crate) fn alter_keyword(kind: pb::ObjectType) -> Option<&'static str> {
    use pb::ObjectType as O;
    Some(match kind {
        O::ObjectTable => "TABLE",
        O::ObjectForeignTable => "FOREIGN TABLE",
        O::ObjectView => "VIEW",
        O::ObjectMatview => "MATERIALIZED VIEW",
        O::ObjectSequence => "SEQUENCE",
        O::ObjectIndex => "INDEX",
        O::ObjectType => "TYPE",
        _ => return None,
    })
}

/// `DROP FUNCTION IF EXISTS name(argtypes)` for a CREATE FUNCTION/PROCEDURE, rendered by
/// PostgreSQL's deparser so argument types (arrays, qualified and quoted types) come out right.
pub(crate) fn drop_function_sql(f: &pb::CreateFunctionStmt) -> Option<String> {
    drop_function(f, false)
}

/// The signature of a function `CREATE [OR REPLACE] FUNCTION` writes, as `to_regprocedure`
/// reads it (`public.f(integer, text)`: input argument types only). `None` for procedures.
pub fn function_signature(f: &pb::CreateFunctionStmt) -> Option<String> {
    if f.is_procedure {
        return None;
    }
    let sql = drop_function(f, true)?;
    sql.strip_prefix("DROP FUNCTION ").map(str::to_string)
}

/// `DROP FUNCTION [IF EXISTS] name(args)` for `f`; `signature`: no modes, no `IF EXISTS`.
pub(super) fn drop_function(f: &pb::CreateFunctionStmt, signature: bool) -> Option<String> {
    use pb::FunctionParameterMode as M;
    let args: Vec<pb::Node> = f
        .parameters
        .iter()
        .filter_map(|p| match &p.node {
            Some(NodeEnum::FunctionParameter(fp)) => Some(fp),
            _ => None,
        })
        // RETURNS TABLE columns are results, not arguments; OUT arguments do not identify a
        // function (they do a procedure).
        .filter(|fp| match fp.mode() {
            M::FuncParamTable => false,
            M::FuncParamOut => f.is_procedure,
            _ => true,
        })
        .map(|fp| pb::Node {
            node: Some(NodeEnum::FunctionParameter(Box::new(
                pb::FunctionParameter {
                    name: String::new(),
                    arg_type: fp.arg_type.clone(),
                    // No mode written for plain input arguments: `f(int, text)`.
                    mode: if fp.mode() == M::FuncParamIn || signature {
                        M::FuncParamDefault as i32
                    } else {
                        fp.mode
                    },
                    defexpr: None,
                },
            ))),
        })
        .collect();
    let drop = pb::DropStmt {
        objects: vec![pb::Node {
            node: Some(NodeEnum::ObjectWithArgs(pb::ObjectWithArgs {
                objname: f.funcname.clone(),
                objargs: Vec::new(),
                objfuncargs: args,
                args_unspecified: false,
            })),
        }],
        remove_type: if f.is_procedure {
            pb::ObjectType::ObjectProcedure
        } else {
            pb::ObjectType::ObjectFunction
        } as i32,
        behavior: pb::DropBehavior::DropRestrict as i32,
        missing_ok: !signature,
        concurrent: false,
    };
    NodeEnum::DropStmt(drop).deparse().ok()
}

/// The `sval`s of a list of `String` nodes.
pub(crate) fn strings(nodes: &[pb::Node]) -> Vec<String> {
    nodes
        .iter()
        .filter_map(|n| match &n.node {
            Some(NodeEnum::String(s)) => Some(s.sval.clone()),
            _ => None,
        })
        .collect()
}

pub(crate) fn rv_name(rv: &pb::RangeVar) -> String {
    qualify(&rv.schemaname, &rv.relname)
}

pub(crate) fn qualify(schema: &str, name: &str) -> String {
    if schema.is_empty() {
        ident(name)
    } else {
        format!("{}.{}", ident(schema), ident(name))
    }
}

pub(crate) fn qualified_names(parts: &[String]) -> String {
    parts.iter().map(|p| ident(p)).collect::<Vec<_>>().join(".")
}
