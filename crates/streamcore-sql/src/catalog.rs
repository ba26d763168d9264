//! The catalog of a SQL session: tables (from `CREATE TABLE`, with their columns, rowtime and
//! watermark, primary key and connector options), views (their query, planned where used),
//! user-defined functions, and the session's `SET` options.

use crate::error::{did_you_mean, PlanError};
use crate::expr::Expr;
use crate::functions::{FunctionRegistry, Udf};
use crate::types::SqlType;
use sqlparser::ast::Query;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use streamcore::row::{DataType, Field, Schema};

/// One column of a table.
#[derive(Clone, Debug)]
pub struct TableColumn {
    /// The name (a field of a `ROW` column is `outer.inner`).
    pub name: String,
    /// The type.
    pub data_type: DataType,
    /// Physical, computed or metadata.
    pub kind: ColumnSource,
    /// Declared `NOT NULL`.
    pub not_null: bool,
}

/// Where a column's value comes from.
#[derive(Clone, Debug)]
pub enum ColumnSource {
    /// The connector supplies it; the index among the physical columns.
    Physical(usize),
    /// Computed from the physical columns (bound over them) at the source.
    Computed(Expr),
    /// Connector metadata (`METADATA FROM 'key' [VIRTUAL]`): a `VIRTUAL` one is only read; any
    /// other is also written by an INSERT into the table (Flink's persisted metadata).
    Metadata {
        /// The connector's metadata key (`timestamp`, `offset`, …).
        key: String,
        /// Declared `VIRTUAL`.
        is_virtual: bool,
    },
}

/// A table of the catalog.
#[derive(Clone, Debug)]
pub struct TableDef {
    /// The table's name.
    pub name: String,
    /// Every column, in declaration order (`ROW` columns flattened).
    pub columns: Vec<TableColumn>,
    /// The rowtime column (`WATERMARK FOR`), if any.
    pub rowtime: Option<usize>,
    /// How far the watermark trails the largest rowtime seen, in milliseconds.
    pub watermark_delay_ms: Option<i64>,
    /// The primary key's columns (`PRIMARY KEY (…) NOT ENFORCED`).
    pub primary_key: Vec<usize>,
    /// `PARTITIONED BY` columns.
    pub partitioned_by: Vec<usize>,
    /// The `WITH` options.
    pub options: BTreeMap<String, String>,
}

impl TableDef {
    /// The table's connector (`'connector'` option).
    pub fn connector(&self) -> Result<&str, PlanError> {
        self.options
            .get("connector")
            .map(String::as_str)
            .ok_or_else(|| {
                PlanError::invalid(format!(
                    "table `{}` has no 'connector' option (WITH ('connector' = '…', …))",
                    self.name
                ))
            })
    }

    /// Option `key`, or an error naming the table, its connector and the missing option.
    pub fn required(&self, key: &str) -> Result<&str, PlanError> {
        self.options.get(key).map(String::as_str).ok_or_else(|| {
            PlanError::invalid(format!(
                "`{}` table `{}` is missing option '{key}'",
                self.options
                    .get("connector")
                    .map(String::as_str)
                    .unwrap_or("?"),
                self.name
            ))
        })
    }

    /// The physical columns, in connector order.
    pub fn physical(&self) -> impl Iterator<Item = &TableColumn> {
        self.columns
            .iter()
            .filter(|c| matches!(c.kind, ColumnSource::Physical(_)))
    }

    /// The columns an INSERT writes, as indices into [`TableDef::columns`], in the order of
    /// the rows a sink receives: the physical columns, then the persisted metadata columns
    /// (not `VIRTUAL`: a Kafka table's `timestamp`), in declaration order.
    pub fn written_columns(&self) -> Vec<usize> {
        let physical = self
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| matches!(c.kind, ColumnSource::Physical(_)));
        let persisted = self.columns.iter().enumerate().filter(|(_, c)| {
            matches!(
                c.kind,
                ColumnSource::Metadata {
                    is_virtual: false,
                    ..
                }
            )
        });
        physical.chain(persisted).map(|(i, _)| i).collect()
    }

    /// The schema of all columns.
    pub fn schema(&self) -> Schema {
        Schema::new(
            self.columns
                .iter()
                .map(|c| {
                    let f = Field::new(&c.name, c.data_type);
                    if c.not_null {
                        f.not_null()
                    } else {
                        f
                    }
                })
                .collect(),
        )
    }

    /// The schema of the physical columns.
    pub fn physical_schema(&self) -> Schema {
        Schema::new(
            self.physical()
                .map(|c| Field::new(&c.name, c.data_type))
                .collect(),
        )
    }

    /// The columns' names.
    pub fn column_names(&self) -> impl Iterator<Item = &str> {
        self.columns.iter().map(|c| c.name.as_str())
    }
}

