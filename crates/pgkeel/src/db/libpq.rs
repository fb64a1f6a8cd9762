//! libpq's conventions for what a connection URL leaves out, so pgkeel connects wherever `psql`
//! does: the URL's own parameters libpq knows and the driver does not (`sslmode`, `sslrootcert`,
//! `sslcert`, `sslkey`, `service`, `passfile`), URLs with several hosts, the connection service
//! file (`PGSERVICE`, `~/.pg_service.conf`), and the password file (`~/.pgpass`, `PGPASSFILE`)
//! with libpq's rule that a file others can read is ignored.
//!
//! This module reads those files and parses those texts; it never connects and never prints a
//! password (errors name files and line numbers, not their contents).

use std::path::{Path, PathBuf};

use crate::config::SslMode;

use super::DbError;

/// What [`split_url`] takes out of a URL for pgkeel to handle, and the URL the driver gets.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct UrlParams {
    /// The URL without the parameters below (or the key=value conninfo as it was).
    pub cleaned: String,
    pub sslmode: Option<SslMode>,
    pub sslrootcert: Option<PathBuf>,
    pub sslcert: Option<PathBuf>,
    pub sslkey: Option<PathBuf>,
    pub service: Option<String>,
    pub passfile: Option<PathBuf>,
}

/// Splits `raw` (a `postgresql://` URL, possibly with several `host:port` pairs, or a key=value
/// conninfo) into what the driver reads and what pgkeel does. `invalid` builds the error (it
/// knows how to redact `raw`).
pub(crate) fn split_url(
    raw: &str,
    invalid: impl Fn(String) -> DbError,
) -> Result<UrlParams, DbError> {
    let mut out = UrlParams::default();
    if !(raw.starts_with("postgres://") || raw.starts_with("postgresql://")) {
        if raw.contains("://") {
            return Err(invalid(
                "the scheme must be postgresql:// or postgres://".into(),
            ));
        }
        return split_conninfo(raw, out, invalid);
    }
    // Not `url::Url`: a URL with several hosts (`h1:5432,h2:5433`) is no URL to it.
    let (base, query) = match raw.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (raw, None),
    };
    let mut kept = Vec::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_encoding::percent_decode_str(v)
            .decode_utf8()
            .map_err(|_| invalid(format!("parameter `{k}` is not UTF-8")))?
            .into_owned();
        if !take(&mut out, k, &value, &invalid)? {
            kept.push(pair);
        }
    }
    out.cleaned = match kept.is_empty() {
        true => base.to_string(),
        // The kept pairs go back exactly as written (already percent-encoded).
        false => format!("{base}?{}", kept.join("&")),
    };
    Ok(out)
}

/// Takes a parameter pgkeel handles itself; `false` for one the driver reads.
fn take(
    out: &mut UrlParams,
    key: &str,
    value: &str,
    invalid: &impl Fn(String) -> DbError,
) -> Result<bool, DbError> {
    match key {
        "sslmode" => {
            out.sslmode = Some(
                value
                    .parse()
                    .map_err(|_| invalid(format!("unknown sslmode `{value}`")))?,
            )
        }
        "ssl" if value == "true" || value == "1" => {
            out.sslmode = out.sslmode.or(Some(SslMode::Require))
        }
        "sslrootcert" => out.sslrootcert = Some(PathBuf::from(value)),
        "sslcert" => out.sslcert = Some(PathBuf::from(value)),
        "sslkey" => out.sslkey = Some(PathBuf::from(value)),
        "service" => out.service = Some(value.to_string()),
        "passfile" => out.passfile = Some(PathBuf::from(value)),
        _ => return Ok(false),
    }
    Ok(true)
}

/// A key=value conninfo (`host=/tmp dbname=app sslmode=require`): the same parameters taken out.
fn split_conninfo(
    raw: &str,
    mut out: UrlParams,
    invalid: impl Fn(String) -> DbError,
) -> Result<UrlParams, DbError> {
    let mut kept = Vec::new();
    for word in conninfo_words(raw) {
        let (k, v) = word.split_once('=').unwrap_or((word.as_str(), ""));
        let v = unquote(v.trim());
        if !take(&mut out, k.trim(), &v, &invalid)? {
            kept.push(word.clone());
        }
    }
    out.cleaned = kept.join(" ");
    Ok(out)
}

