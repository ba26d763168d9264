//! The Redis sink against a real `redis-server` on 127.0.0.1:63790 (started by
//! scripts/test-deps.d/20-redis.sh): SET, HSET and ZADD round trips with TTLs; a real updating
//! stream (a retracting group aggregate with inserts, updates and deletes) converging to its
//! result table; a replay of a changelog's tail converging to the same state; reconnecting
//! after the server dropped the connection; and bad configuration failing fast.
#![cfg(feature = "redis")]

use redis::Commands;
use std::collections::BTreeMap;
use std::time::Duration;
use streamcore::changelog::{apply_to, Change, CountRows, SumOf};
use streamcore::context::TaskInfo;
use streamcore::row::{DataType, Field, Row, Scalar, Schema};
use streamcore::{Job, JobConfig, Sink, SinkWriter};
use streamcore_connectors::redis::{RedisSink, RedisSinkConfig};

fn port() -> u16 {
    std::env::var("STREAMCORE_REDIS_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(63790)
}

fn url() -> String {
    format!("redis://127.0.0.1:{}/", port())
}

/// A connection to the test server, with every key under `prefix` deleted.
fn redis_clean(prefix: &str) -> redis::Connection {
    let client = redis::Client::open(url()).unwrap();
    let mut c = client
        .get_connection_with_timeout(Duration::from_secs(2))
        .unwrap_or_else(|e| {
            panic!(
                "no Redis server on 127.0.0.1:{} ({e}): run scripts/test-deps.d/20-redis.sh \
                 (or scripts/install-test-deps.sh) first",
                port()
            )
        });
    let keys: Vec<String> = c.keys(format!("{prefix}*")).unwrap();
    if !keys.is_empty() {
        let _: () = c.del(keys).unwrap();
    }
    c
}

fn keys(c: &mut redis::Connection, prefix: &str) -> Vec<String> {
    let mut k: Vec<String> = c.keys(format!("{prefix}*")).unwrap();
    k.sort();
    k
}

fn user_schema() -> Schema {
    Schema::new(vec![
        Field::new("user_id", DataType::BigInt),
        Field::new("name", DataType::Varchar),
        Field::new("total", DataType::BigInt),
    ])
}

fn user(id: i64, name: Option<&str>, total: i64) -> Row {
    Row::new(vec![
        Scalar::Int(id),
        Scalar::from(name),
        Scalar::Int(total),
    ])
}

#[test]
fn set_hset_and_zadd_round_trip_with_ttl() {
    let mut c = redis_clean("rt:");
    let rows = vec![
        user(1, Some("ann"), 10),
        user(2, None, 20),
        user(3, Some("cy"), 5),
    ];

    let mut job = Job::new("redis-round-trip");
    let s = job.from_vec("users", rows.clone());
    let set = RedisSink::set(url())
        .schema(user_schema())
        .key_template("rt:json:{user_id}")
        .ttl(Duration::from_secs(600));
    let metrics = set.metrics();
    s.clone().sink(set);
    s.clone().sink(
        RedisSink::set(url())
            .schema(user_schema())
            .key_template("rt:total:{user_id}")
            .value_column("total"),
    );
    s.clone().sink(
        RedisSink::hset(url())
            .schema(user_schema())
            .key_template("rt:hash:{user_id}"),
    );
    s.sink(
        RedisSink::zadd(url())
            .schema(user_schema())
            .key_template("rt:top")
            .member_template("user:{user_id}")
            .score_column("total")
            .ttl(Duration::from_secs(60)),
    );
    let summary = job.run(JobConfig::default().parallelism(2)).unwrap();

    let json: String = c.get("rt:json:1").unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&json).unwrap(),
        serde_json::json!({"user_id": 1, "name": "ann", "total": 10})
    );
    let ttl: i64 = c.ttl("rt:json:2").unwrap();
    assert!((590..=600).contains(&ttl), "ttl {ttl}");
    let total: i64 = c.get("rt:total:3").unwrap();
    assert_eq!(total, 5);
    assert_eq!(
        c.ttl::<_, i64>("rt:total:3").unwrap(),
        -1,
        "no TTL asked for"
    );
    let hash: BTreeMap<String, String> = c.hgetall("rt:hash:2").unwrap();
    assert_eq!(
        hash,
        BTreeMap::from([
            ("user_id".to_string(), "2".to_string()),
            ("total".to_string(), "20".to_string())
        ]),
        "a NULL column is not a field"
    );
    let top: Vec<(String, f64)> = c.zrange_withscores("rt:top", 0, -1).unwrap();
    assert_eq!(
        top,
        [
            ("user:3".into(), 5.0),
            ("user:1".into(), 10.0),
            ("user:2".into(), 20.0)
        ]
    );
    assert!(c.ttl::<_, i64>("rt:top").unwrap() > 0);

    let m = metrics.snapshot();
    assert_eq!(m["records_out"], 3);
    assert!(m["round_trips"].as_u64().unwrap() >= 1);
    assert!(m["bytes_out"].as_u64().unwrap() > 50);
    let reported = summary
        .connectors
        .iter()
        .filter(|c| c.metrics.get("round_trips").is_some())
        .count();
    assert_eq!(reported, 4, "each Redis sink reports in the job summary");
}