impl fmt::Display for TableDef {
    /// `DESCRIBE`'s table: name, type, null, key, extras (computed expression, watermark).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.columns.iter().enumerate() {
            let mut extras = Vec::new();
            match &c.kind {
                ColumnSource::Physical(_) => {}
                ColumnSource::Computed(e) => extras.push(format!("AS {e}")),
                ColumnSource::Metadata { key, is_virtual } => extras.push(format!(
                    "METADATA FROM '{key}'{}",
                    if *is_virtual { " VIRTUAL" } else { "" }
                )),
            }
            if self.rowtime == Some(i) {
                extras.push(format!(
                    "WATERMARK AS {} - {} ms",
                    c.name,
                    self.watermark_delay_ms.unwrap_or(0)
                ));
            }
            writeln!(
                f,
                "{}\t{}{}\t{}\t{}",
                c.name,
                c.data_type,
                if self.rowtime == Some(i) {
                    " *ROWTIME*"
                } else {
                    ""
                },
                if self.primary_key.contains(&i) {
                    "PRI"
                } else {
                    ""
                },
                extras.join(" ")
            )?;
        }
        Ok(())
    }
}

/// The session's catalog.
#[derive(Clone, Debug)]
pub struct Catalog {
    tables: BTreeMap<String, Arc<TableDef>>,
    /// The statement each table was created with, as `SHOW CREATE TABLE` prints it.
    ddl: BTreeMap<String, String>,
    views: BTreeMap<String, Arc<Query>>,
    functions: BTreeMap<String, Udf>,
    /// The implementations `CREATE FUNCTION … AS 'class'` can name.
    pub registry: FunctionRegistry,
    /// `SET` options.
    pub options: BTreeMap<String, String>,
}

impl Default for Catalog {
    fn default() -> Self {
        Catalog {
            tables: BTreeMap::new(),
            ddl: BTreeMap::new(),
            views: BTreeMap::new(),
            functions: BTreeMap::new(),
            registry: FunctionRegistry::with_builtins(),
            options: BTreeMap::new(),
        }
    }
}

/// What a name in `FROM` refers to.
pub enum Relation {
    /// A table.
    Table(Arc<TableDef>),
    /// A view's query.
    View(Arc<Query>),
}

impl Catalog {
    /// Adds a table; an existing table or view of that name is an error unless
    /// `if_not_exists` (then the new one is ignored).
    pub fn add_table(&mut self, table: TableDef, if_not_exists: bool) -> Result<(), PlanError> {
        self.add_table_created_by(table, String::new(), if_not_exists)
    }

    /// Adds a table with the statement that created it (`SHOW CREATE TABLE` prints it).
    pub fn add_table_created_by(
        &mut self,
        table: TableDef,
        ddl: String,
        if_not_exists: bool,
    ) -> Result<(), PlanError> {
        let key = table.name.to_lowercase();
        if self.tables.contains_key(&key) || self.views.contains_key(&key) {
            if if_not_exists {
                return Ok(());
            }
            return Err(PlanError::invalid(format!(
                "table or view `{}` already exists",
                table.name
            )));
        }
        if !ddl.is_empty() {
            self.ddl.insert(key.clone(), ddl);
        }
        self.tables.insert(key, Arc::new(table));
        Ok(())
    }

    /// Adds a view.
    pub fn add_view(
        &mut self,
        name: &str,
        query: Query,
        or_replace: bool,
    ) -> Result<(), PlanError> {
        let key = name.to_lowercase();
        if !or_replace && (self.tables.contains_key(&key) || self.views.contains_key(&key)) {
            return Err(PlanError::invalid(format!(
                "table or view `{name}` already exists"
            )));
        }
        self.views.insert(key, Arc::new(query));
        Ok(())
    }

