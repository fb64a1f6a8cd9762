use super::*;
use crate::location::line_at;
use chrono::TimeZone;

/// `printf 'CREATE TABLE a (id int);\n' | sha256sum`
const CREATE_A: &[u8] = b"CREATE TABLE a (id int);\n";
const CREATE_A_SHA256: &str = "c2de7559380e5ebf65caa7d59e166558e80243cf7e70006cc98d1593d94203c1";
/// drizzle-orm 0.45.4's `readMigrationFiles` hash of `\xEF\xBB\xBFSELECT 1;\r\n`, computed
/// with node (equal to `sha256sum` of the bytes).
const BOM_CRLF: &[u8] = b"\xEF\xBB\xBFSELECT 1;\r\n";
const BOM_CRLF_SHA256: &str = "1ffc3c6acdbb610bcc942c606c787270e7c9d149c473e9d9aaa4fe597d5e402d";

fn write(dir: &Path, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, contents).unwrap();
    path
}

/// A journal exactly as drizzle-kit writes it (`JSON.stringify(journal, null, 2)`).
fn journal(version: &str, dialect: &str, tags: &[(&str, i64)]) -> String {
    let entries: Vec<String> = tags
        .iter()
        .enumerate()
        .map(|(idx, (tag, when))| {
            format!(
                "    {{\n      \"idx\": {idx},\n      \"version\": \"{version}\",\n      \"when\": {when},\n      \"tag\": \"{tag}\",\n      \"breakpoints\": true\n    }}"
            )
        })
        .collect();
    let entries = if entries.is_empty() {
        "[]".to_owned()
    } else {
        format!("[\n{}\n  ]", entries.join(",\n"))
    };
    format!(
        "{{\n  \"version\": \"{version}\",\n  \"dialect\": \"{dialect}\",\n  \"entries\": {entries}\n}}"
    )
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 4, 5, 6, 7).unwrap()
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/source")
}

// --- layouts ---------------------------------------------------------------------------

#[test]
fn loads_drizzle_journal_v7_in_idx_order() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // Entries listed out of idx order in the array: idx decides.
    let j = r#"{"version":"7","dialect":"postgresql","entries":[
        {"idx":1,"version":"7","when":1700000001000,"tag":"0001_second","breakpoints":true},
        {"idx":0,"version":"7","when":1700000000000,"tag":"0000_brave_hulk","breakpoints":true}]}"#;
    write(d, JOURNAL_PATH, j);
    write(d, "meta/0000_snapshot.json", "{}");
    write(d, "0000_brave_hulk.sql", CREATE_A);
    write(d, "0001_second.sql", "SELECT 1;");
    write(d, "0001_second.down.sql", "SELECT 2;");
    write(d, "README.md", "docs");
    write(d, "seed.sql", "not a migration");
    let set = load(d).unwrap();
    assert_eq!(set.layout, Layout::DrizzleJournal);
    let ids: Vec<_> = set.migrations.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["0000_brave_hulk", "0001_second"]);
    let m0 = &set.migrations[0];
    assert_eq!(m0.index, 0);
    assert_eq!(m0.when, Some(1_700_000_000_000));
    assert_eq!(m0.path, d.join("0000_brave_hulk.sql"));
    assert_eq!(m0.hash, CREATE_A_SHA256);
    assert!(m0.breakpoints);
    assert!(m0.down.is_none());
    let m1 = set.get("0001_second").unwrap();
    assert_eq!(m1.index, 1);
    let down = m1.down.as_ref().unwrap();
    assert_eq!(down.path, d.join("0001_second.down.sql"));
    assert_eq!(down.sql, "SELECT 2;");
    assert!(set.get("nope").is_none());
}

#[test]
fn loads_drizzle_journal_v5_pg() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let j = r#"{"version":"5","dialect":"pg","entries":[{"idx":0,"version":"5","when":1690000000000,"tag":"0000_old","breakpoints":false}]}"#;
    write(d, JOURNAL_PATH, j);
    write(d, "0000_old.sql", "CREATE TABLE t (id int);");
    let set = load(d).unwrap();
    assert_eq!(set.layout, Layout::DrizzleJournal);
    assert_eq!(set.migrations[0].id, "0000_old");
    assert_eq!(set.migrations[0].when, Some(1_690_000_000_000));
    assert!(!set.migrations[0].breakpoints);
}

