//! `pgkeel monitor`: the health report (spec: db:monitor, db:monitor:health,
//! db:monitor:migrations, db:monitor:performance), saved to reports/db-health-YYYY-MM-DD.json;
//! the exit code is the worst alert level. `--watch` repeats and prints only what changed.

use std::collections::BTreeMap;
use std::time::Duration;

use clap::Args;
use pgkeel::monitor::dashboard::{bytes, duration};
use pgkeel::monitor::notify::{AlertTargets, Notifier};
use pgkeel::monitor::{Monitor, MonitorReport, Sections};
use pgkeel::report::{Finding, Severity};
use serde_json::json;

use crate::ctx::Ctx;
use crate::exit_codes;

#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// Connection health only: latency, version, uptime, connections, pool, TLS, replication.
    #[arg(long)]
    pub health: bool,
    /// Migration status only (spec: db:monitor:migrations): applied / pending / failed / rolled
    /// back, last applied, failures. (`--migrations DIR` is the global folder flag.)
    #[arg(long)]
    pub migration_status: bool,
    /// Performance only: size and growth, largest tables, cache hits, error rate, long queries,
    /// idle transactions, lock waits, autovacuum lag, pg_stat_statements.
    #[arg(long)]
    pub performance: bool,
    /// Repeat every SECONDS and print only what changed (new and resolved alerts, moved
    /// numbers) until Ctrl-C. A report is written whenever the alerts change.
    #[arg(long, value_name = "SECONDS")]
    pub watch: Option<u64>,
    /// Don't write reports/db-health-YYYY-MM-DD.json.
    #[arg(long)]
    pub no_report: bool,
}

/// Exit code for a worst alert level.
pub fn exit_code(worst: Option<Severity>) -> i32 {
    match worst {
        Some(Severity::Critical) => exit_codes::ALERT_CRITICAL,
        Some(Severity::Warning) => exit_codes::ALERT_WARNING,
        _ => exit_codes::SUCCESS,
    }
}

pub async fn run(mut ctx: Ctx, args: MonitorArgs) -> anyhow::Result<i32> {
    let sections = Sections::from_flags(args.health, args.migration_status, args.performance);
    let monitor = Monitor::new(&ctx.settings, ctx.migrations_dir())?;
    let mut previous: Option<MonitorReport> = None;
    // --watch sends alerts that appear or resolve to PGKEEL_ALERT_WEBHOOK / _SLACK_WEBHOOK.
    let notifier = match args.watch {
        Some(_) => Notifier::new(AlertTargets::from_env()?, monitor.target().to_string()),
        None => None,
    };
    loop {
        let r = monitor.run(sections).await;
        if let Some(n) = &notifier {
            n.observe(&r.alerts);
        }
        let alerts_changed = previous
            .as_ref()
            .is_none_or(|p| alert_keys(&p.alerts) != alert_keys(&r.alerts));
        let saved = if !args.no_report && alerts_changed {
            ctx.save_report(|dir| r.save(dir))
        } else {
            None
        };
        match &previous {
            None if ctx.json() => {
                let mut v = serde_json::to_value(&r)?;
                v["report_file"] = json!(saved.as_ref().map(|p| p.display().to_string()));
                ctx.print_json_ok(exit_code(r.worst()) == exit_codes::SUCCESS, &v)?;
            }
            None => print_report(&r, saved.as_deref()),
            Some(p) => print_changes(&ctx, p, &r, saved.as_deref())?,
        }
        let code = exit_code(r.worst());
        let Some(every) = args.watch else {
            return Ok(code);
        };
        previous = Some(r);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(every.max(1))) => {}
            _ = ctx.interrupt.changed() => {
                if let Some(n) = &notifier {
                    n.flush(Duration::from_secs(5)).await;
                }
                return Ok(code);
            }
        }
    }
}

fn alert_keys(a: &[Finding]) -> Vec<(String, String, Severity)> {
    let mut v: Vec<_> = a
        .iter()
        .map(|f| (f.id.clone(), f.object.clone(), f.severity))
        .collect();
    v.sort();
    v
}

