//! Restores: the schema's pre-data (`pg_restore --section=pre-data`), the table files loaded by
//! N parallel `COPY … FROM STDIN` sessions, the sequences set, then post-data (indexes,
//! constraints, triggers) with `pg_restore --jobs`, so indexes are built once, after the data.
//! An incremental backup restores its base's files for the tables it did not store, then
//! applies its changed rows by primary key. A non-empty target is refused unless `clean` is set.
//! Every file's size and SHA-256 is checked before the target is touched.
//! Defaults fit managed hosts: no owners, no ACLs, no event triggers.

use std::collections::VecDeque;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

use super::codec::{Keys, OpenedReader};
use super::keys::KeyConfig;
use super::manifest::{FileEntry, Kind, Manifest, TableEntry, TableMode};
use super::pgtools::{self, SchemaFilter};
use super::session::{column_list, SESSION_SETUP};
use super::{io_err, BackupError, Progress};
use crate::db::{Client, DbError, Target};
use crate::ident::{qualified, quote_ident};

/// What to restore and how.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// Only these tables (`schema.table`, or `table` in `public`), data only, into tables that
    /// already exist. Empty = the whole backup, schema included.
    pub tables: Vec<String>,
    /// Drop everything in the target first (whole restore) or empty the listed tables.
    pub clean: bool,
    /// Parallel COPY sessions and pg_restore jobs.
    pub workers: usize,
    pub filter: SchemaFilter,
    pub keys: KeyConfig,
    /// Check every file's size and SHA-256 (and the manifest's hash) before anything is
    /// written to the target, so a damaged backup never touches it. `false` only with
    /// `--no-verify`, or for a scratch database.
    pub verify: bool,
    /// Allow `clean` to replace a database's data with a backup of another database
    /// (`--from-other-database`).
    pub from_other_database: bool,
    /// Where the restored database keeps pgkeel's audit table: the restore is recorded there
    /// when it has one.
    pub audit: Option<crate::ledger::Ledger>,
}

/// What a restore did.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct RestoreSummary {
    pub backup: String,
    pub kind: Kind,
    /// The backups read, base first.
    pub chain: Vec<String>,
    pub target: String,
    pub tables: usize,
    pub rows: u64,
    pub sequences: usize,
    pub raw_bytes: u64,
    pub duration_ms: u64,
    /// A whole `--clean` restore over a non-empty database went into a fresh database that was
    /// then swapped in: the previous database, kept under this name (drop it once satisfied).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaced: Option<String>,
}

/// A backup opened for reading: its manifest, directory and keys.
pub(crate) struct Opened {
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub keys: Arc<Keys>,
}

/// Opens the backup at `dir` and, for an incremental, its base (returned first).
pub(crate) fn open_chain(dir: &Path, keys: &KeyConfig) -> Result<Vec<Opened>, BackupError> {
    let m = Manifest::read(dir)?;
    let k = Arc::new(keys.keys_for(dir, &m)?);
    let mut chain = Vec::new();
    if let (Kind::Incremental, Some(base)) = (m.kind, &m.base) {
        let parent = dir.parent().unwrap_or(Path::new("."));
        let bdir = parent.join(&base.name);
        let missing = || BackupError::MissingBase {
            name: base.name.clone(),
            dir: parent.to_path_buf(),
        };
        let bm = Manifest::read(&bdir).map_err(|_| missing())?;
        if bm.manifest_sha256 != base.manifest_sha256 {
            return Err(missing());
        }
        let bk = Arc::new(keys.keys_for(&bdir, &bm)?);
        chain.push(Opened {
            dir: bdir,
            manifest: bm,
            keys: bk,
        });
    }
    chain.push(Opened {
        dir: dir.to_path_buf(),
        manifest: m,
        keys: k,
    });
    Ok(chain)
}

/// One file to load.
struct Load {
    dir: PathBuf,
    file: FileEntry,
    encrypted: bool,
    keys: Arc<Keys>,
    sql: String,
    table: String,
}

fn copy_in_sql(t: &TableEntry, into: &str) -> String {
    format!("COPY {into} ({}) FROM STDIN", column_list(&t.columns))
}

