use super::*;

#[test]
fn application_name_with_non_ascii_hostname_does_not_panic() {
    // Byte 63 falls inside a multi-byte character of the hostname.
    for host in [
        "ñ".repeat(40),
        format!("h{}", "é".repeat(40)),
        "日本".repeat(20),
    ] {
        let name = application_name_for(&host, 4_294_967_295);
        assert!(name.len() <= 63, "{name}");
        assert!(name.starts_with("pgkeel/"), "{name}");
        let whole = format!("pgkeel/{} {host} 4294967295", env!("CARGO_PKG_VERSION"));
        assert!(whole.starts_with(&name) && whole.len() > 63, "{name}");
    }
    let short = application_name_for("db-1", 42);
    assert_eq!(
        short,
        format!("pgkeel/{} db-1 42", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn url_ssl_params_are_taken_out_for_the_driver() {
    let invalid = |reason| DbError::InvalidUrl {
        url: "x".into(),
        reason,
    };
    let p = libpq::split_url(
        "postgresql://u:p@h:5433/db?sslmode=verify-full&sslrootcert=/x.pem&application_name=a",
        invalid,
    )
    .unwrap();
    let (url, mode, root) = (p.cleaned, p.sslmode, p.sslrootcert);
    assert_eq!(mode, Some(SslMode::VerifyFull));
    assert_eq!(root, Some(PathBuf::from("/x.pem")));
    assert!(!url.contains("sslmode"), "{url}");
    assert!(url.contains("application_name=a"));
}

#[test]
fn invalid_url_error_never_shows_the_password() {
    let mut settings = crate::config::Settings::defaults();
    settings.database_url = Some("mysql://u:hunter2@h/db".into());
    let err = Target::from_settings(&settings).unwrap_err();
    let text = err.to_string();
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("postgresql://"), "{text}");
}

#[test]
fn target_display_is_redacted() {
    let mut s = Settings::defaults();
    s.database_url =
        Some("postgresql://app:s3cret@db.example.com:6543/prod?sslmode=require".into());
    let t = Target::from_settings(&s).unwrap();
    let shown = format!("{t} {t:?}");
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(
        shown.contains("app:***@db.example.com:6543/prod"),
        "{shown}"
    );
    assert_eq!(t.sslmode, SslMode::Require);
}

#[test]
fn database_ssl_true_raises_prefer_to_require() {
    let mut s = Settings::defaults();
    s.database_url = Some("postgresql://app@h/db?sslmode=prefer".into());
    s.ssl = true;
    assert_eq!(Target::from_settings(&s).unwrap().sslmode, SslMode::Require);
}

#[test]
fn nothing_configured_is_an_error_that_says_what_to_set() {
    let s = Settings::defaults();
    let err = Target::from_settings(&s).unwrap_err();
    assert!(err.to_string().contains("DATABASE_URL"));
}

#[test]
fn search_path_becomes_a_quoted_escaped_startup_option() {
    let mut s = Settings::defaults();
    s.database_url = Some("postgresql://app@h/db?options=-c%20work_mem%3D4MB".into());
    s.search_path = vec!["tenant 1".into(), "we\"ird\\".into()];
    let t = Target::from_settings(&s).unwrap();
    assert_eq!(
        t.config.get_options(),
        Some(r#"-c work_mem=4MB -c search_path="tenant\ 1","we""ird\\""#)
    );
    s.search_path.clear();
    s.database_url = Some("postgresql://app@h/db".into());
    assert_eq!(
        Target::from_settings(&s).unwrap().config.get_options(),
        None
    );
}

#[test]
fn deploy_lock_key_depends_on_the_ledger() {
    let a = DeployLock::for_ledger("public", "__drizzle_migrations");
    let b = DeployLock::for_ledger("tenant_1", "__drizzle_migrations");
    assert_ne!(a.key(), b.key());
    assert_eq!(
        a.key(),
        DeployLock::for_ledger("public", "__drizzle_migrations").key()
    );
}
