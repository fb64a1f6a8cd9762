use super::*;

fn opts(env: &[(&str, &str)]) -> LoadOptions {
    LoadOptions {
        // An empty directory: no pgkeel.toml or .env to pick up by accident.
        cwd: PathBuf::from("/nonexistent-pgkeel-test-dir"),
        config_path: None,
        dotenv: true,
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        overrides: Overrides::default(),
    }
}

fn in_dir(dir: &tempfile::TempDir, env: &[(&str, &str)]) -> LoadOptions {
    LoadOptions {
        cwd: dir.path().to_path_buf(),
        ..opts(env)
    }
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn reference_path() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/pgkeel.toml"
    ))
}

#[test]
fn defaults_match_the_spec() {
    let s = load(&opts(&[])).unwrap();
    assert_eq!(s.pool_size, 15);
    assert_eq!(s.connect_timeout, Duration::from_millis(30_000));
    assert_eq!(s.idle_timeout, Duration::from_millis(600_000));
    assert_eq!(s.max_lifetime, Duration::from_millis(3_600_000));
    assert_eq!(s.backup_retention_days, 30);
    assert_eq!(s.backup_compression_level, CompressionLevel::Scale(6));
    assert_eq!(s.backup_compression_level.zstd(), 3);
    assert_eq!(s.health_check_timeout, Duration::from_millis(30_000));
    assert_eq!(s.readiness_check_timeout, Duration::from_millis(30_000));
    assert_eq!(s.lock_timeout, Duration::from_secs(5));
    assert_eq!(s.statement_timeout, Duration::ZERO);
    assert_eq!(s.retries, 5);
    assert_eq!(s.deploy_lock_timeout, Duration::from_secs(600));
    assert_eq!(s.backup_dir, PathBuf::from("backups"));
    assert_eq!(s.reports_dir, PathBuf::from("reports"));
    assert_eq!(
        (s.ledger_schema.as_str(), s.ledger_table.as_str()),
        ("public", "__drizzle_migrations")
    );
    assert_eq!(
        (s.drizzle_schema.as_str(), s.drizzle_table.as_str()),
        ("drizzle", "__drizzle_migrations")
    );
    assert!(!s.ssl);
    assert_eq!(s.sslmode, None);
    assert_eq!(s.database_url, None);
    assert_eq!(s.config_file, None);
    assert!(s.origins.values().all(|o| *o == Origin::Default));
    assert_eq!(s.origins.len(), s.entries().len());
}

#[test]
fn each_layer_overrides_the_previous_and_records_its_origin() {
    let dir = tempfile::tempdir().unwrap();
    let toml = write(
        &dir,
        "pgkeel.toml",
        "pool-size = 3\nretries = 9\nlock-timeout = \"2s\"\nconnect-timeout = 1000\n\
         [ledger]\nschema = \"ops\"\n",
    );
    let dotenv = write(
        &dir,
        ".env",
        "# comment\nDATABASE_CONNECTION_POOL_SIZE=4\nPGKEEL_RETRIES=8\n\
         PGKEEL_LOCK_TIMEOUT=3s\n",
    );
    let mut o = in_dir(
        &dir,
        &[
            ("DATABASE_CONNECTION_POOL_SIZE", "5"),
            ("PGKEEL_LOCK_TIMEOUT", "4s"),
        ],
    );
    o.overrides.lock_timeout = Some(Duration::from_millis(700));

    let s = load(&o).unwrap();
    assert_eq!(s.config_file.as_deref(), Some(toml.as_path()));
    // toml only
    assert_eq!(s.connect_timeout, Duration::from_secs(1));
    assert_eq!(s.origins["connect-timeout"], Origin::File(toml.clone()));
    assert_eq!(s.ledger_schema, "ops");
    assert_eq!(s.origins["ledger.schema"], Origin::File(toml.clone()));
    assert_eq!(s.origins["ledger.table"], Origin::Default);
    // .env over toml
    assert_eq!(s.retries, 8);
    assert_eq!(
        s.origins["retries"],
        Origin::DotEnv {
            path: dotenv.clone(),
            var: "PGKEEL_RETRIES".into()
        }
    );
    // env over .env
    assert_eq!(s.pool_size, 5);
    assert_eq!(
        s.origins["pool-size"],
        Origin::Env("DATABASE_CONNECTION_POOL_SIZE".into())
    );
    // flag over env
    assert_eq!(s.lock_timeout, Duration::from_millis(700));
    assert_eq!(s.origins["lock-timeout"], Origin::Flag);
    // untouched
    assert_eq!(s.origins["idle-timeout"], Origin::Default);

    // --no-dotenv: the file's value shows through again.
    o.dotenv = false;
    let s = load(&o).unwrap();
    assert_eq!(s.retries, 9);
    assert_eq!(s.origins["retries"], Origin::File(toml));

    // The process environment is never modified.
    assert!(std::env::var("PGKEEL_RETRIES").is_err());
}

