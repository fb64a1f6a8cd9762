//! `pgkeel new`: the next migration file in the folder's layout (a native file, a drizzle v1
//! folder, or a drizzle-kit file with its journal entry), never overwriting anything.

use super::*;

/// Turns a user's name into a migration name: ASCII letters lowercased, accented Latin letters
/// spelled in ASCII (`Ünïcode` → `unicode`, `Straße` → `strasse`), spaces and dashes become `_`,
/// repeated `_` collapse, leading/trailing `_` go. Other characters are refused, naming them.
pub fn slugify(name: &str) -> Result<String, SourceError> {
    let bad = |problem| SourceError::BadMigrationName {
        name: name.to_owned(),
        problem,
    };
    let mut slug = String::with_capacity(name.len());
    for c in name.trim().chars().flat_map(char::to_lowercase) {
        let spelled: &str = match c {
            'a'..='z' | '0'..='9' => {
                slug.push(c);
                continue;
            }
            ' ' | '-' | '_' | '\t' => "_",
            other => match ascii_spelling(other) {
                Some(a) => a,
                None => return Err(bad(NameProblem::BadChar(other))),
            },
        };
        for c in spelled.chars() {
            if c == '_' && (slug.is_empty() || slug.ends_with('_')) {
                continue;
            }
            slug.push(c);
        }
    }
    while slug.ends_with('_') {
        slug.pop();
    }
    if slug.is_empty() {
        return Err(bad(NameProblem::Empty));
    }
    Ok(slug)
}

/// The ASCII spelling of a lowercase accented Latin letter (Latin-1 and Latin Extended-A, the
/// letters of European languages), or `None`.
fn ascii_spelling(c: char) -> Option<&'static str> {
    Some(match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => "a",
        'æ' => "ae",
        'ç' | 'ć' | 'ĉ' | 'ċ' | 'č' => "c",
        'ď' | 'đ' | 'ð' => "d",
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ĕ' | 'ė' | 'ę' | 'ě' => "e",
        'ĝ' | 'ğ' | 'ġ' | 'ģ' => "g",
        'ĥ' | 'ħ' => "h",
        'ì' | 'í' | 'î' | 'ï' | 'ĩ' | 'ī' | 'ĭ' | 'į' | 'ı' => "i",
        'ĵ' => "j",
        'ķ' => "k",
        'ĺ' | 'ļ' | 'ľ' | 'ŀ' | 'ł' => "l",
        'ñ' | 'ń' | 'ņ' | 'ň' => "n",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ŏ' | 'ő' => "o",
        'œ' => "oe",
        'ŕ' | 'ŗ' | 'ř' => "r",
        'ś' | 'ŝ' | 'ş' | 'š' | 'ș' => "s",
        'ß' => "ss",
        'ţ' | 'ť' | 'ŧ' | 'ț' => "t",
        'þ' => "th",
        'ù' | 'ú' | 'û' | 'ü' | 'ũ' | 'ū' | 'ŭ' | 'ů' | 'ű' | 'ų' => "u",
        'ŵ' => "w",
        'ý' | 'ÿ' | 'ŷ' => "y",
        'ź' | 'ż' | 'ž' => "z",
        _ => return None,
    })
}

pub(super) fn header(id: &str, layout: Layout, now: DateTime<Utc>) -> String {
    let down = match layout {
        Layout::DrizzleFolders => "down.sql in this folder".to_owned(),
        _ => format!("{id}.down.sql beside this file"),
    };
    let mut h = format!(
        "-- {id}\n\
         -- Created {} by pgkeel new.\n\
         --\n\
         -- Directives: write `-- pgkeel:NAME [VALUE]` lines above the first statement:\n\
         --   no-transaction              run outside a transaction (CREATE INDEX CONCURRENTLY, ...)\n\
         --   lock-timeout DURATION       lock_timeout for this migration (500ms, 5s, 2min, 1h; 0/off disables)\n\
         --   statement-timeout DURATION  statement_timeout for this migration\n\
         --   retries N                   retry up to N times after a lock timeout\n\
         --   irreversible                this migration intentionally has no rollback\n\
         -- Rollback: {down}.\n",
        now.format("%Y-%m-%dT%H:%M:%SZ")
    );
    if layout.splits_on_breakpoints() {
        h.push_str("-- Separate statements with drizzle's statement-breakpoint marker line.\n");
    }
    h.push('\n');
    h
}

