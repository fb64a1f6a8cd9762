//! The inverter's walk over a migration's statements: one inverse per parse-tree node kind,
//! with what the migration created so far (statements on objects it created need no inverse of
//! their own) and the catalog state read before it.

use super::*;

/// The statements inside drizzle-kit's DO block, or `None` when the body has another shape.
pub(crate) fn drizzle_do_inner(body: &str) -> Option<&str> {
    let b = body.trim();
    // `get`: the body may start with a multi-byte character (`--ñé` …), where byte 5 is not a
    // char boundary.
    if !b.get(..5).is_some_and(|w| w.eq_ignore_ascii_case("begin")) {
        return None;
    }
    let rest = &b[5..];
    if !rest.starts_with(char::is_whitespace) {
        return None;
    }
    let lower = rest.to_ascii_lowercase();
    let at = lower.rfind("exception")?;
    let tail = lower[at + "exception".len()..]
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace(" ;", ";");
    let tail = tail.strip_suffix(';').unwrap_or(&tail);
    if tail != "when duplicate_object then null; end" {
        return None;
    }
    let inner = rest[..at].trim();
    (!inner.is_empty()).then_some(inner)
}

/// Whether a query calls any function (or has a data-modifying `WITH`).
pub(super) fn has_function_call(s: &pb::SelectStmt) -> bool {
    fn walk(v: &serde_json::Value) -> bool {
        match v {
            serde_json::Value::Object(m) => m.iter().any(|(k, v)| {
                k == "FuncCall"
                    || k == "InsertStmt"
                    || k == "UpdateStmt"
                    || k == "DeleteStmt"
                    || walk(v)
            }),
            serde_json::Value::Array(a) => a.iter().any(walk),
            _ => false,
        }
    }
    serde_json::to_value(s).is_ok_and(|v| walk(&v))
}

impl Inverter {
    pub(super) fn has(&self, o: &Obj) -> bool {
        self.created.contains(o)
    }

    /// When `o` was created, in creation order.
    pub(super) fn position(&self, o: &Obj) -> Option<usize> {
        self.created.iter().position(|c| c == o)
    }

    /// Whether `node` may depend on something created after the object at `at`. A change to an
    /// object the migration created can go without an inverse (dropping the object undoes it)
    /// only when it does not: otherwise that later object's drop, which runs first, would fail.
    pub(super) fn mentions_later(&self, node: &impl Serialize, at: usize) -> bool {
        let names = mentions(node);
        self.created[at + 1..]
            .iter()
            .any(|o| names.contains(o.name()))
    }

    pub(super) fn has_rel(&self, rv: &pb::RangeVar) -> bool {
        self.has(&rel_obj(rv))
    }

    pub(super) fn add(&mut self, o: Obj) {
        if !self.has(&o) {
            self.created.push(o);
        }
    }

    pub(super) fn statement_text(&mut self, text: &str) -> Inverse {
        let parsed = match pg_query::parse(text) {
            Ok(p) => p,
            Err(e) => return unseen(format!("does not parse: {e}")),
        };
        let mut all = Vec::new();
        for raw in &parsed.protobuf.stmts {
            let Some(node) = raw.stmt.as_ref().and_then(|n| n.node.as_ref()) else {
                continue;
            };
            match self.node(node, text) {
                Inverse::Sql(s) => all.push(s),
                Inverse::Noop => {}
                irr @ Inverse::Irreversible { .. } => return irr,
            }
        }
        if all.is_empty() {
            return Inverse::Noop;
        }
        // Several statements in one text (a DO body): undo them last first.
        all.reverse();
        Inverse::Sql(all.into_iter().flatten().collect())
    }

