//! Several `flowd serve` processes as one engine: one PostgreSQL schema (a scratch schema in
//! the database at `FLOWD_TEST_POSTGRES`) and one NATS JetStream cluster name (on the server at
//! `FLOWD_TEST_NATS`, by default the machine's `nats://127.0.0.1:4222`), as "Running several
//! nodes" in the README describes. Without PostgreSQL or NATS the tests fail; they do not skip.

mod common;

use common::{Server, OWNER_TOKEN};
use flowd_model::schema::SchemaName;
use flowd_nats::NatsCluster;
use flowd_store::postgres::ScratchSchema;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn nats_server() -> String {
    std::env::var("FLOWD_TEST_NATS").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

struct Cluster {
    nodes: Vec<Server>,
    nats: String,
    _schema: ScratchSchema,
    _dirs: Vec<tempfile::TempDir>,
}

impl Cluster {
    /// `size` nodes on a fresh schema and cluster name, each with `config` as its config file.
    async fn start(size: usize, config: &str) -> Cluster {
        Cluster::start_on(size, config, &nats_server()).await
    }

    async fn start_on(size: usize, config: &str, nats_server: &str) -> Cluster {
        let schema = ScratchSchema::for_tests().await;
        let nats = format!("{nats_server}?cluster=test_{}", flowd_model::id::new_id());
        let mut nodes = Vec::new();
        let mut dirs = Vec::new();
        for _ in 0..size {
            let dir = tempfile::tempdir().expect("temp dir");
            let config_file = dir.path().join("flowd.toml");
            std::fs::write(&config_file, config).expect("config written");
            let data = dir.path().join("data");
            std::fs::create_dir_all(&data).expect("data dir");
            let flags = [
                "--store",
                &schema.url(),
                "--queue",
                &nats,
                "--config",
                config_file.to_str().expect("utf-8 path"),
            ];
            nodes.push(Server::start_with(&data, Some(OWNER_TOKEN), &flags).await);
            dirs.push(dir);
        }
        Cluster {
            nodes,
            nats,
            _schema: schema,
            _dirs: dirs,
        }
    }

    /// Stops the nodes still running and deletes the cluster's run stream.
    async fn stop(mut self) {
        for node in &mut self.nodes {
            if node.pid().is_some() {
                node.stop();
            }
        }
        let nats = NatsCluster::connect(&self.nats).await.expect("NATS");
        nats.delete_streams().await.expect("streams deleted");
    }
}

/// Runs of a flow in its stats (a day of minutes), as one node's API reports them.
async fn counted_runs(node: &Server, flow_path: &str) -> u64 {
    let stats = node
        .ok(
            Method::GET,
            &format!("{flow_path}/stats?resolution=60000"),
            None,
            200,
            SchemaName::FlowStats,
        )
        .await;
    stats["metrics"]
        .as_array()
        .expect("metrics")
        .iter()
        .map(|m| m["runCount"].as_u64().unwrap_or(0))
        .sum()
}

/// Waits until the stats count `expected` runs, then checks they stay there a while (a run
/// counted twice would show up late).
async fn assert_runs_settle_at(node: &Server, flow_path: &str, expected: u64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let runs = counted_runs(node, flow_path).await;
        if runs == expected {
            break;
        }
        assert!(
            runs < expected && Instant::now() < deadline,
            "{runs} runs counted, {expected} expected"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(counted_runs(node, flow_path).await, expected, "still");
}

/// Presses `key` `count` times, spread over `nodes` in turn, 16 at a time; returns how many
/// presses were acknowledged (200).
async fn press_spread(nodes: &[&Server], flow_path: &str, key: &str, count: usize) -> u64 {
    let mut accepted = 0;
    for chunk in (0..count).collect::<Vec<_>>().chunks(16) {
        let presses = chunk.iter().map(|i| {
            let node = nodes[i % nodes.len()];
            async move { node.press(flow_path, json!({"key": key})).await }
        });
        for (status, body) in futures::future::join_all(presses).await {
            match status {
                StatusCode::OK => accepted += 1,
                // A node that was just killed refuses connections; that press was not acked.
                other => assert!(
                    other.is_server_error() || other == StatusCode::TOO_MANY_REQUESTS,
                    "{other}: {body}"
                ),
            }
        }
    }
    accepted
}

/// A flow whose "go" button adds one to storage key `n`, after a Delay node of `delay` seconds
/// when given (so that runs are still going on when something happens to their node).
fn counter_flow(name: &str, delay: Option<f64>) -> Value {
    let count = json!({"id": "count", "type": "StoreValueNode",
        "config": {"keyName": "n", "valueType": "incr", "value": "1"}, "outputIds": [[]]});
    let (first, nodes) = match delay {
        None => ("count", json!([count])),
        Some(delay) => (
            "wait",
            json!([{"id": "wait", "type": "DelayNode", "config": {"delay": delay},
                    "outputIds": [["count"]]}, count]),
        ),
    };
    json!({"name": name,
           "triggers": [{"type": "virtualButton", "key": "go", "outputIds": [[first]]}],
           "nodes": nodes})
}

fn debug_flow(name: &str, triggers: Value) -> Value {
    json!({
        "name": name,
        "triggers": triggers,
        "nodes": [{"id": "d", "type": "DebugNode", "config": {"message": "ran"}, "outputIds": [[]]}]
    })
}

fn wired(trigger: Value) -> Value {
    let mut trigger = trigger;
    trigger["outputIds"] = json!([["d"]]);
    trigger
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_run_every_press_and_message_once_reply_across_nodes_and_share_changes() {
    let cluster = Cluster::start(3, "").await;
    let [a, b, c] = [&cluster.nodes[0], &cluster.nodes[1], &cluster.nodes[2]];

    for node in [a, b, c] {
        let (status, ready) = node.call(Method::GET, "/ready", None, None).await;
        assert_eq!(status, 200, "{ready}");
        assert_eq!(ready, json!({"status": "ok", "queue": "nats"}));
    }

    // Presses on every node: each acknowledged press runs once, and the increments made on
    // three nodes at once add up (storage goes to the shared store, atomically).
    let app = a.create_application("Cluster").await;
    let flow = a.create_flow(&app, &counter_flow("presses", None)).await;
    let flow_path = format!("/applications/{app}/flows/{}", flow["id"].as_str().unwrap());
    let accepted = press_spread(&[a, b, c], &flow_path, "go", 300).await;
    assert_eq!(accepted, 300);
    assert_runs_settle_at(b, &flow_path, 300, Duration::from_secs(30)).await;
    for node in [a, b, c] {
        assert_eq!(
            node.storage(&flow_path).await["n"],
            300,
            "as {} reads it",
            node.base
        );
    }
    // A storage write through one node's API is what the others read next.
    a.ok(
        Method::PATCH,
        &format!("{flow_path}/storage"),
        Some(&json!({"key": "n", "value": 7})),
        200,
        SchemaName::Success,
    )
    .await;
    assert_eq!(c.storage(&flow_path).await["n"], 7);

    // A change made through one node reaches the others: b and c have the flow compiled
    // with the "go" button; a renames it.
    let renamed = json!({"type": "virtualButton", "key": "again", "outputIds": [["count"]]});
    a.ok(
        Method::PATCH,
        &flow_path,
        Some(&json!({"triggers": [renamed]})),
        200,
        SchemaName::Flow,
    )
    .await;
    for node in [b, c] {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let (status, body) = node.press(&flow_path, json!({"key": "again"})).await;
            if status == 200 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the change did not arrive: {body}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (status, body) = node.press(&flow_path, json!({"key": "go"})).await;
        assert_eq!(status, 400, "the old button is gone everywhere: {body}");
    }

    // A webhook request waiting for its reply on one node is answered by a run on any node.
    let hook = a
        .ok(
            Method::POST,
            &format!("/applications/{app}/webhooks"),
            Some(&json!({"name": "ask", "waitForReply": true})),
            201,
            SchemaName::Webhook,
        )
        .await;
    let replier = json!({
        "name": "replier",
        "triggers": [{"type": "webhook", "key": hook["id"], "config": {}, "outputIds": [["reply"]]}],
        "nodes": [{"id": "reply", "type": "WebhookReplyNode",
                   "config": {"replyIdPath": "data.replyId", "responseCodeTemplate": "201",
                              "bodyTemplate": "answer {{data.body.n}}"},
                   "outputIds": [[]]}]
    });
    a.create_flow(&app, &replier).await;
    let token = hook["token"].as_str().unwrap();
    let requests = (0..30).map(|n| {
        let node = [b, c][n % 2];
        let url = format!("{}/webhooks/{token}", node.base);
        async move {
            // The webhook and the flow are new to b and c: until the changes reach them the
            // webhook is unknown (404) or nothing listens to it (an immediate 504).
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let answer = node
                    .client
                    .post(&url)
                    .json(&json!({"n": n}))
                    .send()
                    .await
                    .unwrap();
                let (status, body) = (answer.status().as_u16(), answer.text().await.unwrap());
                let not_yet = status == 404 || body.contains("No workflow is listening");
                if !not_yet || Instant::now() > deadline {
                    return (n, status, body);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    for (n, status, body) in futures::future::join_all(requests).await {
        assert_eq!((status, body), (201, format!("answer {n}")));
    }

    // An MQTT integration connects from every node, yet each broker message starts one run:
    // the nodes subscribe in one shared group.
    let prefix = format!("flowd-test/{}", flowd_model::id::new_id());
    let integration = a
        .ok(
            Method::POST,
            &format!("/applications/{app}/integrations"),
            Some(&json!({"name": "broker", "integrationType": "mqtt", "topics": [format!("{prefix}/#")],
                         "mqttConfig": {"host": "127.0.0.1", "port": 1883, "protocol": "mqtt"}})),
            201,
            SchemaName::Integration,
        )
        .await;
    let listener = wired(json!({"type": "integration", "key": integration["id"],
        "config": {"message": true, "connect": false, "disconnect": false, "failure": false}}));
    let listening = a
        .create_flow(&app, &debug_flow("mqtt", json!([listener])))
        .await;
    let listening_path = format!(
        "/applications/{app}/flows/{}",
        listening["id"].as_str().unwrap()
    );
    // Every node has connected and subscribed once a message published now reaches a run;
    // the one-message probe is then counted with the rest.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for n in 0..20 {
        let status = std::process::Command::new("mosquitto_pub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                "1883",
                "-t",
                &format!("{prefix}/m{n}"),
            ])
            .args(["-m", &n.to_string()])
            .status()
            .expect("mosquitto_pub runs");
        assert!(status.success());
    }
    assert_runs_settle_at(a, &listening_path, 20, Duration::from_secs(15)).await;
    // Each node kept its own connection: none was pushed off by another under the same
    // client id.
    let integration_path = format!(
        "/applications/{app}/integrations/{}",
        integration["id"].as_str().unwrap()
    );
    for node in [a, b, c] {
        let doc = node
            .ok(
                Method::GET,
                &integration_path,
                None,
                200,
                SchemaName::Integration,
            )
            .await;
        assert!(doc["status"]["connectInfo"]["ts"].is_number(), "{doc}");
        assert!(doc["status"]["disconnectInfo"]["ts"].is_null(), "{doc}");
    }

    // A Redis channel has no shared subscriptions: one node at a time (the lease holder)
    // listens, so each message starts one run.
    let channel = format!("flowd-test:{}", flowd_model::id::new_id());
    let redis = wired(json!({"type": "redis", "key": "r",
        "config": {"host": "127.0.0.1", "port": "", "password": "", "topic": channel}}));
    let subscribed = b
        .create_flow(&app, &debug_flow("redis", json!([redis])))
        .await;
    let redis_path = format!(
        "/applications/{app}/flows/{}",
        subscribed["id"].as_str().unwrap()
    );
    let publish = |message: &str| {
        let status = std::process::Command::new("redis-cli")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                "6379",
                "PUBLISH",
                &channel,
                message,
            ])
            .stdout(std::process::Stdio::null())
            .status()
            .expect("redis-cli runs");
        assert!(status.success());
    };
    // Probes until the listening node has subscribed; each probe that lands is one run.
    let deadline = Instant::now() + Duration::from_secs(10);
    while counted_runs(a, &redis_path).await == 0 {
        assert!(
            Instant::now() < deadline,
            "no node listened to the Redis channel"
        );
        publish("probe");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let probes = counted_runs(a, &redis_path).await;
    for n in 0..10 {
        publish(&n.to_string());
    }
    assert_runs_settle_at(a, &redis_path, probes + 10, Duration::from_secs(15)).await;

    // A debug panel open on one node shows the Debug output of runs made on every node.
    let watched = a
        .create_flow(
            &app,
            &debug_flow(
                "watched",
                json!([wired(json!({"type": "virtualButton", "key": "look"}))]),
            ),
        )
        .await;
    let watched_path = format!(
        "/applications/{app}/flows/{}",
        watched["id"].as_str().unwrap()
    );
    let mut stream = a
        .client
        .get(format!("{}{watched_path}/debug", a.base))
        .bearer_auth(OWNER_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(press_spread(&[b, c], &watched_path, "look", 12).await, 12);
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let events = |seen: &str| seen.lines().filter(|l| l.starts_with("data:")).count();
    while events(&seen) < 12 {
        let chunk = tokio::time::timeout_at(deadline.into(), stream.chunk())
            .await
            .unwrap_or_else(|_| panic!("{} of 12 debug events within 10 s", events(&seen)))
            .unwrap()
            .expect("the stream stays open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(stream);

    // A one-second timer armed on every node fires once a second in all.
    let timer = wired(json!({"type": "timer", "key": "t", "config": {"seconds": 1}}));
    let clock = c
        .create_flow(&app, &debug_flow("clock", json!([timer])))
        .await;
    let clock_path = format!(
        "/applications/{app}/flows/{}",
        clock["id"].as_str().unwrap()
    );
    tokio::time::sleep(Duration::from_millis(5_500)).await;
    let ticks = counted_runs(a, &clock_path).await;
    assert!(
        (4..=6).contains(&ticks),
        "{ticks} timer runs in 5.5 s on three nodes"
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_load_loses_no_acknowledged_press() {
    // A short ack wait, so the dead node's jobs go to the others within the test.
    let mut cluster = Cluster::start(3, "queue-ack-wait-secs = 2\n").await;
    let app = cluster.nodes[0].create_application("Kill").await;
    let flow = cluster.nodes[0]
        .create_flow(
            &app,
            &json!({
                "name": "slow",
                "triggers": [{"type": "virtualButton", "key": "go", "outputIds": [["wait"]]}],
                "nodes": [
                    {"id": "wait", "type": "DelayNode", "config": {"delay": 0.5},
                     "outputIds": [["d"]]},
                    {"id": "d", "type": "DebugNode", "config": {"message": "done"},
                     "outputIds": [[]]}
                ]
            }),
        )
        .await;
    let flow_path = format!("/applications/{app}/flows/{}", flow["id"].as_str().unwrap());

    // A first wave on every node, so the victim holds runs mid-delay when it dies.
    let accepted_before = {
        let nodes: Vec<&Server> = cluster.nodes.iter().collect();
        press_spread(&nodes, &flow_path, "go", 150).await
    };
    // Killed when its first runs have ended but before a periodic accounting write (1 s):
    // those must be counted, the ones still in their delay must run again elsewhere.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let killed = cluster.nodes[2].kill_hard();
    assert!(!killed.success());
    let accepted_after = {
        let nodes: Vec<&Server> = cluster.nodes[..2].iter().collect();
        press_spread(&nodes, &flow_path, "go", 150).await
    };
    let accepted = accepted_before + accepted_after;
    assert_eq!(accepted, 300, "every press to a live node was acknowledged");
    // Every acknowledged press ran and is counted once: the dead node's unfinished jobs ran
    // again elsewhere after the ack wait, and none of its runs is counted twice.
    assert_runs_settle_at(
        &cluster.nodes[0],
        &flow_path,
        accepted,
        Duration::from_secs(30),
    )
    .await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_stopped_cleanly_leaves_nothing_to_run_twice() {
    let mut cluster = Cluster::start(2, "queue-ack-wait-secs = 2\n").await;
    let app = cluster.nodes[0].create_application("Stop").await;
    let flow = cluster.nodes[0]
        .create_flow(&app, &counter_flow("count", Some(0.5)))
        .await;
    let flow_path = format!("/applications/{app}/flows/{}", flow["id"].as_str().unwrap());
    let accepted = press_spread(&[&cluster.nodes[1]], &flow_path, "go", 200).await;
    assert_eq!(accepted, 200);
    // SIGTERM while its runs wait in their delay: the node finishes them and acknowledges them
    // before it exits, so nothing is handed to the other node a second time (the counter would
    // pass 200).
    let (status, _) = cluster.nodes[1].stop();
    assert!(status.success());
    assert_runs_settle_at(&cluster.nodes[0], &flow_path, 200, Duration::from_secs(20)).await;
    // Past the ack wait, in case anything was left unacknowledged.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(cluster.nodes[0].storage(&flow_path).await["n"], 200);
    cluster.stop().await;
}

/// A NATS server of the test's own (the machine's `nats-server` binary on a free port), so it
/// can be stopped and started again.
struct OwnNats {
    child: std::process::Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl OwnNats {
    fn start(port: Option<u16>, dir: Option<tempfile::TempDir>) -> OwnNats {
        let port = port.unwrap_or_else(|| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port()
        });
        let dir = dir.unwrap_or_else(|| tempfile::tempdir().expect("temp dir"));
        let binary = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("nats-server is installed on this machine");
        let child = std::process::Command::new(binary)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nats-server starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        OwnNats { child, port, dir }
    }

    fn stop(mut self) -> (u16, tempfile::TempDir) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        (self.port, self.dir)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_and_presses_follow_the_queue_going_away_and_back() {
    let nats = OwnNats::start(None, None);
    let server = format!("nats://127.0.0.1:{}", nats.port);
    let cluster = Cluster::start_on(2, "", &server).await;
    let (node, other) = (&cluster.nodes[0], &cluster.nodes[1]);
    let app = node.create_application("Outage").await;
    let button = wired(json!({"type": "virtualButton", "key": "go"}));
    let flow = node
        .create_flow(&app, &debug_flow("f", json!([button])))
        .await;
    let flow_path = format!("/applications/{app}/flows/{}", flow["id"].as_str().unwrap());
    assert_eq!(node.press(&flow_path, json!({"key": "go"})).await.0, 200);
    // The other node has the flow compiled, with its "go" button.
    assert_eq!(other.press(&flow_path, json!({"key": "go"})).await.0, 200);

    let (port, dir) = nats.stop();
    let deadline = Instant::now() + Duration::from_secs(10);
    let (status, body) = loop {
        let (status, body) = node.call(Method::GET, "/ready", None, None).await;
        if status != 200 || Instant::now() > deadline {
            break (status, body);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["type"], "ServiceUnavailable");
    assert!(body["message"].as_str().unwrap().contains("NATS"), "{body}");
    let (status, body) = node.press(&flow_path, json!({"key": "go"})).await;
    assert_eq!(
        status, 503,
        "a press that cannot be queued durably is refused: {body}"
    );
    assert_eq!(body["type"], "ServiceUnavailable");
    // Liveness is not readiness: the process still answers.
    assert_eq!(node.call(Method::GET, "/health", None, None).await.0, 200);
    // A change made meanwhile (the store is up) cannot be announced to the other node.
    let renamed = wired(json!({"type": "virtualButton", "key": "again"}));
    node.ok(
        Method::PATCH,
        &flow_path,
        Some(&json!({"triggers": [renamed]})),
        200,
        SchemaName::Flow,
    )
    .await;

    let nats = OwnNats::start(Some(port), Some(dir));
    let deadline = Instant::now() + Duration::from_secs(15);
    while node.call(Method::GET, "/ready", None, None).await.0 != 200 {
        assert!(
            Instant::now() < deadline,
            "not ready again after NATS came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(node.press(&flow_path, json!({"key": "again"})).await.0, 200);
    // Reconnected, the other node read everything again: it runs the renamed button and no
    // longer the old one.
    let deadline = Instant::now() + Duration::from_secs(10);
    while other.press(&flow_path, json!({"key": "again"})).await.0 != 200 {
        assert!(
            Instant::now() < deadline,
            "the other node kept the old flow"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(other.press(&flow_path, json!({"key": "go"})).await.0, 400);
    assert_runs_settle_at(node, &flow_path, 4, Duration::from_secs(15)).await;
    cluster.stop().await;
    nats.stop();
}