struct Style {
    on: bool,
}

impl Style {
    fn new() -> Self {
        Style {
            on: crate::printer::color(crate::printer::Stream::Stdout),
        }
    }

    fn paint(&self, code: &str, s: &str) -> String {
        crate::printer::sgr(self.on, code, s)
    }

    fn level(&self, s: Severity) -> String {
        let text = s.as_str().to_uppercase();
        match s {
            Severity::Critical => self.paint("1;31", &format!("{text:<8}")),
            Severity::Warning => self.paint("1;33", &format!("{text:<8}")),
            Severity::Info => self.paint("36", &format!("{text:<8}")),
        }
    }

    fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }

    /// `▁▂▃▅▇` of the values (on a terminal only).
    fn spark(&self, values: &[f64]) -> String {
        if !self.on || values.len() < 2 {
            return String::new();
        }
        const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
        let tail = &values[values.len().saturating_sub(30)..];
        let (lo, hi) = tail
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(*v), b.max(*v)));
        let line: String = tail
            .iter()
            .map(|v| {
                let i = if hi > lo {
                    ((v - lo) / (hi - lo) * 7.0).round() as usize
                } else {
                    3
                };
                BARS[i.min(7)]
            })
            .collect();
        format!("  {}", self.paint("36", &line))
    }
}

