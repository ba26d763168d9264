//! The PostgreSQL sink against a real server (scripts/test-deps.d/10-postgresql.sh): append
//! and upsert round trips (an updating stream from `group_aggregate` and `top_n`; an update
//! that moves its row to another key; one straddling two batches, which deletes nothing), exactly
//! once with checkpoints (two-phase commit), retries after a lost connection, refused rows
//! under both error policies, and configurations that must fail fast naming the problem.

#![cfg(feature = "postgres")]

mod postgres_common;

use postgres_common::{connection, exec, prepared, rows};
use std::collections::BTreeMap;
use std::time::Duration;
use streamcore::changelog::{apply_to, Change, CountRows, SumOf};
use streamcore::checkpoint::CheckpointConfig;
use streamcore::row::{DataType, Field, MapType, Row, Scalar, Schema};
use streamcore::{ErrorPolicy, Job, JobConfig};
use streamcore_connectors::postgres::{PostgresSink, PostgresSinkConfig};

fn sink(table: &str, key: &[&str], schema: Schema) -> PostgresSink {
    let mut c = PostgresSinkConfig::new("", table).key(key).schema(schema);
    c.connection = connection();
    c.max_rows = 64;
    PostgresSink::new(c)
}

fn user_totals_schema() -> Schema {
    Schema::new(vec![
        Field::new("user_id", DataType::BigInt).not_null(),
        Field::new("n", DataType::BigInt),
        Field::new("total", DataType::BigInt),
    ])
}

fn text(v: impl ToString) -> Option<String> {
    Some(v.to_string())
}

/// `(user, amount)` transactions, deterministic.
fn transactions(n: u64) -> Vec<(i64, i64)> {
    (0..n)
        .map(|i| ((i * 7919 % 13) as i64, (i * 31 % 97) as i64))
        .collect()
}

#[test]
fn append_writes_every_row_with_every_type() {
    exec(
        "DROP TABLE IF EXISTS pg_append; CREATE TABLE pg_append (id bigint, small smallint, \
         name varchar(20), price numeric(10,2), ok boolean, at timestamptz, day date, \
         raw bytea, ratio double precision, doc jsonb, extra text DEFAULT 'x', attrs jsonb)",
    );
    let schema = Schema::new(vec![
        Field::new("id", DataType::BigInt),
        Field::new("small", DataType::BigInt),
        Field::new("name", DataType::Varchar),
        Field::new(
            "price",
            DataType::Decimal {
                precision: 10,
                scale: 2,
            },
        ),
        Field::new("ok", DataType::Boolean),
        Field::new("at", DataType::TimestampMillis),
        Field::new("day", DataType::Date),
        Field::new("raw", DataType::Bytes),
        Field::new("ratio", DataType::Double),
        Field::new("doc", DataType::Varchar),
        Field::new(
            "attrs",
            DataType::Map(MapType::new(DataType::Varchar, DataType::BigInt).unwrap()),
        ),
    ]);
    let rows_in: Vec<Row> = (0..1000i64)
        .map(|i| {
            Row::new(vec![
                Scalar::Int(i),
                Scalar::Int(i % 100),
                if i % 10 == 0 {
                    Scalar::Null
                } else {
                    Scalar::str(&format!("n{i}"))
                },
                Scalar::Decimal(rust_decimal::Decimal::new(i * 101, 2)),
                Scalar::Bool(i % 2 == 0),
                Scalar::TimestampMs(1_700_000_000_000 + i),
                Scalar::Date(19_000 + i as i32),
                Scalar::Bytes(vec![i as u8, 0xff]),
                Scalar::float(i as f64 / 4.0),
                Scalar::str(&format!("{{\"i\": {i}}}")),
                Scalar::map(vec![
                    (Scalar::str("i"), Scalar::Int(i)),
                    (Scalar::str("n\"q"), Scalar::Null),
                ]),
            ])
        })
        .collect();
    let mut job = Job::new("append");
    let s = sink("pg_append", &[], schema);
    let metrics = s.metrics();
    job.from_vec("rows", rows_in).sink(s);
    job.run(JobConfig::default().parallelism(2)).unwrap();
    assert_eq!(
        rows("SELECT count(*), count(DISTINCT id), count(name) FROM pg_append"),
        vec![vec![text(1000), text(1000), text(900)]]
    );
    assert_eq!(
        rows("SELECT id, small, name, price, ok, at AT TIME ZONE 'UTC', day, raw, ratio, doc, extra, attrs FROM pg_append WHERE id = 7"),
        vec![vec![
            text(7),
            text(7),
            text("n7"),
            text("7.07"),
            text("f"),
            text("2023-11-14 22:13:20.007"),
            text("2022-01-15"),
            text("\\x07ff"),
            text(1.75),
            text("{\"i\": 7}"),
            text("x"),
            text("{\"i\": 7, \"n\\\"q\": null}")
        ]]
    );
    let m = metrics.summary();
    assert_eq!(m.records_out, 1000);
    assert!(m.batches >= 1000 / 64, "{m:?}");
    assert!(m.bytes_out > 0);
}

