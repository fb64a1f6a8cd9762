//! What backup and restore sessions share: the session settings that make COPY text identical
//! on the way out and parseable on the way back, the catalog queries (which tables, which
//! columns, how big, which sequences), and the two streaming loops — `COPY … TO STDOUT` into a
//! sealed file and a sealed file into `COPY … FROM STDIN` — with bounded memory: a few 64 KiB
//! chunks in flight per stream, never a whole table.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};

use super::codec::{Keys, OpenedReader, RowHasher, SealedWriter, Sealing};
use super::manifest::FileEntry;
use super::{BackupError, Progress};
use crate::db::{Client, DbError};
use crate::ident::{qualified, quote_ident};

/// Settings of every backup and restore session: ISO dates in UTC, exact floats, UTF-8.
pub const SESSION_SETUP: &str = "SET DateStyle = ISO; SET IntervalStyle = postgres; \
    SET extra_float_digits = 3; SET TimeZone = 'UTC'; SET client_encoding = 'UTF8'; \
    SET statement_timeout = 0; SET lock_timeout = 0; SET idle_in_transaction_session_timeout = 0";

/// Chunks in flight between a COPY stream and its file, per stream.
const IN_FLIGHT: usize = 16;

/// COPY rows are gathered into buffers of about this size before they cross to the writing
/// thread: one hand-off per row (a CopyData message each) cost a context switch per row.
const BATCH_BYTES: usize = 256 << 10;

/// A table to back up, as the catalog describes it at the snapshot.
#[derive(Debug, Clone)]
pub struct TableInfo {
    pub schema: String,
    pub name: String,
    /// Non-generated, non-dropped columns in attnum order.
    pub columns: Vec<String>,
    /// Heap pages on disk (`pg_relation_size / block_size`).
    pub pages: i64,
    pub block_size: i64,
}

impl TableInfo {
    pub fn display_name(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

/// The ordinary tables holding user data: not system catalogs, not temporary, not owned by an
/// extension, not partitioned parents (their partitions hold the rows). Largest first.
pub async fn list_tables(client: &Client) -> Result<Vec<TableInfo>, DbError> {
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text,
                    array(SELECT a.attname::text FROM pg_attribute a
                           WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                             AND a.attgenerated = '' ORDER BY a.attnum),
                    (pg_relation_size(c.oid) / current_setting('block_size')::bigint),
                    current_setting('block_size')::bigint
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind = 'r' AND c.relpersistence <> 't'
                AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
                AND NOT EXISTS (SELECT 1 FROM pg_depend d
                                 WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                                   AND d.deptype = 'e')
              ORDER BY 4 DESC, 1, 2",
            &[],
        )
        .await
        .map_err(|e| DbError::query("listing the tables to back up", e))?;
    Ok(rows
        .iter()
        .map(|r| TableInfo {
            schema: r.get(0),
            name: r.get(1),
            columns: r.get(2),
            pages: r.get(3),
            block_size: r.get(4),
        })
        .collect())
}

/// Every user sequence (not extension-owned) with its current value.
pub async fn sequence_values(
    client: &Client,
) -> Result<Vec<super::manifest::SequenceValue>, DbError> {
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind = 'S'
                AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                AND n.nspname NOT LIKE 'pg\\_temp%'
                AND NOT EXISTS (SELECT 1 FROM pg_depend d
                                 WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                                   AND d.deptype = 'e')
              ORDER BY 1, 2",
            &[],
        )
        .await
        .map_err(|e| DbError::query("listing sequences", e))?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let (schema, name): (String, String) = (r.get(0), r.get(1));
        let v = client
            .query_one(
                &format!(
                    "SELECT last_value, is_called FROM {}",
                    qualified(&schema, &name)
                ),
                &[],
            )
            .await
            .map_err(|e| DbError::query(format!("reading sequence {schema}.{name}"), e))?;
        out.push(super::manifest::SequenceValue {
            schema,
            name,
            last_value: v.get(0),
            is_called: v.get(1),
        });
    }
    Ok(out)
}

