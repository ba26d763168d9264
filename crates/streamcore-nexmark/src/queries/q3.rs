//! q3 — Local item suggestion: sellers in Oregon, Idaho or California and their auctions in
//! category 10.
//!
//! ```sql
//! SELECT P.name, P.city, P.state, A.id
//! FROM auction AS A INNER JOIN person AS P on A.seller = P.id
//! WHERE A.category = 10 and (P.state = 'OR' OR P.state = 'ID' OR P.state = 'CA');
//! ```
//!
//! Both filters are pushed below the join (as Flink's planner does), each side is slimmed to
//! the columns the join needs, and the two sides meet in a regular (unwindowed) inner join
//! keyed by `seller` / `id` (`connect(..).key_by(..).join(JoinType::Inner, ..)`). An inner
//! join of insert-only inputs only inserts, so the `Change::Insert` rows are unwrapped into an
//! append-only stream of [`Q3Row`]. Like Flink without a state TTL, the join keeps every
//! filtered person and auction. States are compared case-sensitively, as in the SQL (the
//! generator makes upper-case state codes). No deviation.

use super::{nexmark_source, QueryRow};
use crate::config::{ConfigError, GeneratorConfig};
use crate::model::{Auction, Person};
use compact_str::CompactString;
use serde::Serialize;
use streamcore::join::{Change, JoinType};
use streamcore::{Job, Stream};

/// A row of `nexmark_q3`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Q3Row {
    /// Seller name.
    pub name: CompactString,
    /// Seller city.
    pub city: CompactString,
    /// Seller state.
    pub state: CompactString,
    /// Auction id.
    pub id: i64,
}

impl QueryRow for Q3Row {
    const COLUMNS: &'static [&'static str] = &["name", "city", "state", "id"];
}

/// The person filter of q3.
pub fn q3_person(p: &Person) -> bool {
    matches!(p.state.as_str(), "OR" | "ID" | "CA")
}

/// The auction filter of q3.
pub fn q3_auction(a: &Auction) -> bool {
    a.category == 10
}

/// What the join keeps of a person: `(id, name, city, state)`.
type Seller = (i64, CompactString, CompactString, CompactString);

/// Builds q3 into `job`.
pub fn q3(job: &mut Job, config: &GeneratorConfig) -> Result<Stream<Q3Row>, ConfigError> {
    let persons = nexmark_source::<Person>(job, "persons", config)?
        .filter(q3_person)
        .map(|p| -> Seller { (p.id, p.name, p.city, p.state) });
    let auctions = nexmark_source::<Auction>(job, "auctions", config)?
        .filter(q3_auction)
        .map(|a| (a.id, a.seller));
    Ok(auctions
        .connect(persons)
        .key_by(|a: &(i64, i64)| a.1, |p: &Seller| p.0)
        .join(JoinType::Inner, |a, p| {
            let (a, p) = (a.expect("inner join"), p.expect("inner join"));
            Q3Row {
                name: p.1.clone(),
                city: p.2.clone(),
                state: p.3.clone(),
                id: a.0,
            }
        })
        // An inner join of append-only inputs only inserts.
        .map(Change::into_row))
}
