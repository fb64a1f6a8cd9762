//! Views and materialized views, in dependency order, re-created when a table they read changed.

use super::*;

/// Views in dependency order (a view after every view it reads).
pub(super) fn topo_views(views: &[View]) -> Vec<&View> {
    let index: HashMap<TableRef, usize> = views
        .iter()
        .enumerate()
        .map(|(i, v)| (v.table_ref(), i))
        .collect();
    let mut state = vec![0u8; views.len()];
    let mut out = Vec::with_capacity(views.len());
    fn visit<'a>(
        i: usize,
        views: &'a [View],
        index: &HashMap<TableRef, usize>,
        state: &mut [u8],
        out: &mut Vec<&'a View>,
    ) {
        if state[i] != 0 {
            return;
        }
        state[i] = 1;
        for d in &views[i].depends_on {
            if let Some(&j) = index.get(d) {
                visit(j, views, index, state, out);
            }
        }
        state[i] = 2;
        out.push(&views[i]);
    }
    for i in 0..views.len() {
        visit(i, views, &index, &mut state, &mut out);
    }
    out
}

pub(super) fn diff_views(b: &mut Builder, from: &Snapshot, to: &Snapshot, altered: &Altered) {
    let f = by_key(&from.views, |v| v.table_ref());
    let t = by_key(&to.views, |v| v.table_ref());
    // Views of `from` that must go: dropped, changed, or reading something that changes.
    let mut dirty: HashSet<TableRef> = HashSet::new();
    for v in topo_views(&from.views) {
        let r = v.table_ref();
        let changed = match t.get(&r) {
            None => true,
            Some(n) => {
                n.definition != v.definition
                    || n.materialized != v.materialized
                    || n.options != v.options
            }
        };
        if changed
            || v.depends_on
                .iter()
                .any(|d| altered.contains(d) || dirty.contains(d))
        {
            dirty.insert(r);
        }
    }
    for v in topo_views(&from.views).into_iter().rev() {
        let r = v.table_ref();
        if dirty.contains(&r) {
            let name = display_name(&v.schema, &v.name);
            b.push(
                Phase::DropView,
                if v.materialized {
                    ObjectKind::MaterializedView
                } else {
                    ObjectKind::View
                },
                name.clone(),
                name,
                if t.contains_key(&r) {
                    Action::Replace
                } else {
                    Action::Drop
                },
                format!("DROP {} {};", ddl::view_keyword(v), v.sql_name()),
                h(&[AccessExclusiveLock]),
            );
        }
    }
    for v in topo_views(&to.views) {
        let r = v.table_ref();
        let name = display_name(&v.schema, &v.name);
        let kind = if v.materialized {
            ObjectKind::MaterializedView
        } else {
            ObjectKind::View
        };
        let target = format!("{} {}", ddl::view_keyword(v), v.sql_name());
        let old = f.get(&r).filter(|_| !dirty.contains(&r));
        match old {
            Some(o) => {
                diff_indexes(
                    b,
                    Phase::CreateView,
                    &v.schema,
                    &o.indexes,
                    &v.indexes,
                    &name,
                    true,
                );
                comment_change(
                    b,
                    kind,
                    name.clone(),
                    name,
                    target,
                    o.comment.as_deref(),
                    v.comment.as_deref(),
                );
            }
            None => {
                b.push(
                    Phase::CreateView,
                    kind,
                    name.clone(),
                    name.clone(),
                    if f.contains_key(&r) {
                        Action::Replace
                    } else {
                        Action::Create
                    },
                    ddl::create_view(v),
                    if v.materialized {
                        h(&[ScansTable])
                    } else {
                        none()
                    },
                );
                diff_indexes(
                    b,
                    Phase::CreateView,
                    &v.schema,
                    &[],
                    &v.indexes,
                    &name,
                    false,
                );
                comment_change(
                    b,
                    kind,
                    name.clone(),
                    name,
                    target,
                    None,
                    v.comment.as_deref(),
                );
            }
        }
    }
}
