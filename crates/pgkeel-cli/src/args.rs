//! Argument groups shared by every subcommand.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

/// How to reach the database.
#[derive(Debug, Clone, Args, Default)]
#[command(next_help_heading = "Connection (every command)")]
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
#[command(next_help_heading = "Configuration files (every command)")]
pub struct ConfigOpts {
    /// Read this pgkeel.toml instead of ./pgkeel.toml.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Do not read ./.env.
    #[arg(long, global = true)]
    pub no_dotenv: bool,
    /// Read this drizzle-kit config instead of ./drizzle.config.{ts,mts,js,mjs,cjs,json}
    /// (pgkeel reads `out`, `migrations.table/schema/prefix` and `dbCredentials.url` from it,
    /// without running Node; pgkeel.toml, the environment and flags override them).
    #[arg(long, global = true, value_name = "FILE")]
    pub drizzle_config: Option<PathBuf>,
}

/// Where the migrations are.
#[derive(Debug, Clone, Args, Default)]
#[command(next_help_heading = "Migrations folder (every command)")]
pub struct MigrationsOpts {
    /// Migrations folder (default: drizzle/ when it has meta/_journal.json, else the first of
    /// migrations/, prisma/migrations/, supabase/migrations/, db/migrations/ that exists).
    #[arg(long, short = 'm', global = true, value_name = "DIR")]
    pub migrations: Option<PathBuf>,
    /// Read the folder as this tool's layout instead of detecting it: drizzle-journal,
    /// drizzle-folders, native, golang-migrate, prisma, supabase, sqlx, dbmate, goose, flyway
    /// (env PGKEEL_LAYOUT).
    #[arg(long, global = true, value_name = "NAME", value_parser = parse_layout)]
    pub layout: Option<pgkeel::layout::Layout>,
    /// Also write the folder's tool's own ledger (schema_migrations, _prisma_migrations,
    /// goose_db_version, _sqlx_migrations, flyway_schema_history, Supabase's) on every
    /// migrate and rollback, so the team can switch back (env PGKEEL_KEEP_LEDGER_IN_STEP).
    #[arg(long, global = true)]
    pub keep_ledger_in_step: bool,
}

fn parse_layout(s: &str) -> Result<pgkeel::layout::Layout, String> {
    s.parse()
        .map_err(|e: pgkeel::layout::UnknownLayout| e.to_string())
}

/// Output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Text for people, on stderr/stdout.
    #[default]
    Human,
    /// One JSON document on stdout; nothing else on stdout.
    Json,
    /// SQL on stdout: `schema dump` and `schema diff` only (other commands refuse it).
    Sql,
}

/// When to colour the output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// Only on a terminal, and not when NO_COLOR is set.
    #[default]
    Auto,
    /// Always, also on a pipe (NO_COLOR is ignored).
    Always,
    /// Never.
    Never,
}

#[derive(Debug, Clone, Args, Default)]
#[command(next_help_heading = "Output (every command)")]
pub struct OutputOpts {
    /// Output format (sql: `schema dump` and `schema diff` only).
    #[arg(long, global = true, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Colour: auto (a terminal, unless NO_COLOR is set), always, never.
    #[arg(long, global = true, value_enum, value_name = "WHEN", default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// More log output on stderr (-v info, -vv debug). RUST_LOG also works.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
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
    /// Tries in all per migration, the first included, when it hits a lock timeout, deadlock or
    /// serialization failure (1: no retry). Default 5 (PGKEEL_RETRIES).
    #[arg(long, value_name = "N")]
    pub retries: Option<u32>,
    /// How long to wait for another pgkeel holding the deploy lock (e.g. 30s, 10min). Default
    /// 10min (PGKEEL_DEPLOY_LOCK_TIMEOUT).
    #[arg(long, value_name = "DURATION")]
    pub lock_wait: Option<String>,
}

/// Running on many databases: `--targets FILE` and how the run proceeds. Flattened into every
/// command that can run on a fleet (`migrate`; `deploy` next).
#[derive(Debug, Clone, Args, Default)]
pub struct FleetOpts {
    /// Run on every database and tenant schema listed in FILE (a targets.toml with [[database]]
    /// and [[tenants]] entries; see examples/targets.toml), each with its own connection,
    /// deploy lock and ledger. Exit code: 0 when every target is ok or skipped; 3 when every
    /// failure was a connection failure; 4 otherwise (a target failed or was not run).
    #[arg(long, value_name = "FILE")]
    pub targets: Option<PathBuf>,
    /// With --targets: how many targets run at once, each on its own connection (keep it below
    /// the servers' free connection slots).
    #[arg(long, value_name = "N", default_value_t = 4, requires = "targets", value_parser = clap::value_parser!(u16).range(1..))]
    pub parallel: u16,
    /// With --targets: run the first N targets first (at most --parallel at once); if any of
    /// them fails, no other target runs.
    #[arg(long, value_name = "N", default_value_t = 0, requires = "targets")]
    pub canary: usize,
    /// With --targets: keep going after a target fails (default: stop launching new targets at
    /// the first failure; running ones finish, the rest are reported not-run).
    #[arg(long, requires = "targets")]
    pub continue_on_error: bool,
    /// With --targets: skip the targets that are ok or skipped in REPORT, the fleet report of an
    /// earlier run (reports/fleet-*.json), and run the rest.
    #[arg(long, value_name = "REPORT", requires = "targets")]
    pub resume: Option<PathBuf>,
    /// Do not write the command's report (with --targets:
    /// reports/fleet-<command>-YYYY-MM-DD-HHMMSS.json; deploy alone:
    /// reports/deploy-YYYY-MM-DD-HHMMSS.json).
    #[arg(long)]
    pub no_report: bool,
}

/// `--env` / `PGKEEL_ENV` for every command that takes it: one parser, so `prod`, `PRODUCTION`
/// and a typo mean the same everywhere (the typo is refused before anything runs).
pub fn parse_environment(s: &str) -> Result<pgkeel::ops::environment::Environment, String> {
    s.parse()
}

/// `--pg-version` of `lint` and `test`: `15` → 150000; `150004` stays.
pub fn parse_pg_version(v: &str) -> anyhow::Result<u32> {
    let n: u32 = v
        .trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("--pg-version: `{v}` is not a version like 15 or 150004"))?;
    Ok(if n < 100 { n * 10000 } else { n })
}
