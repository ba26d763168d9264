//! [`PostgresCdcSource`]: a table's changes as a changelog of [`Change<Row>`] — first a
//! consistent snapshot of its rows (`+I`), then every insert, update (`-U`/`+U`) and delete
//! (`-D`) committed after it, read through logical replication with the built-in `pgoutput`
//! plugin, exactly once across checkpoints and restores.
//!
//! **How changes are read.** No maintained Rust crate speaks the streaming replication
//! protocol (`tokio-postgres` has no replication mode; see docs/decisions.md), so the source
//! uses logical decoding's SQL interface: `pg_logical_slot_peek_binary_changes` on a slot
//! (created by name if missing, reused otherwise) and a publication of the table, decoding
//! pgoutput's messages in Rust. Peeking does not consume: the slot is advanced
//! (`pg_replication_slot_advance`) by the source's [`Committer`] only once a checkpoint that
//! covers the changes is complete, so a crash loses nothing; the checkpointed position (the
//! last transaction emitted, and how many changes of the next) makes the restored reader skip
//! what was emitted before, so nothing repeats.
//!
//! **The consistent snapshot.** The slot is created first; then the table is read in primary
//! key order in a `REPEATABLE READ` transaction whose snapshot (`pg_current_snapshot()`:
//! xmin, xmax and the transactions in progress) is recorded. A decoded transaction that this
//! snapshot already sees is skipped; every other one is emitted. If the job is restored in
//! the middle of the snapshot, the rest of the table is read under a new snapshot, and a
//! change is judged by the snapshot that read its key's part of the table (the parts are key
//! ranges, so the table needs a primary key to be restored mid-snapshot).
//!
//! **Requirements.** `wal_level = logical`; a role with `REPLICATION` (or superuser) that
//! may create the publication; the table with `REPLICA IDENTITY FULL`, so updates and deletes
//! carry the whole old row for `-U`/`-D` (the source checks and says how to set it).
//! `TRUNCATE` cannot be expressed as row changes: it is counted and logged, not emitted.
//!
//! **Cost.** Each peek decodes the slot from its last advanced position, so between two
//! completed checkpoints the same WAL is decoded once per poll: keep the checkpoint interval
//! short relative to the change rate (docs/connectors/postgres.md has the numbers).

use super::pgoutput::{self, format_lsn, parse_lsn, Datum, Message};
use super::types::PgType;
use super::{
    backoff, error_text, quote_ident, quote_table, table_columns, CatalogColumn, PgConnection,
};
use postgres::Client;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use streamcore::changelog::Change;
use streamcore::checkpoint::{decode, encode};
use streamcore::row::{Field, Row, Scalar, Schema};
use streamcore::sink::Committer;
use streamcore::source::{Source, SourcePoll, SourceReader};
use streamcore::{Result, StreamError, TaskContext};

/// Microseconds from the Unix epoch to PostgreSQL's epoch.
const PG_EPOCH_US: i64 = 946_684_800_000_000;

/// Everything a [`PostgresCdcSource`] needs.
#[derive(Clone, Debug)]
pub struct PostgresCdcConfig {
    /// Where the database is.
    pub connection: PgConnection,
    /// The table (`name` or `schema.name`).
    pub table: String,
    /// The replication slot's name (created if missing, reused otherwise).
    pub slot: String,
    /// The publication's name (default `SLOT_pub`; created for the table if missing).
    pub publication: Option<String>,
    /// Read the table's rows first (`scan.startup.mode` `initial`, the default), or only
    /// changes from the slot's creation on (`latest-offset`).
    pub snapshot: bool,
    /// How long to wait before peeking again when nothing was new.
    pub poll_interval: Duration,
    /// Changes decoded per peek (at least; whole transactions).
    pub max_changes_per_poll: usize,
}

impl PostgresCdcConfig {
    /// Changes of `table` at `url` through slot `slot`.
    pub fn new(url: &str, table: &str, slot: &str) -> Self {
        PostgresCdcConfig {
            connection: PgConnection::new(url),
            table: table.to_string(),
            slot: slot.to_string(),
            publication: None,
            snapshot: true,
            poll_interval: Duration::from_millis(100),
            max_changes_per_poll: 10_000,
        }
    }

    /// Reads Flink CDC's `postgres-cdc` options: `hostname`, `port`, `database-name`,
    /// `schema-name`, `table-name`, `username`, `password` (or `password-env` /
    /// `password-file`), `slot.name`, `decoding.plugin.name` (only `pgoutput`),
    /// `scan.startup.mode` (`initial` or `latest-offset`), plus `url` instead of the host
    /// options and `publication.name`. Unknown options are refused, naming them.
    pub fn from_options(options: &BTreeMap<String, String>) -> Result<Self> {
        const KNOWN: &[&str] = &[
            "connector",
            "url",
            "hostname",
            "port",
            "database-name",
            "schema-name",
            "table-name",
            "username",
            "password",
            "password-env",
            "password-file",
            "connect-timeout",
            "application-name",
            "slot.name",
            "publication.name",
            "decoding.plugin.name",
            "scan.startup.mode",
        ];
        if let Some(k) = options.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(StreamError::Config(format!(
                "postgres-cdc: unknown option `{k}` (known: {})",
                KNOWN.join(", ")
            )));
        }
        let need = |k: &str| {
            options.get(k).cloned().ok_or_else(|| {
                StreamError::Config(format!("postgres-cdc: the option `{k}` is required"))
            })
        };
        let mut options = options.clone();
        if !options.contains_key("url") {
            let host = need("hostname")?;
            let port = options
                .get("port")
                .cloned()
                .unwrap_or_else(|| "5432".into());
            let db = need("database-name")?;
            options.insert("url".into(), format!("postgresql://{host}:{port}/{db}"));
        }
        let table = match options.get("schema-name") {
            Some(s) => format!("{s}.{}", need("table-name")?),
            None => need("table-name")?,
        };
        if let Some(p) = options.get("decoding.plugin.name") {
            if p != "pgoutput" {
                return Err(StreamError::Config(format!(
                    "postgres-cdc: `decoding.plugin.name` `{p}` is not supported (only pgoutput)"
                )));
            }
        }
        let mut c = PostgresCdcConfig::new("", &table, &need("slot.name")?);
        c.connection = PgConnection::from_options(&options)?;
        c.publication = options.get("publication.name").cloned();
        c.snapshot = match options.get("scan.startup.mode").map(String::as_str) {
            None | Some("initial") => true,
            Some("latest-offset") => false,
            Some(other) => {
                return Err(StreamError::Config(format!(
                    "postgres-cdc: `scan.startup.mode` `{other}` is not supported (initial, latest-offset)"
                )))
            }
        };
        Ok(c)
    }

    fn publication(&self) -> String {
        self.publication
            .clone()
            .unwrap_or_else(|| format!("{}_pub", self.slot))
    }
}

