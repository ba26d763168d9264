//! [`TimerQueue`]: keys due at points in time, in time order — what window, join and CEP
//! operators register to be woken when the watermark passes a time.

use std::collections::{BTreeMap, VecDeque};

/// Keys to look at once the clock (usually the watermark) reaches a time. A key may be
/// registered more than once; operators check their state when woken, so stale entries are
/// harmless.
///
/// Registrations mostly come in time order (records mostly arrive in order, and a timer is
/// their time plus a constant): those are appended to a queue — no tree node, no list per
/// time — and only one earlier than the last queued goes into an ordered map.
pub(crate) struct TimerQueue<K> {
    /// Registrations in non-decreasing time order.
    in_order: VecDeque<(i64, K)>,
    /// Registrations that came earlier than the last of `in_order`, by time.
    out_of_order: BTreeMap<i64, Vec<K>>,
}

impl<K> Default for TimerQueue<K> {
    fn default() -> Self {
        TimerQueue {
            in_order: VecDeque::new(),
            out_of_order: BTreeMap::new(),
        }
    }
}

impl<K> TimerQueue<K> {
    /// Wakes `key` once the clock reaches `time`.
    #[inline]
    pub(crate) fn add(&mut self, time: i64, key: K) {
        if self.in_order.back().is_none_or(|(last, _)| *last <= time) {
            self.in_order.push_back((time, key));
        } else {
            self.out_of_order.entry(time).or_default().push(key);
        }
    }

    /// The registrations, earliest first (stale entries included).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (i64, &K)> {
        let mut queued = self.in_order.iter().map(|(t, k)| (*t, k)).peekable();
        let mut mapped = self
            .out_of_order
            .iter()
            .flat_map(|(&t, keys)| keys.iter().map(move |k| (t, k)))
            .peekable();
        std::iter::from_fn(move || match (queued.peek(), mapped.peek()) {
            (Some((a, _)), Some((b, _))) if b < a => mapped.next(),
            (Some(_), _) => queued.next(),
            (None, _) => mapped.next(),
        })
    }

    /// The keys of the earliest time at or before `now`, removed from the queue.
    pub(crate) fn pop_due(&mut self, now: i64) -> Option<Vec<K>> {
        let queued = self.in_order.front().map(|(t, _)| *t);
        let mapped = self.out_of_order.first_key_value().map(|(t, _)| *t);
        let time = match (queued, mapped) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        if time > now {
            return None;
        }
        let mut keys = match self.out_of_order.first_entry() {
            Some(e) if *e.key() == time => e.remove(),
            _ => Vec::new(),
        };
        while self.in_order.front().is_some_and(|(t, _)| *t == time) {
            keys.extend(self.in_order.pop_front().map(|(_, k)| k));
        }
        Some(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_time_order_up_to_now() {
        let mut q = TimerQueue::default();
        q.add(20, 'b');
        q.add(10, 'a');
        q.add(20, 'c');
        q.add(30, 'd');
        assert_eq!(q.pop_due(25), Some(vec!['a']));
        assert_eq!(q.pop_due(25), Some(vec!['b', 'c']));
        assert_eq!(q.pop_due(25), None);
        assert_eq!(q.pop_due(30), Some(vec!['d']));
        assert_eq!(q.pop_due(i64::MAX), None);
    }

    /// Against a reference (a sorted list of every registration): whatever the order of
    /// registration, keys come out by time, and each time's keys together.
    #[test]
    fn pops_what_a_sorted_list_would_give() {
        use proptest::prelude::*;
        proptest!(|(adds in proptest::collection::vec((0i64..50, 0u32..1000), 0..200),
                    nows in proptest::collection::vec(0i64..60, 1..20))| {
            let mut q = TimerQueue::default();
            let mut reference: Vec<(i64, u32)> = Vec::new();
            // Registrations interleaved with pops, as an operator does between batches.
            let chunk = adds.len() / nows.len() + 1;
            let mut now_max = i64::MIN;
            for (adds, &now) in adds.chunks(chunk).zip(nows.iter()) {
                for &(t, k) in adds {
                    q.add(t, k);
                    reference.push((t, k));
                }
                now_max = now_max.max(now);
                reference.sort_by_key(|&(t, _)| t);
                while let Some(keys) = q.pop_due(now_max) {
                    let t = reference[0].0;
                    let mut want: Vec<u32> =
                        reference.iter().take_while(|(x, _)| *x == t).map(|&(_, k)| k).collect();
                    reference.drain(..want.len());
                    let mut got = keys;
                    got.sort_unstable();
                    want.sort_unstable();
                    prop_assert_eq!(got, want);
                }
                prop_assert!(reference.first().is_none_or(|&(t, _)| t > now_max));
                let listed: Vec<i64> = q.iter().map(|(t, _)| t).collect();
                let left: Vec<i64> = reference.iter().map(|&(t, _)| t).collect();
                prop_assert_eq!(listed, left);
            }
        });
    }
}
