//! The Parquet sink (the data-lake sink; in SQL, Flink's `filesystem` connector with
//! `'format' = 'parquet'`): rows written as Parquet files under a directory, partitioned by
//! columns (`country=NO/`) and/or event time (`dt=2026-12-05/hour=14/`), rolled by size and
//! time, compressed (snappy, zstd, gzip, lz4 or none), and — when the job checkpoints —
//! committed exactly once.
//!
//! **Exactly once.** Each parallel writer writes hidden in-progress files
//! (`PARTITION/.part-SUBTASK-RUN-SEQ.parquet.inprogress`). A file is closed when it reaches the
//! rolling size, when it has been open for the rollover interval, and at every checkpoint
//! barrier (a Parquet file cannot be reopened: like Flink's bulk formats, files roll on
//! checkpoint). At the barrier, the closed files are synced and handed over as the checkpoint's
//! committables; once the checkpoint is complete, the committer renames each to its final name
//! `PARTITION/part-CHECKPOINT-SUBTASK-N.parquet` — readers (which skip names starting with `.`
//! or `_`, as Hive, Spark, pyarrow and DuckDB do) see nothing before. Renames are idempotent, so
//! a restore re-commits its checkpoint's files harmlessly; then every in-progress file left
//! behind by the crashed run is deleted (no orphans), and the input after the checkpoint is
//! written again into new files. Without checkpoints a file becomes visible when it is closed.
//!
//! **Layout.** Partition directories are Hive-style `column=value` (values escaped as Hive does,
//! `NULL` as `__HIVE_DEFAULT_PARTITION__`); partition columns are not repeated inside the files
//! (as Flink and Hive write them); an event-time partition formats a timestamp column with a
//! strftime pattern in UTC (`dt=%Y-%m-%d/hour=%H`), and the column stays in the files.
//! Column types map to Parquet through Arrow: BIGINT → INT64, DOUBLE → DOUBLE, DECIMAL(p, s) →
//! DECIMAL(p, s), VARCHAR → UTF8 string, BYTES → BINARY, TIMESTAMP(3|6) → TIMESTAMP(MILLIS|MICROS),
//! DATE → DATE, BOOLEAN → BOOLEAN.
//!
//! Configuration: [`ParquetSink::new`] and its builder methods, or Flink's filesystem options
//! ([`ParquetSinkConfig::from_options`]).

mod arrow;
mod commit;

use crate::options::Options;
use crate::partition::PartitionSpec;
use crate::sink_metrics::{SinkKind, SinkMetrics};
use arrow_schema::Schema as ArrowSchema;
pub use commit::ParquetCommit;
use commit::{ParquetCommitter, IN_PROGRESS};
use hashbrown::HashMap;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, GzipLevel, ZstdLevel};
use parquet::file::properties::WriterProperties;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use streamcore::checkpoint::encode;
use streamcore::context::TaskInfo;
use streamcore::row::{Field, Row, Schema};
use streamcore::sink::Committer;
use streamcore::{Result, Sink, SinkWriter, StreamError};

/// The compression of a Parquet sink's column chunks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParquetCompression {
    /// None.
    Uncompressed,
    /// Snappy (the default: fast, moderate ratio).
    Snappy,
    /// Zstandard at a level (1–22; 3 is zstd's default).
    Zstd(i32),
    /// Gzip at a level (0–9).
    Gzip(u32),
    /// LZ4 (the raw block format, `LZ4_RAW`).
    Lz4,
}

impl ParquetCompression {
    /// Parses Flink's `parquet.compression` values (`snappy`, `zstd`, `gzip`, `lz4`,
    /// `uncompressed`/`none`, case-insensitive), with an optional level for zstd and gzip.
    pub fn parse(name: &str, level: Option<i32>) -> std::result::Result<Self, String> {
        let c = match name.trim().to_ascii_lowercase().as_str() {
            "uncompressed" | "none" => ParquetCompression::Uncompressed,
            "snappy" => ParquetCompression::Snappy,
            "zstd" => ParquetCompression::Zstd(level.unwrap_or(3)),
            "gzip" => ParquetCompression::Gzip(level.unwrap_or(6).max(0) as u32),
            "lz4" | "lz4_raw" => ParquetCompression::Lz4,
            other => {
                return Err(format!(
                    "`{other}` is not a compression this sink writes (snappy, zstd, gzip, lz4, uncompressed)"
                ))
            }
        };
        c.codec().map(|_| c)
    }

