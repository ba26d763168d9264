//! [`PostgresSink`]: writes rows to a PostgreSQL table — appended, or upserted and deleted by
//! primary key from an updating stream — in batches, exactly once with checkpoints.
//!
//! **Batches.** Rows are buffered per writer (`max_rows`, `flush_interval`) and written as one
//! statement per batch that takes each column as an array parameter:
//! `INSERT INTO t (a, b) SELECT * FROM unnest($1::int8[], $2::text[])`, with
//! `ON CONFLICT (key) DO UPDATE SET …` in upsert mode, and
//! `DELETE FROM t USING unnest($1::int8[]) d(k) WHERE t.k = d.k` for withdrawn keys. In upsert
//! mode a batch keeps only the last change per key (`-U` is ignored: the `+U` that follows
//! replaces the row, as in Flink's upsert sinks).
//!
//! **Exactly once** (the job has checkpoints): each writer writes a checkpoint's rows in one
//! transaction, `PREPARE TRANSACTION`s it at the barrier and hands its id to the
//! [`Committer`], which runs `COMMIT PREPARED` when the checkpoint is complete. A prepared
//! transaction survives a crash of the job and of the server; on restore the restored
//! checkpoint's transactions are committed (again: a missing one was committed) and every
//! other prepared transaction of this sink (its id prefix) is rolled back. Readers see the
//! table change a whole checkpoint at a time. docs/decisions.md says why two-phase commit and
//! not idempotent upserts plus a checkpoint table. Without checkpoints each batch is its own
//! transaction (at-least-once).
//!
//! **Errors.** Transient errors (connection loss, serialization failure, deadlock, server
//! restarts: SQLSTATE classes 08, 40, 53, 57) are retried `max_retries` times with backoff on
//! a new connection, replaying the open transaction's rows (kept until the barrier). A row the
//! table refuses (classes 22 and 23: a constraint, a value out of range) is found by writing
//! the failed batch row by row under savepoints, and then follows the sink's error policy:
//! `fail` stops the job naming the row, `dead-letter` writes it with the reason to a
//! dead-letter table in the same transaction. At start each writer checks the table against
//! the row schema (columns, types, NOT NULL columns the rows do not fill, the key's unique
//! index) and fails with a message naming what does not fit.

use super::types::{ColumnArray, PgType};
use super::{
    backoff, classify, error_text, parse_duration, quote_ident, quote_table, table_columns,
    CatalogColumn, ErrorClass, PgConnection,
};
use hashbrown::{DefaultHashBuilder, HashTable};
use postgres::types::ToSql;
use postgres::{Client, Statement};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use streamcore::changelog::Change;
use streamcore::checkpoint::{decode, encode};
use streamcore::message::CheckpointId;
use streamcore::row::{Row, Schema};
use streamcore::sink::{Committer, Sink, SinkWriter};
use streamcore::{ErrorPolicy, Result, StreamError, TaskInfo};

/// Everything a [`PostgresSink`] needs; [`PostgresSinkConfig::from_options`] reads Flink's
/// JDBC connector options.
#[derive(Clone, Debug)]
pub struct PostgresSinkConfig {
    /// Where the database is.
    pub connection: PgConnection,
    /// The table (`name` or `schema.name`, case-sensitive).
    pub table: String,
    /// The columns of the rows, in row order (each maps to the table column of its name).
    pub schema: Option<Schema>,
    /// The primary key columns: empty for an append sink, else an upsert sink.
    pub key: Vec<String>,
    /// Rows buffered per writer before a batch is written (`sink.buffer-flush.max-rows`).
    pub max_rows: usize,
    /// Longest time rows wait in the buffer, checked when records or watermarks arrive
    /// (`sink.buffer-flush.interval`).
    pub flush_interval: Duration,
    /// Retries of a transient error before the job fails (`sink.max-retries`).
    pub max_retries: u32,
    /// What a row the table refuses does (`sink.error-policy`: `fail` or `dead-letter`).
    pub error_policy: ErrorPolicy,
    /// Where refused rows go under `dead-letter` (`sink.dead-letter-table`; default
    /// `TABLE_dead_letters`, created if missing).
    pub dead_letter_table: Option<String>,
    /// Prefix of the prepared transactions' ids (`sink.transaction-id-prefix`; default
    /// `streamcore:TABLE`). Two exactly-once jobs writing one table need different ones.
    pub transaction_prefix: Option<String>,
    /// How long a statement waits for a row lock before failing (`sink.lock-timeout`).
    pub lock_timeout: Duration,
}

impl PostgresSinkConfig {
    /// Appends to `table` at `url`.
    pub fn new(url: &str, table: &str) -> Self {
        PostgresSinkConfig {
            connection: PgConnection::new(url),
            table: table.to_string(),
            schema: None,
            key: Vec::new(),
            max_rows: 1000,
            flush_interval: Duration::from_secs(1),
            max_retries: 3,
            error_policy: ErrorPolicy::Fail,
            dead_letter_table: None,
            transaction_prefix: None,
            lock_timeout: Duration::from_secs(60),
        }
    }

