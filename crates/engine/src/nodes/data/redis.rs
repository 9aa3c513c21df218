//! `RedisNode` ("Redis"): runs one command against a Redis server and puts the reply at
//! `resultPath`.
//!
//! The command is a future on the runtime (the `redis` crate over tokio). Connections are shared
//! by every run: [`RedisConnections`] in `Services` keeps one multiplexed `ConnectionManager` per
//! server, database and credentials, made on first use (never one per run) and reconnecting on
//! its own after a failure.
//!
//! Config: `host` (template, required), `port` (template, default 6379), `dbNumber` (template,
//! default 0), `username`, `password` (templates), `command` (template, default `get`),
//! `arguments` (array of templates) or `argumentsPath` (a payload path holding an array),
//! `resultPath`, `errorBehavior` (`throw` default | `payloadPath`) + `errorPath`.
//!
//! Decisions:
//! * **Commands** are those of the groups the spec names: keys, strings, lists, sets, sorted
//!   sets, hashes, streams, geo, hyperloglog and publishing ([`COMMANDS`]), in any case. Others
//!   (server administration, scripting, transactions, subscriptions, and the blocking commands,
//!   which would stall the shared connection) are refused: a compile error when `command` is
//!   static, else a `ValidationError` that halts whatever `errorBehavior` says.
//! * **Arguments**: each `arguments` entry is rendered as a template; `argumentsPath` (used when
//!   it is set) reads an array from the payload whose items become arguments (strings as they
//!   are, numbers and booleans as JavaScript prints them, objects as JSON); a single non-array
//!   value is one argument and a missing one means none.
//! * **Replies**: nil → `null`, integers and doubles → numbers, strings → strings (bytes that are
//!   not UTF-8 are replaced), `OK`/status → the status text, arrays → arrays. `hgetall` (a flat
//!   key/value list in RESP2) → an object (`{}` when the hash does not exist); RESP3 maps →
//!   objects.
//! * **Errors are `RedisError`** `{type: "RedisError", message}`: a refused connection, a
//!   timeout, an authentication failure, or an error reply from the server (`WRONGTYPE …`,
//!   wrong number of arguments). They halt the run, or with `errorBehavior: "payloadPath"` are
//!   written to `errorPath` and the path continues on port 0 (without `resultPath`). A template
//!   that fails to render is a `TemplateError`, and a host rendering empty or a port or database
//!   that is not a number a `ValidationError`; those halt whatever `errorBehavior` says.
//! * **Timeouts**: connecting is bounded by [`CONNECT_TIMEOUT`] (5 s) and each command by
//!   [`RESPONSE_TIMEOUT`] (10 s). A failed first connection is not cached: the next run tries
//!   again.
//! * **Connections**: at most [`MAX_CONNECTIONS`] are kept; when the map is full it is emptied
//!   (their in-flight commands finish on their own handles).
//! * `isCluster: true`, `tlsOn: true` (and so `caCertTemplate`) are compile errors: not supported
//!   yet.

use crate::error::{CompileError, ErrorName, NodeError};
use crate::node::{CompiledNodeType, Node, NodeContext, NodeSpec, Outcome};
use crate::nodes::template_text as text;
use crate::nodes::Setting;
use crate::nodes::{optional_path, render, template, ErrorBehavior};
use crate::path::PayloadPath;
use crate::template::Template;
use crate::value::number_to_string;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// How long connecting to a server may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one command may take.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// How many server connections are kept; the map is emptied when it fills.
pub const MAX_CONNECTIONS: usize = 32;