/// Restores the backup in `dir` (a directory, or `s3://bucket/prefix/NAME`) into `target`. Verifies it first (unless told not to): a
/// damaged backup fails with the target untouched; a failure after `--clean` emptied the
/// target says so.
pub async fn restore(
    dir: &Path,
    target: &Target,
    opts: &RestoreOptions,
    progress: Arc<dyn Progress>,
) -> Result<RestoreSummary, BackupError> {
    // From a bucket: downloaded (with its base) into staging, then verified like any backup.
    let fetched = super::bucket::fetch(dir).await?;
    let dir = fetched.as_ref().map_or(dir, |f| f.path());
    if opts.verify {
        verify_chain(&open_chain(dir, &opts.keys)?, &progress).await?;
    }
    let opts = &RestoreOptions {
        verify: false,
        ..opts.clone()
    };
    let mut swap = false;
    if opts.clean && opts.tables.is_empty() {
        let client = target.connect().await?;
        swap = user_objects(&client).await? > 0 && may_create_databases(&client).await?;
    }
    let summary = if swap {
        restore_by_swap(dir, target, opts, progress).await?
    } else {
        let mut cleaned = false;
        restore_into(dir, target, opts, progress, &mut cleaned)
            .await
            .map_err(|source| match cleaned {
                true => BackupError::FailedAfterClean {
                    target: target.to_string(),
                    source: Box::new(source),
                },
                false => source,
            })?
    };
    if let Some(ledger) = &opts.audit {
        let detail = serde_json::json!({
            "backup": summary.backup,
            "chain": summary.chain,
            "tables": summary.tables,
            "rows": summary.rows,
            "replaced": summary.replaced,
            "clean": opts.clean,
        });
        let client = target.connect().await?;
        ledger
            .audit_if_present(&client, "restore", "restored", &detail)
            .await?;
    }
    Ok(summary)
}

/// Checks the stored size and SHA-256 of every file of the chain (the manifests' hashes were
/// checked when they were read) before the target is touched: a flipped byte or a missing file
/// must cost nothing.
async fn verify_chain(chain: &[Opened], progress: &Arc<dyn Progress>) -> Result<(), BackupError> {
    progress.phase("verify");
    for o in chain {
        let (dir, manifest) = (o.dir.clone(), o.manifest.clone());
        let problems =
            tokio::task::spawn_blocking(move || super::verify::verify_stored(&dir, &manifest))
                .await
                .map_err(|e| BackupError::Worker {
                    reason: e.to_string(),
                })?;
        if !problems.is_empty() {
            return Err(BackupError::DamagedBeforeRestore {
                backup: o.manifest.name.clone(),
                problems: problems
                    .iter()
                    .map(|p| format!("{}: {}", p.subject, p.problem))
                    .collect::<Vec<_>>()
                    .join("; "),
            });
        }
    }
    Ok(())
}

/// Refuses to replace the data of the database `client` is connected to with a backup of
/// another database ([`BackupError::OtherDatabase`]); a backup that names no source passes.
async fn check_source(m: &Manifest, client: &Client) -> Result<(), BackupError> {
    let Some(source) = &m.source else {
        return Ok(());
    };
    let here = super::manifest::SourceDb::of(client).await?;
    if source.same_as(&here) {
        return Ok(());
    }
    Err(BackupError::OtherDatabase {
        backup: m.name.clone(),
        source_db: source.to_string(),
        target_db: here.to_string(),
    })
}

