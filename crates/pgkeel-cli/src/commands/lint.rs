//! `pgkeel lint [FILES…]`: dangerous-operation rules over the parse tree.

use std::path::PathBuf;

use clap::Args;
use pgkeel::lint::{self, FileReport, LintOptions};
use pgkeel::report::Severity;
use serde::Serialize;

use crate::ctx::Ctx;
use crate::exit_codes;

#[derive(Debug, Args)]
pub struct LintArgs {
    /// SQL files to check. Default: every migration (and rollback file) of the folder.
    #[arg(value_name = "FILES")]
    files: Vec<PathBuf>,
    /// Target PostgreSQL major version (e.g. 15) or server_version_num (150004). Default: the
    /// configured database's, when one answers within 2 s; else 17.
    #[arg(long, value_name = "VERSION")]
    pg_version: Option<String>,
    /// Exit with code 1 when a violation is at least this severe: critical (= error) or
    /// warning.
    #[arg(long, value_name = "LEVEL", default_value = "critical", value_parser = parse_severity)]
    fail_on: Severity,
    /// Print GitHub Actions annotations (`::error file=…,line=…::…`) instead of the human text.
    #[arg(long)]
    github: bool,
    /// List the rules with their severity and exit.
    #[arg(long)]
    rules: bool,
}

fn parse_severity(s: &str) -> Result<Severity, String> {
    s.parse()
}

#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct JsonOut<'a> {
    ok: bool,
    pg_version: u32,
    files: usize,
    errors: usize,
    warnings: usize,
    reports: &'a [FileReport],
}

pub async fn run(ctx: Ctx, args: LintArgs) -> anyhow::Result<i32> {
    if args.rules {
        if ctx.json() {
            ctx.print_json(&lint::RULES)?;
        } else {
            for r in lint::RULES {
                println!("{:<34} {:<8} {}", r.id, lint::label(r.severity), r.why);
            }
        }
        return Ok(exit_codes::SUCCESS);
    }
    let pg_version = match &args.pg_version {
        Some(v) => crate::args::parse_pg_version(v)?,
        None => pgkeel::db::lint_version_default(ctx.configured_target().as_ref()).await,
    };
    let opts = LintOptions {
        pg_version,
        lock_timeout_disabled: ctx.settings.lock_timeout.is_zero(),
        rollback_file: false,
        needs_rollback: false,
    };
    let reports: Vec<FileReport> = if args.files.is_empty() {
        lint::lint_set(&ctx.load_set()?, &opts)
    } else {
        args.files
            .iter()
            .map(|f| lint::lint_path(f, &opts))
            .collect::<Result<_, _>>()?
    };
    let violations: Vec<&lint::Violation> = reports.iter().flat_map(|r| &r.violations).collect();
    let syntax = reports.iter().filter(|r| r.syntax_error.is_some()).count();
    let errors = violations
        .iter()
        .filter(|v| v.severity == Severity::Critical)
        .count()
        + syntax;
    let warnings = violations.len() + syntax - errors;
    let failing = syntax > 0 || violations.iter().any(|v| v.severity >= args.fail_on);
    if ctx.json() {
        ctx.print_json(&JsonOut {
            ok: !failing,
            pg_version,
            files: reports.len(),
            errors,
            warnings,
            reports: &reports,
        })?;
    } else if args.github {
        for r in &reports {
            if let Some(e) = &r.syntax_error {
                println!("::error file={}::{}", r.path.display(), escape(e));
            }
        }
        for v in &violations {
            let level = match v.severity {
                Severity::Critical => "error",
                Severity::Warning => "warning",
                Severity::Info => "notice",
            };
            println!(
                "::{level} file={},line={},col={},title={}::{}",
                v.location.path.display(),
                v.location.line,
                v.location.column,
                v.rule,
                escape(&format!("{}. help: {}", v.message, v.help))
            );
        }
    } else {
        for r in &reports {
            if let Some(e) = &r.syntax_error {
                println!("error[syntax]: {e}\n");
            }
        }
        for v in &violations {
            println!(
                "{}[{}]: {}\n{}\n  = help: {}\n",
                lint::label(v.severity),
                v.rule,
                v.message,
                v.location,
                v.help
            );
        }
        println!(
            "{} file(s), {} error(s), {} warning(s) (PostgreSQL {})",
            reports.len(),
            errors,
            warnings,
            pg_version / 10000
        );
    }
    Ok(if failing {
        exit_codes::FINDINGS
    } else {
        exit_codes::SUCCESS
    })
}

/// GitHub's workflow-command escaping.
fn escape(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}