#[test]
fn every_env_var_and_flag_is_applied() {
    let s = load(&opts(&[
        ("DATABASE_URL", "postgresql://u:pw@h/db"),
        ("DATABASE_SSL", "true"),
        ("PGSSLMODE", "verify-full"),
        ("PGSSLROOTCERT", "/ca.pem"),
        ("PGHOST", "h"),
        ("PGPORT", "6543"),
        ("PGUSER", "u"),
        ("PGPASSWORD", "pw"),
        ("PGDATABASE", "db"),
        ("PGPASSFILE", "/pw.file"),
        ("PGSERVICE", "prod"),
        ("PGSERVICEFILE", "/svc.conf"),
        ("PGSSLCERT", "/c.pem"),
        ("PGSSLKEY", "/k.pem"),
        ("PGTARGETSESSIONATTRS", "read-write"),
        ("DATABASE_CONNECTION_POOL_SIZE", "2"),
        ("DATABASE_CONNECTION_TIMEOUT", "1000"),
        ("DATABASE_IDLE_TIMEOUT", "2000"),
        ("DATABASE_MAX_LIFETIME", "3000"),
        ("HEALTH_CHECK_TIMEOUT", "4000"),
        ("READINESS_CHECK_TIMEOUT", "5000"),
        ("PGKEEL_MIGRATIONS", "db/migrations"),
        ("PGKEEL_LAYOUT", "dbmate"),
        ("PGKEEL_KEEP_LEDGER_IN_STEP", "yes"),
        ("PGKEEL_REPORTS_DIR", "out"),
        ("PGKEEL_LOCK_TIMEOUT", "500ms"),
        ("PGKEEL_STATEMENT_TIMEOUT", "2min"),
        ("PGKEEL_RETRIES", "1"),
        ("PGKEEL_DEPLOY_LOCK_TIMEOUT", "1h"),
        ("BACKUP_RETENTION_DAYS", "7"),
        ("BACKUP_COMPRESSION_LEVEL", "zstd:19"),
        ("PGKEEL_BACKUP_DIR", "bk"),
        ("BACKUP_ENCRYPTION_RECIPIENTS", "age1a, age1b"),
        ("BACKUP_ENCRYPTION_PASSPHRASE", "pass"),
        ("BACKUP_ENCRYPTION_IDENTITY_FILE", "/k.txt"),
    ]))
    .unwrap();
    assert_eq!(s.database_url.as_deref(), Some("postgresql://u:pw@h/db"));
    assert!(s.ssl);
    assert_eq!(s.sslmode, Some(SslMode::VerifyFull));
    assert_eq!(s.sslrootcert, Some(PathBuf::from("/ca.pem")));
    assert_eq!(
        s.pg,
        PgEnv {
            host: Some("h".into()),
            port: Some(6543),
            user: Some("u".into()),
            password: Some("pw".into()),
            database: Some("db".into()),
            passfile: Some("/pw.file".into()),
            service: Some("prod".into()),
            servicefile: Some("/svc.conf".into()),
            sslcert: Some("/c.pem".into()),
            sslkey: Some("/k.pem".into()),
            target_session_attrs: Some("read-write".into()),
        }
    );
    assert_eq!(s.pool_size, 2);
    assert_eq!(s.connect_timeout, Duration::from_millis(1000));
    assert_eq!(s.idle_timeout, Duration::from_millis(2000));
    assert_eq!(s.max_lifetime, Duration::from_millis(3000));
    assert_eq!(s.health_check_timeout, Duration::from_millis(4000));
    assert_eq!(s.readiness_check_timeout, Duration::from_millis(5000));
    assert_eq!(s.migrations_dir, Some(PathBuf::from("db/migrations")));
    assert_eq!(s.layout, Some(crate::layout::Layout::Dbmate));
    assert!(s.keep_ledger_in_step);
    assert_eq!(s.reports_dir, PathBuf::from("out"));
    assert_eq!(s.lock_timeout, Duration::from_millis(500));
    assert_eq!(s.statement_timeout, Duration::from_secs(120));
    assert_eq!(s.retries, 1);
    assert_eq!(s.deploy_lock_timeout, Duration::from_secs(3600));
    assert_eq!(s.backup_retention_days, 7);
    assert_eq!(s.backup_compression_level, CompressionLevel::Zstd(19));
    assert_eq!(s.backup_compression_level.zstd(), 19);
    assert_eq!(s.backup_dir, PathBuf::from("bk"));
    assert_eq!(s.backup_encryption_recipients, ["age1a", "age1b"]);
    assert_eq!(s.backup_encryption_passphrase.as_deref(), Some("pass"));
    assert!(!format!("{s:?}").contains("pass\""));
    assert_eq!(
        s.backup_encryption_identity_file,
        Some(PathBuf::from("/k.txt"))
    );
    // Every env-settable key now comes from the environment.
    for (var, key) in ENV_VARS {
        assert_eq!(s.origins[*key], Origin::Env(var.to_string()), "{key}");
    }

    let mut o = opts(&[("PGKEEL_RETRIES", "3")]);
    o.overrides = Overrides {
        database_url: Some("postgresql://flag@h/db".into()),
        migrations_dir: Some("m".into()),
        layout: Some(crate::layout::Layout::Goose),
        keep_ledger_in_step: true,
        sslmode: Some(SslMode::Disable),
        lock_timeout: Some(Duration::ZERO),
        statement_timeout: Some(Duration::from_secs(1)),
        retries: Some(2),
        deploy_lock_timeout: Some(Duration::from_secs(2)),
        reports_dir: Some("r".into()),
        pool_size: Some(4),
        drizzle_config: None,
    };
    let s = load(&o).unwrap();
    assert_eq!(s.database_url.as_deref(), Some("postgresql://flag@h/db"));
    assert_eq!(s.migrations_dir, Some(PathBuf::from("m")));
    assert_eq!(s.layout, Some(crate::layout::Layout::Goose));
    assert!(s.keep_ledger_in_step);
    assert_eq!(s.sslmode, Some(SslMode::Disable));
    assert_eq!(s.lock_timeout, Duration::ZERO);
    assert_eq!(s.statement_timeout, Duration::from_secs(1));
    assert_eq!(s.retries, 2);
    assert_eq!(s.deploy_lock_timeout, Duration::from_secs(2));
    assert_eq!(s.reports_dir, PathBuf::from("r"));
    assert_eq!(s.pool_size, 4);
    let flagged: Vec<_> = s
        .origins
        .iter()
        .filter(|(_, o)| **o == Origin::Flag)
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(flagged.len(), 11, "{flagged:?}");
}

