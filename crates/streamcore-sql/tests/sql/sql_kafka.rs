//! The `kafka` and `upsert-kafka` SQL tables against a real Kafka-protocol broker (tansu, one
//! per test on 127.0.0.1, started by `TestBroker`; scripts/install-test-deps.sh installs it —
//! without it the tests fail saying so): rows written by one SQL job and read back by another
//! (JSON and CSV values, raw keys, metadata columns, computed columns over metadata), a
//! per-key running total written to a compacted topic and read back as a table (updates and
//! tombstones; two groups sharing an upsert key for a while), and errors that name the topic
//! or the option. The exactly-once sink runs
//! against librdkafka's mock cluster (tansu has no transactions; docs/kafka.md).

#![cfg(feature = "kafka")]

use std::collections::HashMap;
use std::time::Duration;
use streamcore::changelog::{apply_to, Change, RowKind};
use streamcore::checkpoint::CheckpointConfig;
use streamcore::row::{Row, Scalar};
use streamcore::{Job, JobConfig};
use streamcore_connectors::kafka::test_broker::TestBroker;
use streamcore_sql::{Outcome, Session};

/// Orders as a `values` table (notes with the CSV delimiter and quotes).
const ORDERS: &str = r#"CREATE TABLE orders (user_id STRING, amount BIGINT, note STRING, ts TIMESTAMP(3))
WITH ('connector' = 'values', 'data' = 'ann,10,first,2026-12-05 10:00:01
bo,5,"a, b",2026-12-05 11:00:02
ann,7,"say ""hi""",2026-12-05 11:30:03
cy,1,,2026-12-05 12:00:04
bo,20,last,2026-12-05 12:10:05')"#;

/// Runs the INSERTs of `script` as one job.
fn run(script: &str, config: JobConfig) -> streamcore::JobSummary {
    let mut session = Session::new();
    session
        .execute_script(script)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut job = Job::new("sql-kafka");
    session.plan_inserts(&mut job).unwrap();
    job.run(config).unwrap()
}

/// The changes of the script's last statement, a SELECT, at parallelism 1.
fn select(script: &str) -> Vec<Change<Row>> {
    let mut session = Session::new();
    let outcomes = session
        .execute_script(script)
        .unwrap_or_else(|e| panic!("{e}"));
    let Some(Outcome::Query(plan)) = outcomes.last() else {
        panic!("the script ends with a SELECT");
    };
    session
        .collect(plan, JobConfig::default().parallelism(1))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn text(row: &Row) -> Vec<String> {
    row.values.iter().map(|v| v.to_string()).collect()
}

fn int(v: &Scalar) -> i64 {
    match v {
        Scalar::Int(i) => *i,
        other => panic!("not a BIGINT: {other:?}"),
    }
}

fn sorted(mut rows: Vec<Vec<String>>) -> Vec<Vec<String>> {
    rows.sort();
    rows
}

/// Writes the orders to `topic`, keyed by user (raw keys, JSON values), at `parallelism`.
fn write_orders(servers: &str, topic: &str, parallelism: usize) {
    run(
        &format!(
            "{ORDERS};
             CREATE TABLE out (user_id STRING, amount BIGINT, note STRING, ts TIMESTAMP(3))
             WITH ('connector' = 'kafka', 'topic' = '{topic}',
                   'properties.bootstrap.servers' = '{servers}',
                   'key.format' = 'raw', 'key.fields' = 'user_id', 'value.format' = 'json');
             INSERT INTO out SELECT * FROM orders;"
        ),
        JobConfig::default().parallelism(parallelism),
    );
}

fn expected_orders() -> Vec<Vec<String>> {
    let rows = [
        ["ann", "10", "first", "2026-12-05 10:00:01.000"],
        ["bo", "5", "a, b", "2026-12-05 11:00:02.000"],
        ["ann", "7", "say \"hi\"", "2026-12-05 11:30:03.000"],
        ["cy", "1", "NULL", "2026-12-05 12:00:04.000"],
        ["bo", "20", "last", "2026-12-05 12:10:05.000"],
    ];
    sorted(
        rows.iter()
            .map(|r| r.iter().map(|s| s.to_string()).collect())
            .collect(),
    )
}

#[test]
fn rows_round_trip_through_a_topic_with_keys_and_metadata() {
    let broker = TestBroker::start();
    broker.create_topic("orders", 3);
    let servers = broker.brokers();
    let started = now_ms();
    write_orders(&servers, "orders", 2);
    let changes = select(&format!(
        "CREATE TABLE o (user_id STRING, amount BIGINT, note STRING, ts TIMESTAMP(3),
           `topic` STRING METADATA VIRTUAL,
           `partition` INT METADATA VIRTUAL,
           `offset` BIGINT METADATA VIRTUAL,
           kafka_ts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
           doubled AS amount * 2,
           shifted AS `partition` + 100,
           WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
         WITH ('connector' = 'kafka', 'topic' = 'orders',
               'properties.bootstrap.servers' = '{servers}', 'scan.bounded.mode' = 'latest-offset',
               'key.format' = 'raw', 'key.fields' = 'user_id', 'value.format' = 'json');
         SELECT * FROM o;"
    ));
    assert!(changes.iter().all(|c| c.kind() == RowKind::Insert));
    let rows: Vec<Row> = changes.into_iter().map(Change::into_row).collect();
    assert_eq!(
        sorted(rows.iter().map(|r| text(r)[..4].to_vec()).collect()),
        expected_orders()
    );
    let now = now_ms();
    let mut partition_of: HashMap<String, i64> = HashMap::new();
    let mut offsets: HashMap<i64, Vec<i64>> = HashMap::new();
    for r in &rows {
        assert_eq!(r.values[4], Scalar::str("orders"));
        let p = int(&r.values[5]);
        assert!((0..3).contains(&p), "partition {p}");
        // One key, one partition (the key is the record key).
        assert_eq!(*partition_of.entry(r.values[0].to_string()).or_insert(p), p);
        offsets.entry(p).or_default().push(int(&r.values[6]));
        match r.values[7] {
            Scalar::TimestampMs(t) => assert!(t >= started - 1000 && t <= now, "{t}"),
            ref other => panic!("kafka timestamp {other:?}"),
        }
        assert_eq!(int(&r.values[8]), 2 * int(&r.values[1]));
        assert_eq!(int(&r.values[9]), p + 100);
        // The rowtime is the `ts` column.
        assert_eq!(Some(r.time), r.values[3].as_timestamp());
    }
    // Each partition's offsets: 0, 1, 2, … in order.
    for (p, o) in offsets {
        assert_eq!(o, (0..o.len() as i64).collect::<Vec<_>>(), "partition {p}");
    }

    // The same records as raw text: the key is the user, the value a JSON object.
    let raw = select(&format!(
        "CREATE TABLE r (k STRING, v STRING)
         WITH ('connector' = 'kafka', 'topic' = 'orders',
               'properties.bootstrap.servers' = '{servers}', 'scan.bounded.mode' = 'latest-offset',
               'key.format' = 'raw', 'key.fields' = 'k', 'value.format' = 'raw',
               'value.fields-include' = 'EXCEPT_KEY');
         SELECT k, v FROM r WHERE k = 'bo';"
    ));
    let mut values: Vec<String> = raw
        .iter()
        .map(|c| {
            assert_eq!(c.row().values[0], Scalar::str("bo"));
            c.row().values[1].to_string()
        })
        .collect();
    values.sort();
    assert_eq!(
        values,
        [
            r#"{"user_id":"bo","amount":20,"note":"last","ts":"2026-12-05 12:10:05.000"}"#,
            r#"{"user_id":"bo","amount":5,"note":"a, b","ts":"2026-12-05 11:00:02.000"}"#,
        ]
    );
}

/// A topic on both Kafka sinks' brokers: at least once to tansu, exactly once to librdkafka's
/// mock cluster (tansu has no transactions). The brokers and the checkpoint directory live as
/// long as this.
struct BothSinks {
    broker: TestBroker,
    cluster: rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    dir: tempfile::TempDir,
}

impl BothSinks {
    /// `topic` (two partitions) on both.
    fn start(topic: &str) -> Self {
        let broker = TestBroker::start();
        broker.create_topic(topic, 2);
        let cluster = rdkafka::mocking::MockCluster::new(3).unwrap();
        cluster.create_topic(topic, 2, 3).unwrap();
        BothSinks {
            broker,
            cluster,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Per sink: its brokers, its guarantee's name, the table options that choose it
    /// (transactional ids prefixed `prefix`) and the job's configuration (checkpoints every
    /// 20 ms for exactly once).
    fn cases(&self, prefix: &str) -> [(String, &'static str, String, JobConfig); 2] {
        [
            (
                self.broker.brokers(),
                "at-least-once",
                "'sink.delivery-guarantee' = 'at-least-once'".to_string(),
                JobConfig::default().parallelism(2),
            ),
            (
                self.cluster.bootstrap_servers(),
                "exactly-once",
                format!("'sink.delivery-guarantee' = 'exactly-once', 'sink.transactional-id-prefix' = '{prefix}'"),
                JobConfig::default().parallelism(2).checkpoints(
                    CheckpointConfig::new(self.dir.path()).interval(Duration::from_millis(20)),
                ),
            ),
        ]
    }
}

/// A persisted `timestamp` metadata column (not `VIRTUAL`) sets each record's Kafka timestamp:
/// read back through a `VIRTUAL` one, it is the row's; a NULL leaves it to the producer's
/// clock. Through the at-least-once sink (tansu) and the exactly-once one (librdkafka's mock
/// cluster: the timestamps travel with the transaction's records).
#[test]
fn a_persisted_timestamp_metadata_column_sets_the_record_timestamps() {
    let sinks = BothSinks::start("stamped");
    for (servers, guarantee, sink_options, config) in sinks.cases("stamped") {
        let started = now_ms();
        run(
            &format!(
                "{ORDERS};
                 CREATE TABLE out (user_id STRING, amount BIGINT,
                   kafka_ts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp')
                 WITH ('connector' = 'kafka', 'topic' = 'stamped',
                       'properties.bootstrap.servers' = '{servers}', 'format' = 'json',
                       {sink_options});
                 INSERT INTO out
                 SELECT user_id, amount, CASE WHEN user_id = 'cy' THEN NULL ELSE ts END
                 FROM orders;"
            ),
            config,
        );
        let changes = select(&format!(
            "CREATE TABLE i (user_id STRING, amount BIGINT,
               kafka_ts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL)
             WITH ('connector' = 'kafka', 'topic' = 'stamped',
                   'properties.bootstrap.servers' = '{servers}', 'format' = 'json',
                   'scan.bounded.mode' = 'latest-offset',
                   'properties.isolation.level' = 'read_committed');
             SELECT * FROM i;"
        ));
        let mut rows: Vec<Vec<String>> = changes.iter().map(|c| text(c.row())).collect();
        // cy's record has the producer's time.
        let cy = rows.iter().position(|r| r[0] == "cy").expect("cy's row");
        let at = match changes[cy].row().values[2] {
            Scalar::TimestampMs(t) => t,
            ref other => panic!("{guarantee}: cy's timestamp {other:?}"),
        };
        assert!(at >= started - 1000 && at <= now_ms(), "{guarantee}: {at}");
        rows[cy][2] = "(the producer's time)".into();
        assert_eq!(
            sorted(rows),
            sorted(
                [
                    ["ann", "10", "2026-12-05 10:00:01.000"],
                    ["bo", "5", "2026-12-05 11:00:02.000"],
                    ["ann", "7", "2026-12-05 11:30:03.000"],
                    ["cy", "1", "(the producer's time)"],
                    ["bo", "20", "2026-12-05 12:10:05.000"],
                ]
                .iter()
                .map(|r| r.iter().map(|s| s.to_string()).collect())
                .collect()
            ),
            "{guarantee}"
        );
    }
}

/// A persisted `headers` metadata column (a `MAP<STRING, BYTES>`) writes each record's
/// headers — not an entry with a NULL value (as Flink), nor a NULL map; a `VIRTUAL` one reads them back
/// (an empty map for a record without headers). Through the at-least-once sink (tansu) and
/// the exactly-once one (librdkafka's mock cluster: the headers travel with the
/// transaction's records).
#[test]
fn a_persisted_headers_metadata_column_writes_the_record_headers() {
    let sinks = BothSinks::start("headed");
    for (servers, guarantee, sink_options, config) in sinks.cases("headed") {
        run(
            &format!(
                "{ORDERS};
                 CREATE TABLE out (user_id STRING, amount BIGINT,
                   h MAP<STRING, BYTES> METADATA FROM 'headers')
                 WITH ('connector' = 'kafka', 'topic' = 'headed',
                       'properties.bootstrap.servers' = '{servers}', 'format' = 'json',
                       {sink_options});
                 INSERT INTO out
                 SELECT user_id, amount,
                   CASE WHEN amount = 5 THEN NULL
                   ELSE MAP['user', CAST(user_id AS BYTES), 'note', CAST(note AS BYTES)] END
                 FROM orders;"
            ),
            config,
        );
        let changes = select(&format!(
            "CREATE TABLE i (user_id STRING, amount BIGINT,
               h MAP<STRING, BYTES> METADATA FROM 'headers' VIRTUAL)
             WITH ('connector' = 'kafka', 'topic' = 'headed',
                   'properties.bootstrap.servers' = '{servers}', 'format' = 'json',
                   'scan.bounded.mode' = 'latest-offset',
                   'properties.isolation.level' = 'read_committed');
             SELECT user_id, amount, CAST(h['user'] AS STRING), h['note'] IS NULL,
               CARDINALITY(h), h
             FROM i;"
        ));
        let rows: Vec<Vec<String>> = changes.iter().map(|c| text(c.row())).collect();
        assert_eq!(
            sorted(rows),
            sorted(
                [
                    [
                        "ann",
                        "10",
                        "ann",
                        "false",
                        "2",
                        "{note=x'6669727374', user=x'616e6e'}"
                    ],
                    ["bo", "5", "NULL", "true", "0", "{}"],
                    [
                        "ann",
                        "7",
                        "ann",
                        "false",
                        "2",
                        "{note=x'7361792022686922', user=x'616e6e'}"
                    ],
                    ["cy", "1", "cy", "true", "1", "{user=x'6379'}"],
                    [
                        "bo",
                        "20",
                        "bo",
                        "false",
                        "2",
                        "{note=x'6c617374', user=x'626f'}"
                    ],
                ]
                .iter()
                .map(|r| r.iter().map(|s| s.to_string()).collect())
                .collect()
            ),
            "{guarantee}"
        );
    }
}

/// Kafka has no timestamps before the epoch: writing one fails the job naming it (Flink's
/// producer refuses it too), instead of sending what a reader cannot fetch.
#[test]
fn a_timestamp_before_the_epoch_fails_the_job() {
    let broker = TestBroker::start();
    broker.create_topic("early", 1);
    let servers = broker.brokers();
    let mut session = Session::new();
    session
        .execute_script(&format!(
            "CREATE TABLE src (user_id STRING, ts TIMESTAMP(3))
             WITH ('connector' = 'values', 'data' = 'ann,1969-12-31 23:59:59');
             CREATE TABLE out (user_id STRING, kafka_ts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp')
             WITH ('connector' = 'kafka', 'topic' = 'early',
                   'properties.bootstrap.servers' = '{servers}', 'format' = 'json');
             INSERT INTO out SELECT user_id, ts FROM src;"
        ))
        .unwrap();
    let mut job = Job::new("early");
    session.plan_inserts(&mut job).unwrap();
    let e = job.run(JobConfig::default()).unwrap_err().to_string();
    assert!(
        e.contains("timestamp 1969-12-31 23:59:59.000 is before 1970-01-01"),
        "{e}"
    );
}

#[test]
fn csv_values_and_a_topic_pattern_round_trip() {
    let broker = TestBroker::start();
    broker.create_topic("orders-csv", 2);
    broker.create_topic("other", 1);
    let servers = broker.brokers();
    run(
        &format!(
            "{ORDERS};
             CREATE TABLE out (user_id STRING, amount BIGINT, note STRING, ts TIMESTAMP(3))
             WITH ('connector' = 'kafka', 'topic' = 'orders-csv',
                   'properties.bootstrap.servers' = '{servers}', 'format' = 'csv',
                   'sink.delivery-guarantee' = 'at-least-once');
             INSERT INTO out SELECT * FROM orders;"
        ),
        JobConfig::default().parallelism(1),
    );
    let changes = select(&format!(
        "CREATE TABLE o (user_id STRING, amount BIGINT, note STRING, ts TIMESTAMP(3),
           t STRING METADATA FROM 'topic')
         WITH ('connector' = 'kafka', 'topic-pattern' = 'orders-.*',
               'properties.bootstrap.servers' = '{servers}', 'format' = 'csv',
               'scan.bounded.mode' = 'latest-offset', 'scan.startup.mode' = 'earliest-offset');
         SELECT * FROM o;"
    ));
    let rows: Vec<Vec<String>> = changes.iter().map(|c| text(c.row())).collect();
    assert!(rows.iter().all(|r| r[4] == "orders-csv"), "{rows:?}");
    assert_eq!(
        sorted(rows.into_iter().map(|r| r[..4].to_vec()).collect()),
        expected_orders()
    );
}

#[test]
fn a_running_total_per_key_is_written_upserted_and_read_back_as_a_table() {
    let broker = TestBroker::start();
    broker.create_topic("totals", 2);
    broker.create_topic("small", 2);
    let servers = broker.brokers();
    let table = |name: &str, topic: &str, bounded: bool| {
        format!(
            "CREATE TABLE {name} (user_id STRING, total BIGINT, orders BIGINT,
               PRIMARY KEY (user_id) NOT ENFORCED)
             WITH ('connector' = 'upsert-kafka', 'topic' = '{topic}',
                   'properties.bootstrap.servers' = '{servers}',
                   'key.format' = 'json', 'value.format' = 'json'{})",
            if bounded {
                ", 'scan.bounded.mode' = 'latest-offset'"
            } else {
                ""
            }
        )
    };
    // Two INSERTs in one job: every total, and the small totals only (a user whose total
    // grows past 14 leaves that table: a tombstone).
    run(
        &format!(
            "{ORDERS};
             {};
             {};
             INSERT INTO totals SELECT user_id, SUM(amount), COUNT(*) FROM orders GROUP BY user_id;
             INSERT INTO small SELECT user_id, SUM(amount), COUNT(*) FROM orders GROUP BY user_id
               HAVING SUM(amount) < 15;",
            table("totals", "totals", false),
            table("small", "small", false)
        ),
        JobConfig::default().parallelism(2),
    );
    let changes = select(&format!("{}; SELECT * FROM t;", table("t", "totals", true)));
    // Per key, the changelog of its running total, in order.
    let of = |user: &str| -> Vec<String> {
        changes
            .iter()
            .filter(|c| c.row().values[0] == Scalar::str(user))
            .map(|c| format!("{} {}", c.kind().short(), text(c.row()).join(" ")))
            .collect()
    };
    assert_eq!(
        of("ann"),
        ["+I ann 10 1", "-U ann 10 1", "+U ann 17 2"],
        "{changes:?}"
    );
    assert_eq!(of("cy"), ["+I cy 1 1"]);
    assert_eq!(
        sorted(apply_to(changes.clone()).iter().map(text).collect()),
        [["ann", "17", "2"], ["bo", "25", "2"], ["cy", "1", "1"]]
    );

    // The table under a query: an aggregate over the changelog.
    let count = select(&format!(
        "{}; SELECT COUNT(*) AS users, SUM(total) AS total FROM t;",
        table("t", "totals", true)
    ));
    assert_eq!(
        apply_to(count).iter().map(text).collect::<Vec<_>>(),
        [["3", "43"]]
    );

    // Tombstones are deletes.
    let small = select(&format!("{}; SELECT * FROM s;", table("s", "small", true)));
    assert!(
        small
            .iter()
            .any(|c| c.kind() == RowKind::Delete && c.row().values[0] == Scalar::str("ann")),
        "{small:?}"
    );
    assert_eq!(
        apply_to(small).iter().map(text).collect::<Vec<_>>(),
        [["cy", "1", "1"]]
    );

    // A plain `kafka` table refuses the updating query.
    let mut session = Session::new();
    let err = session
        .execute_script(&format!(
            "{ORDERS};
             CREATE TABLE k (user_id STRING, total BIGINT) WITH ('connector' = 'kafka',
               'topic' = 'totals', 'properties.bootstrap.servers' = '{servers}', 'format' = 'json');
             INSERT INTO k SELECT user_id, SUM(amount) FROM orders GROUP BY user_id;"
        ))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("takes append-only rows") && err.contains("upsert-kafka"),
        "{err}"
    );
}

/// An upsert topic keyed by a column the query's updates move (each user's total as the key):
/// ann's total is 10, bo's reaches 10 too, then ann's moves to 17. The updates reach the sink
/// materialized by its key, so ann's withdrawal of 10 does not write a tombstone over bo's.
#[test]
fn two_groups_sharing_an_upsert_key_for_a_while_keep_the_later_row() {
    let broker = TestBroker::start();
    broker.create_topic("by-total", 1);
    let servers = broker.brokers();
    let table = |name: &str, bounded: &str| {
        format!(
            "CREATE TABLE {name} (user_id STRING, total BIGINT, PRIMARY KEY (total) NOT ENFORCED)
             WITH ('connector' = 'upsert-kafka', 'topic' = 'by-total',
                   'properties.bootstrap.servers' = '{servers}',
                   'key.format' = 'json', 'value.format' = 'json'{bounded})"
        )
    };
    run(
        &format!(
            "CREATE TABLE o (user_id STRING, amount BIGINT)
             WITH ('connector' = 'values', 'data' = 'ann,10
bo,5
bo,5
ann,7');
             {};
             INSERT INTO by_total SELECT user_id, SUM(amount) FROM o GROUP BY user_id;",
            table("by_total", "")
        ),
        JobConfig::default().parallelism(1),
    );
    let bounded = ", 'scan.bounded.mode' = 'latest-offset'";
    let changes = select(&format!("{}; SELECT * FROM t;", table("t", bounded)));
    assert_eq!(
        sorted(apply_to(changes.clone()).iter().map(text).collect()),
        [["ann", "17"], ["bo", "10"]],
        "{changes:?}"
    );
}

#[test]
fn a_missing_topic_fails_the_job_naming_it() {
    let broker = TestBroker::start();
    let servers = broker.brokers();
    let mut session = Session::new();
    let outcomes = session
        .execute_script(&format!(
            "CREATE TABLE o (a BIGINT) WITH ('connector' = 'kafka', 'topic' = 'nope',
               'properties.bootstrap.servers' = '{servers}', 'format' = 'json',
               'scan.bounded.mode' = 'latest-offset');
             SELECT * FROM o;"
        ))
        .unwrap();
    let Some(Outcome::Query(plan)) = outcomes.last() else {
        panic!()
    };
    let err = session
        .collect(plan, JobConfig::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("`nope` does not exist"), "{err}");
    // And a table without 'topic' is refused when created.
    let err = Session::new()
        .execute_script(&format!(
            "CREATE TABLE bids (a BIGINT) WITH ('connector' = 'kafka',
               'properties.bootstrap.servers' = '{servers}', 'format' = 'json')"
        ))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`kafka` table `bids` is missing option 'topic'"),
        "{err}"
    );
}

