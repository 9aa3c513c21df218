//! `MqttMessageNode` ("MQTT"): publishes a message through one of the application's MQTT
//! integrations (`/applications/{id}/integrations`), over the connection the engine keeps for
//! that integration — never a connection per run.
//!
//! Config: `integrationId` (an MQTT integration's id), `topicTemplate` (template, required),
//! `messageTemplate` (template; empty renders an empty message). One output port, no result.
//!
//! Decisions:
//! * `integrationId: "losant"` (Losant's own broker, the default in Losant's editor) and the
//!   edge-only `"local"`/`"external"` are compile errors: flowd has no broker of its own yet, and
//!   a flow saved with one would fail every run.
//! * Whether the integration exists is checked when the node runs (it may be created after the
//!   flow). A missing, disabled, other application's or disconnected integration, or a topic
//!   that renders empty or holds wildcards, fails the run with `MqttError`; a template that
//!   cannot be rendered with `TemplateError`.
//! * Messages are published at QoS 0, not retained (what Losant's node does).

use crate::error::{CompileError, ErrorName, NodeError};
use crate::node::{CompiledNodeType, Node, NodeContext, NodeSpec, Outcome, Resume};
use crate::nodes::{render, template};
use crate::template::Template;
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Config {
    integration_id: Option<String>,
    topic_template: Option<String>,
    message_template: Option<String>,
}

pub struct MqttMessage {
    integration_id: String,
    topic: Template,
    message: Template,
}

pub fn compile(spec: &NodeSpec<'_>) -> Result<CompiledNodeType, CompileError> {
    let config: Config = spec.config()?;
    let integration_id = config
        .integration_id
        .unwrap_or_else(|| "losant".into())
        .trim()
        .to_owned();
    match integration_id.as_str() {
        "losant" | "local" | "external" => {
            return Err(spec.error(format!(
                "integrationId \"{integration_id}\": flowd has no MQTT broker of its own; \
                 publish through an MQTT integration of the application (give its id)"
            )))
        }
        id if !flowd_model::id::is_id(id) => {
            return Err(spec.error(format!(
                "integrationId must be the id of an MQTT integration, not \"{id}\""
            )))
        }
        _ => {}
    }
    let topic_text = config.topic_template.unwrap_or_default();
    if topic_text.trim().is_empty() {
        return Err(spec.error("topicTemplate is required"));
    }
    Ok(CompiledNodeType::new(
        MqttMessage {
            integration_id,
            topic: template(spec, "topicTemplate", &topic_text)?,
            message: template(
                spec,
                "messageTemplate",
                config.message_template.as_deref().unwrap_or(""),
            )?,
        },
        1,
    ))
}

impl Node for MqttMessage {
    fn execute(&self, cx: &mut NodeContext<'_>, payload: &mut Value) -> Result<Outcome, NodeError> {
        let topic = render(&self.topic, payload)?;
        if topic.is_empty() {
            return Err(NodeError::new(
                ErrorName::MqttError,
                format!(
                    "topicTemplate rendered empty (template \"{}\")",
                    self.topic.source()
                ),
            ));
        }
        let message = render(&self.message, payload)?.into_bytes();
        let services = cx.services.clone();
        let application_id = cx.run.flow.application_id.clone();
        let integration_id = self.integration_id.clone();
        Ok(Outcome::Wait(Box::pin(async move {
            services
                .integrations
                .publish(&application_id, &integration_id, &topic, message)
                .await?;
            Ok(Resume::port(0))
        })))
    }
}

#[cfg(test)]
mod tests {
    use crate::error::ErrorName;
    use crate::testing::{compile_node, Harness};
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    use serde_json::{json, Value};
    use std::time::Duration;

    const INTEGRATION: &str = "5f00000000000000000000aa";

    fn node(config: Value) -> crate::node::CompiledNodeType {
        compile_node("MqttMessageNode", &config).expect("compiles")
    }

    fn compile_error(config: Value) -> String {
        match compile_node("MqttMessageNode", &config) {
            Ok(_) => panic!("{config} compiled"),
            Err(e) => e.0,
        }
    }

    /// An integration document for the harness's application (`app`) and the local Mosquitto.
    fn integration(port: u16) -> Value {
        json!({
            "id": INTEGRATION, "applicationId": "app", "name": "local", "integrationType": "mqtt",
            "enabled": true,
            "mqttConfig": {"host": "127.0.0.1", "port": port, "protocol": "mqtt",
                           "clientId": format!("flowd-test-{}", uuid::Uuid::new_v4())},
        })
    }

