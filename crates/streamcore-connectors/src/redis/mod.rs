//! The Redis sink: rows (or a changelog of rows) written to Redis as a cache — `SET`, `HSET`
//! or `ZADD` with a key (and field, member, value) from columns or templates, an optional TTL,
//! upserts and deletes from a changelog — pipelined: each batch is packed into one buffer and
//! sent as one round trip (or a few, at most [`RedisSink::pipeline`] commands each).
//!
//! **Delivery and replays.** The sink is at-least-once and *idempotent by key*: every command
//! it sends (`SET`, `HSET`, `HDEL`, `ZADD`, `ZREM`, `DEL`, `PEXPIRE`) leaves the same result
//! when repeated. After a crash the job restores its last checkpoint and replays the changes
//! that followed, in their order per key; replaying them over what Redis already holds ends in
//! the same state as a run that never crashed — the cache converges, without transactions.
//! (A TTL restarts on a replayed write.) The same holds for a failed round trip, which is
//! sent again whole after reconnecting (up to [`RedisSink::max_retries`] times).
//!
//! **Changelogs** (`Sink<Change<Row>>`): `+I` and `+U` write the row; `-D` deletes its key
//! (`DEL`; `HDEL` of the field, `ZREM` of the member); a `-U` directly followed by a `+U` of
//! the same target is dropped (the `+U` overwrites it: readers never see the key missing),
//! any other `-U` deletes, as a withdrawal must.
//!
//! Configuration: the builders ([`RedisSink::set`], [`RedisSink::hset`], [`RedisSink::zadd`]),
//! or a Flink-style option map ([`RedisSinkConfig::from_options`]).

mod resp;

use crate::options::Options;
use crate::sink_metrics::{SinkKind, SinkMetrics};
use crate::template::{write_json_row, write_text, Escape, Template};
use resp::Packed;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use streamcore::changelog::Change;
use streamcore::context::TaskInfo;
use streamcore::row::{Row, Scalar, Schema};
use streamcore::{Result, Sink, SinkWriter, StreamError};

/// The Redis command that writes a row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RedisCommand {
    /// `SET key value [PX ttl]`; a delete is `DEL key`.
    Set,
    /// `HSET key field value`: with a field template, one field per row (a delete is `HDEL`);
    /// without one, the row's columns become the hash's fields (`NULL` columns are removed
    /// with `HDEL`) and a delete is `DEL key`.
    HSet,
    /// `ZADD key score member`, the score from a numeric column; a delete is `ZREM`.
    ZAdd,
}

/// What a `SET` (or a field of `HSET`) stores.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RedisValue {
    /// The whole row as a JSON object keyed by column name (the default).
    Json,
    /// One column's value, in its text form.
    Column(String),
    /// A text template over the row's columns.
    Template(String),
}

/// The Redis sink's configuration: built by the [`RedisSink`] builders or read from a
/// Flink-style option map by [`RedisSinkConfig::from_options`].
#[derive(Clone, Debug)]
pub struct RedisSinkConfig {
    /// `redis://[user[:password]@]host[:port][/db]`. Never logged with its password.
    pub url: String,
    /// An environment variable holding the password (instead of putting it in the URL).
    pub password_env: Option<String>,
    /// The command that writes a row.
    pub command: RedisCommand,
    /// The key template (`"user:{user_id}"`).
    pub key: String,
    /// What `SET` stores, or the value of an `HSET` field.
    pub value: RedisValue,
    /// `HSET`: the field template; `None` writes every column as a field.
    pub field: Option<String>,
    /// `ZADD`: the member template.
    pub member: Option<String>,
    /// `ZADD`: the numeric column that is the score.
    pub score: Option<String>,
    /// Expiry of written keys (`PX` on `SET`, `PEXPIRE` after `HSET`/`ZADD`).
    pub ttl: Option<Duration>,
    /// Most commands in one round trip.
    pub pipeline: usize,
    /// Reconnect-and-resend attempts after a connection failure, before the job fails.
    pub max_retries: u32,
    /// Connect, read and write timeout.
    pub timeout: Duration,
}

