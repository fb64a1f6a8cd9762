//! Alert delivery: the spec's "critical issues should trigger immediate alerts", to someone.
//!
//! `monitor --watch`, `serve` and `deploy` hand each report to a [`Notifier`], which remembers
//! which alerts (warning and critical; info never pages) are active and sends a message when one
//! appears or resolves: to a generic JSON webhook (`PGKEEL_ALERT_WEBHOOK`, the payload below) and
//! to a Slack-compatible incoming webhook (`PGKEEL_ALERT_SLACK_WEBHOOK`; Mattermost, Rocket.Chat
//! and Discord's `/slack` endpoint take the same). Both URLs hold secrets, so they come from the
//! environment only and are never printed: a log line names the host alone.
//!
//! Delivery never blocks or fails the caller: each message is retried with exponential backoff
//! (1 s, 2 s, 4 s: four tries, 10 s each) on connection errors, 408, 429 and 5xx, then dropped
//! with one warning. [`Notifier::flush`] waits (bounded) for what is in flight, for a process
//! about to exit.
//!
//! The JSON payload (`docs/json.md#alert-webhook`):
//! `{"source": "pgkeel", "version", "database" (redacted), "sent_at", "firing": [alert…],
//! "resolved": [alert…], "active": N}`, each alert `{"id", "severity", "object", "message",
//! "fix"?}`.
//!
//! It owns the active set, the payloads and the delivery. It must not collect or judge.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use crate::report::{Finding, Severity};

/// Where alerts go, from `PGKEEL_ALERT_WEBHOOK` and `PGKEEL_ALERT_SLACK_WEBHOOK`.
#[derive(Clone, Default)]
pub struct AlertTargets {
    pub webhook: Option<url::Url>,
    pub slack: Option<url::Url>,
}

impl std::fmt::Debug for AlertTargets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertTargets")
            .field("webhook", &self.webhook.as_ref().map(shown))
            .field("slack", &self.slack.as_ref().map(shown))
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error(
        "{var} is not an http(s) URL ({reason}): set it to the webhook's address, or unset it"
    )]
    BadUrl { var: &'static str, reason: String },
}

impl AlertTargets {
    /// From the process environment; an empty variable is unset.
    pub fn from_env() -> Result<AlertTargets, NotifyError> {
        let read = |var: &'static str| -> Result<Option<url::Url>, NotifyError> {
            let Some(v) = std::env::var(var).ok().filter(|v| !v.trim().is_empty()) else {
                return Ok(None);
            };
            let u = url::Url::parse(v.trim()).map_err(|e| NotifyError::BadUrl {
                var,
                reason: e.to_string(),
            })?;
            if !matches!(u.scheme(), "http" | "https") {
                return Err(NotifyError::BadUrl {
                    var,
                    reason: format!("scheme {}", u.scheme()),
                });
            }
            Ok(Some(u))
        };
        Ok(AlertTargets {
            webhook: read("PGKEEL_ALERT_WEBHOOK")?,
            slack: read("PGKEEL_ALERT_SLACK_WEBHOOK")?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.webhook.is_none() && self.slack.is_none()
    }
}

/// An alert as the payload carries it.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Alert {
    pub id: String,
    pub severity: Severity,
    pub object: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl From<&Finding> for Alert {
    fn from(f: &Finding) -> Alert {
        Alert {
            id: f.id.clone(),
            severity: f.severity,
            object: f.object.clone(),
            message: f.message.clone(),
            fix: f.fix.clone(),
        }
    }
}

/// One message: what appeared and what resolved since the last.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Payload {
    pub source: &'static str,
    pub version: &'static str,
    pub database: String,
    pub sent_at: chrono::DateTime<chrono::Utc>,
    pub firing: Vec<Alert>,
    pub resolved: Vec<Alert>,
    /// Alerts active after this message.
    pub active: usize,
}

/// Remembers the active alerts and sends what changes.
pub struct Notifier {
    targets: AlertTargets,
    client: reqwest::Client,
    database: String,
    active: Mutex<BTreeMap<(String, String), Alert>>,
    in_flight: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    backoff: Duration,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("targets", &self.targets)
            .finish()
    }
}

impl Notifier {
    /// A notifier for `database` (shown redacted in messages); `None` when no target is set.
    pub fn new(targets: AlertTargets, database: impl Into<String>) -> Option<Arc<Notifier>> {
        if targets.is_empty() {
            return None;
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::limited(3))
            .user_agent(concat!("pgkeel/", env!("CARGO_PKG_VERSION")))
            .build()
            .ok()?;
        Some(Arc::new(Notifier {
            targets,
            client,
            database: database.into(),
            active: Mutex::new(BTreeMap::new()),
            in_flight: Mutex::new(Vec::new()),
            backoff: Duration::from_secs(1),
        }))
    }

    /// The first retry's wait (doubling after); tests shorten it.
    pub fn with_backoff(mut self: Arc<Self>, first: Duration) -> Arc<Self> {
        if let Some(n) = Arc::get_mut(&mut self) {
            n.backoff = first;
        }
        self
    }

