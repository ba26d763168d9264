//! Event time: [`Timestamp`], milliseconds since the Unix epoch.
//!
//! Inside the engine time is an exact integer count of milliseconds; on the JSON wire it is
//! float seconds (`1700000000.123`). The conversion is exact to the millisecond for every
//! timestamp within ±60,000 years of the epoch (see the round-trip property test).
//!
//! On input a timestamp may also be an ISO-8601 / RFC 3339 string, as many producers write
//! them: `2023-11-14T22:13:20.123Z`, `2023-11-14T23:13:20+01:00`, `2023-11-14 22:13:20`
//! (no zone: UTC), `2023-11-14` (midnight UTC), or seconds as a string (`"1700000000.123"`).
//! See [`Timestamp::parse`].

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// A point in event time: milliseconds since the Unix epoch.
///
/// ```
/// use streamcore::Timestamp;
/// let t = Timestamp::from_secs_f64(1700000000.123);
/// assert_eq!(t.millis(), 1_700_000_000_123);
/// assert_eq!(t.as_secs_f64(), 1700000000.123);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The smallest timestamp: a watermark of `MIN` means "nothing is known yet".
    pub const MIN: Timestamp = Timestamp(i64::MIN);
    /// The largest timestamp: the final watermark at the end of a bounded input.
    pub const MAX: Timestamp = Timestamp(i64::MAX);

    /// From milliseconds since the epoch.
    pub const fn from_millis(ms: i64) -> Self {
        Timestamp(ms)
    }

    /// Milliseconds since the epoch.
    pub const fn millis(self) -> i64 {
        self.0
    }

    /// From float seconds, rounded to the nearest millisecond; `None` if not finite or out of range.
    pub fn try_from_secs_f64(secs: f64) -> Option<Self> {
        let ms = (secs * 1000.0).round();
        if ms.is_finite() && ms >= i64::MIN as f64 && ms < i64::MAX as f64 {
            Some(Timestamp(ms as i64))
        } else {
            None
        }
    }

    /// From float seconds, rounded to the nearest millisecond (saturating when out of range).
    pub fn from_secs_f64(secs: f64) -> Self {
        Timestamp((secs * 1000.0).round() as i64)
    }

    /// Float seconds, the wire form. Exact: `from_secs_f64(t.as_secs_f64()) == t`.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    /// Parses a timestamp written as text: RFC 3339 / ISO-8601 with a zone (`Z` or `±hh:mm`),
    /// a date and time without a zone (taken as UTC; `T` or a space between them; fractions
    /// down to nanoseconds, rounded to the millisecond toward the past), a date alone
    /// (midnight UTC), or float seconds since the epoch.
    ///
    /// ```
    /// use streamcore::Timestamp;
    /// let t = Timestamp(1_700_000_000_123);
    /// assert_eq!(Timestamp::parse("2023-11-14T22:13:20.123Z"), Ok(t));
    /// assert_eq!(Timestamp::parse("2023-11-14T23:13:20.123+01:00"), Ok(t));
    /// assert_eq!(Timestamp::parse("2023-11-14 22:13:20.123"), Ok(t));
    /// assert_eq!(Timestamp::parse("1700000000.123"), Ok(t));
    /// assert!(Timestamp::parse("yesterday").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Self, String> {
        use chrono::{DateTime, NaiveDate, NaiveDateTime};
        let text = text.trim();
        if let Ok(secs) = text.parse::<f64>() {
            return Timestamp::try_from_secs_f64(secs)
                .ok_or_else(|| format!("timestamp {text} is out of range"));
        }
        if let Ok(t) = DateTime::parse_from_rfc3339(text) {
            return Ok(Timestamp(t.timestamp_millis()));
        }
        for format in [
            "%Y-%m-%dT%H:%M:%S%.f",
            "%Y-%m-%d %H:%M:%S%.f",
            "%Y-%m-%dT%H:%M",
        ] {
            if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
                return Ok(Timestamp(t.and_utc().timestamp_millis()));
            }
        }
        if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            if let Some(t) = d.and_hms_opt(0, 0, 0) {
                return Ok(Timestamp(t.and_utc().timestamp_millis()));
            }
        }
        Err(format!(
            "`{text}` is not a timestamp: expected seconds since the epoch or an ISO-8601 date-time such as 2023-11-14T22:13:20.123Z"
        ))
    }

    /// The current wall-clock time.
    pub fn now() -> Self {
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(d.as_millis() as i64)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.div_euclid(1000);
        let ms = self.0.rem_euclid(1000);
        write!(f, "{secs}.{ms:03}")
    }
}