/// A changelog with inserts, withdrawals and deletes: per user, a retracting count and sum
/// over transactions that are added and withdrawn.
fn transactions() -> Vec<Change<(i64, i64)>> {
    let mut changes = Vec::new();
    for i in 0..3_000i64 {
        let tx = (i % 37, i % 101);
        changes.push(Change::Insert(tx));
        // Withdraw most of users 0..5's transactions again, so some groups vanish entirely.
        if tx.0 < 5 || i % 7 == 0 {
            changes.push(Change::Delete(tx));
        }
    }
    // A late transaction for a user that had vanished: the key comes back.
    changes.push(Change::Insert((2, 1000)));
    changes
}

fn totals_schema() -> Schema {
    Schema::new(vec![
        Field::new("user_id", DataType::BigInt),
        Field::new("count", DataType::BigInt),
        Field::new("sum", DataType::BigInt),
    ])
}

fn totals_row(user: i64, (count, sum): (i64, Option<i64>)) -> Row {
    Row::new(vec![
        Scalar::Int(user),
        Scalar::Int(count),
        Scalar::from(sum),
    ])
}

/// The result table the aggregate's changelog leaves, as the Redis sink must hold it.
fn expected_totals() -> BTreeMap<i64, (i64, i64)> {
    let live = apply_to(transactions());
    let mut t: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for (u, amount) in live {
        let e = t.entry(u).or_default();
        e.0 += 1;
        e.1 += amount;
    }
    t
}

#[test]
fn a_retracting_aggregate_converges_in_redis_with_upserts_and_deletes() {
    let mut c = redis_clean("agg:");
    let mut job = Job::new("redis-aggregate");
    let sink = RedisSink::hset(url())
        .schema(totals_schema())
        .key_template("agg:user:{user_id}")
        .pipeline(64);
    let metrics = sink.metrics();
    job.from_vec("tx", transactions())
        .key_by(|c: &Change<(i64, i64)>| c.row().0)
        .group_aggregate_changes((CountRows, SumOf::new(|r: &(i64, i64)| r.1)))
        .map(|c| c.map(|(user, agg)| totals_row(user, agg)))
        .sink(sink);
    // One source instance: a withdrawal must reach the aggregate after its insertion (a
    // parallel source would deal them to different readers, in no order).
    job.run(JobConfig::default().parallelism(1).batch_size(100))
        .unwrap();

    let expected = expected_totals();
    assert!(expected.len() < 37, "some groups were deleted entirely");
    let mut got = BTreeMap::new();
    for key in keys(&mut c, "agg:user:") {
        let h: BTreeMap<String, i64> = c.hgetall(&key).unwrap();
        got.insert(h["user_id"], (h["count"], h["sum"]));
    }
    assert_eq!(got, expected);
    let m = metrics.snapshot();
    assert!(m["deletes"].as_u64().unwrap() > 0, "{m}");
}

