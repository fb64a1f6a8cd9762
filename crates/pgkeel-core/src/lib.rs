//! pgkeel-core: everything pgkeel knows without a server.
//!
//! [`config`] resolves settings once (defaults < `pgkeel.toml` < environment < flags);
//! [`source`] reads a migration folder (layouts, directives, checksums) and writes new files;
//! [`sql`] splits a file into statements exactly as psql would and groups them into
//! transactions; [`invert`] turns statements into their rollback from the parse tree; [`lint`]
//! checks migration files for operations that lock, rewrite or break a live database;
//! [`schema`] is the snapshot model, its diff and its DDL; [`report`] holds findings and writes
//! the JSON reports; [`outcome`] is the one failure classification every error maps to.
//! Leaves: [`ident`] (quoting), [`duration`] (`5s`, `2min`, `off`), [`location`]
//! (`file:line:col` with a caret), [`layout`] (the folder layouts' names).
//!
//! This crate depends on no async runtime and no PostgreSQL client: running anything against a
//! database is the `pgkeel` crate's, which re-exports these modules at the same paths.

pub mod config;
pub mod duration;
pub mod ident;
pub mod invert;
pub mod layout;
pub mod lint;
pub mod location;
pub mod outcome;
pub mod report;
pub mod schema;
pub mod source;
pub mod sql;
