//! The byte pipeline of every backup file: on the way out, plaintext → zstd → age (when
//! encryption is configured) → disk, with a SHA-256 of the bytes that reach the disk; on the way
//! back, the reverse, re-hashing what is read. It also owns the order-independent content hash
//! of COPY rows ([`RowHasher`]) that the manifest, verify and restore-test compare.
//!
//! It knows nothing about PostgreSQL. It never writes plaintext when a [`Sealing`] with keys is
//! given: the encryptor is built before the file is created, so a broken key fails first.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use age::secrecy::SecretString;
use sha2::{Digest, Sha256};

use super::BackupError;

/// How files are sealed: plain (zstd only) or encrypted to age recipients.
#[derive(Clone, Default)]
pub struct Sealing {
    recipients: Vec<age::x25519::Recipient>,
}

impl std::fmt::Debug for Sealing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealing")
            .field("recipients", &self.recipients.len())
            .finish()
    }
}

impl Sealing {
    /// No encryption: zstd only.
    pub fn plain() -> Self {
        Sealing::default()
    }

    /// Encrypts to these recipients (at least one).
    pub fn to(recipients: Vec<age::x25519::Recipient>) -> Self {
        Sealing { recipients }
    }

    pub fn is_encrypted(&self) -> bool {
        !self.recipients.is_empty()
    }
}

/// The keys that open a backup's files.
#[derive(Default)]
pub struct Keys {
    identities: Vec<age::x25519::Identity>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("identities", &self.identities.len())
            .finish()
    }
}

impl Keys {
    pub fn none() -> Self {
        Keys::default()
    }

    pub fn add(&mut self, identity: age::x25519::Identity) {
        self.identities.push(identity);
    }

    pub fn is_empty(&self) -> bool {
        self.identities.is_empty()
    }

    /// Reads an age identity file (`AGE-SECRET-KEY-1…` lines; `#` comments ignored).
    pub fn from_identity_file(path: &Path) -> Result<Self, BackupError> {
        let text = std::fs::read_to_string(path).map_err(|e| BackupError::IdentityUnreadable {
            path: path.to_path_buf(),
            source: e,
        })?;
        let mut keys = Keys::none();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let id = line.parse::<age::x25519::Identity>().map_err(|_| {
                BackupError::BadIdentityFile {
                    path: path.to_path_buf(),
                }
            })?;
            keys.add(id);
        }
        if keys.is_empty() {
            return Err(BackupError::BadIdentityFile {
                path: path.to_path_buf(),
            });
        }
        Ok(keys)
    }
}

/// A file's on-disk identity: its size and the SHA-256 of its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub bytes: u64,
    pub sha256: String,
}

/// A writer that hashes and counts what goes to disk.
struct HashingFile {
    out: BufWriter<File>,
    hasher: Sha256,
    bytes: u64,
}

impl Write for HashingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

enum Stage {
    Plain(zstd::Encoder<'static, HashingFile>),
    Sealed(zstd::Encoder<'static, age::stream::StreamWriter<HashingFile>>),
}

/// Writes one backup file: plaintext in, compressed (and encrypted) bytes on disk.
pub struct SealedWriter {
    stage: Stage,
    path: PathBuf,
}

impl std::fmt::Debug for SealedWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedWriter")
            .field("path", &self.path)
            .finish()
    }
}

impl SealedWriter {
    /// Creates `path` (which must not exist). `threads` > 0 uses zstd's worker threads.
    pub fn create(
        path: &Path,
        level: i32,
        threads: u32,
        sealing: &Sealing,
    ) -> Result<Self, BackupError> {
        let io_err = |e: io::Error| BackupError::Io {
            path: path.to_path_buf(),
            source: e,
        };
        // Build the encryptor before any byte is written: fail closed.
        let encryptor = if sealing.is_encrypted() {
            Some(
                age::Encryptor::with_recipients(
                    sealing.recipients.iter().map(|r| r as &dyn age::Recipient),
                )
                .map_err(|e| BackupError::Encrypt {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })?,
            )
        } else {
            None
        };
        let file = super::private_file(path).map_err(io_err)?;
        let sink = HashingFile {
            out: BufWriter::with_capacity(1 << 20, file),
            hasher: Sha256::new(),
            bytes: 0,
        };
        let stage = match encryptor {
            Some(enc) => {
                let sealed = enc.wrap_output(sink).map_err(io_err)?;
                let mut z = zstd::Encoder::new(sealed, level).map_err(io_err)?;
                if threads > 0 {
                    z.multithread(threads).map_err(io_err)?;
                }
                Stage::Sealed(z)
            }
            None => {
                let mut z = zstd::Encoder::new(sink, level).map_err(io_err)?;
                if threads > 0 {
                    z.multithread(threads).map_err(io_err)?;
                }
                Stage::Plain(z)
            }
        };
        Ok(SealedWriter {
            stage,
            path: path.to_path_buf(),
        })
    }

