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

/// What the receiver got: (path, body), in arrival order.
pub type Received = std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>;

/// A webhook receiver for alert tests: a plain HTTP/1.1 server on a free port. Answers the n-th request with `statuses[n]` (200
/// once they run out).
pub async fn receiver(statuses: Vec<u16>) -> (u16, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let got: Received = Default::default();
    let seen = got.clone();
    tokio::spawn(async move {
        let mut n = 0usize;
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let (head, body) = loop {
                let k = tokio::io::AsyncReadExt::read(&mut s, &mut chunk)
                    .await
                    .unwrap_or(0);
                if k == 0 {
                    break (String::new(), String::new());
                }
                buf.extend_from_slice(&chunk[..k]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if body.len() >= len {
                        break (head.to_string(), body[..len].to_string());
                    }
                }
            };
            let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
            seen.lock().unwrap().push((path, body));
            let status = statuses.get(n).copied().unwrap_or(200);
            n += 1;
            let _ = tokio::io::AsyncWriteExt::write_all(
                &mut s,
                format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await;
        }
    });
    (port, got)
}