/// The commands the node runs (lowercase): the spec's command groups, without blocking ones.
pub const COMMANDS: &[&str] = &[
    // keys
    "copy",
    "del",
    "dump",
    "exists",
    "expire",
    "expireat",
    "expiretime",
    "keys",
    "move",
    "persist",
    "pexpire",
    "pexpireat",
    "pexpiretime",
    "pttl",
    "randomkey",
    "rename",
    "renamenx",
    "restore",
    "scan",
    "sort",
    "sort_ro",
    "touch",
    "ttl",
    "type",
    "unlink",
    // strings
    "append",
    "decr",
    "decrby",
    "get",
    "getdel",
    "getex",
    "getrange",
    "getset",
    "incr",
    "incrby",
    "incrbyfloat",
    "lcs",
    "mget",
    "mset",
    "msetnx",
    "psetex",
    "set",
    "setex",
    "setnx",
    "setrange",
    "strlen",
    "substr",
    // lists
    "lindex",
    "linsert",
    "llen",
    "lmove",
    "lmpop",
    "lpop",
    "lpos",
    "lpush",
    "lpushx",
    "lrange",
    "lrem",
    "lset",
    "ltrim",
    "rpop",
    "rpoplpush",
    "rpush",
    "rpushx",
    // sets
    "sadd",
    "scard",
    "sdiff",
    "sdiffstore",
    "sinter",
    "sintercard",
    "sinterstore",
    "sismember",
    "smembers",
    "smismember",
    "smove",
    "spop",
    "srandmember",
    "srem",
    "sscan",
    "sunion",
    "sunionstore",
    // sorted sets
    "zadd",
    "zcard",
    "zcount",
    "zdiff",
    "zdiffstore",
    "zincrby",
    "zinter",
    "zintercard",
    "zinterstore",
    "zlexcount",
    "zmpop",
    "zmscore",
    "zpopmax",
    "zpopmin",
    "zrandmember",
    "zrange",
    "zrangebylex",
    "zrangebyscore",
    "zrangestore",
    "zrank",
    "zrem",
    "zremrangebylex",
    "zremrangebyrank",
    "zremrangebyscore",
    "zrevrange",
    "zrevrangebylex",
    "zrevrangebyscore",
    "zrevrank",
    "zscan",
    "zscore",
    "zunion",
    "zunionstore",
    // hashes
    "hdel",
    "hexists",
    "hget",
    "hgetall",
    "hincrby",
    "hincrbyfloat",
    "hkeys",
    "hlen",
    "hmget",
    "hmset",
    "hrandfield",
    "hscan",
    "hset",
    "hsetnx",
    "hstrlen",
    "hvals",
    // streams
    "xack",
    "xadd",
    "xautoclaim",
    "xclaim",
    "xdel",
    "xlen",
    "xpending",
    "xrange",
    "xrevrange",
    "xtrim",
    // geo
    "geoadd",
    "geodist",
    "geohash",
    "geopos",
    "georadius",
    "georadius_ro",
    "georadiusbymember",
    "georadiusbymember_ro",
    "geosearch",
    "geosearchstore",
    // hyperloglog
    "pfadd",
    "pfcount",
    "pfmerge",
    // publishing
    "publish",
    "spublish",
];

/// The engine's Redis connections, one per server, database and credentials, shared by every
/// run. A `ConnectionManager` is a cheap handle to one multiplexed connection.
#[derive(Default)]
pub struct RedisConnections {
    managers: Mutex<HashMap<Target, ConnectionManager>>,
}

/// Where and as whom to connect.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Target {
    host: String,
    port: u16,
    db: i64,
    username: String,
    password: String,
}

impl RedisConnections {
    pub fn new() -> RedisConnections {
        RedisConnections::default()
    }

    fn cached(&self, target: &Target) -> Option<ConnectionManager> {
        self.managers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(target)
            .cloned()
    }

