//! Inverses that restore catalog state the schema model does not hold: privileges (`GRANT` /
//! `REVOKE`), owners (`ALTER … OWNER TO`), comments (`COMMENT ON`) and storage parameters
//! (`ALTER TABLE … SET / RESET (…)`), from what the engine read just before the migration
//! ([`ObjectBefore`], keyed by [`CatalogObject`]; [`objects_changed`] says what to read), and
//! the definition a `CREATE OR REPLACE VIEW` replaced ([`ViewBefore`]; [`views_replaced`]).
//!
//! Pure, like the rest of [`crate::invert`]: no query runs here. An object whose state was not
//! read (the read failed, or the statement names it in a way pgkeel does not resolve) has no
//! inverse: the migration's rollback is refused, never guessed.

use super::*;

/// An object whose catalog state a migration's rollback needs, named as the statement names it
/// (unqualified names stay unqualified: the server resolves them with the migration's
/// `search_path`, as the statement does).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CatalogObject {
    /// A table, view, materialized view or sequence (`[schema, name]` or `[name]`): its owner,
    /// privileges and storage parameters.
    Relation(Vec<String>),
    /// A schema: its owner and privileges.
    Schema(String),
    /// What `COMMENT ON` names, as `pg_get_object_address` takes it: its type (`table`,
    /// `column`, `type`, …) and names. Its comment.
    Commented {
        kind: &'static str,
        names: Vec<String>,
    },
}

/// One entry of an object's privileges (`aclexplode`; the owner's default ones when the ACL is
/// empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclItem {
    /// `None`: PUBLIC.
    pub grantee: Option<String>,
    /// Upper case, as `aclexplode` writes it (`SELECT`, `USAGE`).
    pub privilege: String,
    pub grantable: bool,
}

/// An object's catalog state just before a migration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectBefore {
    pub owner: Option<String>,
    pub acl: Vec<AclItem>,
    pub comment: Option<String>,
    /// Storage parameters, as `pg_class.reloptions` holds them (`fillfactor=70`).
    pub options: Vec<String>,
}

/// A view's catalog state just before a `CREATE OR REPLACE VIEW` replaced it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ViewBefore {
    /// `pg_get_viewdef` read with an empty `search_path` (every name qualified), without the
    /// trailing `;`.
    pub definition: String,
    /// Its owner, privileges, comment and options (`check_option=local`, `security_barrier=true`).
    pub state: ObjectBefore,
}

impl Before {
    /// Records what the catalog said about `object` before the migration.
    pub fn insert_object(&mut self, object: CatalogObject, state: ObjectBefore) {
        self.objects.insert(object, state);
    }

    /// Records the view `names` (as the statement writes it) before the migration: `None` when
    /// there was no such view.
    pub fn insert_view(&mut self, names: Vec<String>, state: Option<ViewBefore>) {
        self.views.insert(names, state);
    }
}

/// The views `stmts` write with `CREATE OR REPLACE VIEW`, named as written (`[schema, name]` or
/// `[name]`), in order and without repeats: the views whose definition [`Before`] should hold.
pub fn views_replaced(stmts: &[Statement]) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = Vec::new();
    for s in stmts {
        let upper = s.text.to_ascii_uppercase();
        if !(upper.contains("REPLACE") && upper.contains("VIEW")) {
            continue;
        }
        let Ok(parsed) = pg_query::parse(&s.text) else {
            continue;
        };
        for raw in &parsed.protobuf.stmts {
            if let Some(NodeEnum::ViewStmt(v)) = raw.stmt.as_ref().and_then(|n| n.node.as_ref()) {
                if let (true, Some(rv)) = (v.replace, &v.view) {
                    if let CatalogObject::Relation(names) = relation(rv) {
                        if !out.contains(&names) {
                            out.push(names);
                        }
                    }
                }
            }
        }
    }
    out
}

