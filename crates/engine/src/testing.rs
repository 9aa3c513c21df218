//! Helpers for node unit tests: compile one node and run it on a payload, with real services
//! (a SQLite store in a temporary directory behind the storage service).

use crate::error::{CompileError, NodeError};
use crate::node::{CompiledNodeType, NodeContext, NodeSpec, Outcome, RunInfo};
use crate::services::{RunLimits, Services};
use crate::storage::{StorageHandle, StorageMode, StorageService};
use serde_json::{json, Value};
use std::future::IntoFuture;
use std::sync::Arc;

/// A run of the develop version of flow `flow_id` in application `app`.
pub fn run_info(flow_id: &str) -> RunInfo {
    RunInfo {
        run_id: "run".into(),
        flow: Arc::new(crate::compile::FlowIdentity {
            application_id: "app".into(),
            application_name: "a".into(),
            flow_id: flow_id.to_owned(),
            flow_name: "f".into(),
            version_name: "develop".into(),
            version_id: None,
            enabled: true,
        }),
        device_id: None,
        started_ms: 0,
        depth: 0,
    }
}

pub fn compile_node(type_name: &str, config: &Value) -> Result<CompiledNodeType, CompileError> {
    let meta = json!({"label": "under test"});
    crate::nodes::compile(&NodeSpec {
        id: "n",
        type_name,
        config,
        meta: &meta,
        limits: &RunLimits::default(),
    })
}

/// A tokio runtime and services over a fresh store with one application and flow (`f`).
pub struct Harness {
    pub runtime: tokio::runtime::Runtime,
    pub services: Arc<Services>,
    pub flow_id: String,
    _dir: tempfile::TempDir,
}

impl Harness {
    /// A harness with storage in Cached mode.
    pub fn new() -> Harness {
        Harness::with_storage_mode(StorageMode::Cached)
    }

    /// One harness per storage mode, for checks that must come out the same in both.
    pub fn in_each_storage_mode() -> impl Iterator<Item = Harness> {
        [StorageMode::Cached, StorageMode::Shared]
            .into_iter()
            .map(|mode| {
                // Shown with a failing test's output: which mode it failed in.
                eprintln!("storage mode: {mode:?}");
                Harness::with_storage_mode(mode)
            })
    }

    pub fn with_storage_mode(mode: StorageMode) -> Harness {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("temp dir");
        let flow_id = flowd_model::id::new_id();
        let services = runtime.block_on(async {
            let store = flowd_store::sqlite::SqliteStore::open(dir.path())
                .await
                .expect("store");
            let app = flowd_model::id::new_id();
            let now = flowd_model::time::now_iso();
            use flowd_store::{ApplicationStore, FlowStore};
            store
                .insert_application(
                    &json!({"id": app, "name": "a", "creationDate": now, "lastUpdated": now}),
                )
                .await
                .expect("application");
            store
                .insert_flow(
                    &json!({"id": flow_id, "applicationId": app, "name": "f", "flowClass": "cloud",
                    "creationDate": now, "lastUpdated": now}),
                )
                .await
                .expect("flow");
            let store: Arc<dyn flowd_store::Store> = Arc::new(store);
            Arc::new(Services::new(
                StorageService::start(
                    store,
                    flowd_store::StorageCaps {
                        max_keys: 1000,
                        max_bytes: 1 << 20,
                    },
                    mode,
                ),
                crate::js::JsSandbox::new(1, crate::js::JsLimits::default()),
                Vec::new(),
                RunLimits::default(),
            ))
        });
        Harness {
            runtime,
            services,
            flow_id,
            _dir: dir,
        }
    }

    /// The flow's storage.
    pub fn storage(&self) -> StorageHandle {
        self.runtime
            .block_on(self.services.storage.handle(&self.flow_id))
            .expect("storage")
    }

    /// One entry of the flow's storage.
    pub fn stored(&self, key: &str) -> Option<Value> {
        self.runtime
            .block_on(self.storage().get(key).into_future())
            .expect("storage answers")
    }

    /// Sets one entry of the flow's storage.
    pub fn store(&self, key: &str, value: Value) {
        self.runtime
            .block_on(self.storage().set(key, value).into_future())
            .expect("storage takes the entry")
    }

    /// Runs one node (waiting if it waits) and returns its port and the payload after it.
    pub fn run(
        &self,
        node: &CompiledNodeType,
        mut payload: Value,
    ) -> Result<(usize, Value), NodeError> {
        self.runtime.block_on(async {
            let storage = self
                .services
                .storage
                .handle(&self.flow_id)
                .await
                .expect("storage");
            let run = run_info(&self.flow_id);
            let mut debug = Vec::new();
            let outcome = {
                let mut cx = NodeContext {
                    run: &run,
                    storage: Some(&storage),
                    services: &self.services,
                    debug: &mut debug,
                    node_id: "n",
                    payload_ends_here: false,
                };
                node.node.execute(&mut cx, &mut payload)?
            };
            match outcome {
                Outcome::Port(port) => Ok((port, payload)),
                Outcome::Wait(future) => {
                    let resume = future.await?;
                    if let Some(update) = resume.update {
                        update(&mut payload)?;
                    }
                    Ok((resume.port, payload))
                }
                // Loops and caps need the executor: test them through a flow.
                Outcome::Loop(_) | Outcome::Cap(_) => {
                    panic!("loop nodes are tested through runs, not alone")
                }
            }
        })
    }
}

/// Compiles and runs one node on a fresh harness.
pub fn run_node(
    type_name: &str,
    config: &Value,
    payload: Value,
) -> Result<(usize, Value), NodeError> {
    let node = compile_node(type_name, config).expect("node compiles");
    Harness::new().run(&node, payload)
}
