//! The generator's strings: reference/generator-spec.md's constant lists (§1), the channel/URL tables (§7), and
//! the random-character tables that random strings are cut from (§5).
//!
//! Random strings are most of a Nexmark generator's time when made one character (one or two
//! RNG draws) at a time (reference/pitfalls.md #12). Here they are slices of two 64 KiB tables built
//! once per process:
//! - `rand_chars`: each character independently `' '` with probability 1/13, else uniform
//!   `a..=z` — the per-character law of `randString`;
//! - `exact_chars`: uniform `a..=z` — `exactString` (nexmark/nexmark also cuts it from a
//!   table, of 1 MiB; Beam's 6-characters-per-int trick skews its alphabet, reference/pitfalls.md #17).
//!
//! A string of length `len` is the slice at a uniformly random offset drawn from the event's
//! RNG, so lengths keep SPEC's distributions exactly and characters keep their marginal law;
//! strings of different events are overlapping windows of the same table rather than fully
//! independent, which no query can observe (it does make `extra` very compressible — as in
//! nexmark/nexmark). Slices are `&'static str`, so they become [`CompactString`]s without
//! allocating or copying. The tables are 64 KiB rather than Flink's 1 MiB because cutting a
//! `&str` reads the bytes at both ends (the char-boundary check): from a table that stays in
//! the L2 cache that costs nothing, from 2 MiB of tables it was a cache miss per string.
//!
//! Every table is built from a fixed seed: identical in every process and run (unlike Flink's,
//! whose channel URLs are per-JVM random, reference/pitfalls.md #31), and independent of the
//! configured seed, which only steers the per-event draws.

use crate::rng::EventRng;
use compact_str::CompactString;
use std::sync::LazyLock;

/// `FIRST_NAMES` (reference/generator-spec.md §1).
pub const FIRST_NAMES: [&str; 11] = [
    "Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter",
];
/// `LAST_NAMES` (reference/generator-spec.md §1).
pub const LAST_NAMES: [&str; 9] = [
    "Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris",
];
/// `US_CITIES` (reference/generator-spec.md §1).
pub const US_CITIES: [&str; 10] = [
    "Phoenix",
    "Los Angeles",
    "San Francisco",
    "Boise",
    "Portland",
    "Bend",
    "Redmond",
    "Seattle",
    "Kent",
    "Cheyenne",
];
/// `US_STATES` (reference/generator-spec.md §1), upper case as in Beam and Flink.
pub const US_STATES: [&str; 6] = ["AZ", "CA", "ID", "OR", "WA", "WY"];
/// `HOT_CHANNELS` (reference/generator-spec.md §7).
pub const HOT_CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];
/// `CHANNELS_NUMBER` (reference/generator-spec.md §7): non-hot channels are `channel-0` … `channel-9999`.
pub const CHANNELS_NUMBER: usize = 10_000;
/// Length of each random-character table.
pub const TABLE_LEN: usize = 1 << 16;

const _: () = assert!(
    (crate::config::MAX_AVG_BYTE_SIZE as usize) * 6 / 5 < TABLE_LEN,
    "the longest `extra` fits in the table"
);

/// `log2` of the steps per octave of the price table.
pub(crate) const POW2_BITS: u64 = 10;
/// Steps per octave of the price table.
pub(crate) const POW2_STEPS: u64 = 1 << POW2_BITS;

/// Process-wide tables.
pub(crate) struct Tables {
    /// `2^(j / POW2_STEPS)` for `j` in `0..POW2_STEPS` (for prices).
    pub pow2_frac: Vec<f64>,
    /// `randString` characters: `' '` with probability 1/13, else `a..=z`.
    pub rand_chars: &'static str,
    /// `exactString` characters: `a..=z`.
    pub exact_chars: &'static str,
    /// `FIRST_NAMES[i / 9] + " " + LAST_NAMES[i % 9]` for `i` in `0..99`.
    pub names: Vec<CompactString>,
    /// [`US_CITIES`].
    pub cities: Vec<CompactString>,
    /// [`US_STATES`].
    pub states: Vec<CompactString>,
    /// [`HOT_CHANNELS`].
    pub hot_channels: Vec<CompactString>,
    /// One URL per hot channel, never with a `channel_id`.
    pub hot_urls: Vec<CompactString>,
    /// `(channel-k, its cached URL)` for `k` in `0..CHANNELS_NUMBER`, side by side so that a
    /// bid reads one cache line.
    pub channels: Vec<(CompactString, CompactString)>,
}

/// The tables, built on first use (a few milliseconds).
pub(crate) fn tables() -> &'static Tables {
    static TABLES: LazyLock<Tables> = LazyLock::new(build);
    &TABLES
}

/// A [`CompactString`] of a static slice: inline when short, else a pointer to the slice.
#[inline]
pub(crate) fn static_str(s: &'static str) -> CompactString {
    if s.len() <= 24 {
        CompactString::new(s)
    } else {
        CompactString::const_new(s)
    }
}

/// `randString(max, special)` drawn character by character (reference/generator-spec.md §5); only used to build
/// the tables.
fn rand_string_slow(rng: &mut EventRng, max: u64, special: char) -> String {
    let len = 3 + rng.below(max - 3);
    let s: String = (0..len)
        .map(|_| {
            if rng.below(13) == 0 {
                special
            } else {
                (b'a' + rng.below(26) as u8) as char
            }
        })
        .collect();
    s.trim_matches(' ').to_string()
}

