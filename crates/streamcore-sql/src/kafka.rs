//! The `kafka` and `upsert-kafka` tables: Flink's Kafka SQL connectors over the engine's
//! Kafka source and sink (`streamcore-connectors`, feature `kafka`).
//!
//! - `'connector' = 'kafka'`: a source of append-only rows (one per record; tombstones are
//!   skipped) and an append-only sink, at-least-once or exactly-once (one Kafka transaction per
//!   checkpoint). The record's value holds the value fields in the value format; with
//!   `'key.format'` and `'key.fields'` its key holds those columns in the key format.
//! - `'connector' = 'upsert-kafka'`: a compacted topic as a table keyed by its `PRIMARY KEY`.
//!   The source is a changelog: a record is an upsert of its key (`+I` the first time, `-U`
//!   / `+U` after), a tombstone (null value) a delete (`-D`); the sink takes updating queries:
//!   an insert or update-after writes the key's row, a delete a tombstone.
//!
//! Formats (key and value): `json`, `csv`, `raw` (one `STRING` or `BYTES` column). Metadata
//! columns (`col TYPE METADATA [FROM 'key'] [VIRTUAL]`) read the record's `topic`,
//! `partition`, `offset`, `timestamp` and `headers` (a `MAP<STRING, BYTES>`); a persisted
//! (not `VIRTUAL`) `timestamp` or `headers` column is also written: an INSERT sets each
//! record's timestamp or headers from it (the sink's rows hold the physical columns, then the
//! persisted metadata columns). Options are checked when the table is created: an unknown
//! option or a missing one is named, with the closest known name. docs/sql.md lists the
//! options.
//!
//! Without the `kafka` cargo feature the options are still checked, then the table is refused
//! naming the feature (crate::external::check_built).

use crate::catalog::{ColumnSource, TableColumn, TableDef};
use crate::error::{did_you_mean, PlanError};
use crate::format::{CsvRowDecoder, JsonRowDecoder};
use std::sync::Arc;
use streamcore::row::{DataType, Field, MapType, Scalar, Schema};

/// The metadata a `kafka` or `upsert-kafka` table can read: key, type, and what it is.
pub const METADATA: &[(&str, DataType, &str)] = &[
    ("topic", DataType::Varchar, "STRING"),
    ("partition", DataType::BigInt, "INT"),
    ("offset", DataType::BigInt, "BIGINT"),
    ("timestamp", DataType::TimestampMillis, "TIMESTAMP_LTZ(3)"),
    ("headers", HEADERS, "MAP<STRING, BYTES>"),
];

/// The type of the `headers` metadata: each header's name and value (NULL: a null value).
const HEADERS: DataType = match MapType::new(DataType::Varchar, DataType::Bytes) {
    Some(m) => DataType::Map(m),
    None => panic!("strings and bytes are map elements"),
};

/// The metadata an INSERT writes when its column is not `VIRTUAL` (as in Flink's Kafka
/// connector): the record's timestamp (a NULL leaves it to the producer's clock) and its
/// headers (a map's entries in key order; an entry with a NULL value, or a NULL map, writes
/// none).
pub const METADATA_WRITTEN: &[&str] = &["timestamp", "headers"];

/// Refuses to write a table with a persisted (not `VIRTUAL`) metadata column whose metadata
/// cannot be written — Flink refuses the same; `written` is [`TableDef::written_columns`].
pub fn check_metadata_written(table: &TableDef, written: &[usize]) -> Result<(), PlanError> {
    let mut seen: Vec<&str> = Vec::new();
    for &c in written {
        let column = &table.columns[c];
        if let ColumnSource::Metadata { key, .. } = &column.kind {
            if seen.contains(&key.as_str()) {
                return Err(PlanError::invalid(format!(
                    "table `{}`: two persisted metadata columns write '{key}' (declare one VIRTUAL)",
                    table.name
                )));
            }
            seen.push(key);
            if !METADATA_WRITTEN.contains(&key.as_str()) {
                return Err(PlanError::invalid(format!(
                    "table `{}`: metadata column `{}` FROM '{key}' is read-only (writable metadata: {}); declare it VIRTUAL to write to the table",
                    table.name,
                    column.name,
                    METADATA_WRITTEN.join(", ")
                )));
            }
        }
    }
    Ok(())
}

/// Flink's metadata keys this build does not read, with the reason.
const METADATA_NOT_READ: &[(&str, &str)] = &[
    (
        "leader-epoch",
        "the leader epoch is not exposed by the source",
    ),
    (
        "timestamp-type",
        "the timestamp type is not exposed by the source",
    ),
];

/// One metadata field of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetaKey {
    /// The topic the record was read from.
    Topic,
    /// Its partition.
    Partition,
    /// Its offset.
    Offset,
    /// Its Kafka timestamp (create or log-append time), UTC milliseconds.
    Timestamp,
    /// Its headers, a `MAP<STRING, BYTES>` (of a name repeated, the last header is kept).
    Headers,
}

impl MetaKey {
    fn parse(key: &str) -> Option<MetaKey> {
        Some(match key {
            "topic" => MetaKey::Topic,
            "partition" => MetaKey::Partition,
            "offset" => MetaKey::Offset,
            "timestamp" => MetaKey::Timestamp,
            "headers" => MetaKey::Headers,
            _ => return None,
        })
    }
}

/// The type of a metadata column as declared: `TIMESTAMP_LTZ(3)` (an instant, Flink's type of
/// the `timestamp` metadata) is read as `TIMESTAMP(3)` in UTC; other types as everywhere.
pub fn metadata_type(ty: &sqlparser::ast::DataType) -> Result<DataType, PlanError> {
    let text = ty.to_string().to_ascii_uppercase();
    if text.starts_with("TIMESTAMP_LTZ") || text.contains("WITH LOCAL TIME ZONE") {
        return if text.contains("(3)") || !text.contains('(') {
            Ok(DataType::TimestampMillis)
        } else {
            Err(PlanError::unsupported(format!(
                "`{ty}` as a metadata column: TIMESTAMP_LTZ(3) (milliseconds)"
            )))
        };
    }
    crate::types::from_ast(ty)
}

/// The column of a `name TYPE METADATA [FROM 'key'] [VIRTUAL]` declaration (the key is the
/// column's name without `FROM`); checked against its connector by [`check_metadata`].
pub fn metadata_column(
    name: &str,
    data_type: &sqlparser::ast::DataType,
    key: Option<&str>,
    is_virtual: bool,
    not_null: bool,
) -> Result<TableColumn, PlanError> {
    Ok(TableColumn {
        name: name.to_string(),
        data_type: metadata_type(data_type)?,
        kind: ColumnSource::Metadata {
            key: key.unwrap_or(name).to_string(),
            is_virtual,
        },
        not_null,
    })
}

/// Refuses metadata columns of connectors that have none, unknown metadata keys, and types
/// that are not the metadata's.
pub fn check_metadata(table: &TableDef) -> Result<(), PlanError> {
    let connector = table.options.get("connector").map(String::as_str);
    for c in &table.columns {
        let ColumnSource::Metadata { key, .. } = &c.kind else {
            continue;
        };
        if !matches!(connector, Some("kafka" | "upsert-kafka")) {
            return Err(PlanError::invalid(format!(
                "table `{}`: metadata column `{}`: the `{}` connector has no metadata (metadata columns: kafka, upsert-kafka)",
                table.name,
                c.name,
                connector.unwrap_or("?")
            )));
        }
        if let Some((_, why)) = METADATA_NOT_READ.iter().find(|(k, _)| k == key) {
            return Err(PlanError::unsupported(format!(
                "table `{}`: metadata column `{}` FROM '{key}': {why}; readable metadata: {}",
                table.name,
                c.name,
                metadata_list()
            )));
        }
        let Some((_, ty, ty_name)) = METADATA.iter().find(|(k, ..)| k == key) else {
            return Err(PlanError::invalid(format!(
                "table `{}`: unknown metadata key '{key}' of column `{}`{} (metadata: {})",
                table.name,
                c.name,
                did_you_mean(key, METADATA.iter().map(|(k, ..)| *k)),
                metadata_list()
            )));
        };
        if c.data_type != *ty {
            return Err(PlanError::invalid(format!(
                "table `{}`: metadata column `{}` FROM '{key}' is {}, the metadata is {ty_name}",
                table.name, c.name, c.data_type
            )));
        }
    }
    Ok(())
}

