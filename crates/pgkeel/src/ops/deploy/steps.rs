//! The steps of a deploy, in order, each recorded in the report with its status and duration;
//! the first failure stops the run and says what kind of failure it was.

use super::*;

impl<O: DeployObserver> Run<'_, O> {
    pub(super) fn begin(&mut self, name: &'static str) {
        self.clock = Instant::now();
        self.obs.step_start(name);
    }

    pub(super) fn end(
        &mut self,
        name: &'static str,
        status: StepStatus,
        summary: impl Into<String>,
        detail: serde_json::Value,
    ) {
        let step = Step {
            name,
            status,
            duration_ms: self.clock.elapsed().as_millis() as u64,
            summary: summary.into(),
            detail,
        };
        self.obs.step_done(&step);
        self.report.steps.push(step);
    }

    /// Records the failure of step `name`; the caller stops.
    pub(super) fn fail(&mut self, name: &'static str, kind: FailureKind, message: String) {
        self.end(
            name,
            StepStatus::Failed,
            message.lines().next().unwrap_or_default().to_string(),
            serde_json::Value::Null,
        );
        self.report.failure = Some(Failure {
            step: name,
            kind,
            message,
        });
    }

    pub(super) fn interrupted(&mut self, next: &'static str) -> bool {
        let stop = self.interrupt.as_ref().is_some_and(|rx| *rx.borrow());
        if stop {
            self.begin(next);
            self.fail(
                next,
                FailureKind::Interrupted,
                format!("interrupted before {next}: nothing of it was done"),
            );
        }
        stop
    }

    pub(super) async fn steps(&mut self) {
        // 1. connect
        self.begin("connect");
        let target = match Target::from_settings(self.settings) {
            Ok(t) => t,
            Err(e) => return self.fail("connect", db_kind(&e), chain(&e)),
        };
        let client = match target.connect().await {
            Ok(c) => c,
            Err(e) => return self.fail("connect", db_kind(&e), chain(&e)),
        };
        let version = match crate::db::server_version_num(&client).await {
            Ok(v) => v,
            Err(e) => return self.fail("connect", db_kind(&e), chain(&e)),
        };
        self.end(
            "connect",
            StepStatus::Ok,
            format!("{target} answers (server_version_num {version})"),
            serde_json::json!({ "server_version_num": version }),
        );

        // 2. check-migrations
        if self.interrupted("check-migrations") {
            return;
        }
        self.begin("check-migrations");
        let migrator = {
            let m = Migrator::new(self.settings, self.set);
            match &self.interrupt {
                Some(rx) => m.with_interrupt(rx.clone()),
                None => m,
            }
        };
        let plan = match migrator.plan(&client).await {
            Ok(p) => p,
            Err(e) => return self.fail("check-migrations", migrate_kind(&e), chain(&e)),
        };
        let mut problems = migrate::check_folder(self.set);
        problems.extend(migrate::check_plan(&plan));
        if self.opts.retry_failed {
            // A failed or interrupted earlier deploy must not block every later one: the
            // migration is in what this deploy applies (after its backup in production).
            for p in problems.iter_mut().filter(|p| p.kind == "failed") {
                p.severity = Severity::Warning;
                p.message = format!(
                    "{}; this deploy retries it{}",
                    p.message,
                    if self.opts.backup {
                        " after the backup"
                    } else {
                        ""
                    }
                );
            }
        }
        let blocking: Vec<&migrate::Problem> = problems
            .iter()
            .filter(|p| p.severity >= Severity::Critical)
            .collect();
        if !blocking.is_empty() {
            let lines: Vec<String> = blocking.iter().map(|p| p.message.clone()).collect();
            return self.fail(
                "check-migrations",
                FailureKind::Findings,
                format!(
                    "{} problem(s) with the migrations; `pgkeel migrate validate` shows them: {}",
                    lines.len(),
                    lines.join("; ")
                ),
            );
        }
        let pending: Vec<&crate::source::Migration> =
            plan.pending(self.set).map(|(_, m)| m).collect();
        let warnings = problems.len();
        self.end(
            "check-migrations",
            if warnings > 0 {
                StepStatus::Warning
            } else {
                StepStatus::Ok
            },
            format!(
                "{} applied, {} pending{}",
                plan.counts.applied,
                pending.len(),
                if warnings > 0 {
                    format!(", {warnings} warning(s)")
                } else {
                    String::new()
                }
            ),
            serde_json::json!({ "counts": plan.counts, "problems": problems }),
        );

        // 3. lint the pending files
        if self.interrupted("lint") {
            return;
        }
        self.begin("lint");
        let lint_opts = LintOptions {
            pg_version: if version == 0 {
                LintOptions::default().pg_version
            } else {
                version
            },
            lock_timeout_disabled: self.settings.lock_timeout.is_zero(),
            rollback_file: false,
            needs_rollback: false,
        };
        let pending_ids: HashSet<&str> = pending.iter().map(|m| m.id.as_str()).collect();
        let pending_set = MigrationSet {
            migrations: self
                .set
                .migrations
                .iter()
                .filter(|m| pending_ids.contains(m.id.as_str()))
                .cloned()
                .collect(),
            ..self.set.clone()
        };
        let files = lint::lint_set(&pending_set, &lint_opts);
        let violations: Vec<(String, &lint::Violation)> = files
            .iter()
            .flat_map(|f| {
                f.violations
                    .iter()
                    .map(move |v| (f.path.display().to_string(), v))
            })
            .collect();
        let syntax: Vec<String> = files
            .iter()
            .filter_map(|f| {
                f.syntax_error
                    .as_ref()
                    .map(|e| format!("{}: {e}", f.path.display()))
            })
            .collect();
        let errors = violations
            .iter()
            .filter(|(_, v)| v.severity >= Severity::Critical)
            .count();
        let detail = serde_json::json!({
            "files": files.len(),
            "violations": violations.iter().map(|(_, v)| v).collect::<Vec<_>>(),
            "syntax_errors": syntax,
        });
        let stops = !syntax.is_empty()
            || self
                .opts
                .lint_fail_on
                .is_some_and(|at| violations.iter().any(|(_, v)| v.severity >= at));
        if stops {
            let first: Vec<String> = violations
                .iter()
                .filter(|(_, v)| self.opts.lint_fail_on.is_some_and(|at| v.severity >= at))
                .take(3)
                .map(|(p, v)| format!("{p}:{}: {} ({})", v.location.line, v.message, v.rule))
                .chain(syntax.iter().cloned())
                .collect();
            self.fail(
                "lint",
                FailureKind::Findings,
                format!(
                    "lint stops the {} deploy: {}; run `pgkeel lint` for the details, fix the file or add a reasoned `-- pgkeel:ignore RULE reason`",
                    self.opts.environment,
                    first.join("; ")
                ),
            );
            if let Some(s) = self.report.steps.last_mut() {
                s.detail = detail;
            }
            return;
        }
        self.end(
            "lint",
            if violations.is_empty() {
                StepStatus::Ok
            } else {
                StepStatus::Warning
            },
            format!(
                "{} pending migration(s), {} file(s): {} error(s), {} other finding(s){}",
                pending_set.migrations.len(),
                files.len(),
                errors,
                violations.len() - errors,
                if errors > 0 {
                    format!(" (not fatal in {})", self.opts.environment)
                } else {
                    String::new()
                }
            ),
            detail,
        );

        // 4. validate-before: drift, baseline findings, performance snapshot
        if self.interrupted("validate-before") {
            return;
        }
        self.begin("validate-before");
        let vopts = self.validate_options();
        let before = match validate::run(&target, self.settings, Some(self.set), &vopts).await {
            Ok(r) => r,
            Err(e) => return self.fail("validate-before", validate_kind(&e), chain(&e)),
        };
        let drift: Vec<&Finding> = before.findings.iter().filter(|f| is_drift(f)).collect();
        let schema_unchecked = schema_not_checked(&before);
        let perf_before = self.performance_snapshot().await;
        let detail = serde_json::json!({
            "counts": before.counts,
            "drift": drift,
            "schema_check": schema_unchecked,
        });
        if !drift.is_empty() && !self.opts.allow_drift {
            let objects: Vec<&str> = drift.iter().take(5).map(|f| f.object.as_str()).collect();
            self.fail(
                "validate-before",
                FailureKind::Findings,
                format!(
                    "the database drifted from the migrations folder before migrating ({} difference(s): {}{}); `pgkeel validate --schema` shows each with its fix; deploy with --allow-drift to go on anyway",
                    drift.len(),
                    objects.join(", "),
                    if drift.len() > objects.len() { ", …" } else { "" }
                ),
            );
            if let Some(s) = self.report.steps.last_mut() {
                s.detail = detail;
            }
            return;
        }
        let status = if drift.is_empty() && schema_unchecked.is_none() {
            StepStatus::Ok
        } else {
            StepStatus::Warning
        };
        let mut summary = format!(
            "{} critical, {} warning, {} info finding(s) before migrating",
            before.counts.critical, before.counts.warning, before.counts.info
        );
        if !drift.is_empty() {
            summary.push_str(&format!("; {} drift(s) allowed", drift.len()));
        }
        if let Some(why) = &schema_unchecked {
            summary.push_str(&format!("; drift not checked: {why}"));
        }
        if !self.opts.drift_check {
            summary.push_str("; drift not checked (tenant schema)");
        }
        self.end("validate-before", status, summary, detail);

        // 5. backup
        if self.interrupted("backup") {
            return;
        }
        self.begin("backup");
        if !self.opts.backup {
            self.end(
                "backup",
                StepStatus::Skipped,
                format!("off for {} (--backup turns it on)", self.opts.environment),
                serde_json::Value::Null,
            );
        } else if pending.is_empty() {
            self.end(
                "backup",
                StepStatus::Skipped,
                "nothing pending: no backup needed",
                serde_json::Value::Null,
            );
        } else {
            match self.backup().await {
                Ok(b) => {
                    let summary = format!(
                        "{} ({} bytes stored, checksums verified) in {}",
                        b.name,
                        b.stored_bytes,
                        b.path.display()
                    );
                    self.report.backup = Some(b);
                    self.end("backup", StepStatus::Ok, summary, serde_json::Value::Null);
                }
                Err((kind, message)) => {
                    return self.fail("backup", kind, format!("{message}; nothing was migrated"))
                }
            }
        }

        // 6. migrate
        if self.interrupted("migrate") {
            return;
        }
        self.begin("migrate");
        match migrator
            .migrate(&client, &self.opts.migrate, &mut *self.obs)
            .await
        {
            Ok(m) => {
                self.report.applied = m.applied.iter().map(|a| a.id.clone()).collect();
                let summary = if m.applied.is_empty() {
                    format!("nothing to do: {} already applied", m.already_applied)
                } else {
                    format!(
                        "applied {} migration(s): {}",
                        m.applied.len(),
                        self.report.applied.join(", ")
                    )
                };
                self.report.migrate = Some(m);
                self.end("migrate", StepStatus::Ok, summary, serde_json::Value::Null);
            }
            Err(e) => {
                if let MigrateError::Failed { applied_before, .. } = &e {
                    self.report.applied = applied_before.clone();
                }
                return self.fail("migrate", migrate_kind(&e), chain(&e));
            }
        }

        // 7. validate-after
        if self.interrupted("validate-after") {
            return;
        }
        self.begin("validate-after");
        let after = match validate::run(&target, self.settings, Some(self.set), &vopts).await {
            Ok(r) => r,
            Err(e) => return self.fail("validate-after", validate_kind(&e), chain(&e)),
        };
        let known: HashSet<_> = before.findings.iter().map(key).collect();
        let now: HashSet<_> = after.findings.iter().map(key).collect();
        let new: Vec<Finding> = after
            .findings
            .iter()
            .filter(|f| !known.contains(&key(f)))
            .cloned()
            .collect();
        self.report.resolved_findings = before
            .findings
            .iter()
            .filter(|f| !now.contains(&key(f)))
            .count();
        // Drift the deploy was allowed to start with is not the deploy's fault.
        let new_drift: Vec<&Finding> = new.iter().filter(|f| is_drift(f)).collect();
        let new_critical: Vec<&Finding> = new
            .iter()
            .filter(|f| f.severity >= Severity::Critical && !is_drift(f))
            .collect();
        let counts = SeverityCounts::of(&new);
        let detail = serde_json::json!({ "counts": after.counts, "new": counts });
        let failure = if !new_drift.is_empty() {
            Some(format!(
                "after migrating, the schema differs from the migrations folder ({} difference(s): {}); a migration did not do what its file says, or something changed the schema meanwhile; `pgkeel validate --schema` shows the fix",
                new_drift.len(),
                new_drift.iter().take(5).map(|f| f.object.as_str()).collect::<Vec<_>>().join(", ")
            ))
        } else if !new_critical.is_empty() {
            Some(format!(
                "{} new critical finding(s) after migrating: {}",
                new_critical.len(),
                new_critical
                    .iter()
                    .take(3)
                    .map(|f| format!("{} ({})", f.message, f.id))
                    .collect::<Vec<_>>()
                    .join("; ")
            ))
        } else {
            None
        };
        self.report.new_findings = new;
        if let Some(message) = failure {
            self.fail("validate-after", FailureKind::PostCheck, message);
            if let Some(s) = self.report.steps.last_mut() {
                s.detail = detail;
            }
        } else {
            self.end(
                "validate-after",
                if counts.warning + counts.critical > 0 {
                    StepStatus::Warning
                } else {
                    StepStatus::Ok
                },
                format!(
                    "{}{} new finding(s) ({} warning), {} resolved",
                    if self.opts.drift_check {
                        "schema matches the folder; "
                    } else {
                        ""
                    },
                    self.report.new_findings.len(),
                    counts.warning,
                    self.report.resolved_findings
                ),
                detail,
            );
        }

        // 8. performance (an assessment: it never fails the deploy)
        self.begin("performance");
        let perf_after = self.performance_snapshot().await;
        let mut delta = compare(perf_before.as_ref(), perf_after.as_ref());
        delta.performance_findings = Change {
            before: Some(count_section(&before, "performance")),
            after: Some(count_section(&after, "performance")),
        };
        let summary = match delta.database_size_bytes {
            Some(Change {
                before: Some(b),
                after: Some(a),
            }) => format!(
                "database size {} → {} ({}{}); performance findings {} → {}",
                crate::monitor::dashboard::bytes(b as f64),
                crate::monitor::dashboard::bytes(a as f64),
                if a >= b { "+" } else { "-" },
                crate::monitor::dashboard::bytes((a - b).unsigned_abs() as f64),
                delta.performance_findings.before.unwrap_or(0),
                delta.performance_findings.after.unwrap_or(0)
            ),
            _ => "statistics could not be read (see the monitor report)".into(),
        };
        self.report.performance = Some(delta);
        self.end(
            "performance",
            StepStatus::Ok,
            summary,
            serde_json::Value::Null,
        );
        if self.report.failure.is_some() {
            return;
        }

        // 9. health
        self.begin("health");
        match &self.opts.health_url {
            None => self.end(
                "health",
                StepStatus::Skipped,
                "no --health-url given",
                serde_json::Value::Null,
            ),
            Some(url) => {
                let url = url.clone();
                match poll_health(
                    &url,
                    self.opts.health_timeout,
                    self.opts.health_interval,
                    self.interrupt.clone(),
                )
                .await
                {
                    Ok(h) => self.end(
                        "health",
                        StepStatus::Ok,
                        format!(
                            "{} answered {} after {} attempt(s)",
                            h.url,
                            h.last_status.unwrap_or(0),
                            h.attempts
                        ),
                        serde_json::to_value(&h).unwrap_or_default(),
                    ),
                    Err(h) => {
                        let message = format!(
                            "{} did not answer 2xx within {} ms ({} attempt(s); last: {})",
                            h.url,
                            self.opts.health_timeout.as_millis(),
                            h.attempts,
                            h.last_error
                                .clone()
                                .unwrap_or_else(|| format!("HTTP {}", h.last_status.unwrap_or(0)))
                        );
                        self.fail("health", FailureKind::Unhealthy, message);
                        if let Some(s) = self.report.steps.last_mut() {
                            s.detail = serde_json::to_value(&h).unwrap_or_default();
                        }
                    }
                }
            }
        }
    }

    /// `validate`'s options for this deploy (it falls back to the target server for the
    /// expected schema's scratch database itself).
    pub(super) fn validate_options(&self) -> ValidateOptions {
        let mut v = ValidateOptions::from_settings(self.settings);
        v.schema = self.opts.drift_check;
        v.schemas = self.opts.schemas.clone();
        v.data = self.opts.data_checks;
        v.sample_percent = self.opts.sample_percent;
        v.scratch = self.opts.scratch.clone();
        v
    }

    pub(super) async fn performance_snapshot(&self) -> Option<monitor::performance::Performance> {
        let m = Monitor::new(self.settings, self.set.dir.clone()).ok()?;
        let (client, ms) = m.connect().await.ok()?;
        let sections = monitor::Sections {
            health: false,
            migrations: false,
            performance: true,
        };
        m.collect(&client, ms, sections, false).await.performance
    }

    pub(super) async fn backup(&self) -> Result<BackupRef, (FailureKind, String)> {
        let quiet: Arc<dyn backup::Progress> = Arc::new(backup::Quiet);
        let b = backup::full_verified(
            self.settings,
            &self.opts.backup_options,
            "pre-deploy",
            self.report.started_at,
            quiet,
        )
        .await
        .map_err(|e| (backup_kind(&e), format!("the backup failed: {}", chain(&e))))?;
        Ok(BackupRef {
            name: b.manifest.name.clone(),
            stored_bytes: b.manifest.stored_bytes(),
            path: b.path,
            verified: true,
            decrypted: b.decrypted,
        })
    }
}
