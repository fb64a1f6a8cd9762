//! Migration folders: reading one into an ordered list of [`Migration`]s, and creating new
//! migration files (`pgkeel new`).
//!
//! This module owns:
//! - layout detection ([`Layout`]): a drizzle-kit journal (`meta/_journal.json` + `NNNN_tag.sql`),
//!   drizzle v1 folders (`YYYYMMDDHHMMSS_name/migration.sql`) or pgkeel's native
//!   `NNNN_descriptive_name.sql` files;
//! - ordering, ids and the folder's consistency (journal entry without file, stray files,
//!   duplicate ids, rollback files without their migration);
//! - hashing: drizzle-orm's exact hash ([`Migration::hash`]) and a normalised one that ignores
//!   cosmetic edits ([`Migration::normalized_hash`]);
//! - rollback files ([`DownFile`]) and the leading `-- pgkeel:` directives ([`Directives`]);
//! - drizzle's `--> statement-breakpoint` chunks, with byte offsets back into the file
//!   ([`Migration::chunks`], [`crate::location::line_col`]).
//!
//! It must not touch the database and must not parse SQL: statements are split and classified by
//! the `sql` module (pg_query). Loading is one read and one SHA-256 pass per file (plus the
//! normalised hash), linear in the number and size of files, so folders with thousands of
//! migrations load in milliseconds.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::location::line_col;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The line drizzle writes between statements. drizzle-orm splits a file on every occurrence of
/// this text (not only on whole lines: drizzle-kit writes `...;--> statement-breakpoint`).
pub const BREAKPOINT: &str = "--> statement-breakpoint";

/// Path of the drizzle-kit journal inside a migration folder.
pub const JOURNAL_PATH: &str = "meta/_journal.json";

const DIRECTIVE_HELP: &str = "-- pgkeel:no-transaction, -- pgkeel:lock-timeout DURATION, \
     -- pgkeel:statement-timeout DURATION, -- pgkeel:retries N, -- pgkeel:irreversible \
     (DURATION: 500ms, 5s, 2min, 1h, or 0/off to disable)";

const NATIVE_RULE: &str = "NNNN_descriptive_name.sql: 4 or more digits, an underscore, then \
     lowercase letters, digits and underscores (rollback: NNNN_descriptive_name.down.sql)";

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Everything that can go wrong while reading or writing a migration folder.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The migration folder does not exist.
    #[error(
        "migration folder {} does not exist; pass --migrations DIR or create it with `pgkeel new NAME`",
        .path.display()
    )]
    NotFound { path: PathBuf },

    /// The migration path exists but is a file.
    #[error(
        "{} is a file, not a migration folder; pass --migrations DIR with the folder that holds the migrations",
        .path.display()
    )]
    NotADirectory { path: PathBuf },

    /// A file or folder could not be read.
    #[error("cannot read {}: {error}; check that it exists and that pgkeel may read it", .path.display())]
    Io { path: PathBuf, error: io::Error },

    /// A file or folder could not be written (`pgkeel new`).
    #[error("cannot write {}: {error}; check that the folder exists and is writable", .path.display())]
    Write { path: PathBuf, error: io::Error },

    /// `meta/_journal.json` is not valid JSON or lacks drizzle's fields.
    #[error(
        "{}:{line}:{column}: malformed drizzle journal: {reason}; fix the JSON by hand or regenerate it with drizzle-kit",
        .path.display()
    )]
    MalformedJournal {
        path: PathBuf,
        line: usize,
        column: usize,
        reason: String,
    },

    /// The journal belongs to another database (`"dialect": "mysql"`, `"sqlite"`, ...).
    #[error(
        "{}: dialect \"{dialect}\" is not PostgreSQL (expected \"postgresql\" or \"pg\"); point --migrations at your PostgreSQL migration folder",
        .path.display()
    )]
    UnsupportedDialect { path: PathBuf, dialect: String },

    /// A journal tag that cannot name a file beside the journal (empty, a path, hidden).
    #[error(
        "{}: entry {idx} has tag {tag:?}, which is not a file name; restore the tag drizzle-kit generated (like 0000_brave_hulk)",
        .journal.display()
    )]
    BadJournalTag {
        journal: PathBuf,
        idx: usize,
        tag: String,
    },

    /// The same tag appears twice in the journal.
    #[error(
        "{}: tag {tag} appears twice (entries {first_idx} and {second_idx}); remove the duplicate entry",
        .journal.display()
    )]
    DuplicateJournalTag {
        journal: PathBuf,
        tag: String,
        first_idx: usize,
        second_idx: usize,
    },

    /// A journal entry whose `<tag>.sql` file is missing.
    #[error(
        "journal entry {tag} has no migration file {}; restore the file or remove the entry from {}",
        .expected.display(), .journal.display()
    )]
    MissingMigrationFile {
        tag: String,
        expected: PathBuf,
        journal: PathBuf,
    },

    /// Two migration files claim the same id (native: the same number).
    #[error(
        "migration number {id} is used by both {} and {}; renumber or delete one of them",
        .first.display(), .second.display()
    )]
    DuplicateId {
        id: String,
        first: PathBuf,
        second: PathBuf,
    },

    /// A migration or rollback file is not UTF-8. `line`/`column` locate the first bad byte
    /// (column counted in characters, 1-based), `byte_offset` is its 0-based offset in the file.
    #[error(
        "{}:{line}:{column}: invalid UTF-8 at byte {byte_offset}; re-save the file as UTF-8",
        .path.display()
    )]
    InvalidUtf8 {
        path: PathBuf,
        line: usize,
        column: usize,
        byte_offset: usize,
    },

    /// A `.sql` file in a native folder that does not follow the naming rule.
    #[error(
        "{} does not follow the migration naming rule {rule}; rename it, or create migrations with `pgkeel new NAME`",
        .path.display(), rule = NATIVE_RULE
    )]
    BadFileName { path: PathBuf },

    /// A rollback file whose migration does not exist.
    #[error(
        "rollback {} has no migration {}; rename it to match its migration or delete it",
        .path.display(), .expected_up.display()
    )]
    DownWithoutUp { path: PathBuf, expected_up: PathBuf },

    /// A drizzle v1 migration folder without `migration.sql`.
    #[error(
        "migration folder {} has no migration.sql; add {} or delete the folder",
        .folder.display(), .expected.display()
    )]
    MissingFolderMigration { folder: PathBuf, expected: PathBuf },

    /// A drizzle v1 folder whose 14-digit prefix is not a valid date and time.
    #[error(
        "{}: {timestamp} is not a valid YYYYMMDDHHMMSS UTC timestamp; rename the folder with a real date",
        .folder.display()
    )]
    BadFolderTimestamp { folder: PathBuf, timestamp: String },

    /// A `-- pgkeel:` directive that is unknown, misplaced or has a bad value.
    #[error(
        "{}:{line}: {problem} in `{text}`; valid directives (in the leading comment lines): {help}",
        .path.display(), help = DIRECTIVE_HELP
    )]
    BadDirective {
        path: PathBuf,
        line: usize,
        text: String,
        problem: DirectiveProblem,
    },

    /// A migration marked `-- pgkeel:irreversible` that also has a rollback file.
    #[error(
        "{} declares -- pgkeel:irreversible but has the rollback {}; delete the rollback or remove the directive",
        .path.display(), .down.display()
    )]
    IrreversibleWithDown { path: PathBuf, down: PathBuf },

    /// `pgkeel new NAME` with an unusable name.
    #[error(
        "invalid migration name {name:?}: {problem}; use letters, digits, spaces, dashes or underscores, like \"add users table\""
    )]
    BadMigrationName { name: String, problem: NameProblem },

    /// `pgkeel new` would overwrite an existing file or journal entry.
    #[error("{} already exists and pgkeel new never overwrites; pick another name", .path.display())]
    AlreadyExists { path: PathBuf },
}

/// What is wrong with a `-- pgkeel:` directive line.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DirectiveProblem {
    /// `-- pgkeel:xyz` with an unknown name.
    Unknown { name: String },
    /// A directive that needs a value (`lock-timeout`, `statement-timeout`, `retries`) has none.
    MissingValue { name: String },
    /// A flag directive (`no-transaction`, `irreversible`) was given a value.
    UnexpectedValue { name: String },
    /// The value does not parse (a duration or a count).
    BadValue { name: String, value: String },
    /// The directive appears twice.
    Duplicate { name: String },
    /// The directive comes after the first SQL line, where it would be silently ignored.
    NotInHeader,
    /// `irreversible` in a rollback file.
    NotAllowedInDown { name: String },
}

impl fmt::Display for DirectiveProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unknown { name } => write!(f, "unknown directive pgkeel:{name}"),
            Self::MissingValue { name } => write!(f, "directive pgkeel:{name} needs a value"),
            Self::UnexpectedValue { name } => {
                write!(f, "directive pgkeel:{name} takes no value")
            }
            Self::BadValue { name, value } => {
                write!(f, "bad value {value:?} for directive pgkeel:{name}")
            }
            Self::Duplicate { name } => write!(f, "directive pgkeel:{name} is given twice"),
            Self::NotInHeader => f.write_str(
                "directive after the first SQL line (move it above the first statement)",
            ),
            Self::NotAllowedInDown { name } => {
                write!(
                    f,
                    "directive pgkeel:{name} makes no sense in a rollback file"
                )
            }
        }
    }
}

/// What is wrong with a name given to `pgkeel new`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameProblem {
    /// Nothing usable is left once spaces, dashes and underscores are trimmed.
    Empty,
    /// A character outside letters, digits, spaces, dashes and underscores.
    BadChar(char),
}

impl fmt::Display for NameProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("it is empty"),
            Self::BadChar(c) => write!(f, "it contains {c:?}"),
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SourceError + '_ {
    move |error| SourceError::Io {
        path: path.to_path_buf(),
        error,
    }
}

fn write_err(path: &Path) -> impl FnOnce(io::Error) -> SourceError + '_ {
    move |error| SourceError::Write {
        path: path.to_path_buf(),
        error,
    }
}

// ---------------------------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------------------------

/// How a migration folder is organised. Detected by [`detect_layout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// drizzle-kit: `meta/_journal.json` lists `NNNN_tag.sql` files beside it.
    DrizzleJournal,
    /// drizzle v1: one folder per migration, `YYYYMMDDHHMMSS_name/migration.sql`.
    DrizzleFolders,
    /// pgkeel's own: `NNNN_descriptive_name.sql` with optional `NNNN_descriptive_name.down.sql`.
    Native,
}