#[test]
fn loads_drizzle_v1_folders() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(d, "20250102030405_second/migration.sql", "SELECT 2;");
    write(d, "20250102030405_second/snapshot.json", "{}");
    write(d, "20240101000000_first/migration.sql", "SELECT 1;");
    write(d, "20240101000000_first/down.sql", "SELECT -1;");
    write(d, "notes/readme.txt", "ignored");
    let set = load(d).unwrap();
    assert_eq!(set.layout, Layout::DrizzleFolders);
    let ids: Vec<_> = set.migrations.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["20240101000000_first", "20250102030405_second"]);
    let first = &set.migrations[0];
    assert_eq!(first.when, Some(1_704_067_200_000));
    assert_eq!(first.path, d.join("20240101000000_first/migration.sql"));
    assert_eq!(first.down.as_ref().unwrap().sql, "SELECT -1;");
    assert!(first.breakpoints);
    let second = &set.migrations[1];
    let expected = Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap();
    assert_eq!(second.when, Some(expected.timestamp_millis()));
    assert!(second.down.is_none());
    assert!(set.warnings.is_empty(), "{:?}", set.warnings);
}

#[test]
fn migration_folder_with_a_short_timestamp_is_reported_not_skipped_silently() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(d, "20240101000000_first/migration.sql", "SELECT 1;");
    write(d, "20240101000000_first/snapshot.json", "{}");
    // A real Prisma folder name: 8 digits, which Prisma orders by name and runs.
    let short = write(d, "20250625_add_pivot/migration.sql", "SELECT 2;");
    let set = load(d).unwrap();
    assert_eq!(set.migrations.len(), 1);
    assert_eq!(set.warnings.len(), 1);
    assert_eq!(set.warnings[0].path, short.parent().unwrap());
    assert_eq!(
        set.warnings[0].kind,
        FolderWarningKind::FolderNameNotATimestamp
    );
}

#[test]
fn loads_native_in_numeric_order() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(d, "0010_later.sql", "SELECT 10;");
    write(d, "0002_add_users.sql", "SELECT 2;");
    write(d, "0002_add_users.down.sql", "SELECT -2;");
    write(d, "00003_add_indexes.sql", "SELECT 3;");
    write(d, "README.md", "docs");
    write(d, ".hidden.sql", "ignored");
    write(d, "fixtures/x.sql", "subfolders are ignored");
    let set = load(d).unwrap();
    assert_eq!(set.layout, Layout::Native);
    let ids: Vec<_> = set.migrations.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["0002_add_users", "00003_add_indexes", "0010_later"]);
    let m = &set.migrations[0];
    assert_eq!(m.when, None);
    assert!(m.breakpoints);
    assert_eq!(
        m.down.as_ref().unwrap().path,
        d.join("0002_add_users.down.sql")
    );
    assert_eq!(set.migrations[2].index, 2);
}

#[test]
fn empty_folder_is_native_and_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let set = load(tmp.path()).unwrap();
    assert_eq!(set.layout, Layout::Native);
    assert!(set.is_empty());
}

#[test]
fn fixture_folders_load() {
    let native = load(&fixtures().join("native")).unwrap();
    assert_eq!(native.layout, Layout::Native);
    assert_eq!(native.len(), 3);
    let cic = native.get("0002_index_users_email").unwrap();
    assert!(cic.directives.no_transaction);
    assert!(cic.down.as_ref().unwrap().directives.no_transaction);
    assert!(
        native
            .get("0003_drop_legacy")
            .unwrap()
            .directives
            .irreversible
    );

    let journal = load(&fixtures().join("drizzle-journal")).unwrap();
    assert_eq!(journal.layout, Layout::DrizzleJournal);
    assert_eq!(journal.len(), 2);
    assert_eq!(journal.migrations[0].chunks().len(), 3);

    let v5 = load(&fixtures().join("drizzle-journal-v5")).unwrap();
    assert_eq!(v5.layout, Layout::DrizzleJournal);
    assert_eq!(v5.len(), 1);

    let folders = load(&fixtures().join("drizzle-folders")).unwrap();
    assert_eq!(folders.layout, Layout::DrizzleFolders);
    assert_eq!(folders.len(), 2);
}

#[test]
fn layout_serializes_kebab_case() {
    assert_eq!(
        serde_json::to_string(&Layout::DrizzleJournal).unwrap(),
        "\"drizzle-journal\""
    );
    assert_eq!(Layout::DrizzleFolders.to_string(), "drizzle-folders");
    assert_eq!(
        serde_json::to_string(&Layout::Native).unwrap(),
        "\"native\""
    );
}

#[test]
fn resolve_dir_prefers_explicit_then_drizzle_then_migrations() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    assert_eq!(resolve_dir(None, cwd), cwd.join("migrations"));
    fs::create_dir_all(cwd.join("drizzle")).unwrap();
    assert_eq!(resolve_dir(None, cwd), cwd.join("migrations"));
    write(cwd, "drizzle/meta/_journal.json", "{}");
    assert_eq!(resolve_dir(None, cwd), cwd.join("drizzle"));
    assert_eq!(resolve_dir(Some(Path::new("db/m")), cwd), cwd.join("db/m"));
    assert_eq!(
        resolve_dir(Some(Path::new("/abs")), cwd),
        PathBuf::from("/abs")
    );
}

// --- hashing -----------------------------------------------------------------------------