/// The sink's writer, driven directly.
fn writer<T: streamcore::Data>(
    sink: &mut impl Sink<T, Writer = impl SinkWriter<T>>,
) -> impl SinkWriter<T> {
    writer_of("direct", sink)
}

/// The sink's writer, driven directly, in a job named `job`.
fn writer_of<T: streamcore::Data>(
    job: &str,
    sink: &mut impl Sink<T, Writer = impl SinkWriter<T>>,
) -> impl SinkWriter<T> {
    let task = TaskInfo {
        job: job.into(),
        name: "redis".into(),
        id: "redis".into(),
        subtask: 0,
        parallelism: 1,
        key_groups: 128,
        checkpointing: false,
    };
    sink.create_writer(&task).unwrap()
}

#[test]
fn replaying_a_changelog_tail_converges_to_the_same_state() {
    // A restore replays what followed the last checkpoint; Redis already holds some or all of
    // it. Writing changes 0..n, then again k..N (k ≤ n), must equal writing 0..N once.
    let changes: Vec<Change<Row>> = {
        let mut job = Job::new("changes");
        let out = job
            .from_vec("tx", transactions())
            .key_by(|c: &Change<(i64, i64)>| c.row().0)
            .group_aggregate_changes((CountRows, SumOf::new(|r: &(i64, i64)| r.1)))
            .map(|c| c.map(|(user, agg)| totals_row(user, agg)))
            .collect();
        job.run(JobConfig::default().parallelism(1)).unwrap();
        out.take()
    };
    let state = |c: &mut redis::Connection, prefix: &str| -> BTreeMap<String, String> {
        keys(c, prefix)
            .into_iter()
            .map(|k| {
                let v: String = c.get(&k).unwrap();
                (k[prefix.len()..].to_string(), v)
            })
            .collect()
    };
    let sink = |prefix: &str| {
        RedisSink::set(url())
            .schema(totals_schema())
            .key_template(&format!("{prefix}{{user_id}}"))
            .value_template("{count}/{sum}")
    };
    let mut c = redis_clean("replay:");
    let mut once = sink("replay:once:");
    let mut w = writer::<Change<Row>>(&mut once);
    w.write_batch(changes.clone()).unwrap();
    w.close().unwrap();
    let n = changes.len();
    for (crash_at, replay_from) in [(n / 2, n / 3), (n / 3, n / 3), (n - 1, 1), (10, 0)] {
        let mut s = sink("replay:crashed:");
        let mut w = writer::<Change<Row>>(&mut s);
        for chunk in changes[..crash_at].chunks(97) {
            w.write_batch(chunk.to_vec()).unwrap();
        }
        drop(w); // the crash: nothing flushed beyond what each batch sent
        let mut w = writer::<Change<Row>>(&mut s);
        for chunk in changes[replay_from..].chunks(89) {
            w.write_batch(chunk.to_vec()).unwrap();
        }
        w.close().unwrap();
        assert_eq!(
            state(&mut c, "replay:crashed:"),
            state(&mut c, "replay:once:"),
            "crash after {crash_at} changes, replay from {replay_from}"
        );
        let stale = keys(&mut c, "replay:crashed:");
        let _: () = c.del(stale).unwrap();
    }
    let expected: BTreeMap<String, String> = expected_totals()
        .into_iter()
        .map(|(u, (n, s))| (u.to_string(), format!("{n}/{s}")))
        .collect();
    assert_eq!(state(&mut c, "replay:once:"), expected);
}