fn metadata_list() -> String {
    METADATA
        .iter()
        .map(|(k, _, t)| format!("'{k}' {t}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The options of a `kafka` table (besides `properties.*`, passed to the Kafka client).
const KAFKA_OPTIONS: &[&str] = &[
    "connector",
    "topic",
    "topic-pattern",
    "format",
    "key.format",
    "value.format",
    "key.fields",
    "key.fields-prefix",
    "value.fields-include",
    "scan.startup.mode",
    "scan.startup.timestamp-millis",
    "scan.startup.specific-offsets",
    "scan.bounded.mode",
    "sink.partitioner",
    "sink.delivery-guarantee",
    "sink.transactional-id-prefix",
    // Options of every table (the planner reads them).
    "late-data.table",
    "allowed-lateness",
];

/// The options of an `upsert-kafka` table (besides `properties.*`).
const UPSERT_OPTIONS: &[&str] = &[
    "connector",
    "topic",
    "key.format",
    "value.format",
    "key.fields-prefix",
    "value.fields-include",
    "scan.bounded.mode",
    "sink.delivery-guarantee",
    "sink.transactional-id-prefix",
];

/// Format options, alone (`json.ignore-parse-errors`, for `'format'`) or after `key.` /
/// `value.`.
const FORMAT_OPTIONS: &[&str] = &[
    "json.ignore-parse-errors",
    "csv.field-delimiter",
    "debezium-json.ignore-parse-errors",
    "debezium-json.schema-include",
];

/// The formats of keys and values.
const FORMATS: &[&str] = &["json", "csv", "raw"];

/// Which topics a table names.
#[derive(Clone, Debug, PartialEq)]
pub enum Topics {
    /// `'topic'`: one topic or several separated by `;`.
    List(Vec<String>),
    /// `'topic-pattern'`: a regular expression over topic names (sources only).
    Pattern(String),
}

/// Where a source starts reading (`'scan.startup.mode'`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Startup {
    /// `earliest-offset`.
    Earliest,
    /// `latest-offset`.
    Latest,
    /// `group-offsets`: the group's committed offsets (earliest where none).
    Group,
    /// `timestamp`: the first record at or after these Unix milliseconds.
    Timestamp(i64),
    /// `specific-offsets`: the offsets of `'scan.startup.specific-offsets'` by partition
    /// (earliest in a partition not listed).
    Specific(std::sync::Arc<std::collections::BTreeMap<i32, i64>>),
}

/// Parses Flink's `'scan.startup.specific-offsets'`: `partition:0,offset:42;partition:1,offset:300`.
fn specific_offsets(text: &str) -> Result<std::collections::BTreeMap<i32, i64>, String> {
    let mut offsets = std::collections::BTreeMap::new();
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let parsed = part.split_once(',').and_then(|(p, o)| {
            let partition = p
                .trim()
                .strip_prefix("partition:")?
                .trim()
                .parse::<i32>()
                .ok()?;
            let offset = o
                .trim()
                .strip_prefix("offset:")?
                .trim()
                .parse::<i64>()
                .ok()?;
            (partition >= 0 && offset >= 0).then_some((partition, offset))
        });
        let Some((partition, offset)) = parsed else {
            return Err(format!(
                "'scan.startup.specific-offsets': `{part}` is not `partition:P,offset:O` (e.g. 'partition:0,offset:42;partition:1,offset:300')"
            ));
        };
        if offsets.insert(partition, offset).is_some() {
            return Err(format!(
                "'scan.startup.specific-offsets': partition {partition} is given twice"
            ));
        }
    }
    if offsets.is_empty() {
        return Err("'scan.startup.specific-offsets' names no partition".into());
    }
    Ok(offsets)
}

/// `'sink.delivery-guarantee'`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guarantee {
    /// `at-least-once` (and `none`, which gets at-least-once).
    AtLeastOnce,
    /// `exactly-once`: a Kafka transaction per checkpoint.
    ExactlyOnce,
}

/// A format of a record's key or value, over some physical columns.
#[derive(Clone)]
pub(crate) enum Codec {
    Json {
        decoder: JsonRowDecoder,
        names: crate::format::JsonNames,
    },
    Csv {
        decoder: CsvRowDecoder,
        delimiter: u8,
    },
    Raw {
        ty: DataType,
    },
}

/// The key or the value of a record: a format over the physical columns `fields`.
#[derive(Clone)]
pub struct Part {
    pub(crate) codec: Codec,
    /// Physical column indices, in the format's field order.
    pub(crate) fields: Arc<[usize]>,
}

impl Part {
    /// Decodes `bytes` into the part's columns of `physical`; false when the format skips the
    /// record (`json.ignore-parse-errors`, a blank line).
    pub fn decode_into(&self, bytes: &[u8], physical: &mut [Scalar]) -> Result<bool, String> {
        let text = || std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8 text: {e}"));
        let values = match &self.codec {
            Codec::Raw { ty } => {
                physical[self.fields[0]] = match ty {
                    DataType::Bytes => Scalar::Bytes(bytes.to_vec()),
                    _ => Scalar::str(text()?),
                };
                return Ok(true);
            }
            Codec::Json { decoder, .. } => match decoder.decode_shared(bytes)? {
                Some(row) => row.values,
                None => return Ok(false), // blank, or skipped by json.ignore-parse-errors
            },
            Codec::Csv { decoder, .. } => {
                match decoder.decode_shared(text()?.trim_end_matches('\n').as_bytes())? {
                    Some(row) => row.values,
                    None => return Ok(false),
                }
            }
        };
        for (v, &at) in values.iter().zip(self.fields.iter()) {
            physical[at] = v.clone();
        }
        Ok(true)
    }

    /// Writes the part's columns of `row` (physical columns) into `out`.
    pub fn encode(&self, row: &[Scalar], out: &mut Vec<u8>) -> Result<(), String> {
        match &self.codec {
            Codec::Raw { .. } => match &row[self.fields[0]] {
                Scalar::Str(s) => out.extend_from_slice(s.as_bytes()),
                Scalar::Bytes(b) => out.extend_from_slice(b),
                Scalar::Null => {}
                other => out.extend_from_slice(other.to_string().as_bytes()),
            },
            Codec::Json { names, .. } => {
                let object = crate::format::JsonObject {
                    entries: names
                        .iter()
                        .zip(self.fields.iter())
                        .map(|(n, &c)| (n, &row[c])),
                    nested: names.nested(),
                };
                serde_json::to_writer(&mut *out, &object).map_err(|e| e.to_string())?;
            }
            Codec::Csv { delimiter, .. } => {
                for (i, &c) in self.fields.iter().enumerate() {
                    if i > 0 {
                        out.push(*delimiter);
                    }
                    crate::format::write_csv_field(&row[c], *delimiter, out);
                }
            }
        }
        Ok(())
    }

    /// Whether the part is a raw field that is NULL in `row` (written as a null value).
    pub fn is_null_raw(&self, row: &[Scalar]) -> bool {
        matches!(self.codec, Codec::Raw { .. }) && row[self.fields[0]].is_null()
    }

    /// The part decoding only the columns marked in `needed` (JSON skips the others).
    pub fn only(&self, needed: &[bool]) -> Part {
        let codec = match &self.codec {
            Codec::Json { decoder, names } => {
                let mine: Vec<bool> = self.fields.iter().map(|&c| needed[c]).collect();
                Codec::Json {
                    decoder: decoder.clone().only(&mine),
                    names: names.clone(),
                }
            }
            other => other.clone(),
        };
        Part {
            codec,
            fields: self.fields.clone(),
        }
    }
}

/// A `kafka` or `upsert-kafka` table's options, checked.
#[derive(Clone)]
pub struct KafkaTable {
    /// `upsert-kafka`.
    pub upsert: bool,
    /// `properties.bootstrap.servers`.
    pub brokers: String,
    /// The other `properties.*`, without the prefix (client properties).
    pub properties: Vec<(String, String)>,
    /// The topics.
    pub topics: Topics,
    /// `properties.group.id`.
    pub group: Option<String>,
    /// `scan.startup.mode`.
    pub startup: Startup,
    /// `scan.bounded.mode` = `latest-offset`: stop at the end offsets of when the job starts.
    pub bounded: bool,
    /// The key's format and columns.
    pub key: Option<Part>,
    /// The value's format and columns.
    pub value: Part,
    /// `'value.format' = 'debezium-json'`: the values are Debezium change events over every
    /// physical column (the table is a changelog; `value` is unused).
    pub debezium: Option<streamcore_connectors::format::debezium::DebeziumJson>,
    /// `sink.delivery-guarantee`.
    pub guarantee: Guarantee,
    /// `sink.transactional-id-prefix`.
    pub transactional_id_prefix: Option<String>,
    /// The metadata of each metadata column, in declaration order.
    pub metadata: Vec<MetaKey>,
    /// The number of physical columns.
    pub physical: usize,
}