    fn codec(self) -> std::result::Result<Compression, String> {
        Ok(match self {
            ParquetCompression::Uncompressed => Compression::UNCOMPRESSED,
            ParquetCompression::Snappy => Compression::SNAPPY,
            ParquetCompression::Lz4 => Compression::LZ4_RAW,
            ParquetCompression::Zstd(l) => Compression::ZSTD(
                ZstdLevel::try_new(l).map_err(|e| format!("zstd level {l}: {e}"))?,
            ),
            ParquetCompression::Gzip(l) => Compression::GZIP(
                GzipLevel::try_new(l).map_err(|e| format!("gzip level {l}: {e}"))?,
            ),
        })
    }
}

/// The Parquet sink's configuration: built by [`ParquetSink`]'s builder methods or read from
/// Flink's filesystem options by [`ParquetSinkConfig::from_options`].
#[derive(Clone, Debug)]
pub struct ParquetSinkConfig {
    /// The base directory (a local path, or a `file://` URL).
    pub path: PathBuf,
    /// Partition columns, outermost first: `country=NO/city=Oslo/`.
    pub partition_by: Vec<String>,
    /// An event-time partition: a timestamp (or date) column and a strftime pattern, after
    /// the column partitions.
    pub time_partition: Option<(String, String)>,
    /// The name of a `NULL` partition value.
    pub default_partition_name: String,
    /// A file is closed once it holds this many bytes (compressed, estimated while open).
    pub rolling_file_size: u64,
    /// A file is closed once open this long (files also close at every checkpoint).
    pub rollover_interval: Duration,
    /// How often open files are checked against the rollover interval.
    pub check_interval: Duration,
    /// Column compression.
    pub compression: ParquetCompression,
    /// Most rows per row group.
    pub row_group_rows: usize,
}

impl ParquetSinkConfig {
    /// Defaults for `path`: no partitions, 128 MB files, 30 min rollover (checked every
    /// minute), snappy, row groups of at most 128 Ki rows.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        ParquetSinkConfig {
            path: path.into(),
            partition_by: Vec::new(),
            time_partition: None,
            default_partition_name: "__HIVE_DEFAULT_PARTITION__".into(),
            rolling_file_size: 128 << 20,
            rollover_interval: Duration::from_secs(30 * 60),
            check_interval: Duration::from_secs(60),
            compression: ParquetCompression::Snappy,
            row_group_rows: 128 * 1024,
        }
    }

    /// Reads the options of a table `WITH ('connector' = 'filesystem', 'format' = 'parquet', …)`:
    ///
    /// | option | meaning |
    /// |---|---|
    /// | `path` (required) | base directory (local, or `file://`) |
    /// | `format` | must be `parquet` |
    /// | `sink.rolling-policy.file-size` | default `128MB` |
    /// | `sink.rolling-policy.rollover-interval` | default `30 min` |
    /// | `sink.rolling-policy.check-interval` | default `1 min` |
    /// | `parquet.compression` | `snappy` (default), `zstd`, `gzip`, `lz4`, `uncompressed` |
    /// | `parquet.compression.level` | zstd or gzip level |
    /// | `parquet.block.rows` | most rows per row group (default 131072) |
    /// | `partition.default-name` | name of a `NULL` partition value |
    /// | `partition.columns` | partition columns, comma-separated (the DDL's `PARTITIONED BY`) |
    /// | `sink.partition.time-column`, `sink.partition.time-pattern` | event-time partition (default pattern `dt=%Y-%m-%d/hour=%H`) |
    pub fn from_options(options: &BTreeMap<String, String>) -> Result<Self> {
        let mut o = Options::new("filesystem", options);
        match o.get("format") {
            None | Some("parquet") => {}
            Some(other) => {
                return Err(o.error(
                    "format",
                    format!(
                        "`{other}`: this sink writes parquet (JSON lines and CSV: the file sinks)"
                    ),
                ))
            }
        }
        let path = o.required("path")?;
        let mut c = ParquetSinkConfig::new(local_path(path).map_err(|e| o.error("path", e))?);
        if let Some(s) = o.memory_size("sink.rolling-policy.file-size")? {
            c.rolling_file_size = s.max(1);
        }
        if let Some(d) = o.duration("sink.rolling-policy.rollover-interval")? {
            c.rollover_interval = d;
        }
        if let Some(d) = o.duration("sink.rolling-policy.check-interval")? {
            c.check_interval = d;
        }
        let level = o.integer::<i32>("parquet.compression.level")?;
        if let Some(name) = o.get("parquet.compression") {
            c.compression = ParquetCompression::parse(name, level)
                .map_err(|e| o.error("parquet.compression", e))?;
        }
        if let Some(n) = o.integer::<usize>("parquet.block.rows")? {
            c.row_group_rows = n.max(1);
        }
        if let Some(n) = o.get("partition.default-name") {
            c.default_partition_name = n.to_string();
        }
        if let Some(cols) = o.get("partition.columns") {
            c.partition_by = cols
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
        }
        if let Some(col) = o.get("sink.partition.time-column") {
            let pattern = o
                .get("sink.partition.time-pattern")
                .unwrap_or("dt=%Y-%m-%d/hour=%H");
            c.time_partition = Some((col.to_string(), pattern.to_string()));
        }
        o.finish()?;
        Ok(c)
    }
}