/// The `key=value` words of a conninfo, a quoted value (`'a b'`) kept whole.
fn conninfo_words(raw: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                cur.push(c);
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            '\'' => {
                quoted = !quoted;
                cur.push(c);
            }
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    // `key = value` with spaces around `=`: join them back.
    let mut joined: Vec<String> = Vec::new();
    for w in words {
        match joined.last_mut() {
            Some(last) if last.ends_with('=') || w.starts_with('=') => last.push_str(&w),
            _ => joined.push(w),
        }
    }
    joined
}

fn unquote(v: &str) -> String {
    let inner = v
        .strip_prefix('\'')
        .and_then(|v| v.strip_suffix('\''))
        .unwrap_or(v);
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

/// The service files libpq reads, in order: `PGSERVICEFILE` (or `~/.pg_service.conf`), then the
/// system-wide `PGSYSCONFDIR/pg_service.conf` (Debian's `/etc/postgresql-common`).
pub(crate) fn service_files(explicit: Option<&Path>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    match explicit {
        Some(p) => files.push(p.to_path_buf()),
        None => files.extend(home().map(|h| h.join(".pg_service.conf"))),
    }
    let sysconf = std::env::var_os("PGSYSCONFDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/postgresql-common"));
    files.push(sysconf.join("pg_service.conf"));
    files
}

/// The `key=value` lines of section `[name]` in the first of `files` that has it.
pub(crate) fn service(name: &str, files: &[PathBuf]) -> Result<Vec<(String, String)>, DbError> {
    for path in files {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(DbError::ConnFile {
                    file: "connection service file",
                    path: path.clone(),
                    reason: e.to_string(),
                })
            }
        };
        if let Some(params) = section(&text, name, path)? {
            return Ok(params);
        }
    }
    Err(DbError::UnknownService {
        name: name.to_string(),
        searched: files.to_vec(),
    })
}

fn section(text: &str, name: &str, path: &Path) -> Result<Option<Vec<(String, String)>>, DbError> {
    let mut found: Option<Vec<(String, String)>> = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            if found.is_some() {
                break;
            }
            if s.trim() == name {
                found = Some(Vec::new());
            }
            continue;
        }
        let Some(params) = found.as_mut() else {
            continue;
        };
        let Some((k, v)) = line.split_once('=') else {
            return Err(DbError::ConnFile {
                file: "connection service file",
                path: path.to_path_buf(),
                reason: format!("line {}: expected key=value in [{name}]", n + 1),
            });
        };
        params.push((k.trim().to_string(), v.trim().to_string()));
    }
    Ok(found)
}

/// The password for `host:port:db:user` from the password file at `path`, as libpq finds it:
/// the first matching line (`*` matches anything; `\:` and `\\` escape), host `localhost` also
/// matching the default socket directory. A file that others may read is ignored, with a
/// warning, as libpq does; one that does not exist is no password.
pub(crate) fn pgpass(path: &Path, host: &str, port: u16, db: &str, user: &str) -> Option<String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!("cannot read the password file {}: {e}", path.display());
            }
            return None;
        }
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(
                    "the password file {} is ignored: it has group or world access; it must be \
                     u=rw (0600) or less (chmod 600 {})",
                    path.display(),
                    path.display()
                );
                return None;
            }
        }
    }
    let host = match host {
        h if h.starts_with('/') && DEFAULT_SOCKET_DIRS.contains(&h) => "localhost",
        h => h,
    };
    let port = port.to_string();
    let wanted = [host, port.as_str(), db, user];
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .find_map(|line| {
            let fields = pgpass_fields(line);
            if fields.len() < 5 {
                return None;
            }
            let matches = fields[..4]
                .iter()
                .zip(wanted)
                .all(|(f, w)| f == "*" || f == w);
            matches.then(|| fields[4..].join(":"))
        })
}

/// Socket directories libpq treats as `localhost` in the password file.
const DEFAULT_SOCKET_DIRS: &[&str] = &["/var/run/postgresql", "/run/postgresql", "/tmp"];

fn pgpass_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => fields.last_mut().unwrap().extend(chars.next()),
            ':' => fields.push(String::new()),
            c => fields.last_mut().unwrap().push(c),
        }
    }
    fields
}

