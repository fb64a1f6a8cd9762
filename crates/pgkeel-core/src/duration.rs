//! Durations as users write them: `500ms`, `5s`, `2min`, `1h`, `0`/`off` in directives, flags
//! and alert thresholds; bare milliseconds too in pgkeel.toml and the environment; and the
//! canonical form `pgkeel config` prints.
//!
//! A leaf: it uses nothing else of the crate.

use std::time::Duration;

/// Parses a duration in directive/config syntax: an integer and a unit `ms`, `s`, `min` or `h`
/// (`500ms`, `5s`, `2min`, `1h`), or `0`/`off` for [`Duration::ZERO`] (disabled). Surrounding
/// whitespace is ignored; anything else (no unit, negative, fractions, overflow) is `None`.
pub fn parse(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s == "0" || s == "off" {
        return Some(Duration::ZERO);
    }
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let n: u64 = s[..digits].parse().ok()?;
    let ms_per_unit: u64 = match &s[digits..] {
        "ms" => 1,
        "s" => 1000,
        "min" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    Some(Duration::from_millis(n.checked_mul(ms_per_unit)?))
}

/// Parses a duration as pgkeel.toml and the environment write it: bare digits are
/// milliseconds, otherwise [`parse`] syntax (`500ms`, `5s`, `2min`, `1h`, `off`).
pub fn parse_value(s: &str) -> Option<Duration> {
    let t = s.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse().ok().map(Duration::from_millis);
    }
    parse(t)
}

/// `off`, or the largest unit that divides the duration exactly (`30s`, `10min`, `1500ms`): the
/// syntax pgkeel.toml and `PGKEEL_*` variables accept.
pub fn format(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "off".into();
    }
    for (unit, len) in [("h", 3_600_000), ("min", 60_000), ("s", 1000)] {
        if ms % len == 0 {
            return format!("{}{unit}", ms / len);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_duration_units() {
        assert_eq!(parse("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse(" 2min "), Some(Duration::from_secs(120)));
        assert_eq!(parse("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse("0"), Some(Duration::ZERO));
        assert_eq!(parse("off"), Some(Duration::ZERO));
        assert_eq!(parse("0s"), Some(Duration::ZERO));
        for bad in [
            "",
            "5",
            "5m",
            "-5s",
            "1.5s",
            "5 s",
            "s",
            "5sec",
            "99999999999999999999h",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn format_round_trips_through_parse_value() {
        for ms in [0u64, 1, 999, 1000, 1500, 60_000, 90_000, 3_600_000] {
            let d = Duration::from_millis(ms);
            assert_eq!(parse_value(&format(d)), Some(d), "{ms}");
        }
        assert_eq!(parse_value("250"), Some(Duration::from_millis(250)));
    }
}
