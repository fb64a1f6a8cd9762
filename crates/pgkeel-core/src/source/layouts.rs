//! Detecting a folder's layout, and reading the folders other runners write: golang-migrate,
//! Prisma, Supabase CLI, sqlx, dbmate, goose and Flyway, each ordered, named and wrapped as its
//! own tool does (the drizzle and native loaders are in the parent module).
//!
//! Sections: dbmate and goose keep the up and the down migration in one file. The migration's
//! text ([`Migration::sql`]) is then the file with the other section blanked (every character
//! but line breaks turned into a space), so statement offsets, lines and columns stay the
//! file's own.

use super::*;

// ---------------------------------------------------------------------------------------------
// Detection
// ---------------------------------------------------------------------------------------------

/// `<digits>_` at the start of a file name: the version and the rest.
fn numbered(name: &str) -> Option<(&str, &str)> {
    let digits = name.bytes().take_while(u8::is_ascii_digit).count();
    (digits > 0 && name[digits..].starts_with('_')).then(|| (&name[..digits], &name[digits + 1..]))
}

/// `V1__x.sql`, `V1_2__x.sql`, `U3__x.sql` or `R__x.sql`.
fn flyway_name(name: &str) -> Option<(char, &str, &str)> {
    let stem = name.strip_suffix(".sql")?;
    let kind = stem.chars().next()?;
    let rest = &stem[1..];
    let (version, desc) = rest.split_once("__")?;
    match kind {
        'R' if version.is_empty() => Some((kind, version, desc)),
        'V' | 'U'
            if !version.is_empty()
                && version.starts_with(|c: char| c.is_ascii_digit())
                && version
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b == b'.' || b == b'_') =>
        {
            Some((kind, version, desc))
        }
        _ => None,
    }
}

fn is_up_down(name: &str) -> bool {
    numbered(name).is_some() && (name.ends_with(".up.sql") || name.ends_with(".down.sql"))
}

/// The marker a dbmate or goose file carries, from its text.
fn section_tool(text: &str) -> Option<Layout> {
    for (_, line) in numbered_lines(text) {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix("--") {
            let rest = rest.trim_start();
            if rest.starts_with("migrate:up") || rest.starts_with("migrate:down") {
                return Some(Layout::Dbmate);
            }
            if rest.starts_with("+goose") {
                return Some(Layout::Goose);
            }
        }
    }
    None
}

fn ambiguous(dir: &Path, candidates: Vec<Layout>, why: &str) -> SourceError {
    SourceError::AmbiguousLayout {
        dir: dir.to_path_buf(),
        candidates,
        why: why.to_owned(),
    }
}