#[test]
fn an_update_that_moves_a_row_to_another_key_deletes_the_old_one() {
    let mut c = redis_clean("move:");
    let schema = Schema::new(vec![
        Field::new("id", DataType::BigInt),
        Field::new("city", DataType::Varchar),
    ]);
    let row = |id: i64, city: &str| Row::new(vec![Scalar::Int(id), Scalar::str(city)]);
    let mut sink = RedisSink::zadd(url())
        .schema(schema.clone())
        .key_template("move:{city}")
        .member_template("{id}")
        .score_column("id");
    let mut w = writer::<Change<Row>>(&mut sink);
    w.write_batch(vec![
        Change::Insert(row(1, "oslo")),
        Change::Insert(row(2, "oslo")),
        Change::UpdateBefore(row(1, "oslo")),
    ])
    .unwrap();
    // The update-after arrives in the next batch, for another key: the `-U` is a withdrawal.
    w.write_batch(vec![Change::UpdateAfter(row(1, "rome"))])
        .unwrap();
    // A `-U`/`+U` pair of one target leaves it in place.
    w.write_batch(vec![
        Change::UpdateBefore(row(2, "oslo")),
        Change::UpdateAfter(row(2, "oslo")),
    ])
    .unwrap();
    w.close().unwrap();
    let oslo: Vec<String> = c.zrange("move:oslo", 0, -1).unwrap();
    let rome: Vec<String> = c.zrange("move:rome", 0, -1).unwrap();
    assert_eq!((oslo, rome), (vec!["2".to_string()], vec!["1".to_string()]));
}

#[test]
fn a_dropped_connection_is_reopened_and_the_pipeline_sent_again() {
    let mut c = redis_clean("drop:");
    let mut sink = RedisSink::set(url())
        .schema(user_schema())
        .key_template("drop:{user_id}")
        .value_column("total");
    let metrics = sink.metrics();
    let mut w = writer_of::<Row>("direct-drop", &mut sink);
    w.write_batch(vec![user(1, None, 1)]).unwrap();
    // The server drops the sink's connection (named after its job, sink and subtask).
    let clients: String = redis::cmd("CLIENT").arg("LIST").query(&mut c).unwrap();
    let id = clients
        .lines()
        .find(|l| l.contains(" name=streamcore:direct-drop:redis:0 "))
        .and_then(|l| l.split(' ').find_map(|f| f.strip_prefix("id=")))
        .unwrap_or_else(|| panic!("the sink's connection is not listed: {clients}"))
        .to_string();
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(&id)
        .query(&mut c)
        .unwrap();
    assert_eq!(killed, 1);
    w.write_batch(vec![user(2, None, 2), user(3, None, 3)])
        .unwrap();
    w.close().unwrap();
    assert_eq!(keys(&mut c, "drop:"), ["drop:1", "drop:2", "drop:3"]);
    assert!(metrics.snapshot()["retries"].as_u64().unwrap() >= 1);
}

#[test]
fn bad_configuration_fails_fast_naming_it() {
    redis_clean("bad:");
    let run = |sink: RedisSink| {
        let mut job = Job::new("bad");
        job.from_vec("users", vec![user(1, None, 1)]).sink(sink);
        job.run(JobConfig::default()).unwrap_err().to_string()
    };
    let started = std::time::Instant::now();
    let e = run(RedisSink::set("redis://:hunter2@127.0.0.1:1/")
        .schema(user_schema())
        .key_template("bad:{user_id}")
        .max_retries(0));
    assert!(
        e.contains("redis") && e.contains("127.0.0.1:1") && e.contains("is the server running"),
        "{e}"
    );
    assert!(!e.contains("hunter2"), "the password is not shown: {e}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let e = run(RedisSink::set(url())
        .schema(user_schema())
        .key_template("bad:{userid}"));
    assert!(
        e.contains("redis key template `bad:{userid}`: no column `userid`"),
        "{e}"
    );
    // A score that is not a number stops the job with the key and the column.
    let e = run(RedisSink::zadd(url())
        .schema(user_schema())
        .key_template("bad:z")
        .member_template("{user_id}")
        .score_column("name"));
    assert!(e.contains("score column `name` holds NULL"), "{e}");
    // Options: an unknown one is named.
    let options: BTreeMap<String, String> =
        [("url", url()), ("key", "k".into()), ("tll", "1 s".into())]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
    let e = RedisSinkConfig::from_options(&options)
        .unwrap_err()
        .to_string();
    assert!(e.contains("unsupported options: tll"), "{e}");
    // The password from the environment: a missing variable is named.
    let e = run(RedisSink::set(url())
        .schema(user_schema())
        .key_template("bad:{user_id}")
        .password_env("STREAMCORE_TEST_NO_SUCH_VARIABLE"));
    assert!(e.contains("`STREAMCORE_TEST_NO_SUCH_VARIABLE`"), "{e}");
}
