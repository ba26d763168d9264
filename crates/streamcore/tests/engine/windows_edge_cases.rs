//! Deterministic edge cases of windows: boundaries, the moment a window fires, session
//! merging (also by a late record), allowed lateness and late side outputs, count and global
//! windows, `window_all`, sources without watermarks, idle sources, and the built-in
//! aggregates run through a job.
//!
//! Most tests run at parallelism 1 with batch size 1: one reader, one record per batch, so the
//! watermark moves after every record (to `t - 1` under `monotonous()`, to `max - d - 1` with a
//! delay `d`) and the output order is deterministic. Every test also checks the window
//! operator's metrics: `windows_fired` equals the results emitted, late records are counted,
//! and `state_keys` is back to 0 once the input ended.

use std::time::{Duration, Instant};
use streamcore::metrics::OperatorSummary;
use streamcore::window::aggregates::{
    ApproxCountDistinct, Avg, Count, CountDistinct, Max, Min, Percentiles, Sum, TopN,
};
use streamcore::window::{Trigger, TriggerAction, Window, WindowResult, Windows};
use streamcore::{
    Job, JobConfig, JobSummary, Output, OutputTag, Result, Source, SourcePoll, SourceReader,
    TaskContext, Timestamp, WatermarkStrategy,
};

/// (event time, key, value).
type Ev = (Timestamp, char, i64);
/// (key, window start, window end, value).
type Row<V> = (char, i64, i64, V);

fn ev(t: i64, key: char, value: i64) -> Ev {
    (Timestamp(t), key, value)
}

fn ms(x: u64) -> Duration {
    Duration::from_millis(x)
}

/// One reader, one record per batch: the watermark follows every record.
fn one_by_one() -> JobConfig {
    JobConfig::default().parallelism(1).batch_size(1)
}

fn op<'a>(summary: &'a JobSummary, name: &str) -> &'a OperatorSummary {
    summary
        .operators
        .iter()
        .find(|o| o.name == name)
        .unwrap_or_else(|| panic!("no operator {name} in {summary}"))
}

fn rows<V>(results: Vec<WindowResult<char, V>>) -> Vec<Row<V>> {
    results
        .into_iter()
        .map(|r| {
            (
                r.key,
                r.window.start.millis(),
                r.window.end.millis(),
                r.value,
            )
        })
        .collect()
}

/// A `process` window function: the window's values in arrival order.
fn values(key: &char, w: Window, events: &[Ev], out: &mut Output<Row<Vec<i64>>>) {
    out.emit((
        *key,
        w.start.millis(),
        w.end.millis(),
        events.iter().map(|e| e.2).collect(),
    ));
}

/// Checks the metrics every window test shares: one `windows_fired` per result, the late
/// records, and empty state after the end of the input.
fn check_window_metrics(summary: &JobSummary, name: &str, results: usize, late: u64) {
    let o = op(summary, name);
    assert_eq!(o.windows_fired, results as u64, "windows_fired of {name}");
    assert_eq!(o.late_records, late, "late_records of {name}");
    assert_eq!(o.state_keys, 0, "state of {name} after the end");
    assert_eq!(o.state_bytes, 0, "state bytes of {name} after the end");
}

/// Runs `events` (one reader, one record per batch, watermarks by `strategy`) through
/// `key_by(key).window(windows)` with the `values` function; returns the results in order.
fn run_values(
    events: Vec<Ev>,
    strategy: WatermarkStrategy,
    windows: Windows,
) -> (Vec<Row<Vec<i64>>>, JobSummary) {
    let mut job = Job::new("values");
    let out = job
        .from_vec("events", events)
        .with_watermarks(strategy)
        .key_by(|e| e.1)
        .window(windows)
        .process(values)
        .name("win")
        .collect();
    let summary = job.run(one_by_one()).unwrap();
    let got = out.take();
    check_window_metrics(&summary, "win", got.len(), summary.events_late);
    (got, summary)
}

#[test]
fn tumbling_window_boundaries() {
    let events = vec![
        ev(-10, 'a', 1),
        ev(-1, 'a', 2),
        ev(0, 'a', 3),
        ev(9, 'a', 4),
        ev(10, 'a', 5),
        ev(19, 'a', 6),
        ev(20, 'a', 7),
    ];
    let (got, summary) = run_values(
        events.clone(),
        WatermarkStrategy::monotonous(),
        Windows::tumbling(ms(10)),
    );
    // t = end - 1 is the window's last timestamp, t = end the next window's first; windows
    // fire in order as the watermark passes them.
    assert_eq!(
        got,
        vec![
            ('a', -10, 0, vec![1, 2]),
            ('a', 0, 10, vec![3, 4]),
            ('a', 10, 20, vec![5, 6]),
            ('a', 20, 30, vec![7]),
        ]
    );
    assert_eq!(summary.events_late, 0);

    // Offset 3: windows [..., -7) [-7, 3) [3, 13) [13, 23) ...
    let (got, _) = run_values(
        events,
        WatermarkStrategy::monotonous(),
        Windows::tumbling(ms(10)).with_offset(ms(3)),
    );
    assert_eq!(
        got,
        vec![
            ('a', -17, -7, vec![1]),
            ('a', -7, 3, vec![2, 3]),
            ('a', 3, 13, vec![4, 5]),
            ('a', 13, 23, vec![6, 7]),
        ]
    );
}

