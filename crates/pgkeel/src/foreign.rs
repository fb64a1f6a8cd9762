//! Other runners' ledgers: finding the one a database carries, reading what it says ran, matching
//! that with the folder, and the SQL text of the rows each tool writes, so `migrate` can adopt a
//! database another tool built (nothing re-applied) and, with `--keep-ledger-in-step`, keep that
//! tool's table current so the team can switch back.
//!
//! The tables, as each tool creates them on PostgreSQL (verified with dbmate 2.36, sqlx-cli 0.9,
//! Prisma 6.19 and Supabase CLI 2.117, and from golang-migrate 4.19, goose 3.27 and Flyway 13's
//! sources):
//!
//! | tool | table | what says "applied" |
//! |---|---|---|
//! | golang-migrate | `schema_migrations (version bigint, dirty boolean)` | one row: everything up to `version`; `dirty` = failed halfway |
//! | dbmate | `schema_migrations (version varchar)` | a row per version |
//! | goose | `goose_db_version (id, version_id, is_applied, tstamp)` | the newest row per version (version 0 is goose's own) |
//! | sqlx | `_sqlx_migrations (version, description, installed_on, success, checksum bytea, execution_time)` | a row with `success`; checksum = SHA-384 of the file |
//! | Prisma | `_prisma_migrations (id, checksum, finished_at, migration_name, logs, rolled_back_at, …)` | `finished_at` set, `rolled_back_at` not; checksum = SHA-256 of the file |
//! | Supabase CLI | `supabase_migrations.schema_migrations (version, statements, name)` | a row per version |
//! | Flyway | `flyway_schema_history (installed_rank, version, …, checksum int, success)` | `success` rows of type SQL, and a BASELINE row; checksum = CRC32 of the lines |
//!
//! This module decides nothing about what to apply and never writes pgkeel's ledger: it reads
//! ([`find`]), matches ([`adopt`], pure) and writes SQL text ([`Found::applied_sql`],
//! [`Found::reverted_sql`], [`Found::ensure_sql`]) for `migrate` and `rollback` to run inside
//! their own transactions.

use serde::Serialize;
use sha2::{Digest, Sha384};
use tokio_postgres::Client;

use crate::db::DbError;
use crate::ident::{qualified, quote_ident, quote_literal};
use crate::layout::Layout;
use crate::source::{Migration, MigrationSet};

/// A migration runner whose ledger pgkeel adopts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Tool {
    GolangMigrate,
    Dbmate,
    Goose,
    Sqlx,
    Prisma,
    Supabase,
    Flyway,
}

impl Tool {
    /// The tool's name as its users write it.
    pub fn name(self) -> &'static str {
        match self {
            Tool::GolangMigrate => "golang-migrate",
            Tool::Dbmate => "dbmate",
            Tool::Goose => "goose",
            Tool::Sqlx => "sqlx",
            Tool::Prisma => "Prisma Migrate",
            Tool::Supabase => "Supabase CLI",
            Tool::Flyway => "Flyway",
        }
    }

    /// Where the tool keeps its ledger by default: a fixed schema, or `None` for the first
    /// schema of the search path (where the tool creates it).
    fn default_table(self) -> (Option<&'static str>, &'static str) {
        match self {
            Tool::GolangMigrate | Tool::Dbmate => (None, "schema_migrations"),
            Tool::Goose => (None, "goose_db_version"),
            Tool::Sqlx => (None, "_sqlx_migrations"),
            Tool::Prisma => (None, "_prisma_migrations"),
            Tool::Supabase => (Some("supabase_migrations"), "schema_migrations"),
            Tool::Flyway => (None, "flyway_schema_history"),
        }
    }

    /// Columns the tool's table has (and another tool's table of the same name lacks).
    fn columns(self) -> &'static [&'static str] {
        match self {
            Tool::GolangMigrate => &["version", "dirty"],
            Tool::Dbmate => &["version"],
            Tool::Goose => &["version_id", "is_applied"],
            Tool::Sqlx => &["version", "success", "checksum"],
            Tool::Prisma => &[
                "migration_name",
                "checksum",
                "finished_at",
                "rolled_back_at",
            ],
            Tool::Supabase => &["version"],
            Tool::Flyway => &["installed_rank", "version", "script", "checksum", "success"],
        }
    }

    /// Columns that tell this tool's table from another's of the same name.
    fn lacks(self) -> &'static [&'static str] {
        match self {
            Tool::Dbmate => &["dirty"],
            _ => &[],
        }
    }

    /// The tools whose ledger a folder of `layout` may come with, most likely first.
    pub fn for_layout(layout: Layout) -> &'static [Tool] {
        match layout {
            Layout::GolangMigrate => &[Tool::GolangMigrate, Tool::Sqlx],
            Layout::Sqlx => &[Tool::Sqlx],
            Layout::Supabase | Layout::Native => &[Tool::Supabase, Tool::Sqlx],
            Layout::Dbmate => &[Tool::Dbmate],
            Layout::Goose => &[Tool::Goose],
            Layout::Flyway => &[Tool::Flyway],
            Layout::Prisma => &[Tool::Prisma],
            Layout::DrizzleJournal | Layout::DrizzleFolders => &[],
        }
    }

    /// The tool whose ledger `--keep-ledger-in-step` creates for a folder of `layout` when the
    /// database has none yet.
    pub fn of_layout(layout: Layout) -> Option<Tool> {
        match layout {
            Layout::GolangMigrate => Some(Tool::GolangMigrate),
            Layout::Sqlx => Some(Tool::Sqlx),
            Layout::Supabase => Some(Tool::Supabase),
            Layout::Dbmate => Some(Tool::Dbmate),
            Layout::Goose => Some(Tool::Goose),
            Layout::Flyway => Some(Tool::Flyway),
            Layout::Prisma => Some(Tool::Prisma),
            _ => None,
        }
    }

    /// Versions compare as numbers for these tools (`0001` is version 1).
    fn numeric(self) -> bool {
        matches!(self, Tool::GolangMigrate | Tool::Goose | Tool::Sqlx)
    }
}

