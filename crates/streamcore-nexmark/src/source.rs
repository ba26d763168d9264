//! [`NexmarkSource`]: the generator as a parallel streamcore [`Source`].
//!
//! Like [`streamcore::source::Generator`], reader `i` of `P` makes event numbers
//! `i, i+P, i+2P, …`, so the readers advance through event time together and the job sees the
//! same events at every parallelism. Each reader's event times never decrease when
//! `out_of_order_group_size` is 1 (otherwise they lag by at most
//! [`GeneratorConfig::max_out_of_orderness`]).
//!
//! The record type picks what is generated: `NexmarkSource<NexmarkEvent>` makes every event,
//! `NexmarkSource<Bid>` (or `Person`, `Auction`) makes only that type and skips the other
//! event numbers without generating them (reference/pitfalls.md #12) — e.g. q0 needs only bids.
//! `events` still counts event numbers of all types.

use crate::config::{ConfigError, GeneratorConfig};
use crate::generator::NexmarkGenerator;
use crate::model::{Auction, Bid, EventKind, NexmarkEvent, Person};
use std::marker::PhantomData;
use std::time::Instant;
use streamcore::{
    Data, EventTime, Result, Source, SourcePoll, SourceReader, TaskContext, WatermarkStrategy,
};

/// A record type the Nexmark source can produce.
pub trait NexmarkRecord: Data + EventTime {
    /// The record for event number `n`, or `None` when event `n` is of another type.
    fn generate(generator: &NexmarkGenerator, n: u64) -> Option<Self>;

    /// The record within an event read from elsewhere (a file), or `None` for another type.
    fn from_event(event: NexmarkEvent) -> Option<Self>;

    /// The one kind of event this record is, if it is one kind (`None`: any event). Readers
    /// of files skip lines of other kinds by their `event_type` without parsing them.
    const KIND: Option<EventKind> = None;

    /// Appends the records of event numbers `next, next + stride, …` below `limit`, at most
    /// `max` of them, and returns the first event number not looked at. Numbers of other
    /// types are skipped, at most `max · T` of them per call.
    fn fill(
        generator: &NexmarkGenerator,
        out: &mut Vec<Self>,
        mut next: u64,
        stride: u64,
        limit: u64,
        max: usize,
    ) -> u64 {
        let count = limit.saturating_sub(next).div_ceil(stride);
        let wanted = (max as u64).min(count);
        if wanted == 0 {
            return next;
        }
        let scan = count.min(
            wanted
                .saturating_mul(generator.config().total_proportion())
                .max(1),
        );
        out.reserve(wanted as usize);
        let mut produced = 0;
        for _ in 0..scan {
            let n = next;
            next += stride;
            if let Some(record) = Self::generate(generator, n) {
                out.push(record);
                produced += 1;
                if produced == wanted {
                    break;
                }
            }
        }
        next
    }
}

impl NexmarkRecord for NexmarkEvent {
    #[inline]
    fn generate(generator: &NexmarkGenerator, n: u64) -> Option<Self> {
        Some(generator.event(n))
    }

    fn from_event(event: NexmarkEvent) -> Option<Self> {
        Some(event)
    }

    fn fill(
        generator: &NexmarkGenerator,
        out: &mut Vec<Self>,
        next: u64,
        stride: u64,
        limit: u64,
        max: usize,
    ) -> u64 {
        let n = (max as u64).min(limit.saturating_sub(next).div_ceil(stride));
        // A counted iterator: `extend` reserves once and writes in place.
        out.extend((0..n).map(|k| generator.event(next + k * stride)));
        next + n * stride
    }
}

