//! q4 — Average price for a category: the average winning price (highest bid while open) of
//! the auctions of each category. An updating query.
//!
//! ```sql
//! SELECT Q.category, AVG(Q.final)
//! FROM (
//!     SELECT MAX(B.price) AS final, A.category
//!     FROM auction A, bid B
//!     WHERE A.id = B.auction AND B.`dateTime` BETWEEN A.`dateTime` AND A.expires
//!     GROUP BY A.id, A.category
//! ) Q
//! GROUP BY Q.category;
//! ```
//!
//! A composition of the library's changelog operators: level 1 is the winning-bid changelog
//! of [`winning_bids`] (q9's join and top-1, on one combined source, slimmed auctions and
//! bids; same closed `BETWEEN`, no reserve check — reference/pitfalls.md #22): its price is `MAX(B.price)`
//! per auction. Level 2 is `AVG` per category over that changelog:
//!
//! ```text
//! winning_bids(events)                                // +I new winner, -D the one replaced
//!     .map(|c| c.map(|(a, b)| (category, price)))
//!     .key_by(category)
//!     .group_aggregate_changes(AvgOf(price))          // a -D retracts, a +I adds
//!     .map(|c| c.map(|(category, avg)| Q4Row { id: category, final_: avg }))
//! ```
//!
//! `AvgOf` of an `i64` truncates, as Flink's `AVG` of a `BIGINT` (a `BIGINT`). The sink table
//! names the columns `(id, final)`: `id` is the category. Deviation: the bounded join state of
//! [`mod@super::q9`] (same final table).

use super::winning::{winning_bids, SlimAuction, SlimBid};
use super::{nexmark_source, QueryRow};
use crate::config::{ConfigError, GeneratorConfig};
use crate::model::NexmarkEvent;
use serde::Serialize;
use streamcore::changelog::{AvgOf, Change};
use streamcore::join::Either;
use streamcore::{Job, Stream};

/// A row of `nexmark_q4`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Q4Row {
    /// The category.
    pub id: i64,
    /// The average winning price, truncated.
    #[serde(rename = "final")]
    pub final_: i64,
}

impl QueryRow for Q4Row {
    const COLUMNS: &'static [&'static str] = &["id", "final"];
}

/// Builds q4 into `job`.
pub fn q4(job: &mut Job, config: &GeneratorConfig) -> Result<Stream<Change<Q4Row>>, ConfigError> {
    let events = nexmark_source::<NexmarkEvent>(job, "events", config)?.flat_map(|e| match e {
        NexmarkEvent::Auction(a) => Some(Either::Left(SlimAuction(
            a.id,
            a.category,
            a.date_time,
            a.expires,
        ))),
        NexmarkEvent::Bid(b) => Some(Either::Right(SlimBid(b.auction, b.price, b.date_time))),
        NexmarkEvent::Person(_) => None,
    });
    Ok(winning_bids(events)
        .map(|c| c.map(|(a, b)| (a.1, b.1)))
        .key_by(|c: &Change<(i64, i64)>| c.row().0)
        .group_aggregate_changes(AvgOf::new(|w: &(i64, i64)| w.1))
        .map(|c| {
            c.map(|(category, avg)| Q4Row {
                id: category,
                // A category with a row has a winning price: the average is never NULL.
                final_: avg.unwrap_or_default(),
            })
        }))
}
