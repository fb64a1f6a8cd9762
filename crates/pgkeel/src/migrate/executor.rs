//! The executor: a migration's statements, in units and transaction groups, sent with the
//! ledger's guard and progress, retried on lock timeouts with backoff, and resumed after a failure
//! at the first statement that did not commit.

use super::*;

/// Where a previously failed migration resumes: after the statements it committed (those
/// of its units that ran before the failing one). When the file changed since, the committed
/// statements must be unchanged (by [`sql::statement_hash`]): then the run goes on with the
/// first changed or not-yet-run statement; otherwise it is refused, never silently restarted.
pub(super) fn resume_point(
    entry: &Entry,
    m: &Migration,
    stmts: &[Statement],
) -> Result<Option<usize>, MigrateError> {
    if entry.state != State::Failed {
        return Ok(None);
    }
    let Some(done) = entry
        .statements_done
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| *n > 0)
    else {
        return Ok(None);
    };
    if entry.ledger_hash.as_deref() == Some(m.hash.as_str()) && done <= stmts.len() {
        return Ok(Some(done));
    }
    let now: Vec<String> = statement_hashes(stmts);
    let then = entry.statement_hashes.as_deref();
    let changed = match then {
        Some(then) if then.len() >= done => (0..done).find(|&i| now.get(i) != then.get(i)),
        _ => Some(0),
    };
    match changed {
        None => Ok(Some(done)),
        Some(first) => Err(MigrateError::CommittedChanged {
            id: m.id.clone(),
            path: m.path.clone(),
            committed: stmts
                .iter()
                .take(done)
                .map(|s| {
                    let l = Location::in_file(&m.path, &m.sql, s.offset);
                    format!("{}:{}: {}", l.path.display(), l.line, first_line(&s.text))
                })
                .collect(),
            done,
            first_changed: then.is_some().then_some(first),
        }),
    }
}

/// The first line of a statement, shortened to 80 characters.
pub(super) fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or("").trim_end();
    let short: String = line.chars().take(80).collect();
    if short.len() < text.trim_end().len() {
        format!("{short} …")
    } else {
        short
    }
}

/// [`sql::statement_hash`] of each statement, in order: what partial progress records and a
/// resumed run compares.
pub(super) fn statement_hashes(stmts: &[Statement]) -> Vec<String> {
    stmts.iter().map(|s| sql::statement_hash(&s.text)).collect()
}

/// The hashes to record with a failure after `done` statements committed: every statement's,
/// so a later run can check the committed ones; none when nothing is committed.
pub(super) fn committed_hashes(done: usize, stmts: &[Statement]) -> Option<Vec<String>> {
    (done > 0).then(|| statement_hashes(stmts))
}

/// Which statement of `m` failed, and where: the one holding the server's error position when
/// there is one, else the one that was running when the batch stopped (`completed` of its
/// statements had completed). The location is the error position, or the statement's start.
pub(super) fn failure_place(
    m: &Migration,
    stmts: &[Statement],
    batch: &Batch,
    pg: &PgError,
    completed: usize,
) -> (Option<usize>, Option<Location>) {
    let at = pg.position.and_then(|p| batch.file_offset(p));
    let index = at
        .and_then(|off| stmts.iter().rposition(|s| s.offset <= off))
        .or_else(|| batch.statement_after(completed));
    let offset = at.or_else(|| index.and_then(|i| stmts.get(i)).map(|s| s.offset));
    (index, offset.map(|o| Location::in_file(&m.path, &m.sql, o)))
}

/// One unit of execution of a migration: `stmts[from..to]`, in a transaction opened with
/// `transaction` (the file's own `BEGIN …` or pgkeel's `BEGIN`), or one statement alone.
#[derive(Debug)]
pub(super) struct Unit {
    pub(super) from: usize,
    pub(super) to: usize,
    pub(super) transaction: Option<String>,
}

