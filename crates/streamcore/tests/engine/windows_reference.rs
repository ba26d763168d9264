//! Event-time windows against a brute-force reference.
//!
//! Random keyed events arrive out of order, but never by more than the watermark delay: every
//! event's time is at least the largest time before it (in the whole input, hence in every
//! reader's subsequence too) minus the delay. No event is then ever late (allowed lateness is
//! zero), so whatever the parallelism, the batch size and the interleaving of the readers, the
//! engine's multiset of window results must equal the one computed from the definitions:
//!
//! - tumbling and sliding windows: `[start, start + size)` for every `start ≡ offset (mod
//!   slide)` with `start <= t < start + size`, found by trying every candidate start;
//! - sessions: each key's events sorted by time, cut where two consecutive events are more
//!   than `gap` apart; a session is `[first, last + gap)`.
//!
//! Three window functions are checked per window kind: `Count`, `Sum` of the value, and a
//! `process` function returning the sorted values (exact membership). Batch size 1 makes the
//! watermark advance after every record, so windows fire mid-stream, not only at the end.
//!
//! One caveat, inherent to Flink's semantics and not a bug: two events of a key exactly `gap`
//! apart belong to one session, but if the watermark reaches `last + gap - 1` between them
//! (possible: the later event is not late), the first session has already fired and been
//! purged, and the later event starts a new one — Flink does the same. The generator avoids
//! consecutive per-key distances equal to the gap; `windows_edge_cases.rs` checks the merge
//! at exactly `gap` where it is deterministic.

use proptest::prelude::*;
use std::collections::BTreeMap;
use std::time::Duration;
use streamcore::sink::Collected;
use streamcore::window::aggregates::{Count, Sum};
use streamcore::window::{Window, WindowResult, Windows};
use streamcore::{Job, JobConfig, JobSummary, Output, Stream, Timestamp, WatermarkStrategy};

/// (event time, key, value).
type Ev = (Timestamp, u8, i64);
/// (key, window start, window end, value): a window result in comparable form.
type Row<V> = (u8, i64, i64, V);

#[derive(Clone, Debug)]
struct Case {
    events: Vec<Ev>,
    /// Watermark delay (bounded out-of-orderness), ms.
    delay: i64,
    /// Tumbling size and offset.
    tumbling: (i64, i64),
    /// Sliding size, slide and offset.
    sliding: (i64, i64, i64),
    /// Session gap.
    gap: i64,
}

fn case() -> impl Strategy<Value = Case> {
    let step = prop_oneof![8 => 0i64..=6, 1 => 10i64..=80];
    (
        -500i64..500,
        0i64..=30,
        1usize..=4,
        any::<u8>(),
        prop::collection::vec((step, any::<u32>(), any::<u8>(), -100i64..=100), 0..120),
        (1i64..=50, any::<u32>()),
        (1i64..=60, any::<u32>(), any::<u32>()),
        1i64..=40,
    )
        .prop_map(
            |(
                start,
                delay,
                key_count,
                key_base,
                raw,
                (t_size, t_off),
                (s_size, s_slide, s_off),
                gap,
            )| {
                let keys: Vec<u8> = (0..key_count)
                    .map(|i| key_base.wrapping_add(37 * i as u8))
                    .collect();
                // Sorted base times, each event moved back by up to `delay`: an event is then
                // never more than `delay` behind the largest time before it.
                let mut base = start;
                let events = raw
                    .into_iter()
                    .map(|(step, jitter, k, v)| {
                        base += step;
                        let t = base - i64::from(jitter) % (delay + 1);
                        (Timestamp(t), keys[k as usize % key_count], v)
                    })
                    .collect();
                let slide = i64::from(s_slide) % s_size + 1;
                Case {
                    events,
                    delay,
                    tumbling: (t_size, i64::from(t_off) % t_size),
                    sliding: (s_size, slide, i64::from(s_off) % slide),
                    gap,
                }
            },
        )
        .prop_map(|mut c| {
            c.gap = adjust_gap(&c.events, c.gap);
            c
        })
}

/// The smallest gap `>= gap` that no two consecutive events of a key (in time order) are
/// exactly apart (see the module docs).
fn adjust_gap(events: &[Ev], mut gap: i64) -> i64 {
    let mut distances = std::collections::HashSet::new();
    for times in per_key_sorted_times(events).values() {
        for pair in times.windows(2) {
            distances.insert(pair[1] - pair[0]);
        }
    }
    while distances.contains(&gap) {
        gap += 1;
    }
    gap
}