    pub(super) fn node(&mut self, node: &NodeEnum, text: &str) -> Inverse {
        use pb::ObjectType as O;
        match node {
            NodeEnum::CreateStmt(s) => {
                let Some(rv) = &s.relation else {
                    return unsupported(text);
                };
                self.add(rel_obj(rv));
                drop_sql("TABLE", &rv_name(rv))
            }
            NodeEnum::CreateTableAsStmt(s) => {
                let Some(rv) = s.into.as_ref().and_then(|i| i.rel.as_ref()) else {
                    return unsupported(text);
                };
                self.add(rel_obj(rv));
                let kind = if s.objtype() == O::ObjectMatview {
                    "MATERIALIZED VIEW"
                } else {
                    "TABLE"
                };
                drop_sql(kind, &rv_name(rv))
            }
            NodeEnum::ViewStmt(s) => {
                let Some(rv) = &s.view else {
                    return unsupported(text);
                };
                if s.replace {
                    // The view read just before: put it back, or drop a view that was not there.
                    let CatalogObject::Relation(names) = catalog::relation(rv) else {
                        return or_replace("view");
                    };
                    match self.view_before(&names) {
                        Some(Some(v)) => {
                            return Inverse::Sql(vec![catalog::restore_view_sql(&rv_name(rv), v)])
                        }
                        Some(None) => {}
                        None => return or_replace("view"),
                    }
                }
                self.add(rel_obj(rv));
                drop_sql("VIEW", &rv_name(rv))
            }
            NodeEnum::IndexStmt(s) => {
                let Some(rv) = &s.relation else {
                    return unsupported(text);
                };
                if s.idxname.is_empty() {
                    return irreversible(
                        "the index has no name (PostgreSQL picks one): name the index (CREATE INDEX name ON …) so it can be dropped",
                    );
                }
                // An index lives in its table's schema. Dropped with a plain DROP INDEX even when
                // built CONCURRENTLY: rollbacks run in a transaction.
                let idx = qualify(&rv.schemaname, &s.idxname);
                self.add(Obj::Rel(norm_schema(&rv.schemaname), s.idxname.clone()));
                drop_sql("INDEX", &idx)
            }
            NodeEnum::CreateSeqStmt(s) => {
                let Some(rv) = &s.sequence else {
                    return unsupported(text);
                };
                self.add(rel_obj(rv));
                drop_sql("SEQUENCE", &rv_name(rv))
            }
            NodeEnum::CreateEnumStmt(s) => self.create_type("TYPE", &s.type_name, text),
            NodeEnum::CreateRangeStmt(s) => self.create_type("TYPE", &s.type_name, text),
            NodeEnum::CreateDomainStmt(s) => self.create_type("DOMAIN", &s.domainname, text),
            NodeEnum::CompositeTypeStmt(s) => {
                let Some(rv) = &s.typevar else {
                    return unsupported(text);
                };
                self.add(Obj::Type(norm_schema(&rv.schemaname), rv.relname.clone()));
                drop_sql("TYPE", &rv_name(rv))
            }
            NodeEnum::CreateFunctionStmt(s) => {
                let what = if s.is_procedure {
                    "procedure"
                } else {
                    "function"
                };
                if s.replace {
                    // The definition read just before: put it back, or drop a function that
                    // was not there.
                    match function_signature(s).and_then(|sig| self.before.functions.get(&sig)) {
                        Some(Some(def)) => return Inverse::Sql(vec![def.trim_end().to_string()]),
                        Some(None) => {}
                        None => return or_replace(what),
                    }
                }
                if let Some(o) = names_obj(&strings(&s.funcname), Obj::Function) {
                    self.add(o);
                }
                match drop_function_sql(s) {
                    Some(sql) => Inverse::Sql(vec![sql]),
                    None => unsupported(text),
                }
            }
            NodeEnum::CreateTrigStmt(s) => {
                let Some(rv) = &s.relation else {
                    return unsupported(text);
                };
                if s.replace {
                    return or_replace("trigger");
                }
                Inverse::Sql(vec![format!(
                    "DROP TRIGGER IF EXISTS {} ON {}",
                    ident(&s.trigname),
                    rv_name(rv)
                )])
            }
            NodeEnum::CreatePolicyStmt(s) => {
                let Some(rv) = &s.table else {
                    return unsupported(text);
                };
                Inverse::Sql(vec![format!(
                    "DROP POLICY IF EXISTS {} ON {}",
                    ident(&s.policy_name),
                    rv_name(rv)
                )])
            }
            NodeEnum::RuleStmt(s) => {
                let Some(rv) = &s.relation else {
                    return unsupported(text);
                };
                if s.replace {
                    return or_replace("rule");
                }
                Inverse::Sql(vec![format!(
                    "DROP RULE IF EXISTS {} ON {}",
                    ident(&s.rulename),
                    rv_name(rv)
                )])
            }
            NodeEnum::CreateExtensionStmt(s) => {
                if s.if_not_exists {
                    return irreversible(
                        "CREATE EXTENSION IF NOT EXISTS: the extension may have been there before, and dropping it would break what uses it; write a .down.sql",
                    );
                }
                drop_sql("EXTENSION", &ident(&s.extname))
            }
            NodeEnum::CreateSchemaStmt(s) => {
                if s.schemaname.is_empty() {
                    return irreversible(
                        "the schema is named after a role (CREATE SCHEMA AUTHORIZATION): name it so it can be dropped",
                    );
                }
                if !s.schema_elts.is_empty() {
                    return irreversible(
                        "CREATE SCHEMA with elements: create them in separate statements, or write a .down.sql",
                    );
                }
                self.add(Obj::Schema(s.schemaname.clone()));
                drop_sql("SCHEMA", &ident(&s.schemaname))
            }
            NodeEnum::AlterTableStmt(s) => self.alter_table(s, text),
            NodeEnum::RenameStmt(s) => self.rename(s, text),
            NodeEnum::AlterEnumStmt(s) => {
                let ty = qualified_names(&strings(&s.type_name));
                if !s.old_val.is_empty() {
                    return Inverse::Sql(vec![format!(
                        "ALTER TYPE {ty} RENAME VALUE {} TO {}",
                        quote_literal(&s.new_val),
                        quote_literal(&s.old_val)
                    )]);
                }
                match names_obj(&strings(&s.type_name), Obj::Type) {
                    Some(o) if self.has(&o) => Inverse::Noop,
                    _ => irreversible(
                        "PostgreSQL cannot remove an enum value: write a .down.sql that recreates the type, or keep the value",
                    ),
                }
            }
            NodeEnum::DoStmt(s) => self.do_block(s),
            NodeEnum::DropStmt(s) => self.drop(s),
            NodeEnum::AlterObjectSchemaStmt(s) => self.set_schema(s, text),
            NodeEnum::CommentStmt(s) => self.comment(s),
            NodeEnum::GrantStmt(s) => self.grant(s),
            NodeEnum::AlterOwnerStmt(s) => match &s.relation {
                Some(rv) if self.has_rel(rv) => Inverse::Noop,
                _ => self.alter_owner(s),
            },
            NodeEnum::AlterSeqStmt(s) => match &s.sequence {
                Some(rv) if self.has_rel(rv) => Inverse::Noop,
                _ => irreversible("the sequence's previous settings are unknown: write a .down.sql"),
            },
            NodeEnum::AlterDomainStmt(s) => {
                match names_obj(&strings(&s.type_name), Obj::Type).and_then(|o| self.position(&o)) {
                    Some(at) if !self.mentions_later(s, at) => Inverse::Noop,
                    _ => unsupported(text),
                }
            }
            NodeEnum::InsertStmt(s) => {
                self.dml(s.relation.as_ref(), s.with_clause.is_some(), false, "inserts rows pgkeel cannot tell apart from others: write a .down.sql that deletes them")
            }
            NodeEnum::UpdateStmt(s) => {
                self.dml(s.relation.as_ref(), s.with_clause.is_some(), true, LOSES_DATA)
            }
            NodeEnum::DeleteStmt(s) => {
                self.dml(s.relation.as_ref(), s.with_clause.is_some(), true, LOSES_DATA)
            }
            NodeEnum::TruncateStmt(s) => {
                let created = s.behavior() != pb::DropBehavior::DropCascade
                    && s.relations
                        .iter()
                        .all(|r| matches!(&r.node, Some(NodeEnum::RangeVar(rv)) if self.has_rel(rv)));
                if created {
                    Inverse::Noop
                } else {
                    loses_data()
                }
            }
            NodeEnum::RefreshMatViewStmt(_)
            | NodeEnum::VacuumStmt(_)
            | NodeEnum::CheckPointStmt(_)
            | NodeEnum::NotifyStmt(_) => Inverse::Noop,
            NodeEnum::VariableSetStmt(s) => match s.name.as_str() {
                "search_path" | "role" | "session_authorization" | "" => unseen(
                    "SET changes how later statements resolve names or who owns what: write a .down.sql",
                ),
                _ => Inverse::Noop,
            },
            NodeEnum::SelectStmt(s) => {
                // A query changes nothing, unless it calls a function (which may write) or
                // creates a table.
                if s.into_clause.is_some() || has_function_call(s) {
                    unseen(format!(
                        "`{}` calls a function, which may change data pgkeel cannot see: write a .down.sql",
                        head(text)
                    ))
                } else {
                    Inverse::Noop
                }
            }
            NodeEnum::LockStmt(_) => Inverse::Noop,
            NodeEnum::CallStmt(_) | NodeEnum::CopyStmt(_) | NodeEnum::MergeStmt(_) => unseen(
                format!(
                    "`{}` changes data pgkeel cannot tell apart from others: write a .down.sql",
                    head(text)
                ),
            ),
            _ => unknown(text),
        }
    }

