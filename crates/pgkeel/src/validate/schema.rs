//! Schema drift: the live database against the schema it should have.
//!
//! The expected schema is the migrations folder applied, up to the last migration the live
//! ledger says is applied, to a scratch database (so pending migrations are not drift), or a
//! snapshot file / another database given explicitly. Every difference of the schema diff
//! becomes a finding whose fix is the diff's DDL (live → expected); tables without a primary key
//! are reported too.

use super::CheckError;
use super::{CheckRun, Outcome};
use crate::config::Settings;
use crate::migrate::{MigrateOptions, Migrator, Silent};
use crate::report::{Finding, Severity};
use crate::schema::{self, Action, IntrospectOptions, ObjectKind, Snapshot};
use crate::scratch::{Scratch, ScratchOptions};
use crate::snapshot_input::{self, SnapshotInput, SnapshotInputError};
use crate::source::MigrationSet;

/// Where the expected schema comes from.
#[derive(Debug, Clone)]
pub enum Expected {
    /// The migrations folder, applied up to what the live ledger has applied.
    Folder,
    /// A snapshot file, a database URL, or another folder (applied whole).
    Input(SnapshotInput),
}

pub(crate) async fn run(
    client: &tokio_postgres::Client,
    settings: &Settings,
    set: Option<&MigrationSet>,
    expected: &Expected,
    scratch: &ScratchOptions,
    schemas: &[String],
) -> Vec<(CheckRun, Vec<Finding>)> {
    let opts = IntrospectOptions::from_settings(settings).with_schemas(schemas);
    let mut out = Vec::new();
    let mut live: Option<Snapshot> = None;
    let introspected = super::timed("schema", "introspect".into(), async {
        let snap = schema::introspect(client, &opts)
            .await
            .map_err(CheckError::Schema)?;
        let outcome = Outcome {
            findings: no_primary_key(&snap),
            data: serde_json::json!({
                "tables": snap.tables.len(),
                "views": snap.views.len(),
                "functions": snap.functions.len(),
            }),
            note: None,
        };
        live = Some(snap);
        Ok::<_, CheckError>(outcome)
    })
    .await;
    out.push(introspected);
    let Some(live) = live else {
        return out;
    };
    if matches!(expected, Expected::Folder) && set.is_none() {
        let (run, _) = super::timed("schema", "drift".into(), async {
            Ok::<_, CheckError>(Outcome {
                findings: Vec::new(),
                data: serde_json::Value::Null,
                note: Some(
                    "no migrations folder to compare with: pass --migrations DIR or --expected FILE".into(),
                ),
            })
        })
        .await;
        out.push((run, Vec::new()));
        return out;
    }
    // A drizzle-kit folder carries the expected schema itself: the snapshot drizzle-kit wrote
    // with the last applied migration. No scratch database (no CREATE DATABASE) needed. A last
    // migration without one (written by hand) falls back to the scratch database.
    if let (Expected::Folder, Some(set)) = (expected, set) {
        let snapshot = match set.layout {
            crate::source::Layout::DrizzleJournal => last_applied(client, settings, set)
                .await
                .ok()
                .flatten()
                .map(|i| {
                    let id = &set.migrations[i].id;
                    (schema::drizzle_snapshot::path_for_tag(&set.dir, id), id)
                })
                .filter(|(p, _)| p.is_file()),
            _ => None,
        };
        if let Some((path, after)) = snapshot {
            let drift = super::timed("schema", "drift".into(), async {
                let want = schema::drizzle_snapshot::read(&path)?;
                let what = format!("drizzle-kit's snapshot {} (after {after})", path.display());
                // The snapshot may name schemas beyond those read so far (a `pgSchema`).
                let needed = want.schema_names();
                let covered = needed.iter().all(|s| opts.schemas.contains(s));
                let mut all = opts.schemas.clone();
                all.extend(needed);
                let opts = opts.clone().with_schemas(&all);
                let wider;
                let live = match covered {
                    true => &live,
                    false => {
                        wider = schema::introspect(client, &opts)
                            .await
                            .map_err(CheckError::Schema)?;
                        &wider
                    }
                };
                let drift =
                    schema::drizzle_snapshot::compare(
                    &want,
                    live,
                    &settings.bookkeeping_tables(),
                    &settings.tables_filter,
                );
                let mut findings: Vec<Finding> =
                    drift.iter().map(|d| snapshot_finding(d, &what)).collect();
                // Drift from the snapshot is either a change made by hand or a migration edited
                // after drizzle-kit wrote it. Where a scratch database can be made, the folder
                // applied there tells them apart: what the folder itself makes differently from
                // the snapshot is its own finding.
                let mut folder_check = serde_json::Value::Null;
                if !drift.is_empty() {
                    match expected_snapshot(client, settings, Some(set), &Expected::Folder, scratch, &opts).await {
                        Ok((folder, _)) => {
                            let disagree = schema::drizzle_snapshot::compare(
                                &want,
                                &folder,
                                &settings.bookkeeping_tables(),
                                &settings.tables_filter,
                            );
                            folder_check = serde_json::json!({ "disagreements": disagree.len() });
                            findings.extend(disagree.iter().map(|d| {
                                Finding::new(
                                    "snapshot-disagrees-with-folder",
                                    Severity::Warning,
                                    d.object.clone(),
                                    format!(
                                        "{} {} when the migrations folder itself is applied ({what} says otherwise): a migration was edited by hand after drizzle-kit generated it; make the schema code and the SQL agree (drizzle-kit generate --custom for hand-written SQL)",
                                        d.object,
                                        d.message("the folder's schema"),
                                    ),
                                )
                            }));
                        }
                        Err(e) => {
                            folder_check = serde_json::json!({
                                "skipped": format!("the folder could not be applied to a scratch database, so drift and hand-edited migrations are not told apart: {e}")
                            });
                        }
                    }
                }
                Ok::<_, CheckError>(Outcome {
                    data: serde_json::json!({
                        "expected": what,
                        "differences": drift.len(),
                        "folder_check": folder_check,
                    }),
                    findings,
                    note: None,
                })
            })
            .await;
            out.push(drift);
            return out;
        }
    }
    let drift = super::timed("schema", "drift".into(), async {
        let (want, what) =
            expected_snapshot(client, settings, set, expected, scratch, &opts).await?;
        let d = schema::diff(&live, &want);
        let findings: Vec<Finding> = d.changes.iter().map(|c| drift_finding(c, &what)).collect();
        Ok::<_, CheckError>(Outcome {
            findings,
            data: serde_json::json!({ "expected": what, "differences": d.changes.len() }),
            note: None,
        })
    })
    .await;
    out.push(drift);
    out
}

