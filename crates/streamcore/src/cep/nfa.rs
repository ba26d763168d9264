//! The matcher of one key: partial matches ("runs") advanced event by event through the
//! pattern's steps, over a shared buffer that stores each event once however many runs hold it.

use super::pattern::{AfterMatchSkip, Contiguity, Pattern, Step};
use super::Match;
use crate::data::Data;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A partial match: the step it is in, how many events that step took, and its events as
/// (step, sequence number) references into the shared buffer.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Run {
    step: usize,
    count: u32,
    events: Vec<(u16, u64)>,
    start_ts: i64,
    /// For a run forked out of a greedy loop: that loop step, which takes precedence until this
    /// run takes an event of its own.
    greedy_from: Option<usize>,
}

impl Run {
    fn start_seq(&self) -> u64 {
        self.events.first().map_or(u64::MAX, |e| e.1)
    }
    fn last_seq(&self) -> u64 {
        self.events.last().map_or(0, |e| e.1)
    }
}

/// The partial match an event would extend, as an iterative condition sees it (see
/// [`Pattern::where_partial`]): the events taken so far, in order, by step. The event being
/// tested is not part of it.
pub struct PartialMatch<'a, T> {
    events: &'a [(u16, u64)],
    buffer: &'a BTreeMap<u64, T>,
    steps: &'a [Step<T>],
}

impl<'a, T> PartialMatch<'a, T> {
    fn event(&self, seq: u64) -> &'a T {
        self.buffer.get(&seq).expect("a run's events are buffered")
    }

    /// How many events the partial match holds.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// True if it holds none (the event would begin the match).
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// All its events, in order.
    pub fn events(&self) -> impl DoubleEndedIterator<Item = &'a T> + ExactSizeIterator + '_ {
        self.events.iter().map(|e| self.event(e.1))
    }

    /// The events taken by the pattern's `index`th step (counting from 0, negative steps
    /// included), in order.
    pub fn step(&self, index: usize) -> impl DoubleEndedIterator<Item = &'a T> + '_ {
        self.events
            .iter()
            .filter(move |e| e.0 as usize == index)
            .map(|e| self.event(e.1))
    }

    /// The events taken by the step `name`, in order.
    pub fn get(&self, name: &str) -> impl DoubleEndedIterator<Item = &'a T> + '_ {
        let index = self.steps.iter().position(|s| &*s.name == name);
        self.events
            .iter()
            .filter(move |e| Some(e.0 as usize) == index)
            .map(|e| self.event(e.1))
    }

    /// The last event taken (the one before the tested event when steps are contiguous).
    pub fn previous(&self) -> Option<&'a T> {
        self.events.last().map(|e| self.event(e.1))
    }
}

/// Whether `step` takes `event` after the events of `run`.
#[inline]
fn accepts<T>(
    step: &Step<T>,
    event: &T,
    run: &Run,
    buffer: &BTreeMap<u64, T>,
    pattern: &Pattern<T>,
) -> bool {
    (step.condition)(event)
        && step.partial.as_ref().is_none_or(|c| {
            c(
                event,
                &PartialMatch {
                    events: &run.events,
                    buffer,
                    steps: &pattern.steps,
                },
            )
        })
}

/// The runs and buffered events of one key.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct KeyMatcher<T> {
    runs: Vec<Run>,
    buffer: BTreeMap<u64, T>,
    next_seq: u64,
    /// Complete matches held back under a skip strategy until every partial match that
    /// started earlier has ended (Flink's order: a match that started earlier may still
    /// complete and discard them).
    /// Last, with a default: checkpoints from before it restore.
    #[serde(default)]
    pending: Vec<Run>,
}

impl<T> Default for KeyMatcher<T> {
    fn default() -> Self {
        KeyMatcher {
            runs: Vec::new(),
            pending: Vec::new(),
            buffer: BTreeMap::new(),
            next_seq: 0,
        }
    }
}

/// What one step of the matcher produced.
pub(crate) struct Outcome<T> {
    pub(crate) matches: Vec<Match<T>>,
    pub(crate) timeouts: Vec<Match<T>>,
}

