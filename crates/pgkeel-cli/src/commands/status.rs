//! `pgkeel status`: the folder compared with the ledger.

use clap::Args;
use pgkeel::migrate::{Migrator, State};
use serde::Serialize;

use crate::ctx::Ctx;
use crate::exit_codes;
use crate::render::ms;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Exit with code 1 when anything is pending, failed, modified or missing (for CI gates).
    #[arg(long)]
    pub check: bool,
}

#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct StatusOut<'a> {
    ok: bool,
    migrations_dir: String,
    layout: String,
    database: String,
    ledger: String,
    /// drizzle-orm's own table, kept in step (journal folders only).
    #[serde(skip_serializing_if = "Option::is_none")]
    drizzle_table: Option<String>,
    /// The folder's own tool's ledger (golang-migrate, Prisma, ...), when the database has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    other_ledger: Option<pgkeel::migrate::OtherLedger>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
    #[serde(flatten)]
    plan: &'a pgkeel::migrate::Plan,
}

pub async fn run(ctx: Ctx, args: StatusArgs) -> anyhow::Result<i32> {
    let set = ctx.load_set()?;
    let (target, client) = ctx.connect().await?;
    let migrator = Migrator::new(&ctx.settings, &set);
    let plan = migrator.plan(&client).await?;
    let other = migrator.other_ledger(&client).await?;
    let c = &plan.counts;
    let clean = c.to_apply() + c.modified + c.missing_file == 0;
    let drizzle_table = (set.layout == pgkeel::source::Layout::DrizzleJournal).then(|| {
        pgkeel::ident::qualified(&ctx.settings.drizzle_schema, &ctx.settings.drizzle_table)
    });
    if ctx.json() {
        ctx.print_json(&StatusOut {
            ok: true,
            migrations_dir: set.dir.display().to_string(),
            layout: set.layout.to_string(),
            database: target.to_string(),
            ledger: migrator.ledger.table_sql(),
            drizzle_table: drizzle_table.clone(),
            other_ledger: other.clone(),
            warnings: set.warnings.iter().map(|w| w.to_string()).collect(),
            plan: &plan,
        })?;
    } else {
        println!(
            "migrations: {} ({})",
            set.dir.display(),
            layout_name(set.layout)
        );
        println!(
            "database:   {target}  ledger {}{}",
            migrator.ledger.table_sql(),
            drizzle_table
                .as_deref()
                .map(|t| format!("  drizzle-orm's table {t}"))
                .unwrap_or_default()
        );
        if let Some(o) = &other {
            match &o.problem {
                Some(p) => println!("other ledger: {p}"),
                None if o.to_take_over.is_empty() => println!(
                    "other ledger: {}'s {}: {} applied, all recorded in pgkeel's ledger",
                    o.tool, o.table, o.applied
                ),
                None => println!(
                    "other ledger: {}'s {}: {} applied; the next migrate records {} of them as baselined without running them",
                    o.tool,
                    o.table,
                    o.applied,
                    o.to_take_over.len()
                ),
            }
        }
        println!();
        println!(
            "  {:<12} {:<40} {:<20} {:>9}",
            "STATE", "ID", "APPLIED AT", "DURATION"
        );
        for e in &plan.migrations {
            let state = match &e.state {
                State::Applied => "applied",
                State::Baselined => "baselined",
                State::Pending => "pending",
                State::Failed => "FAILED",
                State::RolledBack => "rolled back",
                State::Modified { cosmetic: true } => "modified~",
                State::Modified { cosmetic: false } => "MODIFIED",
                State::MissingFile => "MISSING",
            };
            let at = e
                .applied_at
                .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_default();
            let dur = e
                .execution_ms
                .map(|d| ms(d.max(0) as u64))
                .unwrap_or_default();
            println!("  {state:<12} {:<40} {at:<20} {dur:>9}", e.id);
            if let (State::Failed, Some(err)) = (&e.state, &e.error) {
                println!("  {:<12} └ {}", "", err.lines().next().unwrap_or(""));
            }
        }
        println!();
        println!(
            "{} applied, {} to apply ({} pending, {} failed, {} rolled back), {} modified, {} missing on disk",
            c.applied,
            c.to_apply(),
            c.pending,
            c.failed,
            c.rolled_back,
            c.modified,
            c.missing_file
        );
        if c.modified > 0 {
            println!(
                "modified~ = cosmetic change only (`pgkeel repair`); MODIFIED = the SQL changed"
            );
        }
        for w in &set.warnings {
            eprintln!("warning: {w}");
        }
    }
    Ok(if args.check && !clean {
        exit_codes::FINDINGS
    } else {
        exit_codes::SUCCESS
    })
}

/// `golang-migrate`, or `drizzle-journal, drizzle-kit` when the tool's name says more.
pub(crate) fn layout_name(layout: pgkeel::layout::Layout) -> String {
    if layout.tool() == layout.as_str() {
        layout.to_string()
    } else {
        format!("{layout}, {}", layout.tool())
    }
}