#[test]
fn upsert_keeps_the_result_of_an_updating_stream() {
    exec(
        "DROP TABLE IF EXISTS pg_totals; CREATE TABLE pg_totals (user_id bigint PRIMARY KEY, n bigint NOT NULL, total bigint)",
    );
    let input = transactions(5000);
    // The expected table: the same aggregate collected in memory.
    let mut expected_job = Job::new("expected");
    let expected = expected_job
        .from_vec("tx", input.clone())
        .key_by(|t| t.0)
        .group_aggregate((CountRows, SumOf::new(|t: &(i64, i64)| t.1)))
        .collect();
    expected_job.run(JobConfig::default()).unwrap();
    let expected: Vec<Vec<Option<String>>> = apply_to(expected.take())
        .into_iter()
        .map(|(k, (n, sum))| vec![text(k), text(n), sum.map(|s| s.to_string())])
        .collect();

    let mut job = Job::new("totals");
    let s = sink("pg_totals", &["user_id"], user_totals_schema());
    let metrics = s.metrics();
    job.from_vec("tx", input)
        .key_by(|t| t.0)
        .group_aggregate((CountRows, SumOf::new(|t: &(i64, i64)| t.1)))
        .map(|c| {
            c.map(|(k, (n, sum)): (i64, (i64, Option<i64>))| {
                Row::new(vec![
                    Scalar::Int(k),
                    Scalar::Int(n),
                    sum.map_or(Scalar::Null, Scalar::Int),
                ])
            })
        })
        .sink(s);
    job.run(JobConfig::default().parallelism(2)).unwrap();
    let mut got = rows("SELECT user_id, n, total FROM pg_totals");
    got.sort_by_key(|r| r[0].as_ref().map(|s| s.parse::<i64>().unwrap()));
    let mut expected = expected;
    expected.sort_by_key(|r| r[0].as_ref().map(|s| s.parse::<i64>().unwrap()));
    assert_eq!(got, expected);
    // Many updates per key were folded into few writes.
    assert!(
        metrics.summary().records_out < 5000,
        "{:?}",
        metrics.summary()
    );
}

#[test]
fn upsert_deletes_withdrawn_rows_exactly_once_with_checkpoints() {
    postgres_common::rollback_prepared("test-top");
    // A top-3 per category: rows pushed out are deleted from the table.
    exec(
        "DROP TABLE IF EXISTS pg_top; CREATE TABLE pg_top (category bigint, item bigint, price bigint, PRIMARY KEY (category, item))",
    );
    let items: Vec<(i64, i64, i64)> = (0..3000i64)
        .map(|i| (i % 5, i, (i * 7907) % 1000))
        .collect();
    let mut expected: BTreeMap<i64, Vec<(i64, i64)>> = BTreeMap::new();
    for &(c, i, p) in &items {
        let v = expected.entry(c).or_default();
        v.push((p, i));
    }
    let expected: Vec<Vec<Option<String>>> = {
        let mut out = Vec::new();
        for (c, mut v) in expected {
            // Descending price; ties in arrival order (item ascending).
            v.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
            for (p, i) in v.into_iter().take(3) {
                out.push(vec![text(c), text(i), text(p)]);
            }
        }
        out.sort();
        out
    };
    let dir = tempfile::tempdir().unwrap();
    let mut job = Job::new("top");
    let s = sink(
        "pg_top",
        &["category", "item"],
        Schema::new(vec![
            Field::new("category", DataType::BigInt).not_null(),
            Field::new("item", DataType::BigInt).not_null(),
            Field::new("price", DataType::BigInt),
        ]),
    )
    .transaction_prefix("test-top");
    let metrics = s.metrics();
    job.source(
        "items",
        streamcore::source::Generator::new(move |i| items[i as usize])
            .bounded(3000)
            .rate(20_000.0),
    )
    .key_by(|t| t.0)
    .top_n(3, |t| std::cmp::Reverse(t.2))
    .map(|c: Change<(i64, i64, i64)>| {
        c.map(|(c, i, p)| Row::new(vec![Scalar::Int(c), Scalar::Int(i), Scalar::Int(p)]))
    })
    .sink(s);
    let summary = job
        .run(
            JobConfig::default()
                .parallelism(2)
                .checkpoints(CheckpointConfig::new(dir.path()).interval(Duration::from_millis(30))),
        )
        .unwrap();
    assert_eq!(rows("SELECT category, item, price FROM pg_top"), expected);
    let m = metrics.summary();
    assert!(m.deletes > 0, "{m:?}");
    assert!(m.transactions_prepared >= 2, "{m:?}");
    assert_eq!(m.transactions_prepared, m.transactions_committed, "{m:?}");
    assert!(prepared("test-top").is_empty());
    assert!(summary.checkpoints.is_some());
}