/// What puts back a view that `CREATE OR REPLACE VIEW` replaced: its definition, options,
/// owner, privileges and comment. `CREATE OR REPLACE` again when the columns allow it (the
/// grants and dependent views stay); when the migration added columns, which `CREATE OR
/// REPLACE` cannot remove (SQLSTATE 42P16), the view is dropped and created again with its
/// owner, privileges and comment, and a view that others depend on then makes the rollback fail
/// whole, with the server's reason, before anything changed.
pub(crate) fn restore_view_sql(name: &str, v: &ViewBefore) -> String {
    let with = match v.state.options.is_empty() {
        true => String::new(),
        false => {
            let opts: Vec<String> = v
                .state
                .options
                .iter()
                .map(|o| match o.split_once('=') {
                    Some((k, val)) => format!("{} = {}", ident(k), quote_literal(val)),
                    None => ident(o),
                })
                .collect();
            format!(" WITH ({})", opts.join(", "))
        }
    };
    let create = format!("VIEW {name}{with} AS {}", v.definition.trim_end());
    let mut again = vec![format!("DROP VIEW {name}"), format!("CREATE {create}")];
    if let Some(owner) = &v.state.owner {
        again.push(format!("ALTER VIEW {name} OWNER TO {}", ident(owner)));
    }
    for a in &v.state.acl {
        if a.grantee.is_some() && a.grantee == v.state.owner {
            continue;
        }
        let to = a.grantee.as_deref().map(ident).unwrap_or("PUBLIC".into());
        let option = if a.grantable {
            " WITH GRANT OPTION"
        } else {
            ""
        };
        again.push(format!(
            "GRANT {} ON TABLE {name} TO {to}{option}",
            a.privilege
        ));
    }
    if let Some(c) = &v.state.comment {
        again.push(format!("COMMENT ON VIEW {name} IS {}", quote_literal(c)));
    }
    let mut tag = "pgkeel".to_string();
    while create.contains(&format!("${tag}$"))
        || again.iter().any(|a| a.contains(&format!("${tag}$")))
    {
        tag.push('_');
    }
    format!(
        "DO ${tag}$ BEGIN\n  CREATE OR REPLACE {create};\nEXCEPTION WHEN invalid_table_definition THEN\n  {};\nEND ${tag}$",
        again.join(";\n  ")
    )
}

/// The objects whose owner, privileges, comment or storage parameters `stmts` change, in order
/// and without repeats: what [`Before`] should hold for [`generate_with`] to invert them.
/// Statements without the keywords involved are not parsed.
pub fn objects_changed(stmts: &[Statement]) -> Vec<CatalogObject> {
    let mut out: Vec<CatalogObject> = Vec::new();
    let mut push = |o: CatalogObject| {
        if !out.contains(&o) {
            out.push(o);
        }
    };
    for s in stmts {
        let upper = s.text.to_ascii_uppercase();
        if !["GRANT", "REVOKE", "OWNER", "COMMENT", "SET", "RESET"]
            .iter()
            .any(|k| upper.contains(k))
        {
            continue;
        }
        let Ok(parsed) = pg_query::parse(&s.text) else {
            continue;
        };
        for raw in &parsed.protobuf.stmts {
            match raw.stmt.as_ref().and_then(|n| n.node.as_ref()) {
                Some(NodeEnum::GrantStmt(g)) => {
                    grant_objects(g).into_iter().flatten().for_each(&mut push)
                }
                Some(NodeEnum::AlterTableStmt(a)) => {
                    use pb::AlterTableType as T;
                    let touches = a.cmds.iter().any(|c| {
                        matches!(&c.node, Some(NodeEnum::AlterTableCmd(c)) if matches!(
                            c.subtype(),
                            T::AtChangeOwner | T::AtSetRelOptions | T::AtResetRelOptions
                        ))
                    });
                    if let (true, Some(rv)) = (touches, &a.relation) {
                        push(relation(rv));
                    }
                }
                Some(NodeEnum::AlterOwnerStmt(o)) => {
                    if let Some(obj) = owned_object(o) {
                        push(obj);
                    }
                }
                Some(NodeEnum::CommentStmt(c)) => {
                    if let Some(obj) = commented(c) {
                        push(obj);
                    }
                }
                _ => {}
            }
        }
    }
    out
}

