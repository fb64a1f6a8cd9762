//! Incremental backups on top of a full base. Per table, at one exported snapshot:
//! - a table with a timestamp column (`updated_at`-style, or configured) and a primary key
//!   stores only the rows whose column is at or after `since` (applied by key on restore);
//! - any other table is streamed and hashed; when its content hash equals the base's it is
//!   recorded as unchanged (a reference to the base, no file), else it is stored whole.
//!
//! The schema is always dumped again. Caveat (printed by the CLI, documented): rows deleted
//! since the base are not seen by the timestamp mode.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};

use super::bucket::Bucket;
use super::catalog;
use super::full::{
    assemble_tables, dump_schema, extension, jobs_for, open_snapshot, run_jobs, to_bucket,
    worker_count, BackupOptions, PartialDir, CHUNK_BYTES,
};
use super::manifest::{BaseRef, Kind, Manifest, TableMode, FORMAT_VERSION};
use super::{BackupError, Progress};
use crate::config::Settings;
use crate::db::{DbError, Target};
use crate::ident::{qualified, quote_ident, quote_literal};

/// Column names tried, in order, when no column is configured for a table.
pub const TIMESTAMP_COLUMNS: &[&str] = &[
    "updated_at",
    "updatedAt",
    "modified_at",
    "created_at",
    "createdAt",
];

/// Where changes start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// The base backup's start time.
    Last,
    At(DateTime<Utc>),
}

impl Since {
    /// `last`, `2024-05-01` (midnight UTC) or an RFC 3339 time.
    pub fn parse(s: &str) -> Result<Self, BackupError> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("last") {
            return Ok(Since::Last);
        }
        if let Ok(t) = DateTime::parse_from_rfc3339(s) {
            return Ok(Since::At(t.with_timezone(&Utc)));
        }
        if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            return Ok(Since::At(
                d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc(),
            ));
        }
        Err(BackupError::BadSince { input: s.into() })
    }
}

#[derive(Debug, Clone)]
pub struct IncrementalOptions {
    pub backup: BackupOptions,
    pub since: Since,
    /// The base's name (default: the newest valid full backup of the same database in
    /// `backup.dir`).
    pub base: Option<String>,
    /// `table` or `schema.table` → timestamp column.
    pub columns: HashMap<String, String>,
}

/// Takes an incremental backup over a full base.
pub async fn incremental(
    settings: &Settings,
    opts: &IncrementalOptions,
    progress: Arc<dyn Progress>,
) -> Result<Manifest, BackupError> {
    let bo = &opts.backup;
    let base_name = match &opts.base {
        Some(name) => name.clone(),
        None => {
            let client = Target::from_settings(settings)?.connect().await?;
            let source = super::manifest::SourceDb::of(&client).await?;
            catalog::latest(&bo.dir, Some(&source), Some(Kind::Full))
                .await?
                .name
        }
    };
    let Some(bucket) = Bucket::open(&bo.dir)? else {
        return incremental_local(settings, opts, &base_name, progress).await;
    };
    // In a bucket: the base's manifest (all an incremental reads of it) goes to staging beside
    // the new backup.
    let from = &bucket;
    // Files are not streamed up as they finish: a table found unchanged afterwards has its
    // file deleted again. The whole backup goes up at the end.
    to_bucket(&bucket, bo, Kind::Incremental, false, |local| async move {
        from.download_manifest(&base_name, &local.dir).await?;
        let opts = IncrementalOptions {
            backup: local,
            base: Some(base_name.clone()),
            ..opts.clone()
        };
        incremental_local(settings, &opts, &base_name, progress).await
    })
    .await
}

