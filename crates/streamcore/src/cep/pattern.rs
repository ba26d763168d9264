//! The pattern API: a sequence of named steps, each with a condition, a quantifier and how it
//! follows the previous step; negative steps; a time bound; an after-match skip strategy.

use super::PartialMatch;
use std::sync::Arc;
use std::time::Duration;

/// A condition on one event. Conditions are shared, immutable closures (called through a
/// pointer: a pattern's steps have different closure types).
pub(crate) type Condition<T> = Arc<dyn Fn(&T) -> bool + Send + Sync>;

/// A condition on an event and the partial match it would extend (see
/// [`Pattern::where_partial`]).
pub(crate) type PartialCondition<T> = Arc<dyn Fn(&T, &PartialMatch<'_, T>) -> bool + Send + Sync>;

/// How a step's events follow what came before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contiguity {
    /// The very next event (`next`, `consecutive`).
    Strict,
    /// Any later event; non-matching events in between are ignored, and the first matching
    /// one is taken (`followed_by`; loops by default).
    Relaxed,
    /// Any later event, each matching one as an alternative (`followed_by_any`,
    /// `allow_combinations`).
    NonDeterministic,
}

#[derive(Clone)]
pub(crate) struct Step<T> {
    pub(crate) name: Arc<str>,
    pub(crate) condition: Condition<T>,
    /// A further condition that sees the partial match (checked after `condition`).
    pub(crate) partial: Option<PartialCondition<T>>,
    /// Stops a loop: an event satisfying it ends the step (and is not taken).
    pub(crate) until: Option<Condition<T>>,
    pub(crate) min: u32,
    pub(crate) max: u32,
    pub(crate) greedy: bool,
    /// Between the previous step and this one.
    pub(crate) contiguity: Contiguity,
    /// Between this step's own events (loops).
    pub(crate) inner: Contiguity,
    /// A step that must *not* match (`not_next`, `not_followed_by`).
    pub(crate) negative: bool,
}

/// After a match, which partial matches are discarded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AfterMatchSkip {
    /// Keep every partial match (all matches are reported).
    NoSkip,
    /// Discard partial matches that started with the same event as the match.
    SkipToNext,
    /// Discard partial matches that started within the match.
    SkipPastLastEvent,
    /// Discard partial matches that started before the first event of the named step.
    SkipToFirst(String),
    /// Discard partial matches that started before the last event of the named step.
    SkipToLast(String),
}

/// A pattern over events of type `T`.
///
/// ```
/// use std::time::Duration;
/// use streamcore::cep::Pattern;
/// // Three transactions over 500 within 10 minutes, not followed by a verification.
/// let p = Pattern::<(i64, &str)>::begin("big", |t| t.1 == "tx" && t.0 > 500)
///     .times(3)
///     .not_followed_by("verified", |t| t.1 == "verify")
///     .within(Duration::from_secs(600));
/// # let _ = p;
/// ```
#[derive(Clone)]
pub struct Pattern<T> {
    pub(crate) steps: Vec<Step<T>>,
    pub(crate) within: Option<i64>,
    pub(crate) skip: AfterMatchSkip,
}

