//! `pgkeel config`: the resolved settings and where each came from.

use clap::Args;
use serde::Serialize;

use crate::ctx::Ctx;
use crate::exit_codes;

#[derive(Debug, Args)]
pub struct ConfigArgs {}

pub async fn run(ctx: Ctx, _args: ConfigArgs) -> anyhow::Result<i32> {
    let entries = ctx.settings.entries();
    if ctx.json() {
        ctx.print_json(&ConfigOut {
            ok: true,
            config_file: ctx.settings.config_file.as_deref(),
            settings: &entries,
        })?;
    } else {
        let width = entries.iter().map(|e| e.key.len()).max().unwrap_or(10);
        for e in &entries {
            let value = e.value.as_deref().unwrap_or("(not set)");
            println!("{:<width$}  {value:<50}  ({})", e.key, e.origin);
        }
    }
    Ok(exit_codes::SUCCESS)
}

/// `pgkeel config --format json`.
#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct ConfigOut<'a> {
    ok: bool,
    /// The pgkeel.toml read, if any.
    config_file: Option<&'a std::path::Path>,
    settings: &'a [pgkeel::config::ConfigEntry],
}
