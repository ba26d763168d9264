//! Error policies: failing user functions under `fail` and `dead-letter`, configuration errors,
//! panics, and errors that must stop a job whose other branch would run forever.

use serde::Serialize;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;
use streamcore::sink::{CollectSink, CountingSink};
use streamcore::source::Generator;
use streamcore::{
    ErrorPolicy, Job, JobConfig, JobHandle, Output, OutputTag, StreamError, Timestamp,
};

/// Waits for the job's end, failing the test if it takes more than 30 s: a hang guard, not a
/// performance assertion.
fn join_within_deadline(handle: JobHandle) -> streamcore::Result<streamcore::JobSummary> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(handle.join());
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(r) => r,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("job did not stop within 30 s"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("join panicked"),
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
struct RawPayment {
    id: u64,
    amount: String,
}

/// `n` payments; those whose id is a multiple of 7 have an amount that does not parse.
fn payments(n: u64) -> Vec<RawPayment> {
    (0..n)
        .map(|id| RawPayment {
            id,
            amount: if id % 7 == 0 {
                format!("{id}.00 EUR")
            } else {
                format!("{}", id * 10)
            },
        })
        .collect()
}

fn is_bad(p: &RawPayment) -> bool {
    p.id % 7 == 0
}

fn parse_amount(p: &RawPayment) -> Result<(u64, i64), String> {
    p.amount
        .parse::<i64>()
        .map(|a| (p.id, a))
        .map_err(|e| format!("amount {:?} of payment {}: {e}", p.amount, p.id))
}

#[test]
fn fail_policy_stops_the_job_naming_the_operator_and_the_error() {
    for p in [1, 2, 3] {
        // Exactly one bad record, so the reported error is determined.
        let mut input = payments(500);
        for r in &mut input {
            if r.id != 343 && is_bad(r) {
                r.amount = "0".into();
            }
        }
        let mut job = Job::new("payments");
        let out = job
            .from_vec("payments", input)
            .try_map(parse_amount)
            .name("parse_amount")
            .collect();
        let err = job
            .run(JobConfig::default().parallelism(p).batch_size(16))
            .unwrap_err();
        match &err {
            StreamError::UserFunction {
                operator,
                record,
                reason,
            } => {
                assert_eq!(operator, "parse_amount");
                assert_eq!(record, r#"record {"id":343,"amount":"343.00 EUR"}"#);
                assert_eq!(
                    reason,
                    "amount \"343.00 EUR\" of payment 343: invalid digit found in string"
                );
            }
            other => panic!("parallelism {p}: expected UserFunction, got {other:?}"),
        }
        assert_eq!(
            err.to_string(),
            "operator `parse_amount` failed on record {\"id\":343,\"amount\":\"343.00 EUR\"}: \
             amount \"343.00 EUR\" of payment 343: invalid digit found in string"
        );
        // The record that failed never reaches the sink.
        assert!(out.take().iter().all(|(id, _)| *id != 343));
    }
}

#[test]
fn dead_letter_policy_diverts_bad_records_and_counts_them() {
    for p in [1, 2, 4] {
        let input = payments(1000);
        let bad: Vec<RawPayment> = input.iter().filter(|r| is_bad(r)).cloned().collect();
        let before = Timestamp::now();

        let mut job = Job::new("payments");
        let (dl_sink, dead) = CollectSink::new();
        job.dead_letters(dl_sink);
        let good = job
            .from_vec("payments", input.clone())
            .try_map(parse_amount)
            .name("parse_amount")
            .collect();
        let summary = job
            .run(
                JobConfig::default()
                    .parallelism(p)
                    .batch_size(10)
                    .error_policy(ErrorPolicy::DeadLetter),
            )
            .unwrap();
        let after = Timestamp::now();

        let mut good = good.take();
        good.sort_unstable();
        let want: Vec<(u64, i64)> = input
            .iter()
            .filter(|r| !is_bad(r))
            .map(|r| (r.id, r.id as i64 * 10))
            .collect();
        assert_eq!(good, want, "parallelism {p}");

        let mut dead = dead.take();
        dead.sort_by(|a, b| a.raw.cmp(&b.raw));
        let mut want_raw: Vec<String> = bad
            .iter()
            .map(|r| format!(r#"{{"id":{},"amount":"{}"}}"#, r.id, r.amount))
            .collect();
        want_raw.sort();
        assert_eq!(
            dead.iter().map(|d| d.raw.clone()).collect::<Vec<_>>(),
            want_raw,
            "each bad record is dead-lettered once, as its JSON"
        );
        for d in &dead {
            let record: serde_json::Value = serde_json::from_str(&d.raw).unwrap();
            let id = record["id"].as_u64().unwrap();
            assert_eq!(
                d.reason,
                format!("amount \"{id}.00 EUR\" of payment {id}: invalid digit found in string")
            );
            assert_eq!(
                d.origin,
                format!("operator `parse_amount` on record {}", d.raw)
            );
            assert!(before <= d.rejected_at && d.rejected_at <= after);
        }

        let n_bad = bad.len() as u64;
        assert_eq!(n_bad, 143);
        assert_eq!(summary.events_ingested, 1000);
        assert_eq!(summary.events_failed, n_bad);
        assert_eq!(summary.events_dead_lettered, n_bad);
        assert_eq!(summary.events_filtered, 0);
        assert_eq!(summary.events_emitted, 1000 - n_bad);
        let op = summary
            .operators
            .iter()
            .find(|o| o.name == "parse_amount")
            .expect("parse_amount in summary");
        assert_eq!(op.events_processed, 1000);
        assert_eq!(op.events_out, 1000 - n_bad);
        assert_eq!(op.events_failed, n_bad);
    }
}

#[test]
fn filtered_and_failed_records_are_counted_apart() {
    let input = payments(700);
    let mut job = Job::new("payments");
    let (dl_sink, dead) = CollectSink::new();
    job.dead_letters(dl_sink);
    let out = job
        .from_vec("payments", input)
        .filter(|r| r.id % 2 == 0)
        .try_map(parse_amount)
        .name("parse_amount")
        .collect();
    let summary = job
        .run(
            JobConfig::default()
                .parallelism(2)
                .error_policy(ErrorPolicy::DeadLetter),
        )
        .unwrap();
    // Even ids: 350; even multiples of 7 (multiples of 14) below 700: 50.
    assert_eq!(summary.events_filtered, 350);
    assert_eq!(summary.events_failed, 50);
    assert_eq!(summary.events_dead_lettered, 50);
    assert_eq!(dead.len(), 50);
    assert_eq!(out.len(), 300);
    assert_eq!(summary.events_emitted, 300);
}

#[test]
fn dead_letter_policy_without_a_dead_letter_sink_is_a_config_error_at_start() {
    let mut job = Job::new("no-dlq");
    job.from_vec("payments", payments(10))
        .try_map(parse_amount)
        .sink(CountingSink::new());
    match job.start(JobConfig::default().error_policy(ErrorPolicy::DeadLetter)) {
        Err(StreamError::Config(msg)) => {
            assert!(msg.contains("dead-letter"), "{msg}");
        }
        Err(other) => panic!("expected a Config error, got {other:?}"),
        Ok(handle) => {
            let result = handle.join();
            panic!("the job started; it ended with {result:?}");
        }
    }
}

#[test]
fn a_dead_letter_sink_does_not_soften_the_fail_policy() {
    let mut job = Job::new("dlq-but-fail");
    let (dl_sink, dead) = CollectSink::new();
    job.dead_letters(dl_sink);
    job.from_vec("payments", payments(100))
        .try_map(parse_amount)
        .name("parse_amount")
        .sink(CountingSink::new());
    let err = job.run(JobConfig::default().parallelism(2)).unwrap_err();
    assert!(
        matches!(&err, StreamError::UserFunction { operator, .. } if operator == "parse_amount"),
        "{err:?}"
    );
    assert!(dead.is_empty());
}

#[test]
fn a_panic_in_a_user_function_fails_the_job_promptly() {
    // Unbounded source: without the panic stopping every task, the job would never end.
    let mut job = Job::new("panics");
    job.source("numbers", Generator::new(|i| i))
        .key_by(|x| x % 8)
        .partitioned()
        .map(|x| {
            if x == 5000 {
                panic!("boom at {x}");
            }
            x
        })
        .sink(CountingSink::new());
    let handle = job
        .start(JobConfig::default().parallelism(2).batch_size(64))
        .unwrap();
    match join_within_deadline(handle) {
        Err(StreamError::Panic {
            task,
            subtask,
            message,
        }) => {
            assert_eq!(message, "boom at 5000");
            assert!(subtask < 2, "subtask {subtask}");
            // The panicking map is fused behind the key_by exchange: that stage's head.
            assert!(task.starts_with("key_by"), "task {task}");
        }
        other => panic!("expected a Panic error, got {other:?}"),
    }
}

#[test]
fn a_panic_in_a_source_stage_at_parallelism_two_fails_the_job() {
    let mut job = Job::new("panics");
    job.source("numbers", Generator::new(|i| i))
        .map(|x| {
            if x == 12_345 {
                panic!("boom at {x}");
            }
            x
        })
        .sink(CountingSink::new());
    let handle = job.start(JobConfig::default().parallelism(2)).unwrap();
    match join_within_deadline(handle) {
        Err(StreamError::Panic { message, task, .. }) => {
            assert_eq!(message, "boom at 12345");
            assert!(task.starts_with("numbers"), "task {task}");
        }
        other => panic!("expected a Panic error, got {other:?}"),
    }
}

#[test]
fn an_error_in_a_bounded_branch_stops_an_unbounded_branch() {
    for p in [1, 2] {
        let mut job = Job::new("two-branches");
        // Branch 1: runs forever on its own.
        job.source("ticks", Generator::new(|i| i))
            .key_by(|x| x % 4)
            .partitioned()
            .sink(CountingSink::new());
        // Branch 2: fails on its first bad payment.
        job.from_vec("payments", payments(50))
            .try_map(parse_amount)
            .name("parse_amount")
            .sink(CountingSink::new());
        let handle = job
            .start(JobConfig::default().parallelism(p).queue_capacity(2))
            .unwrap();
        match join_within_deadline(handle) {
            Err(StreamError::UserFunction {
                operator, reason, ..
            }) => {
                assert_eq!(operator, "parse_amount");
                assert!(reason.contains("invalid digit"), "{reason}");
            }
            other => panic!("parallelism {p}: expected UserFunction, got {other:?}"),
        }
    }
}

#[test]
fn an_error_in_a_side_branch_of_an_unbounded_source_stops_the_job() {
    let audit = OutputTag::<RawPayment>::new("audit");
    let mut job = Job::new("fan-out");
    let main = job
        .source(
            "payments",
            Generator::new(|i| RawPayment {
                id: i,
                amount: if i == 20_000 {
                    "lots".to_string()
                } else {
                    i.to_string()
                },
            }),
        )
        .process({
            let audit = audit.clone();
            move |r: RawPayment, out: &mut Output<u64>| {
                out.emit(r.id);
                out.side(&audit, r);
            }
        });
    // The side branch crosses an exchange and fails there; the main branch is healthy.
    main.side_output(&audit)
        .key_by(|r| r.id % 3)
        .partitioned()
        .try_map(parse_amount)
        .name("audit_amount")
        .sink(CountingSink::new());
    main.key_by(|id| id % 5)
        .partitioned()
        .sink(CountingSink::new());
    let handle = job
        .start(JobConfig::default().parallelism(2).queue_capacity(4))
        .unwrap();
    match join_within_deadline(handle) {
        Err(StreamError::UserFunction {
            operator, reason, ..
        }) => {
            assert_eq!(operator, "audit_amount");
            assert_eq!(
                reason,
                "amount \"lots\" of payment 20000: invalid digit found in string"
            );
        }
        other => panic!("expected UserFunction, got {other:?}"),
    }
}

/// Keyed process functions cannot return an error; they reject through their output, and the
/// rejection follows the policy like a failing `try_map`.
#[derive(Clone)]
struct RunningTotal;

impl streamcore::state::KeyedProcessFunction<u64, RawPayment> for RunningTotal {
    type State = i64;
    type Out = (u64, i64);
    fn process(
        &mut self,
        p: RawPayment,
        ctx: &mut streamcore::state::KeyedContext<'_, u64, i64>,
        out: &mut Output<(u64, i64)>,
    ) {
        match p.amount.parse::<i64>() {
            Ok(a) => {
                *ctx.state() += a;
                out.emit((*ctx.key(), *ctx.state()));
            }
            Err(e) => out.reject(&p, format!("amount {:?}: {e}", p.amount)),
        }
    }
}

#[test]
fn a_keyed_process_function_rejects_a_record_under_either_policy() {
    // fail: the job stops naming the operator, the record and the reason.
    let mut job = Job::new("totals");
    job.from_vec("payments", payments(20))
        .key_by(|p| p.id % 3)
        .process(RunningTotal)
        .name("running_total")
        .collect();
    let err = job
        .run(JobConfig::default().parallelism(2))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("operator `running_total` failed on record {\"id\":"),
        "{err}"
    );
    assert!(err.contains(".00 EUR\"}: amount \""), "{err}");

    // dead-letter: every bad payment is a dead letter, the totals skip them.
    let mut job = Job::new("totals");
    let (sink, letters) = CollectSink::new();
    job.dead_letters(sink);
    let totals = job
        .from_vec("payments", payments(100))
        .key_by(|p| p.id % 3)
        .process(RunningTotal)
        .name("running_total")
        .collect();
    let summary = job
        .run(
            JobConfig::default()
                .parallelism(2)
                .error_policy(ErrorPolicy::DeadLetter),
        )
        .unwrap();
    let bad = payments(100).iter().filter(|p| is_bad(p)).count();
    assert_eq!(summary.events_dead_lettered, bad as u64);
    assert_eq!(totals.len(), 100 - bad);
    let mut letters = letters.take();
    letters.sort_by_key(|l| l.raw.len());
    assert!(letters.iter().all(
        |l| l.origin.starts_with("operator `running_total` on record {")
            && l.raw.contains("EUR")
            && l.reason.contains("invalid digit")
    ));
}

#[test]
fn a_broadcast_process_function_rejects_through_its_output() {
    #[derive(Clone)]
    struct Limit;
    impl streamcore::join::BroadcastProcessFunction<i64, i64> for Limit {
        type State = Option<i64>;
        type Out = i64;
        fn process(&mut self, amount: i64, limit: &Option<i64>, out: &mut Output<i64>) {
            match limit {
                Some(l) if amount <= *l => out.emit(amount),
                Some(l) => out.reject(&amount, format!("over the limit {l}")),
                None => out.reject(&amount, "no limit known yet"),
            }
        }
        fn process_broadcast(&mut self, limit: i64, state: &mut Option<i64>, _: &mut Output<i64>) {
            *state = Some(limit);
        }
    }
    // Every amount is over the limit, whether or not the limit arrived first: each is rejected.
    let build = |job: &mut Job| {
        let limits = job.from_vec("limits", vec![100i64]);
        job.from_vec("amounts", vec![1_000i64, 2_000, 3_000])
            .broadcast_process(limits, Limit)
            .name("limit")
            .collect()
    };
    let mut job = Job::new("limits");
    build(&mut job);
    let err = job.run(JobConfig::default().parallelism(2)).unwrap_err();
    assert!(
        matches!(&err, StreamError::UserFunction { operator, .. } if operator == "limit"),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("operator `limit` failed on record "),
        "{err}"
    );

    let mut job = Job::new("limits");
    let (sink, letters) = CollectSink::new();
    job.dead_letters(sink);
    let passed = build(&mut job);
    let summary = job
        .run(
            JobConfig::default()
                .parallelism(2)
                .error_policy(ErrorPolicy::DeadLetter),
        )
        .unwrap();
    assert!(passed.is_empty());
    assert_eq!(summary.events_dead_lettered, 3);
    let mut raw: Vec<String> = letters.take().into_iter().map(|l| l.raw).collect();
    raw.sort();
    assert_eq!(raw, vec!["1000", "2000", "3000"]);
}
