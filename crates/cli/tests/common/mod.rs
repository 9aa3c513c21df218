//! Starts the real `flowd` binary on port 0 with its own data dir, and talks to it over HTTP.
//! Every response body a test reads can be checked against an official Losant schema.

#![allow(dead_code)]

use flowd_model::schema::{validate, SchemaName};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const OWNER_TOKEN: &str = "test-owner-token-0123456789abcdef0123456789abcdef";

pub struct Server {
    child: Option<Child>,
    pub base: String,
    pub data_dir: PathBuf,
    pub client: reqwest::Client,
    _temp: Option<tempfile::TempDir>,
}

impl Server {
    /// A server on a fresh data dir, with a known owner token.
    pub async fn start() -> Server {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = temp.path().to_path_buf();
        let mut server = Server::start_in(&dir, Some(OWNER_TOKEN)).await;
        server._temp = Some(temp);
        server
    }

    /// A server on a fresh data dir, with a known owner token and `toml` as its config file.
    pub async fn start_with_config(toml: &str) -> Server {
        let temp = tempfile::tempdir().expect("temp dir");
        let config = temp.path().join("flowd.toml");
        std::fs::write(&config, toml).expect("config written");
        let data = temp.path().join("data");
        std::fs::create_dir_all(&data).expect("data dir");
        let config = config.to_str().expect("utf-8 path").to_owned();
        let mut server = Server::start_with(&data, Some(OWNER_TOKEN), &["--config", &config]).await;
        server._temp = Some(temp);
        server
    }

    /// A server on `dir`, optionally with `FLOWD_OWNER_TOKEN` set.
    pub async fn start_in(dir: &Path, owner_token: Option<&str>) -> Server {
        Server::start_with(dir, owner_token, &[]).await
    }

