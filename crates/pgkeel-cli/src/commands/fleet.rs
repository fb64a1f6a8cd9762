//! Running a command on many targets (`--targets FILE`, [`FleetOpts`]): reading the targets
//! file, a line per target as it finishes, the summary, the fleet report under `reports/` and
//! the exit code. Shared by every command that runs on a fleet; the command supplies what runs
//! on one target (a closure returning [`TargetOutcome`]) and how to summarise its detail.

use std::future::Future;
use std::path::PathBuf;

use pgkeel::fleet::{self, FleetOptions, FleetReport, FleetTarget, TargetLine, TargetOutcome};
use pgkeel::fleet::{TargetStatus, TargetsFile};
use serde::Serialize;

use crate::args::FleetOpts;
use crate::ctx::Ctx;
use crate::exit_codes;
use crate::render::ms;

/// Reads `--targets` (relative to the working directory) and resolves it against the command's
/// settings.
pub async fn targets(ctx: &Ctx, opts: &FleetOpts) -> anyhow::Result<Vec<FleetTarget>> {
    let path = opts
        .targets
        .as_ref()
        .map(|p| ctx.cwd.join(p))
        .ok_or_else(|| anyhow::anyhow!("--targets FILE is required"))?;
    let file = TargetsFile::load(&path)?;
    Ok(fleet::resolve(&file, &ctx.settings, ctx.env()).await?)
}

#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct JsonOut<'a> {
    ok: bool,
    report_path: Option<PathBuf>,
    #[serde(flatten)]
    report: &'a FleetReport,
}

/// Runs `f` on every target as `opts` says, prints each finished target (`summary` renders
/// its detail, e.g. "applied 3"), writes `reports/fleet-<command>-…json` and returns the exit
/// code: 0 when every target is ok or skipped, [`exit_codes::INTERRUPTED`] after Ctrl-C,
/// [`exit_codes::CONNECTION`] when every failure was a connection failure, else `failure_code`.
pub async fn run<F, Fut, S>(
    ctx: &Ctx,
    opts: &FleetOpts,
    command: &str,
    failure_code: i32,
    targets: Vec<FleetTarget>,
    summary: S,
    f: F,
) -> anyhow::Result<i32>
where
    F: FnMut(FleetTarget) -> Fut,
    Fut: Future<Output = TargetOutcome>,
    S: Fn(&TargetLine) -> String,
{
    let resume = opts
        .resume
        .as_ref()
        .map(|p| fleet::done_in_report(&ctx.cwd.join(p)))
        .transpose()?;
    let options = FleetOptions {
        parallel: usize::from(opts.parallel),
        canary: opts.canary,
        continue_on_error: opts.continue_on_error,
        resume,
        interrupt: Some(ctx.interrupt.clone()),
    };
    let json = ctx.json();
    let width = targets
        .iter()
        .map(|t| t.name.chars().count())
        .max()
        .unwrap_or(0)
        .min(40);
    let report = fleet::run_with_progress(targets, &options, f, |l| {
        if json || !matches!(l.status, TargetStatus::Ok | TargetStatus::Failed) {
            return;
        }
        println!(
            "{:<7} {:<width$} {:>8}  {}",
            l.status.as_str(),
            l.name,
            ms(l.duration_ms),
            summary(l)
        );
        if let Some(e) = &l.error {
            // Prefixed with the target: with --parallel, errors of several targets interleave.
            for (i, line) in e.lines().enumerate() {
                if i == 0 {
                    eprintln!("{}: {line}", l.name);
                } else {
                    eprintln!("    {line}");
                }
            }
        }
    })
    .await;

    let written = if opts.no_report {
        None
    } else {
        let name = format!(
            "fleet-{command}-{}",
            report.started_at.format("%Y-%m-%d-%H%M%S")
        );
        ctx.save_report(|dir| pgkeel::report::write_report_named(dir, &name, &report))
    };
    if json {
        ctx.print_json(&JsonOut {
            ok: report.all_done(),
            report_path: written.clone(),
            report: &report,
        })?;
    } else {
        // Shown relative to the working directory when it is inside it.
        let shown = written
            .as_ref()
            .map(|p| p.strip_prefix(&ctx.cwd).unwrap_or(p).to_path_buf());
        print_summary(&report, shown.as_ref(), opts, command);
    }
    Ok(if report.interrupted && !report.all_done() {
        exit_codes::INTERRUPTED
    } else if report.all_done() {
        exit_codes::SUCCESS
    } else if report.only_connection_failures() {
        exit_codes::CONNECTION
    } else {
        failure_code
    })
}

fn print_summary(report: &FleetReport, written: Option<&PathBuf>, opts: &FleetOpts, command: &str) {
    let c = &report.counts;
    println!(
        "{command}: {} ok, {} failed, {} not run, {} skipped of {} target(s) in {}",
        c.ok,
        c.failed,
        c.not_run,
        c.skipped,
        c.total,
        ms(report.duration_ms)
    );
    let names = |status: TargetStatus| -> String {
        let all: Vec<&str> = report
            .targets
            .iter()
            .filter(|t| t.status == status)
            .map(|t| t.name.as_str())
            .collect();
        let mut shown = all.iter().take(10).copied().collect::<Vec<_>>().join(", ");
        if all.len() > 10 {
            shown.push_str(&format!(" … and {} more", all.len() - 10));
        }
        shown
    };
    if c.failed > 0 {
        println!("failed: {}", names(TargetStatus::Failed));
    }
    if c.not_run > 0 {
        println!(
            "not run{}: {}",
            report
                .stopped
                .as_deref()
                .map(|s| format!(" ({s})"))
                .unwrap_or_default(),
            names(TargetStatus::NotRun)
        );
    }
    if let Some(p) = written {
        println!("report: {}", p.display());
        if !report.all_done() {
            let targets = opts
                .targets
                .as_ref()
                .map(|t| t.display().to_string())
                .unwrap_or_default();
            println!(
                "to retry the rest: pgkeel {command} --targets {targets} --resume {}",
                p.display()
            );
        }
    }
}
