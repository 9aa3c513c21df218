//! One MQTT integration's connection to its broker (`rumqttc`).
//!
//! * Settings come from the integration's `mqttConfig`: `host`, `port`, `protocol` (`mqtt`,
//!   `mqtts`, `ws`, `wss`), `clientId`, `username`/`password`, `clean`, and for TLS
//!   `caCertificate` (else the Mozilla roots), `certificate` + `privateKey` (client
//!   authentication) and `disableSSLVerification`. MQTT 3.1.1 only: `protocolVersion: "5"` is
//!   refused when saved.
//! * One task polls the connection for as long as the integration exists. When the broker goes
//!   away it waits and reconnects, doubling the wait from 1 s up to 60 s; a successful connect
//!   resets it. On every connect it subscribes to the integration's `topics`.
//! * Publishing is refused at once while the connection is down rather than queued: a run
//!   should fail visibly, not deliver minutes later (how Losant treats its own integrations).
//!   Messages go out at QoS 0, not retained.

use crate::error::{ErrorName, NodeError};
use crate::triggers::integration::IntegrationEvent;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// First wait before reconnecting, doubled after each failure up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
const KEEP_ALIVE: Duration = Duration::from_secs(30);
/// Requests (publishes, subscribes) waiting for the connection task.
const REQUEST_CAPACITY: usize = 1024;
/// Largest packet in either direction (Losant's broker limit is 256 KB; outside brokers may
/// allow more, so flowd allows a little more than that).
const MAX_PACKET_BYTES: usize = 1024 * 1024;