pub(super) fn relation(rv: &pb::RangeVar) -> CatalogObject {
    let mut names = Vec::new();
    if !rv.schemaname.is_empty() {
        names.push(rv.schemaname.clone());
    }
    names.push(rv.relname.clone());
    CatalogObject::Relation(names)
}

/// The objects a `GRANT`/`REVOKE` names, when they are tables, sequences or schemas named one
/// by one (`ALL TABLES IN SCHEMA` and other object kinds: `None`, no inverse).
fn grant_objects(g: &pb::GrantStmt) -> Option<Vec<CatalogObject>> {
    use pb::ObjectType as O;
    if g.targtype() != pb::GrantTargetType::AclTargetObject {
        return None;
    }
    g.objects
        .iter()
        .map(|o| match (&o.node, g.objtype()) {
            (Some(NodeEnum::RangeVar(rv)), O::ObjectTable | O::ObjectSequence) => {
                Some(relation(rv))
            }
            (Some(NodeEnum::String(s)), O::ObjectSchema) => {
                Some(CatalogObject::Schema(s.sval.clone()))
            }
            _ => None,
        })
        .collect()
}

/// What `ALTER SCHEMA … OWNER TO` names (other `ALTER … OWNER` kinds: `None`).
fn owned_object(o: &pb::AlterOwnerStmt) -> Option<CatalogObject> {
    match (
        o.object_type(),
        o.object.as_deref().and_then(|n| n.node.as_ref()),
    ) {
        (pb::ObjectType::ObjectSchema, Some(NodeEnum::String(s))) => {
            Some(CatalogObject::Schema(s.sval.clone()))
        }
        _ => None,
    }
}

/// What `COMMENT ON` names, for the kinds pgkeel reads the comment of.
fn commented(c: &pb::CommentStmt) -> Option<CatalogObject> {
    use pb::ObjectType as O;
    let node = c.object.as_deref().and_then(|o| o.node.as_ref())?;
    let kind = match c.objtype() {
        O::ObjectTable => "table",
        O::ObjectView => "view",
        O::ObjectMatview => "materialized view",
        O::ObjectSequence => "sequence",
        O::ObjectIndex => "index",
        O::ObjectForeignTable => "foreign table",
        O::ObjectColumn => "table column",
        O::ObjectTabconstraint => "table constraint",
        O::ObjectSchema => "schema",
        O::ObjectType => "type",
        O::ObjectDomain => "domain",
        O::ObjectExtension => "extension",
        _ => return None,
    };
    let names = match node {
        NodeEnum::List(l) => strings(&l.items),
        NodeEnum::String(s) => vec![s.sval.clone()],
        // A type is one name, as `pg_get_object_address` parses it.
        NodeEnum::TypeName(t) => vec![qualified_names(&strings(&t.names))],
        _ => return None,
    };
    Some(CatalogObject::Commented { kind, names })
}

impl Inverter {
    /// The view `names` before the migration: `Some(None)` when there was none, `None` when
    /// it was not read.
    pub(super) fn view_before(&self, names: &[String]) -> Option<Option<&ViewBefore>> {
        /// Stands for any view's state in [`generate_as_applied`].
        static ASSUMED: ViewBefore = ViewBefore {
            definition: String::new(),
            state: ObjectBefore {
                owner: None,
                acl: Vec::new(),
                comment: None,
                options: Vec::new(),
            },
        };
        match self.before.views.get(names) {
            None if self.before.assumed => Some(Some(&ASSUMED)),
            found => found.map(Option::as_ref),
        }
    }

    fn object_before(&self, o: &CatalogObject) -> Option<&ObjectBefore> {
        /// Stands for any object's state in [`generate_as_applied`].
        static ASSUMED: ObjectBefore = ObjectBefore {
            owner: Some(String::new()),
            acl: Vec::new(),
            comment: None,
            options: Vec::new(),
        };
        match self.before.objects.get(o) {
            None if self.before.assumed => Some(&ASSUMED),
            found => found,
        }
    }

