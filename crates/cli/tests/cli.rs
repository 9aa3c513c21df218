//! The command line beyond `serve`'s basics: user tokens made with `flowd token`, settings from
//! the environment, and JSON logs.

mod common;

use common::*;
use flowd_model::schema::SchemaName;
use reqwest::Method;
use serde_json::{json, Value};
use std::process::Command;

fn flowd(args: &[&str], data_dir: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_flowd"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("FLOWD_DATA_DIR")
        .output()
        .expect("flowd runs")
}

fn make_token(data_dir: &std::path::Path, scopes: &[&str]) -> String {
    let mut args = vec!["token", "create", "--name", "cli"];
    for scope in scopes {
        args.extend(["--scope", scope]);
    }
    let out = flowd(&args, data_dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test]
async fn user_tokens_from_the_command_line_follow_their_scopes() {
    let server = Server::start().await;
    let app = server.create_application("cli").await;
    let flow = server.create_flow(&app, &button_flow("f")).await;
    let flow_path = format!("/applications/{app}/flows/{}", flow["id"].as_str().unwrap());

    // Read-only user token: reads everywhere, writes nowhere.
    let reader = make_token(&server.data_dir, &["all.User.read"]);
    assert_eq!(
        server
            .call(Method::GET, "/applications", Some(&reader), None)
            .await
            .0,
        200
    );
    assert_eq!(
        server
            .call(
                Method::GET,
                &format!("{flow_path}/storage"),
                Some(&reader),
                None
            )
            .await
            .0,
        200
    );
    assert_error(
        server
            .call(
                Method::PATCH,
                &format!("{flow_path}/storage"),
                Some(&reader),
                Some(&json!({"key": "k", "value": 1})),
            )
            .await,
        403,
        "Forbidden",
        "flow.setStorageEntry",
    );

    // Bounded user token: writes, but cannot manage tokens.
    let bounded = make_token(&server.data_dir, &["all.User.bounded"]);
    let (status, _) = server
        .call(
            Method::PATCH,
            &flow_path,
            Some(&bounded),
            Some(&json!({"name": "renamed"})),
        )
        .await;
    assert_eq!(status, 200);
    assert_error(
        server
            .call(
                Method::POST,
                &format!("/applications/{app}/tokens"),
                Some(&bounded),
                Some(&json!({"name": "x"})),
            )
            .await,
        403,
        "Forbidden",
        "applicationApiTokens.post",
    );
    assert_eq!(
        server
            .call(
                Method::GET,
                &format!("/applications/{app}/tokens"),
                Some(&bounded),
                None
            )
            .await
            .0,
        200
    );

    // Listing shows them; revoking one ends it; the owner token cannot be revoked.
    let list = flowd(&["token", "list"], &server.data_dir);
    let listing = String::from_utf8(list.stdout).unwrap();
    assert_eq!(listing.lines().count(), 3, "{listing}");
    let bounded_id = listing
        .lines()
        .find(|l| l.contains("all.User.bounded"))
        .and_then(|l| l.split('\t').next())
        .unwrap()
        .to_owned();
    assert!(flowd(&["token", "revoke", &bounded_id], &server.data_dir)
        .status
        .success());
    // The server trusts a token it has just seen for up to 5 s (its token cache); a token
    // revoked from another process stops working within that.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(7);
    loop {
        let answer = server
            .call(Method::GET, "/applications", Some(&bounded), None)
            .await;
        if answer.0 == 401 {
            assert_error(answer, 401, "Unauthorized", "");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the revoked token still works"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let owner_id = listing
        .lines()
        .find(|l| l.contains("\towner\t"))
        .and_then(|l| l.split('\t').next())
        .unwrap()
        .to_owned();
    let refused = flowd(&["token", "revoke", &owner_id], &server.data_dir);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("owner"));
}

#[tokio::test]
async fn token_create_refuses_bad_input() {
    let server = Server::start().await;
    for (args, needle) in [
        (
            vec![
                "token",
                "create",
                "--name",
                "x",
                "--scope",
                "all.Everything",
            ],
            "scope",
        ),
        (
            vec!["token", "create", "--name", "owner", "--scope", "all.User"],
            "reserved",
        ),
        (
            vec![
                "token",
                "create",
                "--name",
                "x",
                "--scope",
                "all.User",
                "--expires",
                "2001-01-01T00:00:00Z",
            ],
            "expirationDate",
        ),
    ] {
        let out = flowd(&args, &server.data_dir);
        assert!(!out.status.success(), "{args:?} should fail");
        let message = String::from_utf8_lossy(&out.stderr);
        assert!(message.contains(needle), "{args:?}: {message}");
    }
    let empty = tempfile::tempdir().unwrap();
    let out = flowd(&["token", "list"], empty.path());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no flowd database"));
}

#[tokio::test]
async fn settings_come_from_the_environment_and_logs_can_be_json() {
    let temp = tempfile::tempdir().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_flowd"))
        .args(["serve", "--log-format", "json"])
        .env("FLOWD_LISTEN", "127.0.0.1:0")
        .env("FLOWD_DATA_DIR", temp.path())
        .env("FLOWD_OWNER_TOKEN", OWNER_TOKEN)
        .env("FLOWD_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !temp.path().join("listen-addr").exists() {
        assert!(std::time::Instant::now() < deadline, "flowd did not start");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        temp.path().join("flowd.db").exists(),
        "FLOWD_DATA_DIR was used"
    );
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let logs = String::from_utf8(output.stderr).unwrap();
    let lines: Vec<Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).expect("every log line is JSON"))
        .collect();
    assert!(
        lines.iter().any(|l| l["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("listening on"))),
        "{logs}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "store closed; bye"),
        "{logs}"
    );
}

#[tokio::test]
async fn a_config_file_sets_limits() {
    let server = Server::start_with_config("storage-max-keys = 2\nmax-body-bytes = 2048\n").await;
    let app = server.create_application("limits").await;
    let flow = server.create_flow(&app, &button_flow("f")).await;
    let storage = format!(
        "/applications/{app}/flows/{}/storage",
        flow["id"].as_str().unwrap()
    );
    for key in ["a", "b"] {
        server
            .ok(
                Method::PATCH,
                &storage,
                Some(&json!({"key": key, "value": 1})),
                200,
                SchemaName::Success,
            )
            .await;
    }
    server
        .ok(
            Method::PATCH,
            &storage,
            Some(&json!({"key": "a", "value": 2})),
            200,
            SchemaName::Success,
        )
        .await;
    assert_error(
        server
            .call(
                Method::PATCH,
                &storage,
                Some(OWNER_TOKEN),
                Some(&json!({"key": "c", "value": 1})),
            )
            .await,
        400,
        "Validation",
        "2 keys",
    );
    let big = json!({"name": "x".repeat(3000)});
    assert_error(
        server
            .call(Method::POST, "/applications", Some(OWNER_TOKEN), Some(&big))
            .await,
        413,
        "PayloadTooLarge",
        "2048",
    );
}
