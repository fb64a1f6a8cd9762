//! Connections to PostgreSQL: where to connect, how (TLS with libpq's `sslmode` meaning), how
//! long to wait, and what to say when it fails.
//!
//! This module owns turning [`Settings`] into a [`Target`] (URL or `PG*` variables, redacted for
//! display), opening single connections and pools over rustls, and the error type that keeps
//! PostgreSQL's own structure (SQLSTATE, detail, hint, position). It also owns the deploy lock
//! ([`DeployLock`]) because the lock is a property of a connection. It must not know about
//! migrations or the ledger.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use serde::Serialize;
use tokio_postgres::config::Host;
use tokio_postgres::types::Type;
pub use tokio_postgres::Client;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::{redact_url, Settings, SslMode};
use crate::ident::quote_ident;

mod blockers;
pub use blockers::*;

mod databases;
mod libpq;
pub use databases::*;

/// A PostgreSQL error with the server's own structure kept intact.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct PgError {
    /// `ERROR`, `FATAL`, …
    pub severity: String,
    /// The five-character SQLSTATE, e.g. `55P03`.
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// 1-based character position in the statement text the server received.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
}

impl PgError {
    /// Extracts the server error from a driver error, if the server sent one.
    pub fn from_driver(err: &tokio_postgres::Error) -> Option<Self> {
        let db = err.as_db_error()?;
        let position = match db.position() {
            Some(tokio_postgres::error::ErrorPosition::Original(p)) => Some(*p),
            _ => None,
        };
        Some(PgError {
            severity: db.severity().to_string(),
            code: db.code().code().to_string(),
            message: db.message().to_string(),
            detail: db.detail().map(str::to_string),
            hint: db.hint().map(str::to_string),
            position,
            context: db.where_().map(str::to_string),
        })
    }

    /// True for the errors a retry can cure: lock_not_available, deadlock, serialization failure.
    pub fn is_transient(&self) -> bool {
        matches!(self.code.as_str(), "55P03" | "40P01" | "40001")
    }
}

impl fmt::Display for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.severity, self.code, self.message)?;
        if let Some(d) = &self.detail {
            write!(f, "\n  DETAIL: {d}")?;
        }
        if let Some(h) = &self.hint {
            write!(f, "\n  HINT: {h}")?;
        }
        Ok(())
    }
}

/// Errors of this module. Each message says what to try next.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(
        "no database configured: set DATABASE_URL (or PGHOST/PGDATABASE, or PGSERVICE), put `database-url` in pgkeel.toml, or pass --database-url"
    )]
    NotConfigured,
    #[error("invalid database URL `{url}`: {reason}; expected postgresql://user:password@host:port/database")]
    InvalidUrl { url: String, reason: String },
    #[error("cannot read sslrootcert {path}: {reason}")]
    RootCert { path: PathBuf, reason: String },
    /// A file libpq's conventions point at (service file, client certificate or key) is unusable.
    #[error("{file} {path}: {reason}")]
    ConnFile {
        file: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error(
        "connection service `{name}` (PGSERVICE or service=) is in none of {}; add a [{name}] section or fix the name",
        .searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    UnknownService {
        name: String,
        searched: Vec<PathBuf>,
    },
    #[error("cannot connect to {target}: connection timed out after {}ms; check the host and port, firewalls, and DATABASE_CONNECTION_TIMEOUT", .after.as_millis())]
    ConnectTimeout { target: String, after: Duration },
    #[error("cannot connect to {target}: {reason}{}", hint_suffix(.hint))]
    Connect {
        target: String,
        reason: String,
        hint: Option<String>,
        pg: Option<PgError>,
    },
    #[error("{context}: {pg}{}", hint_suffix(.hint))]
    Query {
        context: String,
        pg: PgError,
        hint: Option<String>,
    },
    #[error("{context}: connection lost ({reason}); the server closed the connection or the network dropped; run again")]
    ConnectionLost { context: String, reason: String },
    #[error(
        "could not take the deploy lock within {}s: another pgkeel holds it ({holder}); wait for it to finish or raise --lock-wait",
        .waited.as_secs()
    )]
    LockTimeout { waited: Duration, holder: String },
    #[error(
        "the deploy lock was taken by backend {holder} but this session now runs on backend {ours}: the connection goes through a transaction-pooling proxy (PgBouncer pool_mode=transaction?), where session locks and session settings do not hold; run migrations over a direct connection (the provider's non-pooled URL) or a session-pooling port"
    )]
    TransactionPooler { holder: i32, ours: i32 },
    #[error(
        "the deploy lock is already held by server backend {pid}, which this connection was just given: another client shares it, so the connection goes through a transaction-pooling proxy (PgBouncer pool_mode=transaction?), where session locks do not hold; run migrations over a direct connection (the provider's non-pooled URL) or a session-pooling port"
    )]
    SharedBackend { pid: i32 },
    #[error(
        "{context}: the server lost this session's prepared statement: the connection goes through a transaction-pooling proxy (PgBouncer pool_mode=transaction?), where session locks and prepared statements do not hold; run migrations over a direct connection (the provider's non-pooled URL) or a session-pooling port"
    )]
    PoolerLostSession { context: String },
    #[error(
        "{context}: this transaction ran on a server connection that does not hold the deploy lock this session took: the connection goes through a transaction-pooling proxy (PgBouncer pool_mode=transaction?), where session locks do not hold; run migrations over a direct connection (the provider's non-pooled URL) or a session-pooling port"
    )]
    LockNotHeld { context: String },
    #[error(
        "{table} is drizzle-orm's own migrations table (id serial, hash, created_at bigint), not pgkeel's ledger, and pgkeel does not alter it: say where drizzle keeps it (`migrations: {{ schema: \"{schema}\" }}` in drizzle.config.ts, which pgkeel reads, or `schema = \"{schema}\"` under [drizzle] in pgkeel.toml), and pgkeel keeps its ledger beside it as {beside} and takes drizzle's rows over"
    )]
    LedgerIsDrizzles {
        table: String,
        schema: String,
        beside: &'static str,
    },
}