/// The exactly-once sink from SQL: a Kafka transaction per checkpoint (librdkafka's mock
/// cluster: tansu has no transactions), every row committed once; without checkpoints the job
/// is refused.
#[test]
fn the_exactly_once_sink_commits_a_transaction_per_checkpoint() {
    let cluster = rdkafka::mocking::MockCluster::new(3).unwrap();
    cluster.create_topic("bids", 2, 3).unwrap();
    let servers = cluster.bootstrap_servers();
    let script = format!(
        "CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT)
         WITH ('connector' = 'nexmark', 'kind' = 'bid', 'events.num' = '3000',
               'first-event.rate' = '10000', 'rate-limited' = 'true');
         CREATE TABLE out (auction BIGINT, bidder BIGINT, price BIGINT)
         WITH ('connector' = 'kafka', 'topic' = 'bids', 'properties.bootstrap.servers' = '{servers}',
               'format' = 'json', 'key.format' = 'json', 'key.fields' = 'auction',
               'sink.delivery-guarantee' = 'exactly-once',
               'sink.transactional-id-prefix' = 'sql-eos');
         INSERT INTO out SELECT * FROM bid;"
    );
    let dir = tempfile::tempdir().unwrap();
    let summary = run(
        &script,
        JobConfig::default()
            .parallelism(2)
            .checkpoints(CheckpointConfig::new(dir.path()).interval(Duration::from_millis(30))),
    );
    let completed = summary.checkpoints.unwrap().completed;
    assert!(completed >= 2, "{completed} checkpoints");
    let read = select(&format!(
        "CREATE TABLE i (auction BIGINT, bidder BIGINT, price BIGINT)
         WITH ('connector' = 'kafka', 'topic' = 'bids', 'properties.bootstrap.servers' = '{servers}',
               'format' = 'json', 'scan.bounded.mode' = 'latest-offset',
               'properties.isolation.level' = 'read_committed');
         SELECT COUNT(*) FROM i;"
    ));
    // Every bid of the generator's 3000 events, once.
    let bids = select(
        "CREATE TABLE bid (auction BIGINT) WITH ('connector' = 'nexmark', 'kind' = 'bid',
           'events.num' = '3000');
         SELECT COUNT(*) FROM bid;",
    );
    assert_eq!(apply_to(read), apply_to(bids));

    let mut session = Session::new();
    session.execute_script(&script).unwrap();
    let mut job = Job::new("eos-without-checkpoints");
    session.plan_inserts(&mut job).unwrap();
    let err = job.run(JobConfig::default()).unwrap_err().to_string();
    assert!(err.contains("checkpoints"), "{err}");
}

