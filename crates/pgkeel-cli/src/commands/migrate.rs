//! `pgkeel migrate` and `pgkeel migrate validate`.

use std::time::Duration;

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use pgkeel::db::{Blocker, LockHolder, PgError};
use pgkeel::migrate::{self, Applied, MigrateOptions, Migrator, Observer};
use serde::Serialize;

use crate::args::{FleetOpts, SafetyOpts};
use crate::ctx::Ctx;
use crate::exit_codes;
use crate::render::ms;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct MigrateArgs {
    #[command(subcommand)]
    action: Option<MigrateAction>,
    /// Print the plan and the exact SQL that would run; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Stop after this migration id (e.g. 0003_slim_warhawk).
    #[arg(long, value_name = "ID")]
    target: Option<String>,
    /// Apply all pending migrations in one transaction: all or nothing.
    #[arg(long)]
    single_transaction: bool,
    #[command(flatten)]
    safety: SafetyOpts,
    /// Deployment environment: production, staging or development (prod, stage, dev; any
    /// case). production takes a verified full backup (into the backup directory or bucket)
    /// before applying anything pending, failed or rolled back, and migrates nothing if it
    /// fails. Anything else is refused.
    #[arg(long = "env", env = "PGKEEL_ENV", value_name = "ENV", value_parser = crate::args::parse_environment)]
    environment: Option<pgkeel::ops::environment::Environment>,
    #[command(flatten)]
    fleet: FleetOpts,
}

#[derive(Debug, Subcommand)]
enum MigrateAction {
    /// Check the folder and the ledger without applying anything (spec: db:migrate:validate):
    /// every file parses, no applied file changed, nothing applied is missing, nothing failed.
    Validate(ValidateArgs),
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Check the files only; don't connect to the database.
    #[arg(long)]
    offline: bool,
}

pub async fn run(mut ctx: Ctx, args: MigrateArgs) -> anyhow::Result<i32> {
    if let Some(MigrateAction::Validate(v)) = args.action {
        return validate(ctx, v).await;
    }
    ctx.with_safety(&args.safety)?;
    if args.fleet.targets.is_some() {
        return run_fleet(ctx, args).await;
    }
    anyhow::ensure!(
        !args.fleet.no_report,
        "--no-report applies to --targets runs only: `migrate` on one database writes no report"
    );
    let set = ctx.load_set()?;
    let (target, client) = ctx.connect().await?;
    let opts = MigrateOptions {
        dry_run: args.dry_run,
        target: args.target,
        single_transaction: args.single_transaction,
    };
    let migrator = Migrator::new(&ctx.settings, &set).with_interrupt(ctx.interrupt.clone());
    if args.environment.is_some_and(|e| e.is_production()) && !opts.dry_run {
        super::backup::before_production_migration(&ctx, &migrator, &client).await?;
    }
    let mut obs = HumanObserver::new(ctx.json());
    if !ctx.json() {
        eprintln!(
            "pgkeel: {} in {} ({}) → {target}",
            crate::render::count(set.migrations.len(), "migration"),
            set.dir.display(),
            set.layout
        );
    }
    let report = migrator.migrate(&client, &opts, &mut obs).await;
    obs.finish();
    let report = report?;
    if ctx.json() {
        ctx.print_json(&JsonOut {
            ok: true,
            report: &report,
        })?;
    } else if report.dry_run {
        print_taken_over(&report);
        if report.applied.is_empty() {
            println!(
                "dry run: nothing to apply ({} already applied)",
                report.already_applied
            );
        }
        for a in &report.applied {
            println!(
                "-- {} ({}{})",
                a.id,
                crate::render::count(a.statements, "statement"),
                a.resumed_at
                    .map(|r| format!(", resumes at statement {}", r + 1))
                    .unwrap_or_default()
            );
            println!("{}\n", a.sql.as_deref().unwrap_or(""));
        }
        if !report.applied.is_empty() {
            println!(
                "dry run: {} migration(s) would be applied; nothing was changed",
                report.applied.len()
            );
        }
    } else if report.applied.is_empty() {
        print_taken_over(&report);
        println!(
            "nothing to do: {} migration(s) already applied",
            report.already_applied
        );
    } else {
        print_taken_over(&report);
        println!(
            "applied {} migration(s) in {} ({} were already applied)",
            report.applied.len(),
            ms(report.duration_ms),
            report.already_applied
        );
    }
    if !report.held_back.is_empty() && !ctx.json() {
        eprintln!(
            "held back (drizzle-orm skipped them; see the warnings): {}",
            report.held_back.join(", ")
        );
    }
    Ok(exit_codes::SUCCESS)
}

