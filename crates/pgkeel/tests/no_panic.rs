//! No input makes the functions that read migration text panic: the statement splitter, the
//! folder loader (native and drizzle journal layouts), `migrate::parse`, rollback generation,
//! lint and directive parsing. Inputs come from the hazard grammar (`hazards/mod.rs`, shared with
//! the CLI's psql differential test) with noise on top: random unicode, truncation at random
//! char boundaries, and quote / comment / dollar / CR characters inserted at random places.
//!
//! No database. Runs 512 cases by default (`PROPTEST_CASES` overrides) from a fixed seed
//! (`PROPTEST_RNG_SEED` overrides: set it to explore further); a failure is shrunk, saved in
//! `tests/no_panic.proptest-regressions` for the next run, and reported with the function that
//! panicked, where, and the whole input.

#[path = "hazards/mod.rs"]
mod hazards;

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, RngSeed, TestCaseError};

/// A change made to a generated file.
#[derive(Debug, Clone)]
enum Noise {
    /// Insert the string at (position % (len + 1)), moved back to a char boundary.
    Insert(usize, String),
    /// Cut the text at (position % (len + 1)), moved back to a char boundary.
    Truncate(usize),
    /// Remove `len` chars starting at char (position % (chars + 1)).
    Remove(usize, u8),
}

fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "$", "$$", "$fn$", "$1", "'", "''", "E'\\", "\\", "\"", "--", "-- ñé\n", "/*", "*/",
            ";", ";;", "\r", "\n", "\r\n", "ñ", "é", "🦀", "\u{feff}", "\0", "BEGIN;", "COMMIT;",
            "DO $$--ñé\nBEGIN ", " END $$", "--> statement-breakpoint", "-- pgkeel:no-transaction\n",
            "-- pgkeel:lock-timeout ñ\n", "-- pgkeel:ignore ", "CONCURRENTLY ",
        ])
        .prop_map(String::from),
        1 => any::<String>(),
        1 => prop::collection::vec(any::<char>(), 0..6).prop_map(|v| v.into_iter().collect()),
    ]
}

fn noise() -> impl Strategy<Value = Noise> {
    prop_oneof![
        6 => (any::<usize>(), token()).prop_map(|(p, s)| Noise::Insert(p, s)),
        1 => any::<usize>().prop_map(Noise::Truncate),
        1 => (any::<usize>(), 1u8..8).prop_map(|(p, n)| Noise::Remove(p, n)),
    ]
}

/// The largest char boundary of `s` not after `at`.
fn floor_boundary(s: &str, at: usize) -> usize {
    let mut i = at.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn apply(text: &mut String, noise: &[Noise]) {
    for n in noise {
        match n {
            Noise::Insert(p, s) => {
                let at = floor_boundary(text, p % (text.len() + 1));
                text.insert_str(at, s);
            }
            Noise::Truncate(p) => {
                let at = floor_boundary(text, p % (text.len() + 1));
                text.truncate(at);
            }
            Noise::Remove(p, n) => {
                let chars: Vec<char> = text.chars().collect();
                let at = p % (chars.len() + 1);
                let end = (at + usize::from(*n)).min(chars.len());
                *text = chars[..at].iter().chain(&chars[end..]).collect();
            }
        }
    }
}

thread_local! {
    /// Set while a guarded call runs: the panic hook records the panic here instead of printing.
    static CAUGHT: RefCell<Option<Option<String>>> = const { RefCell::new(None) };
}

fn install_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let guarded = CAUGHT.with(|c| {
                let mut c = c.borrow_mut();
                if c.is_some() {
                    let at = info
                        .location()
                        .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
                        .unwrap_or_default();
                    let msg = info
                        .payload()
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| info.payload().downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    *c = Some(Some(format!("at {at}: {msg}")));
                    true
                } else {
                    false
                }
            });
            if !guarded {
                default(info);
            }
        }));
    });
}

/// A case's failure: which function panicked, where, and the whole input. An `Err` (not a
/// panic) so that proptest shrinks quietly and prints only the minimal case.
type Checked<T> = Result<T, TestCaseError>;

/// Runs `f`; a panic inside it fails the case with `what`, the panic and the whole input.
fn guard<T>(what: &str, input: &str, f: impl FnOnce() -> T) -> Checked<T> {
    CAUGHT.with(|c| *c.borrow_mut() = Some(None));
    let r = catch_unwind(AssertUnwindSafe(f));
    let caught = CAUGHT.with(|c| c.borrow_mut().take()).flatten();
    r.map_err(|_| {
        TestCaseError::fail(format!(
            "{what} panicked {}\ninput ({} bytes): {input:?}",
            caught.unwrap_or_default(),
            input.len()
        ))
    })
}

fn parse_and_generate(what: &str, input: &str, dir: &Path) -> Checked<()> {
    let Ok(set) = guard(&format!("source::load ({what})"), input, || {
        pgkeel::source::load(dir)
    })?
    else {
        return Ok(());
    };
    guard(&format!("lint::lint_set ({what})"), input, || {
        pgkeel::lint::lint_set(&set, &Default::default())
    })?;
    for m in &set.migrations {
        guard(&format!("Migration::chunks ({what})"), input, || {
            for c in m.chunks() {
                for p in [0, 1, 2, c.text.len(), c.text.len() + 1, usize::MAX] {
                    pgkeel::location::line_col(&m.sql, c.file_offset(p));
                }
            }
        })?;
        guard(
            &format!("Migration::normalized_hash ({what})"),
            input,
            || m.normalized_hash(),
        )?;
        let Ok(stmts) = guard(&format!("migrate::parse ({what})"), input, || {
            pgkeel::migrate::parse(m)
        })?
        else {
            continue;
        };
        guard(&format!("rollback::generate ({what})"), input, || {
            pgkeel::rollback::generate(&stmts);
            pgkeel::rollback::columns_altered(&stmts);
        })?;
    }
    Ok(())
}