    /// `GRANT`/`REVOKE` on objects that existed before: back to the privileges the ACL held.
    /// A privilege already held inverts to nothing; `ALL` inverts to `REVOKE ALL` and granting
    /// again what the grantee held.
    pub(super) fn grant(&mut self, g: &pb::GrantStmt) -> Inverse {
        let unknown = || unseen("the previous privileges are unknown: write a .down.sql");
        let Some(objects) = grant_objects(g) else {
            return unseen(
                "pgkeel inverts GRANT/REVOKE on tables, sequences and schemas named one by one (not ALL … IN SCHEMA, functions or other kinds): write a .down.sql",
            );
        };
        if !g.is_grant && g.behavior() == pb::DropBehavior::DropCascade {
            return unseen(
                "REVOKE … CASCADE also revokes what others granted on: write a .down.sql",
            );
        }
        let mut privileges: Vec<String> = Vec::new();
        for p in &g.privileges {
            let Some(NodeEnum::AccessPriv(p)) = &p.node else {
                return unknown();
            };
            if !p.cols.is_empty() {
                return unseen("column privileges are not inverted: write a .down.sql");
            }
            privileges.push(p.priv_name.to_ascii_uppercase());
        }
        let mut grantees: Vec<Option<String>> = Vec::new();
        for r in &g.grantees {
            match &r.node {
                Some(NodeEnum::RoleSpec(r)) if r.roletype() == pb::RoleSpecType::RolespecPublic => {
                    grantees.push(None)
                }
                Some(NodeEnum::RoleSpec(r))
                    if r.roletype() == pb::RoleSpecType::RolespecCstring =>
                {
                    grantees.push(Some(r.rolename.clone()))
                }
                _ => {
                    return unseen(
                        "a grantee named by CURRENT_USER / SESSION_USER / CURRENT_ROLE is not inverted: name the role, or write a .down.sql",
                    )
                }
            }
        }
        let word = match g.objtype() {
            pb::ObjectType::ObjectSchema => "SCHEMA",
            pb::ObjectType::ObjectSequence => "SEQUENCE",
            _ => "TABLE",
        };
        let mut out = Vec::new();
        for o in &objects {
            let (created, name) = match o {
                CatalogObject::Relation(n) => (
                    names_obj(n, Obj::Rel).is_some_and(|r| self.has(&r)),
                    qualified_names(n),
                ),
                CatalogObject::Schema(s) => (self.has(&Obj::Schema(s.clone())), ident(s)),
                CatalogObject::Commented { .. } => return unknown(),
            };
            // Privileges on an object this migration created go with it.
            if created {
                continue;
            }
            let Some(before) = self.object_before(o) else {
                return unknown();
            };
            for grantee in &grantees {
                let to = grantee.as_deref().map(ident).unwrap_or("PUBLIC".into());
                let held: Vec<&AclItem> = before
                    .acl
                    .iter()
                    .filter(|a| a.grantee == *grantee)
                    .collect();
                let regrant = |a: &AclItem| {
                    format!(
                        "GRANT {} ON {word} {name} TO {to}{}",
                        a.privilege,
                        if a.grantable {
                            " WITH GRANT OPTION"
                        } else {
                            ""
                        }
                    )
                };
                if privileges.is_empty() {
                    // ALL [PRIVILEGES]: back to exactly what was held.
                    if g.is_grant {
                        out.push(format!("REVOKE ALL ON {word} {name} FROM {to}"));
                    }
                    out.extend(held.iter().map(|a| regrant(a)));
                    continue;
                }
                for p in &privileges {
                    let had = held.iter().find(|a| a.privilege == *p);
                    let sql = match (g.is_grant, g.grant_option, had) {
                        (true, _, Some(a)) if a.grantable => None,
                        (true, false, Some(_)) => None,
                        (true, true, Some(_)) => Some(format!(
                            "REVOKE GRANT OPTION FOR {p} ON {word} {name} FROM {to}"
                        )),
                        (true, _, None) => Some(format!("REVOKE {p} ON {word} {name} FROM {to}")),
                        (false, false, Some(a)) => Some(regrant(a)),
                        (false, true, Some(a)) if a.grantable => Some(regrant(a)),
                        (false, _, _) => None,
                    };
                    out.extend(sql);
                }
            }
        }
        match out.is_empty() {
            true => Inverse::Noop,
            false => Inverse::Sql(out),
        }
    }

