//! The lint rules, over `pg_query`'s parse tree. One pass over a file's statements; each rule
//! is a few lines in [`Walker::statement`] and an entry in [`RULES`].

use std::collections::{HashMap, HashSet};

use pg_query::protobuf as pb;
use pg_query::NodeEnum;

use super::{LintOptions, Rule};
use crate::report::Severity;
use crate::sql::Statement;

const E: Severity = Severity::Critical;
const W: Severity = Severity::Warning;

pub(super) const RULES: &[Rule] = &[
    Rule { id: "require-concurrent-index", severity: E,
        why: "CREATE INDEX without CONCURRENTLY on an existing table blocks every write to it until the index is built",
        help: "use CREATE INDEX CONCURRENTLY IF NOT EXISTS (pgkeel runs it outside a transaction and resumes it if it fails)" },
    Rule { id: "require-concurrent-drop-index", severity: W,
        why: "DROP INDEX without CONCURRENTLY takes an ACCESS EXCLUSIVE lock on the table",
        help: "use DROP INDEX CONCURRENTLY IF EXISTS" },
    Rule { id: "constraint-without-not-valid", severity: E,
        why: "adding a FOREIGN KEY or CHECK validates every existing row while holding a lock that blocks writes",
        help: "add it NOT VALID, then ALTER TABLE … VALIDATE CONSTRAINT in a later statement (it takes a weaker lock)" },
    Rule { id: "set-not-null", severity: E,
        why: "SET NOT NULL on an existing column scans the whole table under ACCESS EXCLUSIVE",
        help: "on PG 12+: ADD CONSTRAINT c CHECK (col IS NOT NULL) NOT VALID; VALIDATE CONSTRAINT c; then SET NOT NULL (no scan) and drop the check" },
    Rule { id: "volatile-default", severity: E,
        why: "ADD COLUMN with a volatile default (or any default before PG 11) rewrites the whole table under ACCESS EXCLUSIVE",
        help: "add the column without a default (or with a constant one), backfill in batches, then SET DEFAULT" },
    Rule { id: "rewriting-type-change", severity: E,
        why: "ALTER COLUMN … TYPE rewrites the table (and its indexes) under ACCESS EXCLUSIVE, except for binary-compatible widenings",
        help: "safe without a rewrite: varchar(n) → varchar(m > n), varchar → text, numeric(p,s) → numeric(q > p,s); otherwise add a new column, backfill, and swap" },
    Rule { id: "rename-column", severity: W,
        why: "renaming a column breaks the application version still running during the deploy",
        help: "add the new column, write both, backfill, switch reads, then drop the old one in a later deploy" },
    Rule { id: "rename-table", severity: W,
        why: "renaming a table breaks the application version still running during the deploy",
        help: "create the new name as a view or rename in two deploys (code first)" },
    Rule { id: "drop-column", severity: W,
        why: "dropping a column loses its data and breaks code that still selects it",
        help: "stop using it in code first (ignore it in the ORM), deploy, then drop it; keep a backup" },
    Rule { id: "drop-table", severity: W,
        why: "dropping a table loses its data and breaks code that still uses it",
        help: "stop using it first, deploy, then drop it in a later migration; keep a backup" },
    Rule { id: "unique-without-index", severity: E,
        why: "ADD CONSTRAINT … UNIQUE builds its index while blocking writes",
        help: "CREATE UNIQUE INDEX CONCURRENTLY first, then ADD CONSTRAINT … UNIQUE USING INDEX" },
    Rule { id: "primary-key-without-index", severity: E,
        why: "ADD PRIMARY KEY on an existing table builds its index (and checks NOT NULL) while blocking writes",
        help: "CREATE UNIQUE INDEX CONCURRENTLY first, then ADD CONSTRAINT … PRIMARY KEY USING INDEX" },
    Rule { id: "prefer-bigint", severity: W,
        why: "int and serial keys overflow at 2,147,483,647; changing the type later rewrites the table",
        help: "use bigint GENERATED ALWAYS AS IDENTITY (or bigint / bigserial)" },
    Rule { id: "prefer-timestamptz", severity: W,
        why: "timestamp without time zone stores wall-clock time with no zone: values shift with the server's or client's TimeZone",
        help: "use timestamptz" },
    Rule { id: "prefer-jsonb", severity: W,
        why: "json is stored as text: no indexing, no equality, reparsed on every access",
        help: "use jsonb" },
    Rule { id: "ban-char", severity: W,
        why: "char(n) pads with spaces and is never faster than text or varchar",
        help: "use text (with a CHECK on length if needed) or varchar(n)" },
    Rule { id: "concurrently-in-transaction", severity: E,
        why: "CREATE/DROP INDEX CONCURRENTLY cannot run inside a transaction block",
        help: "remove BEGIN/COMMIT from the file: pgkeel runs concurrent statements outside a transaction by itself" },
    Rule { id: "transaction-control", severity: E,
        why: "BEGIN/COMMIT/ROLLBACK in a migration breaks pgkeel's one-transaction-per-migration (and its ledger row)",
        help: "remove them; use `-- pgkeel: no-transaction` for a migration that must run outside a transaction" },
    Rule { id: "vacuum-full-or-cluster", severity: E,
        why: "VACUUM FULL and CLUSTER rewrite the table under ACCESS EXCLUSIVE for as long as they run",
        help: "use pg_repack or pg_squeeze online, or plain VACUUM" },
    Rule { id: "truncate-cascade", severity: W,
        why: "TRUNCATE … CASCADE also empties every table that references it, which is easy to miss",
        help: "truncate the referencing tables explicitly" },
    Rule { id: "enum-add-value-in-transaction", severity: E,
        why: "before PG 12, ALTER TYPE … ADD VALUE cannot run inside a transaction block",
        help: "put it in its own migration with `-- pgkeel: no-transaction`" },
    Rule { id: "identifier-too-long", severity: E,
        why: "PostgreSQL silently truncates identifiers to 63 bytes, so two long names can collide and later migrations miss them",
        help: "use a name of at most 63 bytes" },
    Rule { id: "missing-lock-timeout", severity: W,
        why: "pgkeel's lock_timeout is off and this file takes strong locks on existing tables: a wait for the lock queues every query behind it",
        help: "set PGKEEL_LOCK_TIMEOUT (or `-- pgkeel: lock-timeout 5s`), or SET lock_timeout at the top of the file" },
    Rule { id: "non-idempotent-non-transactional", severity: W,
        why: "a statement outside a transaction may have run before a failure; without IF [NOT] EXISTS its retry fails",
        help: "write CREATE INDEX CONCURRENTLY IF NOT EXISTS / DROP INDEX CONCURRENTLY IF EXISTS / ADD COLUMN IF NOT EXISTS" },
    Rule { id: "unknown-rule", severity: E,
        why: "a suppression that names no existing rule (or gives no reason) silences nothing and hides a typo",
        help: "`-- pgkeel:ignore RULE reason` with a rule id from `pgkeel lint --rules`" },
    Rule { id: "no-rollback", severity: W,
        why: "the migration changes what neither its parse tree nor a schema diff can undo (rows, privileges, owners, a DO block, a function call), and it has no down file: `pgkeel rollback` will refuse it",
        help: "write the migration's .down.sql, or mark it `-- pgkeel:irreversible` when it must never be rolled back" },
    Rule { id: "unused-suppression", severity: W,
        why: "a suppression that silences nothing is stale and will hide a future problem",
        help: "remove it" },
];

