//! MQTT integrations end to end, against the Mosquitto broker on 127.0.0.1:1883: the resource,
//! its live connection status, restarts, and the MQTT node publishing through it (checked with
//! `mosquitto_sub`, a client that is not ours).

mod common;

use common::*;
use flowd_model::schema::SchemaName;
use reqwest::Method;
use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn broker(name: &str) -> Value {
    json!({"name": name, "integrationType": "mqtt",
           "mqttConfig": {"host": "127.0.0.1", "port": 1883, "protocol": "mqtt"}})
}

/// Polls the integration until its status shows it connected (`true`) or failed to connect or
/// disconnected (`false`); returns the document.
async fn wait_for_status(server: &Server, path: &str, connected: bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let doc = server
            .ok(Method::GET, path, None, 200, SchemaName::Integration)
            .await;
        let status = &doc["status"];
        let (connected_at, disconnected_at) = (
            status["connectInfo"]["ts"].as_i64(),
            status["disconnectInfo"]["ts"].as_i64(),
        );
        let up = connected_at.unwrap_or(0) > disconnected_at.unwrap_or(0);
        // Down means a failure or disconnect has been seen, not merely "not connected yet".
        let seen_down = !up && disconnected_at.is_some();
        if (connected && up) || (!connected && seen_down) {
            return doc;
        }
        assert!(
            Instant::now() < deadline,
            "integration never became connected={connected}: {doc}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn integrations_are_managed_and_report_their_connection() {
    let temp = tempfile::tempdir().unwrap();
    let mut server = Server::start_in(temp.path(), Some(OWNER_TOKEN)).await;
    let app = server.create_application("mqtt").await;
    let collection = format!("/applications/{app}/integrations");

    let created = server
        .ok(
            Method::POST,
            &collection,
            Some(&broker("local broker")),
            201,
            SchemaName::Integration,
        )
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["integrationId"], id);
    assert_eq!(created["applicationId"], app);
    assert_eq!(created["enabled"], true);
    assert_eq!(created["topics"], json!([]));
    let path = format!("{collection}/{id}");
    let connected = wait_for_status(&server, &path, true).await;
    let first_connect = connected["status"]["connectInfo"]["ts"].clone();

    // A second one to list, sort and filter.
    let mut unreachable = broker("nobody home");
    unreachable["mqttConfig"]["port"] = json!(1);
    let other = server
        .ok(
            Method::POST,
            &collection,
            Some(&unreachable),
            201,
            SchemaName::Integration,
        )
        .await;
    let other_path = format!("{collection}/{}", other["id"].as_str().unwrap());
    let failing = wait_for_status(&server, &other_path, false).await;
    assert!(
        failing["status"]["disconnectInfo"]["error"].is_string(),
        "{failing}"
    );
    let list = server
        .ok(
            Method::GET,
            &format!("{collection}?sortField=name&sortDirection=desc"),
            None,
            200,
            SchemaName::Integrations,
        )
        .await;
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["nobody home", "local broker"]);
    assert_eq!(list["totalCount"], 2);
    let filtered = server
        .ok(
            Method::GET,
            &format!("{collection}?filterField=name&filter=local*"),
            None,
            200,
            SchemaName::Integrations,
        )
        .await;
    assert_eq!(filtered["count"], 1);
    let by_type = server
        .ok(
            Method::GET,
            &format!("{collection}?filterField=integrationType&filter=mqtt"),
            None,
            200,
            SchemaName::Integrations,
        )
        .await;
    assert_eq!(by_type["count"], 2);

    // Renaming keeps the connection; disabling ends it; enabling makes a new one.
    let renamed = server
        .ok(
            Method::PATCH,
            &path,
            Some(&json!({"name": "renamed"})),
            200,
            SchemaName::Integration,
        )
        .await;
    assert_eq!(renamed["name"], "renamed");
    assert_eq!(renamed["status"]["connectInfo"]["ts"], first_connect);
    let disabled = server
        .ok(
            Method::PATCH,
            &path,
            Some(&json!({"enabled": false})),
            200,
            SchemaName::Integration,
        )
        .await;
    assert!(
        disabled["status"]["connectInfo"]["ts"].is_null(),
        "{disabled}"
    );
    server
        .ok(
            Method::PATCH,
            &path,
            Some(&json!({"enabled": true})),
            200,
            SchemaName::Integration,
        )
        .await;
    wait_for_status(&server, &path, true).await;

    // After a restart the stored integration connects again.
    let (exit, _) = server.stop();
    assert!(exit.success());
    let mut server = Server::start_in(temp.path(), Some(OWNER_TOKEN)).await;
    wait_for_status(&server, &path, true).await;

    // Deleting it along with its workflows is not done yet: refused, and nothing changes.
    assert_error(
        server
            .call(
                Method::DELETE,
                &format!("{path}?includeWorkflows=true"),
                Some(OWNER_TOKEN),
                None,
            )
            .await,
        400,
        "Validation",
        "includeWorkflows",
    );
    wait_for_status(&server, &path, true).await;

    // Deleting it; then it is gone.
    server
        .ok(Method::DELETE, &path, None, 200, SchemaName::Success)
        .await;
    assert_error(
        server
            .call(Method::GET, &path, Some(OWNER_TOKEN), None)
            .await,
        404,
        "NotFound",
        "Integration",
    );
    // Deleting the application takes the other one with it.
    server
        .ok(
            Method::DELETE,
            &format!("/applications/{app}"),
            None,
            200,
            SchemaName::Success,
        )
        .await;
    let (exit, _) = server.stop();
    assert!(exit.success());
}

