//! Runs through the API: pressing virtual buttons, and what storage, errors, logs and stats say
//! afterwards — counts asserted exactly, every response checked against its official schema.

mod common;

use common::*;
use flowd_model::schema::SchemaName;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// A flow whose button increments a counter, and whose second button fails in a Function node.
fn counter_flow() -> Value {
    json!({
        "name": "counter",
        "triggers": [
            {"type": "virtualButton", "key": "count", "outputIds": [["incr"]],
             "meta": {"payload": "{\"step\": 2}"}},
            {"type": "virtualButton", "key": "fail", "outputIds": [["boom"]]}
        ],
        "nodes": [
            {"id": "incr", "type": "StoreValueNode", "meta": {"label": "Count"},
             "config": {"keyName": "presses", "valueType": "incr", "value": "{{data.step}}", "resultPath": "working.n"},
             "outputIds": [["last"]]},
            {"id": "last", "type": "StoreValueNode",
             "config": {"keyName": "last", "valueType": "path", "valuePath": "data"}, "outputIds": [[]]},
            {"id": "boom", "type": "RawFunctionNode", "meta": {"label": "Explodes"},
             "config": {"script": "payload.data.missing.deep = 1;"}, "outputIds": [[]]}
        ]
    })
}

#[tokio::test]
async fn presses_run_the_flow_and_history_reports_them() {
    let server = Server::start().await;
    let app = server.create_application("runs").await;
    let flow = server.create_flow(&app, &counter_flow()).await;
    let flow_path = format!("/applications/{app}/flows/{}", flow["id"].as_str().unwrap());

    // Three presses with the button's default payload, one with our own, one that fails.
    for _ in 0..3 {
        let (status, body) = server.press(&flow_path, json!({"key": "count"})).await;
        assert_eq!(status, 200, "{body}");
        assert_schema(SchemaName::Success, &body);
    }
    let (status, _) = server
        .press(&flow_path, json!({"key": "count", "payload": {"step": 10}}))
        .await;
    assert_eq!(status, 200);
    let (status, _) = server.press(&flow_path, json!({"key": "fail"})).await;
    assert_eq!(status, 200);
    let logs = server
        .wait_for_runs(&flow_path, 5, Duration::from_secs(30))
        .await;

    let storage = server.storage(&flow_path).await;
    assert_eq!(storage["presses"], json!(16), "3 × 2 + 10");
    assert!(storage["last"] == json!({"step": 2}) || storage["last"] == json!({"step": 10}));

    // Logs: one entry per run, newest first, the failed one with its error.
    let entries = &logs;
    assert_eq!(entries.len(), 5);
    assert!(entries
        .iter()
        .all(|e| e["runCount"] == 1 && e["flowVersionId"] == "develop"));
    let failed: Vec<&Value> = entries.iter().filter(|e| e["pathsFailed"] == 1).collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["errors"][0]["nodeId"], "boom");
    assert_eq!(
        entries.iter().filter(|e| e["pathsCompleted"] == 1).count(),
        4
    );
    let times: Vec<&str> = entries
        .iter()
        .map(|e| e["time"].as_str().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {times:?}"
    );
    let one = server
        .ok(
            Method::GET,
            &format!("{flow_path}/logs"),
            None,
            200,
            SchemaName::FlowLog,
        )
        .await;
    assert_eq!(one.as_array().unwrap().len(), 1, "limit defaults to 1");

    // Errors: the failing node with its id, label and a name from the closed list.
    let errors = server
        .ok(
            Method::GET,
            &format!("{flow_path}/errors"),
            None,
            200,
            SchemaName::FlowErrors,
        )
        .await;
    assert_eq!(errors["errors"].as_array().unwrap().len(), 1, "{errors}");
    let error = &errors["errors"][0];
    assert_eq!(error["nodeId"], "boom");
    assert_eq!(error["nodeLabel"], "Explodes");
    assert_eq!(error["flowVersion"], "develop");
    assert_eq!(error["error"]["name"], "FunctionNodeTypeError");
    assert_eq!(errors["limit"], 25);
    assert_eq!(errors["sortDirection"], "desc");

    // Stats at two resolutions add up to the same runs.
    for resolution in [60_000, 3_600_000] {
        let stats = server
            .ok(
                Method::GET,
                &format!("{flow_path}/stats?resolution={resolution}"),
                None,
                200,
                SchemaName::FlowStats,
            )
            .await;
        let metrics = stats["metrics"].as_array().unwrap();
        let sum = |field: &str| {
            metrics
                .iter()
                .map(|m| m[field].as_u64().unwrap())
                .sum::<u64>()
        };
        assert_eq!(
            (sum("runCount"), sum("pathsCompleted"), sum("pathsFailed")),
            (5, 4, 1),
            "{stats}"
        );
        assert_eq!(stats["resolution"], resolution);
        assert_eq!(
            metrics.len() as i64,
            86_400_000 / resolution + 1,
            "a day of buckets, edges included"
        );
        let starts: Vec<i64> = metrics
            .iter()
            .map(|m| {
                flowd_model::time::parse_iso(m["time"].as_str().unwrap())
                    .unwrap()
                    .timestamp_millis()
            })
            .collect();
        assert!(
            starts.iter().all(|t| t % resolution == 0),
            "aligned to the resolution"
        );
        assert!(
            starts.windows(2).all(|w| w[1] - w[0] == resolution),
            "ascending, no gaps"
        );
    }

    // The workflow document carries the summary.
    let got = server
        .ok(Method::GET, &flow_path, None, 200, SchemaName::Flow)
        .await;
    assert_eq!(got["stats"]["runCount"], 5);
    assert_eq!(got["stats"]["errorCount"], 1);
    assert_eq!(got["stats"]["byVersion"]["develop"]["runCount"], 5);
}

