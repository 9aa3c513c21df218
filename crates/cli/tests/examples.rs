//! The spec's example workflows (copied to `tests/examples/`), run through the API and through
//! `flowd run`, with the outcomes their README states. Examples 02 and 03 need triggers and
//! nodes that come with later work (timers, webhooks); 04's Workflow Error trigger too, so
//! only its failing presses are checked here.

mod common;

use common::*;
use flowd_model::schema::SchemaName;
use reqwest::Method;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

fn example(name: &str) -> (PathBuf, Value) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/examples")
        .join(name);
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    (path, doc)
}

/// The example as a `flowPost` body: without the server-owned fields.
fn post_body(doc: &Value) -> Value {
    let mut body = doc.clone();
    let map = body.as_object_mut().unwrap();
    for field in [
        "id",
        "flowId",
        "applicationId",
        "creationDate",
        "lastUpdated",
        "createdById",
        "createdByType",
        "lastUpdatedById",
        "lastUpdatedByType",
        "stats",
        "deletedInDevelop",
        "customNodeUseCount",
    ] {
        map.remove(field);
    }
    body
}

fn button_key(doc: &Value, label: &str) -> String {
    doc["triggers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["meta"]["label"] == label)
        .and_then(|t| t["key"].as_str())
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn tank_alert_through_the_api() {
    let (_, doc) = example("01-virtual-button-tank-alert.json");
    let server = Server::start().await;
    let app = server.create_application("examples").await;
    let flow = server.create_flow(&app, &post_body(&doc)).await;
    let flow_path = format!("/applications/{app}/flows/{}", flow["id"].as_str().unwrap());
    let before = chrono::Utc::now().timestamp_millis();
    for label in ["Simulate high level", "Simulate normal level"] {
        let key = button_key(&doc, label);
        let (status, body) = server.press(&flow_path, json!({"key": key})).await;
        assert_eq!(status, 200, "{body}");
        // One at a time, so the storage read below sees only the high press's writes.
        server
            .wait_for_runs(
                &flow_path,
                if label.contains("high") { 1 } else { 2 },
                Duration::from_secs(20),
            )
            .await;
    }
    let storage = server.storage(&flow_path).await;
    assert_eq!(storage["alertCount-tank-7"], 1);
    let alert = &storage["lastAlert-tank-7"];
    assert_eq!(alert["tankId"], "tank-7");
    assert_eq!(alert["percentFull"], 91.3);
    assert_eq!(
        alert["raw"],
        json!({"tankId": "tank-7", "levelCm": 182.5, "capacityCm": 200})
    );
    let at = alert["at"].as_i64().expect("at is epoch ms");
    assert!(
        at >= before - 1000 && at <= chrono::Utc::now().timestamp_millis(),
        "{at}"
    );
    let logs = server
        .wait_for_runs(&flow_path, 2, Duration::from_secs(20))
        .await;
    for entry in &logs {
        assert_eq!(
            (
                entry["runCount"].as_u64(),
                entry["pathsCompleted"].as_u64(),
                entry["pathsFailed"].as_u64()
            ),
            (Some(1), Some(1), Some(0))
        );
    }
}

#[test]
fn tank_alert_with_flowd_run() {
    let (path, doc) = example("01-virtual-button-tank-alert.json");
    let storage = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(storage.path(), "{}").unwrap();
    let run = |label: &str| {
        Command::new(env!("CARGO_BIN_EXE_flowd"))
            .arg("run")
            .arg(&path)
            .args(["--trigger", &button_key(&doc, label)])
            .arg("--storage")
            .arg(storage.path())
            .output()
            .unwrap()
    };
    let high = run("Simulate high level");
    let out = String::from_utf8_lossy(&high.stdout);
    assert!(high.status.success(), "{out}");
    assert!(out.contains("ALERT tank-7 at 91.3% (alert #1)"), "{out}");
    assert!(out.contains("1 path(s) completed, 0 failed"), "{out}");
    let second = run("Simulate high level");
    assert!(
        String::from_utf8_lossy(&second.stdout).contains("(alert #2)"),
        "storage carried over"
    );
    let normal = run("Simulate normal level");
    let out = String::from_utf8_lossy(&normal.stdout);
    assert!(
        normal.status.success() && out.contains("tank-7 level ok"),
        "{out}"
    );
    let kept: Value =
        serde_json::from_str(&std::fs::read_to_string(storage.path()).unwrap()).unwrap();
    assert_eq!(kept["alertCount-tank-7"], 2);
    assert!(kept["lastAlert-tank-7"].get("headroomCm").is_none());
}

#[tokio::test]
async fn failing_on_purpose_records_each_error() {
    let (path, doc) = example("04-failing-on-purpose.json");
    let server = Server::start().await;
    let app = server.create_application("examples").await;
    let flow = server.create_flow(&app, &post_body(&doc)).await;
    let flow_path = format!("/applications/{app}/flows/{}", flow["id"].as_str().unwrap());
    for label in ["Bad JSON", "TypeError", "Throw"] {
        let key = button_key(&doc, label);
        let (status, _) = server.press(&flow_path, json!({"key": key})).await;
        assert_eq!(status, 200);
    }
    // Three failed runs, and the three Workflow Error runs they started in the same flow.
    let logs = server
        .wait_for_runs(&flow_path, 6, Duration::from_secs(20))
        .await;
    let failed = logs
        .iter()
        .filter(|e| e["pathsFailed"].as_u64() >= Some(1))
        .count();
    assert_eq!(failed, 3, "{logs:?}");
    // The Workflow Error runs stored the last error and counted all three.
    let storage = server.storage(&flow_path).await;
    assert_eq!(storage["errorCount"], 3, "{storage}");
    assert!(
        storage["lastError"]["error"]["name"].is_string(),
        "{storage}"
    );
    assert!(storage["lastError"]["nodeId"].is_string(), "{storage}");
    let errors = server
        .ok(
            Method::GET,
            &format!("{flow_path}/errors?sortDirection=asc"),
            None,
            200,
            SchemaName::FlowErrors,
        )
        .await;
    let errors = errors["errors"].as_array().unwrap();
    let by_node = |id: &str| {
        errors
            .iter()
            .find(|e| e["nodeId"] == id)
            .unwrap_or_else(|| panic!("no error at {id}: {errors:?}"))
    };
    assert_eq!(by_node("decode")["error"]["name"], "ValidationError");
    assert_eq!(by_node("badFn")["error"]["name"], "FunctionNodeTypeError");
    assert!(by_node("badFn")["error"]["message"]
        .as_str()
        .unwrap()
        .contains("deep"));
    assert_eq!(by_node("bail")["error"]["name"], "ThrowError");
    assert_eq!(
        by_node("bail")["error"]["message"],
        "order A-1001 rejected on purpose"
    );
    assert_eq!(
        by_node("bail")["nodeLabel"],
        doc["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == "bail")
            .unwrap()["meta"]["label"]
    );

    // The same through the local runner: exit 1 and the error on stdout.
    let out = Command::new(env!("CARGO_BIN_EXE_flowd"))
        .arg("run")
        .arg(&path)
        .args(["--trigger", &button_key(&doc, "Throw")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ThrowError at node bail"));
}

#[tokio::test]
async fn loop_switch_array_through_the_api_and_flowd_run() {
    let (path, doc) = example("05-loop-switch-array.json");
    let out = Command::new(env!("CARGO_BIN_EXE_flowd"))
        .arg("run")
        .arg(&path)
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{printed}");
    assert!(
        printed.contains("4 readings: a:ok; b:warn(9); C:CRITICAL; d:unknown (critical: 1)"),
        "{printed}"
    );

    // Through the API: the flow saves (loop groups are checked) and a press runs it cleanly.
    let server = Server::start().await;
    let app = server.create_application("examples").await;
    let flow = server.create_flow(&app, &post_body(&doc)).await;
    let flow_path = format!("/applications/{app}/flows/{}", flow["id"].as_str().unwrap());
    let key = doc["triggers"][0]["key"].as_str().unwrap();
    let (status, _) = server.press(&flow_path, json!({"key": key})).await;
    assert_eq!(status, 200);
    let logs = server
        .wait_for_runs(&flow_path, 1, Duration::from_secs(20))
        .await;
    assert_eq!(
        (
            logs[0]["pathsCompleted"].as_u64(),
            logs[0]["pathsFailed"].as_u64()
        ),
        (Some(1), Some(0)),
        "{logs:?}"
    );
}

#[tokio::test]
async fn timer_rollup_saves_and_runs_each_branch() {
    let (path, doc) = example("02-timer-rollup.json");
    // Both timers (an interval and a 6-field weekday cron in New York time) compile when saved.
    let server = Server::start().await;
    let app = server.create_application("examples").await;
    let flow = server.create_flow(&app, &post_body(&doc)).await;
    assert_eq!(flow["triggers"][1]["config"]["cron"], "0 0 6 * * 1,2,3,4,5");

    let hourly = button_key(&doc, "Every hour");
    let run = |storage: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_flowd"))
            .arg("run")
            .arg(&path)
            .args(["--trigger", &hourly])
            .arg("--storage")
            .arg(storage)
            .output()
            .unwrap()
    };
    // No counter yet: the JSON default 0 takes the "no alerts" branch.
    let storage = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(storage.path(), "{}").unwrap();
    let out = run(storage.path());
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{printed}");
    assert!(
        printed.contains(&format!("no alerts (trigger {hourly} / timer)")),
        "{printed}"
    );
    // Four alerts: kept outside New York business hours, rolled up (and cleared) inside them.
    std::fs::write(storage.path(), r#"{"alertCount-tank-7": 4}"#).unwrap();
    let out = run(storage.path());
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{printed}");
    let kept: Value =
        serde_json::from_str(&std::fs::read_to_string(storage.path()).unwrap()).unwrap();
    if printed.contains("outside business hours, keeping 4") {
        assert_eq!(kept["alertCount-tank-7"], 4, "{printed}");
    } else {
        assert!(
            printed.contains("4 alert(s) for tank-7 since last rollup"),
            "{printed}"
        );
        assert!(kept.get("alertCount-tank-7").is_none(), "{kept}");
    }
}

#[tokio::test]
async fn webhook_function_replies_through_the_webhook() {
    let (_, doc) = example("03-webhook-function.json");
    let server = Server::start().await;
    let app = server.create_application("examples").await;
    let hook = server
        .ok(
            Method::POST,
            &format!("/applications/{app}/webhooks"),
            Some(&json!({"name": "readings", "waitForReply": true})),
            201,
            SchemaName::Webhook,
        )
        .await;
    // The example's webhook trigger names its own webhook; ours has another id.
    let mut body = post_body(&doc);
    body["triggers"][0]["key"] = hook["id"].clone();
    let flow = server.create_flow(&app, &body).await;
    let flow_path = format!("/applications/{app}/flows/{}", flow["id"].as_str().unwrap());
    let url = format!(
        "{}/webhooks/{}",
        server.base,
        hook["token"].as_str().unwrap()
    );
    let client = reqwest::Client::new();

    let answer = client
        .post(&url)
        .json(&json!({"sensorId": "s1", "readings": [1, 2, 3.5]}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let summary: Value = answer.json().await.unwrap();
    assert_eq!(summary["sensorId"], "s1");
    assert_eq!(summary["count"], 3);
    assert_eq!(summary["mean"], 2.17);
    assert_eq!(summary["min"], 1);
    assert_eq!(summary["max"], 3.5);
    assert!(summary["receivedAt"].is_string(), "{summary}");
    // The reply and the parallel debug branch: two completed paths.
    let logs = server
        .wait_for_runs(&flow_path, 1, Duration::from_secs(20))
        .await;
    assert_eq!(logs[0]["pathsCompleted"], 2, "{logs:?}");

    let answer = client
        .post(&url)
        .json(&json!({"readings": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
    let refused: Value = answer.json().await.unwrap();
    assert_eq!(refused["error"], "invalid body");
    assert!(
        !refused["details"].as_array().unwrap().is_empty(),
        "{refused}"
    );

    // A halting error: the Workflow Error run gets the pending reply id and answers 500.
    let mut nodes = body["nodes"].clone();
    for node in nodes.as_array_mut().unwrap() {
        if node["id"] == "summarise" {
            node["config"]["script"] = json!("null.readings;");
        }
    }
    server
        .ok(
            Method::PATCH,
            &flow_path,
            Some(&json!({"nodes": nodes})),
            200,
            SchemaName::Flow,
        )
        .await;
    let answer = client
        .post(&url)
        .json(&json!({"sensorId": "s1", "readings": [1]}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 500);
    assert_eq!(
        answer.json::<Value>().await.unwrap(),
        json!({"error": "FunctionNodeTypeError", "node": "summarise"})
    );
}
