//! `monitor::serve` over real HTTP and a real PostgreSQL: readiness follows migrations,
//! `/metrics` passes `promtool check metrics` and is collected once per interval, the token
//! guards non-loopback binds, a taken port is a clear error, and headless Chromium renders the
//! dashboard's charts.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pgkeel::config::Settings;
use pgkeel::migrate::{MigrateOptions, Migrator, Silent};
use pgkeel::monitor::{serve, Monitor, Sections, ServeError, ServeOptions};
use pgkeel::source;
use support::{native, TestDb};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/cfi-handbook/drizzle")
}

struct Running {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), ServeError>>,
}

impl Running {
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap().unwrap();
    }
}

async fn start(
    settings: &Settings,
    dir: &Path,
    interval: Duration,
    token: Option<&str>,
    listen: &str,
) -> Running {
    let monitor = Monitor::new(settings, dir.to_path_buf()).unwrap();
    let server = serve::bind(
        monitor,
        ServeOptions {
            listen: listen.parse().unwrap(),
            token: token.map(str::to_string),
            interval,
            alerts: None,
        },
    )
    .await
    .unwrap();
    let addr = server.local_addr();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = rx.await;
    }));
    Running {
        addr,
        stop: Some(tx),
        task,
    }
}

/// A plain HTTP/1.1 GET; returns the status and the body.
async fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> (u16, String) {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let (status, _, body) = get_raw(addr, path, &auth).await;
    (status, body)
}

async fn migrate_all(settings: &Settings, dir: &Path, client: &tokio_postgres::Client) {
    let set = source::load(dir).unwrap();
    Migrator::new(settings, &set)
        .migrate(client, &MigrateOptions::default(), &mut Silent)
        .await
        .unwrap();
}

#[tokio::test]
async fn readyz_flips_from_503_to_200_when_pending_migrations_are_applied() {
    let db = TestDb::new("serve_ready").await;
    let dir = native(&[
        ("0001_users.sql", "CREATE TABLE users (id int PRIMARY KEY);"),
        ("0002_posts.sql", "CREATE TABLE posts (id int PRIMARY KEY);"),
    ]);
    let settings = db.settings();
    let srv = start(
        &settings,
        dir.path(),
        Duration::from_millis(200),
        None,
        "127.0.0.1:0",
    )
    .await;

    let (status, body) = get(srv.addr, "/readyz", None).await;
    assert_eq!(status, 503, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["ready"], false);
    assert_eq!(v["reasons"][0], "pending: 0001_users");
    assert_eq!(v["reasons"][1], "pending: 0002_posts");
    // Liveness does not depend on the database.
    assert_eq!(get(srv.addr, "/healthz", None).await.0, 200);

    migrate_all(&settings, dir.path(), &db.client().await).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, body) = get(srv.addr, "/readyz", None).await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["ready"], true);
    assert_eq!(v["reasons"].as_array().unwrap().len(), 0);
    srv.stop().await;
}

#[tokio::test]
async fn readyz_is_503_with_the_reason_when_the_database_is_down() {
    let mut settings = support::settings_for("postgresql://postgres:s3cret@127.0.0.1:1/postgres");
    settings.health_check_timeout = Duration::from_secs(2);
    let dir = native(&[]);
    let srv = start(
        &settings,
        dir.path(),
        Duration::from_secs(5),
        None,
        "127.0.0.1:0",
    )
    .await;
    let (status, body) = get(srv.addr, "/readyz", None).await;
    assert_eq!(status, 503);
    assert!(body.contains("database unreachable"), "{body}");
    assert!(!body.contains("s3cret"), "{body}");
    let (status, metrics) = get(srv.addr, "/metrics", None).await;
    assert_eq!(status, 200);
    assert!(metrics.contains("\npgkeel_up 0\n"), "{metrics}");
    assert!(
        metrics.contains("pgkeel_alerts{severity=\"critical\"} 1"),
        "{metrics}"
    );
    let (_, page) = get(srv.addr, "/", None).await;
    assert!(page.contains("unreachable") && !page.contains("s3cret"));
    srv.stop().await;
}

