//! Record formats shared by several connectors: [`debezium`] (Debezium's JSON change events
//! as a changelog of rows), usable by the JSON-lines file source and the Kafka source.

pub mod debezium;

pub use debezium::DebeziumJson;
