//! A private, throw-away PostgreSQL server.
//!
//! This module owns finding the server binaries, `initdb` into a fresh temporary directory,
//! `pg_ctl start` on a free loopback port, and stopping that server and deleting every file it
//! wrote. `pgkeel demo` uses it when no database is configured, and it is the scratch server of
//! last resort. It must not touch any other cluster, listen beyond 127.0.0.1, or outlive its
//! [`EmbeddedServer`]: dropping the value shuts the server down (immediate mode) and deletes the
//! directory, synchronously, so a CLI that drops it on Ctrl-C leaves nothing behind.
//!
//! PostgreSQL refuses to run as root; when pgkeel runs as root the server tools run as the
//! `postgres` OS user (`runuser`, else `su`) and the temporary directory is handed to that user.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The database superuser created by `initdb`, and the OS user the tools run as under root.
const SUPERUSER: &str = "postgres";
/// Where distribution packages (Debian, Ubuntu) install one directory per major version.
const VERSIONED_INSTALL_ROOT: &str = "/usr/lib/postgresql";
/// How many lines of the server log a start failure quotes.
const LOG_TAIL_LINES: usize = 20;
/// Fresh ports tried when the chosen one is taken between probing and binding.
const START_ATTEMPTS: usize = 3;
/// Seconds `pg_ctl -w` waits for start and for a fast stop.
const PG_CTL_WAIT_SECS: &str = "60";
/// Seconds `pg_ctl -w` waits for an immediate stop from `Drop`.
const DROP_STOP_WAIT_SECS: &str = "10";
/// How long `Drop` waits for the postmaster to exit after signalling it directly.
const KILL_WAIT: Duration = Duration::from_secs(5);
/// `sun_path` holds 108 bytes including the terminating NUL.
const MAX_SOCKET_PATH: usize = 107;
/// `/` + `pgkeel-pg-XXXXXX` (tempfile's name) + `/.s.PGSQL.65535`.
const SOCKET_PATH_SUFFIX_LEN: usize = 1 + 17 + 15;

/// Why the embedded server could not be started or stopped.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error(
        "PostgreSQL server binaries (initdb, pg_ctl) not found via `pg_config --bindir` or under {}/*/bin: install the server (`apt-get install postgresql`) or set DATABASE_URL to use an existing database",
        .searched.display()
    )]
    BinariesNotFound { searched: PathBuf },
    #[error(
        "pgkeel runs as root, which PostgreSQL refuses, and there is no `{user}` OS user to run the server as: create it (`useradd --system {user}`), run pgkeel as a regular user, or set DATABASE_URL"
    )]
    NoServiceUser { user: &'static str },
    #[error(
        "cannot create a temporary directory for the embedded server in {}: {error}; point TMPDIR to a writable directory",
        .parent.display()
    )]
    TempDir { parent: PathBuf, error: io::Error },
    #[error("cannot find a free TCP port on 127.0.0.1: {error}; check that the loopback interface is up")]
    NoFreePort { error: io::Error },
    #[error("cannot run {}: {error}; check the PostgreSQL installation", .program.display())]
    Spawn { program: PathBuf, error: io::Error },
    #[error("{} failed ({status}): {stderr}; fix the cause above or set DATABASE_URL to use an existing database", .program.display())]
    Command {
        program: PathBuf,
        status: ExitStatus,
        stderr: String,
    },
    #[error(
        "the embedded PostgreSQL server did not start on 127.0.0.1:{port}; last lines of its log:\n{log_tail}\nfix the cause above or set DATABASE_URL to use an existing database"
    )]
    StartFailed { port: u16, log_tail: String },
    #[error("embedded server start was cancelled because the runtime is shutting down; run again")]
    Cancelled,
    #[error(
        "the embedded server in {} did not stop: {stderr}; it is being shut down in immediate mode and its files removed",
        .data_dir.display()
    )]
    StopFailed { data_dir: PathBuf, stderr: String },
    #[error("the embedded server stopped but {} could not be deleted: {error}; remove it by hand", .path.display())]
    Cleanup { path: PathBuf, error: io::Error },
}

