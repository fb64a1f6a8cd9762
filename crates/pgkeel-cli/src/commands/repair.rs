//! `pgkeel repair`: accept cosmetic edits of applied migration files.

use clap::Args;
use pgkeel::migrate::Migrator;
use serde_json::json;

use crate::ctx::Ctx;
use crate::exit_codes;

#[derive(Debug, Args)]
pub struct RepairArgs {
    /// Also accept files whose SQL really changed (the database keeps what ran before).
    #[arg(long)]
    pub force: bool,
}

pub async fn run(ctx: Ctx, args: RepairArgs) -> anyhow::Result<i32> {
    let set = ctx.load_set()?;
    let (_, client) = ctx.connect().await?;
    let fixed = Migrator::new(&ctx.settings, &set)
        .repair(&client, args.force)
        .await?;
    if ctx.json() {
        ctx.print_json(&json!({ "ok": true, "repaired": fixed }))?;
    } else if fixed.is_empty() {
        println!("nothing to repair: every applied file matches its recorded hash");
    } else {
        for id in &fixed {
            println!("  recorded the new hash of {id}");
        }
    }
    Ok(exit_codes::SUCCESS)
}
