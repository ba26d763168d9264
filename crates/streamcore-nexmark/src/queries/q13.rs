//! q13 — Bounded side-input join: each bid with the side table's value for `auction % 10000`.
//!
//! ```sql
//! SELECT B.auction, B.bidder, B.price, B.`dateTime`, S.`value`
//! FROM (SELECT *, PROCTIME() as p_time FROM bid) B
//! JOIN side_input FOR SYSTEM_TIME AS OF B.p_time AS S
//! ON mod(B.auction, 10000) = S.key;
//! ```
//!
//! The side table is nexmark's `SideInputGenerator` file, 10,000 rows `i,i` for `i` in
//! `0..10000`, built in memory ([`side_input`]) and shared by every parallel instance of a
//! `flat_map` over `NexmarkSource<Bid>` that looks each bid up (an inner lookup join: a bid
//! whose key has no row is dropped; with this table every key has one).
//!
//! Deviation: the table is generated in memory rather than read from
//! `${FLINK_HOME}/data/side_input.txt` (the same rows); being static, the lookup "as of
//! processing time" is a plain hash lookup.

use super::{nexmark_source, QueryRow};
use crate::config::{ConfigError, GeneratorConfig};
use crate::model::Bid;
use compact_str::CompactString;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use streamcore::{Job, Stream, Timestamp};

/// Rows of the side table.
pub const SIDE_INPUT_ROWS: i64 = 10_000;

/// A row of `nexmark_q13`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Q13Row {
    /// Auction id.
    pub auction: i64,
    /// Bidder id.
    pub bidder: i64,
    /// Price, cents.
    pub price: i64,
    /// Bid time.
    #[serde(with = "crate::json::serde_date_time")]
    pub date_time: Timestamp,
    /// The side table's value.
    pub value: CompactString,
}

impl QueryRow for Q13Row {
    const COLUMNS: &'static [&'static str] = &["auction", "bidder", "price", "dateTime", "value"];
}

/// The side table: key `i` → value `"i"`, for `i` in `0..10000`.
pub fn side_input() -> HashMap<i64, CompactString> {
    (0..SIDE_INPUT_ROWS)
        .map(|i| (i, CompactString::from(i.to_string())))
        .collect()
}

/// Builds q13 into `job`.
pub fn q13(job: &mut Job, config: &GeneratorConfig) -> Result<Stream<Q13Row>, ConfigError> {
    let table = Arc::new(side_input());
    Ok(
        nexmark_source::<Bid>(job, "bids", config)?.flat_map(move |b| {
            // SQL's `MOD` has the sign of the dividend, like `%`.
            table.get(&(b.auction % SIDE_INPUT_ROWS)).map(|v| Q13Row {
                auction: b.auction,
                bidder: b.bidder,
                price: b.price,
                date_time: b.date_time,
                value: v.clone(),
            })
        }),
    )
}
