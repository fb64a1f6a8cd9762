//! `pgkeel config`: the resolved settings and where each came from.

use clap::Args;
use serde_json::json;

use crate::ctx::Ctx;
use crate::exit_codes;

#[derive(Debug, Args)]
pub struct ConfigArgs {}

pub async fn run(ctx: Ctx, _args: ConfigArgs) -> anyhow::Result<i32> {
    let entries = ctx.settings.entries();
    if ctx.json() {
        ctx.print_json(
            &json!({ "ok": true, "config_file": ctx.settings.config_file, "settings": entries }),
        )?;
    } else {
        let width = entries.iter().map(|e| e.key.len()).max().unwrap_or(10);
        for e in &entries {
            let value = e.value.as_deref().unwrap_or("(not set)");
            println!("{:<width$}  {value:<50}  ({})", e.key, e.origin);
        }
    }
    Ok(exit_codes::SUCCESS)
}
