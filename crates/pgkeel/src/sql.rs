//! SQL understood through PostgreSQL's own parser (`pg_query`, libpg_query).
//!
//! This module owns splitting a migration's text into statements (with their byte offsets in the
//! file, so errors point at `file:line:column`), classifying each statement (may it run inside a
//! transaction block? does it control transactions itself?), and locating syntax errors. It must
//! not touch the database or the file system.

use pg_query::NodeEnum;
use serde::Serialize;

/// One statement of a migration file.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Statement {
    /// The statement text, without its terminating semicolon.
    pub text: String,
    /// Byte offset of `text` in the migration file.
    pub offset: usize,
    /// False for statements PostgreSQL refuses inside a transaction block
    /// (CREATE INDEX CONCURRENTLY, VACUUM, CREATE DATABASE, ALTER SYSTEM, …).
    pub transactional: bool,
    /// BEGIN / COMMIT / ROLLBACK / SAVEPOINT written in the migration itself.
    pub transaction_control: bool,
    /// For `CREATE INDEX CONCURRENTLY name`: the index, as `schema.name` or `name`, so a failed
    /// build's invalid leftover can be found and dropped before the statement is retried.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrent_index: Option<String>,
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
    let mut out = Vec::with_capacity(parsed.protobuf.stmts.len());
    for raw in &parsed.protobuf.stmts {
        let start = usize::try_from(raw.stmt_location).unwrap_or(0);
        let len = usize::try_from(raw.stmt_len).unwrap_or(0);
        let end = if len == 0 {
            text.len()
        } else {
            (start + len).min(text.len())
        };
        let slice = &text[start..end];
        // The parser's location includes leading comments and blanks: skip them so offsets
        // point at the statement's first token.
        let lead = leading_trivia(slice);
        let stmt_text = slice[lead..].trim_end();
        if stmt_text.is_empty() {
            continue;
        }
        let node = raw.stmt.as_ref().and_then(|n| n.node.as_ref());
        out.push(Statement {
            text: stmt_text.to_string(),
            offset: base + start + lead,
            transactional: node.is_none_or(is_transactional),
            transaction_control: matches!(node, Some(NodeEnum::TransactionStmt(_))),
            concurrent_index: node.and_then(concurrent_index_name),
        });
    }
    Ok(out)
}

/// Length of leading whitespace and comments (`-- …` lines and `/* … */` blocks).
fn leading_trivia(s: &str) -> usize {
    let b = s.as_bytes();
    let mut i = 0;
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if b[i..].starts_with(b"--") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            match s[i + 2..].find("*/") {
                Some(p) => i += p + 4,
                None => return i,
            }
        } else {
            return i;
        }
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
        crate::db::quote_ident(&s.idxname)
    } else {
        format!(
            "{}.{}",
            crate::db::quote_ident(schema),
            crate::db::quote_ident(&s.idxname)
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
/// server error position can be mapped back to the file.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    pub text: String,
    /// (offset in `text`, offset in the file, length)
    segments: Vec<(usize, usize, usize)>,
}

impl Batch {
    pub fn push_raw(&mut self, sql: &str) {
        self.text.push_str(sql);
    }

    pub fn push_statement(&mut self, stmt: &Statement) {
        self.segments
            .push((self.text.len(), stmt.offset, stmt.text.len()));
        self.text.push_str(&stmt.text);
        self.text.push_str(";\n");
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
        assert!(split("BEGIN", 0).unwrap()[0].transaction_control);
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
        for s in &stmts {
            b.push_statement(s);
        }
        let pos = b.text[..b.text.find("nope").unwrap()].chars().count() as u32 + 1;
        assert_eq!(b.file_offset(pos), Some(sql.find("nope").unwrap()));
        assert_eq!(b.file_offset(1), None);
    }
}
