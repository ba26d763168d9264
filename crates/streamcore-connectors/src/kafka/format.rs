//! How Kafka records become stream records and back: [`KafkaDecoder`] (source side) and
//! [`KafkaEncoder`] (sink side), with the built-in formats — [`Json`] (a serde type),
//! [`EventJson`] (the dynamic [`Event`], Kafka metadata added) and [`Raw`] (bytes and all the
//! record's metadata, as a [`KafkaMessage`]).

use compact_str::CompactString;
use rdkafka::message::{BorrowedHeaders, Headers};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::marker::PhantomData;
use streamcore::{Data, Event, Value};

/// One record as read from Kafka, borrowed from the client's buffer.
pub struct KafkaRecord<'a> {
    /// Topic it was read from.
    pub topic: &'a str,
    /// Partition it was read from.
    pub partition: i32,
    /// Its offset in the partition.
    pub offset: i64,
    /// The Kafka timestamp (create or log-append time), in milliseconds, if set.
    pub timestamp: Option<i64>,
    /// The record key.
    pub key: Option<&'a [u8]>,
    /// The record value (`None` for a tombstone).
    pub payload: Option<&'a [u8]>,
    pub(crate) headers: Option<&'a BorrowedHeaders>,
}

impl<'a> KafkaRecord<'a> {
    /// The record's headers, in order: name and value (`None` for a null value).
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, Option<&'a [u8]>)> + 'a {
        self.headers
            .into_iter()
            .flat_map(|h| h.iter().map(|h| (h.key, h.value)))
    }

    /// Where the record came from, for error messages: `topic/partition@offset`.
    pub fn origin(&self) -> String {
        format!("kafka {}/{}@{}", self.topic, self.partition, self.offset)
    }
}

/// Turns a Kafka record into a stream record. `Ok(None)` skips the record (a tombstone, a
/// record of another kind); `Err(reason)` rejects it under the job's error policy (the reason
/// should name the field).
pub trait KafkaDecoder: Clone + Send + 'static {
    /// The record type.
    type Out: Data;
    /// Decodes one record.
    fn decode(&self, record: &KafkaRecord<'_>) -> Result<Option<Self::Out>, String>;
}

/// The value is the JSON form of `T` (serde); tombstones are skipped.
pub struct Json<T>(PhantomData<fn() -> T>);

impl<T> Json<T> {
    /// The JSON format of `T`.
    pub fn new() -> Self {
        Json(PhantomData)
    }
}

impl<T> Default for Json<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Clone for Json<T> {
    fn clone(&self) -> Self {
        Json(PhantomData)
    }
}

fn utf8(payload: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(payload).map_err(|e| format!("the value is not UTF-8: {e}"))
}

impl<T: Data + DeserializeOwned> KafkaDecoder for Json<T> {
    type Out = T;
    fn decode(&self, record: &KafkaRecord<'_>) -> Result<Option<T>, String> {
        match record.payload {
            None => Ok(None),
            Some(p) => streamcore::decode::from_json_str(utf8(p)?)
                .map(Some)
                .map_err(|e| e.to_string()),
        }
    }
}

/// The value is the JSON form of an [`Event`]; the event gets the record's origin in its
/// metadata (`kafka_topic`, `kafka_partition`, `kafka_offset`, `kafka_timestamp`, `kafka_key`,
/// and each header as `kafka_header_NAME`, when text), and the record key as its partition key
/// when the event has none.
#[derive(Clone, Copy, Debug, Default)]
pub struct EventJson;

fn text(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(s) => Value::Str(CompactString::from(s)),
        Err(_) => Value::List(bytes.iter().map(|&b| Value::Int(b as i64)).collect()),
    }
}

