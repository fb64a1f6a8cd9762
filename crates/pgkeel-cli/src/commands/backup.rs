//! `pgkeel backup full|incremental|list|verify|cleanup` and `pgkeel restore`: flags, progress
//! bars, summaries and exit codes. The work is in `pgkeel::backup`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use clap::{Args, Subcommand};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use pgkeel::backup::pgtools::SchemaFilter;
use pgkeel::backup::{
    self, BackupOptions, BackupStatus, KeyConfig, Manifest, Progress, Quiet, RestoreOptions,
    VerifyOptions,
};
use pgkeel::db::Target;
use serde::Serialize;

use crate::ctx::Ctx;
use crate::exit_codes;
use crate::render::ms;

#[derive(Debug, Args)]
pub struct BackupArgs {
    #[command(subcommand)]
    command: BackupCommand,
}

#[derive(Debug, Subcommand)]
enum BackupCommand {
    /// Take a consistent full backup (spec: db:backup:full): schema by pg_dump, data by parallel
    /// COPY at one exported snapshot, zstd-compressed, age-encrypted when configured.
    Full(FullArgs),
    /// Store only what changed since a base backup (spec: db:backup:incremental <date>).
    Incremental(IncrementalArgs),
    /// List backups with time, kind, size, validity and base.
    List(DirArgs),
    /// Check a backup: manifest hash, every file's hash, decrypt and decompress everything;
    /// --restore-test also restores it into a scratch database and compares every table.
    Verify(VerifyArgs),
    /// Delete backups older than BACKUP_RETENTION_DAYS, always keeping the newest valid full
    /// backup and every base an incremental needs (spec: db:backup:cleanup).
    Cleanup(CleanupArgs),
}