#[tokio::test]
async fn configurations_flowd_cannot_use_are_400_naming_the_field() {
    let server = Server::start().await;
    let app = server.create_application("bad integrations").await;
    let collection = format!("/applications/{app}/integrations");
    let with_config =
        |config: Value| json!({"name": "b", "integrationType": "mqtt", "mqttConfig": config});
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"name": "q", "integrationType": "sqs",
                   "sqsConfig": {"queueUrl": "https://sqs.example.com/1/q", "region": "us-east-1"}}),
            "integrationType",
        ),
        (
            json!({"name": "b", "integrationType": "mqtt"}),
            "mqttConfig",
        ),
        (
            json!({"name": "b", "integrationType": "mqtt", "credentialName": "cred",
                   "mqttConfig": {"host": "h", "port": 1, "protocol": "mqtt"}}),
            "credentialName",
        ),
        (
            with_config(
                json!({"host": "h", "port": 1883, "protocol": "mqtt", "protocolVersion": "5"}),
            ),
            "protocolVersion",
        ),
        (
            with_config(json!({"host": "h", "port": 1883, "protocol": "mqtt",
                               "caCertificate": "-----BEGIN CERTIFICATE-----"})),
            "TLS",
        ),
        (
            with_config(json!({"host": "h", "port": 8883, "protocol": "mqtts",
                               "caCertificate": "no certificate here"})),
            "caCertificate",
        ),
        (
            with_config(json!({"host": "h", "port": 8883, "protocol": "mqtts",
                               "certificate": "-----BEGIN CERTIFICATE-----"})),
            "privateKey",
        ),
        (
            with_config(json!({"host": "h", "port": 70000, "protocol": "mqtt"})),
            "port",
        ),
        (
            with_config(json!({"host": "h", "protocol": "mqtt"})),
            "port",
        ),
        (
            with_config(json!({"host": "h", "port": 1883, "protocol": "gopher"})),
            "protocol",
        ),
        (
            json!({"name": "b", "integrationType": "mqtt", "topics": ["ok/#", "bad/#/x"],
                   "mqttConfig": {"host": "h", "port": 1883, "protocol": "mqtt"}}),
            "topics[1]",
        ),
    ];
    for (body, needle) in cases {
        let got = server
            .call(Method::POST, &collection, Some(OWNER_TOKEN), Some(&body))
            .await;
        assert_error(got, 400, "Validation", needle);
    }
    // A PATCH that would break a good integration is refused and changes nothing.
    let good = server
        .ok(
            Method::POST,
            &collection,
            Some(&broker("good")),
            201,
            SchemaName::Integration,
        )
        .await;
    let path = format!("{collection}/{}", good["id"].as_str().unwrap());
    let got = server
        .call(
            Method::PATCH,
            &path,
            Some(OWNER_TOKEN),
            Some(
                &json!({"mqttConfig": {"host": "h", "port": 1883, "protocol": "mqtt",
                                          "protocolVersion": "5"}}),
            ),
        )
        .await;
    assert_error(got, 400, "Validation", "protocolVersion");
    let still = server
        .ok(Method::GET, &path, None, 200, SchemaName::Integration)
        .await;
    assert_eq!(still["mqttConfig"]["port"], 1883);
    assert!(still["mqttConfig"].get("protocolVersion").is_none());
}

/// A flow whose button publishes `{{data}}` as JSON to the topic in `data.topic`.
fn publishing_flow(integration: &str) -> Value {
    json!({
        "name": "publisher",
        "triggers": [{"type": "virtualButton", "key": "go", "outputIds": [["pub"]]}],
        "nodes": [{"id": "pub", "type": "MqttMessageNode",
                   "config": {"integrationId": integration, "topicTemplate": "{{data.topic}}",
                              "messageTemplate": "{{jsonEncode data.reading}}"},
                   "meta": {"category": "output", "name": "mqtt", "label": "MQTT"},
                   "outputIds": [[]]}]
    })
}