pub(super) fn create_new_file(path: &Path, contents: &str) -> Result<(), SourceError> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|error| {
            if error.kind() == io::ErrorKind::AlreadyExists {
                SourceError::AlreadyExists {
                    path: path.to_path_buf(),
                }
            } else {
                write_err(path)(error)
            }
        })?;
    file.write_all(contents.as_bytes()).map_err(write_err(path))
}

/// Creates the next migration file in `dir` for `pgkeel new NAME` and returns its path.
///
/// The name is slugified ([`slugify`]). A missing folder is created with the native layout.
/// Native: `NNNN_name.sql`, one past the highest number (4 digits, or as wide as the widest
/// existing number). Drizzle journal: `NNNN_name.sql` numbered by the next `idx`, plus its
/// journal entry (`when` = `now`, `breakpoints: true`, the journal's `version`), written in
/// drizzle-kit's format. Drizzle v1: `YYYYMMDDHHMMSS_name/migration.sql` from `now` (UTC).
/// If the newest existing journal entry or folder is not older than `now` (clock skew), the new
/// `when` / timestamp is moved just past it, so the new migration still runs last (drizzle-orm
/// silently skips an entry older than the last applied one). Never overwrites a file, folder or
/// journal entry.
pub fn new_migration(dir: &Path, name: &str, now: DateTime<Utc>) -> Result<PathBuf, SourceError> {
    new_migration_with(dir, name, now, TagPrefix::Index)
}

/// drizzle-kit's `migrations.prefix`: how a journal folder's file names begin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TagPrefix {
    /// `0007_name` from the entry's `idx` (drizzle-kit's default).
    #[default]
    Index,
    /// `20261203101500_name`: UTC `YYYYMMDDHHMMSS` (`timestamp`, and `supabase`, which writes
    /// the same 14 digits Supabase's CLI reads).
    Timestamp,
    /// `1764756900_name`: Unix seconds.
    Unix,
    /// `name` alone.
    None,
}

impl TagPrefix {
    /// drizzle-kit's names for them; `None` for anything else.
    pub fn parse(s: &str) -> Option<TagPrefix> {
        Some(match s {
            "index" => TagPrefix::Index,
            "timestamp" | "supabase" => TagPrefix::Timestamp,
            "unix" => TagPrefix::Unix,
            "none" => TagPrefix::None,
            _ => return None,
        })
    }

    fn tag(self, idx: usize, at: DateTime<Utc>, slug: &str) -> String {
        match self {
            TagPrefix::Index => format!("{idx:04}_{slug}"),
            TagPrefix::Timestamp => format!("{}_{slug}", at.format("%Y%m%d%H%M%S")),
            TagPrefix::Unix => format!("{}_{slug}", at.timestamp()),
            TagPrefix::None => slug.to_string(),
        }
    }
}

/// [`new_migration`], naming a drizzle journal folder's file as drizzle-kit's
/// `migrations.prefix` says (other layouts have one naming of their own).
pub fn new_migration_with(
    dir: &Path,
    name: &str,
    now: DateTime<Utc>,
    prefix: TagPrefix,
) -> Result<PathBuf, SourceError> {
    let slug = slugify(name)?;
    if !dir.exists() {
        fs::create_dir_all(dir).map_err(write_err(dir))?;
    }
    match detect_layout(dir)? {
        Layout::Native => new_native(dir, &slug, now),
        Layout::DrizzleJournal => new_journal_entry(dir, &slug, now, prefix),
        Layout::DrizzleFolders => new_folder(dir, &slug, now),
        layout => Err(SourceError::NewNotSupported {
            dir: dir.to_path_buf(),
            layout,
        }),
    }
}

pub(super) fn new_native(
    dir: &Path,
    slug: &str,
    now: DateTime<Utc>,
) -> Result<PathBuf, SourceError> {
    let mut next = 1u64;
    let mut width = 4usize;
    for e in list(dir)?.iter().filter(|e| !e.is_dir) {
        let stem = e
            .name
            .strip_suffix(".down.sql")
            .or_else(|| e.name.strip_suffix(".sql"));
        if let Some(number) = stem.and_then(native_number) {
            next = next.max(number + 1);
            width = width.max(e.name.bytes().take_while(u8::is_ascii_digit).count());
        }
    }
    let id = format!("{next:0width$}_{slug}");
    let path = dir.join(format!("{id}.sql"));
    create_new_file(&path, &header(&id, Layout::Native, now))?;
    Ok(path)
}

