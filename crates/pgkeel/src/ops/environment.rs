//! The deployment environment every command shares (`--env`, `PGKEEL_ENV`): production,
//! staging or development, with the `prod`, `stage` and `dev` aliases, in any case. It owns the
//! parsing (an unknown or empty value is refused before anything runs); what each environment
//! implies (a backup first, lint gates) is decided by [`super::production`] and
//! [`super::deploy`], not here.

use serde::Serialize;

/// The deployment environment: decides the defaults of what protects the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Production,
    Staging,
    Development,
}

impl Environment {
    /// True for production: the environment where a verified backup comes before any change.
    pub fn is_production(self) -> bool {
        self == Environment::Production
    }
}

impl std::str::FromStr for Environment {
    type Err = String;

    /// `production`/`prod`, `staging`/`stage`, `development`/`dev`, in any case, surrounding
    /// whitespace ignored (a value pasted into a secret store often ends in a newline).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "production" | "prod" => Ok(Environment::Production),
            "staging" | "stage" => Ok(Environment::Staging),
            "development" | "dev" => Ok(Environment::Development),
            "" => Err(
                "the environment is empty (an empty PGKEEL_ENV?): use production, staging or development, or unset PGKEEL_ENV"
                    .into(),
            ),
            other => Err(format!(
                "unknown environment {other:?}: use production, staging or development (or prod, stage, dev)"
            )),
        }
    }
}

impl std::fmt::Display for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Environment::Production => "production",
            Environment::Staging => "staging",
            Environment::Development => "development",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases_in_any_case_and_nothing_else() {
        for (s, want) in [
            ("production", Environment::Production),
            ("PRODUCTION", Environment::Production),
            ("prod", Environment::Production),
            (" Prod\n", Environment::Production),
            ("staging", Environment::Staging),
            ("stage", Environment::Staging),
            ("Development", Environment::Development),
            ("dev", Environment::Development),
        ] {
            assert_eq!(s.parse::<Environment>(), Ok(want), "{s:?}");
        }
        for bad in ["prodution", "qa", "", "  ", "production2", "pro"] {
            assert!(bad.parse::<Environment>().is_err(), "{bad:?}");
        }
    }
}