#[test]
fn a_lost_connection_is_retried_and_the_open_transaction_replayed() {
    postgres_common::rollback_prepared("test-retry");
    exec(
        "DROP TABLE IF EXISTS pg_retry; CREATE TABLE pg_retry (user_id bigint PRIMARY KEY, n bigint, total bigint)",
    );
    let dir = tempfile::tempdir().unwrap();
    let mut job = Job::new("retry");
    let s = sink("pg_retry", &["user_id"], user_totals_schema())
        .transaction_prefix("test-retry")
        .application_name("streamcore-test-retry");
    let metrics = s.metrics();
    let n = 6000u64;
    job.source(
        "tx",
        streamcore::source::Generator::new(|i| ((i % 50) as i64, 1i64))
            .bounded(n)
            .rate(6000.0),
    )
    .key_by(|t| t.0)
    .group_aggregate((CountRows, SumOf::new(|t: &(i64, i64)| t.1)))
    .map(|c| {
        c.map(|(k, (n, sum)): (i64, (i64, Option<i64>))| {
            Row::new(vec![
                Scalar::Int(k),
                Scalar::Int(n),
                sum.map_or(Scalar::Null, Scalar::Int),
            ])
        })
    })
    .sink(s);
    let handle = job
        .start(
            JobConfig::default().checkpoints(
                CheckpointConfig::new(dir.path()).interval(Duration::from_millis(300)),
            ),
        )
        .unwrap();
    // Kill the sink's connections a few times while the job runs.
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(250));
        exec(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = 'streamcore-test-retry' AND pid <> pg_backend_pid()",
        );
    }
    handle.join().unwrap();
    let expected: Vec<Vec<Option<String>>> = {
        let mut v: Vec<_> = (0..50)
            .map(|k| vec![text(k), text(n / 50), text(n / 50)])
            .collect();
        v.sort();
        v
    };
    assert_eq!(rows("SELECT user_id, n, total FROM pg_retry"), expected);
    assert!(metrics.summary().retries > 0, "{:?}", metrics.summary());
    assert!(prepared("test-retry").is_empty());
}

#[test]
fn refused_rows_fail_the_job_naming_the_row_or_go_to_the_dead_letter_table() {
    exec(
        "DROP TABLE IF EXISTS pg_checked; DROP TABLE IF EXISTS pg_checked_dead_letters; \
         CREATE TABLE pg_checked (id bigint PRIMARY KEY, qty integer CHECK (qty >= 0))",
    );
    let schema = Schema::new(vec![
        Field::new("id", DataType::BigInt),
        Field::new("qty", DataType::BigInt),
    ]);
    let input: Vec<Row> = (0..200i64)
        .map(|i| {
            let qty = match i {
                17 => -5,             // the CHECK constraint refuses it
                33 => 10_000_000_000, // out of range for integer
                _ => i,
            };
            Row::new(vec![Scalar::Int(i), Scalar::Int(qty)])
        })
        .collect();

    let mut job = Job::new("fail");
    job.from_vec("rows", input.clone())
        .sink(sink("pg_checked", &[], schema.clone()));
    let err = job.run(JobConfig::default()).unwrap_err().to_string();
    assert!(
        err.contains("refused row")
            && (err.contains("(17, -5)") || err.contains("(33, 10000000000)")),
        "{err}"
    );

    exec("TRUNCATE pg_checked");
    let mut job = Job::new("dead-letter");
    let s = sink("pg_checked", &[], schema).error_policy(ErrorPolicy::DeadLetter);
    let metrics = s.metrics();
    job.from_vec("rows", input).sink(s);
    job.run(JobConfig::default()).unwrap();
    assert_eq!(
        rows("SELECT count(*) FROM pg_checked"),
        vec![vec![text(198)]]
    );
    let dead = rows("SELECT sqlstate, row_text FROM pg_checked_dead_letters");
    assert_eq!(
        dead,
        vec![
            vec![None, text("(33, 10000000000)")],
            vec![text("23514"), text("(17, -5)")]
        ]
    );
    let m = metrics.summary();
    assert_eq!(
        (m.errors, m.dead_lettered, m.records_out),
        (2, 2, 198),
        "{m:?}"
    );
}

