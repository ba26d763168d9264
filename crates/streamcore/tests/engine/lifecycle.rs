//! Job lifecycle: unions, side outputs and fan-out, bounded jobs ending by themselves,
//! watermarks and `close` as a custom operator sees them, per-operator metrics, stop/cancel.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};
use streamcore::metrics::OperatorSummary;
use streamcore::sink::CountingSink;
use streamcore::source::Generator;
use streamcore::{
    Job, JobConfig, JobSummary, Operator, Output, OutputTag, Result, StreamError, TaskContext,
    Timestamp,
};

/// Runs `f` on its own thread and fails the test if it does not finish within 30 s: a hang
/// guard, not a performance assertion.
fn within_deadline<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(r) => r,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("job did not finish within 30 s"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("job thread panicked"),
    }
}

fn op<'a>(summary: &'a JobSummary, name: &str) -> &'a OperatorSummary {
    summary
        .operators
        .iter()
        .find(|o| o.name == name)
        .unwrap_or_else(|| panic!("no operator `{name}` in {summary:#?}"))
}

fn op_prefixed<'a>(summary: &'a JobSummary, prefix: &str) -> &'a OperatorSummary {
    let found: Vec<_> = summary
        .operators
        .iter()
        .filter(|o| o.name.starts_with(prefix))
        .collect();
    assert_eq!(found.len(), 1, "operators named {prefix}*: {summary:#?}");
    found[0]
}

#[test]
fn union_of_two_sources_yields_every_record_of_both() {
    for p in [1, 2, 3] {
        let mut job = Job::new("union");
        let left = job.from_vec("left", (0..1000i64).collect());
        let right = job.source(
            "right",
            Generator::new(|i| 1_000_000 + i as i64).bounded(777),
        );
        let out = left.union(right).collect();
        let summary = job
            .run(JobConfig::default().parallelism(p).batch_size(64))
            .unwrap();
        let mut got = out.take();
        got.sort_unstable();
        let mut want: Vec<i64> = (0..1000).chain((0..777).map(|i| 1_000_000 + i)).collect();
        want.sort_unstable();
        assert_eq!(got, want, "parallelism {p}");
        assert_eq!(summary.events_ingested, 1777);
        assert_eq!(summary.events_emitted, 1777);
        let union = summary
            .exchanges
            .iter()
            .find(|e| e.name == "union")
            .expect("union exchange in summary");
        assert_eq!(union.events_sent, 1777);
        assert_eq!(union.queues, p);
    }
}

#[test]
fn union_of_a_stream_with_its_own_side_output_ends_and_keeps_everything() {
    // Both inputs of the union live in the same stage: the receiver must wait for the `End` of
    // both sending nodes of every upstream subtask.
    let big = OutputTag::<i64>::new("big");
    let mut job = Job::new("self-union");
    let small = job.from_vec("n", (0..500i64).collect()).process({
        let big = big.clone();
        move |x, out: &mut Output<i64>| {
            if x >= 250 {
                out.side(&big, -x)
            } else {
                out.emit(x)
            }
        }
    });
    let bigs = small.side_output(&big);
    let out = small.union(bigs).collect();
    let handle = job
        .start(JobConfig::default().parallelism(2).batch_size(16))
        .unwrap();
    within_deadline(move || handle.join()).unwrap();
    let mut got = out.take();
    got.sort_unstable();
    let mut want: Vec<i64> = (0..250).chain((250..500).map(|x| -x)).collect();
    want.sort_unstable();
    assert_eq!(got, want);
}