/// A rule broken by statement `statement`, at byte `at` of its text.
#[derive(Debug)]
pub(super) struct Found {
    pub rule: &'static str,
    pub statement: usize,
    pub at: usize,
    pub message: String,
}

/// Functions whose value changes per row: as a column default they force a table rewrite.
const VOLATILE: &[&str] = &[
    "random",
    "gen_random_uuid",
    "uuid_generate_v1",
    "uuid_generate_v1mc",
    "uuid_generate_v4",
    "clock_timestamp",
    "timeofday",
    "nextval",
    "txid_current",
    "statement_timestamp",
    "gen_random_bytes",
];

pub(super) fn check(stmts: &[Statement], no_transaction: bool, opts: &LintOptions) -> Vec<Found> {
    let mut found = check_statements(stmts, no_transaction, opts);
    if opts.needs_rollback {
        if let Some(r) = crate::invert::generate_as_applied(stmts).refusal() {
            found.push(Found {
                rule: "no-rollback",
                statement: r.statement,
                at: 0,
                message: format!("no rollback for this migration: {}", r.reason),
            });
        }
    }
    found
}

fn check_statements(stmts: &[Statement], no_transaction: bool, opts: &LintOptions) -> Vec<Found> {
    let mut w = Walker {
        opts: *opts,
        no_transaction,
        ..Walker::default()
    };
    for (i, s) in stmts.iter().enumerate() {
        w.current = i;
        // The parser truncates long identifiers itself (with a NOTICE), so their length is
        // measured on the scanner's tokens, as written.
        if let Ok(scan) = pg_query::scan(&s.text) {
            for t in &scan.tokens {
                if t.token != pb::Token::Ident as i32 {
                    continue;
                }
                let (start, end) = (loc(t.start), loc(t.end).min(s.text.len()));
                let Some(raw) = s.text.get(start..end) else {
                    continue;
                };
                let name = raw
                    .strip_prefix('"')
                    .and_then(|r| r.strip_suffix('"'))
                    .map_or_else(|| raw.to_lowercase(), |q| q.replace("\"\"", "\""));
                w.name_length(&name, start);
            }
        }
        let Ok(parsed) = pg_query::parse(&s.text) else {
            continue;
        };
        for raw in &parsed.protobuf.stmts {
            if let Some(node) = raw.stmt.as_ref().and_then(|n| n.node.as_ref()) {
                w.current = i;
                w.transactional = s.transactional && !no_transaction;
                w.statement(node);
            }
        }
    }
    w.found
}

