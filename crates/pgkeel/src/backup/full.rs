//! Full backups: the leader session (REPEATABLE READ, READ ONLY, `pg_export_snapshot()`), the
//! schema through `pg_dump --snapshot`, and N workers that import the snapshot and stream each
//! table — or each ctid range of a large table — into its own sealed file. The manifest is
//! written last; on any failure (or when the future is dropped) the directory is removed, so an
//! interrupted backup never looks valid.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio::io::AsyncReadExt;

use super::bucket::{Bucket, Staging};
use super::codec::{combine, SealedWriter, Sealing};
use super::keys::KeyConfig;
use super::manifest::{
    FileEntry, Kind, LedgerEntry, Manifest, SequenceValue, TableEntry, TableMode, FORMAT_VERSION,
};
use super::session::{self, column_list, TableInfo, SESSION_SETUP};
use super::{io_err, pgtools, BackupError, Progress};
use crate::config::Settings;
use crate::db::{Client, DbError, Target};
use crate::ident::{qualified, quote_literal};
use crate::ledger::Ledger;

/// The default size of a table's pieces: tables larger than this are copied as ctid ranges.
pub const CHUNK_BYTES: u64 = 64 << 20;
/// The default into a bucket: smaller pieces finish sooner, so more of the upload overlaps the
/// backup (measured in bench/bucket.sh: 1.35x the local time with 64 MiB, 1.24x with 16 MiB).
pub const BUCKET_CHUNK_BYTES: u64 = 16 << 20;

/// What a backup run may change from the settings.
#[derive(Debug, Clone)]
pub struct BackupOptions {
    /// The directory holding backups (each backup is a subdirectory).
    pub dir: PathBuf,
    /// The backup's name (default `full-YYYYMMDDTHHMMSSZ`).
    pub name: Option<String>,
    /// Parallel COPY sessions (default: the pool size, bounded by free connections).
    pub workers: Option<usize>,
    /// Tables larger than this are split into ctid ranges of about this size. `None`:
    /// [`CHUNK_BYTES`], or [`BUCKET_CHUNK_BYTES`] into a bucket.
    pub chunk_bytes: Option<u64>,
    /// zstd level, 1–22 (from `BACKUP_COMPRESSION_LEVEL`, see [`crate::config::CompressionLevel`]).
    pub level: i32,
    /// zstd worker threads per file (0 = compress on the writing thread).
    pub zstd_threads: u32,
    pub keys: KeyConfig,
    /// Told each data file's path as soon as the file is complete (the bucket upload streams
    /// them while the backup still runs).
    pub finished: Option<tokio::sync::mpsc::UnboundedSender<PathBuf>>,
}

impl BackupOptions {
    pub fn from_settings(settings: &Settings) -> Self {
        BackupOptions {
            dir: settings.backup_dir.clone(),
            name: None,
            workers: None,
            chunk_bytes: None,
            level: settings.backup_compression_level.zstd(),
            zstd_threads: 0,
            keys: KeyConfig::from_settings(settings),
            finished: None,
        }
    }
}

/// Refuses a backup name that is not one directory name: empty, hidden, a path, or with control
/// characters.
pub(crate) fn check_name(name: &str) -> Result<(), BackupError> {
    let reason = if name.is_empty() {
        "it is empty"
    } else if name == "." || name == ".." || name.starts_with('.') {
        "it starts with `.`"
    } else if name.contains(['/', '\\']) {
        "it is a path, not a name"
    } else if name.chars().any(char::is_control) {
        "it holds a control character (a newline, a tab, …)"
    } else {
        return Ok(());
    };
    Err(BackupError::BadName {
        name: name.escape_debug().to_string(),
        reason,
    })
}

/// A backup directory that is removed when dropped unless [`PartialDir::keep`] was called.
pub(crate) struct PartialDir {
    path: Option<PathBuf>,
}