/// Which layout the folder uses, from its files (and, for dbmate and goose, their markers).
pub(super) fn detect(dir: &Path, entries: &[Entry]) -> Result<Layout, SourceError> {
    if dir.join(JOURNAL_PATH).is_file() {
        return Ok(Layout::DrizzleJournal);
    }
    let folders: Vec<&Entry> = entries
        .iter()
        .filter(|e| {
            e.is_dir && (e.path.join("migration.sql").is_file() || v1_timestamp(&e.name).is_some())
        })
        .collect();
    let prisma_lock = dir.join(PRISMA_LOCK).is_file();
    if prisma_lock {
        return Ok(Layout::Prisma);
    }
    if !folders.is_empty() {
        if folders
            .iter()
            .any(|e| e.path.join("snapshot.json").is_file())
        {
            return Ok(Layout::DrizzleFolders);
        }
        return Err(ambiguous(
            dir,
            vec![Layout::DrizzleFolders, Layout::Prisma],
            "one folder per migration with migration.sql, but neither Prisma's migration_lock.toml nor drizzle-kit's snapshot.json",
        ));
    }
    let files: Vec<&Entry> = entries
        .iter()
        .filter(|e| !e.is_dir && e.name.to_ascii_lowercase().ends_with(".sql"))
        .collect();
    let flyway = files
        .iter()
        .filter(|e| flyway_name(&e.name).is_some())
        .count();
    let up_down = files.iter().any(|e| e.name.ends_with(".up.sql"));
    let plain: Vec<&&Entry> = files
        .iter()
        .filter(|e| numbered(&e.name).is_some() && !is_up_down(&e.name))
        .collect();
    if flyway > 0 {
        if up_down || !plain.is_empty() {
            return Err(ambiguous(
                dir,
                vec![Layout::Flyway, Layout::GolangMigrate, Layout::Native],
                "Flyway's V<version>__ files beside <version>_name files",
            ));
        }
        return Ok(Layout::Flyway);
    }
    if up_down {
        return Ok(Layout::GolangMigrate);
    }
    let mut tools = Vec::new();
    for e in &plain {
        let (text, _) = read_text(&e.path)?;
        if let Some(tool) = section_tool(&text) {
            if !tools.contains(&tool) {
                tools.push(tool);
            }
        }
    }
    match tools.as_slice() {
        [one] => return Ok(*one),
        [] => {}
        _ => {
            return Err(ambiguous(
                dir,
                tools,
                "some files have dbmate's -- migrate:up sections, others goose's -- +goose Up",
            ))
        }
    }
    let native = files.iter().all(|e| {
        let stem = e
            .name
            .strip_suffix(".down.sql")
            .or_else(|| e.name.strip_suffix(".sql"));
        stem.is_some_and(|s| native_number(s).is_some())
    });
    let in_supabase = dir
        .components()
        .any(|c| c.as_os_str().eq_ignore_ascii_case("supabase"));
    if native && !in_supabase {
        return Ok(Layout::Native);
    }
    // Names pgkeel's rule refuses: another tool's folder when something says which (a
    // `supabase` folder, a Rust crate beside it, the Supabase CLI's 14-digit versions), else
    // pgkeel's own with a typo, which the naming error points at.
    // A file that is not even `<digits>_…` keeps the folder native, so the naming error names
    // it (the Supabase CLI skips such files with a warning, and so does pgkeel there).
    let all_numbered = files.iter().all(|e| numbered(&e.name).is_some());
    if !in_supabase && !all_numbered {
        return Ok(Layout::Native);
    }
    let beside_cargo = dir.parent().is_some_and(|p| p.join("Cargo.toml").is_file());
    let fourteen = plain
        .iter()
        .all(|e| numbered(&e.name).is_some_and(|(v, _)| v.len() == 14));
    Ok(if in_supabase || (fourteen && !beside_cargo) {
        Layout::Supabase
    } else if beside_cargo {
        Layout::Sqlx
    } else {
        Layout::Native
    })
}

// ---------------------------------------------------------------------------------------------
// Numbered files: golang-migrate, sqlx, Supabase, dbmate, goose
// ---------------------------------------------------------------------------------------------

/// The file naming each numbered layout accepts, for warnings.
fn rule(layout: Layout) -> &'static str {
    match layout {
        Layout::GolangMigrate => "<version>_<name>.up.sql / .down.sql",
        Layout::Sqlx => "<version>_<description>.sql or .up.sql / .down.sql",
        Layout::Supabase => "<digits>_<name>.sql",
        Layout::Dbmate => "<version>_<name>.sql",
        Layout::Goose => "<version>_<name>.sql",
        Layout::Flyway => "V<version>__<description>.sql, U<version>__… or R__…",
        _ => "",
    }
}

fn skipped(e: &Entry, layout: Layout) -> FolderWarning {
    FolderWarning {
        path: e.path.clone(),
        kind: FolderWarningKind::NotALayoutFile {
            layout,
            rule: rule(layout),
        },
    }
}

/// A version as a number, for the tools that order by one (golang-migrate: `uint`, sqlx and
/// goose: `i64`); too many digits is an error, as it is for those tools.
fn version_number(path: &Path, version: &str, max: u64) -> Result<u64, SourceError> {
    version
        .parse::<u64>()
        .ok()
        .filter(|v| *v <= max)
        .ok_or_else(|| SourceError::BadVersion {
            path: path.to_path_buf(),
            version: version.to_owned(),
            max,
        })
}

struct Numbered<'a> {
    /// Sort key: the version as a number, or 0 when the tool orders by name.
    number: u64,
    version: &'a str,
    id: &'a str,
    entry: &'a Entry,
}

