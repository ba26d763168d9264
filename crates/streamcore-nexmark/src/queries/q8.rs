//! q8 — Monitor new users: persons who created an auction in the same 10-second tumbling
//! window in which they registered.
//!
//! ```sql
//! SELECT P.id, P.name, P.starttime
//! FROM (SELECT id, name, window_start AS starttime, window_end AS endtime
//!       FROM TABLE(TUMBLE(TABLE person, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))
//!       GROUP BY id, name, window_start, window_end) P
//! JOIN (SELECT seller, window_start AS starttime, window_end AS endtime
//!       FROM TABLE(TUMBLE(TABLE auction, DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))
//!       GROUP BY seller, window_start, window_end) A
//! ON P.id = A.seller AND P.starttime = A.starttime AND P.endtime = A.endtime;
//! ```
//!
//! A tumbling window join: persons as `(dateTime, id, name)` and auctions as
//! `(dateTime, seller)` are unioned as [`Either`], keyed by `id` / `seller`, cut into
//! 10-second tumbling event-time windows, and aggregated per key and window into the distinct
//! `(id, name)` pairs of the persons and whether any auction was seen. A window with both
//! emits one row per distinct `(id, name)` with the window start — exactly the SQL's join of
//! the two `GROUP BY`s, where the auction side has one row per `(seller, window)`. The join is
//! on the key *and* the window (start and end, reference/pitfalls.md #3). No deviation.

use super::{nexmark_source, QueryRow};
use crate::config::{ConfigError, GeneratorConfig};
use crate::model::{Auction, Person};
use compact_str::CompactString;
use serde::Serialize;
use std::time::Duration;
use streamcore::join::Either;
use streamcore::window::{AggregateFunction, Windows};
use streamcore::{Job, Stream, Timestamp};

/// Window size, 10 s.
pub const WINDOW_MS: i64 = 10_000;

/// A row of `nexmark_q8`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Q8Row {
    /// Person id.
    pub id: i64,
    /// Person name.
    pub name: CompactString,
    /// Window start.
    #[serde(with = "crate::json::serde_date_time")]
    pub stime: Timestamp,
}

impl QueryRow for Q8Row {
    const COLUMNS: &'static [&'static str] = &["id", "name", "stime"];
}

type P = (Timestamp, i64, CompactString);
type A = (Timestamp, i64);

/// Distinct `(id, name)` of the persons, and whether an auction was seen.
#[derive(Clone)]
struct NewSellers;

impl AggregateFunction<Either<P, A>> for NewSellers {
    type Acc = (Vec<(i64, CompactString)>, bool);
    type Out = Vec<(i64, CompactString)>;

    fn create(&self) -> Self::Acc {
        (Vec::new(), false)
    }

    fn add(&self, acc: &mut Self::Acc, r: &Either<P, A>) {
        match r {
            Either::Left((_, id, name)) => {
                if !acc.0.iter().any(|(i, n)| i == id && n == name) {
                    acc.0.push((*id, name.clone()));
                }
            }
            Either::Right(_) => acc.1 = true,
        }
    }

    fn merge(&self, acc: &mut Self::Acc, other: Self::Acc) {
        for p in other.0 {
            if !acc.0.contains(&p) {
                acc.0.push(p);
            }
        }
        acc.1 |= other.1;
    }

    fn result(&self, acc: &Self::Acc) -> Self::Out {
        if acc.1 {
            acc.0.clone()
        } else {
            Vec::new()
        }
    }
}

/// Builds q8 into `job`.
pub fn q8(job: &mut Job, config: &GeneratorConfig) -> Result<Stream<Q8Row>, ConfigError> {
    let persons = nexmark_source::<Person>(job, "persons", config)?
        .map(|p| Either::<P, A>::Left((p.date_time, p.id, p.name)));
    let auctions = nexmark_source::<Auction>(job, "auctions", config)?
        .map(|a| Either::<P, A>::Right((a.date_time, a.seller)));
    Ok(persons
        .union(auctions)
        .key_by(|e| match e {
            Either::Left(p) => p.1,
            Either::Right(a) => a.1,
        })
        .window(Windows::tumbling(Duration::from_millis(WINDOW_MS as u64)))
        .aggregate(NewSellers)
        .flat_map(|r| {
            let stime = r.window.start;
            r.value
                .into_iter()
                .map(move |(id, name)| Q8Row { id, name, stime })
        }))
}