    /// Takes the alerts of a new report: sends what appeared and what resolved (in the
    /// background), nothing when nothing changed. Returns the payload sent, if any.
    pub fn observe(self: &Arc<Self>, alerts: &[Finding]) -> Option<Payload> {
        let now: BTreeMap<(String, String), Alert> = alerts
            .iter()
            .filter(|f| f.severity >= Severity::Warning)
            .map(|f| ((f.id.clone(), f.object.clone()), Alert::from(f)))
            .collect();
        let (firing, resolved, active) = {
            let mut was = self.active.lock().unwrap_or_else(|e| e.into_inner());
            let firing: Vec<Alert> = now
                .iter()
                .filter(|(k, _)| !was.contains_key(*k))
                .map(|(_, a)| a.clone())
                .collect();
            let resolved: Vec<Alert> = was
                .iter()
                .filter(|(k, _)| !now.contains_key(*k))
                .map(|(_, a)| a.clone())
                .collect();
            *was = now;
            (firing, resolved, was.len())
        };
        if firing.is_empty() && resolved.is_empty() {
            return None;
        }
        Some(self.send(firing, resolved, active))
    }

    /// Sends `firing` and `resolved` as they are, without the active set: for a one-shot run
    /// (a deploy) that knows itself whether its alert fires or resolves.
    pub fn announce(self: &Arc<Self>, firing: &[Finding], resolved: &[Finding]) -> Payload {
        self.send(
            firing.iter().map(Alert::from).collect(),
            resolved.iter().map(Alert::from).collect(),
            firing.len(),
        )
    }

    /// Builds the message and starts its delivery to every target, in the background.
    fn send(self: &Arc<Self>, firing: Vec<Alert>, resolved: Vec<Alert>, active: usize) -> Payload {
        let payload = Payload {
            source: "pgkeel",
            version: env!("CARGO_PKG_VERSION"),
            database: self.database.clone(),
            sent_at: chrono::Utc::now(),
            firing,
            resolved,
            active,
        };
        let mut jobs = Vec::new();
        if let Some(u) = &self.targets.webhook {
            jobs.push((
                u.clone(),
                serde_json::to_value(&payload).unwrap_or_default(),
            ));
        }
        if let Some(u) = &self.targets.slack {
            jobs.push((
                u.clone(),
                serde_json::json!({ "text": slack_text(&payload) }),
            ));
        }
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        in_flight.retain(|h| !h.is_finished());
        for (url, body) in jobs {
            let me = self.clone();
            in_flight.push(tokio::spawn(async move { me.deliver(url, body).await }));
        }
        payload
    }

    async fn deliver(&self, url: url::Url, body: serde_json::Value) {
        let mut wait = self.backoff;
        let mut last = String::new();
        for attempt in 1..=4 {
            let request = self
                .client
                .post(url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string());
            match request.send().await {
                Ok(r) if r.status().is_success() => return,
                Ok(r) => {
                    let s = r.status();
                    last = format!("HTTP {}", s.as_u16());
                    if !(s.is_server_error() || s.as_u16() == 429 || s.as_u16() == 408) {
                        break; // the receiver refuses this message: retrying will not help
                    }
                }
                // reqwest's error text holds the URL (a secret for Slack): never shown.
                Err(e) if e.is_timeout() => last = "timed out".into(),
                Err(e) if e.is_connect() => last = "could not connect".into(),
                Err(_) => last = "the request failed".into(),
            }
            if attempt < 4 {
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
        tracing::warn!("alert delivery to {} failed: {last}", shown(&url));
    }

    /// Waits for the messages in flight, at most `limit` (a process about to exit).
    pub async fn flush(&self, limit: Duration) {
        let handles: Vec<_> =
            std::mem::take(&mut *self.in_flight.lock().unwrap_or_else(|e| e.into_inner()));
        let _ = tokio::time::timeout(limit, futures_util::future::join_all(handles)).await;
    }
}

/// A webhook URL as it may be shown: scheme and host, never the path or query (Slack's path is
/// its secret).
fn shown(u: &url::Url) -> String {
    format!("{}://{}/…", u.scheme(), u.host_str().unwrap_or("?"))
}

/// The message for a Slack-compatible webhook: one line per alert.
fn slack_text(p: &Payload) -> String {
    let mut lines = Vec::new();
    for a in &p.firing {
        let mark = match a.severity {
            Severity::Critical => ":red_circle: CRITICAL",
            _ => ":large_orange_circle: warning",
        };
        lines.push(format!("{mark} `{}` {}: {}", a.id, a.object, a.message));
        if let Some(fix) = &a.fix {
            lines.push(format!("    fix: `{fix}`"));
        }
    }
    for a in &p.resolved {
        lines.push(format!(
            ":white_check_mark: resolved `{}` {}",
            a.id, a.object
        ));
    }
    format!(
        "pgkeel · {} · {} active\n{}",
        p.database,
        p.active,
        lines.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_urls_are_shown_without_their_secret_path() {
        let u = url::Url::parse("https://hooks.slack.com/services/T000/B000/XXXXSECRET").unwrap();
        assert_eq!(shown(&u), "https://hooks.slack.com/…");
        let t = AlertTargets {
            webhook: None,
            slack: Some(u),
        };
        assert!(!format!("{t:?}").contains("SECRET"));
    }
}
