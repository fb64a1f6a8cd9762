//! What every subcommand needs: resolved settings, the migrations folder, a connection, and the
//! output format.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::str::FromStr;

use anyhow::Context as _;
use pgkeel::config::{self, LoadOptions, Overrides, Settings, SslMode};
use pgkeel::db::Target;
use pgkeel::source::{self, MigrationSet};
use serde::Serialize;

use crate::args::{ConfigOpts, ConnectOpts, Format, MigrationsOpts, OutputOpts, SafetyOpts};

#[derive(Debug)]
pub struct Ctx {
    pub settings: Settings,
    pub cwd: PathBuf,
    pub format: Format,
    /// Turns true on Ctrl-C / SIGTERM.
    pub interrupt: tokio::sync::watch::Receiver<bool>,
    load: LoadOptions,
}

impl Ctx {
    pub fn new(
        cfg: &ConfigOpts,
        connect: &ConnectOpts,
        migrations: &MigrationsOpts,
        output: &OutputOpts,
    ) -> anyhow::Result<Self> {
        let cwd = std::env::current_dir().context("cannot read the current directory")?;
        let sslmode = connect
            .sslmode
            .as_deref()
            .map(|s| SslMode::from_str(s).map_err(|_| anyhow::anyhow!("unknown --sslmode `{s}`: use disable, allow, prefer, require, verify-ca or verify-full")))
            .transpose()?;
        let overrides = Overrides {
            database_url: connect.database_url.clone(),
            migrations_dir: migrations.migrations.clone(),
            layout: migrations.layout,
            keep_ledger_in_step: migrations.keep_ledger_in_step,
            sslmode,
            drizzle_config: cfg.drizzle_config.clone(),
            ..Overrides::default()
        };
        let load =
            LoadOptions::from_process(cwd.clone(), cfg.config.clone(), !cfg.no_dotenv, overrides);
        let settings = config::load(&load)?;
        // Said once per command, on stderr (a reload for the flags says nothing new).
        for note in &settings.notes {
            eprintln!("warning: {note}");
        }
        Ok(Ctx {
            settings,
            cwd,
            format: output.format,
            interrupt: tokio::sync::watch::channel(false).1,
            load,
        })
    }

    pub fn with_interrupt(mut self, rx: tokio::sync::watch::Receiver<bool>) -> Self {
        self.interrupt = rx;
        self
    }

    /// Applies the lock and retry flags of schema-changing commands (the flag layer).
    pub fn with_safety(&mut self, s: &SafetyOpts) -> anyhow::Result<()> {
        let dur = |flag: &str, v: &Option<String>| -> anyhow::Result<Option<std::time::Duration>> {
            v.as_deref()
                .map(|t| {
                    pgkeel::duration::parse(t).ok_or_else(|| {
                        anyhow::anyhow!(
                            "{flag} `{t}` is not a duration: use e.g. 500ms, 5s, 2min or off"
                        )
                    })
                })
                .transpose()
        };
        let o = &mut self.load.overrides;
        o.lock_timeout = dur("--lock-timeout", &s.lock_timeout)?.or(o.lock_timeout);
        o.statement_timeout =
            dur("--statement-timeout", &s.statement_timeout)?.or(o.statement_timeout);
        o.deploy_lock_timeout = dur("--lock-wait", &s.lock_wait)?.or(o.deploy_lock_timeout);
        o.retries = s.retries.or(o.retries);
        self.settings = config::load(&self.load)?;
        Ok(())
    }

    pub fn json(&self) -> bool {
        self.format == Format::Json
    }

    /// Where reports go (`PGKEEL_REPORTS_DIR` / `reports-dir`), from the working directory: one
    /// absolute path in every command's output.
    pub fn reports_dir(&self) -> PathBuf {
        self.cwd.join(&self.settings.reports_dir)
    }

    /// Writes a report with `write`; a failure (a read-only directory) is a warning on stderr,
    /// not the command's failure: its results are still printed and its exit code stays the
    /// findings'.
    pub fn save_report(
        &self,
        write: impl FnOnce(&std::path::Path) -> Result<PathBuf, pgkeel::report::ReportError>,
    ) -> Option<PathBuf> {
        match write(&self.reports_dir()) {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("warning: the report was not written: {e}");
                None
            }
        }
    }

    /// The target database when one is configured (a URL or `PGHOST`), for commands that only
    /// use it when it is there.
    pub fn configured_target(&self) -> Option<pgkeel::db::Target> {
        if self.settings.database_url.is_none() && self.settings.pg.host.is_none() {
            return None;
        }
        self.target().ok()
    }

    pub fn migrations_dir(&self) -> PathBuf {
        let dir = source::resolve_dir(self.settings.migrations_dir.as_deref(), &self.cwd);
        if dir.is_absolute() {
            dir
        } else {
            self.cwd.join(dir)
        }
    }

    pub fn load_set(&self) -> Result<MigrationSet, source::SourceError> {
        source::load_as(&self.migrations_dir(), self.settings.layout)
    }

    pub fn target(&self) -> Result<Target, pgkeel::db::DbError> {
        Target::from_settings(&self.settings)
    }

    pub async fn connect(&self) -> Result<(Target, pgkeel::db::Client), pgkeel::db::DbError> {
        let target = self.target()?;
        let client = target.connect().await?;
        Ok((target, client))
    }

    /// Prints one JSON document on stdout.
    /// [`Ctx::print_json`] of `value` (an object) with `"ok"` set: every JSON document says
    /// whether the command succeeded, as its exit code does.
    pub fn print_json_ok(&self, ok: bool, value: &impl Serialize) -> anyhow::Result<()> {
        let mut v = serde_json::to_value(value)?;
        if let Some(o) = v.as_object_mut() {
            o.insert("ok".into(), serde_json::Value::Bool(ok));
        }
        self.print_json(&v)
    }

    pub fn print_json(&self, value: &impl Serialize) -> anyhow::Result<()> {
        // Rendered first: serde_json writes token by token; a closed pipe is not an error.
        let text = serde_json::to_string_pretty(value)?;
        if !crate::printer::closed() {
            let mut out = std::io::stdout().lock();
            crate::printer::note(
                out.write_all(text.as_bytes())
                    .and_then(|()| out.write_all(b"\n"))
                    .and_then(|()| out.flush()),
            );
        }
        Ok(())
    }

    /// The process environment the settings were loaded from (`url-env` of a targets file is
    /// looked up here).
    pub fn env(&self) -> &std::collections::HashMap<String, String> {
        &self.load.env
    }

    pub fn stderr_is_tty() -> bool {
        std::io::stderr().is_terminal()
    }
}