#[derive(Default)]
struct Walker {
    opts: LintOptions,
    no_transaction: bool,
    found: Vec<Found>,
    current: usize,
    /// Whether the current statement runs inside pgkeel's transaction.
    transactional: bool,
    /// Tables created earlier in this file (`schema.table`).
    created: HashSet<String>,
    /// An explicit BEGIN was seen.
    in_explicit_tx: bool,
    /// The file sets lock_timeout itself.
    sets_lock_timeout: bool,
    warned_lock_timeout: bool,
    /// `(table, constraint) → column` of `CHECK (col IS NOT NULL)` constraints added here.
    not_null_checks: HashMap<(String, String), String>,
    /// `(table, column)` with a validated `IS NOT NULL` check.
    validated_not_null: HashSet<(String, String)>,
}

fn rel_key(rv: &pb::RangeVar) -> String {
    let schema = if rv.schemaname.is_empty() {
        "public"
    } else {
        &rv.schemaname
    };
    format!("{schema}.{}", rv.relname)
}

fn rel_display(rv: &pb::RangeVar) -> String {
    if rv.schemaname.is_empty() {
        rv.relname.clone()
    } else {
        format!("{}.{}", rv.schemaname, rv.relname)
    }
}

fn loc(location: i32) -> usize {
    usize::try_from(location).unwrap_or(0)
}

impl Walker {
    fn report(&mut self, rule: &'static str, at: usize, message: String) {
        self.found.push(Found {
            rule,
            statement: self.current,
            at,
            message,
        });
    }

    fn existing(&self, rv: &pb::RangeVar) -> bool {
        !self.created.contains(&rel_key(rv))
    }

    /// A statement that takes a strong lock on an existing table: without any lock_timeout it
    /// can queue every query behind it.
    fn strong_lock(&mut self, rv_name: &str) {
        if self.opts.lock_timeout_disabled && !self.sets_lock_timeout && !self.warned_lock_timeout {
            self.warned_lock_timeout = true;
            self.report(
                "missing-lock-timeout",
                0,
                format!("locks {rv_name} with no lock_timeout in force"),
            );
        }
    }

    fn name_length(&mut self, name: &str, at: usize) {
        if name.len() > 63 {
            self.report(
                "identifier-too-long",
                at,
                format!(
                    "`{name}` is {} bytes; PostgreSQL will truncate it to 63",
                    name.len()
                ),
            );
        }
    }

