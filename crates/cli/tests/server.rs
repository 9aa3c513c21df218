//! The server as a user meets it: start-up, owner token, every resource driven end to end with
//! responses checked against the official schemas, restarts and shutdown.

mod common;

use common::*;
use flowd_model::schema::SchemaName;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn health_and_readiness_answer_without_a_token() {
    let server = Server::start().await;
    let (status, body) = server.call(Method::GET, "/health", None, None).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
    // One node: the store answers and the queue is this process's own.
    let (status, body) = server.call(Method::GET, "/ready", None, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"status": "ok", "queue": "local"}));
}

#[tokio::test]
async fn nodes_lists_what_flowd_runs_with_config_fields() {
    let server = Server::start().await;
    let (status, body) = server.call(Method::GET, "/nodes", None, None).await;
    assert_eq!(status, 200);
    let nodes = body["nodes"].as_array().expect("nodes");
    let fields_of = |type_name: &str| -> Vec<String> {
        nodes
            .iter()
            .find(|n| n["type"] == type_name)
            .unwrap_or_else(|| panic!("{type_name} not listed: {body}"))["configFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        fields_of("MqttMessageNode"),
        ["integrationId", "topicTemplate", "messageTemplate"]
    );
    assert!(fields_of("HttpNode").contains(&"uriTemplate".to_owned()));
    assert!(fields_of("CSVEncodeNode").contains(&"delimiterTemplate".to_owned()));
    assert!(fields_of("CryptoVerifyNode").contains(&"signatureTemplate".to_owned()));
    assert!(!fields_of("Base64EncodeNode").contains(&"stringOutput".to_owned()));
    // What is listed as runnable is exactly what a saved flow may run; the rest is listed apart.
    let unsupported = body["unsupportedNodes"].as_array().unwrap();
    assert!(unsupported.iter().any(|t| t == "GetDeviceNode"), "{body}");
    assert!(!unsupported.iter().any(|t| t == "MqttMessageNode"));
    assert!(body["triggers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["type"] == "virtualButton"));
}

#[tokio::test]
async fn first_start_creates_an_owner_token_once() {
    let temp = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(temp.path(), None).await;
    let token_file = temp.path().join("owner-token");
    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_owned();
    assert!(token.len() >= 43, "token too short: {token}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let (status, _) = server
        .call(Method::GET, "/applications", Some(&token), None)
        .await;
    assert_eq!(status, 200);
    let (exit, printed) = server.stop();
    assert!(exit.success());
    assert!(
        printed.contains(&token),
        "the new token is printed once: {printed}"
    );
    // A second start keeps the same token and prints no token.
    let mut again = Server::start_in(temp.path(), None).await;
    let (status, _) = again
        .call(Method::GET, "/applications", Some(&token), None)
        .await;
    assert_eq!(status, 200);
    let (exit, printed) = again.stop();
    assert!(exit.success());
    assert!(!printed.contains(&token), "{printed}");
}

#[tokio::test]
async fn owner_token_from_the_environment_replaces_the_old_one() {
    let temp = tempfile::tempdir().unwrap();
    let mut first = Server::start_in(temp.path(), None).await;
    let generated = std::fs::read_to_string(temp.path().join("owner-token"))
        .unwrap()
        .trim()
        .to_owned();
    first.stop();
    let server = Server::start_in(temp.path(), Some(OWNER_TOKEN)).await;
    let (status, _) = server
        .call(Method::GET, "/applications", Some(OWNER_TOKEN), None)
        .await;
    assert_eq!(status, 200);
    assert_error(
        server
            .call(Method::GET, "/applications", Some(&generated), None)
            .await,
        401,
        "Unauthorized",
        "",
    );
}

#[tokio::test]
async fn data_survives_a_restart_and_sigterm_exits_cleanly() {
    let temp = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(temp.path(), Some(OWNER_TOKEN)).await;
    let app = server.create_application("persisted").await;
    let flow = server.create_flow(&app, &button_flow("kept")).await;
    let flow_id = flow["id"].as_str().unwrap().to_owned();
    let storage = format!("/applications/{app}/flows/{flow_id}/storage");
    server
        .ok(
            Method::PATCH,
            &storage,
            Some(&json!({"key": "k", "value": {"n": 1}})),
            200,
            SchemaName::Success,
        )
        .await;
    let (token, _) = server.create_token(&app, &["all.Application.read"]).await;
    let (status, _) = server.stop();
    assert!(status.success(), "flowd exited with {status} after SIGTERM");

    let server = Server::start_in(temp.path(), Some(OWNER_TOKEN)).await;
    let entries = server
        .ok(
            Method::GET,
            &storage,
            None,
            200,
            SchemaName::FlowStorageEntries,
        )
        .await;
    assert_eq!(entries, json!({"k": {"n": 1}}));
    let flow_again = server
        .ok(
            Method::GET,
            &format!("/applications/{app}/flows/{flow_id}"),
            None,
            200,
            SchemaName::Flow,
        )
        .await;
    assert_eq!(flow_again["name"], "kept");
    let (status, _) = server.call(Method::GET, &storage, Some(&token), None).await;
    assert_eq!(status, 200, "application token survives a restart");
}

#[tokio::test]
async fn applications_crud_and_listing() {
    let server = Server::start().await;
    for name in ["beta", "Alpha", "gamma"] {
        server.create_application(name).await;
    }
    let list = server
        .ok(
            Method::GET,
            "/applications?sortField=name&sortDirection=desc",
            None,
            200,
            SchemaName::Applications,
        )
        .await;
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["gamma", "beta", "Alpha"]);
    assert_eq!(list["totalCount"], 3);
    let page = server
        .ok(
            Method::GET,
            "/applications?perPage=2&page=1",
            None,
            200,
            SchemaName::Applications,
        )
        .await;
    assert_eq!(page["count"], 1);
    assert_eq!(page["items"][0]["name"], "gamma");
    let filtered = server
        .ok(
            Method::GET,
            "/applications?filterField=name&filter=*ET*",
            None,
            200,
            SchemaName::Applications,
        )
        .await;
    assert_eq!(filtered["totalCount"], 1);

    let app = server.create_application("mine").await;
    let path = format!("/applications/{app}");
    let got = server
        .ok(Method::GET, &path, None, 200, SchemaName::Application)
        .await;
    assert_eq!(got["_type"], "application");
    assert_eq!(got["_links"]["self"]["href"], path);
    assert_eq!(got["applicationId"], app);
    let no_links = server
        .ok(
            Method::GET,
            &format!("{path}?_links=false&_actions=false&_embedded=true"),
            None,
            200,
            SchemaName::Application,
        )
        .await;
    assert!(no_links.get("_links").is_none());
    let patched = server
        .ok(
            Method::PATCH,
            &path,
            Some(&json!({"description": "d", "globals": [{"key": "limit", "json": "75"}]})),
            200,
            SchemaName::Application,
        )
        .await;
    assert_eq!(patched["name"], "mine");
    assert_eq!(patched["globals"][0]["json"], "75");
    server
        .ok(Method::DELETE, &path, None, 200, SchemaName::Success)
        .await;
    assert_error(
        server
            .call(Method::GET, &path, Some(OWNER_TOKEN), None)
            .await,
        404,
        "NotFound",
        "Application",
    );
}

#[tokio::test]
async fn deleting_an_application_deletes_its_flows_and_tokens() {
    let server = Server::start().await;
    let app = server.create_application("doomed").await;
    let flow = server.create_flow(&app, &button_flow("f")).await;
    let (token, _) = server.create_token(&app, &["all.Application"]).await;
    server
        .ok(
            Method::DELETE,
            &format!("/applications/{app}"),
            None,
            200,
            SchemaName::Success,
        )
        .await;
    assert_error(
        server
            .call(
                Method::GET,
                &format!("/applications/{app}/flows/{}", flow["id"].as_str().unwrap()),
                Some(&token),
                None,
            )
            .await,
        401,
        "Unauthorized",
        "",
    );
}

#[tokio::test]
async fn tokens_are_shown_once_and_honour_status_and_expiry() {
    let server = Server::start().await;
    let app = server.create_application("tokens").await;
    let (token, doc) = server.create_token(&app, &["flow.*", "flows.get"]).await;
    let token_id = doc["id"].as_str().unwrap().to_owned();
    assert_eq!(doc["scope"], json!(["flow.*", "flows.get"]));
    assert_eq!(doc["status"], "active");
    let path = format!("/applications/{app}/tokens/{token_id}");
    let fetched = server
        .ok(Method::GET, &path, None, 200, SchemaName::ApiToken)
        .await;
    assert!(
        fetched.get("token").is_none(),
        "the token value is shown only on creation"
    );
    let list = server
        .ok(
            Method::GET,
            &format!("/applications/{app}/tokens"),
            None,
            200,
            SchemaName::ApiTokens,
        )
        .await;
    assert_eq!(list["totalCount"], 1);
    assert!(list["items"][0].get("token").is_none());

    let flows = format!("/applications/{app}/flows");
    assert_eq!(
        server.call(Method::GET, &flows, Some(&token), None).await.0,
        200
    );
    server
        .ok(
            Method::PATCH,
            &path,
            Some(&json!({"status": "inactive"})),
            200,
            SchemaName::ApiToken,
        )
        .await;
    assert_error(
        server.call(Method::GET, &flows, Some(&token), None).await,
        401,
        "Unauthorized",
        "inactive",
    );
    server
        .ok(
            Method::PATCH,
            &path,
            Some(&json!({"status": "active"})),
            200,
            SchemaName::ApiToken,
        )
        .await;
    assert_eq!(
        server.call(Method::GET, &flows, Some(&token), None).await.0,
        200
    );

    // Expiry: a token that expires in a second stops working after it.
    let soon = flowd_model::time::format_iso(chrono_now_plus_ms(1200));
    let body = json!({"name": "short", "expirationDate": soon});
    let short = server
        .ok(
            Method::POST,
            &format!("/applications/{app}/tokens"),
            Some(&body),
            201,
            SchemaName::ApiToken,
        )
        .await;
    let short_token = short["token"].as_str().unwrap();
    assert_eq!(
        server
            .call(Method::GET, &flows, Some(short_token), None)
            .await
            .0,
        200
    );
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_error(
        server
            .call(Method::GET, &flows, Some(short_token), None)
            .await,
        401,
        "Unauthorized",
        "expired",
    );

    server
        .ok(Method::DELETE, &path, None, 200, SchemaName::Success)
        .await;
    assert_error(
        server.call(Method::GET, &flows, Some(&token), None).await,
        401,
        "Unauthorized",
        "",
    );
}

fn chrono_now_plus_ms(ms: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now() + chrono::Duration::milliseconds(ms)
}

#[tokio::test]
async fn flows_are_created_listed_patched_and_deleted() {
    let server = Server::start().await;
    let app = server.create_application("flows").await;
    let flow = server.create_flow(&app, &button_flow("Zeta")).await;
    assert_eq!(flow["enabled"], true, "decision 3: enabled by default");
    assert_eq!(flow["flowClass"], "cloud");
    assert_eq!(flow["flowId"], flow["id"]);
    assert_eq!(flow["_type"], "flow");
    server
        .create_flow(
            &app,
            &json!({"name": "alpha", "triggers": [{"type": "virtualButton"}]}),
        )
        .await;
    server
        .create_flow(&app, &json!({"name": "edgy", "flowClass": "edge"}))
        .await;

    let flows = format!("/applications/{app}/flows");
    let list = server
        .ok(Method::GET, &flows, None, 200, SchemaName::Flows)
        .await;
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["alpha", "Zeta"],
        "cloud flows by name, case-insensitively"
    );
    let generated_key = list["items"][0]["triggers"][0]["key"].as_str().unwrap();
    assert!(
        generated_key.starts_with(list["items"][0]["id"].as_str().unwrap()),
        "{generated_key}"
    );
    let edge = server
        .ok(
            Method::GET,
            &format!("{flows}?flowClass=edge"),
            None,
            200,
            SchemaName::Flows,
        )
        .await;
    assert_eq!(edge["totalCount"], 1);
    let globbed = server
        .ok(
            Method::GET,
            &format!("{flows}?filter=Z*"),
            None,
            200,
            SchemaName::Flows,
        )
        .await;
    assert_eq!(globbed["totalCount"], 1);
    let by_trigger = server
        .ok(
            Method::GET,
            &format!("{flows}?triggerFilter[0][type]=virtualButton&triggerFilter[0][key]=btn"),
            None,
            200,
            SchemaName::Flows,
        )
        .await;
    assert_eq!(by_trigger["totalCount"], 1);
    assert_eq!(by_trigger["items"][0]["name"], "Zeta");
    let query = urlencode(&json!({"name": {"$startsWith": "ed"}}).to_string());
    let advanced = server
        .ok(
            Method::GET,
            &format!("{flows}?query={query}"),
            None,
            200,
            SchemaName::Flows,
        )
        .await;
    assert_eq!(
        advanced["totalCount"], 1,
        "the advanced query overrides flowClass: {advanced}"
    );

    let path = format!("{flows}/{}", flow["id"].as_str().unwrap());
    let patched = server
        .ok(
            Method::PATCH,
            &path,
            Some(&json!({"name": "renamed", "enabled": false, "nodes": []   , "triggers": []})),
            200,
            SchemaName::Flow,
        )
        .await;
    assert_eq!(patched["name"], "renamed");
    assert_eq!(patched["enabled"], false);
    assert_eq!(patched["nodes"], json!([]));
    assert_eq!(patched["description"], flow["description"], "scalars merge");
    let untouched = server
        .ok(
            Method::PATCH,
            &path,
            Some(&json!({"description": "x"})),
            200,
            SchemaName::Flow,
        )
        .await;
    assert_eq!(untouched["name"], "renamed");

    server
        .ok(Method::DELETE, &path, None, 200, SchemaName::Success)
        .await;
    assert_error(
        server
            .call(Method::GET, &path, Some(OWNER_TOKEN), None)
            .await,
        404,
        "NotFound",
        "Flow",
    );
    assert_error(
        server
            .call(
                Method::GET,
                &format!("{path}/storage"),
                Some(OWNER_TOKEN),
                None,
            )
            .await,
        404,
        "NotFound",
        "Flow",
    );
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn storage_follows_the_seed() {
    let server = Server::start().await;
    let app = server.create_application("storage").await;
    let flow = server.create_flow(&app, &button_flow("s")).await;
    let base = format!("/applications/{app}/flows/{}", flow["id"].as_str().unwrap());
    let storage = format!("{base}/storage");
    for (key, value) in [
        ("myStorageKey", json!(12)),
        ("hello", json!("hello")),
        ("other key", json!([13, 21, 34])),
        ("é", json!({"a": null})),
    ] {
        server
            .ok(
                Method::PATCH,
                &storage,
                Some(&json!({"key": key, "value": value})),
                200,
                SchemaName::Success,
            )
            .await;
    }
    let entries = server
        .ok(
            Method::GET,
            &storage,
            None,
            200,
            SchemaName::FlowStorageEntries,
        )
        .await;
    assert_eq!(
        entries,
        json!({"myStorageKey": 12, "hello": "hello", "other key": [13, 21, 34], "é": {"a": null}})
    );
    let meta = server
        .ok(
            Method::GET,
            &format!("{base}/storage-metadata"),
            None,
            200,
            SchemaName::FlowStorageMetadata,
        )
        .await;
    let expected: usize = [
        ("myStorageKey", "12"),
        ("hello", "\"hello\""),
        ("other key", "[13,21,34]"),
        ("é", "{\"a\":null}"),
    ]
    .iter()
    .map(|(k, v)| k.len() + v.len())
    .sum();
    assert_eq!(meta, json!({"memoryUsed": expected, "keysCount": 4}));

    // A key without a value deletes it (decision 8).
    server
        .ok(
            Method::PATCH,
            &storage,
            Some(&json!({"key": "hello"})),
            200,
            SchemaName::Success,
        )
        .await;
    let entries = server
        .ok(
            Method::GET,
            &storage,
            None,
            200,
            SchemaName::FlowStorageEntries,
        )
        .await;
    assert!(entries.get("hello").is_none());

    // 16 KB per value.
    let big = "x".repeat(16 * 1024);
    assert_error(
        server
            .call(
                Method::PATCH,
                &storage,
                Some(OWNER_TOKEN),
                Some(&json!({"key": "big", "value": big})),
            )
            .await,
        400,
        "Validation",
        "value",
    );
    let key256 = "k".repeat(256);
    assert_error(
        server
            .call(
                Method::PATCH,
                &storage,
                Some(OWNER_TOKEN),
                Some(&json!({"key": key256, "value": 1})),
            )
            .await,
        400,
        "Validation",
        "key",
    );
    assert_error(
        server
            .call(
                Method::PATCH,
                &storage,
                Some(OWNER_TOKEN),
                Some(&json!({"key": "", "value": 1})),
            )
            .await,
        400,
        "Validation",
        "key",
    );
    assert_error(
        server
            .call(
                Method::PATCH,
                &storage,
                Some(OWNER_TOKEN),
                Some(&json!({"value": 1})),
            )
            .await,
        400,
        "Validation",
        "key",
    );

    let cleared = server
        .ok(
            Method::DELETE,
            &storage,
            None,
            200,
            SchemaName::FlowStorageEntries,
        )
        .await;
    assert_eq!(cleared, json!({}));
    let meta = server
        .ok(
            Method::GET,
            &format!("{base}/storage-metadata"),
            None,
            200,
            SchemaName::FlowStorageMetadata,
        )
        .await;
    assert_eq!(meta, json!({"memoryUsed": 0, "keysCount": 0}));
}

#[tokio::test]
async fn versions_snapshot_name_and_default() {
    let server = Server::start().await;
    let app = server.create_application("versions").await;
    let flow = server.create_flow(&app, &button_flow("v")).await;
    let flow_path = format!("/applications/{app}/flows/{}", flow["id"].as_str().unwrap());
    let versions = format!("{flow_path}/versions");
    let body = json!({"version": "v1", "notes": "first", "triggers": [{"type": "virtualButton", "key": "b"}]});
    let v1 = server
        .ok(
            Method::POST,
            &versions,
            Some(&body),
            201,
            SchemaName::FlowVersion,
        )
        .await;
    assert_eq!(
        v1["nodes"],
        json!([]),
        "omitted parts are empty, develop is not copied"
    );
    assert_eq!(v1["flowVersionId"], v1["id"]);
    assert_eq!(v1["enabled"], true);
    let v1_id = v1["id"].as_str().unwrap().to_owned();

    assert_error(
        server
            .call(Method::POST, &versions, Some(OWNER_TOKEN), Some(&body))
            .await,
        400,
        "Validation",
        "allowReplacement",
    );
    let replaced = server
        .ok(
            Method::POST,
            &format!("{versions}?allowReplacement=true"),
            Some(&json!({"version": "v1", "notes": "second"})),
            201,
            SchemaName::FlowVersion,
        )
        .await;
    assert_eq!(replaced["id"], v1_id, "a replacement keeps the id");
    assert_eq!(replaced["notes"], "second");
    for reserved in ["develop", "default"] {
        assert_error(
            server
                .call(
                    Method::POST,
                    &versions,
                    Some(OWNER_TOKEN),
                    Some(&json!({"version": reserved})),
                )
                .await,
            400,
            "Validation",
            reserved,
        );
    }
    server
        .ok(
            Method::POST,
            &versions,
            Some(&json!({"version": "v2"})),
            201,
            SchemaName::FlowVersion,
        )
        .await;

    let list = server
        .ok(
            Method::GET,
            &format!("{versions}?sortDirection=desc"),
            None,
            200,
            SchemaName::FlowVersions,
        )
        .await;
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["v2", "v1"]);
    let by_name = server
        .ok(
            Method::GET,
            &format!("{versions}/v1"),
            None,
            200,
            SchemaName::FlowVersion,
        )
        .await;
    assert_eq!(by_name["id"], v1_id);
    let by_id = server
        .ok(
            Method::GET,
            &format!("{versions}/{v1_id}"),
            None,
            200,
            SchemaName::FlowVersion,
        )
        .await;
    assert_eq!(by_id["version"], "v1");
    let patched = server
        .ok(
            Method::PATCH,
            &format!("{versions}/v1"),
            Some(&json!({"notes": "n", "enabled": false})),
            200,
            SchemaName::FlowVersion,
        )
        .await;
    assert_eq!(
        (patched["notes"].as_str(), patched["enabled"].as_bool()),
        (Some("n"), Some(false))
    );
    assert_error(
        server
            .call(
                Method::PATCH,
                &format!("{versions}/v1"),
                Some(OWNER_TOKEN),
                Some(&json!({"nodes": []})),
            )
            .await,
        400,
        "Validation",
        "nodes",
    );

    // The default version cannot be deleted; an unknown one cannot become default.
    let with_default = server
        .ok(
            Method::PATCH,
            &flow_path,
            Some(&json!({"defaultVersionId": v1_id})),
            200,
            SchemaName::Flow,
        )
        .await;
    assert_eq!(with_default["defaultVersionId"], v1_id);
    assert_error(
        server
            .call(
                Method::DELETE,
                &format!("{versions}/v1"),
                Some(OWNER_TOKEN),
                None,
            )
            .await,
        400,
        "Validation",
        "default",
    );
    assert_error(
        server
            .call(
                Method::PATCH,
                &flow_path,
                Some(OWNER_TOKEN),
                Some(&json!({"defaultVersionId": "0123456789abcdef01234567"})),
            )
            .await,
        400,
        "Validation",
        "defaultVersionId",
    );
    let bulk = server
        .ok(
            Method::POST,
            &format!("{versions}/delete"),
            Some(&json!({"query": {"version": {"$startsWith": "v"}}})),
            200,
            SchemaName::BulkDeleteResponse,
        )
        .await;
    assert_eq!(bulk, json!({"removed": 1, "failed": 1}));
    let cleared = server
        .ok(
            Method::PATCH,
            &flow_path,
            Some(&json!({"defaultVersionId": null})),
            200,
            SchemaName::Flow,
        )
        .await;
    assert!(cleared.get("defaultVersionId").is_none());
    server
        .ok(
            Method::DELETE,
            &format!("{versions}/{v1_id}"),
            None,
            200,
            SchemaName::Success,
        )
        .await;
    assert_error(
        server
            .call(
                Method::GET,
                &format!("{versions}/v1"),
                Some(OWNER_TOKEN),
                None,
            )
            .await,
        404,
        "NotFound",
        "version",
    );
}

#[tokio::test]
async fn import_remaps_ids_and_disables_flows() {
    let server = Server::start().await;
    let app = server.create_application("import").await;
    let old_a = "5f0000000000000000000001";
    let old_b = "5f0000000000000000000002";
    let old_v = "5f00000000000000000000a1";
    let body = json!({
        "flows": [
            {"id": old_a, "name": "caller", "enabled": true, "defaultVersionId": old_v,
             "nodes": [{"id": "w", "type": "WorkflowTriggerNode", "config": {"triggerWorkflowId": old_b}}]},
            {"id": old_b, "name": "callee", "triggers": [{"type": "virtualButton", "key": "go"}]}
        ],
        "flowVersions": [{"id": old_v, "flowId": old_a, "version": "v1"}]
    });
    let result = server
        .ok(
            Method::POST,
            &format!("/applications/{app}/flows/import"),
            Some(&body),
            201,
            SchemaName::FlowsImportResult,
        )
        .await;
    let new_a = result["importedFlowIdMap"][old_a].as_str().unwrap();
    let new_b = result["importedFlowIdMap"][old_b].as_str().unwrap();
    let new_v = result["importedVersionIdMap"][old_v].as_str().unwrap();
    assert!(flowd_model::id::is_id(new_a) && new_a != old_a);
    let caller = server
        .ok(
            Method::GET,
            &format!("/applications/{app}/flows/{new_a}"),
            None,
            200,
            SchemaName::Flow,
        )
        .await;
    assert_eq!(caller["enabled"], false, "imported flows start disabled");
    assert_eq!(caller["defaultVersionId"], new_v);
    assert_eq!(caller["nodes"][0]["config"]["triggerWorkflowId"], new_b);
    let version = server
        .ok(
            Method::GET,
            &format!("/applications/{app}/flows/{new_a}/versions/v1"),
            None,
            200,
            SchemaName::FlowVersion,
        )
        .await;
    assert_eq!(version["id"], new_v);

    // All or nothing: a bad graph in the second flow stores neither.
    let bad = json!({"flows": [{"name": "ok"}, {"name": "bad", "nodes": [{"id": "x", "type": "DebugNode", "outputIds": [["nope"]]}]}]});
    assert_error(
        server
            .call(
                Method::POST,
                &format!("/applications/{app}/flows/import"),
                Some(OWNER_TOKEN),
                Some(&bad),
            )
            .await,
        400,
        "Validation",
        "flows[1]",
    );
    let list = server
        .ok(
            Method::GET,
            &format!("/applications/{app}/flows"),
            None,
            200,
            SchemaName::Flows,
        )
        .await;
    assert_eq!(list["totalCount"], 2);
}
