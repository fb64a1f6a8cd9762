//! Helpers shared by the CLI's end-to-end tests: the binary with a clean environment, its JSON
//! output parsed, the example project.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;

pub mod s3;

/// `pgkeel` in `cwd` with a clean environment: no inherited DATABASE_URL/PG*, no colour.
pub fn pgkeel(cwd: &Path) -> Command {
    let mut cmd = Command::cargo_bin("pgkeel").unwrap();
    cmd.current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("NO_COLOR", "1");
    cmd
}

/// Stdout parsed as one JSON document (the test fails with the text when it is not).
pub fn json(out: &[u8]) -> serde_json::Value {
    serde_json::from_slice(out).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}): {}",
            String::from_utf8_lossy(out)
        )
    })
}

/// The first line of `text` that `wanted` accepts; the test fails with the whole text when none.
pub fn line_where(text: &str, wanted: impl Fn(&str) -> bool) -> &str {
    text.lines()
        .find(|l| wanted(l))
        .unwrap_or_else(|| panic!("no such line in\n{text}"))
}

/// The example project's drizzle-kit folder.
pub fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/cfi-handbook/drizzle")
}
