//! `pgkeel deploy`: the production pipeline (pre-flight, backup, migrate, post-migration
//! validation, performance, health) with one report.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use pgkeel::deploy::{self, DeployObserver, DeployOptions, DeployReport, Environment, FailureKind};
use pgkeel::migrate::{Applied, Observer};
use pgkeel::report::{self, Severity};

use super::migrate::HumanObserver;
use crate::args::{FleetOpts, SafetyOpts};
use crate::ctx::Ctx;
use crate::exit_codes;
use crate::render::ms;

/// Steps: connect → check-migrations → lint → validate-before → backup → migrate →
/// validate-after → performance → health. The report goes to
/// reports/deploy-YYYY-MM-DD-HHMMSS.json; on failure it says what was done, what was not, and
/// the exact rollback/restore commands.
#[derive(Debug, Args)]
#[command(after_long_help = "\
Steps, in order (each with its duration in the report):
  connect, check-migrations, lint, validate-before (drift stops the deploy unless --allow-drift;
  data and performance findings become the baseline), backup (production, when something is
  pending; verified), migrate, validate-after (only new findings are reported), performance
  (before vs after), health (--health-url).

Exit codes: 0 deployed; 1 stopped by a pre-flight check (nothing changed); 2 usage; 3 database
unreachable; 4 a migration failed (rolled back; earlier ones stay, the undo command is printed);
5 deploy lock wait timed out; 6 backup failed (nothing migrated); 7 migrated, but validate-after
or the health URL failed (the report has the rollback and restore commands); 130 interrupted.
With --targets: 0 when every target is ok, 3 when every failure was a connection failure, else 4.

Examples:
  pgkeel deploy --env production
  pgkeel deploy --env staging --health-url https://staging.example.com/api/health
  pgkeel deploy --env production --targets targets.toml --parallel 4 --canary 1")]
pub struct DeployArgs {
    /// production: full verified backup first, lint errors stop the deploy. staging and
    /// development: no backup unless --backup, lint findings are reported only.
    #[arg(long = "env", env = "PGKEEL_ENV", value_name = "ENV", value_parser = crate::args::parse_environment)]
    environment: Environment,
    /// Go on when the schema drifted from the migrations folder before migrating (the drift is
    /// still reported).
    #[arg(long)]
    allow_drift: bool,
    /// Take the pre-deploy backup in any environment.
    #[arg(long, conflicts_with = "no_backup")]
    backup: bool,
    /// Skip the pre-deploy backup, also in production (e.g. the host takes snapshots).
    #[arg(long)]
    no_backup: bool,
    /// Stop at check-migrations when a migration is recorded failed (a failed or interrupted
    /// earlier deploy) instead of retrying it. By default it is retried: after the backup in
    /// production, resuming where it stopped when its file is unchanged.
    #[arg(long)]
    no_retry_failed: bool,
    /// Directory or s3://BUCKET/PREFIX for the pre-deploy backup (default: PGKEEL_BACKUP_DIR /
    /// backup.dir).
    #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
    backup_dir: Option<PathBuf>,
    /// Lint findings at or above this level stop the deploy: info, warning, critical, or never.
    /// Default: critical in production, never elsewhere.
    #[arg(long, value_name = "LEVEL")]
    lint_fail_on: Option<String>,
    /// Skip the data-integrity checks before and after (they scan tables).
    #[arg(long)]
    no_data_checks: bool,
    /// Scan a TABLESAMPLE of this many percent of each table in the data checks.
    #[arg(long, value_name = "PERCENT")]
    sample: Option<f64>,
    /// A server where the expected schema's scratch database may be created (default: the
    /// target server).
    #[arg(long, value_name = "URL", hide_env_values = true)]
    scratch_url: Option<String>,
    /// After migrating, poll this URL until it answers 2xx (the app's health endpoint). Its
    /// query string (tokens) never appears in output or reports.
    #[arg(
        long,
        env = "PGKEEL_HEALTH_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    health_url: Option<String>,
    /// How long the health URL has to turn healthy (default HEALTH_CHECK_TIMEOUT, 30s).
    #[arg(long, value_name = "DURATION")]
    health_timeout: Option<String>,
    /// Stop after this migration id.
    #[arg(long, value_name = "ID")]
    target: Option<String>,
    #[command(flatten)]
    safety: SafetyOpts,
    /// Many databases: each target gets the whole pipeline (its backup in <backup dir>/<target>;
    /// tenant schemas: validation limited to the schema, no drift check, no per-tenant backup).
    #[command(flatten)]
    fleet: FleetOpts,
}