/// `abs(Integer.reverse(k))` with Java's `int` semantics: `abs(MIN_VALUE)` stays negative.
pub fn java_abs_reverse(k: i32) -> i32 {
    k.reverse_bits().wrapping_abs()
}

fn build() -> Tables {
    let mut rng = EventRng::from_state(0x6e65_786d_6172_6b21); // "nexmark!"
    let rand: String = (0..TABLE_LEN)
        .map(|_| {
            if rng.below(13) == 0 {
                ' '
            } else {
                (b'a' + rng.below(26) as u8) as char
            }
        })
        .collect();
    let exact: String = (0..TABLE_LEN)
        .map(|_| (b'a' + rng.below(26) as u8) as char)
        .collect();
    let base_url = |rng: &mut EventRng| {
        format!(
            "https://www.nexmark.com/{}/{}/{}/item.htm?query=1",
            rand_string_slow(rng, 5, '_'),
            rand_string_slow(rng, 5, '_'),
            rand_string_slow(rng, 5, '_')
        )
    };
    let hot_urls: Vec<String> = (0..HOT_CHANNELS.len())
        .map(|_| base_url(&mut rng))
        .collect();
    let urls: Vec<String> = (0..CHANNELS_NUMBER)
        .map(|k| {
            let mut url = base_url(&mut rng);
            if rng.below(10) > 0 {
                url.push_str("&channel_id=");
                url.push_str(itoa::Buffer::new().format(java_abs_reverse(k as i32)));
            }
            url
        })
        .collect();
    // The URLs live in one leaked (process-lifetime) buffer so they are `&'static str`.
    let all: &'static str =
        String::leak(hot_urls.iter().chain(&urls).map(String::as_str).collect());
    let mut at = 0;
    let mut cut = |len: usize| {
        let s = static_str(&all[at..at + len]);
        at += len;
        s
    };
    let hot_urls = hot_urls.iter().map(|u| cut(u.len())).collect();
    let channels = urls
        .iter()
        .enumerate()
        .map(|(k, u)| {
            let mut channel = CompactString::new("channel-");
            channel.push_str(itoa::Buffer::new().format(k));
            (channel, cut(u.len()))
        })
        .collect();
    Tables {
        pow2_frac: (0..POW2_STEPS)
            .map(|j| (j as f64 / POW2_STEPS as f64).exp2())
            .collect(),
        rand_chars: String::leak(rand),
        exact_chars: String::leak(exact),
        names: (0..FIRST_NAMES.len() * LAST_NAMES.len())
            .map(|i| {
                let mut s = CompactString::new(FIRST_NAMES[i / LAST_NAMES.len()]);
                s.push(' ');
                s.push_str(LAST_NAMES[i % LAST_NAMES.len()]);
                s
            })
            .collect(),
        cities: US_CITIES.iter().map(|&c| CompactString::new(c)).collect(),
        states: US_STATES.iter().map(|&c| CompactString::new(c)).collect(),
        hot_channels: HOT_CHANNELS
            .iter()
            .map(|&c| CompactString::new(c))
            .collect(),
        hot_urls,
        channels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_have_the_documented_alphabets() {
        let t = tables();
        assert_eq!(t.rand_chars.len(), TABLE_LEN);
        assert_eq!(t.exact_chars.len(), TABLE_LEN);
        assert!(t.exact_chars.bytes().all(|b| b.is_ascii_lowercase()));
        assert!(t
            .rand_chars
            .bytes()
            .all(|b| b == b' ' || b.is_ascii_lowercase()));
        let spaces = t.rand_chars.bytes().filter(|&b| b == b' ').count() as f64;
        assert!((spaces / TABLE_LEN as f64 - 1.0 / 13.0).abs() < 0.002);
        assert_eq!(t.names.len(), 99);
        assert_eq!(t.names[0], "Peter Shultz");
        assert_eq!(t.names[98], "Walter Noris");
    }

    #[test]
    fn urls_follow_the_flink_shape() {
        let t = tables();
        assert_eq!(t.channels.len(), CHANNELS_NUMBER);
        assert_eq!(t.channels[1234].0, "channel-1234");
        let urls: Vec<&CompactString> = t.channels.iter().map(|(_, u)| u).collect();
        let with_id = urls.iter().filter(|u| u.contains("&channel_id=")).count();
        assert!((8_800..9_200).contains(&with_id), "{with_id}");
        for u in t.hot_urls.iter().chain(urls) {
            let rest = u.strip_prefix("https://www.nexmark.com/").unwrap();
            let dirs: Vec<&str> = rest.split('/').collect();
            assert_eq!(dirs.len(), 4, "{u}");
            for d in &dirs[..3] {
                assert!((3..=4).contains(&d.len()), "{u}");
                assert!(d.bytes().all(|b| b == b'_' || b.is_ascii_lowercase()));
            }
            assert!(dirs[3].starts_with("item.htm?query=1"));
        }
        assert!(t.hot_urls.iter().all(|u| !u.contains("channel_id")));
    }

    #[test]
    fn channel_id_uses_javas_int_semantics() {
        assert_eq!(java_abs_reverse(0), 0);
        assert_eq!(java_abs_reverse(1), i32::MIN); // "-2147483648", as in Flink
        assert_eq!(java_abs_reverse(2), 1 << 30);
        // reverse(3) = 0xC000_0000 = -2^30 as an int; abs gives 2^30.
        assert_eq!(java_abs_reverse(3), 1 << 30);
    }
}