pub(super) fn load_numbered(
    layout: Layout,
    entries: &[Entry],
    warnings: &mut Vec<FolderWarning>,
) -> Result<Vec<Migration>, SourceError> {
    let mut ups: Vec<Numbered<'_>> = Vec::new();
    let mut downs: HashMap<&str, &Entry> = HashMap::new();
    for e in entries.iter().filter(|e| !e.is_dir) {
        if layout == Layout::Goose && e.name.ends_with(".go") {
            warnings.push(FolderWarning {
                path: e.path.clone(),
                kind: FolderWarningKind::GoMigration,
            });
            continue;
        }
        if !e.name.to_ascii_lowercase().ends_with(".sql") {
            continue;
        }
        let Some((version, _)) = numbered(&e.name) else {
            warnings.push(skipped(e, layout));
            continue;
        };
        let (id, is_down) = match layout {
            Layout::GolangMigrate | Layout::Sqlx | Layout::Supabase => {
                if let Some(stem) = e.name.strip_suffix(".down.sql") {
                    (stem, true)
                } else if let Some(stem) = e.name.strip_suffix(".up.sql") {
                    (stem, false)
                } else if layout != Layout::GolangMigrate {
                    // sqlx's simple migrations; Supabase's files (a `.down.sql` beside one is
                    // pgkeel's rollback, as in its own layout).
                    (e.name.strip_suffix(".sql").unwrap_or(&e.name), false)
                } else {
                    warnings.push(skipped(e, layout));
                    continue;
                }
            }
            _ => (e.name.strip_suffix(".sql").unwrap_or(&e.name), false),
        };
        if is_down {
            downs.insert(id, e);
            continue;
        }
        let number = match layout {
            Layout::GolangMigrate => version_number(&e.path, version, u64::MAX)?,
            Layout::Sqlx | Layout::Goose => version_number(&e.path, version, i64::MAX as u64)?,
            _ => 0,
        };
        ups.push(Numbered {
            number,
            version,
            id,
            entry: e,
        });
    }
    // Supabase and dbmate order by file name (the listing's order); the others by number.
    ups.sort_by(|a, b| (a.number, a.entry.name.as_str()).cmp(&(b.number, b.entry.name.as_str())));
    for pair in ups.windows(2) {
        let same = match layout {
            Layout::Supabase | Layout::Dbmate => pair[0].version == pair[1].version,
            _ => pair[0].number == pair[1].number,
        };
        if same {
            return Err(SourceError::DuplicateId {
                id: pair[0].version.to_owned(),
                first: pair[0].entry.path.clone(),
                second: pair[1].entry.path.clone(),
            });
        }
    }
    let mut migrations = Vec::with_capacity(ups.len());
    for up in &ups {
        let down = downs.remove(up.id).map(|e| e.path.clone());
        let m = match layout {
            Layout::Dbmate | Layout::Goose => read_sectioned(up.id, &up.entry.path, layout)?,
            _ => {
                let found = Found {
                    id: up.id.to_owned(),
                    path: up.entry.path.clone(),
                    when: None,
                    breakpoints: true,
                    down,
                };
                let mut m = read_migration(found, layout)?;
                if layout == Layout::Sqlx && sqlx_no_transaction(&m.sql) {
                    m.directives.no_transaction = true;
                }
                if let Some(d) = m.down.as_mut() {
                    if layout == Layout::Sqlx && sqlx_no_transaction(&d.sql) {
                        d.directives.no_transaction = true;
                    }
                }
                m
            }
        };
        migrations.push(m);
    }
    warn_unused_downs(downs.into_values(), warnings);
    Ok(migrations)
}

/// Rollback files no migration claimed, by name: warnings (their tools ignore them too).
fn warn_unused_downs<'a>(left: impl Iterator<Item = &'a Entry>, warnings: &mut Vec<FolderWarning>) {
    let mut left: Vec<&Entry> = left.collect();
    left.sort_by(|a, b| a.name.cmp(&b.name));
    warnings.extend(left.into_iter().map(|e| FolderWarning {
        path: e.path.clone(),
        kind: FolderWarningKind::DownWithoutUp,
    }));
}

