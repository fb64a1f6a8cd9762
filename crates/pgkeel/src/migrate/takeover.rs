//! Taking over a database drizzle-orm migrated: drizzle's own rows adopted into the ledger, and
//! drizzle's table kept in step on every apply.

use super::*;

/// What [`Migrator::take_over_drizzle`] did.
#[derive(Debug, Default)]
pub(super) struct TakeoverOutcome {
    pub(super) warnings: Vec<String>,
    pub(super) held_back: Vec<String>,
    pub(super) taken_over: Vec<String>,
}

impl<'a> Migrator<'a> {
    /// Whether to keep drizzle-orm's own table in step (journal folders only: drizzle v1's
    /// table has more columns and is not verified yet).
    pub(super) fn drizzle_enabled(&self) -> bool {
        crate::drizzle::keeps_table_for(self.set.layout)
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
            if !matches!(
                state(&a.id),
                Some(State::Pending | State::Failed | State::RolledBack)
            ) {
                continue;
            }
            let Some(m) = self.set.get(&a.id) else {
                continue;
            };
            sql.push_str(&self.ledger.record_sql(
                m,
                "baselined",
                self.rollback_for(m, None, &Before::default()).as_deref(),
                None,
                None,
            ));
            sql.push_str(";\n");
            if !a.hash_matches {
                // Applied by drizzle from an older text: record what ran so the plan shows it
                // as modified instead of trusting the edited file.
                sql.push_str(&format!(
                    "UPDATE {} SET hash = {}, normalized_hash = NULL WHERE id = {};\n",
                    self.ledger.table_sql(),
                    crate::ident::quote_literal(&a.row_hash),
                    crate::ident::quote_literal(&a.id)
                ));
            }
            out.taken_over.push(a.id.clone());
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
            if matches!(
                state(&s.id),
                Some(State::Pending | State::Failed | State::RolledBack)
            ) {
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