#[test]
fn sliding_window_boundaries_with_a_slide_that_does_not_divide_the_size() {
    // Size 10 every 4: starts 0, 4, 8, ... A record at t is in every [s, s + 10) with
    // s <= t < s + 10.
    let events = vec![ev(3, 'a', 3), ev(4, 'a', 4), ev(9, 'a', 9), ev(10, 'a', 10)];
    let (mut got, _) = run_values(
        events,
        WatermarkStrategy::monotonous(),
        Windows::sliding(ms(10), ms(4)),
    );
    got.sort();
    assert_eq!(
        got,
        vec![
            ('a', -4, 6, vec![3, 4]),
            ('a', 0, 10, vec![3, 4, 9]),
            ('a', 4, 14, vec![4, 9, 10]),
            ('a', 8, 18, vec![9, 10]),
        ]
    );
}

#[test]
fn a_window_fires_when_the_watermark_reaches_its_last_timestamp() {
    let late = OutputTag::new("late");
    let run = |events: Vec<Ev>, strategy: WatermarkStrategy| {
        let mut job = Job::new("firing");
        let counts = job
            .from_vec("events", events)
            .with_watermarks(strategy)
            .key_by(|e| e.1)
            .window(Windows::tumbling(ms(10)))
            .late_output(&late)
            .aggregate(Count)
            .name("win");
        let late_events = counts.side_output(&late).collect();
        let counts = counts.collect();
        let summary = job.run(one_by_one()).unwrap();
        let mut got = rows(counts.take());
        got.sort();
        check_window_metrics(&summary, "win", got.len(), summary.events_late);
        (got, late_events.take(), summary)
    };

    // Monotonous: the watermark after a record at t is t - 1.
    let (got, late_events, summary) = run(
        vec![
            ev(0, 'a', 0),
            ev(9, 'b', 0),  // watermark 8: [0, 10) is still open...
            ev(9, 'a', 0),  // ...so this one counts
            ev(10, 'b', 0), // watermark 9 = end - 1: [0, 10) fires
            ev(9, 'a', 0),  // late
        ],
        WatermarkStrategy::monotonous(),
    );
    assert_eq!(
        got,
        vec![('a', 0, 10, 2), ('b', 0, 10, 1), ('b', 10, 20, 1)]
    );
    assert_eq!(late_events, vec![ev(9, 'a', 0)]);
    assert_eq!(summary.events_late, 1);

    // Delay 5: the watermark is max - 6.
    let (got, late_events, _) = run(
        vec![
            ev(0, 'a', 1),
            ev(14, 'b', 1), // watermark 8
            ev(9, 'a', 2),  // on time
            ev(15, 'b', 2), // watermark 9: [0, 10) fires
            ev(9, 'a', 3),  // late
            ev(10, 'a', 4), // on time, in [10, 20)
        ],
        WatermarkStrategy::bounded_out_of_orderness(ms(5)),
    );
    assert_eq!(
        got,
        vec![('a', 0, 10, 2), ('a', 10, 20, 1), ('b', 10, 20, 2)]
    );
    assert_eq!(late_events, vec![ev(9, 'a', 3)]);
}

#[test]
fn sessions_merge_records_at_most_the_gap_apart() {
    let (got, summary) = run_values(
        vec![
            ev(0, 'a', 1),
            ev(10, 'a', 2), // exactly the gap after 0: same session
            ev(21, 'a', 3), // 11 after 10: a new session
            ev(5, 'b', 4),  // keys have their own sessions
            ev(40, 'a', 5),
            ev(45, 'a', 6),
        ],
        // Delay 10 so that the record of b at 5 is not late.
        WatermarkStrategy::bounded_out_of_orderness(ms(10)),
        Windows::session(ms(10)),
    );
    // Sessions fire in the order of their ends.
    assert_eq!(
        got,
        vec![
            ('b', 5, 15, vec![4]),
            ('a', 0, 20, vec![1, 2]),
            ('a', 21, 31, vec![3]),
            ('a', 40, 55, vec![5, 6]),
        ]
    );
    assert_eq!(summary.events_late, 0);
}

#[test]
fn a_session_that_fired_is_not_reopened_by_a_record_exactly_the_gap_later() {
    // As in Flink: [0, 10) fires at watermark 9 and is purged (no lateness); the record at 10
    // is not late (10 > 9) and starts a session of its own, though 10 - 0 <= gap.
    let (got, summary) = run_values(
        vec![ev(0, 'a', 1), ev(10, 'b', 2), ev(10, 'a', 3)],
        WatermarkStrategy::monotonous(),
        Windows::session(ms(10)),
    );
    // a's first session fired at watermark 9, before the end; the rest fire at the end.
    assert_eq!(got[0], ('a', 0, 10, vec![1]));
    let mut rest = got[1..].to_vec();
    rest.sort();
    assert_eq!(rest, vec![('a', 10, 20, vec![3]), ('b', 10, 20, vec![2])]);
    assert_eq!(summary.events_late, 0);
}