impl KafkaTable {
    /// Reads and checks the options of `table` (a `kafka` or `upsert-kafka` table).
    pub fn from_table(table: &TableDef) -> Result<KafkaTable, PlanError> {
        let connector = table.connector()?;
        let upsert = connector == "upsert-kafka";
        let bad =
            |m: String| PlanError::invalid(format!("`{connector}` table `{}`: {m}", table.name));
        let known = if upsert {
            UPSERT_OPTIONS
        } else {
            KAFKA_OPTIONS
        };
        let mut properties = Vec::new();
        for (k, v) in &table.options {
            if let Some(p) = k.strip_prefix("properties.") {
                if p.is_empty() {
                    return Err(bad("'properties.' names no client property".into()));
                }
                if !matches!(p, "bootstrap.servers" | "group.id") {
                    properties.push((p.to_string(), v.clone()));
                }
                continue;
            }
            let format_option = ["", "key.", "value."].iter().any(|prefix| {
                k.strip_prefix(prefix)
                    .is_some_and(|rest| FORMAT_OPTIONS.contains(&rest))
            });
            if !known.contains(&k.as_str()) && !format_option {
                let candidates = known
                    .iter()
                    .copied()
                    .chain(FORMAT_OPTIONS.iter().copied())
                    .chain(["properties.bootstrap.servers", "properties.group.id"]);
                return Err(bad(format!(
                    "unknown option '{k}'{} (options: {}, properties.bootstrap.servers, properties.group.id, properties.* (client properties), json.ignore-parse-errors, csv.field-delimiter)",
                    did_you_mean(k, candidates),
                    known.join(", ")
                )));
            }
        }
        let brokers = table.required("properties.bootstrap.servers")?.to_string();
        let topics = match (
            table.options.get("topic"),
            table.options.get("topic-pattern"),
        ) {
            (Some(_), Some(_)) => {
                return Err(bad("set either 'topic' or 'topic-pattern', not both".into()))
            }
            (Some(t), None) => {
                let list: Vec<String> = t
                    .split(';')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(String::from)
                    .collect();
                if list.is_empty() {
                    return Err(bad("option 'topic' names no topic".into()));
                }
                if upsert && list.len() > 1 {
                    return Err(bad(format!(
                        "option 'topic' must name one topic, got '{t}'"
                    )));
                }
                Topics::List(list)
            }
            (None, Some(p)) => {
                regex_lite::Regex::new(p).map_err(|e| {
                    bad(format!("'topic-pattern' is not a regular expression: {e}"))
                })?;
                Topics::Pattern(p.clone())
            }
            (None, None) => {
                table.required("topic")?;
                unreachable!("required() fails when the option is missing")
            }
        };
        let group = table.options.get("properties.group.id").cloned();
        let startup = match table.options.get("scan.startup.mode").map(String::as_str) {
            None if group.is_some() && !upsert => Startup::Group,
            None => Startup::Earliest,
            Some("earliest-offset") => Startup::Earliest,
            Some("latest-offset") => Startup::Latest,
            Some("group-offsets") => {
                if group.is_none() {
                    return Err(bad(
                        "'scan.startup.mode' = 'group-offsets' needs 'properties.group.id'".into(),
                    ));
                }
                Startup::Group
            }
            Some("timestamp") => {
                let ms = table.required("scan.startup.timestamp-millis")?;
                Startup::Timestamp(ms.trim().parse().map_err(|_| {
                    bad(format!(
                        "'scan.startup.timestamp-millis' must be Unix milliseconds, got '{ms}'"
                    ))
                })?)
            }
            Some("specific-offsets") => {
                let text = table.required("scan.startup.specific-offsets")?;
                Startup::Specific(std::sync::Arc::new(specific_offsets(text).map_err(bad)?))
            }
            Some(other) => {
                let modes = [
                    "earliest-offset",
                    "latest-offset",
                    "group-offsets",
                    "timestamp",
                    "specific-offsets",
                ];
                return Err(bad(format!(
                    "unknown 'scan.startup.mode' '{other}'{} (modes: {})",
                    did_you_mean(other, modes),
                    modes.join(", ")
                )));
            }
        };
        if table.options.contains_key("scan.startup.timestamp-millis")
            && !matches!(startup, Startup::Timestamp(_))
        {
            return Err(bad(
                "'scan.startup.timestamp-millis' needs 'scan.startup.mode' = 'timestamp'".into(),
            ));
        }
        if table.options.contains_key("scan.startup.specific-offsets")
            && !matches!(startup, Startup::Specific(_))
        {
            return Err(bad(
                "'scan.startup.specific-offsets' needs 'scan.startup.mode' = 'specific-offsets'"
                    .into(),
            ));
        }
        let bounded = match table.options.get("scan.bounded.mode").map(String::as_str) {
            None | Some("unbounded") => false,
            Some("latest-offset") => true,
            Some(m @ ("group-offsets" | "timestamp" | "specific-offsets")) => {
                return Err(PlanError::unsupported(format!(
                    "`{connector}` table `{}`: 'scan.bounded.mode' = '{m}' (modes: unbounded, latest-offset)",
                    table.name
                )))
            }
            Some(other) => {
                return Err(bad(format!(
                    "unknown 'scan.bounded.mode' '{other}' (modes: unbounded, latest-offset)"
                )))
            }
        };
        let guarantee = match table
            .options
            .get("sink.delivery-guarantee")
            .map(String::as_str)
        {
            None | Some("at-least-once") | Some("none") => Guarantee::AtLeastOnce,
            Some("exactly-once") => Guarantee::ExactlyOnce,
            Some(other) => {
                return Err(bad(format!(
                "unknown 'sink.delivery-guarantee' '{other}' (at-least-once, exactly-once, none)"
            )))
            }
        };
        let transactional_id_prefix = table.options.get("sink.transactional-id-prefix").cloned();
        if transactional_id_prefix.is_some() && guarantee != Guarantee::ExactlyOnce {
            return Err(bad(
                "'sink.transactional-id-prefix' needs 'sink.delivery-guarantee' = 'exactly-once'"
                    .into(),
            ));
        }
        match table.options.get("sink.partitioner").map(String::as_str) {
            None | Some("default") => {}
            Some(p @ ("fixed" | "round-robin")) => {
                return Err(PlanError::unsupported(format!(
                    "`kafka` table `{}`: 'sink.partitioner' = '{p}' (partitioners: default — by the key's murmur2 hash as Kafka's Java client, keyless records spread)",
                    table.name
                )))
            }
            Some(other) => {
                return Err(bad(format!(
                    "unknown 'sink.partitioner' '{other}' (default, fixed, round-robin)"
                )))
            }
        }

        // Key and value columns.
        let physical: Vec<&TableColumn> = table.physical().collect();
        let physical_index = |name: &str, what: &str| -> Result<usize, PlanError> {
            physical.iter().position(|c| c.name == name).ok_or_else(|| {
                bad(format!(
                    "{what} `{name}` is not a physical column{}",
                    did_you_mean(name, physical.iter().map(|c| c.name.as_str()))
                ))
            })
        };
        let key_fields: Vec<usize> = if upsert {
            if table.primary_key.is_empty() {
                return Err(bad(
                    "an upsert-kafka table needs a PRIMARY KEY (…) NOT ENFORCED: its columns are the record key".into(),
                ));
            }
            table
                .primary_key
                .iter()
                .map(|&c| match table.columns[c].kind {
                    ColumnSource::Physical(i) => Ok(i),
                    _ => Err(bad(format!(
                        "the primary key column `{}` must be a physical column",
                        table.columns[c].name
                    ))),
                })
                .collect::<Result<_, _>>()?
        } else {
            match table.options.get("key.fields") {
                Some(list) => list
                    .split(';')
                    .map(str::trim)
                    .filter(|f| !f.is_empty())
                    .map(|f| physical_index(f, "the key field"))
                    .collect::<Result<_, _>>()?,
                None => Vec::new(),
            }
        };
        let key_format = table.options.get("key.format").map(String::as_str);
        match (key_format, key_fields.is_empty()) {
            (None, false) if upsert => table.required("key.format").map(|_| ())?,
            (None, false) => {
                return Err(bad("'key.fields' needs 'key.format'".into()));
            }
            (Some(_), true) => {
                table.required("key.fields")?;
            }
            _ => {}
        }
        let prefix = table
            .options
            .get("key.fields-prefix")
            .map(String::as_str)
            .unwrap_or("");
        let except_key = match table
            .options
            .get("value.fields-include")
            .map(String::as_str)
        {
            None | Some("ALL") => false,
            Some("EXCEPT_KEY") => true,
            Some(other) => {
                return Err(bad(format!(
                    "unknown 'value.fields-include' '{other}' (ALL, EXCEPT_KEY)"
                )))
            }
        };
        if !prefix.is_empty() && !except_key {
            return Err(bad(
                "'key.fields-prefix' needs 'value.fields-include' = 'EXCEPT_KEY'".into(),
            ));
        }
        let value_format = match (
            table.options.get("format"),
            table.options.get("value.format"),
        ) {
            (Some(_), Some(_)) => {
                return Err(bad("set 'format' or 'value.format', not both".into()));
            }
            (Some(f), None) | (None, Some(f)) => f.as_str(),
            (None, None) if upsert => table.required("value.format")?,
            (None, None) => table.required("format")?,
        };
        let value_prefix = if table.options.contains_key("format") {
            ""
        } else {
            "value."
        };
        let value_fields: Vec<usize> = (0..physical.len())
            .filter(|i| !(except_key && key_fields.contains(i)))
            .collect();
        let part = |format: &str,
                    fields: Vec<usize>,
                    option_prefix: &str,
                    strip: &str|
         -> Result<Part, PlanError> {
            let names: Vec<String> = fields
                .iter()
                .map(|&i| {
                    let n = physical[i].name.as_str();
                    n.strip_prefix(strip).unwrap_or(n).to_string()
                })
                .collect();
            let schema = Schema::new(
                fields
                    .iter()
                    .zip(&names)
                    .map(|(&i, n)| Field::new(n, physical[i].data_type))
                    .collect(),
            );
            let option = |o: &str| table.options.get(&format!("{option_prefix}{o}"));
            let codec = match format {
                "json" => Codec::Json {
                    decoder: JsonRowDecoder::new(
                        schema,
                        option("json.ignore-parse-errors").is_some_and(|v| v == "true"),
                    ),
names: names.into(),
                },
                "csv" => {
                    crate::format::check_csv_columns(
                        schema.fields.iter().map(|f| (f.name.as_str(), f.data_type)),
                    )
                    .map_err(&bad)?;
                    let delimiter = match option("csv.field-delimiter").map(String::as_str) {
                        None => b',',
                        Some("\\t") => b'\t',
                        Some(d) if d.len() == 1 => d.as_bytes()[0],
                        Some(d) => {
                            return Err(bad(format!(
                            "'{option_prefix}csv.field-delimiter' must be one character, got '{d}'"
                        )))
                        }
                    };
                    Codec::Csv {
                        decoder: CsvRowDecoder::new(schema, delimiter),
                        delimiter,
                    }
                }
                "raw" => {
                    let [field] = fields.as_slice() else {
                        return Err(bad(format!(
                            "the raw format holds one column, the {} has {} ({})",
                            if option_prefix == "key." {
                                "key"
                            } else {
                                "value"
                            },
                            fields.len(),
                            names.join(", ")
                        )));
                    };
                    let ty = physical[*field].data_type;
                    if !matches!(ty, DataType::Varchar | DataType::Bytes) {
                        return Err(bad(format!(
                            "the raw format's column `{}` must be STRING or BYTES, it is {ty}",
                            physical[*field].name
                        )));
                    }
                    Codec::Raw { ty }
                }
                "debezium-json" => {
                    return Err(PlanError::unsupported(format!(
                        "`{connector}` table `{}`: 'debezium-json' as the key format (values of a `kafka` table only)",
                        table.name,
                    )))
                }
                "canal-json" | "maxwell-json" | "avro" | "avro-confluent" | "protobuf" => {
                    return Err(PlanError::unsupported(format!(
                        "`{connector}` table `{}`: the format '{format}' (formats: {}; debezium-json for a `kafka` table's values)",
                        table.name,
                        FORMATS.join(", ")
                    )))
                }
                other => {
                    return Err(bad(format!(
                        "unknown format '{other}'{} (formats: {})",
                        did_you_mean(other, FORMATS.iter().copied()),
                        FORMATS.join(", ")
                    )))
                }
            };
            Ok(Part {
                codec,
                fields: fields.into(),
            })
        };
        let key = match key_format {
            Some(f) => Some(part(f, key_fields, "key.", prefix)?),
            None => None,
        };
        if value_fields.is_empty() {
            return Err(bad(
                "the value has no column (every physical column is in the key and 'value.fields-include' is 'EXCEPT_KEY')".into(),
            ));
        }
        let debezium = if value_format == "debezium-json" {
            if upsert {
                return Err(bad(
                    "'value.format' = 'debezium-json' is a changelog of its own: use the 'kafka' connector".into(),
                ));
            }
            if key.is_some() || except_key {
                return Err(PlanError::unsupported(format!(
                    "`kafka` table `{}`: a key format with 'debezium-json' values (the events carry every column)",
                    table.name
                )));
            }
            // Its options without the `value.` prefix.
            let options = table
                .options
                .iter()
                .filter_map(|(k, v)| {
                    let k = k.strip_prefix(value_prefix).unwrap_or(k);
                    k.starts_with("debezium-json.")
                        .then(|| (k.to_string(), v.clone()))
                })
                .collect();
            let schema = Schema::new(
                physical
                    .iter()
                    .map(|c| Field::new(&c.name, c.data_type))
                    .collect(),
            );
            Some(
                streamcore_connectors::format::debezium::DebeziumJson::from_options(
                    schema, &options,
                )
                .map_err(|e| bad(e.to_string()))?,
            )
        } else {
            None
        };
        let value = match &debezium {
            // Not used to decode: the events are decoded whole.
            Some(_) => Part {
                codec: Codec::Raw {
                    ty: DataType::Varchar,
                },
                fields: value_fields.into(),
            },
            None => part(value_format, value_fields, value_prefix, "")?,
        };
        check_metadata(table)?;
        let metadata = table
            .columns
            .iter()
            .filter_map(|c| match &c.kind {
                ColumnSource::Metadata { key, .. } => MetaKey::parse(key),
                _ => None,
            })
            .collect();
        if (upsert || debezium.is_some()) && table.rowtime.is_some() {
            return Err(PlanError::unsupported(format!(
                "`{connector}` table `{}`: a WATERMARK on a changelog source",
                table.name
            )));
        }
        Ok(KafkaTable {
            upsert,
            brokers,
            properties,
            topics,
            group,
            startup,
            bounded,
            key,
            value,
            debezium,
            guarantee,
            transactional_id_prefix,
            metadata,
            physical: physical.len(),
        })
    }