/// Live counters of a [`PostgresCdcSource`].
#[derive(Debug, Default)]
pub struct PostgresCdcMetrics {
    snapshot_rows: AtomicU64,
    changes: AtomicU64,
    bytes_in: AtomicU64,
    transactions: AtomicU64,
    skipped_transactions: AtomicU64,
    truncates: AtomicU64,
    peeks: AtomicU64,
    retries: AtomicU64,
    slot_advances: AtomicU64,
    lag_bytes: AtomicI64,
    lag_ms: AtomicI64,
}

/// What a [`PostgresCdcSource`] reports.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PostgresCdcSummary {
    /// Rows read by the initial snapshot.
    pub snapshot_rows: u64,
    /// Changes emitted after the snapshot.
    pub changes: u64,
    /// Bytes of pgoutput messages and snapshot values read.
    pub bytes_in: u64,
    /// Transactions emitted.
    pub transactions: u64,
    /// Transactions skipped because the snapshot already had them.
    pub skipped_transactions: u64,
    /// `TRUNCATE`s seen (not emitted).
    pub truncates: u64,
    /// Peeks at the slot.
    pub peeks: u64,
    /// Transient errors retried.
    pub retries: u64,
    /// Slot advances after completed checkpoints.
    pub slot_advances: u64,
    /// Replication lag: WAL bytes between the server's current position and the last change
    /// emitted (sampled at most once a second).
    pub lag_bytes: i64,
    /// Time between the commit of the last transaction emitted and its emission (ms).
    pub lag_ms: i64,
}

impl PostgresCdcMetrics {
    /// A snapshot of the counters.
    pub fn summary(&self) -> PostgresCdcSummary {
        PostgresCdcSummary {
            snapshot_rows: self.snapshot_rows.load(Relaxed),
            changes: self.changes.load(Relaxed),
            bytes_in: self.bytes_in.load(Relaxed),
            transactions: self.transactions.load(Relaxed),
            skipped_transactions: self.skipped_transactions.load(Relaxed),
            truncates: self.truncates.load(Relaxed),
            peeks: self.peeks.load(Relaxed),
            retries: self.retries.load(Relaxed),
            slot_advances: self.slot_advances.load(Relaxed),
            lag_bytes: self.lag_bytes.load(Relaxed),
            lag_ms: self.lag_ms.load(Relaxed),
        }
    }
}

impl streamcore::metrics::ConnectorMetrics for PostgresCdcMetrics {
    fn report(&self) -> serde_json::Value {
        serde_json::to_value(self.summary()).unwrap_or_default()
    }
}

/// Reads a table's changes; see the [module docs](self).
///
/// ```no_run
/// use streamcore::{Job, JobConfig};
/// use streamcore_connectors::postgres::{PostgresCdcConfig, PostgresCdcSource};
/// let mut config = PostgresCdcConfig::new("postgresql://127.0.0.1:5432/shop", "orders", "orders_slot");
/// config.connection.username = Some("cdc".into());
/// let source = PostgresCdcSource::new(config).unwrap(); // reads the table's schema
/// let mut job = Job::new("orders-changes");
/// let changes = job.source("orders", source).collect();
/// ```
pub struct PostgresCdcSource {
    config: PostgresCdcConfig,
    table: Arc<TableInfo>,
    metrics: Arc<PostgresCdcMetrics>,
    /// The LSN the slot may advance to (completed checkpoints), shared with the reader.
    advance_to: Arc<AtomicU64>,
}

/// The table as the catalog describes it.
#[derive(Debug)]
struct TableInfo {
    schema: Schema,
    types: Vec<PgType>,
    /// Positions of the primary key columns (empty: none).
    key: Vec<usize>,
    server: String,
}

