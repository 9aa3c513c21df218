//! `SqlNode` ("SQL"): runs one query against PostgreSQL or MySQL/MariaDB and puts the rows at
//! `resultPath`.
//!
//! The query is a future on the runtime (sqlx over tokio, rustls for TLS); other paths keep
//! moving while it runs. Connection pools are shared by every run ([`SqlPools`] in `Services`),
//! one per distinct connection (system, host, port, user, password, database, TLS settings),
//! created on first use with at most [`POOL_MAX_CONNECTIONS`] connections; at most
//! [`MAX_POOLS`] are kept, the least recently used dropped when a new one is needed.
//!
//! Config (NODES.md): `systemTemplate` (`pg`, also `postgres`/`postgresql`; `mysql`, also
//! `mariadb`; Losant's default `mssql` and edge-only `sqlite3` are not supported), `hostTemplate`,
//! `portTemplate` (default 5432 / 3306), `userTemplate`, `passwordTemplate`, `databaseTemplate`,
//! `query` (template, required), `resultPath`, `sslOn`, `sslDataMethod` (`payloadPath` default,
//! `jsonTemplate`) with `sslDataTemplate`; plus, as flowd extensions, `parameters` (an array of
//! templates) and `errorBehavior` + `errorPath` (as the HTTP node).
//!
//! Decisions:
//! * **Parameters are bound, never spliced.** Each `parameters` entry is rendered and bound as a
//!   text parameter (`$1, $2, …` for PostgreSQL, `?` for MySQL); a JSON `null` entry binds SQL
//!   NULL. Parameters render like every template, so `{{…}}` HTML-escapes (`'` becomes
//!   `&#x27;`): use `{{{…}}}` for raw text. PostgreSQL types text parameters strictly, so cast them where a type is needed
//!   (`WHERE id = $1::int`); MySQL converts them itself. The `query` template itself is still
//!   rendered as Losant does (its spec example splices `{{data.sn}}`): that is the flow
//!   author's choice, and `parameters` is the safe alternative.
//! * **One statement per node**, sent as a prepared statement (multiple statements are refused
//!   by both servers in that protocol).
//! * **Result**: a statement that returns columns gives an array of row objects (columns in
//!   order; a repeated column name keeps the last value); any other statement gives
//!   `["success"]`, as the spec describes. Columns are JSON-typed: booleans, integers and
//!   floats are numbers/booleans (64-bit integers stay exact as JSON integers), `NUMERIC` /
//!   `DECIMAL` are strings (no precision lost, as Node's drivers give them), `JSON`/`JSONB` are
//!   parsed, `UUID` and text types are strings, `TIMESTAMPTZ`/`TIMESTAMP`/`DATETIME` are ISO
//!   strings in UTC with milliseconds (as Losant's JSON of a JavaScript `Date`; a zoneless
//!   timestamp is taken as UTC), `DATE` is `YYYY-MM-DD`, `TIME` is `HH:MM:SS[.ffffff]`, binary
//!   columns are Node's Buffer JSON `{type: "Buffer", data: [bytes]}`, and PostgreSQL arrays of
//!   those scalars are arrays. A column of any other type fails the query with a message
//!   asking for a cast (`::text`) rather than silently dropping data. At most [`MAX_ROWS`] rows
//!   are read; more is a `SqlError`.
//! * **Errors** (`SqlError`): a connection that fails (refused, DNS, authentication, TLS, or
//!   none free within [`ACQUIRE_TIMEOUT`]), the server rejecting the query, a row too many, a
//!   column that cannot be converted. With `errorBehavior: "payloadPath"` they go to
//!   `errorPath` as `{type: "SqlError", message}`; with `errorBehavior: "throw"` they halt. With
//!   no `errorBehavior`, the spec's behaviour: `{errors: "<message>"}` is written at
//!   `resultPath` and the path continues, or the run halts when there is no `resultPath`. The
//!   path continues on port 0 in every non-halting case. Template failures (`TemplateError`),
//!   and a rendered system or port that is not one (`ValidationError`), halt whatever
//!   `errorBehavior` says.
//! * **TLS**: `sslOn` false connects without TLS. `sslOn` true requires TLS; the SSL data (an
//!   object from `sslDataTemplate` as JSON, or at that payload path) may hold `ca` (PEM: the
//!   server certificate must chain to it and match the host), `cert` + `key` (PEM client
//!   certificate), and `rejectUnauthorized: false` (encrypt without verifying). Without `ca`
//!   and with `rejectUnauthorized` not false, the server is verified against Mozilla's roots.
//! * `credentialNameTemplate` (Losant's stored credentials) and `instanceNameTemplate` (MSSQL)
//!   are not supported: a non-blank credential name is a compile error, the instance is ignored.

