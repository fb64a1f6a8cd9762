//! Settings, resolved once: defaults < `pgkeel.toml` < `.env` < process environment < flags,
//! remembering where each value came from ([`Origin`]); and the redaction of secrets
//! ([`redact_url`], the `Debug` impls, [`Settings::entries`]).
//!
//! This module owns the names of every setting: its `pgkeel.toml` key (kebab-case, the key of
//! [`Settings::origins`] and [`ConfigEntry::key`]), its environment variable and its default.
//! `docs/pgkeel.toml` is the reference file; a test keeps it in step with this module.
//!
//! It must not do I/O beyond reading `pgkeel.toml` and `.env` (it never touches the process
//! environment: [`LoadOptions::env`] is injected), and it never talks to the database. Other
//! modules receive a [`Settings`] and decide what the values mean (for example `db` chooses the
//! effective `sslmode` from the URL, [`Settings::sslmode`] and [`Settings::ssl`]).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::duration::{format as format_duration, parse_value as parse_duration_value};

pub mod drizzle;
mod redact;
pub use redact::*;

/// The name of the config file looked up in the working directory.
pub const CONFIG_FILE_NAME: &str = "pgkeel.toml";

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Built-in default.
    Default,
    /// The `pgkeel.toml` that was read.
    File(PathBuf),
    /// The `.env` file, under this variable name.
    DotEnv { path: PathBuf, var: String },
    /// The process environment, under this variable name.
    Env(String),
    /// A command-line flag.
    Flag,
    /// drizzle-kit's config file (`drizzle.config.ts`, …), through `process.env.VAR` when
    /// `var` is set.
    Drizzle { path: PathBuf, var: Option<String> },
    /// The default moved off drizzle-orm's own table, which has this name (`public.__drizzle_migrations`).
    AvoidsDrizzle(String),
}

impl Origin {
    /// Names the place to fix a bad value of `key`, for error messages: unlike `Display` it
    /// shows full paths.
    fn place(&self, key: &str) -> String {
        match self {
            Origin::Default => format!("the default of {key}"),
            Origin::File(path) => format!("`{key}` in {}", path.display()),
            Origin::DotEnv { path, var } => format!("{var} in {}", path.display()),
            Origin::Env(var) => format!("environment variable {var}"),
            Origin::Flag => format!("the command-line flag for {key}"),
            Origin::Drizzle { path, var: None } => format!("`{key}` in {}", path.display()),
            Origin::Drizzle { path, var: Some(v) } => {
                format!("environment variable {v}, named by {}", path.display())
            }
            Origin::AvoidsDrizzle(t) => {
                format!("the default of {key}, moved off drizzle-orm's table {t}")
            }
        }
    }
}

/// Short form for `pgkeel config`: `default`, `pgkeel.toml`, `.env (DATABASE_URL)`,
/// `env DATABASE_URL`, `flag`.
impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn file_name(path: &Path) -> String {
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| path.display().to_string())
        }
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File(path) => f.write_str(&file_name(path)),
            Origin::DotEnv { path, var } => write!(f, "{} ({var})", file_name(path)),
            Origin::Env(var) => write!(f, "env {var}"),
            Origin::Flag => f.write_str("flag"),
            Origin::Drizzle { path, var: None } => f.write_str(&file_name(path)),
            Origin::Drizzle { path, var: Some(v) } => {
                write!(f, "{} (process.env.{v})", file_name(path))
            }
            Origin::AvoidsDrizzle(t) => write!(f, "moved off drizzle-orm's {t}"),
        }
    }
}

impl schemars::JsonSchema for Origin {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Origin".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Where a setting's value came from",
            "type": "object",
            "required": ["kind"],
            "properties": {
                "kind": { "enum": ["default", "file", "dotenv", "env", "flag", "drizzle"] },
                "path": { "type": "string" },
                "var": { "type": "string" }
            }
        })
    }
}

/// `{"kind": "default" | "file" | "dotenv" | "env" | "flag", "path"?: …, "var"?: …}`.
impl Serialize for Origin {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut m = serializer.serialize_map(None)?;
        match self {
            Origin::Default => m.serialize_entry("kind", "default")?,
            Origin::File(path) => {
                m.serialize_entry("kind", "file")?;
                m.serialize_entry("path", path)?;
            }
            Origin::DotEnv { path, var } => {
                m.serialize_entry("kind", "dotenv")?;
                m.serialize_entry("path", path)?;
                m.serialize_entry("var", var)?;
            }
            Origin::Env(var) => {
                m.serialize_entry("kind", "env")?;
                m.serialize_entry("var", var)?;
            }
            Origin::Flag => m.serialize_entry("kind", "flag")?,
            Origin::Drizzle { path, var } => {
                m.serialize_entry("kind", "drizzle")?;
                m.serialize_entry("path", path)?;
                if let Some(v) = var {
                    m.serialize_entry("var", v)?;
                }
            }
            Origin::AvoidsDrizzle(t) => {
                m.serialize_entry("kind", "default")?;
                m.serialize_entry("avoids", t)?;
            }
        }
        m.end()
    }
}

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

const SSLMODES: &str = "disable, allow, prefer, require, verify-ca or verify-full";

/// An `sslmode` that libpq does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown sslmode `{input}`: use {SSLMODES}")]
pub struct ParseSslModeError {
    pub input: String,
}

/// libpq's spellings (`verify-full`), ignoring case and surrounding whitespace.
impl FromStr for SslMode {
    type Err = ParseSslModeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => {
                return Err(ParseSslModeError {
                    input: s.to_string(),
                })
            }
        })
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        })
    }
}

/// `BACKUP_COMPRESSION_LEVEL`: how hard backups are compressed. They are always zstd.
///
/// A plain number is on the 1–9 scale the spec's `BACKUP_COMPRESSION_LEVEL=6` comes from
/// (Node's zlib, gzip, `pg_dump -Z`, where 6 is the default) and picks the zstd level of about
/// the same effort: 6, zlib's default, is zstd's default 3. `zstd:N` asks for zstd level N
/// (1–22) exactly. On bench/backup.sh's data every mapped level gave a smaller output than gzip
/// at the same number, in less time (bench/README.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompressionLevel {
    /// 1–9, gzip's scale.
    Scale(u8),
    /// `zstd:N`, 1–22.
    Zstd(i32),
}

/// zstd level for each step of the 1–9 scale (index 0 unused).
const SCALE_TO_ZSTD: [i32; 10] = [0, 1, 1, 2, 2, 3, 3, 5, 7, 9];

const COMPRESSION_LEVELS: &str =
    "1 to 9 (gzip's scale, as the spec's 6 and pg_dump -Z; 6 is zstd level 3) \
     or zstd:1 to zstd:22 for an exact zstd level";

impl CompressionLevel {
    /// The zstd level backups are written with.
    pub fn zstd(self) -> i32 {
        match self {
            CompressionLevel::Scale(n) => SCALE_TO_ZSTD[usize::from(n)],
            CompressionLevel::Zstd(n) => n,
        }
    }
}

impl Default for CompressionLevel {
    fn default() -> Self {
        CompressionLevel::Scale(6)
    }
}