    /// The one topic a sink writes to.
    pub fn sink_topic(&self, table: &TableDef) -> Result<&str, PlanError> {
        match &self.topics {
            Topics::List(t) if t.len() == 1 => Ok(&t[0]),
            Topics::List(t) => Err(PlanError::invalid(format!(
                "`kafka` table `{}` is written to: 'topic' must name one topic, it names {}",
                table.name,
                t.len()
            ))),
            Topics::Pattern(_) => Err(PlanError::invalid(format!(
                "`kafka` table `{}` is written to: it needs a 'topic', not a 'topic-pattern'",
                table.name
            ))),
        }
    }
}

/// Whether `table` is a changelog: an `upsert-kafka` table, or a `kafka` table of
/// `debezium-json` values.
pub fn is_changelog(table: &TableDef) -> bool {
    let option = |k: &str| table.options.get(k).map(String::as_str);
    match option("connector") {
        Some("upsert-kafka") => true,
        Some("kafka") => option("value.format").or(option("format")) == Some("debezium-json"),
        _ => false,
    }
}

/// Whether a scan of `table` never ends (a Kafka table without `'scan.bounded.mode'`).
pub fn is_unbounded(table: &TableDef) -> bool {
    matches!(
        table.options.get("connector").map(String::as_str),
        Some("kafka" | "upsert-kafka")
    ) && table
        .options
        .get("scan.bounded.mode")
        .is_none_or(|m| m == "unbounded")
}

#[cfg(feature = "kafka")]
pub use runtime::{add_sink, changelog_scan, scan, upsert_scan, UpsertNormalize};

/// Building the sources and sinks (feature `kafka`).
#[cfg(feature = "kafka")]
mod runtime {
    use super::*;
    use crate::connectors::{MapSource, RowShaper};
    use crate::physical::SqlStream;
    use serde::{Deserialize, Serialize};
    use streamcore::changelog::{Change, RowKind};
    use streamcore::operator::Output;
    use streamcore::row::Row;
    use streamcore::state::{KeyedContext, KeyedProcessFunction};
    use streamcore::Stream;
    use streamcore_connectors::format::debezium::DebeziumJson;
    use streamcore_connectors::kafka::{
        Delivery, KafkaConfig, KafkaDecoder, KafkaEncoder, KafkaRecord, KafkaSink, KafkaSource,
        RecordHeader, StartOffsets,
    };

    fn config(t: &KafkaTable) -> KafkaConfig {
        t.properties
            .iter()
            .fold(KafkaConfig::new(t.brokers.clone()), |c, (k, v)| {
                c.set(k.clone(), v.clone())
            })
    }

    /// Decodes a record into the physical columns then the metadata columns of a table.
    #[derive(Clone)]
    struct RecordDecoder {
        key: Option<Part>,
        value: Part,
        metadata: Arc<[MetaKey]>,
        physical: usize,
    }

    impl RecordDecoder {
        fn new(t: &KafkaTable, needed: &[bool]) -> Self {
            RecordDecoder {
                key: t.key.as_ref().map(|k| k.only(needed)),
                value: t.value.only(needed),
                metadata: t.metadata.clone().into(),
                physical: t.physical,
            }
        }

        /// The record's row of physical and metadata values; `None` when the value is
        /// skipped (`json.ignore-parse-errors`).
        fn row(&self, r: &KafkaRecord<'_>, value: bool) -> Result<Option<Row>, String> {
            let mut values = vec![Scalar::Null; self.physical + self.metadata.len()];
            if let (Some(k), Some(bytes)) = (&self.key, r.key) {
                if !k
                    .decode_into(bytes, &mut values)
                    .map_err(|e| format!("key: {e}"))?
                {
                    return Ok(None);
                }
            }
            if value {
                if let Some(bytes) = r.payload {
                    if !self.value.decode_into(bytes, &mut values)? {
                        return Ok(None);
                    }
                }
            }
            for (slot, m) in values[self.physical..].iter_mut().zip(self.metadata.iter()) {
                *slot = m.of(r);
            }
            Ok(Some(Row::new(values)))
        }
    }

