//! Migration folders: reading one into an ordered list of [`Migration`]s, and creating new
//! migration files (`pgkeel new`).
//!
//! This module owns:
//! - layout detection ([`Layout`]): a drizzle-kit journal (`meta/_journal.json` + `NNNN_tag.sql`),
//!   drizzle v1 folders (`YYYYMMDDHHMMSS_name/migration.sql`), pgkeel's native
//!   `NNNN_descriptive_name.sql` files, and the folders of golang-migrate, Prisma, Supabase
//!   CLI, sqlx, dbmate, goose and Flyway (the `layouts` submodule), each read with its tool's
//!   naming, order, sections and transaction directives;
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

mod new;
pub use new::*;

mod directives;
pub use directives::*;

mod layouts;
pub use layouts::{flyway_version_key, PRISMA_LOCK};

pub use crate::layout::Layout;

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
        "{} does not follow the migration naming rule {rule}; rename it, or create migrations with `pgkeel new NAME`; a folder another tool wrote is read with --layout NAME (golang-migrate, prisma, supabase, sqlx, dbmate, goose, flyway)",
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

    /// A folder whose files fit more than one tool's layout in ways that change what runs.
    #[error(
        "cannot tell which tool wrote {}: {why}; it could be {}; pass --layout NAME (or set layout = \"NAME\" in pgkeel.toml)",
        .dir.display(), candidates.iter().map(|l| format!("{l} ({})", l.tool())).collect::<Vec<_>>().join(" or ")
    )]
    AmbiguousLayout {
        dir: PathBuf,
        candidates: Vec<Layout>,
        why: String,
    },

    /// A version too large for the integer the folder's tool keeps it in.
    #[error(
        "{}: version {version} is larger than {max}, the largest its tool accepts; rename the file with a smaller version",
        .path.display()
    )]
    BadVersion {
        path: PathBuf,
        version: String,
        max: u64,
    },

    /// A dbmate or goose file without its up section.
    #[error(
        "{} has no `{marker}` line: {} needs one before the migration's SQL; add it",
        .path.display(), .layout.tool()
    )]
    MissingSection {
        path: PathBuf,
        layout: Layout,
        marker: &'static str,
    },

    /// A tool directive pgkeel cannot honour (goose `ENVSUB ON`, an unknown dbmate option).
    #[error("{}:{line}: `{text}`: {why}", .path.display())]
    UnsupportedDirective {
        path: PathBuf,
        line: usize,
        text: String,
        why: String,
    },

    /// `pgkeel new` in a folder another tool writes.
    #[error(
        "pgkeel new writes pgkeel's and drizzle-kit's layouts, and {} is a {} folder; create the migration with {}'s own command, or move to pgkeel's layout (docs/switching.md)",
        .dir.display(), .layout, .layout.tool()
    )]
    NewNotSupported { dir: PathBuf, layout: Layout },

    /// `pgkeel new NAME` with an unusable name.
    #[error(
        "invalid migration name {name:?}: {problem}; a name is ASCII letters, digits, spaces, dashes or underscores (accented Latin letters are spelled in ASCII: \"Ünïcode\" becomes unicode), like \"add users table\""
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
            Self::BadChar(c) => write!(f, "it contains {c:?}, which has no ASCII spelling"),
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

/// A rollback file: `NNNN_name.down.sql` (native), `<tag>.down.sql` beside a drizzle journal
/// (pgkeel extension) or `down.sql` in a drizzle v1 folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
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
    /// The leading `-- pgkeel:` directives, with the tool's own "no transaction" directive
    /// (sqlx `-- no-transaction`, dbmate `transaction:false`, goose `NO TRANSACTION`, Flyway
    /// `executeInTransaction=false`) folded into `no_transaction`.
    pub directives: Directives,
    /// A Flyway `R__` migration: applied again whenever its file changes.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub repeatable: bool,
}

/// A piece of a migration file that is sent to the server as one query string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
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

    /// Where this migration's rollback belongs in its layout: `<id>.down.sql` beside it, a
    /// drizzle v1 or Prisma folder's `down.sql`, a Flyway `U<version>__…` file, or (dbmate,
    /// goose) the file itself, whose down section holds it.
    pub fn down_path(&self) -> PathBuf {
        let beside = |name: String| self.path.with_file_name(name);
        match self.layout {
            Layout::DrizzleFolders | Layout::Prisma => beside("down.sql".into()),
            Layout::Dbmate | Layout::Goose => self.path.clone(),
            Layout::Flyway => beside(format!(
                "U{}.sql",
                self.id.strip_prefix('V').unwrap_or(&self.id)
            )),
            _ => beside(format!("{}.down.sql", self.id)),
        }
    }

    /// How to give this migration a rollback, for messages: "write X" or "add a down section".
    pub fn down_hint(&self) -> String {
        match self.layout {
            Layout::Dbmate => format!("add a `-- migrate:down` section to {}", self.path.display()),
            Layout::Goose => format!("add a `-- +goose Down` section to {}", self.path.display()),
            _ => format!("write {}", self.down_path().display()),
        }
    }

    /// The version its tool keys the migration by in its own ledger: the leading digits of a
    /// numbered file (golang-migrate, sqlx, Supabase, dbmate, goose, native), the version of a
    /// Flyway `V` file (`None` for `R__`), the tag or folder name otherwise.
    pub fn version(&self) -> Option<&str> {
        match self.layout {
            Layout::DrizzleJournal | Layout::DrizzleFolders | Layout::Prisma => Some(&self.id),
            Layout::Flyway => self
                .id
                .strip_prefix('V')
                .and_then(|r| r.split_once("__"))
                .map(|(v, _)| v),
            _ => {
                let digits = self.id.bytes().take_while(u8::is_ascii_digit).count();
                (digits > 0).then(|| &self.id[..digits])
            }
        }
    }
}