#[tokio::test]
async fn metrics_pass_promtool_and_are_collected_once_per_interval() {
    let db = TestDb::new("serve_metrics").await;
    let settings = db.settings();
    migrate_all(&settings, &example_dir(), &db.client().await).await;
    let srv = start(
        &settings,
        &example_dir(),
        Duration::from_secs(60),
        None,
        "127.0.0.1:0",
    )
    .await;

    // Twenty concurrent scrapes, then more: one collection serves them all.
    let scrapes: Vec<_> = (0..20)
        .map(|_| tokio::spawn(get(srv.addr, "/metrics", None)))
        .collect();
    let mut bodies = Vec::new();
    for s in scrapes {
        let (status, body) = s.await.unwrap();
        assert_eq!(status, 200);
        bodies.push(body);
    }
    for _ in 0..10 {
        bodies.push(get(srv.addr, "/metrics", None).await.1);
    }
    let body = bodies.pop().unwrap();
    assert!(
        bodies.iter().all(|b| *b == body),
        "every scrape got the cached text"
    );
    assert!(body.contains("\npgkeel_collections_total 1\n"), "{body}");
    for needle in [
        "\npgkeel_up 1\n",
        "\npgkeel_migrations_pending 0\n",
        "\npgkeel_migrations_applied 5\n",
        "\npgkeel_migrations_failed 0\n",
        "pgkeel_connections{state=\"active\"}",
        "\npgkeel_database_size_bytes ",
        "pgkeel_transactions_total{result=\"commit\"}",
        "# TYPE pgkeel_deadlocks_total counter",
    ] {
        assert!(body.contains(needle), "missing {needle:?} in\n{body}");
    }

    // The families and their types are an interface (dashboards and alert rules use them).
    let families: Vec<&str> = body.lines().filter(|l| l.starts_with("# TYPE")).collect();
    insta::assert_snapshot!("metric_families", families.join("\n"));

    let mut child = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is installed (Debian package prometheus; scripts/setup.sh)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .await
        .unwrap();
    let out = child.wait_with_output().await.unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool: {said}\n{body}");
    assert!(said.trim().is_empty(), "promtool lint: {said}");

    // The shipped alerting rules and Grafana dashboard parse, and name only metrics that exist.
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs");
    let rules = docs.join("prometheus/pgkeel-rules.yml");
    let out = tokio::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let dashboard = std::fs::read_to_string(docs.join("grafana/pgkeel-dashboard.json")).unwrap();
    serde_json::from_str::<serde_json::Value>(&dashboard).expect("the dashboard is JSON");
    let known: Vec<&str> = families
        .iter()
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    for text in [std::fs::read_to_string(&rules).unwrap(), dashboard] {
        for name in metric_names(&text) {
            assert!(
                known.contains(&name.as_str()),
                "{name} is not a metric of /metrics"
            );
        }
    }
    srv.stop().await;
}