/// The expected snapshot and a description of where it came from.
async fn expected_snapshot(
    client: &tokio_postgres::Client,
    settings: &Settings,
    set: Option<&MigrationSet>,
    expected: &Expected,
    scratch: &ScratchOptions,
    opts: &IntrospectOptions,
) -> Result<(Snapshot, String), CheckError> {
    match expected {
        Expected::Input(input) => {
            let snap = snapshot_input::load(input, settings, opts, scratch)
                .await
                .map_err(CheckError::Expected)?;
            Ok((snap, input.to_string()))
        }
        Expected::Folder => {
            // `run` reports a missing folder as a skipped check before it gets here.
            let Some(set) = set else {
                return Err(CheckError::Expected(SnapshotInputError::NoFolder));
            };
            let last_applied = last_applied(client, settings, set).await?;
            let what = match last_applied {
                Some(i) => format!(
                    "{} applied up to {}",
                    set.dir.display(),
                    set.migrations[i].id
                ),
                None => format!(
                    "{} with nothing applied (an empty schema)",
                    set.dir.display()
                ),
            };
            let db = Scratch::create(settings, scratch)
                .await
                .map_err(CheckError::Scratch)?;
            let result: Result<Snapshot, CheckError> = async {
                let sc = db.target().connect().await?;
                if let Some(i) = last_applied {
                    let mut s = settings.clone();
                    s.database_url = None;
                    Migrator::new(&s, set)
                        .migrate(
                            &sc,
                            &MigrateOptions {
                                target: Some(set.migrations[i].id.clone()),
                                ..MigrateOptions::default()
                            },
                            &mut Silent,
                        )
                        .await
                        .map_err(|source| {
                            CheckError::Expected(SnapshotInputError::Migrate {
                                path: set.dir.clone(),
                                source,
                            })
                        })?;
                }
                schema::introspect(&sc, opts)
                    .await
                    .map_err(|e| CheckError::Expected(e.into()))
            }
            .await;
            let dropped = db.drop_now().await;
            let snap = result?;
            if let Err(e) = dropped {
                tracing::warn!("dropping the scratch database: {e}");
            }
            Ok((snap, what))
        }
    }
}