    impl MetaKey {
        /// The metadata value of record `r`.
        fn of(self, r: &KafkaRecord<'_>) -> Scalar {
            match self {
                MetaKey::Topic => Scalar::str(r.topic),
                MetaKey::Partition => Scalar::Int(r.partition as i64),
                MetaKey::Offset => Scalar::Int(r.offset),
                MetaKey::Timestamp => r.timestamp.map_or(Scalar::Null, Scalar::TimestampMs),
                MetaKey::Headers => Scalar::map(
                    r.headers()
                        .map(|(name, value)| {
                            let value = value.map_or(Scalar::Null, |v| Scalar::Bytes(v.to_vec()));
                            (Scalar::str(name), value)
                        })
                        .collect(),
                ),
            }
        }
    }

    /// `debezium-json` values: each event's changes of the physical columns, the metadata
    /// columns after them.
    #[derive(Clone)]
    struct DebeziumDecoder {
        format: DebeziumJson,
        metadata: Arc<[MetaKey]>,
    }

    impl KafkaDecoder for DebeziumDecoder {
        type Out = Vec<Change<Row>>;
        fn decode(&self, r: &KafkaRecord<'_>) -> Result<Option<Vec<Change<Row>>>, String> {
            let Some(changes) = KafkaDecoder::decode(&self.format, r)? else {
                return Ok(None);
            };
            if self.metadata.is_empty() {
                return Ok(Some(changes));
            }
            Ok(Some(
                changes
                    .into_iter()
                    .map(|c| {
                        let kind = c.kind();
                        let row = c.into_row();
                        let mut values = Vec::with_capacity(row.len() + self.metadata.len());
                        values.extend(row.values.iter().cloned());
                        values.extend(self.metadata.iter().map(|m| m.of(r)));
                        Change::new(kind, Row::new(values))
                    })
                    .collect(),
            ))
        }
    }

    /// Adds the scan of a changelog table (`upsert-kafka`, or `kafka` with `debezium-json`
    /// values) of the columns `columns` to `job`; its stateful operators get ids from `uid`.
    pub fn changelog_scan(
        job: &mut streamcore::Job,
        name: &str,
        table: &TableDef,
        columns: &[usize],
        uid: &str,
    ) -> Result<Stream<Change<Row>>, PlanError> {
        let t = KafkaTable::from_table(table)?;
        let Some(format) = t.debezium.clone() else {
            return upsert_scan(job, name, table, columns, uid);
        };
        let decoder = DebeziumDecoder {
            format,
            metadata: t.metadata.clone().into(),
        };
        let mut shaper = RowShaper::select(table, columns);
        Ok(job
            .source(name, source(&t, decoder))
            .uid(uid)
            .flat_map(|changes: Vec<Change<Row>>| changes)
            .try_map(move |c: &Change<Row>| {
                shaper
                    .shape(&c.row().values)
                    .map(|row| Change::new(c.kind(), row))
            })
            .name("Calc(columns)"))
    }

    /// `kafka`: a row per record; tombstones skipped.
    #[derive(Clone)]
    struct AppendDecoder(RecordDecoder);

    impl KafkaDecoder for AppendDecoder {
        type Out = Row;
        fn decode(&self, r: &KafkaRecord<'_>) -> Result<Option<Row>, String> {
            if r.payload.is_none() {
                return Ok(None);
            }
            self.0.row(r, true)
        }
    }

    /// `upsert-kafka`: a record is an upsert of its key, a tombstone a delete.
    #[derive(Clone)]
    struct UpsertDecoder(RecordDecoder);

    impl KafkaDecoder for UpsertDecoder {
        type Out = Change<Row>;
        fn decode(&self, r: &KafkaRecord<'_>) -> Result<Option<Change<Row>>, String> {
            if r.key.is_none() {
                return Err("an upsert-kafka record without a key".into());
            }
            let delete = r.payload.is_none();
            Ok(self.0.row(r, !delete)?.map(|row| {
                if delete {
                    Change::Delete(row)
                } else {
                    Change::Insert(row)
                }
            }))
        }
    }

    fn source<D: KafkaDecoder>(t: &KafkaTable, decoder: D) -> KafkaSource<D> {
        let c = config(t);
        let s = match &t.topics {
            Topics::List(list) => {
                let names: Vec<&str> = list.iter().map(String::as_str).collect();
                KafkaSource::new(c, &names)
            }
            Topics::Pattern(p) => KafkaSource::pattern(c, p),
        };
        // As Flink's source: the job deals the partitions to its readers; the group id, if
        // any, gives the start offsets and receives the offsets of completed checkpoints.
        let s = match &t.group {
            Some(g) => s.assign(g.clone()),
            None => s,
        };
        let s = s.start(match &t.startup {
            Startup::Earliest => StartOffsets::Earliest,
            Startup::Latest => StartOffsets::Latest,
            Startup::Group => StartOffsets::Group,
            Startup::Timestamp(ms) => StartOffsets::Timestamp(*ms),
            Startup::Specific(offsets) => StartOffsets::Specific(offsets.clone()),
        });
        let s = if t.bounded { s.bounded() } else { s };
        s.format(decoder)
    }

    /// Adds a `kafka` scan of the columns `columns` of `table` to `job`.
    pub fn scan(
        job: &mut streamcore::Job,
        name: &str,
        table: &TableDef,
        columns: &[usize],
    ) -> Result<Stream<Row>, PlanError> {
        let t = KafkaTable::from_table(table)?;
        let mut shaper = RowShaper::select(table, columns);
        let decoder = AppendDecoder(RecordDecoder::new(&t, shaper.needed()));
        let shape = move |r: Row, _: &mut streamcore::TaskContext, out: &mut Vec<Row>| {
            out.push(shaper.shape(&r.values)?);
            Ok(())
        };
        let origin = format!("table `{}` (kafka)", table.name);
        Ok(job.source(
            name,
            MapSource::new(source(&t, decoder), shape).origin_and_split(origin),
        ))
    }

    /// Adds an `upsert-kafka` scan to `job`: the topic's records normalized per key into a
    /// changelog of the columns `columns` ([`UpsertNormalize`], keyed state with id `uid`).
    pub fn upsert_scan(
        job: &mut streamcore::Job,
        name: &str,
        table: &TableDef,
        columns: &[usize],
        uid: &str,
    ) -> Result<Stream<Change<Row>>, PlanError> {
        let t = KafkaTable::from_table(table)?;
        // The key columns are read even when the query does not select them.
        let mut selected = columns.to_vec();
        for &k in &table.primary_key {
            if !selected.contains(&k) {
                selected.push(k);
            }
        }
        let key_at: Vec<usize> = table
            .primary_key
            .iter()
            .map(|k| selected.iter().position(|c| c == k).expect("selected"))
            .collect();
        let mut shaper = RowShaper::select(table, &selected);
        let decoder = UpsertDecoder(RecordDecoder::new(&t, shaper.needed()));
        let changes = job
            .source(name, source(&t, decoder))
            .uid(&format!("{uid}:source"))
            .try_map(move |c: &Change<Row>| {
                shaper
                    .shape(&c.row().values)
                    .map(|row| Change::new(c.kind(), row))
            })
            .name("Calc(columns)");
        let width = columns.len();
        let keep: Vec<usize> = (0..width).collect();
        let normalized = changes
            .key_by(move |c: &Change<Row>| c.row().key(&key_at))
            .process(UpsertNormalize)
            .name("ChangelogNormalize")
            .uid(uid);
        Ok(if width == selected.len() {
            normalized
        } else {
            normalized
                .map(move |c: Change<Row>| c.map(|row| row.project(&keep)))
                .name("Calc(project)")
        })
    }

    /// Flink's `ChangelogNormalize`: turns upserts and deletes by key (an `upsert-kafka`
    /// topic) into a changelog with the rows it replaces — `+I` for a new key, `-U old` / `+U
    /// new` for a changed row (nothing for the same row again), `-D old` for a tombstone of a
    /// key that has a row (nothing otherwise). The state is the key's current row.
    #[derive(Clone, Copy, Debug, Default)]
    pub struct UpsertNormalize;

    /// A key's current row.
    #[derive(Default, Serialize, Deserialize)]
    pub struct Current(Option<Row>);

    impl KeyedProcessFunction<Row, Change<Row>> for UpsertNormalize {
        type State = Current;
        type Out = Change<Row>;

