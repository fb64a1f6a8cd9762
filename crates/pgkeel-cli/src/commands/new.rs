//! `pgkeel new NAME`: the next migration file.

use clap::Args;
use serde_json::json;

use crate::ctx::Ctx;
use crate::exit_codes;

#[derive(Debug, Args)]
pub struct NewArgs {
    /// What the migration does, e.g. "add user roles" (becomes add_user_roles).
    pub name: String,
}

pub async fn run(ctx: Ctx, args: NewArgs) -> anyhow::Result<i32> {
    let dir = ctx.migrations_dir();
    let path = pgkeel::source::new_migration(&dir, &args.name, chrono::Utc::now())?;
    if ctx.json() {
        ctx.print_json(&json!({ "ok": true, "path": path }))?;
    } else {
        println!("created {}", path.display());
    }
    Ok(exit_codes::SUCCESS)
}