impl PostgresCdcSource {
    /// A source for `config`: connects once to read the table's schema, checks its replica
    /// identity and the server's `wal_level` (errors name what to change).
    pub fn new(config: PostgresCdcConfig) -> Result<Self> {
        let server = config.connection.describe();
        let mut client = config.connection.connect()?;
        let q =
            |client: &mut Client, sql: &str, params: &[&(dyn postgres::types::ToSql + Sync)]| {
                client
                    .query(sql, params)
                    .map_err(|e| StreamError::External {
                        system: "postgres".into(),
                        message: format!("reading the catalog on {server}: {}", error_text(&e)),
                        source: Some(Box::new(e)),
                    })
            };
        let wal: String = q(&mut client, "SHOW wal_level", &[])?[0].get(0);
        if wal != "logical" {
            return Err(StreamError::Config(format!(
                "postgres-cdc: {server} has wal_level = {wal}; logical decoding needs wal_level = logical (and a restart)"
            )));
        }
        let columns = table_columns(&mut client, &config.table, &server)?;
        let table = quote_table(&config.table);
        let ident: String = q(
            &mut client,
            "SELECT relreplident::text FROM pg_class WHERE oid = to_regclass($1)",
            &[&table],
        )?[0]
            .get(0);
        if ident != "f" {
            return Err(StreamError::Config(format!(
                "postgres-cdc: table `{}` does not have REPLICA IDENTITY FULL, so its updates and deletes would not carry the old row: run ALTER TABLE {table} REPLICA IDENTITY FULL",
                config.table
            )));
        }
        let key_names: Vec<String> = q(
            &mut client,
            "SELECT a.attname::text FROM pg_index i \
               JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) ON true \
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
              WHERE i.indrelid = to_regclass($1) AND i.indisprimary ORDER BY k.n",
            &[&table],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
        let mut fields = Vec::new();
        let mut types = Vec::new();
        for c in &columns {
            let ty = c.ty.ok_or_else(|| unsupported(&config.table, c))?;
            let mut field = Field::new(&c.name, ty.data_type(c.typmod));
            if c.not_null {
                field = field.not_null();
            }
            fields.push(field);
            types.push(ty);
        }
        let key = key_names
            .iter()
            .filter_map(|k| columns.iter().position(|c| &c.name == k))
            .collect();
        Ok(PostgresCdcSource {
            table: Arc::new(TableInfo {
                schema: Schema::new(fields),
                types,
                key,
                server,
            }),
            config,
            metrics: Arc::default(),
            advance_to: Arc::default(),
        })
    }

    /// The rows' schema, read from the table's catalog.
    pub fn schema(&self) -> &Schema {
        &self.table.schema
    }

    /// The source's live counters.
    pub fn metrics(&self) -> Arc<PostgresCdcMetrics> {
        self.metrics.clone()
    }

    fn reader(&self, position: Position) -> CdcReader {
        CdcReader {
            config: self.config.clone(),
            table: self.table.clone(),
            metrics: self.metrics.clone(),
            advance_to: self.advance_to.clone(),
            advanced: 0,
            position,
            snapshot_client: None,
            client: None,
            relation: None,
            pending: VecDeque::new(),
            last_peek: None,
            last_peek_rows: 0,
            last_lag_sample: None,
            segment_keys: Vec::new(),
        }
    }
}

fn unsupported(table: &str, c: &CatalogColumn) -> StreamError {
    StreamError::Config(format!(
        "postgres-cdc: column `{}` of table `{table}` has type {}, which the connector does not read yet",
        c.name, c.type_text
    ))
}

/// Which transactions a snapshot saw (`pg_current_snapshot()`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Visibility {
    xmin: u64,
    xmax: u64,
    xip: Vec<u64>,
}

impl Visibility {
    fn parse(text: &str) -> Result<Self> {
        let bad = || StreamError::Internal(format!("unexpected snapshot `{text}`"));
        let mut parts = text.split(':');
        let xmin = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        let xmax = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        let xip = parts
            .next()
            .unwrap_or("")
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().map_err(|_| bad()))
            .collect::<Result<_>>()?;
        Ok(Visibility { xmin, xmax, xip })
    }

    /// Whether the snapshot sees (committed) transaction `xid` (32 bits, as pgoutput sends
    /// it; widened with the snapshot's epoch).
    fn sees(&self, xid: u32) -> bool {
        let base = self.xmax & !0xffff_ffff;
        let mut full = base | xid as u64;
        if full > self.xmax + (1 << 31) {
            full = full.saturating_sub(1 << 32);
        } else if full + (1 << 31) < self.xmax {
            full += 1 << 32;
        }
        full < self.xmin || (full < self.xmax && !self.xip.contains(&full))
    }
}

/// A part of the table read under one snapshot: the key range up to and including `upper`
/// (the text of the last key read; `None` for the last part, which runs to the end).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Segment {
    visibility: Visibility,
    upper: Option<Vec<String>>,
}

/// A reader's checkpointed position.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Position {
    /// The snapshot's parts so far (empty with no snapshot).
    segments: Vec<Segment>,
    /// The snapshot was read to the end.
    snapshot_done: bool,
    /// Snapshot rows read in the current part.
    snapshot_rows: u64,
    /// The last key read by the current part, as text.
    last_key: Option<Vec<String>>,
    /// Commit LSN of the last transaction emitted whole (0: none).
    commit_lsn: u64,
    /// The LSN after it: what the slot may advance to.
    end_lsn: u64,
    /// Changes already emitted of the transaction after it.
    partial: u64,
}

impl Source<Change<Row>> for PostgresCdcSource {
    type Reader = CdcReader;

    /// One slot, one reader.
    fn parallelism(&self, _: usize) -> usize {
        1
    }

    fn create_readers(&mut self, parallelism: usize) -> Result<Vec<Self::Reader>> {
        let mut position = Position::default();
        if !self.config.snapshot {
            position.snapshot_done = true;
        }
        let mut readers = vec![self.reader(position)];
        readers.extend((1..parallelism).map(|_| {
            let mut r = self.reader(Position::default());
            r.position.snapshot_done = true;
            r.position.commit_lsn = u64::MAX; // an idle extra reader
            r
        }));
        Ok(readers)
    }

