//! The leading `-- pgkeel:` directives of a migration or rollback file ([`Directives`]) and
//! the per-migration timeouts they set ([`Timeout`]): parsed from the comment lines before the
//! first SQL line; unknown or misplaced ones are errors.

use super::*;

/// A timeout set by a directive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timeout {
    /// `0` or `off`: no timeout (PostgreSQL's `0`).
    Off,
    /// A positive duration.
    After(Duration),
}

impl Timeout {
    /// `Duration::ZERO` becomes [`Timeout::Off`].
    pub fn from_duration(duration: Duration) -> Self {
        if duration.is_zero() {
            Self::Off
        } else {
            Self::After(duration)
        }
    }

    /// The duration, `Duration::ZERO` for [`Timeout::Off`] (PostgreSQL's meaning of 0).
    pub fn as_duration(self) -> Duration {
        match self {
            Self::Off => Duration::ZERO,
            Self::After(d) => d,
        }
    }

    /// The value for `SET lock_timeout = '...'` / `statement_timeout`: `0` or `NNNms`.
    pub fn pg_value(self) -> String {
        match self {
            Self::Off => "0".to_owned(),
            Self::After(d) => format!("{}ms", d.as_millis()),
        }
    }
}

impl fmt::Display for Timeout {
    /// Canonical directive syntax: `off`, `500ms`, `5s`, `2min`, `1h`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Off => f.write_str("off"),
            Self::After(d) => {
                let ms = d.as_millis();
                if ms % 3_600_000 == 0 {
                    write!(f, "{}h", ms / 3_600_000)
                } else if ms % 60_000 == 0 {
                    write!(f, "{}min", ms / 60_000)
                } else if ms % 1000 == 0 {
                    write!(f, "{}s", ms / 1000)
                } else {
                    write!(f, "{ms}ms")
                }
            }
        }
    }
}

impl schemars::JsonSchema for Timeout {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Timeout".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A duration in directive syntax: `5s`, `500ms`, `2min`, or `off`"
        })
    }
}

impl Serialize for Timeout {
    /// Serialised in directive syntax (`"5s"`, `"off"`), which [`crate::duration::parse`] reads back.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Per-migration settings declared in the file's leading comment lines.
///
/// Directives are `--` comment lines at the top of a migration file, before its first line of
/// SQL (blank lines and other comments may come between them). One per line:
///
/// | Directive | Meaning |
/// |---|---|
/// | `-- pgkeel:no-transaction` | Run this migration outside a transaction, statement by statement (needed for `CREATE INDEX CONCURRENTLY`, `REINDEX CONCURRENTLY`, `VACUUM`, ...). |
/// | `-- pgkeel:lock-timeout 5s` | `lock_timeout` for this migration, overriding the configured one; `0` or `off` disables it. |
/// | `-- pgkeel:statement-timeout 2min` | `statement_timeout` for this migration; `0` or `off` disables it. |
/// | `-- pgkeel:retries 3` | Tries in all, the first included, on a lock timeout, deadlock or serialization failure. |
/// | `-- pgkeel:irreversible` | The migration intentionally has no rollback (no down file may exist). |
///
/// Durations are an integer and a unit, `ms`, `s`, `min` or `h` (`500ms`, `5s`, `2min`, `1h`),
/// or `0`/`off` to disable. An unknown `-- pgkeel:` directive, a bad value, a directive given
/// twice, or a `-- pgkeel:` line after the first SQL line is an error, so a typo never goes
/// unnoticed. Rollback files may carry directives too (except `irreversible`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Directives {
    /// `-- pgkeel:no-transaction`.
    pub no_transaction: bool,
    /// `-- pgkeel:lock-timeout D`; `None` = not set (use the configured default).
    pub lock_timeout: Option<Timeout>,
    /// `-- pgkeel:statement-timeout D`; `None` = not set (use the configured default).
    pub statement_timeout: Option<Timeout>,
    /// `-- pgkeel:retries N`; `None` = not set.
    pub retries: Option<u32>,
    /// `-- pgkeel:irreversible`.
    pub irreversible: bool,
}

/// Splits text into lines the way editors number them (`\n`, with a `\r` before it dropped).
pub(super) fn numbered_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .enumerate()
        .map(|(i, l)| (i + 1, l))
}

/// The `-- pgkeel:` directives at the top of a migration file's `text` (lint suppressions,
/// `ignore` / `ignore-file`, are skipped here: the `lint` module reads them).
pub fn directives_of(path: &Path, text: &str) -> Result<Directives, SourceError> {
    parse_directives(path, text, false)
}

pub(super) fn parse_directives(
    path: &Path,
    text: &str,
    is_down: bool,
) -> Result<Directives, SourceError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut d = Directives::default();
    let mut in_header = true;
    let mut seen: Vec<&str> = Vec::new();
    for (line_no, line) in numbered_lines(text) {
        let trimmed = line.trim();
        let comment = trimmed.strip_prefix("--").map(str::trim_start);
        if in_header && trimmed.is_empty() {
            continue;
        }
        if comment.is_none() {
            in_header = false;
            continue;
        }
        let Some(rest) = comment.and_then(|c| c.strip_prefix("pgkeel:")) else {
            continue;
        };
        let err = |problem| SourceError::BadDirective {
            path: path.to_path_buf(),
            line: line_no,
            text: trimmed.to_owned(),
            problem,
        };
        let rest = rest.trim();
        let (name, value) = match rest.find(char::is_whitespace) {
            Some(i) => (&rest[..i], rest[i..].trim()),
            None => (rest, ""),
        };
        // Lint suppressions may stand anywhere and repeat; the `lint` module checks them.
        if matches!(name, "ignore" | "ignore-file") {
            continue;
        }
        if !in_header {
            return Err(err(DirectiveProblem::NotInHeader));
        }
        let owned = || name.to_owned();
        if seen.contains(&name) {
            return Err(err(DirectiveProblem::Duplicate { name: owned() }));
        }
        let needs_value = matches!(name, "lock-timeout" | "statement-timeout" | "retries");
        let is_flag = matches!(name, "no-transaction" | "irreversible");
        if !needs_value && !is_flag {
            return Err(err(DirectiveProblem::Unknown { name: owned() }));
        }
        if needs_value && value.is_empty() {
            return Err(err(DirectiveProblem::MissingValue { name: owned() }));
        }
        if is_flag && !value.is_empty() {
            return Err(err(DirectiveProblem::UnexpectedValue { name: owned() }));
        }
        let bad_value = || DirectiveProblem::BadValue {
            name: name.to_owned(),
            value: value.to_owned(),
        };
        match name {
            "no-transaction" => d.no_transaction = true,
            "irreversible" if is_down => {
                return Err(err(DirectiveProblem::NotAllowedInDown { name: owned() }));
            }
            "irreversible" => d.irreversible = true,
            "lock-timeout" | "statement-timeout" => {
                let t = crate::duration::parse(value)
                    .map(Timeout::from_duration)
                    .ok_or_else(|| err(bad_value()))?;
                if name == "lock-timeout" {
                    d.lock_timeout = Some(t);
                } else {
                    d.statement_timeout = Some(t);
                }
            }
            _ => {
                // "retries"
                let n: u32 = value.parse().map_err(|_| err(bad_value()))?;
                d.retries = Some(n);
            }
        }
        seen.push(name);
    }
    Ok(d)
}