    /// Waits until the integration reports a connection.
    async fn connected(h: &Harness) {
        for _ in 0..100 {
            if !h.services.integrations.status(INTEGRATION)["connectInfo"]["ts"].is_null() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("integration never connected to Mosquitto on 127.0.0.1:1883");
    }

    #[test]
    fn config_is_checked() {
        assert!(compile_error(json!({"topicTemplate": "a"})).contains("no MQTT broker"));
        assert!(
            compile_error(json!({"integrationId": "local", "topicTemplate": "a"}))
                .contains("no MQTT broker")
        );
        assert!(
            compile_error(json!({"integrationId": "my broker", "topicTemplate": "a"}))
                .contains("must be the id")
        );
        assert!(compile_error(json!({"integrationId": INTEGRATION})).contains("topicTemplate"));
        assert!(
            compile_error(json!({"integrationId": INTEGRATION, "topicTemplate": "{{#if}}"}))
                .contains("topicTemplate")
        );
        let node = node(json!({"integrationId": INTEGRATION, "topicTemplate": "a/b",
                               "someFutureField": 1}));
        assert_eq!(node.ports, 1);
    }

    #[test]
    fn publishes_through_the_shared_connection() {
        let h = Harness::new();
        let topic = format!("flowd-test/{}/alarm", uuid::Uuid::new_v4());
        // A subscriber of our own, to see what arrives.
        let (subscriber, mut events) = h.runtime.block_on(async {
            let mut options =
                MqttOptions::new(format!("sub-{}", uuid::Uuid::new_v4()), "127.0.0.1", 1883);
            options.set_keep_alive(Duration::from_secs(5));
            let (client, mut events) = AsyncClient::new(options, 10);
            client
                .subscribe(&topic, QoS::AtMostOnce)
                .await
                .expect("subscribe");
            loop {
                if let Event::Incoming(Packet::SubAck(_)) = events.poll().await.expect("broker") {
                    break;
                }
            }
            h.services.integrations.apply(&integration(1883));
            connected(&h).await;
            (client, events)
        });
        let node = node(json!({"integrationId": INTEGRATION,
            "topicTemplate": "{{data.topic}}", "messageTemplate": "{{jsonEncode data.alarm}}"}));
        for n in 0..3 {
            let (port, _) = h
                .run(
                    &node,
                    json!({"data": {"topic": topic, "alarm": {"level": n}}}),
                )
                .expect("published");
            assert_eq!(port, 0);
        }
        let received = h.runtime.block_on(async {
            let mut received = Vec::new();
            while received.len() < 3 {
                let event = tokio::time::timeout(Duration::from_secs(5), events.poll())
                    .await
                    .expect("message within 5 s")
                    .expect("broker");
                if let Event::Incoming(Packet::Publish(p)) = event {
                    assert_eq!(p.topic, topic);
                    received.push(String::from_utf8(p.payload.to_vec()).unwrap());
                }
            }
            drop(subscriber);
            received
        });
        assert_eq!(
            received,
            [r#"{"level":0}"#, r#"{"level":1}"#, r#"{"level":2}"#]
        );

        // Bad topics fail the run with MqttError.
        for (topic, expected) in [("", "rendered empty"), ("a/+/b", "wildcards")] {
            let error = h
                .run(&node, json!({"data": {"topic": topic, "alarm": 1}}))
                .unwrap_err();
            assert_eq!(error.name, ErrorName::MqttError);
            assert!(error.message.contains(expected), "{}", error.message);
        }
        h.runtime
            .block_on(async { h.services.integrations.stop_all() });
    }

    #[test]
    fn missing_or_disconnected_integrations_fail_the_run() {
        let h = Harness::new();
        let node = node(json!({"integrationId": INTEGRATION, "topicTemplate": "a/b"}));
        let error = h.run(&node, json!({})).unwrap_err();
        assert_eq!(error.name, ErrorName::MqttError);
        assert!(error.message.contains("was not found"), "{}", error.message);

        // Another application's integration is not found either.
        let mut foreign = integration(1883);
        foreign["applicationId"] = json!("another-app");
        h.runtime
            .block_on(async { h.services.integrations.apply(&foreign) });
        let error = h.run(&node, json!({})).unwrap_err();
        assert!(error.message.contains("was not found"), "{}", error.message);

        // Nothing listens on port 1: the connection is down and says why.
        h.runtime
            .block_on(async { h.services.integrations.apply(&integration(1)) });
        h.runtime
            .block_on(async { tokio::time::sleep(Duration::from_millis(300)).await });
        let error = h.run(&node, json!({})).unwrap_err();
        assert_eq!(error.name, ErrorName::MqttError);
        assert!(error.message.contains("not connected"), "{}", error.message);
        let status = h.services.integrations.status(INTEGRATION);
        assert!(status["disconnectInfo"]["error"].is_string(), "{status}");
        assert!(status["nextAttempt"].is_number(), "{status}");

        // Disabled: the connection goes away.
        let mut disabled = integration(1883);
        disabled["enabled"] = json!(false);
        h.runtime
            .block_on(async { h.services.integrations.apply(&disabled) });
        let error = h.run(&node, json!({})).unwrap_err();
        assert!(error.message.contains("disabled"), "{}", error.message);
    }
}
