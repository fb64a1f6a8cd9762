//! Taking over a database drizzle-orm or another runner migrated: that tool's rows adopted into
//! the ledger as `baselined` (nothing re-applied), and its table kept in step on every apply
//! (drizzle's always, the others' with `--keep-ledger-in-step`).

use super::*;

/// What [`Migrator::take_over_drizzle`] did.
#[derive(Debug, Default)]
pub(super) struct TakeoverOutcome {
    pub(super) warnings: Vec<String>,
    pub(super) held_back: Vec<String>,
    pub(super) taken_over: Vec<String>,
    /// Whose rows `taken_over` are.
    pub(super) from: Option<String>,
}

impl<'a> Migrator<'a> {
    /// Whether to keep drizzle-orm's own table in step (journal folders only: drizzle v1's
    /// table has more columns and is not verified yet).
    pub(super) fn drizzle_enabled(&self) -> bool {
        crate::drizzle::keeps_table_for(self.set.layout)
    }

    /// The rows drizzle-orm and the kept-in-step tool would write for `m` (`stmts`: its
    /// statements), so the team can return to either; ends in `;\n` when not empty.
    pub(super) fn side_rows_sql(&self, m: &Migration, stmts: &[Statement]) -> String {
        let mut sql = self.drizzle_row_sql(m);
        if let Some(Some(found)) = self.in_step.get() {
            let texts: Vec<&str> = stmts.iter().map(|s| s.text.trim()).collect();
            sql.push_str(&found.applied_sql(m, &texts));
        }
        sql
    }

    /// The row drizzle-orm would write for `m`, so the team can return to drizzle's migrator.
    pub(super) fn drizzle_row_sql(&self, m: &Migration) -> String {
        if !self.drizzle_enabled() {
            return String::new();
        }
        crate::drizzle::insert_row_sql(
            &self.settings.drizzle_schema,
            &self.settings.drizzle_table,
            m,
        )
        .map(|s| format!("{s};\n"))
        .unwrap_or_default()
    }

    /// Takes over what drizzle-orm ([`Migrator::take_over_drizzle`]) and the folder's own tool
    /// ([`Migrator::take_over_foreign`]) applied. With `dry`, writes nothing.
    pub(super) async fn take_over(
        &self,
        client: &Client,
        obs: &mut dyn Observer,
        dry: bool,
    ) -> Result<TakeoverOutcome, MigrateError> {
        let mut out = self.take_over_drizzle(client, obs, dry).await?;
        if self.foreign_done.get().is_none() {
            self.take_over_foreign(client, dry, &mut out).await?;
            if !dry {
                let _ = self.foreign_done.set(());
            }
        }
        Ok(out)
    }