/// Everything a connection is made from; two equal settings make the same connection, so a
/// PATCH that changes only the name keeps it.
#[derive(Clone, PartialEq, Eq)]
pub struct MqttSettings {
    pub integration_id: String,
    pub application_id: String,
    host: String,
    port: u16,
    protocol: Protocol,
    client_id: String,
    username: Option<String>,
    password: Option<String>,
    clean: bool,
    ca_certificate: Option<String>,
    client_certificate: Option<(String, String)>,
    skip_verification: bool,
    topics: Vec<String>,
    /// In a cluster: the shared-subscription group the topics are subscribed in, so that the
    /// broker hands each message to one node.
    share_group: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Protocol {
    Mqtt,
    Mqtts,
    Ws,
    Wss,
}

impl std::fmt::Debug for MqttSettings {
    // Hand-written so that passwords and keys never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttSettings")
            .field("integration_id", &self.integration_id)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("protocol", &self.protocol)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

fn text(value: &Value, field: &str) -> Option<String> {
    value
        .get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

impl MqttSettings {
    /// The same connection made by one node of a cluster: a client id of its own (brokers drop
    /// a client when another connects under its id) and the topics subscribed as a shared
    /// subscription (`$share/GROUP/filter`, MQTT 5 and Mosquitto's 3.1.1), one group per
    /// integration and cluster, so each message reaches one node.
    pub fn for_cluster_node(mut self, cluster: &str, node: &str) -> MqttSettings {
        self.client_id = format!("{}-{}", self.client_id, short(node));
        self.share_group = Some(format!("flowd-{cluster}-{}", short(&self.integration_id)));
        self
    }

    /// The filters to subscribe: the topics, in the shared group when there is one.
    fn subscriptions(&self) -> Vec<String> {
        match &self.share_group {
            Some(group) => self
                .topics
                .iter()
                .map(|topic| format!("$share/{group}/{topic}"))
                .collect(),
            None => self.topics.clone(),
        }
    }

    /// Reads an integration document (already valid against Losant's schema). Errors name the
    /// field at fault.
    pub fn from_doc(doc: &Value) -> Result<MqttSettings, String> {
        let integration_id = text(doc, "id").unwrap_or_default();
        let config = doc
            .get("mqttConfig")
            .filter(|c| c.is_object())
            .ok_or("mqttConfig: an MQTT integration needs its broker settings")?;
        let host = text(config, "host").ok_or("mqttConfig.host is required")?;
        let port = config
            .get("port")
            .and_then(Value::as_f64)
            .filter(|p| p.fract() == 0.0 && (1.0..=65535.0).contains(p))
            .ok_or("mqttConfig.port must be a whole number from 1 to 65535")?
            as u16;
        let protocol = match config.get("protocol").and_then(Value::as_str) {
            Some("mqtt") => Protocol::Mqtt,
            Some("mqtts") => Protocol::Mqtts,
            Some("ws") => Protocol::Ws,
            Some("wss") => Protocol::Wss,
            _ => return Err("mqttConfig.protocol must be mqtt, mqtts, ws or wss".into()),
        };
        if let Some(version) = config.get("protocolVersion").and_then(Value::as_str) {
            if version != "3.1.1" {
                return Err(format!(
                    "mqttConfig.protocolVersion: MQTT {version} is not supported by flowd yet; use \"3.1.1\""
                ));
            }
        }
        if text(doc, "credentialName").is_some() {
            return Err(
                "credentialName: stored credentials are not supported by flowd yet; put the \
                 username and password in mqttConfig"
                    .into(),
            );
        }
        let tls = matches!(protocol, Protocol::Mqtts | Protocol::Wss);
        let ca_certificate = text(config, "caCertificate");
        let client_certificate =
            match (text(config, "certificate"), text(config, "privateKey")) {
                (Some(cert), Some(key)) => Some((cert, key)),
                (None, None) => None,
                _ => return Err(
                    "mqttConfig: certificate and privateKey go together (client authentication)"
                        .into(),
                ),
            };
        if !tls && (ca_certificate.is_some() || client_certificate.is_some()) {
            return Err(format!(
                "mqttConfig: certificates need a TLS protocol (mqtts or wss), not {}",
                config["protocol"].as_str().unwrap_or_default()
            ));
        }
        let topics: Vec<String> = doc
            .get("topics")
            .and_then(Value::as_array)
            .map(|topics| {
                topics
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        for (index, topic) in topics.iter().enumerate() {
            check_filter(topic).map_err(|e| format!("topics[{index}]: {e}"))?;
        }
        let settings = MqttSettings {
            client_id: text(config, "clientId")
                .unwrap_or_else(|| format!("flowd-{}", short(&integration_id))),
            application_id: text(doc, "applicationId").unwrap_or_default(),
            integration_id,
            host,
            port,
            protocol,
            username: text(config, "username"),
            password: text(config, "password"),
            clean: config.get("clean").and_then(Value::as_bool).unwrap_or(true),
            ca_certificate,
            client_certificate,
            skip_verification: config
                .get("disableSSLVerification")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            topics,
            share_group: None,
        };
        // Certificates and keys are parsed now so that a bad one is a 400, not a log line.
        if tls {
            settings.tls_config()?;
        }
        Ok(settings)
    }

    fn options(&self) -> Result<MqttOptions, String> {
        let broker = match self.protocol {
            Protocol::Mqtt | Protocol::Mqtts => self.host.clone(),
            // Websocket transports take the whole URL as the address.
            Protocol::Ws => format!("ws://{}:{}/mqtt", self.host, self.port),
            Protocol::Wss => format!("wss://{}:{}/mqtt", self.host, self.port),
        };
        let mut options = MqttOptions::new(self.client_id.clone(), broker, self.port);
        options
            .set_keep_alive(KEEP_ALIVE)
            .set_clean_session(self.clean)
            .set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES)
            .set_request_channel_capacity(REQUEST_CAPACITY);
        if let Some(username) = &self.username {
            options.set_credentials(username.clone(), self.password.clone().unwrap_or_default());
        }
        match self.protocol {
            Protocol::Mqtt => {}
            Protocol::Ws => {
                options.set_transport(Transport::Ws);
            }
            Protocol::Mqtts => {
                options.set_transport(Transport::Tls(self.tls_config()?));
            }
            Protocol::Wss => {
                options.set_transport(Transport::Wss(self.tls_config()?));
            }
        }
        Ok(options)
    }

    fn tls_config(&self) -> Result<TlsConfiguration, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("mqttConfig: TLS setup failed: {e}"))?;
        let builder = if self.skip_verification {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyServer(provider)))
        } else {
            let mut roots = rustls::RootCertStore::empty();
            match &self.ca_certificate {
                Some(pem) => {
                    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                        let cert = cert.map_err(|e| {
                            format!("mqttConfig.caCertificate is not a PEM certificate: {e}")
                        })?;
                        roots
                            .add(cert)
                            .map_err(|e| format!("mqttConfig.caCertificate cannot be used: {e}"))?;
                    }
                    if roots.is_empty() {
                        return Err("mqttConfig.caCertificate holds no PEM certificate".into());
                    }
                }
                None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            }
            builder.with_root_certificates(roots)
        };
        let config = match &self.client_certificate {
            None => builder.with_no_client_auth(),
            Some((cert_pem, key_pem)) => {
                let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("mqttConfig.certificate is not a PEM certificate: {e}"))?;
                if chain.is_empty() {
                    return Err("mqttConfig.certificate holds no PEM certificate".into());
                }
                let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
                    .map_err(|e| format!("mqttConfig.privateKey is not a PEM private key: {e}"))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| format!("mqttConfig: certificate and privateKey: {e}"))?
            }
        };
        Ok(TlsConfiguration::Rustls(Arc::new(config)))
    }
}