/// A migration folder, read and ordered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct FolderWarning {
    pub path: PathBuf,
    pub kind: FolderWarningKind,
}

/// Why a [`FolderWarning`]'s file never runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum FolderWarningKind {
    /// A `NNNN_*.sql` file the drizzle journal does not list.
    NotInJournal,
    /// A `NNNN_*.down.sql` file whose migration the drizzle journal does not list.
    DownNotInJournal,
    /// A folder with a `migration.sql` whose name does not start with `YYYYMMDDHHMMSS_`.
    FolderNameNotATimestamp,
    /// A `.sql` file another tool's layout skips because its name does not fit `rule`.
    NotALayoutFile { layout: Layout, rule: &'static str },
    /// A goose migration written in Go: compiled into the team's binary, never run by pgkeel.
    GoMigration,
    /// A rollback (`.down.sql`, Flyway `U` file) whose migration is not in the folder.
    DownWithoutUp,
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
            FolderWarningKind::NotALayoutFile { layout, rule } => write!(
                f,
                "{} does not fit {}'s naming ({rule}): {} skips it, and so does pgkeel; rename it if it should run",
                self.path.display(),
                layout,
                layout.tool()
            ),
            FolderWarningKind::GoMigration => write!(
                f,
                "{} is a goose migration written in Go: pgkeel cannot run it; port it to a .sql migration, or apply it with goose first",
                self.path.display()
            ),
            FolderWarningKind::DownWithoutUp => write!(
                f,
                "{} is a rollback whose migration is not in the folder: it is never used; rename it to match its migration or delete it",
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

/// Where the tools keep their folders by default, after `drizzle/`: the first that exists is
/// the one pgkeel works on.
const DEFAULT_DIRS: &[&str] = &[
    "migrations",
    "prisma/migrations",
    "supabase/migrations",
    "db/migrations",
    "src/main/resources/db/migration",
];

/// The folder `pgkeel` works on: `explicit` (relative to `cwd`) when given; else `drizzle/`
/// when `drizzle/meta/_journal.json` exists; else the first of `migrations/`,
/// `prisma/migrations/`, `supabase/migrations/`, `db/migrations/` (dbmate) and
/// `src/main/resources/db/migration/` (Flyway) that exists; else `migrations/`.
pub fn resolve_dir(explicit: Option<&Path>, cwd: &Path) -> PathBuf {
    if let Some(dir) = explicit {
        return cwd.join(dir);
    }
    let drizzle = cwd.join("drizzle");
    if drizzle.join(JOURNAL_PATH).is_file() {
        return drizzle;
    }
    DEFAULT_DIRS
        .iter()
        .map(|d| cwd.join(d))
        .find(|d| d.is_dir())
        .unwrap_or_else(|| cwd.join("migrations"))
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

/// Which layout `dir` uses. A drizzle journal, Prisma's `migration_lock.toml` or drizzle-kit's
/// per-folder `snapshot.json`, Flyway's `V<version>__` names, golang-migrate's `.up.sql`
/// files, and dbmate's or goose's section markers each name their tool; plain numbered files
/// are pgkeel's when every name fits its rule, else Supabase's (inside a `supabase` folder or
/// with 14-digit versions) or sqlx's. Files that fit two tools differently are
/// [`SourceError::AmbiguousLayout`].
pub fn detect_layout(dir: &Path) -> Result<Layout, SourceError> {
    check_dir(dir)?;
    layouts::detect(dir, &list(dir)?)
}

/// Reads the migration folder `dir`: detects its layout, reads every migration and rollback,
/// hashes them, parses their directives and checks the folder's consistency. Never touches the
/// database.
pub fn load(dir: &Path) -> Result<MigrationSet, SourceError> {
    load_as(dir, None)
}

/// [`load`], reading the folder as `layout` when given (`--layout`) instead of detecting it.
pub fn load_as(dir: &Path, layout: Option<Layout>) -> Result<MigrationSet, SourceError> {
    check_dir(dir)?;
    let entries = list(dir)?;
    let layout = match layout {
        Some(l) => l,
        None => layouts::detect(dir, &entries)?,
    };
    let mut warnings = Vec::new();
    let mut migrations = match layout {
        Layout::DrizzleJournal => load_journal(dir, &entries, &mut warnings)?,
        Layout::DrizzleFolders => load_folders(&entries, &mut warnings)?,
        Layout::Native => load_native(&entries)?,
        Layout::Prisma => layouts::load_prisma(dir, &entries)?,
        Layout::Flyway => layouts::load_flyway(&entries, &mut warnings)?,
        Layout::GolangMigrate
        | Layout::Supabase
        | Layout::Sqlx
        | Layout::Dbmate
        | Layout::Goose => layouts::load_numbered(layout, &entries, &mut warnings)?,
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
        repeatable: false,
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

/// The migration of a one-folder-per-migration layout (drizzle v1, Prisma): the folder's
/// `migration.sql`, which must exist, and its optional `down.sql`.
fn folder_migration(e: &Entry, when: Option<i64>) -> Result<Found, SourceError> {
    let path = e.path.join("migration.sql");
    if !path.is_file() {
        return Err(SourceError::MissingFolderMigration {
            folder: e.path.clone(),
            expected: path,
        });
    }
    let down = e.path.join("down.sql");
    Ok(Found {
        id: e.name.clone(),
        path,
        when,
        breakpoints: true,
        down: down.is_file().then_some(down),
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
        migrations.push(read_migration(
            folder_migration(e, Some(when))?,
            Layout::DrizzleFolders,
        )?);
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

#[cfg(test)]
mod tests;

#[cfg(test)]
#[path = "layouts_tests.rs"]
mod layouts_tests;