fn local_path(path: &str) -> std::result::Result<PathBuf, String> {
    if let Some(p) = path.strip_prefix("file://") {
        return Ok(PathBuf::from(p));
    }
    if let Some((scheme, _)) = path.split_once("://") {
        return Err(format!(
            "`{scheme}://` paths are not supported by the Parquet sink yet (a local directory or file://)"
        ));
    }
    Ok(PathBuf::from(path))
}

/// Writes rows to Parquet files. See the [module docs](self).
///
/// ```no_run
/// use streamcore::row::{DataType, Field, Schema};
/// use streamcore_connectors::parquet::{ParquetCompression, ParquetSink};
/// let schema = Schema::new(vec![
///     Field::new("country", DataType::Varchar),
///     Field::new("amount", DataType::Double),
///     Field::new("ts", DataType::TimestampMillis),
/// ]);
/// let sink = ParquetSink::new("/data/lake/payments", schema)
///     .partition_by(&["country"])
///     .partition_by_time("ts", "dt=%Y-%m-%d/hour=%H")
///     .rolling_file_size(64 << 20)
///     .compression(ParquetCompression::Zstd(3));
/// ```
pub struct ParquetSink {
    config: ParquetSinkConfig,
    schema: Schema,
    metrics: Arc<SinkMetrics>,
}

impl ParquetSink {
    /// A sink of rows of `schema` into directory `path`.
    pub fn new(path: impl Into<PathBuf>, schema: Schema) -> Self {
        Self::from_parts(ParquetSinkConfig::new(path), schema)
    }

    /// A sink from a configuration (e.g. [`ParquetSinkConfig::from_options`]); checked now.
    pub fn from_config(config: ParquetSinkConfig, schema: Schema) -> Result<Self> {
        let sink = Self::from_parts(config, schema);
        sink.plan()?;
        Ok(sink)
    }

    fn from_parts(config: ParquetSinkConfig, schema: Schema) -> Self {
        ParquetSink {
            config,
            schema,
            metrics: Arc::new(SinkMetrics::new(SinkKind::Parquet)),
        }
    }

    /// Partitions by these columns (outermost first).
    pub fn partition_by(mut self, columns: &[&str]) -> Self {
        self.config.partition_by = columns.iter().map(|c| c.to_string()).collect();
        self
    }

    /// Partitions by event time: `column` (a timestamp or date) formatted with the strftime
    /// `pattern` in UTC, e.g. `dt=%Y-%m-%d/hour=%H`.
    pub fn partition_by_time(mut self, column: &str, pattern: &str) -> Self {
        self.config.time_partition = Some((column.to_string(), pattern.to_string()));
        self
    }

    /// Closes a file once it holds this many bytes (default 128 MB).
    pub fn rolling_file_size(mut self, bytes: u64) -> Self {
        self.config.rolling_file_size = bytes.max(1);
        self
    }

    /// Closes a file once open this long (default 30 min), checked every `check` (default
    /// 1 min).
    pub fn rollover_interval(mut self, interval: Duration, check: Duration) -> Self {
        self.config.rollover_interval = interval;
        self.config.check_interval = check;
        self
    }

    /// The column compression (default snappy).
    pub fn compression(mut self, compression: ParquetCompression) -> Self {
        self.config.compression = compression;
        self
    }

    /// Most rows per row group (default 128 Ki).
    pub fn row_group_rows(mut self, rows: usize) -> Self {
        self.config.row_group_rows = rows.max(1);
        self
    }

    /// The configuration.
    pub fn config(&self) -> &ParquetSinkConfig {
        &self.config
    }

