//! Unit tests of the matcher with iterative conditions (conditions that see the partial
//! match), fed directly, without a job.

use super::nfa::{KeyMatcher, Outcome};
use super::{AfterMatchSkip, Pattern};

/// Feeds `events` (time = position) to a fresh matcher and returns each match as its steps'
/// events.
fn run(pattern: &Pattern<i64>, events: &[i64]) -> Vec<Vec<(String, Vec<i64>)>> {
    pattern.validate().expect("valid pattern");
    let mut m = KeyMatcher::default();
    let mut out = Outcome::default();
    for (i, e) in events.iter().enumerate() {
        m.feed(*e, i as i64, pattern, &mut out, false);
    }
    out.matches
        .into_iter()
        .map(|m| {
            m.steps
                .into_iter()
                .map(|(n, e)| (n.to_string(), e))
                .collect()
        })
        .collect()
}

fn steps(s: &[(&str, &[i64])]) -> Vec<(String, Vec<i64>)> {
    s.iter().map(|(n, e)| (n.to_string(), e.to_vec())).collect()
}

/// Flink's V shape: a start, strictly falling prices (each below the one before, the first
/// below the start), then a rise.
fn v_shape() -> Pattern<i64> {
    Pattern::begin("start", |_| true)
        .next("down", |_| true)
        .where_partial(|p, m| m.previous().is_some_and(|prev| p < prev))
        .one_or_more()
        .consecutive()
        .greedy()
        .next("up", |_| true)
        .where_partial(|p, m| m.previous().is_some_and(|prev| p > prev))
        .skip(AfterMatchSkip::SkipPastLastEvent)
}

#[test]
fn previous_event_decides() {
    let got = run(&v_shape(), &[10, 9, 8, 12, 11, 10, 13]);
    assert_eq!(
        got,
        vec![
            steps(&[("start", &[10]), ("down", &[9, 8]), ("up", &[12])]),
            // 12 was the last event of the first match: skipped past.
            steps(&[("start", &[11]), ("down", &[10]), ("up", &[13])]),
        ]
    );
}

#[test]
fn conditions_see_each_steps_events() {
    // `b` events each above the first `a` event and summing to at most 20.
    let p = Pattern::begin("a", |_| true)
        .followed_by("b", |_| true)
        .where_partial(|x, m| {
            let first_a = *m.get("a").next().expect("a took one");
            let sum: i64 = m.step(1).sum();
            *x > first_a && sum + x <= 20
        })
        .times(2)
        .skip(AfterMatchSkip::SkipPastLastEvent);
    let got = run(&p, &[5, 1, 6, 15, 7, 2, 8]);
    // a=5: b takes 6 (sum 6), 15 would make 21: skipped (relaxed), 7 (sum 13): match.
    assert_eq!(got, vec![steps(&[("a", &[5]), ("b", &[6, 7])])]);
}

#[test]
fn the_partial_match_holds_earlier_events_in_order() {
    let p = Pattern::begin("a", |_| true)
        .next("b", |_| true)
        .next("c", |_| true)
        .where_partial(|x, m| {
            let all: Vec<i64> = m.events().copied().collect();
            m.len() == 2 && !m.is_empty() && all == vec![x - 2, x - 1]
        });
    let got = run(&p, &[1, 2, 3, 5, 6, 7]);
    assert_eq!(
        got,
        vec![
            steps(&[("a", &[1]), ("b", &[2]), ("c", &[3])]),
            steps(&[("a", &[5]), ("b", &[6]), ("c", &[7])]),
        ]
    );
}

#[test]
fn a_simple_condition_filters_before_the_iterative_one() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let p = Pattern::begin("a", |x: &i64| *x > 100).where_partial(move |_, m| {
        c.fetch_add(1, Ordering::Relaxed);
        m.is_empty()
    });
    let got = run(&p, &[1, 2, 300, 4]);
    assert_eq!(got, vec![steps(&[("a", &[300])])]);
    assert_eq!(calls.load(Ordering::Relaxed), 1);
}