fn short(id: &str) -> &str {
    id.get(id.len().saturating_sub(8)..).unwrap_or(id)
}

/// A topic filter for subscribing: `+` and `#` only as whole levels, `#` last.
fn check_filter(filter: &str) -> Result<(), String> {
    if filter.is_empty() || filter.contains('\0') {
        return Err("a topic filter must be non-empty text".into());
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (index, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || index + 1 != levels.len()) {
            return Err(format!("\"{filter}\": # must be the whole last level"));
        }
        if level.contains('+') && *level != "+" {
            return Err(format!("\"{filter}\": + must be a whole level"));
        }
    }
    Ok(())
}

/// A topic to publish to: non-empty, no wildcards, no NUL, at most 65,535 bytes.
pub fn check_topic(topic: &str) -> Result<(), String> {
    if topic.is_empty() {
        return Err("the topic is empty".into());
    }
    if topic.contains(['+', '#']) {
        return Err(format!(
            "\"{topic}\": wildcards (+, #) cannot be published to"
        ));
    }
    if topic.contains('\0') || topic.len() > 65_535 {
        return Err("the topic must be text of at most 65,535 bytes".into());
    }
    Ok(())
}

/// What the API shows as the integration's `status` (ms since the epoch).
#[derive(Default)]
struct LinkStatus {
    connected: bool,
    connected_at: Option<i64>,
    disconnected_at: Option<i64>,
    last_error: Option<String>,
    next_attempt: Option<i64>,
    last_keep_alive: Option<i64>,
}

/// A live connection.
pub struct MqttLink {
    settings: MqttSettings,
    client: AsyncClient,
    status: Arc<Mutex<LinkStatus>>,
    task: tokio::task::AbortHandle,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl MqttLink {
    /// Starts connecting in the background (settings were checked by [`MqttSettings::from_doc`];
    /// should building the options still fail, the link reports it as its error).
    pub fn connect(settings: MqttSettings, events: Option<super::EventSink>) -> Arc<MqttLink> {
        let status = Arc::new(Mutex::new(LinkStatus::default()));
        let (client, task) = match settings.options() {
            Ok(options) => {
                let (client, eventloop) = AsyncClient::new(options, REQUEST_CAPACITY);
                let task = tokio::spawn(drive(
                    eventloop,
                    client.clone(),
                    settings.clone(),
                    status.clone(),
                    events,
                ));
                (client, task.abort_handle())
            }
            Err(e) => {
                status.lock().unwrap_or_else(|p| p.into_inner()).last_error = Some(e);
                // A client whose event loop is never polled: publishes are refused as "not
                // connected" with the error above.
                let (client, _) = AsyncClient::new(MqttOptions::new("unused", "localhost", 1), 1);
                (client, tokio::spawn(async {}).abort_handle())
            }
        };
        Arc::new(MqttLink {
            settings,
            client,
            status,
            task,
        })
    }

    pub fn settings(&self) -> &MqttSettings {
        &self.settings
    }

    /// Ends the connection: a clean DISCONNECT when connected (the task ends once it is
    /// sent), otherwise the task is stopped where it is (connecting or waiting to retry).
    pub fn stop(&self) {
        let connected = self
            .status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .connected;
        if !connected || self.client.try_disconnect().is_err() {
            self.task.abort();
            return;
        }
        // Backstop: a broker that stalls must not keep the task alive.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let task = self.task.clone();
            runtime.spawn(async move {
                tokio::time::sleep(Duration::from_secs(2)).await;
                task.abort();
            });
        }
    }