#[test]
fn a_late_record_bridging_two_fired_sessions_re_emits_the_merged_session() {
    let late = OutputTag::new("late");
    let mut job = Job::new("bridge");
    let sessions = job
        .from_vec(
            "events",
            vec![
                ev(0, 'a', 1),
                ev(20, 'a', 2), // watermark 19: a [0, 10) fires
                ev(40, 'b', 5), // watermark 39: a [20, 30) fires
                ev(10, 'a', 3), // late but within lateness: touches both sessions
                ev(200, 'b', 6),
                ev(15, 'a', 7), // past the lateness of everything: late
            ],
        )
        .with_watermarks(WatermarkStrategy::monotonous())
        .key_by(|e| e.1)
        .window(Windows::session(ms(10)))
        .allowed_lateness(ms(100))
        .late_output(&late)
        .process(values)
        .name("win");
    let late_events = sessions.side_output(&late).collect();
    let sessions = sessions.collect();
    let summary = job.run(one_by_one()).unwrap();
    let got = sessions.take();
    // Merged accumulators hold the values in no particular order.
    let sorted_values: Vec<Row<Vec<i64>>> = got
        .iter()
        .cloned()
        .map(|(k, s, e, mut v)| {
            v.sort_unstable();
            (k, s, e, v)
        })
        .collect();
    assert_eq!(
        sorted_values,
        vec![
            ('a', 0, 10, vec![1]),
            ('a', 20, 30, vec![2]),
            ('a', 0, 30, vec![1, 2, 3]),
            ('b', 40, 50, vec![5]),
            ('b', 200, 210, vec![6]),
        ]
    );
    assert_eq!(late_events.take(), vec![ev(15, 'a', 7)]);
    assert_eq!(summary.events_late, 1);
    check_window_metrics(&summary, "win", got.len(), 1);
    assert_eq!(op(&summary, "win").late_redirected, 1);
}

#[test]
fn late_records_within_lateness_update_and_re_emit_tumbling_windows() {
    let late = OutputTag::new("late");
    let mut job = Job::new("lateness");
    let counts = job
        .from_vec(
            "events",
            vec![
                ev(1, 'a', 0),
                ev(5, 'a', 0),
                ev(12, 'b', 0), // watermark 11: a [0, 10) = 2 fires
                ev(3, 'a', 0),  // within lateness: a [0, 10) = 3 at once
                ev(35, 'b', 0), // watermark 34: b [10, 20) fires, [0, 10) expires (9 + 20 <= 34)
                ev(4, 'a', 0),  // past lateness: late
                ev(15, 'b', 0), // within lateness: b [10, 20) = 2 at once
            ],
        )
        .with_watermarks(WatermarkStrategy::monotonous())
        .key_by(|e| e.1)
        .window(Windows::tumbling(ms(10)))
        .allowed_lateness(ms(20))
        .late_output(&late)
        .aggregate(Count)
        .name("win");
    let late_events = counts.side_output(&late).collect();
    let counts = counts.collect();
    let summary = job.run(one_by_one()).unwrap();
    let got = rows(counts.take());
    // The earlier result and the updated one both appear, in that order.
    assert_eq!(
        got,
        vec![
            ('a', 0, 10, 2),
            ('a', 0, 10, 3),
            ('b', 10, 20, 1),
            ('b', 10, 20, 2),
            ('b', 30, 40, 1),
        ]
    );
    assert_eq!(late_events.take(), vec![ev(4, 'a', 0)]);
    assert_eq!(summary.events_late, 1);
    check_window_metrics(&summary, "win", got.len(), 1);
    assert_eq!(op(&summary, "win").late_redirected, 1);
}

#[test]
fn late_records_within_lateness_update_and_re_emit_sliding_windows() {
    let mut job = Job::new("lateness");
    let counts = job
        .from_vec(
            "events",
            vec![
                ev(1, 'a', 0),
                ev(12, 'a', 0), // watermark 11: [-5, 5) and [0, 10) fire
                ev(7, 'a', 0),  // [0, 10) fired (re-emitted at once), [5, 15) is open
                ev(30, 'a', 0), // watermark 29: [5, 15), [10, 20) fire; expire up to [10, 20)
                ev(8, 'a', 0),  // [0, 10) and [5, 15) expired: late, and dropped
            ],
        )
        .with_watermarks(WatermarkStrategy::monotonous())
        .key_by(|e| e.1)
        .window(Windows::sliding(ms(10), ms(5)))
        .allowed_lateness(ms(10))
        .aggregate(Count)
        .name("win");
    let counts = counts.collect();
    let summary = job.run(one_by_one()).unwrap();
    let got = rows(counts.take());
    assert_eq!(
        got,
        vec![
            ('a', -5, 5, 1),
            ('a', 0, 10, 1),
            ('a', 0, 10, 2),
            ('a', 5, 15, 2),
            ('a', 10, 20, 1),
            ('a', 25, 35, 1),
            ('a', 30, 40, 1),
        ]
    );
    assert_eq!(summary.events_late, 1);
    check_window_metrics(&summary, "win", got.len(), 1);
    assert_eq!(op(&summary, "win").late_redirected, 0, "no late output set");
}

