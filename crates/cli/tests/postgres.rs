//! `flowd serve --store postgres://…`: the real binary on a PostgreSQL schema of its own (a
//! scratch schema in the database at `FLOWD_TEST_POSTGRES`, by default
//! `postgres://postgres@127.0.0.1:5432/test`, named in the URL as
//! `?options=-c%20search_path%3D<schema>` and dropped after the test). Without that database
//! the test fails; it does not skip.

mod common;

use common::{Server, OWNER_TOKEN};
use flowd_store::postgres::ScratchSchema;
use reqwest::Method;
use serde_json::{json, Value};
use std::process::Command;
use std::time::{Duration, Instant};

/// Polls the flow's storage until `key` holds `expected`.
async fn wait_for_storage(server: &Server, flow_path: &str, key: &str, expected: Value) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let storage = server.storage(flow_path).await;
        if storage[key] == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{key} did not reach {expected}: {storage}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Presses the counting button; the press is accepted.
async fn press(server: &Server, flow_path: &str) {
    let (status, body) = server.press(flow_path, json!({"key": "count"})).await;
    assert_eq!(status, 200, "press answered {status}: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_from_postgres_and_keeps_everything_across_restarts() {
    let schema = ScratchSchema::for_tests().await;
    let store = schema.url();
    let first_dir = tempfile::tempdir().expect("temp dir");
    let mut server =
        Server::start_with(first_dir.path(), Some(OWNER_TOKEN), &["--store", &store]).await;

    let app = server.create_application("On PostgreSQL").await;
    let flow = server
        .create_flow(
            &app,
            &json!({
                "name": "counter",
                "triggers": [{"type": "virtualButton", "key": "count", "outputIds": [["incr"]]}],
                "nodes": [{"id": "incr", "type": "StoreValueNode",
                           "config": {"keyName": "presses", "valueType": "incr", "value": "1"},
                           "outputIds": [[]]}]
            }),
        )
        .await;
    let flow_id = flow["id"].as_str().expect("flow id").to_owned();
    let flow_path = format!("/applications/{app}/flows/{flow_id}");
    for _ in 0..3 {
        press(&server, &flow_path).await;
    }
    wait_for_storage(&server, &flow_path, "presses", json!(3)).await;
    server
        .wait_for_runs(&flow_path, 3, Duration::from_secs(15))
        .await;
    let (exit, _) = server.stop();
    assert!(exit.success(), "flowd exited with {exit}");
    // The data is in PostgreSQL, not in the data dir.
    assert!(!first_dir.path().join("flowd.db").exists());

    // Another process on another (empty) data dir finds it all.
    let second_dir = tempfile::tempdir().expect("temp dir");
    let mut server =
        Server::start_with(second_dir.path(), Some(OWNER_TOKEN), &["--store", &store]).await;
    let (status, apps) = server
        .call(Method::GET, "/applications", Some(OWNER_TOKEN), None)
        .await;
    assert_eq!(status, 200, "{apps}");
    assert_eq!(apps["count"], 1, "{apps}");
    assert_eq!(apps["items"][0]["name"], "On PostgreSQL");
    let (status, again) = server
        .call(Method::GET, &flow_path, Some(OWNER_TOKEN), None)
        .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["name"], "counter");
    assert_eq!(server.storage(&flow_path).await, json!({"presses": 3}));
    let logs = server
        .wait_for_runs(&flow_path, 3, Duration::from_secs(15))
        .await;
    assert_eq!(logs.len(), 3);
    // And it goes on counting.
    press(&server, &flow_path).await;
    wait_for_storage(&server, &flow_path, "presses", json!(4)).await;
    let (exit, _) = server.stop();
    assert!(exit.success(), "flowd exited with {exit}");

    // `flowd token` reaches the same store.
    let listed = Command::new(env!("CARGO_BIN_EXE_flowd"))
        .args(["token", "list", "--store", &store])
        .env_remove("FLOWD_STORE")
        .env("FLOWD_LOG", "warn")
        .output()
        .expect("flowd token list runs");
    let stdout = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert!(
        stdout.contains("all.User"),
        "owner token not listed: {stdout}"
    );
}

#[test]
fn an_unknown_store_is_a_config_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    for command in [
        vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--store",
            "mysql://root@db/flowd",
        ],
        vec!["token", "list", "--store", "mysql://root@db/flowd"],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_flowd"))
            .args(&command)
            .arg("--data-dir")
            .arg(dir.path())
            .env_remove("FLOWD_STORE")
            .output()
            .expect("flowd runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{command:?}: {stderr}");
        assert!(
            stderr.contains("\"mysql://root@db/flowd\"") && stderr.contains("postgres://"),
            "{command:?}: {stderr}"
        );
    }
}