impl RedisSinkConfig {
    fn new(url: String, command: RedisCommand) -> Self {
        RedisSinkConfig {
            url,
            password_env: None,
            command,
            key: String::new(),
            value: RedisValue::Json,
            field: None,
            member: None,
            score: None,
            ttl: None,
            pipeline: 1000,
            max_retries: 3,
            timeout: Duration::from_secs(5),
        }
    }

    /// Reads the options of a SQL table `WITH ('connector' = 'redis', …)`:
    ///
    /// | option | meaning |
    /// |---|---|
    /// | `url` (required) | `redis://host:port/db` |
    /// | `password.env` | environment variable holding the password |
    /// | `command` | `set` (default), `hset`, `zadd` |
    /// | `key` (required) | key template, e.g. `user:{user_id}` |
    /// | `value` / `value.column` | value template / column (default: the row as JSON) |
    /// | `field` | `hset`: field template (default: every column a field) |
    /// | `member`, `score.column` | `zadd`: member template, score column |
    /// | `ttl` | key expiry, e.g. `10 min` |
    /// | `sink.pipeline.max-size` | commands per round trip (default 1000) |
    /// | `sink.max-retries` | reconnects before failing (default 3) |
    /// | `timeout` | connect/read/write timeout (default `5 s`) |
    pub fn from_options(options: &BTreeMap<String, String>) -> Result<Self> {
        let mut o = Options::new("redis", options);
        let url = o.required("url")?.to_string();
        let command = match o.get("command").map(str::to_ascii_lowercase).as_deref() {
            None | Some("set") => RedisCommand::Set,
            Some("hset") => RedisCommand::HSet,
            Some("zadd") => RedisCommand::ZAdd,
            Some(other) => {
                return Err(o.error("command", format!("`{other}` is not set, hset or zadd")))
            }
        };
        let mut c = RedisSinkConfig::new(url, command);
        c.password_env = o.get("password.env").map(str::to_string);
        c.key = o.required("key")?.to_string();
        match (o.get("value"), o.get("value.column")) {
            (Some(_), Some(_)) => {
                return Err(o.error("value", "set `value` or `value.column`, not both"))
            }
            (Some(t), None) => c.value = RedisValue::Template(t.to_string()),
            (None, Some(col)) => c.value = RedisValue::Column(col.to_string()),
            (None, None) => {}
        }
        c.field = o.get("field").map(str::to_string);
        c.member = o.get("member").map(str::to_string);
        c.score = o.get("score.column").map(str::to_string);
        c.ttl = o.duration("ttl")?;
        if let Some(n) = o.integer::<usize>("sink.pipeline.max-size")? {
            c.pipeline = n.max(1);
        }
        if let Some(n) = o.integer("sink.max-retries")? {
            c.max_retries = n;
        }
        if let Some(t) = o.duration("timeout")? {
            c.timeout = t;
        }
        o.finish()?;
        Ok(c)
    }

    /// The URL with its password hidden, for messages.
    pub fn redacted_url(&self) -> String {
        redact(&self.url)
    }
}

fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

/// Writes rows, or a changelog of rows, to Redis. See the [module docs](self).
///
/// ```no_run
/// use streamcore::row::{DataType, Field, Schema};
/// use streamcore_connectors::redis::RedisSink;
/// let schema = Schema::new(vec![
///     Field::new("user_id", DataType::BigInt),
///     Field::new("total", DataType::BigInt),
/// ]);
/// let sink = RedisSink::set("redis://127.0.0.1:63790/")
///     .schema(schema)
///     .key_template("user:{user_id}")
///     .value_column("total")
///     .ttl(std::time::Duration::from_secs(3600));
/// ```
pub struct RedisSink {
    config: RedisSinkConfig,
    schema: Schema,
    metrics: Arc<SinkMetrics>,
}

impl RedisSink {
    fn with(url: impl Into<String>, command: RedisCommand) -> Self {
        RedisSink {
            config: RedisSinkConfig::new(url.into(), command),
            schema: Schema::default(),
            metrics: Arc::new(SinkMetrics::new(SinkKind::Redis)),
        }
    }

