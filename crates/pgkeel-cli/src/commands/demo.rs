//! `pgkeel demo`: a tour of the product on the example project (the spec's CFI Handbook app)
//! and a private, throw-away PostgreSQL server that is stopped and deleted on exit, also on
//! Ctrl-C. Each step runs this same binary as a user would and prints the command first. It
//! never touches the database configured in DATABASE_URL: the steps get the demo's own
//! settings and none of the user's PG*/DATABASE_*/BACKUP_* variables.

use clap::Args;
use pgkeel::embedded::EmbeddedServer;
use pgkeel::source;

use crate::ctx::Ctx;
use crate::exit_codes;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the server running until Ctrl-C, and print how to connect to it.
    #[arg(long)]
    pub keep: bool,
    /// Also serve the monitoring dashboard (and /metrics, /readyz) for the example until Ctrl-C,
    /// and print its URL.
    #[arg(long)]
    pub serve: bool,
}

pub async fn run(mut ctx: Ctx, args: DemoArgs) -> anyhow::Result<i32> {
    eprintln!("demo: starting a private PostgreSQL server (initdb + pg_ctl in a temp dir)…");
    let server = EmbeddedServer::start().await?;
    // From here on the server is stopped and deleted when `server` drops, whatever happens.
    let result = demo(&mut ctx, &server, &args).await;
    let stop = tokio::task::spawn_blocking(move || server.stop()).await;
    match stop {
        Ok(Ok(())) => eprintln!("demo: server stopped and its data directory deleted"),
        Ok(Err(e)) => eprintln!("demo: stopping the server: {e}"),
        Err(e) => eprintln!("demo: stopping the server: {e}"),
    }
    result
}

/// Environment variables that configure pgkeel or libpq: the tour's commands must see only the
/// demo's own settings, never the user's database.
fn configures_pgkeel(key: &str) -> bool {
    [
        "PG",
        "DATABASE_",
        "BACKUP_",
        "HEALTH_CHECK_",
        "READINESS_CHECK_",
    ]
    .iter()
    .any(|p| key.starts_with(p))
}

