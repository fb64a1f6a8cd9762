//! Backups kept in an S3-compatible bucket: a backup directory written `s3://bucket/prefix`
//! (AWS S3, Railway buckets, Cloudflare R2, MinIO, Backblaze B2), with the endpoint, region and
//! credentials from the standard `AWS_*` variables (`AWS_ENDPOINT_URL`, `AWS_REGION`,
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_ALLOW_HTTP`,
//! `AWS_VIRTUAL_HOSTED_STYLE_REQUEST`), read by Apache Arrow's `object_store`.
//!
//! The engine ([`super::full`], [`super::restore`], …) reads and writes local directories; this
//! module moves backups between a private staging directory (`PGKEEL_STAGING_DIR`, else the
//! system's temporary directory) and the bucket. A backup is written and sealed there; each data
//! file is uploaded as soon as it is complete (and then removed from staging), in multipart parts
//! of [`PART_BYTES`], at most [`PARTS_IN_FLIGHT`] parts per file and [`FILES_IN_FLIGHT`] files at
//! once, so memory stays bounded whatever the size; the manifest goes last, so an interrupted upload is listed as incomplete, never taken for a
//! backup. Encryption happens in the engine, before any byte leaves the machine. Reading a
//! backup (verify, restore) downloads it and its base into staging first; the engine then checks
//! every file's hash as it does for a local directory.
//!
//! It owns: the bucket URL, listing, upload, download and deletion. It must not take, verify or
//! restore a backup itself, and must not print.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as Key;
use object_store::{ObjectStore, PutPayload, WriteMultipart};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::catalog::{self, BackupSummary};
use super::manifest::{Manifest, MANIFEST};
use super::{io_err, BackupError};

/// Size of one multipart part (S3 needs at least 5 MiB, allows 10 000 parts: 80 GiB a file).
pub const PART_BYTES: usize = 8 << 20;
/// Parts of one file uploaded at once.
pub const PARTS_IN_FLIGHT: usize = 2;
/// Files uploaded or downloaded at once. With the parts above: at most about
/// `FILES_IN_FLIGHT × (PARTS_IN_FLIGHT + 1) × PART_BYTES` = 72 MiB buffered.
pub const FILES_IN_FLIGHT: usize = 3;

/// True when `dir` names a bucket (`s3://…`) rather than a local directory.
pub fn is_bucket(dir: &Path) -> bool {
    dir.to_str().is_some_and(|s| s.starts_with("s3://"))
}

/// A bucket and the prefix under which each backup is a "directory" of objects.
#[derive(Clone)]
pub struct Bucket {
    store: Arc<dyn ObjectStore>,
    /// `s3://bucket/prefix`, as shown to the user (it holds no secret: credentials are refused
    /// in the URL).
    url: String,
    prefix: Option<Key>,
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bucket").field("url", &self.url).finish()
    }
}