    /// A sink writing each row with `SET key value`.
    pub fn set(url: impl Into<String>) -> Self {
        Self::with(url, RedisCommand::Set)
    }

    /// A sink writing each row with `HSET` (every column a field, unless
    /// [`RedisSink::field_template`] is set).
    pub fn hset(url: impl Into<String>) -> Self {
        Self::with(url, RedisCommand::HSet)
    }

    /// A sink writing each row with `ZADD key score member`.
    pub fn zadd(url: impl Into<String>) -> Self {
        Self::with(url, RedisCommand::ZAdd)
    }

    /// A sink from a configuration (e.g. [`RedisSinkConfig::from_options`]) for rows of
    /// `schema`; its templates are checked now.
    pub fn from_config(config: RedisSinkConfig, schema: Schema) -> Result<Self> {
        let sink = RedisSink {
            config,
            schema,
            metrics: Arc::new(SinkMetrics::new(SinkKind::Redis)),
        };
        sink.plan()?;
        Ok(sink)
    }

    /// The schema of the rows (the templates name its columns).
    pub fn schema(mut self, schema: Schema) -> Self {
        self.schema = schema;
        self
    }

    /// The key template, e.g. `user:{user_id}`.
    pub fn key_template(mut self, template: &str) -> Self {
        self.config.key = template.to_string();
        self
    }

    /// Stores one column's value (`SET`, or the `HSET` field's value).
    pub fn value_column(mut self, column: &str) -> Self {
        self.config.value = RedisValue::Column(column.to_string());
        self
    }

    /// Stores a template over the row (`SET`, or the `HSET` field's value).
    pub fn value_template(mut self, template: &str) -> Self {
        self.config.value = RedisValue::Template(template.to_string());
        self
    }

    /// `HSET`: one field per row, named by this template (the value: [`RedisSink::value_column`]
    /// or [`RedisSink::value_template`], else the row as JSON).
    pub fn field_template(mut self, template: &str) -> Self {
        self.config.field = Some(template.to_string());
        self
    }

    /// `ZADD`: the member template.
    pub fn member_template(mut self, template: &str) -> Self {
        self.config.member = Some(template.to_string());
        self
    }

    /// `ZADD`: the numeric column that is the score.
    pub fn score_column(mut self, column: &str) -> Self {
        self.config.score = Some(column.to_string());
        self
    }

