//! q2 — Selection: `(auction, price)` of the bids whose auction id is a multiple of 123.
//!
//! ```sql
//! INSERT INTO nexmark_q2 SELECT auction, price FROM bid WHERE MOD(auction, 123) = 0;
//! ```
//!
//! A `filter` and a `map` over `NexmarkSource<Bid>`. `MOD` is SQL's remainder (sign of the
//! dividend); ids are positive, and `% 123 == 0` is the same test for any sign. No deviation.

use super::{nexmark_source, QueryRow};
use crate::config::{ConfigError, GeneratorConfig};
use crate::model::Bid;
use serde::Serialize;
use streamcore::{Job, Stream};

/// A row of `nexmark_q2`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Q2Row {
    /// Auction id.
    pub auction: i64,
    /// Price, cents.
    pub price: i64,
}

impl QueryRow for Q2Row {
    const COLUMNS: &'static [&'static str] = &["auction", "price"];
}

/// Builds q2 into `job`.
pub fn q2(job: &mut Job, config: &GeneratorConfig) -> Result<Stream<Q2Row>, ConfigError> {
    Ok(nexmark_source::<Bid>(job, "bids", config)?
        .filter(|b| b.auction % 123 == 0)
        .map(|b| Q2Row {
            auction: b.auction,
            price: b.price,
        }))
}
