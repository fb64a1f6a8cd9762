use super::*;
use crate::report::Severity;

fn folder(files: &[(&str, &str)]) -> (tempfile::TempDir, MigrationSet) {
    let tmp = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(tmp.path().join(name), text).unwrap();
    }
    let set = source::load(tmp.path()).unwrap();
    (tmp, set)
}

#[test]
fn data_losing_migration_without_down_file_is_a_warning() {
    let (_tmp, set) = folder(&[
        ("0001_create.sql", "CREATE TABLE a (id int, note text);\n"),
        ("0002_drop_note.sql", "ALTER TABLE a DROP COLUMN note;\n"),
        ("0003_wipe.sql", "DELETE FROM a;\n"),
        ("0003_wipe.down.sql", "SELECT 1;\n"),
        ("0004_gone.sql", "-- pgkeel: irreversible\nDROP TABLE a;\n"),
    ]);
    let problems = check_folder(&set);
    assert_eq!(problems.len(), 1, "{problems:?}");
    let p = &problems[0];
    assert_eq!((p.kind, p.id.as_str()), ("no_rollback", "0002_drop_note"));
    assert_eq!(p.severity, Severity::Warning);
    assert!(p.message.contains("DROP COLUMN note"), "{}", p.message);
    assert!(
        p.message.contains("0002_drop_note.down.sql"),
        "{}",
        p.message
    );
}

#[test]
fn syntax_errors_are_critical() {
    let (_tmp, set) = folder(&[("0001_bad.sql", "CREATE TABEL a (id int);\n")]);
    let problems = check_folder(&set);
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].kind, "syntax");
    assert_eq!(problems[0].severity, Severity::Critical);
}

/// Only a migration with more of its run after it skips the wait for the disk; the last one
/// (and a migration applied alone, and a dry run) commits as the server is configured, which
/// flushes the WAL for every earlier one.
#[test]
fn only_migrations_followed_by_more_of_the_run_defer_the_flush() {
    let (_tmp, set) = folder(&[("0001_q.sql", "SELECT 1;\n")]);
    let settings = crate::config::Settings::defaults();
    let migrator = Migrator::new(&settings, &set);
    let m = &set.migrations[0];
    let stmts = migrator.prepared.statements(m).unwrap();
    let text = |flush| {
        migrator
            .groups(m, &stmts, None, None, flush)
            .iter()
            .map(|g| g.batch.text.clone())
            .collect::<String>()
    };
    assert!(text(Flush::Deferred).contains("SET LOCAL synchronous_commit = off;"));
    assert!(!text(Flush::Durable).contains("synchronous_commit"));
}
