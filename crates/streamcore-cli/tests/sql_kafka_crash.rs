//! The crash test of a SQL job reading Kafka: `streamcore sql` reads a topic of bids (a
//! `kafka` table, JSON values, metadata columns, bounded at the offsets of when it starts)
//! into two exactly-once filesystem sinks — the records with their partition and offset, and
//! an event-time window count per auction — checkpointing every 100 ms; it is killed with
//! SIGKILL at random moments and restarted with `--restore latest` until it finishes. The
//! offsets come back from the checkpoint, so the committed files must hold exactly the rows
//! of a run that never crashed (every partition/offset once). The broker is tansu on
//! 127.0.0.1 (`TestBroker`; scripts/install-test-deps.sh installs it). `STREAMCORE_CRASH_SEED`
//! replays a sequence of kill times.
#![cfg(feature = "kafka")]

mod common;

use common::{committed_sorted, crash_seed, run_sql_with_kills, Delays};
use std::path::Path;
use std::process::Command;
use streamcore_connectors::kafka::test_broker::TestBroker;

const BIN: &str = env!("CARGO_BIN_EXE_streamcore");
const KILLS: usize = 3;

/// Writes the bids of 120,000 Nexmark events into `bids`, keyed by auction: enough for the
/// job to outlast its kills (40,000 were read before the third kill until the SQL path got
/// faster).
fn produce(servers: &str) {
    let script = format!(
        "CREATE TABLE gen (auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` TIMESTAMP(3))
         WITH ('connector' = 'nexmark', 'kind' = 'bid', 'events.num' = '120000');
         CREATE TABLE bids (auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` TIMESTAMP(3))
         WITH ('connector' = 'kafka', 'topic' = 'bids', 'properties.bootstrap.servers' = '{servers}',
               'key.format' = 'json', 'key.fields' = 'auction', 'value.format' = 'json');
         INSERT INTO bids SELECT * FROM gen;"
    );
    let out = Command::new(BIN)
        .args(["sql", "-p", "1", "-e", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "producing: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn script(servers: &str, out: &Path) -> String {
    format!(
        "CREATE TABLE bids (auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` TIMESTAMP(3),
           `partition` INT METADATA VIRTUAL, `offset` BIGINT METADATA VIRTUAL,
           WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND)
         WITH ('connector' = 'kafka', 'topic' = 'bids', 'properties.bootstrap.servers' = '{servers}',
               'value.format' = 'json', 'scan.bounded.mode' = 'latest-offset');
         CREATE TABLE copy (auction BIGINT, price BIGINT, p BIGINT, o BIGINT)
         WITH ('connector' = 'filesystem', 'path' = '{out}/copy', 'format' = 'csv');
         CREATE TABLE per_window (auction BIGINT, bids BIGINT, window_end TIMESTAMP(3))
         WITH ('connector' = 'filesystem', 'path' = '{out}/windows', 'format' = 'json');
         INSERT INTO copy SELECT auction, price, `partition`, `offset` FROM bids;
         INSERT INTO per_window
         SELECT auction, COUNT(*), window_end
         FROM TABLE(TUMBLE(TABLE bids, DESCRIPTOR(`dateTime`), INTERVAL '1' SECOND))
         GROUP BY auction, window_start, window_end;",
        out = out.display()
    )
}

/// Every line of the committed part files of `dir` (hidden in-progress files excluded), sorted.
#[test]
fn a_sql_job_reading_kafka_killed_and_restored_commits_the_crash_free_output() {
    let seed = crash_seed();
    eprintln!("sql kafka crash test: {KILLS} kills, STREAMCORE_CRASH_SEED={seed}");
    let broker = TestBroker::start();
    broker.create_topic("bids", 3);
    let servers = broker.brokers();
    produce(&servers);
    let tmp = tempfile::tempdir().unwrap();

    let reference = tmp.path().join("reference");
    let out = Command::new(BIN)
        .args(["sql", "-p", "2", "-e", &script(&servers, &reference)])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "reference run: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (out, ckpt) = (tmp.path().join("out"), tmp.path().join("checkpoints"));
    let sql = script(&servers, &out);
    let mut delays = Delays(seed);
    let (kills, attempts, elapsed) = run_sql_with_kills(
        BIN,
        &sql,
        &ckpt,
        tmp.path(),
        KILLS,
        &mut delays,
        (300, 1000),
    );
    assert!(
        kills >= KILLS,
        "the job ended after {kills} kills: it was too fast to be killed"
    );
    eprintln!("{kills} kills, {attempts} runs, {:?}", elapsed);
    let copy = committed_sorted(&out.join("copy"));
    // Every record of the topic once: its partition and offset are unique.
    let mut positions: Vec<(String, String)> = copy
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[2].to_string(), f[3].to_string())
        })
        .collect();
    positions.sort();
    positions.dedup();
    assert_eq!(positions.len(), copy.len(), "a record was committed twice");
    for part in ["copy", "windows"] {
        let want = committed_sorted(&reference.join(part));
        let got = committed_sorted(&out.join(part));
        assert!(!want.is_empty(), "{part}: the reference run wrote nothing");
        assert_eq!(got.len(), want.len(), "{part}: row count");
        assert!(got == want, "{part}: rows differ from the crash-free run");
    }
}