/// Late events past the lateness, with and without a late output, for aligned windows and
/// sessions: redirected or dropped, counted either way.
#[test]
fn late_records_past_lateness_are_redirected_or_dropped_and_counted() {
    let events = vec![
        ev(0, 'a', 1),
        ev(30, 'a', 2), // watermark 29
        ev(5, 'a', 3),  // late for [0, 10) and for a session [5, 15)
        ev(19, 'b', 4), // late too: [10, 20) and a session [19, 29) are past
        ev(31, 'a', 5), // on time
    ];
    for windows in [Windows::tumbling(ms(10)), Windows::session(ms(10))] {
        for redirect in [true, false] {
            let late = OutputTag::new("late");
            let mut job = Job::new("late");
            let windowed = job
                .from_vec("events", events.clone())
                .with_watermarks(WatermarkStrategy::monotonous())
                .key_by(|e| e.1)
                .window(windows);
            let windowed = if redirect {
                windowed.late_output(&late)
            } else {
                windowed
            };
            let sums = windowed.aggregate(Sum::new(|e: &Ev| e.2)).name("win");
            let late_events = sums.side_output(&late).collect();
            let sums = sums.collect();
            let summary = job.run(one_by_one()).unwrap();
            let mut got = rows(sums.take());
            got.sort();
            let expected = match windows {
                Windows::Session { .. } => vec![('a', 0, 10, 1), ('a', 30, 41, 7)],
                _ => vec![('a', 0, 10, 1), ('a', 30, 40, 7)],
            };
            assert_eq!(got, expected, "{windows:?}");
            assert_eq!(summary.events_late, 2, "{windows:?}");
            let o = op(&summary, "win");
            check_window_metrics(&summary, "win", got.len(), 2);
            if redirect {
                assert_eq!(late_events.take(), vec![ev(5, 'a', 3), ev(19, 'b', 4)]);
                assert_eq!(o.late_redirected, 2);
            } else {
                assert!(late_events.is_empty());
                assert_eq!(o.late_redirected, 0);
                assert_eq!(o.side_output_discarded, 0);
            }
        }
    }
}

#[test]
fn empty_windows_produce_no_output() {
    let events = vec![ev(0, 'a', 1), ev(95, 'a', 2)];
    let (got, summary) = run_values(
        events.clone(),
        WatermarkStrategy::monotonous(),
        Windows::tumbling(ms(10)),
    );
    assert_eq!(got, vec![('a', 0, 10, vec![1]), ('a', 90, 100, vec![2])]);
    assert_eq!(op(&summary, "win").windows_fired, 2);
    let (got, _) = run_values(
        events,
        WatermarkStrategy::monotonous(),
        Windows::sliding(ms(20), ms(10)),
    );
    assert_eq!(
        got,
        vec![
            ('a', -10, 10, vec![1]),
            ('a', 0, 20, vec![1]),
            ('a', 80, 100, vec![2]),
            ('a', 90, 110, vec![2]),
        ]
    );
}

#[test]
fn count_windows_fire_every_n_records_per_key_and_the_rest_at_the_end() {
    // Key a: 7 records (t = 10, 20, ..., 70); key b: 2 records (t = 101, 102).
    let mut events: Vec<Ev> = (1..=7).map(|i| ev(10 * i, 'a', i)).collect();
    events.insert(2, ev(101, 'b', 10));
    events.push(ev(102, 'b', 20));
    /// The event times of the window's records.
    fn times(key: &char, w: Window, events: &[Ev], out: &mut Output<Row<Vec<i64>>>) {
        let mut t: Vec<i64> = events.iter().map(|e| e.0.millis()).collect();
        t.sort_unstable();
        out.emit((*key, w.start.millis(), w.end.millis(), t));
    }
    for parallelism in [1, 2] {
        let mut job = Job::new("count-windows");
        let source = job.from_vec("events", events.clone());
        let sums = source
            .clone()
            .key_by(|e| e.1)
            .count_window(3)
            .aggregate(Sum::new(|e: &Ev| e.2))
            .name("sums")
            .collect();
        let windows = source
            .key_by(|e| e.1)
            .count_window(3)
            .process(times)
            .name("times")
            .collect();
        let summary = job
            .run(JobConfig::default().parallelism(parallelism).batch_size(1))
            .unwrap();
        let sums = rows(sums.take());
        let windows = windows.take();
        check_window_metrics(&summary, "sums", sums.len(), 0);
        check_window_metrics(&summary, "times", windows.len(), 0);
        if parallelism == 1 {
            // One reader: records arrive in input order; the full windows fire as their
            // third record arrives, before the end, and the partial ones at the end.
            assert_eq!(&sums[..2], &[('a', 10, 31, 6), ('a', 40, 61, 15)]);
            let mut sorted = sums.clone();
            sorted.sort();
            // The window of a result spans its records' event times: [first, last + 1).
            assert_eq!(
                sorted,
                vec![
                    ('a', 10, 31, 6),
                    ('a', 40, 61, 15),
                    ('a', 70, 71, 7),
                    ('b', 101, 103, 30),
                ]
            );
        }
        // Whatever the arrival order (two readers interleave): windows of 3, 3 and 1 records
        // of a, 2 of b, every record in exactly one, each window spanning its records.
        let mut sizes: Vec<(char, usize)> = windows.iter().map(|w| (w.0, w.3.len())).collect();
        sizes.sort();
        assert_eq!(
            sizes,
            vec![('a', 1), ('a', 3), ('a', 3), ('b', 2)],
            "p {parallelism}"
        );
        let mut all: Vec<i64> = windows.iter().flat_map(|w| w.3.clone()).collect();
        all.sort_unstable();
        assert_eq!(all, vec![10, 20, 30, 40, 50, 60, 70, 101, 102]);
        for (_, start, end, t) in &windows {
            assert_eq!((*start, *end), (t[0], t[t.len() - 1] + 1), "{windows:?}");
        }
        let total: i64 = sums.iter().map(|r| r.3).sum();
        assert_eq!(total, 28 + 30);
    }
}

/// Emits the window when a negative value arrives, purging it.
#[derive(Clone)]
struct OnNegative;

impl Trigger<Ev> for OnNegative {
    fn on_record(&mut self, record: &Ev, _count: u64) -> TriggerAction {
        if record.2 < 0 {
            TriggerAction::FireAndPurge
        } else {
            TriggerAction::Continue
        }
    }
}

/// Emits the window at every second record of a key, keeping it.
#[derive(Clone)]
struct EverySecond;

