//! [`Session`]: runs a SQL script statement by statement — DDL into the catalog, `SET` into
//! the session's options, `SHOW`/`DESCRIBE`/`EXPLAIN` answered at once, every `INSERT INTO`
//! queued into the statement set that runs as one job, and a `SELECT` handed back as a plan
//! to run into the caller's sink (the terminal, a test's collector).

use crate::binder::{bind_computed, fit_to_sink, Binder};
use crate::catalog::{Catalog, ColumnSource, PlanField, TableColumn, TableDef};
use crate::connectors::{self, BlackholeSink, PrintSink, CONNECTORS};
use crate::error::{did_you_mean, PlanError};
use crate::format::{CsvRow, JsonRow};
use crate::parser::{parse_script, ColumnKind, CreateTable, FlinkStatement};
use crate::physical::{PhysicalPlanner, SqlStream};
use crate::plan::Plan;
use crate::rules::{optimize, prune_columns};
use crate::types::{from_ast, SqlType};
use sqlparser::ast::{self, ObjectType, Spanned, Statement};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use streamcore::changelog::Change;
use streamcore::checkpoint::CheckpointConfig;
use streamcore::row::{DataType, Row};
use streamcore::{Job, JobConfig};
use streamcore_connectors::{CsvSink, JsonLinesSink};

/// What a statement produced.
#[derive(Debug)]
pub enum Outcome {
    /// A statement that changed the session (`CREATE`, `SET`, `DROP`): what it did.
    Done(String),
    /// An `INSERT` queued into the statement set.
    Queued(String),
    /// A table of text (`SHOW TABLES`, `DESCRIBE`).
    Table {
        /// Column headers.
        header: Vec<String>,
        /// Rows.
        rows: Vec<Vec<String>>,
    },
    /// Text printed as it is: `EXPLAIN`'s plan, `SHOW CREATE TABLE`'s statement.
    Explain(String),
    /// The `END` of a statement set: the `INSERT`s queued since its `BEGIN` are to run now,
    /// as one job.
    RunStatementSet,
    /// A `SELECT` to run.
    Query(Box<Plan>),
}

/// An `INSERT` waiting in the statement set.
#[derive(Clone, Debug)]
pub struct PendingInsert {
    /// The sink table.
    pub sink: Arc<TableDef>,
    /// The query, fitted to the sink's columns.
    pub plan: Plan,
}

/// A SQL session: a catalog, options, and the statement set being built.
#[derive(Default)]
pub struct Session {
    /// Tables, views, functions, options.
    pub catalog: Catalog,
    /// The `INSERT`s queued so far.
    pub pending: Vec<PendingInsert>,
    /// Inside `BEGIN STATEMENT SET … END`.
    pub in_statement_set: bool,
}

impl Session {
    /// A new session.
    pub fn new() -> Self {
        Session::default()
    }

    /// Runs every statement of `sql` (DDL, SET, SHOW, EXPLAIN; INSERTs are queued; a SELECT's
    /// plan is returned), stopping at the first error.
    pub fn execute_script(&mut self, sql: &str) -> Result<Vec<Outcome>, PlanError> {
        let statements = parse_script(sql)?;
        statements.into_iter().map(|s| self.execute(s)).collect()
    }

    /// Runs one parsed statement.
    pub fn execute(&mut self, statement: FlinkStatement) -> Result<Outcome, PlanError> {
        match statement {
            FlinkStatement::CreateTable(t) => {
                let name = crate::binder::name_of(&t.name);
                let if_not_exists = t.if_not_exists;
                let ddl = t.to_string();
                let def = self.table_def(t)?;
                self.catalog.add_table_created_by(def, ddl, if_not_exists)?;
                Ok(Outcome::Done(format!("table `{name}` created")))
            }
            FlinkStatement::CreateFunction {
                name,
                class,
                if_not_exists,
                ..
            } => {
                let fname = crate::binder::name_of(&name);
                if if_not_exists && self.catalog.function(&fname).is_some() {
                    return Ok(Outcome::Done(format!("function `{fname}` exists")));
                }
                let udf = self.catalog.registry.by_class(&class).cloned().ok_or_else(|| {
                    PlanError::invalid(format!(
                        "function `{fname}`: no implementation of class '{class}' is registered (register a Rust function under that class with FunctionRegistry::register; registered: {})",
                        self.catalog.registry.classes().collect::<Vec<_>>().join(", ")
                    ))
                    .at(name.span())
                })?;
                self.catalog.add_function(&fname, udf);
                Ok(Outcome::Done(format!("function `{fname}` created")))
            }
            FlinkStatement::ShowFunctions { user, like } => {
                // Flink lists them in lowercase: the built-in ones (not with USER) and the
                // user's.
                let builtins = crate::functions::scalar_function_names()
                    .chain(crate::binder::AGGREGATES.iter().copied())
                    .chain(crate::binder::OTHER_FUNCTIONS.iter().copied())
                    .filter(|_| !user)
                    .map(|n| n.to_ascii_lowercase());
                let mut names: Vec<String> = builtins
                    .chain(self.catalog.function_names().map(str::to_string))
                    .collect();
                if let Some(like) = like {
                    let pattern = crate::expr::LikePattern::new(&if like.case_insensitive {
                        like.pattern.to_lowercase()
                    } else {
                        like.pattern.clone()
                    });
                    names.retain(|n| {
                        let name = if like.case_insensitive {
                            n.to_lowercase()
                        } else {
                            n.clone()
                        };
                        pattern.matches(&name) != like.negated
                    });
                }
                names.sort();
                names.dedup();
                Ok(Outcome::Table {
                    header: vec!["function name".into()],
                    rows: names.into_iter().map(|n| vec![n]).collect(),
                })
            }
            FlinkStatement::Set { key, value } => {
                check_option(&key, &value)?;
                self.catalog.options.insert(key.clone(), value.clone());
                Ok(Outcome::Done(format!("{key} = {value}")))
            }
            FlinkStatement::BeginStatementSet => {
                if self.in_statement_set {
                    return Err(PlanError::invalid("a statement set inside a statement set"));
                }
                self.in_statement_set = true;
                Ok(Outcome::Done(
                    "statement set: the INSERTs up to END run as one job".into(),
                ))
            }
            FlinkStatement::EndStatementSet => {
                if !self.in_statement_set {
                    return Err(PlanError::invalid("END without BEGIN STATEMENT SET"));
                }
                self.in_statement_set = false;
                Ok(Outcome::RunStatementSet)
            }
            FlinkStatement::CreateView { statement, source } => {
                let Statement::CreateView(view) = &statement else {
                    return self.execute_sql(statement);
                };
                let name = crate::binder::name_of(&view.name);
                let outcome = self.execute_sql(statement)?;
                self.catalog.set_view_source(&name, source);
                Ok(outcome)
            }
            FlinkStatement::Sql(s) => self.execute_sql(s),
        }
    }