    pub(super) fn create_type(&mut self, kind: &str, names: &[pb::Node], text: &str) -> Inverse {
        let parts = strings(names);
        let Some(o) = names_obj(&parts, Obj::Type) else {
            return unsupported(text);
        };
        self.add(o);
        drop_sql(kind, &qualified_names(&parts))
    }

    pub(super) fn dml(
        &self,
        rel: Option<&pb::RangeVar>,
        with: bool,
        data_loss: bool,
        reason: &str,
    ) -> Inverse {
        // A WITH clause may write to other tables (data-modifying CTEs).
        match rel {
            Some(rv) if !with && self.has_rel(rv) => Inverse::Noop,
            _ => Inverse::Irreversible {
                reason: reason.into(),
                data_loss,
                schema_only: false,
            },
        }
    }

    pub(super) fn alter_table(&mut self, a: &pb::AlterTableStmt, text: &str) -> Inverse {
        use pb::AlterTableType as T;
        let Some(rv) = &a.relation else {
            return unsupported(text);
        };
        let Some(kw) = alter_keyword(a.objtype()) else {
            return unsupported(text);
        };
        let table_obj = rel_obj(rv);
        let (schema, table) = match &table_obj {
            Obj::Rel(s, t) => (s.clone(), t.clone()),
            _ => unreachable!("rel_obj returns a Rel"),
        };
        let created_at = self.position(&table_obj);
        let column = |kw: &str| if kw == "TYPE" { "ATTRIBUTE" } else { "COLUMN" };
        let mut fragments: Vec<String> = Vec::new();
        let mut effects: Vec<Obj> = Vec::new();
        for cmd in &a.cmds {
            let Some(NodeEnum::AlterTableCmd(c)) = &cmd.node else {
                return unsupported(text);
            };
            let sub = c.subtype();
            // Changes to a relation this migration created go away when it is dropped, unless
            // they depend on something created after it (see `mentions_later`). Added columns
            // and named constraints are still undone in place, which is always in the right
            // order; an attached partition would be dropped with its parent.
            let named_constraint = matches!(
                c.def.as_ref().and_then(|d| d.node.as_ref()),
                Some(NodeEnum::Constraint(con)) if !con.conname.is_empty()
            );
            let explicit = matches!(sub, T::AtAddColumn | T::AtAttachPartition)
                || (sub == T::AtAddConstraint && named_constraint);
            if let (Some(at), false) = (created_at, explicit) {
                if !self.mentions_later(c, at) {
                    continue;
                }
                if sub == T::AtColumnDefault {
                    // The default uses a later object: drop it first; the table goes anyway.
                    fragments.push(format!("ALTER COLUMN {} DROP DEFAULT", ident(&c.name)));
                    continue;
                }
            }
            let col = ident(&c.name);
            let fragment = match sub {
                T::AtAddColumn => {
                    let Some(NodeEnum::ColumnDef(def)) = c.def.as_ref().and_then(|d| d.node.as_ref()) else {
                        return unsupported(text);
                    };
                    effects.push(Obj::Column(schema.clone(), table.clone(), def.colname.clone()));
                    format!("DROP {} IF EXISTS {}", column(kw), ident(&def.colname))
                }
                T::AtAddConstraint => {
                    let Some(NodeEnum::Constraint(con)) = c.def.as_ref().and_then(|d| d.node.as_ref()) else {
                        return unsupported(text);
                    };
                    if con.conname.is_empty() {
                        return irreversible(
                            "the constraint has no name (PostgreSQL picks one): name the constraint (ADD CONSTRAINT name …) so it can be dropped",
                        );
                    }
                    if !con.indexname.is_empty() {
                        return irreversible(
                            "the constraint took over an existing index (USING INDEX), which dropping it would remove: write a .down.sql",
                        );
                    }
                    effects.push(Obj::Constraint(schema.clone(), table.clone(), con.conname.clone()));
                    format!("DROP CONSTRAINT IF EXISTS {}", ident(&con.conname))
                }
                T::AtSetNotNull | T::AtDropNotNull | T::AtColumnDefault => {
                    let is_default = sub == T::AtColumnDefault;
                    let key = (schema.clone(), table.clone(), c.name.clone());
                    if !self
                        .altered
                        .insert((key.0.clone(), key.1.clone(), key.2.clone(), is_default))
                    {
                        continue;
                    }
                    match (sub, self.before.columns.get(&key)) {
                        (T::AtSetNotNull, Some(b)) if b.not_null => continue,
                        (T::AtDropNotNull, Some(b)) if !b.not_null => continue,
                        // Without the catalog's state, SET NOT NULL is taken to have changed
                        // the column (see `generate`).
                        (T::AtSetNotNull, _) => format!("ALTER COLUMN {col} DROP NOT NULL"),
                        (T::AtDropNotNull, _) => format!("ALTER COLUMN {col} SET NOT NULL"),
                        (_, Some(ColumnBefore { default: Some(d), .. })) => {
                            format!("ALTER COLUMN {col} SET DEFAULT {d}")
                        }
                        (_, Some(ColumnBefore { default: None, .. })) => {
                            format!("ALTER COLUMN {col} DROP DEFAULT")
                        }
                        (_, None) => {
                            return irreversible(
                                "previous default unknown: write a .down.sql that sets it back",
                            )
                        }
                    }
                }
                T::AtAddIdentity => format!("ALTER COLUMN {col} DROP IDENTITY IF EXISTS"),
                T::AtEnableRowSecurity => "DISABLE ROW LEVEL SECURITY".into(),
                T::AtDisableRowSecurity => "ENABLE ROW LEVEL SECURITY".into(),
                T::AtForceRowSecurity => "NO FORCE ROW LEVEL SECURITY".into(),
                T::AtNoForceRowSecurity => "FORCE ROW LEVEL SECURITY".into(),
                T::AtDisableTrig => format!("ENABLE TRIGGER {col}"),
                T::AtEnableTrig => format!("DISABLE TRIGGER {col}"),
                T::AtDisableTrigAll => "ENABLE TRIGGER ALL".into(),
                T::AtEnableTrigAll => "DISABLE TRIGGER ALL".into(),
                T::AtDisableTrigUser => "ENABLE TRIGGER USER".into(),
                T::AtEnableTrigUser => "DISABLE TRIGGER USER".into(),
                // A validated constraint cannot be marked NOT VALID again; leaving it validated
                // is harmless, and dropping a constraint added earlier undoes both.
                T::AtValidateConstraint => continue,
                T::AtAttachPartition => {
                    let Some(NodeEnum::PartitionCmd(p)) = c.def.as_ref().and_then(|d| d.node.as_ref()) else {
                        return unsupported(text);
                    };
                    let Some(part) = &p.name else {
                        return unsupported(text);
                    };
                    format!("DETACH PARTITION {}", rv_name(part))
                }
                T::AtDropColumn => {
                    if self.has(&Obj::Column(schema.clone(), table.clone(), c.name.clone())) {
                        continue;
                    }
                    return loses_data();
                }
                T::AtDropConstraint => {
                    if self.has(&Obj::Constraint(schema.clone(), table.clone(), c.name.clone())) {
                        continue;
                    }
                    return irreversible(
                        "the dropped constraint's definition is unknown: write a .down.sql",
                    );
                }
                T::AtAlterColumnType => {
                    return Inverse::Irreversible {
                        reason: "the column's previous type is unknown and converting back may change values: write a .down.sql".into(),
                        data_loss: true,
                        schema_only: false,
                    }
                }
                T::AtChangeOwner => match self.table_owner_fragment(rv) {
                    Ok(f) => f,
                    Err(refused) => return refused,
                },
                T::AtSetRelOptions | T::AtResetRelOptions => {
                    match self.reloptions_fragments(rv, c) {
                        Ok(f) => fragments.extend(f),
                        Err(refused) => return refused,
                    }
                    continue;
                }
                other => {
                    return irreversible(format!(
                        "pgkeel cannot invert this ALTER {kw} subcommand ({}): write a .down.sql",
                        other.as_str_name()
                    ))
                }
            };
            fragments.push(fragment);
        }
        for e in effects {
            self.add(e);
        }
        if fragments.is_empty() {
            return Inverse::Noop;
        }
        fragments.reverse();
        Inverse::Sql(vec![format!(
            "ALTER {kw} {}{}{} {}",
            if a.missing_ok { "IF EXISTS " } else { "" },
            if rv.inh { "" } else { "ONLY " },
            rv_name(rv),
            fragments.join(", ")
        )])
    }

