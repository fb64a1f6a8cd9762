//! The dashboard page: server-rendered HTML with inline CSS and SVG charts (database size and
//! connections over time from the history samples), health, alerts and the migration timeline.
//! No build step, no external assets: everything is in the binary and the page works offline.
//! A few lines of inline script only mark each chart with the width the browser laid it out at
//! (`data-rendered-width`), so a headless browser can prove the charts rendered.

use std::fmt::Write as _;

use super::history::Sample;
use super::MonitorReport;
use crate::report::Severity;

const CSS: &str = include_str!("dashboard.css");

/// HTML-escapes text.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// `1.5 MB`.
pub fn bytes(n: f64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n;
    let mut i = 0;
    while v.abs() >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{v:.0} {}", units[i])
    } else {
        format!("{v:.1} {}", units[i])
    }
}

/// `3d 4h`, `12m`.
pub fn duration(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86_400, (s % 86_400) / 3600),
    }
}

const W: f64 = 560.0;
const H: f64 = 180.0;
const PAD_L: f64 = 70.0;
const PAD_B: f64 = 24.0;

/// An SVG line chart of `points` (x = unix seconds, y = value).
fn chart(id: &str, title: &str, points: &[(f64, f64)], fmt: fn(f64) -> String) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<figure class="card"><figcaption>{}</figcaption><svg id="{id}" class="chart" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="{}">"#,
        esc(title),
        esc(title)
    );
    if points.is_empty() {
        s.push_str(r#"<text x="50%" y="50%" text-anchor="middle" class="muted">no samples yet</text></svg></figure>"#);
        return s;
    }
    let (x0, x1) = points
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (y_min, y_max) = points
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let y0 = if y_min >= 0.0 { 0.0 } else { y_min };
    let y1 = if y_max > y0 { y_max * 1.1 } else { y0 + 1.0 };
    let sx = |x: f64| {
        if x1 > x0 {
            PAD_L + (x - x0) / (x1 - x0) * (W - PAD_L - 10.0)
        } else {
            PAD_L + (W - PAD_L - 10.0) / 2.0
        }
    };
    let sy = |y: f64| 10.0 + (1.0 - (y - y0) / (y1 - y0)) * (H - PAD_B - 10.0);
    // Axes and labels.
    let _ = write!(
        s,
        r#"<line class="axis" x1="{PAD_L}" y1="{b}" x2="{r}" y2="{b}"/><line class="axis" x1="{PAD_L}" y1="10" x2="{PAD_L}" y2="{b}"/>"#,
        b = H - PAD_B,
        r = W - 10.0
    );
    for frac in [0.0, 0.5, 1.0] {
        let v = y0 + (y1 - y0) * frac;
        let _ = write!(
            s,
            r#"<text class="tick" x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            PAD_L - 6.0,
            sy(v) + 4.0,
            esc(&fmt(v))
        );
    }
    let label = |t: f64| {
        chrono::DateTime::from_timestamp(t as i64, 0)
            .map(|d| d.format("%m-%d %H:%M").to_string())
            .unwrap_or_default()
    };
    let _ = write!(
        s,
        r#"<text class="tick" x="{PAD_L}" y="{H}">{}</text><text class="tick" x="{}" y="{H}" text-anchor="end">{}</text>"#,
        label(x0),
        W - 10.0,
        label(x1)
    );
    // The line: a single sample is drawn as a flat line across the chart.
    let pts: Vec<(f64, f64)> = if points.len() == 1 {
        vec![(PAD_L, sy(points[0].1)), (W - 10.0, sy(points[0].1))]
    } else {
        points.iter().map(|p| (sx(p.0), sy(p.1))).collect()
    };
    let poly: Vec<String> = pts.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
    let _ = write!(
        s,
        r#"<polyline class="series" fill="none" points="{}"/>"#,
        poly.join(" ")
    );
    for p in points {
        let _ = write!(
            s,
            r#"<circle class="point" cx="{:.1}" cy="{:.1}" r="2.5"><title>{}: {}</title></circle>"#,
            sx(p.0),
            sy(p.1),
            label(p.0),
            esc(&fmt(p.1))
        );
    }
    s.push_str("</svg></figure>");
    s
}

fn sev_class(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "critical",
        Severity::Warning => "warning",
        Severity::Info => "info",
    }
}

/// The page's one script (it records each chart's rendered width, which the browser test reads).
/// The Content-Security-Policy of `serve` allows exactly this script, by its hash.
pub const SCRIPT: &str = "for(const s of document.querySelectorAll('svg.chart')){const l=s.querySelector('polyline');s.dataset.renderedWidth=l?Math.round(l.getBBox().width):0;}";