    fn execute_sql(&mut self, s: Statement) -> Result<Outcome, PlanError> {
        let span = s.span();
        match s {
            Statement::CreateView(view) => {
                if !view.columns.is_empty() {
                    return Err(PlanError::unsupported("a column list on CREATE VIEW").at(span));
                }
                let name = crate::binder::name_of(&view.name);
                // Plan it now, so that a broken view fails here and not where it is used.
                Binder::new(&self.catalog).bind_query(&view.query)?;
                self.catalog.add_view(&name, *view.query, view.or_replace)?;
                Ok(Outcome::Done(format!("view `{name}` created")))
            }
            Statement::Insert(insert) => {
                let ast::TableObject::TableName(name) = &insert.table else {
                    return Err(PlanError::unsupported("INSERT INTO a table function").at(span));
                };
                let Some(source) = &insert.source else {
                    return Err(PlanError::unsupported("INSERT without a query").at(span));
                };
                if insert.overwrite {
                    return Err(PlanError::unsupported("INSERT OVERWRITE").at(span));
                }
                let sink = self
                    .catalog
                    .table(&crate::binder::name_of(name))
                    .map_err(|e| e.at(name.span()))?;
                let plan = Binder::new(&self.catalog).bind_query(source)?;
                let columns: Vec<ast::Ident> = insert
                    .columns
                    .iter()
                    .filter_map(|c| c.0.last().and_then(|p| p.as_ident()).cloned())
                    .collect();
                let columns = if columns.is_empty() {
                    None
                } else {
                    Some(columns.as_slice())
                };
                let plan = fit_to_sink(plan, &sink, columns).map_err(|e| e.at(span))?;
                let plan = prune_columns(optimize(plan));
                check_sink_mode(&sink, &plan, self.batch_mode())?;
                let text = format!("INSERT INTO {}", sink.name);
                self.pending.push(PendingInsert { sink, plan });
                Ok(Outcome::Queued(text))
            }
            Statement::Query(q) => {
                let plan = prune_columns(optimize(Binder::new(&self.catalog).bind_query(&q)?));
                Ok(Outcome::Query(Box::new(plan)))
            }
            Statement::Explain { statement, .. } => {
                let plan = match *statement {
                    Statement::Query(q) => {
                        prune_columns(optimize(Binder::new(&self.catalog).bind_query(&q)?))
                    }
                    Statement::Insert(_) => {
                        let before = self.pending.len();
                        self.execute_sql(*statement)?;
                        let p = self.pending.pop().expect("an insert was queued");
                        debug_assert_eq!(self.pending.len(), before);
                        let materialize = match upsert_materialize_key(&p.sink, &p.plan) {
                            Some(_) => ", upsertMaterialize=[true]",
                            None => "",
                        };
                        return Ok(Outcome::Explain(format!(
                            "Sink(table={}, connector={}{materialize})\n{}",
                            p.sink.name,
                            p.sink
                                .options
                                .get("connector")
                                .map(String::as_str)
                                .unwrap_or("?"),
                            indent(
                                &p.plan
                                    .explain_for_sink(needs_update_before(&p.sink, &p.plan))
                            )
                        )));
                    }
                    other => {
                        return Err(PlanError::unsupported(format!(
                            "EXPLAIN of `{}`",
                            other.to_string().chars().take(40).collect::<String>()
                        ))
                        .at(span))
                    }
                };
                Ok(Outcome::Explain(plan.explain()))
            }
            Statement::ShowTables { .. } => Ok(Outcome::Table {
                header: vec!["table name".into()],
                rows: self.catalog.names().into_iter().map(|n| vec![n]).collect(),
            }),
            Statement::ShowCreate { obj_type, obj_name } => {
                if !matches!(
                    obj_type,
                    ast::ShowCreateObject::Table | ast::ShowCreateObject::View
                ) {
                    return Err(PlanError::unsupported(format!("SHOW CREATE {obj_type}")).at(span));
                }
                let ddl = self
                    .catalog
                    .create_statement(
                        &crate::binder::name_of(&obj_name),
                        matches!(obj_type, ast::ShowCreateObject::View),
                    )
                    .map_err(|e| e.at(obj_name.span()))?;
                Ok(Outcome::Explain(format!("{ddl}\n")))
            }
            Statement::ShowViews { .. } => Ok(Outcome::Table {
                header: vec!["view name".into()],
                rows: self
                    .catalog
                    .view_names()
                    .into_iter()
                    .map(|n| vec![n])
                    .collect(),
            }),
            Statement::ExplainTable { table_name, .. } => {
                let name = crate::binder::name_of(&table_name);
                let plan = match self.catalog.relation(&name).map_err(|e| e.at(span))? {
                    crate::catalog::Relation::Table(t) => {
                        return Ok(Outcome::Table {
                            header: vec![
                                "name".into(),
                                "type".into(),
                                "key".into(),
                                "extras".into(),
                            ],
                            rows: t
                                .to_string()
                                .lines()
                                .map(|l| l.split('\t').map(str::to_string).collect())
                                .collect(),
                        })
                    }
                    crate::catalog::Relation::View(q) => {
                        Binder::new(&self.catalog).bind_query(&q)?
                    }
                };
                Ok(Outcome::Table {
                    header: vec!["name".into(), "type".into(), "key".into(), "extras".into()],
                    rows: plan
                        .fields
                        .iter()
                        .enumerate()
                        .map(|(i, f)| {
                            vec![
                                f.name.clone(),
                                if plan.rowtime == Some(i) {
                                    format!("{} *ROWTIME*", f.ty)
                                } else {
                                    f.ty.to_string()
                                },
                                String::new(),
                                String::new(),
                            ]
                        })
                        .collect(),
                })
            }
            Statement::Drop {
                object_type: ObjectType::Table | ObjectType::View,
                names,
                if_exists,
                ..
            } => {
                for n in &names {
                    if !self.catalog.drop(&crate::binder::name_of(n)) && !if_exists {
                        return Err(PlanError::invalid(format!("unknown table `{n}`")).at(n.span()));
                    }
                }
                Ok(Outcome::Done("dropped".into()))
            }
            other => Err(PlanError::unsupported(format!(
                "the statement `{}`",
                other.to_string().chars().take(60).collect::<String>()
            ))
            .at(span)),
        }
    }

    /// `execution.runtime-mode` is `batch`.
    pub fn batch_mode(&self) -> bool {
        self.catalog
            .option("execution.runtime-mode")
            .is_some_and(|m| m.eq_ignore_ascii_case("batch"))
    }

    /// The configuration of the session's INSERT jobs from its options over `base`: the
    /// checkpoint options included (see [`Session::select_config`] for a `SELECT`'s).
    pub fn job_config(&self, base: JobConfig) -> Result<JobConfig, PlanError> {
        let mut config = self.select_config(base)?;
        self.apply_checkpoint_options(&mut config)?;
        Ok(config)
    }