impl PartialDir {
    pub(crate) fn create(parent: &Path, name: &str) -> Result<Self, BackupError> {
        check_name(name)?;
        if !parent.is_dir() {
            super::private_dir_builder()
                .recursive(true)
                .create(parent)
                .map_err(io_err(parent))?;
        }
        let path = parent.join(name);
        match super::private_dir_builder().create(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(BackupError::Exists { path })
            }
            Err(e) => return Err(io_err(&path)(e)),
        }
        let data = path.join("data");
        super::private_dir_builder()
            .create(&data)
            .map_err(io_err(&data))?;
        Ok(PartialDir { path: Some(path) })
    }

    /// Creates `parent/name`, or, with no name, the default name of `kind` at `at` with the
    /// next free `-N` (two backups in one second both succeed). Returns it with its name.
    pub(crate) fn create_named(
        parent: &Path,
        name: Option<&str>,
        kind: Kind,
        at: DateTime<Utc>,
    ) -> Result<(Self, String), BackupError> {
        let mut names = candidate_names(name, &default_name(kind, at))
            .into_iter()
            .peekable();
        while let Some(n) = names.next() {
            match PartialDir::create(parent, &n) {
                Ok(p) => return Ok((p, n)),
                Err(BackupError::Exists { .. }) if names.peek().is_some() => {}
                Err(e) => return Err(e),
            }
        }
        // Not reached: there is always a candidate, and the last one returns above.
        Err(BackupError::Exists {
            path: parent.to_path_buf(),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        self.path.as_deref().expect("not kept yet")
    }

    pub(crate) fn keep(mut self) -> PathBuf {
        self.path.take().expect("kept once")
    }
}

impl Drop for PartialDir {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = std::fs::remove_dir_all(&p);
        }
    }
}

/// The leader session holding the exported snapshot, and what it read at that snapshot.
pub(crate) struct Snapshot {
    pub leader: Client,
    pub id: String,
    pub server_version: String,
    pub server_version_num: i32,
    pub tables: Vec<TableInfo>,
    pub sequences: Vec<SequenceValue>,
    pub ledger: Vec<LedgerEntry>,
    pub free_connections: i64,
    pub source: super::manifest::SourceDb,
}