use crate::error::{CompileError, ErrorName, NodeError};
use crate::node::{CompiledNodeType, Node, NodeContext, NodeSpec, Outcome, PayloadUpdate, Resume};
use crate::nodes::template_text as text;
use crate::nodes::{optional_path, render, render_required, template, ErrorBehavior};
use crate::path::PayloadPath;
use crate::template::Template;
use futures::TryStreamExt;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions, MySqlRow, MySqlSslMode};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow, PgSslMode};
use sqlx::{AssertSqlSafe, Column, Row, TypeInfo};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Most connections one pool opens.
pub const POOL_MAX_CONNECTIONS: u32 = 4;
/// Most pools kept at once.
pub const MAX_POOLS: usize = 32;
/// How long a query waits for a connection (including connecting).
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle connections are closed after this.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Most rows one query may return.
pub const MAX_ROWS: usize = 10_000;

// ---- shared pools --------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum System {
    Postgres,
    MySql,
}

/// Everything that identifies a connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ConnectionKey {
    system: System,
    host: String,
    port: u16,
    user: String,
    password: String,
    database: String,
    tls: Option<Tls>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Tls {
    verify: bool,
    ca: Option<String>,
    cert: Option<String>,
    key: Option<String>,
}

#[derive(Clone)]
enum Pool {
    Postgres(PgPool),
    MySql(MySqlPool),
}

/// The engine's SQL connection pools, one per distinct connection, shared by every run.
#[derive(Default)]
pub struct SqlPools {
    pools: Mutex<PoolMap>,
}

#[derive(Default)]
struct PoolMap {
    tick: u64,
    /// Pool and when it was last used.
    entries: HashMap<ConnectionKey, (Pool, u64)>,
}

impl SqlPools {
    pub fn new() -> SqlPools {
        SqlPools::default()
    }

    /// The pool for a connection, made (lazily connecting) on first use.
    fn pool(&self, key: &ConnectionKey) -> Pool {
        let mut map = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        map.tick += 1;
        let tick = map.tick;
        if let Some((pool, used)) = map.entries.get_mut(key) {
            *used = tick;
            return pool.clone();
        }
        if map.entries.len() >= MAX_POOLS {
            let oldest = map
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                // Dropping the handle lets the pool close once runs using it finish.
                map.entries.remove(&oldest);
            }
        }
        let pool = new_pool(key);
        map.entries.insert(key.clone(), (pool.clone(), tick));
        pool
    }

    /// How many pools are kept.
    pub fn len(&self) -> usize {
        self.pools
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entries
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn new_pool(key: &ConnectionKey) -> Pool {
    match key.system {
        System::Postgres => {
            let mut options = PgConnectOptions::new_without_pgpass()
                .host(&key.host)
                .port(key.port)
                .username(&key.user)
                .database(&key.database)
                .application_name("flowd");
            if !key.password.is_empty() {
                options = options.password(&key.password);
            }
            options = match &key.tls {
                None => options.ssl_mode(PgSslMode::Disable),
                Some(tls) => {
                    let mut options = options.ssl_mode(if tls.verify {
                        PgSslMode::VerifyFull
                    } else {
                        PgSslMode::Require
                    });
                    if let Some(ca) = &tls.ca {
                        options = options.ssl_root_cert_from_pem(ca.as_bytes().to_vec());
                    }
                    if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
                        options = options
                            .ssl_client_cert_from_pem(cert.as_bytes())
                            .ssl_client_key_from_pem(key.as_bytes());
                    }
                    options
                }
            };
            Pool::Postgres(
                PgPoolOptions::new()
                    .max_connections(POOL_MAX_CONNECTIONS)
                    .min_connections(0)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .idle_timeout(IDLE_TIMEOUT)
                    .connect_lazy_with(options),
            )
        }
        System::MySql => {
            let mut options = MySqlConnectOptions::new()
                .host(&key.host)
                .port(key.port)
                .username(&key.user)
                .database(&key.database);
            if !key.password.is_empty() {
                options = options.password(&key.password);
            }
            options = match &key.tls {
                None => options.ssl_mode(MySqlSslMode::Disabled),
                Some(tls) => {
                    let mut options = options.ssl_mode(if tls.verify {
                        MySqlSslMode::VerifyIdentity
                    } else {
                        MySqlSslMode::Required
                    });
                    if let Some(ca) = &tls.ca {
                        options = options.ssl_ca_from_pem(ca.as_bytes().to_vec());
                    }
                    if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
                        options = options
                            .ssl_client_cert_from_pem(cert.as_bytes())
                            .ssl_client_key_from_pem(key.as_bytes());
                    }
                    options
                }
            };
            Pool::MySql(
                MySqlPoolOptions::new()
                    .max_connections(POOL_MAX_CONNECTIONS)
                    .min_connections(0)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .idle_timeout(IDLE_TIMEOUT)
                    .connect_lazy_with(options),
            )
        }
    }
}

