//! The PostgreSQL change-data-capture source against a real server
//! (scripts/test-deps.d/10-postgresql.sh): a snapshot and the changes made during and after
//! it, each exactly once (a strict changelog check); a job killed with SIGKILL again and again
//! and restored from its checkpoints sees every change exactly once; misconfigurations fail
//! fast naming the fix.
//!
//! The killed job runs in a child process: this test binary started again with
//! `STREAMCORE_PG_CDC_CHILD` set, running the ignored test `child_cdc_job`.

#![cfg(feature = "postgres")]

mod postgres_common;

use postgres_common::{client, connection, exec, rows};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use streamcore::changelog::Change;
use streamcore::checkpoint::{CheckpointConfig, RestoreFrom};
use streamcore::row::{DataType, Row, Scalar};
use streamcore::{Job, JobConfig};
use streamcore_connectors::postgres::{PostgresCdcConfig, PostgresCdcSource};
use streamcore_connectors::JsonLinesSink;

fn reset(table: &str, slot: &str, initial_rows: i64) {
    exec(&format!(
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '{slot}';
         DROP PUBLICATION IF EXISTS {slot}_pub;
         DROP TABLE IF EXISTS {table};
         CREATE TABLE {table} (id bigint PRIMARY KEY, v bigint NOT NULL, note text);
         ALTER TABLE {table} REPLICA IDENTITY FULL;
         INSERT INTO {table} SELECT g, g * 10, 'row ' || g FROM generate_series(1, {initial_rows}) g;"
    ));
}

/// Drops a test's slot (a slot keeps the server's WAL from being recycled).
fn drop_slot(slot: &str) {
    exec(&format!(
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '{slot}' AND NOT active"
    ));
}

fn source(table: &str, slot: &str) -> PostgresCdcSource {
    let mut c = PostgresCdcConfig::new("", table, slot);
    c.connection = connection();
    c.poll_interval = Duration::from_millis(20);
    c.max_changes_per_poll = 500;
    PostgresCdcSource::new(c).unwrap()
}

/// Inserts, updates and deletes in transactions of 1 to 5 statements; returns when done.
/// Finishes with the sentinel row `id = -1`.
/// Makes at least `ops` changes, and goes on while `hold` (if given) is set — so that a crash
/// test gets its kills in before the sentinel row ends the job, however fast the machine.
fn mutate(table: &str, ops: u64, seed: u64, pause: Duration, hold: Option<Arc<AtomicBool>>) {
    let mut c = client();
    let mut x = seed;
    let mut next_id: i64 = 100_000;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut done = 0;
    while done < ops || hold.as_ref().is_some_and(|h| h.load(Ordering::Relaxed)) {
        let mut tx = c.transaction().unwrap();
        for _ in 0..(1 + rnd() % 5) {
            let id = (rnd() % 300) as i64;
            match rnd() % 4 {
                0 => {
                    next_id += 1;
                    tx.execute(
                        &format!("INSERT INTO {table} VALUES ($1, $2, 'new')"),
                        &[&next_id, &(rnd() as i64 % 1000)],
                    )
                    .unwrap();
                }
                1 => {
                    tx.execute(&format!("DELETE FROM {table} WHERE id = $1"), &[&id])
                        .unwrap();
                }
                2 => {
                    // An update that changes the key.
                    next_id += 1;
                    tx.execute(
                        &format!("UPDATE {table} SET id = $2 WHERE id = $1"),
                        &[&id, &next_id],
                    )
                    .unwrap();
                }
                _ => {
                    tx.execute(
                        &format!(
                            "UPDATE {table} SET v = v + 1, note = NULL WHERE id = $1 OR id = $2"
                        ),
                        &[&id, &(id + 1)],
                    )
                    .unwrap();
                }
            }
            done += 1;
        }
        tx.commit().unwrap();
        std::thread::sleep(pause);
    }
    c.execute(
        &format!("INSERT INTO {table} VALUES (-1, 0, 'the end')"),
        &[],
    )
    .unwrap();
}

