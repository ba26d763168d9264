//! PostgreSQL: a sink that keeps a table up to date — appended rows, or an updating result
//! upserted and deleted by primary key — exactly once with checkpoints (two-phase commit),
//! and a change-data-capture source that reads a table's changes through logical replication
//! (pgoutput) as a changelog, from a consistent snapshot on.
//!
//! - [`sink`]: [`PostgresSink`] and [`PostgresSinkConfig`] (also from Flink's JDBC options);
//! - [`cdc`]: [`PostgresCdcSource`] and [`PostgresCdcConfig`];
//! - [`types`]: column types, binary array parameters, pgoutput's text values.
//!
//! Connections: the sfackler `postgres` crate (synchronous, on the task threads). Passwords
//! come from the options, an environment variable or a file, and are never logged or shown
//! in errors. docs/connectors/postgres.md has the whole story.

pub mod cdc;
mod pgoutput;
pub mod sink;
pub mod types;

pub use cdc::{PostgresCdcConfig, PostgresCdcMetrics, PostgresCdcSource};
pub use sink::{PostgresSink, PostgresSinkConfig, PostgresSinkMetrics};

use postgres::error::SqlState;
use postgres::{Client, NoTls};
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;
use streamcore::{Result, StreamError};
use types::PgType;

/// Where a connection's password comes from. Its `Debug` form never shows the password.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Password {
    /// None (trust or peer authentication, or a password in the URL).
    #[default]
    None,
    /// Given directly (Flink's `password` option).
    Value(String),
    /// Read from this environment variable when connecting.
    Env(String),
    /// Read from this file when connecting (a trailing newline is dropped).
    File(PathBuf),
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Password::None => f.write_str("None"),
            Password::Value(_) => f.write_str("Value(<redacted>)"),
            Password::Env(v) => write!(f, "Env({v:?})"),
            Password::File(p) => write!(f, "File({p:?})"),
        }
    }
}

impl Password {
    fn resolve(&self) -> Result<Option<String>> {
        match self {
            Password::None => Ok(None),
            Password::Value(v) => Ok(Some(v.clone())),
            Password::Env(var) => std::env::var(var).map(Some).map_err(|_| {
                StreamError::Config(format!(
                    "postgres: the password variable `{var}` is not set (or not UTF-8)"
                ))
            }),
            Password::File(path) => std::fs::read_to_string(path)
                .map(|s| Some(s.trim_end_matches(['\n', '\r']).to_string()))
                .map_err(|e| {
                    StreamError::Config(format!(
                        "postgres: cannot read the password file {}: {e}",
                        path.display()
                    ))
                }),
        }
    }
}

/// How to reach the database: a URL (`postgresql://host:port/db`, Flink's
/// `jdbc:postgresql://…` too, or `host=… port=…` key-value form), a user and a password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgConnection {
    /// The URL, as given.
    pub url: String,
    /// The user (overrides one in the URL).
    pub username: Option<String>,
    /// The password.
    pub password: Password,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// The `application_name` of the connections (default `streamcore`): what
    /// `pg_stat_activity` shows for them.
    pub application_name: String,
}

impl PgConnection {
    /// A connection to `url`.
    pub fn new(url: &str) -> Self {
        PgConnection {
            url: url.to_string(),
            username: None,
            password: Password::None,
            connect_timeout: Duration::from_secs(10),
            application_name: "streamcore".into(),
        }
    }

