//! The crash test: `streamcore demo --windows` (keyed tumbling and session windows plus the
//! filter/enrich pipeline, parallelism 2) over a bounded generated input, checkpointing every
//! 100 ms into exactly-once directory sinks, is killed with SIGKILL at random moments and
//! restarted with `--restore latest` until it finishes. Its committed output must equal the
//! output of a run that never crashed: no record lost, none twice.
//!
//! At least 20 kills per run (`STREAMCORE_CRASH_KILLS=N` for a longer stress run, e.g. 200;
//! `STREAMCORE_CRASH_SEED` replays a sequence of kill times). Midway, a torn checkpoint (a
//! newer directory whose manifest is cut short) is planted: the next run must skip it with a
//! message and restore the previous complete one.

mod common;

use common::{committed_lines, demo_args, send_signal, Delays};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Events for `kills` kills: enough input (at [`RATE`]) that the job outlives them all.
fn events_for(kills: usize) -> u64 {
    (kills as u64 * 4_000).max(80_000)
}
const RATE: u64 = 6_000;

fn in_progress_files(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".inprogress"))
        .collect()
}

/// Plants a torn checkpoint newer than every other one in `dir`.
fn plant_torn_checkpoint(dir: &Path) -> PathBuf {
    let newest = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.strip_prefix("chk-")?.parse::<u64>().ok()
        })
        .max()
        .unwrap_or(0);
    let torn = dir.join(format!("chk-{:06}", newest + 1));
    fs::create_dir_all(&torn).unwrap();
    fs::write(torn.join("n0000-s000.state"), b"\x93\x01").unwrap();
    fs::write(
        torn.join("_manifest.json"),
        b"{\"format_version\": 1, \"job\": \"de",
    )
    .unwrap();
    torn
}