impl KafkaDecoder for EventJson {
    type Out = Event;
    fn decode(&self, record: &KafkaRecord<'_>) -> Result<Option<Event>, String> {
        let Some(payload) = record.payload else {
            return Ok(None);
        };
        let mut event: Event =
            streamcore::decode::from_json_str(utf8(payload)?).map_err(|e| e.to_string())?;
        let m = &mut event.metadata;
        m.insert("kafka_topic", Value::Str(record.topic.into()));
        m.insert("kafka_partition", Value::Int(record.partition as i64));
        m.insert("kafka_offset", Value::Int(record.offset));
        if let Some(ts) = record.timestamp {
            m.insert("kafka_timestamp", Value::Int(ts));
        }
        if let Some(key) = record.key {
            m.insert("kafka_key", text(key));
            if event.partition_key.is_none() {
                if let Ok(k) = std::str::from_utf8(key) {
                    event.partition_key = Some(k.into());
                }
            }
        }
        for (name, value) in record.headers() {
            let v = value.map(text).unwrap_or(Value::Null);
            m.insert(format!("kafka_header_{name}"), v);
        }
        Ok(Some(event))
    }
}

/// A Kafka record with everything it carries, owned: the [`Raw`] format's output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KafkaMessage {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Kafka timestamp in milliseconds.
    pub timestamp: Option<i64>,
    /// Key bytes.
    pub key: Option<Vec<u8>>,
    /// Value bytes (`None` for a tombstone).
    pub payload: Option<Vec<u8>>,
    /// Headers in order.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// Raw bytes: every record becomes a [`KafkaMessage`] (tombstones included); never fails.
#[derive(Clone, Copy, Debug, Default)]
pub struct Raw;

impl KafkaDecoder for Raw {
    type Out = KafkaMessage;
    fn decode(&self, r: &KafkaRecord<'_>) -> Result<Option<KafkaMessage>, String> {
        Ok(Some(KafkaMessage {
            topic: r.topic.to_string(),
            partition: r.partition,
            offset: r.offset,
            timestamp: r.timestamp,
            key: r.key.map(<[u8]>::to_vec),
            payload: r.payload.map(<[u8]>::to_vec),
            headers: r
                .headers()
                .map(|(k, v)| (k.to_string(), v.map(<[u8]>::to_vec)))
                .collect(),
        }))
    }
}

/// Turns a stream record into a Kafka record's key and value, written into reused buffers.
pub trait KafkaEncoder<T>: Clone + Send + 'static {
    /// Writes the key into `key` (cleared before); returns false for a record without a key
    /// (the producer's partitioner then spreads such records).
    fn key(&self, record: &T, key: &mut Vec<u8>) -> bool;
    /// Writes the value into `value` (cleared before).
    fn value(&self, record: &T, value: &mut Vec<u8>) -> Result<(), String>;
    /// Whether `record` is written as a tombstone: its key with a null value (a delete in a
    /// compacted topic); `value` is then not called. Default: never.
    fn tombstone(&self, _record: &T) -> bool {
        false
    }
    /// Whether the encoder takes a changelog (an upsert encoder: updates are writes of the
    /// key, deletes tombstones), so that the sink accepts updating streams. Default: no.
    fn accepts_updates(&self) -> bool {
        false
    }
    /// The record's Kafka timestamp, in milliseconds since the epoch (Flink's writable
    /// `timestamp` metadata); `None` leaves it to the producer (the time it is sent). Default:
    /// `None`.
    fn timestamp(&self, _record: &T) -> Option<i64> {
        None
    }
    /// The record's Kafka headers, in order: name and value (`None`: a null value) — Flink's
    /// writable `headers` metadata. Default: none.
    fn headers<'r>(&self, _record: &'r T) -> Vec<RecordHeader<'r>> {
        Vec::new()
    }
}

/// One Kafka header of a record to write: its name and value (`None`: a null value).
pub type RecordHeader<'r> = (&'r str, Option<&'r [u8]>);

/// Where a record's Kafka key comes from.
pub trait RecordKey<T>: Clone + Send + 'static {
    /// Writes the key of `record` into `out`; false when it has none.
    fn write_key(&self, record: &T, out: &mut Vec<u8>) -> bool;
}

/// No key: the producer spreads records over the partitions.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoKey;

impl<T> RecordKey<T> for NoKey {
    fn write_key(&self, _: &T, _: &mut Vec<u8>) -> bool {
        false
    }
}

/// The text of an [`Event`] data field (strings as they are, other values as JSON).
#[derive(Clone, Debug)]
pub struct FieldKey(pub CompactString);

