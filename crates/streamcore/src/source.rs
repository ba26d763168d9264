//! Sources: the [`Source`] contract, plus the in-memory sources every test and benchmark
//! needs — [`Generator`] (deterministic records from an index) and [`VecSource`].
//!
//! A source is planned once, on the thread that starts the job, into one
//! [`SourceReader`] per parallel instance; each reader then runs on its own worker thread and
//! fills batches on request. How work is cut (files into byte ranges, partitions, index
//! strides) is the source's business.

use crate::context::TaskContext;
use crate::data::Data;
use crate::error::{Result, StreamError};
use crate::sink::Committer;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// What a reader's poll produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourcePoll {
    /// Records may have been added; poll again.
    Ready,
    /// Nothing to read right now (an unbounded source waiting for input or throttled by its
    /// rate); the runner waits a moment before polling again.
    Idle,
    /// This reader has no more records, ever.
    Finished,
}

/// A source of `T` records: plans its parallel readers when the job starts.
pub trait Source<T: Data>: 'static {
    /// The reader type, one per parallel instance.
    type Reader: SourceReader<T>;

    /// How many parallel readers to run given the job's parallelism. Sources that cannot be
    /// read in parallel (stdin) return 1.
    fn parallelism(&self, job_parallelism: usize) -> usize {
        job_parallelism
    }

    /// Creates exactly `parallelism` readers. Called once, before any data flows.
    fn create_readers(&mut self, parallelism: usize) -> Result<Vec<Self::Reader>>;

    /// Whether readers can record their position in a checkpoint and be restored from it.
    /// A job with checkpoints refuses to start with a source that cannot.
    fn supports_checkpoints(&self) -> bool {
        false
    }

    /// Creates exactly `parallelism` readers that continue from `positions`: what every
    /// reader of the run that wrote the checkpoint returned from
    /// [`SourceReader::snapshot_position`] (as many as that run's parallelism, which may
    /// differ). Everything before the positions must not be read again; everything after
    /// must be.
    fn restore_readers(
        &mut self,
        _parallelism: usize,
        _positions: Vec<Vec<u8>>,
    ) -> Result<Vec<Self::Reader>> {
        Err(StreamError::Config(
            "this source cannot restore its position from a checkpoint".into(),
        ))
    }

    /// The committer of a source that tells an outside system what was consumed once a
    /// checkpoint is complete (a Kafka consumer group's offsets), called once when a job with
    /// checkpoints starts. Its committables come from [`SourceReader::pre_commit`]; the
    /// coordinator commits them after the checkpoint's sinks committed. Default: none.
    fn committer(&mut self) -> Result<Option<Box<dyn Committer>>> {
        Ok(None)
    }

    /// The source's own live metrics, shown in the job summary under its name. Default: none.
    fn connector_metrics(&self) -> Option<std::sync::Arc<dyn crate::metrics::ConnectorMetrics>> {
        None
    }
}

/// One parallel instance of a source.
pub trait SourceReader<T>: Send + 'static {
    /// Appends up to `max` records to `out`. Input that cannot be decoded goes through
    /// [`TaskContext::reject_input`], which applies the job's error policy.
    fn poll_batch(
        &mut self,
        out: &mut Vec<T>,
        max: usize,
        ctx: &mut TaskContext,
    ) -> Result<SourcePoll>;

    /// The split the records of the last poll came from (each poll reads from one split).
    /// Watermarks are generated per split. Readers with a single split keep the default.
    fn split_id(&self) -> u64 {
        0
    }

    /// The splits this reader knows it will read before its first poll (after a restore,
    /// say). Each holds the watermark back until it produced records, so that a split read
    /// later does not find the watermark already past its records. Default: none announced.
    fn initial_splits(&self) -> Vec<u64> {
        Vec::new()
    }

    /// The position after the last record returned (encode it with
    /// [`crate::checkpoint::encode`]): called between polls when a checkpoint barrier is
    /// injected, and once more after the reader finished.
    fn snapshot_position(&mut self) -> Result<Vec<u8>> {
        Err(StreamError::Config(
            "this source cannot record its position in a checkpoint".into(),
        ))
    }

    /// What to hand the source's [`Source::committer`] once the checkpoint whose barrier is
    /// being injected completes (called right after [`SourceReader::snapshot_position`]).
    /// Default: nothing.
    fn pre_commit(&mut self) -> Result<Vec<Vec<u8>>> {
        Ok(Vec::new())
    }
}