/// Renders the dashboard for `r` (its history samples feed the charts). `refresh_secs` is the
/// page's auto-refresh.
pub fn render(r: &MonitorReport, refresh_secs: u64) -> String {
    let h = &r.health;
    let samples: &[Sample] = r.history.as_ref().map_or(&[], |h| &h.samples[..]);
    let mut o = String::with_capacity(16 * 1024);
    let status = r.summary.status.as_str();
    let _ = write!(
        o,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><meta http-equiv="refresh" content="{refresh_secs}"><title>pgkeel · {status} · {db}</title><style>{CSS}</style></head><body><header><h1>pgkeel monitor</h1><span id="status" class="badge {status}">{status}</span><span class="muted">{db} · collected {at}</span></header><main>"#,
        db = esc(&r.database),
        at = r.generated_at.format("%Y-%m-%d %H:%M:%S UTC"),
    );
    // Health cards.
    o.push_str(r#"<section id="health" class="cards">"#);
    let card = |o: &mut String, label: &str, value: String| {
        let _ = write!(
            o,
            r#"<div class="card stat"><div class="label">{}</div><div class="value">{}</div></div>"#,
            esc(label),
            esc(&value)
        );
    };
    if h.reachable {
        card(&mut o, "server", format!("PostgreSQL {}", h.server_version));
        card(&mut o, "uptime", duration(h.uptime_seconds));
        card(
            &mut o,
            "connections",
            format!(
                "{} / {} ({:.0} %)",
                h.connections.used, h.connections.max, h.connections.percent
            ),
        );
        card(
            &mut o,
            "latency",
            format!(
                "connect {:.1} ms · p50 {:.2} ms",
                h.latency.connect_ms, h.latency.p50_ms
            ),
        );
        card(
            &mut o,
            "TLS",
            if h.tls.in_use {
                h.tls.version.clone().unwrap_or_else(|| "yes".into())
            } else {
                "not in use".into()
            },
        );
        if let Some(p) = &r.performance {
            card(&mut o, "database size", bytes(p.database_size_bytes as f64));
            if let Some(hit) = p.counters.cache_hit_percent {
                card(&mut o, "cache hit", format!("{hit:.2} %"));
            }
        }
        if let Some(g) = r.history.as_ref().and_then(|h| h.growth.as_ref()) {
            card(
                &mut o,
                "growth",
                format!(
                    "{}/day ({:.2} %)",
                    bytes(g.bytes_per_day),
                    g.percent_per_day
                ),
            );
        }
    } else {
        card(
            &mut o,
            "database",
            format!(
                "unreachable: {}",
                h.error.as_deref().unwrap_or("unknown reason")
            ),
        );
    }
    o.push_str("</section>");
    // Charts.
    let size: Vec<(f64, f64)> = samples
        .iter()
        .map(|s| (s.at.timestamp() as f64, s.database_size_bytes as f64))
        .collect();
    let conns: Vec<(f64, f64)> = samples
        .iter()
        .map(|s| (s.at.timestamp() as f64, s.connections as f64))
        .collect();
    o.push_str(r#"<section class="charts">"#);
    o.push_str(&chart("chart-size", "database size", &size, bytes));
    o.push_str(&chart("chart-connections", "connections", &conns, |v| {
        format!("{v:.0}")
    }));
    o.push_str("</section>");
    // Alerts.
    let _ = write!(
        o,
        r#"<section id="alerts" class="card"><h2>alerts ({})</h2>"#,
        r.alerts.len()
    );
    if r.alerts.is_empty() {
        o.push_str(r#"<p class="muted">no alerts</p>"#);
    } else {
        o.push_str("<table><thead><tr><th>level</th><th>alert</th><th>object</th><th>message</th></tr></thead><tbody>");
        for a in &r.alerts {
            let _ = write!(
                o,
                r#"<tr class="alert {c}"><td><span class="badge {c}">{c}</span></td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
                esc(&a.id),
                esc(&a.object),
                esc(&a.message),
                c = sev_class(a.severity)
            );
        }
        o.push_str("</tbody></table>");
    }
    o.push_str("</section>");
    // Migration timeline.
    if let Some(m) = &r.migrations {
        let c = &m.counts;
        let _ = write!(
            o,
            r#"<section id="migrations" class="card"><h2>migrations</h2><p class="muted">{} applied · {} pending · {} failed · {} rolled back · {} modified</p>"#,
            c.applied, c.pending, c.failed, c.rolled_back, c.modified
        );
        if let Some(e) = &m.error {
            let _ = write!(o, r#"<p class="critical">{}</p>"#, esc(e));
        }
        o.push_str(r#"<ol class="timeline">"#);
        for t in &m.timeline {
            let _ = write!(
                o,
                r#"<li class="mig {s}"><span class="dot"></span><code>{}</code> <span class="state">{s}</span> <span class="muted">{}{}</span></li>"#,
                esc(&t.id),
                t.applied_at
                    .map(|a| a.format("%Y-%m-%d %H:%M:%S").to_string())
                    .unwrap_or_default(),
                t.execution_ms
                    .map(|ms| format!(" · {ms} ms"))
                    .unwrap_or_default(),
                s = esc(&t.state)
            );
        }
        o.push_str("</ol></section>");
    }
    let _ = write!(
        o,
        r#"</main><footer class="muted">{} queries, {:.1} ms of database time · <a href="/metrics">/metrics</a> · <a href="/readyz">/readyz</a> · <a href="/api/report">report JSON</a></footer><script>{SCRIPT}</script></body></html>"#,
        r.cost.queries, r.cost.db_time_ms
    );
    o
}
