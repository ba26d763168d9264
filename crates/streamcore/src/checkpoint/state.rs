//! What an operator writes into a checkpoint and reads back on restore: [`StateSnapshot`]
//! (keyed state per key group, plus one blob of non-keyed operator state) and
//! [`StateRestore`] (the key groups the new instance owns, and every old instance's operator
//! state). Blobs are MessagePack ([`encode`], [`decode`]): compact, and self-describing, so
//! dynamic records ([`crate::Value`]) survive the round trip.

use crate::error::{Result, StreamError};
use serde::de::DeserializeOwned;
use serde::{Serialize, Serializer};
use std::cell::RefCell;

/// Encodes `value` as a state blob (MessagePack).
pub fn encode<S: Serialize + ?Sized>(value: &S) -> Result<Vec<u8>> {
    rmp_serde::to_vec(value).map_err(|e| StreamError::Checkpoint(format!("encoding state: {e}")))
}

/// Decodes a state blob written by [`encode`].
pub fn decode<S: DeserializeOwned>(bytes: &[u8]) -> Result<S> {
    rmp_serde::from_slice(bytes).map_err(|e| {
        StreamError::Checkpoint(format!(
            "decoding state ({} bytes) as {}: {e}",
            bytes.len(),
            std::any::type_name::<S>()
        ))
    })
}

/// Serializes an iterator as a sequence without collecting it first.
pub struct SeqOf<I>(RefCell<Option<I>>);

impl<I> SeqOf<I> {
    /// Wraps `items`; it can be serialized once.
    pub fn new(items: I) -> Self {
        SeqOf(RefCell::new(Some(items)))
    }
}

impl<I> Serialize for SeqOf<I>
where
    I: Iterator,
    I::Item: Serialize,
{
    fn serialize<Ser: Serializer>(&self, s: Ser) -> std::result::Result<Ser::Ok, Ser::Error> {
        let items = self
            .0
            .borrow_mut()
            .take()
            .ok_or_else(|| serde::ser::Error::custom("SeqOf serialized twice"))?;
        s.collect_seq(items)
    }
}

/// The state one operator instance writes at a checkpoint barrier.
///
/// Keyed state goes per key group ([`StateSnapshot::put_group`]) so that a restore with another
/// parallelism hands each group to its new owner; anything else (a watermark, a source
/// position) is operator state ([`StateSnapshot::put_operator`]), which every new instance
/// receives from every old one.
#[derive(Clone, Debug, Default)]
pub struct StateSnapshot {
    pub(crate) groups: Vec<(u32, Vec<u8>)>,
    pub(crate) operator: Option<Vec<u8>>,
    /// Incremental checkpoints: the earlier checkpoints (names, oldest first: a full one, then
    /// incremental ones) whose key-group blobs come before the delta blobs of this one.
    pub(crate) chain: Vec<String>,
}

impl StateSnapshot {
    /// Writes key group `group` already encoded (MessagePack, or a delta blob).
    pub(crate) fn put_group_raw(&mut self, group: u32, bytes: Vec<u8>) {
        self.groups.push((group, bytes));
    }

    /// The earlier checkpoints this snapshot's delta blobs build on (empty: it is complete).
    pub fn chain(&self) -> &[String] {
        &self.chain
    }

    /// Writes the state of key group `group`. Empty groups need not be written.
    pub fn put_group<S: Serialize + ?Sized>(&mut self, group: u32, state: &S) -> Result<()> {
        self.groups.push((group, encode(state)?));
        Ok(())
    }

    /// Writes this instance's non-keyed state (at most once per snapshot).
    pub fn put_operator<S: Serialize + ?Sized>(&mut self, state: &S) -> Result<()> {
        self.operator = Some(encode(state)?);
        Ok(())
    }

    /// The non-keyed state written, encoded (a source's position, say).
    pub fn operator_state(&self) -> Option<&[u8]> {
        self.operator.as_deref()
    }

    /// Bytes written so far.
    pub fn size(&self) -> usize {
        self.groups.iter().map(|(_, b)| b.len()).sum::<usize>()
            + self.operator.as_ref().map_or(0, Vec::len)
    }

    /// True when nothing was written.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty() && self.operator.is_none()
    }
}

/// The state handed to a new operator instance when a job restores from a checkpoint.
#[derive(Clone, Debug, Default)]
pub struct StateRestore {
    pub(crate) groups: Vec<(u32, Vec<u8>)>,
    pub(crate) operator: Vec<Vec<u8>>,
}

impl StateRestore {
    /// The keyed state of every key group this instance owns, decoded.
    pub fn groups<S: DeserializeOwned>(&self) -> impl Iterator<Item = Result<(u32, S)>> + '_ {
        self.groups
            .iter()
            .map(|(g, bytes)| decode(bytes).map(|s| (*g, s)))
    }

    /// The operator state of every instance of the run that wrote the checkpoint (a union:
    /// with unchanged parallelism too, each new instance sees all of them).
    pub fn operator_states<S: DeserializeOwned>(&self) -> Result<Vec<S>> {
        self.operator.iter().map(|b| decode(b)).collect()
    }

    /// True when the checkpoint holds nothing for this instance.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty() && self.operator.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Event, Value};

    #[test]
    fn dynamic_events_round_trip() {
        let mut data = crate::Fields::new();
        data.insert("amount", Value::Float(1.5));
        data.insert("user", Value::from("u1"));
        let e = Event::new("e1", crate::Timestamp(1_500), "t", data).with_partition_key("u1");
        let back: Event = decode(&encode(&e).unwrap()).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn seq_of_serializes_like_a_vec() {
        let v = vec![(1u32, "a".to_string()), (2, "b".to_string())];
        let bytes = encode(&SeqOf::new(v.iter())).unwrap();
        let back: Vec<(u32, String)> = decode(&bytes).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn decoding_garbage_names_the_type() {
        let err = decode::<Vec<u64>>(&[0xc1]).unwrap_err().to_string();
        assert!(err.contains("Vec<u64>"), "{err}");
    }
}
