//! The example project (`examples/cfi-handbook`) embedded in the binary, so `pgkeel demo` works
//! from an installed binary without a checkout, and the little SQL the demo runs beside pgkeel's
//! commands (seed rows, a hand-made change for `validate` to find). The demo's flow (which
//! commands to show, in which order) lives in the CLI, which runs each as a real `pgkeel`.

use std::path::{Path, PathBuf};

/// `(path relative to the drizzle folder, contents)` of every example file, from the crate's copy
/// of `examples/cfi-handbook/drizzle` (`demo-example/`: a published crate holds only its own
/// files; the test below keeps the copy equal to the example).
pub const EXAMPLE_FILES: &[(&str, &str)] = &[
    (
        "meta/_journal.json",
        include_str!("../demo-example/drizzle/meta/_journal.json"),
    ),
    (
        "0000_brave_wolverine.down.sql",
        include_str!("../demo-example/drizzle/0000_brave_wolverine.down.sql"),
    ),
    (
        "0000_brave_wolverine.sql",
        include_str!("../demo-example/drizzle/0000_brave_wolverine.sql"),
    ),
    (
        "0001_tiny_nightcrawler.down.sql",
        include_str!("../demo-example/drizzle/0001_tiny_nightcrawler.down.sql"),
    ),
    (
        "0001_tiny_nightcrawler.sql",
        include_str!("../demo-example/drizzle/0001_tiny_nightcrawler.sql"),
    ),
    (
        "0002_loose_colossus.down.sql",
        include_str!("../demo-example/drizzle/0002_loose_colossus.down.sql"),
    ),
    (
        "0002_loose_colossus.sql",
        include_str!("../demo-example/drizzle/0002_loose_colossus.sql"),
    ),
    (
        "0003_slim_warhawk.down.sql",
        include_str!("../demo-example/drizzle/0003_slim_warhawk.down.sql"),
    ),
    (
        "0003_slim_warhawk.sql",
        include_str!("../demo-example/drizzle/0003_slim_warhawk.sql"),
    ),
    (
        "0004_happy_banshee.down.sql",
        include_str!("../demo-example/drizzle/0004_happy_banshee.down.sql"),
    ),
    (
        "0004_happy_banshee.sql",
        include_str!("../demo-example/drizzle/0004_happy_banshee.sql"),
    ),
];

/// Writes the example's drizzle folder under `dir` and returns its path.
pub fn write_example(dir: &Path) -> std::io::Result<PathBuf> {
    let root = dir.join("drizzle");
    for (rel, text) in EXAMPLE_FILES {
        let path = root.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, text)?;
    }
    Ok(root)
}

/// Rows the demo inserts after migrating, so backup and restore have something to carry.
pub const SEED_SQL: &str = "INSERT INTO users (email, name) VALUES \
('ada@example.com', 'Ada'), ('grace@example.com', 'Grace'), ('edsger@example.com', 'Edsger')";

/// The hand-made change (drift) the demo plants for `validate` to find, and its undoing.
pub const PLANT_DRIFT_SQL: &str = "ALTER TABLE users ADD COLUMN nickname text";
pub const UNDO_DRIFT_SQL: &str = "ALTER TABLE users DROP COLUMN nickname";

/// Runs one of the demo's statements (the constants above).
pub async fn execute(client: &crate::db::Client, sql: &str) -> Result<(), crate::db::DbError> {
    client
        .batch_execute(sql)
        .await
        .map_err(|e| crate::db::DbError::query("running the demo's SQL", e))
}

/// How many rows the demo's `users` table holds (to show a restore carried them).
pub async fn user_count(client: &crate::db::Client) -> Result<i64, crate::db::DbError> {
    let row = client
        .query_one("SELECT count(*) FROM users", &[])
        .await
        .map_err(|e| crate::db::DbError::query("counting users", e))?;
    Ok(row.get(0))
}

/// The tables of the `public` schema, by name.
pub async fn user_tables(client: &crate::db::Client) -> Result<Vec<String>, crate::db::DbError> {
    let rows = client
        .query(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
            &[],
        )
        .await
        .map_err(|e| crate::db::DbError::query("listing tables", e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn embedded_example_matches_the_checked_in_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = super::write_example(tmp.path()).unwrap();
        let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples/cfi-handbook/drizzle");
        let count = std::fs::read_dir(&here)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "sql")
            })
            .count();
        assert_eq!(
            super::EXAMPLE_FILES.len(),
            count + 1,
            "a new example file must be added to EXAMPLE_FILES"
        );
        for (rel, _) in super::EXAMPLE_FILES {
            assert_eq!(
                std::fs::read(dir.join(rel)).unwrap(),
                std::fs::read(here.join(rel)).unwrap(),
                "{rel}"
            );
        }
    }
}