    pub(super) fn rename(&mut self, r: &pb::RenameStmt, text: &str) -> Inverse {
        use pb::ObjectType as O;
        let if_exists = if r.missing_ok { "IF EXISTS " } else { "" };
        let rename_type = r.rename_type();
        match (rename_type, &r.relation) {
            (
                O::ObjectTable
                | O::ObjectView
                | O::ObjectMatview
                | O::ObjectSequence
                | O::ObjectIndex
                | O::ObjectForeignTable,
                Some(rv),
            ) => {
                let kw = alter_keyword(rename_type).unwrap_or("TABLE");
                if self.has_rel(rv) {
                    self.add(Obj::Rel(norm_schema(&rv.schemaname), r.newname.clone()));
                }
                Inverse::Sql(vec![format!(
                    "ALTER {kw} {if_exists}{} RENAME TO {}",
                    qualify(&rv.schemaname, &r.newname),
                    ident(&rv.relname)
                )])
            }
            (O::ObjectColumn | O::ObjectAttribute, Some(rv)) => {
                let kw = if rename_type == O::ObjectAttribute {
                    "TYPE"
                } else {
                    alter_keyword(r.relation_type()).unwrap_or("TABLE")
                };
                let what = if rename_type == O::ObjectAttribute {
                    "ATTRIBUTE"
                } else {
                    "COLUMN"
                };
                let (s, t) = (norm_schema(&rv.schemaname), rv.relname.clone());
                if self.has(&Obj::Column(s.clone(), t.clone(), r.subname.clone())) {
                    self.add(Obj::Column(s, t, r.newname.clone()));
                }
                Inverse::Sql(vec![format!(
                    "ALTER {kw} {if_exists}{} RENAME {what} {} TO {}",
                    rv_name(rv),
                    ident(&r.newname),
                    ident(&r.subname)
                )])
            }
            (O::ObjectTabconstraint, Some(rv)) => {
                let (s, t) = (norm_schema(&rv.schemaname), rv.relname.clone());
                if self.has(&Obj::Constraint(s.clone(), t.clone(), r.subname.clone())) {
                    self.add(Obj::Constraint(s, t, r.newname.clone()));
                }
                Inverse::Sql(vec![format!(
                    "ALTER TABLE {if_exists}{} RENAME CONSTRAINT {} TO {}",
                    rv_name(rv),
                    ident(&r.newname),
                    ident(&r.subname)
                )])
            }
            (O::ObjectTrigger | O::ObjectPolicy, Some(rv)) => {
                let kw = if rename_type == O::ObjectTrigger {
                    "TRIGGER"
                } else {
                    "POLICY"
                };
                Inverse::Sql(vec![format!(
                    "ALTER {kw} {} ON {} RENAME TO {}",
                    ident(&r.newname),
                    rv_name(rv),
                    ident(&r.subname)
                )])
            }
            (O::ObjectSchema, _) => {
                if self.has(&Obj::Schema(r.subname.clone())) {
                    self.add(Obj::Schema(r.newname.clone()));
                }
                Inverse::Sql(vec![format!(
                    "ALTER SCHEMA {} RENAME TO {}",
                    ident(&r.newname),
                    ident(&r.subname)
                )])
            }
            (O::ObjectType | O::ObjectDomain, _) => {
                let names = match r.object.as_deref().and_then(|o| o.node.as_ref()) {
                    Some(NodeEnum::List(l)) => strings(&l.items),
                    Some(NodeEnum::TypeName(t)) => strings(&t.names),
                    _ => return unsupported(text),
                };
                let Some(Obj::Type(schema, old)) = names_obj(&names, Obj::Type) else {
                    return unsupported(text);
                };
                if self.has(&Obj::Type(schema.clone(), old.clone())) {
                    self.add(Obj::Type(schema, r.newname.clone()));
                }
                let kw = if rename_type == O::ObjectDomain {
                    "DOMAIN"
                } else {
                    "TYPE"
                };
                let mut renamed = names.clone();
                if let Some(last) = renamed.last_mut() {
                    *last = r.newname.clone();
                }
                Inverse::Sql(vec![format!(
                    "ALTER {kw} {} RENAME TO {}",
                    qualified_names(&renamed),
                    ident(&old)
                )])
            }
            _ => irreversible(format!(
                "pgkeel cannot invert `{}`: write a .down.sql",
                head(text)
            )),
        }
    }