/// Applies a changelog strictly: an insert of a present key, or a withdrawal of a row that is
/// not the current one, fails (a repeated or lost change shows).
fn apply_strictly(changes: &[Change<Row>]) -> Vec<Vec<Option<String>>> {
    let mut table: BTreeMap<i64, Row> = BTreeMap::new();
    for (i, c) in changes.iter().enumerate() {
        let id = c.row().get(0).as_i64().unwrap();
        match c {
            Change::Insert(r) | Change::UpdateAfter(r) => {
                assert!(
                    table.insert(id, r.clone()).is_none(),
                    "change {i}: {c:?} adds a row that is there (changes around it: {:?})",
                    &changes[i.saturating_sub(3)..(i + 3).min(changes.len())]
                );
            }
            Change::UpdateBefore(r) | Change::Delete(r) => {
                assert_eq!(
                    table.remove(&id).as_ref(),
                    Some(r),
                    "change {i}: {c:?} withdraws a row that is not there"
                );
            }
        }
    }
    let mut out: Vec<Vec<Option<String>>> = table
        .values()
        .map(|r| {
            r.values
                .iter()
                .map(|v| (!v.is_null()).then(|| v.to_string()))
                .collect()
        })
        .collect();
    out.sort();
    out
}

#[test]
fn the_snapshot_and_every_change_after_it_exactly_once() {
    let (table, slot) = ("cdc_live", "cdc_live_slot");
    reset(table, slot, 2000);
    let src = source(table, slot);
    assert_eq!(
        src.schema()
            .fields
            .iter()
            .map(|f| (f.name.as_str(), f.data_type, f.nullable))
            .collect::<Vec<_>>(),
        vec![
            ("id", DataType::BigInt, false),
            ("v", DataType::BigInt, false),
            ("note", DataType::Varchar, true)
        ]
    );
    let metrics = src.metrics();
    let mut job = Job::new("cdc");
    let seen_end = Arc::new(AtomicBool::new(false));
    let flag = seen_end.clone();
    let out = job
        .source("items", src)
        .map(move |c: Change<Row>| {
            if c.row().get(0) == &Scalar::Int(-1) {
                flag.store(true, Ordering::Relaxed);
            }
            c
        })
        .collect();
    let handle = job
        .start(JobConfig::default().parallelism(1).batch_size(100))
        .unwrap();
    // Changes while the snapshot is read, and after.
    mutate(table, 1500, 7, Duration::from_millis(1), None);
    let started = Instant::now();
    while !seen_end.load(Ordering::Relaxed) {
        if handle.is_finished() {
            handle.join().unwrap();
            panic!("the CDC job ended before the sentinel row");
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the sentinel row never came"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    handle.stop();
    handle.join().unwrap();
    let changes = out.take();
    assert_eq!(
        apply_strictly(&changes),
        rows(&format!("SELECT id::text, v::text, note FROM {table}"))
    );
    let m = metrics.summary();
    assert_eq!(
        m.snapshot_rows as usize + m.changes as usize,
        changes.len(),
        "{m:?}"
    );
    assert!(m.changes > 0 && m.transactions > 0 && m.peeks > 0, "{m:?}");
    drop_slot(slot);
}

#[test]
fn misconfigured_cdc_fails_fast_naming_the_fix() {
    exec(
        "DROP TABLE IF EXISTS cdc_plain; CREATE TABLE cdc_plain (id bigint PRIMARY KEY, v bigint)",
    );
    let mut c = PostgresCdcConfig::new("", "cdc_plain", "cdc_plain_slot");
    c.connection = connection();
    let err = PostgresCdcSource::new(c.clone()).err().unwrap().to_string();
    assert!(
        err.contains("ALTER TABLE \"cdc_plain\" REPLICA IDENTITY FULL"),
        "{err}"
    );
    c.table = "cdc_no_such_table".into();
    let err = PostgresCdcSource::new(c.clone()).err().unwrap().to_string();
    assert!(
        err.contains("table `cdc_no_such_table` does not exist"),
        "{err}"
    );
    c.connection.password = streamcore_connectors::postgres::Password::Value("wrong".into());
    let err = PostgresCdcSource::new(c).err().unwrap().to_string();
    assert!(err.contains("authentication failed"), "{err}");
}

/// The committed changes in the output directory, in order (part files by checkpoint id).
fn committed(dir: &Path) -> Vec<Change<Row>> {
    let mut parts: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| {
                let p = e.ok()?.path();
                let name = p.file_name()?.to_str()?.to_string();
                let id = name
                    .strip_prefix("part-")?
                    .strip_suffix(".jsonl")?
                    .split('-')
                    .next()?
                    .parse()
                    .ok()?;
                Some((id, p))
            })
            .collect()
        })
        .unwrap_or_default();
    parts.sort();
    parts
        .into_iter()
        .flat_map(|(_, p)| {
            std::fs::read_to_string(&p)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<Change<Row>>(l).unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The job the crash test kills: the CDC source into exactly-once JSON-lines part files,
/// checkpointing every 100 ms, restored from the latest checkpoint; it stops (gracefully)
/// once it has emitted the sentinel row.
#[test]
#[ignore = "run by cdc_killed_and_restored_sees_every_change_exactly_once in a child process"]
fn child_cdc_job() {
    let Ok(dir) = std::env::var("STREAMCORE_PG_CDC_CHILD") else {
        return;
    };
    let dir = PathBuf::from(dir);
    let seen_end = Arc::new(AtomicBool::new(false));
    let flag = seen_end.clone();
    let mut job = Job::new("cdc-crash");
    job.source("items", source("cdc_crash", "cdc_crash_slot"))
        .uid("cdc-source")
        .map(move |c: Change<Row>| {
            if c.row().get(0) == &Scalar::Int(-1) {
                flag.store(true, Ordering::Relaxed);
            }
            c
        })
        .sink(JsonLinesSink::dir(dir.join("out")));
    let handle = job
        .start(
            JobConfig::default()
                .parallelism(1)
                .batch_size(50)
                .checkpoints(
                    CheckpointConfig::new(dir.join("ckpt"))
                        .interval(Duration::from_millis(100))
                        .restore(RestoreFrom::Latest),
                ),
        )
        .unwrap();
    while !seen_end.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(20));
    }
    handle.stop();
    handle.join().unwrap();
}