impl RecordKey<Event> for FieldKey {
    fn write_key(&self, record: &Event, out: &mut Vec<u8>) -> bool {
        match record.get(&self.0) {
            None | Some(Value::Null) => false,
            Some(Value::Str(s)) => {
                out.extend_from_slice(s.as_bytes());
                true
            }
            Some(other) => serde_json::to_writer(&mut *out, other).is_ok(),
        }
    }
}

/// The [`Event`]'s partition key.
#[derive(Clone, Copy, Debug, Default)]
pub struct PartitionKeyOf;

impl RecordKey<Event> for PartitionKeyOf {
    fn write_key(&self, record: &Event, out: &mut Vec<u8>) -> bool {
        match &record.partition_key {
            Some(k) => {
                out.extend_from_slice(k.as_bytes());
                true
            }
            None => false,
        }
    }
}

/// A key computed by a function of the record.
#[derive(Clone)]
pub struct KeyFn<F>(pub F);

impl<T, F: Fn(&T) -> Option<String> + Clone + Send + 'static> RecordKey<T> for KeyFn<F> {
    fn write_key(&self, record: &T, out: &mut Vec<u8>) -> bool {
        match (self.0)(record) {
            Some(k) => {
                out.extend_from_slice(k.as_bytes());
                true
            }
            None => false,
        }
    }
}

/// JSON values (serde), keys from `K`.
#[derive(Clone)]
pub struct JsonEncoder<K> {
    pub(crate) key: K,
}

impl<T: Serialize, K: RecordKey<T>> KafkaEncoder<T> for JsonEncoder<K> {
    #[inline]
    fn key(&self, record: &T, key: &mut Vec<u8>) -> bool {
        self.key.write_key(record, key)
    }

    #[inline]
    fn value(&self, record: &T, value: &mut Vec<u8>) -> Result<(), String> {
        serde_json::to_writer(&mut *value, record).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record<'a>(payload: &'a [u8], key: Option<&'a [u8]>) -> KafkaRecord<'a> {
        KafkaRecord {
            topic: "in",
            partition: 3,
            offset: 42,
            timestamp: Some(1_700_000_000_000),
            key,
            payload: Some(payload),
            headers: None,
        }
    }

    #[test]
    fn event_json_adds_kafka_metadata_and_key() {
        let r = record(
            br#"{"event_id":"e1","timestamp":1.5,"event_type":"t","data":{"a":1}}"#,
            Some(b"user_7"),
        );
        let e = EventJson.decode(&r).unwrap().unwrap();
        assert_eq!(e.partition_key.as_deref(), Some("user_7"));
        assert_eq!(e.metadata.get("kafka_offset"), Some(&Value::Int(42)));
        assert_eq!(e.metadata.get("kafka_partition"), Some(&Value::Int(3)));
        assert_eq!(
            e.metadata.get("kafka_topic"),
            Some(&Value::Str("in".into()))
        );
    }

    #[test]
    fn bad_json_is_rejected_naming_the_field() {
        let r = record(
            br#"{"event_id":"e1","timestamp":"soon","event_type":"t","data":{}}"#,
            None,
        );
        let err = EventJson.decode(&r).unwrap_err();
        assert!(err.contains("timestamp"), "{err}");
        assert!(EventJson.decode(&record(b"\xff\xfe", None)).is_err());
    }

    #[test]
    fn keys_from_field_partition_key_or_function() {
        let e = Event::new("e", streamcore::Timestamp(0), "t", Default::default())
            .with_partition_key("pk");
        let mut e2 = e.clone();
        e2.data.insert("user", Value::Str("u1".into()));
        let mut buf = Vec::new();
        let enc = JsonEncoder {
            key: FieldKey("user".into()),
        };
        assert!(enc.key(&e2, &mut buf));
        assert_eq!(buf, b"u1");
        buf.clear();
        assert!(!enc.key(&e, &mut buf));
        let enc = JsonEncoder {
            key: PartitionKeyOf,
        };
        assert!(KafkaEncoder::<Event>::key(&enc, &e, &mut buf));
        assert_eq!(buf, b"pk");
        buf.clear();
        let enc = JsonEncoder {
            key: KeyFn(|e: &Event| Some(e.event_id.to_string())),
        };
        assert!(enc.key(&e, &mut buf));
        assert_eq!(buf, b"e");
    }
}
