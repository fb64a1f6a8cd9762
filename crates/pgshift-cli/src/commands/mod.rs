//! One module per subcommand.

pub mod baseline;
pub mod config;
pub mod demo;
pub mod migrate;
pub mod new;
pub mod repair;
pub mod rollback;
pub mod schema;
pub mod status;