#[test]
fn cdc_killed_and_restored_sees_every_change_exactly_once() {
    let (table, slot) = ("cdc_crash", "cdc_crash_slot");
    reset(table, slot, 3000);
    let dir = tempfile::tempdir().unwrap();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("kill seed {seed}");
    let hold = Arc::new(AtomicBool::new(true));
    let mutator = std::thread::spawn({
        let hold = hold.clone();
        move || mutate("cdc_crash", 1500, 99, Duration::from_millis(3), Some(hold))
    });
    let mut x = seed;
    let mut kills = 0;
    let started = Instant::now();
    loop {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "child_cdc_job",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("STREAMCORE_PG_CDC_CHILD", dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if kills >= 10 {
            // Enough kills: let the changes end (the sentinel row ends the job).
            hold.store(false, Ordering::Relaxed);
        }
        if kills < 10 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            std::thread::sleep(Duration::from_millis(300 + x % 700));
            if child.try_wait().unwrap().is_none() {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                kills += 1;
                continue;
            }
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                child.kill().unwrap();
                panic!("the last CDC job did not see the sentinel row within 120 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "the CDC job failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        break;
    }
    mutator.join().unwrap();
    assert!(started.elapsed() < Duration::from_secs(240));
    let changes = committed(&dir.path().join("out"));
    assert_eq!(
        apply_strictly(&changes),
        rows(&format!("SELECT id::text, v::text, note FROM {table}")),
        "after {kills} kills (seed {seed})"
    );
    assert!(kills >= 5, "only {kills} kills");
    drop_slot(slot);
}