/// Generates records from their index with a pure function: deterministic, parallel (reader
/// `i` of `P` makes indexes `i, i+P, i+2P, …`, so all readers advance through the index space
/// together), bounded or unbounded, as fast as possible or at a given total rate.
///
/// ```
/// use streamcore::{Job, JobConfig, source::Generator};
/// let mut job = Job::new("squares");
/// let out = job.source("gen", Generator::new(|i| i * i).bounded(5)).collect();
/// job.run(JobConfig::default().parallelism(2)).unwrap();
/// let mut v = out.take();
/// v.sort();
/// assert_eq!(v, vec![0, 1, 4, 9, 16]);
/// ```
#[derive(Clone)]
pub struct Generator<F> {
    make: F,
    count: Option<u64>,
    rate: Option<f64>,
}

impl<T: Data, F: Fn(u64) -> T + Clone + Send + 'static> Generator<F> {
    /// An unbounded generator of `make(0), make(1), …`.
    pub fn new(make: F) -> Self {
        Generator {
            make,
            count: None,
            rate: None,
        }
    }

    /// Stops after `count` records in total.
    pub fn bounded(mut self, count: u64) -> Self {
        self.count = Some(count);
        self
    }

    /// Emits at most `per_second` records per second in total (over all readers).
    pub fn rate(mut self, per_second: f64) -> Self {
        self.rate = Some(per_second);
        self
    }
}

/// Makes record number `i`: the function a [`Generator`] draws from. Every
/// `Fn(u64) -> T + Clone + Send` closure is one.
pub trait MakeRecord<T>: Clone + Send + 'static {
    /// Record number `i`.
    fn make(&self, i: u64) -> T;
}

impl<T, F: Fn(u64) -> T + Clone + Send + 'static> MakeRecord<T> for F {
    #[inline]
    fn make(&self, i: u64) -> T {
        self(i)
    }
}

impl<T: Data, F: MakeRecord<T>> Source<T> for Generator<F> {
    type Reader = GeneratorReader<F>;

    fn create_readers(&mut self, parallelism: usize) -> Result<Vec<Self::Reader>> {
        let cursors = (0..parallelism)
            .map(|i| {
                vec![Cursor {
                    next: i as u64,
                    stride: parallelism as u64,
                }]
            })
            .collect();
        Ok(self.readers(parallelism, cursors))
    }

    fn supports_checkpoints(&self) -> bool {
        true
    }

    fn restore_readers(
        &mut self,
        parallelism: usize,
        positions: Vec<Vec<u8>>,
    ) -> Result<Vec<Self::Reader>> {
        // Every unfinished cursor of the old readers goes to one new reader, in turn.
        let end = self.count.unwrap_or(u64::MAX);
        let mut cursors: Vec<Vec<Cursor>> = (0..parallelism).map(|_| Vec::new()).collect();
        let mut i = 0;
        for position in positions {
            for cursor in crate::checkpoint::decode::<Vec<Cursor>>(&position)? {
                if cursor.next < end {
                    cursors[i % parallelism].push(cursor);
                    i += 1;
                }
            }
        }
        Ok(self.readers(parallelism, cursors))
    }
}

impl<F: Clone> Generator<F> {
    fn readers(&self, parallelism: usize, cursors: Vec<Vec<Cursor>>) -> Vec<GeneratorReader<F>> {
        cursors
            .into_iter()
            .map(|cursors| GeneratorReader {
                make: self.make.clone(),
                cursors,
                turn: 0,
                split: 0,
                end: self.count.unwrap_or(u64::MAX),
                rate: self.rate.map(|r| r / parallelism as f64),
                started: None,
                produced: 0,
            })
            .collect()
    }
}

/// One arithmetic progression of indexes a generator reader still has to make.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Cursor {
    next: u64,
    stride: u64,
}

impl Cursor {
    fn split_id(&self) -> u64 {
        progression_split_id(self.next, self.stride)
    }
}

/// The split id of the index progression `next, next + stride, …`: its stride and residue,
/// stable across restores. Readers that deal progressions to their instances (generators)
/// report it as [`SourceReader::split_id`], so each progression has its own watermark.
pub fn progression_split_id(next: u64, stride: u64) -> u64 {
    (stride << 32) | (next % stride)
}

/// One parallel instance of a [`Generator`].
pub struct GeneratorReader<F> {
    make: F,
    /// The progressions this reader makes: one, or several after a restore with a lower
    /// parallelism. Polls take them in turn (and each is its own split for watermarks), so
    /// that event time advances evenly over all of them.
    cursors: Vec<Cursor>,
    turn: usize,
    split: u64,
    end: u64,
    rate: Option<f64>,
    started: Option<Instant>,
    produced: u64,
}