fn hint_suffix(h: &Option<String>) -> String {
    h.as_ref()
        .map(|h| format!("\n  hint: {h}"))
        .unwrap_or_default()
}

impl DbError {
    /// Wraps a driver error that happened while doing `context`.
    pub fn query(context: impl Into<String>, err: tokio_postgres::Error) -> Self {
        let context = context.into();
        match PgError::from_driver(&err) {
            // The driver names its statements s0, s1, …: when the server doesn't know ours, has
            // another of that name, or one with other parameters, the session changed under us.
            Some(pg)
                if matches!(pg.code.as_str(), "26000" | "42P05" | "08P01")
                    && pg.message.contains("prepared statement \"s") =>
            {
                DbError::PoolerLostSession { context }
            }
            // The session is gone: a connection exception (class 08, also what PgBouncer
            // sends when its server connection dies) or the backend was terminated.
            Some(pg) if pg.code.starts_with("08") || pg.code.starts_with("57P0") => {
                DbError::ConnectionLost {
                    context,
                    reason: pg.to_string(),
                }
            }
            Some(pg) => {
                let hint = privilege_hint(&pg);
                DbError::Query { context, pg, hint }
            }
            None => DbError::ConnectionLost {
                context,
                reason: err.to_string(),
            },
        }
    }

    /// The server's error, when there is one.
    pub fn pg(&self) -> Option<&PgError> {
        match self {
            DbError::Query { pg, .. } => Some(pg),
            DbError::Connect { pg, .. } => pg.as_ref(),
            _ => None,
        }
    }

    /// True when the configuration itself is wrong (nothing was tried).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            DbError::NotConfigured
                | DbError::InvalidUrl { .. }
                | DbError::RootCert { .. }
                | DbError::ConnFile { .. }
                | DbError::UnknownService { .. }
                | DbError::LedgerIsDrizzles { .. }
        )
    }

    /// True when the failure is about reaching the server rather than what was asked of it.
    pub fn is_connection(&self) -> bool {
        matches!(
            self,
            DbError::TransactionPooler { .. }
                | DbError::SharedBackend { .. }
                | DbError::PoolerLostSession { .. }
                | DbError::LockNotHeld { .. }
                | DbError::ConnectTimeout { .. }
                | DbError::Connect { .. }
                | DbError::ConnectionLost { .. }
        )
    }
}

/// A next step for a denied privilege (42501), by the object and privilege the server's message
/// names: a denied SELECT on a sequence is not fixed by `GRANT CREATE ON SCHEMA`.
fn privilege_hint(pg: &PgError) -> Option<String> {
    if pg.code != "42501" {
        return None;
    }
    let m = pg.message.as_str();
    let after = |prefix: &str| m.strip_prefix(prefix).map(str::trim);
    let hint = if let Some(schema) = after("permission denied for schema") {
        format!("grant the role the schema's privileges (GRANT USAGE, CREATE ON SCHEMA {schema} TO <role>), or connect as its owner")
    } else if let Some(seq) = after("permission denied for sequence") {
        format!("GRANT USAGE, SELECT ON SEQUENCE {seq} TO <role> (or ALL SEQUENCES IN SCHEMA …), or connect as its owner")
    } else if let Some(rel) = after("permission denied for table")
        .or_else(|| after("permission denied for relation"))
        .or_else(|| after("permission denied for view"))
        .or_else(|| after("permission denied for materialized view"))
    {
        format!("GRANT the privilege the statement needs (SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES or TRIGGER) ON {rel} TO <role>, or connect as its owner")
    } else if let Some(f) =
        after("permission denied for function").or_else(|| after("permission denied for procedure"))
    {
        format!("GRANT EXECUTE ON FUNCTION {f} TO <role>")
    } else if m.starts_with("permission denied to create database") {
        "the role may not create databases: ALTER ROLE <role> CREATEDB, or give pgkeel an existing database (--scratch-url, --target-url)".to_string()
    } else if let Some(db) = after("permission denied for database") {
        format!("GRANT CONNECT, CREATE ON DATABASE {db} TO <role> (CREATE is what CREATE SCHEMA and CREATE EXTENSION need)")
    } else if let Some(what) = after("must be owner of") {
        format!("only the owner of {what} may do this: connect as that owner, or make the role a member of it (GRANT <owner> TO <role>)")
    } else {
        "the role lacks the privilege named above: grant it, or connect as the object's owner"
            .to_string()
    };
    Some(hint)
}