fn run_err(s: PostgresSink) -> String {
    let mut job = Job::new("bad");
    job.from_vec(
        "rows",
        vec![Row::new(vec![
            Scalar::Int(1),
            Scalar::Int(1),
            Scalar::Int(1),
        ])],
    )
    .sink(s);
    job.run(JobConfig::default()).unwrap_err().to_string()
}

#[test]
fn bad_configuration_fails_fast_naming_it() {
    exec(
        "DROP TABLE IF EXISTS pg_conf; CREATE TABLE pg_conf (user_id bigint, n text, total bigint, must bigint NOT NULL)",
    );
    // Unreachable server.
    let mut c = PostgresSinkConfig::new("postgresql://127.0.0.1:1/streamcore", "pg_conf")
        .schema(user_totals_schema());
    c.connection.username = Some("streamcore".into());
    c.connection.connect_timeout = Duration::from_secs(2);
    let err = run_err(PostgresSink::new(c));
    assert!(
        err.contains("connecting to streamcore@127.0.0.1:1/streamcore"),
        "{err}"
    );

    // Wrong password: the message says so and never shows it.
    let mut s = sink("pg_conf", &[], user_totals_schema());
    let mut bad = connection();
    bad.password = streamcore_connectors::postgres::Password::Value("not-the-password".into());
    s = {
        let mut c = PostgresSinkConfig::new("", "pg_conf").schema(user_totals_schema());
        c.connection = bad;
        let _ = s;
        PostgresSink::new(c)
    };
    let err = run_err(s);
    assert!(
        err.contains("authentication failed") && !err.contains("not-the-password"),
        "{err}"
    );

    // Password from a variable that is not set.
    let mut c = PostgresSinkConfig::new("", "pg_conf").schema(user_totals_schema());
    c.connection = connection();
    c.connection.password =
        streamcore_connectors::postgres::Password::Env("STREAMCORE_PG_TEST_UNSET".into());
    let err = run_err(PostgresSink::new(c));
    assert!(
        err.contains("`STREAMCORE_PG_TEST_UNSET` is not set"),
        "{err}"
    );

    // Missing table.
    let err = run_err(sink("pg_no_such_table", &[], user_totals_schema()));
    assert!(
        err.contains("table `pg_no_such_table` does not exist"),
        "{err}"
    );

    // Wrong column type.
    exec("ALTER TABLE pg_conf ALTER COLUMN must DROP NOT NULL");
    let err = run_err(sink("pg_conf", &[], user_totals_schema()));
    assert!(
        err.contains(
            "column `n` of table `pg_conf` is text, which cannot hold the rows' BIGINT values"
        ),
        "{err}"
    );

    // A NOT NULL column the rows do not fill.
    exec("ALTER TABLE pg_conf ALTER COLUMN n TYPE bigint USING 0, ALTER COLUMN must SET NOT NULL");
    let err = run_err(sink("pg_conf", &[], user_totals_schema()));
    assert!(
        err.contains("column `must` of table `pg_conf` is NOT NULL"),
        "{err}"
    );

    // Upsert without a unique index on the key.
    exec("ALTER TABLE pg_conf DROP COLUMN must");
    let err = run_err(sink("pg_conf", &["user_id"], user_totals_schema()));
    assert!(
        err.contains("no primary key or unique index on (user_id)"),
        "{err}"
    );

    // A column the table does not have.
    let err = run_err(sink(
        "pg_conf",
        &[],
        Schema::new(vec![Field::new("nope", DataType::BigInt)]),
    ));
    assert!(
        err.contains("table `pg_conf` has no column `nope`"),
        "{err}"
    );
}