impl Trigger<Ev> for EverySecond {
    fn on_record(&mut self, _record: &Ev, count: u64) -> TriggerAction {
        if count % 2 == 0 {
            TriggerAction::Fire
        } else {
            TriggerAction::Continue
        }
    }
}

#[test]
fn global_windows_emit_when_their_trigger_says_and_at_the_end() {
    let events = vec![
        ev(1, 'a', 1),
        ev(2, 'b', 10),
        ev(3, 'a', 2),
        ev(4, 'a', -3), // a fires and purges: 1 + 2 - 3
        ev(5, 'a', 4),
        ev(6, 'b', 20),
        ev(7, 'b', -5), // b fires and purges: 10 + 20 - 5
        ev(8, 'a', 5),
        ev(9, 'b', 7), // pending at the end
    ];
    let mut job = Job::new("global");
    let source = job.from_vec("events", events);
    let purged = source
        .clone()
        .key_by(|e| e.1)
        .global_window(OnNegative)
        .aggregate(Sum::new(|e: &Ev| e.2))
        .name("purging")
        .collect();
    let kept = source
        .key_by(|e| e.1)
        .global_window(EverySecond)
        .process(values)
        .name("keeping")
        .collect();
    let summary = job.run(one_by_one()).unwrap();

    let got = rows(purged.take());
    assert_eq!(&got[..2], &[('a', 1, 5, 0), ('b', 2, 8, 25)]);
    let mut rest = got[2..].to_vec();
    rest.sort();
    assert_eq!(rest, vec![('a', 5, 9, 9), ('b', 9, 10, 7)]);
    check_window_metrics(&summary, "purging", got.len(), 0);

    // Fire keeps the state: each emission holds everything of the key so far.
    let got = kept.take();
    assert_eq!(
        &got[..4],
        &[
            ('a', 1, 4, vec![1, 2]),
            ('a', 1, 6, vec![1, 2, -3, 4]),
            ('b', 2, 7, vec![10, 20]),
            ('b', 2, 10, vec![10, 20, -5, 7]),
        ]
    );
    // The end of the input fires what is pending: a has a record since its last emission.
    assert!(
        got[4..].contains(&('a', 1, 9, vec![1, 2, -3, 4, 5])),
        "{got:?}"
    );
    check_window_metrics(&summary, "keeping", got.len(), 0);
}

#[test]
fn window_all_runs_one_instance_even_at_parallelism_two() {
    let events: Vec<Ev> = (0..40)
        .map(|t| ev(t, ['a', 'b', 'c'][t as usize % 3], t))
        .collect();
    let mut job = Job::new("all");
    let counts = job
        .from_vec("events", events)
        .with_watermarks(WatermarkStrategy::monotonous())
        .window_all(Windows::tumbling(ms(10)))
        .aggregate(Count)
        .name("win")
        .collect();
    let summary = job
        .run(JobConfig::default().parallelism(2).batch_size(1))
        .unwrap();
    let source = summary
        .operators
        .iter()
        .find(|o| o.name.starts_with("events"))
        .unwrap();
    assert_eq!(source.parallelism, 2);
    assert_eq!(op(&summary, "win").parallelism, 1);
    let mut got: Vec<(i64, u64)> = counts
        .take()
        .into_iter()
        .map(|r| (r.window.start.millis(), r.value))
        .collect();
    got.sort();
    assert_eq!(got, vec![(0, 10), (10, 10), (20, 10), (30, 10)]);
    assert_eq!(summary.events_late, 0);
    let o = op(&summary, "win");
    assert_eq!(o.windows_fired, 4);
    assert_eq!(o.state_keys, 0);
}

#[test]
fn without_watermarks_nothing_is_late_and_everything_fires_at_the_end() {
    // Out of order by far more than any window: without watermarks nothing is late.
    let events = vec![
        ev(100, 'a', 1),
        ev(0, 'a', 2),
        ev(50, 'a', 3),
        ev(5, 'a', 4),
    ];
    let mut job = Job::new("no-watermarks");
    let out = job
        .from_vec("events", events.clone())
        .key_by(|e| e.1)
        .window(Windows::tumbling(ms(10)))
        .process(values)
        .name("win")
        .collect();
    let summary = job.run(one_by_one()).unwrap();
    let got = out.take();
    // All fire with the final watermark, in window order.
    assert_eq!(
        got,
        vec![
            ('a', 0, 10, vec![2, 4]),
            ('a', 50, 60, vec![3]),
            ('a', 100, 110, vec![1]),
        ]
    );
    assert_eq!(summary.events_late, 0);
    check_window_metrics(&summary, "win", 3, 0);

    // The same records with watermarks: all but the first are late.
    let (got, summary) = run_values(
        events,
        WatermarkStrategy::monotonous(),
        Windows::tumbling(ms(10)),
    );
    assert_eq!(got, vec![('a', 100, 110, vec![1])]);
    assert_eq!(summary.events_late, 3);
}

// ---------------------------------------------------------------------------------------------
// Live jobs: unbounded sources, observed through `JobHandle::metrics` while they run.

const KEYS: [char; 3] = ['x', 'y', 'z'];

/// What one reader of a [`Scripted`] source does.
#[derive(Clone)]
enum Script {
    /// These records, one per poll, then nothing, ever (an unbounded source gone quiet).
    ThenQuiet(Vec<Ev>),
    /// Record `i` is `(step * i, KEYS[i % 3], i)`, for ever, one per `every`.
    Endless { step: i64, every: Duration },
}

