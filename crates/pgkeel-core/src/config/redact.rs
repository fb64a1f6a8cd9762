//! Redaction: a database URL or libpq conninfo string with its password (and `sslpassword`)
//! hidden, for every URL that reaches a log, an error or a report.

/// Hides the password of a database URL or libpq conninfo string, keeping the rest:
///
/// - `postgresql://user:secret@host/db` → `postgresql://user:***@host/db`;
/// - query parameters `password=` and `sslpassword=` → `password=***`;
/// - `host=h password=secret` → `host=h password=***` (quoted values too).
///
/// A URL's user information ends at its last `@`, so a password holding unencoded `@`, `/`, `?`
/// or `:` is still hidden whole (at worst more than the password is hidden). Never panics.
pub fn redact_url(s: &str) -> String {
    let Some(sep) = s.find("://") else {
        return redact_conninfo(s);
    };
    let rest = &s[sep + 3..];
    let mut out = String::with_capacity(s.len());
    out.push_str(&s[..sep + 3]);
    let tail = match rest.rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            match userinfo.find(':') {
                Some(colon) => {
                    out.push_str(&userinfo[..colon]);
                    out.push_str(":***");
                }
                None => out.push_str(userinfo),
            }
            out.push('@');
            &rest[at + 1..]
        }
        None => rest,
    };
    match tail.split_once('?') {
        Some((before, query)) => {
            out.push_str(before);
            out.push('?');
            out.push_str(&redact_query(query));
        }
        None => out.push_str(tail),
    }
    out
}

pub(super) fn is_secret_param(name: &str) -> bool {
    let name = percent_encoding::percent_decode_str(name.trim()).decode_utf8_lossy();
    name.eq_ignore_ascii_case("password") || name.eq_ignore_ascii_case("sslpassword")
}

/// `a=1&password=x` → `a=1&password=***`.
pub(super) fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if is_secret_param(name) => format!("{name}=***"),
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// libpq keyword/value syntax: `password = 'a \' b'` → `password = ***`. Anything else is
/// copied as it is; text that is not conninfo at all comes back unchanged.
pub(super) fn redact_conninfo(s: &str) -> String {
    let b = s.as_bytes();
    let ws = |i: usize| i < b.len() && b[i].is_ascii_whitespace();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    // Every index the loop slices at is 0, the length, or that of an ASCII byte, so a char
    // boundary.
    while i < b.len() {
        let start = i;
        while ws(i) {
            i += 1;
        }
        let kw_start = i;
        while i < b.len() && b[i] != b'=' && !ws(i) {
            i += 1;
        }
        let keyword = &s[kw_start..i];
        while ws(i) {
            i += 1;
        }
        if i >= b.len() || b[i] != b'=' {
            out.push_str(&s[start..i]);
            continue;
        }
        i += 1;
        while ws(i) {
            i += 1;
        }
        out.push_str(&s[start..i]);
        let value_start = i;
        if i < b.len() && b[i] == b'\'' {
            i += 1;
            while i < b.len() && b[i] != b'\'' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i = (i + 1).min(b.len());
        } else {
            while i < b.len() && !ws(i) {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i = i.min(b.len());
        }
        if is_secret_param(keyword) {
            out.push_str("***");
        } else {
            out.push_str(&s[value_start..i]);
        }
    }
    out
}

/// Redacts every URL and conninfo password in free text (an error message quoting a line).
pub fn redact_text(text: &str) -> String {
    text.split_inclusive('\n')
        .map(|line| {
            let urls_hidden: String = line
                .split_inclusive(|c: char| c.is_ascii_whitespace())
                .map(|word| {
                    if word.contains("://") {
                        redact_url(word)
                    } else {
                        word.to_string()
                    }
                })
                .collect();
            redact_conninfo(&urls_hidden)
        })
        .collect()
}