    /// Registers a function under `name`.
    pub fn add_function(&mut self, name: &str, udf: Udf) {
        self.functions.insert(name.to_lowercase(), udf);
    }

    /// The function `name`, if one was created.
    pub fn function(&self, name: &str) -> Option<&Udf> {
        self.functions.get(&name.to_lowercase())
    }

    /// The user-defined functions' names (lowercase), sorted.
    pub fn function_names(&self) -> impl Iterator<Item = &str> {
        self.functions.keys().map(String::as_str)
    }

    /// The views' names, sorted.
    pub fn view_names(&self) -> Vec<String> {
        self.views.keys().cloned().collect()
    }

    /// Removes a table or view; true if there was one.
    pub fn drop(&mut self, name: &str) -> bool {
        let key = name.to_lowercase();
        self.ddl.remove(&key);
        self.tables.remove(&key).is_some() | self.views.remove(&key).is_some()
    }

    /// Keeps the text of the statement that created view `name` (`SHOW CREATE VIEW`).
    pub fn set_view_source(&mut self, name: &str, source: String) {
        let key = name.to_lowercase();
        if self.views.contains_key(&key) {
            self.ddl.insert(key, source);
        }
    }

    /// The statement that created table (`view` false) or view `name`: `CREATE TABLE …` as
    /// given (in Flink's form, secrets masked), or the view's statement as written (else
    /// `CREATE VIEW name AS query`). Asking for a view's statement of a table, or the other
    /// way round, is refused, as in Flink.
    pub fn create_statement(&self, name: &str, view: bool) -> Result<String, PlanError> {
        let relation = self.relation(name)?;
        let what = |v: bool| if v { "a view" } else { "a table" };
        let is_view = matches!(relation, Relation::View(_));
        if is_view != view {
            return Err(PlanError::invalid(format!(
                "`{name}` is {}: SHOW CREATE {}",
                what(is_view),
                if is_view { "VIEW" } else { "TABLE" }
            )));
        }
        if let Some(ddl) = self.ddl.get(&name.to_lowercase()) {
            return Ok(ddl.clone());
        }
        match relation {
            Relation::View(query) => Ok(format!(
                "CREATE VIEW {} AS\n{query}",
                crate::parser::quoted(name)
            )),
            Relation::Table(t) => Err(PlanError::invalid(format!(
                "table `{}` was not created by a statement",
                t.name
            ))),
        }
    }

    /// The table or view `name` (names are case-insensitive, as Flink's are by default not:
    /// a demanding user gets a hint instead of a failure for a case slip).
    pub fn relation(&self, name: &str) -> Result<Relation, PlanError> {
        let key = name.to_lowercase();
        if let Some(t) = self.tables.get(&key) {
            return Ok(Relation::Table(t.clone()));
        }
        if let Some(v) = self.views.get(&key) {
            return Ok(Relation::View(v.clone()));
        }
        let names: Vec<&str> = self
            .tables
            .values()
            .map(|t| t.name.as_str())
            .chain(self.views.keys().map(String::as_str))
            .collect();
        Err(PlanError::invalid(format!(
            "unknown table `{name}`{}",
            did_you_mean(name, names.iter().copied())
        )))
    }

    /// The table `name` (not a view), for `INSERT INTO`.
    pub fn table(&self, name: &str) -> Result<Arc<TableDef>, PlanError> {
        match self.relation(name)? {
            Relation::Table(t) => Ok(t),
            Relation::View(_) => Err(PlanError::invalid(format!(
                "`{name}` is a view: INSERT INTO needs a table"
            ))),
        }
    }

    /// Table and view names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .tables
            .values()
            .map(|t| t.name.clone())
            .chain(self.views.keys().cloned())
            .collect();
        v.sort();
        v
    }

    /// The value of session option `key`.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options.get(key).map(String::as_str)
    }
}

/// A field of a plan's output: name, table qualifier and type.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanField {
    /// The column's name.
    pub name: String,
    /// The table or alias it comes from, if any.
    pub qualifier: Option<String>,
    /// Its type.
    pub ty: SqlType,
}
