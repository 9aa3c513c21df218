//! `GET /applications/{applicationId}/flows/{flowId}/debug`: flowd's own route (Losant shows
//! debug output only in its editor). Server-Sent Events: first the flow's recent messages (the
//! bounded ring), then every new one as runs produce it, so `curl -N` watches runs live.
//! Scope `flow.debug`.

use crate::auth::Principal;
use crate::error::ApiResult;
use crate::request::PathParams;
use crate::resources::flow;
use crate::state::AppState;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use axum::Router;
use flowd_engine::observer::DebugMessage;
use flowd_model::scope::Action;
use futures::stream::{self, Stream, StreamExt};
use serde_json::json;
use std::convert::Infallible;
use tokio::sync::broadcast::error::RecvError;

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/applications/{applicationId}/flows/{flowId}/debug",
        get(debug_stream),
    )
}

fn event(message: &DebugMessage) -> Event {
    let time = chrono::DateTime::from_timestamp_millis(message.time_ms)
        .map(flowd_model::time::format_iso)
        .unwrap_or_default();
    let body = json!({
        "time": time,
        "flowId": message.flow_id,
        "runId": message.run_id,
        "flowVersion": message.version,
        "nodeId": message.node_id,
        "level": message.level,
        "message": message.message,
        "value": message.value,
    });
    Event::default().event("debug").data(body.to_string())
}

async fn debug_stream(
    State(state): State<AppState>,
    who: Principal,
    PathParams((application_id, flow_id)): PathParams<(String, String)>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    who.require(Action::FlowDebug, Some(&application_id))?;
    flow::load(&state, &application_id, &flow_id).await?;
    let hub = state.engine.debug();
    // Subscribe before reading the ring so nothing falls between the two.
    let live = hub.subscribe(&flow_id);
    let recent: Vec<Event> = hub.recent(&flow_id).iter().map(event).collect();
    let live = stream::unfold(live, |mut receiver| async move {
        match receiver.recv().await {
            Ok(message) => Some((event(&message), receiver)),
            // A slow reader skips ahead and is told how much it missed.
            Err(RecvError::Lagged(missed)) => {
                let note = Event::default()
                    .event("lagged")
                    .data(json!({ "missed": missed }).to_string());
                Some((note, receiver))
            }
            Err(RecvError::Closed) => None,
        }
    });
    let mut shutting_down = state.shutting_down.clone();
    let stop = async move {
        let _ = shutting_down.wait_for(|down| *down).await;
    };
    let events = stream::iter(recent).chain(live).take_until(stop).map(Ok);
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