    /// The sink's live counters (also in the job summary).
    pub fn metrics(&self) -> Arc<SinkMetrics> {
        self.metrics.clone()
    }

    /// Checks the configuration against the schema.
    pub fn validate(&self) -> Result<()> {
        self.plan().map(|_| ())
    }

    fn plan(&self) -> Result<Plan> {
        let bad = |m: String| {
            StreamError::Config(format!("parquet sink {}: {m}", self.config.path.display()))
        };
        if self.schema.fields.is_empty() {
            return Err(bad("the schema has no columns".into()));
        }
        let spec = PartitionSpec::resolve(
            &self.schema,
            &self.config.partition_by,
            self.config
                .time_partition
                .as_ref()
                .map(|(c, p)| (c.as_str(), p.as_str())),
            &self.config.default_partition_name,
        )
        .map_err(bad)?;
        let data_columns = spec.data_columns().to_vec();
        let fields: Vec<Field> = data_columns
            .iter()
            .map(|&c| self.schema.fields[c].clone())
            .collect();
        let field_refs: Vec<&Field> = fields.iter().collect();
        let codec = self.config.compression.codec().map_err(bad)?;
        Ok(Plan {
            arrow_schema: arrow::arrow_schema(&field_refs),
            fields,
            data_columns,
            spec,
            props: WriterProperties::builder()
                .set_compression(codec)
                .set_max_row_group_size(self.config.row_group_rows)
                .set_created_by(format!("streamcore {}", env!("CARGO_PKG_VERSION")))
                .build(),
        })
    }
}

struct Plan {
    arrow_schema: Arc<ArrowSchema>,
    fields: Vec<Field>,
    data_columns: Vec<usize>,
    /// The partition directories (shared with the JSON and CSV partitioned sinks).
    spec: PartitionSpec,
    props: WriterProperties,
}

/// An open in-progress file.
struct OpenFile {
    writer: ArrowWriter<File>,
    /// Its path relative to the base directory.
    rel: String,
    opened: Instant,
}

/// A closed in-progress file waiting for its checkpoint.
struct Closed {
    rel: String,
    partition: String,
}

/// One parallel writer of a [`ParquetSink`].
pub struct ParquetWriter {
    base: PathBuf,
    plan: Plan,
    subtask: usize,
    run: String,
    seq: u64,
    checkpointing: bool,
    rolling_file_size: u64,
    rollover_interval: Duration,
    check_interval: Duration,
    next_check: Instant,
    open: HashMap<String, OpenFile>,
    closed: Vec<Closed>,
    last_checkpoint: u64,
    metrics: Arc<SinkMetrics>,
    /// Per input batch: partitions and the rows of each.
    groups: Vec<(String, Vec<u32>)>,
    scratch: String,
}

impl Sink<Row> for ParquetSink {
    type Writer = ParquetWriter;

    fn create_writer(&mut self, task: &TaskInfo) -> Result<ParquetWriter> {
        let plan = self.plan()?;
        let base = self.config.path.clone();
        std::fs::create_dir_all(&base)
            .map_err(|e| StreamError::io(format!("creating {}", base.display()), e))?;
        let run = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Ok(ParquetWriter {
            base,
            plan,
            subtask: task.subtask,
            run: format!("{run:x}-{}", std::process::id()),
            seq: 0,
            checkpointing: task.checkpointing,
            rolling_file_size: self.config.rolling_file_size,
            rollover_interval: self.config.rollover_interval,
            check_interval: self.config.check_interval,
            next_check: Instant::now() + self.config.check_interval,
            open: HashMap::new(),
            closed: Vec::new(),
            last_checkpoint: 0,
            metrics: self.metrics.clone(),
            groups: Vec::new(),
            scratch: String::new(),
        })
    }

    fn committer(&mut self) -> Result<Option<Box<dyn Committer>>> {
        Ok(Some(Box::new(ParquetCommitter {
            base: self.config.path.clone(),
            metrics: self.metrics.clone(),
        })))
    }

    fn connector_metrics(&self) -> Option<Arc<dyn streamcore::metrics::ConnectorMetrics>> {
        Some(self.metrics.clone())
    }
}

impl ParquetWriter {
    /// Renders the partition directory of `row` into `out` (empty: the base directory).
    fn partition_of(&self, row: &Row, out: &mut String) -> Result<()> {
        self.plan
            .spec
            .path_of(row, out)
            .map_err(|message| StreamError::External {
                system: "parquet".into(),
                message,
                source: None,
            })
    }