/// [`incremental`] into a local directory, over the base `base_name` there.
async fn incremental_local(
    settings: &Settings,
    opts: &IncrementalOptions,
    base_name: &str,
    progress: Arc<dyn Progress>,
) -> Result<Manifest, BackupError> {
    let bo = &opts.backup;
    let base = Manifest::read(&bo.dir.join(base_name))?;
    if base.kind != Kind::Full {
        return Err(BackupError::BaseNotFull { name: base.name });
    }
    let since = match opts.since {
        Since::Last => base.started_at,
        Since::At(t) => t,
    };
    let target = Target::from_settings(settings)?;
    let started_at = Utc::now();
    let (partial, name) =
        PartialDir::create_named(&bo.dir, bo.name.as_deref(), Kind::Incremental, started_at)?;
    let dir = partial.path().to_path_buf();
    let (sealing, encryption) = bo.keys.sealing_for_new_backup(&dir)?;
    let ext = extension(&sealing);
    progress.phase("snapshot");
    let snap = open_snapshot(&target, settings).await?;

    let mut jobs = Vec::new();
    let mut modes = Vec::new();
    let mut hash_checked = Vec::new();
    let mut counts = HashMap::new();
    let bookkeeping = settings.bookkeeping_tables();
    for (i, t) in snap.tables.iter().enumerate() {
        let in_base = base
            .tables
            .iter()
            .find(|b| b.schema == t.schema && b.name == t.name && b.columns == t.columns);
        let configured = opts
            .columns
            .get(&t.display_name())
            .or_else(|| {
                (t.schema == "public")
                    .then(|| opts.columns.get(&t.name))
                    .flatten()
            })
            .cloned();
        // pgkeel's and drizzle-orm's own tables are always taken whole (drizzle's `created_at`
        // is epoch milliseconds in a bigint, not a time).
        let bookkeeping = bookkeeping.contains(&(t.schema.clone(), t.name.clone()));
        let candidate = match (&configured, bookkeeping) {
            (Some(c), _) => Some(c.clone()),
            (None, true) => None,
            (None, false) => TIMESTAMP_COLUMNS
                .iter()
                .find(|c| t.columns.iter().any(|x| x == *c))
                .map(|c| c.to_string()),
        };
        let filter = match &candidate {
            Some(c) => {
                let ty = column_type(&snap.leader, &t.schema, &t.name, c).await?;
                match (
                    since_filter(c, &ty, since, configured.is_some()),
                    &configured,
                ) {
                    (Some(f), _) => Some((c.clone(), f)),
                    (None, Some(_)) => {
                        return Err(BackupError::BadChangeColumn {
                            table: t.display_name(),
                            column: c.clone(),
                            type_name: ty,
                        })
                    }
                    // An `updated_at` of another type (text, an epoch number) tells nothing
                    // pgkeel can compare safely: the table is compared whole instead.
                    (None, None) => None,
                }
            }
            None => None,
        };
        let key = primary_key(&snap.leader, &t.schema, &t.name).await?;
        match (in_base, filter, key.is_empty()) {
            (Some(_), Some((column, filter)), false) => {
                jobs.extend(jobs_for(
                    i,
                    t,
                    bo.chunk_bytes.unwrap_or(CHUNK_BYTES),
                    Some(&filter),
                    ext,
                ));
                let n: i64 = snap
                    .leader
                    .query_one(
                        &format!(
                            "SELECT count(*) FROM ONLY {}",
                            qualified(&t.schema, &t.name)
                        ),
                        &[],
                    )
                    .await
                    .map_err(|e| DbError::query(format!("counting {}", t.display_name()), e))?
                    .get(0);
                counts.insert(i, n as u64);
                modes.push(TableMode::Changed { column, key, since });
            }
            (in_base, _, _) => {
                jobs.extend(jobs_for(
                    i,
                    t,
                    bo.chunk_bytes.unwrap_or(CHUNK_BYTES),
                    None,
                    ext,
                ));
                if in_base.is_some() {
                    hash_checked.push(i);
                }
                modes.push(TableMode::Full);
            }
        }
    }
    let workers = worker_count(bo.workers, settings, snap.free_connections, jobs.len());
    progress.phase("data");
    let (schema, files) = tokio::try_join!(
        dump_schema(&target, &snap.id, &dir, bo.level, &sealing, ext),
        run_jobs(
            &target,
            &snap.id,
            jobs,
            workers,
            &dir,
            bo,
            &sealing,
            &progress,
            snap.tables.len()
        )
    )?;
    snap.leader
        .batch_execute("COMMIT")
        .await
        .map_err(|e| DbError::query("closing the backup transaction", e))?;
    let mut tables = assemble_tables(&snap.tables, files, |i| modes[i].clone());
    for (i, t) in tables.iter_mut().enumerate() {
        if let Some(n) = counts.get(&i) {
            t.rows = *n;
            t.content_hash = String::new();
        }
        if !hash_checked.contains(&i) {
            continue;
        }
        let b = base
            .tables
            .iter()
            .find(|b| b.schema == t.schema && b.name == t.name)
            .expect("hash-checked tables are in the base");
        if b.content_hash == t.content_hash && b.rows == t.rows {
            for f in t.files.drain(..) {
                let _ = std::fs::remove_file(dir.join(&f.path));
            }
            t.mode = TableMode::Unchanged;
        }
    }
    let mut manifest = Manifest {
        format_version: FORMAT_VERSION,
        pgkeel_version: env!("CARGO_PKG_VERSION").into(),
        kind: Kind::Incremental,
        name,
        started_at,
        finished_at: Utc::now(),
        server_version: snap.server_version,
        server_version_num: snap.server_version_num,
        database: target.to_string(),
        snapshot: snap.id,
        compression: "zstd".into(),
        compression_level: bo.level,
        encryption,
        schema,
        tables,
        sequences: snap.sequences,
        ledger: snap.ledger,
        base: Some(BaseRef {
            name: base.name.clone(),
            manifest_sha256: base.manifest_sha256.clone(),
        }),
        since: Some(since),
        source: Some(snap.source.clone()),
        manifest_sha256: String::new(),
    };
    manifest.write(&dir)?;
    partial.keep();
    Ok(manifest)
}