impl<T> Default for Outcome<T> {
    fn default() -> Self {
        Outcome {
            matches: Vec::new(),
            timeouts: Vec::new(),
        }
    }
}

impl<T: Data> KeyMatcher<T> {
    pub(crate) fn is_empty(&self) -> bool {
        self.runs.is_empty() && self.pending.is_empty()
    }

    /// Whether complete matches are held back (see [`KeyMatcher::release`]).
    pub(crate) fn is_holding(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Events held (for the state-size metric).
    pub(crate) fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Earliest time at which a run of this key can time out.
    pub(crate) fn next_deadline(&self, within: Option<i64>) -> Option<i64> {
        let w = within?;
        self.runs.iter().map(|r| r.start_ts.saturating_add(w)).min()
    }

    fn materialize(&self, run: &Run, pattern: &Pattern<T>) -> Match<T> {
        let mut steps: Vec<(Arc<str>, Vec<T>)> = Vec::new();
        for &(step, seq) in &run.events {
            let name = &pattern.steps[step as usize].name;
            let event = self
                .buffer
                .get(&seq)
                .expect("a run's events are buffered")
                .clone();
            match steps.last_mut() {
                Some((n, events)) if Arc::ptr_eq(n, name) => events.push(event),
                _ => steps.push((name.clone(), vec![event])),
            }
        }
        Match { steps }
    }

    /// Runs whose time is up at `now` (event time): trailing `not_followed_by` runs complete,
    /// the others time out.
    pub(crate) fn expire(
        &mut self,
        now: i64,
        pattern: &Pattern<T>,
        out: &mut Outcome<T>,
        want_timeouts: bool,
    ) {
        let Some(within) = pattern.within else { return };
        let last = pattern.steps.len() - 1;
        let mut kept = Vec::with_capacity(self.runs.len());
        for run in std::mem::take(&mut self.runs) {
            if run.start_ts.saturating_add(within) >= now {
                kept.push(run);
            } else if run.step == last && pattern.steps[last].negative {
                self.pending.push(run);
            } else if want_timeouts && !run.events.is_empty() {
                out.timeouts.push(self.materialize(&run, pattern));
            }
        }
        self.runs = kept;
        self.release(pattern, out, false);
        self.collect_garbage();
    }

    /// At the end of the input: partial matches can no longer complete, so every held-back
    /// match is final.
    pub(crate) fn finish(&mut self, pattern: &Pattern<T>, out: &mut Outcome<T>) {
        self.release(pattern, out, true);
        self.collect_garbage();
    }

    /// Emits the complete matches in `pending`, ordered by their first event (shortest
    /// first), each discarding the partial and complete matches its skip strategy says.
    /// Under a skip strategy a match waits while a partial match that started earlier lives
    /// (unless `finished`): that one may still complete and discard it.
    fn release(&mut self, pattern: &Pattern<T>, out: &mut Outcome<T>, finished: bool) {
        if self.pending.is_empty() {
            return;
        }
        let mut queue = std::mem::take(&mut self.pending);
        queue.sort_by_key(|r| (r.start_seq(), r.events.len()));
        let hold = pattern.skip != AfterMatchSkip::NoSkip && !finished;
        let mut queue = std::collections::VecDeque::from(queue);
        while let Some(m) = queue.front() {
            let start = m.start_seq();
            if hold
                && self
                    .runs
                    .iter()
                    .any(|r| !r.events.is_empty() && r.start_seq() < start)
            {
                break;
            }
            let m = queue.pop_front().expect("a front");
            if let Some((lo, hi)) = skip_range(&m, pattern) {
                let keep = |r: &Run| !(lo..hi).contains(&r.start_seq());
                queue.retain(keep);
                self.runs.retain(keep);
            }
            out.matches.push(self.materialize(&m, pattern));
        }
        self.pending = queue.into();
    }

    /// Feeds one event (in event-time order).
    pub(crate) fn feed(
        &mut self,
        event: T,
        ts: i64,
        pattern: &Pattern<T>,
        out: &mut Outcome<T>,
        want_timeouts: bool,
    ) {
        // Runs that could only finish too late for this event are over.
        self.expire(ts, pattern, out, want_timeouts);
        let seq = self.next_seq;
        self.next_seq += 1;
        let mut next = Vec::new();
        let mut complete = Vec::new();
        let fresh = Run {
            step: 0,
            count: 0,
            events: Vec::new(),
            start_ts: ts,
            greedy_from: None,
        };
        // The implicit run that starts a new match at every event: it never survives unused.
        let input = Input {
            event: &event,
            ts,
            seq,
            buffer: &self.buffer,
        };
        advance(fresh, &input, pattern, &mut next, &mut complete, false);
        for run in std::mem::take(&mut self.runs) {
            advance(run, &input, pattern, &mut next, &mut complete, true);
        }
        self.buffer.insert(seq, event);
        self.runs = next;
        self.pending.extend(complete);
        self.release(pattern, out, false);
        self.collect_garbage();
    }

    /// Drops buffered events no run refers to any more.
    fn collect_garbage(&mut self) {
        let oldest = self
            .runs
            .iter()
            .chain(&self.pending)
            .filter_map(|r| r.events.first())
            .map(|e| e.1)
            .min();
        match oldest {
            None => self.buffer.clear(),
            Some(seq) => self.buffer = self.buffer.split_off(&seq),
        }
    }
}

/// The sequence numbers whose partial matches a match `m` discards: `[lo, hi)`.
fn skip_range<T>(m: &Run, pattern: &Pattern<T>) -> Option<(u64, u64)> {
    let start = m.start_seq();
    let of_step = |name: &str, first: bool| {
        let mut seqs = m
            .events
            .iter()
            .filter(|(s, _)| &*pattern.steps[*s as usize].name == name)
            .map(|e| e.1);
        if first {
            seqs.next()
        } else {
            seqs.next_back()
        }
    };
    match &pattern.skip {
        AfterMatchSkip::NoSkip => None,
        AfterMatchSkip::SkipToNext => Some((start, start + 1)),
        AfterMatchSkip::SkipPastLastEvent => Some((start, m.last_seq() + 1)),
        AfterMatchSkip::SkipToFirst(n) => of_step(n, true).map(|s| (start, s)),
        AfterMatchSkip::SkipToLast(n) => of_step(n, false).map(|s| (start, s)),
    }
}

/// Moves `run` into `step` without taking an event (epsilon moves): through optional steps to
/// the end (a complete match) or to a step waiting for its first event.
fn enter<T>(
    mut run: Run,
    step: usize,
    pattern: &Pattern<T>,
    next: &mut Vec<Run>,
    complete: &mut Vec<Run>,
) {
    let steps = &pattern.steps;
    if step == steps.len() {
        complete.push(run);
        return;
    }
    run.step = step;
    run.count = 0;
    let s = &steps[step];
    if s.negative && s.contiguity == Contiguity::Relaxed && step == steps.len() - 1 {
        // Trailing not_followed_by: complete once `within` passes without the event.
        next.push(run);
        return;
    }
    if s.min == 0 && !s.negative {
        let mut skipped = run.clone();
        if s.greedy && skipped.greedy_from.is_none() {
            // A greedy optional step takes precedence over skipping it: the run that skipped
            // it ends at an event the step would take.
            skipped.greedy_from = Some(step);
        }
        enter(skipped, step + 1, pattern, next, complete);
    }
    next.push(run);
}

/// The event being fed, with its time, sequence number and the buffer of earlier events.
struct Input<'a, T> {
    event: &'a T,
    ts: i64,
    seq: u64,
    buffer: &'a BTreeMap<u64, T>,
}

