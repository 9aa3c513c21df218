//! The trigger lifecycle on the engine: re-arming a flow after it changes, arming every flow at
//! start, and turning events (a failed run, an integration's message) into runs of the triggers
//! listening for them. The bookkeeping lives in [`crate::triggers::hub`].

use crate::compile::CompiledFlow;
use crate::engine::{Engine, Inner, PressError};
use crate::observer::RunFailure;
use crate::queue::{QueueFull, VersionRef};
use crate::triggers::flow_error::{Scope, MAX_ERRORED_PAYLOAD, OMITTED};
use crate::triggers::hub::{Armed, Route, Target};
use crate::triggers::integration::IntegrationEvent;
use crate::triggers::webhook::WebhookSettings;
use crate::triggers::TriggerPlan;
use flowd_store::{ListQuery, StoreError};
use serde_json::{json, Value};
use std::sync::Arc;

/// Wires the hub to the run queue and the integrations to the hub (once, at engine start).
pub(crate) fn connect(inner: &Arc<Inner>) {
    let weak = Arc::downgrade(inner);
    let shared_queue = inner.queue.get().is_some_and(|q| q.is_shared());
    inner.services.triggers.connect(
        Arc::new(move |job| {
            let inner = weak.upgrade().ok_or(QueueFull)?;
            inner.queue.get().ok_or(QueueFull)?.try_submit(job)
        }),
        shared_queue,
    );
    let weak = Arc::downgrade(inner);
    inner
        .services
        .integrations
        .on_event(Arc::new(move |integration_id, application_id, event| {
            if let Some(inner) = weak.upgrade() {
                Engine { inner }.integration_event(integration_id, application_id, event);
            }
        }));
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Flows read per query while arming every flow at start-up.
const ARM_PAGE: u64 = 256;

impl Engine {
    /// A flow was created or changed, or one of its versions was: forget what was compiled and
    /// arm the triggers of its live version afresh. Answers once they are armed.
    pub async fn flow_changed(&self, application_id: &str, flow_id: &str) {
        self.invalidate_flow(flow_id);
        self.rearm(application_id, flow_id).await;
    }

    /// Arms the triggers of a flow's live version — its default version, else develop — when
    /// the flow and that version are enabled; otherwise disarms them.
    pub async fn rearm(&self, application_id: &str, flow_id: &str) {
        self.rearm_with(application_id, flow_id, None).await
    }

    /// [`Engine::rearm`], given the flow's document when the caller has just read it.
    async fn rearm_with(&self, application_id: &str, flow_id: &str, flow: Option<Value>) {
        let hub = &self.inner.services.triggers;
        // One at a time, so that the last change of a flow is the one that stays armed.
        let _in_order = hub.lifecycle.lock().await;
        match self.live_targets(application_id, flow_id, flow).await {
            Ok(targets) => hub.arm(flow_id, targets),
            Err(e) => {
                tracing::error!(flow = %flow_id, error = %e, "cannot arm the flow's triggers");
                hub.disarm(flow_id);
            }
        }
    }

    /// The triggers to arm for a flow: those flowd fires (other than buttons) in its live
    /// version, when the flow and that version are enabled. Only the triggers are compiled; the
    /// nodes are compiled when a run needs them.
    async fn live_targets(
        &self,
        application_id: &str,
        flow_id: &str,
        flow: Option<Value>,
    ) -> Result<Vec<Target>, StoreError> {
        let store = &self.inner.store;
        let flow = match flow {
            Some(flow) => flow,
            None => match store.get_flow(application_id, flow_id).await? {
                Some(flow) => flow,
                None => return Ok(Vec::new()),
            },
        };
        if !flow.get("enabled").and_then(Value::as_bool).unwrap_or(true) {
            return Ok(Vec::new());
        }
        let (version, graph) = match flow.get("defaultVersionId").and_then(Value::as_str) {
            Some(id) => match store.get_version(flow_id, id).await? {
                Some(doc) => (VersionRef::Id(id.to_owned()), doc),
                None => return Ok(Vec::new()),
            },
            None => (VersionRef::Develop, flow),
        };
        if !graph
            .get("enabled")
            .and_then(Value::as_bool)
            .unwrap_or(true)
        {
            return Ok(Vec::new());
        }
        let triggers = graph.get("triggers").and_then(Value::as_array);
        let mut targets = Vec::new();
        for (index, trigger) in triggers.into_iter().flatten().enumerate() {
            let type_name = trigger
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let key = trigger.get("key").and_then(Value::as_str);
            let spec = crate::triggers::TriggerSpec {
                index,
                type_name,
                key,
                config: trigger.get("config").unwrap_or(&Value::Null),
                meta: trigger.get("meta").unwrap_or(&Value::Null),
            };
            let plan = match crate::triggers::compile(&spec) {
                Ok(Some(TriggerPlan::Press)) | Ok(None) => continue,
                Ok(Some(plan)) => plan,
                Err(e) => {
                    // Checked when saved; a stored trigger that no longer compiles is skipped.
                    tracing::warn!(flow = %flow_id, error = %e, "trigger not armed");
                    continue;
                }
            };
            targets.push(Target {
                application_id: application_id.to_owned(),
                flow_id: flow_id.to_owned(),
                version: version.clone(),
                trigger_index: index,
                trigger_type: type_name.to_owned(),
                trigger_key: key.unwrap_or_default().to_owned(),
                plan,
            });
        }
        Ok(targets)
    }

    /// Arms every flow's triggers; called once at start, before requests are served.
    pub async fn arm_all(&self) -> Result<(), StoreError> {
        let store = &self.inner.store;
        for application in store.list_applications(&ListQuery::all()).await?.items {
            let Some(application_id) = application.get("id").and_then(Value::as_str) else {
                continue;
            };
            // A page at a time: reading 10,000 whole flow documents at once took ~75 MB at
            // start-up, memory the allocator then kept.
            let mut query = ListQuery {
                per_page: ARM_PAGE,
                ..ListQuery::all()
            };
            loop {
                let page = store.list_flows(application_id, &query).await?.items;
                let last_page = (page.len() as u64) < ARM_PAGE;
                for flow in page {
                    if let Some(flow_id) = flow.get("id").and_then(Value::as_str).map(str::to_owned)
                    {
                        self.rearm_with(application_id, &flow_id, Some(flow)).await;
                    }
                }
                if last_page {
                    break;
                }
                query.page += 1;
            }
        }
        Ok(())
    }

    /// Whether this node listens to Redis channels (in a cluster, only the node holding the
    /// listening lease does).
    pub fn set_listening(&self, listening: bool) {
        self.inner.services.triggers.set_listening(listening);
    }

    /// What is armed now (tests check that nothing is left over).
    pub fn armed(&self) -> Armed {
        self.inner.services.triggers.armed()
    }

    /// A request reached a webhook: queues a run of every flow of its application listening to
    /// it — in each flow's live version, or with `flow_version` (the request's `X-Flow-Version`
    /// header: a version name, or `develop`) in that version of each flow that has it. Returns
    /// how many runs were queued (0 when no flow listens).
    pub async fn fire_webhook(
        &self,
        webhook: &WebhookSettings,
        mut data: Value,
        flow_version: Option<&str>,
    ) -> Result<usize, PressError> {
        self.allow_firing(format_args!("webhook {}", webhook.webhook_id))?;
        let hub = &self.inner.services.triggers;
        let targets = match flow_version {
            None => hub
                .targets(&Route::Webhook(webhook.webhook_id.clone()))
                .into_iter()
                .filter(|t| t.application_id == webhook.application_id)
                .collect(),
            Some(name) => self.webhook_targets_in_version(webhook, name).await?,
        };
        let queue = self
            .inner
            .queue
            .get()
            .ok_or_else(|| PressError::Internal("the run queue is not running".into()))?;
        // Each flow's run gets a copy of the request but the last, which takes it.
        for (i, target) in targets.iter().enumerate() {
            let relay = Some((webhook.webhook_id.clone(), "public"));
            let data = if i + 1 == targets.len() {
                std::mem::take(&mut data)
            } else {
                data.clone()
            };
            let job = crate::triggers::hub::job_for(target, data, relay, now_ms(), 0);
            // Acknowledged once queued: a shared queue holds it durably by then.
            queue.submit(job).await?;
        }
        Ok(targets.len())
    }

    /// The webhook triggers for `webhook` in version `name` of each enabled flow of its
    /// application (a version named in a request need not be the live one).
    async fn webhook_targets_in_version(
        &self,
        webhook: &WebhookSettings,
        name: &str,
    ) -> Result<Vec<Arc<Target>>, PressError> {
        let store = &self.inner.store;
        let internal = |e: StoreError| PressError::Internal(e.to_string());
        let mut targets = Vec::new();
        let flows = store
            .list_flows(&webhook.application_id, &ListQuery::all())
            .await
            .map_err(internal)?;
        for flow in flows.items {
            let Some(flow_id) = flow.get("id").and_then(Value::as_str) else {
                continue;
            };
            if !flow.get("enabled").and_then(Value::as_bool).unwrap_or(true) {
                continue;
            }
            let version = if name == "develop" {
                VersionRef::Develop
            } else {
                match store.get_version(flow_id, name).await.map_err(internal)? {
                    Some(doc) => VersionRef::Id(
                        doc.get("id")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                    ),
                    None => continue,
                }
            };
            let compiled = match self
                .compiled(&webhook.application_id, flow_id, &version)
                .await
            {
                Ok(Some(compiled)) if compiled.identity.enabled => compiled,
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!(flow = %flow_id, error = %e, "a webhook's named version cannot run");
                    continue;
                }
            };
            for (index, trigger) in compiled.triggers.iter().enumerate() {
                if matches!(trigger.plan, Some(TriggerPlan::Webhook))
                    && trigger.key.as_deref() == Some(webhook.webhook_id.as_str())
                {
                    targets.push(Arc::new(Target {
                        application_id: webhook.application_id.clone(),
                        flow_id: flow_id.to_owned(),
                        version: version.clone(),
                        trigger_index: index,
                        trigger_type: trigger.type_name.clone(),
                        trigger_key: webhook.webhook_id.clone(),
                        plan: TriggerPlan::Webhook,
                    }));
                }
            }
        }
        Ok(targets)
    }

    /// An integration's event: runs every Integration trigger of its application's flows that
    /// listens for this kind of event.
    fn integration_event(
        &self,
        integration_id: &str,
        application_id: &str,
        event: IntegrationEvent,
    ) {
        let hub = &self.inner.services.triggers;
        let data = event.data();
        for target in hub.targets(&Route::Integration(integration_id.to_owned())) {
            let TriggerPlan::Integration(events) = &target.plan else {
                continue;
            };
            // A trigger naming another application's integration hears nothing.
            if target.application_id != application_id || !event.wanted_by(events) {
                continue;
            }
            let relay = Some((integration_id.to_owned(), "integration"));
            if hub.fire(&target, data.clone(), relay, now_ms(), 0).is_err() {
                tracing::warn!(flow = %target.flow_id, "run queue full; an integration event was dropped");
            }
        }
    }

    /// A run ended with a halting error: runs the Workflow Error triggers that catch it, those
    /// of the failing flow (`local`) first, then the application-wide ones (`cloud`).
    pub(crate) fn flow_failed(&self, flow: &CompiledFlow, failure: &RunFailure, depth: u32) {
        let hub = &self.inner.services.triggers;
        let identity = &flow.identity;
        let mut catchers: Vec<_> = hub
            .targets(&Route::FlowErrors(identity.application_id.clone()))
            .into_iter()
            .filter_map(|target| match target.plan {
                TriggerPlan::FlowError(Scope::Local) if target.flow_id == identity.flow_id => {
                    Some((Scope::Local, target))
                }
                TriggerPlan::FlowError(Scope::Cloud) => Some((Scope::Cloud, target)),
                _ => None,
            })
            .collect();
        if catchers.is_empty() {
            return;
        }
        catchers.sort_by_key(|(scope, _)| *scope);
        let errored_payload = match &failure.payload {
            Some(payload) if payload.to_string().len() <= MAX_ERRORED_PAYLOAD => payload.clone(),
            Some(_) => json!(OMITTED),
            None => Value::Null,
        };
        let mut data = json!({
            "errorInfo": {
                "error": {"name": failure.error.name.as_str(), "message": failure.error.message},
                "nodeId": failure.node_id,
                "nodeType": failure.node_type,
            },
        });
        // Moved in, not through `json!` (which would serialize it into a copy).
        data["erroredPayload"] = errored_payload;
        // A failed run that held a webhook request still waiting for its reply hands the
        // reply over: the error handler can answer it.
        let reply_id = failure
            .payload
            .as_ref()
            .and_then(|p| p.pointer("/data/replyId"))
            .and_then(Value::as_str)
            .filter(|id| self.inner.services.replies.may_be_pending(id));
        if let Some(reply_id) = reply_id {
            data["replyId"] = json!(reply_id);
        }
        for (_, target) in catchers {
            let relay = Some((identity.flow_id.clone(), "flow"));
            if hub
                .fire(&target, data.clone(), relay, now_ms(), depth)
                .is_err()
            {
                tracing::warn!(flow = %target.flow_id, "run queue full; a Workflow Error run was dropped");
            }
        }
    }
}
