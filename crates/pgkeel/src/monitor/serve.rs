//! `pgkeel serve`: an axum service over a [`Monitor`].
//!
//! `GET /healthz` (liveness: the process answers), `GET /readyz` (the database answered within
//! READINESS_CHECK_TIMEOUT and no migration is pending or failed; JSON reasons; 200/503),
//! `GET /metrics` (Prometheus text), `GET /` (the dashboard), `GET /api/report` (the report as
//! JSON). Every endpoint reads one cached collection: at most one collection per interval
//! reaches the database however often it is scraped. `/readyz` wants the current truth: with a
//! stale cache it waits for the single collection in flight. `/metrics`, the dashboard and the
//! report are served from the cache even when it is stale (stale-while-revalidate): such a
//! request starts the refresh in the background and answers at once, so a scrape never waits
//! for the database once the first collection is done. Binds to loopback by default; any other address
//! requires a bearer token, which then guards every endpoint but `/healthz`. Never shows
//! credentials: the database is displayed redacted.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::{Monitor, MonitorReport, Sections};
use crate::db::Client;

/// How to serve.
#[derive(Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    /// Bearer token required on every endpoint but `/healthz`; required for non-loopback binds.
    pub token: Option<String>,
    /// At most one collection per interval.
    pub interval: Duration,
    /// Where alerts that appear or resolve are sent; with it, serve also collects once per
    /// interval by itself, so alerts go out when nobody is looking.
    pub alerts: Option<Arc<super::notify::Notifier>>,
}

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("interval", &self.interval)
            .field("alerts", &self.alerts.is_some())
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}; {}", bind_hint(.source))]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("refusing to listen on {addr} without a token: anyone who can reach it would see the dashboard and metrics; pass --token-env VAR (a variable holding a secret) or listen on 127.0.0.1")]
    TokenRequired { addr: SocketAddr },
    #[error("the HTTP server stopped: {0}")]
    Io(#[source] std::io::Error),
    #[error("--listen {given}: {reason}; give HOST:PORT, e.g. 127.0.0.1:9187, localhost:9187, [::]:9187 or 0.0.0.0:9187")]
    BadListen { given: String, reason: String },
}

/// The default address: `127.0.0.1:9187`, or, when the platform names the port in `PORT`
/// (Railway, Heroku, Render, Cloud Run), every interface on that port (which then needs a
/// token, as any address but loopback does).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9187";

/// Where to listen: `given` (`HOST:PORT`, a host name resolved, its first address taken),
/// else `0.0.0.0:$PORT` when `port` (the `PORT` variable) is set, else [`DEFAULT_LISTEN`].
pub async fn listen_address(
    given: Option<&str>,
    port: Option<&str>,
) -> Result<SocketAddr, ServeError> {
    let text = match (given, port.map(str::trim).filter(|p| !p.is_empty())) {
        (Some(g), _) => g.trim().to_string(),
        (None, Some(p)) => {
            let n: u16 = p.parse().map_err(|_| ServeError::BadListen {
                given: format!("(from PORT={p})"),
                reason: "PORT is not a port number".into(),
            })?;
            format!("0.0.0.0:{n}")
        }
        (None, None) => DEFAULT_LISTEN.to_string(),
    };
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let bad = |reason: String| ServeError::BadListen {
        given: text.clone(),
        reason,
    };
    if text
        .rsplit_once(':')
        .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
    {
        return Err(bad("no port".into()));
    }
    let mut addrs = tokio::net::lookup_host(text.as_str())
        .await
        .map_err(|e| bad(format!("cannot resolve the host: {e}")))?;
    addrs
        .next()
        .ok_or_else(|| bad("the host resolves to no address".into()))
}

fn bind_hint(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            "another process already uses that port; stop it or choose another with --listen"
        }
        std::io::ErrorKind::PermissionDenied => {
            "ports below 1024 need privileges; choose a port above 1024"
        }
        _ => "check the address given to --listen",
    }
}

/// A collection and its renderings, shared by every request until the next one.
#[derive(Debug)]
pub struct Snapshot {
    pub report: MonitorReport,
    pub metrics: String,
    pub collected_at: Instant,
}

#[derive(Debug, Default)]
struct Collector {
    client: Option<Client>,
    last_sample: Option<Instant>,
}

struct Shared {
    monitor: Monitor,
    interval: Duration,
    token: Option<String>,
    current: RwLock<Option<Arc<Snapshot>>>,
    collector: tokio::sync::Mutex<Collector>,
    collections: AtomicU64,
    /// A background refresh is running (at most one).
    refreshing: AtomicBool,
    notifier: Option<Arc<super::notify::Notifier>>,
}