impl std::fmt::Display for Tool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What is wrong with another tool's ledger: pgkeel refuses to adopt it until it is mended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ForeignError {
    /// The tool recorded a migration that failed halfway (golang-migrate `dirty`, Prisma's
    /// unfinished row, sqlx/Flyway `success = false`).
    #[error(
        "{tool}'s ledger {table} says migration {version} failed halfway, so the database may hold part of it; {next}, then run pgkeel again",
        next = dirty_next_step(*.tool, .version)
    )]
    Dirty {
        tool: Tool,
        table: String,
        version: String,
    },
    /// The tool recorded a migration the folder does not have.
    #[error(
        "{tool}'s ledger {table} says migration {version} ran, but {dir} has no migration {version}; point --migrations at the folder this database was migrated from (or --layout at its tool), or restore the file"
    )]
    NotInFolder {
        tool: Tool,
        table: String,
        version: String,
        dir: String,
    },
    /// Two tools' ledgers both record migrations of this folder.
    #[error(
        "the database has both {first}'s ledger {first_table} and {second}'s ledger {second_table} with migrations in them; pass --layout with the tool that migrated it last"
    )]
    TwoLedgers {
        first: Tool,
        first_table: String,
        second: Tool,
        second_table: String,
    },
}

fn dirty_next_step(tool: Tool, version: &str) -> String {
    match tool {
        Tool::GolangMigrate => format!(
            "finish or undo what it did by hand and mark it with `migrate force {version}` (or the version before), as golang-migrate requires"
        ),
        Tool::Prisma => format!(
            "finish or undo what it did by hand and mark it with `prisma migrate resolve --applied {version}` (or `--rolled-back`)"
        ),
        Tool::Flyway => "finish or undo what it did by hand and remove the failed row with `flyway repair`".to_owned(),
        _ => format!("finish or undo what it did by hand and delete its row for {version}"),
    }
}

/// A tool's ledger found in the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Found {
    pub tool: Tool,
    pub schema: String,
    pub table: String,
}

impl Found {
    /// The table, quoted and qualified.
    pub fn table_sql(&self) -> String {
        qualified(&self.schema, &self.table)
    }

    /// `schema.table`, for messages.
    pub fn display(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }
}

/// One thing a tool's ledger says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// golang-migrate: every migration up to `version` ran (`dirty`: the last failed halfway).
    UpTo { version: String, dirty: bool },
    /// Flyway: the database was baselined at `version` (everything up to it counts as applied).
    BaselineAt { version: String },
    /// A migration (a version, a Prisma folder, a Flyway `R__` script's name without `.sql`)
    /// with the checksum the tool stored, if it stores one.
    Row {
        key: String,
        checksum: Option<String>,
        failed: bool,
    },
}