    /// The configuration of a job that runs a `SELECT` for its answer (to the terminal, or
    /// collected): the session's options over `base` but its checkpoint options — its
    /// output is not written anywhere a checkpoint commits, and its checkpoints would mix
    /// with the INSERT jobs' in their directory. (Also an INSERT job's where its runner
    /// decides on checkpoints itself: the job server without a checkpoint root.)
    pub fn select_config(&self, base: JobConfig) -> Result<JobConfig, PlanError> {
        let mut config = base;
        if let Some(p) = self.catalog.option("parallelism.default") {
            let p: usize = p.parse().map_err(|_| {
                PlanError::invalid(format!(
                    "'parallelism.default' must be a positive number, got '{p}'"
                ))
            })?;
            config = config.parallelism(p.max(1));
        }
        if let Some(v) = self.catalog.option(FUSE_SINGLE_EXCHANGES) {
            config = config.fuse_single_exchanges(parse_bool(FUSE_SINGLE_EXCHANGES, v)?);
        }
        // `state.backend`, `state.memory-budget`, `state.dir`, `state.incremental`,
        // `state.full-every`: the job's state backend (docs/state.md), over the command line's.
        for (key, value) in self.catalog.options.range("state.".to_string()..) {
            if !key.starts_with("state.") {
                break;
            }
            if is_checkpoint_option(key) {
                continue;
            }
            config
                .state
                .set(key, value)
                .map_err(|e| PlanError::invalid(e.to_string()))?;
        }
        Ok(config)
    }

    /// Whether the session sets any checkpoint option.
    pub fn sets_checkpoints(&self) -> bool {
        self.catalog.options.keys().any(|k| is_checkpoint_option(k))
    }

    /// The checkpoint options, by Flink's names: a directory
    /// (`execution.checkpointing.dir`, or Flink 1's `state.checkpoints.dir`) checkpoints the
    /// job there; `execution.checkpointing.interval` and `execution.checkpointing.num-retained`
    /// (`state.checkpoints.num-retained`) set the interval and how many are kept, of those
    /// checkpoints or of `config`'s (the command line's `--checkpoint-dir`).
    fn apply_checkpoint_options(&self, config: &mut JobConfig) -> Result<(), PlanError> {
        let option = |keys: &[&str]| keys.iter().find_map(|k| self.catalog.option(k));
        if let Some(dir) = option(&SAVEPOINT_DIR) {
            tracing::warn!(
                "savepoints are written into the checkpoint directory (sp-NNNNNN), not into '{dir}'"
            );
        }
        if let Some(dir) = option(&CHECKPOINT_DIR) {
            let mut c = config
                .checkpoints
                .take()
                .unwrap_or_else(|| CheckpointConfig::new(dir));
            c.dir = dir.into();
            c.storage = None;
            config.checkpoints = Some(c);
        }
        let interval = option(&[CHECKPOINT_INTERVAL])
            .map(checkpoint_interval)
            .transpose()?;
        let retained = option(&CHECKPOINTS_RETAINED)
            .map(checkpoints_retained)
            .transpose()?;
        if interval.is_none() && retained.is_none() {
            return Ok(());
        }
        let Some(c) = config.checkpoints.as_mut() else {
            // Flink scripts set the interval and leave the directory to the cluster's
            // configuration: the job runs, without checkpoints, and says so.
            tracing::warn!(
                "'{}' is set but no checkpoint directory is: the job does not checkpoint (SET '{}' = '…', or run with --checkpoint-dir)",
                if interval.is_some() {
                    CHECKPOINT_INTERVAL
                } else {
                    CHECKPOINTS_RETAINED[0]
                },
                CHECKPOINT_DIR[0]
            );
            return Ok(());
        };
        if let Some(i) = interval {
            c.interval = i;
        }
        if let Some(n) = retained {
            c.retain = n;
        }
        Ok(())
    }

    /// The job's name: `pipeline.name`, or `default`.
    pub fn job_name(&self, default: &str) -> String {
        self.catalog
            .option("pipeline.name")
            .unwrap_or(default)
            .to_string()
    }

    /// `table.exec.mini-batch.enabled` (checked by `SET`).
    fn mini_batch(&self) -> bool {
        self.catalog
            .option(MINI_BATCH)
            .is_some_and(|v| matches!(parse_bool(MINI_BATCH, v), Ok(true)))
    }

    fn state_ttl(&self) -> Result<Option<Duration>, PlanError> {
        self.catalog
            .option("table.exec.state.ttl")
            .map(parse_duration)
            .transpose()
    }

    /// Adds every queued `INSERT` to `job` (the statement set) and empties the queue.
    pub fn plan_inserts(&mut self, job: &mut Job) -> Result<usize, PlanError> {
        let pending = std::mem::take(&mut self.pending);
        let ttl = self.state_ttl()?;
        let mut planner = PhysicalPlanner::new(job);
        planner.state_ttl = ttl;
        planner.mini_batch = self.mini_batch();
        planner.survey(pending.iter().map(|p| &p.plan));
        planner.skip_update_before(
            pending
                .iter()
                .map(|p| (&p.plan, needs_update_before(&p.sink, &p.plan))),
        );
        let batch = self.batch_mode();
        let mut late = LateSinks::default();
        for p in pending.iter() {
            let mut stream = planner.build(&p.plan)?;
            if batch {
                check_bounded(&p.plan)?;
                if let SqlStream::Updating(s) = stream {
                    let takes_updates = matches!(p.sink.connector()?, "print" | "blackhole")
                        || crate::external::takes_updates(&p.sink);
                    if !takes_updates {
                        stream = SqlStream::Append(crate::physical::final_table(s));
                    } else {
                        stream = SqlStream::Updating(s);
                    }
                }
            }
            if let (SqlStream::Updating(s), Some(key)) =
                (&stream, upsert_materialize_key(&p.sink, &p.plan))
            {
                stream = SqlStream::Updating(materialize_for_sink(&mut planner, p, s.clone(), key));
            }
            add_sink(&p.sink, stream)?;
            late.add(planner.take_late_rows());
        }
        late.sink()?;
        Ok(pending.len())
    }

    /// Plans a `SELECT` into `job`, its rows (as changes) handed to `sink`.
    pub fn plan_select<F>(&self, job: &mut Job, plan: &Plan, to: F) -> Result<(), PlanError>
    where
        F: FnOnce(Stream),
    {
        let mut planner = PhysicalPlanner::new(job);
        planner.state_ttl = self.state_ttl()?;
        planner.mini_batch = self.mini_batch();
        planner.survey([plan]);
        let stream = planner.build(plan)?;
        let mut late = LateSinks::default();
        late.add(planner.take_late_rows());
        late.sink()?;
        to(stream.into_changes());
        Ok(())
    }

    /// Runs a `SELECT` to its end (bounded sources) and returns its changes in order of
    /// arrival; at parallelism 1 that order is deterministic.
    pub fn collect(&self, plan: &Plan, config: JobConfig) -> Result<Vec<Change<Row>>, PlanError> {
        let mut job = Job::new(&self.job_name("select"));
        let mut out = None;
        self.plan_select(&mut job, plan, |s| out = Some(s.collect()))?;
        let collected = out.expect("planned");
        job.run(self.select_config(config)?)
            .map_err(|e| PlanError::Run(e.to_string()))?;
        Ok(collected.take())
    }
}