/// A PostgreSQL server of its own, listening on 127.0.0.1 only, with trust authentication for
/// the `postgres` superuser. Stop it with [`EmbeddedServer::stop`]; dropping it also stops it.
#[derive(Debug)]
pub struct EmbeddedServer {
    /// Holds the data directory, the server log and the Unix socket; `None` once deleted.
    root: Option<TempDir>,
    data_dir: PathBuf,
    bindir: PathBuf,
    version: String,
    port: u16,
    run_as: RunAs,
    /// `pg_ctl start` was invoked and no stop has succeeded since.
    running: bool,
}

impl EmbeddedServer {
    /// Creates a cluster in a fresh temporary directory and starts it on a free loopback port.
    ///
    /// The work runs on a blocking thread; if this future is dropped midway, the thread finishes
    /// and the half-built server is dropped there, which stops it and deletes its files.
    pub async fn start() -> Result<Self, EmbeddedError> {
        match tokio::task::spawn_blocking(Self::start_blocking).await {
            Ok(result) => result,
            Err(join) => match join.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(_) => Err(EmbeddedError::Cancelled),
            },
        }
    }

    fn start_blocking() -> Result<Self, EmbeddedError> {
        let bindir = find_bindir()?;
        let version = server_version(&bindir)?;
        let run_as = RunAs::detect()?;
        let parent = temp_parent(run_as.is_other_user());
        let root = tempfile::Builder::new()
            .prefix("pgkeel-pg-")
            .tempdir_in(&parent)
            .map_err(|error| EmbeddedError::TempDir { parent, error })?;
        let mut server = EmbeddedServer {
            data_dir: root.path().join("data"),
            root: Some(root),
            bindir,
            version,
            port: 0,
            run_as,
            running: false,
        };
        if server.run_as.is_other_user() {
            let mut chown = Command::new("chown");
            chown
                .arg("-R")
                .arg(format!("{SUPERUSER}:"))
                .arg(server.root_path());
            run(chown, Path::new("chown"))?;
        }
        server.initdb()?;
        let mut attempt = 1;
        loop {
            server.port = free_port()?;
            match server.pg_ctl_start() {
                Ok(()) => {
                    tracing::debug!(port = server.port, data_dir = %server.data_dir.display(), "embedded PostgreSQL started");
                    return Ok(server);
                }
                Err(EmbeddedError::StartFailed { log_tail, .. })
                    if attempt < START_ATTEMPTS && log_tail.contains("Address already in use") =>
                {
                    tracing::debug!(
                        port = server.port,
                        "port taken before the server bound it; trying another"
                    );
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// A connection URL for `dbname` as the `postgres` superuser (no password needed).
    pub fn url(&self, dbname: &str) -> String {
        url_for(self.port, dbname)
    }

    /// The TCP port the server listens on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster's data directory (inside a temporary directory deleted on stop).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The directory of the server's Unix socket (`.s.PGSQL.<port>`), a host for libpq's
    /// `host=/dir` and `PGHOST=/dir`.
    pub fn socket_dir(&self) -> &Path {
        self.data_dir.parent().unwrap_or(&self.data_dir)
    }

    /// The server version, e.g. `15.20`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Stops the server (`pg_ctl stop -m fast`, which disconnects clients) and deletes its
    /// directory. On failure the value is dropped, which still shuts the server down in
    /// immediate mode and deletes the files.
    pub fn stop(mut self) -> Result<(), EmbeddedError> {
        if self.running {
            self.pg_ctl_stop("fast", PG_CTL_WAIT_SECS)?;
            self.running = false;
        }
        match self.root.take() {
            Some(root) => {
                let path = root.path().to_path_buf();
                root.close()
                    .map_err(|error| EmbeddedError::Cleanup { path, error })
            }
            None => Ok(()),
        }
    }

    fn root_path(&self) -> &Path {
        self.data_dir.parent().unwrap_or(&self.data_dir)
    }

    fn log_path(&self) -> PathBuf {
        self.root_path().join("server.log")
    }

    /// Runs a tool from the server's bindir as the right OS user, from the temporary directory.
    fn run_tool(&self, tool: &str, args: &[&OsStr]) -> Result<Output, EmbeddedError> {
        let program = self
            .bindir
            .join(format!("{tool}{}", std::env::consts::EXE_SUFFIX));
        let mut command = self.run_as.command(&program, args);
        command.current_dir(self.root_path());
        run(command, &program)
    }

    fn initdb(&self) -> Result<(), EmbeddedError> {
        let args: [&OsStr; 10] = [
            "-D".as_ref(),
            self.data_dir.as_os_str(),
            "-A".as_ref(),
            "trust".as_ref(),
            "-U".as_ref(),
            SUPERUSER.as_ref(),
            "--no-sync".as_ref(),
            "-E".as_ref(),
            "UTF8".as_ref(),
            "--locale=C".as_ref(),
        ];
        self.run_tool("initdb", &args).map(drop)
    }

    fn pg_ctl_start(&mut self) -> Result<(), EmbeddedError> {
        let log = self.log_path();
        // A previous attempt's lines would only mislead.
        let _ = fs::remove_file(&log);
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            self.port,
            sh_quote(&self.root_path().to_string_lossy()),
        );
        // From here the postmaster may exist even if pg_ctl reports failure; Drop must look.
        self.running = true;
        let args: [&OsStr; 10] = [
            "start".as_ref(),
            "-w".as_ref(),
            "-t".as_ref(),
            PG_CTL_WAIT_SECS.as_ref(),
            "-D".as_ref(),
            self.data_dir.as_os_str(),
            "-l".as_ref(),
            log.as_os_str(),
            "-o".as_ref(),
            options.as_ref(),
        ];
        match self.run_tool("pg_ctl", &args) {
            Ok(_) => Ok(()),
            Err(EmbeddedError::Command { stderr, .. }) => {
                let tail = log_tail(&log, LOG_TAIL_LINES);
                let log_tail = if tail.trim().is_empty() { stderr } else { tail };
                Err(EmbeddedError::StartFailed {
                    port: self.port,
                    log_tail,
                })
            }
            Err(other) => Err(other),
        }
    }

    fn pg_ctl_stop(&self, mode: &str, wait_secs: &str) -> Result<(), EmbeddedError> {
        let args: [&OsStr; 8] = [
            "stop".as_ref(),
            "-w".as_ref(),
            "-t".as_ref(),
            wait_secs.as_ref(),
            "-D".as_ref(),
            self.data_dir.as_os_str(),
            "-m".as_ref(),
            mode.as_ref(),
        ];
        match self.run_tool("pg_ctl", &args) {
            Ok(_) => Ok(()),
            Err(EmbeddedError::Command { stderr, .. }) => Err(EmbeddedError::StopFailed {
                data_dir: self.data_dir.clone(),
                stderr,
            }),
            Err(other) => Err(other),
        }
    }

    fn pid_file(&self) -> PathBuf {
        self.data_dir.join("postmaster.pid")
    }

    /// Last resort when `pg_ctl` cannot stop the server: SIGQUIT (immediate shutdown) to the
    /// postmaster named in its pid file, then wait for the pid file to go.
    fn signal_postmaster(&self) {
        let pid_file = self.pid_file();
        let Some(pid) = fs::read_to_string(&pid_file).ok().and_then(|text| {
            text.lines()
                .next()
                .and_then(|line| line.trim().parse::<u32>().ok())
        }) else {
            return;
        };
        let signalled = Command::new("kill")
            .args(["-QUIT", &pid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !matches!(signalled, Ok(status) if status.success()) {
            tracing::warn!(pid, "could not signal the embedded PostgreSQL server; it exits by itself within a minute once its data directory is gone");
            return;
        }
        let deadline = Instant::now() + KILL_WAIT;
        while pid_file.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for EmbeddedServer {
    fn drop(&mut self) {
        if self.running && self.pid_file().exists() {
            if let Err(error) = self.pg_ctl_stop("immediate", DROP_STOP_WAIT_SECS) {
                tracing::warn!(%error, "pg_ctl could not stop the embedded PostgreSQL server; signalling it");
                self.signal_postmaster();
            }
        }
        self.running = false;
        if let Some(root) = self.root.take() {
            let path = root.path().to_path_buf();
            if let Err(error) = root.close() {
                tracing::warn!(path = %path.display(), %error, "could not delete the embedded server's directory; remove it by hand");
            }
        }
    }
}

/// How the server tools are run: PostgreSQL refuses to run as root.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RunAs {
    CurrentUser,
    Runuser(PathBuf),
    Su(PathBuf),
}

impl RunAs {
    fn detect() -> Result<Self, EmbeddedError> {
        if !effective_uid_is_root() {
            return Ok(RunAs::CurrentUser);
        }
        if !os_user_exists(SUPERUSER) {
            return Err(EmbeddedError::NoServiceUser { user: SUPERUSER });
        }
        Ok(match find_in_path("runuser") {
            Some(runuser) => RunAs::Runuser(runuser),
            None => RunAs::Su(find_in_path("su").unwrap_or_else(|| PathBuf::from("su"))),
        })
    }

    fn is_other_user(&self) -> bool {
        *self != RunAs::CurrentUser
    }

    fn command(&self, program: &Path, args: &[&OsStr]) -> Command {
        let mut command = match self {
            RunAs::CurrentUser => {
                let mut command = Command::new(program);
                command.args(args);
                command
            }
            RunAs::Runuser(runuser) => {
                let mut command = Command::new(runuser);
                command
                    .args(["-u", SUPERUSER, "--"])
                    .arg(program)
                    .args(args);
                command
            }
            RunAs::Su(su) => {
                let line = std::iter::once(program.as_os_str())
                    .chain(args.iter().copied())
                    .map(|word| sh_quote(&word.to_string_lossy()))
                    .collect::<Vec<_>>()
                    .join(" ");
                let mut command = Command::new(su);
                command.args([SUPERUSER, "-s", "/bin/sh", "-c"]).arg(line);
                command
            }
        };
        // Keep the tools out of the terminal's process group, so a Ctrl-C aimed at pgkeel does
        // not kill initdb or pg_ctl halfway; pgkeel's own handler decides what stops.
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        command
    }
}

/// Runs `command` to completion with no stdin, failing on a non-zero exit.
fn run(mut command: Command, program: &Path) -> Result<Output, EmbeddedError> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|error| EmbeddedError::Spawn {
            program: program.to_path_buf(),
            error,
        })?;
    if output.status.success() {
        Ok(output)
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        Err(EmbeddedError::Command {
            program: program.to_path_buf(),
            status: output.status,
            stderr,
        })
    }
}

/// `pg_config --bindir` when it holds the server tools, else the newest versioned install.
fn find_bindir() -> Result<PathBuf, EmbeddedError> {
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()))
        .filter(|dir| has_server_tools(dir));
    let root = Path::new(VERSIONED_INSTALL_ROOT);
    from_pg_config
        .or_else(|| highest_bindir_in(root))
        .ok_or_else(|| EmbeddedError::BinariesNotFound {
            searched: root.to_path_buf(),
        })
}

fn has_server_tools(dir: &Path) -> bool {
    ["initdb", "pg_ctl"].iter().all(|tool| {
        dir.join(format!("{tool}{}", std::env::consts::EXE_SUFFIX))
            .is_file()
    })
}

/// The `<root>/<version>/bin` with the highest version (compared numerically, so 15 > 9.6) that
/// holds the server tools.
fn highest_bindir_in(root: &Path) -> Option<PathBuf> {
    let entries = fs::read_dir(root).ok()?;
    entries
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(|part| part.parse::<u32>().ok())
                .collect::<Option<Vec<u32>>>()?;
            let bindir = entry.path().join("bin");
            has_server_tools(&bindir).then_some((version, bindir))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, bindir)| bindir)
}

