//! `pgkeel validate` (spec: db:validate, db:validate:schema, db:validate:data,
//! db:validate:performance).

use clap::Args;
use pgkeel::report::{self, Severity};
use pgkeel::validate::{self, ValidateOptions, ValidationReport};

use crate::ctx::Ctx;
use crate::exit_codes;
use crate::render::ms;

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Schema drift: the database against the migrations folder applied (up to what the ledger
    /// has applied) to a scratch database, or against --expected; tables without a primary key
    /// (spec: db:validate:schema).
    #[arg(long)]
    schema: bool,
    /// Data integrity: foreign-key orphans, NOT VALID checks that would fail, duplicates under
    /// unique keys (invalid ones and those pending migrations add), NULLs under a pending
    /// NOT NULL, sequences behind their column (spec: db:validate:data).
    #[arg(long)]
    data: bool,
    /// Performance: unindexed foreign keys, invalid/duplicate/unused indexes, bloat, sequences
    /// near overflow, wraparound, stale statistics, slow statements (spec:
    /// db:validate:performance).
    #[arg(long)]
    performance: bool,
    /// Exit with code 1 when a finding is at least this severe.
    #[arg(long, value_name = "LEVEL", default_value = "critical", value_parser = parse_severity)]
    fail_on: Severity,
    /// Look only at this schema (repeatable). Default: every non-system schema.
    #[arg(long = "namespace", value_name = "SCHEMA")]
    namespaces: Vec<String>,
    /// A table whose values must never appear in a report (repeatable; `table` or
    /// `schema.table`): its findings carry counts, never sample rows.
    #[arg(long, value_name = "TABLE")]
    sensitive: Vec<String>,
    /// Quick run: scan a TABLESAMPLE of this many percent of each table (e.g. 1) instead of
    /// all rows. Counts are then lower bounds.
    #[arg(long, value_name = "PERCENT")]
    sample: Option<f64>,
    /// statement_timeout of each data check (e.g. 30s, 5min). Default 5min.
    #[arg(long, value_name = "DURATION")]
    check_timeout: Option<String>,
    /// The expected schema for --schema: a snapshot file (`pgkeel schema dump --format json`),
    /// a database URL, or a migrations folder applied whole. Default: the migrations folder,
    /// applied up to the last migration the database has applied.
    #[arg(long, value_name = "FILE|URL|DIR")]
    expected: Option<String>,
    /// A server where pgkeel may create the scratch database for the expected schema (default:
    /// the target server, else a private throw-away server).
    #[arg(long, value_name = "URL", hide_env_values = true)]
    scratch_url: Option<String>,
    /// Do not write reports/validation-YYYY-MM-DD.json.
    #[arg(long)]
    no_report: bool,
}

fn parse_severity(s: &str) -> Result<Severity, String> {
    s.parse()
}

pub async fn run(ctx: Ctx, args: ValidateArgs) -> anyhow::Result<i32> {
    let mut opts = ValidateOptions::from_settings(&ctx.settings);
    // No section flag = every section.
    let all = !args.schema && !args.data && !args.performance;
    opts.schema = all || args.schema;
    opts.data = all || args.data;
    opts.performance = all || args.performance;
    opts.schemas = args.namespaces;
    if let Some(e) = &args.expected {
        opts.expected =
            validate::schema::Expected::Input(pgkeel::snapshot_input::SnapshotInput::parse(e));
    }
    opts.scratch.scratch_url = args.scratch_url;
    opts.sensitive = args.sensitive;
    if let Some(p) = args.sample {
        anyhow::ensure!(
            p > 0.0 && p <= 100.0,
            "--sample takes a percentage between 0 and 100, got {p}"
        );
        opts.sample_percent = Some(p);
    }
    if let Some(t) = &args.check_timeout {
        opts.check_timeout = pgkeel::duration::parse(t)
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                anyhow::anyhow!("--check-timeout: `{t}` is not a duration like 30s or 5min")
            })?;
    }
    // The folder is optional: with it, the data checks also look at what pending migrations add.
    let set = ctx.load_set().ok();
    let target = ctx.target()?;
    if !ctx.json() {
        eprintln!("pgkeel: validating {target}…");
    }
    let report = validate::run(&target, &ctx.settings, set.as_ref(), &opts).await?;
    let written = if args.no_report {
        None
    } else {
        ctx.save_report(|dir| report::write_report(dir, "validation", &report))
    };
    let failing = report.fails(args.fail_on);
    if ctx.json() {
        ctx.print_json_ok(!failing, &report)?;
    } else {
        print_human(&report);
        if let Some(p) = &written {
            println!("report: {}", p.display());
        }
    }
    Ok(if failing {
        exit_codes::FINDINGS
    } else {
        exit_codes::SUCCESS
    })
}

fn print_human(r: &ValidationReport) {
    let paint = |sev: Severity, text: &str| -> String {
        let code = match sev {
            Severity::Critical => "1;31",
            Severity::Warning => "33",
            Severity::Info => "36",
        };
        crate::printer::paint(crate::printer::Stream::Stdout, code, text)
    };
    for sev in [Severity::Critical, Severity::Warning, Severity::Info] {
        let group: Vec<_> = r.findings.iter().filter(|f| f.severity == sev).collect();
        if group.is_empty() {
            continue;
        }
        println!(
            "{}",
            paint(
                sev,
                &format!("{} ({})", sev.as_str().to_uppercase(), group.len())
            )
        );
        for f in group {
            println!("  [{}] {}", f.id, f.object);
            println!("      {}", f.message);
            if let Some(fix) = &f.fix {
                for (i, line) in fix.lines().enumerate() {
                    let lead = if i == 0 { "fix:" } else { "    " };
                    println!("      {lead} {line}");
                }
            }
        }
        println!();
    }
    let troubled: Vec<_> = r.checks.iter().filter(|c| c.status != "ok").collect();
    if !troubled.is_empty() {
        println!("checks that did not run fully:");
        for c in troubled {
            println!(
                "  {} {}: {}",
                c.status,
                c.name,
                c.note.as_deref().unwrap_or("")
            );
        }
        println!();
    }
    let c = &r.counts;
    println!(
        "{} critical, {} warning, {} info from {} checks ({}) in {}",
        c.critical,
        c.warning,
        c.info,
        r.checks.len(),
        r.sections.join(", "),
        ms(r.duration_ms)
    );
}