    fn supports_checkpoints(&self) -> bool {
        true
    }

    fn restore_readers(
        &mut self,
        parallelism: usize,
        positions: Vec<Vec<u8>>,
    ) -> Result<Vec<Self::Reader>> {
        let mut restored: Vec<Position> = positions
            .iter()
            .map(|p| decode::<Position>(p))
            .collect::<Result<_>>()?;
        restored.retain(|p| p.commit_lsn != u64::MAX);
        let position = restored.into_iter().next().ok_or_else(|| {
            StreamError::Checkpoint("postgres-cdc: the checkpoint holds no reader position".into())
        })?;
        let mut position = position;
        if !position.snapshot_done && !position.segments.is_empty() {
            // Restored in the middle of the snapshot: close the part read so far at its last
            // key; the rest is read under a new snapshot.
            if self.table.key.is_empty() {
                return Err(StreamError::Config(format!(
                    "postgres-cdc: table `{}` has no primary key, so a job restored during its initial snapshot cannot continue it: restart the job without --restore (and drop the slot `{}`)",
                    self.config.table, self.config.slot
                )));
            }
            let last = position.segments.len() - 1;
            match position.last_key.take() {
                Some(k) => position.segments[last].upper = Some(k),
                None => {
                    position.segments.pop();
                }
            }
            position.snapshot_rows = 0;
        }
        let mut readers = vec![self.reader(position)];
        readers.extend((1..parallelism).map(|_| {
            let mut r = self.reader(Position::default());
            r.position.snapshot_done = true;
            r.position.commit_lsn = u64::MAX;
            r
        }));
        Ok(readers)
    }

    fn committer(&mut self) -> Result<Option<Box<dyn Committer>>> {
        Ok(Some(Box::new(SlotCommitter {
            advance_to: self.advance_to.clone(),
        })))
    }

    fn connector_metrics(&self) -> Option<Arc<dyn streamcore::metrics::ConnectorMetrics>> {
        Some(self.metrics.clone())
    }
}

/// The transaction being decoded.
struct OpenTx {
    xid: u32,
    changes: Vec<Change<Row>>,
    /// Emitted (or queued) before.
    skip: bool,
}

/// A decoded transaction waiting to be emitted.
struct PendingTx {
    commit_lsn: u64,
    end_lsn: u64,
    commit_ts: i64,
    changes: Vec<Change<Row>>,
    /// Changes of it already emitted.
    emitted: usize,
}

/// The reader of a [`PostgresCdcSource`].
pub struct CdcReader {
    config: PostgresCdcConfig,
    table: Arc<TableInfo>,
    metrics: Arc<PostgresCdcMetrics>,
    advance_to: Arc<AtomicU64>,
    /// The LSN the slot was last advanced to by this reader.
    advanced: u64,
    position: Position,
    /// The connection holding the snapshot's transaction.
    snapshot_client: Option<Client>,
    client: Option<Client>,
    /// The table's relation oid, from the relation messages.
    relation: Option<u32>,
    pending: VecDeque<PendingTx>,
    last_peek: Option<Instant>,
    last_peek_rows: usize,
    last_lag_sample: Option<Instant>,
    /// The segments' upper keys, decoded.
    segment_keys: Vec<Option<Vec<Scalar>>>,
}

/// Whether a failed peek is worth another try: transient errors (three times), and the slot
/// still held by a session that is going away (a killed run's backend, up to 30 times).
fn retryable(e: &StreamError, attempt: u32) -> bool {
    let Some(pg) = std::error::Error::source(e).and_then(|s| s.downcast_ref::<postgres::Error>())
    else {
        return false;
    };
    if pg.code() == Some(&postgres::error::SqlState::OBJECT_IN_USE) {
        return true;
    }
    attempt < 3 && super::classify(pg) == super::ErrorClass::Transient
}

fn pg_err(doing: &str, server: &str, e: postgres::Error) -> StreamError {
    StreamError::External {
        system: "postgres".into(),
        message: format!("{doing} on {server}: {}", error_text(&e)),
        source: Some(Box::new(e)),
    }
}

impl CdcReader {
    fn is_idle_extra(&self) -> bool {
        self.position.commit_lsn == u64::MAX
    }

    /// Creates the publication and the slot if missing.
    fn ensure_slot(&mut self) -> Result<()> {
        let server = self.table.server.clone();
        let client = self.client.as_mut().expect("connected");
        let publication = self.config.publication();
        let exists = client
            .query_opt(
                "SELECT 1 FROM pg_publication WHERE pubname = $1",
                &[&publication],
            )
            .map_err(|e| pg_err("looking for the publication", &server, e))?;
        if exists.is_none() {
            client
                .batch_execute(&format!(
                    "CREATE PUBLICATION {} FOR TABLE {}",
                    quote_ident(&publication),
                    quote_table(&self.config.table)
                ))
                .map_err(|e| {
                    pg_err(
                        &format!("creating the publication `{publication}`"),
                        &server,
                        e,
                    )
                })?;
        }
        let slot = client
            .query_opt(
                "SELECT plugin::text FROM pg_replication_slots WHERE slot_name = $1 AND database = current_database()",
                &[&self.config.slot],
            )
            .map_err(|e| pg_err("looking for the replication slot", &server, e))?;
        match slot {
            Some(row) => {
                let plugin: String = row.get(0);
                if plugin != "pgoutput" {
                    return Err(StreamError::Config(format!(
                        "postgres-cdc: the replication slot `{}` uses the plugin `{plugin}`, not pgoutput",
                        self.config.slot
                    )));
                }
            }
            None => {
                if self.position.commit_lsn != 0 || !self.position.segments.is_empty() {
                    return Err(StreamError::Config(format!(
                        "postgres-cdc: the replication slot `{}` no longer exists, so the changes since the checkpoint are lost: start the job afresh",
                        self.config.slot
                    )));
                }
                client
                    .query(
                        "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
                        &[&self.config.slot],
                    )
                    .map_err(|e| {
                        pg_err(
                            &format!("creating the replication slot `{}`", self.config.slot),
                            &server,
                            e,
                        )
                    })?;
                tracing::info!(slot = %self.config.slot, "postgres-cdc: created the replication slot");
            }
        }
        Ok(())
    }

