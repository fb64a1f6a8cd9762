//! `pgkeel serve`: health and readiness checks, Prometheus metrics and the dashboard over HTTP
//! (the library's `monitor::serve`), until Ctrl-C / SIGTERM.

use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use pgkeel::monitor::{serve, Monitor, ServeOptions};

use crate::ctx::Ctx;
use crate::exit_codes;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on: HOST:PORT, a host name (localhost:9187) or an address
    /// ([::]:9187). Default 127.0.0.1:9187, or 0.0.0.0:$PORT when the platform sets PORT
    /// (Railway, Render, Heroku). Any address but loopback needs --token-env.
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: Option<String>,
    /// Name of an environment variable holding a token; every endpoint but /healthz then
    /// requires it: `Authorization: Bearer <token>` (Prometheus: `authorization: {credentials:
    /// …}`), or, in a browser, the login prompt with any user name and the token as password.
    #[arg(long, value_name = "VAR")]
    pub token_env: Option<String>,
    /// Collect from the database at most once per this many seconds, however often /metrics,
    /// /readyz or the dashboard are requested.
    #[arg(long, value_name = "SECONDS", default_value_t = 15)]
    pub interval: u64,
}

pub async fn run(ctx: Ctx, args: ServeArgs) -> anyhow::Result<i32> {
    let token = match &args.token_env {
        Some(var) => Some(std::env::var(var).with_context(|| {
            format!("--token-env {var}: the variable is not set (or not UTF-8); export it with the token")
        })?),
        None => None,
    };
    let listen = serve::listen_address(
        args.listen.as_deref(),
        std::env::var("PORT").ok().as_deref(),
    )
    .await?;
    let monitor = Monitor::new(&ctx.settings, ctx.migrations_dir())?;
    let db = monitor.target().to_string();
    let alerts = pgkeel::monitor::notify::Notifier::new(
        pgkeel::monitor::notify::AlertTargets::from_env()?,
        db.clone(),
    );
    let server = serve::bind(
        monitor,
        ServeOptions {
            listen,
            token,
            interval: Duration::from_secs(args.interval.max(1)),
            alerts,
        },
    )
    .await?;
    let addr = server.local_addr();
    eprintln!("serving {db} on http://{addr}/  (dashboard; also /metrics, /readyz, /healthz, /api/report)");
    eprintln!(
        "collecting at most every {} s; Ctrl-C stops",
        args.interval.max(1)
    );
    let mut stop = ctx.interrupt.clone();
    server
        .run(async move {
            let _ = stop.changed().await;
        })
        .await?;
    Ok(exit_codes::SUCCESS)
}