const JOURNAL: &str = r#"{"version":"7","dialect":"postgresql","entries":[{"idx":0,"version":"7","when":1700000000000,"tag":"0000_x","breakpoints":true}]}"#;

fn check(native: &str, drizzle: &str, byte: Option<(usize, u8)>) -> Checked<()> {
    let path = Path::new("0001_x.sql");
    match guard("sql::split", native, || pgkeel::sql::split(native, 0))? {
        Ok(stmts) => {
            // Statements straight from the splitter (transaction control included, which
            // `migrate::parse` may refuse before rollback generation would see it).
            guard("rollback::generate (split)", native, || {
                pgkeel::rollback::generate(&stmts);
                pgkeel::rollback::columns_altered(&stmts);
            })?;
            guard("source::line_col (statement offsets)", native, || {
                for s in &stmts {
                    pgkeel::location::line_col(native, s.offset);
                    pgkeel::location::line_col(native, s.offset + s.text.len());
                }
            })?;
        }
        Err(e) => {
            guard("source::line_col (syntax error offset)", native, || {
                let (line, _) = pgkeel::location::line_col(native, e.offset);
                pgkeel::location::line_at(native, line);
            })?;
        }
    }
    guard("sql::table_level_only", native, || {
        pgkeel::sql::table_level_only(native)
    })?;
    guard("source::normalized_hash", native, || {
        pgkeel::source::normalized_hash(native)
    })?;
    let _ = guard("sql::split (offset base)", native, || {
        pgkeel::sql::split(native, 1000)
    })?;
    for no_tx in [false, true] {
        guard(
            &format!("lint::lint_file (no_transaction={no_tx})"),
            native,
            || pgkeel::lint::lint_file(path, native, no_tx, &Default::default()),
        )?;
    }
    let _ = guard("source::directives_of", native, || {
        pgkeel::source::directives_of(path, native)
    })?;

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("0001_x.sql"), native).unwrap();
    parse_and_generate("native", native, dir.path())?;
    // The same text as a rollback file beside a plain migration (directives of a down file).
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("0001_x.sql"), "SELECT 1;\n").unwrap();
    std::fs::write(dir.path().join("0001_x.down.sql"), native).unwrap();
    parse_and_generate("native down file", native, dir.path())?;

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("meta")).unwrap();
    std::fs::write(dir.path().join("meta/_journal.json"), JOURNAL).unwrap();
    std::fs::write(dir.path().join("0000_x.sql"), drizzle).unwrap();
    parse_and_generate("drizzle journal", drizzle, dir.path())?;

    if let Some((p, b)) = byte {
        // Raw bytes (possibly not UTF-8) on disk: the loader must refuse them, not panic.
        let mut bytes = native.as_bytes().to_vec();
        bytes.insert(p % (bytes.len() + 1), b);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("0001_x.sql"), &bytes).unwrap();
        let shown = String::from_utf8_lossy(&bytes).into_owned();
        parse_and_generate("native, raw bytes", &shown, dir.path())?;
    }
    Ok(())
}

fn config() -> Config {
    let mut c = Config::default();
    // Failures are saved beside this file, in `tests/no_panic.proptest-regressions`, and
    // replayed first on the next run.
    if c.failure_persistence.is_some() {
        c.failure_persistence = Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        )));
    }
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = 512;
    }
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        c.rng_seed = RngSeed::Fixed(0x9e37_79b9_2024_0001);
    }
    c
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn text_readers_never_panic(
        seed in any::<u64>(),
        breakpoints in any::<u64>(),
        noise in prop::collection::vec(noise(), 0..6),
        byte in proptest::option::weighted(0.2, (any::<usize>(), any::<u8>())),
    ) {
        install_hook();
        let file = hazards::single_file(seed);
        let mut native = file.render();
        let mut drizzle = file.render_drizzle(breakpoints);
        apply(&mut native, &noise);
        apply(&mut drizzle, &noise);
        check(&native, &drizzle, byte)?;
    }

    #[test]
    fn text_readers_never_panic_on_arbitrary_text(text in any::<String>(), noise in prop::collection::vec(noise(), 0..4)) {
        install_hook();
        let mut text = text;
        apply(&mut text, &noise);
        check(&text, &text, None)?;
    }
}

/// Every probe and a spread of generated files go through without noise too (the inputs the
/// differential test uses, exactly).
#[test]
fn grammar_files_never_panic() {
    install_hook();
    for probe in hazards::probes() {
        for f in &probe.case.files {
            let text = f.render();
            if let Err(e) = check(&text, &f.render_drizzle(7), None) {
                panic!("{}: {e}", probe.name);
            }
        }
    }
    for i in 0..64 {
        for f in &hazards::case(1, i).files {
            let text = f.render();
            if let Err(e) = check(&text, &f.render_drizzle(i), None) {
                panic!("case {i} of seed 1, {}: {e}", f.name);
            }
        }
    }
}
