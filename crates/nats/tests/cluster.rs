//! Several engines in one process, sharing one store and — through the NATS JetStream server on
//! this machine (127.0.0.1:4222, or `FLOWD_TEST_NATS`) — one run queue and one change feed, as
//! several flowd nodes would. Each test uses a cluster name of its own and deletes its stream.

use flowd_engine::cluster::Change;
use flowd_engine::engine::{Engine, EngineConfig, Press, PressError};
use flowd_engine::node::RunInfo;
use flowd_engine::observer::{DebugMessage, RunObserver, RunResult};
use flowd_nats::queue::QueueSettings;
use flowd_nats::NatsCluster;
use flowd_store::sqlite::SqliteStore;
use flowd_store::Store;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn nats_url() -> String {
    std::env::var("FLOWD_TEST_NATS").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// What one engine ran: (run id, flow id, debug value) per finished run and Debug output.
#[derive(Default)]
struct Seen {
    runs: Mutex<Vec<String>>,
    printed: Mutex<Vec<(String, Value)>>,
}

impl RunObserver for Seen {
    fn debug(&self, message: &Arc<DebugMessage>) {
        self.printed
            .lock()
            .unwrap()
            .push((message.flow_id.clone(), message.value.clone()));
    }
    fn run_finished(&self, run: &RunInfo, _: &RunResult) {
        self.runs.lock().unwrap().push(run.run_id.clone());
    }
}

struct Node {
    engine: Engine,
    seen: Arc<Seen>,
}

struct Cluster {
    name: String,
    store: Arc<dyn Store>,
    app: String,
    nodes: Vec<Node>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    async fn start(nodes: usize, settings: QueueSettings) -> Cluster {
        let name = format!("test_{}", flowd_model::id::new_id());
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
        let app = flowd_model::id::new_id();
        let now = flowd_model::time::now_iso();
        store
            .insert_application(
                &json!({"id": app, "name": "a", "creationDate": now, "lastUpdated": now}),
            )
            .await
            .unwrap();
        let mut started = Vec::new();
        for _ in 0..nodes {
            let nats = NatsCluster::connect(&format!("{}?cluster={name}", nats_url()))
                .await
                .expect("NATS with JetStream must run on this machine (127.0.0.1:4222)");
            let setup = nats.run_queue(settings).await.unwrap();
            let seen = Arc::new(Seen::default());
            let engine = Engine::start_with_queue(
                store.clone(),
                EngineConfig::default(),
                vec![seen.clone()],
                move |handler| Box::new(setup.start(handler)),
            );
            let applier = engine.clone();
            let _feed = nats
                .change_feed(Arc::new(move |change| {
                    let engine = applier.clone();
                    Box::pin(async move { engine.apply_change(&change).await })
                }))
                .await
                .unwrap();
            started.push(Node { engine, seen });
        }
        Cluster {
            name,
            store,
            app,
            nodes: started,
            _dir: dir,
        }
    }

    /// Saves a flow and tells every node (as each node's API would hear of it).
    async fn save(&self, id: &str, triggers: Value, nodes: Value) {
        let now = flowd_model::time::now_iso();
        let doc = json!({"id": id, "applicationId": self.app, "name": id, "flowClass": "cloud",
            "enabled": true, "creationDate": now, "lastUpdated": now,
            "triggers": triggers, "nodes": nodes});
        if self.store.get_flow(&self.app, id).await.unwrap().is_some() {
            self.store.update_flow(&doc).await.unwrap();
        } else {
            self.store.insert_flow(&doc).await.unwrap();
        }
        for node in &self.nodes {
            node.engine.flow_changed(&self.app, id).await;
        }
    }

    fn runs(&self) -> Vec<Vec<String>> {
        self.nodes
            .iter()
            .map(|n| n.seen.runs.lock().unwrap().clone())
            .collect()
    }

    async fn wait_for_runs(&self, total: usize, within: Duration) -> Vec<Vec<String>> {
        let deadline = Instant::now() + within;
        loop {
            let runs = self.runs();
            if runs.iter().map(Vec::len).sum::<usize>() >= total || Instant::now() > deadline {
                return runs;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(self) {
        for node in &self.nodes {
            node.engine.shutdown().await;
        }
        let nats = NatsCluster::connect(&format!("{}?cluster={}", nats_url(), self.name))
            .await
            .unwrap();
        nats.delete_streams().await.unwrap();
    }
}

fn button(key: &str) -> Value {
    json!({"type": "virtualButton", "key": key, "outputIds": [["d"]]})
}

fn debug_node(message: &str) -> Value {
    json!({"id": "d", "type": "DebugNode", "config": {"message": message}, "outputIds": [[]]})
}

fn press(key: &str) -> Press {
    Press {
        key: key.into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presses_on_any_node_run_once_each_spread_over_the_nodes() {
    let cluster = Cluster::start(3, QueueSettings::default()).await;
    cluster
        .save("f", json!([button("go")]), json!([debug_node("hi")]))
        .await;
    let mut run_ids = Vec::new();
    for i in 0..600 {
        let node = &cluster.nodes[i % 3];
        let run_id = node
            .engine
            .press_virtual_button(&cluster.app, "f", press("go"))
            .await
            .expect("a press is queued");
        run_ids.push(run_id);
    }
    let runs = cluster.wait_for_runs(600, Duration::from_secs(30)).await;
    let mut all: Vec<String> = runs.iter().flatten().cloned().collect();
    all.sort();
    run_ids.sort();
    assert_eq!(all, run_ids, "every acknowledged press ran exactly once");
    let per_node: Vec<usize> = runs.iter().map(Vec::len).collect();
    assert!(
        per_node.iter().filter(|&&n| n > 0).count() >= 2,
        "the work was shared: {per_node:?}"
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_fires_once_per_tick_across_the_cluster() {
    let cluster = Cluster::start(3, QueueSettings::default()).await;
    let timer =
        json!({"type": "timer", "key": "t", "config": {"seconds": 1}, "outputIds": [["d"]]});
    cluster
        .save("clock", json!([timer]), json!([debug_node("tick")]))
        .await;
    tokio::time::sleep(Duration::from_millis(4_500)).await;
    let printed: Vec<Value> = cluster
        .nodes
        .iter()
        .flat_map(|n| n.seen.printed.lock().unwrap().clone())
        .map(|(_, v)| v)
        .collect();
    let mut ticks: Vec<&str> = printed.iter().filter_map(|p| p["time"].as_str()).collect();
    ticks.sort();
    let count = ticks.len();
    ticks.dedup();
    assert_eq!(ticks.len(), count, "no tick ran twice: {ticks:?}");
    assert!(
        (4..=5).contains(&count),
        "{count} ticks in 4.5 s: {ticks:?}"
    );
    // Ticks fall on whole seconds, the same on every node.
    for tick in &ticks {
        let ms = chrono::DateTime::parse_from_rfc3339(tick)
            .unwrap()
            .timestamp_millis();
        assert_eq!(ms % 1000, 0, "{tick}");
    }
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_announced_by_one_node_reaches_the_others() {
    let cluster = Cluster::start(2, QueueSettings::default()).await;
    cluster
        .save("f", json!([button("go")]), json!([debug_node("before")]))
        .await;
    // Node 1 compiles and caches the flow by running it.
    cluster.nodes[1]
        .engine
        .press_virtual_button(&cluster.app, "f", press("go"))
        .await
        .unwrap();
    cluster.wait_for_runs(1, Duration::from_secs(10)).await;
    // The flow changes through node 0 only; node 0 announces it on the feed.
    let now = flowd_model::time::now_iso();
    let doc = json!({"id": "f", "applicationId": cluster.app, "name": "f", "flowClass": "cloud",
        "enabled": true, "creationDate": now, "lastUpdated": now,
        "triggers": [button("again")], "nodes": [debug_node("after")]});
    cluster.store.update_flow(&doc).await.unwrap();
    let change = Change::Flow {
        application_id: cluster.app.clone(),
        flow_id: "f".into(),
    };
    cluster.nodes[0].engine.apply_change(&change).await;
    let nats = NatsCluster::connect(&format!("{}?cluster={}", nats_url(), cluster.name))
        .await
        .unwrap();
    let feed = nats
        .change_feed(Arc::new(|_| Box::pin(async {})))
        .await
        .unwrap();
    flowd_engine::cluster::ChangeFeed::publish(&feed, &change);
    // Node 1 forgets its compiled copy: the new button works there, the old one is gone.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match cluster.nodes[1]
            .engine
            .press_virtual_button(&cluster.app, "f", press("again"))
            .await
        {
            Ok(_) => break,
            Err(e) if Instant::now() > deadline => panic!("node 1 never saw the change: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    let old = cluster.nodes[1]
        .engine
        .press_virtual_button(&cluster.app, "f", press("go"))
        .await;
    assert!(matches!(old, Err(PressError::Invalid(_))), "{old:?}");
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_one_worker_runs_presses_and_ticks() {
    // The lane waiting for timer ticks must not hold the only worker.
    let settings = QueueSettings {
        workers: 1,
        ..QueueSettings::default()
    };
    let cluster = Cluster::start(1, settings).await;
    cluster
        .save("f", json!([button("go")]), json!([debug_node("hi")]))
        .await;
    let timer =
        json!({"type": "timer", "key": "t", "config": {"seconds": 1}, "outputIds": [["d"]]});
    cluster
        .save("clock", json!([timer]), json!([debug_node("tick")]))
        .await;
    for _ in 0..3 {
        cluster.nodes[0]
            .engine
            .press_virtual_button(&cluster.app, "f", press("go"))
            .await
            .unwrap();
    }
    let runs = cluster.wait_for_runs(4, Duration::from_secs(10)).await;
    assert!(runs[0].len() >= 4, "{} runs", runs[0].len());
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_stream_refuses_presses() {
    // One worker held by a long delay, room for 5 jobs in the stream.
    let settings = QueueSettings {
        capacity: 5,
        workers: 1,
        ..QueueSettings::default()
    };
    let cluster = Cluster::start(1, settings).await;
    let delay = json!({"id": "d", "type": "DelayNode", "config": {"delay": 3}, "outputIds": [[]]});
    cluster
        .save("slow", json!([button("go")]), json!([delay]))
        .await;
    let engine = &cluster.nodes[0].engine;
    let mut refused = 0;
    let mut accepted = 0;
    for _ in 0..20 {
        match engine
            .press_virtual_button(&cluster.app, "slow", press("go"))
            .await
        {
            Ok(_) => accepted += 1,
            Err(PressError::Busy) => refused += 1,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert!(refused > 0, "accepted {accepted}, refused none");
    assert!(accepted <= 5 + 32 + 1, "accepted {accepted}");
    cluster.stop().await;
}

#[tokio::test]
async fn bad_urls_and_unreachable_servers_are_named() {
    for (url, says) in [
        ("http://127.0.0.1:4222", "nats://"),
        ("nats://127.0.0.1:4222?cluster=a.b", "cluster name"),
        ("nats://127.0.0.1:1?cluster=x", "127.0.0.1:1"),
    ] {
        let error = NatsCluster::connect(url)
            .await
            .err()
            .expect(url)
            .to_string();
        assert!(error.contains(says), "{url}: {error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_holds_a_lease_and_another_takes_it_over_when_it_stops() {
    let url = format!("{}?cluster=test_{}", nats_url(), flowd_model::id::new_id());
    let nodes = [
        NatsCluster::connect(&url).await.unwrap(),
        NatsCluster::connect(&url).await.unwrap(),
        NatsCluster::connect(&url).await.unwrap(),
    ];
    let ttl = Duration::from_millis(1500);
    let mut leases = Vec::new();
    for node in &nodes {
        leases.push(node.lease("role", ttl).await.unwrap());
    }
    let holders = |leases: &[flowd_nats::lease::Lease]| -> Vec<usize> {
        (0..leases.len())
            .filter(|&i| *leases[i].held.borrow())
            .collect()
    };
    // Watched over two renewals: always exactly one holder.
    for _ in 0..8 {
        tokio::time::sleep(ttl / 4).await;
        assert_eq!(holders(&leases).len(), 1, "{:?}", holders(&leases));
    }
    // A holder that stops renewing (dropped, as when its node dies) passes the role on once its
    // entry has expired, not before.
    let first = leases.remove(holders(&leases)[0]);
    drop(first);
    let stopped = Instant::now();
    while holders(&leases).is_empty() {
        assert!(stopped.elapsed() < ttl * 3, "nobody took the lease over");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        stopped.elapsed() >= ttl / 2,
        "taken over after {:?}, before the entry could expire",
        stopped.elapsed()
    );
    // A holder that releases it (a node stopping cleanly) passes it on at the next try.
    let second = leases.remove(holders(&leases)[0]);
    second.release().await;
    let released = Instant::now();
    while holders(&leases).is_empty() {
        assert!(
            released.elapsed() < ttl / 3 + Duration::from_millis(200),
            "the released lease was not taken at the next try"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    nodes[0].delete_streams().await.unwrap();
}