/// On the wire a timestamp is float seconds since the epoch; integers and ISO-8601 strings
/// ([`Timestamp::parse`]) are accepted too.
impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.as_secs_f64())
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SecondsVisitor;
        impl serde::de::Visitor<'_> for SecondsVisitor {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("seconds since the Unix epoch or an ISO-8601 date-time")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Timestamp, E> {
                Timestamp::parse(v).map_err(E::custom)
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Timestamp, E> {
                Timestamp::try_from_secs_f64(v)
                    .ok_or_else(|| E::custom(format_args!("timestamp {v} is out of range")))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Timestamp, E> {
                v.checked_mul(1000)
                    .map(Timestamp)
                    .ok_or_else(|| E::custom(format_args!("timestamp {v} is out of range")))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Timestamp, E> {
                i64::try_from(v)
                    .map_err(|_| E::custom(format_args!("timestamp {v} is out of range")))
                    .and_then(|v| self.visit_i64(v))
            }
        }
        // `any`: a number or a string, whichever the input holds (JSON, CSV and MessagePack
        // all describe themselves).
        d.deserialize_any(SecondsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn displays_as_seconds_with_three_decimals() {
        assert_eq!(Timestamp(1_700_000_000_123).to_string(), "1700000000.123");
        assert_eq!(Timestamp(-1).to_string(), "-1.999");
        assert_eq!(Timestamp(5).to_string(), "0.005");
    }

    #[test]
    fn rejects_non_finite_seconds() {
        assert_eq!(Timestamp::try_from_secs_f64(f64::NAN), None);
        assert_eq!(Timestamp::try_from_secs_f64(f64::INFINITY), None);
        assert_eq!(Timestamp::try_from_secs_f64(1e300), None);
    }

    #[test]
    fn iso_8601_strings_are_timestamps() {
        let t = Timestamp(1_700_000_000_123);
        for text in [
            "2023-11-14T22:13:20.123Z",
            "2023-11-14t22:13:20.123z",
            "2023-11-14T22:13:20.123+00:00",
            "2023-11-14T17:13:20.123-05:00",
            "2023-11-14 22:13:20.123",
            "2023-11-14T22:13:20.123456789",
            " 2023-11-14T22:13:20.123Z ",
            "1700000000.123",
        ] {
            assert_eq!(Timestamp::parse(text), Ok(t), "{text}");
        }
        assert_eq!(
            Timestamp::parse("2023-11-14T22:13:20"),
            Ok(Timestamp(1_700_000_000_000))
        );
        assert_eq!(
            Timestamp::parse("2023-11-14T22:13"),
            Ok(Timestamp(1_699_999_980_000))
        );
        assert_eq!(
            Timestamp::parse("2023-11-14"),
            Ok(Timestamp(1_699_920_000_000))
        );
        assert_eq!(
            Timestamp::parse("1969-12-31T23:59:59.999Z"),
            Ok(Timestamp(-1))
        );
    }

    #[test]
    fn a_string_that_is_no_timestamp_says_what_is_accepted() {
        let err = Timestamp::parse("14/11/2023").unwrap_err();
        assert!(err.contains("`14/11/2023` is not a timestamp"), "{err}");
        assert!(err.contains("ISO-8601"), "{err}");
        let err = serde_json::from_str::<Timestamp>(r#""soon""#).unwrap_err();
        assert!(
            err.to_string().contains("`soon` is not a timestamp"),
            "{err}"
        );
    }

    #[test]
    fn json_numbers_and_strings_decode() {
        let parse = |s: &str| serde_json::from_str::<Timestamp>(s).unwrap();
        assert_eq!(parse("1700000000.123"), Timestamp(1_700_000_000_123));
        assert_eq!(parse("1700000000"), Timestamp(1_700_000_000_000));
        assert_eq!(
            parse(r#""2023-11-14T22:13:20.123Z""#),
            Timestamp(1_700_000_000_123)
        );
        // Checkpoints (MessagePack) still round-trip.
        let t = Timestamp(1_700_000_000_123);
        let bytes = rmp_serde::to_vec(&t).unwrap();
        assert_eq!(rmp_serde::from_slice::<Timestamp>(&bytes).unwrap(), t);
    }

    proptest! {
        #[test]
        fn float_seconds_round_trip_exactly(ms in -2_000_000_000_000_000i64..2_000_000_000_000_000i64) {
            let t = Timestamp(ms);
            prop_assert_eq!(Timestamp::try_from_secs_f64(t.as_secs_f64()), Some(t));
        }

        #[test]
        fn decimal_text_round_trips(ms in 0i64..4_000_000_000_000i64) {
            // What a JSON writer prints (shortest float) must parse back to the same millisecond.
            let text = serde_json::to_string(&Timestamp(ms).as_secs_f64()).unwrap();
            let back: f64 = text.parse().unwrap();
            prop_assert_eq!(Timestamp::from_secs_f64(back), Timestamp(ms));
        }
    }
}