/// An unbounded source with one reader per script.
#[derive(Clone)]
struct Scripted(Vec<Script>);

struct ScriptedReader {
    script: Script,
    next: usize,
    last: Option<Instant>,
}

impl Source<Ev> for Scripted {
    type Reader = ScriptedReader;
    fn parallelism(&self, _: usize) -> usize {
        self.0.len()
    }
    fn create_readers(&mut self, _: usize) -> Result<Vec<ScriptedReader>> {
        Ok(self
            .0
            .iter()
            .map(|s| ScriptedReader {
                script: s.clone(),
                next: 0,
                last: None,
            })
            .collect())
    }
}

impl SourceReader<Ev> for ScriptedReader {
    fn poll_batch(
        &mut self,
        out: &mut Vec<Ev>,
        _max: usize,
        _: &mut TaskContext,
    ) -> Result<SourcePoll> {
        match &self.script {
            Script::ThenQuiet(records) => match records.get(self.next) {
                Some(r) => {
                    out.push(*r);
                    self.next += 1;
                    Ok(SourcePoll::Ready)
                }
                None => Ok(SourcePoll::Idle),
            },
            Script::Endless { step, every } => {
                if self.last.is_some_and(|l| l.elapsed() < *every) {
                    return Ok(SourcePoll::Idle);
                }
                self.last = Some(Instant::now());
                let i = self.next;
                self.next += 1;
                out.push((Timestamp(step * i as i64), KEYS[i % 3], i as i64));
                Ok(SourcePoll::Ready)
            }
        }
    }
}

/// Polls `cond` every 10 ms until it holds or `limit` passed; returns whether it held.
fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(ms(10));
    }
}

#[test]
fn a_watermark_that_never_advances_fires_nothing_until_the_end() {
    // Records go quiet without ending; no watermarks at all.
    let records: Vec<Ev> = (0..50)
        .map(|i| ev(i * 10, KEYS[i as usize % 3], i))
        .collect();
    let mut job = Job::new("stalled");
    let out = job
        .source("quiet", Scripted(vec![Script::ThenQuiet(records)]))
        .key_by(|e| e.1)
        .window(Windows::tumbling(ms(100)))
        .aggregate(Count)
        .name("win")
        .collect();
    let handle = job.start(JobConfig::default().parallelism(1)).unwrap();
    assert!(
        wait_for(ms(10_000), || op(&handle.metrics(), "win").events_processed
            == 50),
        "the window operator received every record"
    );
    std::thread::sleep(ms(300));
    let m = handle.metrics();
    assert_eq!(op(&m, "win").windows_fired, 0, "nothing fires: {m}");
    assert!(out.is_empty());
    assert_eq!(op(&m, "win").state_keys, 15, "5 windows x 3 keys pending");
    // Stopping ends the input: the final watermark fires everything.
    handle.stop();
    let summary = handle.join().unwrap();
    let mut got = rows(out.take());
    got.sort();
    let mut expected = Vec::new();
    for k in KEYS {
        for w in 0..5 {
            let n = (0..50)
                .filter(|i| i / 10 == w && KEYS[*i as usize % 3] == k)
                .count() as u64;
            expected.push((k, w * 100, w * 100 + 100, n));
        }
    }
    expected.sort();
    assert_eq!(got, expected);
    check_window_metrics(&summary, "win", 15, 0);
}

#[test]
fn count_windows_fire_mid_stream_and_the_partial_rest_only_at_the_end() {
    // Key x: 7 records, y: 2. Full windows fire while the source is still open.
    let records: Vec<Ev> = (0..9)
        .map(|i| ev(i, if i % 4 == 1 { 'y' } else { 'x' }, i))
        .collect();
    let mut job = Job::new("count-live");
    let out = job
        .source("quiet", Scripted(vec![Script::ThenQuiet(records)]))
        .key_by(|e| e.1)
        .count_window(3)
        .aggregate(Count)
        .name("win")
        .collect();
    let handle = job.start(JobConfig::default().parallelism(1)).unwrap();
    assert!(wait_for(ms(10_000), || op(&handle.metrics(), "win")
        .events_processed
        == 9));
    std::thread::sleep(ms(200));
    let m = handle.metrics();
    assert_eq!(op(&m, "win").windows_fired, 2, "{m}");
    assert_eq!(
        op(&m, "win").state_keys,
        2,
        "x (1 record) and y (2) pending"
    );
    handle.stop();
    let summary = handle.join().unwrap();
    let mut got: Vec<(char, u64)> = out.take().into_iter().map(|r| (r.key, r.value)).collect();
    got.sort();
    assert_eq!(got, vec![('x', 1), ('x', 3), ('x', 3), ('y', 2)]);
    check_window_metrics(&summary, "win", 4, 0);
}

/// Two readers: reader 0 reads `quiet` records and then nothing; reader 1 produces event times
/// 0, 10, 20, … one per millisecond. Windows of 100 ms behind a key_by.
fn idle_job(
    quiet: Vec<Ev>,
    strategy: WatermarkStrategy,
) -> (
    streamcore::JobHandle,
    streamcore::sink::Collected<WindowResult<char, u64>>,
) {
    let mut job = Job::new("idle");
    let out = job
        .source(
            "two-speed",
            Scripted(vec![
                Script::ThenQuiet(quiet),
                Script::Endless {
                    step: 10,
                    every: ms(1),
                },
            ]),
        )
        .with_watermarks(strategy)
        .key_by(|e| e.1)
        .window(Windows::tumbling(ms(100)))
        .aggregate(Count)
        .name("win")
        .collect();
    let handle = job.start(JobConfig::default().parallelism(2)).unwrap();
    (handle, out)
}