fn advance<T>(
    run: Run,
    input: &Input<'_, T>,
    pattern: &Pattern<T>,
    next: &mut Vec<Run>,
    complete: &mut Vec<Run>,
    may_ignore: bool,
) where
    T: 'static,
{
    let (event, ts) = (input.event, input.ts);
    let steps = &pattern.steps;
    let last = steps.len() - 1;
    let s = &steps[run.step];
    if let Some(within) = pattern.within {
        if !run.events.is_empty() && ts - run.start_ts > within {
            return;
        }
    }
    if let Some(g) = run.greedy_from {
        let loop_step = &steps[g];
        if accepts(loop_step, event, &run, input.buffer, pattern)
            && loop_step.until.as_ref().is_none_or(|u| !u(event))
        {
            // The greedy loop this run left takes this event instead.
            return;
        }
    }
    if s.negative {
        if accepts(s, event, &run, input.buffer, pattern) {
            return;
        }
        if run.step == last && s.contiguity == Contiguity::Relaxed {
            next.push(run); // pending: still guarded
            return;
        }
        if run.step == last {
            // Trailing not_next: the next event did not match, so the match is complete.
            complete.push(run);
            return;
        }
        // The guard held for this event: act as the following step for it.
        let mut moved = run.clone();
        moved.step += 1;
        moved.count = 0;
        let mut taken = Vec::new();
        advance_positive(moved, input, pattern, &mut taken, complete);
        let took = !taken.is_empty();
        next.extend(taken);
        // Ignoring the event: `not_followed_by` stays guarded; `not_next` is satisfied.
        let follow = &steps[run.step + 1];
        let can_ignore = match follow.contiguity {
            Contiguity::Strict => false,
            Contiguity::Relaxed => !took,
            Contiguity::NonDeterministic => true,
        };
        if can_ignore {
            let mut stay = run;
            if s.contiguity == Contiguity::Strict {
                stay.step += 1;
            }
            next.push(stay);
        }
        return;
    }
    let stopped = advance_positive(run.clone(), input, pattern, next, complete);
    let took = stopped.took;
    if !may_ignore || stopped.ended {
        return;
    }
    let contiguity = if run.count == 0 {
        s.contiguity
    } else {
        s.inner
    };
    let can_ignore = match contiguity {
        Contiguity::Strict => false,
        Contiguity::Relaxed => !took,
        Contiguity::NonDeterministic => true,
    };
    if can_ignore {
        next.push(run);
    }
}