/// `migrate --targets FILE`: the normal migrate on every target of the file.
async fn run_fleet(ctx: Ctx, args: MigrateArgs) -> anyhow::Result<i32> {
    if args.environment.is_some_and(|e| e.is_production()) && !args.dry_run {
        anyhow::bail!(
            "--env production (a backup before migrating) is not supported with --targets yet: \
             back up each database with `pgkeel backup full` first and run without --env"
        );
    }
    let set = ctx.load_set()?;
    let targets = super::fleet::targets(&ctx, &args.fleet).await?;
    let opts = MigrateOptions {
        dry_run: args.dry_run,
        target: args.target,
        single_transaction: args.single_transaction,
    };
    if !ctx.json() {
        eprintln!(
            "pgkeel: {} in {} ({}) → {} target(s), {} at a time{}",
            crate::render::count(set.migrations.len(), "migration"),
            set.dir.display(),
            set.layout,
            targets.len(),
            args.fleet.parallel,
            match args.fleet.canary {
                0 => String::new(),
                n => format!(", {n} canary target(s) first"),
            }
        );
    }
    let (set, opts, interrupt) = (&set, &opts, ctx.interrupt.clone());
    super::fleet::run(
        &ctx,
        &args.fleet,
        "migrate",
        exit_codes::MIGRATION_FAILED,
        targets,
        fleet_summary,
        move |t| pgkeel::fleet::migrate_target(t, set, opts, Some(interrupt.clone())),
    )
    .await
}

/// What a target's migrate did, from its report (the fleet line's detail).
fn fleet_summary(line: &pgkeel::fleet::TargetLine) -> String {
    let d = &line.detail;
    if line.status != pgkeel::fleet::TargetStatus::Ok {
        return match d["migration"].as_str() {
            Some(id) => format!("failed at {id}"),
            None if line.connection_error => "cannot connect".into(),
            None => String::new(),
        };
    }
    let applied = d["applied"].as_array().map_or(0, Vec::len);
    let already = d["already_applied"].as_u64().unwrap_or(0);
    match (d["dry_run"].as_bool() == Some(true), applied) {
        (true, n) => format!("would apply {n} ({already} already applied)"),
        (false, 0) => format!("nothing to do ({already} already applied)"),
        (false, n) => format!("applied {n}"),
    }
}

#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct JsonOut<'a, T: Serialize> {
    ok: bool,
    #[serde(flatten)]
    report: &'a T,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct ValidateOut {
    ok: bool,
    migrations_dir: String,
    layout: String,
    files: usize,
    checked_database: bool,
    problems: Vec<migrate::Problem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    counts: Option<migrate::Counts>,
}

