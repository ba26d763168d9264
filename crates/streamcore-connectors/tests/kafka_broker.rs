//! The Kafka connectors against a real Kafka-protocol broker (tansu, started per test on
//! 127.0.0.1 by `TestBroker`): JSON round trip with keys and metadata, restore of offsets from
//! a checkpoint, consumer groups sharing partitions, poison records to a dead-letter topic,
//! SASL/SCRAM credentials checked by the broker.
#![cfg(feature = "kafka")]

use std::time::Duration;
use streamcore::checkpoint::{CheckpointConfig, RestoreFrom};
use streamcore::source::VecSource;
use streamcore::{DeadLetter, ErrorPolicy, Event, Fields, Job, JobConfig, Timestamp, Value};
use streamcore_connectors::kafka::test_broker::TestBroker;
use streamcore_connectors::kafka::{Json, KafkaConfig, KafkaSink, KafkaSource, Raw};

fn events(from: usize, n: usize) -> Vec<Event> {
    (from..from + n)
        .map(|i| {
            let mut data = Fields::new();
            data.insert("n", Value::Int(i as i64));
            Event::new(format!("e{i:05}"), Timestamp(i as i64 * 10), "t", data)
                .with_partition_key(format!("k{}", i % 7))
        })
        .collect()
}

fn produce(config: &KafkaConfig, topic: &str, events: Vec<Event>) {
    let mut job = Job::new("produce");
    job.source("gen", VecSource(events)).sink_named(
        "out",
        KafkaSink::events(config.clone(), topic).key_partition_key(),
    );
    job.run(JobConfig::default().parallelism(1)).unwrap();
}

fn sorted_ids(v: &[Event]) -> Vec<String> {
    let mut ids: Vec<String> = v.iter().map(|e| e.event_id.to_string()).collect();
    ids.sort();
    ids
}

fn read(config: &KafkaConfig, topic: &str, parallelism: usize) -> Vec<Event> {
    let mut job = Job::new("read");
    let out = job
        .source("in", KafkaSource::new(config.clone(), &[topic]).bounded())
        .collect();
    job.run(JobConfig::default().parallelism(parallelism))
        .unwrap();
    out.take()
}

#[test]
fn json_events_round_trip_with_keys_and_metadata() {
    let broker = TestBroker::start();
    broker.create_topic("events", 4);
    let config = broker.config();
    produce(&config, "events", events(0, 1000));
    let got = read(&config, "events", 3);
    assert_eq!(sorted_ids(&got), sorted_ids(&events(0, 1000)));
    // Keyed records: one key, one partition; offsets increase within a partition.
    let mut partition_of = std::collections::HashMap::new();
    let mut last_offset = std::collections::HashMap::new();
    for e in &got {
        let p = e.metadata.get("kafka_partition").unwrap().as_f64().unwrap() as i64;
        let o = e.metadata.get("kafka_offset").unwrap().as_f64().unwrap() as i64;
        assert_eq!(*partition_of.entry(e.partition_key.clone()).or_insert(p), p);
        let prev = last_offset.insert(p, o);
        assert!(
            prev.is_none_or(|prev| prev < o),
            "offsets out of order in partition {p}"
        );
        assert!(e.metadata.get("kafka_timestamp").is_some());
    }
    assert!(
        partition_of
            .values()
            .collect::<std::collections::HashSet<_>>()
            .len()
            > 1
    );
    // The raw format sees the same records as bytes.
    let mut job = Job::new("raw");
    let raw = job
        .source(
            "in",
            KafkaSource::new(config.clone(), &["events"])
                .bounded()
                .format(Raw),
        )
        .collect();
    job.run(JobConfig::default()).unwrap();
    let raw = raw.take();
    assert_eq!(raw.len(), 1000);
    assert!(raw.iter().all(|m| m.key.is_some() && m.payload.is_some()));
}

