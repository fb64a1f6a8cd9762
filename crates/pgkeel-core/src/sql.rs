//! SQL understood through PostgreSQL's own parser (`pg_query`, libpg_query).
//!
//! This module owns splitting a migration's text into statements (with their byte offsets in the
//! file, so errors point at `file:line:column`), classifying each statement (may it run inside a
//! transaction block? does it control transactions itself?), and locating syntax errors. It must
//! not touch the database or the file system.

use pg_query::NodeEnum;
use serde::Serialize;

/// One statement of a migration file.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct Statement {
    /// The statement text, from its first token to the end of its last token: no leading or
    /// trailing comments and no terminating semicolon, so `text` followed by `;` is always
    /// one terminated statement (a trailing `-- comment` cannot swallow the `;`).
    pub text: String,
    /// Byte offset of `text` in the migration file.
    pub offset: usize,
    /// False for statements PostgreSQL refuses inside a transaction block
    /// (CREATE INDEX CONCURRENTLY, VACUUM, CREATE DATABASE, ALTER SYSTEM, …).
    pub transactional: bool,
    /// BEGIN / COMMIT / ROLLBACK / SAVEPOINT … written in the migration itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control: Option<TxControl>,
    /// `SET TRANSACTION …`: must be the first statement of its transaction.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub set_transaction: bool,
    /// The file's own `BEGIN … COMMIT` block this statement stands in, once
    /// [`transaction_blocks`] has taken the wrapper statements out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block: Option<Block>,
    /// For `CREATE INDEX CONCURRENTLY name`: the index, as `schema.name` or `name`, so a failed
    /// build's invalid leftover can be found and dropped before the statement is retried.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrent_index: Option<String>,
}

/// A transaction-control statement, as PostgreSQL's parser classifies it.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TxControl {
    /// `BEGIN` or `START TRANSACTION` (with or without modes).
    Begin,
    /// `COMMIT` or `END`.
    Commit,
    /// `COMMIT AND CHAIN` / `ROLLBACK AND CHAIN`.
    Chain,
    /// `ROLLBACK` or `ABORT`.
    Rollback,
    /// `SAVEPOINT`, `RELEASE` and `ROLLBACK TO`: fine inside a transaction.
    Savepoint,
    /// `PREPARE TRANSACTION`, `COMMIT PREPARED`, `ROLLBACK PREPARED`.
    TwoPhase,
}

/// One explicit `BEGIN … COMMIT` block of a file.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct Block {
    /// 0-based number of the block in its file.
    pub index: usize,
    /// The block's own `BEGIN` statement (`BEGIN ISOLATION LEVEL SERIALIZABLE`, …), to open
    /// the transaction exactly as the file does.
    pub begin: String,
}

impl Statement {
    /// Whether the statement opens, ends or abandons a transaction (savepoints do not).
    pub fn is_transaction_boundary(&self) -> bool {
        self.control.is_some_and(|c| c != TxControl::Savepoint)
    }
}

/// A syntax error with its place in the chunk that was parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub message: String,
    /// Byte offset in the parsed text where the error was detected.
    pub offset: usize,
}