    /// Reads Flink's JDBC options: `url`, `table-name`, `username`, `password` (or
    /// `password-env` / `password-file`), `sink.buffer-flush.max-rows`,
    /// `sink.buffer-flush.interval`, `sink.max-retries`, plus `sink.error-policy`,
    /// `sink.dead-letter-table`, `sink.transaction-id-prefix`, `sink.lock-timeout`. The
    /// schema and key come from the table's definition ([`Self::schema`], [`Self::key`]).
    /// Unknown options are refused, naming them.
    pub fn from_options(options: &BTreeMap<String, String>) -> Result<Self> {
        const KNOWN: &[&str] = &[
            "connector",
            "url",
            "table-name",
            "username",
            "password",
            "password-env",
            "password-file",
            "connect-timeout",
            "application-name",
            "sink.buffer-flush.max-rows",
            "sink.buffer-flush.interval",
            "sink.max-retries",
            "sink.error-policy",
            "sink.dead-letter-table",
            "sink.transaction-id-prefix",
            "sink.lock-timeout",
        ];
        if let Some(k) = options.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(StreamError::Config(format!(
                "postgres sink: unknown option `{k}` (known: {})",
                KNOWN.join(", ")
            )));
        }
        let bad = |k: &str, e: String| StreamError::Config(format!("postgres sink: `{k}`: {e}"));
        let table = options.get("table-name").ok_or_else(|| {
            StreamError::Config("postgres sink: the option `table-name` is required".into())
        })?;
        let mut c = PostgresSinkConfig::new("", table);
        c.connection = PgConnection::from_options(options)?;
        if let Some(v) = options.get("sink.buffer-flush.max-rows") {
            c.max_rows = v
                .parse::<usize>()
                .map_err(|e| bad("sink.buffer-flush.max-rows", e.to_string()))?
                .max(1);
        }
        if let Some(v) = options.get("sink.buffer-flush.interval") {
            c.flush_interval =
                parse_duration(v).map_err(|e| bad("sink.buffer-flush.interval", e))?;
        }
        if let Some(v) = options.get("sink.max-retries") {
            c.max_retries = v
                .parse()
                .map_err(|e: std::num::ParseIntError| bad("sink.max-retries", e.to_string()))?;
        }
        if let Some(v) = options.get("sink.error-policy") {
            c.error_policy = v.parse().map_err(|e| bad("sink.error-policy", e))?;
        }
        c.dead_letter_table = options.get("sink.dead-letter-table").cloned();
        c.transaction_prefix = options.get("sink.transaction-id-prefix").cloned();
        if let Some(v) = options.get("sink.lock-timeout") {
            c.lock_timeout = parse_duration(v).map_err(|e| bad("sink.lock-timeout", e))?;
        }
        Ok(c)
    }

    /// The rows' columns.
    pub fn schema(mut self, schema: Schema) -> Self {
        self.schema = Some(schema);
        self
    }

    /// Upserts by these key columns (the table needs a primary key or unique index on them).
    pub fn key(mut self, columns: &[&str]) -> Self {
        self.key = columns.iter().map(|c| c.to_string()).collect();
        self
    }

    fn prefix(&self) -> String {
        let p = self
            .transaction_prefix
            .clone()
            .unwrap_or_else(|| format!("streamcore:{}", self.table));
        // A prepared transaction's id is a literal in COMMIT PREPARED: keep it plain.
        p.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "_.:-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    }

    fn dead_letter_table(&self) -> String {
        self.dead_letter_table
            .clone()
            .unwrap_or_else(|| format!("{}_dead_letters", self.table))
    }
}

/// Live counters of a [`PostgresSink`] (all its writers and its committer).
#[derive(Debug, Default)]
pub struct PostgresSinkMetrics {
    records_out: AtomicU64,
    bytes_out: AtomicU64,
    batches: AtomicU64,
    deletes: AtomicU64,
    retries: AtomicU64,
    errors: AtomicU64,
    dead_lettered: AtomicU64,
    prepared: AtomicU64,
    committed: AtomicU64,
    rolled_back: AtomicU64,
    last_commit_latency_us: AtomicU64,
    max_commit_latency_us: AtomicU64,
}

/// What a [`PostgresSink`] reports (the job summary shows it under the sink's name).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PostgresSinkSummary {
    /// Rows written (inserted or upserted; deletes counted apart).
    pub records_out: u64,
    /// Encoded bytes of the values sent.
    pub bytes_out: u64,
    /// Batch statements executed.
    pub batches: u64,
    /// Rows deleted by key (withdrawn by the changelog).
    pub deletes: u64,
    /// Transient errors retried.
    pub retries: u64,
    /// Rows the table refused (failed or dead-lettered).
    pub errors: u64,
    /// Rows written to the dead-letter table.
    pub dead_lettered: u64,
    /// Transactions prepared at checkpoint barriers.
    pub transactions_prepared: u64,
    /// Prepared transactions committed.
    pub transactions_committed: u64,
    /// Leftover prepared transactions rolled back at a start or restore.
    pub transactions_rolled_back: u64,
    /// Time from `PREPARE TRANSACTION` to `COMMIT PREPARED` of the last commit (ms).
    pub last_commit_latency_ms: f64,
    /// The longest such time (ms).
    pub max_commit_latency_ms: f64,
}

impl PostgresSinkMetrics {
    /// A snapshot of the counters.
    pub fn summary(&self) -> PostgresSinkSummary {
        PostgresSinkSummary {
            records_out: self.records_out.load(Relaxed),
            bytes_out: self.bytes_out.load(Relaxed),
            batches: self.batches.load(Relaxed),
            deletes: self.deletes.load(Relaxed),
            retries: self.retries.load(Relaxed),
            errors: self.errors.load(Relaxed),
            dead_lettered: self.dead_lettered.load(Relaxed),
            transactions_prepared: self.prepared.load(Relaxed),
            transactions_committed: self.committed.load(Relaxed),
            transactions_rolled_back: self.rolled_back.load(Relaxed),
            last_commit_latency_ms: self.last_commit_latency_us.load(Relaxed) as f64 / 1e3,
            max_commit_latency_ms: self.max_commit_latency_us.load(Relaxed) as f64 / 1e3,
        }
    }
}

impl streamcore::metrics::ConnectorMetrics for PostgresSinkMetrics {
    fn report(&self) -> serde_json::Value {
        serde_json::to_value(self.summary()).unwrap_or_default()
    }
}

/// Writes [`Row`]s (append or upsert) or [`Change<Row>`]s (upsert and delete by key) to a
/// PostgreSQL table; see the [module docs](self).
///
/// ```no_run
/// use streamcore::row::{DataType, Field, Schema};
/// use streamcore_connectors::postgres::PostgresSink;
/// let sink = PostgresSink::upsert("postgresql://127.0.0.1:5432/shop", "totals", &["user_id"])
///     .username("writer")
///     .password_env("SHOP_DB_PASSWORD")
///     .schema(Schema::new(vec![
///         Field::new("user_id", DataType::BigInt).not_null(),
///         Field::new("total", DataType::BigInt),
///     ]));
/// ```
pub struct PostgresSink {
    config: PostgresSinkConfig,
    metrics: Arc<PostgresSinkMetrics>,
    pending: Arc<Pending>,
}

/// Prepared transactions of this process's writers not yet committed. A writer's next
/// transaction waits for its previous one to commit before it writes: rows a prepared
/// transaction inserted are invisible to other transactions until then, so a `DELETE` of such
/// a row in the next transaction would silently miss it.
#[derive(Default)]
struct Pending {
    gids: Mutex<std::collections::HashSet<String>>,
    committed: std::sync::Condvar,
}

impl Pending {
    fn add(&self, gid: &str) {
        self.gids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(gid.to_string());
    }

    fn done(&self, gid: &str) {
        self.gids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(gid);
        self.committed.notify_all();
    }