/// Whether the restoring role may `CREATE DATABASE` (superuser or CREATEDB).
async fn may_create_databases(client: &Client) -> Result<bool, DbError> {
    client
        .query_one(
            "SELECT rolsuper OR rolcreatedb FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await
        .map(|r| r.get(0))
        .map_err(|e| DbError::query("checking whether the role may create databases", e))
}

/// A whole `--clean` restore over a database with data in it: the backup goes into a fresh
/// database beside it, and only once that succeeded are the names swapped (in one transaction,
/// from the server's `postgres` database, after disconnecting the target's sessions). A failure
/// before the swap drops the fresh database and leaves the target exactly as it was.
async fn restore_by_swap(
    dir: &Path,
    target: &Target,
    opts: &RestoreOptions,
    progress: Arc<dyn Progress>,
) -> Result<RestoreSummary, BackupError> {
    let name = target.dbname().to_owned();
    // The source check runs against the target itself, before anything is created.
    if !opts.from_other_database {
        check_source(&Manifest::read(dir)?, &target.connect().await?).await?;
    }
    let fresh =
        crate::db::ScratchDatabase::create(target, &format!("{name}_pgkeel_restore")).await?;
    let inner = RestoreOptions {
        clean: false,
        from_other_database: true,
        ..opts.clone()
    };
    let mut cleaned = false;
    let mut summary =
        match restore_into(dir, fresh.target(), &inner, progress.clone(), &mut cleaned).await {
            Ok(s) => s,
            Err(e) => {
                let _ = fresh.drop_now().await;
                return Err(e);
            }
        };
    progress.phase("swap");
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let mut replaced = format!("{name}_pgkeel_replaced_{stamp}");
    replaced.truncate(63);
    let new_name = fresh.keep();
    let admin = target.with_dbname("postgres");
    let swap = async {
        let c = admin.connect().await?;
        let (t, n, r) = (quote_ident(&name), quote_ident(&new_name), quote_ident(&replaced));
        let mut last = None;
        for _ in 0..5 {
            // Sessions reconnecting between the two steps make the rename fail (55006): again.
            let _ = c
                .query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                      WHERE datname = ANY($1) AND pid <> pg_backend_pid()",
                    &[&vec![name.clone(), new_name.clone()]],
                )
                .await;
            match c
                .batch_execute(&format!(
                    "BEGIN; ALTER DATABASE {t} RENAME TO {r}; ALTER DATABASE {n} RENAME TO {t}; COMMIT;"
                ))
                .await
            {
                Ok(()) => return Ok(()),
                Err(e) => {
                    let _ = c.batch_execute("ROLLBACK").await;
                    last = Some(e);
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
            }
        }
        Err(DbError::query(
            format!("swapping the restored database {new_name} in for {name}"),
            last.expect("five tries failed"),
        ))
    }
    .await;
    if let Err(e) = swap {
        return Err(BackupError::SwapFailed {
            target: name,
            restored: new_name,
            source: Box::new(e.into()),
        });
    }
    summary.target = target.to_string();
    summary.replaced = Some(replaced);
    Ok(summary)
}

async fn restore_into(
    dir: &Path,
    target: &Target,
    opts: &RestoreOptions,
    progress: Arc<dyn Progress>,
    cleaned: &mut bool,
) -> Result<RestoreSummary, BackupError> {
    let started = Instant::now();
    let chain = open_chain(dir, &opts.keys)?;
    let top = chain.last().expect("chain has the backup itself");
    let base = (chain.len() > 1).then(|| &chain[0]);
    let m = &top.manifest;
    let client = target.connect().await?;
    client
        .batch_execute(SESSION_SETUP)
        .await
        .map_err(|e| DbError::query("preparing the restore session", e))?;

    // Which tables.
    let selected: Vec<&TableEntry> = if opts.tables.is_empty() {
        m.tables.iter().collect()
    } else {
        let mut out = Vec::new();
        for want in &opts.tables {
            let (s, n) = want.split_once('.').unwrap_or(("public", want));
            let t = m
                .tables
                .iter()
                .find(|t| t.schema == s && t.name == n)
                .ok_or_else(|| BackupError::UnknownTable {
                    table: want.clone(),
                    backup: m.name.clone(),
                })?;
            out.push(t);
        }
        out
    };
    let whole = opts.tables.is_empty();
    if opts.clean && !opts.from_other_database {
        check_source(m, &client).await?;
    }

    let schema_file = if whole {
        if opts.clean {
            progress.phase("clean");
            clean_database(&client).await?;
            *cleaned = true;
        } else {
            let objects = user_objects(&client).await?;
            if objects > 0 {
                return Err(BackupError::TargetNotEmpty {
                    target: target.to_string(),
                    objects,
                });
            }
        }
        progress.phase("schema");
        let archive = decrypt_to_temp(&top.dir, &m.schema, m.is_encrypted(), &top.keys)?;
        let list_text = pgtools::restore_list(archive.path(), opts.filter).await?;
        let mut list = tempfile::NamedTempFile::new().map_err(io_err("temporary list file"))?;
        std::io::Write::write_all(&mut list, list_text.as_bytes()).map_err(io_err(list.path()))?;
        pgtools::restore_section(
            target,
            archive.path(),
            Some(list.path()),
            "pre-data",
            1,
            opts.filter,
        )
        .await?;
        Some((archive, list))
    } else {
        for t in &selected {
            let name = qualified(&t.schema, &t.name);
            if opts.clean {
                client
                    .batch_execute(&format!("TRUNCATE {name}"))
                    .await
                    .map_err(|e| DbError::query(format!("emptying {name}"), e))?;
            } else {
                let any = client
                    .query_opt(&format!("SELECT 1 FROM {name} LIMIT 1"), &[])
                    .await
                    .map_err(|e| DbError::query(format!("checking {name}"), e))?;
                if any.is_some() {
                    return Err(BackupError::TargetNotEmpty {
                        target: format!("{target} table {}", t.display_name()),
                        objects: 1,
                    });
                }
            }
        }
        None
    };

    // Data: the files of every selected table, from this backup or its base.
    progress.phase("data");
    let mut loads = Vec::new();
    let mut deltas = Vec::new();
    for t in &selected {
        let into = qualified(&t.schema, &t.name);
        let from_base = |bt: &TableEntry, b: &Opened| {
            bt.files
                .iter()
                .map(|f| Load {
                    dir: b.dir.clone(),
                    file: f.clone(),
                    encrypted: b.manifest.is_encrypted(),
                    keys: b.keys.clone(),
                    sql: copy_in_sql(t, &into),
                    table: t.display_name(),
                })
                .collect::<Vec<_>>()
        };
        let base_table = || {
            base.and_then(|b| {
                b.manifest
                    .tables
                    .iter()
                    .find(|bt| bt.schema == t.schema && bt.name == t.name)
                    .map(|bt| (bt, b))
            })
        };
        match &t.mode {
            TableMode::Full => loads.extend(from_base(t, top)),
            TableMode::Unchanged => {
                let (bt, b) = base_table().ok_or_else(|| BackupError::MissingBase {
                    name: m.base.as_ref().map(|b| b.name.clone()).unwrap_or_default(),
                    dir: dir.to_path_buf(),
                })?;
                loads.extend(from_base(bt, b));
            }
            TableMode::Changed { key, .. } => {
                let (bt, b) = base_table().ok_or_else(|| BackupError::MissingBase {
                    name: m.base.as_ref().map(|b| b.name.clone()).unwrap_or_default(),
                    dir: dir.to_path_buf(),
                })?;
                loads.extend(from_base(bt, b));
                deltas.push((*t, key.clone()));
            }
        }
    }
    let raw_bytes: u64 = loads.iter().map(|l| l.file.raw_bytes).sum();
    let mut rows = run_loads(target, loads, opts.workers.max(1), &progress).await?;
    for (t, key) in deltas {
        rows += apply_delta(&client, top, t, &key, &progress).await?;
    }

    // Sequences, then post-data.
    let mut sequences = 0;
    if whole {
        for s in &m.sequences {
            client
                .query_one(
                    "SELECT pg_catalog.setval($1::text::regclass, $2, $3)",
                    &[&qualified(&s.schema, &s.name), &s.last_value, &s.is_called],
                )
                .await
                .map_err(|e| {
                    DbError::query(format!("setting sequence {}.{}", s.schema, s.name), e)
                })?;
            sequences += 1;
        }
    }
    if let Some((archive, list)) = schema_file {
        progress.phase("post-data");
        pgtools::restore_section(
            target,
            archive.path(),
            Some(list.path()),
            "post-data",
            opts.workers.max(1),
            opts.filter,
        )
        .await?;
    }
    Ok(RestoreSummary {
        backup: m.name.clone(),
        kind: m.kind,
        chain: chain.iter().map(|o| o.manifest.name.clone()).collect(),
        target: target.to_string(),
        tables: selected.len(),
        rows,
        sequences,
        raw_bytes,
        duration_ms: started.elapsed().as_millis() as u64,
        replaced: None,
    })
}

/// Runs the loads on `workers` sessions, largest files first; returns the rows loaded.
async fn run_loads(
    target: &Target,
    mut loads: Vec<Load>,
    workers: usize,
    progress: &Arc<dyn Progress>,
) -> Result<u64, BackupError> {
    loads.sort_by_key(|l| std::cmp::Reverse(l.file.raw_bytes));
    let n = workers.min(loads.len()).max(1);
    let queue = Arc::new(Mutex::new(loads.into_iter().collect::<VecDeque<_>>()));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let target = target.clone();
        let queue = queue.clone();
        let progress = progress.clone();
        set.spawn(async move {
            let client = target.connect().await?;
            client
                .batch_execute(&format!("{SESSION_SETUP}; SET synchronous_commit = off"))
                .await
                .map_err(|e| DbError::query("preparing a restore session", e))?;
            let mut rows = 0u64;
            loop {
                let job = queue.lock().expect("queue lock").pop_front();
                let Some(job) = job else { break };
                progress.table_started(&job.table, job.file.raw_bytes);
                rows += super::session::copy_in(
                    &client,
                    &job.sql,
                    &job.dir,
                    &job.file,
                    job.encrypted,
                    &job.keys,
                    &job.table,
                    &progress,
                )
                .await?;
                progress.table_done(&job.table);
            }
            Ok::<_, BackupError>(rows)
        });
    }
    let mut rows = 0;
    while let Some(res) = set.join_next().await {
        match res {
            Ok(Ok(r)) => rows += r,
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
    Ok(rows)
}

/// Applies an incremental's changed rows of `t` over the base's: load them into a temporary
/// table, delete the rows with the same key, insert them.
async fn apply_delta(
    client: &Client,
    top: &Opened,
    t: &TableEntry,
    key: &[String],
    progress: &Arc<dyn Progress>,
) -> Result<u64, BackupError> {
    let into = qualified(&t.schema, &t.name);
    let ctx = |e| {
        DbError::query(
            format!("applying the changed rows of {}", t.display_name()),
            e,
        )
    };
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS pg_temp.pgkeel_delta; \
             CREATE TEMP TABLE pgkeel_delta AS SELECT {cols} FROM {into} WITH NO DATA",
            cols = column_list(&t.columns)
        ))
        .await
        .map_err(ctx)?;
    let mut rows = 0;
    for f in &t.files {
        rows += super::session::copy_in(
            client,
            &copy_in_sql(t, "pg_temp.pgkeel_delta"),
            &top.dir,
            f,
            top.manifest.is_encrypted(),
            &top.keys,
            &t.display_name(),
            progress,
        )
        .await?;
    }
    let on = key
        .iter()
        .map(|k| format!("t.{c} = d.{c}", c = quote_ident(k)))
        .collect::<Vec<_>>()
        .join(" AND ");
    client
        .batch_execute(&format!(
            "DELETE FROM {into} t USING pg_temp.pgkeel_delta d WHERE {on}; \
             INSERT INTO {into} ({cols}) SELECT {cols} FROM pg_temp.pgkeel_delta; \
             DROP TABLE pg_temp.pgkeel_delta",
            cols = column_list(&t.columns)
        ))
        .await
        .map_err(ctx)?;
    Ok(rows)
}

