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
//! Level 1 is the winning-bid changelog of q9 (on one combined source, as there) (same join, same closed `BETWEEN`, no reserve
//! check — PITFALLS #22), on slimmed auctions and bids: its price is `MAX(B.price)` per
//! auction. Level 2 is a rolling keyed aggregate per category over that changelog: a
//! `Delete` retracts a final price (sum and count), an `Insert` adds one, and each change
//! emits the category's row update, `Delete(old)` then `Insert(new)` (a row whose count drops
//! to zero is only deleted). `AVG` of a `BIGINT` is a `BIGINT` in Flink: `sum / count`,
//! truncated. The sink table names the columns `(id, final)`: `id` is the category.
//! Deviation: the bounded join state of [`mod@super::q9`] (same final table).

use super::winning::{winning_bids, SlimAuction, SlimBid};
use super::{nexmark_source, QueryRow};
use crate::config::{ConfigError, GeneratorConfig};
use crate::model::NexmarkEvent;
use serde::Serialize;
use streamcore::join::{Change, Either};
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

/// Per category: sum and count of the final prices, before and after the last change.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Avg {
    before: (i64, i64),
    now: (i64, i64),
}

fn row(category: i64, (sum, count): (i64, i64)) -> Option<Q4Row> {
    (count > 0).then(|| Q4Row {
        id: category,
        final_: sum / count,
    })
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
        .map(|c| {
            let add = c.is_addition();
            let (a, b) = c.into_row();
            (a.1, b.1, add)
        })
        .key_by(|c| c.0)
        .aggregate(
            |_: &i64| Avg::default(),
            |acc: &mut Avg, (_, price, insert): (i64, i64, bool)| {
                acc.before = acc.now;
                if insert {
                    acc.now = (acc.now.0 + price, acc.now.1 + 1);
                } else {
                    acc.now = (acc.now.0 - price, acc.now.1 - 1);
                }
            },
            |category: &i64, acc: &Avg| {
                let (old, new) = (row(*category, acc.before), row(*category, acc.now));
                let mut changes = Vec::new();
                if old != new {
                    changes.extend(old.map(Change::Delete));
                    changes.extend(new.map(Change::Insert));
                }
                changes
            },
        )
        .flat_map(|changes| changes))
}
