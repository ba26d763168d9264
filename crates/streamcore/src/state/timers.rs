//! [`TimerQueue`]: keys due at points in time, in time order — what window, join and CEP
//! operators register to be woken when the watermark passes a time.

use std::collections::BTreeMap;

/// Keys to look at once the clock (usually the watermark) reaches a time. A key may be
/// registered more than once; operators check their state when woken, so stale entries are
/// harmless.
pub(crate) struct TimerQueue<K>(BTreeMap<i64, Vec<K>>);

impl<K> Default for TimerQueue<K> {
    fn default() -> Self {
        TimerQueue(BTreeMap::new())
    }
}

impl<K> TimerQueue<K> {
    /// Wakes `key` once the clock reaches `time`.
    pub(crate) fn add(&mut self, time: i64, key: K) {
        self.0.entry(time).or_default().push(key);
    }

    /// The registered times with their keys, earliest first (stale entries included).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (i64, &[K])> {
        self.0.iter().map(|(&t, keys)| (t, keys.as_slice()))
    }

    /// The keys of the earliest time at or before `now`, removed from the queue.
    pub(crate) fn pop_due(&mut self, now: i64) -> Option<Vec<K>> {
        let entry = self.0.first_entry()?;
        (*entry.key() <= now).then(|| entry.remove())
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
    }
}
