//! The generator's random numbers: a SplitMix64 stream seeded from `(seed, event id)`.
//!
//! Like Beam, every event gets a fresh random stream seeded from its event id, so an event
//! depends only on the configuration and its id — never on which worker made it or what that
//! worker made before. Unlike Beam this is **not** `java.util.Random`: the values differ from
//! Beam's bit for bit, but every draw has the distribution reference/generator-spec.md prescribes (uniform integers
//! in `[0, n)`, uniform doubles in `[0, 1)`), which is what the queries depend on.
//!
//! SplitMix64 (Steele, Lea & Flood, 2014) costs an add and two multiplies per 64-bit draw and
//! passes BigCrush; the initial state is itself a SplitMix64 mix of the event id and the seed,
//! so streams of neighbouring events are unrelated.

/// The golden-ratio increment of SplitMix64.
const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// The SplitMix64 finaliser: a bijective, well-mixing hash of a 64-bit word.
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A small, fast, deterministic random stream (SplitMix64).
///
/// ```
/// use streamcore_nexmark::rng::EventRng;
/// let key = EventRng::seed_key(42);
/// let mut a = EventRng::for_event(key, 7);
/// let mut b = EventRng::for_event(key, 7);
/// assert_eq!(a.next_u64(), b.next_u64());
/// assert!(a.below(10) < 10);
/// ```
#[derive(Clone, Debug)]
pub struct EventRng {
    state: u64,
}

impl EventRng {
    /// Turns a user seed into the key that [`EventRng::for_event`] combines with event ids.
    #[inline]
    pub fn seed_key(seed: u64) -> u64 {
        mix64(seed.wrapping_add(GAMMA))
    }

    /// The stream of the event with id `event_id` under the seed key `seed_key`.
    #[inline]
    pub fn for_event(seed_key: u64, event_id: u64) -> Self {
        EventRng {
            state: mix64(event_id ^ seed_key),
        }
    }

    /// A stream started from a raw state (used to build the process-wide string tables).
    #[inline]
    pub fn from_state(state: u64) -> Self {
        EventRng { state }
    }

    /// The next 64 uniformly random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        mix64(self.state)
    }

    /// A uniform integer in `[0, n)` (`rng.int(n)` / `randLong(n)` in reference/generator-spec.md); `n` must be
    /// positive. Lemire's multiply-shift without the rejection step: one draw, and the bias is
    /// below `n / 2^64`, far below anything a test could see.
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// A uniform double in `[0, 1)` with 53 random bits (`rng.double()` in reference/generator-spec.md).
    #[inline]
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// The "hot" test of reference/generator-spec.md §3: `rng.int(ratio) > 0`, true with probability
    /// `1 - 1/ratio` (never when `ratio` is 1).
    #[inline]
    pub fn hot(&mut self, ratio: u64) -> bool {
        self.below(ratio) > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_is_uniform_enough() {
        let mut r = EventRng::from_state(1);
        let mut counts = [0u32; 7];
        for _ in 0..70_000 {
            counts[r.below(7) as usize] += 1;
        }
        for c in counts {
            assert!((9_500..10_500).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn doubles_are_in_the_unit_interval_with_mean_one_half() {
        let mut r = EventRng::from_state(2);
        let mut sum = 0.0;
        for _ in 0..100_000 {
            let x = r.next_f64();
            assert!((0.0..1.0).contains(&x));
            sum += x;
        }
        assert!((sum / 100_000.0 - 0.5).abs() < 0.01);
    }

    #[test]
    fn streams_depend_on_seed_and_event() {
        let k0 = EventRng::seed_key(0);
        let k1 = EventRng::seed_key(1);
        let first = |k, e| EventRng::for_event(k, e).next_u64();
        assert_eq!(first(k0, 5), first(k0, 5));
        assert_ne!(first(k0, 5), first(k0, 6));
        assert_ne!(first(k0, 5), first(k1, 5));
    }

    #[test]
    fn hot_ratio_one_is_never_hot() {
        let mut r = EventRng::from_state(3);
        assert!((0..1000).all(|_| !r.hot(1)));
        let hot = (0..100_000).filter(|_| r.hot(4)).count();
        assert!((74_000..76_000).contains(&hot), "{hot}");
    }
}
