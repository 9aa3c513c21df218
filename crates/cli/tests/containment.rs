//! Containment of Function node scripts through the real server: scripts that loop forever,
//! allocate without bound, recurse deeply, reach for the host, pollute shared objects or throw
//! things that are not errors each fail their own run with the right error (recorded in the
//! flow's `GET /errors`), while a well-behaved flow keeps completing, the server stays up, and its
//! memory comes back after big allocations.

mod common;

use common::*;
use flowd_model::schema::SchemaName;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// Two JavaScript workers, a short time limit (1 s) so endless loops end quickly, and the default
/// memory limit (64 MB).
const CONFIG: &str =
    "function-workers = 2\nfunction-time-limit-ms = 1000\nfunction-memory-mb = 64\n";
/// The same with room for the 60 MB allocator below.
const ROOMY_CONFIG: &str =
    "function-workers = 2\nfunction-time-limit-ms = 5000\nfunction-memory-mb = 128\n";

/// Hostile scripts: button key, script, the error name its run must record.
const HOSTILE: &[(&str, &str, &str)] = &[
    ("loop", "while (true) {}", "TimeoutError"),
    (
        "alloc",
        "const keep = []; while (true) keep.push(new Uint8Array(1 << 20).fill(7));",
        "MemoryError",
    ),
    (
        "recurse",
        "function f(n) { return f(n + 1) + 1; } f(0);",
        "FunctionNodeRangeError",
    ),
    ("require", "require('fs');", "FunctionNodeReferenceError"),
    ("process", "process.exit(1);", "FunctionNodeReferenceError"),
    (
        "fetch",
        "await fetch('http://127.0.0.1:1/');",
        "FunctionNodeReferenceError",
    ),
    (
        "std",
        "payload.file = std.loadFile('/etc/passwd');",
        "FunctionNodeReferenceError",
    ),
    (
        "os",
        "payload.fd = os.open('/etc/passwd', 0);",
        "FunctionNodeReferenceError",
    ),
    ("string", "throw 'plain text';", "FunctionNodeError"),
    ("number", "throw 42;", "FunctionNodeError"),
    ("null", "throw null;", "FunctionNodeError"),
    ("undefined", "throw undefined;", "FunctionNodeError"),
    ("object", "throw { code: 7 };", "FunctionNodeError"),
    (
        "rejected",
        "await Promise.reject('rejected');",
        "FunctionNodeError",
    ),
];

/// A flow with one button per hostile script, each wired to its own Function node, plus a
/// polluting script and one that fails if it sees the pollution.
fn hostile_flow() -> Value {
    let mut triggers = Vec::new();
    let mut nodes = Vec::new();
    let extra = [
        (
            "pollute",
            "Object.prototype.polluted = 'yes'; Array.prototype.map = null;\n\
             globalThis.leftover = 1; JSON.stringify = () => '\"hijacked\"';\n\
             Object.defineProperty(globalThis, 'stuck', { value: 1, configurable: false });",
        ),
        (
            "check",
            "if (({}).polluted !== undefined || typeof [].map !== 'function'\n\
                 || typeof leftover !== 'undefined' || typeof stuck !== 'undefined')\n\
               throw new Error('saw another run: ' + [({}).polluted, typeof [].map, typeof leftover]);\n\
             payload.data.clean = true;",
        ),
    ];
    let scripts = HOSTILE
        .iter()
        .map(|(key, script, _)| (*key, *script))
        .chain(extra);
    for (key, script) in scripts {
        triggers.push(json!({"type": "virtualButton", "key": key, "outputIds": [[key]]}));
        nodes.push(
            json!({"id": key, "type": "RawFunctionNode", "meta": {"label": key},
                          "config": {"script": script}, "outputIds": [[]]}),
        );
    }
    json!({"name": "hostile", "triggers": triggers, "nodes": nodes})
}

/// A flow whose Function node counts its runs into storage.
fn steady_flow() -> Value {
    json!({
        "name": "steady",
        "triggers": [{"type": "virtualButton", "key": "go", "outputIds": [["fn"]]}],
        "nodes": [
            {"id": "fn", "type": "RawFunctionNode",
             "config": {"script": "payload.data.step = [1].map(x => x + 0)[0];"},
             "outputIds": [["count"]]},
            {"id": "count", "type": "StoreValueNode",
             "config": {"keyName": "runs", "valueType": "incr", "value": "{{data.step}}"},
             "outputIds": [[]]}
        ]
    })
}

/// A flow whose script holds about 60 MB until it finishes.
fn allocator_flow() -> Value {
    json!({
        "name": "allocator",
        "triggers": [{"type": "virtualButton", "key": "big", "outputIds": [["big"]]}],
        "nodes": [{"id": "big", "type": "RawFunctionNode",
                   "config": {"script": "const keep = [];\n\
                       for (let i = 0; i < 60; i++) keep.push(new Uint8Array(1 << 20).fill(i));\n\
                       payload.data.held = keep.reduce((n, a) => n + a.length, 0);"},
                   "outputIds": [[]]}]
    })
}

async fn press(server: &Server, flow_path: &str, key: &str) {
    let (status, body) = server.press(flow_path, json!({"key": key})).await;
    assert_eq!(status, 200, "pressing {key}: {body}");
}

fn path_of(app: &str, flow: &Value) -> String {
    format!(
        "/applications/{app}/flows/{}",
        flow["id"].as_str().expect("flow id")
    )
}