/// The units of `stmts[start..]` (see [`Migrator::groups`]).
pub(super) fn units_of(m: &Migration, stmts: &[Statement], start: usize) -> Vec<Unit> {
    let blocks = stmts
        .iter()
        .filter_map(|s| s.block.as_ref())
        .map(|b| b.index + 1)
        .max()
        .unwrap_or(0);
    // One transaction when the file has no blocks of its own, or one block around all of it;
    // otherwise the file's blocks are its transactions, as psql and Prisma run them.
    let wrapped_or_plain = match blocks {
        0 => true,
        1 => stmts.iter().all(|s| s.block.is_some()),
        _ => false,
    };
    let one =
        !m.directives.no_transaction && wrapped_or_plain && stmts.iter().all(|s| s.transactional);
    if one {
        if start >= stmts.len() {
            return Vec::new();
        }
        let begin = stmts
            .iter()
            .find_map(|s| s.block.as_ref())
            .map_or("BEGIN", |b| b.begin.as_str());
        return vec![Unit {
            from: start,
            to: stmts.len(),
            transaction: Some(begin.to_string()),
        }];
    }
    let mut units = Vec::new();
    let mut i = start;
    while i < stmts.len() {
        let from = i;
        let s = &stmts[i];
        if let Some(b) = &s.block {
            while i < stmts.len() && stmts[i].block.as_ref().map(|x| x.index) == Some(b.index) {
                i += 1;
            }
            units.push(Unit {
                from,
                to: i,
                transaction: Some(b.begin.clone()),
            });
        } else if s.transactional && !m.directives.no_transaction {
            while i < stmts.len() && stmts[i].block.is_none() && stmts[i].transactional {
                i += 1;
            }
            units.push(Unit {
                from,
                to: i,
                transaction: Some("BEGIN".into()),
            });
        } else {
            i += 1;
            units.push(Unit {
                from,
                to: i,
                transaction: None,
            });
        }
    }
    units
}

#[derive(Debug)]
pub(crate) struct Group {
    /// Session settings sent before `batch` (non-transactional units only).
    pub(crate) pre: String,
    pub(crate) batch: Batch,
    /// The ledger write sent after `batch` (non-transactional units only).
    pub(crate) post: String,
    /// `CREATE INDEX CONCURRENTLY`: the index whose invalid leftover to drop before a try.
    pub(crate) cleanup: Option<String>,
    /// Index of the group's first statement.
    pub(crate) first: usize,
    /// Statements in the group.
    pub(crate) len: usize,
}

impl Group {
    /// Everything the group sends, in order (what a dry run shows).
    pub(crate) fn sql(&self) -> String {
        format!("{}{}{}", self.pre, self.batch.text, self.post)
    }
}

/// Session settings for one unit: `SET LOCAL` inside a transaction, `SET` before a statement
/// sent alone.
pub(crate) fn session_sql(lock: Duration, statement: Duration, local: bool) -> String {
    let scope = if local { "SET LOCAL" } else { "SET" };
    format!(
        "{scope} lock_timeout = '{}ms';\n{scope} statement_timeout = '{}ms';\n",
        lock.as_millis(),
        statement.as_millis()
    )
}

/// Whether a migration's commits wait for the WAL to reach disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flush {
    /// As the server is configured (`synchronous_commit`): the last migration of a run, a
    /// dry run, a migration applied alone.
    Durable,
    /// `SET LOCAL synchronous_commit = off`: a migration with more of the same run after it.
    /// Its commit is written to the WAL as always, in order, and a crash cannot keep part of
    /// it; only the wait for the disk is left out. The run's last commit (or the failure it
    /// records, or the next run's first) waits for the WAL up to itself, which holds every
    /// earlier commit: when `migrate` returns, all of them are on disk. What a server crash
    /// during the run can lose is the last few migrations, each whole, with their ledger rows,
    /// and the next run applies them again. Without it each trivial migration paid a disk
    /// flush that psql's read-only transactions never do (bench/apply_cost.sh).
    Deferred,
}

/// What [`Flush::Deferred`] adds to a migration's transaction.
const DEFER_FLUSH: &str = "SET LOCAL synchronous_commit = off;\n";

/// Where a migration stands in its run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunSoFar<'a> {
    /// The migrations this run applied before it; only read when it fails, to say how far the
    /// run got.
    pub applied: &'a [Applied],
    pub flush: Flush,
}

/// What a transaction's guard requires of the migration's ledger row before it does anything.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Expect {
    /// Applying: the row must not be applied yet (else [`ALREADY_APPLIED`]).
    NotApplied,
    /// Reverting: the row must still be applied (else [`NOT_APPLIED`]).
    Applied,
}

/// SQLSTATE raised by the guard when another process rolled the migration back first.
pub(crate) const NOT_APPLIED: &str = "PGS02";

/// The guard that opens every transaction pgkeel sends for a migration, apply or revert: the
/// check that this server connection holds the deploy lock, a transaction-level advisory lock
/// (which, unlike the session-level deploy lock, also holds behind a transaction-pooling proxy)
/// and a check of the ledger row, so a migration is never applied or rolled back twice whatever
/// the connection path. One statement, not three: its cost is paid by every migration.
///
/// Two forms do the same checks. [`GuardFunction`] installs them once per session as a
/// temporary PL/pgSQL function whose plans the server keeps, and each transaction calls it;
/// this is the other form, a `DO` block compiled afresh by every transaction (about 0.25 ms
/// each, bench/apply_cost.sh), used where the function cannot be installed (no TEMP privilege)
/// and in what a dry run shows, which must run as it is.
pub(crate) fn guard_sql(ledger: &Ledger, id: &str, expect: Expect) -> String {
    format!(
        "DO $pgkeel$ DECLARE mid text := {}; BEGIN {} END $pgkeel$;\n",
        crate::ident::quote_literal(id),
        guard_body(ledger, expect)
    )
}