fn per_key_sorted_times(events: &[Ev]) -> BTreeMap<u8, Vec<i64>> {
    let mut per_key: BTreeMap<u8, Vec<i64>> = BTreeMap::new();
    for e in events {
        per_key.entry(e.1).or_default().push(e.0.millis());
    }
    for times in per_key.values_mut() {
        times.sort_unstable();
    }
    per_key
}

/// The values of each (key, start, end) window, from the definition of aligned windows.
fn aligned_reference(
    events: &[Ev],
    size: i64,
    slide: i64,
    offset: i64,
) -> BTreeMap<(u8, i64, i64), Vec<i64>> {
    let mut windows: BTreeMap<(u8, i64, i64), Vec<i64>> = BTreeMap::new();
    for &(t, key, value) in events {
        let t = t.millis();
        // Every start with start <= t < start + size, i.e. start in (t - size, t].
        for start in (t - size + 1)..=t {
            if (start - offset).rem_euclid(slide) == 0 {
                windows
                    .entry((key, start, start + size))
                    .or_default()
                    .push(value);
            }
        }
    }
    windows
}

/// The values of each (key, start, end) session: cut where consecutive events are more than
/// `gap` apart.
fn session_reference(events: &[Ev], gap: i64) -> BTreeMap<(u8, i64, i64), Vec<i64>> {
    let mut per_key: BTreeMap<u8, Vec<(i64, i64)>> = BTreeMap::new();
    for &(t, key, value) in events {
        per_key.entry(key).or_default().push((t.millis(), value));
    }
    let mut windows = BTreeMap::new();
    for (key, mut evs) in per_key {
        evs.sort_unstable();
        let mut current: Vec<(i64, i64)> = Vec::new();
        let mut close = |current: &mut Vec<(i64, i64)>| {
            if let (Some(first), Some(last)) = (current.first(), current.last()) {
                let values = current.iter().map(|e| e.1).collect();
                windows.insert((key, first.0, last.0 + gap), values);
            }
            current.clear();
        };
        for e in evs {
            if current.last().is_some_and(|last| e.0 - last.0 > gap) {
                close(&mut current);
            }
            current.push(e);
        }
        close(&mut current);
    }
    windows
}

/// Counts, sums and sorted value lists of reference windows, sorted.
#[allow(clippy::type_complexity)]
fn expected(
    windows: &BTreeMap<(u8, i64, i64), Vec<i64>>,
) -> (Vec<Row<u64>>, Vec<Row<i64>>, Vec<Row<Vec<i64>>>) {
    let mut counts = Vec::new();
    let mut sums = Vec::new();
    let mut lists = Vec::new();
    for (&(k, s, e), values) in windows {
        counts.push((k, s, e, values.len() as u64));
        sums.push((k, s, e, values.iter().sum()));
        let mut sorted = values.clone();
        sorted.sort_unstable();
        lists.push((k, s, e, sorted));
    }
    (counts, sums, lists)
}

/// What one window kind produced in the engine.
struct Outputs {
    counts: Collected<WindowResult<u8, u64>>,
    sums: Collected<WindowResult<u8, i64>>,
    lists: Collected<Row<Vec<i64>>>,
}

fn rows<V: Clone>(results: Vec<WindowResult<u8, V>>) -> Vec<Row<V>>
where
    Row<V>: Ord,
{
    let mut v: Vec<Row<V>> = results
        .into_iter()
        .map(|r| {
            (
                r.key,
                r.window.start.millis(),
                r.window.end.millis(),
                r.value,
            )
        })
        .collect();
    v.sort();
    v
}

/// Count, sum and process windows of one kind, each operator named `{label}_{function}`.
fn attach(source: &Stream<Ev>, windows: Windows, label: &str) -> Outputs {
    let windowed = || source.clone().key_by(|e: &Ev| e.1).window(windows);
    let counts = windowed()
        .aggregate(Count)
        .name(&format!("{label}_count"))
        .collect();
    let sums = windowed()
        .aggregate(Sum::new(|e: &Ev| e.2))
        .name(&format!("{label}_sum"))
        .collect();
    let lists = windowed()
        .process(
            |key: &u8, w: Window, events: &[Ev], out: &mut Output<Row<Vec<i64>>>| {
                let mut values: Vec<i64> = events.iter().map(|e| e.2).collect();
                values.sort_unstable();
                out.emit((*key, w.start.millis(), w.end.millis(), values));
            },
        )
        .name(&format!("{label}_list"))
        .collect();
    Outputs {
        counts,
        sums,
        lists,
    }
}

