//! Argument groups shared by every subcommand.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

/// How to reach the database and where the configuration comes from.
#[derive(Debug, Clone, Args, Default)]
pub struct ConnectOpts {
    /// Database URL, e.g. postgresql://user:password@host:5432/db (overrides DATABASE_URL).
    #[arg(long, global = true, value_name = "URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// libpq sslmode: disable, allow, prefer, require, verify-ca, verify-full.
    #[arg(long, global = true, value_name = "MODE")]
    pub sslmode: Option<String>,
}

/// Where to find configuration files.
#[derive(Debug, Clone, Args, Default)]
pub struct ConfigOpts {
    /// Read this pgshift.toml instead of ./pgshift.toml.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Do not read ./.env.
    #[arg(long, global = true)]
    pub no_dotenv: bool,
}

/// Where the migrations are.
#[derive(Debug, Clone, Args, Default)]
pub struct MigrationsOpts {
    /// Migrations folder (default: drizzle/ when it has meta/_journal.json, else migrations/).
    #[arg(long, short = 'm', global = true, value_name = "DIR")]
    pub migrations: Option<PathBuf>,
}

/// Output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Text for people, on stderr/stdout.
    #[default]
    Human,
    /// One JSON document on stdout; nothing else on stdout.
    Json,
    /// SQL on stdout (`schema dump`, `schema diff`; other commands print the human text).
    Sql,
}

#[derive(Debug, Clone, Args, Default)]
pub struct OutputOpts {
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

/// Lock settings for commands that change the schema.
#[derive(Debug, Clone, Args, Default)]
pub struct SafetyOpts {
    /// lock_timeout per migration (e.g. 5s, 500ms, off). Default 5s.
    #[arg(long, value_name = "DURATION")]
    pub lock_timeout: Option<String>,
    /// statement_timeout per migration (e.g. 30s, 10min, off). Default off.
    #[arg(long, value_name = "DURATION")]
    pub statement_timeout: Option<String>,
    /// Tries per migration on lock timeout, deadlock or serialization failure. Default 5.
    #[arg(long, value_name = "N")]
    pub retries: Option<u32>,
    /// How long to wait for another pgshift holding the deploy lock (e.g. 10min).
    #[arg(long, value_name = "DURATION")]
    pub lock_wait: Option<String>,
}