/// Tables, views, sequences and foreign tables that are not the system's or an extension's.
pub(crate) async fn user_objects(client: &Client) -> Result<i64, DbError> {
    client
        .query_one(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
                AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                AND n.nspname NOT LIKE 'pg\\_%'
                AND NOT EXISTS (SELECT 1 FROM pg_depend d
                                 WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                                   AND d.deptype = 'e')",
            &[],
        )
        .await
        .map(|r| r.get(0))
        .map_err(|e| DbError::query("checking whether the target is empty", e))
}

/// Drops every non-system schema (and everything in it) and recreates an empty `public`.
async fn clean_database(client: &Client) -> Result<(), DbError> {
    let schemas: Vec<String> = client
        .query(
            "SELECT nspname::text FROM pg_namespace
              WHERE nspname NOT IN ('pg_catalog', 'information_schema') AND nspname NOT LIKE 'pg\\_%'",
            &[],
        )
        .await
        .map_err(|e| DbError::query("listing schemas to clean", e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for s in schemas {
        client
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", quote_ident(&s)))
            .await
            .map_err(|e| DbError::query(format!("dropping schema {s} (--clean)"), e))?;
    }
    client
        .batch_execute("CREATE SCHEMA public; GRANT USAGE ON SCHEMA public TO PUBLIC")
        .await
        .map_err(|e| DbError::query("recreating schema public (--clean)", e))
}

/// Decrypts and decompresses the schema archive into a private temporary file (pg_restore
/// needs a seekable file for `--jobs`), checking its hash.
fn decrypt_to_temp(
    dir: &Path,
    entry: &FileEntry,
    encrypted: bool,
    keys: &Keys,
) -> Result<tempfile::NamedTempFile, BackupError> {
    let path = dir.join(&entry.path);
    let mut tmp = tempfile::NamedTempFile::new().map_err(io_err("temporary schema file"))?;
    let mut r = OpenedReader::open(&path, encrypted, keys)?;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = r.read(&mut buf).map_err(|e| BackupError::Corrupt {
            path: path.clone(),
            reason: format!("cannot decompress: {e}"),
        })?;
        if n == 0 {
            break;
        }
        std::io::Write::write_all(&mut tmp, &buf[..n]).map_err(io_err(tmp.path()))?;
    }
    let stored = r.finish();
    if stored.sha256 != entry.sha256 {
        return Err(BackupError::Corrupt {
            path,
            reason: format!(
                "its SHA-256 is {} but the manifest records {}",
                stored.sha256, entry.sha256
            ),
        });
    }
    Ok(tmp)
}
