//! Named process exit codes. Documented in the README; scripts may rely on them.

/// Everything asked for was done (or there was nothing to do).
pub const SUCCESS: i32 = 0;
/// Validation found problems: changed or broken migration files, drift, findings at or above
/// `--fail-on`.
pub const FINDINGS: i32 = 1;
/// Bad command line or configuration (also clap's own code for usage errors).
pub const USAGE: i32 = 2;
/// The database could not be reached: not configured, refused, timed out, authentication.
pub const CONNECTION: i32 = 3;
/// A migration's SQL failed on the server; its transaction was rolled back.
pub const MIGRATION_FAILED: i32 = 4;
/// Another pgkeel held the deploy lock for longer than the configured wait.
pub const LOCK_TIMEOUT: i32 = 5;
/// `monitor`: the worst alert is a warning (long-running query, lock wait, high error rate, …).
pub const ALERT_WARNING: i32 = 10;
/// `monitor`: the worst alert is critical (database unreachable or timed out, migration failed,
/// connections above 95 %, wraparound risk).
pub const ALERT_CRITICAL: i32 = 11;
/// A backup or restore failed (the server, pg_dump/pg_restore or the disk); nothing valid was
/// left half-written.
pub const BACKUP_FAILED: i32 = 6;
/// `deploy`: the migrations were applied but the post-migration checks (schema, new critical
/// findings) or the health URL failed; the report names the rollback and restore commands.
pub const DEPLOY_UNHEALTHY: i32 = 7;
/// An encrypted backup that the given identity file or passphrase does not open: the key is
/// wrong, not (necessarily) the backup.
pub const WRONG_KEY: i32 = 8;
/// A bug in pgkeel: please report it.
pub const INTERNAL: i32 = 70;
/// Interrupted by Ctrl-C or SIGTERM; the current transaction was rolled back.
pub const INTERRUPTED: i32 = 130;

/// The exit code of a failure of `kind`: the one mapping, exhaustive, so a new kind cannot go
/// unmapped.
pub fn for_kind(kind: pgkeel::outcome::FailureKind) -> i32 {
    use pgkeel::outcome::FailureKind as K;
    match kind {
        K::Findings => FINDINGS,
        K::Usage => USAGE,
        K::Connection => CONNECTION,
        K::Migration => MIGRATION_FAILED,
        K::LockTimeout => LOCK_TIMEOUT,
        K::Backup => BACKUP_FAILED,
        K::PostCheck | K::Unhealthy => DEPLOY_UNHEALTHY,
        K::Interrupted => INTERRUPTED,
        K::Keys => WRONG_KEY,
        K::Internal => INTERNAL,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pgkeel::outcome::FailureKind as K;

    #[test]
    fn every_failure_kind_has_its_documented_code() {
        for (kind, code) in [
            (K::Findings, 1),
            (K::Usage, 2),
            (K::Connection, 3),
            (K::Migration, 4),
            (K::LockTimeout, 5),
            (K::Backup, 6),
            (K::PostCheck, 7),
            (K::Unhealthy, 7),
            (K::Keys, 8),
            (K::Internal, 70),
            (K::Interrupted, 130),
        ] {
            assert_eq!(for_kind(kind), code, "{kind:?}");
        }
    }
}