/// The SQL a dry run shows of a batch: the user's statements and the ledger writes, with
/// pgkeel's guard (the deploy-lock check and "not done by another process yet") and `ledger`'s
/// record upserts (which repeat the whole file) as one-line comments, unless `-v` (info
/// logging) asks for every statement sent.
pub(crate) fn shown_sql(text: &str, guard: &str, ledger: &Ledger) -> String {
    if tracing::enabled!(tracing::Level::INFO) {
        return text.to_string();
    }
    const NOTE: &str = "-- pgkeel's guard: this session holds the deploy lock, and no other process did this first (`-v` shows its SQL)\n";
    // The guard is a whole line (it ends in `;\n`), and so is the note.
    ledger.abbreviate_records(&text.replace(guard, NOTE))
}

/// The PL/pgSQL statements of the guard, for the migration id in variable `mid`.
fn guard_body(ledger: &Ledger, expect: Expect) -> String {
    let lock = DeployLock::for_ledger(&ledger.schema, &ledger.table);
    let (key, held) = (lock.tx_key(), lock.held_check_plpgsql());
    let (test, message, code) = match expect {
        Expect::NotApplied => (
            "IF EXISTS",
            "was already applied by another process",
            ALREADY_APPLIED,
        ),
        Expect::Applied => (
            "IF NOT EXISTS",
            "is no longer applied (rolled back by another process?)",
            NOT_APPLIED,
        ),
    };
    format!(
        "{held} PERFORM pg_advisory_xact_lock({key}); \
         {test} (SELECT 1 FROM {t} WHERE id = mid AND status IN ('applied', 'baselined')) \
         THEN RAISE EXCEPTION 'pgkeel: % {message}', mid USING ERRCODE = '{code}'; END IF;",
        t = ledger.table_sql(),
    )
}

/// The guard installed once per session as `pg_temp` functions (one per [`Expect`]), called by
/// each migration transaction instead of a `DO` block. A temporary function exists only on the
/// server connection that created it: a transaction that a transaction-pooling proxy hands to
/// another server connection finds no such function ([`GuardFunction::is_missing`]), which is
/// the same finding as the lock check's inside it (that connection holds no deploy lock).
#[derive(Debug, Clone)]
pub(crate) struct GuardFunction {
    /// `pg_temp.pgkeel_guard_<key>`: one per ledger, so two ledgers migrated on one session
    /// keep their own.
    name: String,
    /// What creates them, again if a migration dropped them (`DISCARD TEMP`).
    create: String,
}

impl GuardFunction {
    const PREFIX: &'static str = "pgkeel_guard_";

    /// Creates the functions on `client`'s session. `None` when the server refuses (a role
    /// without the TEMP privilege): the guard then stays a `DO` block.
    pub(crate) async fn install(client: &Client, ledger: &Ledger) -> Option<GuardFunction> {
        let lock = DeployLock::for_ledger(&ledger.schema, &ledger.table);
        let name = format!("pg_temp.{}{:x}", Self::PREFIX, lock.key());
        let mut create = String::new();
        for expect in [Expect::NotApplied, Expect::Applied] {
            create.push_str(&format!(
                "CREATE OR REPLACE FUNCTION {name}{}(mid text) RETURNS void \
                 LANGUAGE plpgsql AS $pgkeel$ BEGIN {} END $pgkeel$;\n",
                Self::suffix(expect),
                guard_body(ledger, expect)
            ));
        }
        match client.batch_execute(&create).await {
            Ok(()) => Some(GuardFunction { name, create }),
            Err(e) => {
                tracing::info!("guard stays a DO block (no temporary function: {e})");
                None
            }
        }
    }

    /// The call that opens a migration transaction.
    pub(crate) fn call(&self, id: &str, expect: Expect) -> String {
        format!(
            "SELECT {}{}({});\n",
            self.name,
            Self::suffix(expect),
            crate::ident::quote_literal(id)
        )
    }

    /// The function of the pair that guards `expect`.
    fn suffix(expect: Expect) -> &'static str {
        match expect {
            Expect::NotApplied => "_apply",
            Expect::Applied => "_revert",
        }
    }

    /// Whether `pg` says the guard function does not exist on the server connection that ran
    /// the transaction: not the session that took the deploy lock. A server connection that
    /// never made a temporary object has no `pg_temp` schema at all (3F000), one that did has
    /// no such function in it (42883); behind a transaction pooler either can happen.
    pub(crate) fn is_missing(pg: &PgError) -> bool {
        (pg.code == "42883" && pg.message.contains(Self::PREFIX))
            || (pg.code == "3F000" && pg.message.contains("pg_temp"))
    }
}