/// Parses one piece of SQL (a whole file or one drizzle breakpoint chunk) into statements.
/// `base` is the piece's byte offset in its file; returned offsets are file offsets.
///
/// Statement boundaries come from PostgreSQL's parser and each statement's extent from its
/// scanner: a statement runs from its first token to the end of its last non-comment token,
/// so comments and blanks between statements stay between them.
pub fn split(text: &str, base: usize) -> Result<Vec<Statement>, SyntaxError> {
    let parsed = pg_query::parse(text).map_err(|e| {
        let message = match e {
            pg_query::Error::Parse(m) => m,
            other => other.to_string(),
        };
        let offset = locate_error(text, &message);
        SyntaxError {
            message,
            offset: base + offset,
        }
    })?;
    // Text the parser accepts, the scanner tokenises; an error here would be a bug upstream,
    // reported as a syntax error at the start rather than a panic.
    let tokens = code_tokens(text).map_err(|message| SyntaxError {
        message,
        offset: base,
    })?;
    let mut out = Vec::with_capacity(parsed.protobuf.stmts.len());
    for raw in &parsed.protobuf.stmts {
        let start = usize::try_from(raw.stmt_location).unwrap_or(0);
        let len = usize::try_from(raw.stmt_len).unwrap_or(0);
        let end = if len == 0 {
            text.len()
        } else {
            start.saturating_add(len).min(text.len())
        };
        let first = tokens.partition_point(|t| t.0 < start);
        let mut last = tokens.partition_point(|t| t.0 < end);
        // The terminating `;` is not part of the statement.
        while last > first && text.get(tokens[last - 1].0..tokens[last - 1].1) == Some(";") {
            last -= 1;
        }
        if first >= last {
            continue; // only comments, blanks or `;`
        }
        let (from, to) = (tokens[first].0, tokens[last - 1].1);
        let Some(stmt_text) = text.get(from..to) else {
            continue;
        };
        let node = raw.stmt.as_ref().and_then(|n| n.node.as_ref());
        out.push(Statement {
            text: stmt_text.to_string(),
            offset: base + from,
            transactional: node.is_none_or(is_transactional),
            control: node.and_then(tx_control),
            set_transaction: node.is_some_and(is_set_transaction),
            block: None,
            concurrent_index: node.and_then(concurrent_index_name),
        });
    }
    Ok(out)
}

/// Byte ranges of the tokens of `text` that are not comments, in order.
fn code_tokens(text: &str) -> Result<Vec<(usize, usize)>, String> {
    use pg_query::protobuf::Token;
    let scan = pg_query::scan(text).map_err(|e| e.to_string())?;
    Ok(scan
        .tokens
        .iter()
        .filter(|t| t.token != Token::SqlComment as i32 && t.token != Token::CComment as i32)
        .filter_map(|t| Some((usize::try_from(t.start).ok()?, usize::try_from(t.end).ok()?)))
        .collect())
}

/// SHA-256 of a statement's tokens (comments dropped, each token separated by one space): equal
/// for two texts that differ only in whitespace, line endings or comments. Resume compares
/// these to tell whether a statement that already ran is the one in the file now.
pub fn statement_hash(text: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    match code_tokens(text) {
        Ok(tokens) => {
            for (a, b) in tokens {
                h.update(text.get(a..b).unwrap_or_default().as_bytes());
                h.update(b" ");
            }
        }
        Err(_) => h.update(text.split_whitespace().collect::<Vec<_>>().join(" ")),
    }
    hex::encode(h.finalize())
}

fn tx_control(node: &NodeEnum) -> Option<TxControl> {
    use pg_query::protobuf::TransactionStmtKind as K;
    let NodeEnum::TransactionStmt(t) = node else {
        return None;
    };
    Some(match t.kind() {
        K::TransStmtBegin | K::TransStmtStart => TxControl::Begin,
        K::TransStmtCommit | K::TransStmtRollback if t.chain => TxControl::Chain,
        K::TransStmtCommit => TxControl::Commit,
        K::TransStmtRollback | K::Undefined => TxControl::Rollback,
        K::TransStmtSavepoint | K::TransStmtRelease | K::TransStmtRollbackTo => {
            TxControl::Savepoint
        }
        K::TransStmtPrepare | K::TransStmtCommitPrepared | K::TransStmtRollbackPrepared => {
            TxControl::TwoPhase
        }
    })
}

fn is_set_transaction(node: &NodeEnum) -> bool {
    matches!(node, NodeEnum::VariableSetStmt(v) if v.name.eq_ignore_ascii_case("transaction"))
}

