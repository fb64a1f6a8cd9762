//! Encryption settings → age keys. Recipients (public keys) come from
//! `BACKUP_ENCRYPTION_RECIPIENTS` / `backup.encryption-recipients`; a passphrase only from the
//! environment (`BACKUP_ENCRYPTION_PASSPHRASE`), never from a file and never logged. With a
//! passphrase, each backup gets its own x25519 key, sealed once with the passphrase (scrypt) in
//! `key.age`, and every file is encrypted to that key (plus any recipients): one slow scrypt per
//! backup rather than one per file. Reading uses identities from an age identity file
//! (`BACKUP_ENCRYPTION_IDENTITY_FILE`) and/or the passphrase.

use std::path::{Path, PathBuf};

use age::secrecy::{ExposeSecret, SecretString};

use super::codec::{self, Keys, Sealing};
use super::manifest::{EncryptionInfo, Manifest};
use super::BackupError;
use crate::config::Settings;

/// The per-backup key sealed with the passphrase.
pub const PASSPHRASE_KEY_FILE: &str = "key.age";

/// What the configuration says about encryption.
#[derive(Clone, Default)]
pub struct KeyConfig {
    pub recipients: Vec<String>,
    pub passphrase: Option<SecretString>,
    pub identity_file: Option<PathBuf>,
}

impl std::fmt::Debug for KeyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyConfig")
            .field("recipients", &self.recipients)
            .field("passphrase", &self.passphrase.as_ref().map(|_| "***"))
            .field("identity_file", &self.identity_file)
            .finish()
    }
}

impl KeyConfig {
    pub fn from_settings(settings: &Settings) -> Self {
        KeyConfig {
            recipients: settings.backup_encryption_recipients.clone(),
            passphrase: settings
                .backup_encryption_passphrase
                .clone()
                .map(SecretString::from),
            identity_file: settings.backup_encryption_identity_file.clone(),
        }
    }

    /// True when backups must be encrypted.
    pub fn encrypts(&self) -> bool {
        !self.recipients.is_empty() || self.passphrase.is_some()
    }

    /// The sealing for a new backup in `dir` (writing `key.age` there for a passphrase) and the
    /// manifest's record of it. Fails before any data file exists when a recipient is invalid.
    pub fn sealing_for_new_backup(
        &self,
        dir: &Path,
    ) -> Result<(Sealing, Option<EncryptionInfo>), BackupError> {
        if !self.encrypts() {
            return Ok((Sealing::plain(), None));
        }
        let mut recipients = Vec::new();
        for r in &self.recipients {
            recipients.push(r.trim().parse::<age::x25519::Recipient>().map_err(|_| {
                BackupError::BadRecipient {
                    recipient: r.clone(),
                }
            })?);
        }
        let mut key_file = None;
        if let Some(pass) = &self.passphrase {
            let id = age::x25519::Identity::generate();
            recipients.push(id.to_public());
            codec::seal_with_passphrase(
                &dir.join(PASSPHRASE_KEY_FILE),
                id.to_string().expose_secret().as_bytes(),
                pass,
            )?;
            key_file = Some(PASSPHRASE_KEY_FILE.to_string());
        }
        let info = EncryptionInfo {
            scheme: "age".into(),
            recipients: recipients.iter().map(|r| r.to_string()).collect(),
            passphrase_key_file: key_file,
        };
        Ok((Sealing::to(recipients), Some(info)))
    }

    /// The keys that open the backup in `dir` described by `manifest`.
    pub fn keys_for(&self, dir: &Path, manifest: &Manifest) -> Result<Keys, BackupError> {
        let Some(info) = &manifest.encryption else {
            return Ok(Keys::none());
        };
        let mut keys = match &self.identity_file {
            Some(f) => Keys::from_identity_file(f)?,
            None => Keys::none(),
        };
        if let (Some(pass), Some(file)) = (&self.passphrase, &info.passphrase_key_file) {
            let path = dir.join(file);
            let secret = codec::open_with_passphrase(&path, pass)?;
            let text = String::from_utf8(secret).map_err(|_| BackupError::Corrupt {
                path: path.clone(),
                reason: "the sealed key is not text".into(),
            })?;
            let id =
                text.trim()
                    .parse::<age::x25519::Identity>()
                    .map_err(|_| BackupError::Corrupt {
                        path: path.clone(),
                        reason: "the sealed key is not an age identity".into(),
                    })?;
            keys.add(id);
        }
        if keys.is_empty() {
            return Err(BackupError::KeysNeeded {
                path: dir.to_path_buf(),
            });
        }
        Ok(keys)
    }
}
