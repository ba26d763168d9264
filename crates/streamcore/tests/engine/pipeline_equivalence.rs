//! Random pipelines of filter / map / flat_map / keyed rolling reduce / keyed rolling aggregate
//! over `i64`, run on the engine at several parallelisms, batch sizes and key-group counts,
//! against a sequential reference model.
//!
//! What can be compared exactly:
//!
//! - At parallelism 1 every record takes one path (one reader, one task per stage, FIFO
//!   queues), so the engine's output *sequence* must equal the reference's, running values of
//!   the keyed stages included (mode [`Mode::Running`]).
//! - At parallelism > 1 the records of one key reach its keyed operator interleaved from
//!   several senders, in an order the engine does not fix, so the running values differ from
//!   run to run. Two things do not depend on that order: the `(key, count)` of every emission
//!   (each key counts 1, 2, …, n) and each key's *final* value (a wrapping sum is commutative).
//!   In mode [`Mode::Finals`] each keyed stage carries `(key, count, sum)` and is followed by a
//!   filter keeping only the emission whose count equals the key's total (taken from the
//!   reference), so exactly one, order-independent, record per key flows on. Everything
//!   downstream is then order-independent again, so sorted outputs compare exactly even with
//!   several keyed stages in a row.
//!
//! Every keyed stage also taps its `(key, count)` emissions, compared as multisets: a lost,
//! duplicated or misrouted record (state of one key split over two instances) changes them.

use proptest::prelude::*;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use streamcore::{Job, JobConfig, Stream};

#[derive(Clone, Copy, Debug)]
enum Stage {
    /// Keeps `x` unless `x mod m == r`.
    Filter { m: i64, r: i64 },
    /// `x * a + b`, wrapping.
    Map { a: i64, b: i64 },
    /// `x, x + 1` when `x mod k == 0`, else `x`.
    FlatMap { k: i64 },
    /// `key_by(x mod n)`, rolling reduce summing (wrapping); emits the running sum.
    Reduce { n: i64 },
    /// `key_by(x mod n)`, rolling aggregate of (count, wrapping sum); emits `count*1000 + sum`.
    Aggregate { n: i64 },
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    /// Keyed stages emit every running value.
    Running,
    /// Keyed stages pass on only each key's final value.
    Finals,
}

/// `(key, count, sum)`: what a keyed stage produces before it is turned back into an `i64`.
type Keyed = (i64, u64, i64);

fn keep(x: i64, m: i64, r: i64) -> bool {
    x.rem_euclid(m) != r
}

fn affine(x: i64, a: i64, b: i64) -> i64 {
    x.wrapping_mul(a).wrapping_add(b)
}

fn split(x: i64, k: i64) -> Vec<i64> {
    if x.rem_euclid(k) == 0 {
        vec![x, x.wrapping_add(1)]
    } else {
        vec![x]
    }
}

fn key(x: i64, n: i64) -> i64 {
    x.rem_euclid(n)
}

fn reduce_value(t: Keyed) -> i64 {
    t.2
}

fn aggregate_value(t: Keyed) -> i64 {
    (t.1 as i64).wrapping_mul(1000).wrapping_add(t.2)
}

#[derive(Debug)]
struct Expected {
    output: Vec<i64>,
    /// Per keyed stage, the `(key, count)` of each emission, in emission order.
    emissions: Vec<Vec<(i64, u64)>>,
    /// Per keyed stage, the number of records of each key.
    totals: Vec<HashMap<i64, u64>>,
}

/// The sequential reference: plain iteration, one hash map of state per keyed stage.
fn reference(input: &[i64], stages: &[Stage], mode: Mode) -> Expected {
    let mut data = input.to_vec();
    let mut emissions = Vec::new();
    let mut totals = Vec::new();
    for stage in stages {
        data = match *stage {
            Stage::Filter { m, r } => data.into_iter().filter(|&x| keep(x, m, r)).collect(),
            Stage::Map { a, b } => data.into_iter().map(|x| affine(x, a, b)).collect(),
            Stage::FlatMap { k } => data.into_iter().flat_map(|x| split(x, k)).collect(),
            Stage::Reduce { n } | Stage::Aggregate { n } => {
                let mut state: HashMap<i64, (u64, i64)> = HashMap::new();
                let mut emitted: Vec<Keyed> = Vec::new();
                for x in data {
                    let k = key(x, n);
                    let acc = state.entry(k).or_default();
                    acc.0 += 1;
                    acc.1 = acc.1.wrapping_add(x);
                    emitted.push((k, acc.0, acc.1));
                }
                let total: HashMap<i64, u64> = state.iter().map(|(k, v)| (*k, v.0)).collect();
                emissions.push(emitted.iter().map(|t| (t.0, t.1)).collect());
                let to_value = match stage {
                    Stage::Reduce { .. } => reduce_value,
                    _ => aggregate_value,
                };
                let out = emitted
                    .into_iter()
                    .filter(|t| mode == Mode::Running || total[&t.0] == t.1)
                    .map(to_value)
                    .collect();
                totals.push(total);
                out
            }
        };
    }
    Expected {
        output: data,
        emissions,
        totals,
    }
}