// ---- configuration -------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Config {
    #[serde(default, deserialize_with = "text")]
    credential_name_template: Option<String>,
    #[serde(default, deserialize_with = "text")]
    system_template: Option<String>,
    #[serde(default, deserialize_with = "text")]
    host_template: Option<String>,
    #[serde(default, deserialize_with = "text")]
    port_template: Option<String>,
    #[serde(default, deserialize_with = "text")]
    user_template: Option<String>,
    #[serde(default, deserialize_with = "text")]
    password_template: Option<String>,
    #[serde(default, deserialize_with = "text")]
    database_template: Option<String>,
    #[serde(default, deserialize_with = "text")]
    query: Option<String>,
    #[serde(default)]
    parameters: Option<Vec<Value>>,
    result_path: Option<String>,
    ssl_on: Option<Value>,
    ssl_data_method: Option<String>,
    #[serde(default, deserialize_with = "text")]
    ssl_data_template: Option<String>,
    error_behavior: Option<String>,
    error_path: Option<String>,
}

fn parse_system(text: &str) -> Result<System, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "pg" | "postgres" | "postgresql" => Ok(System::Postgres),
        "mysql" | "mariadb" => Ok(System::MySql),
        "" | "mssql" => {
            Err("systemTemplate mssql (Losant's default) is not supported; use pg or mysql".into())
        }
        "sqlite3" => Err("systemTemplate sqlite3 is not supported; use pg or mysql".into()),
        other => Err(format!(
            "systemTemplate must be pg or mysql, not \"{other}\""
        )),
    }
}

fn parse_port(text: &str, system: System) -> Result<u16, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(match system {
            System::Postgres => 5432,
            System::MySql => 3306,
        });
    }
    match text.parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(format!(
            "portTemplate must be a port number, not \"{text}\""
        )),
    }
}

enum SslData {
    /// Rendered and parsed as JSON.
    Template(Template),
    Path(PayloadPath),
}

enum Param {
    Null,
    Text(Template),
}

pub struct SqlNode {
    system: Template,
    host: Template,
    port: Template,
    user: Template,
    password: Template,
    database: Template,
    query: Template,
    parameters: Vec<Param>,
    result: Option<PayloadPath>,
    ssl: Option<SslData>,
    errors: Option<ErrorBehavior>,
}

fn flag(spec: &NodeSpec<'_>, field: &str, value: &Option<Value>) -> Result<bool, CompileError> {
    match value {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s == "true" => Ok(true),
        Some(Value::String(s)) if s == "false" || s.is_empty() => Ok(false),
        Some(other) => Err(spec.error(format!("{field} must be true or false, not {other}"))),
    }
}

pub fn compile(spec: &NodeSpec<'_>) -> Result<CompiledNodeType, CompileError> {
    let config: Config = spec.config()?;
    if config
        .credential_name_template
        .as_deref()
        .is_some_and(|c| !c.trim().is_empty())
    {
        return Err(spec.error(
            "credentialNameTemplate (stored credentials) is not supported yet; give the connection fields",
        ));
    }
    let field = |name: &str, value: &Option<String>| -> Result<Template, CompileError> {
        template(spec, name, value.as_deref().unwrap_or_default())
    };
    let system = field("systemTemplate", &config.system_template)?;
    if let Some(text) = system.static_text() {
        let system = parse_system(text).map_err(|e| spec.error(e))?;
        let port = field("portTemplate", &config.port_template)?;
        if let Some(text) = port.static_text() {
            parse_port(text, system).map_err(|e| spec.error(e))?;
        }
    }
    let query = match config.query.as_deref().map(str::trim) {
        None | Some("") => return Err(spec.error("query is required")),
        Some(_) => field("query", &config.query)?,
    };
    let mut parameters = Vec::new();
    for (i, entry) in config.parameters.unwrap_or_default().iter().enumerate() {
        let name = format!("parameters[{i}]");
        parameters.push(match entry {
            Value::Null => Param::Null,
            Value::String(s) => Param::Text(template(spec, &name, s)?),
            Value::Number(n) => Param::Text(template(spec, &name, &n.to_string())?),
            Value::Bool(b) => Param::Text(template(spec, &name, &b.to_string())?),
            other => {
                return Err(spec.error(format!(
                    "{name} must be a template string (or null), not {other}"
                )))
            }
        });
    }
    let ssl = if flag(spec, "sslOn", &config.ssl_on)? {
        let data = config.ssl_data_template.as_deref().unwrap_or_default();
        if data.trim().is_empty() {
            Some(SslData::Template(template(spec, "sslDataTemplate", "{}")?))
        } else {
            match config.ssl_data_method.as_deref().unwrap_or("payloadPath") {
                "payloadPath" | "" => Some(SslData::Path(
                    optional_path(spec, "sslDataTemplate", Some(data))?
                        .ok_or_else(|| spec.error("sslDataTemplate: empty path"))?,
                )),
                "jsonTemplate" => Some(SslData::Template(template(spec, "sslDataTemplate", data)?)),
                other => {
                    return Err(spec.error(format!(
                        "sslDataMethod must be payloadPath or jsonTemplate, not \"{other}\""
                    )))
                }
            }
        }
    } else {
        None
    };
    let errors = match config.error_behavior.as_deref() {
        None => None,
        Some(behavior) => Some(ErrorBehavior::compile(
            spec,
            Some(behavior),
            config.error_path.as_deref(),
        )?),
    };
    Ok(CompiledNodeType::new(
        SqlNode {
            system,
            host: field("hostTemplate", &config.host_template)?,
            port: field("portTemplate", &config.port_template)?,
            user: field("userTemplate", &config.user_template)?,
            password: field("passwordTemplate", &config.password_template)?,
            database: field("databaseTemplate", &config.database_template)?,
            query,
            parameters,
            result: optional_path(spec, "resultPath", config.result_path.as_deref())?,
            ssl,
            errors,
        },
        1,
    ))
}