    /// `ALTER TABLE t SET SCHEMA s` back to where `t` was, when the statement says where that is.
    pub(super) fn set_schema(&mut self, s: &pb::AlterObjectSchemaStmt, text: &str) -> Inverse {
        let Some(rv) = &s.relation else {
            return unsupported(text);
        };
        let Some(kw) = alter_keyword(s.object_type()) else {
            return unsupported(text);
        };
        if rv.schemaname.is_empty() {
            return irreversible(
                "the relation's schema before SET SCHEMA is not written in the statement: qualify the name (ALTER TABLE old_schema.t SET SCHEMA …) or write a .down.sql",
            );
        }
        if self.has_rel(rv) {
            self.add(Obj::Rel(s.newschema.clone(), rv.relname.clone()));
        }
        Inverse::Sql(vec![format!(
            "ALTER {kw} {}{} SET SCHEMA {}",
            if s.missing_ok { "IF EXISTS " } else { "" },
            qualify(&s.newschema, &rv.relname),
            ident(&rv.schemaname)
        )])
    }

    pub(super) fn drop(&mut self, d: &pb::DropStmt) -> Inverse {
        use pb::ObjectType as O;
        let kind = d.remove_type();
        let cascade = d.behavior() == pb::DropBehavior::DropCascade;
        let targets: Option<Vec<Obj>> = d
            .objects
            .iter()
            .map(|o| match (kind, o.node.as_ref()?) {
                (
                    O::ObjectTable
                    | O::ObjectView
                    | O::ObjectMatview
                    | O::ObjectSequence
                    | O::ObjectIndex
                    | O::ObjectForeignTable,
                    NodeEnum::List(l),
                ) => names_obj(&strings(&l.items), Obj::Rel),
                (O::ObjectType | O::ObjectDomain, NodeEnum::TypeName(t)) => {
                    names_obj(&strings(&t.names), Obj::Type)
                }
                (O::ObjectSchema, NodeEnum::String(s)) => Some(Obj::Schema(s.sval.clone())),
                _ => None,
            })
            .collect();
        // Dropping what this migration created (a scratch table, say) needs no inverse: the
        // object did not exist before the migration either.
        if !cascade && targets.is_some_and(|t| t.iter().all(|o| self.has(o))) {
            return Inverse::Noop;
        }
        let data = cascade
            || matches!(
                kind,
                O::ObjectTable
                    | O::ObjectSchema
                    | O::ObjectSequence
                    | O::ObjectMatview
                    | O::ObjectForeignTable
            );
        if data {
            loses_data()
        } else {
            irreversible(format!(
                "the dropped {}'s definition is unknown: write a .down.sql",
                object_word(kind)
            ))
        }
    }