    /// The connection to `target`, connecting on first use.
    async fn connection(&self, target: &Target) -> Result<ConnectionManager, NodeError> {
        if let Some(manager) = self.cached(target) {
            return Ok(manager);
        }
        let mut redis_settings = redis::RedisConnectionInfo::default().set_db(target.db);
        if !target.username.is_empty() {
            redis_settings = redis_settings.set_username(&target.username);
        }
        if !target.password.is_empty() {
            redis_settings = redis_settings.set_password(&target.password);
        }
        let info = redis::IntoConnectionInfo::into_connection_info(redis::ConnectionAddr::Tcp(
            target.host.clone(),
            target.port,
        ))
        .map_err(|e| redis_error(target, &e))?
        .set_redis_settings(redis_settings);
        let client = redis::Client::open(info).map_err(|e| redis_error(target, &e))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2));
        let manager = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| redis_error(target, &e))?;
        let mut managers = self.managers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = managers.get(target) {
            // Another run connected meanwhile: share its connection.
            return Ok(existing.clone());
        }
        if managers.len() >= MAX_CONNECTIONS {
            managers.clear();
        }
        managers.insert(target.clone(), manager.clone());
        Ok(manager)
    }
}

fn redis_error(target: &Target, error: &redis::RedisError) -> NodeError {
    NodeError::new(
        ErrorName::RedisError,
        format!("Redis {}:{}: {error}", target.host, target.port),
    )
}

fn validation(message: impl Into<String>) -> NodeError {
    NodeError::new(ErrorName::ValidationError, message)
}

// ---- configuration -------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Config {
    is_cluster: Option<Value>,
    tls_on: Option<Value>,
    #[serde(default, deserialize_with = "text")]
    host: Option<String>,
    #[serde(default, deserialize_with = "text")]
    port: Option<String>,
    #[serde(default, deserialize_with = "text")]
    db_number: Option<String>,
    #[serde(default, deserialize_with = "text")]
    username: Option<String>,
    #[serde(default, deserialize_with = "text")]
    password: Option<String>,
    #[serde(default, deserialize_with = "text")]
    command: Option<String>,
    arguments: Option<Vec<Value>>,
    arguments_path: Option<String>,
    result_path: Option<String>,
    error_behavior: Option<String>,
    error_path: Option<String>,
}

/// A boolean given as `true`/`false` (or their text; absent is false).
fn flag(spec: &NodeSpec<'_>, field: &str, value: &Option<Value>) -> Result<bool, CompileError> {
    match value {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s == "true" => Ok(true),
        Some(Value::String(s)) if s == "false" || s.is_empty() => Ok(false),
        Some(other) => Err(spec.error(format!("{field} must be true or false, not {other}"))),
    }
}

fn parse_command(text: &str) -> Result<String, String> {
    let command = text.trim().to_ascii_lowercase();
    let command = if command.is_empty() {
        "get".to_owned()
    } else {
        command
    };
    if COMMANDS.contains(&command.as_str()) {
        Ok(command)
    } else {
        Err(format!(
            "\"{}\" is not a Redis command this node runs",
            text.trim()
        ))
    }
}

fn parse_port(text: &str) -> Result<u16, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(6379);
    }
    match text.parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(format!(
            "port must be a number from 1 to 65535, not \"{text}\""
        )),
    }
}

fn parse_db(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(0);
    }
    match text.parse::<i64>() {
        Ok(db) if db >= 0 => Ok(db),
        _ => Err(format!(
            "dbNumber must be a whole number of 0 or more, not \"{text}\""
        )),
    }
}

enum Arguments {
    Templates(Vec<Template>),
    Path(PayloadPath),
}

pub struct RedisNode {
    host: Template,
    port: Setting<u16>,
    db: Setting<i64>,
    username: Template,
    password: Template,
    command: Setting<String>,
    arguments: Arguments,
    result: Option<PayloadPath>,
    errors: ErrorBehavior,
}