#[test]
fn hash_is_sha256_of_file_bytes() {
    assert_eq!(sha256_hex(CREATE_A), CREATE_A_SHA256);
    assert_eq!(sha256_hex(BOM_CRLF), BOM_CRLF_SHA256);
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "0001_a.sql", CREATE_A);
    write(tmp.path(), "0002_b.sql", BOM_CRLF);
    let set = load(tmp.path()).unwrap();
    assert_eq!(set.migrations[0].hash, CREATE_A_SHA256);
    assert_eq!(set.migrations[1].hash, BOM_CRLF_SHA256);
    assert_eq!(set.migrations[1].sql.as_bytes(), BOM_CRLF);
}

#[test]
fn crlf_changes_hash_not_normalized_hash() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(d, "0001_lf.sql", "CREATE TABLE a (\n  id int\n);\n");
    write(d, "0002_crlf.sql", "CREATE TABLE a (\r\n  id int\r\n);\r\n");
    write(d, "0003_cr.sql", "CREATE TABLE a (\r  id int\r);\r");
    let set = load(d).unwrap();
    let [lf, crlf, cr] = &set.migrations[..] else {
        panic!("three migrations expected");
    };
    assert_ne!(lf.hash, crlf.hash);
    assert_eq!(lf.normalized_hash(), crlf.normalized_hash());
    assert_eq!(lf.normalized_hash(), cr.normalized_hash());
}

#[test]
fn bom_and_trailing_whitespace_change_hash_not_normalized_hash() {
    let plain = "SELECT 1;\nSELECT 2;\n";
    for cosmetic in [
        "\u{feff}SELECT 1;\nSELECT 2;\n",
        "SELECT 1;   \nSELECT 2;\t\n",
        "SELECT 1;\nSELECT 2;",
        "SELECT 1;\nSELECT 2;\n\n  \n",
        "\u{feff}SELECT 1; \r\nSELECT 2;\r\n\r\n",
    ] {
        assert_ne!(
            sha256_hex(plain.as_bytes()),
            sha256_hex(cosmetic.as_bytes())
        );
        assert_eq!(
            normalized_hash(plain),
            normalized_hash(cosmetic),
            "{cosmetic:?}"
        );
    }
    // Real edits still change it: content, and blank lines inside the file.
    assert_ne!(
        normalized_hash(plain),
        normalized_hash("SELECT 1;\nSELECT 3;\n")
    );
    assert_ne!(
        normalized_hash(plain),
        normalized_hash("SELECT 1;\n\nSELECT 2;\n")
    );
    assert_ne!(
        normalized_hash(plain),
        normalized_hash("\nSELECT 1;\nSELECT 2;\n")
    );
    // It is the SHA-256 of the normalised text.
    assert_eq!(
        normalized_hash("a \r\n\r\nb\r\n\r\n"),
        sha256_hex(b"a\n\nb")
    );
}

// --- chunks and positions ------------------------------------------------------------------

#[test]
fn drizzle_chunks_split_like_drizzle_orm_with_offsets() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let sql = "CREATE TABLE a (id int);\n--> statement-breakpoint\nCREATE INDEX i ON a (id);--> statement-breakpoint\r\nALTER TABLE a ADD b int;\n";
    write(
        d,
        JOURNAL_PATH,
        journal("7", "postgresql", &[("0000_x", 1)]),
    );
    write(d, "0000_x.sql", sql);
    let set = load(d).unwrap();
    let m = &set.migrations[0];
    let chunks = m.chunks();
    // Same pieces as JavaScript's `sql.split("--> statement-breakpoint")`.
    let texts: Vec<_> = chunks.iter().map(|c| c.text).collect();
    assert_eq!(
        texts,
        [
            "CREATE TABLE a (id int);\n",
            "\nCREATE INDEX i ON a (id);",
            "\r\nALTER TABLE a ADD b int;\n"
        ]
    );
    for c in &chunks {
        assert_eq!(&m.sql[c.offset..c.offset + c.text.len()], c.text);
    }
    assert_eq!(chunks[1].offset, 49);
    // PostgreSQL position 2 in chunk 1 = "C" of CREATE INDEX, line 3 column 1.
    let off = chunks[1].file_offset(2);
    assert_eq!(line_col(&m.sql, off), (3, 1));
    assert_eq!(
        line_at(&m.sql, 3),
        "CREATE INDEX i ON a (id);--> statement-breakpoint"
    );
    assert_eq!(line_at(&m.sql, 4), "ALTER TABLE a ADD b int;");
    // "ALTER" at position 3 of chunk 2 (after \r\n): line 4 column 1.
    assert_eq!(line_col(&m.sql, chunks[2].file_offset(3)), (4, 1));
}