#[derive(Debug, Args)]
pub struct DirArgs {
    /// Directory holding the backups, or an S3-compatible bucket: s3://BUCKET/PREFIX (AWS S3,
    /// Railway buckets, R2, MinIO, B2; endpoint and credentials from AWS_ENDPOINT_URL,
    /// AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY; AWS_ALLOW_HTTP=true for plain http).
    /// Default: PGKEEL_BACKUP_DIR / backup.dir, `backups/`.
    #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
    dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct FullArgs {
    /// Name of the backup directory (default full-<UTC timestamp>).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    #[command(flatten)]
    dir: DirArgs,
    /// Parallel COPY sessions (default: DATABASE_CONNECTION_POOL_SIZE, bounded by the server's
    /// free connections and the number of tables and ranges).
    #[arg(long, short = 'j', value_name = "N")]
    jobs: Option<usize>,
    /// Split tables larger than this many MiB into ctid ranges copied in parallel [default: 64;
    /// 16 into a bucket, so the upload overlaps the backup].
    #[arg(long, value_name = "MIB")]
    chunk_mib: Option<u64>,
    /// 1–9 on gzip's scale, as the spec's BACKUP_COMPRESSION_LEVEL=6 and pg_dump -Z (6 is
    /// zstd level 3), or zstd:N for an exact zstd level 1–22 [default: BACKUP_COMPRESSION_LEVEL]
    #[arg(long, value_name = "LEVEL")]
    compression_level: Option<pgkeel::config::CompressionLevel>,
}

#[derive(Debug, Args)]
pub struct IncrementalArgs {
    /// Rows changed since this time (`2024-05-01`, `2024-05-01T12:00:00Z`) or `last` (the base
    /// backup's own start time).
    #[arg(long, value_name = "DATE|last")]
    since: String,
    /// The base backup (default: the newest valid full backup).
    #[arg(long, value_name = "NAME")]
    base: Option<String>,
    /// Timestamp column per table, `table=column` (repeatable); default: updated_at,
    /// updatedAt, modified_at, created_at or createdAt, whichever exists.
    #[arg(long = "column", value_name = "TABLE=COLUMN")]
    columns: Vec<String>,
    /// Name of the backup directory (default incremental-<UTC timestamp>).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    #[command(flatten)]
    dir: DirArgs,
    /// Parallel COPY sessions.
    #[arg(long, short = 'j', value_name = "N")]
    jobs: Option<usize>,
}

#[derive(Debug, Args)]
pub struct KeyArgs {
    /// age identity file to open encrypted backups (default BACKUP_ENCRYPTION_IDENTITY_FILE;
    /// BACKUP_ENCRYPTION_PASSPHRASE also works).
    #[arg(long, value_name = "FILE")]
    identity: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The backup: a directory, a name in the backup directory, or `latest`.
    #[arg(value_name = "PATH")]
    path: String,
    /// Also restore into a scratch database on the configured server and compare every table's
    /// row count and content hash with the manifest (needs CREATE DATABASE).
    #[arg(long)]
    restore_test: bool,
    #[command(flatten)]
    dir: DirArgs,
    #[command(flatten)]
    keys: KeyArgs,
    /// Parallel sessions for --restore-test.
    #[arg(long, short = 'j', value_name = "N", default_value_t = 2)]
    jobs: usize,
}

#[derive(Debug, Args)]
pub struct CleanupArgs {
    /// Show what would be deleted; delete nothing.
    #[arg(long)]
    dry_run: bool,
    /// Keep backups this many days (default BACKUP_RETENTION_DAYS).
    #[arg(long, value_name = "DAYS")]
    retention_days: Option<u32>,
    #[command(flatten)]
    dir: DirArgs,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup: a directory, a name in the backup directory, or `latest`.
    #[arg(value_name = "PATH")]
    path: String,
    /// Restore into this database instead of DATABASE_URL. It must be empty unless --clean.
    /// `latest` still means the newest backup of DATABASE_URL's database.
    #[arg(long, value_name = "URL", hide_env_values = true)]
    target_url: Option<String>,
    /// Restore only these tables' rows (schema.table or table, comma-separated or repeated) into
    /// tables that already exist; they must be empty unless --clean (which empties them).
    #[arg(long, value_name = "TABLE", value_delimiter = ',')]
    tables: Vec<String>,
    /// Replace what the target database holds: the backup goes into a fresh database that is
    /// swapped in by name at the end (the old one is kept, renamed), or, for a role that may
    /// not create databases, everything is dropped first. With --tables: empty those tables.
    /// The backup is verified before anything changes.
    #[arg(long)]
    clean: bool,
    /// Skip checking every file's size and SHA-256 before the target is touched. Dangerous: a
    /// damaged backup then fails halfway, with --clean after the target was emptied.
    #[arg(long)]
    no_verify: bool,
    /// With --clean: allow replacing the target's data with a backup taken of another database
    /// (the backup's manifest names its database; without this, that is refused).
    #[arg(long)]
    from_other_database: bool,
    /// Parallel COPY sessions and pg_restore jobs.
    #[arg(long, short = 'j', value_name = "N", default_value_t = 2)]
    jobs: usize,
    /// Restore object owners (default: objects belong to the restoring role, as managed hosts
    /// need).
    #[arg(long)]
    owners: bool,
    /// Restore GRANTs (default: skipped).
    #[arg(long)]
    acls: bool,
    /// Restore event triggers (default: skipped; managed hosts forbid them).
    #[arg(long)]
    event_triggers: bool,
    #[command(flatten)]
    dir: DirArgs,
    #[command(flatten)]
    keys: KeyArgs,
}

pub async fn run(ctx: Ctx, args: BackupArgs) -> anyhow::Result<i32> {
    match args.command {
        BackupCommand::Full(a) => full(ctx, a).await,
        BackupCommand::Incremental(a) => incremental(ctx, a).await,
        BackupCommand::List(a) => list(ctx, a).await,
        BackupCommand::Verify(a) => verify(ctx, a).await,
        BackupCommand::Cleanup(a) => cleanup(ctx, a).await,
    }
}

fn backup_dir(ctx: &Ctx, d: &DirArgs) -> PathBuf {
    let dir = d
        .dir
        .clone()
        .unwrap_or_else(|| ctx.settings.backup_dir.clone());
    backup::locate(&dir, &ctx.cwd)
}

/// A directory, a name inside the backup directory, or `latest`: the newest valid backup of the
/// configured database (`backup::latest`; when it cannot be reached, of the only database the
/// folder has backups of).
async fn resolve(ctx: &Ctx, d: &DirArgs, path: &str) -> anyhow::Result<PathBuf> {
    let dir = backup_dir(ctx, d);
    if path == "latest" {
        // A quick look only: in an emergency the database may be down.
        let mut quick = ctx.settings.clone();
        quick.connect_timeout = quick.connect_timeout.min(std::time::Duration::from_secs(5));
        let source = match Target::from_settings(&quick) {
            Ok(t) => match t.connect().await {
                Ok(client) => backup::SourceDb::of(&client).await.ok(),
                Err(_) => None,
            },
            Err(_) => None,
        };
        return Ok(backup::latest(&dir, source.as_ref(), None).await?.path);
    }
    let p = Path::new(path);
    if backup::bucket::is_bucket(p) || backup::bucket::is_bucket(&dir) {
        // In a bucket a backup is named (or given as its full s3:// path).
        return Ok(if backup::bucket::is_bucket(p) {
            p.to_path_buf()
        } else {
            dir.join(path)
        });
    }
    let p = if p.is_absolute() {
        p.to_path_buf()
    } else {
        ctx.cwd.join(p)
    };
    if p.is_dir() {
        return Ok(p);
    }
    Ok(dir.join(path))
}

fn keys(ctx: &Ctx, k: &KeyArgs) -> KeyConfig {
    let mut c = KeyConfig::from_settings(&ctx.settings);
    if let Some(f) = &k.identity {
        c.identity_file = Some(ctx.cwd.join(f));
    }
    c
}

/// Bytes as `12.3 MB`.
pub fn size(b: u64) -> String {
    let b = b as f64;
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.1} kB", b / 1e3)
    } else {
        format!("{b} B")
    }
}