fn quiet_records() -> Vec<Ev> {
    // Watermark 3 under zero delay: no window of 100 ms closes.
    (0..5).map(|t| ev(t, 'x', t)).collect()
}

#[test]
fn an_idle_reader_stops_holding_the_watermark_back_after_the_idle_timeout() {
    let strategy = WatermarkStrategy::bounded_out_of_orderness(ms(0)).with_idle_timeout(ms(100));
    let (handle, out) = idle_job(quiet_records(), strategy);
    let fired = wait_for(ms(10_000), || {
        op(&handle.metrics(), "win").windows_fired > 0 && !out.is_empty()
    });
    let m = handle.metrics();
    handle.stop();
    let summary = handle.join().unwrap();
    assert!(fired, "windows fire while reader 0 is idle: {m}");
    // The idle reader's records were on time (the first window had not fired yet).
    assert_eq!(summary.events_late, 0);
    let o = op(&summary, "win");
    assert_eq!(o.windows_fired, out.len() as u64);
    assert_eq!(o.state_keys, 0);
}

#[test]
fn without_an_idle_timeout_an_idle_reader_holds_every_window_back() {
    let (handle, out) = idle_job(
        quiet_records(),
        WatermarkStrategy::bounded_out_of_orderness(ms(0)),
    );
    // Reader 1 keeps producing (about 1,000 records, 10 s of event time, per second).
    assert!(wait_for(ms(10_000), || op(&handle.metrics(), "win")
        .events_processed
        > 300));
    std::thread::sleep(ms(700));
    let m = handle.metrics();
    assert_eq!(op(&m, "win").windows_fired, 0, "{m}");
    assert!(out.is_empty());
    handle.stop();
    let summary = handle.join().unwrap();
    // The end of the input fires everything.
    let o = op(&summary, "win");
    assert!(o.windows_fired > 0);
    assert_eq!(o.windows_fired, out.len() as u64);
    let counted: u64 = out.take().iter().map(|r| r.value).sum();
    assert_eq!(counted, o.events_processed);
    assert_eq!(o.state_keys, 0);
}

#[test]

fn a_reader_that_never_produced_anything_goes_idle_after_the_timeout() {
    // As in Flink's WatermarksWithIdleness: idleness is measured from the start, so an empty
    // split (more readers than partitions, say) does not stall event time.
    let strategy = WatermarkStrategy::bounded_out_of_orderness(ms(0)).with_idle_timeout(ms(100));
    let (handle, out) = idle_job(Vec::new(), strategy);
    let fired = wait_for(ms(3_000), || {
        op(&handle.metrics(), "win").windows_fired > 0 && !out.is_empty()
    });
    let m = handle.metrics();
    handle.stop();
    handle.join().unwrap();
    assert!(fired, "windows fire although reader 0 never produced: {m}");
}

#[test]