#[test]
fn empty_env_values_count_as_unset() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir, ".env", "PGKEEL_RETRIES=7\n");
    let s = load(&in_dir(
        &dir,
        &[("PGKEEL_RETRIES", ""), ("DATABASE_URL", " ")],
    ))
    .unwrap();
    assert_eq!(s.retries, 7);
    assert_eq!(s.database_url, None);
}

#[test]
fn database_ssl_accepts_the_usual_spellings() {
    for v in ["true", "TRUE", "1", "yes", "on", " On "] {
        assert!(load(&opts(&[("DATABASE_SSL", v)])).unwrap().ssl, "{v}");
    }
    for v in ["false", "False", "0", "no", "off"] {
        assert!(!load(&opts(&[("DATABASE_SSL", v)])).unwrap().ssl, "{v}");
    }
    let err = load(&opts(&[("DATABASE_SSL", "maybe")])).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("DATABASE_SSL") && msg.contains("`maybe`"),
        "{msg}"
    );
    assert!(matches!(err, ConfigError::InvalidValue { ref key, .. } if key == "ssl"));
}

#[test]
fn compression_levels_are_gzip_scale_or_exact_zstd() {
    use CompressionLevel::{Scale, Zstd};
    for (text, level, zstd) in [
        ("6", Scale(6), 3),
        ("1", Scale(1), 1),
        ("9", Scale(9), 9),
        (" zstd:19 ", Zstd(19), 19),
        ("ZSTD:1", Zstd(1), 1),
    ] {
        let l: CompressionLevel = text.parse().unwrap();
        assert_eq!((l, l.zstd()), (level, zstd), "{text}");
        assert_eq!(l.to_string().parse(), Ok(l));
    }
    for bad in [
        "0", "10", "22", "zstd:0", "zstd:23", "zstd:", "-1", "gzip:6", "",
    ] {
        let err = bad.parse::<CompressionLevel>().unwrap_err();
        assert!(
            err.to_string().contains("zstd:1 to zstd:22"),
            "{bad}: {err}"
        );
    }
    // A higher step never compresses less hard.
    assert!(SCALE_TO_ZSTD[1..].windows(2).all(|w| w[0] <= w[1]));
}

#[test]
fn invalid_values_name_the_variable() {
    let cases = [
        ("DATABASE_CONNECTION_POOL_SIZE", "abc"),
        ("DATABASE_CONNECTION_POOL_SIZE", "0"),
        ("DATABASE_CONNECTION_POOL_SIZE", "-1"),
        ("DATABASE_CONNECTION_TIMEOUT", "soon"),
        ("DATABASE_IDLE_TIMEOUT", "1.5"),
        ("PGPORT", "99999"),
        ("PGSSLMODE", "strict"),
        ("BACKUP_COMPRESSION_LEVEL", "40"),
        ("BACKUP_COMPRESSION_LEVEL", "0"),
        ("BACKUP_COMPRESSION_LEVEL", "zstd:23"),
        ("BACKUP_COMPRESSION_LEVEL", "gzip:6"),
        ("BACKUP_RETENTION_DAYS", "a month"),
        ("PGKEEL_LOCK_TIMEOUT", "5 parsecs"),
        ("PGKEEL_RETRIES", "0"),
    ];
    for (var, value) in cases {
        let err = load(&opts(&[(var, value)])).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(var) && msg.contains(&format!("`{value}`")),
            "{var}={value}: {msg}"
        );
        assert!(
            matches!(&err, ConfigError::InvalidValue { origin: Origin::Env(v), .. } if v == var),
            "{err:?}"
        );
    }
    let err = load(&opts(&[("BACKUP_COMPRESSION_LEVEL", "19")])).unwrap_err();
    assert!(err.to_string().contains("zstd:1 to zstd:22"), "{err}");
}

#[test]
fn invalid_secret_values_are_not_echoed() {
    // No value of DATABASE_URL is invalid today; check the rule on the message builder.
    let err = ConfigError::InvalidValue {
        key: "pgpassword".into(),
        value: None,
        origin: Origin::Env("PGPASSWORD".into()),
        expected: "text".into(),
    };
    assert_eq!(
        err.to_string(),
        "environment variable PGPASSWORD has invalid value (hidden): expected text; fix or \
         remove it"
    );
}

