//! Throw-away databases: the one helper every feature that needs a scratch database uses
//! (`schema diff --from ./migrations`, the migration test suite, state-based rollback).
//!
//! [`Scratch::create`] tries, in order: a server given with `--scratch-url` (pgkeel creates its
//! own `pgkeel_scratch_<unix seconds>_<random>` database there); `CREATE DATABASE
//! pgkeel_scratch_<unix seconds>_<random>` on
//! the target's server when the role may; otherwise the private throw-away server of
//! [`crate::embedded`]. The database is dropped by [`Scratch::drop_now`] and, should the value be
//! dropped instead (an error, a panic, Ctrl-C cancelling the future), by `Drop`; one that a
//! killed process left is dropped by a later run ([`drop_stale`]). It must never drop or write
//! to a database it did not create.

use crate::config::Settings;
use crate::db::{DbError, ScratchDatabase, Target};
use crate::embedded::{EmbeddedError, EmbeddedServer};

/// Where a scratch database may come from.
#[derive(Debug, Clone, Default)]
pub struct ScratchOptions {
    /// `--scratch-url`: a server (any database URL on it) where pgkeel may CREATE DATABASE.
    pub scratch_url: Option<String>,
    /// The target server, tried when no scratch URL is given.
    pub target: Option<Target>,
    /// Do not fall back to the embedded server (for tests that must use the real one).
    pub no_embedded: bool,
}

/// Why no scratch database could be had.
#[derive(Debug, thiserror::Error)]
pub enum ScratchError {
    #[error("cannot create a scratch database on --scratch-url {url}: {source}; give a URL whose role has CREATEDB")]
    ScratchUrl {
        url: String,
        #[source]
        source: DbError,
    },
    #[error("no scratch database: the target server refused ({target_error}) and the embedded server could not start ({source}); pass --scratch-url with a role that may CREATE DATABASE")]
    NoServer {
        target_error: String,
        #[source]
        source: EmbeddedError,
    },
    #[error(
        "no scratch database: {reason}; pass --scratch-url with a role that may CREATE DATABASE"
    )]
    Unavailable { reason: String },
}

#[derive(Debug)]
enum Holder {
    Database(Box<ScratchDatabase>),
    Embedded(EmbeddedServer),
}

/// A throw-away database, dropped afterwards.
#[derive(Debug)]
pub struct Scratch {
    holder: Option<Holder>,
    target: Target,
}

const PREFIX: &str = "pgkeel_scratch";

/// A scratch database older than this with no session connected was left by a pgkeel that was
/// killed (`kill -9`, an OOM kill, a lost machine): the next scratch on that server drops it.
pub const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(3600);

/// The prefix of a new scratch database's name: `pgkeel_scratch_<creation, unix seconds>`, so
/// that a later run can tell how old a left-over one is.
fn prefix_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!("{PREFIX}_{secs}")
}

/// When a scratch database's name says it was created (`pgkeel_scratch_<secs>_<random>`);
/// `None` for any other name, which is never touched.
fn created_at(name: &str) -> Option<u64> {
    let rest = name.strip_prefix(PREFIX)?.strip_prefix('_')?;
    let (secs, random) = rest.split_once('_')?;
    let ok = secs.len() == 10
        && secs.bytes().all(|b| b.is_ascii_digit())
        && random.len() == 10
        && random.bytes().all(|b| b.is_ascii_lowercase());
    ok.then(|| secs.parse().ok()).flatten()
}

/// Drops the scratch databases on `admin`'s server that a killed pgkeel left: named as
/// [`prefix_now`] makes them, older than [`STALE_AFTER`], with no session connected. Says so on
/// stderr (a warning) for each; a failure to look or to drop is only logged. Returns their names.
pub async fn drop_stale(admin: &Target) -> Vec<String> {
    let Ok(client) = admin.connect().await else {
        return Vec::new();
    };
    let rows = match client
        .query(
            "SELECT d.datname::text FROM pg_database d
              WHERE d.datname LIKE 'pgkeel\\_scratch\\_%'
                AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname)",
            &[],
        )
        .await
    {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!("cannot look for stale scratch databases: {e}");
            return Vec::new();
        }
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut dropped = Vec::new();
    for name in rows.iter().map(|r| r.get::<_, String>(0)) {
        let Some(at) = created_at(&name) else {
            continue;
        };
        if now.saturating_sub(at) < STALE_AFTER.as_secs() {
            continue;
        }
        let sql = format!(
            "DROP DATABASE IF EXISTS {}",
            crate::ident::quote_ident(&name)
        );
        match client.batch_execute(&sql).await {
            Ok(()) => {
                tracing::warn!(
                    "dropped scratch database {name}, left {} h ago by a pgkeel that did not finish (killed?)",
                    now.saturating_sub(at) / 3600
                );
                dropped.push(name);
            }
            Err(e) => tracing::debug!("cannot drop stale scratch database {name}: {e}"),
        }
    }
    dropped
}