pub async fn run(mut ctx: Ctx, args: DeployArgs) -> anyhow::Result<i32> {
    ctx.with_safety(&args.safety)?;
    let set = ctx.load_set()?;
    let mut opts = DeployOptions::for_env(args.environment, &ctx.settings);
    opts.allow_drift = args.allow_drift;
    if args.backup {
        opts.backup = true;
    }
    if args.no_backup {
        opts.backup = false;
    }
    opts.retry_failed = !args.no_retry_failed;
    if let Some(d) = &args.backup_dir {
        opts.backup_options.dir = d.clone();
    }
    opts.backup_options.dir = pgkeel::backup::locate(&opts.backup_options.dir, &ctx.cwd);
    if let Some(level) = &args.lint_fail_on {
        opts.lint_fail_on = match level.as_str() {
            "never" | "none" | "off" => None,
            l => Some(
                l.parse::<Severity>()
                    .map_err(|e| anyhow::anyhow!("--lint-fail-on: {e} (or never)"))?,
            ),
        };
    }
    opts.data_checks = !args.no_data_checks;
    if let Some(p) = args.sample {
        anyhow::ensure!(
            p > 0.0 && p <= 100.0,
            "--sample takes a percentage between 0 and 100, got {p}"
        );
        opts.sample_percent = Some(p);
    }
    opts.scratch.scratch_url = args.scratch_url;
    // An empty value (an unset CI variable expanded to "") means no health check.
    opts.health_url = args.health_url.filter(|u| !u.trim().is_empty());
    if let Some(t) = &args.health_timeout {
        opts.health_timeout = pgkeel::duration::parse(t)
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                anyhow::anyhow!("--health-timeout: `{t}` is not a duration like 30s or 2min")
            })?;
    }
    opts.migrate.target = args.target;
    if let Some(why) = opts.refusal() {
        anyhow::bail!(why);
    }
    let alert_targets = pgkeel::monitor::notify::AlertTargets::from_env()?;
    if args.fleet.targets.is_some() {
        return run_fleet(ctx, &args.fleet, opts, set).await;
    }
    if !ctx.json() {
        eprintln!(
            "pgkeel: deploying {} ({} migrations) to {} [{}]",
            set.dir.display(),
            set.migrations.len(),
            ctx.target()
                .map(|t| t.to_string())
                .unwrap_or_else(|_| "(DATABASE_URL not set)".into()),
            opts.environment
        );
    }
    let mut obs = StepPrinter {
        migrate: HumanObserver::new(ctx.json()),
        quiet: ctx.json(),
    };
    let report = deploy::run(
        &ctx.settings,
        &set,
        &opts,
        Some(ctx.interrupt.clone()),
        &mut obs,
    )
    .await;
    obs.migrate.finish();
    // A failed deploy fires `deploy-failed` at PGKEEL_ALERT_WEBHOOK / _SLACK_WEBHOOK; a good one
    // resolves it. Delivery waits at most 15 s: the platform is waiting for this exit.
    if let Some(n) = pgkeel::monitor::notify::Notifier::new(alert_targets, report.database.clone())
    {
        let alert = report.alert();
        if report.failure.is_some() {
            n.announce(&[alert], &[]);
        } else {
            n.announce(&[], &[alert]);
        }
        n.flush(std::time::Duration::from_secs(15)).await;
    }
    let written = if args.fleet.no_report {
        None
    } else {
        let name = format!("deploy-{}", report.started_at.format("%Y-%m-%d-%H%M%S"));
        ctx.save_report(|dir| report::write_report_named(dir, &name, &report))
    };
    if ctx.json() {
        ctx.print_json_ok(report.succeeded(), &report)?;
    } else {
        print_summary(&report, written.as_deref());
    }
    Ok(exit_code(&report))
}

/// `deploy --targets FILE`: the pipeline on every target, each with its own report line.
async fn run_fleet(
    ctx: Ctx,
    fleet: &FleetOpts,
    opts: DeployOptions,
    set: pgkeel::source::MigrationSet,
) -> anyhow::Result<i32> {
    let targets = super::fleet::targets(&ctx, fleet).await?;
    if !ctx.json() {
        eprintln!(
            "pgkeel: deploying {} ({} migrations) to {} target(s), {} at a time [{}]",
            set.dir.display(),
            set.migrations.len(),
            targets.len(),
            fleet.parallel,
            opts.environment
        );
    }
    let (set, opts, interrupt) = (&set, &opts, ctx.interrupt.clone());
    super::fleet::run(
        &ctx,
        fleet,
        "deploy",
        exit_codes::MIGRATION_FAILED,
        targets,
        fleet_summary,
        move |t| {
            let mut o = opts.clone();
            // Backups of different databases must not share a directory (same name, same
            // second); tenant schemas share their database, which one backup covers.
            o.backup_options.dir = o.backup_options.dir.join(dir_name(&t.name));
            if let Some(schema) = &t.schema {
                o.schemas = vec![schema.clone()];
                o.drift_check = false;
                o.backup = false;
            }
            let interrupt = interrupt.clone();
            async move {
                let r =
                    deploy::run(&t.settings, set, &o, Some(interrupt), &mut deploy::Quiet).await;
                let detail = serde_json::to_value(&r).unwrap_or_default();
                match &r.failure {
                    None => pgkeel::fleet::TargetOutcome::ok(detail),
                    Some(f) => {
                        let mut out = pgkeel::fleet::TargetOutcome::failed(
                            format!("{} failed: {}", f.step, f.message),
                            detail,
                        );
                        out.connection_error = f.kind == FailureKind::Connection;
                        out
                    }
                }
            }
        },
    )
    .await
}