    /// `ALTER SCHEMA … OWNER TO` on a schema that existed: back to its owner.
    pub(super) fn alter_owner(&mut self, o: &pb::AlterOwnerStmt) -> Inverse {
        let unknown = || unseen("the previous owner is unknown: write a .down.sql");
        let Some(obj) = owned_object(o) else {
            return unknown();
        };
        let CatalogObject::Schema(s) = &obj else {
            return unknown();
        };
        if self.has(&Obj::Schema(s.clone())) {
            return Inverse::Noop;
        }
        match self.object_before(&obj).and_then(|b| b.owner.as_deref()) {
            Some(owner) => Inverse::Sql(vec![format!(
                "ALTER SCHEMA {} OWNER TO {}",
                ident(s),
                ident(owner)
            )]),
            None => unknown(),
        }
    }

    /// `OWNER TO` inside `ALTER TABLE/VIEW/SEQUENCE`: the fragment that gives it back.
    pub(super) fn table_owner_fragment(&self, rv: &pb::RangeVar) -> Result<String, Inverse> {
        match self
            .object_before(&relation(rv))
            .and_then(|b| b.owner.as_deref())
        {
            Some(owner) => Ok(format!("OWNER TO {}", ident(owner))),
            None => Err(unseen("the previous owner is unknown: write a .down.sql")),
        }
    }

    /// `SET (…)` / `RESET (…)` of storage parameters: each one back to its value before, or
    /// reset when it had none. `toast.*` parameters are not inverted.
    pub(super) fn reloptions_fragments(
        &self,
        rv: &pb::RangeVar,
        c: &pb::AlterTableCmd,
    ) -> Result<Vec<String>, Inverse> {
        let Some(before) = self.object_before(&relation(rv)) else {
            return Err(irreversible(
                "the previous storage parameters are unknown: write a .down.sql",
            ));
        };
        let Some(NodeEnum::List(l)) = c.def.as_ref().and_then(|d| d.node.as_ref()) else {
            return Err(irreversible(
                "unreadable storage parameters: write a .down.sql",
            ));
        };
        let mut set = Vec::new();
        let mut reset = Vec::new();
        for item in &l.items {
            let Some(NodeEnum::DefElem(d)) = &item.node else {
                return Err(irreversible(
                    "unreadable storage parameters: write a .down.sql",
                ));
            };
            if !d.defnamespace.is_empty() {
                return Err(irreversible(format!(
                    "{}.{} storage parameters are not inverted: write a .down.sql",
                    d.defnamespace, d.defname
                )));
            }
            let prefix = format!("{}=", d.defname);
            match before.options.iter().find_map(|o| o.strip_prefix(&prefix)) {
                Some(v) => set.push(format!("{} = {}", ident(&d.defname), quote_literal(v))),
                None => reset.push(ident(&d.defname)),
            }
        }
        let mut out = Vec::new();
        if !set.is_empty() {
            out.push(format!("SET ({})", set.join(", ")));
        }
        if !reset.is_empty() {
            out.push(format!("RESET ({})", reset.join(", ")));
        }
        Ok(out)
    }