impl Scratch {
    /// Creates an empty scratch database. `settings` supplies connection timeouts and TLS.
    pub async fn create(
        settings: &Settings,
        opts: &ScratchOptions,
    ) -> Result<Scratch, ScratchError> {
        if let Some(url) = &opts.scratch_url {
            let mut s = settings.clone();
            s.database_url = Some(url.clone());
            let shown = crate::config::redact_url(url);
            let admin = Target::from_settings(&s).map_err(|source| ScratchError::ScratchUrl {
                url: shown.clone(),
                source,
            })?;
            drop_stale(&admin).await;
            let db = ScratchDatabase::create(&admin, &prefix_now())
                .await
                .map_err(|source| ScratchError::ScratchUrl { url: shown, source })?;
            return Ok(Scratch::from_database(db));
        }
        let mut target_error = "no target database configured".to_string();
        if let Some(admin) = &opts.target {
            drop_stale(admin).await;
            match ScratchDatabase::create(admin, &prefix_now()).await {
                Ok(db) => return Ok(Scratch::from_database(db)),
                Err(e) => {
                    tracing::info!("cannot create a scratch database on {admin}: {e}; trying the embedded server");
                    target_error = e.to_string();
                }
            }
        }
        if opts.no_embedded {
            return Err(ScratchError::Unavailable {
                reason: target_error,
            });
        }
        let server = EmbeddedServer::start()
            .await
            .map_err(|source| ScratchError::NoServer {
                target_error: target_error.clone(),
                source,
            })?;
        let mut s = settings.clone();
        s.database_url = Some(server.url("postgres"));
        let target = Target::from_settings(&s).map_err(|e| ScratchError::Unavailable {
            reason: e.to_string(),
        })?;
        Ok(Scratch {
            holder: Some(Holder::Embedded(server)),
            target,
        })
    }

    fn from_database(db: ScratchDatabase) -> Scratch {
        Scratch {
            target: db.target().clone(),
            holder: Some(Holder::Database(Box::new(db))),
        }
    }

    /// Where the scratch database is.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// True when it lives on the private embedded server.
    pub fn is_embedded(&self) -> bool {
        matches!(self.holder, Some(Holder::Embedded(_)))
    }

    /// Drops the database (or stops the embedded server) now.
    pub async fn drop_now(mut self) -> Result<(), DbError> {
        match self.holder.take() {
            Some(Holder::Database(db)) => (*db).drop_now().await,
            Some(Holder::Embedded(server)) => {
                let _ = tokio::task::spawn_blocking(move || server.stop()).await;
                Ok(())
            }
            None => Ok(()),
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // The embedded server stops itself when dropped; a database needs a connection, made
        // on a thread of its own because Drop cannot await.
        if let Some(Holder::Database(db)) = self.holder.take() {
            let _ = std::thread::spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async move {
                    if let Err(e) = db.drop_now().await {
                        tracing::warn!("could not drop the scratch database: {e}");
                    }
                });
            })
            .join();
        }
    }
}

impl crate::outcome::Classify for ScratchError {
    fn kind(&self) -> crate::outcome::FailureKind {
        match self {
            ScratchError::ScratchUrl { source, .. } => match crate::outcome::Classify::kind(source)
            {
                crate::outcome::FailureKind::Migration => crate::outcome::FailureKind::Usage,
                k => k,
            },
            ScratchError::NoServer { .. } | ScratchError::Unavailable { .. } => {
                crate::outcome::FailureKind::Connection
            }
        }
    }
}

#[cfg(test)]
mod stale_tests {
    use super::*;

    #[test]
    fn only_names_made_by_prefix_now_carry_a_creation_time() {
        assert_eq!(
            created_at("pgkeel_scratch_1764790000_abcdefghij"),
            Some(1764790000)
        );
        assert_eq!(
            created_at("pgkeel_scratch_abcdefghij"),
            None,
            "older pgkeel: left alone"
        );
        assert_eq!(created_at("pgkeel_scratch_1764790000_ABCDEFGHIJ"), None);
        assert_eq!(created_at("pgkeel_scratch_176479000_abcdefghij"), None);
        assert_eq!(created_at("app_1764790000_abcdefghij"), None);
        let p = prefix_now();
        assert!(p.starts_with("pgkeel_scratch_") && p.len() == "pgkeel_scratch_".len() + 10);
    }
}
