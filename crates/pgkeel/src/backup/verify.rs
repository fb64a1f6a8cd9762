//! Verification: the manifest's own hash, then every file read back (decrypted, decompressed)
//! with its stored SHA-256, row count and content hash compared with the manifest; with
//! `restore_test`, a restore into a scratch database whose tables are read back and compared
//! row count and content hash with the manifest.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use super::codec::{combine, OpenedReader, RowHasher};
use super::keys::KeyConfig;
use super::manifest::TableMode;
use super::pgtools::SchemaFilter;
use super::restore::{open_chain, restore, RestoreOptions};
use super::session::{column_list, SESSION_SETUP};
use super::{BackupError, Progress};
use crate::db::{DbError, ScratchDatabase, Target};
use crate::ident::qualified;

#[derive(Debug, Clone)]
pub struct VerifyOptions {
    pub keys: KeyConfig,
    /// Also restore into a scratch database next to this server's and compare.
    pub restore_test: Option<Target>,
    pub workers: usize,
}

/// One thing found wrong.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct VerifyProblem {
    /// The file (relative to the backup) or table concerned.
    pub subject: String,
    pub problem: String,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct VerifyReport {
    pub backup: String,
    pub files: usize,
    pub stored_bytes: u64,
    pub raw_bytes: u64,
    pub restore_tested: bool,
    pub tables_compared: usize,
    pub problems: Vec<VerifyProblem>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks the backup at `dir`. A damaged manifest or missing keys are errors; damaged files
/// are problems in the report.
pub async fn verify(
    dir: &Path,
    opts: &VerifyOptions,
    progress: Arc<dyn Progress>,
) -> Result<VerifyReport, BackupError> {
    let fetched = super::bucket::fetch(dir).await?;
    let dir = fetched.as_ref().map_or(dir, |f| f.path());
    let chain = open_chain(dir, &opts.keys)?;
    let top = chain.last().expect("chain has the backup itself");
    let m = top.manifest.clone();
    let dir_buf = top.dir.clone();
    let keys = top.keys.clone();
    let encrypted = m.is_encrypted();
    if encrypted {
        wrong_key_check(&dir_buf, &m.schema, &keys)?;
    }
    progress.phase("files");
    let files: Vec<(Option<String>, super::manifest::FileEntry)> = m
        .files()
        .into_iter()
        .map(|(t, f)| (t.map(|t| t.display_name()), f.clone()))
        .collect();
    let total = files.len();
    let prog = progress.clone();
    let problems = tokio::task::spawn_blocking(move || {
        let queue = std::sync::Mutex::new(files.into_iter());
        let problems = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| loop {
                    let next = queue.lock().expect("queue").next();
                    let Some((table, f)) = next else { break };
                    if let Some(p) = check_file(&dir_buf, &f, table.is_some(), encrypted, &keys) {
                        problems.lock().expect("problems").push(p);
                    }
                    prog.table_bytes(table.as_deref().unwrap_or("schema"), f.raw_bytes);
                });
            }
        });
        problems.into_inner().expect("problems")
    })
    .await
    .map_err(|e| BackupError::Worker {
        reason: e.to_string(),
    })?;
    let mut report = VerifyReport {
        backup: m.name.clone(),
        files: total,
        stored_bytes: m.stored_bytes(),
        raw_bytes: m.raw_bytes(),
        restore_tested: false,
        tables_compared: 0,
        problems,
    };
    report.problems.sort_by(|a, b| a.subject.cmp(&b.subject));
    if let (Some(admin), true) = (&opts.restore_test, report.ok()) {
        progress.phase("restore-test");
        let scratch = ScratchDatabase::create(admin, "pgkeel_verify").await?;
        let result = restore_and_compare(dir, &m, scratch.target(), opts, progress).await;
        let _ = scratch.drop_now().await;
        let (compared, problems) = result?;
        report.restore_tested = true;
        report.tables_compared = compared;
        report.problems.extend(problems);
    }
    Ok(report)
}

/// An intact file (its bytes match the manifest's SHA-256) that the keys do not open means the
/// keys are wrong, not the backup: [`BackupError::WrongKey`], instead of calling every file
/// damaged.
fn wrong_key_check(
    dir: &Path,
    f: &super::manifest::FileEntry,
    keys: &super::codec::Keys,
) -> Result<(), BackupError> {
    use sha2::{Digest, Sha256};
    let path = dir.join(&f.path);
    let Ok(bytes) = std::fs::read(&path) else {
        return Ok(()); // missing: reported as a problem below
    };
    if hex::encode(Sha256::digest(&bytes)) != f.sha256 {
        return Ok(());
    }
    match OpenedReader::open(&path, true, keys) {
        Err(e @ BackupError::WrongKey { .. }) => Err(e),
        _ => Ok(()),
    }
}