    /// Expiry of written keys.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.config.ttl = Some(ttl);
        self
    }

    /// Most commands per round trip (default 1000).
    pub fn pipeline(mut self, commands: usize) -> Self {
        self.config.pipeline = commands.max(1);
        self
    }

    /// Reconnect-and-resend attempts after a connection failure (default 3).
    pub fn max_retries(mut self, n: u32) -> Self {
        self.config.max_retries = n;
        self
    }

    /// Reads the password from environment variable `var` when connecting.
    pub fn password_env(mut self, var: &str) -> Self {
        self.config.password_env = Some(var.to_string());
        self
    }

    /// Connect, read and write timeout (default 5 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.config.timeout = timeout;
        self
    }

    /// The configuration.
    pub fn config(&self) -> &RedisSinkConfig {
        &self.config
    }

    /// The sink's live counters (also in the job summary).
    pub fn metrics(&self) -> Arc<SinkMetrics> {
        self.metrics.clone()
    }

    /// Checks the configuration against the schema: templates, columns, command options.
    pub fn validate(&self) -> Result<()> {
        self.plan().map(|_| ())
    }

    fn column(&self, name: &str, what: &str) -> Result<usize> {
        self.schema.index_of(name).ok_or_else(|| {
            let names: Vec<&str> = self.schema.fields.iter().map(|f| f.name.as_str()).collect();
            StreamError::Config(format!(
                "redis sink: {what} `{name}` is not a column (the columns are: {})",
                names.join(", ")
            ))
        })
    }

    fn plan(&self) -> Result<Plan> {
        let c = &self.config;
        if self.schema.fields.is_empty() {
            return Err(StreamError::Config(
                "redis sink: no schema (RedisSink::schema): templates name its columns".into(),
            ));
        }
        if c.key.is_empty() {
            return Err(StreamError::Config(
                "redis sink: no key template (RedisSink::key_template, option `key`)".into(),
            ));
        }
        let key = Template::compile(&c.key, &self.schema, Escape::Text, "redis key template")?;
        let value = || -> Result<ValueOut> {
            Ok(match &c.value {
                RedisValue::Json => ValueOut::Json,
                RedisValue::Column(col) => ValueOut::Column(self.column(col, "value column")?),
                RedisValue::Template(t) => ValueOut::Template(Template::compile(
                    t,
                    &self.schema,
                    Escape::Text,
                    "redis value template",
                )?),
            })
        };
        let unused = |what: &str, set: bool| -> Result<()> {
            if set {
                Err(StreamError::Config(format!(
                    "redis sink: {what} does not apply to {:?}",
                    c.command
                )))
            } else {
                Ok(())
            }
        };
        let command = match c.command {
            RedisCommand::Set => {
                unused("a field template", c.field.is_some())?;
                unused(
                    "a member template or score column",
                    c.member.is_some() || c.score.is_some(),
                )?;
                Cmd::Set(value()?)
            }
            RedisCommand::HSet => {
                unused(
                    "a member template or score column",
                    c.member.is_some() || c.score.is_some(),
                )?;
                match &c.field {
                    Some(f) => Cmd::HSetField(
                        Template::compile(f, &self.schema, Escape::Text, "redis field template")?,
                        value()?,
                    ),
                    None => {
                        if c.value != RedisValue::Json {
                            return Err(StreamError::Config(
                                "redis sink: HSET without a field template writes every column as a field; a value column or template needs a field template".into(),
                            ));
                        }
                        Cmd::HSetRow(
                            self.schema
                                .fields
                                .iter()
                                .map(|f| f.name.clone().into_bytes())
                                .collect(),
                        )
                    }
                }
            }
            RedisCommand::ZAdd => {
                unused("a field template", c.field.is_some())?;
                let member = c.member.as_deref().ok_or_else(|| {
                    StreamError::Config(
                        "redis sink: ZADD needs a member template (member_template, option `member`)"
                            .into(),
                    )
                })?;
                let score = c.score.as_deref().ok_or_else(|| {
                    StreamError::Config(
                        "redis sink: ZADD needs a score column (score_column, option `score.column`)"
                            .into(),
                    )
                })?;
                Cmd::ZAdd(
                    Template::compile(member, &self.schema, Escape::Text, "redis member template")?,
                    self.column(score, "score column")?,
                )
            }
        };
        Ok(Plan {
            key,
            command,
            ttl_ms: c.ttl.map(|t| (t.as_millis() as i64).max(1)),
        })
    }

    fn connect(&self) -> Result<redis::Client> {
        let url = self.config.redacted_url();
        let fail = |e: redis::RedisError| {
            StreamError::external("redis", format!("connecting to {url}"), e)
        };
        let mut info: redis::ConnectionInfo =
            redis::IntoConnectionInfo::into_connection_info(self.config.url.as_str())
                .map_err(fail)?;
        if let Some(var) = &self.config.password_env {
            let pw = std::env::var(var).map_err(|_| {
                StreamError::Config(format!(
                    "redis sink: environment variable `{var}` (the password) is not set"
                ))
            })?;
            info.redis.password = Some(pw);
        }
        redis::Client::open(info).map_err(fail)
    }

    fn create(&self, task: &TaskInfo) -> Result<RedisWriter> {
        let plan = self.plan()?;
        let client = self.connect()?;
        let mut w = RedisWriter {
            client,
            conn: None,
            url: self.config.redacted_url(),
            client_name: format!("streamcore:{}:{}:{}", task.job, task.name, task.subtask)
                .chars()
                .map(|c| if c.is_ascii_graphic() { c } else { '_' })
                .collect(),
            timeout: self.config.timeout,
            plan,
            packed: Packed::default(),
            max_pipeline: self.config.pipeline,
            max_retries: self.config.max_retries,
            scratch: String::new(),
            pending_before: None,
            target: String::new(),
            records: 0,
            deletes: 0,
            metrics: self.metrics.clone(),
            schema: self.schema.clone(),
        };
        // Fail fast: an unreachable server stops the job before any data flows.
        w.connection()?;
        tracing::debug!(sink = %task.name, subtask = task.subtask, url = %w.url, "redis sink connected");
        Ok(w)
    }
}

