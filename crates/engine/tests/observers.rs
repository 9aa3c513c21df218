//! Observers see runs: every step for those that ask (a trace recorder), none for those that
//! do not, and every run's end.

use flowd_engine::engine::{Engine, EngineConfig};
use flowd_engine::node::RunInfo;
use flowd_engine::observer::{RunObserver, RunResult, StepEvent};
use flowd_engine::queue::VersionRef;
use flowd_engine::run::RunStart;
use flowd_store::sqlite::SqliteStore;
use flowd_store::Store;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Recorder {
    steps: bool,
    seen: Mutex<Vec<(String, Option<usize>, Value)>>,
    ends: Mutex<Vec<RunResult>>,
}

impl RunObserver for Recorder {
    fn wants_steps(&self) -> bool {
        self.steps
    }
    fn step(&self, _run: &RunInfo, event: &StepEvent<'_>) {
        self.seen.lock().unwrap().push((
            event.node_id.to_owned(),
            event.port,
            event
                .payload_after
                .get("working")
                .cloned()
                .unwrap_or(Value::Null),
        ));
    }
    fn run_finished(&self, _run: &RunInfo, result: &RunResult) {
        self.ends.lock().unwrap().push(result.clone());
    }
}

#[tokio::test]
async fn a_trace_recorder_sees_every_step_and_others_see_none() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
    let tracer = Arc::new(Recorder {
        steps: true,
        ..Default::default()
    });
    let quiet = Arc::new(Recorder::default());
    let engine = Engine::start_with_observers(
        store.clone(),
        EngineConfig::default(),
        vec![tracer.clone(), quiet.clone()],
    );
    let now = flowd_model::time::now_iso();
    let (app, flow) = (flowd_model::id::new_id(), flowd_model::id::new_id());
    store
        .insert_application(
            &json!({"id": app, "name": "a", "creationDate": now, "lastUpdated": now}),
        )
        .await
        .unwrap();
    store
        .insert_flow(&json!({"id": flow, "applicationId": app, "name": "f", "flowClass": "cloud",
            "creationDate": now, "lastUpdated": now,
            "triggers": [{"type": "virtualButton", "key": "b", "outputIds": [["one"]]}],
            "nodes": [
                {"id": "one", "type": "JsonEncodeNode", "config": {"source": "data", "destination": "working.a"}, "outputIds": [["two"]]},
                {"id": "two", "type": "JsonEncodeNode", "config": {"source": "working.a", "destination": "working.b"}}
            ]}))
        .await
        .unwrap();
    let compiled = engine
        .compiled(&app, &flow, &VersionRef::Develop)
        .await
        .unwrap()
        .unwrap();
    let start = RunStart {
        run_id: "r".into(),
        trigger: 0,
        data: json!({"x": 1}),
        relay_id: None,
        relay_type: None,
        device_id: None,
        time_ms: 0,
    };
    let result = engine.run_now(compiled, start).await;
    assert_eq!((result.paths_completed, result.paths_failed), (1, 0));

    let seen = tracer.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert_eq!((seen[0].0.as_str(), seen[0].1), ("one", Some(0)));
    assert_eq!(
        seen[0].2,
        json!({"a": "{\"x\":1}"}),
        "the payload after the first node"
    );
    assert_eq!(seen[1].0, "two");
    assert_eq!(seen[1].2["b"], json!("\"{\\\"x\\\":1}\""));
    assert!(
        quiet.seen.lock().unwrap().is_empty(),
        "no steps for an observer that did not ask"
    );
    assert_eq!(quiet.ends.lock().unwrap().len(), 1);
    assert_eq!(tracer.ends.lock().unwrap().len(), 1);
}