#[test]
fn native_is_one_chunk_and_bom_is_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(
        d,
        "0001_a.sql",
        "\u{feff}SELECT 1;\n--> statement-breakpoint\nSELECT 2;\n",
    );
    let set = load(d).unwrap();
    let m = &set.migrations[0];
    let chunks = m.chunks();
    assert_eq!(chunks.len(), 1);
    assert_eq!(chunks[0].offset, 3);
    assert!(chunks[0].text.starts_with("SELECT 1;"));
    assert_eq!(line_col(&m.sql, chunks[0].file_offset(1)), (1, 1));
}

#[test]
fn trailing_breakpoint_gives_blank_last_chunk() {
    let m = Migration {
        id: "0000_x".into(),
        index: 0,
        path: PathBuf::from("0000_x.sql"),
        when: Some(1),
        sql: "SELECT 1;--> statement-breakpoint\n".into(),
        hash: String::new(),
        breakpoints: true,
        layout: Layout::DrizzleJournal,
        down: None,
        directives: Directives::default(),
        repeatable: false,
    };
    let chunks = m.chunks();
    assert_eq!(chunks.len(), 2);
    assert!(!chunks[0].is_blank());
    assert!(chunks[1].is_blank());
    assert_eq!(chunks[1].offset, m.sql.len() - 1);
}

// --- directives --------------------------------------------------------------------------

#[test]
fn directives_parse_from_leading_comments() {
    let tmp = tempfile::tempdir().unwrap();
    let sql = "\u{feff}-- Add the email index.\r\n\
               -- pgkeel:no-transaction\r\n\
               \r\n\
               --pgkeel:lock-timeout 5s\n\
               -- pgkeel:statement-timeout off\n\
               -- pgkeel:retries 3\n\
               CREATE INDEX CONCURRENTLY i ON t (email);\n\
               -- a later comment mentioning pgkeel: is fine\n";
    write(tmp.path(), "0001_idx.sql", sql);
    let set = load(tmp.path()).unwrap();
    let d = &set.migrations[0].directives;
    assert_eq!(
        *d,
        Directives {
            no_transaction: true,
            lock_timeout: Some(Timeout::After(Duration::from_secs(5))),
            statement_timeout: Some(Timeout::Off),
            retries: Some(3),
            irreversible: false,
        }
    );
    let json = serde_json::to_value(d).unwrap();
    assert_eq!(json["lock_timeout"], "5s");
    assert_eq!(json["statement_timeout"], "off");
    assert_eq!(
        Timeout::After(Duration::from_millis(1500)).to_string(),
        "1500ms"
    );
    assert_eq!(Timeout::After(Duration::from_secs(120)).to_string(), "2min");
    assert_eq!(Timeout::After(Duration::from_secs(5)).pg_value(), "5000ms");
    assert_eq!(Timeout::Off.pg_value(), "0");
}

#[test]
fn no_directives_is_default() {
    let d = parse_directives(Path::new("x.sql"), "SELECT 1;\n-- pgkeel", false).unwrap();
    assert_eq!(d, Directives::default());
}

fn directive_error(sql: &str) -> (usize, String, DirectiveProblem) {
    match parse_directives(Path::new("m.sql"), sql, false) {
        Err(SourceError::BadDirective {
            path,
            line,
            text,
            problem,
        }) => {
            assert_eq!(path, Path::new("m.sql"));
            (line, text, problem)
        }
        other => panic!("expected BadDirective for {sql:?}, got {other:?}"),
    }
}

#[test]
fn lint_suppressions_may_stand_anywhere_and_repeat() {
    let text = "-- pgkeel: no-transaction\n-- pgkeel:ignore-file prefer-jsonb legacy\nCREATE TABLE a (b json);\n-- pgkeel:ignore drop-table scratch\nDROP TABLE c;\n-- pgkeel:ignore drop-table again\nDROP TABLE d;\n";
    let d = directives_of(Path::new("m.sql"), text).unwrap();
    assert!(d.no_transaction);
}

