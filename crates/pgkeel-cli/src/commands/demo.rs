//! `pgkeel demo`: the example project (the spec's CFI Handbook app) on a private, throw-away
//! PostgreSQL server that is stopped and deleted on exit, also on Ctrl-C. It never touches the
//! database configured in DATABASE_URL.

use clap::Args;
use pgkeel::embedded::EmbeddedServer;
use pgkeel::migrate::{MigrateOptions, Migrator, Silent, State};
use pgkeel::source;

use crate::commands::migrate::HumanObserver;
use crate::ctx::Ctx;
use crate::exit_codes;
use crate::render::ms;

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

async fn demo(ctx: &mut Ctx, server: &EmbeddedServer, args: &DemoArgs) -> anyhow::Result<i32> {
    let work = tempfile::tempdir()?;
    let dir = pgkeel::demo::write_example(work.path())?;
    let mut settings = ctx.settings.clone();
    settings.database_url = Some(server.url("postgres"));
    let admin = pgkeel::db::Target::from_settings(&settings)?;
    let target = pgkeel::db::create_database(&admin, "cfi_handbook").await?;
    settings.database_url = Some(server.url("cfi_handbook"));
    let client = target.connect().await?;
    println!(
        "PostgreSQL {} on port {} (data in {})",
        server.version(),
        server.port(),
        server.data_dir().display()
    );
    println!("database: {target}");
    println!();

    let set = source::load(&dir)?;
    let migrator = Migrator::new(&settings, &set);
    println!(
        "$ pgkeel migrate validate   # {} migrations in drizzle/ ({})",
        set.migrations.len(),
        set.layout
    );
    for m in &set.migrations {
        pgkeel::migrate::parse(m)?;
    }
    println!("ok: every file parses with PostgreSQL's own parser; nothing applied yet");
    println!();

    println!("$ pgkeel migrate --target {}", set.migrations[2].id);
    let mut obs = HumanObserver::new(false);
    let opts = MigrateOptions {
        target: Some(set.migrations[2].id.clone()),
        ..Default::default()
    };
    let r = migrator.migrate(&client, &opts, &mut obs).await?;
    obs.finish();
    println!(
        "applied {} migration(s) in {}",
        r.applied.len(),
        ms(r.duration_ms)
    );
    println!();

    println!("$ pgkeel migrate --dry-run");
    let dry = migrator
        .migrate(
            &client,
            &MigrateOptions {
                dry_run: true,
                ..Default::default()
            },
            &mut Silent,
        )
        .await?;
    for a in &dry.applied {
        println!(
            "  would apply {} ({})",
            a.id,
            crate::render::count(a.statements, "statement")
        );
    }
    println!();

    println!("$ pgkeel migrate");
    let r = migrator
        .migrate(&client, &MigrateOptions::default(), &mut obs)
        .await?;
    obs.finish();
    println!(
        "applied {} migration(s) in {}",
        r.applied.len(),
        ms(r.duration_ms)
    );
    let again = migrator
        .migrate(&client, &MigrateOptions::default(), &mut Silent)
        .await?;
    println!(
        "$ pgkeel migrate   # again: {} to apply, idempotent",
        again.applied.len()
    );
    println!();

    println!("$ pgkeel status");
    let plan = migrator.plan(&client).await?;
    for e in &plan.migrations {
        let state = if e.state == State::Applied {
            "applied"
        } else {
            "?"
        };
        println!(
            "  {state:<8} {:<26} {:>8}",
            e.id,
            e.execution_ms
                .map(|d| ms(d.max(0) as u64))
                .unwrap_or_default()
        );
    }
    let tables = pgkeel::demo::user_tables(&client).await?;
    println!();
    println!("tables: {}", tables.join(", "));

    println!();
    println!("$ pgkeel monitor");
    let monitor = pgkeel::monitor::Monitor::new(&settings, dir.clone())?;
    let report = monitor.run(pgkeel::monitor::Sections::ALL).await;
    crate::commands::monitor::print_report(&report, None);

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