    /// `COMMENT ON` an object that existed: its comment before (or none).
    pub(super) fn comment(&self, c: &pb::CommentStmt) -> Inverse {
        if self.comment_target_created(c) {
            return Inverse::Noop;
        }
        // The schema model holds comments: a state-based rollback still sees this one.
        let unknown = || irreversible("the previous comment is unknown: write a .down.sql");
        let Some(obj) = commented(c) else {
            return unknown();
        };
        let Some(before) = self.object_before(&obj) else {
            return unknown();
        };
        let mut back = Box::new(c.clone());
        back.comment = before.comment.clone().unwrap_or_default();
        match NodeEnum::CommentStmt(back).deparse() {
            Ok(sql) => Inverse::Sql(vec![sql]),
            Err(_) => unknown(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stmts(sql: &str) -> Vec<Statement> {
        crate::sql::split(sql, 0).unwrap()
    }

    fn acl(grantee: Option<&str>, privilege: &str, grantable: bool) -> AclItem {
        AclItem {
            grantee: grantee.map(str::to_string),
            privilege: privilege.into(),
            grantable,
        }
    }

    #[test]
    fn grants_invert_against_the_privileges_held_before() {
        let s = stmts(
            "GRANT SELECT, INSERT ON t TO r;\nGRANT ALL ON TABLE t TO PUBLIC;\nREVOKE UPDATE ON t FROM r;\n\
             GRANT USAGE ON SCHEMA app TO r WITH GRANT OPTION;\n",
        );
        assert_eq!(
            objects_changed(&s),
            [
                CatalogObject::Relation(vec!["t".into()]),
                CatalogObject::Schema("app".into())
            ]
        );
        let mut before = Before::default();
        before.insert_object(
            CatalogObject::Relation(vec!["t".into()]),
            ObjectBefore {
                owner: Some("o".into()),
                acl: vec![
                    acl(Some("o"), "SELECT", false),
                    acl(Some("r"), "SELECT", false),
                    acl(Some("r"), "UPDATE", true),
                ],
                ..ObjectBefore::default()
            },
        );
        before.insert_object(
            CatalogObject::Schema("app".into()),
            ObjectBefore {
                owner: Some("o".into()),
                acl: vec![acl(Some("r"), "USAGE", false)],
                ..ObjectBefore::default()
            },
        );
        let g = generate_with(&s, &before);
        assert_eq!(
            g.sql.as_deref(),
            Some(
                "REVOKE GRANT OPTION FOR USAGE ON SCHEMA app FROM r;\n\
                 GRANT UPDATE ON TABLE t TO r WITH GRANT OPTION;\n\
                 REVOKE ALL ON TABLE t FROM PUBLIC;\n\
                 REVOKE INSERT ON TABLE t FROM r;\n"
            ),
            "{g:#?}"
        );
    }

    #[test]
    fn owners_comments_and_storage_parameters_invert_to_the_state_before() {
        let s = stmts(
            "ALTER TABLE t OWNER TO x;\nALTER SCHEMA app OWNER TO x;\nCOMMENT ON TABLE t IS 'second';\n\
             COMMENT ON COLUMN t.id IS 'the id';\nALTER TABLE t SET (fillfactor = 70, autovacuum_enabled = false);\n",
        );
        let mut before = Before::default();
        for o in objects_changed(&s) {
            let state = match &o {
                CatalogObject::Relation(_) => ObjectBefore {
                    owner: Some("o".into()),
                    options: vec!["fillfactor=80".into()],
                    ..ObjectBefore::default()
                },
                CatalogObject::Schema(_) => ObjectBefore {
                    owner: Some("Big Boss".into()),
                    ..ObjectBefore::default()
                },
                CatalogObject::Commented { kind: "table", .. } => ObjectBefore {
                    comment: Some("first".into()),
                    ..ObjectBefore::default()
                },
                CatalogObject::Commented { .. } => ObjectBefore::default(),
            };
            before.insert_object(o, state);
        }
        let g = generate_with(&s, &before);
        assert_eq!(
            g.sql.as_deref(),
            Some(
                "ALTER TABLE t RESET (autovacuum_enabled), SET (fillfactor = E'80');\n\
                 COMMENT ON COLUMN t.id IS NULL;\n\
                 COMMENT ON TABLE t IS 'first';\n\
                 ALTER SCHEMA app OWNER TO \"Big Boss\";\n\
                 ALTER TABLE t OWNER TO o;\n"
            ),
            "{g:#?}"
        );
        // Not read: no inverse, and said so (the privileges / owner are unknown).
        let g = generate(&s);
        assert!(g.sql.is_none() && g.refusal().is_some(), "{g:#?}");
        // Before the apply, it is expected to have one.
        assert!(generate_as_applied(&s).refusal().is_none());
    }
}
