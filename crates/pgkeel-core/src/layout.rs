//! The migration folder layouts pgkeel reads ([`Layout`]): their names (as `--layout`,
//! `layout =` in pgkeel.toml and JSON spell them) and the tool each belongs to.
//!
//! A leaf: it says what a layout is called, not how a folder of it is read (`source` owns
//! that) nor which ledger its tool keeps (the `pgkeel` crate's `foreign` module).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How a migration folder is organised; detected by `source::detect_layout` unless given.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// drizzle-kit: `meta/_journal.json` lists `NNNN_tag.sql` files beside it.
    DrizzleJournal,
    /// drizzle v1: one folder per migration, `YYYYMMDDHHMMSS_name/migration.sql` (with
    /// drizzle-kit's `snapshot.json`).
    DrizzleFolders,
    /// pgkeel's own: `NNNN_descriptive_name.sql` with optional `NNNN_descriptive_name.down.sql`.
    Native,
    /// golang-migrate: `<version>_<name>.up.sql` with `<version>_<name>.down.sql`.
    GolangMigrate,
    /// Prisma Migrate: `<name>/migration.sql` folders beside `migration_lock.toml`.
    Prisma,
    /// Supabase CLI: `<digits>_<name>.sql` (the CLI writes 14-digit timestamps).
    Supabase,
    /// sqlx: `<version>_<description>.sql`, or `.up.sql` / `.down.sql` pairs.
    Sqlx,
    /// dbmate: `<version>_<name>.sql` with `-- migrate:up` and `-- migrate:down` sections.
    Dbmate,
    /// goose: `<version>_<name>.sql` with `-- +goose Up` and `-- +goose Down` sections.
    Goose,
    /// Flyway: `V<version>__<description>.sql`, `U<version>__` undo and `R__` repeatable files.
    Flyway,
}

impl Layout {
    /// Every layout, in the order `--help` and errors list them.
    pub const ALL: [Layout; 10] = [
        Layout::DrizzleJournal,
        Layout::DrizzleFolders,
        Layout::Native,
        Layout::GolangMigrate,
        Layout::Prisma,
        Layout::Supabase,
        Layout::Sqlx,
        Layout::Dbmate,
        Layout::Goose,
        Layout::Flyway,
    ];

    /// The kebab-case name used in JSON, config and `--layout` (`drizzle-journal`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DrizzleJournal => "drizzle-journal",
            Self::DrizzleFolders => "drizzle-folders",
            Self::Native => "native",
            Self::GolangMigrate => "golang-migrate",
            Self::Prisma => "prisma",
            Self::Supabase => "supabase",
            Self::Sqlx => "sqlx",
            Self::Dbmate => "dbmate",
            Self::Goose => "goose",
            Self::Flyway => "flyway",
        }
    }

    /// The tool that writes folders of this layout, as people call it.
    pub fn tool(self) -> &'static str {
        match self {
            Self::DrizzleJournal => "drizzle-kit",
            Self::DrizzleFolders => "drizzle-kit v1",
            Self::Native => "pgkeel",
            Self::GolangMigrate => "golang-migrate",
            Self::Prisma => "Prisma Migrate",
            Self::Supabase => "Supabase CLI",
            Self::Sqlx => "sqlx",
            Self::Dbmate => "dbmate",
            Self::Goose => "goose",
            Self::Flyway => "Flyway",
        }
    }

    /// Whether files are split on drizzle's `--> statement-breakpoint` (the drizzle layouts).
    pub fn splits_on_breakpoints(self) -> bool {
        matches!(self, Self::DrizzleJournal | Self::DrizzleFolders)
    }

    /// Whether the layout is drizzle's (journal or v1 folders).
    pub fn is_drizzle(self) -> bool {
        self.splits_on_breakpoints()
    }

    /// The names `--layout` accepts, comma separated, for help and errors.
    pub fn names() -> String {
        Self::ALL.map(Layout::as_str).join(", ")
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A layout name that is none of [`Layout::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown layout {given:?}; use one of {}", Layout::names())]
pub struct UnknownLayout {
    pub given: String,
}

impl FromStr for Layout {
    type Err = UnknownLayout;

    /// Reads [`Layout::as_str`]'s names, plus `drizzle` (journal) and `drizzle-v1` (folders).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        match s {
            "drizzle" => return Ok(Self::DrizzleJournal),
            "drizzle-v1" => return Ok(Self::DrizzleFolders),
            "pgkeel" => return Ok(Self::Native),
            "migrate" => return Ok(Self::GolangMigrate),
            _ => {}
        }
        Self::ALL
            .into_iter()
            .find(|l| l.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownLayout {
                given: s.to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_layout_name_reads_back() {
        for l in Layout::ALL {
            assert_eq!(l.as_str().parse::<Layout>(), Ok(l));
            assert_eq!(serde_json::to_string(&l).unwrap(), format!("\"{l}\""));
        }
        assert_eq!("drizzle".parse(), Ok(Layout::DrizzleJournal));
        assert_eq!(" Prisma ".parse(), Ok(Layout::Prisma));
    }

    #[test]
    fn an_unknown_layout_lists_the_names() {
        let e = "rails".parse::<Layout>().unwrap_err();
        assert!(e.to_string().contains("golang-migrate"), "{e}");
        assert!(e.to_string().contains("\"rails\""), "{e}");
    }
}