/// The ledger of one of `tools` that holds records, if any. Reads only: safe for dry runs and
/// `status`. Two non-empty ledgers are [`ForeignError::TwoLedgers`].
pub async fn find(
    client: &Client,
    tools: &[Tool],
) -> Result<Option<(Found, Vec<Record>)>, FindError> {
    let mut hit: Option<(Found, Vec<Record>)> = None;
    for &tool in tools {
        let Some(found) = locate(client, tool).await? else {
            continue;
        };
        let records = read(client, &found).await?;
        if records.is_empty() {
            continue;
        }
        if let Some((first, _)) = &hit {
            return Err(FindError::Foreign(ForeignError::TwoLedgers {
                first: first.tool,
                first_table: first.display(),
                second: found.tool,
                second_table: found.display(),
            }));
        }
        hit = Some((found, records));
    }
    Ok(hit)
}

/// [`find`]'s failures: the database's, or the ledgers'.
#[derive(Debug, thiserror::Error)]
pub enum FindError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Foreign(#[from] ForeignError),
}

/// Where `tool`'s table is, when it exists with the tool's columns.
pub async fn locate(client: &Client, tool: Tool) -> Result<Option<Found>, DbError> {
    let (schema, table) = tool.default_table();
    let name = match schema {
        Some(s) => qualified(s, table),
        None => quote_ident(table),
    };
    let row = client
        .query_opt(
            "SELECT n.nspname::text, c.relname::text,
                    array(SELECT attname::text FROM pg_catalog.pg_attribute
                           WHERE attrelid = c.oid AND attnum > 0 AND NOT attisdropped)
               FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
              WHERE c.oid = to_regclass($1)",
            &[&name],
        )
        .await
        .map_err(|e| DbError::query(format!("looking for {tool}'s ledger {table}"), e))?;
    let Some(row) = row else {
        return Ok(None);
    };
    let columns: Vec<String> = row.get(2);
    let has = |c: &str| columns.iter().any(|have| have == c);
    if !tool.columns().iter().all(|c| has(c)) || tool.lacks().iter().any(|c| has(c)) {
        return Ok(None);
    }
    Ok(Some(Found {
        tool,
        schema: row.get(0),
        table: row.get(1),
    }))
}

/// What `found` records, oldest first.
pub async fn read(client: &Client, found: &Found) -> Result<Vec<Record>, DbError> {
    let t = found.table_sql();
    let sql = match found.tool {
        Tool::GolangMigrate => format!("SELECT version::text, dirty, NULL::text FROM {t} LIMIT 1"),
        Tool::Dbmate | Tool::Supabase => {
            format!("SELECT version::text, false, NULL::text FROM {t} ORDER BY version")
        }
        Tool::Goose => format!(
            "SELECT DISTINCT ON (version_id) version_id::text, NOT is_applied, NULL::text
               FROM {t} WHERE version_id <> 0 ORDER BY version_id, id DESC"
        ),
        Tool::Sqlx => format!(
            "SELECT version::text, NOT success, encode(checksum, 'hex') FROM {t} ORDER BY version"
        ),
        Tool::Prisma => format!(
            "SELECT migration_name::text, finished_at IS NULL, checksum::text FROM {t}
              WHERE rolled_back_at IS NULL ORDER BY started_at, migration_name"
        ),
        Tool::Flyway => format!(
            "SELECT coalesce(version::text, regexp_replace(script, '\\.sql$', '')), NOT success,
                    coalesce(checksum::text, ''), type::text
               FROM {t} ORDER BY installed_rank"
        ),
    };
    let rows = client.query(&sql, &[]).await.map_err(|e| {
        DbError::query(
            format!("reading {}'s ledger {}", found.tool, found.display()),
            e,
        )
    })?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let key: String = r.get(0);
        let failed: bool = r.get(1);
        let checksum: Option<String> = r.get(2);
        match found.tool {
            Tool::GolangMigrate => out.push(Record::UpTo {
                version: key,
                dirty: failed,
            }),
            Tool::Goose if failed => {} // an old goose's "rolled back" row
            Tool::Flyway => {
                let kind: String = r.get(3);
                match kind.as_str() {
                    "BASELINE" => out.push(Record::BaselineAt { version: key }),
                    "SCHEMA" => {}
                    "DELETE" | "UNDO_SQL" | "UNDO_SCRIPT" => {
                        out.retain(|rec| !matches!(rec, Record::Row { key: k, .. } if *k == key))
                    }
                    _ => {
                        // A repeatable migration applied again: the newest row counts.
                        out.retain(|rec| !matches!(rec, Record::Row { key: k, .. } if *k == key));
                        out.push(Record::Row {
                            key,
                            checksum: checksum.filter(|c| !c.is_empty()),
                            failed,
                        });
                    }
                }
            }
            _ => out.push(Record::Row {
                key,
                checksum,
                failed,
            }),
        }
    }
    Ok(out)
}