/// Whether `text` has a line that is neither blank nor a `--` comment.
fn holds_sql(text: &str) -> bool {
    numbered_lines(text).any(|(_, l)| {
        let t = l.trim();
        !t.is_empty() && !t.starts_with("--")
    })
}

/// sqlx runs a file outside a transaction when it starts with `-- no-transaction`.
fn sqlx_no_transaction(text: &str) -> bool {
    text.strip_prefix('\u{feff}')
        .unwrap_or(text)
        .starts_with("-- no-transaction")
}

// ---------------------------------------------------------------------------------------------
// Sections: dbmate and goose
// ---------------------------------------------------------------------------------------------

/// One section marker line of a dbmate or goose file.
struct Marker {
    /// Byte offset of the line's start and of the next line's start.
    start: usize,
    end: usize,
    up: bool,
    /// dbmate's `transaction:false` on this marker.
    no_transaction: bool,
}

/// `text` with every character outside `keep` blanked (line breaks kept), so offsets, lines and
/// columns inside `keep` are those of the file.
fn mask(text: &str, keep: std::ops::Range<usize>) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, c) in text.char_indices() {
        if keep.contains(&i) || c == '\n' || c == '\r' {
            out.push(c);
        } else {
            out.extend(std::iter::repeat_n(' ', c.len_utf8()));
        }
    }
    out
}

/// Lines with their byte offsets (start, start of the next line).
fn lines_at(text: &str) -> impl Iterator<Item = (usize, usize, usize, &str)> {
    let mut start = 0;
    numbered_lines(text).map(move |(no, line)| {
        let s = start;
        let next = text[s..].find('\n').map_or(text.len(), |i| s + i + 1);
        start = next;
        (no, s, next, line)
    })
}

fn read_sectioned(id: &str, path: &Path, layout: Layout) -> Result<Migration, SourceError> {
    let (text, _file_hash) = read_text(path)?;
    let mut markers = Vec::new();
    let mut goose_no_tx = false;
    for (no, start, end, line) in lines_at(&text) {
        let t = line.trim();
        let Some(rest) = t.strip_prefix("--") else {
            continue;
        };
        let rest = rest.trim_start();
        if layout == Layout::Dbmate {
            let (up, opts) = if let Some(o) = rest.strip_prefix("migrate:up") {
                (true, o)
            } else if let Some(o) = rest.strip_prefix("migrate:down") {
                (false, o)
            } else {
                continue;
            };
            let mut no_transaction = false;
            for opt in opts.split_whitespace() {
                match opt {
                    "transaction:false" => no_transaction = true,
                    "transaction:true" => {}
                    other => {
                        return Err(SourceError::UnsupportedDirective {
                            path: path.to_path_buf(),
                            line: no,
                            text: t.to_owned(),
                            why: format!("dbmate option {other:?} is not one pgkeel knows (transaction:false is)"),
                        })
                    }
                }
            }
            markers.push(Marker {
                start,
                end,
                up,
                no_transaction,
            });
        } else {
            let Some(cmd) = rest.strip_prefix("+goose") else {
                continue;
            };
            let cmd = cmd.trim();
            match cmd.to_ascii_lowercase().as_str() {
                "up" => markers.push(Marker {
                    start,
                    end,
                    up: true,
                    no_transaction: false,
                }),
                "down" => markers.push(Marker {
                    start,
                    end,
                    up: false,
                    no_transaction: false,
                }),
                "no transaction" => goose_no_tx = true,
                "statementbegin" | "statementend" => {}
                _ if cmd.to_ascii_lowercase().starts_with("envsub") => {
                    if cmd.eq_ignore_ascii_case("envsub off") {
                        continue;
                    }
                    return Err(SourceError::UnsupportedDirective {
                        path: path.to_path_buf(),
                        line: no,
                        text: t.to_owned(),
                        why: "pgkeel does not substitute environment variables into SQL; write the values into the file".to_owned(),
                    });
                }
                _ => {
                    return Err(SourceError::UnsupportedDirective {
                        path: path.to_path_buf(),
                        line: no,
                        text: t.to_owned(),
                        why: "not a goose annotation (Up, Down, StatementBegin, StatementEnd, NO TRANSACTION)".to_owned(),
                    })
                }
            }
        }
    }
    let up_at = markers.iter().position(|m| m.up);
    let Some(up_at) = up_at else {
        return Err(SourceError::MissingSection {
            path: path.to_path_buf(),
            layout,
            marker: if layout == Layout::Dbmate {
                "-- migrate:up"
            } else {
                "-- +goose Up"
            },
        });
    };
    let section = |i: usize| {
        let from = markers[i].end;
        let to = markers.get(i + 1).map_or(text.len(), |m| m.start);
        from..to
    };
    let up = &markers[up_at];
    let up_text = mask(&text, section(up_at));
    let mut directives = parse_directives(path, &up_text, false)?;
    directives.no_transaction |= up.no_transaction || goose_no_tx;
    let down = match markers.iter().position(|m| !m.up) {
        Some(i) => {
            let sql = mask(&text, section(i));
            let mut d = parse_directives(path, &sql, true)?;
            d.no_transaction |= markers[i].no_transaction || goose_no_tx;
            let has_sql = holds_sql(&sql);
            has_sql.then(|| DownFile {
                path: path.to_path_buf(),
                hash: sha256_hex(sql.as_bytes()),
                sql,
                directives: d,
            })
        }
        None => None,
    };
    if let (true, Some(d)) = (directives.irreversible, &down) {
        return Err(SourceError::IrreversibleWithDown {
            path: path.to_path_buf(),
            down: d.path.clone(),
        });
    }
    Ok(Migration {
        id: id.to_owned(),
        index: 0,
        path: path.to_path_buf(),
        when: None,
        // The up section is what runs and what an edit of an applied migration changes.
        hash: sha256_hex(up_text.as_bytes()),
        sql: up_text,
        breakpoints: true,
        layout,
        down,
        directives,
        repeatable: false,
    })
}