    /// Reads `url`, `username`, `password`, `password-env`, `password-file`,
    /// `application-name` and `connect-timeout` (e.g. `10s`) from Flink-style options.
    pub fn from_options(options: &BTreeMap<String, String>) -> Result<Self> {
        let url = options
            .get("url")
            .ok_or_else(|| StreamError::Config("postgres: the option `url` is required".into()))?;
        let mut c = PgConnection::new(url);
        c.username = options.get("username").cloned();
        c.password = match (
            options.get("password"),
            options.get("password-env"),
            options.get("password-file"),
        ) {
            (Some(p), None, None) => Password::Value(p.clone()),
            (None, Some(v), None) => Password::Env(v.clone()),
            (None, None, Some(f)) => Password::File(f.into()),
            (None, None, None) => Password::None,
            _ => {
                return Err(StreamError::Config(
                    "postgres: give only one of `password`, `password-env`, `password-file`".into(),
                ))
            }
        };
        if let Some(a) = options.get("application-name") {
            c.application_name = a.clone();
        }
        if let Some(t) = options.get("connect-timeout") {
            c.connect_timeout = parse_duration(t)
                .map_err(|e| StreamError::Config(format!("postgres: `connect-timeout`: {e}")))?;
        }
        Ok(c)
    }

    /// The connection's configuration without the password.
    fn base_config(&self) -> Result<postgres::Config> {
        let url = self.url.strip_prefix("jdbc:").unwrap_or(&self.url);
        let mut config = postgres::Config::from_str(url)
            .map_err(|e| StreamError::Config(format!("postgres: the url is not valid ({e})")))?;
        if let Some(user) = &self.username {
            config.user(user);
        }
        Ok(config)
    }

    fn config(&self) -> Result<postgres::Config> {
        let mut config = self.base_config()?;
        if let Some(password) = self.password.resolve()? {
            config.password(password);
        }
        config.connect_timeout(self.connect_timeout);
        config.application_name(&self.application_name);
        Ok(config)
    }

    /// `user@host:port/db`, for messages (never the password).
    pub fn describe(&self) -> String {
        let Ok(c) = self.base_config() else {
            return "postgres (invalid url)".into();
        };
        let host = match c.get_hosts().first() {
            Some(postgres::config::Host::Tcp(h)) => h.clone(),
            Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => "localhost".into(),
        };
        let port = c.get_ports().first().copied().unwrap_or(5432);
        format!(
            "{}@{host}:{port}/{}",
            c.get_user().unwrap_or("?"),
            c.get_dbname().unwrap_or("")
        )
    }

    /// Opens a connection; the error names the server and says what failed (a refused
    /// connection, a wrong password), never the password.
    pub fn connect(&self) -> Result<Client> {
        let config = self.config()?;
        config.connect(NoTls).map_err(|e| {
            let why = match e.code() {
                Some(c) if *c == SqlState::INVALID_PASSWORD => {
                    "authentication failed (wrong user or password)".to_string()
                }
                _ => error_text(&e),
            };
            StreamError::External {
                system: "postgres".into(),
                message: format!("connecting to {}: {why}", self.describe()),
                source: Some(Box::new(e)),
            }
        })
    }
}

/// The message of a PostgreSQL error with its SQLSTATE (`db error: …` made readable).
pub(crate) fn error_text(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{} (SQLSTATE {})", db.message(), db.code().code());
            if let Some(d) = db.detail() {
                s.push_str(": ");
                s.push_str(d);
            }
            s
        }
        None => {
            let mut s = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(inner) = source {
                s.push_str(": ");
                s.push_str(&inner.to_string());
                source = inner.source();
            }
            s
        }
    }
}

/// What to do about a failed statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ErrorClass {
    /// Retry (after reconnecting): connection loss, serialization failure, deadlock, lock
    /// timeout, server shutting down or out of resources (SQLSTATE classes 08, 40, 53, 57,
    /// 55P03, and errors without SQLSTATE: I/O, closed connection).
    Transient,
    /// A row the table refuses: data exceptions and constraint violations (classes 22, 23);
    /// the sink's error policy decides.
    BadRow,
    /// Anything else (undefined table or column, permissions): stop.
    Fatal,
}