        fn process(
            &mut self,
            change: Change<Row>,
            ctx: &mut KeyedContext<'_, Row, Current>,
            out: &mut Output<Change<Row>>,
        ) {
            let state = ctx.state();
            match change {
                Change::Delete(_) | Change::UpdateBefore(_) => {
                    if let Some(old) = state.0.take() {
                        out.emit(Change::Delete(old));
                    }
                    ctx.clear_state();
                }
                Change::Insert(row) | Change::UpdateAfter(row) => match state.0.replace(row) {
                    None => out.emit(Change::Insert(state.0.clone().expect("set"))),
                    Some(old) if Some(&old) == state.0.as_ref() => {}
                    Some(old) => {
                        out.emit(Change::UpdateBefore(old));
                        out.emit(Change::UpdateAfter(state.0.clone().expect("set")));
                    }
                },
            }
        }
    }

    /// Encodes rows (physical columns) into a record's key and value.
    #[derive(Clone)]
    struct RowEncoder {
        key: Option<Part>,
        value: Part,
        /// The row's column of the record's timestamp (a persisted `timestamp` metadata
        /// column), if any.
        timestamp: Option<usize>,
        /// The row's column of the record's headers (a persisted `headers` metadata column),
        /// if any.
        headers: Option<usize>,
    }

    impl KafkaEncoder<Row> for RowEncoder {
        fn key(&self, record: &Row, key: &mut Vec<u8>) -> bool {
            match &self.key {
                // A key whose encoding fails is written as none; the value still fails below
                // for the same reason (the formats encode every value).
                Some(k) => !k.is_null_raw(&record.values) && k.encode(&record.values, key).is_ok(),
                None => false,
            }
        }

        fn value(&self, record: &Row, value: &mut Vec<u8>) -> Result<(), String> {
            if let Some(ms) = self.written_timestamp(record).filter(|ms| *ms < 0) {
                return Err(format!(
                    "the record's timestamp {} is before 1970-01-01: Kafka has no timestamps before the epoch",
                    Scalar::TimestampMs(ms)
                ));
            }
            self.value.encode(&record.values, value)
        }

        fn tombstone(&self, record: &Row) -> bool {
            self.value.is_null_raw(&record.values)
        }

        /// NULL leaves the timestamp to the producer's clock — and so does the epoch itself
        /// (librdkafka takes 0 for "now"); a time before it fails in `value`.
        fn timestamp(&self, record: &Row) -> Option<i64> {
            self.written_timestamp(record).filter(|ms| *ms > 0)
        }

