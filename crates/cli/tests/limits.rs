//! Limits and backpressure, against the real binary: bodies over the size limits are 413s with
//! Losant's error body and change nothing; workflow storage caps are 400s (over REST) or
//! recorded run errors (in a node) that name the cap; a flood of presses at a slow flow is
//! refused with 429s while the server's memory stays bounded; and big graphs (a 262,144-item
//! loop, a 1,000-node chain, a 100 × 100 fan-out, a Workflow Trigger chain that would recurse
//! forever) end, within the run time limit, with the right result or a clear recorded error.
//! After every case the server still answers and a normal press still runs.

mod common;

use common::*;
use flowd_model::schema::SchemaName;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

type Reply = (StatusCode, Value);

/// The two CPU-heavy tests (big graphs, the flood) take turns: on a small machine, running
/// them together would measure the machine rather than flowd's limits.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn id_of(doc: &Value) -> String {
    doc["id"].as_str().expect("document has an id").to_owned()
}

/// Resident memory of a process in KiB (`VmRSS` of `/proc/<pid>/status`).
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Samples a process's RSS every 10 ms on its own thread and keeps the peak.
struct RssSampler {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    fn start(pid: u32) -> RssSampler {
        let peak = Arc::new(AtomicU64::new(rss_kib(pid).unwrap_or(0)));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peak.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Some(kib) = rss_kib(pid) {
                    p.fetch_max(kib, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        RssSampler {
            peak,
            stop,
            thread: Some(thread),
        }
    }

    /// The peak so far, in KiB.
    fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }

    /// Stops sampling; the peak in KiB.
    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
        self.peak.load(Ordering::Relaxed)
    }
}

/// A flow whose button counts its presses in storage: the "normal press" that must still work
/// after each case.
struct Canary {
    path: String,
    presses: u64,
}

impl Canary {
    async fn new(server: &Server, app: &str) -> Canary {
        let flow = server
            .create_flow(
                app,
                &json!({
                    "name": "canary",
                    "triggers": [{"type": "virtualButton", "key": "ping", "outputIds": [["count"]]}],
                    "nodes": [{"id": "count", "type": "StoreValueNode",
                               "config": {"keyName": "pings", "valueType": "incr", "value": "1"},
                               "outputIds": [[]]}]
                }),
            )
            .await;
        Canary {
            path: format!("/applications/{app}/flows/{}", id_of(&flow)),
            presses: 0,
        }
    }