enum ValueOut {
    Json,
    Column(usize),
    Template(Template),
}

enum Cmd {
    Set(ValueOut),
    HSetRow(Vec<Vec<u8>>),
    HSetField(Template, ValueOut),
    ZAdd(Template, usize),
}

struct Plan {
    key: Template,
    command: Cmd,
    ttl_ms: Option<i64>,
}

/// One parallel writer of a [`RedisSink`].
pub struct RedisWriter {
    client: redis::Client,
    conn: Option<redis::Connection>,
    url: String,
    client_name: String,
    timeout: Duration,
    plan: Plan,
    packed: Packed,
    max_pipeline: usize,
    max_retries: u32,
    scratch: String,
    /// The target (key, and field or member) of a `-U` whose `+U` may follow.
    pending_before: Option<String>,
    /// The target of the change being written.
    target: String,
    records: u64,
    deletes: u64,
    metrics: Arc<SinkMetrics>,
    schema: Schema,
}

impl RedisWriter {
    fn connection(&mut self) -> Result<&mut redis::Connection> {
        if self.conn.is_none() {
            let conn = self
                .client
                .get_connection_with_timeout(self.timeout)
                .map_err(|e| {
                    StreamError::external(
                        "redis",
                        format!("connecting to {} (is the server running?)", self.url),
                        e,
                    )
                })?;
            let _ = conn.set_read_timeout(Some(self.timeout));
            let _ = conn.set_write_timeout(Some(self.timeout));
            let mut conn = conn;
            // Named, so that `CLIENT LIST` shows which job and sink a connection is.
            if let Err(e) = redis::cmd("CLIENT")
                .arg("SETNAME")
                .arg(&self.client_name)
                .exec(&mut conn)
            {
                tracing::debug!(error = %e, "CLIENT SETNAME refused");
            }
            self.conn = Some(conn);
        }
        Ok(self.conn.as_mut().expect("connected above"))
    }

    /// Renders the target of `row` into `self.target`: the key, and the field or member.
    fn render_target(&mut self, row: &Row) {
        self.target.clear();
        self.plan.key.render_into(row, &mut self.target);
        match &self.plan.command {
            Cmd::HSetField(t, _) | Cmd::ZAdd(t, _) => {
                self.target.push('\0');
                t.render_into(row, &mut self.target);
            }
            Cmd::Set(_) | Cmd::HSetRow(_) => {}
        }
    }

    fn key_len(&self) -> usize {
        self.target.find('\0').unwrap_or(self.target.len())
    }