    fn decode_key_texts(&self, texts: &[String]) -> Result<Vec<Scalar>> {
        texts
            .iter()
            .zip(&self.table.key)
            .map(|(t, &k)| {
                self.table.types[k]
                    .decode_text(t)
                    .map_err(|e| StreamError::Internal(format!("a checkpointed key: {e}")))
            })
            .collect()
    }

    /// Starts (or continues, after a restore) the snapshot: a new part under a new
    /// `REPEATABLE READ` snapshot.
    fn start_snapshot_part(&mut self) -> Result<()> {
        let server = self.table.server.clone();
        let mut client = self.config.connection.connect()?;
        client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .map_err(|e| pg_err("starting the snapshot", &server, e))?;
        let snap: String = client
            .query_one("SELECT pg_current_snapshot()::text", &[])
            .map_err(|e| pg_err("taking the snapshot", &server, e))?
            .get(0);
        self.position.segments.push(Segment {
            visibility: Visibility::parse(&snap)?,
            upper: None,
        });
        self.position.last_key = None;
        self.position.snapshot_rows = 0;
        self.snapshot_client = Some(client);
        Ok(())
    }

    /// Reads up to `max` rows of the snapshot.
    fn poll_snapshot(&mut self, out: &mut Vec<Change<Row>>, max: usize) -> Result<SourcePoll> {
        if self.snapshot_client.is_none() {
            self.start_snapshot_part()?;
        }
        let server = self.table.server.clone();
        let key = self.table.key.clone();
        let schema = &self.table.schema;
        let columns: Vec<String> = schema
            .fields
            .iter()
            .enumerate()
            .map(|(i, f)| format!("t.{}::text AS c{i}", quote_ident(&f.name)))
            .collect();
        // Ordered and compared by the table's columns (`t.x`), not by the text outputs.
        let order = |i: usize| {
            let name = format!("t.{}", quote_ident(&schema.fields[i].name));
            if self.table.types[i] == PgType::Text {
                format!("{name} COLLATE \"C\"")
            } else {
                name
            }
        };
        let mut sql = format!(
            "SELECT {}{} FROM {} AS t",
            columns.join(", "),
            if key.is_empty() { ", t.ctid::text" } else { "" },
            quote_table(&self.config.table)
        );
        // Where the part starts: after the previous part's last key, or the current part's.
        let lower = self.position.last_key.clone().or_else(|| {
            let n = self.position.segments.len();
            (n >= 2)
                .then(|| self.position.segments[n - 2].upper.clone())
                .flatten()
        });
        let mut params: Vec<String> = Vec::new();
        if !key.is_empty() {
            if let Some(lower) = &lower {
                let lhs: Vec<String> = key.iter().map(|&k| order(k)).collect();
                let rhs: Vec<String> = key
                    .iter()
                    .enumerate()
                    .map(|(j, &k)| {
                        let cast = format!("${}::text::{}", j + 1, self.table_type_text(k));
                        if self.table.types[k] == PgType::Text {
                            format!("{cast} COLLATE \"C\"")
                        } else {
                            cast
                        }
                    })
                    .collect();
                sql.push_str(&format!(
                    " WHERE ({}) > ({})",
                    lhs.join(", "),
                    rhs.join(", ")
                ));
                params = lower.clone();
            }
            let order_by: Vec<String> = key.iter().map(|&k| order(k)).collect();
            sql.push_str(&format!(" ORDER BY {}", order_by.join(", ")));
            sql.push_str(&format!(" LIMIT {max}"));
        } else {
            // No key: one pass in physical order (stable within the snapshot; such a part
            // cannot be continued under another snapshot).
            if let Some(lower) = &self.position.last_key {
                sql.push_str(" WHERE t.ctid > $1::text::tid");
                params = lower.clone();
            }
            sql.push_str(&format!(" ORDER BY t.ctid LIMIT {max}"));
        }
        let client = self.snapshot_client.as_mut().expect("snapshot");
        let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = params
            .iter()
            .map(|p| p as &(dyn postgres::types::ToSql + Sync))
            .collect();
        let rows = client.query(&sql, &refs).map_err(|e| {
            pg_err(
                &format!("reading the snapshot of `{}`", self.config.table),
                &server,
                e,
            )
        })?;
        let mut bytes = 0;
        for r in &rows {
            let mut values = Vec::with_capacity(schema.fields.len());
            for (i, ty) in self.table.types.iter().enumerate() {
                let text: Option<&str> = r.get(i);
                values.push(match text {
                    None => Scalar::Null,
                    Some(t) => {
                        bytes += t.len();
                        ty.decode_text(t).map_err(|e| {
                            StreamError::Internal(format!(
                                "column `{}`: {e}",
                                schema.fields[i].name
                            ))
                        })?
                    }
                });
            }
            out.push(Change::Insert(Row::new(values)));
        }
        self.metrics
            .snapshot_rows
            .fetch_add(rows.len() as u64, Relaxed);
        self.metrics.bytes_in.fetch_add(bytes as u64, Relaxed);
        self.position.snapshot_rows += rows.len() as u64;
        if let Some(last) = rows.last() {
            self.position.last_key = Some(if key.is_empty() {
                vec![last.get::<_, String>(schema.fields.len())]
            } else {
                key.iter()
                    .map(|&k| last.get::<_, Option<String>>(k).unwrap_or_default())
                    .collect()
            });
        }
        if rows.len() < max {
            // The end of the table: the current part runs to the end (upper None).
            if let Some(mut c) = self.snapshot_client.take() {
                let _ = c.batch_execute("COMMIT");
            }
            self.position.snapshot_done = true;
            self.position.last_key = None;
            tracing::info!(table = %self.config.table, rows = self.metrics.snapshot_rows.load(Relaxed), "postgres-cdc: snapshot read");
        }
        Ok(SourcePoll::Ready)
    }