    /// Waits until `gid` is committed; false after `timeout`.
    fn wait(&self, gid: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut gids = self.gids.lock().unwrap_or_else(|p| p.into_inner());
        while gids.contains(gid) {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            gids = self
                .committed
                .wait_timeout(gids, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }
}

impl PostgresSink {
    /// A sink with this configuration.
    pub fn new(config: PostgresSinkConfig) -> Self {
        PostgresSink {
            config,
            metrics: Arc::default(),
            pending: Arc::default(),
        }
    }

    /// Appends rows to `table`.
    pub fn append(url: &str, table: &str) -> Self {
        Self::new(PostgresSinkConfig::new(url, table))
    }

    /// Upserts rows into `table` by `key` (deletes for withdrawn rows).
    pub fn upsert(url: &str, table: &str, key: &[&str]) -> Self {
        Self::new(PostgresSinkConfig::new(url, table).key(key))
    }

    /// The rows' columns (required).
    pub fn schema(mut self, schema: Schema) -> Self {
        self.config.schema = Some(schema);
        self
    }

    /// The user to connect as.
    pub fn username(mut self, user: &str) -> Self {
        self.config.connection.username = Some(user.to_string());
        self
    }

    /// Reads the password from environment variable `var` when connecting.
    pub fn password_env(mut self, var: &str) -> Self {
        self.config.connection.password = super::Password::Env(var.to_string());
        self
    }

    /// Reads the password from `path` when connecting.
    pub fn password_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.config.connection.password = super::Password::File(path.into());
        self
    }

    /// Rows per batch.
    pub fn max_rows(mut self, n: usize) -> Self {
        self.config.max_rows = n.max(1);
        self
    }

    /// Longest time rows wait in the buffer.
    pub fn flush_interval(mut self, d: Duration) -> Self {
        self.config.flush_interval = d;
        self
    }

    /// Retries of transient errors.
    pub fn max_retries(mut self, n: u32) -> Self {
        self.config.max_retries = n;
        self
    }

    /// What refused rows do; `dead-letter` writes them to the dead-letter table.
    pub fn error_policy(mut self, policy: ErrorPolicy) -> Self {
        self.config.error_policy = policy;
        self
    }

    /// The connections' `application_name` (as `pg_stat_activity` shows them).
    pub fn application_name(mut self, name: &str) -> Self {
        self.config.connection.application_name = name.to_string();
        self
    }

    /// Prefix of the prepared transactions' ids.
    pub fn transaction_prefix(mut self, prefix: &str) -> Self {
        self.config.transaction_prefix = Some(prefix.to_string());
        self
    }

    /// The sink's live counters.
    pub fn metrics(&self) -> Arc<PostgresSinkMetrics> {
        self.metrics.clone()
    }

    fn writer<T>(&mut self, task: &TaskInfo) -> Result<PostgresWriter<T>> {
        let plan = Arc::new(Plan::new(&self.config, task)?);
        let mut w = PostgresWriter {
            config: self.config.clone(),
            plan,
            client: None,
            statements: None,
            buffer: Ops::new(),
            epoch: Ops::new(),
            epoch_dead: Vec::new(),
            columns: Vec::new(),
            tx_open: false,
            replay: false,
            replaying: false,
            two_phase: task.checkpointing,
            prefix: self.config.prefix(),
            subtask: task.subtask,
            name: task.name.to_string(),
            last_flush: Instant::now(),
            metrics: self.metrics.clone(),
            hasher: DefaultHashBuilder::default(),
            pending: self.pending.clone(),
            last_gid: None,
            withdrawing: None,
            _t: PhantomData,
        };
        w.connect()?;
        Ok(w)
    }
}

fn committer(
    config: &PostgresSinkConfig,
    metrics: &Arc<PostgresSinkMetrics>,
    pending: &Arc<Pending>,
) -> Box<dyn Committer> {
    Box::new(PreparedCommitter {
        pending: pending.clone(),
        connection: config.connection.clone(),
        prefix: config.prefix(),
        max_retries: config.max_retries,
        client: Mutex::new(None),
        metrics: metrics.clone(),
    })
}

impl Sink<Row> for PostgresSink {
    type Writer = PostgresWriter<Row>;

    fn create_writer(&mut self, task: &TaskInfo) -> Result<Self::Writer> {
        self.writer(task)
    }

    fn committer(&mut self) -> Result<Option<Box<dyn Committer>>> {
        Ok(Some(committer(&self.config, &self.metrics, &self.pending)))
    }

    fn connector_metrics(&self) -> Option<Arc<dyn streamcore::metrics::ConnectorMetrics>> {
        Some(self.metrics.clone())
    }
}

impl Sink<Change<Row>> for PostgresSink {
    type Writer = PostgresWriter<Change<Row>>;

    fn create_writer(&mut self, task: &TaskInfo) -> Result<Self::Writer> {
        self.writer(task)
    }

    fn committer(&mut self) -> Result<Option<Box<dyn Committer>>> {
        Ok(Some(committer(&self.config, &self.metrics, &self.pending)))
    }

    fn connector_metrics(&self) -> Option<Arc<dyn streamcore::metrics::ConnectorMetrics>> {
        Some(self.metrics.clone())
    }