fn a_late_record_within_lateness_into_an_empty_fired_window_emits_at_once() {
    let mut job = Job::new("late-into-empty");
    let counts = job
        .from_vec(
            "events",
            vec![
                ev(0, 'a', 0),
                ev(25, 'a', 0), // watermark 24: [0, 10) and [10, 20) are past
                ev(15, 'b', 0), // within lateness, window [10, 20) never had records: emit now
                ev(5, 'a', 0),  // within lateness, [0, 10) fired: emit the update now
            ],
        )
        .with_watermarks(WatermarkStrategy::monotonous())
        .key_by(|e| e.1)
        .window(Windows::tumbling(ms(10)))
        .allowed_lateness(ms(100))
        .aggregate(Count)
        .collect();
    job.run(one_by_one()).unwrap();
    // Flink's EventTimeTrigger fires a late element's window at once (its max timestamp is
    // behind the watermark), so b's window comes before a's update.
    assert_eq!(
        rows(counts.take()),
        vec![
            ('a', 0, 10, 1),
            ('b', 10, 20, 1),
            ('a', 0, 10, 2),
            ('a', 20, 30, 1),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Built-in aggregates, through a job.

/// (event time, key, value): value i / 2 for record i, key i % 2.
type Num = (Timestamp, u8, u64);

#[test]
fn built_in_aggregates_through_a_job() {
    const N: u64 = 40_000;
    // Each key gets the values 0..20_000 once each, in one window.
    let events: Vec<Num> = (0..N)
        .map(|i| (Timestamp(i as i64), (i % 2) as u8, i / 2))
        .collect();
    let mut job = Job::new("aggregates");
    let source = job
        .from_vec("events", events)
        .with_watermarks(WatermarkStrategy::monotonous());
    let windowed = || {
        source
            .clone()
            .key_by(|e: &Num| e.1)
            .window(Windows::tumbling(ms(1_000_000)))
    };
    let min = windowed().aggregate(Min::new(|e: &Num| e.2)).collect();
    let max = windowed().aggregate(Max::new(|e: &Num| e.2)).collect();
    let avg = windowed()
        .aggregate(Avg::new(|e: &Num| e.2 as f64))
        .collect();
    let distinct = windowed()
        .aggregate(CountDistinct::new(|e: &Num| e.2))
        .collect();
    let approx = windowed()
        .aggregate(ApproxCountDistinct::new(|e: &Num| e.2))
        .collect();
    let percentiles = windowed()
        .aggregate(Percentiles::new(|e: &Num| e.2 as f64, &[0.5, 0.9]))
        .collect();
    let top = windowed()
        .aggregate(TopN::new(3, |e: &Num| e.2 as f64))
        .collect();
    let summary = job.run(JobConfig::default().parallelism(2)).unwrap();
    assert_eq!(summary.events_ingested, N);
    assert_eq!(summary.events_late, 0);

    fn by_key<V>(results: Vec<WindowResult<u8, V>>) -> Vec<(u8, V)> {
        let mut v: Vec<(u8, V)> = results
            .into_iter()
            .inspect(|r| {
                assert_eq!(
                    (r.window.start.millis(), r.window.end.millis()),
                    (0, 1_000_000)
                )
            })
            .map(|r| (r.key, r.value))
            .collect();
        v.sort_by_key(|r| r.0);
        v
    }
    assert_eq!(by_key(min.take()), vec![(0, Some(0)), (1, Some(0))]);
    assert_eq!(
        by_key(max.take()),
        vec![(0, Some(19_999)), (1, Some(19_999))]
    );
    assert_eq!(by_key(avg.take()), vec![(0, 9_999.5), (1, 9_999.5)]);
    assert_eq!(by_key(distinct.take()), vec![(0, 20_000), (1, 20_000)]);
    for (key, estimate) in by_key(approx.take()) {
        let error = (estimate as f64 - 20_000.0).abs() / 20_000.0;
        assert!(error < 0.02, "key {key}: {estimate} distinct");
    }
    for (key, quantiles) in by_key(percentiles.take()) {
        assert_eq!(quantiles.len(), 2);
        let (q, median) = quantiles[0];
        assert_eq!(q, 0.5);
        let median = median.expect("non-empty window");
        assert!(
            (median - 9_999.5).abs() / 9_999.5 < 0.02,
            "key {key}: median {median}"
        );
        let (q, p90) = quantiles[1];
        assert_eq!(q, 0.9);
        let p90 = p90.expect("non-empty window");
        assert!(
            (p90 - 18_000.0).abs() / 18_000.0 < 0.02,
            "key {key}: p90 {p90}"
        );
    }
    for (key, best) in by_key(top.take()) {
        let values: Vec<u64> = best.iter().map(|e| e.2).collect();
        assert_eq!(values, vec![19_999, 19_998, 19_997], "key {key}");
        assert!(best.iter().all(|e| e.1 == key));
    }
    for o in summary
        .operators
        .iter()
        .filter(|o| o.name.starts_with("window_aggregate"))
    {
        assert_eq!(o.windows_fired, 2, "{}: one window per key", o.name);
        assert_eq!(o.events_out, 2, "{}", o.name);
        assert_eq!(o.state_keys, 0, "{}", o.name);
    }
    assert_eq!(
        summary
            .operators
            .iter()
            .filter(|o| o.name.starts_with("window_aggregate"))
            .count(),
        7
    );
}

/// A reader with a filter pushed into it (as the SQL planner pushes a `WHERE` into a file
/// scan): each poll emits its kept records and reports the dropped ones by event time.
#[derive(Clone)]
struct FilteringSource(Vec<(Vec<Ev>, Vec<i64>)>);

struct FilteringReader {
    polls: std::vec::IntoIter<(Vec<Ev>, Vec<i64>)>,
}

impl Source<Ev> for FilteringSource {
    type Reader = FilteringReader;
    fn parallelism(&self, _: usize) -> usize {
        1
    }
    fn create_readers(&mut self, _: usize) -> Result<Vec<FilteringReader>> {
        Ok(vec![FilteringReader {
            polls: self.0.clone().into_iter(),
        }])
    }
}

impl SourceReader<Ev> for FilteringReader {
    fn poll_batch(
        &mut self,
        out: &mut Vec<Ev>,
        _max: usize,
        ctx: &mut TaskContext,
    ) -> Result<SourcePoll> {
        let Some((kept, filtered)) = self.polls.next() else {
            return Ok(SourcePoll::Finished);
        };
        out.extend(kept);
        for t in filtered {
            ctx.filtered_at_source(Timestamp(t));
        }
        Ok(SourcePoll::Ready)
    }
}

/// Records a reader drops by a filter pushed into it are counted as read and filtered, and
/// their event times move the watermark as if the filter ran after the source: the record
/// at 2 000 after a dropped one at 100 000 is late (it would not be, were the dropped
/// record unseen).
#[test]
fn records_filtered_in_the_reader_count_and_move_the_watermark() {
    let mut job = Job::new("pushed-filter");
    let polls = vec![
        (vec![ev(1_000, 'a', 1)], vec![100_000]),
        (vec![ev(2_000, 'a', 2)], vec![]),
        (vec![], vec![3_000, 4_000]),
    ];
    let out = job
        .source("events", FilteringSource(polls))
        .with_watermarks(WatermarkStrategy::monotonous())
        .key_by(|e: &Ev| e.1)
        .window(Windows::tumbling(ms(10_000)))
        .process(values)
        .name("win")
        .collect();
    let summary = job.run(one_by_one()).unwrap();
    assert_eq!(out.take(), vec![('a', 0, 10_000, vec![1])]);
    assert_eq!(summary.events_ingested, 5);
    assert_eq!(summary.events_filtered, 3);
    assert_eq!(summary.events_late, 1);
    assert_eq!(op(&summary, "events#0").events_processed, 5);
    assert_eq!(op(&summary, "events#0").events_out, 2);
    check_window_metrics(&summary, "win", 1, 1);
}