impl Bucket {
    /// The bucket `dir` names, or `None` for a local directory.
    pub fn open(dir: &Path) -> Result<Option<Bucket>, BackupError> {
        if !is_bucket(dir) {
            return Ok(None);
        }
        let raw = dir.to_str().unwrap_or_default();
        let bad = |reason: &str| BackupError::BadBucketUrl {
            url: redact_url(raw),
            reason: reason.to_string(),
        };
        // Checked on the text: URL parsing would resolve `..` away.
        if raw["s3://".len()..]
            .split('/')
            .any(|s| s == "." || s == "..")
        {
            return Err(bad("`.` and `..` are not prefix names"));
        }
        let url = url::Url::parse(raw).map_err(|e| bad(&e.to_string()))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad(
                "credentials do not go in the URL: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("a bucket URL has no ?query or #fragment"));
        }
        let bucket = url.host_str().unwrap_or_default().to_string();
        if bucket.is_empty() {
            return Err(bad(
                "no bucket name: write s3://BUCKET or s3://BUCKET/PREFIX",
            ));
        }
        let segments: Vec<String> = url
            .path_segments()
            .into_iter()
            .flatten()
            .filter(|s| !s.is_empty())
            .map(|s| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .collect();
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(&bucket);
        if let Some(endpoint) = virtual_hosted_endpoint(&bucket) {
            builder = builder.with_endpoint(endpoint);
        }
        let store = builder.build().map_err(|e| BackupError::Bucket {
            url: format!("s3://{bucket}"),
            doing: "configuring the S3 client".into(),
            reason: reason(&e),
        })?;
        let prefix =
            (!segments.is_empty()).then(|| Key::from_iter(segments.iter().map(String::as_str)));
        let shown = match &prefix {
            Some(p) => format!("s3://{bucket}/{p}"),
            None => format!("s3://{bucket}"),
        };
        Ok(Some(Bucket {
            store: Arc::new(store),
            url: shown,
            prefix,
        }))
    }

    /// For a backup path `s3://bucket/prefix/NAME`: the bucket holding it and `NAME`.
    pub fn of_backup(path: &Path) -> Result<Option<(Bucket, String)>, BackupError> {
        if !is_bucket(path) {
            return Ok(None);
        }
        let raw = path.to_str().unwrap_or_default().trim_end_matches('/');
        let (parent, name) = match raw.rsplit_once('/') {
            Some((p, n)) if !p.ends_with('/') && !n.is_empty() => (p, n),
            _ => {
                return Err(BackupError::BadBucketUrl {
                    url: redact_url(raw),
                    reason: "name the backup: s3://BUCKET/PREFIX/NAME".into(),
                })
            }
        };
        let bucket = Bucket::open(Path::new(parent))?.expect("an s3:// parent is a bucket");
        Ok(Some((bucket, name.to_string())))
    }

    /// `s3://bucket/prefix`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The path shown for the backup `name`: `s3://bucket/prefix/name`.
    pub fn backup_path(&self, name: &str) -> PathBuf {
        PathBuf::from(format!("{}/{name}", self.url))
    }

    fn key(&self, name: &str, rel: &str) -> Key {
        let mut parts: Vec<String> = self
            .prefix
            .iter()
            .flat_map(|p| p.parts().map(|x| x.as_ref().to_string()))
            .collect();
        parts.push(name.to_string());
        parts.extend(rel.split('/').filter(|s| !s.is_empty()).map(String::from));
        Key::from_iter(parts)
    }

    fn err(&self, doing: impl Into<String>) -> impl Fn(object_store::Error) -> BackupError + '_ {
        let doing = doing.into();
        move |e| BackupError::Bucket {
            url: self.url.clone(),
            doing: doing.clone(),
            reason: reason(&e),
        }
    }

    /// Every object under the prefix (or, with `only`, of that one backup), grouped by backup
    /// name: relative path → (size, modified).
    async fn objects(&self, only: Option<&str>) -> Result<BTreeMap<String, Objects>, BackupError> {
        let under = only.map(|name| self.key(name, ""));
        let listed: Vec<object_store::ObjectMeta> = self
            .store
            .list(under.as_ref().or(self.prefix.as_ref()))
            .try_collect()
            .await
            .map_err(self.err("listing the backups"))?;
        let skip = self.prefix.as_ref().map_or(0, |p| p.parts().count());
        let mut out: BTreeMap<String, Objects> = BTreeMap::new();
        for o in listed {
            let parts: Vec<String> = o
                .location
                .parts()
                .skip(skip)
                .map(|p| p.as_ref().to_string())
                .collect();
            let [name, rest @ ..] = parts.as_slice() else {
                continue;
            };
            if rest.is_empty() || name.starts_with('.') {
                continue; // a loose object beside the backups, not one of them
            }
            out.entry(name.clone())
                .or_default()
                .insert(rest.join("/"), (o.size, o.last_modified));
        }
        Ok(out)
    }

    /// Every backup in the bucket, oldest first, each checked as `list` checks a directory: the
    /// manifest read and its hash checked, every file present with its size.
    pub async fn list(&self) -> Result<Vec<BackupSummary>, BackupError> {
        let groups = self.objects(None).await?;
        // Manifests are read a few at a time: one round trip each.
        let mut out: Vec<BackupSummary> = futures_util::stream::iter(groups)
            .map(|(name, files)| async move {
                let path = self.backup_path(&name);
                let read = if files.contains_key(MANIFEST) {
                    let bytes = self.get(&name, MANIFEST).await?;
                    Manifest::parse(&bytes, &path.join(MANIFEST))
                } else {
                    Err(BackupError::NoManifest { path: path.clone() })
                };
                let modified = files.values().map(|(_, at)| *at).max();
                let stored: u64 = files.values().map(|(s, _)| *s).sum();
                Ok::<_, BackupError>(catalog::summarize(
                    name,
                    path,
                    read,
                    |rel| files.get(rel).map(|(s, _)| *s),
                    modified,
                    stored,
                ))
            })
            .buffer_unordered(8)
            .try_collect()
            .await?;
        catalog::sort(&mut out);
        Ok(out)
    }

