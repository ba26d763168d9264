//! [`Event`]: the dynamic record of the CLI, the SQL layer and the JSON connectors.
//!
//! Its JSON form is exactly
//! `{"event_id":"e1","timestamp":1700000000.123,"event_type":"transaction","data":{...},"partition_key":"user_1","metadata":{}}`.
//! `partition_key` and `metadata` may be left out on input; unknown top-level fields are
//! ignored so that records written by other tools in this shape load unchanged.

use crate::time::Timestamp;
use crate::value::{Fields, Value};
use compact_str::CompactString;
use serde::{Deserialize, Serialize};

/// A dynamic event: an id, an event time, a type, a data map, an optional partition key and
/// metadata (headers, source offsets, lineage).
///
/// ```
/// use streamcore::Event;
/// let e = Event::from_json(
///     r#"{"event_id":"e1","timestamp":1700000000.123,"event_type":"transaction","data":{"amount":125}}"#,
/// ).unwrap();
/// assert_eq!(e.timestamp.millis(), 1_700_000_000_123);
/// assert_eq!(e.get_f64("amount"), Some(125.0));
/// assert_eq!(
///     e.to_json(),
///     r#"{"event_id":"e1","timestamp":1700000000.123,"event_type":"transaction","data":{"amount":125},"partition_key":null,"metadata":{}}"#
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unique per source.
    pub event_id: CompactString,
    /// Event time; float seconds on the wire, exact milliseconds inside.
    pub timestamp: Timestamp,
    /// The kind of event, e.g. `transaction`.
    pub event_type: CompactString,
    /// The payload.
    pub data: Fields,
    /// The default key of `key_by` on events.
    #[serde(default)]
    pub partition_key: Option<CompactString>,
    /// Headers, source offsets, lineage.
    #[serde(default)]
    pub metadata: Fields,
}

impl Event {
    /// A new event with no partition key and empty metadata.
    pub fn new(
        event_id: impl Into<CompactString>,
        timestamp: Timestamp,
        event_type: impl Into<CompactString>,
        data: Fields,
    ) -> Self {
        Event {
            event_id: event_id.into(),
            timestamp,
            event_type: event_type.into(),
            data,
            partition_key: None,
            metadata: Fields::new(),
        }
    }

    /// Sets the partition key.
    pub fn with_partition_key(mut self, key: impl Into<CompactString>) -> Self {
        self.partition_key = Some(key.into());
        self
    }

    /// The data field `name`.
    #[inline]
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.data.get(name)
    }

    /// The data field `name` as a number, if it is one.
    #[inline]
    pub fn get_f64(&self, name: &str) -> Option<f64> {
        self.data.get(name).and_then(Value::as_f64)
    }

    /// The data field `name` as a string, if it is one.
    #[inline]
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.data.get(name).and_then(Value::as_str)
    }

    /// Parses one event from its JSON form. Errors name the field and the reason.
    pub fn from_json(text: &str) -> Result<Event, crate::decode::DecodeError> {
        crate::decode::from_json_str(text)
    }

    /// The JSON form, as one line.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an Event always serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"{"event_id":"e1","timestamp":1700000000.123,"event_type":"transaction","data":{"user_id":"user_1","amount":125.5},"partition_key":"user_1","metadata":{"source":"test"}}"#;

    #[test]
    fn full_form_round_trips_exactly() {
        let e = Event::from_json(FULL).unwrap();
        assert_eq!(e.partition_key.as_deref(), Some("user_1"));
        assert_eq!(e.timestamp, Timestamp(1_700_000_000_123));
        assert_eq!(e.to_json(), FULL);
    }

    #[test]
    fn optional_fields_default() {
        let e = Event::from_json(r#"{"event_id":"a","timestamp":1,"event_type":"t","data":{}}"#)
            .unwrap();
        assert_eq!(e.partition_key, None);
        assert!(e.metadata.is_empty());
        assert_eq!(e.timestamp, Timestamp(1000));
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (r#"{"timestamp":1,"event_type":"t","data":{}}"#, "event_id"),
            (
                r#"{"event_id":"a","timestamp":"soon","event_type":"t","data":{}}"#,
                "timestamp",
            ),
            (
                r#"{"event_id":"a","timestamp":1,"event_type":"t","data":[1]}"#,
                "data",
            ),
            (
                r#"{"event_id":"a","timestamp":1,"event_type":7,"data":{}}"#,
                "event_type",
            ),
            (
                r#"{"event_id":"a","timestamp":1,"event_type":"t","data":{},"metadata":3}"#,
                "metadata",
            ),
        ];
        for (text, field) in cases {
            let err = Event::from_json(text).unwrap_err();
            assert_eq!(err.field, field, "{text}: {err}");
            assert!(err.to_string().contains(field), "{err}");
        }
    }

    #[test]
    fn not_json_at_all_is_a_clear_error() {
        let err = Event::from_json("hello").unwrap_err();
        assert!(err.to_string().contains("expected value"), "{err}");
    }
}
