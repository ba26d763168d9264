//! The SQL crate's integration tests, one test binary (each module was a binary of its own;
//! every one linked the whole planner, about 170 MB of debug build each — docs/testing.md
//! "Disk"). Run one module with a filter: `cargo test -p streamcore-sql --test sql
//! sqllogictest::`.
//!
//! - `sqllogictest`: the SQL test files in `tests/slt/`.
//! - `nexmark_equivalence`: every Nexmark query as written, as SQL, against the typed queries.
//! - `parse_nexmark`: the parser over the whole Nexmark corpus.
//! - `extreme_rows`: the rewrite of a join with a window's own extreme, against the join.
//! - `late_data`: late rows into late-data tables, read back.
//! - `join_conditions`: a join's condition beyond its keys, tested in parts, against a nested
//!   loop.
//! - `join_expiry`: regular joins whose rows expire by their time bounds, watermarks mid-run.
//! - `scan_pushdown`: filters and projections taken by the scans.
//! - `rows_built_once`: rows built without a copy a projection would make.
//! - `update_before`: updates without `-U` for a sink that needs none.
//! - `sql_kafka` (feature `kafka`): SQL tables on a real Kafka-protocol broker.

mod extreme_rows;
mod join_conditions;
mod join_expiry;
mod late_data;
mod nexmark_equivalence;
mod parse_nexmark;
mod rows_built_once;
mod scan_pushdown;
mod sql_kafka;
mod sqllogictest;
mod update_before;

/// Rows as text, values separated by spaces (the form the tests' expected rows take).
pub fn texts(rows: Vec<streamcore::row::Row>) -> Vec<String> {
    rows.iter()
        .map(|r| {
            r.values
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}