type Tap = Arc<Mutex<Vec<(i64, u64)>>>;

/// The tail of a keyed stage: tap the emissions, keep only finals (mode `Finals`), and turn
/// each `(key, count, sum)` back into an `i64`.
fn finish_keyed(
    keyed: Stream<Keyed>,
    tap: Tap,
    finals: Option<Arc<HashMap<i64, u64>>>,
    to_value: fn(Keyed) -> i64,
) -> Stream<i64> {
    let tapped = keyed.inspect(move |t| tap.lock().unwrap().push((t.0, t.1)));
    let kept = match finals {
        Some(total) => tapped.filter(move |t| total.get(&t.0) == Some(&t.1)),
        None => tapped,
    };
    kept.map(to_value)
}

/// The same pipeline on the engine.
fn build(
    job: &mut Job,
    input: Vec<i64>,
    stages: &[Stage],
    mode: Mode,
    totals: &[HashMap<i64, u64>],
    taps: &[Tap],
) -> Stream<i64> {
    let mut s = job.from_vec("input", input);
    let mut keyed_index = 0;
    for stage in stages {
        s = match *stage {
            Stage::Filter { m, r } => s.filter(move |&x| keep(x, m, r)),
            Stage::Map { a, b } => s.map(move |x| affine(x, a, b)),
            Stage::FlatMap { k } => s.flat_map(move |x| split(x, k)),
            Stage::Reduce { n } | Stage::Aggregate { n } => {
                let keyed: Stream<Keyed> = match stage {
                    Stage::Reduce { .. } => s
                        .map(move |x| (key(x, n), 1u64, x))
                        .key_by(|t: &Keyed| t.0)
                        .reduce(|a, b| (a.0, a.1 + b.1, a.2.wrapping_add(b.2))),
                    _ => s.key_by(move |x: &i64| key(*x, n)).aggregate(
                        |_| (0u64, 0i64),
                        |acc, x| {
                            acc.0 += 1;
                            acc.1 = acc.1.wrapping_add(x);
                        },
                        |k, acc| (*k, acc.0, acc.1),
                    ),
                };
                let finals = (mode == Mode::Finals).then(|| Arc::new(totals[keyed_index].clone()));
                let to_value = match stage {
                    Stage::Reduce { .. } => reduce_value,
                    _ => aggregate_value,
                };
                let s = finish_keyed(keyed, taps[keyed_index].clone(), finals, to_value);
                keyed_index += 1;
                s
            }
        };
    }
    s
}

/// Runs the pipeline once on the engine and compares it with the reference.
fn check(
    input: &[i64],
    stages: &[Stage],
    mode: Mode,
    parallelism: usize,
    batch_size: usize,
    key_groups: u32,
    fuse: bool,
) -> Result<(), TestCaseError> {
    let expected = reference(input, stages, mode);
    let taps: Vec<Tap> = expected.totals.iter().map(|_| Tap::default()).collect();
    let mut job = Job::new("equivalence");
    let out = build(
        &mut job,
        input.to_vec(),
        stages,
        mode,
        &expected.totals,
        &taps,
    )
    .collect();
    let config = JobConfig::default()
        .parallelism(parallelism)
        .batch_size(batch_size)
        .key_groups(key_groups)
        .fuse_single_exchanges(fuse);
    let summary = job
        .run(config)
        .map_err(|e| TestCaseError::fail(format!("job failed: {e}")))?;
    let what =
        format!("{mode:?} p={parallelism} batch={batch_size} key_groups={key_groups} fuse={fuse}");

    prop_assert_eq!(summary.events_ingested, input.len() as u64, "{}", what);
    prop_assert_eq!(
        summary.events_emitted,
        expected.output.len() as u64,
        "{}",
        what
    );
    let mut got = out.take();
    let mut want = expected.output;
    // One path per record at parallelism 1: order is part of the contract.
    if parallelism > 1 {
        got.sort_unstable();
        want.sort_unstable();
    }
    prop_assert_eq!(got, want, "output, {}", what);
    for (i, (tap, want)) in taps.iter().zip(expected.emissions).enumerate() {
        let mut got = std::mem::take(&mut *tap.lock().unwrap());
        let mut want = want;
        if parallelism > 1 {
            got.sort_unstable();
            want.sort_unstable();
        }
        prop_assert_eq!(
            got,
            want,
            "(key, count) emissions of keyed stage {}, {}",
            i,
            what
        );
    }
    Ok(())
}