/// Where and how to connect, resolved from settings. Its `Display` never shows a password.
#[derive(Clone)]
pub struct Target {
    pub config: tokio_postgres::Config,
    pub sslmode: SslMode,
    pub sslrootcert: Option<PathBuf>,
    /// The client certificate and key presented when the server asks (`sslcert`/`sslkey`).
    pub client_cert: Option<(PathBuf, PathBuf)>,
    redacted: String,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("target", &self.redacted)
            .field("sslmode", &self.sslmode)
            .finish()
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl Target {
    /// Resolves the connection target: the URL (flag > env > file) with libpq's `PG*` variables
    /// filling what it leaves out, as libpq does.
    pub fn from_settings(settings: &Settings) -> Result<Self, DbError> {
        let pg = &settings.pg;
        let url = settings.database_url.as_deref();
        if url.is_none() && pg.host.is_none() && pg.database.is_none() && pg.service.is_none() {
            return Err(DbError::NotConfigured);
        }
        let invalid = |reason: String| DbError::InvalidUrl {
            url: url.map(redact_url).unwrap_or_default(),
            reason,
        };
        let mut params = match url {
            Some(raw) => libpq::split_url(raw, invalid)?,
            None => libpq::UrlParams::default(),
        };
        let mut config = match url {
            Some(_) => tokio_postgres::Config::from_str(&params.cleaned)
                .map_err(|e| invalid(e.to_string()))?,
            None => tokio_postgres::Config::new(),
        };
        // The connection service file fills in what the URL leaves out, before the PG*
        // variables do (libpq's order).
        if let Some(name) = params.service.clone().or_else(|| pg.service.clone()) {
            let files = libpq::service_files(pg.servicefile.as_deref());
            let found = libpq::service(&name, &files)?;
            apply_service(&mut config, &mut params, &found, &files)?;
        }
        if let Some(attrs) = &pg.target_session_attrs {
            if attrs == "read-write" && !params.cleaned.contains("target_session_attrs") {
                config.target_session_attrs(tokio_postgres::config::TargetSessionAttrs::ReadWrite);
            }
        }
        let sslmode_from_url = params.sslmode;
        let rootcert_from_url = params.sslrootcert.clone();
        if config.get_hosts().is_empty() {
            let host = pg.host.clone().unwrap_or_else(default_host);
            if host.starts_with('/') {
                config.host_path(&host);
            } else {
                config.host(&host);
            }
        }
        if config.get_ports().is_empty() {
            if let Some(port) = pg.port {
                config.port(port);
            }
        }
        if config.get_user().is_none() {
            let user = pg
                .user
                .clone()
                .or_else(|| std::env::var("USER").ok())
                .unwrap_or_else(|| "postgres".into());
            config.user(&user);
        }
        if config.get_password().is_none() {
            if let Some(pw) = &pg.password {
                config.password(pw.as_bytes());
            }
        }
        if config.get_dbname().is_none() {
            let db = pg
                .database
                .clone()
                .or_else(|| config.get_user().map(str::to_string));
            if let Some(db) = db {
                config.dbname(&db);
            }
        }
        config.connect_timeout(settings.connect_timeout);
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(30));
        config.application_name(application_name());
        if !settings.search_path.is_empty() {
            let path = settings
                .search_path
                .iter()
                .map(|s| quote_ident(s))
                .collect::<Vec<_>>()
                .join(",");
            let option = format!("-c search_path={}", escape_startup_option(&path));
            let options = match config.get_options() {
                Some(o) if !o.trim().is_empty() => format!("{o} {option}"),
                _ => option,
            };
            config.options(&options);
        }

        let sslmode = sslmode_from_url
            .or(settings.sslmode)
            .unwrap_or(if settings.ssl {
                SslMode::Require
            } else {
                SslMode::Prefer
            });
        // DATABASE_SSL=true means "at least require": a weaker explicit mode is raised.
        let sslmode = if settings.ssl
            && matches!(sslmode, SslMode::Disable | SslMode::Allow | SslMode::Prefer)
        {
            SslMode::Require
        } else {
            sslmode
        };
        config.ssl_mode(match sslmode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Allow | SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
        // No password anywhere: the password file, as libpq looks it up.
        if config.get_password().is_none() {
            let file = libpq::passfile(params.passfile.as_deref().or(pg.passfile.as_deref()));
            let host = match config.get_hosts().first() {
                Some(Host::Tcp(h)) => h.clone(),
                #[cfg(unix)]
                Some(Host::Unix(p)) => p.display().to_string(),
                _ => "localhost".into(),
            };
            let port = config.get_ports().first().copied().unwrap_or(5432);
            let (db, user) = (
                config.get_dbname().unwrap_or_default().to_string(),
                config.get_user().unwrap_or_default().to_string(),
            );
            if let Some(pw) = file.and_then(|f| libpq::pgpass(&f, &host, port, &db, &user)) {
                config.password(pw.as_bytes());
            }
        }
        let client_cert = match (
            params.sslcert.clone().or_else(|| pg.sslcert.clone()),
            params.sslkey.clone().or_else(|| pg.sslkey.clone()),
        ) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (Some(cert), None) => Some((cert.clone(), cert.with_extension("key"))),
            (None, Some(key)) => {
                return Err(DbError::ConnFile {
                    file: "client key",
                    path: key,
                    reason: "sslkey is set but sslcert is not: set both".into(),
                })
            }
            (None, None) => libpq::default_client_cert(),
        };
        let redacted = describe(&config);
        Ok(Target {
            config,
            sslmode,
            sslrootcert: rootcert_from_url.or_else(|| settings.sslrootcert.clone()),
            client_cert,
            redacted,
        })
    }

    /// Same server, another database (scratch databases, tests).
    pub fn with_dbname(&self, dbname: &str) -> Self {
        let mut t = self.clone();
        t.config.dbname(dbname);
        t.redacted = describe(&t.config);
        t
    }

    /// The database name this target connects to.
    pub fn dbname(&self) -> &str {
        self.config.get_dbname().unwrap_or("")
    }

    fn tls(&self) -> Result<MakeRustlsConnect, DbError> {
        tls_connector_with(
            self.sslmode,
            self.sslrootcert.as_deref(),
            self.client_cert
                .as_ref()
                .map(|(c, k)| (c.as_path(), k.as_path())),
        )
    }