// ---- running -------------------------------------------------------------------------------

fn validation(message: String) -> NodeError {
    NodeError::new(ErrorName::ValidationError, message)
}

fn sql_error(message: impl Into<String>) -> NodeError {
    NodeError::new(ErrorName::SqlError, message)
}

/// A PEM field of the SSL data.
fn pem(data: &Value, field: &str) -> Option<String> {
    data.get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .map(str::to_owned)
}

impl SqlNode {
    fn tls(&self, payload: &Value) -> Result<Option<Tls>, NodeError> {
        let data = match &self.ssl {
            None => return Ok(None),
            Some(SslData::Template(template)) => {
                let text = render(template, payload)?;
                serde_json::from_str::<Value>(&text).map_err(|e| {
                    NodeError::new(
                        ErrorName::TemplateError,
                        format!("sslDataTemplate did not render JSON: {e}"),
                    )
                })?
            }
            Some(SslData::Path(path)) => path
                .get(payload)
                .map(|v| v.into_owned())
                .unwrap_or(Value::Null),
        };
        if !(data.is_object() || data.is_null()) {
            return Err(validation("the SSL data must be an object".into()));
        }
        Ok(Some(Tls {
            verify: data.get("rejectUnauthorized") != Some(&Value::Bool(false)),
            ca: pem(&data, "ca"),
            cert: pem(&data, "cert"),
            key: pem(&data, "key"),
        }))
    }

    fn prepare(
        &self,
        payload: &Value,
    ) -> Result<(ConnectionKey, String, Vec<Option<String>>), NodeError> {
        let system = parse_system(&render(&self.system, payload)?).map_err(validation)?;
        let key = ConnectionKey {
            system,
            host: render_required(&self.host, "hostTemplate", payload)?,
            port: parse_port(&render(&self.port, payload)?, system).map_err(validation)?,
            user: render(&self.user, payload)?,
            password: render(&self.password, payload)?,
            database: render(&self.database, payload)?,
            tls: self.tls(payload)?,
        };
        let query = render_required(&self.query, "query", payload)?;
        let mut parameters = Vec::with_capacity(self.parameters.len());
        for param in &self.parameters {
            parameters.push(match param {
                Param::Null => None,
                Param::Text(template) => Some(render(template, payload)?),
            });
        }
        Ok((key, query, parameters))
    }
}

/// An error and its causes, `: `-separated.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn describe(error: &sqlx::Error, key: &ConnectionKey) -> NodeError {
    let system = match key.system {
        System::Postgres => "PostgreSQL",
        System::MySql => "MySQL",
    };
    match error {
        sqlx::Error::Database(db) => sql_error(format!("{system} error: {}", db.message())),
        sqlx::Error::PoolTimedOut => sql_error(format!(
            "could not connect to {system} at {}:{} within {} s",
            key.host,
            key.port,
            ACQUIRE_TIMEOUT.as_secs()
        )),
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) => sql_error(format!(
            "could not connect to {system} at {}:{}: {}",
            key.host,
            key.port,
            chain(error)
        )),
        other => sql_error(format!("{system} query failed: {}", chain(other))),
    }
}

/// Node's JSON of a Buffer.
fn buffer(bytes: Vec<u8>) -> Value {
    json!({"type": "Buffer", "data": bytes})
}

