//! One module per subcommand.

pub mod backup;
pub mod baseline;
pub mod config;
pub mod demo;
pub mod migrate;
pub mod new;
pub mod repair;
pub mod rollback;
pub mod status;