/// A bounded job restored from a checkpoint taken midway reads exactly the rest: the offsets
/// live in the checkpoint (the job has no consumer group at all), and a restore at another
/// parallelism deals the partitions anew.
#[test]
fn offsets_restored_from_a_checkpoint_at_another_parallelism() {
    let broker = TestBroker::start();
    broker.create_topic("in", 3);
    let config = broker.config();
    produce(&config, "in", events(0, 600));
    let dir = tempfile::tempdir().unwrap();
    let checkpoints = || CheckpointConfig::new(dir.path()).interval(Duration::from_millis(20));
    // First run: stop with a savepoint after part of the input.
    let mut job = Job::new("restore");
    let first = job
        .source("in", KafkaSource::new(config.clone(), &["in"]).bounded())
        .map(|e| {
            std::thread::sleep(Duration::from_millis(1));
            e
        })
        .collect();
    let handle = job.start(
        JobConfig::default()
            .parallelism(2)
            .batch_size(10)
            .checkpoints(checkpoints()),
    );
    let handle = handle.unwrap();
    let waiting = std::time::Instant::now();
    while first.len() < 50 && waiting.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(5));
    }
    handle.stop_with_savepoint().unwrap();
    let first = first.take();
    assert!(
        !first.is_empty() && first.len() < 600,
        "{} read",
        first.len()
    );
    // More input arrives meanwhile; the restored job reads the rest of the old and the new.
    produce(&config, "in", events(600, 100));
    let mut job = Job::new("restore");
    let second = job
        .source("in", KafkaSource::new(config.clone(), &["in"]).bounded())
        .collect();
    job.run(
        JobConfig::default()
            .parallelism(3)
            .checkpoints(checkpoints().restore(RestoreFrom::Latest)),
    )
    .unwrap();
    let first_ids = sorted_ids(&first);
    let second = second.take();
    let mut all = first;
    all.extend(second.iter().cloned());
    let got = sorted_ids(&all);
    let want = sorted_ids(&events(0, 700));
    if got != want {
        let missing: Vec<&String> = want.iter().filter(|id| !got.contains(id)).collect();
        let mut seen = std::collections::HashSet::new();
        let repeated: Vec<&String> = got.iter().filter(|id| !seen.insert(*id)).collect();
        panic!(
            "missing {missing:?}, repeated {repeated:?}; first run read {} (last {:?}), second {}",
            first_ids.len(),
            first_ids.last(),
            second.len()
        );
    }
}

/// Two jobs in one consumer group share the partitions; together they read everything once
/// (the second joins while the first is reading: partitions move, released by the first only
/// after a checkpoint committed their offsets).
#[test]
fn a_consumer_group_shares_partitions_between_jobs() {
    let broker = TestBroker::start();
    broker.create_topic("shared", 4);
    let config = broker.config().set("session.timeout.ms", "6000");
    produce(&config, "shared", events(0, 4000));
    let run = |config: KafkaConfig| {
        let source = KafkaSource::new(config, &["shared"]).group("g1").bounded();
        let metrics = source.metrics();
        let handle = std::thread::spawn(move || {
            let dir = tempfile::tempdir().unwrap();
            let mut job = Job::new("group");
            let out = job
                .source("in", source)
                .map(|e| {
                    std::thread::sleep(Duration::from_millis(2));
                    e
                })
                .collect();
            job.run(
                JobConfig::default()
                    .parallelism(1)
                    .batch_size(50)
                    .checkpoints(
                        CheckpointConfig::new(dir.path()).interval(Duration::from_millis(50)),
                    ),
            )
            .unwrap();
            out.take()
        });
        (handle, metrics)
    };
    // The second joins once the first reads (about 8 s of work at 2 ms a record).
    let (a, ma) = run(config.clone());
    let started = std::time::Instant::now();
    while ma.summary().records_in == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the first job read nothing"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (b, mb) = run(config.clone());
    let (a, b) = (a.join().unwrap(), b.join().unwrap());
    let (ma, mb) = (ma.summary(), mb.summary());
    let mut all = a.clone();
    all.extend(b.clone());
    assert_eq!(
        sorted_ids(&all),
        sorted_ids(&events(0, 4000)),
        "{ma:?} {mb:?}"
    );
    assert!(
        ma.offset_commits > 0 && mb.offset_commits > 0,
        "{ma:?} {mb:?}"
    );
}

