//! CEP semantics: table-driven tests per pattern operator and skip strategy, a property test
//! against a brute-force matcher, and bounded memory on an unbounded-style input.

use proptest::prelude::*;
use std::time::Duration;
use streamcore::cep::{AfterMatchSkip, Match, Pattern};
use streamcore::{Job, JobConfig, OutputTag, Timestamp, WatermarkStrategy};

/// (event time, name like "a1", key)
type Ev = (Timestamp, String, u8);

fn is(prefix: &'static str) -> impl Fn(&Ev) -> bool + Send + Sync + 'static {
    move |e: &Ev| e.1.starts_with(prefix)
}

/// Events from "a1 b1 c1" (or "a1@5 b1@7" for explicit times), one key.
fn events(text: &str) -> Vec<Ev> {
    text.split_whitespace()
        .enumerate()
        .map(|(i, w)| match w.split_once('@') {
            Some((name, t)) => (Timestamp(t.parse().unwrap()), name.to_string(), 0),
            None => (Timestamp(i as i64 * 10), w.to_string(), 0),
        })
        .collect()
}

fn render(m: &Match<Ev>) -> String {
    m.events()
        .map(|e| e.1.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `pattern` over `input` and returns the sorted matches and timeouts, as text.
fn run(pattern: Pattern<Ev>, input: &str, parallelism: usize) -> (Vec<String>, Vec<String>) {
    let mut job = Job::new("cep");
    let timeouts = OutputTag::new("timeouts");
    let matches = job
        .from_vec("events", events(input))
        .with_watermarks(WatermarkStrategy::monotonous())
        .key_by(|e| e.2)
        .pattern_with_timeouts(pattern, Some(&timeouts));
    let timed_out = matches.side_output(&timeouts).collect();
    let matches = matches.collect();
    job.run(JobConfig::default().parallelism(parallelism))
        .unwrap();
    let mut m: Vec<String> = matches.take().iter().map(render).collect();
    let mut t: Vec<String> = timed_out.take().iter().map(render).collect();
    m.sort();
    t.sort();
    (m, t)
}

fn matches(pattern: Pattern<Ev>, input: &str) -> Vec<String> {
    let one = run(pattern.clone(), input, 1).0;
    assert_eq!(
        one,
        run(pattern, input, 2).0,
        "parallelism does not change matches"
    );
    one
}

fn strs(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

#[test]
fn contiguity() {
    let next = Pattern::begin("a", is("a")).next("b", is("b"));
    assert_eq!(matches(next.clone(), "a1 b1"), strs(&["a1 b1"]));
    assert_eq!(matches(next, "a1 c1 b1"), strs(&[]));
    let relaxed = Pattern::begin("a", is("a")).followed_by("b", is("b"));
    assert_eq!(matches(relaxed, "a1 c1 b1 b2"), strs(&["a1 b1"]));
    let any = Pattern::begin("a", is("a")).followed_by_any("b", is("b"));
    assert_eq!(matches(any, "a1 c1 b1 b2"), strs(&["a1 b1", "a1 b2"]));
}

#[test]
fn quantifiers() {
    let twice = Pattern::begin("a", is("a")).times(2);
    assert_eq!(
        matches(twice.clone(), "a1 a2 a3"),
        strs(&["a1 a2", "a2 a3"])
    );
    assert_eq!(
        matches(twice.allow_combinations(), "a1 a2 a3"),
        strs(&["a1 a2", "a1 a3", "a2 a3"])
    );
    let consecutive = Pattern::begin("a", is("a")).times(2).consecutive();
    assert_eq!(matches(consecutive, "a1 x a2 a3"), strs(&["a2 a3"]));
    // Flink's documented example: a b+ c on a b1 d1 b2 d2 b3 c.
    let loop_ = Pattern::begin("a", is("a"))
        .followed_by("b", is("b"))
        .one_or_more()
        .followed_by("c", is("c"));
    assert_eq!(
        matches(loop_, "a b1 d1 b2 d2 b3 c"),
        strs(&["a b1 c", "a b1 b2 c", "a b1 b2 b3 c"])
    );
    let range = Pattern::begin("a", is("a"))
        .times_range(2..=3)
        .followed_by("c", is("c"));
    assert_eq!(
        matches(range, "a1 a2 a3 c1"),
        strs(&["a1 a2 a3 c1", "a1 a2 c1", "a2 a3 c1"])
    );
    let optional = Pattern::begin("a", is("a"))
        .followed_by("b", is("b"))
        .optional()
        .followed_by("c", is("c"));
    assert_eq!(matches(optional.clone(), "a1 c1"), strs(&["a1 c1"]));
    assert_eq!(matches(optional, "a1 b1 c1"), strs(&["a1 b1 c1", "a1 c1"]));
}

#[test]
fn greedy_and_until() {
    // c also accepts b-events: without greedy the loop and c compete for b2.
    let b_or_c = |e: &Ev| e.1.starts_with('b') || e.1.starts_with('c');
    let lazy = Pattern::begin("a", is("a"))
        .followed_by("b", is("b"))
        .one_or_more()
        .followed_by("c", b_or_c);
    assert_eq!(
        matches(lazy, "a1 b1 b2 c1"),
        strs(&["a1 b1 b2", "a1 b1 b2 c1"])
    );
    let greedy = Pattern::begin("a", is("a"))
        .followed_by("b", is("b"))
        .one_or_more()
        .greedy()
        .followed_by("c", b_or_c);
    assert_eq!(matches(greedy, "a1 b1 b2 c1"), strs(&["a1 b1 b2 c1"]));
    let until = Pattern::begin("a", is("a"))
        .followed_by("b", is("b"))
        .one_or_more()
        .until(is("x"))
        .followed_by("c", is("c"));
    assert_eq!(matches(until, "a1 b1 x1 b2 c1"), strs(&["a1 b1 c1"]));
}

#[test]
fn negative_steps() {
    let not_next = Pattern::begin("a", is("a"))
        .not_next("x", is("x"))
        .followed_by("b", is("b"));
    assert_eq!(matches(not_next.clone(), "a1 x1 b1"), strs(&[]));
    assert_eq!(matches(not_next, "a1 y1 b1"), strs(&["a1 b1"]));
    let not_followed = Pattern::begin("a", is("a"))
        .not_followed_by("x", is("x"))
        .followed_by("b", is("b"));
    assert_eq!(matches(not_followed.clone(), "a1 y1 x1 b1"), strs(&[]));
    assert_eq!(matches(not_followed, "a1 y1 b1"), strs(&["a1 b1"]));
}

#[test]
fn within_and_trailing_not_followed_by() {
    let within = Pattern::begin("a", is("a"))
        .followed_by("b", is("b"))
        .within(Duration::from_millis(5));
    let (m, t) = run(within, "a1@0 b1@10", 1);
    assert_eq!(m, strs(&[]));
    assert_eq!(t, strs(&["a1"]), "the partial match timed out");
    // The design note's fraud case: three big transactions, no verification, within 10 ms.
    let fraud = Pattern::begin("big", is("t"))
        .times(3)
        .not_followed_by("verified", is("v"))
        .within(Duration::from_millis(10));
    assert_eq!(run(fraud.clone(), "t1@0 t2@1 t3@2 v1@5", 1).0, strs(&[]));
    assert_eq!(
        run(fraud.clone(), "t1@0 t2@1 t3@2 x@30", 1).0,
        strs(&["t1 t2 t3"])
    );
    // At the end of the input the final watermark passes every deadline.
    assert_eq!(run(fraud, "t1@0 t2@1 t3@2", 1).0, strs(&["t1 t2 t3"]));
}

#[test]
fn skip_strategies() {
    let p = |skip| {
        Pattern::begin("a", is("a"))
            .followed_by("b", is("b"))
            .one_or_more()
            .followed_by("c", is("c"))
            .skip(skip)
    };
    let input = "a1 a2 b1 b2 c1";
    assert_eq!(
        matches(p(AfterMatchSkip::NoSkip), input),
        strs(&["a1 b1 b2 c1", "a1 b1 c1", "a2 b1 b2 c1", "a2 b1 c1"])
    );
    // Matches at one event come out ordered by their start, shortest first.
    assert_eq!(
        matches(p(AfterMatchSkip::SkipToNext), input),
        strs(&["a1 b1 c1", "a2 b1 c1"])
    );
    assert_eq!(
        matches(p(AfterMatchSkip::SkipPastLastEvent), input),
        strs(&["a1 b1 c1"])
    );
    assert_eq!(
        matches(p(AfterMatchSkip::SkipToFirst("b".into())), input),
        strs(&["a1 b1 c1"])
    );
    assert_eq!(
        matches(p(AfterMatchSkip::SkipToLast("a".into())), input),
        strs(&["a1 b1 b2 c1", "a1 b1 c1", "a2 b1 b2 c1", "a2 b1 c1"])
    );
}

#[test]
fn out_of_order_input_matches_like_sorted_input() {
    let p = Pattern::begin("a", is("a"))
        .next("b", is("b"))
        .followed_by("c", is("c"));
    let sorted = run(p.clone(), "a1@0 b1@1 x@2 c1@3", 1).0;
    let mut job = Job::new("cep");
    let shuffled = vec![
        (Timestamp(1), "b1".to_string(), 0u8),
        (Timestamp(0), "a1".to_string(), 0),
        (Timestamp(3), "c1".to_string(), 0),
        (Timestamp(2), "x".to_string(), 0),
    ];
    let out = job
        .from_vec("events", shuffled)
        .with_watermarks(WatermarkStrategy::bounded_out_of_orderness(
            Duration::from_millis(5),
        ))
        .key_by(|e| e.2)
        .pattern(p)
        .collect();
    job.run(JobConfig::default().parallelism(1).batch_size(1))
        .unwrap();
    assert_eq!(out.take().iter().map(render).collect::<Vec<_>>(), sorted);
    assert_eq!(sorted, strs(&["a1 b1 c1"]));
}

/// Brute force: every index sequence obeying each step's condition and contiguity.
fn brute_force(
    steps: &[(char, u8)],
    events: &[(i64, char, u32)],
    within: Option<i64>,
) -> Vec<Vec<u32>> {
    fn extend(
        steps: &[(char, u8)],
        events: &[(i64, char, u32)],
        within: Option<i64>,
        chosen: &mut Vec<usize>,
        out: &mut Vec<Vec<u32>>,
    ) {
        let j = chosen.len();
        if j == steps.len() {
            out.push(chosen.iter().map(|&i| events[i].2).collect());
            return;
        }
        let (letter, contiguity) = steps[j];
        let candidates: Vec<usize> = match chosen.last() {
            None => (0..events.len())
                .filter(|&i| events[i].1 == letter)
                .collect(),
            Some(&prev) => {
                let after = (prev + 1..events.len()).filter(|&i| events[i].1 == letter);
                match contiguity {
                    0 => (prev + 1..events.len())
                        .take(1)
                        .filter(|&i| events[i].1 == letter)
                        .collect(),
                    1 => after.take(1).collect(),
                    _ => after.collect(),
                }
            }
        };
        for i in candidates {
            if let (Some(w), Some(&first)) = (within, chosen.first()) {
                if events[i].0 - events[first].0 > w {
                    continue;
                }
            }
            chosen.push(i);
            extend(steps, events, within, chosen, out);
            chosen.pop();
        }
    }
    let mut out = Vec::new();
    extend(steps, events, within, &mut Vec::new(), &mut out);
    out.sort();
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn single_event_steps_match_the_brute_force_matcher(
        letters in prop::collection::vec(prop::sample::select(vec!['a', 'b', 'c']), 0..14),
        steps in prop::collection::vec((prop::sample::select(vec!['a', 'b', 'c']), 0u8..3), 2..4),
        within in prop::option::of(5i64..60),
        lag in prop::collection::vec(0i64..3, 14),
        p in 1usize..=3,
    ) {
        // Unique, increasing times 10 apart, delivered up to 2 positions out of order.
        let sorted: Vec<(i64, char, u32)> = letters.iter().enumerate().map(|(i, &c)| (i as i64 * 10, c, i as u32)).collect();
        // Each event is delivered as if it were up to 20 ms late: at most 20 ms out of order.
        let mut delivered = sorted.clone();
        delivered.sort_by_key(|&(t, _, id)| (t + lag[id as usize] * 10, id));
        let mut pattern: Option<Pattern<Ev>> = None;
        for &(letter, contiguity) in &steps {
            let cond = move |e: &Ev| e.1.starts_with(letter);
            let name = format!("s{}", pattern.as_ref().map_or(0, |p| p.steps_len()));
            pattern = Some(match pattern {
                None => Pattern::begin(&name, cond),
                Some(p) => match contiguity {
                    0 => p.next(&name, cond),
                    1 => p.followed_by(&name, cond),
                    _ => p.followed_by_any(&name, cond),
                },
            });
        }
        let mut pattern = pattern.unwrap();
        if let Some(w) = within {
            pattern = pattern.within(Duration::from_millis(w as u64));
        }
        let input: Vec<Ev> = delivered.iter().map(|&(t, c, id)| (Timestamp(t), format!("{c}{id}"), 0)).collect();
        let mut job = Job::new("cep");
        let out = job
            .from_vec("events", input)
            .with_watermarks(WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(30)))
            .key_by(|e| e.2)
            .pattern(pattern)
            .collect();
        job.run(JobConfig::default().parallelism(p).batch_size(2)).unwrap();
        let mut got: Vec<Vec<u32>> = out
            .take()
            .iter()
            .map(|m| m.events().map(|e| e.1[1..].parse().unwrap()).collect())
            .collect();
        got.sort();
        prop_assert_eq!(got, brute_force(&steps, &sorted, within));
    }
}

#[test]
fn memory_stays_bounded_as_the_watermark_advances() {
    // 300k events of 50 keys; a 3-step pattern within 20 ms: partial matches and buffered
    // events are dropped as time passes.
    let input: Vec<Ev> = (0..300_000i64)
        .map(|i| {
            (
                Timestamp(i),
                ["a", "b", "c", "x"][(i % 4) as usize].to_string(),
                ((i / 4) % 50) as u8,
            )
        })
        .collect();
    let mut job = Job::new("cep-bounded");
    let out = job
        .from_vec("events", input)
        .with_watermarks(WatermarkStrategy::monotonous())
        .key_by(|e| e.2)
        .pattern(
            Pattern::begin("a", is("a"))
                .followed_by("b", is("b"))
                .followed_by("c", is("c"))
                .within(Duration::from_millis(20)),
        )
        .collect();
    let handle = job
        .start(JobConfig::default().parallelism(1).batch_size(512))
        .unwrap();
    let mut peak = 0;
    while !handle.is_finished() {
        if let Some(op) = handle
            .metrics()
            .operators
            .iter()
            .find(|o| o.name.starts_with("cep"))
        {
            peak = peak.max(op.state_bytes);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let summary = handle.join().unwrap();
    assert!(!out.is_empty());
    let op = summary
        .operators
        .iter()
        .find(|o| o.name.starts_with("cep"))
        .unwrap();
    assert_eq!(op.state_keys, 0);
    let per_event = (std::mem::size_of::<Ev>() + 16) as u64;
    assert!(
        peak < 20_000 * per_event,
        "peak {peak} bytes for 300k events"
    );
}
