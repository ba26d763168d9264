//! The tables of the connectors behind cargo features — PostgreSQL (`'connector' = 'jdbc'`
//! sink, `'postgres-cdc'` source), Redis (`'redis'`), webhooks (`'webhook'`) and Parquet files
//! (`'filesystem'` with `'format' = 'parquet'`) — built from the table's options by the same
//! library connectors a Rust program uses (`streamcore-connectors`, which reads Flink's option
//! names). A build without the feature refuses the table, saying which feature it needs.

use crate::catalog::TableDef;
use crate::error::PlanError;
use crate::physical::SqlStream;
#[allow(
    unused_imports,
    reason = "used by the connectors of the enabled features"
)]
use streamcore::changelog::Change;
#[allow(
    unused_imports,
    reason = "used by the connectors of the enabled features"
)]
use streamcore::row::{Row, Schema};

/// The feature a connector needs, and whether this build has it.
pub fn feature_of(connector: &str, format: Option<&str>) -> Option<(&'static str, bool)> {
    Some(match (connector, format) {
        ("jdbc" | "postgres-cdc", _) => ("postgres", cfg!(feature = "postgres")),
        ("redis", _) => ("redis", cfg!(feature = "redis")),
        ("webhook", _) => ("webhook", cfg!(feature = "webhook")),
        ("kafka" | "upsert-kafka", _) => ("kafka", cfg!(feature = "kafka")),
        ("filesystem", Some("parquet")) => ("parquet", cfg!(feature = "parquet")),
        _ => return None,
    })
}

/// Refuses a table of a connector this build does not have.
pub fn check_built(table: &TableDef) -> Result<(), PlanError> {
    let connector = table.connector()?;
    let format = table.options.get("format").map(String::as_str);
    match feature_of(connector, format) {
        Some((feature, false)) => Err(PlanError::invalid(format!(
            "table `{}`: the `{connector}`{} connector is not in this build: it is behind the `{feature}` cargo feature (`cargo run --release -p streamcore-cli --features {feature} -- sql …`)",
            table.name,
            if format == Some("parquet") { " (parquet)" } else { "" }
        ))),
        _ => Ok(()),
    }
}

#[cfg(any(
    feature = "postgres",
    feature = "redis",
    feature = "webhook",
    feature = "parquet"
))]
fn external(e: streamcore::StreamError) -> PlanError {
    PlanError::invalid(e.to_string())
}

/// Whether a sink table of these connectors takes an updating query: PostgreSQL with a
/// primary key (upserts), Redis (keys set and deleted).
pub fn takes_updates(table: &TableDef) -> bool {
    match table.options.get("connector").map(String::as_str) {
        Some("jdbc") => !table.primary_key.is_empty(),
        Some("redis" | "upsert-kafka") => true,
        _ => false,
    }
}

/// What a `redis` sink keeps its rows by: the target its templates render — the key
/// template's text, and the field template's (`hset`) or member template's (`zadd`).
#[derive(Clone, Debug)]
pub struct RedisTarget {
    /// The columns (positions in the written row) the templates read, ascending.
    pub columns: Vec<usize>,
    /// Whether rows that differ in those columns can render one target: a template reading
    /// two columns or more (`{a}{b}` renders `1`,`23` and `12`,`3` alike; so may `{a}:{b}`
    /// when the values hold a `:`). Then only the rendered text says which rows share a key.
    pub ambiguous: bool,
    /// The templates as written (the key's, then the field's or member's): a materializer
    /// keyed by their text names its state by them, so that other templates never restore it.
    pub sources: Vec<String>,
    #[cfg(feature = "redis")]
    templates: Vec<streamcore_connectors::template::Template>,
}

impl RedisTarget {
    /// The target `row` is written to, as a row of the templates' texts (the key's, then
    /// the field's or member's).
    pub fn text_of(&self, row: &Row) -> Row {
        #[cfg(feature = "redis")]
        {
            let text = |t: &streamcore_connectors::template::Template| {
                streamcore::row::Scalar::Str(t.render(row).into())
            };
            Row::new(self.templates.iter().map(text).collect())
        }
        #[cfg(not(feature = "redis"))]
        {
            // No `redis` sink is made without the feature ([`redis_target`] is `None`).
            row.key(&self.columns)
        }
    }
}

/// The target of a `redis` sink table ([`RedisTarget`]). `None` when its options do not make
/// a sink.
#[cfg(feature = "redis")]
pub fn redis_target(table: &TableDef) -> Option<RedisTarget> {
    use streamcore_connectors::redis::{RedisCommand, RedisSinkConfig};
    use streamcore_connectors::template::{Escape, Template};
    let config = RedisSinkConfig::from_options(&table.options).ok()?;
    let schema = table.physical_schema();
    let second = match config.command {
        RedisCommand::HSet => config.field.as_deref(),
        RedisCommand::ZAdd => config.member.as_deref(),
        _ => None,
    };
    let mut columns = Vec::new();
    let mut templates = Vec::new();
    let mut ambiguous = false;
    for text in std::iter::once(config.key.as_str()).chain(second) {
        let template = Template::compile(text, &schema, Escape::Text, "redis template").ok()?;
        let mut read: Vec<usize> = template.columns().collect();
        read.sort_unstable();
        read.dedup();
        ambiguous |= read.len() > 1;
        columns.extend(read);
        templates.push(template);
    }
    columns.sort_unstable();
    columns.dedup();
    Some(RedisTarget {
        columns,
        ambiguous,
        sources: templates.iter().map(|t| t.source().to_string()).collect(),
        templates,
    })
}