    fn statement(&mut self, node: &NodeEnum) {
        match node {
            NodeEnum::TransactionStmt(t) => {
                use pb::TransactionStmtKind as K;
                if matches!(t.kind(), K::TransStmtBegin | K::TransStmtStart) {
                    self.in_explicit_tx = true;
                }
                if matches!(t.kind(), K::TransStmtCommit | K::TransStmtRollback) {
                    self.in_explicit_tx = false;
                }
                self.report(
                    "transaction-control",
                    0,
                    "transaction control inside a migration".into(),
                );
            }
            NodeEnum::VariableSetStmt(v) if v.name == "lock_timeout" => {
                self.sets_lock_timeout = true;
            }
            NodeEnum::CreateStmt(c) => {
                let Some(rv) = &c.relation else { return };
                if self.no_transaction && !c.if_not_exists {
                    self.report(
                        "non-idempotent-non-transactional",
                        0,
                        format!(
                            "CREATE TABLE {} without IF NOT EXISTS in a no-transaction migration",
                            rel_display(rv)
                        ),
                    );
                }
                for elt in &c.table_elts {
                    if let Some(NodeEnum::ColumnDef(col)) = &elt.node {
                        self.column(col);
                    }
                }
                self.created.insert(rel_key(rv));
            }
            NodeEnum::IndexStmt(ix) => {
                let Some(rv) = &ix.relation else { return };
                let existing = self.existing(rv);
                if ix.concurrent {
                    if self.in_explicit_tx {
                        self.report(
                            "concurrently-in-transaction",
                            0,
                            "CREATE INDEX CONCURRENTLY after BEGIN".into(),
                        );
                    }
                    if !ix.if_not_exists {
                        self.report(
                            "non-idempotent-non-transactional",
                            0,
                            "CREATE INDEX CONCURRENTLY without IF NOT EXISTS: a retry after a failure fails on the leftover index name".into(),
                        );
                    }
                } else if existing {
                    self.report(
                        "require-concurrent-index",
                        0,
                        format!(
                            "CREATE INDEX on existing table {} without CONCURRENTLY",
                            rel_display(rv)
                        ),
                    );
                    self.strong_lock(&rel_display(rv));
                }
            }
            NodeEnum::DropStmt(d) => {
                use pb::ObjectType as O;
                match d.remove_type() {
                    O::ObjectIndex => {
                        if d.concurrent {
                            if self.in_explicit_tx {
                                self.report(
                                    "concurrently-in-transaction",
                                    0,
                                    "DROP INDEX CONCURRENTLY after BEGIN".into(),
                                );
                            }
                            if !d.missing_ok {
                                self.report(
                                    "non-idempotent-non-transactional",
                                    0,
                                    "DROP INDEX CONCURRENTLY without IF EXISTS".into(),
                                );
                            }
                        } else {
                            self.report(
                                "require-concurrent-drop-index",
                                0,
                                "DROP INDEX without CONCURRENTLY".into(),
                            );
                            self.strong_lock("the index's table");
                        }
                    }
                    O::ObjectTable => {
                        for obj in &d.objects {
                            let Some(NodeEnum::List(l)) = &obj.node else {
                                continue;
                            };
                            let parts: Vec<String> = l
                                .items
                                .iter()
                                .filter_map(|n| match &n.node {
                                    Some(NodeEnum::String(s)) => Some(s.sval.clone()),
                                    _ => None,
                                })
                                .collect();
                            let key = match parts.as_slice() {
                                [t] => format!("public.{t}"),
                                [s, t] | [_, s, t] => format!("{s}.{t}"),
                                _ => continue,
                            };
                            if !self.created.contains(&key) && !self.opts.rollback_file {
                                self.report(
                                    "drop-table",
                                    0,
                                    format!("DROP TABLE {}", parts.join(".")),
                                );
                                self.strong_lock(&parts.join("."));
                            }
                        }
                    }
                    _ => {}
                }
            }
            NodeEnum::AlterTableStmt(a) if a.objtype() == pb::ObjectType::ObjectTable => {
                let Some(rv) = &a.relation else { return };
                let existing = self.existing(rv);
                if existing {
                    self.strong_lock(&rel_display(rv));
                }
                for cmd in &a.cmds {
                    if let Some(NodeEnum::AlterTableCmd(c)) = &cmd.node {
                        self.alter(rv, c, existing);
                    }
                }
            }
            NodeEnum::RenameStmt(r) => {
                use pb::ObjectType as O;
                let Some(rv) = &r.relation else { return };
                if !self.existing(rv) {
                    return;
                }
                match r.rename_type() {
                    O::ObjectColumn => self.report(
                        "rename-column",
                        0,
                        format!(
                            "renames column {}.{} to {}",
                            rel_display(rv),
                            r.subname,
                            r.newname
                        ),
                    ),
                    O::ObjectTable => self.report(
                        "rename-table",
                        0,
                        format!("renames table {} to {}", rel_display(rv), r.newname),
                    ),
                    _ => {}
                }
            }
            NodeEnum::VacuumStmt(v) => {
                let full = v
                    .options
                    .iter()
                    .any(|o| matches!(&o.node, Some(NodeEnum::DefElem(d)) if d.defname == "full"));
                if full {
                    self.report("vacuum-full-or-cluster", 0, "VACUUM FULL".into());
                }
            }
            NodeEnum::ClusterStmt(_) => {
                self.report("vacuum-full-or-cluster", 0, "CLUSTER".into());
            }
            NodeEnum::TruncateStmt(t) if t.behavior() == pb::DropBehavior::DropCascade => {
                self.report("truncate-cascade", 0, "TRUNCATE … CASCADE".into());
            }
            NodeEnum::AlterEnumStmt(e)
                if e.old_val.is_empty() && self.transactional && self.opts.pg_version < 120000 =>
            {
                self.report(
                    "enum-add-value-in-transaction",
                    0,
                    format!(
                        "ALTER TYPE … ADD VALUE '{}' inside a transaction on PostgreSQL {}",
                        e.new_val,
                        self.opts.pg_version / 10000
                    ),
                );
            }
            _ => {}
        }
    }

