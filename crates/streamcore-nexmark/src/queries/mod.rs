//! The Nexmark queries of `/work/`reference/queries.md` (the Flink SQL of nexmark/nexmark)
//! written with streamcore's typed API, one module per query.
//!
//! Each query is a function `qN(job, config)` that adds the query's sources (the built-in
//! generator, [`NexmarkSource`], with its [`NexmarkSource::watermark_strategy`]) and operators
//! to `job` and returns the result stream of typed rows — one struct per query, its fields in
//! the column order of the query's sink table, serialized (serde) under the sink's column names
//! with timestamps as `YYYY-MM-DD HH:MM:SS.fff` and `DECIMAL(23, 3)` as [`Decimal3`].
//!
//! [`build_query`] is the registry: it builds a query by name and hands its typed result
//! stream to a [`RowSink`].
//!
//! Updating queries (q4, q6, q9, q15–q19) return a changelog, `Stream<Change<Row>>`, with
//! Flink's row kinds (`+I`, `-U`/`+U`, `-D`; the changes of one key in order, from the one
//! instance that owns it). They are compositions of the library's changelog operators
//! ([`streamcore::changelog`]: `group_aggregate`, `group_aggregate_changes`, `top_n`,
//! `top_n_ranked`, `deduplicate_by_time`) and stateless maps of their rows; the only keyed
//! functions left are the append-only auction–bid join of [`winning`] and q6's OVER-window
//! frame membership, for which the library has no operator. [`apply_changelog`] turns a
//! changelog into the final table.
//!
//! ## Deviations shared by every query
//!
//! - **Watermarks.** The Flink DDL declares `dateTime - 4 s`; the queries use the generator's
//!   own strategy ([`NexmarkSource::watermark_strategy`]: bounded by the span of one
//!   out-of-order group, so monotonous by default). The generator never emits a record behind
//!   either watermark, so no record is late under either and the results are the same; only
//!   *when* windows fire differs (earlier here).
//! - **Typed sources per view.** A query that reads only bids uses `NexmarkSource<Bid>` (other
//!   event numbers are skipped without being generated); a query on persons and auctions uses
//!   one `NexmarkSource<Person>` and one `NexmarkSource<Auction>` over the same event
//!   numbers. The events are the same as one combined source split by `event_type`. Queries
//!   joining auctions with bids (q4, q6, q9, q20) read one combined
//!   `NexmarkSource<NexmarkEvent>` instead, so that both sides advance together in event time
//!   (with two typed sources, the faster one's state piles up behind the slower one's
//!   watermark).

pub mod q0;
pub mod q1;
pub mod q10;
pub mod q11;
pub mod q12;
pub mod q13;
pub mod q14;
pub mod q15;
pub mod q16;
pub mod q17;
pub mod q18;
pub mod q19;
pub mod q2;
pub mod q20;
pub mod q21;
pub mod q22;
pub mod q3;
pub mod q4;
pub mod q5;
pub mod q6;
pub mod q7;
pub mod q8;
pub mod q9;
mod util;
pub mod winning;

pub use q0::{q0, Q0Row};
pub use q1::{q1, Q1Row};
pub use q10::{q10, Q10Row};
pub use q11::{q11, Q11Row};
pub use q12::{q12, Q12Row};
pub use q13::{q13, Q13Row};
pub use q14::{q14, Q14Row};
pub use q15::{q15, Q15Row};
pub use q16::{q16, Q16Row};
pub use q17::{q17, Q17Row};
pub use q18::{q18, Q18Row};
pub use q19::{q19, Q19Row};
pub use q2::{q2, Q2Row};
pub use q20::{q20, Q20Row};
pub use q21::{q21, Q21Row};
pub use q22::{q22, Q22Row};
pub use q3::{q3, Q3Row};
pub use q4::{q4, Q4Row};
pub use q5::{q5, Q5Row};
pub use q6::{q6, Q6Row};
pub use q7::{q7, q7_of, Q7Row};
pub use q8::{q8, Q8Row};
pub use q9::{q9, Q9Row};
pub use util::GroupOnWatermark;

use crate::config::{ConfigError, GeneratorConfig};
use crate::source::{NexmarkRecord, NexmarkSource};
use serde::{Serialize, Serializer};
use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;
use std::path::Path;
use streamcore::changelog::Change;
use streamcore::WatermarkStrategy;
use streamcore::{Data, Job, Stream};
use streamcore_connectors::{JsonLinesSource, LineDecoder};

/// The queries [`build_query`] knows, in suite order.
pub const QUERY_NAMES: &[&str] = &[
    "q0", "q1", "q2", "q3", "q4", "q5", "q6", "q7", "q8", "q9", "q10", "q11", "q12", "q13", "q14",
    "q15", "q16", "q17", "q18", "q19", "q20", "q21", "q22",
];

/// A result row of a query.
pub trait QueryRow: Data + Serialize + fmt::Debug + PartialEq {
    /// The columns of the query's sink table, in order (the serde field names).
    const COLUMNS: &'static [&'static str];
}

/// Receives the typed result stream of a query built by [`build_query`].
pub trait RowSink {
    /// Attaches whatever consumes the rows of an append-only query (a sink, a counter).
    fn attach<R: QueryRow>(&mut self, rows: Stream<R>);
    /// Attaches whatever consumes the changelog of an updating query.
    fn attach_changelog<R: QueryRow + Hash + Eq>(&mut self, changes: Stream<Change<R>>);
}