#[test]
fn side_outputs_route_records_and_count_unconsumed_ones() {
    let odd = OutputTag::<String>::new("odd");
    let negative = OutputTag::<i32>::new("nobody-reads-this");
    let mut job = Job::new("split");
    let evens = job
        .from_vec("n", (-100..200i32).collect())
        .process({
            let odd = odd.clone();
            let negative = negative.clone();
            move |n, out: &mut Output<i32>| {
                if n < 0 {
                    out.side(&negative, n);
                } else if n % 2 == 0 {
                    out.emit(n);
                } else {
                    out.side(&odd, format!("odd:{n}"));
                }
            }
        })
        .name("splitter");
    let odds = evens.side_output(&odd).collect();
    let evens = evens.collect();
    let summary = job
        .run(JobConfig::default().parallelism(2).batch_size(7))
        .unwrap();

    let mut e = evens.take();
    e.sort_unstable();
    assert_eq!(e, (0..200).step_by(2).collect::<Vec<_>>());
    let mut o = odds.take();
    o.sort();
    let mut want: Vec<String> = (1..200).step_by(2).map(|n| format!("odd:{n}")).collect();
    want.sort();
    assert_eq!(o, want);

    let splitter = op(&summary, "splitter");
    assert_eq!(splitter.events_processed, 300);
    // Side-output records are not main-output records.
    assert_eq!(splitter.events_out, 100);
    assert_eq!(splitter.side_output_discarded, 100);
    assert_eq!(summary.events_emitted, 200);
}

#[test]
fn fan_out_feeds_main_output_and_two_consumers_of_one_side_output() {
    let copy = OutputTag::<i64>::new("copy");
    let mut job = Job::new("fan-out");
    let main = job.from_vec("n", (0..1000i64).collect()).process({
        let copy = copy.clone();
        move |x, out: &mut Output<i64>| {
            out.side(&copy, x);
            out.emit(x);
        }
    });
    // Two consumers of the same side output (a tee), each with its own downstream chain.
    let side_a = main.side_output(&copy).filter(|x| x % 10 == 0).collect();
    let side_b = main
        .side_output(&copy)
        .key_by(|x| x % 4)
        .aggregate(|_| 0u64, |c, _| *c += 1, |k, c| (*k, *c))
        .collect();
    // The main output crosses an exchange too.
    let main_out = main.map(|x| x * 3).rebalance().collect();
    let handle = job
        .start(JobConfig::default().parallelism(3).batch_size(50))
        .unwrap();
    within_deadline(move || handle.join()).unwrap();

    let mut a = side_a.take();
    a.sort_unstable();
    assert_eq!(a, (0..1000).step_by(10).collect::<Vec<i64>>());

    // The final count per key is the highest count emitted for it; every count 1..=250 of
    // every key shows up exactly once.
    let mut b = side_b.take();
    b.sort_unstable();
    let want: Vec<(i64, u64)> = (0..4)
        .flat_map(|k| (1..=250).map(move |c| (k, c)))
        .collect();
    assert_eq!(b, want);

    let mut m = main_out.take();
    m.sort_unstable();
    assert_eq!(m, (0..1000).map(|x| x * 3).collect::<Vec<_>>());
}

