//! drizzle-kit's own configuration, `drizzle.config.{ts,mts,js,mjs,cjs,json}`, read statically:
//! the object literal passed to `defineConfig(…)` or exported as default (`export default`,
//! `module.exports =`, or a top-level `const` either of those names), parsed with oxc's
//! TypeScript/JavaScript parser. What pgkeel uses of it: `out`, `dialect`,
//! `migrations.{table,schema,prefix}`, `schemaFilter`, `tablesFilter` and `dbCredentials.url`
//! (a literal, or `process.env.NAME`).
//!
//! Owns reading that file into [`DrizzleConfig`]. Must not run Node or evaluate anything: a value
//! computed at run time (a function call, a template with `${…}`, a spread) is not guessed but
//! listed in [`DrizzleConfig::unreadable`], for the caller to say once. Where the values go in
//! the settings (and their precedence) is [`super::load`]'s.

use std::path::{Path, PathBuf};

use oxc_allocator::Allocator;
use oxc_ast::ast::{
    ArrayExpressionElement, Expression, ObjectExpression, ObjectPropertyKind, Program, Statement,
};
use oxc_span::{GetSpan, SourceType};

/// The names drizzle-kit looks for, in the order it tries them.
pub const FILE_NAMES: [&str; 6] = [
    "drizzle.config.ts",
    "drizzle.config.mts",
    "drizzle.config.js",
    "drizzle.config.mjs",
    "drizzle.config.cjs",
    "drizzle.config.json",
];

/// Where `dbCredentials.url` comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlSource {
    /// Written in the file (a secret in a file: the caller warns).
    Literal(String),
    /// `process.env.NAME` (also with `!`, `as string`, or `?? "fallback"`).
    Env {
        name: String,
        fallback: Option<String>,
    },
}

/// A key whose value is computed at run time, so pgkeel cannot read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// `out`, `migrations.table`, …
    pub key: String,
    /// What sets it: "a function call", "a template string with ${…}", …
    pub what: &'static str,
    pub line: usize,
}

/// What pgkeel reads of a drizzle config file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DrizzleConfig {
    pub path: PathBuf,
    pub out: Option<String>,
    pub dialect: Option<String>,
    pub migrations_table: Option<String>,
    pub migrations_schema: Option<String>,
    /// `index` (drizzle's default), `timestamp`, `unix`, `supabase` or `none`.
    pub migrations_prefix: Option<String>,
    pub schema_filter: Option<Vec<String>>,
    pub tables_filter: Option<Vec<String>>,
    pub url: Option<UrlSource>,
    pub unreadable: Vec<Unreadable>,
}

#[derive(Debug, thiserror::Error)]
pub enum DrizzleConfigError {
    #[error("cannot read {}: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}:{line}: {message}; fix the file, or pass --migrations and set the rest in pgkeel.toml", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error(
        "{}: no configuration object found (pgkeel reads `export default defineConfig({{ … }})`, `export default {{ … }}` or `module.exports = …`); pass --migrations, or set the values in pgkeel.toml",
        path.display()
    )]
    NoObject { path: PathBuf },
    #[error(
        "{}: dialect is \"{dialect}\", and pgkeel works with PostgreSQL only (dialect \"postgresql\"); point --drizzle-config at the PostgreSQL project's file",
        path.display()
    )]
    NotPostgres { path: PathBuf, dialect: String },
}

/// The drizzle config file in `dir`, the first of [`FILE_NAMES`] that exists.
pub fn find(dir: &Path) -> Option<PathBuf> {
    FILE_NAMES.iter().map(|n| dir.join(n)).find(|p| p.is_file())
}

/// Reads and parses the file at `path`.
pub fn read(path: &Path) -> Result<DrizzleConfig, DrizzleConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| DrizzleConfigError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    parse(path, &text)
}

/// Parses `text`, the contents of `path` (whose extension says TypeScript, JavaScript or JSON).
pub fn parse(path: &Path, text: &str) -> Result<DrizzleConfig, DrizzleConfigError> {
    let mut cfg = match path.extension().and_then(|e| e.to_str()) {
        Some("json") => from_json(path, text)?,
        _ => from_script(path, text)?,
    };
    cfg.path = path.to_path_buf();
    if let Some(d) = &cfg.dialect {
        if !matches!(d.as_str(), "postgresql" | "postgres") {
            return Err(DrizzleConfigError::NotPostgres {
                path: path.to_path_buf(),
                dialect: d.clone(),
            });
        }
    }
    Ok(cfg)
}

fn line_of(text: &str, offset: u32) -> usize {
    let end = (offset as usize).min(text.len());
    text.get(..end).map_or(1, |t| t.matches('\n').count() + 1)
}