/// Checks the stored bytes of every file of `manifest` (in `dir`) against the manifest's size
/// and SHA-256, without decrypting or decompressing anything: what can be verified where only
/// the public key of an encrypted backup is at hand (a deploy machine). Returns the problems.
pub fn verify_stored(dir: &Path, manifest: &super::Manifest) -> Vec<VerifyProblem> {
    use sha2::{Digest, Sha256};
    let mut problems = Vec::new();
    for (_, f) in manifest.files() {
        let path = dir.join(&f.path);
        let problem = match std::fs::File::open(&path) {
            Err(e) => Some(format!("cannot open: {e}")),
            Ok(mut file) => {
                let mut hasher = Sha256::new();
                match std::io::copy(&mut file, &mut hasher) {
                    Err(e) => Some(format!("cannot read: {e}")),
                    Ok(n) if n != f.stored_bytes => Some(format!(
                        "{n} bytes on disk, the manifest says {}",
                        f.stored_bytes
                    )),
                    Ok(_) => {
                        let sum = hex::encode(hasher.finalize());
                        (sum != f.sha256).then(|| {
                            format!("SHA-256 {sum} differs from the manifest's {}", f.sha256)
                        })
                    }
                }
            }
        };
        if let Some(problem) = problem {
            problems.push(VerifyProblem {
                subject: f.path.clone(),
                problem,
            });
        }
    }
    problems
}

fn check_file(
    dir: &Path,
    f: &super::manifest::FileEntry,
    is_data: bool,
    encrypted: bool,
    keys: &super::codec::Keys,
) -> Option<VerifyProblem> {
    let problem = |p: String| {
        Some(VerifyProblem {
            subject: f.path.clone(),
            problem: p,
        })
    };
    let path: PathBuf = dir.join(&f.path);
    let mut r = match OpenedReader::open(&path, encrypted, keys) {
        Ok(r) => r,
        Err(e) => return problem(e.to_string()),
    };
    let mut hasher = RowHasher::default();
    let mut raw = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                raw += n as u64;
                if is_data {
                    hasher.update(&buf[..n]);
                }
            }
            Err(e) => {
                // Keep hashing the stored bytes to say whether the file itself changed.
                let stored = r.finish();
                let changed = if stored.sha256 != f.sha256 {
                    "its SHA-256 differs from the manifest's: the file was changed or damaged; "
                } else {
                    ""
                };
                return problem(format!("{changed}cannot decrypt or decompress it: {e}"));
            }
        }
    }
    let stored = r.finish();
    if stored.sha256 != f.sha256 || stored.bytes != f.stored_bytes {
        return problem(format!(
            "SHA-256 {} ({} bytes) but the manifest records {} ({} bytes): the file was changed or damaged",
            stored.sha256, stored.bytes, f.sha256, f.stored_bytes
        ));
    }
    if raw != f.raw_bytes {
        return problem(format!(
            "{raw} bytes after decompression, the manifest records {}",
            f.raw_bytes
        ));
    }
    if is_data {
        let (rows, hash) = hasher.finish();
        if rows != f.rows || format!("{hash:016x}") != f.content_hash {
            return problem(format!(
                "{rows} rows with content hash {hash:016x}, the manifest records {} rows with {}",
                f.rows, f.content_hash
            ));
        }
    }
    None
}

async fn restore_and_compare(
    dir: &Path,
    m: &super::manifest::Manifest,
    target: &Target,
    opts: &VerifyOptions,
    progress: Arc<dyn Progress>,
) -> Result<(usize, Vec<VerifyProblem>), BackupError> {
    let ropts = RestoreOptions {
        tables: Vec::new(),
        clean: false,
        workers: opts.workers,
        filter: SchemaFilter::default(),
        keys: opts.keys.clone(),
        // The files were just checked, and the target is a scratch database.
        verify: false,
        from_other_database: true,
        audit: None,
    };
    restore(dir, target, &ropts, progress).await?;
    let client = target.connect().await?;
    client
        .batch_execute(SESSION_SETUP)
        .await
        .map_err(|e| DbError::query("preparing the comparison session", e))?;
    let mut problems = Vec::new();
    for t in &m.tables {
        let sql = format!(
            "COPY {} ({}) TO STDOUT",
            qualified(&t.schema, &t.name),
            column_list(&t.columns)
        );
        let (rows, hash) = table_hash(&client, &sql).await?;
        let want_rows = t.rows;
        let matches_hash = match t.mode {
            TableMode::Changed { .. } => true, // partial files: compare counts only
            _ => format!("{hash:016x}") == t.content_hash,
        };
        if rows != want_rows || !matches_hash {
            problems.push(VerifyProblem {
                subject: t.display_name(),
                problem: format!(
                    "restored {rows} rows with content hash {hash:016x}, the manifest records {want_rows} rows with {}",
                    t.content_hash
                ),
            });
        }
    }
    Ok((m.tables.len(), problems))
}

/// `(rows, order-independent content hash)` of a `COPY … TO STDOUT`.
pub(crate) async fn table_hash(
    client: &crate::db::Client,
    copy_sql: &str,
) -> Result<(u64, u64), BackupError> {
    use futures_util::StreamExt;
    let stream = client
        .copy_out(copy_sql)
        .await
        .map_err(|e| DbError::query("reading a table back", e))?;
    futures_util::pin_mut!(stream);
    let mut h = RowHasher::default();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| DbError::query("reading a table back", e))?;
        h.update(&chunk);
    }
    let (rows, hash) = h.finish();
    Ok((rows, combine([hash])))
}