fn timestamp(time: chrono::NaiveDateTime) -> Value {
    Value::String(time.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}

/// A 32-bit float as the shortest decimal that reads back to it.
fn float32(value: f32) -> Value {
    value
        .to_string()
        .parse::<f64>()
        .map(Value::from)
        .unwrap_or(Value::Null)
}

type Decoded = Result<Value, sqlx::Error>;

fn opt<T>(value: Result<Option<T>, sqlx::Error>, convert: impl FnOnce(T) -> Value) -> Decoded {
    value.map(|v| v.map(convert).unwrap_or(Value::Null))
}

fn array<T: Into<Value>>(value: Result<Option<Vec<Option<T>>>, sqlx::Error>) -> Decoded {
    opt(value, |items| {
        Value::Array(
            items
                .into_iter()
                .map(|v| v.map(Into::into).unwrap_or(Value::Null))
                .collect(),
        )
    })
}

fn pg_value(row: &PgRow, i: usize) -> Option<Decoded> {
    use sqlx::types::{Decimal, Uuid};
    let type_name = row.columns()[i].type_info().name().to_owned();
    Some(match type_name.as_str() {
        "BOOL" => opt(row.try_get::<Option<bool>, _>(i), Value::Bool),
        "INT2" => opt(row.try_get::<Option<i16>, _>(i), Value::from),
        "INT4" => opt(row.try_get::<Option<i32>, _>(i), Value::from),
        "INT8" => opt(row.try_get::<Option<i64>, _>(i), Value::from),
        "FLOAT4" => opt(row.try_get::<Option<f32>, _>(i), float32),
        "FLOAT8" => opt(row.try_get::<Option<f64>, _>(i), Value::from),
        "NUMERIC" => opt(row.try_get::<Option<Decimal>, _>(i), |d| {
            Value::String(d.to_string())
        }),
        "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "CITEXT" | "UNKNOWN" => {
            opt(row.try_get::<Option<String>, _>(i), Value::String)
        }
        "JSON" | "JSONB" => opt(row.try_get::<Option<Value>, _>(i), |v| v),
        "UUID" => opt(row.try_get::<Option<Uuid>, _>(i), |u| {
            Value::String(u.to_string())
        }),
        "TIMESTAMPTZ" => opt(
            row.try_get::<Option<chrono::DateTime<chrono::Utc>>, _>(i),
            |t| timestamp(t.naive_utc()),
        ),
        "TIMESTAMP" => opt(
            row.try_get::<Option<chrono::NaiveDateTime>, _>(i),
            timestamp,
        ),
        "DATE" => opt(row.try_get::<Option<chrono::NaiveDate>, _>(i), |d| {
            Value::String(d.to_string())
        }),
        "TIME" => opt(row.try_get::<Option<chrono::NaiveTime>, _>(i), |t| {
            Value::String(t.to_string())
        }),
        "BYTEA" => opt(row.try_get::<Option<Vec<u8>>, _>(i), buffer),
        "BOOL[]" => array(row.try_get::<Option<Vec<Option<bool>>>, _>(i)),
        "INT2[]" => array(row.try_get::<Option<Vec<Option<i16>>>, _>(i)),
        "INT4[]" => array(row.try_get::<Option<Vec<Option<i32>>>, _>(i)),
        "INT8[]" => array(row.try_get::<Option<Vec<Option<i64>>>, _>(i)),
        "FLOAT8[]" => array(row.try_get::<Option<Vec<Option<f64>>>, _>(i)),
        "TEXT[]" | "VARCHAR[]" => array(row.try_get::<Option<Vec<Option<String>>>, _>(i)),
        "JSONB[]" | "JSON[]" => array(row.try_get::<Option<Vec<Option<Value>>>, _>(i)),
        "VOID" => Ok(Value::Null),
        _ => return None,
    })
}

fn mysql_value(row: &MySqlRow, i: usize) -> Option<Decoded> {
    use sqlx::types::Decimal;
    let type_name = row.columns()[i].type_info().name().to_owned();
    Some(match type_name.as_str() {
        "NULL" => Ok(Value::Null),
        "BOOLEAN" => opt(row.try_get::<Option<bool>, _>(i), Value::Bool),
        "TINYINT" | "SMALLINT" | "MEDIUMINT" | "INT" | "BIGINT" => {
            opt(row.try_get::<Option<i64>, _>(i), Value::from)
        }
        "TINYINT UNSIGNED" | "SMALLINT UNSIGNED" | "MEDIUMINT UNSIGNED" | "INT UNSIGNED"
        | "BIGINT UNSIGNED" | "YEAR" | "BIT" => {
            opt(row.try_get_unchecked::<Option<u64>, _>(i), Value::from)
        }
        "FLOAT" => opt(row.try_get::<Option<f32>, _>(i), float32),
        "DOUBLE" => opt(row.try_get::<Option<f64>, _>(i), Value::from),
        "DECIMAL" => opt(row.try_get::<Option<Decimal>, _>(i), |d| {
            Value::String(d.to_string())
        }),
        "CHAR" | "VARCHAR" | "TINYTEXT" | "TEXT" | "MEDIUMTEXT" | "LONGTEXT" | "ENUM" | "SET" => {
            opt(row.try_get_unchecked::<Option<String>, _>(i), Value::String)
        }
        "JSON" => opt(row.try_get::<Option<Value>, _>(i), |v| v),
        "BINARY" | "VARBINARY" | "TINYBLOB" | "BLOB" | "MEDIUMBLOB" | "LONGBLOB" => {
            opt(row.try_get_unchecked::<Option<Vec<u8>>, _>(i), buffer)
        }
        "DATETIME" => opt(
            row.try_get::<Option<chrono::NaiveDateTime>, _>(i),
            timestamp,
        ),
        "TIMESTAMP" => opt(
            row.try_get::<Option<chrono::DateTime<chrono::Utc>>, _>(i),
            |t| timestamp(t.naive_utc()),
        ),
        "DATE" => opt(row.try_get::<Option<chrono::NaiveDate>, _>(i), |d| {
            Value::String(d.to_string())
        }),
        "TIME" => opt(row.try_get::<Option<chrono::NaiveTime>, _>(i), |t| {
            Value::String(t.to_string())
        }),
        _ => return None,
    })
}