#[test]
fn dotenv_errors_and_values() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir,
        ".env",
        "\u{feff}export PGKEEL_RETRIES=\"3\"\nPGKEEL_REPORTS_DIR='my reports' # note\n\
         PGKEEL_RETRIES=4\n",
    );
    let s = load(&in_dir(&dir, &[])).unwrap();
    assert_eq!(s.retries, 4, "later lines win");
    assert_eq!(s.reports_dir, PathBuf::from("my reports"));

    let path = write(
        &dir,
        ".env",
        "PGKEEL_RETRIES=3\n\nDATABASE_URL=\"postgresql://u:hunter2@h/db\n",
    );
    let err = load(&in_dir(&dir, &[])).unwrap_err();
    assert!(
        matches!(&err, ConfigError::DotEnvSyntax { path: p, line: 3 } if *p == path),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains(".env") && msg.contains("line 3") && !msg.contains("hunter2"),
        "{msg}"
    );
    // A broken .env is not read at all with --no-dotenv.
    let mut o = in_dir(&dir, &[]);
    o.dotenv = false;
    assert!(load(&o).is_ok());

    // A bad value in .env names the variable and the file.
    write(&dir, ".env", "DATABASE_CONNECTION_POOL_SIZE=many\n");
    let msg = load(&in_dir(&dir, &[])).unwrap_err().to_string();
    assert!(
        msg.contains("DATABASE_CONNECTION_POOL_SIZE in ") && msg.contains(".env"),
        "{msg}"
    );
}

#[test]
fn toml_values_and_durations() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "pgkeel.toml",
        r#"
database-url = "postgresql://app@db/app"
ssl = true
sslmode = "verify-ca"
sslrootcert = "ca.pem"
connect-timeout = "2s"
idle-timeout = "off"
max-lifetime = "1h"
statement-timeout = "0"
deploy-lock-timeout = "2min"
health-check-timeout = "250ms"
readiness-check-timeout = "1500"
migrations = "db"
reports-dir = "out"

[drizzle]
table = "migs"

[backup]
retention-days = 3
compression-level = "zstd:22"
dir = "/var/backups"

[monitor.thresholds]
replication-lag = "30s"
"#,
    );
    let s = load(&in_dir(&dir, &[])).unwrap();
    assert_eq!(s.database_url.as_deref(), Some("postgresql://app@db/app"));
    assert!(s.ssl);
    assert_eq!(s.sslmode, Some(SslMode::VerifyCa));
    assert_eq!(s.sslrootcert, Some(PathBuf::from("ca.pem")));
    assert_eq!(s.connect_timeout, Duration::from_secs(2));
    assert_eq!(s.idle_timeout, Duration::ZERO);
    assert_eq!(s.max_lifetime, Duration::from_secs(3600));
    assert_eq!(s.statement_timeout, Duration::ZERO);
    assert_eq!(s.deploy_lock_timeout, Duration::from_secs(120));
    assert_eq!(s.health_check_timeout, Duration::from_millis(250));
    assert_eq!(s.readiness_check_timeout, Duration::from_millis(1500));
    assert_eq!(s.migrations_dir, Some(PathBuf::from("db")));
    assert_eq!(s.reports_dir, PathBuf::from("out"));
    assert_eq!(s.drizzle_table, "migs");
    assert_eq!(s.drizzle_schema, "drizzle");
    assert_eq!(s.backup_retention_days, 3);
    assert_eq!(s.backup_compression_level, CompressionLevel::Zstd(22));
    assert_eq!(s.backup_dir, PathBuf::from("/var/backups"));
    assert_eq!(s.origins["backup.dir"], Origin::File(path));

    for (text, needle) in [
        ("lock-timeout = \"5 parsecs\"\n", "lock-timeout"),
        ("lock-timeout = -1\n", "lock-timeout"),
        ("sslmode = \"strict\"\n", "strict"),
        ("pool-size = \"many\"\n", "pool-size"),
        (
            "[backup]\ncompression-level = \"high\"\n",
            "compression-level",
        ),
        ("[backup]\ncompression-level = 30\n", "zstd:1 to zstd:22"),
        ("[ledger]\nname = \"x\"\n", "name"),
        // Keys in the reserved sections were accepted and ignored.
        ("[lint]\nfail-on = \"warning\"\n", "fail-on"),
        ("[monitor]\ninterval = 30\n", "interval"),
        // A typo under [backup] used to be ignored, leaving backups unencrypted.
        (
            "[backup]\nencryption-recipient = \"age1x\"\n",
            "encryption-recipient",
        ),
    ] {
        write(&dir, "pgkeel.toml", text);
        let err = load(&in_dir(&dir, &[])).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, ConfigError::Toml { .. }) && msg.contains(needle),
            "{text}: {msg}"
        );
    }

    // Range checks blame the file.
    write(&dir, "pgkeel.toml", "pool-size = 0\n");
    let msg = load(&in_dir(&dir, &[])).unwrap_err().to_string();
    assert!(
        msg.contains("`pool-size` in ") && msg.contains("pgkeel.toml"),
        "{msg}"
    );
    write(&dir, "pgkeel.toml", "[ledger]\ntable = \"\"\n");
    assert!(load(&in_dir(&dir, &[])).is_err());
}