/// `postgres --version` (answered before PostgreSQL's root check), reduced to e.g. `15.20`.
fn server_version(bindir: &Path) -> Result<String, EmbeddedError> {
    let program = bindir.join(format!("postgres{}", std::env::consts::EXE_SUFFIX));
    let mut command = Command::new(&program);
    command.arg("--version");
    let output = run(command, &program)?;
    Ok(parse_version(&String::from_utf8_lossy(&output.stdout)))
}

fn parse_version(text: &str) -> String {
    let mut words = text
        .split_whitespace()
        .skip_while(|word| *word != "(PostgreSQL)");
    match words.nth(1) {
        Some(version) => version.to_owned(),
        None => text.trim().to_owned(),
    }
}

/// Whether the effective uid is 0, from `/proc/self/status` (`Uid: real effective saved fs`),
/// else from `id -u`.
fn effective_uid_is_root() -> bool {
    let from_proc = fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(str::to_owned))
        });
    let uid = from_proc.or_else(|| {
        let output = Command::new("id")
            .arg("-u")
            .stdin(Stdio::null())
            .output()
            .ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
    });
    uid.as_deref() == Some("0")
}

fn os_user_exists(user: &str) -> bool {
    match Command::new("id")
        .arg("-u")
        .arg(user)
        .stdin(Stdio::null())
        .output()
    {
        Ok(output) => output.status.success(),
        Err(_) => fs::read_to_string("/etc/passwd")
            .map(|passwd| {
                passwd
                    .lines()
                    .any(|line| line.split(':').next() == Some(user))
            })
            .unwrap_or(false),
    }
}

fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// The directory to create the server's temporary directory in: the system temp dir, unless
/// the socket path would be too long or (when the server runs as another user) that user
/// cannot reach it; then `/tmp`.
fn temp_parent(for_other_user: bool) -> PathBuf {
    let parent = std::env::temp_dir();
    let fits_socket = parent.as_os_str().len() + SOCKET_PATH_SUFFIX_LEN <= MAX_SOCKET_PATH;
    if fits_socket && (!for_other_user || reachable_by_others(&parent)) {
        parent
    } else {
        PathBuf::from("/tmp")
    }
}

#[cfg(unix)]
fn reachable_by_others(dir: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    dir.ancestors()
        .all(|dir| fs::metadata(dir).is_ok_and(|meta| meta.permissions().mode() & 0o001 != 0))
}

#[cfg(not(unix))]
fn reachable_by_others(_dir: &Path) -> bool {
    true
}

/// A port the OS considers free on 127.0.0.1 right now (bound, read, released).
fn free_port() -> Result<u16, EmbeddedError> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|error| EmbeddedError::NoFreePort { error })
}

fn url_for(port: u16, dbname: &str) -> String {
    format!(
        "postgresql://{SUPERUSER}@127.0.0.1:{port}/{}",
        percent_encode(dbname)
    )
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// Quotes one word for `sh`.
fn sh_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

fn log_tail(log: &Path, lines: usize) -> String {
    let text = fs::read(log)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use std::net::TcpStream;
    use std::str::FromStr;

    use tokio_postgres::NoTls;

    use super::*;

    async fn connect(url: &str) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(url, NoTls)
            .await
            .expect("connect to the embedded server");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client
    }

    fn port_is_closed(port: u16) -> bool {
        TcpStream::connect_timeout(&(Ipv4Addr::LOCALHOST, port).into(), Duration::from_secs(1))
            .is_err()
    }

    #[tokio::test]
    async fn start_connect_create_database_then_stop_leaves_nothing() {
        let server = EmbeddedServer::start()
            .await
            .expect("start the embedded server");
        let data_dir = server.data_dir().to_path_buf();
        let root = data_dir
            .parent()
            .expect("data dir has a parent")
            .to_path_buf();
        let port = server.port();
        assert!(data_dir.join("PG_VERSION").is_file());
        assert!(
            server.version().starts_with(|c: char| c.is_ascii_digit()),
            "version {:?}",
            server.version()
        );

        let client = connect(&server.url("postgres")).await;
        let one: i32 = client.query_one("select 1", &[]).await.unwrap().get(0);
        assert_eq!(one, 1);
        client
            .batch_execute("create database example_app")
            .await
            .unwrap();
        let other = connect(&server.url("example_app")).await;
        let name: String = other
            .query_one("select current_database()", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(name, "example_app");
        let listen: String = client
            .query_one("show listen_addresses", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(listen, "127.0.0.1");

        server.stop().expect("stop the embedded server");
        assert!(
            !data_dir.exists(),
            "data dir {} still exists",
            data_dir.display()
        );
        assert!(!root.exists(), "temp dir {} still exists", root.display());
        assert!(
            port_is_closed(port),
            "port {port} still accepts connections"
        );
    }

    #[tokio::test]
    async fn drop_stops_the_server_and_deletes_its_files() {
        let server = EmbeddedServer::start()
            .await
            .expect("start the embedded server");
        let data_dir = server.data_dir().to_path_buf();
        let port = server.port();
        let client = connect(&server.url("postgres")).await;
        client
            .batch_execute("create table t (id int)")
            .await
            .unwrap();

        drop(server);
        assert!(
            !data_dir.exists(),
            "data dir {} still exists",
            data_dir.display()
        );
        assert!(!data_dir.parent().unwrap().exists());
        assert!(
            port_is_closed(port),
            "port {port} still accepts connections"
        );
    }

    #[tokio::test]
    async fn drop_signals_the_postmaster_when_pg_ctl_is_gone() {
        let mut server = EmbeddedServer::start()
            .await
            .expect("start the embedded server");
        let data_dir = server.data_dir().to_path_buf();
        let port = server.port();
        server.bindir = PathBuf::from("/nonexistent/pgkeel-bindir");

        drop(server);
        assert!(!data_dir.parent().unwrap().exists());
        assert!(
            port_is_closed(port),
            "port {port} still accepts connections"
        );
    }

    #[tokio::test]
    async fn two_servers_at_once_get_different_ports() {
        let (a, b) = tokio::join!(EmbeddedServer::start(), EmbeddedServer::start());
        let (a, b) = (a.expect("start server a"), b.expect("start server b"));
        assert_ne!(a.port(), b.port());
        assert_ne!(a.data_dir(), b.data_dir());
        for server in [&a, &b] {
            let client = connect(&server.url("postgres")).await;
            let port: String = client.query_one("show port", &[]).await.unwrap().get(0);
            assert_eq!(port, server.port().to_string());
        }
        a.stop().unwrap();
        b.stop().unwrap();
    }

    #[test]
    fn url_parses_with_tokio_postgres_and_keeps_odd_database_names() {
        let config = tokio_postgres::Config::from_str(&url_for(54321, "my app/db?x")).unwrap();
        assert_eq!(config.get_dbname(), Some("my app/db?x"));
        assert_eq!(config.get_user(), Some("postgres"));
        assert_eq!(config.get_ports(), [54321]);
        assert_eq!(
            url_for(5, "postgres"),
            "postgresql://postgres@127.0.0.1:5/postgres"
        );
    }

    #[test]
    fn finds_the_installed_server_binaries() {
        let bindir =
            find_bindir().expect("PostgreSQL server binaries are installed on this machine");
        assert!(has_server_tools(&bindir), "{}", bindir.display());
    }

    #[test]
    fn highest_version_directory_wins_numerically() {
        let root = tempfile::tempdir().unwrap();
        for (version, complete) in [
            ("9.6", true),
            ("15", true),
            ("16", false),
            ("notaversion", true),
        ] {
            let bin = root.path().join(version).join("bin");
            fs::create_dir_all(&bin).unwrap();
            fs::write(bin.join("initdb"), "").unwrap();
            if complete {
                fs::write(bin.join("pg_ctl"), "").unwrap();
            }
        }
        assert_eq!(
            highest_bindir_in(root.path()),
            Some(root.path().join("15").join("bin"))
        );
        assert_eq!(highest_bindir_in(&root.path().join("missing")), None);
    }

    #[test]
    fn parses_the_version_line() {
        assert_eq!(
            parse_version("postgres (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)\n"),
            "15.20"
        );
        assert_eq!(parse_version("postgres (PostgreSQL) 17.2\n"), "17.2");
        assert_eq!(parse_version("something else"), "something else");
    }

    #[test]
    fn quotes_words_for_sh() {
        assert_eq!(sh_quote("/tmp/a b"), "'/tmp/a b'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn su_fallback_runs_one_quoted_line_as_postgres() {
        let command = RunAs::Su(PathBuf::from("/bin/su")).command(
            Path::new("/pg/bin/pg_ctl"),
            &["-o".as_ref(), "-p 1".as_ref()],
        );
        let args: Vec<_> = command
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "postgres",
                "-s",
                "/bin/sh",
                "-c",
                "'/pg/bin/pg_ctl' '-o' '-p 1'"
            ]
        );
    }
}