#[tokio::test]
async fn presses_follow_versions_and_refuse_what_cannot_run() {
    let server = Server::start().await;
    let app = server.create_application("versions").await;
    let flow = server.create_flow(&app, &counter_flow()).await;
    let flow_path = format!("/applications/{app}/flows/{}", flow["id"].as_str().unwrap());

    // v1 counts in another key.
    let mut v1 = counter_flow();
    v1["nodes"][0]["config"]["keyName"] = json!("v1-presses");
    let v1_body = json!({"version": "v1", "triggers": v1["triggers"], "nodes": v1["nodes"]});
    let version = server
        .ok(
            Method::POST,
            &format!("{flow_path}/versions"),
            Some(&v1_body),
            201,
            SchemaName::FlowVersion,
        )
        .await;
    let v1_id = version["id"].as_str().unwrap().to_owned();

    assert_eq!(
        server
            .press(&flow_path, json!({"key": "count", "flowVersion": "v1"}))
            .await
            .0,
        200
    );
    assert_eq!(
        server
            .press(
                &flow_path,
                json!({"key": "count", "flowVersion": "develop"})
            )
            .await
            .0,
        200
    );
    // With a default version, a press that names none runs it.
    server
        .ok(
            Method::PATCH,
            &flow_path,
            Some(&json!({"defaultVersionId": v1_id})),
            200,
            SchemaName::Flow,
        )
        .await;
    assert_eq!(
        server.press(&flow_path, json!({"key": "count"})).await.0,
        200
    );
    server
        .wait_for_runs(&flow_path, 3, Duration::from_secs(30))
        .await;
    let storage = server.storage(&flow_path).await;
    assert_eq!(
        (storage["v1-presses"].clone(), storage["presses"].clone()),
        (json!(4), json!(2))
    );

    // Version filters on the history.
    let stats = server
        .ok(
            Method::GET,
            &format!("{flow_path}/stats?flowVersion=v1"),
            None,
            200,
            SchemaName::FlowStats,
        )
        .await;
    let runs: u64 = stats["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["runCount"].as_u64().unwrap())
        .sum();
    assert_eq!(runs, 2);
    assert_eq!(stats["flowVersion"], "v1");
    assert_eq!(stats["flowVersionId"], v1_id);
    let develop = server
        .ok(
            Method::GET,
            &format!("{flow_path}/stats?flowVersion=develop"),
            None,
            200,
            SchemaName::FlowStats,
        )
        .await;
    let runs: u64 = develop["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["runCount"].as_u64().unwrap())
        .sum();
    assert_eq!(runs, 1);
    let by_version = server
        .ok(
            Method::GET,
            &format!("{flow_path}/versions/v1/stats"),
            None,
            200,
            SchemaName::FlowStats,
        )
        .await;
    assert_eq!(by_version["metrics"], stats["metrics"]);
    let version_logs = server
        .ok(
            Method::GET,
            &format!("{flow_path}/versions/{v1_id}/logs?limit=10"),
            None,
            200,
            SchemaName::FlowLog,
        )
        .await;
    assert_eq!(version_logs.as_array().unwrap().len(), 2);
    server
        .ok(
            Method::GET,
            &format!("{flow_path}/versions/v1/errors"),
            None,
            200,
            SchemaName::FlowErrors,
        )
        .await;
    assert_error(
        server
            .call(
                Method::GET,
                &format!("{flow_path}/stats?flowVersion=nope"),
                Some(OWNER_TOKEN),
                None,
            )
            .await,
        400,
        "Validation",
        "nope",
    );

    // Decision 4: unknown key, unknown version, disabled version, disabled flow.
    assert_error(
        server.press(&flow_path, json!({"key": "nope"})).await,
        400,
        "Validation",
        "nope",
    );
    assert_error(
        server
            .press(&flow_path, json!({"key": "count", "flowVersion": "v9"}))
            .await,
        400,
        "Validation",
        "v9",
    );
    assert_error(
        server.press(&flow_path, json!({"payload": {}})).await,
        400,
        "Validation",
        "key",
    );
    server
        .ok(
            Method::PATCH,
            &format!("{flow_path}/versions/v1"),
            Some(&json!({"enabled": false})),
            200,
            SchemaName::FlowVersion,
        )
        .await;
    assert_error(
        server.press(&flow_path, json!({"key": "count"})).await,
        400,
        "Validation",
        "disabled",
    );
    server
        .ok(
            Method::PATCH,
            &flow_path,
            Some(&json!({"enabled": false})),
            200,
            SchemaName::Flow,
        )
        .await;
    assert_error(
        server
            .press(
                &flow_path,
                json!({"key": "count", "flowVersion": "develop"}),
            )
            .await,
        400,
        "Validation",
        "disabled",
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let logs = server
        .ok(
            Method::GET,
            &format!("{flow_path}/logs?limit=100"),
            None,
            200,
            SchemaName::FlowLog,
        )
        .await;
    assert_eq!(
        logs.as_array().unwrap().len(),
        3,
        "refused presses did not run"
    );
}

#[tokio::test]
async fn runaway_scripts_fail_their_run_only() {
    let server = Server::start().await;
    let app = server.create_application("sandbox").await;
    let body = json!({
        "name": "sandbox",
        "triggers": [
            {"type": "virtualButton", "key": "loop", "outputIds": [["spin"]]},
            {"type": "virtualButton", "key": "hog", "outputIds": [["eat"]]},
            {"type": "virtualButton", "key": "ok", "outputIds": [["count"]]}
        ],
        "nodes": [
            {"id": "spin", "type": "RawFunctionNode", "config": {"script": "while (true) {}"}},
            {"id": "eat", "type": "RawFunctionNode", "config": {"script": "const a = []; while (true) { a.push('x'.repeat(1000) + a.length); }"}},
            {"id": "count", "type": "StoreValueNode", "config": {"keyName": "ok", "valueType": "incr", "value": "1"}}
        ]
    });
    let flow = server.create_flow(&app, &body).await;
    let flow_path = format!("/applications/{app}/flows/{}", flow["id"].as_str().unwrap());
    assert_eq!(
        server.press(&flow_path, json!({"key": "loop"})).await.0,
        200
    );
    assert_eq!(server.press(&flow_path, json!({"key": "hog"})).await.0, 200);
    // While the loop spins, ordinary runs keep completing.
    for _ in 0..20 {
        assert_eq!(server.press(&flow_path, json!({"key": "ok"})).await.0, 200);
    }
    let deadline = Instant::now() + Duration::from_secs(4);
    loop {
        let storage = server.storage(&flow_path).await;
        if storage["ok"] == 20 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "ordinary runs stalled behind the loop: {storage}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server
        .wait_for_runs(&flow_path, 22, Duration::from_secs(30))
        .await;
    let errors = server
        .ok(
            Method::GET,
            &format!("{flow_path}/errors"),
            None,
            200,
            SchemaName::FlowErrors,
        )
        .await;
    let mut names: Vec<&str> = errors["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["error"]["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["MemoryError", "TimeoutError"], "{errors}");
    let (status, _) = server.call(Method::GET, "/health", None, None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn debug_output_streams_live_and_history_survives_shutdown() {
    let temp = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(temp.path(), Some(OWNER_TOKEN)).await;
    let app = server.create_application("debug").await;
    let body = json!({
        "name": "talker",
        "triggers": [{"type": "virtualButton", "key": "say", "outputIds": [["log"]]}],
        "nodes": [{"id": "log", "type": "RawFunctionNode",
                   "config": {"script": "console.log('hello', payload.data.who, {n: 1});"}}]
    });
    let flow = server.create_flow(&app, &body).await;
    let flow_path = format!("/applications/{app}/flows/{}", flow["id"].as_str().unwrap());

    // A read-only token without flow.debug may not watch; one with it may.
    let (no_debug, _) = server.create_token(&app, &["flow.get"]).await;
    assert_error(
        server
            .call(
                Method::GET,
                &format!("{flow_path}/debug"),
                Some(&no_debug),
                None,
            )
            .await,
        403,
        "Forbidden",
        "flow.debug",
    );
    let (watcher, _) = server.create_token(&app, &["flow.debug"]).await;
    let mut stream = server
        .client
        .get(format!("{}{flow_path}/debug", server.base))
        .bearer_auth(&watcher)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert!(stream.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));

    assert_eq!(
        server
            .press(
                &flow_path,
                json!({"key": "say", "payload": {"who": "world"}})
            )
            .await
            .0,
        200
    );
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !seen.contains("hello world") {
        let chunk = tokio::time::timeout_at(deadline.into(), stream.chunk())
            .await
            .expect("a debug event within 10 s")
            .unwrap()
            .expect("the stream stays open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    let data = seen
        .lines()
        .find(|l| l.starts_with("data:") && l.contains("hello world"))
        .unwrap()
        .trim_start_matches("data:")
        .trim();
    let event: Value = serde_json::from_str(data).unwrap();
    assert_eq!(event["nodeId"], "log");
    assert_eq!(event["message"], "hello world { n: 1 }");

    // Presses answered just before SIGTERM still run, and their history is written at shutdown.
    for _ in 0..5 {
        assert_eq!(
            server
                .press(
                    &flow_path,
                    json!({"key": "say", "payload": {"who": "again"}})
                )
                .await
                .0,
            200
        );
    }
    // The debug stream is still open: shutdown must end it rather than wait for it.
    let (status, _) = server.stop();
    assert!(status.success());
    let rest = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Some(_)) = stream.chunk().await {}
    })
    .await;
    assert!(rest.is_ok(), "the debug stream ended with the server");
    let server = Server::start_in(temp.path(), Some(OWNER_TOKEN)).await;
    let logs = server
        .ok(
            Method::GET,
            &format!("{flow_path}/logs?limit=100"),
            None,
            200,
            SchemaName::FlowLog,
        )
        .await;
    assert_eq!(logs.as_array().unwrap().len(), 6, "{logs}");
}

#[tokio::test]
async fn a_full_run_queue_answers_429() {
    let server = Server::start_with_config(
        "workers = 1\nqueue-capacity = 1\nfunction-time-limit-ms = 1500\n",
    )
    .await;
    let app = server.create_application("queue").await;
    let body = json!({
        "name": "slow",
        "triggers": [{"type": "virtualButton", "key": "slow", "outputIds": [["spin"]]}],
        "nodes": [{"id": "spin", "type": "RawFunctionNode", "config": {"script": "while (true) {}"}}]
    });
    let flow = server.create_flow(&app, &body).await;
    let flow_path = format!("/applications/{app}/flows/{}", flow["id"].as_str().unwrap());
    let mut accepted = 0;
    let mut refused = None;
    for _ in 0..10 {
        let (status, body) = server.press(&flow_path, json!({"key": "slow"})).await;
        match status.as_u16() {
            200 => accepted += 1,
            429 => {
                refused = Some(body);
                break;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    let body = refused.expect("a press is refused once the queue is full");
    assert_error(
        (reqwest::StatusCode::TOO_MANY_REQUESTS, body),
        429,
        "RateLimit",
        "queue",
    );
    assert!(
        (1..=3).contains(&accepted),
        "one running, one waiting for the worker, one queued: {accepted}"
    );
    // Every accepted press still runs (and times out); none is lost.
    server
        .wait_for_runs(&flow_path, accepted, Duration::from_secs(30))
        .await;
}

#[tokio::test]
async fn a_configured_rate_limit_refuses_presses_past_it() {
    let server = Server::start_with_config("trigger-rate-limit = \"3/60\"\n").await;
    let app = server.create_application("limited").await;
    let body = json!({
        "name": "two buttons",
        "triggers": [{"type": "virtualButton", "key": "a", "outputIds": [[]]},
                     {"type": "virtualButton", "key": "b", "outputIds": [[]]}]
    });
    let flow = server.create_flow(&app, &body).await;
    let flow_path = format!("/applications/{app}/flows/{}", flow["id"].as_str().unwrap());
    for _ in 0..3 {
        let (status, body) = server.press(&flow_path, json!({"key": "a"})).await;
        assert_eq!(status, 200, "{body}");
    }
    assert_error(
        server.press(&flow_path, json!({"key": "a"})).await,
        429,
        "RateLimit",
        "button a",
    );
    // Each button has its own count.
    let (status, _) = server.press(&flow_path, json!({"key": "b"})).await;
    assert_eq!(status, 200);
    server
        .wait_for_runs(&flow_path, 4, Duration::from_secs(30))
        .await;

    // A limit that cannot be read stops the server at start, naming the key.
    let temp = tempfile::tempdir().unwrap();
    let config = temp.path().join("flowd.toml");
    std::fs::write(&config, "trigger-rate-limit = \"lots\"\n").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_flowd"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--config",
            config.to_str().unwrap(),
            "--data-dir",
        ])
        .arg(temp.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("trigger-rate-limit"));
}

#[tokio::test]
async fn presses_are_not_rate_limited_by_default() {
    let server = Server::start().await;
    let app = server.create_application("unlimited").await;
    let flow = server.create_flow(&app, &button_flow("busy")).await;
    let flow_path = format!("/applications/{app}/flows/{}", flow["id"].as_str().unwrap());
    for _ in 0..150 {
        let (status, body) = server.press(&flow_path, json!({"key": "btn"})).await;
        assert_eq!(status, 200, "{body}");
    }
}

#[tokio::test]
async fn node_configs_are_compiled_when_saved() {
    let server = Server::start().await;
    let app = server.create_application("compile").await;
    let bad = |nodes: Value| json!({"name": "bad", "nodes": nodes});
    let cases = [
        (
            json!([{"id": "cond", "type": "ConditionalNode", "config": {"expression": "{{data.x}} >"}}]),
            "cond",
        ),
        (
            json!([{"id": "math", "type": "MathNode", "config": {"statements": [{"expression": "1 +", "resultPath": "w"}]}}]),
            "math",
        ),
        (
            json!([{"id": "dbg", "type": "DebugNode", "config": {"message": "{{#if}}"}}]),
            "dbg",
        ),
        (
            json!([{"id": "wait", "type": "DelayNode", "config": {"delay": "120"}}]),
            "wait",
        ),
        (
            json!([{"id": "store", "type": "StoreValueNode", "config": {"keyName": "k", "valueType": "teleport"}}]),
            "store",
        ),
        (
            json!([{"id": "tpl", "type": "MutateNode", "config": {"rules": [{"type": "set", "valueTemplate": "{{nosuchhelper 1}}", "destination": "w"}]}}]),
            "tpl",
        ),
    ];
    for (nodes, id) in cases {
        let got = server
            .call(
                Method::POST,
                &format!("/applications/{app}/flows"),
                Some(OWNER_TOKEN),
                Some(&bad(nodes)),
            )
            .await;
        assert_error(got, 400, "Validation", &format!("Node \"{id}\""));
    }
    // The same check guards a PATCH, and the stored flow is left as it was.
    let flow = server.create_flow(&app, &button_flow("ok")).await;
    let path = format!("/applications/{app}/flows/{}", flow["id"].as_str().unwrap());
    let patch = json!({"nodes": [{"id": "n1", "type": "ConditionalNode", "config": {}}]});
    assert_error(
        server
            .call(Method::PATCH, &path, Some(OWNER_TOKEN), Some(&patch))
            .await,
        400,
        "Validation",
        "Node \"n1\"",
    );
    let kept = server
        .ok(Method::GET, &path, None, 200, SchemaName::Flow)
        .await;
    assert_eq!(kept["nodes"], flow["nodes"]);
}

#[tokio::test]
async fn a_month_of_minutes_is_answered_and_more_buckets_are_refused() {
    let server = Server::start().await;
    let app = server.create_application("month").await;
    let flow = server.create_flow(&app, &button_flow("m")).await;
    let flow_path = format!("/applications/{app}/flows/{}", flow["id"].as_str().unwrap());
    let month_ms = 30 * 86_400_000_i64;
    let stats = server
        .ok(
            Method::GET,
            &format!("{flow_path}/stats?duration={month_ms}&resolution=60000"),
            None,
            200,
            SchemaName::FlowStats,
        )
        .await;
    let buckets = stats["metrics"].as_array().unwrap().len();
    assert!((43_200..=43_201).contains(&buckets), "{buckets}");
    // Over 50,000 buckets (40 days of minutes) is a 400 naming what to change.
    let (status, body) = server
        .call(
            Method::GET,
            &format!(
                "{flow_path}/stats?duration={}&resolution=60000",
                40 * 86_400_000_i64
            ),
            Some(OWNER_TOKEN),
            None,
        )
        .await;
    assert_error((status, body), 400, "Validation", "resolution");
}