#[test]
fn unknown_toml_key_errors_with_the_path_and_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "pgkeel.toml", "retries = 2\npool-sise = 3\n");
    let err = load(&in_dir(&dir, &[])).unwrap_err();
    assert!(
        matches!(&err, ConfigError::Toml { path: p, .. } if *p == path),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("pool-sise")
            && msg.contains(&path.display().to_string())
            && msg.contains("line 2"),
        "{msg}"
    );

    write(&dir, "pgkeel.toml", "[replication]\nslot = \"x\"\n");
    let msg = load(&in_dir(&dir, &[])).unwrap_err().to_string();
    assert!(msg.contains("replication"), "{msg}");
}

#[test]
fn toml_errors_do_not_leak_the_url_password() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir,
        "pgkeel.toml",
        "databse-url = \"postgresql://u:hunter2@h/db\"\n",
    );
    let msg = load(&in_dir(&dir, &[])).unwrap_err().to_string();
    assert!(
        msg.contains("databse-url") && !msg.contains("hunter2"),
        "{msg}"
    );
    write(
        &dir,
        "pgkeel.toml",
        "database-url = \"host=h password=hunter2\" x\n",
    );
    let msg = load(&in_dir(&dir, &[])).unwrap_err().to_string();
    assert!(!msg.contains("hunter2"), "{msg}");
}

#[test]
fn config_flag_reads_that_file_and_a_missing_one_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir, "pgkeel.toml", "retries = 2\n");
    let other = write(&dir, "ci.toml", "retries = 3\n");
    let mut o = in_dir(&dir, &[]);
    o.config_path = Some("ci.toml".into());
    let s = load(&o).unwrap();
    assert_eq!(s.retries, 3);
    assert_eq!(s.config_file, Some(other.clone()));
    assert_eq!(s.origins["retries"].to_string(), "ci.toml");

    o.config_path = Some("nope.toml".into());
    let err = load(&o).unwrap_err();
    assert!(
        matches!(&err, ConfigError::FileNotFound { path } if *path == dir.path().join("nope.toml")),
        "{err:?}"
    );
    assert!(err.to_string().contains("nope.toml"), "{err}");

    // Without --config, a missing pgkeel.toml is fine.
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(load(&in_dir(&empty, &[])).unwrap().config_file, None);
}

#[test]
fn origin_display_and_json() {
    let dotenv = Origin::DotEnv {
        path: "/app/.env".into(),
        var: "DATABASE_URL".into(),
    };
    assert_eq!(Origin::Default.to_string(), "default");
    assert_eq!(
        Origin::File("/app/pgkeel.toml".into()).to_string(),
        "pgkeel.toml"
    );
    assert_eq!(dotenv.to_string(), ".env (DATABASE_URL)");
    assert_eq!(
        Origin::Env("DATABASE_URL".into()).to_string(),
        "env DATABASE_URL"
    );
    assert_eq!(Origin::Flag.to_string(), "flag");
    assert_eq!(
        serde_json::to_value(&dotenv).unwrap(),
        serde_json::json!({"kind": "dotenv", "path": "/app/.env", "var": "DATABASE_URL"})
    );
    assert_eq!(
        serde_json::to_value(Origin::Env("X".into())).unwrap(),
        serde_json::json!({"kind": "env", "var": "X"})
    );
    assert_eq!(
        serde_json::to_value(Origin::Flag).unwrap(),
        serde_json::json!({"kind": "flag"})
    );
}

#[test]
fn sslmode_spellings() {
    for (text, mode) in [
        ("disable", SslMode::Disable),
        ("allow", SslMode::Allow),
        ("prefer", SslMode::Prefer),
        ("require", SslMode::Require),
        ("verify-ca", SslMode::VerifyCa),
        ("Verify-Full", SslMode::VerifyFull),
    ] {
        assert_eq!(text.parse::<SslMode>(), Ok(mode));
        assert_eq!(mode.to_string(), text.to_ascii_lowercase());
        assert_eq!(
            serde_json::to_value(mode).unwrap(),
            serde_json::json!(text.to_ascii_lowercase())
        );
    }
    let err = "verify_full".parse::<SslMode>().unwrap_err();
    assert!(err.to_string().contains("verify-full"), "{err}");
}

#[test]
fn entries_redact_secrets_and_show_origins() {
    let s = load(&opts(&[
        ("DATABASE_URL", "postgresql://u:hunter2@h/db"),
        ("PGPASSWORD", "hunter3"),
    ]))
    .unwrap();
    let entries = s.entries();
    let get = |k: &str| entries.iter().find(|e| e.key == k).unwrap();
    assert_eq!(
        get("database-url").value.as_deref(),
        Some("postgresql://u:***@h/db")
    );
    assert_eq!(
        get("database-url").origin,
        Origin::Env("DATABASE_URL".into())
    );
    assert_eq!(get("pgpassword").value.as_deref(), Some("***"));
    assert_eq!(get("pghost").value, None, "not set is null, not a string");
    assert_eq!(get("connect-timeout").value.as_deref(), Some("30s"));
    assert_eq!(get("statement-timeout").value.as_deref(), Some("off"));
    assert_eq!(get("deploy-lock-timeout").value.as_deref(), Some("10min"));
    assert_eq!(get("max-lifetime").value.as_deref(), Some("1h"));
    assert_eq!(
        get("ledger.table").value.as_deref(),
        Some("__drizzle_migrations")
    );
    assert_eq!(get("ledger.table").origin, Origin::Default);
    let json = serde_json::to_string(&entries).unwrap();
    assert!(
        !json.contains("hunter2") && !json.contains("hunter3"),
        "{json}"
    );
    assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
    assert_eq!(
        parse_duration_value(&format_duration(Duration::from_millis(1500))),
        Some(Duration::from_millis(1500))
    );
}