        fn headers<'r>(&self, record: &'r Row) -> Vec<RecordHeader<'r>> {
            let Some(Scalar::Map(entries)) = self.headers.and_then(|c| record.values.get(c)) else {
                return Vec::new();
            };
            entries
                .iter()
                // As Flink's writer: an entry with a NULL name or value is no header.
                .filter_map(|(name, value)| match (name, value) {
                    (Scalar::Str(name), Scalar::Bytes(v)) => Some((name.as_str(), Some(&v[..]))),
                    _ => None,
                })
                .collect()
        }
    }

    impl RowEncoder {
        /// The row's value of the persisted `timestamp` column, if it has one and it is set.
        fn written_timestamp(&self, record: &Row) -> Option<i64> {
            match record.values.get(self.timestamp?)? {
                Scalar::TimestampMs(ms) => Some(*ms),
                _ => None,
            }
        }
    }

    /// `upsert-kafka`'s sink encoding: a delete is a tombstone of its key.
    #[derive(Clone)]
    struct UpsertEncoder(RowEncoder);

    impl KafkaEncoder<Change<Row>> for UpsertEncoder {
        fn key(&self, record: &Change<Row>, key: &mut Vec<u8>) -> bool {
            self.0.key(record.row(), key)
        }

        fn value(&self, record: &Change<Row>, value: &mut Vec<u8>) -> Result<(), String> {
            self.0.value(record.row(), value)
        }

        fn tombstone(&self, record: &Change<Row>) -> bool {
            record.kind() == RowKind::Delete || self.0.tombstone(record.row())
        }

        fn timestamp(&self, record: &Change<Row>) -> Option<i64> {
            self.0.timestamp(record.row())
        }

        fn headers<'r>(&self, record: &'r Change<Row>) -> Vec<RecordHeader<'r>> {
            self.0.headers(record.row())
        }

        fn accepts_updates(&self) -> bool {
            true
        }
    }

    fn sink<T, E>(t: &KafkaTable, topic: &str, encoder: E) -> KafkaSink<T, E>
    where
        T: streamcore::Data + Serialize,
    {
        // Kafka's Java client partitions keyed records by the murmur2 hash of the key (Flink's
        // 'default' partitioner): the same key lands in the same partition from either.
        let mut c = config(t);
        if !t.properties.iter().any(|(k, _)| k == "partitioner") {
            c = c.set("partitioner", "murmur2_random");
        }
        let s = KafkaSink::<T, _>::json(c, topic).with_encoder(encoder);
        match (t.guarantee, &t.transactional_id_prefix) {
            (Guarantee::AtLeastOnce, _) => s.delivery(Delivery::AtLeastOnce),
            (Guarantee::ExactlyOnce, Some(p)) => s.transactional_id_prefix(p),
            (Guarantee::ExactlyOnce, None) => s.exactly_once(),
        }
    }

    /// Adds the sink of a `kafka` / `upsert-kafka` table; `Ok(Some(stream))` hands the stream
    /// back for the other connectors.
    pub fn add_sink(
        table: &TableDef,
        name: &str,
        stream: SqlStream,
    ) -> Result<Option<SqlStream>, PlanError> {
        if !matches!(table.connector()?, "kafka" | "upsert-kafka") {
            return Ok(Some(stream));
        }
        let t = KafkaTable::from_table(table)?;
        if t.debezium.is_some() {
            return Err(PlanError::unsupported(format!(
                "writing 'debezium-json' (table `{}`): write an updating query to an 'upsert-kafka' table",
                table.name
            )));
        }
        let topic = t.sink_topic(table)?.to_string();
        // The sink's rows hold the physical columns, then the persisted metadata columns.
        let written = table.written_columns();
        let written_metadata = |metadata: &str| {
            written.iter().position(|&c| {
                matches!(&table.columns[c].kind, ColumnSource::Metadata { key, .. } if key == metadata)
            })
        };
        let encoder = RowEncoder {
            key: t.key.clone(),
            value: t.value.clone(),
            timestamp: written_metadata("timestamp"),
            headers: written_metadata("headers"),
        };
        match (stream, t.upsert) {
            (SqlStream::Append(s), false) => {
                s.sink_named(name, sink::<Row, _>(&t, &topic, encoder))
            }
            (SqlStream::Updating(_), false) => {
                return Err(PlanError::invalid(format!(
                    "table `{}` (connector 'kafka') takes append-only rows; write an updating query to an 'upsert-kafka' table",
                    table.name
                )))
            }
            (SqlStream::Append(s), true) => s.map(Change::Insert).sink_named(
                name,
                UpsertSink::new(&t, sink::<Change<Row>, _>(&t, &topic, UpsertEncoder(encoder))),
            ),
            (SqlStream::Updating(s), true) => s.sink_named(
                name,
                UpsertSink::new(&t, sink::<Change<Row>, _>(&t, &topic, UpsertEncoder(encoder))),
            ),
        }
        Ok(None)
    }

    /// The `upsert-kafka` sink: a changelog written by key. An update-before followed by the
    /// update-after of the same key is not written (the update-after rewrites the key, as in
    /// Flink's upsert-kafka sink); an update-before without one — its update-after went to
    /// another key, or a filter dropped it — is written as a tombstone, so that a key never
    /// keeps a row the query withdrew.
    struct UpsertSink<S> {
        inner: S,
        key: Arc<[usize]>,
    }

    impl<S> UpsertSink<S> {
        fn new(t: &KafkaTable, inner: S) -> Self {
            UpsertSink {
                inner,
                key: t
                    .key
                    .as_ref()
                    .expect("upsert-kafka has a key")
                    .fields
                    .clone(),
            }
        }
    }

    impl<S: streamcore::Sink<Change<Row>>> streamcore::Sink<Change<Row>> for UpsertSink<S> {
        type Writer = UpsertWriter<S::Writer>;

        fn create_writer(
            &mut self,
            task: &streamcore::TaskInfo,
        ) -> streamcore::Result<Self::Writer> {
            Ok(UpsertWriter {
                inner: self.inner.create_writer(task)?,
                key: self.key.clone(),
                pending: None,
            })
        }

        fn committer(
            &mut self,
        ) -> streamcore::Result<Option<Box<dyn streamcore::sink::Committer>>> {
            self.inner.committer()
        }

        fn connector_metrics(&self) -> Option<Arc<dyn streamcore::metrics::ConnectorMetrics>> {
            self.inner.connector_metrics()
        }

        fn accepts_updates(&self) -> bool {
            true
        }
    }

    /// A writer of [`UpsertSink`].
    struct UpsertWriter<W> {
        inner: W,
        key: Arc<[usize]>,
        /// An update-before at the end of the last batch, until the next record says whether
        /// its update-after follows.
        pending: Option<Row>,
    }

    impl<W> UpsertWriter<W> {
        fn same_key(&self, a: &Row, b: &Row) -> bool {
            self.key.iter().all(|&i| a.values[i] == b.values[i])
        }

        /// The records to write for `batch`.
        fn pair(&mut self, batch: Vec<Change<Row>>) -> Vec<Change<Row>> {
            let mut out = Vec::with_capacity(batch.len() + 1);
            for c in batch {
                if let Some(before) = self.pending.take() {
                    let replaced =
                        c.kind() == RowKind::UpdateAfter && self.same_key(&before, c.row());
                    if !replaced {
                        out.push(Change::Delete(before));
                    }
                }
                match c {
                    Change::UpdateBefore(row) => self.pending = Some(row),
                    c => out.push(c),
                }
            }
            out
        }

        fn flush_pending(&mut self) -> streamcore::Result<()>
        where
            W: streamcore::SinkWriter<Change<Row>>,
        {
            match self.pending.take() {
                Some(before) => self.inner.write_batch(vec![Change::Delete(before)]),
                None => Ok(()),
            }
        }
    }

    impl<W: streamcore::SinkWriter<Change<Row>>> streamcore::SinkWriter<Change<Row>>
        for UpsertWriter<W>
    {
        fn write_batch(&mut self, batch: Vec<Change<Row>>) -> streamcore::Result<()> {
            let out = self.pair(batch);
            if out.is_empty() {
                return Ok(());
            }
            self.inner.write_batch(out)
        }

        fn on_watermark(&mut self, watermark: streamcore::Timestamp) -> streamcore::Result<()> {
            self.inner.on_watermark(watermark)
        }

        fn pre_commit(
            &mut self,
            checkpoint: streamcore::message::CheckpointId,
        ) -> streamcore::Result<Vec<Vec<u8>>> {
            // An operator emits an update's two halves together, before a barrier.
            self.flush_pending()?;
            self.inner.pre_commit(checkpoint)
        }

        fn close(&mut self) -> streamcore::Result<()> {
            self.flush_pending()?;
            self.inner.close()
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use streamcore::SinkWriter;

        /// Records what the upsert writer hands on.
        #[derive(Default)]
        struct Written(Vec<String>);

        impl SinkWriter<Change<Row>> for Written {
            fn write_batch(&mut self, batch: Vec<Change<Row>>) -> streamcore::Result<()> {
                self.0.extend(
                    batch
                        .iter()
                        .map(|c| format!("{}{}", c.kind().short(), c.row().values[0])),
                );
                Ok(())
            }
        }

        fn row(key: &str, v: i64) -> Row {
            Row::new(vec![Scalar::str(key), Scalar::Int(v)])
        }

        #[test]
        fn an_update_before_is_dropped_only_when_its_update_after_rewrites_the_key() {
            let mut w = UpsertWriter {
                inner: Written::default(),
                key: vec![0].into(),
                pending: None,
            };
            w.write_batch(vec![
                Change::Insert(row("a", 1)),
                Change::UpdateBefore(row("a", 1)),
                Change::UpdateAfter(row("a", 2)),
                // The key changes: `b` replaces `a`.
                Change::UpdateBefore(row("a", 2)),
                Change::UpdateAfter(row("b", 2)),
                // The update-after was filtered away.
                Change::UpdateBefore(row("b", 2)),
                Change::Insert(row("c", 1)),
                // Its update-after comes in the next batch.
                Change::UpdateBefore(row("c", 1)),
            ])
            .unwrap();
            assert_eq!(w.inner.0, ["+Ia", "+Ua", "-Da", "+Ub", "-Db", "+Ic"]);
            w.write_batch(vec![
                Change::UpdateAfter(row("c", 2)),
                Change::UpdateBefore(row("c", 2)),
            ])
            .unwrap();
            assert_eq!(w.inner.0[6..], ["+Uc"]);
            // A checkpoint barrier writes the trailing update-before as a tombstone.
            w.pre_commit(1).unwrap();
            assert_eq!(w.inner.0[7..], ["-Dc"]);
            w.close().unwrap();
            assert_eq!(w.inner.0.len(), 8);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Session;

    /// Creates the table; a build without the `kafka` feature refuses a valid one only for
    /// that (after checking its options).
    fn table(sql: &str) -> Result<(), String> {
        match Session::new().execute_script(sql) {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = e.to_string();
                if !cfg!(feature = "kafka") && e.contains("behind the `kafka` cargo feature") {
                    Ok(())
                } else {
                    Err(e)
                }
            }
        }
    }

    fn err(sql: &str) -> String {
        table(sql).expect_err("refused")
    }

    #[test]
    fn a_missing_topic_is_named() {
        let e = err("CREATE TABLE bids (a BIGINT) WITH ('connector' = 'kafka', \
             'properties.bootstrap.servers' = 'b:9092', 'format' = 'json')");
        assert!(
            e.contains("`kafka` table `bids` is missing option 'topic'"),
            "{e}"
        );
        let e = err("CREATE TABLE bids (a BIGINT) WITH ('connector' = 'kafka', 'topic' = 't', 'format' = 'json')");
        assert!(
            e.contains("is missing option 'properties.bootstrap.servers'"),
            "{e}"
        );
        let e = err(
            "CREATE TABLE bids (a BIGINT) WITH ('connector' = 'kafka', 'topic' = 't', \
             'properties.bootstrap.servers' = 'b:9092')",
        );
        assert!(e.contains("is missing option 'format'"), "{e}");
    }

    #[test]
    fn unknown_options_and_values_are_named_with_a_hint() {
        let base =
            "CREATE TABLE t (k STRING, v BIGINT) WITH ('connector' = 'kafka', 'topic' = 't', \
             'properties.bootstrap.servers' = 'b:9092', 'format' = 'json'";
        let e = err(&format!("{base}, 'scan.startup.mod' = 'earliest-offset')"));
        assert!(
            e.contains("unknown option 'scan.startup.mod'") && e.contains("scan.startup.mode"),
            "{e}"
        );
        // Options of every table are taken.
        table(&format!(
            "{base}, 'late-data.table' = 'late', 'allowed-lateness' = '1 s')"
        ))
        .expect("late-data options are taken");
        let e = err(&format!("{base}, 'scan.startup.mode' = 'earliest-ofset')"));
        assert!(
            e.contains("unknown 'scan.startup.mode' 'earliest-ofset'")
                && e.contains("did you mean `earliest-offset`"),
            "{e}"
        );
        let e = err(&format!("{base}, 'key.format' = 'raw')"));
        assert!(e.contains("is missing option 'key.fields'"), "{e}");
        let e = err(&format!(
            "{base}, 'key.format' = 'raw', 'key.fields' = 'kk')"
        ));
        assert!(
            e.contains("the key field `kk` is not a physical column"),
            "{e}"
        );
        let e = err(&format!(
            "{base}, 'key.format' = 'raw', 'key.fields' = 'v')"
        ));
        assert!(e.contains("must be STRING or BYTES"), "{e}");
        let e = err(&format!("{base}, 'sink.delivery-guarantee' = 'exactly')"));
        assert!(e.contains("unknown 'sink.delivery-guarantee'"), "{e}");
        let e = err(&format!("{base}, 'scan.startup.mode' = 'group-offsets')"));
        assert!(e.contains("needs 'properties.group.id'"), "{e}");
        let e = err(&format!("{base}, 'sink.partitioner' = 'fixed')"));
        assert!(e.contains("'sink.partitioner' = 'fixed'"), "{e}");
        let e = err(&format!(
            "{base}, 'scan.startup.mode' = 'specific-offsets')"
        ));
        assert!(
            e.contains("is missing option 'scan.startup.specific-offsets'"),
            "{e}"
        );
        let e = err(&format!(
            "{base}, 'scan.startup.mode' = 'specific-offsets', \
             'scan.startup.specific-offsets' = 'partition:0,offset:4;partition:x,offset:2')"
        ));
        assert!(
            e.contains("`partition:x,offset:2` is not `partition:P,offset:O`"),
            "{e}"
        );
        let e = err(&format!(
            "{base}, 'scan.startup.mode' = 'specific-offsets', \
             'scan.startup.specific-offsets' = 'partition:0,offset:4;partition:0,offset:2')"
        ));
        assert!(e.contains("partition 0 is given twice"), "{e}");
        let e = err(&format!(
            "{base}, 'scan.startup.specific-offsets' = 'partition:0,offset:4')"
        ));
        assert!(
            e.contains("needs 'scan.startup.mode' = 'specific-offsets'"),
            "{e}"
        );
        // Client properties and format options pass.
        table(&format!(
            "{base}, 'properties.client.id' = 'x', 'json.ignore-parse-errors' = 'true', \
             'key.format' = 'raw', 'key.fields' = 'k', 'scan.bounded.mode' = 'latest-offset')"
        ))
        .unwrap();
    }

    #[test]
    fn upsert_kafka_needs_a_primary_key_and_both_formats() {
        let e = err(
            "CREATE TABLE t (k STRING, v BIGINT) WITH ('connector' = 'upsert-kafka', \
             'topic' = 't', 'properties.bootstrap.servers' = 'b:9092', 'key.format' = 'raw', \
             'value.format' = 'json')",
        );
        assert!(e.contains("needs a PRIMARY KEY"), "{e}");
        let e = err(
            "CREATE TABLE t (k STRING, v BIGINT, PRIMARY KEY (k) NOT ENFORCED) WITH \
             ('connector' = 'upsert-kafka', 'topic' = 't', \
             'properties.bootstrap.servers' = 'b:9092', 'value.format' = 'json')",
        );
        assert!(e.contains("is missing option 'key.format'"), "{e}");
        let e = err(
            "CREATE TABLE t (k STRING, v BIGINT, PRIMARY KEY (k) NOT ENFORCED) WITH \
             ('connector' = 'upsert-kafka', 'topic' = 't', 'key.format' = 'raw', \
             'properties.bootstrap.servers' = 'b:9092', 'value.format' = 'json', \
             'scan.startup.mode' = 'latest-offset')",
        );
        assert!(e.contains("unknown option 'scan.startup.mode'"), "{e}");
    }

    #[test]
    fn metadata_columns_are_checked() {
        let with = "WITH ('connector' = 'kafka', 'topic' = 't', \
             'properties.bootstrap.servers' = 'b:9092', 'format' = 'json')";
        table(&format!(
            "CREATE TABLE t (v BIGINT, ts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL, \
             `partition` INT METADATA VIRTUAL, o BIGINT METADATA FROM 'offset', \
             tp STRING METADATA FROM 'topic') {with}"
        ))
        .unwrap();
        let e = err(&format!(
            "CREATE TABLE t (v BIGINT, o BIGINT METADATA FROM 'ofset') {with}"
        ));
        assert!(
            e.contains("unknown metadata key 'ofset'") && e.contains("did you mean `offset`"),
            "{e}"
        );
        let e = err(&format!(
            "CREATE TABLE t (v BIGINT, o STRING METADATA FROM 'offset') {with}"
        ));
        assert!(e.contains("the metadata is BIGINT"), "{e}");
        let e = err(&format!(
            "CREATE TABLE t (v BIGINT, h STRING METADATA FROM 'headers') {with}"
        ));
        assert!(
            e.contains("`h` FROM 'headers' is VARCHAR, the metadata is MAP<STRING, BYTES>"),
            "{e}"
        );
        let e = err(&format!(
            "CREATE TABLE t (v BIGINT, h BIGINT METADATA FROM 'leader-epoch') {with}"
        ));
        assert!(
            e.contains("the leader epoch is not exposed by the source"),
            "{e}"
        );
        let e = err(
            "CREATE TABLE t (v BIGINT, o BIGINT METADATA FROM 'offset') WITH \
             ('connector' = 'values', 'data' = '1')",
        );
        assert!(e.contains("the `values` connector has no metadata"), "{e}");
    }

    /// Persisted metadata (not `VIRTUAL`) is written by an INSERT: the `timestamp`; read-only
    /// metadata must be `VIRTUAL` in a table that is written, as in Flink.
    #[cfg(feature = "kafka")]
    #[test]
    fn persisted_metadata_is_written_and_read_only_metadata_must_be_virtual() {
        let with = "WITH ('connector' = 'kafka', 'topic' = 't', \
             'properties.bootstrap.servers' = 'b:9092', 'format' = 'json')";
        let script = |table: &str, insert: &str| {
            format!(
                "CREATE TABLE src (v BIGINT, ts TIMESTAMP(3)) WITH ('connector' = 'values', \
                 'data' = '1,2026-12-06 10:00:00'); CREATE TABLE k ({table}) {with}; {insert}"
            )
        };
        let written = "v BIGINT, ts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp', \
                       o BIGINT METADATA FROM 'offset' VIRTUAL";
        table(&script(written, "INSERT INTO k SELECT v, ts FROM src")).unwrap();
        table(&script(
            written,
            "INSERT INTO k (ts, v) SELECT ts, v FROM src",
        ))
        .unwrap();
        let e = err(&script(written, "INSERT INTO k SELECT v FROM src"));
        assert!(
            e.contains("the query gives 1 columns, table `k` takes 2 (v, ts)"),
            "{e}"
        );
        let e = err(&script(
            written,
            "INSERT INTO k (v, o) SELECT v, v FROM src",
        ));
        assert!(
            e.contains("column `o` of table `k` is a VIRTUAL metadata column (read-only)"),
            "{e}"
        );
        let e = err(&script(
            "v BIGINT, o BIGINT METADATA FROM 'offset'",
            "INSERT INTO k SELECT v, v FROM src",
        ));
        assert!(
            e.contains("metadata column `o` FROM 'offset' is read-only (writable metadata: timestamp, headers); declare it VIRTUAL"),
            "{e}"
        );
        // Without a column list the query gives the written columns in declaration order
        // (Flink's), the metadata column first here; the sink's row holds it last.
        let mut session = Session::new();
        let outcomes = session
            .execute_script(&script(
                "kts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp', created TIMESTAMP(3)",
                "EXPLAIN INSERT INTO k SELECT ts, TIMESTAMP '2000-01-01 00:00:00' FROM src",
            ))
            .unwrap();
        let Some(crate::session::Outcome::Explain(plan)) = outcomes.last() else {
            panic!("{outcomes:?}")
        };
        assert!(plan.contains("AS created, $0 AS kts"), "{plan}");
        let e = err(&script(
            "kts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp', created TIMESTAMP(3)",
            "INSERT INTO k SELECT ts FROM src",
        ));
        assert!(e.contains("takes 2 (kts, created)"), "{e}");
        let e = err(&script(
            "v BIGINT, a TIMESTAMP_LTZ(3) METADATA FROM 'timestamp', b TIMESTAMP_LTZ(3) METADATA FROM 'timestamp'",
            "INSERT INTO k SELECT v, ts, ts FROM src",
        ));
        assert!(
            e.contains("two persisted metadata columns write 'timestamp'"),
            "{e}"
        );
        // Headers are written from a map of names to bytes.
        let headers = "v BIGINT, h MAP<STRING, BYTES> METADATA FROM 'headers'";
        table(&script(
            headers,
            "INSERT INTO k SELECT v, MAP['trace', CAST('t-1' AS BYTES)] FROM src",
        ))
        .unwrap();
        let e = err(&script(
            headers,
            "INSERT INTO k SELECT v, MAP['trace', 't-1'] FROM src",
        ));
        assert!(e.contains("MAP<VARCHAR, BYTES>"), "{e}");
        // Such a table is still read.
        table(&script(
            "v BIGINT, o BIGINT METADATA FROM 'offset'",
            "SELECT v, o FROM k",
        ))
        .unwrap();
        let mut session = Session::new();
        session.execute_script(&script(written, "")).unwrap();
        let described = session.catalog.table("k").unwrap().to_string();
        assert!(
            described.contains("METADATA FROM 'timestamp'")
                && described.contains("METADATA FROM 'offset' VIRTUAL"),
            "{described}"
        );
    }

    #[test]
    fn json_csv_and_raw_parts_round_trip() {
        // Bytes travel as base64 in both formats (the text `x'…'` would not read back).
        for c in [Scalar::Null, Scalar::Bytes(vec![0xff, b',', b'"'])] {
            round_trip(vec![Scalar::str("k,1"), Scalar::Int(7), c]);
        }
    }

    fn round_trip(physical: Vec<Scalar>) {
        let schema = |n: &[&str]| {
            Schema::new(
                n.iter()
                    .zip([DataType::Varchar, DataType::BigInt, DataType::Bytes])
                    .map(|(n, t)| Field::new(n, t))
                    .collect(),
            )
        };
        let parts = [
            Part {
                codec: Codec::Json {
                    decoder: JsonRowDecoder::new(schema(&["a", "b", "c"]), false),
                    names: vec!["a".into(), "b".into(), "c".into()].into(),
                },
                fields: vec![0, 1, 2].into(),
            },
            Part {
                codec: Codec::Csv {
                    decoder: CsvRowDecoder::new(schema(&["a", "b", "c"]), b','),
                    delimiter: b',',
                },
                fields: vec![0, 1, 2].into(),
            },
        ];
        for p in &parts {
            let mut bytes = Vec::new();
            p.encode(&physical, &mut bytes).unwrap();
            let mut back = vec![Scalar::Null; 3];
            assert!(p.decode_into(&bytes, &mut back).unwrap());
            assert_eq!(back, physical, "{}", String::from_utf8_lossy(&bytes));
        }
        let raw = Part {
            codec: Codec::Raw {
                ty: DataType::Varchar,
            },
            fields: vec![0].into(),
        };
        let mut bytes = Vec::new();
        raw.encode(&physical, &mut bytes).unwrap();
        assert_eq!(bytes, b"k,1");
        assert!(raw.is_null_raw(&[Scalar::Null]));
    }
}