impl Layout {
    /// The kebab-case name used in JSON and config (`drizzle-journal`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DrizzleJournal => "drizzle-journal",
            Self::DrizzleFolders => "drizzle-folders",
            Self::Native => "native",
        }
    }

    /// Whether files are split on [`BREAKPOINT`] like drizzle-orm does (the drizzle layouts).
    pub fn splits_on_breakpoints(self) -> bool {
        matches!(self, Self::DrizzleJournal | Self::DrizzleFolders)
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rollback file: `NNNN_name.down.sql` (native), `<tag>.down.sql` beside a drizzle journal
/// (pgkeel extension) or `down.sql` in a drizzle v1 folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DownFile {
    pub path: PathBuf,
    /// The file's text, exactly as read.
    pub sql: String,
    /// Lowercase hex SHA-256 of the file's bytes.
    pub hash: String,
    /// Directives of the rollback itself (for example `no-transaction` for
    /// `DROP INDEX CONCURRENTLY`); `irreversible` is refused here.
    pub directives: Directives,
}

/// One migration, read from its folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Migration {
    /// The drizzle tag / folder name / native file stem, e.g. `0003_add_indexes`.
    pub id: String,
    /// 0-based position in the folder's order.
    pub index: usize,
    /// The migration's SQL file.
    pub path: PathBuf,
    /// drizzle's `when` (journal entry, or the v1 folder's timestamp) in epoch milliseconds;
    /// `None` for native migrations.
    pub when: Option<i64>,
    /// The file's text, exactly as read (BOM and CRLFs included).
    pub sql: String,
    /// drizzle-orm's hash: lowercase hex SHA-256 of the file's bytes.
    pub hash: String,
    /// The journal entry's `breakpoints` flag; `true` for the other layouts.
    pub breakpoints: bool,
    /// The layout the migration was read from (decides how [`Migration::chunks`] splits).
    pub layout: Layout,
    /// The rollback file, if any.
    pub down: Option<DownFile>,
    /// The leading `-- pgkeel:` directives.
    pub directives: Directives,
}

/// A piece of a migration file that is sent to the server as one query string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Chunk<'a> {
    /// The text, exactly as in the file (drizzle runs it as-is).
    pub text: &'a str,
    /// Byte offset of `text` in the file ([`Migration::sql`]).
    pub offset: usize,
}

impl Chunk<'_> {
    /// Byte offset in the file of the 1-based character `position` inside this chunk, as
    /// PostgreSQL reports it in an error's `position`. Past the end maps to the chunk's end.
    /// Feed the result to [`crate::location::line_col`] with [`Migration::sql`].
    pub fn file_offset(&self, position: usize) -> usize {
        let within = self
            .text
            .char_indices()
            .nth(position.saturating_sub(1))
            .map_or(self.text.len(), |(i, _)| i);
        self.offset + within
    }

    /// Whether the chunk holds nothing but whitespace.
    pub fn is_blank(&self) -> bool {
        self.text.trim().is_empty()
    }
}

impl Migration {
    /// SHA-256 of the text after [`normalized_hash`]'s cosmetic normalisation. Computed on
    /// demand: only a changed file or a migration being recorded needs it, so loading a folder
    /// of 1000 applied migrations hashes each file once.
    pub fn normalized_hash(&self) -> String {
        normalized_hash(&self.sql)
    }

    /// The query strings to run, with their byte offsets in the file.
    ///
    /// Drizzle layouts are split exactly as drizzle-orm 0.45 does: on every occurrence of
    /// [`BREAKPOINT`], whether or not it stands on its own line (drizzle-kit writes
    /// `...;--> statement-breakpoint`) and whatever the journal's `breakpoints` flag says
    /// (drizzle-orm splits regardless). Empty or blank chunks are kept so chunk `i` is drizzle's
    /// statement `i`; see [`Chunk::is_blank`]. Native migrations are one chunk: the `sql` module
    /// splits statements. A leading UTF-8 BOM is left out of the first chunk (PostgreSQL would
    /// reject it), which is the only difference from drizzle-orm.
    pub fn chunks(&self) -> Vec<Chunk<'_>> {
        let start = if self.sql.starts_with('\u{feff}') {
            '\u{feff}'.len_utf8()
        } else {
            0
        };
        let body = &self.sql[start..];
        if !self.layout.splits_on_breakpoints() {
            return vec![Chunk {
                text: body,
                offset: start,
            }];
        }
        let mut chunks = Vec::new();
        let mut offset = start;
        for text in body.split(BREAKPOINT) {
            chunks.push(Chunk { text, offset });
            offset += text.len() + BREAKPOINT.len();
        }
        chunks
    }

    /// Whether the migration has a rollback file.
    pub fn has_down(&self) -> bool {
        self.down.is_some()
    }
}

/// A migration folder, read and ordered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigrationSet {
    pub dir: PathBuf,
    pub layout: Layout,
    pub migrations: Vec<Migration>,
    /// Files that look like migrations but will never run (a `.sql` file the drizzle journal
    /// does not list, as drizzle-orm ignores it; a migration folder not named by its
    /// timestamp): reported, not refused.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<FolderWarning>,
}

/// A file in a migration folder that no migration will run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FolderWarning {
    pub path: PathBuf,
    pub kind: FolderWarningKind,
}

/// Why a [`FolderWarning`]'s file never runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FolderWarningKind {
    /// A `NNNN_*.sql` file the drizzle journal does not list.
    NotInJournal,
    /// A `NNNN_*.down.sql` file whose migration the drizzle journal does not list.
    DownNotInJournal,
    /// A folder with a `migration.sql` whose name does not start with `YYYYMMDDHHMMSS_`.
    FolderNameNotATimestamp,
}

impl fmt::Display for FolderWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            FolderWarningKind::NotInJournal => write!(
                f,
                "{} is not listed in the drizzle journal ({JOURNAL_PATH}): drizzle-orm never runs it, \
                 and neither does pgkeel; add it to the journal (drizzle-kit generate does) or delete it",
                self.path.display()
            ),
            FolderWarningKind::DownNotInJournal => write!(
                f,
                "{} is the rollback of a migration the drizzle journal ({JOURNAL_PATH}) does not list: \
                 it is never used; rename it to match its migration or delete it",
                self.path.display()
            ),
            FolderWarningKind::FolderNameNotATimestamp => write!(
                f,
                "{} holds a migration.sql but its name does not start with a 14-digit \
                 YYYYMMDDHHMMSS_ timestamp: pgkeel never runs it; rename the folder",
                self.path.display()
            ),
        }
    }
}

impl MigrationSet {
    /// The migration with this id (tag, folder name or file stem).
    pub fn get(&self, id: &str) -> Option<&Migration> {
        self.migrations.iter().find(|m| m.id == id)
    }

    /// Number of migrations.
    pub fn len(&self) -> usize {
        self.migrations.len()
    }

    /// Whether the folder holds no migration.
    pub fn is_empty(&self) -> bool {
        self.migrations.is_empty()
    }
}

// ---------------------------------------------------------------------------------------------
// Directives
// ---------------------------------------------------------------------------------------------

/// A timeout set by a directive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timeout {
    /// `0` or `off`: no timeout (PostgreSQL's `0`).
    Off,
    /// A positive duration.
    After(Duration),
}

impl Timeout {
    /// `Duration::ZERO` becomes [`Timeout::Off`].
    pub fn from_duration(duration: Duration) -> Self {
        if duration.is_zero() {
            Self::Off
        } else {
            Self::After(duration)
        }
    }

    /// The duration, `Duration::ZERO` for [`Timeout::Off`] (PostgreSQL's meaning of 0).
    pub fn as_duration(self) -> Duration {
        match self {
            Self::Off => Duration::ZERO,
            Self::After(d) => d,
        }
    }

    /// The value for `SET lock_timeout = '...'` / `statement_timeout`: `0` or `NNNms`.
    pub fn pg_value(self) -> String {
        match self {
            Self::Off => "0".to_owned(),
            Self::After(d) => format!("{}ms", d.as_millis()),
        }
    }
}

impl fmt::Display for Timeout {
    /// Canonical directive syntax: `off`, `500ms`, `5s`, `2min`, `1h`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Off => f.write_str("off"),
            Self::After(d) => {
                let ms = d.as_millis();
                if ms % 3_600_000 == 0 {
                    write!(f, "{}h", ms / 3_600_000)
                } else if ms % 60_000 == 0 {
                    write!(f, "{}min", ms / 60_000)
                } else if ms % 1000 == 0 {
                    write!(f, "{}s", ms / 1000)
                } else {
                    write!(f, "{ms}ms")
                }
            }
        }
    }
}

impl Serialize for Timeout {
    /// Serialised in directive syntax (`"5s"`, `"off"`), which [`crate::duration::parse`] reads back.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Per-migration settings declared in the file's leading comment lines.
///
/// Directives are `--` comment lines at the top of a migration file, before its first line of
/// SQL (blank lines and other comments may come between them). One per line:
///
/// | Directive | Meaning |
/// |---|---|
/// | `-- pgkeel:no-transaction` | Run this migration outside a transaction, statement by statement (needed for `CREATE INDEX CONCURRENTLY`, `REINDEX CONCURRENTLY`, `VACUUM`, ...). |
/// | `-- pgkeel:lock-timeout 5s` | `lock_timeout` for this migration, overriding the configured one; `0` or `off` disables it. |
/// | `-- pgkeel:statement-timeout 2min` | `statement_timeout` for this migration; `0` or `off` disables it. |
/// | `-- pgkeel:retries 3` | How many times to retry the migration after it fails on a lock timeout. |
/// | `-- pgkeel:irreversible` | The migration intentionally has no rollback (no down file may exist). |
///
/// Durations are an integer and a unit, `ms`, `s`, `min` or `h` (`500ms`, `5s`, `2min`, `1h`),
/// or `0`/`off` to disable. An unknown `-- pgkeel:` directive, a bad value, a directive given
/// twice, or a `-- pgkeel:` line after the first SQL line is an error, so a typo never goes
/// unnoticed. Rollback files may carry directives too (except `irreversible`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Directives {
    /// `-- pgkeel:no-transaction`.
    pub no_transaction: bool,
    /// `-- pgkeel:lock-timeout D`; `None` = not set (use the configured default).
    pub lock_timeout: Option<Timeout>,
    /// `-- pgkeel:statement-timeout D`; `None` = not set (use the configured default).
    pub statement_timeout: Option<Timeout>,
    /// `-- pgkeel:retries N`; `None` = not set.
    pub retries: Option<u32>,
    /// `-- pgkeel:irreversible`.
    pub irreversible: bool,
}

/// Splits text into lines the way editors number them (`\n`, with a `\r` before it dropped).
fn numbered_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .enumerate()
        .map(|(i, l)| (i + 1, l))
}

