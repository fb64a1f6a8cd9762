//! Test support shared by every integration test (library and CLI): a fresh database per test
//! on the real server, dropped when the test passes and kept when it fails.
#![allow(dead_code)]

use std::time::Duration;

use pgkeel::config::Settings;
use pgkeel::db::{ScratchDatabase, Target};

/// The server tests run against: `PGKEEL_TEST_URL`, default the local one.
pub fn admin_url() -> String {
    std::env::var("PGKEEL_TEST_URL")
        .unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/postgres".into())
}

pub fn settings_for(url: &str) -> Settings {
    let mut s = Settings::defaults();
    s.database_url = Some(url.to_string());
    s.connect_timeout = Duration::from_secs(10);
    s
}

/// A database of its own for one test.
pub struct TestDb {
    db: Option<ScratchDatabase>,
    pub url: String,
}

impl TestDb {
    pub async fn new(test: &str) -> TestDb {
        let admin = Target::from_settings(&settings_for(&admin_url())).expect("test URL parses");
        let db = match ScratchDatabase::create(&admin, &format!("pgkeel_t_{test}")).await {
            Ok(db) => db,
            Err(e) => panic!(
                "cannot create a test database on {}: {e}\n\
                 Tests need a real PostgreSQL: start it with `pg_ctlcluster 15 main start` \
                 (or `scripts/setup.sh`), or point PGKEEL_TEST_URL at a server where this role may CREATE DATABASE.",
                admin
            ),
        };
        let base = admin_url();
        let url = match base.rfind('/') {
            Some(i) => format!("{}/{}", &base[..i], db.name()),
            None => panic!("PGKEEL_TEST_URL must be a URL ending in /dbname"),
        };
        TestDb { db: Some(db), url }
    }

    pub fn name(&self) -> &str {
        self.db.as_ref().map(|d| d.name()).unwrap_or("")
    }

    /// Leaves the database in place (for inspection after a failure the test reports without
    /// panicking at once) and returns its name.
    pub fn keep(mut self) -> String {
        self.db.take().map(|d| d.keep()).unwrap_or_default()
    }

    pub fn settings(&self) -> Settings {
        settings_for(&self.url)
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        Target::from_settings(&self.settings())
            .unwrap()
            .connect()
            .await
            .expect("connect to the test database")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(db) = self.db.take() else { return };
        if std::thread::panicking() {
            eprintln!("test failed: keeping database {} for inspection", db.keep());
            return;
        }
        // Drop runs outside async context guarantees: use a thread with its own runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                if let Err(e) = db.drop_now().await {
                    eprintln!("could not drop test database: {e}");
                }
            });
        })
        .join();
    }
}

/// A migrations folder (native layout) holding the given files.
pub fn native(files: &[(&str, &str)]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for (name, sql) in files {
        std::fs::write(tmp.path().join(name), sql).unwrap();
    }
    tmp
}

/// `(id, status)` of every ledger row, by id.
pub async fn ledger_statuses(client: &tokio_postgres::Client) -> Vec<(String, String)> {
    client
        .query(
            "SELECT id, status FROM __drizzle_migrations ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// Copies the folder `from` (and everything below it) to `to`.
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// Runs a real tool (drizzle-kit, dbmate, sqlx, ...); panics with its output when it fails.
/// Returns its stdout and stderr.
pub fn run_tool(cmd: &mut std::process::Command) -> String {
    let out = cmd.output().expect("running the tool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{text}",
        out.status
    );
    text
}