/// The `pgkeel_*` metric names a rules file or dashboard uses.
fn metric_names(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("pgkeel_") {
        let name: String = rest[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        // Not a metric: the rules group and the dashboard's uid.
        if name != "pgkeel_" && !out.contains(&name) {
            out.push(name.clone());
        }
        rest = &rest[i + name.len().max(1)..];
    }
    out
}

#[tokio::test]
async fn a_stale_cache_answers_at_once_and_is_refreshed_in_the_background() {
    let db = TestDb::new("serve_stale").await;
    let settings = db.settings();
    migrate_all(&settings, &example_dir(), &db.client().await).await;
    let srv = start(
        &settings,
        &example_dir(),
        Duration::from_millis(300),
        None,
        "127.0.0.1:0",
    )
    .await;
    let count = |body: &str| -> u64 {
        body.lines()
            .find_map(|l| l.strip_prefix("pgkeel_collections_total "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no pgkeel_collections_total in\n{body}"))
    };
    let (status, body) = get(srv.addr, "/metrics", None).await;
    assert_eq!(status, 200);
    assert_eq!(count(&body), 1);
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Stale now: served as it is (still collection 1) while the refresh starts.
    let (_, body) = get(srv.addr, "/metrics", None).await;
    assert_eq!(count(&body), 1, "the stale snapshot is served at once");
    let mut refreshed = 0;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        refreshed = count(&get(srv.addr, "/metrics", None).await.1);
        if refreshed >= 2 {
            break;
        }
    }
    assert!(refreshed >= 2, "the background refresh never landed");
    // /readyz never answers from a stale cache: it waits for a fresh collection.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(get(srv.addr, "/readyz", None).await.0, 200);
    srv.stop().await;
}

#[tokio::test]
async fn a_taken_port_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let monitor = Monitor::new(
        &support::settings_for(&support::admin_url()),
        PathBuf::from("m"),
    )
    .unwrap();
    let err = serve::bind(
        monitor,
        ServeOptions {
            listen: addr,
            token: None,
            interval: Duration::from_secs(5),
            alerts: None,
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ServeError::Bind { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains(&addr.to_string()) && msg.contains("another process already uses that port"),
        "{msg}"
    );
}

#[tokio::test]
async fn non_loopback_binds_need_a_token_that_then_guards_all_but_healthz() {
    let settings = support::settings_for(&support::admin_url());
    let monitor = Monitor::new(&settings, PathBuf::from("m")).unwrap();
    let err = serve::bind(
        monitor,
        ServeOptions {
            listen: "0.0.0.0:0".parse().unwrap(),
            token: None,
            interval: Duration::from_secs(5),
            alerts: None,
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ServeError::TokenRequired { .. }), "{err}");
    assert!(err.to_string().contains("--token-env"));

    let dir = native(&[]);
    let srv = start(
        &settings,
        dir.path(),
        Duration::from_secs(5),
        Some("t0ken"),
        "0.0.0.0:0",
    )
    .await;
    assert_eq!(get(srv.addr, "/healthz", None).await.0, 200);
    for path in ["/metrics", "/readyz", "/", "/api/report"] {
        assert_eq!(get(srv.addr, path, None).await.0, 401, "{path}");
        assert_eq!(get(srv.addr, path, Some("wrong")).await.0, 401, "{path}");
    }
    assert_eq!(get(srv.addr, "/metrics", Some("t0ken")).await.0, 200);
    srv.stop().await;
}

fn png_size(png: &[u8]) -> (u32, u32) {
    assert_eq!(&png[1..4], b"PNG", "a PNG file");
    let w = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(png[20..24].try_into().unwrap());
    (w, h)
}

async fn chromium(args: &[String]) -> std::process::Output {
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new("chromium");
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .args(args)
    .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(90), cmd.output())
        .await
        .expect("chromium finished within 90 s")
        .expect("chromium is installed (Debian package chromium; scripts/setup.sh)");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The number in `attr="N"` inside the element with `id`.
fn attr_of(dom: &str, id: &str, attr: &str) -> Option<i64> {
    let start = dom.find(&format!("id=\"{id}\""))?;
    let tag_start = dom[..start].rfind('<')?;
    let tag_end = start + dom[start..].find('>')?;
    let tag = &dom[tag_start..tag_end];
    let at = tag.find(&format!("{attr}=\""))? + attr.len() + 2;
    tag[at..].split('"').next()?.parse().ok()
}

#[tokio::test]
async fn dashboard_charts_render_in_headless_chromium() {
    let db = TestDb::new("serve_dash").await;
    let settings = db.settings();
    let client = db.client().await;
    migrate_all(&settings, &example_dir(), &client).await;
    // One real sample creates the history table; six more spread over the last three days.
    let monitor = Monitor::new(&settings, example_dir()).unwrap();
    let first = monitor.run(Sections::ALL).await;
    assert!(first.history.as_ref().unwrap().kept);
    client
        .batch_execute(
            "INSERT INTO __pgkeel_monitor_history (at, database_size_bytes, connections)
             SELECT now() - make_interval(hours => 12 * i), 7000000 - i * 150000, 3 + i % 3
               FROM generate_series(1, 6) i",
        )
        .await
        .unwrap();
    // With a token, as a dashboard reachable from elsewhere must have: the browser logs in with
    // HTTP Basic (any user, the token as password), and the page's script still runs under the
    // strict Content-Security-Policy (it sets data-rendered-width, read below).
    let token = "dash-token-7f3a";
    let srv = start(
        &settings,
        &example_dir(),
        Duration::from_secs(60),
        Some(token),
        "127.0.0.1:0",
    )
    .await;
    let port = srv.addr.port();
    let denied = chromium(&["--dump-dom".into(), format!("http://127.0.0.1:{port}/")]).await;
    let denied = String::from_utf8_lossy(&denied.stdout).to_string();
    assert!(
        !denied.contains("chart-size"),
        "no dashboard without the token: {denied}"
    );
    let url = format!("http://ops:{token}@127.0.0.1:{port}/");

    let out = chromium(&["--dump-dom".into(), url.clone()]).await;
    let dom = String::from_utf8_lossy(&out.stdout).to_string();
    for chart in ["chart-size", "chart-connections"] {
        let width = attr_of(&dom, chart, "data-rendered-width")
            .unwrap_or_else(|| panic!("{chart} was not laid out by the browser:\n{dom}"));
        assert!(width > 300, "{chart} line is {width}px wide");
    }
    // Eight samples (the real one, six inserted, the server's own) → eight points per chart.
    let points = dom.matches("class=\"point\"").count();
    assert_eq!(points, 2 * 8, "{dom}");
    assert!(dom.contains("id=\"alerts\"") && dom.contains("id=\"migrations\""));
    assert_eq!(dom.matches("class=\"mig applied\"").count(), 5);
    assert!(dom.contains("growth"), "growth card once samples span days");

    let shots = tempfile::tempdir().unwrap();
    let png = shots.path().join("dashboard.png");
    chromium(&[
        format!("--screenshot={}", png.display()),
        "--window-size=1280,1000".into(),
        "--hide-scrollbars".into(),
        url,
    ])
    .await;
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(png_size(&bytes), (1280, 1000));
    // A blank page compresses to a few kB; charts, cards and text do not.
    assert!(
        bytes.len() > 30_000,
        "screenshot is only {} bytes",
        bytes.len()
    );
    srv.stop().await;
}

/// A GET with raw request headers; returns the status line, the response headers (lowercased
/// names) and the body.
async fn get_raw(
    addr: SocketAddr,
    path: &str,
    headers: &str,
) -> (u16, Vec<(String, String)>, String) {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", addr.port()))
        .await
        .unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{headers}Connection: close\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let hs = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, hs, body.to_string())
}

#[tokio::test]
async fn every_answer_is_uncached_unframed_and_the_token_also_works_as_a_basic_password() {
    let db = TestDb::new("serve_headers").await;
    let settings = db.settings();
    let srv = start(
        &settings,
        &example_dir(),
        Duration::from_secs(60),
        Some("s3cr3t-token"),
        "127.0.0.1:0",
    )
    .await;
    let header = |hs: &[(String, String)], name: &str| {
        hs.iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect::<Vec<_>>()
    };
    // Without credentials: 401 with both challenges, so a browser offers its login prompt.
    let (status, hs, _) = get_raw(srv.addr, "/", "").await;
    assert_eq!(status, 401);
    let challenges = header(&hs, "www-authenticate");
    assert!(
        challenges.iter().any(|c| c.starts_with("Basic")),
        "{challenges:?}"
    );
    assert!(
        challenges.iter().any(|c| c.starts_with("Bearer")),
        "{challenges:?}"
    );
    // Basic with any user and the token as password: the dashboard.
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode("anyone:s3cr3t-token");
    let (status, hs, body) =
        get_raw(srv.addr, "/", &format!("Authorization: Basic {basic}\r\n")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("pgkeel monitor"));
    let csp = header(&hs, "content-security-policy").join("");
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'sha256-"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    let wrong = base64::engine::general_purpose::STANDARD.encode("anyone:s3cr3t-tokeN");
    let (status, _, _) = get_raw(srv.addr, "/", &format!("Authorization: Basic {wrong}\r\n")).await;
    assert_eq!(status, 401);
    // Every endpoint, /healthz and the 401 included: no-store, nosniff, DENY.
    for (path, auth) in [
        ("/healthz", String::new()),
        (
            "/metrics",
            "Authorization: Bearer s3cr3t-token\r\n".to_string(),
        ),
        ("/api/report", String::new()),
    ] {
        let (_, hs, _) = get_raw(srv.addr, path, &auth).await;
        assert_eq!(header(&hs, "cache-control"), ["no-store"], "{path}");
        assert_eq!(header(&hs, "x-content-type-options"), ["nosniff"], "{path}");
        assert_eq!(header(&hs, "x-frame-options"), ["DENY"], "{path}");
    }
    srv.stop().await;
}

#[tokio::test]
async fn listen_takes_host_names_and_the_platforms_port() {
    let local = serve::listen_address(Some("localhost:9187"), None)
        .await
        .unwrap();
    assert!(local.ip().is_loopback() && local.port() == 9187, "{local}");
    let v6 = serve::listen_address(Some("[::1]:80"), None).await.unwrap();
    assert_eq!(v6.to_string(), "[::1]:80");
    // PORT (Railway, Render, Heroku) when --listen is not given; --listen wins over it.
    let port = serve::listen_address(None, Some("8080")).await.unwrap();
    assert_eq!(port.to_string(), "0.0.0.0:8080");
    let given = serve::listen_address(Some("127.0.0.1:7000"), Some("8080"))
        .await
        .unwrap();
    assert_eq!(given.port(), 7000);
    let default = serve::listen_address(None, None).await.unwrap();
    assert_eq!(default.to_string(), "127.0.0.1:9187");
    for bad in ["localhost", "9187", ":9187", "no-such-host.invalid:9187"] {
        let err = serve::listen_address(Some(bad), None).await.unwrap_err();
        assert!(err.to_string().contains("HOST:PORT"), "{bad}: {err}");
    }
    assert!(serve::listen_address(None, Some("http")).await.is_err());
}

#[tokio::test]
async fn a_hanging_database_never_holds_the_first_request_and_readyz_keeps_its_fields() {
    // A "server" that accepts and never answers: the connection hangs for HEALTH_CHECK_TIMEOUT.
    let hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = hole.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut keep = Vec::new();
        while let Ok((s, _)) = hole.accept().await {
            keep.push(s);
        }
    });
    let mut settings = support::settings_for(&format!(
        "postgresql://postgres:s3cret@127.0.0.1:{port}/postgres"
    ));
    settings.health_check_timeout = Duration::from_secs(30);
    settings.connect_timeout = Duration::from_secs(30);
    settings.readiness_check_timeout = Duration::from_secs(2);
    let dir = native(&[]);
    let srv = start(
        &settings,
        dir.path(),
        Duration::from_secs(5),
        None,
        "127.0.0.1:0",
    )
    .await;
    let started = std::time::Instant::now();
    let (status, body) = get(srv.addr, "/metrics", None).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the first request waited {:?}",
        started.elapsed()
    );
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("collecting"), "{body}");
    let (status, body) = get(srv.addr, "/readyz", None).await;
    assert_eq!(status, 503);
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["ready"], false);
    assert!(
        doc["database"].as_str().unwrap().contains("127.0.0.1"),
        "{doc}"
    );
    assert!(!body.contains("s3cret"), "{body}");
    assert!(doc["checked_at"].is_string(), "{doc}");
    held.abort();
    srv.stop().await;
}