/// A record made only up to the fields the generator was set to make, for readers that need
/// only some fields (SQL scans): the newtype `$part` of `$record` (event kind `$kind`), made
/// by the generator's `$make`. One read from elsewhere ([`NexmarkRecord::from_event`]) is
/// whole.
macro_rules! part_of {
    ($(#[$doc:meta])* $part:ident, $record:ident, $kind:ident, $make:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq)]
        pub struct $part(pub $record);

        impl streamcore::EventTime for $part {
            #[inline]
            fn event_time(&self) -> streamcore::Timestamp {
                self.0.date_time
            }
        }

        impl NexmarkRecord for $part {
            const KIND: Option<EventKind> = Some(EventKind::$kind);

            fn from_event(event: NexmarkEvent) -> Option<Self> {
                match event {
                    NexmarkEvent::$kind(r) => Some($part(r)),
                    _ => None,
                }
            }

            #[inline]
            fn generate(generator: &NexmarkGenerator, n: u64) -> Option<Self> {
                generator.$make(n).map($part)
            }
        }
    };
}

part_of!(
    /// A bid made only up to the fields the generator was set to make
    /// ([`crate::generator::BidFields`], [`NexmarkGenerator::making_bids_up_to`]): the fields
    /// after them are empty. A bid read from elsewhere is whole.
    PartOfBid,
    Bid,
    Bid,
    part_of_bid
);

part_of!(
    /// An auction made only up to the fields the generator was set to make
    /// ([`crate::generator::AuctionFields`], [`NexmarkGenerator::making_auctions_up_to`]), as
    /// [`PartOfBid`] for bids. An auction read from elsewhere is whole.
    PartOfAuction,
    Auction,
    Auction,
    part_of_auction
);

impl NexmarkRecord for Person {
    const KIND: Option<EventKind> = Some(EventKind::Person);

    fn from_event(event: NexmarkEvent) -> Option<Self> {
        match event {
            NexmarkEvent::Person(r) => Some(r),
            _ => None,
        }
    }

    #[inline]
    fn generate(generator: &NexmarkGenerator, n: u64) -> Option<Self> {
        generator.person(n)
    }
}

impl NexmarkRecord for Auction {
    const KIND: Option<EventKind> = Some(EventKind::Auction);

    fn from_event(event: NexmarkEvent) -> Option<Self> {
        match event {
            NexmarkEvent::Auction(r) => Some(r),
            _ => None,
        }
    }

    #[inline]
    fn generate(generator: &NexmarkGenerator, n: u64) -> Option<Self> {
        generator.auction(n)
    }
}

impl NexmarkRecord for Bid {
    const KIND: Option<EventKind> = Some(EventKind::Bid);

    fn from_event(event: NexmarkEvent) -> Option<Self> {
        match event {
            NexmarkEvent::Bid(r) => Some(r),
            _ => None,
        }
    }

    #[inline]
    fn generate(generator: &NexmarkGenerator, n: u64) -> Option<Self> {
        generator.bid(n)
    }
}

/// The Nexmark generator as a source of `T` (all events, or one type).
///
/// ```
/// use streamcore::{Job, JobConfig};
/// use streamcore_nexmark::{Bid, GeneratorConfig, NexmarkSource};
/// let config = GeneratorConfig { events: Some(1000), ..Default::default() };
/// let source = NexmarkSource::<Bid>::new(config).unwrap();
/// let wm = source.watermark_strategy();
/// let mut job = Job::new("bids");
/// let bids = job.source("nexmark", source).with_watermarks(wm).collect();
/// job.run(JobConfig::default().parallelism(2)).unwrap();
/// assert_eq!(bids.len(), 920); // 46 of every 50 events
/// ```
#[derive(Clone, Debug)]
pub struct NexmarkSource<T = NexmarkEvent> {
    generator: NexmarkGenerator,
    _t: PhantomData<fn() -> T>,
}

impl<T: NexmarkRecord> NexmarkSource<T> {
    /// A source for a valid `config`.
    pub fn new(config: GeneratorConfig) -> std::result::Result<Self, ConfigError> {
        Ok(Self::from_generator(NexmarkGenerator::new(config)?))
    }

    /// A source of `generator`'s events.
    pub fn from_generator(generator: NexmarkGenerator) -> Self {
        NexmarkSource {
            generator,
            _t: PhantomData,
        }
    }

    /// The generator.
    pub fn generator(&self) -> &NexmarkGenerator {
        &self.generator
    }

    /// Watermarks that are never late for this source: bounded out-of-orderness by the span
    /// of one out-of-order group (monotonous when `out_of_order_group_size` is 1).
    pub fn watermark_strategy(&self) -> WatermarkStrategy {
        WatermarkStrategy::bounded_out_of_orderness(self.generator.config().max_out_of_orderness())
    }
}

impl<T: NexmarkRecord> Source<T> for NexmarkSource<T> {
    type Reader = NexmarkReader<T>;

    fn create_readers(&mut self, parallelism: usize) -> Result<Vec<Self::Reader>> {
        let p = parallelism.max(1) as u64;
        let cursors = (0..p).map(|i| vec![(i, p)]).collect();
        Ok(self.readers(cursors))
    }

    fn supports_checkpoints(&self) -> bool {
        true
    }

    /// Every unfinished `(next event number, stride)` of the old readers goes to one new
    /// reader, in turn: any parallelism can continue where the checkpoint left off.
    fn restore_readers(
        &mut self,
        parallelism: usize,
        positions: Vec<Vec<u8>>,
    ) -> Result<Vec<Self::Reader>> {
        let end = self.generator.config().events.unwrap_or(u64::MAX);
        let mut cursors: Vec<Vec<(u64, u64)>> =
            (0..parallelism.max(1)).map(|_| Vec::new()).collect();
        let mut i = 0;
        for position in positions {
            for cursor in streamcore::checkpoint::decode::<Vec<(u64, u64)>>(&position)? {
                if cursor.0 < end {
                    let n = cursors.len();
                    cursors[i % n].push(cursor);
                    i += 1;
                }
            }
        }
        Ok(self.readers(cursors))
    }
}

impl<T> NexmarkSource<T> {
    fn readers(&self, cursors: Vec<Vec<(u64, u64)>>) -> Vec<NexmarkReader<T>> {
        let end = self.generator.config().events.unwrap_or(u64::MAX);
        // Rate limiting counts from the lowest event number still to make (0 on a fresh start).
        let base = cursors.iter().flatten().map(|c| c.0).min().unwrap_or(0);
        cursors
            .into_iter()
            .map(|cursors| NexmarkReader {
                generator: self.generator.clone(),
                cursors,
                turn: 0,
                split: 0,
                end,
                base,
                started: None,
                _t: PhantomData,
            })
            .collect()
    }
}

/// One parallel instance of a [`NexmarkSource`].
pub struct NexmarkReader<T> {
    generator: NexmarkGenerator,
    /// `(next event number, stride)` progressions: one, or several after a restore with a
    /// lower parallelism (taken in turn, each its own split for watermarks).
    cursors: Vec<(u64, u64)>,
    turn: usize,
    split: u64,
    end: u64,
    /// The event number rate limiting starts from.
    base: u64,
    started: Option<Instant>,
    _t: PhantomData<fn() -> T>,
}

/// A progression's split id (the same rule as the engine's generator).
fn split_of((next, stride): (u64, u64)) -> u64 {
    streamcore::source::progression_split_id(next, stride)
}

impl<T> NexmarkReader<T> {
    /// With `rate_limited`, event number `base + n` is due `floor(n·1000/rate)` ms after the
    /// first poll (reference/generator-spec.md §4: wall clock follows event time); returns the first number not
    /// yet due.
    fn due(&mut self) -> u64 {
        if !self.generator.config().rate_limited {
            return self.end;
        }
        let started = *self.started.get_or_insert_with(Instant::now);
        let elapsed_ns = started.elapsed().as_nanos();
        let due = elapsed_ns * self.generator.config().first_event_rate as u128 / 1_000_000_000;
        (self.base as u128 + due + 1).min(self.end as u128) as u64
    }
}

impl<T: NexmarkRecord> SourceReader<T> for NexmarkReader<T> {
    fn poll_batch(
        &mut self,
        out: &mut Vec<T>,
        max: usize,
        ctx: &mut TaskContext,
    ) -> Result<SourcePoll> {
        loop {
            if self.cursors.is_empty() {
                return Ok(SourcePoll::Finished);
            }
            self.turn %= self.cursors.len();
            if self.cursors[self.turn].0 < self.end {
                break;
            }
            let done = self.cursors.remove(self.turn);
            if !self.cursors.is_empty() {
                ctx.split_finished(split_of(done));
            }
        }
        let limit = self.due();
        let (next, stride) = self.cursors[self.turn];
        if next >= limit {
            return Ok(SourcePoll::Idle);
        }
        self.split = split_of((next, stride));
        self.cursors[self.turn].0 = T::fill(&self.generator, out, next, stride, limit, max);
        self.turn += 1;
        Ok(SourcePoll::Ready)
    }

    fn split_id(&self) -> u64 {
        self.split
    }

    fn initial_splits(&self) -> Vec<u64> {
        if self.cursors.len() > 1 {
            self.cursors.iter().copied().map(split_of).collect()
        } else {
            Vec::new()
        }
    }

    fn snapshot_position(&mut self) -> Result<Vec<u8>> {
        streamcore::checkpoint::encode(&self.cursors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain<T: NexmarkRecord>(mut r: NexmarkReader<T>, batch: usize) -> Vec<T> {
        let mut ctx = TaskContext::for_test("t");
        let mut out = Vec::new();
        while r.poll_batch(&mut out, batch, &mut ctx).unwrap() != SourcePoll::Finished {}
        out
    }

    fn config(events: u64) -> GeneratorConfig {
        GeneratorConfig {
            events: Some(events),
            ..Default::default()
        }
    }

    #[test]
    fn readers_stride_through_event_numbers() {
        let mut s = NexmarkSource::<NexmarkEvent>::new(config(1000)).unwrap();
        let g = s.generator().clone();
        let readers = s.create_readers(3).unwrap();
        for (i, r) in readers.into_iter().enumerate() {
            let got = drain(r, 7);
            let want: Vec<NexmarkEvent> = (i as u64..1000).step_by(3).map(|n| g.event(n)).collect();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn typed_readers_make_only_their_type() {
        let mut s = NexmarkSource::<Person>::new(config(10_000)).unwrap();
        let people: Vec<Person> = s
            .create_readers(2)
            .unwrap()
            .into_iter()
            .flat_map(|r| drain(r, 3))
            .collect();
        assert_eq!(people.len(), 200);
        let mut ids: Vec<i64> = people.iter().map(|p| p.id).collect();
        ids.sort();
        assert_eq!(ids, (1000..1200).collect::<Vec<_>>());
        let mut s = NexmarkSource::<Bid>::new(config(10_000)).unwrap();
        let bids = drain(s.create_readers(1).unwrap().pop().unwrap(), 1000);
        assert_eq!(bids.len(), 9200);
    }

    #[test]
    fn readers_are_monotonous_in_event_time() {
        let mut s = NexmarkSource::<NexmarkEvent>::new(config(20_000)).unwrap();
        for r in s.create_readers(4).unwrap() {
            let ts: Vec<_> = drain(r, 100).iter().map(|e| e.event_time()).collect();
            assert!(ts.windows(2).all(|w| w[0] <= w[1]));
        }
    }

    #[test]
    fn rate_limited_reader_waits_for_event_time() {
        let mut s = NexmarkSource::<NexmarkEvent>::new(GeneratorConfig {
            events: Some(100),
            first_event_rate: 1,
            rate_limited: true,
            ..Default::default()
        })
        .unwrap();
        let mut r = s.create_readers(1).unwrap().pop().unwrap();
        let mut ctx = TaskContext::for_test("t");
        let mut out = Vec::new();
        // Event 0 is due at once, event 1 only after a second.
        assert_eq!(
            r.poll_batch(&mut out, 10, &mut ctx).unwrap(),
            SourcePoll::Ready
        );
        assert_eq!(out.len(), 1);
        assert_eq!(
            r.poll_batch(&mut out, 10, &mut ctx).unwrap(),
            SourcePoll::Idle
        );
    }

    #[test]
    fn unbounded_source_keeps_going() {
        let mut s = NexmarkSource::<NexmarkEvent>::new(GeneratorConfig {
            events: None,
            ..Default::default()
        })
        .unwrap();
        let mut r = s.create_readers(1).unwrap().pop().unwrap();
        let mut ctx = TaskContext::for_test("t");
        let mut out = Vec::new();
        for _ in 0..10 {
            assert_eq!(
                r.poll_batch(&mut out, 1000, &mut ctx).unwrap(),
                SourcePoll::Ready
            );
        }
        assert_eq!(out.len(), 10_000);
    }
}