    fn alter(&mut self, rv: &pb::RangeVar, c: &pb::AlterTableCmd, existing: bool) {
        use pb::AlterTableType as T;
        let table = rel_display(rv);
        let key = rel_key(rv);
        let def = c.def.as_ref().and_then(|d| d.node.as_ref());
        match c.subtype() {
            T::AtAddColumn => {
                let Some(NodeEnum::ColumnDef(col)) = def else {
                    return;
                };
                self.column(col);
                if self.no_transaction && !c.missing_ok {
                    self.report(
                        "non-idempotent-non-transactional",
                        loc(col.location),
                        format!(
                            "ADD COLUMN {} without IF NOT EXISTS in a no-transaction migration",
                            col.colname
                        ),
                    );
                }
                if !existing {
                    return;
                }
                let default = col.constraints.iter().find_map(|n| match &n.node {
                    Some(NodeEnum::Constraint(k))
                        if k.contype() == pb::ConstrType::ConstrDefault =>
                    {
                        k.raw_expr.as_deref()
                    }
                    _ => None,
                });
                if let Some(expr) = default {
                    if self.opts.pg_version < 110000 {
                        self.report(
                            "volatile-default",
                            loc(col.location),
                            format!("ADD COLUMN {} with a default rewrites {table} before PostgreSQL 11", col.colname),
                        );
                    } else if let Some(f) = volatile_call(expr) {
                        self.report(
                            "volatile-default",
                            loc(col.location),
                            format!(
                                "ADD COLUMN {} DEFAULT {f}(): a volatile default rewrites {table}",
                                col.colname
                            ),
                        );
                    }
                }
            }
            T::AtAddConstraint => {
                let Some(NodeEnum::Constraint(con)) = def else {
                    return;
                };
                use pb::ConstrType as C;
                if con.contype() == C::ConstrCheck {
                    if let Some(col) = con.raw_expr.as_deref().and_then(is_not_null_test) {
                        self.not_null_checks
                            .insert((key.clone(), con.conname.clone()), col);
                    }
                }
                if !existing {
                    return;
                }
                match con.contype() {
                    C::ConstrForeign | C::ConstrCheck if con.initially_valid => {
                        let kind = if con.contype() == C::ConstrForeign {
                            "FOREIGN KEY"
                        } else {
                            "CHECK"
                        };
                        self.report(
                            "constraint-without-not-valid",
                            loc(con.location),
                            format!("ADD {kind} on existing table {table} without NOT VALID"),
                        );
                    }
                    C::ConstrUnique if con.indexname.is_empty() => self.report(
                        "unique-without-index",
                        loc(con.location),
                        format!("ADD UNIQUE on existing table {table} builds its index under lock"),
                    ),
                    C::ConstrPrimary if con.indexname.is_empty() => self.report(
                        "primary-key-without-index",
                        loc(con.location),
                        format!(
                            "ADD PRIMARY KEY on existing table {table} builds its index under lock"
                        ),
                    ),
                    _ => {}
                }
            }
            T::AtValidateConstraint => {
                if let Some(col) = self.not_null_checks.get(&(key.clone(), c.name.clone())) {
                    self.validated_not_null.insert((key, col.clone()));
                }
            }
            T::AtSetNotNull
                if existing
                    && !(self.opts.pg_version >= 120000
                        && self.validated_not_null.contains(&(key, c.name.clone()))) =>
            {
                self.report(
                    "set-not-null",
                    0,
                    format!(
                        "SET NOT NULL on {table}.{} scans the table under ACCESS EXCLUSIVE",
                        c.name
                    ),
                );
            }
            T::AtAlterColumnType => {
                if !existing {
                    return;
                }
                let Some(NodeEnum::ColumnDef(col)) = def else {
                    return;
                };
                let Some(tn) = &col.type_name else { return };
                let name = type_name(tn);
                let safe = matches!(name.as_str(), "text" | "varchar" if tn.typmods.is_empty())
                    || (name == "varchar" || name == "numeric");
                if !safe {
                    self.report(
                        "rewriting-type-change",
                        loc(tn.location),
                        format!(
                            "ALTER COLUMN {} TYPE {} rewrites {table}",
                            c.name,
                            sql_type(&name)
                        ),
                    );
                } else if !tn.typmods.is_empty() {
                    // varchar(n) / numeric(p,s): a rewrite unless it widens the current type,
                    // which only the catalog knows. Said, not guessed.
                    self.report(
                        "rewriting-type-change",
                        loc(tn.location),
                        format!("ALTER COLUMN {} TYPE {name}(…) rewrites {table} unless it only widens the current {name}", c.name),
                    );
                }
            }
            T::AtDropColumn if existing && !self.opts.rollback_file => {
                self.report("drop-column", 0, format!("drops column {table}.{}", c.name))
            }
            _ => {}
        }
    }