/// The `-- pgkeel:` directives at the top of a migration file's `text` (lint suppressions,
/// `ignore` / `ignore-file`, are skipped here: the `lint` module reads them).
pub fn directives_of(path: &Path, text: &str) -> Result<Directives, SourceError> {
    parse_directives(path, text, false)
}

fn parse_directives(path: &Path, text: &str, is_down: bool) -> Result<Directives, SourceError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut d = Directives::default();
    let mut in_header = true;
    let mut seen: Vec<&str> = Vec::new();
    for (line_no, line) in numbered_lines(text) {
        let trimmed = line.trim();
        let comment = trimmed.strip_prefix("--").map(str::trim_start);
        if in_header && trimmed.is_empty() {
            continue;
        }
        if comment.is_none() {
            in_header = false;
            continue;
        }
        let Some(rest) = comment.and_then(|c| c.strip_prefix("pgkeel:")) else {
            continue;
        };
        let err = |problem| SourceError::BadDirective {
            path: path.to_path_buf(),
            line: line_no,
            text: trimmed.to_owned(),
            problem,
        };
        let rest = rest.trim();
        let (name, value) = match rest.find(char::is_whitespace) {
            Some(i) => (&rest[..i], rest[i..].trim()),
            None => (rest, ""),
        };
        // Lint suppressions may stand anywhere and repeat; the `lint` module checks them.
        if matches!(name, "ignore" | "ignore-file") {
            continue;
        }
        if !in_header {
            return Err(err(DirectiveProblem::NotInHeader));
        }
        let owned = || name.to_owned();
        if seen.contains(&name) {
            return Err(err(DirectiveProblem::Duplicate { name: owned() }));
        }
        let needs_value = matches!(name, "lock-timeout" | "statement-timeout" | "retries");
        let is_flag = matches!(name, "no-transaction" | "irreversible");
        if !needs_value && !is_flag {
            return Err(err(DirectiveProblem::Unknown { name: owned() }));
        }
        if needs_value && value.is_empty() {
            return Err(err(DirectiveProblem::MissingValue { name: owned() }));
        }
        if is_flag && !value.is_empty() {
            return Err(err(DirectiveProblem::UnexpectedValue { name: owned() }));
        }
        let bad_value = || DirectiveProblem::BadValue {
            name: name.to_owned(),
            value: value.to_owned(),
        };
        match name {
            "no-transaction" => d.no_transaction = true,
            "irreversible" if is_down => {
                return Err(err(DirectiveProblem::NotAllowedInDown { name: owned() }));
            }
            "irreversible" => d.irreversible = true,
            "lock-timeout" | "statement-timeout" => {
                let t = crate::duration::parse(value)
                    .map(Timeout::from_duration)
                    .ok_or_else(|| err(bad_value()))?;
                if name == "lock-timeout" {
                    d.lock_timeout = Some(t);
                } else {
                    d.statement_timeout = Some(t);
                }
            }
            _ => {
                // "retries"
                let n: u32 = value.parse().map_err(|_| err(bad_value()))?;
                d.retries = Some(n);
            }
        }
        seen.push(name);
    }
    Ok(d)
}

// ---------------------------------------------------------------------------------------------
// Hashing and positions
// ---------------------------------------------------------------------------------------------

/// Lowercase hex SHA-256 of `bytes`. Of a migration file's bytes, this is drizzle-orm's hash.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// SHA-256 (lowercase hex) of `text` after cosmetic normalisation: a leading BOM removed, CRLF
/// and lone CR turned into LF, trailing whitespace removed from every line, and trailing blank
/// lines (and the final newline) removed. Two files that differ only in line endings, BOM or
/// trailing whitespace have the same normalised hash.
pub fn normalized_hash(text: &str) -> String {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut hasher = Sha256::new();
    let mut emitted = 0usize;
    let mut pending_blank = 0usize;
    let lines = text
        .split('\n')
        .flat_map(|l| l.strip_suffix('\r').unwrap_or(l).split('\r'));
    for line in lines {
        let line = line.trim_end();
        if line.is_empty() {
            pending_blank += 1;
            continue;
        }
        for _ in 0..pending_blank {
            if emitted > 0 {
                hasher.update(b"\n");
            }
            emitted += 1;
        }
        pending_blank = 0;
        if emitted > 0 {
            hasher.update(b"\n");
        }
        hasher.update(line.as_bytes());
        emitted += 1;
    }
    hex::encode(hasher.finalize())
}

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

/// The folder `pgkeel` works on: `explicit` (relative to `cwd`) when given; else `drizzle/`
/// when `drizzle/meta/_journal.json` exists; else `migrations/`.
pub fn resolve_dir(explicit: Option<&Path>, cwd: &Path) -> PathBuf {
    if let Some(dir) = explicit {
        return cwd.join(dir);
    }
    let drizzle = cwd.join("drizzle");
    if drizzle.join(JOURNAL_PATH).is_file() {
        drizzle
    } else {
        cwd.join("migrations")
    }
}

struct Entry {
    name: String,
    path: PathBuf,
    is_dir: bool,
}