    /// True when anything is stored under `name`.
    pub async fn has(&self, name: &str) -> Result<bool, BackupError> {
        let prefix = self.key(name, "");
        let first = self
            .store
            .list(Some(&prefix))
            .next()
            .await
            .transpose()
            .map_err(self.err(format!("looking for backup {name}")))?;
        Ok(first.is_some())
    }

    async fn get(&self, name: &str, rel: &str) -> Result<bytes::Bytes, BackupError> {
        let what = format!("reading {name}/{rel}");
        self.store
            .get(&self.key(name, rel))
            .await
            .map_err(self.err(what.clone()))?
            .bytes()
            .await
            .map_err(self.err(what))
    }

    /// Uploads the backup directory `local` as `name`: every file, then the manifest. On failure
    /// the objects already uploaded are deleted (best effort), so the name stays free.
    pub async fn upload(&self, local: &Path, name: &str) -> Result<(), BackupError> {
        let mut files = Vec::new();
        walk(local, local, &mut files)?;
        files.retain(|rel| rel != MANIFEST);
        files.sort();
        let result = async {
            futures_util::stream::iter(files.iter())
                .map(|rel| self.upload_file(local.join(rel), name, rel))
                .buffer_unordered(FILES_IN_FLIGHT)
                .try_collect::<Vec<()>>()
                .await?;
            // Last: until the manifest is there, the backup is incomplete.
            self.upload_file(local.join(MANIFEST), name, MANIFEST).await
        }
        .await;
        if result.is_err() {
            let _ = self.delete(name).await;
        }
        result
    }

    /// Uploads each file announced on `finished` (a path under `local`, the backup `name`'s
    /// staging directory) and removes it from staging, until the sender is dropped; so staging
    /// holds only the files not yet uploaded.
    pub async fn upload_as_finished(
        &self,
        local: &Path,
        name: &str,
        finished: tokio::sync::mpsc::UnboundedReceiver<PathBuf>,
    ) -> Result<(), BackupError> {
        futures_util::stream::unfold(finished, |mut rx| async move {
            rx.recv().await.map(|path| (path, rx))
        })
        .map(|path| async move {
            let rel = path
                .strip_prefix(local)
                .map(|r| r.to_string_lossy().replace('\\', "/"))
                .unwrap_or_default();
            self.upload_file(path.clone(), name, &rel).await?;
            std::fs::remove_file(&path).map_err(io_err(&path))
        })
        .buffer_unordered(FILES_IN_FLIGHT)
        .try_collect::<Vec<()>>()
        .await?;
        Ok(())
    }