    /// Packs the commands writing `row` (its target already rendered).
    fn pack_write(&mut self, row: &Row) -> Result<()> {
        let klen = self.key_len();
        let (key, sub) = self.target.split_at(klen);
        let sub = sub.strip_prefix('\0').unwrap_or("");
        let p = &mut self.packed;
        match &self.plan.command {
            Cmd::Set(v) => {
                self.scratch.clear();
                render_value(v, row, &self.schema, &mut self.scratch);
                p.command(if self.plan.ttl_ms.is_some() { 5 } else { 3 });
                p.arg(b"SET");
                p.arg(key.as_bytes());
                p.arg(self.scratch.as_bytes());
                if let Some(ttl) = self.plan.ttl_ms {
                    p.arg(b"PX");
                    p.int_arg(ttl);
                }
                return Ok(());
            }
            Cmd::HSetRow(names) => {
                let nulls = names
                    .iter()
                    .zip(row.values.iter())
                    .filter(|(_, v)| v.is_null())
                    .count();
                let set = names.len().min(row.values.len()) - nulls;
                if set > 0 {
                    p.command(2 + 2 * set);
                    p.arg(b"HSET");
                    p.arg(key.as_bytes());
                    for (name, v) in names.iter().zip(row.values.iter()) {
                        if !v.is_null() {
                            p.arg(name);
                            self.scratch.clear();
                            write_text(v, &mut self.scratch);
                            p.arg(self.scratch.as_bytes());
                        }
                    }
                }
                if nulls > 0 {
                    p.command(2 + nulls);
                    p.arg(b"HDEL");
                    p.arg(key.as_bytes());
                    for (name, v) in names.iter().zip(row.values.iter()) {
                        if v.is_null() {
                            p.arg(name);
                        }
                    }
                }
            }
            Cmd::HSetField(_, v) => {
                self.scratch.clear();
                render_value(v, row, &self.schema, &mut self.scratch);
                p.command(4);
                p.arg(b"HSET");
                p.arg(key.as_bytes());
                p.arg(sub.as_bytes());
                p.arg(self.scratch.as_bytes());
            }
            Cmd::ZAdd(_, score) => {
                let value = &row.values[*score];
                let Some(s) = value.as_f64().filter(|s| !s.is_nan()) else {
                    return Err(StreamError::External {
                        system: "redis".into(),
                        message: format!(
                            "ZADD {key} {sub}: the score column `{}` holds {} (a number is needed)",
                            self.schema.fields[*score].name,
                            if value.is_null() {
                                "NULL".to_string()
                            } else {
                                format!("`{value}`")
                            }
                        ),
                        source: None,
                    });
                };
                p.command(4);
                p.arg(b"ZADD");
                p.arg(key.as_bytes());
                match value {
                    Scalar::Int(i) => p.int_arg(*i),
                    _ => p.float_arg(s),
                }
                p.arg(sub.as_bytes());
            }
        }
        if let Some(ttl) = self.plan.ttl_ms {
            p.command(3);
            p.arg(b"PEXPIRE");
            p.arg(key.as_bytes());
            p.int_arg(ttl);
        }
        Ok(())
    }

    /// Packs the command deleting `target` (a rendered target).
    fn pack_delete(&mut self, target: &str) {
        let (key, sub) = target.split_at(target.find('\0').unwrap_or(target.len()));
        let sub = sub.strip_prefix('\0').unwrap_or("");
        let p = &mut self.packed;
        match &self.plan.command {
            Cmd::Set(_) | Cmd::HSetRow(_) => {
                p.command(2);
                p.arg(b"DEL");
                p.arg(key.as_bytes());
            }
            Cmd::HSetField(..) => {
                p.command(3);
                p.arg(b"HDEL");
                p.arg(key.as_bytes());
                p.arg(sub.as_bytes());
            }
            Cmd::ZAdd(..) => {
                p.command(3);
                p.arg(b"ZREM");
                p.arg(key.as_bytes());
                p.arg(sub.as_bytes());
            }
        }
        self.deletes += 1;
    }

    /// A pending `-U` that no `+U` of the same target followed: a withdrawal.
    fn resolve_pending(&mut self) {
        if let Some(t) = self.pending_before.take() {
            self.pack_delete(&t);
            self.records += 1;
        }
    }

    fn apply(&mut self, change: &Change<Row>) -> Result<()> {
        match change {
            Change::Insert(row) => {
                self.resolve_pending();
                self.render_target(row);
                self.pack_write(row)?;
            }
            Change::UpdateAfter(row) => {
                self.render_target(row);
                match self.pending_before.take() {
                    Some(t) if t == self.target => {
                        // The update-before of this very target: the write replaces it.
                        self.records += 1;
                        self.pending_before = None;
                    }
                    Some(t) => {
                        self.pack_delete(&t);
                        self.records += 1;
                    }
                    None => {}
                }
                self.pack_write(row)?;
            }
            Change::UpdateBefore(row) => {
                self.resolve_pending();
                self.render_target(row);
                self.pending_before = Some(self.target.clone());
                return Ok(());
            }
            Change::Delete(row) => {
                self.resolve_pending();
                self.render_target(row);
                let t = std::mem::take(&mut self.target);
                self.pack_delete(&t);
                self.target = t;
            }
        }
        self.records += 1;
        if self.packed.len() >= self.max_pipeline {
            self.flush()?;
        }
        Ok(())
    }