    /// Ends the zstd frame and the age stream, syncs the file; returns its size and hash.
    pub fn finish(self) -> Result<Stored, BackupError> {
        let io_err = |e: io::Error| BackupError::Io {
            path: self.path.clone(),
            source: e,
        };
        let sink = match self.stage {
            Stage::Plain(z) => z.finish().map_err(io_err)?,
            Stage::Sealed(z) => z.finish().map_err(io_err)?.finish().map_err(io_err)?,
        };
        let HashingFile {
            mut out,
            hasher,
            bytes,
        } = sink;
        out.flush().map_err(io_err)?;
        let file = out.into_inner().map_err(|e| io_err(e.into_error()))?;
        file.sync_all().map_err(io_err)?;
        Ok(Stored {
            bytes,
            sha256: hex::encode(hasher.finalize()),
        })
    }
}

impl Write for SealedWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.stage {
            Stage::Plain(z) => z.write(buf),
            Stage::Sealed(z) => z.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.stage {
            Stage::Plain(z) => z.flush(),
            Stage::Sealed(z) => z.flush(),
        }
    }
}

/// What a [`HashingReader`] has seen, shared with the [`OpenedReader`] that owns the pipeline.
#[derive(Default)]
struct Seen {
    hasher: Sha256,
    bytes: u64,
}

/// A reader that hashes and counts what comes from disk.
struct HashingReader {
    inner: BufReader<File>,
    seen: Arc<Mutex<Seen>>,
}

impl Read for HashingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut seen = self.seen.lock().expect("hash state");
        seen.hasher.update(&buf[..n]);
        seen.bytes += n as u64;
        Ok(n)
    }
}

type PlainDecoder = zstd::Decoder<'static, BufReader<HashingReader>>;
type SealedDecoder = zstd::Decoder<'static, BufReader<age::stream::StreamReader<HashingReader>>>;

enum Source {
    Plain(PlainDecoder),
    Sealed(SealedDecoder),
}

/// Opens one backup file and yields its plaintext, hashing the stored bytes as they are read.
/// Call [`OpenedReader::finish`] after reading to the end to learn the stored size and hash.
pub struct OpenedReader {
    source: Source,
    seen: Arc<Mutex<Seen>>,
    path: PathBuf,
}

impl std::fmt::Debug for OpenedReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedReader")
            .field("path", &self.path)
            .finish()
    }
}

impl OpenedReader {
    /// Opens `path`; `encrypted` says whether the manifest recorded it as sealed.
    pub fn open(path: &Path, encrypted: bool, keys: &Keys) -> Result<Self, BackupError> {
        let io_err = |e: io::Error| BackupError::Io {
            path: path.to_path_buf(),
            source: e,
        };
        let file = File::open(path).map_err(io_err)?;
        let seen = Arc::new(Mutex::new(Seen::default()));
        let raw = HashingReader {
            inner: BufReader::with_capacity(1 << 20, file),
            seen: seen.clone(),
        };
        let source = if encrypted {
            if keys.is_empty() {
                return Err(BackupError::KeysNeeded {
                    path: path.to_path_buf(),
                });
            }
            let dec = age::Decryptor::new(raw).map_err(|e| decrypt_error(path, e))?;
            let stream = dec
                .decrypt(keys.identities.iter().map(|i| i as &dyn age::Identity))
                .map_err(|e| decrypt_error(path, e))?;
            Source::Sealed(zstd::Decoder::new(stream).map_err(io_err)?)
        } else {
            Source::Plain(zstd::Decoder::new(raw).map_err(io_err)?)
        };
        Ok(OpenedReader {
            source,
            seen,
            path: path.to_path_buf(),
        })
    }

    /// The stored size and hash of the whole file (anything not yet read is read and counted).
    pub fn finish(self) -> Stored {
        let mut sink = Vec::new();
        match self.source {
            Source::Plain(z) => {
                let mut rest = z.finish();
                let _ = rest.read_to_end(&mut sink);
            }
            Source::Sealed(z) => {
                let mut rest = z.finish();
                let _ = rest.read_to_end(&mut sink);
            }
        }
        let seen = std::mem::take(&mut *self.seen.lock().expect("hash state"));
        Stored {
            bytes: seen.bytes,
            sha256: hex::encode(seen.hasher.finalize()),
        }
    }
}

impl Read for OpenedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.source {
            Source::Plain(z) => z.read(buf),
            Source::Sealed(z) => z.read(buf),
        }
    }
}

fn decrypt_error(path: &Path, e: age::DecryptError) -> BackupError {
    match e {
        age::DecryptError::NoMatchingKeys | age::DecryptError::DecryptionFailed => {
            BackupError::WrongKey {
                path: path.to_path_buf(),
            }
        }
        other => BackupError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("cannot decrypt: {other}"),
        },
    }
}