/// What a tool's ledger says about a folder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Adoption {
    /// Folder positions of the migrations the tool applied, with the checksum it stored when
    /// that differs from the file's (the file was edited since it ran).
    pub applied: Vec<(usize, Option<String>)>,
}

/// The key `tool` keeps `m` under, normalised for comparison.
fn key_of(tool: Tool, m: &Migration) -> Option<String> {
    if tool == Tool::Flyway && m.repeatable {
        return Some(m.id.clone());
    }
    let v = match tool {
        Tool::Prisma => m.id.as_str(),
        _ => m.version()?,
    };
    Some(normalise(tool, v))
}

fn normalise(tool: Tool, v: &str) -> String {
    if tool.numeric() {
        let t = v.trim_start_matches('0');
        return if t.is_empty() { "0".into() } else { t.into() };
    }
    if tool == Tool::Flyway && v.starts_with(|c: char| c.is_ascii_digit()) {
        return crate::source::flyway_version_key(v)
            .iter()
            .map(u128::to_string)
            .collect::<Vec<_>>()
            .join(".");
    }
    v.to_owned()
}

/// Orders normalised keys: numbers by value, Flyway versions part by part, others as text.
fn key_order(tool: Tool, a: &str, b: &str) -> std::cmp::Ordering {
    if tool.numeric() {
        return (a.len(), a).cmp(&(b.len(), b));
    }
    if tool == Tool::Flyway {
        return crate::source::flyway_version_key(a).cmp(&crate::source::flyway_version_key(b));
    }
    a.cmp(b)
}

/// The checksum `tool` stores for `m`, and whether `stored` is one of the forms it accepts.
fn checksum_matches(tool: Tool, m: &Migration, stored: &str) -> bool {
    match tool {
        Tool::Sqlx => hex::encode(Sha384::digest(m.sql.as_bytes())) == stored,
        Tool::Prisma => {
            // Prisma compares with the file as is, and with its line endings switched.
            let lf = m.sql.replace("\r\n", "\n");
            let crlf = lf.replace('\n', "\r\n");
            [
                m.hash.clone(),
                crate::source::sha256_hex(lf.as_bytes()),
                crate::source::sha256_hex(crlf.as_bytes()),
            ]
            .iter()
            .any(|h| h == stored)
        }
        Tool::Flyway => flyway_checksum(&m.sql).to_string() == stored,
        _ => true,
    }
}

/// Flyway's checksum: CRC32 over the file's lines without their line breaks (a BOM dropped),
/// as a signed 32-bit number.
pub fn flyway_checksum(text: &str) -> i32 {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut h = crc32fast::Hasher::new();
    let mut rest = text;
    while !rest.is_empty() {
        let end = rest.find(['\n', '\r']).unwrap_or(rest.len());
        h.update(&rest.as_bytes()[..end]);
        rest = &rest[end..];
        if rest.starts_with("\r\n") {
            rest = &rest[2..];
        } else if !rest.is_empty() {
            rest = &rest[1..];
        }
    }
    h.finalize() as i32
}

