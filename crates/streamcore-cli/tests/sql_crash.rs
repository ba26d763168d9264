//! The crash test for SQL: `streamcore sql` runs a script of two INSERTs (a statement set: a
//! per-auction window aggregate into CSV part files and a filter into JSON part files) over
//! the rate-limited Nexmark generator, checkpointing every 100 ms into exactly-once
//! filesystem sinks; it is killed with SIGKILL at random moments and restarted with
//! `--restore latest` until it finishes. The committed files must hold exactly the rows of a
//! run that never crashed. `STREAMCORE_CRASH_SEED` replays a sequence of kill times.

mod common;

use common::{committed_sorted, crash_seed, run_sql_with_kills, Delays};
use std::path::Path;
use std::process::{Command, Stdio};

const KILLS: usize = 10;

fn script(out: &Path, rate_limited: bool) -> String {
    format!(
        "CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` TIMESTAMP(3),
           WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND)
         WITH ('connector' = 'nexmark', 'kind' = 'bid', 'events.num' = '70000',
               'first-event.rate' = '10000', 'rate-limited' = '{rate_limited}');
         CREATE TABLE per_window (auction BIGINT, bids BIGINT, top_price BIGINT, window_end TIMESTAMP(3))
         WITH ('connector' = 'filesystem', 'path' = '{out}/windows', 'format' = 'csv');
         CREATE TABLE cheap (auction BIGINT, bidder BIGINT, price BIGINT, `dateTime` TIMESTAMP(3))
         WITH ('connector' = 'filesystem', 'path' = '{out}/cheap', 'format' = 'json');
         INSERT INTO per_window
         SELECT auction, COUNT(*), MAX(price), window_end
         FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`), INTERVAL '1' SECOND))
         GROUP BY auction, window_start, window_end;
         INSERT INTO cheap SELECT auction, bidder, price, `dateTime` FROM bid WHERE price < 1000;",
        out = out.display()
    )
}

/// Every line of the committed part files of `dir` (hidden in-progress files excluded), sorted.
#[test]
fn a_sql_job_killed_and_restored_commits_the_crash_free_output() {
    let seed = crash_seed();
    eprintln!("sql crash test: {KILLS} kills, STREAMCORE_CRASH_SEED={seed}");
    let bin = env!("CARGO_BIN_EXE_streamcore");
    let tmp = tempfile::tempdir().unwrap();

    let reference = tmp.path().join("reference");
    let status = Command::new(bin)
        .args(["sql", "-p", "2", "-e", &script(&reference, false)])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());

    let (out, ckpt) = (tmp.path().join("out"), tmp.path().join("checkpoints"));
    let sql = script(&out, true);
    let mut delays = Delays(seed);
    let (kills, attempts, elapsed) =
        run_sql_with_kills(bin, &sql, &ckpt, tmp.path(), KILLS, &mut delays, (200, 700));
    assert!(kills >= KILLS, "the job ended after {kills} kills");
    eprintln!("{kills} kills, {attempts} runs, {:?}", elapsed);
    for part in ["windows", "cheap"] {
        let want = committed_sorted(&reference.join(part));
        let got = committed_sorted(&out.join(part));
        assert!(!want.is_empty(), "{part}: the reference run wrote nothing");
        assert_eq!(got.len(), want.len(), "{part}: row count");
        assert!(got == want, "{part}: rows differ from the crash-free run");
    }
}