    /// Opens one connection; its driver task runs in the background.
    pub async fn connect(&self) -> Result<Client, DbError> {
        let tls = self.tls()?;
        let timeout = self
            .config
            .get_connect_timeout()
            .copied()
            .unwrap_or(Duration::from_secs(30));
        let started = Instant::now();
        let fut = self.config.connect(tls);
        // The driver's own timeout covers each address; this one bounds the whole attempt.
        let res = tokio::time::timeout(timeout + Duration::from_millis(250), fut).await;
        match res {
            Err(_) => Err(DbError::ConnectTimeout {
                target: self.redacted.clone(),
                after: started.elapsed(),
            }),
            Ok(Err(e)) => Err(self.connect_error(e, started.elapsed(), timeout)),
            Ok(Ok((client, connection))) => {
                let task = tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!("connection closed: {e}");
                    }
                });
                track_connection(task);
                Ok(client)
            }
        }
    }

    fn connect_error(
        &self,
        e: tokio_postgres::Error,
        elapsed: Duration,
        timeout: Duration,
    ) -> DbError {
        let target = self.redacted.clone();
        if let Some(pg) = PgError::from_driver(&e) {
            let hint = match pg.code.as_str() {
                "28P01" | "28000" => Some(
                    "check the user and password in DATABASE_URL (the password is never printed)".into(),
                ),
                "3D000" => Some(format!(
                    "create it first (createdb {}) or fix the database name in the URL",
                    self.dbname()
                )),
                "53300" => Some("the server is out of connection slots; lower DATABASE_CONNECTION_POOL_SIZE or close idle sessions".into()),
                _ => privilege_hint(&pg),
            };
            return DbError::Connect {
                target,
                reason: pg.message.clone(),
                hint,
                pg: Some(pg),
            };
        }
        let text = error_chain(&e);
        if text.contains("timed out") || elapsed >= timeout {
            return DbError::ConnectTimeout {
                target,
                after: elapsed,
            };
        }
        let hint = if text.contains("refused") {
            Some(
                "is PostgreSQL running and listening there? (locally: pg_ctlcluster 15 main start)"
                    .into(),
            )
        } else if text.contains("failed to lookup") || text.contains("Name or service") {
            Some("the host name does not resolve; check the host in DATABASE_URL".into())
        } else if text.to_lowercase().contains("tls")
            || text.contains("certificate")
            || text.contains("ssl")
        {
            Some("TLS failed; check sslmode (disable, prefer, require, verify-ca, verify-full) and sslrootcert".into())
        } else {
            None
        };
        DbError::Connect {
            target,
            reason: text,
            hint,
            pg: None,
        }
    }

    /// Asks the server to cancel whatever `client` is running (the protocol's cancel request,
    /// sent over a new connection).
    pub async fn cancel(&self, client: &Client) -> Result<(), DbError> {
        let tls = self.tls()?;
        client
            .cancel_token()
            .cancel_query(tls)
            .await
            .map_err(|e| DbError::ConnectionLost {
                context: "cancelling the running statement".into(),
                reason: e.to_string(),
            })
    }

    /// A connection pool bounded by `size`, for checks that run concurrently.
    pub fn pool(&self, settings: &Settings) -> Result<deadpool_postgres::Pool, DbError> {
        let manager = deadpool_postgres::Manager::from_config(
            self.config.clone(),
            self.tls()?,
            deadpool_postgres::ManagerConfig {
                recycling_method: deadpool_postgres::RecyclingMethod::Fast,
            },
        );
        deadpool_postgres::Pool::builder(manager)
            .max_size(settings.pool_size.max(1))
            .wait_timeout(Some(settings.connect_timeout))
            .create_timeout(Some(settings.connect_timeout))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| DbError::Connect {
                target: self.redacted.clone(),
                reason: e.to_string(),
                hint: None,
                pg: None,
            })
    }
}

/// The server's `server_version_num` (150004 for 15.4).
pub async fn server_version_num(client: &Client) -> Result<u32, DbError> {
    let n: i32 = client
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await
        .map_err(|e| DbError::query("reading the server version", e))?
        .get(0);
    Ok(u32::try_from(n).unwrap_or(0))
}

/// The PostgreSQL version rules are checked against when none is given (`lint`, `test`): the
/// server's `server_version_num` when `target` answers within 2 s, else 17 (170000). One rule
/// for every command that lints.
pub async fn lint_version_default(target: Option<&Target>) -> u32 {
    const FALLBACK: u32 = 170000;
    let Some(t) = target else {
        return FALLBACK;
    };
    let Ok(Ok(client)) = tokio::time::timeout(Duration::from_secs(2), t.connect()).await else {
        return FALLBACK;
    };
    server_version_num(&client).await.unwrap_or(FALLBACK)
}

/// A multi-statement query that failed, and how many of its statements completed before the
/// one that failed (the server stops at the first error, and reports each completed
/// statement), so the failing statement is known even when the error has no position.
#[derive(Debug)]
pub struct BatchFailure {
    pub error: tokio_postgres::Error,
    pub completed: usize,
}

/// Runs `sql` (one or more statements) as one simple query, like `batch_execute`, counting
/// the statements that completed.
pub async fn execute_counting(client: &Client, sql: &str) -> Result<(), BatchFailure> {
    use futures_util::TryStreamExt;
    let stream = client
        .simple_query_raw(sql)
        .await
        .map_err(|error| BatchFailure {
            error,
            completed: 0,
        })?;
    futures_util::pin_mut!(stream);
    let mut completed = 0;
    loop {
        match stream.try_next().await {
            Ok(Some(tokio_postgres::SimpleQueryMessage::CommandComplete(_))) => completed += 1,
            Ok(Some(_)) => {}
            Ok(None) => return Ok(()),
            Err(error) => return Err(BatchFailure { error, completed }),
        }
    }
}

/// `pgkeel/<version> host=<hostname> pid=<pid>`: lets `pg_stat_activity` (and a waiting
/// pgkeel) say who holds the deploy lock.
pub fn application_name() -> String {
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    application_name_for(&host, std::process::id())
}

/// [`application_name`] for `host` and `pid`, cut to the 63 bytes PostgreSQL keeps, at a char
/// boundary (a hostname may be non-ASCII).
fn application_name_for(host: &str, pid: u32) -> String {
    let mut name = format!("pgkeel/{} {} {}", env!("CARGO_PKG_VERSION"), host, pid);
    let mut end = name.len().min(63);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name.truncate(end);
    name
}