    fn table_type_text(&self, column: usize) -> &'static str {
        match self.table.types[column] {
            PgType::Bool => "bool",
            PgType::Int2 => "int2",
            PgType::Int4 => "int4",
            PgType::Int8 => "int8",
            PgType::Float4 => "float4",
            PgType::Float8 => "float8",
            PgType::Numeric => "numeric",
            PgType::Text => "text",
            PgType::Json => "json",
            PgType::Jsonb => "jsonb",
            PgType::Bytea => "bytea",
            PgType::Timestamp => "timestamp",
            PgType::Timestamptz => "timestamptz",
            PgType::Date => "date",
            PgType::Uuid => "uuid",
        }
    }

    /// Whether a change of `row` by transaction `xid` is emitted: always without a snapshot,
    /// else only when the snapshot that read the row's key range did not see it.
    fn emits(&self, row: &Row, xid: u32) -> bool {
        self.position.segments.is_empty() || !self.segment_for(row).sees(xid)
    }

    /// The snapshot part whose key range holds `key`.
    fn segment_for(&self, row: &Row) -> &Visibility {
        let segments = &self.position.segments;
        if self.table.key.is_empty() || segments.len() == 1 {
            return &segments[segments.len() - 1].visibility;
        }
        for (i, upper) in self.segment_keys.iter().enumerate() {
            match upper {
                Some(upper) => {
                    let below = self.table.key.iter().map(|&k| row.get(k)).cmp(upper.iter());
                    if below != std::cmp::Ordering::Greater {
                        return &segments[i].visibility;
                    }
                }
                None => return &segments[i].visibility,
            }
        }
        &segments[segments.len() - 1].visibility
    }

    fn row_of(&self, tuple: &[Datum], old: Option<&Row>) -> Result<Row> {
        let schema = &self.table.schema;
        if tuple.len() != schema.fields.len() {
            return Err(StreamError::Config(format!(
                "postgres-cdc: table `{}` now has {} columns, the job's schema {}: its columns changed (ALTER TABLE); restart the job afresh",
                self.config.table,
                tuple.len(),
                schema.fields.len()
            )));
        }
        tuple
            .iter()
            .enumerate()
            .map(|(i, d)| {
                Ok(match d {
                    Datum::Null => Scalar::Null,
                    Datum::Unchanged => old.map_or(Scalar::Null, |o| o.get(i).clone()),
                    Datum::Text(t) => self.table.types[i].decode_text(t).map_err(|e| {
                        StreamError::Internal(format!("column `{}`: {e}", schema.fields[i].name))
                    })?,
                })
            })
            .collect::<Result<Vec<_>>>()
            .map(Row::new)
    }

    /// Advances the slot to what completed checkpoints cover.
    fn advance_slot(&mut self) -> Result<()> {
        let to = self.advance_to.load(Relaxed);
        if to <= self.advanced {
            return Ok(());
        }
        let server = self.table.server.clone();
        self.client
            .as_mut()
            .expect("connected")
            .query(
                "SELECT pg_replication_slot_advance(slot_name, greatest($2::text::pg_lsn, confirmed_flush_lsn)) \
                   FROM pg_replication_slots WHERE slot_name = $1 AND database = current_database()",
                &[&self.config.slot, &format_lsn(to)],
            )
            .map_err(|e| pg_err(&format!("advancing the slot `{}`", self.config.slot), &server, e))?;
        self.advanced = to;
        // The next peek starts at the new position.
        self.last_peek_rows = 0;
        self.metrics.slot_advances.fetch_add(1, Relaxed);
        Ok(())
    }

    /// Peeks at the slot and queues the transactions not emitted yet.
    fn peek(&mut self) -> Result<()> {
        self.advance_slot()?;
        let server = self.table.server.clone();
        let upto = (self.last_peek_rows + self.config.max_changes_per_poll) as i32;
        let rows = {
            let client = self.client.as_mut().expect("connected");
            client
                .query(
                    "SELECT data FROM pg_logical_slot_peek_binary_changes($1, NULL, $2, 'proto_version', '1', 'publication_names', $3)",
                    &[&self.config.slot, &upto, &self.config.publication()],
                )
                .map_err(|e| pg_err(&format!("reading the changes of slot `{}`", self.config.slot), &server, e))?
        };
        self.metrics.peeks.fetch_add(1, Relaxed);
        self.last_peek_rows = rows.len();
        let newest_queued = self
            .pending
            .back()
            .map_or(self.position.commit_lsn, |t| t.commit_lsn);
        let mut current: Option<OpenTx> = None;
        let mut bytes = 0usize;
        for r in &rows {
            let data: &[u8] = r.get(0);
            let message = pgoutput::decode(data).map_err(|e| {
                StreamError::Internal(format!("postgres-cdc: undecodable pgoutput message: {e}"))
            })?;
            match message {
                Message::Relation {
                    id,
                    namespace,
                    name,
                    columns,
                    ..
                } => {
                    let wanted = self
                        .config
                        .table
                        .rsplit('.')
                        .next()
                        .unwrap_or(&self.config.table);
                    let wanted_ns = self.config.table.split_once('.').map(|(s, _)| s);
                    if name == wanted && wanted_ns.is_none_or(|s| s == namespace) {
                        let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
                        let ours: Vec<&str> = self
                            .table
                            .schema
                            .fields
                            .iter()
                            .map(|f| f.name.as_str())
                            .collect();
                        if names != ours {
                            return Err(StreamError::Config(format!(
                                "postgres-cdc: the columns of `{}` changed ({} now, {} when the job started): restart the job afresh",
                                self.config.table,
                                names.join(", "),
                                ours.join(", ")
                            )));
                        }
                        self.relation = Some(id);
                    }
                }
                Message::Begin { final_lsn, xid, .. } => {
                    current = Some(OpenTx {
                        xid,
                        changes: Vec::new(),
                        // Already emitted (or queued): skip.
                        skip: final_lsn <= newest_queued,
                    });
                }
                Message::Commit {
                    commit_lsn,
                    end_lsn,
                    commit_ts,
                } => {
                    if let Some(OpenTx { changes, skip, .. }) = current.take() {
                        if skip {
                            continue;
                        }
                        // Queued even when empty (nothing of this table, or all seen by the
                        // snapshot): emitting it moves the position past it.
                        self.pending.push_back(PendingTx {
                            commit_lsn,
                            end_lsn,
                            commit_ts,
                            changes,
                            emitted: 0,
                        });
                    }
                }
                Message::Insert { relation, new } if Some(relation) == self.relation => {
                    bytes += data.len();
                    if let Some(OpenTx {
                        xid,
                        changes,
                        skip: false,
                    }) = current.as_mut()
                    {
                        let row = self.row_of(&new, None)?;
                        if self.emits(&row, *xid) {
                            changes.push(Change::Insert(row));
                        }
                    }
                }
                Message::Update { relation, old, new } if Some(relation) == self.relation => {
                    bytes += data.len();
                    if let Some(OpenTx {
                        xid,
                        changes,
                        skip: false,
                    }) = current.as_mut()
                    {
                        let old = match old {
                            Some(o) => Some(self.row_of(&o, None)?),
                            None => None,
                        };
                        let new = self.row_of(&new, old.as_ref())?;
                        let emit_old = old.as_ref().filter(|o| self.emits(o, *xid));
                        let emit_new = self.emits(&new, *xid);
                        match (emit_old, emit_new) {
                            (Some(o), true) => {
                                changes.push(Change::UpdateBefore(o.clone()));
                                changes.push(Change::UpdateAfter(new));
                            }
                            (Some(o), false) => changes.push(Change::Delete(o.clone())),
                            (None, true) => changes.push(Change::Insert(new)),
                            (None, false) => {}
                        }
                    }
                }
                Message::Delete { relation, old } if Some(relation) == self.relation => {
                    bytes += data.len();
                    if let Some(OpenTx {
                        xid,
                        changes,
                        skip: false,
                    }) = current.as_mut()
                    {
                        let old = self.row_of(&old, None)?;
                        if self.emits(&old, *xid) {
                            changes.push(Change::Delete(old));
                        }
                    }
                }
                Message::Truncate { relations }
                    if self.relation.is_some_and(|r| relations.contains(&r))
                        && current.as_ref().is_some_and(|c| !c.skip) =>
                {
                    self.metrics.truncates.fetch_add(1, Relaxed);
                    tracing::warn!(table = %self.config.table, "postgres-cdc: TRUNCATE cannot be emitted as row changes; ignored");
                }
                _ => {}
            }
        }
        self.metrics.bytes_in.fetch_add(bytes as u64, Relaxed);
        Ok(())
    }

    fn sample_lag(&mut self) {
        if self
            .last_lag_sample
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        self.last_lag_sample = Some(Instant::now());
        if let Some(client) = self.client.as_mut() {
            if let Ok(row) = client.query_one("SELECT pg_current_wal_lsn()::text", &[]) {
                if let Ok(current) = parse_lsn(row.get(0)) {
                    let lag = current.saturating_sub(self.position.end_lsn.max(1)) as i64;
                    self.metrics
                        .lag_bytes
                        .store(if self.position.end_lsn == 0 { 0 } else { lag }, Relaxed);
                }
            }
        }
    }

    fn poll_changes(&mut self, out: &mut Vec<Change<Row>>, max: usize) -> Result<SourcePoll> {
        if self.client.is_none() {
            self.connect_stream()?;
        }
        if self.pending.is_empty() {
            if self
                .last_peek
                .is_some_and(|t| t.elapsed() < self.config.poll_interval)
            {
                return Ok(SourcePoll::Idle);
            }
            self.last_peek = Some(Instant::now());
            let mut attempt = 0;
            loop {
                match self.peek() {
                    Ok(()) => break,
                    Err(e) if attempt < 30 && retryable(&e, attempt) => {
                        attempt += 1;
                        self.metrics.retries.fetch_add(1, Relaxed);
                        tracing::warn!(error = %e, attempt, "postgres-cdc: retrying on a new connection");
                        std::thread::sleep(backoff(attempt.min(3)));
                        self.client = None;
                        self.connect_stream()?;
                    }
                    Err(e) => return Err(e),
                }
            }
            self.sample_lag();
            if self.pending.is_empty() {
                return Ok(SourcePoll::Idle);
            }
        }
        let mut n = 0;
        while n < max {
            let Some(tx) = self.pending.front_mut() else {
                break;
            };
            // After a restore: changes of this transaction emitted before.
            if tx.commit_lsn > self.position.commit_lsn
                && self.position.partial > 0
                && tx.emitted == 0
            {
                tx.emitted = (self.position.partial as usize).min(tx.changes.len());
            }
            let take = (max - n).min(tx.changes.len() - tx.emitted);
            out.extend(tx.changes[tx.emitted..tx.emitted + take].iter().cloned());
            tx.emitted += take;
            n += take;
            self.metrics.changes.fetch_add(take as u64, Relaxed);
            if tx.emitted == tx.changes.len() {
                let tx = self.pending.pop_front().expect("front");
                self.position.commit_lsn = tx.commit_lsn;
                self.position.end_lsn = tx.end_lsn;
                self.position.partial = 0;
                if !tx.changes.is_empty() {
                    self.metrics.transactions.fetch_add(1, Relaxed);
                    let now_us = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_micros() as i64);
                    self.metrics
                        .lag_ms
                        .store((now_us - PG_EPOCH_US - tx.commit_ts) / 1000, Relaxed);
                } else {
                    self.metrics.skipped_transactions.fetch_add(1, Relaxed);
                }
            } else {
                self.position.partial = tx.emitted as u64;
            }
        }
        Ok(SourcePoll::Ready)
    }

    fn connect_stream(&mut self) -> Result<()> {
        self.client = Some(self.config.connection.connect()?);
        self.relation = None;
        self.pending.clear();
        self.last_peek_rows = 0;
        Ok(())
    }
}

