//! Flink SQL on streamcore: a script of `CREATE TABLE`, `CREATE VIEW`, `SET`, `INSERT INTO …
//! SELECT …` and queries, planned onto the streamcore runtime.
//!
//! The layers, in the order a statement goes through them:
//!
//! - [`parser`] and [`dialect`]: Flink's syntax on sqlparser (a dialect plus a front end for
//!   the Flink-only statements: `CREATE TABLE` with computed columns, `WATERMARK`, `WITH`
//!   options; `CREATE FUNCTION … AS 'class'`; `SET`);
//! - [`catalog`]: tables, views, functions and options of a [`Session`];
//! - [`binder`]: a query into a logical [`plan::Plan`], names and types checked, windows and
//!   aggregates recognized, each error at its line and column ([`PlanError`]);
//! - [`physical`]: the plan onto streamcore operators, append-only edges as `Stream<Row>` and
//!   updating ones as `Stream<Change<Row>>`; [`expr`], [`functions`] and [`aggregate`] are
//!   what the operators evaluate;
//! - [`connectors`] and [`format`](mod@format): the tables' sources and sinks ([`external`]
//!   and [`kafka`]: those behind cargo features).
//!
//! ```
//! use streamcore::JobConfig;
//! use streamcore_sql::{Outcome, Session};
//! let mut session = Session::new();
//! let outcomes = session.execute_script(
//!     "CREATE TABLE t (user_id BIGINT, amount BIGINT) WITH ('connector' = 'values', 'data' = '1,10
//!      2,5
//!      1,7');
//!      SELECT user_id, SUM(amount) AS total FROM t GROUP BY user_id;",
//! ).unwrap();
//! let Outcome::Query(plan) = &outcomes[1] else { panic!() };
//! let changes = session.collect(plan, JobConfig::default().parallelism(1)).unwrap();
//! let table = streamcore::changelog::apply_to(changes);
//! assert_eq!(table.len(), 2);
//! ```

pub mod aggregate;
pub mod binder;
pub mod catalog;
pub mod connectors;
pub mod cse;
pub mod datagen;
pub mod date_format;
pub mod dialect;
pub mod parser;

pub mod error;
pub mod expr;
pub mod external;
pub mod extreme;
pub mod format;
pub mod functions;
pub mod join;
mod json_scan;
pub mod kafka;
pub mod match_recognize;
pub mod over;
pub mod over_updating;
pub mod physical;
pub mod plan;
pub mod rules;
pub mod session;
pub mod sort;
pub mod types;
pub mod unique;
pub mod window;

pub use dialect::FlinkDialect;
pub use error::PlanError;
pub use parser::{
    parse_script, Column, ColumnKind, CreateTable, FlinkStatement, ParseError, Watermark,
};
pub use session::{Outcome, Session};
