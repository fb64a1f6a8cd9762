//! Databases of their own for scratch work: `CREATE DATABASE` on a target's server
//! ([`create_database`]), a [`ScratchDatabase`] dropped after use (kept for inspection when asked),
//! and closing the process's connections politely at exit.

use super::*;

/// `CREATE DATABASE name` on `admin`'s server; returns the target of the new database.
pub async fn create_database(admin: &Target, name: &str) -> Result<Target, DbError> {
    let client = admin.connect().await?;
    client
        .batch_execute(&format!("CREATE DATABASE {}", quote_ident(name)))
        .await
        .map_err(|e| DbError::query(format!("creating database {name}"), e))?;
    Ok(admin.with_dbname(name))
}

/// The tasks driving open connections, so a process can let them say goodbye before it exits.
pub(super) static CONNECTION_TASKS: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>> =
    std::sync::Mutex::new(Vec::new());

pub(super) fn track_connection(task: tokio::task::JoinHandle<()>) {
    if let Ok(mut tasks) = CONNECTION_TASKS.lock() {
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
    }
}

/// Waits, at most `timeout`, for the connections whose clients were dropped to finish closing:
/// each sends PostgreSQL's Terminate message and, over TLS, a close_notify. A process that exits
/// without this leaves "could not receive data from client: Connection reset by peer" in the
/// server's log for every connection. Connections still in use are left alone after `timeout`.
pub async fn close_connections(timeout: Duration) {
    let tasks = match CONNECTION_TASKS.lock() {
        Ok(mut t) => std::mem::take(&mut *t),
        Err(_) => return,
    };
    let _ = tokio::time::timeout(timeout, futures_util::future::join_all(tasks)).await;
}

/// A throw-away database on the target's server: `CREATE DATABASE <prefix>_<random>`, dropped
/// with [`ScratchDatabase::drop_now`] (or left for inspection with [`ScratchDatabase::keep`]).
#[derive(Debug)]
pub struct ScratchDatabase {
    admin: Target,
    target: Target,
    name: String,
}

impl ScratchDatabase {
    /// Creates a fresh, empty database next to `admin`'s.
    pub async fn create(admin: &Target, prefix: &str) -> Result<Self, DbError> {
        let suffix: String = (0..10)
            .map(|_| char::from(b'a' + (rand::random::<u8>() % 26)))
            .collect();
        let mut name = format!("{prefix}_{suffix}").to_lowercase();
        name.retain(|c| c.is_ascii_alphanumeric() || c == '_');
        name.truncate(63);
        Ok(ScratchDatabase {
            admin: admin.clone(),
            target: create_database(admin, &name).await?,
            name,
        })
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Drops the database, disconnecting anyone still in it.
    pub async fn drop_now(self) -> Result<(), DbError> {
        let client = self.admin.connect().await?;
        client
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                quote_ident(&self.name)
            ))
            .await
            .map_err(|e| DbError::query(format!("dropping scratch database {}", self.name), e))
    }

    /// Leaves the database in place and returns its name.
    pub fn keep(self) -> String {
        self.name
    }
}