#[test]
fn sigkill_and_restore_until_done_gives_the_crash_free_output() {
    let kills_wanted: usize = std::env::var("STREAMCORE_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let seed: u64 = std::env::var("STREAMCORE_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("crash test: {kills_wanted} kills, STREAMCORE_CRASH_SEED={seed}");
    let bin = env!("CARGO_BIN_EXE_streamcore");
    let tmp = tempfile::tempdir().unwrap();

    // The reference: one uninterrupted run, no checkpoints, as fast as it goes.
    let (ref_out, ref_win) = (
        tmp.path().join("ref.jsonl"),
        tmp.path().join("ref-win.jsonl"),
    );
    let status = Command::new(bin)
        .args(demo_args(&ref_out, &ref_win, events_for(kills_wanted)))
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());

    let (out, win, ckpt) = (
        tmp.path().join("out"),
        tmp.path().join("win"),
        tmp.path().join("checkpoints"),
    );
    let mut delays = Delays(seed);
    let mut kills = 0;
    let mut attempts = 0;
    let mut torn: Option<PathBuf> = None;
    let started = Instant::now();
    loop {
        attempts += 1;
        let stderr_path = tmp.path().join(format!("stderr-{attempts}.txt"));
        let mut args = demo_args(&out, &win, events_for(kills_wanted));
        args.extend(
            [
                "--rate",
                &RATE.to_string(),
                "--checkpoint-dir",
                ckpt.to_str().unwrap(),
                "--checkpoint-interval",
                "100ms",
                "--restore",
                "latest",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        let mut child = Command::new(bin)
            .args(&args)
            .stdout(Stdio::null())
            .stderr(fs::File::create(&stderr_path).unwrap())
            .spawn()
            .unwrap();
        let kill_at = Duration::from_millis(delays.next_ms(150, 500));
        let spawned = Instant::now();
        let exited = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if kills < kills_wanted && spawned.elapsed() >= kill_at {
                break None;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        if let Some(torn) = torn.take() {
            // The run after the torn checkpoint was planted must have skipped it.
            let stderr = fs::read_to_string(&stderr_path).unwrap();
            assert!(
                stderr.contains("skipping checkpoint") && stderr.contains("unreadable manifest"),
                "run {attempts} did not report the torn checkpoint {}: {stderr}",
                torn.display()
            );
        }
        match exited {
            Some(status) => {
                let stderr = fs::read_to_string(&stderr_path).unwrap();
                assert!(status.success(), "run {attempts} failed: {stderr}");
                break;
            }
            None => {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                kills += 1;
                if kills == kills_wanted / 2 {
                    torn = Some(plant_torn_checkpoint(&ckpt));
                }
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "no end after {kills} kills"
        );
    }
    assert!(
        kills >= kills_wanted,
        "the job ended after {kills} kills; {kills_wanted} wanted"
    );
    eprintln!("{kills} kills, {attempts} runs, {:?}", started.elapsed());

    let (want_win, got_win) = (committed_lines(&ref_win), committed_lines(&win));
    assert!(!want_win.is_empty());
    assert_eq!(got_win.len(), want_win.len(), "window results: count");
    assert!(
        got_win == want_win,
        "window results differ from the crash-free run"
    );
    let (want_out, got_out) = (committed_lines(&ref_out), committed_lines(&out));
    assert_eq!(got_out.len(), want_out.len(), "enriched events: count");
    assert!(
        got_out == want_out,
        "enriched events differ from the crash-free run"
    );
    assert!(in_progress_files(&out).is_empty() && in_progress_files(&win).is_empty());
}

#[test]
fn savepoint_on_sigusr1_and_stop_with_savepoint_on_sigterm_then_resume() {
    let bin = env!("CARGO_BIN_EXE_streamcore");
    let tmp = tempfile::tempdir().unwrap();
    let (ref_out, ref_win) = (
        tmp.path().join("ref.jsonl"),
        tmp.path().join("ref-win.jsonl"),
    );
    let args = demo_args(&ref_out, &ref_win, 20_000);
    assert!(Command::new(bin)
        .args(&args)
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success());

    let (out, win, ckpt) = (
        tmp.path().join("out"),
        tmp.path().join("win"),
        tmp.path().join("checkpoints"),
    );
    let mut args = demo_args(&out, &win, 20_000);
    args.extend(
        [
            "--rate",
            "5000",
            "--checkpoint-dir",
            ckpt.to_str().unwrap(),
            "--checkpoint-interval",
            "10s",
            "--restore",
            "latest",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    let stderr_path = tmp.path().join("stderr.txt");
    let child = Command::new(bin)
        .args(&args)
        .stderr(fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    send_signal(child.id(), "USR1");
    std::thread::sleep(Duration::from_millis(800));
    send_signal(child.id(), "TERM");
    let status = child.wait_with_output().unwrap().status;
    let stderr = fs::read_to_string(&stderr_path).unwrap();
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("savepoint written to"), "{stderr}");
    assert!(stderr.contains("stopped with a savepoint"), "{stderr}");
    let savepoints = fs::read_dir(&ckpt)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("sp-")
        })
        .count();
    assert_eq!(savepoints, 2, "{stderr}");
    assert!(committed_lines(&win).len() < committed_lines(&ref_win).len());

    // Resume from the stop's savepoint (the newest) and run to the end.
    let status = Command::new(bin)
        .args(&args)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        committed_lines(&win) == committed_lines(&ref_win),
        "window results differ"
    );
    assert!(
        committed_lines(&out) == committed_lines(&ref_out),
        "events differ"
    );
}

#[test]
fn nexmark_with_checkpoints_commits_the_same_rows_and_refuses_what_it_cannot_commit() {
    let bin = env!("CARGO_BIN_EXE_streamcore");
    let tmp = tempfile::tempdir().unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["nexmark", "--query", "q5", "--events", "300000"];
        args.extend_from_slice(extra);
        Command::new(bin).args(&args).output().unwrap()
    };
    let reference = tmp.path().join("ref.csv");
    assert!(run(&["--output", reference.to_str().unwrap()])
        .status
        .success());
    let (out, ckpt) = (tmp.path().join("out"), tmp.path().join("ckpt"));
    let done = run(&[
        "--output",
        out.to_str().unwrap(),
        "--checkpoint-dir",
        ckpt.to_str().unwrap(),
        "--checkpoint-interval",
        "20ms",
    ]);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let rows = |text: String| {
        let mut v: Vec<String> = text.lines().skip(1).map(str::to_string).collect();
        v.sort();
        v
    };
    let mut got = Vec::new();
    for entry in fs::read_dir(&out).unwrap() {
        got.extend(rows(fs::read_to_string(entry.unwrap().path()).unwrap()));
    }
    got.sort();
    let want = rows(fs::read_to_string(&reference).unwrap());
    assert!(!want.is_empty());
    assert!(
        got == want,
        "{} rows committed, {} expected",
        got.len(),
        want.len()
    );

    // An updating query's final table is not checkpointed: refused, with the reason.
    let refused = Command::new(bin)
        .args([
            "nexmark",
            "--query",
            "q4",
            "--events",
            "1000",
            "--output",
            tmp.path().join("q4").to_str().unwrap(),
            "--checkpoint-dir",
            tmp.path().join("ckpt4").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains("cannot be written exactly once"),
        "{stderr}"
    );
}