/// Debezium change events in a topic, read as a changelog table (`'value.format' =
/// 'debezium-json'`): inserts, updates with their before image, deletes; an aggregate over it.
#[test]
fn debezium_json_values_are_a_changelog() {
    let broker = TestBroker::start();
    broker.create_topic("dbz", 1);
    let servers = broker.brokers();
    let events = [
        r#"{"before":null,"after":{"id":1,"name":"ann","balance":10},"op":"c"}"#,
        r#"{"before":null,"after":{"id":2,"name":"bo","balance":5},"op":"r"}"#,
        r#"{"before":{"id":1,"name":"ann","balance":10},"after":{"id":1,"name":"ann","balance":30},"op":"u"}"#,
        r#"{"schema":{},"payload":{"before":{"id":2,"name":"bo","balance":5},"after":null,"op":"d"}}"#,
        r#"{"before":null,"after":{"id":3,"name":"cy","balance":7},"op":"c"}"#,
    ];
    // Written as raw text, one CSV-quoted line per event.
    let data: Vec<String> = events
        .iter()
        .map(|e| format!("\"{}\"", e.replace('"', "\"\"")))
        .collect();
    run(
        &format!(
            "CREATE TABLE events (v STRING) WITH ('connector' = 'values', 'data' = '{}');
             CREATE TABLE raw_out (v STRING) WITH ('connector' = 'kafka', 'topic' = 'dbz',
               'properties.bootstrap.servers' = '{servers}', 'format' = 'raw');
             INSERT INTO raw_out SELECT v FROM events;",
            data.join("\n")
        ),
        JobConfig::default().parallelism(1),
    );
    let table = format!(
        "CREATE TABLE accounts (id BIGINT, name STRING, balance BIGINT,
           `offset` BIGINT METADATA VIRTUAL)
         WITH ('connector' = 'kafka', 'topic' = 'dbz', 'properties.bootstrap.servers' = '{servers}',
               'value.format' = 'debezium-json', 'scan.bounded.mode' = 'latest-offset')"
    );
    let changes = select(&format!("{table}; SELECT * FROM accounts;"));
    let got: Vec<String> = changes
        .iter()
        .map(|c| format!("{} {}", c.kind().short(), text(c.row()).join(" ")))
        .collect();
    assert_eq!(
        got,
        [
            "+I 1 ann 10 0",
            "+I 2 bo 5 1",
            "-U 1 ann 10 2",
            "+U 1 ann 30 2",
            "-D 2 bo 5 3",
            "+I 3 cy 7 4",
        ]
    );
    let total = select(&format!(
        "{table}; SELECT COUNT(*), SUM(balance) FROM accounts;"
    ));
    assert_eq!(
        apply_to(total).iter().map(text).collect::<Vec<_>>(),
        [["2", "37"]]
    );
    // Debezium is read, not written.
    let mut session = Session::new();
    let err = session
        .execute_script(&format!(
            "{table}; CREATE TABLE e (id BIGINT, name STRING, balance BIGINT) WITH
               ('connector' = 'values', 'data' = '1,a,1');
             INSERT INTO accounts SELECT * FROM e;"
        ))
        .map(|_| {
            let mut job = Job::new("w");
            session.plan_inserts(&mut job).map(|_| ())
        });
    let err = match err {
        Ok(Ok(())) => panic!("writing debezium-json was accepted"),
        Ok(Err(e)) | Err(e) => e.to_string(),
    };
    assert!(err.contains("writing 'debezium-json'"), "{err}");
}