pub(crate) async fn open_snapshot(
    target: &Target,
    settings: &Settings,
) -> Result<Snapshot, BackupError> {
    let leader = target.connect().await?;
    let q = |ctx: &'static str| move |e| DbError::query(ctx, e);
    leader
        .batch_execute(SESSION_SETUP)
        .await
        .map_err(q("preparing the backup session"))?;
    let row = leader
        .query_one(
            "SELECT current_setting('server_version'), current_setting('server_version_num')::int,
                    (current_setting('max_connections')::int
                      - current_setting('superuser_reserved_connections')::int
                      - (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'))::bigint",
            &[],
        )
        .await
        .map_err(q("reading the server version"))?;
    let (server_version, server_version_num): (String, i32) = (row.get(0), row.get(1));
    let free_connections: i64 = row.get(2);
    pgtools::check_version("pg_dump", &server_version, server_version_num).await?;
    let source = super::manifest::SourceDb::of(&leader).await?;
    leader
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await
        .map_err(q("opening the backup transaction"))?;
    let id: String = leader
        .query_one("SELECT pg_export_snapshot()", &[])
        .await
        .map_err(q("exporting the snapshot"))?
        .get(0);
    let tables = session::list_tables(&leader).await?;
    // Like pg_dump: ACCESS SHARE on every table, so none is dropped or rewritten under us.
    for batch in tables.chunks(500) {
        let list = batch
            .iter()
            .map(|t| qualified(&t.schema, &t.name))
            .collect::<Vec<_>>()
            .join(", ");
        leader
            .batch_execute(&format!("LOCK TABLE {list} IN ACCESS SHARE MODE"))
            .await
            .map_err(q("locking the tables to back up"))?;
    }
    let sequences = session::sequence_values(&leader).await?;
    let ledger = Ledger::from_settings(settings)
        .rows(&leader)
        .await?
        .into_iter()
        .map(|r| LedgerEntry {
            id: r.id,
            hash: r.hash,
            status: r.status.as_str().to_string(),
            applied_at: r.applied_at,
        })
        .collect();
    Ok(Snapshot {
        leader,
        id,
        server_version,
        server_version_num,
        tables,
        sequences,
        ledger,
        free_connections,
        source,
    })
}

/// One COPY to run: a whole table or one ctid range of it.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub table: usize,
    pub rel: String,
    pub sql: String,
    pub name: String,
    pub estimated_bytes: u64,
}

fn file_stem(idx: usize, t: &TableInfo) -> String {
    let mut s: String = format!("{}.{}", t.schema, t.name)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    s.truncate(80);
    format!("{idx:05}-{s}")
}

/// The COPY jobs for `tables[idx]` with `filter` (an extra WHERE condition), split into ctid
/// ranges when the table is larger than `chunk_bytes`.
pub(crate) fn jobs_for(
    idx: usize,
    t: &TableInfo,
    chunk_bytes: u64,
    filter: Option<&str>,
    ext: &str,
) -> Vec<Job> {
    let name = t.display_name();
    let table = qualified(&t.schema, &t.name);
    let cols = column_list(&t.columns);
    let size = (t.pages.max(0) as u64) * t.block_size as u64;
    let chunk_pages = (chunk_bytes / t.block_size.max(1) as u64).max(1) as i64;
    let stem = file_stem(idx, t);
    let pieces = if size > chunk_bytes + chunk_bytes / 2 {
        (t.pages + chunk_pages - 1) / chunk_pages
    } else {
        1
    };
    if pieces <= 1 {
        let sql = match filter {
            None => format!("COPY {table} ({cols}) TO STDOUT"),
            Some(f) => format!("COPY (SELECT {cols} FROM ONLY {table} WHERE {f}) TO STDOUT"),
        };
        return vec![Job {
            table: idx,
            rel: format!("data/{stem}.copy{ext}"),
            sql,
            name,
            estimated_bytes: size,
        }];
    }
    (0..pieces)
        .map(|i| {
            let lo = i * chunk_pages;
            let mut cond = Vec::new();
            if i > 0 {
                cond.push(format!("ctid >= '({lo},0)'::tid"));
            }
            if i + 1 < pieces {
                cond.push(format!("ctid < '({},0)'::tid", lo + chunk_pages));
            }
            if let Some(f) = filter {
                cond.push(format!("({f})"));
            }
            Job {
                table: idx,
                rel: format!("data/{stem}.{i:04}.copy{ext}"),
                sql: format!(
                    "COPY (SELECT {cols} FROM ONLY {table} WHERE {}) TO STDOUT",
                    cond.join(" AND ")
                ),
                name: name.clone(),
                estimated_bytes: size / pieces as u64,
            }
        })
        .collect()
}

/// How many COPY sessions to open.
pub(crate) fn worker_count(
    wanted: Option<usize>,
    settings: &Settings,
    free: i64,
    jobs: usize,
) -> usize {
    let wanted = wanted.unwrap_or(settings.pool_size).max(1);
    // Leave two slots: pg_dump's and one for anyone else.
    let free = usize::try_from(free - 2).unwrap_or(0).max(1);
    wanted.min(free).min(jobs.max(1))
}

/// Runs `jobs` on `workers` sessions that all import `snapshot`; returns each job's file.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run_jobs(
    target: &Target,
    snapshot: &str,
    jobs: Vec<Job>,
    workers: usize,
    dir: &Path,
    opts: &BackupOptions,
    sealing: &Sealing,
    progress: &Arc<dyn Progress>,
    table_count: usize,
) -> Result<Vec<(usize, FileEntry)>, BackupError> {
    let mut remaining = vec![0usize; table_count];
    for j in &jobs {
        remaining[j.table] += 1;
    }
    let remaining: Arc<Vec<AtomicUsize>> =
        Arc::new(remaining.into_iter().map(AtomicUsize::new).collect());
    let started: Arc<Vec<AtomicUsize>> =
        Arc::new((0..table_count).map(|_| AtomicUsize::new(0)).collect());
    let queue = Arc::new(Mutex::new(jobs.into_iter().collect::<VecDeque<_>>()));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let target = target.clone();
        let snapshot = snapshot.to_string();
        let queue = queue.clone();
        let dir = dir.to_path_buf();
        let (level, threads) = (opts.level, opts.zstd_threads);
        let sealing = sealing.clone();
        let progress = progress.clone();
        let remaining = remaining.clone();
        let started = started.clone();
        let finished = opts.finished.clone();
        set.spawn(async move {
            let client = target.connect().await?;
            client
                .batch_execute(&format!(
                    "{SESSION_SETUP}; BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; \
                     SET TRANSACTION SNAPSHOT {}",
                    quote_literal(&snapshot)
                ))
                .await
                .map_err(|e| DbError::query("importing the backup snapshot", e))?;
            let mut done = Vec::new();
            loop {
                let job = queue.lock().expect("queue lock").pop_front();
                let Some(job) = job else { break };
                if started[job.table].fetch_add(1, Ordering::SeqCst) == 0 {
                    let total =
                        job.estimated_bytes * remaining[job.table].load(Ordering::SeqCst) as u64;
                    progress.table_started(&job.name, total);
                }
                let entry = session::copy_out(
                    &client, &job.sql, &dir, &job.rel, level, threads, &sealing, &job.name,
                    &progress,
                )
                .await?;
                if let Some(tx) = &finished {
                    let _ = tx.send(dir.join(&entry.path));
                }
                if remaining[job.table].fetch_sub(1, Ordering::SeqCst) == 1 {
                    progress.table_done(&job.name);
                }
                done.push((job.table, entry));
            }
            let _ = client.batch_execute("COMMIT").await;
            Ok::<_, BackupError>(done)
        });
    }
    let mut out = Vec::new();
    while let Some(res) = set.join_next().await {
        match res {
            Ok(Ok(done)) => out.extend(done),
            Ok(Err(e)) => {
                set.abort_all();
                return Err(e);
            }
            Err(e) => {
                set.abort_all();
                return Err(BackupError::Worker {
                    reason: e.to_string(),
                });
            }
        }
    }
    Ok(out)
}