fn from_json(path: &Path, text: &str) -> Result<DrizzleConfig, DrizzleConfigError> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| DrizzleConfigError::Syntax {
            path: path.to_path_buf(),
            line: e.line(),
            message: e.to_string(),
        })?;
    let Some(o) = v.as_object() else {
        return Err(DrizzleConfigError::NoObject {
            path: path.to_path_buf(),
        });
    };
    let s = |v: Option<&serde_json::Value>| v.and_then(|v| v.as_str()).map(str::to_string);
    let list = |v: Option<&serde_json::Value>| match v {
        Some(serde_json::Value::String(s)) => Some(vec![s.clone()]),
        Some(serde_json::Value::Array(a)) => Some(
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
        ),
        _ => None,
    };
    let m = o.get("migrations");
    Ok(DrizzleConfig {
        out: s(o.get("out")),
        dialect: s(o.get("dialect")),
        migrations_table: s(m.and_then(|m| m.get("table"))),
        migrations_schema: s(m.and_then(|m| m.get("schema"))),
        migrations_prefix: s(m.and_then(|m| m.get("prefix"))),
        schema_filter: list(o.get("schemaFilter")),
        tables_filter: list(o.get("tablesFilter")),
        url: s(o.get("dbCredentials").and_then(|c| c.get("url"))).map(UrlSource::Literal),
        ..DrizzleConfig::default()
    })
}

fn from_script(path: &Path, text: &str) -> Result<DrizzleConfig, DrizzleConfigError> {
    let alloc = Allocator::default();
    let source_type = SourceType::from_path(path).unwrap_or_else(|_| SourceType::ts());
    let parsed = oxc_parser::Parser::new(&alloc, text, source_type).parse();
    if let Some(e) = parsed.diagnostics.errors().next() {
        let line = e
            .labels
            .as_ref()
            .first()
            .map_or(1, |l| line_of(text, l.offset()));
        return Err(DrizzleConfigError::Syntax {
            path: path.to_path_buf(),
            line,
            message: e.message.to_string(),
        });
    }
    let Some(object) = config_object(&parsed.program, text) else {
        return Err(DrizzleConfigError::NoObject {
            path: path.to_path_buf(),
        });
    };
    let mut r = Reader {
        text,
        cfg: DrizzleConfig::default(),
    };
    r.read_root(object);
    Ok(r.cfg)
}

/// The object literal the file exports.
fn config_object<'a>(program: &'a Program<'a>, text: &str) -> Option<&'a ObjectExpression<'a>> {
    let exported = program.body.iter().find_map(|s| match s {
        Statement::ExportDefaultDeclaration(d) => d.declaration.as_expression(),
        Statement::ExpressionStatement(e) => match &e.expression {
            Expression::AssignmentExpression(a)
                if text.get(a.left.span().start as usize..a.left.span().end as usize)
                    == Some("module.exports") =>
            {
                Some(&a.right)
            }
            _ => None,
        },
        _ => None,
    })?;
    resolve(program, exported, 0)
}

/// Follows `defineConfig(…)`, TypeScript wrappers (`satisfies Config`, `as Config`) and a
/// top-level `const` to the object literal.
fn resolve<'a>(
    program: &'a Program<'a>,
    e: &'a Expression<'a>,
    depth: usize,
) -> Option<&'a ObjectExpression<'a>> {
    if depth > 4 {
        return None;
    }
    match e.get_inner_expression() {
        Expression::ObjectExpression(o) => Some(o),
        Expression::CallExpression(c) => {
            let arg = c.arguments.first()?.as_expression()?;
            resolve(program, arg, depth + 1)
        }
        Expression::Identifier(id) => {
            let init = program.body.iter().find_map(|s| {
                let Statement::VariableDeclaration(decl) = s else {
                    return None;
                };
                decl.declarations
                    .iter()
                    .find(|d| d.id.get_identifier_name().as_deref() == Some(id.name.as_str()))
                    .and_then(|d| d.init.as_ref())
            })?;
            resolve(program, init, depth + 1)
        }
        _ => None,
    }
}

/// A value as pgkeel can use it, or why not.
enum Value {
    Text(String),
    List(Vec<String>),
    Env {
        name: String,
        fallback: Option<String>,
    },
    Object,
    Computed(&'static str),
}

struct Reader<'t> {
    text: &'t str,
    cfg: DrizzleConfig,
}