#[test]
fn debug_does_not_leak_secrets() {
    let s = Settings {
        database_url: Some("postgresql://u:hunter2@h/db".into()),
        pg: PgEnv {
            password: Some("hunter3".into()),
            ..Default::default()
        },
        ..Settings::defaults()
    };
    let shown = format!("{s:?} {s:#?}");
    assert!(
        !shown.contains("hunter2") && !shown.contains("hunter3"),
        "{shown}"
    );
    assert!(shown.contains("postgresql://u:***@h/db"), "{shown}");

    let mut o = opts(&[("PGPASSWORD", "hunter3")]);
    o.overrides.database_url = Some("postgresql://u:hunter2@h/db".into());
    let shown = format!("{o:?}");
    assert!(
        !shown.contains("hunter2") && !shown.contains("hunter3"),
        "{shown}"
    );
}

#[test]
fn redact_url_hides_passwords() {
    let cases = [
        // URL with and without a password
        (
            "postgresql://u:secret@h:5432/db",
            "postgresql://u:***@h:5432/db",
        ),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("postgres://h:5432/db", "postgres://h:5432/db"),
        (
            "postgresql://u:pw@h1:5432,h2:5433/db?target_session_attrs=read-write",
            "postgresql://u:***@h1:5432,h2:5433/db?target_session_attrs=read-write",
        ),
        // password in the query
        (
            "postgresql://h/db?user=u&password=secret&sslmode=require",
            "postgresql://h/db?user=u&password=***&sslmode=require",
        ),
        (
            "postgresql://h/db?password=x",
            "postgresql://h/db?password=***",
        ),
        (
            "postgresql://u:pw@h/db?sslpassword=k&PASSWORD=x",
            "postgresql://u:***@h/db?sslpassword=***&PASSWORD=***",
        ),
        // percent-encoded @ and : in the password
        (
            "postgres://u:p%40ss%3Aw@h/db?sslmode=require",
            "postgres://u:***@h/db?sslmode=require",
        ),
        // unencoded @ : / ? in the password: hidden whole
        ("postgres://u:p@ss:w@h/db", "postgres://u:***@h/db"),
        ("postgresql://u:p/s@ss@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:pa?ss@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:12/x@h/db", "postgresql://u:***@h/db"),
        // conninfo
        (
            "host=h password=secret user=u",
            "host=h password=*** user=u",
        ),
        (
            "host=h password = 'a \\' b' dbname=d",
            "host=h password = *** dbname=d",
        ),
        ("password=secret", "password=***"),
        ("host=h sslpassword=k", "host=h sslpassword=***"),
        ("host=h passwordx=y", "host=h passwordx=y"),
        // garbage
        ("", ""),
        ("not a url :: @@", "not a url :: @@"),
        ("://", "://"),
        ("://@", "://@"),
        (":// : @", ":// :***@"),
        ("password='unterminated", "password=***"),
        ("password=", "password=***"),
        ("host=h password", "host=h password"),
        ("é=ü password=ß\\", "é=ü password=***"),
    ];
    for (input, want) in cases {
        assert_eq!(redact_url(input), want, "input: {input}");
    }
    for secret_bearing in [
        "postgresql://u:s3cr3t@",
        "x://:s3cr3t@@@",
        "postgresql://u:s3cr3t@h/db?application_name=a@b",
        "\u{1F600}://u:s3cr3t@h",
        "password=\\s3cr3t",
    ] {
        let shown = redact_url(secret_bearing);
        assert!(!shown.contains("s3cr3t"), "{secret_bearing} -> {shown}");
    }
}

#[test]
fn redact_url_never_panics() {
    let alphabet = [
        "a", ":", "@", "/", "?", "&", "=", "'", "\\", " ", "é", "%", "#",
    ];
    // Every string of up to four symbols.
    let mut inputs = vec![String::new()];
    for _ in 0..4 {
        inputs = inputs
            .iter()
            .flat_map(|p| alphabet.iter().map(move |c| format!("{p}{c}")))
            .collect();
        for s in &inputs {
            let _ = redact_url(s);
            let _ = redact_url(&format!("x://{s}"));
            let _ = redact_url(&format!("password={s}"));
        }
    }
}

