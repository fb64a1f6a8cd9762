//! drizzle takeover: drizzle-orm's own migrations table, read and kept in step.
//!
//! drizzle-orm's migrator (verified against 0.45.4, `pg-core/dialect.js`) records what it applied
//! in `drizzle.__drizzle_migrations (id SERIAL PRIMARY KEY, hash text NOT NULL, created_at
//! bigint)`, `created_at` being the journal entry's `when`. It reads only the newest row
//! (`ORDER BY created_at DESC LIMIT 1`) and applies every journal entry whose `when` is larger,
//! all in one transaction; it never compares hashes, so an entry dated before the newest applied
//! one is skipped without a word.
//!
//! This module reads that table ([`read_rows`]), matches it with a migration folder
//! ([`match_journal`], pure) and writes the SQL text of drizzle's own writes ([`ensure_table_sql`],
//! [`insert_row_sql`], [`delete_row_sql`]) for `migrate` to run inside its migration
//! transactions, so a team can go back to drizzle's migrator at any time. It does not decide what
//! to apply and never touches pgkeel's ledger.

use std::collections::HashMap;
use std::fmt;

use serde::Serialize;
use tokio_postgres::Client;

use crate::db::DbError;
use crate::ident::{qualified, quote_ident, quote_literal};
use crate::source::{Migration, MigrationSet};

/// One row of drizzle's migrations table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct DrizzleRow {
    pub id: i32,
    /// SHA-256 hex of the file text when drizzle (or pgkeel) applied it.
    pub hash: String,
    /// The journal entry's `when` (epoch ms). drizzle always writes it; NULL only by hand.
    pub created_at: Option<i64>,
}

/// Reads drizzle's migrations table `schema.table`, in insertion order (`id`); `None` when the
/// table doesn't exist. Creates nothing: safe for dry runs and `status`.
pub async fn read_rows(
    client: &Client,
    schema: &str,
    table: &str,
) -> Result<Option<Vec<DrizzleRow>>, DbError> {
    let name = qualified(schema, table);
    let exists: bool = client
        .query_one(
            "SELECT EXISTS (
                SELECT 1 FROM pg_catalog.pg_class c
                  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p', 'v', 'm', 'f'))",
            &[&schema, &table],
        )
        .await
        .map_err(|e| DbError::query(format!("looking for drizzle's migrations table {name}"), e))?
        .get(0);
    if !exists {
        return Ok(None);
    }
    // Casts keep a hand-made table with wider types readable; drizzle's own has exactly these.
    let sql = format!(
        "SELECT id::int4, coalesce(hash::text, ''), created_at::int8 FROM {name} ORDER BY id"
    );
    let rows = client
        .query(&sql, &[])
        .await
        .map_err(|e| DbError::query(format!("reading drizzle's migrations table {name}"), e))?;
    Ok(Some(
        rows.iter()
            .map(|r| DrizzleRow {
                id: r.get(0),
                hash: r.get(1),
                created_at: r.get(2),
            })
            .collect(),
    ))
}

/// A journal entry drizzle's table says is applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct TakenOver {
    /// The migration id (journal tag).
    pub id: String,
    /// False when the row was matched by `when` only: the file changed after it was applied.
    pub hash_matches: bool,
    /// The matching row of drizzle's table.
    pub row_id: i32,
    /// The hash drizzle recorded (equals `file_hash` when `hash_matches`).
    pub row_hash: String,
    /// The hash of the file as it is now.
    pub file_hash: String,
}

/// A journal entry drizzle never applied and never will: its `when` is not newer than the newest
/// row's `created_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Skipped {
    pub id: String,
    pub when: i64,
}

/// The newest row of drizzle's table, which decides what drizzle's migrator applies next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Latest {
    pub created_at: i64,
    /// The journal entry matched to that row, if any.
    pub id: Option<String>,
}

/// A folder compared with drizzle's table (see [`match_journal`]). Every list is in folder
/// order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Takeover {
    /// Applied according to drizzle's table: record them in pgkeel's ledger, don't run them.
    pub applied: Vec<TakenOver>,
    /// Out of order: drizzle silently skipped them. Not to be applied automatically.
    pub skipped: Vec<Skipped>,
    /// Newer than anything drizzle applied: what drizzle's migrator would run next.
    pub pending: Vec<String>,
    /// Rows no journal entry explains (entry removed from the journal, or written by hand).
    pub unmatched_rows: Vec<DrizzleRow>,
    /// Rows with a NULL `created_at`: drizzle's migrator sorts them first and would then re-run
    /// every migration.
    pub null_created_at: Vec<DrizzleRow>,
    /// The highest `created_at` in the table.
    pub latest: Option<Latest>,
}

impl Takeover {
    /// The applied entries whose file changed since drizzle applied them.
    pub fn modified(&self) -> impl Iterator<Item = &TakenOver> {
        self.applied.iter().filter(|a| !a.hash_matches)
    }

