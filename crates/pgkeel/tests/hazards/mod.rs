//! The hazard grammar: migration files made of valid PostgreSQL statements, decorated with the
//! lexical hazards a statement splitter must get right (comments where a `;` could hide, dollar
//! quotes, E'' strings, quoted identifiers, CR/CRLF, a BOM, non-ASCII, blank statements, files
//! with their own BEGIN/COMMIT, CREATE INDEX CONCURRENTLY, …).
//!
//! Shared by the property test `crates/pgkeel/tests/no_panic.rs` (which adds noise on top) and the
//! differential test `crates/pgkeel-cli/tests/psql_differential.rs` (which applies each case with
//! psql and with pgkeel and compares). Both include this file with `#[path]`.
//!
//! Everything is deterministic from a `u64`: [`case`] builds case `index` of `seed` with its own
//! generator, so one case replays without generating the others. Names are unique within a case
//! (a counter is part of every name), so statements never clash; each case is meant for a
//! database of its own.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::fmt::Write as _;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// One kind of lexical hazard. Each case records the hazards it contains, so failures can be
/// grouped by hazard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Hazard {
    /// `CREATE TABLE a (id int) -- note` newline `;`: the `;` comes after a line comment.
    LineCommentBeforeSemicolon,
    /// `...; -- trailing`.
    TrailingLineComment,
    /// `/* a /* b */ c */` (PostgreSQL block comments nest).
    NestedBlockComment,
    /// The last statement has no `;`.
    MissingFinalSemicolon,
    /// The last statement has no `;` and ends in a `-- comment`.
    MissingFinalSemicolonThenComment,
    /// `$fn$ … $fn$` (tagged dollar quotes, `$$` or `$1` inside).
    DollarQuoteTag,
    /// `E'it\'s'`.
    EscapeString,
    /// `'a;b''c -- d'`: `;`, `''` and comment starters inside a standard string.
    SemicolonInString,
    /// `"naïve;--x"`: quoted identifiers holding `;`, `--`, `/*`, spaces, `""`, non-ASCII.
    QuotedIdentifier,
    /// CRLF line endings.
    Crlf,
    /// A lone CR as a line ending.
    LoneCr,
    /// A UTF-8 byte order mark at the start of the file.
    Bom,
    /// Non-ASCII text (comments, strings, identifiers).
    NonAscii,
    /// `DO $$--ñé` newline `BEGIN … END $$`: a DO block whose body starts with a non-ASCII comment.
    DoBlockNonAscii,
    /// psql-style blank statements: `;;`, `; ;`.
    BlankStatements,
    /// The file is wrapped in its own `BEGIN; … COMMIT;`.
    BeginCommit,
    /// The file is wrapped in `BEGIN ISOLATION LEVEL SERIALIZABLE; … COMMIT;`.
    BeginSerializable,
    /// `SET TRANSACTION ISOLATION LEVEL SERIALIZABLE;` as the first statement of the file's block.
    SetTransaction,
    /// `CREATE INDEX CONCURRENTLY` (must run outside a transaction block).
    CreateIndexConcurrently,
    /// `ALTER TYPE … ADD VALUE`.
    AlterTypeAddValue,
    /// A statement that fails at run time (division by zero, duplicate key): the case is expected
    /// to fail.
    RuntimeError,
}

impl Hazard {
    pub const ALL: [Hazard; 21] = [
        Hazard::LineCommentBeforeSemicolon,
        Hazard::TrailingLineComment,
        Hazard::NestedBlockComment,
        Hazard::MissingFinalSemicolon,
        Hazard::MissingFinalSemicolonThenComment,
        Hazard::DollarQuoteTag,
        Hazard::EscapeString,
        Hazard::SemicolonInString,
        Hazard::QuotedIdentifier,
        Hazard::Crlf,
        Hazard::LoneCr,
        Hazard::Bom,
        Hazard::NonAscii,
        Hazard::DoBlockNonAscii,
        Hazard::BlankStatements,
        Hazard::BeginCommit,
        Hazard::BeginSerializable,
        Hazard::SetTransaction,
        Hazard::CreateIndexConcurrently,
        Hazard::AlterTypeAddValue,
        Hazard::RuntimeError,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Hazard::LineCommentBeforeSemicolon => "line-comment-before-semicolon",
            Hazard::TrailingLineComment => "trailing-line-comment",
            Hazard::NestedBlockComment => "nested-block-comment",
            Hazard::MissingFinalSemicolon => "missing-final-semicolon",
            Hazard::MissingFinalSemicolonThenComment => "missing-final-semicolon-then-comment",
            Hazard::DollarQuoteTag => "dollar-quote-tag",
            Hazard::EscapeString => "escape-string",
            Hazard::SemicolonInString => "semicolon-in-string",
            Hazard::QuotedIdentifier => "quoted-identifier",
            Hazard::Crlf => "crlf",
            Hazard::LoneCr => "lone-cr",
            Hazard::Bom => "bom",
            Hazard::NonAscii => "non-ascii",
            Hazard::DoBlockNonAscii => "do-block-non-ascii",
            Hazard::BlankStatements => "blank-statements",
            Hazard::BeginCommit => "begin-commit",
            Hazard::BeginSerializable => "begin-serializable",
            Hazard::SetTransaction => "set-transaction",
            Hazard::CreateIndexConcurrently => "create-index-concurrently",
            Hazard::AlterTypeAddValue => "alter-type-add-value",
            Hazard::RuntimeError => "runtime-error",
        }
    }

    pub fn from_name(name: &str) -> Option<Hazard> {
        Hazard::ALL.into_iter().find(|h| h.name() == name)
    }
}