/// Without the `redis` feature there is no `redis` sink to key.
#[cfg(not(feature = "redis"))]
pub fn redis_target(_: &TableDef) -> Option<RedisTarget> {
    None
}

/// Adds the sink of `table` if its connector is one of these; `Ok(None)` hands the stream
/// back for the other connectors.
pub fn add_sink(
    table: &TableDef,
    name: &str,
    stream: SqlStream,
) -> Result<Option<SqlStream>, PlanError> {
    let connector = table.connector()?;
    let format = table.options.get("format").map(String::as_str);
    if feature_of(connector, format).is_none() || connector == "postgres-cdc" {
        return Ok(Some(stream));
    }
    check_built(table)?;
    let _ = name; // (unused when no connector feature is on)
    match (connector, format) {
        #[cfg(feature = "postgres")]
        ("jdbc", _) => {
            use streamcore_connectors::postgres::{PostgresSink, PostgresSinkConfig};
            let key: Vec<&str> = table
                .primary_key
                .iter()
                .map(|&c| table.columns[c].name.as_str())
                .collect();
            let config = PostgresSinkConfig::from_options(&table.options)
                .map_err(external)?
                .schema(table.physical_schema())
                .key(&key);
            let sink = PostgresSink::new(config);
            match stream {
                SqlStream::Append(s) => s.sink_named(name, sink),
                SqlStream::Updating(s) => s.sink_named(name, sink),
            }
            Ok(None)
        }
        #[cfg(feature = "redis")]
        ("redis", _) => {
            use streamcore_connectors::redis::{RedisSink, RedisSinkConfig};
            let config = RedisSinkConfig::from_options(&table.options).map_err(external)?;
            let sink = RedisSink::from_config(config, table.physical_schema()).map_err(external)?;
            match stream {
                SqlStream::Append(s) => s.sink_named(name, sink),
                SqlStream::Updating(s) => s.sink_named(name, sink),
            }
            Ok(None)
        }
        #[cfg(feature = "webhook")]
        ("webhook", _) => {
            use streamcore_connectors::webhook::{WebhookConfig, WebhookSink};
            let (config, encoding) =
                WebhookConfig::from_options(&table.options).map_err(external)?;
            let sink = WebhookSink::<Row>::from_config(config, encoding, table.physical_schema())
                .map_err(external)?;
            match stream {
                SqlStream::Append(s) => s.sink_named(name, sink),
                SqlStream::Updating(_) => {
                    return Err(PlanError::invalid(format!(
                        "table `{}` (webhook) takes append-only rows",
                        table.name
                    )))
                }
            }
            Ok(None)
        }
        #[cfg(feature = "parquet")]
        ("filesystem", Some("parquet")) => {
            use streamcore_connectors::parquet::{ParquetSink, ParquetSinkConfig};
            let mut options = table.options.clone();
            if !table.partitioned_by.is_empty() {
                options.insert(
                    "partition.columns".into(),
                    table
                        .partitioned_by
                        .iter()
                        .map(|&c| table.columns[c].name.clone())
                        .collect::<Vec<_>>()
                        .join(","),
                );
            }
            if let Some(p) = options.get("path").cloned() {
                options.insert("path".into(), p.trim_start_matches("file://").to_string());
            }
            let config = ParquetSinkConfig::from_options(&options).map_err(external)?;
            let sink =
                ParquetSink::from_config(config, table.physical_schema()).map_err(external)?;
            match stream {
                SqlStream::Append(s) => s.sink_named(name, sink),
                SqlStream::Updating(_) => {
                    return Err(PlanError::invalid(format!(
                        "table `{}` (parquet files) takes append-only rows",
                        table.name
                    )))
                }
            }
            Ok(None)
        }
        _ => Ok(Some(stream)),
    }
}

/// A `postgres-cdc` scan: the table's changes (a consistent snapshot first, then its
/// replication stream) as a changelog of the declared columns, matched by name.
#[cfg(feature = "postgres")]
pub fn cdc_stream(
    job: &mut streamcore::Job,
    name: &str,
    table: &TableDef,
    columns: &[usize],
) -> Result<streamcore::Stream<Change<Row>>, PlanError> {
    use streamcore_connectors::postgres::{PostgresCdcConfig, PostgresCdcSource};
    let config = PostgresCdcConfig::from_options(&table.options).map_err(external)?;
    let source = PostgresCdcSource::new(config).map_err(external)?;
    let schema = source.schema().clone();
    let mut positions = Vec::new();
    for c in table.physical() {
        let i = schema.index_of(&c.name).ok_or_else(|| {
            PlanError::invalid(format!(
                "`postgres-cdc` table `{}`: the database table has no column `{}` (it has: {})",
                table.name,
                c.name,
                schema
                    .fields
                    .iter()
                    .map(|f| f.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        if schema.fields[i].data_type != c.data_type {
            return Err(PlanError::invalid(format!(
                "`postgres-cdc` table `{}`: column `{}` is {} in the database, declared {}",
                table.name, c.name, schema.fields[i].data_type, c.data_type
            )));
        }
        positions.push(i);
    }
    let mut shaper = crate::connectors::RowShaper::select(table, columns);
    Ok(job.source(name, source).try_map(move |c: &Change<Row>| {
        let physical: Vec<streamcore::row::Scalar> = positions
            .iter()
            .map(|&i| c.row().values[i].clone())
            .collect();
        shaper
            .shape(&physical)
            .map(|row| Change::new(c.kind(), row))
    }))
}