/// The human report (also printed by `pgkeel demo`).
pub fn print_report(r: &MonitorReport, saved: Option<&std::path::Path>) {
    let st = Style::new();
    println!(
        "{} · {} · {}",
        st.bold("pgkeel monitor"),
        r.database,
        r.generated_at.format("%Y-%m-%d %H:%M:%S UTC")
    );
    let status = match r.worst() {
        Some(s) => st.level(s),
        None => st.paint("1;32", "OK"),
    };
    let c = &r.summary.alerts;
    println!(
        "status: {}  ({} critical, {} warning, {} info)",
        status.trim_end(),
        c.critical,
        c.warning,
        c.info
    );
    let h = &r.health;
    let samples = r.history.as_ref().map(|h| &h.samples[..]).unwrap_or(&[]);
    if r.sections.health || !h.reachable {
        println!();
        println!("{}", st.bold("health"));
        if !h.reachable {
            println!(
                "  database     {} after {:.0} ms: {}",
                st.paint("1;31", "UNREACHABLE"),
                h.latency.connect_ms,
                h.error.as_deref().unwrap_or("")
            );
        } else {
            println!(
                "  server       PostgreSQL {}, up {}",
                h.server_version,
                duration(h.uptime_seconds)
            );
            println!(
                "  latency      connect {:.1} ms · round trip p50 {:.2} ms, max {:.2} ms ({} probes)",
                h.latency.connect_ms, h.latency.p50_ms, h.latency.max_ms, h.latency.probes
            );
            let states: Vec<String> = h
                .connections
                .by_state
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            let conns: Vec<f64> = samples.iter().map(|s| s.connections as f64).collect();
            println!(
                "  connections  {} / {} ({:.0} %)  {}{}",
                h.connections.used,
                h.connections.max,
                h.connections.percent,
                states.join(" · "),
                st.spark(&conns)
            );
            println!(
                "  pool         DATABASE_CONNECTION_POOL_SIZE {}, {} slots free",
                h.pool.configured_size, h.pool.free_slots
            );
            println!(
                "  TLS          {}",
                if h.tls.in_use {
                    format!(
                        "{} {}",
                        h.tls.version.as_deref().unwrap_or("yes"),
                        h.tls.cipher.as_deref().unwrap_or("")
                    )
                } else {
                    "not in use".into()
                }
            );
            let rep = &h.replication;
            if rep.in_recovery {
                println!(
                    "  replication  standby, replay lag {}",
                    rep.replay_lag_seconds
                        .map(duration)
                        .unwrap_or_else(|| "unknown".into())
                );
            } else {
                println!(
                    "  replication  primary, {} standby(s) visible",
                    rep.replicas.len()
                );
            }
            println!(
                "  xid age      {} ({:.2} % of wraparound)",
                h.xid_age, h.wraparound_percent
            );
        }
    }
    if let Some(m) = &r.migrations {
        println!();
        println!("{} ({})", st.bold("migrations"), m.dir);
        if let Some(e) = &m.error {
            println!("  {}", st.paint("33", e));
        } else {
            let c = &m.counts;
            println!(
                "  {} applied · {} pending · {} failed · {} rolled back · {} modified · {} missing on disk",
                c.applied, c.pending, c.failed, c.rolled_back, c.modified, c.missing_file
            );
            if let Some(l) = &m.last_applied {
                println!(
                    "  last applied {} at {}{}",
                    l.id,
                    l.applied_at
                        .map(|a| a.format("%Y-%m-%d %H:%M:%S").to_string())
                        .unwrap_or_default(),
                    l.execution_ms
                        .map(|ms| format!(" ({ms} ms)"))
                        .unwrap_or_default()
                );
            }
            for f in &m.failures {
                println!(
                    "  {} {}: {}",
                    st.paint("1;31", "FAILED"),
                    f.id,
                    f.error
                        .as_deref()
                        .unwrap_or("")
                        .lines()
                        .next()
                        .unwrap_or("")
                );
            }
        }
    }
    if let Some(p) = &r.performance {
        println!();
        println!("{}", st.bold("performance"));
        if let Some(e) = &p.error {
            println!("  {}", st.paint("33", e));
        } else {
            let sizes: Vec<f64> = samples
                .iter()
                .map(|s| s.database_size_bytes as f64)
                .collect();
            let growth = match r.history.as_ref() {
                Some(h) if !h.kept => format!(
                    "growth unknown ({})",
                    h.reason.as_deref().unwrap_or("no history")
                ),
                Some(h) => match &h.growth {
                    Some(g) => format!(
                        "growth {}/day ({:+.2} %/day)",
                        bytes(g.bytes_per_day),
                        g.percent_per_day
                    ),
                    None => format!(
                        "growth: needs samples an hour apart ({} so far)",
                        h.samples.len()
                    ),
                },
                None => String::new(),
            };
            println!(
                "  size         {}  {growth}{}",
                bytes(p.database_size_bytes as f64),
                st.spark(&sizes)
            );
            let k = &p.counters;
            println!(
                "  activity     cache hit {} · commits {} · rollbacks {} ({:.2} %) · deadlocks {} · temp files {} ({})",
                k.cache_hit_percent
                    .map(|h| format!("{h:.2} %"))
                    .unwrap_or_else(|| "n/a".into()),
                k.commits,
                k.rollbacks,
                k.error_rate_percent,
                k.deadlocks,
                k.temp_files,
                bytes(k.temp_bytes as f64)
            );
            println!(
                "  sessions     {} active · {} idle in transaction · {} lock waits",
                p.long_running.len(),
                p.idle_in_transaction.len(),
                p.lock_waits.len()
            );
            for w in &p.lock_waits {
                println!(
                    "    pid {} waits {:.0} s for pid {:?}",
                    w.blocked.pid, w.waiting_seconds, w.blocked_by
                );
            }
            if !p.largest_tables.is_empty() {
                println!(
                    "  largest{}     {}",
                    if p.sizes_estimated { "~" } else { " " },
                    p.largest_tables
                        .iter()
                        .filter(|t| !t.bookkeeping)
                        .take(5)
                        .map(|t| format!(
                            "{} {}",
                            pgkeel::schema::model::display_name(&t.schema, &t.name),
                            bytes(t.bytes as f64)
                        ))
                        .collect::<Vec<_>>()
                        .join(" · ")
                );
            }
            if !p.autovacuum_lag.is_empty() {
                println!(
                    "  autovacuum   {} table(s) past their trigger",
                    p.autovacuum_lag.len()
                );
            }
            let s = &p.statements;
            if s.available {
                println!("  statements   top by total time:");
                for t in s.top.iter().take(5) {
                    println!(
                        "    {:>10.1} ms {:>8} calls  {}",
                        t.total_ms,
                        t.calls,
                        t.query
                            .split_whitespace()
                            .collect::<Vec<_>>()
                            .join(" ")
                            .chars()
                            .take(70)
                            .collect::<String>()
                    );
                }
            } else {
                println!(
                    "  statements   unavailable: {}",
                    s.reason.as_deref().unwrap_or("")
                );
            }
        }
    }
    println!();
    println!("{}", st.bold("alerts"));
    if r.alerts.is_empty() {
        println!("  none");
    }
    for a in &r.alerts {
        println!(
            "  {} {:<26} {:<14} {}",
            st.level(a.severity),
            a.id,
            a.object,
            a.message
        );
    }
    println!();
    if let Some(p) = saved {
        println!("report: {}", p.display());
    }
    println!(
        "cost: {} queries, {:.1} ms of database time",
        r.cost.queries, r.cost.db_time_ms
    );
}