/// The server process's resident memory, in KiB (`VmRSS` in `/proc/<pid>/status`).
fn rss_kib(server: &Server) -> u64 {
    let pid = server.pid().expect("flowd runs");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status readable");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

/// The server's largest resident mappings, for a failure message.
fn largest_mappings(server: &Server) -> String {
    let pid = server.pid().expect("flowd runs");
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut mappings: Vec<(u64, String)> = Vec::new();
    let mut current = String::new();
    for line in smaps.lines() {
        if let Some(rss) = line.strip_prefix("Rss:") {
            let kib = rss
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .unwrap_or(0);
            mappings.push((kib, current.clone()));
        } else if line.contains('-') && !line.contains(':')
            || line.split_whitespace().count() >= 5 && line.contains('-')
        {
            current = line.to_owned();
        }
    }
    mappings.sort_by_key(|b| std::cmp::Reverse(b.0));
    mappings
        .iter()
        .take(5)
        .map(|(kib, what)| format!("{kib} KiB {what}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn hostile_scripts_fail_their_own_runs_and_nothing_else() {
    let server = Server::start_with_config(CONFIG).await;
    let app = server.create_application("containment").await;
    let hostile = path_of(&app, &server.create_flow(&app, &hostile_flow()).await);
    let steady = path_of(&app, &server.create_flow(&app, &steady_flow()).await);

    // The pollution run first, then every hostile script, each followed by a steady run: the
    // steady flow shares the workers with them and must complete every time.
    press(&server, &hostile, "pollute").await;
    server
        .wait_for_runs(&hostile, 1, Duration::from_secs(20))
        .await;
    let mut steady_presses = 0;
    for (key, _, _) in HOSTILE {
        press(&server, &hostile, key).await;
        press(&server, &steady, "go").await;
        steady_presses += 1;
    }
    // Twice, so both workers have run the check after everything above.
    press(&server, &hostile, "check").await;
    press(&server, &hostile, "check").await;
    let runs = HOSTILE.len() + 3;
    let logs = server
        .wait_for_runs(&hostile, runs, Duration::from_secs(20))
        .await;
    server
        .wait_for_runs(&steady, steady_presses, Duration::from_secs(20))
        .await;

    // Every hostile run failed, the pollution and the checks did not.
    assert_eq!(logs.len(), runs);
    let failed = logs.iter().filter(|run| run["pathsFailed"] == 1).count();
    assert_eq!(failed, HOSTILE.len(), "{logs:#?}");

    // Each failure is recorded against its own node, with the right name.
    let errors = server
        .ok(
            Method::GET,
            &format!("{hostile}/errors"),
            None,
            200,
            SchemaName::FlowErrors,
        )
        .await;
    let recorded: BTreeMap<String, String> = errors["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| {
            (
                e["nodeId"].as_str().unwrap_or_default().to_owned(),
                e["error"]["name"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let expected: BTreeMap<String, String> = HOSTILE
        .iter()
        .map(|(key, _, name)| ((*key).to_owned(), (*name).to_owned()))
        .collect();
    assert_eq!(recorded, expected, "{errors:#}");
    assert_eq!(
        errors["errors"].as_array().map(Vec::len),
        Some(HOSTILE.len()),
        "one error per failed run: {errors:#}"
    );

    // The steady flow completed every run and counted each.
    let storage = server.storage(&steady).await;
    assert_eq!(storage["runs"], json!(steady_presses), "{storage}");
    let steady_errors = server
        .ok(
            Method::GET,
            &format!("{steady}/errors"),
            None,
            200,
            SchemaName::FlowErrors,
        )
        .await;
    assert_eq!(steady_errors["errors"], json!([]), "{steady_errors}");

    // And the server still answers.
    server
        .ok(
            Method::GET,
            &format!("/applications/{app}"),
            None,
            200,
            SchemaName::Application,
        )
        .await;
}

#[tokio::test]
async fn memory_comes_back_after_big_allocations() {
    /// How far above its warmed-up baseline the server's resident memory may stay after twenty
    /// 60 MB runs (a worker that ran one starts over on a fresh region; glibc may keep a few MB).
    const BOUND_KIB: u64 = 24 * 1024;
    const RUNS: usize = 20;
    let server = Server::start_with_config(ROOMY_CONFIG).await;
    let app = server.create_application("memory").await;
    let steady = path_of(&app, &server.create_flow(&app, &steady_flow()).await);
    let big = path_of(&app, &server.create_flow(&app, &allocator_flow()).await);

    // Warm up both workers and the server's own buffers before taking the baseline.
    for _ in 0..10 {
        press(&server, &steady, "go").await;
    }
    server
        .wait_for_runs(&steady, 10, Duration::from_secs(20))
        .await;
    let baseline = rss_kib(&server);

    let mut peak = baseline;
    for _ in 0..RUNS {
        press(&server, &big, "big").await;
        peak = peak.max(rss_kib(&server));
    }
    let logs = server
        .wait_for_runs(&big, RUNS, Duration::from_secs(20))
        .await;
    assert!(
        logs.iter().all(|run| run["pathsCompleted"] == 1),
        "every 60 MB run completes: {logs:#?}"
    );
    // A steady run after them, so the workers have finished resetting.
    press(&server, &steady, "go").await;
    server
        .wait_for_runs(&steady, 11, Duration::from_secs(20))
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = rss_kib(&server);
    eprintln!("flowd VmRSS: baseline {baseline} KiB, peak seen {peak} KiB, after {after} KiB");
    assert!(
        after <= baseline + BOUND_KIB,
        "resident memory {after} KiB stayed more than {BOUND_KIB} KiB above the baseline {baseline} KiB (peak seen {peak} KiB); largest mappings:\n{}",
        largest_mappings(&server)
    );
    let storage = server.storage(&steady).await;
    assert_eq!(storage["runs"], json!(11));
}