/// A compression level pgkeel does not take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid compression level `{input}`: use {COMPRESSION_LEVELS}")]
pub struct ParseCompressionLevelError {
    pub input: String,
}

impl FromStr for CompressionLevel {
    type Err = ParseCompressionLevelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseCompressionLevelError {
            input: s.to_string(),
        };
        let t = s.trim();
        match t.to_ascii_lowercase().strip_prefix("zstd:") {
            Some(n) => match n.trim().parse::<i32>() {
                Ok(n) if (1..=22).contains(&n) => Ok(CompressionLevel::Zstd(n)),
                _ => Err(err()),
            },
            None => match t.parse::<u8>() {
                Ok(n) if (1..=9).contains(&n) => Ok(CompressionLevel::Scale(n)),
                _ => Err(err()),
            },
        }
    }
}

impl fmt::Display for CompressionLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompressionLevel::Scale(n) => write!(f, "{n}"),
            CompressionLevel::Zstd(n) => write!(f, "zstd:{n}"),
        }
    }
}

/// pgkeel.toml: `compression-level = 6` or `compression-level = "zstd:19"`.
impl<'de> Deserialize<'de> for CompressionLevel {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = CompressionLevel;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(COMPRESSION_LEVELS)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<CompressionLevel, E> {
                v.to_string()
                    .parse()
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<CompressionLevel, E> {
                v.to_string()
                    .parse()
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(v), &self))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<CompressionLevel, E> {
                v.parse()
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Str(v), &self))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// libpq's connection variables (`PGHOST` …), used when there is no database URL. `Debug`
/// hides the password.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PgEnv {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub database: Option<String>,
    /// `PGPASSFILE` (default `~/.pgpass`).
    pub passfile: Option<PathBuf>,
    /// `PGSERVICE`: a section of the connection service file.
    pub service: Option<String>,
    /// `PGSERVICEFILE` (default `~/.pg_service.conf`, then `PGSYSCONFDIR/pg_service.conf`).
    pub servicefile: Option<PathBuf>,
    /// `PGSSLCERT` / `PGSSLKEY`: the client certificate and its key (default
    /// `~/.postgresql/postgresql.crt` / `.key` when they exist).
    pub sslcert: Option<PathBuf>,
    pub sslkey: Option<PathBuf>,
    /// `PGTARGETSESSIONATTRS`: `any` or `read-write` (with several hosts).
    pub target_session_attrs: Option<String>,
}

impl fmt::Debug for PgEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgEnv")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("database", &self.database)
            .field("passfile", &self.passfile)
            .field("service", &self.service)
            .field("servicefile", &self.servicefile)
            .field("sslcert", &self.sslcert)
            .field("sslkey", &self.sslkey)
            .field("target_session_attrs", &self.target_session_attrs)
            .finish()
    }
}

/// Every setting pgkeel knows. `Debug` redacts secrets.
#[derive(Clone)]
pub struct Settings {
    /// `DATABASE_URL`, raw: it may hold a password. Show it with [`redact_url`].
    pub database_url: Option<String>,
    /// `DATABASE_SSL`: TLS required (at least `sslmode=require`).
    pub ssl: bool,
    /// `PGSSLMODE`; `None` = not set (the URL's `sslmode`, then this, then `ssl`, else `prefer`).
    pub sslmode: Option<SslMode>,
    /// `PGSSLROOTCERT`: CA certificates for `verify-ca` / `verify-full`.
    pub sslrootcert: Option<PathBuf>,
    pub pg: PgEnv,
    /// `DATABASE_CONNECTION_POOL_SIZE`, at least 1.
    pub pool_size: usize,
    /// `DATABASE_CONNECTION_TIMEOUT`.
    pub connect_timeout: Duration,
    /// `DATABASE_IDLE_TIMEOUT`.
    pub idle_timeout: Duration,
    /// `DATABASE_MAX_LIFETIME`.
    pub max_lifetime: Duration,
    /// `BACKUP_RETENTION_DAYS`.
    pub backup_retention_days: u32,
    /// `BACKUP_COMPRESSION_LEVEL`, see [`CompressionLevel`].
    pub backup_compression_level: CompressionLevel,
    /// `PGKEEL_BACKUP_DIR`, relative to the working directory unless absolute.
    pub backup_dir: PathBuf,
    /// `BACKUP_ENCRYPTION_RECIPIENTS`: age public keys (comma or space separated) every backup
    /// file is encrypted to. Empty = no recipients.
    pub backup_encryption_recipients: Vec<String>,
    /// `BACKUP_ENCRYPTION_PASSPHRASE`: environment only (never pgkeel.toml); never shown.
    pub backup_encryption_passphrase: Option<String>,
    /// `BACKUP_ENCRYPTION_IDENTITY_FILE`: age identity file used to read encrypted backups.
    pub backup_encryption_identity_file: Option<PathBuf>,
    /// `HEALTH_CHECK_TIMEOUT`.
    pub health_check_timeout: Duration,
    /// `READINESS_CHECK_TIMEOUT`.
    pub readiness_check_timeout: Duration,
    /// `PGKEEL_MIGRATIONS`; `None` = detect (`source` decides).
    pub migrations_dir: Option<PathBuf>,
    /// `PGKEEL_LAYOUT`: read the folder as this tool's layout; `None` = detect.
    pub layout: Option<crate::layout::Layout>,
    /// `PGKEEL_KEEP_LEDGER_IN_STEP`: also write the folder's tool's own ledger (golang-migrate's
    /// `schema_migrations`, Prisma's `_prisma_migrations`, ...) on every apply and rollback, so
    /// the team can switch back to that tool.
    pub keep_ledger_in_step: bool,
    /// `PGKEEL_REPORTS_DIR`, relative to the working directory unless absolute.
    pub reports_dir: PathBuf,
    /// Schema of pgkeel's ledger (the spec's migration table).
    pub ledger_schema: String,
    pub ledger_table: String,
    /// Schema of drizzle-orm's own migration table, read when taking over a drizzle database.
    pub drizzle_schema: String,
    pub drizzle_table: String,
    /// `PGKEEL_LOCK_TIMEOUT`: PostgreSQL `lock_timeout` for migrations; zero = disabled.
    pub lock_timeout: Duration,
    /// `PGKEEL_STATEMENT_TIMEOUT`: PostgreSQL `statement_timeout`; zero = disabled.
    pub statement_timeout: Duration,
    /// `PGKEEL_RETRIES`: tries (at least 1) on lock timeout, deadlock, serialization failure.
    pub retries: u32,
    /// `PGKEEL_DEPLOY_LOCK_TIMEOUT`: how long to wait for another pgkeel holding the deploy lock.
    pub deploy_lock_timeout: Duration,
    /// Schemas the connection's `search_path` is set to (a startup option, so it holds for every
    /// statement of the session); empty = the server's default. Not a pgkeel.toml key: `fleet`
    /// sets it to a tenant's schema so its unqualified names land there.
    pub search_path: Vec<String>,
    /// Setting key (as in pgkeel.toml, e.g. `pool-size`, `ledger.schema`; `pghost` … for the
    /// libpq variables) → where its value came from. [`Settings::defaults`] fills every key
    /// with [`Origin::Default`].
    pub origins: BTreeMap<String, Origin>,
    /// The pgkeel.toml actually read, if any.
    pub config_file: Option<PathBuf>,
    /// The drizzle config file read, if any ([`drizzle`]).
    pub drizzle_config: Option<PathBuf>,
    /// drizzle-kit's `migrations.prefix` (`index`, `timestamp`, `unix`, `supabase`, `none`):
    /// how `new` names files in a drizzle folder. `None`: drizzle's default, `index`.
    pub migration_prefix: Option<String>,
    /// The schemas schema snapshots, `validate --schema` and drift read when none are named:
    /// drizzle-kit's `schemaFilter`, else `public`.
    pub schemas: Vec<String>,
    /// drizzle-kit's `tablesFilter`: globs of the table names drizzle manages (`!` excludes);
    /// empty = every table.
    pub tables_filter: Vec<String>,
    /// What the configuration files set that pgkeel could not use, to say once (on stderr).
    pub notes: Vec<String>,
    /// The raw `[monitor]` section of pgkeel.toml (empty when absent); `monitor` reads its
    /// `[monitor.thresholds]` and says what is wrong with it.
    pub monitor: toml::Table,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url),
            )
            .field("ssl", &self.ssl)
            .field("sslmode", &self.sslmode)
            .field("sslrootcert", &self.sslrootcert)
            .field("pg", &self.pg)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_lifetime", &self.max_lifetime)
            .field("backup_retention_days", &self.backup_retention_days)
            .field("backup_compression_level", &self.backup_compression_level)
            .field("backup_dir", &self.backup_dir)
            .field(
                "backup_encryption_recipients",
                &self.backup_encryption_recipients,
            )
            .field(
                "backup_encryption_passphrase",
                &self.backup_encryption_passphrase.as_ref().map(|_| "***"),
            )
            .field(
                "backup_encryption_identity_file",
                &self.backup_encryption_identity_file,
            )
            .field("health_check_timeout", &self.health_check_timeout)
            .field("readiness_check_timeout", &self.readiness_check_timeout)
            .field("migrations_dir", &self.migrations_dir)
            .field("reports_dir", &self.reports_dir)
            .field("ledger_schema", &self.ledger_schema)
            .field("ledger_table", &self.ledger_table)
            .field("drizzle_schema", &self.drizzle_schema)
            .field("drizzle_table", &self.drizzle_table)
            .field("lock_timeout", &self.lock_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("retries", &self.retries)
            .field("deploy_lock_timeout", &self.deploy_lock_timeout)
            .field("search_path", &self.search_path)
            .field("origins", &self.origins)
            .field("config_file", &self.config_file)
            .field("monitor", &self.monitor)
            .finish()
    }
}