/// The stream type a SELECT hands out.
pub type Stream = streamcore::Stream<Change<Row>>;

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

/// Parses `10 s`, `10s`, `1 min`, `2 h`, `500 ms`, `1 d`, or a number of milliseconds.
pub fn parse_duration(text: &str) -> Result<Duration, PlanError> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: u64 = n.parse().map_err(|_| {
        PlanError::invalid(format!(
            "'{text}' is not a duration (e.g. '10 s', '5 min', '1 h')"
        ))
    })?;
    // Flink's units, its short forms (`'3m'`) included.
    let unit_ms: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => 1,
        "s" | "sec" | "secs" | "second" | "seconds" => 1000,
        "m" | "min" | "mins" | "minute" | "minutes" => 60_000,
        "h" | "hour" | "hours" => 3_600_000,
        "d" | "day" | "days" => 86_400_000,
        other => {
            return Err(PlanError::invalid(format!(
                "'{text}': unknown time unit '{other}' (ms, s, min, h, d)"
            )))
        }
    };
    let ms = n
        .checked_mul(unit_ms)
        .ok_or_else(|| PlanError::invalid(format!("'{text}' is too long a duration")))?;
    Ok(Duration::from_millis(ms))
}

/// The keys of the checkpoint directory (Flink 2's, Flink 1's).
const CHECKPOINT_DIR: [&str; 2] = ["execution.checkpointing.dir", "state.checkpoints.dir"];
/// The key of the time between checkpoints.
const CHECKPOINT_INTERVAL: &str = "execution.checkpointing.interval";
/// The keys of how many periodic checkpoints are kept (Flink 2's, Flink 1's).
const CHECKPOINTS_RETAINED: [&str; 2] = [
    "execution.checkpointing.num-retained",
    "state.checkpoints.num-retained",
];

/// The keys of the savepoint directory (Flink 2's, Flink 1's): taken, not used — savepoints
/// go into the checkpoint directory (`sp-N`), as `--checkpoint-dir`'s do.
const SAVEPOINT_DIR: [&str; 2] = [
    "execution.checkpointing.savepoint-dir",
    "state.savepoints.dir",
];

fn is_checkpoint_option(key: &str) -> bool {
    CHECKPOINT_DIR.contains(&key)
        || key == CHECKPOINT_INTERVAL
        || CHECKPOINTS_RETAINED.contains(&key)
        || SAVEPOINT_DIR.contains(&key)
}

fn checkpoint_interval(value: &str) -> Result<Duration, PlanError> {
    let interval = parse_duration(value)?;
    if interval.is_zero() {
        return Err(PlanError::invalid(format!(
            "'{CHECKPOINT_INTERVAL}' must be more than 0, got '{value}'"
        )));
    }
    Ok(interval)
}

fn checkpoints_retained(value: &str) -> Result<usize, PlanError> {
    match value.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(PlanError::invalid(format!(
            "the number of checkpoints retained must be a positive number, got '{value}'"
        ))),
    }
}

/// `table.exec.mini-batch.enabled`: a group aggregate folds a group's changes within one
/// input batch.
const MINI_BATCH: &str = "table.exec.mini-batch.enabled";

/// `pipeline.fuse-single-exchanges`: whether an exchange with one sending and one receiving
/// task runs on the sender's thread (`JobConfig::fuse_single_exchanges`; default `true`).
const FUSE_SINGLE_EXCHANGES: &str = "pipeline.fuse-single-exchanges";

/// A boolean option: `true` or `false`, in any case.
fn parse_bool(key: &str, value: &str) -> Result<bool, PlanError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(PlanError::invalid(format!(
            "'{key}' is 'true' or 'false', got '{value}'"
        ))),
    }
}

fn check_option(key: &str, value: &str) -> Result<(), PlanError> {
    match key {
        CHECKPOINT_INTERVAL => {
            checkpoint_interval(value)?;
        }
        k if CHECKPOINTS_RETAINED.contains(&k) => {
            checkpoints_retained(value)?;
        }
        k if CHECKPOINT_DIR.contains(&k) && value.trim().is_empty() => {
            return Err(PlanError::invalid(format!("'{k}' must name a directory")));
        }
        k if is_checkpoint_option(k) => {}
        "parallelism.default" if value.parse::<usize>().map_or(true, |p| p == 0) => {
            return Err(PlanError::invalid(format!(
                "'parallelism.default' must be a positive number, got '{value}'"
            )));
        }
        "table.exec.state.ttl" | "table.exec.emit.allow-lateness" => {
            parse_duration(value)?;
        }
        MINI_BATCH | FUSE_SINGLE_EXCHANGES => {
            parse_bool(key, value)?;
        }
        k if k.starts_with("state.") => {
            streamcore::state::StateConfig::default()
                .set(k, value)
                .map_err(|e| PlanError::invalid(e.to_string()))?;
        }
        "execution.runtime-mode"
            if !["streaming", "batch"].contains(&value.to_ascii_lowercase().as_str()) =>
        {
            return Err(PlanError::invalid(format!(
                "'execution.runtime-mode' is 'streaming' or 'batch', got '{value}'"
            )));
        }
        _ => {}
    }
    Ok(())
}

/// Batch mode reads bounded tables only.
fn check_bounded(plan: &Plan) -> Result<(), PlanError> {
    if let crate::plan::Node::Scan { table, .. } = &plan.node {
        let unbounded = table.options.get("connector").map(String::as_str) == Some("nexmark")
            && table
                .options
                .get("events.num")
                .is_none_or(|n| n.trim() == "0");
        if unbounded || crate::kafka::is_unbounded(table) {
            return Err(PlanError::invalid(format!(
                "'execution.runtime-mode' = 'batch' needs bounded tables: `{}` is unbounded (set {})",
                table.name,
                if unbounded { "'events.num'" } else { "'scan.bounded.mode' = 'latest-offset'" }
            )));
        }
    }
    plan.inputs().into_iter().try_for_each(check_bounded)
}

/// Whether `sink` needs the `-U` of each update (the row it replaces) before its `+U`, fed by
/// `plan`. Not the `blackhole` (it drops every row; Flink's asks for no `-U` either), nor an
/// upsert sink (`jdbc`, `upsert-kafka`, `redis`) keyed by the key of the plan's updates
/// ([`Plan::upsert_key`]): each `+U` replaces the sink's row of that key. Any other key
/// needs the `-U` — an update may move a row to another of the sink's keys, and the old one
/// must go ([`upsert_materialize_key`]). Without it, the updating operator feeding the sink
/// emits `+U` alone ([`crate::physical::PhysicalPlanner::skip_update_before`]).
pub fn needs_update_before(sink: &TableDef, plan: &Plan) -> bool {
    match sink.options.get("connector").map(String::as_str) {
        Some("blackhole") => false,
        _ => !sink_key(sink).is_some_and(|key| key.is_upsert_key_of(plan)),
    }
}