/// One statement, without its terminator.
#[derive(Debug, Clone)]
pub struct Stmt {
    pub sql: String,
    pub hazards: BTreeSet<Hazard>,
    /// PostgreSQL refuses it inside a transaction block (CREATE INDEX CONCURRENTLY).
    pub non_tx: bool,
    /// The statement fails at run time.
    pub fails: bool,
    /// A block comment written before it.
    pub prefix_comment: bool,
}

impl Stmt {
    fn new(sql: impl Into<String>) -> Stmt {
        Stmt {
            sql: sql.into(),
            hazards: BTreeSet::new(),
            non_tx: false,
            fails: false,
            prefix_comment: false,
        }
    }

    fn with(mut self, hs: impl IntoIterator<Item = Hazard>) -> Stmt {
        self.hazards.extend(hs);
        self
    }
}

/// What follows a statement that is not the file's last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Term {
    /// `;` newline.
    Plain,
    /// ` -- note` newline `;` newline.
    LineCommentBefore,
    /// `; -- trailing` newline.
    Trailing,
    /// ` /* a /* b; */ c */;` newline.
    BlockBefore,
    /// `;;` newline.
    DoubleSemicolon,
    /// `; ;` newline.
    SpacedSemicolons,
}

/// What follows the file's last statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Last {
    /// `;` newline.
    Semicolon,
    /// `; -- trailing` (newline or not).
    Trailing { newline: bool },
    /// ` -- note` newline `;` newline.
    CommentThenSemicolon,
    /// Nothing, or a newline.
    Missing { newline: bool },
    /// ` -- no semicolon` (newline or not).
    MissingThenComment { newline: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eol {
    Lf,
    Crlf,
    /// Lone CR.
    Cr,
    /// Each line ending drawn from LF, CRLF and CR (from the generator seeded with the value).
    Mixed(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wrap {
    None,
    /// `BEGIN;` … `COMMIT`.
    Begin,
    /// `BEGIN ISOLATION LEVEL SERIALIZABLE;` … `COMMIT`.
    BeginSerializable,
}

/// One migration file, before rendering.
#[derive(Debug, Clone)]
pub struct FileSpec {
    /// Native-layout file name, `0001_a.sql`.
    pub name: String,
    pub bom: bool,
    pub eol: Eol,
    pub wrap: Wrap,
    /// `SET TRANSACTION ISOLATION LEVEL SERIALIZABLE;` first inside the block (only with a wrap).
    pub set_transaction: bool,
    pub header: Option<&'static str>,
    pub stmts: Vec<Stmt>,
    /// `terms[i]` follows `stmts[i]` when `stmts[i]` is not the file's last statement.
    pub terms: Vec<Term>,
    pub last: Last,
}

const HEADERS: [&str; 4] = [
    "-- migration: ñé 日本 🦀 /* not a block comment\n",
    "/* header /* nested; */ still a comment -- ; */\n",
    "-- plain header\n\n",
    "\n-- after a blank line; ' \" $$\n",
];

const BREAKPOINT: &str = "--> statement-breakpoint";

impl FileSpec {
    /// The file's text (native layout).
    pub fn render(&self) -> String {
        self.render_inner(None)
    }

    /// The file's text with drizzle-kit's `--> statement-breakpoint` after some statements
    /// (which ones: drawn from a generator seeded with `breakpoints`).
    pub fn render_drizzle(&self, breakpoints: u64) -> String {
        self.render_inner(Some(breakpoints))
    }

    fn render_inner(&self, breakpoints: Option<u64>) -> String {
        let mut bp = breakpoints.map(StdRng::seed_from_u64);
        let mut all: Vec<(&str, bool)> = Vec::new();
        match self.wrap {
            Wrap::None => {}
            Wrap::Begin => all.push(("BEGIN", false)),
            Wrap::BeginSerializable => all.push(("BEGIN ISOLATION LEVEL SERIALIZABLE", false)),
        }
        if self.wrap != Wrap::None && self.set_transaction {
            all.push(("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", false));
        }
        let lead = all.len();
        for s in &self.stmts {
            all.push((&s.sql, s.prefix_comment));
        }
        if self.wrap != Wrap::None {
            all.push(("COMMIT", false));
        }
        let mut out = String::new();
        if let Some(h) = self.header {
            out.push_str(h);
        }
        let n = all.len();
        for (i, (sql, prefix)) in all.iter().enumerate() {
            if *prefix {
                out.push_str("/* a /* b; */ c ñ */ ");
            }
            out.push_str(sql);
            if i + 1 == n {
                match self.last {
                    Last::Semicolon => out.push_str(";\n"),
                    Last::Trailing { newline } => {
                        out.push_str("; -- trailing ñ");
                        if newline {
                            out.push('\n');
                        }
                    }
                    Last::CommentThenSemicolon => out.push_str(" -- note; ñ\n;\n"),
                    Last::Missing { newline } => {
                        if newline {
                            out.push('\n');
                        }
                    }
                    Last::MissingThenComment { newline } => {
                        out.push_str(" -- no semicolon; ñé");
                        if newline {
                            out.push('\n');
                        }
                    }
                }
                break;
            }
            // Terms belong to the generated statements; BEGIN / SET TRANSACTION end plainly.
            let term = if i >= lead && i - lead < self.terms.len() {
                self.terms[i - lead]
            } else {
                Term::Plain
            };
            out.push_str(match term {
                Term::Plain => ";\n",
                Term::LineCommentBefore => " -- note; ñ\n;\n",
                Term::Trailing => "; -- trailing; ñ 'x\n",
                Term::BlockBefore => " /* a /* b; */ c */;\n",
                Term::DoubleSemicolon => ";;\n",
                Term::SpacedSemicolons => "; ;\n",
            });
            if let Some(r) = bp.as_mut() {
                if r.gen_bool(0.6) {
                    // drizzle-kit writes `;--> statement-breakpoint`; put it on its own line too.
                    if r.gen_bool(0.5) && out.ends_with(";\n") {
                        out.pop();
                    }
                    out.push_str(BREAKPOINT);
                    out.push('\n');
                }
            }
        }
        let mut text = match self.eol {
            Eol::Lf => out,
            Eol::Crlf => out.replace('\n', "\r\n"),
            Eol::Cr => out.replace('\n', "\r"),
            Eol::Mixed(seed) => {
                let mut r = StdRng::seed_from_u64(seed);
                let mut s = String::with_capacity(out.len() + 16);
                for c in out.chars() {
                    if c == '\n' {
                        s.push_str(["\n", "\r\n", "\r"][r.gen_range(0..3)]);
                    } else {
                        s.push(c);
                    }
                }
                s
            }
        };
        if self.bom {
            text.insert(0, '\u{feff}');
        }
        text
    }

    /// Every hazard in the file.
    pub fn hazards(&self) -> BTreeSet<Hazard> {
        let mut h: BTreeSet<Hazard> = self
            .stmts
            .iter()
            .flat_map(|s| s.hazards.iter().copied())
            .collect();
        let text = self.render();
        let body = text.strip_prefix('\u{feff}').unwrap_or(&text);
        if self.bom {
            h.insert(Hazard::Bom);
        }
        if body.contains("\r\n") {
            h.insert(Hazard::Crlf);
        }
        if body
            .as_bytes()
            .windows(2)
            .any(|w| w[0] == b'\r' && w[1] != b'\n')
            || body.ends_with('\r')
        {
            h.insert(Hazard::LoneCr);
        }
        if !body.is_ascii() {
            h.insert(Hazard::NonAscii);
        }
        if self.header.is_some_and(|s| s.contains("/* nested")) {
            h.insert(Hazard::NestedBlockComment);
        }
        match self.wrap {
            Wrap::None => {}
            Wrap::Begin => {
                h.insert(Hazard::BeginCommit);
            }
            Wrap::BeginSerializable => {
                h.insert(Hazard::BeginCommit);
                h.insert(Hazard::BeginSerializable);
            }
        }
        if self.wrap != Wrap::None && self.set_transaction {
            h.insert(Hazard::SetTransaction);
        }
        if self.stmts.iter().any(|s| s.prefix_comment) {
            h.insert(Hazard::NestedBlockComment);
        }
        // Terms that are actually rendered (the last statement's term is `last`).
        let rendered_terms = if self.wrap == Wrap::None {
            &self.terms[..self.stmts.len().saturating_sub(1).min(self.terms.len())]
        } else {
            &self.terms[..self.stmts.len().min(self.terms.len())]
        };
        for t in rendered_terms {
            h.insert(match t {
                Term::Plain => continue,
                Term::LineCommentBefore => Hazard::LineCommentBeforeSemicolon,
                Term::Trailing => Hazard::TrailingLineComment,
                Term::BlockBefore => Hazard::NestedBlockComment,
                Term::DoubleSemicolon | Term::SpacedSemicolons => Hazard::BlankStatements,
            });
        }
        match self.last {
            Last::Semicolon => {}
            Last::Trailing { .. } => {
                h.insert(Hazard::TrailingLineComment);
            }
            Last::CommentThenSemicolon => {
                h.insert(Hazard::LineCommentBeforeSemicolon);
            }
            Last::Missing { .. } => {
                h.insert(Hazard::MissingFinalSemicolon);
            }
            Last::MissingThenComment { .. } => {
                h.insert(Hazard::MissingFinalSemicolonThenComment);
            }
        }
        h
    }

    /// psql must run the file without `-1`: it has its own BEGIN/COMMIT or a statement
    /// PostgreSQL refuses in a transaction block.
    pub fn needs_autocommit(&self) -> bool {
        self.wrap != Wrap::None || self.stmts.iter().any(|s| s.non_tx)
    }

    /// A statement of the file fails at run time.
    pub fn fails(&self) -> bool {
        self.stmts.iter().any(|s| s.fails)
    }

    /// A plain file: LF, no BOM, no header, plain terminators, `;` at the end.
    pub fn plain(name: &str, stmts: Vec<Stmt>) -> FileSpec {
        FileSpec {
            name: name.to_string(),
            bom: false,
            eol: Eol::Lf,
            wrap: Wrap::None,
            set_transaction: false,
            header: None,
            terms: vec![Term::Plain; stmts.len()],
            stmts,
            last: Last::Semicolon,
        }
    }
}

/// A folder of 1–4 native-layout files, applied in order.
#[derive(Debug, Clone)]
pub struct Case {
    /// `case N` or `probe <hazard>`.
    pub label: String,
    pub files: Vec<FileSpec>,
}

impl Case {
    /// A statement is meant to fail (in the last file).
    pub fn expect_failure(&self) -> bool {
        self.files.iter().any(FileSpec::fails)
    }

    pub fn hazards(&self) -> BTreeSet<Hazard> {
        self.files.iter().flat_map(FileSpec::hazards).collect()
    }

    /// The files as `(name, text)`.
    pub fn rendered(&self) -> Vec<(String, String)> {
        self.files
            .iter()
            .map(|f| (f.name.clone(), f.render()))
            .collect()
    }

    /// Every file, shown so that CR, CRLF and the BOM can be seen (`{:?}`-style escapes) and
    /// pasted back.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        for f in &self.files {
            let text = f.render();
            let _ = writeln!(
                s,
                "--- {} (psql {}) ---",
                f.name,
                if f.needs_autocommit() {
                    "without -1"
                } else {
                    "-1"
                }
            );
            let _ = writeln!(s, "{}", show(&text));
        }
        s
    }
}

/// A file's text as a Rust string literal body: `\r`, `\u{feff}` and `\t` escaped, `\n` kept
/// as a line break (shown as `\n` + break), so CR/CRLF/BOM are visible.
pub fn show(text: &str) -> String {
    let mut s = String::new();
    for c in text.chars() {
        match c {
            '\n' => s.push_str("\\n\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            '\u{feff}' => s.push_str("\\u{feff}"),
            c => s.push(c),
        }
    }
    s
}

/// Case `index` of `seed`: its own generator, so it replays alone.
pub fn case(seed: u64, index: u64) -> Case {
    let mut rng = StdRng::seed_from_u64(mix(seed, index));
    let mut g = Gen::default();
    let nfiles = rng.gen_range(1..=4);
    let failing = rng.gen_bool(0.15);
    let files = (0..nfiles)
        .map(|i| {
            let name = format!("{:04}_{}.sql", i + 1, (b'a' + i as u8) as char);
            g.file(&mut rng, name, failing && i + 1 == nfiles)
        })
        .collect();
    Case {
        label: format!("case {index}"),
        files,
    }
}

/// One file from `seed` (for the property test): its own fresh names.
pub fn single_file(seed: u64) -> FileSpec {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut g = Gen::default();
    // Tables made before the file (not in it), so its statements may refer to earlier ones as
    // a later file of a folder would.
    for _ in 0..rng.gen_range(0..3) {
        g.create_table(&mut rng);
    }
    let fails = rng.gen_bool(0.1);
    g.file(&mut rng, "0001_x.sql".into(), fails)
}

fn mix(seed: u64, index: u64) -> u64 {
    // splitmix64 of the pair: neighbouring indexes get unrelated generators.
    let mut z = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ColKind {
    Int,
    Text,
}

#[derive(Debug, Clone)]
struct Table {
    name: String,
    cols: Vec<(String, ColKind)>,
    next_id: i64,
}

#[derive(Debug, Clone)]
struct Enum {
    name: String,
    labels: usize,
}

/// The names made so far in one case (what exists once the files so far have run).
#[derive(Debug, Default)]
pub struct Gen {
    n: u32,
    tables: Vec<Table>,
    enums: Vec<Enum>,
}

impl Gen {
    fn next(&mut self) -> u32 {
        self.n += 1;
        self.n
    }

    /// A fresh identifier, plain or hazardous.
    fn ident(&mut self, rng: &mut StdRng, base: &str, hz: &mut BTreeSet<Hazard>) -> String {
        let n = self.next();
        match rng.gen_range(0..8) {
            0..=3 => format!("{base}{n}"),
            4 => {
                hz.insert(Hazard::QuotedIdentifier);
                hz.insert(Hazard::NonAscii);
                format!("\"naïve;--x {base} {n}\"")
            }
            5 => {
                hz.insert(Hazard::NonAscii);
                format!("{base}ñé{n}")
            }
            6 => {
                hz.insert(Hazard::QuotedIdentifier);
                format!("\"{base} /* ; \"\" -- {n}\"")
            }
            _ => {
                hz.insert(Hazard::QuotedIdentifier);
                hz.insert(Hazard::NonAscii);
                format!("\"{base} 日本 🦀 {n}\"")
            }
        }
    }

    /// A string expression, plain or hazardous. `in_dollar`: it will sit inside a `$$` body, so
    /// it must not contain `$$`.
    fn string(&mut self, rng: &mut StdRng, hz: &mut BTreeSet<Hazard>, in_dollar: bool) -> String {
        if rng.gen_bool(0.15) {
            hz.insert(Hazard::SemicolonInString);
            let n = self.next();
            return format!("';'||'--{n}'");
        }
        self.literal(rng, hz, in_dollar)
    }

    /// A string literal (where an expression is not allowed: COMMENT ON … IS, enum labels).
    fn literal(&mut self, rng: &mut StdRng, hz: &mut BTreeSet<Hazard>, in_dollar: bool) -> String {
        let n = self.next();
        match rng.gen_range(0..7) {
            0 | 1 => format!("'plain {n}'"),
            2 => {
                hz.insert(Hazard::SemicolonInString);
                format!("'a;b''c -- d /* e {n}'")
            }
            3 => {
                hz.insert(Hazard::EscapeString);
                hz.insert(Hazard::NonAscii);
                format!("E'it\\'s; -- ñ \\\\ {n}'")
            }
            4 => {
                hz.insert(Hazard::NonAscii);
                hz.insert(Hazard::SemicolonInString);
                if in_dollar {
                    format!("'ñé 日本 🦀; $ {n}'")
                } else {
                    format!("'ñé 日本 🦀; $$ $fn$ {n}'")
                }
            }
            5 if !in_dollar => {
                hz.insert(Hazard::DollarQuoteTag);
                format!("$s$dollar ' ; -- \" {n}$s$")
            }
            _ => {
                hz.insert(Hazard::SemicolonInString);
                format!("'--{n};'")
            }
        }
    }

    fn table(&self, rng: &mut StdRng) -> Option<usize> {
        (!self.tables.is_empty()).then(|| rng.gen_range(0..self.tables.len()))
    }

    fn create_table(&mut self, rng: &mut StdRng) -> Stmt {
        let mut hz = BTreeSet::new();
        let name = self.ident(rng, "t", &mut hz);
        let mut cols = vec![("id".to_string(), ColKind::Int)];
        let mut sql = format!("CREATE TABLE {name} (\n  id integer PRIMARY KEY");
        for _ in 0..rng.gen_range(0..3) {
            let c = self.ident(rng, "c", &mut hz);
            if rng.gen_bool(0.5) {
                let d = self.string(rng, &mut hz, false);
                let _ = write!(sql, ",\n  {c} text DEFAULT {d}");
                cols.push((c, ColKind::Text));
            } else {
                let _ = write!(sql, ",\n  {c} integer NOT NULL DEFAULT 0");
                cols.push((c, ColKind::Int));
            }
        }
        sql.push_str("\n)");
        self.tables.push(Table {
            name,
            cols,
            next_id: 1,
        });
        Stmt::new(sql).with(hz)
    }

    fn create_index(&mut self, rng: &mut StdRng, t: usize, concurrently: bool) -> Stmt {
        let mut hz = BTreeSet::new();
        let name = self.ident(rng, "i", &mut hz);
        let table = &self.tables[t];
        let col = &table.cols[rng.gen_range(0..table.cols.len())].0;
        let mut s = Stmt::new(format!(
            "CREATE INDEX {}{name} ON {} ({col})",
            if concurrently { "CONCURRENTLY " } else { "" },
            table.name
        ))
        .with(hz);
        if concurrently {
            s.non_tx = true;
            s.hazards.insert(Hazard::CreateIndexConcurrently);
        }
        s
    }

    fn create_view(&mut self, rng: &mut StdRng, t: usize) -> Stmt {
        let mut hz = BTreeSet::new();
        let name = self.ident(rng, "v", &mut hz);
        let lit = self.string(rng, &mut hz, false);
        let table = &self.tables[t];
        Stmt::new(format!(
            "CREATE VIEW {name} AS\n  SELECT id, {lit} AS label -- the label; ñ\n  FROM {}",
            table.name
        ))
        .with(hz)
    }

    fn create_function(&mut self, rng: &mut StdRng) -> Stmt {
        let mut hz = BTreeSet::new();
        let name = self.ident(rng, "f", &mut hz);
        let or_replace = if rng.gen_bool(0.3) { "OR REPLACE " } else { "" };
        let sql = match rng.gen_range(0..4) {
            0 => {
                hz.insert(Hazard::DollarQuoteTag);
                hz.insert(Hazard::NonAscii);
                format!(
                    "CREATE {or_replace}FUNCTION {name}(a integer) RETURNS integer LANGUAGE sql IMMUTABLE AS $fn$\n  SELECT $1 + 1 -- ; ' \" ñé\n$fn$"
                )
            }
            1 => {
                hz.insert(Hazard::DollarQuoteTag);
                hz.insert(Hazard::EscapeString);
                format!(
                    "CREATE {or_replace}FUNCTION {name}(a text) RETURNS text LANGUAGE plpgsql AS $body$\nBEGIN\n  -- $$ ; ' /* not closed\n  RETURN $1 || '$$;' || E'\\'' || 'ñ';\nEND\n$body$"
                )
            }
            2 => {
                let lit = self.string(rng, &mut hz, true);
                format!(
                    "CREATE {or_replace}FUNCTION {name}() RETURNS text LANGUAGE sql AS $$ SELECT {lit} $$"
                )
            }
            _ => {
                hz.insert(Hazard::SemicolonInString);
                format!(
                    "CREATE {or_replace}FUNCTION {name}(integer) RETURNS integer LANGUAGE sql AS 'SELECT $1 * 2 -- ; ''x'''"
                )
            }
        };
        Stmt::new(sql).with(hz)
    }

    fn add_column(&mut self, rng: &mut StdRng, t: usize) -> Stmt {
        let mut hz = BTreeSet::new();
        let c = self.ident(rng, "c", &mut hz);
        let (ty, kind, default) = if rng.gen_bool(0.5) {
            let d = self.string(rng, &mut hz, false);
            ("text", ColKind::Text, format!(" DEFAULT {d}"))
        } else {
            ("integer", ColKind::Int, String::new())
        };
        let table = &mut self.tables[t];
        let sql = format!("ALTER TABLE {} ADD COLUMN {c} {ty}{default}", table.name);
        table.cols.push((c, kind));
        Stmt::new(sql).with(hz)
    }

    fn insert(&mut self, rng: &mut StdRng, t: usize) -> Stmt {
        let mut hz = BTreeSet::new();
        let rows = rng.gen_range(1..=3);
        let text_cols: Vec<String> = self.tables[t]
            .cols
            .iter()
            .filter(|(_, k)| *k == ColKind::Text)
            .map(|(c, _)| c.clone())
            .collect();
        let col = text_cols
            .get(rng.gen_range(0..text_cols.len().max(1)))
            .cloned();
        let mut values = Vec::new();
        for _ in 0..rows {
            let id = self.tables[t].next_id;
            self.tables[t].next_id += 1;
            match &col {
                Some(_) => {
                    let lit = self.string(rng, &mut hz, false);
                    values.push(format!("({id}, {lit})"));
                }
                None => values.push(format!("({id})")),
            }
        }
        let table = &self.tables[t];
        let cols = match &col {
            Some(c) => format!("id, {c}"),
            None => "id".to_string(),
        };
        Stmt::new(format!(
            "INSERT INTO {} ({cols}) VALUES {}",
            table.name,
            values.join(", ")
        ))
        .with(hz)
    }

    fn comment_on(&mut self, rng: &mut StdRng, t: usize) -> Stmt {
        let mut hz = BTreeSet::new();
        let lit = self.literal(rng, &mut hz, false);
        let table = &self.tables[t];
        let sql = if rng.gen_bool(0.5) {
            format!("COMMENT ON TABLE {} IS {lit}", table.name)
        } else {
            let col = &table.cols[rng.gen_range(0..table.cols.len())].0;
            format!("COMMENT ON COLUMN {}.{col} IS {lit}", table.name)
        };
        Stmt::new(sql).with(hz)
    }

    fn do_block(&mut self, rng: &mut StdRng) -> Stmt {
        let mut hz = BTreeSet::new();
        match rng.gen_range(0..4) {
            0 => {
                // Creates a table from inside the block; the body starts with a non-ASCII comment.
                let name = self.ident(rng, "d", &mut hz);
                self.tables.push(Table {
                    name: name.clone(),
                    cols: vec![("id".into(), ColKind::Int)],
                    next_id: 1,
                });
                hz.insert(Hazard::DoBlockNonAscii);
                hz.insert(Hazard::NonAscii);
                Stmt::new(format!(
                    "DO $$--ñé\nBEGIN\n  CREATE TABLE {name} (id integer PRIMARY KEY); -- ; '\nEND $$"
                ))
                .with(hz)
            }
            1 | 2 => {
                // drizzle-kit's shape (what rollback generation understands), sometimes with a
                // non-ASCII comment first.
                let name = self.ident(rng, "e", &mut hz);
                self.enums.push(Enum {
                    name: name.clone(),
                    labels: 2,
                });
                let lead = if rng.gen_bool(0.5) {
                    hz.insert(Hazard::DoBlockNonAscii);
                    hz.insert(Hazard::NonAscii);
                    "--ñé\n"
                } else {
                    " "
                };
                Stmt::new(format!(
                    "DO $${lead}BEGIN\n CREATE TYPE {name} AS ENUM('a', 'b');\nEXCEPTION\n WHEN duplicate_object THEN null;\nEND $$"
                ))
                .with(hz)
            }
            _ => {
                hz.insert(Hazard::DollarQuoteTag);
                Stmt::new("DO $do$ BEGIN PERFORM 1; /* ; $$ */ END $do$").with(hz)
            }
        }
    }

    fn create_enum(&mut self, rng: &mut StdRng) -> Stmt {
        let mut hz = BTreeSet::new();
        let name = self.ident(rng, "e", &mut hz);
        let mut labels = vec!["'a'".to_string(), "'b;c'".to_string()];
        hz.insert(Hazard::SemicolonInString);
        if rng.gen_bool(0.5) {
            hz.insert(Hazard::NonAscii);
            labels.push("'ñé 🦀'".into());
        }
        if rng.gen_bool(0.3) {
            hz.insert(Hazard::EscapeString);
            labels.push("E'it\\'s'".into());
        }
        self.enums.push(Enum {
            name: name.clone(),
            labels: labels.len(),
        });
        Stmt::new(format!(
            "CREATE TYPE {name} AS ENUM ({})",
            labels.join(", ")
        ))
        .with(hz)
    }

    fn add_value(&mut self, rng: &mut StdRng, e: usize) -> Stmt {
        let n = self.next();
        let en = &mut self.enums[e];
        en.labels += 1;
        let if_not = if rng.gen_bool(0.3) {
            "IF NOT EXISTS "
        } else {
            ""
        };
        Stmt::new(format!(
            "ALTER TYPE {} ADD VALUE {if_not}'v{n}; ñ'",
            en.name
        ))
        .with([Hazard::AlterTypeAddValue, Hazard::NonAscii])
    }

    /// A statement that fails at run time, on table `t` (whose `id` is its primary key).
    fn failing(&mut self, rng: &mut StdRng, t: usize) -> Stmt {
        let table = &self.tables[t];
        let sql = if rng.gen_bool(0.5) {
            format!("INSERT INTO {} (id) VALUES (1 / 0)", table.name)
        } else {
            format!("INSERT INTO {} (id) VALUES (-7), (-7)", table.name)
        };
        let mut s = Stmt::new(sql).with([Hazard::RuntimeError]);
        s.fails = true;
        s
    }

    /// Any statement that is valid now (`allow_non_tx`: CREATE INDEX CONCURRENTLY may be drawn).
    fn statement(&mut self, rng: &mut StdRng, allow_non_tx: bool) -> Stmt {
        loop {
            let t = self.table(rng);
            let e = (!self.enums.is_empty()).then(|| rng.gen_range(0..self.enums.len()));
            return match (rng.gen_range(0..12), t, e) {
                (0 | 1, _, _) | (_, None, _) if rng.gen_bool(0.7) => self.create_table(rng),
                (2, Some(t), _) => self.create_index(rng, t, false),
                (3, Some(t), _) if allow_non_tx => self.create_index(rng, t, true),
                (4, Some(t), _) => self.create_view(rng, t),
                (5, _, _) => self.create_function(rng),
                (6, Some(t), _) => self.add_column(rng, t),
                (7, Some(t), _) => self.insert(rng, t),
                (8, Some(t), _) => self.comment_on(rng, t),
                (9, _, _) => self.do_block(rng),
                (10, _, _) => self.create_enum(rng),
                (11, _, Some(e)) => self.add_value(rng, e),
                _ => continue,
            };
        }
    }

    fn file(&mut self, rng: &mut StdRng, name: String, fails: bool) -> FileSpec {
        let wrap = match rng.gen_range(0..20) {
            0..=12 => Wrap::None,
            13..=16 => Wrap::Begin,
            _ => Wrap::BeginSerializable,
        };
        let set_transaction = wrap != Wrap::None && rng.gen_bool(0.4);
        let allow_non_tx = wrap == Wrap::None && !fails;
        let mut stmts = Vec::new();
        if fails {
            // The 2nd of 3 statements fails, on the table the 1st creates.
            stmts.push(self.create_table(rng));
            let t = self.tables.len() - 1;
            stmts.push(self.failing(rng, t));
            stmts.push(self.statement(rng, false));
        } else {
            for _ in 0..rng.gen_range(1..=6) {
                stmts.push(self.statement(rng, allow_non_tx));
            }
        }
        for s in &mut stmts {
            s.prefix_comment = rng.gen_bool(0.08);
        }
        let terms = (0..stmts.len())
            .map(|_| match rng.gen_range(0..20) {
                0..=9 => Term::Plain,
                10 | 11 => Term::LineCommentBefore,
                12 | 13 => Term::Trailing,
                14 | 15 => Term::BlockBefore,
                16 | 17 => Term::DoubleSemicolon,
                _ => Term::SpacedSemicolons,
            })
            .collect();
        let newline = rng.gen_bool(0.5);
        let last = match rng.gen_range(0..9) {
            0..=2 => Last::Semicolon,
            3 => Last::Trailing { newline },
            4 => Last::CommentThenSemicolon,
            5 | 6 => Last::Missing { newline },
            _ => Last::MissingThenComment { newline },
        };
        let eol = match rng.gen_range(0..20) {
            0..=10 => Eol::Lf,
            11..=14 => Eol::Crlf,
            15 | 16 => Eol::Cr,
            _ => Eol::Mixed(rng.gen()),
        };
        FileSpec {
            name,
            bom: rng.gen_bool(0.1),
            eol,
            wrap,
            set_transaction,
            header: rng
                .gen_bool(0.3)
                .then(|| HEADERS[rng.gen_range(0..HEADERS.len())]),
            stmts,
            terms,
            last,
        }
    }
}

/// A small hand-made case: a plain file (LF, no BOM, `;` everywhere) with one hazard (in one
/// position), so a failing probe is a minimal failing file for its hazard.
#[derive(Debug, Clone)]
pub struct Probe {
    /// `hazard` or `hazard/variant`.
    pub name: String,
    pub hazard: Hazard,
    pub case: Case,
}

/// The probes: every hazard has at least one.
pub fn probes() -> Vec<Probe> {
    let t = |n: &str| Stmt::new(format!("CREATE TABLE {n} (id integer PRIMARY KEY)"));
    let ins = |n: &str| Stmt::new(format!("INSERT INTO {n} (id) VALUES (1)"));
    let raw = |sql: &str| Stmt::new(sql);
    let base = || FileSpec::plain("0001_a.sql", vec![t("p1"), ins("p1")]);
    let file = |stmts: Vec<Stmt>| FileSpec::plain("0001_a.sql", stmts);
    let cic = |sql: &str| {
        let mut s = Stmt::new(sql).with([Hazard::CreateIndexConcurrently]);
        s.non_tx = true;
        s
    };
    let fail = |sql: &str| {
        let mut s = Stmt::new(sql).with([Hazard::RuntimeError]);
        s.fails = true;
        s
    };
    let with = |f: fn(&mut FileSpec)| {
        let mut b = base();
        f(&mut b);
        b
    };
    use Hazard as H;
    let mut list: Vec<(Hazard, &str, FileSpec)> = Vec::new();
    let mut add = |h: Hazard, variant: &'static str, f: FileSpec| list.push((h, variant, f));

    add(
        H::LineCommentBeforeSemicolon,
        "",
        with(|f| f.terms[0] = Term::LineCommentBefore),
    );
    add(
        H::LineCommentBeforeSemicolon,
        "last-statement",
        with(|f| f.last = Last::CommentThenSemicolon),
    );
    add(
        H::TrailingLineComment,
        "",
        with(|f| f.terms[0] = Term::Trailing),
    );
    add(
        H::TrailingLineComment,
        "at-end-of-file",
        with(|f| f.last = Last::Trailing { newline: false }),
    );
    add(
        H::NestedBlockComment,
        "before-semicolon",
        with(|f| f.terms[0] = Term::BlockBefore),
    );
    add(
        H::NestedBlockComment,
        "before-statement",
        with(|f| f.stmts[1].prefix_comment = true),
    );
    add(
        H::NestedBlockComment,
        "file-header",
        with(|f| f.header = Some(HEADERS[1])),
    );
    add(
        H::MissingFinalSemicolon,
        "",
        with(|f| f.last = Last::Missing { newline: false }),
    );
    add(
        H::MissingFinalSemicolon,
        "newline",
        with(|f| f.last = Last::Missing { newline: true }),
    );
    add(
        H::MissingFinalSemicolonThenComment,
        "",
        with(|f| f.last = Last::MissingThenComment { newline: true }),
    );
    add(
        H::MissingFinalSemicolonThenComment,
        "no-newline",
        with(|f| f.last = Last::MissingThenComment { newline: false }),
    );
    add(H::DollarQuoteTag, "function", file(vec![
        raw("CREATE FUNCTION f1(a integer) RETURNS integer LANGUAGE sql IMMUTABLE AS $fn$\n  SELECT $1 + 1; -- $$ ;\n$fn$"),
        t("p1"),
    ]));
    add(
        H::DollarQuoteTag,
        "default",
        file(vec![
            raw("CREATE TABLE p1 (id integer PRIMARY KEY, s text DEFAULT $s$a;b' -- c$s$)"),
            t("p2"),
        ]),
    );
    add(
        H::EscapeString,
        "",
        file(vec![
            raw("CREATE TABLE p1 (id integer PRIMARY KEY, s text DEFAULT E'it\\'s; x')"),
            t("p2"),
        ]),
    );
    add(
        H::SemicolonInString,
        "",
        file(vec![
            raw("CREATE TABLE p1 (id integer PRIMARY KEY, s text DEFAULT 'a;b''c -- d')"),
            t("p2"),
        ]),
    );
    add(
        H::QuotedIdentifier,
        "",
        file(vec![t("\"naïve;--x\""), ins("\"naïve;--x\"")]),
    );
    add(H::Crlf, "", with(|f| f.eol = Eol::Crlf));
    add(
        H::Crlf,
        "after-line-comment",
        with(|f| {
            f.eol = Eol::Crlf;
            f.terms[0] = Term::LineCommentBefore;
        }),
    );
    add(H::LoneCr, "", with(|f| f.eol = Eol::Cr));
    add(
        H::LoneCr,
        "after-line-comment",
        with(|f| {
            f.eol = Eol::Cr;
            f.terms[0] = Term::Trailing;
        }),
    );
    add(
        H::LoneCr,
        "after-header-comment",
        with(|f| {
            f.eol = Eol::Cr;
            f.header = Some(HEADERS[2]);
        }),
    );
    add(H::Bom, "", with(|f| f.bom = true));
    add(
        H::Bom,
        "before-comment",
        with(|f| {
            f.bom = true;
            f.header = Some(HEADERS[2]);
        }),
    );
    add(
        H::NonAscii,
        "",
        file(vec![
            raw("CREATE TABLE tñé (id integer PRIMARY KEY, s text DEFAULT 'ñé 日本 🦀')"),
            raw("COMMENT ON TABLE tñé IS '🦀'"),
        ]),
    );
    add(
        H::DoBlockNonAscii,
        "",
        file(vec![raw(
            "DO $$--ñé\nBEGIN\n  CREATE TABLE p1 (id integer PRIMARY KEY);\nEND $$",
        )]),
    );
    add(H::DoBlockNonAscii, "drizzle-shape", file(vec![raw(
        "DO $$--ñé\nBEGIN\n CREATE TYPE e1 AS ENUM('a', 'b');\nEXCEPTION\n WHEN duplicate_object THEN null;\nEND $$",
    )]));
    add(
        H::BlankStatements,
        "double",
        with(|f| f.terms[0] = Term::DoubleSemicolon),
    );
    add(
        H::BlankStatements,
        "spaced",
        with(|f| f.terms[0] = Term::SpacedSemicolons),
    );
    add(
        H::BlankStatements,
        "leading",
        with(|f| f.header = Some(";\n")),
    );
    add(H::BeginCommit, "", with(|f| f.wrap = Wrap::Begin));
    add(
        H::BeginCommit,
        "commit-without-semicolon",
        with(|f| {
            f.wrap = Wrap::Begin;
            f.last = Last::Missing { newline: true };
        }),
    );
    add(
        H::BeginSerializable,
        "",
        with(|f| f.wrap = Wrap::BeginSerializable),
    );
    add(
        H::SetTransaction,
        "",
        with(|f| {
            f.wrap = Wrap::Begin;
            f.set_transaction = true;
        }),
    );
    add(
        H::SetTransaction,
        "after-begin-serializable",
        with(|f| {
            f.wrap = Wrap::BeginSerializable;
            f.set_transaction = true;
        }),
    );
    add(
        H::CreateIndexConcurrently,
        "between",
        file(vec![
            t("p1"),
            cic("CREATE INDEX CONCURRENTLY p1_i ON p1 (id)"),
            t("p2"),
        ]),
    );
    // Named 0002: runs after a file that creates the table (see below).
    add(
        H::CreateIndexConcurrently,
        "alone",
        FileSpec::plain(
            "0002_b.sql",
            vec![cic("CREATE INDEX CONCURRENTLY p1_i ON p1 (id)")],
        ),
    );
    add(
        H::AlterTypeAddValue,
        "",
        file(vec![
            raw("CREATE TYPE e1 AS ENUM ('a')"),
            raw("ALTER TYPE e1 ADD VALUE 'b'"),
        ]),
    );
    add(
        H::RuntimeError,
        "division-by-zero",
        file(vec![
            t("p1"),
            fail("INSERT INTO p1 (id) VALUES (1 / 0)"),
            t("p2"),
        ]),
    );
    let mut f = file(vec![
        t("p1"),
        fail("INSERT INTO p1 (id) VALUES (1), (1)"),
        t("p2"),
    ]);
    f.wrap = Wrap::Begin;
    add(H::RuntimeError, "duplicate-key-in-begin-commit", f);

    let mut out = Vec::new();
    for (hazard, variant, f) in list {
        let name = if variant.is_empty() {
            hazard.name().to_string()
        } else {
            format!("{}/{variant}", hazard.name())
        };
        let files = if f.name == "0002_b.sql" {
            vec![FileSpec::plain("0001_a.sql", vec![t("p1")]), f]
        } else {
            vec![f]
        };
        out.push(Probe {
            case: Case {
                label: format!("probe {name}"),
                files,
            },
            name,
            hazard,
        });
    }
    out
}