    /// An upsert sink (with a key) takes changelogs; an append sink only inserts.
    fn accepts_updates(&self) -> bool {
        !self.config.key.is_empty()
    }
}

/// The statements of a sink, derived once from the table and the schema.
#[derive(Debug)]
struct Plan {
    table: String,
    server: String,
    /// Per row column: the table column's type.
    types: Vec<(PgType, u32)>,
    /// Row positions of the key columns.
    key: Vec<usize>,
    write_sql: String,
    delete_sql: Option<String>,
    dead_letter_sql: Option<String>,
}

impl Plan {
    fn new(config: &PostgresSinkConfig, task: &TaskInfo) -> Result<Self> {
        let table = &config.table;
        let schema = config.schema.as_ref().ok_or_else(|| {
            StreamError::Config(format!(
                "postgres sink `{}`: no schema: give the rows' columns (PostgresSink::schema)",
                task.name
            ))
        })?;
        let server = config.connection.describe();
        let mut client = config.connection.connect()?;
        let columns = table_columns(&mut client, table, &server)?;
        let find = |name: &str| -> Option<&CatalogColumn> {
            columns
                .iter()
                .find(|c| c.name == name)
                .or_else(|| columns.iter().find(|c| c.name.eq_ignore_ascii_case(name)))
        };
        let mut types = Vec::new();
        let mut names = Vec::new();
        let mut casts = Vec::new();
        for field in &schema.fields {
            let col = find(&field.name).ok_or_else(|| {
                StreamError::Config(format!(
                    "postgres sink: table `{table}` has no column `{}` (its columns: {})",
                    field.name,
                    columns
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
            let ty = col.ty.filter(|t| t.admits(field.data_type)).ok_or_else(|| {
                StreamError::Config(format!(
                    "postgres sink: column `{}` of table `{table}` is {}, which cannot hold the rows' {} values",
                    col.name, col.type_text, field.data_type
                ))
            })?;
            types.push((ty, col.type_oid));
            names.push(quote_ident(&col.name));
            casts.push(format!("${}::{}[]", casts.len() + 1, col.type_text));
        }
        for col in &columns {
            let written = schema
                .fields
                .iter()
                .any(|f| f.name == col.name || f.name.eq_ignore_ascii_case(&col.name));
            if !written && col.not_null && !col.has_default {
                return Err(StreamError::Config(format!(
                    "postgres sink: column `{}` of table `{table}` is NOT NULL without a default, and the rows have no such column",
                    col.name
                )));
            }
        }
        let mut key = Vec::new();
        for k in &config.key {
            key.push(schema.index_of(k).ok_or_else(|| {
                StreamError::Config(format!(
                    "postgres sink: key column `{k}` is not a column of the rows {schema}"
                ))
            })?);
        }
        let qtable = quote_table(table);
        let column_list = names.join(", ");
        let mut write_sql = format!(
            "INSERT INTO {qtable} ({column_list}) SELECT * FROM unnest({})",
            casts.join(", ")
        );
        let mut delete_sql = None;
        if !key.is_empty() {
            let key_names: Vec<&str> = key.iter().map(|&i| names[i].as_str()).collect();
            check_unique_index(&mut client, table, &key_names, &server)?;
            let updates: Vec<String> = names
                .iter()
                .enumerate()
                .filter(|(i, _)| !key.contains(i))
                .map(|(_, n)| format!("{n} = EXCLUDED.{n}"))
                .collect();
            write_sql.push_str(&format!(" ON CONFLICT ({})", key_names.join(", ")));
            if updates.is_empty() {
                write_sql.push_str(" DO NOTHING");
            } else {
                write_sql.push_str(&format!(" DO UPDATE SET {}", updates.join(", ")));
            }
            let key_casts: Vec<String> = key
                .iter()
                .enumerate()
                .map(|(j, &i)| format!("${}::{}[]", j + 1, casts_type(&casts[i])))
                .collect();
            let aliases: Vec<String> = (0..key.len()).map(|j| format!("k{j}")).collect();
            let conditions: Vec<String> = key_names
                .iter()
                .zip(&aliases)
                .map(|(n, a)| format!("t.{n} = d.{a}"))
                .collect();
            delete_sql = Some(format!(
                "DELETE FROM {qtable} t USING unnest({}) AS d({}) WHERE {}",
                key_casts.join(", "),
                aliases.join(", "),
                conditions.join(" AND ")
            ));
        }
        let dead_letter_sql = if config.error_policy == ErrorPolicy::DeadLetter {
            let dl = quote_table(&config.dead_letter_table());
            client
                .batch_execute(&format!(
                    "CREATE TABLE IF NOT EXISTS {dl} (at timestamptz NOT NULL DEFAULT now(), \
                     sink text NOT NULL, sqlstate text, reason text NOT NULL, row_text text NOT NULL)"
                ))
                .map_err(|e| {
                    StreamError::Config(format!(
                        "postgres sink: cannot create the dead-letter table `{}`: {}",
                        config.dead_letter_table(),
                        error_text(&e)
                    ))
                })?;
            Some(format!(
                "INSERT INTO {dl} (sink, sqlstate, reason, row_text) VALUES ($1, $2, $3, $4)"
            ))
        } else {
            None
        };
        Ok(Plan {
            table: table.clone(),
            server,
            types,
            key,
            write_sql,
            delete_sql,
            dead_letter_sql,
        })
    }
}

/// The type of a `$n::type[]` cast.
fn casts_type(cast: &str) -> &str {
    let t = cast.split_once("::").map_or(cast, |(_, t)| t);
    t.strip_suffix("[]").unwrap_or(t)
}

fn check_unique_index(client: &mut Client, table: &str, key: &[&str], server: &str) -> Result<()> {
    let rows = client
        .query(
            "SELECT array_agg(a.attname::text ORDER BY a.attname) \
               FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
              WHERE i.indrelid = to_regclass($1) AND i.indisunique AND i.indpred IS NULL \
              GROUP BY i.indexrelid",
            &[&quote_table(table)],
        )
        .map_err(|e| StreamError::External {
            system: "postgres".into(),
            message: format!("reading the indexes of `{table}` on {server}: {}", error_text(&e)),
            source: Some(Box::new(e)),
        })?;
    let mut want: Vec<String> = key
        .iter()
        .map(|k| k.trim_matches('"').replace("\"\"", "\""))
        .collect();
    want.sort();
    if rows.iter().any(|r| r.get::<_, Vec<String>>(0) == want) {
        return Ok(());
    }
    Err(StreamError::Config(format!(
        "postgres sink: table `{table}` has no primary key or unique index on ({}), which upserts need (ON CONFLICT)",
        want.join(", ")
    )))
}

/// A batch of writes: rows in arrival order (append) or the last change per key (upsert).
struct Ops {
    /// Append mode: the rows.
    rows: Vec<Row>,
    /// Upsert mode: per key, the last row and whether it was withdrawn.
    by_key: HashTable<(Row, bool)>,
}

impl Ops {
    fn new() -> Self {
        Ops {
            rows: Vec::new(),
            by_key: HashTable::new(),
        }
    }

    fn len(&self) -> usize {
        self.rows.len() + self.by_key.len()
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn clear(&mut self) {
        self.rows.clear();
        self.by_key.clear();
    }
}

fn key_hash(hasher: &DefaultHashBuilder, row: &Row, key: &[usize]) -> u64 {
    let mut h = hasher.build_hasher();
    for &k in key {
        row.get(k).hash(&mut h);
    }
    h.finish()
}

fn same_key(a: &Row, b: &Row, key: &[usize]) -> bool {
    key.iter().all(|&k| a.get(k) == b.get(k))
}

/// Adds a change for `row` (a withdrawal when `delete`) to `ops`: upsert mode keeps the last
/// per key.
fn add(ops: &mut Ops, hasher: &DefaultHashBuilder, key: &[usize], row: Row, delete: bool) {
    if key.is_empty() {
        ops.rows.push(row);
        return;
    }
    let h = key_hash(hasher, &row, key);
    match ops.by_key.entry(
        h,
        |(r, _)| same_key(r, &row, key),
        |(r, _)| key_hash(hasher, r, key),
    ) {
        hashbrown::hash_table::Entry::Occupied(mut e) => *e.get_mut() = (row, delete),
        hashbrown::hash_table::Entry::Vacant(e) => {
            e.insert((row, delete));
        }
    }
}

/// A row the table refused, written to the dead-letter table.
#[derive(Clone)]
struct DeadRow {
    sqlstate: Option<String>,
    reason: String,
    row: String,
}

/// Why writing stopped.
enum Failure {
    Transient(StreamError),
    Fatal(StreamError),
}

fn pg_failure(doing: &str, e: postgres::Error, server: &str) -> Failure {
    let class = classify(&e);
    let err = StreamError::External {
        system: "postgres".into(),
        message: format!("{doing} on {server}: {}", error_text(&e)),
        source: Some(Box::new(e)),
    };
    match class {
        ErrorClass::Transient => Failure::Transient(err),
        _ => Failure::Fatal(err),
    }
}

/// The prepared statements of a connection.
struct Statements {
    write: Statement,
    delete: Option<Statement>,
}

/// One parallel instance of a [`PostgresSink`].
pub struct PostgresWriter<T> {
    config: PostgresSinkConfig,
    plan: Arc<Plan>,
    client: Option<Client>,
    statements: Option<Statements>,
    /// Changes not yet sent.
    buffer: Ops,
    /// With checkpoints: what was sent in the open transaction, replayed after a reconnect.
    epoch: Ops,
    epoch_dead: Vec<DeadRow>,
    /// Encoding buffers, one per column.
    columns: Vec<ColumnArray>,
    tx_open: bool,
    /// The open transaction was lost: replay `epoch` before the next write.
    replay: bool,
    /// Replaying: refused rows were handled the first time.
    replaying: bool,
    two_phase: bool,
    prefix: String,
    subtask: usize,
    name: String,
    last_flush: Instant,
    metrics: Arc<PostgresSinkMetrics>,
    hasher: DefaultHashBuilder,
    pending: Arc<Pending>,
    /// The last transaction this writer prepared.
    last_gid: Option<String>,
    /// Since when a `-U` is buffered and no change has come after it: no timed or size flush
    /// before one does (a reader would see the key's row missing, and a job stopped in
    /// between without checkpoints would leave it deleted) — for at most a flush interval (a
    /// `-U` whose `+U` a filter dropped is a delete of its own). A checkpoint's barrier never
    /// falls between the two (an operator emits them together).
    withdrawing: Option<Instant>,
    _t: PhantomData<fn(T)>,
}

/// The committable of one prepared transaction.
#[derive(Serialize, Deserialize)]
struct Prepared {
    gid: String,
    prepared_at_us: u64,
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn describe_row(row: &Row) -> String {
    let mut s = String::from("(");
    for (i, v) in row.values.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        match v {
            streamcore::row::Scalar::Str(t) => {
                s.push('\'');
                s.push_str(t);
                s.push('\'');
            }
            other => s.push_str(&other.to_string()),
        }
        if s.len() > 200 {
            s.push('…');
            break;
        }
    }
    s.push(')');
    s
}

impl<T> PostgresWriter<T> {
    fn connect(&mut self) -> Result<()> {
        let mut client = self.config.connection.connect()?;
        let server = &self.plan.server;
        client
            .batch_execute(&format!(
                "SET lock_timeout = {}",
                self.config.lock_timeout.as_millis()
            ))
            .map_err(|e| pg_error("setting lock_timeout", e, server))?;
        let write = client.prepare(&self.plan.write_sql).map_err(|e| {
            pg_error(
                &format!("preparing the write to `{}`", self.plan.table),
                e,
                server,
            )
        })?;
        let delete = match &self.plan.delete_sql {
            Some(sql) => Some(client.prepare(sql).map_err(|e| {
                pg_error(
                    &format!("preparing the delete from `{}`", self.plan.table),
                    e,
                    server,
                )
            })?),
            None => None,
        };
        self.columns = self
            .plan
            .types
            .iter()
            .map(|&(t, oid)| ColumnArray::new(t, oid))
            .collect();
        self.statements = Some(Statements { write, delete });
        self.client = Some(client);
        self.tx_open = false;
        Ok(())
    }

    /// Buffers a change; writes the buffer when it holds `max_rows`.
    fn add(&mut self, row: Row, delete: bool) -> Result<()> {
        add(&mut self.buffer, &self.hasher, &self.plan.key, row, delete);
        self.withdrawing = None;
        if self.buffer.len() >= self.config.max_rows {
            self.flush()?;
        }
        Ok(())
    }

    /// Buffers the delete of a `-U`: nothing is written before the `+U` that follows.
    fn add_withdrawal(&mut self, row: Row) {
        add(&mut self.buffer, &self.hasher, &self.plan.key, row, true);
        self.withdrawing.get_or_insert_with(Instant::now);
    }

    fn maybe_flush(&mut self) -> Result<()> {
        if self
            .withdrawing
            .is_some_and(|since| since.elapsed() < self.config.flush_interval)
        {
            return Ok(());
        }
        if self.buffer.len() >= self.config.max_rows
            || (!self.buffer.is_empty() && self.last_flush.elapsed() >= self.config.flush_interval)
        {
            self.flush()?;
        }
        Ok(())
    }

    /// Sends the buffer: retried on transient errors (reconnecting, replaying the open
    /// transaction), committed at once without checkpoints.
    fn flush(&mut self) -> Result<()> {
        self.last_flush = Instant::now();
        if self.buffer.is_empty() && !self.replay {
            return Ok(());
        }
        let mut attempt = 0;
        loop {
            match self.try_flush() {
                Ok(()) => return Ok(()),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Transient(e)) => {
                    attempt += 1;
                    if attempt > self.config.max_retries {
                        return Err(e);
                    }
                    self.lost_connection(attempt, &e);
                }
            }
        }
    }

    fn lost_connection(&mut self, attempt: u32, e: &StreamError) {
        self.metrics.retries.fetch_add(1, Relaxed);
        tracing::warn!(sink = %self.name, subtask = self.subtask, attempt, error = %e, "postgres: transient error, retrying on a new connection");
        self.client = None;
        self.statements = None;
        self.replay = self.tx_open || self.replay;
        self.tx_open = false;
        std::thread::sleep(backoff(attempt));
    }

    fn try_flush(&mut self) -> std::result::Result<(), Failure> {
        if self.client.is_none() {
            self.connect().map_err(Failure::Transient)?;
        }
        let server = self.plan.server.clone();
        if !self.tx_open {
            if let Some(gid) = self.last_gid.take() {
                if !self.pending.wait(&gid, self.config.lock_timeout) {
                    return Err(Failure::Fatal(StreamError::External {
                        system: "postgres".into(),
                        message: format!(
                            "sink `{}`: the transaction `{gid}` of the last checkpoint was not committed within {:?}",
                            self.name, self.config.lock_timeout
                        ),
                        source: None,
                    }));
                }
            }
            self.client
                .as_mut()
                .expect("connected")
                .batch_execute("BEGIN")
                .map_err(|e| pg_failure("beginning a transaction", e, &server))?;
            self.tx_open = true;
            if self.replay {
                // The lost transaction's rows. Those refused the first time are refused
                // again and skipped (`replaying`): their dead letters are replayed below.
                let epoch = std::mem::replace(&mut self.epoch, Ops::new());
                self.replaying = true;
                let result = self.apply(&epoch, false);
                self.replaying = false;
                self.epoch = epoch;
                let dead = self.epoch_dead.clone();
                for d in &dead {
                    self.write_dead_letter(d)?;
                }
                result?;
                self.replay = false;
            }
        }
        let buffer = std::mem::replace(&mut self.buffer, Ops::new());
        // Dead letters written by a failed attempt were rolled back with it: forget them.
        let dead_mark = self.epoch_dead.len();
        match self.apply(&buffer, true) {
            Ok(()) => {}
            Err(e) => {
                self.buffer = buffer;
                self.epoch_dead.truncate(dead_mark);
                return Err(e);
            }
        }
        let dead = (self.epoch_dead.len() - dead_mark) as u64;
        self.metrics.dead_lettered.fetch_add(dead, Relaxed);
        self.metrics.errors.fetch_add(dead, Relaxed);
        if self.two_phase {
            // Kept until the barrier, to replay after a lost connection.
            let Ops { rows, by_key } = buffer;
            self.epoch.rows.extend(rows);
            for (row, delete) in by_key {
                add(&mut self.epoch, &self.hasher, &self.plan.key, row, delete);
            }
        } else {
            self.client
                .as_mut()
                .expect("connected")
                .batch_execute("COMMIT")
                .map_err(|e| pg_failure("committing", e, &server))?;
            self.tx_open = false;
            self.epoch_dead.clear();
        }
        Ok(())
    }

    /// Writes `ops` inside the open transaction, under a savepoint: a refused row is found
    /// row by row and handled by the error policy (`count`: update the metrics).
    fn apply(&mut self, ops: &Ops, count: bool) -> std::result::Result<(), Failure> {
        let (upserts, deletes): (Vec<&Row>, Vec<&Row>) = if self.plan.key.is_empty() {
            (ops.rows.iter().collect(), Vec::new())
        } else {
            let mut u = Vec::new();
            let mut d = Vec::new();
            for (row, delete) in ops.by_key.iter() {
                if *delete {
                    d.push(row)
                } else {
                    u.push(row)
                }
            }
            (u, d)
        };
        if !deletes.is_empty() {
            self.apply_rows(&deletes, true, count)?;
        }
        if !upserts.is_empty() {
            self.apply_rows(&upserts, false, count)?;
        }
        Ok(())
    }

    fn apply_rows(
        &mut self,
        rows: &[&Row],
        delete: bool,
        count: bool,
    ) -> std::result::Result<(), Failure> {
        let server = self.plan.server.clone();
        // Rows that cannot even be encoded (a value out of range) are refused here.
        let mut good: Vec<&Row> = Vec::with_capacity(rows.len());
        let bytes = self.encode(rows, delete, Some(&mut good))?;
        if good.is_empty() {
            return Ok(());
        }
        self.exec("SAVEPOINT streamcore_batch", &server)?;
        match self.execute_encoded(delete) {
            Ok(_) => {
                self.exec("RELEASE SAVEPOINT streamcore_batch", &server)?;
                if count {
                    let m = &self.metrics;
                    m.batches.fetch_add(1, Relaxed);
                    m.bytes_out.fetch_add(bytes as u64, Relaxed);
                    let n = good.len() as u64;
                    if delete {
                        m.deletes.fetch_add(n, Relaxed)
                    } else {
                        m.records_out.fetch_add(n, Relaxed)
                    };
                }
                Ok(())
            }
            Err(e) if classify(&e) == ErrorClass::BadRow => {
                self.exec("ROLLBACK TO SAVEPOINT streamcore_batch", &server)?;
                // Find the refused rows one by one.
                for row in good {
                    self.encode(&[row], delete, None)?;
                    self.exec("SAVEPOINT streamcore_row", &server)?;
                    match self.execute_encoded(delete) {
                        Ok(_) => {
                            self.exec("RELEASE SAVEPOINT streamcore_row", &server)?;
                            if count {
                                self.metrics.records_out.fetch_add(1, Relaxed);
                            }
                        }
                        Err(e) if classify(&e) == ErrorClass::BadRow => {
                            self.exec("ROLLBACK TO SAVEPOINT streamcore_row", &server)?;
                            let sqlstate = e.code().map(|c| c.code().to_string());
                            self.refused(row, error_text(&e), sqlstate)?;
                        }
                        Err(e) => return Err(pg_failure("writing a row", e, &server)),
                    }
                }
                Ok(())
            }
            Err(e) => Err(pg_failure(
                &format!("writing a batch to `{}`", self.plan.table),
                e,
                &server,
            )),
        }
    }

    /// Encodes `rows` into the column arrays (the key columns for deletes); rows that do not
    /// fit go to the error policy, and the others to `good`.
    fn encode<'r>(
        &mut self,
        rows: &[&'r Row],
        delete: bool,
        mut good: Option<&mut Vec<&'r Row>>,
    ) -> std::result::Result<usize, Failure> {
        let plan = self.plan.clone();
        let positions: Vec<usize> = if delete {
            plan.key.clone()
        } else {
            (0..plan.types.len()).collect()
        };
        for c in &mut self.columns {
            c.clear();
        }
        for &row in rows {
            let marks: Vec<_> = positions.iter().map(|&p| self.columns[p].mark()).collect();
            let mut failed = None;
            for &p in &positions {
                if let Err(e) = self.columns[p].push(row.get(p)) {
                    failed = Some(format!("column {}: {e}", p + 1));
                    break;
                }
            }
            match failed {
                None => {
                    if let Some(g) = good.as_deref_mut() {
                        g.push(row);
                    }
                }
                Some(reason) => {
                    for (&p, m) in positions.iter().zip(marks) {
                        self.columns[p].truncate(m);
                    }
                    if good.is_some() {
                        self.refused(row, reason, None)?;
                    }
                }
            }
        }
        Ok(positions.iter().map(|&p| self.columns[p].bytes()).sum())
    }

    fn execute_encoded(&mut self, delete: bool) -> std::result::Result<u64, postgres::Error> {
        let statements = self.statements.as_ref().expect("connected");
        let client = self.client.as_mut().expect("connected");
        if delete {
            let params: Vec<&(dyn ToSql + Sync)> = self
                .plan
                .key
                .iter()
                .map(|&k| &self.columns[k] as &(dyn ToSql + Sync))
                .collect();
            client.execute(statements.delete.as_ref().expect("upsert mode"), &params)
        } else {
            let params: Vec<&(dyn ToSql + Sync)> = self
                .columns
                .iter()
                .map(|c| c as &(dyn ToSql + Sync))
                .collect();
            client.execute(&statements.write, &params)
        }
    }

    fn exec(&mut self, sql: &str, server: &str) -> std::result::Result<(), Failure> {
        self.client
            .as_mut()
            .expect("connected")
            .batch_execute(sql)
            .map_err(|e| pg_failure(sql, e, server))
    }

    /// A row the table refused: the error policy decides.
    fn refused(
        &mut self,
        row: &Row,
        reason: String,
        sqlstate: Option<String>,
    ) -> std::result::Result<(), Failure> {
        if self.replaying {
            return Ok(()); // handled when it was first refused
        }
        let text = describe_row(row);
        match self.config.error_policy {
            ErrorPolicy::Fail => {
                self.metrics.errors.fetch_add(1, Relaxed);
                Err(Failure::Fatal(StreamError::External {
                    system: "postgres".into(),
                    message: format!(
                        "sink `{}`: table `{}` refused row {text}: {reason}",
                        self.name, self.plan.table
                    ),
                    source: None,
                }))
            }
            ErrorPolicy::DeadLetter => {
                let dead = DeadRow {
                    sqlstate,
                    reason,
                    row: text,
                };
                self.write_dead_letter(&dead)?;
                // Counted once the batch is written; replayed with the open transaction.
                self.epoch_dead.push(dead);
                Ok(())
            }
        }
    }

    fn write_dead_letter(&mut self, d: &DeadRow) -> std::result::Result<(), Failure> {
        let server = self.plan.server.clone();
        let sql = self
            .plan
            .dead_letter_sql
            .clone()
            .expect("dead-letter policy");
        self.client
            .as_mut()
            .expect("connected")
            .execute(&sql, &[&self.name, &d.sqlstate, &d.reason, &d.row])
            .map(|_| ())
            .map_err(|e| pg_failure("writing to the dead-letter table", e, &server))
    }

    fn gid(&self, checkpoint: CheckpointId) -> String {
        format!("{}:{}:{}", self.prefix, self.subtask, checkpoint)
    }

    /// Prepares the open transaction as `gid`, retrying (and replaying) on transient errors.
    fn prepare(&mut self, gid: &str) -> Result<()> {
        let mut attempt = 0;
        loop {
            let result = (|| -> std::result::Result<(), Failure> {
                let server = self.plan.server.clone();
                if self.client.is_none() || !self.tx_open {
                    if self.client.is_none() {
                        self.connect().map_err(Failure::Transient)?;
                    }
                    // A prepare whose answer was lost may have succeeded.
                    let done = self
                        .client
                        .as_mut()
                        .expect("connected")
                        .query_opt("SELECT 1 FROM pg_prepared_xacts WHERE gid = $1", &[&gid])
                        .map_err(|e| {
                            pg_failure("looking for a prepared transaction", e, &server)
                        })?;
                    if done.is_some() {
                        return Ok(());
                    }
                    self.try_flush()?;
                }
                self.exec(&format!("PREPARE TRANSACTION '{gid}'"), &server)
            })();
            match result {
                Ok(()) => {
                    self.pending.add(gid);
                    self.last_gid = Some(gid.to_string());
                    self.tx_open = false;
                    self.replay = false;
                    self.epoch.clear();
                    self.epoch_dead.clear();
                    self.metrics.prepared.fetch_add(1, Relaxed);
                    return Ok(());
                }
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Transient(e)) => {
                    attempt += 1;
                    if attempt > self.config.max_retries {
                        return Err(e);
                    }
                    self.lost_connection(attempt, &e);
                }
            }
        }
    }

    fn barrier(&mut self, checkpoint: CheckpointId) -> Result<Vec<Vec<u8>>> {
        self.flush()?;
        if !self.two_phase || !(self.tx_open || self.replay) {
            return Ok(Vec::new());
        }
        let gid = self.gid(checkpoint);
        self.prepare(&gid)?;
        Ok(vec![encode(&Prepared {
            gid,
            prepared_at_us: now_us(),
        })?])
    }
}

fn pg_error(doing: &str, e: postgres::Error, server: &str) -> StreamError {
    StreamError::External {
        system: "postgres".into(),
        message: format!("{doing} on {server}: {}", error_text(&e)),
        source: Some(Box::new(e)),
    }
}

impl SinkWriter<Row> for PostgresWriter<Row> {
    fn write_batch(&mut self, batch: Vec<Row>) -> Result<()> {
        for row in batch {
            self.add(row, false)?;
        }
        self.maybe_flush()
    }

    fn on_watermark(&mut self, _: streamcore::Timestamp) -> Result<()> {
        self.maybe_flush()
    }

    fn pre_commit(&mut self, checkpoint: CheckpointId) -> Result<Vec<Vec<u8>>> {
        self.barrier(checkpoint)
    }

    fn close(&mut self) -> Result<()> {
        self.flush()
    }
}

impl SinkWriter<Change<Row>> for PostgresWriter<Change<Row>> {
    fn write_batch(&mut self, batch: Vec<Change<Row>>) -> Result<()> {
        let upsert = !self.plan.key.is_empty();
        for change in batch {
            match change {
                Change::Insert(row) | Change::UpdateAfter(row) => self.add(row, false)?,
                // Upsert: a withdrawal deletes its key's row. A `-U` too: when the `+U` after it
                // has the same key, the buffer keeps only the `+U` (the last change of a key),
                // one upsert; when the update moved the row to another key, the old key's row
                // must go (ignoring the `-U` left it in the table). From SQL, a query whose
                // updates are keyed otherwise than the table reaches the sink materialized by
                // the table's key (one current row per key), so that a `-U` never deletes a
                // row another key of the query wrote since.
                Change::UpdateBefore(row) if upsert => self.add_withdrawal(row),
                Change::Delete(row) if upsert => self.add(row, true)?,
                other => {
                    return Err(StreamError::Config(format!(
                        "postgres sink `{}` appends to `{}` (no key) but got a {} change: give it the table's key (PostgresSink::upsert)",
                        self.name,
                        self.plan.table,
                        other.kind().short()
                    )))
                }
            }
        }
        self.maybe_flush()
    }

    fn on_watermark(&mut self, _: streamcore::Timestamp) -> Result<()> {
        self.maybe_flush()
    }

    fn pre_commit(&mut self, checkpoint: CheckpointId) -> Result<Vec<Vec<u8>>> {
        self.barrier(checkpoint)
    }

    fn close(&mut self) -> Result<()> {
        self.flush()
    }
}

/// Commits prepared transactions when their checkpoint completes; at a start or restore,
/// rolls back the sink's leftover prepared transactions.
struct PreparedCommitter {
    pending: Arc<Pending>,
    connection: PgConnection,
    prefix: String,
    max_retries: u32,
    client: Mutex<Option<Client>>,
    metrics: Arc<PostgresSinkMetrics>,
}

impl PreparedCommitter {
    /// Runs `f` on the committer's connection, reconnecting and retrying transient errors.
    fn with_client<R>(
        &self,
        doing: &str,
        mut f: impl FnMut(&mut Client) -> std::result::Result<R, postgres::Error>,
    ) -> Result<R> {
        let mut guard = self.client.lock().unwrap_or_else(|p| p.into_inner());
        let mut attempt = 0;
        loop {
            if guard.is_none() {
                match self.connection.connect() {
                    Ok(c) => *guard = Some(c),
                    Err(e) if attempt < self.max_retries => {
                        attempt += 1;
                        self.metrics.retries.fetch_add(1, Relaxed);
                        tracing::warn!(error = %e, attempt, "postgres committer: cannot connect, retrying");
                        std::thread::sleep(backoff(attempt));
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            match f(guard.as_mut().expect("connected")) {
                Ok(r) => return Ok(r),
                Err(e) if classify(&e) == ErrorClass::Transient && attempt < self.max_retries => {
                    attempt += 1;
                    self.metrics.retries.fetch_add(1, Relaxed);
                    tracing::warn!(error = %error_text(&e), attempt, "postgres committer: {doing}: retrying");
                    *guard = None;
                    std::thread::sleep(backoff(attempt));
                }
                Err(e) => {
                    return Err(pg_error(doing, e, &self.connection.describe()));
                }
            }
        }
    }
}

impl Committer for PreparedCommitter {
    fn commit(&self, committable: &[u8]) -> Result<()> {
        let p: Prepared = decode(committable)?;
        let committed = self.with_client(&format!("committing `{}`", p.gid), |c| {
            match c.batch_execute(&format!("COMMIT PREPARED '{}'", p.gid)) {
                Ok(()) => Ok(true),
                // Gone: committed before (a restore commits the restored checkpoint again;
                // only transactions of no completed checkpoint are ever rolled back).
                Err(e) if e.code() == Some(&postgres::error::SqlState::UNDEFINED_OBJECT) => {
                    Ok(false)
                }
                Err(e) => Err(e),
            }
        })?;
        self.pending.done(&p.gid);
        if committed {
            let m = &self.metrics;
            m.committed.fetch_add(1, Relaxed);
            let latency = now_us().saturating_sub(p.prepared_at_us);
            m.last_commit_latency_us.store(latency, Relaxed);
            m.max_commit_latency_us.fetch_max(latency, Relaxed);
        }
        Ok(())
    }

    fn abort_uncommitted(&self) -> Result<()> {
        let pattern = format!("{}:%", self.prefix.replace('%', "\\%").replace('_', "\\_"));
        let gids: Vec<String> = self.with_client("listing prepared transactions", |c| {
            Ok(c.query(
                "SELECT gid FROM pg_prepared_xacts WHERE database = current_database() AND gid LIKE $1",
                &[&pattern],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect())
        })?;
        for gid in gids {
            tracing::info!(gid = %gid, "postgres sink: rolling back a prepared transaction no completed checkpoint covers");
            self.with_client(&format!("rolling back `{gid}`"), |c| {
                match c.batch_execute(&format!("ROLLBACK PREPARED '{gid}'")) {
                    Err(e) if e.code() == Some(&postgres::error::SqlState::UNDEFINED_OBJECT) => {
                        Ok(())
                    }
                    other => other,
                }
            })?;
            self.metrics.rolled_back.fetch_add(1, Relaxed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamcore::row::Scalar;

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn flink_jdbc_options_are_read() {
        let c = PostgresSinkConfig::from_options(&opts(&[
            ("connector", "jdbc"),
            ("url", "jdbc:postgresql://127.0.0.1:5432/db"),
            ("table-name", "totals"),
            ("username", "u"),
            ("password-env", "X"),
            ("sink.buffer-flush.max-rows", "500"),
            ("sink.buffer-flush.interval", "2s"),
            ("sink.max-retries", "5"),
        ]))
        .unwrap();
        assert_eq!(c.table, "totals");
        assert_eq!(c.max_rows, 500);
        assert_eq!(c.flush_interval, Duration::from_secs(2));
        assert_eq!(c.max_retries, 5);
        assert_eq!(c.prefix(), "streamcore:totals");
        let err = PostgresSinkConfig::from_options(&opts(&[
            ("url", "x"),
            ("table-name", "t"),
            ("sink.parallelism", "2"),
        ]))
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("unknown option `sink.parallelism`"),
            "{err}"
        );
        let err = PostgresSinkConfig::from_options(&opts(&[("url", "x")])).unwrap_err();
        assert!(err.to_string().contains("`table-name`"), "{err}");
    }

    #[test]
    fn a_batch_keeps_the_last_change_per_key() {
        let hasher = DefaultHashBuilder::default();
        let mut ops = Ops::new();
        let row = |k: i64, v: i64| Row::new(vec![Scalar::Int(k), Scalar::Int(v)]);
        add(&mut ops, &hasher, &[0], row(1, 10), false);
        add(&mut ops, &hasher, &[0], row(2, 20), false);
        add(&mut ops, &hasher, &[0], row(1, 11), false);
        add(&mut ops, &hasher, &[0], row(2, 20), true);
        let mut got: Vec<_> = ops.by_key.iter().cloned().collect();
        got.sort();
        assert_eq!(got, vec![(row(1, 11), false), (row(2, 20), true)]);
    }

    #[test]
    fn rows_are_described_for_messages() {
        let r = Row::new(vec![Scalar::Int(1), Scalar::str("a"), Scalar::Null]);
        assert_eq!(describe_row(&r), "(1, 'a', NULL)");
    }
}