    pub fn status(&self) -> Value {
        let status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        let mut disconnect = json!({ "ts": status.disconnected_at });
        if let Some(error) = &status.last_error {
            disconnect["error"] = json!(error);
        }
        let mut value = json!({
            "connectInfo": { "ts": status.connected_at },
            "disconnectInfo": disconnect,
        });
        if let Some(ts) = status.last_keep_alive {
            value["lastKeepAlive"] = json!(ts);
        }
        if let (false, Some(ts)) = (status.connected, status.next_attempt) {
            value["nextAttempt"] = json!(ts);
        }
        value
    }

    pub async fn publish(&self, topic: &str, message: Vec<u8>) -> Result<(), NodeError> {
        check_topic(topic).map_err(|e| NodeError::new(ErrorName::MqttError, e))?;
        {
            let status = self.status.lock().unwrap_or_else(|p| p.into_inner());
            if !status.connected {
                let why = status
                    .last_error
                    .as_deref()
                    .map(|e| format!(" (last error: {e})"))
                    .unwrap_or_default();
                return Err(NodeError::new(
                    ErrorName::MqttError,
                    format!(
                        "MQTT integration {} is not connected to {}:{}{why}",
                        self.settings.integration_id, self.settings.host, self.settings.port
                    ),
                ));
            }
        }
        self.client
            .publish(topic, QoS::AtMostOnce, false, message)
            .await
            .map_err(|e| {
                NodeError::new(
                    ErrorName::MqttError,
                    format!(
                        "MQTT integration {}: publishing failed: {e}",
                        self.settings.integration_id
                    ),
                )
            })
    }
}