/// Values from command-line flags (the top layer). `Debug` redacts the URL.
#[derive(Clone, Default)]
pub struct Overrides {
    pub database_url: Option<String>,
    pub migrations_dir: Option<PathBuf>,
    /// `--layout NAME`.
    pub layout: Option<crate::layout::Layout>,
    /// `--keep-ledger-in-step` (only ever turns it on).
    pub keep_ledger_in_step: bool,
    pub sslmode: Option<SslMode>,
    pub lock_timeout: Option<Duration>,
    pub statement_timeout: Option<Duration>,
    pub retries: Option<u32>,
    pub deploy_lock_timeout: Option<Duration>,
    pub reports_dir: Option<PathBuf>,
    pub pool_size: Option<usize>,
    /// `--drizzle-config FILE` (must exist); else `drizzle.config.*` in the working directory.
    pub drizzle_config: Option<PathBuf>,
}

impl fmt::Debug for Overrides {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Overrides")
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url),
            )
            .field("migrations_dir", &self.migrations_dir)
            .field("sslmode", &self.sslmode)
            .field("lock_timeout", &self.lock_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("retries", &self.retries)
            .field("deploy_lock_timeout", &self.deploy_lock_timeout)
            .field("reports_dir", &self.reports_dir)
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

/// What [`load`] reads. `Debug` leaves out the environment (it holds secrets).
#[derive(Clone, Default)]
pub struct LoadOptions {
    /// The working directory: where `pgkeel.toml` and `.env` are looked up, and what a relative
    /// `config_path` is relative to.
    pub cwd: PathBuf,
    /// `--config FILE`: must exist.
    pub config_path: Option<PathBuf>,
    /// Read `<cwd>/.env` (false with `--no-dotenv`).
    pub dotenv: bool,
    /// The process environment, injected so tests can control it.
    pub env: HashMap<String, String>,
    pub overrides: Overrides,
}

impl fmt::Debug for LoadOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadOptions")
            .field("cwd", &self.cwd)
            .field("config_path", &self.config_path)
            .field("dotenv", &self.dotenv)
            .field("env", &format_args!("({} variables)", self.env.len()))
            .field("overrides", &self.overrides)
            .finish()
    }
}

impl LoadOptions {
    /// Options over the real process environment (variables that are not valid UTF-8 are
    /// skipped: none of pgkeel's are).
    pub fn from_process(
        cwd: PathBuf,
        config_path: Option<PathBuf>,
        dotenv: bool,
        overrides: Overrides,
    ) -> Self {
        let env = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        LoadOptions {
            cwd,
            config_path,
            dotenv,
            env,
            overrides,
        }
    }
}

/// Configuration errors. A secret's value is never part of a message.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Drizzle(#[from] drizzle::DrizzleConfigError),
    #[error(
        "drizzle config {} does not exist: fix the --drizzle-config path, or leave it out to read drizzle.config.ts (or .js, .mjs, .json …) from the working directory",
        path.display()
    )]
    DrizzleConfigNotFound { path: PathBuf },
    #[error(
        "pgkeel's ledger is set to {table}, which is drizzle-orm's own migrations table (ledger from {ledger_origin}, drizzle's schema from {drizzle_origin}): their columns differ, so they cannot share it; leave ledger.table unset (pgkeel then uses {LEDGER_BESIDE_DRIZZLE}) or name another table"
    )]
    LedgerIsDrizzles {
        table: String,
        ledger_origin: Origin,
        drizzle_origin: Origin,
    },
    #[error(
        "config file {} does not exist: fix the --config path, or leave --config out to read \
         pgkeel.toml from the working directory",
        path.display()
    )]
    FileNotFound { path: PathBuf },

    #[error("cannot read config file {}: check that it is a readable UTF-8 file", path.display())]
    ReadFile {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },

    /// `message` is toml's, with line, column and the offending line (URLs in it redacted).
    #[error(
        "invalid config file {}: {message}\n(docs/pgkeel.toml lists every key and its format)",
        path.display()
    )]
    Toml { path: PathBuf, message: String },

    /// A secret in pgkeel.toml: refused, never used (the value is not echoed).
    #[error(
        "{} sets {key}, a secret, which pgkeel never reads from a file (files get committed and copied): remove it and set {var} in the environment instead",
        path.display()
    )]
    SecretInFile {
        path: PathBuf,
        key: &'static str,
        var: &'static str,
    },

    #[error("cannot read {}: check that it is a readable UTF-8 file, or pass --no-dotenv", path.display())]
    ReadDotEnv {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },

    /// The offending line is not echoed: it may hold a secret.
    #[error(
        "cannot parse {} at line {line}: expected `NAME=value` with balanced quotes \
         (quote values that contain spaces or `#`), or pass --no-dotenv",
        path.display()
    )]
    DotEnvSyntax { path: PathBuf, line: usize },

    /// `value` is `None` when the setting is a secret.
    #[error(
        "{} has invalid value {}: expected {expected}; fix or remove it",
        origin.place(key),
        value.as_deref().map_or_else(|| "(hidden)".to_string(), |v| format!("`{v}`"))
    )]
    InvalidValue {
        /// The setting's key (`pool-size`); the variable name is in `origin`.
        key: String,
        value: Option<String>,
        origin: Origin,
        expected: String,
    },
}

