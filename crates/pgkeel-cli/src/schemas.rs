//! The JSON Schemas of the `--format json` documents, published under `docs/schema/`. They are
//! derived (schemars) from the very types the commands serialise, so a field added or renamed
//! changes the schema; the test below fails until `docs/schema/` is regenerated with
//! `PGKEEL_UPDATE_SCHEMAS=1 cargo test -p pgkeel-cli schemas`. Nothing here runs at run time.

#[cfg(test)]
mod tests {
    use schemars::{generate::SchemaSettings, JsonSchema, Schema};

    /// The schema of what `T` serialises to (its output contract: a field skipped when empty is
    /// not required).
    fn of<T: JsonSchema>() -> Schema {
        SchemaSettings::draft2020_12()
            .for_serialize()
            .into_generator()
            .into_root_schema_for::<T>()
    }

    macro_rules! schema_for {
        ($t:ty) => {
            of::<$t>()
        };
    }

    use crate::commands::{backup, config, fleet, lint, migrate, rollback, schema, status};

    /// A report printed with [`crate::ctx::Ctx::print_json_ok`]: the type's schema with `ok`.
    fn with_ok(mut s: Schema) -> Schema {
        if let Some(props) = s
            .ensure_object()
            .entry("properties")
            .or_insert_with(|| serde_json::json!({}))
            .as_object_mut()
        {
            props.insert(
                "ok".into(),
                serde_json::json!({ "type": "boolean", "description": "As the exit code: true when it is 0" }),
            );
        }
        if let Some(req) = s
            .ensure_object()
            .entry("required")
            .or_insert_with(|| serde_json::json!([]))
            .as_array_mut()
        {
            req.push("ok".into());
        }
        s
    }

    /// `(file name, schema)` of every published document.
    fn documents() -> Vec<(&'static str, Schema)> {
        let mut monitor = with_ok(schema_for!(pgkeel::monitor::MonitorReport));
        if let Some(props) = monitor
            .get_mut("properties")
            .and_then(|p| p.as_object_mut())
        {
            props.insert(
                "report_file".into(),
                serde_json::json!({ "type": ["string", "null"], "description": "The report written, if any" }),
            );
        }
        vec![
            (
                "migrate",
                schema_for!(migrate::JsonOut<'static, pgkeel::migrate::MigrateReport>),
            ),
            ("migrate-validate", schema_for!(migrate::ValidateOut)),
            ("status", schema_for!(status::StatusOut<'static>)),
            ("lint", schema_for!(lint::JsonOut<'static>)),
            ("rollback", schema_for!(rollback::JsonOut<'static>)),
            (
                "validate",
                with_ok(schema_for!(pgkeel::validate::ValidationReport)),
            ),
            ("monitor", monitor),
            (
                "deploy",
                with_ok(schema_for!(pgkeel::ops::deploy::DeployReport)),
            ),
            ("test", schema_for!(pgkeel::ops::testing::TestReport)),
            ("schema-dump", schema_for!(pgkeel::schema::Snapshot)),
            ("schema-diff", schema_for!(schema::DiffOut<'static>)),
            ("fleet", schema_for!(fleet::JsonOut<'static>)),
            ("backup-full", schema_for!(backup::BackupOut<'static>)),
            ("backup-list", schema_for!(backup::ListOut<'static>)),
            ("backup-verify", schema_for!(backup::VerifyOut<'static>)),
            ("backup-cleanup", schema_for!(backup::CleanupOut<'static>)),
            ("restore", schema_for!(backup::RestoreOut<'static>)),
            ("config", schema_for!(config::ConfigOut<'static>)),
        ]
    }

    #[test]
    fn published_json_schemas_match_the_types_the_commands_print() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/schema");
        let update = std::env::var_os("PGKEEL_UPDATE_SCHEMAS").is_some();
        let mut stale = Vec::new();
        for (name, schema) in documents() {
            let path = dir.join(format!("{name}.schema.json"));
            let text = serde_json::to_string_pretty(&schema).unwrap() + "\n";
            if update {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &text).unwrap();
            } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
                stale.push(path.display().to_string());
            }
        }
        assert!(
            stale.is_empty(),
            "out of date (regenerate with PGKEEL_UPDATE_SCHEMAS=1 cargo test -p pgkeel-cli schemas): {stale:?}"
        );
    }
}
