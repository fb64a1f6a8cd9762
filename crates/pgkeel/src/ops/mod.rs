//! Operations that combine features into what production does: the policy layer.
//!
//! [`production`] is `migrate --env production` (a verified backup before anything runs). The
//! engine below (migrate, backup, validate, …) must not import this module; the CLI calls it.
//! Deploy, fleet and the test suite move here next (see the house issue).

pub mod production;