/// What is wrong with a file's own transaction control.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockProblem {
    /// `BEGIN` inside a block that is already open.
    NestedBegin,
    /// `COMMIT`/`END` (or `ROLLBACK`) with no open `BEGIN`.
    NothingToEnd,
    /// `BEGIN` with no `COMMIT` before the end of the file.
    NeverCommitted,
    /// `ROLLBACK`/`ABORT` that discards what the file did.
    Rollback,
    /// `COMMIT AND CHAIN` / `ROLLBACK AND CHAIN`.
    Chain,
    /// Two-phase commit statements.
    TwoPhase,
    /// A statement PostgreSQL refuses in a transaction block, inside `BEGIN … COMMIT`.
    NotTransactional,
}

impl std::fmt::Display for BlockProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BlockProblem::NestedBegin => {
                "BEGIN inside a block that is already open: end the first block with COMMIT before the next BEGIN"
            }
            BlockProblem::NothingToEnd => {
                "it ends no transaction (no BEGIN before it): remove it, or add the BEGIN it closes"
            }
            BlockProblem::NeverCommitted => {
                "this BEGIN is never committed: add COMMIT after the block's last statement"
            }
            BlockProblem::Rollback => {
                "a migration that rolls itself back changes nothing and would be recorded as applied: remove the ROLLBACK (pgkeel rolls back a failed migration itself)"
            }
            BlockProblem::Chain => {
                "AND CHAIN is not supported in a migration: end the block with COMMIT and open the next with BEGIN"
            }
            BlockProblem::TwoPhase => {
                "two-phase commit (PREPARE TRANSACTION, COMMIT/ROLLBACK PREPARED) is not supported in a migration"
            }
            BlockProblem::NotTransactional => {
                "PostgreSQL refuses this statement inside BEGIN … COMMIT: move it after the COMMIT (pgkeel runs it alone)"
            }
        })
    }
}

/// A file's transaction control that pgkeel cannot honour, at the statement's file offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockError {
    pub problem: BlockProblem,
    /// The offending statement's text.
    pub statement: String,
    pub offset: usize,
}

/// How the runner a folder was written for wraps each file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wrapping {
    /// The file runs as written (psql, Prisma, golang-migrate, pgkeel's own layout).
    None,
    /// The runner has a transaction open around the file (drizzle-orm): a `COMMIT` before
    /// any `BEGIN` ends it (drizzle-kit users write `COMMIT;` before `CREATE INDEX
    /// CONCURRENTLY`), and a `BEGIN` still open at the end is the one the runner commits.
    Outer,
}

/// Honours the file's own `BEGIN … COMMIT` blocks: the wrapper statements are taken out and
/// every statement between them is marked with its [`Block`], so the executor runs each block
/// as one transaction with pgkeel's settings and guards inside it. Savepoints stay as they
/// are. Anything else that ends or abandons a transaction is an error.
pub fn transaction_blocks(
    stmts: Vec<Statement>,
    wrapping: Wrapping,
) -> Result<Vec<Statement>, BlockError> {
    if !stmts.iter().any(|s| s.control.is_some()) {
        return Ok(stmts);
    }
    let err = |problem, s: &Statement| BlockError {
        problem,
        statement: s.text.clone(),
        offset: s.offset,
    };
    let mut out = Vec::with_capacity(stmts.len());
    let mut open: Option<(Block, Statement)> = None;
    let mut blocks = 0;
    // The runner's own transaction, open from the start when the file ends it itself.
    let first_boundary = stmts.iter().find(|s| s.is_transaction_boundary());
    if wrapping == Wrapping::Outer
        && first_boundary.is_some_and(|s| s.control == Some(TxControl::Commit))
    {
        let s = first_boundary.expect("checked").clone();
        open = Some((
            Block {
                index: 0,
                begin: "BEGIN".into(),
            },
            s,
        ));
        blocks = 1;
    }
    for s in stmts {
        match s.control {
            Some(TxControl::Begin) => {
                if open.is_some() {
                    return Err(err(BlockProblem::NestedBegin, &s));
                }
                let block = Block {
                    index: blocks,
                    begin: s.text.clone(),
                };
                blocks += 1;
                open = Some((block, s));
            }
            Some(TxControl::Commit) => {
                if open.take().is_none() {
                    return Err(err(BlockProblem::NothingToEnd, &s));
                }
            }
            Some(TxControl::Rollback) => {
                let problem = match open {
                    Some(_) => BlockProblem::Rollback,
                    None => BlockProblem::NothingToEnd,
                };
                return Err(err(problem, &s));
            }
            Some(TxControl::Chain) => return Err(err(BlockProblem::Chain, &s)),
            Some(TxControl::TwoPhase) => return Err(err(BlockProblem::TwoPhase, &s)),
            None | Some(TxControl::Savepoint) => {
                let mut s = s;
                if let Some((block, _)) = &open {
                    if !s.transactional {
                        return Err(err(BlockProblem::NotTransactional, &s));
                    }
                    s.block = Some(block.clone());
                }
                out.push(s);
            }
        }
    }
    match open {
        Some((_, begin)) if wrapping == Wrapping::None => {
            Err(err(BlockProblem::NeverCommitted, &begin))
        }
        _ => Ok(out),
    }
}