/// Which environment variable sets which setting key.
const ENV_VARS: &[(&str, &str)] = &[
    ("DATABASE_URL", "database-url"),
    ("DATABASE_SSL", "ssl"),
    ("PGSSLMODE", "sslmode"),
    ("PGSSLROOTCERT", "sslrootcert"),
    ("PGHOST", "pghost"),
    ("PGPORT", "pgport"),
    ("PGUSER", "pguser"),
    ("PGPASSWORD", "pgpassword"),
    ("PGDATABASE", "pgdatabase"),
    ("PGPASSFILE", "pgpassfile"),
    ("PGSERVICE", "pgservice"),
    ("PGSERVICEFILE", "pgservicefile"),
    ("PGSSLCERT", "sslcert"),
    ("PGSSLKEY", "sslkey"),
    ("PGTARGETSESSIONATTRS", "pgtargetsessionattrs"),
    ("DATABASE_CONNECTION_POOL_SIZE", "pool-size"),
    ("DATABASE_CONNECTION_TIMEOUT", "connect-timeout"),
    ("DATABASE_IDLE_TIMEOUT", "idle-timeout"),
    ("DATABASE_MAX_LIFETIME", "max-lifetime"),
    ("HEALTH_CHECK_TIMEOUT", "health-check-timeout"),
    ("READINESS_CHECK_TIMEOUT", "readiness-check-timeout"),
    ("PGKEEL_MIGRATIONS", "migrations"),
    ("PGKEEL_LAYOUT", "layout"),
    ("PGKEEL_KEEP_LEDGER_IN_STEP", "keep-ledger-in-step"),
    ("PGKEEL_REPORTS_DIR", "reports-dir"),
    ("PGKEEL_LOCK_TIMEOUT", "lock-timeout"),
    ("PGKEEL_STATEMENT_TIMEOUT", "statement-timeout"),
    ("PGKEEL_RETRIES", "retries"),
    ("PGKEEL_DEPLOY_LOCK_TIMEOUT", "deploy-lock-timeout"),
    ("BACKUP_RETENTION_DAYS", "backup.retention-days"),
    ("BACKUP_COMPRESSION_LEVEL", "backup.compression-level"),
    ("PGKEEL_BACKUP_DIR", "backup.dir"),
    (
        "BACKUP_ENCRYPTION_RECIPIENTS",
        "backup.encryption-recipients",
    ),
    (
        "BACKUP_ENCRYPTION_PASSPHRASE",
        "backup.encryption-passphrase",
    ),
    ("BACKUP_ENCRYPTION_IDENTITY_FILE", "backup.identity-file"),
];

/// Settings whose value is a secret: never echoed in errors.
const SECRET_KEYS: &[&str] = &["database-url", "pgpassword", "backup.encryption-passphrase"];

const FLAG_EXPECTED: &str = "true, 1, yes, on, or false, 0, no, off";

const DURATION_EXPECTED: &str =
    "milliseconds, or a duration such as 500ms, 5s, 2min, 1h (0 or off to disable)";

/// A duration in pgkeel.toml: integer milliseconds or a string with a unit.
#[derive(Debug, Clone, Copy)]
struct TomlDuration(Duration);