pub fn compile(spec: &NodeSpec<'_>) -> Result<CompiledNodeType, CompileError> {
    let config: Config = spec.config()?;
    if flag(spec, "isCluster", &config.is_cluster)? {
        return Err(spec.error("cluster mode (isCluster) is not supported yet"));
    }
    if flag(spec, "tlsOn", &config.tls_on)? {
        return Err(spec.error("TLS (tlsOn) is not supported yet"));
    }
    let host = match config.host.as_deref().map(str::trim) {
        None | Some("") => return Err(spec.error("host is required")),
        Some(text) => template(spec, "host", text)?,
    };
    let arguments = match optional_path(spec, "argumentsPath", config.arguments_path.as_deref())? {
        Some(path) => Arguments::Path(path),
        None => Arguments::Templates(
            config
                .arguments
                .unwrap_or_default()
                .iter()
                .map(|item| {
                    let text = match item {
                        Value::String(s) => s.clone(),
                        Value::Null => String::new(),
                        other => other.to_string(),
                    };
                    template(spec, "arguments", &text)
                })
                .collect::<Result<_, _>>()?,
        ),
    };
    Ok(CompiledNodeType::new(
        RedisNode {
            host,
            port: Setting::compile(spec, "port", config.port.as_deref(), parse_port)?,
            db: Setting::compile(spec, "dbNumber", config.db_number.as_deref(), parse_db)?,
            username: template(spec, "username", config.username.as_deref().unwrap_or(""))?,
            password: template(spec, "password", config.password.as_deref().unwrap_or(""))?,
            command: Setting::compile(spec, "command", config.command.as_deref(), parse_command)?,
            arguments,
            result: optional_path(spec, "resultPath", config.result_path.as_deref())?,
            errors: ErrorBehavior::compile(
                spec,
                config.error_behavior.as_deref(),
                config.error_path.as_deref(),
            )?,
        },
        1,
    ))
}

// ---- running -------------------------------------------------------------------------------

/// A payload value as one command argument.
fn argument(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.as_f64().map(number_to_string).unwrap_or_default(),
        Value::Null => "null".to_owned(),
        other => other.to_string(),
    }
}

impl RedisNode {
    fn prepare(&self, payload: &Value) -> Result<(Target, String, Vec<String>), NodeError> {
        let host = render(&self.host, payload)?.trim().to_owned();
        if host.is_empty() {
            return Err(validation(format!(
                "host rendered empty (template \"{}\")",
                self.host.source()
            )));
        }
        let target = Target {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port: self.port.get("port", payload)?,
            db: self.db.get("dbNumber", payload)?,
            username: render(&self.username, payload)?,
            password: render(&self.password, payload)?,
        };
        let command = self.command.get("command", payload)?;
        let arguments = match &self.arguments {
            Arguments::Templates(templates) => templates
                .iter()
                .map(|t| render(t, payload))
                .collect::<Result<_, _>>()?,
            Arguments::Path(path) => match path.get(payload).as_deref() {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(items)) => items.iter().map(argument).collect(),
                Some(other) => vec![argument(other)],
            },
        };
        Ok((target, command, arguments))
    }
}