fn kinds(case: &Case) -> [(&'static str, Windows); 3] {
    let (t_size, t_off) = case.tumbling;
    let (s_size, s_slide, s_off) = case.sliding;
    let ms = |x: i64| Duration::from_millis(x as u64);
    [
        (
            "tumbling",
            Windows::tumbling(ms(t_size)).with_offset(ms(t_off)),
        ),
        (
            "sliding",
            Windows::sliding(ms(s_size), ms(s_slide)).with_offset(ms(s_off)),
        ),
        ("session", Windows::session(ms(case.gap))),
    ]
}

fn reference_of(case: &Case, label: &str) -> BTreeMap<(u8, i64, i64), Vec<i64>> {
    match label {
        "tumbling" => aligned_reference(
            &case.events,
            case.tumbling.0,
            case.tumbling.0,
            case.tumbling.1,
        ),
        "sliding" => {
            aligned_reference(&case.events, case.sliding.0, case.sliding.1, case.sliding.2)
        }
        _ => session_reference(&case.events, case.gap),
    }
}

fn operator<'a>(summary: &'a JobSummary, name: &str) -> &'a streamcore::metrics::OperatorSummary {
    summary
        .operators
        .iter()
        .find(|o| o.name == name)
        .unwrap_or_else(|| panic!("no operator {name} in {summary}"))
}

fn check(case: &Case, parallelism: usize, batch_size: usize) -> Result<(), TestCaseError> {
    let mut job = Job::new("windows-reference");
    let source = job.from_vec("events", case.events.clone()).with_watermarks(
        WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(case.delay as u64)),
    );
    let kinds = kinds(case);
    let outputs: Vec<Outputs> = kinds
        .iter()
        .map(|(label, w)| attach(&source, *w, label))
        .collect();
    let summary = job
        .run(
            JobConfig::default()
                .parallelism(parallelism)
                .batch_size(batch_size),
        )
        .map_err(|e| TestCaseError::fail(format!("job failed: {e}")))?;
    let at = format!("parallelism {parallelism}, batch size {batch_size}");
    prop_assert_eq!(summary.events_ingested, case.events.len() as u64, "{}", at);
    prop_assert_eq!(summary.events_late, 0, "no event is late: {}", at);
    for ((label, w), out) in kinds.iter().zip(outputs) {
        let (counts, sums, lists) = expected(&reference_of(case, label));
        let got_counts = rows(out.counts.take());
        let got_sums = rows(out.sums.take());
        let mut got_lists = out.lists.take();
        got_lists.sort();
        prop_assert_eq!(&got_counts, &counts, "{} {:?} counts, {}", label, w, at);
        prop_assert_eq!(&got_sums, &sums, "{} {:?} sums, {}", label, w, at);
        prop_assert_eq!(&got_lists, &lists, "{} {:?} values, {}", label, w, at);
        for (function, emitted) in [
            ("count", got_counts.len()),
            ("sum", got_sums.len()),
            ("list", got_lists.len()),
        ] {
            let op = operator(&summary, &format!("{label}_{function}"));
            prop_assert_eq!(
                op.windows_fired,
                emitted as u64,
                "{} {}: windows_fired counts every result, {}",
                label,
                function,
                at
            );
            prop_assert_eq!(op.late_records, 0, "{} {}: {}", label, function, at);
            prop_assert_eq!(
                op.state_keys,
                0,
                "{} {}: state is empty after the end, {}",
                label,
                function,
                at
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn windows_equal_the_reference_at_any_parallelism_and_batch_size(case in case()) {
        // The generator's promise, checked: bounded disorder over the whole input.
        let mut max_seen = i64::MIN;
        for e in &case.events {
            prop_assert!(e.0.millis() >= max_seen.saturating_sub(case.delay), "{:?}", case);
            max_seen = max_seen.max(e.0.millis());
        }
        for parallelism in 1..=4 {
            for batch_size in [1, 64] {
                check(&case, parallelism, batch_size)?;
            }
        }
    }
}

#[test]
fn reference_sanity() {
    // Sliding windows of 10 every 4 (slide not dividing size), offset 1: starts ≡ 1 (mod 4).
    let events = vec![(Timestamp(9), 0, 1)];
    let got: Vec<(i64, i64)> = aligned_reference(&events, 10, 4, 1)
        .keys()
        .map(|k| (k.1, k.2))
        .collect();
    assert_eq!(got, vec![(1, 11), (5, 15), (9, 19)]);
    // Sessions: 0 and 10 are exactly the gap apart (one session), 21 is more than it away.
    let events = vec![
        (Timestamp(10), 0, 2),
        (Timestamp(0), 0, 1),
        (Timestamp(21), 0, 3),
    ];
    let got: Vec<((u8, i64, i64), Vec<i64>)> = session_reference(&events, 10).into_iter().collect();
    assert_eq!(got, vec![((0, 0, 20), vec![1, 2]), ((0, 21, 31), vec![3])]);
}