/// A record that is not a valid event goes to the dead-letter topic with its origin
/// (topic/partition@offset) and reason; the job goes on.
#[test]
fn poison_records_go_to_the_dead_letter_topic() {
    let broker = TestBroker::start();
    broker.create_topic("in", 1);
    broker.create_topic("dlq", 1);
    let config = broker.config();
    produce(&config, "in", events(0, 5));
    // A malformed record between good ones.
    let mut job = Job::new("poison");
    job.source(
        "bad",
        VecSource(vec![
            serde_json::json!({"event_id": "x", "timestamp": "soon"}),
        ]),
    )
    .sink_named("out", KafkaSink::json(config.clone(), "in"));
    job.run(JobConfig::default().parallelism(1)).unwrap();
    produce(&config, "in", events(5, 5));

    let mut job = Job::new("poison");
    let good = job
        .source("in", KafkaSource::new(config.clone(), &["in"]).bounded())
        .collect();
    job.dead_letters(KafkaSink::<DeadLetter, _>::json(config.clone(), "dlq"));
    let summary = job
        .run(JobConfig::default().error_policy(ErrorPolicy::DeadLetter))
        .unwrap();
    assert_eq!(good.take().len(), 10);
    assert_eq!(summary.events_dead_lettered, 1);
    // The source's own metrics are in the job summary: 11 records read, 1 rejected.
    let source = summary
        .connectors
        .iter()
        .find(|c| c.name.starts_with("in"))
        .expect("the Kafka source reports its metrics");
    assert_eq!(source.metrics["records_in"], 11, "{:?}", source.metrics);
    assert_eq!(source.metrics["rejected"], 1);
    let mut job = Job::new("dlq");
    let letters = job
        .source(
            "dlq",
            KafkaSource::new(config, &["dlq"])
                .bounded()
                .format(Json::<DeadLetter>::new()),
        )
        .collect();
    job.run(JobConfig::default()).unwrap();
    let letters = letters.take();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].origin, "kafka in/0@5");
    assert!(letters[0].reason.contains("timestamp"), "{:?}", letters[0]);
    assert!(letters[0].raw.contains("soon"));
}

/// SASL/SCRAM credentials reach the broker, which checks them (tansu with
/// `--authentication`): the right password round-trips records through sink and source; a
/// wrong one fails the job with an authentication error that does not show the password.
#[test]
fn sasl_scram_credentials_are_checked_by_the_broker() {
    use streamcore_connectors::kafka::SaslMechanism;
    let broker = TestBroker::start_with_scram_user("scram256", "streamcore", "s3cret-pw");
    let config = broker
        .config()
        .sasl(SaslMechanism::ScramSha256, "streamcore", "s3cret-pw");
    streamcore_connectors::kafka::create_topic(&config, "secure", 2).unwrap();
    produce(&config, "secure", events(0, 200));
    assert_eq!(
        sorted_ids(&read(&config, "secure", 2)),
        sorted_ids(&events(0, 200))
    );

    let wrong = broker
        .config()
        .sasl(SaslMechanism::ScramSha256, "streamcore", "not-the-pw")
        .set("socket.timeout.ms", "5000");
    let mut job = Job::new("read");
    job.source("in", KafkaSource::new(wrong, &["secure"]).bounded())
        .collect();
    let err = job
        .run(JobConfig::default().parallelism(1))
        .unwrap_err()
        .to_string();
    // tansu drops the connection of a client that fails authentication: librdkafka reports a
    // transport failure (and logs the SASL error).
    let lower = err.to_lowercase();
    assert!(
        lower.contains("auth") || lower.contains("transport failure"),
        "{err}"
    );
    assert!(!err.contains("not-the-pw"), "{err}");
}