    async fn upload_file(&self, path: PathBuf, name: &str, rel: &str) -> Result<(), BackupError> {
        let path = path.as_path();
        let key = self.key(name, rel);
        let doing = format!("uploading {name}/{rel}");
        let mut file = tokio::fs::File::open(path).await.map_err(io_err(path))?;
        let size = file.metadata().await.map_err(io_err(path))?.len();
        if size <= PART_BYTES as u64 {
            let mut buf = Vec::with_capacity(size as usize);
            file.read_to_end(&mut buf).await.map_err(io_err(path))?;
            self.store
                .put(&key, PutPayload::from(buf))
                .await
                .map_err(self.err(doing))?;
            return Ok(());
        }
        let upload = self
            .store
            .put_multipart(&key)
            .await
            .map_err(self.err(doing.clone()))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = match file.read(&mut buf).await {
                Ok(n) => n,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(io_err(path)(e));
                }
            };
            if n == 0 {
                break;
            }
            if let Err(e) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
                let _ = writer.abort().await;
                return Err(self.err(doing)(e));
            }
            writer.write(&buf[..n]);
        }
        writer.finish().await.map_err(self.err(doing))?;
        Ok(())
    }

    /// Downloads the backup `name` into `parent/name` (private files), streaming each object to
    /// disk. A name with nothing stored is [`BackupError::NoManifest`].
    pub async fn download(&self, name: &str, parent: &Path) -> Result<PathBuf, BackupError> {
        let objects = self.objects(Some(name)).await?;
        let Some(files) = objects.get(name) else {
            return Err(BackupError::NotInBucket {
                url: self.url.clone(),
                name: name.to_string(),
            });
        };
        if !files.contains_key(MANIFEST) {
            return Err(BackupError::NoManifest {
                path: self.backup_path(name),
            });
        }
        let dir = parent.join(name);
        let rels: Vec<&String> = files.keys().collect();
        for rel in &rels {
            if let Some(sub) = dir.join(rel).parent() {
                super::private_dir_builder()
                    .recursive(true)
                    .create(sub)
                    .map_err(io_err(sub))?;
            }
        }
        futures_util::stream::iter(rels)
            .map(|rel| self.download_file(name, rel, dir.join(rel)))
            .buffer_unordered(FILES_IN_FLIGHT)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(dir)
    }

    async fn download_file(&self, name: &str, rel: &str, to: PathBuf) -> Result<(), BackupError> {
        let doing = format!("downloading {name}/{rel}");
        let got = self
            .store
            .get(&self.key(name, rel))
            .await
            .map_err(self.err(doing.clone()))?;
        let file = super::private_file(&to).map_err(io_err(&to))?;
        let mut out = tokio::io::BufWriter::with_capacity(1 << 20, tokio::fs::File::from_std(file));
        let mut stream = got.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(self.err(doing.clone()))?;
            out.write_all(&chunk).await.map_err(io_err(&to))?;
        }
        out.flush().await.map_err(io_err(&to))?;
        Ok(())
    }

    /// Downloads the backup `name` and, for an incremental, its base, into `parent`. Returns
    /// the local directory of `name`.
    pub async fn download_chain(&self, name: &str, parent: &Path) -> Result<PathBuf, BackupError> {
        let dir = self.download(name, parent).await?;
        if let Ok(m) = Manifest::read(&dir) {
            if let Some(base) = &m.base {
                if !parent.join(&base.name).exists() {
                    match self.download(&base.name, parent).await {
                        Ok(_) => {}
                        // The engine reports a missing base with what to do next.
                        Err(BackupError::NotInBucket { .. } | BackupError::NoManifest { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(dir)
    }

    /// Downloads only the manifest of `name` into `parent/name/manifest.json` (an incremental
    /// backup reads its base's manifest, not its data).
    pub async fn download_manifest(&self, name: &str, parent: &Path) -> Result<(), BackupError> {
        let dir = parent.join(name);
        super::private_dir_builder()
            .recursive(true)
            .create(&dir)
            .map_err(io_err(&dir))?;
        self.download_file(name, MANIFEST, dir.join(MANIFEST)).await
    }

    /// Deletes every object of the backup `name`.
    pub async fn delete(&self, name: &str) -> Result<(), BackupError> {
        let prefix = self.key(name, "");
        let keys = self
            .store
            .list(Some(&prefix))
            .map_ok(|m| m.location)
            .boxed();
        self.store
            .delete_stream(keys)
            .try_collect::<Vec<Key>>()
            .await
            .map_err(self.err(format!("deleting backup {name}")))?;
        Ok(())
    }
}

type Objects = BTreeMap<String, (u64, DateTime<Utc>)>;

/// A private local directory for backups on their way to or from a bucket, removed when dropped.
#[derive(Debug)]
pub struct Staging {
    dir: tempfile::TempDir,
}

impl Staging {
    /// Creates it under `PGKEEL_STAGING_DIR`, else the system's temporary directory (`0700`).
    pub fn new() -> Result<Staging, BackupError> {
        let parent = std::env::var_os("PGKEEL_STAGING_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let dir = tempfile::Builder::new()
            .prefix("pgkeel-staging-")
            .tempdir_in(&parent)
            .map_err(io_err(&parent))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
                .map_err(io_err(dir.path()))?;
        }
        Ok(Staging { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// A backup read from a bucket into staging: the local directory the engine reads, kept as long
/// as this value lives.
#[derive(Debug)]
pub struct Fetched {
    _staging: Staging,
    dir: PathBuf,
}

impl Fetched {
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

/// When `backup` is `s3://bucket/prefix/NAME`: downloads it (and its base) into staging.
pub async fn fetch(backup: &Path) -> Result<Option<Fetched>, BackupError> {
    let Some((bucket, name)) = Bucket::of_backup(backup)? else {
        return Ok(None);
    };
    let staging = Staging::new()?;
    let dir = bucket.download_chain(&name, staging.path()).await?;
    Ok(Some(Fetched {
        _staging: staging,
        dir,
    }))
}

/// Relative paths of the files under `dir` (a backup directory), skipping hidden temporaries.
fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<(), BackupError> {
    for e in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let e = e.map_err(io_err(dir))?;
        let path = e.path();
        if e.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if e.file_type().map_err(io_err(&path))?.is_dir() {
            walk(root, &path, out)?;
        } else if let Ok(rel) = path.strip_prefix(root) {
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
    Ok(())
}

/// With `AWS_VIRTUAL_HOSTED_STYLE_REQUEST=true` (Railway's buckets, most new S3-compatible
/// services), the bucket's own endpoint: AWS SDKs take the service's base endpoint
/// (`https://storage.railway.app`) and put the bucket in front of its host, where object_store
/// expects the bucket already there. An endpoint that starts with the bucket is kept.
fn virtual_hosted_endpoint(bucket: &str) -> Option<String> {
    let on = std::env::var("AWS_VIRTUAL_HOSTED_STYLE_REQUEST")
        .is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1" | "yes"));
    let raw = std::env::var("AWS_ENDPOINT_URL")
        .or_else(|_| std::env::var("AWS_ENDPOINT"))
        .ok()?;
    on.then(|| with_bucket_host(&raw, bucket)).flatten()
}

fn with_bucket_host(endpoint: &str, bucket: &str) -> Option<String> {
    let mut url = url::Url::parse(endpoint).ok()?;
    let host = url.host_str()?.to_string();
    if host.starts_with(&format!("{bucket}.")) {
        return None;
    }
    url.set_host(Some(&format!("{bucket}.{host}"))).ok()?;
    Some(url.as_str().trim_end_matches('/').to_string())
}

/// The error text of `object_store`, its causes joined, cut to a readable length.
fn reason(e: &object_store::Error) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let s = c.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        cause = c.source();
    }
    if text.len() > 600 {
        let mut end = 600;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

/// `s3://user:secret@bucket/…` with the user information replaced.
fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            format!("{u} (credentials removed)")
        }
        Ok(u) => u.to_string(),
        Err(_) => match raw.split_once('@') {
            Some((_, rest)) => format!("s3://…@{rest}"),
            None => raw.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_urls_are_parsed_and_shown_without_secrets() {
        assert!(is_bucket(Path::new("s3://b/p")));
        assert!(!is_bucket(Path::new("backups")));
        let b = Bucket::open(Path::new("s3://my-bucket/pgkeel/prod/"))
            .unwrap()
            .unwrap();
        assert_eq!(b.url(), "s3://my-bucket/pgkeel/prod");
        assert_eq!(
            b.key("full-1", "data/t.zst").as_ref(),
            "pgkeel/prod/full-1/data/t.zst"
        );
        let root = Bucket::open(Path::new("s3://my-bucket")).unwrap().unwrap();
        assert_eq!(
            root.key("full-1", MANIFEST).as_ref(),
            "full-1/manifest.json"
        );
        let err = Bucket::open(Path::new("s3://AKIA:hunter2@my-bucket/x")).unwrap_err();
        let text = err.to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("AWS_SECRET_ACCESS_KEY"), "{text}");
        assert!(Bucket::open(Path::new("s3:///x")).is_err());
        assert!(Bucket::open(Path::new("s3://b/../x")).is_err());
    }

    #[test]
    fn virtual_hosted_endpoints_put_the_bucket_in_front_of_the_host() {
        assert_eq!(
            with_bucket_host("https://storage.railway.app", "app-x1y2").as_deref(),
            Some("https://app-x1y2.storage.railway.app")
        );
        assert_eq!(
            with_bucket_host("https://app-x1y2.storage.railway.app/", "app-x1y2"),
            None
        );
        assert_eq!(
            with_bucket_host("http://127.0.0.1:9000", "b").as_deref(),
            None,
            "an IP address has no subdomain"
        );
    }

    #[test]
    fn a_backup_path_names_its_bucket_and_backup() {
        let (b, name) = Bucket::of_backup(Path::new("s3://b/pre/full-1"))
            .unwrap()
            .unwrap();
        assert_eq!((b.url(), name.as_str()), ("s3://b/pre", "full-1"));
        let (b, name) = Bucket::of_backup(Path::new("s3://b/full-1/"))
            .unwrap()
            .unwrap();
        assert_eq!((b.url(), name.as_str()), ("s3://b", "full-1"));
        assert!(Bucket::of_backup(Path::new("s3://b")).is_err());
        assert!(Bucket::of_backup(Path::new("local/full-1"))
            .unwrap()
            .is_none());
    }
}
