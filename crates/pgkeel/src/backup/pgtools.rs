//! The PostgreSQL client programs pgkeel drives: `pg_dump` for the schema (custom format, at
//! the exported snapshot) and `pg_restore` to replay it. This module owns finding them, checking
//! their version against the server's, and passing the connection through the environment
//! (`PGHOST`, `PGPASSWORD`, …) so a password never appears on a command line.

use std::path::Path;
use std::process::Stdio;

use tokio_postgres::config::Host;

use super::BackupError;
use crate::db::Target;

/// `pg_dump` or `pg_restore`, from `PGKEEL_PG_BIN` when set, else from PATH.
pub fn program(tool: &str) -> std::path::PathBuf {
    match std::env::var_os("PGKEEL_PG_BIN") {
        Some(dir) => Path::new(&dir).join(tool),
        None => tool.into(),
    }
}

/// The tool's version, e.g. `15.20`, and its major number.
pub async fn version(tool: &str) -> Result<(String, u32), BackupError> {
    let out = tokio::process::Command::new(program(tool))
        .arg("--version")
        .output()
        .await
        .map_err(|e| BackupError::ToolMissing {
            tool: tool.into(),
            reason: e.to_string(),
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_version(&text).ok_or_else(|| BackupError::ToolMissing {
        tool: tool.into(),
        reason: format!("unexpected --version output `{}`", text.trim()),
    })
}

fn parse_version(text: &str) -> Option<(String, u32)> {
    // "pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)"
    let v = text.split_whitespace().nth(2)?;
    let major = v
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    Some((v.to_string(), major))
}

/// Stops when the local tool is older than the server (it would refuse, or worse, misread).
pub async fn check_version(
    tool: &str,
    server_version: &str,
    server_version_num: i32,
) -> Result<(), BackupError> {
    let (local, local_major) = version(tool).await?;
    let server_major = (server_version_num / 10000) as u32;
    if local_major < server_major {
        return Err(BackupError::ToolTooOld {
            tool: tool.into(),
            local,
            server: server_version.to_string(),
            server_major,
        });
    }
    Ok(())
}

/// libpq environment variables for `target`. The password travels here, never in argv.
pub fn connection_env(target: &Target) -> Vec<(&'static str, String)> {
    let c = &target.config;
    let mut env = Vec::new();
    if let Some(h) = c.get_hosts().first() {
        env.push((
            "PGHOST",
            match h {
                Host::Tcp(s) => s.clone(),
                #[cfg(unix)]
                Host::Unix(p) => p.display().to_string(),
            },
        ));
    }
    if let Some(p) = c.get_ports().first() {
        env.push(("PGPORT", p.to_string()));
    }
    if let Some(u) = c.get_user() {
        env.push(("PGUSER", u.to_string()));
    }
    if let Some(pw) = c.get_password() {
        env.push(("PGPASSWORD", String::from_utf8_lossy(pw).into_owned()));
    }
    env.push(("PGDATABASE", target.dbname().to_string()));
    env.push(("PGSSLMODE", target.sslmode.to_string()));
    if let Some(root) = &target.sslrootcert {
        env.push(("PGSSLROOTCERT", root.display().to_string()));
    }
    env.push(("PGAPPNAME", "pgkeel backup".into()));
    env.push(("PGCONNECT_TIMEOUT", "30".into()));
    env
}

/// Starts `pg_dump --format=custom --schema-only` at `snapshot`, writing to stdout.
pub fn spawn_schema_dump(
    target: &Target,
    snapshot: &str,
) -> Result<tokio::process::Child, BackupError> {
    let mut cmd = tokio::process::Command::new(program("pg_dump"));
    cmd.args([
        "--format=custom",
        "--compress=0",
        "--schema-only",
        "--no-sync",
    ])
    .arg(format!("--snapshot={snapshot}"))
    .envs(connection_env(target))
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    cmd.spawn().map_err(|e| BackupError::ToolMissing {
        tool: "pg_dump".into(),
        reason: e.to_string(),
    })
}

/// What to leave out when replaying the schema (managed-host defaults: all true).
#[derive(Debug, Clone, Copy)]
pub struct SchemaFilter {
    pub no_owner: bool,
    pub no_acl: bool,
    pub skip_event_triggers: bool,
}

impl Default for SchemaFilter {
    fn default() -> Self {
        SchemaFilter {
            no_owner: true,
            no_acl: true,
            skip_event_triggers: true,
        }
    }
}

/// Runs `pg_restore` against `target` for one `section` of `archive`.
pub async fn restore_section(
    target: &Target,
    archive: &Path,
    list: Option<&Path>,
    section: &str,
    jobs: usize,
    filter: SchemaFilter,
) -> Result<(), BackupError> {
    let mut cmd = tokio::process::Command::new(program("pg_restore"));
    cmd.arg(format!("--section={section}"))
        .arg("--exit-on-error")
        .arg(format!("--dbname={}", target.dbname()));
    if jobs > 1 {
        cmd.arg(format!("--jobs={jobs}"));
    }
    if filter.no_owner {
        cmd.arg("--no-owner");
    }
    if filter.no_acl {
        cmd.arg("--no-acl");
    }
    if let Some(l) = list {
        cmd.arg(format!("--use-list={}", l.display()));
    }
    cmd.arg(archive)
        .envs(connection_env(target))
        .stdin(Stdio::null())
        .kill_on_drop(true);
    run(cmd, "pg_restore").await.map(|_| ())
}

/// `pg_restore --list` of `archive`, without the entries `filter` leaves out.
pub async fn restore_list(archive: &Path, filter: SchemaFilter) -> Result<String, BackupError> {
    let mut cmd = tokio::process::Command::new(program("pg_restore"));
    cmd.arg("--list").arg(archive).stdin(Stdio::null());
    let text = run(cmd, "pg_restore").await?;
    Ok(text
        .lines()
        .filter(|l| !(filter.skip_event_triggers && l.contains(" EVENT TRIGGER ")))
        .map(|l| format!("{l}\n"))
        .collect())
}

async fn run(mut cmd: tokio::process::Command, tool: &str) -> Result<String, BackupError> {
    let out = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await
        .map_err(|e| BackupError::ToolMissing {
            tool: tool.into(),
            reason: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(BackupError::ToolFailed {
            tool: tool.into(),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse() {
        assert_eq!(
            parse_version("pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)\n"),
            Some(("15.20".into(), 15))
        );
        assert_eq!(
            parse_version("pg_dump (PostgreSQL) 17beta1"),
            Some(("17beta1".into(), 17))
        );
    }
}