    /// What a user must hear about, loudly: skipped entries first.
    pub fn warnings(&self) -> Vec<TakeoverWarning> {
        let mut out = Vec::new();
        if let Some(latest) = &self.latest {
            for s in &self.skipped {
                out.push(TakeoverWarning::Skipped {
                    id: s.id.clone(),
                    when: s.when,
                    latest: latest.clone(),
                });
            }
        }
        for a in self.modified() {
            out.push(TakeoverWarning::Modified {
                id: a.id.clone(),
                row_id: a.row_id,
                row_hash: a.row_hash.clone(),
                file_hash: a.file_hash.clone(),
            });
        }
        for r in &self.null_created_at {
            out.push(TakeoverWarning::NullCreatedAt { row_id: r.id });
        }
        for r in self
            .unmatched_rows
            .iter()
            .filter(|r| r.created_at.is_some())
        {
            out.push(TakeoverWarning::UnmatchedRow { row: r.clone() });
        }
        out
    }
}

/// Something about drizzle's table that needs a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum TakeoverWarning {
    Skipped {
        id: String,
        when: i64,
        latest: Latest,
    },
    Modified {
        id: String,
        row_id: i32,
        row_hash: String,
        file_hash: String,
    },
    NullCreatedAt {
        row_id: i32,
    },
    UnmatchedRow {
        row: DrizzleRow,
    },
}

impl fmt::Display for TakeoverWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TakeoverWarning::Skipped { id, when, latest } => {
                let newest = match &latest.id {
                    Some(l) => format!("{l}, {}", show_when(latest.created_at)),
                    None => show_when(latest.created_at),
                };
                write!(
                    f,
                    "drizzle never applied {id} because its `when` ({}) is older than the newest \
                     applied migration ({newest}); drizzle's migrator skips such entries silently and \
                     pgkeel will not apply it automatically either: apply it by hand after review \
                     (then record it with `pgkeel baseline --to {id}`), or re-date it (a `when` newer \
                     than {}) so it runs as a new migration",
                    show_when(*when),
                    latest.created_at
                )
            }
            TakeoverWarning::Modified {
                id,
                row_id,
                row_hash,
                file_hash,
            } => write!(
                f,
                "{id} is recorded in drizzle's migrations table with hash {row_hash} (row {row_id}, \
                 matched by its `when`; applied by drizzle or by pgkeel keeping it in step) but the \
                 file now hashes to {file_hash}: it changed after it was applied; restore it, \
                 or put the change in a new migration"
            ),
            TakeoverWarning::NullCreatedAt { row_id } => write!(
                f,
                "row {row_id} of drizzle's migrations table has no created_at: drizzle's migrator \
                 treats it as the newest and would re-run every migration; set it to the journal \
                 `when` of the migration it records, or delete it"
            ),
            TakeoverWarning::UnmatchedRow { row } => write!(
                f,
                "row {} of drizzle's migrations table (hash {}, created_at {}) matches no journal \
                 entry: was an entry removed from meta/_journal.json?",
                row.id,
                row.hash,
                row.created_at.map_or_else(|| "NULL".into(), show_when)
            ),
        }
    }
}

/// `1736849523512, 2025-01-14 10:12:03 UTC`.
fn show_when(ms: i64) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => format!("{ms}, {}", t.format("%Y-%m-%d %H:%M:%S UTC")),
        None => ms.to_string(),
    }
}