/// A target name as one directory name (`db/schema` → `db_schema`).
fn dir_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A target's deploy in a few words, from its report (the fleet line's detail).
fn fleet_summary(line: &pgkeel::fleet::TargetLine) -> String {
    let d = &line.detail;
    let applied = d["applied"].as_array().map_or(0, Vec::len);
    match d["failure"]["step"].as_str() {
        Some(step) => format!("failed at {step} ({applied} applied before)"),
        None if line.connection_error => "cannot connect".into(),
        None if applied == 0 => "nothing to do".into(),
        None => format!(
            "applied {applied}{}",
            d["backup"]["name"]
                .as_str()
                .map(|b| format!(", backup {b}"))
                .unwrap_or_default()
        ),
    }
}

/// The exit code of a deploy's outcome.
pub fn exit_code(r: &DeployReport) -> i32 {
    r.failure
        .as_ref()
        .map_or(exit_codes::SUCCESS, |f| exit_codes::for_kind(f.kind))
}

struct StepPrinter {
    migrate: HumanObserver,
    quiet: bool,
}

impl Observer for StepPrinter {
    fn lock_wait(&mut self, holder: Option<&pgkeel::db::LockHolder>, waited: Duration) {
        self.migrate.lock_wait(holder, waited);
    }
    fn start(&mut self, id: &str, index: usize, total: usize) {
        self.migrate.start(id, index, total);
    }
    fn retry(
        &mut self,
        id: &str,
        attempt: u32,
        delay: Duration,
        error: &pgkeel::db::PgError,
        blockers: &[pgkeel::db::Blocker],
    ) {
        self.migrate.retry(id, attempt, delay, error, blockers);
    }
    fn done(&mut self, applied: &Applied) {
        self.migrate.done(applied);
    }
    fn warn(&mut self, message: &str) {
        self.migrate.warn(message);
    }
}

impl DeployObserver for StepPrinter {
    fn step_done(&mut self, step: &deploy::Step) {
        if self.quiet {
            return;
        }
        self.migrate.finish();
        eprintln!(
            "{} {:<17} {:>8}  {}",
            mark(step.status),
            step.name,
            ms(step.duration_ms),
            step.summary
        );
    }
}

fn mark(s: deploy::StepStatus) -> &'static str {
    match s {
        deploy::StepStatus::Ok => "ok  ",
        deploy::StepStatus::Warning => "warn",
        deploy::StepStatus::Failed => "FAIL",
        deploy::StepStatus::Skipped => "skip",
        deploy::StepStatus::NotRun => "----",
    }
}

fn print_summary(r: &DeployReport, written: Option<&std::path::Path>) {
    for f in r.new_findings.iter().take(10) {
        println!("new {}: {} ({}): {}", f.severity, f.object, f.id, f.message);
    }
    match &r.failure {
        None => println!(
            "deploy succeeded in {}: {} migration(s) applied{}",
            ms(r.duration_ms),
            r.applied.len(),
            r.backup
                .as_ref()
                .map(|b| format!(", backup {}", b.path.display()))
                .unwrap_or_default()
        ),
        Some(f) => {
            println!("deploy FAILED at {} after {}:", f.step, ms(r.duration_ms));
            for line in f.message.lines() {
                println!("  {line}");
            }
            let not_run: Vec<&str> = r
                .steps
                .iter()
                .filter(|s| s.status == deploy::StepStatus::NotRun)
                .map(|s| s.name)
                .collect();
            if !not_run.is_empty() {
                println!("not done: {}", not_run.join(", "));
            }
            if r.applied.is_empty() {
                println!("the database was not changed");
            } else {
                println!("applied before the failure: {}", r.applied.join(", "));
            }
            if !r.recovery.is_empty() {
                println!("to undo:");
                for c in &r.recovery {
                    println!("  {c}");
                }
            }
        }
    }
    if let Some(p) = written {
        println!("report: {}", p.display());
    }
}