/// Writes `events` Nexmark bids into `topic` (at least once) and counts them read back
/// (bounded): (bids the generator made, bids read).
fn bids_written_and_read(servers: &str, topic: &str, events: u64) -> (i64, i64) {
    run(
        &format!(
            "CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT)
             WITH ('connector' = 'nexmark', 'kind' = 'bid', 'events.num' = '{events}');
             CREATE TABLE out (auction BIGINT, bidder BIGINT, price BIGINT)
             WITH ('connector' = 'kafka', 'topic' = '{topic}',
                   'properties.bootstrap.servers' = '{servers}',
                   'format' = 'json', 'key.format' = 'json', 'key.fields' = 'bidder');
             INSERT INTO out SELECT * FROM bid;"
        ),
        JobConfig::default().parallelism(2),
    );
    let count = |script: String| -> i64 {
        let rows = apply_to(select(&script));
        assert_eq!(rows.len(), 1, "one count");
        int(&rows[0].values[0])
    };
    let made = count(format!(
        "CREATE TABLE bid (auction BIGINT) WITH ('connector' = 'nexmark', 'kind' = 'bid',
           'events.num' = '{events}');
         SELECT COUNT(*) FROM bid;"
    ));
    let read = count(format!(
        "CREATE TABLE i (auction BIGINT, bidder BIGINT, price BIGINT)
         WITH ('connector' = 'kafka', 'topic' = '{topic}', 'properties.bootstrap.servers' = '{servers}',
               'format' = 'json', 'scan.bounded.mode' = 'latest-offset');
         SELECT COUNT(*) FROM i;"
    ));
    (made, read)
}