#[test]
fn bounded_multi_stage_job_ends_by_itself_with_exact_results() {
    const N: u64 = 20_000;
    // Records per key `i % 7` among 0..N.
    fn count_of(k: u64) -> u64 {
        (0..N).filter(|i| i % 7 == k).count() as u64
    }
    let out = within_deadline(|| {
        let mut job = Job::new("stages");
        let out = job
            .source("gen", Generator::new(|i| i).bounded(N))
            .map(|i| (i % 7, 1u64, i))
            .key_by(|t| t.0)
            .reduce(|a, b| (a.0, a.1 + b.1, a.2 + b.2))
            // Only the last running value of each key: the one that has seen all its records.
            .filter(|t| t.1 == count_of(t.0))
            .rebalance()
            .key_by(|t| t.0 % 2)
            .aggregate(
                |_| (0u64, 0u64),
                |acc, t| {
                    acc.0 += 1;
                    acc.1 += t.2;
                },
                |k, acc| (*k, acc.0, acc.1),
            )
            .collect();
        let summary = job
            .run(JobConfig::default().parallelism(2).batch_size(100))
            .unwrap();
        assert_eq!(summary.events_ingested, N);
        assert_eq!(summary.events_filtered, N - 7);
        out.take()
    });
    let mut got = out;
    got.sort_unstable();
    // Per parity of the key: the running count of final sums and their running total.
    let mut want = Vec::new();
    for parity in 0..2u64 {
        let (mut c, mut s) = (0, 0);
        for k in (0..7).filter(|k| k % 2 == parity) {
            c += 1;
            s += (0..N).filter(|i| i % 7 == k).sum::<u64>();
            want.push((parity, c, s));
        }
    }
    want.sort_unstable();
    // The intermediate running totals depend on the order the per-key finals arrived in;
    // the last one of each parity does not.
    let last = |v: &[(u64, u64, u64)], parity: u64| {
        v.iter()
            .filter(|t| t.0 == parity)
            .max_by_key(|t| t.1)
            .copied()
    };
    assert_eq!(got.len(), 7, "{got:?}");
    for parity in 0..2 {
        assert_eq!(last(&got, parity), last(&want, parity));
        let counts: Vec<u64> = got.iter().filter(|t| t.0 == parity).map(|t| t.1).collect();
        let want_counts: Vec<u64> = want.iter().filter(|t| t.0 == parity).map(|t| t.1).collect();
        assert_eq!(counts, want_counts);
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Hook {
    Open,
    Batch(usize),
    Watermark(Timestamp),
    Close,
}

/// Logs every hook call per parallel instance; emits its record count on close.
#[derive(Clone)]
struct HookRecorder {
    log: Arc<Mutex<Vec<(usize, Hook)>>>,
    subtask: usize,
    seen: u64,
}

impl Operator for HookRecorder {
    type In = u64;
    type Out = (usize, u64);

    fn open(&mut self, ctx: &mut TaskContext) -> Result<()> {
        self.subtask = ctx.info().subtask;
        self.log.lock().unwrap().push((self.subtask, Hook::Open));
        Ok(())
    }

    fn process_batch(
        &mut self,
        batch: Vec<u64>,
        _ctx: &mut TaskContext,
        _out: &mut Output<(usize, u64)>,
    ) -> Result<()> {
        self.seen += batch.len() as u64;
        self.log
            .lock()
            .unwrap()
            .push((self.subtask, Hook::Batch(batch.len())));
        Ok(())
    }

    fn on_watermark(
        &mut self,
        watermark: Timestamp,
        _ctx: &mut TaskContext,
        _out: &mut Output<(usize, u64)>,
    ) -> Result<Option<Timestamp>> {
        self.log
            .lock()
            .unwrap()
            .push((self.subtask, Hook::Watermark(watermark)));
        Ok(Some(watermark))
    }

    fn close(&mut self, _ctx: &mut TaskContext, out: &mut Output<(usize, u64)>) -> Result<()> {
        self.log.lock().unwrap().push((self.subtask, Hook::Close));
        out.emit((self.subtask, self.seen));
        Ok(())
    }
}

#[test]
fn operator_after_key_by_sees_the_final_watermark_once_after_all_data_and_before_close() {
    const N: u64 = 5000;
    for p in [1, 2, 3] {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut job = Job::new("watermarks");
        let counts = job
            .source("gen", Generator::new(|i| i).bounded(N))
            .key_by(|x| x % 11)
            .partitioned()
            .apply(
                "recorder",
                HookRecorder {
                    log: log.clone(),
                    subtask: usize::MAX,
                    seen: 0,
                },
            )
            .collect();
        let summary = job
            .run(JobConfig::default().parallelism(p).batch_size(128))
            .unwrap();

        let log = log.lock().unwrap().clone();
        let mut total = 0;
        for s in 0..p {
            let hooks: Vec<Hook> = log
                .iter()
                .filter(|(sub, _)| *sub == s)
                .map(|(_, h)| h.clone())
                .collect();
            let n = hooks.len();
            assert!(n >= 3, "subtask {s}: {hooks:?}");
            assert_eq!(hooks[0], Hook::Open, "subtask {s}");
            assert_eq!(
                &hooks[n - 2..],
                &[Hook::Watermark(Timestamp::MAX), Hook::Close],
                "subtask {s} must see the final watermark, then close, last"
            );
            for h in &hooks[1..n - 2] {
                match h {
                    Hook::Batch(len) => {
                        assert!(*len >= 1 && *len <= 128, "batch of {len}");
                        total += *len as u64;
                    }
                    other => panic!("subtask {s}: unexpected {other:?} among data in {hooks:?}"),
                }
            }
        }
        assert_eq!(total, N, "parallelism {p}");

        // What `close` emitted reached the sink, and is counted as the operator's output.
        let mut counts = counts.take();
        counts.sort_unstable();
        assert_eq!(counts.len(), p);
        assert_eq!(counts.iter().map(|c| c.1).sum::<u64>(), N);
        let recorder = op_prefixed(&summary, "recorder");
        assert_eq!(recorder.events_processed, N);
        assert_eq!(recorder.events_out, p as u64);
        assert_eq!(recorder.watermark, Some(Timestamp::MAX));
        assert_eq!(
            op_prefixed(&summary, "collect").watermark,
            Some(Timestamp::MAX)
        );
    }
}

#[test]
fn per_operator_counts_add_up() {
    for p in [1, 2, 4] {
        let mut job = Job::new("counts");
        let out = job
            .from_vec("numbers", (0..1000i64).collect())
            .filter(|x| x % 3 != 0)
            .name("drop_thirds")
            .map(|x| x * 2)
            .name("double")
            .flat_map(|x| if x % 10 == 0 { vec![x, -x] } else { vec![x] })
            .name("mirror_tens")
            .key_by(|x| x.rem_euclid(5))
            .aggregate(|_| 0u64, |c, _| *c += 1, |k, c| (*k, *c))
            .name("count_per_key")
            .collect();
        let summary = job
            .run(JobConfig::default().parallelism(p).batch_size(32))
            .unwrap();

        let kept = (0..1000i64).filter(|x| x % 3 != 0).count() as u64; // 666
        let mirrored = (0..1000i64)
            .filter(|x| x % 3 != 0 && (x * 2) % 10 == 0)
            .count() as u64;
        let after_flat = kept + mirrored;
        assert_eq!(out.len() as u64, after_flat);

        assert_eq!(summary.events_ingested, 1000);
        assert_eq!(summary.events_filtered, 1000 - kept);
        assert_eq!(summary.events_failed, 0);
        assert_eq!(summary.events_dead_lettered, 0);
        assert_eq!(summary.events_emitted, after_flat);

        let filter = op(&summary, "drop_thirds");
        assert_eq!(filter.events_processed, summary.events_ingested);
        assert_eq!(filter.events_out, kept);
        assert_eq!(filter.parallelism, p);
        let double = op(&summary, "double");
        assert_eq!((double.events_processed, double.events_out), (kept, kept));
        let mirror = op(&summary, "mirror_tens");
        assert_eq!(
            (mirror.events_processed, mirror.events_out),
            (kept, after_flat)
        );
        let agg = op(&summary, "count_per_key");
        assert_eq!(
            (agg.events_processed, agg.events_out),
            (after_flat, after_flat)
        );
        let sink = op_prefixed(&summary, "collect");
        assert_eq!(sink.events_processed, after_flat);

        let key_by = summary
            .exchanges
            .iter()
            .find(|e| e.name == "key_by")
            .expect("key_by exchange");
        assert_eq!(key_by.events_sent, after_flat);
        assert_eq!(key_by.queues, p);
    }
}

#[test]
fn source_events_processed_counts_records_read() {
    let mut job = Job::new("source-metrics");
    job.from_vec("numbers", (0..100i64).collect())
        .sink(CountingSink::new());
    let summary = job.run(JobConfig::default().parallelism(2)).unwrap();
    let source = op_prefixed(&summary, "numbers");
    assert_eq!(source.events_out, 100);
    assert_eq!(source.events_processed, 100, "{summary}");
}

/// Records the largest batch it was handed.
#[derive(Clone)]
struct MaxBatch(Arc<AtomicUsize>);

impl Operator for MaxBatch {
    type In = u32;
    type Out = u32;
    fn process_batch(
        &mut self,
        batch: Vec<u32>,
        _ctx: &mut TaskContext,
        out: &mut Output<u32>,
    ) -> Result<()> {
        self.0.fetch_max(batch.len(), Ordering::Relaxed);
        out.emit_batch(batch);
        Ok(())
    }
}

#[test]
fn main_output_batches_respect_batch_size() {
    let main_max = Arc::new(AtomicUsize::new(0));
    let mut job = Job::new("batch-cut");
    let out = job
        .from_vec("n", (0..400u32).collect())
        .flat_map(|x| [x, x, x])
        .apply("max_batch", MaxBatch(main_max.clone()))
        .collect();
    job.run(JobConfig::default().parallelism(1).batch_size(4))
        .unwrap();
    assert_eq!(out.len(), 1200);
    let max = main_max.load(Ordering::Relaxed);
    assert!((1..=4).contains(&max), "largest main batch: {max}");
}

#[test]
fn side_output_batches_respect_batch_size() {
    let side_max = Arc::new(AtomicUsize::new(0));
    let tag = OutputTag::<u32>::new("triple");
    let mut job = Job::new("side-batch-cut");
    let main = job.from_vec("n", (0..400u32).collect()).process({
        let tag = tag.clone();
        move |x, out: &mut Output<u32>| {
            for _ in 0..3 {
                out.side(&tag, x);
            }
        }
    });
    let side = main
        .side_output(&tag)
        .apply("max_batch", MaxBatch(side_max.clone()))
        .collect();
    main.sink(CountingSink::new());
    job.run(JobConfig::default().parallelism(1).batch_size(4))
        .unwrap();
    assert_eq!(side.len(), 1200);
    let max = side_max.load(Ordering::Relaxed);
    assert!(max <= 4, "largest side-output batch: {max} > batch_size 4");
}

#[test]
fn live_metrics_of_a_running_filter_stay_sane() {
    let sink = CountingSink::new();
    let mut job = Job::new("live-metrics");
    job.source("gen", Generator::new(|i| i))
        .filter(|_| true)
        .sink(sink.clone());
    let handle = job
        .start(JobConfig::default().parallelism(2).batch_size(1))
        .unwrap();
    let deadline = Instant::now() + Duration::from_millis(1500);
    let mut problem = None;
    let mut samples = 0u64;
    while Instant::now() < deadline && problem.is_none() {
        samples += 1;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handle.metrics())) {
            Ok(m) if m.events_filtered > m.events_ingested => {
                problem = Some(format!(
                    "events_filtered {} > events_ingested {}",
                    m.events_filtered, m.events_ingested
                ))
            }
            Ok(_) => {}
            Err(_) => problem = Some("JobHandle::metrics() panicked".to_string()),
        }
    }
    handle.stop();
    // After a panic inside `summary` the registry's lock is poisoned and `join` (which reads
    // the summary) panics too; catch it so the job's threads are always drained first.
    let joined = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handle.join()));
    assert!(problem.is_none(), "after {samples} samples: {problem:?}");
    let summary = joined.expect("join panicked").unwrap();
    assert_eq!(summary.events_filtered, 0);
    assert_eq!(summary.events_emitted, sink.count());
}