impl Shared {
    fn fresh(&self) -> Option<Arc<Snapshot>> {
        let cur = self.current.read().ok()?;
        cur.as_ref()
            .filter(|s| s.collected_at.elapsed() < self.interval)
            .cloned()
    }

    /// The current snapshot, collecting when it is older than the interval. Only one collection
    /// runs at a time; requests that arrive meanwhile wait for it and share its result.
    async fn snapshot(&self) -> Arc<Snapshot> {
        if let Some(s) = self.fresh() {
            return s;
        }
        let mut c = self.collector.lock().await;
        if let Some(s) = self.fresh() {
            return s;
        }
        let report = self.collect(&mut c).await;
        if let Some(n) = &self.notifier {
            n.observe(&report.alerts);
        }
        let n = self.collections.fetch_add(1, Ordering::Relaxed) + 1;
        let snap = Arc::new(Snapshot {
            metrics: super::metrics::render(&report, n),
            report,
            collected_at: Instant::now(),
        });
        if let Ok(mut cur) = self.current.write() {
            *cur = Some(snap.clone());
        }
        snap
    }

    async fn collect(&self, c: &mut Collector) -> MonitorReport {
        let mut connect_ms = 0.0;
        if c.client.as_ref().is_none_or(|cl| cl.is_closed()) {
            c.client = None;
            match self.monitor.connect().await {
                Ok((client, ms)) => {
                    c.client = Some(client);
                    connect_ms = ms;
                }
                Err((e, ms)) => return self.monitor.unreachable(&e, ms, Sections::ALL),
            }
        }
        // A history sample at most once a minute (and once per interval).
        let every = self.interval.max(Duration::from_secs(60));
        let record = c.last_sample.is_none_or(|t| t.elapsed() >= every);
        let client = c.client.as_ref().expect("connected above");
        let report = self
            .monitor
            .collect(client, connect_ms, Sections::ALL, record)
            .await;
        if record && report.history.as_ref().is_some_and(|h| h.kept) {
            c.last_sample = Some(Instant::now());
        }
        if !report.health.reachable {
            c.client = None;
        }
        report
    }
}

/// How long the very first request waits for the first collection before it is told to retry
/// (an unreachable database takes HEALTH_CHECK_TIMEOUT to say so).
const FIRST_WAIT: Duration = Duration::from_secs(5);

/// A collection, waited for at most `limit` (`None`: no limit); the collection goes on in the
/// background when the wait ends, so the next request finds it.
async fn collect_within(s: &Arc<Shared>, limit: Option<Duration>) -> Option<Arc<Snapshot>> {
    let bg = s.clone();
    let task = tokio::spawn(async move { bg.snapshot().await });
    match limit {
        Some(l) => tokio::time::timeout(l, task).await.ok()?.ok(),
        None => task.await.ok(),
    }
}

/// The cached snapshot, stale or not; when it is stale, one background refresh is started. Only
/// the very first request (nothing cached yet) waits for a collection, [`FIRST_WAIT`] at most:
/// `None` then.
async fn cached(s: &Arc<Shared>) -> Option<Arc<Snapshot>> {
    let current = s.current.read().ok().and_then(|c| c.clone());
    let Some(snap) = current else {
        return collect_within(s, Some(FIRST_WAIT)).await;
    };
    if snap.collected_at.elapsed() >= s.interval
        && s.refreshing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    {
        let bg = s.clone();
        tokio::spawn(async move {
            bg.snapshot().await;
            bg.refreshing.store(false, Ordering::Release);
        });
    }
    Some(snap)
}

/// The answer while the first collection is still running.
fn not_yet(s: &Shared) -> Response {
    let mut r = json(
        StatusCode::SERVICE_UNAVAILABLE,
        &serde_json::json!({
            "status": "collecting",
            "reason": format!(
                "the first collection from the database has not finished within {} s (it is slow or unreachable); retry shortly",
                FIRST_WAIT.as_secs()
            ),
            "database": s.monitor.target().to_string(),
        }),
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    r
}

/// A bound, not yet running server.
pub struct Server {
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.listener.local_addr().ok())
            .finish()
    }
}