    fn write_row(&mut self, row: &Row) -> Result<()> {
        self.render_target(row);
        self.pack_write(row)?;
        self.records += 1;
        if self.packed.len() >= self.max_pipeline {
            self.flush()?;
        }
        Ok(())
    }

    /// Sends the packed commands as one round trip; on a connection failure reconnects and
    /// sends them again (they are idempotent), up to `max_retries` times.
    fn flush(&mut self) -> Result<()> {
        if self.packed.len() == 0 {
            self.metrics
                .records_out
                .fetch_add(std::mem::take(&mut self.records), Relaxed);
            return Ok(());
        }
        let started = Instant::now();
        let mut attempt = 0;
        let replies = loop {
            let count = self.packed.len();
            let result = self.connection().map(|_| ()).and_then(|()| {
                let conn = self.conn.as_mut().expect("connected");
                redis::ConnectionLike::req_packed_commands(conn, &self.packed.bytes, 0, count)
                    .map_err(|e| StreamError::external("redis", "sending", e))
            });
            match result {
                Ok(replies) => break replies,
                Err(e) if attempt < self.max_retries && retryable(&e) => {
                    attempt += 1;
                    self.metrics.retries.fetch_add(1, Relaxed);
                    let backoff = Duration::from_millis(50u64 << attempt.min(6));
                    tracing::warn!(url = %self.url, attempt, error = %e, "redis round trip failed; reconnecting in {backoff:?}");
                    self.conn = None;
                    std::thread::sleep(backoff);
                }
                Err(e) => {
                    self.metrics.errors.fetch_add(1, Relaxed);
                    self.conn = None;
                    return Err(match e {
                        StreamError::External {
                            system,
                            message,
                            source,
                        } => StreamError::External {
                            system,
                            message: format!("{} after {attempt} retries: {message}", self.url),
                            source,
                        },
                        other => other,
                    });
                }
            }
        };
        if let Some((i, err)) = replies.iter().enumerate().find_map(|(i, v)| match v {
            redis::Value::ServerError(e) => Some((i, e.clone())),
            _ => None,
        }) {
            self.metrics.errors.fetch_add(1, Relaxed);
            let command = self.packed.describe(i, 2);
            self.packed.clear();
            return Err(StreamError::external(
                "redis",
                format!("{command} (at {}) was refused", self.url),
                redis::RedisError::from(err),
            ));
        }
        let m = &self.metrics;
        m.commit_took(started.elapsed());
        m.batches.fetch_add(1, Relaxed);
        m.bytes_out
            .fetch_add(self.packed.bytes.len() as u64, Relaxed);
        m.records_out
            .fetch_add(std::mem::take(&mut self.records), Relaxed);
        m.deletes
            .fetch_add(std::mem::take(&mut self.deletes), Relaxed);
        self.packed.clear();
        Ok(())
    }
}

fn retryable(e: &StreamError) -> bool {
    let Some(source) = std::error::Error::source(e) else {
        return false;
    };
    match source.downcast_ref::<redis::RedisError>() {
        Some(r) => {
            r.is_io_error()
                || r.is_connection_dropped()
                || r.is_timeout()
                || r.is_connection_refusal()
        }
        None => false,
    }
}

fn render_value(v: &ValueOut, row: &Row, schema: &Schema, out: &mut String) {
    match v {
        ValueOut::Json => write_json_row(row, schema, out),
        ValueOut::Column(c) => write_text(&row.values[*c], out),
        ValueOut::Template(t) => t.render_into(row, out),
    }
}