    /// Column types: int keys, timestamp, json, char(n); and the name's length.
    fn column(&mut self, col: &pb::ColumnDef) {
        let Some(tn) = &col.type_name else { return };
        let name = type_name(tn);
        let at = loc(tn.location);
        let key = col.constraints.iter().any(|n| {
            matches!(&n.node, Some(NodeEnum::Constraint(k))
                if matches!(k.contype(), pb::ConstrType::ConstrPrimary | pb::ConstrType::ConstrIdentity))
        });
        match name.as_str() {
            "serial" | "serial4" | "smallserial" | "serial2" => self.report(
                "prefer-bigint",
                at,
                format!(
                    "{} is {name}: it overflows at {}",
                    col.colname,
                    if name.contains('2') || name == "smallserial" {
                        "32,767"
                    } else {
                        "2,147,483,647"
                    }
                ),
            ),
            "int4" | "int2" if key => self.report(
                "prefer-bigint",
                at,
                format!(
                    "key column {} is {}",
                    col.colname,
                    if name == "int4" {
                        "integer"
                    } else {
                        "smallint"
                    }
                ),
            ),
            "timestamp" => self.report(
                "prefer-timestamptz",
                at,
                format!("{} is timestamp without time zone", col.colname),
            ),
            "json" => self.report("prefer-jsonb", at, format!("{} is json", col.colname)),
            "bpchar" => self.report("ban-char", at, format!("{} is char(n)", col.colname)),
            _ => {}
        }
    }
}

/// How SQL spells an internal type name, for messages.
fn sql_type(name: &str) -> &str {
    match name {
        "int8" => "bigint",
        "int4" => "integer",
        "int2" => "smallint",
        "float8" => "double precision",
        "float4" => "real",
        "bool" => "boolean",
        "bpchar" => "char",
        "timestamptz" => "timestamptz",
        other => other,
    }
}

/// The type's own name without `pg_catalog.`.
fn type_name(tn: &pb::TypeName) -> String {
    tn.names
        .iter()
        .filter_map(|n| match &n.node {
            Some(NodeEnum::String(s)) => Some(s.sval.as_str()),
            _ => None,
        })
        .rfind(|s| *s != "pg_catalog")
        .unwrap_or("")
        .to_string()
}

/// The name of a volatile function called at the top of a default expression.
fn volatile_call(expr: &pb::Node) -> Option<String> {
    match expr.node.as_ref()? {
        NodeEnum::FuncCall(f) => {
            let name = f.funcname.iter().rev().find_map(|n| match &n.node {
                Some(NodeEnum::String(s)) => Some(s.sval.clone()),
                _ => None,
            })?;
            VOLATILE.contains(&name.as_str()).then_some(name)
        }
        NodeEnum::TypeCast(t) => t.arg.as_deref().and_then(volatile_call),
        _ => None,
    }
}

/// `col IS NOT NULL` → `col`.
fn is_not_null_test(expr: &pb::Node) -> Option<String> {
    let NodeEnum::NullTest(t) = expr.node.as_ref()? else {
        return None;
    };
    if t.nulltesttype() != pb::NullTestType::IsNotNull {
        return None;
    }
    let NodeEnum::ColumnRef(c) = t.arg.as_deref()?.node.as_ref()? else {
        return None;
    };
    match c.fields.last()?.node.as_ref()? {
        NodeEnum::String(s) => Some(s.sval.clone()),
        _ => None,
    }
}