pub(crate) fn classify(e: &postgres::Error) -> ErrorClass {
    match e.code() {
        None => ErrorClass::Transient,
        Some(code) => {
            let code = code.code();
            match &code[..2] {
                "08" | "40" | "53" | "57" => ErrorClass::Transient,
                "55" if code == "55P03" => ErrorClass::Transient,
                "22" | "23" => ErrorClass::BadRow,
                _ => ErrorClass::Fatal,
            }
        }
    }
}

/// The delay before retry `attempt` (1, 2, …): 100 ms doubling, at most 5 s.
pub(crate) fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((100u64 << attempt.saturating_sub(1).min(6)).min(5_000))
}

/// `100ms`, `1s`, `2min`, `1m`, `1h`, or a number of milliseconds.
pub(crate) fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (like 500ms, 1s, 2min)"))?;
    Ok(match unit.trim() {
        "" | "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" | "min" => Duration::from_secs(60 * n),
        "h" => Duration::from_secs(3600 * n),
        _ => return Err(format!("`{text}` is not a duration (like 500ms, 1s, 2min)")),
    })
}

/// `name` quoted as an SQL identifier.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `table` or `schema.table` as a quoted SQL name (each part as written: names are
/// case-sensitive, as Flink's are).
pub(crate) fn quote_table(table: &str) -> String {
    table
        .split('.')
        .map(quote_ident)
        .collect::<Vec<_>>()
        .join(".")
}

/// One column of a table, as the catalog describes it.
#[derive(Clone, Debug)]
pub(crate) struct CatalogColumn {
    pub name: String,
    /// Its type, if the connector supports it.
    pub ty: Option<PgType>,
    /// `format_type` of the type, for messages and casts.
    pub type_text: String,
    pub type_oid: u32,
    /// The type modifier (`numeric(p, s)`: precision and scale).
    pub typmod: i32,
    pub not_null: bool,
    pub has_default: bool,
}

/// The columns of `table` (the error names the table and the server when it does not
/// exist).
pub(crate) fn table_columns(
    client: &mut Client,
    table: &str,
    server: &str,
) -> Result<Vec<CatalogColumn>> {
    let rows = client
        .query(
            "SELECT a.attname::text, t.typname::text, format_type(a.atttypid, NULL), \
                    a.atttypid::oid, a.atttypmod, a.attnotnull, a.atthasdef \
               FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
              WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped \
              ORDER BY a.attnum",
            &[&quote_table(table)],
        )
        .map_err(|e| StreamError::External {
            system: "postgres".into(),
            message: format!(
                "reading the columns of table `{table}` on {server}: {}",
                error_text(&e)
            ),
            source: Some(Box::new(e)),
        })?;
    if rows.is_empty() {
        return Err(StreamError::Config(format!(
            "postgres: table `{table}` does not exist on {server} (create it first; names are case-sensitive)"
        )));
    }
    Ok(rows
        .iter()
        .map(|r| {
            let typname: String = r.get(1);
            CatalogColumn {
                name: r.get(0),
                ty: PgType::from_name(&typname),
                type_text: r.get(2),
                type_oid: r.get(3),
                typmod: r.get(4),
                not_null: r.get(5),
                has_default: r.get(6),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_never_shown() {
        let mut c = PgConnection::new("postgresql://127.0.0.1:1/db");
        c.password = Password::Value("hunter2".into());
        assert!(!format!("{c:?}").contains("hunter2"));
        c.username = Some("me".into());
        assert_eq!(c.describe(), "me@127.0.0.1:1/db");
    }

    #[test]
    fn flink_options_are_read() {
        let options: BTreeMap<String, String> = [
            ("url", "jdbc:postgresql://db.example:5433/shop"),
            ("username", "writer"),
            ("password-env", "PGPASS_VAR"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let c = PgConnection::from_options(&options).unwrap();
        assert_eq!(c.password, Password::Env("PGPASS_VAR".into()));
        assert_eq!(c.describe(), "writer@db.example:5433/shop");
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2min"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(2), Duration::from_millis(200));
        assert_eq!(backoff(20), Duration::from_millis(5_000));
    }
}