impl SourceReader<Change<Row>> for CdcReader {
    fn poll_batch(
        &mut self,
        out: &mut Vec<Change<Row>>,
        max: usize,
        _ctx: &mut TaskContext,
    ) -> Result<SourcePoll> {
        if self.is_idle_extra() {
            return Ok(SourcePoll::Finished);
        }
        if self.client.is_none() {
            self.connect_stream()?;
            self.ensure_slot()?;
            self.segment_keys = self
                .position
                .segments
                .iter()
                .map(|s| {
                    s.upper
                        .as_ref()
                        .map(|k| self.decode_key_texts(k))
                        .transpose()
                })
                .collect::<Result<_>>()?;
        }
        if !self.position.snapshot_done {
            return self.poll_snapshot(out, max.max(1));
        }
        if self.segment_keys.len() != self.position.segments.len() {
            self.segment_keys = self
                .position
                .segments
                .iter()
                .map(|s| {
                    s.upper
                        .as_ref()
                        .map(|k| self.decode_key_texts(k))
                        .transpose()
                })
                .collect::<Result<_>>()?;
        }
        self.poll_changes(out, max.max(1))
    }

    fn snapshot_position(&mut self) -> Result<Vec<u8>> {
        encode(&self.position)
    }

    /// The slot may advance to the end of the last transaction emitted whole.
    fn pre_commit(&mut self) -> Result<Vec<Vec<u8>>> {
        if self.is_idle_extra() || self.position.end_lsn == 0 {
            return Ok(Vec::new());
        }
        Ok(vec![encode(&self.position.end_lsn)?])
    }
}