/// What keys the rows an upsert sink keeps.
#[derive(Clone, Debug)]
pub enum SinkKey {
    /// Columns (positions in the written row): the primary key of a `jdbc` or `upsert-kafka`
    /// table, the columns a `redis` table's target (key, and field or member) is rendered from
    /// when each of its templates reads one column.
    Columns(Vec<usize>),
    /// The text a `redis` table's templates render, when one of them reads several columns:
    /// rows that differ in those columns may share a target (`{a}{b}`).
    Rendered(crate::external::RedisTarget),
}

impl SinkKey {
    /// Whether the updates of `plan` are keyed as the sink ([`Plan::upsert_key`]): then each
    /// `+U` replaces the sink's row of its key. Never for rendered text (two of the query's
    /// keys may render one).
    fn is_upsert_key_of(&self, plan: &Plan) -> bool {
        match self {
            SinkKey::Columns(columns) => {
                let set =
                    |k: &[usize]| k.iter().copied().collect::<std::collections::BTreeSet<_>>();
                plan.upsert_key()
                    .is_some_and(|own| set(&own) == set(columns))
            }
            SinkKey::Rendered(_) => false,
        }
    }

    /// The key of `row` (a row of the sink's written columns).
    fn of(&self, row: &Row) -> Row {
        match self {
            SinkKey::Columns(columns) => row.key(columns),
            SinkKey::Rendered(target) => target.text_of(row),
        }
    }
}

/// What keys the rows an upsert sink keeps ([`SinkKey`]). `None` for other sinks.
fn sink_key(sink: &TableDef) -> Option<SinkKey> {
    let key = match sink.options.get("connector").map(String::as_str) {
        Some("jdbc" | "upsert-kafka") => {
            let written = sink.written_columns();
            let key: Option<Vec<usize>> = sink
                .primary_key
                .iter()
                .map(|c| written.iter().position(|w| w == c))
                .collect();
            SinkKey::Columns(key?)
        }
        Some("redis") => match crate::external::redis_target(sink)? {
            target if target.ambiguous => SinkKey::Rendered(target),
            target => SinkKey::Columns(target.columns),
        },
        _ => return None,
    };
    match &key {
        SinkKey::Columns(columns) if columns.is_empty() => None,
        _ => Some(key),
    }
}

/// The key by which the updates of `plan` are materialized before `sink` takes them: an
/// upsert sink (`jdbc`, `upsert-kafka`, `redis`; see [`SinkKey`]) keyed otherwise than the
/// updates ([`Plan::upsert_key`]), or by the text of a `redis` target that several columns
/// render (two of the query's keys may render one text). There an update may
/// move a row to another of the sink's keys, and two of the query's keys may share one of the
/// sink's for a while: without it, the `-U` of one would delete the row the other wrote.
/// Keyed by the sink's key, each key keeps its rows and sends its current one (the engine's
/// `materialize_rekeyed_by`; Flink's `SinkUpsertMaterializer`, and `EXPLAIN` says
/// `upsertMaterialize=[true]` as Flink does).
pub fn upsert_materialize_key(sink: &TableDef, plan: &Plan) -> Option<SinkKey> {
    if !plan.updating {
        return None;
    }
    sink_key(sink).filter(|key| !key.is_upsert_key_of(plan))
}

/// The updates `changes` of the insert `p`, materialized by its sink's `key`
/// ([`upsert_materialize_key`]).
fn materialize_for_sink(
    planner: &mut PhysicalPlanner<'_>,
    p: &PendingInsert,
    changes: streamcore::Stream<Change<Row>>,
    key: SinkKey,
) -> streamcore::Stream<Change<Row>> {
    // Its state is the sink's: named by the table and its key, so that another statement, or
    // another key, never restores it.
    let key_name = match &key {
        SinkKey::Columns(columns) => columns.iter().map(usize::to_string).collect::<Vec<_>>(),
        // By the templates' text too: the same columns rendered otherwise are other keys.
        SinkKey::Rendered(target) => {
            let columns = target.columns.iter().map(usize::to_string);
            let sources = target.sources.iter().map(|s| format!("text {s}"));
            columns.chain(sources).collect()
        }
    };
    let prefix = format!("sink-materialize:{}:{}", p.sink.name, key_name.join(","));
    let uid = planner.uid(&prefix, &p.plan);
    let keyed = changes.key_by(move |c: &Change<Row>| key.of(c.row()));
    let keyed = match planner.state_ttl {
        Some(ttl) => keyed.state_ttl(ttl),
        None => keyed,
    };
    // A withdrawal removes the row of its own key in the query (its other columns may be
    // computed anew: a `NOW()`), or the equal row when the query has none.
    let materialized = match p.plan.upsert_key() {
        Some(own) => keyed.materialize_rekeyed_by(move |withdrawn: &Row, kept: &Row| {
            own.iter().all(|&c| withdrawn.values[c] == kept.values[c])
        }),
        None => keyed.materialize_rekeyed(),
    };
    materialized.name("SinkMaterializer").uid(&uid)
}

/// A sink that cannot take updates refuses an updating query, saying which node updates.
fn check_sink_mode(sink: &TableDef, plan: &Plan, batch: bool) -> Result<(), PlanError> {
    let connector = sink.connector()?;
    let takes_updates =
        matches!(connector, "print" | "blackhole") || crate::external::takes_updates(sink);
    if plan.updating && !takes_updates && !batch {
        let node = updating_node(plan).unwrap_or_else(|| plan.kind().to_string());
        return Err(PlanError::invalid(format!(
            "table `{}` (connector '{connector}') takes append-only rows, but the query is updating: {node} produces updates{}",
            sink.name,
            "; write to a sink that takes updates (print, blackhole, jdbc with a PRIMARY KEY, redis, upsert-kafka), aggregate over windows, or over bounded input SET 'execution.runtime-mode' = 'batch' (the sink then receives the final rows)"
        )));
    }
    Ok(())
}

fn updating_node(plan: &Plan) -> Option<String> {
    for i in plan.inputs() {
        if let Some(n) = updating_node(i) {
            return Some(n);
        }
    }
    if plan.updating {
        Some(format!("{}({})", plan.kind(), plan.detail()))
    } else {
        None
    }
}

/// Late rows bound for late-data tables, one stream per table whatever sends rows there (a
/// self-join's two inputs, two windows, several statements): one sink per table, since two
/// sinks of one file table would write over each other.
#[derive(Default)]
struct LateSinks {
    /// Per table: its rows.
    tables: Vec<(Arc<TableDef>, streamcore::Stream<Row>)>,
}

impl LateSinks {
    /// Adds the late rows a statement planned.
    fn add(&mut self, rows: Vec<(Arc<TableDef>, streamcore::Stream<Row>)>) {
        for (table, rows) in rows {
            match self.tables.iter().position(|(t, _)| t.name == table.name) {
                Some(at) => {
                    let (table, queued) = self.tables.swap_remove(at);
                    self.tables.push((table, queued.union(rows)));
                }
                None => self.tables.push((table, rows)),
            }
        }
    }

