//! The `debezium-json` format through the sources that read it: JSON-lines files, and Kafka
//! (librdkafka's mock cluster, feature `kafka`). Events of every operation become the
//! changelog whose result is the source table.

use streamcore::changelog::{apply_to, Change};
use streamcore::row::{DataType, Field, Row, Scalar, Schema};
use streamcore::{Job, JobConfig};
use streamcore_connectors::format::DebeziumJson;
use streamcore_connectors::JsonLinesSource;

fn schema() -> Schema {
    Schema::new(vec![
        Field::new("id", DataType::BigInt).not_null(),
        Field::new("name", DataType::Varchar),
        Field::new("qty", DataType::BigInt),
    ])
}

/// Debezium events (some with the schema envelope, a tombstone, a truncate) and the table
/// they leave.
fn events() -> (Vec<String>, Vec<Row>) {
    let row =
        |id: i64, name: &str, qty: i64| format!(r#"{{"id":{id},"name":"{name}","qty":{qty}}}"#);
    let mut lines = Vec::new();
    for id in 0..50 {
        lines.push(format!(
            r#"{{"before":null,"after":{},"op":"r","source":{{"snapshot":"true"}}}}"#,
            row(id, "x", id)
        ));
    }
    for id in 0..50 {
        if id % 3 == 0 {
            lines.push(format!(
                r#"{{"schema":{{"type":"struct"}},"payload":{{"before":{},"after":{},"op":"u","ts_ms":1}}}}"#,
                row(id, "x", id),
                row(id, "y", id * 2)
            ));
        } else if id % 3 == 1 {
            lines.push(format!(
                r#"{{"before":{},"after":null,"op":"d"}}"#,
                row(id, "x", id)
            ));
            lines.push(String::new()); // the tombstone after a delete
        }
    }
    lines.push(format!(
        r#"{{"before":null,"after":{},"op":"c"}}"#,
        row(100, "new", 1)
    ));
    lines.push(r#"{"op":"t"}"#.to_string());
    let mut table: Vec<Row> = (0..50)
        .filter(|id| id % 3 != 1)
        .map(|id| {
            let (name, qty) = if id % 3 == 0 {
                ("y", id * 2)
            } else {
                ("x", id)
            };
            Row::new(vec![Scalar::Int(id), Scalar::str(name), Scalar::Int(qty)])
        })
        .collect();
    table.push(Row::new(vec![
        Scalar::Int(100),
        Scalar::str("new"),
        Scalar::Int(1),
    ]));
    table.sort();
    (lines, table)
}

#[test]
fn debezium_json_lines_files_become_a_changelog() {
    let (lines, table) = events();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cdc.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let mut job = Job::new("debezium-file");
    let out = job
        .source(
            "cdc",
            JsonLinesSource::new(path.to_str().unwrap()).with_decoder(DebeziumJson::new(schema())),
        )
        .flat_map(|changes: Vec<Change<Row>>| changes)
        .collect();
    job.run(JobConfig::default().parallelism(1)).unwrap();
    let changes = out.take();
    assert_eq!(changes.len(), 50 + 17 * 2 + 17 + 1);
    assert_eq!(apply_to(changes), table);
}

#[test]
fn a_bad_debezium_event_is_rejected_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.jsonl");
    std::fs::write(
        &path,
        "{\"before\":null,\"after\":{\"id\":\"one\"},\"op\":\"c\"}\n",
    )
    .unwrap();
    let mut job = Job::new("debezium-bad");
    job.source(
        "cdc",
        JsonLinesSource::new(path.to_str().unwrap()).with_decoder(DebeziumJson::new(schema())),
    )
    .collect();
    let err = job.run(JobConfig::default()).unwrap_err().to_string();
    assert!(
        err.contains("bad.jsonl") && err.contains("field `after`.id"),
        "{err}"
    );
}

#[cfg(feature = "kafka")]
#[test]
fn debezium_events_from_kafka_become_a_changelog() {
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use streamcore_connectors::kafka::{KafkaConfig, KafkaSource};
    let (lines, table) = events();
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("cdc", 1, 1).unwrap();
    let producer: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap_servers())
        .create()
        .unwrap();
    for line in &lines {
        producer
            .send(BaseRecord::<(), str>::to("cdc").payload(line.as_str()))
            .unwrap();
    }
    producer.flush(std::time::Duration::from_secs(10)).unwrap();
    let mut job = Job::new("debezium-kafka");
    let out = job
        .source(
            "cdc",
            KafkaSource::new(KafkaConfig::new(cluster.bootstrap_servers()), &["cdc"])
                .bounded()
                .format(DebeziumJson::new(schema())),
        )
        .flat_map(|changes: Vec<Change<Row>>| changes)
        .collect();
    job.run(JobConfig::default().parallelism(1)).unwrap();
    assert_eq!(apply_to(out.take()), table);
}