// ---------------------------------------------------------------------------------------------
// Prisma
// ---------------------------------------------------------------------------------------------

/// The file Prisma Migrate keeps beside its migration folders.
pub const PRISMA_LOCK: &str = "migration_lock.toml";

/// Checks `migration_lock.toml` says PostgreSQL (`provider = "postgresql"`).
fn check_prisma_lock(dir: &Path) -> Result<(), SourceError> {
    let path = dir.join(PRISMA_LOCK);
    if !path.is_file() {
        return Ok(());
    }
    let (text, _) = read_text(&path)?;
    let provider = text.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == "provider").then(|| v.trim().trim_matches('"').to_owned())
    });
    match provider.as_deref() {
        None | Some("postgresql" | "postgres" | "cockroachdb") => Ok(()),
        Some(other) => Err(SourceError::UnsupportedDialect {
            path,
            dialect: other.to_owned(),
        }),
    }
}

pub(super) fn load_prisma(dir: &Path, entries: &[Entry]) -> Result<Vec<Migration>, SourceError> {
    check_prisma_lock(dir)?;
    let mut migrations = Vec::new();
    // Prisma orders the folders by name, as sorted here; it does not read their timestamps.
    for e in entries.iter().filter(|e| e.is_dir) {
        let when = v1_timestamp(&e.name).and_then(|s| parse_v1_when(&e.path, s).ok());
        migrations.push(read_migration(folder_migration(e, when)?, Layout::Prisma)?);
    }
    Ok(migrations)
}

// ---------------------------------------------------------------------------------------------
// Flyway
// ---------------------------------------------------------------------------------------------

/// Flyway's version order: dot-separated numbers compared as numbers (`1.10` after `1.9`),
/// `_` read as `.`, trailing zeros ignored (`1.0` is `1`).
pub fn flyway_version_key(version: &str) -> Vec<u128> {
    let mut parts: Vec<u128> = version
        .split(['.', '_'])
        .map(|p| p.parse().unwrap_or(u128::MAX))
        .collect();
    while parts.len() > 1 && parts.last() == Some(&0) {
        parts.pop();
    }
    parts
}

