//! libpq's connection conventions against a private server this test starts (initdb + pg_ctl in
//! a temp dir): scram-sha-256 passwords, TLS with a test CA and client certificates (made with
//! the openssl command), a Unix socket directory. Each case connects the way psql would and
//! checks where it landed; the server is stopped and deleted at the end.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use pgkeel::config::{Settings, SslMode};
use pgkeel::db::{DbError, Target};
use pgkeel::embedded::EmbeddedServer;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command (Debian's openssl package) makes the test certificates");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for `localhost` only, and a client certificate for `certuser`.
fn certificates(dir: &Path) {
    let days = ["-days", "2"];
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-subj",
            "/CN=pgkeel-test-ca",
            days[0],
            days[1],
        ],
    );
    std::fs::write(dir.join("server.ext"), "subjectAltName=DNS:localhost\n").unwrap();
    // An X.509 v3 certificate: rustls refuses v1 ones, also as its own client certificate.
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-extfile",
            "server.ext",
            days[0],
            days[1],
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "client.key",
            "-out",
            "client.csr",
            "-subj",
            "/CN=certuser",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "client.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "client.crt",
            "-extfile",
            "client.ext",
            days[0],
            days[1],
        ],
    );
    chmod(&dir.join("client.key"), 0o600);
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Writes `name` into the data directory, owned like the directory (the server may run as
/// `postgres` while the test runs as root).
fn server_file(server: &EmbeddedServer, name: &str, contents: &[u8], mode: u32) {
    use std::os::unix::fs::MetadataExt;
    let data = server.data_dir();
    let meta = std::fs::metadata(data).unwrap();
    let path = data.join(name);
    std::fs::write(&path, contents).unwrap();
    chmod(&path, mode);
    std::os::unix::fs::chown(&path, Some(meta.uid()), Some(meta.gid())).unwrap();
}

fn settings(url: Option<&str>) -> Settings {
    let mut s = Settings::defaults();
    s.database_url = url.map(str::to_string);
    s.connect_timeout = Duration::from_secs(10);
    // The test's own environment must not leak in: no password file, no service, no certificate.
    s.pg.passfile = Some(PathBuf::from("/nonexistent/pgpass"));
    s
}

/// Connects and returns `(current_user, ssl in use, client address or "socket")`.
async fn whoami(settings: &Settings) -> Result<(String, bool, String), DbError> {
    let target = Target::from_settings(settings)?;
    let client = target.connect().await?;
    let row = client
        .query_one(
            "SELECT current_user::text, coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false),
                    coalesce(host(inet_client_addr()), 'socket')",
            &[],
        )
        .await
        .unwrap();
    Ok((row.get(0), row.get(1), row.get(2)))
}

#[tokio::test]
async fn libpq_conventions_reach_a_private_server_with_passwords_tls_and_a_socket() {
    let server = EmbeddedServer::start()
        .await
        .expect("a private server (initdb, pg_ctl)");
    let certs = tempfile::tempdir().unwrap();
    certificates(certs.path());
    for f in ["server.crt", "server.key", "ca.crt"] {
        let bytes = std::fs::read(certs.path().join(f)).unwrap();
        server_file(&server, f, &bytes, 0o600);
    }
    let port = server.port();
    let admin = Target::from_settings(&settings(Some(&server.url("postgres")))).unwrap();
    let c = admin.connect().await.unwrap();
    for sql in [
        "SET password_encryption = 'scram-sha-256'",
        "CREATE ROLE app LOGIN PASSWORD 'sekret:with\\colon'",
        "CREATE ROLE certuser LOGIN",
        "ALTER SYSTEM SET ssl = on",
        "ALTER SYSTEM SET ssl_cert_file = 'server.crt'",
        "ALTER SYSTEM SET ssl_key_file = 'server.key'",
        "ALTER SYSTEM SET ssl_ca_file = 'ca.crt'",
    ] {
        c.batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    server_file(
        &server,
        "pg_hba.conf",
        b"local all postgres trust\n\
          local all all scram-sha-256\n\
          hostssl all certuser 127.0.0.1/32 cert\n\
          host all postgres 127.0.0.1/32 trust\n\
          host all all 127.0.0.1/32 scram-sha-256\n",
        0o600,
    );
    c.batch_execute("SELECT pg_reload_conf()").await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(c);
    let socket = server.socket_dir().display().to_string();
    let encoded = socket.replace('/', "%2F");

    // Unix sockets, in the three spellings: `?host=`, a %2F-encoded host, PGHOST.
    for url in [
        format!("postgresql:///postgres?host={socket}&port={port}&user=postgres&sslmode=disable"),
        format!("postgresql://{encoded}:{port}/postgres?user=postgres"),
    ] {
        let (user, ssl, from) = whoami(&settings(Some(&url)))
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(
            (user.as_str(), ssl, from.as_str()),
            ("postgres", false, "socket"),
            "{url}"
        );
    }
    let mut s = settings(None);
    s.pg.host = Some(socket.clone());
    s.pg.port = Some(port);
    s.pg.user = Some("postgres".into());
    s.pg.database = Some("postgres".into());
    assert_eq!(whoami(&s).await.unwrap().2, "socket", "PGHOST=<socket dir>");

    // scram-sha-256: no password is refused; the password file gives it, unless others can read it.
    let app = format!("postgresql://app@127.0.0.1:{port}/postgres?sslmode=disable");
    let err = whoami(&settings(Some(&app))).await.unwrap_err().to_string();
    assert!(err.contains("password"), "{err}");
    let pgpass = certs.path().join("pgpass");
    std::fs::write(
        &pgpass,
        format!("127.0.0.1:{port}:*:app:sekret\\:with\\\\colon\n"),
    )
    .unwrap();
    chmod(&pgpass, 0o600);
    let mut s = settings(Some(&app));
    s.pg.passfile = Some(pgpass.clone());
    assert_eq!(whoami(&s).await.unwrap().0, "app", "PGPASSFILE");
    let with_param = format!("{app}&passfile={}", pgpass.display());
    assert_eq!(
        whoami(&settings(Some(&with_param))).await.unwrap().0,
        "app",
        "passfile="
    );
    chmod(&pgpass, 0o644);
    assert!(
        whoami(&s).await.is_err(),
        "a password file others can read is ignored"
    );
    chmod(&pgpass, 0o600);

    // The connection service file: PGSERVICE + PGSERVICEFILE, and `service=` in a URL.
    let services = certs.path().join("pg_service.conf");
    std::fs::write(
        &services,
        format!("[other]\nhost=nowhere\n\n[app]\nhost=127.0.0.1\nport={port}\ndbname=postgres\nuser=app\npassword=sekret:with\\colon\nsslmode=disable\n"),
    )
    .unwrap();
    let mut s = settings(None);
    s.pg.service = Some("app".into());
    s.pg.servicefile = Some(services.clone());
    assert_eq!(whoami(&s).await.unwrap().0, "app", "PGSERVICE");
    let mut s = settings(Some("postgresql:///?service=app"));
    s.pg.servicefile = Some(services.clone());
    assert_eq!(whoami(&s).await.unwrap().0, "app", "service=");
    s.database_url = Some("postgresql:///?service=nope".into());
    let err = whoami(&s).await.unwrap_err();
    assert!(matches!(err, DbError::UnknownService { .. }), "{err}");

    // TLS with the test CA: verify-full checks the name (the certificate is for localhost only),
    // verify-ca only the chain.
    let ca = certs.path().join("ca.crt").display().to_string();
    let full = format!(
        "postgresql://postgres@localhost:{port}/postgres?sslmode=verify-full&sslrootcert={ca}"
    );
    let (_, ssl, _) = whoami(&settings(Some(&full)))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(ssl, "verify-full to localhost is encrypted");
    let by_ip = full.replace("@localhost:", "@127.0.0.1:");
    let err = whoami(&settings(Some(&by_ip)))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.to_lowercase().contains("certificate") || err.contains("TLS"),
        "{err}"
    );
    let ca_only = by_ip.replace("verify-full", "verify-ca");
    assert!(
        whoami(&settings(Some(&ca_only))).await.unwrap().1,
        "verify-ca ignores the name"
    );
    let mut s = settings(Some(&format!(
        "postgresql://postgres@127.0.0.1:{port}/postgres"
    )));
    s.sslmode = Some(SslMode::Require);
    assert!(
        whoami(&s).await.unwrap().1,
        "PGSSLMODE=require encrypts without checking"
    );

    // Client certificates (`cert` authentication): sslcert/sslkey in the URL or PGSSLCERT/PGSSLKEY.
    let (cert, key) = (
        certs.path().join("client.crt"),
        certs.path().join("client.key"),
    );
    let certuser = format!(
        "postgresql://certuser@localhost:{port}/postgres?sslmode=verify-full&sslrootcert={ca}"
    );
    assert!(
        whoami(&settings(Some(&certuser))).await.is_err(),
        "no certificate, no login"
    );
    let with_cert = format!(
        "{certuser}&sslcert={}&sslkey={}",
        cert.display(),
        key.display()
    );
    assert_eq!(
        whoami(&settings(Some(&with_cert))).await.unwrap().0,
        "certuser"
    );
    let mut s = settings(Some(&certuser));
    s.pg.sslcert = Some(cert.clone());
    s.pg.sslkey = Some(key.clone());
    assert_eq!(
        whoami(&s).await.unwrap().0,
        "certuser",
        "PGSSLCERT/PGSSLKEY"
    );
    chmod(&key, 0o644);
    let err = Target::from_settings(&s)
        .unwrap()
        .connect()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("group or world access"), "{err}");
    chmod(&key, 0o600);

    // Several hosts: the first is down, the second answers; read-write finds the primary.
    let multi = format!(
        "postgresql://postgres@127.0.0.1:1,127.0.0.1:{port}/postgres?target_session_attrs=read-write&sslmode=disable"
    );
    assert_eq!(
        whoami(&settings(Some(&multi))).await.unwrap().0,
        "postgres",
        "{multi}"
    );

    pgkeel::db::close_connections(Duration::from_millis(200)).await;
    tokio::task::spawn_blocking(move || server.stop())
        .await
        .unwrap()
        .unwrap();
}
