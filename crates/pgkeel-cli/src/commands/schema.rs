//! `pgkeel schema dump|diff`: snapshots of the schema and the ordered DDL between two.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use pgkeel::schema::{self, Diff, IntrospectOptions, Snapshot};
use pgkeel::scratch::ScratchOptions;
use pgkeel::snapshot_input::{self, SnapshotInput};
use serde::Serialize;

use crate::args::Format;
use crate::ctx::Ctx;
use crate::exit_codes;

#[derive(Debug, Args)]
pub struct SchemaArgs {
    #[command(subcommand)]
    pub command: SchemaCommand,
}

#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Snapshot the database's schema: `--format json` (stable, sorted; two dumps of the same
    /// database are byte-identical) or SQL (re-creatable DDL in dependency order, the default).
    Dump(DumpArgs),
    /// The ordered DDL that turns schema A into schema B, with hazard tags per change.
    /// Exit code 0: no differences; 1: differences.
    Diff(DiffArgs),
}

#[derive(Debug, Args)]
pub struct DumpArgs {
    /// Schema to include; repeat for several. Default: public.
    #[arg(long = "schema", short = 's', value_name = "SCHEMA")]
    pub schemas: Vec<String>,
    /// Write to FILE instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Schema A: a database URL (postgresql://…), a snapshot JSON file from `schema dump
    /// --format json`, or a migrations folder (applied to a scratch database first).
    #[arg(long, value_name = "A")]
    pub from: String,
    /// Schema B, in the same forms as --from. Default: the configured database.
    #[arg(long, value_name = "B")]
    pub to: Option<String>,
    /// Schema to include; repeat for several. Default: public.
    #[arg(long = "schema", short = 's', value_name = "SCHEMA")]
    pub schemas: Vec<String>,
    /// Server where pgkeel may CREATE DATABASE for scratch databases (when a side is a
    /// migrations folder). Default: the target server, else a private throw-away server.
    #[arg(long, value_name = "URL", hide_env_values = true)]
    pub scratch_url: Option<String>,
    /// Write to FILE instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
}

pub async fn run(ctx: Ctx, args: SchemaArgs) -> anyhow::Result<i32> {
    match args.command {
        SchemaCommand::Dump(a) => dump(ctx, a).await,
        SchemaCommand::Diff(a) => diff(ctx, a).await,
    }
}

fn options(ctx: &Ctx, schemas: &[String]) -> IntrospectOptions {
    IntrospectOptions::from_settings(&ctx.settings).with_schemas(schemas)
}

fn emit(output: &Option<PathBuf>, text: &str) -> anyhow::Result<()> {
    match output {
        Some(p) => std::fs::write(p, text)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", p.display())),
        None => {
            let mut out = std::io::stdout().lock();
            crate::printer::note(out.write_all(text.as_bytes()).and_then(|_| out.flush()));
            Ok(())
        }
    }
}

async fn dump(ctx: Ctx, args: DumpArgs) -> anyhow::Result<i32> {
    let (_, client) = ctx.connect().await?;
    let (snap, stats) =
        schema::introspect_with_stats(&client, &options(&ctx, &args.schemas)).await?;
    tracing::info!(
        queries = stats.queries,
        ms = stats.elapsed_ms,
        "schema read"
    );
    let text = match ctx.format {
        Format::Json => snap.to_json(),
        Format::Sql | Format::Human => snap.to_sql(),
    };
    emit(&args.output, &text)?;
    Ok(exit_codes::SUCCESS)
}

#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct DiffOut<'a> {
    /// As the exit code: true when the two sides are identical.
    ok: bool,
    from: String,
    to: String,
    identical: bool,
    unsupported: usize,
    hazards: Vec<&'static str>,
    #[serde(flatten)]
    diff: &'a Diff,
}

async fn diff(ctx: Ctx, args: DiffArgs) -> anyhow::Result<i32> {
    let opts = options(&ctx, &args.schemas);
    let scratch = ScratchOptions {
        scratch_url: args.scratch_url.clone(),
        target: ctx.target().ok(),
        no_embedded: false,
    };
    let from = SnapshotInput::parse(&args.from);
    let to = match &args.to {
        Some(t) => SnapshotInput::parse(t),
        None => SnapshotInput::Url(
            ctx.settings
                .database_url
                .clone()
                .ok_or(pgkeel::db::DbError::NotConfigured)?,
        ),
    };
    let a: Snapshot = snapshot_input::load(&from, &ctx.settings, &opts, &scratch).await?;
    let b: Snapshot = snapshot_input::load(&to, &ctx.settings, &opts, &scratch).await?;
    let d = schema::diff(&a, &b);
    let text = match ctx.format {
        Format::Sql => d.to_sql(),
        Format::Json => {
            let mut s = serde_json::to_string_pretty(&DiffOut {
                ok: d.is_empty(),
                from: from.to_string(),
                to: to.to_string(),
                identical: d.is_empty(),
                unsupported: d.unsupported().count(),
                hazards: d.hazards().into_iter().map(|h| h.as_str()).collect(),
                diff: &d,
            })?;
            s.push('\n');
            s
        }
        Format::Human => human(&from, &to, &d),
    };
    emit(&args.output, &text)?;
    Ok(if d.is_empty() {
        exit_codes::SUCCESS
    } else {
        exit_codes::FINDINGS
    })
}

fn human(from: &SnapshotInput, to: &SnapshotInput, d: &Diff) -> String {
    let mut out = format!("schema diff {from} -> {to}\n");
    if d.is_empty() {
        out.push_str("no differences\n");
        return out;
    }
    // Group by owning object, groups in order of their first change.
    let mut groups: Vec<(&str, Vec<&schema::Change>)> = Vec::new();
    for c in &d.changes {
        match groups.iter_mut().find(|(o, _)| *o == c.owner) {
            Some((_, v)) => v.push(c),
            None => groups.push((&c.owner, vec![c])),
        }
    }
    for (owner, changes) in groups {
        out.push_str(&format!("\n{owner}\n"));
        for c in changes {
            let action = format!("{:?}", c.action).to_lowercase();
            let kind = serde_json::to_value(c.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            let hazards: Vec<&str> = c.hazards.iter().map(|h| h.as_str()).collect();
            let tags = if hazards.is_empty() {
                String::new()
            } else {
                format!("  [{}]", hazards.join(", "))
            };
            out.push_str(&format!("  {action:<8} {kind} {}{tags}\n", c.object));
            if let Some(why) = &c.unsupported {
                out.push_str(&format!("    UNSUPPORTED: {why}\n"));
            }
            if let Some(sql) = &c.sql {
                for line in sql.lines() {
                    out.push_str(&format!("    {line}\n"));
                }
            }
            if let Some(note) = &c.note {
                out.push_str(&format!("    note: {note}\n"));
            }
        }
    }
    let unsupported = d.unsupported().count();
    out.push_str(&format!(
        "\n{} change(s), {unsupported} unsupported; hazards: {}\n",
        d.changes.len(),
        d.hazards()
            .iter()
            .map(|h| h.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    out
}