#[test]
fn reference_config_parses_and_documents_every_key() {
    let path = reference_path();
    let text = std::fs::read_to_string(&path).unwrap();

    // As shipped: it loads, and every value it sets is the default.
    let mut o = opts(&[]);
    o.config_path = Some(path.clone());
    let s = load(&o).unwrap();
    let defaults = Settings::defaults();
    for (got, want) in s.entries().iter().zip(defaults.entries()) {
        assert_eq!(
            got.value, want.value,
            "{} differs from the default",
            got.key
        );
    }

    // Uncommented (`# key = value` → `key = value`): every key is known.
    let dir = tempfile::tempdir().unwrap();
    let uncommented: String = text
        .lines()
        .map(|line| {
            let body = line.strip_prefix("# ").unwrap_or(line);
            let is_setting = body.split_once('=').is_some_and(|(k, _)| {
                let k = k.trim();
                !k.is_empty()
                    && k.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            });
            format!("{}\n", if is_setting { body } else { line })
        })
        .collect();
    let p = write(&dir, "uncommented.toml", &uncommented);
    let mut o = opts(&[]);
    o.config_path = Some(p);
    let s = load(&o).unwrap_or_else(|e| panic!("{e}\n{uncommented}"));

    // Every file-settable key appears in the reference.
    let settable: Vec<&String> = s
        .origins
        .iter()
        .filter(|(_, o)| matches!(o, Origin::File(_)))
        .map(|(k, _)| k)
        .collect();
    let env_only = [
        "pghost",
        "pgport",
        "pguser",
        "pgpassword",
        "pgdatabase",
        "pgpassfile",
        "pgservice",
        "pgservicefile",
        "sslcert",
        "sslkey",
        "pgtargetsessionattrs",
        "backup.encryption-passphrase",
        // drizzle-kit's own settings, read from drizzle.config.ts only.
        "migration-prefix",
        "schemas",
        "tables-filter",
    ];
    for e in s.entries() {
        if !env_only.contains(&e.key.as_str()) {
            assert!(
                settable.contains(&&e.key),
                "docs/pgkeel.toml lacks {}",
                e.key
            );
        }
    }
    // And every environment variable is mentioned.
    for (var, _) in ENV_VARS {
        assert!(
            text.contains(var),
            "docs/pgkeel.toml does not mention {var}"
        );
    }
}

#[test]
fn drizzle_config_sets_the_folder_and_drizzles_table_below_pgkeel_toml() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        &dir,
        "drizzle.config.ts",
        r#"import { defineConfig } from "drizzle-kit";
export default defineConfig({
  out: "./src/db/migrations",
  dialect: "postgresql",
  migrations: { table: "app_migrations", schema: "app", prefix: "timestamp" },
  dbCredentials: { url: process.env.POSTGRES_URL! },
});
"#,
    );
    let s = load(&in_dir(
        &dir,
        &[("POSTGRES_URL", "postgres://u:secret@db/app")],
    ))
    .unwrap();
    // Against the working directory, as drizzle-kit resolves it, `./` dropped.
    assert_eq!(s.migrations_dir, Some(PathBuf::from("src/db/migrations")));
    assert_eq!(
        (s.drizzle_schema.as_str(), s.drizzle_table.as_str()),
        ("app", "app_migrations")
    );
    assert_eq!(s.migration_prefix.as_deref(), Some("timestamp"));
    assert_eq!(
        s.database_url.as_deref(),
        Some("postgres://u:secret@db/app")
    );
    assert_eq!(s.drizzle_config.as_deref(), Some(cfg.as_path()));
    let origin = |key: &str| {
        s.entries()
            .into_iter()
            .find(|e| e.key == key)
            .unwrap()
            .origin
            .to_string()
    };
    assert_eq!(origin("migrations"), "drizzle.config.ts");
    assert_eq!(origin("drizzle.table"), "drizzle.config.ts");
    assert_eq!(
        origin("database-url"),
        "drizzle.config.ts (process.env.POSTGRES_URL)"
    );
    assert!(s.notes.is_empty(), "{:?}", s.notes);
    assert_eq!(s.schemas, ["public"]);

    // pgkeel.toml wins over drizzle's config, DATABASE_URL over the variable it names.
    write(
        &dir,
        "pgkeel.toml",
        "migrations = \"db\"\n[drizzle]\ntable = \"t\"\n",
    );
    let s = load(&in_dir(
        &dir,
        &[
            ("POSTGRES_URL", "postgres://a@x/a"),
            ("DATABASE_URL", "postgres://b@y/b"),
        ],
    ))
    .unwrap();
    assert_eq!(s.migrations_dir, Some(PathBuf::from("db")));
    assert_eq!(s.drizzle_table, "t");
    assert_eq!(s.drizzle_schema, "app");
    assert_eq!(s.database_url.as_deref(), Some("postgres://b@y/b"));
}

#[test]
fn drizzles_table_in_public_moves_the_default_ledger_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir,
        "drizzle.config.js",
        "export default { dialect: 'postgresql', migrations: { schema: 'public' } };\n",
    );
    let s = load(&in_dir(&dir, &[])).unwrap();
    assert_eq!(
        (s.drizzle_schema.as_str(), s.drizzle_table.as_str()),
        ("public", "__drizzle_migrations")
    );
    assert_eq!(
        (s.ledger_schema.as_str(), s.ledger_table.as_str()),
        ("public", LEDGER_BESIDE_DRIZZLE)
    );
    let e = s
        .entries()
        .into_iter()
        .find(|e| e.key == "ledger.table")
        .unwrap();
    assert_eq!(
        e.origin.to_string(),
        "moved off drizzle-orm's public.__drizzle_migrations"
    );
    // Named so by hand, the two cannot be one table.
    write(
        &dir,
        "pgkeel.toml",
        "[ledger]\ntable = \"__drizzle_migrations\"\n",
    );
    let err = load(&in_dir(&dir, &[])).unwrap_err();
    assert!(matches!(err, ConfigError::LedgerIsDrizzles { .. }), "{err}");
    assert!(err.to_string().contains(LEDGER_BESIDE_DRIZZLE), "{err}");
}