/// Lists `dir` without hidden entries, sorted by name.
fn list(dir: &Path) -> Result<Vec<Entry>, SourceError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        // `DirEntry::file_type` comes with the directory listing (no extra syscall) but does
        // not follow symlinks, so only links are stat'ed. A dangling link is listed as a file:
        // it only fails the load if it is read as a migration.
        let is_dir = match entry.file_type() {
            Ok(t) if t.is_symlink() => fs::metadata(&path).is_ok_and(|m| m.is_dir()),
            Ok(t) => t.is_dir(),
            Err(_) => fs::metadata(&path).is_ok_and(|m| m.is_dir()),
        };
        out.push(Entry { name, path, is_dir });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn check_dir(dir: &Path) -> Result<(), SourceError> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(SourceError::NotADirectory {
            path: dir.to_path_buf(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(SourceError::NotFound {
            path: dir.to_path_buf(),
        }),
        Err(e) => Err(io_err(dir)(e)),
    }
}

/// `YYYYMMDDHHMMSS_` followed by at least one character: a drizzle v1 migration folder name.
fn v1_timestamp(name: &str) -> Option<&str> {
    let b = name.as_bytes();
    (b.len() > 15 && b[..14].iter().all(u8::is_ascii_digit) && b[14] == b'_').then(|| &name[..14])
}

/// Which layout `dir` uses: a journal makes it [`Layout::DrizzleJournal`]; else any
/// `YYYYMMDDHHMMSS_name/` subfolder makes it [`Layout::DrizzleFolders`]; else
/// [`Layout::Native`].
pub fn detect_layout(dir: &Path) -> Result<Layout, SourceError> {
    check_dir(dir)?;
    Ok(detect_in(dir, &list(dir)?))
}

fn detect_in(dir: &Path, entries: &[Entry]) -> Layout {
    if dir.join(JOURNAL_PATH).is_file() {
        return Layout::DrizzleJournal;
    }
    if entries
        .iter()
        .any(|e| e.is_dir && v1_timestamp(&e.name).is_some())
    {
        return Layout::DrizzleFolders;
    }
    Layout::Native
}

/// Reads the migration folder `dir`: detects its layout, reads every migration and rollback,
/// hashes them, parses their directives and checks the folder's consistency. Never touches the
/// database.
pub fn load(dir: &Path) -> Result<MigrationSet, SourceError> {
    check_dir(dir)?;
    let entries = list(dir)?;
    let layout = detect_in(dir, &entries);
    let mut warnings = Vec::new();
    let mut migrations = match layout {
        Layout::DrizzleJournal => load_journal(dir, &entries, &mut warnings)?,
        Layout::DrizzleFolders => load_folders(&entries, &mut warnings)?,
        Layout::Native => load_native(&entries)?,
    };
    for (i, m) in migrations.iter_mut().enumerate() {
        m.index = i;
    }
    tracing::debug!(dir = %dir.display(), %layout, count = migrations.len(), "loaded migrations");
    Ok(MigrationSet {
        dir: dir.to_path_buf(),
        layout,
        migrations,
        warnings,
    })
}

/// Reads a file as UTF-8 and hashes its bytes.
fn read_text(path: &Path) -> Result<(String, String), SourceError> {
    let bytes = fs::read(path).map_err(io_err(path))?;
    let hash = sha256_hex(&bytes);
    match String::from_utf8(bytes) {
        Ok(text) => Ok((text, hash)),
        Err(e) => {
            let byte_offset = e.utf8_error().valid_up_to();
            let valid = std::str::from_utf8(&e.as_bytes()[..byte_offset]).unwrap_or_default();
            let (line, column) = line_col(valid, byte_offset);
            Err(SourceError::InvalidUtf8 {
                path: path.to_path_buf(),
                line,
                column,
                byte_offset,
            })
        }
    }
}

fn read_down(path: PathBuf) -> Result<DownFile, SourceError> {
    let (sql, hash) = read_text(&path)?;
    let directives = parse_directives(&path, &sql, true)?;
    Ok(DownFile {
        path,
        sql,
        hash,
        directives,
    })
}

struct Found {
    id: String,
    path: PathBuf,
    when: Option<i64>,
    breakpoints: bool,
    down: Option<PathBuf>,
}

fn read_migration(found: Found, layout: Layout) -> Result<Migration, SourceError> {
    let (sql, hash) = read_text(&found.path)?;
    let directives = parse_directives(&found.path, &sql, false)?;
    let down = found.down.map(read_down).transpose()?;
    if let (true, Some(down)) = (directives.irreversible, &down) {
        return Err(SourceError::IrreversibleWithDown {
            path: found.path,
            down: down.path.clone(),
        });
    }
    Ok(Migration {
        id: found.id,
        index: 0,
        path: found.path,
        when: found.when,
        sql,
        hash,
        breakpoints: found.breakpoints,
        layout,
        down,
        directives,
    })
}

// --- drizzle journal -------------------------------------------------------------------------

/// The journal as pgkeel reads it (unknown fields ignored).
#[derive(Deserialize)]
struct JournalRead {
    #[serde(default)]
    dialect: Option<String>,
    entries: Vec<JournalEntryRead>,
}

#[derive(Deserialize)]
struct JournalEntryRead {
    idx: usize,
    when: i64,
    tag: String,
    #[serde(default)]
    breakpoints: Option<bool>,
}

fn malformed(path: &Path, e: &serde_json::Error) -> SourceError {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let reason = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
    SourceError::MalformedJournal {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        reason,
    }
}

fn read_journal_text(path: &Path) -> Result<String, SourceError> {
    read_text(path).map(|(text, _hash)| text)
}

fn parse_journal(path: &Path, text: &str) -> Result<JournalRead, SourceError> {
    let journal: JournalRead = serde_json::from_str(text).map_err(|e| malformed(path, &e))?;
    check_dialect(path, journal.dialect.as_deref())?;
    Ok(journal)
}

fn check_dialect(path: &Path, dialect: Option<&str>) -> Result<(), SourceError> {
    match dialect {
        None | Some("postgresql" | "pg") => Ok(()),
        Some(other) => Err(SourceError::UnsupportedDialect {
            path: path.to_path_buf(),
            dialect: other.to_owned(),
        }),
    }
}

fn valid_tag(tag: &str) -> bool {
    !tag.is_empty()
        && !tag.starts_with('.')
        && !tag.contains(['/', '\\', '\0'])
        && Path::new(tag).components().count() == 1
}

/// `NNNN_anything.sql` beside a journal (digits, underscore): what drizzle-kit generates.
fn looks_like_drizzle_file(name: &str) -> bool {
    let digits = name.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && name[digits..].starts_with('_')
}

fn load_journal(
    dir: &Path,
    entries: &[Entry],
    warnings: &mut Vec<FolderWarning>,
) -> Result<Vec<Migration>, SourceError> {
    let journal_path = dir.join(JOURNAL_PATH);
    let text = read_journal_text(&journal_path)?;
    let journal = parse_journal(&journal_path, &text)?;

    let mut by_tag: HashMap<&str, usize> = HashMap::with_capacity(journal.entries.len());
    for e in &journal.entries {
        if !valid_tag(&e.tag) {
            return Err(SourceError::BadJournalTag {
                journal: journal_path,
                idx: e.idx,
                tag: e.tag.clone(),
            });
        }
        if let Some(first_idx) = by_tag.insert(&e.tag, e.idx) {
            return Err(SourceError::DuplicateJournalTag {
                journal: journal_path,
                tag: e.tag.clone(),
                first_idx,
                second_idx: e.idx,
            });
        }
    }

    // Files in the folder: drizzle-orm runs only what the journal lists, so a NNNN_*.sql file
    // it does not list is reported and left alone (editor backups, READMEs and `meta/` are
    // not even reported).
    let mut downs: HashMap<&str, PathBuf> = HashMap::new();
    for e in entries.iter().filter(|e| !e.is_dir) {
        let stray = if let Some(stem) = e.name.strip_suffix(".down.sql") {
            if by_tag.contains_key(stem) {
                downs.insert(stem, e.path.clone());
                None
            } else {
                looks_like_drizzle_file(stem).then_some(FolderWarningKind::DownNotInJournal)
            }
        } else if let Some(stem) = e.name.strip_suffix(".sql") {
            (!by_tag.contains_key(stem) && looks_like_drizzle_file(stem))
                .then_some(FolderWarningKind::NotInJournal)
        } else {
            None
        };
        if let Some(kind) = stray {
            warnings.push(FolderWarning {
                path: e.path.clone(),
                kind,
            });
        }
    }

    let mut order: Vec<&JournalEntryRead> = journal.entries.iter().collect();
    order.sort_by_key(|e| e.idx); // stable: entries sharing an idx keep the journal's order
    let mut migrations = Vec::with_capacity(order.len());
    for e in order {
        let path = dir.join(format!("{}.sql", e.tag));
        if !path.is_file() {
            return Err(SourceError::MissingMigrationFile {
                tag: e.tag.clone(),
                expected: path,
                journal: journal_path,
            });
        }
        let found = Found {
            id: e.tag.clone(),
            path,
            when: Some(e.when),
            breakpoints: e.breakpoints.unwrap_or(false),
            down: downs.remove(e.tag.as_str()),
        };
        migrations.push(read_migration(found, Layout::DrizzleJournal)?);
    }
    Ok(migrations)
}

// --- drizzle v1 folders ----------------------------------------------------------------------

fn parse_v1_when(folder: &Path, stamp: &str) -> Result<i64, SourceError> {
    NaiveDateTime::parse_from_str(stamp, "%Y%m%d%H%M%S")
        .map(|t| t.and_utc().timestamp_millis())
        .map_err(|_| SourceError::BadFolderTimestamp {
            folder: folder.to_path_buf(),
            timestamp: stamp.to_owned(),
        })
}

fn load_folders(
    entries: &[Entry],
    warnings: &mut Vec<FolderWarning>,
) -> Result<Vec<Migration>, SourceError> {
    let mut migrations = Vec::new();
    // `entries` is sorted by name, which is the timestamp order.
    for e in entries.iter().filter(|e| e.is_dir) {
        let Some(stamp) = v1_timestamp(&e.name) else {
            if e.path.join("migration.sql").is_file() {
                warnings.push(FolderWarning {
                    path: e.path.clone(),
                    kind: FolderWarningKind::FolderNameNotATimestamp,
                });
            }
            continue;
        };
        let when = parse_v1_when(&e.path, stamp)?;
        let path = e.path.join("migration.sql");
        if !path.is_file() {
            return Err(SourceError::MissingFolderMigration {
                folder: e.path.clone(),
                expected: path,
            });
        }
        let down = e.path.join("down.sql");
        let found = Found {
            id: e.name.clone(),
            path,
            when: Some(when),
            breakpoints: true,
            down: down.is_file().then_some(down),
        };
        migrations.push(read_migration(found, Layout::DrizzleFolders)?);
    }
    Ok(migrations)
}

// --- native ----------------------------------------------------------------------------------

/// Splits a native stem `NNNN_descriptive_name` into its number, or `None` if it breaks the rule.
fn native_number(stem: &str) -> Option<u64> {
    let digits = stem.bytes().take_while(u8::is_ascii_digit).count();
    let name = stem[digits..].strip_prefix('_')?;
    let name_ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if digits < 4 || !name_ok {
        return None;
    }
    stem[..digits].parse().ok()
}

fn load_native(entries: &[Entry]) -> Result<Vec<Migration>, SourceError> {
    struct Up<'a> {
        number: u64,
        stem: &'a str,
        path: &'a Path,
    }
    let mut ups: Vec<Up<'_>> = Vec::new();
    let mut downs: HashMap<&str, &Path> = HashMap::new();
    for e in entries.iter().filter(|e| !e.is_dir) {
        let lower = e.name.to_ascii_lowercase();
        if !lower.ends_with(".sql") {
            continue; // README.md, notes, snapshots: not migrations
        }
        let bad = || SourceError::BadFileName {
            path: e.path.clone(),
        };
        if let Some(stem) = e.name.strip_suffix(".down.sql") {
            native_number(stem).ok_or_else(bad)?;
            downs.insert(stem, &e.path);
        } else {
            let stem = e.name.strip_suffix(".sql").ok_or_else(bad)?;
            let number = native_number(stem).ok_or_else(bad)?;
            ups.push(Up {
                number,
                stem,
                path: &e.path,
            });
        }
    }
    ups.sort_by(|a, b| (a.number, a.stem).cmp(&(b.number, b.stem)));
    for pair in ups.windows(2) {
        if pair[0].number == pair[1].number {
            let width = pair[0].stem.find('_').unwrap_or(4);
            return Err(SourceError::DuplicateId {
                id: pair[0].stem[..width].to_owned(),
                first: pair[0].path.to_path_buf(),
                second: pair[1].path.to_path_buf(),
            });
        }
    }
    let mut migrations = Vec::with_capacity(ups.len());
    for up in &ups {
        let found = Found {
            id: up.stem.to_owned(),
            path: up.path.to_path_buf(),
            when: None,
            breakpoints: true,
            down: downs.remove(up.stem).map(Path::to_path_buf),
        };
        migrations.push(read_migration(found, Layout::Native)?);
    }
    // Whatever rollback is left has no migration.
    if let Some((stem, path)) = downs.into_iter().min_by_key(|(stem, _)| *stem) {
        let dir = path.parent().unwrap_or(Path::new(""));
        return Err(SourceError::DownWithoutUp {
            path: path.to_path_buf(),
            expected_up: dir.join(format!("{stem}.sql")),
        });
    }
    Ok(migrations)
}

// ---------------------------------------------------------------------------------------------
// pgkeel new
// ---------------------------------------------------------------------------------------------

/// Turns a user's name into a migration name: ASCII letters lowercased, spaces and dashes become
/// `_`, repeated `_` collapse, leading/trailing `_` go. Other characters are refused.
pub fn slugify(name: &str) -> Result<String, SourceError> {
    let bad = |problem| SourceError::BadMigrationName {
        name: name.to_owned(),
        problem,
    };
    let mut slug = String::with_capacity(name.len());
    for c in name.trim().chars() {
        let c = match c {
            'a'..='z' | '0'..='9' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            ' ' | '-' | '_' | '\t' => '_',
            other => return Err(bad(NameProblem::BadChar(other))),
        };
        if c == '_' && (slug.is_empty() || slug.ends_with('_')) {
            continue;
        }
        slug.push(c);
    }
    while slug.ends_with('_') {
        slug.pop();
    }
    if slug.is_empty() {
        return Err(bad(NameProblem::Empty));
    }
    Ok(slug)
}

fn header(id: &str, layout: Layout, now: DateTime<Utc>) -> String {
    let down = match layout {
        Layout::DrizzleFolders => "down.sql in this folder".to_owned(),
        _ => format!("{id}.down.sql beside this file"),
    };
    let mut h = format!(
        "-- {id}\n\
         -- Created {} by pgkeel new.\n\
         --\n\
         -- Directives: write `-- pgkeel:NAME [VALUE]` lines above the first statement:\n\
         --   no-transaction              run outside a transaction (CREATE INDEX CONCURRENTLY, ...)\n\
         --   lock-timeout DURATION       lock_timeout for this migration (500ms, 5s, 2min, 1h; 0/off disables)\n\
         --   statement-timeout DURATION  statement_timeout for this migration\n\
         --   retries N                   retry up to N times after a lock timeout\n\
         --   irreversible                this migration intentionally has no rollback\n\
         -- Rollback: {down}.\n",
        now.format("%Y-%m-%dT%H:%M:%SZ")
    );
    if layout.splits_on_breakpoints() {
        h.push_str("-- Separate statements with drizzle's statement-breakpoint marker line.\n");
    }
    h.push('\n');
    h
}

fn create_new_file(path: &Path, contents: &str) -> Result<(), SourceError> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|error| {
            if error.kind() == io::ErrorKind::AlreadyExists {
                SourceError::AlreadyExists {
                    path: path.to_path_buf(),
                }
            } else {
                write_err(path)(error)
            }
        })?;
    file.write_all(contents.as_bytes()).map_err(write_err(path))
}