    fn open_file(&mut self, partition: &str) -> Result<OpenFile> {
        self.seq += 1;
        let rel = format!(
            "{partition}.part-{:03}-{}-{}.parquet{IN_PROGRESS}",
            self.subtask, self.run, self.seq
        );
        let path = self.base.join(&rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| StreamError::io(format!("creating {}", dir.display()), e))?;
        }
        let file = File::create(&path)
            .map_err(|e| StreamError::io(format!("creating {}", path.display()), e))?;
        let writer = ArrowWriter::try_new(
            file,
            self.plan.arrow_schema.clone(),
            Some(self.plan.props.clone()),
        )
        .map_err(|e| StreamError::external("parquet", format!("opening {}", path.display()), e))?;
        Ok(OpenFile {
            writer,
            rel,
            opened: Instant::now(),
        })
    }

    /// Closes a file (footer written, synced): visible at once without checkpoints, else
    /// waiting for the next checkpoint.
    fn close_file(&mut self, partition: String, mut f: OpenFile) -> Result<()> {
        let path = self.base.join(&f.rel);
        let meta = f.writer.finish().map_err(|e| {
            StreamError::external("parquet", format!("closing {}", path.display()), e)
        })?;
        f.writer
            .inner()
            .sync_all()
            .map_err(|e| StreamError::io(format!("syncing {}", path.display()), e))?;
        let m = &self.metrics;
        m.batches.fetch_add(meta.num_row_groups() as u64, Relaxed);
        m.bytes_out
            .fetch_add(f.writer.bytes_written() as u64, Relaxed);
        drop(f.writer);
        if self.checkpointing {
            self.closed.push(Closed {
                rel: f.rel,
                partition,
            });
        } else {
            // `PARTITION/.part-….parquet.inprogress` becomes `PARTITION/part-….parquet`.
            let name = &f.rel[partition.len()..];
            let name = name.strip_prefix('.').unwrap_or(name);
            let to = format!(
                "{partition}{}",
                name.strip_suffix(IN_PROGRESS).unwrap_or(name)
            );
            let commit = ParquetCommit { from: f.rel, to };
            commit::commit(&self.base, &commit, &self.metrics)?;
        }
        Ok(())
    }

    fn roll_all(&mut self) -> Result<()> {
        let open: Vec<(String, OpenFile)> = self.open.drain().collect();
        for (p, f) in open {
            self.close_file(p, f)?;
        }
        Ok(())
    }

    fn roll_old(&mut self) -> Result<()> {
        let now = Instant::now();
        if now < self.next_check {
            return Ok(());
        }
        self.next_check = now + self.check_interval;
        let old: Vec<String> = self
            .open
            .iter()
            .filter(|(_, f)| now.duration_since(f.opened) >= self.rollover_interval)
            .map(|(p, _)| p.clone())
            .collect();
        for p in old {
            if let Some(f) = self.open.remove(&p) {
                self.close_file(p, f)?;
            }
        }
        Ok(())
    }
}