#[test]
fn bad_directives_are_errors() {
    let (line, text, problem) = directive_error("-- hello\n-- pgkeel:no-transactoin\nSELECT 1;");
    assert_eq!((line, text.as_str()), (2, "-- pgkeel:no-transactoin"));
    assert_eq!(
        problem,
        DirectiveProblem::Unknown {
            name: "no-transactoin".into()
        }
    );
    let (_, _, p) = directive_error("-- pgkeel:lock-timeout 5 seconds\n");
    assert_eq!(
        p,
        DirectiveProblem::BadValue {
            name: "lock-timeout".into(),
            value: "5 seconds".into()
        }
    );
    let (_, _, p) = directive_error("-- pgkeel:retries\n");
    assert_eq!(
        p,
        DirectiveProblem::MissingValue {
            name: "retries".into()
        }
    );
    let (_, _, p) = directive_error("-- pgkeel:retries -1\n");
    assert!(matches!(p, DirectiveProblem::BadValue { .. }));
    let (_, _, p) = directive_error("-- pgkeel:irreversible yes\n");
    assert_eq!(
        p,
        DirectiveProblem::UnexpectedValue {
            name: "irreversible".into()
        }
    );
    let (line, _, p) = directive_error("-- pgkeel:retries 1\n-- pgkeel:retries 2\n");
    assert_eq!(
        (line, p),
        (
            2,
            DirectiveProblem::Duplicate {
                name: "retries".into()
            }
        )
    );
    let (line, _, p) = directive_error("SELECT 1;\n  -- pgkeel:no-transaction\n");
    assert_eq!((line, p), (2, DirectiveProblem::NotInHeader));
    let e = parse_directives(Path::new("d.sql"), "-- pgkeel:irreversible\n", true).unwrap_err();
    assert!(matches!(
        e,
        SourceError::BadDirective {
            problem: DirectiveProblem::NotAllowedInDown { .. },
            ..
        }
    ));
    // The message lists the valid directives.
    let msg = SourceError::BadDirective {
        path: "m.sql".into(),
        line: 2,
        text: "-- pgkeel:x".into(),
        problem: DirectiveProblem::Unknown { name: "x".into() },
    }
    .to_string();
    assert!(
        msg.starts_with("m.sql:2: unknown directive pgkeel:x"),
        "{msg}"
    );
    assert!(msg.contains("-- pgkeel:lock-timeout DURATION"), "{msg}");
}

#[test]
fn bad_directive_in_folder_names_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let path = write(
        tmp.path(),
        "0001_a.sql",
        "-- pgkeel:lock-timeout forever\nSELECT 1;\n",
    );
    match load(tmp.path()).unwrap_err() {
        SourceError::BadDirective { path: p, line, .. } => {
            assert_eq!((p, line), (path, 1));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn irreversible_with_down_file_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let up = write(
        tmp.path(),
        "0001_a.sql",
        "-- pgkeel:irreversible\nDROP TABLE t;\n",
    );
    let down = write(tmp.path(), "0001_a.down.sql", "CREATE TABLE t ();\n");
    match load(tmp.path()).unwrap_err() {
        SourceError::IrreversibleWithDown { path, down: d } => {
            assert_eq!((path, d), (up, down));
        }
        other => panic!("{other:?}"),
    }
}

// --- errors ------------------------------------------------------------------------------

#[test]
fn missing_folder_is_not_found_with_hint() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("migrations");
    let e = load(&dir).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(&e, SourceError::NotFound { path } if *path == dir));
    assert!(
        msg.contains("pass --migrations DIR or create it with `pgkeel new NAME`"),
        "{msg}"
    );
}

#[test]
fn file_instead_of_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "m", "x");
    assert!(
        matches!(load(&file).unwrap_err(), SourceError::NotADirectory { path } if path == file)
    );
}