async fn validate(ctx: Ctx, args: ValidateArgs) -> anyhow::Result<i32> {
    let set = ctx.load_set()?;
    let mut problems = migrate::check_folder(&set);
    let mut counts = None;
    if !args.offline {
        let (_, client) = ctx.connect().await?;
        let plan = Migrator::new(&ctx.settings, &set).plan(&client).await?;
        problems.extend(migrate::check_plan(&plan));
        counts = Some(plan.counts);
    }
    // Warnings (a data-losing migration without a rollback file) are shown but pass.
    let ok = !problems
        .iter()
        .any(|p| p.severity >= pgkeel::report::Severity::Critical);
    if ctx.json() {
        ctx.print_json(&ValidateOut {
            ok,
            migrations_dir: set.dir.display().to_string(),
            layout: set.layout.to_string(),
            files: set.migrations.len(),
            checked_database: !args.offline,
            problems,
            counts,
        })?;
    } else {
        for p in &problems {
            let label = match p.severity {
                pgkeel::report::Severity::Critical => p.kind.to_string(),
                other => format!("{other}: {}", p.kind),
            };
            println!("{label}: {}: {}", p.id, p.message);
        }
        let pending = counts
            .as_ref()
            .map(|c| format!(", {} pending", c.pending))
            .unwrap_or_default();
        let warnings = problems.len()
            - problems
                .iter()
                .filter(|p| p.severity >= pgkeel::report::Severity::Critical)
                .count();
        if ok {
            let warned = match warnings {
                0 => String::new(),
                n => format!(", {n} warning(s)"),
            };
            println!(
                "ok: {} migration file(s) valid{pending}{warned}",
                set.migrations.len()
            );
        } else {
            println!(
                "{} problem(s) in {} migration file(s){pending}",
                problems.len(),
                set.migrations.len()
            );
        }
    }
    Ok(if ok {
        exit_codes::SUCCESS
    } else {
        exit_codes::FINDINGS
    })
}

/// Progress on stderr: a bar on a terminal, a line per migration otherwise.
pub struct HumanObserver {
    quiet: bool,
    bar: Option<ProgressBar>,
}

impl HumanObserver {
    pub fn new(quiet: bool) -> Self {
        HumanObserver { quiet, bar: None }
    }

    fn line(&self, s: String) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(b) => b.println(s),
            None => eprintln!("{s}"),
        }
    }

    pub fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

impl Observer for HumanObserver {
    fn lock_wait(&mut self, holder: Option<&LockHolder>, waited: Duration) {
        let who = holder
            .map(|h| h.to_string())
            .unwrap_or_else(|| "unknown session".into());
        self.line(format!(
            "waiting for the deploy lock ({}s so far), held by {who}",
            waited.as_secs()
        ));
    }

    fn start(&mut self, id: &str, index: usize, total: usize) {
        if self.quiet {
            return;
        }
        if self.bar.is_none() && Ctx::stderr_is_tty() && total > 1 {
            let bar = ProgressBar::new(total as u64);
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            self.bar = Some(bar);
        }
        if let Some(b) = &self.bar {
            b.set_position(index as u64);
            b.set_message(id.to_string());
        }
    }

    fn retry(
        &mut self,
        id: &str,
        attempt: u32,
        delay: Duration,
        error: &PgError,
        blockers: &[Blocker],
    ) {
        self.line(format!(
            "  retry {id}: attempt {attempt} failed ({} {}), next try in {}",
            error.code,
            error.message,
            ms(delay.as_millis() as u64)
        ));
        for b in blockers {
            self.line(format!("    blocked by {b}"));
        }
    }

    fn warn(&mut self, message: &str) {
        self.line(format!("warning: {message}"));
    }

    fn done(&mut self, a: &Applied) {
        let resumed = a
            .resumed_at
            .map(|r| format!(", resumed at statement {}", r + 1))
            .unwrap_or_default();
        let retries = if a.attempts > 1 {
            format!(", {} attempts", a.attempts)
        } else {
            String::new()
        };
        self.line(format!(
            "  applied {:<40} {:>8}{retries}{resumed}",
            a.id,
            ms(a.duration_ms)
        ));
        if let Some(b) = &self.bar {
            b.inc(1);
        }
    }
}

/// The migrations another tool had applied, recorded without running them.
fn print_taken_over(report: &pgkeel::migrate::MigrateReport) {
    if !report.taken_over.is_empty() {
        println!(
            "{} {} migration(s) {} had applied (recorded as baselined, not run): {}",
            if report.dry_run {
                "dry run: would take over"
            } else {
                "took over"
            },
            report.taken_over.len(),
            report.taken_over_from.as_deref().unwrap_or("another tool"),
            report.taken_over.join(", ")
        );
    }
}