impl Reader<'_> {
    fn read_root(&mut self, o: &ObjectExpression<'_>) {
        for (key, e) in self.properties(o, "") {
            match key.as_str() {
                "out" => self.cfg.out = self.text_of(&key, e),
                "dialect" => self.cfg.dialect = self.text_of(&key, e),
                "schemaFilter" => self.cfg.schema_filter = self.list_of(&key, e),
                "tablesFilter" => self.cfg.tables_filter = self.list_of(&key, e),
                "migrations" => {
                    if let Expression::ObjectExpression(m) = e.get_inner_expression() {
                        for (k, v) in self.properties(m, "migrations.") {
                            match k.as_str() {
                                "migrations.table" => {
                                    self.cfg.migrations_table = self.text_of(&k, v)
                                }
                                "migrations.schema" => {
                                    self.cfg.migrations_schema = self.text_of(&k, v)
                                }
                                "migrations.prefix" => {
                                    self.cfg.migrations_prefix = self.text_of(&k, v)
                                }
                                _ => {}
                            }
                        }
                    } else {
                        self.computed(&key, e);
                    }
                }
                "dbCredentials" => {
                    if let Expression::ObjectExpression(c) = e.get_inner_expression() {
                        for (k, v) in self.properties(c, "dbCredentials.") {
                            if k == "dbCredentials.url" {
                                self.cfg.url = match value(v) {
                                    Value::Text(s) => Some(UrlSource::Literal(s)),
                                    Value::Env { name, fallback } => {
                                        Some(UrlSource::Env { name, fallback })
                                    }
                                    _ => {
                                        self.computed(&k, v);
                                        None
                                    }
                                };
                            }
                        }
                    } else {
                        self.computed(&key, e);
                    }
                }
                _ => {}
            }
        }
    }

    /// The properties of `o` with a static name, as `prefix` + name. A spread (`...base`) may
    /// set any key: it is reported under `prefix` + `…`.
    fn properties<'o, 'a>(
        &mut self,
        o: &'o ObjectExpression<'a>,
        prefix: &str,
    ) -> Vec<(String, &'o Expression<'a>)> {
        let mut out = Vec::new();
        for p in &o.properties {
            match p {
                ObjectPropertyKind::ObjectProperty(p) => match p.key.static_name() {
                    Some(name)
                        if !p.computed
                            || matches!(p.key, oxc_ast::ast::PropertyKey::StringLiteral(_)) =>
                    {
                        out.push((format!("{prefix}{name}"), &p.value))
                    }
                    _ => {}
                },
                ObjectPropertyKind::SpreadProperty(s) => self.cfg.unreadable.push(Unreadable {
                    key: format!("{prefix}…"),
                    what: "a spread (...)",
                    line: line_of(self.text, s.span.start),
                }),
            }
        }
        out
    }

    fn computed(&mut self, key: &str, e: &Expression<'_>) {
        let what = match value(e) {
            Value::Computed(w) => w,
            Value::Env { .. } => "an environment variable",
            _ => "a value of another type",
        };
        self.cfg.unreadable.push(Unreadable {
            key: key.to_string(),
            what,
            line: line_of(self.text, e.span().start),
        });
    }

    fn text_of(&mut self, key: &str, e: &Expression<'_>) -> Option<String> {
        match value(e) {
            Value::Text(s) => Some(s),
            _ => {
                self.computed(key, e);
                None
            }
        }
    }

    fn list_of(&mut self, key: &str, e: &Expression<'_>) -> Option<Vec<String>> {
        match value(e) {
            Value::Text(s) => Some(vec![s]),
            Value::List(l) => Some(l),
            _ => {
                self.computed(key, e);
                None
            }
        }
    }
}

fn value(e: &Expression<'_>) -> Value {
    match e.get_inner_expression() {
        Expression::StringLiteral(s) => Value::Text(s.value.to_string()),
        Expression::TemplateLiteral(t) if t.expressions.is_empty() => {
            match t.quasis.first().and_then(|q| q.value.cooked.as_ref()) {
                Some(c) => Value::Text(c.to_string()),
                None => Value::Computed("a template string"),
            }
        }
        Expression::TemplateLiteral(_) => Value::Computed("a template string with ${…}"),
        Expression::ArrayExpression(a) => {
            let mut out = Vec::new();
            for el in &a.elements {
                match el {
                    ArrayExpressionElement::StringLiteral(s) => out.push(s.value.to_string()),
                    _ => return Value::Computed("an array of computed values"),
                }
            }
            Value::List(out)
        }
        Expression::ObjectExpression(_) => Value::Object,
        Expression::LogicalExpression(l) => match (value(&l.left), value(&l.right)) {
            (Value::Env { name, .. }, Value::Text(f)) => Value::Env {
                name,
                fallback: Some(f),
            },
            _ => Value::Computed("an expression"),
        },
        inner => {
            if let Some(name) = env_var(inner) {
                return Value::Env {
                    name,
                    fallback: None,
                };
            }
            Value::Computed(match inner {
                Expression::CallExpression(_) => "a function call",
                Expression::Identifier(_) => "a variable",
                Expression::ConditionalExpression(_) => "a condition",
                _ => "an expression",
            })
        }
    }
}