    /// Takes over a database golang-migrate, Prisma, sqlx, dbmate, goose, Flyway or the
    /// Supabase CLI migrated: what its ledger says ran is recorded as `baselined` (with the
    /// tool and its table in the audit row), a file edited since it ran is recorded with the
    /// tool's checksum so the plan shows it modified, and a dirty ledger or one naming a
    /// migration the folder lacks is refused. With `--keep-ledger-in-step`, the tool's table is
    /// created when missing and given the rows of what pgkeel applied.
    async fn take_over_foreign(
        &self,
        client: &Client,
        dry: bool,
        out: &mut TakeoverOutcome,
    ) -> Result<(), MigrateError> {
        use crate::foreign;
        let tools = foreign::Tool::for_layout(self.set.layout);
        if tools.is_empty() || !self.reads_other_ledgers(client).await? {
            return Ok(());
        }
        let hit = foreign::find(client, tools).await?;
        let keep = self.settings.keep_ledger_in_step;
        let adoption = match &hit {
            Some((found, records)) => foreign::adopt(found, records, self.set)?,
            None => foreign::Adoption::default(),
        };
        let mut place = hit.as_ref().map(|(f, _)| f.clone());
        let mut create = false;
        if keep && place.is_none() {
            for &t in tools {
                if let Some(f) = foreign::locate(client, t).await? {
                    place = Some(f);
                    break;
                }
            }
            if place.is_none() {
                place = foreign::default_place(client, self.set.layout).await?;
                create = place.is_some();
            }
        }
        let in_step = place.clone().filter(|_| keep);
        let _ = self.in_step.set(in_step.clone());
        if adoption.applied.is_empty() && in_step.is_none() {
            return Ok(());
        }
        let plan = self.plan(client).await?;
        let state = |id: &str| {
            plan.migrations
                .iter()
                .find(|e| e.id == id)
                .map(|e| e.state.clone())
        };
        let mut sql = String::new();
        let mut ids = Vec::new();
        for (i, edited) in &adoption.applied {
            let m = &self.set.migrations[*i];
            if !state(&m.id).is_some_and(|s| s.is_runnable()) {
                continue;
            }
            // Edited since the tool ran it: the tool's checksum is recorded.
            sql.push_str(&self.baselined_sql(m, edited.as_deref()));
            ids.push(m.id.clone());
        }
        if let Some(found) = &in_step {
            if create {
                sql.insert_str(0, &found.ensure_sql());
            }
            let adopted: std::collections::HashSet<usize> =
                adoption.applied.iter().map(|(i, _)| *i).collect();
            for e in &plan.migrations {
                if let (State::Applied | State::Baselined, Some(i)) = (&e.state, e.index) {
                    if !adopted.contains(&i) {
                        sql.push_str(&found.applied_sql(&self.set.migrations[i], &[]));
                    }
                }
            }
        }
        if !ids.is_empty() {
            out.from = place.as_ref().map(|f| f.tool.name().to_owned());
        }
        out.taken_over.extend(ids.iter().cloned());
        if sql.is_empty() || dry {
            return Ok(());
        }
        let found = place.expect("a ledger was found or placed");
        let detail = serde_json::json!({
            "tool": found.tool.name(),
            "table": found.display(),
            "taken_over": ids,
            "kept_in_step": keep,
        });
        let sql = format!(
            "BEGIN;\n{sql}{};\nCOMMIT;",
            self.ledger
                .audit_sql("takeover", None, "recorded", Some(&detail))
        );
        client.batch_execute(&sql).await.map_err(|e| {
            DbError::query(
                format!("recording the migrations {} applied", found.tool),
                e,
            )
        })?;
        Ok(())
    }

    /// Takes over a database drizzle-orm migrated: entries drizzle applied are recorded (never
    /// re-applied), entries it silently skipped are held back with a warning, and migrations
    /// pgkeel applied earlier get their drizzle rows.
    /// Records in pgkeel's ledger what drizzle-orm applied (see the crate docs). With `dry`, only
    /// says what it would record and hold back: nothing is written.
    pub(super) async fn take_over_drizzle(
        &self,
        client: &Client,
        obs: &mut dyn Observer,
        dry: bool,
    ) -> Result<TakeoverOutcome, MigrateError> {
        let mut out = TakeoverOutcome::default();
        if !self.drizzle_enabled() {
            return Ok(out);
        }
        let (schema, table) = (&self.settings.drizzle_schema, &self.settings.drizzle_table);
        let Some(rows) = crate::drizzle::read_rows(client, schema, table).await? else {
            if dry {
                return Ok(out);
            }
            client
                .batch_execute(&crate::drizzle::ensure_table_sql(schema, table))
                .await
                .map_err(|e| DbError::query("creating drizzle-orm's migrations table", e))?;
            return Ok(out);
        };
        let t = crate::drizzle::match_journal(self.set, &rows);
        for w in t.warnings() {
            let text = w.to_string();
            tracing::warn!("{text}");
            obs.warn(&text);
            out.warnings.push(text);
        }
        let plan = self.plan(client).await?;
        let state = |id: &str| {
            plan.migrations
                .iter()
                .find(|e| e.id == id)
                .map(|e| e.state.clone())
        };
        let mut sql = String::new();
        for a in &t.applied {
            if !state(&a.id).is_some_and(|s| s.is_runnable()) {
                continue;
            }
            let Some(m) = self.set.get(&a.id) else {
                continue;
            };
            // Applied by drizzle from an older text: what ran is recorded.
            let ran_as = (!a.hash_matches).then_some(a.row_hash.as_str());
            sql.push_str(&self.baselined_sql(m, ran_as));
            out.taken_over.push(a.id.clone());
            out.from = Some("drizzle-orm".to_owned());
        }
        // Migrations pgkeel applied before drizzle's table was kept in step.
        let in_drizzle: std::collections::HashSet<&str> =
            t.applied.iter().map(|a| a.id.as_str()).collect();
        for e in &plan.migrations {
            if matches!(e.state, State::Applied | State::Baselined)
                && !in_drizzle.contains(e.id.as_str())
            {
                if let Some(m) = self.set.get(&e.id) {
                    sql.push_str(&self.drizzle_row_sql(m));
                }
            }
        }
        for s in &t.skipped {
            if state(&s.id).is_some_and(|s| s.is_runnable()) {
                out.held_back.push(s.id.clone());
            }
        }
        if !sql.is_empty() && !dry {
            let detail =
                serde_json::json!({ "taken_over": out.taken_over, "held_back": out.held_back });
            sql = format!(
                "BEGIN;\n{sql}{};\nCOMMIT;",
                self.ledger
                    .audit_sql("drizzle-takeover", None, "recorded", Some(&detail))
            );
            client
                .batch_execute(&sql)
                .await
                .map_err(|e| DbError::query("recording migrations drizzle-orm applied", e))?;
        }
        Ok(out)
    }
}

