//! Flink SQL for streamcore: the parser layer.
//!
//! What lives here now is section 1 of `docs/sql-plan.md`:
//!
//! - [`dialect::FlinkDialect`], a [`sqlparser`] dialect for Flink's syntax: backtick
//!   identifiers, `FILTER (WHERE …)` on aggregates, `FOR SYSTEM_TIME AS OF`,
//!   `MATCH_RECOGNIZE`, `TABLE t` as an argument of a window table function, and the types
//!   `ROW<…>`/`ROW(…)` and `MAP<k, v>`;
//! - [`parser::parse_script`], the statement front end: it splits a script into statements,
//!   parses the Flink-only ones itself (`CREATE TABLE` with computed columns, `WATERMARK`,
//!   `PRIMARY KEY … NOT ENFORCED` and `WITH` options; `CREATE FUNCTION … AS 'class'`;
//!   `SET 'k' = 'v'`) and hands everything else to sqlparser with the dialect.
//!
//! The catalog, the binder and logical plan, the changelog-mode analysis and the mapping onto
//! streamcore operators come later; `docs/sql-plan.md` is the plan for them.

pub mod dialect;
pub mod parser;

pub use dialect::FlinkDialect;
pub use parser::{
    parse_script, Column, ColumnKind, CreateTable, FlinkStatement, ParseError, Watermark,
};