#[test]
fn stop_drains_and_cancel_aborts_an_unbounded_job() {
    // stop: everything read is processed, join is Ok.
    let sink = CountingSink::new();
    let mut job = Job::new("stop");
    job.source("gen", Generator::new(|i| i))
        .key_by(|x| x % 3)
        .partitioned()
        .sink(sink.clone());
    let handle = job
        .start(JobConfig::default().parallelism(2).batch_size(256))
        .unwrap();
    while sink.count() < 10_000 {
        thread::sleep(Duration::from_millis(1));
    }
    handle.stop();
    let summary = within_deadline(move || handle.join()).unwrap();
    assert!(summary.events_ingested >= 10_000);
    assert_eq!(summary.events_emitted, summary.events_ingested);
    assert_eq!(sink.count(), summary.events_ingested);

    // cancel: every task stops promptly and join reports Cancelled.
    let mut job = Job::new("cancel");
    job.source("gen", Generator::new(|i| i))
        .key_by(|x| x % 3)
        .partitioned()
        .sink(CountingSink::new());
    let handle = job
        .start(JobConfig::default().parallelism(2).queue_capacity(2))
        .unwrap();
    thread::sleep(Duration::from_millis(50));
    assert!(!handle.is_finished());
    handle.cancel();
    let result = within_deadline(move || handle.join().map(|_| ()));
    assert!(matches!(result, Err(StreamError::Cancelled)), "{result:?}");
}