pub(super) fn new_folder(
    dir: &Path,
    slug: &str,
    now: DateTime<Utc>,
) -> Result<PathBuf, SourceError> {
    // Folders run in name order: never sort before the newest existing one (clock skew).
    let mut stamp = now.naive_utc();
    for e in list(dir)?.iter().filter(|e| e.is_dir) {
        if let Some(Ok(existing)) =
            v1_timestamp(&e.name).map(|s| NaiveDateTime::parse_from_str(s, "%Y%m%d%H%M%S"))
        {
            if existing >= stamp {
                stamp = existing + chrono::Duration::seconds(1);
            }
        }
    }
    let id = format!("{}_{slug}", stamp.format("%Y%m%d%H%M%S"));
    let folder = dir.join(&id);
    fs::create_dir(&folder).map_err(|error| {
        if error.kind() == io::ErrorKind::AlreadyExists {
            SourceError::AlreadyExists {
                path: folder.clone(),
            }
        } else {
            write_err(&folder)(error)
        }
    })?;
    let path = folder.join("migration.sql");
    create_new_file(&path, &header(&id, Layout::DrizzleFolders, now))?;
    Ok(path)
}

/// The journal as written back: field order as drizzle-kit writes it, unknown fields kept.
#[derive(Serialize, Deserialize, schemars::JsonSchema)]
pub(super) struct JournalDoc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dialect: Option<String>,
    entries: Vec<JournalEntryDoc>,
    #[serde(flatten)]
    extra: serde_json::Map<String, serde_json::Value>,
}

#[derive(Serialize, Deserialize, schemars::JsonSchema)]
pub(super) struct JournalEntryDoc {
    idx: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    when: i64,
    tag: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    breakpoints: Option<bool>,
    #[serde(flatten)]
    extra: serde_json::Map<String, serde_json::Value>,
}

/// The indentation of the first indented line (drizzle-kit: two spaces).
pub(super) fn detect_indent(text: &str) -> String {
    text.lines()
        .skip(1)
        .map(|l| {
            let n = l.len() - l.trim_start_matches([' ', '\t']).len();
            &l[..n]
        })
        .find(|ws| !ws.is_empty())
        .unwrap_or("  ")
        .to_owned()
}

pub(super) fn new_journal_entry(
    dir: &Path,
    slug: &str,
    now: DateTime<Utc>,
    prefix: TagPrefix,
) -> Result<PathBuf, SourceError> {
    let journal_path = dir.join(JOURNAL_PATH);
    let text = read_journal_text(&journal_path)?;
    parse_journal(&journal_path, &text)?; // precise errors and the dialect check
    let mut doc: JournalDoc =
        serde_json::from_str(&text).map_err(|e| malformed(&journal_path, &e))?;

    let idx = doc.entries.iter().map(|e| e.idx + 1).max().unwrap_or(0);
    // drizzle-orm applies only entries whose `when` is newer than the last applied one, so a
    // clock behind the newest entry would make drizzle skip this migration silently.
    let newest = doc.entries.iter().map(|e| e.when).max();
    let when = newest.map_or(now.timestamp_millis(), |w| {
        now.timestamp_millis().max(w + 1)
    });
    let at = DateTime::from_timestamp_millis(when).unwrap_or(now);
    let tag = prefix.tag(idx, at, slug);
    let path = dir.join(format!("{tag}.sql"));
    if doc.entries.iter().any(|e| e.tag == tag) {
        return Err(SourceError::AlreadyExists { path: journal_path });
    }
    doc.entries.push(JournalEntryDoc {
        idx,
        version: doc.version.clone(),
        when,
        tag: tag.clone(),
        breakpoints: Some(true),
        extra: serde_json::Map::new(),
    });

    let indent = detect_indent(&text);
    let mut out = Vec::with_capacity(text.len() + 200);
    let formatter = serde_json::ser::PrettyFormatter::with_indent(indent.as_bytes());
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    doc.serialize(&mut ser)
        .map_err(|e| write_err(&journal_path)(io::Error::other(e)))?;
    let mut out = String::from_utf8(out).unwrap_or_default();
    if text.ends_with('\n') {
        out.push('\n');
    }
    if text.contains("\r\n") {
        out = out.replace('\n', "\r\n");
    }

    create_new_file(&path, &header(&tag, Layout::DrizzleJournal, now))?;
    if let Err(e) = write_atomically(&journal_path, out.as_bytes()) {
        let _ = fs::remove_file(&path); // keep the folder consistent
        return Err(e);
    }
    Ok(path)
}

/// Replaces `path` with `contents` through a temporary file in the same folder.
pub(super) fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), SourceError> {
    let parent = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(parent).map_err(write_err(parent))?;
    tmp.write_all(contents).map_err(write_err(path))?;
    tmp.persist(path).map_err(|e| write_err(path)(e.error))?;
    Ok(())
}