    /// The server is healthy, a press is accepted at once, and its run happens.
    async fn still_works(&mut self, server: &Server, after: &str) {
        let (status, body) = server.call(Method::GET, "/health", None, None).await;
        assert_eq!(
            status, 200,
            "after {after}: /health answered {status}: {body}"
        );
        let (status, body) = server
            .call(
                Method::POST,
                &format!("{}/virtualButton", self.path),
                Some(OWNER_TOKEN),
                Some(&json!({"key": "ping"})),
            )
            .await;
        assert_eq!(
            status, 200,
            "after {after}: the press answered {status}: {body}"
        );
        self.presses += 1;
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let storage = server.storage(&self.path).await;
            if storage["pings"] == json!(self.presses) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "after {after}: the normal press did not run: {storage}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn press(server: &Server, flow_path: &str, key: &str, payload: Value) {
    server
        .ok(
            Method::POST,
            &format!("{flow_path}/virtualButton"),
            Some(&json!({"key": key, "payload": payload})),
            200,
            SchemaName::Success,
        )
        .await;
}

async fn logs(server: &Server, flow_path: &str) -> Vec<Value> {
    server
        .ok(
            Method::GET,
            &format!("{flow_path}/logs?limit=1000"),
            None,
            200,
            SchemaName::FlowLog,
        )
        .await
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The recorded run errors of a flow, newest first.
async fn errors(server: &Server, flow_path: &str) -> Vec<Value> {
    let body = server
        .ok(
            Method::GET,
            &format!("{flow_path}/errors?limit=1000"),
            None,
            200,
            SchemaName::FlowErrors,
        )
        .await;
    body["errors"].as_array().cloned().unwrap_or_default()
}

/// A body of exactly `size` bytes: `{"<field>":"xxx…"<rest>}` with the string padded.
fn json_of_size(head: &str, tail: &str, size: usize) -> Vec<u8> {
    let mut body = head.as_bytes().to_vec();
    body.resize(size - tail.len(), b'x');
    body.extend_from_slice(tail.as_bytes());
    assert_eq!(body.len(), size);
    body
}

async fn raw(server: &Server, method: Method, path: &str, body: Vec<u8>) -> Reply {
    server.call_raw(method, path, OWNER_TOKEN, body).await
}

/// Sends `body` with `Transfer-Encoding: chunked` and no `Content-Length` over a plain socket,
/// so the server cannot refuse it from a header and has to count what arrives.
async fn chunked(server: &Server, path: &str, body: Vec<u8>) -> Reply {
    let address = server.base.trim_start_matches("http://").to_owned();
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut socket = std::net::TcpStream::connect(&address).expect("connect");
        socket
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {OWNER_TOKEN}\r\n\
             Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        );
        socket.write_all(head.as_bytes()).unwrap();
        // Writing stops quietly if the server answers and closes first; the answer is read below.
        for chunk in body.chunks(64 * 1024) {
            if socket
                .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .and_then(|_| socket.write_all(chunk))
                .and_then(|_| socket.write_all(b"\r\n"))
                .is_err()
            {
                break;
            }
        }
        let _ = socket.write_all(b"0\r\n\r\n");
        let mut answer = Vec::new();
        let _ = socket.read_to_end(&mut answer);
        let text = String::from_utf8_lossy(&answer).into_owned();
        let status: u16 = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
        let (headers, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        // The answer itself may be chunked: take the JSON object out of it.
        let body = if headers.to_ascii_lowercase().contains("transfer-encoding: chunked") {
            body.find('{')
                .zip(body.rfind('}'))
                .map(|(a, b)| &body[a..=b])
                .unwrap_or("")
        } else {
            body
        };
        (
            StatusCode::from_u16(status).unwrap(),
            serde_json::from_str(body).unwrap_or(Value::String(body.to_owned())),
        )
    })
    .await
    .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Body size limits and storage caps
// ---------------------------------------------------------------------------------------------

/// Caps small enough to reach quickly (`storage-max-keys`, `storage-max-bytes`); bodies keep the
/// documented defaults (1 MB for the API, 256 KB for webhooks).
const CAPS: &str = "storage-max-keys = 20\nstorage-max-bytes = 65536\n";
const API_LIMIT: usize = 1024 * 1024;
const WEBHOOK_LIMIT: usize = 256 * 1024;

#[tokio::test]
async fn oversize_bodies_are_413_and_storage_caps_are_400s_naming_the_cap() {
    let server = Server::start_with_config(CAPS).await;
    let app = server.create_application("limits").await;
    let mut canary = Canary::new(&server, &app).await;
    let hook = server
        .ok(
            Method::POST,
            &format!("/applications/{app}/webhooks"),
            Some(&json!({"name": "hook"})),
            201,
            SchemaName::Webhook,
        )
        .await;
    // One flow for everything: a button that keeps what it is given, and the webhook's trigger.
    let flow = server
        .create_flow(
            &app,
            &json!({
                "name": "keeper",
                "triggers": [
                    {"type": "virtualButton", "key": "keep", "outputIds": [["keep"]]},
                    {"type": "virtualButton", "key": "noop", "outputIds": [[]]},
                    {"type": "webhook", "key": id_of(&hook), "config": {}, "outputIds": [[]]}
                ],
                "nodes": [{"id": "keep", "type": "StoreValueNode",
                           "config": {"keyName": "{{data.key}}", "valueType": "path", "valuePath": "data.value"},
                           "outputIds": [[]]}]
            }),
        )
        .await;
    let flow_path = format!("/applications/{app}/flows/{}", id_of(&flow));
    let storage_path = format!("{flow_path}/storage");
    let hook_url = format!("/webhooks/{}", hook["token"].as_str().unwrap());

    // --- 413: one byte over the API limit, on the writes that take big bodies.
    let over = API_LIMIT + 1;
    let cases: Vec<(&str, Method, String, Vec<u8>)> = vec![
        (
            "flow PATCH",
            Method::PATCH,
            flow_path.clone(),
            json_of_size(r#"{"description":""#, r#""}"#, over),
        ),
        (
            "storage set",
            Method::PATCH,
            storage_path.clone(),
            json_of_size(r#"{"key":"big","value":""#, r#""}"#, over),
        ),
        (
            "press",
            Method::POST,
            format!("{flow_path}/virtualButton"),
            json_of_size(r#"{"key":"noop","payload":""#, r#""}"#, over),
        ),
        (
            "version POST",
            Method::POST,
            format!("{flow_path}/versions"),
            json_of_size(r#"{"version":"big","notes":""#, r#""}"#, over),
        ),
    ];
    for (what, method, path, body) in cases {
        let got = raw(&server, method, &path, body.clone()).await;
        assert_eq!(got.0, 413, "{what}: {}", got.1);
        assert_error(got, 413, "PayloadTooLarge", &API_LIMIT.to_string());
        // Without Content-Length the server counts what arrives and stops at the limit too.
        if method_is_post(&path) {
            let got = chunked(&server, &path, body).await;
            assert_eq!(got.0, 413, "{what}, chunked: {}", got.1);
            assert_error(got, 413, "PayloadTooLarge", &API_LIMIT.to_string());
        }
    }
    // The webhook URL has its own, smaller limit (256 KB), also answered in Losant's shape.
    let client = reqwest::Client::new();
    let answer = client
        .post(format!("{}{hook_url}", server.base))
        .header("content-type", "text/plain")
        .body(vec![b'x'; WEBHOOK_LIMIT + 1])
        .send()
        .await
        .unwrap();
    let status = answer.status();
    let body: Value = answer.json().await.unwrap_or(Value::Null);
    assert_error(
        (status, body),
        413,
        "PayloadTooLarge",
        &WEBHOOK_LIMIT.to_string(),
    );
    // At the limits the same requests are accepted: the limit is the documented one, not less.
    let answer = client
        .post(format!("{}{hook_url}", server.base))
        .header("content-type", "text/plain")
        .body(vec![b'x'; WEBHOOK_LIMIT])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200, "a webhook body of exactly 256 KB");
    let exactly = json_of_size(r#"{"key":"noop","payload":""#, r#""}"#, API_LIMIT);
    let got = raw(
        &server,
        Method::POST,
        &format!("{flow_path}/virtualButton"),
        exactly,
    )
    .await;
    assert_eq!(got.0, 200, "a press of exactly 1 MB: {}", got.1);
    // Nothing refused happened: the description, storage and version list are untouched, and
    // only the two accepted requests (webhook, press) ran.
    let kept = server
        .ok(Method::GET, &flow_path, None, 200, SchemaName::Flow)
        .await;
    assert_eq!(kept["description"], "");
    assert_eq!(server.storage(&flow_path).await, json!({}));
    let versions = server
        .ok(
            Method::GET,
            &format!("{flow_path}/versions"),
            None,
            200,
            SchemaName::FlowVersions,
        )
        .await;
    assert_eq!(versions["count"], 0, "{versions}");
    server
        .wait_for_runs(&flow_path, 2, Duration::from_secs(15))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        logs(&server, &flow_path).await.len(),
        2,
        "a refused press ran"
    );
    canary.still_works(&server, "oversize bodies").await;

    // --- Storage over REST: the 16 KB value cap, the key length, the key and byte caps.
    let set = |key: String, value: Value| {
        let server = &server;
        let storage_path = storage_path.clone();
        async move {
            server
                .call(
                    Method::PATCH,
                    &storage_path,
                    Some(OWNER_TOKEN),
                    Some(&json!({"key": key, "value": value})),
                )
                .await
        }
    };
    // A string of n characters is n + 2 bytes of JSON.
    let got = set("v".into(), json!("x".repeat(16 * 1024 - 1))).await;
    assert_error(got, 400, "Validation", "16384");
    let got = set("v".into(), json!("x".repeat(16 * 1024 - 2))).await;
    assert_eq!(got.0, 200, "a value of exactly 16384 bytes: {}", got.1);
    let got = set("k".repeat(256), json!(1)).await;
    assert_error(got, 400, "Validation", "255");
    // Keys: 20 fit (with "v" already there, 19 more), the 21st is refused naming the cap.
    for i in 1..20 {
        let got = set(format!("k{i}"), json!(i)).await;
        assert_eq!(got.0, 200, "key {i} of 20: {}", got.1);
    }
    let got = set("one-too-many".into(), json!(1)).await;
    assert_error(got, 400, "Validation", "20 keys");
    // At the cap, existing keys still change, and deleting one makes room.
    assert_eq!(set("k1".into(), json!("changed")).await.0, 200);
    let got = server
        .call(
            Method::PATCH,
            &storage_path,
            Some(OWNER_TOKEN),
            Some(&json!({"key": "k19"})),
        )
        .await;
    assert_eq!(got.0, 200, "{}", got.1);
    assert_eq!(set("one-more".into(), json!(1)).await.0, 200);
    let metadata = server
        .ok(
            Method::GET,
            &format!("{flow_path}/storage-metadata"),
            None,
            200,
            SchemaName::FlowStorageMetadata,
        )
        .await;
    assert_eq!(metadata["keysCount"], 20, "{metadata}");
    // Bytes: after a clear, four 16,000-character values (4 × 16,004 bytes) fit in 65,536;
    // a fifth would make 80,020 and is refused naming the cap.
    server
        .ok(
            Method::DELETE,
            &storage_path,
            None,
            200,
            SchemaName::FlowStorageEntries,
        )
        .await;
    for i in 0..4 {
        let got = set(format!("b{i}"), json!("y".repeat(16_000))).await;
        assert_eq!(got.0, 200, "value {i}: {}", got.1);
    }
    let got = set("b4".into(), json!("y".repeat(16_000))).await;
    assert_error(got, 400, "Validation", "65536 bytes");
    let metadata = server
        .ok(
            Method::GET,
            &format!("{flow_path}/storage-metadata"),
            None,
            200,
            SchemaName::FlowStorageMetadata,
        )
        .await;
    assert_eq!(
        (
            metadata["memoryUsed"].clone(),
            metadata["keysCount"].clone()
        ),
        (json!(4 * 16_004), json!(4)),
        "{metadata}"
    );

    // --- The same caps inside a run: the node halts and the error, naming the cap, is recorded.
    let runs_before = logs(&server, &flow_path).await.len();
    press(
        &server,
        &flow_path,
        "keep",
        json!({"key": "b0", "value": "z".repeat(17_000)}),
    )
    .await;
    press(
        &server,
        &flow_path,
        "keep",
        json!({"key": "b9", "value": "z".repeat(2_000)}),
    )
    .await;
    // Both runs end before the storage they hit the caps of is cleared.
    server
        .wait_for_runs(&flow_path, runs_before + 2, Duration::from_secs(15))
        .await;
    server
        .ok(
            Method::DELETE,
            &storage_path,
            None,
            200,
            SchemaName::FlowStorageEntries,
        )
        .await;
    for i in 0..20 {
        set(format!("n{i}"), json!(i)).await;
    }
    press(
        &server,
        &flow_path,
        "keep",
        json!({"key": "n20", "value": 1}),
    )
    .await;
    let logged = server
        .wait_for_runs(&flow_path, runs_before + 3, Duration::from_secs(15))
        .await;
    for entry in &logged[..3] {
        assert_eq!(entry["pathsFailed"], 1, "{entry}");
    }
    let recorded = errors(&server, &flow_path).await;
    let found = |name: &str, needle: &str| {
        recorded.iter().any(|e| {
            e["nodeId"] == "keep"
                && e["error"]["name"] == name
                && e["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(needle))
        })
    };
    assert!(found("PayloadTooLarge", "16384"), "{recorded:#?}");
    assert!(found("StorageError", "65536 bytes"), "{recorded:#?}");
    assert!(found("StorageError", "20 keys"), "{recorded:#?}");
    let storage = server.storage(&flow_path).await;
    assert!(
        storage.get("n20").is_none() && storage.get("b9").is_none(),
        "{storage}"
    );
    canary.still_works(&server, "storage caps").await;
}

fn method_is_post(path: &str) -> bool {
    // The chunked check is made on the POST routes (press, version), which read the body last.
    path.ends_with("/virtualButton") || path.ends_with("/versions")
}

// ---------------------------------------------------------------------------------------------
// Big graphs
// ---------------------------------------------------------------------------------------------

/// The run time limit of the graph cases, written out so the test can compare with it.
const RUN_LIMIT_SECS: u64 = 60;

/// A Loop node over `data.n` iterations whose body adds each index to `working.sum` (carried
/// from one iteration to the next by a Next cap), then stores the sum.
fn loop_flow() -> Value {
    json!({
        "name": "long loop",
        "triggers": [{"type": "virtualButton", "key": "go", "outputIds": [["init"]]}],
        "nodes": [
            {"id": "init", "type": "MutateNode",
             "config": {"rules": [{"type": "set", "valueTemplate": "0", "valueTemplateType": "json", "destination": "working.sum"}]},
             "outputIds": [["loop"]]},
            {"id": "loop", "type": "LoopNode",
             "config": {"loopSourcePath": "data.n", "currentItemPath": "working.cur"},
             "outputIds": [["keep"], ["add"]]},
            {"id": "add", "type": "MathNode", "meta": {"groupId": "loop"},
             "config": {"statements": [{"expression": "{{working.sum}} + {{working.cur.index}}", "resultPath": "working.sum"}]},
             "outputIds": [["next"]]},
            {"id": "next", "type": "LoopCapNode", "meta": {"name": "loop-next", "groupId": "loop"},
             "config": {"loopNodeId": "loop"}, "outputIds": []},
            {"id": "keep", "type": "StoreValueNode",
             "config": {"keyName": "sum", "valueType": "path", "valuePath": "working.sum"},
             "outputIds": [[]]}
        ]
    })
}

/// A parallel Loop node over `data.n` iterations: each doubles its index and returns it as its
/// map value; after the loop the number of map values is stored.
fn parallel_loop_flow() -> Value {
    json!({
        "name": "parallel loop",
        "triggers": [{"type": "virtualButton", "key": "go", "outputIds": [["loop"]]}],
        "nodes": [
            {"id": "loop", "type": "LoopNode",
             "config": {"loopSourcePath": "data.n", "currentItemPath": "working.cur", "parallel": true,
                        "mapResultPath": "working.doubled", "mapValuePath": "working.twice"},
             "outputIds": [["count"], ["double"]]},
            {"id": "double", "type": "MathNode", "meta": {"groupId": "loop"},
             "config": {"statements": [{"expression": "{{working.cur.index}} * 2", "resultPath": "working.twice"}]},
             "outputIds": [["return"]]},
            {"id": "return", "type": "LoopCapNode", "meta": {"name": "loop-return", "groupId": "loop"},
             "config": {"loopNodeId": "loop"}, "outputIds": []},
            {"id": "count", "type": "MathNode",
             "config": {"statements": [
                 {"expression": "{{working.doubled.length}}", "resultPath": "working.count"},
                 {"expression": "{{working.doubled.1000}}", "resultPath": "working.sample"}
             ]},
             "outputIds": [["keep"]]},
            {"id": "keep", "type": "StoreValueNode",
             "config": {"keyName": "result", "valueType": "json",
                        "value": "{\"count\": {{working.count}}, \"sample\": {{working.sample}}}"},
             "outputIds": [[]]}
        ]
    })
}

/// 1,000 Math nodes in a line, each adding one to `data.i`; the last stores it.
fn chain_flow(length: usize) -> Value {
    let mut nodes: Vec<Value> = (0..length)
        .map(|i| {
            let next = if i + 1 < length {
                format!("n{}", i + 1)
            } else {
                "keep".into()
            };
            json!({"id": format!("n{i}"), "type": "MathNode",
                   "config": {"statements": [{"expression": "{{data.i}} + 1", "resultPath": "data.i"}]},
                   "outputIds": [[next]]})
        })
        .collect();
    nodes.push(json!({"id": "keep", "type": "StoreValueNode",
                      "config": {"keyName": "i", "valueType": "path", "valuePath": "data.i"},
                      "outputIds": [[]]}));
    json!({
        "name": "long chain",
        "triggers": [{"type": "virtualButton", "key": "go", "outputIds": [["n0"]]}],
        "nodes": nodes
    })
}

/// Fan-out 100 × 100, read in Losant's path semantics: one node whose port feeds 100 nodes
/// (Losant's wiring limit is 100 targets per port), each of which feeds the same 100 nodes.
/// Every arrival runs the target again (fan-in does not merge paths), so the run has
/// 100 × 100 = 10,000 paths, each ending in a Store Value node that counts it. (Ten thousand
/// distinct leaf nodes would make a document over the 1 MB body limit; sharing the second layer
/// gives the same number of paths and steps.)
fn fan_out_flow(width: usize) -> Value {
    let layer =
        |prefix: &str| -> Vec<String> { (0..width).map(|i| format!("{prefix}{i}")).collect() };
    let mut nodes =
        vec![json!({"id": "root", "type": "MathNode", "config": {}, "outputIds": [layer("b")]})];
    for b in layer("b") {
        nodes.push(json!({"id": b, "type": "MathNode", "config": {}, "outputIds": [layer("c")]}));
    }
    for c in layer("c") {
        nodes.push(json!({"id": c, "type": "StoreValueNode",
                          "config": {"keyName": "paths", "valueType": "incr", "value": "1"},
                          "outputIds": [[]]}));
    }
    json!({
        "name": "fan-out",
        "triggers": [{"type": "virtualButton", "key": "go", "outputIds": [["root"]]}],
        "nodes": nodes
    })
}

/// Presses `go` with `data` and waits for the run's log entry; returns it and the wall time.
async fn run_once(server: &Server, flow_path: &str, data: Value) -> (Value, Duration) {
    let before = logs(server, flow_path).await.len();
    let began = Instant::now();
    press(server, flow_path, "go", data).await;
    // The run must end by the run time limit; the margin covers accounting's 1 s batching.
    let logged = server
        .wait_for_runs(
            flow_path,
            before + 1,
            Duration::from_secs(RUN_LIMIT_SECS + 15),
        )
        .await;
    (logged[0].clone(), began.elapsed())
}

#[tokio::test]
async fn big_graphs_end_within_the_run_time_limit() {
    let _turn = HEAVY.lock().await;
    let server =
        Server::start_with_config(&format!("run-time-limit-secs = {RUN_LIMIT_SECS}\n")).await;
    let pid = server.pid().expect("running");
    let baseline = rss_kib(pid).unwrap();
    let rss = RssSampler::start(pid);
    let app = server.create_application("graphs").await;
    let mut canary = Canary::new(&server, &app).await;
    let mut report: Vec<String> = Vec::new();
    let limit_ms = (RUN_LIMIT_SECS * 1000) as f64;

    // --- A loop over the most items a loop takes (262,144): it completes, with the exact sum.
    let flow = id_of(&server.create_flow(&app, &loop_flow()).await);
    let loop_path = format!("/applications/{app}/flows/{flow}");
    let n: u64 = 262_144;
    let (entry, took) = run_once(&server, &loop_path, json!({"n": n})).await;
    assert_eq!(
        (
            entry["pathsCompleted"].clone(),
            entry["pathsFailed"].clone()
        ),
        (json!(1), json!(0)),
        "{entry}"
    );
    assert!(entry["wallTime"].as_f64().unwrap() < limit_ms, "{entry}");
    assert_eq!(
        server.storage(&loop_path).await["sum"],
        json!(n * (n - 1) / 2)
    );
    report.push(format!(
        "loop of {n}: {:.1} s (wallTime {} ms), RSS peak so far {} MiB",
        took.as_secs_f64(),
        entry["wallTime"],
        rss.peak() / 1024
    ));
    canary.still_works(&server, "a loop of 262,144 items").await;
    // One item more is refused by the Loop node with a recorded error naming the cap.
    let (entry, _) = run_once(&server, &loop_path, json!({"n": n + 1})).await;
    assert_eq!(entry["pathsFailed"], 1, "{entry}");
    let recorded = errors(&server, &loop_path).await;
    assert!(
        recorded.iter().any(|e| e["nodeId"] == "loop"
            && e["error"]["name"] == "ValidationError"
            && e["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("262144")),
        "{recorded:#?}"
    );
    canary.still_works(&server, "a loop of 262,145 items").await;

    // --- The same number of items in parallel, each iteration on a copy of a payload that
    // carries 2 KiB: the loop completes with every map value, and (checked at the end with the
    // RSS bound) without keeping 262,144 payload copies until it ends.
    let flow = id_of(&server.create_flow(&app, &parallel_loop_flow()).await);
    let parallel_path = format!("/applications/{app}/flows/{flow}");
    let (entry, took) = run_once(
        &server,
        &parallel_path,
        json!({"n": n, "blob": "b".repeat(2048)}),
    )
    .await;
    assert_eq!(
        (
            entry["pathsCompleted"].clone(),
            entry["pathsFailed"].clone()
        ),
        (json!(1), json!(0)),
        "{entry}"
    );
    assert_eq!(
        server.storage(&parallel_path).await["result"],
        json!({"count": n, "sample": 2000})
    );
    report.push(format!(
        "parallel loop of {n} with a 2 KiB payload: {:.1} s (wallTime {} ms), RSS peak so far {} MiB",
        took.as_secs_f64(),
        entry["wallTime"],
        rss.peak() / 1024
    ));
    canary
        .still_works(&server, "a parallel loop of 262,144 items")
        .await;

    // --- A chain of 1,000 nodes: every node runs once, in order.
    let flow = id_of(&server.create_flow(&app, &chain_flow(1000)).await);
    let chain_path = format!("/applications/{app}/flows/{flow}");
    let (entry, took) = run_once(&server, &chain_path, json!({"i": 0})).await;
    assert_eq!(
        (
            entry["pathsCompleted"].clone(),
            entry["pathsFailed"].clone()
        ),
        (json!(1), json!(0)),
        "{entry}"
    );
    assert_eq!(server.storage(&chain_path).await["i"], json!(1000));
    report.push(format!(
        "chain of 1,000: {:.1} s (wallTime {} ms)",
        took.as_secs_f64(),
        entry["wallTime"]
    ));
    canary.still_works(&server, "a chain of 1,000 nodes").await;

    // --- Fan-out 100 × 100: 10,000 paths, each completed and counted.
    let flow = id_of(&server.create_flow(&app, &fan_out_flow(100)).await);
    let fan_path = format!("/applications/{app}/flows/{flow}");
    let (entry, took) = run_once(&server, &fan_path, json!({})).await;
    assert_eq!(
        (
            entry["pathsCompleted"].clone(),
            entry["pathsFailed"].clone()
        ),
        (json!(10_000), json!(0)),
        "{entry}"
    );
    assert_eq!(server.storage(&fan_path).await["paths"], json!(10_000));
    report.push(format!(
        "fan-out 100 × 100: {:.1} s (wallTime {} ms)",
        took.as_secs_f64(),
        entry["wallTime"]
    ));
    canary.still_works(&server, "a fan-out of 100 × 100").await;

    // --- A flow whose Workflow Trigger node presses its own button: without a cut it would
    // recurse forever. The chain is cut at 32 levels: 33 runs count, the last one fails with
    // an error saying why, and nothing runs after it.
    let flow = id_of(
        &server
            .create_flow(&app, &json!({"name": "ouroboros"}))
            .await,
    );
    let self_path = format!("/applications/{app}/flows/{flow}");
    server
        .ok(
            Method::PATCH,
            &self_path,
            Some(&json!({
                "triggers": [{"type": "virtualButton", "key": "go", "outputIds": [["count"]]}],
                "nodes": [
                    {"id": "count", "type": "StoreValueNode",
                     "config": {"keyName": "runs", "valueType": "incr", "value": "1"}, "outputIds": [["again"]]},
                    {"id": "again", "type": "WorkflowTriggerNode",
                     "config": {"triggerWorkflowId": flow, "triggerVirtualButtonId": "go"}, "outputIds": [[]]}
                ]
            })),
            200,
            SchemaName::Flow,
        )
        .await;
    let began = Instant::now();
    press(&server, &self_path, "go", json!({})).await;
    let chain = 33;
    let logged = server
        .wait_for_runs(&self_path, chain, Duration::from_secs(30))
        .await;
    report.push(format!(
        "Workflow Trigger chain: {chain} runs in {:.1} s",
        began.elapsed().as_secs_f64()
    ));
    // Nothing runs past the cut (a second or two for a stray run to show up).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let logged_after = logs(&server, &self_path).await;
    assert_eq!(logged_after.len(), chain, "runs went on past the cut");
    assert_eq!(server.storage(&self_path).await["runs"], json!(chain));
    let failed: u64 = logged
        .iter()
        .map(|e| e["pathsFailed"].as_u64().unwrap())
        .sum();
    assert_eq!(failed, 1, "only the run at the cut fails: {logged:#?}");
    let recorded = errors(&server, &self_path).await;
    assert_eq!(recorded.len(), 1, "{recorded:#?}");
    assert_eq!(recorded[0]["nodeId"], "again");
    assert_eq!(recorded[0]["error"]["name"], "ValidationError");
    let message = recorded[0]["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("32") && message.contains("chain"),
        "{message}"
    );
    canary
        .still_works(&server, "a Workflow Trigger chain")
        .await;

    let peak = rss.finish();
    report.push(format!(
        "server RSS: {} MiB at start, {} MiB at peak",
        baseline / 1024,
        peak / 1024
    ));
    eprintln!("big graphs:\n  {}", report.join("\n  "));
    // The biggest cases hold one loop's 262,144 item objects at once (about 130 MiB in a debug
    // build). Before run.rs reduced each parallel iteration to its map value as it finished,
    // every iteration's payload was kept until the loop ended and this server reached 1.6 GiB.
    let growth_mib = peak.saturating_sub(baseline) / 1024;
    assert!(
        growth_mib < 384,
        "RSS grew by {growth_mib} MiB (start {baseline} KiB, peak {peak} KiB)"
    );
}

// ---------------------------------------------------------------------------------------------
// A flood of presses
// ---------------------------------------------------------------------------------------------

/// The queue this server gets: small, so that the flood overflows it quickly, but large
/// enough that refusing is the queue's doing and not a lack of workers.
const QUEUE: usize = 500;
const WORKERS: usize = 50;
const PRESSES: usize = 20_000;
/// Each press carries this much data, so that keeping every press would be visible:
/// 20,000 × 16 KiB = 312 MiB.
const PAYLOAD_BYTES: usize = 16 * 1024;
/// The bound: growth of the server's RSS over its idle size during the flood.
const RSS_GROWTH_BOUND_MIB: u64 = 128;

#[tokio::test]
async fn a_flood_of_presses_gets_429s_and_memory_stays_bounded() {
    let _turn = HEAVY.lock().await;
    let server =
        Server::start_with_config(&format!("queue-capacity = {QUEUE}\nworkers = {WORKERS}\n"))
            .await;
    let app = server.create_application("flood").await;
    let mut canary = Canary::new(&server, &app).await;
    // The slow flow: each run waits half a second, then counts itself.
    let flow = server
        .create_flow(
            &app,
            &json!({
                "name": "slow",
                "triggers": [{"type": "virtualButton", "key": "slow", "outputIds": [["wait"]]}],
                "nodes": [
                    {"id": "wait", "type": "DelayNode", "config": {"delay": "0.5"}, "outputIds": [["count"]]},
                    {"id": "count", "type": "StoreValueNode",
                     "config": {"keyName": "done", "valueType": "incr", "value": "1"}, "outputIds": [[]]}
                ]
            }),
        )
        .await;
    let flow_path = format!("/applications/{app}/flows/{}", id_of(&flow));
    canary.still_works(&server, "start").await;

    let pid = server.pid().expect("running");
    let idle = rss_kib(pid).unwrap();
    let rss = RssSampler::start(pid);
    let body =
        serde_json::to_vec(&json!({"key": "slow", "payload": {"blob": "p".repeat(PAYLOAD_BYTES)}}))
            .unwrap();
    let url = format!("{}{flow_path}/virtualButton", server.base);
    let next = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let unexpected = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let began = Instant::now();
    let mut senders = Vec::new();
    for _ in 0..48 {
        let (client, url, body) = (server.client.clone(), url.clone(), body.clone());
        let (next, accepted, refused, unexpected) = (
            next.clone(),
            accepted.clone(),
            refused.clone(),
            unexpected.clone(),
        );
        senders.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < PRESSES {
                let answer = client
                    .post(&url)
                    .bearer_auth(OWNER_TOKEN)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .expect("press sent");
                let status = answer.status();
                let reply: Value = answer.json().await.unwrap_or(Value::Null);
                match status.as_u16() {
                    200 if reply == json!({"success": true}) => {
                        accepted.fetch_add(1, Ordering::Relaxed);
                    }
                    429 if reply["type"] == "RateLimit"
                        && reply["message"]
                            .as_str()
                            .is_some_and(|m| m.contains("queue")) =>
                    {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => unexpected
                        .lock()
                        .unwrap()
                        .push(format!("{status}: {reply}")),
                }
            }
        }));
    }
    // While the flood goes on, the server still answers other requests.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let probe = Instant::now();
    let (status, _) = server.call(Method::GET, "/health", None, None).await;
    assert_eq!(status, 200);
    let health_latency = probe.elapsed();
    for sender in senders {
        sender.await.unwrap();
    }
    let flood_took = began.elapsed();
    let (accepted, refused) = (
        accepted.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
    );
    let unexpected = unexpected.lock().unwrap().clone();
    assert!(
        unexpected.is_empty(),
        "{} unexpected answers, e.g. {:?}",
        unexpected.len(),
        &unexpected[..unexpected.len().min(5)]
    );
    assert_eq!(accepted + refused, PRESSES);
    assert!(
        refused > 0,
        "a flood of {PRESSES} presses at a slow flow was never refused"
    );
    // Accepted but not yet finished: at most what the queue holds, plus one run per worker,
    // plus the one job the dispatcher holds while it waits for a worker. More would mean the
    // queue is not bounded. (Runs finishing after the flood only lower the difference.)
    let done_by_then = server.storage(&flow_path).await["done"]
        .as_u64()
        .unwrap_or(0) as usize;
    assert!(
        accepted - done_by_then <= QUEUE + WORKERS + 1,
        "{accepted} presses accepted, {done_by_then} finished"
    );

    // Every accepted press runs (none is lost); the queue drains at WORKERS per 0.5 s.
    let drain_began = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = server.storage(&flow_path).await["done"]
            .as_u64()
            .unwrap_or(0);
        if done == accepted as u64 {
            break;
        }
        assert!(
            done < accepted as u64,
            "{done} runs for {accepted} accepted presses"
        );
        assert!(
            Instant::now() < deadline,
            "only {done} of {accepted} accepted presses ran"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drained = drain_began.elapsed();
    let peak = rss.finish();
    let growth_mib = peak.saturating_sub(idle) / 1024;
    eprintln!(
        "flood: {PRESSES} presses of {PAYLOAD_BYTES} bytes in {:.1} s: {accepted} accepted, \
         {refused} refused with 429; drained in {:.1} s; /health answered in {} ms mid-flood; \
         RSS {} MiB idle, {} MiB peak (+{growth_mib} MiB, bound +{RSS_GROWTH_BOUND_MIB} MiB)",
        flood_took.as_secs_f64(),
        drained.as_secs_f64(),
        health_latency.as_millis(),
        idle / 1024,
        peak / 1024,
    );
    assert!(
        health_latency < Duration::from_secs(5),
        "/health took {health_latency:?} during the flood"
    );
    assert!(
        growth_mib < RSS_GROWTH_BOUND_MIB,
        "RSS grew by {growth_mib} MiB during the flood (idle {idle} KiB, peak {peak} KiB)"
    );
    canary.still_works(&server, "a flood of presses").await;
}