    /// Adds each table's sink.
    fn sink(self) -> Result<(), PlanError> {
        for (table, rows) in self.tables {
            add_sink(&table, SqlStream::Append(rows))?;
        }
        Ok(())
    }
}

fn add_sink(sink: &TableDef, stream: SqlStream) -> Result<(), PlanError> {
    let connector = sink.connector()?;
    let name = format!("sink:{}", sink.name);
    let Some(stream) = crate::external::add_sink(sink, &name, stream)? else {
        return Ok(());
    };
    #[cfg(feature = "kafka")]
    let Some(stream) = crate::kafka::add_sink(sink, &name, stream)?
    else {
        return Ok(());
    };
    match connector {
        "print" => {
            let id = sink.options.get("print-identifier").map(String::as_str);
            match stream {
                // A print sink keeps no state: no id (`uid` here would rename the operator
                // that feeds it, and is refused on a side output such as a shared reader's).
                SqlStream::Append(s) => s.sink_named(&name, PrintSink::<Row>::new(id)),
                SqlStream::Updating(s) => s.sink_named(&name, PrintSink::<Change<Row>>::new(id)),
            }
        }
        "blackhole" => match stream {
            SqlStream::Append(s) => s.sink_named(&name, BlackholeSink::<Row>::default()),
            SqlStream::Updating(s) => s.sink_named(&name, BlackholeSink::<Change<Row>>::default()),
        },
        "filesystem" => {
            let SqlStream::Append(s) = stream else {
                return Err(PlanError::invalid(format!(
                    "table `{}` (filesystem) takes append-only rows",
                    sink.name
                )));
            };
            if !sink.partitioned_by.is_empty() {
                return connectors::partitioned_file_sink(sink, s, &name);
            }
            let path = connectors::filesystem_path(sink)?;
            match sink.required("format")? {
                "json" => {
                    let names: crate::format::JsonNames = sink
                        .physical()
                        .map(|c| c.name.clone())
                        .collect::<Vec<_>>()
                        .into();
                    s.map(move |row| JsonRow {
                        names: names.clone(),
                        row,
                    })
                    .sink_named(&name, JsonLinesSink::dir(path));
                }
                "csv" => {
                    connectors::csv_delimiter(sink)?;
                    s.map(CsvRow).sink_named(&name, CsvSink::dir(path));
                }
                other => return Err(connectors::unknown_format(sink, other)),
            }
        }
        other => {
            return Err(PlanError::invalid(format!(
                "table `{}`: connector '{other}' cannot be written{}",
                sink.name,
                if other == "nexmark" || other == "values" {
                    " (it is a source)".to_string()
                } else {
                    String::new()
                }
            )))
        }
    }
    Ok(())
}

impl Session {
    /// Turns a parsed `CREATE TABLE` into a table: `ROW` columns flattened into
    /// `outer.inner` columns, computed columns bound over the physical ones, the watermark
    /// read, the options checked.
    fn table_def(&self, t: CreateTable) -> Result<TableDef, PlanError> {
        let name = crate::binder::name_of(&t.name);
        let mut columns: Vec<TableColumn> = Vec::new();
        let mut physical_fields: Vec<PlanField> = Vec::new();
        let mut computed = Vec::new();
        // Metadata columns, which computed columns may read after the physical ones.
        let mut metadata_fields: Vec<PlanField> = Vec::new();
        for c in &t.columns {
            match &c.kind {
                ColumnKind::Physical { data_type } => {
                    let mut flat = Vec::new();
                    flatten(&c.name.value, data_type, &mut flat).map_err(|e| e.at(c.name.span))?;
                    for (n, ty) in flat {
                        physical_fields.push(PlanField {
                            name: n.clone(),
                            qualifier: None,
                            ty: SqlType::Data(ty),
                        });
                        columns.push(TableColumn {
                            name: n,
                            data_type: ty,
                            kind: ColumnSource::Physical(physical_fields.len() - 1),
                            not_null: c.not_null,
                        });
                    }
                }
                ColumnKind::Computed { expr } => {
                    computed.push(columns.len());
                    columns.push(TableColumn {
                        name: c.name.value.clone(),
                        data_type: streamcore::row::DataType::Varchar,
                        kind: ColumnSource::Metadata {
                            key: String::new(),
                            is_virtual: true,
                        },
                        not_null: false,
                    });
                    let _ = expr;
                }
                ColumnKind::Metadata {
                    data_type,
                    key,
                    is_virtual,
                } => {
                    let column = crate::kafka::metadata_column(
                        &c.name.value,
                        data_type,
                        key.as_deref(),
                        *is_virtual,
                        c.not_null,
                    )
                    .map_err(|e| e.at(c.name.span))?;
                    metadata_fields.push(PlanField {
                        name: column.name.clone(),
                        qualifier: None,
                        ty: SqlType::Data(column.data_type),
                    });
                    columns.push(column);
                }
            }
        }
        // Computed columns, bound over the physical columns (then the metadata columns).
        physical_fields.extend(metadata_fields);
        let mut k = 0;
        for c in &t.columns {
            if let ColumnKind::Computed { expr } = &c.kind {
                let (e, ty) = bind_computed(&self.catalog, &physical_fields, expr)?;
                let at = computed[k];
                k += 1;
                columns[at].data_type = ty.data_type();
                columns[at].kind = ColumnSource::Computed(e.folded());
            }
        }
        let index_of = |ident: &ast::Ident, what: &str| -> Result<usize, PlanError> {
            columns
                .iter()
                .position(|c| c.name == ident.value)
                .ok_or_else(|| {
                    PlanError::invalid(format!(
                        "{what} `{}` is not a column of `{name}`{}",
                        ident.value,
                        did_you_mean(&ident.value, columns.iter().map(|c| c.name.as_str()))
                    ))
                    .at(ident.span)
                })
        };
        let (rowtime, watermark_delay_ms) = match &t.watermark {
            Some(w) => {
                let col = index_of(&w.column, "the watermark's column")?;
                if columns[col].data_type != streamcore::row::DataType::TimestampMillis {
                    return Err(PlanError::invalid(format!(
                        "the rowtime column `{}` must be TIMESTAMP(3), it is {}",
                        columns[col].name, columns[col].data_type
                    ))
                    .at(w.column.span));
                }
                let delay = watermark_delay(&w.expr, &w.column.value)?;
                (Some(col), Some(delay))
            }
            None => (None, None),
        };
        let primary_key = t
            .primary_key
            .iter()
            .map(|c| index_of(c, "the primary key column"))
            .collect::<Result<Vec<_>, _>>()?;
        let partitioned_by = t
            .partitioned_by
            .iter()
            .map(|c| index_of(c, "the partition column"))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(&p) = partitioned_by
            .iter()
            .find(|&&p| matches!(columns[p].data_type, DataType::Map(_) | DataType::Array(_)))
        {
            return Err(PlanError::invalid(format!(
                "table `{name}`: the partition column `{}` is {}: a directory is named by a value, not a collection",
                columns[p].name, columns[p].data_type
            ))
            .at(t.name.span()));
        }
        // Flink's legacy option names ('connector.type', 'connector.path', 'format.type').
        let options: BTreeMap<String, String> = t
            .options
            .iter()
            .map(|(k, v)| {
                let k = match k.as_str() {
                    "connector.type" => "connector",
                    "connector.path" => "path",
                    "format.type" => "format",
                    k => k,
                };
                (k.to_string(), v.clone())
            })
            .collect();
        let def = TableDef {
            name,
            columns,
            rowtime,
            watermark_delay_ms,
            primary_key,
            partitioned_by,
            options,
        };
        let connector = def.connector().map_err(|e| e.at(t.name.span()))?;
        crate::kafka::check_metadata(&def)?;
        crate::format::check_json_map_keys(&def)?;
        if !CONNECTORS.contains(&connector) {
            return Err(PlanError::invalid(format!(
                "table `{}`: unknown connector '{connector}'{} (connectors: {})",
                def.name,
                did_you_mean(connector, CONNECTORS.iter().copied()),
                CONNECTORS.join(", ")
            ))
            .at(t.name.span()));
        }
        match connector {
            "nexmark" => {
                connectors::nexmark_config(&def)?;
                connectors::nexmark_fields(&def)?;
            }
            "filesystem" => {
                def.required("path")?;
                let format = def.required("format")?;
                if !["json", "csv", "parquet"].contains(&format) {
                    return Err(connectors::unknown_format(&def, format));
                }
                if format == "csv" {
                    // Its delimiter, and columns CSV can hold.
                    connectors::csv_delimiter(&def)?;
                }
                crate::external::check_built(&def)?;
            }
            "jdbc" | "postgres-cdc" | "redis" | "webhook" => crate::external::check_built(&def)?,
            "kafka" | "upsert-kafka" => {
                crate::kafka::KafkaTable::from_table(&def)?;
                crate::external::check_built(&def)?;
            }
            "values" => {
                connectors::values_rows(&def)?;
            }
            "datagen" => {
                crate::datagen::DatagenSpec::from_table(&def)?;
            }
            _ => {}
        }
        Ok(def)
    }
}