/// A command line as a user would type it: words with shell metacharacters in single quotes.
fn shell_words(words: &[&str]) -> String {
    words
        .iter()
        .map(|w| {
            if !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c))
            {
                (*w).to_string()
            } else {
                format!("'{}'", w.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The tour: each step is the real `pgkeel` binary, run in the example project's directory with
/// the demo's DATABASE_URL, printed first so the user can copy it.
struct Tour {
    exe: std::path::PathBuf,
    dir: std::path::PathBuf,
    env: Vec<(String, String)>,
}

impl Tour {
    /// Runs `pgkeel ARGS`, whose output goes straight to the terminal, and checks that it exited
    /// with one of `expect`.
    async fn pgkeel(&self, args: &[&str], why: &str, expect: &[i32]) -> anyhow::Result<i32> {
        println!();
        println!("$ pgkeel {}   # {why}", shell_words(args));
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        let mut cmd = tokio::process::Command::new(&self.exe);
        cmd.args(args).current_dir(&self.dir).kill_on_drop(true);
        for (key, _) in std::env::vars_os() {
            if key.to_str().is_some_and(configures_pgkeel) {
                cmd.env_remove(key);
            }
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        let status = cmd.status().await?;
        let code = status.code().unwrap_or(exit_codes::INTERRUPTED);
        if !expect.contains(&code) {
            anyhow::bail!(
                "the demo's step `pgkeel {}` exited with {code}, not {expect:?}; its output is above",
                shell_words(args)
            );
        }
        Ok(code)
    }

    /// Runs one of the demo's own statements, printed as the psql command that does the same.
    async fn psql(&self, client: &pgkeel::db::Client, sql: &str, why: &str) -> anyhow::Result<()> {
        println!();
        // The demo's statements hold no `"`, `$`, `\\` or backquote, so double quotes are exact.
        println!("$ psql \"$DATABASE_URL\" -c \"{sql}\"   # {why}");
        pgkeel::demo::execute(client, sql).await?;
        Ok(())
    }
}

async fn demo(ctx: &mut Ctx, server: &EmbeddedServer, args: &DemoArgs) -> anyhow::Result<i32> {
    let work = tempfile::tempdir()?;
    let dir = pgkeel::demo::write_example(work.path())?;
    let mut settings = ctx.settings.clone();
    settings.database_url = Some(server.url("postgres"));
    let admin = pgkeel::db::Target::from_settings(&settings)?;
    let target = pgkeel::db::create_database(&admin, "cfi_handbook").await?;
    let restored = pgkeel::db::create_database(&admin, "cfi_restored").await?;
    let url = server.url("cfi_handbook");
    settings.database_url = Some(url.clone());
    let client = target.connect().await?;
    let set = source::load(&dir)?;
    println!(
        "PostgreSQL {} on port {} (data in {}, deleted on exit)",
        server.version(),
        server.port(),
        server.data_dir().display()
    );
    println!(
        "the example project: {} migrations in {} ({})",
        set.migrations.len(),
        dir.display(),
        set.layout
    );
    println!();
    println!("$ cd {}", work.path().display());
    println!("$ export DATABASE_URL={url}");
    let tour = Tour {
        exe: std::env::current_exe()?,
        dir: work.path().to_path_buf(),
        env: vec![
            ("DATABASE_URL".into(), url.clone()),
            ("PGKEEL_BACKUP_DIR".into(), "backups".into()),
            ("PGKEEL_REPORTS_DIR".into(), "reports".into()),
        ],
    };
    let last = set
        .migrations
        .last()
        .map(|m| m.id.clone())
        .unwrap_or_default();
    let ok = &[exit_codes::SUCCESS];
    let findings = &[exit_codes::SUCCESS, exit_codes::FINDINGS];

    let middle = set
        .migrations
        .get(set.migrations.len().saturating_sub(3))
        .map(|m| m.id.clone())
        .unwrap_or_default();
    tour.pgkeel(
        &["migrate", "--target", &middle],
        "apply up to one migration, each in its own transaction",
        ok,
    )
    .await?;
    tour.pgkeel(
        &["migrate", "--dry-run"],
        "the SQL the rest would run; nothing changes",
        ok,
    )
    .await?;
    tour.pgkeel(&["migrate"], "apply the rest", ok).await?;
    tour.pgkeel(&["status"], "every migration, when and how long", ok)
        .await?;
    tour.pgkeel(
        &["lint"],
        "operations that lock, rewrite or break a live database",
        findings,
    )
    .await?;
    tour.pgkeel(
        &["test"],
        "apply, roll back, re-apply in a scratch database",
        ok,
    )
    .await?;
    tour.psql(&client, pgkeel::demo::SEED_SQL, "some rows")
        .await?;
    tour.psql(
        &client,
        pgkeel::demo::PLANT_DRIFT_SQL,
        "a hand-made change, outside the migrations",
    )
    .await?;
    tour.pgkeel(
        &["validate", "--fail-on", "warning"],
        "drift, data and performance findings; exit 1: it finds the change",
        &[exit_codes::FINDINGS],
    )
    .await?;
    tour.psql(&client, pgkeel::demo::UNDO_DRIFT_SQL, "undo it")
        .await?;
    tour.pgkeel(
        &["backup", "full", "--name", "demo"],
        "schema and data, compressed, with a manifest",
        ok,
    )
    .await?;
    tour.pgkeel(
        &["backup", "verify", "demo"],
        "every file's size and SHA-256, and that it decompresses",
        ok,
    )
    .await?;
    let restored_url = server.url("cfi_restored");
    tour.pgkeel(
        &["restore", "demo", "--target-url", &restored_url],
        "into a second database, verified first",
        ok,
    )
    .await?;
    let copy = restored.connect().await?;
    println!(
        "(cfi_restored holds {} users, as cfi_handbook does)",
        pgkeel::demo::user_count(&copy).await?
    );
    drop(copy);
    tour.pgkeel(
        &["rollback", &last, "--dry-run"],
        "the exact SQL that would undo the last migration",
        ok,
    )
    .await?;
    tour.pgkeel(&["rollback", &last], "undo it (its .down.sql)", ok)
        .await?;
    tour.pgkeel(
        &["monitor"],
        "health, migrations, performance and alerts",
        &[exit_codes::SUCCESS, exit_codes::ALERT_WARNING],
    )
    .await?;
    let tables = pgkeel::demo::user_tables(&client).await?;
    println!();
    println!("tables: {}", tables.join(", "));
    let monitor = pgkeel::monitor::Monitor::new(&settings, dir.clone())?;

    if args.serve {
        let mut opts = pgkeel::monitor::ServeOptions {
            listen: ([127, 0, 0, 1], 9187).into(),
            token: None,
            interval: std::time::Duration::from_secs(5),
            alerts: None,
        };
        let server = match pgkeel::monitor::serve::bind(monitor.clone(), opts.clone()).await {
            Ok(s) => s,
            Err(_) => {
                // 9187 is taken: any free port will do for a demo.
                opts.listen = ([127, 0, 0, 1], 0).into();
                pgkeel::monitor::serve::bind(monitor, opts).await?
            }
        };
        println!();
        println!(
            "dashboard: http://{}/   (also /metrics, /readyz, /healthz; Ctrl-C stops and deletes the server)",
            server.local_addr()
        );
        let mut stop = ctx.interrupt.clone();
        server
            .run(async move {
                let _ = stop.changed().await;
            })
            .await?;
        return Ok(exit_codes::SUCCESS);
    }

    if args.keep {
        println!();
        println!(
            "server kept running: psql '{}'   (Ctrl-C stops and deletes it)",
            server.url("cfi_handbook")
        );
        tokio::signal::ctrl_c().await?;
    }
    Ok(exit_codes::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_demo_sql_prints_exactly_inside_double_quotes() {
        for sql in [
            pgkeel::demo::SEED_SQL,
            pgkeel::demo::PLANT_DRIFT_SQL,
            pgkeel::demo::UNDO_DRIFT_SQL,
        ] {
            assert!(!sql.contains(['"', '$', '\\', '`', '\n']), "{sql}");
        }
    }

    #[test]
    fn printed_commands_can_be_pasted_into_a_shell() {
        assert_eq!(
            super::shell_words(&["restore", "demo", "--target-url", "postgresql://p@h:1/d"]),
            "restore demo --target-url postgresql://p@h:1/d"
        );
        assert_eq!(super::shell_words(&["it's", ""]), r"'it'\''s' ''");
    }

    #[test]
    fn the_users_settings_never_reach_the_tour() {
        for key in [
            "DATABASE_URL",
            "PGHOST",
            "PGKEEL_MIGRATIONS",
            "BACKUP_ENCRYPTION_PASSPHRASE",
        ] {
            assert!(super::configures_pgkeel(key), "{key}");
        }
        for key in ["PATH", "HOME", "NO_COLOR", "RUST_LOG"] {
            assert!(!super::configures_pgkeel(key), "{key}");
        }
    }
}