impl<'a> Migrator<'a> {
    /// Whether another tool's ledger may speak for this folder. Always for another tool's
    /// layout; for pgkeel's own only until pgkeel has applied something: a plain numbered
    /// folder may have been Supabase's or sqlx's before, but a database pgkeel already
    /// migrates can share its server with an unrelated sqlx application.
    async fn reads_other_ledgers(&self, client: &Client) -> Result<bool, MigrateError> {
        if self.set.layout != crate::layout::Layout::Native {
            return Ok(true);
        }
        let plan = self.plan(client).await?;
        Ok(!plan
            .migrations
            .iter()
            .any(|e| matches!(e.state, State::Applied | State::Baselined)))
    }
}

/// Another tool's ledger as `status` shows it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct OtherLedger {
    /// The tool (`golang-migrate`, `Prisma Migrate`, ...).
    pub tool: String,
    /// Its table, `schema.table`.
    pub table: String,
    /// How many of the folder's migrations it says ran.
    pub applied: usize,
    /// Of those, the ones pgkeel's ledger does not have yet: the next `migrate` records them as
    /// baselined, without running them.
    pub to_take_over: Vec<String>,
    /// Why the next `migrate` will refuse it (dirty, or a migration the folder lacks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl<'a> Migrator<'a> {
    /// The folder's tool's ledger, if the database has one with records: what it says ran and
    /// what the next `migrate` will take over. Reads only.
    pub async fn other_ledger(&self, client: &Client) -> Result<Option<OtherLedger>, MigrateError> {
        let tools = crate::foreign::Tool::for_layout(self.set.layout);
        if !self.reads_other_ledgers(client).await? {
            return Ok(None);
        }
        let (found, records) = match crate::foreign::find(client, tools).await {
            Ok(Some(hit)) => hit,
            Ok(None) => return Ok(None),
            Err(crate::foreign::FindError::Db(e)) => return Err(e.into()),
            Err(crate::foreign::FindError::Foreign(e)) => {
                return Ok(Some(OtherLedger {
                    tool: String::new(),
                    table: String::new(),
                    applied: 0,
                    to_take_over: Vec::new(),
                    problem: Some(e.to_string()),
                }))
            }
        };
        let mut out = OtherLedger {
            tool: found.tool.name().to_owned(),
            table: found.display(),
            applied: 0,
            to_take_over: Vec::new(),
            problem: None,
        };
        match crate::foreign::adopt(&found, &records, self.set) {
            Ok(adoption) => {
                let plan = self.plan(client).await?;
                out.applied = adoption.applied.len();
                for (i, _) in &adoption.applied {
                    let id = &self.set.migrations[*i].id;
                    let pending = plan
                        .migrations
                        .iter()
                        .any(|e| e.id == *id && e.state.is_runnable());
                    if pending {
                        out.to_take_over.push(id.clone());
                    }
                }
            }
            Err(e) => out.problem = Some(e.to_string()),
        }
        Ok(Some(out))
    }
}