/// `executeInTransaction=false` in the script's `.conf` file (`V1__x.sql.conf`).
fn flyway_no_transaction(script: &Path) -> Result<bool, SourceError> {
    let mut conf = script.as_os_str().to_owned();
    conf.push(".conf");
    let conf = PathBuf::from(conf);
    if !conf.is_file() {
        return Ok(false);
    }
    let (text, _) = read_text(&conf)?;
    Ok(text.lines().any(|l| {
        l.split_once('=').is_some_and(|(k, v)| {
            k.trim() == "executeInTransaction" && v.trim().eq_ignore_ascii_case("false")
        })
    }))
}

pub(super) fn load_flyway(
    entries: &[Entry],
    warnings: &mut Vec<FolderWarning>,
) -> Result<Vec<Migration>, SourceError> {
    let mut versioned: Vec<(Vec<u128>, &Entry, &str)> = Vec::new();
    let mut undo: HashMap<Vec<u128>, &Entry> = HashMap::new();
    let mut repeatable: Vec<(&str, &Entry)> = Vec::new();
    for e in entries.iter().filter(|e| !e.is_dir) {
        if !e.name.ends_with(".sql") {
            continue;
        }
        match flyway_name(&e.name) {
            Some(('V', v, _)) => versioned.push((flyway_version_key(v), e, v)),
            Some(('U', v, _)) => {
                undo.insert(flyway_version_key(v), e);
            }
            Some((_, _, desc)) => repeatable.push((desc, e)),
            None => warnings.push(skipped(e, Layout::Flyway)),
        }
    }
    versioned.sort_by(|a, b| a.0.cmp(&b.0));
    for pair in versioned.windows(2) {
        if pair[0].0 == pair[1].0 {
            return Err(SourceError::DuplicateId {
                id: pair[0].2.to_owned(),
                first: pair[0].1.path.clone(),
                second: pair[1].1.path.clone(),
            });
        }
    }
    repeatable.sort_by(|a, b| a.0.cmp(b.0));
    let mut migrations = Vec::new();
    let stem = |e: &Entry| e.name.strip_suffix(".sql").unwrap_or(&e.name).to_owned();
    for (key, e, _) in &versioned {
        let found = Found {
            id: stem(e),
            path: e.path.clone(),
            when: None,
            breakpoints: true,
            down: undo.remove(key).map(|u| u.path.clone()),
        };
        let mut m = read_migration(found, Layout::Flyway)?;
        m.directives.no_transaction |= flyway_no_transaction(&m.path)?;
        migrations.push(m);
    }
    for (_, e) in &repeatable {
        let found = Found {
            id: stem(e),
            path: e.path.clone(),
            when: None,
            breakpoints: true,
            down: None,
        };
        let mut m = read_migration(found, Layout::Flyway)?;
        m.directives.no_transaction |= flyway_no_transaction(&m.path)?;
        m.repeatable = true;
        migrations.push(m);
    }
    warn_unused_downs(undo.into_values(), warnings);
    Ok(migrations)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flyway_versions_order_as_numbers() {
        assert!(flyway_version_key("1.10") > flyway_version_key("1.9"));
        assert_eq!(flyway_version_key("1.0"), flyway_version_key("1"));
        assert_eq!(flyway_version_key("2_1"), flyway_version_key("2.1"));
        assert!(flyway_name("V1__init.sql").is_some());
        assert!(flyway_name("R__views.sql").is_some());
        assert!(flyway_name("V__x.sql").is_none());
        assert!(flyway_name("Vx1__x.sql").is_none());
    }

    #[test]
    fn masking_keeps_offsets_and_line_breaks() {
        let text = "-- migrate:up\nCREATE TABLE é (a int);\n-- migrate:down\nDROP TABLE é;\n";
        let keep = 14..38;
        let masked = mask(text, keep.clone());
        assert_eq!(masked.len(), text.len());
        assert_eq!(&masked[keep.clone()], &text[keep]);
        assert_eq!(masked.matches('\n').count(), 4);
        assert!(!masked.contains("DROP"));
    }
}