/// `NAME` of `process.env.NAME` / `process.env["NAME"]`.
fn env_var(e: &Expression<'_>) -> Option<String> {
    let m = e.as_member_expression()?;
    let env = m.object().get_inner_expression().as_member_expression()?;
    let process = match env.object().get_inner_expression() {
        Expression::Identifier(id) => id.name.as_str() == "process",
        _ => false,
    };
    (process && env.static_property_name() == Some("env"))
        .then(|| m.static_property_name().map(str::to_string))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(text: &str) -> DrizzleConfig {
        parse(Path::new("drizzle.config.ts"), text).unwrap()
    }

    #[test]
    fn reads_define_config_with_every_key_pgkeel_uses() {
        let c = ts(r#"import { defineConfig } from "drizzle-kit";
export default defineConfig({
  schema: "./src/db/schema.ts",
  out: "./src/db/migrations",
  dialect: "postgresql",
  migrations: { table: "app_migrations", schema: 'public', prefix: `timestamp` },
  dbCredentials: { url: process.env.DATABASE_URL! },
  schemaFilter: ["public", "auth"],
  tablesFilter: "app_*",
});
"#);
        assert_eq!(c.out.as_deref(), Some("./src/db/migrations"));
        assert_eq!(c.migrations_table.as_deref(), Some("app_migrations"));
        assert_eq!(c.migrations_schema.as_deref(), Some("public"));
        assert_eq!(c.migrations_prefix.as_deref(), Some("timestamp"));
        assert_eq!(
            c.url,
            Some(UrlSource::Env {
                name: "DATABASE_URL".into(),
                fallback: None
            })
        );
        assert_eq!(c.schema_filter, Some(vec!["public".into(), "auth".into()]));
        assert_eq!(c.tables_filter, Some(vec!["app_*".into()]));
        assert!(c.unreadable.is_empty(), "{:?}", c.unreadable);
    }

    #[test]
    fn follows_a_const_with_satisfies_and_module_exports() {
        let c = ts(r#"import type { Config } from "drizzle-kit";
const config = {
  out: "./drizzle",
  dialect: "postgresql",
  dbCredentials: { url: process.env["POSTGRES_URL"] ?? "postgres://localhost/dev" },
} satisfies Config;
export default config;
"#);
        assert_eq!(c.out.as_deref(), Some("./drizzle"));
        assert_eq!(
            c.url,
            Some(UrlSource::Env {
                name: "POSTGRES_URL".into(),
                fallback: Some("postgres://localhost/dev".into())
            })
        );
        let js = parse(
            Path::new("drizzle.config.cjs"),
            "module.exports = { out: 'migrations', dialect: 'postgresql' };",
        )
        .unwrap();
        assert_eq!(js.out.as_deref(), Some("migrations"));
    }

    #[test]
    fn computed_values_are_listed_never_guessed() {
        let c = ts(r#"import path from "node:path";
const base = { dialect: "postgresql" };
export default defineConfig({
  ...base,
  out: path.join(__dirname, "migrations"),
  migrations: { table: `${prefix}_migrations` },
});
"#);
        assert_eq!(c.out, None);
        let keys: Vec<(&str, &str, usize)> = c
            .unreadable
            .iter()
            .map(|u| (u.key.as_str(), u.what, u.line))
            .collect();
        assert_eq!(
            keys,
            [
                ("…", "a spread (...)", 4),
                ("out", "a function call", 5),
                ("migrations.table", "a template string with ${…}", 6)
            ]
        );
    }

    #[test]
    fn another_dialect_a_syntax_error_and_no_object_are_errors_naming_the_file() {
        let e = parse(
            Path::new("drizzle.config.ts"),
            "export default { dialect: 'sqlite' }",
        )
        .unwrap_err();
        assert!(e.to_string().contains("\"sqlite\""), "{e}");
        let e = parse(
            Path::new("drizzle.config.ts"),
            "export default {\n  out: ,\n}",
        )
        .unwrap_err();
        assert!(
            matches!(e, DrizzleConfigError::Syntax { line: 2, .. }),
            "{e}"
        );
        let e = parse(Path::new("drizzle.config.ts"), "export const x = 1;").unwrap_err();
        assert!(matches!(e, DrizzleConfigError::NoObject { .. }), "{e}");
        let j = parse(
            Path::new("drizzle.config.json"),
            r#"{"out": "db/migrations", "dialect": "postgresql", "migrations": {"schema": "public"}}"#,
        )
        .unwrap();
        assert_eq!(j.migrations_schema.as_deref(), Some("public"));
    }
}
