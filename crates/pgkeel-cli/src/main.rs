//! `pgkeel`: the command line. Parses flags, calls the library, renders human or JSON output
//! and maps errors to the exit codes in [`exit_codes`]. No SQL lives here.

#[macro_use]
mod printer;
mod args;
mod commands;
mod ctx;
mod exit_codes;
mod render;
mod schemas;

use clap::{CommandFactory, Parser, Subcommand};

use crate::args::{ConfigOpts, ConnectOpts, MigrationsOpts, OutputOpts};

/// Safe PostgreSQL schema changes: migrate, validate, monitor, back up, restore, test.
///
/// Configuration comes from defaults < drizzle.config.ts < pgkeel.toml < .env < environment
/// (DATABASE_URL, PG*, PGSERVICE, ~/.pgpass, …) < flags. `pgkeel config` shows the result and
/// where each value came from.
#[derive(Debug, Parser)]
#[command(
    name = "pgkeel",
    version,
    propagate_version = true,
    max_term_width = 100
)]
struct Cli {
    #[command(flatten)]
    config: ConfigOpts,
    #[command(flatten)]
    connect: ConnectOpts,
    #[command(flatten)]
    migrations: MigrationsOpts,
    #[command(flatten)]
    output: OutputOpts,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply pending migrations (spec: db:migrate:prod). `migrate validate` checks without applying.
    Migrate(commands::migrate::MigrateArgs),
    /// The production pipeline in one step: pre-flight checks, backup, migrate, post-migration
    /// validation, performance and health, with one report (spec: Railway deployment pipeline).
    Deploy(commands::deploy::DeployArgs),
    /// Show every migration with its state, when it was applied and how long it took.
    Status(commands::status::StatusArgs),
    /// Create the next migration file in the folder's layout.
    New(commands::new::NewArgs),
    /// Roll back migration ID (spec: db:migrate:rollback) with its .down.sql or stored rollback.
    Rollback(commands::rollback::RollbackArgs),
    /// Mark migrations up to ID as applied on an existing database, without running them.
    Baseline(commands::baseline::BaselineArgs),
    /// Record the new hash of applied migrations whose files changed only cosmetically.
    Repair(commands::repair::RepairArgs),
    /// Check a live database: schema drift, data integrity and performance findings, written
    /// to reports/validation-YYYY-MM-DD.json (spec: db:validate).
    Validate(commands::validate::ValidateArgs),
    /// Test the migrations in a scratch database: apply, roll back, re-apply, compare schemas,
    /// idempotency, locks, rewrites and lint (spec: test:migration).
    Test(commands::test::TestArgs),
    /// Check migration files for operations that lock, rewrite or break a live database.
    Lint(commands::lint::LintArgs),
    /// Print the resolved configuration (secrets redacted) and where each value came from.
    Config(commands::config::ConfigArgs),
    /// Health, migration status, performance and alerts (spec: db:monitor); exit code = worst level.
    Monitor(commands::monitor::MonitorArgs),
    /// Serve /healthz, /readyz, Prometheus /metrics and a dashboard over HTTP.
    Serve(commands::serve::ServeArgs),
    /// Schema snapshots: `schema dump` (JSON or SQL) and `schema diff --from A --to B`.
    Schema(commands::schema::SchemaArgs),
    /// A ~5 s tour of every command on the example project and a private, throw-away server.
    Demo(commands::demo::DemoArgs),
    /// Back up the database: full, incremental, list, verify, cleanup (spec: db:backup:*).
    Backup(commands::backup::BackupArgs),
    /// Restore a backup (spec: db:backup:restore): schema, parallel data, sequences, indexes.
    Restore(commands::backup::RestoreArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(commands::completions::CompletionsArgs),
    /// Print the man page, or write one per subcommand with --out-dir.
    Man(commands::completions::ManArgs),
}

fn main() {
    // A panic is a bug in pgkeel: say so, with where it happened, and exit with the code that
    // means it. Exiting closes the connections, which rolls back any open transaction.
    std::panic::set_hook(Box::new(|info| {
        eprintln!(
            "pgkeel: internal error (a bug in pgkeel {}; please report it with this message): {info}",
            env!("CARGO_PKG_VERSION")
        );
        std::process::exit(exit_codes::INTERNAL);
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => usage_error(e),
    };
    if cli.output.format == args::Format::Sql && !matches!(cli.command, Command::Schema(_)) {
        usage_error(clap::Error::raw(
            clap::error::ErrorKind::InvalidValue,
            "--format sql: only `schema dump` and `schema diff` print SQL; use human or json\n",
        ));
    }
    printer::set_color(cli.output.color);
    init_tracing(cli.output.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(exit_codes::INTERNAL);
        }
    };
    let format = cli.output.format;
    let code = runtime.block_on(async move {
        // The first Ctrl-C / SIGTERM asks the running command to stop cleanly (cancel the
        // statement, roll back, record, release the lock); a second one, or a command that
        // doesn't stop within the grace period, ends the process (closing the connection also
        // rolls back).
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let ctx = ctx::Ctx::new(&cli.config, &cli.connect, &cli.migrations, &cli.output)
            .map(|c| c.with_interrupt(stop_rx));
        let run = async {
            match cli.command {
                Command::Migrate(a) => commands::migrate::run(ctx?, a).await,
                Command::Deploy(a) => commands::deploy::run(ctx?, a).await,
                Command::Status(a) => commands::status::run(ctx?, a).await,
                Command::New(a) => commands::new::run(ctx?, a).await,
                Command::Rollback(a) => commands::rollback::run(ctx?, a).await,
                Command::Baseline(a) => commands::baseline::run(ctx?, a).await,
                Command::Repair(a) => commands::repair::run(ctx?, a).await,
                Command::Validate(a) => commands::validate::run(ctx?, a).await,
                Command::Lint(a) => commands::lint::run(ctx?, a).await,
                Command::Test(a) => commands::test::run(ctx?, a).await,
                Command::Config(a) => commands::config::run(ctx?, a).await,
                Command::Demo(a) => commands::demo::run(ctx?, a).await,
                Command::Monitor(a) => commands::monitor::run(ctx?, a).await,
                Command::Serve(a) => commands::serve::run(ctx?, a).await,
                Command::Backup(a) => commands::backup::run(ctx?, a).await,
                Command::Restore(a) => commands::backup::restore(ctx?, a).await,
                Command::Schema(a) => commands::schema::run(ctx?, a).await,
                Command::Completions(a) => commands::completions::completions(a, Cli::command()),
                Command::Man(a) => commands::completions::man(a, Cli::command()),
            }
        };
        tokio::pin!(run);
        let finish = |res: anyhow::Result<i32>| match res {
            Ok(code) => code,
            Err(err) => render::error(&err, format),
        };
        let code = tokio::select! {
            res = &mut run => finish(res),
            _ = shutdown_signal() => {
                eprintln!("interrupted: stopping (cancelling the running statement, rolling back)…");
                let _ = stop_tx.send(true);
                tokio::select! {
                    res = &mut run => finish(res).max(exit_codes::INTERRUPTED),
                    _ = second_signal() => exit_codes::INTERRUPTED,
                    _ = tokio::time::sleep(std::time::Duration::from_secs(15)) => exit_codes::INTERRUPTED,
                }
            }
        };
        // The command's clients are dropped by now: let their connections close politely.
        pgkeel::db::close_connections(std::time::Duration::from_millis(500)).await;
        code
    });
    // Dropping the runtime closes connections; that is what rolls back an interrupted migration.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    // The reader closed the pipe: what it wanted, it got; only a failed command says otherwise.
    let code = match (printer::closed(), code) {
        (true, exit_codes::FINDINGS) => exit_codes::SUCCESS,
        (_, c) => c,
    };
    std::process::exit(code);
}

/// SIGINT, SIGTERM or SIGHUP (a closed terminal, or a supervisor's reload): each asks for a
/// clean stop.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
            _ = hup.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// A second stop signal, which ends the process at once. One that arrives within a second of the
/// first is the same Ctrl-C twice (the terminal signals the whole process group, and a launcher
/// such as `npx pgkeel` passes it on as well), not a user insisting: it is ignored.
async fn second_signal() {
    let first = std::time::Instant::now();
    loop {
        shutdown_signal().await;
        if insists(first.elapsed()) {
            return;
        }
    }
}

/// Whether a stop signal `after` the first one is the user insisting (see [`second_signal`]).
fn insists(after: std::time::Duration) -> bool {
    after >= std::time::Duration::from_secs(1)
}

fn init_tracing(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "info,pgkeel=info",
        _ => "debug,tokio_postgres=info,rustls=info",
    };
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: a CI log or a redirected file gets plain text.
        .with_ansi(printer::color(printer::Stream::Stderr))
        .with_target(false)
        .without_time()
        .init();
}

/// A command line clap refuses: its text on stderr, as always; with `--format json` also the
/// JSON error document on stdout (as every other error gives), so a script reading stdout is
/// never left with nothing. `--help` and `--version` print as usual.
fn usage_error(e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
        || !wants_json(std::env::args())
    {
        e.exit();
    }
    let text = e.render().to_string();
    eprint!("{text}");
    let message = text
        .lines()
        .next()
        .unwrap_or("bad command line")
        .trim_start_matches("error: ")
        .to_string();
    let doc = serde_json::json!({
        "ok": false,
        "exit_code": exit_codes::USAGE,
        "error": { "message": message, "causes": [], "postgres": null },
    });
    println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    std::process::exit(exit_codes::USAGE);
}

/// Whether the raw arguments ask for `--format json` (read before clap could parse them).
fn wants_json(args: impl Iterator<Item = String>) -> bool {
    let args: Vec<String> = args.collect();
    args.iter().enumerate().any(|(i, a)| {
        a == "--format=json" || (a == "--format" && args.get(i + 1).is_some_and(|v| v == "json"))
    })
}

#[cfg(test)]
mod signal_tests {
    #[test]
    fn a_repeated_signal_within_a_second_is_the_same_ctrl_c() {
        use std::time::Duration;
        assert!(!super::insists(Duration::from_millis(5)));
        assert!(!super::insists(Duration::from_millis(999)));
        assert!(super::insists(Duration::from_secs(1)));
        assert!(super::insists(Duration::from_secs(3)));
    }
}
