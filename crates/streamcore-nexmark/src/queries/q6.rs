//! q6 — Average selling price by seller: for each winning bid, the average price of it and
//! the seller's 10 previous winning bids (by bid time). An updating query.
//!
//! ```sql
//! SELECT Q.seller, AVG(Q.price) OVER
//!     (PARTITION BY Q.seller ORDER BY Q.`dateTime` ROWS BETWEEN 10 PRECEDING AND CURRENT ROW)
//! FROM (
//!     SELECT *, ROW_NUMBER() OVER (PARTITION BY A.id, A.seller ORDER BY B.price DESC) AS rownum
//!     FROM (SELECT A.id, A.seller, B.price, B.`dateTime`
//!         FROM auction AS A, bid AS B
//!         WHERE A.id = B.auction and B.`dateTime` between A.`dateTime` and A.expires)
//!     WHERE rownum <= 1
//! ) AS Q;
//! ```
//!
//! The stored Flink version cannot run this (an OVER window on a retracting input,
//! FLINK-19059), so there is no Flink result to match; the semantics implemented is the
//! relational one: the result table has one row per current winning bid `r` of a seller,
//! `(seller, AVG(price))` over `r` and the (up to) 10 winning bids of the same seller before
//! it in `dateTime` order — an 11-row frame (PITFALLS #23), `AVG` of `BIGINT` truncated.
//!
//! Plan: the winning-bid changelog of q9 (slimmed to `(id, seller, price, dateTime)`) is keyed
//! by seller; a rolling aggregate keeps the seller's current winners ordered by
//! `(dateTime, auction id)` and, for each change, emits the changes of the rows whose frame
//! contains the changed winner (it and the 10 after it): `Delete(old row)` / `Insert(new
//! row)`.
//!
//! Deviations: the top-1's tie on price (arbitrary in Flink) keeps the earliest bid, then the
//! first-arrived; `ORDER BY dateTime` ties are broken by auction id. The seller column is a
//! `BIGINT` (the sink declares `VARCHAR`; the text is the same). The seller's winners are kept
//! forever (as an OVER window over an updating input must).

use super::winning::{winning_bids, SlimAuction, SlimBid};
use super::{nexmark_source, QueryRow};
use crate::config::{ConfigError, GeneratorConfig};
use crate::model::NexmarkEvent;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use streamcore::join::{Change, Either};
use streamcore::{Job, Stream};

/// Rows in the OVER frame: the current one and 10 preceding.
pub const FRAME: usize = 11;

/// A row of `nexmark_q6`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
pub struct Q6Row {
    /// Seller id.
    pub seller: i64,
    /// Average of the frame's winning prices, truncated.
    pub avg_price: i64,
}

impl QueryRow for Q6Row {
    const COLUMNS: &'static [&'static str] = &["seller", "avg_price"];
}

/// A seller's winners, `(dateTime, auction) -> price`, and the changes of the last update.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Frames {
    winners: BTreeMap<(i64, i64), i64>,
    changes: Vec<Change<Q6Row>>,
}

impl Frames {
    /// The average of the frame ending at `key`.
    fn avg(&self, key: (i64, i64)) -> i64 {
        let (sum, n) = self
            .winners
            .range(..=key)
            .rev()
            .take(FRAME)
            .fold((0, 0), |(s, n), (_, p)| (s + p, n + 1));
        sum / n
    }

    /// The averages of the frames that contain `key`, by frame end.
    fn affected(&self, key: (i64, i64), rows: usize) -> HashMap<(i64, i64), i64> {
        self.winners
            .range(key..)
            .take(rows)
            .map(|(k, _)| (*k, self.avg(*k)))
            .collect()
    }

    fn update(&mut self, seller: i64, key: (i64, i64), price: Option<i64>) {
        self.changes.clear();
        // Old frames over one more row than the new ones: a deletion shifts one in.
        let old = self.affected(key, FRAME + 2);
        let existed = self.winners.contains_key(&key);
        match price {
            Some(p) => {
                self.winners.insert(key, p);
            }
            None => {
                self.winners.remove(&key);
            }
        }
        let new = self.affected(key, FRAME + 1);
        let row = |avg_price| Q6Row { seller, avg_price };
        if existed && !new.contains_key(&key) {
            self.changes.push(Change::Delete(row(old[&key])));
        }
        let mut keys: Vec<_> = new.keys().copied().collect();
        keys.sort();
        for k in keys {
            let n = new[&k];
            match old.get(&k) {
                Some(&o) if o == n => {}
                Some(&o) => {
                    self.changes.push(Change::Delete(row(o)));
                    self.changes.push(Change::Insert(row(n)));
                }
                None => self.changes.push(Change::Insert(row(n))),
            }
        }
    }
}

/// Builds q6 into `job`.
pub fn q6(job: &mut Job, config: &GeneratorConfig) -> Result<Stream<Change<Q6Row>>, ConfigError> {
    let events = nexmark_source::<NexmarkEvent>(job, "events", config)?.flat_map(|e| match e {
        NexmarkEvent::Auction(a) => Some(Either::Left(SlimAuction(
            a.id,
            a.seller,
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
            (a.1, (b.2 .0, a.0), add.then_some(b.1))
        })
        .key_by(|c| c.0)
        .aggregate(
            |_: &i64| Frames::default(),
            |acc: &mut Frames, (seller, key, price): (i64, (i64, i64), Option<i64>)| {
                acc.update(seller, key, price)
            },
            |_: &i64, acc: &Frames| acc.changes.clone(),
        )
        .flat_map(|changes| changes))
}
