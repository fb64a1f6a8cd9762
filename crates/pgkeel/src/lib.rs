//! pgkeel: safe PostgreSQL schema changes.
//!
//! Data flows one way: a migration folder is read by [`source`], its statements are parsed by
//! [`sql`], [`migrate`] plans what to run against the ledger ([`ledger`]) and executes it over a
//! connection from [`db`]; [`rollback`] undoes one (down file or SQL generated from the parse
//! tree) and [`drizzle`] keeps drizzle-orm's own table in step. [`config`] resolves settings once (defaults < `pgkeel.toml` <
//! environment < flags) and every other module receives them. [`embedded`] runs a private
//! PostgreSQL server for the demo; [`demo`] carries the example project. [`report`] holds the
//! finding/severity types and writes the JSON reports under `reports/`; [`validate`] judges a live
//! database (data integrity, performance) and reports findings; [`lint`] checks migration files for
//! operations that lock, rewrite or break a live database. [`schema`] turns a database into a
//! snapshot, compares snapshots and renders DDL; [`scratch`] provides the throw-away databases it
//! (and every other feature) applies migrations to; [`testing`] is the migration test suite
//! (apply, roll back, re-apply, compare, in a scratch database); [`monitor`] collects health,
//! migration status, performance and alerts and serves them over HTTP; [`backup`] takes and
//! restores consistent, compressed, encrypted backups. [`deploy`] runs the whole production pipeline
//! (pre-flight checks, backup, migrate, post-migration validation, performance assessment, health
//! URL) as one step-by-step report; [`fleet`] runs a command (migrate, deploy) on many databases
//! or tenant schemas listed in a targets file, with bounded concurrency, canaries and resumable
//! reports. The CLI crate never talks SQL.
//!
//! Leaves that every layer may use and that use nothing of the crate: [`ident`] (quoting),
//! [`duration`] (`5s`, `2min`, `off`) and [`location`] (`file:line:col` with a caret).
//! `tests/layering.rs` keeps the module graph from growing new back-edges.

pub use pgkeel_core::{
    config, duration, ident, invert, layout, lint, location, outcome, report, source, sql,
};

pub mod backup;
pub mod db;
pub mod demo;
pub mod drizzle;
pub mod embedded;
pub mod foreign;
pub mod ledger;
pub mod migrate;
pub mod monitor;
pub mod ops;
pub use ops::{deploy, fleet, testing};
pub mod rollback;
pub mod schema;
pub mod scratch;
pub mod snapshot_input;
pub mod validate;