/// Polls the connection for as long as the link lives, reconnecting with backoff.
async fn drive(
    mut eventloop: rumqttc::EventLoop,
    client: AsyncClient,
    settings: MqttSettings,
    status: Arc<Mutex<LinkStatus>>,
    events: Option<super::EventSink>,
) {
    let emit = |event: IntegrationEvent| {
        if let Some(sink) = &events {
            sink(&settings.integration_id, &settings.application_id, event);
        }
    };
    let mut backoff = MIN_BACKOFF;
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff = MIN_BACKOFF;
                {
                    let mut status = status.lock().unwrap_or_else(|p| p.into_inner());
                    status.connected = true;
                    status.connected_at = Some(now_ms());
                    status.next_attempt = None;
                }
                tracing::info!(integration = %settings.integration_id, host = %settings.host, "MQTT integration connected");
                if !settings.topics.is_empty() {
                    let filters = settings
                        .subscriptions()
                        .into_iter()
                        .map(|filter| rumqttc::SubscribeFilter::new(filter, QoS::AtMostOnce));
                    // try_: this task is the one that drains the request channel.
                    if let Err(e) = client.try_subscribe_many(filters) {
                        tracing::error!(integration = %settings.integration_id, error = %e, "MQTT subscribe failed");
                    }
                }
                emit(IntegrationEvent::Connect {
                    topics: settings.topics.clone(),
                });
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                emit(IntegrationEvent::Message {
                    topic: publish.topic.clone(),
                    message: String::from_utf8_lossy(&publish.payload).into_owned(),
                });
            }
            Ok(Event::Incoming(Packet::PingResp)) => {
                status
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .last_keep_alive = Some(now_ms());
            }
            Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => {
                let mut status = status.lock().unwrap_or_else(|p| p.into_inner());
                status.connected = false;
                status.disconnected_at = Some(now_ms());
                return;
            }
            Ok(_) => {}
            Err(e) => {
                let wait = backoff;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                let was_connected = {
                    let mut status = status.lock().unwrap_or_else(|p| p.into_inner());
                    let was_connected = status.connected;
                    if was_connected {
                        tracing::warn!(integration = %settings.integration_id, error = %e, "MQTT integration disconnected");
                    }
                    status.connected = false;
                    status.disconnected_at = Some(now_ms());
                    status.last_error = Some(e.to_string());
                    status.next_attempt = Some(now_ms() + wait.as_millis() as i64);
                    was_connected
                };
                let reason = e.to_string();
                emit(if was_connected {
                    IntegrationEvent::Disconnect { reason }
                } else {
                    IntegrationEvent::Failure { reason }
                });
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// `disableSSLVerification`: accepts any server certificate (signatures are still checked, so
/// the handshake itself is sound; only the identity is not).
#[derive(Debug)]
struct AnyServer(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(config: Value) -> Value {
        json!({
            "id": "5f0000000000000000000001",
            "applicationId": "5f0000000000000000000002",
            "name": "broker",
            "integrationType": "mqtt",
            "mqttConfig": config,
        })
    }

    #[test]
    fn reads_settings_and_names_bad_fields() {
        let settings = MqttSettings::from_doc(&doc(
            json!({"host": "127.0.0.1", "port": 1883, "protocol": "mqtt"}),
        ))
        .unwrap();
        assert_eq!(settings.port, 1883);
        assert_eq!(settings.client_id, "flowd-00000001");
        assert!(settings.clean);

        for (config, expected) in [
            (
                json!({"host": "h", "port": 1883, "protocol": "mqtt", "protocolVersion": "5"}),
                "protocolVersion",
            ),
            (
                json!({"host": "h", "port": 1.5, "protocol": "mqtt"}),
                "port",
            ),
            (
                json!({"host": "h", "port": 1883, "protocol": "mqtt", "caCertificate": "----"}),
                "TLS protocol",
            ),
            (
                json!({"host": "h", "port": 8883, "protocol": "mqtts", "caCertificate": "not pem"}),
                "caCertificate",
            ),
            (
                json!({"host": "h", "port": 8883, "protocol": "mqtts", "certificate": "x"}),
                "go together",
            ),
        ] {
            let error = MqttSettings::from_doc(&doc(config)).err().unwrap();
            assert!(error.contains(expected), "{error}");
        }
        let mut no_config = doc(json!({}));
        no_config.as_object_mut().unwrap().remove("mqttConfig");
        assert!(MqttSettings::from_doc(&no_config)
            .unwrap_err()
            .contains("mqttConfig"));
        let mut bad_topics = doc(json!({"host": "h", "port": 1, "protocol": "mqtt"}));
        bad_topics["topics"] = json!(["ok/+", "bad/#/more"]);
        assert!(MqttSettings::from_doc(&bad_topics)
            .unwrap_err()
            .starts_with("topics[1]"));
    }

    #[test]
    fn topics_for_publishing() {
        assert!(check_topic("plant/4/alarm").is_ok());
        assert!(check_topic("").is_err());
        assert!(check_topic("plant/+/alarm").is_err());
        assert!(check_topic("plant/#").is_err());
        assert!(check_filter("plant/+/alarm").is_ok());
        assert!(check_filter("#").is_ok());
        assert!(check_filter("a/b#").is_err());
        assert!(check_filter("a+/b").is_err());
    }
}
