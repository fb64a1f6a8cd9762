//! Places in a migration file: a byte offset turned into a 1-based line and column (columns
//! count characters), the line's text, and the rustc-style `--> file:line:col` rendering with a
//! caret that every error pointing into a file uses.
//!
//! A leaf: it uses nothing else of the crate and touches neither the database nor the disk.

use std::path::PathBuf;

use serde::Serialize;

/// A place in a migration file, printed rustc-style.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct Location {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
    pub line_text: String,
}

impl Location {
    pub fn in_file(path: &std::path::Path, text: &str, offset: usize) -> Self {
        let (line, column) = line_col(text, offset);
        Location {
            path: path.to_path_buf(),
            line,
            column,
            line_text: text
                .lines()
                .nth(line - 1)
                .unwrap_or("")
                .trim_end_matches('\r')
                .to_string(),
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let num = self.line.to_string();
        let pad = " ".repeat(num.len());
        let caret_pad: String = self
            .line_text
            .chars()
            .take(self.column.saturating_sub(1))
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        write!(
            f,
            "  --> {}:{}:{}\n{pad} |\n{num} | {}\n{pad} | {caret_pad}^",
            self.path.display(),
            self.line,
            self.column,
            self.line_text
        )
    }
}

/// 1-based line and column of `byte_offset` in `text`; the column counts characters (a leading
/// BOM is not counted). An offset past the end or inside a character is moved back to the
/// nearest character boundary.
pub fn line_col(text: &str, byte_offset: usize) -> (usize, usize) {
    let mut offset = byte_offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let mut column = before[line_start..].chars().count() + 1;
    if line_start == 0 && before.starts_with('\u{feff}') {
        column -= 1;
    }
    (line, column)
}

/// The 1-based `line` of `text` without its line ending; `""` when out of range.
pub fn line_at(text: &str, line: usize) -> &str {
    if line == 0 {
        return "";
    }
    text.split('\n')
        .nth(line - 1)
        .map_or("", |l| l.strip_suffix('\r').unwrap_or(l))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_chars_and_clamps() {
        let text = "ab\nçé x\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 3), (2, 1));
        // "x" is at byte 3 + 2 + 2 + 1 = 8: third character after two 2-byte ones.
        assert_eq!(line_col(text, 8), (2, 4));
        // Inside "ç" falls back to its start.
        assert_eq!(line_col(text, 4), (2, 1));
        assert_eq!(line_col(text, 999), (3, 1));
        assert_eq!(line_col("\u{feff}ab", 4), (1, 2));
        assert_eq!(line_at(text, 1), "ab");
        assert_eq!(line_at(text, 2), "çé x");
        assert_eq!(line_at(text, 0), "");
        assert_eq!(line_at(text, 9), "");
        assert_eq!(line_at("a\r\nb", 1), "a");
    }
}
