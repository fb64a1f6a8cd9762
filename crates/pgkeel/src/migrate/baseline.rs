//! Marking migrations applied without running them (`baseline --to`) and repairing the ledger
//! after an interrupted run (`repair`).

use super::*;

/// Drops the invalid leftover of a failed `CREATE INDEX CONCURRENTLY` so the build can be
/// retried (a valid index of that name is left alone: the statement's IF NOT EXISTS, or its
/// error, decides).
pub(super) async fn drop_invalid_index(client: &Client, index: &str) -> Result<(), DbError> {
    let invalid: bool = client
        .query_one(
            "SELECT coalesce((SELECT NOT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)), false)",
            &[&index],
        )
        .await
        .map_err(|e| DbError::query(format!("checking index {index}"), e))?
        .get(0);
    if invalid {
        tracing::warn!("dropping invalid index {index} left by an earlier failed build");
        client
            .batch_execute(&format!("DROP INDEX CONCURRENTLY IF EXISTS {index}"))
            .await
            .map_err(|e| DbError::query(format!("dropping invalid index {index}"), e))?;
    }
    Ok(())
}

impl<'a> Migrator<'a> {
    /// The ledger row that records `m` as applied without running it (`baseline`, and the
    /// takeovers of what drizzle-orm or another tool applied), ending in `;\n`. `ran_as`: the
    /// hash of the text that really ran when the file was edited since, so the plan shows it
    /// modified instead of trusting the edited file.
    pub(super) fn baselined_sql(&self, m: &Migration, ran_as: Option<&str>) -> String {
        let mut sql = self.ledger.record_sql(
            m,
            "baselined",
            self.rollback_for(m, None, &Before::default()).as_deref(),
            None,
            None,
        );
        sql.push_str(";\n");
        if let Some(hash) = ran_as {
            sql.push_str(&format!(
                "UPDATE {} SET hash = {}, normalized_hash = NULL WHERE id = {};\n",
                self.ledger.table_sql(),
                crate::ident::quote_literal(hash),
                crate::ident::quote_literal(&m.id)
            ));
        }
        sql
    }

    /// `pgkeel baseline --to ID`: records migrations up to ID as applied without running them.
    pub async fn baseline(&self, client: &Client, to: &str) -> Result<Vec<String>, MigrateError> {
        let Some(last) = self.set.migrations.iter().position(|m| m.id == to) else {
            return Err(MigrateError::UnknownId {
                id: to.to_string(),
                dir: self.set.dir.clone(),
            });
        };
        let lock = DeployLock::for_ledger(&self.ledger.schema, &self.ledger.table);
        let session = lock
            .take(client, self.settings.deploy_lock_timeout, |_, _| {})
            .await?;
        let result = async {
            self.ledger.ensure(client).await?;
            // drizzle-orm's table first (created when missing, its rows taken over), so the
            // rows written below keep drizzle-orm in step with what is baselined.
            self.take_over(client, &mut Silent, false).await?;
            let plan = self.plan(client).await?;
            let mut sql = String::from("BEGIN;\n");
            let mut ids = Vec::new();
            for e in &plan.migrations[..=last] {
                if e.state.is_runnable() {
                    let m = &self.set.migrations[e.index.expect("file-backed entry")];
                    sql.push_str(&self.side_rows_sql(m, &[]));
                    sql.push_str(&self.baselined_sql(m, None));
                    ids.push(m.id.clone());
                }
            }
            sql.push_str(&self.ledger.audit_sql(
                "baseline",
                Some(to),
                "baselined",
                Some(&serde_json::json!({ "ids": ids })),
            ));
            sql.push_str(";\nCOMMIT;");
            client
                .batch_execute(&sql)
                .await
                .map_err(|e| DbError::query("recording the baseline", e))?;
            Ok(ids)
        }
        .await;
        lock.release_logged(client, session).await;
        result
    }

    /// `pgkeel repair`: records the new hash of modified files: cosmetic changes only unless
    /// `force`. Returns the repaired ids. A real change (without `force`) is refused after the
    /// cosmetic ones are recorded: [`MigrateError::PartlyRepaired`] names both, or the change's
    /// own error when nothing could be recorded.
    pub async fn repair(&self, client: &Client, force: bool) -> Result<Vec<String>, MigrateError> {
        let plan = self.plan(client).await?;
        let mut refused: Vec<MigrateError> = plan
            .modified()
            .filter(|e| !e.is_cosmetic() && !force)
            .map(|e| e.modified_error())
            .collect();
        // Failed migrations that committed part of their statements and whose committed
        // statements were edited since: `--force` accepts the edited ones as what ran.
        let mut partial = Vec::new();
        for e in plan.migrations.iter().filter(|e| e.state == State::Failed) {
            let Some(m) = e.index.map(|i| &self.set.migrations[i]) else {
                continue;
            };
            let stmts = self.prepared.statements(m)?;
            if let Err(err) = resume_point(e, m, &stmts) {
                if !force {
                    refused.push(err);
                    continue;
                }
                let hashes = statement_hashes(&stmts);
                partial.push((m, hashes));
            }
        }
        self.ledger.ensure(client).await?;
        let mut fixed = Vec::new();
        for e in plan.modified().filter(|e| force || e.is_cosmetic()) {
            let Some(m) = e.index.map(|i| &self.set.migrations[i]) else {
                continue;
            };
            self.ledger
                .update_hash(client, m, !e.is_cosmetic(), None)
                .await?;
            fixed.push(m.id.clone());
        }
        for (m, hashes) in partial {
            self.ledger
                .update_hash(client, m, true, Some(&hashes))
                .await?;
            fixed.push(m.id.clone());
        }
        let Some(first) = refused.into_iter().next() else {
            return Ok(fixed);
        };
        if fixed.is_empty() {
            return Err(first);
        }
        Err(MigrateError::PartlyRepaired {
            repaired: fixed,
            source: Box::new(first),
        })
    }
}