    /// A server on `dir` with extra `serve` flags.
    pub async fn start_with(dir: &Path, owner_token: Option<&str>, flags: &[&str]) -> Server {
        let _ = std::fs::remove_file(dir.join("listen-addr"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_flowd"));
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .args(flags)
            .env_remove("FLOWD_OWNER_TOKEN")
            .env("FLOWD_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(token) = owner_token {
            command.env("FLOWD_OWNER_TOKEN", token);
        }
        let child = command.spawn().expect("flowd starts");
        let deadline = Instant::now() + Duration::from_secs(30);
        let address = loop {
            if let Ok(text) = std::fs::read_to_string(dir.join("listen-addr")) {
                if !text.is_empty() {
                    break text;
                }
            }
            assert!(Instant::now() < deadline, "flowd did not start within 30 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        Server {
            child: Some(child),
            base: format!("http://{}", address.trim()),
            data_dir: dir.to_path_buf(),
            client: reqwest::Client::new(),
            _temp: None,
        }
    }

    /// Sends SIGKILL (`kill -9`: no shutdown, nothing flushed) and reaps the process.
    pub fn kill_hard(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        // `Child::kill` is SIGKILL on Unix.
        child.kill().expect("SIGKILL sent");
        child.wait().expect("flowd reaped")
    }

    /// Sends SIGTERM, waits for the exit, and returns its status and what flowd printed.
    pub fn stop(&mut self) -> (std::process::ExitStatus, String) {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                let mut printed = String::new();
                if let Some(mut out) = child.stdout.take() {
                    use std::io::Read;
                    let _ = out.read_to_string(&mut printed);
                }
                return (status, printed);
            }
            assert!(
                Instant::now() < deadline,
                "flowd did not stop within 20 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a request with a token and an optional JSON body; returns status and JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let text = response.text().await.expect("body read");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    /// A raw body (for malformed JSON tests).
    pub async fn call_raw(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let response = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request sent");
        let status = response.status();
        let value = response.json().await.unwrap_or(Value::Null);
        (status, value)
    }

    /// As the owner: expects `status`, checks the body against `schema`, returns it.
    pub async fn ok(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        status: u16,
        schema: SchemaName,
    ) -> Value {
        let (got, value) = self
            .call(method.clone(), path, Some(OWNER_TOKEN), body)
            .await;
        assert_eq!(
            got.as_u16(),
            status,
            "{method} {path} answered {got}: {value}"
        );
        assert_schema(schema, &value);
        value
    }

    /// A flow's storage entries (`GET …/storage`), as the owner, schema-checked.
    pub async fn storage(&self, flow_path: &str) -> Value {
        self.ok(
            Method::GET,
            &format!("{flow_path}/storage"),
            None,
            200,
            SchemaName::FlowStorageEntries,
        )
        .await
    }

    pub async fn create_application(&self, name: &str) -> String {
        let app = self
            .ok(
                Method::POST,
                "/applications",
                Some(&serde_json::json!({"name": name})),
                201,
                SchemaName::Application,
            )
            .await;
        app["id"].as_str().expect("id").to_owned()
    }

    pub async fn create_token(&self, app: &str, scope: &[&str]) -> (String, Value) {
        let body = serde_json::json!({"name": "t", "scope": scope});
        let doc = self
            .ok(
                Method::POST,
                &format!("/applications/{app}/tokens"),
                Some(&body),
                201,
                SchemaName::ApiToken,
            )
            .await;
        (
            doc["token"]
                .as_str()
                .expect("token shown on creation")
                .to_owned(),
            doc,
        )
    }

    pub async fn create_flow(&self, app: &str, body: &Value) -> Value {
        self.ok(
            Method::POST,
            &format!("/applications/{app}/flows"),
            Some(body),
            201,
            SchemaName::Flow,
        )
        .await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Fails the test unless `value` matches the official schema.
pub fn assert_schema(schema: SchemaName, value: &Value) {
    if let Err(e) = validate(schema, value) {
        panic!("response does not match {}: {e}\n{value:#}", schema.file());
    }
}

/// Checks an error response: status, Losant's `{type, message}` shape, the type, and that the
/// message mentions `needle`.
pub fn assert_error(got: (StatusCode, Value), status: u16, kind: &str, needle: &str) {
    let (code, body) = got;
    assert_eq!(
        code.as_u16(),
        status,
        "expected {status} {kind}, got {code}: {body}"
    );
    assert_schema(SchemaName::Error, &body);
    assert_eq!(body["type"], kind, "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "error without a message: {body}");
    assert!(
        message.contains(needle),
        "message {message:?} does not mention {needle:?}"
    );
}

/// A small flow with a button wired to a debug node.
pub fn button_flow(name: &str) -> Value {
    serde_json::json!({
        "name": name,
        "triggers": [{"type": "virtualButton", "key": "btn", "outputIds": [["n1"]]}],
        "nodes": [{"id": "n1", "type": "DebugNode", "config": {"message": "hi"}, "outputIds": [[]]}]
    })
}

impl Server {
    /// The server process's id while it runs (for `/proc/<pid>/status` in memory checks).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Server {
    /// Polls a flow's run logs until at least `runs` runs are recorded (a run ends after its
    /// press has been answered) and returns them, newest first; fails after `within`.
    pub async fn wait_for_runs(
        &self,
        flow_path: &str,
        runs: usize,
        within: Duration,
    ) -> Vec<Value> {
        let deadline = Instant::now() + within;
        loop {
            let logs = self
                .ok(
                    Method::GET,
                    &format!("{flow_path}/logs?limit=10000"),
                    None,
                    200,
                    SchemaName::FlowLog,
                )
                .await;
            let logs = logs.as_array().cloned().unwrap_or_default();
            if logs.len() >= runs {
                return logs;
            }
            assert!(
                Instant::now() < deadline,
                "{flow_path}: only {} of {runs} runs recorded within {within:?}",
                logs.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Server {
    /// Presses a flow's virtual button with the owner token (`body` is the press: key, payload,
    /// …); returns the answer.
    pub async fn press(&self, flow_path: &str, body: Value) -> (StatusCode, Value) {
        self.call(
            Method::POST,
            &format!("{flow_path}/virtualButton"),
            Some(OWNER_TOKEN),
            Some(&body),
        )
        .await
    }
}
