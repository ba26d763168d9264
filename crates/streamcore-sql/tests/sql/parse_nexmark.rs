//! Parses the Nexmark benchmark's reference Flink SQL (`tests/nexmark/`): the `datagen` source
//! DDL, the views and every query q0–q22. Each statement must parse and be of the expected
//! kind.

use std::path::Path;

use sqlparser::ast::{Expr, Statement};
use streamcore_sql::{parse_script, ColumnKind, FlinkStatement};

/// The kind of a statement, for comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    CreateTable,
    CreateFunction,
    CreateView,
    Insert,
}

fn kind(statement: &FlinkStatement) -> Kind {
    match statement {
        FlinkStatement::CreateTable(_) => Kind::CreateTable,
        FlinkStatement::CreateFunction { .. } => Kind::CreateFunction,
        FlinkStatement::CreateView { .. } => Kind::CreateView,
        FlinkStatement::Sql(Statement::Insert(_)) => Kind::Insert,
        other => panic!("unexpected statement in the corpus: {other:?}"),
    }
}

fn parse_file(name: &str) -> Vec<FlinkStatement> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/nexmark")
        .join(name);
    let sql = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    parse_script(&sql).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn source_ddl() {
    let statements = parse_file("ddl_gen.sql");
    assert_eq!(statements.len(), 1);
    let FlinkStatement::CreateTable(table) = &statements[0] else {
        panic!("{:?}", statements[0]);
    };
    assert_eq!(table.name.to_string(), "datagen");
    let names: Vec<&str> = table
        .columns
        .iter()
        .map(|c| c.name.value.as_str())
        .collect();
    assert_eq!(
        names,
        ["event_type", "person", "auction", "bid", "dateTime"]
    );
    assert!(matches!(
        table.columns[4].kind,
        ColumnKind::Computed {
            expr: Expr::Case { .. }
        }
    ));
    let watermark = table.watermark.as_ref().expect("a watermark");
    assert_eq!(watermark.column.value, "dateTime");
    assert_eq!(
        watermark.expr.to_string(),
        "`dateTime` - INTERVAL '4' SECOND"
    );
    assert_eq!(table.option("connector"), Some("nexmark"));
    assert_eq!(table.options.len(), 7);
    assert_eq!(table.options[0].0, "connector");
    assert_eq!(
        table.options[6],
        ("bid.proportion".into(), "${BID_PROPORTION}".into())
    );
}

#[test]
fn views() {
    let statements = parse_file("ddl_views.sql");
    let names: Vec<String> = statements
        .iter()
        .map(|s| match s {
            FlinkStatement::CreateView {
                statement: Statement::CreateView(view),
                ..
            } => view.name.to_string(),
            other => panic!("not a view: {other:?}"),
        })
        .collect();
    assert_eq!(names, ["person", "auction", "bid"]);
    // Each view keeps its text as written (SHOW CREATE VIEW prints it).
    let FlinkStatement::CreateView { source, .. } = &statements[2] else {
        unreachable!()
    };
    assert!(
        source.starts_with("CREATE VIEW bid AS\nSELECT\n    bid.auction,"),
        "{source}"
    );
    assert!(
        source.ends_with("FROM datagen WHERE event_type = 2"),
        "{source}"
    );
}

#[test]
fn queries_q0_to_q22() {
    use Kind::*;
    for q in 0..=22 {
        let expected: &[Kind] = match q {
            12 => &[CreateTable, CreateView, Insert],
            13 => &[CreateTable, CreateTable, Insert],
            14 => &[CreateFunction, CreateTable, Insert],
            _ => &[CreateTable, Insert],
        };
        let statements = parse_file(&format!("q{q}.sql"));
        let kinds: Vec<Kind> = statements.iter().map(kind).collect();
        assert_eq!(kinds, expected, "q{q}");
        let FlinkStatement::Sql(Statement::Insert(insert)) = statements.last().unwrap() else {
            unreachable!("checked above");
        };
        assert_eq!(insert.table.to_string(), format!("nexmark_q{q}"), "q{q}");
    }
}

#[test]
fn q13_side_input_has_a_column_named_key() {
    let statements = parse_file("q13.sql");
    let FlinkStatement::CreateTable(side_input) = &statements[0] else {
        panic!("{:?}", statements[0]);
    };
    let names: Vec<&str> = side_input
        .columns
        .iter()
        .map(|c| c.name.value.as_str())
        .collect();
    assert_eq!(names, ["key", "value"]);
}
