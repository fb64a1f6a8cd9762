//! The schema model without a server: a [`Snapshot`] (model.rs, stable sorted JSON), the
//! dependency-ordered [`Diff`] of two snapshots (diff.rs) and the DDL that renders it (ddl.rs).
//! Reading a snapshot from a live database is `pgkeel::schema::introspect`'s; this module
//! runs nothing.

pub mod ddl;
pub mod diff;
pub mod drizzle_snapshot;
pub mod model;

pub use diff::{diff, Action, Change, Diff, Hazard, ObjectKind, Phase};
pub use model::Snapshot;