fn stage() -> impl Strategy<Value = Stage> {
    prop_oneof![
        (2i64..7)
            .prop_flat_map(|m| (Just(m), 0..m))
            .prop_map(|(m, r)| Stage::Filter { m, r }),
        (-3i64..=3, -20i64..=20).prop_map(|(a, b)| Stage::Map { a, b }),
        (1i64..=4).prop_map(|k| Stage::FlatMap { k }),
        (1i64..=8).prop_map(|n| Stage::Reduce { n }),
        (1i64..=8).prop_map(|n| Stage::Aggregate { n }),
    ]
}

fn value() -> impl Strategy<Value = i64> {
    // Mostly small values (many equal keys, sums that stay readable), some anywhere in the
    // range (wrapping arithmetic, negative remainders).
    prop_oneof![9 => -1000i64..1000, 1 => any::<i64>()]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_pipelines_match_the_sequential_reference(
        input in prop::collection::vec(value(), 0..500),
        stages in prop::collection::vec(stage(), 1..=6),
        key_groups in prop_oneof![Just(4u32), Just(7u32), Just(128u32)],
    ) {
        for batch_size in [1, 7, 1024] {
            // At parallelism 1 a keyed stage runs on its sender's thread or on its own.
            for fuse in [true, false] {
                check(&input, &stages, Mode::Running, 1, batch_size, key_groups, fuse)?;
            }
            for parallelism in [1, 2, 4] {
                check(&input, &stages, Mode::Finals, parallelism, batch_size, key_groups, true)?;
            }
        }
    }
}

#[test]
fn reference_model_matches_hand_computed_examples() {
    // Guards the reference itself, so the property above compares against the right thing.
    let input = [3, -4, 5, 6, 9];
    let stages = [Stage::Filter { m: 3, r: 0 }, Stage::Reduce { n: 2 }];
    // Filter drops 3, 6, 9 (x mod 3 == 0); keys: -4 -> 0, 5 -> 1.
    let e = reference(&input, &stages, Mode::Running);
    assert_eq!(e.output, vec![-4, 5]);
    let stages = [Stage::Reduce { n: 3 }, Stage::Aggregate { n: 2 }];
    // Reduce by x mod 3: 3 -> k0, -4 -> k2, 5 -> k2 (sum 1), 6 -> k0 (sum 9), 9 -> k0 (sum 18).
    let e = reference(&input, &stages, Mode::Running);
    assert_eq!(e.emissions[0], vec![(0, 1), (2, 1), (2, 2), (0, 2), (0, 3)]);
    // Running sums 3, -4, 1, 9, 18; aggregate by x mod 2 emits count*1000 + sum:
    // 3 -> k1 (1, 3); -4 -> k0 (1, -4); 1 -> k1 (2, 4); 9 -> k1 (3, 13); 18 -> k0 (2, 14).
    assert_eq!(e.output, vec![1003, 996, 2004, 3013, 2014]);
    let e = reference(&input, &stages, Mode::Finals);
    // Finals of the reduce: k2 -> 1 (after 5), k0 -> 18 (after 9); aggregate by parity.
    assert_eq!(e.output, vec![1001, 1018]);
    assert_eq!(e.totals[0], HashMap::from([(0, 3), (2, 2)]));
    let e = reference(
        &[0, 1, 4],
        &[Stage::FlatMap { k: 2 }, Stage::Map { a: -2, b: 1 }],
        Mode::Running,
    );
    assert_eq!(e.output, vec![1, -1, -1, -7, -9]);
}
