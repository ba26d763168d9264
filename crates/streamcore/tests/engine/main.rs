//! The engine's integration tests, one test binary (each module was a binary of its own, each
//! linking the whole engine: docs/testing.md "Disk"). Run one module with a filter:
//! `cargo test -p streamcore --test engine joins::`. `tests/state_with_the_process.rs` stays a
//! binary of its own: the switch it tests is process-wide.
//!
//! Every module says in its first lines what it tests; `common` holds the transactional test
//! sink the checkpoint tests share.

mod api_ergonomics;
mod backpressure;
mod cep;
mod changelog;
mod checkpoints;
mod common;
mod error_policies;
mod joins;
mod key_group_handover;
mod keyed_state;
mod lifecycle;
mod live_metrics;
mod operations_detail;
mod operator_ids;
mod pipeline_equivalence;
mod row;
mod state_backends;
mod windows_edge_cases;
mod windows_reference;