/// The index in `set` of the last migration the live ledger has applied.
async fn last_applied(
    client: &tokio_postgres::Client,
    settings: &Settings,
    set: &MigrationSet,
) -> Result<Option<usize>, CheckError> {
    let plan = Migrator::new(settings, set)
        .plan(client)
        .await
        .map_err(CheckError::Ledger)?;
    Ok(plan
        .migrations
        .iter()
        .filter(|e| {
            matches!(
                e.state,
                crate::migrate::State::Applied
                    | crate::migrate::State::Baselined
                    | crate::migrate::State::Modified { .. }
            )
        })
        .filter_map(|e| e.index)
        .max())
}

/// A difference from drizzle-kit's snapshot as a finding: missing objects and changed columns
/// are critical, extra ones a warning (a manual change, or a table drizzle does not manage).
fn snapshot_finding(d: &schema::drizzle_snapshot::Drift, expected: &str) -> Finding {
    use schema::drizzle_snapshot::How;
    let severity = match (&d.how, d.kind) {
        (How::Extra, _) | (How::Missing, "index") => Severity::Warning,
        _ => Severity::Critical,
    };
    Finding::new(
        d.id(),
        severity,
        d.object.clone(),
        format!("{} {} ({expected})", d.object, d.message("the database")),
    )
}

fn kind_name(k: ObjectKind) -> &'static str {
    match k {
        ObjectKind::Schema => "schema",
        ObjectKind::Extension => "extension",
        ObjectKind::Type => "type",
        ObjectKind::Sequence => "sequence",
        ObjectKind::Table => "table",
        ObjectKind::Column => "column",
        ObjectKind::Constraint => "constraint",
        ObjectKind::Index => "index",
        ObjectKind::Trigger => "trigger",
        ObjectKind::Policy => "policy",
        ObjectKind::View => "view",
        ObjectKind::MaterializedView => "materialized view",
        ObjectKind::Function => "function",
    }
}

/// One difference between the live schema and the expected one. The diff goes from live to
/// expected, so `Create` means the object is missing from the database and `Drop` that the
/// database has an object the migrations don't.
fn drift_finding(c: &schema::Change, expected: &str) -> Finding {
    let kind = kind_name(c.kind);
    let (id, severity, message) = match c.action {
        Action::Create => (
            format!("missing-{}", kind.replace(' ', "-")),
            match c.kind {
                ObjectKind::Index | ObjectKind::Trigger | ObjectKind::Policy => Severity::Warning,
                _ => Severity::Critical,
            },
            format!("{kind} {} is missing from the database ({expected} has it): a migration was applied but its object is gone, or it was dropped by hand", c.object),
        ),
        Action::Drop => (
            format!("extra-{}", kind.replace(' ', "-")),
            Severity::Warning,
            format!("{kind} {} exists in the database but not in {expected}: a manual change, or a migration file that was removed", c.object),
        ),
        Action::Comment => (
            "changed-comment".to_string(),
            Severity::Info,
            format!("the comment on {kind} {} differs from {expected}", c.object),
        ),
        Action::Alter | Action::Replace => (
            format!("changed-{}", kind.replace(' ', "-")),
            match c.kind {
                ObjectKind::Column | ObjectKind::Constraint | ObjectKind::Table => Severity::Critical,
                _ => Severity::Warning,
            },
            format!("{kind} {} differs from {expected}", c.object),
        ),
    };
    let mut f =
        Finding::new(id, severity, c.object.clone(), message).with_evidence(serde_json::json!({
            "action": c.action,
            "hazards": c.hazards,
            "note": c.note,
            "unsupported": c.unsupported,
        }));
    if let Some(sql) = &c.sql {
        f = f.with_fix(sql.clone());
    }
    f
}

fn no_primary_key(snap: &Snapshot) -> Vec<Finding> {
    snap.tables
        .iter()
        // Partitions inherit their parent's key; a partitioned parent is checked itself.
        .filter(|t| t.partition_of.is_none())
        .filter(|t| {
            !t.constraints
                .iter()
                .any(|c| c.kind == schema::model::ConstraintKind::PrimaryKey)
        })
        .map(|t| {
            let name = format!("{}.{}", t.schema, t.name);
            Finding::new(
                "no-primary-key",
                Severity::Warning,
                name.clone(),
                format!("table {name} has no primary key: rows cannot be addressed reliably, logical replication cannot UPDATE/DELETE them"),
            )
            .with_fix(format!(
                "ALTER TABLE {} ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY;  -- or a primary key over existing unique, non-null columns",
                crate::ident::qualified(&t.schema, &t.name)
            ))
        })
        .collect()
}