#[test]
fn what_a_drizzle_config_computes_is_said_once_and_a_literal_url_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir,
        "drizzle.config.ts",
        "export default defineConfig({\n  out: path.join(root, 'drizzle'),\n  dialect: 'postgresql',\n  dbCredentials: { url: 'postgres://app:hunter2@db/app' },\n});\n",
    );
    let s = load(&in_dir(&dir, &[])).unwrap();
    assert_eq!(s.migrations_dir, None);
    assert_eq!(s.notes.len(), 2, "{:?}", s.notes);
    assert!(
        s.notes[0].contains("holds a database URL") && !s.notes[0].contains("hunter2"),
        "{}",
        s.notes[0]
    );
    assert_eq!(
        s.notes[1],
        "drizzle.config.ts:2 sets `out` from a function call, which pgkeel does not evaluate: pass --migrations, or set `migrations` in pgkeel.toml"
    );
    let shown = s
        .entries()
        .into_iter()
        .find(|e| e.key == "database-url")
        .unwrap();
    let shown = shown.value.clone().unwrap_or_default();
    assert!(!shown.contains("hunter2"), "{shown}");
    // Set by a layer above, the value drizzle's config computes does not matter: no note.
    let s = load(&in_dir(&dir, &[("DATABASE_URL", "postgres://a@b/c")])).unwrap();
    assert_eq!(s.notes.len(), 2, "{:?}", s.notes);
    let mut o = in_dir(&dir, &[]);
    o.overrides.migrations_dir = Some("db".into());
    assert_eq!(load(&o).unwrap().notes.len(), 1);
    // A config in a subfolder (`drizzle-kit --config server/db/drizzle.config.ts`): `out` is
    // still the working directory's, and notes name the file by its path.
    std::fs::create_dir_all(dir.path().join("server/db")).unwrap();
    write(
        &dir,
        "server/db/drizzle.config.ts",
        "export default { out: './drizzle', dialect: 'postgresql', dbCredentials: { url: dbUrl } };\n",
    );
    let mut o = in_dir(&dir, &[]);
    o.overrides.drizzle_config = Some("server/db/drizzle.config.ts".into());
    let s = load(&o).unwrap();
    assert_eq!(s.migrations_dir, Some(PathBuf::from("drizzle")));
    assert!(
        s.notes.iter().any(|n| n
            .starts_with("server/db/drizzle.config.ts:1 sets `dbCredentials.url` from a variable")),
        "{:?}",
        s.notes
    );
    // Another dialect's project, a missing --drizzle-config: errors naming the file.
    write(
        &dir,
        "drizzle.config.ts",
        "export default { dialect: 'mysql' };\n",
    );
    assert!(matches!(
        load(&in_dir(&dir, &[])).unwrap_err(),
        ConfigError::Drizzle(drizzle::DrizzleConfigError::NotPostgres { .. })
    ));
    let mut o = in_dir(&dir, &[]);
    o.overrides.drizzle_config = Some("elsewhere/drizzle.config.ts".into());
    assert!(matches!(
        load(&o).unwrap_err(),
        ConfigError::DrizzleConfigNotFound { .. }
    ));
}

#[test]
fn drizzles_schema_and_tables_filters_are_read() {
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir,
        "drizzle.config.mjs",
        "export default { dialect: 'postgresql', schemaFilter: ['public', 'auth'], tablesFilter: ['app_*'] };\n",
    );
    let s = load(&in_dir(&dir, &[])).unwrap();
    assert_eq!(s.schemas, ["public", "auth"]);
    let e = s
        .entries()
        .into_iter()
        .find(|e| e.key == "schemas")
        .unwrap();
    assert_eq!(
        (
            e.value.as_deref().unwrap_or("(not set)"),
            e.origin.to_string().as_str(),
        ),
        ("public,auth", "drizzle.config.mjs")
    );
    assert_eq!(s.tables_filter, ["app_*"]);
    assert!(s.notes.is_empty(), "{:?}", s.notes);
}

/// A passphrase in pgkeel.toml used to be ignored silently (backups written unencrypted); a
/// password in its database-url sat in a committed file. Both are refused, naming the variable.
#[test]
fn secrets_in_the_config_file_are_refused_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    for (text, var) in [
        (
            "[backup]\nencryption-passphrase = \"hunter2\"\n",
            "BACKUP_ENCRYPTION_PASSPHRASE",
        ),
        (
            "database-url = \"postgresql://app:hunter2@db/app\"\n",
            "DATABASE_URL",
        ),
    ] {
        write(&dir, "pgkeel.toml", text);
        let err = load(&in_dir(&dir, &[])).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, ConfigError::SecretInFile { .. }), "{msg}");
        assert!(msg.contains(var) && !msg.contains("hunter2"), "{msg}");
    }
    write(
        &dir,
        "pgkeel.toml",
        "database-url = \"postgresql://app@db/app\"\n",
    );
    assert!(
        load(&in_dir(&dir, &[])).is_ok(),
        "a URL without a password is fine"
    );
}