/// The name of the thread running the caller: which task a record went through.
fn thread_name() -> String {
    thread::current().name().unwrap_or_default().to_string()
}

#[test]
fn an_exchange_with_one_sender_and_one_receiver_runs_on_the_senders_thread_unless_told_not_to() {
    for (parallelism, fuse) in [(1, true), (1, false), (2, true)] {
        let out = within_deadline(move || {
            let mut job = Job::new("fusion");
            let out = job
                .source("gen", Generator::new(|i| i).bounded(2000))
                .map(|x| (x, thread_name()))
                .key_by(|t| t.0 % 3)
                .reduce(|a, b| if a.0 > b.0 { a } else { b })
                .map(|(x, source)| (x, source, thread_name()))
                .rebalance()
                .map(|(x, source, keyed)| (x, source, keyed, thread_name()))
                .collect();
            let config = JobConfig::default()
                .parallelism(parallelism)
                .batch_size(64)
                .fuse_single_exchanges(fuse);
            let summary = job.run(config).unwrap();
            assert_eq!(summary.events_ingested, 2000);
            out.take()
        });
        assert_eq!(out.len(), 2000, "p={parallelism} fuse={fuse}");
        // The last running maximum of every key is its largest number.
        let mut finals: Vec<u64> = out.iter().map(|r| r.0).collect();
        finals.sort_unstable();
        finals.dedup();
        assert!(finals.ends_with(&[1997, 1998, 1999]), "p={parallelism}");
        for (x, source, keyed, rebalanced) in &out {
            let what = format!("record {x}, p={parallelism} fuse={fuse}");
            if parallelism == 1 && fuse {
                assert_eq!(keyed, source, "{what}");
                assert_eq!(rebalanced, source, "{what}");
            } else {
                assert_ne!(keyed, source, "{what}");
                assert_ne!(rebalanced, keyed, "{what}");
            }
        }
    }
}

