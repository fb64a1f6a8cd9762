//! Before against after: findings that are new after the migration, and the performance
//! delta (database size, largest relations, slowest statements).

use super::*;

/// Identity of a finding across two runs: its rule and object (messages carry numbers and the
/// migration the expected schema was built up to, which change between the runs).
pub(super) fn key(f: &Finding) -> (String, String) {
    (f.id.clone(), f.object.clone())
}

/// Why the schema section could not judge drift, if it could not.
pub(super) fn schema_not_checked(r: &ValidationReport) -> Option<String> {
    r.checks
        .iter()
        .find(|c| c.section == "schema" && c.status != "ok")
        .map(|c| {
            format!(
                "{} {}{}",
                c.name,
                c.status,
                c.note
                    .as_deref()
                    .map(|n| format!(": {n}"))
                    .unwrap_or_default()
            )
        })
}

pub(super) fn count_section(r: &ValidationReport, section: &str) -> usize {
    r.checks
        .iter()
        .filter(|c| c.section == section)
        .map(|c| c.findings)
        .sum()
}

pub(super) fn compare(
    before: Option<&monitor::performance::Performance>,
    after: Option<&monitor::performance::Performance>,
) -> PerformanceDelta {
    use monitor::performance::Relation;
    fn sizes(before: Option<&[Relation]>, after: Option<&[Relation]>) -> Vec<SizeChange> {
        let name = |r: &Relation| format!("{}.{}", r.schema, r.name);
        let mut out: Vec<SizeChange> = Vec::new();
        for r in before.unwrap_or_default() {
            out.push(SizeChange {
                name: name(r),
                bytes: Change {
                    before: Some(r.bytes),
                    after: None,
                },
            });
        }
        for r in after.unwrap_or_default() {
            let n = name(r);
            match out.iter_mut().find(|c| c.name == n) {
                Some(c) => c.bytes.after = Some(r.bytes),
                None => out.push(SizeChange {
                    name: n,
                    bytes: Change {
                        before: None,
                        after: Some(r.bytes),
                    },
                }),
            }
        }
        out
    }
    let ok =
        |p: Option<&monitor::performance::Performance>| p.filter(|p| p.error.is_none()).cloned();
    let (b, a) = (ok(before), ok(after));
    let mut d = PerformanceDelta {
        database_size_bytes: (b.is_some() || a.is_some()).then(|| Change {
            before: b.as_ref().map(|p| p.database_size_bytes),
            after: a.as_ref().map(|p| p.database_size_bytes),
        }),
        tables: sizes(
            b.as_ref().map(|p| p.largest_tables.as_slice()),
            a.as_ref().map(|p| p.largest_tables.as_slice()),
        ),
        indexes: sizes(
            b.as_ref().map(|p| p.largest_indexes.as_slice()),
            a.as_ref().map(|p| p.largest_indexes.as_slice()),
        ),
        ..PerformanceDelta::default()
    };
    if let (Some(b), Some(a)) = (&b, &a) {
        for s in &a.statements.top {
            let before = b
                .statements
                .top
                .iter()
                .find(|x| x.query == s.query)
                .map(|x| x.mean_ms);
            d.statements.push(StatementChange {
                query: s.query.clone(),
                mean_ms: Change {
                    before,
                    after: Some(s.mean_ms),
                },
            });
        }
    }
    d
}