fn default_host() -> String {
    ["/var/run/postgresql", "/tmp"]
        .into_iter()
        .find(|d| Path::new(d).exists())
        .unwrap_or("localhost")
        .to_string()
}

/// The error and its causes on one line, each cause once (a message that already contains its
/// cause's text is not repeated).
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        cur = s.source();
    }
    out
}

/// `user@host:port/db`, never with a password.
fn describe(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("");
    let db = config.get_dbname().unwrap_or("");
    let pw = if config.get_password().is_some() {
        ":***"
    } else {
        ""
    };
    format!("postgresql://{user}{pw}@{host}:{port}/{db}")
}

/// Applies the `[service]` parameters to what the URL left unset (`files`: where they came from,
/// for errors).
fn apply_service(
    config: &mut tokio_postgres::Config,
    params: &mut libpq::UrlParams,
    service: &[(String, String)],
    files: &[PathBuf],
) -> Result<(), DbError> {
    let bad = |reason: String| DbError::ConnFile {
        file: "connection service file",
        path: files.first().cloned().unwrap_or_default(),
        reason,
    };
    for (key, value) in service {
        match key.as_str() {
            "host" if config.get_hosts().is_empty() => {
                for h in value.split(',') {
                    match h.starts_with('/') {
                        true => config.host_path(h),
                        false => config.host(h),
                    };
                }
            }
            "port" if config.get_ports().is_empty() => {
                for p in value.split(',') {
                    config.port(p.trim().parse().map_err(|_| bad(format!("port `{p}`")))?);
                }
            }
            "dbname" if config.get_dbname().is_none() => {
                config.dbname(value);
            }
            "user" if config.get_user().is_none() => {
                config.user(value);
            }
            "password" if config.get_password().is_none() => {
                config.password(value.as_bytes());
            }
            "application_name" | "options" | "target_session_attrs" | "connect_timeout" => {
                // Through the driver's own parser, so values mean what they mean in a URL.
                let one: tokio_postgres::Config = format!("{key}='{}'", value.replace('\'', "\\'"))
                    .parse()
                    .map_err(|e| bad(format!("{key}: {e}")))?;
                if key == "options" && config.get_options().is_none() {
                    config.options(one.get_options().unwrap_or_default());
                }
                if key == "application_name" {
                    if let Some(a) = one.get_application_name() {
                        config.application_name(a);
                    }
                }
                if key == "target_session_attrs" {
                    config.target_session_attrs(one.get_target_session_attrs());
                }
                if key == "connect_timeout" && config.get_connect_timeout().is_none() {
                    if let Some(t) = one.get_connect_timeout() {
                        config.connect_timeout(*t);
                    }
                }
            }
            "sslmode" => {
                params.sslmode = params.sslmode.or(Some(
                    value
                        .parse()
                        .map_err(|_| bad(format!("unknown sslmode `{value}`")))?,
                ))
            }
            "sslrootcert" => params.sslrootcert = params.sslrootcert.take().or(Some(value.into())),
            "sslcert" => params.sslcert = params.sslcert.take().or(Some(value.into())),
            "sslkey" => params.sslkey = params.sslkey.take().or(Some(value.into())),
            "passfile" => params.passfile = params.passfile.take().or(Some(value.into())),
            "host" | "port" | "dbname" | "user" | "password" => {}
            other => return Err(bad(format!("unknown parameter `{other}`"))),
        }
    }
    Ok(())
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the TLS connector for a libpq `sslmode`.
pub fn tls_connector(mode: SslMode, rootcert: Option<&Path>) -> Result<MakeRustlsConnect, DbError> {
    tls_connector_with(mode, rootcert, None)
}

/// [`tls_connector`] that presents `client` (certificate chain and key, PEM) when the server
/// asks for a certificate (`clientcert=verify-ca|verify-full`, `cert` authentication).
pub fn tls_connector_with(
    mode: SslMode,
    rootcert: Option<&Path>,
    client: Option<(&Path, &Path)>,
) -> Result<MakeRustlsConnect, DbError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions");
    let wants = match mode {
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let roots = Arc::new(root_store(rootcert)?);
            let webpki =
                rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider)
                    .build()
                    .map_err(|e| DbError::RootCert {
                        path: rootcert.map(Path::to_path_buf).unwrap_or_default(),
                        reason: e.to_string(),
                    })?;
            if mode == SslMode::VerifyFull {
                builder.with_webpki_verifier(webpki)
            } else {
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(ChainOnly(webpki)))
            }
        }
        // libpq's require/prefer encrypt without checking the certificate.
        _ => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider_algs()))),
    };
    let config = match client {
        None => wants.with_no_client_auth(),
        Some((cert, key)) => {
            let (chain, key_der) = client_identity(cert, key)?;
            wants
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| DbError::ConnFile {
                    file: "client certificate",
                    path: cert.to_path_buf(),
                    reason: format!("does not go with its key {}: {e}", key.display()),
                })?
        }
    };
    Ok(MakeRustlsConnect::new(config))
}

/// The client certificate chain and private key (PEM), with libpq's rule for the key: nobody
/// but its owner may read it (or root's group, 0640 at most, for a root-owned key).
fn client_identity(
    cert: &Path,
    key: &Path,
) -> Result<
    (
        Vec<CertificateDer<'static>>,
        rustls::pki_types::PrivateKeyDer<'static>,
    ),
    DbError,