#[test]
fn negative_steps_see_the_partial_match() {
    // a, then b, with no event in between equal to a's value.
    let p = Pattern::begin("a", |x: &i64| *x < 10)
        .not_followed_by("same", |_| true)
        .where_partial(|x, m| m.get("a").next() == Some(x))
        .followed_by("b", |x: &i64| *x >= 100)
        .skip(AfterMatchSkip::SkipPastLastEvent);
    // The 3 at the start is repeated before a 100 comes: its run dies; 5's run matches.
    let got = run(&p, &[3, 5, 3, 100, 4, 50, 200]);
    assert_eq!(
        got,
        vec![
            steps(&[("a", &[5]), ("b", &[100])]),
            steps(&[("a", &[4]), ("b", &[200])]),
        ]
    );
}

#[test]
fn a_later_match_is_held_back_until_the_earlier_partial_match_ends() {
    // a b+ c, strictly contiguous. The run from 2 completes at 100; the run from 1 is still
    // alive then (its b takes 100) and completes at 101: under a skip strategy the later
    // match waits, and the earlier one's skip discards it (Flink's order).
    let p = |skip| {
        Pattern::begin("a", |x: &i64| *x < 10)
            .next("b", |x: &i64| *x < 10 || *x == 100)
            .one_or_more()
            .consecutive()
            .next("c", |x: &i64| *x >= 100)
            .where_partial(|x, m| {
                let first = *m.get("a").next().expect("a took one");
                (first == 1 && *x == 101) || (first == 2 && *x == 100)
            })
            .skip(skip)
    };
    let input = [1i64, 2, 3, 100, 101];
    let one = steps(&[("a", &[1]), ("b", &[2, 3, 100]), ("c", &[101])]);
    let two = steps(&[("a", &[2]), ("b", &[3]), ("c", &[100])]);
    assert_eq!(
        run(&p(AfterMatchSkip::SkipPastLastEvent), &input),
        vec![one.clone()]
    );
    // Without a skip strategy nothing waits: both, in completion order.
    assert_eq!(run(&p(AfterMatchSkip::NoSkip), &input), vec![two, one]);

    // Held back: after 100 nothing is out yet; at the end of the input it is final.
    let p = p(AfterMatchSkip::SkipPastLastEvent);
    let mut m = KeyMatcher::default();
    let mut out = Outcome::default();
    for (i, e) in input[..4].iter().enumerate() {
        m.feed(*e, i as i64, &p, &mut out, false);
    }
    assert!(out.matches.is_empty());
    m.finish(&p, &mut out);
    assert_eq!(out.matches.len(), 1);
    assert_eq!(out.matches[0].get("a"), &[2]);
}

#[test]
fn a_greedy_optional_step_takes_its_event() {
    // c also accepts what b takes: greedy, b takes 2; otherwise the shorter match wins.
    let p = |greedy: bool| {
        let p = Pattern::begin("a", |x: &i64| *x == 1)
            .next("b", |x: &i64| *x == 2)
            .optional();
        let p = if greedy { p.greedy() } else { p };
        p.next("c", |x: &i64| *x <= 3)
            .skip(AfterMatchSkip::SkipPastLastEvent)
    };
    assert_eq!(
        run(&p(true), &[1, 2, 3]),
        vec![steps(&[("a", &[1]), ("b", &[2]), ("c", &[3])])]
    );
    assert_eq!(
        run(&p(false), &[1, 2, 3]),
        vec![steps(&[("a", &[1]), ("c", &[2])])]
    );
    // Where b does not match, the step is skipped as before.
    assert_eq!(
        run(&p(true), &[1, 3]),
        vec![steps(&[("a", &[1]), ("c", &[3])])]
    );
}

#[test]
fn a_matcher_checkpointed_before_held_matches_existed_restores() {
    // The state of a key as it was encoded before `pending`: (runs, buffer, next_seq).
    let old = (
        Vec::<()>::new(),
        std::collections::BTreeMap::<u64, i64>::new(),
        7u64,
    );
    let bytes = rmp_serde::to_vec(&old).unwrap();
    let m: KeyMatcher<i64> = rmp_serde::from_slice(&bytes).unwrap();
    assert!(m.is_empty());
    let back: KeyMatcher<i64> = rmp_serde::from_slice(&rmp_serde::to_vec(&m).unwrap()).unwrap();
    assert!(back.is_empty());
}