/// `"a", "b"` for a column list.
pub fn column_list(columns: &[String]) -> String {
    columns
        .iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Streams `copy_sql` (a `COPY … TO STDOUT`) into a new sealed file at `dir/rel`.
#[allow(clippy::too_many_arguments)]
pub async fn copy_out(
    client: &Client,
    copy_sql: &str,
    dir: &Path,
    rel: &str,
    level: i32,
    threads: u32,
    sealing: &Sealing,
    table: &str,
    progress: &Arc<dyn Progress>,
) -> Result<FileEntry, BackupError> {
    let path = dir.join(rel);
    let stream = client
        .copy_out(copy_sql)
        .await
        .map_err(|e| DbError::query(format!("starting COPY of {table}"), e))?;
    futures_util::pin_mut!(stream);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(IN_FLIGHT);
    let sealing = sealing.clone();
    let wpath = path.clone();
    let writer = tokio::task::spawn_blocking(move || {
        let mut w = SealedWriter::create(&wpath, level, threads, &sealing)?;
        let mut hasher = RowHasher::default();
        let mut raw = 0u64;
        while let Some(chunk) = rx.blocking_recv() {
            hasher.update(&chunk);
            raw += chunk.len() as u64;
            w.write_all(&chunk).map_err(super::io_err(&wpath))?;
        }
        let stored = w.finish()?;
        let (rows, hash) = hasher.finish();
        Ok::<_, BackupError>((stored, raw, rows, hash))
    });
    let mut failed = None;
    let mut batch: Vec<u8> = Vec::with_capacity(BATCH_BYTES);
    let mut writer_gone = false;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(c) => {
                batch.extend_from_slice(&c);
                if batch.len() >= BATCH_BYTES {
                    progress.table_bytes(table, batch.len() as u64);
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_BYTES));
                    if tx.send(full).await.is_err() {
                        writer_gone = true; // the writer failed; its error is returned below
                        break;
                    }
                }
            }
            Err(e) => {
                failed = Some(DbError::query(format!("copying {table}"), e));
                break;
            }
        }
    }
    if failed.is_none() && !writer_gone && !batch.is_empty() {
        progress.table_bytes(table, batch.len() as u64);
        let _ = tx.send(batch).await;
    }
    drop(tx);
    let written = writer.await.map_err(|e| BackupError::Worker {
        reason: e.to_string(),
    })?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    let (stored, raw, rows, hash) = written?;
    Ok(FileEntry {
        path: rel.to_string(),
        stored_bytes: stored.bytes,
        sha256: stored.sha256,
        raw_bytes: raw,
        rows,
        content_hash: format!("{hash:016x}"),
    })
}

/// Streams the sealed file `dir/entry.path` into `copy_sql` (a `COPY … FROM STDIN`), checking
/// the file's hash on the way. Returns the rows the server loaded.
#[allow(clippy::too_many_arguments)]
pub async fn copy_in(
    client: &Client,
    copy_sql: &str,
    dir: &Path,
    entry: &FileEntry,
    encrypted: bool,
    keys: &Arc<Keys>,
    table: &str,
    progress: &Arc<dyn Progress>,
) -> Result<u64, BackupError> {
    let path: PathBuf = dir.join(&entry.path);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, BackupError>>(IN_FLIGHT);
    let keys = keys.clone();
    let rpath = path.clone();
    let want = entry.sha256.clone();
    let reader = tokio::task::spawn_blocking(move || {
        let send = |item| tx.blocking_send(item).is_ok();
        let mut r = match OpenedReader::open(&rpath, encrypted, &keys) {
            Ok(r) => r,
            Err(e) => {
                send(Err(e));
                return;
            }
        };
        loop {
            let mut buf = vec![0u8; 1 << 16];
            match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    buf.truncate(n);
                    if !send(Ok(Bytes::from(buf))) {
                        return;
                    }
                }
                Err(e) => {
                    send(Err(BackupError::Corrupt {
                        path: rpath.clone(),
                        reason: format!("cannot decompress: {e}"),
                    }));
                    return;
                }
            }
        }
        let stored = r.finish();
        if stored.sha256 != want {
            send(Err(BackupError::Corrupt {
                path: rpath.clone(),
                reason: format!(
                    "its SHA-256 is {} but the manifest records {want}",
                    stored.sha256
                ),
            }));
        }
    });
    let sink = client
        .copy_in::<_, Bytes>(copy_sql)
        .await
        .map_err(|e| DbError::query(format!("starting COPY into {table}"), e))?;
    futures_util::pin_mut!(sink);
    let mut failed = None;
    while let Some(item) = rx.recv().await {
        match item {
            Ok(b) => {
                progress.table_bytes(table, b.len() as u64);
                if let Err(e) = sink.send(b).await {
                    failed = Some(BackupError::from(DbError::query(
                        format!("loading {table}"),
                        e,
                    )));
                    break;
                }
            }
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    drop(rx);
    let _ = reader.await;
    if let Some(e) = failed {
        // Dropping the sink without finishing aborts the COPY.
        return Err(e);
    }
    let rows = sink
        .finish()
        .await
        .map_err(|e| DbError::query(format!("loading {table}"), e))?;
    Ok(rows)
}