/// Matches what `found`'s ledger says with the folder: which migrations it applied (and which
/// of them were edited since), or why it cannot be trusted. Pure.
pub fn adopt(
    found: &Found,
    records: &[Record],
    set: &MigrationSet,
) -> Result<Adoption, ForeignError> {
    let tool = found.tool;
    let keys: Vec<Option<String>> = set.migrations.iter().map(|m| key_of(tool, m)).collect();
    let position = |key: &str| keys.iter().position(|k| k.as_deref() == Some(key));
    let not_in_folder = |version: &str| ForeignError::NotInFolder {
        tool,
        table: found.display(),
        version: version.to_owned(),
        dir: set.dir.display().to_string(),
    };
    let mut applied: Vec<(usize, Option<String>)> = Vec::new();
    let up_to_all = |limit: &str, applied: &mut Vec<(usize, Option<String>)>| {
        for (i, k) in keys.iter().enumerate() {
            let versioned = !set.migrations[i].repeatable;
            if let (true, Some(k)) = (versioned, k) {
                if key_order(tool, k, limit) != std::cmp::Ordering::Greater
                    && !applied.iter().any(|(j, _)| *j == i)
                {
                    applied.push((i, None));
                }
            }
        }
    };
    for rec in records {
        match rec {
            Record::UpTo { version, dirty } => {
                if *dirty {
                    return Err(ForeignError::Dirty {
                        tool,
                        table: found.display(),
                        version: version.clone(),
                    });
                }
                let v = normalise(tool, version);
                if position(&v).is_none() {
                    return Err(not_in_folder(version));
                }
                up_to_all(&v, &mut applied);
            }
            Record::BaselineAt { version } => up_to_all(&normalise(tool, version), &mut applied),
            Record::Row {
                key,
                checksum,
                failed,
            } => {
                if *failed {
                    return Err(ForeignError::Dirty {
                        tool,
                        table: found.display(),
                        version: key.clone(),
                    });
                }
                let k = normalise(tool, key);
                let Some(i) = position(&k) else {
                    return Err(not_in_folder(key));
                };
                let m = &set.migrations[i];
                let edited = checksum
                    .as_deref()
                    .filter(|c| !checksum_matches(tool, m, c))
                    .map(|c| format!("{}:{c}", tool_slug(tool)));
                if m.repeatable && edited.is_some() {
                    continue; // Flyway re-applies a changed repeatable migration: pending.
                }
                applied.retain(|(j, _)| *j != i);
                applied.push((i, edited));
            }
        }
    }
    applied.sort_by_key(|(i, _)| *i);
    Ok(Adoption { applied })
}

fn tool_slug(tool: Tool) -> &'static str {
    match tool {
        Tool::GolangMigrate => "golang-migrate",
        Tool::Dbmate => "dbmate",
        Tool::Goose => "goose",
        Tool::Sqlx => "sqlx-sha384",
        Tool::Prisma => "prisma-sha256",
        Tool::Supabase => "supabase",
        Tool::Flyway => "flyway-crc32",
    }
}

/// sqlx's description: the file name after the version, `_` read as a space.
fn description(m: &Migration) -> String {
    let rest = match m.id.split_once('_') {
        Some((_, r)) => r,
        None => m.id.as_str(),
    };
    let rest = rest.strip_prefix('_').unwrap_or(rest); // Flyway's `__`
    rest.replace('_', " ")
}

fn version_lit(tool: Tool, m: &Migration) -> String {
    let v = m.version().unwrap_or_default();
    if tool.numeric() {
        normalise(tool, v)
    } else {
        quote_literal(v)
    }
}