#[test]
fn an_update_that_moves_its_row_to_another_key_deletes_the_old_one() {
    exec("DROP TABLE IF EXISTS pg_moves; CREATE TABLE pg_moves (k bigint PRIMARY KEY, v bigint)");
    let row = |k: i64, v: i64| Row::new(vec![Scalar::Int(k), Scalar::Int(v)]);
    // Row (1, 10) moves to key 3; row (2, 20) is updated in place; both pairs in one batch
    // and, with a batch of 2, each `-U` and its `+U` in two.
    let changes = vec![
        Change::Insert(row(1, 10)),
        Change::Insert(row(2, 20)),
        Change::UpdateBefore(row(1, 10)),
        Change::UpdateAfter(row(3, 10)),
        Change::Insert(row(4, 40)),
        Change::UpdateBefore(row(2, 20)),
        Change::UpdateAfter(row(2, 21)),
    ];
    for batch_size in [1024, 2] {
        exec("TRUNCATE pg_moves");
        let mut job = Job::new("moves");
        let schema = Schema::new(vec![
            Field::new("k", DataType::BigInt).not_null(),
            Field::new("v", DataType::BigInt),
        ]);
        job.from_vec("changes", changes.clone())
            .sink(sink("pg_moves", &["k"], schema));
        job.run(JobConfig::default().parallelism(1).batch_size(batch_size))
            .unwrap();
        let got = rows("SELECT k, v FROM pg_moves ORDER BY k");
        let want = [(2, 21), (3, 10), (4, 40)].map(|(k, v)| vec![text(k), text(v)]);
        assert_eq!(got, want, "batch size {batch_size}");
    }
}

#[test]
fn an_update_straddling_two_batches_deletes_nothing_in_between() {
    // One change per batch and a flush at every row: the `-U` of row 2 waits (up to the
    // flush interval) for the `+U` after it, which rewrites the key — one upsert, no delete, so
    // a reader never finds key 2 missing. The `-U` of row 1, whose `+U` moves it to key 3,
    // deletes key 1 when that `+U` comes: the only delete.
    exec("DROP TABLE IF EXISTS pg_straddle; CREATE TABLE pg_straddle (k bigint PRIMARY KEY, v bigint)");
    let row = |k: i64, v: i64| Row::new(vec![Scalar::Int(k), Scalar::Int(v)]);
    let changes = vec![
        Change::Insert(row(2, 20)),
        Change::UpdateBefore(row(2, 20)),
        Change::UpdateAfter(row(2, 21)),
        Change::Insert(row(1, 10)),
        Change::UpdateBefore(row(1, 10)),
        Change::UpdateAfter(row(3, 10)),
    ];
    let schema = Schema::new(vec![
        Field::new("k", DataType::BigInt).not_null(),
        Field::new("v", DataType::BigInt),
    ]);
    let mut config = PostgresSinkConfig::new("", "pg_straddle")
        .key(&["k"])
        .schema(schema);
    config.connection = connection();
    config.max_rows = 1;
    config.flush_interval = Duration::from_secs(30);
    let s = PostgresSink::new(config);
    let metrics = s.metrics();
    let mut job = Job::new("straddle");
    job.from_vec("changes", changes).sink(s);
    job.run(JobConfig::default().parallelism(1).batch_size(1))
        .unwrap();
    let got = rows("SELECT k, v FROM pg_straddle ORDER BY k");
    let want = [(2, 21), (3, 10)].map(|(k, v)| vec![text(k), text(v)]);
    assert_eq!(got, want);
    let m = metrics.summary();
    assert_eq!(m.deletes, 1, "only key 1's row is deleted: {m:?}");
}

#[test]
fn an_append_sink_refuses_an_updating_stream() {
    exec("DROP TABLE IF EXISTS pg_refuse; CREATE TABLE pg_refuse (user_id bigint, n bigint, total bigint)");
    let mut job = Job::new("refuse");
    job.from_vec("tx", transactions(10))
        .key_by(|t| t.0)
        .group_aggregate((CountRows, SumOf::new(|t: &(i64, i64)| t.1)))
        .map(|c| {
            c.map(|(k, _): (i64, (i64, Option<i64>))| {
                Row::new(vec![Scalar::Int(k), Scalar::Int(0), Scalar::Int(0)])
            })
        })
        .sink(sink("pg_refuse", &[], user_totals_schema()));
    let err = job.run(JobConfig::default()).unwrap_err().to_string();
    assert!(err.contains("updating"), "{err}");
}

