//! Settings, resolved once: defaults < `pgshift.toml` < `.env` < process environment < flags,
//! remembering where each value came from; and the redaction of secrets.
//!
//! This module reads the toml and `.env` files and nothing else: no database access. Every other
//! module receives a [`Settings`].

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::source::parse_duration;

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Origin {
    Default,
    File { path: PathBuf },
    DotEnv { path: PathBuf, var: String },
    Env { var: String },
    Flag,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File { path } => write!(f, "{}", path.display()),
            Origin::DotEnv { var, .. } => write!(f, ".env {var}"),
            Origin::Env { var } => write!(f, "env {var}"),
            Origin::Flag => f.write_str("flag"),
        }
    }
}

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl FromStr for SslMode {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return Err(()),
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

/// libpq's connection variables.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PgEnv {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub database: Option<String>,
}

impl fmt::Debug for PgEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgEnv")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("database", &self.database)
            .finish()
    }
}

/// Every setting pgshift knows.
#[derive(Clone)]
pub struct Settings {
    pub database_url: Option<String>,
    pub ssl: bool,
    pub sslmode: Option<SslMode>,
    pub sslrootcert: Option<PathBuf>,
    pub pg: PgEnv,
    pub pool_size: usize,
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_lifetime: Duration,
    pub backup_retention_days: u32,
    pub backup_compression_level: i32,
    pub backup_dir: PathBuf,
    pub health_check_timeout: Duration,
    pub readiness_check_timeout: Duration,
    pub migrations_dir: Option<PathBuf>,
    pub reports_dir: PathBuf,
    pub ledger_schema: String,
    pub ledger_table: String,
    pub drizzle_schema: String,
    pub drizzle_table: String,
    pub lock_timeout: Duration,
    pub statement_timeout: Duration,
    pub retries: u32,
    pub deploy_lock_timeout: Duration,
    /// Setting key (as in pgshift.toml) → where its value came from; absent = default.
    pub origins: BTreeMap<String, Origin>,
    pub config_file: Option<PathBuf>,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Settings");
        for e in self.entries() {
            d.field(&e.key, &e.value);
        }
        d.finish()
    }
}

/// Values from command-line flags (the top layer).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub database_url: Option<String>,
    pub migrations_dir: Option<PathBuf>,
    pub sslmode: Option<SslMode>,
    pub lock_timeout: Option<Duration>,
    pub statement_timeout: Option<Duration>,
    pub retries: Option<u32>,
    pub deploy_lock_timeout: Option<Duration>,
    pub reports_dir: Option<PathBuf>,
    pub pool_size: Option<usize>,
}

/// What [`load`] reads.
#[derive(Clone, Default)]
pub struct LoadOptions {
    pub cwd: PathBuf,
    /// `--config FILE`: must exist.
    pub config_path: Option<PathBuf>,
    /// Read `<cwd>/.env` (off with `--no-dotenv`).
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
            .finish_non_exhaustive()
    }
}

impl LoadOptions {
    pub fn from_process(
        cwd: PathBuf,
        config_path: Option<PathBuf>,
        dotenv: bool,
        overrides: Overrides,
    ) -> Self {
        LoadOptions {
            cwd,
            config_path,
            dotenv,
            env: std::env::vars().collect(),
            overrides,
        }
    }
}

/// Configuration errors. The value of a secret is never part of the message.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path} not found; check --config or create it (docs/pgshift.toml is a reference)")]
    FileNotFound { path: PathBuf },
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("invalid {path}: {reason}")]
    Toml { path: PathBuf, reason: String },
    #[error("invalid .env file {path}: {reason}")]
    DotEnv { path: PathBuf, reason: String },
    #[error("invalid value {shown} for {key} (from {origin}): expected {expected}")]
    InvalidValue {
        key: String,
        shown: String,
        origin: Origin,
        expected: String,
    },
}