impl Found {
    /// Creates the tool's table (and schema) as the tool itself does, for
    /// `--keep-ledger-in-step` on a database that has none yet. Statements end in `;\n`.
    pub fn ensure_sql(&self) -> String {
        let s = quote_ident(&self.schema);
        let t = self.table_sql();
        let body = match self.tool {
            Tool::GolangMigrate => {
                format!("CREATE TABLE IF NOT EXISTS {t} (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL);\n")
            }
            Tool::Dbmate => format!("CREATE TABLE IF NOT EXISTS {t} (version varchar PRIMARY KEY);\n"),
            Tool::Goose => format!(
                "CREATE TABLE IF NOT EXISTS {t} (id integer PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, \
                 version_id bigint NOT NULL, is_applied boolean NOT NULL, tstamp timestamp NOT NULL DEFAULT now());\n\
                 INSERT INTO {t} (version_id, is_applied) SELECT 0, true WHERE NOT EXISTS (SELECT 1 FROM {t});\n"
            ),
            Tool::Sqlx => format!(
                "CREATE TABLE IF NOT EXISTS {t} (version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
                 installed_on TIMESTAMPTZ NOT NULL DEFAULT now(), success BOOLEAN NOT NULL, \
                 checksum BYTEA NOT NULL, execution_time BIGINT NOT NULL);\n"
            ),
            Tool::Prisma => format!(
                "CREATE TABLE IF NOT EXISTS {t} (id VARCHAR(36) PRIMARY KEY NOT NULL, checksum VARCHAR(64) NOT NULL, \
                 finished_at TIMESTAMPTZ, migration_name VARCHAR(255) NOT NULL, logs TEXT, rolled_back_at TIMESTAMPTZ, \
                 started_at TIMESTAMPTZ NOT NULL DEFAULT now(), applied_steps_count INTEGER NOT NULL DEFAULT 0);\n"
            ),
            Tool::Supabase => format!(
                "CREATE TABLE IF NOT EXISTS {t} (version text NOT NULL PRIMARY KEY);\n\
                 ALTER TABLE {t} ADD COLUMN IF NOT EXISTS statements text[];\n\
                 ALTER TABLE {t} ADD COLUMN IF NOT EXISTS name text;\n"
            ),
            Tool::Flyway => format!(
                "CREATE TABLE IF NOT EXISTS {t} (installed_rank INT NOT NULL PRIMARY KEY, version VARCHAR(50), \
                 description VARCHAR(200) NOT NULL, type VARCHAR(20) NOT NULL, script VARCHAR(1000) NOT NULL, \
                 checksum INTEGER, installed_by VARCHAR(100) NOT NULL, installed_on TIMESTAMP NOT NULL DEFAULT now(), \
                 execution_time INTEGER NOT NULL, success BOOLEAN NOT NULL);\n\
                 CREATE INDEX IF NOT EXISTS {idx} ON {t} (success);\n",
                idx = quote_ident(&format!("{}_s_idx", self.table))
            ),
        };
        format!("CREATE SCHEMA IF NOT EXISTS {s};\n{body}")
    }

    /// The row the tool writes when it applies `m` (`statements`: the statements' texts, which
    /// the Supabase CLI keeps). Writes nothing when the tool already counts `m` as applied, so
    /// a re-run never duplicates it. Statements end in `;\n`.
    pub fn applied_sql(&self, m: &Migration, statements: &[&str]) -> String {
        let t = self.table_sql();
        let v = version_lit(self.tool, m);
        match self.tool {
            Tool::GolangMigrate => format!(
                "INSERT INTO {t} (version, dirty) SELECT {v}, false WHERE NOT EXISTS (SELECT 1 FROM {t} WHERE version >= {v});\n\
                 DELETE FROM {t} WHERE version < (SELECT max(version) FROM {t});\n"
            ),
            Tool::Dbmate => format!("INSERT INTO {t} (version) VALUES ({v}) ON CONFLICT DO NOTHING;\n"),
            Tool::Goose => format!(
                "INSERT INTO {t} (version_id, is_applied) SELECT {v}, true \
                 WHERE NOT coalesce((SELECT is_applied FROM {t} WHERE version_id = {v} ORDER BY id DESC LIMIT 1), false);\n"
            ),
            Tool::Sqlx => format!(
                "INSERT INTO {t} (version, description, success, checksum, execution_time) \
                 VALUES ({v}, {d}, true, '\\x{c}'::bytea, 0) \
                 ON CONFLICT (version) DO UPDATE SET success = true, checksum = EXCLUDED.checksum;\n",
                d = quote_literal(&description(m)),
                c = hex::encode(Sha384::digest(m.sql.as_bytes())),
            ),
            Tool::Prisma => format!(
                "INSERT INTO {t} (id, checksum, finished_at, migration_name, logs, rolled_back_at, started_at, applied_steps_count) \
                 SELECT md5(random()::text || clock_timestamp()::text)::uuid::text, {c}, now(), {n}, NULL, NULL, now(), 1 \
                 WHERE NOT EXISTS (SELECT 1 FROM {t} WHERE migration_name = {n} AND finished_at IS NOT NULL AND rolled_back_at IS NULL);\n",
                c = quote_literal(&m.hash),
                n = quote_literal(&m.id),
            ),
            Tool::Supabase => format!(
                "INSERT INTO {t} (version, name, statements) VALUES ({v}, {n}, {s}) ON CONFLICT (version) DO NOTHING;\n",
                n = quote_literal(m.id.split_once('_').map_or("", |(_, r)| r)),
                s = text_array(statements),
            ),
            Tool::Flyway => {
                let script = m
                    .path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let version = if m.repeatable {
                    "NULL".to_owned()
                } else {
                    quote_literal(&m.version().unwrap_or_default().replace('_', "."))
                };
                let checksum = flyway_checksum(&m.sql);
                let exists = if m.repeatable {
                    format!("script = {} AND checksum = {checksum}", quote_literal(&script))
                } else {
                    format!("version = {version}")
                };
                format!(
                    "INSERT INTO {t} (installed_rank, version, description, type, script, checksum, installed_by, execution_time, success) \
                     SELECT coalesce((SELECT max(installed_rank) FROM {t}), 0) + 1, {version}, {d}, 'SQL', {s}, {checksum}, current_user, 0, true \
                     WHERE NOT EXISTS (SELECT 1 FROM {t} WHERE success AND {exists});\n",
                    d = quote_literal(&description(m)),
                    s = quote_literal(&script),
                )
            }
        }
    }

    /// What the tool writes when `m` is rolled back (`before`: the migration before it in the
    /// folder, which golang-migrate's one row then names). Statements end in `;\n`.
    pub fn reverted_sql(&self, m: &Migration, before: Option<&Migration>) -> String {
        let t = self.table_sql();
        let v = version_lit(self.tool, m);
        match self.tool {
            Tool::GolangMigrate => {
                let prev = before.map_or(String::new(), |p| {
                    format!(
                        "INSERT INTO {t} (version, dirty) SELECT {}, false WHERE NOT EXISTS (SELECT 1 FROM {t});\n",
                        version_lit(self.tool, p)
                    )
                });
                format!("DELETE FROM {t} WHERE version = {v};\n{prev}")
            }
            Tool::Dbmate | Tool::Sqlx | Tool::Supabase => {
                format!("DELETE FROM {t} WHERE version = {v};\n")
            }
            Tool::Goose => format!("DELETE FROM {t} WHERE version_id = {v};\n"),
            Tool::Prisma => format!(
                "UPDATE {t} SET rolled_back_at = now() WHERE migration_name = {} AND rolled_back_at IS NULL;\n",
                quote_literal(&m.id)
            ),
            Tool::Flyway => format!(
                "DELETE FROM {t} WHERE version = {};\n",
                quote_literal(&m.version().unwrap_or_default().replace('_', "."))
            ),
        }
    }
}