fn concurrent_index_name(node: &NodeEnum) -> Option<String> {
    let NodeEnum::IndexStmt(s) = node else {
        return None;
    };
    if !s.concurrent || s.idxname.is_empty() {
        return None;
    }
    // An index lives in its table's schema.
    let schema = s
        .relation
        .as_ref()
        .map(|r| r.schemaname.as_str())
        .unwrap_or("");
    Some(if schema.is_empty() {
        crate::ident::quote_ident(&s.idxname)
    } else {
        format!(
            "{}.{}",
            crate::ident::quote_ident(schema),
            crate::ident::quote_ident(&s.idxname)
        )
    })
}

/// Statements PostgreSQL runs only outside a transaction block.
fn is_transactional(node: &NodeEnum) -> bool {
    match node {
        NodeEnum::IndexStmt(s) => !s.concurrent,
        NodeEnum::DropStmt(s) => !s.concurrent,
        NodeEnum::ReindexStmt(s) => !s
            .params
            .iter()
            .any(|p| matches!(&p.node, Some(NodeEnum::DefElem(d)) if d.defname == "concurrently")),
        NodeEnum::VacuumStmt(s) => !s.is_vacuumcmd,
        NodeEnum::CreatedbStmt(_)
        | NodeEnum::DropdbStmt(_)
        | NodeEnum::AlterSystemStmt(_)
        | NodeEnum::CreateTableSpaceStmt(_)
        | NodeEnum::DropTableSpaceStmt(_)
        | NodeEnum::CreateSubscriptionStmt(_)
        | NodeEnum::DropSubscriptionStmt(_) => false,
        _ => true,
    }
}