/// Compares a migration folder with drizzle's table. Pure and linear.
///
/// A journal entry is applied when a row has its hash, or, failing that, when a row's
/// `created_at` equals its `when` (applied, then edited: `hash_matches` is false). Each row
/// explains one entry at most (two files with the same text are two migrations); exact matches
/// (hash and `when`) are taken first, then hash-only, then `when`-only. The rest are split the
/// way drizzle's migrator splits them: `when` newer than the newest `created_at` is pending,
/// anything else was skipped by drizzle (it applies only `when > newest`). Migrations without a
/// `when` (native layout) are matched by hash only and are otherwise pending.
pub fn match_journal(set: &MigrationSet, rows: &[DrizzleRow]) -> Takeover {
    let mut used = vec![false; rows.len()];
    // Row indices in id order, reversed so `pop` yields the oldest first.
    let mut exact: HashMap<(&str, i64), Vec<usize>> = HashMap::new();
    let mut by_hash: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut by_when: HashMap<i64, Vec<usize>> = HashMap::new();
    for (i, r) in rows.iter().enumerate().rev() {
        by_hash.entry(r.hash.as_str()).or_default().push(i);
        if let Some(c) = r.created_at {
            exact.entry((r.hash.as_str(), c)).or_default().push(i);
            by_when.entry(c).or_default().push(i);
        }
    }
    fn take(list: Option<&mut Vec<usize>>, used: &mut [bool]) -> Option<usize> {
        let list = list?;
        while let Some(i) = list.pop() {
            if !used[i] {
                used[i] = true;
                return Some(i);
            }
        }
        None
    }

    let ms = &set.migrations;
    // (row index, hash matches) per migration.
    let mut matched: Vec<Option<(usize, bool)>> = vec![None; ms.len()];
    for (k, m) in ms.iter().enumerate() {
        if let Some(w) = m.when {
            matched[k] = take(exact.get_mut(&(m.hash.as_str(), w)), &mut used).map(|i| (i, true));
        }
    }
    for (k, m) in ms.iter().enumerate() {
        if matched[k].is_none() {
            matched[k] = take(by_hash.get_mut(m.hash.as_str()), &mut used).map(|i| (i, true));
        }
    }
    for (k, m) in ms.iter().enumerate() {
        if let (None, Some(w)) = (matched[k], m.when) {
            matched[k] = take(by_when.get_mut(&w), &mut used).map(|i| (i, false));
        }
    }

    let latest = rows
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.created_at.map(|c| (c, i)))
        // The highest created_at; among equals, the row drizzle wrote last.
        .max()
        .map(|(created_at, row)| Latest {
            created_at,
            id: matched
                .iter()
                .position(|x| x.is_some_and(|(i, _)| i == row))
                .map(|k| ms[k].id.clone()),
        });

    let mut out = Takeover {
        latest,
        ..Takeover::default()
    };
    for (m, hit) in ms.iter().zip(&matched) {
        match (hit, m.when, &out.latest) {
            (Some((i, hash_matches)), _, _) => out.applied.push(TakenOver {
                id: m.id.clone(),
                hash_matches: *hash_matches,
                row_id: rows[*i].id,
                row_hash: rows[*i].hash.clone(),
                file_hash: m.hash.clone(),
            }),
            (None, Some(when), Some(l)) if when <= l.created_at => out.skipped.push(Skipped {
                id: m.id.clone(),
                when,
            }),
            (None, _, _) => out.pending.push(m.id.clone()),
        }
    }
    for (r, used) in rows.iter().zip(&used) {
        if r.created_at.is_none() {
            out.null_created_at.push(r.clone());
        }
        if !used {
            out.unmatched_rows.push(r.clone());
        }
    }
    out
}

/// Whether pgkeel keeps drizzle-orm's table in step for a folder of this layout: journal
/// folders only (drizzle v1's table has more columns and is not verified yet).
pub fn keeps_table_for(layout: crate::source::Layout) -> bool {
    layout == crate::source::Layout::DrizzleJournal
}

/// `CREATE SCHEMA IF NOT EXISTS` + `CREATE TABLE IF NOT EXISTS`, exactly as drizzle-orm creates
/// its table. Two statements separated by `;`, no trailing semicolon.
pub fn ensure_table_sql(schema: &str, table: &str) -> String {
    format!(
        "CREATE SCHEMA IF NOT EXISTS {};\n\
         CREATE TABLE IF NOT EXISTS {} (\n\tid SERIAL PRIMARY KEY,\n\thash text NOT NULL,\n\tcreated_at bigint\n)",
        quote_ident(schema),
        qualified(schema, table)
    )
}

/// The row drizzle-orm's migrator writes when it applies `m` (`hash`, `created_at` = `when`), as
/// one statement without a trailing semicolon, to run in the same transaction as the migration.
/// Unlike drizzle's plain INSERT it writes nothing when that exact row is already there, so a
/// re-run never duplicates it. `None` for a migration without a `when` (native layout).
pub fn insert_row_sql(schema: &str, table: &str, m: &Migration) -> Option<String> {
    let when = m.when?;
    Some(format!(
        "INSERT INTO {t} (\"hash\", \"created_at\") SELECT {hash}, {when} \
         WHERE NOT EXISTS (SELECT 1 FROM {t} WHERE hash = {hash} AND created_at = {when})",
        t = qualified(schema, table),
        hash = quote_literal(&m.hash),
    ))
}

/// Deletes the one row of drizzle's table that records `m` (for a rollback): the row with its
/// hash and `when` if there is one, else the newest with its hash, else the newest with its
/// `when` — the order [`match_journal`] matches in. One statement, no trailing semicolon.
pub fn delete_row_sql(schema: &str, table: &str, m: &Migration) -> String {
    let t = qualified(schema, table);
    let hash = quote_literal(&m.hash);
    let Some(when) = m.when else {
        return format!(
            "DELETE FROM {t} WHERE id = (SELECT id FROM {t} WHERE hash = {hash} ORDER BY id DESC LIMIT 1)"
        );
    };
    format!(
        "DELETE FROM {t} WHERE id = (SELECT id FROM {t} WHERE hash = {hash} OR created_at = {when} \
         ORDER BY (hash = {hash} AND created_at = {when}) DESC, (hash = {hash}) DESC, id DESC LIMIT 1)"
    )
}