> {
    let cert_err = |reason: String| DbError::ConnFile {
        file: "client certificate (sslcert)",
        path: cert.to_path_buf(),
        reason,
    };
    let key_err = |reason: String| DbError::ConnFile {
        file: "client key (sslkey)",
        path: key.to_path_buf(),
        reason,
    };
    let pem = std::fs::read(cert).map_err(|e| cert_err(e.to_string()))?;
    let chain: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| cert_err(e.to_string()))?;
    if chain.is_empty() {
        return Err(cert_err("no PEM certificate found".into()));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let meta = std::fs::metadata(key).map_err(|e| key_err(e.to_string()))?;
        let mode = meta.permissions().mode();
        let allowed = if meta.uid() == 0 { 0o037 } else { 0o077 };
        if mode & allowed != 0 {
            return Err(key_err(format!(
                "has group or world access (mode {:o}); it must be u=rw (0600) or less: chmod 600 {}",
                mode & 0o777,
                key.display()
            )));
        }
    }
    let pem = std::fs::read(key).map_err(|e| key_err(e.to_string()))?;
    let key_der = rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| key_err(e.to_string()))?
        .ok_or_else(|| key_err("no PEM private key found".into()))?;
    Ok((chain, key_der))
}

fn provider_algs() -> rustls::crypto::WebPkiSupportedAlgorithms {
    rustls::crypto::ring::default_provider().signature_verification_algorithms
}

fn root_store(rootcert: Option<&Path>) -> Result<RootCertStore, DbError> {
    let mut store = RootCertStore::empty();
    match rootcert {
        Some(path) if path != Path::new("system") => {
            let err = |reason: String| DbError::RootCert {
                path: path.to_path_buf(),
                reason,
            };
            let pem = std::fs::read(path).map_err(|e| err(e.to_string()))?;
            let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice())
                .collect::<Result<_, _>>()
                .map_err(|e| err(e.to_string()))?;
            if certs.is_empty() {
                return Err(err("no PEM certificate found".into()));
            }
            for c in certs {
                store.add(c).map_err(|e| err(e.to_string()))?;
            }
        }
        _ => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(store)
}

#[derive(Debug)]
struct NoVerify(rustls::crypto::WebPkiSupportedAlgorithms);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// verify-ca: the chain must lead to a trusted root; the host name is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Escapes a value for the startup packet's `options` (libpq's `PGOPTIONS`): the server splits
/// it on whitespace, and a backslash makes the next character literal.
fn escape_startup_option(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if c == '\\' || c.is_ascii_whitespace() {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Who holds the deploy lock, as seen from `pg_stat_activity`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct LockHolder {
    pub pid: i32,
    pub application_name: String,
    pub client_addr: Option<String>,
    pub since: Option<chrono::DateTime<chrono::Utc>>,
}

impl LockHolder {
    /// True when the holder's `application_name` names a pgkeel process on this machine that
    /// is no longer running (see [`application_name`]).
    pub fn is_orphaned(&self) -> bool {
        let mut parts = self.application_name.split(' ');
        let (Some(tool), Some(host), Some(pid)) = (parts.next(), parts.next(), parts.next()) else {
            return false;
        };
        let ours = gethostname::gethostname().to_string_lossy().into_owned();
        tool.starts_with("pgkeel/")
            && host == ours
            && pid.parse::<u32>().is_ok_and(|p| {
                p != std::process::id() && !Path::new(&format!("/proc/{p}")).exists()
            })
    }
}

impl fmt::Display for LockHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {}", self.pid)?;
        if !self.application_name.is_empty() {
            write!(f, ", {}", self.application_name)?;
        }
        if let Some(a) = &self.client_addr {
            write!(f, ", from {a}")?;
        }
        if let Some(s) = self.since {
            write!(f, ", since {}", s.format("%Y-%m-%d %H:%M:%S UTC"))?;
        }
        Ok(())
    }
}

/// A connection prepared for migrating that holds the deploy lock ([`DeployLock::take`]). A
/// caller that runs many migrations and rollbacks in a row on one connection (the test suite)
/// takes the lock once and hands this to [`crate::migrate::Migrator::in_locked_session`] and
/// [`crate::rollback::RollbackOptions::locked`], which then neither prepare the session nor take
/// and release the lock again: four statements fewer each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockedSession {
    /// The backend pid of the session.
    pub pid: i32,
}

/// The deploy lock: a session-level advisory lock held by the migrating connection itself, taken
/// with `pg_try_advisory_lock` in a polling loop.
///
/// Why this shape: a session lock is held outside any transaction, so `CREATE INDEX
/// CONCURRENTLY` (which waits for every older transaction) never waits on it; waiters poll with
/// short statements instead of blocking inside one, so they never hold a transaction open
/// either; and the server releases a session lock when the session dies (`kill -9`, lost
/// network with keepalives), so it can never stay stuck.
#[derive(Debug)]
pub struct DeployLock {
    key: i64,
}

/// The `pg_locks l` row of the deploy lock whose key is the SQL expression `key` (a parameter
/// or a literal), held in this database: one predicate for every query that looks for it.
fn lock_row(key: &str) -> String {
    format!(
        "l.locktype = 'advisory' AND l.granted
         AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
         AND l.classid::bigint = ({key} >> 32) & 4294967295
         AND l.objid::bigint = {key} & 4294967295 AND l.objsubid = 1"
    )
}

/// Tries the deploy lock (`$1`), unless the backend already holds it: session advisory locks
/// are re-entrant, so a backend that another client left holding the lock (a server connection
/// shared through a transaction-pooling proxy) would grant it again and two deploys would run
/// at once. NULL then, instead of a second grant. The subquery runs before the lock is tried.
fn try_lock_sql() -> String {
    format!(
        "SELECT CASE WHEN s.held THEN NULL ELSE pg_try_advisory_lock($1) END, pg_backend_pid()
           FROM (SELECT EXISTS (SELECT 1 FROM pg_locks l
                                 WHERE {} AND l.pid = pg_backend_pid()) AS held
                 OFFSET 0) s",
        lock_row("$1")
    )
}