struct Taken {
    took: bool,
    ended: bool,
}

/// Tries to take `event` into the run's (positive) step.
fn advance_positive<T>(
    run: Run,
    input: &Input<'_, T>,
    pattern: &Pattern<T>,
    next: &mut Vec<Run>,
    complete: &mut Vec<Run>,
) -> Taken
where
    T: 'static,
{
    let (event, ts, seq) = (input.event, input.ts, input.seq);
    let steps = &pattern.steps;
    let s = &steps[run.step];
    if run.count >= 1 && s.until.as_ref().is_some_and(|u| u(event)) {
        // The loop ends here; its continuations were forked when it took its events.
        return Taken {
            took: false,
            ended: true,
        };
    }
    if run.count >= s.max || !accepts(s, event, &run, input.buffer, pattern) {
        return Taken {
            took: false,
            ended: false,
        };
    }
    let mut taken = run;
    if taken.events.is_empty() {
        taken.start_ts = ts;
    }
    taken.events.push((taken.step as u16, seq));
    taken.count += 1;
    taken.greedy_from = None;
    if taken.count >= s.min {
        let mut fork = taken.clone();
        if s.greedy && taken.count < s.max {
            fork.greedy_from = Some(taken.step);
        }
        enter(fork, taken.step + 1, pattern, next, complete);
    }
    if taken.count < s.max {
        next.push(taken);
    }
    Taken {
        took: true,
        ended: false,
    }
}

impl<T: Data + crate::event_time::EventTime> KeyMatcher<T> {
    /// The earliest time of the last event of a held-back match: the time its output will
    /// carry.
    pub(crate) fn held_since(&self) -> Option<i64> {
        self.pending
            .iter()
            .filter_map(|r| self.buffer.get(&r.last_seq()))
            .map(|e| e.event_time().millis())
            .min()
    }
}