impl<T: Data, F: MakeRecord<T>> SourceReader<T> for GeneratorReader<F> {
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
            if self.cursors[self.turn].next < self.end {
                break;
            }
            let done = self.cursors.remove(self.turn);
            if !self.cursors.is_empty() {
                // Its watermark must not hold the others back.
                ctx.split_finished(done.split_id());
            }
        }
        let mut n = max as u64;
        if let Some(rate) = self.rate {
            let started = *self.started.get_or_insert_with(Instant::now);
            let due = (started.elapsed().as_secs_f64() * rate) as u64;
            n = n.min(due.saturating_sub(self.produced));
            if n == 0 {
                return Ok(SourcePoll::Idle);
            }
        }
        let cursor = &mut self.cursors[self.turn];
        self.split = cursor.split_id();
        let remaining = (self.end - cursor.next).div_ceil(cursor.stride);
        let n = n.min(remaining);
        let (first, stride) = (cursor.next, cursor.stride);
        // A counted iterator: `extend` reserves once and writes without per-push checks.
        out.extend((0..n).map(|k| self.make.make(first + k * stride)));
        cursor.next += n * stride;
        self.produced += n;
        self.turn += 1;
        Ok(SourcePoll::Ready)
    }

    fn split_id(&self) -> u64 {
        self.split
    }

    fn initial_splits(&self) -> Vec<u64> {
        if self.cursors.len() > 1 {
            self.cursors.iter().map(Cursor::split_id).collect()
        } else {
            Vec::new()
        }
    }

    fn snapshot_position(&mut self) -> Result<Vec<u8>> {
        crate::checkpoint::encode(&self.cursors)
    }
}

/// A bounded source over a vector; reader `i` of `P` reads elements `i, i+P, …`. It is a
/// [`Generator`] over the (shared) vector, so it checkpoints and restores like one.
#[derive(Clone)]
pub struct VecSource<T>(pub Vec<T>);

/// Element `i` of a vector, for [`VecSource`]. Each reader holds its own copy (records need
/// not be `Sync`); the vector source is for small, in-memory inputs.
#[derive(Clone)]
pub struct VecAt<T>(Vec<T>);

impl<T: Data> MakeRecord<T> for VecAt<T> {
    #[inline]
    fn make(&self, i: u64) -> T {
        self.0[i as usize].clone()
    }
}

impl<T: Data> VecSource<T> {
    fn generator(&self) -> Generator<VecAt<T>> {
        Generator {
            count: Some(self.0.len() as u64),
            make: VecAt(self.0.clone()),
            rate: None,
        }
    }
}

impl<T: Data> Source<T> for VecSource<T> {
    type Reader = GeneratorReader<VecAt<T>>;

    fn create_readers(&mut self, parallelism: usize) -> Result<Vec<Self::Reader>> {
        self.generator().create_readers(parallelism)
    }

    fn supports_checkpoints(&self) -> bool {
        true
    }

    fn restore_readers(
        &mut self,
        parallelism: usize,
        positions: Vec<Vec<u8>>,
    ) -> Result<Vec<Self::Reader>> {
        self.generator().restore_readers(parallelism, positions)
    }
}

impl<T: Data> SourceReader<T> for std::vec::IntoIter<T> {
    fn poll_batch(
        &mut self,
        out: &mut Vec<T>,
        max: usize,
        _: &mut TaskContext,
    ) -> Result<SourcePoll> {
        out.extend(self.by_ref().take(max));
        Ok(if self.len() == 0 {
            SourcePoll::Finished
        } else {
            SourcePoll::Ready
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain<T, R: SourceReader<T>>(mut r: R) -> Vec<T> {
        let mut ctx = TaskContext::for_test("t");
        let mut out = Vec::new();
        while r.poll_batch(&mut out, 3, &mut ctx).unwrap() != SourcePoll::Finished {}
        out
    }

    #[test]
    fn generator_readers_partition_the_index_space() {
        let mut g = Generator::new(|i| i).bounded(10);
        let readers = g.create_readers(3).unwrap();
        let parts: Vec<Vec<u64>> = readers.into_iter().map(drain).collect();
        assert_eq!(parts, vec![vec![0, 3, 6, 9], vec![1, 4, 7], vec![2, 5, 8]]);
    }

    #[test]
    fn rate_limited_generator_reports_idle_before_its_time() {
        let mut g = Generator::new(|i| i).bounded(10).rate(1.0);
        let mut r = g.create_readers(1).unwrap().pop().unwrap();
        let mut out = Vec::new();
        let mut ctx = TaskContext::for_test("t");
        assert_eq!(
            r.poll_batch(&mut out, 10, &mut ctx).unwrap(),
            SourcePoll::Idle
        );
        assert!(out.is_empty());
    }
}
