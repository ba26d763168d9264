//! Shared helpers of the PostgreSQL tests: the test server (scripts/test-deps.d/10-postgresql.sh)
//! and table set-up.

#![allow(dead_code)]

use postgres::{Client, NoTls};
use streamcore_connectors::postgres::{Password, PgConnection};

/// The test cluster's port (scripts/test-deps.d/10-postgresql.sh).
pub fn port() -> u16 {
    std::env::var("STREAMCORE_PG_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(54329)
}

/// The test database's URL (no password in it).
pub fn url() -> String {
    format!("postgresql://127.0.0.1:{}/streamcore", port())
}

/// The test role's connection.
pub fn connection() -> PgConnection {
    let mut c = PgConnection::new(&url());
    c.username = Some("streamcore".into());
    c.password = Password::Value("streamcore".into());
    c
}

/// A client for checks and set-up; fails (never skips) when the server is not there.
pub fn client() -> Client {
    let config = format!(
        "host=127.0.0.1 port={} user=streamcore password=streamcore dbname=streamcore",
        port()
    );
    Client::connect(&config, NoTls).unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is not reachable on 127.0.0.1:{} ({e}): run scripts/test-deps.d/10-postgresql.sh (or scripts/install-test-deps.sh)",
            port()
        )
    })
}

/// Runs `sql` (several statements).
pub fn exec(sql: &str) {
    client()
        .batch_execute(sql)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// The rows of `sql` as text, sorted.
pub fn rows(sql: &str) -> Vec<Vec<Option<String>>> {
    let mut out: Vec<Vec<Option<String>>> = client()
        .simple_query(sql)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .filter_map(|m| match m {
            postgres::SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect();
    out.sort();
    out
}

/// Prepared transactions left with ids starting with `prefix`.
pub fn prepared(prefix: &str) -> Vec<String> {
    rows(&format!(
        "SELECT gid FROM pg_prepared_xacts WHERE gid LIKE '{prefix}%'"
    ))
    .into_iter()
    .map(|r| r[0].clone().unwrap_or_default())
    .collect()
}

/// Rolls back prepared transactions a killed run of a test left (ids starting with
/// `prefix`): they would hold locks on the test's table.
pub fn rollback_prepared(prefix: &str) {
    for gid in prepared(prefix) {
        let _ = client().batch_execute(&format!("ROLLBACK PREPARED '{gid}'"));
    }
}