/// Runs `pg_dump` for the schema at `snapshot` into `dir/schema.dump…`.
pub(crate) async fn dump_schema(
    target: &Target,
    snapshot: &str,
    dir: &Path,
    level: i32,
    sealing: &Sealing,
    ext: &str,
) -> Result<FileEntry, BackupError> {
    let rel = format!("schema.dump{ext}");
    let path = dir.join(&rel);
    let mut child = pgtools::spawn_schema_dump(target, snapshot)?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let err_task = tokio::spawn(async move {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s).await;
        s
    });
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
    let sealing = sealing.clone();
    let wpath = path.clone();
    let writer = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut w = SealedWriter::create(&wpath, level, 0, &sealing)?;
        let mut raw = 0u64;
        while let Some(chunk) = rx.blocking_recv() {
            raw += chunk.len() as u64;
            w.write_all(&chunk).map_err(io_err(&wpath))?;
        }
        Ok::<_, BackupError>((w.finish()?, raw))
    });
    loop {
        let mut buf = vec![0u8; 1 << 16];
        let n = stdout.read(&mut buf).await.map_err(io_err(&path))?;
        if n == 0 {
            break;
        }
        buf.truncate(n);
        if tx.send(buf).await.is_err() {
            break;
        }
    }
    drop(tx);
    let status = child.wait().await.map_err(io_err(&path))?;
    let stderr = err_task.await.unwrap_or_default();
    let written = writer.await.map_err(|e| BackupError::Worker {
        reason: e.to_string(),
    })?;
    if !status.success() {
        return Err(BackupError::ToolFailed {
            tool: "pg_dump".into(),
            status: status.to_string(),
            stderr: stderr.trim().to_string(),
        });
    }
    let (stored, raw) = written?;
    Ok(FileEntry {
        path: rel,
        stored_bytes: stored.bytes,
        sha256: stored.sha256,
        raw_bytes: raw,
        rows: 0,
        content_hash: String::new(),
    })
}

