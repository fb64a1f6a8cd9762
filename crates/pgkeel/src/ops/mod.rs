//! Operations that combine features into what production does: the policy layer.
//!
//! [`production`] is `migrate --env production` (a verified backup before anything runs);
//! [`deploy`] is the whole production pipeline (pre-flight checks, backup, migrate, validation,
//! performance, health) as one step-by-step report; [`fleet`] runs migrate or deploy on many
//! databases or tenant schemas with bounded concurrency, canaries and resumable reports;
//! [`environment`] is the `--env` every command shares;
//! [`testing`] is the migration test suite (apply, roll back, re-apply, compare, in a scratch
//! database). The engine below (migrate, backup, validate, …) must not import this module; the
//! CLI calls it.

pub mod deploy;
pub mod environment;
pub mod fleet;
pub mod production;
pub mod testing;
