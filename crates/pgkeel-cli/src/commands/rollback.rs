//! `pgkeel rollback ID` (spec: `db:migrate:rollback <id>`).

use clap::Args;
use pgkeel::rollback::{self, RollbackOptions, RollbackReport};
use serde::Serialize;

use crate::args::SafetyOpts;
use crate::ctx::Ctx;
use crate::exit_codes;
use crate::render::ms;

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The migration to roll back, e.g. 0003_slim_warhawk (or 0003 when that is unambiguous).
    /// Runs its .down.sql, else the rollback stored in the ledger when it was applied.
    #[arg(value_name = "ID")]
    id: String,
    /// Also roll back every later migration that is still applied, newest first (without it,
    /// pgkeel refuses and names them).
    #[arg(long)]
    cascade: bool,
    /// Print which migrations would be rolled back and the exact SQL; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// For a migration pgkeel has no rollback for (seed rows, a GRANT, a DO block, no down
    /// file): only mark it rolled back in the ledger, so `migrate` applies it again. Nothing runs
    /// and what it did stays in the database; undo that yourself first.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    safety: SafetyOpts,
}

#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct JsonOut<'a> {
    ok: bool,
    #[serde(flatten)]
    report: &'a RollbackReport,
}

pub async fn run(mut ctx: Ctx, args: RollbackArgs) -> anyhow::Result<i32> {
    ctx.with_safety(&args.safety)?;
    let set = ctx.load_set()?;
    let (target, client) = ctx.connect().await?;
    let opts = RollbackOptions {
        cascade: args.cascade,
        dry_run: args.dry_run,
        force: args.force,
        ..RollbackOptions::default()
    };
    if !ctx.json() {
        eprintln!(
            "pgkeel: rolling back {}{} in {} → {target}",
            args.id,
            if args.cascade {
                " and every later migration"
            } else {
                ""
            },
            set.dir.display()
        );
    }
    let report = rollback::rollback(&client, &ctx.settings, &set, &args.id, &opts).await?;
    if ctx.json() {
        ctx.print_json(&JsonOut {
            ok: true,
            report: &report,
        })?;
        return Ok(exit_codes::SUCCESS);
    }
    if report.dry_run {
        for r in &report.rolled_back {
            println!(
                "-- rollback of {} ({}, {})",
                r.id,
                r.source,
                crate::render::count(r.statements, "statement")
            );
            println!("{}\n", r.sql.as_deref().unwrap_or(""));
        }
        println!(
            "dry run: {} migration(s) would be rolled back; nothing was changed",
            report.rolled_back.len()
        );
    } else if report.rolled_back.is_empty() {
        println!("nothing to do: another process rolled it back meanwhile");
    } else {
        for r in &report.rolled_back {
            if r.source == rollback::RollbackSource::LedgerOnly {
                println!(
                    "  marked {} rolled back in the ledger only (--force): nothing ran, what it did is still in the database",
                    r.id
                );
                continue;
            }
            println!(
                "  rolled back {} ({}, {})",
                r.id,
                r.source,
                ms(r.duration_ms)
            );
        }
        println!(
            "rolled back {} migration(s) in {}; `pgkeel migrate` applies them again",
            report.rolled_back.len(),
            ms(report.duration_ms)
        );
    }
    Ok(exit_codes::SUCCESS)
}