#[tokio::test]
async fn the_mqtt_node_publishes_through_the_integration() {
    let server = Server::start().await;
    let app = server.create_application("publisher").await;
    let collection = format!("/applications/{app}/integrations");
    let integration = server
        .ok(
            Method::POST,
            &collection,
            Some(&broker("local")),
            201,
            SchemaName::Integration,
        )
        .await;
    let integration_id = integration["id"].as_str().unwrap().to_owned();
    wait_for_status(&server, &format!("{collection}/{integration_id}"), true).await;
    let flow = server
        .create_flow(&app, &publishing_flow(&integration_id))
        .await;
    let flow_path = format!("/applications/{app}/flows/{}", flow["id"].as_str().unwrap());

    // mosquitto_sub prints the first message on the topic and exits.
    let topic = format!("flowd-test/{}/reading", flowd_model::id::new_id());
    let mut subscriber = Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            "1883",
            "-C",
            "1",
            "-W",
            "20",
            "-t",
            &topic,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("mosquitto_sub runs");
    // Presses until the subscriber has seen one (it needs a moment to subscribe).
    let body = json!({"key": "go", "payload": {"topic": topic, "reading": {"temp": 21.5}}});
    let deadline = Instant::now() + Duration::from_secs(15);
    let output = loop {
        let (status, answer) = server
            .call(
                Method::POST,
                &format!("{flow_path}/virtualButton"),
                Some(OWNER_TOKEN),
                Some(&body),
            )
            .await;
        assert_eq!(status, 200, "{answer}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        if Instant::now() > deadline {
            panic!("mosquitto_sub saw nothing on {topic}");
        }
        if let Some(exit) = subscriber.try_wait().expect("mosquitto_sub state") {
            assert!(exit.success(), "mosquitto_sub failed: {exit}");
            let mut printed = String::new();
            let mut stdout = subscriber.stdout.take().expect("piped");
            std::io::Read::read_to_string(&mut stdout, &mut printed).expect("output");
            break printed;
        }
    };
    assert_eq!(output.trim(), r#"{"temp":21.5}"#);

    // Without its integration the node fails the run with MqttError, recorded as an error.
    server
        .ok(
            Method::DELETE,
            &format!("{collection}/{integration_id}"),
            None,
            200,
            SchemaName::Success,
        )
        .await;
    let (status, _) = server
        .call(
            Method::POST,
            &format!("{flow_path}/virtualButton"),
            Some(OWNER_TOKEN),
            Some(&body),
        )
        .await;
    assert_eq!(status, 200);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let errors = server
            .ok(
                Method::GET,
                &format!("{flow_path}/errors?duration=3600000"),
                None,
                200,
                SchemaName::FlowErrors,
            )
            .await;
        let text = errors.to_string();
        if text.contains("MqttError") {
            assert!(text.contains("not found"), "{text}");
            break;
        }
        assert!(Instant::now() < deadline, "no MqttError recorded: {errors}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Losant's own broker does not exist here: saving such a node is refused.
    let got = server
        .call(
            Method::POST,
            &format!("/applications/{app}/flows"),
            Some(OWNER_TOKEN),
            Some(&publishing_flow("losant")),
        )
        .await;
    assert_error(got, 400, "Validation", "no MQTT broker");
}

#[tokio::test]
async fn mosquitto_pub_starts_a_run_through_an_integration_trigger() {
    let server = Server::start().await;
    let app = server.create_application("listener").await;
    let prefix = format!("flowd-test/{}", flowd_model::id::new_id());
    let mut body = broker("plant broker");
    body["topics"] = json!([format!("{prefix}/+/telemetry")]);
    let integration = server
        .ok(
            Method::POST,
            &format!("/applications/{app}/integrations"),
            Some(&body),
            201,
            SchemaName::Integration,
        )
        .await;
    let integration_id = integration["id"].as_str().unwrap();
    // The flow is saved after the integration, as a user would; the trigger arms at once.
    let flow = server
        .create_flow(
            &app,
            &json!({
                "name": "telemetry",
                "triggers": [{"type": "integration", "key": integration_id,
                              "config": {"message": true, "connect": false, "disconnect": false, "failure": false},
                              "meta": {"category": "trigger", "name": "mqtt", "label": "MQTT"},
                              "outputIds": [["keep"]]}],
                "nodes": [{"id": "keep", "type": "StoreValueNode",
                           "config": {"keyName": "last", "valueType": "path", "valuePath": "data"},
                           "outputIds": [[]]}]
            }),
        )
        .await;
    let flow_path = format!("/applications/{app}/flows/{}", flow["id"].as_str().unwrap());
    wait_for_status(
        &server,
        &format!("/applications/{app}/integrations/{integration_id}"),
        true,
    )
    .await;
    let topic = format!("{prefix}/pump-7/telemetry");
    let deadline = Instant::now() + Duration::from_secs(15);
    let stored = loop {
        let published = Command::new("mosquitto_pub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                "1883",
                "-t",
                &topic,
                "-m",
                r#"{"rpm":1200}"#,
            ])
            .status()
            .expect("mosquitto_pub runs");
        assert!(published.success());
        tokio::time::sleep(Duration::from_millis(200)).await;
        let storage = server.storage(&flow_path).await;
        if storage.get("last").is_some() {
            break storage["last"].clone();
        }
        assert!(Instant::now() < deadline, "no run stored the message");
    };
    assert_eq!(
        stored,
        json!({"type": "message", "topic": topic, "message": "{\"rpm\":1200}"})
    );
}