/// Creates the next migration file in `dir` for `pgkeel new NAME` and returns its path.
///
/// The name is slugified ([`slugify`]). A missing folder is created with the native layout.
/// Native: `NNNN_name.sql`, one past the highest number (4 digits, or as wide as the widest
/// existing number). Drizzle journal: `NNNN_name.sql` numbered by the next `idx`, plus its
/// journal entry (`when` = `now`, `breakpoints: true`, the journal's `version`), written in
/// drizzle-kit's format. Drizzle v1: `YYYYMMDDHHMMSS_name/migration.sql` from `now` (UTC).
/// If the newest existing journal entry or folder is not older than `now` (clock skew), the new
/// `when` / timestamp is moved just past it, so the new migration still runs last (drizzle-orm
/// silently skips an entry older than the last applied one). Never overwrites a file, folder or
/// journal entry.
pub fn new_migration(dir: &Path, name: &str, now: DateTime<Utc>) -> Result<PathBuf, SourceError> {
    let slug = slugify(name)?;
    if !dir.exists() {
        fs::create_dir_all(dir).map_err(write_err(dir))?;
    }
    match detect_layout(dir)? {
        Layout::Native => new_native(dir, &slug, now),
        Layout::DrizzleJournal => new_journal_entry(dir, &slug, now),
        Layout::DrizzleFolders => new_folder(dir, &slug, now),
    }
}

fn new_native(dir: &Path, slug: &str, now: DateTime<Utc>) -> Result<PathBuf, SourceError> {
    let mut next = 1u64;
    let mut width = 4usize;
    for e in list(dir)?.iter().filter(|e| !e.is_dir) {
        let stem = e
            .name
            .strip_suffix(".down.sql")
            .or_else(|| e.name.strip_suffix(".sql"));
        if let Some(number) = stem.and_then(native_number) {
            next = next.max(number + 1);
            width = width.max(e.name.bytes().take_while(u8::is_ascii_digit).count());
        }
    }
    let id = format!("{next:0width$}_{slug}");
    let path = dir.join(format!("{id}.sql"));
    create_new_file(&path, &header(&id, Layout::Native, now))?;
    Ok(path)
}

fn new_folder(dir: &Path, slug: &str, now: DateTime<Utc>) -> Result<PathBuf, SourceError> {
    // Folders run in name order: never sort before the newest existing one (clock skew).
    let mut stamp = now.naive_utc();
    for e in list(dir)?.iter().filter(|e| e.is_dir) {
        if let Some(Ok(existing)) =
            v1_timestamp(&e.name).map(|s| NaiveDateTime::parse_from_str(s, "%Y%m%d%H%M%S"))
        {
            if existing >= stamp {
                stamp = existing + chrono::Duration::seconds(1);
            }
        }
    }
    let id = format!("{}_{slug}", stamp.format("%Y%m%d%H%M%S"));
    let folder = dir.join(&id);
    fs::create_dir(&folder).map_err(|error| {
        if error.kind() == io::ErrorKind::AlreadyExists {
            SourceError::AlreadyExists {
                path: folder.clone(),
            }
        } else {
            write_err(&folder)(error)
        }
    })?;
    let path = folder.join("migration.sql");
    create_new_file(&path, &header(&id, Layout::DrizzleFolders, now))?;
    Ok(path)
}

/// The journal as written back: field order as drizzle-kit writes it, unknown fields kept.
#[derive(Serialize, Deserialize)]
struct JournalDoc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dialect: Option<String>,
    entries: Vec<JournalEntryDoc>,
    #[serde(flatten)]
    extra: serde_json::Map<String, serde_json::Value>,
}

#[derive(Serialize, Deserialize)]
struct JournalEntryDoc {
    idx: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    when: i64,
    tag: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    breakpoints: Option<bool>,
    #[serde(flatten)]
    extra: serde_json::Map<String, serde_json::Value>,
}

/// The indentation of the first indented line (drizzle-kit: two spaces).
fn detect_indent(text: &str) -> String {
    text.lines()
        .skip(1)
        .map(|l| {
            let n = l.len() - l.trim_start_matches([' ', '\t']).len();
            &l[..n]
        })
        .find(|ws| !ws.is_empty())
        .unwrap_or("  ")
        .to_owned()
}

fn new_journal_entry(dir: &Path, slug: &str, now: DateTime<Utc>) -> Result<PathBuf, SourceError> {
    let journal_path = dir.join(JOURNAL_PATH);
    let text = read_journal_text(&journal_path)?;
    parse_journal(&journal_path, &text)?; // precise errors and the dialect check
    let mut doc: JournalDoc =
        serde_json::from_str(&text).map_err(|e| malformed(&journal_path, &e))?;

    let idx = doc.entries.iter().map(|e| e.idx + 1).max().unwrap_or(0);
    // drizzle-orm applies only entries whose `when` is newer than the last applied one, so a
    // clock behind the newest entry would make drizzle skip this migration silently.
    let newest = doc.entries.iter().map(|e| e.when).max();
    let when = newest.map_or(now.timestamp_millis(), |w| {
        now.timestamp_millis().max(w + 1)
    });
    let tag = format!("{idx:04}_{slug}");
    let path = dir.join(format!("{tag}.sql"));
    if doc.entries.iter().any(|e| e.tag == tag) {
        return Err(SourceError::AlreadyExists { path: journal_path });
    }
    doc.entries.push(JournalEntryDoc {
        idx,
        version: doc.version.clone(),
        when,
        tag: tag.clone(),
        breakpoints: Some(true),
        extra: serde_json::Map::new(),
    });

    let indent = detect_indent(&text);
    let mut out = Vec::with_capacity(text.len() + 200);
    let formatter = serde_json::ser::PrettyFormatter::with_indent(indent.as_bytes());
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    doc.serialize(&mut ser)
        .map_err(|e| write_err(&journal_path)(io::Error::other(e)))?;
    let mut out = String::from_utf8(out).unwrap_or_default();
    if text.ends_with('\n') {
        out.push('\n');
    }
    if text.contains("\r\n") {
        out = out.replace('\n', "\r\n");
    }

    create_new_file(&path, &header(&tag, Layout::DrizzleJournal, now))?;
    if let Err(e) = write_atomically(&journal_path, out.as_bytes()) {
        let _ = fs::remove_file(&path); // keep the folder consistent
        return Err(e);
    }
    Ok(path)
}