impl Sink<Row> for RedisSink {
    type Writer = RedisWriter;

    fn create_writer(&mut self, task: &TaskInfo) -> Result<RedisWriter> {
        self.create(task)
    }

    fn connector_metrics(&self) -> Option<Arc<dyn streamcore::metrics::ConnectorMetrics>> {
        Some(self.metrics.clone())
    }
}

impl SinkWriter<Row> for RedisWriter {
    fn write_batch(&mut self, batch: Vec<Row>) -> Result<()> {
        for row in &batch {
            self.write_row(row)?;
        }
        self.flush()
    }

    fn pre_commit(&mut self, _checkpoint: u64) -> Result<Vec<Vec<u8>>> {
        self.flush()?;
        Ok(Vec::new())
    }

    fn close(&mut self) -> Result<()> {
        self.flush()
    }
}

/// Takes a changelog: upserts and deletes by key (see the [module docs](self)).
impl Sink<Change<Row>> for RedisSink {
    type Writer = RedisWriter;

    fn create_writer(&mut self, task: &TaskInfo) -> Result<RedisWriter> {
        self.create(task)
    }

    fn connector_metrics(&self) -> Option<Arc<dyn streamcore::metrics::ConnectorMetrics>> {
        Some(self.metrics.clone())
    }

    fn accepts_updates(&self) -> bool {
        true
    }
}

impl SinkWriter<Change<Row>> for RedisWriter {
    fn write_batch(&mut self, batch: Vec<Change<Row>>) -> Result<()> {
        for change in &batch {
            self.apply(change)?;
        }
        // A trailing `-U` waits for its `+U` in the next batch; everything else goes now.
        self.flush()
    }

    fn pre_commit(&mut self, _checkpoint: u64) -> Result<Vec<Vec<u8>>> {
        self.resolve_pending();
        self.flush()?;
        Ok(Vec::new())
    }

    fn close(&mut self) -> Result<()> {
        self.resolve_pending();
        self.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use streamcore::row::{DataType, Field};

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("user_id", DataType::BigInt),
            Field::new("total", DataType::BigInt),
        ])
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("redis://:s3cret@host:6379/0"),
            "redis://:***@host:6379/0"
        );
        assert_eq!(redact("redis://bob:s3cret@host/"), "redis://bob:***@host/");
        assert_eq!(redact("redis://host:6379/"), "redis://host:6379/");
    }

    #[test]
    fn options_make_the_same_sink_as_the_builder() {
        let options: BTreeMap<String, String> = [
            ("connector", "redis"),
            ("url", "redis://127.0.0.1:63790/"),
            ("command", "zadd"),
            ("key", "top:{user_id}"),
            ("member", "{user_id}"),
            ("score.column", "total"),
            ("ttl", "10 min"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let c = RedisSinkConfig::from_options(&options).unwrap();
        assert_eq!(c.command, RedisCommand::ZAdd);
        assert_eq!(c.ttl, Some(Duration::from_secs(600)));
        RedisSink::from_config(c, schema()).unwrap();
    }

    #[test]
    fn bad_configurations_are_refused_naming_what() {
        let e = |s: RedisSink| s.schema(schema()).validate().unwrap_err().to_string();
        assert!(
            e(RedisSink::set("redis://x/").key_template("u:{user}")).contains("no column `user`")
        );
        assert!(e(RedisSink::set("redis://x/")).contains("no key template"));
        assert!(e(RedisSink::zadd("redis://x/").key_template("k")).contains("member template"));
        assert!(e(RedisSink::set("redis://x/")
            .key_template("k")
            .value_column("tot"))
        .contains("value column `tot` is not a column"));
        let mut bad = BTreeMap::new();
        bad.insert("url".to_string(), "redis://x/".to_string());
        bad.insert("key".to_string(), "k".to_string());
        bad.insert("ttl".to_string(), "soon".to_string());
        let err = RedisSinkConfig::from_options(&bad).unwrap_err().to_string();
        assert!(err.contains("redis option `ttl`"), "{err}");
    }
}