/// What the sink hands the checkpoint for one prepared transaction (its committable).
#[derive(serde::Serialize)]
struct PreparedCommittable {
    gid: String,
    prepared_at_us: u64,
}

#[test]
fn restores_commit_prepared_transactions_once_and_roll_back_leftovers() {
    postgres_common::rollback_prepared("test-restore");
    exec("DROP TABLE IF EXISTS pg_restore; CREATE TABLE pg_restore (id bigint PRIMARY KEY, v bigint)");
    for (id, gid) in [(1i64, "test-restore:0:7"), (2, "test-restore:1:8")] {
        let mut c = postgres_common::client();
        c.batch_execute("BEGIN").unwrap();
        c.execute("INSERT INTO pg_restore VALUES ($1, $1)", &[&id])
            .unwrap();
        c.batch_execute(&format!("PREPARE TRANSACTION '{gid}'"))
            .unwrap();
    }
    let schema = Schema::new(vec![
        Field::new("id", DataType::BigInt),
        Field::new("v", DataType::BigInt),
    ]);
    let mut s = sink("pg_restore", &["id"], schema).transaction_prefix("test-restore");
    let metrics = s.metrics();
    let committer = streamcore::Sink::<Row>::committer(&mut s).unwrap().unwrap();
    // A restore commits the restored checkpoint's transaction: twice is the same as once.
    let c = streamcore::checkpoint::encode(&PreparedCommittable {
        gid: "test-restore:0:7".into(),
        prepared_at_us: 0,
    })
    .unwrap();
    committer.commit(&c).unwrap();
    committer.commit(&c).unwrap();
    // Then every other prepared transaction of the sink is rolled back.
    committer.abort_uncommitted().unwrap();
    assert_eq!(
        rows("SELECT id, v FROM pg_restore"),
        vec![vec![text(1), text(1)]]
    );
    assert!(prepared("test-restore").is_empty());
    let m = metrics.summary();
    assert_eq!(
        (m.transactions_committed, m.transactions_rolled_back),
        (1, 1),
        "{m:?}"
    );
}

#[test]
fn replays_after_lost_connections_keep_every_row_and_dead_letter_once() {
    postgres_common::rollback_prepared("test-replay");
    exec(
        "DROP TABLE IF EXISTS pg_replay; DROP TABLE IF EXISTS pg_replay_dead_letters;
         CREATE TABLE pg_replay (id bigint, qty bigint CHECK (qty >= 0))",
    );
    let n = 6000u64;
    let dir = tempfile::tempdir().unwrap();
    let mut job = Job::new("replay");
    let s = sink(
        "pg_replay",
        &[],
        Schema::new(vec![
            Field::new("id", DataType::BigInt),
            Field::new("qty", DataType::BigInt),
        ]),
    )
    .transaction_prefix("test-replay")
    .application_name("streamcore-test-replay")
    .error_policy(ErrorPolicy::DeadLetter)
    .max_retries(10);
    let metrics = s.metrics();
    job.source(
        "rows",
        streamcore::source::Generator::new(|i| {
            // Every 100th row breaks the CHECK constraint.
            let qty = if i % 100 == 99 { -1 } else { i as i64 };
            Row::new(vec![Scalar::Int(i as i64), Scalar::Int(qty)])
        })
        .bounded(n)
        .rate(6000.0),
    )
    .sink(s);
    let handle = job
        .start(
            JobConfig::default().checkpoints(
                CheckpointConfig::new(dir.path()).interval(Duration::from_millis(400)),
            ),
        )
        .unwrap();
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(200));
        exec(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = 'streamcore-test-replay' AND pid <> pg_backend_pid()",
        );
    }
    handle.join().unwrap();
    assert_eq!(
        rows("SELECT count(*), count(DISTINCT id) FROM pg_replay"),
        vec![vec![text(n - n / 100), text(n - n / 100)]]
    );
    assert_eq!(
        rows("SELECT count(*), count(DISTINCT row_text) FROM pg_replay_dead_letters"),
        vec![vec![text(n / 100), text(n / 100)]]
    );
    let m = metrics.summary();
    assert!(m.retries > 0, "{m:?}");
    assert_eq!(m.dead_lettered, n / 100, "{m:?}");
}
