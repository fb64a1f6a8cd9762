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
    // drizzle-kit's `migrations.prefix`, from drizzle.config.ts.
    let prefix = match ctx.settings.migration_prefix.as_deref() {
        None => pgkeel::source::TagPrefix::Index,
        Some(p) => pgkeel::source::TagPrefix::parse(p).ok_or_else(|| {
            anyhow::anyhow!(
                "migrations.prefix \"{p}\" in {} is not one drizzle-kit knows: use index, timestamp, supabase, unix or none",
                ctx.settings
                    .drizzle_config
                    .as_deref()
                    .map_or("the drizzle config".into(), |p| p.display().to_string())
            )
        })?,
    };
    let path = pgkeel::source::new_migration_with(&dir, &args.name, chrono::Utc::now(), prefix)?;
    if ctx.json() {
        ctx.print_json(&json!({ "ok": true, "path": path }))?;
    } else {
        println!("created {}", path.display());
    }
    Ok(exit_codes::SUCCESS)
}