/// Finds where the parser gave up. libpg_query reports a cursor position that the Rust binding
/// drops, so we find the shortest prefix of tokens that already fails with an error other than
/// "at end of input": the last token of that prefix is the offending one.
fn locate_error(text: &str, message: &str) -> usize {
    let Ok(scan) = pg_query::scan(text) else {
        // Unterminated literal or comment: the scanner can't tokenise; point at the quote.
        return unterminated_start(text).unwrap_or(0);
    };
    let tokens = &scan.tokens;
    if tokens.is_empty() {
        return 0;
    }
    if message.contains("at end of input") {
        return usize::try_from(tokens[tokens.len() - 1].start).unwrap_or(0);
    }
    let fails_before_end = |k: usize| {
        let end = usize::try_from(tokens[k - 1].end).unwrap_or(text.len());
        match pg_query::parse(&text[..end]) {
            Ok(_) => false,
            Err(pg_query::Error::Parse(m)) => !m.contains("at end of input"),
            Err(_) => true,
        }
    };
    let (mut lo, mut hi) = (1usize, tokens.len());
    if !fails_before_end(hi) {
        return 0;
    }
    while lo < hi {
        let mid = (lo + hi) / 2;
        if fails_before_end(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    usize::try_from(tokens[lo - 1].start).unwrap_or(0)
}

fn unterminated_start(text: &str) -> Option<usize> {
    let mut in_quote: Option<(u8, usize)> = None;
    for (i, &c) in text.as_bytes().iter().enumerate() {
        match in_quote {
            None if c == b'\'' || c == b'"' => in_quote = Some((c, i)),
            Some((q, _)) if c == q => in_quote = None,
            _ => {}
        }
    }
    in_quote.map(|(_, i)| i)
}

/// Joins statements into one simple-query batch, remembering where each came from so a
/// server error can be mapped back to the file: by its position when the server gives one,
/// and otherwise by how many of the batch's statements completed before it.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    pub text: String,
    /// (offset in `text`, offset in the file, length)
    segments: Vec<(usize, usize, usize)>,
    /// One entry per top-level statement of `text`, in order: the index of the migration's
    /// statement, or `None` for pgkeel's own SQL.
    units: Vec<Option<usize>>,
}

impl Batch {
    /// Appends pgkeel's own SQL: complete statements, each ended by `;`.
    pub fn push_raw(&mut self, sql: &str) {
        let count = pg_query::split_with_scanner(sql).map_or(0, |v| v.len());
        self.units.extend(std::iter::repeat_n(None, count));
        self.text.push_str(sql);
    }

    /// Appends statement number `index` of the migration. Its text ends at a token (see
    /// [`Statement::text`]), so the `;` added after it always terminates it.
    pub fn push_statement(&mut self, stmt: &Statement, index: usize) {
        self.segments
            .push((self.text.len(), stmt.offset, stmt.text.len()));
        self.units.push(Some(index));
        self.text.push_str(&stmt.text);
        self.text.push_str(";\n");
    }

    /// The migration's statement that was running when the batch failed after `completed`
    /// of its statements had completed; `None` when it was pgkeel's own SQL.
    pub fn statement_after(&self, completed: usize) -> Option<usize> {
        self.units.get(completed).copied().flatten()
    }

    /// Maps a server error position (1-based, in characters of `text`) to a byte offset in the
    /// migration file, when it falls inside one of the file's statements.
    pub fn file_offset(&self, position: u32) -> Option<usize> {
        let char_index = usize::try_from(position).ok()?.checked_sub(1)?;
        let byte = self.text.char_indices().nth(char_index).map(|(b, _)| b)?;
        self.segments
            .iter()
            .find(|(at, _, len)| byte >= *at && byte < at + len)
            .map(|(at, file, _)| file + (byte - at))
    }
}

/// Whether every statement of `text` can only change tables, their columns, constraints,
/// indexes, comments and rows, and never a type, function, view, schema, extension or an
/// unowned sequence: CREATE TABLE, CREATE INDEX, ALTER TABLE on a table without CASCADE, DROP
/// TABLE or DROP INDEX without CASCADE (RESTRICT refuses to drop what depends on them), COMMENT,
/// INSERT, UPDATE, DELETE, SET and transaction control. Renames are not in the list: they change
/// the text of views that name the table. `false` when the text does not parse. The migration
/// test suite reads types and functions again only when this is false.
pub fn table_level_only(text: &str) -> bool {
    use pg_query::protobuf::{DropBehavior, ObjectType};
    let Ok(parsed) = pg_query::parse(text) else {
        return false;
    };
    parsed.protobuf.stmts.iter().all(|raw| {
        let Some(node) = raw.stmt.as_ref().and_then(|n| n.node.as_ref()) else {
            return true;
        };
        match node {
            NodeEnum::CreateStmt(_)
            | NodeEnum::IndexStmt(_)
            | NodeEnum::CommentStmt(_)
            | NodeEnum::InsertStmt(_)
            | NodeEnum::UpdateStmt(_)
            | NodeEnum::DeleteStmt(_)
            | NodeEnum::VariableSetStmt(_)
            | NodeEnum::TransactionStmt(_) => true,
            NodeEnum::AlterTableStmt(a) => {
                a.objtype() == ObjectType::ObjectTable
                    && a.cmds.iter().all(|c| match &c.node {
                        Some(NodeEnum::AlterTableCmd(c)) => {
                            c.behavior() != DropBehavior::DropCascade
                        }
                        _ => false,
                    })
            }
            NodeEnum::DropStmt(d) => {
                matches!(
                    d.remove_type(),
                    ObjectType::ObjectTable | ObjectType::ObjectIndex
                ) && d.behavior() != DropBehavior::DropCascade
            }
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {

    #[test]
    fn table_level_statements_are_told_apart() {
        for yes in [
            "CREATE TABLE t (id bigint PRIMARY KEY); CREATE INDEX t_i ON t (id);",
            "ALTER TABLE t ADD COLUMN c text NOT NULL DEFAULT ''; COMMENT ON TABLE t IS 'x';",
            "DROP TABLE t; DROP INDEX IF EXISTS t_i; INSERT INTO t VALUES (1); UPDATE t SET id = 2;",
            "SET lock_timeout = '1s'; BEGIN; DELETE FROM t; COMMIT;",
        ] {
            assert!(table_level_only(yes), "{yes}");
        }
        for no in [
            "CREATE TYPE mood AS ENUM ('a')",
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'select 1'",
            "CREATE VIEW v AS SELECT 1",
            "ALTER TABLE t RENAME TO u",
            "ALTER TABLE t DROP COLUMN c CASCADE",
            "DROP TABLE t CASCADE",
            "ALTER VIEW v RENAME TO w",
            "CREATE SEQUENCE s",
            "SELECT create_things()",
            "CREATE TABLE t (id int); CREATE SCHEMA s",
            "not sql at all",
        ] {
            assert!(!table_level_only(no), "{no}");
        }
    }
    use super::*;

    #[test]
    fn splits_with_file_offsets_and_skips_leading_comments() {
        let sql =
            "-- header\nCREATE TABLE a (id int);\n\n/* c */ CREATE INDEX CONCURRENTLY i ON a (id);";
        let stmts = split(sql, 100).unwrap();
        assert_eq!(stmts.len(), 2);
        assert_eq!(stmts[0].text, "CREATE TABLE a (id int)");
        assert_eq!(stmts[0].offset, 100 + sql.find("CREATE TABLE").unwrap());
        assert!(stmts[0].transactional);
        assert_eq!(stmts[1].offset, 100 + sql.find("CREATE INDEX").unwrap());
        assert!(!stmts[1].transactional);
        assert_eq!(stmts[1].concurrent_index.as_deref(), Some("\"i\""));
        assert_eq!(stmts[0].concurrent_index, None);
    }

    #[test]
    fn non_transactional_statements_are_recognised_from_the_tree() {
        for sql in [
            "DROP INDEX CONCURRENTLY i",
            "REINDEX INDEX CONCURRENTLY i",
            "VACUUM a",
            "CREATE DATABASE x",
            "ALTER SYSTEM SET work_mem = '8MB'",
        ] {
            assert!(!split(sql, 0).unwrap()[0].transactional, "{sql}");
        }
        for sql in [
            "CREATE INDEX i ON a (id)",
            "ANALYZE a",
            "REINDEX INDEX i",
            "SELECT 'CREATE INDEX CONCURRENTLY'",
        ] {
            assert!(split(sql, 0).unwrap()[0].transactional, "{sql}");
        }
        assert_eq!(
            split("BEGIN", 0).unwrap()[0].control,
            Some(TxControl::Begin)
        );
    }

    #[test]
    fn syntax_error_points_at_the_offending_token() {
        let sql = "CREATE TABLE a (id int);\nCREATE TABLE b (id int,, x int);";
        let err = split(sql, 0).unwrap_err();
        assert!(err.message.contains("syntax error"), "{}", err.message);
        assert_eq!(err.offset, sql.find(",,").unwrap() + 1);
    }

    #[test]
    fn syntax_error_at_end_of_input_points_at_the_last_token() {
        let sql = "CREATE TABLE a (id int";
        let err = split(sql, 0).unwrap_err();
        assert_eq!(err.offset, sql.find("int").unwrap());
    }

    #[test]
    fn unterminated_quote_points_at_the_quote() {
        let sql = "SELECT 1;\nSELECT 'abc";
        let err = split(sql, 0).unwrap_err();
        assert_eq!(err.offset, sql.find('\'').unwrap());
    }

    #[test]
    fn batch_maps_server_positions_back_to_the_file() {
        let sql = "CREATE TABLE a (id int);\nSELECT é, nope FROM a;";
        let stmts = split(sql, 0).unwrap();
        let mut b = Batch::default();
        b.push_raw("BEGIN;\n");
        for (i, s) in stmts.iter().enumerate() {
            b.push_statement(s, i);
        }
        let pos = b.text[..b.text.find("nope").unwrap()].chars().count() as u32 + 1;
        assert_eq!(b.file_offset(pos), Some(sql.find("nope").unwrap()));
        assert_eq!(b.file_offset(1), None);
    }

    #[test]
    fn semicolon_after_trailing_line_comment_is_not_swallowed() {
        let sql = "ALTER TABLE a ADD COLUMN b int -- why\n;\nALTER TABLE a ADD COLUMN c int";
        let stmts = split(sql, 0).unwrap();
        assert_eq!(stmts.len(), 2);
        assert_eq!(stmts[0].text, "ALTER TABLE a ADD COLUMN b int");
        let mut b = Batch::default();
        for (i, s) in stmts.iter().enumerate() {
            b.push_statement(s, i);
        }
        b.push_raw("SELECT 1;");
        // The batch is three statements, whatever comments the file had.
        assert_eq!(pg_query::split_with_parser(&b.text).unwrap().len(), 3);
    }

    #[test]
    fn last_statement_without_semicolon_before_a_comment_ends_at_its_last_token() {
        let sql = "CREATE TABLE a (id int);\r\nSELECT 1 /* x */\r\n-- the end";
        let stmts = split(sql, 7).unwrap();
        assert_eq!(stmts.len(), 2);
        assert_eq!(stmts[1].text, "SELECT 1");
        assert_eq!(stmts[1].offset, 7 + sql.find("SELECT").unwrap());
    }

    #[test]
    fn comments_and_blank_statements_between_statements_are_not_statements() {
        let sql = ";; -- a\n/* b /* nested */ c */ ; SELECT '--;' AS \"x;--y\"; ;\n-- z";
        let stmts = split(sql, 0).unwrap();
        assert_eq!(stmts.len(), 1);
        assert_eq!(stmts[0].text, "SELECT '--;' AS \"x;--y\"");
    }

    #[test]
    fn statements_keep_non_ascii_and_dollar_quotes_whole() {
        let sql = "DO $$--ñé\nBEGIN PERFORM 1; END $$;\nCREATE FUNCTION f(int) RETURNS int LANGUAGE sql AS $fn$ SELECT $1; $fn$ -- é\n";
        let stmts = split(sql, 0).unwrap();
        assert_eq!(stmts.len(), 2);
        assert!(stmts[0].text.ends_with("END $$"));
        assert!(stmts[1].text.ends_with("$fn$"));
    }

    #[test]
    fn statement_hash_ignores_comments_and_whitespace_only() {
        let a = statement_hash("CREATE TABLE a (id int)");
        assert_eq!(a, statement_hash("CREATE  TABLE a\r\n (id int) -- note"));
        assert_eq!(a, statement_hash("/* x */ CREATE TABLE a (id int)"));
        assert_ne!(a, statement_hash("CREATE TABLE a (id bigint)"));
        assert_ne!(
            statement_hash("INSERT INTO a VALUES (1)"),
            statement_hash("INSERT INTO a VALUES (2)")
        );
    }

    #[test]
    fn begin_commit_wrapper_becomes_one_block() {
        let sql = "BEGIN;\nCREATE TYPE m AS ENUM ('a');\nALTER TABLE t ADD c m;\nCOMMIT;";
        let stmts = transaction_blocks(split(sql, 0).unwrap(), Wrapping::None).unwrap();
        assert_eq!(stmts.len(), 2);
        assert!(stmts
            .iter()
            .all(|s| s.block.as_ref().map(|b| b.index) == Some(0)));
    }

    #[test]
    fn several_blocks_and_statements_between_them_are_told_apart() {
        let sql = "START TRANSACTION ISOLATION LEVEL SERIALIZABLE; SELECT 1; END; SELECT 2; \
                   BEGIN; SAVEPOINT s; SELECT 3; RELEASE s; COMMIT;";
        let stmts = transaction_blocks(split(sql, 0).unwrap(), Wrapping::None).unwrap();
        let blocks: Vec<Option<usize>> = stmts
            .iter()
            .map(|s| s.block.as_ref().map(|b| b.index))
            .collect();
        assert_eq!(blocks, [Some(0), None, Some(1), Some(1), Some(1)]);
        assert_eq!(
            stmts[0].block.as_ref().unwrap().begin,
            "START TRANSACTION ISOLATION LEVEL SERIALIZABLE"
        );
    }

    #[test]
    fn set_transaction_is_recognised() {
        let stmts = split(
            "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE; SET x.y = 1",
            0,
        )
        .unwrap();
        assert!(stmts[0].set_transaction);
        assert!(!stmts[1].set_transaction);
    }

    #[test]
    fn transaction_control_misuse_is_refused_with_its_place() {
        for (sql, problem) in [
            ("SELECT 1; COMMIT;", BlockProblem::NothingToEnd),
            ("BEGIN; BEGIN; COMMIT;", BlockProblem::NestedBegin),
            ("BEGIN; SELECT 1;", BlockProblem::NeverCommitted),
            ("BEGIN; SELECT 1; ROLLBACK;", BlockProblem::Rollback),
            (
                "BEGIN; SELECT 1; COMMIT AND CHAIN; COMMIT;",
                BlockProblem::Chain,
            ),
            ("PREPARE TRANSACTION 'x';", BlockProblem::TwoPhase),
            (
                "BEGIN; CREATE INDEX CONCURRENTLY i ON t (a); COMMIT;",
                BlockProblem::NotTransactional,
            ),
        ] {
            let e = transaction_blocks(split(sql, 0).unwrap(), Wrapping::None).unwrap_err();
            assert_eq!(e.problem, problem, "{sql}");
            assert_eq!(&sql[e.offset..e.offset + e.statement.len()], e.statement);
        }
    }

    #[test]
    fn batch_names_the_statement_that_failed_from_completed_count() {
        let stmts = split("CREATE TABLE a (id int); INSERT INTO a VALUES (1)", 0).unwrap();
        let mut b = Batch::default();
        b.push_raw("BEGIN;\nSET LOCAL lock_timeout = '1s';\n");
        for (i, s) in stmts.iter().enumerate() {
            b.push_statement(s, i);
        }
        b.push_raw("COMMIT;");
        assert_eq!(b.statement_after(0), None);
        assert_eq!(b.statement_after(2), Some(0));
        assert_eq!(b.statement_after(3), Some(1));
        assert_eq!(b.statement_after(4), None);
    }

    #[test]
    fn drizzle_commit_first_ends_the_runners_transaction() {
        // drizzle-kit users end drizzle-orm's transaction before a CONCURRENTLY statement and
        // may open a new one at the end for drizzle-orm to commit.
        let sql = "ALTER TABLE t ADD c int; COMMIT; CREATE INDEX CONCURRENTLY i ON t (c); BEGIN; \
                   ALTER TABLE t ADD d int;";
        let stmts = transaction_blocks(split(sql, 0).unwrap(), Wrapping::Outer).unwrap();
        let blocks: Vec<Option<usize>> = stmts
            .iter()
            .map(|s| s.block.as_ref().map(|b| b.index))
            .collect();
        assert_eq!(blocks, [Some(0), None, Some(1)]);
        // The same file, run as written, is refused.
        let e = transaction_blocks(split(sql, 0).unwrap(), Wrapping::None).unwrap_err();
        assert_eq!(e.problem, BlockProblem::NothingToEnd);
    }
}