/// Volume: every row of a larger write over many partitions is read back, on the real broker.
#[test]
fn many_rows_over_many_partitions_are_all_read_back() {
    let broker = TestBroker::start();
    broker.create_topic("volume", 16);
    let (made, read) = bids_written_and_read(&broker.brokers(), "volume", 60_000);
    assert!(made > 50_000, "{made}");
    assert_eq!(read, made, "rows read back");
}

/// The same against librdkafka's mock cluster over 64 partitions (the open question of
/// docs/sql.md).
#[test]
fn many_rows_over_64_partitions_of_the_mock_cluster_are_all_read_back() {
    let cluster = rdkafka::mocking::MockCluster::new(3).unwrap();
    cluster.create_topic("volume", 64, 3).unwrap();
    let (made, read) = bids_written_and_read(&cluster.bootstrap_servers(), "volume", 200_000);
    assert_eq!(read, made, "rows read back");
}

/// `'scan.startup.mode' = 'specific-offsets'`: each listed partition from its offset, the others
/// from their earliest record.
#[test]
fn specific_offsets_start_each_partition_where_given() {
    let broker = TestBroker::start();
    broker.create_topic("spec", 2);
    let servers = broker.brokers();
    write_orders(&servers, "spec", 1);
    let read = |offsets: &str| -> Vec<(i64, i64)> {
        let changes = select(&format!(
            "CREATE TABLE i (user_id STRING, amount BIGINT, `partition` INT METADATA VIRTUAL,
               `offset` BIGINT METADATA VIRTUAL)
             WITH ('connector' = 'kafka', 'topic' = 'spec', 'properties.bootstrap.servers' = '{servers}',
                   'scan.bounded.mode' = 'latest-offset', 'value.format' = 'json',
                   'scan.startup.mode' = 'specific-offsets',
                   'scan.startup.specific-offsets' = '{offsets}');
             SELECT `partition`, `offset` FROM i;"
        ));
        let mut got: Vec<(i64, i64)> = changes
            .into_iter()
            .map(|c| (int(&c.row().values[0]), int(&c.row().values[1])))
            .collect();
        got.sort();
        got
    };
    let all = read("partition:0,offset:0");
    assert_eq!(all.len(), 5, "{all:?}");
    let in_partition = |p: i64| all.iter().filter(|r| r.0 == p).count() as i64;
    let (full, other) = if in_partition(0) >= in_partition(1) {
        (0, 1)
    } else {
        (1, 0)
    };
    assert!(in_partition(full) >= 2, "{all:?}");
    // One partition from offset 1, the other (not listed) from its start.
    let got = read(&format!("partition:{full},offset:1"));
    let want: Vec<(i64, i64)> = all
        .iter()
        .copied()
        .filter(|r| r.0 != full || r.1 >= 1)
        .collect();
    assert_eq!(got, want);
    // An offset past the end starts at the end.
    let last = in_partition(full) - 1;
    let got = read(&format!(
        "partition:{other},offset:999;partition:{full},offset:{last}"
    ));
    assert_eq!(got, vec![(full, last)]);
}
