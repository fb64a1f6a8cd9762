//! One module per subcommand.

pub mod backup;
pub mod baseline;
pub mod completions;
pub mod config;
pub mod demo;
pub mod deploy;
pub mod fleet;
pub mod lint;
pub mod migrate;
pub mod monitor;
pub mod new;
pub mod repair;
pub mod rollback;
pub mod schema;
pub mod serve;
pub mod status;
pub mod test;
pub mod validate;