/// Binds the listener (so port-in-use errors come before anything else runs).
pub async fn bind(monitor: Monitor, opts: ServeOptions) -> Result<Server, ServeError> {
    if !opts.listen.ip().is_loopback() && opts.token.as_deref().is_none_or(str::is_empty) {
        return Err(ServeError::TokenRequired { addr: opts.listen });
    }
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: opts.listen,
            source,
        })?;
    Ok(Server {
        listener,
        shared: Arc::new(Shared {
            monitor,
            interval: opts.interval.max(Duration::from_millis(100)),
            token: opts.token.filter(|t| !t.is_empty()),
            current: RwLock::new(None),
            collector: tokio::sync::Mutex::new(Collector::default()),
            refreshing: AtomicBool::new(false),
            collections: AtomicU64::new(0),
            notifier: opts.alerts,
        }),
    })
}

impl Server {
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` completes, then lets the requests in flight finish (5 s at most).
    ///
    /// Connections are bounded so that idle or slow clients cannot starve `/healthz` (a liveness
    /// probe would then restart the container): at most [`Limits::max_connections`] are open
    /// (beyond, a new connection is closed at once, before it costs a file descriptor for long);
    /// a client must send its request headers within [`Limits::header_timeout`], or
    /// [`Limits::crowded_header_timeout`] once half the connections are taken; headers are
    /// limited to 16 KiB.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let limits = Limits::for_this_process();
        // With alert delivery, collect on a timer too: alerts must not wait for a scrape.
        let ticker = self.shared.notifier.is_some().then(|| {
            let shared = self.shared.clone();
            tokio::spawn(async move {
                loop {
                    shared.snapshot().await;
                    tokio::time::sleep(shared.interval).await;
                }
            })
        });
        let app = router(self.shared);
        let open = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (closing, closed) = tokio::sync::watch::channel(false);
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                _ = &mut shutdown => break,
                a = self.listener.accept() => a,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors (EMFILE) or a connection reset before accept:
                    // wait a little instead of spinning.
                    tracing::warn!("serve: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let now_open = open.load(Ordering::Acquire);
            if now_open >= limits.max_connections {
                drop(stream);
                continue;
            }
            let header_timeout = if now_open >= limits.max_connections / 2 {
                limits.crowded_header_timeout
            } else {
                limits.header_timeout
            };
            open.fetch_add(1, Ordering::AcqRel);
            let slot = OpenSlot(open.clone());
            let service = hyper_util::service::TowerToHyperService::new(app.clone());
            let mut closed = closed.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let _ = stream.set_nodelay(true);
                let mut builder = hyper::server::conn::http1::Builder::new();
                builder
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(header_timeout)
                    .max_buf_size(16 * 1024)
                    .keep_alive(true);
                let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                tokio::pin!(conn);
                tokio::select! {
                    _ = conn.as_mut() => {}
                    _ = closed.changed() => {
                        conn.as_mut().graceful_shutdown();
                        let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
                    }
                }
            });
        }
        if let Some(t) = ticker {
            t.abort();
        }
        let _ = closing.send(true);
        let deadline = Instant::now() + Duration::from_secs(5);
        while open.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }
}

/// How many connections `serve` keeps open and how long a client may take to send a request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub crowded_header_timeout: Duration,
}

impl Limits {
    /// From this process's open-file limit (`/proc/self/limits`; 1024 when unknown): 64 file
    /// descriptors stay for the database connection, logs and the listener; at most 1024.
    pub fn for_this_process() -> Limits {
        let files = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find(|l| l.starts_with("Max open files"))
                    .and_then(|l| l.split_whitespace().nth(3))
                    .and_then(|n| n.parse::<usize>().ok())
            })
            .unwrap_or(1024);
        Limits {
            max_connections: files.saturating_sub(64).clamp(16, 1024),
            header_timeout: Duration::from_secs(10),
            crowded_header_timeout: Duration::from_secs(1),
        }
    }
}

/// One open connection, counted until dropped.
struct OpenSlot(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for OpenSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn router(shared: Arc<Shared>) -> Router {
    let guarded = Router::new()
        .route("/", get(dashboard))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/report", get(report_json))
        .route_layer(axum::middleware::from_fn_with_state(shared.clone(), auth));
    Router::new()
        .route("/healthz", get(healthz))
        .merge(guarded)
        .layer(axum::middleware::map_response(secure_headers))
        .with_state(shared)
}

/// The dashboard's Content-Security-Policy: nothing from anywhere but its own inline styles and
/// its one script (by hash), no framing, no forms, no plug-ins.
fn content_security_policy() -> &'static str {
    static CSP: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    CSP.get_or_init(|| {
        use base64::Engine as _;
        use sha2::Digest as _;
        let hash = base64::engine::general_purpose::STANDARD
            .encode(sha2::Sha256::digest(super::dashboard::SCRIPT.as_bytes()));
        format!(
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{hash}'; img-src 'self' data:; \
             connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        )
    })
}

/// Headers on every answer: nothing is cached (each answer is the database's state now, and
/// some are behind a token), nothing sniffed or framed, no referrer leaves the page.
async fn secure_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if let Ok(v) = HeaderValue::from_str(content_security_policy()) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    r
}

/// The token a request presents: `Authorization: Bearer <token>` (Prometheus, scripts), or
/// HTTP Basic with the token as the password and any user name (what a browser sends after its
/// login prompt, on every link of the dashboard).
fn presented_token(header: Option<&HeaderValue>) -> Option<String> {
    use base64::Engine as _;
    let h = header?.to_str().ok()?.trim();
    if let Some(t) = h.strip_prefix("Bearer ") {
        return Some(t.trim().to_string());
    }
    let encoded = h
        .strip_prefix("Basic ")
        .or_else(|| h.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    text.split_once(':')
        .map(|(_, password)| password.to_string())
}

/// Constant-time comparison of the presented token.
fn token_matches(expected: &str, header: Option<&HeaderValue>) -> bool {
    let Some(given) = presented_token(header) else {
        return false;
    };
    let (a, b) = (expected.as_bytes(), given.as_bytes());
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= (*x ^ b.get(i).copied().unwrap_or(0)) as usize;
    }
    diff == 0
}

async fn auth(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    if let Some(expected) = &s.token {
        if !token_matches(expected, req.headers().get(header::AUTHORIZATION)) {
            // Two challenges: a browser shows its login prompt for Basic (password: the
            // token); scripts and Prometheus send the Bearer header.
            let mut r = (
                StatusCode::UNAUTHORIZED,
                "a token is required: send Authorization: Bearer <token>, or log in with any user name and the token as the password\n",
            )
                .into_response();
            let h = r.headers_mut();
            h.append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"pgkeel\""),
            );
            h.append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"pgkeel\", charset=\"UTF-8\""),
            );
            return r;
        }
    }
    next.run(req).await
}

fn json(status: StatusCode, v: &serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_string_pretty(v).unwrap_or_default(),
    )
        .into_response()
}

async fn healthz() -> Response {
    json(StatusCode::OK, &serde_json::json!({"status": "ok"}))
}

async fn readyz(State(s): State<Arc<Shared>>) -> Response {
    let timeout = s.monitor.settings.readiness_check_timeout;
    // READINESS_CHECK_TIMEOUT=0: no limit.
    let snap = match collect_within(&s, super::probe::limit(timeout)).await {
        Some(snap) => snap,
        None => {
            return json(
                StatusCode::SERVICE_UNAVAILABLE,
                &serde_json::json!({
                    "ready": false,
                    "reasons": [format!("no answer from the database within {} ms (READINESS_CHECK_TIMEOUT)", timeout.as_millis())],
                    "database": s.monitor.target().to_string(),
                    "checked_at": chrono::Utc::now(),
                }),
            )
        }
    };
    let r = &snap.report;
    let mut reasons = Vec::new();
    if !r.health.reachable {
        reasons.push(format!(
            "database unreachable: {}",
            r.health.error.as_deref().unwrap_or("unknown reason")
        ));
    }
    reasons.extend(r.migrations_blocking());
    let ready = reasons.is_empty();
    json(
        if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        &serde_json::json!({
            "ready": ready,
            "reasons": reasons,
            "database": r.database,
            "checked_at": r.generated_at,
        }),
    )
}

async fn metrics(State(s): State<Arc<Shared>>) -> Response {
    let Some(snap) = cached(&s).await else {
        return not_yet(&s);
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        snap.metrics.clone(),
    )
        .into_response()
}

async fn dashboard(State(s): State<Arc<Shared>>) -> Response {
    let Some(snap) = cached(&s).await else {
        return not_yet(&s);
    };
    let refresh = s.interval.as_secs().max(5);
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        super::dashboard::render(&snap.report, refresh),
    )
        .into_response()
}

async fn report_json(State(s): State<Arc<Shared>>) -> Response {
    let Some(snap) = cached(&s).await else {
        return not_yet(&s);
    };
    json(
        StatusCode::OK,
        &serde_json::to_value(&snap.report).unwrap_or_default(),
    )
}