/// Replaces `path` with `contents` through a temporary file in the same folder.
fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), SourceError> {
    let parent = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(parent).map_err(write_err(parent))?;
    tmp.write_all(contents).map_err(write_err(path))?;
    tmp.persist(path).map_err(|e| write_err(path)(e.error))?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use crate::location::line_at;
    use chrono::TimeZone;

    /// `printf 'CREATE TABLE a (id int);\n' | sha256sum`
    const CREATE_A: &[u8] = b"CREATE TABLE a (id int);\n";
    const CREATE_A_SHA256: &str =
        "c2de7559380e5ebf65caa7d59e166558e80243cf7e70006cc98d1593d94203c1";
    /// drizzle-orm 0.45.4's `readMigrationFiles` hash of `\xEF\xBB\xBFSELECT 1;\r\n`, computed
    /// with node (equal to `sha256sum` of the bytes).
    const BOM_CRLF: &[u8] = b"\xEF\xBB\xBFSELECT 1;\r\n";
    const BOM_CRLF_SHA256: &str =
        "1ffc3c6acdbb610bcc942c606c787270e7c9d149c473e9d9aaa4fe597d5e402d";

    fn write(dir: &Path, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = dir.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, contents).unwrap();
        path
    }

    /// A journal exactly as drizzle-kit writes it (`JSON.stringify(journal, null, 2)`).
    fn journal(version: &str, dialect: &str, tags: &[(&str, i64)]) -> String {
        let entries: Vec<String> = tags
            .iter()
            .enumerate()
            .map(|(idx, (tag, when))| {
                format!(
                    "    {{\n      \"idx\": {idx},\n      \"version\": \"{version}\",\n      \"when\": {when},\n      \"tag\": \"{tag}\",\n      \"breakpoints\": true\n    }}"
                )
            })
            .collect();
        let entries = if entries.is_empty() {
            "[]".to_owned()
        } else {
            format!("[\n{}\n  ]", entries.join(",\n"))
        };
        format!(
            "{{\n  \"version\": \"{version}\",\n  \"dialect\": \"{dialect}\",\n  \"entries\": {entries}\n}}"
        )
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, 4, 5, 6, 7).unwrap()
    }

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/source")
    }

    // --- layouts ---------------------------------------------------------------------------

    #[test]
    fn loads_drizzle_journal_v7_in_idx_order() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        // Entries listed out of idx order in the array: idx decides.
        let j = r#"{"version":"7","dialect":"postgresql","entries":[
            {"idx":1,"version":"7","when":1700000001000,"tag":"0001_second","breakpoints":true},
            {"idx":0,"version":"7","when":1700000000000,"tag":"0000_brave_hulk","breakpoints":true}]}"#;
        write(d, JOURNAL_PATH, j);
        write(d, "meta/0000_snapshot.json", "{}");
        write(d, "0000_brave_hulk.sql", CREATE_A);
        write(d, "0001_second.sql", "SELECT 1;");
        write(d, "0001_second.down.sql", "SELECT 2;");
        write(d, "README.md", "docs");
        write(d, "seed.sql", "not a migration");
        let set = load(d).unwrap();
        assert_eq!(set.layout, Layout::DrizzleJournal);
        let ids: Vec<_> = set.migrations.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["0000_brave_hulk", "0001_second"]);
        let m0 = &set.migrations[0];
        assert_eq!(m0.index, 0);
        assert_eq!(m0.when, Some(1_700_000_000_000));
        assert_eq!(m0.path, d.join("0000_brave_hulk.sql"));
        assert_eq!(m0.hash, CREATE_A_SHA256);
        assert!(m0.breakpoints);
        assert!(m0.down.is_none());
        let m1 = set.get("0001_second").unwrap();
        assert_eq!(m1.index, 1);
        let down = m1.down.as_ref().unwrap();
        assert_eq!(down.path, d.join("0001_second.down.sql"));
        assert_eq!(down.sql, "SELECT 2;");
        assert!(set.get("nope").is_none());
    }

    #[test]
    fn loads_drizzle_journal_v5_pg() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let j = r#"{"version":"5","dialect":"pg","entries":[{"idx":0,"version":"5","when":1690000000000,"tag":"0000_old","breakpoints":false}]}"#;
        write(d, JOURNAL_PATH, j);
        write(d, "0000_old.sql", "CREATE TABLE t (id int);");
        let set = load(d).unwrap();
        assert_eq!(set.layout, Layout::DrizzleJournal);
        assert_eq!(set.migrations[0].id, "0000_old");
        assert_eq!(set.migrations[0].when, Some(1_690_000_000_000));
        assert!(!set.migrations[0].breakpoints);
    }

    #[test]
    fn loads_drizzle_v1_folders() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        write(d, "20250102030405_second/migration.sql", "SELECT 2;");
        write(d, "20250102030405_second/snapshot.json", "{}");
        write(d, "20240101000000_first/migration.sql", "SELECT 1;");
        write(d, "20240101000000_first/down.sql", "SELECT -1;");
        write(d, "notes/readme.txt", "ignored");
        let set = load(d).unwrap();
        assert_eq!(set.layout, Layout::DrizzleFolders);
        let ids: Vec<_> = set.migrations.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["20240101000000_first", "20250102030405_second"]);
        let first = &set.migrations[0];
        assert_eq!(first.when, Some(1_704_067_200_000));
        assert_eq!(first.path, d.join("20240101000000_first/migration.sql"));
        assert_eq!(first.down.as_ref().unwrap().sql, "SELECT -1;");
        assert!(first.breakpoints);
        let second = &set.migrations[1];
        let expected = Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(second.when, Some(expected.timestamp_millis()));
        assert!(second.down.is_none());
        assert!(set.warnings.is_empty(), "{:?}", set.warnings);
    }

    #[test]
    fn migration_folder_with_a_short_timestamp_is_reported_not_skipped_silently() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        write(d, "20240101000000_first/migration.sql", "SELECT 1;");
        // A real Prisma folder name: 8 digits, which Prisma orders by name and runs.
        let short = write(d, "20250625_add_pivot/migration.sql", "SELECT 2;");
        let set = load(d).unwrap();
        assert_eq!(set.migrations.len(), 1);
        assert_eq!(set.warnings.len(), 1);
        assert_eq!(set.warnings[0].path, short.parent().unwrap());
        assert_eq!(
            set.warnings[0].kind,
            FolderWarningKind::FolderNameNotATimestamp
        );
    }

    #[test]
    fn loads_native_in_numeric_order() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        write(d, "0010_later.sql", "SELECT 10;");
        write(d, "0002_add_users.sql", "SELECT 2;");
        write(d, "0002_add_users.down.sql", "SELECT -2;");
        write(d, "00003_add_indexes.sql", "SELECT 3;");
        write(d, "README.md", "docs");
        write(d, ".hidden.sql", "ignored");
        write(d, "fixtures/x.sql", "subfolders are ignored");
        let set = load(d).unwrap();
        assert_eq!(set.layout, Layout::Native);
        let ids: Vec<_> = set.migrations.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["0002_add_users", "00003_add_indexes", "0010_later"]);
        let m = &set.migrations[0];
        assert_eq!(m.when, None);
        assert!(m.breakpoints);
        assert_eq!(
            m.down.as_ref().unwrap().path,
            d.join("0002_add_users.down.sql")
        );
        assert_eq!(set.migrations[2].index, 2);
    }

    #[test]
    fn empty_folder_is_native_and_empty() {
        let tmp = tempfile::tempdir().unwrap();
        let set = load(tmp.path()).unwrap();
        assert_eq!(set.layout, Layout::Native);
        assert!(set.is_empty());
    }

    #[test]
    fn fixture_folders_load() {
        let native = load(&fixtures().join("native")).unwrap();
        assert_eq!(native.layout, Layout::Native);
        assert_eq!(native.len(), 3);
        let cic = native.get("0002_index_users_email").unwrap();
        assert!(cic.directives.no_transaction);
        assert!(cic.down.as_ref().unwrap().directives.no_transaction);
        assert!(
            native
                .get("0003_drop_legacy")
                .unwrap()
                .directives
                .irreversible
        );

        let journal = load(&fixtures().join("drizzle-journal")).unwrap();
        assert_eq!(journal.layout, Layout::DrizzleJournal);
        assert_eq!(journal.len(), 2);
        assert_eq!(journal.migrations[0].chunks().len(), 3);

        let v5 = load(&fixtures().join("drizzle-journal-v5")).unwrap();
        assert_eq!(v5.layout, Layout::DrizzleJournal);
        assert_eq!(v5.len(), 1);

        let folders = load(&fixtures().join("drizzle-folders")).unwrap();
        assert_eq!(folders.layout, Layout::DrizzleFolders);
        assert_eq!(folders.len(), 2);
    }

    #[test]
    fn layout_serializes_kebab_case() {
        assert_eq!(
            serde_json::to_string(&Layout::DrizzleJournal).unwrap(),
            "\"drizzle-journal\""
        );
        assert_eq!(Layout::DrizzleFolders.to_string(), "drizzle-folders");
        assert_eq!(
            serde_json::to_string(&Layout::Native).unwrap(),
            "\"native\""
        );
    }

    #[test]
    fn resolve_dir_prefers_explicit_then_drizzle_then_migrations() {
        let tmp = tempfile::tempdir().unwrap();
        let cwd = tmp.path();
        assert_eq!(resolve_dir(None, cwd), cwd.join("migrations"));
        fs::create_dir_all(cwd.join("drizzle")).unwrap();
        assert_eq!(resolve_dir(None, cwd), cwd.join("migrations"));
        write(cwd, "drizzle/meta/_journal.json", "{}");
        assert_eq!(resolve_dir(None, cwd), cwd.join("drizzle"));
        assert_eq!(resolve_dir(Some(Path::new("db/m")), cwd), cwd.join("db/m"));
        assert_eq!(
            resolve_dir(Some(Path::new("/abs")), cwd),
            PathBuf::from("/abs")
        );
    }

    // --- hashing -----------------------------------------------------------------------------

    #[test]
    fn hash_is_sha256_of_file_bytes() {
        assert_eq!(sha256_hex(CREATE_A), CREATE_A_SHA256);
        assert_eq!(sha256_hex(BOM_CRLF), BOM_CRLF_SHA256);
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "0001_a.sql", CREATE_A);
        write(tmp.path(), "0002_b.sql", BOM_CRLF);
        let set = load(tmp.path()).unwrap();
        assert_eq!(set.migrations[0].hash, CREATE_A_SHA256);
        assert_eq!(set.migrations[1].hash, BOM_CRLF_SHA256);
        assert_eq!(set.migrations[1].sql.as_bytes(), BOM_CRLF);
    }

    #[test]
    fn crlf_changes_hash_not_normalized_hash() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        write(d, "0001_lf.sql", "CREATE TABLE a (\n  id int\n);\n");
        write(d, "0002_crlf.sql", "CREATE TABLE a (\r\n  id int\r\n);\r\n");
        write(d, "0003_cr.sql", "CREATE TABLE a (\r  id int\r);\r");
        let set = load(d).unwrap();
        let [lf, crlf, cr] = &set.migrations[..] else {
            panic!("three migrations expected");
        };
        assert_ne!(lf.hash, crlf.hash);
        assert_eq!(lf.normalized_hash(), crlf.normalized_hash());
        assert_eq!(lf.normalized_hash(), cr.normalized_hash());
    }

    #[test]
    fn bom_and_trailing_whitespace_change_hash_not_normalized_hash() {
        let plain = "SELECT 1;\nSELECT 2;\n";
        for cosmetic in [
            "\u{feff}SELECT 1;\nSELECT 2;\n",
            "SELECT 1;   \nSELECT 2;\t\n",
            "SELECT 1;\nSELECT 2;",
            "SELECT 1;\nSELECT 2;\n\n  \n",
            "\u{feff}SELECT 1; \r\nSELECT 2;\r\n\r\n",
        ] {
            assert_ne!(
                sha256_hex(plain.as_bytes()),
                sha256_hex(cosmetic.as_bytes())
            );
            assert_eq!(
                normalized_hash(plain),
                normalized_hash(cosmetic),
                "{cosmetic:?}"
            );
        }
        // Real edits still change it: content, and blank lines inside the file.
        assert_ne!(
            normalized_hash(plain),
            normalized_hash("SELECT 1;\nSELECT 3;\n")
        );
        assert_ne!(
            normalized_hash(plain),
            normalized_hash("SELECT 1;\n\nSELECT 2;\n")
        );
        assert_ne!(
            normalized_hash(plain),
            normalized_hash("\nSELECT 1;\nSELECT 2;\n")
        );
        // It is the SHA-256 of the normalised text.
        assert_eq!(
            normalized_hash("a \r\n\r\nb\r\n\r\n"),
            sha256_hex(b"a\n\nb")
        );
    }

    // --- chunks and positions ------------------------------------------------------------------

    #[test]
    fn drizzle_chunks_split_like_drizzle_orm_with_offsets() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let sql = "CREATE TABLE a (id int);\n--> statement-breakpoint\nCREATE INDEX i ON a (id);--> statement-breakpoint\r\nALTER TABLE a ADD b int;\n";
        write(
            d,
            JOURNAL_PATH,
            journal("7", "postgresql", &[("0000_x", 1)]),
        );
        write(d, "0000_x.sql", sql);
        let set = load(d).unwrap();
        let m = &set.migrations[0];
        let chunks = m.chunks();
        // Same pieces as JavaScript's `sql.split("--> statement-breakpoint")`.
        let texts: Vec<_> = chunks.iter().map(|c| c.text).collect();
        assert_eq!(
            texts,
            [
                "CREATE TABLE a (id int);\n",
                "\nCREATE INDEX i ON a (id);",
                "\r\nALTER TABLE a ADD b int;\n"
            ]
        );
        for c in &chunks {
            assert_eq!(&m.sql[c.offset..c.offset + c.text.len()], c.text);
        }
        assert_eq!(chunks[1].offset, 49);
        // PostgreSQL position 2 in chunk 1 = "C" of CREATE INDEX, line 3 column 1.
        let off = chunks[1].file_offset(2);
        assert_eq!(line_col(&m.sql, off), (3, 1));
        assert_eq!(
            line_at(&m.sql, 3),
            "CREATE INDEX i ON a (id);--> statement-breakpoint"
        );
        assert_eq!(line_at(&m.sql, 4), "ALTER TABLE a ADD b int;");
        // "ALTER" at position 3 of chunk 2 (after \r\n): line 4 column 1.
        assert_eq!(line_col(&m.sql, chunks[2].file_offset(3)), (4, 1));
    }

    #[test]
    fn native_is_one_chunk_and_bom_is_skipped() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        write(
            d,
            "0001_a.sql",
            "\u{feff}SELECT 1;\n--> statement-breakpoint\nSELECT 2;\n",
        );
        let set = load(d).unwrap();
        let m = &set.migrations[0];
        let chunks = m.chunks();
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].offset, 3);
        assert!(chunks[0].text.starts_with("SELECT 1;"));
        assert_eq!(line_col(&m.sql, chunks[0].file_offset(1)), (1, 1));
    }

    #[test]
    fn trailing_breakpoint_gives_blank_last_chunk() {
        let m = Migration {
            id: "0000_x".into(),
            index: 0,
            path: PathBuf::from("0000_x.sql"),
            when: Some(1),
            sql: "SELECT 1;--> statement-breakpoint\n".into(),
            hash: String::new(),
            breakpoints: true,
            layout: Layout::DrizzleJournal,
            down: None,
            directives: Directives::default(),
        };
        let chunks = m.chunks();
        assert_eq!(chunks.len(), 2);
        assert!(!chunks[0].is_blank());
        assert!(chunks[1].is_blank());
        assert_eq!(chunks[1].offset, m.sql.len() - 1);
    }

    // --- directives --------------------------------------------------------------------------

    #[test]
    fn directives_parse_from_leading_comments() {
        let tmp = tempfile::tempdir().unwrap();
        let sql = "\u{feff}-- Add the email index.\r\n\
                   -- pgkeel:no-transaction\r\n\
                   \r\n\
                   --pgkeel:lock-timeout 5s\n\
                   -- pgkeel:statement-timeout off\n\
                   -- pgkeel:retries 3\n\
                   CREATE INDEX CONCURRENTLY i ON t (email);\n\
                   -- a later comment mentioning pgkeel: is fine\n";
        write(tmp.path(), "0001_idx.sql", sql);
        let set = load(tmp.path()).unwrap();
        let d = &set.migrations[0].directives;
        assert_eq!(
            *d,
            Directives {
                no_transaction: true,
                lock_timeout: Some(Timeout::After(Duration::from_secs(5))),
                statement_timeout: Some(Timeout::Off),
                retries: Some(3),
                irreversible: false,
            }
        );
        let json = serde_json::to_value(d).unwrap();
        assert_eq!(json["lock_timeout"], "5s");
        assert_eq!(json["statement_timeout"], "off");
        assert_eq!(
            Timeout::After(Duration::from_millis(1500)).to_string(),
            "1500ms"
        );
        assert_eq!(Timeout::After(Duration::from_secs(120)).to_string(), "2min");
        assert_eq!(Timeout::After(Duration::from_secs(5)).pg_value(), "5000ms");
        assert_eq!(Timeout::Off.pg_value(), "0");
    }

    #[test]
    fn no_directives_is_default() {
        let d = parse_directives(Path::new("x.sql"), "SELECT 1;\n-- pgkeel", false).unwrap();
        assert_eq!(d, Directives::default());
    }

    fn directive_error(sql: &str) -> (usize, String, DirectiveProblem) {
        match parse_directives(Path::new("m.sql"), sql, false) {
            Err(SourceError::BadDirective {
                path,
                line,
                text,
                problem,
            }) => {
                assert_eq!(path, Path::new("m.sql"));
                (line, text, problem)
            }
            other => panic!("expected BadDirective for {sql:?}, got {other:?}"),
        }
    }

    #[test]
    fn lint_suppressions_may_stand_anywhere_and_repeat() {
        let text = "-- pgkeel: no-transaction\n-- pgkeel:ignore-file prefer-jsonb legacy\nCREATE TABLE a (b json);\n-- pgkeel:ignore drop-table scratch\nDROP TABLE c;\n-- pgkeel:ignore drop-table again\nDROP TABLE d;\n";
        let d = directives_of(Path::new("m.sql"), text).unwrap();
        assert!(d.no_transaction);
    }

    #[test]
    fn bad_directives_are_errors() {
        let (line, text, problem) =
            directive_error("-- hello\n-- pgkeel:no-transactoin\nSELECT 1;");
        assert_eq!((line, text.as_str()), (2, "-- pgkeel:no-transactoin"));
        assert_eq!(
            problem,
            DirectiveProblem::Unknown {
                name: "no-transactoin".into()
            }
        );
        let (_, _, p) = directive_error("-- pgkeel:lock-timeout 5 seconds\n");
        assert_eq!(
            p,
            DirectiveProblem::BadValue {
                name: "lock-timeout".into(),
                value: "5 seconds".into()
            }
        );
        let (_, _, p) = directive_error("-- pgkeel:retries\n");
        assert_eq!(
            p,
            DirectiveProblem::MissingValue {
                name: "retries".into()
            }
        );
        let (_, _, p) = directive_error("-- pgkeel:retries -1\n");
        assert!(matches!(p, DirectiveProblem::BadValue { .. }));
        let (_, _, p) = directive_error("-- pgkeel:irreversible yes\n");
        assert_eq!(
            p,
            DirectiveProblem::UnexpectedValue {
                name: "irreversible".into()
            }
        );
        let (line, _, p) = directive_error("-- pgkeel:retries 1\n-- pgkeel:retries 2\n");
        assert_eq!(
            (line, p),
            (
                2,
                DirectiveProblem::Duplicate {
                    name: "retries".into()
                }
            )
        );
        let (line, _, p) = directive_error("SELECT 1;\n  -- pgkeel:no-transaction\n");
        assert_eq!((line, p), (2, DirectiveProblem::NotInHeader));
        let e = parse_directives(Path::new("d.sql"), "-- pgkeel:irreversible\n", true).unwrap_err();
        assert!(matches!(
            e,
            SourceError::BadDirective {
                problem: DirectiveProblem::NotAllowedInDown { .. },
                ..
            }
        ));
        // The message lists the valid directives.
        let msg = SourceError::BadDirective {
            path: "m.sql".into(),
            line: 2,
            text: "-- pgkeel:x".into(),
            problem: DirectiveProblem::Unknown { name: "x".into() },
        }
        .to_string();
        assert!(
            msg.starts_with("m.sql:2: unknown directive pgkeel:x"),
            "{msg}"
        );
        assert!(msg.contains("-- pgkeel:lock-timeout DURATION"), "{msg}");
    }

    #[test]
    fn bad_directive_in_folder_names_file_and_line() {
        let tmp = tempfile::tempdir().unwrap();
        let path = write(
            tmp.path(),
            "0001_a.sql",
            "-- pgkeel:lock-timeout forever\nSELECT 1;\n",
        );
        match load(tmp.path()).unwrap_err() {
            SourceError::BadDirective { path: p, line, .. } => {
                assert_eq!((p, line), (path, 1));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn irreversible_with_down_file_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let up = write(
            tmp.path(),
            "0001_a.sql",
            "-- pgkeel:irreversible\nDROP TABLE t;\n",
        );
        let down = write(tmp.path(), "0001_a.down.sql", "CREATE TABLE t ();\n");
        match load(tmp.path()).unwrap_err() {
            SourceError::IrreversibleWithDown { path, down: d } => {
                assert_eq!((path, d), (up, down));
            }
            other => panic!("{other:?}"),
        }
    }

    // --- errors ------------------------------------------------------------------------------

    #[test]
    fn missing_folder_is_not_found_with_hint() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("migrations");
        let e = load(&dir).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(&e, SourceError::NotFound { path } if *path == dir));
        assert!(
            msg.contains("pass --migrations DIR or create it with `pgkeel new NAME`"),
            "{msg}"
        );
    }

    #[test]
    fn file_instead_of_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let file = write(tmp.path(), "m", "x");
        assert!(
            matches!(load(&file).unwrap_err(), SourceError::NotADirectory { path } if path == file)
        );
    }

    #[test]
    fn malformed_journal_reports_line_and_column() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let path = write(
            d,
            JOURNAL_PATH,
            "{\n  \"version\": \"7\",\n  \"entries\": [,]\n}\n",
        );
        match load(d).unwrap_err() {
            SourceError::MalformedJournal {
                path: p,
                line,
                column,
                reason,
            } => {
                assert_eq!(p, path);
                assert_eq!((line, column), (3, 15));
                assert!(!reason.contains("at line"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        // Valid JSON without drizzle's fields is malformed too.
        write(d, JOURNAL_PATH, "{\"version\": \"7\"}");
        assert!(matches!(
            load(d).unwrap_err(),
            SourceError::MalformedJournal { line: 1, .. }
        ));
    }

    #[test]
    fn unknown_dialect_is_an_error() {
        for dialect in ["mysql", "sqlite"] {
            let tmp = tempfile::tempdir().unwrap();
            let path = write(tmp.path(), JOURNAL_PATH, journal("7", dialect, &[]));
            match load(tmp.path()).unwrap_err() {
                SourceError::UnsupportedDialect {
                    path: p,
                    dialect: d,
                } => {
                    assert_eq!((p, d.as_str()), (path, dialect));
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn journal_entry_without_file() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        write(
            d,
            JOURNAL_PATH,
            journal("7", "postgresql", &[("0000_a", 1), ("0001_b", 2)]),
        );
        write(d, "0000_a.sql", "SELECT 1;");
        match load(d).unwrap_err() {
            SourceError::MissingMigrationFile {
                tag,
                expected,
                journal,
            } => {
                assert_eq!(tag, "0001_b");
                assert_eq!(expected, d.join("0001_b.sql"));
                assert_eq!(journal, d.join(JOURNAL_PATH));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn stray_sql_file_beside_the_journal_is_a_warning_not_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        write(
            d,
            JOURNAL_PATH,
            journal("7", "postgresql", &[("0000_a", 1)]),
        );
        write(d, "0000_a.sql", "SELECT 1;");
        let stray = write(d, "0001_b.sql", "SELECT 2;");
        let down = write(d, "0002_c.down.sql", "SELECT 3;");
        write(d, "README.md", "notes");
        write(d, "0000_a.sql~", "backup");
        write(d, "meta/0000_snapshot.json", "{}");
        let set = load(d).unwrap();
        assert_eq!(
            set.migrations.len(),
            1,
            "drizzle-orm runs only the journal's entries"
        );
        let got: Vec<(PathBuf, FolderWarningKind)> = set
            .warnings
            .iter()
            .map(|w| (w.path.clone(), w.kind))
            .collect();
        assert_eq!(
            got,
            [
                (stray, FolderWarningKind::NotInJournal),
                (down, FolderWarningKind::DownNotInJournal)
            ]
        );
        assert!(set.warnings[0]
            .to_string()
            .contains("drizzle-orm never runs it"));
    }

    #[test]
    fn duplicate_journal_tags() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let j = r#"{"version":"7","dialect":"postgresql","entries":[
            {"idx":0,"when":1,"tag":"0000_a","breakpoints":true},
            {"idx":1,"when":2,"tag":"0000_a","breakpoints":true}]}"#;
        write(d, JOURNAL_PATH, j);
        write(d, "0000_a.sql", "SELECT 1;");
        match load(d).unwrap_err() {
            SourceError::DuplicateJournalTag {
                tag,
                first_idx,
                second_idx,
                ..
            } => assert_eq!((tag.as_str(), first_idx, second_idx), ("0000_a", 0, 1)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn journal_tag_must_be_a_file_name() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        write(
            d,
            JOURNAL_PATH,
            journal("7", "postgresql", &[("../evil", 1)]),
        );
        assert!(matches!(
            load(d).unwrap_err(),
            SourceError::BadJournalTag { idx: 0, tag, .. } if tag == "../evil"
        ));
    }

    #[test]
    fn duplicate_native_numbers() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let a = write(d, "0003_add_a.sql", "SELECT 1;");
        let b = write(d, "0003_add_b.sql", "SELECT 2;");
        write(d, "0001_init.sql", "SELECT 0;");
        match load(d).unwrap_err() {
            SourceError::DuplicateId { id, first, second } => {
                assert_eq!((id.as_str(), first, second), ("0003", a, b));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn invalid_utf8_is_located() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let path = write(d, "0001_a.sql", b"SELECT 1;\nSELECT '\xE9t\xE9';\n");
        match load(d).unwrap_err() {
            SourceError::InvalidUtf8 {
                path: p,
                line,
                column,
                byte_offset,
            } => {
                assert_eq!(p, path);
                assert_eq!((line, column, byte_offset), (2, 9, 18));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_native_names() {
        for name in [
            "001_short.sql",
            "0001-dash.sql",
            "0001_Upper.sql",
            "add_users.sql",
            "0001_.sql",
            "0001_a b.sql",
            "0001_a.SQL",
            "0001.sql",
        ] {
            let tmp = tempfile::tempdir().unwrap();
            let path = write(tmp.path(), name, "SELECT 1;");
            let e = load(tmp.path()).unwrap_err();
            assert!(e.to_string().contains("NNNN_descriptive_name.sql"), "{e}");
            match e {
                SourceError::BadFileName { path: p } => assert_eq!(p, path, "{name}"),
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    #[test]
    fn native_down_without_up() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        write(d, "0001_a.sql", "SELECT 1;");
        let down = write(d, "0002_b.down.sql", "SELECT 2;");
        match load(d).unwrap_err() {
            SourceError::DownWithoutUp { path, expected_up } => {
                assert_eq!((path, expected_up), (down, d.join("0002_b.sql")));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn v1_folder_without_migration_sql() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        write(d, "20240101000000_a/migration.sql", "SELECT 1;");
        write(d, "20240102000000_b/snapshot.json", "{}");
        match load(d).unwrap_err() {
            SourceError::MissingFolderMigration { folder, expected } => {
                assert_eq!(folder, d.join("20240102000000_b"));
                assert_eq!(expected, d.join("20240102000000_b/migration.sql"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn v1_folder_with_impossible_timestamp() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "20241301000000_a/migration.sql", "SELECT 1;");
        assert!(matches!(
            load(tmp.path()).unwrap_err(),
            SourceError::BadFolderTimestamp { timestamp, .. } if timestamp == "20241301000000"
        ));
    }

    #[test]
    fn io_error_carries_path() {
        let tmp = tempfile::tempdir().unwrap();
        // A dangling symlink named like a migration cannot be read.
        #[cfg(unix)]
        {
            let link = tmp.path().join("0001_a.sql");
            std::os::unix::fs::symlink(tmp.path().join("missing"), &link).unwrap();
            match load(tmp.path()).unwrap_err() {
                SourceError::Io { path, .. } => assert_eq!(path, link),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn errors_do_not_also_expose_a_source() {
        use std::error::Error as _;
        let e = SourceError::Io {
            path: "x".into(),
            error: io::Error::other("boom"),
        };
        assert!(e.to_string().contains("boom"));
        assert!(e.source().is_none());
    }

    // --- pgkeel new ---------------------------------------------------------------------------

    #[test]
    fn slugify_names() {
        assert_eq!(slugify("Add users table").unwrap(), "add_users_table");
        assert_eq!(slugify("  add--users__x- ").unwrap(), "add_users_x");
        assert_eq!(slugify("v2_index").unwrap(), "v2_index");
        assert!(matches!(
            slugify(" - ").unwrap_err(),
            SourceError::BadMigrationName {
                problem: NameProblem::Empty,
                ..
            }
        ));
        assert!(matches!(
            slugify("add/users").unwrap_err(),
            SourceError::BadMigrationName {
                problem: NameProblem::BadChar('/'),
                ..
            }
        ));
        assert!(matches!(
            slugify("café").unwrap_err(),
            SourceError::BadMigrationName {
                problem: NameProblem::BadChar('é'),
                ..
            }
        ));
    }

    #[test]
    fn new_native_creates_folder_and_numbers() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("migrations");
        let first = new_migration(&dir, "Create users", now()).unwrap();
        assert_eq!(first, dir.join("0001_create_users.sql"));
        let text = fs::read_to_string(&first).unwrap();
        assert!(text.contains("no-transaction"));
        assert!(text.contains("lock-timeout DURATION"));
        let second = new_migration(&dir, "add-index", now()).unwrap();
        assert_eq!(second, dir.join("0002_add_index.sql"));
        // The header's directive list is inert and the folder loads.
        let set = load(&dir).unwrap();
        assert_eq!(set.layout, Layout::Native);
        assert_eq!(set.len(), 2);
        assert_eq!(set.migrations[0].directives, Directives::default());
        // Numbering follows the highest existing number.
        write(&dir, "0041_manual.sql", "SELECT 1;");
        assert_eq!(
            new_migration(&dir, "next", now()).unwrap(),
            dir.join("0042_next.sql")
        );
    }

    #[test]
    fn new_native_refuses_to_overwrite() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("0001_a.sql");
        create_new_file(&path, "x").unwrap();
        assert!(matches!(
            create_new_file(&path, "y").unwrap_err(),
            SourceError::AlreadyExists { path: p } if p == path
        ));
        assert_eq!(fs::read_to_string(&path).unwrap(), "x");
    }

    #[test]
    fn new_in_drizzle_journal_appends_entry() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let original = journal("7", "postgresql", &[("0000_brave_hulk", 1_700_000_000_000)]);
        write(d, JOURNAL_PATH, &original);
        write(d, "0000_brave_hulk.sql", CREATE_A);
        let path = new_migration(d, "add posts", now()).unwrap();
        assert_eq!(path, d.join("0001_add_posts.sql"));
        let text = fs::read_to_string(d.join(JOURNAL_PATH)).unwrap();
        let expected = journal(
            "7",
            "postgresql",
            &[
                ("0000_brave_hulk", 1_700_000_000_000),
                ("0001_add_posts", now().timestamp_millis()),
            ],
        );
        // Byte for byte what drizzle-kit's JSON.stringify(journal, null, 2) writes.
        assert_eq!(text, expected);
        assert!(text.contains("\n  \"version\": \"7\",\n  \"dialect\": \"postgresql\""));
        let set = load(d).unwrap();
        let m = set.get("0001_add_posts").unwrap();
        assert_eq!(m.when, Some(now().timestamp_millis()));
        assert_eq!(m.index, 1);
        assert!(m.breakpoints);
        // The header does not contain drizzle's marker, so it is one chunk.
        assert_eq!(m.chunks().len(), 1);
    }

    #[test]
    fn new_in_v5_journal_keeps_version_and_unknown_fields() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let original = "{\n\t\"version\": \"5\",\n\t\"dialect\": \"pg\",\n\t\"entries\": [],\n\t\"custom\": 1\n}\n";
        write(d, JOURNAL_PATH, original);
        let path = new_migration(d, "init", now()).unwrap();
        assert_eq!(path, d.join("0000_init.sql"));
        let text = fs::read_to_string(d.join(JOURNAL_PATH)).unwrap();
        assert!(text.ends_with("}\n"));
        assert!(text.starts_with("{\n\t\"version\": \"5\",\n\t\"dialect\": \"pg\",\n\t\"entries\": [\n\t\t{\n\t\t\t\"idx\": 0,\n\t\t\t\"version\": \"5\","), "{text}");
        assert!(text.contains("\"custom\": 1"));
        let set = load(d).unwrap();
        assert_eq!(set.migrations[0].id, "0000_init");
    }

    #[test]
    fn new_in_journal_refuses_existing_file_and_keeps_journal() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let original = journal("7", "postgresql", &[]);
        write(d, JOURNAL_PATH, &original);
        // A file drizzle would call 0000_x but not in the journal yet.
        let existing = write(d, "0000_x.sql", "SELECT 1;");
        assert!(matches!(
            new_migration(d, "x", now()).unwrap_err(),
            SourceError::AlreadyExists { path } if path == existing
        ));
        assert_eq!(fs::read_to_string(d.join(JOURNAL_PATH)).unwrap(), original);
        assert_eq!(fs::read_to_string(&existing).unwrap(), "SELECT 1;");
    }

    #[test]
    fn new_in_journal_with_other_dialect_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), JOURNAL_PATH, journal("7", "mysql", &[]));
        assert!(matches!(
            new_migration(tmp.path(), "x", now()).unwrap_err(),
            SourceError::UnsupportedDialect { .. }
        ));
    }

    #[test]
    fn new_in_drizzle_folders() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        write(d, "20240101000000_init/migration.sql", "SELECT 1;");
        let path = new_migration(d, "Add Posts", now()).unwrap();
        assert_eq!(path, d.join("20250304050607_add_posts/migration.sql"));
        let set = load(d).unwrap();
        assert_eq!(set.len(), 2);
        assert_eq!(set.migrations[1].when, Some(now().timestamp_millis()));
        // Same second again: moved one second later so it still sorts last.
        let again = new_migration(d, "add posts", now()).unwrap();
        assert_eq!(again, d.join("20250304050608_add_posts/migration.sql"));
        // A folder from the future (clock skew) is not overtaken.
        write(d, "20300101000000_future/migration.sql", "SELECT 1;");
        let after = new_migration(d, "x", now()).unwrap();
        assert_eq!(after, d.join("20300101000001_x/migration.sql"));
        assert_eq!(
            load(d).unwrap().migrations.last().unwrap().id,
            "20300101000001_x"
        );
    }

    #[test]
    fn new_in_journal_keeps_when_increasing() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let future = now().timestamp_millis() + 60_000;
        write(
            d,
            JOURNAL_PATH,
            journal("7", "postgresql", &[("0000_a", future)]),
        );
        write(d, "0000_a.sql", "SELECT 1;");
        new_migration(d, "b", now()).unwrap();
        let set = load(d).unwrap();
        assert_eq!(set.get("0001_b").unwrap().when, Some(future + 1));
    }

    #[test]
    fn loads_a_thousand_files_quickly() {
        let tmp = tempfile::tempdir().unwrap();
        let body = "CREATE TABLE t (id int);\n".repeat(40);
        for i in 0..1000 {
            write(tmp.path(), &format!("{i:04}_m.sql"), &body);
        }
        let started = std::time::Instant::now();
        let set = load(tmp.path()).unwrap();
        assert_eq!(set.len(), 1000);
        assert_eq!(set.migrations[999].id, "0999_m");
        // Generous bound for debug builds on a busy machine; typically a few tens of ms.
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
