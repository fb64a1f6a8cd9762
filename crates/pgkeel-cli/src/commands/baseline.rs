//! `pgkeel baseline --to ID`.

use clap::Args;
use pgkeel::migrate::Migrator;
use serde_json::json;

use crate::ctx::Ctx;
use crate::exit_codes;

#[derive(Debug, Args)]
pub struct BaselineArgs {
    /// The last migration already present in the database; it and all before it are recorded
    /// as `baselined` without running.
    #[arg(long, value_name = "ID")]
    pub to: String,
}

pub async fn run(ctx: Ctx, args: BaselineArgs) -> anyhow::Result<i32> {
    let set = ctx.load_set()?;
    let (_, client) = ctx.connect().await?;
    let ids = Migrator::new(&ctx.settings, &set)
        .baseline(&client, &args.to)
        .await?;
    if ctx.json() {
        ctx.print_json(&json!({ "ok": true, "baselined": ids }))?;
    } else if ids.is_empty() {
        println!(
            "nothing to baseline: every migration up to {} is already recorded",
            args.to
        );
    } else {
        for id in &ids {
            println!("  baselined {id}");
        }
        println!(
            "recorded {} migration(s) as applied without running them",
            ids.len()
        );
    }
    Ok(exit_codes::SUCCESS)
}
