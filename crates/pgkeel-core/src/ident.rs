//! SQL identifiers and literals as text: quoting, schema-qualified names, and the minimal
//! quoting PostgreSQL's own `quote_ident` does.
//!
//! A leaf: it depends on nothing else in the crate (only on PostgreSQL's scanner, for
//! keywords), so the parser, the schema model and the engine can all quote the same way. It
//! must not touch the database.

/// Quotes an identifier for SQL (`"My Table"`), doubling embedded quotes.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Quotes a string literal for SQL in a way that does not depend on
/// `standard_conforming_strings`: `E'…'` with backslashes and quotes escaped.
pub fn quote_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    out.push_str("E'");
    for ch in s.chars() {
        match ch {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// `schema.table`, both quoted.
pub fn qualified(schema: &str, table: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(table))
}

/// An identifier as SQL text, quoted only when it must be (as PostgreSQL's `quote_ident`):
/// anything but lowercase letters, digits and underscores, a leading digit, or a keyword that
/// is not unreserved. Keywords are looked up with PostgreSQL's own scanner.
pub fn minimal(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    let keyword = || match pg_query::scan(name) {
        Ok(scan) => match scan.tokens.as_slice() {
            [t] => !matches!(
                pg_query::protobuf::KeywordKind::try_from(t.keyword_kind),
                Ok(pg_query::protobuf::KeywordKind::NoKeyword
                    | pg_query::protobuf::KeywordKind::UnreservedKeyword)
            ),
            _ => true,
        },
        Err(_) => true,
    };
    if plain && !keyword() {
        name.to_string()
    } else {
        quote_ident(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_doubles_quotes_and_escapes_backslashes() {
        assert_eq!(quote_ident("My \"T\""), "\"My \"\"T\"\"\"");
        assert_eq!(quote_literal("it's \\ ok"), "E'it''s \\\\ ok'");
        assert_eq!(qualified("s", "t"), "\"s\".\"t\"");
        assert_eq!(quote_literal(r"a\b"), r"E'a\\b'");
    }

    #[test]
    fn minimal_quotes_only_what_must_be_quoted() {
        assert_eq!(minimal("users"), "users");
        assert_eq!(minimal("user"), "\"user\"");
        assert_eq!(minimal("Users"), "\"Users\"");
        assert_eq!(minimal("1a"), "\"1a\"");
        assert_eq!(minimal("naïve"), "\"naïve\"");
    }
}