fn text_array(items: &[&str]) -> String {
    if items.is_empty() {
        return "NULL::text[]".into();
    }
    format!(
        "ARRAY[{}]::text[]",
        items
            .iter()
            .map(|s| quote_literal(s))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Where `--keep-ledger-in-step` writes for a folder of `layout` on a database that has no
/// ledger of its tool yet: the tool's default place (the search path's first schema resolved
/// by the server).
pub async fn default_place(client: &Client, layout: Layout) -> Result<Option<Found>, DbError> {
    let Some(tool) = Tool::of_layout(layout) else {
        return Ok(None);
    };
    let (schema, table) = tool.default_table();
    let schema = match schema {
        Some(s) => s.to_owned(),
        None => client
            .query_one("SELECT coalesce(current_schema(), 'public')::text", &[])
            .await
            .map_err(|e| DbError::query("reading the current schema", e))?
            .get(0),
    };
    Ok(Some(Found {
        tool,
        schema,
        table: table.to_owned(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flyway_checksum_ignores_line_breaks_and_the_bom() {
        // Vectors from Flyway's algorithm (CRC32 of the lines, nothing between them).
        let sql = "CREATE TABLE widget (id serial PRIMARY KEY, name text NOT NULL);";
        assert_eq!(flyway_checksum(sql), 27445370);
        assert_eq!(flyway_checksum(&format!("{sql}\r\n")), 27445370);
        assert_eq!(flyway_checksum(&format!("\u{feff}{sql}\n")), 27445370);
        assert_eq!(flyway_checksum("a\nb\n"), flyway_checksum("ab"));
        assert_eq!(flyway_checksum("ab"), -1635563411);
    }

    #[test]
    fn numeric_versions_compare_as_numbers() {
        assert_eq!(normalise(Tool::GolangMigrate, "0001"), "1");
        assert_eq!(normalise(Tool::GolangMigrate, "000"), "0");
        assert_eq!(key_order(Tool::Goose, "9", "10"), std::cmp::Ordering::Less);
        assert_eq!(normalise(Tool::Dbmate, "0001"), "0001");
        assert_eq!(normalise(Tool::Flyway, "1.0"), "1");
    }
}
