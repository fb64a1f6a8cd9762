//! `pgkeel test` (spec: test:migration): the migration test suite in a scratch database.

use std::path::PathBuf;

use clap::Args;
use pgkeel::report::{self, Severity};
use pgkeel::testing::{self, TestOptions, TestReport, Verdict};

use crate::ctx::Ctx;
use crate::exit_codes;
use crate::render::ms;

#[derive(Debug, Args)]
pub struct TestArgs {
    /// A server where pgkeel may create the scratch database (default: the configured
    /// database's server when its role may CREATE DATABASE, else a private throw-away server).
    /// The target database itself is never touched.
    #[arg(long, value_name = "URL", hide_env_values = true)]
    scratch_url: Option<String>,
    /// Data fixtures: `<migration id>.sql` files loaded just before that migration, so
    /// migrations that fail on non-empty tables are caught. Default: tests/fixtures when it
    /// exists.
    #[arg(long, value_name = "DIR")]
    fixtures: Option<PathBuf>,
    /// Apply only: skip the rollback / re-apply round trip.
    #[arg(long)]
    no_round_trip: bool,
    /// Lint findings at least this severe fail the suite, in every migration (warning,
    /// critical). Default: only critical findings in migrations the target database has not
    /// applied yet fail it; the findings in applied ones are shown, marked (applied).
    #[arg(long, value_name = "LEVEL", value_parser = parse_severity)]
    lint_fail_on: Option<Severity>,
    /// Columns that come back in another order after a rollback and re-apply fail the
    /// migration (default: a warning naming the columns).
    #[arg(long)]
    strict: bool,
    /// Target PostgreSQL major version for the lint rules (e.g. 15) or server_version_num
    /// (150004). Default: the configured database's, when one answers within 2 s; else 17 (as
    /// `lint`).
    #[arg(long, value_name = "VERSION")]
    pg_version: Option<String>,
    /// Also write the results as JUnit XML (for CI test reports).
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Do not write reports/migration-test-YYYY-MM-DD.json.
    #[arg(long)]
    no_report: bool,
}

fn parse_severity(s: &str) -> Result<Severity, String> {
    s.parse()
}

pub async fn run(ctx: Ctx, args: TestArgs) -> anyhow::Result<i32> {
    let set = ctx.load_set()?;
    let mut opts = TestOptions {
        fixtures: args.fixtures.or_else(|| {
            let d = PathBuf::from("tests/fixtures");
            d.is_dir().then_some(d)
        }),
        no_round_trip: args.no_round_trip,
        lint_fail_on: args.lint_fail_on,
        strict: args.strict,
        pg_version: Some(match &args.pg_version {
            Some(v) => crate::args::parse_pg_version(v)?,
            None => pgkeel::db::lint_version_default(ctx.configured_target().as_ref()).await,
        }),
        ..TestOptions::default()
    };
    opts.scratch.scratch_url = args.scratch_url;
    if ctx.settings.database_url.is_some() || ctx.settings.pg.host.is_some() {
        opts.scratch.target = ctx.target().ok();
    }
    if !ctx.json() {
        eprintln!(
            "pgkeel: testing {} in {} on a scratch database…",
            crate::render::count(set.migrations.len(), "migration"),
            set.dir.display()
        );
    }
    let report = testing::run(&ctx.settings, &set, &opts).await?;
    if let Some(path) = &args.junit {
        std::fs::write(path, testing::junit(&report)?)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    }
    let written = if args.no_report {
        None
    } else {
        ctx.save_report(|dir| report::write_report(dir, "migration-test", &report))
    };
    if ctx.json() {
        ctx.print_json(&report)?;
    } else {
        print_human(&report);
        if let Some(p) = written {
            println!("report: {}", p.display());
        }
    }
    Ok(if report.ok {
        exit_codes::SUCCESS
    } else {
        exit_codes::FINDINGS
    })
}

fn print_human(r: &TestReport) {
    for m in &r.migrations {
        let mark = match m.verdict {
            Verdict::Pass => "ok  ",
            Verdict::Warning => "warn",
            Verdict::Fail => "FAIL",
            Verdict::Skipped => "skip",
        };
        // Locks on tables the migration created block nobody: only existing ones are shown.
        let locks = match &m.locks {
            None => "locks: runs outside a transaction".to_string(),
            Some(l) => {
                let shown: Vec<String> = l
                    .iter()
                    .filter(|l| l.existing)
                    .map(|l| format!("{} {}", l.mode.trim_end_matches("Lock"), l.relation))
                    .collect();
                if shown.is_empty() {
                    "locks: no existing table".to_string()
                } else {
                    format!("locks: {}", shown.join(", "))
                }
            }
        };
        println!(
            "{mark} {:<40} apply {:>8}  rollback {:<8} reapply {:<8} {locks}",
            m.id,
            ms(m.apply_ms),
            m.rollback,
            m.reapply
        );
        if !m.rewrites.is_empty() {
            println!("     rewrote: {}", m.rewrites.join(", "));
        }
        if let Some(n) = &m.note {
            println!("     note: {n}");
        }
        if let Some(e) = &m.error {
            println!("     error: {e}");
        }
        for w in &m.warnings {
            println!("     warning: {w}");
        }
        if let Some(d) = &m.diff {
            println!("     schema diff (SQL that would repair it):");
            for line in d.lines() {
                println!("       {line}");
            }
        }
        for v in &m.lint {
            // The file is named: a migration's findings and its rollback file's are listed
            // together.
            println!(
                "     lint {}[{}] {}:{}:{}: {}{}",
                pgkeel::lint::label(v.severity),
                v.rule,
                v.location
                    .path
                    .file_name()
                    .map(|f| f.to_string_lossy())
                    .unwrap_or_default(),
                v.location.line,
                v.location.column,
                v.message,
                if m.pending { "" } else { " (applied)" }
            );
        }
    }
    if let Some(e) = &r.idempotency_error {
        println!("FAIL idempotency: {e}");
    } else {
        println!("ok   idempotency: a second migrate applies nothing, every hash matches");
    }
    println!(
        "\n{} passed ({} with warnings), {} failed, {} skipped, {} lint error(s), {} lint warning(s) in {} (applying: {})",
        r.passed,
        r.warned,
        r.failed,
        r.skipped,
        r.lint_errors,
        r.lint_warnings,
        ms(r.duration_ms),
        ms(r.apply_ms)
    );
}
