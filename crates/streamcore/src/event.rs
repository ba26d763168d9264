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
use std::fmt;
use std::sync::Arc;

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
///
/// An event read by a connector also knows where it came from ([`Event::origin`]: file and
/// line, Kafka partition and offset), so that an operator failing on it can say so. The origin
/// is provenance, not content: it is not part of the JSON form, and two events that differ
/// only in origin are equal.
#[derive(Clone, Debug, Serialize, Deserialize)]
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
    /// Where the event was read, when a connector read it (not serialized). Behind an `Arc`:
    /// events that have none (generated ones) stay small to move through batches, and a clone
    /// (fan-out, state) counts a reference instead of allocating.
    #[serde(skip)]
    pub origin: Option<Arc<RecordOrigin>>,
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        self.event_id == other.event_id
            && self.timestamp == other.timestamp
            && self.event_type == other.event_type
            && self.data == other.data
            && self.partition_key == other.partition_key
            && self.metadata == other.metadata
    }
}

/// Where a record was read: the input (a file, `stdin`, a Kafka topic) and the position in it.
///
/// Sources set it on the [`Event`]s they read; error messages and dead letters name it. The
/// input's name is shared by all the records of a split (an `Arc`); the origin itself is one
/// small allocation per event read (behind an `Arc`, so that an `Event` stays 8 bytes larger
/// than without it, not 48, and clones share it).
///
/// ```
/// use streamcore::event::{RecordOrigin, Position};
/// let at = RecordOrigin::new("events.jsonl".into(), Position::Line { line: 1001, byte_offset: Some(149_710) });
/// assert_eq!(at.to_string(), "events.jsonl line 1001 (byte offset 149710)");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordOrigin {
    /// The input: a file path, `stdin`, `topic payments partition 3`.
    pub input: Arc<str>,
    /// The record's position in it.
    pub position: Position,
}

impl RecordOrigin {
    /// An origin in `input` at `position`.
    pub fn new(input: Arc<str>, position: Position) -> Self {
        RecordOrigin { input, position }
    }
}

/// A record's position in its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Position {
    /// A line of a text input: its 1-based number and, where known, the byte offset where it
    /// starts.
    Line {
        /// 1-based line number.
        line: u64,
        /// Byte offset of the line's start (files; not stdin).
        byte_offset: Option<u64>,
    },
    /// A byte offset, where the line number is not known (a split that starts mid-file).
    ByteOffset(u64),
    /// A message offset (Kafka).
    Offset(i64),
}

/// Sets `origin` on `record` if it is an [`Event`]; does nothing for other record types.
///
/// For sources generic over their record type. The type test is resolved at compile time for
/// each record type, and `origin` is only called for events.
///
/// ```
/// use std::sync::Arc;
/// use streamcore::event::{set_origin, Position, RecordOrigin};
/// use streamcore::{Event, Fields, Timestamp};
/// let mut e = Event::new("e1", Timestamp(0), "t", Fields::new());
/// set_origin(&mut e, || RecordOrigin::new(Arc::from("stdin"), Position::Line { line: 1, byte_offset: None }));
/// assert_eq!(e.origin.unwrap().to_string(), "stdin line 1");
/// let mut n = 5u32;
/// set_origin(&mut n, || unreachable!("not an event"));
/// ```
#[inline]
pub fn set_origin<T: 'static>(record: &mut T, origin: impl FnOnce() -> RecordOrigin) {
    use std::any::{Any, TypeId};
    if TypeId::of::<T>() == TypeId::of::<Event>() {
        if let Some(event) = (record as &mut dyn Any).downcast_mut::<Event>() {
            event.origin = Some(Arc::new(origin()));
        }
    }
}

impl fmt::Display for RecordOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Position::Line {
                line,
                byte_offset: Some(offset),
            } => write!(f, "{} line {line} (byte offset {offset})", self.input),
            Position::Line {
                line,
                byte_offset: None,
            } => write!(f, "{} line {line}", self.input),
            Position::ByteOffset(offset) => write!(f, "{} byte offset {offset}", self.input),
            Position::Offset(offset) => write!(f, "{} offset {offset}", self.input),
        }
    }
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
            origin: None,
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

    /// The data field `name` as an integer, if it is one (JSON numbers without a fraction or
    /// exponent are integers).
    #[inline]
    pub fn get_i64(&self, name: &str) -> Option<i64> {
        self.data.get(name).and_then(Value::as_i64)
    }

    /// The data field `name` as an owned string, if it is one: what a key needs.
    ///
    /// A key must own its data (it outlives the record, in state and across threads), so
    /// `key_by(|e| e.get_str("user_id"))` does not compile — the `&str` borrows from the
    /// event. This is the owned form; strings up to 24 bytes are stored inline, without
    /// allocating.
    ///
    /// ```
    /// use streamcore::{Event, Job, JobConfig, Timestamp, Fields};
    /// let mut data = Fields::new();
    /// data.insert("user_id", "u1");
    /// let mut job = Job::new("per-user");
    /// let keys = job
    ///     .from_vec("events", vec![Event::new("e1", Timestamp(0), "click", data)])
    ///     .key_by(|e| e.get_string("user_id"))
    ///     .reduce(|a, _| a)
    ///     .map(|e| e.event_id.to_string())
    ///     .collect();
    /// job.run(JobConfig::default()).unwrap();
    /// assert_eq!(keys.take(), vec!["e1"]);
    /// ```
    #[inline]
    pub fn get_string(&self, name: &str) -> Option<CompactString> {
        self.get_str(name).map(CompactString::from)
    }

    /// The partition key as a string, empty when the event has none.
    #[inline]
    pub fn partition_key_str(&self) -> &str {
        self.partition_key.as_deref().unwrap_or("")
    }

    /// Sets where the event was read (see [`RecordOrigin`]).
    pub fn with_origin(mut self, origin: RecordOrigin) -> Self {
        self.origin = Some(Arc::new(origin));
        self
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
    fn an_event_stays_small_to_move_through_batches() {
        // Batches move events by value: the origin is behind a pointer so that events without
        // one (the generator's) pay 8 bytes for it, not 48 (a 9% slower hand-written loop).
        assert!(
            std::mem::size_of::<Event>() <= 136,
            "{}",
            std::mem::size_of::<Event>()
        );
    }

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