/// The SQLSTATE [`DeployLock::held_check_plpgsql`] raises.
pub const LOCK_NOT_HELD: &str = "PGS03";

impl DeployLock {
    /// A check for the start of every transaction that changes the schema or the ledger
    /// under the lock: it fails with [`LOCK_NOT_HELD`] unless the backend running it holds the
    /// deploy lock. The checks in [`DeployLock::take`] can pass by chance behind a
    /// transaction-pooling proxy (its few statements may all land on one server connection);
    /// the later transactions of a deploy then land elsewhere, and this refuses them there.
    /// A PL/pgSQL statement, for the `DO` block that opens such a transaction (one block with
    /// the transaction's other guards: one statement to run instead of three).
    pub fn held_check_plpgsql(&self) -> String {
        format!(
            "IF NOT EXISTS (SELECT 1 FROM pg_locks l \
             WHERE {} AND l.pid = pg_backend_pid()) \
             THEN RAISE EXCEPTION 'pgkeel: this server connection does not hold the deploy lock' \
             USING ERRCODE = '{LOCK_NOT_HELD}'; END IF;",
            lock_row(&format!("'{}'::bigint", self.key))
        )
    }

    /// The lock key for a ledger: one lock per ledger table, so tenants in separate schemas
    /// don't serialise on each other.
    pub fn for_ledger(schema: &str, table: &str) -> Self {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(format!("pgkeel deploy lock {schema}.{table}").as_bytes());
        let mut b = [0u8; 8];
        b.copy_from_slice(&digest[..8]);
        DeployLock {
            key: i64::from_be_bytes(b),
        }
    }

    pub fn key(&self) -> i64 {
        self.key
    }

    /// The key of the transaction-level lock each migration transaction takes. It must differ
    /// from [`DeployLock::key`]: behind a transaction pooler a transaction can land on another
    /// backend than the session lock, and the two would then wait on each other.
    pub fn tx_key(&self) -> i64 {
        self.key.wrapping_add(1)
    }

    /// Prepares `client` for migrating ([`prepare_migration_session`]), takes the lock on it
    /// ([`DeployLock::acquire`]) and checks that the lock landed on this very session
    /// ([`DeployLock::verify_session`]): what every command that changes the schema or the
    /// ledger does first. Release it with [`DeployLock::release`].
    pub async fn take(
        &self,
        client: &Client,
        wait: Duration,
        on_wait: impl FnMut(Option<&LockHolder>, Duration),
    ) -> Result<LockedSession, DbError> {
        let pid = prepare_migration_session(client).await?;
        let lock_pid = self.acquire(client, wait, on_wait).await?;
        self.verify_session(client, pid, lock_pid).await?;
        Ok(LockedSession { pid })
    }

    /// Takes the lock, waiting up to `wait`. `on_wait` is called about every 5 s with the holder.
    /// Returns the backend pid that took the lock.
    pub async fn acquire(
        &self,
        client: &Client,
        wait: Duration,
        mut on_wait: impl FnMut(Option<&LockHolder>, Duration),
    ) -> Result<i32, DbError> {
        let started = Instant::now();
        let mut delay = Duration::from_millis(50);
        let mut last_report: Option<Instant> = None;
        loop {
            let row = client
                .query_typed_one(&try_lock_sql(), &[(&self.key, Type::INT8)])
                .await
                .map_err(|e| DbError::query("taking the deploy lock", e))?;
            match row.get::<_, Option<bool>>(0) {
                Some(true) => return Ok(row.get(1)),
                Some(false) => {}
                None => return Err(DbError::SharedBackend { pid: row.get(1) }),
            }
            let waited = started.elapsed();
            if waited >= wait {
                let holder = self.holder(client).await?;
                return Err(DbError::LockTimeout {
                    waited,
                    holder: holder
                        .map(|h| h.to_string())
                        .unwrap_or_else(|| "holder unknown".into()),
                });
            }
            if last_report.is_none_or(|t| t.elapsed() >= Duration::from_secs(5)) {
                let holder = self.holder(client).await?;
                if let Some(h) = holder.as_ref().filter(|h| h.is_orphaned()) {
                    // A pgkeel of this machine that no longer exists still "holds" the lock: the
                    // backend outlived it (a pooled server connection). Free it.
                    tracing::warn!("deploy lock held by {h}, whose pgkeel process is gone: terminating that backend");
                    self.free_left_lock(client, h.pid).await;
                    continue;
                }
                on_wait(holder.as_ref(), waited);
                last_report = Some(Instant::now());
            }
            let jitter = Duration::from_millis(rand::random::<u64>() % 50);
            tokio::time::sleep((delay + jitter).min(wait.saturating_sub(waited))).await;
            delay = (delay * 2).min(Duration::from_millis(1000));
        }
    }

    /// Checks that the lock taken on backend `lock_pid` is held by the backend this connection
    /// uses now (`session_pid` was seen earlier on the same connection). Behind a
    /// transaction-pooling proxy they differ: the lock would protect nothing and stay behind on a
    /// pooled server connection, so that backend is terminated (it is ours) and an error says
    /// what to do.
    pub async fn verify_session(
        &self,
        client: &Client,
        session_pid: i32,
        lock_pid: i32,
    ) -> Result<(), DbError> {
        let now: Result<i32, DbError> = client
            .query_typed_one("SELECT pg_backend_pid()", &[])
            .await
            .map(|r| r.get(0))
            .map_err(|e| DbError::query("checking the deploy lock", e));
        let now = match now {
            Ok(now) if session_pid == lock_pid && now == lock_pid => return Ok(()),
            Ok(now) => now,
            Err(e) => {
                self.free_left_lock(client, lock_pid).await;
                return Err(e);
            }
        };
        self.free_left_lock(client, lock_pid).await;
        Err(DbError::TransactionPooler {
            holder: lock_pid,
            ours: if now == lock_pid { session_pid } else { now },
        })
    }