/// The delay of `WATERMARK FOR c AS c - INTERVAL 'n' UNIT` (or `AS c`: none).
fn watermark_delay(e: &ast::Expr, column: &str) -> Result<i64, PlanError> {
    let is_col = |x: &ast::Expr| matches!(x, ast::Expr::Identifier(i) if i.value == column);
    if is_col(e) {
        return Ok(0);
    }
    if let ast::Expr::BinaryOp {
        left,
        op: ast::BinaryOperator::Minus,
        right,
    } = e
    {
        if is_col(left) {
            return crate::binder::interval_ms(right);
        }
    }
    Err(PlanError::unsupported(format!(
        "the watermark `{e}`: only `{column} - INTERVAL '…' unit` (bounded out-of-orderness) or `{column}`"
    ))
    .at(e.span()))
}

/// A declared type as flat columns (`ROW<a T, b ROW<…>>` → `name.a`, `name.b.…`).
fn flatten(
    name: &str,
    ty: &ast::DataType,
    out: &mut Vec<(String, streamcore::row::DataType)>,
) -> Result<(), PlanError> {
    match ty {
        ast::DataType::Struct(fields, _) => {
            for f in fields {
                let inner = match &f.field_name {
                    Some(n) => format!("{name}.{}", n.value),
                    None => {
                        return Err(PlanError::invalid(format!(
                            "a field of ROW column `{name}` has no name"
                        )))
                    }
                };
                flatten(&inner, &f.field_type, out)?;
            }
            Ok(())
        }
        other => {
            out.push((name.to_string(), from_ast(other)?));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `SHOW CREATE TABLE` prints a statement that creates the same table again (the same
    /// `DESCRIBE`, the same statement printed), with secrets masked; `SHOW CREATE VIEW` the
    /// view's query.
    #[test]
    fn show_create_table_prints_a_statement_that_creates_the_table_again() {
        let nexmark = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/nexmark/ddl_gen.sql"
        ))
        .unwrap()
        .replace("${TPS}", "10000")
        .replace("${EVENTS_NUM}", "1000")
        .replace("${PERSON_PROPORTION}", "1")
        .replace("${AUCTION_PROPORTION}", "3")
        .replace("${BID_PROPORTION}", "46");
        let mut tables = vec![];
        tables.extend([
            nexmark.as_str(),
            "CREATE TABLE t (id BIGINT NOT NULL COMMENT 'the id', `dateTime` TIMESTAMP(3), \
             r ROW<a BIGINT, `b c` ROW<d VARCHAR>>, m MAP<STRING, DECIMAL(10, 2)>, c AS id + 1, \
             WATERMARK FOR `dateTime` AS `dateTime` - INTERVAL '4' SECOND, \
             PRIMARY KEY (id) NOT ENFORCED) COMMENT 'it''s t' PARTITIONED BY (id) \
             WITH ('connector' = 'filesystem', 'path' = '/x', 'format' = 'json')",
        ]);
        // Metadata columns (Kafka tables are refused by a build without the feature).
        #[cfg(feature = "kafka")]
        tables.push(
            "CREATE TEMPORARY TABLE k (v DECIMAL(10, 2), \
             ts TIMESTAMP_LTZ(3) NOT NULL METADATA FROM 'timestamp', \
             o BIGINT METADATA FROM 'offset' VIRTUAL, \
             `partition` INT METADATA VIRTUAL, w AS ts, \
             h MAP<STRING, BYTES> METADATA FROM 'headers') \
             WITH ('connector' = 'kafka', 'topic' = 't', 'properties.bootstrap.servers' = 'b:9092', \
             'format' = 'json')",
        );
        for ddl in tables {
            let mut session = Session::new();
            session.execute_script(ddl).unwrap();
            let name = session.catalog.names().remove(0);
            let show = |session: &mut Session| {
                let outcomes = session
                    .execute_script(&format!("SHOW CREATE TABLE `{name}`"))
                    .unwrap();
                let Some(Outcome::Explain(text)) = outcomes.into_iter().last() else {
                    panic!("no statement")
                };
                let described = session.catalog.table(&name).unwrap().to_string();
                (text, described)
            };
            let (printed, described) = show(&mut session);
            let mut again = Session::new();
            again
                .execute_script(&printed)
                .unwrap_or_else(|e| panic!("{e}\n{printed}"));
            assert_eq!(show(&mut again), (printed, described));
        }
        let mut session = Session::new();
        session
            .execute_script(
                "CREATE TABLE j (a BIGINT, ts TIMESTAMP(3), WATERMARK FOR ts AS ts) WITH ( \
                 'connector' = 'filesystem', 'path' = 's3://b/j', 'format' = 'json', \
                 's3.secret-key' = 'hunter2', 'headers.Authorization' = 'Bearer hunter2', \
                 'url' = 'redis://user:hunter2@host:6379/0', 'password-env' = 'PG_PASSWORD'); \
                 CREATE VIEW v AS SELECT a FROM j WHERE a > 1; \
                 CREATE VIEW w AS SELECT window_start, COUNT(*) AS n \
                   FROM TABLE(TUMBLE(TABLE j, DESCRIPTOR(ts), INTERVAL '10' SECOND)) \
                   GROUP BY window_start, window_end",
            )
            .unwrap();
        let text =
            |session: &mut Session, sql: &str| match session.execute_script(sql).unwrap().pop() {
                Some(Outcome::Explain(t)) => t,
                other => panic!("{other:?}"),
            };
        let j = text(&mut session, "SHOW CREATE TABLE j");
        assert!(!j.contains("hunter2"), "{j}");
        assert!(
            j.contains("'s3.secret-key' = '******'")
                && j.contains("'headers.Authorization' = '******'")
                && j.contains("'url' = 'redis://user:******@host:6379/0'")
                && j.contains("'password-env' = 'PG_PASSWORD'"),
            "{j}"
        );
        // A view's statement as written (the parsed query holds the dialect's rewrites of
        // `TABLE j`), which creates it again.
        assert_eq!(
            text(&mut session, "SHOW CREATE VIEW v"),
            "CREATE VIEW v AS SELECT a FROM j WHERE a > 1\n"
        );
        let w = text(&mut session, "SHOW CREATE VIEW w");
        assert!(w.contains("TUMBLE(TABLE j, DESCRIPTOR(ts)"), "{w}");
        session.execute_script("DROP VIEW w").unwrap();
        session.execute_script(&w).unwrap();
        assert_eq!(text(&mut session, "SHOW CREATE VIEW w"), w);
        let e = session
            .execute_script("SHOW CREATE VIEW j")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`j` is a table: SHOW CREATE TABLE"), "{e}");
        let e = session
            .execute_script("SHOW CREATE TABLE nope")
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope"), "{e}");
    }

    #[test]
    fn checkpoint_options_checkpoint_the_job_by_flinks_names() {
        let config = |sets: &str, base: JobConfig| {
            let mut session = Session::new();
            session.execute_script(sets)?;
            session.job_config(base)
        };
        let c = config(
            "SET 'execution.checkpointing.dir' = '/tmp/ck'; \
             SET 'execution.checkpointing.interval' = '250 ms'; \
             SET 'execution.checkpointing.num-retained' = '5';",
            JobConfig::default(),
        )
        .unwrap()
        .checkpoints
        .expect("checkpoints");
        assert_eq!(
            (c.dir.to_str(), c.interval, c.retain),
            (Some("/tmp/ck"), Duration::from_millis(250), 5)
        );
        // Flink 1's names; the interval of checkpoints the base already has (--checkpoint-dir).
        let c = config(
            "SET 'state.checkpoints.dir' = '/tmp/old'; SET 'state.checkpoints.num-retained' = '2';",
            JobConfig::default(),
        )
        .unwrap()
        .checkpoints
        .unwrap();
        assert_eq!(
            (c.dir.to_str(), c.interval, c.retain),
            (Some("/tmp/old"), Duration::from_secs(1), 2)
        );
        let base = JobConfig::default().checkpoints(CheckpointConfig::new("/tmp/flag").retain(7));
        let c = config("SET 'execution.checkpointing.interval' = '2s';", base)
            .unwrap()
            .checkpoints
            .unwrap();
        assert_eq!(
            (c.dir.to_str(), c.interval, c.retain),
            (Some("/tmp/flag"), Duration::from_secs(2), 7)
        );
        // No directory anywhere: no checkpoints (a warning says why), as a Flink script that
        // leaves the directory to the cluster's configuration.
        let c = config(
            "SET 'execution.checkpointing.interval' = '2s';",
            JobConfig::default(),
        );
        assert!(c.unwrap().checkpoints.is_none());
        // Bad values are refused at the SET.
        for (set, message) in [
            (
                "SET 'execution.checkpointing.interval' = '0 s'",
                "must be more than 0",
            ),
            ("SET 'execution.checkpointing.interval' = 'often'", "often"),
            (
                "SET 'state.checkpoints.num-retained' = '0'",
                "must be a positive number",
            ),
            (
                "SET 'execution.checkpointing.dir' = ' '",
                "must name a directory",
            ),
        ] {
            let e = Session::new().execute_script(set).unwrap_err().to_string();
            assert!(e.contains(message), "{set}: {e}");
        }
        // A Flink 1 script's savepoint directory is taken (savepoints go into the checkpoint
        // directory), and its state backend by Flink's names.
        let c = config(
            "SET 'state.checkpoints.dir' = '/tmp/ck'; SET 'state.savepoints.dir' = '/tmp/sp'; \
             SET 'state.backend' = 'rocksdb'; SET 'state.backend.incremental' = 'true';",
            JobConfig::default(),
        )
        .unwrap();
        assert_eq!(c.checkpoints.unwrap().dir.to_str(), Some("/tmp/ck"));
        assert_eq!(
            (c.state.backend, c.state.incremental),
            (streamcore::state::StateBackendKind::Lsm, true)
        );
        // Nothing set: no checkpoints.
        assert!(config("", JobConfig::default())
            .unwrap()
            .checkpoints
            .is_none());
        // A SELECT's job does not checkpoint (nor refuse an interval without a directory).
        let mut session = Session::new();
        session
            .execute_script(
                "SET 'execution.checkpointing.dir' = '/tmp/ck'; \
                 SET 'execution.checkpointing.interval' = '2s'; SET 'parallelism.default' = '3';",
            )
            .unwrap();
        let select = session.select_config(JobConfig::default()).unwrap();
        assert!(select.checkpoints.is_none());
        assert_eq!(select.parallelism, 3);
    }

    #[test]
    fn state_options_choose_the_jobs_state_backend() {
        let mut session = Session::new();
        session
            .execute_script(
                "SET 'state.backend' = 'lsm'; SET 'state.memory-budget' = '64mb'; \
                 SET 'state.incremental' = 'true';",
            )
            .unwrap();
        let config = session.job_config(JobConfig::default()).unwrap();
        assert_eq!(
            config.state.backend,
            streamcore::state::StateBackendKind::Lsm
        );
        assert_eq!(config.state.memory_budget, 64 << 20);
        assert!(config.state.incremental);
        let e = session
            .execute_script("SET 'state.backend' = 'rocks';")
            .unwrap_err()
            .message();
        assert!(
            e.contains("unknown state backend `rocks` (memory, lsm)"),
            "{e}"
        );
        let e = session
            .execute_script("SET 'state.memory-budjet' = '1gb';")
            .unwrap_err()
            .message();
        assert!(e.contains("unknown state option"), "{e}");
    }
}