impl<T: 'static> Pattern<T> {
    fn step(
        name: &str,
        contiguity: Contiguity,
        negative: bool,
        condition: impl Fn(&T) -> bool + Send + Sync + 'static,
    ) -> Step<T> {
        Step {
            name: Arc::from(name),
            condition: Arc::new(condition),
            partial: None,
            until: None,
            min: 1,
            max: 1,
            greedy: false,
            contiguity,
            inner: Contiguity::Relaxed,
            negative,
        }
    }

    /// The first step: an event satisfying `condition`.
    pub fn begin(name: &str, condition: impl Fn(&T) -> bool + Send + Sync + 'static) -> Self {
        Pattern {
            steps: vec![Self::step(name, Contiguity::Relaxed, false, condition)],
            within: None,
            skip: AfterMatchSkip::NoSkip,
        }
    }

    fn then(mut self, step: Step<T>) -> Self {
        self.steps.push(step);
        self
    }

    fn last(&mut self) -> &mut Step<T> {
        self.steps.last_mut().expect("a pattern has a step")
    }

    /// The next step must match the very next event.
    pub fn next(self, name: &str, condition: impl Fn(&T) -> bool + Send + Sync + 'static) -> Self {
        self.then(Self::step(name, Contiguity::Strict, false, condition))
    }

    /// The next step matches a later event; events in between are ignored.
    pub fn followed_by(
        self,
        name: &str,
        condition: impl Fn(&T) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.then(Self::step(name, Contiguity::Relaxed, false, condition))
    }

    /// Like `followed_by`, but every later matching event is an alternative (more matches).
    pub fn followed_by_any(
        self,
        name: &str,
        condition: impl Fn(&T) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.then(Self::step(
            name,
            Contiguity::NonDeterministic,
            false,
            condition,
        ))
    }

    /// The very next event must not satisfy `condition`.
    pub fn not_next(
        self,
        name: &str,
        condition: impl Fn(&T) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.then(Self::step(name, Contiguity::Strict, true, condition))
    }

    /// No event satisfying `condition` may come before the next step (or, as the last step,
    /// within the pattern's `within` time: then the match is emitted when that time passes).
    pub fn not_followed_by(
        self,
        name: &str,
        condition: impl Fn(&T) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.then(Self::step(name, Contiguity::Relaxed, true, condition))
    }

    /// The last step matches exactly `n` events.
    pub fn times(self, n: u32) -> Self {
        self.times_range(n..=n)
    }

    /// The last step matches between `range.start()` and `range.end()` events.
    pub fn times_range(mut self, range: std::ops::RangeInclusive<u32>) -> Self {
        let s = self.last();
        s.min = *range.start();
        s.max = *range.end();
        self
    }

    /// The last step matches one or more events.
    pub fn one_or_more(mut self) -> Self {
        let s = self.last();
        s.min = 1;
        s.max = u32::MAX;
        self
    }

    /// The last step may match no event at all.
    pub fn optional(mut self) -> Self {
        self.last().min = 0;
        self
    }

    /// The last (looping) step takes as many events as it can before the next step may start;
    /// an optional step (`optional()`) then also takes its event rather than being skipped.
    pub fn greedy(mut self) -> Self {
        self.last().greedy = true;
        self
    }

    /// The last (looping) step's events must be consecutive.
    pub fn consecutive(mut self) -> Self {
        self.last().inner = Contiguity::Strict;
        self
    }

    /// The last (looping) step's events combine in every way (non-deterministic).
    pub fn allow_combinations(mut self) -> Self {
        self.last().inner = Contiguity::NonDeterministic;
        self
    }

    /// The last step's events must also satisfy `condition`, which sees the partial match the
    /// event would extend: the events taken so far by each step, in order (an iterative
    /// condition, as Flink's `IterativeCondition`). It is checked only for events that pass
    /// the step's simple condition, so a cheap filter there spares the partial-match look-ups.
    /// A second call replaces the first.
    ///
    /// ```
    /// use streamcore::cep::Pattern;
    /// // A price, then prices each below the one before.
    /// let p = Pattern::<i64>::begin("start", |_| true)
    ///     .next("down", |_| true)
    ///     .where_partial(|price, m| m.previous().is_some_and(|p| price < p))
    ///     .one_or_more()
    ///     .consecutive();
    /// # let _ = p;
    /// ```
    pub fn where_partial(
        mut self,
        condition: impl Fn(&T, &PartialMatch<'_, T>) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.last().partial = Some(Arc::new(condition));
        self
    }

    /// The last (looping) step stops at an event satisfying `condition`.
    pub fn until(mut self, condition: impl Fn(&T) -> bool + Send + Sync + 'static) -> Self {
        self.last().until = Some(Arc::new(condition));
        self
    }

    /// A match's events all lie within `d` of its first event; partial matches that can no
    /// longer finish in time go to the timeout output.
    pub fn within(mut self, d: Duration) -> Self {
        self.within = Some(d.as_millis().min(i64::MAX as u128) as i64);
        self
    }

    /// The after-match skip strategy (default `NoSkip`).
    pub fn skip(mut self, strategy: AfterMatchSkip) -> Self {
        self.skip = strategy;
        self
    }

    /// Number of steps so far.
    pub fn steps_len(&self) -> usize {
        self.steps.len()
    }

    /// Checks the pattern: a loop bound, a first step that is positive, a trailing negative
    /// step only with `within`, and skip strategies naming existing steps.
    pub fn validate(&self) -> Result<(), String> {
        if self.steps[0].negative || self.steps[0].min == 0 {
            return Err("a pattern must begin with a step that matches at least one event".into());
        }
        if self
            .steps
            .windows(2)
            .any(|w| w[0].negative && w[1].negative)
        {
            return Err("two negative steps in a row are not supported".into());
        }
        if self
            .steps
            .iter()
            .any(|s| s.negative && (s.min != 1 || s.max != 1))
        {
            return Err("negative steps cannot be quantified".into());
        }
        for s in &self.steps {
            if s.min > s.max || s.max == 0 {
                return Err(format!(
                    "step `{}`: bad quantifier {}..={}",
                    s.name, s.min, s.max
                ));
            }
        }
        if self
            .steps
            .last()
            .is_some_and(|s| s.negative && s.contiguity == Contiguity::Relaxed)
            && self.within.is_none()
        {
            return Err("a pattern ending with not_followed_by needs within(..)".into());
        }
        if let AfterMatchSkip::SkipToFirst(n) | AfterMatchSkip::SkipToLast(n) = &self.skip {
            if !self.steps.iter().any(|s| &*s.name == n.as_str()) {
                return Err(format!("skip strategy names unknown step `{n}`"));
            }
        }
        Ok(())
    }
}