    /// Releases the lock (also released when the session ends).
    ///
    /// When the backend this runs on does not hold it, the connection went through a
    /// transaction-pooling proxy after all (see [`DeployLock::held_check_plpgsql`]) and the lock is
    /// left on the server connection that took it, `session.pid`, where every later deploy
    /// would wait for it: that backend is terminated if it still holds the lock (it is ours),
    /// and [`DbError::LockNotHeld`] says so.
    pub async fn release(&self, client: &Client, session: LockedSession) -> Result<(), DbError> {
        let released: bool = client
            .query_typed_one("SELECT pg_advisory_unlock($1)", &[(&self.key, Type::INT8)])
            .await
            .map_err(|e| DbError::query("releasing the deploy lock", e))?
            .get(0);
        if released {
            return Ok(());
        }
        self.free_left_lock(client, session.pid).await;
        Err(DbError::LockNotHeld {
            context: "releasing the deploy lock".into(),
        })
    }

    /// [`DeployLock::release`] at the end of a command, whose own outcome is what it reports: a
    /// lock found on a pooled connection (and freed) is a warning, any other failure a debug
    /// line (the lock goes with the session anyway).
    pub async fn release_logged(&self, client: &Client, session: LockedSession) {
        match self.release(client, session).await {
            Err(e @ DbError::LockNotHeld { .. }) => tracing::warn!("{e}"),
            Err(e) => tracing::debug!("releasing the deploy lock: {e}"),
            Ok(()) => {}
        }
    }

    /// Frees the deploy lock left on server backend `pid` by a session that went through a
    /// transaction-pooling proxy (or whose pgkeel is gone): unlocks it when this statement
    /// landed on that backend, else terminates the backend, but only while it is idle, that is
    /// back in the proxy's pool and running nobody's transaction (terminating it
    /// mid-transaction would fail another client's work). Tries for about two
    /// seconds; statements without a prepared step, since behind the proxy each may land on
    /// another backend. Gives up quietly: the next deploy finds the lock orphaned again.
    async fn free_left_lock(&self, client: &Client, pid: i32) {
        for _ in 0..40 {
            let rows = client
                .query_typed(
                    &format!(
                        "SELECT CASE WHEN a.pid = pg_backend_pid() THEN pg_advisory_unlock($1)
                                     WHEN a.state = 'idle' THEN pg_terminate_backend(a.pid)
                                     ELSE false END
                           FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                          WHERE {} AND l.pid = $2",
                        lock_row("$1")
                    ),
                    &[(&self.key, Type::INT8), (&pid, Type::INT4)],
                )
                .await;
            match rows {
                // Terminated, or it no longer holds the lock.
                Ok(rows) if rows.first().is_none_or(|r| r.get::<_, bool>(0)) => return,
                Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                Err(e) => {
                    tracing::debug!("freeing the deploy lock left on backend {pid}: {e}");
                    return;
                }
            }
        }
        tracing::warn!("the deploy lock is still held by backend {pid}, which stayed busy");
    }

    /// The session that holds the lock now, if any.
    pub async fn holder(&self, client: &Client) -> Result<Option<LockHolder>, DbError> {
        // One round trip, nothing prepared: a waiter behind a pooler still sees the holder.
        let rows = client
            .query_typed(
                &format!(
                    "SELECT a.pid, coalesce(a.application_name, ''), host(a.client_addr),
                            a.backend_start
                       FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                      WHERE {}
                      LIMIT 1",
                    lock_row("$1")
                ),
                &[(&self.key, Type::INT8)],
            )
            .await
            .map_err(|e| DbError::query("looking up the deploy lock holder", e))?;
        Ok(rows.first().map(|r| LockHolder {
            pid: r.get(0),
            application_name: r.get(1),
            client_addr: r.get(2),
            since: r.get(3),
        }))
    }
}

impl crate::outcome::Classify for DbError {
    fn kind(&self) -> crate::outcome::FailureKind {
        use crate::outcome::FailureKind as K;
        match self {
            DbError::LockTimeout { .. } => K::LockTimeout,
            DbError::NotConfigured
            | DbError::InvalidUrl { .. }
            | DbError::RootCert { .. }
            | DbError::ConnFile { .. }
            | DbError::UnknownService { .. }
            | DbError::LedgerIsDrizzles { .. } => K::Usage,
            DbError::TransactionPooler { .. }
            | DbError::SharedBackend { .. }
            | DbError::PoolerLostSession { .. }
            | DbError::LockNotHeld { .. }
            | DbError::ConnectTimeout { .. }
            | DbError::Connect { .. }
            | DbError::ConnectionLost { .. } => K::Connection,
            DbError::Query { .. } => K::Migration,
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod privilege_hint_tests {
    use super::*;

    fn denied(message: &str) -> String {
        privilege_hint(&PgError {
            severity: "ERROR".into(),
            code: "42501".into(),
            message: message.into(),
            detail: None,
            hint: None,
            position: None,
            context: None,
        })
        .unwrap()
    }

    #[test]
    fn privilege_hints_name_the_object_and_privilege() {
        assert!(denied("permission denied for schema app").contains("ON SCHEMA app"));
        let seq = denied("permission denied for sequence users_id_seq");
        assert!(
            seq.contains("ON SEQUENCE users_id_seq") && !seq.contains("CREATE ON SCHEMA"),
            "{seq}"
        );
        assert!(denied("permission denied for table orders").contains("ON orders"));
        assert!(denied("permission denied to create database").contains("CREATEDB"));
        assert!(denied("permission denied for database app").contains("ON DATABASE app"));
        assert!(denied("must be owner of table t").contains("owner of table t"));
        assert!(denied("permission denied for function f").contains("EXECUTE ON FUNCTION f"));
        assert!(!denied("something else").contains("SCHEMA"));
    }
}