#[test]
fn a_join_of_one_source_with_itself_runs_on_the_sources_thread_at_parallelism_one() {
    use streamcore::join::JoinType;
    type Numbered = (u64, String);
    for (parallelism, fuse) in [(1, true), (1, false), (2, true)] {
        let out = within_deadline(move || {
            let mut job = Job::new("self-join");
            let numbers = job
                .source("gen", Generator::new(|i| i).bounded(1000))
                .map(|x| (x, thread_name()));
            let even = numbers.clone().filter(|n: &Numbered| n.0 % 2 == 0);
            let odd = numbers.filter(|n: &Numbered| n.0 % 2 == 1);
            let out = even
                .connect(odd)
                .key_by(|a: &Numbered| a.0 / 2, |b: &Numbered| b.0 / 2)
                .join(JoinType::Inner, |a, b| {
                    let (a, b) = (a.expect("inner"), b.expect("inner"));
                    (a.0, b.0, a.1.clone(), b.1.clone(), thread_name())
                })
                .collect();
            let config = JobConfig::default()
                .parallelism(parallelism)
                .batch_size(32)
                .fuse_single_exchanges(fuse);
            job.run(config).unwrap();
            streamcore::changelog::apply_to(out.take())
        });
        let what = format!("p={parallelism} fuse={fuse}");
        let mut pairs: Vec<(u64, u64)> = out.iter().map(|r| (r.0, r.1)).collect();
        pairs.sort_unstable();
        assert_eq!(
            pairs,
            (0..500).map(|i| (2 * i, 2 * i + 1)).collect::<Vec<_>>(),
            "{what}"
        );
        for (a, _, left, right, joined) in &out {
            if parallelism == 1 {
                assert_eq!(left, right, "{what}: both sides from one task, record {a}");
            }
            if parallelism == 1 && fuse {
                assert_eq!(joined, left, "{what}: record {a}");
            } else {
                assert_ne!(joined, left, "{what}: record {a}");
            }
        }
    }
}