/// A duration in pgshift.toml: integer milliseconds or a string with a unit.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum TomlDuration {
    Millis(u64),
    Text(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
struct TomlTable {
    schema: Option<String>,
    table: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
struct TomlFile {
    database_url: Option<String>,
    ssl: Option<bool>,
    sslmode: Option<String>,
    sslrootcert: Option<PathBuf>,
    pool_size: Option<usize>,
    connect_timeout: Option<TomlDuration>,
    idle_timeout: Option<TomlDuration>,
    max_lifetime: Option<TomlDuration>,
    migrations: Option<PathBuf>,
    reports_dir: Option<PathBuf>,
    lock_timeout: Option<TomlDuration>,
    statement_timeout: Option<TomlDuration>,
    retries: Option<u32>,
    deploy_lock_timeout: Option<TomlDuration>,
    health_check_timeout: Option<TomlDuration>,
    readiness_check_timeout: Option<TomlDuration>,
    ledger: TomlTable,
    drizzle: TomlTable,
    backup: Option<toml::Value>,
    // Sections reserved for later features: accepted so older binaries read newer files.
    monitor: Option<toml::Value>,
    validate: Option<toml::Value>,
    lint: Option<toml::Value>,
    test: Option<toml::Value>,
    deploy: Option<toml::Value>,
}

impl Settings {
    /// The spec's defaults.
    pub fn defaults() -> Self {
        Settings {
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
            backup_compression_level: 6,
            backup_dir: PathBuf::from("backups"),
            health_check_timeout: Duration::from_millis(30_000),
            readiness_check_timeout: Duration::from_millis(30_000),
            migrations_dir: None,
            reports_dir: PathBuf::from("reports"),
            ledger_schema: "public".into(),
            ledger_table: "__drizzle_migrations".into(),
            drizzle_schema: "drizzle".into(),
            drizzle_table: "__drizzle_migrations".into(),
            lock_timeout: Duration::from_secs(5),
            statement_timeout: Duration::ZERO,
            retries: 5,
            deploy_lock_timeout: Duration::from_secs(600),
            origins: BTreeMap::new(),
            config_file: None,
        }
    }

    /// Every setting for display: secrets redacted, with its origin.
    pub fn entries(&self) -> Vec<ConfigEntry> {
        let ms = |d: Duration| {
            if d.is_zero() {
                "off".to_string()
            } else {
                format!("{}ms", d.as_millis())
            }
        };
        let opt = |v: Option<String>| v.unwrap_or_else(|| "(not set)".into());
        let rows: Vec<(&str, String)> = vec![
            (
                "database-url",
                opt(self.database_url.as_deref().map(redact_url)),
            ),
            ("ssl", self.ssl.to_string()),
            ("sslmode", opt(self.sslmode.map(|m| m.to_string()))),
            (
                "sslrootcert",
                opt(self.sslrootcert.as_ref().map(|p| p.display().to_string())),
            ),
            ("pghost", opt(self.pg.host.clone())),
            ("pgport", opt(self.pg.port.map(|p| p.to_string()))),
            ("pguser", opt(self.pg.user.clone())),
            (
                "pgpassword",
                opt(self.pg.password.as_ref().map(|_| "***".to_string())),
            ),
            ("pgdatabase", opt(self.pg.database.clone())),
            ("pool-size", self.pool_size.to_string()),
            ("connect-timeout", ms(self.connect_timeout)),
            ("idle-timeout", ms(self.idle_timeout)),
            ("max-lifetime", ms(self.max_lifetime)),
            (
                "backup-retention-days",
                self.backup_retention_days.to_string(),
            ),
            (
                "backup-compression-level",
                self.backup_compression_level.to_string(),
            ),
            ("backup-dir", self.backup_dir.display().to_string()),
            ("health-check-timeout", ms(self.health_check_timeout)),
            ("readiness-check-timeout", ms(self.readiness_check_timeout)),
            (
                "migrations",
                opt(self
                    .migrations_dir
                    .as_ref()
                    .map(|p| p.display().to_string())),
            ),
            ("reports-dir", self.reports_dir.display().to_string()),
            (
                "ledger",
                format!("{}.{}", self.ledger_schema, self.ledger_table),
            ),
            (
                "drizzle",
                format!("{}.{}", self.drizzle_schema, self.drizzle_table),
            ),
            ("lock-timeout", ms(self.lock_timeout)),
            ("statement-timeout", ms(self.statement_timeout)),
            ("retries", self.retries.to_string()),
            ("deploy-lock-timeout", ms(self.deploy_lock_timeout)),
        ];
        rows.into_iter()
            .map(|(key, value)| ConfigEntry {
                key: key.to_string(),
                value,
                origin: self.origins.get(key).cloned().unwrap_or(Origin::Default),
            })
            .collect()
    }
}

/// One line of `pgshift config`.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigEntry {
    pub key: String,
    pub value: String,
    pub origin: Origin,
}

/// Resolves the settings.
pub fn load(opts: &LoadOptions) -> Result<Settings, ConfigError> {
    let mut s = Settings::defaults();

    // Layer 1: pgshift.toml
    let file = match &opts.config_path {
        Some(p) => {
            let p = if p.is_absolute() {
                p.clone()
            } else {
                opts.cwd.join(p)
            };
            if !p.is_file() {
                return Err(ConfigError::FileNotFound { path: p });
            }
            Some(p)
        }
        None => Some(opts.cwd.join("pgshift.toml")).filter(|p| p.is_file()),
    };
    if let Some(path) = &file {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let t: TomlFile = toml::from_str(&text).map_err(|e| ConfigError::Toml {
            path: path.clone(),
            reason: e.to_string().trim_end().to_string(),
        })?;
        apply_toml(&mut s, t, path)?;
        s.config_file = Some(path.clone());
    }

    // Layers 2 and 3: .env, then the real environment (which wins).
    let mut vars: Vec<(String, String, Origin)> = Vec::new();
    if opts.dotenv {
        let path = opts.cwd.join(".env");
        if path.is_file() {
            let iter = dotenvy::from_path_iter(&path).map_err(|e| ConfigError::DotEnv {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            for item in iter {
                let (k, v) = item.map_err(|e| ConfigError::DotEnv {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                if !opts.env.contains_key(&k) {
                    let origin = Origin::DotEnv {
                        path: path.clone(),
                        var: k.clone(),
                    };
                    vars.push((k, v, origin));
                }
            }
        }
    }
    for (k, v) in &opts.env {
        vars.push((k.clone(), v.clone(), Origin::Env { var: k.clone() }));
    }
    for (k, v, origin) in vars {
        apply_env(&mut s, &k, &v, origin)?;
    }

    // Layer 4: flags.
    let o = &opts.overrides;
    let flag = |s: &mut Settings, key: &str| {
        s.origins.insert(key.into(), Origin::Flag);
    };
    if let Some(v) = &o.database_url {
        s.database_url = Some(v.clone());
        flag(&mut s, "database-url");
    }
    if let Some(v) = &o.migrations_dir {
        s.migrations_dir = Some(v.clone());
        flag(&mut s, "migrations");
    }
    if let Some(v) = o.sslmode {
        s.sslmode = Some(v);
        flag(&mut s, "sslmode");
    }
    if let Some(v) = o.lock_timeout {
        s.lock_timeout = v;
        flag(&mut s, "lock-timeout");
    }
    if let Some(v) = o.statement_timeout {
        s.statement_timeout = v;
        flag(&mut s, "statement-timeout");
    }
    if let Some(v) = o.retries {
        s.retries = v;
        flag(&mut s, "retries");
    }
    if let Some(v) = o.deploy_lock_timeout {
        s.deploy_lock_timeout = v;
        flag(&mut s, "deploy-lock-timeout");
    }
    if let Some(v) = &o.reports_dir {
        s.reports_dir = v.clone();
        flag(&mut s, "reports-dir");
    }
    if let Some(v) = o.pool_size {
        s.pool_size = v;
        flag(&mut s, "pool-size");
    }
    validate(&s)?;
    Ok(s)
}

fn validate(s: &Settings) -> Result<(), ConfigError> {
    let bad = |key: &str, shown: String, expected: &str| ConfigError::InvalidValue {
        key: key.into(),
        shown,
        origin: s.origins.get(key).cloned().unwrap_or(Origin::Default),
        expected: expected.into(),
    };
    if s.pool_size == 0 {
        return Err(bad("pool-size", "0".into(), "an integer of at least 1"));
    }
    if !(1..=22).contains(&s.backup_compression_level) {
        return Err(bad(
            "backup-compression-level",
            s.backup_compression_level.to_string(),
            "a zstd level from 1 to 22",
        ));
    }
    Ok(())
}

fn toml_duration(key: &str, v: &TomlDuration, path: &Path) -> Result<Duration, ConfigError> {
    match v {
        TomlDuration::Millis(ms) => Ok(Duration::from_millis(*ms)),
        TomlDuration::Text(t) => parse_duration(t).ok_or_else(|| ConfigError::InvalidValue {
            key: key.into(),
            shown: format!("`{t}`"),
            origin: Origin::File {
                path: path.to_path_buf(),
            },
            expected: "milliseconds or a duration such as 500ms, 5s, 2min, off".into(),
        }),
    }
}

fn apply_toml(s: &mut Settings, t: TomlFile, path: &Path) -> Result<(), ConfigError> {
    let origin = Origin::File {
        path: path.to_path_buf(),
    };
    let set = |s: &mut Settings, key: &str| {
        s.origins.insert(key.into(), origin.clone());
    };
    macro_rules! plain {
        ($field:ident, $target:expr, $key:literal) => {
            if let Some(v) = t.$field {
                $target = v.into();
                set(s, $key);
            }
        };
    }
    macro_rules! dur {
        ($field:ident, $target:ident, $key:literal) => {
            if let Some(v) = &t.$field {
                s.$target = toml_duration($key, v, path)?;
                set(s, $key);
            }
        };
    }
    plain!(database_url, s.database_url, "database-url");
    plain!(ssl, s.ssl, "ssl");
    plain!(sslrootcert, s.sslrootcert, "sslrootcert");
    plain!(pool_size, s.pool_size, "pool-size");
    plain!(migrations, s.migrations_dir, "migrations");
    plain!(reports_dir, s.reports_dir, "reports-dir");
    plain!(retries, s.retries, "retries");
    if let Some(m) = &t.sslmode {
        s.sslmode = Some(SslMode::from_str(m).map_err(|_| ConfigError::InvalidValue {
            key: "sslmode".into(),
            shown: format!("`{m}`"),
            origin: origin.clone(),
            expected: "disable, allow, prefer, require, verify-ca or verify-full".into(),
        })?);
        set(s, "sslmode");
    }
    dur!(connect_timeout, connect_timeout, "connect-timeout");
    dur!(idle_timeout, idle_timeout, "idle-timeout");
    dur!(max_lifetime, max_lifetime, "max-lifetime");
    dur!(lock_timeout, lock_timeout, "lock-timeout");
    dur!(statement_timeout, statement_timeout, "statement-timeout");
    dur!(
        deploy_lock_timeout,
        deploy_lock_timeout,
        "deploy-lock-timeout"
    );
    dur!(
        health_check_timeout,
        health_check_timeout,
        "health-check-timeout"
    );
    dur!(
        readiness_check_timeout,
        readiness_check_timeout,
        "readiness-check-timeout"
    );
    if let Some(v) = t.ledger.schema {
        s.ledger_schema = v;
        set(s, "ledger");
    }
    if let Some(v) = t.ledger.table {
        s.ledger_table = v;
        set(s, "ledger");
    }
    if let Some(v) = t.drizzle.schema {
        s.drizzle_schema = v;
        set(s, "drizzle");
    }
    if let Some(v) = t.drizzle.table {
        s.drizzle_table = v;
        set(s, "drizzle");
    }
    if let Some(b) = t.backup.as_ref().and_then(|b| b.as_table()) {
        if let Some(v) = b.get("retention-days").and_then(|v| v.as_integer()) {
            s.backup_retention_days = u32::try_from(v).unwrap_or(0);
            set(s, "backup-retention-days");
        }
        if let Some(v) = b.get("compression-level").and_then(|v| v.as_integer()) {
            s.backup_compression_level = i32::try_from(v).unwrap_or(0);
            set(s, "backup-compression-level");
        }
        if let Some(v) = b.get("dir").and_then(|v| v.as_str()) {
            s.backup_dir = PathBuf::from(v);
            set(s, "backup-dir");
        }
    }
    Ok(())
}

fn apply_env(s: &mut Settings, var: &str, value: &str, origin: Origin) -> Result<(), ConfigError> {
    let secret = matches!(var, "DATABASE_URL" | "PGPASSWORD");
    let bad = |key: &str, expected: &str| ConfigError::InvalidValue {
        key: var.to_string(),
        shown: if secret {
            "(hidden)".into()
        } else {
            format!("`{value}`")
        },
        origin: origin.clone(),
        expected: format!("{expected} (setting {key})"),
    };
    let ms = |key: &str| -> Result<Duration, ConfigError> {
        value
            .trim()
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| bad(key, "a number of milliseconds"))
    };
    let dur = |key: &str| -> Result<Duration, ConfigError> {
        parse_duration(value.trim())
            .ok_or_else(|| bad(key, "a duration such as 500ms, 5s, 2min or off"))
    };
    let key = match var {
        "DATABASE_URL" if !value.is_empty() => {
            s.database_url = Some(value.to_string());
            "database-url"
        }
        "DATABASE_SSL" => {
            s.ssl = match value.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => true,
                "false" | "0" | "no" | "off" | "" => false,
                _ => return Err(bad("ssl", "true or false")),
            };
            "ssl"
        }
        "PGSSLMODE" => {
            s.sslmode = Some(SslMode::from_str(value).map_err(|_| {
                bad(
                    "sslmode",
                    "disable, allow, prefer, require, verify-ca or verify-full",
                )
            })?);
            "sslmode"
        }
        "PGSSLROOTCERT" => {
            s.sslrootcert = Some(PathBuf::from(value));
            "sslrootcert"
        }
        "PGHOST" => {
            s.pg.host = Some(value.to_string());
            "pghost"
        }
        "PGPORT" => {
            s.pg.port = Some(
                value
                    .trim()
                    .parse()
                    .map_err(|_| bad("pgport", "a port number"))?,
            );
            "pgport"
        }
        "PGUSER" => {
            s.pg.user = Some(value.to_string());
            "pguser"
        }
        "PGPASSWORD" => {
            s.pg.password = Some(value.to_string());
            "pgpassword"
        }
        "PGDATABASE" => {
            s.pg.database = Some(value.to_string());
            "pgdatabase"
        }
        "DATABASE_CONNECTION_POOL_SIZE" => {
            s.pool_size = value
                .trim()
                .parse()
                .map_err(|_| bad("pool-size", "an integer of at least 1"))?;
            "pool-size"
        }
        "DATABASE_CONNECTION_TIMEOUT" => {
            s.connect_timeout = ms("connect-timeout")?;
            "connect-timeout"
        }
        "DATABASE_IDLE_TIMEOUT" => {
            s.idle_timeout = ms("idle-timeout")?;
            "idle-timeout"
        }
        "DATABASE_MAX_LIFETIME" => {
            s.max_lifetime = ms("max-lifetime")?;
            "max-lifetime"
        }
        "BACKUP_RETENTION_DAYS" => {
            s.backup_retention_days = value
                .trim()
                .parse()
                .map_err(|_| bad("backup-retention-days", "a number of days"))?;
            "backup-retention-days"
        }
        "BACKUP_COMPRESSION_LEVEL" => {
            s.backup_compression_level = value
                .trim()
                .parse()
                .map_err(|_| bad("backup-compression-level", "a zstd level from 1 to 22"))?;
            "backup-compression-level"
        }
        "HEALTH_CHECK_TIMEOUT" => {
            s.health_check_timeout = ms("health-check-timeout")?;
            "health-check-timeout"
        }
        "READINESS_CHECK_TIMEOUT" => {
            s.readiness_check_timeout = ms("readiness-check-timeout")?;
            "readiness-check-timeout"
        }
        "PGSHIFT_MIGRATIONS" => {
            s.migrations_dir = Some(PathBuf::from(value));
            "migrations"
        }
        "PGSHIFT_REPORTS_DIR" => {
            s.reports_dir = PathBuf::from(value);
            "reports-dir"
        }
        "PGSHIFT_BACKUP_DIR" => {
            s.backup_dir = PathBuf::from(value);
            "backup-dir"
        }
        "PGSHIFT_LOCK_TIMEOUT" => {
            s.lock_timeout = dur("lock-timeout")?;
            "lock-timeout"
        }
        "PGSHIFT_STATEMENT_TIMEOUT" => {
            s.statement_timeout = dur("statement-timeout")?;
            "statement-timeout"
        }
        "PGSHIFT_RETRIES" => {
            s.retries = value
                .trim()
                .parse()
                .map_err(|_| bad("retries", "a number of tries"))?;
            "retries"
        }
        "PGSHIFT_DEPLOY_LOCK_TIMEOUT" => {
            s.deploy_lock_timeout = dur("deploy-lock-timeout")?;
            "deploy-lock-timeout"
        }
        _ => return Ok(()),
    };
    s.origins.insert(key.into(), origin);
    Ok(())
}

/// Hides the password of a database URL or conninfo string:
/// `postgresql://user:secret@host/db` → `postgresql://user:***@host/db`. Never panics, and a
/// string it cannot parse still loses everything between the user and the host.
pub fn redact_url(s: &str) -> String {
    if let Some(scheme_end) = s.find("://") {
        let rest = &s[scheme_end + 3..];
        // The userinfo ends at the last '@' before the query: a password may contain '/', ':'
        // or '@' when it is not percent-encoded.
        let query = rest.find('?').unwrap_or(rest.len());
        let (auth, tail) = match rest[..query].rfind('@') {
            Some(at) => {
                let userinfo = &rest[..at];
                let shown = match userinfo.find(':') {
                    Some(c) => format!("{}:***", &userinfo[..c]),
                    None => userinfo.to_string(),
                };
                (format!("{shown}@"), &rest[at + 1..])
            }
            None => (String::new(), rest),
        };
        let tail = redact_params(tail, '&');
        return format!("{}://{}{}", &s[..scheme_end], auth, tail);
    }
    redact_params(s, ' ')
}

/// Replaces the value of every `password=` parameter.
fn redact_params(s: &str, sep: char) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.to_ascii_lowercase().find("password=") {
        let before_ok = i == 0 || matches!(rest.as_bytes()[i - 1], b'?' | b'&' | b' ' | b'\t');
        out.push_str(&rest[..i + 9]);
        rest = &rest[i + 9..];
        if !before_ok {
            continue;
        }
        let end = if let Some(quoted) = rest.strip_prefix('\'') {
            quoted.find('\'').map(|e| e + 2).unwrap_or(rest.len())
        } else {
            rest.find([sep, '&', ' ', '#']).unwrap_or(rest.len())
        };
        out.push_str("***");
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(env: &[(&str, &str)]) -> LoadOptions {
        LoadOptions {
            cwd: std::env::temp_dir(),
            config_path: None,
            dotenv: false,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            overrides: Overrides::default(),
        }
    }

    #[test]
    fn defaults_are_the_specs() {
        let s = load(&opts(&[])).unwrap();
        assert_eq!(s.pool_size, 15);
        assert_eq!(s.connect_timeout, Duration::from_millis(30_000));
        assert_eq!(s.idle_timeout, Duration::from_millis(600_000));
        assert_eq!(s.max_lifetime, Duration::from_millis(3_600_000));
        assert_eq!(s.backup_retention_days, 30);
        assert_eq!(s.backup_compression_level, 6);
        assert_eq!(s.health_check_timeout, Duration::from_millis(30_000));
        assert_eq!(s.readiness_check_timeout, Duration::from_millis(30_000));
        assert_eq!(s.lock_timeout, Duration::from_secs(5));
    }

    #[test]
    fn layers_override_in_order_and_remember_their_origin() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("pgshift.toml"),
            "pool-size = 3\nlock-timeout = \"2s\"\nretries = 9\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join(".env"),
            "DATABASE_CONNECTION_POOL_SIZE=4\nPGSHIFT_RETRIES=8\n",
        )
        .unwrap();
        let mut o = opts(&[("DATABASE_CONNECTION_POOL_SIZE", "5")]);
        o.cwd = dir.path().to_path_buf();
        o.dotenv = true;
        o.overrides.lock_timeout = Some(Duration::from_millis(700));
        let s = load(&o).unwrap();
        assert_eq!(s.pool_size, 5);
        assert_eq!(
            s.origins["pool-size"],
            Origin::Env {
                var: "DATABASE_CONNECTION_POOL_SIZE".into()
            }
        );
        assert_eq!(s.retries, 8);
        assert!(
            matches!(&s.origins["retries"], Origin::DotEnv { var, .. } if var == "PGSHIFT_RETRIES")
        );
        assert_eq!(s.lock_timeout, Duration::from_millis(700));
        assert_eq!(s.origins["lock-timeout"], Origin::Flag);
        o.dotenv = false;
        let s = load(&o).unwrap();
        assert_eq!(s.retries, 9);
        assert!(matches!(s.origins["retries"], Origin::File { .. }));
    }

    #[test]
    fn bad_values_name_the_variable_and_hide_secrets() {
        let err = load(&opts(&[("DATABASE_CONNECTION_POOL_SIZE", "abc")])).unwrap_err();
        assert!(
            err.to_string().contains("DATABASE_CONNECTION_POOL_SIZE"),
            "{err}"
        );
        let err = load(&opts(&[("DATABASE_SSL", "maybe")])).unwrap_err();
        assert!(err.to_string().contains("DATABASE_SSL"), "{err}");
        assert!(load(&opts(&[("DATABASE_SSL", "true")])).unwrap().ssl);
        let err = load(&opts(&[("BACKUP_COMPRESSION_LEVEL", "40")])).unwrap_err();
        assert!(err.to_string().contains("1 to 22"), "{err}");
    }

    #[test]
    fn unknown_toml_key_and_missing_config_file_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pgshift.toml"), "pool-sise = 3\n").unwrap();
        let mut o = opts(&[]);
        o.cwd = dir.path().to_path_buf();
        let err = load(&o).unwrap_err();
        assert!(
            err.to_string().contains("pool-sise") && err.to_string().contains("pgshift.toml"),
            "{err}"
        );
        o.config_path = Some("nope.toml".into());
        assert!(matches!(load(&o), Err(ConfigError::FileNotFound { .. })));
    }

    #[test]
    fn reference_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/pgshift.toml");
        let mut o = opts(&[]);
        o.config_path = Some(path);
        let s = load(&o).unwrap();
        assert_eq!(s.ledger_table, "__drizzle_migrations");
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact_url("postgresql://u:secret@h:5432/db"),
            "postgresql://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgresql://u@h/db"), "postgresql://u@h/db");
        assert_eq!(
            redact_url("postgres://u:p%40ss:w@h/db?sslmode=require"),
            "postgres://u:***@h/db?sslmode=require"
        );
        assert_eq!(
            redact_url("postgresql://h/db?user=u&password=secret&x=1"),
            "postgresql://h/db?user=u&password=***&x=1"
        );
        assert_eq!(
            redact_url("host=h password=secret user=u"),
            "host=h password=*** user=u"
        );
        assert_eq!(
            redact_url("host=h password='a b' user=u"),
            "host=h password=*** user=u"
        );
        assert_eq!(redact_url("not a url :: @@"), "not a url :: @@");
        assert_eq!(
            redact_url("postgresql://u:p/s@ss@h/db"),
            "postgresql://u:***@h/db"
        );
        let s = Settings {
            database_url: Some("postgresql://u:hunter2@h/db".into()),
            pg: PgEnv {
                password: Some("hunter3".into()),
                ..Default::default()
            },
            ..Settings::defaults()
        };
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("hunter3"),
            "{shown}"
        );
    }
}
