//! Rendering shared by subcommands: errors (with their cause chain, once, on stderr), exit-code
//! mapping and small text helpers.

use pgkeel::backup::BackupError;
use pgkeel::config::ConfigError;
use pgkeel::db::DbError;
use pgkeel::migrate::MigrateError;
use pgkeel::rollback::RollbackError;
use pgkeel::schema::SchemaError;
use pgkeel::snapshot_input::SnapshotInputError;
use pgkeel::source::SourceError;
use serde_json::json;

use crate::args::Format;
use crate::exit_codes;
use pgkeel::outcome::{Classify, FailureKind};

/// Maps an error to its exit code: the library classifies it ([`Classify`]), and
/// [`exit_codes::for_kind`] maps the kind.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    exit_codes::for_kind(kind_of(err))
}

/// The [`FailureKind`] of an error the CLI got from the library (or made itself).
fn kind_of(err: &anyhow::Error) -> FailureKind {
    macro_rules! classified {
        ($($t:ty),* $(,)?) => {
            $(if let Some(e) = err.downcast_ref::<$t>() {
                return e.kind();
            })*
        };
    }
    classified!(
        MigrateError,
        pgkeel::ops::production::ProductionError,
        RollbackError,
        BackupError,
        SchemaError,
        SnapshotInputError,
        DbError,
        pgkeel::validate::ValidateError,
        pgkeel::testing::TestError,
        pgkeel::scratch::ScratchError,
    );
    if let Some(e) = err.downcast_ref::<pgkeel::fleet::FleetError>() {
        return match e {
            pgkeel::fleet::FleetError::TenantQuery { error, .. } => error.kind(),
            _ => FailureKind::Usage,
        };
    }
    if err.downcast_ref::<pgkeel::report::ReportError>().is_some() {
        return FailureKind::Internal;
    }
    if err.downcast_ref::<SourceError>().is_some() {
        return FailureKind::Findings;
    }
    if err.downcast_ref::<ConfigError>().is_some() {
        return FailureKind::Usage;
    }
    if err.downcast_ref::<std::io::Error>().is_some() {
        return FailureKind::Internal;
    }
    // The CLI's own errors (`anyhow::bail!` on bad flags).
    FailureKind::Usage
}

/// The causes of `err` worth printing after its message: each once, and none whose text the
/// message (or an earlier cause) already shows, so an error whose message includes its source
/// does not print it twice.
fn causes(err: &anyhow::Error) -> Vec<String> {
    let mut shown = err.to_string();
    let mut out = Vec::new();
    for cause in err.chain().skip(1) {
        let text = cause.to_string();
        if !shown.contains(&text) {
            shown.push('\n');
            shown.push_str(&text);
            out.push(text);
        }
    }
    out
}

/// Prints the error and its causes once on stderr (and a JSON document on stdout with
/// `--format json`); returns the exit code.
pub fn error(err: &anyhow::Error, format: Format) -> i32 {
    let code = exit_code(err);
    let label = crate::printer::paint(crate::printer::Stream::Stderr, "1;31", "error");
    eprintln!("{label}: {err}");
    let causes = causes(err);
    for cause in &causes {
        eprintln!("  caused by: {cause}");
    }
    if format == Format::Json {
        let pg = err
            .downcast_ref::<MigrateError>()
            .and_then(|e| match e {
                MigrateError::Failed { pg, .. } => Some(pg),
                MigrateError::Db(d) => d.pg(),
                _ => None,
            })
            .or_else(|| {
                err.downcast_ref::<RollbackError>()
                    .and_then(RollbackError::pg)
            })
            .or_else(|| err.downcast_ref::<SchemaError>().and_then(SchemaError::pg))
            .or_else(|| err.downcast_ref::<DbError>().and_then(DbError::pg))
            .or_else(|| {
                err.downcast_ref::<BackupError>().and_then(|e| match e {
                    BackupError::Db(d) => d.pg(),
                    _ => None,
                })
            });
        let doc = json!({
            "ok": false,
            "exit_code": code,
            "error": {
                "message": err.to_string(),
                "causes": causes,
                "postgres": pg,
            }
        });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    }
    code
}

/// `12 ms`, `1.4 s`.
/// `1 statement`, `3 statements`.
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

pub fn ms(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.1} s", ms as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn errors_map_to_their_documented_exit_codes() {
        let cases: Vec<(anyhow::Error, i32)> = vec![
            (
                MigrateError::HeldBack { id: "0002".into() }.into(),
                exit_codes::FINDINGS,
            ),
            (
                MigrateError::CommittedChanged {
                    id: "0001".into(),
                    path: PathBuf::from("m/0001.sql"),
                    committed: vec![],
                    done: 2,
                    first_changed: Some(0),
                }
                .into(),
                exit_codes::FINDINGS,
            ),
            (
                MigrateError::Interrupted { id: "0001".into() }.into(),
                exit_codes::INTERRUPTED,
            ),
            (
                DbError::LockTimeout {
                    waited: std::time::Duration::from_secs(1),
                    holder: "x".into(),
                }
                .into(),
                exit_codes::LOCK_TIMEOUT,
            ),
            (
                pgkeel::ops::production::ProductionError::Backup(BackupError::NotVerified {
                    path: PathBuf::from("b"),
                    problems: "x".into(),
                })
                .into(),
                exit_codes::BACKUP_FAILED,
            ),
            (
                pgkeel::ops::production::ProductionError::Plan(MigrateError::UnknownId {
                    id: "x".into(),
                    dir: PathBuf::from("m"),
                })
                .into(),
                exit_codes::USAGE,
            ),
            (
                BackupError::Worker { reason: "x".into() }.into(),
                exit_codes::BACKUP_FAILED,
            ),
            (SnapshotInputError::NoFolder.into(), exit_codes::USAGE),
            (
                pgkeel::validate::ValidateError::Migrate(MigrateError::Interrupted {
                    id: "x".into(),
                })
                .into(),
                exit_codes::INTERRUPTED,
            ),
            (
                pgkeel::scratch::ScratchError::Unavailable { reason: "x".into() }.into(),
                exit_codes::CONNECTION,
            ),
            (DbError::NotConfigured.into(), exit_codes::USAGE),
            (anyhow::anyhow!("--pg-version: bad"), exit_codes::USAGE),
        ];
        for (err, code) in cases {
            assert_eq!(exit_code(&err), code, "{err}");
        }
    }

    #[test]
    fn a_cause_the_message_already_shows_is_not_printed_again() {
        // BackupError::Io shows its io::Error in its message and returns it from source().
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "permission denied");
        let err: anyhow::Error = BackupError::Io {
            path: PathBuf::from("/backups/x"),
            source: io,
        }
        .into();
        let err = err.context("the pre-migration backup failed");
        let causes = causes(&err);
        assert_eq!(causes.len(), 1, "{causes:?}");
        assert!(causes[0].contains("permission denied"));
        // Every line is printed once.
        let mut lines: Vec<String> = std::iter::once(err.to_string()).chain(causes).collect();
        let n = lines.len();
        lines.dedup();
        assert_eq!(lines.len(), n);
    }
}