#[test]
fn malformed_journal_reports_line_and_column() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let path = write(
        d,
        JOURNAL_PATH,
        "{\n  \"version\": \"7\",\n  \"entries\": [,]\n}\n",
    );
    match load(d).unwrap_err() {
        SourceError::MalformedJournal {
            path: p,
            line,
            column,
            reason,
        } => {
            assert_eq!(p, path);
            assert_eq!((line, column), (3, 15));
            assert!(!reason.contains("at line"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // Valid JSON without drizzle's fields is malformed too.
    write(d, JOURNAL_PATH, "{\"version\": \"7\"}");
    assert!(matches!(
        load(d).unwrap_err(),
        SourceError::MalformedJournal { line: 1, .. }
    ));
}

#[test]
fn unknown_dialect_is_an_error() {
    for dialect in ["mysql", "sqlite"] {
        let tmp = tempfile::tempdir().unwrap();
        let path = write(tmp.path(), JOURNAL_PATH, journal("7", dialect, &[]));
        match load(tmp.path()).unwrap_err() {
            SourceError::UnsupportedDialect {
                path: p,
                dialect: d,
            } => {
                assert_eq!((p, d.as_str()), (path, dialect));
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn journal_entry_without_file() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(
        d,
        JOURNAL_PATH,
        journal("7", "postgresql", &[("0000_a", 1), ("0001_b", 2)]),
    );
    write(d, "0000_a.sql", "SELECT 1;");
    match load(d).unwrap_err() {
        SourceError::MissingMigrationFile {
            tag,
            expected,
            journal,
        } => {
            assert_eq!(tag, "0001_b");
            assert_eq!(expected, d.join("0001_b.sql"));
            assert_eq!(journal, d.join(JOURNAL_PATH));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn stray_sql_file_beside_the_journal_is_a_warning_not_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(
        d,
        JOURNAL_PATH,
        journal("7", "postgresql", &[("0000_a", 1)]),
    );
    write(d, "0000_a.sql", "SELECT 1;");
    let stray = write(d, "0001_b.sql", "SELECT 2;");
    let down = write(d, "0002_c.down.sql", "SELECT 3;");
    write(d, "README.md", "notes");
    write(d, "0000_a.sql~", "backup");
    write(d, "meta/0000_snapshot.json", "{}");
    let set = load(d).unwrap();
    assert_eq!(
        set.migrations.len(),
        1,
        "drizzle-orm runs only the journal's entries"
    );
    let got: Vec<(PathBuf, FolderWarningKind)> = set
        .warnings
        .iter()
        .map(|w| (w.path.clone(), w.kind))
        .collect();
    assert_eq!(
        got,
        [
            (stray, FolderWarningKind::NotInJournal),
            (down, FolderWarningKind::DownNotInJournal)
        ]
    );
    assert!(set.warnings[0]
        .to_string()
        .contains("drizzle-orm never runs it"));
}

#[test]
fn duplicate_journal_tags() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let j = r#"{"version":"7","dialect":"postgresql","entries":[
        {"idx":0,"when":1,"tag":"0000_a","breakpoints":true},
        {"idx":1,"when":2,"tag":"0000_a","breakpoints":true}]}"#;
    write(d, JOURNAL_PATH, j);
    write(d, "0000_a.sql", "SELECT 1;");
    match load(d).unwrap_err() {
        SourceError::DuplicateJournalTag {
            tag,
            first_idx,
            second_idx,
            ..
        } => assert_eq!((tag.as_str(), first_idx, second_idx), ("0000_a", 0, 1)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn journal_tag_must_be_a_file_name() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(
        d,
        JOURNAL_PATH,
        journal("7", "postgresql", &[("../evil", 1)]),
    );
    assert!(matches!(
        load(d).unwrap_err(),
        SourceError::BadJournalTag { idx: 0, tag, .. } if tag == "../evil"
    ));
}

#[test]
fn duplicate_native_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let a = write(d, "0003_add_a.sql", "SELECT 1;");
    let b = write(d, "0003_add_b.sql", "SELECT 2;");
    write(d, "0001_init.sql", "SELECT 0;");
    match load(d).unwrap_err() {
        SourceError::DuplicateId { id, first, second } => {
            assert_eq!((id.as_str(), first, second), ("0003", a, b));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn invalid_utf8_is_located() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let path = write(d, "0001_a.sql", b"SELECT 1;\nSELECT '\xE9t\xE9';\n");
    match load(d).unwrap_err() {
        SourceError::InvalidUtf8 {
            path: p,
            line,
            column,
            byte_offset,
        } => {
            assert_eq!(p, path);
            assert_eq!((line, column, byte_offset), (2, 9, 18));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_native_names() {
    for name in [
        "001_short.sql",
        "0001-dash.sql",
        "0001_Upper.sql",
        "add_users.sql",
        "0001_.sql",
        "0001_a b.sql",
        "0001_a.SQL",
        "0001.sql",
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let path = write(tmp.path(), name, "SELECT 1;");
        let e = load(tmp.path()).unwrap_err();
        assert!(e.to_string().contains("NNNN_descriptive_name.sql"), "{e}");
        match e {
            SourceError::BadFileName { path: p } => assert_eq!(p, path, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn native_down_without_up() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(d, "0001_a.sql", "SELECT 1;");
    let down = write(d, "0002_b.down.sql", "SELECT 2;");
    match load(d).unwrap_err() {
        SourceError::DownWithoutUp { path, expected_up } => {
            assert_eq!((path, expected_up), (down, d.join("0002_b.sql")));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn v1_folder_without_migration_sql() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(d, "20240101000000_a/migration.sql", "SELECT 1;");
    write(d, "20240102000000_b/snapshot.json", "{}");
    match load(d).unwrap_err() {
        SourceError::MissingFolderMigration { folder, expected } => {
            assert_eq!(folder, d.join("20240102000000_b"));
            assert_eq!(expected, d.join("20240102000000_b/migration.sql"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn v1_folder_with_impossible_timestamp() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "20241301000000_a/migration.sql", "SELECT 1;");
    write(tmp.path(), "20241301000000_a/snapshot.json", "{}");
    assert!(matches!(
        load(tmp.path()).unwrap_err(),
        SourceError::BadFolderTimestamp { timestamp, .. } if timestamp == "20241301000000"
    ));
}

#[test]
fn io_error_carries_path() {
    let tmp = tempfile::tempdir().unwrap();
    // A dangling symlink named like a migration cannot be read.
    #[cfg(unix)]
    {
        let link = tmp.path().join("0001_a.sql");
        std::os::unix::fs::symlink(tmp.path().join("missing"), &link).unwrap();
        match load(tmp.path()).unwrap_err() {
            SourceError::Io { path, .. } => assert_eq!(path, link),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn errors_do_not_also_expose_a_source() {
    use std::error::Error as _;
    let e = SourceError::Io {
        path: "x".into(),
        error: io::Error::other("boom"),
    };
    assert!(e.to_string().contains("boom"));
    assert!(e.source().is_none());
}

// --- pgkeel new ---------------------------------------------------------------------------

#[test]
fn slugify_names() {
    assert_eq!(slugify("Add users table").unwrap(), "add_users_table");
    assert_eq!(slugify("  add--users__x- ").unwrap(), "add_users_x");
    assert_eq!(slugify("v2_index").unwrap(), "v2_index");
    assert!(matches!(
        slugify(" - ").unwrap_err(),
        SourceError::BadMigrationName {
            problem: NameProblem::Empty,
            ..
        }
    ));
    assert!(matches!(
        slugify("add/users").unwrap_err(),
        SourceError::BadMigrationName {
            problem: NameProblem::BadChar('/'),
            ..
        }
    ));
    // Accented Latin letters are spelled in ASCII; other scripts are refused, naming the
    // character and what a name may hold.
    assert_eq!(slugify("Ünïcode").unwrap(), "unicode");
    assert_eq!(slugify("Straße café").unwrap(), "strasse_cafe");
    assert_eq!(slugify("Œuvre Łódź").unwrap(), "oeuvre_lodz");
    let err = slugify("用户表").unwrap_err();
    assert!(matches!(
        err,
        SourceError::BadMigrationName {
            problem: NameProblem::BadChar('用'),
            ..
        }
    ));
    let text = err.to_string();
    assert!(
        text.contains("no ASCII spelling") && text.contains("ASCII letters"),
        "{text}"
    );
}

#[test]
fn new_native_creates_folder_and_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("migrations");
    let first = new_migration(&dir, "Create users", now()).unwrap();
    assert_eq!(first, dir.join("0001_create_users.sql"));
    let text = fs::read_to_string(&first).unwrap();
    assert!(text.contains("no-transaction"));
    assert!(text.contains("lock-timeout DURATION"));
    let second = new_migration(&dir, "add-index", now()).unwrap();
    assert_eq!(second, dir.join("0002_add_index.sql"));
    // The header's directive list is inert and the folder loads.
    let set = load(&dir).unwrap();
    assert_eq!(set.layout, Layout::Native);
    assert_eq!(set.len(), 2);
    assert_eq!(set.migrations[0].directives, Directives::default());
    // Numbering follows the highest existing number.
    write(&dir, "0041_manual.sql", "SELECT 1;");
    assert_eq!(
        new_migration(&dir, "next", now()).unwrap(),
        dir.join("0042_next.sql")
    );
}

#[test]
fn new_native_refuses_to_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("0001_a.sql");
    create_new_file(&path, "x").unwrap();
    assert!(matches!(
        create_new_file(&path, "y").unwrap_err(),
        SourceError::AlreadyExists { path: p } if p == path
    ));
    assert_eq!(fs::read_to_string(&path).unwrap(), "x");
}

#[test]
fn new_in_drizzle_journal_appends_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let original = journal("7", "postgresql", &[("0000_brave_hulk", 1_700_000_000_000)]);
    write(d, JOURNAL_PATH, &original);
    write(d, "0000_brave_hulk.sql", CREATE_A);
    let path = new_migration(d, "add posts", now()).unwrap();
    assert_eq!(path, d.join("0001_add_posts.sql"));
    let text = fs::read_to_string(d.join(JOURNAL_PATH)).unwrap();
    let expected = journal(
        "7",
        "postgresql",
        &[
            ("0000_brave_hulk", 1_700_000_000_000),
            ("0001_add_posts", now().timestamp_millis()),
        ],
    );
    // Byte for byte what drizzle-kit's JSON.stringify(journal, null, 2) writes.
    assert_eq!(text, expected);
    assert!(text.contains("\n  \"version\": \"7\",\n  \"dialect\": \"postgresql\""));
    let set = load(d).unwrap();
    let m = set.get("0001_add_posts").unwrap();
    assert_eq!(m.when, Some(now().timestamp_millis()));
    assert_eq!(m.index, 1);
    assert!(m.breakpoints);
    // The header does not contain drizzle's marker, so it is one chunk.
    assert_eq!(m.chunks().len(), 1);
}

#[test]
fn new_in_v5_journal_keeps_version_and_unknown_fields() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let original = "{\n\t\"version\": \"5\",\n\t\"dialect\": \"pg\",\n\t\"entries\": [],\n\t\"custom\": 1\n}\n";
    write(d, JOURNAL_PATH, original);
    let path = new_migration(d, "init", now()).unwrap();
    assert_eq!(path, d.join("0000_init.sql"));
    let text = fs::read_to_string(d.join(JOURNAL_PATH)).unwrap();
    assert!(text.ends_with("}\n"));
    assert!(text.starts_with("{\n\t\"version\": \"5\",\n\t\"dialect\": \"pg\",\n\t\"entries\": [\n\t\t{\n\t\t\t\"idx\": 0,\n\t\t\t\"version\": \"5\","), "{text}");
    assert!(text.contains("\"custom\": 1"));
    let set = load(d).unwrap();
    assert_eq!(set.migrations[0].id, "0000_init");
}

#[test]
fn new_in_journal_refuses_existing_file_and_keeps_journal() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let original = journal("7", "postgresql", &[]);
    write(d, JOURNAL_PATH, &original);
    // A file drizzle would call 0000_x but not in the journal yet.
    let existing = write(d, "0000_x.sql", "SELECT 1;");
    assert!(matches!(
        new_migration(d, "x", now()).unwrap_err(),
        SourceError::AlreadyExists { path } if path == existing
    ));
    assert_eq!(fs::read_to_string(d.join(JOURNAL_PATH)).unwrap(), original);
    assert_eq!(fs::read_to_string(&existing).unwrap(), "SELECT 1;");
}

#[test]
fn new_in_journal_with_other_dialect_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), JOURNAL_PATH, journal("7", "mysql", &[]));
    assert!(matches!(
        new_migration(tmp.path(), "x", now()).unwrap_err(),
        SourceError::UnsupportedDialect { .. }
    ));
}

#[test]
fn new_in_drizzle_folders() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(d, "20240101000000_init/migration.sql", "SELECT 1;");
    write(d, "20240101000000_init/snapshot.json", "{}");
    let path = new_migration(d, "Add Posts", now()).unwrap();
    assert_eq!(path, d.join("20250304050607_add_posts/migration.sql"));
    let set = load(d).unwrap();
    assert_eq!(set.len(), 2);
    assert_eq!(set.migrations[1].when, Some(now().timestamp_millis()));
    // Same second again: moved one second later so it still sorts last.
    let again = new_migration(d, "add posts", now()).unwrap();
    assert_eq!(again, d.join("20250304050608_add_posts/migration.sql"));
    // A folder from the future (clock skew) is not overtaken.
    write(d, "20300101000000_future/migration.sql", "SELECT 1;");
    let after = new_migration(d, "x", now()).unwrap();
    assert_eq!(after, d.join("20300101000001_x/migration.sql"));
    assert_eq!(
        load(d).unwrap().migrations.last().unwrap().id,
        "20300101000001_x"
    );
}

#[test]
fn new_in_journal_keeps_when_increasing() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let future = now().timestamp_millis() + 60_000;
    write(
        d,
        JOURNAL_PATH,
        journal("7", "postgresql", &[("0000_a", future)]),
    );
    write(d, "0000_a.sql", "SELECT 1;");
    new_migration(d, "b", now()).unwrap();
    let set = load(d).unwrap();
    assert_eq!(set.get("0001_b").unwrap().when, Some(future + 1));
}

#[test]
fn loads_a_thousand_files_quickly() {
    let tmp = tempfile::tempdir().unwrap();
    let body = "CREATE TABLE t (id int);\n".repeat(40);
    for i in 0..1000 {
        write(tmp.path(), &format!("{i:04}_m.sql"), &body);
    }
    let started = std::time::Instant::now();
    let set = load(tmp.path()).unwrap();
    assert_eq!(set.len(), 1000);
    assert_eq!(set.migrations[999].id, "0999_m");
    // Generous bound for debug builds on a busy machine; typically a few tens of ms.
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn new_in_a_drizzle_journal_follows_drizzle_kits_prefix() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    fs::create_dir_all(d.join("meta")).unwrap();
    fs::write(
        d.join(JOURNAL_PATH),
        r#"{"version":"7","dialect":"postgresql","entries":[{"idx":0,"version":"7","when":1700000000000,"tag":"20231114221320_init","breakpoints":true}]}"#,
    )
    .unwrap();
    fs::write(
        d.join("20231114221320_init.sql"),
        "CREATE TABLE a (id int);\n",
    )
    .unwrap();
    let at = now();
    let p = new_migration_with(d, "add posts", at, TagPrefix::Timestamp).unwrap();
    let want = format!("{}_add_posts.sql", at.format("%Y%m%d%H%M%S"));
    assert_eq!(p.file_name().unwrap().to_str().unwrap(), want);
    let p = new_migration_with(d, "more", at, TagPrefix::Unix).unwrap();
    let name = p.file_name().unwrap().to_str().unwrap().to_string();
    assert!(
        name.ends_with("_more.sql") && name.len() == "1764640981_more.sql".len(),
        "{name}"
    );
    let p = new_migration_with(d, "plain", at, TagPrefix::None).unwrap();
    assert_eq!(p.file_name().unwrap(), "plain.sql");
    let set = load(d).unwrap();
    assert_eq!(set.len(), 4, "every new entry is in the journal");
    assert_eq!(TagPrefix::parse("supabase"), Some(TagPrefix::Timestamp));
    assert_eq!(TagPrefix::parse("Index"), None);
}