/// Hears of each retry: the attempt that failed, the delay before the next, the error and who
/// blocked it.
pub(crate) type OnRetry<'r> = dyn FnMut(u32, Duration, &PgError, &[Blocker]) + Send + 'r;

/// Why [`Sender::send`] stopped.
#[derive(Debug)]
pub(crate) enum SendError {
    /// Not a server error (the connection failed), or a statement of pgkeel's own failed.
    Db(DbError),
    /// Ctrl-C / SIGTERM: the batch was cancelled and rolled back.
    Interrupted,
    /// The guard found the work done by another process meanwhile.
    Raced,
    /// The server refused the batch and retrying does not help (or retries ran out).
    Failed {
        pg: PgError,
        /// Statements of the batch that completed before the failing one.
        completed: usize,
        attempts: u32,
        blockers: Vec<Blocker>,
    },
}

/// The one executor of apply and revert: sends a [`Group`] (session settings, the batch, the
/// ledger write after it), retries transient failures (lock timeouts, deadlocks, serialization)
/// with backoff, stops on a lost deploy lock or a guard that says another process got there
/// first, samples who blocks a batch that waits (from a second connection), and cancels the
/// running batch on Ctrl-C.
#[derive(Debug)]
pub(crate) struct Sender<'s> {
    settings: &'s Settings,
    /// Backend pid of the sending session (0: unknown, no blockers sampled).
    pid: std::sync::atomic::AtomicI32,
    /// A second connection, opened only when a batch waits, to see who blocks it.
    side: tokio::sync::Mutex<Option<Client>>,
    /// Becomes true on Ctrl-C / SIGTERM.
    interrupt: Option<tokio::sync::watch::Receiver<bool>>,
    /// The session's guard function, once installed ([`Sender::install_guard`]).
    guard: std::sync::OnceLock<GuardFunction>,
}

impl<'s> Sender<'s> {
    pub(crate) fn new(settings: &'s Settings) -> Self {
        Sender {
            settings,
            pid: std::sync::atomic::AtomicI32::new(0),
            side: tokio::sync::Mutex::new(None),
            interrupt: None,
            guard: std::sync::OnceLock::new(),
        }
    }

    /// Installs the guard function on `client`'s session (see [`GuardFunction`]); the guards
    /// built afterwards ([`Sender::guard_sql`]) call it. Call it once the deploy lock is held.
    pub(crate) async fn install_guard(&self, client: &Client, ledger: &Ledger) {
        if self.guard.get().is_none() {
            if let Some(g) = GuardFunction::install(client, ledger).await {
                let _ = self.guard.set(g);
            }
        }
    }

    /// Creates the guard function again when this connection is still the session that holds
    /// the deploy lock (its backend pid unchanged); false when it is not, or it fails.
    async fn reinstall_guard(&self, client: &Client) -> bool {
        let (Some(g), pid) = (
            self.guard.get(),
            self.pid.load(std::sync::atomic::Ordering::Relaxed),
        ) else {
            return false;
        };
        let same = match client.query_one("SELECT pg_backend_pid()", &[]).await {
            Ok(row) => pid != 0 && row.get::<_, i32>(0) == pid,
            Err(_) => false,
        };
        same && client.batch_execute(&g.create).await.is_ok()
    }

    /// The guard opening a transaction for migration `id`: a call of the session's guard
    /// function when installed, else the `DO` block ([`guard_sql`]).
    pub(crate) fn guard_sql(&self, ledger: &Ledger, id: &str, expect: Expect) -> String {
        match self.guard.get() {
            Some(g) => g.call(id, expect),
            None => guard_sql(ledger, id, expect),
        }
    }

    pub(crate) fn set_interrupt(&mut self, rx: tokio::sync::watch::Receiver<bool>) {
        self.interrupt = Some(rx);
    }