/// Progress bars per table on stderr when it is a terminal.
struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl Bars {
    fn for_terminal() -> Arc<dyn Progress> {
        if !Ctx::stderr_is_tty() {
            return Arc::new(Quiet);
        }
        Arc::new(Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: Mutex::new(HashMap::new()),
        })
    }
}

impl Progress for Bars {
    fn table_started(&self, table: &str, estimated_bytes: u64) {
        let mut bars = self.bars.lock().expect("bars");
        if bars.contains_key(table) {
            return;
        }
        let bar = self.multi.add(ProgressBar::new(estimated_bytes.max(1)));
        bar.set_style(
            ProgressStyle::with_template(
                "  {prefix:<40!} {bar:30} {bytes:>10} {binary_bytes_per_sec:>12}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_prefix(table.to_string());
        bars.insert(table.to_string(), bar);
    }
    fn table_bytes(&self, table: &str, bytes: u64) {
        if let Some(b) = self.bars.lock().expect("bars").get(table) {
            if b.position() + bytes > b.length().unwrap_or(0) {
                b.set_length(b.position() + bytes);
            }
            b.inc(bytes);
        }
    }
    fn table_done(&self, table: &str) {
        if let Some(b) = self.bars.lock().expect("bars").remove(table) {
            b.finish_and_clear();
        }
    }
    fn phase(&self, name: &str) {
        let _ = self.multi.println(format!("{name}…"));
    }
}

#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct BackupOut<'a> {
    ok: bool,
    path: String,
    name: &'a str,
    kind: String,
    tables: usize,
    rows: u64,
    raw_bytes: u64,
    stored_bytes: u64,
    ratio: f64,
    duration_ms: i64,
    throughput_mb_s: f64,
    encrypted: bool,
    base: Option<&'a str>,
}

fn print_backup(ctx: &Ctx, m: &Manifest, dir: &Path) -> anyhow::Result<()> {
    let raw = m.raw_bytes();
    let stored = m.stored_bytes().max(1);
    let secs = (m.duration_ms().max(1) as f64) / 1000.0;
    let out = BackupOut {
        ok: true,
        path: dir.join(&m.name).display().to_string(),
        name: &m.name,
        kind: m.kind.to_string(),
        tables: m.tables.len(),
        rows: m.tables.iter().map(|t| t.rows).sum(),
        raw_bytes: raw,
        stored_bytes: stored,
        ratio: raw as f64 / stored as f64,
        duration_ms: m.duration_ms(),
        throughput_mb_s: raw as f64 / 1e6 / secs,
        encrypted: m.is_encrypted(),
        base: m.base.as_ref().map(|b| b.name.as_str()),
    };
    if ctx.json() {
        ctx.print_json(&out)?;
    } else {
        println!("backup {} ({}) written to {}", out.name, out.kind, out.path);
        println!(
            "  {} tables, {} rows; {} of data stored in {} (ratio {:.1}x){}",
            out.tables,
            out.rows,
            size(raw),
            size(stored),
            out.ratio,
            if out.encrypted { ", encrypted" } else { "" }
        );
        println!(
            "  {} at {:.1} MB/s",
            ms(out.duration_ms.max(0) as u64),
            out.throughput_mb_s
        );
    }
    Ok(())
}

async fn full(ctx: Ctx, a: FullArgs) -> anyhow::Result<i32> {
    let dir = backup_dir(&ctx, &a.dir);
    let mut opts = BackupOptions::from_settings(&ctx.settings);
    opts.dir = dir.clone();
    opts.name = a.name;
    opts.workers = a.jobs;
    opts.chunk_bytes = a.chunk_mib.map(|m| m.max(1) << 20);
    if let Some(l) = a.compression_level {
        opts.level = l.zstd();
    }
    if !ctx.json() {
        eprintln!(
            "pgkeel: full backup of {} → {}",
            ctx.target()?,
            dir.display()
        );
    }
    let progress = if ctx.json() {
        Arc::new(Quiet)
    } else {
        Bars::for_terminal()
    };
    let m = backup::full(&ctx.settings, &opts, progress).await?;
    print_backup(&ctx, &m, &dir)?;
    Ok(exit_codes::SUCCESS)
}

async fn incremental(ctx: Ctx, a: IncrementalArgs) -> anyhow::Result<i32> {
    let dir = backup_dir(&ctx, &a.dir);
    let since = backup::Since::parse(&a.since)?;
    let mut columns = HashMap::new();
    for c in &a.columns {
        let (t, col) = c.split_once('=').ok_or_else(|| {
            anyhow::anyhow!("--column `{c}`: expected TABLE=COLUMN, e.g. orders=updated_at")
        })?;
        columns.insert(t.to_string(), col.to_string());
    }
    let mut base = BackupOptions::from_settings(&ctx.settings);
    base.dir = dir.clone();
    base.name = a.name;
    base.workers = a.jobs;
    let opts = backup::IncrementalOptions {
        backup: base,
        since,
        base: a.base,
        columns,
    };
    if !ctx.json() {
        eprintln!(
            "note: incremental backups find changed rows by a timestamp column; rows DELETEd since the base are not captured \
             (tables whose content differs but have no such column are stored whole)."
        );
    }
    let progress = if ctx.json() {
        Arc::new(Quiet)
    } else {
        Bars::for_terminal()
    };
    let m = backup::incremental(&ctx.settings, &opts, progress).await?;
    print_backup(&ctx, &m, &dir)?;
    if !ctx.json() {
        for t in &m.tables {
            let how = match &t.mode {
                backup::manifest::TableMode::Full => "stored whole".to_string(),
                backup::manifest::TableMode::Unchanged => "unchanged (in the base)".to_string(),
                backup::manifest::TableMode::Changed { column, .. } => format!(
                    "{} changed rows by {column}",
                    t.files.iter().map(|f| f.rows).sum::<u64>()
                ),
            };
            println!("  {:<40} {how}", t.display_name());
        }
    }
    Ok(exit_codes::SUCCESS)
}

async fn list(ctx: Ctx, a: DirArgs) -> anyhow::Result<i32> {
    let dir = backup_dir(&ctx, &a);
    let all = backup::list(&dir).await?;
    if ctx.json() {
        ctx.print_json(&ListOut {
            ok: true,
            dir: dir.display().to_string(),
            backups: &all,
        })?;
        return Ok(exit_codes::SUCCESS);
    }
    if all.is_empty() {
        println!("no backups in {}", dir.display());
        return Ok(exit_codes::SUCCESS);
    }
    println!(
        "  {:<36} {:<20} {:<12} {:>10} {:<11} BASE",
        "NAME", "CREATED (UTC)", "KIND", "SIZE", "STATUS"
    );
    for b in &all {
        let status = match &b.status {
            BackupStatus::Valid => "valid",
            BackupStatus::Incomplete => "INCOMPLETE",
            BackupStatus::Damaged(_) => "DAMAGED",
        };
        println!(
            "  {:<36} {:<20} {:<12} {:>10} {:<11} {}",
            b.name,
            b.created_at
                .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_default(),
            b.kind.map(|k| k.to_string()).unwrap_or_else(|| "-".into()),
            size(b.stored_bytes),
            status,
            b.base.as_deref().unwrap_or("")
        );
        if let BackupStatus::Damaged(why) = &b.status {
            println!("  {:<36} └ {why}", "");
        }
    }
    Ok(exit_codes::SUCCESS)
}

async fn verify(ctx: Ctx, a: VerifyArgs) -> anyhow::Result<i32> {
    let path = resolve(&ctx, &a.dir, &a.path).await?;
    let restore_test = if a.restore_test {
        Some(Target::from_settings(&ctx.settings)?)
    } else {
        None
    };
    let opts = VerifyOptions {
        keys: keys(&ctx, &a.keys),
        restore_test,
        workers: a.jobs.max(1),
    };
    let progress = if ctx.json() {
        Arc::new(Quiet)
    } else {
        Bars::for_terminal()
    };
    let report = backup::verify(&path, &opts, progress).await?;
    if ctx.json() {
        ctx.print_json(&VerifyOut {
            ok: report.ok(),
            path: path.display().to_string(),
            report: &report,
        })?;
    } else {
        println!(
            "{}: {} files, {} stored, {} of data{}",
            path.display(),
            report.files,
            size(report.stored_bytes),
            size(report.raw_bytes),
            if report.restore_tested {
                format!(", restore test compared {} tables", report.tables_compared)
            } else {
                String::new()
            }
        );
        for p in &report.problems {
            println!("  FAILED {}: {}", p.subject, p.problem);
        }
        println!(
            "{}",
            if report.ok() {
                "backup OK"
            } else {
                "backup DAMAGED"
            }
        );
    }
    Ok(if report.ok() {
        exit_codes::SUCCESS
    } else {
        exit_codes::FINDINGS
    })
}

async fn cleanup(ctx: Ctx, a: CleanupArgs) -> anyhow::Result<i32> {
    let dir = backup_dir(&ctx, &a.dir);
    let days = a
        .retention_days
        .unwrap_or(ctx.settings.backup_retention_days);
    let plan = backup::cleanup(&dir, days, a.dry_run, chrono::Utc::now()).await?;
    if ctx.json() {
        ctx.print_json(&CleanupOut {
            ok: true,
            plan: &plan,
        })?;
    } else {
        for d in &plan.decisions {
            let verb = match (d.delete, plan.dry_run) {
                (true, true) => "would delete",
                (true, false) => "deleted",
                (false, _) => "kept",
            };
            println!("  {verb:<13} {:<36} {}", d.name, d.reason);
        }
        println!(
            "{} {} (retention {} days)",
            if plan.dry_run { "would free" } else { "freed" },
            size(plan.freed_bytes),
            days
        );
    }
    Ok(exit_codes::SUCCESS)
}

pub async fn restore(ctx: Ctx, a: RestoreArgs) -> anyhow::Result<i32> {
    let path = resolve(&ctx, &a.dir, &a.path).await?;
    let target = match &a.target_url {
        Some(url) => {
            let mut s = ctx.settings.clone();
            s.database_url = Some(url.clone());
            Target::from_settings(&s)?
        }
        None => ctx.target()?,
    };
    let opts = RestoreOptions {
        tables: a.tables,
        clean: a.clean,
        workers: a.jobs.max(1),
        filter: SchemaFilter {
            no_owner: !a.owners,
            no_acl: !a.acls,
            skip_event_triggers: !a.event_triggers,
        },
        keys: keys(&ctx, &a.keys),
        verify: !a.no_verify,
        from_other_database: a.from_other_database,
        audit: Some(pgkeel::ledger::Ledger::from_settings(&ctx.settings)),
    };
    if !ctx.json() {
        eprintln!("pgkeel: restoring {} → {target}", path.display());
    }
    let progress = if ctx.json() {
        Arc::new(Quiet)
    } else {
        Bars::for_terminal()
    };
    let s = backup::restore(&path, &target, &opts, progress).await?;
    if ctx.json() {
        ctx.print_json(&RestoreOut {
            ok: true,
            summary: &s,
        })?;
    } else {
        println!(
            "restored {} ({}) into {}: {} tables, {} rows, {} sequences, {} of data in {}",
            s.chain.join(" + "),
            s.kind,
            s.target,
            s.tables,
            s.rows,
            s.sequences,
            size(s.raw_bytes),
            ms(s.duration_ms)
        );
        if let Some(old) = &s.replaced {
            println!(
                "the database as it was before is kept as {old}: drop it (DROP DATABASE \"{old}\") once the restore is checked"
            );
        }
    }
    Ok(exit_codes::SUCCESS)
}

/// `migrate --env production`: the verified backup `ops::production` takes first when the run
/// would change anything; its failure stops the migration.
pub async fn before_production_migration(
    ctx: &Ctx,
    migrator: &pgkeel::migrate::Migrator<'_>,
    client: &pgkeel::db::Client,
) -> anyhow::Result<()> {
    let dir = backup_dir(ctx, &DirArgs { dir: None });
    let mut opts = BackupOptions::from_settings(&ctx.settings);
    opts.dir = dir.clone();
    let progress = if ctx.json() {
        Arc::new(Quiet)
    } else {
        Bars::for_terminal()
    };
    let taken = pgkeel::ops::production::backup_before_migrate(
        &ctx.settings,
        migrator,
        client,
        &opts,
        progress,
    )
    .await?;
    if let (Some((b, ids)), false) = (taken, ctx.json()) {
        eprintln!(
            "pgkeel: production: backup {} in {} done and verified ({} stored) before {} migration(s); migrating",
            b.manifest.name,
            dir.display(),
            size(b.manifest.stored_bytes()),
            ids.len()
        );
    }
    Ok(())
}

#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct ListOut<'a> {
    ok: bool,
    dir: String,
    backups: &'a [backup::BackupSummary],
}

#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct VerifyOut<'a> {
    ok: bool,
    path: String,
    #[serde(flatten)]
    report: &'a backup::VerifyReport,
}

#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct CleanupOut<'a> {
    ok: bool,
    #[serde(flatten)]
    plan: &'a backup::CleanupPlan,
}

#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct RestoreOut<'a> {
    ok: bool,
    #[serde(flatten)]
    summary: &'a backup::RestoreSummary,
}