    pub(super) fn comment_target_created(&self, c: &pb::CommentStmt) -> bool {
        use pb::ObjectType as O;
        let Some(node) = c.object.as_deref().and_then(|o| o.node.as_ref()) else {
            return false;
        };
        let list = |n: &NodeEnum| match n {
            NodeEnum::List(l) => Some(strings(&l.items)),
            _ => None,
        };
        let target = match c.objtype() {
            O::ObjectTable
            | O::ObjectView
            | O::ObjectMatview
            | O::ObjectSequence
            | O::ObjectIndex
            | O::ObjectForeignTable => list(node).and_then(|n| names_obj(&n, Obj::Rel)),
            O::ObjectType | O::ObjectDomain => match node {
                NodeEnum::TypeName(t) => names_obj(&strings(&t.names), Obj::Type),
                _ => None,
            },
            O::ObjectSchema => match node {
                NodeEnum::String(s) => Some(Obj::Schema(s.sval.clone())),
                _ => None,
            },
            O::ObjectColumn | O::ObjectTabconstraint => {
                let Some(mut parts) = list(node) else {
                    return false;
                };
                let Some(last) = parts.pop() else {
                    return false;
                };
                let Some(Obj::Rel(s, t)) = names_obj(&parts, Obj::Rel) else {
                    return false;
                };
                if self.has(&Obj::Rel(s.clone(), t.clone())) {
                    return true;
                }
                Some(if c.objtype() == O::ObjectColumn {
                    Obj::Column(s, t, last)
                } else {
                    Obj::Constraint(s, t, last)
                })
            }
            _ => None,
        };
        target.is_some_and(|t| self.has(&t))
    }