    pub(crate) fn set_pid(&self, pid: i32) {
        self.pid.store(pid, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn interrupted(&self) -> bool {
        self.interrupt.as_ref().is_some_and(|rx| *rx.borrow())
    }

    /// Sends `g` for `what` ("applying 0001_init", "rolling back 0001_init"), trying the batch
    /// up to `tries` times; `on_retry` hears of each retry. Returns the attempts it took.
    pub(crate) async fn send(
        &self,
        client: &Client,
        g: &Group,
        what: &str,
        tries: u32,
        on_retry: &mut OnRetry<'_>,
    ) -> Result<u32, SendError> {
        if !g.pre.is_empty() {
            client.batch_execute(&g.pre).await.map_err(|e| {
                SendError::Db(DbError::query(format!("{what} (session settings)"), e))
            })?;
        }
        let mut attempt = 0;
        let mut reinstalled = false;
        let mut ran;
        loop {
            attempt += 1;
            ran = Instant::now();
            if let Some(index) = &g.cleanup {
                drop_invalid_index(client, index)
                    .await
                    .map_err(SendError::Db)?;
            }
            let (result, blockers) = self.exec_watched(client, &g.batch.text).await;
            let Err(f) = result else {
                break;
            };
            let pg = PgError::from_driver(&f.error);
            // Leave no aborted transaction behind; the connection may be gone, so a failing
            // ROLLBACK says nothing new.
            let _ = client.batch_execute("ROLLBACK").await;
            let Some(pg) = pg else {
                return Err(SendError::Db(DbError::query(what.to_string(), f.error)));
            };
            if self.interrupted() {
                return Err(SendError::Interrupted);
            }
            if GuardFunction::is_missing(&pg) && !reinstalled && self.reinstall_guard(client).await
            {
                // A migration dropped it (DISCARD TEMP) on the very session that holds the
                // lock: create it again and try once more, not counted as a retry.
                reinstalled = true;
                attempt -= 1;
                continue;
            }
            if pg.code == crate::db::LOCK_NOT_HELD || GuardFunction::is_missing(&pg) {
                return Err(SendError::Db(DbError::LockNotHeld {
                    context: what.to_string(),
                }));
            }
            if pg.code == ALREADY_APPLIED || pg.code == NOT_APPLIED {
                return Err(SendError::Raced);
            }
            if pg.is_transient() && attempt < tries {
                let delay = backoff(attempt);
                on_retry(attempt, delay, &pg, &blockers);
                tokio::time::sleep(delay).await;
                continue;
            }
            return Err(SendError::Failed {
                pg,
                completed: f.completed,
                attempts: attempt,
                blockers,
            });
        }
        if !g.post.is_empty() {
            // The record goes after a statement that ran alone: it carries that statement's time.
            let post = crate::ledger::with_time_before(&g.post, ran.elapsed().as_millis());
            client.batch_execute(&post).await.map_err(|e| {
                SendError::Db(DbError::query(
                    format!("{what} (recording it in the ledger)"),
                    e,
                ))
            })?;
        }
        Ok(attempt)
    }

    /// Runs `sql`; while it runs longer than a moment, samples who blocks it from a second
    /// connection, so a lock timeout can be explained. Returns the last non-empty sample.
    pub(crate) async fn exec_watched(
        &self,
        client: &Client,
        sql: &str,
    ) -> (Result<(), crate::db::BatchFailure>, Vec<Blocker>) {
        let exec = crate::db::execute_counting(client, sql);
        tokio::pin!(exec);
        let mut seen = Vec::new();
        let mut wait = Duration::from_millis(150);
        let mut interrupt = self.interrupt.clone();
        let mut cancelled = false;
        loop {
            tokio::select! {
                res = &mut exec => return (res, seen),
                changed = async {
                    match interrupt.as_mut() {
                        Some(rx) => rx.wait_for(|v| *v).await.map(|_| ()),
                        None => std::future::pending().await,
                    }
                }, if !cancelled => {
                    cancelled = true;
                    if changed.is_ok() {
                        if let Ok(target) = crate::db::Target::from_settings(self.settings) {
                            let _ = target.cancel(client).await;
                        }
                    }
                }
                _ = tokio::time::sleep(wait) => {
                    wait = Duration::from_millis(400);
                    let now = self.sample_blockers().await;
                    if !now.is_empty() {
                        seen = now;
                    }
                }
            }
        }
    }

    pub(crate) async fn sample_blockers(&self) -> Vec<Blocker> {
        let pid = self.pid.load(std::sync::atomic::Ordering::Relaxed);
        if pid == 0 {
            return Vec::new();
        }
        let mut side = self.side.lock().await;
        if side.as_ref().is_none_or(|c| c.is_closed()) {
            let Ok(target) = crate::db::Target::from_settings(self.settings) else {
                return Vec::new();
            };
            *side = target.connect().await.ok();
        }
        match side.as_ref() {
            Some(c) => crate::db::blockers(c, pid).await.unwrap_or_default(),
            None => Vec::new(),
        }
    }
}

pub(super) fn backoff(attempt: u32) -> Duration {
    let base = 200u64
        .saturating_mul(1 << attempt.min(6).saturating_sub(1))
        .min(10_000);
    let jitter = rand::random::<u64>() % (base / 2 + 1);
    Duration::from_millis(base - base / 4 + jitter)
}

impl<'a> Migrator<'a> {
    pub(super) fn settings_sql(&self, m: &Migration, local: bool) -> String {
        let lock = m
            .directives
            .lock_timeout
            .map_or(self.settings.lock_timeout, |t| t.as_duration());
        let stmt = m
            .directives
            .statement_timeout
            .map_or(self.settings.statement_timeout, |t| t.as_duration());
        session_sql(lock, stmt, local)
    }

    /// The guard of every migration transaction (see [`guard_sql`]).
    pub(super) fn guard_sql(&self, m: &Migration) -> String {
        if m.repeatable {
            // A Flyway `R__` migration runs again once applied: the guard checks the lock, and
            // "not applied yet" of this text of it (an id no row has), not of the id.
            let this_text = format!("{}@{}", m.id, m.hash);
            return self
                .sender
                .guard_sql(&self.ledger, &this_text, Expect::NotApplied);
        }
        self.sender
            .guard_sql(&self.ledger, &m.id, Expect::NotApplied)
    }

    /// Splits a migration into units of execution. A migration whose statements may all run in
    /// a transaction is one transaction (a `BEGIN … COMMIT` wrapper around the whole file is
    /// that transaction); otherwise each of the file's own `BEGIN … COMMIT` blocks is one, consecutive
    /// transactional statements outside blocks form one, and each non-transactional statement
    /// runs alone. The ledger row goes into the last transactional unit, or alone after a
    /// trailing non-transactional statement; every earlier unit records its progress.
    /// `rollback` is what [`Migrator::rollback_for`] gives for `m` (stored with its row).
    /// `flush` says whether its commits wait for the WAL to reach disk ([`Flush`]).
    pub(super) fn groups(
        &self,
        m: &Migration,
        stmts: &[Statement],
        resume: Option<usize>,
        rollback: Option<String>,
        flush: Flush,
    ) -> Vec<Group> {
        let start = resume.unwrap_or(0).min(stmts.len());
        let drizzle_row = self.side_rows_sql(m, stmts);
        let record = |done: usize| {
            format!(
                "{};\n{};\n{drizzle_row}",
                self.ledger.record_sql(
                    m,
                    "applied",
                    rollback.as_deref(),
                    Some(Progress::count(done)),
                    None
                ),
                self.ledger
                    .audit_sql("migrate", Some(&m.id), "applied", None)
            )
        };
        let units = units_of(m, stmts, start);
        // Hashes of the statements, recorded with partial progress so a resumed run can tell
        // whether the committed statements are still the file's.
        let hashes: Vec<String> = if units.len() > 1 {
            statement_hashes(stmts)
        } else {
            Vec::new()
        };
        let mut groups: Vec<Group> = Vec::with_capacity(units.len().max(1));
        for unit in &units {
            let mut b = Batch::default();
            let mut pre = String::new();
            let mut cleanup = None;
            let range = unit.from..unit.to;
            if let Some(begin) = &unit.transaction {
                self.open_transaction(&mut b, m, begin, stmts, range);
                if flush == Flush::Deferred {
                    b.push_raw(DEFER_FLUSH);
                }
            } else {
                // Sent alone: a statement in a multi-statement query runs in an implicit
                // transaction block, which these statements refuse.
                pre = self.settings_sql(m, false);
                cleanup = stmts[unit.from].concurrent_index.clone();
                b.push_statement(&stmts[unit.from], unit.from);
            }
            let progress = if unit.to == stmts.len() {
                record(stmts.len())
            } else {
                format!(
                    "{};\n",
                    self.ledger.record_sql(
                        m,
                        "failed",
                        None,
                        Some(Progress {
                            done: unit.to,
                            hashes: Some(&hashes),
                        }),
                        Some("in progress: interrupted before completion")
                    )
                )
            };
            let mut post = String::new();
            if unit.transaction.is_some() {
                if unit.to == stmts.len() {
                    if let Some(sql) = &self.before_commit {
                        b.push_raw(sql);
                    }
                }
                b.push_raw(&progress);
                b.push_raw("COMMIT;");
            } else {
                post = progress;
            }
            groups.push(Group {
                pre,
                batch: b,
                post,
                cleanup,
                first: unit.from,
                len: unit.to - unit.from,
            });
        }
        if groups.is_empty() {
            // Empty migration (or resumed past its end): record it.
            let mut b = Batch::default();
            b.push_raw(&record(stmts.len()));
            groups.push(Group {
                pre: String::new(),
                batch: b,
                post: String::new(),
                cleanup: None,
                first: stmts.len(),
                len: 0,
            });
        }
        groups
    }

    /// Opens a transaction in `b` and adds `stmts[range]`: the file's own `BEGIN` (or pgkeel's),
    /// then its leading `SET TRANSACTION` statements (they must come before any query), then
    /// pgkeel's `SET LOCAL` settings and guards, then the rest.
    pub(super) fn open_transaction(
        &self,
        b: &mut Batch,
        m: &Migration,
        begin: &str,
        stmts: &[Statement],
        range: std::ops::Range<usize>,
    ) {
        b.push_raw(begin);
        b.push_raw(";\n");
        let mut i = range.start;
        while i < range.end && stmts[i].set_transaction {
            b.push_statement(&stmts[i], i);
            i += 1;
        }
        b.push_raw(&self.settings_sql(m, true));
        b.push_raw(&self.guard_sql(m));
        for (k, s) in stmts.iter().enumerate().take(range.end).skip(i) {
            b.push_statement(s, k);
        }
    }

    pub(super) async fn apply_one(
        &self,
        client: &Client,
        entry: &Entry,
        m: &Migration,
        stmts: &[Statement],
        obs: &mut dyn Observer,
        run: RunSoFar<'_>,
    ) -> Result<Option<Applied>, MigrateError> {
        let before = run.applied;
        let started = Instant::now();
        let resume = resume_point(entry, m, stmts)?;
        let catalog = self.catalog_before(client, m, stmts, resume).await?;
        // The parse-tree rollback, inverted once: stored with the row (what `rollback_for`
        // gives), and when there is none, the reason to snapshot the schema around it.
        let generated = (m.down.is_none() && !m.directives.irreversible).then(|| {
            match catalog.is_empty() && resume.is_none() {
                true => self.prepared.rollback(m, stmts),
                false => crate::invert::generate_with(stmts, &catalog),
            }
        });
        let rollback = match (&m.down, &generated) {
            (Some(d), _) => Some(d.sql.clone()),
            (None, Some(g)) => generated_text(g),
            (None, None) => None,
        };
        let groups = self.groups(m, stmts, resume, rollback, run.flush);
        // No down file and no parse-tree inverse, but nothing that destroys data either: snapshot
        // the schema around the migration and store diff(after → before) as its rollback
        // (state-based). Data-losing migrations keep "no automatic rollback": a schema-only undo
        // would pretend to restore what it cannot.
        // The snapshots hold the relations the statements without an inverse name (and every
        // type, function, view, schema and extension), never every table of the schema.
        let state_before = match &generated {
            Some(g) if resume.is_none() && g.sql.is_none() && g.state_based => {
                let taken = async {
                    let scope = self.state_scope(client, stmts, g).await?;
                    let snap = self.user_schemas_snapshot(client, &scope).await?;
                    Ok::<_, crate::schema::SchemaError>((snap, scope))
                };
                match taken.await {
                    Ok(s) => Some(s),
                    Err(e) => {
                        tracing::info!("no state-based rollback for {}: {e}", m.id);
                        None
                    }
                }
            }
            _ => None,
        };
        let tries = m.directives.retries.unwrap_or(self.settings.retries).max(1);
        let mut attempts_total = 0;
        let what = format!("applying {}", m.id);
        for g in &groups {
            let mut on_retry = |attempt, delay, pg: &PgError, blockers: &[Blocker]| {
                obs.retry(&m.id, attempt, delay, pg, blockers)
            };
            let failure = match self
                .sender
                .send(client, g, &what, tries, &mut on_retry)
                .await
            {
                Ok(attempts) => {
                    attempts_total += attempts;
                    continue;
                }
                Err(f) => f,
            };
            // The group's work was rolled back (or never happened).
            let done = g.first;
            let hashes = committed_hashes(done, stmts);
            let progress = Progress {
                done,
                hashes: hashes.as_deref(),
            };
            return match failure {
                SendError::Db(e) => Err(e.into()),
                SendError::Raced => {
                    tracing::info!("{} was applied by another process meanwhile", m.id);
                    Ok(None)
                }
                SendError::Interrupted => {
                    let _ = self
                        .ledger
                        .record_failure(
                            client,
                            m,
                            progress,
                            "interrupted (Ctrl-C / SIGTERM); rolled back",
                        )
                        .await;
                    Err(MigrateError::Interrupted { id: m.id.clone() })
                }
                SendError::Failed {
                    pg,
                    completed,
                    attempts,
                    blockers,
                } => {
                    let (failed_at, location) = failure_place(m, stmts, &g.batch, &pg, completed);
                    self.ledger
                        .record_failure(client, m, progress, &pg.to_string())
                        .await
                        .ok();
                    Err(MigrateError::Failed {
                        id: m.id.clone(),
                        pg,
                        location,
                        statement: failed_at,
                        statements: stmts.len(),
                        committed: done,
                        attempts,
                        applied_before: before.iter().map(|a| a.id.clone()).collect(),
                        blockers,
                    })
                }
            };
        }
        let duration_ms = started.elapsed().as_millis() as u64;
        if let Some((before, scope)) = state_before {
            if let Err(e) = self.store_state_rollback(client, m, &before, &scope).await {
                // Said once, by the observer (the CLI prints it as a warning).
                let text = format!("{}: no state-based rollback stored: {e}", m.id);
                tracing::debug!("{text}");
                obs.warn(&text);
            }
        }
        Ok(Some(Applied {
            id: m.id.clone(),
            duration_ms,
            statements: stmts.len(),
            attempts: attempts_total,
            resumed_at: resume,
            sql: None,
        }))
    }

    /// `--single-transaction`: one BEGIN … COMMIT around every pending migration. Each migration
    /// is still sent as its own batch so a failure is attributed to the right file.
    pub(super) async fn apply_all_in_one(
        &self,
        client: &Client,
        todo: &[(&Entry, &Migration)],
        parsed: &[Vec<Statement>],
        obs: &mut dyn Observer,
    ) -> Result<Vec<Applied>, MigrateError> {
        for ((_, m), stmts) in todo.iter().zip(parsed) {
            let reason = if m.directives.no_transaction || stmts.iter().any(|s| !s.transactional) {
                Some("it has statements that cannot run inside a transaction block")
            } else if stmts.iter().any(|s| s.set_transaction) {
                Some("it sets its own transaction's characteristics (SET TRANSACTION)")
            } else if stmts
                .iter()
                .any(|s| s.block.as_ref().is_some_and(|b| b.index > 0))
            {
                Some("it runs several BEGIN … COMMIT blocks of its own")
            } else if stmts.iter().any(|s| {
                s.block
                    .as_ref()
                    .is_some_and(|b| !b.begin.eq_ignore_ascii_case("begin"))
            }) {
                Some("it opens its own transaction with options (BEGIN ISOLATION LEVEL …)")
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(MigrateError::SingleTransactionImpossible {
                    id: m.id.clone(),
                    reason,
                });
            }
        }
        client
            .batch_execute("BEGIN")
            .await
            .map_err(|e| DbError::query("starting the migration transaction", e))?;
        let mut applied = Vec::with_capacity(todo.len());
        for (i, ((_, m), stmts)) in todo.iter().zip(parsed).enumerate() {
            obs.start(&m.id, i, todo.len());
            let started = Instant::now();
            let mut b = Batch::default();
            b.push_raw(&self.settings_sql(m, true));
            b.push_raw(&self.guard_sql(m));
            for (k, s) in stmts.iter().enumerate() {
                b.push_statement(s, k);
            }
            b.push_raw(&self.side_rows_sql(m, stmts));
            b.push_raw(&format!(
                "{};\n{};\n",
                self.ledger.record_sql(
                    m,
                    "applied",
                    self.rollback_for(m, Some(stmts), &Before::default())
                        .as_deref(),
                    Some(Progress::count(stmts.len())),
                    None
                ),
                self.ledger.audit_sql(
                    "migrate",
                    Some(&m.id),
                    "applied",
                    Some(&serde_json::json!({"single_transaction": true}))
                )
            ));
            if let Err(f) = crate::db::execute_counting(client, &b.text).await {
                let _ = client.batch_execute("ROLLBACK").await;
                let Some(pg) = PgError::from_driver(&f.error) else {
                    return Err(DbError::query(format!("applying {}", m.id), f.error).into());
                };
                let (statement, location) = failure_place(m, stmts, &b, &pg, f.completed);
                return Err(MigrateError::Failed {
                    id: m.id.clone(),
                    pg,
                    location,
                    statement,
                    statements: stmts.len(),
                    committed: 0,
                    attempts: 1,
                    // Everything before it was rolled back with it.
                    applied_before: Vec::new(),
                    blockers: Vec::new(),
                });
            }
            applied.push(Applied {
                id: m.id.clone(),
                duration_ms: started.elapsed().as_millis() as u64,
                statements: stmts.len(),
                attempts: 1,
                resumed_at: None,
                sql: None,
            });
        }
        client
            .batch_execute("COMMIT")
            .await
            .map_err(|e| DbError::query("committing the migration transaction", e))?;
        for a in &applied {
            obs.done(a);
        }
        Ok(applied)
    }
}

#[cfg(test)]
mod guard_tests {
    use super::*;

    fn pg(code: &str, message: &str) -> PgError {
        PgError {
            severity: "ERROR".into(),
            code: code.into(),
            message: message.into(),
            detail: None,
            hint: None,
            position: None,
            context: None,
        }
    }

    #[test]
    fn a_missing_pg_temp_schema_is_a_missing_guard_as_behind_a_transaction_pooler() {
        assert!(GuardFunction::is_missing(&pg(
            "3F000",
            "schema \"pg_temp\" does not exist"
        )));
        assert!(GuardFunction::is_missing(&pg(
            "42883",
            "function pg_temp.pgkeel_guard_1a_apply(text) does not exist"
        )));
        assert!(!GuardFunction::is_missing(&pg(
            "3F000",
            "schema \"app\" does not exist"
        )));
        assert!(!GuardFunction::is_missing(&pg(
            "42883",
            "function f() does not exist"
        )));
    }
}