/// The default name of a backup of `kind` started at `at`: `full-YYYYMMDDTHHMMSSZ`, the one
/// format of every backup name (a second backup in the same second gets `-2`, see [`nth_name`]).
pub fn default_name(kind: Kind, at: DateTime<Utc>) -> String {
    format!("{kind}-{}", at.format("%Y%m%dT%H%M%SZ"))
}

/// How many `-N` names a default-named backup tries before giving up.
const NAME_TRIES: u32 = 100;

/// The names a backup may take, in order: the `chosen` one only (a name the user gave is never
/// changed), else `base`, `base-2`, … `base-100` (replicas or cron jobs in the same second).
pub(crate) fn candidate_names(chosen: Option<&str>, base: &str) -> Vec<String> {
    match chosen {
        Some(n) => vec![n.to_string()],
        None => std::iter::once(base.to_string())
            .chain((2..=NAME_TRIES).map(|n| format!("{base}-{n}")))
            .collect(),
    }
}

/// The extension of data files: `.zst`, or `.zst.age` when encrypted.
pub(crate) fn extension(sealing: &Sealing) -> &'static str {
    if sealing.is_encrypted() {
        ".zst.age"
    } else {
        ".zst"
    }
}

/// Takes a full backup of the database `settings` point at into `opts.dir` (a directory or an
/// `s3://` bucket prefix). Returns the written manifest.
pub async fn full(
    settings: &Settings,
    opts: &BackupOptions,
    progress: Arc<dyn Progress>,
) -> Result<Manifest, BackupError> {
    match Bucket::open(&opts.dir)? {
        Some(bucket) => {
            to_bucket(&bucket, opts, Kind::Full, true, |local| async move {
                full_local(settings, &local, progress).await
            })
            .await
        }
        None => full_local(settings, opts, progress).await,
    }
}

/// [`full`] into a local directory.
async fn full_local(
    settings: &Settings,
    opts: &BackupOptions,
    progress: Arc<dyn Progress>,
) -> Result<Manifest, BackupError> {
    let target = Target::from_settings(settings)?;
    let started_at = Utc::now();
    let (partial, name) =
        PartialDir::create_named(&opts.dir, opts.name.as_deref(), Kind::Full, started_at)?;
    let dir = partial.path().to_path_buf();
    let (sealing, encryption) = opts.keys.sealing_for_new_backup(&dir)?;
    let ext = extension(&sealing);
    progress.phase("snapshot");
    let snap = open_snapshot(&target, settings).await?;
    let mut jobs = Vec::new();
    for (i, t) in snap.tables.iter().enumerate() {
        jobs.extend(jobs_for(
            i,
            t,
            opts.chunk_bytes.unwrap_or(CHUNK_BYTES),
            None,
            ext,
        ));
    }
    let workers = worker_count(opts.workers, settings, snap.free_connections, jobs.len());
    tracing::info!(
        "backup {name}: {} tables in {} COPY jobs on {workers} sessions, snapshot {}",
        snap.tables.len(),
        jobs.len(),
        snap.id
    );
    progress.phase("data");
    let progress_ref = &progress;
    let (schema, files) = tokio::try_join!(
        dump_schema(&target, &snap.id, &dir, opts.level, &sealing, ext),
        run_jobs(
            &target,
            &snap.id,
            jobs,
            workers,
            &dir,
            opts,
            &sealing,
            progress_ref,
            snap.tables.len()
        )
    )?;
    snap.leader
        .batch_execute("COMMIT")
        .await
        .map_err(|e| DbError::query("closing the backup transaction", e))?;
    let tables = assemble_tables(&snap.tables, files, |_| TableMode::Full);
    let mut manifest = Manifest {
        format_version: FORMAT_VERSION,
        pgkeel_version: env!("CARGO_PKG_VERSION").into(),
        kind: Kind::Full,
        name,
        started_at,
        finished_at: Utc::now(),
        server_version: snap.server_version,
        server_version_num: snap.server_version_num,
        database: target.to_string(),
        snapshot: snap.id,
        compression: "zstd".into(),
        compression_level: opts.level,
        encryption,
        schema,
        tables,
        sequences: snap.sequences,
        ledger: snap.ledger,
        base: None,
        since: None,
        source: Some(snap.source),
        manifest_sha256: String::new(),
    };
    manifest.write(&dir)?;
    partial.keep();
    Ok(manifest)
}

