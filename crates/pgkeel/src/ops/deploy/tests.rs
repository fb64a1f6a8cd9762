use super::*;

#[test]
fn environment_parses_and_sets_defaults() {
    assert_eq!(
        "PROD".parse::<Environment>().unwrap(),
        Environment::Production
    );
    assert!("qa".parse::<Environment>().is_err());
    let s = Settings::defaults();
    let prod = DeployOptions::for_env(Environment::Production, &s);
    assert!(prod.backup);
    assert_eq!(prod.lint_fail_on, Some(Severity::Critical));
    let dev = DeployOptions::for_env(Environment::Development, &s);
    assert!(!dev.backup);
    assert_eq!(dev.lint_fail_on, None);
}

#[test]
fn drift_excludes_advice_and_comments() {
    let f = |id: &str| Finding::new(id, Severity::Warning, "public.t", "m");
    assert!(is_drift(&f("missing-table")));
    assert!(is_drift(&f("extra-index")));
    assert!(is_drift(&f("changed-column")));
    assert!(!is_drift(&f("changed-comment")));
    assert!(!is_drift(&f("no-primary-key")));
}

#[test]
fn display_url_hides_credentials_and_query() {
    assert_eq!(
        display_url("https://user:secret@app.example.com/healthz?token=abc"),
        "https://app.example.com/healthz?…"
    );
    assert_eq!(
        display_url("http://127.0.0.1:3000/api/health"),
        "http://127.0.0.1:3000/api/health"
    );
    assert_eq!(display_url("not a url"), "(not a URL)");
}

fn report(applied: &[&str], failed: bool, backup: bool) -> DeployReport {
    DeployReport {
        started_at: chrono::Utc::now(),
        environment: Environment::Production,
        database: "postgresql://u@h/db".into(),
        migrations_dir: "drizzle".into(),
        outcome: "failed",
        duration_ms: 0,
        failure: failed.then(|| Failure {
            step: "health",
            kind: FailureKind::Unhealthy,
            message: "x".into(),
        }),
        steps: Vec::new(),
        applied: applied.iter().map(|s| s.to_string()).collect(),
        backup: backup.then(|| BackupRef {
            name: "pre-deploy".into(),
            path: "backups/pre-deploy".into(),
            stored_bytes: 1,
            verified: true,
            decrypted: true,
        }),
        new_findings: Vec::new(),
        resolved_findings: 0,
        performance: None,
        recovery: Vec::new(),
        migrate: None,
    }
}

#[test]
fn recovery_names_rollback_from_the_first_applied_then_restore() {
    let r = recovery(&report(&["0003_a", "0004_b"], true, true));
    assert_eq!(r.len(), 2);
    assert!(r[0].starts_with("pgkeel rollback 0003_a --cascade"));
    assert!(r[1].starts_with("pgkeel restore backups/pre-deploy --clean"));
    assert!(recovery(&report(&["0003_a"], false, true)).is_empty());
    assert!(recovery(&report(&[], true, true)).is_empty());
}

#[test]
fn compare_matches_relations_by_name() {
    use monitor::performance::{Performance, Relation};
    let rel = |n: &str, b: i64| Relation {
        schema: "public".into(),
        name: n.into(),
        table: None,
        bytes: b,
        rows_estimate: None,
        bookkeeping: false,
    };
    let before = Performance {
        database_size_bytes: 100,
        largest_tables: vec![rel("a", 10), rel("b", 5)],
        ..Performance::default()
    };
    let after = Performance {
        database_size_bytes: 150,
        largest_tables: vec![rel("a", 40), rel("c", 7)],
        ..Performance::default()
    };
    let d = compare(Some(&before), Some(&after));
    assert_eq!(
        d.database_size_bytes,
        Some(Change {
            before: Some(100),
            after: Some(150)
        })
    );
    let a = d.tables.iter().find(|t| t.name == "public.a").unwrap();
    assert_eq!((a.bytes.before, a.bytes.after), (Some(10), Some(40)));
    let c = d.tables.iter().find(|t| t.name == "public.c").unwrap();
    assert_eq!((c.bytes.before, c.bytes.after), (None, Some(7)));
    assert_eq!(d.tables.len(), 3);
}