impl<'de> Deserialize<'de> for TomlDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = TomlDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(DURATION_EXPECTED)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<TomlDuration, E> {
                Ok(TomlDuration(Duration::from_millis(v)))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<TomlDuration, E> {
                u64::try_from(v)
                    .map(|ms| TomlDuration(Duration::from_millis(ms)))
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<TomlDuration, E> {
                parse_duration_value(v)
                    .map(TomlDuration)
                    .ok_or_else(|| E::invalid_value(serde::de::Unexpected::Str(v), &self))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// `[ledger]` and `[drizzle]`: a table name.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
struct TomlTableName {
    schema: Option<String>,
    table: Option<String>,
}

/// `[backup]`. Unknown keys are errors: a typo must not leave backups unencrypted or in the
/// wrong place.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
struct TomlBackup {
    retention_days: Option<u32>,
    compression_level: Option<CompressionLevel>,
    dir: Option<PathBuf>,
    encryption_recipients: Option<Vec<String>>,
    identity_file: Option<PathBuf>,
    /// Read only to refuse it: a secret never belongs in a file ([`ConfigError::SecretInFile`]).
    encryption_passphrase: Option<toml::Value>,
}

/// The layout of pgkeel.toml (see docs/pgkeel.toml).
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
struct TomlFile {
    database_url: Option<String>,
    ssl: Option<bool>,
    sslmode: Option<SslMode>,
    sslrootcert: Option<PathBuf>,
    pool_size: Option<usize>,
    connect_timeout: Option<TomlDuration>,
    idle_timeout: Option<TomlDuration>,
    max_lifetime: Option<TomlDuration>,
    health_check_timeout: Option<TomlDuration>,
    readiness_check_timeout: Option<TomlDuration>,
    migrations: Option<PathBuf>,
    layout: Option<crate::layout::Layout>,
    keep_ledger_in_step: Option<bool>,
    reports_dir: Option<PathBuf>,
    lock_timeout: Option<TomlDuration>,
    statement_timeout: Option<TomlDuration>,
    retries: Option<u32>,
    deploy_lock_timeout: Option<TomlDuration>,
    ledger: TomlTableName,
    drizzle: TomlTableName,
    backup: TomlBackup,
    // `[monitor]` holds `[monitor.thresholds]` (checked by the monitor); the other sections are
    // reserved and must be empty: a key pgkeel does not read is an error, never ignored.
    monitor: Option<toml::Table>,
    validate: Option<toml::Table>,
    lint: Option<toml::Table>,
    test: Option<toml::Table>,
    deploy: Option<toml::Table>,
}

/// The first key pgkeel does not read in the sections it reserves (`[validate]`, `[lint]`,
/// `[test]`, `[deploy]`, and `[monitor]` but for `thresholds`).
fn reserved_keys(t: &TomlFile) -> Option<String> {
    let sections = [
        ("monitor", &t.monitor),
        ("validate", &t.validate),
        ("lint", &t.lint),
        ("test", &t.test),
        ("deploy", &t.deploy),
    ];
    for (name, table) in sections {
        let Some(table) = table else { continue };
        if let Some(key) = table
            .keys()
            .find(|k| !(name == "monitor" && k.as_str() == "thresholds"))
        {
            return Some(format!(
                "unknown key `{key}` in [{name}]: pgkeel reads {}",
                if name == "monitor" {
                    "only [monitor.thresholds] there"
                } else {
                    "no settings there yet"
                }
            ));
        }
    }
    None
}

/// pgkeel's audit table, beside the ledger.
pub const AUDIT_TABLE: &str = "__pgkeel_audit";
/// The monitor's history table, beside the ledger.
pub const MONITOR_HISTORY_TABLE: &str = "__pgkeel_monitor_history";

impl Settings {
    /// The tables pgkeel and drizzle-orm keep their bookkeeping in, as `(schema, table)`: the
    /// ledger, its audit log and the monitor's history (in the ledger's schema) and drizzle's
    /// own table. Schema snapshots and validation leave them out.
    pub fn bookkeeping_tables(&self) -> Vec<(String, String)> {
        vec![
            (self.ledger_schema.clone(), self.ledger_table.clone()),
            (self.ledger_schema.clone(), AUDIT_TABLE.to_string()),
            (
                self.ledger_schema.clone(),
                MONITOR_HISTORY_TABLE.to_string(),
            ),
            (self.drizzle_schema.clone(), self.drizzle_table.clone()),
        ]
    }

    /// The spec's defaults, every origin [`Origin::Default`].
    pub fn defaults() -> Self {
        let mut s = Settings {
            database_url: None,
            ssl: false,
            sslmode: None,
            sslrootcert: None,
            pg: PgEnv::default(),
            pool_size: 15,
            connect_timeout: Duration::from_millis(30_000),
            idle_timeout: Duration::from_millis(600_000),
            max_lifetime: Duration::from_millis(3_600_000),
            backup_retention_days: 30,
            backup_compression_level: CompressionLevel::default(),
            backup_dir: PathBuf::from("backups"),
            backup_encryption_recipients: Vec::new(),
            backup_encryption_passphrase: None,
            backup_encryption_identity_file: None,
            health_check_timeout: Duration::from_millis(30_000),
            readiness_check_timeout: Duration::from_millis(30_000),
            migrations_dir: None,
            layout: None,
            keep_ledger_in_step: false,
            reports_dir: PathBuf::from("reports"),
            ledger_schema: "public".into(),
            ledger_table: "__drizzle_migrations".into(),
            drizzle_schema: "drizzle".into(),
            drizzle_table: "__drizzle_migrations".into(),
            lock_timeout: Duration::from_secs(5),
            statement_timeout: Duration::ZERO,
            retries: 5,
            deploy_lock_timeout: Duration::from_secs(600),
            search_path: Vec::new(),
            origins: BTreeMap::new(),
            config_file: None,
            drizzle_config: None,
            migration_prefix: None,
            schemas: vec!["public".to_string()],
            tables_filter: Vec::new(),
            notes: Vec::new(),
            monitor: toml::Table::new(),
        };
        s.origins = s
            .rows()
            .into_iter()
            .map(|(key, _)| (key.to_string(), Origin::Default))
            .collect();
        s
    }

    /// Every setting for display, in a stable order: secrets redacted (`***`), unset values
    /// `(not set)`, durations as `5s` / `off`, each with its origin.
    pub fn entries(&self) -> Vec<ConfigEntry> {
        self.rows()
            .into_iter()
            .map(|(key, value)| ConfigEntry {
                key: key.to_string(),
                value: (value != NOT_SET).then_some(value),
                origin: self.origins.get(key).cloned().unwrap_or(Origin::Default),
            })
            .collect()
    }

    /// Key → displayed value, for every setting (the list of keys lives here).
    fn rows(&self) -> Vec<(&'static str, String)> {
        fn opt<T: fmt::Display>(v: Option<T>) -> String {
            v.map_or_else(|| NOT_SET.to_string(), |v| v.to_string())
        }
        fn path(p: &Path) -> String {
            p.display().to_string()
        }
        vec![
            (
                "database-url",
                opt(self.database_url.as_deref().map(redact_url)),
            ),
            ("ssl", self.ssl.to_string()),
            ("sslmode", opt(self.sslmode)),
            ("sslrootcert", opt(self.sslrootcert.as_deref().map(path))),
            ("pghost", opt(self.pg.host.as_deref())),
            ("pgport", opt(self.pg.port)),
            ("pguser", opt(self.pg.user.as_deref())),
            ("pgpassword", opt(self.pg.password.as_ref().map(|_| "***"))),
            ("pgdatabase", opt(self.pg.database.as_deref())),
            ("pgpassfile", opt(self.pg.passfile.as_deref().map(path))),
            ("pgservice", opt(self.pg.service.as_deref())),
            (
                "pgservicefile",
                opt(self.pg.servicefile.as_deref().map(path)),
            ),
            ("sslcert", opt(self.pg.sslcert.as_deref().map(path))),
            ("sslkey", opt(self.pg.sslkey.as_deref().map(path))),
            (
                "pgtargetsessionattrs",
                opt(self.pg.target_session_attrs.as_deref()),
            ),
            ("pool-size", self.pool_size.to_string()),
            ("connect-timeout", format_duration(self.connect_timeout)),
            ("idle-timeout", format_duration(self.idle_timeout)),
            ("max-lifetime", format_duration(self.max_lifetime)),
            (
                "health-check-timeout",
                format_duration(self.health_check_timeout),
            ),
            (
                "readiness-check-timeout",
                format_duration(self.readiness_check_timeout),
            ),
            ("migrations", opt(self.migrations_dir.as_deref().map(path))),
            ("layout", opt(self.layout.map(|l| l.as_str()))),
            ("keep-ledger-in-step", self.keep_ledger_in_step.to_string()),
            ("reports-dir", path(&self.reports_dir)),
            ("lock-timeout", format_duration(self.lock_timeout)),
            ("statement-timeout", format_duration(self.statement_timeout)),
            ("retries", self.retries.to_string()),
            (
                "deploy-lock-timeout",
                format_duration(self.deploy_lock_timeout),
            ),
            ("ledger.schema", self.ledger_schema.clone()),
            ("ledger.table", self.ledger_table.clone()),
            ("drizzle.schema", self.drizzle_schema.clone()),
            ("drizzle.table", self.drizzle_table.clone()),
            ("schemas", self.schemas.join(",")),
            (
                "tables-filter",
                match self.tables_filter.is_empty() {
                    true => "(every table)".to_string(),
                    false => self.tables_filter.join(","),
                },
            ),
            (
                "migration-prefix",
                self.migration_prefix
                    .clone()
                    .unwrap_or_else(|| "index".to_string()),
            ),
            (
                "backup.retention-days",
                self.backup_retention_days.to_string(),
            ),
            (
                "backup.compression-level",
                self.backup_compression_level.to_string(),
            ),
            ("backup.dir", path(&self.backup_dir)),
            (
                "backup.encryption-recipients",
                if self.backup_encryption_recipients.is_empty() {
                    NOT_SET.to_string()
                } else {
                    self.backup_encryption_recipients.join(",")
                },
            ),
            (
                "backup.encryption-passphrase",
                opt(self.backup_encryption_passphrase.as_ref().map(|_| "***")),
            ),
            (
                "backup.identity-file",
                opt(self.backup_encryption_identity_file.as_deref().map(path)),
            ),
        ]
    }
}

/// How `rows` marks a setting with no value; [`ConfigEntry::value`] is `None` then.
const NOT_SET: &str = "(not set)";

/// One line of `pgkeel config`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct ConfigEntry {
    /// As in pgkeel.toml (`pool-size`, `ledger.schema`), or `pghost` … for libpq variables.
    pub key: String,
    /// For display: secrets redacted. `None` (JSON `null`) when not set.
    pub value: Option<String>,
    pub origin: Origin,
}

/// Resolves the settings: defaults < pgkeel.toml < `.env` < `opts.env` < `opts.overrides`.
///
/// Values are checked as each layer is read (a malformed value is an error even if a higher
/// layer would override it), and ranges once all layers are applied. An empty environment
/// variable counts as unset. In `.env`, a later line wins over an earlier one.
pub fn load(opts: &LoadOptions) -> Result<Settings, ConfigError> {
    let mut s = Settings::defaults();
    let dotenv_path = opts.cwd.join(".env");
    let dotenv = if opts.dotenv {
        read_dotenv(&dotenv_path)?
    } else {
        HashMap::new()
    };

    // drizzle.config.*: below pgkeel.toml.
    let drizzle_path = match &opts.overrides.drizzle_config {
        Some(p) => {
            let p = opts.cwd.join(p);
            if !p.is_file() {
                return Err(ConfigError::DrizzleConfigNotFound { path: p });
            }
            Some(p)
        }
        None => drizzle::find(&opts.cwd),
    };
    let mut drizzle_notes = Vec::new();
    if let Some(path) = drizzle_path {
        let d = drizzle::read(&path)?;
        drizzle_notes = apply_drizzle(&mut s, &d, &opts.cwd, |var| {
            opts.env
                .get(var)
                .or_else(|| dotenv.get(var))
                .filter(|v| !v.trim().is_empty())
                .cloned()
        });
        s.drizzle_config = Some(path);
    }

    // pgkeel.toml
    let file = match &opts.config_path {
        Some(p) => {
            let p = opts.cwd.join(p);
            if !p.exists() {
                return Err(ConfigError::FileNotFound { path: p });
            }
            Some(p)
        }
        None => Some(opts.cwd.join(CONFIG_FILE_NAME)).filter(|p| p.is_file()),
    };
    if let Some(path) = file {
        let text = std::fs::read_to_string(&path).map_err(|error| ConfigError::ReadFile {
            path: path.clone(),
            error,
        })?;
        let t: TomlFile = toml::from_str(&text).map_err(|e| ConfigError::Toml {
            path: path.clone(),
            message: redact_text(e.to_string().trim_end()),
        })?;
        if let Some(problem) = reserved_keys(&t) {
            return Err(ConfigError::Toml {
                path,
                message: problem,
            });
        }
        if t.backup.encryption_passphrase.is_some() {
            return Err(ConfigError::SecretInFile {
                path,
                key: "backup.encryption-passphrase",
                var: "BACKUP_ENCRYPTION_PASSPHRASE",
            });
        }
        if t.database_url
            .as_deref()
            .is_some_and(|u| redact_url(u) != u)
        {
            return Err(ConfigError::SecretInFile {
                path,
                key: "database-url",
                var: "DATABASE_URL (or PGPASSWORD, or ~/.pgpass)",
            });
        }
        apply_file(&mut s, t, &path);
        s.config_file = Some(path);
    }

    // .env, then the process environment, which wins.
    for (var, key) in ENV_VARS {
        let set = |v: &&String| !v.trim().is_empty();
        let (value, origin) = if let Some(v) = opts.env.get(*var).filter(set) {
            (v, Origin::Env(var.to_string()))
        } else if let Some(v) = dotenv.get(*var).filter(set) {
            let origin = Origin::DotEnv {
                path: dotenv_path.clone(),
                var: var.to_string(),
            };
            (v, origin)
        } else {
            continue;
        };
        apply_env(&mut s, key, value, origin)?;
    }

    apply_overrides(&mut s, &opts.overrides);
    // What drizzle's config computes matters only where nothing above it gave a value.
    for (key, note) in drizzle_notes {
        if key.is_empty() || matches!(s.origins.get(key), None | Some(Origin::Default)) {
            s.notes.push(note);
        }
    }
    avoid_drizzles_table(&mut s)?;
    validate(&s)?;
    Ok(s)
}

/// The name pgkeel's ledger takes when its default would be drizzle-orm's own table.
pub const LEDGER_BESIDE_DRIZZLE: &str = "__pgkeel_migrations";

/// drizzle-orm's table and pgkeel's ledger cannot be one table (their columns differ: drizzle's
/// is `id serial, hash text, created_at bigint`). When drizzle keeps its table where pgkeel's
/// ledger would be by default (`migrations: { schema: "public" }` in drizzle.config.ts puts it
/// at `public.__drizzle_migrations`), the ledger moves beside it, to
/// [`LEDGER_BESIDE_DRIZZLE`]; pgkeel keeps drizzle's table in step and never alters it. Set
/// to the same table by hand, it is an error.
fn avoid_drizzles_table(s: &mut Settings) -> Result<(), ConfigError> {
    if (s.ledger_schema.as_str(), s.ledger_table.as_str())
        != (s.drizzle_schema.as_str(), s.drizzle_table.as_str())
    {
        return Ok(());
    }
    let drizzles = format!("{}.{}", s.drizzle_schema, s.drizzle_table);
    let set_by_hand = ["ledger.schema", "ledger.table"]
        .iter()
        .any(|k| !matches!(s.origins.get(*k), None | Some(Origin::Default)));
    if set_by_hand {
        return Err(ConfigError::LedgerIsDrizzles {
            table: drizzles,
            ledger_origin: s
                .origins
                .get("ledger.table")
                .cloned()
                .unwrap_or(Origin::Default),
            drizzle_origin: s
                .origins
                .get("drizzle.schema")
                .cloned()
                .unwrap_or(Origin::Default),
        });
    }
    s.ledger_table = LEDGER_BESIDE_DRIZZLE.to_string();
    s.origins
        .insert("ledger.table".into(), Origin::AvoidsDrizzle(drizzles));
    Ok(())
}

/// The values of drizzle-kit's config (see [`drizzle`]); `env` looks up what
/// `process.env.NAME` names (the process environment, then `.env`).
/// Returns the notes about values pgkeel could not read, each with the setting it would have
/// given (said only when no layer above sets that setting).
fn apply_drizzle(
    s: &mut Settings,
    d: &drizzle::DrizzleConfig,
    cwd: &Path,
    env: impl Fn(&str) -> Option<String>,
) -> Vec<(&'static str, String)> {
    let origin = Origin::Drizzle {
        path: d.path.clone(),
        var: None,
    };
    let file = d
        .path
        .strip_prefix(cwd)
        .unwrap_or(&d.path)
        .display()
        .to_string();
    let mark = |s: &mut Settings, key: &str, o: Origin| {
        s.origins.insert(key.to_string(), o);
    };
    // drizzle-kit resolves `out` against the working directory it runs in, not the config
    // file's folder (`drizzle-kit generate --config server/db/drizzle.config.ts`).
    if let Some(out) = &d.out {
        s.migrations_dir = Some(
            Path::new(out)
                .components()
                .filter(|c| !matches!(c, std::path::Component::CurDir))
                .collect(),
        );
        mark(s, "migrations", origin.clone());
    }
    if let Some(t) = &d.migrations_table {
        s.drizzle_table = t.clone();
        mark(s, "drizzle.table", origin.clone());
    }
    if let Some(schema) = &d.migrations_schema {
        s.drizzle_schema = schema.clone();
        mark(s, "drizzle.schema", origin.clone());
    }
    if let Some(f) = d.schema_filter.as_ref().filter(|f| !f.is_empty()) {
        s.schemas = f.clone();
        mark(s, "schemas", origin.clone());
    }
    if let Some(f) = &d.tables_filter {
        s.tables_filter = f.clone();
        mark(s, "tables-filter", origin.clone());
    }
    if let Some(p) = &d.migrations_prefix {
        s.migration_prefix = Some(p.clone());
        mark(s, "migration-prefix", origin.clone());
    }
    match &d.url {
        Some(drizzle::UrlSource::Literal(url)) => {
            s.database_url = Some(url.clone());
            mark(s, "database-url", origin.clone());
            s.notes.push(format!(
                "{file} holds a database URL in the file: keep it in DATABASE_URL (or .env) instead, out of version control"
            ));
        }
        Some(drizzle::UrlSource::Env { name, fallback }) => {
            let (value, var) = match env(name) {
                Some(v) => (Some(v), Some(name.clone())),
                None => (fallback.clone(), None),
            };
            if let Some(v) = value {
                s.database_url = Some(v);
                mark(
                    s,
                    "database-url",
                    Origin::Drizzle {
                        path: d.path.clone(),
                        var,
                    },
                );
            }
        }
        None => {}
    }
    let mut pending = Vec::new();
    for u in &d.unreadable {
        let (key, instead) = match u.key.as_str() {
            "out" => (
                "migrations",
                "pass --migrations, or set `migrations` in pgkeel.toml",
            ),
            "migrations.table" => (
                "drizzle.table",
                "set `table` under [drizzle] in pgkeel.toml",
            ),
            "migrations.schema" => (
                "drizzle.schema",
                "set `schema` under [drizzle] in pgkeel.toml",
            ),
            "dbCredentials.url" | "dbCredentials" => ("database-url", "set DATABASE_URL"),
            _ => ("", "set what pgkeel needs of it in pgkeel.toml"),
        };
        pending.push((
            key,
            format!(
                "{file}:{} sets `{}` from {}, which pgkeel does not evaluate: {instead}",
                u.line, u.key, u.what
            ),
        ));
    }
    pending
}

/// The variables of the `.env` file at `path` (none if there is no file), later lines winning.
fn read_dotenv(path: &Path) -> Result<HashMap<String, String>, ConfigError> {
    if !path.is_file() {
        return Ok(HashMap::new());
    }
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::ReadDotEnv {
        path: path.to_path_buf(),
        error,
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut vars = HashMap::new();
    for item in dotenvy::from_read_iter(text.as_bytes()) {
        match item {
            Ok((k, v)) => {
                vars.insert(k, v);
            }
            Err(dotenvy::Error::LineParse(fragment, _)) => {
                // dotenvy reports the line (or its value part); find where it starts.
                let line = text
                    .find(fragment.as_str())
                    .filter(|_| !fragment.is_empty())
                    .map_or(1, |at| text[..at].matches('\n').count() + 1);
                return Err(ConfigError::DotEnvSyntax {
                    path: path.to_path_buf(),
                    line,
                });
            }
            Err(e) => {
                return Err(ConfigError::ReadDotEnv {
                    path: path.to_path_buf(),
                    error: std::io::Error::other(e.to_string()),
                })
            }
        }
    }
    Ok(vars)
}

fn apply_file(s: &mut Settings, t: TomlFile, path: &Path) {
    let origin = Origin::File(path.to_path_buf());
    let mark = |s: &mut Settings, key: &str| {
        s.origins.insert(key.to_string(), origin.clone());
    };
    macro_rules! take {
        ($value:expr, $field:expr, $key:literal) => {
            if let Some(v) = $value {
                $field = v;
                mark(s, $key);
            }
        };
    }
    take!(t.database_url.map(Some), s.database_url, "database-url");
    take!(t.ssl, s.ssl, "ssl");
    take!(t.sslmode.map(Some), s.sslmode, "sslmode");
    take!(t.sslrootcert.map(Some), s.sslrootcert, "sslrootcert");
    take!(t.pool_size, s.pool_size, "pool-size");
    take!(
        t.connect_timeout.map(|d| d.0),
        s.connect_timeout,
        "connect-timeout"
    );
    take!(t.idle_timeout.map(|d| d.0), s.idle_timeout, "idle-timeout");
    take!(t.max_lifetime.map(|d| d.0), s.max_lifetime, "max-lifetime");
    take!(
        t.health_check_timeout.map(|d| d.0),
        s.health_check_timeout,
        "health-check-timeout"
    );
    take!(
        t.readiness_check_timeout.map(|d| d.0),
        s.readiness_check_timeout,
        "readiness-check-timeout"
    );
    take!(t.migrations.map(Some), s.migrations_dir, "migrations");
    take!(t.layout.map(Some), s.layout, "layout");
    take!(
        t.keep_ledger_in_step,
        s.keep_ledger_in_step,
        "keep-ledger-in-step"
    );
    take!(t.reports_dir, s.reports_dir, "reports-dir");
    take!(t.lock_timeout.map(|d| d.0), s.lock_timeout, "lock-timeout");
    take!(
        t.statement_timeout.map(|d| d.0),
        s.statement_timeout,
        "statement-timeout"
    );
    take!(t.retries, s.retries, "retries");
    take!(
        t.deploy_lock_timeout.map(|d| d.0),
        s.deploy_lock_timeout,
        "deploy-lock-timeout"
    );
    take!(t.ledger.schema, s.ledger_schema, "ledger.schema");
    take!(t.ledger.table, s.ledger_table, "ledger.table");
    take!(t.drizzle.schema, s.drizzle_schema, "drizzle.schema");
    take!(t.drizzle.table, s.drizzle_table, "drizzle.table");
    take!(
        t.backup.retention_days,
        s.backup_retention_days,
        "backup.retention-days"
    );
    take!(
        t.backup.compression_level,
        s.backup_compression_level,
        "backup.compression-level"
    );
    take!(t.backup.dir, s.backup_dir, "backup.dir");
    if let Some(m) = t.monitor {
        s.monitor = m;
    }
    take!(
        t.backup.encryption_recipients,
        s.backup_encryption_recipients,
        "backup.encryption-recipients"
    );
    take!(
        t.backup.identity_file.map(Some),
        s.backup_encryption_identity_file,
        "backup.identity-file"
    );
}

/// Sets `key` from the text of an environment (or `.env`) variable.
fn apply_env(s: &mut Settings, key: &str, value: &str, origin: Origin) -> Result<(), ConfigError> {
    let invalid = |expected: &str| ConfigError::InvalidValue {
        key: key.to_string(),
        value: (!SECRET_KEYS.contains(&key)).then(|| value.to_string()),
        origin: origin.clone(),
        expected: expected.to_string(),
    };
    let number = |expected: &str| -> Result<u64, ConfigError> {
        value.trim().parse::<u64>().map_err(|_| invalid(expected))
    };
    let duration = || parse_duration_value(value).ok_or_else(|| invalid(DURATION_EXPECTED));
    let flag = || match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    };
    match key {
        "database-url" => s.database_url = Some(value.to_string()),
        "ssl" => s.ssl = flag().ok_or_else(|| invalid(FLAG_EXPECTED))?,
        "keep-ledger-in-step" => {
            s.keep_ledger_in_step = flag().ok_or_else(|| invalid(FLAG_EXPECTED))?
        }
        "layout" => {
            s.layout = Some(
                value
                    .parse()
                    .map_err(|_| invalid(&crate::layout::Layout::names()))?,
            )
        }
        "sslmode" => s.sslmode = Some(value.parse().map_err(|_| invalid(SSLMODES))?),
        "sslrootcert" => s.sslrootcert = Some(PathBuf::from(value)),
        "pghost" => s.pg.host = Some(value.to_string()),
        "pgport" => {
            s.pg.port = Some(
                value
                    .trim()
                    .parse()
                    .map_err(|_| invalid("a port number from 1 to 65535"))?,
            )
        }
        "pguser" => s.pg.user = Some(value.to_string()),
        "pgpassword" => s.pg.password = Some(value.to_string()),
        "pgdatabase" => s.pg.database = Some(value.to_string()),
        "pgpassfile" => s.pg.passfile = Some(PathBuf::from(value)),
        "pgservice" => s.pg.service = Some(value.to_string()),
        "pgservicefile" => s.pg.servicefile = Some(PathBuf::from(value)),
        "sslcert" => s.pg.sslcert = Some(PathBuf::from(value)),
        "sslkey" => s.pg.sslkey = Some(PathBuf::from(value)),
        "pgtargetsessionattrs" => {
            s.pg.target_session_attrs = match value.trim() {
                v @ ("any" | "read-write") => Some(v.to_string()),
                _ => return Err(invalid("any or read-write")),
            }
        }
        "pool-size" => {
            s.pool_size = usize::try_from(number("a whole number of at least 1")?)
                .map_err(|_| invalid("a whole number of at least 1"))?
        }
        "connect-timeout" => s.connect_timeout = duration()?,
        "idle-timeout" => s.idle_timeout = duration()?,
        "max-lifetime" => s.max_lifetime = duration()?,
        "health-check-timeout" => s.health_check_timeout = duration()?,
        "readiness-check-timeout" => s.readiness_check_timeout = duration()?,
        "migrations" => s.migrations_dir = Some(PathBuf::from(value)),
        "reports-dir" => s.reports_dir = PathBuf::from(value),
        "lock-timeout" => s.lock_timeout = duration()?,
        "statement-timeout" => s.statement_timeout = duration()?,
        "retries" => {
            s.retries = u32::try_from(number("a number of tries of at least 1")?)
                .map_err(|_| invalid("a number of tries of at least 1"))?
        }
        "deploy-lock-timeout" => s.deploy_lock_timeout = duration()?,
        "backup.retention-days" => {
            s.backup_retention_days = u32::try_from(number("a number of days")?)
                .map_err(|_| invalid("a number of days"))?
        }
        "backup.compression-level" => {
            s.backup_compression_level = value.parse().map_err(|_| invalid(COMPRESSION_LEVELS))?
        }
        "backup.dir" => s.backup_dir = PathBuf::from(value),
        "backup.encryption-recipients" => {
            s.backup_encryption_recipients = value
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|r| !r.is_empty())
                .map(str::to_string)
                .collect()
        }
        "backup.encryption-passphrase" => {
            s.backup_encryption_passphrase = Some(value.to_string()).filter(|v| !v.is_empty())
        }
        "backup.identity-file" => s.backup_encryption_identity_file = Some(PathBuf::from(value)),
        _ => unreachable!("ENV_VARS names an unknown key {key}"),
    }
    s.origins.insert(key.to_string(), origin);
    Ok(())
}

fn apply_overrides(s: &mut Settings, o: &Overrides) {
    let mark = |s: &mut Settings, key: &str| {
        s.origins.insert(key.to_string(), Origin::Flag);
    };
    macro_rules! take {
        ($value:expr, $field:expr, $key:literal) => {
            if let Some(v) = $value {
                $field = v;
                mark(s, $key);
            }
        };
    }
    take!(
        o.database_url.clone().map(Some),
        s.database_url,
        "database-url"
    );
    take!(
        o.migrations_dir.clone().map(Some),
        s.migrations_dir,
        "migrations"
    );
    take!(o.layout.map(Some), s.layout, "layout");
    take!(
        o.keep_ledger_in_step.then_some(true),
        s.keep_ledger_in_step,
        "keep-ledger-in-step"
    );
    take!(o.sslmode.map(Some), s.sslmode, "sslmode");
    take!(o.lock_timeout, s.lock_timeout, "lock-timeout");
    take!(
        o.statement_timeout,
        s.statement_timeout,
        "statement-timeout"
    );
    take!(o.retries, s.retries, "retries");
    take!(
        o.deploy_lock_timeout,
        s.deploy_lock_timeout,
        "deploy-lock-timeout"
    );
    take!(o.reports_dir.clone(), s.reports_dir, "reports-dir");
    take!(o.pool_size, s.pool_size, "pool-size");
}

/// Range checks on the resolved values, blaming the layer each value came from.
fn validate(s: &Settings) -> Result<(), ConfigError> {
    let invalid = |key: &str, value: String, expected: &str| ConfigError::InvalidValue {
        key: key.to_string(),
        value: Some(value),
        origin: s.origins.get(key).cloned().unwrap_or(Origin::Default),
        expected: expected.to_string(),
    };
    if s.pool_size == 0 {
        return Err(invalid(
            "pool-size",
            "0".into(),
            "a whole number of at least 1",
        ));
    }
    if s.retries == 0 {
        return Err(invalid(
            "retries",
            "0".into(),
            "a number of tries of at least 1 (1 = no retry)",
        ));
    }
    for (key, name) in [
        ("ledger.schema", &s.ledger_schema),
        ("ledger.table", &s.ledger_table),
        ("drizzle.schema", &s.drizzle_schema),
        ("drizzle.table", &s.drizzle_table),
    ] {
        if name.is_empty() || name.len() > 63 || name.contains('\0') {
            return Err(invalid(
                key,
                name.clone(),
                "a PostgreSQL name of 1 to 63 bytes",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
