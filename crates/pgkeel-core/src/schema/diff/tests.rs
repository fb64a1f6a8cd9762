use super::*;

fn table(name: &str, cols: &[(&str, &str)]) -> Table {
    Table {
        schema: "public".into(),
        name: name.into(),
        unlogged: false,
        partition_by: None,
        partition_of: None,
        options: vec![],
        columns: cols
            .iter()
            .map(|(n, t)| Column {
                name: n.to_string(),
                type_name: t.to_string(),
                collation: None,
                not_null: false,
                default: None,
                identity: None,
                generated: None,
                comment: None,
            })
            .collect(),
        constraints: vec![],
        indexes: vec![],
        triggers: vec![],
        rls_enabled: false,
        rls_forced: false,
        policies: vec![],
        comment: None,
    }
}

fn snap(tables: Vec<Table>, types: Vec<Type>) -> Snapshot {
    let mut s = Snapshot::empty();
    s.tables = tables;
    s.types = types;
    s.normalize();
    s
}

#[test]
fn identical_snapshots_have_no_changes() {
    let a = snap(vec![table("t", &[("id", "integer")])], vec![]);
    assert!(diff(&a, &a).is_empty());
}

#[test]
fn dropping_a_column_is_tagged_as_deleting_data() {
    let a = snap(
        vec![table("t", &[("id", "integer"), ("x", "text")])],
        vec![],
    );
    let b = snap(vec![table("t", &[("id", "integer")])], vec![]);
    let d = diff(&a, &b);
    assert_eq!(d.changes.len(), 1);
    assert!(d.changes[0].hazards.contains(&Hazard::DeletesData));
    assert_eq!(
        d.to_sql(),
        "ALTER TABLE \"public\".\"t\" DROP COLUMN \"x\";\n"
    );
}

#[test]
fn removing_an_enum_value_is_unsupported_not_wrong_sql() {
    let e = |labels: &[&str]| Type {
        schema: "public".into(),
        name: "mood".into(),
        kind: TypeKind::Enum {
            labels: labels.iter().map(|s| s.to_string()).collect(),
        },
        comment: None,
    };
    let d = diff(
        &snap(vec![], vec![e(&["a", "b", "c"])]),
        &snap(vec![], vec![e(&["a", "c"])]),
    );
    assert_eq!(d.unsupported().count(), 1);
    assert_eq!(d.statements().count(), 0);
    let d = diff(
        &snap(vec![], vec![e(&["a", "c"])]),
        &snap(vec![], vec![e(&["x", "a", "b", "c"])]),
    );
    assert_eq!(
        d.statements().collect::<Vec<_>>(),
        [
            "ALTER TYPE \"public\".\"mood\" ADD VALUE E'x' BEFORE E'a';",
            "ALTER TYPE \"public\".\"mood\" ADD VALUE E'b' AFTER E'a';"
        ]
    );
}

#[test]
fn varchar_widening_does_not_rewrite() {
    assert!(binary_compatible(
        "character varying(10)",
        "character varying(20)"
    ));
    assert!(binary_compatible("character varying(10)", "text"));
    assert!(!binary_compatible(
        "character varying(20)",
        "character varying(10)"
    ));
    assert!(!binary_compatible("integer", "bigint"));
}

#[test]
fn a_quoted_constraint_or_column_name_is_labelled_without_a_stray_x() {
    let mut user = table("user", &[("User_ID", "integer")]);
    let a = snap(vec![user.clone()], vec![]);
    user.constraints.push(Constraint {
        name: "user_User_ID_key".into(),
        kind: ConstraintKind::Unique,
        definition: "UNIQUE (\"User_ID\")".into(),
        columns: vec!["User_ID".into()],
        references: None,
        deferrable: false,
        initially_deferred: false,
        validated: true,
        comment: None,
    });
    user.columns
        .push(table("x", &[("Note", "text")]).columns.remove(0));
    let b = snap(vec![user], vec![]);
    let d = diff(&a, &b);
    let objects: Vec<&str> = d.changes.iter().map(|c| c.object.as_str()).collect();
    assert!(
        objects.contains(&"public.user.\"user_User_ID_key\""),
        "{objects:?}"
    );
    assert!(objects.contains(&"public.user.\"Note\""), "{objects:?}");
    assert!(objects.iter().all(|o| !o.contains("\"x\"")), "{objects:?}");
}