/// `format_type` of `column` of `schema.table`.
async fn column_type(
    client: &crate::db::Client,
    schema: &str,
    table: &str,
    column: &str,
) -> Result<String, DbError> {
    client
        .query_opt(
            "SELECT format_type(a.atttypid, NULL) FROM pg_attribute a
              WHERE a.attrelid = $1::text::regclass AND a.attname = $2 AND NOT a.attisdropped",
            &[&qualified(schema, table), &column],
        )
        .await
        .map(|r| r.map(|r| r.get(0)).unwrap_or_default())
        .map_err(|e| DbError::query(format!("reading the type of {schema}.{table}.{column}"), e))
}

/// The rows of a table changed at or after `since`, by `column` of type `ty`: a time or date,
/// or, for a column named with `--column` (`named`), a bigint of epoch milliseconds, as
/// drizzle-orm and JavaScript's `Date.now()` write them: a bigint found by name alone may hold
/// seconds, and reading those as milliseconds would leave every change out. `None` for any
/// other type.
fn since_filter(column: &str, ty: &str, since: DateTime<Utc>, named: bool) -> Option<String> {
    let (col, at) = (quote_ident(column), quote_literal(&since.to_rfc3339()));
    match ty {
        "timestamp with time zone" | "timestamp without time zone" | "date" => {
            Some(format!("{col} >= {at}::timestamptz"))
        }
        "bigint" if named => Some(format!(
            "{col} >= (extract(epoch FROM {at}::timestamptz) * 1000)::bigint"
        )),
        _ => None,
    }
}

async fn primary_key(
    client: &crate::db::Client,
    schema: &str,
    table: &str,
) -> Result<Vec<String>, DbError> {
    client
        .query(
            "SELECT a.attname::text
               FROM pg_index i
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
              WHERE i.indrelid = $1::text::regclass AND i.indisprimary
              ORDER BY array_position(i.indkey::int2[], a.attnum)",
            &[&qualified(schema, table)],
        )
        .await
        .map(|rows| rows.iter().map(|r| r.get(0)).collect())
        .map_err(|e| DbError::query(format!("reading the primary key of {schema}.{table}"), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_parses_dates_times_and_last() {
        assert_eq!(Since::parse("last").unwrap(), Since::Last);
        assert_eq!(
            Since::parse("2024-05-01").unwrap(),
            Since::At("2024-05-01T00:00:00Z".parse().unwrap())
        );
        assert_eq!(
            Since::parse("2024-05-01T12:00:00+02:00").unwrap(),
            Since::At("2024-05-01T10:00:00Z".parse().unwrap())
        );
        assert!(Since::parse("yesterday").is_err());
    }
}
