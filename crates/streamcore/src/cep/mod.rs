//! Complex event processing: find [`Pattern`]s of events per key, in event-time order.
//!
//! Events of each key are buffered until the watermark passes them and then fed to the key's
//! matcher in timestamp order, so out-of-order input gives the same matches as sorted input.
//! The matcher keeps partial matches as lists of references into a per-key buffer that holds
//! each event once, however many partial matches include it; events no partial match refers
//! to are dropped. Partial matches that can no longer complete within the pattern's `within`
//! go to the timeout side output, if one is set.
//!
//! A step's condition is a plain predicate on the event; a step may add an iterative condition
//! ([`Pattern::where_partial`]) that also sees the [`PartialMatch`] the event would extend
//! (the events each step took so far), as MATCH_RECOGNIZE's `DEFINE` needs.

mod nfa;
mod operator;
mod pattern;

pub use nfa::PartialMatch;
pub(crate) use operator::CepOperator;
pub use pattern::{AfterMatchSkip, Contiguity, Pattern};

use std::sync::Arc;

/// A match (or a timed-out partial match): each step's name with the events it took, in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Match<T> {
    /// The steps that took events, in pattern order.
    pub steps: Vec<(Arc<str>, Vec<T>)>,
}

impl<T> Match<T> {
    /// The events the step `name` took (empty if it took none).
    pub fn get(&self, name: &str) -> &[T] {
        self.steps
            .iter()
            .find(|(n, _)| &**n == name)
            .map_or(&[], |(_, e)| e.as_slice())
    }

    /// All events of the match, in order.
    pub fn events(&self) -> impl Iterator<Item = &T> {
        self.steps.iter().flat_map(|(_, e)| e.iter())
    }
}

#[cfg(test)]
mod tests;