/// Encrypts a small secret (the per-backup key) with a passphrase (age scrypt).
pub fn seal_with_passphrase(
    path: &Path,
    secret: &[u8],
    passphrase: &SecretString,
) -> Result<(), BackupError> {
    let io_err = |e: io::Error| BackupError::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let enc = age::Encryptor::with_user_passphrase(passphrase.clone());
    let file = File::options()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io_err)?;
    let mut w = enc.wrap_output(file).map_err(io_err)?;
    w.write_all(secret).map_err(io_err)?;
    w.finish().map_err(io_err)?.sync_all().map_err(io_err)
}

/// Opens what [`seal_with_passphrase`] wrote.
pub fn open_with_passphrase(
    path: &Path,
    passphrase: &SecretString,
) -> Result<Vec<u8>, BackupError> {
    let io_err = |e: io::Error| BackupError::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let file = File::open(path).map_err(io_err)?;
    let dec = age::Decryptor::new(BufReader::new(file)).map_err(|e| decrypt_error(path, e))?;
    let identity = age::scrypt::Identity::new(passphrase.clone());
    let mut r = dec
        .decrypt(std::iter::once(&identity as &dyn age::Identity))
        .map_err(|e| decrypt_error(path, e))?;
    let mut out = Vec::new();
    r.read_to_end(&mut out).map_err(io_err)?;
    Ok(out)
}

/// Order-independent content hash of COPY text rows: the wrapping sum of each row's SHA-256
/// prefix, plus the row count. Two tables with the same rows in any order hash the same.
#[derive(Debug, Clone, Default)]
pub struct RowHasher {
    sum: u64,
    rows: u64,
    partial: Vec<u8>,
}

impl RowHasher {
    pub fn update(&mut self, mut chunk: &[u8]) {
        while let Some(i) = chunk.iter().position(|&b| b == b'\n') {
            if self.partial.is_empty() {
                self.row(&chunk[..=i]);
            } else {
                self.partial.extend_from_slice(&chunk[..=i]);
                let row = std::mem::take(&mut self.partial);
                self.row(&row);
            }
            chunk = &chunk[i + 1..];
        }
        self.partial.extend_from_slice(chunk);
    }

    fn row(&mut self, line: &[u8]) {
        let d = Sha256::digest(line);
        let mut b = [0u8; 8];
        b.copy_from_slice(&d[..8]);
        self.sum = self.sum.wrapping_add(u64::from_be_bytes(b));
        self.rows += 1;
    }

    /// `(rows, hash)`; a trailing partial line counts as a row.
    pub fn finish(mut self) -> (u64, u64) {
        if !self.partial.is_empty() {
            let row = std::mem::take(&mut self.partial);
            self.row(&row);
        }
        (self.rows, self.sum)
    }
}

/// Combines the content hashes of a table's chunks.
pub fn combine(parts: impl IntoIterator<Item = u64>) -> u64 {
    parts.into_iter().fold(0u64, |a, b| a.wrapping_add(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_hash_ignores_order_and_chunking() {
        let mut a = RowHasher::default();
        a.update(b"1\tx\n2\ty\n");
        let mut b = RowHasher::default();
        b.update(b"2\t");
        b.update(b"y\n1");
        b.update(b"\tx\n");
        assert_eq!(a.finish(), b.finish());
        let mut c = RowHasher::default();
        c.update(b"1\tx\n2\tz\n");
        let mut a = RowHasher::default();
        a.update(b"1\tx\n2\ty\n");
        assert_ne!(a.finish(), c.finish());
    }

    #[test]
    fn sealed_round_trip_and_wrong_key() {
        let dir = tempfile::tempdir().unwrap();
        let id = age::x25519::Identity::generate();
        let path = dir.path().join("f");
        let mut w = SealedWriter::create(&path, 3, 0, &Sealing::to(vec![id.to_public()])).unwrap();
        w.write_all(b"hello backup").unwrap();
        let stored = w.finish().unwrap();
        let raw = std::fs::read(&path).unwrap();
        assert!(!raw.windows(5).any(|w| w == b"hello"));
        let mut keys = Keys::none();
        keys.add(id);
        let mut r = OpenedReader::open(&path, true, &keys).unwrap();
        let mut out = String::new();
        r.read_to_string(&mut out).unwrap();
        assert_eq!(out, "hello backup");
        assert_eq!(r.finish(), stored);
        let mut other = Keys::none();
        other.add(age::x25519::Identity::generate());
        let err = OpenedReader::open(&path, true, &other).unwrap_err();
        assert!(matches!(err, BackupError::WrongKey { .. }), "{err}");
    }
}