impl SinkWriter<Row> for ParquetWriter {
    fn write_batch(&mut self, batch: Vec<Row>) -> Result<()> {
        self.roll_old()?;
        // Group the batch's rows by partition (few per batch: a linear search).
        for g in &mut self.groups {
            g.1.clear();
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut used = 0;
        for (i, row) in batch.iter().enumerate() {
            scratch.clear();
            self.partition_of(row, &mut scratch)?;
            match self.groups[..used].iter_mut().find(|g| g.0 == scratch) {
                Some(g) => g.1.push(i as u32),
                None => {
                    if used == self.groups.len() {
                        self.groups.push((String::new(), Vec::new()));
                    }
                    let g = &mut self.groups[used];
                    g.0.clear();
                    g.0.push_str(&scratch);
                    g.1.clear();
                    g.1.push(i as u32);
                    used += 1;
                }
            }
        }
        self.scratch = scratch;
        let groups = std::mem::take(&mut self.groups);
        let result = (|| {
            for (partition, idx) in &groups[..used] {
                let field_refs: Vec<&Field> = self.plan.fields.iter().collect();
                let rb = arrow::record_batch(
                    &self.plan.arrow_schema,
                    &batch,
                    idx,
                    &self.plan.data_columns,
                    &field_refs,
                )
                .map_err(|e| StreamError::External {
                    system: "parquet".into(),
                    message: format!("writing to {}: {e}", self.base.display()),
                    source: None,
                })?;
                if !self.open.contains_key(partition.as_str()) {
                    let f = self.open_file(partition)?;
                    self.open.insert(partition.clone(), f);
                }
                let f = self.open.get_mut(partition.as_str()).expect("opened above");
                f.writer.write(&rb).map_err(|e| {
                    StreamError::external(
                        "parquet",
                        format!("writing {}", self.base.join(&f.rel).display()),
                        e,
                    )
                })?;
                let size = (f.writer.bytes_written() + f.writer.in_progress_size()) as u64;
                if size >= self.rolling_file_size {
                    let f = self.open.remove(partition.as_str()).expect("open");
                    self.close_file(partition.clone(), f)?;
                }
                self.metrics
                    .records_out
                    .fetch_add(idx.len() as u64, Relaxed);
            }
            Ok(())
        })();
        self.groups = groups;
        result
    }

    fn on_watermark(&mut self, _watermark: streamcore::Timestamp) -> Result<()> {
        self.roll_old()
    }

    fn pre_commit(&mut self, checkpoint: u64) -> Result<Vec<Vec<u8>>> {
        self.roll_all()?;
        let tag = if checkpoint == u64::MAX {
            // After every file committed before (a restored run may end before its first
            // checkpoint).
            let committed = committed_files(&self.base)?
                .iter()
                .filter_map(|p| {
                    crate::file::transactional::part_checkpoint(p.file_name()?.to_str()?)
                })
                .max()
                .unwrap_or(0);
            let last = self.last_checkpoint.max(committed);
            format!("{:06}-{:03}-end", last + 1, self.subtask)
        } else {
            self.last_checkpoint = checkpoint;
            format!("{checkpoint:06}-{:03}", self.subtask)
        };
        let mut out = Vec::with_capacity(self.closed.len());
        for (n, c) in self.closed.drain(..).enumerate() {
            let commit = ParquetCommit {
                from: c.rel,
                to: format!("{}part-{tag}-{n}.parquet", c.partition),
            };
            out.push(encode(&commit)?);
        }
        Ok(out)
    }

    fn close(&mut self) -> Result<()> {
        // With checkpoints, the end of input's pre-commit closed everything already.
        self.roll_all()
    }
}

/// The committed (visible) Parquet files under `dir`, recursively, sorted: what a reader of
/// the table sees (names starting with `.` or `_` are skipped, as readers do).
pub fn committed_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    commit::walk(dir, &mut |p| {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.ends_with(".parquet") && !name.starts_with('.') && !name.starts_with('_') {
            out.push(p.to_path_buf());
        }
        Ok(())
    })?;
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::escape_partition_value;

    #[test]
    fn partition_values_are_escaped_as_hive_does() {
        let mut s = String::new();
        escape_partition_value("a/b=c%d e", &mut s);
        assert_eq!(s, "a%2Fb%3Dc%25d e");
    }

    #[test]
    fn flink_options_are_read_and_mistakes_named() {
        let opts = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let c = ParquetSinkConfig::from_options(&opts(&[
            ("connector", "filesystem"),
            ("path", "file:///tmp/lake"),
            ("format", "parquet"),
            ("sink.rolling-policy.file-size", "64MB"),
            ("sink.rolling-policy.rollover-interval", "10 min"),
            ("parquet.compression", "ZSTD"),
            ("parquet.compression.level", "9"),
            ("partition.columns", "country, city"),
        ]))
        .unwrap();
        assert_eq!(c.path, PathBuf::from("/tmp/lake"));
        assert_eq!(c.rolling_file_size, 64 << 20);
        assert_eq!(c.rollover_interval, Duration::from_secs(600));
        assert_eq!(c.compression, ParquetCompression::Zstd(9));
        assert_eq!(c.partition_by, ["country", "city"]);
        let e = |pairs: &[(&str, &str)]| {
            ParquetSinkConfig::from_options(&opts(pairs))
                .unwrap_err()
                .to_string()
        };
        assert!(e(&[("path", "/x"), ("parquet.compression", "brotli")])
            .contains("`brotli` is not a compression"));
        assert!(e(&[("path", "s3://b/x")]).contains("`s3://` paths are not supported"));
        assert!(e(&[("path", "/x"), ("format", "csv")]).contains("option `format`"));
        assert!(
            e(&[("path", "/x"), ("sink.rolling-policy.file-size", "big")]).contains("file-size")
        );
    }
}