/// `~/.pgpass`, or where `PGPASSFILE` / `passfile=` says.
pub(crate) fn passfile(explicit: Option<&Path>) -> Option<PathBuf> {
    explicit
        .map(Path::to_path_buf)
        .or_else(|| home().map(|h| h.join(".pgpass")))
}

/// libpq's default client certificate and key, when both exist.
pub(crate) fn default_client_cert() -> Option<(PathBuf, PathBuf)> {
    let dir = home()?.join(".postgresql");
    let (cert, key) = (dir.join("postgresql.crt"), dir.join("postgresql.key"));
    (cert.is_file() && key.is_file()).then_some((cert, key))
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(reason: String) -> DbError {
        DbError::InvalidUrl {
            url: "x".into(),
            reason,
        }
    }

    #[test]
    fn a_url_with_several_hosts_keeps_them_and_loses_only_pgkeels_parameters() {
        let p = split_url(
            "postgresql://u:p@h1:5432,h2:5433/db?target_session_attrs=read-write&sslmode=verify-full&sslcert=/c.pem&sslkey=/k.pem&application_name=a%20b",
            invalid,
        )
        .unwrap();
        assert_eq!(
            p.cleaned,
            "postgresql://u:p@h1:5432,h2:5433/db?target_session_attrs=read-write&application_name=a%20b"
        );
        assert_eq!(p.sslmode, Some(SslMode::VerifyFull));
        assert_eq!(p.sslcert, Some(PathBuf::from("/c.pem")));
        assert_eq!(p.sslkey, Some(PathBuf::from("/k.pem")));
    }

    #[test]
    fn socket_hosts_pass_through_in_every_spelling() {
        for url in [
            "postgresql:///db?host=/var/run/postgresql",
            "postgresql://%2Fvar%2Frun%2Fpostgresql/db",
        ] {
            let p = split_url(url, invalid).unwrap();
            assert_eq!(p.cleaned, url);
            let c: tokio_postgres::Config = p.cleaned.parse().unwrap();
            assert!(
                matches!(&c.get_hosts()[0], tokio_postgres::config::Host::Unix(p) if p == Path::new("/var/run/postgresql")),
                "{url}: {:?}",
                c.get_hosts()
            );
        }
    }

    #[test]
    fn conninfo_service_and_ssl_words_are_taken_out() {
        let p = split_url(
            "host=/tmp dbname='my db' service=prod sslmode=require",
            invalid,
        )
        .unwrap();
        assert_eq!(p.cleaned, "host=/tmp dbname='my db'");
        assert_eq!(p.service.as_deref(), Some("prod"));
        assert_eq!(p.sslmode, Some(SslMode::Require));
    }

    #[test]
    fn the_password_file_matches_like_libpq() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pgpass");
        std::fs::write(
            &path,
            "# comment\nother:5432:*:*:no\n*:5433:app:u:p\\:with\\\\colon\nlocalhost:5432:*:u:sock\n",
        )
        .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        assert_eq!(
            pgpass(&path, "db.example", 5433, "app", "u").as_deref(),
            Some("p:with\\colon")
        );
        assert_eq!(
            pgpass(&path, "/var/run/postgresql", 5432, "x", "u").as_deref(),
            Some("sock")
        );
        assert_eq!(pgpass(&path, "db.example", 5432, "app", "v"), None);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert_eq!(
                pgpass(&path, "db.example", 5433, "app", "u"),
                None,
                "a file others can read is ignored"
            );
        }
    }

    #[test]
    fn a_service_is_read_from_the_first_file_that_has_it() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.conf"), dir.path().join("b.conf"));
        std::fs::write(&a, "[dev]\nhost=localhost\n").unwrap();
        std::fs::write(
            &b,
            "# system\n[prod]\nhost = db.internal\nport=6432\ndbname=app\n\n[next]\nhost=x\n",
        )
        .unwrap();
        let files = [a, b, dir.path().join("missing.conf")];
        assert_eq!(
            service("prod", &files).unwrap(),
            [
                ("host".to_string(), "db.internal".to_string()),
                ("port".into(), "6432".into()),
                ("dbname".into(), "app".into())
            ]
        );
        let err = service("nope", &files).unwrap_err().to_string();
        assert!(err.contains("nope") && err.contains("b.conf"), "{err}");
    }
}