/// The numbers `--watch` follows.
fn numbers(r: &MonitorReport) -> BTreeMap<&'static str, String> {
    let mut m = BTreeMap::new();
    let h = &r.health;
    m.insert("reachable", h.reachable.to_string());
    if h.reachable {
        m.insert("connections", h.connections.used.to_string());
    }
    if let Some(mg) = &r.migrations {
        m.insert("pending", mg.pending.len().to_string());
        m.insert("failed", mg.counts.failed.to_string());
        m.insert("applied", mg.counts.applied.to_string());
    }
    if let Some(p) = r.performance.as_ref().filter(|p| p.error.is_none()) {
        m.insert("database_size", bytes(p.database_size_bytes as f64));
        m.insert("long_running", p.long_running.len().to_string());
        m.insert(
            "idle_in_transaction",
            p.idle_in_transaction.len().to_string(),
        );
        m.insert("lock_waits", p.lock_waits.len().to_string());
    }
    m
}

fn print_changes(
    ctx: &Ctx,
    before: &MonitorReport,
    now: &MonitorReport,
    saved: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let old = alert_keys(&before.alerts);
    let new = alert_keys(&now.alerts);
    let raised: Vec<&Finding> = now
        .alerts
        .iter()
        .filter(|a| !old.contains(&(a.id.clone(), a.object.clone(), a.severity)))
        .collect();
    let resolved: Vec<&Finding> = before
        .alerts
        .iter()
        .filter(|a| !new.contains(&(a.id.clone(), a.object.clone(), a.severity)))
        .collect();
    let (nb, nn) = (numbers(before), numbers(now));
    let moved: Vec<(&str, String, String)> = nn
        .iter()
        .filter_map(|(k, v)| {
            let was = nb.get(k).cloned().unwrap_or_default();
            (was != *v).then(|| (*k, was, v.clone()))
        })
        .collect();
    if raised.is_empty() && resolved.is_empty() && moved.is_empty() {
        return Ok(());
    }
    if ctx.json() {
        // One compact JSON document per line (NDJSON) per change.
        println!(
            "{}",
            serde_json::to_string(&json!({
                "at": now.generated_at,
                "status": now.summary.status,
                "raised": raised,
                "resolved": resolved,
                "changed": moved.iter().map(|(k, a, b)| json!({"metric": k, "from": a, "to": b})).collect::<Vec<_>>(),
                "report_file": saved.map(|p| p.display().to_string()),
            }))?
        );
        return Ok(());
    }
    let st = Style::new();
    let at = now.generated_at.format("%H:%M:%S");
    for a in raised {
        println!(
            "{at} + {} {} {}: {}",
            st.level(a.severity),
            a.id,
            a.object,
            a.message
        );
    }
    for a in resolved {
        println!("{at} - resolved {} {} {}", a.severity, a.id, a.object);
    }
    for (k, a, b) in moved {
        println!("{at} ~ {k}: {a} → {b}");
    }
    if let Some(p) = saved {
        println!("{at}   report: {}", p.display());
    }
    Ok(())
}