/// Takes a backup of `kind` for the bucket: `take` writes it into a staging directory (the
/// options it gets name it there), then it is uploaded, manifest last.
pub(crate) async fn to_bucket<F, Fut>(
    bucket: &Bucket,
    opts: &BackupOptions,
    kind: Kind,
    stream_files: bool,
    take: F,
) -> Result<Manifest, BackupError>
where
    F: FnOnce(BackupOptions) -> Fut,
    Fut: std::future::Future<Output = Result<Manifest, BackupError>>,
{
    // A chosen name must be free; a default one takes the next free `-N`.
    let names = candidate_names(opts.name.as_deref(), &default_name(kind, Utc::now()));
    let mut free = None;
    for n in &names {
        check_name(n)?;
        if !bucket.has(n).await? {
            free = Some(n.clone());
            break;
        }
    }
    let Some(name) = free else {
        return Err(BackupError::Exists {
            path: bucket.backup_path(names.last().map_or("", String::as_str)),
        });
    };
    let staging = Staging::new()?;
    let dir = staging.path().join(&name);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut local = opts.clone();
    local.dir = staging.path().to_path_buf();
    local.name = Some(name.clone());
    // Without streaming, `tx` is dropped here and the uploader below ends at once.
    local.finished = stream_files.then_some(tx);
    local.chunk_bytes = Some(opts.chunk_bytes.unwrap_or(BUCKET_CHUNK_BYTES));
    // Data files go up while the backup runs (and leave staging once up); the rest and the
    // manifest after it. A failure on either side stops both and deletes what was uploaded.
    let taken = tokio::try_join!(take(local), bucket.upload_as_finished(&dir, &name, rx));
    let manifest = match taken {
        Ok((manifest, ())) => manifest,
        Err(e) => {
            let _ = bucket.delete(&name).await;
            return Err(e);
        }
    };
    bucket.upload(&dir, &name).await?;
    Ok(manifest)
}

/// Groups job files by table, in the catalog's order, with each table's totals.
pub(crate) fn assemble_tables(
    tables: &[TableInfo],
    mut files: Vec<(usize, FileEntry)>,
    mode: impl Fn(usize) -> TableMode,
) -> Vec<TableEntry> {
    files.sort_by(|a, b| a.1.path.cmp(&b.1.path));
    let mut out: Vec<TableEntry> = tables
        .iter()
        .enumerate()
        .map(|(i, t)| TableEntry {
            schema: t.schema.clone(),
            name: t.name.clone(),
            columns: t.columns.clone(),
            rows: 0,
            content_hash: String::new(),
            mode: mode(i),
            files: Vec::new(),
        })
        .collect();
    for (i, f) in files {
        out[i].files.push(f);
    }
    for t in &mut out {
        t.rows = t.files.iter().map(|f| f.rows).sum();
        t.content_hash = format!(
            "{:016x}",
            combine(
                t.files
                    .iter()
                    .map(|f| u64::from_str_radix(&f.content_hash, 16).unwrap_or(0))
            )
        );
    }
    out
}