/// Lets the slot advance once a checkpoint is complete: the reader advances it on its own
/// connection before its next peek (a peek holds the slot, so another session could not
/// advance it meanwhile). A crash before that only means the restored reader skips a little
/// more WAL by its checkpointed position.
struct SlotCommitter {
    advance_to: Arc<AtomicU64>,
}

impl Committer for SlotCommitter {
    fn commit(&self, committable: &[u8]) -> Result<()> {
        let lsn: u64 = decode(committable)?;
        self.advance_to.fetch_max(lsn, Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_visibility() {
        let v = Visibility::parse("100:105:101,103").unwrap();
        assert!(v.sees(99));
        assert!(v.sees(100) && v.sees(102) && v.sees(104));
        assert!(!v.sees(101) && !v.sees(103) && !v.sees(105) && !v.sees(200));
        // Epochs: a snapshot in epoch 1 and an xid just past the wrap.
        let v = Visibility::parse("4294967290:4294967300:").unwrap();
        assert!(v.sees(4294967295)); // epoch 0, below xmax
        assert!(v.sees(1)); // 4294967297 in full
        assert!(!v.sees(10)); // 4294967306, not yet
    }

    #[test]
    fn flink_cdc_options_are_read() {
        let o: BTreeMap<String, String> = [
            ("connector", "postgres-cdc"),
            ("hostname", "db"),
            ("port", "5433"),
            ("database-name", "shop"),
            ("schema-name", "public"),
            ("table-name", "orders"),
            ("username", "cdc"),
            ("password-env", "CDC_PW"),
            ("slot.name", "orders_slot"),
            ("decoding.plugin.name", "pgoutput"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let c = PostgresCdcConfig::from_options(&o).unwrap();
        assert_eq!(c.table, "public.orders");
        assert_eq!(c.slot, "orders_slot");
        assert_eq!(c.connection.describe(), "cdc@db:5433/shop");
        let mut bad = o.clone();
        bad.insert("decoding.plugin.name".into(), "wal2json".into());
        assert!(PostgresCdcConfig::from_options(&bad).is_err());
    }
}