/// The final table of a changelog: every inserted row not deleted since (a multiset; a
/// `Delete` removes one equal row). Rows come out in no particular order.
///
/// # Panics
/// If a row is deleted more often than it was inserted.
pub fn apply_changelog<R: Hash + Eq + Clone>(
    changes: impl IntoIterator<Item = Change<R>>,
) -> Vec<R> {
    let mut table: HashMap<R, i64> = HashMap::new();
    for c in changes {
        let d = if c.is_addition() { 1 } else { -1 };
        *table.entry(c.into_row()).or_default() += d;
    }
    let mut rows = Vec::new();
    for (r, n) in table {
        assert!(n >= 0, "a row was deleted more often than inserted");
        rows.extend(std::iter::repeat_n(r, n as usize));
    }
    rows
}

/// Writes `rows` to `path` as CSV with a header of `R::COLUMNS`.
pub fn write_csv<R: QueryRow>(path: &Path, rows: &[R]) -> Result<(), csv::Error> {
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_path(path)?;
    w.write_record(R::COLUMNS)?;
    for r in rows {
        w.serialize(r)?;
    }
    w.flush()?;
    Ok(())
}

/// Why a query could not be built.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// No query of that name.
    #[error("unknown query `{0}` (known: {known})", known = QUERY_NAMES.join(", "))]
    Unknown(String),
    /// The generator configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Builds query `name` (`q0`, `q1`, …; see [`QUERY_NAMES`]) into `job` on the generator
/// configured by `config`, and hands its result stream to `sink`.
pub fn build_query<S: RowSink>(
    name: &str,
    job: &mut Job,
    config: &GeneratorConfig,
    sink: &mut S,
) -> Result<(), QueryError> {
    match name {
        "q0" => sink.attach(q0(job, config)?),
        "q1" => sink.attach(q1(job, config)?),
        "q2" => sink.attach(q2(job, config)?),
        "q3" => sink.attach(q3(job, config)?),
        "q4" => sink.attach_changelog(q4(job, config)?),
        "q5" => sink.attach(q5(job, config)?),
        "q6" => sink.attach_changelog(q6(job, config)?),
        "q7" => sink.attach(q7(job, config)?),
        "q8" => sink.attach(q8(job, config)?),
        "q9" => sink.attach_changelog(q9(job, config)?),
        "q10" => sink.attach(q10(job, config)?),
        "q11" => sink.attach(q11(job, config)?),
        "q12" => sink.attach(q12(job, config)?),
        "q13" => sink.attach(q13(job, config)?),
        "q14" => sink.attach(q14(job, config)?),
        "q15" => sink.attach_changelog(q15(job, config)?),
        "q16" => sink.attach_changelog(q16(job, config)?),
        "q17" => sink.attach_changelog(q17(job, config)?),
        "q18" => sink.attach_changelog(q18(job, config)?),
        "q19" => sink.attach_changelog(q19(job, config)?),
        "q20" => sink.attach(q20(job, config)?),
        "q21" => sink.attach(q21(job, config)?),
        "q22" => sink.attach(q22(job, config)?),
        other => return Err(QueryError::Unknown(other.to_string())),
    }
    Ok(())
}

/// The generator as a source of `T` in `job`, with the generator's watermarks.
pub fn nexmark_source<T: NexmarkRecord>(
    job: &mut Job,
    name: &str,
    config: &GeneratorConfig,
) -> Result<Stream<T>, ConfigError> {
    if let Some(path) = &config.input {
        // Events from a JSON-lines file, read in parallel byte-range splits; the watermark of
        // the Flink DDL (`dateTime - 4 s`).
        let source =
            JsonLinesSource::<T>::typed(path.as_str()).with_decoder(EventLines::<T>(PhantomData));
        let wm = WatermarkStrategy::bounded_out_of_orderness(std::time::Duration::from_secs(4));
        return Ok(job.source(name, source).with_watermarks(wm));
    }
    let source = NexmarkSource::<T>::new(config.clone())?;
    let wm = source.watermark_strategy();
    Ok(job.source(name, source).with_watermarks(wm))
}

/// Decodes lines of the nested JSON layout, keeping the events of type `T`.
struct EventLines<T>(PhantomData<fn() -> T>);

impl<T> Clone for EventLines<T> {
    fn clone(&self) -> Self {
        EventLines(PhantomData)
    }
}

impl<T: NexmarkRecord> LineDecoder for EventLines<T> {
    type Out = T;
    fn decode(&mut self, line: &[u8]) -> Result<Option<T>, String> {
        let line = streamcore_connectors::utf8_line(line)?;
        // A line that starts `{"event_type":N,` (as `--generate` writes them) with another
        // kind than `T`'s is skipped unparsed: a source of one kind reads a third of the
        // bytes or less, and q3/q8's two sources over one file parse each line once.
        if let Some(kind) = T::KIND {
            if let Some(&[digit, b',']) = line
                .as_bytes()
                .strip_prefix(b"{\"event_type\":")
                .and_then(|rest| rest.get(..2))
            {
                if digit.is_ascii_digit() && digit - b'0' != kind as u8 {
                    return Ok(None);
                }
            }
        }
        crate::json::parse_event(line)
            .map(T::from_event)
            .map_err(|e| e.to_string())
    }
}

/// A `DECIMAL(p, 3)` value: an integer number of thousandths, printed as `-12.345`.
///
/// `0.908 * price` (q1, q14) is exact in thousandths: `price * 908`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Decimal3(pub i64);

impl Decimal3 {
    /// `0.908 * cents`, exactly (Flink's `DECIMAL(23, 3)` product).
    pub fn euro(price: i64) -> Self {
        Decimal3(price * 908)
    }
}

impl fmt::Display for Decimal3 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:03}", abs / 1000, abs % 1000)
    }
}

impl Serialize for Decimal3 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal3_prints_three_places() {
        assert_eq!(Decimal3::euro(1).to_string(), "0.908");
        assert_eq!(Decimal3::euro(12345).to_string(), "11209.260");
        assert_eq!(Decimal3(-5).to_string(), "-0.005");
    }
}
