//! The deploy's last step: a health URL polled until it answers 2xx within the timeout
//! (shown redacted).

use super::*;

/// What polling the health URL saw.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct HealthPoll {
    /// The URL without credentials or query string.
    pub url: String,
    pub attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub waited_ms: u64,
}

/// A URL fit for a report: no user information, no query (tokens live there).
pub fn display_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            let had_query = u.query().is_some();
            u.set_query(None);
            u.set_fragment(None);
            let mut s = u.to_string();
            if had_query {
                s.push_str("?…");
            }
            s
        }
        Err(_) => "(not a URL)".into(),
    }
}

/// Polls `url` with GET until it answers 2xx or `timeout` has passed. Each request gets what
/// is left of the timeout (at most 10 s); redirects are followed.
pub async fn poll_health(
    url: &str,
    timeout: Duration,
    interval: Duration,
    interrupt: Option<tokio::sync::watch::Receiver<bool>>,
) -> Result<HealthPoll, HealthPoll> {
    let started = Instant::now();
    let mut h = HealthPoll {
        url: display_url(url),
        attempts: 0,
        last_status: None,
        last_error: None,
        waited_ms: 0,
    };
    let client = match reqwest::Client::builder()
        .user_agent(concat!("pgkeel/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            h.last_error = Some(format!("cannot build an HTTP client: {e}"));
            return Err(h);
        }
    };
    loop {
        let left = timeout.saturating_sub(started.elapsed());
        if left.is_zero() || interrupt.as_ref().is_some_and(|rx| *rx.borrow()) {
            h.waited_ms = started.elapsed().as_millis() as u64;
            return Err(h);
        }
        h.attempts += 1;
        match client
            .get(url)
            .timeout(left.min(Duration::from_secs(10)))
            .send()
            .await
        {
            Ok(resp) => {
                h.last_status = Some(resp.status().as_u16());
                h.last_error = None;
                if resp.status().is_success() {
                    h.waited_ms = started.elapsed().as_millis() as u64;
                    return Ok(h);
                }
            }
            Err(e) => {
                h.last_status = None;
                // reqwest's message names the URL: keep only what went wrong.
                h.last_error = Some(chain(&e.without_url()));
            }
        }
        let left = timeout.saturating_sub(started.elapsed());
        tokio::time::sleep(interval.min(left)).await;
    }
}