fn text_of(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A map key as text.
fn key_of(value: &redis::Value) -> String {
    match to_json(value) {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

/// A reply as JSON.
fn to_json(value: &redis::Value) -> Value {
    use redis::Value as R;
    match value {
        R::Nil => Value::Null,
        R::Int(n) => Value::from(*n),
        R::BulkString(bytes) => Value::String(text_of(bytes)),
        R::Array(items) | R::Set(items) => Value::Array(items.iter().map(to_json).collect()),
        R::SimpleString(s) => Value::String(s.clone()),
        R::Okay => Value::String("OK".into()),
        R::Map(pairs) => Value::Object(
            pairs
                .iter()
                .map(|(k, v)| (key_of(k), to_json(v)))
                .collect::<Map<_, _>>(),
        ),
        R::Attribute { data, .. } => to_json(data),
        R::Double(d) => serde_json::Number::from_f64(*d)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        R::Boolean(b) => Value::Bool(*b),
        R::VerbatimString { text, .. } => Value::String(text.clone()),
        R::BigNumber(bytes) => Value::String(text_of(bytes)),
        R::Push { data, .. } => Value::Array(data.iter().map(to_json).collect()),
        R::ServerError(error) => Value::String(format!("{error:?}")),
        _ => Value::Null,
    }
}

/// The value `resultPath` receives for a command's reply.
fn result(command: &str, reply: &redis::Value) -> Value {
    match (command, reply) {
        ("hgetall", redis::Value::Array(items)) => Value::Object(
            items
                .chunks(2)
                .map(|pair| {
                    (
                        key_of(&pair[0]),
                        pair.get(1).map(to_json).unwrap_or(Value::Null),
                    )
                })
                .collect(),
        ),
        ("hgetall", redis::Value::Nil) => Value::Object(Map::new()),
        _ => to_json(reply),
    }
}

async fn run(
    connections: &RedisConnections,
    target: Target,
    command: String,
    arguments: Vec<String>,
) -> Result<Value, NodeError> {
    let mut connection = connections.connection(&target).await?;
    let mut cmd = redis::cmd(&command);
    for argument in &arguments {
        cmd.arg(argument);
    }
    let reply: redis::Value = cmd
        .query_async(&mut connection)
        .await
        .map_err(|e| redis_error(&target, &e))?;
    Ok(result(&command, &reply))
}

impl Node for RedisNode {
    fn execute(&self, cx: &mut NodeContext<'_>, payload: &mut Value) -> Result<Outcome, NodeError> {
        let (target, command, arguments) = self.prepare(payload)?;
        let services = cx.services.clone();
        let result_path = self.result.clone();
        let errors = self.errors.clone();
        Ok(Outcome::Wait(Box::pin(async move {
            crate::nodes::resume_after(
                run(&services.redis, target, command, arguments).await,
                result_path,
                errors,
            )
        })))
    }
}

#[cfg(test)]
mod tests {
    use crate::error::{ErrorName, NodeError};
    use crate::testing::{compile_node, Harness};
    use serde_json::{json, Value};

    /// A key prefix no other test (or run of this one) uses.
    fn prefix(test: &str) -> String {
        format!("flowd-test:{test}:{}:", uuid::Uuid::new_v4())
    }

    /// Runs `command` with `arguments` against the local Redis; the reply at `working.r`.
    fn cmd(h: &Harness, command: &str, arguments: Value) -> Result<Value, NodeError> {
        let node = compile_node(
            "RedisNode",
            &json!({"host": "127.0.0.1", "port": "6379", "command": command,
                    "arguments": arguments, "resultPath": "working.r"}),
        )
        .expect("compiles");
        h.run(&node, json!({"data": {}})).map(|(port, p)| {
            assert_eq!(port, 0);
            p["working"]["r"].clone()
        })
    }

    /// Deletes every key under `prefix`.
    fn clean(h: &Harness, prefix: &str) {
        let keys = cmd(h, "keys", json!([format!("{prefix}*")])).unwrap();
        if keys.as_array().is_some_and(|k| !k.is_empty()) {
            cmd(h, "del", keys).unwrap();
        }
    }

    #[test]
    fn config_is_checked() {
        let node = compile_node("RedisNode", &json!({"host": "h"})).unwrap();
        assert_eq!(node.ports, 1);
        compile_node(
            "RedisNode",
            &json!({"host": "10.0.0.5", "port": 6379, "dbNumber": "{{data.db}}", "isCluster": false,
                    "tlsOn": "false", "command": "HGET", "arguments": ["site:{{globals.site}}", "mode"],
                    "resultPath": "working.mode", "errorBehavior": "throw", "errorPath": "", "other": 1}),
        )
        .unwrap();
        for (bad, why) in [
            (json!({}), "host is required"),
            (json!({"host": " "}), "host is required"),
            (
                json!({"host": "h", "command": "flushall"}),
                "not a Redis command",
            ),
            (
                json!({"host": "h", "command": "blpop"}),
                "not a Redis command",
            ),
            (json!({"host": "h", "port": "x"}), "port must be"),
            (json!({"host": "h", "port": "70000"}), "port must be"),
            (json!({"host": "h", "dbNumber": "-1"}), "dbNumber must be"),
            (json!({"host": "h", "isCluster": true}), "not supported"),
            (json!({"host": "h", "tlsOn": true}), "not supported"),
            (
                json!({"host": "h", "errorBehavior": "payloadPath"}),
                "errorPath is required",
            ),
            (
                json!({"host": "h", "errorBehavior": "ignore"}),
                "errorBehavior must be",
            ),
        ] {
            let error = compile_node("RedisNode", &bad).err().expect("refused").0;
            assert!(error.contains(why), "{bad}: {error}");
        }
    }

    #[test]
    fn strings_and_keys() {
        let h = Harness::new();
        let p = prefix("strings");
        let k = format!("{p}a");
        assert_eq!(cmd(&h, "get", json!([k])).unwrap(), Value::Null);
        assert_eq!(cmd(&h, "SET", json!([k, "hello"])).unwrap(), "OK");
        assert_eq!(cmd(&h, "get", json!([k])).unwrap(), "hello");
        assert_eq!(cmd(&h, "exists", json!([k])).unwrap(), 1);
        assert_eq!(cmd(&h, "expire", json!([k, "100"])).unwrap(), 1);
        let ttl = cmd(&h, "ttl", json!([k])).unwrap().as_i64().unwrap();
        assert!((1..=100).contains(&ttl), "{ttl}");
        let n = format!("{p}n");
        assert_eq!(cmd(&h, "incr", json!([n])).unwrap(), 1);
        assert_eq!(cmd(&h, "incrby", json!([n, "41"])).unwrap(), 42);
        assert_eq!(cmd(&h, "incrbyfloat", json!([n, "0.5"])).unwrap(), "42.5");
        let mut keys = cmd(&h, "keys", json!([format!("{p}*")])).unwrap();
        keys.as_array_mut().unwrap().sort_by_key(|k| k.to_string());
        assert_eq!(keys, json!([k, n]));
        assert_eq!(cmd(&h, "del", json!([k, n])).unwrap(), 2);
        assert_eq!(cmd(&h, "exists", json!([k])).unwrap(), 0);
        clean(&h, &p);
    }

    #[test]
    fn hashes_lists_sets_and_publish() {
        let h = Harness::new();
        let p = prefix("structures");
        let hash = format!("{p}h");
        assert_eq!(cmd(&h, "hgetall", json!([hash])).unwrap(), json!({}));
        assert_eq!(
            cmd(&h, "hset", json!([hash, "mode", "auto", "n", "3"])).unwrap(),
            2
        );
        assert_eq!(cmd(&h, "hget", json!([hash, "mode"])).unwrap(), "auto");
        assert_eq!(
            cmd(&h, "hgetall", json!([hash])).unwrap(),
            json!({"mode": "auto", "n": "3"})
        );
        let list = format!("{p}l");
        assert_eq!(cmd(&h, "rpush", json!([list, "b", "c"])).unwrap(), 2);
        assert_eq!(cmd(&h, "lpush", json!([list, "a"])).unwrap(), 3);
        assert_eq!(
            cmd(&h, "lrange", json!([list, "0", "-1"])).unwrap(),
            json!(["a", "b", "c"])
        );
        let set = format!("{p}s");
        assert_eq!(cmd(&h, "sadd", json!([set, "x", "x", "y"])).unwrap(), 2);
        let mut members = cmd(&h, "smembers", json!([set])).unwrap();
        members
            .as_array_mut()
            .unwrap()
            .sort_by_key(|k| k.to_string());
        assert_eq!(members, json!(["x", "y"]));
        assert_eq!(
            cmd(&h, "zadd", json!([format!("{p}z"), "1.5", "m"])).unwrap(),
            1
        );
        assert_eq!(
            cmd(&h, "zscore", json!([format!("{p}z"), "m"])).unwrap(),
            "1.5"
        );
        assert_eq!(
            cmd(&h, "publish", json!([format!("{p}chan"), "hi"])).unwrap(),
            0
        );
        clean(&h, &p);
    }

    #[test]
    fn templates_arguments_path_and_db() {
        let h = Harness::new();
        let p = prefix("templates");
        let node = compile_node(
            "RedisNode",
            &json!({"host": "{{data.host}}", "port": "{{data.port}}", "dbNumber": "{{data.db}}",
                    "command": "{{data.cmd}}", "argumentsPath": "data.args", "resultPath": "working.r"}),
        )
        .unwrap();
        let key = format!("{p}k");
        let payload = |cmd: &str, args: Value| json!({"data": {"host": "localhost", "port": 6379, "db": 3, "cmd": cmd, "args": args}});
        let (_, out) = h.run(&node, payload("set", json!([key, 2.5]))).unwrap();
        assert_eq!(out["working"]["r"], "OK");
        let (_, out) = h.run(&node, payload("get", json!(key))).unwrap();
        assert_eq!(out["working"]["r"], "2.5");
        // Database 3, not 0.
        assert_eq!(cmd(&h, "exists", json!([key])).unwrap(), 0);
        let (_, out) = h.run(&node, payload("del", json!([key]))).unwrap();
        assert_eq!(out["working"]["r"], 1);
        // One shared connection per server and database.
        assert_eq!(h.services.redis.managers.lock().unwrap().len(), 2);
        let error = h
            .run(&node, payload("config", json!(["get", "x"])))
            .unwrap_err();
        assert_eq!(error.name, ErrorName::ValidationError);
        let mut bad_port = payload("get", json!([key]));
        bad_port["data"]["port"] = json!("nope");
        let error = h.run(&node, bad_port).unwrap_err();
        assert_eq!(error.name, ErrorName::ValidationError);
        assert!(error.message.contains("port must be"), "{}", error.message);
        clean(&h, &p);
    }

    #[test]
    fn errors_halt_or_go_to_error_path() {
        let h = Harness::new();
        let p = prefix("errors");
        let hash = format!("{p}h");
        cmd(&h, "hset", json!([hash, "f", "v"])).unwrap();
        let error = cmd(&h, "get", json!([hash])).unwrap_err();
        assert_eq!(error.name, ErrorName::RedisError);
        assert!(error.message.contains("WRONGTYPE"), "{}", error.message);
        let error = cmd(&h, "get", json!([])).unwrap_err();
        assert_eq!(error.name, ErrorName::RedisError);

        let refused = json!({"host": "127.0.0.1", "port": "1", "command": "get", "arguments": ["k"],
                             "resultPath": "working.r"});
        let node = compile_node("RedisNode", &refused).unwrap();
        let error = h.run(&node, json!({})).unwrap_err();
        assert_eq!(error.name, ErrorName::RedisError);
        assert!(error.message.contains("127.0.0.1:1"), "{}", error.message);
        let mut soft = refused.clone();
        soft["errorBehavior"] = json!("payloadPath");
        soft["errorPath"] = json!("working.err");
        let node = compile_node("RedisNode", &soft).unwrap();
        let (port, out) = h.run(&node, json!({})).unwrap();
        assert_eq!(port, 0);
        assert_eq!(out["working"]["err"]["type"], "RedisError");
        assert!(out["working"].get("r").is_none());
        // A refused connection is not cached.
        assert!(h.services.redis.managers.lock().unwrap().len() == 1);
        // Template failures halt whatever errorBehavior says.
        let mut empty_host = soft.clone();
        empty_host["host"] = json!("{{data.host}}");
        let node = compile_node("RedisNode", &empty_host).unwrap();
        let error = h.run(&node, json!({"data": {}})).unwrap_err();
        assert_eq!(error.name, ErrorName::ValidationError);
        clean(&h, &p);
    }
}