    /// drizzle-kit's `DO $$ BEGIN <statements> EXCEPTION WHEN duplicate_object THEN null; END $$`:
    /// the inverse of the statements inside.
    pub(super) fn do_block(&mut self, s: &pb::DoStmt) -> Inverse {
        let mut body = None;
        let mut plpgsql = true;
        for arg in &s.args {
            let Some(NodeEnum::DefElem(d)) = &arg.node else {
                continue;
            };
            let value = match d.arg.as_deref().and_then(|a| a.node.as_ref()) {
                Some(NodeEnum::String(v)) => v.sval.as_str(),
                _ => continue,
            };
            match d.defname.as_str() {
                "as" => body = Some(value),
                "language" => plpgsql = value.eq_ignore_ascii_case("plpgsql"),
                _ => {}
            }
        }
        let Some(inner) = body.filter(|_| plpgsql).and_then(drizzle_do_inner) else {
            return unseen(
                "pgkeel cannot tell what a DO block changes (only drizzle-kit's `DO $$ BEGIN …; EXCEPTION WHEN duplicate_object THEN null; END $$` is understood): write a .down.sql",
            );
        };
        match self.statement_text(inner) {
            Inverse::Irreversible {
                reason,
                data_loss,
                schema_only,
            } => Inverse::Irreversible {
                reason: format!("inside the DO block: {reason}"),
                data_loss,
                schema_only,
            },
            other => other,
        }
    }
}