/// A row as a JSON object.
fn row_object<R: Row>(
    row: &R,
    decode: fn(&R, usize) -> Option<Decoded>,
) -> Result<Value, NodeError> {
    let mut object = Map::new();
    for (i, column) in row.columns().iter().enumerate() {
        let value = match decode(row, i) {
            Some(Ok(value)) => value,
            Some(Err(e)) => {
                return Err(sql_error(format!(
                    "column \"{}\" could not be read: {}",
                    column.name(),
                    chain(&e)
                )))
            }
            None => {
                return Err(sql_error(format!(
                    "column \"{}\" has type {}, which flowd cannot convert to JSON; cast it in the query (for example to text)",
                    column.name(),
                    column.type_info().name()
                )))
            }
        };
        object.insert(column.name().to_owned(), value);
    }
    Ok(Value::Object(object))
}

fn too_many() -> NodeError {
    sql_error(format!("the query returned more than {MAX_ROWS} rows"))
}

/// When a pool holds no connection, connects once outside it, so that a refused connection fails
/// at once (the pool retries refused connections until [`ACQUIRE_TIMEOUT`]). The probe
/// connection is closed; this costs one extra connect each time a pool has gone empty.
async fn probe<DB: sqlx::Database>(pool: &sqlx::Pool<DB>) -> Result<(), sqlx::Error> {
    use sqlx::{ConnectOptions, Connection};
    if pool.size() > 0 {
        return Ok(());
    }
    let options = pool.connect_options();
    match tokio::time::timeout(ACQUIRE_TIMEOUT, options.connect()).await {
        Ok(Ok(connection)) => {
            let _ = connection.close().await;
            Ok(())
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(sqlx::Error::PoolTimedOut),
    }
}

/// Runs the query; the result as the spec gives it.
async fn run_query(
    pools: &SqlPools,
    key: ConnectionKey,
    query: String,
    parameters: Vec<Option<String>>,
) -> Result<Value, NodeError> {
    let fail = |e: sqlx::Error| describe(&e, &key);
    // The same steps for either database; sqlx's types differ, so a macro rather than a
    // function generic over them.
    macro_rules! run_on {
        ($pool:expr, $column_value:expr) => {{
            let pool = $pool;
            probe(&pool).await.map_err(fail)?;
            let mut conn = pool.acquire().await.map_err(fail)?;
            let mut statement = sqlx::query(AssertSqlSafe(query.clone()));
            for parameter in parameters {
                statement = statement.bind(parameter);
            }
            let mut rows = Vec::new();
            {
                let mut stream = statement.fetch(&mut *conn);
                while let Some(row) = stream.try_next().await.map_err(fail)? {
                    if rows.len() == MAX_ROWS {
                        return Err(too_many());
                    }
                    rows.push(row_object(&row, $column_value)?);
                }
            }
            if rows.is_empty() {
                use sqlx::{Executor, Statement as _};
                let prepared = (&mut *conn)
                    .prepare(sqlx::SqlSafeStr::into_sql_str(AssertSqlSafe(query)))
                    .await
                    .map_err(fail)?;
                if prepared.columns().is_empty() {
                    return Ok(json!(["success"]));
                }
            }
            Ok(Value::Array(rows))
        }};
    }
    match pools.pool(&key) {
        Pool::Postgres(pool) => run_on!(pool, pg_value),
        Pool::MySql(pool) => run_on!(pool, mysql_value),
    }
}

impl Node for SqlNode {
    fn execute(&self, cx: &mut NodeContext<'_>, payload: &mut Value) -> Result<Outcome, NodeError> {
        let (key, query, parameters) = self.prepare(payload)?;
        let services = cx.services.clone();
        let result_path = self.result.clone();
        let errors = self.errors.clone();
        Ok(Outcome::Wait(Box::pin(async move {
            let update: PayloadUpdate = match run_query(&services.sql, key, query, parameters).await
            {
                Ok(result) => match result_path {
                    Some(path) => Box::new(move |payload: &mut Value| {
                        path.set(payload, result);
                        Ok(())
                    }),
                    None => return Ok(Resume::port(0)),
                },
                Err(error) => match (errors, result_path) {
                    (Some(ErrorBehavior::Throw), _) | (None, None) => return Err(error),
                    (Some(behavior), _) => {
                        Box::new(move |payload: &mut Value| behavior.handle(payload, error))
                    }
                    (None, Some(path)) => Box::new(move |payload: &mut Value| {
                        path.set(payload, json!({"errors": error.message}));
                        Ok(())
                    }),
                },
            };
            Ok(Resume {
                port: 0,
                update: Some(update),
                logs: Vec::new(),
            })
        })))
    }
}

#[cfg(test)]
mod tests {
    use crate::error::{ErrorName, NodeError};
    use crate::testing::{compile_node, Harness};
    use serde_json::{json, Value};

    fn pg(query: &str, extra: Value) -> Value {
        let mut config = json!({"systemTemplate": "pg", "hostTemplate": "127.0.0.1",
            "portTemplate": "5432", "userTemplate": "postgres", "databaseTemplate": "test",
            "query": query, "resultPath": "working.rows"});
        merge(&mut config, extra);
        config
    }

    fn my(query: &str, extra: Value) -> Value {
        let mut config = json!({"systemTemplate": "mysql", "hostTemplate": "127.0.0.1",
            "portTemplate": "3306", "userTemplate": "root", "passwordTemplate": "",
            "databaseTemplate": "test", "query": query, "resultPath": "working.rows"});
        merge(&mut config, extra);
        config
    }

    fn merge(config: &mut Value, extra: Value) {
        if let Value::Object(extra) = extra {
            for (k, v) in extra {
                config[k] = v;
            }
        }
    }

    fn run(h: &Harness, config: &Value, payload: Value) -> Result<Value, NodeError> {
        let node = compile_node("SqlNode", config).expect("compiles");
        h.run(&node, payload).map(|(port, payload)| {
            assert_eq!(port, 0);
            payload
        })
    }

    fn rows(h: &Harness, config: &Value, payload: Value) -> Value {
        run(h, config, payload).expect("runs")["working"]["rows"].clone()
    }

    /// Drops a test table even when an assertion fails.
    struct Cleanup<'a>(&'a Harness, Value);

    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            let _ = run(self.0, &self.1, json!({}));
        }
    }

    fn table(prefix: &str) -> String {
        format!(
            "flowd_{prefix}_{}",
            flowd_model::id::new_id().to_ascii_lowercase()
        )
    }

    #[test]
    fn postgres_parameters_are_bound_and_columns_typed() {
        let h = Harness::new();
        let config = pg(
            "SELECT $1::int + 1 AS n, $2::text AS s, $3::text IS NULL AS missing, \
             1.50::numeric AS d, 0.1::float4 AS f, 9007199254740993::int8 AS big, \
             '{\"a\": [1]}'::jsonb AS j, '2024-01-02T03:04:05.678Z'::timestamptz AS t, \
             '2024-01-02'::date AS day, ARRAY[1, NULL, 3]::int4[] AS arr, '\\x0102'::bytea AS b, \
             NULL::int AS nothing",
            json!({"parameters": ["{{data.n}}", "it's '; DROP TABLE x; --", null]}),
        );
        let out = rows(&h, &config, json!({"data": {"n": 41}}));
        assert_eq!(
            out,
            json!([{"n": 42, "s": "it's '; DROP TABLE x; --", "missing": true, "d": "1.50",
                "f": 0.1, "big": 9007199254740993i64, "j": {"a": [1]},
                "t": "2024-01-02T03:04:05.678Z", "day": "2024-01-02", "arr": [1, null, 3],
                "b": {"type": "Buffer", "data": [1, 2]}, "nothing": null}])
        );
        // The same connection is pooled, not one per run.
        assert_eq!(h.services.sql.len(), 1);
        rows(&h, &config, json!({"data": {"n": 1}}));
        assert_eq!(h.services.sql.len(), 1);
    }

    #[test]
    fn postgres_table_round_trip() {
        let h = Harness::new();
        let t = table("pg");
        let exec =
            |q: String, params: Value| rows(&h, &pg(&q, json!({"parameters": params})), json!({}));
        assert_eq!(
            exec(
                format!("CREATE TABLE {t} (id serial PRIMARY KEY, name text, ok bool)"),
                json!([])
            ),
            json!(["success"])
        );
        let _drop = Cleanup(&h, pg(&format!("DROP TABLE IF EXISTS {t}"), json!({})));
        assert_eq!(
            exec(
                format!("INSERT INTO {t} (name, ok) VALUES ($1, $2::bool)"),
                json!(["pump", "true"])
            ),
            json!(["success"])
        );
        assert_eq!(
            exec(
                format!("SELECT id, name, ok FROM {t} WHERE name = $1"),
                json!(["pump"])
            ),
            json!([{"id": 1, "name": "pump", "ok": true}])
        );
        // A SELECT without rows is an empty array, not success.
        assert_eq!(
            exec(
                format!("SELECT id FROM {t} WHERE name = $1"),
                json!(["none"])
            ),
            json!([])
        );
    }

    #[test]
    fn mysql_table_round_trip() {
        let h = Harness::new();
        let t = table("my");
        let exec =
            |q: String, params: Value| rows(&h, &my(&q, json!({"parameters": params})), json!({}));
        assert_eq!(
            exec(
                format!("CREATE TABLE {t} (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(40), \
                 ok BOOLEAN, price DECIMAL(6,2), at DATETIME(3), big BIGINT UNSIGNED, raw VARBINARY(4))"),
                json!([])
            ),
            json!(["success"])
        );
        let _drop = Cleanup(&h, my(&format!("DROP TABLE IF EXISTS {t}"), json!({})));
        exec(
            format!("INSERT INTO {t} (name, ok, price, at, big, raw) VALUES (?, ?, ?, ?, ?, ?)"),
            json!([
                "it's",
                "1",
                "9.90",
                "2024-01-02 03:04:05.678",
                "18446744073709551615",
                "ab"
            ]),
        );
        assert_eq!(
                exec(format!("SELECT id, name, ok, price, at, big, raw, NULL AS nothing FROM {t} WHERE name = ?"), json!(["it's"])),
                json!([{"id": 1, "name": "it's", "ok": true, "price": "9.90",
                    "at": "2024-01-02T03:04:05.678Z", "big": 18446744073709551615u64,
                    "raw": {"type": "Buffer", "data": [97, 98]}, "nothing": null}])
            );
        assert_eq!(
            exec(format!("SELECT id FROM {t} WHERE id > ?"), json!(["5"])),
            json!([])
        );
    }

    #[test]
    fn errors_follow_the_configuration() {
        let h = Harness::new();
        // Spec default: {errors} at resultPath, the path continues.
        let out = run(
            &h,
            &pg("SELECT * FROM flowd_no_such_table", json!({})),
            json!({}),
        )
        .unwrap();
        let message = out["working"]["rows"]["errors"].as_str().unwrap();
        assert!(message.contains("flowd_no_such_table"), "{message}");
        // errorBehavior payloadPath: {type, message} at errorPath.
        let refused = json!({"portTemplate": "1", "errorBehavior": "payloadPath", "errorPath": "working.err"});
        let out = run(&h, &pg("SELECT 1", refused), json!({})).unwrap();
        assert_eq!(out["working"]["err"]["type"], "SqlError");
        assert!(out["working"]["err"]["message"]
            .as_str()
            .unwrap()
            .contains("could not connect to PostgreSQL at 127.0.0.1:1"));
        assert!(out["working"].get("rows").is_none());
        // throw halts.
        let err = run(
            &h,
            &my("SELEC 1", json!({"errorBehavior": "throw"})),
            json!({}),
        )
        .unwrap_err();
        assert_eq!(err.name, ErrorName::SqlError);
        assert!(err.message.contains("MySQL error"), "{}", err.message);
        // No resultPath and no errorBehavior halts.
        let err = run(&h, &pg("SELECT 1/0", json!({"resultPath": ""})), json!({})).unwrap_err();
        assert_eq!(err.name, ErrorName::SqlError);
        // An unconvertible column asks for a cast.
        let out = run(
            &h,
            &pg("SELECT interval '1 day' AS i", json!({})),
            json!({}),
        )
        .unwrap();
        assert!(out["working"]["rows"]["errors"]
            .as_str()
            .unwrap()
            .contains("cast it"));
        // A rendered system that is not one halts with ValidationError whatever errorBehavior says.
        let config = pg(
            "SELECT 1",
            json!({"systemTemplate": "{{data.s}}", "errorBehavior": "payloadPath", "errorPath": "working.err"}),
        );
        let err = run(&h, &config, json!({"data": {"s": "oracle"}})).unwrap_err();
        assert_eq!(err.name, ErrorName::ValidationError);
    }

    #[test]
    fn compile_checks() {
        for (config, needle) in [
            (
                json!({"systemTemplate": "pg", "hostTemplate": "h"}),
                "query is required",
            ),
            (json!({"hostTemplate": "h", "query": "SELECT 1"}), "mssql"),
            (
                json!({"systemTemplate": "sqlite3", "query": "SELECT 1"}),
                "sqlite3",
            ),
            (
                json!({"systemTemplate": "pg", "portTemplate": "99999", "query": "SELECT 1"}),
                "portTemplate",
            ),
            (
                json!({"systemTemplate": "pg", "query": "SELECT 1", "credentialNameTemplate": "db"}),
                "credentialNameTemplate",
            ),
            (
                json!({"systemTemplate": "pg", "query": "SELECT 1", "parameters": [{"a": 1}]}),
                "parameters[0]",
            ),
            (
                json!({"systemTemplate": "pg", "query": "SELECT 1", "errorBehavior": "payloadPath"}),
                "errorPath",
            ),
        ] {
            let err = compile_node("SqlNode", &config).err().expect("refused").0;
            assert!(err.contains(needle), "{err} should mention {needle}");
        }
    }
}
